//! The workflow controller end to end: a real `cairn server` process against the lab runs
//! conformance Workflows (`../shared/conformance/workflows/`) to `Succeeded`, archives them with
//! their step logs, and serves those logs after the Workflow object is deleted; the API refuses
//! an invalid submission with the field's path and an action on a finished workflow.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image loaded
//! (`make executor`), and `kubectl` on PATH. Skipped only when CAIRN_E2E is not set. Works in
//! its own namespace (`cairn-h3-wf-...`, which the server is limited to through
//! `[workflow] namespaces`), deleted at the end. Every wait is bounded; nothing asserts on
//! timing.

#[path = "common/spawn.rs"]
mod spawn;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn::k8s;
use cairn::workflow::pod::PodSettings;
use cairn::workflow::types::Workflow;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// The controller instance id of the test servers: their controllers run only the test's
/// (labelled) objects, and other cairn servers sharing the lab leave those alone.
const INSTANCE: &str = "cairn-h3-e2e";

/// `obj` labelled for the test servers' controller instance.
fn owned(mut obj: Value) -> Value {
    obj["metadata"]["labels"]["workflows.argoproj.io/controller-instanceid"] = json!(INSTANCE);
    obj
}

/// Bound of the wait for a conformance workflow to finish (image pulls included).
const RUN_BOUND: Duration = Duration::from_secs(300);

fn e2e(test: &str) -> Option<()> {
    if std::env::var_os("CAIRN_E2E").is_none() {
        eprintln!(
            "SKIP {test}: CAIRN_E2E is not set (set CAIRN_E2E=1 with KUBECONFIG pointing at the lab)"
        );
        return None;
    }
    Some(())
}

async fn reachable_client() -> Client {
    let client = k8s::client()
        .await
        .unwrap_or_else(|e| panic!("CAIRN_E2E is set but no cluster is configured: {e}"));
    if let Err(e) = k8s::ping(&client, Duration::from_secs(10)).await {
        panic!("CAIRN_E2E is set but the cluster is not reachable ({e}); start the lab");
    }
    client
}

async fn assert_executor_image_loaded(client: &Client) {
    let image = PodSettings::default().executor_image;
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    let loaded = nodes.items.iter().any(|node| {
        node.status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .any(|i| i.names.iter().flatten().any(|n| *n == image))
    });
    assert!(
        loaded,
        "the executor image {image} is not on any lab node: run `make executor` first"
    );
}

/// A namespace deleted (without waiting) when dropped, even if the test panics.
struct TestNamespace(String);

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "namespace",
                &self.0,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn kubectl(args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg("--request-timeout=60s")
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn conformance(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/workflows")
        .join(file)
}

/// A `cairn server` limited to one namespace, killed when dropped.
struct Server {
    child: Child,
    data: tempfile::TempDir,
    addr: SocketAddr,
    config: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(namespace: &str) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let config = data.path().join("cairn.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"{addr}\"\n\n[gitops]\nenabled = false\n\n\
                 [workflow]\nnamespaces = [\"{namespace}\"]\nworkers = 4\n\
                 instance_id = \"{INSTANCE}\"\n"
            ),
        )
        .expect("write config");
        let mut server = Server {
            child: Command::new("true").spawn().expect("placeholder"),
            data,
            addr,
            config,
        };
        server.restart().await;
        server
    }

    /// (Re)starts the process on the same data directory and configuration.
    async fn restart(&mut self) {
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("server.log"))
            .expect("log");
        // A private copy: the shared target directory may be rebuilt while the test runs.
        let bin = spawn::private_binary(self.data.path());
        self.child = spawn::spawn(
            Command::new(&bin)
                .args(["server", "--config"])
                .arg(&self.config)
                .arg("--data-dir")
                .arg(self.data.path().join("data"))
                .env_remove("CAIRN_CONFIG")
                .env("HOME", self.data.path())
                .env("RUST_LOG", "info,cairn::workflow=debug")
                .stdout(log.try_clone().expect("log"))
                .stderr(log),
        )
        .expect("start cairn server");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(300)).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "cairn server did not listen within 60s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// kill -9.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Logs in as admin with the generated initial password; returns the session cookie.
    async fn login(&self, http: &reqwest::Client) -> String {
        let password =
            std::fs::read_to_string(self.data.path().join("data").join("initial-admin-password"))
                .expect("initial admin password");
        let resp = http
            .post(self.url("/api/v1/session"))
            .header(cairn::api::CSRF_HEADER, "1")
            .json(&json!({"username": "admin", "password": password.trim()}))
            .send()
            .await
            .expect("login");
        assert!(resp.status().is_success(), "login: {}", resp.status());
        resp.headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|c| c.split(';').next())
            .find(|kv| kv.contains(cairn::api::SESSION_COOKIE))
            .expect("session cookie")
            .to_owned()
    }
}

/// Creates the Workflows of a conformance file in `ns` (unchanged but for the instance
/// label); returns their names.
fn create(ns: &str, file: &str) -> Vec<String> {
    cairn::cli::wf::read_documents(&conformance(file))
        .expect("conformance file")
        .into_iter()
        .map(|doc| create_json(ns, &doc))
        .collect()
}

async fn wait_finished(api: &Api<Workflow>, name: &str, server: &Server) -> Workflow {
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let wf = api.get(name).await.expect("get workflow");
        let phase = wf.status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed" | "Error")) {
            return wf;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {name} did not finish within {RUN_BOUND:?} (phase {phase:?}):\n{}\n{}",
            serde_json::to_string_pretty(&wf.status).unwrap_or_default(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn node_phases(wf: &Workflow) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = wf
        .status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .into_iter()
        .flatten()
        .map(|(_, n)| {
            (
                n.display_name
                    .clone()
                    .or(n.name.clone())
                    .unwrap_or_default(),
                n.phase.clone().unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_workflows_run_to_success_and_are_archived() {
    if e2e("conformance_workflows_run_to_success_and_are_archived").is_none() {
        return;
    }
    let client = reachable_client().await;
    assert_executor_image_loaded(&client).await;
    let ns = format!("cairn-h3-wf-{}-{}", std::process::id(), rand_suffix());
    kubectl(&["create", "namespace", &ns]);
    let _guard = TestNamespace(ns.clone());
    let server = Server::start(&ns).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns);

    let hello = create(&ns, "hello-world.yaml").remove(0);
    let diamond = create(&ns, "dag-diamond.yaml").remove(0);

    let hello_wf = wait_finished(&api, &hello, &server).await;
    let diamond_wf = wait_finished(&api, &diamond, &server).await;
    let phase = |wf: &Workflow| wf.status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(
        phase(&hello_wf).as_deref(),
        Some("Succeeded"),
        "{}",
        server.log()
    );
    assert_eq!(
        phase(&diamond_wf).as_deref(),
        Some("Succeeded"),
        "{:?}\n{}",
        node_phases(&diamond_wf),
        server.log()
    );
    // The DAG ran each task once, in Argo's node tree.
    let phases = node_phases(&diamond_wf);
    for task in ["A", "B", "C", "D"] {
        assert!(
            phases.contains(&(task.to_owned(), "Succeeded".to_owned())),
            "{phases:?}"
        );
    }
    // Argo's labels on the workflow and on its pods.
    let labels = diamond_wf.labels();
    assert_eq!(
        labels
            .get("workflows.argoproj.io/phase")
            .map(String::as_str),
        Some("Succeeded")
    );
    assert_eq!(
        labels
            .get("workflows.argoproj.io/completed")
            .map(String::as_str),
        Some("true")
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = pods
            .list(
                &ListParams::default().labels(&format!("workflows.argoproj.io/workflow={diamond}")),
            )
            .await
            .expect("pods");
        assert_eq!(list.items.len(), 4, "one pod per DAG task");
        let unlabelled = list
            .items
            .iter()
            .filter(|p| {
                p.labels()
                    .get("workflows.argoproj.io/completed")
                    .map(String::as_str)
                    != Some("true")
            })
            .count();
        if unlabelled == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{unlabelled} finished pods lack the completed label"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The API: archive, logs after deletion, validation, actions on finished workflows.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http");
    let cookie = server.login(&http).await;
    let get_json = |path: String| {
        let http = http.clone();
        let cookie = cookie.clone();
        let url = server.url(&path);
        async move {
            let resp = http
                .get(url)
                .header(reqwest::header::COOKIE, cookie)
                .send()
                .await
                .expect("request");
            let status = resp.status();
            let text = resp.text().await.expect("body");
            (status, text)
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let archived = loop {
        let (status, body) = get_json(format!("/api/v1/archived-workflows?namespace={ns}")).await;
        assert!(status.is_success(), "{status}: {body}");
        let v: Value = serde_json::from_str(&body).expect("json");
        let names: Vec<String> = v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["name"].as_str().map(str::to_owned))
            .collect();
        if names.contains(&hello) && names.contains(&diamond) {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "workflows not archived: {body}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        archived["items"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|i| i["phase"] == "Succeeded"),
        "{archived}"
    );

    api.delete(&hello, &DeleteParams::default())
        .await
        .expect("delete hello");
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get_opt(&hello).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "workflow {hello} not deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (status, body) = get_json(format!("/api/v1/workflows/{ns}/{hello}/log")).await;
    assert!(status.is_success(), "{status}: {body}");
    let contents: Vec<String> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["result"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(contents, ["hello world"], "{body}");

    // An invalid submission is a 400 naming the field; nothing is created.
    let bad = json!({"workflow": {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "bad-"},
        "spec": {"entrypoint": "missing", "templates": [
            {"name": "main", "container": {"image": "busybox", "command": ["true"]}}
        ]}
    }});
    let resp = http
        .post(server.url(&format!("/api/v1/workflows/{ns}")))
        .header(reqwest::header::COOKIE, &cookie)
        .header(cairn::api::CSRF_HEADER, "1")
        .json(&bad)
        .send()
        .await
        .expect("submit");
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);
    let text = resp.text().await.expect("body");
    assert!(text.contains("spec.entrypoint"), "{text}");
    // Stopping a finished workflow is refused, as Argo refuses it.
    let resp = http
        .put(server.url(&format!("/api/v1/workflows/{ns}/{diamond}/stop")))
        .header(reqwest::header::COOKIE, &cookie)
        .header(cairn::api::CSRF_HEADER, "1")
        .send()
        .await
        .expect("stop");
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);
    let text = resp.text().await.expect("body");
    assert!(text.contains("it has completed"), "{text}");
    // The CLI against the same server: submit --wait, get, logs, list.
    let cli_dir = tempfile::tempdir().expect("tempdir");
    let cli = |args: &[&str], stdin: Option<&str>| -> (bool, String) {
        use std::io::Write as _;
        let mut child = Command::new(BIN)
            .args(args)
            .env("CAIRN_CLI_CONFIG", cli_dir.path().join("config.toml"))
            .env_remove("CAIRN_SERVER")
            .env_remove("CAIRN_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cairn");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("wait cairn");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let password = std::fs::read_to_string(
        server
            .data
            .path()
            .join("data")
            .join("initial-admin-password"),
    )
    .expect("password");
    let base = server.url("");
    let (ok, out) = cli(
        &[
            "login",
            "--server",
            &base,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some(&format!("{}\n", password.trim())),
    );
    assert!(ok, "{out}");
    let steps = conformance("steps.yaml");
    let (ok, out) = cli(
        &[
            "wf",
            "submit",
            steps.to_str().expect("path"),
            "-n",
            &ns,
            "--instanceid",
            INSTANCE,
            "--wait",
        ],
        None,
    );
    assert!(ok, "cairn wf submit --wait: {out}\n{}", server.log());
    assert!(out.contains("Status:      Succeeded"), "{out}");
    let submitted = out
        .lines()
        .find_map(|l| l.strip_prefix("Name:"))
        .map(|n| n.trim().to_owned())
        .expect("a Name: line");
    let (ok, out) = cli(&["wf", "logs", &submitted, "-n", &ns], None);
    assert!(ok, "{out}");
    assert!(
        out.lines().count() >= 2,
        "one line per step at least: {out}"
    );
    let (ok, out) = cli(&["wf", "list", "-n", &ns], None);
    assert!(
        ok && out.contains(&submitted) && out.contains("Succeeded"),
        "{out}"
    );
    let (ok, out) = cli(&["wf", "stop", &submitted, "-n", &ns], None);
    assert!(!ok && out.contains("it has completed"), "{out}");
    api.delete(&submitted, &DeleteParams::default())
        .await
        .expect("delete the CLI's workflow");
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get_opt(&submitted).await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "workflow {submitted} not deleted"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // `logs --follow` streams a running step and ends when the workflow completes.
    let slow = create_json(
        &ns,
        &json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": "follow-"},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {
                "image": "busybox", "command": ["sh", "-c", "echo one; sleep 4; echo two"]}}]}
        }),
    );
    let (ok, out) = cli(&["wf", "logs", &slow, "-n", &ns, "--follow"], None);
    assert!(ok, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [format!("{slow}: one"), format!("{slow}: two")],
        "{out}\n{}",
        server.log()
    );
    let done = wait_finished(&api, &slow, &server).await;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded")
    );
    api.delete(&slow, &DeleteParams::default())
        .await
        .expect("delete the followed workflow");
    let deadline = Instant::now() + Duration::from_secs(60);
    while api.get_opt(&slow).await.expect("get").is_some() {
        assert!(Instant::now() < deadline, "workflow {slow} not deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The event stream: the first event of a named workflow is its current state.
    let resp = http
        .get(server.url(&format!("/api/v1/workflow-events/{ns}?name={diamond}")))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("events");
    assert!(resp.status().is_success(), "{}", resp.status());
    let mut resp = resp;
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !text.contains("\n\n") {
        assert!(Instant::now() < deadline, "no event within 30s: {text:?}");
        match tokio::time::timeout(Duration::from_secs(30), resp.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("event stream ended: {other:?} after {text:?}"),
        }
    }
    let data = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .expect("a data line");
    let event: Value = serde_json::from_str(data.trim()).expect("event json");
    assert_eq!(event["result"]["type"], "ADDED", "{event}");
    assert_eq!(
        event["result"]["object"]["metadata"]["name"],
        diamond.as_str()
    );
    assert_eq!(event["result"]["object"]["status"]["phase"], "Succeeded");
    drop(resp);

    let left = api.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        left.items.iter().map(|w| w.name_any()).collect::<Vec<_>>(),
        [diamond.as_str()]
    );
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0)
}

/// Creates a Workflow from JSON with kubectl; returns its name.
fn create_json(ns: &str, wf: &Value) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("wf.json");
    std::fs::write(&file, owned(wf.clone()).to_string()).expect("write");
    let out = kubectl(&[
        "-n",
        ns,
        "create",
        "-f",
        file.to_str().expect("path"),
        "-o",
        "name",
    ]);
    out.trim().rsplit('/').next().unwrap_or_default().to_owned()
}

fn pod_uid(pods: &[Pod], node_name_suffix: &str) -> Option<String> {
    pods.iter()
        .find(|p| {
            p.annotations()
                .get("workflows.argoproj.io/node-name")
                .is_some_and(|n| n.ends_with(node_name_suffix))
        })
        .and_then(|p| p.metadata.uid.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_reruns_only_failed_nodes_and_gc_ttl_keep_logs() {
    if e2e("retry_reruns_only_failed_nodes_and_gc_ttl_keep_logs").is_none() {
        return;
    }
    let client = reachable_client().await;
    assert_executor_image_loaded(&client).await;
    let ns = format!("cairn-h3-rt-{}-{}", std::process::id(), rand_suffix());
    kubectl(&["create", "namespace", &ns]);
    let _guard = TestNamespace(ns.clone());
    let server = Server::start(&ns).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // A DAG whose second task fails.
    let failing = create_json(
        &ns,
        &json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": "retry-"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "dag": {"tasks": [
                    {"name": "ok", "template": "ok"},
                    {"name": "bad", "template": "bad", "depends": "ok"}
                ]}},
                {"name": "ok", "container": {"image": "busybox", "command": ["echo", "fine"]}},
                {"name": "bad", "container": {"image": "busybox",
                    "command": ["sh", "-c", "echo failing; exit 3"]}}
            ]}
        }),
    );
    // A workflow whose pods are collected on success and which is deleted 3 s after it ends.
    let collected = create_json(
        &ns,
        &json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"generateName": "gc-"},
            "spec": {
                "entrypoint": "main",
                "podGC": {"strategy": "OnPodSuccess"},
                "ttlStrategy": {"secondsAfterCompletion": 3},
                "templates": [{"name": "main", "container": {"image": "busybox",
                    "command": ["echo", "kept after gc"]}}]
            }
        }),
    );

    let first = wait_finished(&api, &failing, &server).await;
    assert_eq!(
        first.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Failed"),
        "{:?}",
        node_phases(&first)
    );
    let selector = format!("workflows.argoproj.io/workflow={failing}");
    let before = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("pods")
        .items;
    let ok_uid = pod_uid(&before, ".ok").expect("ok pod");
    let bad_uid = pod_uid(&before, ".bad").expect("bad pod");

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http");
    let cookie = server.login(&http).await;
    let resp = http
        .put(server.url(&format!("/api/v1/workflows/{ns}/{failing}/retry")))
        .header(reqwest::header::COOKIE, &cookie)
        .header(cairn::api::CSRF_HEADER, "1")
        .send()
        .await
        .expect("retry");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert!(status.is_success(), "retry: {status}: {body}");
    let retried: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(retried["status"]["phase"], "Running", "{retried}");

    // It fails again (the step always fails), having re-run only the failed task.
    let deadline = Instant::now() + RUN_BOUND;
    let second = loop {
        let wf = api.get(&failing).await.expect("get");
        let done = wf.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
            && wf.status.as_ref().and_then(|s| s.finished_at.as_deref())
                != first.status.as_ref().and_then(|s| s.finished_at.as_deref());
        if done {
            break wf;
        }
        assert!(
            Instant::now() < deadline,
            "retried workflow did not fail again: {:?}\n{}",
            node_phases(&wf),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let after = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .expect("pods")
        .items;
    assert_eq!(
        pod_uid(&after, ".ok"),
        Some(ok_uid),
        "the succeeded task was re-run"
    );
    let new_bad = pod_uid(&after, ".bad").expect("bad pod after retry");
    assert_ne!(new_bad, bad_uid, "the failed task was not re-run");
    let phases = node_phases(&second);
    assert!(
        phases.contains(&("ok".to_owned(), "Succeeded".to_owned())),
        "{phases:?}"
    );
    assert!(
        phases.contains(&("bad".to_owned(), "Failed".to_owned())),
        "{phases:?}"
    );

    // podGC and ttlStrategy: the workflow and its pod go; the log stays readable.
    let deadline = Instant::now() + RUN_BOUND;
    while api.get_opt(&collected).await.expect("get").is_some() {
        assert!(
            Instant::now() < deadline,
            "ttlStrategy did not delete {collected}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let left = pods
        .list(&ListParams::default().labels(&format!("workflows.argoproj.io/workflow={collected}")))
        .await
        .expect("pods")
        .items;
    assert!(
        left.iter().all(|p| p.metadata.deletion_timestamp.is_some()),
        "podGC left {} pods",
        left.len()
    );
    let resp = http
        .get(server.url(&format!("/api/v1/workflows/{ns}/{collected}/log")))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("log");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert!(status.is_success(), "{status}: {body}");
    assert!(body.contains("kept after gc"), "{body}\n{}", server.log());
    let resp = http
        .get(server.url(&format!(
            "/api/v1/archived-workflows?namespace={ns}&namePrefix=gc-"
        )))
        .header(reqwest::header::COOKIE, &cookie)
        .send()
        .await
        .expect("archive");
    let v: Value = resp.json().await.expect("json");
    assert_eq!(v["items"][0]["phase"], "Succeeded", "{v}");
}

async fn children(api: &Api<Workflow>, cron: &str) -> Vec<String> {
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels(&format!("workflows.argoproj.io/cron-workflow={cron}")))
        .await
        .expect("list children")
        .items
        .iter()
        .map(|w| w.name_any())
        .collect();
    names.sort();
    names
}

/// A run missed while cairn was down (kill -9) but within `startingDeadlineSeconds` is run once
/// after the restart; the run made before is not made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_restart_neither_skips_nor_doubles() {
    if e2e("cron_restart_neither_skips_nor_doubles").is_none() {
        return;
    }
    let client = reachable_client().await;
    assert_executor_image_loaded(&client).await;
    let ns = format!("cairn-h3-cron-{}-{}", std::process::id(), rand_suffix());
    kubectl(&["create", "namespace", &ns]);
    let _guard = TestNamespace(ns.clone());
    let mut server = Server::start(&ns).await;
    let crons: Api<cairn::workflow::types::CronWorkflow> = Api::namespaced(client.clone(), &ns);
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns);
    let cron = "every-minute";
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cron.json");
    std::fs::write(
        &file,
        owned(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
            "metadata": {"name": cron},
            "spec": {
                "schedule": "* * * * *",
                "startingDeadlineSeconds": 120,
                "successfulJobsHistoryLimit": 10,
                "workflowSpec": {"entrypoint": "main", "templates": [
                    {"name": "main", "container": {"image": "busybox", "command": ["true"]}}
                ]}
            }
        }))
        .to_string(),
    )
    .expect("write");
    kubectl(&["-n", &ns, "create", "-f", file.to_str().expect("path")]);

    // The first run, at the next minute.
    let deadline = Instant::now() + Duration::from_secs(90);
    let first = loop {
        let kids = children(&api, cron).await;
        if let Some(first) = kids.first() {
            break first.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no run within 90s:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let first_secs: i64 = first
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("child name ends in unix seconds");
    let persisted = loop {
        let cw = crons.get(cron).await.expect("get cron");
        if let Some(t) = cw.status.and_then(|s| s.last_scheduled_time) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "lastScheduledTime never persisted"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(
        persisted
            .parse::<jiff::Timestamp>()
            .expect("time")
            .as_second(),
        first_secs
    );

    // Down across the next scheduled minute, past the on-time grace, within the deadline.
    server.kill();
    let next = first_secs + 60;
    loop {
        let now = jiff::Timestamp::now().as_second();
        if now >= next + 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        children(&api, cron).await,
        [first.as_str()],
        "a run while cairn was down?"
    );
    server.restart().await;
    let missed = format!("{cron}-{next}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let kids = children(&api, cron).await;
        if kids.contains(&missed) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the missed run {missed} was not made after the restart: {kids:?}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Each child is one scheduled minute: no time was run twice and none between was skipped.
    let kids = children(&api, cron).await;
    let secs: Vec<i64> = kids
        .iter()
        .filter_map(|k| k.rsplit('-').next().and_then(|s| s.parse().ok()))
        .collect();
    assert_eq!(secs.len(), kids.len());
    for (i, s) in secs.iter().enumerate() {
        assert_eq!(*s, first_secs + 60 * i as i64, "{kids:?}");
    }
}
