//! `[workflow] namespaces` on the lab: two `cairn server`s sharing one controller instance id,
//! each limited to its own namespace, run only their own namespace's Workflows and
//! CronWorkflows; a third namespace that neither is configured for is left untouched.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) and `kubectl` on PATH; skipped only
//! when CAIRN_E2E is not set. The Workflows are `suspend` templates (no pod), so the executor
//! image is not needed. Namespaces `cairn-h6-scope-*`, deleted at the end. Every wait is
//! bounded; nothing asserts on timing.

#[path = "common/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use cairn::workflow::types::{CronWorkflow, Workflow};
use kube::api::{Api, ListParams};
use lab::{Server, TestNamespace, client, e2e, kubectl};
use serde_json::{Value, json};

/// Shared by both servers: the bug was two controllers of one instance id acting on each
/// other's namespaces.
const INSTANCE: &str = "cairn-h6-scope";

/// Bound of every wait (a CronWorkflow's first run is up to a minute away).
const BOUND: Duration = Duration::from_secs(150);

fn kubectl_apply(doc: &Value) {
    kubectl(&["create", "-f", "-"], Some(&doc.to_string()));
}

/// A cairn server limited to `namespace`.
async fn start_server(namespace: &str) -> Server {
    Server::start(
        &format!("namespaces = [\"{namespace}\"]\ninstance_id = \"{INSTANCE}\"\n"),
        &[],
    )
    .await
}

fn labels() -> Value {
    json!({"workflows.argoproj.io/controller-instanceid": INSTANCE})
}

/// A Workflow that suspends at once: `Running` as soon as a controller operates it, no pod.
fn suspended(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": name, "namespace": ns, "labels": labels()},
        "spec": {"entrypoint": "wait", "templates": [{"name": "wait", "suspend": {}}]}
    })
}

/// A CronWorkflow due every minute whose runs suspend.
fn cron(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
        "metadata": {"name": name, "namespace": ns, "labels": labels()},
        "spec": {
            "schedule": "* * * * *",
            "workflowSpec": {"entrypoint": "wait", "templates": [{"name": "wait", "suspend": {}}]}
        }
    })
}

fn phase(wf: &Workflow) -> Option<String> {
    wf.status.as_ref().and_then(|s| s.phase.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_with_one_instance_id_run_only_their_namespaces() {
    if !e2e("servers_with_one_instance_id_run_only_their_namespaces") {
        return;
    }
    let client = client().await;
    let suffix = lab::unique_suffix();
    let [a, b, c] = ["a", "b", "c"].map(|x| format!("cairn-h6-scope-{x}-{suffix}"));
    let _ns = [&a, &b, &c].map(|n| TestNamespace::named(n));
    let server_a = start_server(&a).await;
    let server_b = start_server(&b).await;

    for ns in [&a, &b, &c] {
        kubectl_apply(&suspended(ns, "held"));
        kubectl_apply(&cron(ns, "every-minute"));
    }

    // Each server's workflow runs (Running, suspended) and each server's cron creates a run.
    let started = Instant::now();
    for (ns, server) in [(&a, &server_a), (&b, &server_b)] {
        let wfs: Api<Workflow> = Api::namespaced(client.clone(), ns);
        loop {
            let held = wfs.get("held").await.expect("get workflow");
            let runs = wfs
                .list(&ListParams::default().labels("workflows.argoproj.io/cron-workflow"))
                .await
                .expect("list runs");
            if phase(&held).as_deref() == Some("Running") && !runs.items.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < BOUND,
                "{ns}: workflow phase {:?}, {} cron runs after {BOUND:?}:\n{}",
                phase(&held),
                runs.items.len(),
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // Nobody runs namespace c: its workflow has no status, its cron no run and no status.
    let wfs_c: Api<Workflow> = Api::namespaced(client.clone(), &c);
    let held_c = wfs_c.get("held").await.expect("get workflow");
    assert_eq!(held_c.status.as_ref().and_then(|s| s.phase.clone()), None);
    let runs_c = wfs_c.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        runs_c.items.len(),
        1,
        "only `held` in {c}: {:?}",
        runs_c
            .items
            .iter()
            .map(|w| w.metadata.name.clone())
            .collect::<Vec<_>>()
    );
    let cron_c = Api::<CronWorkflow>::namespaced(client.clone(), &c)
        .get("every-minute")
        .await
        .expect("get cron");
    assert!(cron_c.status.is_none(), "{:?}", cron_c.status);

    // And neither server acted in the other's namespace (its debug log names every workflow it
    // wrote or reconciled).
    let (log_a, log_b) = (server_a.log(), server_b.log());
    assert!(log_a.contains(&format!("{a}/held")), "{log_a}");
    assert!(log_b.contains(&format!("{b}/held")), "{log_b}");
    for (log, foreign) in [(&log_a, &b), (&log_a, &c), (&log_b, &a), (&log_b, &c)] {
        assert!(
            !log.contains(foreign.as_str()),
            "{foreign} in the log of another server:\n{log}"
        );
    }
}
