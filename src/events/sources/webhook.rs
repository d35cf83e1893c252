//! The HTTP side of event sources: the endpoint table, the request handler of `webhook`,
//! `github` and `gitlab` sources, and the routers that serve it.
//!
//! Routes:
//! - `/api/events/<namespace>/<eventsource>/<endpoint>` on cairn's own listener (any method;
//!   the endpoint's own method is checked), mounted by `api::routes` as a public route: the
//!   EventSource's secret authenticates, not a user session;
//! - `/<endpoint>` on a dedicated port for endpoints whose spec sets `port` (as Argo's
//!   event-source pod serves them), see [`port_router`].
//!
//! A request is, in order: matched to an endpoint (404), its method checked (405), its secret
//! available (503), its bearer token (`authSecret`) or GitLab token checked (401), its body read
//! within `min([events] max_body_bytes, maxPayloadSize)` (413), its GitHub signature checked
//! (401), its body parsed (400: JSON; a `GET` takes the query parameters and a form post the form
//! fields, as Argo does), the github/gitlab `events` filter applied (200, not published), then
//! published durably and only then answered 200.
//!
//! Events: CloudEvents context (`type` = webhook/github/gitlab, `source` = EventSource name,
//! `subject` = event name) and data `{header, body}` for webhooks (`{headers, body}` for GitHub
//! and GitLab, as Argo shapes them), plus `metadata` when the source sets it. Header names are Go's
//! canonical form (`X-Github-Event`). The id is `event::event_id` over the provider's delivery
//! id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`, so a provider's redelivery is the same event)
//! or else a random 128-bit key.
//!
//! Invariants:
//! - Credentials never leave the request: `Authorization`, `Cookie` and `X-Gitlab-Token` are not
//!   copied into the event (Argo copies every header; cairn does not store secrets), tokens are
//!   compared in constant time and never logged; rejections carry no payload.
//! - A rejected request is counted (`cairn_events_webhook_rejected_total{reason}`) and never
//!   published; an accepted one is on the bus before the response.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::git::{self, GitVerifyError};
use super::{Endpoint, EndpointKind, SourceError};
use crate::events::bus::{AnyBus, Topic};
use crate::events::event::{Event, EventContext, JSON_CONTENT_TYPE, SPEC_VERSION, event_id};

/// A secret's value, read from a Kubernetes Secret. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// Wraps a value.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The secret of an endpoint as the controller resolved it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// The source configures none.
    NotConfigured,
    /// Resolved.
    Ready(SecretValue),
    /// Configured but not readable (missing Secret or key): every request is refused with 503
    /// until it is, and the EventSource says why.
    Unavailable,
}

/// An endpoint as served: its plan and its resolved secret.
#[derive(Clone, Debug)]
pub struct LiveEndpoint {
    /// What the EventSource asks for.
    pub endpoint: Endpoint,
    /// Its secret.
    pub secret: SecretState,
}

/// The endpoints being served, by route and by dedicated port.
#[derive(Debug, Default)]
pub struct Table {
    routes: HashMap<(String, String, String), Arc<LiveEndpoint>>,
    ports: HashMap<(u16, String), Arc<LiveEndpoint>>,
}

impl Table {
    /// The table of `endpoints` (the plan has resolved port conflicts; should two still collide,
    /// the first wins).
    pub fn new(endpoints: Vec<LiveEndpoint>) -> Table {
        let mut t = Table::default();
        for live in endpoints {
            let live = Arc::new(live);
            let e = &live.endpoint;
            if let Some(port) = e.port {
                t.ports
                    .entry((port, e.path.clone()))
                    .or_insert_with(|| live.clone());
            }
            t.routes
                .entry((e.namespace.clone(), e.event_source.clone(), e.path.clone()))
                .or_insert(live);
        }
        t
    }

    /// The endpoint served at `/api/events/<namespace>/<event_source>/<path>`.
    pub fn route(
        &self,
        namespace: &str,
        event_source: &str,
        path: &str,
    ) -> Option<Arc<LiveEndpoint>> {
        self.routes
            .get(&(
                namespace.to_owned(),
                event_source.to_owned(),
                path.to_owned(),
            ))
            .cloned()
    }

    /// The endpoint served at `/<path>` on `port`.
    pub fn on_port(&self, port: u16, path: &str) -> Option<Arc<LiveEndpoint>> {
        self.ports.get(&(port, path.to_owned())).cloned()
    }

    /// The dedicated ports in use.
    pub fn ports(&self) -> BTreeSet<u16> {
        self.ports.keys().map(|(p, _)| *p).collect()
    }

    /// How many endpoints are served.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether no endpoint is served.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// What the handlers share: the current table, the bus and the global body limit.
#[derive(Clone)]
pub struct EventsState {
    table: Arc<RwLock<Arc<Table>>>,
    bus: AnyBus,
    max_body_bytes: usize,
    history: Option<crate::events::history::History>,
}

impl EventsState {
    /// A state with an empty table.
    pub fn new(bus: AnyBus, max_body_bytes: usize) -> Self {
        Self {
            table: Arc::new(RwLock::new(Arc::new(Table::default()))),
            bus,
            max_body_bytes,
            history: None,
        }
    }

    /// The same state with the sensor history the events API reads.
    pub fn with_history(mut self, history: crate::events::history::History) -> Self {
        self.history = Some(history);
        self
    }

    /// The sensor history, when the runtime opened one.
    pub fn history(&self) -> Option<&crate::events::history::History> {
        self.history.as_ref()
    }

    /// The server-wide body limit (`[events] max_body_bytes`).
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Replaces the table (the controller, after each reconcile).
    pub fn set_table(&self, table: Table) {
        let table = Arc::new(table);
        match self.table.write() {
            Ok(mut t) => *t = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
    }

    /// The current table.
    pub fn table(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The bus events go to.
    pub fn bus(&self) -> &AnyBus {
        &self.bus
    }
}

/// Why a request produced no event.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    /// No endpoint is served at this path.
    #[error("no event source endpoint at this path")]
    UnknownEndpoint,
    /// The endpoint accepts another method.
    #[error("method not allowed: this endpoint accepts {allowed}")]
    MethodNotAllowed {
        /// The method it accepts.
        allowed: Method,
    },
    /// The endpoint's secret is configured but could not be read.
    #[error("the event source's secret is not available; see the EventSource's status")]
    SecretUnavailable,
    /// `authSecret` is set and the request carries no bearer token, or another one.
    #[error("missing or invalid bearer token")]
    Unauthorized,
    /// A GitHub signature or GitLab token is missing or wrong.
    #[error(transparent)]
    Signature(#[from] GitVerifyError),
    /// The body exceeds the limit.
    #[error("request body exceeds {limit} bytes")]
    TooLarge {
        /// The limit that applied.
        limit: usize,
    },
    /// The body is not what the endpoint takes.
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// The event could not be stored (nothing was accepted; the sender should retry).
    #[error("event not stored: {0}")]
    Publish(#[from] SourceError),
}

impl Rejection {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Rejection::UnknownEndpoint => "unknown_endpoint",
            Rejection::MethodNotAllowed { .. } => "method",
            Rejection::SecretUnavailable => "secret_unavailable",
            Rejection::Unauthorized => "unauthorized",
            Rejection::Signature(e) => e.metric_label(),
            Rejection::TooLarge { .. } => "too_large",
            Rejection::Malformed(_) => "malformed",
            Rejection::Publish(_) => "bus",
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::UnknownEndpoint => StatusCode::NOT_FOUND,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::SecretUnavailable | Rejection::Publish(_) => StatusCode::SERVICE_UNAVAILABLE,
            Rejection::Unauthorized | Rejection::Signature(_) => StatusCode::UNAUTHORIZED,
            Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Rejection::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let reason = self.metric_label();
        metrics::counter!("cairn_events_webhook_rejected_total", "reason" => reason).increment(1);
        tracing::info!(reason, "event source request rejected");
        let mut resp = (
            self.status(),
            axum::Json(json!({"error": self.to_string()})),
        )
            .into_response();
        if let Rejection::MethodNotAllowed { allowed } = &self
            && let Ok(v) = allowed.as_str().parse()
        {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        resp
    }
}

/// The handler of `/api/events/{namespace}/{eventsource}/{*endpoint}` on cairn's listener.
pub async fn api_route(
    State(app): State<crate::api::AppState>,
    Path((namespace, event_source, endpoint)): Path<(String, String, String)>,
    req: Request,
) -> Response {
    let Some(state) = app.events() else {
        return Rejection::UnknownEndpoint.into_response();
    };
    let live = state.table().route(&namespace, &event_source, &endpoint);
    receive(state, live, req).await
}

/// The router of a dedicated port: `/<endpoint>` of every endpoint claiming `port`.
pub fn port_router(state: EventsState, port: u16) -> Router {
    Router::new().fallback(move |req: Request| {
        let state = state.clone();
        async move {
            let path = req.uri().path().trim_start_matches('/').to_owned();
            let live = state.table().on_port(port, &path);
            receive(&state, live, req).await
        }
    })
}

/// Handles one request for `live` (None: nothing is served there).
pub async fn receive(
    state: &EventsState,
    live: Option<Arc<LiveEndpoint>>,
    req: Request,
) -> Response {
    match accept(state, live, req).await {
        Ok(Outcome::Published { id, kind }) => {
            metrics::counter!("cairn_events_webhook_accepted_total", "type" => kind.as_str())
                .increment(1);
            (StatusCode::OK, axum::Json(json!({"id": id}))).into_response()
        }
        Ok(Outcome::Ignored {
            kind,
            event,
            reason,
        }) => {
            metrics::counter!("cairn_events_webhook_ignored_total", "type" => kind.as_str(), "reason" => reason)
                .increment(1);
            (
                StatusCode::OK,
                axum::Json(json!({"ignored": event, "reason": reason})),
            )
                .into_response()
        }
        Err(rejection) => rejection.into_response(),
    }
}

enum Outcome {
    Published {
        id: String,
        kind: EndpointKind,
    },
    Ignored {
        kind: EndpointKind,
        event: String,
        reason: &'static str,
    },
}

async fn accept(
    state: &EventsState,
    live: Option<Arc<LiveEndpoint>>,
    req: Request,
) -> Result<Outcome, Rejection> {
    let live = live.ok_or(Rejection::UnknownEndpoint)?;
    let ep = &live.endpoint;
    let (parts, body) = req.into_parts();
    if parts.method != ep.method {
        return Err(Rejection::MethodNotAllowed {
            allowed: ep.method.clone(),
        });
    }
    let secret = match &live.secret {
        SecretState::NotConfigured => None,
        SecretState::Ready(s) => Some(s),
        SecretState::Unavailable => return Err(Rejection::SecretUnavailable),
    };
    let headers = &parts.headers;
    match (ep.kind, secret) {
        (EndpointKind::Webhook, Some(s)) => {
            let ok = crate::api::bearer(headers)
                .is_some_and(|t| git::token_matches(t.as_bytes(), s.bytes()));
            if !ok {
                return Err(Rejection::Unauthorized);
            }
        }
        (EndpointKind::Gitlab, Some(s)) => git::verify_gitlab(s.bytes(), headers)?,
        _ => {}
    }
    let limit = ep
        .max_payload
        .map_or(state.max_body_bytes, |m| m.min(state.max_body_bytes));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(Rejection::TooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Rejection::TooLarge { limit })?;
    if let (EndpointKind::Github, Some(s)) = (ep.kind, secret) {
        git::verify_github(s.bytes(), headers, &bytes)?;
    }
    let (delivery, provider_event) = match ep.kind {
        EndpointKind::Webhook => (None, None),
        EndpointKind::Github => (
            header_text(headers, git::GITHUB_DELIVERY),
            Some(git::github_event(headers).to_owned()),
        ),
        EndpointKind::Gitlab => (
            header_text(headers, git::GITLAB_DELIVERY),
            Some(git::gitlab_event(headers).to_owned()),
        ),
    };
    if let Some(event) = &provider_event {
        if ep.kind == EndpointKind::Github && event == "ping" {
            return Ok(Outcome::Ignored {
                kind: ep.kind,
                event: event.clone(),
                reason: "ping",
            });
        }
        let allowed = match ep.kind {
            EndpointKind::Github => git::github_event_allowed(&ep.events, event),
            _ => git::gitlab_event_allowed(&ep.events, event),
        };
        if !allowed {
            return Ok(Outcome::Ignored {
                kind: ep.kind,
                event: event.clone(),
                reason: "filtered",
            });
        }
    }
    let body = parse_body(ep.kind, &parts.method, &parts.uri, headers, bytes).await?;
    let delivery = delivery.unwrap_or_else(|| hex::encode(rand::random::<[u8; 16]>()));
    let id = event_id(&ep.namespace, &ep.event_source, &ep.event_name, &delivery);
    let event = build_event(ep, id.clone(), jiff::Timestamp::now(), headers, body);
    let topic = Topic::new(&ep.namespace, &ep.event_source, &ep.event_name);
    super::publish(&state.bus, &topic, event).await?;
    tracing::debug!(topic = %topic, id = %id, "event source request accepted");
    Ok(Outcome::Published { id, kind: ep.kind })
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_owned)
}

/// The body as JSON: query parameters for `GET`, form fields for a form post (GitHub's form
/// content type: its `payload` field), else the JSON document.
async fn parse_body(
    kind: EndpointKind,
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    bytes: bytes::Bytes,
) -> Result<Value, Rejection> {
    if *method == Method::GET && kind == EndpointKind::Webhook {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| Rejection::Malformed(format!("query string: {e}")))?;
        return Ok(grouped(pairs));
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';').next().is_some_and(|t| {
                t.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if form {
        let req = Request::builder()
            .method(Method::POST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(bytes))
            .map_err(|e| Rejection::Malformed(e.to_string()))?;
        let axum::Form(pairs) = axum::Form::<Vec<(String, String)>>::from_request(req, &())
            .await
            .map_err(|e| Rejection::Malformed(format!("form body: {}", e.body_text())))?;
        if kind == EndpointKind::Github {
            let payload = pairs
                .iter()
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| Rejection::Malformed("form body: no payload field".into()))?;
            return serde_json::from_str(payload)
                .map_err(|e| Rejection::Malformed(format!("payload field is not JSON: {e}")));
        }
        return Ok(grouped(pairs));
    }
    serde_json::from_slice(&bytes).map_err(|e| Rejection::Malformed(format!("not JSON: {e}")))
}

/// Pairs as Go's `url.Values` marshal: a map of keys to lists of values.
fn grouped(pairs: Vec<(String, String)>) -> Value {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        m.entry(k).or_default().push(v);
    }
    json!(m)
}

/// Headers as Go's `http.Header`: canonical names to lists of values, credentials left out.
pub fn event_headers(headers: &HeaderMap) -> BTreeMap<String, Vec<String>> {
    const SECRET: &[&str] = &[
        "authorization",
        "cookie",
        "proxy-authorization",
        git::GITLAB_TOKEN,
    ];
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        if SECRET.contains(&name.as_str()) {
            continue;
        }
        out.entry(canonical_header(name.as_str()))
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    out
}

/// Go's `http.CanonicalHeaderKey`: the first letter and every letter after a `-` upper case,
/// the rest lower case.
pub fn canonical_header(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

/// The event for an accepted request.
pub fn build_event(
    ep: &Endpoint,
    id: String,
    time: jiff::Timestamp,
    headers: &HeaderMap,
    body: Value,
) -> Event {
    let header = event_headers(headers);
    let mut data = match ep.kind {
        EndpointKind::Webhook => json!({"header": header, "body": body}),
        EndpointKind::Github | EndpointKind::Gitlab => json!({"headers": header, "body": body}),
    };
    if !ep.metadata.is_empty() {
        data["metadata"] = json!(ep.metadata);
    }
    Event {
        context: EventContext {
            id,
            source: ep.event_source.clone(),
            specversion: SPEC_VERSION.to_owned(),
            type_: ep.kind.as_str().to_owned(),
            subject: ep.event_name.clone(),
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            time,
        },
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_canonical_and_credentials_dropped() {
        assert_eq!(canonical_header("x-github-event"), "X-Github-Event");
        assert_eq!(canonical_header("CONTENT-TYPE"), "Content-Type");
        let mut h = HeaderMap::new();
        h.insert("content-type", "application/json".parse().expect("v"));
        h.insert("authorization", "Bearer s3cret".parse().expect("v"));
        h.insert("x-gitlab-token", "s3cret".parse().expect("v"));
        h.append("x-multi", "a".parse().expect("v"));
        h.append("x-multi", "b".parse().expect("v"));
        let out = event_headers(&h);
        assert_eq!(
            serde_json::to_value(&out).expect("json"),
            json!({"Content-Type": ["application/json"], "X-Multi": ["a", "b"]})
        );
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = SecretState::Ready(SecretValue::new("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
