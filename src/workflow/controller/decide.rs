//! The controller shell's own decisions, as pure functions: what it saw of a workflow's pods
//! ([`observations`]), which pods `podGC` deletes ([`gc_plan`]), when `ttlStrategy` deletes
//! the Workflow ([`ttl_decision`]), the labels Argo keeps on a Workflow ([`workflow_labels`]).
//! The operator decides everything else; this module decides only what Argo's controller does
//! around it.
//!
//! Rules (Argo Workflows docs "Pod GC", "Cost optimisation: limit the total number of
//! workflows and pods", field reference `PodGC`, `TTLStrategy`; controller `operator.go`
//! `markWorkflowPhase`, `gc/gc_controller.go`):
//! - `podGC.strategy`: `OnPodCompletion` deletes each pod once it completed (Succeeded, Failed,
//!   Error), `OnPodSuccess` each pod once it Succeeded, `OnWorkflowCompletion` every pod once
//!   the workflow completed, `OnWorkflowSuccess` every pod once the workflow Succeeded; empty
//!   or absent: none. Only pods matching `podGC.labelSelector.matchLabels` (when given);
//!   `deleteDelayDuration` (a Go duration) postpones each deletion from the pod's (or the
//!   workflow's) finish. An unknown strategy is an error naming the field (Argo's validation
//!   rejects it).
//! - `ttlStrategy`: a Failed/Error workflow uses `secondsAfterFailure`, a Succeeded one
//!   `secondsAfterSuccess`, else `secondsAfterCompletion`; the Workflow is deleted once
//!   `finishedAt + seconds` has passed.
//! - Labels: `workflows.argoproj.io/phase` is the workflow's phase; `workflows.argoproj.io/completed`
//!   is `"true"` once it completed and `"false"` before.
//! - Observations: a pod's node is its `workflows.argoproj.io/node-id` annotation; the task
//!   result is the WorkflowTaskResult named after the node id. A pod that ended while its
//!   executor's report is still incomplete gets [`REPORT_GRACE`] to complete it, after which the
//!   node is allowed to complete without outputs (Argo likewise marks task results complete
//!   after a timeout), so a step killed before it could report never blocks its workflow.
//! - Early success: a pod whose only container is `main` and whose executor reported
//!   `Succeeded` with exit code 0 (report complete) is observed Succeeded even while the kubelet
//!   still shows `main` running: the executor writes that report after the command exited and
//!   its outputs were collected, as the wrapper's last act before exiting with that code, and
//!   the kubelet notices the exit only at its next relist (up to about a second later; the
//!   workflow benchmark counts that wait as controller overhead on every DAG level). The node's
//!   `finishedAt` is the report's write time. Argo waits for the pod (its `wait` container
//!   ends last); the outcome is the same. A pod with sidecars, a failed run or an incomplete
//!   report still waits for the kubelet.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::workflow::actions::{LABEL_PHASE, is_completed};
use crate::workflow::executor::MAIN_CONTAINER;
use crate::workflow::node::{
    ANNOTATION_NODE_ID, LABEL_COMPLETED, Observations, PodObservation, PodPhase,
};
use crate::workflow::retry::parse_go_duration;
use crate::workflow::types::WorkflowTaskResult;

/// How long after a pod ended the controller waits for an incomplete executor report.
pub const REPORT_GRACE: SignedDuration = SignedDuration::from_secs(30);

/// Errors of the shell's decisions: a Workflow field the controller cannot act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// `spec.podGC.strategy` is not one of Argo's strategies.
    #[error(
        "workflow {workflow}: spec.podGC.strategy {found:?}: expected OnPodCompletion, OnPodSuccess, OnWorkflowCompletion or OnWorkflowSuccess"
    )]
    PodGcStrategy {
        /// `namespace/name`.
        workflow: String,
        /// The value found.
        found: String,
    },
    /// `spec.podGC.deleteDelayDuration` is not a duration.
    #[error(
        "workflow {workflow}: spec.podGC.deleteDelayDuration {found:?}: expected a duration such as 30s"
    )]
    PodGcDelay {
        /// `namespace/name`.
        workflow: String,
        /// The value found.
        found: String,
    },
    /// A `spec.ttlStrategy` field is not a non-negative integer.
    #[error("workflow {workflow}: spec.ttlStrategy.{field}: expected a number of seconds >= 0")]
    Ttl {
        /// `namespace/name`.
        workflow: String,
        /// The field.
        field: &'static str,
    },
}

/// `spec.podGC.strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GcStrategy {
    /// Each pod once it completed.
    OnPodCompletion,
    /// Each pod once it succeeded.
    OnPodSuccess,
    /// All pods once the workflow completed.
    OnWorkflowCompletion,
    /// All pods once the workflow succeeded.
    OnWorkflowSuccess,
}

/// A parsed `spec.podGC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodGc {
    /// The strategy.
    pub strategy: GcStrategy,
    /// `labelSelector.matchLabels`.
    pub match_labels: BTreeMap<String, String>,
    /// `deleteDelayDuration`.
    pub delay: SignedDuration,
}

impl PodGc {
    /// Parses `spec.podGC`; `Ok(None)` when there is no strategy.
    pub fn from_spec(workflow: &str, spec: Option<&Value>) -> Result<Option<PodGc>, DecideError> {
        let Some(spec) = spec else { return Ok(None) };
        let strategy = match spec.get("strategy").and_then(Value::as_str).unwrap_or("") {
            "" => return Ok(None),
            "OnPodCompletion" => GcStrategy::OnPodCompletion,
            "OnPodSuccess" => GcStrategy::OnPodSuccess,
            "OnWorkflowCompletion" => GcStrategy::OnWorkflowCompletion,
            "OnWorkflowSuccess" => GcStrategy::OnWorkflowSuccess,
            other => {
                return Err(DecideError::PodGcStrategy {
                    workflow: workflow.to_owned(),
                    found: other.to_owned(),
                });
            }
        };
        let match_labels = spec
            .pointer("/labelSelector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let delay = match spec.get("deleteDelayDuration").and_then(Value::as_str) {
            None | Some("") => SignedDuration::ZERO,
            Some(text) => parse_go_duration(text).map_err(|_| DecideError::PodGcDelay {
                workflow: workflow.to_owned(),
                found: text.to_owned(),
            })?,
        };
        Ok(Some(PodGc {
            strategy,
            match_labels,
            delay,
        }))
    }
}

/// What the GC needs to know of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcPod {
    /// Pod name.
    pub name: String,
    /// Observed phase.
    pub phase: PodPhase,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// What [`gc_plan`] decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// Pods to delete now.
    pub delete: Vec<String>,
    /// When to look again for deletions still delayed.
    pub recheck_after: Option<SignedDuration>,
}

/// Which pods `podGC` deletes at `now`.
pub fn gc_plan(
    gc: &PodGc,
    workflow_phase: Option<&str>,
    workflow_finished_at: Option<Timestamp>,
    pods: &[GcPod],
    now: Timestamp,
) -> GcPlan {
    let mut plan = GcPlan::default();
    let wf_done = is_completed(workflow_phase);
    for pod in pods {
        if !gc
            .match_labels
            .iter()
            .all(|(k, v)| pod.labels.get(k) == Some(v))
        {
            continue;
        }
        let pod_done = matches!(
            pod.phase,
            PodPhase::Succeeded | PodPhase::Failed | PodPhase::Error
        );
        let since = match gc.strategy {
            GcStrategy::OnPodCompletion if pod_done => pod.finished_at,
            GcStrategy::OnPodSuccess if pod.phase == PodPhase::Succeeded => pod.finished_at,
            GcStrategy::OnWorkflowCompletion if wf_done => workflow_finished_at,
            GcStrategy::OnWorkflowSuccess if workflow_phase == Some("Succeeded") => {
                workflow_finished_at
            }
            _ => continue,
        };
        let due = since
            .unwrap_or(now)
            .checked_add(gc.delay)
            .unwrap_or(Timestamp::MAX);
        if due <= now {
            plan.delete.push(pod.name.clone());
        } else {
            let wait = due.duration_since(now);
            plan.recheck_after = Some(plan.recheck_after.map_or(wait, |w| w.min(wait)));
        }
    }
    plan
}

/// What `ttlStrategy` says at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlDecision {
    /// No TTL applies (none set, or the workflow has not finished).
    Keep,
    /// Delete the Workflow now.
    Delete,
    /// Look again after this long.
    After(SignedDuration),
}

/// Applies `spec.ttlStrategy` (see the module docs).
pub fn ttl_decision(
    workflow: &str,
    ttl: Option<&Value>,
    phase: Option<&str>,
    finished_at: Option<Timestamp>,
    now: Timestamp,
) -> Result<TtlDecision, DecideError> {
    let (Some(ttl), true) = (ttl, is_completed(phase)) else {
        return Ok(TtlDecision::Keep);
    };
    let field = |name: &'static str| -> Result<Option<i64>, DecideError> {
        match ttl.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .filter(|n| *n >= 0)
                .map(Some)
                .ok_or(DecideError::Ttl {
                    workflow: workflow.to_owned(),
                    field: name,
                }),
        }
    };
    let specific = match phase {
        Some("Succeeded") => field("secondsAfterSuccess")?,
        _ => field("secondsAfterFailure")?,
    };
    let Some(seconds) = specific.or(field("secondsAfterCompletion")?) else {
        return Ok(TtlDecision::Keep);
    };
    let due = finished_at
        .unwrap_or(now)
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX);
    Ok(if due <= now {
        TtlDecision::Delete
    } else {
        TtlDecision::After(due.duration_since(now))
    })
}

/// The labels Argo keeps on a Workflow for `phase`, applied to `labels`; returns whether any
/// changed.
pub fn workflow_labels(labels: &mut BTreeMap<String, String>, phase: Option<&str>) -> bool {
    let mut changed = false;
    let mut set = |k: &str, v: &str| {
        if labels.get(k).map(String::as_str) != Some(v) {
            labels.insert(k.to_owned(), v.to_owned());
            changed = true;
        }
    };
    if let Some(p) = phase.filter(|p| !p.is_empty()) {
        set(LABEL_PHASE, p);
    }
    set(
        LABEL_COMPLETED,
        if is_completed(phase) { "true" } else { "false" },
    );
    changed
}

/// The observations of a workflow's pods (see the module docs), and when to look again for a
/// report still within its grace.
pub fn observations(
    pods: &[Pod],
    results: &[WorkflowTaskResult],
    now: Timestamp,
) -> (Observations, Option<SignedDuration>) {
    let by_name: BTreeMap<&str, &WorkflowTaskResult> = results
        .iter()
        .filter_map(|r| Some((r.metadata.name.as_deref()?, r)))
        .collect();
    let mut out = Observations::new();
    let mut recheck: Option<SignedDuration> = None;
    for pod in pods {
        let Some(node_id) = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_NODE_ID))
        else {
            continue;
        };
        let result = by_name.get(node_id.as_str()).copied();
        let mut obs: PodObservation = crate::workflow::pod::observe(pod, result);
        if let Some(result) = result {
            early_success(pod, result, &mut obs);
        }
        let ended = matches!(obs.phase, PodPhase::Succeeded | PodPhase::Failed);
        if ended && !obs.outputs_reported {
            let since = obs.finished_at.unwrap_or(now);
            let due = since.checked_add(REPORT_GRACE).unwrap_or(Timestamp::MAX);
            if due <= now {
                obs.outputs_reported = true;
            } else {
                let wait = due.duration_since(now);
                recheck = Some(recheck.map_or(wait, |w| w.min(wait)));
            }
        }
        out.insert(node_id.clone(), obs);
        // A containerSet pod's Container child nodes (empty for other pods).
        out.extend(crate::workflow::pod::observe_containers(pod));
    }
    (out, recheck)
}

/// Applies the early-success rule (module docs) to `obs`, the observation of `pod`.
fn early_success(pod: &Pod, result: &WorkflowTaskResult, obs: &mut PodObservation) {
    let running = matches!(obs.phase, PodPhase::Pending | PodPhase::Running);
    let only_main = pod
        .spec
        .as_ref()
        .is_some_and(|s| matches!(s.containers.as_slice(), [c] if c.name == MAIN_CONTAINER));
    let succeeded = result.phase.as_deref() == Some("Succeeded")
        && result.outputs.as_ref().and_then(|o| o.exit_code.as_deref()) == Some("0");
    if !(running && only_main && succeeded && obs.outputs_reported) {
        return;
    }
    obs.phase = PodPhase::Succeeded;
    obs.message = None;
    obs.finished_at = report_time(result);
}

/// When the executor wrote its report: the latest `managedFields` time, else the creation time.
fn report_time(result: &WorkflowTaskResult) -> Option<Timestamp> {
    let meta = &result.metadata;
    meta.managed_fields
        .iter()
        .flatten()
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0))
}

/// An observation for a node whose pod could not be created or built: an Error carrying the
/// reason, complete (no report can come).
pub fn failed_creation(pod_name: &str, message: String, now: Timestamp) -> PodObservation {
    PodObservation {
        pod_name: pod_name.to_owned(),
        phase: PodPhase::Error,
        message: Some(message),
        started_at: None,
        finished_at: Some(now),
        host_node_name: None,
        pod_ip: None,
        outputs: None,
        outputs_reported: true,
    }
}

#[cfg(test)]
mod tests;
