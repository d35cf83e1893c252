//! Application (`argoproj.io`): Argo CD's
//! `resource_customizations/argoproj.io/Application/health.lua`, the same rule as the
//! customization its manual gives for app-of-apps with sync waves; cairn applies it by default
//! (see the module docs).
//!
//! The child Application's own `.status.health`: its status and message; Progressing "Waiting for
//! application to be reconciled" while it has none. A status string Argo does not know is Unknown, as Argo rejects an invalid status from a
//! health check.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    let Some(status) = o.string(&["status", "health", "status"])? else {
        return Ok(HealthStatus::new(
            HealthStatusCode::Progressing,
            "Waiting for application to be reconciled",
        ));
    };
    let message = o.str_or_empty(&["status", "health", "message"])?;
    Ok(match HealthStatusCode::parse(status) {
        Some(code) => HealthStatus::new(code, message),
        None => HealthStatus::new(
            HealthStatusCode::Unknown,
            format!(
                "Application {:?} reports an invalid health status {status:?}",
                o.name()
            ),
        ),
    })
}
