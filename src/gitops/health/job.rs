//! Job (`batch`): gitops-engine `health_job.go`.
//!
//! A `Failed` condition → Degraded with its message; a `Suspended` condition that is True →
//! Suspended (without a message, as Argo reports it); `Complete` (or a `Suspended` condition that is no longer True, which Argo counts as
//! finished too) → Healthy; no such condition → Progressing. As in Argo, the `Failed` and
//! `Complete` conditions count by their presence, not their status: the job controller only ever
//! adds them as True.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Degraded, Healthy, Progressing, Suspended};
    let mut failed = None;
    let mut complete = false;
    let mut suspended = false;
    let mut message = "";
    for c in o.conditions(&["status", "conditions"])? {
        match c.type_ {
            "Failed" => {
                complete = true;
                failed = Some(c.message);
            }
            "Complete" => {
                complete = true;
                message = c.message;
            }
            "Suspended" => {
                complete = true;
                message = c.message;
                suspended |= c.status == "True";
            }
            _ => {}
        }
    }
    Ok(match (complete, failed) {
        (false, _) => HealthStatus::new(Progressing, message),
        (true, Some(fail_message)) => HealthStatus::new(Degraded, fail_message),
        // Argo reports a suspended Job with the (empty) failure message, not the condition's.
        (true, None) if suspended => HealthStatus::code(Suspended),
        (true, None) => HealthStatus::new(Healthy, message),
    })
}
