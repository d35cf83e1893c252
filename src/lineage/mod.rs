//! Lineage, the model registry and promotion by Git commit (issue 7).
//!
//! - [`graph`]: the typed lineage graph in redb (artifacts, executions, contexts; input/output and
//!   membership edges), in the spirit of ML Metadata. Pure record types and key derivation, and
//!   the store functions over the schema-4 tables `lineage_*`.
//! - [`capture`]: what a finished (or progressing) Workflow contributes to the graph: one
//!   execution per node attempt, its artifacts, parameters and image digest; pure over the
//!   Workflow object and the observed pods.
//! - [`query`]: upstream/downstream subgraphs with a hop limit, the provenance of a model
//!   version, and "what is serving now" from a live workload.
//! - [`registry`]: registered models, versions, aliases (RBAC resource `models`, objects
//!   `<model>/<alias>`).
//! - [`promote`]: promotion by Git commit: a comment-preserving YAML edit, commit and push.
//! - [`mlflow`]: the MLflow REST subset over the registry and the graph.

pub mod capture;
pub mod graph;
pub mod mlflow;
pub mod promote;
pub mod query;
pub mod registry;
pub mod retention;
