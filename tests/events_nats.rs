//! The event bus's NATS JetStream backend (`NatsBus`) against a real nats-server started by
//! `tests/common/nats.rs` (own port and store on loopback, `sync_interval: always`, stopped on
//! drop).
//!
//! The backend-independent conformance suite (`tests/common/bus.rs`) runs on one stream, then
//! its reopen check on a second `NatsBus` over the same server. NATS-specific behaviour: the bus outlives a nats-server restart (clean and SIGKILL) with no
//! event lost and consumers resuming where they were; a second `NatsBus` (a cairn restart)
//! resumes a durable consumer and acks its redeliveries; a changed topic starts at the end of
//! the new topic; `recent` walks back past many events of other topics; an oversized event is
//! refused before it is sent; an unreachable server is an error naming the URL without its
//! credentials. Runs when nats-server is built or with `CAIRN_E2E=1` (which builds it); prints
//! a SKIP line otherwise.

#[path = "common/bus.rs"]
mod bus;
#[path = "common/nats.rs"]
mod nats;

use std::collections::BTreeMap;
use std::time::Duration;

use cairn::events::bus::nats::{NatsBus, NatsRetention};
use cairn::events::bus::{Bus, BusError, ConsumerConfig, Delivery, EventQuery, Topic};
use cairn::events::event::Event;
use nats::NatsServer;
use serde_json::json;

const RETENTION: NatsRetention = NatsRetention {
    max_age: Duration::from_secs(3600),
    max_bytes: 256 * 1024 * 1024,
};

fn event(source: &str, n: usize) -> Event {
    Event::webhook(
        source,
        "hook",
        format!("{source}-{n}"),
        jiff::Timestamp::now(),
        &BTreeMap::new(),
        json!({"n": n}),
    )
}

fn n_of(d: &Delivery) -> u64 {
    d.event.data["body"]["n"].as_u64().unwrap_or(u64::MAX)
}

async fn start_server() -> NatsServer {
    tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("starting nats-server: {e}"))
}

async fn connect(server: &NatsServer, stream: &str) -> NatsBus {
    NatsBus::connect(&server.url, stream, RETENTION)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e}\n{}", server.url, server.log_tail(20)))
}

fn consumer(name: &str, topic: &Topic, ack_wait: Duration) -> ConsumerConfig {
    ConsumerConfig {
        name: name.to_owned(),
        topic: topic.clone(),
        ack_wait,
    }
}

/// Fetches until `want` deliveries arrived (bounded by 40 rounds of 250 ms waits).
async fn fetch_n(bus: &NatsBus, consumer: &str, want: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    for _ in 0..40 {
        if got.len() >= want {
            break;
        }
        match bus
            .fetch(consumer, want - got.len(), Duration::from_millis(250))
            .await
        {
            Ok(batch) => got.extend(batch),
            // The client may still be reconnecting after a server restart.
            Err(BusError::Nats { .. }) => tokio::time::sleep(Duration::from_millis(250)).await,
            Err(e) => panic!("fetch {consumer}: {e}"),
        }
    }
    got
}

/// Publishes, retrying while the client reconnects (bounded: 20 tries, each bounded by the
/// bus's request timeout).
async fn publish_retrying(bus: &NatsBus, topic: &Topic, event: &Event) -> u64 {
    let mut last = None;
    for _ in 0..20 {
        match bus.publish(topic, event).await {
            Ok(seq) => return seq,
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("publish after restart kept failing: {last:?}");
}

#[tokio::test]
async fn conformance_suite_on_jetstream() {
    if !NatsServer::wanted("conformance_suite_on_jetstream") {
        return;
    }
    let server = start_server().await;
    let nats_bus = connect(&server, "conformance").await;
    let suite = bus::Suite::new("nats");
    bus::run_all(&nats_bus, &suite).await;
    bus::survives_reopen(&suite, || connect(&server, "conformance")).await;
}

#[tokio::test]
async fn unreachable_server_is_an_error_naming_the_url_without_credentials() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("nats://alice:hunter2secret@127.0.0.1:{port}");
    let err = NatsBus::connect(&url, "cairn-events", RETENTION)
        .await
        .expect_err("nothing listens there");
    let text = err.to_string();
    assert!(
        matches!(&err, BusError::Nats { url, .. } if url == &format!("nats://127.0.0.1:{port}")),
        "{err:?}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("cannot connect"), "{text}");
    assert!(
        !text.contains("hunter2secret") && !text.contains("alice"),
        "{text}"
    );
    assert_eq!(err.metric_label(), "nats");
}

#[tokio::test]
async fn a_bad_stream_name_is_refused_naming_the_field() {
    let err = NatsBus::connect("nats://127.0.0.1:1", "cairn.events", RETENTION)
        .await
        .expect_err("dots are not allowed");
    assert!(err.to_string().contains("[events] nats_stream"), "{err}");
}

#[tokio::test]
async fn bus_survives_server_restarts_and_loses_nothing() {
    if !NatsServer::wanted("bus_survives_server_restarts_and_loses_nothing") {
        return;
    }
    let mut server = start_server().await;
    let bus = connect(&server, "restart").await;
    let topic = Topic::new("ns", "hooks", "push");
    let ack_wait = Duration::from_secs(2);
    bus.ensure_consumer(&consumer("ns__s__dep", &topic, ack_wait))
        .await
        .expect("ensure");

    for n in 0..50 {
        bus.publish(&topic, &event("hooks", n))
            .await
            .expect("publish");
    }
    let first = fetch_n(&bus, "ns__s__dep", 20).await;
    assert_eq!(
        first.iter().map(n_of).collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    let seqs: Vec<u64> = first.iter().map(|d| d.seq).collect();
    bus.ack("ns__s__dep", &seqs).await.expect("ack");

    // A clean restart, then a crash (SIGKILL): the client reconnects by itself.
    server = tokio::task::spawn_blocking(move || server.restart().map(|()| server))
        .await
        .expect("restart task")
        .unwrap_or_else(|e| panic!("restart: {e}"));
    for n in 50..75 {
        publish_retrying(&bus, &topic, &event("hooks", n)).await;
    }
    server = tokio::task::spawn_blocking(move || server.crash_restart().map(|()| server))
        .await
        .expect("crash task")
        .unwrap_or_else(|e| panic!("crash restart: {e}"));
    for n in 75..100 {
        publish_retrying(&bus, &topic, &event("hooks", n)).await;
    }

    // Every event not acked before the restarts arrives, in order, none twice.
    let rest = fetch_n(&bus, "ns__s__dep", 80).await;
    let ns: Vec<u64> = rest.iter().map(n_of).collect();
    assert_eq!(ns, (20..100).collect::<Vec<_>>(), "{}", server.log_tail(20));
    assert!(rest.iter().all(|d| d.attempt == 1), "{rest:?}");
    let seqs: Vec<u64> = rest.iter().map(|d| d.seq).collect();
    bus.ack("ns__s__dep", &seqs)
        .await
        .expect("ack after restarts");
    let stats = bus.stats().await.expect("stats");
    assert_eq!((stats.events, stats.consumers), (100, 1));
    // Nothing comes back after ack_wait: every ack held across the restarts.
    tokio::time::sleep(ack_wait + Duration::from_millis(500)).await;
    let again = bus
        .fetch("ns__s__dep", 10, Duration::from_millis(300))
        .await
        .expect("fetch");
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_second_bus_resumes_the_durable_consumer_and_acks_redeliveries() {
    if !NatsServer::wanted("a_second_bus_resumes_the_durable_consumer_and_acks_redeliveries") {
        return;
    }
    let server = start_server().await;
    let topic = Topic::new("ns", "hooks", "push");
    let ack_wait = Duration::from_secs(1);
    {
        let bus = connect(&server, "resume").await;
        bus.ensure_consumer(&consumer("c", &topic, ack_wait))
            .await
            .expect("ensure");
        for n in 0..10 {
            bus.publish(&topic, &event("hooks", n))
                .await
                .expect("publish");
        }
        let got = fetch_n(&bus, "c", 4).await;
        assert_eq!(got.iter().map(n_of).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        bus.ack("c", &[got[0].seq, got[1].seq]).await.expect("ack");
        // 2 and 3 stay unacked: a crash of cairn here.
    }
    let bus = connect(&server, "resume").await;
    // Fetch works before ensure: the consumer is durable on the server.
    tokio::time::sleep(ack_wait + Duration::from_millis(300)).await;
    let got = fetch_n(&bus, "c", 8).await;
    let ns: Vec<u64> = got.iter().map(n_of).collect();
    assert_eq!(ns, vec![2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(got[0].attempt, 2, "{got:?}");
    assert_eq!(got[2].attempt, 1);
    let seqs: Vec<u64> = got.iter().map(|d| d.seq).collect();
    bus.ack("c", &seqs).await.expect("ack redeliveries");
    tokio::time::sleep(ack_wait + Duration::from_millis(300)).await;
    assert!(
        bus.fetch("c", 10, Duration::from_millis(200))
            .await
            .expect("fetch")
            .is_empty()
    );
    // A name the server does not know is an unknown consumer, on fetch and on ack.
    assert!(matches!(
        bus.fetch("nope", 1, Duration::ZERO).await,
        Err(BusError::UnknownConsumer(_))
    ));
    assert!(matches!(
        bus.ack("nope", &[1]).await,
        Err(BusError::UnknownConsumer(_))
    ));
}

#[tokio::test]
async fn a_changed_topic_starts_at_the_end_of_the_new_topic() {
    if !NatsServer::wanted("a_changed_topic_starts_at_the_end_of_the_new_topic") {
        return;
    }
    let server = start_server().await;
    let bus = connect(&server, "retopic").await;
    let (a, b) = (Topic::new("ns", "a", "e"), Topic::new("ns", "b", "e"));
    let wait = Duration::from_secs(5);
    bus.ensure_consumer(&consumer("c", &a, wait))
        .await
        .expect("ensure a");
    bus.publish(&a, &event("a", 1)).await.expect("publish");
    bus.publish(&b, &event("b", 2)).await.expect("publish");
    bus.ensure_consumer(&consumer("c", &b, wait))
        .await
        .expect("ensure b");
    bus.publish(&a, &event("a", 3)).await.expect("publish");
    bus.publish(&b, &event("b", 4)).await.expect("publish");
    let got = fetch_n(&bus, "c", 1).await;
    assert_eq!(got.iter().map(n_of).collect::<Vec<_>>(), vec![4]);
    assert_eq!(got[0].topic, b);
    // Ensuring it again with the same topic keeps its position (and a new ack_wait).
    bus.ensure_consumer(&consumer("c", &b, Duration::from_secs(7)))
        .await
        .expect("ensure b again");
    bus.publish(&b, &event("b", 5)).await.expect("publish");
    let got = fetch_n(&bus, "c", 1).await;
    assert_eq!(got.iter().map(n_of).collect::<Vec<_>>(), vec![5]);
    assert_eq!(
        bus.consumers().await.expect("consumers"),
        vec!["c".to_owned()]
    );
    bus.delete_consumer("c").await.expect("delete");
    bus.delete_consumer("c").await.expect("delete twice");
    assert!(bus.consumers().await.expect("consumers").is_empty());
}

#[tokio::test]
async fn recent_walks_back_past_other_topics() {
    if !NatsServer::wanted("recent_walks_back_past_other_topics") {
        return;
    }
    let server = start_server().await;
    let bus = connect(&server, "recent").await;
    let rare = Topic::new("team-a", "rare", "e");
    let busy = Topic::new("team-b", "busy", "e");
    for n in 0..5 {
        bus.publish(&rare, &event("rare", n))
            .await
            .expect("publish");
    }
    let cut = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Far more than the first window of `recent` (256), so it must walk back.
    let publishes = (0..1500).map(|n| {
        let bus = bus.clone();
        let busy = busy.clone();
        async move { bus.publish(&busy, &event("busy", n)).await }
    });
    for r in futures::future::join_all(publishes).await {
        r.expect("publish busy");
    }
    bus.publish(&rare, &event("rare", 5))
        .await
        .expect("publish");

    let query = |ns: Option<&str>, es: Option<&str>, limit: usize| EventQuery {
        namespace: ns.map(str::to_owned),
        event_source: es.map(str::to_owned),
        since: None,
        limit,
    };
    let ns_of = |v: &[cairn::events::bus::StoredEvent]| {
        v.iter()
            .map(|s| s.event.data["body"]["n"].as_u64().unwrap_or(u64::MAX))
            .collect::<Vec<_>>()
    };
    let got = bus
        .recent(&query(None, Some("rare"), 10))
        .await
        .expect("recent");
    assert_eq!(ns_of(&got), vec![5, 4, 3, 2, 1, 0]);
    assert!(got.windows(2).all(|w| w[0].seq > w[1].seq));
    assert!(got.iter().all(|s| s.topic == rare));
    let got = bus
        .recent(&query(Some("team-a"), Some("rare"), 2))
        .await
        .expect("recent");
    assert_eq!(ns_of(&got), vec![5, 4]);
    let got = bus
        .recent(&query(Some("team-b"), None, 3))
        .await
        .expect("recent");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|s| s.topic == busy));
    let all = bus.recent(&query(None, None, 4)).await.expect("recent");
    assert_eq!(all[0].topic, rare);
    assert_eq!(all.len(), 4);
    // `since` leaves out the five rare events published before the cut.
    let mut q = query(None, Some("rare"), 10);
    q.since = Some(cut);
    assert_eq!(ns_of(&bus.recent(&q).await.expect("recent since")), vec![5]);
    assert!(
        bus.recent(&query(Some("nobody"), None, 5))
            .await
            .expect("recent")
            .is_empty()
    );
    // Reading leaves no consumer behind.
    assert!(bus.consumers().await.expect("consumers").is_empty());
    assert_eq!(bus.stats().await.expect("stats").consumers, 0);
}

#[tokio::test]
async fn an_oversized_event_is_refused() {
    if !NatsServer::wanted("an_oversized_event_is_refused") {
        return;
    }
    let server = start_server().await;
    let bus = connect(&server, "big").await;
    let topic = Topic::new("ns", "hooks", "push");
    let mut big = event("hooks", 0);
    big.data = json!({"body": "x".repeat(2 * 1024 * 1024)});
    let err = bus
        .publish(&topic, &big)
        .await
        .expect_err("over max_payload");
    assert!(
        matches!(err, BusError::TooLarge { limit, .. } if limit == 1024 * 1024),
        "{err}"
    );
    // The connection is still fine.
    bus.publish(&topic, &event("hooks", 1))
        .await
        .expect("publish");
}
