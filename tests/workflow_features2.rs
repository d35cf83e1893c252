//! Lab tests (CAIRN_E2E=1) of the Argo features of issue 5 (second batch): parameters from a
//! Secret (`valueFrom.secretKeyRef`, as a workflow argument and as a template input),
//! `workflowMetadata.labelsFrom`, `podDisruptionBudget` (there while the workflow runs, gone
//! once it completes), and CronWorkflow `when` and `stopStrategy`.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image loaded
//! (`make executor`). Each test starts its own `cairn server` (instance id
//! `cairn-s16-features`, one namespace) and deletes its namespace at the end. Every wait is
//! bounded; durations are printed, never asserted.

#[path = "common/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use cairn::workflow::types::{CronWorkflow, NodeStatus, Workflow};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const INSTANCE: &str = "cairn-s16-features";
const RUN_BOUND: Duration = Duration::from_secs(240);
/// The Secret's value: must reach the step, and never the server's log.
const SECRET_VALUE: &str = "s16-not-for-logs-7f3a9c";

async fn server(ns: &str) -> lab::Server {
    lab::Server::start(
        &format!("namespaces = [\"{ns}\"]\nworkers = 4\ninstance_id = \"{INSTANCE}\"\n"),
        &[],
    )
    .await
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

fn phase(wf: &Workflow) -> Option<String> {
    wf.status.as_ref().and_then(|s| s.phase.clone())
}

#[tokio::test]
async fn secret_parameters_labels_from_and_pod_disruption_budget_on_the_lab() {
    if !lab::e2e("secret_parameters_labels_from_and_pod_disruption_budget_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("s16-features");
    let server = server(&ns.0).await;
    lab::kubectl(
        &["apply", "-n", &ns.0, "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  \
             token: {SECRET_VALUE}\n  region: eu-west\n"
        )),
    );
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns.0);

    let name = "secret-labels-pdb";
    let wf: Workflow = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "labels": {"workflows.argoproj.io/controller-instanceid": INSTANCE},
        },
        "spec": {
            "entrypoint": "main",
            "podDisruptionBudget": {"minAvailable": 9999},
            "arguments": {"parameters": [
                {"name": "region",
                 "valueFrom": {"secretKeyRef": {"name": "creds", "key": "region"}}},
                {"name": "team", "value": "ml"},
            ]},
            "workflowMetadata": {
                "labels": {"plain": "yes"},
                "labelsFrom": {
                    "team": {"expression": "workflow.parameters.team + '-' + workflow.name"},
                },
            },
            "templates": [{
                "name": "main",
                "inputs": {"parameters": [{"name": "token",
                    "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]},
                "script": {"image": "busybox", "command": ["sh"],
                    "source": "sleep 6; echo {{inputs.parameters.token}}-{{workflow.parameters.region}}"},
            }],
        },
    }))
    .expect("workflow");
    let started = Instant::now();
    api.create(&PostParams::default(), &wf)
        .await
        .expect("create workflow");

    // While it runs: the budget selects its pods, the labels are on the object.
    let deadline = Instant::now() + Duration::from_secs(90);
    let pdb = loop {
        if let Some(p) = pdbs.get_opt(name).await.expect("get pdb") {
            break p;
        }
        let now = api.get(name).await.expect("get workflow");
        assert!(
            Instant::now() < deadline
                && !matches!(
                    phase(&now).as_deref(),
                    Some("Succeeded" | "Failed" | "Error")
                ),
            "no PodDisruptionBudget while {name} ran ({:?}):\n{}",
            phase(&now),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    println!("pdb seen after {:.1}s", started.elapsed().as_secs_f64());
    let spec = pdb.spec.expect("pdb spec");
    assert_eq!(
        spec.selector.and_then(|s| s.match_labels),
        Some([("workflows.argoproj.io/workflow".to_owned(), name.to_owned())].into())
    );
    let owner = &pdb.metadata.owner_references.expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Workflow", name)
    );

    let done = lab::wait_finished(&api, name, RUN_BOUND, &server).await;
    println!(
        "{name}: {:?} in {:.1}s",
        phase(&done),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        phase(&done).as_deref(),
        Some("Succeeded"),
        "{:#?}",
        done.status
    );
    let main = node(&done, name);
    assert_eq!(
        main.outputs.as_ref().and_then(|o| o.result.clone()),
        Some(format!("{SECRET_VALUE}-eu-west"))
    );
    let labels = done.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("plain").map(String::as_str), Some("yes"));
    assert_eq!(
        labels.get("team").map(String::as_str),
        Some("ml-secret-labels-pdb"),
        "{labels:?}"
    );

    // Completed: the budget is deleted (on the archiving pass, right after completion).
    let deadline = Instant::now() + Duration::from_secs(60);
    while pdbs.get_opt(name).await.expect("get pdb").is_some() {
        assert!(
            Instant::now() < deadline,
            "PodDisruptionBudget {name} still there a minute after completion:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A missing key without a default errors the node, naming the Secret and the key.
    let bad: Workflow = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": "secret-missing-key",
            "labels": {"workflows.argoproj.io/controller-instanceid": INSTANCE},
        },
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "steps": [[{"name": "a", "template": "show"}]]},
                {"name": "show",
                 "inputs": {"parameters": [{"name": "v",
                    "valueFrom": {"secretKeyRef": {"name": "creds", "key": "absent"}}}]},
                 "container": {"image": "busybox", "command": ["echo", "{{inputs.parameters.v}}"]}}],
        },
    }))
    .expect("workflow");
    api.create(&PostParams::default(), &bad)
        .await
        .expect("create workflow");
    let done = lab::wait_finished(&api, "secret-missing-key", RUN_BOUND, &server).await;
    let a = node(&done, "a");
    assert_eq!(a.phase.as_deref(), Some("Error"), "{:#?}", done.status);
    let message = a.message.clone().unwrap_or_default();
    assert!(
        message.contains("Secret 'creds' does not have the key 'absent'"),
        "{message}"
    );

    // The Secret's value never reached the server's log.
    let log = server.log();
    assert!(!log.is_empty(), "the server log is empty");
    assert!(
        !log.contains(SECRET_VALUE),
        "the Secret's value is in the server log"
    );
}

fn cron(name: &str, labels: Value, extra: Value) -> CronWorkflow {
    let mut spec = json!({
        "schedule": "@every 10s",
        "concurrencyPolicy": "Forbid",
        "workflowSpec": {
            "entrypoint": "main",
            "templates": [{"name": "main",
                "container": {"image": "busybox", "command": ["true"]}}],
        },
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    let mut all_labels = json!({"workflows.argoproj.io/controller-instanceid": INSTANCE});
    if let (Some(l), Some(more)) = (all_labels.as_object_mut(), labels.as_object()) {
        for (k, v) in more {
            l.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "CronWorkflow",
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
    }))
    .expect("cron workflow")
}

async fn children(api: &Api<Workflow>, cron: &str) -> usize {
    api.list(&ListParams::default().labels(&format!("workflows.argoproj.io/cron-workflow={cron}")))
        .await
        .expect("list children")
        .items
        .len()
}

#[tokio::test]
async fn cron_when_and_stop_strategy_on_the_lab() {
    if !lab::e2e("cron_when_and_stop_strategy_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("s16-cron");
    let server = server(&ns.0).await;
    let crons: Api<CronWorkflow> = Api::namespaced(client.clone(), &ns.0);
    let wfs: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let started = Instant::now();

    // `when` false: every due time is decided and skipped, nothing runs.
    crons
        .create(
            &PostParams::default(),
            &cron(
                "gated",
                json!({"enabled": "no"}),
                json!({"when": "{{cronworkflow.labels.enabled}} == yes"}),
            ),
        )
        .await
        .expect("create gated");
    // `stopStrategy`: the first success stops the schedule.
    crons
        .create(
            &PostParams::default(),
            &cron(
                "once",
                json!({}),
                json!({"when": "{{= cronworkflow.succeeded < 5 }}",
                       "stopStrategy": {"expression": "cronworkflow.succeeded >= 1"}}),
            ),
        )
        .await
        .expect("create once");

    let deadline = Instant::now() + Duration::from_secs(150);
    let stopped = loop {
        let once = crons.get("once").await.expect("get once");
        let status = once.status.clone().unwrap_or_default();
        if status.phase.as_deref() == Some("Stopped") {
            break once;
        }
        assert!(
            Instant::now() < deadline,
            "CronWorkflow once did not stop within 150 s: {:#?}\n{}",
            once.status,
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!("once stopped after {:.1}s", started.elapsed().as_secs_f64());
    let status = stopped.status.clone().unwrap_or_default();
    assert!(status.succeeded.unwrap_or(0) >= 1, "{status:?}");
    assert_eq!(
        stopped
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("workflows.argoproj.io/cron-workflow-completed"))
            .map(String::as_str),
        Some("true")
    );
    let ran = children(&wfs, "once").await;
    assert!(ran >= 1, "no child of once");

    // Two more periods: the stopped one creates nothing more, the gated one never ran but
    // decided its times.
    tokio::time::sleep(Duration::from_secs(25)).await;
    assert_eq!(
        children(&wfs, "once").await,
        ran,
        "once ran after it stopped"
    );
    assert_eq!(children(&wfs, "gated").await, 0, "gated ran despite when");
    let gated = crons.get("gated").await.expect("get gated");
    let decided = gated
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("cairn/last-decided-time").cloned());
    assert!(
        decided.is_some(),
        "gated decided no time: {:?}",
        gated.metadata
    );
    assert_eq!(
        gated.status.as_ref().and_then(|s| s.conditions.clone()),
        None,
        "a false when is no error"
    );
    println!(
        "gated: {} children, last decided {decided:?}; once: {ran} children",
        children(&wfs, "gated").await
    );
}
