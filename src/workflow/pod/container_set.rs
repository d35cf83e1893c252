//! `containerSet` templates on the controller side: the set's shape ([`parse`]), its
//! containers in the pod ([`containers`], used by [`super::build_pod`]), and what the pod says
//! of each of them ([`container_phases`], [`observe_containers`]: the phases of the node's
//! `Container` children).
//!
//! Argo semantics followed (docs "Container Set Template", `workflow/controller/operator.go`
//! `executeContainerSet` / `podReconciliation`):
//! - every container of the set runs in the node's one pod, each wrapped by `cairn exec` with a
//!   [`SetRole`] (its dependencies, the set's `retryStrategy`, whether it reports); the set's
//!   `volumeMounts` are added to every container; only the container named `main` gets the
//!   template's outputs, result capture and artifacts (Argo: "inputs and outputs can only be
//!   loaded and saved from a container named `main`");
//! - the node gets one child node of type `Container` per container, named
//!   `<node>.<container>`; a container without dependencies is a child of the pod node, one
//!   with dependencies a child of each of them ([`child_links`]);
//! - a child's phase comes from its container status: terminated 0 → Succeeded, 64 (the
//!   wrapper's own failure, e.g. a dependency that failed) → Error, other codes → Failed with
//!   `<c>: <reason> (exit code N)`; a Failed pod with the container not terminated → Failed
//!   `Pod Failed whilst container running`; waiting → Pending; running → Running.
//!
//! Invariants: [`parse`] refuses (naming the field) a set without containers, a container
//! without a name or command, duplicate names, an unknown dependency and a dependency cycle,
//! so a wrapper can never wait for a container that does not exist; the pure functions never
//! panic on a pod's status.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::PodError;
use crate::workflow::executor::MAIN_CONTAINER;
use crate::workflow::executor::container_set::{DEFAULT_WAIT_SECONDS, SetRole};
use crate::workflow::node::{
    ANNOTATION_NODE_NAME, LABEL_WORKFLOW, PodObservation, PodPhase, node_id,
};
use crate::workflow::types::{Container, Template};

/// Annotation on a containerSet pod: the set's container names, comma-separated. Tells
/// [`super::observe`] that the pod is over only when all of them are.
pub const ANNOTATION_CONTAINER_SET: &str = "workflows.cairn.dev/container-set";

/// Exit code of a wrapper that failed itself (Argo's emissary 64): the Container node is an
/// Error.
pub const EXIT_WRAPPER: i32 = 64;

/// One container of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Its name (unique in the set).
    pub name: String,
    /// Containers that must exit 0 first.
    pub dependencies: Vec<String>,
    /// The container as written, `name` and `dependencies` removed from `extra`.
    pub container: Container,
}

/// A parsed `containerSet`.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSet {
    /// The containers, in the template's order.
    pub members: Vec<Member>,
    /// `volumeMounts` added to every container.
    pub volume_mounts: Vec<Value>,
    /// `retryStrategy.retries`.
    pub retries: u32,
    /// `retryStrategy.duration` in milliseconds.
    pub retry_delay_ms: u64,
}

impl ContainerSet {
    /// The member named `main`, if any.
    pub fn main(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.name == MAIN_CONTAINER)
    }
}

/// Parses and checks `template.containerSet`.
pub fn parse(template: &Template) -> Result<ContainerSet, PodError> {
    let name = template.name.as_str();
    let invalid = |field: String, expected: &str| PodError::InvalidField {
        template: name.to_string(),
        field,
        expected: expected.to_string(),
    };
    let Some(Value::Object(set)) = template.container_set.as_ref() else {
        return Err(invalid("containerSet".into(), "an object"));
    };
    let Some(Value::Array(items)) = set.get("containers") else {
        return Err(invalid(
            "containerSet.containers".into(),
            "a non-empty list of containers",
        ));
    };
    if items.is_empty() {
        return Err(invalid(
            "containerSet.containers".into(),
            "a non-empty list of containers",
        ));
    }
    let mut members = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let field = |f: &str| format!("containerSet.containers[{i}]{f}");
        let mut container: Container = serde_json::from_value(item.clone())
            .map_err(|e| invalid(field(""), &format!("a container ({e})")))?;
        let cname = container.name.clone().unwrap_or_default();
        if cname.is_empty() {
            return Err(invalid(field(".name"), "a non-empty container name"));
        }
        if !seen.insert(cname.clone()) {
            return Err(invalid(
                field(".name"),
                &format!("a name unique in the set ({cname:?} is used twice)"),
            ));
        }
        let dependencies = match container.extra.remove("dependencies") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ds)) => ds
                .iter()
                .map(|d| d.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid(field(".dependencies"), "a list of container names"))?,
            Some(_) => {
                return Err(invalid(field(".dependencies"), "a list of container names"));
            }
        };
        // A missing `command` is the pod builder's to judge: the image index may know it.
        members.push(Member {
            name: cname,
            dependencies,
            container,
        });
    }
    for (i, m) in members.iter().enumerate() {
        for d in &m.dependencies {
            if !seen.contains(d) {
                return Err(invalid(
                    format!("containerSet.containers[{i}].dependencies"),
                    &format!("names of containers of the set ({d:?} is not one)"),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(&members) {
        return Err(invalid(
            "containerSet.containers".into(),
            &format!("dependencies without a cycle ({cycle} depends on itself)"),
        ));
    }
    let volume_mounts = match set.get("volumeMounts") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ms)) => ms.clone(),
        Some(_) => return Err(invalid("containerSet.volumeMounts".into(), "a list")),
    };
    let (retries, retry_delay_ms) = match set.get("retryStrategy") {
        None | Some(Value::Null) => (0, 0),
        Some(Value::Object(rs)) => {
            let retries = match rs.get("retries") {
                None | Some(Value::Null) => Some(0),
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
                Some(Value::String(s)) => s.trim().parse().ok(),
                Some(_) => None,
            }
            .ok_or_else(|| {
                invalid(
                    "containerSet.retryStrategy.retries".into(),
                    "a non-negative integer (or a string holding one)",
                )
            })?;
            let delay = match rs.get("duration") {
                None | Some(Value::Null) => 0,
                Some(Value::String(s)) if s.is_empty() => 0,
                Some(Value::String(s)) => crate::workflow::retry::parse_go_duration(s)
                    .ok()
                    .and_then(|d| u64::try_from(d.as_millis()).ok())
                    .ok_or_else(|| {
                        invalid(
                            "containerSet.retryStrategy.duration".into(),
                            "a non-negative Go duration such as \"300ms\", \"1s\" or \"5m\"",
                        )
                    })?,
                Some(_) => {
                    return Err(invalid(
                        "containerSet.retryStrategy.duration".into(),
                        "a Go duration string",
                    ));
                }
            };
            (retries, delay)
        }
        Some(_) => {
            return Err(invalid(
                "containerSet.retryStrategy".into(),
                "an object with `retries` and `duration`",
            ));
        }
    };
    Ok(ContainerSet {
        members,
        volume_mounts,
        retries,
        retry_delay_ms,
    })
}

/// A container on a dependency cycle, if any (bounded depth-first search).
fn find_cycle(members: &[Member]) -> Option<String> {
    let deps: BTreeMap<&str, &[String]> = members
        .iter()
        .map(|m| (m.name.as_str(), m.dependencies.as_slice()))
        .collect();
    // Kahn's algorithm: whatever is left once no container is free is on (or behind) a cycle.
    let mut left: BTreeMap<&str, usize> = deps.iter().map(|(n, d)| (*n, d.len())).collect();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for _ in 0..=members.len() {
        let free: Vec<&str> = left
            .iter()
            .filter(|(n, _)| {
                deps.get(*n)
                    .is_some_and(|ds| ds.iter().all(|d| done.contains(d.as_str())))
            })
            .map(|(n, _)| *n)
            .collect();
        if free.is_empty() {
            break;
        }
        for n in free {
            left.remove(n);
            done.insert(n);
        }
    }
    left.keys().next().map(|n| n.to_string())
}

/// The `Container` child links of a containerSet node named `node_name`: `(parent node name,
/// child node name)`, the parent being the pod node for a container without dependencies.
/// Lenient (the template was validated): entries without a name are skipped. Pure.
pub fn child_links(node_name: &str, template: &Template) -> Vec<(String, String)> {
    let items = template
        .container_set
        .as_ref()
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut out = Vec::new();
    for item in items {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        let child = format!("{node_name}.{name}");
        let deps: Vec<&str> = item
            .get("dependencies")
            .and_then(Value::as_array)
            .map(|ds| ds.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if deps.is_empty() {
            out.push((node_name.to_string(), child));
        } else {
            for d in deps {
                out.push((format!("{node_name}.{d}"), child.clone()));
            }
        }
    }
    out
}

/// The [`SetRole`] of member `m` in a pod whose deadline is `deadline_seconds`.
pub fn role(
    set: &ContainerSet,
    m: &Member,
    mount_path: &str,
    deadline_seconds: Option<i64>,
) -> SetRole {
    SetRole {
        name: m.name.clone(),
        dependencies: m.dependencies.clone(),
        members: set.members.iter().map(|m| m.name.clone()).collect(),
        ctr_dir: format!("{}/ctr", mount_path.trim_end_matches('/')).into(),
        reports: m.name == MAIN_CONTAINER,
        retries: set.retries,
        retry_delay_ms: set.retry_delay_ms,
        wait_seconds: deadline_seconds
            .and_then(|s| u64::try_from(s).ok())
            .filter(|s| *s > 0)
            .map_or(DEFAULT_WAIT_SECONDS, |s| s.min(DEFAULT_WAIT_SECONDS)),
    }
}

/// The names listed in a pod's [`ANNOTATION_CONTAINER_SET`], if it is a containerSet pod.
pub fn set_members(pod: &Pod) -> Option<Vec<String>> {
    let value = pod
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_CONTAINER_SET)?;
    Some(
        value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// What the pod says of one container of the set.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerPhase {
    /// Container name.
    pub name: String,
    /// Its node phase.
    pub phase: PodPhase,
    /// Why (failed containers).
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<jiff::Timestamp>,
    /// When it ended.
    pub finished_at: Option<jiff::Timestamp>,
}

/// The phase of each container of a containerSet pod (Argo's `podReconciliation` table, module
/// docs); containers without a status yet are Pending. Pure.
pub fn container_phases(pod: &Pod, members: &[String]) -> Vec<ContainerPhase> {
    let status = pod.status.as_ref();
    let pod_failed = status.and_then(|s| s.phase.as_deref()) == Some("Failed");
    let statuses = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default();
    members
        .iter()
        .map(|name| {
            let state = statuses
                .iter()
                .find(|c| c.name == *name)
                .and_then(|c| c.state.as_ref());
            let mut out = ContainerPhase {
                name: name.clone(),
                phase: PodPhase::Pending,
                message: None,
                started_at: None,
                finished_at: None,
            };
            match state {
                Some(s) if s.terminated.is_some() => {
                    let Some(t) = s.terminated.as_ref() else {
                        return out;
                    };
                    out.started_at = t.started_at.as_ref().map(|t| t.0);
                    out.finished_at = t.finished_at.as_ref().map(|t| t.0);
                    let reason = t.reason.as_deref().unwrap_or("Error");
                    let mut message = format!("{name}: {reason} (exit code {})", t.exit_code);
                    if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
                        message.push_str(": ");
                        message.push_str(m);
                    }
                    match t.exit_code {
                        0 => out.phase = PodPhase::Succeeded,
                        EXIT_WRAPPER => {
                            out.phase = PodPhase::Error;
                            out.message = Some(message);
                        }
                        _ => {
                            out.phase = PodPhase::Failed;
                            out.message = Some(message);
                        }
                    }
                }
                _ if pod_failed => {
                    out.phase = PodPhase::Failed;
                    out.message = Some("Pod Failed whilst container running".into());
                }
                Some(s) if s.running.is_some() => {
                    out.phase = PodPhase::Running;
                    out.started_at = s
                        .running
                        .as_ref()
                        .and_then(|r| r.started_at.as_ref())
                        .map(|t| t.0);
                }
                _ => {}
            }
            out
        })
        .collect()
}

/// The observations of a containerSet pod's `Container` child nodes, by node id (the node
/// name from the pod's node-name annotation, the workflow from its label; empty for any other
/// pod). The controller adds them to the workflow's observations next to the pod
/// node's own. Pure.
pub fn observe_containers(pod: &Pod) -> Vec<(String, PodObservation)> {
    let Some(members) = set_members(pod) else {
        return Vec::new();
    };
    let Some(workflow_name) = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_WORKFLOW))
    else {
        return Vec::new();
    };
    let Some(node_name) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_NODE_NAME))
    else {
        return Vec::new();
    };
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    container_phases(pod, &members)
        .into_iter()
        .map(|c| {
            let id = node_id(workflow_name, &format!("{node_name}.{}", c.name));
            let obs = PodObservation {
                pod_name: pod_name.clone(),
                phase: c.phase,
                message: c.message,
                started_at: c.started_at,
                finished_at: c.finished_at,
                host_node_name: None,
                pod_ip: None,
                outputs: None,
                outputs_reported: true,
            };
            (id, obs)
        })
        .collect()
}

#[cfg(test)]
mod tests;
