//! `spec.podDisruptionBudget` of a Workflow: the policy/v1 PodDisruptionBudget cairn keeps
//! for the workflow's pods while it runs (Argo's `createPDBResource` / `deletePDBResource`).
//!
//! Argo semantics (field docs of `WorkflowSpec.podDisruptionBudget`, example
//! default-pdb-support): the PDB is named after the Workflow, in its namespace, with the given
//! spec (`minAvailable` / `maxUnavailable` / `unhealthyPodEvictionPolicy`); an empty or missing
//! `selector` becomes `matchLabels: {workflows.argoproj.io/workflow: <name>}` (the label every
//! step pod carries). It is created when the workflow starts and deleted when it completes.
//!
//! cairn adds an owner reference to the Workflow, so deleting the Workflow removes the PDB even
//! when the controller was down at completion. The spec is the effective one: a
//! `workflowTemplateRef`'s (stored in `status.storedWorkflowTemplateSpec`) when the Workflow's
//! own has none.
//!
//! Pure: the controller shell creates [`budget`] (an existing one of that name is success) on
//! the pass that starts the workflow and deletes it (a missing one is success) on the pass
//! that archives it.

use std::collections::BTreeMap;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use serde_json::Value;

use super::node::LABEL_WORKFLOW;
use super::types::{Workflow, WorkflowSpec};

/// Errors of a `podDisruptionBudget` spec.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PdbError {
    /// The field is not a PodDisruptionBudget spec.
    #[error(
        "workflow {workflow}: spec.podDisruptionBudget is not a PodDisruptionBudgetSpec: {message}"
    )]
    Invalid {
        /// `namespace/name`.
        workflow: String,
        /// The decoder's message.
        message: String,
    },
}

impl PdbError {
    /// The label of this error in metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PdbError::Invalid { .. } => "invalid",
        }
    }
}

/// The effective `podDisruptionBudget` of `wf` (its own, else the stored WorkflowTemplate's).
pub fn spec_of(wf: &Workflow) -> Option<&Value> {
    let own = wf.spec.extra.get("podDisruptionBudget");
    let stored = || {
        wf.status
            .as_ref()?
            .stored_workflow_template_spec
            .as_ref()?
            .get("podDisruptionBudget")
    };
    own.or_else(stored).filter(|v| !v.is_null())
}

/// Checks the `podDisruptionBudget` of an effective spec (the operator fails a workflow with a
/// malformed one when it starts, as Argo errors it at creation).
pub fn check(spec: &WorkflowSpec) -> Result<(), String> {
    match spec
        .extra
        .get("podDisruptionBudget")
        .filter(|v| !v.is_null())
    {
        None => Ok(()),
        Some(v) => serde_json::from_value::<k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec>(
            v.clone(),
        )
        .map(drop)
        .map_err(|e| format!("spec.podDisruptionBudget: {e}")),
    }
}

/// The PodDisruptionBudget to keep while `wf` runs, `None` when it asks for none.
pub fn budget(wf: &Workflow) -> Result<Option<PodDisruptionBudget>, PdbError> {
    let Some(spec) = spec_of(wf) else {
        return Ok(None);
    };
    let name = wf.metadata.name.clone().unwrap_or_default();
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let mut spec: k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec =
        serde_json::from_value(spec.clone()).map_err(|e| PdbError::Invalid {
            workflow: format!("{namespace}/{name}"),
            message: e.to_string(),
        })?;
    let empty = spec.selector.as_ref().is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
            && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
    });
    if empty {
        spec.selector = Some(LabelSelector {
            match_labels: Some([(LABEL_WORKFLOW.to_owned(), name.clone())].into()),
            match_expressions: None,
        });
    }
    Ok(Some(PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace),
            labels: Some([(LABEL_WORKFLOW.to_owned(), name.clone())].into()),
            owner_references: wf.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "argoproj.io/v1alpha1".into(),
                    kind: "Workflow".into(),
                    name,
                    uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    use super::*;

    fn wf(spec: Value, status: Option<Value>) -> Workflow {
        let mut v = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "wf-1", "namespace": "ml", "uid": "u-1"},
            "spec": spec,
        });
        if let Some(s) = status {
            v["status"] = s;
        }
        serde_json::from_value(v).expect("workflow")
    }

    #[test]
    fn no_field_no_budget() {
        assert_eq!(budget(&wf(json!({"entrypoint": "main"}), None)), Ok(None));
    }

    #[test]
    fn the_budget_selects_the_workflows_pods_and_is_owned_by_it() {
        let pdb = budget(&wf(
            json!({"podDisruptionBudget": {"minAvailable": 9999}}),
            None,
        ))
        .expect("valid")
        .expect("a budget");
        assert_eq!(pdb.metadata.name.as_deref(), Some("wf-1"));
        assert_eq!(pdb.metadata.namespace.as_deref(), Some("ml"));
        let owner = &pdb.metadata.owner_references.expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Workflow", "u-1")
        );
        let spec = pdb.spec.expect("spec");
        assert_eq!(spec.min_available, Some(IntOrString::Int(9999)));
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels),
            Some([(LABEL_WORKFLOW.to_owned(), "wf-1".to_owned())].into())
        );
    }

    #[test]
    fn a_given_selector_is_kept_and_a_stored_template_spec_counts() {
        let pdb = budget(&wf(
            json!({"podDisruptionBudget": {
                "maxUnavailable": "50%",
                "selector": {"matchLabels": {"app": "x"}},
            }}),
            None,
        ))
        .expect("valid")
        .expect("a budget");
        let spec = pdb.spec.expect("spec");
        assert_eq!(
            spec.max_unavailable,
            Some(IntOrString::String("50%".into()))
        );
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels),
            Some([("app".to_owned(), "x".to_owned())].into())
        );

        let from_template = wf(
            json!({"workflowTemplateRef": {"name": "t"}}),
            Some(
                json!({"storedWorkflowTemplateSpec": {"podDisruptionBudget": {"minAvailable": 1}}}),
            ),
        );
        assert!(budget(&from_template).expect("valid").is_some());
    }

    #[test]
    fn a_malformed_spec_is_an_error_naming_the_workflow() {
        let err = budget(&wf(
            json!({"podDisruptionBudget": {"minAvailable": [1]}}),
            None,
        ))
        .expect_err("invalid");
        assert!(
            err.to_string()
                .contains("workflow ml/wf-1: spec.podDisruptionBudget"),
            "{err}"
        );
    }
}
