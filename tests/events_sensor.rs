//! A Sensor runner against the real embedded bus (redb in a tempdir), with a log trigger and an
//! http trigger to a loopback server: every event produces exactly one outcome per trigger,
//! a crash after the state is durable but before the ack (the runner dropped) replays nothing
//! twice, and a filter mismatch is recorded with its reason. Waits are bounded polls; no timing
//! is asserted.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use cairn::config::EventsConfig;
use cairn::events::bus::embedded::{EmbeddedBus, Retention};
use cairn::events::bus::{Bus, Topic};
use cairn::events::event::{Event, event_id};
use cairn::events::history::{History, HistoryEntry, HistoryQuery, OutcomeResult};
use cairn::events::sensor::compile;
use cairn::events::sensor::runner::{Incoming, SensorRunner, Settings, load_state};
use cairn::events::trigger::Executor;
use cairn::events::types::Sensor;
use cairn::store::Store;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Request bodies the loopback server received.
type Received = Arc<Mutex<Vec<Value>>>;

async fn http_server() -> (String, Received) {
    let received: Received = Arc::default();
    let r = received.clone();
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let r = r.clone();
            async move {
                let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                r.lock().expect("lock").push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received)
}

fn sensor(url: &str) -> Sensor {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
        "metadata": {"namespace": "ns", "name": "s"},
        "spec": {
            "dependencies": [{"name": "d", "eventSourceName": "hook", "eventName": "ev",
                              "filters": {"data": [{"path": "body.n", "type": "number",
                                                    "comparator": ">=", "value": ["0"]}]}}],
            "triggers": [
                {"template": {"name": "log-t", "log": {}}},
                {"template": {"name": "http-t", "http": {"url": url, "method": "POST",
                    "payload": [{"src": {"dependencyName": "d", "dataKey": "body.n"}, "dest": "n"}]}},
                 "retryStrategy": {"steps": 3, "duration": "50ms"}}
            ]
        }
    }))
    .expect("sensor")
}

fn event(n: i64) -> Event {
    let id = event_id("ns", "hook", "ev", &n.to_string());
    Event::webhook(
        "hook",
        "ev",
        id,
        jiff::Timestamp::now(),
        &BTreeMap::new(),
        json!({"n": n}),
    )
}

fn settings() -> Settings {
    Settings {
        ack_wait: Duration::from_millis(300),
        fetch_max: 64,
        fetch_wait: Duration::from_millis(200),
        batch: 256,
    }
}

fn outcomes(h: &History) -> Vec<(String, String, OutcomeResult)> {
    h.list("ns", "s", &HistoryQuery::default())
        .expect("history")
        .into_iter()
        .filter_map(|r| match r.entry {
            HistoryEntry::Outcome(o) => Some((o.trigger, o.event_ids["d"].clone(), o.result)),
            HistoryEntry::Unmatched(_) => None,
        })
        .collect()
}

/// Polls `done` every 50 ms for up to 30 s.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_fires_once_even_across_a_crash_before_ack() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let bus = EmbeddedBus::open(
        store.clone(),
        Retention::from_config(&EventsConfig::default()),
    )
    .expect("bus");
    let history = History::open(store.clone()).await.expect("history");
    let (url, received) = http_server().await;
    let compiled = Arc::new(compile(&sensor(&url)));
    assert!(
        compiled.trigger_problems.is_empty(),
        "{:?}",
        compiled.trigger_problems
    );
    let executor = Executor::new(None, reqwest::Client::new());
    let topic = Topic::new("ns", "hook", "ev");
    let consumer = compiled.dependencies["d"].consumer.clone();

    // Phase 1: the runner takes 20 events, makes its state durable, and "crashes" before
    // acknowledging them or firing anything.
    let mut first = SensorRunner::start(
        compiled.clone(),
        bus.clone(),
        history.clone(),
        executor.clone(),
        settings(),
    )
    .await
    .expect("start");
    for n in 0..20 {
        bus.publish(&topic, &event(n)).await.expect("publish");
    }
    // One that the filter refuses.
    bus.publish(&topic, &event(-1)).await.expect("publish");
    let mut batch = Vec::new();
    for _ in 0..50 {
        if batch.len() >= 21 {
            break;
        }
        for delivery in bus
            .fetch(&consumer, 64, Duration::from_millis(200))
            .await
            .expect("fetch")
        {
            batch.push(Incoming {
                dependency: "d".into(),
                consumer: consumer.clone(),
                delivery,
            });
        }
    }
    assert_eq!(batch.len(), 21);
    first.process(batch).await.expect("process");
    drop(first);
    assert!(received.lock().expect("lock").is_empty());
    let persisted = load_state(&store, "ns/s").expect("state");
    assert_eq!(persisted.outbox.len(), 40, "20 events x 2 triggers decided");

    // Phase 2: a new runner resumes: fires the outbox, sees the 21 redeliveries as processed,
    // and handles 10 new events.
    let runner = SensorRunner::start(
        compiled.clone(),
        bus.clone(),
        history.clone(),
        executor.clone(),
        settings(),
    )
    .await
    .expect("restart");
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    for n in 20..30 {
        bus.publish(&topic, &event(n)).await.expect("publish");
    }
    wait_for("60 outcomes", || outcomes(&history).len() >= 60).await;
    // Past several ack_waits: any redelivery has been processed (and would show as a
    // second outcome or request below).
    tokio::time::sleep(settings().ack_wait * 4).await;
    stop.cancel();
    task.await.expect("runner task");

    let all = outcomes(&history);
    assert_eq!(all.len(), 60, "one outcome per event and trigger");
    for (trigger, _, result) in &all {
        assert!(
            !matches!(result, OutcomeResult::Failed { .. }),
            "{trigger}: {result:?}"
        );
    }
    let mut ns: Vec<i64> = received
        .lock()
        .expect("lock")
        .iter()
        .map(|b| b["n"].as_str().and_then(|s| s.parse().ok()).expect("n"))
        .collect();
    ns.sort_unstable();
    assert_eq!(
        ns,
        (0..30).collect::<Vec<_>>(),
        "each event posted exactly once"
    );
    let unmatched: Vec<String> = history
        .list("ns", "s", &HistoryQuery::default())
        .expect("history")
        .into_iter()
        .filter_map(|r| match r.entry {
            HistoryEntry::Unmatched(u) => Some(u.reason),
            HistoryEntry::Outcome(_) => None,
        })
        .collect();
    assert_eq!(unmatched.len(), 1, "{unmatched:?}");
    assert!(load_state(&store, "ns/s").expect("state").outbox.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_trigger_is_retried_then_recorded_and_the_sensor_goes_on() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let bus = EmbeddedBus::open(
        store.clone(),
        Retention::from_config(&EventsConfig::default()),
    )
    .expect("bus");
    let history = History::open(store.clone()).await.expect("history");
    // Nothing listens on this port (bound, then closed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let compiled = Arc::new(compile(&sensor(&format!("http://{closed}/hook"))));
    let runner = SensorRunner::start(
        compiled,
        bus.clone(),
        history.clone(),
        Executor::new(None, reqwest::Client::new()),
        settings(),
    )
    .await
    .expect("start");
    let stop = CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    let topic = Topic::new("ns", "hook", "ev");
    bus.publish(&topic, &event(1)).await.expect("publish");
    bus.publish(&topic, &event(2)).await.expect("publish");
    wait_for("4 outcomes", || outcomes(&history).len() >= 4).await;
    stop.cancel();
    task.await.expect("runner task");
    let history_now = history
        .list("ns", "s", &HistoryQuery::default())
        .expect("history");
    for r in history_now {
        if let HistoryEntry::Outcome(o) = r.entry {
            match o.trigger.as_str() {
                "http-t" => {
                    assert_eq!(o.attempts, 3, "retryStrategy.steps");
                    assert!(matches!(o.result, OutcomeResult::Failed { .. }), "{o:?}");
                }
                _ => assert!(matches!(o.result, OutcomeResult::Done { .. }), "{o:?}"),
            }
        }
    }
}
