//! `/api/v1/applications`: Applications read from the cluster, filtered by RBAC.
//!
//! Reads go through `k8s::objects` (typed kinds that keep every unknown field, so the JSON
//! answered is the object as stored). The RBAC object is `rbac::application_object`:
//! `<project>/<name>` in the control namespace, `<project>/<namespace>/<name>` elsewhere.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use kube::ResourceExt;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::auth::rbac::application_object;
use crate::gitops::types::Application;
use crate::k8s::objects;

/// Query parameters of the Application routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppQuery {
    /// Only Applications of this project.
    project: Option<String>,
    /// The namespace the Application lives in (default: the control namespace).
    app_namespace: Option<String>,
}

fn project(app: &Application) -> &str {
    app.spec
        .project
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("default")
}

/// The RBAC object for an Application.
fn rbac_object(control_ns: &str, app: &Application) -> String {
    let ns = app.namespace();
    let outside = ns.as_deref().filter(|ns| *ns != control_ns);
    application_object(project(app), outside, &app.name_any())
}

/// Lists the Applications the caller may `get`.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AppQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let ns = q.app_namespace.as_deref().unwrap_or(state.namespace());
    let items: Vec<Application> = objects::list_applications(&state.kube()?, ns)
        .await?
        .into_iter()
        .filter(|app| q.project.as_deref().is_none_or(|p| project(app) == p))
        .filter(|app| {
            state.auth().authorize(
                &principal,
                "applications",
                "get",
                &rbac_object(state.namespace(), app),
            )
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// One Application, if the caller may `get` it.
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Application>, ApiError> {
    let ns = q.app_namespace.as_deref().unwrap_or(state.namespace());
    let app = objects::get_application(&state.kube()?, ns, &name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("application {ns}/{name} not found")))?;
    let object = rbac_object(state.namespace(), &app);
    if !state
        .auth()
        .authorize(&principal, "applications", "get", &object)
    {
        // Argo CD answers 403 here too (the app's project decides, so it must be read first).
        return Err(ApiError::Forbidden {
            resource: "applications",
            action: "get",
            object,
        });
    }
    Ok(Json(app))
}
