//! [`observe`]: a node's pod (and the executor's WorkflowTaskResult) → [`PodObservation`].
//!
//! Follows Argo's `assessNodeStatus` / `inferFailedReason` / `getPendingReason`
//! (argoproj/argo-workflows `workflow/controller/operator.go`):
//! - pod `Pending` → Pending, message `<reason>: <message>` of the first waiting container, else
//!   of the `Unschedulable` condition;
//! - `Running` → Running; `Succeeded` → Succeeded;
//! - `Failed` → the pod's own `status.message` when set (Failed: e.g. `DeadlineExceeded`'s "Pod
//!   was active on the node longer than the specified deadline"); otherwise the containers in
//!   Argo's order (init containers, `main`, the others): a container still waiting → Error
//!   `Pod failed before <c> container starts due to <reason>: <message>`; a non-zero exit →
//!   `<c>: <reason> (exit code N)[: <message>]`, Error for `init`, Failed for `main` and
//!   sidecars (a sidecar's 137/143 is ignored: it was stopped); `main` exited 0 → Succeeded;
//! - any other phase → Error `Unexpected pod phase for <pod>: <phase>`.
//!
//! Deliberate differences, both because cairn's pod has no `wait` container:
//! - `main` terminated decides the phase even while the pod still runs (sidecars): Argo's wait
//!   container would stop the sidecars; here the controller deletes the pod.
//! - A container waiting for a reason in [`TERMINAL_WAITING_REASONS`] is an Error at once.
//!   Argo leaves such a pod Pending (until a deadline), which is one of its most reported
//!   complaints; the issue asks that "a pod that cannot be created (bad image...) fails that
//!   node with the server's message". `ErrImagePull` (the first failed pull) stays Pending, so
//!   one transient registry failure is retried by the kubelet; the switch to `ImagePullBackOff`
//!   (the kubelet giving the pull up for a back-off period) is the grace.
//!
//! A Failed `main` takes the executor's message from a Failed/Error task result when there is
//! one: it names the output that could not be collected where the pod only says `exit code 64`.
//!
//! `outputs_reported` is true when the task result carries
//! `workflows.argoproj.io/report-outputs-completed=true`, or when no report can come: the pod is
//! over (Error, or Failed/Succeeded) and either has no executor (annotation
//! `workflows.cairn.dev/executor=none`) or `main` never ran the wrapper (never started). A pod
//! whose wrapper ran but left no complete report (killed by SIGKILL, OOM of the wrapper itself)
//! stays `false`: the controller bounds that wait (Argo too marks such task results complete
//! after a timeout), since [`observe`] takes no clock.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{ANNOTATION_EXECUTOR, EXECUTOR_NONE};
use crate::workflow::executor::MAIN_CONTAINER;
use crate::workflow::node::{LABEL_REPORT_OUTPUTS_COMPLETED, PodObservation, PodPhase};
use crate::workflow::types::{Outputs, WorkflowTaskResult};

/// Waiting reasons that never resolve by themselves, so the node is an Error at once.
pub const TERMINAL_WAITING_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
];

/// Pull failures the kubelet resolves by itself on a later attempt (its own pull throttling, a
/// registry asking to slow down, a network timeout): an `ImagePullBackOff` naming one of them
/// stays Pending, as Argo leaves it, instead of failing the node. A burst of pods of one image
/// meets the kubelet's `registryPullQPS` this way.
pub const TRANSIENT_PULL_FAILURES: &[&str] = &[
    "pull QPS exceeded",
    "toomanyrequests",
    "TooManyRequests",
    "i/o timeout",
    "connection reset by peer",
    "TLS handshake timeout",
];

/// Observes a node's pod. Pure.
pub fn observe(pod: &Pod, result: Option<&WorkflowTaskResult>) -> PodObservation {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let inits = status
        .and_then(|s| s.init_container_statuses.as_deref())
        .unwrap_or_default();
    let ctrs = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    let main = ctrs.iter().find(|c| c.name == MAIN_CONTAINER);
    let main_terminated = main.and_then(|c| c.state.as_ref()?.terminated.as_ref());
    let pod_phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");

    let set = super::container_set::set_members(pod);
    let (phase, message) = if let Some(members) = &set {
        set_phase(pod, members, inits, ctrs)
    } else if pod_phase == "Failed" {
        failed(pod, inits, ctrs)
    } else if let Some(t) = main_terminated {
        if t.exit_code == 0 {
            (PodPhase::Succeeded, None)
        } else {
            (
                PodPhase::Failed,
                Some(terminated_message(MAIN_CONTAINER, t)),
            )
        }
    } else {
        match pod_phase {
            "Pending" | "Running" => match terminal_waiting(inits.iter().chain(ctrs)) {
                Some(message) => (PodPhase::Error, Some(message)),
                None if pod_phase == "Running" => (PodPhase::Running, None),
                None => (PodPhase::Pending, pending_reason(pod)),
            },
            "Succeeded" => (PodPhase::Succeeded, None),
            other => (
                PodPhase::Error,
                Some(format!("Unexpected pod phase for {pod_name}: {other}")),
            ),
        }
    };

    // The executor knows why it failed a run whose command may have exited 0 (an output that
    // could not be collected: exit 64); its message replaces the bare exit-code wording.
    let message = match (main_terminated, result) {
        (Some(t), Some(r))
            if phase == PodPhase::Failed
                && message.as_deref() == Some(terminated_message(MAIN_CONTAINER, t).as_str())
                && matches!(r.phase.as_deref(), Some("Failed" | "Error")) =>
        {
            r.message.clone().or(message)
        }
        _ => message,
    };
    let mut outputs = result.and_then(|r| r.outputs.clone());
    // The exit code comes from the pod (as Argo's controller sets it), whatever the report says.
    if let Some(t) = main_terminated {
        outputs.get_or_insert_with(Outputs::default).exit_code = Some(t.exit_code.to_string());
    }
    let report_complete = result
        .and_then(|r| r.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_REPORT_OUTPUTS_COMPLETED))
        .is_some_and(|v| v == "true");
    let over = matches!(
        phase,
        PodPhase::Succeeded | PodPhase::Failed | PodPhase::Error
    );
    let wrapper_ran = main_terminated.is_some_and(|t| t.started_at.is_some())
        || main.is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
    let executor_less = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_EXECUTOR))
        .is_some_and(|v| v == EXECUTOR_NONE);
    // A containerSet without a `main` container reports nothing (Argo: outputs come from `main`).
    let no_reporter = set
        .as_ref()
        .is_some_and(|m| !m.iter().any(|n| n == MAIN_CONTAINER));
    let outputs_reported =
        report_complete || (over && (executor_less || no_reporter || !wrapper_ran));

    let started_at = main
        .and_then(|c| {
            let s = c.state.as_ref()?;
            s.running
                .as_ref()
                .and_then(|r| r.started_at.as_ref())
                .or_else(|| s.terminated.as_ref().and_then(|t| t.started_at.as_ref()))
        })
        .or_else(|| status.and_then(|s| s.start_time.as_ref()))
        .map(|t: &Time| t.0);
    let finished_at = if over {
        inits
            .iter()
            .chain(ctrs)
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
            .map(|t| t.0)
            .max()
    } else {
        None
    };

    PodObservation {
        pod_name,
        phase,
        message,
        started_at,
        finished_at,
        host_node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        pod_ip: status.and_then(|s| s.pod_ip.clone()),
        outputs,
        outputs_reported,
    }
}

/// The pod node's phase of a containerSet pod: over only when every container of the set is
/// (a container ending early, even `main`, does not end the node while others run). A failed
/// set takes the message of the container that failed first, preferring a command's own
/// failure over the wrappers that then did not run (exit 64). Pod-level failures (deadline,
/// init container, image pull) as for any pod.
fn set_phase(
    pod: &Pod,
    members: &[String],
    inits: &[ContainerStatus],
    ctrs: &[ContainerStatus],
) -> (PodPhase, Option<String>) {
    let pod_phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    let phases = super::container_set::container_phases(pod, members);
    let all_over = !phases.is_empty() && phases.iter().all(|c| ctr_terminated(ctrs, &c.name));
    if all_over {
        let mut failed: Vec<_> = phases
            .iter()
            .filter(|c| c.phase != PodPhase::Succeeded)
            .collect();
        failed.sort_by_key(|c| (c.phase == PodPhase::Error, c.finished_at));
        return match failed.first() {
            None => (PodPhase::Succeeded, None),
            Some(c) => (PodPhase::Failed, c.message.clone()),
        };
    }
    match pod_phase {
        "Failed" => failed(pod, inits, ctrs),
        "Pending" | "Running" => match terminal_waiting(inits.iter().chain(ctrs)) {
            Some(message) => (PodPhase::Error, Some(message)),
            None if pod_phase == "Running" => (PodPhase::Running, None),
            None => (PodPhase::Pending, pending_reason(pod)),
        },
        "Succeeded" => (PodPhase::Succeeded, None),
        other => (
            PodPhase::Error,
            Some(format!(
                "Unexpected pod phase for {}: {other}",
                pod.metadata.name.as_deref().unwrap_or_default()
            )),
        ),
    }
}

fn ctr_terminated(ctrs: &[ContainerStatus], name: &str) -> bool {
    ctrs.iter()
        .find(|c| c.name == name)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.terminated.is_some())
}

/// `<c>: <reason> (exit code N)[: <message>]`, Argo's wording.
fn terminated_message(
    container: &str,
    t: &k8s_openapi::api::core::v1::ContainerStateTerminated,
) -> String {
    let reason = t.reason.as_deref().unwrap_or("Error");
    let mut msg = format!("{container}: {reason} (exit code {})", t.exit_code);
    if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
        msg.push_str(": ");
        msg.push_str(m);
    }
    msg
}

/// `<reason>[: <message>]` of the first container waiting for a terminal reason.
fn terminal_waiting<'a>(statuses: impl Iterator<Item = &'a ContainerStatus>) -> Option<String> {
    statuses.into_iter().find_map(|c| {
        let w = c.state.as_ref()?.waiting.as_ref()?;
        let reason = w.reason.as_deref()?;
        let transient = reason == "ImagePullBackOff"
            && w.message
                .as_deref()
                .is_some_and(|m| TRANSIENT_PULL_FAILURES.iter().any(|t| m.contains(t)));
        (TERMINAL_WAITING_REASONS.contains(&reason) && !transient).then(|| {
            format!(
                "{}: {}",
                c.name,
                reason_message(reason, w.message.as_deref())
            )
        })
    })
}

fn reason_message(reason: &str, message: Option<&str>) -> String {
    match message.filter(|m| !m.is_empty()) {
        Some(m) => format!("{reason}: {m}"),
        None => reason.to_string(),
    }
}

/// Argo's `getPendingReason`.
fn pending_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref());
    if let Some(w) = waiting {
        return Some(reason_message(
            w.reason.as_deref().unwrap_or_default(),
            w.message.as_deref(),
        ))
        .filter(|m| !m.is_empty());
    }
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("Unschedulable"))
        .map(|c| reason_message("Unschedulable", c.message.as_deref()))
}

/// Argo's `inferFailedReason` for a pod without a `wait` container.
fn failed(
    pod: &Pod,
    inits: &[ContainerStatus],
    ctrs: &[ContainerStatus],
) -> (PodPhase, Option<String>) {
    if let Some(message) = pod
        .status
        .as_ref()
        .and_then(|s| s.message.as_deref())
        .filter(|m| !m.is_empty())
    {
        return (PodPhase::Failed, Some(message.to_string()));
    }
    let mut ordered: Vec<&ContainerStatus> = inits.iter().collect();
    ordered.extend(ctrs.iter().filter(|c| c.name == MAIN_CONTAINER));
    ordered.extend(ctrs.iter().filter(|c| c.name != MAIN_CONTAINER));
    if ordered.is_empty() {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        return (
            PodPhase::Failed,
            Some(format!(
                "can't find failed message for pod {name} namespace {namespace}"
            )),
        );
    }
    let mut main_succeeded = false;
    for c in ordered {
        let Some(state) = c.state.as_ref() else {
            continue;
        };
        if let Some(w) = &state.waiting {
            return (
                PodPhase::Error,
                Some(format!(
                    "Pod failed before {} container starts due to {}: {}",
                    c.name,
                    w.reason.as_deref().unwrap_or_default(),
                    w.message.as_deref().unwrap_or_default()
                )),
            );
        }
        let Some(t) = &state.terminated else {
            continue;
        };
        if t.exit_code == 0 {
            main_succeeded |= c.name == MAIN_CONTAINER;
            continue;
        }
        let message = terminated_message(&c.name, t);
        let is_init = inits.iter().any(|i| i.name == c.name);
        if is_init {
            // Argo: a failed init container is an Error (cairn's `init`, or a user's).
            return (PodPhase::Error, Some(message));
        }
        if c.name == MAIN_CONTAINER {
            return (PodPhase::Failed, Some(message));
        }
        // A sidecar killed (137) or terminated (143) was stopped after main: not a failure.
        if t.exit_code != 137 && t.exit_code != 143 {
            return (PodPhase::Failed, Some(message));
        }
    }
    if main_succeeded {
        (PodPhase::Succeeded, None)
    } else {
        (
            PodPhase::Failed,
            Some("pod failed: main container did not complete successfully".to_string()),
        )
    }
}
