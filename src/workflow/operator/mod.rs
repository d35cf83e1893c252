//! The workflow operator: the pure heart of the workflow controller. One call of [`operate`]
//! is one reconcile of one Workflow, Argo's `wfOperationCtx.operate`: from the Workflow as
//! read (spec and `.status`), the observations of its pods and the current time, it computes
//! the complete new `.status` and the side effects to execute after persisting it.
//!
//! Owns: the node tree in `.status.nodes` as Argo keeps it (root node of type Pod/Steps/DAG,
//! `StepGroup` nodes `wf[0]`, step nodes `wf[0].a`, DAG task nodes `wf.a`, `Retry` nodes with
//! attempt children `a(0)`, `a(1)`, loop children `a(0:item)` under the StepGroup (steps) or
//! a `TaskGroup` (DAG), `Skipped` nodes for skipped/omitted steps, `Suspend` nodes, the
//! `wf.onExit` exit-handler tree), with `boundaryID`, `children`, `outboundNodes`, inputs and
//! outputs; the workflow's phase, message, `startedAt`, `finishedAt`, `progress`, global
//! outputs and `storedWorkflowTemplateSpec`.
//!
//! Builds on: [`crate::workflow::validate`] (resolution through [`TemplateLookup`] and
//! validation at start), [`crate::workflow::expr`] (every `{{...}}`, `{{=...}}` and `when`),
//! [`crate::workflow::steps::plan`] and [`crate::workflow::dag::plan`] (what runs next),
//! [`crate::workflow::retry`] (retry decisions, durations, deadlines) and
//! [`crate::workflow::node`] (node ids, pod names, the [`PodRequest`] contract).
//!
//! Invariants:
//! - Pure and deterministic: no I/O, no clock (`now` is an input), no randomness; maps are
//!   ordered, so the same input gives the same [`Operation`].
//! - Status first, actions second: the shell persists [`Operation::status`] before executing
//!   [`Operation::actions`]; a crash between the two replays the same `CreatePod` (same name,
//!   `AlreadyExists` is success).
//! - Node ids and pod names come only from [`node_id`] and [`pod_name`]. A node whose pod was
//!   requested (phase Pending) but is not observed is requested again under the same name; a
//!   node whose pod was seen running and then vanished is an Error ("pod deleted"), as in Argo.
//! - A completed node (Succeeded, Failed, Error, Skipped, Omitted) is never changed or re-run;
//!   a completed workflow is returned unchanged with no action.
//! - A node completes from its pod only once the executor's report is in
//!   ([`crate::workflow::node::PodObservation::outputs_reported`]), so outputs are never read
//!   half-written.
//! - Bounded: template invocations nest at most 100 deep (Argo's `maxStackDepth`; deeper is
//!   a node Error "Maximum recursion depth exceeded..."), and the stack grows on the heap
//!   when short, so a self-calling template cannot overflow the caller's thread; re-planning
//!   rounds per steps/DAG node are bounded by the template's size.
//! - Never fails: an invalid workflow ends `Failed` with `invalid spec: <path>: <problem>`;
//!   a problem found while running (an unresolvable argument, a bad `withParam`, an invalid
//!   `when`) makes that node `Error` with a message naming the template and field.
//!
//! Argo semantics kept (argo-workflows `workflow/controller/operator.go`, `steps.go`, `dag.go`,
//! docs "Workflow Concepts", "Variables", "Retries", "Exit handlers", "Loops", "Conditionals",
//! "Suspending", "Timeouts", "Parallelism", "Continue on fail"):
//! - Start: phase `Running`, `startedAt`; validation failure → `Failed`, "invalid spec: ...".
//!   A running workflow keeps what it started with: `storedWorkflowTemplateSpec` for a
//!   `workflowTemplateRef`, `storedTemplates` for every `templateRef` (looked up first).
//!   Globals: `workflow.name/namespace/uid/serviceAccountName/mainEntrypoint/
//!   creationTimestamp/parameters/labels/annotations/outputs.parameters`; `workflow.status`
//!   and `workflow.failures` (JSON list of failed nodes) once the main tree has ended.
//! - Inputs: argument, else `value`, else `default`; `enum` enforced at run time too.
//! - Pods: one per attempt, the template rendered with inputs, `{{pod.name}}`, `{{node.name}}`,
//!   `{{retries}}`, `{{outputs.parameters.X.path}}`; `capture_result` for scripts and for
//!   containers when any `outputs.result` is referenced in the workflow. A pod's deadline is the
//!   least of the template's `activeDeadlineSeconds`, its `timeout`, and what is left of the
//!   workflow's `activeDeadlineSeconds`; past it the operator deletes the pod and fails the node
//!   with "Step exceeded its deadline".
//! - Steps and DAGs follow their planners; `when` false → Skipped ("when '...' evaluated
//!   false"), `depends` false → Omitted; loops over nothing → Skipped ("Skipped, empty params");
//!   loop outputs aggregate as JSON lists; workflow `parallelism` caps running pods.
//! - Retries: a `Retry` node, attempts `name(n)`, backoff waits surfaced as `requeue_after`
//!   and the node message "Backoff for ...".
//! - `onExit` (workflow level, node `<wf>.onExit`) runs after the main tree; a failing exit
//!   handler fails a succeeded workflow. Step/task `onExit` runs `<node>.onExit` after the node
//!   and its group waits for it.
//! - `spec.suspend`: nothing new starts, running pods keep being tracked. Suspend templates:
//!   `duration` → Succeeded when elapsed (requeued then), otherwise Running until [`resume`].
//! - `spec.shutdown`: `Stop` deletes running pods and starts nothing but exit handlers;
//!   `Terminate` runs no exit handler either; the workflow message is
//!   "Stopped with strategy '<S>'".
//!
//! - Daemons (`daemon: true`): once the pod runs the node is `daemoned` and dependents go on;
//!   the steps/DAG node that started it deletes its pod and marks it Succeeded when it ends.
//! - Artifacts: an argument's `from: "{{steps.X.outputs.artifacts.Y}}"` becomes the producing
//!   node's reported artifact (its location) under the input's name and path; an input
//!   artifact with neither a location nor an argument is an Error unless `optional`.
//! - `templateDefaults` are merged under every template; `hooks.exit` is an exit handler
//!   (workflow, step and task level) when `onExit` is not set; other lifecycle hooks fire once
//!   when their `expression` holds (`<wf>.hooks.<name>`, `<node>.hooks.<name>`) and the
//!   workflow, or the step's group, waits for them.
//!
//! - Resource templates ([`crate::workflow::resource`]; Argo docs "Kubernetes Resources",
//!   executor `resource.go`): a node of type Pod whose action the shell executes
//!   ([`Action::Resource`]); with a success/failure condition the node is Running and reads
//!   its object again every `resource::POLL_SECONDS` until one holds (failure first, as
//!   Argo); outputs `valueFrom.jsonPath`/`jqFilter` read the same live object; a refused
//!   action or a met failure condition fails the node with the message. Restart-safe: a node
//!   without an observation asks for its action again, which the shell replays idempotently.
//!
//! - Inline templates (`inline:` of a step or DAG task; Argo >= 3.1): the step is rendered
//!   with the caller's scope like any step (tags it cannot resolve are kept, so the inline
//!   body's own `{{inputs...}}` survive), then its `inline` body is the template the call
//!   runs, from the caller's template scope. Its node names no template and its pod is
//!   `<workflow>-<hash>`, as Argo's are.
//! - Parameters from ConfigMaps (`valueFrom.configMapKeyRef`, `operator/config.rs`): workflow
//!   arguments are resolved before the globals on every reconcile (a missing ConfigMap or key
//!   without `valueFrom.default` fails the workflow); template inputs when the call is
//!   executed (the node errors). `valueFrom.secretKeyRef` is read the same way from the
//!   Secrets the shell fetched for this reconcile; as in Argo the value then sits in the node's
//!   `inputs` in `.status` (see `operator/config.rs`).
//!
//! - Synchronization ([`crate::workflow::sync`], Argo docs "Synchronization"): through the
//!   [`sync::Locks`] port of [`operate_locked`]. `spec.synchronization` is acquired by
//!   holder `<ns>/<wf>` on every reconcile before anything runs (idempotent once held); while
//!   it waits the workflow stays `Pending` with Argo's "Waiting for <key> lock. Lock status:
//!   <free>/<limit>" and nothing else happens. A template's `synchronization` is acquired by
//!   `<ns>/<wf>/<node id>` before the node's body runs: a waiting node is created `Pending`
//!   with the same message (a placeholder, replaced by the real node once acquired), and the
//!   lock is released as soon as the node is fulfilled. A completing workflow releases all
//!   it holds. `.status.synchronization` holds Argo's holding/waiting lists. A malformed
//!   block or an unreadable semaphore limit fails the workflow (workflow level) or errors the
//!   node (template level), as Argo does.
//!
//! containerSet templates run as one pod (`pod::container_set`), with one `Container` child
//! node per container whose phase comes from its container status (`walk.rs`,
//! `container_children`).
//!
//! Left out (each an explicit node Error, never a silent success): http, plugin and
//! data templates ("... templates are not supported yet"). Not done yet:
//! memoization, `podGC`/`ttlStrategy` (the shell's),
//! `TRANSIENT_ERROR_PATTERN` (only Argo's built-in transient messages are recognised),
//! `valueFrom.secretKeyRef` parameters.

mod config;
mod flow;
pub mod metadata;
mod vars;
mod walk;

#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use crate::workflow::expr::ExprError;
use crate::workflow::node::{Observations, PodRequest};
use crate::workflow::resource::{ResourceObservations, ResourceRequest};
use crate::workflow::retry::RetryError;
use crate::workflow::sync;
use crate::workflow::types::{NodeStatus, Template, Workflow, WorkflowSpec, WorkflowStatus};
use crate::workflow::validate::TemplateLookup;

pub use crate::workflow::node::{node_id, pod_name};

/// Everything one reconcile needs.
pub struct OperateInput<'a> {
    /// The Workflow as read from the cluster: metadata, spec, status.
    pub workflow: &'a Workflow,
    /// Node id → what the controller saw of that node's pod.
    pub observations: &'a Observations,
    /// WorkflowTemplates / ClusterWorkflowTemplates.
    pub templates: &'a dyn TemplateLookup,
    /// The current time.
    pub now: Timestamp,
}

/// The result of one reconcile.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// The complete new `.status` (the shell writes it when it differs from the old one).
    pub status: WorkflowStatus,
    /// Side effects to execute after persisting `status`, in order.
    pub actions: Vec<Action>,
    /// The earliest time-driven wake-up (retry backoff, suspend duration, deadlines), from
    /// `now`; `None` when only pod events can move the workflow on.
    pub requeue_after: Option<SignedDuration>,
}

/// A side effect the shell executes.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create this pod (an existing pod of that name is success).
    CreatePod(Box<PodRequest>),
    /// Execute this resource action (create/apply/... or, while a node waits on its
    /// conditions, a `get` of its object) and report the object as a
    /// [`crate::workflow::resource::ResourceObservation`].
    Resource(Box<ResourceRequest>),
    /// Delete this pod (stop, terminate, deadline, timeout); a missing pod is success.
    DeletePod {
        /// The pod.
        pod_name: String,
        /// The node it runs.
        node_id: String,
    },
}

/// Node and workflow messages, as Argo writes them.
pub mod reasons {
    /// A pod killed at its (or the workflow's) deadline.
    pub const DEADLINE: &str = "Step exceeded its deadline";
    /// A node whose pod disappeared after it was seen.
    pub const POD_DELETED: &str = "pod deleted";
    /// A loop over no items.
    pub const EMPTY_PARAMS: &str = "Skipped, empty params";
    /// A DAG task whose `depends` is false.
    pub const OMITTED: &str = "omitted: depends condition not met";
}

/// Why a node could not run (turned into the node's Error message; the operator itself never
/// fails).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OperatorError {
    /// The workflow did not pass validation (or its references did not resolve).
    #[error("invalid spec: {}", .0.join("; "))]
    InvalidSpec(Vec<String>),
    /// A step/task names a template that does not exist.
    #[error("{node}: template '{template}' not found")]
    TemplateNotFound {
        /// The node name.
        node: String,
        /// The template looked for.
        template: String,
    },
    /// A required input parameter has no value.
    #[error("template '{template}': inputs.parameters.{parameter} was not supplied")]
    MissingInput {
        /// The template.
        template: String,
        /// The parameter.
        parameter: String,
    },
    /// A `valueFrom.configMapKeyRef` input whose ConfigMap or key is not there (and that has
    /// no `valueFrom.default`).
    #[error(
        "template '{template}': unable to retrieve inputs.parameters.{parameter} from ConfigMap: \
         {message}"
    )]
    ConfigMap {
        /// The template.
        template: String,
        /// The parameter.
        parameter: String,
        /// What is missing (ConfigMap, label or key).
        message: String,
    },
    /// A `valueFrom.secretKeyRef` input whose Secret or key is not there (and that has no
    /// `valueFrom.default`). The message never holds a Secret's value.
    #[error(
        "template '{template}': unable to retrieve inputs.parameters.{parameter} from Secret: \
         {message}"
    )]
    Secret {
        /// The template.
        template: String,
        /// The parameter.
        parameter: String,
        /// What is missing (Secret or key).
        message: String,
    },
    /// A required input artifact has no location and no argument.
    #[error("template '{template}': inputs.artifacts.{artifact} was not supplied")]
    MissingArtifact {
        /// The template.
        template: String,
        /// The artifact.
        artifact: String,
    },
    /// An input value outside its `enum`.
    #[error(
        "template '{template}': inputs.parameters.{parameter} value '{value}' is not in enum [{}]",
        allowed.join(", ")
    )]
    NotInEnum {
        /// The template.
        template: String,
        /// The parameter.
        parameter: String,
        /// The value given.
        value: String,
        /// The allowed values.
        allowed: Vec<String>,
    },
    /// A tag or expression did not render.
    #[error("{template}: {field}: {source}")]
    Render {
        /// The template or step.
        template: String,
        /// The JSON path of the field inside it.
        field: String,
        /// The engine's error.
        source: ExprError,
    },
    /// A value could not be converted (never expected for the typed structs).
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was converted.
        what: String,
        /// The serde error.
        message: String,
    },
    /// `withParam` is not a JSON list.
    #[error("{step}: withParam value could not be parsed as a JSON list: {value}")]
    WithParam {
        /// The step or task.
        step: String,
        /// The rendered value.
        value: String,
    },
    /// `withSequence` is malformed.
    #[error("{step}: withSequence: {problem}")]
    Sequence {
        /// The step or task.
        step: String,
        /// What is wrong.
        problem: String,
    },
    /// A `when` that cannot be decided.
    #[error("{step}: {source}")]
    When {
        /// The step or task.
        step: String,
        /// The engine's error.
        source: ExprError,
    },
    /// A `retryStrategy` that does not parse after rendering.
    #[error("{0}")]
    Retry(RetryError),
    /// An output parameter of a steps/DAG template has no value and no default.
    #[error("template '{template}': output parameter '{parameter}': {message}")]
    OutputParameter {
        /// The template.
        template: String,
        /// The parameter.
        parameter: String,
        /// Why no value was found.
        message: String,
    },
    /// An output artifact of a steps/DAG template whose `from`/`fromExpression` does not
    /// name an artifact (and that is not `optional`).
    #[error("template '{template}': output artifact '{artifact}': {message}")]
    OutputArtifact {
        /// The template.
        template: String,
        /// The artifact.
        artifact: String,
        /// What the reference gave instead.
        message: String,
    },
    /// `suspend.duration` is not a duration.
    #[error("template '{template}': suspend.duration '{value}' is not a duration")]
    SuspendDuration {
        /// The template.
        template: String,
        /// The value.
        value: String,
    },
    /// Templates nested deeper than Argo's maximum (a template calling itself without end).
    #[error(
        "Maximum recursion depth exceeded. See https://argo-workflows.readthedocs.io/en/latest/scaling/#maximum-recursion-depth"
    )]
    MaxDepth,
    /// A template type cairn does not run yet.
    #[error("template '{template}': {kind} templates are not supported yet")]
    Unsupported {
        /// The template.
        template: String,
        /// `resource`, `http`...
        kind: &'static str,
    },
    /// A resource template that cannot run (its `resource:` field or outputs).
    #[error(transparent)]
    Resource(crate::workflow::resource::ResourceError),
    /// A `synchronization` block that cannot be acquired (malformed, or a semaphore whose
    /// ConfigMap limit cannot be read).
    #[error("template '{template}': synchronization: {source}")]
    Sync {
        /// The template (the entrypoint's for a workflow-level lock).
        template: String,
        /// The lock manager's error.
        source: sync::SyncError,
    },
    /// A steps or DAG template that its planner rejects.
    #[error("template '{template}': {message}")]
    Structure {
        /// The template.
        template: String,
        /// The planner's error.
        message: String,
    },
}

impl OperatorError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            OperatorError::InvalidSpec(_) => "invalid_spec",
            OperatorError::TemplateNotFound { .. } => "template_not_found",
            OperatorError::MissingInput { .. } => "missing_input",
            OperatorError::ConfigMap { .. } => "config_map",
            OperatorError::Secret { .. } => "secret",
            OperatorError::MissingArtifact { .. } => "missing_artifact",
            OperatorError::NotInEnum { .. } => "not_in_enum",
            OperatorError::Render { .. } => "render",
            OperatorError::Encode { .. } => "encode",
            OperatorError::WithParam { .. } => "with_param",
            OperatorError::Sequence { .. } => "sequence",
            OperatorError::When { .. } => "when",
            OperatorError::Retry(_) => "retry",
            OperatorError::OutputParameter { .. } => "output_parameter",
            OperatorError::OutputArtifact { .. } => "output_artifact",
            OperatorError::SuspendDuration { .. } => "suspend_duration",
            OperatorError::MaxDepth => "max_depth",
            OperatorError::Unsupported { .. } => "unsupported",
            OperatorError::Resource(e) => e.metric_label(),
            OperatorError::Sync { source, .. } => source.metric_label(),
            OperatorError::Structure { .. } => "structure",
        }
    }
}

/// One reconcile of a Workflow; see the module docs. Locks (`synchronization`) are taken
/// from a lock table of this call's own, so every free lock is granted: the controller uses
/// [`operate_locked`] with its shared table.
pub fn operate(input: &OperateInput<'_>) -> Operation {
    operate_with_resources(input, &ResourceObservations::new())
}

/// [`operate`] with what the shell saw of the objects of resource templates (by node id). A
/// resource node without an observation (first pass, or a restarted controller) asks for its
/// action again, which the shell executes idempotently.
pub fn operate_with_resources(
    input: &OperateInput<'_>,
    resources: &ResourceObservations,
) -> Operation {
    let mut table = sync::LockTable::new();
    let config = sync_config::Parameters(input.templates);
    let mut gate = sync::Gate::new(&mut table, &config);
    walk::operate(input, resources, &mut gate)
}

/// [`operate_with_resources`] against the controller's lock manager: the controller's entry
/// point. Workflow-level locks are acquired before the workflow starts (it stays `Pending`,
/// "Waiting for <key> lock...", until then) and released when it completes; template-level
/// locks before the node runs and when it is fulfilled; `.status.synchronization` records
/// holds and waits (see [`crate::workflow::sync`]).
pub fn operate_locked(
    input: &OperateInput<'_>,
    resources: &ResourceObservations,
    locks: &mut dyn sync::Locks,
) -> Operation {
    walk::operate(input, resources, locks)
}

/// Semaphore limits for the lock table of a lone [`operate`] call.
mod sync_config {
    use crate::workflow::validate::{ConfigMapValue, TemplateLookup};

    /// Reads semaphore ConfigMaps through the template lookup's ConfigMaps.
    pub(super) struct Parameters<'a>(pub &'a dyn TemplateLookup);

    impl crate::workflow::sync::SemaphoreConfig for Parameters<'_> {
        fn value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
            self.0.config_map_value(namespace, name, key)
        }
    }
}

/// Argo's resume: every suspend node that is still Running (and matches
/// `node_field_selector`, e.g. `displayName=approve`; `key=value` / `key!=value` terms joined
/// by commas over `id`, `name`, `displayName`, `templateName`, `phase`, `type`) becomes
/// Succeeded at `now`. The caller also clears `spec.suspend`.
pub fn resume(
    workflow: &Workflow,
    node_field_selector: Option<&str>,
    now: Timestamp,
) -> WorkflowStatus {
    let mut status = workflow.status.clone().unwrap_or_default();
    // The templates the suspend nodes ran: the stored spec of a workflowTemplateRef, else
    // the Workflow's own (templateRef'd suspend templates are not looked up: no lookup here).
    let stored: Option<WorkflowSpec> = status
        .stored_workflow_template_spec
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let templates = stored
        .as_ref()
        .and_then(|s| s.templates.clone())
        .or_else(|| workflow.spec.templates.clone())
        .unwrap_or_default();
    let Some(nodes) = status.nodes.as_mut() else {
        return status;
    };
    for node in nodes.values_mut() {
        let suspended = node.node_type.as_deref() == Some("Suspend")
            && node.phase.as_deref() == Some("Running");
        if suspended && node_field_selector.is_none_or(|s| selector_matches(s, node)) {
            node.phase = Some("Succeeded".into());
            node.finished_at = Some(vars::ts(now));
            node.message = None;
            let template = templates
                .iter()
                .find(|t| Some(&t.name) == node.template_name.as_ref());
            supply_outputs(node, template);
        }
    }
    status
}

/// A resumed suspend node's `valueFrom.supplied` outputs: the value set on the node (by
/// `argo node set` or the UI), else the parameter's `valueFrom.default`.
fn supply_outputs(node: &mut NodeStatus, template: Option<&Template>) {
    let declared = template
        .and_then(|t| t.outputs.as_ref())
        .and_then(|o| o.parameters.clone())
        .unwrap_or_default();
    for d in declared {
        let Some(vf) = d
            .value_from
            .as_ref()
            .filter(|v| v.get("supplied").is_some())
        else {
            continue;
        };
        let outputs = node.outputs.get_or_insert_with(Default::default);
        let params = outputs.parameters.get_or_insert_with(Vec::new);
        let has_value = params.iter().any(|p| p.name == d.name && p.value.is_some());
        if has_value {
            continue;
        }
        if let Some(default) = vf.get("default") {
            params.retain(|p| p.name != d.name);
            params.push(crate::workflow::types::Parameter {
                name: d.name.clone(),
                value: Some(serde_json::Value::String(
                    crate::workflow::types::any_string(default),
                )),
                global_name: d.global_name.clone(),
                ..Default::default()
            });
        }
    }
    if let Some(outputs) = node.outputs.as_mut() {
        if outputs.parameters.as_ref().is_some_and(Vec::is_empty) {
            outputs.parameters = None;
        }
        if *outputs == Default::default() {
            node.outputs = None;
        }
    }
}

/// Whether a node matches Argo's node field selector (`key=value`, `key!=value`, `,`-joined).
fn selector_matches(selector: &str, node: &NodeStatus) -> bool {
    let fields: BTreeMap<&str, Option<&str>> = BTreeMap::from([
        ("id", node.id.as_deref()),
        ("name", node.name.as_deref()),
        ("displayName", node.display_name.as_deref()),
        ("templateName", node.template_name.as_deref()),
        ("phase", node.phase.as_deref()),
        ("type", node.node_type.as_deref()),
    ]);
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            let (key, value, negate) = match term.split_once("!=") {
                Some((k, v)) => (k, v, true),
                None => match term.split_once('=') {
                    Some((k, v)) => (k, v.trim_start_matches('='), false),
                    None => return false,
                },
            };
            let actual = fields.get(key.trim()).copied().flatten().unwrap_or("");
            (actual == value.trim()) != negate
        })
}
