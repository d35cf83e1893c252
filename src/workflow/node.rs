//! The contract between the three parts of the workflow engine that run a node as a pod:
//! the pure operator (`workflow::operator`, decides what runs), the pure pod builder
//! (`workflow::pod`, turns a [`PodRequest`] into a core/v1 Pod) and the controller shell
//! (`workflow::controller`, creates pods, watches them and the executor's WorkflowTaskResults,
//! and turns what it saw into [`PodObservation`]s for the next operator pass).
//!
//! Invariants:
//! - Names are deterministic functions of the workflow name and the node name ([`node_id`],
//!   [`pod_name`]), so a restarted controller that replays a decision addresses the same node
//!   and the same pod: "create pod X" for an existing X is an `AlreadyExists` the shell ignores,
//!   never a second pod for the same attempt. Retry attempts have distinct node names
//!   (`step(0)`, `step(1)`), hence distinct pods.
//! - Everything the operator needs to decide is in the Workflow object plus the observations:
//!   no decision depends on controller memory, so a restart resumes from `.status.nodes`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::types::{Outputs, Template, WorkflowSpec};

/// Label on every pod (and task result) of a workflow: the workflow's name (Argo's label).
pub const LABEL_WORKFLOW: &str = "workflows.argoproj.io/workflow";
/// Label set to "true" on a pod once the controller has recorded its outcome (Argo's label).
pub const LABEL_COMPLETED: &str = "workflows.argoproj.io/completed";
/// Annotation on a pod: the node id it runs (Argo's annotation).
pub const ANNOTATION_NODE_ID: &str = "workflows.argoproj.io/node-id";
/// Annotation on a pod: the full node name it runs (Argo's annotation).
pub const ANNOTATION_NODE_NAME: &str = "workflows.argoproj.io/node-name";
/// Label on a WorkflowTaskResult once the executor has finished writing it (Argo's label).
pub const LABEL_REPORT_OUTPUTS_COMPLETED: &str = "workflows.argoproj.io/report-outputs-completed";

/// FNV-1a, 32 bits: the hash Argo uses for node ids and pod names.
pub fn fnv32a(text: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The id of a node: `<workflow>-<fnv32a(node name)>`, except the root node, whose id is the
/// workflow name (as Argo names them).
pub fn node_id(workflow: &str, node_name: &str) -> String {
    if node_name == workflow {
        workflow.to_string()
    } else {
        format!("{workflow}-{}", fnv32a(node_name))
    }
}

/// The pod name of a node, Argo's "v2" naming: `<workflow>-<template>-<fnv32a(node name)>`,
/// shortened so the result stays a valid object name (≤ 253 characters; the workflow and
/// template parts are cut first, the hash is kept whole). A pod whose node name equals the
/// workflow name (a single-template workflow) is named after the workflow alone.
pub fn pod_name(workflow: &str, template: &str, node_name: &str) -> String {
    if node_name == workflow {
        return workflow.to_string();
    }
    const MAX: usize = 253;
    let hash = fnv32a(node_name).to_string();
    let mut prefix = if template.is_empty() {
        workflow.to_string()
    } else {
        format!("{workflow}-{template}")
    };
    let budget = MAX - hash.len() - 1;
    if prefix.len() > budget {
        let mut cut = budget;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// Everything needed to build the pod of one node attempt. The operator fills it with the
/// template already resolved and substituted (inputs, `{{pod.name}}`, `{{retries}}`...), so the
/// pod builder does no template expansion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRequest {
    /// Namespace of the workflow (the pod's namespace).
    pub namespace: String,
    /// Workflow name.
    pub workflow_name: String,
    /// Workflow uid, for the pod's ownerReference.
    pub workflow_uid: String,
    /// Node id (key in `.status.nodes`).
    pub node_id: String,
    /// Full node name (`wf[0].step(1)`).
    pub node_name: String,
    /// The pod's name ([`pod_name`]).
    pub pod_name: String,
    /// The template, resolved and substituted: a `container` or `script` template (with its
    /// `inputs` holding the values the node runs with).
    pub template: Template,
    /// The workflow spec, globals substituted: pod-level settings (volumes,
    /// serviceAccountName, securityContext, podSpecPatch, podMetadata, nodeSelector,
    /// tolerations, affinity, imagePullSecrets...) are read from here.
    pub spec: WorkflowSpec,
    /// Whether the executor captures stdout as `outputs.result` (script templates, and
    /// container templates whose result is referenced).
    pub capture_result: bool,
    /// Seconds the pod may run (`activeDeadlineSeconds` of the template, bounded by what is
    /// left of the workflow's deadline).
    pub active_deadline_seconds: Option<i64>,
    /// Where output artifacts go when they name no location: the workflow's resolved
    /// repository (`.status.artifactRepositoryRef`), filled by the controller shell; `None`
    /// means cairn's built-in store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_repository: Option<super::artifacts::ArtifactRepository>,
}

/// Phase of a node's pod as the controller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    /// Created, not started (scheduling, pulling the image).
    Pending,
    /// The main container runs.
    Running,
    /// The main container exited 0.
    Succeeded,
    /// The main container exited non-zero (or was killed: OOM, deadline).
    Failed,
    /// The pod cannot run: image pull failure, rejected by admission, deleted under us.
    /// Argo's `Error` node phase.
    Error,
}

/// What the controller saw of one node's pod and the executor's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodObservation {
    /// Pod name.
    pub pod_name: String,
    /// Phase derived from the pod's status and its containers.
    pub phase: PodPhase,
    /// Why: `main: Error (exit code 1)`, `ImagePullBackOff: ...`, `OOMKilled`, the server's
    /// rejection message...
    pub message: Option<String>,
    /// When the pod (main container) started.
    pub started_at: Option<Timestamp>,
    /// When it finished.
    pub finished_at: Option<Timestamp>,
    /// Node the pod ran on.
    pub host_node_name: Option<String>,
    /// Pod IP (daemoned steps).
    pub pod_ip: Option<String>,
    /// Outputs reported by the executor (parameters, result, exitCode, artifacts).
    pub outputs: Option<Outputs>,
    /// Whether the executor's report is complete (the WorkflowTaskResult carries
    /// [`LABEL_REPORT_OUTPUTS_COMPLETED`] = "true"), or the pod ended without one being
    /// possible. The operator completes a node only once this is true, so outputs are never
    /// read half-written.
    pub outputs_reported: bool,
}

/// Observations of a workflow's pods, by node id.
pub type Observations = BTreeMap<String, PodObservation>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv32a_matches_reference_vectors() {
        // Reference values of FNV-1a 32 (http://www.isthe.com/chongo/tech/comp/fnv/).
        assert_eq!(fnv32a(""), 0x811c_9dc5);
        assert_eq!(fnv32a("a"), 0xe40c_292c);
        assert_eq!(fnv32a("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn node_ids_are_stable_and_root_is_the_workflow() {
        assert_eq!(node_id("hello", "hello"), "hello");
        assert_eq!(
            node_id("wf", "wf[0].a"),
            format!("wf-{}", fnv32a("wf[0].a"))
        );
        assert_ne!(node_id("wf", "wf[0].a(0)"), node_id("wf", "wf[0].a(1)"));
    }

    #[test]
    fn pod_names_follow_v2_naming_and_stay_valid() {
        let h = fnv32a("wf[0].a");
        assert_eq!(
            pod_name("wf", "whalesay", "wf[0].a"),
            format!("wf-whalesay-{h}")
        );
        assert_eq!(pod_name("wf", "whalesay", "wf"), "wf");
        let long = "x".repeat(300);
        let name = pod_name(&long, "t", "wf[0].a");
        assert!(name.len() <= 253, "{}", name.len());
        assert!(name.ends_with(&h.to_string()));
    }
}
