//! Queries over the lineage graph: bounded subgraphs, the provenance of a model version, and
//! "what is serving now" from a live workload.
//!
//! Everything here reads a transaction (`graph::GraphRead`) and takes already-fetched cluster
//! facts as input (the tracking id of the live object, the Application's synced revision): the
//! API shell fetches those through kube.
//!
//! Invariants:
//! - Every walk is bounded: by a hop limit ([`MAX_HOPS`]) and a node budget ([`MAX_NODES`]);
//!   a result cut by the budget says so (`truncated`).
//! - A node named by an edge but not (yet) captured is reported as missing, never as an error.
//! - Results are deterministic: nodes are visited in breadth-first order, neighbours in id
//!   order, and maps are ordered.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::graph::{
    self, Artifact, ArtifactType, Context, ContextKind, Edge, EdgeKind, Execution, GraphError,
    GraphRead, Node, context_id, model_version_name,
};

/// Largest hop limit a subgraph query accepts.
pub const MAX_HOPS: u32 = 50;
/// Largest number of nodes one query visits (bounds memory and latency of a wide walk, such as
/// from a dataset used by thousands of runs).
pub const MAX_NODES: usize = 10_000;
/// How far upstream provenance looks for datasets (train ← prepare ← download chains).
const PROVENANCE_HOPS: u32 = 16;

/// Errors of lineage queries.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The graph could not be read.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The starting node of a query does not exist.
    #[error("lineage node {id:?} not found")]
    NodeNotFound {
        /// The id asked for.
        id: String,
    },
    /// The model version has no lineage record.
    #[error("model version {model}:{version} has no lineage record (is it registered?)")]
    ModelVersionNotFound {
        /// Model name.
        model: String,
        /// Version.
        version: u64,
    },
    /// A query parameter is invalid (a user error).
    #[error("parameter {field} is {found:?}: expected {expected}")]
    Invalid {
        /// The parameter.
        field: &'static str,
        /// The value given.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// The live object carries no (or a malformed) `argocd.argoproj.io/tracking-id`.
    #[error(
        "{object}: annotation argocd.argoproj.io/tracking-id is {found:?}: expected <application>:<group>/<kind>:<namespace>/<name> (the object is not managed by a cairn Application)"
    )]
    NotTracked {
        /// The object, as `<kind> <namespace>/<name>`.
        object: String,
        /// The annotation's value (empty when absent).
        found: String,
    },
    /// The Application's synced revision is not a promotion commit cairn recorded.
    #[error(
        "{object}: application {application} is synced at revision {revision:?}, which is not a promotion commit recorded in lineage"
    )]
    NotPromoted {
        /// The object.
        object: String,
        /// Its Application.
        application: String,
        /// The synced revision.
        revision: String,
    },
}

impl QueryError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Graph(e) => e.metric_label(),
            Self::NodeNotFound { .. } => "node_not_found",
            Self::ModelVersionNotFound { .. } => "model_version_not_found",
            Self::Invalid { .. } => "invalid",
            Self::NotTracked { .. } => "not_tracked",
            Self::NotPromoted { .. } => "not_promoted",
        }
    }
}

impl From<crate::store::StoreError> for QueryError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Graph(GraphError::Store(e))
    }
}

/// Result of queries.
pub type Result<T, E = QueryError> = std::result::Result<T, E>;

/// Which edges a walk follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Backwards along the data flow: what this node came from.
    Up,
    /// Forwards: what came from this node.
    Down,
    /// Both.
    #[default]
    Both,
}

impl std::str::FromStr for Direction {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "up" | "upstream" => Ok(Self::Up),
            "down" | "downstream" => Ok(Self::Down),
            "both" | "" => Ok(Self::Both),
            other => Err(QueryError::Invalid {
                field: "direction",
                found: other.to_owned(),
                expected: "up, down or both".to_owned(),
            }),
        }
    }
}

/// A node in a query result: its id and record (`None` when an edge names it but it is not
/// captured yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEntry {
    /// The node id.
    pub id: String,
    /// Hops from the start.
    pub hops: u32,
    /// The record, when stored.
    pub node: Option<Node>,
}

/// A bounded subgraph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subgraph {
    /// The start node.
    pub from: String,
    /// Nodes in breadth-first order, the start first.
    pub nodes: Vec<NodeEntry>,
    /// Edges between visited nodes, each once.
    pub edges: Vec<Edge>,
    /// Whether the node budget cut the walk short.
    pub truncated: bool,
}

/// The subgraph within `hops` of `from`, following edges in `direction`.
pub fn subgraph(
    txn: &impl GraphRead,
    from: &str,
    direction: Direction,
    hops: u32,
) -> Result<Subgraph> {
    if hops > MAX_HOPS {
        return Err(QueryError::Invalid {
            field: "hops",
            found: hops.to_string(),
            expected: format!("at most {MAX_HOPS}"),
        });
    }
    let Some(start) = graph::get(txn, from)? else {
        return Err(QueryError::NodeNotFound {
            id: from.to_owned(),
        });
    };
    let mut nodes = vec![NodeEntry {
        id: from.to_owned(),
        hops: 0,
        node: Some(start),
    }];
    let mut seen: BTreeSet<String> = BTreeSet::from([from.to_owned()]);
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    let mut edge_list = Vec::new();
    let mut queue = VecDeque::from([(from.to_owned(), 0u32)]);
    let mut truncated = false;
    while let Some((id, depth)) = queue.pop_front() {
        if depth >= hops {
            continue;
        }
        let mut next = Vec::new();
        if direction != Direction::Down {
            next.extend(
                graph::in_edges(txn, &id)?
                    .into_iter()
                    .map(|e| (e.from.clone(), e)),
            );
        }
        if direction != Direction::Up {
            next.extend(
                graph::out_edges(txn, &id)?
                    .into_iter()
                    .map(|e| (e.to.clone(), e)),
            );
        }
        for (neighbour, edge) in next {
            if !seen.contains(&neighbour) {
                if seen.len() >= MAX_NODES {
                    truncated = true;
                    continue;
                }
                seen.insert(neighbour.clone());
                let node = graph::get(txn, &neighbour)?;
                nodes.push(NodeEntry {
                    id: neighbour.clone(),
                    hops: depth + 1,
                    node,
                });
                queue.push_back((neighbour, depth + 1));
            }
            if edges.insert((edge.from.clone(), edge.to.clone())) {
                edge_list.push(edge);
            }
        }
    }
    Ok(Subgraph {
        from: from.to_owned(),
        nodes,
        edges: edge_list,
        truncated,
    })
}

/// An identified artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    /// Node id.
    pub id: String,
    /// The record.
    #[serde(flatten)]
    pub artifact: Artifact,
}

/// An identified execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionRef {
    /// Node id.
    pub id: String,
    /// The record.
    #[serde(flatten)]
    pub execution: Execution,
}

/// An identified context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRef {
    /// Node id.
    pub id: String,
    /// The record.
    #[serde(flatten)]
    pub context: Context,
}

/// The code that produced a model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Code {
    /// The pipeline (WorkflowTemplate) the run came from, when known.
    pub template: Option<String>,
    /// The Git revision the template was deployed from, when a cairn Application manages it.
    pub template_revision: Option<String>,
    /// Image per upstream execution, in the order found (template, image, resolved digest).
    pub images: Vec<ImageUse>,
}

/// One image used upstream of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageUse {
    /// The template that ran it.
    pub template: String,
    /// The image as written.
    pub image: String,
    /// The resolved digest, when observed.
    pub image_digest: Option<String>,
}

/// The run a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRef {
    /// Context id.
    pub id: String,
    /// Workflow uid.
    pub uid: String,
    /// Properties of the run (namespace, workflow, phase, started, finished).
    pub properties: BTreeMap<String, serde_json::Value>,
}

/// Metrics of a model version.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// The metrics registered with the version.
    pub registered: BTreeMap<String, serde_json::Value>,
    /// Output parameters of the executions of the same run, as `<template>.<parameter>`.
    pub run_outputs: BTreeMap<String, String>,
}

/// Where a model version came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// The ModelVersion context.
    pub model_version: ContextRef,
    /// The model artifact, when recorded.
    pub model_artifact: Option<ArtifactRef>,
    /// The executions that wrote the model artifact (training); when none was captured, the
    /// execution that registered the version.
    pub executions: Vec<ExecutionRef>,
    /// The execution that registered the version, when known and captured.
    pub registered_by: Option<ExecutionRef>,
    /// Artifacts upstream of the model that no captured execution produced (inputs from
    /// outside the pipeline) or that are typed as datasets.
    pub datasets: Vec<ArtifactRef>,
    /// Images, template and its revision.
    pub code: Code,
    /// Input parameters of the training execution(s) (later executions do not override earlier
    /// ones' keys).
    pub hyperparameters: BTreeMap<String, String>,
    /// Registered metrics and the run's output parameters.
    pub metrics: Metrics,
    /// The run.
    pub run: Option<RunRef>,
    /// Whether a walk hit the node budget.
    pub truncated: bool,
}

fn context(txn: &impl GraphRead, id: &str) -> Result<Option<Context>> {
    Ok(match graph::get(txn, id)? {
        Some(Node::Context(c)) => Some(c),
        _ => None,
    })
}

fn execution(txn: &impl GraphRead, id: &str) -> Result<Option<Execution>> {
    Ok(match graph::get(txn, id)? {
        Some(Node::Execution(x)) => Some(*x),
        _ => None,
    })
}

fn run_of(txn: &impl GraphRead, execution_id: &str) -> Result<Option<String>> {
    Ok(graph::out_edges(txn, execution_id)?
        .into_iter()
        .find(|e| e.kind == EdgeKind::Member && e.to.starts_with("c:"))
        .map(|e| e.to))
}

/// The provenance of `model` version `version` (see [`Provenance`]).
pub fn provenance(txn: &impl GraphRead, model: &str, version: u64) -> Result<Provenance> {
    let ctx_id = context_id(
        ContextKind::ModelVersion,
        &model_version_name(model, version),
    );
    let Some(ctx) = context(txn, &ctx_id)? else {
        return Err(QueryError::ModelVersionNotFound {
            model: model.to_owned(),
            version,
        });
    };
    provenance_of(
        txn,
        model,
        version,
        ContextRef {
            id: ctx_id,
            context: ctx,
        },
    )
}

fn provenance_of(
    txn: &impl GraphRead,
    model: &str,
    version: u64,
    model_version: ContextRef,
) -> Result<Provenance> {
    let mut model_artifact = None;
    let mut registered_by = None;
    let mut run_id = None;
    for e in graph::in_edges(txn, &model_version.id)? {
        match e.kind {
            EdgeKind::Member if e.from.starts_with("a:") && model_artifact.is_none() => {
                if let Some(Node::Artifact(a)) = graph::get(txn, &e.from)? {
                    model_artifact = Some(ArtifactRef {
                        id: e.from,
                        artifact: a,
                    });
                }
            }
            EdgeKind::Produced if e.from.starts_with("x:") => {
                if run_id.is_none() {
                    run_id = run_of(txn, &e.from)?;
                }
                if let Some(x) = execution(txn, &e.from)? {
                    if run_id.is_none() {
                        run_id = Some(context_id(ContextKind::WorkflowRun, &x.workflow_uid));
                    }
                    registered_by = Some(ExecutionRef {
                        id: e.from,
                        execution: x,
                    });
                }
            }
            EdgeKind::Produced if e.from.starts_with("c:") => run_id = Some(e.from),
            _ => {}
        }
    }
    if run_id.is_none()
        && let Some(uid) = model_version
            .context
            .properties
            .get("workflow_uid")
            .and_then(|v| v.as_str())
    {
        run_id = Some(context_id(ContextKind::WorkflowRun, uid));
    }

    // Walk upstream from the model artifact: executions that wrote it, their inputs, and so on.
    let mut executions = Vec::new();
    let mut upstream_execs: Vec<ExecutionRef> = Vec::new();
    let mut datasets = Vec::new();
    let mut truncated = false;
    if let Some(a) = &model_artifact {
        let mut seen = BTreeSet::from([a.id.clone()]);
        let mut queue = VecDeque::from([(a.id.clone(), 0u32)]);
        while let Some((id, depth)) = queue.pop_front() {
            if depth >= PROVENANCE_HOPS {
                continue;
            }
            let mut producers = 0;
            for e in graph::in_edges(txn, &id)? {
                let wanted = match e.kind {
                    EdgeKind::Output => id.starts_with("a:") && e.from.starts_with("x:"),
                    EdgeKind::Input => id.starts_with("x:") && e.from.starts_with("a:"),
                    _ => false,
                };
                if !wanted {
                    continue;
                }
                if e.kind == EdgeKind::Output {
                    producers += 1;
                }
                if !seen.insert(e.from.clone()) {
                    continue;
                }
                if seen.len() > MAX_NODES {
                    truncated = true;
                    break;
                }
                queue.push_back((e.from.clone(), depth + 1));
            }
            match graph::get(txn, &id)? {
                Some(Node::Execution(x)) => {
                    let r = ExecutionRef {
                        id: id.clone(),
                        execution: *x,
                    };
                    if depth == 1 {
                        executions.push(r.clone());
                    }
                    upstream_execs.push(r);
                }
                Some(Node::Artifact(art))
                    if depth > 0 && (producers == 0 || art.type_ == ArtifactType::Dataset) =>
                {
                    datasets.push(ArtifactRef { id, artifact: art });
                }
                _ => {}
            }
        }
    }
    if executions.is_empty()
        && let Some(r) = &registered_by
    {
        executions.push(r.clone());
    }
    if run_id.is_none()
        && let Some(x) = executions.first()
    {
        run_id = run_of(txn, &x.id)?;
    }

    let mut hyperparameters = BTreeMap::new();
    for x in &executions {
        for (k, v) in &x.execution.inputs {
            hyperparameters
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    let mut code = Code::default();
    for x in upstream_execs.iter().chain(registered_by.iter()) {
        let use_ = ImageUse {
            template: x.execution.template.clone(),
            image: x.execution.image.clone(),
            image_digest: x.execution.image_digest.clone(),
        };
        if !code.images.contains(&use_) {
            code.images.push(use_);
        }
    }

    let mut metrics = Metrics::default();
    if let Some(serde_json::Value::Object(m)) = model_version.context.properties.get("metrics") {
        metrics.registered = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    let mut run = None;
    if let Some(rid) = run_id
        && let Some(rc) = context(txn, &rid)?
    {
        let mut members = 0usize;
        for e in graph::in_edges(txn, &rid)? {
            if e.kind != EdgeKind::Member || !e.from.starts_with("x:") {
                continue;
            }
            members += 1;
            if members > MAX_NODES {
                truncated = true;
                break;
            }
            if let Some(x) = execution(txn, &e.from)? {
                for (k, v) in &x.outputs {
                    metrics
                        .run_outputs
                        .insert(format!("{}.{}", x.template, k), v.clone());
                }
            }
        }
        for e in graph::out_edges(txn, &rid)? {
            if e.kind != EdgeKind::Member {
                continue;
            }
            if let Some(p) = context(txn, &e.to)?
                && p.kind == ContextKind::Pipeline
            {
                code.template = p
                    .properties
                    .get("template")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
                code.template_revision = p
                    .properties
                    .get("revision")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
            }
        }
        run = Some(RunRef {
            id: rid,
            uid: rc.name,
            properties: rc.properties,
        });
    }

    Ok(Provenance {
        model: model.to_owned(),
        version,
        model_version,
        model_artifact,
        executions,
        registered_by,
        datasets,
        code,
        hyperparameters,
        metrics,
        run,
        truncated,
    })
}

/// What the serving query knows about the live object, fetched by the shell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveObject {
    /// Its namespace.
    pub namespace: String,
    /// Its kind (e.g. `Deployment`).
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its `argocd.argoproj.io/tracking-id` annotation, when present.
    pub tracking_id: Option<String>,
}

/// The Application named by a tracking id `<app>:<group>/<kind>:<namespace>/<name>`.
pub fn application_of(object: &LiveObject) -> Result<String> {
    let found = object.tracking_id.clone().unwrap_or_default();
    let describe = || format!("{} {}/{}", object.kind, object.namespace, object.name);
    let mut parts = found.splitn(3, ':');
    let (Some(app), Some(gk), Some(nn)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(QueryError::NotTracked {
            object: describe(),
            found,
        });
    };
    if app.is_empty() || !gk.contains('/') || !nn.contains('/') {
        return Err(QueryError::NotTracked {
            object: describe(),
            found,
        });
    }
    Ok(app.to_owned())
}

/// What serves at a live object, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Serving {
    /// The live object.
    pub object: LiveObject,
    /// The Application managing it.
    pub application: String,
    /// The Application's synced revision.
    pub revision: String,
    /// The promotion(s) that commit made (usually one).
    pub promotions: Vec<ContextRef>,
    /// Provenance of each promoted model version, in the order of `promotions`.
    pub models: Vec<Provenance>,
}

/// "What is serving now": the live object's Application (from its tracking id, see
/// [`application_of`]) is synced at `revision` (fetched by the shell); the promotion recorded
/// for that commit names the model version, whose provenance follows.
pub fn serving(
    txn: &impl GraphRead,
    object: &LiveObject,
    application: &str,
    revision: &str,
) -> Result<Serving> {
    let commit = revision.to_ascii_lowercase();
    let mut promotions = Vec::new();
    let mut models = Vec::new();
    for id in graph::lookup(txn, graph::index::COMMIT, &commit)? {
        let Some(ctx) = context(txn, &id)? else {
            continue;
        };
        let model = ctx.properties.get("model").and_then(|v| v.as_str());
        let version = ctx.properties.get("version").and_then(|v| v.as_u64());
        if let (Some(model), Some(version)) = (model, version) {
            models.push(provenance(txn, model, version)?);
        }
        promotions.push(ContextRef { id, context: ctx });
    }
    if promotions.is_empty() {
        return Err(QueryError::NotPromoted {
            object: format!("{} {}/{}", object.kind, object.namespace, object.name),
            application: application.to_owned(),
            revision: revision.to_owned(),
        });
    }
    Ok(Serving {
        object: object.clone(),
        application: application.to_owned(),
        revision: commit,
        promotions,
        models,
    })
}

/// The whole graph, for `cairn lineage export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// The store schema the records come from.
    pub schema: u32,
    /// Every node, in id order.
    pub nodes: Vec<NodeEntry>,
    /// Every edge, in (from, to) order.
    pub edges: Vec<Edge>,
}

/// Reads the whole graph (a consistent snapshot when `txn` is a read transaction).
pub fn export(txn: &redb::ReadTransaction) -> Result<Export> {
    use redb::ReadableTable;
    let to_store = |e: redb::StorageError| GraphError::from(e);
    let nodes_table = txn
        .open_table(crate::store::tables::LINEAGE_NODES)
        .map_err(crate::store::StoreError::from)?;
    let mut nodes = Vec::new();
    for entry in nodes_table.iter().map_err(to_store)? {
        let (k, v) = entry.map_err(to_store)?;
        let id = k.value().to_owned();
        let node: Node =
            serde_json::from_slice(v.value()).map_err(|source| GraphError::Decode {
                id: id.clone(),
                source,
            })?;
        nodes.push(NodeEntry {
            id,
            hops: 0,
            node: Some(node),
        });
    }
    let edges_table = txn
        .open_table(crate::store::tables::LINEAGE_EDGES_OUT)
        .map_err(crate::store::StoreError::from)?;
    let mut edges = Vec::new();
    for entry in edges_table.iter().map_err(to_store)? {
        let (k, v) = entry.map_err(to_store)?;
        let (from, to) = k.value();
        let kind: EdgeKind =
            serde_json::from_slice(v.value()).map_err(|source| GraphError::Decode {
                id: format!("{from} -> {to}"),
                source,
            })?;
        edges.push(Edge {
            from: from.to_owned(),
            to: to.to_owned(),
            kind,
        });
    }
    Ok(Export {
        schema: crate::store::CURRENT_SCHEMA,
        nodes,
        edges,
    })
}

#[cfg(test)]
mod tests;
