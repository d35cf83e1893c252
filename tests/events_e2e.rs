//! The seed's path on the lab: webhook `POST /recommender-dataset-ready {"dataset_uri": ...}`
//! → EventSource → bus → Sensor → a Workflow from the `recommender-pipeline` WorkflowTemplate
//! with `dataset_uri` passed through, exactly once per accepted event; an event the Sensor's
//! filter refuses creates nothing.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) and `kubectl` on PATH; skipped when
//! CAIRN_E2E is not set. Fixtures: `tests/fixtures/events/` (EventSource on a dedicated
//! loopback port, Sensor, WorkflowTemplate whose step is a 1 s suspend: no image needed).
//! Namespace `cairn-events-e2e-*`, deleted at the end. Every wait is bounded; nothing asserts
//! on timing.

#[path = "common/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use cairn::workflow::types::Workflow;
use kube::api::{Api, ListParams};
use lab::{Server, TestNamespace, client, e2e, free_port, install_crds, kubectl, wait_finished};

const BOUND: Duration = Duration::from_secs(120);

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

async fn workflows(api: &Api<Workflow>) -> Vec<Workflow> {
    api.list(&ListParams::default().labels("events.argoproj.io/sensor=recommender"))
        .await
        .expect("list workflows")
        .items
}

#[tokio::test]
async fn webhook_to_workflow_from_the_recommender_template() {
    if !e2e("events_e2e") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ns = TestNamespace::create("cairn-events-e2e");
    let port = free_port("127.0.0.1");
    // A fresh cluster has no Argo CRDs until a cairn server starts; the fixtures come first.
    install_crds();
    for f in ["workflowtemplate.yaml", "eventsource.yaml", "sensor.yaml"] {
        kubectl(
            &["apply", "-n", &ns.0, "-f", "-"],
            Some(&fixture(f, &ns.0, port)),
        );
    }
    let hook = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let server = Server::start(
        &format!(
            "namespaces = [\"{}\"]\n\n[events]\nnamespaces = [\"{}\"]\n",
            ns.0, ns.0
        ),
        &[hook],
    )
    .await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let url = format!("http://{hook}/recommender-dataset-ready");
    // Refused by the Sensor's filter (not s3://): recorded as unmatched, nothing created.
    let refused = http
        .post(&url)
        .json(&serde_json::json!({"dataset_uri": "file:///tmp/x"}))
        .send()
        .await
        .expect("post");
    assert!(refused.status().is_success(), "{}", refused.status());
    let uri = "s3://datasets/recommender/2026-12-06.parquet";
    let accepted = http
        .post(&url)
        .json(&serde_json::json!({ "dataset_uri": uri }))
        .send()
        .await
        .expect("post");
    assert!(accepted.status().is_success(), "{}", accepted.status());

    let api: Api<Workflow> = Api::namespaced(client().await, &ns.0);
    let deadline = Instant::now() + BOUND;
    let wf = loop {
        let found = workflows(&api).await;
        if let Some(wf) = found.first() {
            break wf.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no Workflow within {BOUND:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let v = serde_json::to_value(&wf).expect("json");
    assert_eq!(
        v["spec"]["workflowTemplateRef"]["name"], "recommender-pipeline",
        "{v}"
    );
    assert_eq!(v["spec"]["arguments"]["parameters"][0]["value"], uri, "{v}");
    let name = wf.metadata.name.clone().expect("name");
    assert!(name.starts_with("recommender-pipeline-"), "{name}");
    let done = wait_finished(&api, &name, BOUND, &server).await;
    let phase = done.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Succeeded"), "{}", server.log());
    // Exactly one Workflow: the refused event created none, the accepted one no second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(workflows(&api).await.len(), 1, "{}", server.log());
}
