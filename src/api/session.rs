//! `/api/v1/session`: local login, the caller's identity, logout.
//!
//! A login always issues a fresh session id (rotation), delivered only as an `HttpOnly` cookie;
//! the CLI reads that cookie from the response and presents it as a bearer credential.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState, cookie};
use crate::auth::Principal;

/// Body of `POST /api/v1/session`.
#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Logs a local user in and sets the session cookie.
pub async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::BadRequest(format!(
            "login body must be JSON {{\"username\": ..., \"password\": ...}}: {}",
            e.body_text()
        ))
    })?;
    // A login replaces any session the browser already had (rotation): end the old one.
    if let Some(old) = cookie(&headers, &state.cookie_name()) {
        let _ = state.auth().logout(old).await;
    }
    let (principal, session_id) = state.auth().login(&req.username, &req.password).await?;
    tracing::info!(user = %principal.subject, "login");
    let mut response = Json(userinfo_body(&principal)).into_response();
    let max_age = state.auth().session_absolute_timeout().as_secs();
    set_cookie(&mut response, &state, session_id.as_str(), Some(max_age))?;
    Ok(response)
}

/// Ends the caller's session and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    if let Some(id) = principal.session_id() {
        state.auth().logout(id).await?;
    }
    tracing::info!(user = %principal.subject, "logout");
    let mut response = Json(serde_json::json!({})).into_response();
    set_cookie(&mut response, &state, "", Some(0))?;
    Ok(response)
}

/// Who the caller is.
pub async fn userinfo(Extension(principal): Extension<Principal>) -> Json<serde_json::Value> {
    Json(userinfo_body(&principal))
}

fn userinfo_body(principal: &Principal) -> serde_json::Value {
    serde_json::json!({
        "loggedIn": true,
        "username": principal.subject,
        "groups": principal.groups,
        "iss": principal.issuer(),
    })
}

pub(super) fn set_cookie(
    response: &mut Response,
    state: &AppState,
    value: &str,
    max_age: Option<u64>,
) -> Result<(), ApiError> {
    let mut cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        state.cookie_name()
    );
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if state.secure_cookies() {
        cookie.push_str("; Secure");
    }
    let value = HeaderValue::from_str(&cookie)
        .map_err(|_| ApiError::Internal("session cookie is not a valid header".into()))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(())
}
