//! Sync planning: Argo CD's sync semantics as pure functions from data to data.
//!
//! This module owns *what* a sync does and *in which order*; it never talks to a cluster.
//! The applier (I/O, written later) executes what it says and reports back.
//!
//! # Public API (how a controller wires it)
//!
//! ```text
//! let plan = plan::plan(&PlanInput { app, namespace, desired, live, in_sync, sync_options, operation, .. })?;
//! let mut state = OperationState::new(&operation.id);   // or read back from .status.operationState
//! loop {
//!     let next = state::step(&plan, &state, &observations);
//!     persist(&next.state);                              // .status.operationState (see OperationState::to_status)
//!     if next.state.phase.is_completed() { break }
//!     observations = applier.execute(&plan, &next.actions) + observe health;   // one wave at a time
//!     state = next.state;
//! }
//! ```
//!
//! - [`options`]: `syncPolicy.syncOptions` and the `argocd.argoproj.io/sync-options` annotation,
//!   operation options (prune, dry run, selected resources).
//! - [`hooks`]: the annotations that place an object in a phase and wave (`argocd.argoproj.io/hook`,
//!   `sync-wave`, `hook-delete-policy`, and Helm's `helm.sh/hook*` mapped as Argo CD maps them),
//!   and the deterministic names of `generateName` hooks.
//! - [`mod@plan`]: [`plan::plan()`] turns desired + live objects into ordered [`plan::Task`]s: phase
//!   (PreSync, Sync, PostSync, then SyncFail which only runs on failure), wave, Argo CD's kind order
//!   (Helm's install order), name; prune in reverse wave order; `PruneLast` after everything.
//! - [`state`]: the resumable state machine. [`state::step`] reads the plan, the persisted
//!   [`state::OperationState`] and what the applier observed, and returns the next state and the
//!   actions to execute now.
//!
//! # Invariants
//! - Planning is deterministic: the same input yields the same plan (tasks sorted totally, hook
//!   names derived from the operation id, never from a clock or a random source).
//! - A hook whose result is recorded as completed in the operation state is never executed again,
//!   whatever the plan recomputed after a restart says; the state machine only emits tasks that
//!   have no recorded result.
//! - Only live objects whose tracking id names this application (and matches the object itself)
//!   are ever pruned; hooks and objects owned by another object are never pruned.
//! - Deliberate differences from Argo CD, each safer and visible: `Delete=false` (and Helm's
//!   `resource-policy: keep`) also stops a *prune*, where Argo CD honours it only on Application
//!   deletion; `Prune=confirm` is reported as a skipped prune instead of holding the operation
//!   until confirmed; a malformed wave, hook type or delete policy is an error naming the object
//!   instead of a silent fallback; `generateName` hooks are named from the operation id instead
//!   of the start time, so a restart resumes the same hook object.
//! - Sources: Argo CD user guide ("Sync Phases and Waves", "Resource Hooks", "Sync Options",
//!   "Helm" hook table, "Selective Sync") and gitops-engine `pkg/sync` (`sync_tasks.go` ordering,
//!   `sync_context.go` state machine); the code is cairn's own.

pub mod hooks;
pub mod options;
pub mod plan;
pub mod state;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use plan::{Action, Plan, PlanInput, SkipReason, SyncPhase, Task, TaskId, plan};
pub use state::{Next, Observations, OperationPhase, OperationState, StepAction, step};

/// Annotation carrying Argo CD's resource tracking id: `<app>:<group>/<kind>:<ns>/<name>`.
pub const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";

/// Why a sync cannot be planned. Every variant names the object or option at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A desired object lacks a field every Kubernetes object needs.
    #[error("desired object #{index} ({object}): {reason}")]
    InvalidObject {
        /// Position in the desired list (0-based).
        index: usize,
        /// What is known of the object (kind/name) to find it in the rendered output.
        object: String,
        /// What is missing or malformed.
        reason: String,
    },
    /// An annotation value cannot be parsed.
    #[error("{object}: annotation {annotation}={value:?}: expected {expected}")]
    BadAnnotation {
        /// The object, as `group/kind/namespace/name`.
        object: String,
        /// The annotation key.
        annotation: String,
        /// The rejected value.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// An application-level sync option has a value cairn does not understand.
    #[error("syncPolicy.syncOptions {option:?}: expected {expected}")]
    BadSyncOption {
        /// The rejected option string.
        option: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A selected-resource filter of the operation is malformed.
    #[error("resource selector {selector:?}: expected {expected}")]
    BadResourceSelector {
        /// The rejected selector.
        selector: String,
        /// What would have been accepted.
        expected: String,
    },
    /// Two desired objects have the same identity.
    #[error("{object}: appears more than once in the desired manifests")]
    DuplicateObject {
        /// The duplicated object, as `group/kind/namespace/name`.
        object: String,
    },
    /// `FailOnSharedResource=true` and a desired object is tracked by another application.
    #[error(
        "shared resource found: {object} is part of application {other_app} and of this application (FailOnSharedResource=true)"
    )]
    SharedResource {
        /// The contested object, as `group/kind/namespace/name`.
        object: String,
        /// The application whose tracking id the live object carries.
        other_app: String,
    },
}

impl PlanError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PlanError::InvalidObject { .. } => "invalid_object",
            PlanError::BadAnnotation { .. } => "bad_annotation",
            PlanError::BadSyncOption { .. } => "bad_sync_option",
            PlanError::BadResourceSelector { .. } => "bad_resource_selector",
            PlanError::DuplicateObject { .. } => "duplicate_object",
            PlanError::SharedResource { .. } => "shared_resource",
        }
    }
}

/// An annotation of an object, if present and a string.
pub(crate) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The comma-separated values of an annotation, trimmed, empty items and duplicates dropped
/// (as Argo CD reads `hook`, `hook-delete-policy` and `sync-options`).
pub(crate) fn annotation_csv(obj: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in annotation(obj, key).unwrap_or("").split(',') {
        let item = item.trim();
        if !item.is_empty() && !out.iter().any(|seen| seen == item) {
            out.push(item.to_owned());
        }
    }
    out
}

/// A string field at a JSON pointer.
pub(crate) fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}
