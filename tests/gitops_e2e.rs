//! The GitOps controller end to end: a real `cairn server` process against the lab, Git served
//! from a local repository (`file://`), Applications created with kubectl.
//!
//! Runs only with `CAIRN_E2E=1` (cluster from KUBECONFIG, `kustomize`/`helm` on PATH or in the
//! lab's tool cache); without it each test prints a SKIP line. Every test uses its own control
//! namespace (`[gitops] namespace`) and destination namespaces, deleted at the end, so tests run
//! in parallel and beside other users of the lab. Waits are bounded polls; nothing asserts a
//! duration.
#![allow(
    clippy::disallowed_methods,
    reason = "plain threads polling kubectl and child processes; there is no async runtime here"
)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "common/tools.rs"]
mod tools;
use tools::tool_path;

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const CONFORMANCE: &str = "../shared/conformance/gitops";

fn enabled(test: &str) -> bool {
    if std::env::var("CAIRN_E2E").is_ok_and(|v| v == "1") {
        return true;
    }
    eprintln!("SKIP {test}: set CAIRN_E2E=1 with a cluster in KUBECONFIG");
    false
}

fn kubectl_out(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write manifest");
    }
    let out = child.wait_with_output().expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = kubectl_out(args, stdin);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

/// The object, or None when it does not exist.
fn get(kind: &str, ns: &str, name: &str) -> Option<Value> {
    let (ok, out, _) = kubectl_out(&["get", kind, "-n", ns, name, "-o", "json"], None);
    if !ok {
        return None;
    }
    serde_json::from_str(&out).ok()
}

/// Polls `f` every 500 ms until it returns Some, for at most `limit`; panics with `what` and
/// the last observation otherwise.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out waiting for {what}; last: {last}");
}

/// Namespaces created by a test, deleted when it ends (however it ends).
struct Namespaces(Vec<String>);
impl Namespaces {
    fn create(&mut self, name: String) -> String {
        kubectl(&["create", "namespace", &name], None);
        self.0.push(name.clone());
        name
    }
    /// A namespace the controller is expected to create (CreateNamespace=true).
    fn expect(&mut self, name: String) -> String {
        self.0.push(name.clone());
        name
    }
}
impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            // Applications first: their finalizers need the controller, which is gone by now.
            let names = Command::new("kubectl")
                .args(["get", "applications.argoproj.io", "-n", ns, "-o", "name"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for name in names.lines().filter(|l| !l.is_empty()) {
                let _ = Command::new("kubectl")
                    .args(["patch", name, "-n", ns, "--type=merge"])
                    .args(["-p", r#"{"metadata":{"finalizers":null}}"#])
                    .output();
            }
            let _ = Command::new("kubectl")
                .args([
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .output();
        }
    }
}

/// A local Git repository.
struct Repo {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=e2e", "-c", "user.email=e2e@example.com"])
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
    fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path.join(rel)).expect("remove");
    }
    fn copy_tree(&self, from: &Path, to: &str) {
        for entry in std::fs::read_dir(from).expect("read conformance tree") {
            let entry = entry.expect("entry");
            let target = format!("{to}/{}", entry.file_name().to_string_lossy());
            if entry.path().is_dir() {
                self.copy_tree(&entry.path(), &target);
            } else {
                self.write(
                    &target,
                    &std::fs::read_to_string(entry.path()).expect("read"),
                );
            }
        }
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

/// A `cairn server` process with its own control namespace.
struct Server {
    child: Child,
    data: tempfile::TempDir,
    config: PathBuf,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(control_ns: &str) -> Server {
        Server::start_with_resync(control_ns, "2s")
    }

    fn start_with_resync(control_ns: &str, resync: &str) -> Server {
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
                "[server]\nlisten = \"{addr}\"\n\n[gitops]\nnamespace = \"{control_ns}\"\n\
                 poll_interval = \"2s\"\npoll_jitter = \"1s\"\nresync_interval = \"{resync}\"\nworkers = 4\n\
                 installation_id = \"{control_ns}\"\n"
            ),
        )
        .expect("write config");
        let mut server = Server {
            child: Command::new("true").spawn().expect("placeholder"),
            data,
            config,
            addr,
        };
        server.restart();
        server
    }

    /// (Re)starts the process on the same data dir and configuration.
    fn restart(&mut self) {
        let _ = self.child.wait();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("server.log"))
            .expect("log file");
        self.child = Command::new(BIN)
            .args(["server", "--config"])
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.data.path().join("data"))
            .env_remove("CAIRN_CONFIG")
            .env("HOME", self.data.path())
            .env("PATH", tool_path())
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start cairn server");
        let addr = self.addr;
        wait_for("cairn /healthz", Duration::from_secs(60), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300))
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
    }

    /// kill -9.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }
}

fn application(
    name: &str,
    control_ns: &str,
    repo: &str,
    path: &str,
    dest_ns: &str,
    automated: bool,
) -> Value {
    let mut sync_policy = json!({"syncOptions": ["CreateNamespace=true"]});
    if automated {
        sync_policy["automated"] = json!({"prune": true, "selfHeal": true});
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": control_ns,
                     "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest_ns},
            "syncPolicy": sync_policy,
        }
    })
}

fn apply(obj: &Value) {
    kubectl(&["apply", "-f", "-"], Some(&obj.to_string()));
}

fn app_status(ns: &str, name: &str) -> Value {
    get("applications.argoproj.io", ns, name)
        .map(|a| a["status"].clone())
        .unwrap_or(Value::Null)
}

/// Waits until the app is Synced and Healthy with its last operation Succeeded.
fn wait_synced_healthy(server: &Server, ns: &str, name: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let st = app_status(ns, name);
        if st["sync"]["status"] == "Synced"
            && st["health"]["status"] == "Healthy"
            && st["operationState"]["phase"] == "Succeeded"
        {
            return st;
        }
        last = st;
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "{ns}/{name} not Synced/Healthy: {}\n--- server log tail ---\n{}",
        serde_json::to_string_pretty(&last).unwrap_or_default(),
        tail(&server.log(), 40)
    );
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id() % 10000, nanos % 100000)
}

fn sync_results(status: &Value) -> Vec<Value> {
    status["operationState"]["syncResult"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every conformance tree syncs to Synced/Healthy; hooks run; waves in order.
#[test]
fn conformance_trees_sync_and_become_healthy() {
    if !enabled("conformance_trees_sync_and_become_healthy") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-conf"));
    let server = Server::start(&control);
    let repo = Repo::new();
    let trees = [
        "guestbook",
        "sync-waves",
        "hook",
        "helm-guestbook",
        "kustomize",
    ];
    for tree in trees {
        repo.copy_tree(&Path::new(CONFORMANCE).join(tree), tree);
    }
    repo.commit("conformance trees");
    let mut dests = Vec::new();
    for tree in trees {
        let dest = nss.expect(format!("{control}-{tree}"));
        apply(&application(tree, &control, &repo.url(), tree, &dest, true));
        dests.push(dest);
    }
    for tree in trees {
        let st = wait_synced_healthy(&server, &control, tree, Duration::from_secs(240));
        let expected_type = match tree {
            "guestbook" | "kustomize" => "Kustomize",
            "helm-guestbook" => "Helm",
            _ => "Directory",
        };
        assert_eq!(st["sourceType"], expected_type, "{tree}");
        assert_eq!(
            st["history"].as_array().map(Vec::len),
            Some(1),
            "{tree}: {st}"
        );
    }
    // sync-waves: cm-1 (wave 1) was applied and healthy before cm-2 (wave 2) started: the
    // resumable state records results in execution order.
    let st = app_status(&control, "sync-waves");
    let order: Vec<(String, i64)> = st["operationState"]["cairnSync"]["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            (
                r["key"]["name"].as_str().unwrap_or("").to_owned(),
                r["wave"].as_i64().unwrap_or(0),
            )
        })
        .filter(|(n, _)| n.starts_with("cm-"))
        .collect();
    assert_eq!(order, vec![("cm-1".into(), 1), ("cm-2".into(), 2)]);
    // hook: the Sync hook ran to completion, the ordinary pod exists, the hook is reported as one.
    let st = app_status(&control, "hook");
    let hook = sync_results(&st)
        .into_iter()
        .find(|r| r["name"] == "hook")
        .expect("hook result");
    assert_eq!(hook["hookPhase"], "Succeeded", "{hook}");
    assert_eq!(hook["hookType"], "Sync", "{hook}");
    let hook_ns = &dests[2];
    let pod = get("pod", hook_ns, "hook").expect("hook pod kept (BeforeHookCreation)");
    assert_eq!(pod["status"]["phase"], "Succeeded");
    assert!(get("pod", hook_ns, "pod").is_some());
    // The hook is not part of the app's resources (hooks are not compared).
    let names: Vec<&str> = st["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, vec!["pod"]);
    // helm-guestbook rendered the chart with its values (replicas 1).
    let d = get("deployment", &dests[3], "guestbook-ui").expect("deployment");
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        format!("helm-guestbook:apps/Deployment:{}/guestbook-ui", dests[3])
    );
}

/// Drift is reverted by self-heal; prune removes exactly the removed object; bad input is a
/// condition that leaves the cluster as it was; rollback restores the previous revision and is
/// refused while automated sync is on.
#[test]
fn drift_prune_bad_input_and_rollback() {
    if !enabled("drift_prune_bad_input_and_rollback") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-drift"));
    let dest = nss.create(format!("{control}-dest"));
    let server = Server::start(&control);
    let repo = Repo::new();
    let cm = |name: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n"
        )
    };
    repo.write("app/a.yaml", &cm("a", "one"));
    repo.write("app/b.yaml", &cm("b", "one"));
    let first = repo.commit("a and b");
    // An unmanaged object in the same namespace must never be touched.
    kubectl(&["create", "configmap", "bystander", "-n", &dest], None);
    apply(&application(
        "drift",
        &control,
        &repo.url(),
        "app",
        &dest,
        true,
    ));
    wait_synced_healthy(&server, &control, "drift", Duration::from_secs(120));

    // Drift made with kubectl is detected and reverted.
    kubectl(
        &[
            "patch",
            "configmap",
            "a",
            "-n",
            &dest,
            "--type=merge",
            "-p",
            r#"{"data":{"key":"drifted"}}"#,
        ],
        None,
    );
    wait_for("self-heal of configmap a", Duration::from_secs(90), || {
        let v = get("configmap", &dest, "a").ok_or("configmap a missing")?;
        (v["data"]["key"] == "one")
            .then_some(())
            .ok_or(format!("{}", v["data"]))
    });

    // Prune: b leaves Git, a changes; exactly b is deleted.
    repo.remove("app/b.yaml");
    repo.write("app/a.yaml", &cm("a", "two"));
    let second = repo.commit("drop b, change a");
    wait_for("prune of b", Duration::from_secs(90), || {
        let a = get("configmap", &dest, "a").ok_or("a missing")?;
        let b_gone = get("configmap", &dest, "b").is_none();
        (a["data"]["key"] == "two" && b_gone)
            .then_some(())
            .ok_or(format!("a={} b_gone={b_gone}", a["data"]))
    });
    assert!(
        get("configmap", &dest, "bystander").is_some(),
        "an unmanaged object was pruned"
    );
    let st = wait_synced_healthy(&server, &control, "drift", Duration::from_secs(60));
    assert_eq!(st["sync"]["revision"], second.as_str());

    // Bad input: invalid YAML becomes a condition naming the file; the cluster stays as it was.
    repo.write(
        "app/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n",
    );
    repo.commit("broken yaml");
    let message = wait_for(
        "a ComparisonError condition",
        Duration::from_secs(90),
        || {
            let st = app_status(&control, "drift");
            st["conditions"]
                .as_array()
                .and_then(|cs| {
                    cs.iter()
                        .find(|c| c["type"] == "ComparisonError")
                        .and_then(|c| c["message"].as_str().map(str::to_owned))
                })
                .ok_or(format!("{}", st["conditions"]))
        },
    );
    assert!(message.contains("broken.yaml"), "{message}");
    assert_eq!(app_status(&control, "drift")["sync"]["status"], "Unknown");
    assert_eq!(
        get("configmap", &dest, "a").expect("a")["data"]["key"],
        "two"
    );
    repo.remove("app/broken.yaml");
    repo.commit("fix");
    wait_for("the condition to clear", Duration::from_secs(90), || {
        let st = app_status(&control, "drift");
        (st["conditions"].is_null() && st["sync"]["status"] == "Synced")
            .then_some(())
            .ok_or(format!("{}", st["conditions"]))
    });

    // Rollback while automated sync is on: refused.
    let history = app_status(&control, "drift")["history"].clone();
    let entry = history
        .as_array()
        .and_then(|h| h.iter().find(|e| e["revision"] == first.as_str()))
        .cloned()
        .expect("history entry of the first revision");
    let rollback = json!({"operation": {
        "sync": {"revision": entry["revision"], "source": entry["source"], "prune": true},
        "initiatedBy": {"username": "e2e"}}});
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "drift",
            "-n",
            &control,
            "--type=merge",
            "-p",
            &rollback.to_string(),
        ],
        None,
    );
    wait_for("the refused rollback", Duration::from_secs(60), || {
        let st = app_status(&control, "drift");
        let m = st["operationState"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (st["operationState"]["phase"] == "Failed" && m.contains("auto-sync is enabled"))
            .then_some(())
            .ok_or(m)
    });
    // Automated sync off, then the rollback restores b and a's first value.
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "drift",
            "-n",
            &control,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/syncPolicy/automated"}]"#,
        ],
        None,
    );
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "drift",
            "-n",
            &control,
            "--type=merge",
            "-p",
            &rollback.to_string(),
        ],
        None,
    );
    wait_for(
        "rollback to the first revision",
        Duration::from_secs(90),
        || {
            let a = get("configmap", &dest, "a").ok_or("a missing")?;
            let b = get("configmap", &dest, "b").is_some();
            let st = app_status(&control, "drift");
            (a["data"]["key"] == "one" && b && st["operationState"]["phase"] == "Succeeded")
                .then_some(())
                .ok_or(format!(
                    "a={} b={b} op={}",
                    a["data"], st["operationState"]["message"]
                ))
        },
    );
    let st = app_status(&control, "drift");
    let last = st["history"]
        .as_array()
        .and_then(|h| h.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(last["revision"], first.as_str());
    // Live now differs from Git's head: OutOfSync, and without automated sync it stays so.
    wait_for("OutOfSync after rollback", Duration::from_secs(60), || {
        let s = app_status(&control, "drift")["sync"]["status"].clone();
        (s == "OutOfSync").then_some(()).ok_or(s.to_string())
    });
}

/// An app-of-apps root syncs three child Applications, which sync their own resources.
#[test]
fn app_of_apps_with_three_children() {
    if !enabled("app_of_apps_with_three_children") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-aoa"));
    let server = Server::start(&control);
    let repo = Repo::new();
    let mut dests = Vec::new();
    for i in 1..=3 {
        let dest = nss.expect(format!("{control}-child{i}"));
        repo.write(
            &format!("children/c{i}/cm.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child-{i}\ndata:\n  n: \"{i}\"\n"),
        );
        let child = application(
            &format!("child-{i}"),
            &control,
            &repo.url(),
            &format!("children/c{i}"),
            &dest,
            true,
        );
        repo.write(&format!("apps/child-{i}.json"), &child.to_string());
        dests.push(dest);
    }
    repo.commit("app of apps");
    apply(&application(
        "root",
        &control,
        &repo.url(),
        "apps",
        &control,
        true,
    ));
    let st = wait_synced_healthy(&server, &control, "root", Duration::from_secs(180));
    let kinds: Vec<&str> = st["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert_eq!(kinds, vec!["Application"; 3]);
    for i in 1..=3 {
        wait_synced_healthy(
            &server,
            &control,
            &format!("child-{i}"),
            Duration::from_secs(120),
        );
        let cm = get("configmap", &dests[i - 1], &format!("child-{i}")).expect("child resource");
        assert_eq!(cm["data"]["n"], i.to_string());
    }
    // Removing a child from Git prunes the child Application, whose finalizer deletes its
    // resources.
    repo.remove("apps/child-3.json");
    repo.commit("drop child 3");
    wait_for(
        "child-3 and its configmap gone",
        Duration::from_secs(120),
        || {
            let app = get("applications.argoproj.io", &control, "child-3").is_some();
            let cm = get("configmap", &dests[2], "child-3").is_some();
            (!app && !cm)
                .then_some(())
                .ok_or(format!("app={app} cm={cm}"))
        },
    );
    assert!(get("configmap", &dests[0], "child-1").is_some());
}

/// kill -9 in the middle of a multi-wave sync; the restarted server completes it without
/// running the finished PreSync hook again.
#[test]
fn kill_during_multi_wave_sync_resumes_without_rerunning_hooks() {
    if !enabled("kill_during_multi_wave_sync_resumes_without_rerunning_hooks") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-kill"));
    let dest = nss.create(format!("{control}-dest"));
    let mut server = Server::start(&control);
    let repo = Repo::new();
    let pod = |name: &str, hook: &str, wave: i64, command: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    argocd.argoproj.io/hook: {hook}\n    argocd.argoproj.io/sync-wave: \"{wave}\"\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: docker.io/library/busybox:latest\n    imagePullPolicy: IfNotPresent\n    command: [\"sh\", \"-c\", \"{command}\"]\n"
        )
    };
    let cm = |name: &str, wave: i64| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations:\n    argocd.argoproj.io/sync-wave: \"{wave}\"\n"
        )
    };
    repo.write("app/pre.yaml", &pod("pre", "PreSync", 0, "true"));
    repo.write("app/cm-1.yaml", &cm("cm-1", 1));
    repo.write("app/slow.yaml", &pod("slow", "Sync", 2, "sleep 12"));
    repo.write("app/cm-3.yaml", &cm("cm-3", 3));
    repo.commit("multi-wave");
    apply(&application(
        "resume",
        &control,
        &repo.url(),
        "app",
        &dest,
        false,
    ));
    // A manual sync, as the API writes it.
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "resume",
            "-n",
            &control,
            "--type=merge",
            "-p",
            r#"{"operation":{"sync":{"prune":true},"initiatedBy":{"username":"e2e"}}}"#,
        ],
        None,
    );
    let pre_uid = wait_for("the slow hook to run", Duration::from_secs(120), || {
        let slow = get("pod", &dest, "slow").ok_or("slow not created yet")?;
        let pre = get("pod", &dest, "pre").ok_or("pre missing")?;
        (slow["status"]["phase"] == "Running" || slow["status"]["phase"] == "Pending")
            .then(|| pre["metadata"]["uid"].as_str().unwrap_or("").to_owned())
            .ok_or(format!("slow is {}", slow["status"]["phase"]))
    });
    assert!(
        get("configmap", &dest, "cm-3").is_none(),
        "wave 3 ran before wave 2 finished"
    );
    server.kill();
    let st = app_status(&control, "resume");
    assert_eq!(
        st["operationState"]["phase"], "Running",
        "{}",
        st["operationState"]
    );
    server.restart();
    let st = wait_synced_healthy(&server, &control, "resume", Duration::from_secs(120));
    let pre = get("pod", &dest, "pre").expect("pre kept (BeforeHookCreation)");
    assert_eq!(
        pre["metadata"]["uid"].as_str(),
        Some(pre_uid.as_str()),
        "the PreSync hook ran again"
    );
    assert!(get("configmap", &dest, "cm-3").is_some());
    let phases: Vec<(String, String)> = sync_results(&st)
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or("").to_owned(),
                r["hookPhase"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(phases.iter().all(|(_, p)| p == "Succeeded"), "{phases:?}");
    assert_eq!(phases.len(), 4, "{phases:?}");
}

/// `examples/gitops` (project, app-of-apps roots of dev and prod, Helm values per environment,
/// Kustomize overlays) syncs into the lab, in this test's own namespaces.
#[test]
fn examples_tree_syncs_into_the_lab() {
    if !enabled("examples_tree_syncs_into_the_lab") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-ex"));
    let server = Server::start(&control);
    let repo = Repo::new();
    repo.copy_tree(Path::new("examples/gitops"), ".");
    // Point the tree at this repository and this test's namespaces.
    for rel in [
        "projects/data-platform-project.yaml",
        "clusters/dev/root.yaml",
        "clusters/dev/apps/recommender.yaml",
        "clusters/dev/apps/feature-store.yaml",
        "clusters/prod/root.yaml",
        "clusters/prod/apps/recommender.yaml",
        "clusters/prod/apps/feature-store.yaml",
    ] {
        let text = std::fs::read_to_string(repo.path.join(rel)).expect("example file");
        let text = text
            .replace(
                "https://git.example.com/data-platform/gitops.git",
                &repo.url(),
            )
            .replace("namespace: argocd", &format!("namespace: {control}"))
            .replace("dp-", &format!("{control}-dp-"));
        repo.write(rel, &text);
    }
    repo.commit("example tree");
    for env in ["dev", "prod"] {
        nss.expect(format!("{control}-dp-{env}"));
    }
    let read = |rel: &str| std::fs::read_to_string(repo.path.join(rel)).expect("file");
    kubectl(
        &["apply", "-f", "-"],
        Some(&read("projects/data-platform-project.yaml")),
    );
    for env in ["dev", "prod"] {
        kubectl(
            &["apply", "-f", "-"],
            Some(&read(&format!("clusters/{env}/root.yaml"))),
        );
    }
    for env in ["dev", "prod"] {
        wait_synced_healthy(
            &server,
            &control,
            &format!("{env}-root"),
            Duration::from_secs(240),
        );
        for app in ["feature-store", "recommender"] {
            let st = wait_synced_healthy(
                &server,
                &control,
                &format!("{app}-{env}"),
                Duration::from_secs(120),
            );
            let expected = if app == "recommender" {
                "Helm"
            } else {
                "Kustomize"
            };
            assert_eq!(st["sourceType"], expected);
        }
        let ns = format!("{control}-dp-{env}");
        let model = get("configmap", &ns, "recommender-model").expect("model configmap");
        let (version, replicas) = if env == "dev" { ("3", 1) } else { ("2", 2) };
        assert_eq!(model["data"]["MODEL_VERSION"], version);
        let d = get("deployment", &ns, "recommender").expect("recommender deployment");
        assert_eq!(d["spec"]["replicas"], replicas);
        let fs = get("deployment", &ns, "feature-store").expect("feature store");
        assert_eq!(fs["metadata"]["labels"]["environment"], env);
    }
    // The project holds: the feature store's wave (0) was healthy before the recommender (1).
    let root = app_status(&control, "dev-root");
    let order: Vec<String> = root["operationState"]["cairnSync"]["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["key"]["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(order, vec!["feature-store-dev", "recommender-dev"]);
}

/// Hooks with delete policies, a failing Sync hook that runs the SyncFail hook, an apply the
/// apiserver rejects (nothing changes, the server's words are shown), a kind whose CRD is
/// missing, a revision that does not exist.
#[test]
fn hook_policies_failures_and_bad_input() {
    if !enabled("hook_policies_failures_and_bad_input") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-fail"));
    let dest = nss.create(format!("{control}-dest"));
    let server = Server::start(&control);
    let repo = Repo::new();
    let hook = |name: &str, hook: &str, policy: &str, command: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations:\n    argocd.argoproj.io/hook: {hook}\n    argocd.argoproj.io/hook-delete-policy: {policy}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: docker.io/library/busybox:latest\n    imagePullPolicy: IfNotPresent\n    command: [\"sh\", \"-c\", \"{command}\"]\n"
        )
    };
    let cm = |name: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  key: {value}\n"
        )
    };
    // 1. A PreSync hook deleted when the sync succeeds.
    repo.write(
        "app/pre.yaml",
        &hook("pre", "PreSync", "HookSucceeded", "true"),
    );
    repo.write("app/cm.yaml", &cm("cm", "one"));
    repo.commit("hook succeeded policy");
    apply(&application(
        "fail",
        &control,
        &repo.url(),
        "app",
        &dest,
        false,
    ));
    let sync = r#"{"operation":{"sync":{"prune":true},"initiatedBy":{"username":"e2e"}}}"#;
    let patch_op = || {
        kubectl(
            &[
                "patch",
                "applications.argoproj.io",
                "fail",
                "-n",
                &control,
                "--type=merge",
                "-p",
                sync,
            ],
            None,
        )
    };
    patch_op();
    let st = wait_synced_healthy(&server, &control, "fail", Duration::from_secs(120));
    let pre = sync_results(&st)
        .into_iter()
        .find(|r| r["name"] == "pre")
        .expect("pre hook result");
    assert_eq!(pre["hookPhase"], "Succeeded");
    wait_for(
        "the HookSucceeded hook deleted",
        Duration::from_secs(60),
        || {
            get("pod", &dest, "pre")
                .is_none()
                .then_some(())
                .ok_or("pre still present".to_owned())
        },
    );

    // 2. A failing Sync hook: the operation fails, the SyncFail hook runs.
    repo.remove("app/pre.yaml");
    repo.write(
        "app/bad-hook.yaml",
        &hook("bad-hook", "Sync", "BeforeHookCreation", "exit 3"),
    );
    repo.write(
        "app/on-fail.yaml",
        &hook("on-fail", "SyncFail", "BeforeHookCreation", "true"),
    );
    repo.commit("failing hook");
    kubectl(
        &[
            "annotate",
            "applications.argoproj.io",
            "fail",
            "-n",
            &control,
            "argocd.argoproj.io/refresh=normal",
            "--overwrite",
        ],
        None,
    );
    wait_for("the new revision compared", Duration::from_secs(60), || {
        let st = app_status(&control, "fail");
        (st["sync"]["revision"] != st["operationState"]["syncResult"]["revision"])
            .then_some(())
            .ok_or("not yet".to_owned())
    });
    patch_op();
    let st = wait_for("the failed operation", Duration::from_secs(120), || {
        let st = app_status(&control, "fail");
        (st["operationState"]["phase"] == "Failed")
            .then_some(st.clone())
            .ok_or(format!("{}", st["operationState"]["message"]))
    });
    let results = sync_results(&st);
    let on_fail = results
        .iter()
        .find(|r| r["name"] == "on-fail")
        .expect("SyncFail hook ran");
    assert_eq!(on_fail["hookPhase"], "Succeeded", "{on_fail}");
    let bad = results
        .iter()
        .find(|r| r["name"] == "bad-hook")
        .expect("bad hook");
    assert_eq!(bad["hookPhase"], "Failed", "{bad}");
    assert!(get("pod", &dest, "on-fail").is_some());

    // 3. An object the apiserver rejects: the operation fails with the server's message and
    //    nothing is applied (the server-side dry run runs first).
    repo.remove("app/bad-hook.yaml");
    repo.remove("app/on-fail.yaml");
    repo.write("app/cm.yaml", &cm("cm", "two"));
    repo.write(
        "app/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad-svc\nspec:\n  type: NotAType\n  ports:\n  - port: 80\n",
    );
    repo.commit("rejected service");
    patch_op();
    let message = wait_for("the rejected apply", Duration::from_secs(120), || {
        let st = app_status(&control, "fail");
        let m = st["operationState"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        (st["operationState"]["phase"] == "Failed" && m.contains("bad-svc"))
            .then_some(m.clone())
            .ok_or(m)
    });
    assert!(message.contains("NotAType"), "{message}");
    assert_eq!(
        get("configmap", &dest, "cm").expect("cm")["data"]["key"],
        "one",
        "applied despite the rejection"
    );

    // 4. A custom resource whose CRD is missing: a condition names it.
    repo.remove("app/svc.yaml");
    repo.write(
        "app/widget.yaml",
        "apiVersion: example.cairn.dev/v1\nkind: Widget\nmetadata:\n  name: w1\n",
    );
    repo.commit("unknown kind");
    let message = wait_for("the missing-CRD condition", Duration::from_secs(90), || {
        let st = app_status(&control, "fail");
        st["conditions"]
            .as_array()
            .and_then(|cs| {
                cs.iter().find_map(|c| {
                    c["message"]
                        .as_str()
                        .filter(|m| m.contains("Widget"))
                        .map(str::to_owned)
                })
            })
            .ok_or(format!("{}", st["conditions"]))
    });
    assert!(message.contains("w1"), "{message}");

    // 5. A revision that does not exist.
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "fail",
            "-n",
            &control,
            "--type=merge",
            "-p",
            r#"{"spec":{"source":{"targetRevision":"no-such-branch"}}}"#,
        ],
        None,
    );
    let message = wait_for("the revision condition", Duration::from_secs(90), || {
        let st = app_status(&control, "fail");
        st["conditions"]
            .as_array()
            .and_then(|cs| {
                cs.iter().find_map(|c| {
                    c["message"]
                        .as_str()
                        .filter(|m| m.contains("no-such-branch"))
                        .map(str::to_owned)
                })
            })
            .ok_or(format!("{}", st["conditions"]))
    });
    assert!(message.contains("not found"), "{message}");
    assert_eq!(
        get("configmap", &dest, "cm").expect("cm")["data"]["key"],
        "one"
    );
}

/// A multi-source app: the chart from one repository, its values file from another (`ref`).
#[test]
fn multi_source_with_ref_values() {
    if !enabled("multi_source_with_ref_values") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-multi"));
    let dest = nss.expect(format!("{control}-dest"));
    let server = Server::start(&control);
    let charts = Repo::new();
    charts.copy_tree(&Path::new(CONFORMANCE).join("helm-guestbook"), "guestbook");
    charts.commit("chart");
    let values = Repo::new();
    values.write("envs/dev.yaml", "replicas: 2\n");
    values.commit("values");
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "multi", "namespace": control},
        "spec": {
            "project": "default",
            "sources": [
                {"repoURL": charts.url(), "targetRevision": "main", "path": "guestbook",
                 "helm": {"valueFiles": ["$values/envs/dev.yaml"]}},
                {"repoURL": values.url(), "targetRevision": "main", "ref": "values"}
            ],
            "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
            "syncPolicy": {"automated": {}, "syncOptions": ["CreateNamespace=true"]}
        }
    });
    apply(&app);
    let st = wait_synced_healthy(&server, &control, "multi", Duration::from_secs(180));
    assert_eq!(
        st["sync"]["revisions"].as_array().map(Vec::len),
        Some(2),
        "{}",
        st["sync"]
    );
    assert_eq!(st["sourceTypes"], json!(["Helm"]));
    let d = get("deployment", &dest, "guestbook-ui").expect("deployment");
    assert_eq!(
        d["spec"]["replicas"], 2,
        "the values file of the ref source was used"
    );
    let h = &st["history"][0];
    assert_eq!(h["revisions"].as_array().map(Vec::len), Some(2), "{h}");
}

/// A second destination cluster from an Argo CD cluster Secret: the same lab reached through a
/// namespace-scoped ServiceAccount token, chosen by `destination.name`.
#[test]
fn second_cluster_from_a_namespace_scoped_secret() {
    if !enabled("second_cluster_from_a_namespace_scoped_secret") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-remote"));
    let remote_ns = nss.create(format!("{control}-remote"));
    let other_ns = nss.create(format!("{control}-other"));
    // A ServiceAccount that may manage only `remote_ns`.
    kubectl(
        &["create", "serviceaccount", "cairn-remote", "-n", &remote_ns],
        None,
    );
    kubectl(
        &[
            "create",
            "rolebinding",
            "cairn-remote-admin",
            "-n",
            &remote_ns,
            "--clusterrole=admin",
            &format!("--serviceaccount={remote_ns}:cairn-remote"),
        ],
        None,
    );
    let token = kubectl(
        &[
            "create",
            "token",
            "cairn-remote",
            "-n",
            &remote_ns,
            "--duration=1h",
        ],
        None,
    );
    let server_url = kubectl(
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
        None,
    );
    let ca = kubectl(
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
        None,
    );
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "remote-cluster", "namespace": control,
                     "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": {
            "name": "remote",
            "server": server_url.trim(),
            "namespaces": remote_ns,
            "config": json!({"bearerToken": token.trim(), "tlsClientConfig": {"caData": ca.trim()}}).to_string(),
        }
    });
    apply(&secret);
    let server = Server::start(&control);
    let repo = Repo::new();
    repo.write(
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: remote-cm\ndata:\n  k: v\n",
    );
    repo.commit("remote");
    let mut app = application("remote", &control, &repo.url(), "app", &remote_ns, true);
    app["spec"]["destination"] = json!({"name": "remote", "namespace": remote_ns});
    app["spec"]["syncPolicy"]["syncOptions"] = json!([]);
    apply(&app);
    wait_synced_healthy(&server, &control, "remote", Duration::from_secs(120));
    let cm: Value = serde_json::from_str(&kubectl(
        &[
            "get",
            "configmap",
            "remote-cm",
            "-n",
            &remote_ns,
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    ))
    .expect("synced through the second cluster");
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"cairn"), "{managers:?}");
    // A namespace the cluster does not manage is refused with a condition, nothing applied.
    let mut outside = application("outside", &control, &repo.url(), "app", &other_ns, true);
    outside["spec"]["destination"] = json!({"name": "remote", "namespace": other_ns});
    outside["spec"]["syncPolicy"]["syncOptions"] = json!([]);
    apply(&outside);
    let message = wait_for("the InvalidSpecError", Duration::from_secs(60), || {
        let st = app_status(&control, "outside");
        st["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "InvalidSpecError"))
            .and_then(|c| c["message"].as_str().map(str::to_owned))
            .ok_or(format!("{}", st["conditions"]))
    });
    assert!(
        message.contains("not managed by cluster remote"),
        "{message}"
    );
    // A sync requested anyway fails with the same reason instead of waiting forever.
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "outside",
            "-n",
            &control,
            "--type=merge",
            "-p",
            r#"{"operation":{"sync":{},"initiatedBy":{"username":"e2e"}}}"#,
        ],
        None,
    );
    let failed = wait_for("the refused operation", Duration::from_secs(60), || {
        let st = app_status(&control, "outside");
        (st["operationState"]["phase"] == "Failed")
            .then(|| {
                st["operationState"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .ok_or(format!("{}", st["operationState"]))
    });
    assert!(failed.contains("not managed by cluster remote"), "{failed}");
    assert!(get("configmap", &other_ns, "remote-cm").is_none());
}

/// Terminating a running operation (Argo CD: `status.operationState.phase: Terminating`) stops
/// it: the running hook is deleted and the operation fails as terminated, without a retry.
#[test]
fn terminate_a_running_operation() {
    if !enabled("terminate_a_running_operation") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-term"));
    let dest = nss.create(format!("{control}-dest"));
    let server = Server::start(&control);
    let repo = Repo::new();
    repo.write(
        "app/long.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: long\n  annotations:\n    argocd.argoproj.io/hook: Sync\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: main\n    image: docker.io/library/busybox:latest\n    imagePullPolicy: IfNotPresent\n    command: [\"sleep\", \"600\"]\n",
    );
    repo.commit("long hook");
    apply(&application(
        "term",
        &control,
        &repo.url(),
        "app",
        &dest,
        false,
    ));
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "term",
            "-n",
            &control,
            "--type=merge",
            "-p",
            r#"{"operation":{"sync":{},"retry":{"limit":3},"initiatedBy":{"username":"e2e"}}}"#,
        ],
        None,
    );
    wait_for("the long hook to run", Duration::from_secs(90), || {
        get("pod", &dest, "long")
            .map(|_| ())
            .ok_or("not yet".to_owned())
    });
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "term",
            "-n",
            &control,
            "--type=merge",
            "-p",
            r#"{"status":{"operationState":{"phase":"Terminating"}}}"#,
        ],
        None,
    );
    let st = wait_for("the terminated operation", Duration::from_secs(90), || {
        let st = app_status(&control, "term");
        (st["operationState"]["phase"] == "Failed")
            .then_some(st.clone())
            .ok_or(format!("{}", st["operationState"]["phase"]))
    });
    assert_eq!(
        st["operationState"]["message"],
        "Operation terminated",
        "{}",
        tail(&server.log(), 20)
    );
    wait_for("the hook deleted", Duration::from_secs(60), || {
        get("pod", &dest, "long")
            .is_none()
            .then_some(())
            .ok_or("still there".to_owned())
    });
    let app = get("applications.argoproj.io", &control, "term").expect("app");
    assert!(
        app.get("operation").is_none(),
        "terminated operation left in place: {}",
        app["operation"]
    );
}

/// `retry` of an operation: a failing sync is attempted again after its backoff, up to the
/// limit, then fails for good with the retry count recorded.
#[test]
fn failed_sync_is_retried_up_to_its_limit() {
    if !enabled("failed_sync_is_retried_up_to_its_limit") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-retry"));
    let dest = nss.create(format!("{control}-dest"));
    let server = Server::start(&control);
    let repo = Repo::new();
    repo.write(
        "app/svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  type: NotAType\n  ports:\n  - port: 80\n",
    );
    repo.commit("rejected");
    apply(&application(
        "retry",
        &control,
        &repo.url(),
        "app",
        &dest,
        false,
    ));
    kubectl(
        &[
            "patch",
            "applications.argoproj.io",
            "retry",
            "-n",
            &control,
            "--type=merge",
            "-p",
            r#"{"operation":{"sync":{},"retry":{"limit":2,"backoff":{"duration":"1s","factor":2}},"initiatedBy":{"username":"e2e"}}}"#,
        ],
        None,
    );
    let mut seen_retrying = false;
    let st = wait_for("the final failure", Duration::from_secs(120), || {
        let st = app_status(&control, "retry");
        let m = st["operationState"]["message"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        seen_retrying |= m.starts_with("Retrying attempt #");
        (st["operationState"]["phase"] == "Failed")
            .then_some(st.clone())
            .ok_or(m)
    });
    assert_eq!(
        st["operationState"]["retryCount"],
        2,
        "{}\n{}",
        st["operationState"],
        tail(&server.log(), 20)
    );
    assert!(
        st["operationState"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("NotAType")
    );
}

/// Drift is seen through watches of the tracked kinds, not only at the next resync: with a
/// resync interval of ten minutes, a kubectl edit is still reverted by self-heal.
#[test]
fn drift_is_seen_through_watches() {
    if !enabled("drift_is_seen_through_watches") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-watch"));
    let dest = nss.create(format!("{control}-dest"));
    let server = Server::start_with_resync(&control, "600s");
    let repo = Repo::new();
    repo.write(
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  key: one\n",
    );
    repo.commit("one");
    apply(&application(
        "watch",
        &control,
        &repo.url(),
        "app",
        &dest,
        true,
    ));
    wait_synced_healthy(&server, &control, "watch", Duration::from_secs(120));
    kubectl(
        &[
            "patch",
            "configmap",
            "watched",
            "-n",
            &dest,
            "--type=merge",
            "-p",
            r#"{"data":{"key":"drifted"}}"#,
        ],
        None,
    );
    wait_for(
        "self-heal through the watch",
        Duration::from_secs(90),
        || {
            let v = get("configmap", &dest, "watched").ok_or("missing")?;
            (v["data"]["key"] == "one")
                .then_some(())
                .ok_or(format!("{}", v["data"]))
        },
    );
}

/// A CRD and a custom resource of it in the same sync: the resource waits for its CRD
/// (SkipDryRunOnMissingResource is implied for it), and both end Synced.
#[test]
fn crd_and_its_resource_in_one_sync() {
    if !enabled("crd_and_its_resource_in_one_sync") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-crd"));
    let dest = nss.create(format!("{control}-dest"));
    let group = format!("{control}.e2e.cairn.dev");
    struct Crd(String);
    impl Drop for Crd {
        fn drop(&mut self) {
            let _ = Command::new("kubectl")
                .args([
                    "delete",
                    "crd",
                    &self.0,
                    "--wait=false",
                    "--ignore-not-found",
                ])
                .output();
        }
    }
    let _crd = Crd(format!("widgets.{group}"));
    let server = Server::start(&control);
    let repo = Repo::new();
    repo.write(
        "app/crd.yaml",
        &format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    plural: widgets\n    singular: widget\n    kind: Widget\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
        ),
    );
    repo.write(
        "app/widget.yaml",
        &format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n"),
    );
    repo.commit("crd and cr");
    apply(&application(
        "crd",
        &control,
        &repo.url(),
        "app",
        &dest,
        true,
    ));
    wait_synced_healthy(&server, &control, "crd", Duration::from_secs(120));
    let (ok, out, err) = kubectl_out(
        &[
            "get",
            &format!("widgets.{group}"),
            "w1",
            "-n",
            &dest,
            "-o",
            "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let w: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(w["spec"]["size"], 3);
}

/// `Replace=true`, `PruneLast=true` and `managedNamespaceMetadata` against the lab:
/// - the namespace made by `CreateNamespace=true` carries the managed labels and annotations;
/// - a `Replace=true` object is replaced whole (a label another manager added is gone after the
///   next sync, and the write is an `Update`, not an `Apply`), while a server-side-applied
///   neighbour keeps that label;
/// - with `PruneLast=true` the ConfigMap removed from Git still exists while the next wave's
///   Deployment is not yet Available, and is gone once the sync has finished.
#[test]
fn replace_prune_last_and_managed_namespace_metadata() {
    if !enabled("replace_prune_last_and_managed_namespace_metadata") {
        return;
    }
    let mut nss = Namespaces(Vec::new());
    let control = nss.create(unique("gx-opts"));
    let dest = nss.expect(format!("{control}-dest"));
    let server = Server::start(&control);
    let repo = Repo::new();
    let cm = |name: &str, value: &str, annotations: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{annotations}data:\n  key: \"{value}\"\n"
        )
    };
    let replace = "  annotations:\n    argocd.argoproj.io/sync-options: Replace=true\n";
    repo.write("app/replaced.yaml", &cm("replaced", "one", replace));
    repo.write("app/applied.yaml", &cm("applied", "one", ""));
    repo.write("app/doomed.yaml", &cm("doomed", "one", ""));
    repo.commit("one");
    let mut app = application("opts", &control, &repo.url(), "app", &dest, true);
    app["spec"]["syncPolicy"]["syncOptions"] = json!(["CreateNamespace=true", "PruneLast=true"]);
    app["spec"]["syncPolicy"]["managedNamespaceMetadata"] = json!({
        "labels": {"team": "ml"},
        "annotations": {"cairn.dev/owner": "e2e"}
    });
    apply(&app);
    wait_synced_healthy(&server, &control, "opts", Duration::from_secs(120));

    let ns = get("namespace", "", &dest).expect("the destination namespace was created");
    assert_eq!(ns["metadata"]["labels"]["team"], "ml", "{ns}");
    assert_eq!(
        ns["metadata"]["annotations"]["cairn.dev/owner"], "e2e",
        "{ns}"
    );
    let replaced = get("configmap", &dest, "replaced").expect("replaced");
    let operations: Vec<String> = replaced["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["operation"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !operations.iter().any(|o| o == "Apply"),
        "Replace=true must not server-side apply: {replaced}"
    );

    // Another manager labels both; Git changes both.
    for name in ["replaced", "applied"] {
        kubectl(
            &["label", "configmap", name, "-n", &dest, "extra=by-kubectl"],
            None,
        );
    }
    repo.write("app/replaced.yaml", &cm("replaced", "two", replace));
    repo.write("app/applied.yaml", &cm("applied", "two", ""));
    // The next wave holds a Deployment that takes a few seconds to become Available; the
    // ConfigMap removed from Git must outlive that wait.
    repo.remove("app/doomed.yaml");
    repo.write(
        "app/slow.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: slow\n  annotations:\n    argocd.argoproj.io/sync-wave: \"1\"\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: slow}\n  template:\n    metadata:\n      labels: {app: slow}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        image: docker.io/library/busybox:latest\n        imagePullPolicy: IfNotPresent\n        command: [sleep, \"3600\"]\n        readinessProbe:\n          exec: {command: [\"true\"]}\n          initialDelaySeconds: 8\n          periodSeconds: 1\n",
    );
    repo.commit("two");

    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen_waiting = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "the second sync did not finish: {}\n{}",
            app_status(&control, "opts"),
            tail(&server.log(), 40)
        );
        let slow = get("deployment", &dest, "slow");
        let doomed = get("configmap", &dest, "doomed");
        if let Some(slow) = &slow {
            let available = slow["status"]["availableReplicas"].as_i64().unwrap_or(0) >= 1;
            if !available {
                assert!(
                    doomed.is_some(),
                    "PruneLast: doomed was pruned before the Deployment of wave 1 was Available"
                );
                seen_waiting += 1;
            }
        }
        let st = app_status(&control, "opts");
        if slow.is_some()
            && doomed.is_none()
            && st["sync"]["status"] == "Synced"
            && st["health"]["status"] == "Healthy"
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        seen_waiting > 0,
        "the Deployment was never seen before it was Available: the ordering was not observed"
    );

    let replaced = get("configmap", &dest, "replaced").expect("replaced");
    assert_eq!(replaced["data"]["key"], "two");
    assert!(
        replaced["metadata"]["labels"]["extra"].is_null(),
        "Replace=true keeps only what Git says: {replaced}"
    );
    let applied = get("configmap", &dest, "applied").expect("applied");
    assert_eq!(applied["data"]["key"], "two");
    assert_eq!(
        applied["metadata"]["labels"]["extra"], "by-kubectl",
        "server-side apply keeps another manager's fields: {applied}"
    );
}
