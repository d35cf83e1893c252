//! ReplicaSet (`apps`): gitops-engine `health_replicaset.go`.
//!
//! Not observed yet → Progressing; a `ReplicaFailure` condition that is True (quota exceeded,
//! forbidden pods) → Degraded with its message; fewer available than desired → Progressing.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Degraded, Progressing};
    let generation = o.int_or_zero(&["metadata", "generation"])?;
    let observed = o.int_or_zero(&["status", "observedGeneration"])?;
    if generation > observed {
        return Ok(HealthStatus::new(
            Progressing,
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        ));
    }
    let conditions = o.conditions(&["status", "conditions"])?;
    if let Some(failure) = conditions.iter().find(|c| c.type_ == "ReplicaFailure")
        && failure.status == "True"
    {
        return Ok(HealthStatus::new(Degraded, failure.message));
    }
    let available = o.int_or_zero(&["status", "availableReplicas"])?;
    if let Some(desired) = o.int(&["spec", "replicas"])?
        && available < desired
    {
        return Ok(HealthStatus::new(
            Progressing,
            format!(
                "Waiting for rollout to finish: {available} out of {desired} new replicas are available..."
            ),
        ));
    }
    Ok(HealthStatus::healthy())
}
