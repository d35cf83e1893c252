//! The lineage graph: typed records in the spirit of ML Metadata, stored in the schema-4 tables
//! `lineage_nodes`, `lineage_edges_out`, `lineage_edges_in` and `lineage_index`.
//!
//! What this module owns:
//! - The record types: [`Node`] = [`Artifact`] | [`Execution`] | [`Context`], and [`EdgeKind`].
//! - Id derivation from natural keys ([`artifact_id`], [`execution_id`], [`context_id`]): an
//!   artifact is keyed by its digest when known, else its URI; an execution by workflow uid and
//!   Argo node id; a context by kind and name. Ids are `a:`, `x:` or `c:` followed by 32 hex
//!   digits of a SHA-256 of the key.
//! - [`write`]: upserting a [`Batch`] of nodes, edges and index entries in a caller's write
//!   transaction, and the reads ([`get`], [`out_edges`], [`in_edges`], [`lookup`]) in read or
//!   write transactions ([`GraphRead`]).
//! - The helpers the registry and promotion code call inside their own write transactions:
//!   [`record_model_version`], [`record_promotion`], [`record_sync`].
//!
//! Invariants:
//! - Writing is idempotent: replaying a batch (a capture run twice, a registration retried)
//!   leaves the tables as they were. Nodes are merged, not blindly replaced: a context keeps
//!   properties it had that the new record does not set; an artifact keeps its digest, size and
//!   creation time when the new record does not know them.
//! - Every edge is stored twice, `(from, to)` in `lineage_edges_out` and `(to, from)` in
//!   `lineage_edges_in`, with the same kind; [`write`] always writes both.
//! - Edges may name a node that is not written yet (a model version registered from a workflow
//!   step points at the step's execution before the workflow finishes and is captured): ids are
//!   deterministic, so the node appears under that id later. Readers treat a missing node as
//!   "not captured (yet)", never as an error.
//! - Edges follow the data flow: an input artifact points to the execution that read it, which
//!   points to its outputs; so "upstream" means following edges backwards.

use std::collections::BTreeMap;

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::tables::{LINEAGE_EDGES_IN, LINEAGE_EDGES_OUT, LINEAGE_INDEX, LINEAGE_NODES};
use crate::store::{ReadTables, StoreError};

/// Names of the secondary indexes (the part of a `lineage_index` key before the first `/`).
pub mod index {
    /// Artifacts by content digest (`sha256:<hex>`).
    pub const DIGEST: &str = "digest";
    /// Artifacts by URI.
    pub const URI: &str = "uri";
    /// The run context and executions of a workflow, by workflow uid.
    pub const WORKFLOW_UID: &str = "workflow-uid";
    /// Executions by resolved image digest.
    pub const IMAGE_DIGEST: &str = "image-digest";
    /// Pipeline contexts by WorkflowTemplate name.
    pub const PIPELINE: &str = "pipeline";
    /// Model version contexts by model name.
    pub const MODEL: &str = "model";
    /// Promotion contexts by Git commit sha.
    pub const COMMIT: &str = "commit";
    /// Application contexts by Application name.
    pub const APPLICATION: &str = "application";
    /// Run contexts by creation time, `<unix ms, 20 digits>` (retention scans it in order).
    pub const TIME: &str = "time";
    /// MlflowRun contexts by MLflow run id.
    pub const MLFLOW_RUN: &str = "mlflow-run";
}

/// Errors of the lineage graph.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The store failed (open, read, write, commit).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored node or edge could not be decoded (written by an incompatible version or
    /// damaged).
    #[error("lineage record {id:?} cannot be decoded: {source}")]
    Decode {
        /// The node id, or `<from> -> <to>` for an edge.
        id: String,
        /// The deserializer's error.
        source: serde_json::Error,
    },
    /// A node or edge could not be encoded.
    #[error("lineage record {id:?} cannot be encoded: {source}")]
    Encode {
        /// The node id, or `<from> -> <to>` for an edge.
        id: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A caller-supplied field is invalid (a user error).
    #[error("{object}: field {field} is {found:?}: expected {expected}")]
    Invalid {
        /// The object the field belongs to (e.g. `model version recommender/3`).
        object: String,
        /// The field.
        field: &'static str,
        /// The value given.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
}

impl GraphError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Store(e) => e.metric_label(),
            Self::Decode { .. } => "decode",
            Self::Encode { .. } => "encode",
            Self::Invalid { .. } => "invalid",
        }
    }
}

impl From<redb::StorageError> for GraphError {
    fn from(e: redb::StorageError) -> Self {
        Self::Store(e.into())
    }
}

impl From<redb::TableError> for GraphError {
    fn from(e: redb::TableError) -> Self {
        Self::Store(e.into())
    }
}

/// Result of graph operations.
pub type Result<T, E = GraphError> = std::result::Result<T, E>;

/// What an artifact is, for display and for provenance (datasets are the inputs that matter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactType {
    /// Training or evaluation data.
    Dataset,
    /// A trained model.
    Model,
    /// Metrics written by a step (e.g. an evaluation report).
    Metrics,
    /// Any other output artifact.
    #[default]
    Artifact,
}

impl ArtifactType {
    /// Guesses the type from an artifact's name (`dataset`, `data`, `model`, `metrics`, ...).
    pub fn from_name(name: &str) -> Self {
        let n = name.to_ascii_lowercase();
        if n.contains("dataset") || n == "data" || n.starts_with("data-") || n.ends_with("-data") {
            Self::Dataset
        } else if n.contains("model") {
            Self::Model
        } else if n.contains("metric") || n.contains("score") {
            Self::Metrics
        } else {
            Self::Artifact
        }
    }
}

/// A piece of data: a dataset, a model, any output artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    /// The artifact's name where it was last seen (the Argo artifact name, or the model name).
    pub name: String,
    /// Where it is stored (`s3://...`, `file://...`, the registry's source URI).
    pub uri: String,
    /// `sha256:<hex>` of the content, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Size in bytes, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// What kind of data it is.
    #[serde(rename = "type", default)]
    pub type_: ArtifactType,
    /// When it was first produced, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
}

/// One attempt of one workflow node that ran a pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// The Workflow's namespace.
    pub namespace: String,
    /// The Workflow's name.
    pub workflow: String,
    /// The Workflow's uid.
    pub workflow_uid: String,
    /// The Argo node id (key of `.status.nodes`).
    pub node_id: String,
    /// The template the node ran.
    pub template: String,
    /// Attempt number, 0 for the first (a Retry node's children are its attempts).
    #[serde(default)]
    pub attempt: u32,
    /// The image as written in the template.
    #[serde(default)]
    pub image: String,
    /// The resolved image (`imageID` of the pod's `main` container), when observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// Command followed by args.
    #[serde(default)]
    pub command: Vec<String>,
    /// Input parameters.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Output parameters.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// The main container's exit code, when observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The node's phase (Succeeded, Failed, Error...).
    #[serde(default)]
    pub phase: String,
    /// When the node started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Timestamp>,
    /// When the node finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Timestamp>,
}

/// The kinds of context (groupings of nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextKind {
    /// One Workflow run; name = its uid.
    WorkflowRun,
    /// A WorkflowTemplate at a Git revision; name = `<template>` or `<template>@<revision>`.
    Pipeline,
    /// A cairn Application; name = the Application's name.
    Application,
    /// A registered model version; name = `<model>/<version>`.
    ModelVersion,
    /// A promotion commit; name = `<model>/<alias>@<commit>`.
    Promotion,
    /// An MLflow run logged from a workflow step; name = the MLflow run id.
    MlflowRun,
}

impl ContextKind {
    fn tag(self) -> &'static str {
        match self {
            Self::WorkflowRun => "workflow_run",
            Self::Pipeline => "pipeline",
            Self::Application => "application",
            Self::ModelVersion => "model_version",
            Self::Promotion => "promotion",
            Self::MlflowRun => "mlflow_run",
        }
    }
}

/// A grouping: a run, a pipeline, an application, a model version, a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    /// What it groups.
    pub kind: ContextKind,
    /// Its natural name (see [`ContextKind`]).
    pub name: String,
    /// Free-form properties (metrics, revision, commit, phase...).
    #[serde(default)]
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// A node of the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
pub enum Node {
    /// Data.
    Artifact(Artifact),
    /// A step attempt (boxed: by far the largest variant).
    Execution(Box<Execution>),
    /// A grouping.
    Context(Context),
}

impl Node {
    /// The node's id, derived from its natural key.
    pub fn id(&self) -> String {
        match self {
            Self::Artifact(a) => artifact_id(a.digest.as_deref(), &a.uri),
            Self::Execution(x) => execution_id(&x.workflow_uid, &x.node_id),
            Self::Context(c) => context_id(c.kind, &c.name),
        }
    }

    /// Merges a stored version of the same node into this one (see the module invariants).
    fn merged_with(mut self, old: Node) -> Node {
        match (&mut self, old) {
            (Node::Context(new), Node::Context(old)) => {
                for (k, v) in old.properties {
                    new.properties.entry(k).or_insert(v);
                }
            }
            (Node::Artifact(new), Node::Artifact(old)) => {
                if new.digest.is_none() {
                    new.digest = old.digest;
                }
                if new.size.is_none() {
                    new.size = old.size;
                }
                new.created = match (old.created, new.created) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if new.type_ == ArtifactType::Artifact {
                    new.type_ = old.type_;
                }
            }
            _ => {}
        }
        self
    }
}

/// The kind of an edge `from -> to`. Edges follow the data flow (see the module invariants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// artifact -> execution: the execution read the artifact.
    Input,
    /// execution -> artifact: the execution wrote the artifact.
    Output,
    /// node -> context: membership (an execution in its WorkflowRun, a run in its Pipeline, a
    /// model artifact in its ModelVersion).
    Member,
    /// execution (or WorkflowRun, when the node is unknown) -> ModelVersion: the model version
    /// was registered from that execution's output.
    Produced,
    /// ModelVersion -> Promotion: the promotion commit deploys that version.
    Promotes,
    /// Promotion -> Application: the Application synced the promotion's commit.
    Deploys,
    /// Application -> Pipeline: the Application manages the WorkflowTemplate at that revision.
    Manages,
    /// execution -> MlflowRun: the step logged that MLflow run (its params, metrics,
    /// artifacts).
    Logged,
}

/// An edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    /// Source node id.
    pub from: String,
    /// Target node id.
    pub to: String,
    /// What the edge means.
    pub kind: EdgeKind,
}

/// Nodes, edges and index entries to upsert together.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// Nodes with their ids.
    pub nodes: Vec<(String, Node)>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// `(index name, value, node id)`.
    pub index: Vec<(String, String, String)>,
}

impl Batch {
    /// Adds a node; returns its id.
    pub fn node(&mut self, node: Node) -> String {
        let id = node.id();
        self.nodes.push((id.clone(), node));
        id
    }

    /// Adds an edge.
    pub fn edge(&mut self, from: &str, to: &str, kind: EdgeKind) {
        self.edges.push(Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            kind,
        });
    }

    /// Adds an index entry `<name>/<value> -> id`.
    pub fn index(&mut self, name: &str, value: &str, id: &str) {
        self.index
            .push((name.to_owned(), value.to_owned(), id.to_owned()));
    }

    /// Whether the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.edges.is_empty() && self.index.is_empty()
    }

    /// Number of records (nodes + edges + index entries).
    pub fn len(&self) -> usize {
        self.nodes.len() + self.edges.len() + self.index.len()
    }
}

fn hashed(prefix: &str, domain: &str, key: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    for part in key {
        h.update([0u8]);
        h.update(part.as_bytes());
    }
    let digest = h.finalize();
    format!("{prefix}{}", hex::encode(&digest[..16]))
}

/// Id of an artifact: by digest when known, else by URI.
pub fn artifact_id(digest: Option<&str>, uri: &str) -> String {
    match digest {
        Some(d) if !d.is_empty() => hashed("a:", "digest", &[d]),
        _ => hashed("a:", "uri", &[uri]),
    }
}

/// Id of an execution: workflow uid + Argo node id.
pub fn execution_id(workflow_uid: &str, node_id: &str) -> String {
    hashed("x:", "execution", &[workflow_uid, node_id])
}

/// Id of a context: kind + name.
pub fn context_id(kind: ContextKind, name: &str) -> String {
    hashed("c:", kind.tag(), &[name])
}

/// Name of a model version context.
pub fn model_version_name(model: &str, version: u64) -> String {
    format!("{model}/{version}")
}

/// The full index key `<name>/<value>`.
pub fn index_key(name: &str, value: &str) -> String {
    format!("{name}/{value}")
}

type EdgeDef = TableDefinition<'static, (&'static str, &'static str), &'static [u8]>;

/// A transaction the graph can be read in: either kind ([`ReadTables`]).
pub trait GraphRead: ReadTables {}

impl<T: ReadTables> GraphRead for T {}

fn decode_node(id: &str, bytes: &[u8]) -> Result<Node> {
    serde_json::from_slice(bytes).map_err(|source| GraphError::Decode {
        id: id.to_owned(),
        source,
    })
}

fn decode_kind(from: &str, to: &str, bytes: &[u8]) -> Result<EdgeKind> {
    serde_json::from_slice(bytes).map_err(|source| GraphError::Decode {
        id: format!("{from} -> {to}"),
        source,
    })
}

/// Reads one node.
pub fn get(txn: &impl GraphRead, id: &str) -> Result<Option<Node>> {
    let table = txn.read_table(LINEAGE_NODES).map_err(StoreError::from)?;
    match table.get(id)? {
        Some(guard) => decode_node(id, guard.value()).map(Some),
        None => Ok(None),
    }
}

fn edges_of(txn: &impl GraphRead, def: EdgeDef, id: &str, outgoing: bool) -> Result<Vec<Edge>> {
    let table = txn.read_table(def).map_err(StoreError::from)?;
    let mut out = Vec::new();
    for entry in table.range((id, "")..)? {
        let (k, v) = entry?;
        let (a, b) = k.value();
        if a != id {
            break;
        }
        let (from, to) = if outgoing { (a, b) } else { (b, a) };
        let kind = decode_kind(from, to, v.value())?;
        out.push(Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            kind,
        });
    }
    Ok(out)
}

/// Edges leaving `id` (downstream), in target-id order.
pub fn out_edges(txn: &impl GraphRead, id: &str) -> Result<Vec<Edge>> {
    edges_of(txn, LINEAGE_EDGES_OUT, id, true)
}

/// Edges arriving at `id` (upstream), in source-id order.
pub fn in_edges(txn: &impl GraphRead, id: &str) -> Result<Vec<Edge>> {
    edges_of(txn, LINEAGE_EDGES_IN, id, false)
}

/// Node ids under index `name` with `value` (see [`index`]), in id order.
pub fn lookup(txn: &impl GraphRead, name: &str, value: &str) -> Result<Vec<String>> {
    let key = index_key(name, value);
    let table = txn.read_table(LINEAGE_INDEX).map_err(StoreError::from)?;
    let mut out = Vec::new();
    for entry in table.range((key.as_str(), "")..)? {
        let (k, _) = entry?;
        let (index_value, id) = k.value();
        if index_value != key {
            break;
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

/// Upserts a batch in the caller's write transaction (idempotent; see the module invariants).
pub fn write(txn: &WriteTransaction, batch: &Batch) -> Result<()> {
    {
        let mut nodes = txn.open_table(LINEAGE_NODES)?;
        for (id, node) in &batch.nodes {
            let previous = match nodes.get(id.as_str())? {
                // A stored record that does not decode is replaced rather than blocking capture.
                Some(guard) => serde_json::from_slice::<Node>(guard.value()).ok(),
                None => None,
            };
            let node = match previous {
                Some(old) => node.clone().merged_with(old),
                None => node.clone(),
            };
            let bytes = serde_json::to_vec(&node).map_err(|source| GraphError::Encode {
                id: id.clone(),
                source,
            })?;
            nodes.insert(id.as_str(), bytes.as_slice())?;
        }
    }
    {
        let mut out = txn.open_table(LINEAGE_EDGES_OUT)?;
        let mut inn = txn.open_table(LINEAGE_EDGES_IN)?;
        for e in &batch.edges {
            let bytes = serde_json::to_vec(&e.kind).map_err(|source| GraphError::Encode {
                id: format!("{} -> {}", e.from, e.to),
                source,
            })?;
            out.insert((e.from.as_str(), e.to.as_str()), bytes.as_slice())?;
            inn.insert((e.to.as_str(), e.from.as_str()), bytes.as_slice())?;
        }
    }
    {
        let mut idx = txn.open_table(LINEAGE_INDEX)?;
        for (name, value, id) in &batch.index {
            let key = index_key(name, value);
            idx.insert((key.as_str(), id.as_str()), ())?;
        }
    }
    Ok(())
}

/// Removes nodes, with every edge touching them and the given index entries (retention).
pub fn remove(txn: &WriteTransaction, ids: &[String], index: &[(String, String)]) -> Result<()> {
    for id in ids {
        let outgoing = out_edges(txn, id)?;
        let incoming = in_edges(txn, id)?;
        let mut out = txn.open_table(LINEAGE_EDGES_OUT)?;
        let mut inn = txn.open_table(LINEAGE_EDGES_IN)?;
        for e in outgoing.iter().chain(incoming.iter()) {
            out.remove((e.from.as_str(), e.to.as_str()))?;
            inn.remove((e.to.as_str(), e.from.as_str()))?;
        }
        drop((out, inn));
        txn.open_table(LINEAGE_NODES)?.remove(id.as_str())?;
    }
    let mut idx = txn.open_table(LINEAGE_INDEX)?;
    for (key, id) in index {
        idx.remove((key.as_str(), id.as_str()))?;
    }
    Ok(())
}

/// A model version registered by the registry, to link into the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersionLink {
    /// Registered model name.
    pub model: String,
    /// Version number (1-based).
    pub version: u64,
    /// The version's source URI (where the model artifact is stored).
    pub uri: String,
    /// `sha256:<hex>` of the model artifact, when known.
    pub digest: Option<String>,
    /// Uid of the Workflow that registered it, when registered from a workflow.
    pub workflow_uid: Option<String>,
    /// Argo node id of the step that registered it (the producing execution), when known.
    pub node_id: Option<String>,
    /// The version's metrics.
    pub metrics: BTreeMap<String, f64>,
}

fn invalid(object: String, field: &'static str, found: &str, expected: &'static str) -> GraphError {
    GraphError::Invalid {
        object,
        field,
        found: found.to_owned(),
        expected,
    }
}

fn check_digest(object: &str, digest: Option<&str>) -> Result<()> {
    if let Some(d) = digest {
        let ok = d
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !ok {
            return Err(invalid(
                object.to_owned(),
                "digest",
                d,
                "sha256:<64 hex digits>",
            ));
        }
    }
    Ok(())
}

/// The batch [`record_model_version`] writes (pure).
pub fn model_version_batch(link: &ModelVersionLink) -> Result<(String, Batch)> {
    let object = format!("model version {}/{}", link.model, link.version);
    if link.model.is_empty() {
        return Err(invalid(object, "model", &link.model, "a model name"));
    }
    if link.version == 0 {
        return Err(invalid(object, "version", "0", "a version number from 1"));
    }
    check_digest(&object, link.digest.as_deref())?;
    let mut b = Batch::default();
    let mut properties = BTreeMap::new();
    properties.insert("model".to_owned(), link.model.clone().into());
    properties.insert("version".to_owned(), link.version.into());
    properties.insert("uri".to_owned(), link.uri.clone().into());
    if let Some(d) = &link.digest {
        properties.insert("digest".to_owned(), d.clone().into());
    }
    if let Some(uid) = &link.workflow_uid {
        properties.insert("workflow_uid".to_owned(), uid.clone().into());
    }
    if let Some(node) = &link.node_id {
        properties.insert("node_id".to_owned(), node.clone().into());
    }
    let metrics: serde_json::Map<String, serde_json::Value> = link
        .metrics
        .iter()
        .filter_map(|(k, v)| serde_json::Number::from_f64(*v).map(|n| (k.clone(), n.into())))
        .collect();
    properties.insert("metrics".to_owned(), metrics.into());
    let ctx = b.node(Node::Context(Context {
        kind: ContextKind::ModelVersion,
        name: model_version_name(&link.model, link.version),
        properties,
    }));
    b.index(index::MODEL, &link.model, &ctx);
    let artifact = b.node(Node::Artifact(Artifact {
        name: link.model.clone(),
        uri: link.uri.clone(),
        digest: link.digest.clone(),
        size: None,
        type_: ArtifactType::Model,
        created: None,
    }));
    b.edge(&artifact, &ctx, EdgeKind::Member);
    if let Some(d) = &link.digest {
        b.index(index::DIGEST, d, &artifact);
    }
    b.index(index::URI, &link.uri, &artifact);
    match (&link.workflow_uid, &link.node_id) {
        (Some(uid), Some(node)) => {
            let x = execution_id(uid, node);
            // The registering step is usually not the training step (it reads the model the
            // training step wrote): provenance finds the trainer through the artifact's digest.
            b.edge(&x, &ctx, EdgeKind::Produced);
        }
        (Some(uid), None) => {
            let run = context_id(ContextKind::WorkflowRun, uid);
            b.edge(&run, &ctx, EdgeKind::Produced);
        }
        _ => {}
    }
    Ok((ctx, b))
}

/// Links a registered model version into the graph: its ModelVersion context, its model
/// artifact, and the execution (or run) that produced it. Returns the context id. Called by the
/// registry inside its own write transaction.
pub fn record_model_version(txn: &WriteTransaction, link: &ModelVersionLink) -> Result<String> {
    let (id, batch) = model_version_batch(link)?;
    write(txn, &batch)?;
    Ok(id)
}

/// A promotion commit, to link into the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionLink {
    /// Registered model name.
    pub model: String,
    /// The promoted version.
    pub version: u64,
    /// The alias set (e.g. `prod`).
    pub alias: String,
    /// The GitOps repository URL.
    pub repo: String,
    /// The file edited in it.
    pub path: String,
    /// The commit sha.
    pub commit: String,
    /// The Application that deploys it, when known.
    pub application: Option<String>,
}

fn check_commit(object: &str, commit: &str) -> Result<()> {
    let ok = (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            object.to_owned(),
            "commit",
            commit,
            "a hexadecimal Git commit sha",
        ))
    }
}

/// The batch [`record_promotion`] writes (pure).
pub fn promotion_batch(link: &PromotionLink) -> Result<(String, Batch)> {
    let object = format!(
        "promotion of {}/{} to {}",
        link.model, link.version, link.alias
    );
    if link.model.is_empty() {
        return Err(invalid(object, "model", &link.model, "a model name"));
    }
    if link.alias.is_empty() {
        return Err(invalid(object, "alias", &link.alias, "an alias name"));
    }
    check_commit(&object, &link.commit)?;
    let commit = link.commit.to_ascii_lowercase();
    let mut b = Batch::default();
    let mut properties = BTreeMap::new();
    properties.insert("model".to_owned(), link.model.clone().into());
    properties.insert("version".to_owned(), link.version.into());
    properties.insert("alias".to_owned(), link.alias.clone().into());
    properties.insert("repo".to_owned(), link.repo.clone().into());
    properties.insert("path".to_owned(), link.path.clone().into());
    properties.insert("commit".to_owned(), commit.clone().into());
    if let Some(app) = &link.application {
        properties.insert("application".to_owned(), app.clone().into());
    }
    let ctx = b.node(Node::Context(Context {
        kind: ContextKind::Promotion,
        name: format!("{}/{}@{}", link.model, link.alias, commit),
        properties,
    }));
    b.index(index::COMMIT, &commit, &ctx);
    let version = context_id(
        ContextKind::ModelVersion,
        &model_version_name(&link.model, link.version),
    );
    b.edge(&version, &ctx, EdgeKind::Promotes);
    if let Some(app) = &link.application {
        let app_id = b.node(Node::Context(Context {
            kind: ContextKind::Application,
            name: app.clone(),
            properties: BTreeMap::new(),
        }));
        b.index(index::APPLICATION, app, &app_id);
        b.edge(&ctx, &app_id, EdgeKind::Deploys);
    }
    Ok((ctx, b))
}

/// An MLflow run logged from a workflow step, to link into the graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlflowRunLink {
    /// The MLflow run id.
    pub run_id: String,
    /// Its experiment id.
    pub experiment_id: String,
    /// Its name.
    pub run_name: String,
    /// The Workflow's uid.
    pub workflow_uid: String,
    /// The step's node id.
    pub node_id: String,
}

/// The batch [`record_mlflow_run`] writes (pure).
pub fn mlflow_run_batch(link: &MlflowRunLink) -> Result<(String, Batch)> {
    let object = format!("MLflow run {:?}", link.run_id);
    for (field, value, expected) in [
        ("run_id", &link.run_id, "an MLflow run id"),
        ("workflow_uid", &link.workflow_uid, "the Workflow's uid"),
        ("node_id", &link.node_id, "the step's node id"),
    ] {
        if value.is_empty() {
            return Err(invalid(object, field, value, expected));
        }
    }
    let mut b = Batch::default();
    let mut properties = BTreeMap::new();
    properties.insert("run_id".to_owned(), link.run_id.clone().into());
    properties.insert(
        "experiment_id".to_owned(),
        link.experiment_id.clone().into(),
    );
    properties.insert("run_name".to_owned(), link.run_name.clone().into());
    properties.insert("workflow_uid".to_owned(), link.workflow_uid.clone().into());
    properties.insert("node_id".to_owned(), link.node_id.clone().into());
    let ctx = b.node(Node::Context(Context {
        kind: ContextKind::MlflowRun,
        name: link.run_id.clone(),
        properties,
    }));
    b.index(index::MLFLOW_RUN, &link.run_id, &ctx);
    let x = execution_id(&link.workflow_uid, &link.node_id);
    b.edge(&x, &ctx, EdgeKind::Logged);
    Ok((ctx, b))
}

/// Links an MLflow run to the workflow step that logged it: an MlflowRun context (indexed by
/// `mlflow-run/<id>`) after the step's execution. Returns the context id. Called by the MLflow
/// store inside the transaction that creates the run.
pub fn record_mlflow_run(txn: &WriteTransaction, link: &MlflowRunLink) -> Result<String> {
    let (id, batch) = mlflow_run_batch(link)?;
    write(txn, &batch)?;
    Ok(id)
}

/// Records a promotion commit: a Promotion context (indexed by `commit/<sha>`) after the model
/// version it promotes, and the Application that deploys it when known. Returns the context id.
/// Called by the promotion code inside its own write transaction.
pub fn record_promotion(txn: &WriteTransaction, link: &PromotionLink) -> Result<String> {
    let (id, batch) = promotion_batch(link)?;
    write(txn, &batch)?;
    Ok(id)
}

/// Records that `application` synced `commit` with `phase` (e.g. `Succeeded`), and when its
/// workload became Healthy at that revision. Updates every promotion made by that commit and the
/// Application context (its `revision`, `phase`, `healthy_at`). Returns the promotion context ids
/// updated (none when the commit was not a promotion).
pub fn record_sync(
    txn: &WriteTransaction,
    commit: &str,
    application: &str,
    phase: &str,
    healthy_at: Option<Timestamp>,
) -> Result<Vec<String>> {
    let object = format!("sync of application {application}");
    check_commit(&object, commit)?;
    if application.is_empty() {
        return Err(invalid(
            object,
            "application",
            application,
            "an Application name",
        ));
    }
    let commit = commit.to_ascii_lowercase();
    let promotions = lookup(txn, index::COMMIT, &commit)?;
    let mut b = Batch::default();
    let mut sync = BTreeMap::new();
    sync.insert("revision".to_owned(), commit.clone().into());
    sync.insert("phase".to_owned(), phase.to_owned().into());
    if let Some(t) = healthy_at {
        sync.insert("healthy_at".to_owned(), t.to_string().into());
    }
    let app_id = b.node(Node::Context(Context {
        kind: ContextKind::Application,
        name: application.to_owned(),
        properties: sync.clone(),
    }));
    b.index(index::APPLICATION, application, &app_id);
    let mut updated = Vec::new();
    for id in promotions {
        let Some(Node::Context(mut ctx)) = get(txn, &id)? else {
            continue;
        };
        ctx.properties
            .insert("application".to_owned(), application.to_owned().into());
        ctx.properties
            .insert("sync_phase".to_owned(), phase.to_owned().into());
        if let Some(t) = healthy_at {
            ctx.properties
                .insert("healthy_at".to_owned(), t.to_string().into());
        }
        b.nodes.push((id.clone(), Node::Context(ctx)));
        b.edge(&id, &app_id, EdgeKind::Deploys);
        updated.push(id);
    }
    write(txn, &b)?;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use redb::ReadableTableMetadata;

    #[test]
    fn an_mlflow_run_follows_the_step_that_logged_it() {
        let link = MlflowRunLink {
            run_id: "r1".into(),
            experiment_id: "0".into(),
            run_name: "fit".into(),
            workflow_uid: "uid".into(),
            node_id: "node".into(),
        };
        let (ctx, b) = mlflow_run_batch(&link).expect("batch");
        assert_eq!(ctx, context_id(ContextKind::MlflowRun, "r1"));
        assert_eq!(
            b.edges,
            vec![Edge {
                from: execution_id("uid", "node"),
                to: ctx.clone(),
                kind: EdgeKind::Logged,
            }]
        );
        assert_eq!(
            b.index,
            vec![(index::MLFLOW_RUN.to_owned(), "r1".to_owned(), ctx)]
        );
        for field in ["run_id", "workflow_uid", "node_id"] {
            let mut bad = link.clone();
            match field {
                "run_id" => bad.run_id.clear(),
                "workflow_uid" => bad.workflow_uid.clear(),
                _ => bad.node_id.clear(),
            }
            let err = mlflow_run_batch(&bad).expect_err(field).to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        (dir, store)
    }

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn link() -> ModelVersionLink {
        ModelVersionLink {
            model: "recommender".into(),
            version: 3,
            uri: "s3://models/recommender/3/model.joblib".into(),
            digest: Some(D1.into()),
            workflow_uid: Some("uid-1".into()),
            node_id: Some("wf-123".into()),
            metrics: [("score".to_owned(), 0.41)].into(),
        }
    }

    #[test]
    fn ids_are_deterministic_and_prefixed() {
        let a = artifact_id(Some(D1), "s3://x");
        assert_eq!(a, artifact_id(Some(D1), "s3://elsewhere"));
        assert_ne!(a, artifact_id(None, "s3://x"));
        assert!(a.starts_with("a:") && a.len() == 34);
        assert_eq!(artifact_id(Some(""), "u"), artifact_id(None, "u"));
        let x = execution_id("u", "n");
        assert!(x.starts_with("x:"));
        assert_ne!(execution_id("u", "n"), execution_id("un", ""));
        let c = context_id(ContextKind::Pipeline, "p");
        assert!(c.starts_with("c:"));
        assert_ne!(c, context_id(ContextKind::Application, "p"));
    }

    #[test]
    fn node_json_round_trips_with_tags() {
        let n = Node::Artifact(Artifact {
            name: "data".into(),
            uri: "s3://d".into(),
            digest: Some(D1.into()),
            size: Some(10),
            type_: ArtifactType::Dataset,
            created: None,
        });
        let json = serde_json::to_value(&n).expect("encode");
        assert_eq!(json["node"], "artifact");
        assert_eq!(json["type"], "dataset");
        let back: Node = serde_json::from_value(json).expect("decode");
        assert_eq!(back, n);
        let c = Node::Context(Context {
            kind: ContextKind::WorkflowRun,
            name: "u".into(),
            properties: BTreeMap::new(),
        });
        let json = serde_json::to_value(&c).expect("encode");
        assert_eq!(json["node"], "context");
        assert_eq!(json["kind"], "workflow_run");
    }

    #[tokio::test]
    async fn write_is_idempotent_and_readable_both_ways() {
        let (_dir, store) = store();
        let (ctx, batch) = model_version_batch(&link()).expect("batch");
        let b1 = batch.clone();
        store
            .write(move |txn| write(txn, &b1))
            .await
            .expect("write");
        let snapshot = |store: &Store| {
            store
                .read(|txn| -> Result<_> {
                    let n = txn.open_table(LINEAGE_NODES).map_err(StoreError::from)?;
                    let e = txn
                        .open_table(LINEAGE_EDGES_OUT)
                        .map_err(StoreError::from)?;
                    let i = txn.open_table(LINEAGE_INDEX).map_err(StoreError::from)?;
                    Ok((n.len()?, e.len()?, i.len()?))
                })
                .expect("read")
        };
        let first = snapshot(&store);
        store
            .write(move |txn| write(txn, &batch))
            .await
            .expect("replay");
        assert_eq!(snapshot(&store), first);
        assert_eq!(first, (2, 2, 3));

        let x = execution_id("uid-1", "wf-123");
        store
            .read(|txn| -> Result<()> {
                let Some(Node::Context(c)) = get(txn, &ctx)? else {
                    panic!("model version context missing");
                };
                assert_eq!(c.name, "recommender/3");
                assert_eq!(c.properties["metrics"]["score"], 0.41);
                let ins = in_edges(txn, &ctx)?;
                assert_eq!(ins.len(), 2);
                assert!(
                    ins.iter()
                        .any(|e| e.from == x && e.kind == EdgeKind::Produced)
                );
                let outs = out_edges(txn, &x)?;
                assert_eq!(outs.len(), 1);
                assert!(outs.iter().all(|e| e.from == x));
                assert_eq!(lookup(txn, index::MODEL, "recommender")?, vec![ctx.clone()]);
                assert!(lookup(txn, index::MODEL, "recommende")?.is_empty());
                assert_eq!(lookup(txn, index::DIGEST, D1)?.len(), 1);
                // The producing execution is not captured yet: absent, not an error.
                assert_eq!(get(txn, &x)?, None);
                Ok(())
            })
            .expect("reads");
    }

    #[tokio::test]
    async fn promotion_and_sync_link_by_commit() {
        let (_dir, store) = store();
        let sha = "ABCDEF0123456789abcdef0123456789abcdef01";
        let promo = PromotionLink {
            model: "recommender".into(),
            version: 3,
            alias: "prod".into(),
            repo: "https://git.local/gitops.git".into(),
            path: "apps/recommender/values/prod.yaml".into(),
            commit: sha.into(),
            application: None,
        };
        let healthy: Timestamp = "2026-12-07T08:00:00Z".parse().expect("time");
        let (p_id, updated) = store
            .write(move |txn| {
                record_model_version(txn, &link())?;
                let p = record_promotion(txn, &promo)?;
                let updated =
                    record_sync(txn, sha, "recommender-prod", "Succeeded", Some(healthy))?;
                Ok::<_, GraphError>((p, updated))
            })
            .await
            .expect("write");
        assert_eq!(updated, vec![p_id.clone()]);
        store
            .read(|txn| -> Result<()> {
                assert_eq!(
                    lookup(txn, index::COMMIT, &sha.to_ascii_lowercase())?,
                    vec![p_id.clone()]
                );
                let Some(Node::Context(p)) = get(txn, &p_id)? else {
                    panic!("promotion missing");
                };
                assert_eq!(p.properties["sync_phase"], "Succeeded");
                assert_eq!(p.properties["healthy_at"], "2026-12-07T08:00:00Z");
                // Properties written by record_promotion survive the sync's update.
                assert_eq!(p.properties["path"], "apps/recommender/values/prod.yaml");
                let ins = in_edges(txn, &p_id)?;
                assert_eq!(ins[0].kind, EdgeKind::Promotes);
                assert_eq!(
                    ins[0].from,
                    context_id(ContextKind::ModelVersion, "recommender/3")
                );
                let app = context_id(ContextKind::Application, "recommender-prod");
                assert_eq!(out_edges(txn, &p_id)?[0].to, app);
                Ok(())
            })
            .expect("reads");
    }

    #[test]
    fn invalid_links_name_the_field() {
        let mut l = link();
        l.digest = Some("md5:abc".into());
        let e = model_version_batch(&l).expect_err("bad digest");
        assert_eq!(e.metric_label(), "invalid");
        assert!(e.to_string().contains("field digest"), "{e}");
        let mut l = link();
        l.version = 0;
        assert!(model_version_batch(&l).is_err());
        let p = PromotionLink {
            model: "m".into(),
            version: 1,
            alias: "prod".into(),
            repo: String::new(),
            path: String::new(),
            commit: "not-a-sha".into(),
            application: None,
        };
        let e = promotion_batch(&p).expect_err("bad commit");
        assert!(e.to_string().contains("field commit"), "{e}");
    }

    #[tokio::test]
    async fn artifact_merge_keeps_known_fields_and_remove_drops_edges() {
        let (_dir, store) = store();
        let mut b = Batch::default();
        let a = b.node(Node::Artifact(Artifact {
            name: "data".into(),
            uri: "s3://d".into(),
            digest: None,
            size: Some(5),
            type_: ArtifactType::Dataset,
            created: None,
        }));
        let x = execution_id("u", "n");
        b.edge(&a, &x, EdgeKind::Input);
        b.index(index::URI, "s3://d", &a);
        let mut b2 = Batch::default();
        b2.node(Node::Artifact(Artifact {
            name: "data".into(),
            uri: "s3://d".into(),
            digest: None,
            size: None,
            type_: ArtifactType::Artifact,
            created: None,
        }));
        let a2 = a.clone();
        store
            .write(move |txn| {
                write(txn, &b)?;
                write(txn, &b2)
            })
            .await
            .expect("write");
        store
            .read(|txn| -> Result<()> {
                let Some(Node::Artifact(got)) = get(txn, &a2)? else {
                    panic!("artifact missing");
                };
                assert_eq!(got.size, Some(5));
                assert_eq!(got.type_, ArtifactType::Dataset);
                Ok(())
            })
            .expect("read");
        let (a3, x3) = (a.clone(), x.clone());
        store
            .write(move |txn| {
                remove(
                    txn,
                    std::slice::from_ref(&a3),
                    &[(index_key(index::URI, "s3://d"), a3.clone())],
                )
            })
            .await
            .expect("remove");
        store
            .read(|txn| -> Result<()> {
                assert_eq!(get(txn, &a)?, None);
                assert!(in_edges(txn, &x3)?.is_empty());
                assert!(lookup(txn, index::URI, "s3://d")?.is_empty());
                Ok(())
            })
            .expect("read");
    }
}
