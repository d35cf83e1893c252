//! `spec.workflowMetadata` of a Workflow (Argo's `updateWorkflowMetadata`): the `labels` and
//! `annotations` it sets on the Workflow object, and `labelsFrom` — labels whose value is an
//! expr-lang expression over the workflow's global variables (`workflow.name`,
//! `workflow.namespace`, `workflow.parameters.<name>`, `workflow.labels.<key>`, ...).
//!
//! Rules kept (Argo docs "Workflow Variables"/field `WorkflowMetadata`, example
//! label-value-from-workflow): the metadata of the effective spec counts (a
//! `workflowTemplateRef`'s included); `labels` are copied as they are, `labelsFrom` win over
//! them; every value must be a valid label value (at most 63 characters of `[A-Za-z0-9-_.]`,
//! alphanumeric at both ends, or empty) and an expression must give a string; any failure
//! fails the workflow at start with a message naming the label and the expression.
//!
//! Pure: the operator checks it when the workflow starts (and fails it on an error), the shell
//! writes the result onto the Workflow with the first status.
//!
//! Known difference: on the very pass that starts the workflow, `{{workflow.labels.<key>}}` of
//! a `labelsFrom` label is not yet visible to the templates (it is from the next pass on, once
//! the label is on the object).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::workflow::expr;
use crate::workflow::types::{Workflow, WorkflowSpec};
use crate::workflow::validate::{self, TemplateLookup};

/// Labels and annotations `workflowMetadata` puts on the Workflow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkflowMetadata {
    /// Labels to set (`labels`, then `labelsFrom`).
    pub labels: BTreeMap<String, String>,
    /// Annotations to set.
    pub annotations: BTreeMap<String, String>,
}

impl WorkflowMetadata {
    /// Whether there is nothing to set.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }

    /// Sets these labels and annotations in the given maps; `true` when one changed.
    pub fn apply(
        &self,
        labels: &mut BTreeMap<String, String>,
        annotations: &mut BTreeMap<String, String>,
    ) -> bool {
        let mut changed = false;
        for (from, into) in [(&self.labels, labels), (&self.annotations, annotations)] {
            for (k, v) in from {
                if into.get(k) != Some(v) {
                    into.insert(k.clone(), v.clone());
                    changed = true;
                }
            }
        }
        changed
    }
}

/// Kubernetes' label value rule (`IsValidLabelValue`).
pub fn valid_label_value(v: &str) -> bool {
    let bytes = v.as_bytes();
    if v.is_empty() {
        return true;
    }
    v.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn string_map(meta: &Value, field: &str) -> BTreeMap<String, String> {
    meta.get(field)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The labels and annotations of `spec.workflowMetadata` for `wf` running `spec` (its
/// effective spec). The error names the label and the expression.
pub fn workflow_metadata(wf: &Workflow, spec: &WorkflowSpec) -> Result<WorkflowMetadata, String> {
    let Some(meta) = spec.extra.get("workflowMetadata").filter(|m| !m.is_null()) else {
        return Ok(WorkflowMetadata::default());
    };
    let mut out = WorkflowMetadata {
        labels: string_map(meta, "labels"),
        annotations: string_map(meta, "annotations"),
    };
    for (name, value) in &out.labels {
        if !valid_label_value(value) {
            return Err(format!(
                "spec.workflowMetadata.labels.{name}: invalid label value \"{value}\""
            ));
        }
    }
    let Some(from) = meta.get("labelsFrom").and_then(Value::as_object) else {
        return Ok(out);
    };
    // The globals as Argo has them at this point: workflowMetadata's plain labels are visible,
    // the labelsFrom ones are not.
    let mut with_labels = wf.clone();
    let labels = with_labels
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new);
    for (k, v) in &out.labels {
        labels.insert(k.clone(), v.clone());
    }
    for k in from.keys() {
        labels.remove(k);
    }
    let scope = super::vars::globals(&with_labels, spec, None);
    for (name, source) in from {
        let field = format!("spec.workflowMetadata.labelsFrom.{name}.expression");
        let Some(text) = source.get("expression").and_then(Value::as_str) else {
            return Err(format!("{field} is required"));
        };
        let ast = expr::parse(text).map_err(|e| format!("{field}: {e}"))?;
        let value = match expr::eval(&ast, &scope).map_err(|e| format!("{field}: {e}"))? {
            expr::Value::Str(s) => s,
            other => {
                return Err(format!(
                    "{field}: `{text}` evaluated to {} but must be a string",
                    other.type_name()
                ));
            }
        };
        if !valid_label_value(&value) {
            return Err(format!(
                "{field}: invalid label value \"{value}\" for label '{name}'"
            ));
        }
        out.labels.insert(name.clone(), value);
    }
    Ok(out)
}

/// [`workflow_metadata`] of `wf`'s effective spec, its arguments resolved (ConfigMaps and
/// Secrets through `lookup`) as the operator resolves them when the workflow starts: what the
/// shell writes onto the Workflow.
pub fn for_start(wf: &Workflow, lookup: &dyn TemplateLookup) -> Result<WorkflowMetadata, String> {
    let mut resolved = validate::resolve(wf, lookup).map_err(|e| e.to_string())?;
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    super::config::resolve_arguments(&mut resolved.spec, &namespace, lookup)?;
    workflow_metadata(wf, &resolved.spec)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wf(spec: Value) -> Workflow {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "wf-1", "namespace": "ml", "labels": {"team": "ml"}},
            "spec": spec,
        }))
        .expect("workflow")
    }

    fn run(spec: Value) -> Result<WorkflowMetadata, String> {
        let w = wf(spec);
        workflow_metadata(&w, &w.spec)
    }

    #[test]
    fn labels_annotations_and_labels_from() {
        assert_eq!(
            run(json!({"entrypoint": "main"})),
            Ok(WorkflowMetadata::default())
        );
        let got = run(json!({
            "arguments": {"parameters": [{"name": "env", "value": "prod"}]},
            "workflowMetadata": {
                "labels": {"plain": "yes", "over": "plain"},
                "annotations": {"note": "free text: anything"},
                "labelsFrom": {
                    "by-name": {"expression": "workflow.name"},
                    "env": {"expression": "workflow.parameters.env + '-' + workflow.labels.team"},
                    "over": {"expression": "'from-expr'"},
                    "sees-plain": {"expression": "workflow.labels.plain"},
                },
            },
        }))
        .expect("metadata");
        let labels: Vec<(&str, &str)> = got
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("by-name", "wf-1"),
                ("env", "prod-ml"),
                ("over", "from-expr"),
                ("plain", "yes"),
                ("sees-plain", "yes"),
            ]
        );
        assert_eq!(got.annotations["note"], "free text: anything");
    }

    #[test]
    fn bad_expressions_and_values_are_errors_naming_the_label() {
        let cases = [
            (
                json!({"x": {"expression": "1 + 1"}}),
                "evaluated to int but must be a string",
            ),
            (
                json!({"x": {"expression": "workflow.name +"}}),
                "labelsFrom.x.expression",
            ),
            (
                json!({"x": {"expression": "'has space'"}}),
                "invalid label value \"has space\"",
            ),
            (
                json!({"x": {}}),
                "spec.workflowMetadata.labelsFrom.x.expression is required",
            ),
        ];
        for (from, want) in cases {
            let err = run(json!({"workflowMetadata": {"labelsFrom": from}})).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
        let err = run(json!({"workflowMetadata": {"labels": {"a": "-bad"}}})).unwrap_err();
        assert!(err.contains("labels.a"), "{err}");
    }

    #[test]
    fn label_values() {
        for ok in ["", "a", "a-b_c.d", "A1", &"x".repeat(63)] {
            assert!(valid_label_value(ok), "{ok}");
        }
        for bad in ["-a", "a-", "a b", "é", &"x".repeat(64)] {
            assert!(!valid_label_value(bad), "{bad}");
        }
    }
}
