//! Pod (core): gitops-engine `health_pod.go`.
//!
//! - `restartPolicy: Always` only: a container waiting with a reason starting `Err` or ending in
//!   `Error` or `BackOff` (CrashLoopBackOff, ImagePullBackOff, ErrImagePull,
//!   CreateContainerConfigError) → Degraded, the waiting messages joined. Not for other policies,
//!   because such pods are usually hooks, and failing a hook on a transient pull error would end
//!   the sync early and then run the hook anyway once the image arrives.
//! - Pending → Progressing; Succeeded → Healthy; Failed → Degraded with the pod's message, else
//!   the first terminated container's message, `OOMKilled`, or its non-zero exit code.
//! - Running with `Always` (or the `argocd.argoproj.io/ignore-restart-policy` annotation): Ready →
//!   Healthy; a container that terminated before → Degraded; else Progressing. Running with
//!   `OnFailure`/`Never` → Progressing, since a finite pod (a hook) is done only when it succeeds.
//! - Anything else → Unknown. Every status carries the pod's `status.message`.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

/// Annotation that makes a Running pod with a finite restart policy assessable as a service pod.
pub const ANNOTATION_IGNORE_RESTART_POLICY: &str = "argocd.argoproj.io/ignore-restart-policy";

/// Waiting reasons that mean the container cannot start on its own.
fn is_error_reason(reason: &str) -> bool {
    reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff")
}

/// The failure message of a terminated container, if it has one.
fn fail_message(ctr: &Obj<'_>) -> Result<Option<String>, HealthError> {
    if ctr.get(&["state", "terminated"]).is_none() {
        return Ok(None);
    }
    let message = ctr.str_or_empty(&["state", "terminated", "message"])?;
    if !message.is_empty() {
        return Ok(Some(message.to_owned()));
    }
    let reason = ctr.str_or_empty(&["state", "terminated", "reason"])?;
    if reason == "OOMKilled" {
        return Ok(Some(reason.to_owned()));
    }
    let exit_code = ctr.int_or_zero(&["state", "terminated", "exitCode"])?;
    if exit_code != 0 {
        let name = ctr.str_or_empty(&["name"])?;
        return Ok(Some(format!(
            "container {name:?} failed with exit code {exit_code}"
        )));
    }
    Ok(None)
}

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Degraded, Healthy, Progressing, Unknown};
    // The apiserver defaults the policy to Always; Argo reads an absent one the same way.
    let restart_policy = o.string(&["spec", "restartPolicy"])?.unwrap_or("Always");
    let containers = o.list(&["status", "containerStatuses"])?;
    if restart_policy == "Always" {
        let mut messages = Vec::new();
        for ctr in containers {
            let ctr = o.item(ctr);
            if ctr.get(&["state", "waiting"]).is_some()
                && is_error_reason(ctr.str_or_empty(&["state", "waiting", "reason"])?)
            {
                messages.push(ctr.str_or_empty(&["state", "waiting", "message"])?);
            }
        }
        if !messages.is_empty() {
            return Ok(HealthStatus::new(Degraded, messages.join(", ")));
        }
    }
    let message = o.str_or_empty(&["status", "message"])?;
    match o.str_or_empty(&["status", "phase"])? {
        "Pending" => Ok(HealthStatus::new(Progressing, message)),
        "Succeeded" => Ok(HealthStatus::new(Healthy, message)),
        "Failed" => {
            if !message.is_empty() {
                return Ok(HealthStatus::new(Degraded, message));
            }
            let init = o.list(&["status", "initContainerStatuses"])?;
            for ctr in init.iter().chain(containers) {
                if let Some(msg) = fail_message(&o.item(ctr))? {
                    return Ok(HealthStatus::new(Degraded, msg));
                }
            }
            Ok(HealthStatus::code(Degraded))
        }
        "Running" => {
            let service_like = o.annotation(ANNOTATION_IGNORE_RESTART_POLICY).is_some()
                || restart_policy == "Always";
            if service_like {
                let ready = o
                    .conditions(&["status", "conditions"])?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready {
                    return Ok(HealthStatus::new(Healthy, message));
                }
                for ctr in containers {
                    if o.item(ctr).get(&["lastState", "terminated"]).is_some() {
                        return Ok(HealthStatus::new(Degraded, message));
                    }
                }
                return Ok(HealthStatus::new(Progressing, message));
            }
            match restart_policy {
                "OnFailure" | "Never" => Ok(HealthStatus::new(Progressing, message)),
                _ => Ok(HealthStatus::new(Unknown, message)),
            }
        }
        _ => Ok(HealthStatus::new(Unknown, message)),
    }
}
