//! Promotion by Git commit over HTTP ([`crate::lineage::promote`]): what
//! `cairn model promote|rollback` call.
//!
//! - `POST /api/v1/models/{name}/promote` `{version, alias, review?}` -> the promotion record.
//! - `POST /api/v1/models/{name}/rollback` `{alias}` -> the rollback's record.
//! - `GET /api/v1/promotions?model=NAME` -> the promotions the caller may `get`, oldest first.
//!
//! RBAC (resource `models`): the gate checks `promote` on some object; the operation checks
//! `promote` on `<model>/<alias>` itself, before anything touches Git. Listing shows the records
//! of the models the caller may `get`.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Access, ApiError, AppState, RouteSpec};
use crate::auth::Principal;
use crate::auth::rbac::resources::MODELS;
use crate::lineage::promote::PromoteError;
use crate::lineage::promote::follow;
use crate::lineage::promote::op::{self, Actor, Promoter, Promotion};

/// This family's rows of the route table.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use axum::http::Method;
    let row = |method, path, action| RouteSpec {
        method,
        path,
        access: Access::Rbac {
            resource: MODELS,
            action,
        },
    };
    vec![
        (
            row(Method::POST, "/api/v1/models/{name}/promote", "promote"),
            post(promote),
        ),
        (
            row(Method::POST, "/api/v1/models/{name}/rollback", "promote"),
            post(rollback),
        ),
        (row(Method::GET, "/api/v1/promotions", "get"), get(list)),
    ]
}

/// A promotion error as the API answers it.
pub fn api_error(e: PromoteError) -> ApiError {
    match e {
        PromoteError::Forbidden { object, .. } => ApiError::Forbidden {
            resource: MODELS,
            action: "promote",
            object,
        },
        PromoteError::Registry(ref r) => match **r {
            crate::lineage::registry::RegistryError::NotFound { .. } => {
                ApiError::NotFound(e.to_string())
            }
            crate::lineage::registry::RegistryError::Invalid { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            _ => ApiError::Internal(e.to_string()),
        },
        PromoteError::NoRule { .. }
        | PromoteError::NotReady { .. }
        | PromoteError::NothingToRollBack { .. }
        | PromoteError::FileNotFound { .. }
        | PromoteError::BranchNotFound { .. }
        | PromoteError::NotUtf8 { .. }
        | PromoteError::Edit { .. }
        | PromoteError::CommitNotFound { .. }
        | PromoteError::RevertConflict { .. }
        | PromoteError::Conflict { .. } => ApiError::BadRequest(e.to_string()),
        // Remote failures are the repository's (auth, host key, network): say what happened;
        // the message is redacted.
        PromoteError::Source(_) | PromoteError::Git { .. } | PromoteError::Aborted { .. } => {
            ApiError::BadRequest(e.to_string())
        }
        PromoteError::Graph(_) | PromoteError::Store(_) => ApiError::Internal(e.to_string()),
    }
}

fn promoter(state: &AppState) -> Result<&Promoter, ApiError> {
    state.promoter().ok_or_else(|| {
        ApiError::BadRequest(
            "promotion is not configured: add [[promotion]] entries to cairn.toml".into(),
        )
    })
}

/// Follows a pushed commit on the tracked branch (a bounded background task, see
/// [`crate::lineage::promote::follow`]); nothing to follow without a cluster or a commit.
fn spawn_follow(state: &AppState, promoter: &Promoter, record: &Promotion) {
    if record.review || record.commit.is_none() {
        return;
    }
    let Ok(client) = state.kube() else {
        return;
    };
    let gitops = state.gitops();
    let refresher = gitops.and_then(|g| g.refresher.clone());
    let mut namespaces = vec![state.namespace().to_string()];
    namespaces.extend(gitops.map(|g| g.namespaces.clone()).unwrap_or_default());
    tokio::spawn(follow::follow(
        client,
        refresher,
        namespaces,
        promoter.store().clone(),
        record.clone(),
        record.repo.clone(),
    ));
}

/// Body of `POST /api/v1/models/{name}/promote`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    /// The version to promote.
    pub version: u64,
    /// The alias to move (e.g. `prod`).
    pub alias: String,
    /// Push a review branch instead of the tracked branch (default: the rule's `review`).
    #[serde(default)]
    pub review: Option<bool>,
}

/// Promotes a version.
pub async fn promote(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<PromoteBody>,
) -> Result<Json<Value>, ApiError> {
    let promoter = promoter(&state)?;
    let auth = state.auth();
    let allowed = |object: &str| auth.authorize(&principal, MODELS, "promote", object);
    let actor = Actor {
        subject: &principal.subject,
        allowed: &allowed,
    };
    let record = promoter
        .promote(&actor, &name, body.version, &body.alias, body.review)
        .await
        .map_err(api_error)?;
    spawn_follow(&state, promoter, &record);
    Ok(Json(json!(record)))
}

/// Body of `POST /api/v1/models/{name}/rollback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    /// The alias whose latest promotion is reverted.
    pub alias: String,
}

/// Rolls back the latest promotion of an alias.
pub async fn rollback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(body): Json<RollbackBody>,
) -> Result<Json<Value>, ApiError> {
    let promoter = promoter(&state)?;
    let auth = state.auth();
    let allowed = |object: &str| auth.authorize(&principal, MODELS, "promote", object);
    let actor = Actor {
        subject: &principal.subject,
        allowed: &allowed,
    };
    let record = promoter
        .rollback(&actor, &name, &body.alias)
        .await
        .map_err(api_error)?;
    spawn_follow(&state, promoter, &record);
    Ok(Json(json!(record)))
}

/// Query of `GET /api/v1/promotions`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// Only this model's promotions.
    #[serde(default)]
    pub model: Option<String>,
}

/// Lists promotions.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let items = state
        .auth()
        .store()
        .read(|txn| op::list_promotions(txn, q.model.as_deref()))
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .into_iter()
        .filter(|p| state.auth().authorize(&principal, MODELS, "get", &p.model))
        .collect::<Vec<_>>();
    Ok(Json(json!({ "items": items })))
}
