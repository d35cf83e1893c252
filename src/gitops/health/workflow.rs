//! Workflow (`argoproj.io`): gitops-engine `health_argo.go`.
//!
//! By `status.phase` only: none yet, Pending or Running → Progressing; Succeeded → Healthy;
//! Failed or Error → Degraded; anything else → Unknown; each with `status.message`.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    let message = o.str_or_empty(&["status", "message"])?;
    let code = match o.str_or_empty(&["status", "phase"])? {
        "" | "Pending" | "Running" => HealthStatusCode::Progressing,
        "Succeeded" => HealthStatusCode::Healthy,
        "Failed" | "Error" => HealthStatusCode::Degraded,
        _ => HealthStatusCode::Unknown,
    };
    Ok(HealthStatus::new(code, message))
}
