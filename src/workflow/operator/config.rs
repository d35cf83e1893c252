//! Parameters read from ConfigMaps and Secrets (`valueFrom.configMapKeyRef`,
//! `valueFrom.secretKeyRef`), as Argo's `ProcessArgs` and `setGlobalParameters` read them: pure
//! over [`TemplateLookup::config_map_value`] and [`TemplateLookup::secret_value`].
//!
//! Rules kept (Argo docs "Workflow Variables", field `ValueFrom`, examples
//! arguments-parameters-from-configmap / -from-secret):
//! - a workflow argument (`spec.arguments.parameters[]`) or a template input with
//!   `valueFrom.configMapKeyRef {name, key}` takes the key's value from that ConfigMap in the
//!   Workflow's namespace; only ConfigMaps labelled `workflows.argoproj.io/configmap-type:
//!   Parameter` are read (the controller watches only those);
//! - `valueFrom.secretKeyRef {name, key}` takes the key's value from that Secret of the
//!   Workflow's namespace (any Secret; the controller reads the referenced ones on each
//!   reconcile, it keeps no Secret cache);
//! - an input whose caller passes a `value` takes the value; a caller's argument with its own
//!   `valueFrom` reference replaces the input's;
//! - a ConfigMap/Secret or key that is not there gives `valueFrom.default` when there is one,
//!   else an error naming the parameter, the object and the key (the node errors; for a workflow
//!   argument the workflow fails).
//!
//! Secrets: the value never reaches a log line or an error message here. As in Argo, the
//! resolved value *is* the parameter's value: it appears in the node's `inputs` in
//! `.status.nodes` (and in the workflow archive), and in whatever the template renders it into.
//! Use a Secret volume or `env.valueFrom.secretKeyRef` in the container to keep it out of the
//! Workflow object.
//!
//! Invariant: values are read on every reconcile (as Argo's informer does), never written back
//! into the spec.

use serde_json::Value;

use crate::workflow::types::{Parameter, WorkflowSpec, any_string};
use crate::workflow::validate::TemplateLookup;
use crate::workflow::validate::{ConfigMapValue, SecretValue};

/// Where a `valueFrom` reference reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Store {
    /// `configMapKeyRef`.
    ConfigMap,
    /// `secretKeyRef`.
    Secret,
}

impl Store {
    fn field(self) -> &'static str {
        match self {
            Store::ConfigMap => "configMapKeyRef",
            Store::Secret => "secretKeyRef",
        }
    }
}

/// A `valueFrom.configMapKeyRef` or `valueFrom.secretKeyRef` with its fallback.
#[derive(Debug, PartialEq)]
pub(super) struct ConfigRef {
    pub store: Store,
    pub name: String,
    pub key: String,
    pub default: Option<String>,
}

/// Why a referenced value could not be read.
#[derive(Debug, PartialEq)]
pub(super) struct RefError {
    /// The kind of object read.
    pub store: Store,
    /// What is missing; never a value.
    pub message: String,
}

/// The ConfigMap or Secret reference of a `valueFrom` (`None` when it has none; a ConfigMap
/// reference wins when both are set); a reference without `name` or `key` is an error.
pub(super) fn config_ref(value_from: Option<&Value>) -> Option<Result<ConfigRef, RefError>> {
    let vf = value_from?;
    let (store, r) = [Store::ConfigMap, Store::Secret]
        .into_iter()
        .find_map(|st| Some((st, vf.get(st.field()).filter(|r| !r.is_null())?)))?;
    let field = |f: &str| {
        r.get(f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| RefError {
                store,
                message: format!("valueFrom.{}.{f} is required", store.field()),
            })
    };
    let parsed = field("name").and_then(|name| {
        Ok(ConfigRef {
            store,
            name,
            key: field("key")?,
            default: vf.get("default").filter(|d| !d.is_null()).map(any_string),
        })
    });
    Some(parsed)
}

/// The value `r` names, or its default; the error says what was missing.
pub(super) fn read(
    lookup: &dyn TemplateLookup,
    namespace: &str,
    r: &ConfigRef,
) -> Result<String, RefError> {
    let missing = match r.store {
        Store::ConfigMap => match lookup.config_map_value(namespace, &r.name, &r.key) {
            ConfigMapValue::Found(v) => return Ok(v),
            ConfigMapValue::NoKey => {
                format!("ConfigMap '{}' does not have the key '{}'", r.name, r.key)
            }
            ConfigMapValue::NoConfigMap => format!(
                "ConfigMap '{}' does not exist in namespace '{namespace}' or lacks the label \
                 workflows.argoproj.io/configmap-type: Parameter",
                r.name
            ),
        },
        Store::Secret => match lookup.secret_value(namespace, &r.name, &r.key) {
            SecretValue::Found(v) => return Ok(v),
            SecretValue::NoKey => {
                format!("Secret '{}' does not have the key '{}'", r.name, r.key)
            }
            SecretValue::NoSecret => format!(
                "Secret '{}' does not exist in namespace '{namespace}' (or cannot be read)",
                r.name
            ),
        },
    };
    r.default.clone().ok_or(RefError {
        store: r.store,
        message: missing,
    })
}

/// Gives every workflow argument with a ConfigMap or Secret reference its value (a copy of the
/// spec the operator runs from). The error names the argument.
pub(super) fn resolve_arguments(
    spec: &mut WorkflowSpec,
    namespace: &str,
    lookup: &dyn TemplateLookup,
) -> Result<(), String> {
    let params = spec
        .arguments
        .as_mut()
        .and_then(|a| a.parameters.as_mut())
        .map_or(&mut [][..], Vec::as_mut_slice);
    for (k, p) in params.iter_mut().enumerate() {
        if p.value.is_some() {
            continue;
        }
        if let Some(v) = value_of(p, namespace, lookup)
            .map_err(|e| format!("spec.arguments.parameters[{k}] ({}): {}", p.name, e.message))?
        {
            p.value = Some(Value::String(v));
        }
    }
    Ok(())
}

/// The ConfigMap or Secret value of a parameter's `valueFrom` (`None`: it reads neither).
pub(super) fn value_of(
    p: &Parameter,
    namespace: &str,
    lookup: &dyn TemplateLookup,
) -> Result<Option<String>, RefError> {
    match config_ref(p.value_from.as_ref()) {
        None => Ok(None),
        Some(r) => read(lookup, namespace, &r?).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn config_ref_reads_name_key_and_default() {
        assert_eq!(config_ref(None), None);
        assert_eq!(config_ref(Some(&json!({"default": "d"}))), None);
        assert_eq!(
            config_ref(Some(
                &json!({"configMapKeyRef": {"name": "cm", "key": "k"}, "default": 3})
            )),
            Some(Ok(ConfigRef {
                store: Store::ConfigMap,
                name: "cm".into(),
                key: "k".into(),
                default: Some("3".into()),
            }))
        );
        assert_eq!(
            config_ref(Some(&json!({"configMapKeyRef": {"name": "cm"}}))),
            Some(Err(RefError {
                store: Store::ConfigMap,
                message: "valueFrom.configMapKeyRef.key is required".into()
            }))
        );
        assert_eq!(
            config_ref(Some(&json!({"secretKeyRef": {"name": "s", "key": "k"}}))),
            Some(Ok(ConfigRef {
                store: Store::Secret,
                name: "s".into(),
                key: "k".into(),
                default: None,
            }))
        );
        assert_eq!(
            config_ref(Some(&json!({"secretKeyRef": {"key": "k"}}))),
            Some(Err(RefError {
                store: Store::Secret,
                message: "valueFrom.secretKeyRef.name is required".into()
            }))
        );
    }

    /// A lookup holding one Secret `s` with key `k` = `hunter2`.
    struct OneSecret;

    impl TemplateLookup for OneSecret {
        fn workflow_template(
            &self,
            _: &str,
            _: &str,
        ) -> Option<crate::workflow::types::WorkflowTemplate> {
            None
        }
        fn cluster_workflow_template(
            &self,
            _: &str,
        ) -> Option<crate::workflow::types::ClusterWorkflowTemplate> {
            None
        }
        fn secret_value(&self, namespace: &str, name: &str, key: &str) -> SecretValue {
            match (namespace, name, key) {
                ("ns", "s", "k") => SecretValue::Found("hunter2".into()),
                ("ns", "s", _) => SecretValue::NoKey,
                _ => SecretValue::NoSecret,
            }
        }
    }

    #[test]
    fn secret_refs_read_the_value_or_the_default_and_never_print_the_value() {
        let r = |name: &str, key: &str, default: Option<&str>| ConfigRef {
            store: Store::Secret,
            name: name.into(),
            key: key.into(),
            default: default.map(str::to_owned),
        };
        assert_eq!(
            read(&OneSecret, "ns", &r("s", "k", None)),
            Ok("hunter2".into())
        );
        assert_eq!(
            read(&OneSecret, "ns", &r("s", "other", None)),
            Err(RefError {
                store: Store::Secret,
                message: "Secret 's' does not have the key 'other'".into()
            })
        );
        assert_eq!(
            read(&OneSecret, "other-ns", &r("s", "k", None)).map_err(|e| e.message),
            Err("Secret 's' does not exist in namespace 'other-ns' (or cannot be read)".into())
        );
        assert_eq!(
            read(&OneSecret, "ns", &r("gone", "k", Some("fallback"))),
            Ok("fallback".into())
        );
        assert_eq!(
            format!("{:?}", SecretValue::Found("hunter2".into())),
            "Found(<redacted>)"
        );
    }

    #[test]
    fn workflow_arguments_take_secret_values_and_errors_name_the_argument() {
        let mut spec: WorkflowSpec = serde_json::from_value(json!({
            "arguments": {"parameters": [
                {"name": "a", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                {"name": "b", "value": "kept"},
            ]}
        }))
        .expect("spec");
        resolve_arguments(&mut spec, "ns", &OneSecret).expect("resolved");
        let params = spec
            .arguments
            .and_then(|a| a.parameters)
            .unwrap_or_default();
        assert_eq!(params[0].value, Some(json!("hunter2")));
        assert_eq!(params[1].value, Some(json!("kept")));
        let mut bad: WorkflowSpec = serde_json::from_value(json!({
            "arguments": {"parameters": [
                {"name": "a", "valueFrom": {"secretKeyRef": {"name": "s", "key": "nope"}}},
            ]}
        }))
        .expect("spec");
        assert_eq!(
            resolve_arguments(&mut bad, "ns", &OneSecret),
            Err("spec.arguments.parameters[0] (a): Secret 's' does not have the key 'nope'".into())
        );
    }
}
