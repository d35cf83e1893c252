//! `/api/v1/events/...`: EventSources, Sensors, a sensor's history, the events on the bus, and
//! sending a test event — what `cairn eventsource|sensor|events` call.
//!
//! RBAC objects are `<namespace>/<name>`: EventSources under `eventsources`, Sensors and their
//! history under `sensors`, events under `events` with the EventSource as the object (so a
//! policy can open one source's events). Actions: `get`; `create` for sending an event.
//!
//! Invariants:
//! - Lists are filtered to the objects the caller may `get`; nothing outside them is counted or
//!   hinted at.
//! - Sending an event is the same as a request to the endpoint (same event shape, same durable
//!   publish before the answer) but authenticated as the caller and checked by RBAC, instead
//!   of by the EventSource's own secret, which the caller never needs to know.
//! - Events are read from the bus (`Bus::recent`), history from redb; reading never writes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::HeaderMap;
use jiff::Timestamp;
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::workflows::authorize;
use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::events::bus::{Bus, EventQuery, Topic};
use crate::events::event::event_id;
use crate::events::history::HistoryQuery;
use crate::events::types::{EventSource, Sensor};
use crate::k8s::objects;

/// Largest page of events or history records one request returns.
const MAX_LIMIT: usize = 1000;
/// Page size when the request names none.
const DEFAULT_LIMIT: usize = 100;

/// `?namespace=`.
#[derive(Debug, Default, Deserialize)]
pub struct NamespaceQuery {
    /// Only this namespace.
    pub namespace: Option<String>,
}

/// `?since=&limit=` of a sensor's history.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryParams {
    /// RFC 3339 time: only records at or after it.
    pub since: Option<String>,
    /// At most this many (newest first).
    pub limit: Option<usize>,
}

/// `?namespace=&source=&since=&limit=` of the event list.
#[derive(Debug, Default, Deserialize)]
pub struct EventsParams {
    /// Only events of EventSources in this namespace.
    pub namespace: Option<String>,
    /// Only events of this EventSource (`NAME` or `NAMESPACE/NAME`).
    pub source: Option<String>,
    /// RFC 3339 time: only events at or after it.
    pub since: Option<String>,
    /// At most this many (newest first).
    pub limit: Option<usize>,
}

fn allowed(state: &AppState, principal: &Principal, resource: &str, object: &str) -> bool {
    state.auth().authorize(principal, resource, "get", object)
}

fn parse_since(since: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    since
        .map(|s| {
            s.parse::<Timestamp>().map_err(|e| {
                ApiError::BadRequest(format!(
                    "since: expected an RFC 3339 time such as 2026-01-02T03:04:05Z, got {s:?} ({e})"
                ))
            })
        })
        .transpose()
}

fn limit(requested: Option<usize>) -> usize {
    requested.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn object_name<K: kube::Resource>(o: &K) -> String {
    format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any())
}

/// Objects of kind `K` the caller may `get` under `resource` (one namespace with `?namespace=`).
async fn list_visible<K>(
    state: &AppState,
    principal: &Principal,
    resource: &str,
    namespace: Option<&str>,
) -> Result<Json<Value>, ApiError>
where
    K: crate::k8s::ArgoKind
        + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let items: Vec<K> = objects::list_kind(&state.kube()?, namespace)
        .await?
        .into_iter()
        .filter(|o| allowed(state, principal, resource, &object_name(o)))
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// One object of a kind the caller may `get` (`resource`), or 404.
async fn get_visible<K>(
    state: &AppState,
    principal: &Principal,
    resource: &'static str,
    namespace: &str,
    name: &str,
) -> Result<Json<K>, ApiError>
where
    K: crate::k8s::ArgoKind
        + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    authorize(
        state,
        principal,
        resource,
        "get",
        format!("{namespace}/{name}"),
    )?;
    let kind = K::kind(&()).to_lowercase();
    objects::get_kind(&state.kube()?, namespace, name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("{kind} {namespace}/{name} not found")))
}

/// EventSources the caller may see (one namespace with `?namespace=`).
pub async fn list_eventsources(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<NamespaceQuery>,
) -> Result<Json<Value>, ApiError> {
    list_visible::<EventSource>(&state, &principal, "eventsources", q.namespace.as_deref()).await
}

/// One EventSource.
pub async fn get_eventsource(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<EventSource>, ApiError> {
    get_visible(&state, &principal, "eventsources", &namespace, &name).await
}

/// Sensors the caller may see (one namespace with `?namespace=`).
pub async fn list_sensors(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<NamespaceQuery>,
) -> Result<Json<Value>, ApiError> {
    list_visible::<Sensor>(&state, &principal, "sensors", q.namespace.as_deref()).await
}

/// One Sensor.
pub async fn get_sensor(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Sensor>, ApiError> {
    get_visible(&state, &principal, "sensors", &namespace, &name).await
}

/// A Sensor's trigger outcomes and unmatched events, newest first. The history outlives the
/// Sensor object (until retention), so a deleted sensor's history stays readable.
pub async fn sensor_history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HistoryParams>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &principal,
        "sensors",
        "get",
        format!("{namespace}/{name}"),
    )?;
    let events = events_state(&state)?;
    let query = HistoryQuery {
        since: parse_since(q.since.as_deref())?,
        limit: limit(q.limit),
    };
    let history = events.history().ok_or_else(|| {
        ApiError::NotFound("sensor history is not kept on this server".to_owned())
    })?;
    let records = history
        .list(&namespace, &name, &query)
        .map_err(|e| ApiError::Internal(format!("sensor history {namespace}/{name}: {e}")))?;
    Ok(Json(json!({ "items": records })))
}

/// Events on the bus, newest first, limited to the EventSources the caller may see events of.
pub async fn list_events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<EventsParams>,
) -> Result<Json<Value>, ApiError> {
    let events = events_state(&state)?;
    let (namespace, event_source) = match q.source.as_deref() {
        Some(s) => match s.split_once('/') {
            Some((ns, name)) => (Some(ns.to_owned()), Some(name.to_owned())),
            None => (q.namespace.clone(), Some(s.to_owned())),
        },
        None => (q.namespace.clone(), None),
    };
    let want = limit(q.limit);
    let query = EventQuery {
        namespace,
        event_source,
        since: parse_since(q.since.as_deref())?,
        // Ask for more than the page when some may be filtered out by RBAC; bounded.
        limit: MAX_LIMIT,
    };
    let stored = events
        .bus()
        .recent(&query)
        .await
        .map_err(|e| ApiError::Internal(format!("listing events: {e}")))?;
    let items: Vec<Value> = stored
        .into_iter()
        .filter(|s| {
            let object = format!("{}/{}", s.topic.namespace, s.topic.event_source);
            allowed(&state, &principal, "events", &object)
        })
        .take(want)
        .map(|s| {
            json!({
                "seq": s.seq,
                "namespace": s.topic.namespace,
                "eventSource": s.topic.event_source,
                "eventName": s.topic.event_name,
                "context": s.event.context_json(),
                "data": s.event.data,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Sends an event to an EventSource's endpoint as the caller (`cairn events send`): the body
/// is the event's payload, exactly as a request to the endpoint would give it.
pub async fn send_event(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, event_source, endpoint)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &principal,
        "events",
        "create",
        format!("{namespace}/{event_source}"),
    )?;
    let events = events_state(&state)?;
    let table = events.table();
    let path = endpoint.trim_start_matches('/');
    let live = table
        .route(&namespace, &event_source, path)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "eventsource {namespace}/{event_source} serves no endpoint /{path} (is it running \
             and is the endpoint spelled as in its spec?)"
            ))
        })?;
    if body.len() > events.max_body_bytes() {
        return Err(ApiError::BadRequest(format!(
            "body: {} bytes exceed the limit of {} bytes",
            body.len(),
            events.max_body_bytes()
        )));
    }
    let payload: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("body: expected JSON ({e})")))?
    };
    let ep = &live.endpoint;
    let delivery = hex::encode(rand::random::<[u8; 16]>());
    let id = event_id(&ep.namespace, &ep.event_source, &ep.event_name, &delivery);
    let event = crate::events::sources::webhook::build_event(
        ep,
        id.clone(),
        Timestamp::now(),
        &headers,
        payload,
    );
    let topic = Topic::new(&ep.namespace, &ep.event_source, &ep.event_name);
    let seq = crate::events::sources::publish(events.bus(), &topic, event)
        .await
        .map_err(|e| ApiError::Internal(format!("publishing to {topic}: {e}")))?;
    tracing::info!(%topic, event_id = %id, user = %principal.subject, "event sent through the API");
    Ok(Json(json!({
        "id": id,
        "seq": seq,
        "namespace": ep.namespace,
        "eventSource": ep.event_source,
        "eventName": ep.event_name,
    })))
}

fn events_state(
    state: &AppState,
) -> Result<&crate::events::sources::webhook::EventsState, ApiError> {
    state.events().ok_or_else(|| {
        ApiError::NotFound(
            "events are not running on this server ([events] enabled = false, or no cluster)"
                .to_owned(),
        )
    })
}
