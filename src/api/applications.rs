//! `/api/v1/applications`: Applications read from the cluster, filtered by RBAC.
//!
//! The RBAC object of an Application is `<project>/<name>` in the control namespace and
//! `<project>/<namespace>/<name>` elsewhere, as Argo CD names it.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::api::api_resource;
use crate::auth::Principal;

/// Query parameters of the Application routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppQuery {
    /// Only Applications of this project.
    project: Option<String>,
    /// The namespace the Application lives in (default: the control namespace).
    app_namespace: Option<String>,
}

/// The RBAC object for an Application.
pub(crate) fn rbac_object(control_ns: &str, app: &DynamicObject) -> String {
    let project = app
        .data
        .pointer("/spec/project")
        .and_then(|v| v.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("default");
    let name = app.metadata.name.as_deref().unwrap_or_default();
    match app.metadata.namespace.as_deref() {
        Some(ns) if ns != control_ns => format!("{project}/{ns}/{name}"),
        _ => format!("{project}/{name}"),
    }
}

/// The Applications API of the requested namespace (default: the control namespace).
fn apps_api<'q>(
    state: &'q AppState,
    q: &'q AppQuery,
) -> Result<(Api<DynamicObject>, &'q str), ApiError> {
    let ns = q.app_namespace.as_deref().unwrap_or(state.namespace());
    let resource = api_resource::<crate::gitops::types::Application>();
    Ok((Api::namespaced_with(state.kube()?, ns, &resource), ns))
}

/// Lists the Applications the caller may `get`.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AppQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (api, _) = apps_api(&state, &q)?;
    let list = api.list(&ListParams::default()).await?;
    let items: Vec<_> = list
        .items
        .into_iter()
        .filter(|app| {
            q.project.as_deref().is_none_or(|p| {
                app.data.pointer("/spec/project").and_then(|v| v.as_str()) == Some(p)
            })
        })
        .filter(|app| {
            state.auth().authorize(
                &principal,
                "applications",
                "get",
                &rbac_object(state.namespace(), app),
            )
        })
        .collect();
    Ok(Json(serde_json::json!({
        "metadata": { "resourceVersion": list.metadata.resource_version },
        "items": items,
    })))
}

/// One Application, if the caller may `get` it.
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<DynamicObject>, ApiError> {
    let (api, ns) = apps_api(&state, &q)?;
    let app = api
        .get_opt(&name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("application {ns}/{name} not found")))?;
    let object = rbac_object(state.namespace(), &app);
    if !state
        .auth()
        .authorize(&principal, "applications", "get", &object)
    {
        // Same answer as a missing app would leak existence; Argo CD answers 403 here too.
        return Err(ApiError::Forbidden {
            resource: "applications",
            action: "get",
            object,
        });
    }
    Ok(Json(app))
}
