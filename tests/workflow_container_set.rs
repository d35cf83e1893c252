//! Lab tests (CAIRN_E2E=1) of `containerSet` templates: the five shapes of Argo's
//! `examples/container-set-template/` (graph, outputs-result, parallel, sequence, workspace),
//! written here with busybox (the lab has no Internet) and ending as Argo ends them
//! (Succeeded), plus a failing container (its dependents Error, the node and the workflow
//! Failed) and the set's `retryStrategy` (a container that fails once, then succeeds).
//!
//! Checked: the workflow and node phases, one `Container` child node per container
//! (`<node>.<container>`) linked by the dependencies, `outputs.result` of `main` passed to the
//! next DAG task, the workspace file written by one container read as `main`'s output
//! parameter, and the graph's order (a dependent container finishes at least the sleep of its
//! dependency later; a lower bound from `sleep`, not a timing measurement).
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image built from
//! this tree (`make executor`). Each test starts its own `cairn server` (instance id
//! `cairn-s16-cset`, one namespace) and deletes its namespace at the end. Every wait is
//! bounded; durations are printed, never asserted.

#[path = "common/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use cairn::workflow::types::{NodeStatus, Workflow};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const INSTANCE: &str = "cairn-s16-cset";
const RUN_BOUND: Duration = Duration::from_secs(240);

/// A server for `ns`, with Argo's image index entry for the argosay image (its entrypoint), so
/// Argo's own manifests, whose argosay containers give no `command`, run as written.
async fn server(ns: &str) -> lab::Server {
    lab::Server::start_with(
        "",
        &format!(
            "[workflow]\nnamespaces = [\"{ns}\"]\nworkers = 4\ninstance_id = \"{INSTANCE}\"\n\n\
             [workflow.images.\"argoproj/argosay:v2\"]\nentrypoint = [\"/argosay\"]\n"
        ),
        &[],
    )
    .await
}

fn workflow(name: &str, spec: Value) -> Workflow {
    lab::workflow(name, INSTANCE, spec)
}

/// A busybox container of a set running `script` with `sh -c`.
fn ctr(name: &str, deps: &[&str], script: &str) -> Value {
    json!({"name": name, "image": "busybox", "command": ["sh", "-c"], "args": [script],
           "dependencies": deps})
}

/// A one-template workflow whose entry template is the containerSet `set`.
fn set_workflow(name: &str, set: Value, extra: Value) -> Workflow {
    let mut tmpl = json!({"name": "main", "containerSet": set});
    if let (Some(t), Value::Object(more)) = (tmpl.as_object_mut(), extra) {
        t.extend(more);
    }
    workflow(name, json!({"entrypoint": "main", "templates": [tmpl]}))
}

fn nodes(wf: &Workflow) -> Vec<&NodeStatus> {
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .map(|n| n.values().collect())
        .unwrap_or_default()
}

fn node<'a>(wf: &'a Workflow, name: &str) -> &'a NodeStatus {
    nodes(wf)
        .into_iter()
        .find(|n| n.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no node {name}: {:#?}", wf.status))
}

fn phase(wf: &Workflow) -> Option<String> {
    wf.status.as_ref().and_then(|s| s.phase.clone())
}

fn ts(n: &NodeStatus, field: &str) -> jiff::Timestamp {
    let v = match field {
        "started" => n.started_at.as_deref(),
        _ => n.finished_at.as_deref(),
    };
    v.and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("node {:?} has no {field} time", n.name))
}

fn children(n: &NodeStatus) -> Vec<String> {
    let mut c = n.children.clone().unwrap_or_default();
    c.sort();
    c
}

fn id(wf: &Workflow, name: &str) -> String {
    node(wf, name).id.clone().unwrap_or_default()
}

/// Checks the `Container` children of the containerSet node `pod_node`: one per container,
/// type `Container`, the given phase, the pod node their boundary.
fn assert_containers(wf: &Workflow, pod_node: &str, names: &[&str], want: &str) {
    let pod = node(wf, pod_node);
    assert_eq!(pod.node_type.as_deref(), Some("Pod"), "{pod:#?}");
    for c in names {
        let n = node(wf, &format!("{pod_node}.{c}"));
        assert_eq!(n.node_type.as_deref(), Some("Container"), "{n:#?}");
        assert_eq!(n.display_name.as_deref(), Some(*c));
        assert_eq!(n.phase.as_deref(), Some(want), "{n:#?}");
        assert_eq!(n.boundary_id, pod.id, "{n:#?}");
    }
}

async fn submit(api: &Api<Workflow>, wf: &Workflow) -> (String, Instant) {
    api.create(&PostParams::default(), wf)
        .await
        .expect("create workflow");
    (wf.metadata.name.clone().expect("name"), Instant::now())
}

async fn finish(
    api: &Api<Workflow>,
    (name, started): (String, Instant),
    server: &lab::Server,
) -> Workflow {
    let done = lab::wait_finished(api, &name, RUN_BOUND, server).await;
    println!(
        "{name}: {:?} in {:.1}s",
        phase(&done),
        started.elapsed().as_secs_f64()
    );
    done
}

#[tokio::test]
async fn argo_container_set_shapes_on_the_lab() {
    if !lab::e2e("argo_container_set_shapes_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("s16-cset");
    let server = server(&ns.0).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);

    let graph = set_workflow(
        "graph",
        json!({"containers": [
            ctr("a", &[], "sleep 2; echo a"),
            ctr("b", &["a"], "sleep 2; echo b"),
            ctr("c", &["a"], "sleep 2; echo c"),
            ctr("d", &["b", "c"], "echo d"),
        ]}),
        json!({}),
    );
    let outputs_result = workflow(
        "outputs-result",
        json!({"entrypoint": "main", "templates": [
            {"name": "main", "dag": {"tasks": [
                {"name": "a", "template": "group"},
                {"name": "b", "template": "verify", "dependencies": ["a"],
                 "arguments": {"parameters": [{"name": "x", "value": "{{tasks.a.outputs.result}}"}]}},
            ]}},
            {"name": "group", "containerSet": {"containers": [ctr("main", &[], "echo hi")]}},
            {"name": "verify", "inputs": {"parameters": [{"name": "x"}]},
             "script": {"image": "busybox", "command": ["sh"],
                        "source": "test \"{{inputs.parameters.x}}\" = hi"}},
        ]}),
    );
    let parallel = set_workflow(
        "parallel",
        json!({"containers": [ctr("a", &[], "echo a"), ctr("b", &[], "echo b")]}),
        json!({}),
    );
    let sequence = set_workflow(
        "sequence",
        json!({"containers": [
            ctr("a", &[], "echo a"),
            ctr("b", &["a"], "echo b"),
            ctr("c", &["b"], "echo c"),
        ]}),
        json!({}),
    );
    // `main` runs in parallel with `a`, which writes the workspace file late: the output is
    // collected once every container of the set is over (Argo's wait container does the same).
    let workspace = set_workflow(
        "workspace",
        json!({
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
        "containers": [
            ctr("a", &[], "sleep 2; printf hi > /workspace/out"),
            ctr("main", &[], "echo main"),
        ]}),
        json!({
            "volumes": [{"name": "workspace", "emptyDir": {}}],
            "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/workspace/out"}}]},
        }),
    );
    // Argo's workspace example as Argo writes it: argosay containers without `command` (the
    // image index gives the entrypoint), `a` with Argo's `args`, `main` with none.
    let argo_workspace = set_workflow(
        "argo-workspace",
        json!({
        "volumeMounts": [{"mountPath": "/workspace", "name": "workspace"}],
        "containers": [
            {"name": "a", "image": "argoproj/argosay:v2", "args": ["echo", "hi", "/workspace/out"]},
            {"name": "main", "image": "argoproj/argosay:v2"},
        ]}),
        json!({
            "volumes": [{"name": "workspace", "emptyDir": {}}],
            "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/workspace/out"}}]},
        }),
    );
    let mut runs = Vec::new();
    for wf in [
        &graph,
        &outputs_result,
        &parallel,
        &sequence,
        &workspace,
        &argo_workspace,
    ] {
        runs.push(submit(&api, wf).await);
    }
    let mut done = Vec::new();
    for run in runs {
        done.push(finish(&api, run, &server).await);
    }
    for wf in &done {
        assert_eq!(phase(wf).as_deref(), Some("Succeeded"), "{:#?}", wf.status);
    }
    let [
        graph,
        outputs_result,
        parallel,
        sequence,
        workspace,
        argo_workspace,
    ] = &done[..]
    else {
        panic!("six runs");
    };

    // graph: a → b, c → d, as child links and in time.
    assert_containers(graph, "graph", &["a", "b", "c", "d"], "Succeeded");
    assert_eq!(children(node(graph, "graph")), vec![id(graph, "graph.a")]);
    let mut bc = vec![id(graph, "graph.b"), id(graph, "graph.c")];
    bc.sort();
    assert_eq!(children(node(graph, "graph.a")), bc);
    assert_eq!(children(node(graph, "graph.b")), vec![id(graph, "graph.d")]);
    assert_eq!(children(node(graph, "graph.c")), vec![id(graph, "graph.d")]);
    let (a, b, c, d) = (
        ts(node(graph, "graph.a"), "finished"),
        ts(node(graph, "graph.b"), "finished"),
        ts(node(graph, "graph.c"), "finished"),
        ts(node(graph, "graph.d"), "finished"),
    );
    let two = jiff::SignedDuration::from_secs(2);
    // b and c sleep 2 s after a ended; d ends after both (times have 1 s resolution).
    assert!(
        b.duration_since(a) >= two - jiff::SignedDuration::from_secs(1),
        "a {a} b {b}"
    );
    assert!(
        c.duration_since(a) >= two - jiff::SignedDuration::from_secs(1),
        "a {a} c {c}"
    );
    assert!(d >= b && d >= c, "b {b} c {c} d {d}");

    // outputs-result: main's stdout is the node's result, passed to `verify`.
    let a = nodes(outputs_result)
        .into_iter()
        .find(|n| n.display_name.as_deref() == Some("a"))
        .expect("task a");
    let a_name = a.name.clone().unwrap_or_default();
    assert_eq!(
        a.outputs.as_ref().and_then(|o| o.result.as_deref()),
        Some("hi"),
        "{a:#?}"
    );
    assert_containers(outputs_result, &a_name, &["main"], "Succeeded");

    assert_containers(parallel, "parallel", &["a", "b"], "Succeeded");
    let mut ab = vec![id(parallel, "parallel.a"), id(parallel, "parallel.b")];
    ab.sort();
    assert_eq!(children(node(parallel, "parallel")), ab);

    assert_containers(sequence, "sequence", &["a", "b", "c"], "Succeeded");
    assert_eq!(
        children(node(sequence, "sequence.a")),
        vec![id(sequence, "sequence.b")]
    );

    // workspace: the file `a` wrote is `main`'s output parameter.
    assert_containers(workspace, "workspace", &["a", "main"], "Succeeded");
    let out = node(workspace, "workspace")
        .outputs
        .as_ref()
        .and_then(|o| o.parameters.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.name == "out"))
        .and_then(|p| p.value.clone());
    assert_eq!(
        out,
        Some(Value::String("hi".into())),
        "{:#?}",
        workspace.status
    );

    // Argo's own workspace manifest: argosay ran from the image index's entrypoint.
    assert_containers(
        argo_workspace,
        "argo-workspace",
        &["a", "main"],
        "Succeeded",
    );
    let out = node(argo_workspace, "argo-workspace")
        .outputs
        .as_ref()
        .and_then(|o| o.parameters.as_ref())
        .and_then(|ps| ps.iter().find(|p| p.name == "out"))
        .and_then(|p| p.value.clone());
    assert_eq!(
        out,
        Some(Value::String("hi".into())),
        "{:#?}",
        argo_workspace.status
    );
}

#[tokio::test]
async fn container_set_failures_and_retries_on_the_lab() {
    if !lab::e2e("container_set_failures_and_retries_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("s16-cset-fail");
    let server = server(&ns.0).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);

    // b fails: c (depends on b) never runs and is an Error, the node and the workflow Failed.
    let failing = set_workflow(
        "failing",
        json!({"containers": [
            ctr("a", &[], "echo a"),
            ctr("b", &["a"], "exit 3"),
            ctr("c", &["b"], "echo never > /dev/null"),
        ]}),
        json!({}),
    );
    // a fails on its first attempt only; the set's retryStrategy runs it again in place.
    let retried = set_workflow(
        "retried",
        json!({
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
        "retryStrategy": {"retries": 2, "duration": "1s"},
        "containers": [
            ctr("a", &[], "if [ -f /workspace/tried ]; then echo ok > /workspace/out; \
                           else touch /workspace/tried; exit 1; fi"),
            ctr("main", &["a"], "cat /workspace/out"),
        ]}),
        json!({"volumes": [{"name": "workspace", "emptyDir": {}}]}),
    );
    let runs = vec![submit(&api, &failing).await, submit(&api, &retried).await];
    let mut done = Vec::new();
    for run in runs {
        done.push(finish(&api, run, &server).await);
    }
    let [failing, retried] = &done[..] else {
        panic!("two runs");
    };

    assert_eq!(
        phase(failing).as_deref(),
        Some("Failed"),
        "{:#?}",
        failing.status
    );
    let pod = node(failing, "failing");
    assert_eq!(pod.phase.as_deref(), Some("Failed"));
    assert_eq!(
        pod.message.as_deref(),
        Some("b: Error (exit code 3)"),
        "{pod:#?}"
    );
    assert_containers(failing, "failing", &["a"], "Succeeded");
    let b = node(failing, "failing.b");
    assert_eq!(b.phase.as_deref(), Some("Failed"), "{b:#?}");
    assert_eq!(b.message.as_deref(), Some("b: Error (exit code 3)"));
    let c = node(failing, "failing.c");
    assert_eq!(c.phase.as_deref(), Some("Error"), "{c:#?}");

    assert_eq!(
        phase(retried).as_deref(),
        Some("Succeeded"),
        "{:#?}",
        retried.status
    );
    assert_containers(retried, "retried", &["a", "main"], "Succeeded");
}
