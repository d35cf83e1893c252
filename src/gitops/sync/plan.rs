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
    let mut planner = Planner::new(input)?;
    for (index, raw) in input.desired.iter().enumerate() {
        planner.desired_object(index, raw)?;
    }
    planner.prunes();
    planner.namespace_task();
    planner.finish()
}

/// The working state of one planning run.
struct Planner<'a> {
    input: &'a PlanInput,
    app_opts: AppSyncOptions,
    /// Live objects by identity (their own namespace is authoritative).
    live: BTreeMap<ResourceKey, LiveEntry<'a>>,
    /// `(group, kind)` of the CRDs in this sync: their custom resources skip the dry run.
    crd_kinds: BTreeSet<(String, String)>,
    tasks: Vec<Task>,
    /// Every desired identity, selected or not: never pruned.
    desired_keys: BTreeSet<ResourceKey>,
    shared: Vec<SharedResource>,
    /// The manifests declare the destination namespace themselves.
    has_namespace_manifest: bool,
}

/// What every task of one desired object shares.
struct Desired<'a> {
    raw: &'a Value,
    group: &'a str,
    kind: &'a str,
    /// `metadata.name`, empty for a `generateName` hook.
    name: &'a str,
    generate_name: &'a str,
    /// Namespace after defaulting; empty for cluster-scoped kinds.
    namespace: String,
    wave: i64,
    apply: ApplySettings,
    res_opts: ResourceSyncOptions,
}

impl<'a> Planner<'a> {
    fn new(input: &'a PlanInput) -> Result<Self, PlanError> {
        let mut live = BTreeMap::new();
        for obj in &input.live {
            let (Some(api), Some(kind), Some(name)) = (
                str_at(obj, "/apiVersion"),
                str_at(obj, "/kind"),
                str_at(obj, "/metadata/name"),
            ) else {
                // A live object without identity cannot be matched or pruned; the watcher
                // never hands one over, so there is nothing to report.
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
        let mut crd_kinds = BTreeSet::new();
        for obj in &input.desired {
            if str_at(obj, "/kind") == Some(CRD_KIND)
                && str_at(obj, "/apiVersion").map(group_of) == Some(CRD_GROUP)
                && let (Some(g), Some(k)) =
                    (str_at(obj, "/spec/group"), str_at(obj, "/spec/names/kind"))
            {
                crd_kinds.insert((g.to_owned(), k.to_owned()));
            }
        }
        Ok(Planner {
            input,
            app_opts: AppSyncOptions::parse(&input.sync_options)?,
            live,
            crd_kinds,
            tasks: Vec::new(),
            desired_keys: BTreeSet::new(),
            shared: Vec::new(),
            has_namespace_manifest: false,
        })
    }

    fn cluster_scoped(&self, group: &str, kind: &str) -> bool {
        CLUSTER_SCOPED.contains(&(group, kind))
            || self
                .input
                .cluster_scoped
                .contains(&(group.to_owned(), kind.to_owned()))
    }

    /// The live object for a desired identity. A desired object of a kind cairn did not know to
    /// be cluster-scoped matches a live one without namespace (gitops-engine matches the same
    /// way); the returned key is the live one's.
    fn find_live(&self, key: &ResourceKey) -> Option<(ResourceKey, &LiveEntry<'a>)> {
        if let Some(entry) = self.live.get(key) {
            return Some((key.clone(), entry));
        }
        let cluster = ResourceKey::new(key.group.clone(), key.kind.clone(), None, key.name.clone());
        self.live.get(&cluster).map(|e| (cluster, e))
    }

    /// Validate one desired object and add its tasks.
    fn desired_object(&mut self, index: usize, raw: &'a Value) -> Result<(), PlanError> {
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
        let namespace = if self.cluster_scoped(group, kind) {
            String::new()
        } else {
            str_at(raw, "/metadata/namespace")
                .filter(|ns| !ns.is_empty())
                .unwrap_or(&self.input.namespace)
                .to_owned()
        };
        if kind == "Namespace" && group.is_empty() && name == self.input.namespace {
            self.has_namespace_manifest = true;
        }
        // The identity errors name, before a hook's generated name is known.
        let base_key = ResourceKey::new(
            group,
            kind,
            Some(&namespace),
            if name.is_empty() { generate_name } else { name },
        );
        let class = hooks::classify(raw, &base_key)?;
        let res_opts = ResourceSyncOptions::of(raw, &base_key)?;
        let app = &self.app_opts;
        let apply = ApplySettings {
            server_side: res_opts.server_side_apply.unwrap_or(app.server_side_apply),
            validate: res_opts.validate.unwrap_or(app.validate),
            skip_dry_run: res_opts
                .skip_dry_run_on_missing_resource
                .unwrap_or(app.skip_dry_run_on_missing_resource)
                || self
                    .crd_kinds
                    .contains(&(group.to_owned(), kind.to_owned())),
            respect_ignore_differences: res_opts
                .respect_ignore_differences
                .unwrap_or(app.respect_ignore_differences),
            force: res_opts.force.unwrap_or(false),
        };
        let desired = Desired {
            raw,
            group,
            kind,
            name,
            generate_name,
            namespace,
            wave: hooks::wave(raw, &base_key)?,
            apply,
            res_opts,
        };
        let skip = match class {
            Classification::Hook {
                phases,
                delete_policies,
            } => {
                self.hook_tasks(&desired, &phases, &delete_policies);
                return Ok(());
            }
            Classification::Resource => None,
            Classification::Skip => Some(SkipReason::SkipHook),
            Classification::NotInSync { reason } => Some(SkipReason::NotInSync(reason)),
        };
        if name.is_empty() {
            return Err(invalid(
                "metadata.name is missing (generateName is only supported for hooks)",
            ));
        }
        self.resource_task(&desired, base_key, skip)
    }

    /// One RunHook per phase, preceded by a delete of the existing object under
    /// BeforeHookCreation.
    fn hook_tasks(&mut self, d: &Desired<'a>, phases: &[SyncPhase], policies: &[DeletePolicy]) {
        // Hooks do not run during a selective sync (Argo CD "Selective Sync").
        if self.input.operation.resources.is_some() {
            return;
        }
        for &phase in phases {
            let hook_name = if d.name.is_empty() {
                hooks::generated_name(d.generate_name, &self.input.operation.id, phase)
            } else {
                d.name.to_owned()
            };
            let key = ResourceKey::new(d.group, d.kind, Some(&d.namespace), hook_name.clone());
            self.desired_keys.insert(key.clone());
            let live_match = self.find_live(&key).map(|(k, _)| k);
            let live_exists = live_match.is_some();
            let key = live_match.unwrap_or(key);
            let object = prepared(d.raw, &key, Some(&hook_name), &self.input.app);
            // A live object with a generated name was created by this very operation (the name
            // hashes the operation id): it is this run of the hook, resumed after a restart, and
            // must not be deleted and started again.
            if live_exists
                && !d.name.is_empty()
                && policies.contains(&DeletePolicy::BeforeHookCreation)
            {
                self.tasks.push(Task {
                    id: TaskId::new(phase, &key, true),
                    key: key.clone(),
                    phase,
                    wave: d.wave,
                    action: Action::DeleteHookBeforeCreation,
                    hook: Some(policies.to_vec()),
                    object: object.clone(),
                    apply: d.apply.clone(),
                    prune: false,
                    live_exists,
                });
            }
            self.tasks.push(Task {
                id: TaskId::new(phase, &key, false),
                key,
                phase,
                wave: d.wave,
                action: Action::RunHook,
                hook: Some(policies.to_vec()),
                object,
                apply: d.apply.clone(),
                prune: false,
                live_exists,
            });
        }
    }

    /// The Sync-phase task of an ordinary resource (or of a skipped one).
    fn resource_task(
        &mut self,
        d: &Desired<'a>,
        base_key: ResourceKey,
        skip: Option<SkipReason>,
    ) -> Result<(), PlanError> {
        if !self.desired_keys.insert(base_key.clone()) {
            return Err(PlanError::DuplicateObject {
                object: base_key.to_string(),
            });
        }
        // Deselected resources stay in `desired_keys`: a selective sync never prunes them.
        if !self.input.operation.selects(&base_key) {
            return Ok(());
        }
        let live_match = self.find_live(&base_key);
        let live_exists = live_match.is_some();
        let other_app = live_match.as_ref().and_then(|(_, e)| match &e.tracking {
            Tracking::Other(app) => Some(app.clone()),
            _ => None,
        });
        let key = live_match.map(|(k, _)| k).unwrap_or(base_key);
        self.desired_keys.insert(key.clone());
        let action = match skip {
            Some(reason) => Action::Skip(reason),
            None => {
                if let Some(other_app) = other_app {
                    if self.app_opts.fail_on_shared_resource {
                        return Err(PlanError::SharedResource {
                            object: key.to_string(),
                            other_app,
                        });
                    }
                    self.shared.push(SharedResource {
                        key: key.clone(),
                        other_app,
                    });
                }
                let replace = d.res_opts.replace.unwrap_or(self.app_opts.replace);
                match (live_exists, replace) {
                    (true, _)
                        if self.app_opts.apply_out_of_sync_only
                            && self.input.in_sync.contains(&key) =>
                    {
                        Action::Skip(SkipReason::InSync)
                    }
                    (true, true) => Action::Replace,
                    (true, false) => Action::Apply,
                    (false, _) => Action::Create,
                }
            }
        };
        self.tasks.push(Task {
            id: TaskId::new(SyncPhase::Sync, &key, false),
            object: prepared(d.raw, &key, None, &self.input.app),
            key,
            phase: SyncPhase::Sync,
            wave: d.wave,
            action,
            hook: None,
            apply: d.apply.clone(),
            prune: false,
            live_exists,
        });
        Ok(())
    }

    /// Prune tasks for live objects tracked to this app that left the desired state, in reverse
    /// wave order, `PruneLast` ones after the last Sync wave.
    fn prunes(&mut self) {
        let op = &self.input.operation;
        let app = &self.app_opts;
        let mut prune_last: BTreeSet<TaskId> = BTreeSet::new();
        for (key, entry) in &self.live {
            if entry.tracking != Tracking::Ours || self.desired_keys.contains(key) {
                continue;
            }
            // Hooks are not part of the app's resources, and owned objects go with their owner.
            let is_hook = !annotation_csv(entry.obj, hooks::HOOK).is_empty()
                || annotation(entry.obj, hooks::HELM_HOOK)
                    .is_some_and(|h| h.trim() != "crd-install");
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
                    if res_opts.prune_last.unwrap_or(app.prune_last) {
                        prune_last.insert(TaskId::new(SyncPhase::Sync, key, false));
                    }
                    let prune = res_opts.prune.or(app.prune).unwrap_or(Permission::True);
                    let delete = res_opts.delete.or(app.delete).unwrap_or(Permission::True);
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
            self.tasks.push(Task {
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
        reverse_prune_waves(&mut self.tasks);
        // Argo CD counts from wave 0 even when every Sync wave is negative.
        let last_sync_wave = self
            .tasks
            .iter()
            .filter(|t| t.phase == SyncPhase::Sync)
            .map(|t| t.wave)
            .fold(0, i64::max)
            + 1;
        for task in self.tasks.iter_mut().filter(|t| prune_last.contains(&t.id)) {
            task.wave = last_sync_wave;
        }
    }

    /// CreateNamespace: an implicit first step when the destination namespace is missing (or its
    /// managed metadata must be applied), unless the manifests declare the namespace themselves.
    fn namespace_task(&mut self) {
        let input = self.input;
        if !self.app_opts.create_namespace
            || input.namespace.is_empty()
            || self.has_namespace_manifest
            || (input.namespace_exists && input.managed_namespace_metadata.is_none())
        {
            return;
        }
        let first_wave = self.tasks.iter().map(|t| t.wave).fold(0, i64::min) - 1;
        let key = ResourceKey::new("", "Namespace", None, input.namespace.clone());
        self.tasks.push(Task {
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
                server_side: self.app_opts.server_side_apply,
                validate: self.app_opts.validate,
                ..ApplySettings::default()
            },
            prune: false,
            live_exists: input.namespace_exists,
        });
    }

    /// Sort, move dependencies first, assign final ids.
    fn finish(self) -> Result<Plan, PlanError> {
        let mut tasks = self.tasks;
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
            operation_id: self.input.operation.id.clone(),
            dry_run: self.input.operation.dry_run,
            tasks,
            shared: self.shared,
            propagation_policy: self.app_opts.prune_propagation_policy,
        })
    }
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
