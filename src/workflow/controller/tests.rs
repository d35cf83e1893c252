//! The shell's in-memory pieces without a cluster: the template lookup over the caches, the
//! stand-in for a write the watch has not delivered yet, the pod selection.

use super::*;
use kube::runtime::reflector::store::Writer;
use serde_json::json;

fn obj<K: serde::de::DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap()
}

fn wf(rv: &str, phase: &str) -> Workflow {
    let mut w = Workflow::test("ns", "wf").with_phase(phase);
    w.metadata.resource_version = Some(rv.to_owned());
    w
}

struct Fixture {
    shared: Shared,
    _dir: tempfile::TempDir,
    workflows: Writer<Workflow>,
    pods: Writer<Pod>,
    templates: Writer<WorkflowTemplate>,
    cluster_templates: Writer<ClusterWorkflowTemplate>,
}

fn fixture() -> Fixture {
    let (workflows_r, workflows) = reflector::store();
    let (pods_r, pods) = reflector::store();
    let (results_r, _results) = reflector::store();
    let (templates_r, templates) = reflector::store();
    let (cluster_r, cluster_templates) = reflector::store();
    let (config_maps_r, _config_maps) = reflector::store();
    let (semaphores_r, _semaphores) = reflector::store();
    // Never contacted: these tests exercise only what happens before any request.
    let client =
        Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    let shared = Shared {
        client,
        caches: Caches {
            workflows: Scoped::all(workflows_r),
            pods: Scoped::all(pods_r),
            results: Scoped::all(results_r),
            templates: Scoped::all(templates_r),
            cluster_templates: cluster_r,
            config_maps: Scoped::all(config_maps_r),
            semaphores: Scoped::all(semaphores_r),
        },
        queue: WorkQueue::new(),
        archive: Archive::new(store, 1024),
        settings: Settings {
            workers: 1,
            pods: PodSettings::default(),
            manage_executor_rbac: false,
            namespaces: vec![],
            instance_id: None,
        },
        engine: Arc::new(Operator),
        written: Mutex::new(written::StandIns::default()),
        failures: Mutex::new(HashMap::new()),
        resources: Mutex::new(HashMap::new()),
        rbac_done: tokio::sync::Mutex::new(HashSet::new()),
        locks: Arc::new(Mutex::new(crate::workflow::sync::LockTable::new())),
    };
    Fixture {
        shared,
        _dir: dir,
        workflows,
        pods,
        templates,
        cluster_templates,
    }
}

#[tokio::test]
async fn templates_are_looked_up_in_the_caches() {
    let mut f = fixture();
    f.templates
        .apply_watcher_event(&watcher::Event::Apply(obj(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
            "metadata": {"name": "t", "namespace": "ml"}, "spec": {"entrypoint": "main"}
        }))));
    f.cluster_templates
        .apply_watcher_event(&watcher::Event::Apply(obj(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterWorkflowTemplate",
            "metadata": {"name": "c"}, "spec": {}
        }))));
    let lookup: &dyn TemplateLookup = &f.shared.caches;
    assert!(lookup.workflow_template("ml", "t").is_some());
    assert!(lookup.workflow_template("other", "t").is_none());
    assert!(lookup.cluster_workflow_template("c").is_some());
    assert!(lookup.cluster_workflow_template("t").is_none());
}

#[tokio::test]
async fn our_write_stands_in_until_the_watch_delivers_it() {
    let mut f = fixture();
    assert_eq!(reconcile::current(&f.shared, "ns/wf", "ns", "wf"), None);
    f.workflows
        .apply_watcher_event(&watcher::Event::Apply(wf("1", "Pending")));
    let ours = wf("2", "Running");
    f.shared
        .written
        .lock()
        .unwrap()
        .wrote("ns/wf", Some("1"), ours.clone());
    // The store still has version 1, which our write replaced: decide from ours.
    assert_eq!(
        reconcile::current(&f.shared, "ns/wf", "ns", "wf"),
        Some(ours.clone())
    );
    // The watch delivered a newer version: it wins and the stand-in is dropped.
    f.workflows
        .apply_watcher_event(&watcher::Event::Apply(wf("3", "Running")));
    let got = reconcile::current(&f.shared, "ns/wf", "ns", "wf").unwrap();
    assert_eq!(got.metadata.resource_version.as_deref(), Some("3"));
    assert!(f.shared.written.lock().unwrap().is_empty());
}

#[tokio::test]
async fn pods_are_selected_by_namespace_and_workflow_label() {
    let mut f = fixture();
    for (ns, name, label) in [
        ("ns", "a", Some("wf")),
        ("ns", "b", Some("other")),
        ("x", "c", Some("wf")),
        ("ns", "d", None),
    ] {
        let mut meta = json!({"name": name, "namespace": ns});
        if let Some(l) = label {
            meta["labels"] = json!({ LABEL_WORKFLOW: l });
        }
        f.pods
            .apply_watcher_event(&watcher::Event::Apply(obj(json!({"metadata": meta}))));
    }
    let names: Vec<String> = reconcile::pods_of(&f.shared, "ns", "wf")
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn settings_scope_namespaces() {
    let mut s = Settings::from_config(&crate::config::WorkflowConfig::default());
    assert!(s.manages("anything"));
    s.namespaces = vec!["ml".into()];
    assert!(s.manages("ml"));
    assert!(!s.manages("ops"));
    assert!(s.manage_executor_rbac);
    assert_eq!(s.workers, 32);
}

#[test]
fn instance_selector_follows_argo() {
    assert_eq!(
        instance_selector(Some("team-a")),
        "workflows.argoproj.io/controller-instanceid=team-a"
    );
    assert_eq!(
        instance_selector(None),
        "!workflows.argoproj.io/controller-instanceid"
    );
    assert_eq!(instance_selector(Some("")), instance_selector(None));
}

#[test]
fn claims_are_named_after_the_workflow_and_owned_by_it() {
    let mut wf = crate::workflow::types::Workflow::test("ns", "wf-1");
    wf.metadata.uid = Some("uid-1".into());
    let templates = vec![serde_json::json!({
        "metadata": {"name": "workdir"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
        "status": {"phase": "Bound"}
    })];
    let claims = super::reconcile::claim_objects(&wf, &templates);
    assert_eq!(claims.len(), 1);
    let c = &claims[0];
    assert_eq!(c.metadata.name.as_deref(), Some("wf-1-workdir"));
    assert_eq!(c.metadata.namespace.as_deref(), Some("ns"));
    assert!(c.status.is_none(), "status is the server's");
    let owner = &c.metadata.owner_references.as_ref().expect("owned")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Workflow", "uid-1")
    );
    assert_eq!(
        c.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(crate::workflow::node::LABEL_WORKFLOW)),
        Some(&"wf-1".to_string())
    );
    // A template without a name cannot be mounted by name: it is not created.
    assert!(super::reconcile::claim_objects(&wf, &[serde_json::json!({"spec": {}})]).is_empty());
}
