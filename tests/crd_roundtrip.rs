//! Round-trips of the typed Argo kinds, and agreement between the embedded CRDs and the Rust
//! types.
//!
//! Every YAML document under `../shared/conformance/` (CI clones the repository with `shared/`
//! beside it) that is an argoproj.io kind is parsed into its Rust type, both straight from YAML
//! and from JSON, and written back; the JSON must equal the document's. Other documents must
//! parse as `DynamicObject` (Kubernetes objects) or be plain YAML (Chart.yaml, values.yaml).

use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

use cairn::events::types as ev;
use cairn::gitops::types as go;
use cairn::k8s::{self, ArgoKind};
use cairn::workflow::types as wf;
use k8s_openapi::NamespaceResourceScope;
use kube::core::DynamicObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
}

/// Splits a YAML stream into its documents' texts (separators are `---` lines at column 0).
fn documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

/// YAML → T → JSON and YAML → JSON → T → JSON must both equal YAML → JSON.
fn assert_roundtrip<T: DeserializeOwned + Serialize>(what: &str, doc: &str, expected: &Value) {
    let typed: T = serde_saphyr::from_str(doc)
        .unwrap_or_else(|e| panic!("{what}: YAML does not parse into the typed struct: {e}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(
        &back, expected,
        "{what}: YAML → typed → JSON lost or changed a field"
    );

    let typed: T = serde_json::from_value(expected.clone())
        .unwrap_or_else(|e| panic!("{what}: JSON does not parse into the typed struct: {e}"));
    let back = serde_json::to_value(&typed).expect("serialize");
    assert_eq!(
        &back, expected,
        "{what}: JSON → typed → JSON lost or changed a field"
    );
}

/// Dispatches an argoproj.io document to its Rust type; false for an unknown kind.
fn roundtrip_argo(what: &str, kind: &str, doc: &str, value: &Value) -> bool {
    match kind {
        "Application" => assert_roundtrip::<go::Application>(what, doc, value),
        "AppProject" => assert_roundtrip::<go::AppProject>(what, doc, value),
        "ApplicationSet" => assert_roundtrip::<go::ApplicationSet>(what, doc, value),
        "Workflow" => assert_roundtrip::<wf::Workflow>(what, doc, value),
        "WorkflowTemplate" => assert_roundtrip::<wf::WorkflowTemplate>(what, doc, value),
        "ClusterWorkflowTemplate" => {
            assert_roundtrip::<wf::ClusterWorkflowTemplate>(what, doc, value)
        }
        "CronWorkflow" => assert_roundtrip::<wf::CronWorkflow>(what, doc, value),
        "WorkflowTaskResult" => assert_roundtrip::<wf::WorkflowTaskResult>(what, doc, value),
        "WorkflowTaskSet" => assert_roundtrip::<wf::WorkflowTaskSet>(what, doc, value),
        "WorkflowArtifactGCTask" => {
            assert_roundtrip::<wf::WorkflowArtifactGcTask>(what, doc, value)
        }
        "WorkflowEventBinding" => assert_roundtrip::<wf::WorkflowEventBinding>(what, doc, value),
        "EventSource" => assert_roundtrip::<ev::EventSource>(what, doc, value),
        "Sensor" => assert_roundtrip::<ev::Sensor>(what, doc, value),
        "EventBus" => assert_roundtrip::<ev::EventBus>(what, doc, value),
        _ => return false,
    }
    true
}

#[test]
fn every_conformance_argo_manifest_roundtrips() {
    let dir = conformance_dir();
    assert!(
        dir.is_dir(),
        "{} is missing: the shared/ folder must sit beside the repository",
        dir.display()
    );
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    files.sort();
    let mut argo_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut others = 0usize;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let rel = file
            .strip_prefix(&dir)
            .unwrap_or(file)
            .display()
            .to_string();
        // Helm chart templates are Go templates, not YAML; the chart's renderer reads them.
        let is_helm_template = rel.contains("/templates/") && text.contains("{{");
        for (i, doc) in documents(&text).iter().enumerate() {
            let what = format!("{rel} document {i}");
            let value: Value = match serde_saphyr::from_str(doc) {
                Ok(v) => v,
                Err(_) if is_helm_template => continue,
                Err(e) => panic!("{what}: not YAML: {e}"),
            };
            let Some(obj) = value.as_object() else {
                assert!(value.is_null(), "{what}: a document must be a mapping");
                continue;
            };
            let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            if api_version.starts_with("argoproj.io/") {
                assert_eq!(api_version, k8s::API_VERSION, "{what}");
                assert!(
                    roundtrip_argo(&what, kind, doc, &value),
                    "{what}: unknown kind {kind}"
                );
                *argo_by_kind.entry(kind.to_owned()).or_default() += 1;
            } else if !kind.is_empty() {
                let dynamic: DynamicObject = serde_json::from_value(value.clone())
                    .unwrap_or_else(|e| panic!("{what}: not a Kubernetes object: {e}"));
                assert_eq!(
                    dynamic.types.as_ref().map(|t| t.kind.as_str()),
                    Some(kind),
                    "{what}"
                );
                others += 1;
            }
        }
    }
    println!("round-tripped argoproj.io documents: {argo_by_kind:?}; other objects: {others}");
    for kind in ["Workflow", "WorkflowTemplate", "CronWorkflow"] {
        assert!(
            argo_by_kind.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} found under {}",
            dir.display()
        );
    }
    assert!(
        others > 0,
        "the gitops fixtures hold plain Kubernetes objects"
    );
}

/// The facts the CRD and the Rust type must agree on.
#[derive(Debug, PartialEq)]
struct Facts {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
}

fn type_facts<K: ArgoKind + 'static>() -> Facts
where
    K::Scope: 'static,
{
    let namespaced = TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>();
    assert_eq!(
        namespaced,
        K::NAMESPACED,
        "{}: Scope and NAMESPACED disagree",
        K::KIND
    );
    assert_eq!(K::kind(&()), K::KIND);
    assert_eq!(K::plural(&()), K::PLURAL);
    Facts {
        group: K::group(&()).into_owned(),
        version: K::version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        plural: K::plural(&()).into_owned(),
        namespaced,
    }
}

#[test]
fn crds_agree_with_the_rust_types() {
    let types = [
        type_facts::<go::Application>(),
        type_facts::<go::AppProject>(),
        type_facts::<go::ApplicationSet>(),
        type_facts::<wf::Workflow>(),
        type_facts::<wf::WorkflowTemplate>(),
        type_facts::<wf::ClusterWorkflowTemplate>(),
        type_facts::<wf::CronWorkflow>(),
        type_facts::<wf::WorkflowTaskResult>(),
        type_facts::<wf::WorkflowTaskSet>(),
        type_facts::<wf::WorkflowArtifactGcTask>(),
        type_facts::<wf::WorkflowEventBinding>(),
        type_facts::<ev::EventSource>(),
        type_facts::<ev::Sensor>(),
        type_facts::<ev::EventBus>(),
    ];
    // The YAML stream `cairn crds` prints parses into the same CRDs as `all()`.
    let from_stream: Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        serde_saphyr::from_str_multiple(&k8s::crds::yaml()).expect("crds yaml parses");
    let crds = k8s::crds::all();
    assert_eq!(from_stream, crds);
    assert_eq!(crds.len(), types.len(), "one CRD per Rust type");
    for (crd, facts) in crds.iter().zip(&types) {
        let from_crd = Facts {
            group: crd.spec.group.clone(),
            version: crd.spec.versions[0].name.clone(),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
            namespaced: crd.spec.scope == "Namespaced",
        };
        assert_eq!(&from_crd, facts);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{}.{}", facts.plural, facts.group).as_str())
        );
        assert_eq!(
            crd.spec.names.list_kind.as_deref(),
            Some(format!("{}List", facts.kind).as_str())
        );
    }
    let infos = k8s::kinds();
    assert_eq!(infos.len(), types.len());
    for (info, facts) in infos.iter().zip(&types) {
        assert_eq!(
            (info.kind, info.plural, info.namespaced),
            (facts.kind.as_str(), facts.plural.as_str(), facts.namespaced)
        );
    }
}

/// One synthetic manifest per kind, each with fields cairn does not model at several depths.
#[test]
fn synthetic_manifests_with_unknown_nested_fields_roundtrip() {
    let cases = [
        (
            "CronWorkflow",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata: {name: nightly, namespace: ml, labels: {team: a}}
spec:
  schedules: ["0 2 * * *"]
  timezone: Europe/Paris
  stopStrategy: {expression: "cronworkflow.failed >= 3"}
  workflowMetadata: {labels: {from: cron}}
  workflowSpec:
    entrypoint: main
    podMetadata: {annotations: {a: b}}
    templates:
    - name: main
      nodeSelector: {disk: ssd}
      memoize: {key: "{{inputs.parameters.x}}", maxAge: 1h, cache: {configMap: {name: c}}}
      container: {image: busybox, imagePullPolicy: Never, securityContext: {runAsNonRoot: true}}
status:
  lastScheduledTime: "2024-01-01T02:00:00Z"
  active: [{name: nightly-1, namespace: ml, uid: u}]
  phase: Active
  futureCounter: 3
"#,
        ),
        (
            "ClusterWorkflowTemplate",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: ClusterWorkflowTemplate
metadata: {name: shared}
spec:
  workflowMetadata: {labels: {x: y}}
  templates:
  - name: http
    http: {url: "https://example", method: GET, successCondition: "response.statusCode == 200"}
  - name: res
    resource: {action: create, manifest: "apiVersion: v1\nkind: ConfigMap\n", setOwnerReference: true}
"#,
        ),
        (
            "Workflow",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: ref-run, namespace: ml}
spec:
  workflowTemplateRef: {name: shared, clusterScope: true, futureRefField: x}
  arguments:
    parameters: [{name: count, value: 5}, {name: b, value: true}, {name: s, value: "x", futureParamField: [1]}]
    artifacts: [{name: data, s3: {key: a/b}}]
  synchronization: {mutexes: [{name: m}]}
status:
  phase: Failed
  startedAt: "2024-01-01T00:00:00Z"
  finishedAt: "2024-01-01T00:01:00Z"
  message: child failed
  progress: 1/2
  nodes:
    ref-run:
      id: ref-run
      type: Steps
      phase: Failed
      children: [ref-run-1]
      outboundNodes: [ref-run-2]
      resourcesDuration: {cpu: 3, memory: 10}
      nodeFlag: {hooked: true}
  artifactGCStatus: {notSpecified: true}
  taskResultsCompletionStatus: {ref-run-2: true}
"#,
        ),
        (
            "WorkflowTaskSet",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTaskSet
metadata: {name: wf-1, namespace: ml}
spec:
  tasks:
    wf-1-123: {name: call, http: {url: "http://x"}, futureTaskField: 1}
status:
  nodes:
    wf-1-123: {phase: Succeeded, outputs: {result: ok}}
"#,
        ),
        (
            "WorkflowArtifactGCTask",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: WorkflowArtifactGCTask
metadata: {name: wf-1-gc, namespace: ml}
spec:
  artifactsByNode:
    wf-1-123: {archiveLocation: {s3: {bucket: b}}, artifacts: {out: {name: out, s3: {key: k}}}}
status:
  artifactResultsByNode:
    wf-1-123: {artifactResults: {out: {name: out, success: true}}}
"#,
        ),
        (
            "WorkflowEventBinding",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: WorkflowEventBinding
metadata: {name: on-event, namespace: ml}
spec:
  event: {selector: "payload.message != \"\" && discriminator == \"my-disc\""}
  submit:
    workflowTemplateRef: {name: my-wf-tmple}
    arguments: {parameters: [{name: message, valueFrom: {event: payload.message}}]}
"#,
        ),
        (
            "WorkflowTaskResult",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTaskResult
metadata:
  name: wf-1-123
  namespace: ml
  labels: {workflows.argoproj.io/workflow: wf-1, workflows.argoproj.io/report-outputs-completed: "true"}
outputs:
  parameters: [{name: p, value: "1", valueFrom: {path: /tmp/p}}]
  artifacts: [{name: main-logs, s3: {key: logs}}]
  exitCode: "0"
phase: Succeeded
"#,
        ),
        (
            "Application",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: app-of-apps, namespace: cairn}
spec:
  project: default
  sources:
  - {repoURL: "https://git/charts", chart: web, targetRevision: 1.2.3, helm: {valueFiles: ["$values/web.yaml"], skipSchemaValidation: true}}
  - {repoURL: "https://git/values", targetRevision: main, ref: values}
  destination: {name: in-cluster, namespace: web}
  syncPolicy:
    automated: {enabled: true}
    managedNamespaceMetadata: {labels: {owner: team}}
  sourceHydrator: {drySource: {repoURL: "https://git/x", path: ., targetRevision: HEAD}}
"#,
        ),
        (
            "EventBus",
            r#"
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {name: default, namespace: ev}
spec:
  nats: {native: {replicas: 3, auth: token, persistence: {storageClassName: standard}}}
"#,
        ),
    ];
    for (kind, doc) in cases {
        let value: Value = serde_saphyr::from_str(doc).expect("synthetic YAML parses");
        assert!(
            roundtrip_argo(kind, kind, doc, &value),
            "{kind} not dispatched"
        );
    }
}

/// A document of one kind parsed as another is refused, naming both kinds.
#[test]
fn a_document_of_another_kind_is_refused() {
    let doc = "apiVersion: argoproj.io/v1alpha1\nkind: Sensor\nmetadata: {name: s}\nspec: {}\n";
    let err = serde_saphyr::from_str::<ev::EventSource>(doc).expect_err("kind mismatch");
    assert!(
        err.to_string()
            .contains("expected EventSource, found Sensor"),
        "{err}"
    );
}

fn _assert_api_bounds<K: ArgoKind + Clone + DeserializeOwned + Debug + Send + Sync + 'static>() {}

/// Every type satisfies what `kube::Api` and the runtime watcher need.
#[test]
fn types_fit_kube_api_bounds() {
    _assert_api_bounds::<go::Application>();
    _assert_api_bounds::<wf::Workflow>();
    _assert_api_bounds::<wf::ClusterWorkflowTemplate>();
    _assert_api_bounds::<ev::EventBus>();
    let client_free: kube::core::ApiResource = kube::core::ApiResource::erase::<wf::Workflow>(&());
    assert_eq!(client_free.plural, "workflows");
    assert_eq!(client_free.api_version, "argoproj.io/v1alpha1");
}
