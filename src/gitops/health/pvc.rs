//! PersistentVolumeClaim (core): gitops-engine `health_pvc.go`.
//!
//! By `status.phase`: Bound → Healthy, Pending → Progressing, Lost → Degraded, else Unknown.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    let code = match o.str_or_empty(&["status", "phase"])? {
        "Bound" => HealthStatusCode::Healthy,
        "Pending" => HealthStatusCode::Progressing,
        "Lost" => HealthStatusCode::Degraded,
        _ => HealthStatusCode::Unknown,
    };
    Ok(HealthStatus::code(code))
}
