//! `[workflow] namespaces` on the lab: two `cairn server`s sharing one controller instance id,
//! each limited to its own namespace, run only their own namespace's Workflows and
//! CronWorkflows; a third namespace that neither is configured for is left untouched.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) and `kubectl` on PATH; skipped only
//! when CAIRN_E2E is not set. The Workflows are `suspend` templates (no pod), so the executor
//! image is not needed. Namespaces `cairn-h6-scope-*`, deleted at the end. Every wait is
//! bounded; nothing asserts on timing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn::k8s;
use cairn::workflow::types::{CronWorkflow, Workflow};
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// Shared by both servers: the bug was two controllers of one instance id acting on each
/// other's namespaces.
const INSTANCE: &str = "cairn-h6-scope";

/// Bound of every wait (a CronWorkflow's first run is up to a minute away).
const BOUND: Duration = Duration::from_secs(150);

struct Namespace(String);

impl Drop for Namespace {
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

fn kubectl_apply(doc: &Value) {
    let mut child = Command::new("kubectl")
        .args(["--request-timeout=60s", "create", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(doc.to_string().as_bytes())
            .expect("write manifest");
    }
    let out = child.wait_with_output().expect("kubectl create");
    assert!(
        out.status.success(),
        "kubectl create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn create_namespace(name: &str) -> Namespace {
    kubectl_apply(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
    Namespace(name.to_owned())
}

/// A cairn server limited to `namespace`, killed when dropped.
struct Server {
    child: Child,
    data: tempfile::TempDir,
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
        let config: PathBuf = data.path().join("cairn.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"{addr}\"\n\n[gitops]\nenabled = false\n\n\
                 [workflow]\nnamespaces = [\"{namespace}\"]\ninstance_id = \"{INSTANCE}\"\n"
            ),
        )
        .expect("write config");
        let log = std::fs::File::create(data.path().join("server.log")).expect("log");
        // A private copy: the shared target directory may be rebuilt while the test runs.
        let bin = data.path().join("cairn");
        std::fs::copy(BIN, &bin).expect("copy the cairn binary");
        let child = Command::new(&bin)
            .args(["server", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(data.path().join("data"))
            .env_remove("CAIRN_CONFIG")
            .env("HOME", data.path())
            .env("RUST_LOG", "info,cairn::workflow=debug")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start cairn server");
        let server = Server { child, data };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cairn server did not listen within 60s:\n{}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }
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
    if std::env::var_os("CAIRN_E2E").is_none() {
        eprintln!(
            "SKIP servers_with_one_instance_id_run_only_their_namespaces: CAIRN_E2E is not set"
        );
        return;
    }
    let client = k8s::client()
        .await
        .expect("CAIRN_E2E is set but no cluster");
    k8s::ping(&client, Duration::from_secs(10))
        .await
        .expect("the lab is not reachable; start it");
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() % 100_000)
            .unwrap_or(0)
    );
    let [a, b, c] = ["a", "b", "c"].map(|x| format!("cairn-h6-scope-{x}-{suffix}"));
    let _ns: Vec<Namespace> = [&a, &b, &c].iter().map(|n| create_namespace(n)).collect();
    let server_a = Server::start(&a).await;
    let server_b = Server::start(&b).await;

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
