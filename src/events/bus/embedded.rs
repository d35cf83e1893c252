//! The embedded event bus: an append-only event log in cairn's redb, with durable consumers.
//!
//! What this module owns: the `event_*` tables of the store (see `store::tables`):
//! - `event_log`: sequence number -> (publish time, topic key, JSON `{topic, event}`);
//! - `event_topic_index`: (topic key, sequence number), so a consumer scans only its topic;
//! - `event_consumers`: name -> [`ConsumerRecord`] (topic, `ack_wait`, cursor);
//! - `event_inflight`: (consumer, sequence number) -> (redelivery deadline, attempt);
//! - `event_bus_state`: the counters `next_seq`, `events`, `bytes`.
//!
//! Invariants:
//! - Every change is one closure in `Store::write`, so it is durable when the call returns and
//!   concurrent publishers share commits (group commit). Closures depend only on their
//!   transaction and on values captured before the call (the clock is read outside), because
//!   the store may run them twice.
//! - Sequence numbers start at 1, increase with commit order and are never reused, even after
//!   retention emptied the log (`next_seq` is kept apart from the log).
//! - A consumer's cursor is the highest sequence number of its topic it has been handed (or that
//!   existed when it was created); everything above it in its topic is new to it. A delivery is
//!   in flight from its fetch until it is acknowledged; when its deadline passes, a fetch hands it
//!   out again with `attempt + 1`. At most [`MAX_ACK_PENDING`] deliveries of a consumer are in
//!   flight; beyond that only redeliveries are handed out (as JetStream's `max_ack_pending`).
//! - Deadlines are wall-clock Unix milliseconds, so in-flight deliveries survive a restart; a
//!   clock stepped backwards delays redelivery by the step, never loses it.
//! - Retention drops a prefix of the log (oldest first, by age and by total bytes); an entry
//!   dropped takes its index row and every consumer's in-flight row for it along. A consumer
//!   whose cursor is behind the dropped prefix simply continues with what is left.
//! - The `events` and `bytes` counters equal the count and the summed value sizes of `event_log`.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{
    Bus, BusError, BusStats, ConsumerConfig, Delivery, EventQuery, StoredEvent, Topic, encode_token,
};
use crate::config::EventsConfig;
use crate::events::event::Event;
use crate::store::tables::{
    EVENT_BUS_STATE, EVENT_CONSUMERS, EVENT_INFLIGHT, EVENT_LOG, EVENT_TOPIC_INDEX,
};
use crate::store::{Store, StoreError};

/// Largest event accepted (encoded): a webhook body is limited to `max_body_bytes` (1 MiB by
/// default) and headers add little; this leaves room for larger configured bodies while keeping
/// one fetch's memory bounded.
pub const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// Deliveries of one consumer in flight at most (JetStream's default `max_ack_pending`): bounds
/// the in-flight scan of every fetch.
pub const MAX_ACK_PENDING: usize = 1000;

/// Log entries one retention transaction drops at most, so the writer is never held for long.
const RETENTION_CHUNK: usize = 10_000;

/// Retention transactions one pass runs at most (`RETENTION_CHUNK` each); the next pass, a
/// minute later, continues.
const RETENTION_ROUNDS: usize = 1_000;

/// How often [`EmbeddedBus::run_retention`] applies retention.
const RETENTION_PERIOD: Duration = Duration::from_secs(60);

/// Log entries [`Bus::recent`] examines at most, newest first, however selective the query.
const RECENT_SCAN: usize = 200_000;

/// Publish times are read before the write that assigns the sequence number, so concurrent
/// publishes may be out of time order by this much; `recent` scans that far past `since`.
const PUBLISH_SKEW_MS: u64 = 60_000;

/// `event_bus_state` keys.
const NEXT_SEQ: &str = "next_seq";
const EVENTS: &str = "events";
const BYTES: &str = "bytes";

/// How long the embedded log keeps events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Events older than this (by publish time) are dropped.
    pub max_age: Duration,
    /// The oldest events are dropped while the log holds more bytes than this.
    pub max_bytes: u64,
}

impl Retention {
    /// The `[events]` section's retention settings.
    pub fn from_config(config: &EventsConfig) -> Retention {
        Retention {
            max_age: config.retention_max_age,
            max_bytes: config.retention_max_bytes,
        }
    }
}

/// A durable consumer as stored in `event_consumers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConsumerRecord {
    /// The topic it follows.
    pub topic: Topic,
    /// Redelivery timeout in milliseconds.
    pub ack_wait_ms: u64,
    /// Highest sequence number of `topic` handed out (or the log's end when it was created).
    pub cursor: u64,
}

/// What a log entry weighs, as retention sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Sequence number.
    pub seq: u64,
    /// Publish time, Unix ms.
    pub time_ms: u64,
    /// Stored size in bytes.
    pub bytes: u64,
}

/// What one retention step drops: the log prefix up to `drop_through`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    /// Every entry with a sequence number at or below this goes; `None`: nothing goes.
    pub drop_through: Option<u64>,
    /// Entries dropped.
    pub events: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Plans one retention step over the oldest entries of the log (`oldest_first`, in sequence
/// order), given the bytes the whole log holds: entries go from the front while they are older
/// than `max_age` or the log is over `max_bytes`, and at most `max_drop` of them. The first entry
/// that may stay ends the prefix (a slightly younger entry published out of time order keeps the
/// ones behind it until the next step).
pub fn retention_plan(
    oldest_first: impl IntoIterator<Item = EntryMeta>,
    total_bytes: u64,
    now_ms: u64,
    retention: &Retention,
    max_drop: usize,
) -> RetentionPlan {
    let max_age_ms = u64::try_from(retention.max_age.as_millis()).unwrap_or(u64::MAX);
    let cutoff = now_ms.saturating_sub(max_age_ms);
    let mut remaining = total_bytes;
    let mut plan = RetentionPlan::default();
    for entry in oldest_first.into_iter().take(max_drop) {
        let too_old = entry.time_ms < cutoff;
        let too_big = remaining > retention.max_bytes;
        if !too_old && !too_big {
            break;
        }
        remaining = remaining.saturating_sub(entry.bytes);
        plan.drop_through = Some(entry.seq);
        plan.events += 1;
        plan.bytes += entry.bytes;
    }
    plan
}

/// What a retention pass dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Entries dropped.
    pub events: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// The key of a topic in the index and the log: its three parts through
/// [`encode_token`](super::encode_token) joined by `.` (which `encode_token` never emits, so
/// distinct topics have distinct keys and the namespace is a prefix).
pub fn topic_key(topic: &Topic) -> String {
    format!(
        "{}.{}.{}",
        encode_token(&topic.namespace),
        encode_token(&topic.event_source),
        encode_token(&topic.event_name)
    )
}

/// Whether a topic key matches `query`'s namespace and event source filters.
fn key_matches(key: &str, query: &EventQuery) -> bool {
    let mut parts = key.split('.');
    let (Some(ns), Some(es)) = (parts.next(), parts.next()) else {
        return false;
    };
    query
        .namespace
        .as_deref()
        .is_none_or(|want| encode_token(want) == ns)
        && query
            .event_source
            .as_deref()
            .is_none_or(|want| encode_token(want) == es)
}

/// The log's JSON value, borrowed for encoding.
#[derive(Serialize)]
struct LogRecordRef<'a> {
    topic: &'a Topic,
    event: &'a Event,
}

/// The log's JSON value, decoded.
#[derive(Deserialize)]
struct LogRecord {
    topic: Topic,
    event: Event,
}

/// The stored size of a log entry (what `bytes` counts): its value's three fields.
fn entry_size(key: &str, json: &[u8]) -> u64 {
    (8 + key.len() + json.len()) as u64
}

/// Maps any redb error the store knows into a bus error.
trait Db<T> {
    fn db(self) -> Result<T, BusError>;
}

impl<T, E> Db<T> for Result<T, E>
where
    StoreError: From<E>,
{
    fn db(self) -> Result<T, BusError> {
        self.map_err(|e| BusError::Store(StoreError::from(e)))
    }
}

fn now_ms() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn decode_consumer(name: &str, bytes: &[u8]) -> Result<ConsumerRecord, BusError> {
    serde_json::from_slice(bytes).map_err(|source| {
        BusError::Store(StoreError::Decode {
            table: "event_consumers".to_owned(),
            key: name.to_owned(),
            source,
        })
    })
}

fn encode_consumer(name: &str, record: &ConsumerRecord) -> Result<Vec<u8>, BusError> {
    serde_json::to_vec(record).map_err(|source| {
        BusError::Store(StoreError::Encode {
            table: "event_consumers".to_owned(),
            key: name.to_owned(),
            source,
        })
    })
}

fn get_consumer(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<ConsumerRecord>, BusError> {
    match table.get(name).db()? {
        Some(guard) => decode_consumer(name, guard.value()).map(Some),
        None => Ok(None),
    }
}

fn get_counter(table: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, BusError> {
    Ok(table.get(key).db()?.map(|g| g.value()).unwrap_or(0))
}

/// The sequence number the next publish gets (1 on an empty bus).
fn next_seq(table: &impl ReadableTable<&'static str, u64>) -> Result<u64, BusError> {
    Ok(get_counter(table, NEXT_SEQ)?.max(1))
}

/// Removes every in-flight row of `consumer` (with a sequence number up to `through`).
fn clear_inflight(txn: &WriteTransaction, consumer: &str, through: u64) -> Result<(), BusError> {
    let mut inflight = txn.open_table(EVENT_INFLIGHT).db()?;
    let doomed: Vec<u64> = inflight
        .range((consumer, 0)..=(consumer, through))
        .db()?
        .map(|entry| entry.map(|(k, _)| k.value().1))
        .collect::<Result<_, _>>()
        .db()?;
    for seq in doomed {
        inflight.remove((consumer, seq)).db()?;
    }
    Ok(())
}

/// What a read found about a consumer before deciding whether to fetch.
struct Probe {
    /// The consumer's topic key.
    key: String,
    /// Something can be delivered now.
    ready: bool,
    /// The earliest deadline of its in-flight deliveries (Unix ms), if any.
    next_deadline: Option<u64>,
}

/// A fetch's hold on its topic's waker; the map entry goes when the last holder drops.
struct WakerGuard<'a> {
    bus: &'a EmbeddedBus,
    key: String,
    waker: Arc<Notify>,
}

impl<'a> WakerGuard<'a> {
    fn new(bus: &'a EmbeddedBus, key: &str) -> WakerGuard<'a> {
        let mut wakers = bus
            .inner
            .wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let waker = wakers
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone();
        WakerGuard {
            bus,
            key: key.to_owned(),
            waker,
        }
    }
}

impl Drop for WakerGuard<'_> {
    fn drop(&mut self) {
        let mut wakers = self
            .bus
            .inner
            .wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Two holders: the map and this guard, about to go.
        if wakers
            .get(&self.key)
            .is_some_and(|w| Arc::ptr_eq(w, &self.waker) && Arc::strong_count(w) == 2)
        {
            wakers.remove(&self.key);
        }
    }
}

/// The embedded bus. Cheap to clone; clones share the store and the wake-ups.
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    retention: Retention,
    /// Per topic key: woken after a publish to it commits. Entries exist while a fetch waits.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBus")
            .field("store", &self.inner.store)
            .field("retention", &self.inner.retention)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBus {
    /// The bus over `store` (whose schema already has the event tables: `Store::open` upgrades
    /// it). Reads the counters once to check the tables answer.
    pub fn open(store: Store, retention: Retention) -> Result<EmbeddedBus, BusError> {
        store.read(|txn| -> Result<(), BusError> {
            let state = txn.open_table(EVENT_BUS_STATE).db()?;
            next_seq(&state)?;
            Ok(())
        })?;
        Ok(EmbeddedBus {
            inner: Arc::new(Inner {
                store,
                retention,
                wakers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The retention this bus applies.
    pub fn retention(&self) -> Retention {
        self.inner.retention
    }

    /// Applies retention every minute, for as long as the task runs (abort it, or drop the
    /// runtime, to stop). Failures are logged and retried at the next tick.
    pub async fn run_retention(self) {
        let mut tick = tokio::time::interval(RETENTION_PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.apply_retention().await {
                Ok(outcome) if outcome.events > 0 => tracing::info!(
                    events = outcome.events,
                    bytes = outcome.bytes,
                    "event bus retention dropped old events"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = %e,
                    kind = e.metric_label(),
                    "event bus retention failed; retrying at the next tick"
                ),
            }
        }
    }

    /// One retention pass now: drops what [`retention_plan`] says, in transactions of at most
    /// `RETENTION_CHUNK` entries, until nothing more is due (or `RETENTION_ROUNDS` ran).
    pub async fn apply_retention(&self) -> Result<RetentionOutcome, BusError> {
        let mut outcome = RetentionOutcome::default();
        for _ in 0..RETENTION_ROUNDS {
            let now = now_ms();
            let retention = self.inner.retention;
            // A read first: most passes drop nothing and need no commit.
            let due = self.inner.store.read(|txn| -> Result<bool, BusError> {
                let log = txn.open_table(EVENT_LOG).db()?;
                let state = txn.open_table(EVENT_BUS_STATE).db()?;
                let plan = plan_in(&log, &state, now, &retention)?;
                Ok(plan.drop_through.is_some())
            })?;
            if !due {
                break;
            }
            let plan = self
                .inner
                .store
                .write(move |txn| drop_prefix(txn, now, &retention))
                .await?;
            outcome.events += plan.events;
            outcome.bytes += plan.bytes;
            if plan.events < RETENTION_CHUNK as u64 {
                break;
            }
        }
        Ok(outcome)
    }

    fn wake(&self, key: &str) {
        let wakers = self
            .inner
            .wakers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(waker) = wakers.get(key) {
            waker.notify_waiters();
        }
    }

    /// Reads whether `consumer` has something to deliver at `now`.
    fn probe(&self, consumer: &str, now: u64) -> Result<Probe, BusError> {
        self.inner.store.read(|txn| {
            let consumers = txn.open_table(EVENT_CONSUMERS).db()?;
            let record = get_consumer(&consumers, consumer)?
                .ok_or_else(|| BusError::UnknownConsumer(consumer.to_owned()))?;
            let key = topic_key(&record.topic);
            let inflight = txn.open_table(EVENT_INFLIGHT).db()?;
            let mut pending = 0usize;
            let mut next_deadline: Option<u64> = None;
            for entry in inflight.range((consumer, 0)..=(consumer, u64::MAX)).db()? {
                let (_, value) = entry.db()?;
                let (deadline, _) = value.value();
                pending += 1;
                next_deadline = Some(next_deadline.map_or(deadline, |d| d.min(deadline)));
            }
            let redelivery_due = next_deadline.is_some_and(|d| d <= now);
            let new_ready = pending < MAX_ACK_PENDING && {
                let index = txn.open_table(EVENT_TOPIC_INDEX).db()?;
                let mut newer = index
                    .range(
                        (key.as_str(), record.cursor.saturating_add(1))..=(key.as_str(), u64::MAX),
                    )
                    .db()?;
                newer.next().is_some()
            };
            Ok(Probe {
                key,
                ready: redelivery_due || new_ready,
                next_deadline,
            })
        })
    }

    /// Hands out up to `max` deliveries in one durable write: due redeliveries first, then new
    /// events of the consumer's topic in order.
    async fn claim(&self, consumer: &str, max: usize, now: u64) -> Result<Vec<Delivery>, BusError> {
        let name = consumer.to_owned();
        self.inner
            .store
            .write(move |txn| claim_in(txn, &name, max, now))
            .await
    }
}

/// The retention plan for the log as `log` and `state` hold it.
fn plan_in(
    log: &impl ReadableTable<u64, (u64, &'static str, &'static [u8])>,
    state: &impl ReadableTable<&'static str, u64>,
    now: u64,
    retention: &Retention,
) -> Result<RetentionPlan, BusError> {
    let total = get_counter(state, BYTES)?;
    let mut failed = None;
    // Read lazily: the plan stops at the first entry that stays.
    let oldest_first = log.range(0u64..).db()?.map_while(|entry| match entry {
        Ok((k, v)) => {
            let (time_ms, key, json) = v.value();
            Some(EntryMeta {
                seq: k.value(),
                time_ms,
                bytes: entry_size(key, json),
            })
        }
        Err(e) => {
            failed = Some(e);
            None
        }
    });
    let plan = retention_plan(oldest_first, total, now, retention, RETENTION_CHUNK);
    match failed {
        Some(e) => Err(e).db(),
        None => Ok(plan),
    }
}

/// Drops the log prefix the plan names, with its index and in-flight rows, and updates the
/// counters. Returns what it dropped.
fn drop_prefix(
    txn: &WriteTransaction,
    now: u64,
    retention: &Retention,
) -> Result<RetentionPlan, BusError> {
    let mut log = txn.open_table(EVENT_LOG).db()?;
    let mut state = txn.open_table(EVENT_BUS_STATE).db()?;
    let plan = plan_in(&log, &state, now, retention)?;
    let Some(through) = plan.drop_through else {
        return Ok(plan);
    };
    let mut dropped: Vec<(u64, String)> = Vec::new();
    for entry in log.range(0..=through).db()? {
        let (k, v) = entry.db()?;
        dropped.push((k.value(), v.value().1.to_owned()));
    }
    let mut index = txn.open_table(EVENT_TOPIC_INDEX).db()?;
    for (seq, key) in &dropped {
        log.remove(*seq).db()?;
        index.remove((key.as_str(), *seq)).db()?;
    }
    let names: Vec<String> = {
        let consumers = txn.open_table(EVENT_CONSUMERS).db()?;
        consumers
            .iter()
            .db()?
            .map(|entry| entry.map(|(k, _)| k.value().to_owned()))
            .collect::<Result<_, _>>()
            .db()?
    };
    for name in &names {
        clear_inflight(txn, name, through)?;
    }
    let events = get_counter(&state, EVENTS)?.saturating_sub(plan.events);
    let bytes = get_counter(&state, BYTES)?.saturating_sub(plan.bytes);
    state.insert(EVENTS, events).db()?;
    state.insert(BYTES, bytes).db()?;
    Ok(plan)
}

/// The write of a fetch (see [`EmbeddedBus::claim`]).
fn claim_in(
    txn: &WriteTransaction,
    consumer: &str,
    max: usize,
    now: u64,
) -> Result<Vec<Delivery>, BusError> {
    let mut consumers = txn.open_table(EVENT_CONSUMERS).db()?;
    let mut record = get_consumer(&consumers, consumer)?
        .ok_or_else(|| BusError::UnknownConsumer(consumer.to_owned()))?;
    let deadline = now.saturating_add(record.ack_wait_ms);
    let log = txn.open_table(EVENT_LOG).db()?;
    let mut inflight = txn.open_table(EVENT_INFLIGHT).db()?;

    // Due redeliveries, oldest sequence first.
    let mut pending = 0usize;
    let mut due: Vec<(u64, u32)> = Vec::new();
    for entry in inflight.range((consumer, 0)..=(consumer, u64::MAX)).db()? {
        let (k, v) = entry.db()?;
        pending += 1;
        let (row_deadline, attempt) = v.value();
        if row_deadline <= now && due.len() < max {
            due.push((k.value().1, attempt));
        }
    }
    let mut out: Vec<(u64, u32)> = Vec::new();
    for (seq, attempt) in due {
        if log.get(seq).db()?.is_none() {
            // Dropped by retention between its fetch and now: nothing left to deliver.
            inflight.remove((consumer, seq)).db()?;
            pending -= 1;
            continue;
        }
        let attempt = attempt.saturating_add(1);
        inflight.insert((consumer, seq), (deadline, attempt)).db()?;
        out.push((seq, attempt));
    }

    // New events of the topic, in order, while the consumer may hold more in flight.
    let room = max
        .saturating_sub(out.len())
        .min(MAX_ACK_PENDING.saturating_sub(pending));
    if room > 0 {
        let key = topic_key(&record.topic);
        let index = txn.open_table(EVENT_TOPIC_INDEX).db()?;
        let mut fresh = Vec::new();
        for entry in index
            .range((key.as_str(), record.cursor.saturating_add(1))..=(key.as_str(), u64::MAX))
            .db()?
            .take(room)
        {
            let (k, _) = entry.db()?;
            fresh.push(k.value().1);
        }
        if let Some(&last) = fresh.last() {
            record.cursor = last;
            let bytes = encode_consumer(consumer, &record)?;
            consumers.insert(consumer, bytes.as_slice()).db()?;
        }
        for seq in fresh {
            inflight.insert((consumer, seq), (deadline, 1)).db()?;
            out.push((seq, 1));
        }
    }

    let mut deliveries = Vec::with_capacity(out.len());
    for (seq, attempt) in out {
        let Some(value) = log.get(seq).db()? else {
            continue;
        };
        let (_, _, json) = value.value();
        match serde_json::from_slice::<LogRecord>(json) {
            Ok(stored) => deliveries.push(Delivery {
                seq,
                attempt,
                topic: stored.topic,
                event: stored.event,
            }),
            Err(e) => {
                // An entry that cannot be decoded can never be handled: it is not handed out
                // again (a failed fetch would stop the consumer behind it forever).
                tracing::error!(seq, consumer, error = %e, "event bus: skipping an unreadable event");
                inflight.remove((consumer, seq)).db()?;
            }
        }
    }
    Ok(deliveries)
}

impl Bus for EmbeddedBus {
    async fn publish(&self, topic: &Topic, event: &Event) -> Result<u64, BusError> {
        let key = topic_key(topic);
        let json = serde_json::to_vec(&LogRecordRef { topic, event }).map_err(|source| {
            BusError::Store(StoreError::Encode {
                table: "event_log".to_owned(),
                key: topic.to_string(),
                source,
            })
        })?;
        if json.len() > MAX_EVENT_BYTES {
            return Err(BusError::TooLarge {
                size: json.len(),
                limit: MAX_EVENT_BYTES,
            });
        }
        let time = now_ms();
        let size = entry_size(&key, &json);
        let seq = {
            let key = key.clone();
            self.inner
                .store
                .write(move |txn| -> Result<u64, BusError> {
                    let mut state = txn.open_table(EVENT_BUS_STATE).db()?;
                    let seq = next_seq(&state)?;
                    let events = get_counter(&state, EVENTS)?;
                    let bytes = get_counter(&state, BYTES)?;
                    state.insert(NEXT_SEQ, seq + 1).db()?;
                    state.insert(EVENTS, events + 1).db()?;
                    state.insert(BYTES, bytes + size).db()?;
                    let mut log = txn.open_table(EVENT_LOG).db()?;
                    log.insert(seq, (time, key.as_str(), json.as_slice()))
                        .db()?;
                    let mut index = txn.open_table(EVENT_TOPIC_INDEX).db()?;
                    index.insert((key.as_str(), seq), ()).db()?;
                    Ok(seq)
                })
                .await?
        };
        self.wake(&key);
        Ok(seq)
    }

    async fn ensure_consumer(&self, config: &ConsumerConfig) -> Result<(), BusError> {
        let name = config.name.clone();
        let topic = config.topic.clone();
        let ack_wait_ms = millis(config.ack_wait);
        // Sensors ensure their consumers at every start: unchanged ones cost no commit.
        let current = self.inner.store.read(|txn| {
            let consumers = txn.open_table(EVENT_CONSUMERS).db()?;
            get_consumer(&consumers, &name)
        })?;
        if current
            .as_ref()
            .is_some_and(|r| r.topic == topic && r.ack_wait_ms == ack_wait_ms)
        {
            return Ok(());
        }
        self.inner
            .store
            .write(move |txn| -> Result<(), BusError> {
                let mut consumers = txn.open_table(EVENT_CONSUMERS).db()?;
                let existing = get_consumer(&consumers, &name)?;
                let record = match existing {
                    Some(record) if record.topic == topic => ConsumerRecord {
                        ack_wait_ms,
                        ..record
                    },
                    other => {
                        let end = {
                            let state = txn.open_table(EVENT_BUS_STATE).db()?;
                            next_seq(&state)? - 1
                        };
                        if other.is_some() {
                            // A new topic: deliveries of the old one are moot.
                            clear_inflight(txn, &name, u64::MAX)?;
                        }
                        ConsumerRecord {
                            topic: topic.clone(),
                            ack_wait_ms,
                            cursor: end,
                        }
                    }
                };
                let bytes = encode_consumer(&name, &record)?;
                consumers.insert(name.as_str(), bytes.as_slice()).db()?;
                Ok(())
            })
            .await
    }

    async fn fetch(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let max = max.min(MAX_ACK_PENDING);
        let started = tokio::time::Instant::now();
        // A `wait` too large to add to the clock means "as long as it takes" (a year, bounded).
        let until = started
            .checked_add(wait)
            .unwrap_or_else(|| started + Duration::from_secs(365 * 24 * 3600));
        let mut key = self.probe(consumer, now_ms())?.key;
        // Each round ends in a delivery, an error, the end of `wait`, or a wake-up (a publish to
        // the topic or an in-flight deadline), so the loop is bounded by `wait`.
        loop {
            let guard = WakerGuard::new(self, &key);
            let mut notified = pin!(guard.waker.notified());
            // Registered before the look, so a publish right after it is not missed.
            notified.as_mut().enable();
            let probe = self.probe(consumer, now_ms())?;
            if probe.key != key {
                // The consumer moved to another topic meanwhile: wait on that one's wake-ups.
                key = probe.key;
                continue;
            }
            if probe.ready && max > 0 {
                let deliveries = self.claim(consumer, max, now_ms()).await?;
                if !deliveries.is_empty() {
                    return Ok(deliveries);
                }
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                return Ok(Vec::new());
            }
            let mut wake_at = until;
            if let Some(deadline) = probe.next_deadline {
                // +1 ms: a deadline is due once its millisecond has passed.
                let in_ms = deadline.saturating_sub(now_ms()).saturating_add(1);
                wake_at = wake_at.min(now + Duration::from_millis(in_ms));
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }

    async fn ack(&self, consumer: &str, seqs: &[u64]) -> Result<(), BusError> {
        let name = consumer.to_owned();
        let seqs = seqs.to_vec();
        self.inner
            .store
            .write(move |txn| -> Result<(), BusError> {
                let consumers = txn.open_table(EVENT_CONSUMERS).db()?;
                if consumers.get(name.as_str()).db()?.is_none() {
                    return Err(BusError::UnknownConsumer(name.clone()));
                }
                let mut inflight = txn.open_table(EVENT_INFLIGHT).db()?;
                for &seq in &seqs {
                    inflight.remove((name.as_str(), seq)).db()?;
                }
                Ok(())
            })
            .await
    }

    async fn delete_consumer(&self, consumer: &str) -> Result<(), BusError> {
        let name = consumer.to_owned();
        let exists = self.inner.store.read(|txn| -> Result<bool, BusError> {
            let consumers = txn.open_table(EVENT_CONSUMERS).db()?;
            Ok(consumers.get(name.as_str()).db()?.is_some())
        })?;
        if !exists {
            return Ok(());
        }
        self.inner
            .store
            .write(move |txn| -> Result<(), BusError> {
                let mut consumers = txn.open_table(EVENT_CONSUMERS).db()?;
                consumers.remove(name.as_str()).db()?;
                clear_inflight(txn, &name, u64::MAX)
            })
            .await
    }

    async fn consumers(&self) -> Result<Vec<String>, BusError> {
        self.inner.store.read(|txn| {
            let consumers = txn.open_table(EVENT_CONSUMERS).db()?;
            consumers
                .iter()
                .db()?
                .map(|entry| entry.map(|(k, _)| k.value().to_owned()))
                .collect::<Result<_, _>>()
                .db()
        })
    }

    async fn stats(&self) -> Result<BusStats, BusError> {
        self.inner.store.read(|txn| {
            let state = txn.open_table(EVENT_BUS_STATE).db()?;
            let consumers = txn.open_table(EVENT_CONSUMERS).db()?;
            Ok(BusStats {
                events: get_counter(&state, EVENTS)?,
                bytes: get_counter(&state, BYTES)?,
                consumers: consumers.len().db()?,
            })
        })
    }

    async fn recent(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, BusError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let store = self.inner.store.clone();
        let query = query.clone();
        // A scan of up to RECENT_SCAN entries: off the async workers.
        tokio::task::spawn_blocking(move || recent_in(&store, &query))
            .await
            .unwrap_or_else(|_| Err(BusError::Store(StoreError::Panicked)))
    }
}

/// [`Bus::recent`] in a read transaction.
fn recent_in(store: &Store, query: &EventQuery) -> Result<Vec<StoredEvent>, BusError> {
    let since_ms = query
        .since
        .map(|t| u64::try_from(t.as_millisecond()).unwrap_or(0));
    store.read(|txn| {
        let log = txn.open_table(EVENT_LOG).db()?;
        let mut out = Vec::new();
        for entry in log.range(0u64..).db()?.rev().take(RECENT_SCAN) {
            let (k, v) = entry.db()?;
            let (time_ms, key, json) = v.value();
            if let Some(since) = since_ms {
                if time_ms.saturating_add(PUBLISH_SKEW_MS) < since {
                    break;
                }
                if time_ms < since {
                    continue;
                }
            }
            if !key_matches(key, query) {
                continue;
            }
            let seq = k.value();
            match serde_json::from_slice::<LogRecord>(json) {
                Ok(stored) => out.push(StoredEvent {
                    seq,
                    topic: stored.topic,
                    event: stored.event,
                }),
                Err(e) => {
                    tracing::warn!(seq, error = %e, "event bus: an unreadable event left out of a listing");
                    continue;
                }
            }
            if out.len() >= query.limit {
                break;
            }
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(seq: u64, time_ms: u64, bytes: u64) -> EntryMeta {
        EntryMeta {
            seq,
            time_ms,
            bytes,
        }
    }

    const HOUR_MS: u64 = 3_600_000;

    fn retention(max_age_h: u64, max_bytes: u64) -> Retention {
        Retention {
            max_age: Duration::from_secs(max_age_h * 3600),
            max_bytes,
        }
    }

    #[test]
    fn retention_drops_nothing_within_limits() {
        let log = [meta(1, 10 * HOUR_MS, 100), meta(2, 11 * HOUR_MS, 100)];
        let plan = retention_plan(log, 200, 12 * HOUR_MS, &retention(72, 1000), 100);
        assert_eq!(plan, RetentionPlan::default());
    }

    #[test]
    fn retention_drops_the_too_old_prefix() {
        let now = 100 * HOUR_MS;
        let log = [
            meta(3, 20 * HOUR_MS, 10),
            meta(4, 27 * HOUR_MS, 20),
            meta(5, 28 * HOUR_MS + 1, 30),
            meta(6, 99 * HOUR_MS, 40),
        ];
        // Cutoff is hour 28: entries strictly older go.
        let plan = retention_plan(log, 100, now, &retention(72, u64::MAX), 100);
        assert_eq!(
            plan,
            RetentionPlan {
                drop_through: Some(4),
                events: 2,
                bytes: 30,
            }
        );
    }

    #[test]
    fn retention_drops_oldest_until_under_max_bytes() {
        let now = 10 * HOUR_MS;
        let log = [
            meta(1, now, 400),
            meta(2, now, 300),
            meta(3, now, 200),
            meta(4, now, 100),
        ];
        // 1000 bytes, limit 350: drop 400 (600 left), 300 (300 left), then stop.
        let plan = retention_plan(log, 1000, now, &retention(72, 350), 100);
        assert_eq!(
            plan,
            RetentionPlan {
                drop_through: Some(2),
                events: 2,
                bytes: 700,
            }
        );
        // Exactly at the limit stays.
        let plan = retention_plan(log, 1000, now, &retention(72, 1000), 100);
        assert_eq!(plan.drop_through, None);
    }

    #[test]
    fn retention_stops_at_the_first_entry_that_stays() {
        let now = 100 * HOUR_MS;
        // Entry 2 was published slightly out of time order: it is young, so 3 waits for later.
        let log = [
            meta(1, HOUR_MS, 1),
            meta(2, 99 * HOUR_MS, 1),
            meta(3, HOUR_MS, 1),
        ];
        let plan = retention_plan(log, 3, now, &retention(72, u64::MAX), 100);
        assert_eq!(plan.drop_through, Some(1));
        assert_eq!(plan.events, 1);
    }

    #[test]
    fn retention_is_bounded_per_step() {
        let log = (1..=50).map(|s| meta(s, 0, 10));
        let plan = retention_plan(log, 500, 100 * HOUR_MS, &retention(1, 0), 20);
        assert_eq!(
            plan,
            RetentionPlan {
                drop_through: Some(20),
                events: 20,
                bytes: 200,
            }
        );
    }

    #[test]
    fn retention_with_huge_max_age_keeps_everything() {
        let log = [meta(1, 0, 10)];
        let forever = Retention {
            max_age: Duration::MAX,
            max_bytes: u64::MAX,
        };
        assert_eq!(retention_plan(log, 10, 5, &forever, 10).drop_through, None);
    }

    #[test]
    fn topic_keys_are_injective_and_filterable() {
        let a = topic_key(&Topic::new("ns", "a.b", "c"));
        let b = topic_key(&Topic::new("ns", "a", "b.c"));
        assert_ne!(a, b);
        assert_eq!(a, "ns.a_2eb.c");
        let by_ns = |ns: &str| EventQuery {
            namespace: Some(ns.to_owned()),
            ..EventQuery::default()
        };
        assert!(key_matches(&a, &by_ns("ns")));
        assert!(!key_matches(&a, &by_ns("n")));
        let by_source = EventQuery {
            event_source: Some("a.b".to_owned()),
            ..EventQuery::default()
        };
        assert!(key_matches(&a, &by_source));
        assert!(!key_matches(&b, &by_source));
        assert!(key_matches(&b, &EventQuery::default()));
        assert!(!key_matches("garbage", &EventQuery::default()));
    }

    #[test]
    fn config_retention_is_taken_as_is() {
        let config = EventsConfig::default();
        let r = Retention::from_config(&config);
        assert_eq!(r.max_age, config.retention_max_age);
        assert_eq!(r.max_bytes, config.retention_max_bytes);
    }
}
