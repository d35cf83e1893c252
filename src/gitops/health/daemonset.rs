//! DaemonSet (`apps`): gitops-engine `health_daemonset.go` (kubectl's rollout status).
//!
//! Not observed yet → Progressing; OnDelete → Healthy (pods update only when deleted); otherwise
//! every scheduled pod must be updated and available.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Healthy, Progressing};
    let generation = o.int_or_zero(&["metadata", "generation"])?;
    let observed = o.int_or_zero(&["status", "observedGeneration"])?;
    if generation > observed {
        return Ok(HealthStatus::new(
            Progressing,
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        ));
    }
    let updated = o.int_or_zero(&["status", "updatedNumberScheduled"])?;
    let desired = o.int_or_zero(&["status", "desiredNumberScheduled"])?;
    if o.str_or_empty(&["spec", "updateStrategy", "type"])? == "OnDelete" {
        return Ok(HealthStatus::new(
            Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        ));
    }
    if updated < desired {
        return Ok(HealthStatus::new(
            Progressing,
            format!(
                "Waiting for daemon set {:?} rollout to finish: {updated} out of {desired} new pods have been updated...",
                o.name()
            ),
        ));
    }
    let available = o.int_or_zero(&["status", "numberAvailable"])?;
    if available < desired {
        return Ok(HealthStatus::new(
            Progressing,
            format!(
                "Waiting for daemon set {:?} rollout to finish: {available} of {desired} updated pods are available...",
                o.name()
            ),
        ));
    }
    Ok(HealthStatus::healthy())
}
