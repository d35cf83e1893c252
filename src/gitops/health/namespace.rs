//! Namespace (core): a cairn addition; Argo CD has no Namespace check (see the module docs).
//!
//! `status.phase` Active → Healthy; Terminating or not yet set → Progressing, so a sync wave
//! that creates a Namespace waits until the apiserver has activated it.

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    Ok(match o.str_or_empty(&["status", "phase"])? {
        "Active" => HealthStatus::healthy(),
        "Terminating" => {
            HealthStatus::new(HealthStatusCode::Progressing, "Namespace is terminating")
        }
        _ => HealthStatus::new(
            HealthStatusCode::Progressing,
            "Waiting for namespace to become Active",
        ),
    })
}
