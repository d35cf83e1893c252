//! GitOps benchmark (issue 4): a real `cairn server` against the lab, Git served from a local
//! repository (`file://`), compared with `kubectl apply --server-side` in the same run.
//!
//! Measures, and writes to `bench-results/gitops.json` (the path after `--output`):
//! - (a) cold sync of one Application of 500 objects (200 ConfigMaps, 150 headless Services,
//!   150 Deployments of the lab's `pause` image, 5 of them with one replica, the rest with
//!   zero): wall time from the Application's creation to `Synced` with the operation
//!   `Succeeded`, on a cairn started a moment before with an empty data dir (no Git mirror, no
//!   caches); separately the controller's own operation duration (`.status.operationState`
//!   `startedAt` → `finishedAt`); both as ratios to `kubectl apply --server-side` of the same
//!   files into a fresh namespace;
//! - (b) a no-op resync of the same revision (hard refresh + a sync operation written to
//!   `.operation`, as `argocd app sync` does) against a `kubectl apply --server-side` re-apply;
//! - (c) webhook push → applied latency over 50 pushes: commit a change to one ConfigMap of a
//!   small automated app (10 ConfigMaps), POST a signed GitHub push event to `/api/webhook`, poll
//!   the live ConfigMap every 20 ms until the new value is there;
//! - (d) cairn's RSS (`VmRSS`, `VmHWM` of `/proc/<pid>/status`) with 200 small automated apps
//!   synced, on a fresh cairn process.
//!
//! Numbers are reported, never asserted. A measurement a controller bug prevents is recorded as
//! `"blocked": "<error>"` and the others go on. Without `--bench` (as `cargo test --all-targets`
//! runs bench targets) it measures nothing. Every namespace it creates starts with `bx-g-` and is
//! deleted at the end, however the run ends.
#![allow(
    clippy::disallowed_methods,
    reason = "the namespace guard's Drop runs kubectl synchronously after the runtime is gone"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const WEBHOOK_SECRET: &str = "bench-webhook-secret";
const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10.1";
/// Sizes of the big app (500 objects in all).
const CONFIGMAPS: usize = 200;
const SERVICES: usize = 150;
const DEPLOYMENTS: usize = 150;
/// Deployments with one replica (the rest have zero): a few real pods keep the app realistic
/// without loading the single lab node.
const RUNNING_DEPLOYMENTS: usize = 5;
const PUSHES: usize = 50;
const SMALL_APPS: usize = 200;
/// Bound of every wait; a wait that runs out is reported, never retried silently.
const BOUND: Duration = Duration::from_secs(600);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("gitops benchmark: run it with `make bench` (cargo bench --bench gitops)");
        return;
    }
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench-results/gitops.json".to_string());
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let results = runtime.block_on(run());
    let text = serde_json::to_string_pretty(&results).expect("json");
    if let Some(dir) = Path::new(&output).parent() {
        std::fs::create_dir_all(dir).expect("create output dir");
    }
    std::fs::write(&output, &text).expect("write results");
    println!("{}", summary(&results));
    println!("written to {output}");
}

async fn run() -> Value {
    let started = Instant::now();
    let mut results = json!({
        "benchmark": "gitops",
        "machine": machine_facts(),
    });
    let client = match cluster().await {
        Ok(c) => c,
        Err(e) => {
            results["skipped"] = json!(format!("skipped: no cluster ({e})"));
            return results;
        }
    };
    let id = unique();
    let mut guard = Namespaces(Vec::new());
    let control = format!("bx-g-ctl-{id}");
    let kubectl_ns = format!("bx-g-kubectl-{id}");
    let cairn_ns = format!("bx-g-big-{id}");
    let hook_ns = format!("bx-g-hook-{id}");
    let many_ns = format!("bx-g-many-{id}");
    for ns in [&control, &kubectl_ns, &cairn_ns, &hook_ns, &many_ns] {
        if let Err(e) = guard.create(&client, ns).await {
            results["blocked"] = json!(format!("cannot create namespace {ns}: {e}"));
            return results;
        }
    }
    let repo = Repo::new();
    write_big_app(&repo);
    write_small_app(&repo, 0);
    write_many_apps(&repo);
    let revision = repo.commit("benchmark manifests");
    results["setup"] = json!({
        "objects_in_big_app": CONFIGMAPS + SERVICES + DEPLOYMENTS,
        "configmaps": CONFIGMAPS, "services_headless": SERVICES, "deployments": DEPLOYMENTS,
        "deployments_with_one_replica": RUNNING_DEPLOYMENTS,
        "deployment_image": PAUSE_IMAGE,
        "git": "file:// repository on local disk",
        "cairn_config": {"server.namespace": &control, "gitops.workers": 4,
                         "gitops.poll_interval": "180s", "gitops.resync_interval": "30s"},
        "note": "the control namespace is set as [server] namespace, not [gitops] namespace: \
                 with only [gitops] namespace set, the API (and /api/webhook) lists \
                 Applications in [server] namespace and a push refreshes nothing",
    });

    let mut server = match Server::start(&control) {
        Ok(s) => s,
        Err(e) => {
            results["blocked"] = json!(format!("cairn server did not start: {e}"));
            return results;
        }
    };
    if let Err(e) = server.wait_ready().await {
        results["blocked"] = json!(format!(
            "cairn server not ready: {e}\n{}",
            server.log_tail()
        ));
        return results;
    }
    let rss_idle = rss(server.pid());

    // (a) + (b)
    let kubectl_cold = kubectl_apply(&repo.path.join("big"), &kubectl_ns);
    let apps = Api::<DynamicObject>::namespaced_with(client.clone(), &control, &app_resource());
    let calls = api_counts();
    let mut cold = cold_sync(&apps, &repo, &cairn_ns, &kubectl_cold).await;
    cold["api_requests"] = api_delta(&calls, &api_counts());
    results["cold_sync"] = with_log(cold.clone(), &server);
    let kubectl_noop = kubectl_apply(&repo.path.join("big"), &kubectl_ns);
    results["noop_resync"] = if cold.get("blocked").is_some() {
        json!({"blocked": "the cold sync did not complete"})
    } else {
        let calls = api_counts();
        let mut noop = noop_resync(&apps, &revision, &kubectl_noop).await;
        noop["api_requests"] = api_delta(&calls, &api_counts());
        with_log(noop, &server)
    };
    let rss_after_big = rss(server.pid());

    // (c)
    let calls = api_counts();
    let mut hook = webhook_latency(&client, &apps, &repo, &hook_ns, &server).await;
    hook["api_requests"] = api_delta(&calls, &api_counts());
    results["webhook_push_to_applied"] = with_log(hook, &server);
    results["rss_first_process"] = json!({
        "after_start_kib": rss_idle, "after_500_object_app_and_webhook_kib": rss(server.pid()),
        "after_500_object_app_kib": rss_after_big,
    });
    let _ = apps.delete("bench-big", &DeleteParams::default()).await;
    let _ = apps.delete("bench-hook", &DeleteParams::default()).await;
    server.stop();

    // (d) a fresh process, so the RSS is that of 200 apps and not of the earlier phases.
    results["rss_200_apps"] = match Server::start(&control) {
        Ok(mut second) => {
            let r = match second.wait_ready().await {
                Ok(()) => many_apps_rss(&apps, &repo.url(), &many_ns, &second).await,
                Err(e) => json!({"blocked": format!("second cairn server not ready: {e}")}),
            };
            let r = with_log(r, &second);
            second.stop();
            r
        }
        Err(e) => json!({"blocked": format!("second cairn server did not start: {e}")}),
    };
    results["total_s"] = json!(started.elapsed().as_secs_f64());
    drop(guard);
    results
}

/// Adds the server log's tail to a blocked measurement.
fn with_log(mut v: Value, server: &Server) -> Value {
    if v.get("blocked").is_some() {
        v["server_log_tail"] = json!(server.log_tail());
    }
    v
}

async fn cold_sync(apps: &Api<DynamicObject>, repo: &Repo, dest: &str, kubectl: &Timed) -> Value {
    let app = application("bench-big", &repo.url(), "big", dest);
    let t0 = Instant::now();
    if let Err(e) = apps.create(&PostParams::default(), &app).await {
        return json!({"blocked": format!("create Application bench-big: {e}")});
    }
    let status = match wait_app(apps, "bench-big", None).await {
        Ok(s) => s,
        Err(e) => return json!({"blocked": e}),
    };
    let wall = t0.elapsed().as_secs_f64();
    let op = operation_seconds(&status);
    json!({
        "kubectl_apply_server_side_s": kubectl.value(),
        "kubectl_error": kubectl.error(),
        "cairn_create_to_synced_s": wall,
        "cairn_operation_s": op,
        "operation_timestamps": {
            "startedAt": status["operationState"]["startedAt"],
            "finishedAt": status["operationState"]["finishedAt"],
            "resolution": "as written by the controller (RFC 3339)"},
        "ratio_create_to_synced_vs_kubectl": kubectl.ratio(wall),
        "ratio_operation_vs_kubectl": op.and_then(|o| kubectl.ratio(o)),
        "synced_resources": status["operationState"]["syncResult"]["resources"]
            .as_array().map(Vec::len),
        "target": "ratio <= 1.1",
    })
}

async fn noop_resync(apps: &Api<DynamicObject>, revision: &str, kubectl: &Timed) -> Value {
    let before = match apps.get("bench-big").await {
        Ok(a) => a.data["status"]["operationState"]["startedAt"].clone(),
        Err(e) => return json!({"blocked": format!("get Application bench-big: {e}")}),
    };
    let patch = json!({
        "metadata": {"annotations": {"argocd.argoproj.io/refresh": "hard"}},
        "operation": {"sync": {"revision": revision, "prune": true},
                      "initiatedBy": {"username": "bench"}},
    });
    let t0 = Instant::now();
    if let Err(e) = apps
        .patch("bench-big", &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        return json!({"blocked": format!("patch .operation of bench-big: {e}")});
    }
    let status = match wait_app(apps, "bench-big", Some(&before)).await {
        Ok(s) => s,
        Err(e) => return json!({"blocked": e}),
    };
    let wall = t0.elapsed().as_secs_f64();
    let op = operation_seconds(&status);
    json!({
        "kubectl_reapply_server_side_s": kubectl.value(),
        "kubectl_error": kubectl.error(),
        "cairn_request_to_synced_s": wall,
        "cairn_operation_s": op,
        "ratio_request_to_synced_vs_kubectl": kubectl.ratio(wall),
        "ratio_operation_vs_kubectl": op.and_then(|o| kubectl.ratio(o)),
        "how": "merge patch of annotation argocd.argoproj.io/refresh=hard and .operation.sync \
                (same revision), as `argocd app sync --force=false` writes it",
        "target": "ratio <= 1.1",
    })
}

async fn webhook_latency(
    client: &Client,
    apps: &Api<DynamicObject>,
    repo: &Repo,
    dest: &str,
    server: &Server,
) -> Value {
    let addr = server.addr;
    // cairn's RSS every 10 pushes: a growth with the number of pushes is a leak.
    let mut rss_by_push = vec![json!({"push": 0, "rss": rss(server.pid())})];
    let app = application("bench-hook", &repo.url(), "small", dest);
    if let Err(e) = apps.create(&PostParams::default(), &app).await {
        return json!({"blocked": format!("create Application bench-hook: {e}")});
    }
    if let Err(e) = wait_app(apps, "bench-hook", None).await {
        return json!({"blocked": e});
    }
    let http = reqwest::Client::new();
    let cms = Api::<ConfigMap>::namespaced(client.clone(), dest);
    let mut latencies = Vec::new();
    let mut post_ms = Vec::new();
    let mut failures = Vec::new();
    let mut misses = 0;
    let mut refreshed_none = 0;
    for i in 1..=PUSHES {
        write_small_app(repo, i);
        let sha = repo.commit(&format!("push {i}"));
        let body = serde_json::to_vec(&json!({
            "ref": "refs/heads/main",
            "after": sha,
            "repository": {"clone_url": repo.url(), "default_branch": "main"},
            "commits": [{"id": sha, "modified": ["small/w-0.yaml"]}],
        }))
        .expect("json");
        let signature = hex::encode(cairn::gitops::webhook::hmac_sha256(
            WEBHOOK_SECRET.as_bytes(),
            &body,
        ));
        let t0 = Instant::now();
        let resp = http
            .post(format!("http://{addr}/api/webhook"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-hub-signature-256", format!("sha256={signature}"))
            .body(body)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {
                if let Ok(answer) = r.json::<Value>().await
                    && answer["refreshed"] == 0
                {
                    refreshed_none += 1;
                }
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                failures.push(format!("push {i}: webhook answered {status}: {text}"));
                continue;
            }
            Err(e) => {
                failures.push(format!("push {i}: webhook request failed: {e}"));
                continue;
            }
        }
        post_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        let want = format!("push-{i}");
        let deadline = t0 + Duration::from_secs(60);
        let mut seen = false;
        while Instant::now() < deadline {
            if let Ok(cm) = cms.get("w-0").await
                && cm.data.as_ref().and_then(|d| d.get("v")) == Some(&want)
            {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if i % 10 == 0 {
            rss_by_push.push(json!({"push": i, "rss": rss(server.pid())}));
        }
        if seen {
            latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            misses = 0;
        } else {
            failures.push(format!("push {i}: value {want} not applied within 60 s"));
            misses += 1;
            // Three in a row: the webhook path is broken, not slow; the rest would only add
            // three minutes each.
            if misses == 3 {
                failures.push(format!(
                    "stopped after push {i}: three pushes in a row not applied"
                ));
                break;
            }
        }
    }
    let mut v = json!({
        "pushes": PUSHES,
        "applied": latencies.len(),
        "webhook_answers_refreshed_0": refreshed_none,
        "poll_interval_ms": 20,
        "push_to_applied_ms": stats(&mut latencies),
        "webhook_response_ms": stats(&mut post_ms),
        "app": "10 ConfigMaps, automated sync (prune), one ConfigMap changed per push",
        "target": "p50 < 1000 ms",
        "rss_by_push": rss_by_push,
    });
    if !failures.is_empty() {
        v["failures"] = json!(failures);
        if latencies.is_empty() {
            v["blocked"] = json!(failures.first());
        }
    }
    v
}

async fn many_apps_rss(
    apps: &Api<DynamicObject>,
    repo_url: &str,
    dest: &str,
    server: &Server,
) -> Value {
    let before = rss(server.pid());
    let t0 = Instant::now();
    for i in 0..SMALL_APPS {
        let name = format!("bench-r-{i:03}");
        let app = application(&name, repo_url, &format!("many/app-{i:03}"), dest);
        if let Err(e) = apps.create(&PostParams::default(), &app).await {
            return json!({"blocked": format!("create Application {name}: {e}")});
        }
    }
    let created_s = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + BOUND;
    let mut synced = 0;
    while Instant::now() < deadline {
        let list = apps
            .list(&ListParams::default().labels("bench.cairn.dev/kind=many"))
            .await;
        synced = list
            .map(|l| {
                l.items
                    .iter()
                    .filter(|a| {
                        a.data["status"]["sync"]["status"] == "Synced"
                            && a.data["status"]["operationState"]["phase"] == "Succeeded"
                    })
                    .count()
            })
            .unwrap_or(0);
        if synced == SMALL_APPS {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let all_synced_s = t0.elapsed().as_secs_f64();
    let at_synced = rss(server.pid());
    // One resync interval later: the steady state, every app compared once more.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let steady = rss(server.pid());
    let mut v = json!({
        "apps": SMALL_APPS,
        "objects_per_app": 2,
        "apps_synced": synced,
        "create_all_s": created_s,
        "create_to_all_synced_s": all_synced_s,
        "rss_before_apps_kib": before,
        "rss_all_synced_kib": at_synced,
        "rss_one_resync_later_kib": steady,
    });
    if synced < SMALL_APPS {
        v["blocked"] = json!(format!(
            "only {synced} of {SMALL_APPS} apps Synced within {} s",
            BOUND.as_secs()
        ));
    }
    v
}

/// Seconds between `.status.operationState.startedAt` and `finishedAt`.
fn operation_seconds(status: &Value) -> Option<f64> {
    let ts = |k: &str| {
        status["operationState"][k]
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
    };
    let (start, end) = (ts("startedAt")?, ts("finishedAt")?);
    Some(end.duration_since(start).as_secs_f64())
}

/// Polls the Application every 50 ms until it is Synced with its operation Succeeded (and, with
/// `previous`, an operation started after that one).
async fn wait_app(
    apps: &Api<DynamicObject>,
    name: &str,
    previous: Option<&Value>,
) -> Result<Value, String> {
    let deadline = Instant::now() + BOUND;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(app) = apps.get(name).await {
            let st = &app.data["status"];
            let new_op = previous.is_none_or(|p| &st["operationState"]["startedAt"] != p);
            if new_op
                && st["sync"]["status"] == "Synced"
                && st["operationState"]["phase"] == "Succeeded"
                && app.data.get("operation").is_none_or(Value::is_null)
            {
                return Ok(st.clone());
            }
            if st["operationState"]["phase"] == "Failed" || st["operationState"]["phase"] == "Error"
            {
                return Err(format!(
                    "Application {name}: operation {}: {}",
                    st["operationState"]["phase"], st["operationState"]["message"]
                ));
            }
            last = json!({"sync": st["sync"], "operationState.phase": st["operationState"]["phase"],
                          "operationState.message": st["operationState"]["message"],
                          "conditions": st["conditions"]});
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "Application {name} not Synced/Succeeded within {} s; last: {last}",
        BOUND.as_secs()
    ))
}

fn app_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "Application",
    ))
}

/// An automated (prune, no self-heal) Application of `path` in the bench repository.
fn application(name: &str, repo_url: &str, path: &str, dest: &str) -> DynamicObject {
    let kind = if name.starts_with("bench-r-") {
        "many"
    } else {
        "single"
    };
    let mut obj = DynamicObject::new(name, &app_resource());
    obj.metadata.labels = Some([("bench.cairn.dev/kind".to_string(), kind.to_string())].into());
    obj.data = json!({
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
            "syncPolicy": {"automated": {"prune": true}},
        }
    });
    obj
}

// ---------------------------------------------------------------------------------------------
// Manifests

fn write_big_app(repo: &Repo) {
    let mut cms = String::new();
    for i in 0..CONFIGMAPS {
        cms.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\n  labels:\n    \
             bench: big\ndata:\n  v: \"{i}\"\n  payload: \"{}\"\n",
            "x".repeat(64)
        ));
    }
    let mut svcs = String::new();
    for i in 0..SERVICES {
        svcs.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:03}\n  labels:\n    \
             bench: big\nspec:\n  clusterIP: None\n  selector:\n    app: d-{i:03}\n  ports:\n  \
             - name: http\n    port: 80\n    targetPort: 8080\n"
        ));
    }
    let mut deps = String::new();
    for i in 0..DEPLOYMENTS {
        let replicas = usize::from(i < RUNNING_DEPLOYMENTS);
        deps.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d-{i:03}\n  labels:\n    \
             bench: big\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      \
             app: d-{i:03}\n  template:\n    metadata:\n      labels:\n        app: d-{i:03}\n    \
             spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n      - name: main\n        \
             image: {PAUSE_IMAGE}\n        imagePullPolicy: IfNotPresent\n"
        ));
    }
    repo.write("big/configmaps.yaml", &cms);
    repo.write("big/services.yaml", &svcs);
    repo.write("big/deployments.yaml", &deps);
}

/// The webhook app: 10 ConfigMaps; `w-0` carries the push number.
fn write_small_app(repo: &Repo, push: usize) {
    for i in 0..10 {
        let v = if i == 0 {
            format!("push-{push}")
        } else {
            "static".to_string()
        };
        repo.write(
            &format!("small/w-{i}.yaml"),
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: w-{i}\ndata:\n  v: \"{v}\"\n"
            ),
        );
    }
}

fn write_many_apps(repo: &Repo) {
    for i in 0..SMALL_APPS {
        let mut s = String::new();
        for part in ["a", "b"] {
            s.push_str(&format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: r{i:03}-{part}\ndata:\n  \
                 app: \"{i}\"\n"
            ));
        }
        repo.write(&format!("many/app-{i:03}/cms.yaml"), &s);
    }
}

// ---------------------------------------------------------------------------------------------
// kubectl, Git, the cairn process

/// A timed kubectl run: seconds, or what went wrong.
struct Timed(Result<f64, String>);

impl Timed {
    fn value(&self) -> Option<f64> {
        self.0.as_ref().ok().copied()
    }
    fn error(&self) -> Option<&str> {
        self.0.as_ref().err().map(String::as_str)
    }
    fn ratio(&self, cairn: f64) -> Option<f64> {
        self.value().filter(|k| *k > 0.0).map(|k| cairn / k)
    }
}

fn kubectl_apply(dir: &Path, ns: &str) -> Timed {
    let t0 = Instant::now();
    let out = Command::new("kubectl")
        .args([
            "apply",
            "--server-side",
            "--field-manager=bench-kubectl",
            "-n",
            ns,
            "-f",
        ])
        .arg(dir)
        .stdout(Stdio::null())
        .output();
    let elapsed = t0.elapsed().as_secs_f64();
    Timed(match out {
        Ok(o) if o.status.success() => Ok(elapsed),
        Ok(o) => Err(format!(
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("kubectl did not run: {e}")),
    })
}

struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.com",
        ])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repo");
        std::fs::create_dir_all(&path).expect("mkdir");
        git(&path, &["init", "-q", "-b", "main"]);
        Repo { _dir: dir, path }
    }
    fn url(&self) -> String {
        format!("file://{}", self.path.display())
    }
    fn write(&self, rel: &str, content: &str) {
        let p = self.path.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    fn commit(&self, message: &str) -> String {
        git(&self.path, &["add", "-A"]);
        git(
            &self.path,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(&self.path, &["rev-parse", "HEAD"])
    }
}

struct Server {
    child: Child,
    data: tempfile::TempDir,
    addr: SocketAddr,
}

impl Server {
    fn start(control: &str) -> Result<Server, String> {
        let data = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = data.path().join("cairn.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"{addr}\"\nnamespace = \"{control}\"\n\n[gitops]\n\
                 poll_interval = \"180s\"\nresync_interval = \"30s\"\nworkers = 4\n\n\
                 [workflow]\nnamespaces = [\"{control}\"]\n\n\
                 [webhook]\ngithub_secret = \"{WEBHOOK_SECRET}\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(data.path().join("server.log")).map_err(|e| e.to_string())?;
        let child = Command::new(BIN)
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
            .map_err(|e| format!("start {BIN}: {e}"))?;
        Ok(Server { child, data, addr })
    }

    /// Waits for `/readyz` (store and cluster reachable), so the measured time is the
    /// controller's and not the process start.
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
            // Applications carry no finalizer here, so deleting the namespace is enough.
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

// ---------------------------------------------------------------------------------------------
// Facts and statistics

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
        "git": command_line("git", &["--version"]),
        "note": "a shared 2-core lab machine: other engineers' builds and tests run at the same time",
    })
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss(pid: u32) -> Value {
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

/// The apiserver's request counters (`apiserver_request_total`) of the kinds the benchmark
/// touches, summed by verb, resource, subresource and dry run; `None` when unreadable.
fn api_counts() -> Option<std::collections::BTreeMap<String, f64>> {
    const KINDS: &[&str] = &[
        "configmaps",
        "services",
        "deployments",
        "applications",
        "appprojects",
        "namespaces",
        "secrets",
    ];
    let out = Command::new("kubectl")
        .args(["get", "--raw", "/metrics"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let mut label = std::collections::BTreeMap::new();
        for pair in labels.split("\",") {
            if let Some((k, v)) = pair.split_once("=\"") {
                label.insert(k, v.trim_end_matches('"'));
            }
        }
        let get = |k: &str| label.get(k).copied().unwrap_or("");
        if !KINDS.contains(&get("resource")) {
            continue;
        }
        let mut key = format!("{} {}", get("verb"), get("resource"));
        if !get("subresource").is_empty() {
            key.push('/');
            key.push_str(get("subresource"));
        }
        if !get("dry_run").is_empty() {
            key.push_str(" (dry run)");
        }
        *counts.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    Some(counts)
}

/// Requests made between two [`api_counts`] snapshots (every client: cairn, and the
/// benchmark's own polling of the Application every 50 ms and of a ConfigMap every 20 ms).
fn api_delta(
    before: &Option<std::collections::BTreeMap<String, f64>>,
    after: &Option<std::collections::BTreeMap<String, f64>>,
) -> Value {
    let (Some(before), Some(after)) = (before, after) else {
        return json!("apiserver metrics not readable");
    };
    let mut out = serde_json::Map::new();
    for (k, v) in after {
        let d = v - before.get(k).copied().unwrap_or(0.0);
        if d > 0.0 {
            out.insert(k.clone(), json!(d));
        }
    }
    Value::Object(out)
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
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{}", nanos % 1_000_000)
}

fn summary(r: &Value) -> String {
    if let Some(s) = r.get("skipped") {
        return format!("gitops benchmark {s}");
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
    let (c, n, w, m) = (
        &r["cold_sync"],
        &r["noop_resync"],
        &r["webhook_push_to_applied"],
        &r["rss_200_apps"],
    );
    format!(
        "gitops benchmark ({} cores, load {}):\n\
         cold sync 500 objects: cairn {} s (operation {} s) vs kubectl {} s -> ratio {} / op {} (target <= 1.1){}\n\
         no-op resync: cairn {} s (operation {} s) vs kubectl {} s -> ratio {} / op {}{}\n\
         webhook push->applied over {} pushes: p50 {} ms, p99 {} ms (target p50 < 1000 ms){}\n\
         RSS with {} apps synced: {} KiB (one resync later {} KiB){}",
        r["machine"]["cores"],
        r["machine"]["loadavg_at_start"].as_str().unwrap_or("?"),
        f(&c["cairn_create_to_synced_s"]),
        f(&c["cairn_operation_s"]),
        f(&c["kubectl_apply_server_side_s"]),
        f(&c["ratio_create_to_synced_vs_kubectl"]),
        f(&c["ratio_operation_vs_kubectl"]),
        blocked(c),
        f(&n["cairn_request_to_synced_s"]),
        f(&n["cairn_operation_s"]),
        f(&n["kubectl_reapply_server_side_s"]),
        f(&n["ratio_request_to_synced_vs_kubectl"]),
        f(&n["ratio_operation_vs_kubectl"]),
        blocked(n),
        w["applied"],
        f(&w["push_to_applied_ms"]["p50"]),
        f(&w["push_to_applied_ms"]["p99"]),
        blocked(w),
        m["apps_synced"],
        m["rss_all_synced_kib"]["vm_rss_kib"],
        m["rss_one_resync_later_kib"]["vm_rss_kib"],
        blocked(m),
    )
}
