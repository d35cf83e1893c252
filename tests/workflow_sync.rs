//! Lab test (CAIRN_E2E=1) of Argo's `synchronization` in cairn: the four shapes of Argo's
//! examples, in manifests of our own: a workflow-level mutex (two workflows, the second waits
//! "Waiting for <ns>/Mutex/<name> lock..." until the first has finished), a template-level
//! mutex over a loop, a workflow-level semaphore whose limit 2 comes from a ConfigMap over
//! three workflows, and a template-level semaphore (limit 2) over a withItems loop.
//!
//! Overlap is judged from the pods themselves: the `main` container's `startedAt` and
//! `finishedAt` of every step pod (the kubelet's times, one-second resolution; each step
//! sleeps 3 s, so a real overlap cannot hide in the rounding). Needs the lab
//! (`eval "$(integration-tests/lab/env)"`) with the executor image loaded (`make executor`).
//! One `cairn server` (instance id `cairn-s16-sync`) and one namespace, deleted at the end.
//! Every wait is bounded; durations are printed, never asserted.

#[path = "common/lab.rs"]
mod lab;

use std::time::{Duration, Instant};

use cairn::workflow::types::Workflow;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const INSTANCE: &str = "cairn-s16-sync";
const RUN_BOUND: Duration = Duration::from_secs(300);

fn workflow(name: &str, spec: Value) -> Workflow {
    lab::workflow(name, INSTANCE, spec)
}

fn sleeper() -> Value {
    json!({"image": "busybox", "command": ["sh", "-c", "sleep 3"]})
}

/// (start, finish) of the `main` container of every pod of `workflow`, in seconds.
async fn intervals(pods: &Api<Pod>, workflow: &str) -> Vec<(i64, i64)> {
    let list = pods
        .list(&ListParams::default().labels(&format!("workflows.argoproj.io/workflow={workflow}")))
        .await
        .expect("list pods");
    let mut out = Vec::new();
    for p in list {
        let name = p.metadata.name.clone().unwrap_or_default();
        let terminated = p
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == "main"))
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.terminated.as_ref())
            .unwrap_or_else(|| panic!("pod {name}: main has not terminated"));
        let start = terminated
            .started_at
            .as_ref()
            .expect("startedAt")
            .0
            .as_second();
        let finish = terminated
            .finished_at
            .as_ref()
            .expect("finishedAt")
            .0
            .as_second();
        out.push((start, finish));
    }
    out
}

/// The most intervals `[start, finish)` covering one instant.
fn max_overlap(intervals: &[(i64, i64)]) -> usize {
    let mut events: Vec<(i64, i32)> = Vec::new();
    for (s, f) in intervals {
        events.push((*s, 1));
        events.push((*f, -1));
    }
    // At one instant, ends before starts: back-to-back is not an overlap.
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        max = max.max(now);
    }
    usize::try_from(max).unwrap_or(0)
}

/// Polls the workflows until all have finished; returns them and every distinct waiting
/// message seen on a workflow or a node meanwhile.
async fn wait_all(
    api: &Api<Workflow>,
    names: &[&str],
    server: &lab::Server,
) -> (Vec<Workflow>, Vec<String>) {
    let deadline = Instant::now() + RUN_BOUND;
    let mut seen = Vec::new();
    loop {
        let mut done = Vec::new();
        for n in names {
            let wf = api.get(n).await.expect("get workflow");
            let status = wf.status.clone().unwrap_or_default();
            let mut messages: Vec<String> = status.message.clone().into_iter().collect();
            messages.extend(
                status
                    .nodes
                    .iter()
                    .flat_map(|n| n.values())
                    .filter_map(|n| n.message.clone()),
            );
            for m in messages {
                if m.starts_with("Waiting for ") && !seen.contains(&m) {
                    seen.push(m);
                }
            }
            if matches!(
                status.phase.as_deref(),
                Some("Succeeded" | "Failed" | "Error")
            ) {
                done.push(wf);
            }
        }
        if done.len() == names.len() {
            return (done, seen);
        }
        assert!(
            Instant::now() < deadline,
            "workflows {names:?} did not finish within {RUN_BOUND:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn assert_succeeded(wfs: &[Workflow]) {
    for wf in wfs {
        let status = wf.status.clone().unwrap_or_default();
        assert_eq!(
            status.phase.as_deref(),
            Some("Succeeded"),
            "{}: {:#?}",
            wf.metadata.name.as_deref().unwrap_or(""),
            status
        );
        assert!(
            !status.extra.contains_key("synchronization"),
            "a finished workflow holds nothing: {:?}",
            status.extra.get("synchronization")
        );
    }
}

#[tokio::test]
async fn argo_synchronization_examples_on_the_lab() {
    if !lab::e2e("argo_synchronization_examples_on_the_lab") {
        return;
    }
    let client = lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("s16-sync");
    let server = lab::Server::start(
        &format!(
            "namespaces = [\"{}\"]\nworkers = 4\ninstance_id = \"{INSTANCE}\"\n",
            ns.0
        ),
        &[],
    )
    .await;
    lab::kubectl(
        &["apply", "-n", &ns.0, "-f", "-"],
        Some(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: s16-limits\ndata:\n  \
             workflow: \"2\"\n  template: \"2\"\n",
        ),
    );
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.0);
    let started = Instant::now();

    // 1. Workflow-level mutex: two workflows, created one after the other.
    let wf_mutex = |name: &str| {
        workflow(
            name,
            json!({
                "entrypoint": "main",
                "synchronization": {"mutexes": [{"name": "s16-wf"}]},
                "templates": [{"name": "main", "container": sleeper()}],
            }),
        )
    };
    // 2. Template-level mutex over a loop.
    let tmpl_mutex = workflow(
        "tmpl-mutex",
        json!({
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [[{"name": "locked", "template": "critical",
                    "withParam": "[\"1\",\"2\",\"3\"]"}]]},
                {"name": "critical", "synchronization": {"mutex": {"name": "s16-tmpl"}},
                 "container": sleeper()},
            ],
        }),
    );
    // 3. Workflow-level semaphore, limit 2 (ConfigMap), three workflows.
    let wf_sem = |name: &str| {
        workflow(
            name,
            json!({
                "entrypoint": "main",
                "synchronization": {"semaphores": [
                    {"configMapKeyRef": {"name": "s16-limits", "key": "workflow"}}]},
                "templates": [{"name": "main", "container": sleeper()}],
            }),
        )
    };
    // 4. Template-level semaphore, limit 2, over a withItems loop of four.
    let tmpl_sem = workflow(
        "tmpl-sem",
        json!({
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [[{"name": "work", "template": "limited",
                    "withItems": ["a", "b", "c", "d"]}]]},
                {"name": "limited", "synchronization": {"semaphore":
                    {"configMapKeyRef": {"name": "s16-limits", "key": "template"}}},
                 "container": sleeper()},
            ],
        }),
    );
    let all = [
        wf_mutex("mutex-a"),
        wf_mutex("mutex-b"),
        tmpl_mutex,
        wf_sem("sem-a"),
        wf_sem("sem-b"),
        wf_sem("sem-c"),
        tmpl_sem,
    ];
    for wf in &all {
        api.create(&PostParams::default(), wf)
            .await
            .expect("create workflow");
        // mutex-a is older than mutex-b (the queue goes by creation time); the rest start at
        // once, so the poll below begins while the waiters still wait.
        if wf.metadata.name.as_deref() == Some("mutex-a") {
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    }
    let names: Vec<&str> = all
        .iter()
        .filter_map(|w| w.metadata.name.as_deref())
        .collect();
    let (done, waits) = wait_all(&api, &names, &server).await;
    println!(
        "all done in {:.1}s; waits seen: {waits:#?}",
        started.elapsed().as_secs_f64()
    );
    assert_succeeded(&done);

    // 1. The two mutex workflows never overlap; the second waited with Argo's message.
    let mut mutex = intervals(&pods, "mutex-a").await;
    mutex.extend(intervals(&pods, "mutex-b").await);
    println!("workflow mutex pods: {mutex:?}");
    assert_eq!(mutex.len(), 2);
    assert_eq!(max_overlap(&mutex), 1, "{mutex:?}");
    let key = format!("{}/Mutex/s16-wf", ns.0);
    assert!(
        waits.contains(&format!("Waiting for {key} lock. Lock status: 0/1")),
        "{waits:?}"
    );

    // 2. The template mutex runs its three steps one at a time.
    let tm = intervals(&pods, "tmpl-mutex").await;
    println!("template mutex pods: {tm:?}");
    assert_eq!(tm.len(), 3);
    assert_eq!(max_overlap(&tm), 1, "{tm:?}");

    // 3. Never more than two semaphore workflows at once.
    let mut sem = Vec::new();
    for n in ["sem-a", "sem-b", "sem-c"] {
        sem.extend(intervals(&pods, n).await);
    }
    println!(
        "workflow semaphore pods: {sem:?} (max {} at once)",
        max_overlap(&sem)
    );
    assert_eq!(sem.len(), 3);
    assert!(max_overlap(&sem) <= 2, "{sem:?}");
    let key = format!("{}/ConfigMap/s16-limits/workflow", ns.0);
    assert!(
        waits
            .iter()
            .any(|w| w.starts_with(&format!("Waiting for {key} lock."))),
        "{waits:?}"
    );

    // 4. Never more than two loop items at once.
    let ts = intervals(&pods, "tmpl-sem").await;
    println!(
        "template semaphore pods: {ts:?} (max {} at once)",
        max_overlap(&ts)
    );
    assert_eq!(ts.len(), 4);
    assert!(max_overlap(&ts) <= 2, "{ts:?}");
    let key = format!("{}/ConfigMap/s16-limits/template", ns.0);
    assert!(
        waits
            .iter()
            .any(|w| w.starts_with(&format!("Waiting for {key} lock."))),
        "{waits:?}"
    );
}
