//! The lab harness shared by the lab test binaries: the CAIRN_E2E gate, the cluster client,
//! `kubectl`, a test namespace deleted when dropped, and a real `cairn server` (killed when
//! dropped) with its log.
//!
//! Include it with `#[path = "common/lab.rs"] mod lab;`. Every wait is bounded.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

#[path = "spawn.rs"]
pub mod spawn;

#[path = "tools.rs"]
pub mod tools;
pub use tools::tool_path;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn::k8s;
use cairn::workflow::types::Workflow;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// A Workflow `name` with `spec`, labelled for the controller instance `instance` (the servers
/// of one test file run only their own Workflows).
pub fn workflow(name: &str, instance: &str, spec: serde_json::Value) -> Workflow {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "labels": {"workflows.argoproj.io/controller-instanceid": instance},
        },
        "spec": spec,
    }))
    .expect("workflow")
}

/// Whether the lab tests run: prints a SKIP line for `test` when CAIRN_E2E is not set.
pub fn e2e(test: &str) -> bool {
    if std::env::var_os("CAIRN_E2E").is_none() {
        eprintln!(
            "SKIP {test}: CAIRN_E2E is not set (set CAIRN_E2E=1 with KUBECONFIG pointing at the lab)"
        );
        return false;
    }
    true
}

/// The lab's client; panics when CAIRN_E2E is set but the lab is not reachable.
pub async fn client() -> Client {
    let client = k8s::client()
        .await
        .unwrap_or_else(|e| panic!("CAIRN_E2E is set but no cluster is configured: {e}"));
    k8s::ping(&client, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("the lab is not reachable ({e}); start it"));
    client
}

/// Runs `kubectl` (feeding `stdin` when given), asserts it succeeded and returns its stdout.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kubectl")
        .arg("--request-timeout=60s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Installs (or updates) cairn's CRDs (`cairn crds`) and waits until the API server serves
/// them, for tests that apply Argo objects before a cairn server has started.
pub fn install_crds() {
    let out = Command::new(BIN)
        .arg("crds")
        .output()
        .expect("run cairn crds");
    assert!(out.status.success(), "cairn crds failed");
    let yaml = String::from_utf8(out.stdout).expect("utf-8 CRDs");
    kubectl(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(&yaml),
    );
    kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "app.kubernetes.io/part-of=cairn",
        ],
        None,
    );
}

/// A suffix that keeps this run's namespaces apart from other runs'.
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() % 100_000)
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// A namespace created for one test and deleted (without waiting) when dropped.
pub struct TestNamespace(pub String);

impl TestNamespace {
    /// `{prefix}-{unique_suffix()}`.
    pub fn create(prefix: &str) -> Self {
        Self::named(&format!("{prefix}-{}", unique_suffix()))
    }

    pub fn named(name: &str) -> Self {
        kubectl(&["create", "namespace", name], None);
        TestNamespace(name.to_owned())
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

/// The lab node's InternalIP: the lab puts it on the host's loopback, and pods reach it (the
/// executor uploads artifacts to a server listening there).
pub async fn node_ip(client: &Client) -> String {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list nodes");
    nodes
        .items
        .iter()
        .flat_map(|n| n.status.iter().flat_map(|s| s.addresses.iter().flatten()))
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
        .expect("a node InternalIP")
}

/// A free TCP port on `ip`.
pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind(format!("{ip}:0"))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `cairn server` (API on loopback, GitOps off), killed when dropped.
pub struct Server {
    child: Child,
    data: tempfile::TempDir,
    api: SocketAddr,
    also_listens: Vec<SocketAddr>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server whose `[workflow]` section is `workflow` (TOML lines) and waits until it
    /// listens on its API address and on each of `also_listens`.
    pub async fn start(workflow: &str, also_listens: &[SocketAddr]) -> Server {
        Self::start_with("", &format!("[workflow]\n{workflow}"), also_listens).await
    }

    /// Starts a server whose `[server]` table also holds `server_keys` (TOML lines) and whose
    /// configuration ends with `sections` (whole TOML tables), and waits as [`Server::start`].
    /// GitOps is off unless `sections` has its own `[gitops]` table.
    pub async fn start_with(
        server_keys: &str,
        sections: &str,
        also_listens: &[SocketAddr],
    ) -> Server {
        let data = tempfile::tempdir().expect("tempdir");
        let api: SocketAddr = format!("127.0.0.1:{}", free_port("127.0.0.1"))
            .parse()
            .expect("addr");
        std::fs::write(
            data.path().join("cairn.toml"),
            format!(
                "[server]\nlisten = \"{api}\"\n{server_keys}\n{gitops}\n{sections}",
                gitops = if sections.contains("[gitops]") {
                    ""
                } else {
                    "[gitops]\nenabled = false\n"
                }
            ),
        )
        .expect("write config");
        // A private copy: the shared target directory may be rebuilt while the test runs.
        spawn::private_binary(data.path());
        let child = Self::spawn(data.path());
        let server = Server {
            child,
            data,
            api,
            also_listens: also_listens.to_vec(),
        };
        server.wait_listening().await;
        server
    }

    fn spawn(dir: &std::path::Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("log");
        spawn::spawn(
            Command::new(dir.join("cairn"))
                .args(["server", "--config"])
                .arg(dir.join("cairn.toml"))
                .arg("--data-dir")
                .arg(dir.join("data"))
                .env_remove("CAIRN_CONFIG")
                .env("HOME", dir)
                .env("PATH", tool_path())
                .env("RUST_LOG", "info,cairn::workflow=debug,cairn::api=debug")
                .stdout(log.try_clone().expect("log"))
                .stderr(log),
        )
        .expect("start cairn server")
    }

    async fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        for addr in std::iter::once(&self.api).chain(&self.also_listens) {
            while std::net::TcpStream::connect_timeout(addr, Duration::from_millis(300)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "cairn did not listen on {addr} within 60s:\n{}",
                    self.log()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// The server's API address.
    pub fn api(&self) -> SocketAddr {
        self.api
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the server (no shutdown path runs) and waits for the process to be gone.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL cairn");
        let _ = self.child.wait();
    }

    /// Starts the server again on the same configuration and data directory (after
    /// [`Server::kill9`]) and waits until it listens.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.data.path());
        self.wait_listening().await;
    }

    /// The server's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.data.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }
}

/// Polls `name` until it is Succeeded, Failed or Error; fails (with its status and the
/// server's log) after `bound`.
pub async fn wait_finished(
    api: &Api<Workflow>,
    name: &str,
    bound: Duration,
    server: &Server,
) -> Workflow {
    let deadline = Instant::now() + bound;
    loop {
        let wf = api.get(name).await.expect("get workflow");
        let phase = wf.status.as_ref().and_then(|s| s.phase.clone());
        if matches!(phase.as_deref(), Some("Succeeded" | "Failed" | "Error")) {
            return wf;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {name} did not finish within {bound:?} (phase {phase:?}):\n{}\n{}",
            serde_json::to_string_pretty(&wf.status).unwrap_or_default(),
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
