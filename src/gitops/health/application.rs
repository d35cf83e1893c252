//! Application (`argoproj.io`): the health check Argo CD's manual gives for app-of-apps with
//! sync waves (built in before Argo CD 1.8); cairn applies it by default (see the module docs).
//!
//! The child Application's own `.status.health`: its status and message; Progressing while it has
//! none. A status string Argo does not know is Unknown, as Argo rejects an invalid status from a
//! health check.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    if o.get(&["status", "health"]).is_none() {
        return Ok(HealthStatus::code(HealthStatusCode::Progressing));
    }
    let message = o.str_or_empty(&["status", "health", "message"])?;
    let status = o.str_or_empty(&["status", "health", "status"])?;
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
