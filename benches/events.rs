//! Event bus benchmarks: durable events/s accepted with many concurrent publishers, and
//! fetch+ack throughput of one consumer, on the embedded bus (redb, group commit) and on NATS
//! JetStream, in the same run so the ratio compares like with like.
//!
//! `make bench` runs this and writes JSON to `bench-results/events.json` (the path after
//! `--output`). Numbers are reported, not asserted (issue 6's target: ≥ 5,000 durable events/s
//! on the embedded bus on a 2-core machine).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn::events::bus::embedded::{EmbeddedBus, Retention};
use cairn::events::bus::{Bus, ConsumerConfig, Topic};
use cairn::events::event::{Event, event_id};
use cairn::store::Store;
use serde_json::{Value, json};

/// Events published per backend.
const EVENTS: usize = 20_000;
/// Concurrent publishers (webhook requests in flight).
const PUBLISHERS: usize = 64;
/// Deliveries asked for per fetch.
const FETCH_BATCH: usize = 100;

/// Event `n` of the benchmark: a webhook event of about 300 bytes once encoded.
fn event(topic: &Topic, n: usize) -> Event {
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
        json!({"dataset_uri": format!("s3://datasets/recommender/{n:08}.parquet"), "rows": n}),
    )
}

/// Publishes [`EVENTS`] events from [`PUBLISHERS`] tasks; each publish returns once durable.
async fn publish_many<B: Bus + Clone>(bus: &B, topic: &Topic) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let bus = bus.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            for n in (p..EVENTS).step_by(PUBLISHERS) {
                bus.publish(&topic, &event(&topic, n))
                    .await
                    .expect("publish");
            }
        }));
    }
    for task in tasks {
        task.await.expect("publisher task");
    }
    start.elapsed()
}

/// Fetches and acknowledges until `want` deliveries were handled.
async fn consume<B: Bus>(bus: &B, consumer: &str, want: usize) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    while done < want {
        let batch = bus
            .fetch(consumer, FETCH_BATCH, Duration::from_secs(5))
            .await
            .expect("fetch");
        assert!(!batch.is_empty(), "consumer stalled after {done} of {want}");
        let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
        bus.ack(consumer, &seqs).await.expect("ack");
        done += batch.len();
    }
    start.elapsed()
}

/// Publish and fetch+ack on any backend, as one JSON object.
async fn bench_bus<B: Bus + Clone>(bus: &B, label: &str) -> Value {
    let topic = Topic::new(&format!("bench-{label}"), "recommender", "dataset-ready");
    let consumer = ConsumerConfig {
        name: format!("bench-{label}-consumer"),
        topic: topic.clone(),
        ack_wait: Duration::from_secs(300),
    };
    bus.ensure_consumer(&consumer)
        .await
        .expect("ensure consumer");
    let event_bytes = serde_json::to_vec(&event(&topic, EVENTS)).map_or(0, |v| v.len());
    let published = publish_many(bus, &topic).await;
    let consumed = consume(bus, &consumer.name, EVENTS).await;
    bus.delete_consumer(&consumer.name)
        .await
        .expect("delete consumer");
    json!({
        "events": EVENTS,
        "publishers": PUBLISHERS,
        "event_json_bytes": event_bytes,
        "publish_s": published.as_secs_f64(),
        "durable_events_per_s": EVENTS as f64 / published.as_secs_f64(),
        "fetch_batch": FETCH_BATCH,
        "fetch_ack_s": consumed.as_secs_f64(),
        "fetch_ack_events_per_s": EVENTS as f64 / consumed.as_secs_f64(),
    })
}

async fn bench_embedded() -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let bus = EmbeddedBus::open(
        store.clone(),
        Retention {
            max_age: Duration::from_secs(3600),
            max_bytes: u64::MAX,
        },
    )
    .expect("bus");
    let commits_before = store.commit_count();
    let mut result = bench_bus(&bus, "embedded").await;
    let commits = store.commit_count() - commits_before;
    result["commits"] = json!(commits);
    result["stats_after"] =
        serde_json::to_value(bus.stats().await.expect("stats")).unwrap_or(Value::Null);
    result
}

// ---------------------------------------------------------------------------------------------
// NATS JetStream half — SLOT FOR H2 (the NATS backend's owner fills this function in; nothing
// else in this file is theirs). It should start a private nats-server (tests/common/nats.rs or
// integration-tests/nats/start), connect a `NatsBus`, and return `bench_bus(&bus, "nats").await`;
// when nats-server is not available return `{"skipped": "<why>"}`.
// ---------------------------------------------------------------------------------------------
#[path = "../tests/common/nats.rs"]
mod nats;

/// The same load on `NatsBus` against a private nats-server (loopback, JetStream file store,
/// `sync_interval: always`, so a PubAck means fsynced as on the embedded bus).
async fn bench_nats() -> Value {
    use cairn::events::bus::nats::{NatsBus, NatsRetention};
    if !nats::NatsServer::wanted("events bench, NATS JetStream half") {
        return json!({"skipped": "nats-server is not built (integration-tests/lab/build nats-server) and CAIRN_E2E is not set"});
    }
    let server = match tokio::task::spawn_blocking(nats::NatsServer::start).await {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => return json!({"skipped": format!("nats-server did not start: {e}")}),
        Err(e) => return json!({"skipped": format!("starting nats-server panicked: {e}")}),
    };
    let retention = NatsRetention {
        max_age: Duration::from_secs(3600),
        max_bytes: 1024 * 1024 * 1024,
    };
    let bus = match NatsBus::connect(&server.url, "cairn-bench", retention).await {
        Ok(bus) => bus,
        Err(e) => return json!({"skipped": format!("connecting to nats-server: {e}")}),
    };
    let mut result = bench_bus(&bus, "nats").await;
    result["server"] = json!(
        "nats-server (integration-tests/lab/versions.env NATS_SERVER_VERSION), one node on loopback, file store, sync_interval always"
    );
    result["stats_after"] =
        serde_json::to_value(bus.stats().await.expect("stats")).unwrap_or(Value::Null);
    drop(server);
    result
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` also runs bench targets, without `--bench`: measure nothing then.
    if !args.iter().any(|a| a == "--bench") {
        println!("events benchmark: run it with `make bench` (cargo bench)");
        return;
    }
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench-results/events.json".to_string());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let (embedded, nats) = runtime.block_on(async { (bench_embedded().await, bench_nats().await) });
    let ratio = match (
        embedded["durable_events_per_s"].as_f64(),
        nats["durable_events_per_s"].as_f64(),
    ) {
        (Some(e), Some(n)) if n > 0.0 => json!(e / n),
        _ => Value::Null,
    };
    let results = json!({
        "benchmark": "events",
        "cairn_version": cairn::VERSION,
        "git_commit": cairn::GIT_COMMIT,
        "embedded": embedded,
        "nats": nats,
        "embedded_to_nats_publish_ratio": ratio,
        "total_s": started.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&results).expect("json");
    if let Some(dir) = std::path::Path::new(&output).parent() {
        std::fs::create_dir_all(dir).expect("create output dir");
    }
    std::fs::write(&output, &text).expect("write results");
    println!("{text}\nwritten to {output}");
}
