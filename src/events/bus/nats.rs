//! The NATS JetStream backend of the event bus ([`NatsBus`]).
//!
//! Owns one JetStream stream (`[events] nats_stream`, default `cairn-events`) and the durable
//! pull consumers the sensors ensure on it. Layout:
//! - the stream takes the subjects `<stream>.>`, file storage, limits retention (`max_age` and
//!   `max_bytes` from `[events] retention_*`, discarding the oldest), one replica; it is created
//!   at [`NatsBus::connect`], or updated there when it exists with other limits;
//! - an event of topic `ns/es/name` is published on `<stream>.<ns>.<es>.<name>`, each part
//!   through [`super::encode_token`] (so any name is one subject token), as JSON
//!   `{"topic": .., "event": ..}`; its bus sequence number is the stream sequence;
//! - each [`ConsumerConfig`] is a durable pull consumer of that name filtered on its topic's
//!   subject, explicit acks, `ack_wait` from the config, deliver policy `new` (a new consumer
//!   sees only later events), no delivery limit. A changed topic deletes and recreates it (the
//!   trait's "starts at the end of the new topic"); a changed `ack_wait` updates it in place.
//!
//! Invariants and how the [`Bus`] semantics map onto JetStream:
//! - [`Bus::publish`] returns after the PubAck: the message is in the stream's store. Whether
//!   it is fsynced then is the server's `sync_interval`: JetStream's default fsyncs every two
//!   minutes and relies on replicas for durability, so a single server should run with
//!   `jetstream { sync_interval: always }` (integration-tests/nats/start does).
//! - Acks are by stream sequence. JetStream acks by a delivery's reply subject, so the unacked
//!   deliveries' handles are kept in memory per consumer (bounded: [`MAX_ACK_PENDING`] per
//!   consumer on the server, twice that here, oldest dropped first). A sequence without a handle
//!   (already acked, or delivered before this process started) is ignored: JetStream redelivers
//!   it after `ack_wait` and the next fetch gets a fresh handle. Acks are double acks (the
//!   server confirms), so a fetch after [`Bus::ack`] returns never sees the acked event again.
//! - [`Bus::fetch`] first takes what is ready without waiting, else long-polls for one event for
//!   up to `wait` and then takes what else is ready; a pull request is never left open on the
//!   server after `fetch` returns (it would deliver into a closed inbox and delay those events
//!   by `ack_wait`).
//! - A message that does not decode is terminated (`+TERM`, never redelivered) and logged; it
//!   cannot block its consumer.
//! - Every request is bounded by [`REQUEST_TIMEOUT`] (plus the caller's `wait` for fetches).
//!   The client reconnects forever in the background, so the bus survives a nats-server
//!   restart: calls fail with [`BusError::Nats`] while it is away and work again after.
//! - Errors and logs name the server URL without its credentials (`user:password@` and token
//!   are removed, and scrubbed from the client library's messages too).
//! - [`Bus::recent`] reads through short-lived ephemeral consumers named `cairn-recent-*`
//!   (memory storage, no acks, deleted after use and by the server after 30 s idle anyway);
//!   [`Bus::consumers`] and [`Bus::stats`] leave them out, so durable names must not take that
//!   prefix.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
    message::Acker,
    stream,
};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{
    Bus, BusError, BusStats, ConsumerConfig, Delivery, EventQuery, StoredEvent, Topic, encode_token,
};
use crate::config::EventsConfig;
use crate::events::event::Event;

/// Bound on each request to the server (connect, JetStream API, PubAck, ack confirmation).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries a consumer may have unacknowledged at once; the server delivers no more until
/// some are acked (or redelivered).
pub const MAX_ACK_PENDING: i64 = 20_000;

/// Acks confirmed concurrently by one [`Bus::ack`].
const ACK_CONCURRENCY: usize = 128;

/// Name prefix of the ephemeral consumers [`Bus::recent`] reads through.
const RECENT_PREFIX: &str = "cairn-recent-";

/// Most windows [`Bus::recent`] walks back through (each 4x the previous one).
const RECENT_MAX_WINDOWS: usize = 24;

/// Messages one pull request of [`Bus::recent`] asks for.
const RECENT_BATCH: usize = 512;

/// What the stream keeps (from `[events] retention_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatsRetention {
    /// Messages older than this are dropped.
    pub max_age: Duration,
    /// The stream keeps at most this many bytes, dropping the oldest messages.
    pub max_bytes: u64,
}

/// The bus on NATS JetStream. Cheap to clone (shares one connection).
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

struct Inner {
    /// The server URL without credentials (for errors and logs).
    url: String,
    /// Credentials found in the URL, scrubbed from every error message. Never logged.
    secrets: Vec<String>,
    client: async_nats::Client,
    js: jetstream::Context,
    stream_name: String,
    /// Consumers ensured or used by this process, with their unacked deliveries.
    consumers: Mutex<HashMap<String, ConsumerState>>,
}

struct ConsumerState {
    handle: PullConsumer,
    /// Unacked deliveries by stream sequence: the newest delivery's ack handle.
    pending: BTreeMap<u64, Acker>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("url", &self.inner.url)
            .field("stream", &self.inner.stream_name)
            .finish_non_exhaustive()
    }
}

/// What is stored in a message.
#[derive(Serialize)]
struct EnvelopeRef<'a> {
    topic: &'a Topic,
    event: &'a Event,
}

#[derive(Deserialize)]
struct Envelope {
    topic: Topic,
    event: Event,
}

impl NatsBus {
    /// Connects to `[events] nats_url` with the stream and retention of `config`.
    pub async fn from_config(config: &EventsConfig) -> Result<NatsBus, BusError> {
        let Some(url) = config.nats_url.as_deref() else {
            return Err(BusError::Nats {
                url: String::new(),
                detail: "[events] nats_url: expected a NATS server URL (e.g. nats://127.0.0.1:4222) for bus = \"nats\"".to_owned(),
            });
        };
        NatsBus::connect(
            url,
            &config.nats_stream,
            NatsRetention {
                max_age: config.retention_max_age,
                max_bytes: config.retention_max_bytes,
            },
        )
        .await
    }

    /// Connects to the server at `url` (credentials may be in it: `nats://user:pass@host:4222`
    /// or `nats://token@host:4222`; a comma-separated list names several servers), and creates
    /// `stream` or updates its limits. Fails at once when no server answers within
    /// [`REQUEST_TIMEOUT`]; after that the client reconnects by itself whenever the connection
    /// drops.
    pub async fn connect(
        url: &str,
        stream: &str,
        retention: NatsRetention,
    ) -> Result<NatsBus, BusError> {
        let (shown, secrets) = redact_url(url);
        let fail = |detail: String| BusError::Nats {
            url: shown.clone(),
            detail: scrub(&detail, &secrets),
        };
        check_stream_name(stream).map_err(fail)?;
        let max_bytes = i64::try_from(retention.max_bytes).map_err(|_| {
            fail(format!(
                "[events] retention_max_bytes: expected at most {} bytes, got {}",
                i64::MAX,
                retention.max_bytes
            ))
        })?;
        let client = tokio::time::timeout(
            REQUEST_TIMEOUT + Duration::from_secs(1),
            async_nats::ConnectOptions::new()
                .name("cairn")
                .connection_timeout(REQUEST_TIMEOUT)
                .request_timeout(Some(REQUEST_TIMEOUT))
                .max_reconnects(None)
                .connect(url),
        )
        .await
        .map_err(|_| {
            fail(format!(
                "cannot connect: no answer within {REQUEST_TIMEOUT:?}"
            ))
        })?
        .map_err(|e| fail(format!("cannot connect: {e}")))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(REQUEST_TIMEOUT)
            .build(client.clone());
        let config = stream::Config {
            name: stream.to_owned(),
            subjects: vec![format!("{stream}.>")],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            discard: stream::DiscardPolicy::Old,
            max_age: retention.max_age,
            max_bytes,
            num_replicas: 1,
            ..Default::default()
        };
        let info = bounded(js.create_or_update_stream(config))
            .await
            .map_err(|e| fail(format!("stream {stream}: {e}")))?
            .map_err(|e| fail(format!("stream {stream}: cannot create or update it: {e}")))?;
        tracing::info!(
            url = %shown,
            stream = %stream,
            messages = info.state.messages,
            bytes = info.state.bytes,
            max_age_s = retention.max_age.as_secs(),
            max_bytes = retention.max_bytes,
            "event bus on NATS JetStream"
        );
        Ok(NatsBus {
            inner: Arc::new(Inner {
                url: shown,
                secrets,
                client,
                js,
                stream_name: stream.to_owned(),
                consumers: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The server URL without credentials.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.inner.stream_name
    }

    fn err(&self, detail: impl std::fmt::Display) -> BusError {
        BusError::Nats {
            url: self.inner.url.clone(),
            detail: scrub(&detail.to_string(), &self.inner.secrets),
        }
    }

    async fn stream(&self) -> Result<stream::Stream, BusError> {
        bounded(self.inner.js.get_stream(&self.inner.stream_name))
            .await
            .map_err(|e| self.err(format!("stream {}: {e}", self.inner.stream_name)))?
            .map_err(|e| self.err(format!("stream {}: {e}", self.inner.stream_name)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConsumerState>> {
        // A panic while holding the lock leaves the map consistent (every update is one
        // insert/remove), so a poisoned lock is still usable.
        self.inner
            .consumers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The consumer's handle: known to this process, or looked up on the server (a consumer
    /// ensured before a restart). `UnknownConsumer` when the server has none of that name.
    async fn consumer(&self, name: &str) -> Result<PullConsumer, BusError> {
        if let Some(state) = self.lock().get(name) {
            return Ok(state.handle.clone());
        }
        if name.starts_with(RECENT_PREFIX) || check_consumer_name(name).is_err() {
            return Err(BusError::UnknownConsumer(name.to_owned()));
        }
        let stream = self.stream().await?;
        let handle: PullConsumer = match bounded(stream.get_consumer(name))
            .await
            .map_err(|e| self.err(format!("consumer {name}: {e}")))?
        {
            Ok(c) => c,
            Err(e)
                if e.downcast_ref::<jetstream::context::ConsumerInfoError>()
                    .is_some_and(info_not_found) =>
            {
                return Err(BusError::UnknownConsumer(name.to_owned()));
            }
            Err(e) => return Err(self.err(format!("consumer {name}: {e}"))),
        };
        let mut map = self.lock();
        let state = map.entry(name.to_owned()).or_insert_with(|| ConsumerState {
            handle,
            pending: BTreeMap::new(),
        });
        Ok(state.handle.clone())
    }

    /// Turns fetched messages into deliveries, keeping their ack handles; terminates those
    /// that do not decode.
    async fn deliveries(
        &self,
        consumer: &str,
        messages: Vec<jetstream::Message>,
    ) -> Result<Vec<Delivery>, BusError> {
        let mut out = Vec::with_capacity(messages.len());
        let mut handles = Vec::with_capacity(messages.len());
        for message in messages {
            let (seq, delivered) = match message.info() {
                Ok(info) => (info.stream_sequence, info.delivered),
                Err(e) => {
                    tracing::warn!(consumer = %consumer, error = %e, "event bus: a delivery without JetStream metadata; skipped");
                    continue;
                }
            };
            let (message, acker) = message.split();
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) => {
                    out.push(Delivery {
                        seq,
                        attempt: u32::try_from(delivered.max(1)).unwrap_or(u32::MAX),
                        topic: envelope.topic,
                        event: envelope.event,
                    });
                    handles.push((seq, acker));
                }
                Err(e) => {
                    tracing::warn!(consumer = %consumer, seq, error = %e, "event bus: stored event is unreadable; terminated (never redelivered)");
                    if let Err(e) = bounded(acker.ack_with(AckKind::Term))
                        .await
                        .unwrap_or_else(|t| Err(t.into()))
                    {
                        tracing::warn!(consumer = %consumer, seq, error = %scrub(&e.to_string(), &self.inner.secrets), "event bus: terminating an unreadable event failed; it will be redelivered");
                    }
                }
            }
        }
        let mut map = self.lock();
        if let Some(state) = map.get_mut(consumer) {
            for (seq, acker) in handles {
                state.pending.insert(seq, acker);
            }
            // Bounded: entries of deliveries the stream dropped (retention) before they were
            // acked would otherwise stay; the oldest are the likely stale ones.
            let cap = usize::try_from(MAX_ACK_PENDING).unwrap_or(usize::MAX) * 2;
            while state.pending.len() > cap {
                state.pending.pop_first();
            }
        }
        Ok(out)
    }

    /// Fetches what is ready now (no waiting), at most `max`.
    async fn fetch_ready(
        &self,
        handle: &PullConsumer,
        max: usize,
    ) -> Result<Vec<jetstream::Message>, BusError> {
        let read = async {
            let batch = handle.fetch().max_messages(max).messages().await?;
            batch.try_collect::<Vec<_>>().await
        };
        bounded(read)
            .await
            .map_err(|e| self.err(format!("fetch: {e}")))?
            .map_err(|e| self.err(format!("fetch: {e}")))
    }

    /// Reads the stream's messages on `filter` with sequence in `start..=end`, ascending,
    /// through an ephemeral consumer: at most `read_at_most` are read, of which the last `keep`
    /// are returned.
    async fn read_range(
        &self,
        stream: &stream::Stream,
        filter: &str,
        deliver: DeliverPolicy,
        end: u64,
        keep: usize,
        read_at_most: u64,
    ) -> Result<VecDeque<(u64, i128, Envelope)>, BusError> {
        let name = format!(
            "{RECENT_PREFIX}{}",
            self.inner
                .client
                .new_inbox()
                .rsplit('.')
                .next()
                .unwrap_or_default()
        );
        let config = pull::Config {
            name: Some(name.clone()),
            filter_subject: filter.to_owned(),
            deliver_policy: deliver,
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        };
        let consumer: PullConsumer = bounded(stream.create_consumer(config))
            .await
            .map_err(|e| self.err(format!("reading events: {e}")))?
            .map_err(|e| self.err(format!("reading events: {e}")))?;
        let result = self.drain_range(&consumer, end, keep, read_at_most).await;
        if let Err(e) = bounded(stream.delete_consumer(&name)).await {
            tracing::debug!(consumer = %name, error = %e, "event bus: deleting a reader consumer timed out (the server drops it after 30s idle)");
        }
        result
    }

    async fn drain_range(
        &self,
        consumer: &PullConsumer,
        end: u64,
        keep: usize,
        read_at_most: u64,
    ) -> Result<VecDeque<(u64, i128, Envelope)>, BusError> {
        let mut remaining = consumer.cached_info().num_pending.min(read_at_most);
        let mut out = VecDeque::new();
        // Each round reads at least one message or stops, and there are at most `remaining`.
        let max_rounds = remaining / RECENT_BATCH as u64 + 2;
        for _ in 0..max_rounds {
            if remaining == 0 || keep == 0 {
                break;
            }
            let want = usize::try_from(remaining)
                .unwrap_or(RECENT_BATCH)
                .min(RECENT_BATCH);
            let messages = self.fetch_ready(consumer, want).await?;
            if messages.is_empty() {
                break;
            }
            remaining = remaining.saturating_sub(messages.len() as u64);
            for message in messages {
                let Ok(info) = message.info() else { continue };
                let (seq, pending, published) = (
                    info.stream_sequence,
                    info.pending,
                    info.published.unix_timestamp_nanos(),
                );
                if seq > end {
                    return Ok(out);
                }
                match serde_json::from_slice::<Envelope>(&message.payload) {
                    Ok(envelope) => {
                        out.push_back((seq, published, envelope));
                        if out.len() > keep {
                            out.pop_front();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(seq, error = %e, "event bus: stored event is unreadable; not listed");
                    }
                }
                remaining = remaining.min(pending);
            }
        }
        Ok(out)
    }
}

impl Bus for NatsBus {
    async fn publish(&self, topic: &Topic, event: &Event) -> Result<u64, BusError> {
        let payload = serde_json::to_vec(&EnvelopeRef { topic, event })
            .map_err(|e| self.err(format!("encoding the event: {e}")))?;
        let limit = self.inner.client.server_info().max_payload;
        // Headers and the subject count too; keep a margin.
        let subject = subject_of(&self.inner.stream_name, topic);
        let size = payload.len() + subject.len();
        if limit > 0 && size > limit {
            return Err(BusError::TooLarge { size, limit });
        }
        let publish = async {
            let ack = self.inner.js.publish(subject, payload.into()).await?;
            ack.await
        };
        let ack = bounded(publish)
            .await
            .map_err(|e| self.err(format!("publish on {topic}: {e}")))?
            .map_err(|e| self.err(format!("publish on {topic}: {e}")))?;
        Ok(ack.sequence)
    }

    async fn ensure_consumer(&self, config: &ConsumerConfig) -> Result<(), BusError> {
        let name = config.name.as_str();
        check_consumer_name(name)
            .map_err(|detail| self.err(format!("consumer {name:?}: {detail}")))?;
        let filter = subject_of(&self.inner.stream_name, &config.topic);
        let stream = self.stream().await?;
        let existing = bounded(stream.consumer_info(name))
            .await
            .map_err(|e| self.err(format!("consumer {name}: {e}")))?;
        let mut recreated = false;
        match existing {
            Ok(info) if info.config.filter_subject != filter => {
                tracing::info!(consumer = %name, from = %info.config.filter_subject, to = %filter, "event bus: consumer's topic changed; recreating it at the end of the new topic");
                bounded(stream.delete_consumer(name))
                    .await
                    .map_err(|e| self.err(format!("consumer {name}: {e}")))?
                    .map_err(|e| self.err(format!("consumer {name}: deleting it: {e}")))?;
                recreated = true;
            }
            Ok(_) => {}
            Err(e) if info_not_found(&e) => recreated = true,
            Err(e) => return Err(self.err(format!("consumer {name}: {e}"))),
        }
        let desired = pull::Config {
            durable_name: Some(name.to_owned()),
            filter_subject: filter,
            ack_policy: AckPolicy::Explicit,
            ack_wait: config.ack_wait,
            deliver_policy: DeliverPolicy::New,
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        };
        // Create, or update the editable fields (ack_wait) of the one that exists.
        let handle: PullConsumer = bounded(stream.create_consumer(desired))
            .await
            .map_err(|e| self.err(format!("consumer {name}: {e}")))?
            .map_err(|e| self.err(format!("consumer {name}: creating or updating it: {e}")))?;
        let mut map = self.lock();
        match map.get_mut(name) {
            Some(state) => {
                state.handle = handle;
                if recreated {
                    state.pending.clear();
                }
            }
            None => {
                map.insert(
                    name.to_owned(),
                    ConsumerState {
                        handle,
                        pending: BTreeMap::new(),
                    },
                );
            }
        }
        Ok(())
    }

    async fn fetch(
        &self,
        consumer: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let handle = self.consumer(consumer).await?;
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut messages = self.fetch_ready(&handle, max).await?;
        if messages.is_empty() && !wait.is_zero() {
            // Long-poll for one event, so the request is complete (not left open on the
            // server) once it arrives; then take what else is ready.
            let wait = wait.max(Duration::from_millis(1));
            let poll = async {
                let batch = handle
                    .batch()
                    .max_messages(1)
                    .expires(wait)
                    .messages()
                    .await?;
                batch.try_collect::<Vec<_>>().await
            };
            messages = tokio::time::timeout(wait + REQUEST_TIMEOUT, poll)
                .await
                .map_err(|_| {
                    self.err(format!(
                        "fetch for {consumer}: no answer within {:?}",
                        wait + REQUEST_TIMEOUT
                    ))
                })?
                .map_err(|e| self.err(format!("fetch for {consumer}: {e}")))?;
            if !messages.is_empty() && max > 1 {
                messages.extend(self.fetch_ready(&handle, max - 1).await?);
            }
        }
        self.deliveries(consumer, messages).await
    }

    async fn ack(&self, consumer: &str, seqs: &[u64]) -> Result<(), BusError> {
        let ackers: Vec<(u64, Acker)> = {
            let mut map = self.lock();
            match map.get_mut(consumer) {
                Some(state) => seqs
                    .iter()
                    .filter_map(|s| state.pending.remove(s).map(|a| (*s, a)))
                    .collect(),
                None => Vec::new(),
            }
        };
        if ackers.is_empty() {
            // Nothing to ack here; still an error for a consumer that does not exist.
            self.consumer(consumer).await?;
            return Ok(());
        }
        let results: Vec<(u64, Acker, Result<(), String>)> = futures::stream::iter(ackers)
            .map(|(seq, acker)| async move {
                let r = match bounded(acker.double_ack()).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (seq, acker, r)
            })
            .buffer_unordered(ACK_CONCURRENCY)
            .collect()
            .await;
        let mut failed = Vec::new();
        let mut first_error = None;
        for (seq, acker, r) in results {
            if let Err(e) = r {
                first_error.get_or_insert(e);
                failed.push((seq, acker));
            }
        }
        let Some(e) = first_error else { return Ok(()) };
        let count = failed.len();
        // Keep the handles of the failed acks, so a retry can ack them.
        if let Some(state) = self.lock().get_mut(consumer) {
            for (seq, acker) in failed {
                state.pending.entry(seq).or_insert(acker);
            }
        }
        Err(self.err(format!(
            "ack for {consumer}: {count} of {} acks failed: {e}",
            seqs.len()
        )))
    }

    async fn delete_consumer(&self, consumer: &str) -> Result<(), BusError> {
        self.lock().remove(consumer);
        if check_consumer_name(consumer).is_err() {
            return Ok(());
        }
        let stream = self.stream().await?;
        match bounded(stream.delete_consumer(consumer))
            .await
            .map_err(|e| self.err(format!("consumer {consumer}: {e}")))?
        {
            Ok(_) => Ok(()),
            Err(e) if consumer_not_found(&e) => Ok(()),
            Err(e) => Err(self.err(format!("consumer {consumer}: deleting it: {e}"))),
        }
    }

    async fn consumers(&self) -> Result<Vec<String>, BusError> {
        let stream = self.stream().await?;
        let names = bounded(stream.consumer_names().try_collect::<Vec<String>>())
            .await
            .map_err(|e| self.err(format!("listing consumers: {e}")))?
            .map_err(|e| self.err(format!("listing consumers: {e}")))?;
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|n| !n.starts_with(RECENT_PREFIX))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn stats(&self) -> Result<BusStats, BusError> {
        let stream = self.stream().await?;
        let info = stream.cached_info();
        let consumers = self.consumers().await?.len() as u64;
        Ok(BusStats {
            events: info.state.messages,
            bytes: info.state.bytes,
            consumers,
        })
    }

    async fn recent(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, BusError> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let filter = query_filter(&self.inner.stream_name, query);
        let stream = self.stream().await?;
        let state = &stream.cached_info().state;
        let (mut first, last) = (state.first_sequence, state.last_sequence);
        if state.messages == 0 || last == 0 {
            return Ok(Vec::new());
        }
        let since_nanos = query.since.map(|t| t.as_nanosecond());
        if let Some(since) = query.since {
            // The first matching event at or after `since` bounds the walk back.
            let start_time =
                async_nats::datetime::DateTime::from_unix_timestamp_nanos(since.as_nanosecond())
                    .map_err(|e| self.err(format!("events since {since}: {e}")))?;
            let head = self
                .read_range(
                    &stream,
                    &filter,
                    DeliverPolicy::ByStartTime { start_time },
                    last,
                    1,
                    1,
                )
                .await?;
            match head.front() {
                Some((seq, _, _)) => first = first.max(*seq),
                None => return Ok(Vec::new()),
            }
        }
        let mut out: Vec<StoredEvent> = Vec::new();
        let mut end = last;
        let mut width = (query.limit as u64).saturating_mul(4).max(256);
        for _ in 0..RECENT_MAX_WINDOWS {
            let start = end.saturating_sub(width - 1).max(first).max(1);
            let need = query.limit - out.len();
            let window = self
                .read_range(
                    &stream,
                    &filter,
                    DeliverPolicy::ByStartSequence {
                        start_sequence: start,
                    },
                    end,
                    need,
                    end - start + 1,
                )
                .await?;
            for (seq, published, envelope) in window.into_iter().rev() {
                if since_nanos.is_some_and(|s| published < s) {
                    continue;
                }
                out.push(StoredEvent {
                    seq,
                    topic: envelope.topic,
                    event: envelope.event,
                });
            }
            if out.len() >= query.limit || start <= first {
                break;
            }
            end = start - 1;
            width = width.saturating_mul(4);
        }
        out.truncate(query.limit);
        Ok(out)
    }
}

/// `fut` bounded by [`REQUEST_TIMEOUT`].
async fn bounded<F: std::future::Future>(fut: F) -> Result<F::Output, RequestTimedOut> {
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| RequestTimedOut)
}

/// A request got no answer within [`REQUEST_TIMEOUT`].
#[derive(Debug)]
struct RequestTimedOut;

impl std::fmt::Display for RequestTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no answer within {REQUEST_TIMEOUT:?}")
    }
}

impl std::error::Error for RequestTimedOut {}

fn consumer_not_found(e: &stream::ConsumerError) -> bool {
    matches!(
        e.kind(),
        stream::ConsumerErrorKind::JetStream(j)
            if j.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
    )
}

fn info_not_found(e: &jetstream::context::ConsumerInfoError) -> bool {
    matches!(
        e.kind(),
        jetstream::context::ConsumerInfoErrorKind::NotFound
    )
}

/// The subject of `topic`'s events in `stream`.
pub fn subject_of(stream: &str, topic: &Topic) -> String {
    format!(
        "{stream}.{}.{}.{}",
        encode_token(&topic.namespace),
        encode_token(&topic.event_source),
        encode_token(&topic.event_name)
    )
}

/// The subject filter of the events `query` selects (namespace and EventSource; the time
/// bound and the limit are applied while reading).
pub fn query_filter(stream: &str, query: &EventQuery) -> String {
    match (&query.namespace, &query.event_source) {
        (None, None) => format!("{stream}.>"),
        (Some(ns), None) => format!("{stream}.{}.>", encode_token(ns)),
        (None, Some(es)) => format!("{stream}.*.{}.*", encode_token(es)),
        (Some(ns), Some(es)) => format!("{stream}.{}.{}.*", encode_token(ns), encode_token(es)),
    }
}

/// A JetStream stream name that is also one subject token: `[A-Za-z0-9_-]`, 1-64 bytes
/// (JetStream forbids `.`, `*`, `>`, whitespace and path separators; the stream's subjects are
/// `<name>.>`, so the name must be a valid token too).
fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "[events] nats_stream {name:?}: expected 1-64 of A-Z a-z 0-9 - _"
        ));
    }
    Ok(())
}

/// A durable name JetStream accepts: no `.`, `*`, `>`, whitespace or path separators,
/// printable, at most 255 bytes ([`super::consumer_name`] always produces one).
fn check_consumer_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| {
            matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control()
        })
    {
        return Err(
            "expected a durable name without . * > / \\ or whitespace, 1-255 bytes".to_owned(),
        );
    }
    Ok(())
}

/// `url` without credentials, and the credentials it held (to scrub from messages). Handles a
/// comma-separated list and URLs with or without a scheme.
pub fn redact_url(url: &str) -> (String, Vec<String>) {
    let mut secrets = Vec::new();
    let shown: Vec<String> = url
        .split(',')
        .map(|part| {
            let part = part.trim();
            let (scheme, rest) = match part.find("://") {
                Some(i) => (&part[..i + 3], &part[i + 3..]),
                None => ("", part),
            };
            let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(auth_end);
            match authority.rfind('@') {
                Some(at) => {
                    let userinfo = &authority[..at];
                    for s in userinfo.split(':') {
                        if !s.is_empty() {
                            secrets.push(s.to_owned());
                        }
                    }
                    if !userinfo.is_empty() {
                        secrets.push(userinfo.to_owned());
                    }
                    format!("{scheme}{}{tail}", &authority[at + 1..])
                }
                None => part.to_owned(),
            }
        })
        .collect();
    // Longest first, so a whole `user:pass` goes before its parts.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    (shown.join(","), secrets)
}

/// `text` with every secret replaced by `***`.
fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_encode_each_part_as_one_token() {
        let t = Topic::new("ns", "my.source", "push event");
        assert_eq!(
            subject_of("cairn-events", &t),
            "cairn-events.ns.my_2esource.push_20event"
        );
        let q = |ns: Option<&str>, es: Option<&str>| EventQuery {
            namespace: ns.map(str::to_owned),
            event_source: es.map(str::to_owned),
            since: None,
            limit: 10,
        };
        assert_eq!(query_filter("s", &q(None, None)), "s.>");
        assert_eq!(query_filter("s", &q(Some("a.b"), None)), "s.a_2eb.>");
        assert_eq!(query_filter("s", &q(None, Some("w"))), "s.*.w.*");
        assert_eq!(query_filter("s", &q(Some("n"), Some("w"))), "s.n.w.*");
    }

    #[test]
    fn urls_lose_their_credentials() {
        let (shown, secrets) = redact_url("nats://alice:s3cret@10.0.0.1:4222");
        assert_eq!(shown, "nats://10.0.0.1:4222");
        assert_eq!(secrets, vec!["alice:s3cret", "s3cret", "alice"]);
        let (shown, secrets) = redact_url("tls://tok3n@a:4222/x, nats://b:4222");
        assert_eq!(shown, "tls://a:4222/x,nats://b:4222");
        assert_eq!(secrets, vec!["tok3n"]);
        let (shown, secrets) = redact_url("u:p@h:1");
        assert_eq!(shown, "h:1");
        assert_eq!(secrets.len(), 3);
        let (shown, secrets) = redact_url("nats://127.0.0.1:4222");
        assert_eq!(shown, "nats://127.0.0.1:4222");
        assert!(secrets.is_empty());
        assert_eq!(
            scrub(
                "auth failed for alice:s3cret",
                &redact_url("nats://alice:s3cret@h").1
            ),
            "auth failed for ***"
        );
    }

    #[test]
    fn stream_and_consumer_names_are_checked() {
        assert!(check_stream_name("cairn-events").is_ok());
        assert!(
            check_stream_name("a.b")
                .unwrap_err()
                .contains("nats_stream")
        );
        assert!(check_stream_name("").is_err());
        assert!(check_consumer_name(&super::super::consumer_name("ns", "s.1", "d")).is_ok());
        assert!(check_consumer_name("a.b").is_err());
        assert!(check_consumer_name("a b").is_err());
    }
}
