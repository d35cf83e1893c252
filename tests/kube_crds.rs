//! The Argo CRDs against a real apiserver: idempotent install, `kubectl` acceptance of the
//! conformance manifests (server-side and client-side apply, `create` for generateName), and
//! typed reads of what kubectl created.
//!
//! Needs a cluster from KUBECONFIG (the lab: `eval "$(integration-tests/lab/env)"`) and `kubectl`
//! on PATH. Skipped only when CAIRN_E2E is not set; with CAIRN_E2E set, an unreachable cluster is
//! a failure. Each test works in its own namespace and deletes it at the end.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn::events::types as ev;
use cairn::gitops::types as go;
use cairn::k8s::{self, crds::Change};
use cairn::workflow::types as wf;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Bound of every kubectl call, so a wedged apiserver fails the test instead of hanging it.
const KUBECTL_TIMEOUT: &str = "60s";

/// None (after printing why) when the end-to-end tier is off.
fn e2e(test: &str) -> Option<()> {
    if std::env::var_os("CAIRN_E2E").is_none() {
        eprintln!(
            "SKIP {test}: CAIRN_E2E is not set (set CAIRN_E2E=1 with KUBECONFIG pointing at the lab)"
        );
        return None;
    }
    Some(())
}

/// A client for a reachable cluster, or a failure that says what to do.
async fn reachable_client() -> Client {
    let client = match k8s::client().await {
        Ok(c) => c,
        Err(e) => panic!("CAIRN_E2E is set but no cluster is configured: {e}"),
    };
    if let Err(e) = k8s::ping(&client, Duration::from_secs(10)).await {
        panic!(
            "CAIRN_E2E is set but the cluster is not reachable ({e}); start the lab with \
             integration-tests/lab/up and eval \"$(integration-tests/lab/env)\""
        );
    }
    client
}

/// Runs kubectl with `args`, feeding `stdin`; returns stdout, or panics with stderr.
fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new("kubectl");
    cmd.arg(format!("--request-timeout={KUBECTL_TIMEOUT}"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl (is it on PATH?): {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input.as_bytes())
            .expect("write kubectl stdin");
    }
    let out = child.wait_with_output().expect("kubectl output");
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace deleted (without waiting) when dropped, even if the test panics.
struct TestNamespace(String);

impl TestNamespace {
    fn create(prefix: &str) -> Self {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            rand::random::<u32>() % 100_000
        );
        kubectl(&["create", "namespace", &name], None);
        TestNamespace(name)
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

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance")
}

/// Every argoproj.io document of the conformance fixtures: (file/doc label, YAML text, JSON).
fn conformance_argo_documents() -> Vec<(String, String, Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read conformance dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    let dir = conformance_dir();
    let mut files = Vec::new();
    walk(&dir, &mut files);
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let rel = file
            .strip_prefix(&dir)
            .unwrap_or(&file)
            .display()
            .to_string();
        let mut current = String::new();
        let mut chunks = Vec::new();
        for line in text.lines() {
            if line == "---" || line.starts_with("--- ") {
                chunks.push(std::mem::take(&mut current));
            } else {
                current.push_str(line);
                current.push('\n');
            }
        }
        chunks.push(current);
        for (i, chunk) in chunks.into_iter().enumerate() {
            let Ok(value) = serde_saphyr::from_str::<Value>(&chunk) else {
                continue; // Helm templates; crd_roundtrip checks everything else parses.
            };
            let is_argo = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|v| v.starts_with("argoproj.io/"));
            if is_argo {
                docs.push((format!("{rel}#{i}"), chunk, value));
            }
        }
    }
    assert!(
        !docs.is_empty(),
        "no argoproj.io manifests under {}",
        dir.display()
    );
    docs
}

/// Reads `name` through the typed Api and checks the stored spec (and labels/annotations)
/// equal the manifest's.
async fn assert_read_back<K>(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    input: &Value,
) where
    K: k8s::ArgoKind<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let obj = api
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{what}: typed get of {namespace}/{name} failed: {e}"));
    let back = serde_json::to_value(&obj).expect("serialize");
    assert_eq!(
        back["spec"], input["spec"],
        "{what}: spec read back differs"
    );
    for field in ["labels", "annotations"] {
        if let Some(want) = input["metadata"].get(field).and_then(Value::as_object) {
            for (k, v) in want {
                assert_eq!(
                    back["metadata"][field].get(k),
                    Some(v),
                    "{what}: metadata.{field}.{k} read back differs"
                );
            }
        }
    }
}

async fn read_back(client: &Client, ns: &str, name: &str, what: &str, value: &Value) {
    match value["kind"].as_str().unwrap_or("") {
        "Workflow" => assert_read_back::<wf::Workflow>(client, ns, name, what, value).await,
        "WorkflowTemplate" => {
            assert_read_back::<wf::WorkflowTemplate>(client, ns, name, what, value).await
        }
        "CronWorkflow" => assert_read_back::<wf::CronWorkflow>(client, ns, name, what, value).await,
        "WorkflowEventBinding" => {
            assert_read_back::<wf::WorkflowEventBinding>(client, ns, name, what, value).await
        }
        "Application" => assert_read_back::<go::Application>(client, ns, name, what, value).await,
        "AppProject" => assert_read_back::<go::AppProject>(client, ns, name, what, value).await,
        "ApplicationSet" => {
            assert_read_back::<go::ApplicationSet>(client, ns, name, what, value).await
        }
        "EventSource" => assert_read_back::<ev::EventSource>(client, ns, name, what, value).await,
        "Sensor" => assert_read_back::<ev::Sensor>(client, ns, name, what, value).await,
        "EventBus" => assert_read_back::<ev::EventBus>(client, ns, name, what, value).await,
        other => panic!("{what}: no typed read-back for kind {other}"),
    }
}

#[tokio::test]
async fn crds_install_idempotently() {
    let Some(()) = e2e("crds_install_idempotently") else {
        return;
    };
    let client = reachable_client().await;
    let first = k8s::crds::install(&client).await.expect("first install");
    assert_eq!(first.crds.len(), k8s::crds::all().len());
    let second = k8s::crds::install(&client).await.expect("second install");
    assert!(
        !second.changed(),
        "a second install must change nothing: {second:?}"
    );
    assert_eq!(second.count(Change::Unchanged), second.crds.len());

    // What the apiserver stored and serves matches the embedded manifests.
    let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for want in k8s::crds::all() {
        let got = api.get(&want.name_any()).await.expect("stored CRD");
        assert_eq!(got.spec.names.short_names, want.spec.names.short_names);
        assert_eq!(got.spec.scope, want.spec.scope);
        assert_eq!(
            got.spec.versions[0].additional_printer_columns,
            want.spec.versions[0].additional_printer_columns
        );
        assert!(
            got.managed_fields()
                .iter()
                .any(|m| m.manager.as_deref() == Some(k8s::FIELD_MANAGER)),
            "{}: cairn must own its fields",
            want.name_any()
        );
    }
    // Short names resolve through discovery, as kubectl users type them.
    for short in [
        "wf", "wftmpl", "cwft", "cwf", "app", "appproj", "appset", "es", "sn", "eb", "wfeb",
    ] {
        kubectl(&["get", short, "--all-namespaces", "-o", "name"], None);
    }
}

#[tokio::test]
async fn conformance_manifests_are_accepted_and_read_back() {
    let Some(()) = e2e("conformance_manifests_are_accepted_and_read_back") else {
        return;
    };
    let client = reachable_client().await;
    k8s::crds::install(&client).await.expect("install CRDs");
    let ns = TestNamespace::create("cairn-e2e-conformance");
    let mut created_workflows = BTreeSet::new();
    for (what, doc, value) in conformance_argo_documents() {
        let kind = value["kind"].as_str().unwrap_or("").to_owned();
        if let Some(name) = value["metadata"]["name"].as_str() {
            // Server-side apply, read back, delete; then client-side apply, read back.
            kubectl(
                &[
                    "apply",
                    "--server-side",
                    "--field-manager=cairn-e2e",
                    "-n",
                    &ns.0,
                    "-f",
                    "-",
                ],
                Some(&doc),
            );
            read_back(
                &client,
                &ns.0,
                name,
                &format!("{what} (apply --server-side)"),
                &value,
            )
            .await;
            kubectl(&["delete", &kind, name, "-n", &ns.0, "--wait=true"], None);
            kubectl(&["apply", "-n", &ns.0, "-f", "-"], Some(&doc));
            read_back(&client, &ns.0, name, &format!("{what} (apply)"), &value).await;
            if kind == "Workflow" {
                created_workflows.insert(name.to_owned());
            }
        } else {
            // generateName: only create can name the object.
            let out = kubectl(
                &["create", "-n", &ns.0, "-f", "-", "-o", "name"],
                Some(&doc),
            );
            let name = out
                .trim()
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| panic!("{what}: kubectl create printed no name: {out:?}"))
                .to_owned();
            read_back(&client, &ns.0, &name, &format!("{what} (create)"), &value).await;
            if kind == "Workflow" {
                created_workflows.insert(name);
            }
        }
    }

    // The list helper the API uses sees exactly what kubectl created.
    let listed = k8s::objects::list_workflows(&client, Some(&ns.0))
        .await
        .expect("list workflows");
    let listed: BTreeSet<String> = listed.iter().map(|w| w.name_any()).collect();
    assert_eq!(listed, created_workflows);
    let any = created_workflows.iter().next().expect("some workflow");
    let got = k8s::objects::get_workflow(&client, &ns.0, any)
        .await
        .expect("get");
    assert_eq!(got.map(|w| w.name_any()).as_deref(), Some(any.as_str()));
    assert!(
        k8s::objects::get_workflow(&client, &ns.0, "no-such-workflow")
            .await
            .expect("get absent")
            .is_none()
    );

    // Printer columns, as kubectl shows them.
    let header = kubectl(&["get", "wf", "-n", &ns.0], None);
    let first = header.lines().next().unwrap_or_default();
    for col in ["NAME", "STATUS", "AGE", "MESSAGE"] {
        assert!(
            first.contains(col),
            "kubectl get wf header {first:?} lacks {col}"
        );
    }
}

/// Argo manifests of the kinds the conformance fixtures lack (Argo CD, Argo Events, the
/// cluster-scoped template) are accepted by the schemas and read back unchanged.
#[tokio::test]
async fn other_argo_kinds_are_accepted_and_read_back() {
    let Some(()) = e2e("other_argo_kinds_are_accepted_and_read_back") else {
        return;
    };
    let client = reachable_client().await;
    k8s::crds::install(&client).await.expect("install CRDs");
    let ns = TestNamespace::create("cairn-e2e-kinds");
    let docs = [
        r#"apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: team}
spec:
  sourceRepos: ["*"]
  destinations: [{namespace: "*", server: "https://kubernetes.default.svc"}]
  clusterResourceWhitelist: [{group: "*", kind: "*"}]
"#,
        r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: guestbook, labels: {tier: web}}
spec:
  project: team
  source: {repoURL: "https://github.com/argoproj/argocd-example-apps.git", targetRevision: HEAD, path: guestbook}
  destination: {server: "https://kubernetes.default.svc", namespace: guestbook}
  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
"#,
        r#"apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook}
spec:
  goTemplate: true
  generators: [{list: {elements: [{cluster: in-cluster, url: "https://kubernetes.default.svc"}]}}]
  template:
    metadata: {name: "{{.cluster}}-guestbook"}
    spec:
      project: team
      source: {repoURL: "https://github.com/argoproj/argocd-example-apps.git", targetRevision: HEAD, path: guestbook}
      destination: {server: "{{.url}}", namespace: guestbook}
"#,
        r#"apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {name: default}
spec:
  jetstream: {version: latest}
"#,
        r#"apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata: {name: webhook}
spec:
  service: {ports: [{port: 12000, targetPort: 12000}]}
  webhook: {example: {port: "12000", endpoint: /example, method: POST}}
"#,
        r#"apiVersion: argoproj.io/v1alpha1
kind: Sensor
metadata: {name: webhook}
spec:
  dependencies: [{name: test-dep, eventSourceName: webhook, eventName: example}]
  triggers:
  - template:
      name: webhook-workflow-trigger
      argoWorkflow:
        operation: submit
        source:
          resource:
            apiVersion: argoproj.io/v1alpha1
            kind: Workflow
            metadata: {generateName: webhook-}
            spec: {entrypoint: main, templates: [{name: main, container: {image: busybox}}]}
    parameters: [{src: {dependencyName: test-dep, dataKey: body}, dest: spec.arguments.parameters.0.value}]
"#,
        r#"apiVersion: argoproj.io/v1alpha1
kind: WorkflowEventBinding
metadata: {name: event-consumer}
spec:
  event: {selector: "payload.message != \"\""}
  submit: {workflowTemplateRef: {name: my-wf-tmple}}
"#,
    ];
    for doc in docs {
        let value: Value = serde_saphyr::from_str(doc).expect("yaml");
        let name = value["metadata"]["name"].as_str().expect("name").to_owned();
        let kind = value["kind"].as_str().expect("kind").to_owned();
        kubectl(
            &[
                "apply",
                "--server-side",
                "--field-manager=cairn-e2e",
                "-n",
                &ns.0,
                "-f",
                "-",
            ],
            Some(doc),
        );
        read_back(&client, &ns.0, &name, &kind, &value).await;
    }
    let apps = k8s::objects::list_applications(&client, &ns.0)
        .await
        .expect("list apps");
    assert_eq!(
        apps.iter().map(|a| a.name_any()).collect::<Vec<_>>(),
        ["guestbook"]
    );
    let header = kubectl(&["get", "applications", "-n", &ns.0], None);
    let first = header.lines().next().unwrap_or_default();
    assert!(
        first.contains("SYNC STATUS") && first.contains("HEALTH STATUS"),
        "kubectl get applications header {first:?}"
    );

    // The cluster-scoped kind: created with a unique name and deleted here.
    let cwft_name = format!("{}-cwft", ns.0);
    let cwft = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: ClusterWorkflowTemplate\nmetadata: {{name: {cwft_name}}}\n\
         spec:\n  templates:\n  - name: echo\n    container: {{image: busybox, command: [echo, hi]}}\n"
    );
    let value: Value = serde_saphyr::from_str(&cwft).expect("yaml");
    kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=cairn-e2e",
            "-f",
            "-",
        ],
        Some(&cwft),
    );
    let api: Api<wf::ClusterWorkflowTemplate> = Api::all(client.clone());
    let got = api
        .get(&cwft_name)
        .await
        .expect("typed get of the ClusterWorkflowTemplate");
    assert_eq!(
        serde_json::to_value(&got).expect("ser")["spec"],
        value["spec"]
    );
    api.delete(&cwft_name, &DeleteParams::default())
        .await
        .expect("delete");
}
