//! The events runtime: builds the configured bus and starts what runs on it (the EventSource
//! controller, the sensor controller), handing the HTTP side its state.
//!
//! Owns the start-up decisions of `[events]`:
//! - the backend: `embedded` (the redb log in cairn's store, with its retention task) unless
//!   `bus = "nats"`, or unless an Argo `EventBus` object sets `spec.jetstreamExotic.url`, which
//!   selects NATS JetStream at that URL (the one named `default` first, as Argo's sources use the
//!   bus named `default` when they name none; the others are logged as ignored);
//! - with a cluster client, the EventSource controller (`sources::controller`), dedicated ports
//!   bound on `[server] listen`'s address (loopback unless cairn itself is exposed);
//! - nothing at all when `[events] enabled = false` (event source routes answer 404).
//!
//! Invariant: a bus that cannot be built stops start-up with the reason (a webhook must never
//! answer 2xx without a durable bus behind it); every background task ends when `stop` fires.

use std::time::Duration;

use kube::api::{Api, ListParams};
use tokio::sync::watch;

use crate::config::{BusBackend, Config, EventsConfig};
use crate::events::bus::embedded::{EmbeddedBus, Retention};
use crate::events::bus::nats::NatsBus;
use crate::events::bus::{AnyBus, BusError};
use crate::events::history::History;
use crate::events::sources::controller::{self, Settings};
use crate::events::sources::webhook::EventsState;
use crate::events::types::EventBus;
use crate::store::Store;

/// How long start-up waits for the EventBus list.
const EVENTBUS_LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors that stop the events runtime from starting.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bus could not be opened or reached.
    #[error("events: {0}")]
    Bus(#[from] BusError),
    /// The sensor history's tables could not be created.
    #[error("events: sensor history: {0}")]
    History(#[from] crate::events::history::HistoryError),
}

impl RuntimeError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            RuntimeError::Bus(e) => e.metric_label(),
            RuntimeError::History(e) => e.metric_label(),
        }
    }
}

/// What a running events runtime gives the HTTP side.
#[derive(Clone)]
pub struct Running {
    /// The endpoint table and bus the webhook handlers use.
    pub state: EventsState,
    /// The bus (the events API lists from it).
    pub bus: AnyBus,
}

/// Builds the bus and starts the controllers; `None` when `[events] enabled = false`. The
/// tasks end when `stop` turns `true`.
pub async fn start(
    config: &Config,
    store: Store,
    client: Option<kube::Client>,
    stop: watch::Receiver<bool>,
) -> Result<Option<Running>, RuntimeError> {
    let events = &config.events;
    if !events.enabled {
        tracing::info!("events disabled ([events] enabled = false)");
        return Ok(None);
    }
    let exotic = match &client {
        Some(c) => eventbus_url(c, &events.namespaces).await,
        None => None,
    };
    let bus = build_bus(events, exotic.as_deref(), store.clone()).await?;
    if let AnyBus::Embedded(embedded) = &bus {
        let retention = tokio::spawn(embedded.clone().run_retention());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            retention.abort();
        });
    }
    let history = History::open(store.clone()).await?;
    let state = EventsState::new(bus.clone(), events.max_body_bytes).with_history(history);
    if let Some(client) = client {
        let settings = Settings::new(events.namespaces.clone(), config.server.listen.ip());
        let mut stop_es = stop.clone();
        tokio::spawn(controller::run(
            client.clone(),
            bus.clone(),
            store.clone(),
            state.clone(),
            settings,
            async move {
                let _ = stop_es.wait_for(|s| *s).await;
            },
        ));
        let mut stop_sensors = stop.clone();
        tokio::spawn(crate::events::sensor::controller::run(
            client,
            bus.clone(),
            store,
            events.clone(),
            async move {
                let _ = stop_sensors.wait_for(|s| *s).await;
            },
        ));
    }
    Ok(Some(Running { state, bus }))
}

/// The configured bus: NATS when `exotic_url` (from an EventBus object) or `bus = "nats"`, else
/// the embedded log over `store`.
pub async fn build_bus(
    events: &EventsConfig,
    exotic_url: Option<&str>,
    store: Store,
) -> Result<AnyBus, BusError> {
    match (exotic_url, &events.bus) {
        (Some(url), _) => {
            let mut cfg = events.clone();
            cfg.nats_url = Some(url.to_owned());
            tracing::info!("event bus: NATS JetStream (from an EventBus object)");
            Ok(AnyBus::Nats(NatsBus::from_config(&cfg).await?))
        }
        (None, BusBackend::Nats) => {
            tracing::info!("event bus: NATS JetStream");
            Ok(AnyBus::Nats(NatsBus::from_config(events).await?))
        }
        (None, BusBackend::Embedded) => {
            tracing::info!("event bus: embedded");
            Ok(AnyBus::Embedded(EmbeddedBus::open(
                store,
                Retention::from_config(events),
            )?))
        }
    }
}

/// The JetStream URL of an `EventBus` with `spec.jetstreamExotic.url`, if any: the one named
/// `default` first, then by namespace/name. A failed list is logged and means none.
async fn eventbus_url(client: &kube::Client, namespaces: &[String]) -> Option<String> {
    let mut buses: Vec<EventBus> = Vec::new();
    let apis: Vec<Api<EventBus>> = if namespaces.iter().all(String::is_empty) {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .map(|n| Api::namespaced(client.clone(), n))
            .collect()
    };
    for api in apis {
        match tokio::time::timeout(EVENTBUS_LIST_TIMEOUT, api.list(&ListParams::default())).await {
            Ok(Ok(list)) => buses.extend(list.items),
            Ok(Err(error)) => {
                tracing::warn!(%error, "EventBus objects not listed; using [events] bus");
                return None;
            }
            Err(_) => {
                tracing::warn!("EventBus objects not listed in time; using [events] bus");
                return None;
            }
        }
    }
    pick_exotic(&buses)
}

/// The pure choice of [`eventbus_url`].
fn pick_exotic(buses: &[EventBus]) -> Option<String> {
    let mut with_url: Vec<(bool, String, String, String)> = buses
        .iter()
        .filter_map(|b| {
            let url = b
                .spec
                .jetstream_exotic
                .as_ref()?
                .get("url")?
                .as_str()?
                .trim()
                .to_owned();
            (!url.is_empty()).then(|| {
                let name = b.metadata.name.clone().unwrap_or_default();
                (
                    name != "default",
                    b.metadata.namespace.clone().unwrap_or_default(),
                    name,
                    url,
                )
            })
        })
        .collect();
    with_url.sort();
    let (_, ns, name, url) = with_url.first()?.clone();
    for (_, ons, oname, _) in with_url.iter().skip(1) {
        tracing::warn!(chosen = %format!("{ns}/{name}"), ignored = %format!("{ons}/{oname}"), "several EventBus objects set jetstreamExotic.url; one bus serves cairn");
    }
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bus(ns: &str, name: &str, url: Option<&str>) -> EventBus {
        let spec = match url {
            Some(u) => json!({"jetstreamExotic": {"url": u}}),
            None => json!({"jetstream": {"version": "latest"}}),
        };
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventBus",
            "metadata": {"namespace": ns, "name": name}, "spec": spec
        }))
        .expect("EventBus")
    }

    #[test]
    fn an_exotic_eventbus_selects_nats_default_first() {
        assert_eq!(pick_exotic(&[]), None);
        assert_eq!(pick_exotic(&[bus("a", "default", None)]), None);
        assert_eq!(
            pick_exotic(&[
                bus("a", "other", Some("nats://a:4222")),
                bus("b", "default", Some("nats://b:4222")),
            ]),
            Some("nats://b:4222".to_owned())
        );
        assert_eq!(
            pick_exotic(&[
                bus("z", "x", Some("nats://z:4222")),
                bus("a", "y", Some("nats://a:4222")),
            ]),
            Some("nats://a:4222".to_owned())
        );
    }

    #[tokio::test]
    async fn the_embedded_bus_is_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let bus = build_bus(&EventsConfig::default(), None, store)
            .await
            .expect("embedded bus");
        assert!(matches!(bus, AnyBus::Embedded(_)));
    }
}
