//! Service (core): gitops-engine `health_service.go`.
//!
//! Healthy, except a `LoadBalancer` Service without an entry in `status.loadBalancer.ingress`
//! yet, which is Progressing until the cloud (or MetalLB) assigns an address.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    if o.str_or_empty(&["spec", "type"])? == "LoadBalancer"
        && o.list(&["status", "loadBalancer", "ingress"])?.is_empty()
    {
        return Ok(HealthStatus::code(HealthStatusCode::Progressing));
    }
    Ok(HealthStatus::healthy())
}
