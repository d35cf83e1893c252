//! The `nats` event source: messages of a core-NATS subject become events, with Argo Events'
//! semantics (its NATS event source, looked up in its docs and API reference).
//!
//! Owns: checking a `spec.nats.<event>` entry into a [`NatsSpec`] (pure); the event a message
//! becomes ([`nats_event`]) and the event-source filter ([`passes`]), both pure; the client
//! options built from the spec and the resolved [`Credentials`]; and the per-event task [`run`]
//! (connect, subscribe, publish every message on the bus, reconnect).
//!
//! Semantics:
//! - `url` (one server or a comma-separated list) and `subject` (wildcards allowed) are
//!   required; `queue`, when set, subscribes as that queue group (it must not be empty).
//! - The event: type `nats`, source the EventSource, subject the event name, data
//!   `{"subject", "body", "header"?, "metadata"?}` — `subject` is the message's (a wildcard
//!   subscription names the concrete subject), `header` the message's headers as a map of names
//!   to lists of values (only when the message has headers), `metadata` the spec's (only when
//!   set). With `jsonBody: true` the body is the payload parsed as JSON (a payload that is not
//!   JSON is dropped, counted and logged, as Argo rejects it; an empty payload is `null`);
//!   otherwise the payload's bytes as a standard base64 string (Go's encoding of `[]byte`).
//! - Event ids: a message carrying a `Nats-Msg-Id` header (what JetStream publishers set for
//!   de-duplication) gets `event_id(namespace, eventsource, event, "<subject>/<Nats-Msg-Id>")`,
//!   so the same message published twice triggers once; any other message a random id.
//! - `auth`: `token` (a Secret key) and `basic` (`username` and `password` Secret keys) are
//!   supported; the controller reads the Secrets (values never logged) and restarts the task
//!   when they change. `nkey` and `credential` are reported as unsupported on the object and
//!   the event is not run.
//! - `tls`: `caCertSecret` (the CA that signed the server's certificate; required when `tls`
//!   is set) and optionally `clientCertSecret` + `clientKeySecret` (mutual TLS); TLS is then
//!   required on the connection. `insecureSkipVerify: true` is reported as unsupported.
//! - `connectionBackoff` (Argo's `Backoff`: `duration`, `factor`, `jitter`, `steps`): the wait
//!   before the first reconnect attempt is `duration`, growing by `factor` for `steps` attempts
//!   and then staying there, plus up to `jitter ×` of it at random, within
//!   [[`RECONNECT_MIN`], [`RECONNECT_MAX`]]. Without it: 1 s doubling to 32 s. Where cairn
//!   differs, deliberately: Argo gives up after `steps` failed connection attempts (and its pod
//!   restarts); cairn never gives up, reports the failure on the object's `Deployed` condition
//!   and keeps retrying.
//! - `filter.expression`: an expr-lang expression over the event's data fields (`subject`,
//!   `body`, `header`, `metadata`), as Argo's event-source filter; a message whose expression
//!   is false or fails is not published (counted, logged at debug).
//!
//! Delivery: core NATS has no acknowledgement. A message is handled once [`super::publish`]
//! returned, i.e. once the bus holds it durably; publishing is retried with back-off, and
//! messages arriving meanwhile wait in the client's subscription buffer. A message the server
//! sends while cairn is disconnected, or drops because the buffer is full (a slow consumer,
//! logged and counted), is lost: delivery from a core-NATS subject is at-most-once up to the
//! bus, and at-least-once after it (as for every source). Teams that need more publish to a
//! JetStream stream and point the bus at it.
//!
//! Invariants: [`NatsSpec::parse`], [`nats_event`] and [`passes`] are pure and never panic on
//! input; [`run`] never ends on a connection or publishing failure (it logs, counts, reports
//! and retries with bounded back-off) and returns once `stop` completes, after the message in
//! hand is published; secrets (tokens, passwords, keys, credentials in the URL) are never
//! logged or put in status messages.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use futures::StreamExt;
use jiff::Timestamp;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};

use super::{SecretRef, publish};
use crate::events::bus::{AnyBus, Topic};
use crate::events::event::{Event, EventContext, JSON_CONTENT_TYPE, SPEC_VERSION, event_id};
use crate::events::trigger::retry::Backoff;
use crate::workflow::expr::{self, Ast, Scope, Value as EValue};

/// Shortest wait between connection attempts, whatever `connectionBackoff` says.
pub const RECONNECT_MIN: Duration = Duration::from_millis(100);
/// Longest wait between connection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(120);
/// Bound on one connection attempt (TCP, TLS and the NATS handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on subscribing and on the round trip that confirms the subscription.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Back-off bounds for retrying a publish the bus refused.
const PUBLISH_RETRY_MIN: Duration = Duration::from_millis(200);
const PUBLISH_RETRY_MAX: Duration = Duration::from_secs(30);
/// Messages the client buffers for this subscription while a publish is retried; beyond it the
/// server drops messages for this client (a slow consumer).
const SUBSCRIPTION_CAPACITY: usize = 8192;
/// The header whose value makes a message's event id deterministic.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// Field names of [`Credentials`], as written under `spec.nats.<event>`.
pub const FIELD_TOKEN: &str = "auth.token";
/// See [`FIELD_TOKEN`].
pub const FIELD_USERNAME: &str = "auth.basic.username";
/// See [`FIELD_TOKEN`].
pub const FIELD_PASSWORD: &str = "auth.basic.password";
/// See [`FIELD_TOKEN`].
pub const FIELD_CA_CERT: &str = "tls.caCertSecret";
/// See [`FIELD_TOKEN`].
pub const FIELD_CLIENT_CERT: &str = "tls.clientCertSecret";
/// See [`FIELD_TOKEN`].
pub const FIELD_CLIENT_KEY: &str = "tls.clientKeySecret";

/// Errors of the nats source.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A field of the nats entry is invalid.
    #[error("eventsource {object}: spec.nats.{event}.{field}: {problem}")]
    Spec {
        /// `<namespace>/<eventsource>`.
        object: String,
        /// The event name (key under `spec.nats`).
        event: String,
        /// The field (`url`, `auth.basic.password`...).
        field: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// The entry asks for something cairn does not do (the event is not run).
    #[error("eventsource {object}: spec.nats.{event}.{field}: {what} is not supported by cairn")]
    Unsupported {
        /// `<namespace>/<eventsource>`.
        object: String,
        /// The event name.
        event: String,
        /// The field.
        field: String,
        /// What is not supported.
        what: String,
    },
    /// A resolved Secret value cannot be used (not UTF-8, not PEM...). Never holds the value.
    #[error("eventsource {object}: spec.nats.{event}.{field}: {problem}")]
    Credentials {
        /// `<namespace>/<eventsource>`.
        object: String,
        /// The event name.
        event: String,
        /// The field whose Secret is unusable.
        field: String,
        /// Why.
        problem: String,
    },
}

impl NatsError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            NatsError::Spec { .. } => "spec",
            NatsError::Unsupported { .. } => "unsupported",
            NatsError::Credentials { .. } => "credentials",
        }
    }

    /// The field and problem without the object (what the EventSource's own status shows).
    pub fn field_message(&self) -> String {
        match self {
            NatsError::Spec {
                event,
                field,
                problem,
                ..
            }
            | NatsError::Credentials {
                event,
                field,
                problem,
                ..
            } => format!("spec.nats.{event}.{field}: {problem}"),
            NatsError::Unsupported {
                event, field, what, ..
            } => format!(
                "spec.nats.{event}.{field}: {what} is not supported by cairn; this event is not run"
            ),
        }
    }
}

/// How a nats source authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthRef {
    /// `auth.token`.
    Token(SecretRef),
    /// `auth.basic`.
    Basic {
        /// `auth.basic.username`.
        username: SecretRef,
        /// `auth.basic.password`.
        password: SecretRef,
    },
}

/// `tls`: the CA and, for mutual TLS, the client's certificate and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsRef {
    /// `caCertSecret`.
    pub ca_cert: SecretRef,
    /// `clientCertSecret` and `clientKeySecret`, both or neither.
    pub client: Option<(SecretRef, SecretRef)>,
}

/// When to try connecting again: see the module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectBackoff {
    /// Wait before the first retry.
    pub first: Duration,
    /// Growth per retry.
    pub factor: f64,
    /// Retries over which the wait grows.
    pub steps: u32,
    /// Random extra share of each wait.
    pub jitter: f64,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            factor: 2.0,
            steps: 6,
            jitter: 0.0,
        }
    }
}

impl ReconnectBackoff {
    /// The wait before retry `attempt` (0-based), `draw` in `[0, 1)` choosing the jitter.
    pub fn delay(&self, attempt: usize, draw: f64) -> Duration {
        let grow = u32::try_from(attempt)
            .unwrap_or(u32::MAX)
            .min(self.steps.saturating_sub(1));
        let factor = if self.factor > 0.0 { self.factor } else { 1.0 };
        let base = self.first.as_secs_f64() * factor.powi(i32::try_from(grow).unwrap_or(i32::MAX));
        let secs = base + base * self.jitter * draw.clamp(0.0, 1.0);
        let secs = if secs.is_finite() {
            secs
        } else {
            RECONNECT_MAX.as_secs_f64()
        };
        Duration::from_secs_f64(
            secs.clamp(RECONNECT_MIN.as_secs_f64(), RECONNECT_MAX.as_secs_f64()),
        )
    }
}

/// A checked `spec.nats.<event>` entry.
#[derive(Clone, Debug)]
pub struct NatsSpec {
    /// Server URL(s), as written (may hold credentials: never log it as is).
    pub url: String,
    /// The subject subscribed to.
    pub subject: String,
    /// The queue group, when set.
    pub queue: Option<String>,
    /// Whether bodies are JSON.
    pub json_body: bool,
    /// `metadata`, passed along in the event's data.
    pub metadata: BTreeMap<String, String>,
    /// `auth`, when set.
    pub auth: Option<AuthRef>,
    /// `tls`, when set.
    pub tls: Option<TlsRef>,
    /// `connectionBackoff`.
    pub backoff: ReconnectBackoff,
    /// `filter.expression`, parsed.
    pub filter: Option<Ast>,
}

fn obj_str<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl NatsSpec {
    /// Checks a nats entry. `object` is `<namespace>/<eventsource>`, `event` its key under
    /// `spec.nats`. Unsupported settings are [`NatsError::Unsupported`].
    pub fn parse(object: &str, event: &str, v: &Value) -> Result<NatsSpec, NatsError> {
        let err = |field: &str, problem: String| NatsError::Spec {
            object: object.to_owned(),
            event: event.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let unsupported = |field: &str, what: &str| NatsError::Unsupported {
            object: object.to_owned(),
            event: event.to_owned(),
            field: field.to_owned(),
            what: what.to_owned(),
        };
        let Some(obj) = v.as_object() else {
            return Err(err(
                "",
                format!("expected an object with url and subject, got {v}"),
            ));
        };
        let url = obj_str(obj, "url").ok_or_else(|| {
            err(
                "url",
                "required: the NATS server URL, e.g. nats://nats.example:4222".to_owned(),
            )
        })?;
        if url
            .split(',')
            .any(|u| u.trim().is_empty() || u.trim().contains(char::is_whitespace))
        {
            return Err(err(
                "url",
                "expected one URL or a comma-separated list of URLs".to_owned(),
            ));
        }
        let subject = obj_str(obj, "subject").ok_or_else(|| {
            err(
                "subject",
                "required: the subject to subscribe to, e.g. orders.created".to_owned(),
            )
        })?;
        if !valid_subject(subject) {
            return Err(err(
                "subject",
                format!(
                    "{subject:?} is not a NATS subject (dot-separated tokens without spaces; `*` for one token, `>` last for the rest)"
                ),
            ));
        }
        let queue = match obj.get("queue") {
            None | Some(Value::Null) => None,
            Some(Value::String(q)) if !q.trim().is_empty() && !q.contains(char::is_whitespace) => {
                Some(q.clone())
            }
            Some(other) => {
                return Err(err(
                    "queue",
                    format!(
                        "expected a non-empty queue group name without spaces when set, got {other}"
                    ),
                ));
            }
        };
        let json_body = match obj.get("jsonBody") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(err(
                    "jsonBody",
                    format!("expected true or false, got {other}"),
                ));
            }
        };
        let metadata = match obj.get("metadata") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    other => Err(err(
                        &format!("metadata.{k}"),
                        format!("expected a string, got {other}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(err(
                    "metadata",
                    format!("expected a map of strings, got {other}"),
                ));
            }
        };
        let secret = |field: &str, v: Option<&Value>| -> Result<Option<SecretRef>, NatsError> {
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
                return Err(err(
                    field,
                    "expected a Secret key selector with name and key".to_owned(),
                ));
            }
            Ok(Some(SecretRef {
                name: name.to_owned(),
                key: key.to_owned(),
            }))
        };
        let auth = match obj.get("auth").filter(|a| !a.is_null()) {
            None => None,
            Some(Value::Object(a)) => {
                let set = |k: &str| a.get(k).is_some_and(|v| !v.is_null());
                if set("nkey") {
                    return Err(unsupported("auth.nkey", "NKey authentication"));
                }
                if set("credential") {
                    return Err(unsupported(
                        "auth.credential",
                        "credentials-file (JWT) authentication",
                    ));
                }
                match (a.get("basic").filter(|b| !b.is_null()), a.get("token")) {
                    (Some(basic), _) => {
                        let username =
                            secret(FIELD_USERNAME, basic.get("username"))?.ok_or_else(|| {
                                err(
                                    FIELD_USERNAME,
                                    "required with auth.basic: a Secret key selector".to_owned(),
                                )
                            })?;
                        let password =
                            secret(FIELD_PASSWORD, basic.get("password"))?.ok_or_else(|| {
                                err(
                                    FIELD_PASSWORD,
                                    "required with auth.basic: a Secret key selector".to_owned(),
                                )
                            })?;
                        Some(AuthRef::Basic { username, password })
                    }
                    (None, token) => secret(FIELD_TOKEN, token)?.map(AuthRef::Token),
                }
            }
            Some(other) => {
                return Err(err(
                    "auth",
                    format!("expected an object (basic, token), got {other}"),
                ));
            }
        };
        let tls = match obj.get("tls").filter(|t| !t.is_null()) {
            None => None,
            Some(Value::Object(t)) => {
                if t.get("insecureSkipVerify").and_then(Value::as_bool) == Some(true) {
                    return Err(unsupported(
                        "tls.insecureSkipVerify",
                        "skipping server certificate verification",
                    ));
                }
                let ca = secret(FIELD_CA_CERT, t.get("caCertSecret"))?.ok_or_else(|| {
                    unsupported(
                        FIELD_CA_CERT,
                        "tls without caCertSecret (verifying the server against system roots)",
                    )
                })?;
                let cert = secret(FIELD_CLIENT_CERT, t.get("clientCertSecret"))?;
                let key = secret(FIELD_CLIENT_KEY, t.get("clientKeySecret"))?;
                let client = match (cert, key) {
                    (Some(c), Some(k)) => Some((c, k)),
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(err(
                            FIELD_CLIENT_KEY,
                            "required with clientCertSecret".to_owned(),
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(err(
                            FIELD_CLIENT_CERT,
                            "required with clientKeySecret".to_owned(),
                        ));
                    }
                };
                Some(TlsRef {
                    ca_cert: ca,
                    client,
                })
            }
            Some(other) => {
                return Err(err(
                    "tls",
                    format!("expected an object (caCertSecret...), got {other}"),
                ));
            }
        };
        let backoff = match obj.get("connectionBackoff").filter(|b| !b.is_null()) {
            None => ReconnectBackoff::default(),
            Some(b) => {
                let parsed = Backoff::parse(Some(b)).map_err(|e| {
                    let e = e.replacen("retryStrategy", "connectionBackoff", 1);
                    match e.split_once(": ") {
                        Some((field, problem)) => err(field, problem.to_owned()),
                        None => err("connectionBackoff", e),
                    }
                })?;
                ReconnectBackoff {
                    first: parsed.duration,
                    factor: parsed.factor,
                    steps: parsed.steps,
                    jitter: parsed.jitter,
                }
            }
        };
        let filter = match obj.get("filter").filter(|f| !f.is_null()) {
            None => None,
            Some(f) => match f.get("expression") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => {
                    Some(expr::parse(s).map_err(|e| err("filter.expression", e.to_string()))?)
                }
                Some(other) => {
                    return Err(err(
                        "filter.expression",
                        format!("expected an expression string, got {other}"),
                    ));
                }
            },
        };
        Ok(NatsSpec {
            url: url.to_owned(),
            subject: subject.to_owned(),
            queue,
            json_body,
            metadata,
            auth,
            tls,
            backoff,
            filter,
        })
    }

    /// The Secrets this entry needs, by field (the [`Credentials`] keys).
    pub fn secret_refs(&self) -> Vec<(&'static str, SecretRef)> {
        let mut out = Vec::new();
        match &self.auth {
            Some(AuthRef::Token(t)) => out.push((FIELD_TOKEN, t.clone())),
            Some(AuthRef::Basic { username, password }) => {
                out.push((FIELD_USERNAME, username.clone()));
                out.push((FIELD_PASSWORD, password.clone()));
            }
            None => {}
        }
        if let Some(tls) = &self.tls {
            out.push((FIELD_CA_CERT, tls.ca_cert.clone()));
            if let Some((c, k)) = &tls.client {
                out.push((FIELD_CLIENT_CERT, c.clone()));
                out.push((FIELD_CLIENT_KEY, k.clone()));
            }
        }
        out
    }
}

/// A NATS subject (to subscribe to): non-empty dot-separated tokens of visible characters; `*`
/// matches one token, `>` the rest and comes last.
fn valid_subject(s: &str) -> bool {
    let tokens: Vec<&str> = s.split('.').collect();
    tokens.iter().enumerate().all(|(i, t)| {
        !t.is_empty()
            && !t.contains(|c: char| c.is_whitespace() || c.is_control())
            && (*t != ">" || i + 1 == tokens.len())
            && (!t.contains(['*', '>']) || t.len() == 1)
    })
}

/// The Secret values a nats source uses, by field ([`FIELD_TOKEN`]...). Never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials(BTreeMap<&'static str, Vec<u8>>);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Credentials {
    /// No credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the value of `field`.
    pub fn insert(&mut self, field: &'static str, value: Vec<u8>) {
        self.0.insert(field, value);
    }

    /// A digest of every value (to notice a rotated Secret without keeping a second copy).
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for (k, v) in &self.0 {
            h.update((k.len() as u64).to_be_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_be_bytes());
            h.update(v);
        }
        hex::encode(&h.finalize()[..16])
    }

    fn text(&self, field: &str) -> Result<String, String> {
        let v = self
            .0
            .get(field)
            .ok_or_else(|| "the Secret was not resolved".to_owned())?;
        let s = std::str::from_utf8(v).map_err(|_| "the Secret value is not UTF-8".to_owned())?;
        // A value written with `echo` ends in a newline; it is not part of the credential.
        let s = s.strip_suffix('\n').unwrap_or(s);
        let s = s.strip_suffix('\r').unwrap_or(s);
        if s.is_empty() {
            return Err("the Secret value is empty".to_owned());
        }
        Ok(s.to_owned())
    }

    fn bytes(&self, field: &str) -> Result<&[u8], String> {
        self.0
            .get(field)
            .map(Vec::as_slice)
            .ok_or_else(|| "the Secret was not resolved".to_owned())
    }
}

/// The client TLS configuration from PEM: the CA's certificate(s) and, for mutual TLS, the
/// client's certificate chain and key. Errors name the field.
pub fn tls_config(
    ca: &[u8],
    client: Option<(&[u8], &[u8])>,
) -> Result<rustls::ClientConfig, (&'static str, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca) {
        let cert = cert.map_err(|e| (FIELD_CA_CERT, format!("not a PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| (FIELD_CA_CERT, format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err((FIELD_CA_CERT, "holds no PEM certificate".to_owned()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| (FIELD_CA_CERT, format!("TLS setup failed: {e}")))?
    .with_root_certificates(roots);
    match client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| (FIELD_CLIENT_CERT, format!("not a PEM certificate: {e}")))?;
            if chain.is_empty() {
                return Err((FIELD_CLIENT_CERT, "holds no PEM certificate".to_owned()));
            }
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| (FIELD_CLIENT_KEY, "holds no PEM private key".to_owned()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                (
                    FIELD_CLIENT_CERT,
                    format!("unusable certificate and key: {e}"),
                )
            })
        }
    }
}

/// One received message, as the pure functions see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Incoming {
    /// The concrete subject.
    pub subject: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// Headers: name → values, in the order received.
    pub headers: BTreeMap<String, Vec<String>>,
}

impl Incoming {
    fn from_message(m: &async_nats::Message) -> Self {
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, values) in m.headers.iter().flat_map(|h| h.iter()) {
            let name: &str = name.as_ref();
            headers
                .entry(name.to_owned())
                .or_default()
                .extend(values.iter().map(|v| v.as_str().to_owned()));
        }
        Incoming {
            subject: m.subject.to_string(),
            payload: m.payload.to_vec(),
            headers,
        }
    }

    /// The `Nats-Msg-Id` header (its name compared without case), when set and not empty.
    pub fn msg_id(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(MSG_ID_HEADER))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// The event `msg` becomes (see the module docs); `random` is the id's entropy when the message
/// has no `Nats-Msg-Id`. An error (a `jsonBody` payload that is not JSON) drops the message.
pub fn nats_event(
    topic: &Topic,
    spec: &NatsSpec,
    msg: &Incoming,
    random: [u8; 16],
    now: Timestamp,
) -> Result<Event, String> {
    let body = if spec.json_body {
        if msg.payload.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&msg.payload)
                .map_err(|e| format!("jsonBody is set but the payload is not JSON: {e}"))?
        }
    } else {
        Value::String(base64::engine::general_purpose::STANDARD.encode(&msg.payload))
    };
    let mut data = json!({"subject": msg.subject, "body": body});
    if !msg.headers.is_empty() {
        data["header"] = json!(msg.headers);
    }
    if !spec.metadata.is_empty() {
        data["metadata"] = json!(spec.metadata);
    }
    let delivery = match msg.msg_id() {
        Some(id) => format!("{}/{id}", msg.subject),
        None => hex::encode(random),
    };
    Ok(Event {
        context: EventContext {
            id: event_id(
                &topic.namespace,
                &topic.event_source,
                &topic.event_name,
                &delivery,
            ),
            source: topic.event_source.clone(),
            specversion: SPEC_VERSION.to_owned(),
            type_: "nats".to_owned(),
            subject: topic.event_name.clone(),
            datacontenttype: JSON_CONTENT_TYPE.to_owned(),
            time: now,
        },
        data,
    })
}

/// Whether `data` (an event's data) passes the spec's `filter.expression`: `Ok` without a filter
/// or when the expression is true; otherwise why not.
pub fn passes(spec: &NatsSpec, data: &Value) -> Result<(), String> {
    let Some(ast) = &spec.filter else {
        return Ok(());
    };
    let mut scope = Scope::new();
    if let Some(obj) = data.as_object() {
        for (k, v) in obj {
            scope.insert(k.replace('-', "_"), EValue::from(v));
        }
    }
    match expr::eval(ast, &scope) {
        Ok(EValue::Bool(true)) => Ok(()),
        Ok(EValue::Bool(false)) => Err(format!("filter {:?} is false", ast.source())),
        Ok(other) => Err(format!(
            "filter {:?} is not a boolean (got {})",
            ast.source(),
            other.type_name()
        )),
        Err(e) => Err(format!("filter {:?}: {e}", ast.source())),
    }
}

/// The connection state of a running source, for status and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// Not connected yet (or starting over); `error` is why the last attempt failed.
    Connecting {
        /// Failed attempts so far.
        attempts: u64,
        /// Why the last attempt failed (no secrets).
        error: Option<String>,
    },
    /// Subscribed and confirmed by the server; `connections` counts (re)connections.
    Subscribed {
        /// Connections made so far (1 after the first).
        connections: u64,
    },
    /// The connection dropped; the client reconnects by itself.
    Disconnected {
        /// Connections made so far.
        connections: u64,
    },
    /// `stop` completed; the task ended.
    Stopped,
}

impl ConnState {
    /// A problem to report on the object, when there is one.
    pub fn problem(&self) -> Option<String> {
        match self {
            ConnState::Connecting {
                error: Some(e),
                attempts,
            } => Some(format!(
                "not connected after {attempts} attempt(s): {e}; retrying"
            )),
            ConnState::Disconnected { .. } => {
                Some("the connection to NATS dropped; reconnecting".to_owned())
            }
            _ => None,
        }
    }
}

/// A nats source ready to run: where its events go and how to connect.
#[derive(Clone, Debug)]
pub struct NatsSource {
    /// The topic of the event (namespace, EventSource, event name).
    pub topic: Topic,
    /// The checked entry.
    pub spec: NatsSpec,
    /// The resolved Secrets of [`NatsSpec::secret_refs`].
    pub credentials: Credentials,
}

impl NatsSource {
    fn object(&self) -> String {
        format!("{}/{}", self.topic.namespace, self.topic.event_source)
    }

    fn cred_err(&self, field: &str, problem: String) -> NatsError {
        NatsError::Credentials {
            object: self.object(),
            event: self.topic.event_name.clone(),
            field: field.to_owned(),
            problem,
        }
    }

    /// The client options for this source (auth, TLS, reconnect back-off, events to `events`).
    fn options(
        &self,
        events: mpsc::Sender<async_nats::Event>,
    ) -> Result<async_nats::ConnectOptions, NatsError> {
        let backoff = self.spec.backoff.clone();
        let mut opts = async_nats::ConnectOptions::new()
            .name(format!("cairn {}/{}", self.object(), self.topic.event_name))
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .subscription_capacity(SUBSCRIPTION_CAPACITY)
            .max_reconnects(None)
            .reconnect_delay_callback(move |attempt| backoff.delay(attempt, rand::random::<f64>()))
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    // State changes only; a full queue loses nothing that matters.
                    let _ = events.try_send(event);
                }
            });
        let c = &self.credentials;
        match &self.spec.auth {
            Some(AuthRef::Token(_)) => {
                let token = c
                    .text(FIELD_TOKEN)
                    .map_err(|e| self.cred_err(FIELD_TOKEN, e))?;
                opts = opts.token(token);
            }
            Some(AuthRef::Basic { .. }) => {
                let user = c
                    .text(FIELD_USERNAME)
                    .map_err(|e| self.cred_err(FIELD_USERNAME, e))?;
                let pass = c
                    .text(FIELD_PASSWORD)
                    .map_err(|e| self.cred_err(FIELD_PASSWORD, e))?;
                opts = opts.user_and_password(user, pass);
            }
            None => {}
        }
        if let Some(tls) = &self.spec.tls {
            let ca = c
                .bytes(FIELD_CA_CERT)
                .map_err(|e| self.cred_err(FIELD_CA_CERT, e))?;
            let client = match &tls.client {
                None => None,
                Some(_) => Some((
                    c.bytes(FIELD_CLIENT_CERT)
                        .map_err(|e| self.cred_err(FIELD_CLIENT_CERT, e))?,
                    c.bytes(FIELD_CLIENT_KEY)
                        .map_err(|e| self.cred_err(FIELD_CLIENT_KEY, e))?,
                )),
            };
            let config = tls_config(ca, client).map_err(|(field, e)| self.cred_err(field, e))?;
            opts = opts.require_tls(true).tls_client_config(config);
        }
        Ok(opts)
    }
}

/// Replaces every secret of `secrets` in `text`.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |out, s| out.replace(s.as_str(), "***"))
}

/// What ended the inner loop of [`run`].
enum Ended {
    Stopped,
    /// The subscription ended (the client closed): connect again.
    Closed,
}

/// Runs the source until `stop` completes: connects (retrying with the spec's back-off),
/// subscribes, and publishes every message that passes the filter on the bus. Reports the
/// connection state on `state`. Errors only when the credentials are unusable (a spec or
/// Secret problem the caller reports); connection and bus failures are retried.
pub async fn run(
    bus: AnyBus,
    source: NatsSource,
    state: watch::Sender<ConnState>,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), NatsError> {
    tokio::pin!(stop);
    let topic = source.topic.clone();
    let (shown, secrets) = crate::events::bus::nats::redact_url(&source.spec.url);
    let (ns, es, ev) = (
        topic.namespace.as_str(),
        topic.event_source.as_str(),
        topic.event_name.as_str(),
    );
    let mut attempts: u64 = 0;
    let mut connections: u64 = 0;
    loop {
        let (events_tx, mut events_rx) = mpsc::channel(64);
        let opts = source.options(events_tx)?;
        let connected = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_secs(1), opts.connect(source.spec.url.as_str())) => r,
            () = &mut stop => break,
        };
        let client = match connected {
            Ok(Ok(client)) => client,
            failed => {
                let error = match failed {
                    Ok(Err(e)) => scrub(&e.to_string(), &secrets),
                    _ => format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
                };
                let wait = source.spec.backoff.delay(
                    usize::try_from(attempts).unwrap_or(usize::MAX),
                    rand::random::<f64>(),
                );
                attempts += 1;
                metrics::counter!("cairn_events_nats_connect_failures_total").increment(1);
                tracing::warn!(namespace = ns, event_source = es, event = ev, url = %shown, attempts, %error, retry_in_ms = wait.as_millis() as u64, "nats source cannot connect; retrying");
                state.send_replace(ConnState::Connecting {
                    attempts,
                    error: Some(format!("cannot connect to {shown}: {error}")),
                });
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut stop => break,
                }
            }
        };
        let subscribed = tokio::time::timeout(REQUEST_TIMEOUT, async {
            let sub = match &source.spec.queue {
                Some(q) => {
                    client
                        .queue_subscribe(source.spec.subject.clone(), q.clone())
                        .await
                }
                None => client.subscribe(source.spec.subject.clone()).await,
            }
            .map_err(|e| e.to_string())?;
            // The server has the subscription once it answered a round trip after it.
            client.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>(sub)
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {}s", REQUEST_TIMEOUT.as_secs())));
        let mut sub = match subscribed {
            Ok(sub) => sub,
            Err(error) => {
                let error = scrub(&error, &secrets);
                let wait = source.spec.backoff.delay(
                    usize::try_from(attempts).unwrap_or(usize::MAX),
                    rand::random::<f64>(),
                );
                attempts += 1;
                metrics::counter!("cairn_events_nats_connect_failures_total").increment(1);
                tracing::warn!(namespace = ns, event_source = es, event = ev, url = %shown, subject = %source.spec.subject, %error, "nats source cannot subscribe; retrying");
                state.send_replace(ConnState::Connecting {
                    attempts,
                    error: Some(format!(
                        "cannot subscribe to {} on {shown}: {error}",
                        source.spec.subject
                    )),
                });
                tokio::select! {
                    () = tokio::time::sleep(wait) => continue,
                    () = &mut stop => break,
                }
            }
        };
        attempts = 0;
        connections += 1;
        tracing::info!(namespace = ns, event_source = es, event = ev, url = %shown, subject = %source.spec.subject, queue = source.spec.queue.as_deref().unwrap_or(""), "nats source subscribed");
        state.send_replace(ConnState::Subscribed { connections });
        // Whether the connection dropped since the last confirmed subscription.
        let mut dropped = false;
        let ended = loop {
            tokio::select! {
                msg = sub.next() => {
                    let Some(msg) = msg else { break Ended::Closed };
                    if handle(&bus, &source, &msg, &mut stop).await.is_err() {
                        break Ended::Stopped;
                    }
                }
                Some(event) = events_rx.recv() => match event {
                    // The client also announces its first connection: only a reconnection counts.
                    async_nats::Event::Connected if dropped => {
                        // The client re-sends the subscription before it reads this round
                        // trip's request, so the answer confirms the server has it.
                        if let Ok(Ok(())) = tokio::time::timeout(REQUEST_TIMEOUT, client.flush()).await {
                            dropped = false;
                            connections += 1;
                            tracing::info!(namespace = ns, event_source = es, event = ev, url = %shown, "nats source reconnected");
                            state.send_replace(ConnState::Subscribed { connections });
                        }
                    }
                    async_nats::Event::Disconnected => {
                        dropped = true;
                        metrics::counter!("cairn_events_nats_disconnects_total").increment(1);
                        tracing::warn!(namespace = ns, event_source = es, event = ev, url = %shown, "nats source disconnected; reconnecting (messages sent meanwhile are lost)");
                        state.send_replace(ConnState::Disconnected { connections });
                    }
                    async_nats::Event::SlowConsumer(_) => {
                        metrics::counter!("cairn_events_nats_slow_consumer_total").increment(1);
                        tracing::warn!(namespace = ns, event_source = es, event = ev, "nats source is a slow consumer: the server dropped messages");
                    }
                    other => {
                        tracing::debug!(namespace = ns, event_source = es, event = ev, nats_event = %scrub(&other.to_string(), &secrets), "nats client event");
                    }
                },
                () = &mut stop => break Ended::Stopped,
            }
        };
        match ended {
            Ended::Stopped => {
                // Messages the server already sent are not handled: at-most-once up to the bus.
                let _ = tokio::time::timeout(REQUEST_TIMEOUT, sub.unsubscribe()).await;
                break;
            }
            Ended::Closed => {
                tracing::warn!(namespace = ns, event_source = es, event = ev, url = %shown, "nats subscription closed; connecting again");
                state.send_replace(ConnState::Connecting {
                    attempts,
                    error: Some("the subscription was closed".to_owned()),
                });
            }
        }
    }
    state.send_replace(ConnState::Stopped);
    tracing::info!(
        namespace = ns,
        event_source = es,
        event = ev,
        "nats source stopped"
    );
    Ok(())
}

/// Publishes the event of `msg` (when it passes), retrying until the bus has it; `Err` when
/// `stop` completed while waiting to retry.
async fn handle<S: Future<Output = ()>>(
    bus: &AnyBus,
    source: &NatsSource,
    msg: &async_nats::Message,
    stop: &mut std::pin::Pin<&mut S>,
) -> Result<(), ()> {
    let topic = &source.topic;
    let (ns, es, ev) = (
        topic.namespace.as_str(),
        topic.event_source.as_str(),
        topic.event_name.as_str(),
    );
    let incoming = Incoming::from_message(msg);
    let event = match nats_event(
        topic,
        &source.spec,
        &incoming,
        rand::random(),
        Timestamp::now(),
    ) {
        Ok(e) => e,
        Err(reason) => {
            metrics::counter!("cairn_events_nats_dropped_total", "reason" => "body").increment(1);
            tracing::warn!(namespace = ns, event_source = es, event = ev, subject = %incoming.subject, %reason, "nats message dropped");
            return Ok(());
        }
    };
    if let Err(reason) = passes(&source.spec, &event.data) {
        metrics::counter!("cairn_events_nats_dropped_total", "reason" => "filter").increment(1);
        tracing::debug!(namespace = ns, event_source = es, event = ev, subject = %incoming.subject, %reason, "nats message filtered out");
        return Ok(());
    }
    let mut backoff = PUBLISH_RETRY_MIN;
    loop {
        match publish(bus, topic, event.clone()).await {
            Ok(_) => return Ok(()),
            Err(error) => {
                tracing::warn!(namespace = ns, event_source = es, event = ev, %error, retry_in_ms = backoff.as_millis() as u64, "nats event not published; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stop.as_mut() => return Err(()),
                }
                backoff = (backoff * 2).min(PUBLISH_RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests;
