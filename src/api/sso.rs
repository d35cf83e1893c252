//! The browser side of OIDC single sign-on: `GET /auth/login`, `GET /auth/callback`,
//! `GET /auth/info` (what the login page shows) and `POST /auth/logout`.
//!
//! `/auth/login` starts an authorization-code login ([`crate::auth::oidc::Sso::begin`]) and
//! binds it to the browser with a short-lived `HttpOnly`, `SameSite=Lax` cookie holding the
//! `state` (Lax: the provider's top-level redirect back carries it; a cross-site subrequest does
//! not), scoped to the callback path. `/auth/callback` clears that cookie whatever happens,
//! completes the login and then starts a server-side session exactly as a password login does
//! (same cookie, same rotation, same timeouts). Failures answer 401 with the reason and are
//! logged with their metric label; the provider's codes and tokens never are.
//!
//! `/auth/login`, `/auth/callback` and `/auth/info` are outside `/api` and outside the route
//! table, like `/healthz`: they take no credential. `/auth/logout` is in the table
//! (`Access::Session`), so it gets the gate's CSRF and session checks.

use axum::Json;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState, cookie, session};
use crate::auth::Principal;
use crate::auth::oidc::{CallbackQuery, OidcError, flow};

/// Name of the login-state cookie without TLS; with TLS the `__Secure-` prefix is added (not
/// `__Host-`, which would force `Path=/`).
pub const STATE_COOKIE: &str = "cairn_oidc_state";

/// The login-state cookie's name for this server.
pub fn state_cookie_name(state: &AppState) -> String {
    if state.secure_cookies() {
        format!("__Secure-{STATE_COOKIE}")
    } else {
        STATE_COOKIE.to_owned()
    }
}

fn state_cookie(state: &AppState, value: &str, max_age: u64) -> Result<HeaderValue, ApiError> {
    let mut c = format!(
        "{}={value}; Path={}; HttpOnly; SameSite=Lax; Max-Age={max_age}",
        state_cookie_name(state),
        crate::auth::oidc::CALLBACK_PATH
    );
    if state.secure_cookies() {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c)
        .map_err(|_| ApiError::Internal("state cookie is not a valid header".into()))
}

/// Query of `GET /auth/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    /// Where to go after login: a same-origin path, anything else becomes `/`.
    return_url: Option<String>,
}

fn not_configured() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": OidcError::NotConfigured.to_string()})),
    )
        .into_response()
}

fn failure(status: StatusCode, error: &OidcError) -> Response {
    metrics::counter!("cairn_sso_logins_total", "result" => error.metric_label()).increment(1);
    tracing::warn!(error = %error, reason = error.metric_label(), "SSO login failed");
    let body = format!("SSO login failed: {error}\n\nStart again from the login page: /login\n");
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /auth/login`: redirects to the provider.
pub async fn login(State(state): State<AppState>, Query(q): Query<LoginQuery>) -> Response {
    let Some(sso) = state.auth().sso() else {
        return not_configured();
    };
    let begun = match sso.begin(q.return_url.as_deref()).await {
        Ok(b) => b,
        Err(e) => return failure(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    let cookie = match state_cookie(&state, &begun.state, flow::PENDING_TTL.as_secs()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Ok(location) = HeaderValue::from_str(begun.url.as_str()) else {
        return ApiError::Internal("authorization URL is not a valid header".into())
            .into_response();
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    h.insert(header::LOCATION, location);
    h.append(header::SET_COOKIE, cookie);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /auth/callback`: validates the provider's answer and starts a session.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(sso) = state.auth().sso() else {
        return not_configured();
    };
    let clear = state_cookie(&state, "", 0);
    let finished = sso
        .finish(cookie(&headers, &state_cookie_name(&state)), &q)
        .await;
    let mut response = match finished {
        Ok(finished) => match start_session(&state, &headers, finished.principal).await {
            Ok(mut response) => {
                if let Ok(location) = HeaderValue::from_str(&finished.return_url) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                metrics::counter!("cairn_sso_logins_total", "result" => "ok").increment(1);
                response
            }
            Err(e) => e.into_response(),
        },
        Err(e) => failure(StatusCode::UNAUTHORIZED, &e),
    };
    if let Ok(clear) = clear {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    principal: Principal,
) -> Result<Response, ApiError> {
    // As a password login: a login replaces the browser's previous session (rotation).
    if let Some(old) = cookie(headers, &state.cookie_name()) {
        let _ = state.auth().logout(old).await;
    }
    let (principal, id) = state.auth().login_sso(principal).await?;
    tracing::info!(user = %principal.subject, groups = ?principal.groups, iss = %principal.issuer(), "SSO login");
    let mut response = StatusCode::SEE_OTHER.into_response();
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/"));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let max_age = state.auth().session_absolute_timeout().as_secs();
    session::set_cookie(&mut response, state, id.as_str(), Some(max_age))?;
    Ok(response)
}

/// `GET /auth/info`: whether SSO is configured and usable, and whether any local account may
/// log in with a password (`userLoginsDisabled`, Argo CD's name), for the login page.
pub async fn info(State(state): State<AppState>) -> Json<serde_json::Value> {
    let user_logins_disabled = !state.auth().accounts().password_login_possible();
    match state.auth().sso() {
        None => Json(serde_json::json!({
            "enabled": false,
            "userLoginsDisabled": user_logins_disabled,
        })),
        Some(sso) => {
            let status = sso.status().await;
            Json(serde_json::json!({
                "enabled": true,
                "name": status.name,
                "issuer": status.issuer,
                "ready": status.ready,
                "error": status.error,
                "loginURL": "/auth/login",
                "userLoginsDisabled": user_logins_disabled,
            }))
        }
    }
}

/// `POST /auth/logout`: ends the session, clears the cookie and says where the browser goes
/// next: the provider's `logoutURL` for an SSO session when configured, else `/login`.
pub async fn logout(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    if let Some(id) = principal.session_id() {
        state.auth().logout(id).await?;
    }
    tracing::info!(user = %principal.subject, "logout");
    let redirect = match (&principal.kind, state.auth().sso()) {
        (crate::auth::PrincipalKind::Sso { .. }, Some(sso)) => sso.logout_url(),
        _ => None,
    }
    .unwrap_or_else(|| "/login".to_owned());
    let mut response = Json(serde_json::json!({ "redirect": redirect })).into_response();
    session::set_cookie(&mut response, &state, "", Some(0))?;
    Ok(response)
}

/// Body of `POST /auth/cli/login`.
#[derive(Debug, Deserialize)]
pub struct CliLoginRequest {
    /// The CLI's loopback redirect URI (`http://localhost:PORT/auth/callback`).
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
}

fn json_failure(status: StatusCode, error: &OidcError) -> Response {
    metrics::counter!("cairn_sso_logins_total", "result" => error.metric_label()).increment(1);
    tracing::warn!(error = %error, reason = error.metric_label(), client = "cli", "SSO login failed");
    (
        status,
        Json(serde_json::json!({ "error": error.to_string(), "reason": error.metric_label() })),
    )
        .into_response()
}

/// `POST /auth/cli/login`: starts a login of the CLI's public client (`cliClientID`); answers
/// the provider URL for the user's browser and the state the CLI presents when it finishes.
/// No cookie is involved, so no CSRF defence is needed: the answer is only useful to the
/// caller, who must also receive the code on its loopback port.
pub async fn cli_login(
    State(state): State<AppState>,
    body: Result<Json<CliLoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(sso) = state.auth().sso() else {
        return not_configured();
    };
    let Ok(Json(req)) = body else {
        return ApiError::BadRequest(
            "expected a JSON body {\"redirectURI\": \"http://localhost:PORT/auth/callback\"}"
                .into(),
        )
        .into_response();
    };
    match sso.begin_cli(&req.redirect_uri).await {
        Ok(begun) => Json(serde_json::json!({ "url": begun.url.as_str(), "state": begun.state }))
            .into_response(),
        Err(e @ (OidcError::CliRedirect { .. } | OidcError::CliNotConfigured)) => {
            json_failure(StatusCode::BAD_REQUEST, &e)
        }
        Err(e) => json_failure(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// `POST /auth/cli/token`: completes a CLI login with the state and the code (or the
/// provider's error) its loopback listener received; answers a session id the CLI stores as
/// its bearer credential, as after a password login.
pub async fn cli_token(
    State(state): State<AppState>,
    body: Result<Json<CallbackQuery>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(sso) = state.auth().sso() else {
        return not_configured();
    };
    let Ok(Json(q)) = body else {
        return ApiError::BadRequest("expected a JSON body {\"state\": ..., \"code\": ...}".into())
            .into_response();
    };
    let finished = match sso.finish_cli(&q).await {
        Ok(f) => f,
        Err(e) => return json_failure(StatusCode::UNAUTHORIZED, &e),
    };
    match state.auth().login_sso(finished.principal).await {
        Ok((principal, id)) => {
            metrics::counter!("cairn_sso_logins_total", "result" => "ok").increment(1);
            tracing::info!(user = %principal.subject, groups = ?principal.groups, client = "cli", "SSO login");
            let mut response = Json(serde_json::json!({
                "token": id.as_str(),
                "username": principal.subject,
                "groups": principal.groups,
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
