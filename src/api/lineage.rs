//! `/api/v1/lineage/...`: queries over the lineage graph ([`crate::lineage::query`]) — what
//! `cairn lineage graph|model|serving|export` call.
//!
//! RBAC: resource `lineage`, action `get`, object `*` (the graph links every team's runs, so
//! reading it is one grant). The serving query additionally reads the live object and its
//! Application through cairn's cluster client.
//!
//! The handlers are thin: parse, authorize, read one snapshot, answer; the decisions are in
//! `lineage::query`.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::routing::{MethodRouter, get};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde::Deserialize;

use super::{Access, ApiError, AppState, RouteSpec};
use crate::auth::Principal;
use crate::auth::rbac::resources::LINEAGE;
use crate::lineage::capture::application_revision;
use crate::lineage::query::{
    self, Direction, Export, LiveObject, Provenance, QueryError, Serving, Subgraph,
};

/// Default hop limit of `/lineage/graph`.
const DEFAULT_HOPS: u32 = 3;

/// This family's rows of the route table.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use axum::http::Method;
    fn spec(path: &'static str) -> RouteSpec {
        RouteSpec {
            method: Method::GET,
            path,
            access: Access::Rbac {
                resource: LINEAGE,
                action: "get",
            },
        }
    }
    vec![
        (spec("/api/v1/lineage/graph"), get(graph)),
        (spec("/api/v1/lineage/models/{name}/{version}"), get(model)),
        (
            spec("/api/v1/lineage/serving/{namespace}/{kind}/{name}"),
            get(serving),
        ),
        (spec("/api/v1/lineage/export"), get(export)),
    ]
}

fn authorize(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    if state.auth().authorize(principal, LINEAGE, "get", "*") {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            resource: LINEAGE,
            action: "get",
            object: "*".to_owned(),
        })
    }
}

fn api_error(e: QueryError) -> ApiError {
    match e {
        QueryError::Graph(g) => {
            tracing::warn!(error = %g, label = g.metric_label(), "lineage read failed");
            ApiError::Internal(g.to_string())
        }
        QueryError::NodeNotFound { .. } | QueryError::ModelVersionNotFound { .. } => {
            ApiError::NotFound(e.to_string())
        }
        QueryError::NotPromoted { .. } => ApiError::NotFound(e.to_string()),
        QueryError::Invalid { .. } | QueryError::NotTracked { .. } => {
            ApiError::BadRequest(e.to_string())
        }
    }
}

fn read<T>(
    state: &AppState,
    f: impl FnOnce(&redb::ReadTransaction) -> Result<T, QueryError>,
) -> Result<T, ApiError> {
    state.auth().store().read(f).map_err(api_error)
}

/// Query of `/lineage/graph`.
#[derive(Debug, Deserialize)]
pub struct GraphQuery {
    /// Start node id.
    pub from: String,
    /// Hop limit (default 3, at most `query::MAX_HOPS`).
    pub hops: Option<u32>,
    /// `up`, `down` or `both` (default).
    pub direction: Option<String>,
}

/// The subgraph around a node.
pub async fn graph(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<GraphQuery>,
) -> Result<Json<Subgraph>, ApiError> {
    authorize(&state, &principal)?;
    let direction: Direction = q
        .direction
        .as_deref()
        .unwrap_or("both")
        .parse()
        .map_err(api_error)?;
    let hops = q.hops.unwrap_or(DEFAULT_HOPS);
    read(&state, |txn| query::subgraph(txn, &q.from, direction, hops)).map(Json)
}

/// The provenance of a model version.
pub async fn model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Provenance>, ApiError> {
    authorize(&state, &principal)?;
    let version = version
        .parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "model {name:?}: version: expected a positive integer, got {version:?}"
            ))
        })?;
    read(&state, |txn| query::provenance(txn, &name, version)).map(Json)
}

/// The API resource of a workload kind given as in `kubectl` (`deployment`, `Deployment`,
/// `deployments`, `statefulset`...).
fn workload_resource(kind: &str) -> Option<ApiResource> {
    let (group, version, kind) = match kind.to_ascii_lowercase().trim_end_matches('s') {
        "deployment" | "deploy" => ("apps", "v1", "Deployment"),
        "statefulset" | "st" => ("apps", "v1", "StatefulSet"),
        "daemonset" | "d" => ("apps", "v1", "DaemonSet"),
        "replicaset" | "r" => ("apps", "v1", "ReplicaSet"),
        "pod" | "po" => ("", "v1", "Pod"),
        "service" | "svc" => ("", "v1", "Service"),
        "configmap" | "cm" => ("", "v1", "ConfigMap"),
        "job" => ("batch", "v1", "Job"),
        "cronjob" | "cj" => ("batch", "v1", "CronJob"),
        "rollout" => ("argoproj.io", "v1alpha1", "Rollout"),
        _ => return None,
    };
    Some(ApiResource::from_gvk(&GroupVersionKind::gvk(
        group, version, kind,
    )))
}

/// What serves at a live workload, and where it came from.
pub async fn serving(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, kind, name)): Path<(String, String, String)>,
) -> Result<Json<Serving>, ApiError> {
    authorize(&state, &principal)?;
    let Some(ar) = workload_resource(&kind) else {
        return Err(ApiError::BadRequest(format!(
            "kind {kind:?}: expected a workload kind (deployment, statefulset, daemonset, \
             replicaset, pod, service, configmap, job, cronjob, rollout)"
        )));
    };
    let client = state.kube()?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &ar);
    let live = match api.get_opt(&name).await {
        Ok(Some(obj)) => obj,
        Ok(None) => {
            return Err(ApiError::NotFound(format!(
                "{} {namespace}/{name} not found",
                ar.kind
            )));
        }
        Err(e) => return Err(ApiError::Kube(e.to_string())),
    };
    let object = LiveObject {
        namespace: namespace.clone(),
        kind: ar.kind.clone(),
        name: name.clone(),
        tracking_id: live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::gitops::sync::TRACKING_ID))
            .cloned(),
    };
    let app = query::application_of(&object).map_err(api_error)?;
    let Some(source) = application_revision(&client, &app).await else {
        return Err(ApiError::NotFound(format!(
            "{} {namespace}/{name}: application {app} (from its tracking id) was not found or \
             has no synced revision",
            ar.kind
        )));
    };
    read(&state, |txn| {
        query::serving(txn, &object, &source.application, &source.revision)
    })
    .map(Json)
}

/// The whole graph as JSON.
pub async fn export(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Export>, ApiError> {
    authorize(&state, &principal)?;
    read(&state, query::export).map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_kinds_resolve_like_kubectl() {
        for k in ["deployment", "Deployment", "deployments", "deploy"] {
            let ar = workload_resource(k).expect(k);
            assert_eq!(
                (ar.group.as_str(), ar.kind.as_str()),
                ("apps", "Deployment")
            );
        }
        assert_eq!(
            workload_resource("svc").map(|a| a.plural),
            Some("services".to_owned())
        );
        assert!(workload_resource("secret").is_none());
    }

    #[test]
    fn query_errors_map_to_statuses() {
        let nf = api_error(QueryError::NodeNotFound { id: "a:x".into() });
        assert!(matches!(nf, ApiError::NotFound(_)));
        let bad = api_error(QueryError::Invalid {
            field: "hops",
            found: "99".into(),
            expected: "at most 50".into(),
        });
        assert!(matches!(bad, ApiError::BadRequest(m) if m.contains("hops")));
    }
}
