//! The controller's edge of artifact repositories: reads the repositories ConfigMap, records
//! the resolved repository in `.status.artifactRepositoryRef` (Argo's field) before the
//! operator runs, and gives each pod request the workflow's repository.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

use super::repository::{self, ConfigMapData, Resolved};
use crate::workflow::node::PodRequest;
use crate::workflow::types::Workflow;

/// Status field of the resolved repository (Argo's).
pub const STATUS_FIELD: &str = "artifactRepositoryRef";

async fn resolve_live(
    client: &kube::Client,
    wf: &Workflow,
) -> Result<Result<Resolved, String>, kube::Error> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let spec_ref = wf.spec.extra.get("artifactRepositoryRef");
    let name = match repository::configmap_name(spec_ref) {
        Ok(name) => name,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let cm = api.get_opt(&name).await?.map(|cm| ConfigMapData {
        data: cm.data.unwrap_or_default(),
        annotations: cm.metadata.annotations.unwrap_or_default(),
    });
    Ok(repository::resolve(&namespace, spec_ref, cm.as_ref()).map_err(|e| e.to_string()))
}

/// Records the workflow's repository in its (in-memory) status when it has not started yet
/// (no phase: Argo resolves it once, at the start) and it resolves; a configuration error is
/// left for the pods that need a repository to report (`prepare` resolves live for them).
/// Only the first reconcile reads the ConfigMap, so a running workflow's reconciles do not.
pub async fn record(client: &kube::Client, wf: &mut Workflow) -> Result<(), kube::Error> {
    if wf
        .status
        .as_ref()
        .is_some_and(|s| s.phase.is_some() || s.extra.contains_key(STATUS_FIELD))
    {
        return Ok(());
    }
    match resolve_live(client, wf).await? {
        Ok(resolved) => {
            wf.status
                .get_or_insert_with(Default::default)
                .extra
                .insert(STATUS_FIELD.to_string(), resolved.status);
        }
        Err(message) => {
            tracing::debug!(workflow = ?wf.metadata.name, %message, "artifact repository not resolved");
        }
    }
    Ok(())
}

fn has_artifacts(req: &PodRequest) -> bool {
    let t = &req.template;
    t.inputs
        .as_ref()
        .and_then(|i| i.artifacts.as_ref())
        .is_some_and(|a| !a.is_empty())
        || t.outputs
            .as_ref()
            .and_then(|o| o.artifacts.as_ref())
            .is_some_and(|a| !a.is_empty())
}

/// The request with the workflow's repository, or the message that fails the node (the
/// repository configuration is invalid, or the ConfigMap cannot be read).
pub async fn prepare(
    client: &kube::Client,
    wf: &Workflow,
    req: &PodRequest,
) -> Result<PodRequest, String> {
    let mut req = req.clone();
    if !has_artifacts(&req) {
        return Ok(req);
    }
    let recorded = wf
        .status
        .as_ref()
        .and_then(|s| s.extra.get(STATUS_FIELD))
        .and_then(repository::from_status);
    req.artifact_repository = match recorded {
        Some(repo) => Some(repo),
        None => match resolve_live(client, wf).await {
            Ok(Ok(resolved)) => Some(resolved.repository),
            Ok(Err(message)) => return Err(message),
            Err(e) => {
                return Err(format!(
                    "cannot read the artifact repository ConfigMap: {}",
                    match &e {
                        kube::Error::Api(s) => s.message.clone(),
                        other => other.to_string(),
                    }
                ));
            }
        },
    };
    Ok(req)
}
