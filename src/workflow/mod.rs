//! Workflows: an Argo Workflows-equivalent engine (templates, DAG and steps, executor, cron).
//!
//! Owns the Argo Workflows kinds as Rust types ([`types`]: Workflow, WorkflowTemplate,
//! ClusterWorkflowTemplate, CronWorkflow and the internal WorkflowTaskResult, WorkflowTaskSet,
//! WorkflowArtifactGCTask, WorkflowEventBinding).
//! Invariant: those types round-trip every field of the objects they read, modelled or not.

pub mod actions;
pub mod archive;
pub mod artifacts;
pub mod controller;
pub mod cron;
pub mod cron_controller;
pub mod dag;
pub mod depends;
pub mod executor;
pub mod expr;
pub mod node;
pub mod operator;
pub mod pdb;
pub mod pod;
pub mod resource;
pub mod retry;
pub mod steps;
pub mod sync;
pub mod types;
pub mod validate;
