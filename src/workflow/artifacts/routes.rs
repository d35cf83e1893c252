//! The executor's HTTP routes to the built-in store, outside `/api` (they are not for users):
//!
//! - `PUT /executor/v1/artifacts/{namespace}/{*key}`: the body is stored (streamed, sha256
//!   computed here and compared with the `X-Cairn-Sha256` header when sent, size limit from
//!   `[workflow] artifact_max_bytes`); answers `{digest, size}`.
//! - `GET /executor/v1/artifacts/{namespace}/{*key}`: the bytes, with `X-Cairn-Sha256`.
//!
//! Authentication: `Authorization: Bearer <token>`, the pod's projected service-account token
//! with audience [`AUDIENCE`]. A [`Verifier`] turns it into the pod it was issued for; the real
//! one ([`TokenReviewVerifier`]) asks the apiserver (TokenReview with audiences [`AUDIENCE`]),
//! reads the bound pod from the token's extra claims, fetches that pod and checks its uid and
//! its `workflows.argoproj.io/workflow` label. [`authorize`] (pure) then scopes the request:
//! writes only under `<namespace>/<workflow>/…` of the pod's own namespace and workflow, reads
//! only in the pod's namespace. A missing or refused token is 401, logged without the token;
//! a request out of scope is 403.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::store::{BlobStore, StoreError, is_hex_digest};
use crate::workflow::node::LABEL_WORKFLOW;

/// Audience of the projected token the executor presents.
pub const AUDIENCE: &str = "cairn";
/// Header carrying a hex sha256 (upload claim, download answer).
pub const DIGEST_HEADER: &str = "x-cairn-sha256";
/// Path prefix of the routes.
pub const PREFIX: &str = "/executor/v1/artifacts";
/// Token-review extra claim: the bound pod's name.
pub const CLAIM_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// Token-review extra claim: the bound pod's uid.
pub const CLAIM_POD_UID: &str = "authentication.kubernetes.io/pod-uid";

/// The workflow pod a token was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// The pod's workflow (label).
    pub workflow: String,
}

/// Why a token does not authenticate a workflow pod (never contains the token).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No bearer token.
    #[error("no bearer token")]
    Missing,
    /// The apiserver did not authenticate it (or for another audience).
    #[error("token not authenticated: {0}")]
    Refused(String),
    /// Authenticated, but not a pod-bound service-account token.
    #[error("token is not bound to a pod: {0}")]
    NotPodBound(String),
    /// The bound pod is gone, replaced, or is not a workflow pod.
    #[error("pod {namespace}/{pod}: {why}")]
    NotWorkflowPod {
        /// Namespace.
        namespace: String,
        /// Pod.
        pod: String,
        /// What is wrong.
        why: String,
    },
    /// The apiserver could not be asked.
    #[error("cannot verify the token: {0}")]
    Unavailable(String),
}

/// The pod a TokenReview status names: `(namespace, pod name, pod uid)`. Pure.
pub fn bound_pod(status: &TokenReviewStatus) -> Result<(String, String, String), AuthFailure> {
    if status.authenticated != Some(true) {
        return Err(AuthFailure::Refused(
            status
                .error
                .clone()
                .unwrap_or_else(|| "not authenticated".to_string()),
        ));
    }
    if !status.audiences.iter().flatten().any(|a| a == AUDIENCE) {
        return Err(AuthFailure::Refused(format!(
            "audience {AUDIENCE:?} not granted"
        )));
    }
    let user = status.user.clone().unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let Some(rest) = username.strip_prefix("system:serviceaccount:") else {
        return Err(AuthFailure::NotPodBound(format!(
            "user {username:?} is not a service account"
        )));
    };
    let namespace = rest.split(':').next().unwrap_or_default().to_string();
    let extra = user.extra.unwrap_or_default();
    let one = |claim: &str| {
        extra
            .get(claim)
            .and_then(|v| v.first())
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| AuthFailure::NotPodBound(format!("no {claim} claim")))
    };
    if namespace.is_empty() {
        return Err(AuthFailure::NotPodBound(format!(
            "user {username:?} has no namespace"
        )));
    }
    Ok((namespace, one(CLAIM_POD_NAME)?, one(CLAIM_POD_UID)?))
}

/// Checks the live pod against the token's claims: same uid, a workflow pod. Pure.
pub fn workflow_pod(pod: &Pod, namespace: &str, uid: &str) -> Result<PodIdentity, AuthFailure> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let fail = |why: &str| AuthFailure::NotWorkflowPod {
        namespace: namespace.to_string(),
        pod: name.clone(),
        why: why.to_string(),
    };
    if pod.metadata.uid.as_deref() != Some(uid) {
        return Err(fail("uid differs from the token's (the pod was replaced)"));
    }
    let workflow = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_WORKFLOW))
        .filter(|w| !w.is_empty())
        .cloned()
        .ok_or_else(|| fail("not a workflow pod (no workflows.argoproj.io/workflow label)"))?;
    Ok(PodIdentity {
        namespace: namespace.to_string(),
        pod: name,
        workflow,
    })
}

/// What a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Download.
    Read,
    /// Upload.
    Write,
}

/// Whether `who` may `access` `namespace/key`: reads in its own namespace, writes under its
/// own workflow's prefix. Pure.
pub fn authorize(who: &PodIdentity, access: Access, namespace: &str, key: &str) -> bool {
    if who.namespace != namespace {
        return false;
    }
    match access {
        Access::Read => true,
        Access::Write => key
            .strip_prefix(who.workflow.as_str())
            .is_some_and(|rest| rest.starts_with('/')),
    }
}

/// Boxed future of a verification.
pub type VerifyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PodIdentity, AuthFailure>> + Send + 'a>>;

/// Turns a bearer token into the workflow pod it was issued for.
pub trait Verifier: Send + Sync {
    /// Verifies `token`.
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;
}

/// The real verifier: TokenReview (audience [`AUDIENCE`]) and a read of the bound pod.
#[derive(Clone)]
pub struct TokenReviewVerifier {
    /// cairn's client (needs `create tokenreviews` and `get pods`).
    pub client: kube::Client,
}

/// Asks the apiserver about `token` for audience [`AUDIENCE`] (a TokenReview); the answer's
/// status, to be judged by [`bound_pod`] or the caller's own rule. Also the model content
/// route's (`lineage::registry::content`).
pub async fn review_token(
    client: &kube::Client,
    token: &str,
) -> Result<TokenReviewStatus, AuthFailure> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            audiences: Some(vec![AUDIENCE.to_string()]),
        },
        ..Default::default()
    };
    let api: Api<TokenReview> = Api::all(client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| AuthFailure::Unavailable(e.to_string()))?;
    Ok(answer.status.unwrap_or_default())
}

impl Verifier for TokenReviewVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            let status = review_token(&self.client, token).await?;
            let (namespace, pod, uid) = bound_pod(&status)?;
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &namespace);
            let live = pods
                .get_opt(&pod)
                .await
                .map_err(|e| AuthFailure::Unavailable(e.to_string()))?
                .ok_or_else(|| AuthFailure::NotWorkflowPod {
                    namespace: namespace.clone(),
                    pod: pod.clone(),
                    why: "no such pod".to_string(),
                })?;
            workflow_pod(&live, &namespace, &uid)
        })
    }
}

/// State of the routes.
#[derive(Clone)]
pub struct ArtifactService {
    /// The store.
    pub store: Arc<BlobStore>,
    /// Token verification.
    pub verifier: Arc<dyn Verifier>,
    /// Largest upload.
    pub max_bytes: u64,
}

/// The executor routes.
pub fn router(service: ArtifactService) -> Router {
    Router::new()
        .route(
            &format!("{PREFIX}/{{namespace}}/{{*key}}"),
            put(upload).get(download),
        )
        .with_state(service)
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({"message": message}))).into_response()
}

async fn identify(
    service: &ArtifactService,
    headers: &HeaderMap,
    access: Access,
    namespace: &str,
    key: &str,
) -> Result<PodIdentity, Response> {
    let outcome = match crate::api::bearer(headers) {
        None => Err(AuthFailure::Missing),
        Some(token) => service.verifier.verify(token).await,
    };
    match outcome {
        Ok(who) if authorize(&who, access, namespace, key) => Ok(who),
        Ok(who) => {
            tracing::warn!(pod = %who.pod, pod_namespace = %who.namespace, namespace, key, ?access, "artifact request out of the pod's scope");
            Err(error(
                StatusCode::FORBIDDEN,
                format!(
                    "pod {}/{} may not {} {namespace}/{key}",
                    who.namespace,
                    who.pod,
                    if access == Access::Write {
                        "write"
                    } else {
                        "read"
                    }
                ),
            ))
        }
        Err(AuthFailure::Unavailable(why)) => {
            tracing::warn!(error = %why, "artifact request: token verification unavailable");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot verify the token now".to_string(),
            ))
        }
        Err(why) => {
            tracing::warn!(error = %why, namespace, key, "artifact request refused: not authenticated");
            Err(error(StatusCode::UNAUTHORIZED, why.to_string()))
        }
    }
}

/// The answer to a store error (400, 404, 413, 422, 500; a 5xx is logged).
pub fn store_error(e: StoreError) -> Response {
    let status = match &e {
        StoreError::BadKey { .. } => StatusCode::BAD_REQUEST,
        StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
        StoreError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        StoreError::DigestMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        StoreError::Body { .. } => StatusCode::BAD_REQUEST,
        StoreError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::error!(error = %e, "artifact store");
    }
    error(status, e.to_string())
}

async fn upload(
    State(service): State<ArtifactService>,
    Path((namespace, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let who = match identify(&service, &headers, Access::Write, &namespace, &key).await {
        Ok(who) => who,
        Err(response) => return response,
    };
    let claimed = headers.get(DIGEST_HEADER).and_then(|v| v.to_str().ok());
    if let Some(claimed) = claimed
        && !is_hex_digest(claimed)
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{DIGEST_HEADER}: expected 64 lowercase hex digits"),
        );
    }
    match service
        .store
        .put(
            &namespace,
            &key,
            &who.workflow,
            body.into_data_stream(),
            claimed,
            service.max_bytes,
        )
        .await
    {
        Ok(stored) => {
            tracing::info!(namespace, key, pod = %who.pod, digest = %stored.digest, size = stored.size, "artifact stored");
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({"digest": stored.digest, "size": stored.size})),
            )
                .into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn download(
    State(service): State<ArtifactService>,
    Path((namespace, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = identify(&service, &headers, Access::Read, &namespace, &key).await {
        return response;
    }
    serve_blob(&service.store, &namespace, &key).await
}

/// Streams the blob of `namespace/key` (shared with the user-facing download route).
pub async fn serve_blob(store: &BlobStore, namespace: &str, key: &str) -> Response {
    match store.get(namespace, key).await {
        Ok(record) => serve_ref(store, &record).await,
        Err(e) => store_error(e),
    }
}

/// Streams the blob `record` (read by the caller from [`BlobStore::get`]) names; errors answer
/// as the store's do.
pub async fn serve_ref(store: &BlobStore, record: &super::store::Ref) -> Response {
    let path = store.blob_path(&record.digest);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(source) => return store_error(StoreError::Io { path, source }),
    };
    let stream = tokio_util::io::ReaderStream::new(file);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, record.size.to_string()),
            (
                header::HeaderName::from_static(DIGEST_HEADER),
                record.digest.clone(),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::authentication::v1::UserInfo;
    use serde_json::json;

    use super::*;

    fn status(
        authenticated: bool,
        audiences: &[&str],
        user: &str,
        extra: &[(&str, &str)],
    ) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            audiences: Some(audiences.iter().map(|a| a.to_string()).collect()),
            user: Some(UserInfo {
                username: Some(user.to_string()),
                extra: Some(
                    extra
                        .iter()
                        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                        .collect::<BTreeMap<_, _>>(),
                ),
                ..Default::default()
            }),
            error: None,
        }
    }

    #[test]
    fn bound_pod_claims() {
        let claims = [(CLAIM_POD_NAME, "p"), (CLAIM_POD_UID, "u")];
        let ok = status(
            true,
            &["cairn"],
            "system:serviceaccount:ns:default",
            &claims,
        );
        assert_eq!(
            bound_pod(&ok).expect("ok"),
            ("ns".to_string(), "p".to_string(), "u".to_string())
        );
        for (bad, want) in [
            (
                status(false, &["cairn"], "system:serviceaccount:ns:d", &claims),
                "not authenticated",
            ),
            (
                status(
                    true,
                    &["https://kubernetes.default.svc"],
                    "system:serviceaccount:ns:d",
                    &claims,
                ),
                "audience",
            ),
            (
                status(true, &["cairn"], "alice", &claims),
                "not a service account",
            ),
            (
                status(
                    true,
                    &["cairn"],
                    "system:serviceaccount:ns:d",
                    &[(CLAIM_POD_UID, "u")],
                ),
                CLAIM_POD_NAME,
            ),
        ] {
            let err = bound_pod(&bad).expect_err("refused").to_string();
            assert!(err.contains(want), "{err} / {want}");
        }
    }

    #[test]
    fn live_pod_checks() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u", "labels": {LABEL_WORKFLOW: "wf"}}
        }))
        .expect("pod");
        assert_eq!(
            workflow_pod(&pod, "ns", "u").expect("ok"),
            PodIdentity {
                namespace: "ns".into(),
                pod: "p".into(),
                workflow: "wf".into()
            }
        );
        assert!(
            workflow_pod(&pod, "ns", "other")
                .expect_err("uid")
                .to_string()
                .contains("replaced")
        );
        let plain: Pod =
            serde_json::from_value(json!({"metadata": {"name": "p", "uid": "u"}})).expect("pod");
        assert!(
            workflow_pod(&plain, "ns", "u")
                .expect_err("label")
                .to_string()
                .contains("not a workflow pod")
        );
    }

    #[test]
    fn scope_table() {
        let who = PodIdentity {
            namespace: "ns".into(),
            pod: "p".into(),
            workflow: "wf".into(),
        };
        for (access, ns, key, allowed) in [
            (Access::Write, "ns", "wf/p/out.tgz", true),
            (Access::Write, "ns", "wf2/p/out.tgz", false),
            (Access::Write, "ns", "wf", false),
            (Access::Write, "other", "wf/p/out.tgz", false),
            (Access::Read, "ns", "wf2/p/out.tgz", true),
            (Access::Read, "other", "wf/p/out.tgz", false),
        ] {
            assert_eq!(
                authorize(&who, access, ns, key),
                allowed,
                "{access:?} {ns}/{key}"
            );
        }
    }
}
