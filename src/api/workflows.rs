//! `/api/v1/workflows`: Workflows read from the cluster, filtered by RBAC.
//!
//! The RBAC object of a Workflow is `<namespace>/<name>` under the `workflows` resource.

use axum::Json;
use axum::extract::{Extension, Path, State};
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;

use super::{ApiError, AppState};
use crate::api::api_resource;
use crate::auth::Principal;

fn rbac_object(wf: &DynamicObject) -> String {
    format!(
        "{}/{}",
        wf.metadata.namespace.as_deref().unwrap_or_default(),
        wf.metadata.name.as_deref().unwrap_or_default()
    )
}

async fn list_in(
    state: &AppState,
    principal: &Principal,
    api: Api<DynamicObject>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let list = api.list(&ListParams::default()).await?;
    let items: Vec<_> = list
        .items
        .into_iter()
        .filter(|wf| {
            state
                .auth()
                .authorize(principal, "workflows", "get", &rbac_object(wf))
        })
        .collect();
    Ok(Json(serde_json::json!({
        "metadata": { "resourceVersion": list.metadata.resource_version },
        "items": items,
    })))
}

/// Workflows of every namespace the caller may see.
pub async fn list_all(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let api = Api::all_with(
        state.kube()?,
        &api_resource::<crate::workflow::types::Workflow>(),
    );
    list_in(&state, &principal, api).await
}

/// Workflows of one namespace.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let api = Api::namespaced_with(
        state.kube()?,
        &namespace,
        &api_resource::<crate::workflow::types::Workflow>(),
    );
    list_in(&state, &principal, api).await
}

/// One Workflow.
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<DynamicObject>, ApiError> {
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
    let api: Api<DynamicObject> = Api::namespaced_with(
        state.kube()?,
        &namespace,
        &api_resource::<crate::workflow::types::Workflow>(),
    );
    let wf = api
        .get_opt(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow {namespace}/{name} not found")))?;
    Ok(Json(wf))
}
