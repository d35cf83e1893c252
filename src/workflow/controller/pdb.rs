//! The shell half of `spec.podDisruptionBudget` (rules in `workflow::pdb`): create the
//! workflow's PodDisruptionBudget on the pass that starts it, delete it on the pass that
//! archives it. Both are idempotent (AlreadyExists / NotFound are success).

use std::time::Duration;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, PostParams};

use super::{ControllerError, Shared};
use crate::workflow::pdb;
use crate::workflow::types::Workflow;

/// Attempts at creating the budget on the starting pass (the pass is not repeated).
const CREATE_ATTEMPTS: u32 = 3;
/// Pause between attempts.
const CREATE_PAUSE: Duration = Duration::from_secs(1);

/// Creates `wf`'s PodDisruptionBudget, when it asks for one. A failure after
/// [`CREATE_ATTEMPTS`] is logged (the workflow runs on without the budget, which only protects
/// its pods from voluntary evictions).
pub(super) async fn ensure(shared: &Shared, k: &str, wf: &Workflow) {
    let budget = match pdb::budget(wf) {
        Ok(Some(b)) => b,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(workflow = %k, error = %e, "podDisruptionBudget not created");
            return;
        }
    };
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let api: Api<PodDisruptionBudget> = Api::namespaced(shared.client.clone(), &namespace);
    for attempt in 1..=CREATE_ATTEMPTS {
        match api.create(&PostParams::default(), &budget).await {
            Ok(_) => {
                tracing::debug!(workflow = %k, "podDisruptionBudget created");
                return;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => return,
            Err(e) if attempt == CREATE_ATTEMPTS => {
                tracing::warn!(workflow = %k, error = %e, attempts = attempt, "podDisruptionBudget not created");
            }
            Err(_) => tokio::time::sleep(CREATE_PAUSE).await,
        }
    }
}

/// Deletes `wf`'s PodDisruptionBudget (when it asked for one).
pub(super) async fn remove(shared: &Shared, k: &str, wf: &Workflow) -> Result<(), ControllerError> {
    if pdb::spec_of(wf).is_none() {
        return Ok(());
    }
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let api: Api<PodDisruptionBudget> = Api::namespaced(shared.client.clone(), &namespace);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::debug!(workflow = %k, "podDisruptionBudget deleted");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ControllerError::kube(
            format!("delete the podDisruptionBudget of {k}"),
            e,
        )),
    }
}
