//! `POST /executor/v1/models/{name}/versions`: registration from a workflow step, with no login
//! and no extra install (`/var/run/cairn/cairn model register ...` in the step, see
//! `cli::model`). Served beside the executor's artifact routes (outside `/api`).
//!
//! Authentication: the pod's projected service-account token (audience `cairn`), verified by
//! the artifact routes' [`Verifier`] (TokenReview, then the bound pod's uid and workflow label).
//! cairn then reads the live pod for what the token's review does not say: its
//! `serviceAccountName`, its Workflow's uid (owner reference) and its node id (annotation
//! `workflows.argoproj.io/node-id`).
//!
//! Authorization: RBAC `models create <model>` granted by name (`policy.default` does not apply
//! to service accounts: `PrincipalKind::ServiceAccount`) to the subject
//! `system:serviceaccount:<namespace>:<serviceAccountName>`, with the groups Kubernetes gives
//! service accounts (`system:serviceaccounts`, `system:serviceaccounts:<namespace>`).
//!
//! Invariants:
//! - The version's `run` (namespace, workflow, workflow uid, node id) comes from the verified
//!   pod, never from the request body (which has no such field).
//! - `artifact: NAME` is resolved here from the Workflow's status ([`resolve_artifact`]): the
//!   registering node's own input or output artifact of that name first, else the one output
//!   artifact of that name in the run; its URI and digest are what the executor reported.
//!   A `sourceUri`/`digest` sent with it must agree; without a resolvable artifact, `sourceUri`
//!   is required.
//! - A refused token is 401 and an RBAC refusal 403, both logged without the token.

use std::sync::Arc;

use crate::lineage::capture::artifact_uri;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::Value;

use super::{NewVersion, RegistryError, RunLink, register_version};
use crate::auth::{Auth, Principal};
use crate::workflow::artifacts::routes::{AuthFailure, PodIdentity, Verifier};
use crate::workflow::node::{ANNOTATION_NODE_ID, LABEL_WORKFLOW};

/// The route's path pattern.
pub const PATH: &str = "/executor/v1/models/{name}/versions";

/// The path a step posts a registration of `model` to.
pub fn versions_path(model: &str) -> String {
    format!("/executor/v1/models/{model}/versions")
}

/// State of the route.
#[derive(Clone)]
pub struct RegistryExecutorService {
    /// Token verification (the artifact routes' verifier).
    pub verifier: Arc<dyn Verifier>,
    /// cairn's cluster client: reads the pod and its Workflow.
    pub client: kube::Client,
    /// The RBAC policy and the store.
    pub auth: Arc<Auth>,
}

/// The route.
pub fn router(service: RegistryExecutorService) -> Router {
    Router::new()
        .route(PATH, post(register))
        .with_state(service)
}

/// What a step sends (`cli::model::register_body`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepRegistration {
    /// Where the model is, when not named by `artifact`.
    #[serde(default)]
    pub source_uri: Option<String>,
    /// Its digest.
    #[serde(default)]
    pub digest: Option<String>,
    /// The step's artifact of this name.
    #[serde(default)]
    pub artifact: Option<String>,
    /// Metrics.
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Params.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
    /// Tags.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Description.
    #[serde(default)]
    pub description: String,
}

/// The registering pod as cairn sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPod {
    /// The run link the version gets.
    pub run: RunLink,
    /// The pod's service account (`default` when unset, as Kubernetes does).
    pub service_account: String,
    /// The pod's name.
    pub pod: String,
}

impl StepPod {
    /// The RBAC subject: `system:serviceaccount:<namespace>:<serviceAccountName>`.
    pub fn subject(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.run.namespace, self.service_account
        )
    }

    /// The principal RBAC is checked for: the subject and Kubernetes' service-account groups.
    pub fn principal(&self) -> Principal {
        super::content::ServiceAccount {
            namespace: self.run.namespace.clone(),
            name: self.service_account.clone(),
        }
        .principal()
    }
}

/// The run link and service account of the live `pod` that `who` (the verified identity) names.
/// Pure.
pub fn step_pod(pod: &Pod, who: &PodIdentity) -> Result<StepPod, String> {
    let meta = &pod.metadata;
    let label = meta.labels.as_ref().and_then(|l| l.get(LABEL_WORKFLOW));
    if label.map(String::as_str) != Some(who.workflow.as_str()) {
        return Err(format!(
            "pod {}/{} no longer belongs to workflow {}",
            who.namespace, who.pod, who.workflow
        ));
    }
    let workflow_uid = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Workflow" && o.name == who.workflow)
        .map(|o| o.uid.clone())
        .ok_or_else(|| {
            format!(
                "pod {}/{} has no owner reference to Workflow {}",
                who.namespace, who.pod, who.workflow
            )
        })?;
    let node_id = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_NODE_ID))
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| who.pod.clone());
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".to_owned());
    Ok(StepPod {
        run: RunLink {
            namespace: who.namespace.clone(),
            workflow: who.workflow.clone(),
            workflow_uid,
            node_id,
        },
        service_account,
        pod: who.pod.clone(),
    })
}

/// An artifact found in a Workflow's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedArtifact {
    /// Its URI (`cairn://<namespace>/<key>`, `s3://<bucket>/<key>`, ...).
    pub uri: String,
    /// `sha256:<hex>` as the executor reported it.
    pub digest: Option<String>,
    /// The node it was found on.
    pub node_id: String,
}

fn named<'a>(node: &'a Value, side: &str, name: &str) -> Option<&'a Value> {
    node.get(side)?
        .get("artifacts")?
        .as_array()?
        .iter()
        .find(|a| a.get("name").and_then(Value::as_str) == Some(name))
}

/// Finds artifact `name` for node `node_id` of Workflow `wf` (JSON): the node's own inputs,
/// then its outputs, then the single output of that name anywhere in the run. Pure.
pub fn resolve_artifact(
    wf: &Value,
    node_id: &str,
    name: &str,
    namespace: &str,
) -> Result<ResolvedArtifact, String> {
    let nodes = wf
        .pointer("/status/nodes")
        .and_then(Value::as_object)
        .ok_or_else(|| "the Workflow has no node status yet".to_owned())?;
    let found = |id: &str, art: &Value| -> Result<ResolvedArtifact, String> {
        let uri = artifact_uri(art, namespace).ok_or_else(|| {
            format!("artifact {name:?} of node {id} has no location cairn can name")
        })?;
        let digest = art
            .get("digest")
            .and_then(Value::as_str)
            .filter(|d| d.starts_with("sha256:"))
            .map(str::to_owned);
        Ok(ResolvedArtifact {
            uri,
            digest,
            node_id: id.to_owned(),
        })
    };
    if let Some(own) = nodes.get(node_id) {
        for side in ["inputs", "outputs"] {
            if let Some(art) = named(own, side, name)
                && artifact_uri(art, namespace).is_some()
            {
                return found(node_id, art);
            }
        }
    }
    let mut outputs: Vec<(&String, &Value)> = nodes
        .iter()
        .filter_map(|(id, n)| named(n, "outputs", name).map(|a| (id, a)))
        .filter(|(_, a)| artifact_uri(a, namespace).is_some())
        .collect();
    match outputs.len() {
        0 => Err(format!(
            "no step of this workflow has an artifact {name:?} with a location (yet)"
        )),
        1 => {
            let (id, art) = outputs.remove(0);
            found(id, art)
        }
        n => Err(format!(
            "{n} steps output an artifact {name:?}; pass it to the registering step as an \
             input artifact of that name so cairn knows which one"
        )),
    }
}

/// The version to register from what the step sent and what cairn resolved. Pure.
pub fn new_version(
    model: &str,
    req: StepRegistration,
    resolved: Option<ResolvedArtifact>,
    run: RunLink,
) -> Result<NewVersion, RegistryError> {
    let invalid = |field: &str, expected: String| RegistryError::Invalid {
        field: format!("model {model:?}: {field}"),
        expected,
    };
    let (source_uri, digest) = match resolved {
        Some(r) => {
            if let Some(uri) = &req.source_uri
                && *uri != r.uri
            {
                return Err(invalid(
                    "sourceUri",
                    format!(
                        "the URI of artifact {:?} ({}) or none; got {uri:?}",
                        req.artifact.unwrap_or_default(),
                        r.uri
                    ),
                ));
            }
            if let (Some(d), Some(have)) = (&req.digest, &r.digest)
                && d != have
            {
                return Err(invalid(
                    "digest",
                    format!("the artifact's digest {have} or none; got {d:?}"),
                ));
            }
            (r.uri, r.digest.or(req.digest))
        }
        None => match req.source_uri {
            Some(uri) => (uri, req.digest),
            None => {
                return Err(invalid(
                    "sourceUri",
                    "a URI (--uri) or a resolvable step artifact (--artifact)".to_owned(),
                ));
            }
        },
    };
    Ok(NewVersion {
        source_uri,
        digest,
        run: Some(run),
        metrics: req.metrics,
        params: req.params,
        tags: req.tags,
        description: req.description,
        status: None,
    })
}

fn error(status: StatusCode, message: String) -> Response {
    (status, axum::Json(serde_json::json!({"message": message}))).into_response()
}

fn registry_error(e: RegistryError) -> Response {
    let status = match &e {
        RegistryError::NotFound { .. } => StatusCode::NOT_FOUND,
        RegistryError::AlreadyExists { .. } => StatusCode::CONFLICT,
        RegistryError::Invalid { .. }
        | RegistryError::Lineage(crate::lineage::graph::GraphError::Invalid { .. }) => {
            StatusCode::BAD_REQUEST
        }
        RegistryError::Lineage(_) | RegistryError::Store(_) => {
            tracing::error!(error = %e, kind = e.metric_label(), "model registration from a step");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(status, e.to_string())
}

/// The verified step pod behind the request's bearer token (also the promotion route's,
/// `lineage::promote::executor`); the error is the response to send (401, 503).
pub(crate) async fn identify(
    service: &RegistryExecutorService,
    headers: &HeaderMap,
) -> Result<StepPod, Response> {
    let outcome = match crate::api::bearer(headers) {
        None => Err(AuthFailure::Missing),
        Some(token) => service.verifier.verify(token).await,
    };
    let who = match outcome {
        Ok(who) => who,
        Err(AuthFailure::Unavailable(why)) => {
            tracing::warn!(error = %why, "model call from a step: token verification unavailable");
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot verify the token now".to_owned(),
            ));
        }
        Err(why) => {
            tracing::warn!(error = %why, "model call from a step refused: not authenticated");
            return Err(error(StatusCode::UNAUTHORIZED, why.to_string()));
        }
    };
    let pods: kube::Api<Pod> = kube::Api::namespaced(service.client.clone(), &who.namespace);
    let pod = match pods.get_opt(&who.pod).await {
        Ok(Some(pod)) => pod,
        Ok(None) => {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                format!("pod {}/{} is gone", who.namespace, who.pod),
            ));
        }
        Err(e) => {
            tracing::warn!(error = %e, pod = %who.pod, namespace = %who.namespace, "model call from a step: reading the pod");
            return Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read pod {}/{} now", who.namespace, who.pod),
            ));
        }
    };
    step_pod(&pod, &who).map_err(|why| {
        tracing::warn!(error = %why, "model call from a step refused: pod identity");
        error(StatusCode::UNAUTHORIZED, why)
    })
}

async fn resolve(
    service: &RegistryExecutorService,
    step: &StepPod,
    name: &str,
) -> Result<ResolvedArtifact, String> {
    let api: kube::Api<crate::workflow::types::Workflow> =
        kube::Api::namespaced(service.client.clone(), &step.run.namespace);
    let wf = api
        .get_opt(&step.run.workflow)
        .await
        .map_err(|e| format!("reading Workflow {}: {e}", step.run.workflow))?
        .ok_or_else(|| format!("Workflow {} is gone", step.run.workflow))?;
    let wf = serde_json::to_value(&wf).map_err(|e| format!("encoding the Workflow: {e}"))?;
    resolve_artifact(&wf, &step.run.node_id, name, &step.run.namespace)
}

async fn register(
    State(service): State<RegistryExecutorService>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let step = match identify(&service, &headers).await {
        Ok(step) => step,
        Err(response) => return response,
    };
    let principal = step.principal();
    if !service.auth.authorize(
        &principal,
        crate::auth::rbac::resources::MODELS,
        "create",
        &model,
    ) {
        tracing::warn!(subject = %principal.subject, model = %model, workflow = %step.run.workflow, "model registration denied by RBAC");
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "permission denied: create on models {model} for {}",
                principal.subject
            ),
        );
    }
    let req: StepRegistration = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("model {model:?}: registration body: {e}"),
            );
        }
    };
    let resolved = match &req.artifact {
        None => None,
        Some(name) => match resolve(&service, &step, name).await {
            Ok(r) => Some(r),
            Err(why) if req.source_uri.is_some() => {
                tracing::info!(artifact = %name, reason = %why, "artifact not resolved; using the given URI");
                None
            }
            Err(why) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("model {model:?}: artifact {name:?}: {why}; or give --uri"),
                );
            }
        },
    };
    let new = match new_version(&model, req, resolved, step.run.clone()) {
        Ok(n) => n,
        Err(e) => return registry_error(e),
    };
    let by = principal.subject.clone();
    let now = Timestamp::now();
    let name = model.clone();
    let written = service
        .auth
        .store()
        .write(move |txn| register_version(txn, &name, &new, &by, now))
        .await;
    match written {
        Ok(v) => {
            tracing::info!(model = %model, version = v.version, namespace = %step.run.namespace, workflow = %step.run.workflow, node = %step.run.node_id, "model version registered from a workflow step");
            (StatusCode::CREATED, axum::Json(v)).into_response()
        }
        Err(e) => registry_error(e),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn who() -> PodIdentity {
        PodIdentity {
            namespace: "ml".into(),
            pod: "pipe-x-register-123".into(),
            workflow: "pipe-x".into(),
        }
    }

    fn pod(extra: Value) -> Pod {
        let mut p = json!({
            "metadata": {
                "name": "pipe-x-register-123",
                "uid": "pu",
                "labels": {LABEL_WORKFLOW: "pipe-x"},
                "annotations": {ANNOTATION_NODE_ID: "pipe-x-999"},
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "pipe-x", "uid": "no"},
                    {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": "pipe-x", "uid": "wu"}
                ]
            },
            "spec": {"serviceAccountName": "recommender-pipeline", "containers": []}
        });
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                p.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(p).expect("pod")
    }

    #[test]
    fn run_link_and_subject_come_from_the_pod() {
        let step = step_pod(&pod(json!({})), &who()).expect("step");
        assert_eq!(
            step.run,
            RunLink {
                namespace: "ml".into(),
                workflow: "pipe-x".into(),
                workflow_uid: "wu".into(),
                node_id: "pipe-x-999".into(),
            }
        );
        assert_eq!(
            step.subject(),
            "system:serviceaccount:ml:recommender-pipeline"
        );
        assert_eq!(
            step.principal().rbac_subjects(),
            [
                "system:serviceaccount:ml:recommender-pipeline",
                "system:serviceaccounts",
                "system:serviceaccounts:ml"
            ]
        );

        // No service account: Kubernetes' `default`; no node annotation: the pod name.
        let bare = pod(json!({"spec": {"containers": []}}));
        let mut bare = bare;
        if let Some(a) = bare.metadata.annotations.as_mut() {
            a.clear();
        }
        let step = step_pod(&bare, &who()).expect("bare");
        assert_eq!(step.service_account, "default");
        assert_eq!(step.run.node_id, "pipe-x-register-123");

        let mut moved = pod(json!({}));
        moved.metadata.labels = None;
        assert!(
            step_pod(&moved, &who())
                .expect_err("label")
                .contains("no longer belongs")
        );
        let mut orphan = pod(json!({}));
        orphan.metadata.owner_references = None;
        assert!(
            step_pod(&orphan, &who())
                .expect_err("owner")
                .contains("no owner reference")
        );
    }

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn wf() -> Value {
        json!({"status": {"nodes": {
            "pipe-x-1": {"outputs": {"artifacts": [
                {"name": "model", "cairn": {"key": "pipe-x/pipe-x-train-1/model.tgz"}, "digest": D}
            ]}},
            "pipe-x-2": {"inputs": {"artifacts": [
                {"name": "model", "path": "/in/model.joblib", "s3": {"bucket": "b", "key": "k/model.tgz"}, "digest": D}
            ]}},
            "pipe-x-3": {"inputs": {"artifacts": [{"name": "model", "path": "/in/m"}]}},
            "pipe-x-4": {"outputs": {"artifacts": [
                {"name": "report", "http": {"url": "https://x/r"}},
                {"name": "model", "s3": {"bucket": "b", "key": "/other.tgz"}}
            ]}}
        }}})
    }

    #[test]
    fn artifacts_resolve_from_the_status() {
        // The registering node's own input wins.
        let own = resolve_artifact(&wf(), "pipe-x-2", "model", "ml").expect("own input");
        assert_eq!(own.uri, "s3://b/k/model.tgz");
        assert_eq!(own.digest.as_deref(), Some(D));
        // An input without a location falls through to the run's outputs, which are ambiguous.
        let err = resolve_artifact(&wf(), "pipe-x-3", "model", "ml").expect_err("two outputs");
        assert!(
            err.starts_with("2 steps output an artifact \"model\""),
            "{err}"
        );
        // Unique output elsewhere in the run.
        let report = resolve_artifact(&wf(), "pipe-x-3", "report", "ml").expect("report");
        assert_eq!(
            (report.uri.as_str(), report.digest, report.node_id.as_str()),
            ("https://x/r", None, "pipe-x-4")
        );
        let own_output = resolve_artifact(&wf(), "pipe-x-1", "model", "ml").expect("own output");
        assert_eq!(own_output.uri, "cairn://ml/pipe-x/pipe-x-train-1/model.tgz");
        assert!(
            resolve_artifact(&wf(), "pipe-x-3", "nope", "ml")
                .expect_err("missing")
                .contains("no step")
        );
        assert!(
            resolve_artifact(&json!({}), "n", "model", "ml")
                .expect_err("no status")
                .contains("no node status")
        );
    }

    fn run() -> RunLink {
        RunLink {
            namespace: "ml".into(),
            workflow: "w".into(),
            workflow_uid: "u".into(),
            node_id: "n".into(),
        }
    }

    #[test]
    fn versions_take_the_resolved_artifact_and_the_pods_run() {
        let resolved = ResolvedArtifact {
            uri: "s3://b/k".into(),
            digest: Some(D.into()),
            node_id: "n1".into(),
        };
        let req = StepRegistration {
            artifact: Some("model".into()),
            metrics: [("score".to_owned(), 0.41)].into(),
            ..Default::default()
        };
        let v = new_version("m", req.clone(), Some(resolved.clone()), run()).expect("v");
        assert_eq!(v.source_uri, "s3://b/k");
        assert_eq!(v.digest.as_deref(), Some(D));
        assert_eq!(v.run, Some(run()));
        assert_eq!(v.metrics["score"], 0.41);

        let conflicting = StepRegistration {
            source_uri: Some("s3://elsewhere".into()),
            ..req.clone()
        };
        let err = new_version("m", conflicting, Some(resolved.clone()), run())
            .expect_err("uri conflict")
            .to_string();
        assert!(
            err.starts_with("model \"m\": sourceUri: expected the URI of artifact"),
            "{err}"
        );
        let wrong_digest = StepRegistration {
            digest: Some(format!("sha256:{}", "2".repeat(64))),
            ..req.clone()
        };
        assert!(new_version("m", wrong_digest, Some(resolved), run()).is_err());

        let err = new_version("m", StepRegistration::default(), None, run())
            .expect_err("nothing")
            .to_string();
        assert!(err.contains("--uri"), "{err}");
        let given = StepRegistration {
            source_uri: Some("s3://x".into()),
            ..Default::default()
        };
        let v = new_version("m", given, None, run()).expect("uri");
        assert_eq!((v.source_uri.as_str(), v.run), ("s3://x", Some(run())));
    }

    #[test]
    fn bodies_cannot_carry_a_run() {
        let err = serde_json::from_value::<StepRegistration>(json!({
            "sourceUri": "s3://x",
            "run": {"namespace": "other"}
        }))
        .expect_err("unknown field");
        assert!(err.to_string().contains("unknown field `run`"), "{err}");
        assert_eq!(
            versions_path("recommender"),
            "/executor/v1/models/recommender/versions"
        );
    }
}
