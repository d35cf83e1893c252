//! `/api/v1/account`: local accounts, their passwords and API tokens.
//!
//! A caller manages its own account freely; another account needs `accounts` permission on that
//! account's name (the gate checks this before the handler runs). A token's secret is returned
//! once, at creation, and never again.

use axum::Json;
use axum::extract::{Extension, Path, State};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::auth::Principal;

/// Lists local accounts (names, enabled, capabilities; never password material).
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let accounts = state.auth().list_accounts().await?;
    let items: Vec<_> = accounts
        .into_iter()
        .filter(|a| {
            state
                .auth()
                .authorize(&principal, "accounts", "get", &a.name)
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": items })))
}

/// Body of `PUT /api/v1/account/{name}/password`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// Changes an account's password. The caller proves who it is with its *own* current password,
/// as Argo CD requires, even when changing another account's password.
pub async fn change_password(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Json<PasswordChange>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"currentPassword\": ..., \"newPassword\": ...}}: {}",
            e.body_text()
        ))
    })?;
    state
        .auth()
        .change_password(&principal, &name, &req.current_password, &req.new_password)
        .await?;
    tracing::info!(user = %principal.subject, account = %name, "password changed");
    Ok(Json(serde_json::json!({})))
}

/// Lists an account's tokens (ids, names, dates; never the secret).
pub async fn list_tokens(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tokens = state.auth().list_tokens(&name).await?;
    Ok(Json(serde_json::json!({ "items": tokens })))
}

/// Body of `POST /api/v1/account/{name}/token`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewToken {
    /// A name to recognise the token by.
    name: String,
    /// Lifetime such as `30d` or `12h`; absent means no expiry.
    expires_in: Option<String>,
}

/// Creates an API token; the response carries its secret once.
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(account): Path<String>,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be JSON {{\"name\": ..., \"expiresIn\": \"30d\"}}: {}",
            e.body_text()
        ))
    })?;
    let created = state
        .auth()
        .create_token(&account, &req.name, req.expires_in.as_deref())
        .await?;
    tracing::info!(user = %principal.subject, account = %account, token_id = %created.id, "token created");
    Ok(Json(serde_json::json!({
        "id": created.id,
        "name": created.name,
        "expiresAt": created.expires_at,
        "token": created.secret(),
    })))
}

/// Revokes one token of an account.
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((account, id)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.auth().revoke_token(&account, &id).await?;
    tracing::info!(user = %principal.subject, account = %account, token_id = %id, "token revoked");
    Ok(Json(serde_json::json!({})))
}
