//! Diff: Argo CD's comparison of desired (or predicted) and live objects, as pure functions.
//!
//! This module owns *whether* a resource is in sync and *what* differs; it never talks to a
//! cluster. The controller fetches live objects (and, in server-side mode, the "would-be" object
//! from a server-side-apply dry run) and hands them in as `serde_json::Value`s.
//!
//! # Public API (how a controller wires it)
//!
//! ```text
//! let mut opts = DiffOptions::for_app(&app, &system_ignore_differences); // mode from ServerSideDiff=,
//! opts.status = StatusComparison::parse(&compareoptions.ignore_resource_status_field)?; // field manager "cairn"
//! opts.validate()?;                       // bad pointer / jq → one condition on the Application
//! // desired: rendered objects with their namespace defaulted; in server-side mode, the
//! // dry-run results instead. live: objects tracked to the app + those sharing a desired key.
//! let cmp = compare_app(&desired, &live, &opts);
//! cmp.status                              // Synced | OutOfSync | Unknown → .status.sync.status
//! cmp.resources[i].status                 // → .status.resources[i].status
//! cmp.in_sync()                           // → sync::PlanInput::in_sync (ApplyOutOfSyncOnly)
//! cmp.resources[i].diff                   // → `cairn app diff` (.text) and the UI (.patch,
//!                                         //   normalized_live / normalized_target)
//! ```
//!
//! One resource at a time: [`diff()`] (`target` is the desired object in client-side mode, the
//! dry-run result in server-side mode; see [`DiffMode`]), [`diff_one_side`] for an object to
//! create or to prune, [`mask_secret`] / [`mask_secrets`] for any display of Secrets.
//!
//! # What a comparison ignores (both sides alike)
//! - Server-set metadata: `managedFields`, `resourceVersion`, `uid`, `generation`,
//!   `creationTimestamp`, `selfLink`, `deletionTimestamp`, `deletionGracePeriodSeconds`; the
//!   annotations `kubectl.kubernetes.io/last-applied-configuration` and
//!   `argocd.argoproj.io/tracking-id` (ownership is the planner's check, not a difference).
//! - `.status`, per [`StatusComparison`] (default: every kind, Argo CD 3's default
//!   `ignoreResourceStatusField: all`; `crd` was Argo CD 2's default).
//! - `null`, `{}` and `[]` (Kubernetes drops them on write); `1` and `1.0`.
//! - A Secret's `stringData` is folded into `data` (base64) first, as the API server does.
//! - `ignoreDifferences` rules of the application and of the system whose group and kind match
//!   (`*` globs) and whose name and namespace match when set: `jsonPointers` (RFC 6901),
//!   `jqPathExpressions` (the subset in [`jq`]), `managedFieldsManagers` (fields the live
//!   object's `managedFields` give to those managers, [`managed`]). Each is removed from both
//!   sides, so the live value wins.
//! - Client-side mode only: live fields the desired object does not set, unless cairn's field
//!   manager applied them (then they are compared, so deleting a field in Git is a difference:
//!   the three-way diff Argo CD's legacy strategy makes from last-applied-configuration, made
//!   here from server-side-apply ownership since cairn applies server-side).
//!
//! # Invariants
//! - Lists are compared by position, except the merge-keyed lists of built-in kinds
//!   ([`normalize::align_lists`]: containers, initContainers, ephemeralContainers, env, volumes
//!   by `name`, volumeMounts by `mountPath`, ports by `containerPort`/`port`, …), whose live
//!   items are first put in the desired order, as Argo CD's legacy strategic-merge diff pairs
//!   them. Every other list is positional: a reordered list is a difference (as in Argo CD, e.g.
//!   the HPA `metrics` order its docs warn about). Normalized live objects show aligned lists in
//!   the desired order.
//! - No Secret value is ever in a [`ResourceDiff`]: both sides are masked together by
//!   [`secret::mask_secrets`] (equal values share a marker, different ones do not), so a
//!   change is still detected and visible as a change.
//! - Output is deterministic: keys sorted, patches in key order, text diff of sorted YAML.
//! - Hooks (anything `sync::hooks::classify` does not call an ordinary resource) are left out
//!   of the comparison, as Argo CD leaves them out of the sync status.
//! - A failed comparison makes that resource `Unknown`, never `Synced`; the application is
//!   `OutOfSync` if any resource is, else `Unknown` if any is, else `Synced`.
//!
//! - Also honoured: `resource.compareoptions.ignoreAggregatedRoles` (`rules` of aggregated
//!   ClusterRoles), `resource.sensitive.mask.annotations` (masked on Secrets), the Application's
//!   `argocd.argoproj.io/compare-options: ServerSideDiff=true|false` ([`DiffMode::of_app`]), and
//!   a live object's `argocd.argoproj.io/compare-options: IgnoreExtraneous`.
//!
//! # Deliberate differences from Argo CD (each visible, none silently weaker)
//! - jq: a documented subset ([`jq`]); anything else is refused with the expression named,
//!   where Argo CD runs full jq. Group/kind patterns support `*` only (Argo: full glob).
//! - The three-way part of the client-side diff comes from cairn's server-side-apply ownership
//!   (`managedFields`), not from `last-applied-configuration`, because cairn applies
//!   server-side: a stale last-applied annotation would report differences no apply removes.
//! - `{}`/`[]`/`null` equal absent everywhere (Argo CD gets much of this from re-marshalling
//!   known types); quantities (`500m` vs `0.5`) are compared as written in client-side mode —
//!   server-side mode normalizes them through the API server.
//!
//! Sources: Argo CD user guide "Diffing Customization", "Diff Strategies", "Compare Options"
//! (`IgnoreExtraneous`), "Sync Options"; gitops-engine `pkg/diff` (two-way diff of
//! fields the user set, `HideSecretData` marker scheme). The code is cairn's own.

pub mod jq;
pub mod managed;
pub mod normalize;
pub mod patch;
pub mod pointer;
pub mod secret;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gitops::sync::hooks::{Classification, classify};
use crate::gitops::types::{Application, ResourceIgnoreDifferences};
use crate::k8s::ResourceKey;

pub use patch::JsonPatchOp;
pub use secret::{mask_secret, mask_secrets};

/// kubectl's annotation holding the last applied object.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Per-resource comparison options (`argocd.argoproj.io/compare-options`).
pub const COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";

/// Why a comparison could not be made. Every variant names what was at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    /// An `ignoreDifferences.jsonPointers` entry is not an RFC 6901 pointer.
    #[error("ignoreDifferences jsonPointer {pointer:?}: {reason}")]
    BadJsonPointer {
        /// The pointer as written.
        pointer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `jqPathExpressions` entry is outside the supported subset (see [`jq`]).
    #[error("ignoreDifferences jqPathExpression {expression:?} is not supported: {reason}")]
    UnsupportedJq {
        /// The expression as written.
        expression: String,
        /// Where and why it was refused, with the supported forms.
        reason: String,
    },
    /// A live object's `managedFields` entry has a malformed `fieldsV1`.
    #[error("managedFields of manager {manager:?}: element {element:?}: {reason}")]
    BadManagedFields {
        /// The entry's manager.
        manager: String,
        /// The offending FieldsV1 key.
        element: String,
        /// What was expected.
        reason: String,
    },
    /// `resource.compareoptions.ignoreResourceStatusField` holds an unknown value.
    #[error("ignoreResourceStatusField {value:?}: expected all, crd or off")]
    BadStatusComparison {
        /// The value as written.
        value: String,
    },
    /// [`diff()`] was handed two different objects.
    #[error("target is {target} but live is {live}: not the same object")]
    Mismatch {
        /// The target's identity.
        target: String,
        /// The live object's identity.
        live: String,
    },
    /// An object lacks what identifies it.
    #[error("{side} object: {reason}")]
    InvalidObject {
        /// "target" or "live".
        side: &'static str,
        /// What is missing (e.g. "no kind").
        reason: String,
    },
}

impl DiffError {
    /// Stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DiffError::BadJsonPointer { .. } => "bad_json_pointer",
            DiffError::UnsupportedJq { .. } => "unsupported_jq",
            DiffError::BadManagedFields { .. } => "bad_managed_fields",
            DiffError::InvalidObject { .. } => "invalid_object",
            DiffError::BadStatusComparison { .. } => "bad_status_comparison",
            DiffError::Mismatch { .. } => "mismatch",
        }
    }
}

/// What `target` is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiffMode {
    /// `target` is the rendered desired object: only fields it sets are compared (Argo CD's
    /// legacy diff for fields the user did not set).
    #[default]
    ClientSide,
    /// `target` is the API server's answer to a server-side-apply dry run of the desired
    /// object (defaults, mutating webhooks and merge semantics applied): compared whole.
    ServerSide,
}

impl DiffMode {
    /// The mode an Application asks for with `argocd.argoproj.io/compare-options:
    /// ServerSideDiff=true|false`, else the controller's default (Argo CD's
    /// `--server-side-diff-enabled`).
    pub fn of_app(app: &Application, controller_default: DiffMode) -> DiffMode {
        let options = app
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(COMPARE_OPTIONS))
            .map(String::as_str)
            .unwrap_or("");
        for option in options.split(',').map(str::trim) {
            match option {
                "ServerSideDiff=true" => return DiffMode::ServerSide,
                "ServerSideDiff=false" => return DiffMode::ClientSide,
                _ => {}
            }
        }
        controller_default
    }
}

/// Which kinds' `.status` is ignored (`resource.compareoptions.ignoreResourceStatusField`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatusComparison {
    /// Every kind (`all`, Argo CD 3's default).
    #[default]
    IgnoreAll,
    /// CustomResourceDefinitions only (`crd`, Argo CD 2's default).
    IgnoreCrdOnly,
    /// Status is compared (`off`).
    Compare,
}

impl StatusComparison {
    /// Read Argo CD's setting: `all`, `crd`, `off` (`none` accepted too); empty means the default.
    pub fn parse(value: &str) -> Result<Self, DiffError> {
        match value.trim() {
            "" | "all" => Ok(StatusComparison::IgnoreAll),
            "crd" => Ok(StatusComparison::IgnoreCrdOnly),
            "off" | "none" => Ok(StatusComparison::Compare),
            other => Err(DiffError::BadStatusComparison {
                value: other.to_owned(),
            }),
        }
    }
}

/// Options of one comparison.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffOptions {
    /// Client-side or server-side.
    pub mode: DiffMode,
    /// Status handling.
    pub status: StatusComparison,
    /// `ignoreDifferences` rules: the application's and the system's
    /// (`resource.customizations.ignoreDifferences.*`), in any order.
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
    /// `resource.compareoptions.ignoreAggregatedRoles`: ignore `rules` of ClusterRoles with an
    /// `aggregationRule` (the controller manager fills them).
    #[serde(default)]
    pub ignore_aggregated_roles: bool,
    /// cairn's server-side-apply field manager: in client-side mode, live fields it owns are
    /// compared even when the desired object no longer sets them (three-way diff). `None`
    /// compares only what the desired object sets.
    #[serde(default)]
    pub field_manager: Option<String>,
    /// Annotations whose values are masked on Secrets like their data
    /// (`resource.sensitive.mask.annotations`).
    #[serde(default)]
    pub sensitive_annotations: Vec<String>,
}

impl DiffOptions {
    /// Options for `app`: its `spec.ignoreDifferences` plus system-level rules.
    pub fn for_app(app: &Application, system: &[ResourceIgnoreDifferences]) -> Self {
        let mut ignore_differences = app.spec.ignore_differences.clone().unwrap_or_default();
        ignore_differences.extend(system.iter().cloned());
        DiffOptions {
            mode: DiffMode::of_app(app, DiffMode::ClientSide),
            ignore_differences,
            field_manager: Some(crate::k8s::FIELD_MANAGER.to_owned()),
            ..DiffOptions::default()
        }
    }

    /// Check every pointer and jq expression once, so a bad rule becomes one application
    /// condition instead of an `Unknown` on each resource.
    pub fn validate(&self) -> Result<(), DiffError> {
        for rule in &self.ignore_differences {
            for p in rule.json_pointers.iter().flatten() {
                pointer::parse(p)?;
            }
            for e in rule.jq_path_expressions.iter().flatten() {
                jq::JqPath::parse(e)?;
            }
        }
        Ok(())
    }
}

/// The outcome of comparing one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDiff {
    /// Whether the normalized objects differ.
    pub modified: bool,
    /// Normalized live object, keys sorted, Secret values masked.
    pub normalized_live: Value,
    /// Normalized target object, keys sorted, Secret values masked.
    pub normalized_target: Value,
    /// RFC 6902 operations turning `normalized_live` into `normalized_target`.
    pub patch: Vec<JsonPatchOp>,
    /// Unified diff of the two as YAML (`--- live` / `+++ target`); empty when not modified.
    pub text: String,
}

/// Compare one object: `target` (desired, or predicted in server-side mode) against `live`.
pub fn diff(target: &Value, live: &Value, opts: &DiffOptions) -> Result<ResourceDiff, DiffError> {
    let key = key_of(target, "target")?;
    let live_key = key_of(live, "live")?;
    if live_key != key {
        return Err(DiffError::Mismatch {
            target: key.to_string(),
            live: live_key.to_string(),
        });
    }
    let rules = Rules::for_object(&key, Some(live), opts)?;
    // Three-way: what cairn applied last time (its `Apply` entry), so a field deleted from Git
    // shows as a difference instead of hiding among the fields the user never set.
    let applied = match (&opts.field_manager, opts.mode) {
        (Some(manager), DiffMode::ClientSide) => {
            Some(managed::FieldSet::of_applier(live, manager)?)
        }
        _ => None,
    };
    // ignoreAggregatedRoles: the controller manager fills an aggregated ClusterRole's rules.
    let aggregated =
        opts.ignore_aggregated_roles && [target, live].iter().any(|o| is_aggregated_role(o));

    let mut t = target.clone();
    let mut l = live.clone();
    for side in [&mut t, &mut l] {
        rules.normalize(side, opts);
        if aggregated && let Some(map) = side.as_object_mut() {
            map.shift_remove("rules");
        }
    }
    normalize::align_lists(&mut l, &t);
    if opts.mode == DiffMode::ClientSide {
        let mut guide = normalize::Guide::of_value(&t);
        // An empty set means cairn never applied this object: nothing to add (an empty set
        // would otherwise read as "owns the whole object").
        if let Some(applied) = applied.as_ref().filter(|a| !a.children.is_empty()) {
            guide = guide.merge(normalize::Guide::of_fields(applied, &l));
        }
        normalize::trim(&mut l, &guide);
        normalize::prune_empty(&mut l);
    }
    secret::mask_secrets(&mut [&mut t, &mut l], &opts.sensitive_annotations);
    Ok(render(patch::canonical(&t), patch::canonical(&l)))
}

/// Which side of a comparison an object is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    /// Desired (or predicted) only: it must be created.
    Target,
    /// Live only: extraneous, a prune candidate.
    Live,
}

/// The difference of an object that exists on one side only (to be created, or to be pruned),
/// normalized and masked like [`diff()`]'s, the other side `null`: what `cairn app diff` shows.
pub fn diff_one_side(
    obj: &Value,
    side: Side,
    opts: &DiffOptions,
) -> Result<ResourceDiff, DiffError> {
    let label = match side {
        Side::Target => "target",
        Side::Live => "live",
    };
    let key = key_of(obj, label)?;
    let live = (side == Side::Live).then_some(obj);
    let rules = Rules::for_object(&key, live, opts)?;
    let mut o = obj.clone();
    rules.normalize(&mut o, opts);
    secret::mask_secrets(&mut [&mut o], &opts.sensitive_annotations);
    let o = patch::canonical(&o);
    Ok(match side {
        Side::Target => render(o, Value::Null),
        Side::Live => render(Value::Null, o),
    })
}

fn render(t: Value, l: Value) -> ResourceDiff {
    // A one-sided difference reads as creating or deleting the whole document.
    let ops = match (l.is_null(), t.is_null()) {
        (true, false) => vec![JsonPatchOp::Add {
            path: String::new(),
            value: t.clone(),
        }],
        (false, true) => vec![JsonPatchOp::Remove {
            path: String::new(),
        }],
        _ => patch::json_patch(&l, &t),
    };
    let modified = !ops.is_empty();
    let yaml = |v: &Value| patch::to_yaml((!v.is_null()).then_some(v));
    let text = if modified {
        patch::unified(&yaml(&l), &yaml(&t), "live", "target")
    } else {
        String::new()
    };
    ResourceDiff {
        modified,
        normalized_live: l,
        normalized_target: t,
        patch: ops,
        text,
    }
}

fn is_aggregated_role(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("ClusterRole")
        && obj.get("aggregationRule").is_some_and(|r| !r.is_null())
}

/// The `ignoreDifferences` of one object, parsed.
struct Rules {
    pointers: Vec<Vec<pointer::Token>>,
    jqs: Vec<jq::JqPath>,
    /// Fields owned by `managedFieldsManagers` (read from the live object before normalization
    /// strips `managedFields`).
    owned: Option<managed::FieldSet>,
}

impl Rules {
    fn for_object(
        key: &ResourceKey,
        live: Option<&Value>,
        opts: &DiffOptions,
    ) -> Result<Self, DiffError> {
        let rules = matching_rules(key, &opts.ignore_differences);
        let managers: Vec<String> = rules
            .iter()
            .flat_map(|r| r.managed_fields_managers.iter().flatten().cloned())
            .collect();
        let owned = match live {
            Some(live) if !managers.is_empty() => {
                Some(managed::FieldSet::of_managers(live, &managers)?)
            }
            _ => None,
        };
        let pointers = rules
            .iter()
            .flat_map(|r| r.json_pointers.iter().flatten())
            .map(|p| pointer::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let jqs = rules
            .iter()
            .flat_map(|r| r.jq_path_expressions.iter().flatten())
            .map(|e| jq::JqPath::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Rules {
            pointers,
            jqs,
            owned,
        })
    }

    fn normalize(&self, side: &mut Value, opts: &DiffOptions) {
        secret::fold_string_data(side);
        normalize::strip_server_fields(side, opts.status);
        for p in &self.pointers {
            pointer::remove(side, p);
        }
        for q in &self.jqs {
            q.remove(side);
        }
        if let Some(owned) = &self.owned {
            owned.remove_from(side);
        }
        normalize::prune_empty(side);
    }
}

/// The identity of an object (`side` names it in errors).
pub fn key_of(obj: &Value, side: &'static str) -> Result<ResourceKey, DiffError> {
    let text = |ptr: &str| obj.pointer(ptr).and_then(Value::as_str);
    let missing = |what: &str| DiffError::InvalidObject {
        side,
        reason: format!("no {what}"),
    };
    let api_version = text("/apiVersion").ok_or_else(|| missing("apiVersion"))?;
    let kind = text("/kind").ok_or_else(|| missing("kind"))?;
    let name = text("/metadata/name").ok_or_else(|| missing("metadata.name"))?;
    Ok(ResourceKey::from_api_version(
        api_version,
        kind,
        text("/metadata/namespace"),
        name,
    ))
}

/// Rules that apply to `key`: group and kind as `*` globs, name and namespace exact when set.
fn matching_rules<'r>(
    key: &ResourceKey,
    rules: &'r [ResourceIgnoreDifferences],
) -> Vec<&'r ResourceIgnoreDifferences> {
    rules
        .iter()
        .filter(|r| {
            glob(r.group.as_deref().unwrap_or(""), &key.group)
                && glob(r.kind.as_deref().unwrap_or(""), &key.kind)
                && r.name
                    .as_deref()
                    .is_none_or(|n| n.is_empty() || n == key.name)
                && r.namespace
                    .as_deref()
                    .is_none_or(|ns| ns.is_empty() || Some(ns) == key.namespace.as_deref())
        })
        .collect()
}

/// `*` matches any run of characters; everything else literally. (Argo CD's glob library also
/// knows `?`, `[...]` and `{a,b}`; group and kind patterns in the wild use `*` only.)
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Argo CD's per-resource sync status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SyncStatusCode {
    /// Live equals desired after normalization.
    Synced,
    /// Missing, extraneous, or different.
    OutOfSync,
    /// The comparison failed.
    Unknown,
}

impl SyncStatusCode {
    /// The string Argo CD writes in `.status.sync.status` and `.status.resources[].status`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatusCode::Synced => "Synced",
            SyncStatusCode::OutOfSync => "OutOfSync",
            SyncStatusCode::Unknown => "Unknown",
        }
    }
}

/// The comparison of one resource of an application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceComparison {
    /// The resource.
    pub key: ResourceKey,
    /// Its sync status.
    pub status: SyncStatusCode,
    /// Live but not desired: a prune candidate.
    pub requires_pruning: bool,
    /// Extraneous, but `IgnoreExtraneous` keeps it out of the application's status.
    pub ignore_extraneous: bool,
    /// The difference (one-sided for a missing or extraneous object), unless it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<ResourceDiff>,
    /// Why the comparison failed (status `Unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ResourceComparison {
    /// Keep a one-sided diff; its failure (an unreadable rule) leaves the status as it is, since
    /// a missing or extraneous object is out of sync whatever the rules say.
    fn record(&mut self, d: Result<ResourceDiff, DiffError>) {
        match d {
            Ok(d) => self.diff = Some(d),
            Err(e) => self.error = Some(e.to_string()),
        }
    }
}

/// The comparison of a whole application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppComparison {
    /// Aggregated status (see the module invariants).
    pub status: SyncStatusCode,
    /// Every non-hook resource, sorted by key.
    pub resources: Vec<ResourceComparison>,
    /// Objects that could not be identified (no kind, name…), with the reason; they make the
    /// application `Unknown` unless something is `OutOfSync`.
    pub errors: Vec<String>,
    /// Repeated objects (same identity twice on one side): the last is compared, as Argo CD
    /// does with its `RepeatedResourceWarning` condition.
    pub warnings: Vec<String>,
}

impl AppComparison {
    /// Resources found in sync (the planner's `in_sync`, for `ApplyOutOfSyncOnly`).
    pub fn in_sync(&self) -> BTreeSet<ResourceKey> {
        self.resources
            .iter()
            .filter(|r| r.status == SyncStatusCode::Synced)
            .map(|r| r.key.clone())
            .collect()
    }
}

/// Whether `obj` carries `name` in its comma-separated `compare-options` annotation.
pub fn has_compare_option(obj: &Value, name: &str) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(COMPARE_OPTIONS))
        .and_then(Value::as_str)
        .is_some_and(|v| v.split(',').any(|o| o.trim() == name))
}

/// Compare one resource given either side (at least one).
pub fn compare_resource(
    key: ResourceKey,
    target: Option<&Value>,
    live: Option<&Value>,
    opts: &DiffOptions,
) -> ResourceComparison {
    let mut out = ResourceComparison {
        key,
        status: SyncStatusCode::OutOfSync,
        requires_pruning: false,
        ignore_extraneous: false,
        diff: None,
        error: None,
    };
    match (target, live) {
        (Some(t), Some(l)) => match diff(t, l, opts) {
            Ok(d) => {
                if !d.modified {
                    out.status = SyncStatusCode::Synced;
                }
                out.diff = Some(d);
            }
            Err(e) => {
                out.status = SyncStatusCode::Unknown;
                out.error = Some(e.to_string());
            }
        },
        (None, Some(l)) => {
            out.requires_pruning = true;
            out.ignore_extraneous = has_compare_option(l, "IgnoreExtraneous");
            out.record(diff_one_side(l, Side::Live, opts));
        }
        // Missing live object: the resource must be created.
        (Some(t), None) => out.record(diff_one_side(t, Side::Target, opts)),
        (None, None) => {}
    }
    out
}

/// Compare an application's desired objects with its live ones (those tracked to it and those
/// sharing a desired object's identity), pairing them by [`ResourceKey`]. Desired objects must
/// already carry their namespace (the destination's, for namespaced kinds).
pub fn compare_app(desired: &[Value], live: &[Value], opts: &DiffOptions) -> AppComparison {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut pairs: BTreeMap<ResourceKey, (Option<&Value>, Option<&Value>)> = BTreeMap::new();
    for (side, objs) in [("target", desired), ("live", live)] {
        for (i, obj) in objs.iter().enumerate() {
            let key = match key_of(obj, side) {
                Ok(k) => k,
                Err(e) => {
                    errors.push(format!("{side} object #{i}: {e}"));
                    continue;
                }
            };
            // Hooks are not part of the desired state Argo CD compares; a hook annotation
            // that cannot be read is the planner's error to report, so such an object is compared.
            if matches!(classify(obj, &key), Ok(c) if c != Classification::Resource) {
                continue;
            }
            let entry = pairs.entry(key.clone()).or_default();
            let slot = if side == "target" {
                &mut entry.0
            } else {
                &mut entry.1
            };
            if slot.replace(obj).is_some() {
                // Argo CD's RepeatedResourceWarning: the last one wins, and the user is told.
                warnings.push(format!(
                    "{side} object {key} appears more than once; the last one is compared"
                ));
            }
        }
    }
    let resources: Vec<ResourceComparison> = pairs
        .into_iter()
        .map(|(key, (t, l))| compare_resource(key, t, l, opts))
        .collect();
    let status = aggregate(&resources, !errors.is_empty());
    AppComparison {
        status,
        resources,
        errors,
        warnings,
    }
}

/// Application status: `OutOfSync` if any counted resource is (an extraneous resource with
/// `IgnoreExtraneous` does not count), else `Unknown` if any comparison failed, else `Synced`.
pub fn aggregate(resources: &[ResourceComparison], had_errors: bool) -> SyncStatusCode {
    let counted = resources.iter().filter(|r| !r.ignore_extraneous);
    let mut status = if had_errors {
        SyncStatusCode::Unknown
    } else {
        SyncStatusCode::Synced
    };
    for r in counted {
        match r.status {
            SyncStatusCode::OutOfSync => return SyncStatusCode::OutOfSync,
            SyncStatusCode::Unknown => status = SyncStatusCode::Unknown,
            SyncStatusCode::Synced => {}
        }
    }
    status
}
