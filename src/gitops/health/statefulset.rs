//! StatefulSet (`apps`): gitops-engine `health_statefulset.go` (kubectl's rollout status).
//!
//! Not observed yet → Progressing; fewer ready pods than `spec.replicas` → Progressing; then by
//! update strategy: RollingUpdate with a `rollingUpdate` block (the apiserver's default, partition
//! 0) compares updated pods with `replicas - partition`; OnDelete is Healthy once pods are ready;
//! otherwise `currentRevision` must equal `updateRevision`.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Healthy, Progressing};
    let generation = o.int_or_zero(&["metadata", "generation"])?;
    let observed = o.int_or_zero(&["status", "observedGeneration"])?;
    if observed == 0 || generation > observed {
        return Ok(HealthStatus::new(
            Progressing,
            "Waiting for statefulset spec update to be observed...",
        ));
    }
    let desired = o.int(&["spec", "replicas"])?;
    let ready = o.int_or_zero(&["status", "readyReplicas"])?;
    if let Some(desired) = desired
        && ready < desired
    {
        return Ok(HealthStatus::new(
            Progressing,
            format!("Waiting for {} pods to be ready...", desired - ready),
        ));
    }
    let strategy = o.str_or_empty(&["spec", "updateStrategy", "type"])?;
    let updated = o.int_or_zero(&["status", "updatedReplicas"])?;
    if strategy == "RollingUpdate"
        && o.get(&["spec", "updateStrategy", "rollingUpdate"])
            .is_some()
    {
        let partition = o.int(&["spec", "updateStrategy", "rollingUpdate", "partition"])?;
        if let (Some(desired), Some(partition)) = (desired, partition)
            && updated < desired - partition
        {
            return Ok(HealthStatus::new(
                Progressing,
                format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    desired - partition
                ),
            ));
        }
        return Ok(HealthStatus::new(
            Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        ));
    }
    if strategy == "OnDelete" {
        return Ok(HealthStatus::new(
            Healthy,
            format!("statefulset has {ready} ready pods"),
        ));
    }
    let update_revision = o.str_or_empty(&["status", "updateRevision"])?;
    let current_revision = o.str_or_empty(&["status", "currentRevision"])?;
    if update_revision != current_revision {
        return Ok(HealthStatus::new(
            Progressing,
            format!(
                "waiting for statefulset rolling update to complete {updated} pods at revision {update_revision}..."
            ),
        ));
    }
    let current = o.int_or_zero(&["status", "currentReplicas"])?;
    Ok(HealthStatus::new(
        Healthy,
        format!(
            "statefulset rolling update complete {current} pods at revision {current_revision}..."
        ),
    ))
}
