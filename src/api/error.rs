//! API errors and their HTTP mapping.
//!
//! Every error answers JSON `{"error": <code>, "message": <text>}`. Messages name what was wrong
//! but never echo a credential.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;

/// Errors returned by API handlers and the gate.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    /// Login refused: wrong user name or password (deliberately not saying which).
    #[error("invalid username or password")]
    BadCredentials,
    /// The account is locked after repeated failed logins.
    #[error("account is locked after too many failed logins; retry in {retry_after_secs}s")]
    Locked {
        /// Seconds until a new attempt is accepted.
        retry_after_secs: u64,
    },
    /// The RBAC policy does not allow this.
    #[error("permission denied: {action} on {resource} {object}")]
    Forbidden {
        /// RBAC resource.
        resource: &'static str,
        /// RBAC action.
        action: &'static str,
        /// The object the check was made for.
        object: String,
    },
    /// A state-changing request failed the CSRF checks.
    #[error("request rejected (CSRF): {0}")]
    Csrf(String),
    /// The request body or parameters are invalid.
    #[error("{0}")]
    BadRequest(String),
    /// The object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The object already exists (a create of an existing name).
    #[error("{0}")]
    Conflict(String),
    /// No cluster is configured or reachable.
    #[error("the Kubernetes cluster is not reachable")]
    ClusterUnavailable,
    /// The cluster answered with an error.
    #[error("Kubernetes API error: {0}")]
    Kube(String),
    /// An internal failure (store, I/O). Details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::BadCredentials => StatusCode::UNAUTHORIZED,
            Self::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden { .. } | Self::Csrf(_) => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::ClusterUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Kube(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::BadCredentials => "bad_credentials",
            Self::Locked { .. } => "locked",
            Self::Forbidden { .. } => "forbidden",
            Self::Csrf(_) => "csrf",
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::ClusterUnavailable => "cluster_unavailable",
            Self::Kube(_) => "kube",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let status = self.status();
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        let mut response = (status, Json(body)).into_response();
        if let Self::Locked { retry_after_secs } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Locked { retry_after } => Self::Locked {
                retry_after_secs: retry_after.as_secs().max(1),
            },
            AuthError::BadCredentials => Self::BadCredentials,
            AuthError::NewPassword(_) | AuthError::TokenName { .. } | AuthError::Expiry { .. } => {
                Self::BadRequest(err.to_string())
            }
            AuthError::MissingCapability { .. } => Self::BadRequest(err.to_string()),
            AuthError::AccountNotFound { .. } | AuthError::TokenNotFound { .. } => {
                Self::NotFound(err.to_string())
            }
            AuthError::Store(_)
            | AuthError::Hashing(_)
            | AuthError::InitialPasswordFile { .. }
            | AuthError::Policy(_) => Self::Internal(err.to_string()),
            AuthError::Unauthenticated | AuthError::Expired | AuthError::Disabled { .. } => {
                Self::Unauthenticated
            }
        }
    }
}

impl From<crate::k8s::K8sError> for ApiError {
    fn from(err: crate::k8s::K8sError) -> Self {
        // The message names what was attempted, or (CRD missing) what the operator must do.
        Self::Kube(err.to_string())
    }
}
