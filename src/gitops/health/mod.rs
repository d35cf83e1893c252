//! Resource and application health, as Argo CD assesses it: pure functions from live objects to
//! a [`HealthStatus`], no client.
//!
//! # What it owns
//! - [`assess`] (and [`try_assess`]): the health of one live object, or `None` when its kind has
//!   no health check (a ConfigMap, an unknown custom resource), so it does not count towards the
//!   Application's health. One small file per kind holds each check.
//! - [`ResourceHealth::of`] + [`aggregate`]: the Application's health from its managed resources,
//!   the worst by Argo CD's order, with Argo CD's exclusions (hooks, `ignore-healthcheck`,
//!   missing resources without a check, child Applications that are Missing or Unknown).
//! - [`HealthStatus::missing`]: the status of a desired object that has no live counterpart;
//!   whether an object is missing is the caller's knowledge, not this module's.
//!
//! # How the controller uses it
//! The sync applier calls [`assess`] on each object of a wave after applying it and waits while
//! any is `Progressing` (or Missing); it never looks at the aggregate for that. The app
//! controller builds one [`ResourceHealth`] per managed resource (desired and/or live object),
//! calls [`aggregate`] for `.status.health`, and stores each resource's `health` in
//! `.status.resources[]`. The controller must leave out the Application's own object when an app
//! manages itself, as Argo CD does (this module does not know which app it is assessing).
//!
//! # Invariants
//! - Pure and total: no I/O, no panic on any input. A field of the wrong JSON type makes the
//!   object `Unknown` with a message naming the field ([`try_assess`] returns the error itself),
//!   as Argo CD's failed conversion to a typed object does.
//! - An object with `metadata.deletionTimestamp` is `Progressing` "Pending deletion" whatever its
//!   kind (unless it carries Argo's hook finalizer), before any kind-specific check.
//! - Status strings serialise exactly as Argo CD's (`"Healthy"`, …); an empty message is `None`.
//! - Messages are Argo CD's word for word, because users and scripts match on them.
//!
//! # Sources and choices
//! Rules follow gitops-engine `pkg/health/health_*.go` (Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Pod, Job, Service, Ingress, PVC, HPA, APIService, Workflow) and, where Argo CD has
//! since moved those checks into its built-in Lua scripts (`resource_customizations/<group>/<kind>/
//! health.lua`), the Lua version: "less than" instead of the old "less then" in messages, an
//! absent Pod `restartPolicy` read as `Always`, more degraded HPA reasons. CronJob and
//! CustomResourceDefinition follow their built-in Lua scripts; the aggregate follows Argo CD's
//! `controller/health.go`; the "Resource Health" page of the operator manual is the overview.
//! Where cairn differs, or had to choose:
//! - **Application**: Argo CD 1.8 removed Application health from the defaults; its manual gives
//!   a Lua customization to restore it for app-of-apps with sync waves, and Argo CD ships the same
//!   rule as `resource_customizations/argoproj.io/Application/health.lua`. cairn applies it by
//!   default (the issue asks for waves that wait for child apps): the child's `.status.health`,
//!   Progressing until it has one.
//! - **Namespace**: Argo CD has no check; cairn reports `Active` as Healthy and anything else as
//!   Progressing, so a wave holding a Namespace waits until the apiserver has activated it. A
//!   Healthy child never changes an aggregate, so app health matches Argo CD's in practice.
//! - **HPA**: `autoscaling/v2beta1` and `v2beta2` objects are still read like `v2` (Argo's
//!   current check reports them Unknown as unsupported; clusters no longer serve them).
//! - **Missing in the aggregate**: Argo CD 2.1–3.3 count a missing resource as Missing when its
//!   kind has a health check (a missing Deployment makes the app Missing, a missing ConfigMap does
//!   not), and make the app Missing when nothing it manages exists. Argo CD 3.4 stopped counting
//!   individual missing resources, which released app-of-apps waves too early (argo-cd #27917);
//!   cairn keeps the 2.1–3.3 rule.
//! - **Workflow**: Argo's check reads only `.status.phase` (a suspended workflow is Running, so
//!   Progressing); cairn does the same rather than inventing a Suspended rule.
//! - Custom Lua health checks (`resource.customizations.health.*`) and Argo CD's library of
//!   checks for third-party custom resources (cert-manager, Rollouts, …) are not supported: any
//!   other kind has no health, as in Argo CD without a customization for it. A `Ready` condition
//!   on an unknown kind is not read.

mod apiservice;
mod application;
mod crd;
mod cronjob;
mod daemonset;
mod deployment;
mod fields;
mod hpa;
mod ingress;
mod job;
mod namespace;
mod pod;
mod pvc;
mod replicaset;
mod service;
mod statefulset;
mod workflow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use fields::Obj;

/// Annotation that takes a resource out of its Application's health (Argo CD's name).
pub const ANNOTATION_IGNORE_HEALTHCHECK: &str = "argocd.argoproj.io/ignore-healthcheck";
/// Annotation marking an Argo CD resource hook.
pub const ANNOTATION_HOOK: &str = "argocd.argoproj.io/hook";
/// Annotation marking a Helm hook, which Argo CD treats as a resource hook.
pub const ANNOTATION_HELM_HOOK: &str = "helm.sh/hook";
/// Finalizer Argo CD puts on hooks; a hook being deleted keeps its real health while it is there.
pub const FINALIZER_HOOK: &str = "argocd.argoproj.io/hook-finalizer";

/// A health code. Declared from most to least healthy, so `Ord` is Argo CD's `healthOrder`:
/// Healthy < Suspended < Progressing < Missing < Degraded < Unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum HealthStatusCode {
    /// The resource is fully healthy.
    Healthy,
    /// The resource is paused or suspended (a paused Deployment, a suspended CronJob or Job).
    Suspended,
    /// Not healthy yet, but may still become healthy.
    Progressing,
    /// The resource does not exist in the cluster.
    Missing,
    /// The resource failed, or cannot become healthy in time.
    Degraded,
    /// The health could not be assessed.
    Unknown,
}

impl HealthStatusCode {
    /// Argo CD's `IsWorse(current, new)`: whether `self` is a worse condition than `current`.
    pub fn is_worse_than(self, current: HealthStatusCode) -> bool {
        self > current
    }

    /// The code as Argo CD writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatusCode::Healthy => "Healthy",
            HealthStatusCode::Suspended => "Suspended",
            HealthStatusCode::Progressing => "Progressing",
            HealthStatusCode::Missing => "Missing",
            HealthStatusCode::Degraded => "Degraded",
            HealthStatusCode::Unknown => "Unknown",
        }
    }

    /// Parses Argo CD's spelling (exact, case-sensitive, as Argo CD compares them).
    pub fn parse(s: &str) -> Option<HealthStatusCode> {
        Some(match s {
            "Healthy" => HealthStatusCode::Healthy,
            "Suspended" => HealthStatusCode::Suspended,
            "Progressing" => HealthStatusCode::Progressing,
            "Missing" => HealthStatusCode::Missing,
            "Degraded" => HealthStatusCode::Degraded,
            "Unknown" => HealthStatusCode::Unknown,
            _ => return None,
        })
    }
}

impl std::fmt::Display for HealthStatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The health of one resource or of an Application, serialised as Argo CD's
/// `{"status": "...", "message": "..."}` (message omitted when empty).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    /// The code.
    pub status: HealthStatusCode,
    /// Why, when the check says; never `Some("")`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl HealthStatus {
    /// A status with a message; an empty message becomes `None`, as Argo CD omits it.
    pub fn new(status: HealthStatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        HealthStatus {
            status,
            message: (!message.is_empty()).then_some(message),
        }
    }

    /// A status without a message.
    pub fn code(status: HealthStatusCode) -> Self {
        HealthStatus {
            status,
            message: None,
        }
    }

    /// Healthy, no message.
    pub fn healthy() -> Self {
        Self::code(HealthStatusCode::Healthy)
    }

    /// The health of a desired object that has no live counterpart (decided by the caller).
    pub fn missing() -> Self {
        Self::code(HealthStatusCode::Missing)
    }
}

/// For writing `.status.health` and `.status.resources[].health` of an Application (the
/// transition time is the controller's to set).
impl From<HealthStatus> for crate::gitops::types::HealthStatus {
    fn from(h: HealthStatus) -> Self {
        crate::gitops::types::HealthStatus {
            status: Some(h.status.as_str().to_owned()),
            message: h.message,
            ..Default::default()
        }
    }
}

/// Why an object's health could not be assessed. [`assess`] turns each into `Unknown` with the
/// error as message; [`try_assess`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// A field has another JSON type than the Kubernetes API declares for it.
    #[error("{kind} {name:?}: field {field} is {found}, expected {expected}")]
    FieldType {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The field, as a dotted path.
        field: String,
        /// The type the API declares.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// An annotation that carries JSON (the HPA v1 conditions) does not parse as expected.
    #[error("{kind} {name:?}: annotation {annotation} is not {expected}: {reason}")]
    Annotation {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The annotation key.
        annotation: String,
        /// What the annotation should hold.
        expected: &'static str,
        /// The parser's explanation.
        reason: String,
    },
    /// The kind has a check, but not for this apiVersion (Argo CD refuses it the same way).
    #[error("{kind} {name:?}: unsupported apiVersion {api_version:?} for this health check")]
    UnsupportedVersion {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The apiVersion found.
        api_version: String,
    },
}

impl HealthError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            HealthError::FieldType { .. } => "field_type",
            HealthError::Annotation { .. } => "annotation",
            HealthError::UnsupportedVersion { .. } => "unsupported_version",
        }
    }
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → the core group `""`).
pub fn api_group(api_version: &str) -> &str {
    api_version
        .split_once('/')
        .map_or("", |(group, _version)| group)
}

/// One kind's health check.
type Check = fn(&Obj<'_>) -> Result<HealthStatus, HealthError>;

fn check_for(group: &str, kind: &str) -> Option<Check> {
    let check: Check = match (group, kind) {
        ("apps", "Deployment") => deployment::health,
        ("apps", "StatefulSet") => statefulset::health,
        ("apps", "ReplicaSet") => replicaset::health,
        ("apps", "DaemonSet") => daemonset::health,
        ("extensions" | "networking.k8s.io", "Ingress") => ingress::health,
        ("argoproj.io", "Workflow") => workflow::health,
        ("argoproj.io", "Application") => application::health,
        ("apiregistration.k8s.io", "APIService") => apiservice::health,
        ("", "Service") => service::health,
        ("", "PersistentVolumeClaim") => pvc::health,
        ("", "Pod") => pod::health,
        ("", "Namespace") => namespace::health,
        ("batch", "Job") => job::health,
        ("batch", "CronJob") => cronjob::health,
        ("autoscaling", "HorizontalPodAutoscaler") => hpa::health,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd::health,
        _ => return None,
    };
    Some(check)
}

/// Whether cairn has a health check for this (group, kind). A missing resource of such a kind
/// counts as Missing in the Application's health; one without a check does not.
pub fn has_health_check(group: &str, kind: &str) -> bool {
    check_for(group, kind).is_some()
}

/// Whether the object is being deleted and not held by Argo's hook finalizer.
fn pending_deletion(obj: &Value) -> bool {
    let deleting = obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null());
    let hook_finalizer = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(FINALIZER_HOOK)));
    deleting && !hook_finalizer
}

/// The health of one live object, or `None` when its kind has no health check.
/// Errors are the reasons [`assess`] reports `Unknown`.
pub fn try_assess(obj: &Value) -> Result<Option<HealthStatus>, HealthError> {
    if pending_deletion(obj) {
        return Ok(Some(HealthStatus::new(
            HealthStatusCode::Progressing,
            "Pending deletion",
        )));
    }
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    match check_for(api_group(api_version), kind) {
        None => Ok(None),
        Some(check) => check(&Obj::new(obj)).map(Some),
    }
}

/// The health of one live object, or `None` when its kind has no health check (it then does not
/// affect the Application). An object that cannot be read is `Unknown` with the reason.
pub fn assess(obj: &Value) -> Option<HealthStatus> {
    try_assess(obj)
        .unwrap_or_else(|e| Some(HealthStatus::new(HealthStatusCode::Unknown, e.to_string())))
}

/// How a managed resource takes part in its Application's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Participation {
    /// Its health counts.
    Counted,
    /// It counts as a resource the app manages (for "everything is missing"), but its health is
    /// not aggregated: the live object is annotated `argocd.argoproj.io/ignore-healthcheck: "true"`.
    HealthIgnored,
    /// Left out entirely: a live hook (hooks report through the operation, not app health) or a
    /// desired object annotated as a `Skip` hook.
    Excluded,
}

/// One managed resource as the aggregate sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceHealth {
    /// API group (`""` for the core group).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Whether a live object exists.
    pub live: bool,
    /// How it takes part in the aggregate.
    pub participation: Participation,
    /// Its health, as `.status.resources[].health` records it: [`HealthStatus::missing`] without
    /// a live object, else [`assess`] of the live object; `None` when its kind has no health
    /// check or it does not take part in the aggregate.
    pub health: Option<HealthStatus>,
}

fn hook_annotation(obj: &Value, key: &str) -> Option<String> {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Whether the annotation `argocd.argoproj.io/hook` lists `Skip`.
fn is_skip_hook(obj: &Value) -> bool {
    hook_annotation(obj, ANNOTATION_HOOK).is_some_and(|v| v.split(',').any(|t| t.trim() == "Skip"))
}

/// Argo CD's `hook.IsHook`: an Argo hook annotation that is not `Skip`, or a Helm hook other than
/// the obsolete `crd-install` (which Helm 3 no longer runs as a hook).
fn is_hook(obj: &Value) -> bool {
    if hook_annotation(obj, ANNOTATION_HOOK).is_some() {
        return !is_skip_hook(obj);
    }
    hook_annotation(obj, ANNOTATION_HELM_HOOK).is_some_and(|v| v != "crd-install")
}

impl ResourceHealth {
    /// One managed resource from its desired and live objects (at least one should be given;
    /// with neither it is left out). Group and kind come from the live object, else the desired.
    pub fn of(desired: Option<&Value>, live: Option<&Value>) -> ResourceHealth {
        let id_source = live.or(desired);
        let field = |key: &str| {
            id_source
                .and_then(|o| o.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let group = api_group(field("apiVersion")).to_owned();
        let kind = field("kind").to_owned();
        let participation = if id_source.is_none()
            || desired.is_some_and(is_skip_hook)
            || live.is_some_and(is_hook)
        {
            Participation::Excluded
        } else if live.is_some_and(|l| {
            hook_annotation(l, ANNOTATION_IGNORE_HEALTHCHECK).as_deref() == Some("true")
        }) {
            Participation::HealthIgnored
        } else {
            Participation::Counted
        };
        // Argo CD records no health for resources it leaves out of the aggregate.
        let health = match (participation, live) {
            (Participation::Excluded | Participation::HealthIgnored, _) => None,
            (Participation::Counted, None) => Some(HealthStatus::missing()),
            (Participation::Counted, Some(l)) => assess(l),
        };
        ResourceHealth {
            group,
            kind,
            live: live.is_some(),
            participation,
            health,
        }
    }
}

/// The Application's health: the worst health of its resources by Argo CD's order, Healthy when
/// nothing counts, with Argo CD's rules (see the module docs):
/// - excluded resources and `ignore-healthcheck` resources do not count;
/// - a missing resource whose kind has no health check (a ConfigMap) does not count;
/// - a child Application that is Missing or Unknown does not count;
/// - when the app manages resources but none of them exists, it is at least Missing.
pub fn aggregate(children: &[ResourceHealth]) -> HealthStatus {
    let mut worst = HealthStatusCode::Healthy;
    let mut manages_any = false;
    let mut any_live = false;
    for child in children {
        if child.participation == Participation::Excluded {
            continue;
        }
        manages_any = true;
        any_live |= child.live;
        if child.participation == Participation::HealthIgnored {
            continue;
        }
        let Some(health) = &child.health else {
            continue;
        };
        let code = health.status;
        if !child.live
            && code == HealthStatusCode::Missing
            && !has_health_check(&child.group, &child.kind)
        {
            continue;
        }
        if child.group == "argoproj.io"
            && child.kind == "Application"
            && matches!(code, HealthStatusCode::Missing | HealthStatusCode::Unknown)
        {
            continue;
        }
        if code.is_worse_than(worst) {
            worst = code;
        }
    }
    if manages_any && !any_live && HealthStatusCode::Missing.is_worse_than(worst) {
        worst = HealthStatusCode::Missing;
    }
    HealthStatus::code(worst)
}

#[cfg(test)]
mod tests;
