//! The `nats` event source against a real nats-server started by `tests/common/nats.rs` (own
//! port and store on loopback, stopped on drop), run directly (no cluster: a nats source needs
//! only the bus and its resolved credentials), with events landing on an embedded bus.
//!
//! Covered: messages of a wildcard subject become events with Argo's data (`subject`, JSON
//! `body`, `header`, `metadata`) and ids from `Nats-Msg-Id`; the filter and a non-JSON body
//! drop messages; the server restarted mid-way (SIGTERM, then SIGKILL): the source reconnects
//! and later messages arrive; a queue group shares messages between two sources, each message
//! once; token and basic authentication from resolved Secrets reach the server, and wrong
//! credentials are reported (without the secret) and retried; the task stops when told. Runs when nats-server is built or with `CAIRN_E2E=1`; prints
//! a SKIP line otherwise. Every wait is bounded; nothing asserts on timing.

#[path = "common/nats.rs"]
mod nats;

use std::collections::BTreeSet;
use std::time::Duration;

use cairn::events::bus::embedded::{EmbeddedBus, Retention};
use cairn::events::bus::{AnyBus, Bus, ConsumerConfig, Topic};
use cairn::events::event::{Event, event_id};
use cairn::events::sources::nats::{
    ConnState, Credentials, FIELD_PASSWORD, FIELD_TOKEN, FIELD_USERNAME, NatsSource, NatsSpec, run,
};
use cairn::store::Store;
use nats::{CoreServer, NatsServer};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

/// Bound of every wait.
const BOUND: Duration = Duration::from_secs(60);

struct Harness {
    _dir: tempfile::TempDir,
    bus: EmbeddedBus,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let bus = EmbeddedBus::open(
        store,
        Retention {
            max_age: Duration::from_secs(3600),
            max_bytes: 64 << 20,
        },
    )
    .expect("bus");
    Harness { _dir: dir, bus }
}

async fn start_server() -> NatsServer {
    tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("starting nats-server: {e}"))
}

async fn consumer(bus: &EmbeddedBus, name: &str, topic: &Topic) {
    bus.ensure_consumer(&ConsumerConfig {
        name: name.to_owned(),
        topic: topic.clone(),
        ack_wait: Duration::from_secs(600),
    })
    .await
    .expect("consumer");
}

/// A running source: its task, state and stop signal.
struct Running {
    task: tokio::task::JoinHandle<Result<(), cairn::events::sources::nats::NatsError>>,
    state: watch::Receiver<ConnState>,
    stop: Option<oneshot::Sender<()>>,
}

fn start_source(bus: &EmbeddedBus, topic: Topic, spec: Value) -> Running {
    start_with(bus, topic, spec, Credentials::new())
}

fn start_with(bus: &EmbeddedBus, topic: Topic, spec: Value, credentials: Credentials) -> Running {
    let object = format!("{}/{}", topic.namespace, topic.event_source);
    let spec = NatsSpec::parse(&object, &topic.event_name, &spec).expect("valid spec");
    let source = NatsSource {
        topic,
        spec,
        credentials,
    };
    let (state_tx, state) = watch::channel(ConnState::Connecting {
        attempts: 0,
        error: None,
    });
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run(
        AnyBus::Embedded(bus.clone()),
        source,
        state_tx,
        async move {
            let _ = stop_rx.await;
        },
    ));
    Running {
        task,
        state,
        stop: Some(stop),
    }
}

impl Running {
    /// Waits until the source is subscribed for at least the `n`th time.
    async fn subscribed(&mut self, n: u64, server: &NatsServer) {
        self.subscribed_or(n, || server.log_tail(20)).await;
    }

    async fn subscribed_or(&mut self, n: u64, log: impl Fn() -> String) {
        let waited = tokio::time::timeout(
            BOUND,
            self.state.wait_for(
                |s| matches!(s, ConnState::Subscribed { connections } if *connections >= n),
            ),
        )
        .await
        .map(|r| r.is_ok());
        match waited {
            Ok(true) => {}
            _ => panic!(
                "the source is not subscribed (connection {n}): {:?}\n{}",
                *self.state.borrow(),
                log()
            ),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).expect("the task is running");
        }
        let result = tokio::time::timeout(BOUND, self.task)
            .await
            .expect("the task stops when told")
            .expect("no panic");
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(*self.state.borrow(), ConnState::Stopped);
    }
}

async fn publisher(server: &NatsServer) -> async_nats::Client {
    tokio::time::timeout(BOUND, async_nats::connect(server.url.as_str()))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("connecting to {}: {e}", server.url))
}

async fn send(client: &async_nats::Client, subject: &str, msg_id: Option<&str>, body: &[u8]) {
    let subject = subject.to_owned();
    let payload = body.to_vec().into();
    match msg_id {
        Some(id) => {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert("Nats-Msg-Id", id);
            headers.insert("X-Team", "ml");
            client.publish_with_headers(subject, headers, payload).await
        }
        None => client.publish(subject, payload).await,
    }
    .expect("publish");
    tokio::time::timeout(BOUND, client.flush())
        .await
        .expect("flush in time")
        .expect("flush");
}

/// Fetches (and acks) until `want` events arrived (bounded by 12 rounds of 5 s waits).
async fn fetch_n(bus: &EmbeddedBus, consumer: &str, want: usize) -> Vec<Event> {
    let mut got = Vec::new();
    for _ in 0..12 {
        if got.len() >= want {
            break;
        }
        let batch = bus
            .fetch(consumer, want - got.len(), Duration::from_secs(5))
            .await
            .expect("fetch");
        let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
        bus.ack(consumer, &seqs).await.expect("ack");
        got.extend(batch.into_iter().map(|d| d.event));
    }
    got
}

/// Whatever is on the consumer right now (a short wait).
async fn fetch_rest(bus: &EmbeddedBus, consumer: &str) -> Vec<Event> {
    bus.fetch(consumer, 100, Duration::from_millis(200))
        .await
        .expect("fetch")
        .into_iter()
        .map(|d| d.event)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_become_events_and_survive_server_restarts() {
    if !NatsServer::wanted("messages_become_events_and_survive_server_restarts") {
        return;
    }
    let mut server = start_server().await;
    let h = harness();
    let topic = Topic::new("ev", "queue", "orders");
    consumer(&h.bus, "test", &topic).await;
    let mut source = start_source(
        &h.bus,
        topic.clone(),
        json!({
            "url": server.url, "subject": "orders.>", "jsonBody": true,
            "metadata": {"suite": "nats-source"},
            "connectionBackoff": {"duration": "100ms", "factor": 2, "steps": 4},
            "filter": {"expression": "body.kind != 'skip'"}
        }),
    );
    source.subscribed(1, &server).await;

    let client = publisher(&server).await;
    send(
        &client,
        "orders.created",
        Some("m-1"),
        br#"{"kind": "order", "n": 1}"#,
    )
    .await;
    send(&client, "orders.created", None, br#"{"kind": "skip"}"#).await;
    send(&client, "orders.created", None, b"not json").await;
    send(&client, "other.subject", None, br#"{"kind": "order"}"#).await;
    send(
        &client,
        "orders.eu.paid",
        None,
        br#"{"kind": "order", "n": 2}"#,
    )
    .await;
    // Core NATS delivers in order: once the last message is on the bus, the ones before it
    // were handled (published or dropped).
    let got = fetch_n(&h.bus, "test", 2).await;
    let rest = fetch_rest(&h.bus, "test").await;
    assert!(rest.is_empty(), "unexpected events: {rest:?}");
    assert_eq!(
        *source.state.borrow(),
        ConnState::Subscribed { connections: 1 },
        "one connection so far"
    );
    assert_eq!(got.len(), 2, "{got:?}");
    let first = &got[0];
    assert_eq!(
        (
            first.context.type_.as_str(),
            first.context.source.as_str(),
            first.context.subject.as_str()
        ),
        ("nats", "queue", "orders")
    );
    assert_eq!(
        first.context.id,
        event_id("ev", "queue", "orders", "orders.created/m-1")
    );
    assert_eq!(
        first.data,
        json!({
            "subject": "orders.created",
            "body": {"kind": "order", "n": 1},
            "header": {"Nats-Msg-Id": ["m-1"], "X-Team": ["ml"]},
            "metadata": {"suite": "nats-source"}
        })
    );
    assert_eq!(
        got[1].data,
        json!({"subject": "orders.eu.paid", "body": {"kind": "order", "n": 2},
               "metadata": {"suite": "nats-source"}})
    );

    // A clean restart, then a crash: each time the source reconnects and later messages arrive.
    for (round, kill) in [(2u64, false), (3, true)] {
        server = tokio::task::spawn_blocking(move || {
            let r = if kill {
                server.crash_restart()
            } else {
                server.restart()
            };
            r.map(|()| server)
        })
        .await
        .expect("restart task")
        .unwrap_or_else(|e| panic!("restarting nats-server: {e}"));
        source.subscribed(round, &server).await;
        assert_eq!(
            *source.state.borrow(),
            ConnState::Subscribed { connections: round },
            "one reconnection per restart"
        );
        assert!(!source.task.is_finished(), "the source ended on a restart");
        let client = publisher(&server).await;
        let id = format!("after-{round}");
        send(
            &client,
            "orders.created",
            Some(&id),
            br#"{"kind": "order"}"#,
        )
        .await;
        let got = fetch_n(&h.bus, "test", 1).await;
        assert_eq!(got.len(), 1, "no event after restart {round}");
        assert_eq!(
            got[0].context.id,
            event_id("ev", "queue", "orders", &format!("orders.created/{id}"))
        );
    }
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_shares_messages_between_sources() {
    if !NatsServer::wanted("a_queue_group_shares_messages_between_sources") {
        return;
    }
    let server = start_server().await;
    let h = harness();
    let topics = [
        Topic::new("ev", "queue", "a"),
        Topic::new("ev", "queue", "b"),
    ];
    let mut sources = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        consumer(&h.bus, &format!("c{i}"), topic).await;
        let mut s = start_source(
            &h.bus,
            topic.clone(),
            json!({"url": server.url, "subject": "jobs", "queue": "workers"}),
        );
        s.subscribed(1, &server).await;
        sources.push(s);
    }
    let client = publisher(&server).await;
    const N: usize = 40;
    for n in 0..N {
        send(
            &client,
            "jobs",
            Some(&format!("job-{n}")),
            format!("{n}").as_bytes(),
        )
        .await;
    }
    let mut ids = Vec::new();
    let mut per_source = [0usize; 2];
    for _ in 0..12 {
        if ids.len() >= N {
            break;
        }
        for (i, count) in per_source.iter_mut().enumerate() {
            let consumer = format!("c{i}");
            let batch = h
                .bus
                .fetch(&consumer, N, Duration::from_millis(500))
                .await
                .expect("fetch");
            let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
            h.bus.ack(&consumer, &seqs).await.expect("ack");
            *count += batch.len();
            ids.extend(batch.into_iter().map(|d| d.event.data["body"].clone()));
        }
    }
    let distinct: BTreeSet<String> = ids.iter().map(Value::to_string).collect();
    assert_eq!(ids.len(), N, "each message once: {per_source:?}");
    assert_eq!(distinct.len(), N, "no message twice");
    // Raw bodies are base64 (jsonBody unset).
    assert!(distinct.contains("\"MA==\""), "{distinct:?}");
    println!("queue group split: {per_source:?}");
    for s in sources {
        s.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_basic_auth_reach_the_server_and_wrong_ones_are_reported() {
    if !NatsServer::wanted("token_and_basic_auth_reach_the_server_and_wrong_ones_are_reported") {
        return;
    }
    if !nats::nats_built() {
        // CAIRN_E2E=1 on a fresh machine: the JetStream harness builds the binary.
        drop(start_server().await);
    }
    let token_server = CoreServer::start(&["--auth", "t0ken-s3cret"])
        .await
        .unwrap_or_else(|e| panic!("starting nats-server: {e}"));
    let basic_server = CoreServer::start(&["--user", "alice", "--pass", "pa55-s3cret"])
        .await
        .unwrap_or_else(|e| panic!("starting nats-server: {e}"));
    let h = harness();
    let cases = [
        (
            "token",
            &token_server,
            json!({"token": {"name": "nats", "key": "token"}}),
            vec![(FIELD_TOKEN, "t0ken-s3cret\n")],
            async_nats::ConnectOptions::with_token("t0ken-s3cret".to_owned()),
        ),
        (
            "basic",
            &basic_server,
            json!({"basic": {"username": {"name": "nats", "key": "user"},
                             "password": {"name": "nats", "key": "pass"}}}),
            vec![(FIELD_USERNAME, "alice"), (FIELD_PASSWORD, "pa55-s3cret")],
            async_nats::ConnectOptions::with_user_and_password(
                "alice".to_owned(),
                "pa55-s3cret".to_owned(),
            ),
        ),
    ];
    for (name, server, auth, values, publisher) in cases {
        let spec = json!({
            "url": server.url, "subject": "secure", "auth": auth,
            "connectionBackoff": {"duration": "100ms", "factor": 1}
        });
        let topic = Topic::new("ev", "secure", name);
        consumer(&h.bus, name, &topic).await;
        let mut creds = Credentials::new();
        for (field, value) in &values {
            creds.insert(field, value.as_bytes().to_vec());
        }
        let mut source = start_with(&h.bus, topic, spec.clone(), creds);
        source
            .subscribed_or(1, || format!("{name} server on {}", server.url))
            .await;
        let client = tokio::time::timeout(BOUND, publisher.connect(server.url.as_str()))
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("{name}: the test client cannot connect: {e}"));
        send(&client, "secure", Some("s-1"), b"hi").await;
        let got = fetch_n(&h.bus, name, 1).await;
        assert_eq!(got.len(), 1, "{name}: no event");
        assert_eq!(got[0].data["body"], "aGk=");
        source.stop().await;

        // Wrong values: reported, retried, never the secret in the report.
        let mut wrong = Credentials::new();
        for (field, _) in &values {
            wrong.insert(field, b"wr0ng-s3cret".to_vec());
        }
        let mut bad = start_with(&h.bus, Topic::new("ev", "secure", "bad"), spec, wrong);
        let state = tokio::time::timeout(
            BOUND,
            bad.state.wait_for(
                |s| matches!(s, ConnState::Connecting { attempts, .. } if *attempts >= 2),
            ),
        )
        .await
        .map(|r| r.map(|s| s.clone()));
        let Ok(Ok(state)) = state else {
            panic!(
                "{name}: wrong credentials were not reported: {:?}",
                *bad.state.borrow()
            );
        };
        let problem = state.problem().expect("a problem");
        println!("{name}: {problem}");
        assert!(
            !problem.contains("s3cret"),
            "{name}: the secret leaked: {problem}"
        );
        assert!(!bad.task.is_finished(), "{name}: the task ended");
        bad.stop().await;
    }
}
