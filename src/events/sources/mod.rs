//! Event sources run inside cairn: what each EventSource asks for, and the one way every source
//! puts an event on the bus.
//!
//! Owns:
//! - [`SourceContext`] and [`emit`]: every source (webhook, github, gitlab, calendar, resource)
//!   publishes through [`emit`], which puts the event on its [`Topic`] durably and counts it;
//! - the pure plan of the EventSources seen (see `plan` below): the endpoint table the HTTP
//!   handlers read, and per-EventSource status conditions (`SourcesProvided`, `Deployed`, as
//!   Argo Events names them).
//!
//! Invariants:
//! - [`emit`] returns only once the bus has the event durably; a webhook answers 2xx after it.
//! - An EventSource with a type cairn does not run (kafka, sqs...) is accepted: its object gets
//!   `Deployed=False` naming the type, and nothing else about it changes. A conflict (two
//!   EventSources claiming one dedicated port and path) is reported on the losing object.
//! - The plan is pure: the same EventSources in any order give the same table and conditions
//!   (objects are ordered by namespace/name first; the oldest claim of a port+path wins).

pub mod calendar;
pub mod resource;

use std::time::Instant;

use crate::events::bus::{AnyBus, Bus, BusError, Topic};
use crate::events::event::Event;
use crate::store::Store;

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
    let topic = ctx.topic(event_name);
    let kind = event.context.type_.clone();
    let start = Instant::now();
    let result = ctx.bus.publish(&topic, &event).await;
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
                namespace: ctx.namespace.clone(),
                event_source: ctx.event_source.clone(),
                event_name: event_name.to_owned(),
                source,
            })
        }
    }
}
