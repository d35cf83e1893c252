//! APIService (`apiregistration.k8s.io`): gitops-engine `health_apiservice.go`.
//!
//! The first `Available` condition decides: True → Healthy, otherwise Progressing (an aggregated
//! API server often needs a while to come up), with `"<reason>: <message>"`. No such condition
//! → Progressing "Waiting to be processed".

use super::fields::Obj;
use super::{HealthError, HealthStatus, HealthStatusCode};

pub(super) fn health(o: &Obj<'_>) -> Result<HealthStatus, HealthError> {
    let conditions = o.conditions(&["status", "conditions"])?;
    let Some(available) = conditions.iter().find(|c| c.type_ == "Available") else {
        return Ok(HealthStatus::new(
            HealthStatusCode::Progressing,
            "Waiting to be processed",
        ));
    };
    let code = if available.status == "True" {
        HealthStatusCode::Healthy
    } else {
        HealthStatusCode::Progressing
    };
    Ok(HealthStatus::new(
        code,
        format!("{}: {}", available.reason, available.message),
    ))
}
