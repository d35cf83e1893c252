//! `POST /executor/v1/models/{name}/promote`: promotion from a workflow step, with no login
//! (`/var/run/cairn/cairn model promote NAME --version N --alias A` in the step, see
//! `cli::promote`). Served beside the registry's executor route (outside `/api`).
//!
//! Authentication is the registry's executor route's ([`identify`]): the pod's projected
//! service-account token (audience `cairn`) verified by TokenReview, then the live pod gives
//! the RBAC subject `system:serviceaccount:<namespace>:<serviceAccountName>` with the groups
//! Kubernetes gives service accounts.
//!
//! Authorization: RBAC `models promote <model>/<alias>` granted to that subject by name (not by
//! `policy.default`: `PrincipalKind::ServiceAccount`), evaluated by the
//! [`Promoter`]'s [`Actor`] before the registry is read or Git is touched: a denied promotion
//! makes no commit. Then the same promotion as `POST /api/v1/models/{name}/promote`
//! (`api::promotions`), and the same follow of the pushed commit when a cluster is there.
//!
//! Invariants:
//! - The request body names only the version, the alias and `review`; who promotes comes from
//!   the verified pod, never from the body.
//! - Errors answer as the API does (`api::promotions::api_error`: 404 unknown model or version,
//!   400 no rule / not Ready / repository refusals); a denial is 403 with a message naming the
//!   subject, the action and the object. A refused token is 401; nothing logs the token.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;

use super::PromoteError;
use super::follow;
use super::op::{Actor, Promoter, Promotion};
use crate::auth::rbac::resources::MODELS;
use crate::lineage::registry::executor::{RegistryExecutorService, identify};

/// The route's path pattern.
pub const PATH: &str = "/executor/v1/models/{name}/promote";

/// The RBAC action checked.
pub const ACTION: &str = "promote";

/// The path a step posts a promotion of `model` to (`model` already URL-encoded).
pub fn promote_path(model: &str) -> String {
    format!("/executor/v1/models/{model}/promote")
}

/// Where the follow of a pushed commit looks (as `api::promotions` does).
#[derive(Clone, Default)]
pub struct FollowSettings {
    /// The GitOps controller's refresh handle, when it runs.
    pub refresher: Option<Arc<dyn crate::gitops::webhook::AppRefresher>>,
    /// Namespaces holding Applications: the control namespace first, then the watched ones.
    pub namespaces: Vec<String>,
}

/// State of the route.
#[derive(Clone)]
pub struct PromoteExecutorService {
    /// Token verification, cluster client, RBAC policy (shared with the registry's route).
    pub registry: RegistryExecutorService,
    /// The process's promoter (the API's); `None` without `[[promotion]]` entries.
    pub promoter: Option<Arc<Promoter>>,
    /// Where the pushed commit's sync is followed.
    pub follow: FollowSettings,
}

/// The route.
pub fn router(service: PromoteExecutorService) -> Router {
    Router::new().route(PATH, post(promote)).with_state(service)
}

/// What a step sends (`cli::promote::promote_body`): the API's body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepPromotion {
    /// The version to promote.
    pub version: u64,
    /// The alias to move (e.g. `prod`).
    pub alias: String,
    /// Push a review branch instead of the tracked branch (default: the rule's `review`).
    #[serde(default)]
    pub review: Option<bool>,
}

/// Parses a step's body; the error names the model and what was expected. Pure.
pub fn parse_body(model: &str, body: &[u8]) -> Result<StepPromotion, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "model {model:?}: promotion body: {e}; expected {{\"version\": N, \"alias\": NAME, \
             \"review\": BOOL?}}"
        )
    })
}

/// The RBAC object a promotion of `model` to `alias` is checked on: `<model>/<alias>`. Pure.
pub fn rbac_object(model: &str, alias: &str) -> String {
    crate::lineage::registry::alias_key(model, alias)
}

/// The answer to a failed promotion: the API's status and message, except that a denial names
/// the subject as well as the action and the object. Pure.
pub fn error_response(e: PromoteError) -> Response {
    match e {
        PromoteError::Forbidden { subject, object } => (
            StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "forbidden",
                "message": format!("permission denied: {ACTION} on {MODELS} {object} for {subject}"),
            })),
        )
            .into_response(),
        other => crate::api::promotions::api_error(other).into_response(),
    }
}

/// Whether a promotion's commit is followed: a push to the tracked branch that made a commit.
pub fn should_follow(record: &Promotion) -> bool {
    !record.review && record.commit.is_some()
}

async fn promote(
    State(service): State<PromoteExecutorService>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let step = match identify(&service.registry, &headers).await {
        Ok(step) => step,
        Err(response) => return response,
    };
    let req = match parse_body(&model, &body) {
        Ok(r) => r,
        Err(message) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(serde_json::json!({"error": "bad_request", "message": message})),
            )
                .into_response();
        }
    };
    let Some(promoter) = service.promoter.as_deref() else {
        return error_response_unconfigured();
    };
    let principal = step.principal();
    let auth = &service.registry.auth;
    let allowed = |object: &str| auth.authorize(&principal, MODELS, ACTION, object);
    let actor = Actor {
        subject: &principal.subject,
        allowed: &allowed,
    };
    match promoter
        .promote(&actor, &model, req.version, &req.alias, req.review)
        .await
    {
        Ok(record) => {
            tracing::info!(
                model = %model,
                version = record.version,
                alias = %record.alias,
                commit = record.commit.as_deref().unwrap_or(""),
                review = record.review,
                subject = %principal.subject,
                namespace = %step.run.namespace,
                workflow = %step.run.workflow,
                node = %step.run.node_id,
                "model promoted from a workflow step"
            );
            if should_follow(&record) {
                tokio::spawn(follow::follow(
                    service.registry.client.clone(),
                    service.follow.refresher.clone(),
                    service.follow.namespaces.clone(),
                    promoter.store().clone(),
                    record.clone(),
                    record.repo.clone(),
                ));
            }
            (StatusCode::OK, axum::Json(record)).into_response()
        }
        Err(e) => {
            tracing::warn!(
                model = %model,
                alias = %req.alias,
                version = req.version,
                subject = %principal.subject,
                workflow = %step.run.workflow,
                kind = e.metric_label(),
                error = %e,
                "model promotion from a workflow step refused"
            );
            error_response(e)
        }
    }
}

fn error_response_unconfigured() -> Response {
    crate::api::ApiError::BadRequest(
        "promotion is not configured: add [[promotion]] entries to cairn.toml".into(),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use jiff::Timestamp;
    use serde_json::{Value, json};

    use super::*;
    use crate::lineage::promote::op::PromotionKind;
    use crate::lineage::registry::RegistryError;

    #[test]
    fn bodies_name_version_and_alias_only() {
        let req = parse_body("m", br#"{"version": 4, "alias": "prod"}"#).expect("body");
        assert_eq!(
            req,
            StepPromotion {
                version: 4,
                alias: "prod".into(),
                review: None
            }
        );
        let req =
            parse_body("m", br#"{"version": 4, "alias": "prod", "review": true}"#).expect("review");
        assert_eq!(req.review, Some(true));
        // Who promotes is the pod; a body cannot say otherwise.
        let err = parse_body("m", br#"{"version": 4, "alias": "prod", "by": "admin"}"#)
            .expect_err("unknown field");
        assert!(
            err.starts_with("model \"m\": promotion body: unknown field `by`"),
            "{err}"
        );
        let err = parse_body("m", br#"{"alias": "prod"}"#).expect_err("no version");
        assert!(err.contains("missing field `version`"), "{err}");
        assert!(err.contains("expected {\"version\": N"), "{err}");
        let err = parse_body("m", br#"{"version": -1, "alias": "prod"}"#).expect_err("negative");
        assert!(err.contains("invalid value"), "{err}");
        assert!(parse_body("m", b"not json").is_err());
    }

    #[test]
    fn rbac_object_is_model_slash_alias() {
        assert_eq!(rbac_object("recommender", "prod"), "recommender/prod");
        assert_eq!(
            promote_path("recommender"),
            "/executor/v1/models/recommender/promote"
        );
    }

    async fn answer(e: PromoteError) -> (StatusCode, Value) {
        let response = error_response(e);
        let status = response.status();
        let bytes = to_bytes(response.into_body(), 1 << 16).await.expect("body");
        (status, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn errors_answer_as_the_api_and_denials_name_the_subject() {
        let (status, body) = answer(PromoteError::Forbidden {
            subject: "system:serviceaccount:ml:recommender-pipeline".into(),
            object: "recommender/prod".into(),
        })
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            body["message"],
            "permission denied: promote on models recommender/prod for \
             system:serviceaccount:ml:recommender-pipeline"
        );

        let (status, body) = answer(PromoteError::Registry(Box::new(RegistryError::NotFound {
            what: "model \"recommender\" version 9".into(),
        })))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

        let (status, _) = answer(PromoteError::NotReady {
            model: "recommender".into(),
            version: 3,
            status: "Archived",
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _) = answer(PromoteError::NoRule {
            model: "recommender".into(),
            alias: "prod".into(),
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, body) = answer(PromoteError::Conflict {
            repo: "https://git.example/deploy.git".into(),
            branch: "main".into(),
            attempts: 3,
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("rejected 3 times"),
            "{body}"
        );
        let (status, body) = answer(PromoteError::Aborted {
            op: "push",
            reason: "timed out after 270s".into(),
        })
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    fn record(review: bool, commit: Option<&str>) -> Promotion {
        Promotion {
            id: "m/prod/00000000000000000001".into(),
            kind: PromotionKind::Promote,
            model: "m".into(),
            version: 2,
            alias: "prod".into(),
            repo: "https://git.example/deploy.git".into(),
            branch: "main".into(),
            pushed_branch: "main".into(),
            review,
            file: "values.yaml".into(),
            commit: commit.map(str::to_owned),
            reverts: None,
            by: "system:serviceaccount:ml:sa".into(),
            at: Timestamp::UNIX_EPOCH,
            previous_version: None,
            lineage_id: None,
            attempts: 1,
            sync: None,
        }
    }

    #[test]
    fn only_commits_on_the_tracked_branch_are_followed() {
        assert!(should_follow(&record(false, Some("abc"))));
        assert!(!should_follow(&record(false, None)));
        assert!(!should_follow(&record(true, Some("abc"))));
        let as_json = json!(record(false, Some("abc")));
        assert_eq!(as_json["by"], "system:serviceaccount:ml:sa");
    }
}
