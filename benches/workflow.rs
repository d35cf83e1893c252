//! Workflow benchmark (issue 5): a real `cairn server` running Workflows on the lab, compared with
//! bare pods created directly in the same run.
//!
//! Measures, and writes to `bench-results/workflow.json` (the path after `--output`):
//! - (a) throughput: 300 one-pod Workflows (`busybox`, command `true`) created at once through
//!   the Kubernetes API (16 create calls in flight), workflows completed per minute and
//!   submit → first-pod-created latency (p50/p99), against the completion rate of 300 bare pods
//!   (same image and command, same submission) created directly. Completed pods do not count
//!   against the node's 110-pod limit (checked on the lab), so neither runs in batches;
//! - (b) a 100-node DAG of instant steps (10 levels of 10 tasks, each task depending on every
//!   task of the level before): controller overhead per step = (workflow duration − critical
//!   path of pod lifetimes) / 100, where a pod's lifetime runs from its creation to the first
//!   of its `main` container terminated and its task result, as watches see them (the pod's
//!   `Succeeded` phase comes later: the kubelet sets it once the container is torn down), so
//!   kubelet start-up is on the critical path and the rest is the controller's; also the
//!   reaction time per step: pod created − the last dependency's step ended;
//! - (c) cairn's RSS (`VmRSS` of `/proc/<pid>/status`, sampled every 250 ms) during (a).
//!
//! Times come from watches (`kube::runtime::watcher`) on pods and Workflows, started before the
//! submission, so both sides are observed the same way. Where the time goes: per-pod lifetimes
//! (created → Succeeded) of bare and workflow pods, pod Succeeded → workflow Succeeded, and
//! cairn's own `cairn_workflow_*` metrics (apiserver calls by kind with their mean latency,
//! operator time, queue wait) scraped from `/metrics` around each part.
//!
//! Flags (after `--`): `--output FILE`; `--only bare,workflows,dag` runs only those parts
//! (`workflows` without `bare` has no ratio); `--workers N` sets `[workflow] workers` (default:
//! cairn's default). `CAIRN_BENCH_BIN=/path/to/cairn` runs another cairn build (a before/after
//! comparison in one session) instead of this one. Numbers are reported, never asserted; a
//! measurement a controller bug prevents is recorded as `"blocked": "<error>"`. Without `--bench`
//! (as `cargo test --all-targets` runs bench targets) it measures nothing. Every namespace it
//! creates starts with `bx-w-` and is deleted at the end, however the run ends.
#![allow(
    clippy::disallowed_methods,
    reason = "the namespace guard's Drop runs kubectl synchronously after the runtime is gone"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const IMAGE: &str = "docker.io/library/busybox:latest";
const COUNT: usize = 300;
/// Create calls in flight during a submission burst.
const IN_FLIGHT: usize = 16;
const LEVELS: usize = 10;
const WIDTH: usize = 10;
/// Bound of every wait; a wait that runs out is reported.
const BOUND: Duration = Duration::from_secs(1200);

/// What to run and how (command-line flags after `--`).
#[derive(Debug, Clone)]
struct Options {
    bare: bool,
    workflows: bool,
    dag: bool,
    workers: Option<usize>,
    bin: String,
}

impl Options {
    fn parse(args: &[String]) -> Options {
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let only = value("--only");
        let part = |name: &str| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|p| p.trim() == name))
        };
        Options {
            bare: part("bare"),
            workflows: part("workflows"),
            dag: part("dag"),
            workers: value("--workers").and_then(|w| w.parse().ok()),
            bin: std::env::var("CAIRN_BENCH_BIN").unwrap_or_else(|_| BIN.to_string()),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("workflow benchmark: run it with `make bench` (cargo bench --bench workflow)");
        return;
    }
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench-results/workflow.json".to_string());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let results = runtime.block_on(run(Options::parse(&args)));
    let text = serde_json::to_string_pretty(&results).expect("json");
    if let Some(dir) = std::path::Path::new(&output).parent() {
        std::fs::create_dir_all(dir).expect("create output dir");
    }
    std::fs::write(&output, &text).expect("write results");
    println!("{}", summary(&results));
    println!("written to {output}");
}

async fn run(opts: Options) -> Value {
    let started = Instant::now();
    let mut results = json!({"benchmark": "workflow", "machine": machine_facts()});
    let client = match cluster().await {
        Ok(c) => c,
        Err(e) => {
            results["skipped"] = json!(format!("skipped: no cluster ({e})"));
            return results;
        }
    };
    let image = cairn::workflow::pod::default_executor_image();
    if !executor_image_loaded(&client, &image).await {
        results["blocked"] = json!(format!(
            "the executor image {image} is not on the lab node: run `make executor`"
        ));
        return results;
    }
    let id = unique();
    let mut guard = Namespaces(Vec::new());
    let pods_ns = format!("bx-w-pods-{id}");
    let wf_ns = format!("bx-w-wf-{id}");
    let dag_ns = format!("bx-w-dag-{id}");
    for ns in [&pods_ns, &wf_ns, &dag_ns] {
        if let Err(e) = guard.create(&client, ns).await {
            results["blocked"] = json!(format!("cannot create namespace {ns}: {e}"));
            return results;
        }
    }
    results["setup"] = json!({
        "image": IMAGE, "image_pull_policy": "IfNotPresent (bare pods and workflow steps alike: \
                           `:latest` defaults to Always, and the kubelet's pull QPS then fails pods)",
        "command": ["true"], "executor_image": image,
        "submission": format!("{COUNT} objects created through the API, {IN_FLIGHT} calls in flight"),
        "batches": "none: completed pods do not count against the node's 110-pod limit",
        "cairn_config": {"workflow.workers": opts.workers.map_or(json!("default"), |w| json!(w)),
                         "workflow.namespaces": [&wf_ns, &dag_ns], "gitops.enabled": false},
        "cairn_binary": &opts.bin,
        "parts": {"bare": opts.bare, "workflows": opts.workflows, "dag": opts.dag},
    });

    // Baseline first, before cairn runs, so the bare pods compete with nothing of ours.
    let bare = if opts.bare {
        bare_pods(&client, &pods_ns).await
    } else {
        json!({"skipped": "not in --only"})
    };
    let _ = Command::new("kubectl")
        .args(["delete", "namespace", &pods_ns, "--wait=false"])
        .output();

    let mut server = match Server::start(&opts, &[&wf_ns, &dag_ns]) {
        Ok(s) => s,
        Err(e) => {
            results["bare_pods"] = bare;
            results["blocked"] = json!(format!("cairn server did not start: {e}"));
            return results;
        }
    };
    if let Err(e) = server.wait_ready().await {
        results["bare_pods"] = bare;
        results["blocked"] = json!(format!(
            "cairn server not ready: {e}\n{}",
            server.log_tail()
        ));
        return results;
    }
    let rss_idle = rss_kib(server.pid());
    results["bare_pods"] = bare.clone();
    if opts.workflows {
        let before = server.metrics().await;
        let sampler = RssSampler::start(server.pid());
        let mut throughput = workflows_throughput(&client, &wf_ns).await;
        let samples = sampler.stop().await;
        if let (Some(w), Some(p)) = (
            throughput["workflows_per_min"].as_f64(),
            bare["pods_per_min"].as_f64(),
        ) {
            throughput["ratio_vs_bare_pods"] = json!(w / p);
        }
        throughput["target"] = json!("ratio >= 0.8");
        throughput["cairn_metrics"] = metrics_delta(&before, &server.metrics().await);
        results["workflows_300"] = with_log(throughput, &server);
        results["rss_during_300"] = rss_summary(rss_idle, &samples);
    }
    if opts.dag {
        let before = server.metrics().await;
        let mut d = dag(&client, &dag_ns).await;
        d["cairn_metrics"] = metrics_delta(&before, &server.metrics().await);
        results["dag_100"] = with_log(d, &server);
        results["rss_after_dag_kib"] = json!(rss_kib(server.pid()));
    }
    server.stop();
    results["total_s"] = json!(started.elapsed().as_secs_f64());
    drop(guard);
    results
}

fn with_log(mut v: Value, server: &Server) -> Value {
    if v.get("blocked").is_some() {
        v["server_log_tail"] = json!(server.log_tail());
    }
    v
}

// ---------------------------------------------------------------------------------------------
// (a) bare pods and one-pod workflows

fn bare_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench.cairn.dev/kind": "bare"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["true"]}],
        }
    }))
    .expect("pod object")
}

async fn bare_pods(client: &Client, ns: &str) -> Value {
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let seen = PodWatch::start(api.clone(), |p| Some(p.name_any()));
    let names: Vec<String> = (0..COUNT).map(|i| format!("pod-{i:03}")).collect();
    let t0 = Instant::now();
    let created = create_all(&names, |name| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &bare_pod(&name))
                .await
                .map(|_| ())
        }
    })
    .await;
    let submit_s = t0.elapsed().as_secs_f64();
    let errors: Vec<String> = created
        .iter()
        .filter_map(|(_, r)| r.clone().err())
        .collect();
    let expected = COUNT - errors.len();
    let finished = seen.wait_done(expected, BOUND).await;
    let (done, failed, last) = finished;
    let makespan = last.map(|l| l.duration_since(t0).as_secs_f64());
    let mut lifetimes = seen.lifetimes_ms();
    let mut v = json!({
        "pods": COUNT,
        "submit_all_s": submit_s,
        "succeeded": done - failed,
        "failed": failed,
        "first_create_to_last_succeeded_s": makespan,
        "pods_per_min": makespan.filter(|_| done == COUNT).map(|m| COUNT as f64 * 60.0 / m),
        "pod_created_to_succeeded_ms": stats(&mut lifetimes),
    });
    if !errors.is_empty() {
        v["create_errors"] = json!(errors.iter().take(5).collect::<Vec<_>>());
    }
    if done < expected {
        v["blocked"] = json!(format!(
            "only {done} of {expected} bare pods finished within {} s",
            BOUND.as_secs()
        ));
    }
    seen.stop();
    v
}

fn one_pod_workflow(name: &str) -> DynamicObject {
    let mut wf = DynamicObject::new(name, &workflow_resource());
    wf.data = json!({
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main",
                           "container": {"image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                         "command": ["true"]}}],
        }
    });
    wf
}

async fn workflows_throughput(client: &Client, ns: &str) -> Value {
    let wfs = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &workflow_resource());
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    let pod_seen = PodWatch::start(pods, |p| {
        p.labels()
            .get(cairn::workflow::node::LABEL_WORKFLOW)
            .cloned()
    });
    let wf_seen = WorkflowWatch::start(wfs.clone());
    let names: Vec<String> = (0..COUNT).map(|i| format!("wf-{i:03}")).collect();
    let t0 = Instant::now();
    let created = create_all(&names, |name| {
        let wfs = wfs.clone();
        async move {
            wfs.create(&PostParams::default(), &one_pod_workflow(&name))
                .await
                .map(|_| ())
        }
    })
    .await;
    let submit_s = t0.elapsed().as_secs_f64();
    let submitted: HashMap<String, Instant> = created
        .iter()
        .filter(|(_, r)| r.is_ok())
        .map(|(s, _)| (s.name.clone(), s.at))
        .collect();
    let errors: Vec<String> = created
        .iter()
        .filter_map(|(_, r)| r.clone().err())
        .collect();
    let finished = wf_seen.wait_done(submitted.len(), BOUND).await;
    let (done, failed, last) = finished;
    let makespan = last.map(|l| l.duration_since(t0).as_secs_f64());
    let mut latency_ms: Vec<f64> = {
        let first = pod_seen.snapshot_first();
        submitted
            .iter()
            .filter_map(|(name, at)| {
                first
                    .get(name)
                    .map(|p| p.saturating_duration_since(*at).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    let failures = wf_seen.failures();
    let mut lifetimes = pod_seen.lifetimes_ms();
    // The controller's reaction to a finished pod: pod seen Succeeded → workflow seen finished.
    let mut completion_ms: Vec<f64> = {
        let pod_done = pod_seen.snapshot_done();
        let wf_done = wf_seen.snapshot_done();
        pod_done
            .iter()
            .filter_map(|(name, p)| {
                let w = wf_done.get(name)?;
                Some(w.saturating_duration_since(*p).as_secs_f64() * 1000.0)
            })
            .collect()
    };
    let last_pod_created_s = pod_seen
        .snapshot_first()
        .values()
        .max()
        .map(|l| l.saturating_duration_since(t0).as_secs_f64());
    let mut v = json!({
        "workflows": COUNT,
        "submit_all_s": submit_s,
        "succeeded": done - failed,
        "failed_or_error": failed,
        "first_submit_to_last_completed_s": makespan,
        "workflows_per_min": makespan.filter(|_| done == COUNT).map(|m| COUNT as f64 * 60.0 / m),
        "submit_to_first_pod_created_ms": stats(&mut latency_ms),
        "first_submit_to_last_pod_created_s": last_pod_created_s,
        "pod_created_to_succeeded_ms": stats(&mut lifetimes),
        "pod_succeeded_to_workflow_completed_ms": stats(&mut completion_ms),
    });
    if !failures.is_empty() {
        v["failure_messages"] = json!(failures.into_iter().take(5).collect::<Vec<_>>());
    }
    if !errors.is_empty() {
        v["create_errors"] = json!(errors.iter().take(5).collect::<Vec<_>>());
    }
    if done < submitted.len() {
        v["blocked"] = json!(format!(
            "only {done} of {} workflows finished within {} s",
            submitted.len(),
            BOUND.as_secs()
        ));
    }
    pod_seen.stop();
    wf_seen.stop();
    v
}

/// When each create call started.
struct Submitted {
    name: String,
    at: Instant,
}

/// Runs `create` for every name with [`IN_FLIGHT`] calls at once.
async fn create_all<F, Fut>(names: &[String], create: F) -> Vec<(Submitted, Result<(), String>)>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    futures::stream::iter(names.iter().cloned())
        .map(|name| {
            let at = Instant::now();
            let fut = create(name.clone());
            async move {
                let r = fut.await.map_err(|e| format!("create {name}: {e}"));
                (Submitted { name, at }, r)
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await
}

// ---------------------------------------------------------------------------------------------
// (b) the 100-node DAG

fn task_name(level: usize, j: usize) -> String {
    format!("t-{level}-{j}")
}

fn dag_workflow(name: &str) -> DynamicObject {
    let mut tasks = Vec::new();
    for level in 0..LEVELS {
        for j in 0..WIDTH {
            let mut t = json!({"name": task_name(level, j), "template": "step"});
            if level > 0 {
                t["dependencies"] = json!(
                    (0..WIDTH)
                        .map(|k| task_name(level - 1, k))
                        .collect::<Vec<_>>()
                );
            }
            tasks.push(t);
        }
    }
    let mut wf = DynamicObject::new(name, &workflow_resource());
    wf.data = json!({
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "dag": {"tasks": tasks}},
                {"name": "step", "container": {"image": IMAGE, "imagePullPolicy": "IfNotPresent",
                                                "command": ["true"]}},
            ],
        }
    });
    wf
}

async fn dag(client: &Client, ns: &str) -> Value {
    let wfs = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &workflow_resource());
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    // Keyed by `<node id>|<task>`: the node name is `<workflow>.<task>`.
    let pod_seen = PodWatch::start(pods, |p| {
        let id = p
            .annotations()
            .get(cairn::workflow::node::ANNOTATION_NODE_ID)?;
        let task = p
            .annotations()
            .get(cairn::workflow::node::ANNOTATION_NODE_NAME)?
            .rsplit('.')
            .next()?;
        Some(format!("{id}|{task}"))
    });
    let wf_seen = WorkflowWatch::start(wfs.clone());
    // The executor reports a step (a WorkflowTaskResult named by the node id) when its command
    // exits, before the kubelet reports the pod Succeeded; the controller may act on either.
    let results_seen = WorkflowWatch::start(Api::<DynamicObject>::namespaced_with(
        client.clone(),
        ns,
        &task_result_resource(),
    ));
    let t0 = Instant::now();
    if let Err(e) = wfs
        .create(&PostParams::default(), &dag_workflow("dag-100"))
        .await
    {
        return json!({"blocked": format!("create Workflow dag-100: {e}")});
    }
    let (done, failed, last) = wf_seen.wait_done(1, BOUND).await;
    let Some(end) = last.filter(|_| done == 1) else {
        return json!({"blocked": format!("Workflow dag-100 did not finish within {} s", BOUND.as_secs())});
    };
    if failed > 0 {
        return json!({"blocked": format!("Workflow dag-100 failed: {:?}", wf_seen.failures())});
    }
    let reported = results_seen.snapshot_first();
    results_seen.stop();
    let mut first = HashMap::new();
    let mut finished = HashMap::new();
    let pod_done = pod_seen.snapshot_ended();
    for (key, created) in pod_seen.snapshot_first() {
        let Some((id, task)) = key.split_once('|') else {
            continue;
        };
        first.insert(task.to_string(), created);
        // A step ends at the first of: its task result seen, its `main` container seen
        // terminated (a step without the executor has no task result).
        let end = [reported.get(id), pod_done.get(&key)]
            .into_iter()
            .flatten()
            .min()
            .copied();
        if let Some(end) = end {
            finished.insert(task.to_string(), end);
        }
    }
    pod_seen.stop();
    wf_seen.stop();
    let duration = end.duration_since(t0).as_secs_f64();
    let mut lifetimes = Vec::new();
    let mut reaction_ms = Vec::new();
    let mut critical = 0.0;
    let mut missing = Vec::new();
    for level in 0..LEVELS {
        let mut level_max: f64 = 0.0;
        // The instant the level became ready: the last pod of the level before finished.
        let ready = if level == 0 {
            Some(t0)
        } else {
            (0..WIDTH)
                .map(|k| finished.get(&task_name(level - 1, k)).copied())
                .collect::<Option<Vec<_>>>()
                .and_then(|v| v.into_iter().max())
        };
        for j in 0..WIDTH {
            let t = task_name(level, j);
            match (first.get(&t), finished.get(&t)) {
                (Some(c), Some(f)) => {
                    let life = f.saturating_duration_since(*c).as_secs_f64();
                    lifetimes.push(life * 1000.0);
                    level_max = level_max.max(life);
                    if let Some(r) = ready {
                        reaction_ms.push(c.saturating_duration_since(r).as_secs_f64() * 1000.0);
                    }
                }
                _ => missing.push(t),
            }
        }
        critical += level_max;
    }
    let steps = (LEVELS * WIDTH) as f64;
    let mut v = json!({
        "shape": format!("{LEVELS} levels x {WIDTH} tasks, each task depends on every task of the level before"),
        "steps": LEVELS * WIDTH,
        "workflow_submit_to_succeeded_s": duration,
        "critical_path_of_pod_lifetimes_s": critical,
        "controller_overhead_per_step_ms": (duration - critical) * 1000.0 / steps,
        "controller_overhead_per_level_ms": (duration - critical) * 1000.0 / LEVELS as f64,
        "pod_lifetime_ms": stats(&mut lifetimes),
        "reaction_dependency_done_to_pod_created_ms": stats(&mut reaction_ms),
        "definition": "overhead per step = (workflow duration - critical path) / steps; critical \
                       path = sum over levels of the longest step lifetime (pod created -> the \
                       first of its WorkflowTaskResult seen and its main container seen terminated, \
                       both by watches); reaction = pod created - last step of the level before ended \
                       (submit for level 0)",
        "target": "overhead per step < 50 ms",
    });
    if !missing.is_empty() {
        v["pods_not_observed"] = json!(missing);
    }
    v
}

// ---------------------------------------------------------------------------------------------
// Watches

/// First-seen and finished instants of pods, keyed by `key(pod)`, from a watch.
struct PodWatch {
    state: Arc<Mutex<WatchState>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct WatchState {
    first: HashMap<String, Instant>,
    done: HashMap<String, Instant>,
    /// First seen with its `main` container terminated (or the pod over): the earliest moment
    /// anyone, a controller included, can know the step ended. The kubelet reports the pod's
    /// terminal phase only after the container is torn down, seconds later under load.
    ended: HashMap<String, Instant>,
    failed: HashMap<String, String>,
}

impl PodWatch {
    fn start(api: Api<Pod>, key: fn(&Pod) -> Option<String>) -> PodWatch {
        let state = Arc::new(Mutex::new(WatchState::default()));
        let s = state.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            loop {
                let event = match stream.try_next().await {
                    Ok(Some(e)) => e,
                    Ok(None) => break,
                    // The watcher re-lists by itself after an error.
                    Err(_) => continue,
                };
                let pod = match event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => p,
                    _ => continue,
                };
                let now = Instant::now();
                let Some(k) = key(&pod) else { continue };
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                let main_terminated = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.container_statuses.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.name == "main"
                                && c.state.as_ref().is_some_and(|st| st.terminated.is_some())
                        })
                    });
                let mut st = s.lock().expect("watch state");
                st.first.entry(k.clone()).or_insert(now);
                if main_terminated || phase == "Succeeded" || phase == "Failed" {
                    st.ended.entry(k.clone()).or_insert(now);
                }
                if phase == "Succeeded" || phase == "Failed" {
                    if phase == "Failed" {
                        st.failed.entry(k.clone()).or_insert(phase);
                    }
                    st.done.entry(k).or_insert(now);
                }
            }
        });
        PodWatch { state, task }
    }

    /// Waits until `n` keys finished: (finished, failed, instant of the last one).
    async fn wait_done(&self, n: usize, bound: Duration) -> (usize, usize, Option<Instant>) {
        wait_state(&self.state, n, bound).await
    }

    fn snapshot_first(&self) -> HashMap<String, Instant> {
        self.state.lock().expect("watch state").first.clone()
    }

    fn snapshot_done(&self) -> HashMap<String, Instant> {
        self.state.lock().expect("watch state").done.clone()
    }

    fn snapshot_ended(&self) -> HashMap<String, Instant> {
        self.state.lock().expect("watch state").ended.clone()
    }

    /// Per key: first seen (created) → finished, in ms.
    fn lifetimes_ms(&self) -> Vec<f64> {
        let st = self.state.lock().expect("watch state");
        st.done
            .iter()
            .filter_map(|(k, done)| {
                let first = st.first.get(k)?;
                Some(done.saturating_duration_since(*first).as_secs_f64() * 1000.0)
            })
            .collect()
    }

    fn stop(self) {
        self.task.abort();
    }
}

async fn wait_state(
    state: &Mutex<WatchState>,
    n: usize,
    bound: Duration,
) -> (usize, usize, Option<Instant>) {
    let deadline = Instant::now() + bound;
    loop {
        let (done, failed, last) = {
            let st = state.lock().expect("watch state");
            (
                st.done.len(),
                st.failed.len(),
                st.done.values().max().copied(),
            )
        };
        if done >= n || Instant::now() >= deadline {
            return (done, failed, last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Finished instants of Workflows (phase Succeeded, Failed or Error), from a watch.
struct WorkflowWatch {
    state: Arc<Mutex<WatchState>>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkflowWatch {
    fn start(api: Api<DynamicObject>) -> WorkflowWatch {
        let state = Arc::new(Mutex::new(WatchState::default()));
        let s = state.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            loop {
                let event = match stream.try_next().await {
                    Ok(Some(e)) => e,
                    Ok(None) => break,
                    Err(_) => continue,
                };
                let wf = match event {
                    watcher::Event::Apply(w) | watcher::Event::InitApply(w) => w,
                    _ => continue,
                };
                let now = Instant::now();
                let name = wf.name_any();
                let phase = wf.data["status"]["phase"].as_str().unwrap_or_default();
                let mut st = s.lock().expect("watch state");
                st.first.entry(name.clone()).or_insert(now);
                if matches!(phase, "Succeeded" | "Failed" | "Error") {
                    if phase != "Succeeded" {
                        let message = wf.data["status"]["message"].as_str().unwrap_or_default();
                        st.failed
                            .entry(name.clone())
                            .or_insert(format!("{name}: {phase}: {message}"));
                    }
                    st.done.entry(name).or_insert(now);
                }
            }
        });
        WorkflowWatch { state, task }
    }

    async fn wait_done(&self, n: usize, bound: Duration) -> (usize, usize, Option<Instant>) {
        wait_state(&self.state, n, bound).await
    }

    fn snapshot_first(&self) -> HashMap<String, Instant> {
        self.state.lock().expect("watch state").first.clone()
    }

    fn snapshot_done(&self) -> HashMap<String, Instant> {
        self.state.lock().expect("watch state").done.clone()
    }

    fn failures(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("watch state")
            .failed
            .values()
            .cloned()
            .collect()
    }

    fn stop(self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// RSS

struct RssSampler {
    samples: Arc<Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let s = samples.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid)["vm_rss_kib"].as_u64() {
                    s.lock().expect("samples").push(kib);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        RssSampler { samples, task }
    }

    async fn stop(self) -> Vec<u64> {
        self.task.abort();
        let _ = self.task.await;
        self.samples.lock().expect("samples").clone()
    }
}

/// What cairn's `cairn_workflow_*` metrics counted between two scrapes: every series' increase,
/// and for each timed series (`_sum`/`_count` pairs) its count and mean in ms.
fn metrics_delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>) -> Value {
    let delta =
        |k: &str| after.get(k).copied().unwrap_or(0.0) - before.get(k).copied().unwrap_or(0.0);
    let mut counters = serde_json::Map::new();
    let mut timed = serde_json::Map::new();
    let mut keys: Vec<&String> = after.keys().collect();
    keys.sort();
    for k in keys {
        let (name, labels) = match k.split_once('{') {
            Some((n, l)) => (n, format!("{{{l}")),
            None => (k.as_str(), String::new()),
        };
        if let Some(base) = name.strip_suffix("_sum") {
            let count = delta(&format!("{base}_count{labels}"));
            if count > 0.0 {
                let total = delta(k);
                timed.insert(
                    format!("{base}{labels}"),
                    json!({"count": count, "mean_ms": total * 1000.0 / count, "total_s": total}),
                );
            }
        } else if !name.ends_with("_count") {
            let d = delta(k);
            if d != 0.0 {
                counters.insert(k.clone(), json!(d));
            }
        }
    }
    json!({"counters": counters, "timed": timed})
}

fn rss_summary(idle: Value, samples: &[u64]) -> Value {
    let mut f: Vec<f64> = samples.iter().map(|&k| k as f64).collect();
    json!({
        "before_kib": idle,
        "sample_interval_ms": 250,
        "vm_rss_kib": stats(&mut f),
    })
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss_kib(pid: u32) -> Value {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    json!({"vm_rss_kib": field("VmRSS:"), "vm_hwm_kib": field("VmHWM:")})
}

// ---------------------------------------------------------------------------------------------
// The cairn process, namespaces, facts

fn task_result_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "WorkflowTaskResult",
    ))
}

fn workflow_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "Workflow",
    ))
}

async fn executor_image_loaded(client: &Client, image: &str) -> bool {
    let Ok(nodes) = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
    else {
        return false;
    };
    nodes.items.iter().any(|node| {
        node.status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .any(|i| i.names.iter().flatten().any(|n| n == image))
    })
}

struct Server {
    child: Child,
    data: tempfile::TempDir,
    addr: SocketAddr,
}

impl Server {
    fn start(opts: &Options, namespaces: &[&str]) -> Result<Server, String> {
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = data.path().join("cairn.toml");
        let list = namespaces
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let workers = opts
            .workers
            .map(|w| format!("workers = {w}\n"))
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"{addr}\"\n\n[gitops]\nenabled = false\n\n\
                 [workflow]\nnamespaces = [{list}]\n{workers}"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(data.path().join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new(&opts.bin)
            .args(["server", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .env_remove("CAIRN_CONFIG")
            .env("HOME", data.path())
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", opts.bin))?;
        Ok(Server { child, data, addr })
    }

    /// Waits for `/readyz` (store and cluster reachable).
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(r) = http
                .get(format!("http://{}/readyz", self.addr))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("cairn exited with {status}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("not ready within 120 s".into())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `cairn_workflow_*` samples of `/metrics` (sums, counts, totals), by series.
    async fn metrics(&self) -> HashMap<String, f64> {
        let text = match reqwest::get(format!("http://{}/metrics", self.addr)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.lines()
            .filter(|l| l.starts_with("cairn_workflow_") && !l.contains("quantile="))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Namespaces the benchmark created, deleted (without waiting) when dropped.
struct Namespaces(Vec<String>);

impl Namespaces {
    async fn create(&mut self, client: &Client, name: &str) -> Result<(), kube::Error> {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        self.0.push(name.to_string());
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("kubectl")
                .args([
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

async fn cluster() -> Result<Client, String> {
    let client = cairn::k8s::client().await.map_err(|e| e.to_string())?;
    cairn::k8s::ping(&client, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn machine_facts() -> Value {
    let kubectl = command_line("kubectl", &["version", "-o", "json"])
        .and_then(|s| serde_json::from_str::<Value>(&s).ok());
    json!({
        "date": jiff::Timestamp::now().to_string(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "loadavg_at_start": std::fs::read_to_string("/proc/loadavg").ok().map(|s| s.trim().to_string()),
        "mem_total": std::fs::read_to_string("/proc/meminfo").ok()
            .and_then(|m| m.lines().next().map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))),
        "kernel": command_line("uname", &["-r"]),
        "cairn_version": cairn::VERSION,
        "git_commit": cairn::GIT_COMMIT,
        "rustc": command_line("rustc", &["--version"]),
        "kubectl_client": kubectl.as_ref().map(|k| k["clientVersion"]["gitVersion"].clone()),
        "kubernetes_server": kubectl.as_ref().map(|k| k["serverVersion"]["gitVersion"].clone()),
        "note": "a shared 2-core lab machine: other engineers' builds and tests run at the same time",
    })
}

/// p50/p90/p99/min/max/mean of samples (nearest rank).
fn stats(samples: &mut [f64]) -> Value {
    if samples.is_empty() {
        return Value::Null;
    }
    samples.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let i = ((p / 100.0) * samples.len() as f64).ceil() as usize;
        samples[i.clamp(1, samples.len()) - 1]
    };
    json!({
        "count": samples.len(),
        "min": samples[0],
        "p50": rank(50.0),
        "p90": rank(90.0),
        "p99": rank(99.0),
        "max": samples[samples.len() - 1],
        "mean": samples.iter().sum::<f64>() / samples.len() as f64,
    })
}

fn unique() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}", millis % 1_000_000)
}

fn summary(r: &Value) -> String {
    if let Some(s) = r.get("skipped") {
        return format!("workflow benchmark {s}");
    }
    if let Some(b) = r.get("blocked") {
        return format!("workflow benchmark BLOCKED: {b}");
    }
    let f = |v: &Value| match v.as_f64() {
        Some(x) => format!("{x:.2}"),
        None => "n/a".to_string(),
    };
    let blocked = |v: &Value| {
        v.get("blocked")
            .map(|b| format!(" BLOCKED: {}", b.as_str().unwrap_or_default()))
            .unwrap_or_default()
    };
    let (p, w, d) = (&r["bare_pods"], &r["workflows_300"], &r["dag_100"]);
    format!(
        "workflow benchmark ({} cores, load {}):\n\
         {COUNT} bare pods: {} pods/min, pod created->Succeeded p50 {} ms{}\n\
         {COUNT} one-pod workflows: {} workflows/min -> ratio {} (target >= 0.8); submit->first pod p50 {} ms, p99 {} ms; \
         pod created->Succeeded p50 {} ms; pod Succeeded->workflow done p50 {} ms{}\n\
         100-node DAG: {} s, critical path {} s -> overhead {} ms/step (target < 50 ms); reaction p50 {} ms{}\n\
         cairn RSS during the {COUNT} workflows: max {} KiB",
        r["machine"]["cores"],
        r["machine"]["loadavg_at_start"].as_str().unwrap_or("?"),
        f(&p["pods_per_min"]),
        f(&p["pod_created_to_succeeded_ms"]["p50"]),
        blocked(p),
        f(&w["workflows_per_min"]),
        f(&w["ratio_vs_bare_pods"]),
        f(&w["submit_to_first_pod_created_ms"]["p50"]),
        f(&w["submit_to_first_pod_created_ms"]["p99"]),
        f(&w["pod_created_to_succeeded_ms"]["p50"]),
        f(&w["pod_succeeded_to_workflow_completed_ms"]["p50"]),
        blocked(w),
        f(&d["workflow_submit_to_succeeded_s"]),
        f(&d["critical_path_of_pod_lifetimes_s"]),
        f(&d["controller_overhead_per_step_ms"]),
        f(&d["reaction_dependency_done_to_pod_created_ms"]["p50"]),
        blocked(d),
        r["rss_during_300"]["vm_rss_kib"]["max"],
    )
}
