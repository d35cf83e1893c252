//! The `resource` event source: events from watching Kubernetes objects of one
//! group/version/resource, with Argo Events' semantics.
//!
//! Owns: checking a `spec.resource.<event>` entry into a [`ResourceSpec`]; the label selector it
//! sends to the API server; the pure [`Tracker`] that turns watch events into ADD / UPDATE /
//! DELETE changes; the pure filter [`passes`]; the event a change produces ([`resource_event`]);
//! and the per-event task [`run`] (discovery of the resource, a watch through kube's dynamic API).
//!
//! Semantics (Argo Events' resource source, looked up in its docs and sources):
//! - `group` (empty: the core group), `version` and `resource` (plural) name what is watched;
//!   `namespace` limits it to one namespace (all when empty; ignored for cluster-scoped kinds).
//!   `version`, `resource` and `eventTypes` are required.
//! - `eventTypes`: `ADD`, `UPDATE`, `DELETE`. The first list of the watch yields ADD for every
//!   object (as an informer's does). An update whose resourceVersion did not change is not an
//!   event. A relist after the watch expired yields the changes it reveals: ADD for new
//!   objects, UPDATE for changed ones, DELETE for vanished ones (an object recreated under its
//!   name is a DELETE then an ADD).
//! - `filter.labels`: a label selector evaluated by the API server; operations `=`/`==` (the
//!   default), `!=`, `in`/`notin` (comma-separated values), `exists`, `!` (does not exist),
//!   `gt`, `lt`.
//! - `filter.prefix` (object name), `filter.createdBy` (created at or before), `filter.fields`
//!   (gjson path into the object; the value is a regex searched in the field's text; operation
//!   `=`/`==` must match, `!=` must not; a missing field never passes), `filter.afterStart`: only
//!   changes whose time is not before the source started — ADD: creation time; UPDATE: the
//!   latest managed-fields time; DELETE: the deletion timestamp (else now).
//! - The event: type `resource`, source the EventSource, subject the event name, data
//!   `{"type", "body", "oldBody", "group", "version", "resource", "metadata"?}` (`oldBody` is the
//!   previous object for UPDATE, else null; `metadata` only when set). `context.time` is the
//!   change's time (the rule above).
//!
//! Where cairn differs, deliberately: a field requirement without an operation means `=` (Argo
//! never matches it); field operations other than `=`, `==`, `!=` and label operations Argo does
//! not know are refused when the spec is checked (Argo logs and never matches); numbers and
//! booleans match against their JSON text (Argo matches an empty string); UPDATE times include
//! server-side-apply entries (Argo counts only `Update` ones, so an applied change looked old);
//! the start time for `afterStart` is taken to the whole second, as Kubernetes timestamps are.
//!
//! Event ids: `event_id(namespace, eventsource, event, "<TYPE>/<uid>/<resourceVersion>")`, so
//! the same change seen again (a restart's first list re-adds every object) is the same event
//! and triggers nothing twice.
//!
//! Invariants: [`ResourceSpec::parse`], [`Tracker`] and [`passes`] are pure; [`run`] retries
//! discovery, the watch (kube's default back-off) and publishing with bounded back-off and never
//! panics on what the API server sends.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersion;
use kube::discovery::{self, ApiResource, Scope};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use super::{SourceContext, SourceError, emit};
use crate::events::event::{Event, EventContext, JSON_CONTENT_TYPE, SPEC_VERSION, event_id};
use crate::events::types::{ResourceEventSource, Selector};
use crate::workflow::expr::Regex;

/// Back-off bounds for discovery and publishing retries.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Errors of the resource source.
#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    /// A field of the resource entry is invalid.
    #[error("eventsource {object}: spec.resource.{event}.{field}: {problem}")]
    Spec {
        /// `<namespace>/<eventsource>`.
        object: String,
        /// The event name (key under `spec.resource`).
        event: String,
        /// The field (`version`, `filter.labels[0].operation`...).
        field: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// The API server does not serve the group/version/resource.
    #[error("eventsource {object}: spec.resource.{event}: {gvr}: {detail}")]
    NotServed {
        /// `<namespace>/<eventsource>`.
        object: String,
        /// The event name.
        event: String,
        /// `group/version/resource`.
        gvr: String,
        /// What discovery answered.
        detail: String,
    },
}

impl ResourceError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ResourceError::Spec { .. } => "spec",
            ResourceError::NotServed { .. } => "not_served",
        }
    }
}

/// A change type of the resource source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    /// An object appeared.
    Add,
    /// An object changed.
    Update,
    /// An object went away.
    Delete,
}

impl EventType {
    /// Argo's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Add => "ADD",
            EventType::Update => "UPDATE",
            EventType::Delete => "DELETE",
        }
    }
}

/// A field requirement: a gjson path whose text must (or must not) match a regex.
#[derive(Clone, Debug)]
struct FieldRequirement {
    path: String,
    regex: Regex,
    negate: bool,
}

/// A checked resource entry.
#[derive(Clone, Debug)]
pub struct ResourceSpec {
    /// API group ("" for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (plural).
    pub resource: String,
    /// Namespace watched (`None`: all).
    pub namespace: Option<String>,
    /// Change types emitted.
    pub event_types: BTreeSet<EventType>,
    /// Label selector sent to the API server.
    pub label_selector: Option<String>,
    prefix: Option<String>,
    fields: Vec<FieldRequirement>,
    created_by: Option<Timestamp>,
    after_start: bool,
    metadata: BTreeMap<String, String>,
}

impl ResourceSpec {
    /// Checks a resource entry. `object` is `<namespace>/<eventsource>`, `event` its key under
    /// `spec.resource`.
    pub fn parse(
        object: &str,
        event: &str,
        spec: &ResourceEventSource,
    ) -> Result<ResourceSpec, ResourceError> {
        let err = |field: &str, problem: String| ResourceError::Spec {
            object: object.to_owned(),
            event: event.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let nonempty = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let version = nonempty(&spec.version)
            .ok_or_else(|| err("version", "required (the API version, e.g. v1)".to_owned()))?;
        let resource = nonempty(&spec.resource).ok_or_else(|| {
            err(
                "resource",
                "required (the plural resource name, e.g. configmaps)".to_owned(),
            )
        })?;
        let group = nonempty(&spec.group).unwrap_or_default();
        let namespace = nonempty(&spec.namespace);

        let types = spec.event_types.as_deref().unwrap_or(&[]);
        if types.is_empty() {
            return Err(err(
                "eventTypes",
                "required: a list of ADD, UPDATE, DELETE".to_owned(),
            ));
        }
        let mut event_types = BTreeSet::new();
        for (i, t) in types.iter().enumerate() {
            let ty = match t.as_str() {
                "ADD" => EventType::Add,
                "UPDATE" => EventType::Update,
                "DELETE" => EventType::Delete,
                other => {
                    return Err(err(
                        &format!("eventTypes[{i}]"),
                        format!("{other:?}: expected ADD, UPDATE or DELETE"),
                    ));
                }
            };
            event_types.insert(ty);
        }

        let filter = spec.filter.clone().unwrap_or_default();
        let mut requirements = Vec::new();
        for (i, sel) in filter.labels.iter().flatten().enumerate() {
            requirements
                .push(label_requirement(sel).map_err(|p| err(&format!("filter.labels[{i}]"), p))?);
        }
        let label_selector = (!requirements.is_empty()).then(|| requirements.join(","));

        let mut fields = Vec::new();
        for (i, sel) in filter.fields.iter().flatten().enumerate() {
            let field = format!("filter.fields[{i}]");
            if sel.key.trim().is_empty() {
                return Err(err(
                    &format!("{field}.key"),
                    "required (a gjson path into the object, e.g. metadata.name)".to_owned(),
                ));
            }
            let negate = match sel.operation.as_deref().unwrap_or("") {
                "" | "=" | "==" => false,
                "!=" => true,
                other => {
                    return Err(err(
                        &format!("{field}.operation"),
                        format!("{other:?}: expected =, == or != (fields are matched by regex)"),
                    ));
                }
            };
            let pattern = sel.value.clone().unwrap_or_default();
            let regex = Regex::new(&pattern).map_err(|e| {
                err(
                    &format!("{field}.value"),
                    format!("{pattern:?}: not a valid regular expression: {e}"),
                )
            })?;
            fields.push(FieldRequirement {
                path: sel.key.clone(),
                regex,
                negate,
            });
        }

        let created_by = match nonempty(&filter.created_by) {
            None => None,
            Some(text) => Some(text.parse::<Timestamp>().map_err(|_| {
                err(
                    "filter.createdBy",
                    format!("{text:?}: expected an RFC 3339 time such as 2026-01-02T15:04:05Z"),
                )
            })?),
        };

        let metadata = match spec.extra.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(err(
                        &format!("metadata.{k}"),
                        format!("expected a string, found {v}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(err(
                    "metadata",
                    format!("expected a map of strings, found {other}"),
                ));
            }
        };

        Ok(ResourceSpec {
            group,
            version,
            resource,
            namespace,
            event_types,
            label_selector,
            prefix: nonempty(&filter.prefix),
            fields,
            created_by,
            after_start: filter.after_start.unwrap_or(false),
            metadata,
        })
    }

    /// `group/version/resource` (core: `version/resource`), for messages.
    pub fn gvr(&self) -> String {
        if self.group.is_empty() {
            format!("{}/{}", self.version, self.resource)
        } else {
            format!("{}/{}/{}", self.group, self.version, self.resource)
        }
    }
}

/// One label requirement in the API server's selector syntax.
fn label_requirement(sel: &Selector) -> Result<String, String> {
    let key = sel.key.trim();
    if key.is_empty() {
        return Err("key: required (a label key)".to_owned());
    }
    if key.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')')) {
        return Err(format!("key: {key:?} is not a label key"));
    }
    let value = sel.value.as_deref().unwrap_or("").trim();
    let plain = |v: &str| -> Result<(), String> {
        if v.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '=' | '!' | '(' | ')')) {
            Err(format!("value: {v:?} is not a label value"))
        } else {
            Ok(())
        }
    };
    let op = sel.operation.as_deref().unwrap_or("").trim();
    match op {
        "" | "=" | "==" => plain(value).map(|()| format!("{key}={value}")),
        "!=" => plain(value).map(|()| format!("{key}!={value}")),
        "in" | "notin" => {
            let values: Vec<&str> = value.split(',').map(str::trim).collect();
            for v in &values {
                plain(v)?;
            }
            Ok(format!("{key} {op} ({})", values.join(",")))
        }
        "exists" | "!" if value.is_empty() => Ok(if op == "!" {
            format!("!{key}")
        } else {
            key.to_owned()
        }),
        "exists" | "!" => Err(format!("value: must be empty with operation {op:?}")),
        "gt" | "lt" => {
            if value.parse::<i64>().is_err() {
                return Err(format!(
                    "value: {value:?}: expected an integer with operation {op:?}"
                ));
            }
            Ok(format!(
                "{key}{}{value}",
                if op == "gt" { ">" } else { "<" }
            ))
        }
        other => Err(format!(
            "operation: {other:?}: expected =, ==, !=, in, notin, exists, !, gt or lt"
        )),
    }
}

/// One change of a watched object.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// What happened.
    pub kind: EventType,
    /// The object (as last seen, for DELETE).
    pub object: Value,
    /// The previous object (UPDATE only).
    pub old: Option<Value>,
}

/// What a watch has shown so far, turning watch events into changes. Pure.
#[derive(Debug, Default)]
pub struct Tracker {
    known: BTreeMap<String, Value>,
    relisted: Option<HashSet<String>>,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn object_key(obj: &Value) -> String {
    format!("{}/{}", meta_str(obj, "namespace"), meta_str(obj, "name"))
}

impl Tracker {
    /// The changes `event` reveals.
    pub fn observe(&mut self, event: watcher::Event<Value>) -> Vec<Change> {
        match event {
            watcher::Event::Init => {
                self.relisted = Some(HashSet::new());
                Vec::new()
            }
            watcher::Event::InitApply(obj) => {
                if let Some(seen) = &mut self.relisted {
                    seen.insert(object_key(&obj));
                }
                self.apply(obj)
            }
            watcher::Event::Apply(obj) => self.apply(obj),
            watcher::Event::InitDone => {
                let Some(seen) = self.relisted.take() else {
                    return Vec::new();
                };
                let gone: Vec<String> = self
                    .known
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect();
                gone.into_iter()
                    .filter_map(|k| self.known.remove(&k))
                    .map(|object| Change {
                        kind: EventType::Delete,
                        object,
                        old: None,
                    })
                    .collect()
            }
            watcher::Event::Delete(obj) => {
                self.known.remove(&object_key(&obj));
                vec![Change {
                    kind: EventType::Delete,
                    object: obj,
                    old: None,
                }]
            }
        }
    }

    fn apply(&mut self, obj: Value) -> Vec<Change> {
        let key = object_key(&obj);
        match self.known.insert(key, obj.clone()) {
            None => vec![Change {
                kind: EventType::Add,
                object: obj,
                old: None,
            }],
            Some(old) if meta_str(&old, "uid") != meta_str(&obj, "uid") => vec![
                Change {
                    kind: EventType::Delete,
                    object: old,
                    old: None,
                },
                Change {
                    kind: EventType::Add,
                    object: obj,
                    old: None,
                },
            ],
            Some(old) if meta_str(&old, "resourceVersion") == meta_str(&obj, "resourceVersion") => {
                Vec::new()
            }
            Some(old) => vec![Change {
                kind: EventType::Update,
                object: obj,
                old: Some(old),
            }],
        }
    }
}

fn meta_time(obj: &Value, field: &str) -> Option<Timestamp> {
    meta_str(obj, field).parse().ok()
}

/// When a change happened (Argo's rule, see the module docs); `now` for a DELETE without a
/// deletion timestamp.
pub fn change_time(change: &Change, now: Timestamp) -> Timestamp {
    let obj = &change.object;
    let created = meta_time(obj, "creationTimestamp");
    match change.kind {
        EventType::Add => created.unwrap_or(now),
        EventType::Delete => meta_time(obj, "deletionTimestamp").unwrap_or(now),
        EventType::Update => {
            let managed = obj
                .get("metadata")
                .and_then(|m| m.get("managedFields"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|f| {
                    matches!(
                        f.get("operation").and_then(Value::as_str),
                        Some("Update" | "Apply")
                    )
                })
                .filter_map(|f| f.get("time").and_then(Value::as_str)?.parse().ok());
            managed.chain(created).max().unwrap_or(now)
        }
    }
}

/// Whether `change` is emitted: `Err` says why not. `start` is when the source started.
pub fn passes(
    spec: &ResourceSpec,
    change: &Change,
    start: Timestamp,
    now: Timestamp,
) -> Result<(), String> {
    if !spec.event_types.contains(&change.kind) {
        return Err(format!("event type {} not watched", change.kind.as_str()));
    }
    let obj = &change.object;
    let name = meta_str(obj, "name");
    if let Some(prefix) = &spec.prefix
        && !name.starts_with(prefix.as_str())
    {
        return Err(format!("name {name:?} does not start with {prefix:?}"));
    }
    if spec.after_start {
        let start = Timestamp::from_second(start.as_second()).unwrap_or(start);
        let at = change_time(change, now);
        if at < start {
            return Err(format!(
                "changed at {at}, before the source started ({start})"
            ));
        }
    }
    if let Some(limit) = spec.created_by {
        match meta_time(obj, "creationTimestamp") {
            Some(created) if created > limit => {
                return Err(format!("created at {created}, after createdBy {limit}"));
            }
            _ => {}
        }
    }
    for req in &spec.fields {
        let Some(value) = crate::gjson::get(obj, &req.path) else {
            return Err(format!("field {:?} is missing", req.path));
        };
        let text = crate::gjson::string(&value);
        let matched = req.regex.is_match(&text);
        if matched == req.negate {
            return Err(format!(
                "field {:?} = {text:?} {} the filter",
                req.path,
                if req.negate {
                    "matches"
                } else {
                    "does not match"
                }
            ));
        }
    }
    Ok(())
}

/// The event for `change` of resource `event_name` of EventSource `namespace/event_source`.
pub fn resource_event(
    namespace: &str,
    event_source: &str,
    event_name: &str,
    spec: &ResourceSpec,
    change: &Change,
    now: Timestamp,
) -> Event {
    let obj = &change.object;
    let delivery = format!(
        "{}/{}/{}",
        change.kind.as_str(),
        meta_str(obj, "uid"),
        meta_str(obj, "resourceVersion")
    );
    let mut data = json!({
        "type": change.kind.as_str(),
        "body": obj,
        "oldBody": change.old.clone().unwrap_or(Value::Null),
        "group": spec.group,
        "version": spec.version,
        "resource": spec.resource,
    });
    if !spec.metadata.is_empty() {
        data["metadata"] = json!(spec.metadata);
    }
    Event {
        context: EventContext {
            id: event_id(namespace, event_source, event_name, &delivery),
            source: event_source.to_owned(),
            specversion: SPEC_VERSION.to_owned(),
            type_: "resource".to_owned(),
            subject: event_name.to_owned(),
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            time: change_time(change, now),
        },
        data,
    }
}

/// The object as JSON, with `apiVersion`/`kind` filled in when the list response left them out.
fn object_json(obj: &DynamicObject, ar: &ApiResource) -> Option<Value> {
    let mut v = serde_json::to_value(obj).ok()?;
    if let Some(map) = v.as_object_mut() {
        map.entry("apiVersion")
            .or_insert_with(|| Value::String(ar.api_version.clone()));
        map.entry("kind")
            .or_insert_with(|| Value::String(ar.kind.clone()));
    }
    Some(v)
}

/// How long discovery keeps asking for a group/version/resource the API server does not serve
/// (a CRD applied together with the EventSource may not be established yet) before the source
/// fails with [`ResourceError::NotServed`].
pub const NOT_SERVED_GRACE: Duration = Duration::from_secs(120);

/// Finds the resource's kind and scope; retries transient failures with back-off, and fails when
/// the API server still does not serve it after [`NOT_SERVED_GRACE`].
async fn discover(
    client: &kube::Client,
    spec: &ResourceSpec,
    object: &str,
    event: &str,
) -> Result<(ApiResource, bool), ResourceError> {
    let gv = GroupVersion::gv(&spec.group, &spec.version);
    let began = tokio::time::Instant::now();
    let mut backoff = RETRY_MIN;
    loop {
        let problem = match discovery::pinned_group(client, &gv).await {
            Ok(group) => {
                let found = group
                    .versioned_resources(&spec.version)
                    .into_iter()
                    .find(|(ar, _)| ar.plural == spec.resource);
                match found {
                    Some((ar, caps)) => return Ok((ar, caps.scope == Scope::Namespaced)),
                    None => Some(format!(
                        "the API server serves no resource {:?} in {}",
                        spec.resource,
                        gv.api_version()
                    )),
                }
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Some(format!(
                "the API server does not serve {}",
                gv.api_version()
            )),
            Err(error) => {
                tracing::warn!(object, event, gvr = %spec.gvr(), error = %error, retry_in_ms = backoff.as_millis() as u64, "resource discovery failed; retrying");
                None
            }
        };
        if let Some(detail) = problem {
            if began.elapsed() >= NOT_SERVED_GRACE {
                return Err(ResourceError::NotServed {
                    object: object.to_owned(),
                    event: event.to_owned(),
                    gvr: spec.gvr(),
                    detail,
                });
            }
            tracing::info!(object, event, gvr = %spec.gvr(), detail = %detail, "resource not served (yet); asking again");
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// Runs resource `event_name` of the context's EventSource: watches the objects and emits the
/// changes that pass the filter. Returns `Err` for an invalid spec, or for a resource the API
/// server still does not serve after [`NOT_SERVED_GRACE`] (before anything is emitted);
/// otherwise runs until the task is dropped.
pub async fn run(
    ctx: SourceContext,
    event_name: String,
    spec: ResourceEventSource,
) -> Result<(), ResourceError> {
    let object = format!("{}/{}", ctx.namespace, ctx.event_source);
    let parsed = ResourceSpec::parse(&object, &event_name, &spec)?;
    let start = Timestamp::now();
    let (ar, namespaced) = discover(&ctx.client, &parsed, &object, &event_name).await?;
    let api: Api<DynamicObject> = match (&parsed.namespace, namespaced) {
        (Some(ns), true) => Api::namespaced_with(ctx.client.clone(), ns, &ar),
        _ => Api::all_with(ctx.client.clone(), &ar),
    };
    let mut config = watcher::Config::default();
    if let Some(sel) = &parsed.label_selector {
        config = config.labels(sel);
    }
    tracing::info!(namespace = %ctx.namespace, event_source = %ctx.event_source, event = %event_name, gvr = %parsed.gvr(), labels = parsed.label_selector.as_deref().unwrap_or(""), "resource source watching");
    let stream = watcher(api, config).default_backoff();
    let (ctx_ref, name) = (&ctx, event_name.as_str());
    let ar_ref = &ar;
    let events = stream.filter_map(move |item| async move {
        match item {
            Ok(ev) => Some(Ok(match ev {
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitDone => watcher::Event::InitDone,
                watcher::Event::InitApply(o) => watcher::Event::InitApply(object_json(&o, ar_ref)?),
                watcher::Event::Apply(o) => watcher::Event::Apply(object_json(&o, ar_ref)?),
                watcher::Event::Delete(o) => watcher::Event::Delete(object_json(&o, ar_ref)?),
            })),
            Err(e) => Some(Err(e)),
        }
    });
    process(
        events,
        &ctx.namespace,
        &ctx.event_source,
        name,
        &parsed,
        start,
        move |event| emit(ctx_ref, name, event),
    )
    .await;
    Ok(())
}

/// Feeds watch events through the [`Tracker`] and [`passes`], publishing what passes;
/// publishing failures are retried with back-off (the watch waits meanwhile).
async fn process<S, F, Fut>(
    events: S,
    namespace: &str,
    event_source: &str,
    event_name: &str,
    spec: &ResourceSpec,
    start: Timestamp,
    mut publish: F,
) where
    S: futures::Stream<Item = Result<watcher::Event<Value>, watcher::Error>>,
    F: FnMut(Event) -> Fut,
    Fut: Future<Output = Result<u64, SourceError>>,
{
    let mut tracker = Tracker::default();
    let mut events = std::pin::pin!(events);
    while let Some(item) = events.next().await {
        let ev = match item {
            Ok(ev) => ev,
            Err(error) => {
                metrics::counter!("cairn_events_resource_watch_errors_total").increment(1);
                tracing::warn!(namespace, event_source, event = event_name, error = %error, "resource watch failed; the watch restarts with back-off");
                continue;
            }
        };
        for change in tracker.observe(ev) {
            let now = Timestamp::now();
            if let Err(reason) = passes(spec, &change, start, now) {
                tracing::debug!(namespace, event_source, event = event_name, object = %object_key(&change.object), reason = %reason, "resource change filtered out");
                continue;
            }
            let event = resource_event(namespace, event_source, event_name, spec, &change, now);
            let mut backoff = RETRY_MIN;
            while let Err(error) = publish(event.clone()).await {
                tracing::warn!(namespace, event_source, event = event_name, error = %error, retry_in_ms = backoff.as_millis() as u64, "resource event not published; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests;
