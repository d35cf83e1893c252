//! The `k8s` trigger: create, update, patch or delete any Kubernetes object.
//!
//! `source.resource` (inline; a YAML/JSON string block is parsed) is parameterized by
//! `k8s.parameters`, then by `operation`:
//! - `create` (default): a resource without `metadata.name` is named from (sensor, trigger,
//!   fired event ids) by [`crate::events::params::workflow_name`] (its `generateName` as the
//!   prefix), so a replay meets AlreadyExists and records the existing object (`existed`) —
//!   never a second object. A fixed name that exists is `existed` too.
//! - `update`: the live object is replaced by the resource (its `resourceVersion` taken from
//!   the live one); when it does not exist it is created (as Argo Events does).
//! - `patch`: `patchStrategy` `application/merge-patch+json` (default) or
//!   `application/strategic-merge-patch+json` with the resource as the patch; a JSON patch
//!   (`application/json-patch+json`) is unsupported.
//! - `delete`: NotFound counts as deleted.
//!
//! The namespace is the resource's, else the sensor's. Kinds are found by discovery.
//! apiserver refusals (4xx but 409/429) are not retried: the same request would be refused again.

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde_json::Value;

use super::{Firing, TriggerError, name_resource, resource};
use crate::events::history::OutcomeResult;
use crate::events::types::TriggerTemplate;

/// Operations of the k8s trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Create,
    Update,
    Patch,
    Delete,
}

fn operation(spec: &Value) -> Result<Operation, String> {
    match spec["operation"].as_str().unwrap_or("") {
        "" | "create" => Ok(Operation::Create),
        "update" => Ok(Operation::Update),
        "patch" => Ok(Operation::Patch),
        "delete" => Ok(Operation::Delete),
        other => Err(format!(
            "{other:?} is not an operation (expected create, update, patch or delete)"
        )),
    }
}

fn patch_strategy(spec: &Value) -> Result<bool, String> {
    // true: strategic merge; false: JSON merge patch.
    match spec["patchStrategy"].as_str().unwrap_or("") {
        "" | "application/merge-patch+json" => Ok(false),
        "application/strategic-merge-patch+json" => Ok(true),
        "application/json-patch+json" => Err("a JSON patch is not supported by cairn (use \
             application/merge-patch+json or application/strategic-merge-patch+json)"
            .into()),
        other => Err(format!("{other:?} is not a patch strategy")),
    }
}

/// Static checks of a `k8s` trigger (for the Sensor's status).
pub fn check(template: &TriggerTemplate) -> Result<(), String> {
    let spec = template.k8s.as_ref().unwrap_or(&Value::Null);
    let name = &template.name;
    operation(spec).map_err(|e| format!("trigger {name}: template.k8s.operation: {e}"))?;
    patch_strategy(spec).map_err(|e| format!("trigger {name}: template.k8s.patchStrategy: {e}"))?;
    super::argo_workflow::check_source(name, spec, "template.k8s")
}

/// A 4xx refusal other than Conflict and TooManyRequests.
pub(crate) fn is_refusal(code: u16) -> bool {
    (400..500).contains(&code) && code != 409 && code != 429
}

/// A [`TriggerError::Kube`] from a kube error.
pub(crate) fn kube_error(trigger: &str, action: String, e: kube::Error) -> TriggerError {
    let (message, transient) = match &e {
        kube::Error::Api(s) => (s.message.clone(), !is_refusal(s.code)),
        other => (other.to_string(), true),
    };
    TriggerError::Kube {
        trigger: trigger.to_owned(),
        action,
        message,
        transient,
    }
}

/// Creates `object` through `api`; AlreadyExists reads the existing one (`existed`).
pub(crate) async fn create_once(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    trigger: &str,
    what: &str,
) -> Result<(&'static str, DynamicObject), TriggerError> {
    let name = object.metadata.name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), object).await {
        Ok(o) => Ok(("created", o)),
        Err(kube::Error::Api(s)) if s.code == 409 && !name.is_empty() => {
            let live = api
                .get(&name)
                .await
                .map_err(|e| kube_error(trigger, format!("get {what}"), e))?;
            Ok(("existed", live))
        }
        Err(e) => Err(kube_error(trigger, format!("create {what}"), e)),
    }
}

/// Fires a `k8s` trigger.
pub async fn fire(
    client: &kube::Client,
    firing: &Firing<'_>,
    template: &TriggerTemplate,
) -> Result<OutcomeResult, TriggerError> {
    let trigger = template.name.clone();
    let spec = template.k8s.clone().unwrap_or(Value::Null);
    let invalid = |field: &str, message: String| TriggerError::Invalid {
        trigger: trigger.clone(),
        field: format!("template.k8s.{field}"),
        message,
    };
    let op = operation(&spec).map_err(|e| invalid("operation", e))?;
    let strategic = patch_strategy(&spec).map_err(|e| TriggerError::Unsupported {
        trigger: trigger.clone(),
        what: format!("template.k8s.patchStrategy: {e}"),
    })?;
    let mut res = resource(&spec, firing, "template.k8s")?;
    let api_version = res["apiVersion"].as_str().unwrap_or_default().to_owned();
    let kind = res["kind"].as_str().unwrap_or_default().to_owned();
    if api_version.is_empty() || kind.is_empty() {
        return Err(invalid(
            "source.resource",
            "apiVersion and kind are required".into(),
        ));
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let (ar, caps) = discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| kube_error(&trigger, format!("discover {api_version} {kind}"), e))?;
    let namespaced = caps.scope == Scope::Namespaced;
    let namespace = res["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(firing.sensor_namespace)
        .to_owned();
    let has_name = res["metadata"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    if op == Operation::Create || has_name {
        // Sets the sensor/trigger labels too; a fixed name is kept.
        name_resource(&mut res, firing);
    } else {
        return Err(invalid(
            "source.resource.metadata.name",
            format!("a name is required to {op:?} an object").to_lowercase(),
        ));
    }
    if let Some(meta) = res["metadata"].as_object_mut() {
        if namespaced {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        } else {
            meta.remove("namespace");
        }
    }
    let name = res["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), &namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    let object: DynamicObject = serde_json::from_value(res.clone())
        .map_err(|e| invalid("source.resource", e.to_string()))?;
    let what = format!(
        "{kind} {}{name}",
        if namespaced {
            format!("{namespace}/")
        } else {
            String::new()
        }
    );
    let action = match op {
        Operation::Create => create_once(&api, &object, &trigger, &what).await?.0,
        Operation::Update => match api.get_opt(&name).await {
            Ok(Some(live)) => {
                let mut next = object.clone();
                next.metadata.resource_version = live.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &next)
                    .await
                    .map_err(|e| kube_error(&trigger, format!("update {what}"), e))?;
                "updated"
            }
            Ok(None) => create_once(&api, &object, &trigger, &what).await?.0,
            Err(e) => return Err(kube_error(&trigger, format!("get {what}"), e)),
        },
        Operation::Patch => {
            let patch = if strategic {
                Patch::Strategic(res.clone())
            } else {
                Patch::Merge(res.clone())
            };
            api.patch(&name, &PatchParams::default(), &patch)
                .await
                .map_err(|e| kube_error(&trigger, format!("patch {what}"), e))?;
            "patched"
        }
        Operation::Delete => match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => "deleted",
            Err(kube::Error::Api(s)) if s.code == 404 => "deleted",
            Err(e) => return Err(kube_error(&trigger, format!("delete {what}"), e)),
        },
    };
    Ok(OutcomeResult::Object {
        kind,
        namespace: if namespaced { namespace } else { String::new() },
        name,
        action: action.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(v: Value) -> TriggerTemplate {
        serde_json::from_value(json!({"name": "k", "k8s": v})).expect("t")
    }

    #[test]
    fn checks_name_the_field() {
        let res = json!({"resource": {"apiVersion": "v1", "kind": "ConfigMap"}});
        assert!(check(&t(json!({"source": res}))).is_ok());
        assert!(check(&t(json!({"operation": "patch", "source": res}))).is_ok());
        let e = check(&t(json!({"operation": "explode", "source": res}))).expect_err("op");
        assert!(e.contains("template.k8s.operation"), "{e}");
        let e = check(&t(json!({"operation": "patch", "patchStrategy": "application/json-patch+json", "source": res})))
            .expect_err("json patch");
        assert!(
            e.contains("patchStrategy") && e.contains("not supported"),
            "{e}"
        );
        let e = check(&t(json!({"source": {"git": {}}}))).expect_err("git");
        assert!(e.contains("template.k8s.source.git"), "{e}");
    }

    #[test]
    fn refusals_are_not_retried_but_conflicts_are() {
        assert!(is_refusal(404) && is_refusal(422) && is_refusal(403));
        assert!(!is_refusal(409) && !is_refusal(429) && !is_refusal(500));
    }
}
