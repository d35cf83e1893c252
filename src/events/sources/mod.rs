//! Event sources run inside cairn: what each EventSource asks for, and the one way every source
//! puts an event on the bus.
//!
//! Owns:
//! - [`SourceContext`] and [`emit`]: every source (webhook, github, gitlab, calendar, resource,
//!   nats) publishes through [`emit`] (or [`publish`], its form without a context), which puts
//!   the event on its [`Topic`] durably and counts it;
//! - the pure plan of the EventSources seen (see `plan` below): the endpoint table the HTTP
//!   handlers read, and per-EventSource status conditions (`SourcesProvided`, `Deployed`, as
//!   Argo Events names them).
//!
//! Invariants:
//! - [`emit`] returns only once the bus has the event durably; a webhook answers 2xx after it.
//! - An EventSource with a type cairn does not run (kafka, sqs...) is accepted: its object gets
//!   `Deployed=False` naming the type, and nothing else about it changes. A conflict (two
//!   EventSources claiming one dedicated port and path) is reported on the losing object.
//! - The plan is pure ([`plan`]): the same EventSources in any order give the same table and
//!   conditions (the oldest claim of a dedicated port+path wins: creation time, then
//!   namespace/name, then event name).
//! - Secrets are referenced here, never read: the controller resolves them.
//!
//! Cairn cannot register hooks on GitHub or GitLab (it has no route to them): a `github` or
//! `gitlab` source serves the endpoint; its hook is created by hand in the repository's settings.
//! Fields that only drive that registration (`repositories`, `apiToken`, `active`...) are kept on
//! the object and ignored.

pub mod calendar;
pub mod controller;
pub mod git;
pub mod nats;
pub mod resource;
pub mod webhook;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use http::Method;
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::events::bus::{AnyBus, Bus, BusError, Topic};
use crate::events::event::Event;
use crate::events::types::EventSource;
use crate::store::Store;

/// Source types cairn runs. Any other key of an EventSource's spec is a type it accepts and
/// reports as not run (`Deployed=False`).
pub const SUPPORTED_TYPES: &[&str] = &[
    "webhook", "github", "gitlab", "calendar", "resource", "nats",
];

/// Spec fields of an EventSource that are not source types.
const NON_SOURCE_FIELDS: &[&str] = &["eventBusName", "replicas", "template", "service"];

/// Argo's condition types on an EventSource.
pub const CONDITION_SOURCES_PROVIDED: &str = "SourcesProvided";
/// See [`CONDITION_SOURCES_PROVIDED`].
pub const CONDITION_DEPLOYED: &str = "Deployed";

/// What a running source needs: where it belongs and the shared handles.
#[derive(Clone)]
pub struct SourceContext {
    /// Namespace of the EventSource.
    pub namespace: String,
    /// Name of the EventSource.
    pub event_source: String,
    /// The bus events go to.
    pub bus: AnyBus,
    /// cairn's store (a calendar's last fire time, say).
    pub store: Store,
    /// The cluster client (resource sources watch through it; Secrets are read with it).
    pub client: kube::Client,
}

impl std::fmt::Debug for SourceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceContext")
            .field("namespace", &self.namespace)
            .field("event_source", &self.event_source)
            .finish_non_exhaustive()
    }
}

impl SourceContext {
    /// The topic of `event_name` in this EventSource.
    pub fn topic(&self, event_name: &str) -> Topic {
        Topic::new(&self.namespace, &self.event_source, event_name)
    }
}

/// Errors of running sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The bus refused or failed to store the event.
    #[error(
        "event source {namespace}/{event_source}, event {event_name}: publishing failed: {source}"
    )]
    Publish {
        /// Namespace of the EventSource.
        namespace: String,
        /// Name of the EventSource.
        event_source: String,
        /// The event's name.
        event_name: String,
        /// The bus error.
        #[source]
        source: BusError,
    },
}

impl SourceError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SourceError::Publish { source, .. } => source.metric_label(),
        }
    }
}

/// Publishes `event` as `event_name` of the context's EventSource; returns its bus sequence
/// number once it is durable. Counts `cairn_events_published_total{type}` (or
/// `cairn_events_publish_failed_total{type, reason}`) and `cairn_events_publish_seconds`.
pub async fn emit(ctx: &SourceContext, event_name: &str, event: Event) -> Result<u64, SourceError> {
    publish(&ctx.bus, &ctx.topic(event_name), event).await
}

/// [`emit`] without a [`SourceContext`]: what the webhook handlers use (they hold the bus only).
pub async fn publish(bus: &AnyBus, topic: &Topic, event: Event) -> Result<u64, SourceError> {
    let topic = topic.clone();
    let kind = event.context.type_.clone();
    let start = Instant::now();
    let result = bus.publish(&topic, &event).await;
    metrics::histogram!("cairn_events_publish_seconds").record(start.elapsed().as_secs_f64());
    match result {
        Ok(seq) => {
            metrics::counter!("cairn_events_published_total", "type" => kind).increment(1);
            tracing::debug!(topic = %topic, seq, id = %event.context.id, "event published");
            Ok(seq)
        }
        Err(source) => {
            metrics::counter!("cairn_events_publish_failed_total", "type" => kind, "reason" => source.metric_label())
                .increment(1);
            tracing::warn!(topic = %topic, error = %source, "event not published");
            Err(SourceError::Publish {
                namespace: topic.namespace,
                event_source: topic.event_source,
                event_name: topic.event_name,
                source,
            })
        }
    }
}

/// Which HTTP source an endpoint belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointKind {
    /// `spec.webhook`: optional bearer token (`authSecret`).
    Webhook,
    /// `spec.github`: `X-Hub-Signature-256` with `webhookSecret`.
    Github,
    /// `spec.gitlab`: `X-Gitlab-Token` equal to `secretToken`.
    Gitlab,
}

impl EndpointKind {
    /// The spec key and the event's CloudEvents `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointKind::Webhook => "webhook",
            EndpointKind::Github => "github",
            EndpointKind::Gitlab => "gitlab",
        }
    }
}

/// A key of a Secret in the EventSource's namespace (Kubernetes' `SecretKeySelector`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// The Secret's name.
    pub name: String,
    /// The key in its data.
    pub key: String,
}

/// One HTTP endpoint an EventSource asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Namespace of the EventSource.
    pub namespace: String,
    /// Name of the EventSource.
    pub event_source: String,
    /// The event's name (the key under `spec.<type>`).
    pub event_name: String,
    /// webhook, github or gitlab.
    pub kind: EndpointKind,
    /// The spec's `endpoint` without its leading `/` (served under
    /// `/api/events/<namespace>/<eventsource>/<path>`, and as `/<path>` on `port`).
    pub path: String,
    /// The one method accepted (default `POST`).
    pub method: Method,
    /// A dedicated port, when the spec sets one and no older EventSource claims it with the
    /// same path.
    pub port: Option<u16>,
    /// `authSecret` (webhook), `webhookSecret` (github) or `secretToken` (gitlab).
    pub secret: Option<SecretRef>,
    /// `maxPayloadSize`, when set.
    pub max_payload: Option<usize>,
    /// github/gitlab `events`: accepted event names (empty or `*`: all).
    pub events: Vec<String>,
    /// `metadata`, passed along in the event's data.
    pub metadata: BTreeMap<String, String>,
}

/// A calendar, resource or nats source: a task the controller runs per event.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// Namespace of the EventSource.
    pub namespace: String,
    /// Name of the EventSource.
    pub event_source: String,
    /// The event's name.
    pub event_name: String,
    /// `calendar`, `resource` or `nats`.
    pub kind: TaskKind,
    /// The event's settings as written (the task parses them).
    pub spec: Value,
}

/// The kinds of sources run as tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskKind {
    /// `spec.calendar`.
    Calendar,
    /// `spec.resource`.
    Resource,
    /// `spec.nats`.
    Nats,
}

/// A problem that keeps (part of) an EventSource from running, for its `Deployed` condition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Condition reason (`UnsupportedType`, `UnsupportedField`, `EndpointConflict`,
    /// `ListenFailed`, `SecretUnavailable`, `SourceFailed`).
    pub reason: &'static str,
    /// What is wrong, naming the field or object.
    pub message: String,
}

/// What the plan says about one EventSource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceVerdict {
    /// Spec errors (for `SourcesProvided=False`), each naming its field.
    pub invalid: Vec<String>,
    /// Why parts do not run (for `Deployed=False`).
    pub problems: Vec<Problem>,
    /// Whether the spec has any source at all.
    pub has_sources: bool,
}

/// The plan of every EventSource seen.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Every HTTP endpoint, ordered by (namespace, event source, event name).
    pub endpoints: Vec<Endpoint>,
    /// Calendar, resource and nats sources.
    pub tasks: Vec<TaskSpec>,
    /// Per EventSource `(namespace, name)`.
    pub verdicts: BTreeMap<(String, String), SourceVerdict>,
}

/// The plan of `sources`: endpoints (conflicting dedicated ports resolved), tasks and verdicts.
pub fn plan(sources: &[EventSource]) -> Plan {
    let mut ordered: Vec<&EventSource> = sources.iter().collect();
    ordered.sort_by_key(|es| {
        (
            es.metadata.creation_timestamp.as_ref().map(|t| t.0),
            es.metadata.namespace.clone().unwrap_or_default(),
            es.metadata.name.clone().unwrap_or_default(),
        )
    });
    let mut out = Plan::default();
    // (port, path) → (namespace, event source, event name) of the first claim.
    let mut claims: BTreeMap<(u16, String), (String, String, String)> = BTreeMap::new();
    for es in ordered {
        let ns = es.metadata.namespace.clone().unwrap_or_default();
        let name = es.metadata.name.clone().unwrap_or_default();
        let mut verdict = SourceVerdict::default();
        let (mut endpoints, tasks) = read_source(es, &ns, &name, &mut verdict);
        let mut routes = BTreeSet::new();
        for ep in &mut endpoints {
            if !routes.insert(ep.path.clone()) {
                verdict.invalid.push(format!(
                    "spec.{}.{}.endpoint: /{} is already used by another event of this EventSource",
                    ep.kind.as_str(),
                    ep.event_name,
                    ep.path
                ));
                ep.path.clear();
                continue;
            }
            let Some(port) = ep.port else { continue };
            let claim = (ns.clone(), name.clone(), ep.event_name.clone());
            match claims.get(&(port, ep.path.clone())) {
                Some((ons, oname, oevent)) => {
                    verdict.problems.push(Problem {
                        reason: "EndpointConflict",
                        message: format!(
                            "spec.{}.{}: port {port} path /{} is already served for EventSource {ons}/{oname} (event {oevent}); this event is served only under /api/events/{ns}/{name}/{}",
                            ep.kind.as_str(),
                            ep.event_name,
                            ep.path,
                            ep.path
                        ),
                    });
                    ep.port = None;
                }
                None => {
                    claims.insert((port, ep.path.clone()), claim);
                }
            }
        }
        out.endpoints
            .extend(endpoints.into_iter().filter(|e| !e.path.is_empty()));
        out.tasks.extend(tasks);
        out.verdicts.insert((ns, name), verdict);
    }
    out.endpoints.sort_by(|a, b| {
        (&a.namespace, &a.event_source, &a.event_name).cmp(&(
            &b.namespace,
            &b.event_source,
            &b.event_name,
        ))
    });
    out.tasks.sort_by(|a, b| {
        (&a.namespace, &a.event_source, &a.event_name).cmp(&(
            &b.namespace,
            &b.event_source,
            &b.event_name,
        ))
    });
    out
}

/// Reads one EventSource's HTTP endpoints and tasks, recording errors and unsupported types.
fn read_source(
    es: &EventSource,
    ns: &str,
    name: &str,
    verdict: &mut SourceVerdict,
) -> (Vec<Endpoint>, Vec<TaskSpec>) {
    let mut endpoints = Vec::new();
    let mut tasks = Vec::new();
    let spec = &es.spec;
    let new = |event: &str, kind| Endpoint {
        namespace: ns.to_owned(),
        event_source: name.to_owned(),
        event_name: event.to_owned(),
        kind,
        path: String::new(),
        method: Method::POST,
        port: None,
        secret: None,
        max_payload: None,
        events: Vec::new(),
        metadata: BTreeMap::new(),
    };
    for (event, hook) in spec.webhook.iter().flatten() {
        verdict.has_sources = true;
        let mut ctx = serde_json::to_value(hook).unwrap_or(Value::Null);
        if let Some(o) = ctx.as_object_mut() {
            // `filter` is a sensor-side concern of Argo's webhook context; not an HTTP field.
            o.remove("filter");
        }
        let mut ep = new(event, EndpointKind::Webhook);
        let field = format!("spec.webhook.{event}");
        match read_http(&ctx, &field, "authSecret", &mut ep) {
            Ok(()) => endpoints.push(ep),
            Err(e) => verdict.invalid.push(e),
        }
    }
    for (type_, value) in &spec.extra {
        if NON_SOURCE_FIELDS.contains(&type_.as_str()) {
            continue;
        }
        let Some(entries) = value.as_object() else {
            verdict.has_sources = true;
            verdict.invalid.push(format!(
                "spec.{type_}: expected a map of event names to settings"
            ));
            continue;
        };
        verdict.has_sources |= !entries.is_empty();
        let kind = match type_.as_str() {
            "github" => EndpointKind::Github,
            "gitlab" => EndpointKind::Gitlab,
            "resource" => {
                for (event, settings) in entries {
                    tasks.push(TaskSpec {
                        namespace: ns.to_owned(),
                        event_source: name.to_owned(),
                        event_name: event.clone(),
                        kind: TaskKind::Resource,
                        spec: settings.clone(),
                    });
                }
                continue;
            }
            "nats" => {
                let object = format!("{ns}/{name}");
                for (event, settings) in entries {
                    match nats::NatsSpec::parse(&object, event, settings) {
                        Ok(_) => tasks.push(TaskSpec {
                            namespace: ns.to_owned(),
                            event_source: name.to_owned(),
                            event_name: event.clone(),
                            kind: TaskKind::Nats,
                            spec: settings.clone(),
                        }),
                        Err(e @ nats::NatsError::Unsupported { .. }) => {
                            verdict.problems.push(Problem {
                                reason: "UnsupportedField",
                                message: e.field_message(),
                            });
                        }
                        Err(e) => verdict.invalid.push(e.field_message()),
                    }
                }
                continue;
            }
            _ => {
                if !entries.is_empty() {
                    verdict.problems.push(Problem {
                        reason: "UnsupportedType",
                        message: format!(
                            "spec.{type_}: event source type {type_:?} is accepted but cairn does not run it (cairn runs: {})",
                            SUPPORTED_TYPES.join(", ")
                        ),
                    });
                }
                continue;
            }
        };
        let secret_field = match kind {
            EndpointKind::Github => "webhookSecret",
            _ => "secretToken",
        };
        for (event, settings) in entries {
            let field = format!("spec.{type_}.{event}");
            let mut ep = new(event, kind);
            let result = read_git(settings, &field, secret_field, &mut ep);
            match result {
                Ok(()) => endpoints.push(ep),
                Err(e) => verdict.invalid.push(e),
            }
        }
    }
    for (event, cal) in spec.calendar.iter().flatten() {
        verdict.has_sources = true;
        tasks.push(TaskSpec {
            namespace: ns.to_owned(),
            event_source: name.to_owned(),
            event_name: event.clone(),
            kind: TaskKind::Calendar,
            spec: serde_json::to_value(cal).unwrap_or(Value::Null),
        });
    }
    (endpoints, tasks)
}

/// github/gitlab settings: the HTTP part is under `webhook`; the secret and `events` beside it.
fn read_git(
    settings: &Value,
    field: &str,
    secret_field: &str,
    ep: &mut Endpoint,
) -> Result<(), String> {
    let Some(obj) = settings.as_object() else {
        return Err(format!("{field}: expected an object"));
    };
    let hook = obj
        .get("webhook")
        .ok_or_else(|| format!("{field}.webhook: required (the endpoint cairn serves)"))?;
    read_http(hook, &format!("{field}.webhook"), "", ep)?;
    ep.secret = read_secret(obj.get(secret_field), &format!("{field}.{secret_field}"))?;
    if let Some(events) = obj.get("events") {
        let list = events
            .as_array()
            .ok_or_else(|| format!("{field}.events: expected a list of event names"))?;
        for (i, e) in list.iter().enumerate() {
            let e = e
                .as_str()
                .ok_or_else(|| format!("{field}.events[{i}]: expected a string"))?;
            ep.events.push(e.to_owned());
        }
    }
    if let Some(meta) = obj.get("metadata") {
        ep.metadata = read_metadata(meta, &format!("{field}.metadata"))?;
    }
    Ok(())
}

/// Argo's `WebhookContext`: endpoint, method, port, `maxPayloadSize`, `metadata`, and (for
/// plain webhooks) `authSecret`.
fn read_http(
    ctx: &Value,
    field: &str,
    secret_field: &str,
    ep: &mut Endpoint,
) -> Result<(), String> {
    let Some(obj) = ctx.as_object() else {
        return Err(format!("{field}: expected an object"));
    };
    let endpoint = obj
        .get("endpoint")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let path = endpoint.trim_start_matches('/');
    if path.is_empty() {
        return Err(format!(
            "{field}.endpoint: required, a URL path such as \"/example\" (got {endpoint:?})"
        ));
    }
    if path.contains(['?', '#']) || path.split('/').any(|s| s == ".." || s == ".") {
        return Err(format!(
            "{field}.endpoint: {endpoint:?} is not a plain URL path (no query, fragment, '.' or '..' segments)"
        ));
    }
    ep.path = path.to_owned();
    if let Some(m) = obj.get("method").and_then(Value::as_str).map(str::trim)
        && !m.is_empty()
    {
        ep.method = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("{field}.method: {m:?} is not an HTTP method"))?;
    }
    match obj.get("port") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let text = match v {
                Value::String(s) => s.trim().to_owned(),
                other => other.to_string(),
            };
            if !text.is_empty() {
                let port: u16 = text.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("{field}.port: expected a port 1-65535, got {text:?}")
                })?;
                ep.port = Some(port);
            }
        }
    }
    match obj.get("maxPayloadSize") {
        None | Some(Value::Null) => {}
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            };
            let n = n.filter(|n| *n > 0).ok_or_else(|| {
                format!("{field}.maxPayloadSize: expected a positive number of bytes, got {v}")
            })?;
            ep.max_payload = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
    }
    if let Some(meta) = obj.get("metadata") {
        ep.metadata = read_metadata(meta, &format!("{field}.metadata"))?;
    }
    if !secret_field.is_empty() {
        ep.secret = read_secret(obj.get(secret_field), &format!("{field}.{secret_field}"))?;
    }
    Ok(())
}

fn read_metadata(v: &Value, field: &str) -> Result<BTreeMap<String, String>, String> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(format!("{field}.{k}: expected a string")),
            })
            .collect(),
        _ => Err(format!("{field}: expected a map of strings")),
    }
}

fn read_secret(v: Option<&Value>, field: &str) -> Result<Option<SecretRef>, String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let get = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
    };
    let (name, key) = (get("name"), get("key"));
    if name.is_empty() || key.is_empty() {
        return Err(format!(
            "{field}: expected a Secret key selector with name and key"
        ));
    }
    Ok(Some(SecretRef {
        name: name.to_owned(),
        key: key.to_owned(),
    }))
}

/// A status condition as cairn computes it (times are added by [`merge_conditions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// `SourcesProvided` or `Deployed`.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human message.
    pub message: String,
}

/// The conditions of one EventSource from its verdict.
pub fn conditions(verdict: &SourceVerdict) -> Vec<Condition> {
    let provided = if !verdict.invalid.is_empty() {
        Condition {
            type_: CONDITION_SOURCES_PROVIDED,
            status: false,
            reason: "InvalidEventSource".into(),
            message: verdict.invalid.join("; "),
        }
    } else if !verdict.has_sources {
        Condition {
            type_: CONDITION_SOURCES_PROVIDED,
            status: false,
            reason: "InvalidEventSource".into(),
            message: "spec: no event sources are defined".into(),
        }
    } else {
        Condition {
            type_: CONDITION_SOURCES_PROVIDED,
            status: true,
            reason: String::new(),
            message: String::new(),
        }
    };
    let mut problems = verdict.problems.clone();
    problems.sort();
    problems.dedup();
    let deployed = match problems.first() {
        None if verdict.invalid.is_empty() && verdict.has_sources => Condition {
            type_: CONDITION_DEPLOYED,
            status: true,
            reason: "Running".into(),
            message: "run by cairn".into(),
        },
        None => Condition {
            type_: CONDITION_DEPLOYED,
            status: false,
            reason: "InvalidEventSource".into(),
            message: "the invalid sources are not run (see SourcesProvided)".into(),
        },
        Some(first) => Condition {
            type_: CONDITION_DEPLOYED,
            status: false,
            reason: first.reason.into(),
            message: problems
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        },
    };
    vec![provided, deployed]
}

/// `.status.conditions` for `wanted` given the current ones: `None` when nothing changed (same
/// types, statuses, reasons and messages), else the new list, keeping `lastTransitionTime` of
/// conditions whose status did not change and keeping conditions of other types as they are.
pub fn merge_conditions(
    current: &[Value],
    wanted: &[Condition],
    now: Timestamp,
) -> Option<Vec<Value>> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let mut changed = false;
    let mut out: Vec<Value> = current
        .iter()
        .filter(|c| !wanted.iter().any(|w| text(c, "type") == w.type_))
        .cloned()
        .collect();
    for w in wanted {
        let status = if w.status { "True" } else { "False" };
        let old = current.iter().find(|c| text(c, "type") == w.type_);
        let same_status = old.is_some_and(|o| text(o, "status") == status);
        let same = same_status
            && old
                .is_some_and(|o| text(o, "reason") == w.reason && text(o, "message") == w.message);
        changed |= !same;
        let time = match old {
            Some(o) if same_status => o
                .get("lastTransitionTime")
                .cloned()
                .unwrap_or_else(|| json!(now.to_string())),
            _ => json!(now.to_string()),
        };
        let mut c = json!({"type": w.type_, "status": status, "lastTransitionTime": time});
        if !w.reason.is_empty() {
            c["reason"] = json!(w.reason);
        }
        if !w.message.is_empty() {
            c["message"] = json!(w.message);
        }
        out.push(c);
    }
    out.sort_by_key(|c| text(c, "type"));
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn es(v: Value) -> EventSource {
        serde_json::from_value(v).expect("EventSource")
    }

    fn meta(ns: &str, name: &str, created: &str) -> Value {
        json!({"namespace": ns, "name": name, "creationTimestamp": created})
    }

    fn webhook(ns: &str, name: &str, created: &str, hooks: Value) -> EventSource {
        es(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": meta(ns, name, created),
            "spec": {"webhook": hooks}
        }))
    }

    #[test]
    fn webhook_github_gitlab_endpoints_are_read_as_argo_writes_them() {
        let source = es(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": meta("ev", "mixed", "2026-01-01T00:00:00Z"),
            "spec": {
                "service": {"ports": [{"port": 12000, "targetPort": 12000}]},
                "webhook": {"example": {
                    "endpoint": "/example", "method": "post", "port": "12000",
                    "authSecret": {"name": "tok", "key": "token"}, "maxPayloadSize": 2048,
                    "metadata": {"team": "ml"}
                }},
                "github": {"gh": {
                    "repositories": [{"owner": "o", "names": ["r"]}],
                    "webhook": {"endpoint": "/push", "port": "13000", "method": "POST", "url": "http://x"},
                    "events": ["push"], "webhookSecret": {"name": "gh", "key": "secret"},
                    "apiToken": {"name": "gh", "key": "token"}
                }},
                "gitlab": {"gl": {
                    "projects": ["1"],
                    "webhook": {"endpoint": "/gl", "method": "POST"},
                    "events": ["PushEvents"], "secretToken": {"name": "gl", "key": "t"}
                }}
            }
        }));
        let p = plan(&[source]);
        assert_eq!(p.endpoints.len(), 3);
        let by = |name: &str| {
            p.endpoints
                .iter()
                .find(|e| e.event_name == name)
                .expect("endpoint")
        };
        let w = by("example");
        assert_eq!(
            (w.kind, w.path.as_str(), &w.method, w.port),
            (EndpointKind::Webhook, "example", &Method::POST, Some(12000))
        );
        assert_eq!(
            w.secret,
            Some(SecretRef {
                name: "tok".into(),
                key: "token".into()
            })
        );
        assert_eq!(w.max_payload, Some(2048));
        assert_eq!(w.metadata.get("team").map(String::as_str), Some("ml"));
        let g = by("gh");
        assert_eq!(
            (g.kind, g.path.as_str(), g.port, g.events.clone()),
            (
                EndpointKind::Github,
                "push",
                Some(13000),
                vec!["push".to_owned()]
            )
        );
        assert_eq!(g.secret.as_ref().map(|s| s.name.as_str()), Some("gh"));
        let l = by("gl");
        assert_eq!((l.kind, l.port), (EndpointKind::Gitlab, None));
        assert_eq!(l.secret.as_ref().map(|s| s.key.as_str()), Some("t"));
        let v = &p.verdicts[&("ev".to_owned(), "mixed".to_owned())];
        assert!(v.invalid.is_empty() && v.problems.is_empty(), "{v:?}");
        let c = conditions(v);
        assert!(c.iter().all(|c| c.status), "{c:?}");
    }

    #[test]
    fn unsupported_types_are_accepted_and_named_in_deployed() {
        let source = es(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": meta("ev", "queues", "2026-01-01T00:00:00Z"),
            "spec": {
                "kafka": {"k": {"url": "kafka:9092", "topic": "t"}},
                "webhook": {"w": {"endpoint": "/w", "method": "POST"}}
            }
        }));
        let p = plan(&[source]);
        // The supported part still runs.
        assert_eq!(p.endpoints.len(), 1);
        let v = &p.verdicts[&("ev".to_owned(), "queues".to_owned())];
        let c = conditions(v);
        assert_eq!(c[0].type_, CONDITION_SOURCES_PROVIDED);
        assert!(c[0].status);
        assert_eq!(c[1].type_, CONDITION_DEPLOYED);
        assert!(!c[1].status);
        assert_eq!(c[1].reason, "UnsupportedType");
        assert!(
            c[1].message.contains("\"kafka\"") && c[1].message.contains("does not run"),
            "{}",
            c[1].message
        );
    }

    #[test]
    fn invalid_fields_are_named() {
        let source = webhook(
            "ev",
            "bad",
            "2026-01-01T00:00:00Z",
            json!({
                "noendpoint": {"method": "POST"},
                "badport": {"endpoint": "/p", "port": "http"},
                "badsecret": {"endpoint": "/s", "authSecret": {"name": "x"}},
                "badsize": {"endpoint": "/z", "maxPayloadSize": "-1"},
                "traversal": {"endpoint": "/a/../b"},
                "ok": {"endpoint": "/ok"}
            }),
        );
        let p = plan(&[source]);
        assert_eq!(
            p.endpoints
                .iter()
                .map(|e| e.event_name.as_str())
                .collect::<Vec<_>>(),
            ["ok"]
        );
        let v = &p.verdicts[&("ev".to_owned(), "bad".to_owned())];
        let all = v.invalid.join("\n");
        for field in [
            "spec.webhook.noendpoint.endpoint",
            "spec.webhook.badport.port",
            "spec.webhook.badsecret.authSecret",
            "spec.webhook.badsize.maxPayloadSize",
            "spec.webhook.traversal.endpoint",
        ] {
            assert!(all.contains(field), "{field} missing in {all}");
        }
        let c = conditions(v);
        assert!(!c[0].status && !c[1].status);
        assert_eq!(c[0].reason, "InvalidEventSource");
        // No sources at all.
        let empty =
            es(json!({"metadata": meta("ev", "empty", "2026-01-01T00:00:00Z"), "spec": {}}));
        let p = plan(&[empty]);
        let c = conditions(&p.verdicts[&("ev".to_owned(), "empty".to_owned())]);
        assert!(c[0].message.contains("no event sources"), "{c:?}");
    }

    #[test]
    fn the_oldest_claim_of_a_port_and_path_wins_in_any_order() {
        let hook = json!({"example": {"endpoint": "/example", "method": "POST", "port": "12000"}});
        let older = webhook("a", "first", "2026-01-01T00:00:00Z", hook.clone());
        let newer = webhook("a", "second", "2026-01-02T00:00:00Z", hook.clone());
        let other_path = webhook(
            "b",
            "third",
            "2026-01-03T00:00:00Z",
            json!({"x": {"endpoint": "/other", "port": "12000"}}),
        );
        let p1 = plan(&[older.clone(), newer.clone(), other_path.clone()]);
        let p2 = plan(&[other_path, newer, older]);
        assert_eq!(p1, p2);
        let port = |ns: &str, name: &str| {
            p1.endpoints
                .iter()
                .find(|e| e.namespace == ns && e.event_source == name)
                .and_then(|e| e.port)
        };
        assert_eq!(port("a", "first"), Some(12000));
        assert_eq!(port("a", "second"), None, "served only under /api/events");
        assert_eq!(
            port("b", "third"),
            Some(12000),
            "another path shares the port"
        );
        let v = &p1.verdicts[&("a".to_owned(), "second".to_owned())];
        assert_eq!(v.problems.len(), 1);
        assert_eq!(v.problems[0].reason, "EndpointConflict");
        assert!(
            v.problems[0].message.contains("a/first"),
            "{:?}",
            v.problems
        );
        let c = conditions(v);
        assert!(c[0].status && !c[1].status);
        // Two events of one EventSource on one path: a spec error.
        let dup = webhook(
            "a",
            "dup",
            "2026-01-01T00:00:00Z",
            json!({"one": {"endpoint": "/same"}, "two": {"endpoint": "same"}}),
        );
        let p = plan(&[dup]);
        assert_eq!(p.endpoints.len(), 1);
        assert_eq!(
            p.verdicts[&("a".to_owned(), "dup".to_owned())]
                .invalid
                .len(),
            1
        );
    }

    #[test]
    fn calendar_and_resource_become_tasks() {
        let source = es(json!({
            "metadata": meta("ev", "timers", "2026-01-01T00:00:00Z"),
            "spec": {
                "calendar": {"tick": {"interval": "10s"}},
                "resource": {"cm": {"version": "v1", "resource": "configmaps", "eventTypes": ["ADD"]}}
            }
        }));
        let p = plan(&[source]);
        let kinds: Vec<_> = p
            .tasks
            .iter()
            .map(|t| (t.event_name.as_str(), t.kind))
            .collect();
        assert_eq!(
            kinds,
            [("cm", TaskKind::Resource), ("tick", TaskKind::Calendar)]
        );
        assert_eq!(p.tasks[1].spec["interval"], "10s");
        assert!(
            conditions(&p.verdicts[&("ev".to_owned(), "timers".to_owned())])
                .iter()
                .all(|c| c.status)
        );
    }

    #[test]
    fn conditions_are_written_only_when_they_change() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("time");
        let t1: Timestamp = "2026-01-02T00:00:00Z".parse().expect("time");
        let ok = conditions(&SourceVerdict {
            has_sources: true,
            ..Default::default()
        });
        let first = merge_conditions(&[], &ok, t0).expect("new conditions are written");
        assert_eq!(first.len(), 2);
        assert_eq!(first[0]["type"], CONDITION_DEPLOYED);
        assert_eq!(first[1]["type"], CONDITION_SOURCES_PROVIDED);
        assert_eq!(
            merge_conditions(&first, &ok, t1),
            None,
            "unchanged: no write"
        );
        // Deployed turns False: its time moves, SourcesProvided keeps its own.
        let failing = conditions(&SourceVerdict {
            has_sources: true,
            problems: vec![Problem {
                reason: "ListenFailed",
                message: "port".into(),
            }],
            ..Default::default()
        });
        let second = merge_conditions(&first, &failing, t1).expect("changed");
        assert_eq!(second[0]["status"], "False");
        assert_eq!(second[0]["reason"], "ListenFailed");
        assert_eq!(second[0]["lastTransitionTime"], t1.to_string());
        assert_eq!(second[1]["lastTransitionTime"], t0.to_string());
        // Conditions of other types (another writer's) are kept.
        let mut foreign = second.clone();
        foreign.push(json!({"type": "Other", "status": "True"}));
        let kept = merge_conditions(&foreign, &ok, t1).expect("changed");
        assert!(kept.iter().any(|c| c["type"] == "Other"));
    }

    #[test]
    fn plan_ignores_creation_time_ties_by_name() {
        let mut a = webhook(
            "n",
            "a",
            "2026-01-01T00:00:00Z",
            json!({"e": {"endpoint": "/e", "port": "1"}}),
        );
        let b = webhook(
            "n",
            "b",
            "2026-01-01T00:00:00Z",
            json!({"e": {"endpoint": "/e", "port": "1"}}),
        );
        let p = plan(&[b.clone(), a.clone()]);
        assert!(
            p.verdicts[&("n".to_owned(), "a".to_owned())]
                .problems
                .is_empty()
        );
        // Without a creation time (never from the API server), ordering is by name still.
        a.metadata.creation_timestamp = None::<Time>;
        let p = plan(&[b, a]);
        assert!(
            p.verdicts[&("n".to_owned(), "a".to_owned())]
                .problems
                .is_empty()
        );
    }
}
