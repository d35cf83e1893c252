//! Cross-module tests of planning and the state machine: ordering tables, fixtures from the
//! conformance trees, snapshots of plans, and step-by-step runs of operations.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};

use super::hooks::{
    HELM_HOOK, HELM_HOOK_DELETE_POLICY, HELM_HOOK_WEIGHT, HOOK, HOOK_DELETE_POLICY, SYNC_WAVE,
};
use super::options::{OperationOptions, PropagationPolicy, ResourceSelector, SYNC_OPTIONS};
use super::plan::{Action, Plan, PlanInput, SkipReason, SyncPhase, TaskId, plan};
use super::state::{
    Health, Next, Observations, OperationPhase, OperationState, Outcome, ResultCode, StepAction,
    step, terminate,
};
use super::{PlanError, TRACKING_ID};
use crate::k8s::ResourceKey;

// ---------------------------------------------------------------- builders

const APP: &str = "guestbook";
const NS: &str = "default";

/// An object of `kind` (apiVersion chosen from the kind).
fn obj(kind: &str, name: &str) -> Value {
    let api = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        "Ingress" | "NetworkPolicy" | "IngressClass" => "networking.k8s.io/v1",
        "ClusterRole" | "ClusterRoleBinding" | "Role" | "RoleBinding" => {
            "rbac.authorization.k8s.io/v1"
        }
        "CustomResourceDefinition" => "apiextensions.k8s.io/v1",
        "Workflow" | "Rollout" => "argoproj.io/v1alpha1",
        _ => "v1",
    };
    json!({"apiVersion": api, "kind": kind, "metadata": {"name": name}})
}

trait ObjExt {
    fn ann(self, key: &str, value: &str) -> Self;
    fn ns(self, ns: &str) -> Self;
    fn wave(self, wave: i64) -> Self;
    fn hook(self, hook: &str) -> Self;
    fn tracked(self, app: &str) -> Self;
    fn generate(self, prefix: &str) -> Self;
}

impl ObjExt for Value {
    fn ann(mut self, key: &str, value: &str) -> Self {
        self["metadata"]["annotations"][key] = json!(value);
        self
    }
    fn ns(mut self, ns: &str) -> Self {
        self["metadata"]["namespace"] = json!(ns);
        self
    }
    fn wave(self, wave: i64) -> Self {
        self.ann(SYNC_WAVE, &wave.to_string())
    }
    fn hook(self, hook: &str) -> Self {
        self.ann(HOOK, hook)
    }
    /// A live object carrying `app`'s tracking id for itself.
    fn tracked(self, app: &str) -> Self {
        let api = self["apiVersion"].as_str().unwrap_or("v1").to_owned();
        let group = api
            .rsplit_once('/')
            .map(|(g, _)| g)
            .unwrap_or("")
            .to_owned();
        let kind = self["kind"].as_str().unwrap_or("").to_owned();
        let name = self["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let ns = self["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        self.ann(TRACKING_ID, &format!("{app}:{group}/{kind}:{ns}/{name}"))
    }
    fn generate(mut self, prefix: &str) -> Self {
        if let Some(meta) = self["metadata"].as_object_mut() {
            meta.remove("name");
            meta.insert("generateName".into(), json!(prefix));
        }
        self
    }
}

fn input(desired: Vec<Value>) -> PlanInput {
    PlanInput {
        app: APP.into(),
        namespace: NS.into(),
        desired,
        namespace_exists: true,
        operation: OperationOptions {
            id: "op-1".into(),
            prune: true,
            ..OperationOptions::default()
        },
        ..PlanInput::default()
    }
}

fn key(group: &str, kind: &str, ns: Option<&str>, name: &str) -> ResourceKey {
    ResourceKey::new(group, kind, ns, name)
}

fn summary(input: &PlanInput) -> String {
    plan(input).expect("plans").summary().join("\n")
}

/// `(phase, wave, kind/name, action)` per task, for compact table assertions.
fn rows(p: &Plan) -> Vec<(SyncPhase, i64, String, String)> {
    p.tasks
        .iter()
        .map(|t| {
            (
                t.phase,
                t.wave,
                format!("{}/{}", t.key.kind, t.key.name),
                t.action.to_string(),
            )
        })
        .collect()
}

fn names(p: &Plan) -> Vec<String> {
    p.tasks.iter().map(|t| t.key.name.clone()).collect()
}

fn fixture(dir: &str) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/gitops")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read fixture");
            serde_saphyr::from_str::<Value>(&text).expect("fixture is YAML")
        })
        .collect()
}

// ---------------------------------------------------------------- ordering

#[test]
fn kinds_follow_helm_install_order_and_custom_resources_come_last() {
    let desired = vec![
        obj("Ingress", "web"),
        obj("Deployment", "web"),
        obj("Service", "web"),
        obj("Workflow", "wf"),
        obj("ConfigMap", "cfg"),
        obj("Secret", "creds"),
        obj("ServiceAccount", "sa"),
        obj("ClusterRole", "reader"),
        obj("RoleBinding", "rb"),
        obj("Role", "r"),
        obj("PersistentVolumeClaim", "data"),
        obj("StatefulSet", "db"),
        obj("Job", "once"),
        obj("CronJob", "nightly"),
        obj("NetworkPolicy", "deny"),
        obj("Pod", "p"),
        obj("DaemonSet", "agent"),
    ];
    insta::assert_snapshot!(summary(&input(desired)));
}

#[test]
fn kind_rank_table() {
    use super::plan::kind_rank;
    let ordered = [
        "Namespace",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "PodSecurityPolicy",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Secret",
        "SecretList",
        "ConfigMap",
        "StorageClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleList",
        "ClusterRoleBinding",
        "ClusterRoleBindingList",
        "Role",
        "RoleList",
        "RoleBinding",
        "RoleBindingList",
        "Service",
        "DaemonSet",
        "Pod",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "StatefulSet",
        "Job",
        "CronJob",
        "IngressClass",
        "Ingress",
        "APIService",
        "Workflow",
    ];
    for pair in ordered.windows(2) {
        assert!(kind_rank(pair[0]) < kind_rank(pair[1]), "{pair:?}");
    }
    assert_eq!(kind_rank("Application"), kind_rank("Rollout"));
}

#[test]
fn waves_order_lower_first_including_negative() {
    let cases: Vec<(Vec<Value>, Vec<&str>)> = vec![
        (
            vec![
                obj("ConfigMap", "a").wave(2),
                obj("ConfigMap", "b").wave(-1),
                obj("ConfigMap", "c"),
            ],
            vec!["b", "c", "a"],
        ),
        // Wave beats kind: a Deployment in wave -5 goes before a Namespace-less ConfigMap in 0.
        (
            vec![obj("ConfigMap", "cfg"), obj("Deployment", "web").wave(-5)],
            vec!["web", "cfg"],
        ),
        // Same wave and kind: by name.
        (
            vec![
                obj("Service", "b"),
                obj("Service", "a"),
                obj("Service", "c"),
            ],
            vec!["a", "b", "c"],
        ),
        // Helm weight is a wave too.
        (
            vec![
                obj("ConfigMap", "late"),
                obj("ConfigMap", "early").ann(HELM_HOOK_WEIGHT, "-2"),
            ],
            vec!["early", "late"],
        ),
    ];
    for (desired, expected) in cases {
        let p = plan(&input(desired)).expect("plans");
        assert_eq!(names(&p), expected);
    }
}

#[test]
fn phases_order_presync_sync_postsync_then_syncfail() {
    let desired = vec![
        obj("Job", "notify").hook("PostSync").wave(-10),
        obj("Job", "cleanup").hook("SyncFail").wave(-20),
        obj("ConfigMap", "cfg").wave(3),
        obj("Job", "migrate").hook("PreSync").wave(5),
        obj("Pod", "smoke").hook("Sync"),
    ];
    let p = plan(&input(desired)).expect("plans");
    let phases: Vec<SyncPhase> = p.tasks.iter().map(|t| t.phase).collect();
    assert_eq!(
        phases,
        [
            SyncPhase::PreSync,
            SyncPhase::Sync,
            SyncPhase::Sync,
            SyncPhase::PostSync,
            SyncPhase::SyncFail
        ]
    );
    insta::assert_snapshot!(p.summary().join("\n"));
}

#[test]
fn hook_in_several_phases_gets_one_task_per_phase() {
    let p = plan(&input(vec![obj("Job", "check").hook("PreSync,PostSync")])).expect("plans");
    assert_eq!(
        rows(&p),
        [
            (SyncPhase::PreSync, 0, "Job/check".into(), "RunHook".into()),
            (SyncPhase::PostSync, 0, "Job/check".into(), "RunHook".into()),
        ]
    );
    let ids: Vec<&str> = p.tasks.iter().map(|t| t.id.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "PreSync:batch/Job/default/check",
            "PostSync:batch/Job/default/check"
        ]
    );
}

#[test]
fn fixture_sync_waves_applies_cm1_then_cm2() {
    let p = plan(&input(fixture("sync-waves"))).expect("plans");
    assert_eq!(
        rows(&p),
        [
            (SyncPhase::Sync, 1, "ConfigMap/cm-1".into(), "Create".into()),
            (SyncPhase::Sync, 2, "ConfigMap/cm-2".into(), "Create".into()),
        ]
    );
    insta::assert_snapshot!(p.summary().join("\n"));
}

#[test]
fn fixture_hook_runs_sync_hook_beside_the_pod() {
    let p = plan(&input(fixture("hook"))).expect("plans");
    insta::assert_snapshot!(p.summary().join("\n"));
    let hook = p
        .tasks
        .iter()
        .find(|t| t.key.name == "hook")
        .expect("hook task");
    assert!(hook.is_hook());
    assert_eq!(hook.action, Action::RunHook);
    assert_eq!(hook.phase, SyncPhase::Sync);
    let pod = p
        .tasks
        .iter()
        .find(|t| t.key.name == "pod")
        .expect("pod task");
    assert!(!pod.is_hook());
    assert_eq!(pod.action, Action::Create);
}

#[test]
fn fixture_hook_runs_to_completion_in_the_state_machine() {
    let p = plan(&input(fixture("hook"))).expect("plans");
    let mut d = Driver::new(&p);
    let first = d.step(Observations::default());
    assert_eq!(first.actions.len(), 2, "hook and pod are one wave");
    let pod = key("", "Pod", Some(NS), "pod");
    let hook = key("", "Pod", Some(NS), "hook");
    d.step(ok_all(
        &first,
        &[
            (hook.clone(), Health::Progressing),
            (pod.clone(), Health::Progressing),
        ],
    ));
    assert_eq!(d.state.phase, OperationPhase::Running);
    assert!(
        d.state.message.contains("completion of hook"),
        "{}",
        d.state.message
    );
    d.step(health(&[
        (hook, Health::Healthy),
        (pod, Health::Progressing),
    ]));
    assert_eq!(
        d.state.phase,
        OperationPhase::Succeeded,
        "{}",
        d.state.message
    );
}

// ---------------------------------------------------------------- hooks and helm

#[test]
fn helm_hooks_are_mapped_as_argo_cd_maps_them() {
    let desired = vec![
        obj("Job", "db-init")
            .ann(HELM_HOOK, "pre-install,pre-upgrade")
            .ann(HELM_HOOK_WEIGHT, "-5"),
        obj("Job", "db-migrate").ann(HELM_HOOK, "pre-upgrade"),
        obj("Job", "warm-cache")
            .ann(HELM_HOOK, "post-install")
            .ann(HELM_HOOK_DELETE_POLICY, "hook-succeeded"),
        obj("CustomResourceDefinition", "widgets.example.com").ann(HELM_HOOK, "crd-install"),
        obj("Pod", "test-connection").ann(HELM_HOOK, "test-success"),
        obj("Job", "uninstall").ann(HELM_HOOK, "pre-delete"),
        obj("Deployment", "web"),
    ];
    let p = plan(&input(desired)).expect("plans");
    insta::assert_snapshot!(p.summary().join("\n"));
    let warm = p
        .tasks
        .iter()
        .find(|t| t.key.name == "warm-cache")
        .expect("task");
    assert_eq!(
        warm.hook.as_deref(),
        Some(&[super::hooks::DeletePolicy::HookSucceeded][..])
    );
    let crd = p
        .tasks
        .iter()
        .find(|t| t.key.name == "widgets.example.com")
        .expect("crd");
    assert!(!crd.is_hook(), "crd-install is an ordinary CRD");
}

#[test]
fn argo_hook_annotation_wins_over_helm() {
    let p = plan(&input(vec![
        obj("Job", "j")
            .hook("PostSync")
            .ann(HELM_HOOK, "pre-install"),
    ]))
    .expect("plans");
    assert_eq!(p.tasks.len(), 1);
    assert_eq!(p.tasks[0].phase, SyncPhase::PostSync);
}

#[test]
fn skip_and_deletion_hooks_are_reported_not_applied() {
    let p = plan(&input(vec![
        obj("ConfigMap", "manual").hook("Skip"),
        obj("Job", "goodbye").hook("PostDelete"),
    ]))
    .expect("plans");
    let actions: Vec<&Action> = p.tasks.iter().map(|t| &t.action).collect();
    assert_eq!(
        actions,
        [
            &Action::Skip(SkipReason::SkipHook),
            &Action::Skip(SkipReason::NotInSync(
                "deletion hook (runs only when the Application is deleted)".into()
            )),
        ]
    );
}

#[test]
fn generate_name_hooks_get_deterministic_names_from_the_operation() {
    let desired = vec![obj("Job", "").generate("migrate-").hook("PreSync,PostSync")];
    let a = plan(&input(desired.clone())).expect("plans");
    let b = plan(&input(desired.clone())).expect("plans");
    assert_eq!(a, b, "a restart recomputes the same names");
    let mut other = input(desired);
    other.operation.id = "op-2".into();
    let c = plan(&other).expect("plans");
    assert_ne!(names(&a), names(&c), "a new operation runs new hooks");
    for task in &a.tasks {
        assert!(task.key.name.starts_with("migrate-"), "{}", task.key.name);
        assert_eq!(task.object["metadata"]["name"], json!(task.key.name));
        assert!(task.object["metadata"].get("generateName").is_none());
    }
    assert_ne!(
        a.tasks[0].key.name, a.tasks[1].key.name,
        "one object per phase"
    );
}

#[test]
fn before_hook_creation_deletes_an_existing_hook_first() {
    let mut inp = input(vec![obj("Job", "migrate").hook("PreSync")]);
    inp.live = vec![obj("Job", "migrate").ns(NS).hook("PreSync").tracked(APP)];
    let p = plan(&inp).expect("plans");
    assert_eq!(
        rows(&p),
        [
            (
                SyncPhase::PreSync,
                0,
                "Job/migrate".into(),
                "DeleteHookBeforeCreation".into()
            ),
            (
                SyncPhase::PreSync,
                0,
                "Job/migrate".into(),
                "RunHook".into()
            ),
        ]
    );
    // Only HookSucceeded: the existing named hook is applied, not deleted first.
    let mut inp = input(vec![
        obj("Job", "migrate")
            .hook("PreSync")
            .ann(HOOK_DELETE_POLICY, "HookSucceeded"),
    ]);
    inp.live = vec![obj("Job", "migrate").ns(NS).tracked(APP)];
    let p = plan(&inp).expect("plans");
    assert_eq!(
        rows(&p),
        [(
            SyncPhase::PreSync,
            0,
            "Job/migrate".into(),
            "RunHook".into()
        )]
    );
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_objects_are_errors_naming_them() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"kind": "ConfigMap", "metadata": {"name": "a"}}),
            "desired object #0 (ConfigMap/a): apiVersion is missing",
        ),
        (
            json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
            "desired object #0 (<no kind>/a): kind is missing",
        ),
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
            "metadata.name (or generateName, for hooks) is missing",
        ),
        (
            obj("ConfigMap", "").generate("x-"),
            "generateName is only supported for hooks",
        ),
        (
            obj("ConfigMap", "a").wave(0).ann(SYNC_WAVE, "first"),
            "/ConfigMap/default/a: annotation argocd.argoproj.io/sync-wave=\"first\"",
        ),
        (
            obj("Job", "j").hook("BeforeSync"),
            "batch/Job/default/j: annotation argocd.argoproj.io/hook=\"BeforeSync\"",
        ),
        (
            obj("Job", "j")
                .hook("PreSync")
                .ann(HOOK_DELETE_POLICY, "Never"),
            "annotation argocd.argoproj.io/hook-delete-policy=\"Never\"",
        ),
        (
            obj("ConfigMap", "a").ann(SYNC_OPTIONS, "Replace=maybe"),
            "annotation argocd.argoproj.io/sync-options=\"Replace=maybe\"",
        ),
        (
            obj("Job", "j")
                .ann(HELM_HOOK, "pre-install")
                .ann(HELM_HOOK_WEIGHT, "x"),
            "annotation helm.sh/hook-weight=\"x\"",
        ),
    ];
    for (desired, expected) in cases {
        let err = plan(&input(vec![desired.clone()])).expect_err("bad input");
        assert!(err.to_string().contains(expected), "{err} ∌ {expected}");
    }
}

#[test]
fn duplicate_desired_objects_are_refused() {
    let err = plan(&input(vec![
        obj("ConfigMap", "a"),
        obj("ConfigMap", "a").ns(NS),
    ]))
    .expect_err("duplicate");
    assert_eq!(
        err,
        PlanError::DuplicateObject {
            object: "/ConfigMap/default/a".into()
        }
    );
    assert_eq!(err.metric_label(), "duplicate_object");
}

#[test]
fn bad_app_sync_option_is_an_error() {
    let mut inp = input(vec![obj("ConfigMap", "a")]);
    inp.sync_options = vec!["PrunePropagationPolicy=later".into()];
    assert!(matches!(plan(&inp), Err(PlanError::BadSyncOption { .. })));
}

// ---------------------------------------------------------------- prune

fn prune_input(live: Vec<Value>) -> PlanInput {
    let mut inp = input(vec![obj("ConfigMap", "keep")]);
    inp.live = live;
    inp
}

#[test]
fn only_objects_tracked_to_this_app_are_pruned() {
    let inp = prune_input(vec![
        obj("ConfigMap", "keep").ns(NS).tracked(APP),
        obj("ConfigMap", "gone").ns(NS).tracked(APP),
        obj("ConfigMap", "foreign").ns(NS),
        obj("ConfigMap", "other").ns(NS).tracked("other-app"),
        // Copied tracking id that does not describe the object: not ours.
        obj("ConfigMap", "copied")
            .ns(NS)
            .ann(TRACKING_ID, "guestbook:/ConfigMap:default/original"),
        // Hooks and owned objects are never pruned.
        obj("Job", "old-hook").ns(NS).hook("PreSync").tracked(APP),
        obj("Job", "helm-hook")
            .ns(NS)
            .ann(HELM_HOOK, "post-install")
            .tracked(APP),
        {
            let mut rs = obj("ReplicaSet", "web-123").ns(NS).tracked(APP);
            rs["metadata"]["ownerReferences"] = json!([{"kind": "Deployment", "name": "web"}]);
            rs
        },
    ]);
    let p = plan(&inp).expect("plans");
    assert_eq!(
        rows(&p),
        [
            (SyncPhase::Sync, 0, "ConfigMap/gone".into(), "Prune".into()),
            (SyncPhase::Sync, 0, "ConfigMap/keep".into(), "Apply".into()),
        ]
    );
    assert!(p.tasks[0].prune);
}

#[test]
fn prune_policy_table() {
    /// (operation prunes, app sync options, live annotation, confirmed, expected action)
    type Case = (bool, Vec<&'static str>, Option<&'static str>, bool, Action);
    let cases: Vec<Case> = vec![
        (true, vec![], None, false, Action::Prune),
        (
            false,
            vec![],
            None,
            false,
            Action::Skip(SkipReason::PruneDisabled),
        ),
        (
            true,
            vec![],
            Some("Prune=false"),
            false,
            Action::Skip(SkipReason::PruneForbidden),
        ),
        (
            true,
            vec![],
            Some("Delete=false"),
            false,
            Action::Skip(SkipReason::DeleteForbidden),
        ),
        (
            true,
            vec!["Prune=false"],
            None,
            false,
            Action::Skip(SkipReason::PruneForbidden),
        ),
        (
            true,
            vec!["Prune=false"],
            Some("Prune=true"),
            false,
            Action::Prune,
        ),
        (
            true,
            vec!["Delete=false"],
            None,
            false,
            Action::Skip(SkipReason::DeleteForbidden),
        ),
        (
            true,
            vec![],
            Some("Prune=confirm"),
            false,
            Action::Skip(SkipReason::NeedsConfirmation),
        ),
        (true, vec![], Some("Prune=confirm"), true, Action::Prune),
        (
            true,
            vec!["Prune=confirm"],
            None,
            false,
            Action::Skip(SkipReason::NeedsConfirmation),
        ),
    ];
    for (prune, app_opts, annotation, confirmed, expected) in cases {
        let mut live = obj("ConfigMap", "gone").ns(NS).tracked(APP);
        if let Some(a) = annotation {
            live = live.ann(SYNC_OPTIONS, a);
        }
        let mut inp = prune_input(vec![live]);
        inp.operation.prune = prune;
        inp.operation.prune_confirmed = confirmed;
        inp.sync_options = app_opts.iter().map(|s| s.to_string()).collect();
        let p = plan(&inp).expect("plans");
        let task = p
            .tasks
            .iter()
            .find(|t| t.key.name == "gone")
            .expect("prune task");
        assert_eq!(
            task.action, expected,
            "prune={prune} app={app_opts:?} ann={annotation:?}"
        );
    }
}

#[test]
fn helm_keep_policy_protects_from_pruning() {
    let inp = prune_input(vec![
        obj("Secret", "gone")
            .ns(NS)
            .ann("helm.sh/resource-policy", "keep")
            .tracked(APP),
    ]);
    let p = plan(&inp).expect("plans");
    assert_eq!(p.tasks[0].action, Action::Skip(SkipReason::DeleteForbidden));
}

#[test]
fn unreadable_sync_options_on_a_live_object_block_its_prune() {
    let inp = prune_input(vec![
        obj("ConfigMap", "gone")
            .ns(NS)
            .ann(SYNC_OPTIONS, "Prune=nah")
            .tracked(APP),
    ]);
    let p = plan(&inp).expect("plans");
    assert!(
        matches!(&p.tasks[0].action, Action::Skip(SkipReason::BadSyncOptions(m)) if m.contains("Prune=nah"))
    );
}

#[test]
fn prune_runs_highest_wave_first() {
    let mut inp = input(vec![
        obj("ConfigMap", "a").wave(0),
        obj("ConfigMap", "b").wave(1),
    ]);
    inp.live = vec![
        obj("Deployment", "w1").ns(NS).wave(1).tracked(APP),
        obj("Deployment", "w2").ns(NS).wave(2).tracked(APP),
        obj("Deployment", "w3").ns(NS).wave(3).tracked(APP),
        obj("Service", "w3s").ns(NS).wave(3).tracked(APP),
    ];
    let p = plan(&inp).expect("plans");
    insta::assert_snapshot!(p.summary().join("\n"));
    let wave_of = |n: &str| p.tasks.iter().find(|t| t.key.name == n).map(|t| t.wave);
    assert_eq!(wave_of("w3"), Some(1));
    assert_eq!(wave_of("w3s"), Some(1));
    assert_eq!(wave_of("w2"), Some(2));
    assert_eq!(wave_of("w1"), Some(3));
}

#[test]
fn prune_last_moves_prunes_after_the_last_sync_wave() {
    let mut inp = input(vec![
        obj("ConfigMap", "a").wave(4),
        obj("Job", "post").hook("PostSync").wave(9),
    ]);
    inp.live = vec![
        obj("ConfigMap", "old").ns(NS).tracked(APP),
        obj("ConfigMap", "old-last")
            .ns(NS)
            .ann(SYNC_OPTIONS, "PruneLast=true")
            .tracked(APP),
    ];
    let p = plan(&inp).expect("plans");
    assert_eq!(
        rows(&p),
        [
            (SyncPhase::Sync, 0, "ConfigMap/old".into(), "Prune".into()),
            (SyncPhase::Sync, 4, "ConfigMap/a".into(), "Create".into()),
            (
                SyncPhase::Sync,
                5,
                "ConfigMap/old-last".into(),
                "Prune".into()
            ),
            (SyncPhase::PostSync, 9, "Job/post".into(), "RunHook".into()),
        ]
    );
    inp.sync_options = vec!["PruneLast=true".into()];
    let p = plan(&inp).expect("plans");
    let prunes: Vec<i64> = p.tasks.iter().filter(|t| t.prune).map(|t| t.wave).collect();
    assert_eq!(prunes, [5, 5]);
}

#[test]
fn propagation_policy_is_carried_by_the_plan() {
    let mut inp = input(vec![]);
    assert_eq!(
        plan(&inp).expect("plans").propagation_policy,
        PropagationPolicy::Foreground
    );
    inp.sync_options = vec!["PrunePropagationPolicy=background".into()];
    assert_eq!(
        plan(&inp).expect("plans").propagation_policy,
        PropagationPolicy::Background
    );
}

// ---------------------------------------------------------------- options

#[test]
fn apply_out_of_sync_only_skips_in_sync_resources() {
    let mut inp = input(vec![
        obj("ConfigMap", "same"),
        obj("ConfigMap", "changed"),
        obj("ConfigMap", "new"),
    ]);
    inp.live = vec![
        obj("ConfigMap", "same").ns(NS).tracked(APP),
        obj("ConfigMap", "changed").ns(NS).tracked(APP),
    ];
    inp.in_sync = BTreeSet::from([
        key("", "ConfigMap", Some(NS), "same"),
        key("", "ConfigMap", Some(NS), "new"),
    ]);
    let without = plan(&inp).expect("plans");
    assert!(
        without
            .tasks
            .iter()
            .all(|t| !matches!(t.action, Action::Skip(_)))
    );
    inp.sync_options = vec!["ApplyOutOfSyncOnly=true".into()];
    let p = plan(&inp).expect("plans");
    assert_eq!(
        rows(&p),
        [
            (
                SyncPhase::Sync,
                0,
                "ConfigMap/changed".into(),
                "Apply".into()
            ),
            (SyncPhase::Sync, 0, "ConfigMap/new".into(), "Create".into()),
            (
                SyncPhase::Sync,
                0,
                "ConfigMap/same".into(),
                "Skip: ignored (in sync, ApplyOutOfSyncOnly)".into()
            ),
        ]
    );
}

#[test]
fn apply_out_of_sync_only_still_runs_hooks() {
    let mut inp = input(vec![
        obj("Job", "migrate").hook("PreSync"),
        obj("ConfigMap", "same"),
    ]);
    inp.live = vec![obj("ConfigMap", "same").ns(NS).tracked(APP)];
    inp.in_sync = BTreeSet::from([
        key("", "ConfigMap", Some(NS), "same"),
        key("batch", "Job", Some(NS), "migrate"),
    ]);
    inp.sync_options = vec!["ApplyOutOfSyncOnly=true".into()];
    let p = plan(&inp).expect("plans");
    assert_eq!(p.tasks[0].action, Action::RunHook);
    assert_eq!(p.tasks[1].action, Action::Skip(SkipReason::InSync));
}

#[test]
fn replace_option_table() {
    // (app option, resource annotation, live exists, expected)
    let cases = [
        (None, None, true, Action::Apply),
        (None, None, false, Action::Create),
        (Some("Replace=true"), None, true, Action::Replace),
        (Some("Replace=true"), None, false, Action::Create),
        (None, Some("Replace=true"), true, Action::Replace),
        (
            Some("Replace=true"),
            Some("Replace=false"),
            true,
            Action::Apply,
        ),
    ];
    for (app, ann, live, expected) in cases {
        let mut desired = obj("ConfigMap", "c");
        if let Some(a) = ann {
            desired = desired.ann(SYNC_OPTIONS, a);
        }
        let mut inp = input(vec![desired]);
        inp.sync_options = app.map(|s| vec![s.to_owned()]).unwrap_or_default();
        if live {
            inp.live = vec![obj("ConfigMap", "c").ns(NS).tracked(APP)];
        }
        assert_eq!(
            plan(&inp).expect("plans").tasks[0].action,
            expected,
            "{app:?} {ann:?} {live}"
        );
    }
}

#[test]
fn apply_settings_combine_app_and_resource_options() {
    let mut inp = input(vec![
        obj("ConfigMap", "plain"),
        obj("ConfigMap", "csa").ann(SYNC_OPTIONS, "ServerSideApply=false,Validate=true"),
        obj("ConfigMap", "forced").ann(
            SYNC_OPTIONS,
            "Force=true,Replace=true,RespectIgnoreDifferences=false",
        ),
    ]);
    inp.sync_options = vec![
        "ServerSideApply=true".into(),
        "Validate=false".into(),
        "RespectIgnoreDifferences=true".into(),
    ];
    let p = plan(&inp).expect("plans");
    let settings = |n: &str| {
        p.tasks
            .iter()
            .find(|t| t.key.name == n)
            .map(|t| t.apply.clone())
            .expect("task")
    };
    let plain = settings("plain");
    assert!(
        plain.server_side && !plain.validate && plain.respect_ignore_differences && !plain.force
    );
    let csa = settings("csa");
    assert!(!csa.server_side && csa.validate);
    let forced = settings("forced");
    assert!(forced.force && !forced.respect_ignore_differences);
}

#[test]
fn custom_resources_skip_dry_run_when_their_crd_is_in_the_sync() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "names": {"kind": "Widget"}}
    });
    let widget =
        json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
    let gadget =
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}});
    let annotated = json!({"apiVersion": "other.io/v1", "kind": "Thing", "metadata": {"name": "t",
        "annotations": {SYNC_OPTIONS: "SkipDryRunOnMissingResource=true"}}});
    let p = plan(&input(vec![widget, gadget.clone(), crd, annotated])).expect("plans");
    let skip = |n: &str| {
        p.tasks
            .iter()
            .find(|t| t.key.name == n)
            .map(|t| t.apply.skip_dry_run)
            .expect("task")
    };
    assert!(skip("w") && skip("t"));
    assert!(!skip("g") && !skip("widgets.example.com"));
    let mut inp = input(vec![gadget]);
    inp.sync_options = vec!["SkipDryRunOnMissingResource=true".into()];
    assert!(plan(&inp).expect("plans").tasks[0].apply.skip_dry_run);
}

#[test]
fn shared_resources_fail_or_are_reported() {
    let mut inp = input(vec![obj("ConfigMap", "shared")]);
    inp.live = vec![obj("ConfigMap", "shared").ns(NS).tracked("billing")];
    let p = plan(&inp).expect("plans");
    assert_eq!(p.tasks[0].action, Action::Apply);
    assert_eq!(p.shared.len(), 1);
    assert_eq!(p.shared[0].other_app, "billing");
    inp.sync_options = vec!["FailOnSharedResource=true".into()];
    let err = plan(&inp).expect_err("shared");
    assert_eq!(
        err,
        PlanError::SharedResource {
            object: "/ConfigMap/default/shared".into(),
            other_app: "billing".into()
        }
    );
    // Unmanaged objects with the same identity are adopted, never an error.
    inp.live = vec![obj("ConfigMap", "shared").ns(NS)];
    assert_eq!(plan(&inp).expect("plans").tasks[0].action, Action::Apply);
}

#[test]
fn create_namespace_table() {
    // (option, namespace exists, managed metadata, ns in manifests, destination, expected first row)
    let ns_task = |action: &str| {
        Some((
            SyncPhase::PreSync,
            -1,
            "Namespace/default".to_owned(),
            action.to_owned(),
        ))
    };
    let cases = [
        (true, false, false, false, NS, ns_task("Create")),
        (true, true, false, false, NS, None),
        (true, true, true, false, NS, ns_task("Apply")),
        (true, false, false, true, NS, None),
        (false, false, false, false, NS, None),
        (true, false, false, false, "", None),
    ];
    for (option, exists, metadata, declared, destination, expected) in cases {
        let mut desired = vec![obj("ConfigMap", "c")];
        if declared {
            desired.push(obj("Namespace", NS));
        }
        let mut inp = input(desired);
        inp.namespace = destination.into();
        inp.namespace_exists = exists;
        if option {
            inp.sync_options = vec!["CreateNamespace=true".into()];
        }
        if metadata {
            inp.managed_namespace_metadata = Some(json!({"labels": {"team": "data"}}));
        }
        let p = plan(&inp).expect("plans");
        let ns_rows: Vec<_> = rows(&p)
            .into_iter()
            .filter(|r| r.2 == "Namespace/default" && r.0 == SyncPhase::PreSync)
            .collect();
        assert_eq!(
            ns_rows.first().cloned(),
            expected,
            "{option} {exists} {metadata} {declared} {destination:?}"
        );
    }
}

#[test]
fn created_namespace_carries_managed_metadata_and_runs_first() {
    let mut inp = input(vec![
        obj("Job", "migrate").hook("PreSync").wave(-3),
        obj("ConfigMap", "c"),
    ]);
    inp.namespace_exists = false;
    inp.sync_options = vec!["CreateNamespace=true".into()];
    inp.managed_namespace_metadata =
        Some(json!({"labels": {"team": "data"}, "annotations": {"a": "b"}}));
    let p = plan(&inp).expect("plans");
    insta::assert_snapshot!(p.summary().join("\n"));
    assert_eq!(p.tasks[0].key.kind, "Namespace");
    assert_eq!(p.tasks[0].wave, -4);
    assert_eq!(
        p.tasks[0].object,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "data"}, "annotations": {"a": "b"}}})
    );
}

#[test]
fn namespaces_and_crds_move_before_their_users() {
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "annotations": {SYNC_WAVE: "3"}},
        "spec": {"group": "example.com", "names": {"kind": "Widget"}}
    });
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "team"}});
    let desired = vec![
        obj("Namespace", "team").wave(5),
        obj("ConfigMap", "cfg").ns("team"),
        crd,
        widget,
        obj("Job", "prepare").ns("team").hook("PreSync"),
    ];
    let p = plan(&input(desired)).expect("plans");
    insta::assert_snapshot!(p.summary().join("\n"));
    assert_eq!(p.tasks[0].key.kind, "Namespace");
    assert_eq!(
        p.tasks[0].phase,
        SyncPhase::PreSync,
        "takes the phase of the hook that needs it"
    );
    assert_eq!(p.tasks[0].id, TaskId("PreSync:/Namespace//team".into()));
    let crd_pos = p
        .tasks
        .iter()
        .position(|t| t.key.kind == "CustomResourceDefinition")
        .expect("crd");
    let cr_pos = p
        .tasks
        .iter()
        .position(|t| t.key.kind == "Widget")
        .expect("cr");
    assert!(crd_pos < cr_pos);
    assert_eq!(p.tasks[crd_pos].wave, 0);
}

#[test]
fn namespaces_default_and_cluster_scoped_kinds_have_none() {
    let mut inp = input(vec![
        obj("ConfigMap", "c"),
        obj("ConfigMap", "elsewhere").ns("other"),
        obj("ClusterRole", "reader"),
        json!({"apiVersion": "example.com/v1", "kind": "ClusterThing", "metadata": {"name": "ct"}}),
        json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "gz"}}),
    ]);
    inp.cluster_scoped = BTreeSet::from([("example.com".to_owned(), "ClusterThing".to_owned())]);
    // A cluster-scoped live object of a kind cairn does not know: matched without namespace.
    inp.live = vec![
        json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "gz",
        "annotations": {TRACKING_ID: "guestbook:example.com/Gizmo:/gz"}}}),
    ];
    let p = plan(&inp).expect("plans");
    let ns = |n: &str| {
        p.tasks
            .iter()
            .find(|t| t.key.name == n)
            .map(|t| t.key.namespace.clone())
            .expect("task")
    };
    assert_eq!(ns("c"), Some(NS.into()));
    assert_eq!(ns("elsewhere"), Some("other".into()));
    assert_eq!(ns("reader"), None);
    assert_eq!(ns("ct"), None);
    assert_eq!(ns("gz"), None);
    assert_eq!(
        p.tasks.iter().filter(|t| t.prune).count(),
        0,
        "matched, not pruned"
    );
    let c = p.tasks.iter().find(|t| t.key.name == "c").expect("c");
    assert_eq!(c.object["metadata"]["namespace"], json!(NS));
    assert_eq!(
        c.object["metadata"]["annotations"][TRACKING_ID],
        json!("guestbook:/ConfigMap:default/c")
    );
}

#[test]
fn selective_sync_plans_only_selected_resources_and_no_hooks() {
    let mut inp = input(vec![
        obj("ConfigMap", "a"),
        obj("ConfigMap", "b"),
        obj("Deployment", "web"),
        obj("Job", "migrate").hook("PreSync"),
    ]);
    inp.live = vec![
        obj("ConfigMap", "gone").ns(NS).tracked(APP),
        obj("Service", "old").ns(NS).tracked(APP),
    ];
    inp.operation.resources = Some(vec![
        ResourceSelector::parse(":ConfigMap:a").expect("selector"),
        ResourceSelector::parse("apps:Deployment:default/web").expect("selector"),
        ResourceSelector::parse(":ConfigMap:gone").expect("selector"),
    ]);
    let p = plan(&inp).expect("plans");
    assert_eq!(names(&p), ["a", "gone", "web"]);
}

#[test]
fn plans_are_deterministic_whatever_the_input_order() {
    let desired = vec![
        obj("Deployment", "web").wave(1),
        obj("ConfigMap", "cfg"),
        obj("Job", "migrate").hook("PreSync"),
        obj("Service", "web").wave(1),
        obj("Secret", "creds"),
    ];
    let live = vec![
        obj("ConfigMap", "a-gone").ns(NS).tracked(APP),
        obj("ConfigMap", "b-gone").ns(NS).tracked(APP),
    ];
    let mut forward = input(desired.clone());
    forward.live = live.clone();
    let mut backward = input(desired.into_iter().rev().collect());
    backward.live = live.into_iter().rev().collect();
    assert_eq!(
        plan(&forward).expect("plans"),
        plan(&backward).expect("plans")
    );
}

#[test]
fn everything_together_snapshot() {
    let mut inp = input(vec![
        obj("Namespace", "default").wave(-2),
        obj("Job", "")
            .generate("schema-")
            .hook("PreSync")
            .ann(HOOK_DELETE_POLICY, "HookSucceeded"),
        obj("Secret", "db").wave(-1),
        obj("ConfigMap", "app").ann(SYNC_OPTIONS, "Replace=true"),
        obj("Deployment", "api"),
        obj("Service", "api"),
        obj("Deployment", "ui").wave(1),
        obj("Ingress", "ui").wave(1),
        obj("Pod", "smoke").hook("Sync").wave(1),
        obj("Job", "report").hook("PostSync"),
        obj("Job", "rollback")
            .hook("SyncFail")
            .ann(HOOK_DELETE_POLICY, "HookFailed"),
        obj("ConfigMap", "manual").hook("Skip"),
        obj("Pod", "helm-test").ann(HELM_HOOK, "test"),
    ]);
    inp.live = vec![
        obj("ConfigMap", "app").ns(NS).tracked(APP),
        obj("Deployment", "legacy").ns(NS).wave(1).tracked(APP),
        obj("ConfigMap", "legacy-cfg").ns(NS).tracked(APP),
        obj("PersistentVolumeClaim", "data")
            .ns(NS)
            .ann(SYNC_OPTIONS, "Prune=false")
            .tracked(APP),
        obj("Secret", "old-token")
            .ns(NS)
            .ann(SYNC_OPTIONS, "PruneLast=true")
            .tracked(APP),
    ];
    let p = plan(&inp).expect("plans");
    insta::assert_snapshot!(p.summary().join("\n"));
}

// ---------------------------------------------------------------- state machine

/// Drives [`step`] like a controller would, recording a trace.
struct Driver<'a> {
    plan: &'a Plan,
    state: OperationState,
    trace: Vec<String>,
}

impl<'a> Driver<'a> {
    fn new(plan: &'a Plan) -> Self {
        Driver {
            plan,
            state: OperationState::new(plan.operation_id.clone()),
            trace: Vec::new(),
        }
    }

    fn step(&mut self, obs: Observations) -> Next {
        let next = step(self.plan, &self.state, &obs);
        let actions: Vec<String> = next
            .actions
            .iter()
            .map(|a| match a {
                StepAction::Run(id) => format!("run {id}"),
                StepAction::DeleteHook(id) => format!("delete {id}"),
            })
            .collect();
        self.trace.push(format!(
            "{:?}: {} | {}",
            next.state.phase,
            next.state.message,
            if next.state.phase.is_completed() {
                "(done)".to_owned()
            } else if actions.is_empty() {
                "(wait)".to_owned()
            } else {
                actions.join(", ")
            }
        ));
        self.state = next.state.clone();
        next
    }
}

/// Every Run action succeeded; health as given.
fn ok_all(next: &Next, health_of: &[(ResourceKey, Health)]) -> Observations {
    let mut obs = health(health_of);
    for a in &next.actions {
        match a {
            StepAction::Run(id) => {
                obs.outcomes.insert(id.clone(), Outcome::Ok(String::new()));
            }
            StepAction::DeleteHook(id) => {
                obs.deleted.insert(id.clone(), Outcome::Ok(String::new()));
            }
        }
    }
    obs
}

fn health(pairs: &[(ResourceKey, Health)]) -> Observations {
    let mut obs = Observations::default();
    for (k, h) in pairs {
        obs.health.insert(k.clone(), *h);
    }
    obs
}

fn happy_plan() -> Plan {
    plan(&input(vec![
        obj("Job", "migrate")
            .hook("PreSync")
            .ann(HOOK_DELETE_POLICY, "HookSucceeded"),
        obj("ConfigMap", "cfg"),
        obj("Deployment", "api"),
        obj("Service", "api").wave(1),
        obj("Job", "report").hook("PostSync"),
        obj("Job", "rollback").hook("SyncFail"),
    ]))
    .expect("plans")
}

fn job(name: &str) -> ResourceKey {
    key("batch", "Job", Some(NS), name)
}

#[test]
fn happy_path_runs_wave_by_wave_and_deletes_succeeded_hooks() {
    let p = happy_plan();
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default()); // PreSync hook
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "PreSync:batch/Job/default/migrate".into()
        ))]
    );
    d.step(ok_all(&n, &[(job("migrate"), Health::Progressing)])); // wait for hook
    let n = d.step(health(&[(job("migrate"), Health::Healthy)])); // wave 0 of Sync
    assert_eq!(n.actions.len(), 2);
    let api = key("apps", "Deployment", Some(NS), "api");
    d.step(ok_all(&n, &[(api.clone(), Health::Progressing)])); // wait: not the final wave
    let n = d.step(health(&[(api.clone(), Health::Healthy)])); // wave 1
    let svc = key("", "Service", Some(NS), "api");
    d.step(ok_all(&n, &[(svc.clone(), Health::Progressing)])); // PostSync waits for all healthy
    assert_eq!(d.state.message, "waiting for healthy state of /Service/api");
    let n = d.step(health(&[(svc, Health::Healthy)]));
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "PostSync:batch/Job/default/report".into()
        ))]
    );
    let n = d.step(ok_all(&n, &[(job("report"), Health::Healthy)])); // done → delete HookSucceeded hooks
    assert_eq!(
        n.actions,
        [StepAction::DeleteHook(TaskId(
            "PreSync:batch/Job/default/migrate".into()
        ))]
    );
    assert_eq!(d.state.phase, OperationPhase::Running);
    d.step(ok_all(&n, &[]));
    assert_eq!(d.state.phase, OperationPhase::Succeeded);
    assert!(
        d.state
            .result(&TaskId("SyncFail:batch/Job/default/rollback".into()))
            .is_none(),
        "SyncFail never ran"
    );
    insta::assert_snapshot!(d.trace.join("\n"));
}

#[test]
fn failed_apply_runs_syncfail_hooks_then_fails() {
    let p = happy_plan();
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    d.step(ok_all(&n, &[(job("migrate"), Health::Healthy)]));
    // The hook completed in the same observation: the Sync wave was emitted.
    let n = step(&p, &d.state, &Observations::default());
    assert_eq!(n.actions.len(), 2);
    let mut obs = Observations::default();
    obs.outcomes.insert(
        TaskId("Sync:/ConfigMap/default/cfg".into()),
        Outcome::Ok("created".into()),
    );
    obs.outcomes.insert(
        TaskId("Sync:apps/Deployment/default/api".into()),
        Outcome::Failed("Deployment.apps \"api\" is invalid: spec.replicas: must be >= 0".into()),
    );
    let n = d.step(obs);
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "SyncFail:batch/Job/default/rollback".into()
        ))]
    );
    assert!(d.state.message.contains("running SyncFail hooks"));
    d.step(ok_all(&n, &[(job("rollback"), Health::Progressing)]));
    assert_eq!(d.state.phase, OperationPhase::Running);
    d.step(health(&[(job("rollback"), Health::Healthy)]));
    assert_eq!(d.state.phase, OperationPhase::Failed);
    assert!(
        d.state
            .message
            .starts_with("one or more objects failed to apply, reason: Deployment.apps"),
        "{}",
        d.state.message
    );
    insta::assert_snapshot!(d.trace.join("\n"));
}

#[test]
fn degraded_resource_in_a_middle_wave_fails_the_sync() {
    let p = plan(&input(vec![
        obj("Deployment", "db"),
        obj("Deployment", "api").wave(1),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    let db = key("apps", "Deployment", Some(NS), "db");
    d.step(ok_all(&n, &[(db.clone(), Health::Progressing)]));
    assert_eq!(
        d.state.message,
        "waiting for healthy state of apps/Deployment/db"
    );
    let n = d.step(health(&[(db, Health::Degraded)]));
    assert!(n.actions.is_empty());
    assert_eq!(d.state.phase, OperationPhase::Failed);
    assert!(
        d.state.message.contains("completed unsuccessfully"),
        "{}",
        d.state.message
    );
    assert!(
        d.state
            .result(&TaskId("Sync:apps/Deployment/default/api".into()))
            .is_none(),
        "wave 1 never started"
    );
}

#[test]
fn failed_hook_fails_the_sync_and_deletes_hook_failed_hooks() {
    let p = plan(&input(vec![
        obj("Job", "migrate")
            .hook("PreSync")
            .ann(HOOK_DELETE_POLICY, "HookFailed"),
        obj("ConfigMap", "cfg"),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    let n = d.step(ok_all(&n, &[(job("migrate"), Health::Degraded)]));
    assert_eq!(
        n.actions,
        [StepAction::DeleteHook(TaskId(
            "PreSync:batch/Job/default/migrate".into()
        ))]
    );
    assert_eq!(
        d.state.phase,
        OperationPhase::Running,
        "final only after the deletion"
    );
    let mut obs = Observations::default();
    obs.deleted.insert(
        TaskId("PreSync:batch/Job/default/migrate".into()),
        Outcome::Failed("forbidden".into()),
    );
    d.step(obs);
    assert_eq!(d.state.phase, OperationPhase::Failed);
    let r = d
        .state
        .result(&TaskId("PreSync:batch/Job/default/migrate".into()))
        .expect("result");
    assert!(r.deleted && r.message.contains("failed to delete hook: forbidden"));
}

#[test]
fn failing_syncfail_hook_is_reported_in_the_message() {
    let p = plan(&input(vec![
        obj("ConfigMap", "cfg"),
        obj("Job", "rollback").hook("SyncFail"),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    let mut obs = Observations::default();
    for a in &n.actions {
        if let StepAction::Run(id) = a {
            obs.outcomes.insert(
                id.clone(),
                Outcome::Failed("admission webhook denied".into()),
            );
        }
    }
    let n = d.step(obs);
    d.step(ok_all(&n, &[(job("rollback"), Health::Degraded)]));
    assert_eq!(d.state.phase, OperationPhase::Failed);
    assert!(
        d.state
            .message
            .contains("one or more SyncFail hooks failed"),
        "{}",
        d.state.message
    );
}

#[test]
fn failure_without_syncfail_hooks_fails_at_once() {
    let p = plan(&input(vec![obj("ConfigMap", "cfg")])).expect("plans");
    let mut d = Driver::new(&p);
    d.step(Observations::default());
    let mut obs = Observations::default();
    obs.outcomes.insert(
        TaskId("Sync:/ConfigMap/default/cfg".into()),
        Outcome::Failed("quota exceeded".into()),
    );
    let n = d.step(obs);
    assert!(n.actions.is_empty());
    assert_eq!(d.state.phase, OperationPhase::Failed);
    assert_eq!(
        d.state.message,
        "one or more objects failed to apply, reason: quota exceeded"
    );
    let r = &d.state.results[0];
    assert_eq!(
        (r.status, r.hook_phase),
        (ResultCode::SyncFailed, OperationPhase::Failed)
    );
}

#[test]
fn restart_mid_operation_never_reruns_a_finished_hook() {
    // A generateName PreSync hook and a named one (default policy BeforeHookCreation).
    let desired = vec![
        obj("Job", "").generate("migrate-").hook("PreSync"),
        obj("Job", "seed").hook("PreSync"),
        obj("ConfigMap", "cfg"),
        obj("Deployment", "api").wave(1),
    ];
    let before = plan(&input(desired.clone())).expect("plans");
    let mut d = Driver::new(&before);
    let n = d.step(Observations::default());
    assert_eq!(n.actions.len(), 2, "both hooks in one wave");
    let hooks: Vec<TaskId> = n
        .actions
        .iter()
        .map(|a| match a {
            StepAction::Run(id) | StepAction::DeleteHook(id) => id.clone(),
        })
        .collect();
    let hook_health: Vec<(ResourceKey, Health)> = hooks
        .iter()
        .map(|id| (before.task(id).expect("task").key.clone(), Health::Healthy))
        .collect();
    d.step(ok_all(&n, &hook_health));
    // Both hooks succeeded and wave 0 of Sync was emitted; cairn is killed now. The status is
    // what survives: round-trip it through the Application's JSON.
    let status = serde_json::to_value(d.state.to_status()).expect("serialize");
    let status: crate::gitops::types::OperationState =
        serde_json::from_value(status).expect("deserialize");
    let restored = OperationState::from_status(&status).expect("cairn state present");
    assert_eq!(restored, d.state);

    // After the restart the plan is recomputed with the finished hooks live. The generated one
    // is recognised as this operation's own; the named one gets a delete-before-creation task,
    // which the state machine must not emit (its hook already ran).
    let mut again = input(desired);
    again.live = hooks
        .iter()
        .map(|id| before.task(id).expect("task").object.clone())
        .collect();
    let after = plan(&again).expect("plans");
    let deletes: Vec<&str> = after
        .tasks
        .iter()
        .filter(|t| t.action == Action::DeleteHookBeforeCreation)
        .map(|t| t.key.name.as_str())
        .collect();
    assert_eq!(deletes, ["seed"]);
    let mut d2 = Driver {
        plan: &after,
        state: restored,
        trace: Vec::new(),
    };
    let n = d2.step(Observations::default());
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "Sync:/ConfigMap/default/cfg".into()
        ))]
    );
    let n = d2.step(ok_all(&n, &[]));
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "Sync:apps/Deployment/default/api".into()
        ))]
    );
    d2.step(ok_all(&n, &[]));
    assert_eq!(d2.state.phase, OperationPhase::Succeeded);
    for hook in &hooks {
        let runs = d
            .trace
            .iter()
            .chain(d2.trace.iter())
            .filter(|l| l.contains(&format!("run {hook}")))
            .count();
        assert_eq!(runs, 1, "{hook}: {:#?}", (&d.trace, &d2.trace));
    }
}

#[test]
fn restart_before_the_hook_outcome_resumes_a_generated_hook_without_deleting_it() {
    let desired = vec![obj("Job", "").generate("migrate-").hook("PreSync")];
    let before = plan(&input(desired.clone())).expect("plans");
    let first = step(
        &before,
        &OperationState::new("op-1"),
        &Observations::default(),
    );
    // Persisted, executed (the Job exists), crashed before the outcome was recorded.
    let mut again = input(desired);
    again.live = vec![before.tasks[0].object.clone()];
    let after = plan(&again).expect("plans");
    assert_eq!(
        after.tasks.len(),
        1,
        "no delete-before-creation of our own run"
    );
    let n = step(&after, &first.state, &Observations::default());
    assert_eq!(
        n.actions,
        [StepAction::Run(before.tasks[0].id.clone())],
        "re-applied, idempotent"
    );
}

#[test]
fn crash_before_outcomes_reemits_the_same_actions() {
    let p = happy_plan();
    let state = OperationState::new("op-1");
    let first = step(&p, &state, &Observations::default());
    // Persisted first.state, then crashed before executing: the same step again.
    let again = step(&p, &first.state, &Observations::default());
    assert_eq!(first.actions, again.actions);
}

#[test]
fn before_hook_creation_waits_for_the_deletion() {
    let mut inp = input(vec![
        obj("Job", "migrate").hook("PreSync"),
        obj("ConfigMap", "cfg"),
    ]);
    inp.live = vec![obj("Job", "migrate").ns(NS).tracked(APP)];
    let p = plan(&inp).expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "PreSync:batch/Job/default/migrate:delete".into()
        ))]
    );
    let n = d.step(ok_all(&n, &[]));
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "PreSync:batch/Job/default/migrate".into()
        ))]
    );
    let n = d.step(ok_all(&n, &[(job("migrate"), Health::Healthy)]));
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "Sync:/ConfigMap/default/cfg".into()
        ))]
    );
}

#[test]
fn hook_health_table() {
    // (health reported for a running hook, expected task phase after the step)
    let cases = [
        (None, OperationPhase::Succeeded),
        (Some(Health::Healthy), OperationPhase::Succeeded),
        (Some(Health::Progressing), OperationPhase::Running),
        (Some(Health::Suspended), OperationPhase::Running),
        (Some(Health::Degraded), OperationPhase::Failed),
        (Some(Health::Unknown), OperationPhase::Failed),
        (Some(Health::Missing), OperationPhase::Failed),
    ];
    let p = plan(&input(vec![
        obj("Job", "h").hook("Sync"),
        obj("ConfigMap", "later").wave(1),
    ]))
    .expect("plans");
    let id = TaskId("Sync:batch/Job/default/h".into());
    for (h, expected) in cases {
        let first = step(&p, &OperationState::new("op-1"), &Observations::default());
        let mut obs = Observations::default();
        obs.outcomes.insert(id.clone(), Outcome::Ok(String::new()));
        if let Some(h) = h {
            obs.health.insert(job("h"), h);
        }
        let next = step(&p, &first.state, &obs);
        assert_eq!(
            next.state.result(&id).map(|r| r.hook_phase),
            Some(expected),
            "{h:?}"
        );
    }
}

#[test]
fn resource_health_table_in_a_middle_wave() {
    let cases = [
        (None, OperationPhase::Succeeded),
        (Some(Health::Healthy), OperationPhase::Succeeded),
        (Some(Health::Progressing), OperationPhase::Running),
        (Some(Health::Suspended), OperationPhase::Running),
        (Some(Health::Missing), OperationPhase::Running),
        (Some(Health::Degraded), OperationPhase::Failed),
    ];
    let p = plan(&input(vec![
        obj("Deployment", "d"),
        obj("ConfigMap", "later").wave(1),
    ]))
    .expect("plans");
    let id = TaskId("Sync:apps/Deployment/default/d".into());
    for (h, expected) in cases {
        let first = step(&p, &OperationState::new("op-1"), &Observations::default());
        let mut obs = Observations::default();
        obs.outcomes.insert(id.clone(), Outcome::Ok(String::new()));
        if let Some(h) = h {
            obs.health
                .insert(key("apps", "Deployment", Some(NS), "d"), h);
        }
        let next = step(&p, &first.state, &obs);
        assert_eq!(
            next.state.result(&id).map(|r| r.hook_phase),
            Some(expected),
            "{h:?}"
        );
    }
}

#[test]
fn single_wave_sync_does_not_wait_for_resource_health() {
    let p = plan(&input(vec![obj("Deployment", "d"), obj("Service", "s")])).expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    d.step(ok_all(
        &n,
        &[(
            key("apps", "Deployment", Some(NS), "d"),
            Health::Progressing,
        )],
    ));
    assert_eq!(d.state.phase, OperationPhase::Succeeded);
}

#[test]
fn pruning_waits_for_deletion_to_finish() {
    let mut inp = input(vec![obj("ConfigMap", "keep")]);
    inp.live = vec![
        obj("ConfigMap", "gone").ns(NS).tracked(APP),
        obj("ConfigMap", "keep").ns(NS).tracked(APP),
    ];
    let p = plan(&inp).expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    assert_eq!(
        n.actions[0],
        StepAction::Run(TaskId("Sync:/ConfigMap/default/gone".into())),
        "prunes first"
    );
    let gone = key("", "ConfigMap", Some(NS), "gone");
    let mut obs = ok_all(&n, &[]);
    obs.terminating.insert(gone.clone());
    d.step(obs.clone());
    assert_eq!(d.state.message, "waiting for deletion of /ConfigMap/gone");
    d.step(Observations::default());
    assert_eq!(d.state.phase, OperationPhase::Succeeded);
    assert_eq!(
        d.state
            .result(&TaskId("Sync:/ConfigMap/default/gone".into()))
            .map(|r| r.status),
        Some(ResultCode::Pruned)
    );
}

#[test]
fn skipped_tasks_are_recorded_and_waves_of_skips_pass() {
    let mut inp = input(vec![
        obj("ConfigMap", "manual").hook("Skip").wave(-1),
        obj("ConfigMap", "cfg"),
    ]);
    inp.live = vec![obj("ConfigMap", "gone").ns(NS).wave(3).tracked(APP)];
    inp.operation.prune = false;
    let p = plan(&inp).expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "Sync:/ConfigMap/default/cfg".into()
        ))]
    );
    d.step(ok_all(&n, &[]));
    assert_eq!(d.state.phase, OperationPhase::Succeeded);
    let status = |n: &str| {
        d.state
            .results
            .iter()
            .find(|r| r.key.name == n)
            .map(|r| (r.status, r.message.clone()))
    };
    assert_eq!(
        status("manual"),
        Some((ResultCode::Skipped, "skipped (hook: Skip)".into()))
    );
    assert_eq!(
        status("gone"),
        Some((
            ResultCode::PruneSkipped,
            "ignored (requires pruning)".into()
        ))
    );
}

#[test]
fn dry_run_yields_the_plan_without_actions() {
    let mut inp = input(vec![
        obj("ConfigMap", "cfg"),
        obj("Job", "migrate").hook("PreSync"),
    ]);
    inp.live = vec![obj("ConfigMap", "gone").ns(NS).tracked(APP)];
    inp.operation.dry_run = true;
    let p = plan(&inp).expect("plans");
    assert!(p.dry_run);
    let n = step(&p, &OperationState::new("op-1"), &Observations::default());
    assert!(n.actions.is_empty());
    assert_eq!(n.state.phase, OperationPhase::Succeeded);
    insta::assert_yaml_snapshot!(n.state);
}

#[test]
fn completed_operations_never_change() {
    let p = happy_plan();
    let mut st = OperationState::new("op-1");
    st.phase = OperationPhase::Succeeded;
    st.message = "done".into();
    let mut obs = Observations::default();
    obs.outcomes.insert(
        TaskId("Sync:/ConfigMap/default/cfg".into()),
        Outcome::Failed("late".into()),
    );
    let n = step(&p, &st, &obs);
    assert_eq!(n.state, st);
    assert!(n.actions.is_empty());
}

#[test]
fn stale_outcomes_are_ignored() {
    let p = happy_plan();
    let first = step(&p, &OperationState::new("op-1"), &Observations::default());
    let mut obs = Observations::default();
    obs.outcomes.insert(
        TaskId("Sync:/ConfigMap/default/not-in-plan".into()),
        Outcome::Failed("x".into()),
    );
    let n = step(&p, &first.state, &obs);
    assert_eq!(n.state.phase, OperationPhase::Running);
    assert!(n.state.results.is_empty());
    assert_eq!(n.actions, first.actions);
}

#[test]
fn terminate_deletes_running_hooks_and_fails() {
    let p = happy_plan();
    let n = step(&p, &OperationState::new("op-1"), &Observations::default());
    let n = step(
        &p,
        &n.state,
        &ok_all(&n, &[(job("migrate"), Health::Progressing)]),
    );
    let t = terminate(&p, &n.state);
    assert_eq!(
        t.actions,
        [StepAction::DeleteHook(TaskId(
            "PreSync:batch/Job/default/migrate".into()
        ))]
    );
    assert_eq!(t.state.phase, OperationPhase::Failed);
    assert_eq!(t.state.message, "Operation terminated");
    assert_eq!(
        terminate(&p, &t.state).state,
        t.state,
        "terminating twice changes nothing"
    );
}

#[test]
fn status_has_argo_cd_shape() {
    let p = happy_plan();
    let n = step(&p, &OperationState::new("op-1"), &Observations::default());
    let n = step(
        &p,
        &n.state,
        &ok_all(&n, &[(job("migrate"), Health::Progressing)]),
    );
    let status = serde_json::to_value(n.state.to_status()).expect("serialize");
    assert_eq!(status["phase"], json!("Running"));
    assert_eq!(
        status["syncResult"]["resources"][0],
        json!({"group": "batch", "kind": "Job", "namespace": "default", "name": "migrate",
               "status": "Synced", "message": "", "hookPhase": "Running", "syncPhase": "PreSync",
               "hookType": "PreSync"})
    );
    assert!(status["cairnSync"]["results"].is_array());
}

#[test]
fn from_status_without_cairn_state_is_none() {
    let status = crate::gitops::types::OperationState {
        phase: Some("Running".into()),
        ..Default::default()
    };
    assert_eq!(OperationState::from_status(&status), None);
}

#[test]
fn state_of_another_operation_is_an_error() {
    let p = happy_plan();
    let n = step(&p, &OperationState::new("op-0"), &Observations::default());
    assert_eq!(n.state.phase, OperationPhase::Error);
    assert!(n.actions.is_empty());
    assert!(n.state.message.contains("\"op-0\""), "{}", n.state.message);
}

#[test]
fn syncfail_hooks_do_not_make_a_sync_multi_step() {
    let p = plan(&input(vec![
        obj("Deployment", "d"),
        obj("Job", "rollback").hook("SyncFail").wave(7),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "Sync:apps/Deployment/default/d".into()
        ))]
    );
    d.step(ok_all(
        &n,
        &[(
            key("apps", "Deployment", Some(NS), "d"),
            Health::Progressing,
        )],
    ));
    assert_eq!(d.state.phase, OperationPhase::Succeeded);
}

#[test]
fn hooks_in_the_final_wave_are_awaited() {
    let p = plan(&input(vec![
        obj("ConfigMap", "c"),
        obj("Job", "smoke").hook("Sync"),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    d.step(ok_all(&n, &[(job("smoke"), Health::Progressing)]));
    assert_eq!(
        d.state.message,
        "waiting for completion of hook batch/Job/smoke"
    );
    d.step(health(&[(job("smoke"), Health::Healthy)]));
    assert_eq!(d.state.phase, OperationPhase::Succeeded);
}

#[test]
fn waiting_message_counts_the_others() {
    let p = plan(&input(vec![
        obj("Deployment", "a"),
        obj("Deployment", "b"),
        obj("Deployment", "c"),
        obj("ConfigMap", "later").wave(1),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    d.step(ok_all(
        &n,
        &[
            (
                key("apps", "Deployment", Some(NS), "a"),
                Health::Progressing,
            ),
            (
                key("apps", "Deployment", Some(NS), "b"),
                Health::Progressing,
            ),
            (
                key("apps", "Deployment", Some(NS), "c"),
                Health::Progressing,
            ),
        ],
    ));
    assert_eq!(
        d.state.message,
        "waiting for healthy state of apps/Deployment/a and 2 more resources"
    );
}

#[test]
fn automated_sync_without_prune_only_reports_extraneous_resources() {
    let mut inp = prune_input(vec![obj("ConfigMap", "gone").ns(NS).tracked(APP)]);
    let policy = crate::gitops::types::SyncPolicy {
        automated: Some(crate::gitops::types::AutomatedSyncPolicy::default()),
        ..Default::default()
    };
    inp.operation = OperationOptions::automated("op-1", &policy);
    let p = plan(&inp).expect("plans");
    let gone = p.tasks.iter().find(|t| t.key.name == "gone").expect("task");
    assert_eq!(gone.action, Action::Skip(SkipReason::PruneDisabled));
    assert_eq!(
        gone.object["metadata"]["name"],
        json!("gone"),
        "a prune task carries the live object"
    );
}

#[test]
fn plans_round_trip_through_json() {
    let p = happy_plan();
    let text = serde_json::to_string(&p).expect("serialize");
    let back: Plan = serde_json::from_str(&text).expect("deserialize");
    assert_eq!(back, p);
}

#[test]
fn error_messages_and_labels() {
    let cases = [
        (
            PlanError::SharedResource {
                object: "/ConfigMap/default/x".into(),
                other_app: "billing".into(),
            },
            "shared_resource",
            "shared resource found: /ConfigMap/default/x is part of application billing",
        ),
        (
            PlanError::BadResourceSelector {
                selector: "x".into(),
                expected: "GROUP:KIND:NAME".into(),
            },
            "bad_resource_selector",
            "resource selector \"x\": expected GROUP:KIND:NAME",
        ),
        (
            PlanError::InvalidObject {
                index: 3,
                object: "ConfigMap/a".into(),
                reason: "kind is missing".into(),
            },
            "invalid_object",
            "desired object #3 (ConfigMap/a): kind is missing",
        ),
    ];
    for (err, label, text) in cases {
        assert_eq!(err.metric_label(), label);
        assert!(err.to_string().starts_with(text), "{err}");
    }
}

#[test]
fn a_rejected_apply_fails_without_waiting_for_the_rest_of_the_wave() {
    let p = plan(&input(vec![
        obj("ConfigMap", "cfg"),
        obj("Deployment", "api"),
        obj("Service", "api").wave(1),
        obj("Job", "rollback").hook("SyncFail"),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    d.step(Observations::default());
    let mut obs = health(&[(
        key("apps", "Deployment", Some(NS), "api"),
        Health::Progressing,
    )]);
    obs.outcomes.insert(
        TaskId("Sync:/ConfigMap/default/cfg".into()),
        Outcome::Failed("invalid".into()),
    );
    obs.outcomes.insert(
        TaskId("Sync:apps/Deployment/default/api".into()),
        Outcome::Ok(String::new()),
    );
    let n = d.step(obs);
    assert_eq!(
        n.actions,
        [StepAction::Run(TaskId(
            "SyncFail:batch/Job/default/rollback".into()
        ))]
    );
}

#[test]
fn replayed_outcomes_do_not_reopen_completed_tasks() {
    let p = plan(&input(vec![
        obj("ConfigMap", "cfg"),
        obj("ConfigMap", "later").wave(1),
    ]))
    .expect("plans");
    let mut d = Driver::new(&p);
    let n = d.step(Observations::default());
    let mut failed = Observations::default();
    failed.outcomes.insert(
        TaskId("Sync:/ConfigMap/default/cfg".into()),
        Outcome::Failed("denied".into()),
    );
    d.step(failed);
    assert_eq!(d.state.phase, OperationPhase::Failed);
    // Even fed to a still-running copy of the state, a late Ok does not turn a failure green.
    let mut st = d.state.clone();
    st.phase = OperationPhase::Running;
    let replay = step(&p, &st, &ok_all(&n, &[]));
    let r = replay
        .state
        .result(&TaskId("Sync:/ConfigMap/default/cfg".into()))
        .expect("result");
    assert_eq!(
        (r.status, r.hook_phase),
        (ResultCode::SyncFailed, OperationPhase::Failed)
    );
}

#[test]
fn large_app_plans_and_runs_in_bounded_steps() {
    // 600 objects over 6 waves; the even waves hold exactly the objects in sync, so under
    // ApplyOutOfSyncOnly they are passed over: one step per odd wave, one to observe the last.
    let mut desired = Vec::new();
    let mut live = Vec::new();
    let mut in_sync = BTreeSet::new();
    for i in 0..600 {
        let (kind, group) = match i % 3 {
            0 => ("ConfigMap", ""),
            1 => ("Service", ""),
            _ => ("Deployment", "apps"),
        };
        let name = format!("obj-{i:04}");
        desired.push(obj(kind, &name).wave(i64::from(i % 6)));
        live.push(obj(kind, &name).ns(NS).wave(i64::from(i % 6)).tracked(APP));
        if i % 2 == 0 {
            in_sync.insert(key(group, kind, Some(NS), &name));
        }
    }
    let mut inp = input(desired);
    inp.live = live;
    inp.in_sync = in_sync;
    inp.sync_options = vec!["ApplyOutOfSyncOnly=true".into()];
    let started = std::time::Instant::now();
    let p = plan(&inp).expect("plans");
    assert_eq!(p.tasks.len(), 600);
    let mut d = Driver::new(&p);
    let mut next = d.step(Observations::default());
    let mut steps = 1;
    while !d.state.phase.is_completed() {
        next = d.step(ok_all(&next, &[]));
        steps += 1;
        assert!(steps < 20, "runaway: {:?}", d.trace);
    }
    assert_eq!(d.state.phase, OperationPhase::Succeeded);
    assert_eq!(steps, 4);
    assert_eq!(d.state.results.len(), 600);
    eprintln!("600-object plan + run: {:?}", started.elapsed());
}
