//! HorizontalPodAutoscaler (`autoscaling`): Argo CD's
//! `resource_customizations/autoscaling/HorizontalPodAutoscaler/health.lua` (formerly
//! gitops-engine `health_hpa.go`). Argo's current check refuses the removed `v2beta1`/`v2beta2`
//! versions; cairn still reads them like `v2`, as Argo did while clusters served them.
//!
//! Conditions come from `status.conditions` (v2, v2beta1, v2beta2) or, for `autoscaling/v1`,
//! from the JSON annotation `autoscaling.alpha.kubernetes.io/conditions` (absent → Progressing).
//! Any degraded condition (cannot get or update the scale, cannot read or compute metrics, invalid
//! selector)
//! → Degraded with its message; else the first `AbleToScale` or `ScalingLimited` condition that
//! is True → Healthy with its message; else Progressing "Waiting to Autoscale".

use serde_json::Value;

use super::fields::{Condition, Obj};
use super::{HealthError, HealthStatus, HealthStatusCode};

/// Where autoscaling/v1 keeps the conditions it has no field for.
const ANNOTATION_V1_CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";

const WAITING: &str = "Waiting to Autoscale";

/// (type, reason) pairs that mean the autoscaler cannot do its job.
const DEGRADED: [(&str, &str); 8] = [
    ("AbleToScale", "FailedGetScale"),
    ("AbleToScale", "FailedUpdateScale"),
    ("ScalingActive", "FailedGetResourceMetric"),
    ("ScalingActive", "FailedGetObjectMetric"),
    ("ScalingActive", "FailedGetPodsMetric"),
    ("ScalingActive", "FailedGetExternalMetric"),
    ("ScalingActive", "FailedComputeMetricsReplicas"),
    ("ScalingActive", "InvalidSelector"),
];

fn check(conditions: &[Condition<'_>]) -> HealthStatus {
    if let Some(c) = conditions
        .iter()
        .find(|c| DEGRADED.contains(&(c.type_, c.reason)))
    {
        return HealthStatus::new(HealthStatusCode::Degraded, c.message);
    }
    if let Some(c) = conditions
        .iter()
        .find(|c| matches!(c.type_, "AbleToScale" | "ScalingLimited") && c.status == "True")
    {
        return HealthStatus::new(HealthStatusCode::Healthy, c.message);
    }
    HealthStatus::new(HealthStatusCode::Progressing, WAITING)
}

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    let api_version = o.str_or_empty(&["apiVersion"])?;
    match api_version {
        "autoscaling/v1" => {
            let Some(annotation) = o.annotation(ANNOTATION_V1_CONDITIONS) else {
                return Ok(HealthStatus::new(HealthStatusCode::Progressing, WAITING));
            };
            let parsed: Value =
                serde_json::from_str(annotation).map_err(|e| annotation_error(o, e.to_string()))?;
            let Some(items) = parsed.as_array() else {
                return Err(annotation_error(o, "not a list".to_owned()));
            };
            let mut conditions = Vec::with_capacity(items.len());
            for item in items {
                let item = o.item(item);
                conditions.push(Condition {
                    type_: item.str_or_empty(&["type"])?,
                    status: item.str_or_empty(&["status"])?,
                    reason: item.str_or_empty(&["reason"])?,
                    message: item.str_or_empty(&["message"])?,
                });
            }
            Ok(check(&conditions))
        }
        "autoscaling/v2" | "autoscaling/v2beta1" | "autoscaling/v2beta2" => {
            Ok(check(&o.conditions(&["status", "conditions"])?))
        }
        _ => Err(HealthError::UnsupportedVersion {
            kind: "HorizontalPodAutoscaler".to_owned(),
            name: o.name().to_owned(),
            api_version: api_version.to_owned(),
        }),
    }
}

fn annotation_error(o: &Obj<'_>, reason: String) -> HealthError {
    HealthError::Annotation {
        kind: "HorizontalPodAutoscaler".to_owned(),
        name: o.name().to_owned(),
        annotation: ANNOTATION_V1_CONDITIONS.to_owned(),
        expected: "a JSON list of conditions",
        reason,
    }
}
