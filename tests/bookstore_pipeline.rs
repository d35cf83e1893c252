//! The bookstore pipeline on the lab (CAIRN_E2E=1): `examples/bookstore/manifests/
//! recommender-pipeline.yaml` applied as written, run by a real `cairn server` in the image the
//! lab builds (`localhost/cairn/bookstore:0.1.0`, integration-tests/lab/images/list), with
//! the model passed from train to eval through cairn's built-in artifact store.
//!
//! - A dry run (`register=false`: train and eval, register and promote skipped by their `when`)
//!   succeeds; eval's `score` output parameter is a number >= `min-score`; train's `model`
//!   artifact has a sha256 digest and a size.
//! - A run whose gate cannot pass (`min-score=1.1`, register on) fails at eval (exit code 1),
//!   and neither register nor promote runs.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image (`make
//! executor`) and the bookstore image loaded (`integration-tests/lab/up` imports both; on a lab
//! started before the image existed: `integration-tests/lab/images/build --import
//! localhost/cairn/bookstore:0.1.0`). Own namespace (deleted at the end), own controller
//! instance id. Every wait is bounded; nothing asserts on timing (the wall times are printed).

#[path = "common/lab.rs"]
mod lab;

#[path = "common/pipeline.rs"]
mod pipeline;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn::workflow::types::Workflow;
use kube::api::Api;
use lab::{TestNamespace, client, e2e, free_port, kubectl};
use pipeline::{node, output_parameter, phase, submit};
use serde_json::json;

const INSTANCE: &str = "cairn-bookstore";
const RUN_BOUND: Duration = Duration::from_secs(420);
const MANIFESTS: &str = "examples/bookstore/manifests";
const MIN_SCORE: f64 = 0.3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_trains_evaluates_and_gates() {
    if !e2e("pipeline_trains_evaluates_and_gates") {
        return;
    }
    let client = client().await;
    let ip = lab::node_ip(&client).await;
    let ns = TestNamespace::create("cairn-bookstore");
    let exec: SocketAddr = format!("{ip}:{}", free_port(&ip))
        .parse()
        .expect("executor addr");
    let server = lab::Server::start(
        &format!(
            "namespaces = [\"{}\"]\ninstance_id = \"{INSTANCE}\"\n\
             executor_url = \"http://{exec}\"\nexecutor_listen = \"{exec}\"\n",
            ns.0
        ),
        &[exec],
    )
    .await;
    // As written, but in this test's namespace instead of `bookstore` (the RoleBinding's
    // subject names it).
    for file in ["rbac.yaml", "recommender-pipeline.yaml"] {
        let text = std::fs::read_to_string(format!("{MANIFESTS}/{file}")).expect(file);
        let text = text.replace("namespace: bookstore", &format!("namespace: {}", ns.0));
        kubectl(&["-n", &ns.0, "apply", "-f", "-"], Some(&text));
    }
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);

    let started = Instant::now();
    let dry = submit(
        &ns.0,
        INSTANCE,
        "recommender-dry-",
        json!([{"name": "register", "value": "false"},
               {"name": "min-score", "value": MIN_SCORE.to_string()}]),
    );
    let gated = submit(
        &ns.0,
        INSTANCE,
        "recommender-gate-",
        json!([{"name": "min-score", "value": "1.1"}]),
    );

    let wf = lab::wait_finished(&api, &dry, RUN_BOUND, &server).await;
    let dry_wall = started.elapsed();
    let status = serde_json::to_string_pretty(&wf.status).unwrap_or_default();
    assert_eq!(phase(&wf), "Succeeded", "{dry}: {status}\n{}", server.log());
    let eval = node(&wf, "eval");
    let score_text = output_parameter(&eval, "score").unwrap_or_else(|| panic!("{status}"));
    let score: f64 = score_text
        .parse()
        .unwrap_or_else(|e| panic!("eval's score {score_text:?} is not a number: {e}"));
    assert!(
        (MIN_SCORE..=1.0).contains(&score),
        "score {score} not in [{MIN_SCORE}, 1]"
    );
    let model = node(&wf, "train")["outputs"]["artifacts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "model").cloned())
        .unwrap_or_else(|| panic!("train has no model artifact: {status}"));
    assert!(
        model["digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:") && d.len() == 71),
        "{model}"
    );
    assert!(model["size"].as_u64().is_some_and(|s| s > 1000), "{model}");
    for skipped in ["register", "promote"] {
        let n = node(&wf, skipped);
        assert_ne!(n["phase"], "Succeeded", "{skipped} ran in a dry run: {n}");
        assert_ne!(n["phase"], "Failed", "{skipped} ran in a dry run: {n}");
    }

    let wf = lab::wait_finished(&api, &gated, RUN_BOUND, &server).await;
    let gated_wall = started.elapsed();
    let status = serde_json::to_string_pretty(&wf.status).unwrap_or_default();
    assert_eq!(phase(&wf), "Failed", "{gated}: {status}\n{}", server.log());
    let eval = node(&wf, "eval");
    assert_eq!(eval["phase"], "Failed", "{status}");
    assert!(
        eval["message"]
            .as_str()
            .is_some_and(|m| m.contains("exit code 1")),
        "eval's message: {}",
        eval["message"]
    );
    assert_eq!(node(&wf, "train")["phase"], "Succeeded", "{status}");
    for never in ["register", "promote"] {
        let n = node(&wf, never);
        assert!(
            n.is_null()
                || !matches!(
                    n["phase"].as_str(),
                    Some("Succeeded" | "Failed" | "Running")
                ),
            "{never} ran after a failed gate: {n}"
        );
    }
    let pod =
        cairn::workflow::node::pod_name(&gated, "eval", eval["name"].as_str().unwrap_or_default());
    let logs = kubectl(&["-n", &ns.0, "logs", &pod, "-c", "main"], None);
    assert!(
        logs.contains("is below min_score 1.1"),
        "eval's log does not say why: {logs}"
    );
    println!(
        "bookstore pipeline: dry run Succeeded (hit_rate@10 {score}) in {:.1} s, \
         gated run Failed at eval in {:.1} s (both submitted at once)",
        dry_wall.as_secs_f64(),
        gated_wall.as_secs_f64()
    );
}
