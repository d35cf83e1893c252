//! The `resource` event source on the lab: ConfigMap changes in a test namespace become events
//! on an embedded bus, with Argo's payload, label selector, prefix and `afterStart` honoured.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) and `kubectl` on PATH; skipped only
//! when CAIRN_E2E is not set. Namespace `cairn-h5-res-*`, deleted at the end. Every wait is
//! bounded; nothing asserts on timing.

#[path = "common/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use cairn::events::bus::embedded::{EmbeddedBus, Retention};
use cairn::events::bus::{AnyBus, Bus, ConsumerConfig, Topic};
use cairn::events::event::event_id;
use cairn::events::sources::{SourceContext, resource};
use cairn::events::types::ResourceEventSource;
use cairn::store::Store;
use lab::{TestNamespace, client, e2e, kubectl};
use serde_json::{Value, json};

/// Bound of every wait.
const BOUND: Duration = Duration::from_secs(90);

fn configmap(ns: &str, name: &str, labelled: bool, value: &str) -> String {
    let labels = if labelled {
        json!({"app": "h5"})
    } else {
        json!({"app": "other"})
    };
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "data": {"value": value}
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_changes_become_events() {
    if !e2e("configmap_changes_become_events") {
        return;
    }
    let client = client().await;
    let guard = TestNamespace::create("cairn-h5-res");
    let ns = guard.0.clone();

    // Exists before the source starts: `afterStart` leaves it out. Kubernetes times are whole
    // seconds, so the source starts in a later second.
    kubectl(
        &["create", "-f", "-"],
        Some(&configmap(&ns, "cm-before", true, "0")),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("store");
    let bus = EmbeddedBus::open(
        store.clone(),
        Retention {
            max_age: Duration::from_secs(3600),
            max_bytes: 64 << 20,
        },
    )
    .expect("bus");
    let topic = Topic::new(&ns, "k8s", "cm");
    bus.ensure_consumer(&ConsumerConfig {
        name: "h5-test".to_owned(),
        topic: topic.clone(),
        ack_wait: Duration::from_secs(60),
    })
    .await
    .expect("consumer");

    let spec: ResourceEventSource = serde_json::from_value(json!({
        "namespace": ns, "group": "", "version": "v1", "resource": "configmaps",
        "eventTypes": ["ADD", "UPDATE", "DELETE"],
        "filter": {"afterStart": true, "prefix": "cm-",
                   "labels": [{"key": "app", "operation": "==", "value": "h5"}]},
        "metadata": {"suite": "h5"}
    }))
    .expect("spec");
    let ctx = SourceContext {
        namespace: ns.clone(),
        event_source: "k8s".to_owned(),
        bus: AnyBus::Embedded(bus.clone()),
        store: store.clone(),
        client: client.clone(),
    };
    let task = tokio::spawn(resource::run(ctx, "cm".to_owned(), spec));

    // Changes: a labelled ConfigMap is created, updated and deleted; an unlabelled one is
    // created in between (the server-side selector drops it).
    kubectl(
        &["create", "-f", "-"],
        Some(&configmap(&ns, "cm-watched", true, "1")),
    );
    kubectl(
        &["create", "-f", "-"],
        Some(&configmap(&ns, "cm-other", false, "1")),
    );
    kubectl(
        &[
            "-n",
            &ns,
            "patch",
            "configmap",
            "cm-watched",
            "--type=merge",
            "-p",
            r#"{"data":{"value":"2"}}"#,
        ],
        None,
    );
    kubectl(&["-n", &ns, "delete", "configmap", "cm-watched"], None);

    let deadline = Instant::now() + BOUND;
    let mut got = Vec::new();
    while got.len() < 3 && Instant::now() < deadline {
        assert!(!task.is_finished(), "the source stopped: {:?}", task.await);
        let batch = bus
            .fetch("h5-test", 10, Duration::from_secs(5))
            .await
            .expect("fetch");
        let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
        got.extend(batch.into_iter().map(|d| d.event));
        bus.ack("h5-test", &seqs).await.expect("ack");
    }
    task.abort();

    let summary: Vec<(String, String)> = got
        .iter()
        .map(|e| {
            (
                e.data["type"].as_str().unwrap_or("").to_owned(),
                e.data["body"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    println!("events: {summary:?}");
    let pair = |t: &str, n: &str| (t.to_owned(), n.to_owned());
    // The watch delivers in order, so a leaked cm-before or cm-other would show up first.
    assert_eq!(
        summary,
        vec![
            pair("ADD", "cm-watched"),
            pair("UPDATE", "cm-watched"),
            pair("DELETE", "cm-watched"),
        ]
    );

    let (add, update, delete) = (&got[0], &got[1], &got[2]);
    for e in &got {
        assert_eq!(e.context.type_, "resource");
        assert_eq!(e.context.source, "k8s");
        assert_eq!(e.context.subject, "cm");
        assert_eq!(e.data["group"], "");
        assert_eq!(e.data["version"], "v1");
        assert_eq!(e.data["resource"], "configmaps");
        assert_eq!(e.data["metadata"], json!({"suite": "h5"}));
        assert_eq!(e.data["body"]["kind"], "ConfigMap");
    }
    assert_eq!(add.data["body"]["data"]["value"], "1");
    assert_eq!(add.data["oldBody"], Value::Null);
    assert_eq!(update.data["body"]["data"]["value"], "2");
    assert_eq!(update.data["oldBody"]["data"]["value"], "1");
    // Ids are the change's: type, uid and resourceVersion.
    let uid = add.data["body"]["metadata"]["uid"].as_str().expect("uid");
    let rv = update.data["body"]["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv");
    assert_eq!(
        update.context.id,
        event_id(&ns, "k8s", "cm", &format!("UPDATE/{uid}/{rv}"))
    );
    assert_ne!(add.context.id, delete.context.id);

    // The stored log holds the same three events for `cairn events list`.
    let stats = bus.stats().await.expect("stats");
    assert_eq!(stats.events, 3, "{stats:?}");

    // Without afterStart, a source's first list adds what exists; a restarted source adds it
    // again as the same event (same id), so a sensor triggers once.
    let mut ids = Vec::new();
    for _run in 0..2 {
        let spec: ResourceEventSource = serde_json::from_value(json!({
            "namespace": ns, "version": "v1", "resource": "configmaps", "eventTypes": ["ADD"],
            "filter": {"labels": [{"key": "app", "value": "h5"}]}
        }))
        .expect("spec");
        let ctx = SourceContext {
            namespace: ns.clone(),
            event_source: "k8s".to_owned(),
            bus: AnyBus::Embedded(bus.clone()),
            store: store.clone(),
            client: client.clone(),
        };
        let task = tokio::spawn(resource::run(ctx, "cm".to_owned(), spec));
        let deadline = Instant::now() + BOUND;
        let mut batch = Vec::new();
        while batch.is_empty() && Instant::now() < deadline {
            batch = bus
                .fetch("h5-test", 10, Duration::from_secs(5))
                .await
                .expect("fetch");
        }
        task.abort();
        let seqs: Vec<u64> = batch.iter().map(|d| d.seq).collect();
        bus.ack("h5-test", &seqs).await.expect("ack");
        let names: Vec<&str> = batch
            .iter()
            .map(|d| {
                d.event.data["body"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(names, vec!["cm-before"]);
        ids.push(batch[0].event.context.id.clone());
    }
    assert_eq!(
        ids[0], ids[1],
        "a restart re-adds an unchanged object as the same event"
    );
}
