//! The MLflow REST subset (`/api/2.0/mlflow/...`, `/api/2.0/mlflow-artifacts/...`), so the real
//! `mlflow` Python client can point `MLFLOW_TRACKING_URI` at cairn. The records and their
//! transactions live in `lineage::mlflow`; this file owns the wire shapes only: MLflow's JSON
//! field names, int64 fields accepted as numbers or strings, and MLflow's error body
//! `{"error_code": ..., "message": ...}` with its HTTP codes.
//!
//! Invariants:
//! - Every route is in the route table with RBAC resource `experiments` (object: the experiment
//!   name) and the handler checks the exact experiment the request touches; a run's experiment is
//!   looked up before anything about the run is returned or changed.
//! - The client authenticates with `Authorization: Bearer <cairn API token>`
//!   (`MLFLOW_TRACKING_TOKEN`), or Basic with a local account (`MLFLOW_TRACKING_USERNAME` /
//!   `PASSWORD`), through the API gate; it sends no CSRF header, and needs none since a
//!   credential in a header cannot be forged cross-site (the gate exempts these paths when the
//!   request carries `Authorization`).
//! - Artifacts go to the built-in content-addressed store (namespace [`ARTIFACT_NAMESPACE`],
//!   key = the path after `artifacts/`) under the data directory, and into the run's index.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use serde_json::{Value, json};

use super::{Access, AppState, RouteSpec};
use crate::auth::Principal;
use crate::lineage::mlflow::filter::{self, OrderKey};
use crate::lineage::mlflow::{
    self as store, ArtifactEntry, Batch, DatasetInput, Experiment, MetricPoint, MlflowError,
    NewMetric, NewRun, Run, RunStatus, WorkflowLink,
};
use crate::lineage::registry;
use crate::workflow::artifacts::store::BlobStore;

/// Where the MLflow tracking API is served.
pub const PREFIX: &str = "/api/2.0/mlflow";
/// Where the artifact proxy is served.
pub const ARTIFACTS_PREFIX: &str = "/api/2.0/mlflow-artifacts";
/// The built-in store's namespace for MLflow artifacts.
pub const ARTIFACT_NAMESPACE: &str = "mlflow";
/// Largest artifact accepted through the proxy.
pub const MAX_ARTIFACT_BYTES: u64 = 4 << 30;
/// Largest request body of a JSON call.
pub const MAX_JSON_BYTES: usize = 16 << 20;
/// Default and largest `max_results` of a run search (MLflow's).
const RUNS_PAGE: (usize, usize) = (1000, 50_000);
/// Default and largest `max_results` of an experiment search.
const EXPERIMENTS_PAGE: (usize, usize) = (1000, 50_000);
/// Largest metric-history page.
const HISTORY_PAGE: usize = 25_000;

/// RBAC resource of this family.
const RESOURCE: &str = crate::auth::rbac::resources::EXPERIMENTS;

/// An error in MLflow's shape.
#[derive(Debug)]
pub struct MlflowApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl MlflowApiError {
    fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }

    fn forbidden(action: &str, object: &str) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "PERMISSION_DENIED",
            message: format!("permission denied: {action} on {RESOURCE} {object}"),
        }
    }
}

impl IntoResponse for MlflowApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.message, "mlflow api internal error");
        }
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error".to_string()
        } else {
            self.message
        };
        (
            self.status,
            Json(json!({"error_code": self.code, "message": message})),
        )
            .into_response()
    }
}

impl From<MlflowError> for MlflowApiError {
    fn from(err: MlflowError) -> Self {
        let status = match &err {
            MlflowError::NotFound { .. } => StatusCode::NOT_FOUND,
            MlflowError::AlreadyExists { .. }
            | MlflowError::Invalid { .. }
            | MlflowError::Filter(_) => StatusCode::BAD_REQUEST,
            MlflowError::Store(_) | MlflowError::Lineage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        metrics::counter!("cairn_mlflow_errors_total", "kind" => err.metric_label()).increment(1);
        Self {
            status,
            code: err.error_code(),
            message: err.to_string(),
        }
    }
}

impl From<crate::store::StoreError> for MlflowApiError {
    fn from(err: crate::store::StoreError) -> Self {
        MlflowError::from(err).into()
    }
}

/// Converts an error of the API gate (authentication, RBAC, CSRF) on an MLflow path to
/// MLflow's error shape, so the client reports it as it reports MLflow's own.
pub fn gate_error(err: super::ApiError) -> Response {
    use super::ApiError as E;
    let (status, code) = match &err {
        E::Unauthenticated | E::BadCredentials => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        E::Forbidden { .. } | E::Csrf(_) => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        E::Locked { .. } => (StatusCode::TOO_MANY_REQUESTS, "REQUEST_LIMIT_EXCEEDED"),
        E::BadRequest(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
        E::NotFound(_) => (StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND"),
        // MLflow answers its RESOURCE_ALREADY_EXISTS with 400.
        E::Conflict(_) => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
        E::ClusterUnavailable | E::Kube(_) | E::Internal(_) => {
            return err.into_response();
        }
    };
    MlflowApiError {
        status,
        code,
        message: err.to_string(),
    }
    .into_response()
}

type Answer = Result<Json<Value>, MlflowApiError>;

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

// ---- request field helpers (pure) ----

fn parse_body(bytes: &Bytes) -> Result<Value, MlflowApiError> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(MlflowApiError::invalid(format!(
            "request body is larger than {MAX_JSON_BYTES} bytes"
        )));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| MlflowApiError::invalid(format!("request body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(MlflowApiError::invalid(
            "request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Query parameters as an object (repeated keys become arrays), so GET and POST requests are
/// read by the same helpers.
fn query_object(pairs: Vec<(String, String)>) -> Value {
    let mut out = serde_json::Map::new();
    for (k, v) in pairs {
        match out.get_mut(&k) {
            Some(Value::Array(items)) => items.push(Value::String(v)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v)]);
            }
            None => {
                out.insert(k, Value::String(v));
            }
        }
    }
    Value::Object(out)
}

fn opt_str<'a>(v: &'a Value, field: &str) -> Result<Option<&'a str>, MlflowApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(MlflowApiError::invalid(format!(
            "{field}: expected a string, got {other}"
        ))),
    }
}

fn req_str<'a>(v: &'a Value, field: &str) -> Result<&'a str, MlflowApiError> {
    opt_str(v, field)?.filter(|s| !s.is_empty()).ok_or_else(|| {
        MlflowApiError::invalid(format!("missing value for required field {field:?}"))
    })
}

/// The run id from `run_id` or its old name `run_uuid`.
fn run_id(v: &Value) -> Result<&str, MlflowApiError> {
    match opt_str(v, "run_id")?.filter(|s| !s.is_empty()) {
        Some(id) => Ok(id),
        None => req_str(v, "run_uuid")
            .map_err(|_| MlflowApiError::invalid("missing value for required field \"run_id\"")),
    }
}

/// An int64 field: protobuf JSON allows a number or a decimal string.
fn opt_i64(v: &Value, field: &str) -> Result<Option<i64>, MlflowApiError> {
    let bad = || MlflowApiError::invalid(format!("{field}: expected an integer"));
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A double field: a number, or protobuf JSON's `"NaN"`, `"Infinity"`, `"-Infinity"`.
fn req_f64(v: &Value, field: &str) -> Result<f64, MlflowApiError> {
    let bad = || MlflowApiError::invalid(format!("{field}: expected a number"));
    match v.get(field) {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(bad),
        Some(Value::String(s)) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            other => other.parse().map_err(|_| bad()),
        },
        None | Some(Value::Null) => Err(MlflowApiError::invalid(format!(
            "missing value for required field {field:?}"
        ))),
        Some(_) => Err(bad()),
    }
}

fn number(x: f64) -> Value {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

fn opt_array<'a>(v: &'a Value, field: &str) -> Result<&'a [Value], MlflowApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(MlflowApiError::invalid(format!(
            "{field}: expected a list, got {other}"
        ))),
    }
}

/// `[{key, value}]` pairs.
fn key_values(v: &Value, field: &str) -> Result<Vec<(String, String)>, MlflowApiError> {
    opt_array(v, field)?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let key = req_str(item, "key")
                .map_err(|_| MlflowApiError::invalid(format!("{field}[{i}].key is required")))?;
            let value = opt_str(item, "value")?.unwrap_or("");
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// A repeated string field (a JSON list, or one or more query parameters).
fn strings(v: &Value, field: &str) -> Result<Vec<String>, MlflowApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| MlflowApiError::invalid(format!("{field}: expected strings")))
            })
            .collect(),
        Some(other) => Err(MlflowApiError::invalid(format!(
            "{field}: expected a list of strings, got {other}"
        ))),
    }
}

fn max_results(v: &Value, (default, max): (usize, usize)) -> Result<usize, MlflowApiError> {
    match opt_i64(v, "max_results")? {
        None => Ok(default),
        Some(n) if n >= 1 && (n as u64) <= max as u64 => Ok(n as usize),
        Some(n) => Err(MlflowApiError::invalid(format!(
            "max_results: {n} is out of range 1..={max}"
        ))),
    }
}

fn metric_of(item: &Value, field: &str, now: i64) -> Result<NewMetric, MlflowApiError> {
    let key = req_str(item, "key")
        .map_err(|_| MlflowApiError::invalid(format!("{field}.key is required")))?;
    Ok(NewMetric {
        key: key.to_string(),
        point: MetricPoint {
            value: req_f64(item, "value")
                .map_err(|e| MlflowApiError::invalid(format!("{field}: {}", e.message)))?,
            timestamp: opt_i64(item, "timestamp")?.unwrap_or(now),
            step: opt_i64(item, "step")?.unwrap_or(0),
        },
    })
}

// ---- response shapes (pure) ----

fn tags_json(tags: &BTreeMap<String, String>) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

fn experiment_json(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.id,
        "name": e.name,
        "artifact_location": e.artifact_location(),
        "lifecycle_stage": "active",
        "last_update_time": e.last_update_time,
        "creation_time": e.creation_time,
        "tags": tags_json(&e.tags),
    })
}

fn run_info_json(r: &Run) -> Value {
    let mut info = json!({
        "run_id": r.id,
        "run_uuid": r.id,
        "run_name": r.name,
        "experiment_id": r.experiment_id,
        "user_id": r.user_id,
        "status": r.status.as_str(),
        "start_time": r.start_time,
        "artifact_uri": r.artifact_uri(),
        "lifecycle_stage": "active",
    });
    if let Some(end) = r.end_time {
        info["end_time"] = json!(end);
    }
    info
}

fn dataset_json(d: &DatasetInput) -> Value {
    let mut dataset = json!({
        "name": d.name,
        "digest": d.digest,
        "source_type": d.source_type,
        "source": d.source,
    });
    if let Some(s) = &d.schema {
        dataset["schema"] = json!(s);
    }
    if let Some(p) = &d.profile {
        dataset["profile"] = json!(p);
    }
    json!({"tags": tags_json(&d.tags), "dataset": dataset})
}

/// The tags through which MLflow clients see the workflow step that logged a run.
pub mod workflow_tags {
    /// The Workflow's namespace.
    pub const NAMESPACE: &str = "cairn.workflow.namespace";
    /// The Workflow's name.
    pub const NAME: &str = "cairn.workflow.name";
    /// The Workflow's uid.
    pub const UID: &str = "cairn.workflow.uid";
    /// The step's node id.
    pub const NODE: &str = "cairn.workflow.node";
    /// The step's pod.
    pub const POD: &str = "cairn.workflow.pod";
}

/// A run's tags plus, for a run a workflow step logged, the `cairn.workflow.*` tags from its
/// verified link (they win over a tag of the same name the client set).
fn with_workflow_tags(r: &Run) -> std::borrow::Cow<'_, BTreeMap<String, String>> {
    let Some(link) = &r.workflow else {
        return std::borrow::Cow::Borrowed(&r.tags);
    };
    let mut tags = r.tags.clone();
    for (k, v) in [
        (workflow_tags::NAMESPACE, &link.namespace),
        (workflow_tags::NAME, &link.workflow),
        (workflow_tags::UID, &link.workflow_uid),
        (workflow_tags::NODE, &link.node_id),
        (workflow_tags::POD, &link.pod),
    ] {
        if !v.is_empty() {
            tags.insert(k.to_owned(), v.clone());
        }
    }
    std::borrow::Cow::Owned(tags)
}

/// A run in MLflow's shape.
pub fn run_json(r: &Run) -> Value {
    json!({
        "info": run_info_json(r),
        "data": {
            "metrics": r.metrics.iter().map(|(k, m)| json!({
                "key": k, "value": number(m.value), "timestamp": m.timestamp, "step": m.step,
            })).collect::<Vec<_>>(),
            "params": tags_json(&r.params),
            "tags": tags_json(&with_workflow_tags(r)),
        },
        "inputs": {"dataset_inputs": r.inputs.iter().map(dataset_json).collect::<Vec<_>>()},
    })
}

// ---- RBAC ----

fn check(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    experiment: &str,
) -> Result<(), MlflowApiError> {
    if state
        .auth()
        .authorize(principal, RESOURCE, action, experiment)
    {
        Ok(())
    } else {
        Err(MlflowApiError::forbidden(action, experiment))
    }
}

/// Reads a run and checks `action` on its experiment.
fn authorized_run(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    id: &str,
) -> Result<Run, MlflowApiError> {
    let (run, experiment) = state.auth().store().read(|txn| {
        let run = store::get_run(txn, id)?;
        let experiment = store::get_experiment(txn, &run.experiment_id)?;
        Ok::<_, MlflowError>((run, experiment))
    })?;
    check(state, principal, action, &experiment.name)?;
    Ok(run)
}

// ---- experiments ----

async fn experiments_create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let name = req_str(&v, "name")?.to_string();
    if opt_str(&v, "artifact_location")?.is_some_and(|l| !l.is_empty()) {
        return Err(MlflowApiError::invalid(
            "artifact_location: cairn keeps artifacts itself (mlflow-artifacts:/<experiment>); \
             leave it empty",
        ));
    }
    check(&state, &principal, "create", &name)?;
    let tags: BTreeMap<String, String> = key_values(&v, "tags")?.into_iter().collect();
    let now = now_ms();
    let experiment = state
        .auth()
        .store()
        .write(move |txn| store::create_experiment(txn, &name, &tags, now))
        .await?;
    tracing::info!(experiment = %experiment.id, name = %experiment.name, "mlflow experiment created");
    Ok(Json(json!({"experiment_id": experiment.id})))
}

async fn experiments_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let id = req_str(&v, "experiment_id")?;
    let experiment = state
        .auth()
        .store()
        .read(|txn| store::get_experiment(txn, id))?;
    check(&state, &principal, "get", &experiment.name)?;
    Ok(Json(json!({"experiment": experiment_json(&experiment)})))
}

async fn experiments_get_by_name(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let name = req_str(&v, "experiment_name")?;
    // The name is the RBAC object: check before saying whether it exists.
    check(&state, &principal, "get", name)?;
    let experiment = state
        .auth()
        .store()
        .read(|txn| store::get_experiment_by_name(txn, name))?;
    Ok(Json(json!({"experiment": experiment_json(&experiment)})))
}

fn search_experiments(state: &AppState, principal: &Principal, v: &Value) -> Answer {
    let clauses =
        filter::parse_filter(opt_str(v, "filter")?.unwrap_or("")).map_err(MlflowError::from)?;
    let order: Vec<OrderKey> = strings(v, "order_by")?
        .iter()
        .map(|o| filter::parse_order_by(o))
        .collect::<Result<_, _>>()
        .map_err(MlflowError::from)?;
    let max = max_results(v, EXPERIMENTS_PAGE)?;
    let all = state.auth().store().read(store::list_experiments)?;
    let mut found: Vec<Experiment> = all
        .into_iter()
        .filter(|e| state.auth().authorize(principal, RESOURCE, "get", &e.name))
        .filter(|e| filter::matches(e, &clauses))
        .collect();
    // MLflow's default: newest first, then by id.
    found.sort_by(|a, b| {
        for key in &order {
            let o = filter::compare(a, b, key);
            if o.is_ne() {
                return o;
            }
        }
        b.creation_time
            .cmp(&a.creation_time)
            .then_with(|| b.id.cmp(&a.id))
    });
    let (page, next) = filter::paginate(found, opt_str(v, "page_token")?.unwrap_or(""), max)
        .map_err(MlflowError::from)?;
    let mut out = json!({"experiments": page.iter().map(experiment_json).collect::<Vec<_>>()});
    if let Some(next) = next {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

async fn experiments_search_post(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    search_experiments(&state, &principal, &parse_body(&body)?)
}

async fn experiments_search_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    search_experiments(&state, &principal, &query_object(query))
}

async fn experiments_set_tag(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let id = req_str(&v, "experiment_id")?.to_string();
    let key = req_str(&v, "key")?.to_string();
    let value = opt_str(&v, "value")?.unwrap_or("").to_string();
    let experiment = state
        .auth()
        .store()
        .read(|txn| store::get_experiment(txn, &id))?;
    check(&state, &principal, "update", &experiment.name)?;
    let now = now_ms();
    state
        .auth()
        .store()
        .write(move |txn| store::set_experiment_tag(txn, &id, &key, &value, now))
        .await?;
    Ok(Json(json!({})))
}

// ---- runs ----

async fn runs_create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    link: Option<Extension<WorkflowLink>>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let experiment_id = opt_str(&v, "experiment_id")?
        .filter(|s| !s.is_empty())
        .unwrap_or(store::DEFAULT_EXPERIMENT_ID)
        .to_string();
    let experiment = state
        .auth()
        .store()
        .read(|txn| store::get_experiment(txn, &experiment_id))?;
    check(&state, &principal, "update", &experiment.name)?;
    let new = NewRun {
        experiment_id,
        run_name: opt_str(&v, "run_name")?.unwrap_or("").to_string(),
        user_id: principal.subject.clone(),
        start_time: opt_i64(&v, "start_time")?.unwrap_or_else(now_ms),
        tags: key_values(&v, "tags")?.into_iter().collect(),
        // Set only by the pod gate of the executor routes, from the verified pod.
        workflow: link.map(|Extension(l)| l),
    };
    let run = state
        .auth()
        .store()
        .write(move |txn| store::create_run(txn, &new))
        .await?;
    tracing::info!(run = %run.id, experiment = %run.experiment_id, user = %run.user_id, "mlflow run created");
    Ok(Json(json!({"run": run_json(&run)})))
}

async fn runs_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let id = run_id(&v)?.to_string();
    authorized_run(&state, &principal, "update", &id)?;
    let status = match opt_str(&v, "status")? {
        None | Some("") => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            MlflowApiError::invalid(format!(
                "status: {s:?} is not one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED"
            ))
        })?),
    };
    let end_time = opt_i64(&v, "end_time")?;
    let run_name = opt_str(&v, "run_name")?.map(str::to_string);
    let run = state
        .auth()
        .store()
        .write(move |txn| store::update_run(txn, &id, status, end_time, run_name.as_deref()))
        .await?;
    Ok(Json(json!({"run_info": run_info_json(&run)})))
}

async fn runs_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let run = authorized_run(&state, &principal, "get", run_id(&v)?)?;
    Ok(Json(json!({"run": run_json(&run)})))
}

async fn runs_search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let experiment_ids = strings(&v, "experiment_ids")?;
    let clauses =
        filter::parse_filter(opt_str(&v, "filter")?.unwrap_or("")).map_err(MlflowError::from)?;
    let order: Vec<OrderKey> = strings(&v, "order_by")?
        .iter()
        .map(|o| filter::parse_order_by(o))
        .collect::<Result<_, _>>()
        .map_err(MlflowError::from)?;
    let max = max_results(&v, RUNS_PAGE)?;
    let (experiments, runs) = state.auth().store().read(|txn| {
        let experiments = experiment_ids
            .iter()
            .map(|id| store::get_experiment(txn, id))
            .collect::<Result<Vec<_>, _>>()?;
        let runs = store::list_runs(txn, &experiment_ids)?;
        Ok::<_, MlflowError>((experiments, runs))
    })?;
    for e in &experiments {
        check(&state, &principal, "get", &e.name)?;
    }
    let mut found: Vec<Run> = runs
        .into_iter()
        .filter(|r| filter::matches(r, &clauses))
        .collect();
    found.sort_by(|a, b| {
        for key in &order {
            let o = filter::compare(a, b, key);
            if o.is_ne() {
                return o;
            }
        }
        // MLflow's default: start_time DESC, then run id.
        b.start_time
            .cmp(&a.start_time)
            .then_with(|| a.id.cmp(&b.id))
    });
    let (page, next) = filter::paginate(found, opt_str(&v, "page_token")?.unwrap_or(""), max)
        .map_err(MlflowError::from)?;
    let mut out = json!({"runs": page.iter().map(run_json).collect::<Vec<_>>()});
    if let Some(next) = next {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

async fn write_batch(state: &AppState, principal: &Principal, id: String, batch: Batch) -> Answer {
    authorized_run(state, principal, "update", &id)?;
    store::validate_batch(&batch)?;
    state
        .auth()
        .store()
        .write(move |txn| store::log_batch(txn, &id, &batch))
        .await?;
    Ok(Json(json!({})))
}

/// `key` and `value` (empty when absent) of a log-parameter or set-tag body.
fn key_value(v: &Value) -> Result<(String, String), MlflowApiError> {
    Ok((
        req_str(v, "key")?.to_string(),
        opt_str(v, "value")?.unwrap_or("").to_string(),
    ))
}

/// Parses a log-parameter, set-tag or log-metric body, builds its one-entry batch with
/// `entry` and writes it to the body's run.
async fn write_one(
    state: &AppState,
    principal: &Principal,
    body: &Bytes,
    entry: impl FnOnce(&Value) -> Result<Batch, MlflowApiError>,
) -> Answer {
    let v = parse_body(body)?;
    let batch = entry(&v)?;
    write_batch(state, principal, run_id(&v)?.to_string(), batch).await
}

async fn runs_log_parameter(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    write_one(&state, &principal, &body, |v| {
        Ok(Batch {
            params: vec![key_value(v)?],
            ..Batch::default()
        })
    })
    .await
}

async fn runs_set_tag(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    write_one(&state, &principal, &body, |v| {
        Ok(Batch {
            tags: vec![key_value(v)?],
            ..Batch::default()
        })
    })
    .await
}

async fn runs_log_metric(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    write_one(&state, &principal, &body, |v| {
        Ok(Batch {
            metrics: vec![metric_of(v, "metric", now_ms())?],
            ..Batch::default()
        })
    })
    .await
}

async fn runs_log_batch(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let now = now_ms();
    let metrics = opt_array(&v, "metrics")?
        .iter()
        .enumerate()
        .map(|(i, m)| metric_of(m, &format!("metrics[{i}]"), now))
        .collect::<Result<Vec<_>, _>>()?;
    let batch = Batch {
        metrics,
        params: key_values(&v, "params")?,
        tags: key_values(&v, "tags")?,
    };
    write_batch(&state, &principal, run_id(&v)?.to_string(), batch).await
}

fn dataset_of(item: &Value, field: &str) -> Result<DatasetInput, MlflowApiError> {
    let d = item
        .get("dataset")
        .ok_or_else(|| MlflowApiError::invalid(format!("{field}.dataset is required")))?;
    let text = |f: &str| -> Result<String, MlflowApiError> {
        Ok(opt_str(d, f)?.unwrap_or("").to_string())
    };
    Ok(DatasetInput {
        name: text("name")?,
        digest: text("digest")?,
        source_type: text("source_type")?,
        source: text("source")?,
        schema: opt_str(d, "schema")?.map(str::to_string),
        profile: opt_str(d, "profile")?.map(str::to_string),
        tags: key_values(item, "tags")?.into_iter().collect(),
    })
}

async fn runs_log_inputs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let id = run_id(&v)?.to_string();
    let inputs = opt_array(&v, "datasets")?
        .iter()
        .enumerate()
        .map(|(i, d)| dataset_of(d, &format!("datasets[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    store::validate_inputs(&inputs)?;
    authorized_run(&state, &principal, "update", &id)?;
    state
        .auth()
        .store()
        .write(move |txn| store::log_inputs(txn, &id, &inputs))
        .await?;
    Ok(Json(json!({})))
}

async fn metrics_get_history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let id = run_id(&v)?;
    let key = req_str(&v, "metric_key")?;
    authorized_run(&state, &principal, "get", id)?;
    let points = state
        .auth()
        .store()
        .read(|txn| store::metric_history(txn, id, key))?;
    let max = max_results(&v, (HISTORY_PAGE, HISTORY_PAGE))?;
    let (page, next) = filter::paginate(points, opt_str(&v, "page_token")?.unwrap_or(""), max)
        .map_err(MlflowError::from)?;
    let metrics: Vec<Value> = page
        .iter()
        .map(|p| json!({"key": key, "value": number(p.value), "timestamp": p.timestamp, "step": p.step}))
        .collect();
    let mut out = json!({"metrics": metrics});
    if let Some(next) = next {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

/// `logged-models/search`: cairn keeps no MLflow 3 `LoggedModel` entities (models are
/// registered in cairn's registry from runs), so the answer is always empty; the client asks it
/// whenever it lists a run's artifacts under a path, to merge a logged model's files in.
async fn logged_models_search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let experiment_ids = strings(&v, "experiment_ids")?;
    let experiments = state.auth().store().read(|txn| {
        experiment_ids
            .iter()
            .map(|id| store::get_experiment(txn, id))
            .collect::<Result<Vec<_>, _>>()
    })?;
    for e in &experiments {
        check(&state, &principal, "get", &e.name)?;
    }
    Ok(Json(json!({"models": []})))
}

// ---- artifacts ----

fn blob_store(state: &AppState) -> Result<BlobStore, MlflowApiError> {
    // The built-in store lives in the data directory, beside the database file.
    let db = state.auth().store().path();
    let dir = db.parent().unwrap_or(std::path::Path::new("."));
    BlobStore::open(dir).map_err(|e| MlflowApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "INTERNAL_ERROR",
        message: e.to_string(),
    })
}

fn artifact_error(e: crate::workflow::artifacts::store::StoreError) -> MlflowApiError {
    use crate::workflow::artifacts::store::StoreError as S;
    let (status, code) = match &e {
        S::BadKey { .. } | S::DigestMismatch { .. } | S::Body { .. } => {
            (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE")
        }
        S::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "INVALID_PARAMETER_VALUE"),
        S::NotFound { .. } => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
        S::Io { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
    };
    MlflowApiError {
        status,
        code,
        message: e.to_string(),
    }
}

/// The run an artifact path belongs to, with `action` checked on its experiment.
fn artifact_run<'p>(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    path: &'p str,
) -> Result<(Run, &'p str), MlflowApiError> {
    let (experiment, run_id, rest) = store::split_artifact_path(path)?;
    let run = authorized_run(state, principal, action, run_id)?;
    if run.experiment_id != experiment {
        return Err(MlflowError::NotFound {
            what: "run",
            id: format!("{experiment}/{run_id}"),
        }
        .into());
    }
    Ok((run, rest))
}

async fn artifacts_put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<String>,
    body: Body,
) -> Result<Response, MlflowApiError> {
    let (run, rest) = artifact_run(&state, &principal, "update", &path)?;
    if rest.is_empty() {
        return Err(MlflowApiError::invalid(format!(
            "{path:?}: name a file under the run's artifacts/"
        )));
    }
    let blobs = blob_store(&state)?;
    let key = path.trim_matches('/').to_string();
    let stored = blobs
        .put(
            ARTIFACT_NAMESPACE,
            &key,
            &run.id,
            body.into_data_stream(),
            None,
            MAX_ARTIFACT_BYTES,
        )
        .await
        .map_err(artifact_error)?;
    let entry = ArtifactEntry {
        digest: stored.digest,
        size: stored.size,
    };
    let (run_id, rel) = (run.id.clone(), rest.to_string());
    tracing::info!(run = %run_id, path = %rel, size = entry.size, digest = %entry.digest, "mlflow artifact stored");
    state
        .auth()
        .store()
        .write(move |txn| store::record_artifact(txn, &run_id, &rel, &entry))
        .await?;
    Ok(Json(json!({})).into_response())
}

async fn artifacts_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(path): Path<String>,
) -> Result<Response, MlflowApiError> {
    let (run, rest) = artifact_run(&state, &principal, "get", &path)?;
    if !run.artifacts.contains_key(rest) {
        return Err(MlflowError::NotFound {
            what: "artifact",
            id: path.clone(),
        }
        .into());
    }
    let blobs = blob_store(&state)?;
    Ok(crate::workflow::artifacts::routes::serve_blob(
        &blobs,
        ARTIFACT_NAMESPACE,
        path.trim_matches('/'),
    )
    .await)
}

async fn artifacts_list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let path = req_str(&v, "path")?;
    let (run, rest) = artifact_run(&state, &principal, "get", path)?;
    let files: Vec<Value> = store::list_artifacts(&run.artifacts, rest)
        .into_iter()
        .map(|f| {
            let mut item = json!({"path": f.path, "is_dir": f.is_dir});
            if let Some(size) = f.size {
                item["file_size"] = json!(size);
            }
            item
        })
        .collect();
    Ok(Json(json!({"files": files})))
}

// ---- model registry (MLflow registered models and versions are cairn's) ----

const MODELS: &str = crate::auth::rbac::resources::MODELS;
/// Tag on a cairn version holding the MLflow run it was registered from.
pub const RUN_ID_TAG: &str = "mlflow.runId";

impl From<registry::RegistryError> for MlflowApiError {
    fn from(err: registry::RegistryError) -> Self {
        use registry::RegistryError as R;
        let (status, code) = match &err {
            R::NotFound { .. } => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            R::AlreadyExists { .. } => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            R::Invalid { .. } => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            R::Lineage(_) | R::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        };
        metrics::counter!("cairn_mlflow_errors_total", "kind" => err.metric_label()).increment(1);
        Self {
            status,
            code,
            message: err.to_string(),
        }
    }
}

fn check_models(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    object: &str,
) -> Result<(), MlflowApiError> {
    if state.auth().authorize(principal, MODELS, action, object) {
        Ok(())
    } else {
        Err(MlflowApiError {
            status: StatusCode::FORBIDDEN,
            code: "PERMISSION_DENIED",
            message: format!("permission denied: {action} on {MODELS} {object}"),
        })
    }
}

/// MLflow versions are decimal strings.
fn version_number(v: &Value) -> Result<u64, MlflowApiError> {
    let text = match v.get("version") {
        Some(Value::Number(n)) => n.to_string(),
        _ => req_str(v, "version")?.to_string(),
    };
    text.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
        MlflowApiError::invalid(format!("version: {text:?} is not a version number"))
    })
}

fn version_status(s: registry::VersionStatus) -> &'static str {
    match s {
        registry::VersionStatus::Ready => "READY",
        registry::VersionStatus::Pending => "PENDING_REGISTRATION",
        registry::VersionStatus::Failed => "FAILED_REGISTRATION",
    }
}

/// A cairn version in MLflow's shape.
pub fn model_version_json(v: &registry::ModelVersion, aliases: &[String]) -> Value {
    let updated = v.updated.unwrap_or(v.created);
    let mut out = json!({
        "name": v.model,
        "version": v.version.to_string(),
        "creation_timestamp": v.created.as_millisecond(),
        "last_updated_timestamp": updated.as_millisecond(),
        "user_id": v.created_by,
        "current_stage": "None",
        "description": v.description,
        "source": v.source_uri,
        "status": version_status(v.status),
        "tags": tags_json(&v.tags),
        "aliases": aliases,
    });
    if let Some(run) = v.tags.get(RUN_ID_TAG) {
        out["run_id"] = json!(run);
    }
    out
}

fn registered_model_json(
    m: &registry::RegisteredModel,
    latest: Option<&registry::ModelVersion>,
    aliases: &[(String, registry::AliasRecord)],
) -> Value {
    let by_version = registry::aliases_by_version(aliases);
    let latest: Vec<Value> = latest
        .map(|v| {
            model_version_json(
                v,
                by_version.get(&v.version).map(Vec::as_slice).unwrap_or(&[]),
            )
        })
        .into_iter()
        .collect();
    json!({
        "name": m.name,
        "creation_timestamp": m.created.as_millisecond(),
        "last_updated_timestamp": m.updated.as_millisecond(),
        "user_id": m.created_by,
        "description": m.description,
        "latest_versions": latest,
        "tags": tags_json(&m.tags),
        "aliases": aliases.iter().map(|(a, r)| json!({"alias": a, "version": r.version.to_string()})).collect::<Vec<_>>(),
    })
}

fn model_json_in(
    txn: &(impl registry::Reader + ?Sized),
    name: &str,
) -> Result<Value, registry::RegistryError> {
    let model = registry::get_model(txn, name)?;
    let latest = registry::latest_version(txn, name)?;
    let aliases = registry::list_aliases(txn, name)?;
    Ok(registered_model_json(&model, latest.as_ref(), &aliases))
}

fn version_json_in(
    txn: &(impl registry::Reader + ?Sized),
    name: &str,
    version: u64,
) -> Result<Value, registry::RegistryError> {
    let v = registry::get_version(txn, name, version)?;
    let aliases = registry::list_aliases(txn, name)?;
    let by_version = registry::aliases_by_version(&aliases);
    Ok(model_version_json(
        &v,
        by_version.get(&version).map(Vec::as_slice).unwrap_or(&[]),
    ))
}

/// A registered model as the grammar sees it (`name`, `tags.<k>`, times).
struct ModelView<'a>(&'a registry::RegisteredModel);

impl filter::Searchable for ModelView<'_> {
    fn field(&self, entity: &filter::Entity) -> Option<filter::Field<'_>> {
        use filter::{Attr, Entity, Field};
        match entity {
            Entity::Attribute(Attr::Name) => Some(Field::Str(&self.0.name)),
            Entity::Attribute(Attr::CreationTime) => {
                Some(Field::Num(self.0.created.as_millisecond() as f64))
            }
            Entity::Attribute(Attr::LastUpdateTime) => {
                Some(Field::Num(self.0.updated.as_millisecond() as f64))
            }
            Entity::Tag(k) => self.0.tags.get(k).map(|v| Field::Str(v)),
            _ => None,
        }
    }
}

/// A model version as the grammar sees it (`name`, `run_id`, `tags.<k>`).
struct VersionView<'a>(&'a registry::ModelVersion);

impl filter::Searchable for VersionView<'_> {
    fn field(&self, entity: &filter::Entity) -> Option<filter::Field<'_>> {
        use filter::{Attr, Entity, Field};
        match entity {
            Entity::Attribute(Attr::Name) => Some(Field::Str(&self.0.model)),
            Entity::Attribute(Attr::RunId) => self.0.tags.get(RUN_ID_TAG).map(|v| Field::Str(v)),
            Entity::Tag(k) => self.0.tags.get(k).map(|v| Field::Str(v)),
            _ => None,
        }
    }
}

/// The MLflow run a source URI points into, and the artifact path inside it:
/// `runs:/<run>/<path>` or `mlflow-artifacts:/<experiment>/<run>/artifacts/<path>`. Pure.
pub fn source_run(source: &str) -> Option<(&str, &str)> {
    if let Some(rest) = source.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        return Some((run, path));
    }
    let rest = source.strip_prefix("mlflow-artifacts:/")?;
    let (_, run, path) = store::split_artifact_path(rest).ok()?;
    Some((run, path))
}

/// The cairn version an MLflow `model-versions/create` makes: the run's latest (finite)
/// metrics, its params, the artifact digest when the source is one file the run logged, the
/// run's workflow link when a workflow pod logged it, and the run id as tag [`RUN_ID_TAG`].
/// Pure.
pub fn version_from_run(
    source: &str,
    run: Option<&Run>,
    tags: BTreeMap<String, String>,
    description: String,
) -> registry::NewVersion {
    let mut new = registry::NewVersion {
        source_uri: source.to_string(),
        tags,
        description,
        ..registry::NewVersion::default()
    };
    if let Some(run) = run {
        new.metrics = run
            .metrics
            .iter()
            .filter(|(_, m)| m.value.is_finite())
            .map(|(k, m)| (k.clone(), m.value))
            .collect();
        new.params = run.params.clone();
        new.tags.insert(RUN_ID_TAG.to_string(), run.id.clone());
        // A run a workflow step logged: the version links to that step in lineage, as one
        // registered from the step itself does.
        if let Some(link) = run
            .workflow
            .as_ref()
            .filter(|l| !l.workflow_uid.is_empty() && !l.node_id.is_empty())
        {
            new.run = Some(registry::RunLink {
                namespace: link.namespace.clone(),
                workflow: link.workflow.clone(),
                workflow_uid: link.workflow_uid.clone(),
                node_id: link.node_id.clone(),
            });
        }
        if let Some((_, path)) = source_run(source)
            && let Some(entry) = run.artifacts.get(path.trim_matches('/'))
        {
            new.digest = Some(format!("sha256:{}", entry.digest));
        }
    }
    new
}

async fn registered_models_create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let new = registry::NewModel {
        name: req_str(&v, "name")?.to_string(),
        description: opt_str(&v, "description")?.unwrap_or("").to_string(),
        tags: key_values(&v, "tags")?.into_iter().collect(),
    };
    check_models(&state, &principal, "create", &new.name)?;
    let by = principal.subject.clone();
    let now = jiff::Timestamp::now();
    let model = state
        .auth()
        .store()
        .write(move |txn| {
            registry::create_model(txn, &new, &by, now)?;
            model_json_in(txn, &new.name)
        })
        .await?;
    Ok(Json(json!({"registered_model": model})))
}

async fn registered_models_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let name = req_str(&v, "name")?;
    check_models(&state, &principal, "get", name)?;
    let model = state.auth().store().read(|txn| model_json_in(txn, name))?;
    Ok(Json(json!({"registered_model": model})))
}

async fn registered_models_search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let clauses =
        filter::parse_filter(opt_str(&v, "filter")?.unwrap_or("")).map_err(MlflowError::from)?;
    let order: Vec<OrderKey> = strings(&v, "order_by")?
        .iter()
        .map(|o| filter::parse_order_by(o))
        .collect::<Result<_, _>>()
        .map_err(MlflowError::from)?;
    let max = max_results(&v, (100, 1000))?;
    let models = state
        .auth()
        .store()
        .read(|txn| registry::list_models(txn, &registry::ModelFilter::default()))?;
    let mut found: Vec<registry::RegisteredModel> = models
        .into_iter()
        .filter(|m| state.auth().authorize(&principal, MODELS, "get", &m.name))
        .filter(|m| filter::matches_registry(&ModelView(m), &clauses))
        .collect();
    found.sort_by(|a, b| {
        for key in &order {
            let o = filter::compare(&ModelView(a), &ModelView(b), key);
            if o.is_ne() {
                return o;
            }
        }
        a.name.cmp(&b.name)
    });
    let (page, next) = filter::paginate(found, opt_str(&v, "page_token")?.unwrap_or(""), max)
        .map_err(MlflowError::from)?;
    let models = state.auth().store().read(|txn| {
        page.iter()
            .map(|m| model_json_in(txn, &m.name))
            .collect::<Result<Vec<_>, _>>()
    })?;
    let mut out = json!({"registered_models": models});
    if let Some(next) = next {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

async fn registered_models_latest(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let name = req_str(&v, "name")?.to_string();
    check_models(&state, &principal, "get", &name)?;
    // Stages are gone in MLflow 3 (aliases replaced them); every version is in stage "None".
    let stages = strings(&v, "stages")?;
    let versions = state.auth().store().read(|txn| {
        let latest = registry::latest_version(txn, &name)?;
        latest
            .filter(|_| stages.is_empty() || stages.iter().any(|s| s.eq_ignore_ascii_case("none")))
            .map(|l| version_json_in(txn, &name, l.version))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Json(json!({"model_versions": versions})))
}

async fn alias_set(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let name = req_str(&v, "name")?.to_string();
    let alias = req_str(&v, "alias")?.to_string();
    let version = version_number(&v)?;
    check_models(&state, &principal, "promote", &format!("{name}/{alias}"))?;
    let by = principal.subject.clone();
    let now = jiff::Timestamp::now();
    let (n, a) = (name.clone(), alias.clone());
    let previous = state
        .auth()
        .store()
        .write(move |txn| registry::set_alias(txn, &n, &a, version, &by, now))
        .await?;
    tracing::info!(model = %name, alias = %alias, version, previous = previous.map(|p| p.version), user = %principal.subject, "mlflow alias set");
    Ok(Json(json!({})))
}

async fn alias_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let name = req_str(&v, "name")?.to_string();
    let alias = req_str(&v, "alias")?.to_string();
    check_models(&state, &principal, "promote", &format!("{name}/{alias}"))?;
    state
        .auth()
        .store()
        .write(move |txn| registry::delete_alias(txn, &name, &alias))
        .await?;
    Ok(Json(json!({})))
}

async fn alias_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let name = req_str(&v, "name")?;
    let alias = req_str(&v, "alias")?;
    check_models(&state, &principal, "get", name)?;
    let version = state.auth().store().read(|txn| {
        let (record, _) = registry::get_by_alias(txn, name, alias)?;
        version_json_in(txn, name, record.version)
    })?;
    Ok(Json(json!({"model_version": version})))
}

async fn model_versions_create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let name = req_str(&v, "name")?.to_string();
    let source = req_str(&v, "source")?.to_string();
    check_models(&state, &principal, "create", &name)?;
    // The run the version comes from, read (and its experiment checked) before registering.
    let run_id = opt_str(&v, "run_id")?
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| source_run(&source).map(|(r, _)| r.to_string()));
    let run = match &run_id {
        Some(id) => Some(authorized_run(&state, &principal, "get", id)?),
        None => None,
    };
    let new = version_from_run(
        &source,
        run.as_ref(),
        key_values(&v, "tags")?.into_iter().collect(),
        opt_str(&v, "description")?.unwrap_or("").to_string(),
    );
    let by = principal.subject.clone();
    let now = jiff::Timestamp::now();
    let n = name.clone();
    let version = state
        .auth()
        .store()
        .write(move |txn| {
            let created = registry::create_version(txn, &n, &new, &by, now)?;
            version_json_in(txn, &n, created.version)
        })
        .await?;
    tracing::info!(model = %name, version = %version["version"], run = ?run_id, user = %principal.subject, "mlflow model version registered");
    Ok(Json(json!({"model_version": version})))
}

async fn model_versions_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let name = req_str(&v, "name")?;
    let version = version_number(&v)?;
    check_models(&state, &principal, "get", name)?;
    let out = state
        .auth()
        .store()
        .read(|txn| version_json_in(txn, name, version))?;
    Ok(Json(json!({"model_version": out})))
}

async fn model_versions_search(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let v = query_object(query);
    let clauses =
        filter::parse_filter(opt_str(&v, "filter")?.unwrap_or("")).map_err(MlflowError::from)?;
    let max = max_results(&v, (10_000, 200_000))?;
    let mut found = state.auth().store().read(|txn| {
        let mut all = Vec::new();
        for m in registry::list_models(txn, &registry::ModelFilter::default())? {
            if !state.auth().authorize(&principal, MODELS, "get", &m.name) {
                continue;
            }
            let aliases = registry::list_aliases(txn, &m.name)?;
            let by_version = registry::aliases_by_version(&aliases);
            for version in registry::list_versions(txn, &m.name)? {
                if filter::matches_registry(&VersionView(&version), &clauses) {
                    let names = by_version
                        .get(&version.version)
                        .cloned()
                        .unwrap_or_default();
                    all.push((version, names));
                }
            }
        }
        Ok::<_, registry::RegistryError>(all)
    })?;
    // Newest first, as MLflow lists them.
    found.sort_by(|(a, _), (b, _)| a.model.cmp(&b.model).then(b.version.cmp(&a.version)));
    let (page, next) = filter::paginate(found, opt_str(&v, "page_token")?.unwrap_or(""), max)
        .map_err(MlflowError::from)?;
    let mut out = json!({"model_versions": page.iter().map(|(v, a)| model_version_json(v, a)).collect::<Vec<_>>()});
    if let Some(next) = next {
        out["next_page_token"] = json!(next);
    }
    Ok(Json(out))
}

async fn model_versions_update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Bytes,
) -> Answer {
    let v = parse_body(&body)?;
    let name = req_str(&v, "name")?.to_string();
    let version = version_number(&v)?;
    check_models(&state, &principal, "update", &name)?;
    let patch = registry::VersionPatch {
        description: opt_str(&v, "description")?.map(str::to_string),
        ..registry::VersionPatch::default()
    };
    let now = jiff::Timestamp::now();
    let out = state
        .auth()
        .store()
        .write(move |txn| {
            registry::update_version(txn, &name, version, &patch, now)?;
            version_json_in(txn, &name, version)
        })
        .await?;
    Ok(Json(json!({"model_version": out})))
}

/// The MLflow API for workflow pods, under [`store::EXECUTOR_PREFIX`] on the executor routes:
/// the same handlers and RBAC rows as [`routes`], behind a gate that authenticates the pod's
/// projected token (TokenReview, then the live pod: `registry::executor::identify`) instead of
/// a cairn credential. The principal is the pod's service account (`policy.default` does not
/// apply to it), and the step's node rides along as a [`WorkflowLink`], so a run it creates
/// joins the lineage graph after the step's execution.
pub fn executor_router(
    state: AppState,
    pods: registry::executor::RegistryExecutorService,
) -> axum::Router {
    let mut router = axum::Router::new();
    for (spec, handler) in routes() {
        let path = format!("{}{}", store::EXECUTOR_PREFIX, spec.path);
        let gate = axum::middleware::from_fn_with_state(
            (state.clone(), pods.clone(), spec.clone()),
            pod_gate,
        );
        router = router.route(&path, handler.route_layer(gate));
    }
    router.with_state(state)
}

async fn pod_gate(
    State((state, pods, spec)): State<(
        AppState,
        registry::executor::RegistryExecutorService,
        RouteSpec,
    )>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let step = match registry::executor::identify(&pods, req.headers()).await {
        Ok(step) => step,
        Err(refused) => return refused,
    };
    let principal = step.principal();
    if let Access::Rbac { resource, action } = spec.access
        && !state.auth().authorize_any(&principal, resource, action)
    {
        return gate_error(super::ApiError::Forbidden {
            resource,
            action,
            object: "*".into(),
        });
    }
    req.extensions_mut().insert(WorkflowLink {
        namespace: step.run.namespace,
        workflow: step.run.workflow,
        pod: step.pod,
        workflow_uid: step.run.workflow_uid,
        node_id: step.run.node_id,
    });
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// This family's rows of the route table.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use axum::http::Method;
    fn row(
        method: Method,
        path: &'static str,
        action: &'static str,
        handler: MethodRouter<AppState>,
    ) -> (RouteSpec, MethodRouter<AppState>) {
        (
            RouteSpec {
                method,
                path,
                access: Access::Rbac {
                    resource: RESOURCE,
                    action,
                },
            },
            handler,
        )
    }
    fn model_row(
        method: Method,
        path: &'static str,
        action: &'static str,
        handler: MethodRouter<AppState>,
    ) -> (RouteSpec, MethodRouter<AppState>) {
        (
            RouteSpec {
                method,
                path,
                access: Access::Rbac {
                    resource: MODELS,
                    action,
                },
            },
            handler,
        )
    }
    vec![
        row(
            Method::POST,
            "/api/2.0/mlflow/experiments/create",
            "create",
            post(experiments_create),
        ),
        row(
            Method::GET,
            "/api/2.0/mlflow/experiments/get",
            "get",
            get(experiments_get),
        ),
        row(
            Method::GET,
            "/api/2.0/mlflow/experiments/get-by-name",
            "get",
            get(experiments_get_by_name),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/experiments/search",
            "get",
            post(experiments_search_post).get(experiments_search_get),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/experiments/set-experiment-tag",
            "update",
            post(experiments_set_tag),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/create",
            "update",
            post(runs_create),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/update",
            "update",
            post(runs_update),
        ),
        row(
            Method::GET,
            "/api/2.0/mlflow/runs/get",
            "get",
            get(runs_get),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/search",
            "get",
            post(runs_search),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/log-parameter",
            "update",
            post(runs_log_parameter),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/log-metric",
            "update",
            post(runs_log_metric),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/log-batch",
            "update",
            post(runs_log_batch),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/set-tag",
            "update",
            post(runs_set_tag),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/runs/log-inputs",
            "update",
            post(runs_log_inputs),
        ),
        row(
            Method::POST,
            "/api/2.0/mlflow/logged-models/search",
            "get",
            post(logged_models_search),
        ),
        row(
            Method::GET,
            "/api/2.0/mlflow/metrics/get-history",
            "get",
            get(metrics_get_history),
        ),
        model_row(
            Method::POST,
            "/api/2.0/mlflow/registered-models/create",
            "create",
            post(registered_models_create),
        ),
        model_row(
            Method::GET,
            "/api/2.0/mlflow/registered-models/get",
            "get",
            get(registered_models_get),
        ),
        model_row(
            Method::GET,
            "/api/2.0/mlflow/registered-models/search",
            "get",
            get(registered_models_search),
        ),
        model_row(
            Method::POST,
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            "get",
            post(registered_models_latest),
        ),
        // Setting and deleting an alias check `promote` on `<model>/<alias>` in the handler.
        model_row(
            Method::POST,
            "/api/2.0/mlflow/registered-models/alias",
            "promote",
            post(alias_set),
        ),
        model_row(
            Method::DELETE,
            "/api/2.0/mlflow/registered-models/alias",
            "promote",
            delete(alias_delete),
        ),
        model_row(
            Method::GET,
            "/api/2.0/mlflow/registered-models/alias",
            "get",
            get(alias_get),
        ),
        model_row(
            Method::POST,
            "/api/2.0/mlflow/model-versions/create",
            "create",
            post(model_versions_create),
        ),
        model_row(
            Method::GET,
            "/api/2.0/mlflow/model-versions/get",
            "get",
            get(model_versions_get),
        ),
        model_row(
            Method::GET,
            "/api/2.0/mlflow/model-versions/search",
            "get",
            get(model_versions_search),
        ),
        model_row(
            Method::PATCH,
            "/api/2.0/mlflow/model-versions/update",
            "update",
            patch(model_versions_update),
        ),
        row(
            Method::GET,
            "/api/2.0/mlflow-artifacts/artifacts",
            "get",
            get(artifacts_list),
        ),
        row(
            Method::GET,
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            "get",
            get(artifacts_get),
        ),
        row(
            Method::PUT,
            "/api/2.0/mlflow-artifacts/artifacts/{*path}",
            "update",
            put(artifacts_put),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged_run(link: Option<WorkflowLink>) -> Run {
        Run {
            id: "0123456789abcdef0123456789abcdef".into(),
            experiment_id: "1".into(),
            name: "fit".into(),
            user_id: "system:serviceaccount:ml:default".into(),
            status: RunStatus::Finished,
            start_time: 1,
            end_time: Some(2),
            params: BTreeMap::from([("k".to_owned(), "5".to_owned())]),
            tags: BTreeMap::from([(workflow_tags::NODE.to_owned(), "forged".to_owned())]),
            metrics: BTreeMap::new(),
            inputs: Vec::new(),
            workflow: link,
            artifacts: BTreeMap::new(),
        }
    }

    #[test]
    fn a_run_a_step_logged_shows_and_passes_on_its_node() {
        let link = WorkflowLink::example();
        let run = logged_run(Some(link));
        let tags = run_json(&run)["data"]["tags"].clone();
        let tag = |k: &str| {
            tags.as_array()
                .and_then(|t| t.iter().find(|e| e["key"] == k))
                .map(|e| e["value"].clone())
        };
        // The verified link wins over a tag the client set.
        assert_eq!(tag(workflow_tags::NODE), Some(json!("train-x-123")));
        assert_eq!(tag(workflow_tags::UID), Some(json!("uid-1")));
        assert_eq!(tag(workflow_tags::POD), Some(json!("train-x-fit-1")));
        let version = version_from_run("runs:/x/model", Some(&run), BTreeMap::new(), String::new());
        assert_eq!(
            version.run,
            Some(registry::RunLink {
                namespace: "ml".into(),
                workflow: "train-x".into(),
                workflow_uid: "uid-1".into(),
                node_id: "train-x-123".into(),
            })
        );
        // A run from outside a workflow: no link, and its own tags as they are.
        let run = logged_run(None);
        assert_eq!(
            version_from_run("runs:/x/model", Some(&run), BTreeMap::new(), String::new()).run,
            None
        );
        assert_eq!(run_json(&run)["data"]["tags"][0]["value"], "forged");
    }

    #[test]
    fn int64_fields_take_numbers_and_strings() {
        let v = json!({"a": 5, "b": "7", "c": "x", "d": 1.5, "e": ""});
        assert_eq!(opt_i64(&v, "a").expect("a"), Some(5));
        assert_eq!(opt_i64(&v, "b").expect("b"), Some(7));
        assert_eq!(opt_i64(&v, "e").expect("e"), None);
        assert_eq!(opt_i64(&v, "missing").expect("missing"), None);
        for bad in ["c", "d"] {
            let err = opt_i64(&v, bad).expect_err(bad);
            assert!(err.message.contains(bad), "{}", err.message);
        }
    }

    #[test]
    fn doubles_take_protobuf_specials_and_answer_them_back() {
        let v = json!({"n": "NaN", "i": "-Infinity", "x": 0.25, "s": "1e3", "bad": true});
        assert!(req_f64(&v, "n").expect("n").is_nan());
        assert_eq!(req_f64(&v, "i").expect("i"), f64::NEG_INFINITY);
        assert_eq!(req_f64(&v, "x").expect("x"), 0.25);
        assert_eq!(req_f64(&v, "s").expect("s"), 1000.0);
        assert!(req_f64(&v, "bad").is_err());
        assert!(
            req_f64(&v, "none")
                .expect_err("none")
                .message
                .contains("required")
        );
        assert_eq!(number(f64::NAN), json!("NaN"));
        assert_eq!(number(f64::INFINITY), json!("Infinity"));
        assert_eq!(number(0.5), json!(0.5));
    }

    #[test]
    fn query_parameters_repeat_into_lists() {
        let v = query_object(vec![
            ("order_by".into(), "a".into()),
            ("order_by".into(), "b".into()),
            ("order_by".into(), "c".into()),
            ("filter".into(), "x".into()),
        ]);
        assert_eq!(strings(&v, "order_by").expect("list"), ["a", "b", "c"]);
        assert_eq!(strings(&v, "filter").expect("one"), ["x"]);
        assert_eq!(strings(&v, "none").expect("none"), Vec::<String>::new());
    }

    #[test]
    fn run_id_falls_back_to_run_uuid_and_names_the_field() {
        assert_eq!(run_id(&json!({"run_uuid": "u"})).expect("uuid"), "u");
        assert_eq!(
            run_id(&json!({"run_id": "r", "run_uuid": "u"})).expect("id"),
            "r"
        );
        let err = run_id(&json!({})).expect_err("none");
        assert_eq!(err.code, "INVALID_PARAMETER_VALUE");
        assert!(err.message.contains("run_id"), "{}", err.message);
    }

    #[test]
    fn store_errors_map_to_mlflow_codes() {
        let cases = [
            (
                MlflowError::NotFound {
                    what: "run",
                    id: "x".into(),
                },
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
            ),
            (
                MlflowError::AlreadyExists {
                    what: "experiment",
                    name: "x".into(),
                },
                StatusCode::BAD_REQUEST,
                "RESOURCE_ALREADY_EXISTS",
            ),
            (
                MlflowError::Invalid {
                    field: "f".into(),
                    why: "w".into(),
                },
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER_VALUE",
            ),
        ];
        for (err, status, code) in cases {
            let api = MlflowApiError::from(err);
            assert_eq!((api.status, api.code), (status, code));
        }
        let gate = gate_error(super::super::ApiError::Unauthenticated);
        assert_eq!(gate.status(), StatusCode::UNAUTHORIZED);
    }
}
