//! Workflow actions as pure functions over a Workflow: suspend, resume, stop, terminate, retry
//! and resubmit, with Argo's rules (`argo suspend|resume|stop|terminate|retry|resubmit`, the
//! Argo server's `PUT /api/v1/workflows/{ns}/{name}/{action}`).
//!
//! Owns: deciding what each action changes. The caller (API handler, CLI through the API) reads
//! the Workflow, applies the action, and writes the result back with the object's
//! `resourceVersion` (a conflict re-reads and re-applies), then deletes the pods [`Retried`]
//! names. No function here touches the network or reads the clock: `now` is an input.
//!
//! Rules (Argo Workflows `workflow/util/util.go`, v3.5+):
//! - **suspend** sets `spec.suspend: true`; refused on a completed workflow ("cannot suspend
//!   completed workflows").
//! - **resume** unsets `spec.suspend` and completes every active suspend node (type `Suspend`,
//!   phase `Running`) as `Succeeded` at `now`; a suspend node's output parameter that is
//!   `valueFrom.supplied` and has no value takes its `default`, or the resume is refused (Argo:
//!   "raw output parameter ... has not been set and does not have a default value").
//! - **stop** / **terminate** set `spec.shutdown` to `Stop` / `Terminate`; refused on a completed
//!   workflow ("cannot shutdown a completed workflow"). Stop runs exit handlers, Terminate does
//!   not: that difference is the operator's.
//! - **retry** ("retry failed nodes only"): only a `Failed` or `Error` workflow. Failed/errored
//!   execution nodes (`Pod`) and everything below them are removed from `.status.nodes` (their
//!   pods are returned for deletion); every group or retry node (`DAG`, `TaskGroup`, `Steps`,
//!   `StepGroup`, `Retry`) above such a node is reset to `Running` (a `Skipped` one stays `Skipped`) with its message and `finishedAt`
//!   cleared; the `onExit` node and its descendants are removed; succeeded nodes are kept as they
//!   are, so they are not re-run (a DAG lists a task's dependents as its children: a succeeded
//!   dependency above a failed task is not reset). The workflow goes back to `Running`, its `finishedAt`,
//!   `message` and `spec.shutdown` are cleared, a `spec.activeDeadlineSeconds: 0` (how a
//!   terminated workflow was stopped) is removed, the `completed` label is dropped and the
//!   `phase` label is `Running`; parameters may be overridden.
//! - **resubmit**: a new Workflow from the old one's spec: `generateName` is the old
//!   `generateName`, or the old name plus `-`; user labels and annotations are carried over except
//!   the ones the controller or the server owns (phase, completed, archiving status, creator),
//!   plus `workflows.argoproj.io/resubmitted-from-workflow: <old name>`; parameters may be
//!   overridden (`-p name=value`: the given ones replace and come first, as Argo's
//!   `overrideParameters`). cairn also clears `spec.shutdown` and `spec.suspend` so the copy of a
//!   stopped workflow runs.
//!
//! Invariant: every refusal names the workflow and what was expected of it.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::node::{LABEL_COMPLETED, pod_name};
use super::types::{Arguments, NodeStatus, Parameter, Workflow};

/// Label Argo keeps in sync with the workflow's phase.
pub const LABEL_PHASE: &str = "workflows.argoproj.io/phase";
/// Label naming the workflow a resubmitted one came from.
pub const LABEL_RESUBMITTED_FROM: &str = "workflows.argoproj.io/resubmitted-from-workflow";
/// Label Argo sets while archiving a workflow.
pub const LABEL_ARCHIVING_STATUS: &str = "workflows.argoproj.io/workflow-archiving-status";
/// Creator labels, set by the server from the request's identity (never copied).
pub const CREATOR_LABELS: [&str; 3] = [
    "workflows.argoproj.io/creator",
    "workflows.argoproj.io/creator-email",
    "workflows.argoproj.io/creator-preferred-username",
];

/// Errors of the actions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The workflow has finished, and the action only applies to a running one.
    #[error(
        "cannot {action} workflow {workflow}: it has completed (phase {phase}); expected a running workflow"
    )]
    Completed {
        /// The action.
        action: &'static str,
        /// `namespace/name`.
        workflow: String,
        /// Its phase.
        phase: String,
    },
    /// Retry of a workflow that is not Failed or Error.
    #[error("cannot retry workflow {workflow} in phase {phase}: expected Failed or Error")]
    NotRetryable {
        /// `namespace/name`.
        workflow: String,
        /// Its phase (`""` when it has none).
        phase: String,
    },
    /// A `-p` parameter is not `NAME=VALUE`.
    #[error("parameter {given:?}: expected NAME=VALUE")]
    ParameterSyntax {
        /// What was given.
        given: String,
    },
    /// Parameters were given for a workflow without `spec.arguments.parameters` (Argo refuses).
    #[error("workflow {workflow} has no spec.arguments.parameters to override")]
    NoParameters {
        /// `namespace/name`.
        workflow: String,
    },
    /// A suspend node's supplied output parameter has neither a value nor a default.
    #[error(
        "cannot resume workflow {workflow}: node {node} output parameter {parameter} (valueFrom.supplied) has not been set and has no default"
    )]
    UnsetSuppliedOutput {
        /// `namespace/name`.
        workflow: String,
        /// Node name.
        node: String,
        /// Parameter name.
        parameter: String,
    },
}

/// Whether a workflow phase is final.
pub fn is_completed(phase: Option<&str>) -> bool {
    matches!(phase, Some("Succeeded" | "Failed" | "Error"))
}

fn ident(wf: &Workflow) -> String {
    format!(
        "{}/{}",
        wf.metadata.namespace.as_deref().unwrap_or_default(),
        wf.metadata.name.as_deref().unwrap_or_default()
    )
}

fn phase_of(wf: &Workflow) -> Option<&str> {
    wf.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn refuse_completed(wf: &Workflow, action: &'static str) -> Result<(), ActionError> {
    if is_completed(phase_of(wf)) {
        return Err(ActionError::Completed {
            action,
            workflow: ident(wf),
            phase: phase_of(wf).unwrap_or_default().to_owned(),
        });
    }
    Ok(())
}

/// `suspend`: `spec.suspend = true`.
pub fn suspend(wf: &Workflow) -> Result<Workflow, ActionError> {
    refuse_completed(wf, "suspend")?;
    let mut out = wf.clone();
    out.spec.suspend = Some(true);
    Ok(out)
}

/// `resume`: unsets `spec.suspend` and completes the active suspend nodes at `now`.
pub fn resume(wf: &Workflow, now: Timestamp) -> Result<Workflow, ActionError> {
    let mut out = wf.clone();
    out.spec.suspend = None;
    let workflow = ident(wf);
    if let Some(nodes) = out.status.as_mut().and_then(|s| s.nodes.as_mut()) {
        for node in nodes.values_mut() {
            let active_suspend = node.node_type.as_deref() == Some("Suspend")
                && node.phase.as_deref() == Some("Running");
            if !active_suspend {
                continue;
            }
            let node_name = node.name.clone().unwrap_or_default();
            if let Some(params) = node.outputs.as_mut().and_then(|o| o.parameters.as_mut()) {
                for p in params.iter_mut() {
                    let supplied = p
                        .value_from
                        .as_ref()
                        .is_some_and(|v| v.get("supplied").is_some());
                    if supplied && p.value.is_none() {
                        match p.default.clone() {
                            Some(d) => p.value = Some(d),
                            None => {
                                return Err(ActionError::UnsetSuppliedOutput {
                                    workflow,
                                    node: node_name,
                                    parameter: p.name.clone(),
                                });
                            }
                        }
                    }
                }
            }
            node.phase = Some("Succeeded".to_owned());
            node.finished_at = Some(now.to_string());
        }
    }
    Ok(out)
}

/// `stop`: `spec.shutdown = Stop` (exit handlers still run).
pub fn stop(wf: &Workflow) -> Result<Workflow, ActionError> {
    shutdown(wf, "stop", "Stop")
}

/// `terminate`: `spec.shutdown = Terminate` (exit handlers do not run).
pub fn terminate(wf: &Workflow) -> Result<Workflow, ActionError> {
    shutdown(wf, "terminate", "Terminate")
}

fn shutdown(wf: &Workflow, action: &'static str, strategy: &str) -> Result<Workflow, ActionError> {
    refuse_completed(wf, action)?;
    let mut out = wf.clone();
    out.spec.shutdown = Some(strategy.to_owned());
    Ok(out)
}

/// Parses `-p NAME=VALUE` arguments (the value may contain `=`).
pub fn parse_parameters(given: &[String]) -> Result<Vec<(String, String)>, ActionError> {
    given
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(ActionError::ParameterSyntax { given: s.clone() }),
        })
        .collect()
}

/// Argo's `overrideParameters`: the given parameters first, then the workflow's others.
fn override_parameters(wf: &mut Workflow, params: &[(String, String)]) -> Result<(), ActionError> {
    if params.is_empty() {
        return Ok(());
    }
    let workflow = ident(wf);
    let existing = wf
        .spec
        .arguments
        .as_ref()
        .and_then(|a| a.parameters.clone())
        .ok_or(ActionError::NoParameters { workflow })?;
    let given: BTreeSet<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    let mut out: Vec<Parameter> = params
        .iter()
        .map(|(k, v)| Parameter {
            name: k.clone(),
            value: Some(Value::String(v.clone())),
            ..Default::default()
        })
        .collect();
    out.extend(
        existing
            .into_iter()
            .filter(|p| !given.contains(p.name.as_str())),
    );
    wf.spec
        .arguments
        .get_or_insert_with(Arguments::default)
        .parameters = Some(out);
    Ok(())
}

/// Applies submit-time `-p NAME=VALUE` parameters (Argo's `ApplySubmitOpts`): a parameter that
/// exists gets the value, a new one is appended.
pub fn apply_submit_parameters(wf: &mut Workflow, params: &[(String, String)]) {
    if params.is_empty() {
        return;
    }
    let list = wf
        .spec
        .arguments
        .get_or_insert_with(Arguments::default)
        .parameters
        .get_or_insert_with(Vec::new);
    for (k, v) in params {
        match list.iter_mut().find(|p| &p.name == k) {
            Some(p) => p.value = Some(Value::String(v.clone())),
            None => list.push(Parameter {
                name: k.clone(),
                value: Some(Value::String(v.clone())),
                ..Default::default()
            }),
        }
    }
}

/// The outcome of [`retry`]: the workflow to write back and the pods to delete first.
#[derive(Debug, Clone, PartialEq)]
pub struct Retried {
    /// The workflow, back to Running with its failed nodes removed.
    pub workflow: Workflow,
    /// Pods of removed nodes (they must go before the operator recreates the nodes).
    pub pods_to_delete: Vec<String>,
}

fn is_failed(node: &NodeStatus) -> bool {
    matches!(node.phase.as_deref(), Some("Failed" | "Error"))
}

fn is_execution(node: &NodeStatus) -> bool {
    matches!(
        node.node_type.as_deref(),
        Some("Pod" | "Container" | "HTTP" | "Plugin")
    )
}

fn is_group_or_retry(node: &NodeStatus) -> bool {
    matches!(
        node.node_type.as_deref(),
        Some("DAG" | "TaskGroup" | "StepGroup" | "Steps" | "Retry")
    )
}

/// `retry`: see the module docs.
pub fn retry(
    wf: &Workflow,
    params: &[(String, String)],
    now: Timestamp,
) -> Result<Retried, ActionError> {
    let phase = phase_of(wf).unwrap_or_default();
    if !matches!(phase, "Failed" | "Error") {
        return Err(ActionError::NotRetryable {
            workflow: ident(wf),
            phase: phase.to_owned(),
        });
    }
    let name = wf.metadata.name.clone().unwrap_or_default();
    let on_exit = format!("{name}.onExit");
    let mut out = wf.clone();
    override_parameters(&mut out, params)?;
    let old: BTreeMap<String, NodeStatus> = wf
        .status
        .as_ref()
        .and_then(|s| s.nodes.clone())
        .unwrap_or_default();

    // In a DAG a task's dependents are its children too, so a node can have several parents.
    let mut parents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, n) in &old {
        for c in n.children.iter().flatten() {
            parents.entry(c.as_str()).or_default().push(id.as_str());
        }
    }
    let descendants = |start: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.to_owned()];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(n) = old.get(&id) {
                stack.extend(n.children.iter().flatten().cloned());
            }
        }
        seen
    };
    let any_descendant_succeeded = |start: &str| -> bool {
        descendants(start)
            .iter()
            .filter(|id| id.as_str() != start)
            .any(|id| old.get(id).and_then(|n| n.phase.as_deref()) == Some("Succeeded"))
    };

    let mut to_delete: BTreeSet<String> = BTreeSet::new();
    let mut to_reset: BTreeSet<String> = BTreeSet::new();
    for (id, node) in &old {
        let in_exit = node
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(&on_exit));
        if in_exit {
            to_delete.extend(descendants(id));
            continue;
        }
        if !(is_failed(node) && is_execution(node)) || any_descendant_succeeded(id) {
            continue;
        }
        to_delete.extend(descendants(id));
        // Every ancestor is visited once (a malformed status may hold a cycle); only group and
        // retry nodes are reset, as Argo's resetPath does: a succeeded pod above (a DAG
        // dependency) stays as it is.
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = parents.get(id.as_str()).cloned().unwrap_or_default();
        while let Some(p) = stack.pop() {
            if !seen.insert(p) {
                continue;
            }
            if old.get(p).is_some_and(is_group_or_retry) {
                to_reset.insert(p.to_owned());
            }
            stack.extend(parents.get(p).into_iter().flatten().copied());
        }
    }

    let mut pods: Vec<String> = Vec::new();
    let mut nodes: BTreeMap<String, NodeStatus> = BTreeMap::new();
    for (id, node) in &old {
        if to_delete.contains(id) {
            if node.node_type.as_deref() == Some("Pod") {
                let template = node
                    .template_ref
                    .as_ref()
                    .and_then(|r| r.template.clone())
                    .or_else(|| node.template_name.clone())
                    .unwrap_or_default();
                let pod = pod_name(&name, &template, node.name.as_deref().unwrap_or_default());
                if !pods.contains(&pod) {
                    pods.push(pod);
                }
            }
            continue;
        }
        let mut kept = node.clone();
        if to_reset.contains(id) {
            if kept.phase.as_deref() != Some("Skipped") {
                kept.phase = Some("Running".to_owned());
            }
            kept.message = None;
            kept.finished_at = None;
        }
        if let Some(children) = kept.children.as_mut() {
            children.retain(|c| !to_delete.contains(c));
        }
        if let Some(outbound) = kept.outbound_nodes.as_mut() {
            outbound.retain(|c| !to_delete.contains(c));
        }
        nodes.insert(id.clone(), kept);
    }

    let labels = out.metadata.labels.get_or_insert_with(Default::default);
    labels.remove(LABEL_COMPLETED);
    labels.remove(LABEL_ARCHIVING_STATUS);
    labels.insert(LABEL_PHASE.to_owned(), "Running".to_owned());
    out.spec.shutdown = None;
    if out.spec.active_deadline_seconds == Some(0) {
        out.spec.active_deadline_seconds = None;
    }
    let status = out.status.get_or_insert_with(Default::default);
    status.phase = Some("Running".to_owned());
    status.message = None;
    status.finished_at = None;
    status.started_at = Some(now.to_string());
    status.nodes = Some(nodes);
    upsert_condition(&mut status.conditions, "Completed", "False");
    Ok(Retried {
        workflow: out,
        pods_to_delete: pods,
    })
}

fn upsert_condition(conditions: &mut Option<Vec<Value>>, kind: &str, value: &str) {
    let list = conditions.get_or_insert_with(Vec::new);
    let entry = serde_json::json!({ "type": kind, "status": value });
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(c) => *c = entry,
        None => list.push(entry),
    }
}

/// `resubmit`: a new Workflow (to be created with `generateName`) from `wf`'s spec.
pub fn resubmit(wf: &Workflow, params: &[(String, String)]) -> Result<Workflow, ActionError> {
    let old_name = wf.metadata.name.clone().unwrap_or_default();
    let generate_name = match wf.metadata.generate_name.as_deref() {
        Some(g) if !g.is_empty() => g.to_owned(),
        _ => format!("{old_name}-"),
    };
    let mut labels: BTreeMap<String, String> = wf
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| {
            !(k == LABEL_PHASE
                || k == LABEL_COMPLETED
                || k == LABEL_ARCHIVING_STATUS
                || CREATOR_LABELS.contains(&k.as_str()))
        })
        .collect();
    labels.insert(LABEL_RESUBMITTED_FROM.to_owned(), old_name);
    let mut out = Workflow {
        types: wf.types,
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: wf.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: wf.metadata.annotations.clone(),
            owner_references: wf.metadata.owner_references.clone(),
            ..Default::default()
        },
        spec: wf.spec.clone(),
        status: None,
        extra: Default::default(),
    };
    out.spec.shutdown = None;
    out.spec.suspend = None;
    override_parameters(&mut out, params)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
