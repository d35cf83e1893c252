//! Ingress (`networking.k8s.io`, `extensions`): gitops-engine `health_ingress.go`.
//!
//! Healthy once the controller publishes an address in `status.loadBalancer.ingress`, else
//! Progressing.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    if o.list(&["status", "loadBalancer", "ingress"])?.is_empty() {
        return Ok(HealthStatus::code(HealthStatusCode::Progressing));
    }
    Ok(HealthStatus::healthy())
}
