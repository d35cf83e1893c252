//! Normalization applied to both sides before comparing: server-set fields, status, defaults,
//! and (client-side mode) the fields the user did not set.

use serde_json::Value;

use super::{LAST_APPLIED, StatusComparison};
use crate::gitops::sync::TRACKING_ID;

/// `metadata` fields the API server sets; never in Git, never a difference.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Annotations that are bookkeeping, not desired state: kubectl's copy of the last apply (it
/// would otherwise differ on every edit, and holds Secret values), and the tracking id, which
/// cairn writes at apply time and the sync planner checks on its own (`FailOnSharedResource`).
const BOOKKEEPING_ANNOTATIONS: &[&str] = &[LAST_APPLIED, TRACKING_ID];

/// Remove server-set metadata, bookkeeping annotations and, per `status`, `.status`.
pub fn strip_server_fields(obj: &mut Value, status: StatusComparison) {
    let is_crd = obj.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
        && obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("apiextensions.k8s.io/"));
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let drop_status = match status {
        StatusComparison::IgnoreAll => true,
        StatusComparison::IgnoreCrdOnly => is_crd,
        StatusComparison::Compare => false,
    };
    if drop_status {
        map.shift_remove("status");
    }
    let Some(Value::Object(meta)) = map.get_mut("metadata") else {
        return;
    };
    for field in SERVER_METADATA {
        meta.shift_remove(*field);
    }
    if let Some(Value::Object(annotations)) = meta.get_mut("annotations") {
        for a in BOOKKEEPING_ANNOTATIONS {
            annotations.shift_remove(*a);
        }
    }
}

/// Treat `null`, `{}` and `[]` as absent, recursively (children first, so a map that only held
/// empties goes too): Kubernetes drops them on write (`annotations: {}`, `env: []`,
/// `creationTimestamp: null` in generated manifests), so they are never a real difference.
pub fn prune_empty(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                prune_empty(v);
            }
            map.retain(|_, v| !is_empty(v));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Client-side mode: keep in `live` only what `desired` sets, as Argo CD's two-way diff does for
/// fields the user never wrote (defaults, fields other controllers add). Maps are trimmed key by
/// key; lists item by item, by position, over the items both have; live items beyond the
/// desired list's length are kept whole, so an extra item is a difference showing just itself.
pub fn trim_to_desired(live: &mut Value, desired: &Value) {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            l.retain(|k, _| d.contains_key(k));
            for (k, lv) in l.iter_mut() {
                if let Some(dv) = d.get(k) {
                    trim_to_desired(lv, dv);
                }
            }
        }
        (Value::Array(l), Value::Array(d)) => {
            for (lv, dv) in l.iter_mut().zip(d) {
                trim_to_desired(lv, dv);
            }
        }
        _ => {}
    }
}
