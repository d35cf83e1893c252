//! Rust types of Argo Workflows' kinds (argoproj.io/v1alpha1): Workflow, WorkflowTemplate,
//! ClusterWorkflowTemplate, CronWorkflow, and the internal WorkflowTaskResult, WorkflowTaskSet,
//! WorkflowArtifactGCTask and WorkflowEventBinding.
//!
//! Invariant: reading then writing back never drops a field. Every struct keeps the fields it
//! does not model in `extra` (flattened), optional fields are `Option` and are written only when
//! present (so `[]` and `{}` survive as written), and fields whose type Argo leaves open (an
//! `AnyString` parameter value, an `IntOrString` retry limit, `withItems` entries) are kept as
//! JSON values. An explicit `null` on a modelled field reads as absent, which is how the
//! apiserver treats it too.
//!
//! Field names and JSON spellings follow Argo's (`boundaryID`, `podIP`, `podGC`...).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::k8s::{TypeTag, argo_resource};

/// Fields a struct does not model, kept verbatim.
pub type Extra = serde_json::Map<String, Value>;

/// A Workflow: one run of a DAG or steps template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<Workflow>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// What to run.
    #[serde(default)]
    pub spec: WorkflowSpec,
    /// Progress, written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkflowStatus>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(Workflow, "Workflow", "workflows", namespaced);

/// A namespaced, reusable WorkflowSpec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTemplate {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<WorkflowTemplate>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// The templates and defaults.
    #[serde(default)]
    pub spec: WorkflowSpec,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(
    WorkflowTemplate,
    "WorkflowTemplate",
    "workflowtemplates",
    namespaced
);

/// A cluster-scoped, reusable WorkflowSpec.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterWorkflowTemplate {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<ClusterWorkflowTemplate>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// The templates and defaults.
    #[serde(default)]
    pub spec: WorkflowSpec,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(
    ClusterWorkflowTemplate,
    "ClusterWorkflowTemplate",
    "clusterworkflowtemplates",
    cluster
);

/// The spec of a Workflow, WorkflowTemplate or ClusterWorkflowTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// The template the run starts at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// Global parameters and artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// The templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<Template>>,
    /// Service account of the step pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Template run when the workflow ends, whatever its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// Run a WorkflowTemplate (or ClusterWorkflowTemplate) instead of inline templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_template_ref: Option<WorkflowTemplateRef>,
    /// Maximum number of pods running at once in this workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    /// Deadline of the whole workflow, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Suspends the workflow (no new steps start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// "Stop" or "Terminate".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<String>,
    /// Default retry strategy of every template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// Volumes the templates can mount (core/v1 Volume, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<Value>>,
    /// PVCs created for the run and deleted after it (core/v1 PersistentVolumeClaim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_claim_templates: Option<Vec<Value>>,
    /// When to delete the finished workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_strategy: Option<Value>,
    /// When to delete finished pods.
    #[serde(rename = "podGC", default, skip_serializing_if = "Option::is_none")]
    pub pod_gc: Option<Value>,
    /// Lifecycle hooks of the workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A reference to a WorkflowTemplate or ClusterWorkflowTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTemplateRef {
    /// Template object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// True for a ClusterWorkflowTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Parameters and artifacts passed to a workflow, step or task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Arguments {
    /// Parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
    /// Artifacts (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A named parameter. `value`, `default` and `enum` entries are Argo `AnyString`s: users write
/// strings, numbers or booleans, so they are kept as JSON values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// Parameter name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// The value when none is supplied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// Allowed values.
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<Value>>,
    /// Human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where an output parameter's value comes from (path, supplied, jsonPath...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<Value>,
    /// Export the output as a global workflow parameter under this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_name: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Parameter {
    /// The value as Argo substitutes it: strings as is, numbers and booleans in their JSON text.
    pub fn value_text(&self) -> Option<String> {
        self.value.as_ref().map(any_string)
    }
}

/// Argo's `AnyString`: a JSON string as is, anything else as its JSON text.
pub fn any_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A template: exactly one of container, script, resource, dag, steps, suspend, data, http,
/// plugin or containerSet, plus inputs/outputs and execution controls.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// Template name (unique in its spec).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Inputs>,
    /// Outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// Run a container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Run a script (a container with `source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Container>,
    /// Create/patch/delete a Kubernetes resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<Value>,
    /// A DAG of tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagTemplate>,
    /// Sequential groups of parallel steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Vec<WorkflowStep>>>,
    /// Pause until resumed (or for `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<Value>,
    /// Data transformation template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// HTTP request template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Value>,
    /// Executor plugin template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Value>,
    /// Several containers in one pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_set: Option<Value>,
    /// Retries of this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// Deadline of one attempt (IntOrString: seconds or an expression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<Value>,
    /// Maximum parallel children of a steps/dag template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    /// Timeout of the template, as a duration string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Labels and annotations of the template's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Template {
    /// Which kind of template this is, by the first type field set, in Argo's precedence.
    pub fn template_type(&self) -> Option<TemplateType> {
        let candidates = [
            (self.container.is_some(), TemplateType::Container),
            (self.steps.is_some(), TemplateType::Steps),
            (self.dag.is_some(), TemplateType::Dag),
            (self.script.is_some(), TemplateType::Script),
            (self.resource.is_some(), TemplateType::Resource),
            (self.data.is_some(), TemplateType::Data),
            (self.suspend.is_some(), TemplateType::Suspend),
            (self.http.is_some(), TemplateType::Http),
            (self.plugin.is_some(), TemplateType::Plugin),
            (self.container_set.is_some(), TemplateType::ContainerSet),
        ];
        candidates.into_iter().find(|(set, _)| *set).map(|(_, t)| t)
    }
}

/// The kinds of template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TemplateType {
    /// `container`.
    Container,
    /// `script`.
    Script,
    /// `resource`.
    Resource,
    /// `dag`.
    Dag,
    /// `steps`.
    Steps,
    /// `suspend`.
    Suspend,
    /// `data`.
    Data,
    /// `http`.
    Http,
    /// `plugin`.
    Plugin,
    /// `containerSet`.
    ContainerSet,
}

/// The parts of a container (or script) cairn reads; the rest of core/v1 Container is kept in
/// `extra`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// Container name (Argo defaults it to "main").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Script body (script templates only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Environment (core/v1 EnvVar, kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Template inputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// Input parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
    /// Input artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Template (or node, or task result) outputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// Output parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
    /// Output artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Value>>,
    /// Standard output of a script or container (`outputs.result`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Exit code of the main container, as a string (Argo's spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A reference to a template in another (Cluster)WorkflowTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRef {
    /// Template object name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Template name inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// True for a ClusterWorkflowTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Retry policy. `limit` is an IntOrString ("10" and 10 both occur in real manifests).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Maximum retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<Value>,
    /// Always, OnFailure, OnError or OnTransientError.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<String>,
    /// Backoff between attempts (duration/factor/maxDuration/cap, strings or numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Value>,
    /// Expression deciding whether to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A DAG template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTemplate {
    /// The tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<DagTask>>,
    /// Space-separated target tasks (run only those and their dependencies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Stop scheduling new tasks once one fails (Argo's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One DAG task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagTask {
    /// Task name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Template to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Template in another object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateRef>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// Enhanced depends expression ("A && (B.Failed || C)").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends: Option<String>,
    /// Plain dependency list (older form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    /// Condition to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Fan out over literal items (strings, numbers or objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_items: Option<Vec<Value>>,
    /// Fan out over a JSON list given as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_param: Option<String>,
    /// Fan out over a number sequence (count/start/end/format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_sequence: Option<Value>,
    /// Continue on failed/error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on: Option<Value>,
    /// Template to run after this task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One step of a steps template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStep {
    /// Step name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Template to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Template in another object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateRef>,
    /// Arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Arguments>,
    /// Condition to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Fan out over literal items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_items: Option<Vec<Value>>,
    /// Fan out over a JSON list given as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_param: Option<String>,
    /// Fan out over a number sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_sequence: Option<Value>,
    /// Continue on failed/error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on: Option<Value>,
    /// Template to run after this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The status of a Workflow. Timestamps are kept as the RFC 3339 text the apiserver stores;
/// [`WorkflowStatus::started_at`] parses one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowStatus {
    /// Pending, Running, Succeeded, Failed or Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Why the workflow is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// "N/M" pods done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Estimated duration in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_duration: Option<i64>,
    /// Node id → node status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, NodeStatus>>,
    /// Global outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// Workflow conditions (PodRunning, Completed, SpecWarning...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Value>>,
    /// Resource usage per resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_duration: Option<Value>,
    /// The spec resolved from a workflowTemplateRef, stored at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_workflow_template_spec: Option<Value>,
    /// Templates resolved from templateRefs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_templates: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

impl WorkflowStatus {
    /// `startedAt` parsed, when present and well-formed.
    pub fn started_at(&self) -> Option<jiff::Timestamp> {
        self.started_at.as_deref().and_then(|t| t.parse().ok())
    }

    /// `finishedAt` parsed, when present and well-formed.
    pub fn finished_at(&self) -> Option<jiff::Timestamp> {
        self.finished_at.as_deref().and_then(|t| t.parse().ok())
    }
}

/// The status of one node of a workflow run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Node id (the key in `nodes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Full node name (`wf.steps[0].a`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Short name shown in UIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Pod, Steps, StepGroup, DAG, TaskGroup, Retry, Skipped, Suspend...
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub node_type: Option<String>,
    /// Template name the node ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    /// Template reference the node ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_ref: Option<TemplateRef>,
    /// Pending, Running, Succeeded, Skipped, Failed, Error, Omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Id of the steps/dag node this node belongs to.
    #[serde(
        rename = "boundaryID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub boundary_id: Option<String>,
    /// Why the node is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the node started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the node finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// "N/M" pods done under this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Pod IP of a daemoned step.
    #[serde(rename = "podIP", default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// Node the pod ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_node_name: Option<String>,
    /// Inputs the node ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Inputs>,
    /// Outputs it produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// Child node ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<String>>,
    /// Leaf node ids of a steps/dag node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_nodes: Option<Vec<String>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A schedule that creates Workflows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CronWorkflow {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<CronWorkflow>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Schedule and workflow.
    #[serde(default)]
    pub spec: CronWorkflowSpec,
    /// Last runs, active runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CronWorkflowStatus>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(CronWorkflow, "CronWorkflow", "cronworkflows", namespaced);

/// The spec of a CronWorkflow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronWorkflowSpec {
    /// The workflow to create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_spec: Option<WorkflowSpec>,
    /// Cron schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedules: Option<Vec<String>>,
    /// A single cron schedule (the older field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Allow, Forbid or Replace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<String>,
    /// Stops scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// How late a missed run may still start, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// Succeeded runs kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i64>,
    /// Failed runs kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i64>,
    /// Labels/annotations of created workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_metadata: Option<Value>,
    /// Expression that must hold for a run to start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The status of a CronWorkflow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronWorkflowStatus {
    /// References to running workflows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Vec<Value>>,
    /// When the last run was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<String>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Value>>,
    /// Count of succeeded runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succeeded: Option<i64>,
    /// Count of failed runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
    /// Active or Stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The executor's report of one node to the controller. Named after the node id, labelled with
/// the workflow; it has no spec: its fields sit at the top level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTaskResult {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<WorkflowTaskResult>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Node phase the executor observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Message for the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Outputs collected (parameters, artifacts, result, exit code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// "N/M" progress reported by the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(
    WorkflowTaskResult,
    "WorkflowTaskResult",
    "workflowtaskresults",
    namespaced
);

/// Agent (HTTP/plugin) tasks of one workflow and their results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTaskSet {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<WorkflowTaskSet>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Tasks by node id.
    #[serde(default)]
    pub spec: WorkflowTaskSetSpec,
    /// Results by node id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<WorkflowTaskSetStatus>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(
    WorkflowTaskSet,
    "WorkflowTaskSet",
    "workflowtasksets",
    namespaced
);

/// Spec of a WorkflowTaskSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTaskSetSpec {
    /// Node id → template to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<BTreeMap<String, Template>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Status of a WorkflowTaskSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowTaskSetStatus {
    /// Node id → result (phase, message, outputs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<BTreeMap<String, Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Artifacts of finished workflows to garbage-collect, and the results.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowArtifactGcTask {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<WorkflowArtifactGcTask>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Artifacts by node.
    #[serde(default)]
    pub spec: ArtifactGcSpec,
    /// Deletion results by node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ArtifactGcStatus>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(
    WorkflowArtifactGcTask,
    "WorkflowArtifactGCTask",
    "workflowartifactgctasks",
    namespaced
);

/// Spec of a WorkflowArtifactGCTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactGcSpec {
    /// Node id → artifacts to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts_by_node: Option<BTreeMap<String, Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Status of a WorkflowArtifactGCTask.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactGcStatus {
    /// Node id → per-artifact results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_results_by_node: Option<BTreeMap<String, Value>>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Submits a WorkflowTemplate when an event sent to the Argo Server API matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEventBinding {
    /// apiVersion and kind.
    #[serde(flatten)]
    pub types: TypeTag<WorkflowEventBinding>,
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// Event selector and what to submit.
    #[serde(default)]
    pub spec: WorkflowEventBindingSpec,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}
argo_resource!(
    WorkflowEventBinding,
    "WorkflowEventBinding",
    "workfloweventbindings",
    namespaced
);

/// Spec of a WorkflowEventBinding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEventBindingSpec {
    /// `selector`: the expression an event must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Value>,
    /// `workflowTemplateRef`, `arguments`, `metadata` of the workflow to submit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit: Option<Value>,
    /// Fields cairn does not model.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
impl Workflow {
    /// A workflow `namespace/name` with one container template "main" as entrypoint.
    pub fn test(namespace: &str, name: &str) -> Self {
        Workflow {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            spec: WorkflowSpec {
                entrypoint: Some("main".to_owned()),
                templates: Some(vec![Template::container("main", "busybox")]),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Adds a template.
    pub fn with_template(mut self, template: Template) -> Self {
        self.spec
            .templates
            .get_or_insert_with(Vec::new)
            .push(template);
        self
    }

    /// Sets the phase in the status.
    pub fn with_phase(mut self, phase: &str) -> Self {
        self.status.get_or_insert_with(Default::default).phase = Some(phase.to_owned());
        self
    }
}

#[cfg(test)]
impl Template {
    /// A container template running `image`.
    pub fn container(name: &str, image: &str) -> Self {
        Template {
            name: name.to_owned(),
            container: Some(Container {
                image: Some(image.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip<T: serde::de::DeserializeOwned + Serialize>(input: Value) -> Value {
        let typed: T = serde_json::from_value(input).expect("deserialize");
        serde_json::to_value(&typed).expect("serialize")
    }

    #[test]
    fn builder_serializes_with_api_version_and_kind() {
        let wf = Workflow::test("ns", "wf").with_phase("Running");
        let v = serde_json::to_value(&wf).expect("serialize");
        assert_eq!(v["apiVersion"], "argoproj.io/v1alpha1");
        assert_eq!(v["kind"], "Workflow");
        assert_eq!(v["spec"]["templates"][0]["container"]["image"], "busybox");
        assert_eq!(v["status"]["phase"], "Running");
        assert_eq!(roundtrip::<Workflow>(v.clone()), v);
    }

    #[test]
    fn unknown_fields_survive_at_every_level() {
        let input = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "x", "namespace": "ns"},
            "topLevelFuture": {"a": [1, 2]},
            "spec": {
                "entrypoint": "main",
                "specFuture": true,
                "podGC": {"strategy": "OnPodSuccess", "deleteDelayDuration": "30s"},
                "arguments": {"parameters": [{"name": "n", "value": 3, "paramFuture": "x"}], "argFuture": 1},
                "templates": [{
                    "name": "main",
                    "tmplFuture": {"deep": {"deeper": null}},
                    "container": {"image": "busybox", "resources": {"limits": {"cpu": "1"}}},
                    "retryStrategy": {"limit": 10, "retryFuture": "y"},
                    "steps": [[{"name": "s", "template": "t", "withItems": [1, "a", {"k": "v"}], "stepFuture": []}]],
                    "dag": {"tasks": [{"name": "A", "depends": "B", "taskFuture": {}}], "dagFuture": 2}
                }]
            },
            "status": {
                "phase": "Running",
                "statusFuture": "z",
                "nodes": {"x": {"id": "x", "type": "Pod", "boundaryID": "b", "podIP": "1.2.3.4", "nodeFuture": 1,
                                 "outputs": {"result": "ok", "exitCode": "0", "outFuture": []}}}
            }
        });
        assert_eq!(roundtrip::<Workflow>(input.clone()), input);
    }

    #[test]
    fn empty_collections_are_kept_as_written() {
        let input = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
            "metadata": {"name": "t"},
            "spec": {"templates": [], "arguments": {}, "volumes": []}
        });
        assert_eq!(roundtrip::<WorkflowTemplate>(input.clone()), input);
    }

    #[test]
    fn wrong_kind_is_refused_with_both_names() {
        let err = serde_json::from_value::<Workflow>(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow",
            "metadata": {"name": "c"}, "spec": {}
        }))
        .expect_err("kind mismatch");
        assert!(
            err.to_string()
                .contains("expected Workflow, found CronWorkflow"),
            "{err}"
        );
    }

    #[test]
    fn task_result_has_top_level_fields() {
        let input = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskResult",
            "metadata": {"name": "wf-123", "labels": {"workflows.argoproj.io/workflow": "wf"}},
            "phase": "Succeeded", "progress": "1/1",
            "outputs": {"parameters": [{"name": "p", "value": "v"}], "result": "hello"}
        });
        let typed: WorkflowTaskResult = serde_json::from_value(input.clone()).expect("parse");
        assert_eq!(
            typed.outputs.as_ref().and_then(|o| o.result.as_deref()),
            Some("hello")
        );
        assert_eq!(serde_json::to_value(&typed).expect("ser"), input);
    }

    #[test]
    fn template_type_follows_the_set_field() {
        let t = Template::container("a", "busybox");
        assert_eq!(t.template_type(), Some(TemplateType::Container));
        let s = Template {
            steps: Some(vec![]),
            ..Default::default()
        };
        assert_eq!(s.template_type(), Some(TemplateType::Steps));
        assert_eq!(Template::default().template_type(), None);
    }

    #[test]
    fn any_string_values_render_like_argo() {
        let p: Parameter = serde_json::from_value(json!({"name": "n", "value": 5})).expect("p");
        assert_eq!(p.value_text().as_deref(), Some("5"));
        let p: Parameter = serde_json::from_value(json!({"name": "n", "value": "5"})).expect("p");
        assert_eq!(p.value_text().as_deref(), Some("5"));
        assert_eq!(any_string(&json!(true)), "true");
    }

    #[test]
    fn timestamps_parse_on_demand() {
        let st = WorkflowStatus {
            started_at: Some("2024-05-01T10:00:00Z".into()),
            finished_at: Some("not a time".into()),
            ..Default::default()
        };
        assert_eq!(st.started_at().map(|t| t.as_second()), Some(1_714_557_600));
        assert_eq!(st.finished_at(), None);
    }
}
