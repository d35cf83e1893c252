//! Crash safety of the event path on the lab: `cairn server` is SIGKILLed while 1,000 webhook
//! events are being posted, then restarted on the same data directory while posting goes on.
//! Every event answered 2xx must produce exactly one trigger outcome — one ConfigMap from the
//! Sensor's `k8s` trigger and one outcome in the sensor history — none lost, none doubled.
//! Events whose request failed (in flight at the kill) may or may not have been stored: they
//! produce at most one outcome.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) and `kubectl`; skipped when CAIRN_E2E is
//! not set. Fixtures: `tests/fixtures/events/crash-*.yaml`. Each `n` is posted once and never
//! retried, so a second ConfigMap for an `n` can only come from cairn. Every wait is bounded;
//! nothing asserts on timing.

#[path = "common/lab.rs"]
mod lab;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn::events::history::{History, HistoryEntry, HistoryQuery, OutcomeResult};
use cairn::store::Store;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use lab::{Server, TestNamespace, client, e2e, free_port, install_crds, kubectl};

/// Events posted.
const EVENTS: usize = 1_000;
/// Concurrent posters.
const POSTERS: usize = 32;
/// Accepted events before the kill.
const KILL_AFTER: usize = 300;
/// Bound of every wait.
const BOUND: Duration = Duration::from_secs(300);

fn fixture(name: &str, ns: &str, port: u16) -> String {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .replace("__PORT__", &port.to_string())
        .replace("__NS__", ns)
}

/// What the posters saw.
#[derive(Default)]
struct Posted {
    accepted: BTreeSet<usize>,
    failed: BTreeSet<usize>,
    refused: BTreeMap<usize, u16>,
}

/// ConfigMaps of the test by name, with their `n`.
async fn stamps(api: &Api<ConfigMap>) -> BTreeMap<String, String> {
    api.list(&ListParams::default().labels("cairn-test=crash"))
        .await
        .expect("list configmaps")
        .items
        .into_iter()
        .map(|cm| {
            let n = cm
                .data
                .as_ref()
                .and_then(|d| d.get("n").cloned())
                .unwrap_or_default();
            (cm.metadata.name.unwrap_or_default(), n)
        })
        .collect()
}

#[tokio::test]
async fn kill_9_while_posting_loses_and_doubles_nothing() {
    if !e2e("events_crash") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ns = TestNamespace::create("cairn-events-crash");
    let port = free_port("127.0.0.1");
    install_crds();
    for f in ["crash-eventsource.yaml", "crash-sensor.yaml"] {
        kubectl(
            &["apply", "-n", &ns.0, "-f", "-"],
            Some(&fixture(f, &ns.0, port)),
        );
    }
    let hook = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Server::start(
        &format!(
            "namespaces = [\"{}\"]\n\n[events]\nnamespaces = [\"{}\"]\n",
            ns.0, ns.0
        ),
        &[hook],
    )
    .await;

    // Posters: each takes the next `n`, posts it once; after a failed request it waits for
    // the restart before going on (so the downtime does not burn through the numbers).
    let next = Arc::new(AtomicUsize::new(0));
    let accepted_count = Arc::new(AtomicUsize::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(std::sync::Mutex::new(Posted::default()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let url = format!("http://{hook}/hit");
    let deadline = Instant::now() + BOUND;
    let mut posters = Vec::new();
    for _ in 0..POSTERS {
        let (next, accepted_count, restarted, posted, http, url) = (
            next.clone(),
            accepted_count.clone(),
            restarted.clone(),
            posted.clone(),
            http.clone(),
            url.clone(),
        );
        posters.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= EVENTS || Instant::now() > deadline {
                    return;
                }
                let sent = http
                    .post(&url)
                    .json(&serde_json::json!({ "n": n.to_string() }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        posted.lock().expect("lock").accepted.insert(n);
                        accepted_count.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => {
                        posted
                            .lock()
                            .expect("lock")
                            .refused
                            .insert(n, r.status().as_u16());
                    }
                    Err(_) => {
                        posted.lock().expect("lock").failed.insert(n);
                        while !restarted.load(Ordering::SeqCst) && Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }));
    }
    while accepted_count.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "only {} events accepted before the kill:\n{}",
            accepted_count.load(Ordering::SeqCst),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let at_kill = accepted_count.load(Ordering::SeqCst);
    server.restart().await;
    restarted.store(true, Ordering::SeqCst);
    for p in posters {
        p.await.expect("poster");
    }
    let posted = std::mem::take(&mut *posted.lock().expect("lock"));
    eprintln!(
        "events_crash: {} accepted ({at_kill} before the kill), {} failed in flight, {} refused",
        posted.accepted.len(),
        posted.failed.len(),
        posted.refused.len()
    );
    assert!(
        posted.refused.is_empty(),
        "requests refused with a status: {:?}",
        posted.refused
    );
    assert!(
        posted.accepted.len() > at_kill,
        "nothing was accepted after the restart:\n{}",
        server.log()
    );

    // Every accepted event gets its ConfigMap.
    let api: Api<ConfigMap> = Api::namespaced(client().await, &ns.0);
    let wait = Instant::now() + BOUND;
    let found = loop {
        let found = stamps(&api).await;
        let seen: BTreeSet<usize> = found.values().filter_map(|n| n.parse().ok()).collect();
        let missing = posted.accepted.difference(&seen).count();
        if missing == 0 {
            break found;
        }
        assert!(
            Instant::now() < wait,
            "{missing} accepted events have no ConfigMap after {BOUND:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    // Replays after the restart would arrive late: give them time, then count once more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let found = {
        let again = stamps(&api).await;
        assert!(again.len() >= found.len());
        again
    };
    let mut per_n: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (name, n) in &found {
        let n: usize = n
            .parse()
            .unwrap_or_else(|_| panic!("ConfigMap {name} has n = {n:?}"));
        per_n.entry(n).or_default().push(name);
    }
    let doubled: Vec<_> = per_n.iter().filter(|(_, names)| names.len() > 1).collect();
    assert!(doubled.is_empty(), "events triggered twice: {doubled:?}");
    for n in per_n.keys() {
        assert!(
            posted.accepted.contains(n) || posted.failed.contains(n),
            "ConfigMap for n={n}, which was never posted"
        );
    }

    // The sensor history: one outcome per ConfigMap, each naming it, none failed.
    server.kill9();
    let store = Store::open(&server.data_dir()).expect("open the server's store");
    let history = History::open(store).await.expect("history");
    let records = history
        .list(&ns.0, "crash", &HistoryQuery::default())
        .expect("history list");
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for record in &records {
        match &record.entry {
            HistoryEntry::Outcome(o) => match &o.result {
                OutcomeResult::Object { name, action, .. } => {
                    assert!(
                        action == "created" || action == "existed",
                        "outcome {action} for {name}"
                    );
                    *outcomes.entry(name.clone()).or_default() += 1;
                }
                other => panic!("trigger outcome {other:?}"),
            },
            HistoryEntry::Unmatched(u) => panic!("unmatched event {u:?}"),
        }
    }
    assert!(
        outcomes.values().all(|&c| c == 1),
        "an object recorded twice"
    );
    let names: BTreeSet<&String> = found.keys().collect();
    let recorded: BTreeSet<&String> = outcomes.keys().collect();
    assert_eq!(names, recorded, "ConfigMaps and history outcomes differ");
    eprintln!(
        "events_crash: {} ConfigMaps, {} history outcomes, {} of {} in-flight events stored",
        found.len(),
        outcomes.len(),
        per_n.keys().filter(|n| posted.failed.contains(n)).count(),
        posted.failed.len()
    );
}
