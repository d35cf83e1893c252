//! The operator against a real kubelet: 15 conformance Workflows run unchanged (and one
//! retry), the operator's decisions applied by a minimal in-test loop (create/delete pods built by
//! `workflow::pod::build_pod`, observations read back with `workflow::pod::observe` from the
//! pods and the executor's WorkflowTaskResults). The loop is test scaffolding: it keeps the
//! status in memory and does what the controller shell does with the operator's output, so the
//! operator's node tree, phases, outputs passing, `when`, loops and exit handlers meet real
//! pods and the real executor.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image loaded
//! (`make executor`) and `kubectl` on PATH (namespace cleanup). Skipped only when CAIRN_E2E is
//! not set. Works in its own namespace (`cairn-h1-op-...`), deleted at the end. Every wait is
//! bounded; nothing asserts on timing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::Duration;

use cairn::k8s;
use cairn::workflow::node::Observations;
use cairn::workflow::operator::{Action, OperateInput, operate, resume};
use cairn::workflow::pod::{PodSettings, build_pod, executor_rbac, observe};
use cairn::workflow::types::{
    ClusterWorkflowTemplate, NodeStatus, Workflow, WorkflowTaskResult, WorkflowTemplate,
};
use cairn::workflow::validate::TemplateLookup;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

/// Bound of one run of all the workflows (image pulls included).
const RUN_BOUND: Duration = Duration::from_secs(300);

const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/workflows"
);

fn e2e(test: &str) -> Option<()> {
    if std::env::var_os("CAIRN_E2E").is_none() {
        eprintln!(
            "SKIP {test}: CAIRN_E2E is not set (set CAIRN_E2E=1 with KUBECONFIG pointing at the lab)"
        );
        return None;
    }
    Some(())
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

#[derive(Default)]
struct MapLookup(BTreeMap<String, WorkflowTemplate>);

impl TemplateLookup for MapLookup {
    fn workflow_template(&self, _namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        self.0.get(name).cloned()
    }
    fn cluster_workflow_template(&self, _name: &str) -> Option<ClusterWorkflowTemplate> {
        None
    }
}

fn documents(yaml: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in yaml.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| d.lines().any(|l| l.starts_with("kind:")))
        .collect()
}

const RETRY: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: retry
spec:
  entrypoint: main
  templates:
  - name: main
    retryStrategy:
      limit: 2
    container:
      image: busybox
      command: [sh, -c, "test {{retries}} -ge 1"]
"#;

/// One workflow being run.
struct Run {
    file: &'static str,
    wf: Workflow,
    observations: Observations,
    created: Vec<String>,
    done: bool,
}

/// The pod name of a Pod node, from its template (name or templateRef's template).
fn node_pod(wf_name: &str, node: &NodeStatus) -> String {
    let template = node
        .template_name
        .clone()
        .or_else(|| node.template_ref.as_ref().and_then(|r| r.template.clone()))
        .unwrap_or_default();
    cairn::workflow::node::pod_name(wf_name, &template, node.name.as_deref().unwrap_or(""))
}

#[tokio::test]
async fn conformance_workflows_run_on_real_pods() {
    let Some(()) = e2e("conformance_workflows_run_on_real_pods") else {
        return;
    };
    let client = k8s::client()
        .await
        .unwrap_or_else(|e| panic!("CAIRN_E2E is set but no cluster is configured: {e}"));
    k8s::ping(&client, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("CAIRN_E2E is set but the cluster is not reachable: {e}"));
    k8s::crds::install(&client).await.expect("install CRDs");

    let stamp = jiff::Timestamp::now().as_millisecond();
    let ns_name = format!("cairn-h1-op-{}-{}", std::process::id(), stamp % 100_000);
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns_name}})).expect("ns"),
        )
        .await
        .expect("create namespace");
    let _guard = TestNamespace(ns_name.clone());
    let ns = ns_name.as_str();
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

    let mut lookup = MapLookup::default();
    let text = std::fs::read_to_string(format!("{CONFORMANCE}/workflow-template-templates.yaml"))
        .expect("templates");
    for doc in documents(&text) {
        let t: WorkflowTemplate = serde_saphyr::from_str(&doc).expect("WorkflowTemplate");
        lookup.0.insert(t.metadata.name.clone().expect("name"), t);
    }

    // (file, the phase Argo ends it in)
    let cases: [(&'static str, &[&str]); 16] = [
        ("hello-world.yaml", &["Succeeded"]),
        ("steps.yaml", &["Succeeded"]),
        ("coinflip.yaml", &["Succeeded"]),
        ("output-parameter.yaml", &["Succeeded"]),
        ("scripts-python.yaml", &["Succeeded"]),
        ("dag-diamond.yaml", &["Succeeded"]),
        ("continue-on-fail.yaml", &["Succeeded"]),
        ("exit-handlers.yaml", &["Failed"]),
        ("workflow-template-ref.yaml", &["Succeeded"]),
        ("loops.yaml", &["Succeeded"]),
        ("dag-targets.yaml", &["Succeeded"]),
        ("dag-enhanced-depends.yaml", &["Succeeded"]),
        ("conditionals.yaml", &["Succeeded"]),
        // activeDeadlineSeconds: 10 on a `sleep 1d`: the pod is stopped at its deadline.
        ("timeouts-step.yaml", &["Failed"]),
        // A manual suspend (resumed below once it is reached), then a 20 s one.
        ("suspend-template.yaml", &["Succeeded"]),
        // Not a conformance file: a retry whose first attempt fails (`{{retries}}` is 0).
        ("retry-deterministic", &["Succeeded"]),
    ];
    let workflows: Api<Workflow> = Api::namespaced(client.clone(), ns);
    let mut runs = Vec::new();
    for (i, (file, _)) in cases.iter().enumerate() {
        let text = if *file == "retry-deterministic" {
            RETRY.to_owned()
        } else {
            std::fs::read_to_string(format!("{CONFORMANCE}/{file}")).expect("manifest")
        };
        let mut wf: Workflow = serde_saphyr::from_str(&text).expect("Workflow");
        wf.metadata.generate_name = None;
        wf.metadata.name = Some(format!("op-{i}"));
        wf.metadata.namespace = Some(ns.to_owned());
        // The object exists so pods and task results have an owner (its uid); its status is
        // kept in this test's memory, as the shell would keep writing it. In the cluster it is
        // suspended, so a cairn server running on the shared lab creates none of its pods:
        // every pod here comes from this loop.
        let mut in_cluster = wf.clone();
        in_cluster.spec.suspend = Some(true);
        let created = workflows
            .create(&PostParams::default(), &in_cluster)
            .await
            .unwrap_or_else(|e| panic!("create {file}: {e}"));
        wf.metadata = created.metadata;
        runs.push(Run {
            file,
            wf,
            observations: Observations::new(),
            created: Vec::new(),
            done: false,
        });
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let results: Api<WorkflowTaskResult> = Api::namespaced(client.clone(), ns);
    let settings = PodSettings::default();
    let started = tokio::time::Instant::now();
    while runs.iter().any(|r| !r.done) {
        assert!(
            tokio::time::Instant::now() - started < RUN_BOUND,
            "not finished within {RUN_BOUND:?}: {:?}",
            runs.iter()
                .filter(|r| !r.done)
                .map(|r| (r.file, r.wf.status.as_ref().and_then(|s| s.phase.clone())))
                .collect::<Vec<_>>()
        );
        for run in runs.iter_mut().filter(|r| !r.done) {
            let op = operate(&OperateInput {
                workflow: &run.wf,
                observations: &run.observations,
                templates: &lookup,
                now: jiff::Timestamp::now(),
            });
            run.done = matches!(
                op.status.phase.as_deref(),
                Some("Succeeded" | "Failed" | "Error")
            );
            run.wf.status = Some(op.status);
            // `argo resume` once the manual suspend is reached.
            let waiting = run
                .wf
                .status
                .as_ref()
                .and_then(|s| s.nodes.as_ref())
                .is_some_and(|n| {
                    n.values().any(|n| {
                        n.display_name.as_deref() == Some("approve")
                            && n.phase.as_deref() == Some("Running")
                    })
                });
            if waiting {
                run.wf.status = Some(resume(&run.wf, None, jiff::Timestamp::now()));
            }
            for action in op.actions {
                match action {
                    Action::CreatePod(req) => {
                        let pod = build_pod(&req, &settings).expect("build pod");
                        match pods.create(&PostParams::default(), &pod).await {
                            Ok(p) => run.created.push(p.name_any()),
                            Err(kube::Error::Api(e)) if e.code == 409 => {}
                            Err(e) => panic!("create pod {}: {e}", req.pod_name),
                        }
                    }
                    Action::DeletePod { pod_name, .. } => {
                        let _ = pods.delete(&pod_name, &DeleteParams::default()).await;
                    }
                    // None of these workflows has a resource template.
                    Action::Resource(req) => panic!("unexpected resource action: {req:?}"),
                }
            }
            // Observe every pod node still in flight.
            let wf_name = run.wf.metadata.name.clone().unwrap_or_default();
            let nodes = run
                .wf
                .status
                .as_ref()
                .and_then(|s| s.nodes.clone())
                .unwrap_or_default();
            for (id, node) in nodes {
                if node.node_type.as_deref() != Some("Pod")
                    || !matches!(node.phase.as_deref(), Some("Pending" | "Running"))
                {
                    continue;
                }
                let Some(pod) = pods
                    .get_opt(&node_pod(&wf_name, &node))
                    .await
                    .expect("get pod")
                else {
                    continue;
                };
                let result = results.get_opt(&id).await.expect("get task result");
                run.observations.insert(id, observe(&pod, result.as_ref()));
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    for (run, (file, phases)) in runs.iter().zip(cases.iter()) {
        let status = run.wf.status.clone().unwrap_or_default();
        let phase = status.phase.clone().unwrap_or_default();
        assert!(
            phases.contains(&phase.as_str()),
            "{file}: {phase} ({:?}), nodes: {:#?}",
            status.message,
            status.nodes
        );
        // Each pod node got exactly one pod, created once (a re-request is AlreadyExists).
        let unique: BTreeSet<&String> = run.created.iter().collect();
        assert_eq!(unique.len(), run.created.len(), "{file}: {:?}", run.created);
        let pod_nodes = status
            .nodes
            .iter()
            .flat_map(|n| n.values())
            .filter(|n| n.node_type.as_deref() == Some("Pod"))
            .count();
        assert_eq!(run.created.len(), pod_nodes, "{file}: {:?}", run.created);
        eprintln!(
            "{file}: {phase}, {} pods, progress {}",
            run.created.len(),
            status.progress.unwrap_or_default()
        );
    }
    // The retry's first attempt failed on its pod, the second succeeded.
    let retry = runs.last().expect("retry run");
    let nodes = retry
        .wf
        .status
        .as_ref()
        .and_then(|s| s.nodes.clone())
        .unwrap_or_default();
    let attempts: BTreeMap<String, String> = nodes
        .values()
        .filter(|n| n.node_type.as_deref() == Some("Pod"))
        .map(|n| {
            (
                n.display_name.clone().unwrap_or_default(),
                n.phase.clone().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        BTreeMap::from([
            ("op-15(0)".to_owned(), "Failed".to_owned()),
            ("op-15(1)".to_owned(), "Succeeded".to_owned())
        ])
    );
    // Outputs crossed real pods: the consumer of output-parameter printed what the producer
    // wrote to its file.
    let run = &runs[3];
    let wf_name = run.wf.metadata.name.clone().unwrap_or_default();
    let consumer = run
        .wf
        .status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .and_then(|n| {
            n.values()
                .find(|n| n.display_name.as_deref() == Some("consume-parameter"))
                .cloned()
        })
        .expect("consumer node");
    let log = pods
        .logs(
            &node_pod(&wf_name, &consumer),
            &kube::api::LogParams {
                container: Some("main".into()),
                ..Default::default()
            },
        )
        .await
        .expect("consumer log");
    assert!(log.contains("hello world"), "{log:?}");
}
