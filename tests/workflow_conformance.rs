//! Workflow conformance on the lab: every manifest of `../shared/conformance/workflows/`
//! submitted unchanged (but for Argo's controller-instance label, which scopes it to the test's
//! server) ends as Argo ends it; a generated 50-task fan-out/fan-in DAG succeeds with one pod per
//! task; and a `kill -9` of cairn during a 20-step sequential DAG, followed by a restart on the
//! same data directory, neither creates a step's pod twice nor re-runs a succeeded step.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image loaded
//! (`make executor`), and `kubectl` on PATH. Skipped only when CAIRN_E2E is not set. Each test
//! starts its own `cairn server` limited to its own namespace (`cairn-h8-...`), deleted at the
//! end. Every wait is bounded; nothing asserts on timing (durations are printed, not checked).

#[path = "common/spawn.rs"]
mod spawn;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn::k8s;
use cairn::workflow::pod::PodSettings;
use cairn::workflow::types::{NodeStatus, Workflow};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// The controller instance id of this file's servers: their controllers run only the test's
/// (labelled) objects, and other cairn servers sharing the lab leave those alone.
const INSTANCE: &str = "cairn-h8-conformance";

/// Label naming the controller instance (Argo's).
const LABEL_INSTANCE: &str = "workflows.argoproj.io/controller-instanceid";

/// Bound of the wait for one workflow to finish (image pulls and retry backoffs included).
const RUN_BOUND: Duration = Duration::from_secs(420);

/// Conformance workflows run at the same time (the single lab node allows 110 pods and is
/// shared with other engineers' tests).
const BATCH: usize = 10;

/// `obj` labelled for the test servers' controller instance.
fn owned(mut obj: Value) -> Value {
    obj["metadata"]["labels"][LABEL_INSTANCE] = json!(INSTANCE);
    obj
}

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

impl TestNamespace {
    fn create(prefix: &str) -> TestNamespace {
        let ns = format!("cairn-h8-{prefix}-{}-{}", std::process::id(), rand_suffix());
        kubectl(&["create", "namespace", &ns]);
        TestNamespace(ns)
    }
}

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

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0)
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

/// Creates an object from JSON with kubectl (labelled for the instance); returns its name.
fn create_json(ns: &str, obj: &Value) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("obj.json");
    std::fs::write(&file, owned(obj.clone()).to_string()).expect("write");
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

/// Creates every document of a conformance file in `ns`; returns their names.
fn create_file(ns: &str, file: &str) -> Vec<String> {
    cairn::cli::wf::read_documents(&conformance(file))
        .expect("conformance file")
        .into_iter()
        .map(|doc| create_json(ns, &doc))
        .collect()
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
    async fn start(namespace: &str, workers: usize) -> Server {
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
                 [workflow]\nnamespaces = [\"{namespace}\"]\nworkers = {workers}\n\
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
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// kill -9 (SIGKILL: no shutdown path runs).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last 200 lines of the server's log (failure messages stay readable).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(200)..].join("\n")
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

/// An authenticated API session against one server.
struct Session<'a> {
    server: &'a Server,
    http: reqwest::Client,
    cookie: String,
}

impl Session<'_> {
    async fn open(server: &Server) -> Session<'_> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http");
        let cookie = server.login(&http).await;
        Session {
            server,
            http,
            cookie,
        }
    }

    /// A mutating request (`PUT` or `POST`) with a JSON body; returns status and body.
    async fn send(&self, method: reqwest::Method, path: &str, body: &Value) -> (u16, String) {
        let resp = self
            .http
            .request(method, self.server.url(path))
            .header(reqwest::header::COOKIE, &self.cookie)
            .header(cairn::api::CSRF_HEADER, "1")
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }
}

fn phase(wf: &Workflow) -> String {
    wf.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn nodes(wf: &Workflow) -> Vec<NodeStatus> {
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .into_iter()
        .flatten()
        .map(|(id, n)| {
            let mut n = n.clone();
            n.id.get_or_insert_with(|| id.clone());
            n
        })
        .collect()
}

/// `(display name, phase)` of every node, sorted.
fn node_phases(wf: &Workflow) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = nodes(wf)
        .into_iter()
        .map(|n| {
            (
                n.display_name.or(n.name).unwrap_or_default(),
                n.phase.unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The phases of the nodes displayed as `name` (retries and loops share a display prefix).
fn phases_of(wf: &Workflow, name: &str) -> Vec<String> {
    node_phases(wf)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, p)| p)
        .collect()
}

fn pod_nodes(wf: &Workflow) -> Vec<NodeStatus> {
    nodes(wf)
        .into_iter()
        .filter(|n| n.node_type.as_deref() == Some("Pod"))
        .collect()
}

fn is_finished(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Error")
}

/// Seconds between the workflow's `startedAt` and `finishedAt` (printed, never asserted).
fn duration(wf: &Workflow) -> String {
    let parse = |t: Option<&String>| t.and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let status = wf.status.as_ref();
    match (
        parse(status.and_then(|s| s.started_at.as_ref())),
        parse(status.and_then(|s| s.finished_at.as_ref())),
    ) {
        (Some(a), Some(b)) => format!("{}s", b.as_second() - a.as_second()),
        _ => "-".to_owned(),
    }
}

async fn wait_finished(api: &Api<Workflow>, name: &str, server: &Server) -> Workflow {
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let wf = api.get(name).await.expect("get workflow");
        if is_finished(&phase(&wf)) {
            return wf;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {name} did not finish within {RUN_BOUND:?} (phase {:?}): {:?}\n{}",
            phase(&wf),
            node_phases(&wf),
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn pods_of(client: &Client, ns: &str, workflow: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("workflows.argoproj.io/workflow={workflow}")))
        .await
        .expect("list pods")
        .items
}

/// How a conformance workflow ends in Argo.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Succeeded,
    Failed,
    /// Retries of a step that fails at random: Succeeded with the last attempt Succeeded, or
    /// Failed with every attempt Failed (the retry limit or `maxDuration` exhausted).
    RetriedRandom,
}

/// One conformance case: the file, how it ends, and whether it waits on a manual resume (the
/// name of its suspend node).
struct Case {
    file: &'static str,
    expect: Expect,
    resume: Option<&'static str>,
}

/// Output parameters a person supplies to a suspend node before resuming it (what Argo's UI
/// resume dialog or `argo node set --output-parameter` writes into the node's outputs):
/// `(file, node, parameter, value)`. `intermediate-parameters` offers `NO` as the default.
const SUPPLIED: &[(&str, &str, &str, &str)] =
    &[("intermediate-parameters.yaml", "approval", "approve", "NO")];

const CASES: &[Case] = &[
    case("arguments-parameters.yaml", Expect::Succeeded, None),
    case("coinflip.yaml", Expect::Succeeded, None),
    case("conditionals.yaml", Expect::Succeeded, None),
    case("continue-on-fail.yaml", Expect::Succeeded, None),
    case("dag-diamond.yaml", Expect::Succeeded, None),
    case("dag-enhanced-depends.yaml", Expect::Succeeded, None),
    case("dag-targets.yaml", Expect::Succeeded, None),
    case("exit-handlers.yaml", Expect::Failed, None),
    case("global-parameters.yaml", Expect::Succeeded, None),
    case("hello-world.yaml", Expect::Succeeded, None),
    case(
        "intermediate-parameters.yaml",
        Expect::Succeeded,
        Some("approval"),
    ),
    case("loops-maps.yaml", Expect::Succeeded, None),
    case("loops-param-result.yaml", Expect::Succeeded, None),
    case("loops-sequence.yaml", Expect::Succeeded, None),
    case("loops.yaml", Expect::Succeeded, None),
    case("output-parameter.yaml", Expect::Succeeded, None),
    case("parallelism-limit.yaml", Expect::Succeeded, None),
    case("retry-backoff.yaml", Expect::RetriedRandom, None),
    case("retry-container.yaml", Expect::RetriedRandom, None),
    case("scripts-bash.yaml", Expect::Succeeded, None),
    case("scripts-python.yaml", Expect::Succeeded, None),
    case("steps.yaml", Expect::Succeeded, None),
    case("suspend-template.yaml", Expect::Succeeded, Some("approve")),
    case("timeouts-step.yaml", Expect::Failed, None),
    case("volumes-emptydir.yaml", Expect::Succeeded, None),
    case("volumes-pvc.yaml", Expect::Succeeded, None),
    case("workflow-template-ref.yaml", Expect::Succeeded, None),
];

const fn case(file: &'static str, expect: Expect, resume: Option<&'static str>) -> Case {
    Case {
        file,
        expect,
        resume,
    }
}

/// Files that are not Workflows: WorkflowTemplates created first, the CronWorkflow run by
/// submit-from.
const TEMPLATES: &str = "workflow-template-templates.yaml";
const CRON: &str = "cron-workflow.yaml";

/// One row of the printed table, and what went wrong with the case.
struct Row {
    case: String,
    name: String,
    phase: String,
    duration: String,
    pods: usize,
    problems: Vec<String>,
}

/// The node checks that say how Argo ends each case beyond the workflow's phase.
fn node_problems(file: &str, wf: &Workflow) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = |name: &str, expected: &[&str]| {
        let got = phases_of(wf, name);
        if got.is_empty() || got.iter().any(|p| !expected.contains(&p.as_str())) {
            problems.push(format!("node {name}: {got:?}, expected {expected:?}"));
        }
    };
    match file {
        "coinflip.yaml" => {
            let heads = phases_of(wf, "heads");
            let tails = phases_of(wf, "tails");
            let one = |a: &[String], b: &[String]| {
                a == ["Succeeded".to_owned()] && b == ["Skipped".to_owned()]
            };
            if !(one(&heads, &tails) || one(&tails, &heads)) {
                problems.push(format!(
                    "coinflip: heads {heads:?}, tails {tails:?}: expected one Succeeded, the other Skipped"
                ));
            }
        }
        "conditionals.yaml" => {
            for n in [
                "print-hello-govaluate",
                "print-hello-expr",
                "print-hello-expr-json",
            ] {
                want(n, &["Succeeded"]);
            }
        }
        "continue-on-fail.yaml" => {
            want("C", &["Failed"]);
            want("D", &["Succeeded"]);
        }
        "dag-enhanced-depends.yaml" => {
            want("C", &["Failed"]);
            for n in ["should-execute-1", "should-execute-2", "should-execute-3"] {
                want(n, &["Succeeded"]);
            }
            want("should-not-execute", &["Omitted"]);
        }
        "dag-targets.yaml" => {
            for n in ["A", "C", "E"] {
                want(n, &["Succeeded"]);
            }
            for n in ["B", "D"] {
                if !phases_of(wf, n).is_empty() {
                    problems.push(format!("dag-targets: task {n} ran outside the target"));
                }
            }
        }
        "exit-handlers.yaml" => {
            want("notify", &["Succeeded"]);
            want("cry", &["Succeeded"]);
            want("celebrate", &["Skipped"]);
        }
        "suspend-template.yaml" => {
            for n in ["build", "approve", "delay", "release"] {
                want(n, &["Succeeded"]);
            }
        }
        "intermediate-parameters.yaml" => {
            want("deploy-pre-prod", &["Succeeded"]);
            want("approval", &["Succeeded"]);
            // approve = NO: `{{steps.approval.outputs.parameters.approve}} == YES` is false.
            want("deploy-prod", &["Skipped"]);
        }
        "parallelism-limit.yaml" | "loops-maps.yaml" => {
            let expected = if file == "loops-maps.yaml" { 4 } else { 10 };
            let got = pod_nodes(wf).len();
            if got != expected {
                problems.push(format!("{got} pod nodes, expected {expected}"));
            }
        }
        _ => {}
    }
    problems
}

fn phase_problems(expect: Expect, wf: &Workflow) -> Vec<String> {
    let got = phase(wf);
    let attempts: Vec<String> = pod_nodes(wf)
        .into_iter()
        .map(|n| n.phase.unwrap_or_default())
        .collect();
    let ok = match expect {
        Expect::Succeeded => got == "Succeeded",
        Expect::Failed => got == "Failed",
        Expect::RetriedRandom => match got.as_str() {
            "Succeeded" => attempts.iter().filter(|p| *p == "Succeeded").count() == 1,
            "Failed" => !attempts.is_empty() && attempts.iter().all(|p| p == "Failed"),
            _ => false,
        },
    };
    if ok {
        Vec::new()
    } else {
        vec![format!(
            "phase {got:?} (attempts {attempts:?}), expected {expect:?}; message {:?}; nodes {:?}",
            wf.status.as_ref().and_then(|s| s.message.clone()),
            node_phases(wf)
        )]
    }
}

/// Waits for a workflow's suspend node `node` to be running, then resumes it through the API.
async fn resume_when_suspended(
    api: &Api<Workflow>,
    session: &Session<'_>,
    ns: &str,
    file: &str,
    name: &str,
    node: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let wf = api
            .get(name)
            .await
            .map_err(|e| format!("get {name}: {e}"))?;
        if phases_of(&wf, node).iter().any(|p| p == "Running") {
            break;
        }
        if is_finished(&phase(&wf)) {
            return Err(format!(
                "{name} finished ({}) before its suspend node {node} ran: {:?}",
                phase(&wf),
                node_phases(&wf)
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{name}: suspend node {node} not running within {RUN_BOUND:?}: {:?}",
                node_phases(&wf)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (_, _, param, value) in SUPPLIED
        .iter()
        .filter(|(f, n, _, _)| *f == file && *n == node)
    {
        supply_output(api, name, node, param, value).await?;
    }
    let (status, body) = session
        .send(
            reqwest::Method::PUT,
            &format!("/api/v1/workflows/{ns}/{name}/resume"),
            &json!({}),
        )
        .await;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("resume {name}: {status}: {body}"))
    }
}

/// Writes `param = value` into the outputs of the suspend node displayed as `node` (cairn's API
/// has no `set` action yet, so the test writes the node as `argo node set` does).
async fn supply_output(
    api: &Api<Workflow>,
    name: &str,
    node: &str,
    param: &str,
    value: &str,
) -> Result<(), String> {
    let wf = api
        .get(name)
        .await
        .map_err(|e| format!("get {name}: {e}"))?;
    let id = nodes(&wf)
        .into_iter()
        .find(|n| n.display_name.as_deref() == Some(node))
        .and_then(|n| n.id)
        .ok_or_else(|| format!("{name}: no node {node}"))?;
    let patch = json!({"status": {"nodes": {id: {"outputs": {"parameters": [
        {"name": param, "value": value}
    ]}}}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .map_err(|e| format!("set {name} node {node} output {param}: {e}"))?;
    Ok(())
}

/// Waits (bounded) without panicking; the case's row records a timeout.
async fn finish(api: &Api<Workflow>, name: &str) -> Result<Workflow, String> {
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let wf = api
            .get(name)
            .await
            .map_err(|e| format!("get {name}: {e}"))?;
        if is_finished(&phase(&wf)) {
            return Ok(wf);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{name} did not finish within {RUN_BOUND:?} (phase {:?}): {:?}",
                phase(&wf),
                node_phases(&wf)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn run_case(
    client: &Client,
    api: &Api<Workflow>,
    session: &Session<'_>,
    ns: &str,
    case: &Case,
) -> Row {
    let name = create_file(ns, case.file).remove(0);
    let mut problems = Vec::new();
    if let Some(node) = case.resume
        && let Err(e) = resume_when_suspended(api, session, ns, case.file, &name, node).await
    {
        problems.push(e);
    }
    let row = |wf: Option<&Workflow>, pods: usize, problems: Vec<String>| Row {
        case: case.file.to_owned(),
        name: name.clone(),
        phase: wf.map(phase).unwrap_or_else(|| "?".into()),
        duration: wf.map(duration).unwrap_or_else(|| "-".into()),
        pods,
        problems,
    };
    match finish(api, &name).await {
        Ok(wf) => {
            problems.extend(phase_problems(case.expect, &wf));
            problems.extend(node_problems(case.file, &wf));
            let pods = pods_of(client, ns, &name).await.len();
            row(Some(&wf), pods, problems)
        }
        Err(e) => {
            problems.push(e);
            let pods = pods_of(client, ns, &name).await.len();
            row(None, pods, problems)
        }
    }
}

/// The CronWorkflow: created (labelled for this server), then one run submitted from it
/// through the API (Argo's `submit --from cronworkflow/NAME`), which must succeed.
async fn run_cron(client: &Client, api: &Api<Workflow>, session: &Session<'_>, ns: &str) -> Row {
    let cron = create_file(ns, CRON).remove(0);
    // concurrencyPolicy Replace: a scheduled run at the next minute would replace a run still
    // going, so the manual run starts early in a minute (it lasts a few seconds).
    let deadline = Instant::now() + Duration::from_secs(90);
    while jiff::Timestamp::now().as_second().rem_euclid(60) > 30 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (status, body) = session
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/workflows/{ns}/submit"),
            &json!({
                "resourceKind": "CronWorkflow",
                "resourceName": cron,
                "submitOptions": {"labels": format!("{LABEL_INSTANCE}={INSTANCE}")}
            }),
        )
        .await;
    let name = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["metadata"]["name"].as_str().map(str::to_owned));
    let mut row = Row {
        case: CRON.to_owned(),
        name: name.clone().unwrap_or_default(),
        phase: "?".into(),
        duration: "-".into(),
        pods: 0,
        problems: Vec::new(),
    };
    let Some(name) = name.filter(|_| (200..300).contains(&status)) else {
        row.problems.push(format!(
            "submit --from cronworkflow/{cron}: {status}: {body}"
        ));
        return row;
    };
    match finish(api, &name).await {
        Ok(wf) => {
            row.phase = phase(&wf);
            row.duration = duration(&wf);
            row.problems.extend(phase_problems(Expect::Succeeded, &wf));
            let labels = wf.labels();
            if labels
                .get("workflows.argoproj.io/cron-workflow")
                .map(String::as_str)
                != Some(cron.as_str())
            {
                row.problems
                    .push(format!("{name} lacks the cron-workflow label: {labels:?}"));
            }
        }
        Err(e) => row.problems.push(e),
    }
    row.pods = pods_of(client, ns, &name).await.len();
    row
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!(
        "{:<32} {:<40} {:<10} {:>8} {:>5}  PROBLEMS",
        "CASE", "WORKFLOW", "PHASE", "DURATION", "PODS"
    );
    for r in rows {
        println!(
            "{:<32} {:<40} {:<10} {:>8} {:>5}  {}",
            r.case,
            r.name,
            r.phase,
            r.duration,
            r.pods,
            if r.problems.is_empty() {
                "-".to_owned()
            } else {
                r.problems.join("; ")
            }
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_folder_ends_as_argo_ends_it() {
    if e2e("conformance_folder_ends_as_argo_ends_it").is_none() {
        return;
    }
    let started = Instant::now();
    let client = reachable_client().await;
    assert_executor_image_loaded(&client).await;
    let ns = TestNamespace::create("conf");
    let server = Server::start(&ns.0, 8).await;
    let session = Session::open(&server).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);

    // Every manifest of the folder is covered: the table plus the templates and the cron.
    let mut listed: BTreeSet<String> = std::fs::read_dir(conformance(""))
        .expect("conformance folder")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml"))
        .collect();
    for c in CASES {
        listed.remove(c.file);
    }
    listed.remove(TEMPLATES);
    listed.remove(CRON);
    assert!(
        listed.is_empty(),
        "conformance files without a case: {listed:?}"
    );

    let templates = create_file(&ns.0, TEMPLATES);
    assert_eq!(templates.len(), 5, "{templates:?}");

    let mut rows = vec![run_cron(&client, &api, &session, &ns.0).await];
    for batch in CASES.chunks(BATCH) {
        let runs = batch
            .iter()
            .map(|case| run_case(&client, &api, &session, &ns.0, case));
        rows.extend(futures::future::join_all(runs).await);
    }
    print_table(
        &format!(
            "conformance ({} workflows, {:?} in all)",
            rows.len(),
            started.elapsed()
        ),
        &rows,
    );
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.problems.is_empty())
        .map(|r| format!("{} ({}): {}", r.case, r.name, r.problems.join("; ")))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} conformance workflows did not end as Argo ends them:\n{}\n--- server log tail ---\n{}",
        failed.len(),
        rows.len(),
        failed.join("\n"),
        server.log_tail()
    );
}

/// A fan-out/fan-in DAG of `width + 2` busybox `true` tasks.
fn fan_dag(width: usize) -> Value {
    let mut tasks = vec![json!({"name": "start", "template": "true"})];
    let middle: Vec<String> = (0..width).map(|i| format!("t{i:02}")).collect();
    for t in &middle {
        tasks.push(json!({"name": t, "template": "true", "depends": "start"}));
    }
    tasks.push(json!({"name": "end", "template": "true", "depends": middle.join(" && ")}));
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "fan-50-"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "dag": {"tasks": tasks}},
            {"name": "true", "container": {"image": "busybox", "command": ["true"]}}
        ]}
    })
}

/// A sequential DAG of `len` `sleep 1` steps.
fn chain_dag(len: usize) -> Value {
    let tasks: Vec<Value> = (0..len)
        .map(|i| {
            let mut t = json!({"name": format!("s{i:02}"), "template": "sleep"});
            if i > 0 {
                t["depends"] = json!(format!("s{:02}", i - 1));
            }
            t
        })
        .collect();
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "chain-20-"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "dag": {"tasks": tasks}},
            {"name": "sleep", "container": {"image": "busybox", "command": ["sleep", "1"]}}
        ]}
    })
}

/// Node id → pod name and uid, from the pods' node-id annotation.
fn pods_by_node(pods: &[Pod]) -> BTreeMap<String, Vec<(String, String)>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for p in pods {
        let node = p
            .annotations()
            .get(cairn::workflow::node::ANNOTATION_NODE_ID)
            .cloned()
            .unwrap_or_default();
        out.entry(node)
            .or_default()
            .push((p.name_any(), p.metadata.uid.clone().unwrap_or_default()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_task_dag_runs_one_pod_per_task() {
    if e2e("fifty_task_dag_runs_one_pod_per_task").is_none() {
        return;
    }
    let client = reachable_client().await;
    assert_executor_image_loaded(&client).await;
    let ns = TestNamespace::create("fan");
    let server = Server::start(&ns.0, 4).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let started = Instant::now();
    let name = create_json(&ns.0, &fan_dag(48));
    let wf = wait_finished(&api, &name, &server).await;
    let elapsed = started.elapsed();
    assert_eq!(
        phase(&wf),
        "Succeeded",
        "{:?}\n{}",
        node_phases(&wf),
        server.log_tail()
    );
    let tasks = pod_nodes(&wf);
    assert_eq!(tasks.len(), 50, "{:?}", node_phases(&wf));
    assert!(
        tasks
            .iter()
            .all(|n| n.phase.as_deref() == Some("Succeeded")),
        "{:?}",
        node_phases(&wf)
    );
    let pods = pods_of(&client, &ns.0, &name).await;
    let by_node = pods_by_node(&pods);
    assert_eq!(pods.len(), 50, "one pod per task: {by_node:?}");
    for n in &tasks {
        let id = n.id.clone().unwrap_or_default();
        assert_eq!(
            by_node.get(&id).map(Vec::len),
            Some(1),
            "task {:?} (node {id}): pods {:?}",
            n.display_name,
            by_node.get(&id)
        );
    }
    println!(
        "\n50-task DAG {name}: {} in {elapsed:?} (workflow duration {}), {} pods",
        phase(&wf),
        duration(&wf),
        pods.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_dag_neither_recreates_pods_nor_reruns_steps() {
    if e2e("kill_9_during_a_dag_neither_recreates_pods_nor_reruns_steps").is_none() {
        return;
    }
    let client = reachable_client().await;
    assert_executor_image_loaded(&client).await;
    let ns = TestNamespace::create("kill");
    let mut server = Server::start(&ns.0, 4).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns.0);

    // Every pod uid ever seen per pod name, across the kill and the restart.
    let seen: Arc<Mutex<BTreeMap<String, BTreeSet<String>>>> = Arc::default();
    let watch = {
        let seen = seen.clone();
        let stream = watcher(pods_api.clone(), watcher::Config::default());
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                if let Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) = event {
                    let uid = p.metadata.uid.clone().unwrap_or_default();
                    seen.lock()
                        .expect("lock")
                        .entry(p.name_any())
                        .or_default()
                        .insert(uid);
                }
            }
        })
    };

    let started = Instant::now();
    let name = create_json(&ns.0, &chain_dag(20));
    // Kill once a quarter of the chain has succeeded (and the rest has not).
    let deadline = Instant::now() + RUN_BOUND;
    let before = loop {
        let wf = api.get(&name).await.expect("get");
        let done = pod_nodes(&wf)
            .iter()
            .filter(|n| n.phase.as_deref() == Some("Succeeded"))
            .count();
        if done >= 5 {
            break wf;
        }
        assert!(
            Instant::now() < deadline,
            "5 steps not done within {RUN_BOUND:?}: {:?}\n{}",
            node_phases(&wf),
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    server.kill();
    let killed_at = started.elapsed();
    let pods_before = pods_of(&client, &ns.0, &name).await;
    let uid_before: BTreeMap<String, String> = pods_before
        .iter()
        .map(|p| (p.name_any(), p.metadata.uid.clone().unwrap_or_default()))
        .collect();
    let succeeded_before: Vec<NodeStatus> = pod_nodes(&before)
        .into_iter()
        .filter(|n| n.phase.as_deref() == Some("Succeeded"))
        .collect();
    assert!(
        phase(&before) == "Running" && succeeded_before.len() < 20,
        "the workflow ended before the kill: {:?}",
        node_phases(&before)
    );
    // Down long enough for the running step's pod to finish unobserved.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.restart().await;
    let after = wait_finished(&api, &name, &server).await;
    let total = started.elapsed();
    assert_eq!(
        phase(&after),
        "Succeeded",
        "{:?}\n{}",
        node_phases(&after),
        server.log_tail()
    );
    let tasks = pod_nodes(&after);
    assert_eq!(tasks.len(), 20, "{:?}", node_phases(&after));

    // No succeeded step re-run: same node, same startedAt, same pod uid.
    let pods_after = pods_of(&client, &ns.0, &name).await;
    let by_node = pods_by_node(&pods_after);
    let by_id: BTreeMap<String, NodeStatus> = tasks
        .iter()
        .map(|n| (n.id.clone().unwrap_or_default(), n.clone()))
        .collect();
    for n in &succeeded_before {
        let id = n.id.clone().unwrap_or_default();
        let now = by_id.get(&id).expect("the node is still in the status");
        assert_eq!(
            (now.phase.as_deref(), now.started_at.as_deref()),
            (Some("Succeeded"), n.started_at.as_deref()),
            "step {:?} was re-run",
            n.display_name
        );
        let pods = by_node.get(&id).cloned().unwrap_or_default();
        assert_eq!(pods.len(), 1, "step {:?}: pods {pods:?}", n.display_name);
        assert_eq!(
            uid_before.get(&pods[0].0),
            Some(&pods[0].1),
            "step {:?}: its pod was replaced",
            n.display_name
        );
    }
    // Each node's pod exists exactly once, and no pod name was ever created twice.
    assert_eq!(pods_after.len(), 20, "{by_node:?}");
    for n in &tasks {
        let id = n.id.clone().unwrap_or_default();
        assert_eq!(
            by_node.get(&id).map(Vec::len),
            Some(1),
            "node {id}: {:?}",
            by_node.get(&id)
        );
    }
    for (pod, uid) in &uid_before {
        assert_eq!(
            pods_after
                .iter()
                .find(|p| p.name_any() == *pod)
                .and_then(|p| p.metadata.uid.clone())
                .as_ref(),
            Some(uid),
            "pod {pod} was recreated across the restart"
        );
    }
    watch.abort();
    let seen = seen.lock().expect("lock").clone();
    let twice: Vec<(&String, &BTreeSet<String>)> =
        seen.iter().filter(|(_, uids)| uids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "pods created twice (name → uids): {twice:?}"
    );
    println!(
        "\nkill -9 during the 20-step chain {name}: killed after {killed_at:?} with {} steps \
         succeeded and {} pods; restarted; {} in {total:?} (workflow duration {}); \
         {} pods, {} pod names watched, none created twice",
        succeeded_before.len(),
        pods_before.len(),
        phase(&after),
        duration(&after),
        pods_after.len(),
        seen.len()
    );
}
