//! The embedded event bus (`cairn::events::bus::embedded`) against the bus conformance suite, in
//! a temporary data directory, plus what only the embedded backend promises: its state lives in
//! the redb file (events, consumers and in-flight deliveries survive a reopen), retention by
//! size and age, the event size limit.

#[path = "common/bus.rs"]
mod bus;

use std::path::Path;
use std::time::Duration;

use bus::Suite;
use cairn::events::bus::embedded::{EmbeddedBus, MAX_EVENT_BYTES, Retention};
use cairn::events::bus::{Bus, BusError, EventQuery};
use cairn::store::Store;
use serde_json::json;

const KEEP_ALL: Retention = Retention {
    max_age: Duration::from_secs(72 * 3600),
    max_bytes: u64::MAX,
};

fn open(dir: &Path, retention: Retention) -> EmbeddedBus {
    let store = Store::open(dir).expect("open store");
    EmbeddedBus::open(store, retention).expect("open bus")
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let dir = tempfile::tempdir().expect("tempdir");
            let bus = open(dir.path(), KEEP_ALL);
            bus::$check(&bus, &Suite::new("embedded")).await;
        }
    )*};
}

conformance!(
    order_within_topic,
    topic_isolation,
    new_consumer_starts_at_end,
    resume_after_re_ensure,
    redelivery_after_ack_wait,
    ack_stops_redelivery,
    duplicate_and_unknown_acks_are_fine,
    consumers_are_independent,
    delete_consumer,
    fetch_returns_early_on_publish,
    fetch_returns_empty_after_wait,
    recent_lists_newest_first_with_filters,
    stats_count_what_is_held,
);

#[tokio::test]
async fn whole_suite_on_one_bus() {
    // The checks share one bus as they share one JetStream stream on NATS.
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = open(dir.path(), KEEP_ALL);
    bus::run_all(&bus, &Suite::new("embedded-all")).await;
    let stats = bus.stats().await.expect("stats");
    let listed = bus
        .recent(&EventQuery {
            limit: 100_000,
            ..EventQuery::default()
        })
        .await
        .expect("recent");
    assert_eq!(
        stats.events,
        listed.len() as u64,
        "the events counter is the log's size"
    );
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    bus::survives_reopen(&Suite::new("embedded"), || {
        let path = path.clone();
        async move { open(&path, KEEP_ALL) }
    })
    .await;
}

#[tokio::test]
async fn in_flight_deliveries_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = Suite::new("embedded");
    let topic = suite.topic("inflight", "hooks", "push");
    let c = suite.consumer("inflight", "dep", &topic, Duration::from_secs(2));
    let (first_seqs, stats_before) = {
        let bus = open(dir.path(), KEEP_ALL);
        bus.ensure_consumer(&c).await.expect("ensure");
        bus::publish_all(&bus, &topic, [1, 2, 3]).await;
        let got = bus.fetch(&c.name, 2, Duration::ZERO).await.expect("fetch");
        assert_eq!(got.len(), 2);
        (
            got.iter().map(|d| d.seq).collect::<Vec<_>>(),
            bus.stats().await.expect("stats"),
        )
    };
    let bus = open(dir.path(), KEEP_ALL);
    assert_eq!(bus.stats().await.expect("stats"), stats_before);
    // Without ensure: the consumer itself is stored.
    let mut got = bus::fetch_exactly(&bus, &c.name, 3).await;
    got.sort_by_key(|d| d.seq);
    // The third was never handed out; the first two come back as second attempts (had their
    // in-flight rows been lost, the cursor past them would never deliver them again).
    assert_eq!(
        got.iter()
            .map(|d| (bus::n_of(&d.event), d.attempt))
            .collect::<Vec<_>>(),
        vec![(1, 2), (2, 2), (3, 1)]
    );
    assert_eq!(
        got[..2].iter().map(|d| d.seq).collect::<Vec<_>>(),
        first_seqs
    );
}

#[tokio::test]
async fn retention_by_size_drops_oldest_with_their_deliveries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = Suite::new("embedded");
    let topic = suite.topic("retention", "hooks", "push");
    let c = suite.consumer("retention", "dep", &topic, Duration::from_secs(1));
    let probe_bus = open(dir.path(), KEEP_ALL);
    probe_bus.ensure_consumer(&c).await.expect("ensure");
    let seqs = bus::publish_all(&probe_bus, &topic, 1..=10).await;
    let total = probe_bus.stats().await.expect("stats").bytes;
    let per_event = total / 10;
    drop(probe_bus);

    // Room for about four events: the six oldest go.
    let bus = open(
        dir.path(),
        Retention {
            max_age: KEEP_ALL.max_age,
            max_bytes: per_event * 4 + per_event / 2,
        },
    );
    // Two in flight (never acknowledged), both among the dropped ones.
    let in_flight = bus.fetch(&c.name, 2, Duration::ZERO).await.expect("fetch");
    assert_eq!(bus::n_of(&in_flight[0].event), 1);
    let outcome = bus.apply_retention().await.expect("retention");
    assert_eq!(outcome.events, 6, "{outcome:?}");
    let stats = bus.stats().await.expect("stats");
    assert_eq!(stats.events, 4);
    assert_eq!(stats.bytes, total - outcome.bytes);
    let listed = bus
        .recent(&EventQuery {
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .expect("recent");
    assert_eq!(
        listed.iter().map(|s| s.seq).collect::<Vec<_>>(),
        seqs[6..].iter().rev().copied().collect::<Vec<_>>()
    );
    // The consumer continues with what is left; the dropped in-flight pair never comes back.
    let rest = bus::fetch_exactly(&bus, &c.name, 4).await;
    assert_eq!(
        rest.iter().map(|d| bus::n_of(&d.event)).collect::<Vec<_>>(),
        vec![7, 8, 9, 10]
    );
    bus.ack(&c.name, &rest.iter().map(|d| d.seq).collect::<Vec<_>>())
        .await
        .expect("ack");
    bus::expect_quiet(&bus, &c.name, "dropped deliveries are not redelivered").await;
    // A second pass has nothing to do.
    assert_eq!(bus.apply_retention().await.expect("retention").events, 0);
    // Sequence numbers are never reused.
    let next = bus::publish_all(&bus, &topic, [11]).await;
    assert_eq!(next, vec![seqs[9] + 1]);
}

#[tokio::test]
async fn retention_by_age_empties_the_log_and_keeps_numbering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let suite = Suite::new("embedded");
    let topic = suite.topic("age", "hooks", "push");
    let bus = open(
        dir.path(),
        Retention {
            max_age: Duration::from_millis(1),
            max_bytes: u64::MAX,
        },
    );
    let seqs = bus::publish_all(&bus, &topic, 1..=3).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let outcome = bus.apply_retention().await.expect("retention");
    assert_eq!(outcome.events, 3);
    let stats = bus.stats().await.expect("stats");
    assert_eq!((stats.events, stats.bytes), (0, 0));
    drop(bus);
    let bus = open(dir.path(), KEEP_ALL);
    let next = bus::publish_all(&bus, &topic, [4]).await;
    assert_eq!(
        next,
        vec![seqs[2] + 1],
        "numbering survives an emptied log and a reopen"
    );
}

#[tokio::test]
async fn oversized_events_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = open(dir.path(), KEEP_ALL);
    let suite = Suite::new("embedded");
    let topic = suite.topic("big", "hooks", "push");
    let mut event = bus::event(&topic, 1);
    event.data = json!({"body": "x".repeat(MAX_EVENT_BYTES)});
    match bus.publish(&topic, &event).await {
        Err(BusError::TooLarge { size, limit }) => {
            assert!(size > limit);
            assert_eq!(limit, MAX_EVENT_BYTES);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(bus.stats().await.expect("stats").events, 0);
}

#[tokio::test]
async fn unknown_consumers_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bus = open(dir.path(), KEEP_ALL);
    match bus.fetch("nobody", 1, Duration::ZERO).await {
        Err(e @ BusError::UnknownConsumer(_)) => {
            assert!(e.to_string().contains("\"nobody\""), "{e}");
            assert_eq!(e.metric_label(), "unknown_consumer");
        }
        other => panic!("expected UnknownConsumer, got {other:?}"),
    }
    assert!(matches!(
        bus.ack("nobody", &[1]).await,
        Err(BusError::UnknownConsumer(_))
    ));
}
