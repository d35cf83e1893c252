//! `GET /executor/v1/models/{name}/versions/{version}/content`: the bytes of a model version
//! kept in cairn's built-in artifact store, for the pods that serve it (the bookstore's
//! `serve.py` fetches `MODEL_URI` with `MODEL_TOKEN_FILE`). Served beside the executor's other
//! routes (outside `/api`), on the address pods reach (`workflow.executor_url`).
//!
//! Authentication: a projected service-account token with audience `cairn`, verified by a
//! TokenReview (which also refuses the token of a deleted pod); any pod may present one, not
//! only a workflow's. Authorization: RBAC `models get <model>`, granted by name
//! (`policy.default`, meant for people, does not apply: the principal is a `PrincipalKind::ServiceAccount`), for the subject
//! `system:serviceaccount:<namespace>:<serviceaccount>` with Kubernetes' service-account groups,
//! so a policy names which serving identities may read which models.
//!
//! Invariants:
//! - Only a version whose `source_uri` is in the built-in store (`cairn://<namespace>/<key>`) is
//!   served; any other location is answered 409 naming it (the serving pod fetches it there).
//! - The blob served is the one the version's digest names: a store entry since overwritten
//!   with other bytes is refused (409), never served under the version's name.
//! - A refused token is 401 and an RBAC refusal 403, logged without the token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::authentication::v1::TokenReviewStatus;

use super::{RegistryError, get_version};
use crate::auth::{Auth, Principal, PrincipalKind};
use crate::workflow::artifacts::routes::{
    AUDIENCE, AuthFailure, review_token, serve_ref, store_error,
};
use crate::workflow::artifacts::store::BlobStore;

/// The route's path pattern.
pub const PATH: &str = "/executor/v1/models/{name}/versions/{version}/content";

/// The URL a pod fetches version `version` of `model` from, under `base` (cairn's
/// `workflow.executor_url`).
pub fn content_url(base: &str, model: &str, version: u64) -> String {
    format!(
        "{}/executor/v1/models/{model}/versions/{version}/content",
        base.trim_end_matches('/')
    )
}

/// The service account a token was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceAccount {
    /// The principal RBAC is checked for: `system:serviceaccount:<ns>:<name>` and the groups
    /// Kubernetes gives service accounts.
    pub fn principal(&self) -> Principal {
        Principal {
            subject: format!("system:serviceaccount:{}:{}", self.namespace, self.name),
            groups: vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{}", self.namespace),
            ],
            kind: PrincipalKind::ServiceAccount,
            session_id: None,
        }
    }
}

/// The service account a TokenReview status authenticates (audience `cairn` granted). Pure.
pub fn service_account(status: &TokenReviewStatus) -> Result<ServiceAccount, AuthFailure> {
    if status.authenticated != Some(true) {
        return Err(AuthFailure::Refused(
            status
                .error
                .clone()
                .unwrap_or_else(|| "not authenticated".to_owned()),
        ));
    }
    if !status.audiences.iter().flatten().any(|a| a == AUDIENCE) {
        return Err(AuthFailure::Refused(format!(
            "audience {AUDIENCE:?} not granted"
        )));
    }
    let username = status
        .user
        .as_ref()
        .and_then(|u| u.username.clone())
        .unwrap_or_default();
    let parts: Vec<&str> = username
        .strip_prefix("system:serviceaccount:")
        .map(|rest| rest.split(':').collect())
        .unwrap_or_default();
    match parts.as_slice() {
        [ns, name] if !ns.is_empty() && !name.is_empty() => Ok(ServiceAccount {
            namespace: (*ns).to_owned(),
            name: (*name).to_owned(),
        }),
        _ => Err(AuthFailure::Refused(format!(
            "user {username:?} is not a service account"
        ))),
    }
}

/// Boxed future of a verification.
pub type AccountFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<ServiceAccount, AuthFailure>> + Send + 'a>,
>;

/// Turns a bearer token into the service account it was issued to.
pub trait AccountVerifier: Send + Sync {
    /// Verifies `token`.
    fn verify<'a>(&'a self, token: &'a str) -> AccountFuture<'a>;
}

/// The real verifier: a TokenReview with audience `cairn`.
#[derive(Clone)]
pub struct TokenReviewAccounts {
    /// cairn's client (needs `create tokenreviews`).
    pub client: kube::Client,
}

impl AccountVerifier for TokenReviewAccounts {
    fn verify<'a>(&'a self, token: &'a str) -> AccountFuture<'a> {
        Box::pin(async move { service_account(&review_token(&self.client, token).await?) })
    }
}

/// State of the route.
#[derive(Clone)]
pub struct ContentService {
    /// Token verification.
    pub verifier: Arc<dyn AccountVerifier>,
    /// The RBAC policy and the store.
    pub auth: Arc<Auth>,
    /// The built-in artifact store.
    pub blobs: Arc<BlobStore>,
}

/// The route.
pub fn router(service: ContentService) -> Router {
    Router::new().route(PATH, get(content)).with_state(service)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({"message": message}))).into_response()
}

/// Where in the built-in store a version's bytes are: `(namespace, key)` of a
/// `cairn://<namespace>/<key>` source URI; `None` for any other location. Pure.
pub fn builtin_location(source_uri: &str) -> Option<(&str, &str)> {
    let rest = source_uri.strip_prefix("cairn://")?;
    let (namespace, key) = rest.split_once('/')?;
    (!namespace.is_empty() && !key.is_empty()).then_some((namespace, key))
}

async fn content(
    State(service): State<ContentService>,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let outcome = match crate::api::bearer(&headers) {
        None => Err(AuthFailure::Missing),
        Some(token) => service.verifier.verify(token).await,
    };
    let account = match outcome {
        Ok(a) => a,
        Err(AuthFailure::Unavailable(why)) => {
            tracing::warn!(error = %why, "model content: token verification unavailable");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot verify the token now".to_owned(),
            );
        }
        Err(why) => {
            tracing::warn!(error = %why, model = %model, "model content refused: not authenticated");
            return error(StatusCode::UNAUTHORIZED, why.to_string());
        }
    };
    let principal = account.principal();
    if !service.auth.authorize(
        &principal,
        crate::auth::rbac::resources::MODELS,
        "get",
        &model,
    ) {
        tracing::warn!(subject = %principal.subject, model = %model, "model content denied by RBAC");
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "permission denied: get on models {model} for {}",
                principal.subject
            ),
        );
    }
    let Ok(number) = version.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("model {model:?}: version {version:?} is not a version number"),
        );
    };
    let found = service
        .auth
        .store()
        .read(|txn| get_version(txn, &model, number));
    let v = match found {
        Ok(v) => v,
        Err(e @ RegistryError::NotFound { .. }) => {
            return error(StatusCode::NOT_FOUND, e.to_string());
        }
        Err(e) => {
            tracing::error!(error = %e, "model content: reading the registry");
            return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    let Some((namespace, key)) = builtin_location(&v.source_uri) else {
        return error(
            StatusCode::CONFLICT,
            format!(
                "model {model} version {number} is at {}, not in cairn's artifact store: fetch it there",
                v.source_uri
            ),
        );
    };
    let record = match service.blobs.get(namespace, key).await {
        Ok(record) => record,
        Err(e) => return store_error(e),
    };
    if let Some(want) = v.digest.as_deref()
        && want.strip_prefix("sha256:").unwrap_or(want) != record.digest
    {
        tracing::warn!(model = %model, version = number, stored = %record.digest, "model content: the store's bytes differ from the version's digest");
        return error(
            StatusCode::CONFLICT,
            format!(
                "model {model} version {number}: {} now holds other bytes than the version's {want}",
                v.source_uri
            ),
        );
    }
    serve_ref(&service.blobs, &record).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;

    fn status(authenticated: bool, audiences: &[&str], username: &str) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: Some(audiences.iter().map(|a| (*a).to_owned()).collect()),
            user: Some(UserInfo {
                username: Some(username.to_owned()),
                ..Default::default()
            }),
            error: None,
        }
    }

    #[test]
    fn a_service_account_token_for_cairn_names_its_account() {
        let sa = service_account(&status(
            true,
            &["cairn"],
            "system:serviceaccount:dp-prod:recommender",
        ))
        .expect("accepted");
        assert_eq!(
            sa,
            ServiceAccount {
                namespace: "dp-prod".into(),
                name: "recommender".into()
            }
        );
        let p = sa.principal();
        assert_eq!(p.subject, "system:serviceaccount:dp-prod:recommender");
        assert_eq!(
            p.groups,
            vec![
                "system:serviceaccounts".to_owned(),
                "system:serviceaccounts:dp-prod".to_owned()
            ]
        );
    }

    #[test]
    fn other_tokens_are_refused() {
        let cases = [
            status(false, &["cairn"], "system:serviceaccount:a:b"),
            status(true, &["kubernetes"], "system:serviceaccount:a:b"),
            status(true, &[], "system:serviceaccount:a:b"),
            status(true, &["cairn"], "alice"),
            status(true, &["cairn"], "system:serviceaccount:a"),
            status(true, &["cairn"], "system:serviceaccount::b"),
            status(true, &["cairn"], "system:serviceaccount:a:b:c"),
            TokenReviewStatus::default(),
        ];
        for case in cases {
            assert!(
                matches!(service_account(&case), Err(AuthFailure::Refused(_))),
                "{case:?}"
            );
        }
    }

    #[test]
    fn only_builtin_store_uris_have_a_location() {
        assert_eq!(
            builtin_location("cairn://ml/wf-1/train/model.tgz"),
            Some(("ml", "wf-1/train/model.tgz"))
        );
        for other in [
            "s3://bucket/key",
            "cairn://ml",
            "cairn:///key",
            "cairn://ml/",
            "file:///x",
            "",
        ] {
            assert_eq!(builtin_location(other), None, "{other}");
        }
    }

    #[test]
    fn content_urls_join_the_base() {
        assert_eq!(
            content_url("http://10.0.0.5:9443/", "recommender", 3),
            "http://10.0.0.5:9443/executor/v1/models/recommender/versions/3/content"
        );
        assert_eq!(
            content_url("http://h:1", "m", 12),
            "http://h:1/executor/v1/models/m/versions/12/content"
        );
    }
}
