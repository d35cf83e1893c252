//! CronJob (`batch`): Argo CD's built-in check `resource_customizations/batch/CronJob/health.lua`.
//!
//! `spec.suspend` → Suspended; active jobs → Progressing; a last schedule with no later (or
//! equal) successful run → Degraded, since the last run failed; otherwise Healthy (whether a
//! schedule was missed cannot be told from the status). No status at all → Progressing.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Degraded, Healthy, Progressing, Suspended};
    if o.flag(&["spec", "suspend"])? {
        return Ok(HealthStatus::new(Suspended, "CronJob is Suspended"));
    }
    if o.get(&["status"]).is_none() {
        return Ok(HealthStatus::new(Progressing, "Waiting for CronJob"));
    }
    let active = o.list(&["status", "active"])?;
    if !active.is_empty() {
        return Ok(HealthStatus::new(
            Progressing,
            format!("Waiting for {} Jobs to complete", active.len()),
        ));
    }
    let Some(last_schedule) = o.string(&["status", "lastScheduleTime"])? else {
        return Ok(HealthStatus::healthy());
    };
    // RFC 3339 UTC timestamps as the apiserver writes them compare correctly as text, which is
    // what Argo's check does.
    match o.string(&["status", "lastSuccessfulTime"])? {
        Some(last_success) if last_success >= last_schedule => Ok(HealthStatus::new(
            Healthy,
            "CronJob has completed its last execution successfully",
        )),
        _ => Ok(HealthStatus::new(
            Degraded,
            "CronJob has not completed its last execution successfully",
        )),
    }
}
