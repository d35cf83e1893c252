//! MLflow tracking data: experiments, runs, their params, tags, metrics (latest and history),
//! dataset inputs and artifact index, in the schema-4 tables `mlflow_experiments`,
//! `mlflow_runs` and `mlflow_metrics`. The HTTP shapes live in `api::mlflow`; this module owns
//! the records, their validation (pure) and the transactions over them.
//!
//! Invariants:
//! - Experiment `0` ("Default") always exists: it is read as a built-in record until something
//!   is written to it, then stored like any other. Experiment ids are decimal strings, allocated
//!   as one more than the largest id in the table; names are unique.
//! - Run ids are 32 lowercase hex digits (random); a run's `artifact_uri` is
//!   `mlflow-artifacts:/<experiment>/<run>/artifacts`, so the client sends artifacts through
//!   cairn's proxy, which keeps the bytes in the built-in content-addressed store and the index
//!   (path -> digest, size) in the run record.
//! - A parameter, once logged, never changes value (MLflow's rule); logging the same value again
//!   is accepted. The latest value of a metric is the one with the greatest (step, timestamp,
//!   value), as in MLflow; every logged point is kept in `mlflow_metrics`.
//! - The run's `run_name` and its tag `mlflow.runName` are the same value.
//! - Limits are MLflow's: keys of at most 250 characters, param values 6000, tag values 8000;
//!   a batch holds at most 1000 metrics, 100 params and 100 tags.

pub mod filter;

use std::collections::BTreeMap;

use redb::{ReadTransaction, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use crate::store::tables::{JsonTable, MLFLOW_EXPERIMENTS, MLFLOW_METRICS, MLFLOW_RUNS};
use filter::{Attr, Entity, Field, FilterError, Searchable};

/// Where the MLflow API is served to workflow pods (on the executor routes, authenticated by
/// the pod's projected token): the tracking URI a step gets for `MLFLOW_TRACKING_URI: cairn`.
pub const EXECUTOR_PREFIX: &str = "/executor/v1/mlflow";

/// The experiment every run without one goes to.
pub const DEFAULT_EXPERIMENT_ID: &str = "0";
/// Its name.
pub const DEFAULT_EXPERIMENT_NAME: &str = "Default";
/// The tag holding a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";
/// Longest param, tag or metric key.
pub const MAX_KEY_CHARS: usize = 250;
/// Longest param value.
pub const MAX_PARAM_VALUE_CHARS: usize = 6000;
/// Longest tag value.
pub const MAX_TAG_VALUE_CHARS: usize = 8000;
/// Most metrics in one batch.
pub const MAX_BATCH_METRICS: usize = 1000;
/// Most params in one batch.
pub const MAX_BATCH_PARAMS: usize = 100;
/// Most tags in one batch.
pub const MAX_BATCH_TAGS: usize = 100;
/// Longest experiment or run name.
pub const MAX_NAME_CHARS: usize = 500;
/// Most dataset inputs in one `log-inputs` call.
pub const MAX_DATASET_INPUTS: usize = 100;
/// Longest dataset field (schema and profile may be large JSON).
pub const MAX_DATASET_FIELD_CHARS: usize = 1 << 20;

const EXPERIMENTS: JsonTable<Experiment> = JsonTable::new(MLFLOW_EXPERIMENTS);
const RUNS: JsonTable<Run> = JsonTable::new(MLFLOW_RUNS);

/// Errors of the MLflow store, each with the MLflow error code the API answers.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// No such experiment, run or artifact.
    #[error("{what} {id:?} does not exist")]
    NotFound {
        /// `experiment`, `run`, `artifact`, ...
        what: &'static str,
        /// The id or name looked up.
        id: String,
    },
    /// The name is taken.
    #[error("{what} {name:?} already exists")]
    AlreadyExists {
        /// `experiment`, ...
        what: &'static str,
        /// The name.
        name: String,
    },
    /// A request field is invalid.
    #[error("{field}: {why}")]
    Invalid {
        /// The field, e.g. `params[3].value`.
        field: String,
        /// What was expected.
        why: String,
    },
    /// A filter, ordering or page token could not be used.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Linking the run into the lineage graph failed.
    #[error(transparent)]
    Lineage(#[from] crate::lineage::graph::GraphError),
}

impl MlflowError {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Invalid { .. } => "invalid",
            Self::Filter(e) => e.metric_label(),
            Self::Store(e) => e.metric_label(),
            Self::Lineage(e) => e.metric_label(),
        }
    }

    /// MLflow's `error_code` for this error.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "RESOURCE_DOES_NOT_EXIST",
            Self::AlreadyExists { .. } => "RESOURCE_ALREADY_EXISTS",
            Self::Invalid { .. } | Self::Filter(_) => "INVALID_PARAMETER_VALUE",
            Self::Store(_) | Self::Lineage(_) => "INTERNAL_ERROR",
        }
    }

    fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            why: why.into(),
        }
    }
}

/// An experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// Decimal id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Creation, Unix ms.
    pub creation_time: i64,
    /// Last change, Unix ms.
    pub last_update_time: i64,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl Experiment {
    /// Where its runs' artifacts live (cairn's proxy).
    pub fn artifact_location(&self) -> String {
        format!("mlflow-artifacts:/{}", self.id)
    }

    fn default_record() -> Experiment {
        Experiment {
            id: DEFAULT_EXPERIMENT_ID.into(),
            name: DEFAULT_EXPERIMENT_NAME.into(),
            creation_time: 0,
            last_update_time: 0,
            tags: BTreeMap::new(),
        }
    }
}

impl Searchable for Experiment {
    fn field(&self, entity: &Entity) -> Option<Field<'_>> {
        match entity {
            Entity::Attribute(Attr::Name) => Some(Field::Str(&self.name)),
            Entity::Attribute(Attr::CreationTime) => Some(Field::Num(self.creation_time as f64)),
            Entity::Attribute(Attr::LastUpdateTime) => {
                Some(Field::Num(self.last_update_time as f64))
            }
            Entity::Tag(k) => self.tags.get(k).map(|v| Field::Str(v)),
            _ => None,
        }
    }
}

/// A run's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Running.
    Running,
    /// Scheduled, not started.
    Scheduled,
    /// Ended successfully.
    Finished,
    /// Ended with a failure.
    Failed,
    /// Killed.
    Killed,
}

impl RunStatus {
    /// MLflow's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// Parses MLflow's name.
    pub fn parse(name: &str) -> Option<RunStatus> {
        Some(match name {
            "RUNNING" => Self::Running,
            "SCHEDULED" => Self::Scheduled,
            "FINISHED" => Self::Finished,
            "FAILED" => Self::Failed,
            "KILLED" => Self::Killed,
            _ => return None,
        })
    }
}

/// One metric point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MetricPoint {
    /// Value (may be NaN or infinite, as in MLflow).
    pub value: f64,
    /// Unix ms.
    pub timestamp: i64,
    /// Step.
    pub step: i64,
}

impl MetricPoint {
    /// MLflow's order for "latest": (step, timestamp, value).
    fn newer_than(&self, other: &MetricPoint) -> bool {
        (self.step, self.timestamp)
            .cmp(&(other.step, other.timestamp))
            .then(self.value.total_cmp(&other.value))
            .is_gt()
    }
}

/// A metric to log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMetric {
    /// Key.
    pub key: String,
    /// The point.
    pub point: MetricPoint,
}

/// A dataset a run used (`log-inputs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// Dataset name.
    pub name: String,
    /// Dataset digest.
    pub digest: String,
    /// Source type (`local`, `s3`, `http`, ...).
    #[serde(default)]
    pub source_type: String,
    /// Source (JSON text, usually `{"uri": ...}`).
    #[serde(default)]
    pub source: String,
    /// Schema (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Profile (JSON text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Input tags (e.g. `mlflow.data.context = training`).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The workflow node a run was logged from, when a workflow pod logged it (from the pod's
/// verified identity, never from the request).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowLink {
    /// Namespace of the workflow.
    pub namespace: String,
    /// Workflow name.
    pub workflow: String,
    /// The pod that authenticated.
    pub pod: String,
    /// The Workflow's uid.
    #[serde(default)]
    pub workflow_uid: String,
    /// The step's node id (`status.nodes` key).
    #[serde(default)]
    pub node_id: String,
}

#[cfg(test)]
impl WorkflowLink {
    /// Step `train-x-123` (pod `train-x-fit-1`) of Workflow `ml/train-x`, uid `uid-1`.
    pub(crate) fn example() -> WorkflowLink {
        WorkflowLink {
            namespace: "ml".into(),
            workflow: "train-x".into(),
            pod: "train-x-fit-1".into(),
            workflow_uid: "uid-1".into(),
            node_id: "train-x-123".into(),
        }
    }
}

/// One artifact of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactEntry {
    /// Hex sha256 of the bytes (the built-in store's blob).
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// 32 hex digits.
    pub id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// Name (also tag `mlflow.runName`).
    pub name: String,
    /// Who created it (the authenticated subject).
    pub user_id: String,
    /// Status.
    pub status: RunStatus,
    /// Start, Unix ms.
    pub start_time: i64,
    /// End, Unix ms, once ended.
    #[serde(default)]
    pub end_time: Option<i64>,
    /// Params (immutable once set).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Latest value of each metric.
    #[serde(default)]
    pub metrics: BTreeMap<String, MetricPoint>,
    /// Datasets used.
    #[serde(default)]
    pub inputs: Vec<DatasetInput>,
    /// The workflow node that logged it, when a workflow pod did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowLink>,
    /// Artifacts by path relative to the run's artifact root.
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactEntry>,
}

impl Run {
    /// `mlflow-artifacts:/<experiment>/<run>/artifacts`.
    pub fn artifact_uri(&self) -> String {
        format!(
            "mlflow-artifacts:/{}/{}/artifacts",
            self.experiment_id, self.id
        )
    }
}

impl Searchable for Run {
    fn field(&self, entity: &Entity) -> Option<Field<'_>> {
        match entity {
            Entity::Attribute(a) => match a {
                Attr::Status => Some(Field::Str(self.status.as_str())),
                Attr::RunName => Some(Field::Str(&self.name)),
                Attr::RunId => Some(Field::Str(&self.id)),
                Attr::UserId => Some(Field::Str(&self.user_id)),
                Attr::StartTime => Some(Field::Num(self.start_time as f64)),
                Attr::EndTime => self.end_time.map(|t| Field::Num(t as f64)),
                Attr::Name | Attr::CreationTime | Attr::LastUpdateTime => None,
            },
            Entity::Param(k) => self.params.get(k).map(|v| Field::Str(v)),
            Entity::Tag(k) => self.tags.get(k).map(|v| Field::Str(v)),
            Entity::Metric(k) => self.metrics.get(k).map(|m| Field::Num(m.value)),
        }
    }
}

/// What `runs/create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NewRun {
    /// Experiment (empty: the default one).
    pub experiment_id: String,
    /// Run name (empty: from tag `mlflow.runName`, else generated).
    pub run_name: String,
    /// The authenticated subject.
    pub user_id: String,
    /// Start, Unix ms.
    pub start_time: i64,
    /// Initial tags.
    pub tags: BTreeMap<String, String>,
    /// The workflow node, when a workflow pod creates it.
    pub workflow: Option<WorkflowLink>,
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Checks an experiment or run name. Pure.
pub fn validate_name(field: &str, name: &str) -> Result<(), MlflowError> {
    if name.trim().is_empty() {
        return Err(MlflowError::invalid(field, "must not be empty"));
    }
    if chars(name) > MAX_NAME_CHARS {
        return Err(MlflowError::invalid(
            field,
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(MlflowError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a param, tag or metric key (MLflow's rules: at most 250 characters; letters, digits,
/// `_ - . / space :`; no `..` segment or leading `/`). Pure.
pub fn validate_key(field: &str, key: &str) -> Result<(), MlflowError> {
    if key.is_empty() {
        return Err(MlflowError::invalid(field, "key must not be empty"));
    }
    if chars(key) > MAX_KEY_CHARS {
        return Err(MlflowError::invalid(
            field,
            format!("key {key:?} is longer than {MAX_KEY_CHARS} characters"),
        ));
    }
    if !key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ' ' | ':'))
    {
        return Err(MlflowError::invalid(
            field,
            format!(
                "key {key:?} may only contain letters, digits, underscores, dashes, periods, \
                 slashes, spaces and colons"
            ),
        ));
    }
    if key.starts_with('/') || key.split('/').any(|s| s == "..") {
        return Err(MlflowError::invalid(
            field,
            format!("key {key:?} must be a relative path without `..`"),
        ));
    }
    Ok(())
}

fn validate_value(field: &str, value: &str, max: usize) -> Result<(), MlflowError> {
    if chars(value) > max {
        return Err(MlflowError::invalid(
            field,
            format!("value is longer than {max} characters"),
        ));
    }
    Ok(())
}

/// A `log-batch` (and the single-item calls, which are batches of one).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Metrics.
    pub metrics: Vec<NewMetric>,
    /// Params.
    pub params: Vec<(String, String)>,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

/// Checks a batch: sizes, keys and value lengths; duplicate params must agree. Pure.
pub fn validate_batch(batch: &Batch) -> Result<(), MlflowError> {
    for (field, n, max) in [
        ("metrics", batch.metrics.len(), MAX_BATCH_METRICS),
        ("params", batch.params.len(), MAX_BATCH_PARAMS),
        ("tags", batch.tags.len(), MAX_BATCH_TAGS),
    ] {
        if n > max {
            return Err(MlflowError::invalid(
                field,
                format!("{n} entries in one batch, at most {max} allowed"),
            ));
        }
    }
    for (i, m) in batch.metrics.iter().enumerate() {
        validate_key(&format!("metrics[{i}].key"), &m.key)?;
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, (k, v)) in batch.params.iter().enumerate() {
        validate_key(&format!("params[{i}].key"), k)?;
        validate_value(&format!("params[{i}].value"), v, MAX_PARAM_VALUE_CHARS)?;
        if let Some(prev) = seen.insert(k, v)
            && prev != v
        {
            return Err(MlflowError::invalid(
                format!("params[{i}]"),
                format!("param {k:?} is given twice with different values"),
            ));
        }
    }
    for (i, (k, v)) in batch.tags.iter().enumerate() {
        validate_key(&format!("tags[{i}].key"), k)?;
        validate_value(&format!("tags[{i}].value"), v, MAX_TAG_VALUE_CHARS)?;
    }
    Ok(())
}

/// Applies a validated batch to a run record; returns the metric points to append to the
/// history. Refuses a param whose value would change. Pure.
pub fn apply_batch(run: &mut Run, batch: &Batch) -> Result<(), MlflowError> {
    for (i, (k, v)) in batch.params.iter().enumerate() {
        if let Some(old) = run.params.get(k)
            && old != v
        {
            return Err(MlflowError::invalid(
                format!("params[{i}]"),
                format!(
                    "run {}: changing param {k:?} from {old:?} to {v:?} is not allowed (params \
                     are immutable once logged)",
                    run.id
                ),
            ));
        }
    }
    for (k, v) in &batch.params {
        run.params.insert(k.clone(), v.clone());
    }
    for (k, v) in &batch.tags {
        if k == RUN_NAME_TAG {
            run.name = v.clone();
        }
        run.tags.insert(k.clone(), v.clone());
    }
    for m in &batch.metrics {
        let newer = run
            .metrics
            .get(&m.key)
            .is_none_or(|old| m.point.newer_than(old) || m.point == *old);
        if newer {
            run.metrics.insert(m.key.clone(), m.point);
        }
    }
    Ok(())
}

/// Checks dataset inputs. Pure.
pub fn validate_inputs(inputs: &[DatasetInput]) -> Result<(), MlflowError> {
    if inputs.len() > MAX_DATASET_INPUTS {
        return Err(MlflowError::invalid(
            "datasets",
            format!(
                "{} datasets in one call, at most {MAX_DATASET_INPUTS}",
                inputs.len()
            ),
        ));
    }
    for (i, d) in inputs.iter().enumerate() {
        if d.name.is_empty() || d.digest.is_empty() {
            return Err(MlflowError::invalid(
                format!("datasets[{i}].dataset"),
                "name and digest are required",
            ));
        }
        for (f, v) in [
            ("source", Some(&d.source)),
            ("schema", d.schema.as_ref()),
            ("profile", d.profile.as_ref()),
        ] {
            if let Some(v) = v {
                validate_value(
                    &format!("datasets[{i}].dataset.{f}"),
                    v,
                    MAX_DATASET_FIELD_CHARS,
                )?;
            }
        }
    }
    Ok(())
}

/// A fresh run id: 32 random hex digits.
pub fn new_run_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The run and path addressed by an artifact path `<experiment>/<run>/artifacts[/<path>]`.
/// Pure.
pub fn split_artifact_path(path: &str) -> Result<(&str, &str, &str), MlflowError> {
    let bad = || {
        MlflowError::invalid(
            "path",
            format!("{path:?} is not <experiment>/<run>/artifacts[/<path>]"),
        )
    };
    let mut parts = path.trim_matches('/').splitn(4, '/');
    let experiment = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
    let run = parts.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
    if parts.next() != Some("artifacts") {
        return Err(bad());
    }
    let rest = parts.next().unwrap_or("");
    if rest
        .split('/')
        .any(|s| s == ".." || s == "." || (s.is_empty() && !rest.is_empty()))
    {
        return Err(MlflowError::invalid(
            "path",
            format!("{path:?}: artifact paths have no empty, `.` or `..` segments"),
        ));
    }
    Ok((experiment, run, rest))
}

/// One entry of an artifact listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Path relative to the directory listed.
    pub path: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Size (files only).
    pub size: Option<u64>,
}

/// The direct children of `dir` (relative to the run's artifact root) in a run's artifact
/// index. Pure.
pub fn list_artifacts(artifacts: &BTreeMap<String, ArtifactEntry>, dir: &str) -> Vec<Listed> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{}/", dir.trim_end_matches('/'))
    };
    let mut out: BTreeMap<String, Listed> = BTreeMap::new();
    for (path, entry) in artifacts.range(prefix.clone()..) {
        let Some(rest) = path.strip_prefix(&prefix) else {
            break;
        };
        match rest.split_once('/') {
            Some((child, _)) => {
                out.entry(child.to_string()).or_insert(Listed {
                    path: child.to_string(),
                    is_dir: true,
                    size: None,
                });
            }
            None => {
                out.insert(
                    rest.to_string(),
                    Listed {
                        path: rest.to_string(),
                        is_dir: false,
                        size: Some(entry.size),
                    },
                );
            }
        }
    }
    out.into_values().collect()
}

// ---- transactions ----

/// Reads an experiment by id (`0` always exists).
pub fn get_experiment(txn: &ReadTransaction, id: &str) -> Result<Experiment, MlflowError> {
    match EXPERIMENTS.get(txn, id)? {
        Some(e) => Ok(e),
        None if id == DEFAULT_EXPERIMENT_ID => Ok(Experiment::default_record()),
        None => Err(MlflowError::NotFound {
            what: "experiment",
            id: id.to_string(),
        }),
    }
}

/// Every experiment, the default one included, by id.
pub fn list_experiments(txn: &ReadTransaction) -> Result<Vec<Experiment>, MlflowError> {
    let mut all: Vec<Experiment> = EXPERIMENTS.list(txn)?.into_iter().map(|(_, e)| e).collect();
    if !all.iter().any(|e| e.id == DEFAULT_EXPERIMENT_ID) {
        all.push(Experiment::default_record());
    }
    all.sort_by_key(|e| e.id.parse::<u64>().unwrap_or(u64::MAX));
    Ok(all)
}

/// Reads an experiment by name.
pub fn get_experiment_by_name(
    txn: &ReadTransaction,
    name: &str,
) -> Result<Experiment, MlflowError> {
    list_experiments(txn)?
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| MlflowError::NotFound {
            what: "experiment",
            id: name.to_string(),
        })
}

fn experiments_in(txn: &WriteTransaction) -> Result<Vec<Experiment>, MlflowError> {
    let mut all: Vec<Experiment> = EXPERIMENTS
        .list_in(txn)?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    if !all.iter().any(|e| e.id == DEFAULT_EXPERIMENT_ID) {
        all.push(Experiment::default_record());
    }
    Ok(all)
}

fn experiment_in(txn: &WriteTransaction, id: &str) -> Result<Experiment, MlflowError> {
    experiments_in(txn)?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| MlflowError::NotFound {
            what: "experiment",
            id: id.to_string(),
        })
}

/// Creates an experiment; returns it.
pub fn create_experiment(
    txn: &WriteTransaction,
    name: &str,
    tags: &BTreeMap<String, String>,
    now: i64,
) -> Result<Experiment, MlflowError> {
    validate_name("name", name)?;
    for (i, (k, v)) in tags.iter().enumerate() {
        validate_key(&format!("tags[{i}].key"), k)?;
        validate_value(&format!("tags[{i}].value"), v, MAX_TAG_VALUE_CHARS)?;
    }
    let all = experiments_in(txn)?;
    if all.iter().any(|e| e.name == name) {
        return Err(MlflowError::AlreadyExists {
            what: "experiment",
            name: name.to_string(),
        });
    }
    let next = all
        .iter()
        .filter_map(|e| e.id.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        .saturating_add(1);
    let experiment = Experiment {
        id: next.to_string(),
        name: name.to_string(),
        creation_time: now,
        last_update_time: now,
        tags: tags.clone(),
    };
    EXPERIMENTS.insert(txn, &experiment.id, &experiment)?;
    Ok(experiment)
}

/// Sets one experiment tag.
pub fn set_experiment_tag(
    txn: &WriteTransaction,
    id: &str,
    key: &str,
    value: &str,
    now: i64,
) -> Result<(), MlflowError> {
    validate_key("key", key)?;
    validate_value("value", value, MAX_TAG_VALUE_CHARS)?;
    let mut experiment = experiment_in(txn, id)?;
    experiment.tags.insert(key.to_string(), value.to_string());
    experiment.last_update_time = now;
    EXPERIMENTS.insert(txn, id, &experiment)?;
    Ok(())
}

/// Creates a run.
pub fn create_run(txn: &WriteTransaction, new: &NewRun) -> Result<Run, MlflowError> {
    let experiment_id = if new.experiment_id.is_empty() {
        DEFAULT_EXPERIMENT_ID
    } else {
        new.experiment_id.as_str()
    };
    let experiment = experiment_in(txn, experiment_id)?;
    let mut tags = new.tags.clone();
    let name = if !new.run_name.is_empty() {
        new.run_name.clone()
    } else if let Some(tagged) = tags.get(RUN_NAME_TAG).filter(|n| !n.is_empty()) {
        tagged.clone()
    } else {
        String::new()
    };
    let id = new_run_id();
    let name = if name.is_empty() {
        format!("run-{}", &id[..8])
    } else {
        name
    };
    validate_name("run_name", &name)?;
    tags.insert(RUN_NAME_TAG.into(), name.clone());
    let batch = Batch {
        tags: tags.clone().into_iter().collect(),
        ..Batch::default()
    };
    validate_batch(&batch)?;
    let run = Run {
        id,
        experiment_id: experiment.id.clone(),
        name,
        user_id: new.user_id.clone(),
        status: RunStatus::Running,
        start_time: new.start_time,
        end_time: None,
        params: BTreeMap::new(),
        tags,
        metrics: BTreeMap::new(),
        inputs: Vec::new(),
        workflow: new.workflow.clone(),
        artifacts: BTreeMap::new(),
    };
    if experiment.id == DEFAULT_EXPERIMENT_ID && EXPERIMENTS.get_in(txn, &experiment.id)?.is_none()
    {
        EXPERIMENTS.insert(txn, &experiment.id, &experiment)?;
    }
    RUNS.insert(txn, &run.id, &run)?;
    // A run a workflow step logged joins the lineage graph after the step's execution, in the
    // same transaction (both or neither).
    if let Some(link) = &run.workflow
        && !link.workflow_uid.is_empty()
        && !link.node_id.is_empty()
    {
        crate::lineage::graph::record_mlflow_run(
            txn,
            &crate::lineage::graph::MlflowRunLink {
                run_id: run.id.clone(),
                experiment_id: run.experiment_id.clone(),
                run_name: run.name.clone(),
                workflow_uid: link.workflow_uid.clone(),
                node_id: link.node_id.clone(),
            },
        )?;
    }
    Ok(run)
}

/// Reads a run.
pub fn get_run(txn: &ReadTransaction, id: &str) -> Result<Run, MlflowError> {
    RUNS.get(txn, id)?.ok_or_else(|| MlflowError::NotFound {
        what: "run",
        id: id.to_string(),
    })
}

/// Every run of the given experiments.
pub fn list_runs(
    txn: &ReadTransaction,
    experiment_ids: &[String],
) -> Result<Vec<Run>, MlflowError> {
    Ok(RUNS
        .list(txn)?
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| experiment_ids.contains(&r.experiment_id))
        .collect())
}

/// Reads a run inside a write transaction.
pub fn run_in(txn: &WriteTransaction, id: &str) -> Result<Run, MlflowError> {
    RUNS.get_in(txn, id)?.ok_or_else(|| MlflowError::NotFound {
        what: "run",
        id: id.to_string(),
    })
}

/// Changes a run's status, end time or name.
pub fn update_run(
    txn: &WriteTransaction,
    id: &str,
    status: Option<RunStatus>,
    end_time: Option<i64>,
    run_name: Option<&str>,
) -> Result<Run, MlflowError> {
    let mut run = run_in(txn, id)?;
    if let Some(status) = status {
        run.status = status;
    }
    if let Some(end) = end_time {
        run.end_time = Some(end);
    }
    if let Some(name) = run_name.filter(|n| !n.is_empty()) {
        validate_name("run_name", name)?;
        run.name = name.to_string();
        run.tags.insert(RUN_NAME_TAG.into(), name.to_string());
    }
    RUNS.insert(txn, id, &run)?;
    Ok(run)
}

/// Logs a batch: params, tags, metrics (latest in the run, every point in the history).
pub fn log_batch(txn: &WriteTransaction, run_id: &str, batch: &Batch) -> Result<(), MlflowError> {
    validate_batch(batch)?;
    let mut run = run_in(txn, run_id)?;
    apply_batch(&mut run, batch)?;
    RUNS.insert(txn, run_id, &run)?;
    if !batch.metrics.is_empty() {
        let mut table = txn.open_table(MLFLOW_METRICS).map_err(StoreError::from)?;
        for m in &batch.metrics {
            table
                .insert(
                    (run_id, m.key.as_str(), m.point.step, m.point.timestamp),
                    m.point.value,
                )
                .map_err(StoreError::from)?;
        }
    }
    Ok(())
}

/// Records dataset inputs (a dataset already recorded, same name and digest, is kept once).
pub fn log_inputs(
    txn: &WriteTransaction,
    run_id: &str,
    inputs: &[DatasetInput],
) -> Result<(), MlflowError> {
    validate_inputs(inputs)?;
    let mut run = run_in(txn, run_id)?;
    for input in inputs {
        if !run
            .inputs
            .iter()
            .any(|d| d.name == input.name && d.digest == input.digest)
        {
            run.inputs.push(input.clone());
        }
    }
    RUNS.insert(txn, run_id, &run)?;
    Ok(())
}

/// Records an artifact uploaded through the proxy in the run's index.
pub fn record_artifact(
    txn: &WriteTransaction,
    run_id: &str,
    path: &str,
    entry: &ArtifactEntry,
) -> Result<(), MlflowError> {
    let mut run = run_in(txn, run_id)?;
    run.artifacts.insert(path.to_string(), entry.clone());
    RUNS.insert(txn, run_id, &run)?;
    Ok(())
}

/// Every point of one metric of a run, by (step, timestamp).
pub fn metric_history(
    txn: &ReadTransaction,
    run_id: &str,
    key: &str,
) -> Result<Vec<MetricPoint>, MlflowError> {
    let table = txn.open_table(MLFLOW_METRICS).map_err(StoreError::from)?;
    let mut out = Vec::new();
    let range = table
        .range((run_id, key, i64::MIN, i64::MIN)..=(run_id, key, i64::MAX, i64::MAX))
        .map_err(StoreError::from)?;
    for entry in range {
        let (k, v) = entry.map_err(StoreError::from)?;
        let (_, _, step, timestamp) = k.value();
        out.push(MetricPoint {
            value: v.value(),
            timestamp,
            step,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
