//! Events on the lab: webhook-to-Workflow-created latency and cairn's memory with 100 Sensors.
//!
//! A real `cairn server` (this build's release binary) runs against the lab with one EventSource
//! of 100 webhook endpoints on a dedicated loopback port and 100 Sensors, one per endpoint, each
//! with an `argoWorkflow` trigger. The workflow controller watches another namespace, so the
//! Workflows are only created, never run: the number measured is the event path alone.
//!
//! Measured:
//! - latency from the start of `POST /e0` to the Workflow's ADDED event on a watch, for
//!   [`SEQUENTIAL`] events one at a time and for a burst of [`BURST`] events posted at once
//!   (p50, p90, p99, max);
//! - the server's RSS (`VmRSS`, `VmHWM`) once the 100 Sensors run, and after the run.
//!
//! `make bench` runs this with the lab up and writes JSON to `bench-results/events_lab.json` (the
//! path after `--output`). Issue 6's target: p99 < 500 ms. Numbers are reported, not asserted.

#[path = "../tests/common/lab.rs"]
mod lab;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn::workflow::types::Workflow;
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher;
use serde_json::{Value, json};

/// Sensors (and endpoints).
const SENSORS: usize = 100;
/// Events posted one at a time.
const SEQUENTIAL: usize = 200;
/// Events posted at once.
const BURST: usize = 100;
/// Bound of every wait.
const BOUND: Duration = Duration::from_secs(120);

fn event_source(port: u16) -> String {
    let mut s = String::from(
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata:\n  name: bench\nspec:\n  webhook:\n",
    );
    for i in 0..SENSORS {
        s.push_str(&format!(
            "    e{i}:\n      port: \"{port}\"\n      endpoint: /e{i}\n      method: POST\n"
        ));
    }
    s
}

fn sensors() -> String {
    (0..SENSORS)
        .map(|i| {
            format!(
                "apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata:
  name: s{i}
spec:
  dependencies:
    - name: dep
      eventSourceName: bench
      eventName: e{i}
      filters:
        data:
          - path: body.n
            type: string
            value: [\"^[0-9]+$\"]
  triggers:
    - template:
        name: submit
        argoWorkflow:
          operation: submit
          source:
            resource:
              apiVersion: argoproj.io/v1alpha1
              kind: Workflow
              metadata:
                generateName: bench-s{i}-
                labels:
                  cairn-bench: events
              spec:
                entrypoint: main
                arguments:
                  parameters:
                    - name: n
                      value: placeholder
                templates:
                  - name: main
                    suspend:
                      duration: \"1\"
          parameters:
            - src:
                dependencyName: dep
                dataKey: body.n
              dest: spec.arguments.parameters.0.value
"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Kilobytes of `field` (`VmRSS`, `VmHWM`) in /proc/<pid>/status.
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn memory(pid: u32) -> Value {
    json!({
        "vm_rss_mib": proc_kb(pid, "VmRSS:").map(|k| k as f64 / 1024.0),
        "vm_hwm_mib": proc_kb(pid, "VmHWM:").map(|k| k as f64 / 1024.0),
    })
}

fn percentiles(mut ms: Vec<f64>) -> Value {
    if ms.is_empty() {
        return Value::Null;
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    json!({
        "samples": ms.len(),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": at(1.0),
        "mean_ms": ms.iter().sum::<f64>() / ms.len() as f64,
    })
}

/// Arrival times of Workflows by their `n` argument.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn watch_workflows(api: Api<DynamicObject>, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = watcher::Config::default().labels("cairn-bench=events");
        let mut stream = watcher::watcher(api, config).boxed();
        while let Some(event) = stream.next().await {
            let now = Instant::now();
            let objects = match event {
                Ok(watcher::Event::Apply(wf) | watcher::Event::InitApply(wf)) => vec![wf],
                Ok(_) => continue,
                Err(e) => {
                    eprintln!("events_lab: workflow watch: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            for wf in objects {
                if let Some(n) = wf.data["spec"]["arguments"]["parameters"][0]["value"].as_str() {
                    seen.lock()
                        .expect("lock")
                        .entry(n.to_owned())
                        .or_insert(now);
                }
            }
        }
    })
}

async fn wait_seen(seen: &Seen, n: &str) -> Option<Instant> {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(at) = seen.lock().expect("lock").get(n) {
            return Some(*at);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn run() -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ns = lab::TestNamespace::create("cairn-bench-events");
    let port = lab::free_port("127.0.0.1");
    lab::install_crds();
    lab::kubectl(
        &["apply", "-n", &ns.0, "-f", "-"],
        Some(&event_source(port)),
    );
    lab::kubectl(&["apply", "-n", &ns.0, "-f", "-"], Some(&sensors()));
    let hook = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // The workflow controller watches a namespace that does not exist: Workflows are created
    // by the sensors and left alone.
    let server = lab::Server::start(
        &format!(
            "namespaces = [\"cairn-bench-events-none\"]\n\n[events]\nnamespaces = [\"{}\"]\n",
            ns.0
        ),
        &[hook],
    )
    .await;
    let pid = server.pid();
    let resource = ApiResource::erase::<Workflow>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(lab::client().await, &ns.0, &resource);
    let seen: Seen = Arc::default();
    let watch = watch_workflows(api, seen.clone());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("http://{hook}/e0");

    // Warm-up: the sensors start consuming once their dependencies exist; wait for one event
    // to go through.
    let warm = Instant::now();
    let mut warmed = false;
    while warm.elapsed() < BOUND {
        let n = format!("9{}", warm.elapsed().as_millis());
        let ok = http
            .post(&url)
            .json(&json!({ "n": n }))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok
            && tokio::time::timeout(Duration::from_secs(5), wait_seen(&seen, &n))
                .await
                .ok()
                .flatten()
                .is_some()
        {
            warmed = true;
            break;
        }
    }
    if !warmed {
        return json!({"error": "no Workflow was created within the bound", "log_tail": tail(&server.log())});
    }
    let measured = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let memory_idle = memory(pid);

    let mut sequential = Vec::new();
    for i in 0..SEQUENTIAL {
        let n = i.to_string();
        let start = Instant::now();
        let sent = http.post(&url).json(&json!({ "n": n })).send().await;
        if !sent.is_ok_and(|r| r.status().is_success()) {
            continue;
        }
        if let Some(at) = wait_seen(&seen, &n).await {
            sequential.push(at.duration_since(start).as_secs_f64() * 1000.0);
        }
    }

    let burst_start = Instant::now();
    let posts = (0..BURST).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let n = (100_000 + i).to_string();
            let sent = http.post(&url).json(&json!({ "n": n })).send().await;
            sent.is_ok_and(|r| r.status().is_success()).then_some(n)
        }
    });
    let accepted: Vec<String> = futures::future::join_all(posts)
        .await
        .into_iter()
        .flatten()
        .collect();
    let mut burst = Vec::new();
    for n in &accepted {
        if let Some(at) = wait_seen(&seen, n).await {
            burst.push(at.duration_since(burst_start).as_secs_f64() * 1000.0);
        }
    }
    let memory_after = memory(pid);
    watch.abort();
    json!({
        "sensors": SENSORS,
        "sequential": percentiles(sequential),
        "burst": {
            "posted": BURST,
            "accepted": accepted.len(),
            "latency_from_burst_start": percentiles(burst),
        },
        "memory_with_100_sensors_idle": memory_idle,
        "memory_after_run": memory_after,
        "run_after_warm_up_s": measured.elapsed().as_secs_f64(),
        "what": "POST start to the Workflow's ADDED event on a watch; release binary, embedded bus, lab cluster on this machine",
    })
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` also runs bench targets, without `--bench`: measure nothing then.
    if !args.iter().any(|a| a == "--bench") {
        println!("events_lab benchmark: run it with `make bench` (cargo bench, lab up)");
        return;
    }
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench-results/events_lab.json".to_string());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let result = runtime.block_on(run());
    let results = json!({
        "benchmark": "events_lab",
        "cairn_version": cairn::VERSION,
        "git_commit": cairn::GIT_COMMIT,
        "result": result,
        "total_s": started.elapsed().as_secs_f64(),
    });
    let text = serde_json::to_string_pretty(&results).expect("json");
    if let Some(dir) = std::path::Path::new(&output).parent() {
        std::fs::create_dir_all(dir).expect("create output dir");
    }
    std::fs::write(&output, &text).expect("write results");
    println!("{text}\nwritten to {output}");
}
