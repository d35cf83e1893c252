//! Lab test (CAIRN_E2E=1): a workflow step logs an MLflow run to cairn as its pod, and the run
//! joins the lineage graph after the step's execution.
//!
//! The step sets `MLFLOW_TRACKING_URI: cairn`; cairn gives it its MLflow API on the executor
//! routes (`<executor_url>/executor/v1/mlflow`) and the pod's projected token as
//! `MLFLOW_TRACKING_TOKEN`. The step speaks MLflow's REST API with busybox `wget` (the same
//! calls the `mlflow` client makes; the client itself is tested against cairn in
//! `mlflow_client.rs`). RBAC grants the namespace's service accounts the experiment by name;
//! `policy.default` (readonly) does not reach pods.
//!
//! Asserted: the workflow succeeds; the run (read by an admin through the API) has the metric,
//! the pod's service account as its user and the step's node as its `cairn.workflow.*` tags;
//! the lineage graph has the Logged edge from the step's execution to the MlflowRun context;
//! a request without a valid pod token is refused. Needs the lab with the executor image
//! loaded (`make executor`). Every wait is bounded; durations are printed, never asserted.

#[path = "common/lab.rs"]
mod lab;
#[path = "common/session.rs"]
mod session;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cairn::lineage::graph::{ContextKind, context_id, execution_id};
use cairn::workflow::types::Workflow;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const INSTANCE: &str = "cairn-mlflow-steps";

/// The step: create a run in the Default experiment, log a metric and a param, finish it, and
/// print the run id (the step's result).
const STEP: &str = r#"set -e
api="$MLFLOW_TRACKING_URI/api/2.0/mlflow"
call() {
  wget -q -O- --header "Authorization: Bearer $MLFLOW_TRACKING_TOKEN" \
    --header "Content-Type: application/json" --post-data "$2" "$api/$1"
}
run=$(call runs/create '{"experiment_id":"0","run_name":"fit"}')
id=$(echo "$run" | sed -n 's/.*"run_id":"\([0-9a-f]*\)".*/\1/p')
test -n "$id"
call runs/log-metric "{\"run_id\":\"$id\",\"key\":\"score\",\"value\":0.42,\"timestamp\":1,\"step\":0}" >/dev/null
call runs/log-parameter "{\"run_id\":\"$id\",\"key\":\"k\",\"value\":\"5\"}" >/dev/null
call runs/update "{\"run_id\":\"$id\",\"status\":\"FINISHED\",\"end_time\":2}" >/dev/null
echo "$id"
"#;

#[tokio::test]
async fn a_step_logs_an_mlflow_run_linked_to_its_node_on_the_lab() {
    if !lab::e2e("a_step_logs_an_mlflow_run_linked_to_its_node_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("mlflow-steps");
    let ip = lab::node_ip(&client).await;
    let exec: SocketAddr = format!("{ip}:{}", lab::free_port(&ip))
        .parse()
        .expect("executor addr");
    let server = lab::Server::start_with(
        "",
        &format!(
            "[workflow]\nnamespaces = [\"{ns}\"]\ninstance_id = \"{INSTANCE}\"\n\
             executor_url = \"http://{exec}\"\nexecutor_listen = \"{exec}\"\n\n\
             [rbac]\npolicy_default = \"role:readonly\"\npolicy_csv = \"\"\"\n\
             p, system:serviceaccounts:{ns}, experiments, update, Default, allow\n\
             p, system:serviceaccounts:{ns}, experiments, get, Default, allow\n\"\"\"\n",
            ns = ns.0,
        ),
        &[exec],
    )
    .await;

    // Without a pod's token the executor's MLflow routes refuse.
    let http = reqwest::Client::new();
    let refused = http
        .post(format!(
            "http://{exec}/executor/v1/mlflow/api/2.0/mlflow/runs/create"
        ))
        .bearer_auth("not-a-token")
        .json(&json!({"experiment_id": "0"}))
        .send()
        .await
        .expect("refused call");
    assert_eq!(refused.status().as_u16(), 401);

    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let wf = lab::workflow(
        "logs-mlflow",
        INSTANCE,
        json!({
            "entrypoint": "fit",
            "templates": [{"name": "fit", "script": {
                "image": "busybox", "command": ["sh"], "source": STEP,
                "env": [{"name": "MLFLOW_TRACKING_URI", "value": "cairn"}],
            }}],
        }),
    );
    let started = Instant::now();
    api.create(&PostParams::default(), &wf)
        .await
        .expect("create workflow");
    let done = lab::wait_finished(&api, "logs-mlflow", Duration::from_secs(240), &server).await;
    println!(
        "logs-mlflow: {:?} in {:.1}s",
        done.status.as_ref().and_then(|s| s.phase.clone()),
        started.elapsed().as_secs_f64()
    );
    let status = done.status.as_ref().expect("status");
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{status:#?}\n{}",
        server.log()
    );
    let (node_id, node) = status
        .nodes
        .as_ref()
        .and_then(|n| {
            n.iter()
                .find(|(_, n)| n.node_type.as_deref() == Some("Pod"))
        })
        .expect("the step's node");
    let run_id = node
        .outputs
        .as_ref()
        .and_then(|o| o.result.clone())
        .expect("the run id printed by the step");
    let uid = done.metadata.uid.clone().expect("uid");

    // The run, as an admin sees it through the API.
    let admin = session::Session::open(&server).await;
    let (code, body) = admin
        .get(&format!("/api/2.0/mlflow/runs/get?run_id={run_id}"))
        .await;
    assert_eq!(code, 200, "{body}");
    let run = &body["run"];
    assert_eq!(
        run["info"]["user_id"],
        format!("system:serviceaccount:{}:default", ns.0)
    );
    assert_eq!(run["info"]["status"], "FINISHED");
    let tag = |k: &str| {
        run["data"]["tags"]
            .as_array()
            .and_then(|t| t.iter().find(|e| e["key"] == k))
            .map(|e| e["value"].clone())
            .unwrap_or(Value::Null)
    };
    assert_eq!(tag("cairn.workflow.node"), json!(node_id));
    assert_eq!(tag("cairn.workflow.uid"), json!(uid));
    assert_eq!(tag("cairn.workflow.name"), json!("logs-mlflow"));
    assert_eq!(run["data"]["metrics"][0]["key"], "score");
    assert_eq!(run["data"]["metrics"][0]["value"], 0.42);
    assert_eq!(run["data"]["params"][0]["value"], "5");

    // The lineage graph: the step's execution -> the MlflowRun context.
    let x = execution_id(&uid, node_id);
    let ctx = context_id(ContextKind::MlflowRun, &run_id);
    let deadline = Instant::now() + Duration::from_secs(60);
    let graph = loop {
        let (code, body) = admin
            .get(&format!(
                "/api/v1/lineage/graph?from={x}&hops=1&direction=down"
            ))
            .await;
        let linked = body["edges"].as_array().is_some_and(|edges| {
            edges
                .iter()
                .any(|e| e["from"] == x && e["to"] == ctx && e["kind"] == "logged")
        });
        if code == 200 && linked {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "no Logged edge from {x} to {ctx} within 60 s: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let run_node = graph["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|e| e["id"] == ctx))
        .expect("the MlflowRun node");
    assert_eq!(run_node["node"]["name"], json!(run_id), "{run_node}");
    assert_eq!(run_node["node"]["properties"]["node_id"], json!(node_id));
    println!("lineage: {x} -logged-> {ctx} (run {run_id})");
}
