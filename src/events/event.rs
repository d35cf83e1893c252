//! The event as sensors see it: a CloudEvents context plus JSON data, and the deterministic
//! event id every trigger side effect is keyed by.
//!
//! Argo Events wraps every event in CloudEvents `context` (id, source, specversion, type,
//! subject, time, datacontenttype) and `data`; a webhook's data is `{header, body}` (headers as
//! Go's `http.Header`, a map of canonical names to lists of values). `source` is the
//! EventSource's name and `subject` the event's name within it.
//!
//! Event ids: an event is identified by where it came from and by a delivery key the source
//! supplies (a webhook's bus sequence number, GitHub's `X-GitHub-Delivery`, a calendar's fire
//! time). [`event_id`] hashes those, so the same delivery always has the same id: a redelivered
//! or replayed event is recognisably the same event, and side effects keyed by the id (the
//! Workflow name of an `argoWorkflow` trigger) happen once.
//!
//! Invariant: pure; data is JSON (`serde_json::Value`); Argo's raw-bytes data with a YAML
//! content type is converted to JSON by the event source before it reaches here.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// CloudEvents spec version Argo Events emits.
pub const SPEC_VERSION: &str = "1.0";
/// Content type of every event cairn emits (data is JSON).
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The CloudEvents context of an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventContext {
    /// Unique id of the event (see [`event_id`]).
    pub id: String,
    /// The EventSource name.
    pub source: String,
    /// CloudEvents spec version ("1.0").
    pub specversion: String,
    /// The event source type ("webhook", "calendar", "github"...).
    #[serde(rename = "type")]
    pub type_: String,
    /// The event name within the EventSource.
    pub subject: String,
    /// Content type of `data`.
    pub datacontenttype: String,
    /// When the event was accepted.
    pub time: Timestamp,
}

/// An event: context and JSON data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// CloudEvents attributes.
    pub context: EventContext,
    /// The payload (for webhooks `{"header": {...}, "body": ...}`).
    pub data: Value,
}

impl Event {
    /// A webhook event, shaped as Argo's webhook event source shapes it.
    pub fn webhook(
        source: &str,
        subject: &str,
        id: String,
        time: Timestamp,
        header: &BTreeMap<String, Vec<String>>,
        body: Value,
    ) -> Event {
        Event {
            context: EventContext {
                id,
                source: source.to_owned(),
                specversion: SPEC_VERSION.to_owned(),
                type_: "webhook".to_owned(),
                subject: subject.to_owned(),
                datacontenttype: JSON_CONTENT_TYPE.to_owned(),
                time,
            },
            data: json!({"header": header, "body": body}),
        }
    }

    /// The context as JSON, what `contextKey` paths and context templates read.
    pub fn context_json(&self) -> Value {
        serde_json::to_value(&self.context).unwrap_or(Value::Null)
    }

    /// The whole event as JSON (`{"context": ..., "data": ...}`), what a parameter without key
    /// or template inserts. Argo marshals its data as base64 bytes there; cairn keeps it JSON.
    pub fn to_json(&self) -> Value {
        json!({"context": self.context_json(), "data": self.data})
    }
}

/// The deterministic id of an event: the first 128 bits of SHA-256 over the EventSource
/// (`namespace/name`), the event name and the source's delivery key, as 32 hex digits.
/// Fields are length-prefixed, so no two different inputs share a preimage.
pub fn event_id(namespace: &str, event_source: &str, event_name: &str, delivery: &str) -> String {
    let mut h = Sha256::new();
    for part in [namespace, event_source, event_name, delivery] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
impl Event {
    /// A webhook event `source/subject` with body `body`, id `id`, at `time` (RFC 3339).
    pub fn test_webhook(source: &str, subject: &str, id: &str, time: &str, body: Value) -> Event {
        let header = BTreeMap::from([(
            "Content-Type".to_owned(),
            vec![JSON_CONTENT_TYPE.to_owned()],
        )]);
        Event::webhook(
            source,
            subject,
            id.to_owned(),
            time.parse().expect("test time"),
            &header,
            body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_events_have_argo_shape() {
        let e = Event::test_webhook(
            "webhook",
            "example",
            "abc",
            "2026-01-02T03:04:05Z",
            json!({"dataset_uri": "s3://b/k"}),
        );
        insta::assert_json_snapshot!(e.to_json(), @r#"
        {
          "context": {
            "id": "abc",
            "source": "webhook",
            "specversion": "1.0",
            "type": "webhook",
            "subject": "example",
            "datacontenttype": "application/json",
            "time": "2026-01-02T03:04:05Z"
          },
          "data": {
            "header": {
              "Content-Type": [
                "application/json"
              ]
            },
            "body": {
              "dataset_uri": "s3://b/k"
            }
          }
        }
        "#);
        let back: Event = serde_json::from_value(e.to_json()).expect("round trip");
        assert_eq!(back, e);
    }

    #[test]
    fn event_ids_are_deterministic_and_distinct() {
        let a = event_id("ns", "webhook", "example", "42");
        assert_eq!(a, event_id("ns", "webhook", "example", "42"));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let others = [
            event_id("ns", "webhook", "example", "43"),
            event_id("ns2", "webhook", "example", "42"),
            event_id("ns", "webhook2", "example", "42"),
            event_id("ns", "webhook", "example2", "42"),
            // Moving a character across a field boundary changes the id.
            event_id("n", "swebhook", "example", "42"),
            event_id("ns", "webhook", "exampl", "e42"),
        ];
        for o in others {
            assert_ne!(a, o);
        }
    }
}
