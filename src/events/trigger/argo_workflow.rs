//! The `argoWorkflow` trigger: operation `submit` creates a Workflow.
//!
//! The Workflow is `source.resource` (inline, or a YAML/JSON string block), parameterized by
//! `argoWorkflow.parameters` (dest paths within the Workflow, e.g.
//! `spec.arguments.parameters.0.value`); a resource that only references a template
//! (`spec.workflowTemplateRef`) is submitted as is, and cairn's workflow controller resolves it.
//! Before creating, the referenced WorkflowTemplate (or ClusterWorkflowTemplate with
//! `clusterScope: true`) must exist, as `argo submit` checks: a missing one is a trigger error,
//! retried per `retryStrategy` and recorded.
//!
//! Effectively once: the Workflow's name is [`crate::events::params::workflow_name`] of
//! (sensor, trigger, fired event ids) unless the resource fixes one, so a replay after a crash
//! meets AlreadyExists and is recorded as the same Workflow (`existed`). The namespace is the
//! resource's, else the sensor's. Labels `events.argoproj.io/sensor` and `.../trigger` are
//! added as Argo Events adds them.
//!
//! The other operations (`submit-from`, `resubmit`, `resume`, `retry`, `suspend`,
//! `terminate`, `stop`), `args` and non-inline sources are unsupported (the Sensor's status
//! says so).

use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

use super::k8s::{create_once, kube_error};
use super::{Firing, TriggerError, name_resource, resource};
use crate::events::history::OutcomeResult;
use crate::events::types::TriggerTemplate;
use crate::k8s::{API_VERSION, GROUP, VERSION};
use crate::workflow::types::{ClusterWorkflowTemplate, WorkflowTemplate};

/// `source` must be an inline `resource` (shared with the k8s trigger).
pub(crate) fn check_source(trigger: &str, spec: &Value, field: &str) -> Result<(), String> {
    match spec["source"].as_object() {
        Some(s) if s.get("resource").is_some_and(|r| !r.is_null()) => Ok(()),
        Some(s) if !s.is_empty() => {
            let other = s.keys().next().cloned().unwrap_or_default();
            Err(format!(
                "trigger {trigger}: {field}.source.{other}: not supported by cairn (only \
                 source.resource is)"
            ))
        }
        _ => Err(format!(
            "trigger {trigger}: {field}.source.resource: an inline resource is required"
        )),
    }
}

/// Static checks of an `argoWorkflow` trigger (for the Sensor's status).
pub fn check(template: &TriggerTemplate) -> Result<(), String> {
    let spec = template.argo_workflow.as_ref().unwrap_or(&Value::Null);
    let name = &template.name;
    match spec["operation"].as_str().unwrap_or("") {
        "" | "submit" => {}
        other => {
            return Err(format!(
                "trigger {name}: template.argoWorkflow.operation: {other:?} is not supported by \
                 cairn (supported: submit)"
            ));
        }
    }
    if spec["args"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err(format!(
            "trigger {name}: template.argoWorkflow.args: argo CLI arguments are not supported \
             by cairn"
        ));
    }
    check_source(name, spec, "template.argoWorkflow")
}

/// Fires an `argoWorkflow` trigger (submit).
pub async fn fire(
    client: &kube::Client,
    firing: &Firing<'_>,
    template: &TriggerTemplate,
) -> Result<OutcomeResult, TriggerError> {
    let trigger = template.name.clone();
    check(template).map_err(|what| TriggerError::Unsupported {
        trigger: trigger.clone(),
        what,
    })?;
    let spec = template.argo_workflow.clone().unwrap_or(Value::Null);
    let mut wf = resource(&spec, firing, "template.argoWorkflow")?;
    let invalid = |field: &str, message: String| TriggerError::Invalid {
        trigger: trigger.clone(),
        field: format!("template.argoWorkflow.source.resource.{field}"),
        message,
    };
    if wf["kind"].as_str().unwrap_or("Workflow") != "Workflow" {
        return Err(invalid("kind", "expected Workflow".into()));
    }
    let namespace = wf["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(firing.sensor_namespace)
        .to_owned();
    if let Some(o) = wf.as_object_mut() {
        o.insert("apiVersion".into(), Value::String(API_VERSION.into()));
        o.insert("kind".into(), Value::String("Workflow".into()));
    }
    let name = name_resource(&mut wf, firing);
    if let Some(meta) = wf["metadata"].as_object_mut() {
        meta.insert("namespace".into(), Value::String(namespace.clone()));
    }
    let tref = &wf["spec"]["workflowTemplateRef"];
    if let Some(tname) = tref["name"].as_str().filter(|n| !n.is_empty()) {
        let cluster = tref["clusterScope"].as_bool().unwrap_or(false);
        let (kind, found) = if cluster {
            let api: Api<ClusterWorkflowTemplate> = Api::all(client.clone());
            (
                "ClusterWorkflowTemplate",
                api.get_opt(tname).await.map(|o| o.is_some()),
            )
        } else {
            let api: Api<WorkflowTemplate> = Api::namespaced(client.clone(), &namespace);
            (
                "WorkflowTemplate",
                api.get_opt(tname).await.map(|o| o.is_some()),
            )
        };
        let shown = if cluster {
            tname.to_owned()
        } else {
            format!("{namespace}/{tname}")
        };
        match found {
            Ok(true) => {}
            Ok(false) => {
                return Err(TriggerError::Kube {
                    trigger: trigger.clone(),
                    action: format!("submit Workflow {namespace}/{name}"),
                    message: format!("spec.workflowTemplateRef: {kind} {shown} not found"),
                    transient: true,
                });
            }
            Err(e) => return Err(kube_error(&trigger, format!("get {kind} {shown}"), e)),
        }
    }
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(GROUP, VERSION, "Workflow"),
        "workflows",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &ar);
    let object: DynamicObject =
        serde_json::from_value(wf).map_err(|e| invalid("metadata", e.to_string()))?;
    let what = format!("Workflow {namespace}/{name}");
    let (action, _) = create_once(&api, &object, &trigger, &what).await?;
    Ok(OutcomeResult::Object {
        kind: "Workflow".into(),
        namespace,
        name,
        action: action.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: Value) -> TriggerTemplate {
        serde_json::from_value(json!({"name": "w", "argoWorkflow": v})).expect("t")
    }

    #[test]
    fn only_submit_from_an_inline_resource_runs() {
        let res = json!({"resource": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}});
        assert!(check(&t(json!({"operation": "submit", "source": res}))).is_ok());
        assert!(check(&t(json!({"source": res}))).is_ok());
        let e = check(&t(json!({"operation": "resubmit", "source": res}))).expect_err("op");
        assert!(
            e.contains("template.argoWorkflow.operation") && e.contains("resubmit"),
            "{e}"
        );
        let e = check(&t(json!({"source": {"url": {"path": "http://x"}}}))).expect_err("url");
        assert!(e.contains("source.url"), "{e}");
        let e = check(&t(
            json!({"source": res, "args": ["--serviceaccount", "x"]}),
        ))
        .expect_err("args");
        assert!(e.contains("args"), "{e}");
    }
}
