//! [`plan`]: desired + live objects and options in, an ordered list of [`Task`]s out.
//!
//! Ordering (gitops-engine `sync_tasks.go`, Argo CD "Sync Phases and Waves"): phase (PreSync,
//! Sync, PostSync, SyncFail), then wave (lower first), then kind in Helm's install order (kinds
//! not in the list, i.e. custom resources, last), then name. After sorting, a Namespace is moved
//! in front of the first task that lives in it and a CRD in front of the first custom resource of
//! its kind, taking that task's phase and wave (so a PreSync hook's namespace exists before it).
//! Prune tasks run in the reverse of the creation order: the distinct prune waves are mirrored
//! (the highest wave is pruned first); `PruneLast` moves a prune to one wave after the last wave of
//! the Sync phase.
//!
//! Invariants: tasks are totally ordered (ties broken by group, namespace and task id), so the same
//! input always gives the same plan; a task id (`<phase>:<group>/<kind>/<ns>/<name>`, with
//! `:delete` for a hook's delete-before-creation) is unique in a plan and stable across
//! recomputations, which is what the operation state keys its results by.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::hooks::{self, Classification, DeletePolicy};
use super::options::{
    AppSyncOptions, ApplySettings, OperationOptions, Permission, PropagationPolicy,
    ResourceSyncOptions,
};
use super::{PlanError, TRACKING_ID, annotation, annotation_csv, str_at};
use crate::k8s::ResourceKey;

/// A phase of a sync operation, in execution order (the derived `Ord` is that order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SyncPhase {
    /// Hooks before the manifests.
    PreSync,
    /// The manifests (and Sync hooks).
    Sync,
    /// Hooks after everything is healthy.
    PostSync,
    /// Hooks run only when the operation fails.
    SyncFail,
}

impl SyncPhase {
    /// The name Argo CD uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPhase::PreSync => "PreSync",
            SyncPhase::Sync => "Sync",
            SyncPhase::PostSync => "PostSync",
            SyncPhase::SyncFail => "SyncFail",
        }
    }
}

impl fmt::Display for SyncPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` so width specifiers line up the plan summary.
        f.pad(self.as_str())
    }
}

/// The identity of a task within an operation: `<phase>:<group>/<kind>/<ns>/<name>`, plus
/// `:delete` for a hook's delete-before-creation step.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub String);

impl TaskId {
    fn new(phase: SyncPhase, key: &ResourceKey, delete: bool) -> Self {
        let suffix = if delete { ":delete" } else { "" };
        TaskId(format!("{phase}:{key}{suffix}"))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a task does nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SkipReason {
    /// `ApplyOutOfSyncOnly=true` and the diff found the resource in sync.
    InSync,
    /// The operation does not prune (Argo CD: "ignored (requires pruning)").
    PruneDisabled,
    /// `Prune=false` (Argo CD: "ignored (no prune)").
    PruneForbidden,
    /// `Delete=false` (or `helm.sh/resource-policy: keep`).
    DeleteForbidden,
    /// `Prune=confirm`/`Delete=confirm` and the operation carries no confirmation.
    NeedsConfirmation,
    /// The live object's sync-options annotation cannot be read; never prune on a guess.
    BadSyncOptions(String),
    /// `argocd.argoproj.io/hook: Skip`.
    SkipHook,
    /// A hook that does not run during a sync (deletion hooks, unsupported Helm hooks).
    NotInSync(String),
}

impl SkipReason {
    /// The message recorded for the resource.
    pub fn message(&self) -> String {
        match self {
            SkipReason::InSync => "ignored (in sync, ApplyOutOfSyncOnly)".to_owned(),
            SkipReason::PruneDisabled => "ignored (requires pruning)".to_owned(),
            SkipReason::PruneForbidden => "ignored (no prune)".to_owned(),
            SkipReason::DeleteForbidden => "ignored (no delete)".to_owned(),
            SkipReason::NeedsConfirmation => "ignored (prune requires confirmation)".to_owned(),
            SkipReason::BadSyncOptions(why) => format!("ignored (unreadable sync options: {why})"),
            SkipReason::SkipHook => "skipped (hook: Skip)".to_owned(),
            SkipReason::NotInSync(why) => format!("skipped ({why})"),
        }
    }
}

/// What the applier does for a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// The object does not exist: create it (server-side apply creates too).
    Create,
    /// The object exists: apply the desired state.
    Apply,
    /// `Replace=true` and the object exists: replace it (`kubectl replace`).
    Replace,
    /// Delete a tracked object that left the desired state.
    Prune,
    /// Do nothing, for the reason given (recorded in the result).
    Skip(SkipReason),
    /// Create (or apply, when named and existing) a hook and wait for it to complete.
    RunHook,
    /// Delete the existing hook object before its [`Action::RunHook`] (BeforeHookCreation).
    DeleteHookBeforeCreation,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create => f.write_str("Create"),
            Action::Apply => f.write_str("Apply"),
            Action::Replace => f.write_str("Replace"),
            Action::Prune => f.write_str("Prune"),
            Action::Skip(reason) => write!(f, "Skip: {}", reason.message()),
            Action::RunHook => f.write_str("RunHook"),
            Action::DeleteHookBeforeCreation => f.write_str("DeleteHookBeforeCreation"),
        }
    }
}

/// One step of a sync.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Unique, stable id (see [`TaskId`]).
    pub id: TaskId,
    /// The object's identity.
    pub key: ResourceKey,
    /// Phase it runs in.
    pub phase: SyncPhase,
    /// Wave within the phase (after prune reversal and PruneLast).
    pub wave: i64,
    /// What to do.
    pub action: Action,
    /// Delete policies when the object is a hook; `None` for ordinary resources.
    pub hook: Option<Vec<DeletePolicy>>,
    /// The object to write (desired, with namespace and tracking id set) or, for a prune, the
    /// live object.
    pub object: Value,
    /// How to write it.
    pub apply: ApplySettings,
    /// True for prune tasks (including prunes skipped by policy).
    pub prune: bool,
    /// Whether a live object exists for this task.
    pub live_exists: bool,
}

impl Task {
    /// Whether this task is a hook (its completion is awaited before the phase continues).
    pub fn is_hook(&self) -> bool {
        self.hook.is_some()
    }

    /// Whether the hook is deleted under `policy`.
    pub fn has_delete_policy(&self, policy: DeletePolicy) -> bool {
        self.hook.as_ref().is_some_and(|p| p.contains(&policy))
    }
}

/// A desired object whose live counterpart carries another application's tracking id, reported
/// when `FailOnSharedResource` is off (Argo CD then applies it and warns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SharedResource {
    /// The object.
    pub key: ResourceKey,
    /// The application it is tracked by.
    pub other_app: String,
}

/// The outcome of planning: what to do, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// The operation this plan is for.
    pub operation_id: String,
    /// Dry run: the plan is reported, nothing is executed.
    pub dry_run: bool,
    /// Tasks in execution order.
    pub tasks: Vec<Task>,
    /// Shared resources found (only when `FailOnSharedResource` is off).
    pub shared: Vec<SharedResource>,
    /// Deletion propagation for prunes and hook deletions.
    pub propagation_policy: PropagationPolicy,
}

impl Plan {
    /// The task with this id.
    pub fn task(&self, id: &TaskId) -> Option<&Task> {
        self.tasks.iter().find(|t| &t.id == id)
    }

    /// One line per task (`phase wave action key`): the CLI's dry-run listing and the snapshot
    /// format of the tests.
    pub fn summary(&self) -> Vec<String> {
        self.tasks
            .iter()
            .map(|t| {
                let hook = if t.is_hook() { " (hook)" } else { "" };
                format!("{:<8} {:>3} {} {}{hook}", t.phase, t.wave, t.action, t.key)
            })
            .collect()
    }
}

/// Everything planning needs, as data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanInput {
    /// Application name as it appears in tracking ids (`<namespace>_<name>` for apps outside the
    /// control namespace, as Argo CD writes them).
    pub app: String,
    /// Destination namespace (`spec.destination.namespace`); empty for none.
    pub namespace: String,
    /// Rendered desired objects.
    pub desired: Vec<Value>,
    /// Live objects: those tracked to this app and those sharing an identity with a desired
    /// object (tracked elsewhere or unmanaged).
    pub live: Vec<Value>,
    /// Resources the diff found in sync (for `ApplyOutOfSyncOnly`).
    pub in_sync: BTreeSet<ResourceKey>,
    /// `syncPolicy.syncOptions`.
    pub sync_options: Vec<String>,
    /// `syncPolicy.managedNamespaceMetadata` (labels, annotations) for `CreateNamespace=true`.
    pub managed_namespace_metadata: Option<Value>,
    /// Whether the destination namespace exists in the cluster.
    pub namespace_exists: bool,
    /// Cluster-scoped `(group, kind)`s known from discovery, beyond the built-in list.
    pub cluster_scoped: BTreeSet<(String, String)>,
    /// The operation's options.
    pub operation: OperationOptions,
}

/// Kinds in Helm's install order, as gitops-engine orders them; every other kind sorts after.
const KIND_ORDER: &[&str] = &[
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
];

/// Position of a kind in the install order; unknown kinds (custom resources) come last.
pub fn kind_rank(kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// Cluster-scoped kinds cairn knows without discovery (group, kind).
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("scheduling.k8s.io", "PriorityClass"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("policy", "PodSecurityPolicy"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("argoproj.io", "ClusterWorkflowTemplate"),
];

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Which application a live object is tracked to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Tracking {
    Ours,
    Other(String),
    Unmanaged,
}

/// Read `<app>:<group>/<kind>:<ns>/<name>`; a tracking id that does not describe the object
/// itself (copied with its manifest) does not make it tracked, as in Argo CD.
fn tracking(live: &Value, key: &ResourceKey, app: &str) -> Tracking {
    let Some(id) = annotation(live, TRACKING_ID) else {
        return Tracking::Unmanaged;
    };
    let parsed = (|| {
        let (owner, rest) = id.split_once(':')?;
        let (gk, nsname) = rest.split_once(':')?;
        let (group, kind) = gk.split_once('/')?;
        let (ns, name) = nsname.split_once('/')?;
        Some((owner, group, kind, ns, name))
    })();
    match parsed {
        Some((owner, group, kind, ns, name))
            if group == key.group
                && kind == key.kind
                && name == key.name
                && ns == key.namespace.as_deref().unwrap_or("") =>
        {
            if owner == app {
                Tracking::Ours
            } else {
                Tracking::Other(owner.to_owned())
            }
        }
        _ => Tracking::Unmanaged,
    }
}

fn tracking_id(app: &str, key: &ResourceKey) -> String {
    format!(
        "{app}:{}/{}:{}/{}",
        key.group,
        key.kind,
        key.namespace.as_deref().unwrap_or(""),
        key.name
    )
}

struct LiveEntry<'a> {
    obj: &'a Value,
    tracking: Tracking,
}

/// Plan the sync described by `input`.
pub fn plan(input: &PlanInput) -> Result<Plan, PlanError> {
    let app_opts = AppSyncOptions::parse(&input.sync_options)?;
    let op = &input.operation;
    let selective = op.resources.is_some();
    let cluster_scoped = |group: &str, kind: &str| {
        CLUSTER_SCOPED.contains(&(group, kind))
            || input
                .cluster_scoped
                .contains(&(group.to_owned(), kind.to_owned()))
    };

    // Live objects by identity (their own namespace is authoritative).
    let mut live: BTreeMap<ResourceKey, LiveEntry<'_>> = BTreeMap::new();
    for obj in &input.live {
        let (Some(api), Some(kind), Some(name)) = (
            str_at(obj, "/apiVersion"),
            str_at(obj, "/kind"),
            str_at(obj, "/metadata/name"),
        ) else {
            // A live object without identity cannot be matched or pruned; the watcher would
            // never hand one over, so there is nothing to report.
            continue;
        };
        let key = ResourceKey::new(
            group_of(api),
            kind,
            str_at(obj, "/metadata/namespace"),
            name,
        );
        let tracking = tracking(obj, &key, &input.app);
        live.insert(key, LiveEntry { obj, tracking });
    }
    let find_live = |key: &ResourceKey| -> Option<(ResourceKey, &LiveEntry<'_>)> {
        if let Some(entry) = live.get(key) {
            return Some((key.clone(), entry));
        }
        // A desired object of a kind cairn did not know to be cluster-scoped: the live one has
        // no namespace (gitops-engine matches the same way).
        let cluster = ResourceKey::new(key.group.clone(), key.kind.clone(), None, key.name.clone());
        live.get(&cluster).map(|e| (cluster, e))
    };

    // CRDs in this sync: their custom resources skip the dry run (the type is not known yet).
    let mut crd_kinds: BTreeSet<(String, String)> = BTreeSet::new();
    for obj in &input.desired {
        if str_at(obj, "/kind") == Some(CRD_KIND)
            && str_at(obj, "/apiVersion").map(group_of) == Some(CRD_GROUP)
            && let (Some(g), Some(k)) =
                (str_at(obj, "/spec/group"), str_at(obj, "/spec/names/kind"))
        {
            crd_kinds.insert((g.to_owned(), k.to_owned()));
        }
    }

    let mut tasks: Vec<Task> = Vec::new();
    let mut desired_keys: BTreeSet<ResourceKey> = BTreeSet::new();
    let mut shared: Vec<SharedResource> = Vec::new();
    let mut has_namespace_manifest = false;

    for (index, raw) in input.desired.iter().enumerate() {
        let kind = str_at(raw, "/kind").unwrap_or("");
        let name = str_at(raw, "/metadata/name").unwrap_or("");
        let generate_name = str_at(raw, "/metadata/generateName").unwrap_or("");
        let invalid = |reason: &str| PlanError::InvalidObject {
            index,
            object: format!(
                "{}/{}",
                if kind.is_empty() { "<no kind>" } else { kind },
                if name.is_empty() { generate_name } else { name }
            ),
            reason: reason.to_owned(),
        };
        let Some(api_version) = str_at(raw, "/apiVersion").filter(|s| !s.is_empty()) else {
            return Err(invalid("apiVersion is missing"));
        };
        if kind.is_empty() {
            return Err(invalid("kind is missing"));
        }
        if name.is_empty() && generate_name.is_empty() {
            return Err(invalid(
                "metadata.name (or generateName, for hooks) is missing",
            ));
        }
        let group = group_of(api_version);
        let namespaced = !cluster_scoped(group, kind);
        let namespace = if namespaced {
            str_at(raw, "/metadata/namespace")
                .filter(|ns| !ns.is_empty())
                .unwrap_or(&input.namespace)
                .to_owned()
        } else {
            String::new()
        };
        if kind == "Namespace" && group.is_empty() && name == input.namespace {
            has_namespace_manifest = true;
        }
        // Identity for messages before the hook name is known.
        let base_key = ResourceKey::new(
            group,
            kind,
            Some(&namespace),
            if name.is_empty() { generate_name } else { name },
        );
        let class = hooks::classify(raw, &base_key)?;
        let wave = hooks::wave(raw, &base_key)?;
        let res_opts = ResourceSyncOptions::of(raw, &base_key)?;
        let apply = ApplySettings {
            server_side: res_opts
                .server_side_apply
                .unwrap_or(app_opts.server_side_apply),
            validate: res_opts.validate.unwrap_or(app_opts.validate),
            skip_dry_run: res_opts
                .skip_dry_run_on_missing_resource
                .unwrap_or(app_opts.skip_dry_run_on_missing_resource)
                || crd_kinds.contains(&(group.to_owned(), kind.to_owned())),
            respect_ignore_differences: res_opts
                .respect_ignore_differences
                .unwrap_or(app_opts.respect_ignore_differences),
            force: res_opts.force.unwrap_or(false),
        };

        match class {
            Classification::Hook {
                phases,
                delete_policies,
            } => {
                // Hooks do not run during a selective sync (Argo CD "Selective Sync").
                if selective {
                    continue;
                }
                for phase in phases {
                    let hook_name = if name.is_empty() {
                        hooks::generated_name(generate_name, &op.id, phase)
                    } else {
                        name.to_owned()
                    };
                    let key = ResourceKey::new(group, kind, Some(&namespace), hook_name.clone());
                    desired_keys.insert(key.clone());
                    let live_match = find_live(&key);
                    let key = live_match.as_ref().map(|(k, _)| k.clone()).unwrap_or(key);
                    let object = prepared(raw, &key, Some(&hook_name), &input.app);
                    // A live object with a generated name was created by this very operation
                    // (the name hashes the operation id): it is this run of the hook, resumed
                    // after a restart, and must not be deleted and started again.
                    if live_match.is_some()
                        && !name.is_empty()
                        && delete_policies.contains(&DeletePolicy::BeforeHookCreation)
                    {
                        tasks.push(Task {
                            id: TaskId::new(phase, &key, true),
                            key: key.clone(),
                            phase,
                            wave,
                            action: Action::DeleteHookBeforeCreation,
                            hook: Some(delete_policies.clone()),
                            object: object.clone(),
                            apply: apply.clone(),
                            prune: false,
                            live_exists: true,
                        });
                    }
                    tasks.push(Task {
                        id: TaskId::new(phase, &key, false),
                        key,
                        phase,
                        wave,
                        action: Action::RunHook,
                        hook: Some(delete_policies.clone()),
                        object,
                        apply: apply.clone(),
                        prune: false,
                        live_exists: live_match.is_some(),
                    });
                }
            }
            Classification::Resource | Classification::Skip | Classification::NotInSync { .. } => {
                if name.is_empty() {
                    return Err(invalid(
                        "metadata.name is missing (generateName is only supported for hooks)",
                    ));
                }
                if !desired_keys.insert(base_key.clone()) {
                    return Err(PlanError::DuplicateObject {
                        object: base_key.to_string(),
                    });
                }
                if !op.selects(&base_key) {
                    continue;
                }
                let live_match = find_live(&base_key);
                let key = live_match
                    .as_ref()
                    .map(|(k, _)| k.clone())
                    .unwrap_or(base_key);
                if key.namespace.is_none() {
                    desired_keys.insert(key.clone());
                }
                let action = match &class {
                    Classification::Skip => Action::Skip(SkipReason::SkipHook),
                    Classification::NotInSync { reason } => {
                        Action::Skip(SkipReason::NotInSync(reason.clone()))
                    }
                    _ => {
                        if let Some((_, entry)) = &live_match
                            && let Tracking::Other(other) = &entry.tracking
                        {
                            if app_opts.fail_on_shared_resource {
                                return Err(PlanError::SharedResource {
                                    object: key.to_string(),
                                    other_app: other.clone(),
                                });
                            }
                            shared.push(SharedResource {
                                key: key.clone(),
                                other_app: other.clone(),
                            });
                        }
                        let replace = res_opts.replace.unwrap_or(app_opts.replace);
                        match (&live_match, replace) {
                            (Some(_), _)
                                if app_opts.apply_out_of_sync_only
                                    && input.in_sync.contains(&key) =>
                            {
                                Action::Skip(SkipReason::InSync)
                            }
                            (Some(_), true) => Action::Replace,
                            (Some(_), false) => Action::Apply,
                            (None, _) => Action::Create,
                        }
                    }
                };
                let object = prepared(raw, &key, None, &input.app);
                tasks.push(Task {
                    id: TaskId::new(SyncPhase::Sync, &key, false),
                    key,
                    phase: SyncPhase::Sync,
                    wave,
                    action,
                    hook: None,
                    object,
                    apply: apply.clone(),
                    prune: false,
                    live_exists: live_match.is_some(),
                });
            }
        }
    }

    // Prune: live objects tracked to this app that left the desired state.
    let mut prune_last: BTreeSet<TaskId> = BTreeSet::new();
    for (key, entry) in &live {
        if entry.tracking != Tracking::Ours || desired_keys.contains(key) {
            continue;
        }
        // Hooks are not part of the app's resources, and owned objects go with their owner.
        let is_hook = !annotation_csv(entry.obj, hooks::HOOK).is_empty()
            || annotation(entry.obj, hooks::HELM_HOOK).is_some_and(|h| h.trim() != "crd-install");
        let owned = entry
            .obj
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| !refs.is_empty());
        if is_hook || owned || !op.selects(key) {
            continue;
        }
        // An unreadable wave on a live object must not block the sync that may fix it.
        let wave = hooks::wave(entry.obj, key).unwrap_or(0);
        let action = match ResourceSyncOptions::of(entry.obj, key) {
            Err(err) => Action::Skip(SkipReason::BadSyncOptions(err.to_string())),
            Ok(res_opts) => {
                if res_opts.prune_last.unwrap_or(app_opts.prune_last) {
                    prune_last.insert(TaskId::new(SyncPhase::Sync, key, false));
                }
                let prune = res_opts
                    .prune
                    .or(app_opts.prune)
                    .unwrap_or(Permission::True);
                let delete = res_opts
                    .delete
                    .or(app_opts.delete)
                    .unwrap_or(Permission::True);
                if !op.prune {
                    Action::Skip(SkipReason::PruneDisabled)
                } else if prune == Permission::False {
                    Action::Skip(SkipReason::PruneForbidden)
                } else if delete == Permission::False {
                    Action::Skip(SkipReason::DeleteForbidden)
                } else if (prune == Permission::Confirm || delete == Permission::Confirm)
                    && !op.prune_confirmed
                {
                    Action::Skip(SkipReason::NeedsConfirmation)
                } else {
                    Action::Prune
                }
            }
        };
        tasks.push(Task {
            id: TaskId::new(SyncPhase::Sync, key, false),
            key: key.clone(),
            phase: SyncPhase::Sync,
            wave,
            action,
            hook: None,
            object: entry.obj.clone(),
            apply: ApplySettings::default(),
            prune: true,
            live_exists: true,
        });
    }
    reverse_prune_waves(&mut tasks);
    let last_sync_wave = tasks
        .iter()
        .filter(|t| t.phase == SyncPhase::Sync)
        .map(|t| t.wave)
        .fold(0, i64::max)
        + 1;
    for task in tasks.iter_mut().filter(|t| prune_last.contains(&t.id)) {
        task.wave = last_sync_wave;
    }

    // CreateNamespace: an implicit first step when the destination namespace is missing (or its
    // managed metadata must be applied), unless the manifests declare the namespace themselves.
    if app_opts.create_namespace
        && !input.namespace.is_empty()
        && !has_namespace_manifest
        && (!input.namespace_exists || input.managed_namespace_metadata.is_some())
    {
        let first_wave = tasks.iter().map(|t| t.wave).fold(0, i64::min) - 1;
        let key = ResourceKey::new("", "Namespace", None, input.namespace.clone());
        tasks.push(Task {
            id: TaskId::new(SyncPhase::PreSync, &key, false),
            object: namespace_object(&input.namespace, input.managed_namespace_metadata.as_ref()),
            key,
            phase: SyncPhase::PreSync,
            wave: first_wave,
            action: if input.namespace_exists {
                Action::Apply
            } else {
                Action::Create
            },
            hook: None,
            apply: ApplySettings {
                server_side: app_opts.server_side_apply,
                validate: app_opts.validate,
                ..ApplySettings::default()
            },
            prune: false,
            live_exists: input.namespace_exists,
        });
    }

    tasks.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    adjust_dependencies(&mut tasks);

    // Ids carry the phase, which dependency adjustment may have changed.
    let mut seen = BTreeSet::new();
    for task in &mut tasks {
        task.id = TaskId::new(
            task.phase,
            &task.key,
            task.action == Action::DeleteHookBeforeCreation,
        );
        if !seen.insert(task.id.clone()) {
            return Err(PlanError::DuplicateObject {
                object: task.key.to_string(),
            });
        }
    }

    Ok(Plan {
        operation_id: op.id.clone(),
        dry_run: op.dry_run,
        tasks,
        shared,
        propagation_policy: app_opts.prune_propagation_policy,
    })
}

/// The sort key: phase, wave, kind order, name, then tie-breakers for a total order (a hook's
/// delete-before-creation before its run).
fn order_key(t: &Task) -> (SyncPhase, i64, usize, &str, u8, &str, Option<&str>, &str) {
    (
        t.phase,
        t.wave,
        kind_rank(&t.key.kind),
        &t.key.name,
        u8::from(t.action != Action::DeleteHookBeforeCreation),
        &t.key.group,
        t.key.namespace.as_deref(),
        &t.id.0,
    )
}

/// Mirror the distinct waves of prune tasks: the lowest prune wave takes the highest's place and
/// so on, so deletion runs in the reverse of creation order.
fn reverse_prune_waves(tasks: &mut [Task]) {
    let waves: Vec<i64> = tasks
        .iter()
        .filter(|t| t.prune)
        .map(|t| t.wave)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mirror: BTreeMap<i64, i64> = waves
        .iter()
        .zip(waves.iter().rev())
        .map(|(a, b)| (*a, *b))
        .collect();
    for task in tasks.iter_mut().filter(|t| t.prune) {
        if let Some(w) = mirror.get(&task.wave) {
            task.wave = *w;
        }
    }
}

/// Move Namespaces before the first task in them and CRDs before the first custom resource of
/// their kind, giving them that task's phase and wave.
fn adjust_dependencies(tasks: &mut Vec<Task>) {
    adjust(
        tasks,
        |t| (t.key.kind == "Namespace" && t.key.group.is_empty()).then(|| t.key.name.clone()),
        |t| t.key.namespace.clone(),
    );
    adjust(
        tasks,
        |t| {
            (t.key.kind == CRD_KIND && t.key.group == CRD_GROUP)
                .then(|| {
                    let g = str_at(&t.object, "/spec/group")?;
                    let k = str_at(&t.object, "/spec/names/kind")?;
                    Some(format!("{g}/{k}"))
                })
                .flatten()
        },
        |t| Some(format!("{}/{}", t.key.group, t.key.kind)),
    );
}

fn adjust(
    tasks: &mut Vec<Task>,
    provides: impl Fn(&Task) -> Option<String>,
    needs: impl Fn(&Task) -> Option<String>,
) {
    let mut first_user: BTreeMap<String, usize> = BTreeMap::new();
    let mut i = 0;
    while i < tasks.len() {
        if tasks[i].prune {
            i += 1;
            continue;
        }
        if let Some(dep) = provides(&tasks[i]) {
            if let Some(&at) = first_user.get(&dep) {
                let mut task = tasks.remove(i);
                task.phase = tasks[at].phase;
                task.wave = tasks[at].wave;
                tasks.insert(at, task);
                for idx in first_user.values_mut() {
                    if *idx >= at {
                        *idx += 1;
                    }
                }
            }
        } else if let Some(dep) = needs(&tasks[i]) {
            first_user.entry(dep).or_insert(i);
        }
        i += 1;
    }
}

/// The object to write: namespace defaulted, hook name fixed, tracking id set.
fn prepared(raw: &Value, key: &ResourceKey, hook_name: Option<&str>, app: &str) -> Value {
    let mut obj = raw.clone();
    let Some(root) = obj.as_object_mut() else {
        return obj;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    if let Some(meta) = meta.as_object_mut() {
        if let Some(ns) = &key.namespace {
            meta.insert("namespace".into(), Value::String(ns.clone()));
        }
        if let Some(name) = hook_name {
            meta.insert("name".into(), Value::String(name.to_owned()));
            meta.remove("generateName");
        }
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !annotations.is_object() {
            *annotations = Value::Object(Map::new());
        }
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(TRACKING_ID.into(), Value::String(tracking_id(app, key)));
        }
    }
    obj
}

fn namespace_object(name: &str, metadata: Option<&Value>) -> Value {
    let mut meta = json!({"name": name});
    for field in ["labels", "annotations"] {
        if let Some(v) = metadata
            .and_then(|m| m.get(field))
            .filter(|v| v.is_object())
            && let Some(m) = meta.as_object_mut()
        {
            m.insert(field.into(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
}
