//! The walk over the node tree: workflow-level decisions (start, validation, deadline,
//! shutdown, exit handler, final phase) and the execution of one template invocation
//! (`execute`: template resolution, inputs, retries, pods, suspends), Argo's
//! `operate`/`executeTemplate`. Steps and DAG bodies live in `flow`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::vars::{self, ts};
use super::{Action, OperateInput, Operation, OperatorError, reasons};
use crate::workflow::expr::{self, Scope};
use crate::workflow::node::{Observations, PodPhase, PodRequest, node_id, pod_name};
use crate::workflow::resource;
use crate::workflow::retry::{
    self, Attempt, AttemptPhase, DecideInput, RetryDecision, RetryStrategy, TransientMatcher,
};
use crate::workflow::sync::{self, Acquire, LockRef, LockRequest, Locks, SyncStatus};
use crate::workflow::types::{
    ClusterWorkflowTemplate, Inputs, NodeStatus, Outputs, Parameter, Template, TemplateRef,
    TemplateType, WorkflowSpec, WorkflowStatus, WorkflowTemplate,
};
use crate::workflow::validate::{self, ResolvedWorkflow, Source, TemplateLookup};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// `spec.shutdown` strategies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shutdown {
    /// Stop: running pods are deleted, exit handlers still run.
    Stop,
    /// Terminate: like Stop, without exit handlers.
    Terminate,
}

impl Shutdown {
    fn parse(s: Option<&str>) -> Option<Shutdown> {
        match s? {
            "Stop" => Some(Shutdown::Stop),
            "Terminate" => Some(Shutdown::Terminate),
            _ => None,
        }
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            Shutdown::Stop => "Stop",
            Shutdown::Terminate => "Terminate",
        }
    }

    pub(super) fn message(self) -> String {
        format!("Stopped with strategy '{}'", self.as_str())
    }
}

/// Which template a call runs: by name in a template scope, or by `templateRef`.
#[derive(Clone, Debug, Default)]
pub(super) struct Call {
    /// The node's full name.
    pub node_name: String,
    /// The node's display name.
    pub display_name: String,
    /// `template:`.
    pub template: Option<String>,
    /// `templateRef:`.
    pub template_ref: Option<TemplateRef>,
    /// `inline:`: the template itself, rendered with the caller's scope (unresolved tags kept
    /// for its own inputs, as Argo renders a task with `allowUnresolved`).
    pub inline: Option<Box<Template>>,
    /// Where a plain `template:` name resolves (`None` = the workflow's own spec).
    pub scope_src: Option<Source>,
    /// Arguments, every tag resolved.
    pub args: Vec<Parameter>,
    /// Argument artifacts, `from` resolved to the producing node's artifact.
    pub artifacts: Vec<Value>,
    /// The boundary node id.
    pub boundary_id: Option<String>,
    /// Part of an exit handler (runs under `Stop`).
    pub on_exit: bool,
}

/// What an invocation carries down into the body of its template.
#[derive(Clone, Debug)]
pub(super) struct Frame {
    pub node_name: String,
    pub display_name: String,
    pub boundary_id: Option<String>,
    pub src: Option<Source>,
    pub template_name: String,
    pub template_ref: Option<TemplateRef>,
    pub on_exit: bool,
    pub inputs: Inputs,
}

/// The state of one reconcile.
pub(super) struct Ctx<'a> {
    pub wf_name: String,
    pub namespace: String,
    pub uid: String,
    pub resolved: ResolvedWorkflow,
    pub nodes: BTreeMap<String, NodeStatus>,
    obs: &'a Observations,
    /// The live lookup, for parameter ConfigMaps.
    lookup: &'a dyn TemplateLookup,
    /// What the shell saw of resource nodes' objects, by node id.
    resources: &'a crate::workflow::resource::ResourceObservations,
    pub now: Timestamp,
    pub globals: Scope,
    pub actions: Vec<Action>,
    wake: Option<Timestamp>,
    pub shutdown: Option<Shutdown>,
    deadline: Option<Timestamp>,
    suspended: bool,
    parallelism: Option<usize>,
    active_pods: usize,
    pod_spec: WorkflowSpec,
    capture_all_results: bool,
    transient: TransientMatcher,
    deleted: BTreeSet<String>,
    /// Pods requested in this pass (a node refreshed twice in one pass asks once).
    requested: BTreeSet<String>,
    /// Nesting of template invocations in this pass.
    depth: usize,
    /// The lock manager (`synchronization`).
    locks: &'a mut dyn Locks,
    /// `.status.synchronization` as this pass leaves it.
    pub sync_status: SyncStatus,
    /// The workflow's `spec.priority` (lock queue order).
    priority: i64,
    /// The workflow's `creationTimestamp` (lock queue order).
    created: Option<Timestamp>,
    /// Nodes waiting for a lock in this pass (a recheck is scheduled when any).
    pub sync_waits: usize,
}

/// Node status key (cairn's, beside Argo's fields) recording the object a waiting resource
/// node watches, so a restart polls that object instead of acting again.
const RESOURCE_REF: &str = "cairnResource";

/// No resource observations (the plain [`super::operate`] entry point).
static EMPTY_RESOURCES: resource::ResourceObservations = std::collections::BTreeMap::new();

/// Argo's default `maxStackDepth`: how deep template invocations may nest.
const MAX_DEPTH: usize = 100;
/// Below this much free stack, a nested invocation runs on a fresh stack segment...
const STACK_RED_ZONE: usize = 256 * 1024;
/// ...of this size (several levels fit in one).
const STACK_GROWTH: usize = 4 * 1024 * 1024;

pub(super) const PHASE_PENDING: &str = "Pending";
pub(super) const PHASE_RUNNING: &str = "Running";
pub(super) const PHASE_SUCCEEDED: &str = "Succeeded";
pub(super) const PHASE_FAILED: &str = "Failed";
pub(super) const PHASE_ERROR: &str = "Error";
pub(super) const PHASE_SKIPPED: &str = "Skipped";
pub(super) const PHASE_OMITTED: &str = "Omitted";

/// Whether a node phase is final.
pub(super) fn fulfilled(phase: Option<&str>) -> bool {
    matches!(
        phase,
        Some(PHASE_SUCCEEDED | PHASE_FAILED | PHASE_ERROR | PHASE_SKIPPED | PHASE_OMITTED)
    )
}

fn failed_or_error(phase: Option<&str>) -> bool {
    matches!(phase, Some(PHASE_FAILED | PHASE_ERROR))
}

/// One reconcile: see the module docs of `operator`.
pub(super) fn operate(
    input: &OperateInput<'_>,
    resources: &crate::workflow::resource::ResourceObservations,
    locks: &mut dyn Locks,
) -> Operation {
    let wf = input.workflow;
    let mut status = wf.status.clone().unwrap_or_default();
    let unchanged = |status: WorkflowStatus| Operation {
        status,
        actions: Vec::new(),
        requeue_after: None,
    };
    if matches!(
        status.phase.as_deref(),
        Some(PHASE_SUCCEEDED | PHASE_FAILED | PHASE_ERROR)
    ) {
        return unchanged(status);
    }
    let starting = matches!(
        status.phase.as_deref(),
        None | Some("") | Some(PHASE_PENDING)
    );

    // A running workflow keeps the spec it started with (Argo's storedWorkflowTemplateSpec),
    // so editing or deleting the WorkflowTemplate does not change it mid-run.
    let mut source = wf.clone();
    if !starting
        && wf.spec.workflow_template_ref.is_some()
        && let Some(stored) = status
            .stored_workflow_template_spec
            .as_ref()
            .and_then(|v| serde_json::from_value::<WorkflowSpec>(v.clone()).ok())
    {
        source.spec = stored;
        source.spec.workflow_template_ref = None;
    }
    // Referenced WorkflowTemplates as they were at start (Argo's storedTemplates) win over
    // the live ones, so a running workflow is not changed, or broken, by an edit or deletion.
    let stored = StoredLookup {
        live: input.templates,
        stored: if starting {
            BTreeMap::new()
        } else {
            stored_templates(&status)
        },
    };
    let resolved = match validate::resolve(&source, &stored) {
        Ok(r) => r,
        Err(e) => return fail_spec(status, input.now, vec![e.to_string()]),
    };
    if starting && let Err(errors) = validate::validate(&resolved) {
        return fail_spec(
            status,
            input.now,
            errors.iter().map(ToString::to_string).collect(),
        );
    }
    // Workflow-level synchronization: nothing runs (not even the start) before every lock
    // of `spec.synchronization` is held.
    let mut sync_status = SyncStatus::read(&status.extra);
    sync_status.clear_waiting();
    if let Some(block) = resolved.spec.extra.get(sync::FIELD) {
        let namespace = wf.metadata.namespace.clone().unwrap_or_default();
        let name = wf.metadata.name.clone().unwrap_or_default();
        let holder = sync::holder_key(&namespace, &name, None);
        let request = sync::lock_refs(block, &namespace, "spec.synchronization").and_then(|refs| {
            let answer = locks.acquire(&LockRequest {
                holder: &holder,
                priority: priority_of(&resolved.spec),
                created: created_of(wf),
                refs: &refs,
            })?;
            Ok((refs, answer))
        });
        match request {
            Err(e) => {
                locks.release_workflow(&namespace, &name);
                sync_status.clear();
                sync_status.write(&mut status.extra);
                return fail_spec(status, input.now, vec![e.to_string()]);
            }
            Ok((refs, Acquire::Acquired)) => {
                sync_status.acquired(&holder, &refs);
                if sync::is_waiting_message(status.message.as_deref()) {
                    status.message = None;
                }
            }
            Ok((_, Acquire::Waiting { message, holders })) => {
                sync_status.waiting(&holders);
                sync_status.write(&mut status.extra);
                if starting {
                    status.phase = Some(PHASE_PENDING.into());
                }
                status.message = Some(message);
                return Operation {
                    status,
                    actions: Vec::new(),
                    requeue_after: Some(SignedDuration::from_secs(sync::WAIT_RECHECK_SECS)),
                };
            }
        }
    }

    if starting {
        status.phase = Some(PHASE_RUNNING.into());
        status.started_at = Some(ts(input.now));
        status.message = None;
        if wf.spec.workflow_template_ref.is_some() {
            status.stored_workflow_template_spec = serde_json::to_value(&resolved.spec).ok();
        }
        if !resolved.referenced.is_empty() {
            let mut map = serde_json::Map::new();
            for (src, spec) in &resolved.referenced {
                let scope = if src.cluster { "cluster" } else { "namespaced" };
                for t in spec.templates.iter().flatten() {
                    if let Ok(v) = serde_json::to_value(t) {
                        map.insert(format!("{scope}/{}/{}", src.name, t.name), v);
                    }
                }
            }
            status.stored_templates = Some(Value::Object(map));
        }
    }

    let mut resolved = resolved;
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    // `workflowMetadata` (labels, labelsFrom) is checked once, at start, with the arguments
    // resolved; the shell writes it onto the Workflow (`metadata.rs`).
    if let Err(e) =
        super::config::resolve_arguments(&mut resolved.spec, &namespace, input.templates).and_then(
            |()| match starting {
                true => super::metadata::workflow_metadata(wf, &resolved.spec)
                    .and_then(|_| crate::workflow::pdb::check(&resolved.spec)),
                false => Ok(()),
            },
        )
    {
        locks.release_workflow(&namespace, wf.metadata.name.as_deref().unwrap_or_default());
        SyncStatus::default().write(&mut status.extra);
        return fail_spec(status, input.now, vec![e]);
    }
    let mut ctx = Ctx::new(input, resolved, &status, locks);
    ctx.sync_status = sync_status;
    ctx.resources = resources;
    ctx.run(&mut status);
    if matches!(
        status.phase.as_deref(),
        Some(PHASE_SUCCEEDED | PHASE_FAILED | PHASE_ERROR)
    ) {
        // Argo's `ReleaseAll`: a completed workflow holds and waits for nothing.
        let name = wf.metadata.name.clone().unwrap_or_default();
        ctx.locks.release_workflow(&namespace, &name);
        ctx.sync_status.clear();
    }
    ctx.sync_status.write(&mut status.extra);
    if ctx.sync_waits > 0 {
        ctx.wake_at(
            input
                .now
                .saturating_add(SignedDuration::from_secs(sync::WAIT_RECHECK_SECS))
                .unwrap_or(input.now),
        );
    }
    let requeue_after = ctx
        .wake
        .map(|t| t.duration_since(input.now).max(SignedDuration::ZERO));
    Operation {
        status,
        actions: ctx.actions,
        requeue_after,
    }
}

/// `status.storedTemplates` (`namespaced/<wft>/<template>` or `cluster/<cwft>/<template>` →
/// template) grouped back into specs per source.
fn stored_templates(status: &WorkflowStatus) -> BTreeMap<Source, WorkflowSpec> {
    let mut out: BTreeMap<Source, WorkflowSpec> = BTreeMap::new();
    let Some(map) = status.stored_templates.as_ref().and_then(Value::as_object) else {
        return out;
    };
    for (key, value) in map {
        let mut parts = key.splitn(3, '/');
        let (Some(scope), Some(name), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(t) = serde_json::from_value::<Template>(value.clone()) else {
            continue;
        };
        let source = Source {
            cluster: scope == "cluster",
            name: name.to_owned(),
        };
        out.entry(source)
            .or_default()
            .templates
            .get_or_insert_with(Vec::new)
            .push(t);
    }
    out
}

/// A template lookup that answers from the stored templates first, then the live ones.
struct StoredLookup<'a> {
    live: &'a dyn TemplateLookup,
    stored: BTreeMap<Source, WorkflowSpec>,
}

impl TemplateLookup for StoredLookup<'_> {
    fn workflow_template(&self, namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        let key = Source {
            cluster: false,
            name: name.to_owned(),
        };
        match self.stored.get(&key) {
            Some(spec) => Some(WorkflowTemplate {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..Default::default()
                },
                spec: spec.clone(),
                ..Default::default()
            }),
            None => self.live.workflow_template(namespace, name),
        }
    }

    fn cluster_workflow_template(&self, name: &str) -> Option<ClusterWorkflowTemplate> {
        let key = Source {
            cluster: true,
            name: name.to_owned(),
        };
        match self.stored.get(&key) {
            Some(spec) => Some(ClusterWorkflowTemplate {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    ..Default::default()
                },
                spec: spec.clone(),
                ..Default::default()
            }),
            None => self.live.cluster_workflow_template(name),
        }
    }

    fn config_map_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> crate::workflow::validate::ConfigMapValue {
        self.live.config_map_value(namespace, name, key)
    }

    fn secret_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> crate::workflow::validate::SecretValue {
        self.live.secret_value(namespace, name, key)
    }
}

fn fail_spec(mut status: WorkflowStatus, now: Timestamp, errors: Vec<String>) -> Operation {
    status.phase = Some(PHASE_FAILED.into());
    status.message = Some(OperatorError::InvalidSpec(errors).to_string());
    if status.started_at.is_none() {
        status.started_at = Some(ts(now));
    }
    status.finished_at = Some(ts(now));
    Operation {
        status,
        actions: Vec::new(),
        requeue_after: None,
    }
}

/// The locks a template invocation holds: its holder key and locks, or none.
type HeldLocks = Option<(String, Vec<LockRef>)>;

/// The workflow's `spec.priority` (Argo's int32; 0 when unset or not a number).
fn priority_of(spec: &WorkflowSpec) -> i64 {
    spec.extra
        .get("priority")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The workflow's `creationTimestamp`.
fn created_of(wf: &crate::workflow::types::Workflow) -> Option<Timestamp> {
    wf.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

impl<'a> Ctx<'a> {
    fn new(
        input: &OperateInput<'a>,
        resolved: ResolvedWorkflow,
        status: &WorkflowStatus,
        locks: &'a mut dyn Locks,
    ) -> Self {
        let wf = input.workflow;
        let spec = &resolved.spec;
        let priority = priority_of(spec);
        let globals = vars::globals(wf, spec, status.outputs.as_ref());
        let deadline = spec.active_deadline_seconds.and_then(|secs| {
            let start = status.started_at()?;
            // Argo truncates the start to the second before adding the deadline.
            let start = Timestamp::from_second(start.as_second()).ok()?;
            start.checked_add(SignedDuration::from_secs(secs)).ok()
        });
        let mut pod_spec = spec.clone();
        pod_spec.templates = None;
        if let Ok(t) = vars::render_value("spec", &pod_spec, &globals) {
            pod_spec = t;
        }
        let capture_all_results = serde_json::to_string(spec)
            .map(|s| s.contains("outputs.result"))
            .unwrap_or(false);
        let nodes = status.nodes.clone().unwrap_or_default();
        let active_pods = nodes
            .values()
            .filter(|n| {
                n.node_type.as_deref() == Some("Pod")
                    && matches!(n.phase.as_deref(), Some(PHASE_PENDING | PHASE_RUNNING))
            })
            .count();
        Ctx {
            wf_name: wf.metadata.name.clone().unwrap_or_default(),
            namespace: wf.metadata.namespace.clone().unwrap_or_default(),
            uid: wf.metadata.uid.clone().unwrap_or_default(),
            shutdown: Shutdown::parse(spec.shutdown.as_deref()),
            suspended: spec.suspend == Some(true),
            parallelism: spec.parallelism.map(|p| usize::try_from(p).unwrap_or(0)),
            resolved,
            nodes,
            obs: input.observations,
            lookup: input.templates,
            resources: &EMPTY_RESOURCES,
            now: input.now,
            globals,
            actions: Vec::new(),
            wake: None,
            deadline,
            active_pods,
            pod_spec,
            capture_all_results,
            // Argo reads TRANSIENT_ERROR_PATTERN from the controller's environment; the
            // operator is pure, so only the built-in transient messages apply.
            transient: TransientMatcher::default(),
            deleted: BTreeSet::new(),
            requested: BTreeSet::new(),
            depth: 0,
            priority,
            created: created_of(wf),
            locks,
            sync_status: SyncStatus::default(),
            sync_waits: 0,
        }
    }

    /// The workflow-level part of the reconcile.
    fn run(&mut self, status: &mut WorkflowStatus) {
        if let Some(deadline) = self.deadline
            && !self.deadline_passed()
        {
            self.wake_at(
                deadline
                    .saturating_add(SignedDuration::from_secs(1))
                    .unwrap_or(deadline),
            );
        }
        let spec = self.resolved.spec.clone();
        let entry = Call {
            node_name: self.wf_name.clone(),
            display_name: self.wf_name.clone(),
            template: spec.entrypoint.clone(),
            args: spec
                .arguments
                .as_ref()
                .and_then(|a| a.parameters.clone())
                .unwrap_or_default(),
            artifacts: spec
                .arguments
                .as_ref()
                .and_then(|a| a.artifacts.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        let root = self.execute(&entry);
        let root_phase = root.as_ref().and_then(|n| n.phase.clone());
        let hooks_done = self.run_workflow_hooks(&spec, &entry.args, root_phase.as_deref());
        if fulfilled(root_phase.as_deref()) && !hooks_done {
            self.finish_status(status, None);
            return;
        }

        let mut exit_node = None;
        if fulfilled(root_phase.as_deref()) {
            let wf_status = match root_phase.as_deref() {
                Some(PHASE_FAILED) => PHASE_FAILED,
                Some(PHASE_ERROR) => PHASE_ERROR,
                _ => PHASE_SUCCEEDED,
            };
            self.globals.insert("workflow.status", wf_status);
            if let Some(start) = status.started_at() {
                // Argo's `%f` of the seconds so far, for exit handlers.
                let secs = self.now.duration_since(start).as_secs_f64();
                self.globals
                    .insert("workflow.duration", format!("{secs:.6}"));
            }
            self.globals
                .insert("workflow.failures", self.failures_json());
            if let Some((template, template_ref, args)) = exit_hook(&spec, &entry.args) {
                let name = format!("{}.onExit", self.wf_name);
                let exists = self.nodes.contains_key(&node_id(&self.wf_name, &name));
                if exists || self.shutdown != Some(Shutdown::Terminate) {
                    let call = Call {
                        node_name: name.clone(),
                        display_name: name,
                        template,
                        template_ref,
                        args,
                        on_exit: true,
                        ..Default::default()
                    };
                    exit_node = self.execute(&call);
                    if !exit_node
                        .as_ref()
                        .is_some_and(|n| fulfilled(n.phase.as_deref()))
                    {
                        self.finish_status(status, None);
                        return;
                    }
                }
            }
        }

        let final_phase = match root_phase.as_deref() {
            Some(p) if fulfilled(Some(p)) => Some(p.to_owned()),
            _ => None,
        };
        let Some(root_phase) = final_phase else {
            self.finish_status(status, None);
            return;
        };
        let root_message = root.and_then(|n| n.message);
        let (phase, message) = match root_phase.as_str() {
            PHASE_FAILED | PHASE_ERROR => {
                let message = match self.shutdown {
                    Some(s) => Some(s.message()),
                    None => root_message,
                };
                (root_phase.clone(), message)
            }
            _ => match exit_node.filter(|n| failed_or_error(n.phase.as_deref())) {
                Some(n) => (n.phase.clone().unwrap_or_default(), n.message.clone()),
                None => (PHASE_SUCCEEDED.to_owned(), None),
            },
        };
        self.finish_status(status, Some((phase, message)));
    }

    /// Workflow-level lifecycle hooks other than `exit` (Argo's `executeWfLifeCycleHook`): a
    /// hook whose `expression` holds (with `workflow.status` the main tree's phase so far)
    /// runs once as `<wf>.hooks.<name>`. True when none is running.
    fn run_workflow_hooks(
        &mut self,
        spec: &WorkflowSpec,
        args: &[Parameter],
        root_phase: Option<&str>,
    ) -> bool {
        let Some(hooks) = spec.hooks.as_ref().and_then(Value::as_object) else {
            return true;
        };
        let mut scope = self.globals.clone();
        let status = match root_phase {
            Some(PHASE_FAILED) => PHASE_FAILED,
            Some(PHASE_ERROR) => PHASE_ERROR,
            p if fulfilled(p) => PHASE_SUCCEEDED,
            _ => PHASE_RUNNING,
        };
        scope.insert("workflow.status", status);
        let sorted: BTreeMap<&String, &Value> =
            hooks.iter().filter(|(k, _)| k.as_str() != "exit").collect();
        let mut done = true;
        for (name, hook) in sorted {
            let node_name = format!("{}.hooks.{name}", self.wf_name);
            if self.node(&node_name).is_none() && !hook_fires(hook, &scope) {
                continue;
            }
            let Some(call) = hook_call(hook, node_name.clone(), node_name, args) else {
                continue;
            };
            if let Some(n) = self.execute(&call) {
                done &= fulfilled(n.phase.as_deref());
            }
        }
        done
    }

    /// Writes nodes, progress, global outputs and (when final) phase/message/finishedAt.
    fn finish_status(
        &mut self,
        status: &mut WorkflowStatus,
        done: Option<(String, Option<String>)>,
    ) {
        let pods: Vec<&NodeStatus> = self
            .nodes
            .values()
            .filter(|n| n.node_type.as_deref() == Some("Pod"))
            .collect();
        let finished = pods
            .iter()
            .filter(|n| fulfilled(n.phase.as_deref()))
            .count();
        status.progress = Some(format!("{finished}/{}", pods.len()));
        // Argo's conditions: whether a pod runs now, and (once final) Completed.
        let running = pods
            .iter()
            .any(|n| n.phase.as_deref() == Some(PHASE_RUNNING));
        let mut conditions = vec![serde_json::json!({
            "type": "PodRunning",
            "status": if running { "True" } else { "False" },
        })];
        if done.is_some() {
            conditions.push(serde_json::json!({"type": "Completed", "status": "True"}));
        }
        status.conditions = Some(conditions);
        let globals = self.global_outputs();
        if !globals.is_empty() {
            let outputs = status.outputs.get_or_insert_with(Outputs::default);
            outputs.parameters = Some(globals);
        }
        if let Some((phase, message)) = done {
            status.phase = Some(phase);
            status.message = message;
            status.finished_at = Some(ts(self.now));
            self.wake = None;
        }
        status.nodes = Some(std::mem::take(&mut self.nodes));
    }

    /// Argo's `workflow.failures`: the failed and errored nodes as a JSON list.
    fn failures_json(&self) -> String {
        let mut list = Vec::new();
        for n in self.nodes.values() {
            if !failed_or_error(n.phase.as_deref()) {
                continue;
            }
            let template = n.template_name.clone().unwrap_or_default();
            let name = n.name.clone().unwrap_or_default();
            let pod = if n.node_type.as_deref() == Some("Pod") {
                pod_name(&self.wf_name, &template, &name)
            } else {
                String::new()
            };
            list.push(serde_json::json!({
                "displayName": n.display_name.clone().unwrap_or_default(),
                "message": n.message.clone().unwrap_or_default(),
                "templateName": template,
                "phase": n.phase.clone().unwrap_or_default(),
                "podName": pod,
                "finishedAt": n.finished_at.clone().unwrap_or_default(),
            }));
        }
        // Argo marshals a struct: fields in declaration order, not sorted.
        serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
    }

    /// Output parameters with a `globalName`, from every node, in finish order.
    fn global_outputs(&self) -> Vec<Parameter> {
        let mut found: Vec<(String, String, Parameter)> = Vec::new();
        for n in self.nodes.values() {
            if n.phase.as_deref() != Some(PHASE_SUCCEEDED) {
                continue;
            }
            for p in n.outputs.iter().flat_map(|o| o.parameters.iter().flatten()) {
                if let Some(global) = p.global_name.clone().filter(|g| !g.is_empty()) {
                    found.push((
                        n.finished_at.clone().unwrap_or_default(),
                        n.name.clone().unwrap_or_default(),
                        Parameter {
                            name: global,
                            value: p.value.clone(),
                            ..Default::default()
                        },
                    ));
                }
            }
        }
        found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let mut out: Vec<Parameter> = Vec::new();
        for (_, _, p) in found {
            // A later writer of the same global name wins, as in Argo.
            out.retain(|q| q.name != p.name);
            out.push(p);
        }
        out
    }

    pub(super) fn deadline_passed(&self) -> bool {
        self.deadline.is_some_and(|d| self.now > d)
    }

    /// Whether nothing new may start for a call (`on_exit`: part of an exit handler).
    pub(super) fn no_new_work(&self, on_exit: bool) -> bool {
        if self.suspended {
            return true;
        }
        match self.shutdown {
            Some(Shutdown::Terminate) => return true,
            Some(Shutdown::Stop) if !on_exit => return true,
            _ => {}
        }
        self.deadline_passed() && !on_exit
    }

    /// Whether running work of a call must stop (its template planners get `shutdown`).
    pub(super) fn stopping(&self, on_exit: bool) -> bool {
        self.no_new_work(on_exit) && !self.suspended
    }

    pub(super) fn wake_at(&mut self, t: Timestamp) {
        if self.wake.is_none_or(|w| t < w) {
            self.wake = Some(t);
        }
    }

    pub(super) fn id(&self, name: &str) -> String {
        node_id(&self.wf_name, name)
    }

    pub(super) fn node(&self, name: &str) -> Option<&NodeStatus> {
        self.nodes.get(&self.id(name))
    }

    /// Creates a node (or returns the existing one's id).
    pub(super) fn init_node(
        &mut self,
        frame: &Frame,
        node_type: &str,
        phase: &str,
        message: Option<String>,
    ) -> String {
        let id = self.id(&frame.node_name);
        if self.nodes.contains_key(&id) {
            return id;
        }
        let node = NodeStatus {
            id: Some(id.clone()),
            name: Some(frame.node_name.clone()),
            display_name: Some(frame.display_name.clone()),
            node_type: Some(node_type.into()),
            template_name: (frame.template_ref.is_none() && !frame.template_name.is_empty())
                .then(|| frame.template_name.clone()),
            template_ref: frame.template_ref.clone(),
            phase: Some(phase.into()),
            boundary_id: frame.boundary_id.clone(),
            message,
            started_at: Some(ts(self.now)),
            finished_at: fulfilled(Some(phase)).then(|| ts(self.now)),
            extra: template_scope(frame.src.as_ref(), &self.wf_name),
            inputs: frame
                .inputs
                .parameters
                .as_ref()
                .is_some_and(|p| !p.is_empty())
                .then(|| frame.inputs.clone()),
            ..Default::default()
        };
        self.nodes.insert(id.clone(), node);
        id
    }

    /// Sets a node's phase (never changing a completed node).
    pub(super) fn set_phase(&mut self, id: &str, phase: &str, message: Option<String>) {
        let now = ts(self.now);
        if let Some(n) = self.nodes.get_mut(id) {
            if fulfilled(n.phase.as_deref()) {
                return;
            }
            n.phase = Some(phase.into());
            if message.is_some() || fulfilled(Some(phase)) {
                n.message = message;
            }
            if fulfilled(Some(phase)) {
                n.finished_at = Some(now);
            }
        }
        if phase == PHASE_SUCCEEDED {
            // Global outputs are visible at once to what starts later in this pass, as Argo's
            // `addOutputsToGlobalScope`.
            let globals: Vec<(String, String)> = self
                .nodes
                .get(id)
                .and_then(|n| n.outputs.as_ref())
                .and_then(|o| o.parameters.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let g = p.global_name.clone().filter(|g| !g.is_empty())?;
                    Some((g, vars::param_text(p)?))
                })
                .collect();
            for (g, v) in globals {
                self.globals
                    .insert(format!("workflow.outputs.parameters.{g}"), v);
            }
        }
    }

    pub(super) fn add_child(&mut self, parent: &str, child: &str) {
        if let Some(p) = self.nodes.get_mut(parent) {
            let children = p.children.get_or_insert_with(Vec::new);
            if !children.iter().any(|c| c == child) {
                children.push(child.to_owned());
            }
        }
    }

    /// Argo's `getOutboundNodes`.
    pub(super) fn outbound(&self, id: &str) -> Vec<String> {
        self.outbound_depth(id, 0)
    }

    fn outbound_depth(&self, id: &str, depth: usize) -> Vec<String> {
        let Some(n) = self.nodes.get(id) else {
            return Vec::new();
        };
        if depth > 64 {
            return vec![id.to_owned()];
        }
        let children = n.children.clone().unwrap_or_default();
        match n.node_type.as_deref() {
            Some("Pod" | "Skipped" | "Suspend") => vec![id.to_owned()],
            Some("TaskGroup") if children.is_empty() => vec![id.to_owned()],
            Some("TaskGroup" | "Retry") => children.last().cloned().into_iter().collect(),
            _ => {
                let outbound = n.outbound_nodes.clone().unwrap_or_default();
                if outbound.is_empty() {
                    return vec![id.to_owned()];
                }
                outbound
                    .iter()
                    .flat_map(|o| self.outbound_depth(o, depth + 1))
                    .collect()
            }
        }
    }

    /// Creates an Error node for a call that cannot run.
    pub(super) fn error_node(
        &mut self,
        frame: &Frame,
        node_type: &str,
        e: &OperatorError,
    ) -> NodeStatus {
        let id = self.init_node(frame, node_type, PHASE_ERROR, Some(e.to_string()));
        self.set_phase(&id, PHASE_ERROR, Some(e.to_string()));
        self.nodes.get(&id).cloned().unwrap_or_default()
    }

    /// Resolves the template of a call: `(its source, the template)`.
    fn lookup(&self, call: &Call) -> Result<(Option<Source>, Template), OperatorError> {
        if let Some(inline) = &call.inline {
            return Ok((call.scope_src.clone(), (**inline).clone()));
        }
        let (src, name) = match &call.template_ref {
            Some(r) => (Source::of_ref(r), r.template.clone().unwrap_or_default()),
            None => (
                call.scope_src.clone(),
                call.template.clone().unwrap_or_default(),
            ),
        };
        match self.resolved.template(src.as_ref(), &name) {
            Some((_, t)) => Ok((src, t.clone())),
            None => Err(OperatorError::TemplateNotFound {
                node: call.node_name.clone(),
                template: name,
            }),
        }
    }

    /// Argo's `templateDefaults`: the workflow's defaults under every template's own fields
    /// (objects merge key by key, the template's value wins; lists are the template's).
    fn with_template_defaults(&self, tmpl: Template) -> Result<Template, OperatorError> {
        let Some(defaults) = self
            .resolved
            .spec
            .extra
            .get("templateDefaults")
            .filter(|d| d.is_object())
        else {
            return Ok(tmpl);
        };
        let encode = |e: serde_json::Error| OperatorError::Encode {
            what: format!("template '{}' with templateDefaults", tmpl.name),
            message: e.to_string(),
        };
        let own = serde_json::to_value(&tmpl).map_err(encode)?;
        let mut merged = defaults.clone();
        merge_json(&mut merged, own);
        serde_json::from_value(merged).map_err(encode)
    }

    /// Runs (or advances) one template invocation: Argo's `executeTemplate`. `None` when the
    /// node could not be created now (parallelism, suspend, shutdown).
    pub(super) fn execute(&mut self, call: &Call) -> Option<NodeStatus> {
        if let Some(n) = self.node(&call.node_name)
            && fulfilled(n.phase.as_deref())
        {
            return Some(n.clone());
        }
        let exists = self.node(&call.node_name).is_some();
        if !exists && self.no_new_work(call.on_exit) {
            return None;
        }
        if self.depth >= MAX_DEPTH {
            // A template that calls itself without end (Argo's maxStackDepth): an Error node,
            // never an exhausted stack.
            let frame = Frame {
                node_name: call.node_name.clone(),
                display_name: call.display_name.clone(),
                boundary_id: call.boundary_id.clone(),
                src: call.scope_src.clone(),
                template_name: call.template.clone().unwrap_or_default(),
                template_ref: call.template_ref.clone(),
                on_exit: call.on_exit,
                inputs: Inputs::default(),
            };
            return Some(self.error_node(&frame, "Pod", &OperatorError::MaxDepth));
        }
        self.depth += 1;
        // Each level of nesting costs tens of KiB of stack in debug builds; a reconcile runs on
        // whatever thread the shell gives it (2 MiB for tokio workers), so the stack grows on
        // the heap when little is left rather than overflowing.
        let node =
            stacker::maybe_grow(STACK_RED_ZONE, STACK_GROWTH, || self.execute_at_depth(call));
        self.depth -= 1;
        node
    }

    fn execute_at_depth(&mut self, call: &Call) -> Option<NodeStatus> {
        let mut frame = Frame {
            node_name: call.node_name.clone(),
            display_name: call.display_name.clone(),
            boundary_id: call.boundary_id.clone(),
            src: call.scope_src.clone(),
            template_name: call
                .template
                .clone()
                .or_else(|| call.template_ref.as_ref().and_then(|r| r.template.clone()))
                .unwrap_or_default(),
            template_ref: call.template_ref.clone(),
            on_exit: call.on_exit,
            inputs: Inputs::default(),
        };
        let (src, tmpl) = match self.lookup(call).and_then(|(src, t)| {
            let t = self.with_template_defaults(t)?;
            Ok((src, t))
        }) {
            Ok(found) => found,
            Err(e) => return Some(self.error_node(&frame, "Pod", &e)),
        };
        frame.src = src;
        frame.template_name = tmpl.name.clone();
        let node_type = node_type_of(&tmpl);
        let config_maps = (self.lookup, self.namespace.as_str());
        let inputs = match vars::process_inputs(
            &tmpl,
            &call.args,
            &call.artifacts,
            &self.globals,
            config_maps,
        ) {
            Ok(i) => i,
            Err(e) => return Some(self.error_node(&frame, node_type, &e)),
        };
        frame.inputs = inputs;
        let local = vars::local_scope(&self.globals, &frame.inputs);
        let held = match self.template_locks(&frame, &tmpl, call.on_exit) {
            Ok(held) => held,
            Err(waiting) => return *waiting,
        };
        let node = match tmpl.retry_strategy.clone() {
            Some(raw) => self.execute_retry(&frame, &tmpl, &local, &raw),
            None => self.execute_body(&frame, &tmpl, &local, None),
        };
        if let Some((holder, refs)) = held
            && node.as_ref().is_some_and(|n| fulfilled(n.phase.as_deref()))
        {
            self.locks.release(&holder, &refs);
            self.sync_status.released(&holder, &refs);
        }
        node
    }

    /// A template's `synchronization` (Argo's `executeTemplate` lock step): `Ok(Some((holder,
    /// locks)))` when held (released by the caller once the node is fulfilled), `Ok(None)`
    /// without locks (or while stopping: the node is then only wound down), `Err(node)` when
    /// the call must wait (a `Pending` placeholder node with Argo's message) or the block is
    /// invalid (an Error node).
    fn template_locks(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        on_exit: bool,
    ) -> Result<HeldLocks, Box<Option<NodeStatus>>> {
        let Some(block) = tmpl.extra.get(sync::FIELD).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let id = self.id(&frame.node_name);
        let existing = self.nodes.get(&id);
        let placeholder = existing.is_some_and(|n| {
            n.phase.as_deref() == Some(PHASE_PENDING)
                && sync::is_waiting_message(n.message.as_deref())
        });
        if existing.is_some() && !placeholder && self.stopping(on_exit) {
            return Ok(None);
        }
        if placeholder && let Some(s) = self.shutdown.filter(|_| self.stopping(on_exit)) {
            // Stopped while waiting: the node never ran; it leaves the queues.
            let holder = sync::holder_key(&self.namespace, &self.wf_name, Some(&id));
            if let Ok(refs) = sync::lock_refs(block, &self.namespace, "synchronization") {
                self.locks.release(&holder, &refs);
            }
            self.set_phase(&id, PHASE_FAILED, Some(s.message()));
            return Err(Box::new(self.nodes.get(&id).cloned()));
        }
        let node_type = if tmpl.retry_strategy.is_some() {
            "Retry"
        } else {
            node_type_of(tmpl)
        };
        let path = format!("template '{}'.synchronization", tmpl.name);
        let refs = match sync::lock_refs(block, &self.namespace, &path) {
            Ok(r) => r,
            Err(source) => {
                let e = OperatorError::Sync {
                    template: tmpl.name.clone(),
                    source,
                };
                return Err(Box::new(Some(self.error_node(frame, node_type, &e))));
            }
        };
        if refs.is_empty() {
            return Ok(None);
        }
        let holder = sync::holder_key(&self.namespace, &self.wf_name, Some(&id));
        let answer = self.locks.acquire(&LockRequest {
            holder: &holder,
            priority: self.priority,
            created: self.created,
            refs: &refs,
        });
        match answer {
            Ok(Acquire::Acquired) => {
                self.sync_status.acquired(&holder, &refs);
                if placeholder {
                    // The waiting placeholder gives way to the real node, created by the
                    // body as for a first run (its pod requested now).
                    if let Some(n) = self.nodes.remove(&id)
                        && n.node_type.as_deref() == Some("Pod")
                    {
                        self.active_pods = self.active_pods.saturating_sub(1);
                    }
                }
                Ok(Some((holder, refs)))
            }
            Ok(Acquire::Waiting { message, holders }) => {
                self.sync_status.waiting(&holders);
                self.sync_waits += 1;
                if existing.is_none() && self.no_new_work(on_exit) {
                    return Err(Box::new(None));
                }
                let id = self.init_node(frame, node_type, PHASE_PENDING, Some(message.clone()));
                if let Some(n) = self.nodes.get_mut(&id)
                    && placeholder
                {
                    n.message = Some(message);
                }
                Err(Box::new(self.nodes.get(&id).cloned()))
            }
            Err(source) => {
                let e = OperatorError::Sync {
                    template: tmpl.name.clone(),
                    source,
                };
                Err(Box::new(Some(self.error_node(frame, node_type, &e))))
            }
        }
    }

    /// The body of a template, by type.
    fn execute_body(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
        retries: Option<usize>,
    ) -> Option<NodeStatus> {
        let unsupported = |kind| OperatorError::Unsupported {
            template: tmpl.name.clone(),
            kind,
        };
        match tmpl.template_type() {
            Some(TemplateType::Container | TemplateType::Script) => {
                self.execute_pod(frame, tmpl, local, retries)
            }
            Some(TemplateType::Steps | TemplateType::Dag) => {
                let mut scope = local.clone();
                if let Some(r) = retries {
                    scope.insert("retries", r.to_string());
                }
                let rendered = match vars::render_template(tmpl, &scope) {
                    Ok(t) => t,
                    Err(e) => return Some(self.error_node(frame, node_type_of(tmpl), &e)),
                };
                if rendered.steps.is_some() {
                    self.execute_steps(frame, &rendered, &scope)
                } else {
                    self.execute_dag(frame, &rendered, &scope)
                }
            }
            Some(TemplateType::Suspend) => self.execute_suspend(frame, tmpl, local),
            Some(TemplateType::Resource) => self.execute_resource(frame, tmpl, local, retries),
            Some(TemplateType::Http) => Some(self.error_node(frame, "Pod", &unsupported("http"))),
            Some(TemplateType::Plugin) => {
                Some(self.error_node(frame, "Pod", &unsupported("plugin")))
            }
            Some(TemplateType::Data) => Some(self.error_node(frame, "Pod", &unsupported("data"))),
            Some(TemplateType::ContainerSet) => {
                let node = self.execute_pod(frame, tmpl, local, retries);
                self.container_children(frame, tmpl);
                node
            }
            None => Some(self.error_node(
                frame,
                "Pod",
                &OperatorError::Structure {
                    template: tmpl.name.clone(),
                    message: "template type unspecified".into(),
                },
            )),
        }
    }

    /// A template with a `retryStrategy`: a Retry node whose children are the attempts.
    fn execute_retry(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
        raw: &crate::workflow::types::RetryStrategy,
    ) -> Option<NodeStatus> {
        let id = self.id(&frame.node_name);
        let strategy = vars::render_value("retryStrategy", raw, local)
            .and_then(|r| RetryStrategy::parse(&tmpl.name, &r).map_err(OperatorError::Retry));
        let strategy = match strategy {
            Ok(s) => s,
            Err(e) => return Some(self.error_node(frame, "Retry", &e)),
        };
        if !self.nodes.contains_key(&id) {
            self.init_node(frame, "Retry", PHASE_RUNNING, None);
        }
        // Each round either advances the last attempt or decides on it; two rounds cover
        // "last attempt just failed → start the next".
        for _ in 0..3 {
            let children = self
                .nodes
                .get(&id)
                .and_then(|n| n.children.clone())
                .unwrap_or_default();
            let attempt_frame = |n: usize| Frame {
                node_name: format!("{}({n})", frame.node_name),
                display_name: format!("{}({n})", frame.display_name),
                boundary_id: frame.boundary_id.clone(),
                ..frame.clone()
            };
            let Some(last_id) = children.last().cloned() else {
                if let Some(child) = self.execute_body(&attempt_frame(0), tmpl, local, Some(0)) {
                    let cid = child.id.clone().unwrap_or_default();
                    self.add_child(&id, &cid);
                }
                break;
            };
            let last = self.nodes.get(&last_id).cloned().unwrap_or_default();
            if !fulfilled(last.phase.as_deref()) {
                let n = children.len() - 1;
                let updated = self.execute_body(&attempt_frame(n), tmpl, local, Some(n));
                if updated
                    .as_ref()
                    .is_some_and(|u| fulfilled(u.phase.as_deref()))
                {
                    continue;
                }
                self.set_phase(&id, PHASE_RUNNING, None);
                if let Some(daemoned) = updated.and_then(|u| u.extra.get("daemoned").cloned())
                    && let Some(node) = self.nodes.get_mut(&id)
                {
                    node.extra.insert("daemoned".into(), daemoned);
                }
                break;
            }
            if !failed_or_error(last.phase.as_deref()) {
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.outputs = last.outputs.clone();
                }
                self.set_phase(&id, PHASE_SUCCEEDED, None);
                break;
            }
            let attempts: Vec<Attempt> = children
                .iter()
                .filter_map(|c| self.nodes.get(c))
                .filter(|c| failed_or_error(c.phase.as_deref()))
                .map(|c| attempt_of(c, self.now))
                .collect();
            let expression = match raw.expression.as_deref().filter(|e| !e.trim().is_empty()) {
                None => None,
                Some(src) => {
                    let mut scope = local.clone();
                    for (k, v) in retry::expression_scope(&attempts) {
                        scope.insert(k, v);
                    }
                    let result = expr::parse(src).and_then(|ast| expr::eval(&ast, &scope));
                    match result {
                        Ok(expr::Value::Bool(b)) => Some(b),
                        Ok(other) => Some(matches!(other, expr::Value::Str(ref s) if s == "true")),
                        Err(e) => {
                            let e = OperatorError::Render {
                                template: tmpl.name.clone(),
                                field: "retryStrategy.expression".into(),
                                source: e,
                            };
                            self.set_phase(&id, PHASE_ERROR, Some(e.to_string()));
                            break;
                        }
                    }
                }
            };
            let decision = retry::decide(
                &strategy,
                &attempts,
                &DecideInput {
                    now: self.now,
                    workflow_deadline: self.deadline,
                    shutdown: self
                        .shutdown
                        .filter(|_| self.stopping(frame.on_exit))
                        .map(Shutdown::as_str),
                    expression,
                    transient: &self.transient,
                },
            );
            match decision {
                RetryDecision::RetryNow => {
                    let n = children.len();
                    if let Some(child) = self.execute_body(&attempt_frame(n), tmpl, local, Some(n))
                    {
                        let cid = child.id.clone().unwrap_or_default();
                        self.add_child(&id, &cid);
                        if let Some(node) = self.nodes.get_mut(&id) {
                            node.message = None;
                        }
                        if fulfilled(child.phase.as_deref()) {
                            continue;
                        }
                    }
                    break;
                }
                RetryDecision::RetryAt { at, wait } => {
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.message = Some(format!("Backoff for {}", humanize(wait)));
                    }
                    self.wake_at(at);
                    break;
                }
                RetryDecision::GiveUp { phase, reason } => {
                    let phase = match phase {
                        AttemptPhase::Failed => PHASE_FAILED,
                        AttemptPhase::Error => PHASE_ERROR,
                    };
                    if let Some(node) = self.nodes.get_mut(&id) {
                        node.outputs = last.outputs.clone();
                    }
                    self.set_phase(&id, phase, Some(reason));
                    break;
                }
            }
        }
        self.nodes.get(&id).cloned()
    }

    /// A container or script template: one pod per node.
    fn execute_pod(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
        retries: Option<usize>,
    ) -> Option<NodeStatus> {
        let id = self.id(&frame.node_name);
        let pod = pod_name(&self.wf_name, &tmpl.name, &frame.node_name);
        let Some(node) = self.nodes.get(&id).cloned() else {
            if self.no_new_work(frame.on_exit) {
                return None;
            }
            if self.parallelism.is_some_and(|p| self.active_pods >= p) {
                return None;
            }
            let request = match self.pod_request(frame, tmpl, local, retries, &pod, &id) {
                Ok(r) => r,
                Err(e) => return Some(self.error_node(frame, "Pod", &e)),
            };
            self.init_node(frame, "Pod", PHASE_PENDING, None);
            if let Some(n) = self.nodes.get_mut(&id) {
                n.progress = Some("0/1".into());
            }
            self.requested.insert(pod.clone());
            self.actions.push(Action::CreatePod(Box::new(request)));
            self.active_pods += 1;
            return self.nodes.get(&id).cloned();
        };
        if fulfilled(node.phase.as_deref()) {
            return Some(node);
        }
        let observed = self.obs.get(&id);
        let done = observed.is_some_and(|o| {
            o.outputs_reported
                && matches!(
                    o.phase,
                    PodPhase::Succeeded | PodPhase::Failed | PodPhase::Error
                )
        });
        if !done && let Some(reason) = self.kill_reason(&node, tmpl, frame.on_exit) {
            self.delete_pod(&pod, &id);
            self.complete_pod(&id, PHASE_FAILED, Some(reason), None, tmpl);
            return self.nodes.get(&id).cloned();
        }
        match observed {
            None if node.phase.as_deref() == Some(PHASE_RUNNING) => {
                self.complete_pod(
                    &id,
                    PHASE_ERROR,
                    Some(reasons::POD_DELETED.into()),
                    None,
                    tmpl,
                );
            }
            None if self.requested.contains(&pod) => {}
            None => {
                // Requested but not seen: ask again under the same name (idempotent).
                self.requested.insert(pod.clone());
                match self.pod_request(frame, tmpl, local, retries, &pod, &id) {
                    Ok(r) => self.actions.push(Action::CreatePod(Box::new(r))),
                    Err(e) => {
                        self.complete_pod(&id, PHASE_ERROR, Some(e.to_string()), None, tmpl);
                    }
                }
            }
            Some(o) => {
                if let Some(n) = self.nodes.get_mut(&id) {
                    if let Some(h) = &o.host_node_name {
                        n.host_node_name = Some(h.clone());
                    }
                    if let Some(ip) = &o.pod_ip {
                        n.pod_ip = Some(ip.clone());
                    }
                    if let Some(s) = o.started_at {
                        n.started_at = Some(ts(s));
                    }
                }
                let phase = match o.phase {
                    PodPhase::Pending => Some(PHASE_PENDING),
                    PodPhase::Running => Some(PHASE_RUNNING),
                    PodPhase::Succeeded if o.outputs_reported => Some(PHASE_SUCCEEDED),
                    PodPhase::Failed if o.outputs_reported => Some(PHASE_FAILED),
                    PodPhase::Error if o.outputs_reported => Some(PHASE_ERROR),
                    // Ended, report not in yet: still running as far as the node goes.
                    _ => Some(PHASE_RUNNING),
                };
                match phase {
                    Some(p) if fulfilled(Some(p)) => {
                        let outputs = vars::pod_outputs(tmpl, o.outputs.as_ref());
                        let finished = o.finished_at;
                        let message = o.message.clone().filter(|_| p != PHASE_SUCCEEDED);
                        self.complete_pod(&id, p, message, outputs, tmpl);
                        if let (Some(f), Some(n)) = (finished, self.nodes.get_mut(&id)) {
                            n.finished_at = Some(ts(f));
                        }
                    }
                    Some(p) => {
                        // A daemon is "up" once its pod runs: dependents may go on (Argo's
                        // `daemoned: true`); its boundary stops it when it finishes.
                        let daemon = p == PHASE_RUNNING && is_daemon(tmpl);
                        if let Some(n) = self.nodes.get_mut(&id) {
                            n.phase = Some(p.into());
                            n.message = o.message.clone();
                            if daemon {
                                n.extra.insert("daemoned".into(), Value::Bool(true));
                            }
                        }
                        self.pod_wake(&node, tmpl);
                    }
                    None => {}
                }
            }
        }
        self.nodes.get(&id).cloned()
    }

    /// The `Container` children of a containerSet node (Argo's `executeContainerSet`: one per
    /// container, `<node>.<container>`, linked by the set's dependencies) and their phases from
    /// the pod's container statuses (`pod::observe_containers`). Once the pod node is over, a
    /// container that never finished ends Failed (Succeeded if the node succeeded).
    fn container_children(&mut self, frame: &Frame, tmpl: &Template) {
        let id = self.id(&frame.node_name);
        let Some(pod_phase) = self.nodes.get(&id).map(|n| n.phase.clone()) else {
            return;
        };
        let links = crate::workflow::pod::container_set::child_links(&frame.node_name, tmpl);
        let mut children = Vec::new();
        for (_, child) in &links {
            if children.contains(child) {
                continue;
            }
            let display = child
                .strip_prefix(&format!("{}.", frame.node_name))
                .unwrap_or(child)
                .to_owned();
            let child_frame = Frame {
                node_name: child.clone(),
                display_name: display,
                boundary_id: Some(id.clone()),
                src: frame.src.clone(),
                template_name: String::new(),
                template_ref: None,
                on_exit: frame.on_exit,
                inputs: Default::default(),
            };
            self.init_node(&child_frame, "Container", PHASE_PENDING, None);
            children.push(child.clone());
        }
        for (parent, child) in &links {
            let (parent, child) = (self.id(parent), self.id(child));
            self.add_child(&parent, &child);
        }
        for child in children {
            let cid = self.id(&child);
            // Over, or not yet over while the pod node is (an early success): the pod decides.
            let observed = self.obs.get(&cid).filter(|o| {
                !fulfilled(pod_phase.as_deref())
                    || matches!(
                        o.phase,
                        PodPhase::Succeeded | PodPhase::Failed | PodPhase::Error
                    )
            });
            let observed = observed.map(|o| {
                let phase = match o.phase {
                    PodPhase::Pending => PHASE_PENDING,
                    PodPhase::Running => PHASE_RUNNING,
                    PodPhase::Succeeded => PHASE_SUCCEEDED,
                    PodPhase::Failed => PHASE_FAILED,
                    PodPhase::Error => PHASE_ERROR,
                };
                (phase, o.message.clone(), o.started_at, o.finished_at)
            });
            match observed {
                Some((phase, message, started, finished)) => {
                    if let (Some(s), Some(n)) = (started, self.nodes.get_mut(&cid))
                        && !fulfilled(n.phase.as_deref())
                    {
                        n.started_at = Some(ts(s));
                    }
                    self.set_phase(&cid, phase, message);
                    if let (Some(f), Some(n)) = (finished, self.nodes.get_mut(&cid)) {
                        n.finished_at = Some(ts(f));
                    }
                }
                None if fulfilled(pod_phase.as_deref()) => {
                    if pod_phase.as_deref() == Some(PHASE_SUCCEEDED) {
                        self.set_phase(&cid, PHASE_SUCCEEDED, None);
                    } else {
                        let why = "pod ended before the container finished".to_owned();
                        self.set_phase(&cid, PHASE_FAILED, Some(why));
                    }
                }
                None => {}
            }
        }
    }

    fn complete_pod(
        &mut self,
        id: &str,
        phase: &str,
        message: Option<String>,
        outputs: Option<Outputs>,
        _tmpl: &Template,
    ) {
        if let Some(n) = self.nodes.get_mut(id) {
            if fulfilled(n.phase.as_deref()) {
                return;
            }
            n.outputs = outputs;
            n.progress = Some("1/1".into());
        }
        self.set_phase(id, phase, message);
    }

    /// Stops the daemons a finished steps/DAG node started (Argo's `killDaemonedChildren`):
    /// their pods are deleted and their nodes (and Retry parents) end Succeeded.
    pub(super) fn stop_daemons(&mut self, boundary: &str) {
        let daemons: Vec<(String, Option<String>, Option<String>)> = self
            .nodes
            .values()
            .filter(|n| {
                n.boundary_id.as_deref() == Some(boundary)
                    && n.extra.get("daemoned") == Some(&Value::Bool(true))
                    && !fulfilled(n.phase.as_deref())
            })
            .map(|n| {
                (
                    n.id.clone().unwrap_or_default(),
                    n.node_type.clone(),
                    n.name.clone(),
                )
            })
            .collect();
        for (id, node_type, name) in daemons {
            if node_type.as_deref() == Some("Pod") {
                let template = self
                    .nodes
                    .get(&id)
                    .and_then(|n| n.template_name.clone())
                    .unwrap_or_default();
                let pod = pod_name(&self.wf_name, &template, name.as_deref().unwrap_or(""));
                self.delete_pod(&pod, &id);
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.progress = Some("1/1".into());
                }
            }
            self.set_phase(&id, PHASE_SUCCEEDED, None);
        }
    }

    fn delete_pod(&mut self, pod: &str, id: &str) {
        if self.deleted.insert(pod.to_owned()) {
            self.actions.push(Action::DeletePod {
                pod_name: pod.to_owned(),
                node_id: id.to_owned(),
            });
        }
    }

    /// Why a running pod node must be stopped now, if it must.
    fn kill_reason(&self, node: &NodeStatus, tmpl: &Template, on_exit: bool) -> Option<String> {
        if let Some(s) = self.shutdown
            && self.stopping(on_exit)
        {
            return Some(s.message());
        }
        if self.deadline_passed() && !on_exit {
            return Some(reasons::DEADLINE.into());
        }
        let started = node
            .started_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())?;
        if let Some(secs) = template_deadline(tmpl)
            && retry::deadline_exceeded(started, secs, self.now)
        {
            return Some(reasons::DEADLINE.into());
        }
        if let Some(t) = tmpl.timeout.as_deref()
            && retry::template_timed_out(started, t, self.now).unwrap_or(false)
        {
            return Some(reasons::DEADLINE.into());
        }
        None
    }

    /// Wakes the workflow when a running pod's own deadline passes.
    fn pod_wake(&mut self, node: &NodeStatus, tmpl: &Template) {
        let Some(started) = node
            .started_at
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
        else {
            return;
        };
        let mut limits = Vec::new();
        if let Some(secs) = template_deadline(tmpl) {
            limits.push(SignedDuration::from_secs(secs));
        }
        if let Some(d) = tmpl
            .timeout
            .as_deref()
            .and_then(|t| retry::parse_go_duration(t).ok())
        {
            limits.push(d);
        }
        if let Some(limit) = limits.into_iter().min()
            && let Ok(at) = started.checked_add(limit + SignedDuration::from_secs(1))
        {
            self.wake_at(at);
        }
    }

    /// The pod request of a node: the template rendered with the pod's variables.
    fn pod_request(
        &self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
        retries: Option<usize>,
        pod: &str,
        id: &str,
    ) -> Result<PodRequest, OperatorError> {
        let mut scope = local.clone();
        scope.insert("pod.name", pod.to_owned());
        scope.insert("node.name", frame.node_name.clone());
        if let Some(r) = retries {
            scope.insert("retries", r.to_string());
        }
        if let Some(outputs) = &tmpl.outputs {
            for p in outputs.parameters.iter().flatten() {
                if let Some(path) = p
                    .value_from
                    .as_ref()
                    .and_then(|v| v.get("path"))
                    .and_then(Value::as_str)
                {
                    scope.insert(
                        format!("outputs.parameters.{}.path", p.name),
                        path.to_owned(),
                    );
                }
            }
            for a in outputs.artifacts.iter().flatten() {
                if let (Some(name), Some(path)) = (
                    a.get("name").and_then(Value::as_str),
                    a.get("path").and_then(Value::as_str),
                ) {
                    scope.insert(format!("outputs.artifacts.{name}.path"), path.to_owned());
                }
            }
        }
        let mut rendered = vars::render_template(tmpl, &scope)?;
        if frame.inputs.parameters.is_some() || frame.inputs.artifacts.is_some() {
            rendered.inputs = Some(frame.inputs.clone());
        }
        let mut limits: Vec<i64> = Vec::new();
        if let Some(secs) = template_deadline(&rendered) {
            limits.push(secs);
        }
        if let Some(d) = rendered
            .timeout
            .as_deref()
            .and_then(|t| retry::parse_go_duration(t).ok())
        {
            // Whole seconds, rounded up, so a "1500ms" timeout is not cut to 1 s.
            let secs = d.as_secs() + i64::from(d.subsec_nanos() > 0);
            limits.push(secs.max(1));
        }
        if let Some(deadline) = self.deadline
            && !frame.on_exit
        {
            let left = deadline.duration_since(self.now).as_secs();
            limits.push(left.max(1));
        }
        Ok(PodRequest {
            namespace: self.namespace.clone(),
            workflow_name: self.wf_name.clone(),
            workflow_uid: self.uid.clone(),
            node_id: id.to_owned(),
            node_name: frame.node_name.clone(),
            pod_name: pod.to_owned(),
            capture_result: rendered.script.is_some() || self.capture_all_results,
            template: rendered,
            spec: self.pod_spec.clone(),
            active_deadline_seconds: limits.into_iter().min(),
            artifact_repository: None,
        })
    }

    /// A resource template (Argo's `resource:`): the shell executes the action, then the node
    /// waits on the live object until its success or failure condition holds, reading it
    /// again every [`resource::POLL_SECONDS`]. A node without an observation (first pass, or
    /// a restarted controller) asks for its action again: the shell's actions are idempotent.
    fn execute_resource(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
        retries: Option<usize>,
    ) -> Option<NodeStatus> {
        let id = self.id(&frame.node_name);
        let mut scope = local.clone();
        scope.insert(
            "pod.name",
            pod_name(&self.wf_name, &tmpl.name, &frame.node_name),
        );
        scope.insert("node.name", frame.node_name.clone());
        if let Some(r) = retries {
            scope.insert("retries", r.to_string());
        }
        let parsed = vars::render_template(tmpl, &scope).and_then(|rendered| {
            let raw = rendered.resource.clone().unwrap_or(Value::Null);
            let spec =
                resource::ResourceSpec::parse(&tmpl.name, &raw).map_err(OperatorError::Resource)?;
            Ok((rendered, spec))
        });
        let Some(node) = self.nodes.get(&id).cloned() else {
            if self.no_new_work(frame.on_exit) {
                return None;
            }
            let spec = match parsed {
                Ok((_, spec)) => spec,
                Err(e) => return Some(self.error_node(frame, "Pod", &e)),
            };
            self.init_node(frame, "Pod", PHASE_PENDING, None);
            if let Some(n) = self.nodes.get_mut(&id) {
                n.progress = Some("0/1".into());
            }
            self.request_resource(&id, &spec, None);
            return self.nodes.get(&id).cloned();
        };
        if fulfilled(node.phase.as_deref()) {
            return Some(node);
        }
        let (rendered, spec) = match parsed {
            Ok(p) => p,
            Err(e) => {
                self.complete_pod(&id, PHASE_ERROR, Some(e.to_string()), None, tmpl);
                return self.nodes.get(&id).cloned();
            }
        };
        if let Some(reason) = self.kill_reason(&node, tmpl, frame.on_exit) {
            self.complete_pod(&id, PHASE_FAILED, Some(reason), None, tmpl);
            return self.nodes.get(&id).cloned();
        }
        let Some(seen) = self.resources.get(&id) else {
            // A restarted controller: a node that already waits on its object reads it again
            // rather than re-running the action (a `generateName` create would make another).
            let known = node
                .extra
                .get(RESOURCE_REF)
                .and_then(|v| serde_json::from_value(v.clone()).ok());
            self.request_resource(&id, &spec, known);
            return self.nodes.get(&id).cloned();
        };
        if let Some(error) = &seen.error {
            self.complete_pod(&id, PHASE_FAILED, Some(error.clone()), None, tmpl);
            return self.nodes.get(&id).cloned();
        }
        let live = seen.live.clone().unwrap_or(Value::Null);
        let verdict = if resource::waits(&spec) {
            resource::verdict(&spec, &live)
        } else {
            resource::Verdict::Succeeded
        };
        match verdict {
            resource::Verdict::Succeeded => {
                let declared = rendered
                    .outputs
                    .as_ref()
                    .and_then(|o| o.parameters.clone())
                    .unwrap_or_default();
                // A delete leaves nothing to read outputs from (Argo saves none either).
                let params = if spec.action == resource::ResourceAction::Delete {
                    Ok(Vec::new())
                } else {
                    resource::output_parameters(&tmpl.name, &declared, &live)
                };
                match params {
                    Ok(params) => {
                        let reported = Outputs {
                            parameters: (!params.is_empty()).then_some(params),
                            ..Default::default()
                        };
                        let outputs = vars::pod_outputs(tmpl, Some(&reported));
                        self.complete_pod(&id, PHASE_SUCCEEDED, None, outputs, tmpl);
                    }
                    Err(e) => {
                        self.complete_pod(&id, PHASE_FAILED, Some(e.to_string()), None, tmpl);
                    }
                }
            }
            resource::Verdict::Failed(message) => {
                self.complete_pod(&id, PHASE_FAILED, Some(message), None, tmpl);
            }
            resource::Verdict::Waiting => {
                if node.phase.as_deref() != Some(PHASE_RUNNING) {
                    self.set_phase(&id, PHASE_RUNNING, None);
                }
                if let (Ok(target), Some(n)) =
                    (serde_json::to_value(&seen.target), self.nodes.get_mut(&id))
                {
                    n.extra.insert(RESOURCE_REF.into(), target);
                }
                let next = seen
                    .observed_at
                    .checked_add(SignedDuration::from_secs(resource::POLL_SECONDS))
                    .unwrap_or(self.now);
                if next <= self.now {
                    let target = seen.target.clone();
                    self.request_resource(&id, &spec, Some(target));
                } else {
                    self.wake_at(next);
                }
                self.pod_wake(&node, tmpl);
            }
        }
        self.nodes.get(&id).cloned()
    }

    /// Queues the action of a resource node (once per pass), or a `get` of `poll`.
    fn request_resource(
        &mut self,
        id: &str,
        spec: &resource::ResourceSpec,
        poll: Option<resource::ResourceIdentity>,
    ) {
        if !self.requested.insert(format!("resource/{id}")) {
            return;
        }
        let (action, target) = match poll {
            Some(t) => (resource::ResourceAction::Get, t),
            None => (
                spec.action,
                resource::identity_of(&spec.manifest, &self.namespace),
            ),
        };
        let mut manifest = spec.manifest.clone();
        if let Some(meta) = manifest.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(target.namespace.clone()));
        }
        self.actions
            .push(Action::Resource(Box::new(resource::ResourceRequest {
                workflow_name: self.wf_name.clone(),
                workflow_uid: self.uid.clone(),
                node_id: id.to_owned(),
                action,
                merge_strategy: spec.merge_strategy,
                manifest,
                target,
                set_owner_reference: spec.set_owner_reference,
            })));
    }

    /// A suspend template: Running until its duration has passed or it is resumed.
    fn execute_suspend(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
    ) -> Option<NodeStatus> {
        let id = self.id(&frame.node_name);
        if !self.nodes.contains_key(&id) {
            if self.no_new_work(frame.on_exit) {
                return None;
            }
            self.init_node(frame, "Suspend", PHASE_RUNNING, None);
        }
        if let Some(s) = self.shutdown
            && self.stopping(frame.on_exit)
        {
            self.set_phase(&id, PHASE_FAILED, Some(s.message()));
            return self.nodes.get(&id).cloned();
        }
        if self.deadline_passed() && !frame.on_exit {
            self.set_phase(&id, PHASE_FAILED, Some(reasons::DEADLINE.into()));
            return self.nodes.get(&id).cloned();
        }
        let duration = tmpl
            .suspend
            .as_ref()
            .and_then(|s| s.get("duration"))
            .map(crate::workflow::types::any_string)
            .filter(|d| !d.trim().is_empty());
        if let Some(text) = duration {
            let text = expr::render(&text, local).unwrap_or(text);
            let Ok(d) = retry::parse_string_to_duration(&text) else {
                let e = OperatorError::SuspendDuration {
                    template: tmpl.name.clone(),
                    value: text,
                };
                self.set_phase(&id, PHASE_ERROR, Some(e.to_string()));
                return self.nodes.get(&id).cloned();
            };
            let started = self
                .nodes
                .get(&id)
                .and_then(|n| n.started_at.as_deref())
                .and_then(|t| t.parse::<Timestamp>().ok())
                .unwrap_or(self.now);
            let end = started.checked_add(d).unwrap_or(Timestamp::MAX);
            if self.now >= end {
                self.set_phase(&id, PHASE_SUCCEEDED, None);
            } else {
                self.wake_at(end);
            }
        }
        self.nodes.get(&id).cloned()
    }
}

/// Whether a lifecycle hook's `expression` is true over `scope` (an expression that fails
/// or is not a boolean does not fire, as Argo logs and skips it).
pub(super) fn hook_fires(hook: &Value, scope: &Scope) -> bool {
    let Some(src) = hook.get("expression").and_then(Value::as_str) else {
        return false;
    };
    matches!(
        expr::parse(src).and_then(|ast| expr::eval(&ast, scope)),
        Ok(expr::Value::Bool(true))
    )
}

/// The call of a lifecycle hook: its `template`/`templateRef`, its own arguments over `args`.
pub(super) fn hook_call(
    hook: &Value,
    node_name: String,
    display_name: String,
    args: &[Parameter],
) -> Option<Call> {
    let template = hook
        .get("template")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let template_ref: Option<TemplateRef> = hook
        .get("templateRef")
        .and_then(|r| serde_json::from_value(r.clone()).ok());
    if template.is_none() && template_ref.is_none() {
        return None;
    }
    let mut merged = args.to_vec();
    let own: Vec<Parameter> = hook
        .get("arguments")
        .and_then(|a| a.get("parameters"))
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    for p in own {
        merged.retain(|q| q.name != p.name);
        merged.push(p);
    }
    Some(Call {
        node_name,
        display_name,
        template,
        template_ref,
        args: merged,
        ..Default::default()
    })
}

/// The workflow's exit handler (Argo's `GetExitHook`): `onExit` with the workflow's
/// arguments, else `hooks.exit` (its own arguments over the workflow's).
fn exit_hook(
    spec: &WorkflowSpec,
    args: &[Parameter],
) -> Option<(Option<String>, Option<TemplateRef>, Vec<Parameter>)> {
    if let Some(t) = spec.on_exit.clone().filter(|s| !s.is_empty()) {
        return Some((Some(t), None, args.to_vec()));
    }
    let hook = spec.hooks.as_ref()?.get("exit")?;
    let template = hook
        .get("template")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let template_ref: Option<TemplateRef> = hook
        .get("templateRef")
        .and_then(|r| serde_json::from_value(r.clone()).ok());
    if template.is_none() && template_ref.is_none() {
        return None;
    }
    let mut merged = args.to_vec();
    let own: Vec<Parameter> = hook
        .get("arguments")
        .and_then(|a| a.get("parameters"))
        .and_then(|p| serde_json::from_value(p.clone()).ok())
        .unwrap_or_default();
    for p in own {
        merged.retain(|q| q.name != p.name);
        merged.push(p);
    }
    Some((template, template_ref, merged))
}

/// Deep-merges `over` into `base`: objects key by key, anything else replaced.
fn merge_json(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_json(existing, v);
                    }
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Argo's `templateScope` of a node: where its template was resolved.
fn template_scope(src: Option<&Source>, wf_name: &str) -> crate::workflow::types::Extra {
    let scope = match src {
        None => format!("local/{wf_name}"),
        Some(s) if s.cluster => format!("cluster/{}", s.name),
        Some(s) => format!("namespaced/{}", s.name),
    };
    let mut extra = crate::workflow::types::Extra::new();
    extra.insert("templateScope".into(), Value::String(scope));
    extra
}

/// Argo's node type for a template.
pub(super) fn node_type_of(tmpl: &Template) -> &'static str {
    match tmpl.template_type() {
        Some(TemplateType::Steps) => "Steps",
        Some(TemplateType::Dag) => "DAG",
        Some(TemplateType::Suspend) => "Suspend",
        _ => "Pod",
    }
}

/// Whether a template runs as a daemon (`daemon: true`).
fn is_daemon(tmpl: &Template) -> bool {
    tmpl.extra.get("daemon") == Some(&Value::Bool(true))
}

/// A template's `activeDeadlineSeconds` (an integer or a string holding one).
fn template_deadline(tmpl: &Template) -> Option<i64> {
    match tmpl.active_deadline_seconds.as_ref()? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A finished attempt as the retry module sees it.
fn attempt_of(node: &NodeStatus, now: Timestamp) -> Attempt {
    let parse = |t: Option<&String>| t.and_then(|t| t.parse::<Timestamp>().ok());
    let started = parse(node.started_at.as_ref()).unwrap_or(now);
    Attempt {
        phase: if node.phase.as_deref() == Some(PHASE_ERROR) {
            AttemptPhase::Error
        } else {
            AttemptPhase::Failed
        },
        exit_code: node
            .outputs
            .as_ref()
            .and_then(|o| o.exit_code.as_deref())
            .and_then(|c| c.parse().ok()),
        message: node.message.clone().unwrap_or_default(),
        started_at: started,
        finished_at: parse(node.finished_at.as_ref()).unwrap_or(started),
    }
}

/// A wait as Argo's `humanize.Duration` prints it ("5 seconds", "1 minute 30 seconds").
fn humanize(d: SignedDuration) -> String {
    let total = d.as_secs().max(0);
    let unit = |n: i64, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(unit(h, "hour"));
    }
    if m > 0 {
        parts.push(unit(m, "minute"));
    }
    if s > 0 || parts.is_empty() {
        parts.push(unit(s, "second"));
    }
    parts.join(" ")
}
