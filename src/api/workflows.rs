//! `/api/v1/workflows`: Workflows read from the cluster, filtered by RBAC.
//!
//! Reads go through `k8s::objects` (typed kinds that keep every unknown field). The RBAC object
//! of a Workflow is `<namespace>/<name>` under the `workflows` resource.

use axum::Json;
use axum::extract::{Extension, Path, State};
use kube::ResourceExt;

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::k8s::objects;
use crate::workflow::types::Workflow;

/// Workflows of one namespace, or of all when `namespace` is None, that the caller may `get`.
async fn list_in(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let items: Vec<Workflow> = objects::list_workflows(&state.kube()?, namespace)
        .await?
        .into_iter()
        .filter(|wf| {
            let object = format!("{}/{}", wf.namespace().unwrap_or_default(), wf.name_any());
            state
                .auth()
                .authorize(principal, "workflows", "get", &object)
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// Workflows of every namespace the caller may see.
pub async fn list_all(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    list_in(&state, &principal, None).await
}

/// Workflows of one namespace.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    list_in(&state, &principal, Some(&namespace)).await
}

/// One Workflow.
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Workflow>, ApiError> {
    let object = format!("{namespace}/{name}");
    if !state
        .auth()
        .authorize(&principal, "workflows", "get", &object)
    {
        return Err(ApiError::Forbidden {
            resource: "workflows",
            action: "get",
            object,
        });
    }
    objects::get_workflow(&state.kube()?, &namespace, &name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("workflow {namespace}/{name} not found")))
}
