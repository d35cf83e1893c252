//! Resource templates on the lab: a real `cairn server` (its own namespace, its own controller
//! instance id) runs Argo's `k8s-jobs`-style workflow — a `create` of a Job with
//! `successCondition: status.succeeded > 0` / `failureCondition: status.failed > 3` and
//! `setOwnerReference`, then a ConfigMap `create` and a `get` whose `jsonPath` output feeds the
//! next step — to `Succeeded`; and a Job that fails ends the workflow `Failed` with Argo's
//! "failure condition ... evaluated true" message.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`), `kubectl` on PATH and the images
//! `busybox:latest` (the Job) and the executor image (the step after the `get`). Skipped only
//! when CAIRN_E2E is not set. Every wait is bounded; nothing asserts on timing.

#[path = "common/spawn.rs"]
mod spawn;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn::workflow::types::Workflow;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

/// The controller instance id of the test servers (other cairn servers leave their objects);
/// each test adds its own suffix, so the two tests' servers never run each other's workflows.
const INSTANCE: &str = "cairn-h7-resource";
/// Bound of the wait for a workflow to finish (Job pod start included).
const RUN_BOUND: Duration = Duration::from_secs(240);

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
    async fn start(namespace: &str, instance: &str) -> Server {
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
                 [workflow]\nnamespaces = [\"{namespace}\"]\nworkers = 2\n\
                 instance_id = \"{instance}\"\n"
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

    /// kill -9 (if running), then start again on the same data directory.
    async fn restart(&mut self) {
        let _ = self.child.kill();
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

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
    }
}

fn job_manifest(name: &str, exit: u8) -> String {
    job_manifest_with(&format!("name: {name}"), &format!("exit {exit}"))
}

/// A Job manifest with `name_line` (`name: x` or `generateName: x-`) running `script`.
fn job_manifest_with(name_line: &str, script: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  {name_line}\nspec:\n  backoffLimit: 0\n  \
         template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: main\n        \
         image: busybox:latest\n        imagePullPolicy: IfNotPresent\n        \
         command: [sh, -c, '{script}']\n"
    )
}

fn workflow(name: &str, instance: &str, spec: Value) -> Workflow {
    serde_json::from_value(json!({
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
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn node<'a>(wf: &'a Workflow, display: &str) -> &'a cairn::workflow::types::NodeStatus {
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .and_then(|n| {
            n.values()
                .find(|n| n.display_name.as_deref() == Some(display))
        })
        .unwrap_or_else(|| panic!("no node {display}"))
}

#[tokio::test]
async fn resource_templates_run_jobs_and_read_outputs_on_the_lab() {
    if std::env::var_os("CAIRN_E2E").is_none() {
        eprintln!(
            "SKIP: CAIRN_E2E is not set (set CAIRN_E2E=1 with KUBECONFIG pointing at the lab)"
        );
        return;
    }
    let client = cairn::k8s::client()
        .await
        .unwrap_or_else(|e| panic!("CAIRN_E2E is set but no cluster is configured: {e}"));
    let suffix = std::process::id();
    let ns = format!("cairn-h7-res-{suffix}");
    kubectl(&["create", "namespace", &ns]);
    let _guard = TestNamespace(ns.clone());
    let instance = format!("{INSTANCE}-jobs");
    let server = Server::start(&ns, &instance).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns);

    // Argo's k8s-jobs example, plus a ConfigMap create + get with a jsonPath output.
    let ok = workflow(
        "k8s-jobs",
        &instance,
        json!({
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [
                    [{"name": "job", "template": "pi-tmpl"}],
                    [{"name": "make-cm", "template": "make-cm"}],
                    [{"name": "read-cm", "template": "read-cm"}],
                    [{"name": "check", "template": "check", "arguments": {"parameters": [
                        {"name": "v", "value": "{{steps.read-cm.outputs.parameters.value}}"}]}}]
                ]},
                {"name": "pi-tmpl", "resource": {
                    "action": "create",
                    "setOwnerReference": true,
                    "successCondition": "status.succeeded > 0",
                    "failureCondition": "status.failed > 3",
                    "manifest": job_manifest("pi-{{workflow.name}}", 0),
                },
                 "outputs": {"parameters": [
                    {"name": "job-name", "valueFrom": {"jsonPath": "{.metadata.name}"}}]}},
                {"name": "make-cm", "resource": {
                    "action": "create",
                    "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{workflow.name}}\ndata:\n  greeting: hello-resource\n",
                }},
                {"name": "read-cm", "resource": {
                    "action": "get",
                    "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{workflow.name}}\n",
                },
                 "outputs": {"parameters": [
                    {"name": "value", "valueFrom": {"jsonPath": "{.data.greeting}"}}]}},
                // A resource step checks the output reached its consumer: it succeeds only if
                // the ConfigMap it reads has the label the value was substituted into.
                {"name": "check", "inputs": {"parameters": [{"name": "v"}]}, "resource": {
                    "action": "apply",
                    "successCondition": "metadata.labels.seen == hello-resource",
                    "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: seen-{{workflow.name}}\n  labels:\n    seen: '{{inputs.parameters.v}}'\n",
                }},
            ],
        }),
    );
    api.create(&PostParams::default(), &ok)
        .await
        .expect("create workflow");
    let fail = workflow(
        "k8s-jobs-fail",
        &instance,
        json!({
            "entrypoint": "pi-tmpl",
            "templates": [{"name": "pi-tmpl", "resource": {
                "action": "create",
                "successCondition": "status.succeeded > 0",
                // backoffLimit 0: one failed pod fails the Job.
                "failureCondition": "status.failed > 0",
                "manifest": job_manifest("pi-fail", 1),
            }}],
        }),
    );
    api.create(&PostParams::default(), &fail)
        .await
        .expect("create workflow");

    let done = wait_finished(&api, "k8s-jobs", &server).await;
    let status = done.status.clone().unwrap_or_default();
    assert_eq!(
        status.phase.as_deref(),
        Some("Succeeded"),
        "{}\n{}",
        serde_json::to_string_pretty(&status).unwrap_or_default(),
        server.log()
    );
    let job_node = node(&done, "job");
    let job_name = job_node
        .outputs
        .as_ref()
        .and_then(|o| o.parameters.as_ref())
        .and_then(|p| p.iter().find(|p| p.name == "job-name"))
        .and_then(|p| p.value.clone());
    assert_eq!(job_name, Some(json!("pi-k8s-jobs")));
    let read = node(&done, "read-cm");
    let value = read
        .outputs
        .as_ref()
        .and_then(|o| o.parameters.as_ref())
        .and_then(|p| p.first())
        .and_then(|p| p.value.clone());
    assert_eq!(value, Some(json!("hello-resource")));
    // The Job really ran to completion and is owned by the workflow.
    let job: Value = serde_json::from_str(&kubectl(&[
        "-n",
        &ns,
        "get",
        "job",
        "pi-k8s-jobs",
        "-o",
        "json",
    ]))
    .expect("job json");
    assert!(
        job["status"]["succeeded"].as_i64().unwrap_or(0) > 0,
        "{job}"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "Workflow");
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["uid"].as_str(),
        done.metadata.uid.as_deref()
    );

    let failed = wait_finished(&api, "k8s-jobs-fail", &server).await;
    let status = failed.status.clone().unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Failed"), "{}", server.log());
    let root = node(&failed, "k8s-jobs-fail");
    assert_eq!(
        root.message.as_deref(),
        Some("failure condition 'status.failed>0' evaluated true")
    );
}

/// kill -9 of cairn while a resource node waits on a `generateName` Job: the restarted
/// controller reads the recorded Job again (the node keeps its object in `.status.nodes`) and
/// completes the workflow without creating a second Job.
#[tokio::test]
async fn a_restart_while_a_job_runs_neither_recreates_nor_loses_it() {
    if std::env::var_os("CAIRN_E2E").is_none() {
        eprintln!(
            "SKIP: CAIRN_E2E is not set (set CAIRN_E2E=1 with KUBECONFIG pointing at the lab)"
        );
        return;
    }
    let client = cairn::k8s::client()
        .await
        .unwrap_or_else(|e| panic!("CAIRN_E2E is set but no cluster is configured: {e}"));
    let ns = format!("cairn-h7-restart-{}", std::process::id());
    kubectl(&["create", "namespace", &ns]);
    let _guard = TestNamespace(ns.clone());
    let instance = format!("{INSTANCE}-restart");
    let mut server = Server::start(&ns, &instance).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns);
    let wf = workflow(
        "k8s-jobs-restart",
        &instance,
        json!({
            "entrypoint": "pi-tmpl",
            "templates": [{"name": "pi-tmpl", "resource": {
                "action": "create",
                "successCondition": "status.succeeded > 0",
                "failureCondition": "status.failed > 3",
                "manifest": job_manifest_with("generateName: pi-job-", "sleep 8"),
            }}],
        }),
    );
    api.create(&PostParams::default(), &wf)
        .await
        .expect("create workflow");
    // Wait (bounded) until the node records the Job it waits on.
    let deadline = Instant::now() + RUN_BOUND;
    loop {
        let now = api.get("k8s-jobs-restart").await.expect("get workflow");
        let recorded = now
            .status
            .as_ref()
            .and_then(|s| s.nodes.as_ref())
            .and_then(|n| n.get("k8s-jobs-restart"))
            .is_some_and(|n| n.extra.contains_key("cairnResource"));
        if recorded {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node never recorded its Job:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.restart().await;
    let done = wait_finished(&api, "k8s-jobs-restart", &server).await;
    assert_eq!(
        done.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded"),
        "{}",
        server.log()
    );
    let jobs = kubectl(&["-n", &ns, "get", "jobs", "-o", "name"]);
    let jobs: Vec<&str> = jobs.lines().filter(|l| l.contains("pi-job-")).collect();
    assert_eq!(jobs.len(), 1, "exactly one Job: {jobs:?}\n{}", server.log());
}
