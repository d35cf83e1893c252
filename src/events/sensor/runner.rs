//! The runner of one Sensor: bus consumers in, triggers out, state in redb.
//!
//! [`SensorRunner::start`] loads the sensor's [`SensorState`] (table `events_sensor_state`)
//! and ensures one durable consumer per dependency ([`crate::events::bus::consumer_name`]).
//! [`SensorRunner::run`] then spawns one fetch task per dependency (fetches of at most
//! [`Settings::fetch_max`] deliveries, each waiting at most [`Settings::fetch_wait`]) feeding a
//! bounded channel, and one loop that takes batches from it:
//! 1. [`SensorRunner::process`]: [`super::step`] over the batch on a copy of the state; the
//!    new state (with its outbox) and the unmatched records are written in one transaction;
//!    only then does the copy become the state;
//! 2. [`SensorRunner::ack`]: the batch is acknowledged;
//! 3. [`SensorRunner::flush_outbox`]: each firing whose outcome the history does not have yet
//!    runs (paced by `rateLimit`, retried per `retryStrategy`, a deterministic error recorded at
//!    once), its outcome is recorded, and the trimmed outbox is written.
//!
//! A failure of the store or the bus leaves the deliveries unacknowledged (the bus redelivers
//! them after `ack_wait`) and is retried with a bounded backoff; a failing trigger is recorded
//! and never stops the runner, and one runner never stops another.
//!
//! Invariants: the state is durable before any acknowledgement; every wait is bounded; stopping
//! (the `stop` token) ends the fetch tasks and the loop between batches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use redb::TableDefinition;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{CompiledSensor, CompiledTrigger, Fire, SensorError, SensorState, step};
use crate::events::bus::{Bus, ConsumerConfig, Delivery};
use crate::events::history::{self, History, HistoryEntry, OutcomeResult, TriggerOutcome};
use crate::events::trigger::rate::Pacer;
use crate::events::trigger::{Executor, Firing};
use crate::store::{Store, StoreError};

/// Sensor states by `<namespace>/<name>` (JSON [`SensorState`]).
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("events_sensor_state");

/// How a runner fetches.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The consumers' `ack_wait`.
    pub ack_wait: Duration,
    /// Deliveries per fetch.
    pub fetch_max: usize,
    /// Longest wait of one fetch.
    pub fetch_wait: Duration,
    /// Deliveries processed per transaction at most.
    pub batch: usize,
}

impl Settings {
    /// Defaults around `ack_wait`: fetches of 64 waiting up to 1 s, batches of 256.
    pub fn new(ack_wait: Duration) -> Settings {
        Settings {
            ack_wait,
            fetch_max: 64,
            fetch_wait: Duration::from_secs(1),
            batch: 256,
        }
    }
}

/// One delivery with the dependency and consumer it came through.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// Dependency name.
    pub dependency: String,
    /// Consumer it was fetched from (what to ack on).
    pub consumer: String,
    /// The delivery.
    pub delivery: Delivery,
}

/// Reads a sensor's persisted state (empty when none).
pub fn load_state(store: &Store, key: &str) -> Result<SensorState, StoreError> {
    store.read(|txn| -> Result<SensorState, StoreError> {
        let table = match txn.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(SensorState::default()),
            Err(e) => return Err(e.into()),
        };
        let Some(v) = table.get(key)? else {
            return Ok(SensorState::default());
        };
        serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
            table: "events_sensor_state".into(),
            key: key.to_owned(),
            source,
        })
    })
}

fn put_state(
    txn: &redb::WriteTransaction,
    key: &str,
    state: &SensorState,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(state).map_err(|source| StoreError::Encode {
        table: "events_sensor_state".into(),
        key: key.to_owned(),
        source,
    })?;
    let mut table = txn.open_table(STATE)?;
    table.insert(key, bytes.as_slice())?;
    Ok(())
}

/// Removes a deleted sensor's state.
pub async fn delete_state(store: &Store, key: &str) -> Result<(), StoreError> {
    let key = key.to_owned();
    store
        .write(move |txn| -> Result<(), StoreError> {
            let mut table = txn.open_table(STATE)?;
            table.remove(key.as_str())?;
            Ok(())
        })
        .await
}

/// Keys of every persisted sensor state (to remove those of sensors that are gone).
pub fn state_keys(store: &Store) -> Result<Vec<String>, StoreError> {
    store.read(|txn| -> Result<Vec<String>, StoreError> {
        let table = match txn.open_table(STATE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        use redb::ReadableTable as _;
        table
            .iter()?
            .map(|e| {
                e.map(|(k, _)| k.value().to_owned())
                    .map_err(StoreError::from)
            })
            .collect()
    })
}

/// One Sensor at work.
pub struct SensorRunner<B: Bus + Clone> {
    sensor: Arc<CompiledSensor>,
    bus: B,
    history: History,
    executor: Executor,
    settings: Settings,
    state: SensorState,
    pacers: HashMap<String, Pacer>,
}

impl<B: Bus + Clone> SensorRunner<B> {
    /// Loads the sensor's state and ensures its consumers.
    pub async fn start(
        sensor: Arc<CompiledSensor>,
        bus: B,
        history: History,
        executor: Executor,
        settings: Settings,
    ) -> Result<Self, SensorError> {
        let key = sensor.key();
        let mut state = load_state(history.store(), &key).map_err(|source| SensorError::Store {
            sensor: key.clone(),
            source,
        })?;
        state.retain_known(&sensor);
        for dep in sensor.dependencies.values() {
            bus.ensure_consumer(&ConsumerConfig {
                name: dep.consumer.clone(),
                topic: dep.topic.clone(),
                ack_wait: settings.ack_wait,
            })
            .await
            .map_err(|source| SensorError::Bus {
                sensor: key.clone(),
                source,
            })?;
        }
        let pacers = sensor
            .triggers
            .iter()
            .filter_map(|t| t.rate.as_ref().map(|r| (t.name.clone(), Pacer::new(r))))
            .collect();
        Ok(SensorRunner {
            sensor,
            bus,
            history,
            executor,
            settings,
            state,
            pacers,
        })
    }

    /// The current state (for tests and diagnostics).
    pub fn state(&self) -> &SensorState {
        &self.state
    }

    /// Steps through a batch and makes the result durable (see the module docs). Returns
    /// what to acknowledge, by consumer.
    pub async fn process(
        &mut self,
        batch: Vec<Incoming>,
    ) -> Result<Vec<(String, u64)>, SensorError> {
        let key = self.sensor.key();
        let mut next = self.state.clone();
        let mut unmatched = Vec::new();
        let mut acks = Vec::with_capacity(batch.len());
        let now = Timestamp::now();
        for inc in &batch {
            let out = step(&self.sensor, &mut next, &inc.dependency, &inc.delivery, now);
            acks.push((inc.consumer.clone(), out.ack));
            if out.duplicate {
                metrics::counter!("cairn_events_sensor_redeliveries_total").increment(1);
                continue;
            }
            if let Some(u) = out.unmatched {
                tracing::debug!(sensor = %key, dependency = %u.dependency, event_id = %u.event_id, reason = %u.reason, "event not used");
                metrics::counter!("cairn_events_sensor_unmatched_total").increment(1);
                unmatched.push(HistoryEntry::Unmatched(u));
            }
            for f in &out.fires {
                tracing::debug!(sensor = %key, trigger = %f.trigger, "trigger conditions met");
            }
        }
        if next != self.state || !unmatched.is_empty() {
            let (ns, name) = (self.sensor.namespace.clone(), self.sensor.name.clone());
            let (state_key, to_write) = (key.clone(), next.clone());
            self.history
                .store()
                .write(move |txn| -> Result<(), StoreError> {
                    put_state(txn, &state_key, &to_write)?;
                    history::record_in(txn, &ns, &name, &unmatched)?;
                    Ok(())
                })
                .await
                .map_err(|source| SensorError::Store {
                    sensor: key.clone(),
                    source,
                })?;
        }
        self.state = next;
        Ok(acks)
    }

    /// Acknowledges deliveries, grouped by consumer.
    pub async fn ack(&self, acks: &[(String, u64)]) -> Result<(), SensorError> {
        let mut by_consumer: HashMap<&str, Vec<u64>> = HashMap::new();
        for (c, seq) in acks {
            by_consumer.entry(c.as_str()).or_default().push(*seq);
        }
        for (consumer, seqs) in by_consumer {
            self.bus
                .ack(consumer, &seqs)
                .await
                .map_err(|source| SensorError::Bus {
                    sensor: self.sensor.key(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Runs every firing of the outbox whose outcome is not recorded, records the outcomes and
    /// writes the trimmed outbox. Firings run concurrently; a trigger's `rateLimit` spaces its
    /// own.
    pub async fn flush_outbox(&mut self) -> Result<(), SensorError> {
        if self.state.outbox.is_empty() {
            return Ok(());
        }
        let key = self.sensor.key();
        let hist_err = |source| SensorError::History {
            sensor: key.clone(),
            source,
        };
        let now = tokio::time::Instant::now();
        let mut todo = Vec::new();
        for fire in &self.state.outbox {
            let ids = fire.event_ids();
            let done = self
                .history
                .outcome(
                    &self.sensor.namespace,
                    &self.sensor.name,
                    &fire.trigger,
                    &ids,
                )
                .map_err(hist_err)?;
            if done.is_some() {
                continue;
            }
            let Some(t) = self
                .sensor
                .triggers
                .iter()
                .position(|t| t.name == fire.trigger)
            else {
                continue;
            };
            let delay = self
                .pacers
                .get_mut(&fire.trigger)
                .map_or(Duration::ZERO, |p| p.reserve(now));
            todo.push((t, fire.clone(), delay));
        }
        let sensor = self.sensor.clone();
        let jobs: Vec<_> = todo
            .iter()
            .filter_map(|(t, fire, delay)| {
                sensor.triggers.get(*t).map(|t| self.fire(t, fire, *delay))
            })
            .collect();
        let outcomes: Vec<HistoryEntry> = futures::future::join_all(jobs)
            .await
            .into_iter()
            .map(HistoryEntry::Outcome)
            .collect();
        self.history
            .record(&self.sensor.namespace, &self.sensor.name, outcomes)
            .await
            .map_err(hist_err)?;
        let mut next = self.state.clone();
        next.outbox.clear();
        let (state_key, to_write) = (key.clone(), next.clone());
        self.history
            .store()
            .write(move |txn| put_state(txn, &state_key, &to_write))
            .await
            .map_err(|source| SensorError::Store {
                sensor: key.clone(),
                source,
            })?;
        self.state = next;
        Ok(())
    }

    /// One firing with its retries; never fails (a failure is an outcome).
    async fn fire(&self, t: &CompiledTrigger, fire: &Fire, delay: Duration) -> TriggerOutcome {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let ids = fire.event_ids();
        let firing = Firing {
            sensor_namespace: &self.sensor.namespace,
            sensor: &self.sensor.name,
            trigger: &t.spec,
            events: &fire.events,
            event_ids: &ids,
        };
        let mut attempts = 0u32;
        let result = loop {
            attempts += 1;
            match self.executor.execute(&firing).await {
                Ok(r) => break r,
                Err(e) => {
                    let wait = if e.retryable() {
                        t.backoff.wait(attempts - 1, rand::random::<f64>())
                    } else {
                        None
                    };
                    tracing::warn!(
                        sensor = %self.sensor.key(),
                        trigger = %t.name,
                        attempt = attempts,
                        error = %e,
                        retry_in_ms = wait.map(|w| w.as_millis() as u64),
                        "trigger failed"
                    );
                    match wait {
                        Some(w) => tokio::time::sleep(w).await,
                        None => {
                            break OutcomeResult::Failed {
                                error: e.to_string(),
                            };
                        }
                    }
                }
            }
        };
        let label = match &result {
            OutcomeResult::Failed { .. } => "failed",
            _ => "succeeded",
        };
        metrics::counter!("cairn_events_triggers_total", "result" => label).increment(1);
        tracing::info!(sensor = %self.sensor.key(), trigger = %t.name, result = label, attempts, "trigger fired");
        TriggerOutcome {
            trigger: t.name.clone(),
            event_ids: ids,
            at: Timestamp::now(),
            attempts,
            result,
        }
    }

    /// Runs until `stop` is cancelled (see the module docs).
    pub async fn run(mut self, stop: CancellationToken) {
        let key = self.sensor.key();
        let (tx, mut rx) = mpsc::channel::<Incoming>(self.settings.batch.max(1));
        let fetch_stop = stop.child_token();
        let mut fetchers = Vec::new();
        for (name, dep) in &self.sensor.dependencies {
            let (bus, tx, stop) = (self.bus.clone(), tx.clone(), fetch_stop.clone());
            let (dependency, consumer) = (name.clone(), dep.consumer.clone());
            let (max, wait, key) = (
                self.settings.fetch_max,
                self.settings.fetch_wait,
                key.clone(),
            );
            fetchers.push(tokio::spawn(async move {
                let mut backoff = Duration::from_millis(200);
                loop {
                    let got = tokio::select! {
                        () = stop.cancelled() => return,
                        got = bus.fetch(&consumer, max, wait) => got,
                    };
                    match got {
                        Ok(deliveries) => {
                            backoff = Duration::from_millis(200);
                            for delivery in deliveries {
                                let inc = Incoming {
                                    dependency: dependency.clone(),
                                    consumer: consumer.clone(),
                                    delivery,
                                };
                                if tx.send(inc).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(error) => {
                            tracing::warn!(sensor = %key, %consumer, %error, retry_in_ms = backoff.as_millis() as u64, "fetch failed");
                            tokio::select! {
                                () = stop.cancelled() => return,
                                () = tokio::time::sleep(backoff) => {}
                            }
                            backoff = (backoff * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            }));
        }
        drop(tx);
        tracing::info!(sensor = %key, dependencies = self.sensor.dependencies.len(), triggers = self.sensor.triggers.len(), "sensor running");
        let mut backoff = Duration::from_millis(200);
        loop {
            if let Err(error) = self.flush_outbox().await {
                tracing::warn!(sensor = %key, %error, "trigger outcomes not recorded; retrying");
            }
            let retry_outbox = !self.state.outbox.is_empty();
            let first = tokio::select! {
                () = stop.cancelled() => break,
                first = rx.recv() => first,
                () = tokio::time::sleep(backoff), if retry_outbox => {
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while batch.len() < self.settings.batch {
                match rx.try_recv() {
                    Ok(inc) => batch.push(inc),
                    Err(_) => break,
                }
            }
            match self.process(batch).await {
                Ok(acks) => {
                    backoff = Duration::from_millis(200);
                    if let Err(error) = self.ack(&acks).await {
                        // Redelivered after ack_wait and recognised as already processed.
                        tracing::warn!(sensor = %key, %error, "ack failed");
                    }
                }
                Err(error) => {
                    metrics::counter!("cairn_events_sensor_errors_total", "reason" => error.metric_label()).increment(1);
                    tracing::warn!(sensor = %key, %error, retry_in_ms = backoff.as_millis() as u64, "events not processed; the bus redelivers them");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        fetch_stop.cancel();
        for f in fetchers {
            f.abort();
        }
        tracing::info!(sensor = %key, "sensor stopped");
    }
}
