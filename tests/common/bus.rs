//! The event bus conformance suite: the semantics of `cairn::events::bus::Bus` (module docs of
//! `src/events/bus/mod.rs`) checked against any backend. `tests/events_bus.rs` runs it on the
//! embedded bus, `tests/events_nats.rs` on NATS JetStream.
//!
//! Include it with `#[path = "common/bus.rs"] mod bus;`. Every check takes a [`Suite`], whose
//! run id prefixes every namespace it uses, so checks may share one bus (one JetStream stream)
//! and run side by side without seeing each other's events. Nothing here assumes a backend:
//! sequence numbers are only compared for order, stats only from below, and every wait is
//! bounded (redelivery checks use a 1 s `ack_wait`).
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use cairn::events::bus::{
    Bus, BusError, ConsumerConfig, Delivery, EventQuery, Topic, consumer_name,
};
use cairn::events::event::{Event, event_id};
use serde_json::json;

/// `ack_wait` of the redelivery checks.
pub const SHORT_ACK_WAIT: Duration = Duration::from_secs(1);
/// `ack_wait` of consumers that must not see redeliveries during a check.
pub const LONG_ACK_WAIT: Duration = Duration::from_secs(300);
/// How long a fetch that expects something waits at most (generous: a loaded machine).
const EXPECT_WAIT: Duration = Duration::from_secs(10);
/// How long a fetch that expects nothing waits (must exceed `SHORT_ACK_WAIT` where a
/// redelivery would show up).
const QUIET_WAIT: Duration = Duration::from_millis(2500);

/// One run of the suite: a unique prefix for its namespaces.
#[derive(Clone, Debug)]
pub struct Suite {
    run: String,
}

impl Suite {
    /// A suite whose namespaces start with `label` and a per-process, per-call unique id.
    pub fn new(label: &str) -> Suite {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Suite {
            run: format!("{label}-{}-{nanos:x}", std::process::id()),
        }
    }

    /// The namespace of one check.
    pub fn ns(&self, check: &str) -> String {
        format!("{}-{check}", self.run)
    }

    /// A topic of one check.
    pub fn topic(&self, check: &str, source: &str, name: &str) -> Topic {
        Topic::new(&self.ns(check), source, name)
    }

    /// A consumer of one check on `topic`.
    pub fn consumer(
        &self,
        check: &str,
        dep: &str,
        topic: &Topic,
        ack_wait: Duration,
    ) -> ConsumerConfig {
        ConsumerConfig {
            name: consumer_name(&self.ns(check), "sensor", dep),
            topic: topic.clone(),
            ack_wait,
        }
    }
}

/// A webhook event on `topic` whose body is `{"n": n}` and whose id is derived from both.
pub fn event(topic: &Topic, n: u64) -> Event {
    let header = BTreeMap::from([(
        "Content-Type".to_owned(),
        vec!["application/json".to_owned()],
    )]);
    Event::webhook(
        &topic.event_source,
        &topic.event_name,
        event_id(
            &topic.namespace,
            &topic.event_source,
            &topic.event_name,
            &n.to_string(),
        ),
        jiff::Timestamp::now(),
        &header,
        json!({"n": n}),
    )
}

/// The `n` of an event made by [`event`].
pub fn n_of(event: &Event) -> u64 {
    event.data["body"]["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("event without body.n: {:?}", event.data))
}

fn ns_of(d: &[Delivery]) -> Vec<u64> {
    d.iter().map(|d| n_of(&d.event)).collect()
}

/// Publishes events `ns` on `topic` one after the other; returns their sequence numbers.
pub async fn publish_all<B: Bus>(
    bus: &B,
    topic: &Topic,
    ns: impl IntoIterator<Item = u64>,
) -> Vec<u64> {
    let mut seqs = Vec::new();
    for n in ns {
        let seq = bus
            .publish(topic, &event(topic, n))
            .await
            .unwrap_or_else(|e| panic!("publish {n} on {topic}: {e}"));
        seqs.push(seq);
    }
    seqs
}

/// Fetches until `want` deliveries arrived (each fetch waits up to [`EXPECT_WAIT`]); fails the
/// test when a fetch comes back empty first.
pub async fn fetch_exactly<B: Bus>(bus: &B, consumer: &str, want: usize) -> Vec<Delivery> {
    let mut got: Vec<Delivery> = Vec::new();
    // Bounded: every round either adds a delivery or fails.
    while got.len() < want {
        let batch = bus
            .fetch(consumer, want - got.len(), EXPECT_WAIT)
            .await
            .unwrap_or_else(|e| panic!("fetch for {consumer}: {e}"));
        assert!(
            !batch.is_empty(),
            "{consumer}: expected {want} deliveries within {EXPECT_WAIT:?} per fetch, got {} ({:?})",
            got.len(),
            ns_of(&got)
        );
        got.extend(batch);
    }
    assert_eq!(
        got.len(),
        want,
        "{consumer}: more deliveries than asked for"
    );
    got
}

/// Asserts that nothing is delivered to `consumer` within [`QUIET_WAIT`].
pub async fn expect_quiet<B: Bus>(bus: &B, consumer: &str, why: &str) {
    let extra = bus
        .fetch(consumer, 10, QUIET_WAIT)
        .await
        .unwrap_or_else(|e| panic!("fetch for {consumer}: {e}"));
    assert!(
        extra.is_empty(),
        "{consumer}: {why}, but got {:?} (attempts {:?})",
        ns_of(&extra),
        extra.iter().map(|d| d.attempt).collect::<Vec<_>>()
    );
}

async fn ensure<B: Bus>(bus: &B, config: &ConsumerConfig) {
    bus.ensure_consumer(config)
        .await
        .unwrap_or_else(|e| panic!("ensure consumer {}: {e}", config.name));
}

async fn ack<B: Bus>(bus: &B, consumer: &str, seqs: &[u64]) {
    bus.ack(consumer, seqs)
        .await
        .unwrap_or_else(|e| panic!("ack {seqs:?} for {consumer}: {e}"));
}

/// Every backend-independent check, one after the other, on one bus.
pub async fn run_all<B: Bus>(bus: &B, suite: &Suite) {
    order_within_topic(bus, suite).await;
    topic_isolation(bus, suite).await;
    new_consumer_starts_at_end(bus, suite).await;
    resume_after_re_ensure(bus, suite).await;
    redelivery_after_ack_wait(bus, suite).await;
    ack_stops_redelivery(bus, suite).await;
    duplicate_and_unknown_acks_are_fine(bus, suite).await;
    consumers_are_independent(bus, suite).await;
    delete_consumer(bus, suite).await;
    fetch_returns_early_on_publish(bus, suite).await;
    fetch_returns_empty_after_wait(bus, suite).await;
    recent_lists_newest_first_with_filters(bus, suite).await;
    stats_count_what_is_held(bus, suite).await;
}

/// Events of one topic arrive in publish order, sequential or concurrent publishes alike, with
/// increasing sequence numbers, each once, attempt 1.
pub async fn order_within_topic<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("order", "hooks", "push");
    let c = suite.consumer("order", "dep", &topic, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    let seqs = publish_all(bus, &topic, 0..30).await;
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "publish seqs increase: {seqs:?}"
    );
    // Concurrent publishers: delivery order is the bus's order, which is the seq order.
    let concurrent: Vec<u64> = futures::future::join_all((30..50u64).map(|n| {
        let topic = topic.clone();
        async move { bus.publish(&topic, &event(&topic, n)).await }
    }))
    .await
    .into_iter()
    .collect::<Result<_, BusError>>()
    .unwrap_or_else(|e| panic!("concurrent publish: {e}"));
    let got = fetch_exactly(bus, &c.name, 50).await;
    assert_eq!(
        ns_of(&got[..30]),
        (0..30).collect::<Vec<_>>(),
        "sequential publishes in order"
    );
    let mut tail = ns_of(&got[30..]);
    tail.sort_unstable();
    assert_eq!(
        tail,
        (30..50).collect::<Vec<_>>(),
        "every concurrent publish once"
    );
    assert!(
        got.windows(2).all(|w| w[0].seq < w[1].seq),
        "deliveries in sequence order"
    );
    let mut concurrent_sorted = concurrent.clone();
    concurrent_sorted.sort_unstable();
    let delivered_tail: Vec<u64> = got[30..].iter().map(|d| d.seq).collect();
    assert_eq!(
        delivered_tail, concurrent_sorted,
        "delivered seqs are the published ones"
    );
    for d in &got {
        assert_eq!(d.attempt, 1, "first delivery of {}", d.seq);
        assert_eq!(d.topic, topic);
        assert_eq!(d.event, event_with_time(&topic, n_of(&d.event), &d.event));
    }
    ack(bus, &c.name, &got.iter().map(|d| d.seq).collect::<Vec<_>>()).await;
    expect_quiet(bus, &c.name, "everything was delivered and acknowledged").await;
}

/// [`event`] with the time of `like` (times are not reproducible; the rest must round-trip).
fn event_with_time(topic: &Topic, n: u64, like: &Event) -> Event {
    let mut e = event(topic, n);
    e.context.time = like.context.time;
    e
}

/// A consumer sees only its topic: other event names, other sources and other namespaces stay
/// out, even with the same names.
pub async fn topic_isolation<B: Bus>(bus: &B, suite: &Suite) {
    let mine = suite.topic("isolation", "hooks", "push");
    let others = [
        suite.topic("isolation", "hooks", "pull"),
        suite.topic("isolation", "hooks2", "push"),
        suite.topic("isolation-other", "hooks", "push"),
        // Names that would collide if the parts were only joined with dots.
        suite.topic("isolation", "hooks.push", "x"),
    ];
    let c = suite.consumer("isolation", "dep", &mine, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    for (i, other) in others.iter().enumerate() {
        publish_all(bus, other, [100 + i as u64]).await;
        publish_all(bus, &mine, [i as u64]).await;
    }
    let got = fetch_exactly(bus, &c.name, others.len()).await;
    assert_eq!(ns_of(&got), vec![0, 1, 2, 3]);
    assert!(got.iter().all(|d| d.topic == mine));
    expect_quiet(bus, &c.name, "only its own topic's events").await;
}

/// A new consumer sees only events published after it was created.
pub async fn new_consumer_starts_at_end<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("at-end", "hooks", "push");
    publish_all(bus, &topic, [1, 2]).await;
    let c = suite.consumer("at-end", "dep", &topic, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    publish_all(bus, &topic, [3]).await;
    let got = fetch_exactly(bus, &c.name, 1).await;
    assert_eq!(
        ns_of(&got),
        vec![3],
        "only the event published after creation"
    );
    ack(bus, &c.name, &[got[0].seq]).await;
    expect_quiet(bus, &c.name, "events before its creation are not delivered").await;
}

/// Ensuring an existing consumer again (a sensor restart; also with a new `ack_wait`) keeps its
/// position: it continues after what it was handed.
pub async fn resume_after_re_ensure<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("resume", "hooks", "push");
    let mut c = suite.consumer("resume", "dep", &topic, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    publish_all(bus, &topic, [1, 2, 3]).await;
    let first = fetch_exactly(bus, &c.name, 1).await;
    assert_eq!(ns_of(&first), vec![1]);
    ack(bus, &c.name, &[first[0].seq]).await;
    ensure(bus, &c).await;
    let rest = fetch_exactly(bus, &c.name, 2).await;
    assert_eq!(ns_of(&rest), vec![2, 3], "continues where it stopped");
    ack(
        bus,
        &c.name,
        &rest.iter().map(|d| d.seq).collect::<Vec<_>>(),
    )
    .await;
    c.ack_wait = Duration::from_secs(200);
    ensure(bus, &c).await;
    publish_all(bus, &topic, [4]).await;
    let next = fetch_exactly(bus, &c.name, 1).await;
    assert_eq!(
        ns_of(&next),
        vec![4],
        "a changed ack_wait keeps the position"
    );
    ack(bus, &c.name, &[next[0].seq]).await;
    expect_quiet(bus, &c.name, "everything acknowledged").await;
}

/// A delivery not acknowledged within `ack_wait` comes again, same seq and event, attempt 2.
pub async fn redelivery_after_ack_wait<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("redeliver", "hooks", "push");
    let c = suite.consumer("redeliver", "dep", &topic, SHORT_ACK_WAIT);
    ensure(bus, &c).await;
    publish_all(bus, &topic, [7]).await;
    let first = fetch_exactly(bus, &c.name, 1).await;
    assert_eq!(first[0].attempt, 1);
    let again = fetch_exactly(bus, &c.name, 1).await;
    assert_eq!(again[0].seq, first[0].seq, "the same delivery again");
    assert_eq!(again[0].attempt, 2, "second attempt");
    assert_eq!(
        again[0].event.context.id, first[0].event.context.id,
        "same event id"
    );
    assert_eq!(again[0].event, first[0].event, "same event");
    ack(bus, &c.name, &[again[0].seq]).await;
}

/// An acknowledged delivery is never delivered again, even past `ack_wait`.
pub async fn ack_stops_redelivery<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("ack", "hooks", "push");
    let c = suite.consumer("ack", "dep", &topic, SHORT_ACK_WAIT);
    ensure(bus, &c).await;
    publish_all(bus, &topic, [1, 2]).await;
    let got = fetch_exactly(bus, &c.name, 2).await;
    ack(bus, &c.name, &[got[0].seq]).await;
    // Only the unacknowledged one comes back.
    let again = fetch_exactly(bus, &c.name, 1).await;
    assert_eq!(ns_of(&again), vec![2]);
    assert_eq!(again[0].attempt, 2);
    ack(bus, &c.name, &[again[0].seq]).await;
    expect_quiet(bus, &c.name, "both acknowledged").await;
}

/// Acknowledging twice, or a sequence number never delivered, is not an error.
pub async fn duplicate_and_unknown_acks_are_fine<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("dup-ack", "hooks", "push");
    let c = suite.consumer("dup-ack", "dep", &topic, SHORT_ACK_WAIT);
    ensure(bus, &c).await;
    publish_all(bus, &topic, [1]).await;
    let got = fetch_exactly(bus, &c.name, 1).await;
    ack(bus, &c.name, &[got[0].seq]).await;
    ack(bus, &c.name, &[got[0].seq]).await;
    ack(bus, &c.name, &[got[0].seq + 1_000_000, u64::MAX]).await;
    ack(bus, &c.name, &[]).await;
    expect_quiet(bus, &c.name, "acknowledged (twice)").await;
}

/// Two consumers of one topic each get every event; one's acks do not touch the other's
/// deliveries.
pub async fn consumers_are_independent<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("independent", "hooks", "push");
    let a = suite.consumer("independent", "a", &topic, SHORT_ACK_WAIT);
    let b = suite.consumer("independent", "b", &topic, SHORT_ACK_WAIT);
    ensure(bus, &a).await;
    ensure(bus, &b).await;
    publish_all(bus, &topic, [1, 2]).await;
    let got_a = fetch_exactly(bus, &a.name, 2).await;
    let got_b = fetch_exactly(bus, &b.name, 2).await;
    assert_eq!(ns_of(&got_a), vec![1, 2]);
    assert_eq!(ns_of(&got_b), vec![1, 2]);
    ack(
        bus,
        &a.name,
        &got_a.iter().map(|d| d.seq).collect::<Vec<_>>(),
    )
    .await;
    let again_b = fetch_exactly(bus, &b.name, 2).await;
    assert_eq!(
        ns_of(&again_b),
        vec![1, 2],
        "b was not acknowledged by a's acks"
    );
    assert!(again_b.iter().all(|d| d.attempt == 2));
    ack(
        bus,
        &b.name,
        &again_b.iter().map(|d| d.seq).collect::<Vec<_>>(),
    )
    .await;
    expect_quiet(bus, &a.name, "a acknowledged both").await;
}

/// A deleted consumer is gone from `consumers`, fetching from it fails with `UnknownConsumer`,
/// deleting it again is fine, and ensuring it again starts at the end.
pub async fn delete_consumer<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("delete", "hooks", "push");
    let c = suite.consumer("delete", "dep", &topic, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    publish_all(bus, &topic, [1]).await;
    let names = bus
        .consumers()
        .await
        .unwrap_or_else(|e| panic!("consumers: {e}"));
    assert!(names.contains(&c.name), "{} listed in {names:?}", c.name);
    bus.delete_consumer(&c.name)
        .await
        .unwrap_or_else(|e| panic!("delete: {e}"));
    let names = bus
        .consumers()
        .await
        .unwrap_or_else(|e| panic!("consumers: {e}"));
    assert!(!names.contains(&c.name), "{} gone from {names:?}", c.name);
    match bus.fetch(&c.name, 1, Duration::from_millis(200)).await {
        Err(BusError::UnknownConsumer(name)) => assert_eq!(name, c.name),
        other => panic!("fetch from a deleted consumer: expected UnknownConsumer, got {other:?}"),
    }
    bus.delete_consumer(&c.name)
        .await
        .unwrap_or_else(|e| panic!("deleting an unknown consumer: {e}"));
    ensure(bus, &c).await;
    publish_all(bus, &topic, [2]).await;
    let got = fetch_exactly(bus, &c.name, 1).await;
    assert_eq!(
        ns_of(&got),
        vec![2],
        "a re-created consumer starts at the end"
    );
    ack(bus, &c.name, &[got[0].seq]).await;
}

/// A fetch waiting on an empty topic returns as soon as an event is published, long before its
/// `wait` ends (the bound below is a hang detector, a fraction of `wait`).
pub async fn fetch_returns_early_on_publish<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("early", "hooks", "push");
    let c = suite.consumer("early", "dep", &topic, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    let wait = Duration::from_secs(120);
    let fetch =
        async { tokio::time::timeout(Duration::from_secs(30), bus.fetch(&c.name, 10, wait)).await };
    let publish = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        publish_all(bus, &topic, [5]).await
    };
    let (fetched, _) = tokio::join!(fetch, publish);
    let got = fetched
        .unwrap_or_else(|_| panic!("fetch did not return within 30 s of a publish (wait {wait:?})"))
        .unwrap_or_else(|e| panic!("fetch: {e}"));
    assert_eq!(ns_of(&got), vec![5]);
    ack(bus, &c.name, &[got[0].seq]).await;
}

/// A fetch with nothing to deliver returns an empty list (not an error) after `wait`.
pub async fn fetch_returns_empty_after_wait<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("empty", "hooks", "push");
    let c = suite.consumer("empty", "dep", &topic, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    let got = tokio::time::timeout(
        Duration::from_secs(30),
        bus.fetch(&c.name, 10, Duration::from_millis(300)),
    )
    .await
    .unwrap_or_else(|_| panic!("an empty fetch with wait 300 ms did not return within 30 s"))
    .unwrap_or_else(|e| panic!("fetch: {e}"));
    assert!(got.is_empty(), "nothing published, got {:?}", ns_of(&got));
    let none = bus
        .fetch(&c.name, 10, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("fetch with no wait: {e}"));
    assert!(none.is_empty());
}

/// `recent` lists stored events newest first, filtered by namespace, event source and time,
/// at most `limit`, and moves no consumer.
pub async fn recent_lists_newest_first_with_filters<B: Bus>(bus: &B, suite: &Suite) {
    let ns = suite.ns("recent");
    let a = suite.topic("recent", "src-a", "push");
    let a2 = suite.topic("recent", "src-a", "pull");
    let b = suite.topic("recent", "src-b", "push");
    let elsewhere = suite.topic("recent-elsewhere", "src-a", "push");
    let c = suite.consumer("recent", "dep", &a, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    let mut seqs = Vec::new();
    seqs.extend(publish_all(bus, &a, [1]).await);
    seqs.extend(publish_all(bus, &b, [2]).await);
    seqs.extend(publish_all(bus, &a2, [3]).await);
    publish_all(bus, &elsewhere, [99]).await;
    seqs.extend(publish_all(bus, &a, [4]).await);
    let query = |event_source: Option<&str>, limit: usize| EventQuery {
        namespace: Some(ns.clone()),
        event_source: event_source.map(str::to_owned),
        since: None,
        limit,
    };
    let recent = |q: EventQuery| async move {
        bus.recent(&q)
            .await
            .unwrap_or_else(|e| panic!("recent {q:?}: {e}"))
    };
    let all = recent(query(None, 100)).await;
    assert_eq!(
        all.iter().map(|s| n_of(&s.event)).collect::<Vec<_>>(),
        vec![4, 3, 2, 1],
        "the namespace's events, newest first"
    );
    let mut newest_first = seqs.clone();
    newest_first.reverse();
    assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), newest_first);
    assert_eq!(all[0].topic, a);
    assert_eq!(all[1].topic, a2);
    let of_a = recent(query(Some("src-a"), 2)).await;
    assert_eq!(
        of_a.iter().map(|s| n_of(&s.event)).collect::<Vec<_>>(),
        vec![4, 3],
        "one source, limited to the newest two"
    );
    let since = {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = jiff::Timestamp::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        t
    };
    publish_all(bus, &b, [5]).await;
    let newer = recent(EventQuery {
        since: Some(since),
        ..query(None, 100)
    })
    .await;
    assert_eq!(
        newer.iter().map(|s| n_of(&s.event)).collect::<Vec<_>>(),
        vec![5],
        "only what was published at or after since"
    );
    // Listing moved no consumer: it still gets its topic's events from the start.
    let got = fetch_exactly(bus, &c.name, 2).await;
    assert_eq!(ns_of(&got), vec![1, 4]);
    ack(bus, &c.name, &got.iter().map(|d| d.seq).collect::<Vec<_>>()).await;
}

/// `stats` counts at least what this check put there.
pub async fn stats_count_what_is_held<B: Bus>(bus: &B, suite: &Suite) {
    let topic = suite.topic("stats", "hooks", "push");
    let c = suite.consumer("stats", "dep", &topic, LONG_ACK_WAIT);
    ensure(bus, &c).await;
    let before = bus.stats().await.unwrap_or_else(|e| panic!("stats: {e}"));
    publish_all(bus, &topic, 0..5).await;
    let after = bus.stats().await.unwrap_or_else(|e| panic!("stats: {e}"));
    assert!(after.events >= 5, "{after:?}");
    assert!(after.events >= before.events, "{before:?} then {after:?}");
    assert!(after.bytes > 0, "{after:?}");
    assert!(after.consumers >= 1, "{after:?}");
}

/// Published events, consumers and their positions survive closing the bus and opening it
/// again (`open` connects to the same backend state: the same database, the same server).
pub async fn survives_reopen<B, F, Fut>(suite: &Suite, open: F)
where
    B: Bus,
    F: Fn() -> Fut,
    Fut: Future<Output = B>,
{
    let topic = suite.topic("reopen", "hooks", "push");
    let c = suite.consumer("reopen", "dep", &topic, LONG_ACK_WAIT);
    {
        let bus = open().await;
        ensure(&bus, &c).await;
        publish_all(&bus, &topic, [1, 2, 3]).await;
        let first = fetch_exactly(&bus, &c.name, 1).await;
        assert_eq!(ns_of(&first), vec![1]);
        ack(&bus, &c.name, &[first[0].seq]).await;
    }
    let bus = open().await;
    let names = bus
        .consumers()
        .await
        .unwrap_or_else(|e| panic!("consumers: {e}"));
    assert!(names.contains(&c.name), "consumer kept: {names:?}");
    ensure(&bus, &c).await;
    let rest = fetch_exactly(&bus, &c.name, 2).await;
    assert_eq!(ns_of(&rest), vec![2, 3], "position and events kept");
    ack(
        &bus,
        &c.name,
        &rest.iter().map(|d| d.seq).collect::<Vec<_>>(),
    )
    .await;
    let listed = bus
        .recent(&EventQuery {
            namespace: Some(suite.ns("reopen")),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap_or_else(|e| panic!("recent: {e}"));
    assert_eq!(
        listed.iter().map(|s| n_of(&s.event)).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
}
