//! Submitting the bookstore's `recommender-pipeline` and reading its Workflow's status, shared
//! by the lab tests that run it (`bookstore_pipeline`, `mlops_loop`). Include it with
//! `#[path = "common/pipeline.rs"] mod pipeline;` beside `common/lab.rs` (as `mod lab`).
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use cairn::workflow::types::Workflow;
use serde_json::{Value, json};

use crate::lab::kubectl;

/// Creates a Workflow from the `recommender-pipeline` WorkflowTemplate in `ns` (labelled for
/// the controller `instance`) with `parameters`; returns its generated name.
pub fn submit(ns: &str, instance: &str, generate_name: &str, parameters: Value) -> String {
    let wf = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "generateName": generate_name,
            "labels": {"workflows.argoproj.io/controller-instanceid": instance},
        },
        "spec": {
            "workflowTemplateRef": {"name": "recommender-pipeline"},
            "arguments": {"parameters": parameters},
        },
    });
    let out = kubectl(
        &["-n", ns, "create", "-f", "-", "-o", "name"],
        Some(&wf.to_string()),
    );
    out.trim().rsplit('/').next().unwrap_or_default().to_owned()
}

/// The status node whose display name is `display`, as JSON (Null when absent).
pub fn node(wf: &Workflow, display: &str) -> Value {
    let status = serde_json::to_value(&wf.status).unwrap_or_default();
    status["nodes"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .find(|n| n["displayName"] == display)
        .cloned()
        .unwrap_or(Value::Null)
}

/// The Workflow's phase ("" before the controller set one).
pub fn phase(wf: &Workflow) -> String {
    wf.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// A node's output parameter `name`.
pub fn output_parameter(node: &Value, name: &str) -> Option<String> {
    node["outputs"]["parameters"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)?["value"]
        .as_str()
        .map(str::to_owned)
}
