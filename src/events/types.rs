//! Rust types of Argo Events' kinds (argoproj.io/v1alpha1): EventSource, Sensor and EventBus.
//!
//! Invariant: reading then writing back never drops a field. Every struct keeps the fields it
//! does not model in `extra` (flattened), optional fields are `Option` and are written only when
//! present; the many source and trigger types cairn does not implement are kept as written.
//! An explicit `null` on a modelled field reads as absent.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::k8s::{TypeTag, argo_resource};

/// Fields a struct does not model, kept verbatim.
pub type Extra = serde_json::Map<String, Value>;

/// An EventSource: named event inputs (webhooks, calendars, Git, queues...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventSource {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<EventSource>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// The sources.
    #[serde(default)]
    pub spec: EventSourceSpec,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EventsStatus>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(EventSource, "EventSource", "eventsources", namespaced);

/// The spec of an EventSource. Each source type is a map from event name to its settings;
/// types cairn does not model (github, kafka, sqs...) stay in `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSourceSpec {
    /// The EventBus to publish to ("default" when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_bus_name: Option<String>,
    /// Replicas of the event-source deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Pod template of the event-source deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Service exposing webhook ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Value>,
    /// Webhook sources by event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<BTreeMap<String, WebhookEventSource>>,
    /// Calendar sources by event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<BTreeMap<String, CalendarEventSource>>,
    /// Fields cairn does not model (other source types).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A webhook source: an HTTP endpoint that turns requests into events.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEventSource {
    /// URL path, e.g. "/example".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Port, as a string (Argo Events' spelling: `port: "12000"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// HTTP method accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// External URL (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Expression filter on the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// Fields cairn does not model (auth secret, TLS, max payload...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A calendar source: events on a cron schedule or at an interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CalendarEventSource {
    /// Cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Interval ("10s").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Dates on which no event fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusion_dates: Option<Vec<String>>,
    /// IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A resource source: events from watching Kubernetes objects of one group/version/resource.
/// Read from an entry of `spec.resource` (which [`EventSourceSpec`] keeps in `extra`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceEventSource {
    /// Namespace to watch (all namespaces when absent or empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// API group ("" for the core group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Resource (plural name, e.g. "configmaps").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Event types to emit: ADD, UPDATE, DELETE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    /// Which objects count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<ResourceFilter>,
    /// Fields cairn does not model (metadata, cluster).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The filter of a resource source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    /// Object names must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Label requirements (a server-side label selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Selector>>,
    /// Requirements on object fields (gjson path, regex value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<Selector>>,
    /// Only objects created at or before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Only changes that happened after the source started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_start: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One requirement of a resource filter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Selector {
    /// Label key, or gjson path for field requirements.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// Operator ("=" when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Value (comma-separated for in/notin; a regex for field requirements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A Sensor: event dependencies and the triggers they fire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<Sensor>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Dependencies and triggers.
    #[serde(default)]
    pub spec: SensorSpec,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EventsStatus>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(Sensor, "Sensor", "sensors", namespaced);

/// The spec of a Sensor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SensorSpec {
    /// Events the sensor waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<EventDependency>>,
    /// What to do when dependencies resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<Trigger>>,
    /// The EventBus to read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_bus_name: Option<String>,
    /// Pod template of the sensor deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Replicas of the sensor deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One event dependency of a sensor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDependency {
    /// Dependency name (used in trigger conditions).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// EventSource object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_name: Option<String>,
    /// Event name inside that EventSource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// Filters (data, exprs, context, time, script).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<EventDependencyFilter>,
    /// "and" (default) or "or" across filter kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters_logical_operator: Option<String>,
    /// Transformation applied to the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One trigger of a sensor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    /// What the trigger does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TriggerTemplate>,
    /// Parameters copied from events into the trigger template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<TriggerParameter>>,
    /// Retries of a failed trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<Value>,
    /// Trigger policy (status or labels to wait for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The action of a trigger; exactly one action field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerTemplate {
    /// Trigger name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Dependency expression ("dep-a && dep-b").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<String>,
    /// When the dependencies collected for `conditions` are forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions_reset: Option<Vec<ConditionsResetCriteria>>,
    /// Create/update/patch/delete a Kubernetes resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k8s: Option<Value>,
    /// Submit/resubmit/suspend... an Argo Workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argo_workflow: Option<Value>,
    /// Call an HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Value>,
    /// Log the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Value>,
    /// Fields cairn does not model (other action types).
    #[serde(flatten)]
    pub extra: Extra,
}

/// The filters of a dependency (Argo's `EventDependencyFilter`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDependencyFilter {
    /// Event time window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeFilter>,
    /// Expected CloudEvents context attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextFilter>,
    /// Filters on data paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<DataFilter>>,
    /// govaluate expressions over data paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exprs: Option<Vec<ExprFilter>>,
    /// "and" (default) or "or" across `data` filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_logical_operator: Option<String>,
    /// "and" (default) or "or" across `exprs` filters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expr_logical_operator: Option<String>,
    /// A Lua script (not supported by cairn: a dependency using it never matches, with a reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A daily time window `[start, stop)` (`HH:MM:SS`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeFilter {
    /// Start of the window, inclusive.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// End of the window, exclusive (before `start`: the next day).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop: String,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Expected context attributes; empty ones are not checked (id, specversion and time, which
/// Argo ignores too, stay in `extra`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextFilter {
    /// Event type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Event subject (the event name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Event source (the EventSource name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Data content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A filter on one data path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataFilter {
    /// gjson path into the event data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// "string", "number" or "bool".
    #[serde(default, rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// Accepted values (any one matches); regexes for strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Vec<String>>,
    /// ">=", ">", "=", "!=", "<", "<=" ("=" when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<String>,
    /// A Go template applied to the value (as `.Input`) before comparing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A govaluate expression over named data paths.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExprFilter {
    /// The expression.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expr: String,
    /// The variables of the expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<PayloadField>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A named gjson path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PayloadField {
    /// gjson path into the event data.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Variable name in the expression.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One `conditionsReset` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConditionsResetCriteria {
    /// Reset on a cron schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_time: Option<ConditionsResetByTime>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A cron schedule (and IANA zone, UTC by default) at which collected dependencies reset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConditionsResetByTime {
    /// Five-field cron expression.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cron: String,
    /// IANA time zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A trigger parameter: a value taken from an event and written into the trigger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerParameter {
    /// Where the value comes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<TriggerParameterSource>,
    /// Dotted path (sjson syntax) of the field to set.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dest: String,
    /// "overwrite" (default), "append" or "prepend".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The source of a parameter value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerParameterSource {
    /// The dependency whose event is read.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dependency_name: String,
    /// gjson path into the event context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_key: Option<String>,
    /// Go template over the context (`.Input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_template: Option<String>,
    /// gjson path into the event data (wins over the context ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_key: Option<String>,
    /// Go template over the data (`.Input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_template: Option<String>,
    /// Default value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Insert numbers, booleans, objects and lists as JSON rather than as their text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_raw_data: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An EventBus: the transport between event sources and sensors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventBus {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<EventBus>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Which transport.
    #[serde(default)]
    pub spec: EventBusSpec,
    /// Conditions and the connection config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<EventsStatus>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(EventBus, "EventBus", "eventbus", namespaced);

/// The spec of an EventBus; exactly one transport is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBusSpec {
    /// NATS streaming (native or exotic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats: Option<Value>,
    /// NATS JetStream managed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<Value>,
    /// An existing JetStream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream_exotic: Option<Value>,
    /// Kafka.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The status shared by EventSource, Sensor and EventBus: conditions (and the bus config).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventsStatus {
    /// Conditions (Deployed, SourcesProvided, DependenciesProvided...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Value>>,
    /// Fields cairn does not model (EventBus `config`).
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
impl EventSource {
    /// An EventSource `namespace/name` with one webhook event `event` on `port` and `endpoint`.
    pub fn test_webhook(
        namespace: &str,
        name: &str,
        event: &str,
        port: &str,
        endpoint: &str,
    ) -> Self {
        let hook = WebhookEventSource {
            endpoint: Some(endpoint.to_owned()),
            port: Some(port.to_owned()),
            method: Some("POST".to_owned()),
            ..Default::default()
        };
        EventSource {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            spec: EventSourceSpec {
                webhook: Some(BTreeMap::from([(event.to_owned(), hook)])),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip<T: serde::de::DeserializeOwned + Serialize>(input: &Value) -> Value {
        let typed: T = serde_json::from_value(input.clone()).expect("deserialize");
        serde_json::to_value(&typed).expect("serialize")
    }

    #[test]
    fn webhook_builder_uses_argo_spelling() {
        let es = EventSource::test_webhook("ev", "webhook", "example", "12000", "/example");
        let v = serde_json::to_value(&es).expect("ser");
        assert_eq!(v["kind"], "EventSource");
        assert_eq!(v["spec"]["webhook"]["example"]["port"], "12000");
        assert_eq!(roundtrip::<EventSource>(&v), v);
    }

    /// Argo Events' own webhook + workflow-trigger example shape, with unknown fields added.
    #[test]
    fn sensor_and_sources_roundtrip_with_unknown_fields() {
        let sensor = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
            "metadata": {"name": "webhook"},
            "spec": {
                "template": {"serviceAccountName": "operate-workflow-sa"},
                "dependencies": [{"name": "test-dep", "eventSourceName": "webhook", "eventName": "example",
                                  "filters": {"data": [{"path": "body.x", "type": "string", "value": ["a"]}]}, "depFuture": 1}],
                "triggers": [{
                    "template": {"name": "webhook-workflow-trigger", "conditions": "test-dep",
                                 "argoWorkflow": {"operation": "submit", "source": {"resource": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow"}}},
                                 "tmplFuture": {}},
                    "parameters": [{"src": {"dependencyName": "test-dep", "dataKey": "body"}, "dest": "spec.arguments.parameters.0.value"}],
                    "retryStrategy": {"steps": 3},
                    "trigFuture": [1]
                }],
                "specFuture": "x"
            },
            "status": {"conditions": [{"type": "Deployed", "status": "True"}], "statusFuture": 2}
        });
        assert_eq!(roundtrip::<Sensor>(&sensor), sensor);

        // Every modelled filter, reset and parameter field, each with an unknown sibling.
        let full = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
            "metadata": {"name": "full"},
            "spec": {
                "dependencies": [{"name": "d", "eventSourceName": "w", "eventName": "e",
                    "filtersLogicalOperator": "or",
                    "filters": {
                        "time": {"start": "02:30:00", "stop": "04:30:00", "tf": 1},
                        "context": {"type": "webhook", "source": "w", "id": "x", "cf": 1},
                        "data": [{"path": "body.n", "type": "number", "comparator": ">", "value": ["1"], "template": "{{ .Input }}", "df": 1},
                                 {"path": "body.m"}],
                        "exprs": [{"expr": "a == 1", "fields": [{"name": "a", "path": "a", "pf": 1}], "ef": 1}],
                        "dataLogicalOperator": "or", "exprLogicalOperator": "and", "script": "return true",
                        "filterFuture": true
                    }}],
                "triggers": [{
                    "template": {"name": "t", "conditions": "d",
                                 "conditionsReset": [{"byTime": {"cron": "59 23 * * *", "timezone": "UTC", "bf": 1}, "rf": 1}],
                                 "log": {}},
                    "parameters": [{"src": {"dependencyName": "d", "contextKey": "id", "contextTemplate": "t", "dataKey": "k",
                                            "dataTemplate": "t", "value": "v", "useRawData": true, "sf": 1},
                                    "dest": "x", "operation": "append", "pf": 1}]
                }]
            }
        });
        assert_eq!(roundtrip::<Sensor>(&full), full);

        let source = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": {"name": "mixed"},
            "spec": {
                "service": {"ports": [{"port": 12000, "targetPort": 12000}]},
                "webhook": {"example": {"port": "12000", "endpoint": "/example", "method": "POST", "authSecret": {"name": "s", "key": "k"}}},
                "calendar": {"tick": {"interval": "10s", "calFuture": 1}},
                "github": {"repo": {"owner": "o", "repository": "r"}}
            }
        });
        assert_eq!(roundtrip::<EventSource>(&source), source);

        let resource = json!({
            "namespace": "ev", "group": "", "version": "v1", "resource": "configmaps",
            "eventTypes": ["ADD", "UPDATE"], "metadata": {"k": "v"}, "resFuture": 1,
            "filter": {"prefix": "cm-", "afterStart": true, "createdBy": "2026-01-01T00:00:00Z",
                       "labels": [{"key": "app", "operation": "==", "value": "x", "selFuture": 1}],
                       "fields": [{"key": "metadata.name", "value": "a.*"}], "filterFuture": 2}
        });
        assert_eq!(roundtrip::<ResourceEventSource>(&resource), resource);

        let bus = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventBus",
            "metadata": {"name": "default"},
            "spec": {"jetstream": {"version": "latest", "replicas": 3}},
            "status": {"config": {"jetstream": {"url": "nats://x"}}}
        });
        assert_eq!(roundtrip::<EventBus>(&bus), bus);
    }
}
