//! How the hand-written Argo types carry `apiVersion`/`kind` and implement `kube::Resource`.
//!
//! The types are written by hand (not with `#[derive(CustomResource)]`) because Argo objects do
//! not all have the `spec`/`status` shape (WorkflowTaskResult has neither; Application has a
//! top-level `operation`), and every level must keep fields cairn does not model.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use kube::Resource;
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Argo kind: a `kube::Resource` with compile-time group/version/kind/plural.
pub trait ArgoKind: Resource<DynamicType = ()> {
    /// The kind, e.g. "Workflow".
    const KIND: &'static str;
    /// The plural resource name, e.g. "workflows".
    const PLURAL: &'static str;
    /// False only for cluster-scoped kinds (ClusterWorkflowTemplate).
    const NAMESPACED: bool;

    /// The CRD name, `<plural>.argoproj.io`.
    fn crd_name() -> String {
        format!("{}.{}", Self::PLURAL, super::GROUP)
    }

    /// The static description of this kind.
    fn info() -> KindInfo {
        KindInfo {
            kind: Self::KIND,
            plural: Self::PLURAL,
            namespaced: Self::NAMESPACED,
        }
    }
}

/// The static description of one Argo kind, as the Rust type declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindInfo {
    /// The kind, e.g. "Workflow".
    pub kind: &'static str,
    /// The plural resource name.
    pub plural: &'static str,
    /// False for cluster-scoped kinds.
    pub namespaced: bool,
}

/// Every Argo kind cairn has a Rust type for, in the order of [`super::crds::all`].
pub fn kinds() -> Vec<KindInfo> {
    use crate::events::types as ev;
    use crate::gitops::types as go;
    use crate::workflow::types as wf;
    vec![
        go::Application::info(),
        go::AppProject::info(),
        go::ApplicationSet::info(),
        wf::Workflow::info(),
        wf::WorkflowTemplate::info(),
        wf::ClusterWorkflowTemplate::info(),
        wf::CronWorkflow::info(),
        wf::WorkflowTaskResult::info(),
        wf::WorkflowTaskSet::info(),
        wf::WorkflowArtifactGcTask::info(),
        wf::WorkflowEventBinding::info(),
        ev::EventSource::info(),
        ev::Sensor::info(),
        ev::EventBus::info(),
    ]
}

/// The `apiVersion` and `kind` of an Argo object of Rust type `K`, flattened into its root.
///
/// It holds no data: serialization always writes `K`'s own apiVersion and kind, so a typed
/// object can never claim another kind; deserialization accepts them absent (as in some list
/// items) and refuses a document that names another apiVersion or kind.
pub struct TypeTag<K>(PhantomData<fn() -> K>);

impl<K> TypeTag<K> {
    /// The tag (there is only one value).
    pub const fn new() -> Self {
        TypeTag(PhantomData)
    }
}

impl<K> Default for TypeTag<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Clone for TypeTag<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for TypeTag<K> {}

impl<K> PartialEq for TypeTag<K> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<K: Resource<DynamicType = ()>> fmt::Debug for TypeTag<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", K::api_version(&()), K::kind(&()))
    }
}

impl<K: Resource<DynamicType = ()>> Serialize for TypeTag<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("apiVersion", &K::api_version(&()))?;
        map.serialize_entry("kind", &K::kind(&()))?;
        map.end()
    }
}

impl<'de, K: Resource<DynamicType = ()>> Deserialize<'de> for TypeTag<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "apiVersion", default)]
            api_version: Option<String>,
            #[serde(default)]
            kind: Option<String>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let want_version: Cow<'_, str> = K::api_version(&());
        let want_kind: Cow<'_, str> = K::kind(&());
        if let Some(found) = raw.api_version
            && found != want_version
        {
            return Err(D::Error::custom(format!(
                "apiVersion: expected {want_version} for kind {want_kind}, found {found}"
            )));
        }
        if let Some(found) = raw.kind
            && found != want_kind
        {
            return Err(D::Error::custom(format!(
                "kind: expected {want_kind}, found {found}"
            )));
        }
        Ok(TypeTag::new())
    }
}

/// Implements `kube::Resource` and [`ArgoKind`] for a struct with a `metadata: ObjectMeta` field.
///
/// `argo_resource!(Workflow, "Workflow", "workflows", namespaced);`
/// `argo_resource!(ClusterWorkflowTemplate, "ClusterWorkflowTemplate", "clusterworkflowtemplates", cluster);`
macro_rules! argo_resource {
    ($ty:ident, $kind:literal, $plural:literal, namespaced) => {
        $crate::k8s::argo_resource!(@impl $ty, $kind, $plural, true, ::k8s_openapi::NamespaceResourceScope);
    };
    ($ty:ident, $kind:literal, $plural:literal, cluster) => {
        $crate::k8s::argo_resource!(@impl $ty, $kind, $plural, false, ::k8s_openapi::ClusterResourceScope);
    };
    (@impl $ty:ident, $kind:literal, $plural:literal, $namespaced:literal, $scope:ty) => {
        impl ::kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($kind)
            }
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($crate::k8s::GROUP)
            }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($crate::k8s::VERSION)
            }
            fn api_version(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($crate::k8s::API_VERSION)
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                ::std::borrow::Cow::Borrowed($plural)
            }
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl $crate::k8s::ArgoKind for $ty {
            const KIND: &'static str = $kind;
            const PLURAL: &'static str = $plural;
            const NAMESPACED: bool = $namespaced;
        }
    };
}
pub(crate) use argo_resource;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[test]
    fn tag_serializes_the_types_own_api_version_and_kind() {
        let v = serde_json::to_value(TypeTag::<ConfigMap>::new()).expect("serialize");
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"})
        );
    }

    #[test]
    fn tag_accepts_absent_or_matching_and_refuses_other_kinds() {
        for ok in [
            serde_json::json!({}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"}),
        ] {
            serde_json::from_value::<TypeTag<ConfigMap>>(ok).expect("accepted");
        }
        let err = serde_json::from_value::<TypeTag<ConfigMap>>(
            serde_json::json!({"apiVersion": "v1", "kind": "Secret"}),
        )
        .expect_err("other kind");
        assert!(
            err.to_string().contains("expected ConfigMap, found Secret"),
            "{err}"
        );
        let err = serde_json::from_value::<TypeTag<ConfigMap>>(
            serde_json::json!({"apiVersion": "apps/v1"}),
        )
        .expect_err("other version");
        assert!(err.to_string().contains("apiVersion"), "{err}");
    }
}
