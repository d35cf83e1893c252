//! Lab tests (CAIRN_E2E=1) of workflow features from Argo's examples that the conformance
//! folder does not cover: `inline` templates in DAG tasks and steps (nested), and parameters
//! read from a labelled ConfigMap (`valueFrom.configMapKeyRef`, as a workflow argument and as
//! a template input, with a `default` for a missing key), and output artifacts of a DAG
//! template chosen by `fromExpression` (Argo's conditional-artifacts), passed through cairn's
//! built-in artifact store.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image loaded
//! (`make executor`). Each test starts its own `cairn server` (instance id
//! `cairn-s15-features`, one namespace) and deletes its namespace at the end. Every wait is
//! bounded; durations are printed, never asserted.

#[path = "common/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use cairn::workflow::types::{NodeStatus, Workflow};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const INSTANCE: &str = "cairn-s15-features";
const RUN_BOUND: Duration = Duration::from_secs(240);

async fn server(ns: &str) -> lab::Server {
    lab::Server::start(
        &format!("namespaces = [\"{ns}\"]\nworkers = 4\ninstance_id = \"{INSTANCE}\"\n"),
        &[],
    )
    .await
}

fn workflow(name: &str, spec: Value) -> Workflow {
    lab::workflow(name, INSTANCE, spec)
}

fn node<'a>(wf: &'a Workflow, display: &str) -> &'a NodeStatus {
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .and_then(|n| {
            n.values()
                .find(|n| n.display_name.as_deref() == Some(display))
        })
        .unwrap_or_else(|| panic!("no node {display}: {:#?}", wf.status))
}

fn result(n: &NodeStatus) -> Option<String> {
    n.outputs.as_ref().and_then(|o| o.result.clone())
}

/// A script step that prints its one input, as an inline template.
fn echo_inline(input: Value) -> Value {
    json!({
        "inputs": {"parameters": [input]},
        "script": {"image": "busybox", "command": ["sh"],
                   "source": "echo {{inputs.parameters.msg}}"},
    })
}

async fn run(api: &Api<Workflow>, wf: &Workflow, server: &lab::Server) -> Workflow {
    let name = wf.metadata.name.clone().expect("name");
    let started = Instant::now();
    api.create(&PostParams::default(), wf)
        .await
        .expect("create workflow");
    let done = lab::wait_finished(api, &name, RUN_BOUND, server).await;
    println!(
        "{name}: {:?} in {:.1}s",
        done.status.as_ref().and_then(|s| s.phase.clone()),
        started.elapsed().as_secs_f64()
    );
    done
}

#[tokio::test]
async fn inline_templates_and_config_map_parameters_on_the_lab() {
    if !lab::e2e("inline_templates_and_config_map_parameters_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("s15-features");
    let server = server(&ns.0).await;
    lab::kubectl(
        &["apply", "-n", &ns.0, "-f", "-"],
        Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: params\n  labels:\n    \
             workflows.argoproj.io/configmap-type: Parameter\ndata:\n  greeting: hello-cm\n  \
             msg: from-cm\n",
        ),
    );
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);

    let wf = workflow(
        "inline-and-cm",
        json!({
            "entrypoint": "main",
            "arguments": {"parameters": [{"name": "greeting",
                "valueFrom": {"configMapKeyRef": {"name": "params", "key": "greeting"}}}]},
            "templates": [{"name": "main", "dag": {"tasks": [
                {"name": "a", "inline": echo_inline(json!({"name": "msg",
                    "valueFrom": {"configMapKeyRef": {"name": "params", "key": "msg"}}}))},
                {"name": "b", "depends": "a",
                 "arguments": {"parameters": [{"name": "msg",
                    "value": "{{tasks.a.outputs.result}}-{{workflow.parameters.greeting}}"}]},
                 "inline": {"inputs": {"parameters": [{"name": "msg"}]}, "steps": [[
                    {"name": "c", "arguments": {"parameters": [
                        {"name": "msg", "value": "{{inputs.parameters.msg}}"}]},
                     "inline": echo_inline(json!({"name": "msg"}))}]]}},
                {"name": "d", "depends": "a",
                 "inline": echo_inline(json!({"name": "msg", "valueFrom": {
                    "configMapKeyRef": {"name": "params", "key": "absent"},
                    "default": "fallback"}}))},
            ]}}],
        }),
    );
    let done = run(&api, &wf, &server).await;
    let phase = done.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Succeeded"), "{:#?}", done.status);
    assert_eq!(result(node(&done, "a")).as_deref(), Some("from-cm"));
    assert_eq!(
        result(node(&done, "c")).as_deref(),
        Some("from-cm-hello-cm")
    );
    assert_eq!(result(node(&done, "d")).as_deref(), Some("fallback"));
    // Inline nodes name no template (Argo's), and run as pods of the workflow.
    assert_eq!(node(&done, "a").template_name, None);
    assert_eq!(node(&done, "a").node_type.as_deref(), Some("Pod"));

    // A key that is not there and no default: the node errors with the ConfigMap's name.
    let wf = workflow(
        "cm-missing-key",
        json!({
            "entrypoint": "main",
            "templates": [{"name": "main", "steps": [[
                {"name": "a", "inline": echo_inline(json!({"name": "msg",
                    "valueFrom": {"configMapKeyRef": {"name": "params", "key": "absent"}}}))}]]}],
        }),
    );
    let done = run(&api, &wf, &server).await;
    let a = node(&done, "a");
    assert_eq!(a.phase.as_deref(), Some("Error"), "{:#?}", done.status);
    let message = a.message.clone().unwrap_or_default();
    assert!(
        message.contains("ConfigMap 'params' does not have the key 'absent'"),
        "{message}"
    );
    let phase = done.status.as_ref().and_then(|s| s.phase.clone());
    assert_ne!(phase.as_deref(), Some("Succeeded"));

    // One `kubectl apply` of a ConfigMap, a WorkflowTemplate reading it and a Workflow of that
    // template: the Workflow reaches the controller before (or with) the objects it reads, and
    // it still runs (the controller reads its cache misses from the apiserver).
    let together = workflow(
        "applied-together",
        json!({"workflowTemplateRef": {"name": "tpl-together"}}),
    );
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "params-together",
                      "labels": {"workflows.argoproj.io/configmap-type": "Parameter"}},
         "data": {"msg": "read-through"}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
         "metadata": {"name": "tpl-together"},
         "spec": {"entrypoint": "main", "templates": [{"name": "main", "steps": [[
            {"name": "e", "inline": echo_inline(json!({"name": "msg", "valueFrom":
                {"configMapKeyRef": {"name": "params-together", "key": "msg"}}}))}]]}]}},
        serde_json::to_value(&together).expect("workflow json"),
    ]});
    let started = Instant::now();
    lab::kubectl(
        &["apply", "-n", &ns.0, "-f", "-"],
        Some(&serde_json::to_string(&list).expect("list json")),
    );
    let done = lab::wait_finished(&api, "applied-together", RUN_BOUND, &server).await;
    println!(
        "applied-together: {:?} in {:.1}s",
        done.status.as_ref().and_then(|s| s.phase.clone()),
        started.elapsed().as_secs_f64()
    );
    let phase = done.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Succeeded"), "{:#?}", done.status);
    assert_eq!(result(node(&done, "e")).as_deref(), Some("read-through"));
}

#[tokio::test]
async fn conditional_output_artifacts_pass_through_the_built_in_store_on_the_lab() {
    if !lab::e2e("conditional_output_artifacts_pass_through_the_built_in_store_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("s15-artifacts");
    let ip = lab::node_ip(&client).await;
    let exec = format!("{ip}:{}", lab::free_port(&ip));
    let exec_addr: std::net::SocketAddr = exec.parse().expect("addr");
    let server = lab::Server::start(
        &format!(
            "namespaces = [\"{}\"]\ninstance_id = \"{INSTANCE}\"\n\
             executor_url = \"http://{exec}\"\nexecutor_listen = \"{exec}\"\n",
            ns.0
        ),
        &[exec_addr],
    )
    .await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let make = |word: &str| {
        json!({"name": word, "script": {"image": "busybox", "command": ["sh"],
            "source": format!("echo {word} > /tmp/out")},
            "outputs": {"artifacts": [{"name": "out", "path": "/tmp/out"}]}})
    };
    let wf = workflow(
        "conditional-artifacts",
        json!({
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [
                    [{"name": "pick", "template": "pick"}],
                    [{"name": "show", "template": "show", "arguments": {"artifacts": [
                        {"name": "data", "from": "{{steps.pick.outputs.artifacts.chosen}}"}]}}],
                ]},
                {"name": "pick", "dag": {"tasks": [
                    {"name": "flip", "template": "flip"},
                    {"name": "heads", "template": "heads", "depends": "flip",
                     "when": "{{tasks.flip.outputs.result}} == heads"},
                    {"name": "tails", "template": "tails", "depends": "flip",
                     "when": "{{tasks.flip.outputs.result}} == tails"},
                ]}, "outputs": {"artifacts": [{"name": "chosen", "fromExpression":
                    "tasks.flip.outputs.result == 'heads' ? tasks.heads.outputs.artifacts.out \
                     : tasks.tails.outputs.artifacts.out"}]}},
                {"name": "flip", "script": {"image": "busybox", "command": ["sh"],
                    "source": "echo heads"}},
                make("heads"),
                make("tails"),
                {"name": "show", "inputs": {"artifacts": [{"name": "data", "path": "/in/data"}]},
                 "script": {"image": "busybox", "command": ["sh"], "source": "cat /in/data"}},
            ],
        }),
    );
    let done = run(&api, &wf, &server).await;
    let phase = done.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Succeeded"), "{:#?}", done.status);
    assert_eq!(node(&done, "tails").phase.as_deref(), Some("Skipped"));
    assert_eq!(result(node(&done, "show")).as_deref(), Some("heads"));
    let chosen = node(&done, "pick")
        .outputs
        .as_ref()
        .and_then(|o| o.artifacts.clone())
        .unwrap_or_default();
    assert_eq!(chosen.len(), 1, "{chosen:?}");
    assert_eq!(chosen[0]["name"], json!("chosen"));
}
