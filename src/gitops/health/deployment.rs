//! Deployment (`apps`): gitops-engine `health_deployment.go`, itself kubectl's rollout status.
//!
//! Paused → Suspended; spec not yet observed → Progressing; `Progressing` condition with reason
//! `ProgressDeadlineExceeded` → Degraded; then updated, old and available replicas in that order.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Degraded, Progressing, Suspended};
    if o.flag(&["spec", "paused"])? {
        return Ok(HealthStatus::new(Suspended, "Deployment is paused"));
    }
    let generation = o.int_or_zero(&["metadata", "generation"])?;
    let observed = o.int_or_zero(&["status", "observedGeneration"])?;
    if generation > observed {
        return Ok(HealthStatus::new(
            Progressing,
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        ));
    }
    let deadline_exceeded = o
        .conditions(&["status", "conditions"])?
        .iter()
        .find(|c| c.type_ == "Progressing")
        .is_some_and(|c| c.reason == "ProgressDeadlineExceeded");
    if deadline_exceeded {
        return Ok(HealthStatus::new(
            Degraded,
            format!("Deployment {:?} exceeded its progress deadline", o.name()),
        ));
    }
    let desired = o.int(&["spec", "replicas"])?;
    let replicas = o.int_or_zero(&["status", "replicas"])?;
    let updated = o.int_or_zero(&["status", "updatedReplicas"])?;
    let available = o.int_or_zero(&["status", "availableReplicas"])?;
    if let Some(desired) = desired
        && updated < desired
    {
        return Ok(HealthStatus::new(
            Progressing,
            format!(
                "Waiting for rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
        ));
    }
    if replicas > updated {
        return Ok(HealthStatus::new(
            Progressing,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
        ));
    }
    if available < updated {
        return Ok(HealthStatus::new(
            Progressing,
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        ));
    }
    Ok(HealthStatus::healthy())
}
