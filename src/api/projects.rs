//! `/api/v1/projects/{name}/roles/{role}/token`: AppProject role tokens (Argo CD's
//! `argocd proj role create-token|delete-token|list-tokens`), the signing key's rotation, the
//! authentication of a presented project token, and the AppProject watch that keeps role group
//! bindings current.
//!
//! Invariants:
//! - Creating or deleting a token needs `projects, update, <project>`; listing needs
//!   `projects, get, <project>`; rotating the key needs `projects, update, *` (it touches every
//!   project's tokens).
//! - A token is listed in the AppProject (`status.jwtTokensByRole`) before its text is returned;
//!   the write is a merge patch guarded by the resourceVersion, retried on a conflict (3 times),
//!   so concurrent creations never drop each other's entries.
//! - A presented token is checked against the live AppProject (one GET per request): revoking
//!   it or editing its role's policies takes effect on the next request.
//! - Token texts are never logged; log lines carry project, role and token id only.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Path, State};
use futures::StreamExt;
use jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::auth::project_tokens::{self, ProjectTokenError};
use crate::auth::{Auth, Principal, PrincipalKind};
use crate::gitops::types::AppProject;

/// Attempts of a status write that meets concurrent changes (409) before giving up.
const WRITE_ATTEMPTS: usize = 3;

fn project_error(err: ProjectTokenError) -> ApiError {
    match err {
        e if e.is_unauthenticated() => ApiError::Unauthenticated,
        e @ (ProjectTokenError::ProjectNotFound { .. }
        | ProjectTokenError::RoleNotFound { .. }
        | ProjectTokenError::TokenNotFound { .. }) => ApiError::NotFound(e.to_string()),
        e @ (ProjectTokenError::Role { .. }
        | ProjectTokenError::Policy { .. }
        | ProjectTokenError::Expiry { .. }
        | ProjectTokenError::TokenId { .. }) => ApiError::BadRequest(e.to_string()),
        e @ (ProjectTokenError::Store(_) | ProjectTokenError::Overlay(_)) => {
            ApiError::Internal(e.to_string())
        }
        e => ApiError::BadRequest(e.to_string()),
    }
}

fn kube_err(what: &str, err: &kube::Error) -> ApiError {
    match err {
        kube::Error::Api(s) if s.code == 404 => ApiError::NotFound(format!("{what}: not found")),
        kube::Error::Api(s) if s.code == 400 || s.code == 422 => {
            ApiError::BadRequest(format!("{what}: {}", s.message))
        }
        _ => ApiError::Kube(format!("{what}: {err}")),
    }
}

fn projects_api(state: &AppState) -> Result<Api<AppProject>, ApiError> {
    Ok(Api::namespaced(state.kube()?, state.namespace()))
}

async fn load(api: &Api<AppProject>, name: &str) -> Result<AppProject, ApiError> {
    api.get_opt(name)
        .await
        .map_err(|e| kube_err(&format!("AppProject {name}"), &e))?
        .ok_or_else(|| {
            project_error(ProjectTokenError::ProjectNotFound {
                project: name.to_owned(),
            })
        })
}

fn require(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    object: &str,
) -> Result<(), ApiError> {
    if state.auth().authorize(
        principal,
        crate::auth::rbac::resources::PROJECTS,
        action,
        object,
    ) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            resource: crate::auth::rbac::resources::PROJECTS,
            action,
            object: object.to_owned(),
        })
    }
}

/// Applies the merge patch `make(project)` to the live AppProject `name`, re-reading and
/// retrying when the resourceVersion guard meets a concurrent change.
async fn patch_project<T>(
    api: &Api<AppProject>,
    name: &str,
    mut make: impl FnMut(&AppProject) -> Result<(Value, T), ApiError>,
) -> Result<T, ApiError> {
    let mut last = None;
    for _ in 0..WRITE_ATTEMPTS {
        let project = load(api, name).await?;
        let (patch, out) = make(&project)?;
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(out),
            Err(kube::Error::Api(s)) if s.code == 409 => last = Some(s.message.clone()),
            Err(e) => return Err(kube_err(&format!("AppProject {name}"), &e)),
        }
    }
    Err(ApiError::Kube(format!(
        "AppProject {name}: changed concurrently {WRITE_ATTEMPTS} times, not written ({})",
        last.unwrap_or_default()
    )))
}

/// Body of `POST /api/v1/projects/{name}/roles/{role}/token`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewProjectToken {
    /// Lifetime such as `10m`, `12h`, `7d`; absent: no expiry.
    #[serde(default)]
    expires_in: Option<String>,
    /// Token id (`jti`); absent: a random UUID.
    #[serde(default)]
    id: Option<String>,
}

/// Issues a token for a role, lists it in the AppProject's status, and returns it once.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, role)): Path<(String, String)>,
    body: Option<Json<NewProjectToken>>,
) -> Result<Json<Value>, ApiError> {
    require(&state, &principal, "update", &name)?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let lifetime =
        project_tokens::parse_expiry(req.expires_in.as_deref()).map_err(project_error)?;
    let key = state
        .auth()
        .project_keys()
        .current(Timestamp::now())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let api = projects_api(&state)?;
    let issued = patch_project(&api, &name, |project| {
        let found = project_tokens::find_role(project, &role).map_err(project_error)?;
        let listed = project_tokens::listed_tokens(project, &found);
        let issued = project_tokens::issue(
            &key,
            &name,
            &role,
            req.id.as_deref(),
            lifetime,
            &listed,
            Timestamp::now().as_second(),
        )
        .map_err(project_error)?;
        if !issued.entry.id.is_empty() && listed.iter().any(|t| t.id == issued.entry.id) {
            return Err(ApiError::BadRequest(format!(
                "AppProject {name:?} role {role:?} already has a token with id {:?}",
                issued.entry.id
            )));
        }
        let patch = project_tokens::add_token_patch(project, &role, &issued.entry);
        Ok((patch, issued))
    })
    .await?;
    tracing::info!(
        user = %principal.subject,
        project = %name,
        role = %role,
        token_id = %issued.entry.id,
        iat = issued.entry.iat,
        "project token created"
    );
    Ok(Json(json!({
        "token": issued.token.expose(),
        "id": issued.entry.id,
        "iat": issued.entry.iat,
        "exp": issued.entry.exp,
        "subject": project_tokens::subject(&name, &role),
    })))
}

/// Lists a role's tokens (issued-at, expiry, id; never a token text).
pub async fn list_tokens(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, role)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    require(&state, &principal, "get", &name)?;
    let api = projects_api(&state)?;
    let project = load(&api, &name).await?;
    let found = project_tokens::find_role(&project, &role).map_err(project_error)?;
    let items = project_tokens::listed_tokens(&project, &found);
    Ok(Json(json!({ "items": items })))
}

/// Unlists (revokes) the tokens of a role named by issued-at or id.
pub async fn delete_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, role, key)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    require(&state, &principal, "update", &name)?;
    let api = projects_api(&state)?;
    patch_project(&api, &name, |project| {
        let patch =
            project_tokens::remove_token_patch(project, &role, &key).map_err(project_error)?;
        Ok((patch, ()))
    })
    .await?;
    tracing::info!(user = %principal.subject, project = %name, role = %role, token = %key, "project token deleted");
    Ok(Json(json!({})))
}

/// Body of `POST /api/v1/project-signing-key/rotate`.
#[derive(Debug, Default, Deserialize)]
pub struct Rotate {
    /// How long the previous key keeps verifying (`1h`, `7d`); absent or `0s`: not at all.
    #[serde(default)]
    grace: Option<String>,
}

/// Replaces the project-token signing key (needs `projects, update, *`).
pub async fn rotate_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Option<Json<Rotate>>,
) -> Result<Json<Value>, ApiError> {
    require(&state, &principal, "update", "*")?;
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let grace = match req.grace.as_deref().map(str::trim) {
        None | Some("") | Some("0") => Duration::ZERO,
        Some(text) => crate::config::parse_duration(text)
            .map_err(|e| ApiError::BadRequest(format!("grace {text:?}: {e}")))?,
    };
    let rotated = state
        .auth()
        .project_keys()
        .rotate(grace, Timestamp::now())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    tracing::info!(
        user = %principal.subject,
        kid = %rotated.kid,
        previous_kid = rotated.previous_kid.as_deref().unwrap_or("none"),
        grace_s = grace.as_secs(),
        "project token signing key rotated"
    );
    Ok(Json(json!(rotated)))
}

/// The principal of a presented project token: signature, expiry and subject checked against
/// the stored keys, then the live AppProject must still list the token; its role's policies
/// are read from that same object.
pub(crate) async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let now = Timestamp::now().as_second();
    let keys = state
        .auth()
        .project_keys()
        .load()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let claims = project_tokens::verify(token, &keys, now).map_err(|e| {
        tracing::debug!(reason = e.metric_label(), "project token refused");
        project_error(e)
    })?;
    let Some((project, _)) = project_tokens::parse_subject(&claims.sub) else {
        return Err(ApiError::Unauthenticated);
    };
    let api = projects_api(state)?;
    let live = api
        .get_opt(project)
        .await
        .map_err(|e| kube_err(&format!("AppProject {project}"), &e))?;
    let grant = project_tokens::grant(&claims, live.as_ref()).map_err(|e| {
        tracing::debug!(reason = e.metric_label(), sub = %claims.sub, "project token refused");
        project_error(e)
    })?;
    Ok(Principal {
        subject: grant.subject(),
        groups: Vec::new(),
        kind: PrincipalKind::ProjectToken(Box::new(grant)),
        session_id: None,
    })
}

/// Watches the AppProjects of `namespace` and hands every change to
/// [`Auth::set_project_roles`], so role group bindings follow the live objects. Runs until the
/// runtime stops; watch errors are retried with kube's default back-off.
pub(crate) fn spawn_role_watch(
    runtime: &tokio::runtime::Handle,
    auth: Arc<Auth>,
    client: kube::Client,
    namespace: String,
) {
    let api: Api<AppProject> = Api::namespaced(client, &namespace);
    let (reader, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    runtime.spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                    let projects: Vec<AppProject> =
                        reader.state().iter().map(|p| (**p).clone()).collect();
                    for problem in auth.set_project_roles(&projects) {
                        tracing::warn!(error = %problem, reason = problem.metric_label(), "project role ignored");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(namespace = %namespace, error = %e, "AppProject watch error (retrying)");
                }
            }
        }
    });
}
