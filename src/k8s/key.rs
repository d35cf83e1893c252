//! [`ResourceKey`]: the one identity of a Kubernetes object across cairn.

use std::fmt;
use std::str::FromStr;

use kube::Resource;
use serde::{Deserialize, Serialize};

/// The identity of one Kubernetes object: API group (empty for the core group), kind,
/// namespace (None for cluster-scoped objects) and name.
///
/// The version is deliberately absent: the same object read through two versions is one object.
/// Displayed as `group/kind/namespace/name` with empty segments for the core group and for
/// cluster scope (`/ConfigMap/default/cm-1`, `apiextensions.k8s.io/CustomResourceDefinition//x`),
/// the form Argo CD prints; [`FromStr`] reads that form back.
/// Ordering is by group, kind, namespace, name, so sorted keys are stable across runs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceKey {
    /// API group; empty for the core group ("" for Pod, "apps" for Deployment).
    pub group: String,
    /// Kind, e.g. "Deployment".
    pub kind: String,
    /// Namespace; None for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl ResourceKey {
    /// A key from its parts; an empty namespace means cluster scope.
    pub fn new(
        group: impl Into<String>,
        kind: impl Into<String>,
        namespace: Option<&str>,
        name: impl Into<String>,
    ) -> Self {
        ResourceKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
            name: name.into(),
        }
    }

    /// The key of a typed object (Argo kinds, k8s-openapi kinds).
    pub fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Self {
        let meta = obj.meta();
        ResourceKey::new(
            K::group(&()),
            K::kind(&()),
            meta.namespace.as_deref(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// The key of an object known by its `apiVersion` ("apps/v1", "v1") and `kind`.
    pub fn from_api_version(
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Self {
        // "v1" is the core group; "group/version" otherwise.
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        ResourceKey::new(group, kind, namespace, name)
    }
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}",
            self.group,
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }
}

/// A string that is not `group/kind/namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseKeyError {
    /// The string does not have exactly four `/`-separated segments.
    #[error(
        "resource key {input:?}: expected group/kind/namespace/name (4 segments), found {found}"
    )]
    Segments {
        /// The rejected input.
        input: String,
        /// How many segments it had.
        found: usize,
    },
    /// The kind or the name segment is empty.
    #[error("resource key {input:?}: the {segment} segment must not be empty")]
    Empty {
        /// The rejected input.
        input: String,
        /// "kind" or "name".
        segment: &'static str,
    },
}

impl FromStr for ResourceKey {
    type Err = ParseKeyError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = input.split('/').collect();
        let [group, kind, namespace, name] = parts.as_slice() else {
            return Err(ParseKeyError::Segments {
                input: input.to_owned(),
                found: parts.len(),
            });
        };
        for (segment, value) in [("kind", kind), ("name", name)] {
            if value.is_empty() {
                return Err(ParseKeyError::Empty {
                    input: input.to_owned(),
                    segment,
                });
            }
        }
        Ok(ResourceKey::new(*group, *kind, Some(namespace), *name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    #[test]
    fn display_uses_empty_segments_for_core_group_and_cluster_scope() {
        let cm = ResourceKey::new("", "ConfigMap", Some("default"), "cm-1");
        assert_eq!(cm.to_string(), "/ConfigMap/default/cm-1");
        let crd = ResourceKey::new(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            None,
            "x",
        );
        assert_eq!(
            crd.to_string(),
            "apiextensions.k8s.io/CustomResourceDefinition//x"
        );
        let empty_ns = ResourceKey::new("apps", "Deployment", Some(""), "d");
        assert_eq!(empty_ns.namespace, None);
    }

    #[test]
    fn parse_is_the_inverse_of_display() {
        for key in [
            ResourceKey::new("", "Pod", Some("ns"), "p"),
            ResourceKey::new("argoproj.io", "ClusterWorkflowTemplate", None, "t"),
            ResourceKey::new("apps", "Deployment", Some("prod"), "web"),
        ] {
            let parsed: ResourceKey = key.to_string().parse().expect("parses");
            assert_eq!(parsed, key);
        }
    }

    #[test]
    fn parse_rejects_malformed_keys() {
        assert_eq!(
            "apps/Deployment/web".parse::<ResourceKey>(),
            Err(ParseKeyError::Segments {
                input: "apps/Deployment/web".into(),
                found: 3
            })
        );
        assert!(matches!(
            "a/b/c/d/e".parse::<ResourceKey>(),
            Err(ParseKeyError::Segments { found: 5, .. })
        ));
        assert!(matches!(
            "apps//ns/web".parse::<ResourceKey>(),
            Err(ParseKeyError::Empty {
                segment: "kind",
                ..
            })
        ));
        let err = "apps/Deployment/ns/"
            .parse::<ResourceKey>()
            .expect_err("no name");
        assert!(err.to_string().contains("name segment"), "{err}");
    }

    #[test]
    fn of_typed_object_and_from_api_version_agree() {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("n".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            ResourceKey::of(&cm),
            ResourceKey::from_api_version("v1", "ConfigMap", Some("n"), "c")
        );
        assert_eq!(
            ResourceKey::from_api_version("apps/v1", "Deployment", None, "d").group,
            "apps"
        );
    }

    #[test]
    fn serde_is_a_plain_struct_and_ordering_is_stable() {
        let key = ResourceKey::new("apps", "Deployment", Some("prod"), "web");
        let json = serde_json::to_value(&key).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({"group": "apps", "kind": "Deployment", "namespace": "prod", "name": "web"})
        );
        let back: ResourceKey = serde_json::from_value(json).expect("deserialize");
        assert_eq!(back, key);
        let mut keys = [
            ResourceKey::new("apps", "Deployment", Some("b"), "x"),
            ResourceKey::new("", "Service", Some("a"), "x"),
            ResourceKey::new("apps", "Deployment", Some("a"), "x"),
        ];
        keys.sort();
        assert_eq!(keys[0].kind, "Service");
        assert_eq!(keys[1].namespace.as_deref(), Some("a"));
    }
}
