//! Rust types of Argo CD's kinds (argoproj.io/v1alpha1): Application, AppProject and
//! ApplicationSet.
//!
//! Invariant: reading then writing back never drops a field. Every struct keeps the fields it
//! does not model in `extra` (flattened), optional fields are `Option` and are written only when
//! present, and open-ended parts (ApplicationSet generators, operation state, sync results) are
//! JSON values. An explicit `null` on a modelled field reads as absent.
//!
//! JSON spellings follow Argo CD's (`repoURL`, `selfHeal`, `jqPathExpressions`...).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::k8s::{TypeTag, argo_resource};

/// Fields a struct does not model, kept verbatim.
pub type Extra = serde_json::Map<String, Value>;

/// An Application: a source of manifests synced to a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Application {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<Application>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ApplicationSpec,
    /// Observed state, written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationStatus>,
    /// A requested operation (a sync), written by users or the API, consumed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(Application, "Application", "applications", namespaced);

/// The spec of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The AppProject the application belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// The single source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Several sources (multi-source applications); exclusive with `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ApplicationSource>>,
    /// Where to deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<ApplicationDestination>,
    /// Automation, options and retries of syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// Differences to ignore when comparing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_differences: Option<Vec<ResourceIgnoreDifferences>>,
    /// How many history entries to keep (Argo CD's default: 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Extra information shown in UIs (name/value pairs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where an application's manifests come from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    /// Git or Helm repository URL.
    #[serde(rename = "repoURL", default, skip_serializing_if = "Option::is_none")]
    pub repo_url: Option<String>,
    /// Branch, tag or commit (Git), or chart version (Helm); HEAD when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// Directory in the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Chart name, for Helm repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// Name other sources use to refer to this one (`$ref/values.yaml`).
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Source name (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Helm options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSource>,
    /// Kustomize options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSource>,
    /// Plain directory options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
    /// Config management plugin options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Helm options of a source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmSource {
    /// Values files, relative to the source path (or `$ref/...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_files: Option<Vec<String>>,
    /// Inline values, as a YAML string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// Inline values, as an object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values_object: Option<Value>,
    /// `--set` parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<HelmParameter>>,
    /// `--set-file` parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_parameters: Option<Vec<Value>>,
    /// Release name (defaults to the application name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Namespace to template with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `--skip-crds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_crds: Option<bool>,
    /// Ignore missing value files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_missing_value_files: Option<bool>,
    /// Kubernetes version passed to Helm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// API versions passed to Helm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_versions: Option<Vec<String>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One Helm `--set` parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelmParameter {
    /// Parameter path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `--set-string` instead of `--set`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_string: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Kustomize options of a source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSource {
    /// Prefix of every resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Suffix of every resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// Image overrides (`name=repo:tag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// Labels added to every resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_labels: Option<BTreeMap<String, String>>,
    /// Annotations added to every resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_annotations: Option<BTreeMap<String, String>>,
    /// Namespace override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Replica overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<Value>>,
    /// Patches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches: Option<Vec<Value>>,
    /// Components.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Plain-directory options of a source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    /// Scan subdirectories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurse: Option<bool>,
    /// Glob of files to include.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Glob of files to exclude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// Jsonnet options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonnet: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Where an application deploys: a cluster (by URL or name) and a default namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplicationDestination {
    /// Cluster API URL (`https://kubernetes.default.svc` for the home cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Cluster name; exclusive with `server`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace for namespaced resources that set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How syncs happen.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync automatically when the source or the live state changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<AutomatedSyncPolicy>,
    /// Options such as `CreateNamespace=true`, `ServerSideApply=true`, `Prune=false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<Vec<String>>,
    /// Retries of failed syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    /// Labels/annotations of a namespace created by `CreateNamespace=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl SyncPolicy {
    /// Whether a `KEY=VALUE` sync option is present, e.g. `has_option("CreateNamespace=true")`.
    pub fn has_option(&self, option: &str) -> bool {
        self.sync_options
            .as_ref()
            .is_some_and(|opts| opts.iter().any(|o| o == option))
    }
}

/// Automated sync settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutomatedSyncPolicy {
    /// Delete resources no longer in the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Revert live changes made outside Git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_heal: Option<bool>,
    /// Allow syncing to an empty set of resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_empty: Option<bool>,
    /// Switch automation off while keeping the settings (Argo CD 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Retries of failed syncs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryStrategy {
    /// Maximum attempts (negative: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Backoff between attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Use the latest revision on retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Backoff of sync retries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Base duration ("5s", or seconds as a string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Multiplier per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    /// Upper bound of the wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Differences to ignore for resources matching group/kind/name/namespace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIgnoreDifferences {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// JSON pointers to ignore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointers: Option<Vec<String>>,
    /// jq path expressions to ignore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq_path_expressions: Option<Vec<String>>,
    /// Field managers whose fields are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields_managers: Option<Vec<String>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The observed state of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Sync status against the target revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatus>,
    /// Aggregated health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// State of the current or last operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// Past syncs, oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<RevisionHistory>>,
    /// Managed resources and their state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceStatus>>,
    /// Errors and warnings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ApplicationCondition>>,
    /// When the application was last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// Helm, Kustomize, Directory or Plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// Per-source types (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_types: Option<Vec<String>>,
    /// Images and URLs found in the live resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Sync status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Synced, OutOfSync or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The revision compared against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The revisions compared against (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    /// The source and destination compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_to: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Health status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// Healthy, Progressing, Degraded, Suspended, Missing or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// State of an operation (sync).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// The operation requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
    /// Running, Terminating, Failed, Error or Succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Per-resource results and the revision synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<Value>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Retries so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One past sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// Increasing id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Revision deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Revisions deployed (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    /// When the deploy finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<String>,
    /// When the deploy started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_started_at: Option<String>,
    /// Source deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Sources deployed (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ApplicationSource>>,
    /// Who or what started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The state of one managed resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Synced, OutOfSync or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Health of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// True for hook resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<bool>,
    /// True when the resource is no longer in the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_pruning: Option<bool>,
    /// Sync wave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_wave: Option<i64>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl ResourceStatus {
    /// The resource's identity, when kind and name are known.
    pub fn key(&self) -> Option<crate::k8s::ResourceKey> {
        Some(crate::k8s::ResourceKey::new(
            self.group.clone().unwrap_or_default(),
            self.kind.clone()?,
            self.namespace.as_deref(),
            self.name.clone()?,
        ))
    }
}

/// An application condition (ComparisonError, SyncError, OrphanedResourceWarning...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCondition {
    /// Condition type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub condition_type: Option<String>,
    /// Message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was last set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An AppProject: which sources, destinations and kinds its applications may use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppProject {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<AppProject>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Restrictions.
    #[serde(default)]
    pub spec: AppProjectSpec,
    /// JWT tokens by role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(AppProject, "AppProject", "appprojects", namespaced);

/// The spec of an AppProject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectSpec {
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Allowed source repository URLs (globs; `*` for any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repos: Option<Vec<String>>,
    /// Allowed destinations (globs on server/name/namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<ApplicationDestination>>,
    /// Cluster-scoped kinds allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resource_whitelist: Option<Vec<GroupKind>>,
    /// Cluster-scoped kinds denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resource_blacklist: Option<Vec<GroupKind>>,
    /// Namespaced kinds allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_whitelist: Option<Vec<GroupKind>>,
    /// Namespaced kinds denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_blacklist: Option<Vec<GroupKind>>,
    /// Namespaces Applications of this project may live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespaces: Option<Vec<String>>,
    /// Project roles (policies, groups, tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<Value>>,
    /// Sync windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_windows: Option<Vec<Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A group and kind (globs allowed in projects).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupKind {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// An ApplicationSet: generators producing Applications from a template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplicationSet {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<ApplicationSet>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Generators and template.
    #[serde(default)]
    pub spec: ApplicationSetSpec,
    /// Conditions and per-application status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(
    ApplicationSet,
    "ApplicationSet",
    "applicationsets",
    namespaced
);

/// The spec of an ApplicationSet. The template is a JSON value because with `goTemplate` any
/// field of it, numbers included, may be a template string.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// Generators (list, git, cluster, matrix, merge...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generators: Option<Vec<Value>>,
    /// Application template (`metadata`, `spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Use Go templates instead of fasttemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template: Option<bool>,
    /// Go template options (`missingkey=error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template_options: Option<Vec<String>>,
    /// What the ApplicationSet may do to Applications (create-only, sync...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<Value>,
    /// Rollout strategy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Value>,
    /// Template patch (a Go template string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_patch: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
impl Application {
    /// An application `namespace/name` in project "default", syncing `path` of `repo` at HEAD to
    /// the home cluster's namespace "default".
    pub fn test(namespace: &str, name: &str, repo: &str, path: &str) -> Self {
        Application {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            spec: ApplicationSpec {
                project: Some("default".to_owned()),
                source: Some(ApplicationSource {
                    repo_url: Some(repo.to_owned()),
                    path: Some(path.to_owned()),
                    target_revision: Some("HEAD".to_owned()),
                    ..Default::default()
                }),
                destination: Some(ApplicationDestination {
                    server: Some("https://kubernetes.default.svc".to_owned()),
                    namespace: Some("default".to_owned()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Turns on automated sync with the given prune and self-heal.
    pub fn with_automated(mut self, prune: bool, self_heal: bool) -> Self {
        self.spec
            .sync_policy
            .get_or_insert_with(Default::default)
            .automated = Some(AutomatedSyncPolicy {
            prune: Some(prune),
            self_heal: Some(self_heal),
            ..Default::default()
        });
        self
    }

    /// Adds a sync option such as `CreateNamespace=true`.
    pub fn with_sync_option(mut self, option: &str) -> Self {
        self.spec
            .sync_policy
            .get_or_insert_with(Default::default)
            .sync_options
            .get_or_insert_with(Vec::new)
            .push(option.to_owned());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip<T: serde::de::DeserializeOwned + Serialize>(input: &Value) -> Value {
        let typed: T = serde_json::from_value(input.clone()).expect("deserialize");
        serde_json::to_value(&typed).expect("serialize")
    }

    #[test]
    fn builder_produces_argo_spelling() {
        let app = Application::test("argocd", "guestbook", "https://git/x", "guestbook")
            .with_automated(true, false)
            .with_sync_option("CreateNamespace=true");
        let v = serde_json::to_value(&app).expect("ser");
        assert_eq!(v["kind"], "Application");
        assert_eq!(v["spec"]["source"]["repoURL"], "https://git/x");
        assert_eq!(v["spec"]["syncPolicy"]["automated"]["selfHeal"], false);
        assert_eq!(
            v["spec"]["syncPolicy"]["syncOptions"][0],
            "CreateNamespace=true"
        );
        assert!(
            app.spec
                .sync_policy
                .as_ref()
                .is_some_and(|p| p.has_option("CreateNamespace=true"))
        );
        assert_eq!(roundtrip::<Application>(&v), v);
    }

    /// A full Argo CD Application as the apiserver returns it, with fields cairn does not model
    /// at every level.
    #[test]
    fn application_with_unknown_fields_roundtrips() {
        let input = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "guestbook", "namespace": "argocd", "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
            "operation": {"sync": {"revision": "abc", "prune": true}, "initiatedBy": {"username": "admin"}},
            "spec": {
                "project": "default",
                "source": {
                    "repoURL": "https://github.com/argoproj/argocd-example-apps",
                    "targetRevision": "HEAD",
                    "path": "helm-guestbook",
                    "helm": {"valueFiles": ["values.yaml"], "parameters": [{"name": "a", "value": "1", "forceString": true, "helmFuture": 1}], "valuesObject": {"x": {"y": [1]}}, "helmUnknown": "k"},
                    "kustomize": {"images": ["a=b:1"], "commonLabels": {"l": "v"}, "kustomizeFuture": {}},
                    "directory": {"recurse": true, "jsonnet": {"tlas": []}},
                    "sourceFuture": ["x"]
                },
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "guestbook", "destFuture": 1},
                "syncPolicy": {
                    "automated": {"prune": true, "selfHeal": true, "allowEmpty": false, "autoFuture": "a"},
                    "syncOptions": ["CreateNamespace=true"],
                    "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m", "jitter": 0.1}},
                    "policyFuture": null
                },
                "ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"], "igFuture": 1}],
                "revisionHistoryLimit": 10,
                "specFuture": {"a": 1}
            },
            "status": {
                "sync": {"status": "Synced", "revision": "abc", "comparedTo": {"source": {}, "destination": {}}},
                "health": {"status": "Healthy", "lastTransitionTime": "2024-01-01T00:00:00Z"},
                "operationState": {"phase": "Succeeded", "startedAt": "2024-01-01T00:00:00Z", "syncResult": {"resources": []}, "opFuture": 1},
                "history": [{"id": 0, "revision": "abc", "deployedAt": "2024-01-01T00:00:01Z", "source": {"repoURL": "r"}, "histFuture": true}],
                "resources": [{"kind": "Service", "name": "guestbook-ui", "namespace": "guestbook", "version": "v1", "status": "Synced", "health": {"status": "Healthy"}, "syncWave": -1, "resFuture": 1}],
                "conditions": [{"type": "SyncError", "message": "boom", "condFuture": 1}],
                "reconciledAt": "2024-01-01T00:00:02Z",
                "sourceType": "Helm",
                "controllerNamespace": "argocd"
            },
            "rootFuture": 1
        });
        assert_eq!(roundtrip::<Application>(&input), input);
        let app: Application = serde_json::from_value(input).expect("typed");
        let res = &app.status.and_then(|s| s.resources).expect("resources")[0];
        assert_eq!(
            res.key().map(|k| k.to_string()).as_deref(),
            Some("/Service/guestbook/guestbook-ui")
        );
    }

    #[test]
    fn project_and_appset_roundtrip() {
        let project = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "default", "namespace": "argocd"},
            "spec": {"sourceRepos": ["*"], "destinations": [{"namespace": "*", "server": "*"}],
                     "clusterResourceWhitelist": [{"group": "*", "kind": "*"}], "orphanedResources": {"warn": true}}
        });
        assert_eq!(roundtrip::<AppProject>(&project), project);
        let appset = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
            "metadata": {"name": "guestbook"},
            "spec": {
                "goTemplate": true, "goTemplateOptions": ["missingkey=error"],
                "generators": [{"list": {"elements": [{"cluster": "a", "url": "https://a"}]}}],
                "template": {"metadata": {"name": "{{.cluster}}-guestbook"},
                             "spec": {"project": "default", "revisionHistoryLimit": "{{.limit}}"}}
            },
            "status": {"conditions": [{"type": "ResourcesUpToDate", "status": "True"}]}
        });
        assert_eq!(roundtrip::<ApplicationSet>(&appset), appset);
    }

    #[test]
    fn application_refuses_other_kinds() {
        let err = serde_json::from_value::<Application>(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": {}, "spec": {}
        }))
        .expect_err("kind");
        assert!(err.to_string().contains("expected Application"), "{err}");
    }
}
