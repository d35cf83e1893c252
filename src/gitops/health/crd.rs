//! CustomResourceDefinition (`apiextensions.k8s.io`): Argo CD's built-in check
//! `resource_customizations/apiextensions.k8s.io/CustomResourceDefinition/health.lua`.
//!
//! No conditions yet → Progressing. Otherwise the conditions are read in order and the first
//! decisive one wins: `Terminating` True → Progressing; `NamesAccepted` False (a name clash) →
//! Degraded; `NonStructuralSchema` True → Degraded; `Established` False while `Installing` →
//! Progressing. Without an `Established` True condition → Degraded, else Healthy. This is what
//! lets a sync wait for a CRD before the custom resources of the next wave.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    use HealthStatusCode::{Degraded, Healthy, Progressing};
    let conditions = o.conditions(&["status", "conditions"])?;
    if conditions.is_empty() {
        return Ok(HealthStatus::new(
            Progressing,
            "Status conditions not found",
        ));
    }
    let mut established = false;
    for c in &conditions {
        match (c.type_, c.status) {
            ("Terminating", "True") => {
                return Ok(HealthStatus::new(
                    Progressing,
                    format!("CRD is terminating: {}", c.message),
                ));
            }
            ("NamesAccepted", "False") => {
                return Ok(HealthStatus::new(
                    Degraded,
                    format!("CRD names have not been accepted: {}", c.message),
                ));
            }
            ("NonStructuralSchema", "True") => {
                return Ok(HealthStatus::new(
                    Degraded,
                    format!("Schema violations found: {}", c.message),
                ));
            }
            ("Established", "True") => established = true,
            ("Established", _) if c.reason == "Installing" => {
                return Ok(HealthStatus::new(Progressing, "CRD is being installed"));
            }
            _ => {}
        }
    }
    if !established {
        return Ok(HealthStatus::new(Degraded, "CRD is not established"));
    }
    Ok(HealthStatus::new(Healthy, "CRD is healthy"))
}
