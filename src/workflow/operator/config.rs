//! Parameters read from ConfigMaps (`valueFrom.configMapKeyRef`), as Argo's `ProcessArgs` and
//! `setGlobalParameters` read them: pure over [`TemplateLookup::config_map_value`].
//!
//! Rules kept (Argo docs "Workflow Variables" / field `ValueFrom.configMapKeyRef`):
//! - a workflow argument (`spec.arguments.parameters[]`) or a template input with
//!   `valueFrom.configMapKeyRef {name, key}` takes the key's value from that ConfigMap in the
//!   Workflow's namespace; only ConfigMaps labelled `workflows.argoproj.io/configmap-type:
//!   Parameter` are read (the controller watches only those);
//! - an input whose caller passes a `value` takes the value; a caller's argument with its own
//!   `valueFrom.configMapKeyRef` replaces the input's;
//! - a ConfigMap or key that is not there gives `valueFrom.default` when there is one, else an
//!   error naming the parameter, the ConfigMap and the key (the node errors; for a workflow
//!   argument the workflow fails).
//!
//! Invariant: values are read on every reconcile (as Argo's informer does), never written back
//! into the spec.

use serde_json::Value;

use crate::workflow::types::{Parameter, WorkflowSpec, any_string};
use crate::workflow::validate::ConfigMapValue;
use crate::workflow::validate::TemplateLookup;

/// A `valueFrom.configMapKeyRef` with its fallback.
#[derive(Debug, PartialEq)]
pub(super) struct ConfigRef {
    pub name: String,
    pub key: String,
    pub default: Option<String>,
}

/// The ConfigMap reference of a `valueFrom` (`None` when it has none); a reference without
/// `name` or `key` is an error.
pub(super) fn config_ref(value_from: Option<&Value>) -> Option<Result<ConfigRef, String>> {
    let vf = value_from?;
    let r = vf.get("configMapKeyRef").filter(|r| !r.is_null())?;
    let field = |f: &str| {
        r.get(f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("valueFrom.configMapKeyRef.{f} is required"))
    };
    let parsed = field("name").and_then(|name| {
        Ok(ConfigRef {
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
) -> Result<String, String> {
    let missing = match lookup.config_map_value(namespace, &r.name, &r.key) {
        ConfigMapValue::Found(v) => return Ok(v),
        ConfigMapValue::NoKey => {
            format!("ConfigMap '{}' does not have the key '{}'", r.name, r.key)
        }
        ConfigMapValue::NoConfigMap => format!(
            "ConfigMap '{}' does not exist in namespace '{namespace}' or lacks the label \
             workflows.argoproj.io/configmap-type: Parameter",
            r.name
        ),
    };
    r.default.clone().ok_or(missing)
}

/// Gives every workflow argument with a ConfigMap reference its value (a copy of the spec the
/// operator runs from). The error names the argument.
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
            .map_err(|e| format!("spec.arguments.parameters[{k}] ({}): {e}", p.name))?
        {
            p.value = Some(Value::String(v));
        }
    }
    Ok(())
}

/// The ConfigMap value of a parameter's `valueFrom` (`None`: it reads no ConfigMap).
pub(super) fn value_of(
    p: &Parameter,
    namespace: &str,
    lookup: &dyn TemplateLookup,
) -> Result<Option<String>, String> {
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
                name: "cm".into(),
                key: "k".into(),
                default: Some("3".into()),
            }))
        );
        assert_eq!(
            config_ref(Some(&json!({"configMapKeyRef": {"name": "cm"}}))),
            Some(Err("valueFrom.configMapKeyRef.key is required".into()))
        );
    }
}
