//! The event bus: where event sources put events and from which sensors take them.
//!
//! One trait ([`Bus`]), two backends with the same semantics:
//! - `embedded` (the default): an append-only event log in cairn's redb with per-consumer
//!   durable cursors, acknowledgement, redelivery after `ack_wait`, retention by age and size;
//! - `nats`: NATS JetStream through `async-nats` — one stream, one durable pull consumer per
//!   sensor dependency, explicit acks.
//!
//! [`AnyBus`] picks one at start (`[events] bus` in `cairn.toml`), so callers are not generic.
//!
//! Semantics both backends keep (and that the conformance suite in `tests/common/bus.rs` checks
//! on each):
//! - [`Bus::publish`] returns only once the event is durable: a webhook answers 2xx after it.
//! - Events of one topic are delivered to a consumer in publish order; a consumer sees only
//!   events of its topic published after it was first created, and resumes where it stopped
//!   when it is ensured again (a restart loses nothing).
//! - Delivery is at-least-once: a delivery not acknowledged within the consumer's `ack_wait`
//!   is delivered again (with `attempt` incremented) by a later fetch. Acknowledging twice, or
//!   acknowledging an unknown sequence, is not an error.
//! - Consumers are independent: one consumer's acks never affect another's deliveries.
//! - Effectively-once side effects are the sensor's job: each event carries a stable id
//!   (`context.id`) that a redelivery keeps.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::event::Event;

pub mod embedded;
pub mod nats;

/// Where an event belongs: the EventSource (namespace and name) and the event's name in it.
/// A consumer follows exactly one topic (one sensor dependency).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Topic {
    /// Namespace of the EventSource.
    pub namespace: String,
    /// Name of the EventSource.
    pub event_source: String,
    /// The event's name within the EventSource (a key of e.g. `spec.webhook`).
    pub event_name: String,
}

impl Topic {
    /// A topic from its three parts.
    pub fn new(namespace: &str, event_source: &str, event_name: &str) -> Topic {
        Topic {
            namespace: namespace.to_owned(),
            event_source: event_source.to_owned(),
            event_name: event_name.to_owned(),
        }
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.namespace, self.event_source, self.event_name
        )
    }
}

/// A durable consumer: a sensor dependency's cursor on one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Durable name, unique on the bus (e.g. `<namespace>.<sensor>.<dependency>`, encoded by
    /// the caller with [`consumer_name`]).
    pub name: String,
    /// The topic it follows.
    pub topic: Topic,
    /// A delivery not acknowledged within this is delivered again.
    pub ack_wait: Duration,
}

/// One delivery of an event to a consumer.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The event's sequence number on the bus (what [`Bus::ack`] takes); increases with
    /// publish order.
    pub seq: u64,
    /// 1 on first delivery, then 2, 3... on redeliveries.
    pub attempt: u32,
    /// The topic it was published on.
    pub topic: Topic,
    /// The event.
    pub event: Event,
}

/// Which stored events [`Bus::recent`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only events of EventSources in this namespace.
    pub namespace: Option<String>,
    /// Only events of this EventSource (name, within `namespace` when that is set).
    pub event_source: Option<String>,
    /// Only events published at or after this time.
    pub since: Option<jiff::Timestamp>,
    /// At most this many (the newest ones).
    pub limit: usize,
}

/// A stored event as [`Bus::recent`] lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// Its sequence number on the bus.
    pub seq: u64,
    /// The topic it was published on.
    pub topic: Topic,
    /// The event.
    pub event: Event,
}

/// What a bus holds, for metrics and `cairn events list`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BusStats {
    /// Events stored.
    pub events: u64,
    /// Bytes they take (the backend's own measure).
    pub bytes: u64,
    /// Consumers known.
    pub consumers: u64,
}

/// Errors of the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The embedded log's database failed.
    #[error("event bus (embedded): {0}")]
    Store(#[from] crate::store::StoreError),
    /// NATS JetStream failed or could not be reached.
    #[error("event bus (NATS JetStream at {url}): {detail}")]
    Nats {
        /// The server URL (without credentials).
        url: String,
        /// What failed.
        detail: String,
    },
    /// A stored event could not be decoded.
    #[error("event bus: stored event {seq} is unreadable: {detail}")]
    Decode {
        /// Its sequence number.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// Fetch or ack named a consumer that was never ensured (or was deleted).
    #[error("event bus: no consumer named {0:?}")]
    UnknownConsumer(String),
    /// An event is larger than the bus accepts.
    #[error("event bus: event of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl BusError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            BusError::Store(_) => "store",
            BusError::Nats { .. } => "nats",
            BusError::Decode { .. } => "decode",
            BusError::UnknownConsumer(_) => "unknown_consumer",
            BusError::TooLarge { .. } => "too_large",
        }
    }
}

/// The bus. Implemented by [`embedded::EmbeddedBus`] and [`nats::NatsBus`]; see the module
/// docs for the semantics both keep.
pub trait Bus: Send + Sync + 'static {
    /// Appends `event` to `topic`; returns its sequence number once it is durable.
    fn publish(
        &self,
        topic: &Topic,
        event: &Event,
    ) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Creates the consumer, or updates its topic and `ack_wait` when it exists (its position
    /// is kept when the topic is unchanged; a changed topic starts at the end of the new one).
    fn ensure_consumer(
        &self,
        config: &ConsumerConfig,
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Up to `max` deliveries for `consumer`: redeliveries whose `ack_wait` has passed first,
    /// then new events in order. Waits up to `wait` when there is nothing to deliver, and
    /// returns early as soon as something is (an empty result after `wait` is not an error).
    fn fetch(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Delivery>, BusError>> + Send;

    /// Acknowledges deliveries: they are never delivered to `consumer` again.
    fn ack(
        &self,
        consumer: &str,
        seqs: &[u64],
    ) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Removes a consumer and its position (a deleted sensor). Unknown names are not an error.
    fn delete_consumer(&self, consumer: &str) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Durable names of every consumer (to delete those of sensors that are gone).
    fn consumers(&self) -> impl Future<Output = Result<Vec<String>, BusError>> + Send;

    /// What the bus holds.
    fn stats(&self) -> impl Future<Output = Result<BusStats, BusError>> + Send;

    /// Stored events matching `query`, newest first (what `cairn events list` shows). Reads
    /// only; no consumer's position changes.
    fn recent(
        &self,
        query: &EventQuery,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, BusError>> + Send;
}

/// The configured backend.
#[derive(Clone)]
pub enum AnyBus {
    /// The redb log (default).
    Embedded(embedded::EmbeddedBus),
    /// NATS JetStream.
    Nats(nats::NatsBus),
}

impl Bus for AnyBus {
    async fn publish(&self, topic: &Topic, event: &Event) -> Result<u64, BusError> {
        match self {
            AnyBus::Embedded(b) => b.publish(topic, event).await,
            AnyBus::Nats(b) => b.publish(topic, event).await,
        }
    }
    async fn ensure_consumer(&self, config: &ConsumerConfig) -> Result<(), BusError> {
        match self {
            AnyBus::Embedded(b) => b.ensure_consumer(config).await,
            AnyBus::Nats(b) => b.ensure_consumer(config).await,
        }
    }
    async fn fetch(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        match self {
            AnyBus::Embedded(b) => b.fetch(consumer, max, wait).await,
            AnyBus::Nats(b) => b.fetch(consumer, max, wait).await,
        }
    }
    async fn ack(&self, consumer: &str, seqs: &[u64]) -> Result<(), BusError> {
        match self {
            AnyBus::Embedded(b) => b.ack(consumer, seqs).await,
            AnyBus::Nats(b) => b.ack(consumer, seqs).await,
        }
    }
    async fn delete_consumer(&self, consumer: &str) -> Result<(), BusError> {
        match self {
            AnyBus::Embedded(b) => b.delete_consumer(consumer).await,
            AnyBus::Nats(b) => b.delete_consumer(consumer).await,
        }
    }
    async fn consumers(&self) -> Result<Vec<String>, BusError> {
        match self {
            AnyBus::Embedded(b) => b.consumers().await,
            AnyBus::Nats(b) => b.consumers().await,
        }
    }
    async fn stats(&self) -> Result<BusStats, BusError> {
        match self {
            AnyBus::Embedded(b) => b.stats().await,
            AnyBus::Nats(b) => b.stats().await,
        }
    }
    async fn recent(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, BusError> {
        match self {
            AnyBus::Embedded(b) => b.recent(query).await,
            AnyBus::Nats(b) => b.recent(query).await,
        }
    }
}

/// A consumer's durable name for a sensor dependency: `<namespace>.<sensor>.<dependency>`,
/// each part restricted to `[A-Za-z0-9_-]` (other bytes as `_xx` hex), which both backends
/// accept as a name (JetStream forbids `.`, `*`, `>` and whitespace in durable names, so the
/// separators are `__`).
pub fn consumer_name(namespace: &str, sensor: &str, dependency: &str) -> String {
    [namespace, sensor, dependency]
        .iter()
        .map(|p| encode_token(p))
        .collect::<Vec<_>>()
        .join("__")
}

/// `s` with every byte outside `[A-Za-z0-9-]` written as `_xx` (lowercase hex), so the result
/// is a single NATS subject token and a valid durable name, and distinct inputs stay distinct.
pub fn encode_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_safe_and_injective() {
        assert_eq!(encode_token("my-source"), "my-source");
        assert_eq!(encode_token("a.b"), "a_2eb");
        assert_eq!(encode_token("a_b"), "a_5fb");
        assert_eq!(encode_token("a b>*"), "a_20b_3e_2a");
        assert_ne!(encode_token("a.b"), encode_token("a_2eb"));
        assert_eq!(consumer_name("ns", "s.1", "dep"), "ns__s_2e1__dep");
        // "__" never occurs inside an encoded token, so the join is unambiguous.
        assert_ne!(consumer_name("a_", "b", "c"), consumer_name("a", "_b", "c"));
    }
}
