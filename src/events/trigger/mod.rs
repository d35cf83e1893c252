//! Triggers: what a sensor does when a trigger's conditions hold, one file per kind.
//!
//! Kinds cairn runs: `argoWorkflow` (operation `submit`: a Workflow from `source.resource`,
//! inline or with `workflowTemplateRef`), `k8s` (create / update / patch / delete any object),
//! `http` and `log`. Every other kind Argo Events has (kafka, nats, slack, awsLambda...) is
//! reported by [`check`] so the Sensor's status says the trigger does not run.
//!
//! A firing ([`Firing`]) is a trigger and the events it fires with. [`Executor::execute`] makes
//! one attempt: trigger-level `parameters` are applied to the trigger template (dest paths
//! such as `http.url`), then the kind's own parameters to its resource or payload; the result is
//! an [`OutcomeResult`] for the sensor history. Retries ([`retry`]) and pacing ([`rate`]) are
//! the runner's, around it.
//!
//! Effectively once: an object a trigger creates is named from (sensor, trigger, fired event
//! ids) by [`params::workflow_name`] when the resource has no fixed name, so a replay after a
//! crash meets AlreadyExists and records the same success instead of creating a second object.
//! HTTP and log triggers have no such key: the runner asks the history before firing.
//!
//! Invariants: no input panics; errors name the sensor's trigger and the field; HTTP URLs are
//! recorded without credentials.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::event::Event;
use super::history::OutcomeResult;
use super::params::{self, ParamError};
use super::types::{Trigger, TriggerTemplate};

pub mod argo_workflow;
pub mod http;
pub mod k8s;
pub mod log;
pub mod rate;
pub mod retry;

/// Trigger kinds Argo Events has and cairn does not run.
const UNSUPPORTED_KINDS: &[&str] = &[
    "awsLambda",
    "azureEventHubs",
    "azureServiceBus",
    "custom",
    "email",
    "kafka",
    "nats",
    "openWhisk",
    "pulsar",
    "slack",
];

/// The kind of a trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `argoWorkflow`.
    ArgoWorkflow,
    /// `k8s`.
    K8s,
    /// `http`.
    Http,
    /// `log`.
    Log,
}

/// Why a trigger failed.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The trigger spec cannot work (a missing or wrong field); retrying does not help.
    #[error("trigger {trigger}: {field}: {message}")]
    Invalid {
        /// Trigger name.
        trigger: String,
        /// Field path within the trigger.
        field: String,
        /// What was expected.
        message: String,
    },
    /// A parameter could not be resolved or applied (its path is missing from the event...).
    #[error(transparent)]
    Parameter(#[from] ParamError),
    /// The trigger kind, operation or field is not supported by cairn.
    #[error("trigger {trigger}: {what} is not supported by cairn")]
    Unsupported {
        /// Trigger name.
        trigger: String,
        /// What is unsupported.
        what: String,
    },
    /// The Kubernetes API refused or failed.
    #[error("trigger {trigger}: {action}: {message}")]
    Kube {
        /// Trigger name.
        trigger: String,
        /// What was being done (`create Workflow ns/name`).
        action: String,
        /// The apiserver's message.
        message: String,
        /// Whether a retry may succeed (not a 4xx refusal other than 409/429).
        transient: bool,
    },
    /// A Kubernetes trigger ran without a cluster client.
    #[error("trigger {trigger}: no Kubernetes cluster is configured")]
    NoCluster {
        /// Trigger name.
        trigger: String,
    },
    /// The HTTP request failed or was answered with a status the trigger does not accept.
    #[error("trigger {trigger}: {method} {url}: {message}")]
    Http {
        /// Trigger name.
        trigger: String,
        /// Method.
        method: String,
        /// URL without credentials.
        url: String,
        /// What happened.
        message: String,
    },
}

impl TriggerError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            TriggerError::Invalid { .. } => "invalid",
            TriggerError::Parameter(_) => "parameter",
            TriggerError::Unsupported { .. } => "unsupported",
            TriggerError::Kube { .. } => "kube",
            TriggerError::NoCluster { .. } => "no_cluster",
            TriggerError::Http { .. } => "http",
        }
    }

    /// Whether another attempt may succeed. Spec, parameter and support problems are
    /// deterministic: the runner records them at once instead of retrying.
    pub fn retryable(&self) -> bool {
        match self {
            TriggerError::Invalid { .. }
            | TriggerError::Parameter(_)
            | TriggerError::Unsupported { .. }
            | TriggerError::NoCluster { .. } => false,
            TriggerError::Kube { transient, .. } => *transient,
            TriggerError::Http { .. } => true,
        }
    }
}

/// The kind of a trigger template, or why cairn cannot run it (for the Sensor's status).
pub fn check(template: &TriggerTemplate) -> Result<Kind, String> {
    let mut kinds = Vec::new();
    if template.argo_workflow.is_some() {
        kinds.push(Kind::ArgoWorkflow);
    }
    if template.k8s.is_some() {
        kinds.push(Kind::K8s);
    }
    if template.http.is_some() {
        kinds.push(Kind::Http);
    }
    if template.log.is_some() {
        kinds.push(Kind::Log);
    }
    let other: Vec<&str> = UNSUPPORTED_KINDS
        .iter()
        .copied()
        .filter(|k| template.extra.contains_key(*k))
        .collect();
    let name = &template.name;
    if let Some(k) = other.first() {
        return Err(format!(
            "trigger {name}: template.{k}: the {k} trigger is not supported by cairn \
             (supported: argoWorkflow, k8s, http, log)"
        ));
    }
    match kinds.as_slice() {
        [one] => {
            let spec = match one {
                Kind::ArgoWorkflow => argo_workflow::check(template),
                Kind::K8s => k8s::check(template),
                Kind::Http => http::check(template),
                Kind::Log => Ok(()),
            };
            spec.map(|()| *one)
        }
        [] => Err(format!(
            "trigger {name}: template: no trigger kind set (expected one of argoWorkflow, k8s, \
             http, log)"
        )),
        _ => Err(format!(
            "trigger {name}: template: more than one trigger kind set (expected exactly one)"
        )),
    }
}

/// A trigger firing: the trigger and the events it fires with.
#[derive(Clone, Debug)]
pub struct Firing<'a> {
    /// Sensor namespace.
    pub sensor_namespace: &'a str,
    /// Sensor name.
    pub sensor: &'a str,
    /// The trigger.
    pub trigger: &'a Trigger,
    /// Events by dependency name.
    pub events: &'a BTreeMap<String, Event>,
    /// Event ids by dependency name (the effectively-once key).
    pub event_ids: &'a BTreeMap<String, String>,
}

impl Firing<'_> {
    /// The trigger's name.
    pub fn name(&self) -> &str {
        self.trigger
            .template
            .as_ref()
            .map_or("", |t| t.name.as_str())
    }

    /// The trigger template with trigger-level `parameters` applied (Argo applies those to
    /// the whole template, so `dest` paths start with the kind: `http.url`).
    pub fn template(&self) -> Result<TriggerTemplate, TriggerError> {
        let Some(template) = &self.trigger.template else {
            return Err(TriggerError::Invalid {
                trigger: String::new(),
                field: "template".into(),
                message: "a trigger template is required".into(),
            });
        };
        let params = self.trigger.parameters.as_deref().unwrap_or_default();
        if params.is_empty() {
            return Ok(template.clone());
        }
        let invalid = |message: String| TriggerError::Invalid {
            trigger: template.name.clone(),
            field: "parameters".into(),
            message,
        };
        let mut doc = serde_json::to_value(template).map_err(|e| invalid(e.to_string()))?;
        params::apply(&mut doc, params, self.events, &template.name, "parameters")?;
        serde_json::from_value(doc).map_err(|e| invalid(format!("the parameterized template: {e}")))
    }
}

/// Runs triggers: holds the Kubernetes client (when a cluster is configured) and the HTTP
/// client. Cheap to clone.
#[derive(Clone)]
pub struct Executor {
    client: Option<kube::Client>,
    http: reqwest::Client,
    log: Arc<log::LogState>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("cluster", &self.client.is_some())
            .finish()
    }
}

impl Executor {
    /// An executor; without `client` the Kubernetes kinds fail with [`TriggerError::NoCluster`].
    pub fn new(client: Option<kube::Client>, http: reqwest::Client) -> Executor {
        Executor {
            client,
            http,
            log: Arc::new(log::LogState::default()),
        }
    }

    /// One attempt of a firing.
    pub async fn execute(&self, firing: &Firing<'_>) -> Result<OutcomeResult, TriggerError> {
        let template = firing.template()?;
        let kind = check(&template).map_err(|what| TriggerError::Unsupported {
            trigger: template.name.clone(),
            what,
        })?;
        let cluster = || {
            self.client.as_ref().ok_or_else(|| TriggerError::NoCluster {
                trigger: template.name.clone(),
            })
        };
        match kind {
            Kind::Log => Ok(self.log.fire(firing, &template)),
            Kind::Http => http::fire(&self.http, firing, &template).await,
            Kind::ArgoWorkflow => argo_workflow::fire(cluster()?, firing, &template).await,
            Kind::K8s => k8s::fire(cluster()?, firing, &template).await,
        }
    }
}

/// The `source.resource` of a k8s or argoWorkflow trigger, parameterized with its kind's
/// `parameters` (dest paths within the resource).
pub(crate) fn resource(
    spec: &Value,
    firing: &Firing<'_>,
    field: &str,
) -> Result<Value, TriggerError> {
    let name = firing.name().to_owned();
    let source = &spec["source"];
    let Some(resource) = source.get("resource").filter(|r| !r.is_null()) else {
        let other = source
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .unwrap_or_default();
        return Err(if other.is_empty() {
            TriggerError::Invalid {
                trigger: name,
                field: format!("{field}.source.resource"),
                message: "an inline resource is required".into(),
            }
        } else {
            TriggerError::Unsupported {
                trigger: name,
                what: format!("{field}.source.{other} (only source.resource is)"),
            }
        });
    };
    let mut resource = match resource {
        // A resource written as a YAML/JSON string block.
        Value::String(s) => {
            serde_saphyr::from_str::<Value>(s).map_err(|e| TriggerError::Invalid {
                trigger: name.clone(),
                field: format!("{field}.source.resource"),
                message: format!("not a YAML or JSON object: {e}"),
            })?
        }
        other => other.clone(),
    };
    if !resource.is_object() {
        return Err(TriggerError::Invalid {
            trigger: name,
            field: format!("{field}.source.resource"),
            message: "expected an object".into(),
        });
    }
    let params: Vec<super::types::TriggerParameter> = match spec.get("parameters") {
        None | Some(Value::Null) => Vec::new(),
        Some(p) => serde_json::from_value(p.clone()).map_err(|e| TriggerError::Invalid {
            trigger: name.clone(),
            field: format!("{field}.parameters"),
            message: e.to_string(),
        })?,
    };
    params::apply(
        &mut resource,
        &params,
        firing.events,
        &name,
        &format!("{field}.parameters"),
    )?;
    Ok(resource)
}

/// Fixes the name of a resource without one from (sensor, trigger, event ids), removing
/// `generateName`; adds Argo Events' sensor/trigger labels. Returns the name.
pub(crate) fn name_resource(resource: &mut Value, firing: &Firing<'_>) -> String {
    let name = params::workflow_name(
        resource,
        firing.sensor_namespace,
        firing.sensor,
        firing.name(),
        firing.event_ids,
    );
    if let Some(meta) = resource
        .as_object_mut()
        .map(|o| {
            o.entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()))
        })
        .and_then(Value::as_object_mut)
    {
        meta.remove("generateName");
        meta.insert("name".into(), Value::String(name.clone()));
        let labels = meta
            .entry("labels")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(labels) = labels.as_object_mut() {
            labels.insert(
                "events.argoproj.io/sensor".into(),
                Value::String(firing.sensor.to_owned()),
            );
            labels.insert(
                "events.argoproj.io/trigger".into(),
                Value::String(firing.name().to_owned()),
            );
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> TriggerTemplate {
        serde_json::from_value(v).expect("template")
    }

    #[test]
    fn check_names_kinds_and_refuses_others() {
        assert_eq!(
            check(&template(json!({"name": "t", "log": {}}))),
            Ok(Kind::Log)
        );
        assert_eq!(
            check(&template(json!({"name": "t", "http": {"url": "http://x"}}))),
            Ok(Kind::Http)
        );
        let kafka =
            check(&template(json!({"name": "t", "kafka": {"url": "k:9092"}}))).expect_err("kafka");
        assert!(
            kafka.contains("template.kafka") && kafka.contains("not supported"),
            "{kafka}"
        );
        let none = check(&template(json!({"name": "t"}))).expect_err("none");
        assert!(none.contains("no trigger kind"), "{none}");
        let two = check(&template(
            json!({"name": "t", "log": {}, "http": {"url": "u"}}),
        ))
        .expect_err("two");
        assert!(two.contains("more than one"), "{two}");
    }

    #[test]
    fn trigger_parameters_apply_to_the_template_and_resources_get_fixed_names() {
        let trigger: Trigger = serde_json::from_value(json!({
            "template": {"name": "t", "k8s": {"operation": "create", "source": {"resource": {
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cm-"}}},
                "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.v"}, "dest": "data.v"}]}},
            "parameters": [{"src": {"dependencyName": "d", "dataKey": "body.op"}, "dest": "k8s.operation"}]
        }))
        .expect("trigger");
        let event = Event::test_webhook(
            "w",
            "e",
            "id1",
            "2026-01-01T00:00:00Z",
            json!({"v": 7, "op": "update"}),
        );
        let events = BTreeMap::from([("d".to_owned(), event)]);
        let ids = BTreeMap::from([("d".to_owned(), "id1".to_owned())]);
        let firing = Firing {
            sensor_namespace: "ns",
            sensor: "s",
            trigger: &trigger,
            events: &events,
            event_ids: &ids,
        };
        let t = firing.template().expect("template");
        let spec = t.k8s.expect("k8s");
        assert_eq!(spec["operation"], "update");
        let mut res = resource(&spec, &firing, "k8s").expect("resource");
        assert_eq!(res["data"]["v"], "7");
        let name = name_resource(&mut res, &firing);
        assert!(name.starts_with("cm-") && name.len() == 13, "{name}");
        assert_eq!(res["metadata"]["name"], name.as_str());
        assert!(res["metadata"].get("generateName").is_none());
        assert_eq!(res["metadata"]["labels"]["events.argoproj.io/sensor"], "s");
        // The same events always name the same object.
        let mut again = resource(&spec, &firing, "k8s").expect("resource");
        assert_eq!(name_resource(&mut again, &firing), name);
    }

    #[test]
    fn other_sources_are_unsupported_and_missing_ones_invalid() {
        let trigger = Trigger::default();
        let events = BTreeMap::new();
        let firing = Firing {
            sensor_namespace: "ns",
            sensor: "s",
            trigger: &trigger,
            events: &events,
            event_ids: &BTreeMap::new(),
        };
        let e = resource(&json!({"source": {"s3": {}}}), &firing, "k8s").expect_err("s3");
        assert!(matches!(e, TriggerError::Unsupported { .. }), "{e}");
        let e = resource(&json!({}), &firing, "k8s").expect_err("none");
        assert!(e.to_string().contains("k8s.source.resource"), "{e}");
    }
}
