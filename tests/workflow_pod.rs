//! The executor on a real cluster: pods built by `workflow::pod::build_pod` run the user's
//! command through `cairn exec` (the executor image installed by the `init` container), the
//! wrapper writes the node's WorkflowTaskResult with the pod's service account (RBAC from
//! `executor_rbac`), and `observe` reads the outcome back.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image loaded
//! (`make executor`), and `kubectl` on PATH (namespace cleanup). Skipped only when CAIRN_E2E is
//! not set. Works in its own namespace (`cairn-h2-pod-...`), deleted at the end. Every wait is
//! bounded; nothing asserts on timing.

use std::process::{Command, Stdio};
use std::time::Duration;

use cairn::k8s;
use cairn::workflow::node::{PodObservation, PodPhase, PodRequest, node_id, pod_name};
use cairn::workflow::pod::{PodSettings, build_pod, executor_rbac, observe};
use cairn::workflow::types::{Template, Workflow, WorkflowSpec, WorkflowTaskResult};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, LogParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

/// Bound of the wait for all pods of the test to finish (image pulls included).
const POD_BOUND: Duration = Duration::from_secs(240);

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

/// Fails at once, saying what to do, when no node holds the executor image (its pull policy is
/// IfNotPresent and the lab cannot pull `localhost/...`), instead of timing out on pods.
async fn assert_executor_image_loaded(client: &Client) {
    let image = PodSettings::default().executor_image;
    let nodes = Api::<Node>::all(client.clone())
        .list(&Default::default())
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
        "the executor image {image} is on no node: run `make executor` (it loads it into the lab)"
    );
}

fn template(value: Value) -> Template {
    serde_json::from_value(value).expect("template")
}

fn request(ns: &str, wf: &Workflow, template: Template, capture: bool) -> PodRequest {
    let wf_name = wf.metadata.name.clone().expect("name");
    let node_name = format!("{wf_name}[0].{}", template.name);
    PodRequest {
        namespace: ns.to_string(),
        workflow_uid: wf.metadata.uid.clone().expect("uid"),
        node_id: node_id(&wf_name, &node_name),
        pod_name: pod_name(&wf_name, &template.name, &node_name),
        node_name,
        workflow_name: wf_name,
        template,
        spec: WorkflowSpec::default(),
        capture_result: capture,
        active_deadline_seconds: Some(600),
        artifact_repository: None,
    }
}

/// Polls the pod and its task result until `done` holds for the observation, within the bound.
async fn wait_observed(
    client: &Client,
    ns: &str,
    req: &PodRequest,
    done: impl Fn(&PodObservation) -> bool,
) -> (PodObservation, Option<WorkflowTaskResult>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let results: Api<WorkflowTaskResult> = Api::namespaced(client.clone(), ns);
    let deadline = tokio::time::Instant::now() + POD_BOUND;
    loop {
        let pod = pods.get(&req.pod_name).await.expect("get pod");
        let result = results
            .get_opt(&req.node_id)
            .await
            .expect("get task result");
        let seen = observe(&pod, result.as_ref());
        if done(&seen) {
            return (seen, result);
        }
        if tokio::time::Instant::now() > deadline {
            let logs = pods
                .logs(
                    &req.pod_name,
                    &LogParams {
                        container: Some("main".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap_or_default();
            panic!(
                "pod {} not done within {POD_BOUND:?}: {seen:?}\nstatus: {:?}\nmain log: {logs}\n\
                 (is the executor image loaded? `make executor`)",
                req.pod_name, pod.status
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn finished(o: &PodObservation) -> bool {
    matches!(
        o.phase,
        PodPhase::Succeeded | PodPhase::Failed | PodPhase::Error
    ) && o.outputs_reported
}

fn parameter(result: &WorkflowTaskResult, name: &str) -> Option<Value> {
    result
        .outputs
        .as_ref()?
        .parameters
        .as_ref()?
        .iter()
        .find(|p| p.name == name)?
        .value
        .clone()
}

#[tokio::test]
async fn executor_pods_report_outputs_and_phases() {
    let Some(()) = e2e("executor_pods_report_outputs_and_phases") else {
        return;
    };
    let client = reachable_client().await;
    k8s::crds::install(&client).await.expect("install CRDs");
    assert_executor_image_loaded(&client).await;

    let stamp = jiff::Timestamp::now().as_millisecond();
    let ns_name = format!("cairn-h2-pod-{}-{}", std::process::id(), stamp % 100_000);
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}})).expect("ns"),
        )
        .await
        .expect("create namespace");
    let _guard = TestNamespace(ns_name.clone());
    let ns = ns_name.as_str();

    // The default ServiceAccount appears asynchronously (the controller-manager makes it).
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let mut tries = 0;
    while sas.get_opt("default").await.expect("get sa").is_none() {
        tries += 1;
        assert!(tries < 120, "no default ServiceAccount in {ns} after 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (role, binding) = executor_rbac(ns, "default");
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create rolebinding");

    // The owner of every pod and task result.
    let wf: Workflow = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "exec-e2e", "namespace": ns},
        "spec": {"entrypoint": "x", "templates": [{"name": "x", "suspend": {}}]}
    }))
    .expect("workflow");
    let wf = Api::<Workflow>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &wf)
        .await
        .expect("create workflow");

    let settings = PodSettings::default();
    let echo = request(
        ns,
        &wf,
        template(json!({"name": "echo",
        "container": {"image": "busybox", "command": ["sh", "-c"],
                      "args": ["printf 'hello world' > /tmp/out; echo logged"]},
        "outputs": {"parameters": [
            {"name": "greeting", "valueFrom": {"path": "/tmp/out"}},
            {"name": "fallback", "valueFrom": {"path": "/tmp/missing", "default": "dflt"}}
        ]}})),
        false,
    );
    let script = request(
        ns,
        &wf,
        template(json!({"name": "py",
            // Non-root everywhere: the init container and the script file must cope.
            "securityContext": {"runAsNonRoot": true},
            "script": {"image": "python:alpine3.23", "command": ["python"],
                       "securityContext": {"runAsUser": 1000},
                       "source": "import sys\nprint(6 * 7)\nprint('to stderr', file=sys.stderr)\n"}})),
        false,
    );
    // `capture` (a workflow naming `outputs.result`) puts the executor in these pods: a plain
    // container needing nothing from it runs without it (the `bare` case below).
    let failing = request(
        ns,
        &wf,
        template(json!({"name": "fail",
            "container": {"image": "busybox", "command": ["sh", "-c", "echo failing; exit 3"]}})),
        true,
    );
    let bare = request(
        ns,
        &wf,
        template(json!({"name": "bare",
            "container": {"image": "busybox", "command": ["sh", "-c", "echo bare; exit 4"]}})),
        false,
    );
    let bad_image = request(
        ns,
        &wf,
        template(json!({"name": "badimage",
            "container": {"image": "localhost/cairn/does-not-exist:0", "command": ["true"]}})),
        false,
    );
    let mut deadline = request(
        ns,
        &wf,
        template(json!({"name": "deadline",
            "container": {"image": "busybox", "command": ["sleep", "600"]}})),
        true,
    );
    deadline.active_deadline_seconds = Some(5);
    // A service account without the executor's RBAC: the report is refused (403, not retried),
    // the refusal is printed, and the command's exit code still decides the pod.
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "no-rbac"}})).expect("sa"),
    )
    .await
    .expect("create service account");
    let unreported = request(
        ns,
        &wf,
        template(
            json!({"name": "unreported", "serviceAccountName": "no-rbac",
            "container": {"image": "busybox", "command": ["sh", "-c", "exit 5"]}}),
        ),
        true,
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for req in [
        &echo,
        &script,
        &failing,
        &bare,
        &bad_image,
        &deadline,
        &unreported,
    ] {
        let pod = build_pod(req, &settings).expect("build pod");
        let created = pods
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("create pod {}: {e}", req.pod_name));
        assert_eq!(created.name_any(), req.pod_name);
    }

    // 1. Output parameter from a file (and a default), exit code 0.
    let (seen, result) = wait_observed(&client, ns, &echo, finished).await;
    assert_eq!(seen.phase, PodPhase::Succeeded, "{seen:?}");
    let result = result.expect("task result");
    assert_eq!(parameter(&result, "greeting"), Some(json!("hello world")));
    assert_eq!(parameter(&result, "fallback"), Some(json!("dflt")));
    assert_eq!(result.phase.as_deref(), Some("Succeeded"));
    let labels = result.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("workflows.argoproj.io/workflow")
            .map(String::as_str),
        Some("exec-e2e")
    );
    let owner = &result.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(Some(&owner.uid), wf.metadata.uid.as_ref());
    assert_eq!(
        seen.outputs.as_ref().and_then(|o| o.exit_code.as_deref()),
        Some("0")
    );
    assert!(seen.started_at.is_some() && seen.finished_at.is_some());
    let log = pods
        .logs(
            &echo.pod_name,
            &LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    assert!(log.contains("logged"), "passthrough of stdout: {log:?}");

    // 2. A python script: its stdout is the result.
    let (seen, result) = wait_observed(&client, ns, &script, finished).await;
    assert_eq!(seen.phase, PodPhase::Succeeded, "{seen:?}");
    assert_eq!(
        seen.outputs.as_ref().and_then(|o| o.result.as_deref()),
        Some("42")
    );
    assert_eq!(
        result
            .and_then(|r| r.outputs)
            .and_then(|o| o.result)
            .as_deref(),
        Some("42")
    );

    // 3. A failing command: Failed with Argo's message and the exit code, still reported.
    let (seen, result) = wait_observed(&client, ns, &failing, finished).await;
    assert_eq!(seen.phase, PodPhase::Failed, "{seen:?}");
    assert_eq!(seen.message.as_deref(), Some("main: Error (exit code 3)"));
    assert_eq!(
        seen.outputs.as_ref().and_then(|o| o.exit_code.as_deref()),
        Some("3")
    );
    let result = result.expect("a failed command is reported too");
    assert_eq!(result.phase.as_deref(), Some("Failed"));

    // 3b. The same without the executor: the pod status is the whole report.
    let (seen, result) = wait_observed(&client, ns, &bare, finished).await;
    assert_eq!(seen.phase, PodPhase::Failed, "{seen:?}");
    assert_eq!(seen.message.as_deref(), Some("main: Error (exit code 4)"));
    assert_eq!(
        seen.outputs.as_ref().and_then(|o| o.exit_code.as_deref()),
        Some("4")
    );
    assert!(seen.outputs_reported, "no report is awaited: {seen:?}");
    assert!(result.is_none(), "no executor, no task result");
    let pod = pods.get(&bare.pod_name).await.expect("bare pod");
    let spec = pod.spec.expect("spec");
    assert!(spec.init_containers.unwrap_or_default().is_empty());
    assert_eq!(
        spec.containers[0].command.as_deref(),
        Some(&["sh".to_string(), "-c".into(), "echo bare; exit 4".into()][..])
    );

    // 4. An image that does not exist: Error (after the kubelet's first back-off).
    let (seen, result) =
        wait_observed(&client, ns, &bad_image, |o| o.phase == PodPhase::Error).await;
    assert!(seen.outputs_reported, "no report can come: {seen:?}");
    let message = seen.message.clone().unwrap_or_default();
    assert!(
        message.starts_with("main: ImagePullBackOff")
            || message.starts_with("main: InvalidImageName"),
        "{message}"
    );
    assert!(result.is_none(), "the wrapper never ran");

    // 5. activeDeadlineSeconds: the kubelet stops the pod, the wrapper forwards SIGTERM to
    //    `sleep`, reports, and the node fails with the pod's own message (Argo).
    let (seen, result) = wait_observed(&client, ns, &deadline, finished).await;
    assert_eq!(seen.phase, PodPhase::Failed, "{seen:?}");
    assert!(
        seen.message
            .as_deref()
            .is_some_and(|m| m.contains("deadline")),
        "{seen:?}"
    );
    let result = result.expect("the wrapper reports after forwarding SIGTERM");
    assert_eq!(
        result.outputs.and_then(|o| o.exit_code).as_deref(),
        Some("143"),
        "sleep killed by the forwarded SIGTERM"
    );

    // 6. Reporting refused: exit code kept, refusal on stderr, no report (the controller's wait
    //    for it is bounded on its side).
    let (seen, result) =
        wait_observed(&client, ns, &unreported, |o| o.phase == PodPhase::Failed).await;
    assert_eq!(seen.message.as_deref(), Some("main: Error (exit code 5)"));
    assert!(result.is_none());
    assert!(!seen.outputs_reported);
    let log = pods
        .logs(
            &unreported.pod_name,
            &LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
        .expect("logs");
    assert!(
        log.contains("writing WorkflowTaskResult") && log.contains("1 attempt(s)"),
        "{log}"
    );
    assert!(
        !log.contains("Bearer") && !log.contains("eyJ"),
        "no token in the output: {log}"
    );
}

// ------------------------------------------------------------------ the binary, no cluster

/// Runs the built `cairn` with `args` and `env` (no reporting variables unless given).
fn cairn(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.args(args).stdin(Stdio::null());
    for key in [
        "CAIRN_EXEC_SPEC",
        "CAIRN_NAMESPACE",
        "CAIRN_WORKFLOW_NAME",
        "CAIRN_WORKFLOW_UID",
        "CAIRN_NODE_ID",
        "CAIRN_POD_NAME",
    ] {
        cmd.env_remove(key);
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("run cairn")
}

#[test]
fn cairn_exec_propagates_exit_codes_and_passes_stdout_through() {
    let out = cairn(
        &["exec", "--", "sh", "-c", "echo out; echo err >&2; exit 7"],
        &[],
    );
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));

    let out = cairn(&["exec", "--", "true"], &[]);
    assert_eq!(out.status.code(), Some(0));

    // Not found: 127, as a shell reports it, with the reason on stderr.
    let out = cairn(&["exec", "--", "/nonexistent/program"], &[]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/program"),
        "{out:?}"
    );
}

#[test]
fn cairn_exec_fails_with_64_when_outputs_cannot_be_collected() {
    let spec = r#"{"outputs":[{"name":"p","valueFrom":{"path":"/nonexistent/p"}}]}"#;
    let out = cairn(&["exec", "--", "true"], &[("CAIRN_EXEC_SPEC", spec)]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outputs.parameters.p"),
        "{out:?}"
    );
    let out = cairn(&["exec", "--", "true"], &[("CAIRN_EXEC_SPEC", "{not json")]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid JSON"));
}

#[test]
fn cairn_exec_writes_the_script_and_names_a_partial_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script");
    let spec = json!({"script": true, "scriptSource": "echo from script", "scriptPath": path});
    let out = cairn(
        &["exec", "--", "sh", path.to_str().expect("utf-8")],
        &[
            ("CAIRN_EXEC_SPEC", &spec.to_string()),
            // Only some reporting variables: the run still happens, the gap is named.
            ("CAIRN_NODE_ID", "n-1"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from script\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CAIRN_NAMESPACE"),
        "{out:?}"
    );
}

#[test]
fn cairn_exec_init_installs_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("cairn");
    let out = cairn(&["exec-init", dest.to_str().expect("utf-8")], &[]);
    assert!(out.status.success(), "{out:?}");
    let copied = Command::new(&dest)
        .arg("version")
        .output()
        .expect("run the copy");
    assert!(copied.status.success());
    assert!(String::from_utf8_lossy(&copied.stdout).starts_with("cairn "));
    let out = cairn(&["exec-init", "/nonexistent-dir/cairn"], &[]);
    assert_eq!(out.status.code(), Some(1));
}
