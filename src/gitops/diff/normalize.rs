//! Normalization applied to both sides before comparing: server-set fields, status, defaults,
//! and (client-side mode) the fields neither the user nor cairn's last apply set.

use std::collections::BTreeMap;

use serde_json::Value;

use super::managed::{FieldSet, PathElement, locate};
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

/// The shape of what a client-side comparison keeps of a live object: the fields the desired
/// object sets, plus (three-way) the fields cairn's field manager applied last time, so a field
/// removed from Git but still live is a difference, as server-side apply would remove it.
#[derive(Clone, Debug, PartialEq)]
pub enum Guide {
    /// Keep the whole value.
    All,
    /// Keep these keys, each trimmed by its guide.
    Map(BTreeMap<String, Guide>),
    /// Trim items by position; live items beyond the list are kept whole.
    List(Vec<Guide>),
    /// Keep nothing of a map (a list position no one set).
    Nothing,
}

impl Guide {
    /// The shape of a desired value.
    pub fn of_value(value: &Value) -> Guide {
        match value {
            Value::Object(m) => Guide::Map(
                m.iter()
                    .map(|(k, v)| (k.clone(), Guide::of_value(v)))
                    .collect(),
            ),
            Value::Array(a) => Guide::List(a.iter().map(Guide::of_value).collect()),
            _ => Guide::All,
        }
    }

    /// The shape of a managed field set over the live value it describes: map fields by name,
    /// list items (`k:`, `v:`, `i:`) at the position they hold in `live`.
    pub fn of_fields(set: &FieldSet, live: &Value) -> Guide {
        if set.children.is_empty() {
            return Guide::All;
        }
        match live {
            Value::Object(m) => Guide::Map(
                set.children
                    .iter()
                    .filter_map(|(e, sub)| match e {
                        PathElement::Field(name) => Some((
                            name.clone(),
                            Guide::of_fields(sub, m.get(name).unwrap_or(&Value::Null)),
                        )),
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Array(items) => {
                let mut positions: Vec<Guide> = Vec::new();
                for (e, sub) in &set.children {
                    let Some(i) = locate(e, items) else {
                        continue;
                    };
                    if positions.len() <= i {
                        positions.resize(i + 1, Guide::Nothing);
                    }
                    let item = items.get(i).unwrap_or(&Value::Null);
                    let current = std::mem::replace(&mut positions[i], Guide::Nothing);
                    positions[i] = current.merge(Guide::of_fields(sub, item));
                }
                Guide::List(positions)
            }
            _ => Guide::All,
        }
    }

    /// The union of two shapes.
    pub fn merge(self, other: Guide) -> Guide {
        match (self, other) {
            (Guide::Nothing, g) | (g, Guide::Nothing) => g,
            (Guide::Map(mut a), Guide::Map(b)) => {
                for (k, g) in b {
                    let merged = match a.remove(&k) {
                        Some(existing) => existing.merge(g),
                        None => g,
                    };
                    a.insert(k, merged);
                }
                Guide::Map(a)
            }
            (Guide::List(a), Guide::List(b)) => {
                let (mut long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
                for (i, g) in short.into_iter().enumerate() {
                    if let Some(slot) = long.get_mut(i) {
                        let current = std::mem::replace(slot, Guide::Nothing);
                        *slot = current.merge(g);
                    }
                }
                Guide::List(long)
            }
            // All absorbs everything; a map against a list keeps the value whole.
            _ => Guide::All,
        }
    }
}

/// Client-side mode: keep in `live` only what `guide` names, as Argo CD's legacy diff ignores
/// fields the user never wrote (defaults, fields other controllers add). Maps are trimmed key by
/// key; lists item by item, by position, over the items the guide has; live items beyond that
/// are kept whole, so an extra item is a difference showing just itself. A value whose type
/// differs from the guide's is kept whole: the difference is real.
pub fn trim(live: &mut Value, guide: &Guide) {
    match (live, guide) {
        (Value::Object(l), Guide::Map(g)) => {
            l.retain(|k, _| g.contains_key(k));
            for (k, lv) in l.iter_mut() {
                if let Some(sub) = g.get(k) {
                    trim(lv, sub);
                }
            }
        }
        (Value::Array(l), Guide::List(g)) => {
            for (lv, sub) in l.iter_mut().zip(g) {
                trim(lv, sub);
            }
        }
        (Value::Object(l), Guide::Nothing) => l.clear(),
        _ => {}
    }
}

/// Lists of the built-in kinds whose items Kubernetes merges by a key (strategic merge patch
/// `patchMergeKey`), by field name, with the candidate keys (ports: `containerPort` in a
/// container, `port` in a Service).
const MERGE_KEYS: &[(&str, &[&str])] = &[
    ("containers", &["name"]),
    ("initContainers", &["name"]),
    ("ephemeralContainers", &["name"]),
    ("env", &["name"]),
    ("volumes", &["name"]),
    ("volumeMounts", &["mountPath"]),
    ("volumeDevices", &["devicePath"]),
    ("imagePullSecrets", &["name"]),
    ("ports", &["containerPort", "port"]),
    ("hostAliases", &["ip"]),
];

/// Put the items of known merge-keyed lists of `live` in the order of `desired` (items only
/// live go last, in their live order), so a webhook inserting a container first, or a list
/// reordered by a controller, is compared item to item as Kubernetes merges them. A list is
/// aligned only when every item on both sides has the key and the desired keys are unique;
/// any other list stays positional.
pub fn align_lists(live: &mut Value, desired: &Value) {
    match (live, desired) {
        (Value::Object(l), Value::Object(d)) => {
            for (field, lv) in l.iter_mut() {
                let Some(dv) = d.get(field) else {
                    continue;
                };
                if let (Value::Array(items), Value::Array(want)) = (&mut *lv, dv)
                    && let Some((_, keys)) = MERGE_KEYS.iter().find(|(f, _)| f == field)
                    && let Some(key) = keys.iter().find(|k| keyed(want, k) && keyed(items, k))
                {
                    reorder(items, want, key);
                }
                align_lists(lv, dv);
            }
        }
        (Value::Array(l), Value::Array(d)) => {
            for (lv, dv) in l.iter_mut().zip(d) {
                align_lists(lv, dv);
            }
        }
        _ => {}
    }
}

fn keyed(items: &[Value], key: &str) -> bool {
    let mut seen = Vec::new();
    items.iter().all(|item| match item.get(key) {
        Some(k @ (Value::String(_) | Value::Number(_))) if !seen.contains(&k) => {
            seen.push(k);
            true
        }
        _ => false,
    })
}

fn reorder(items: &mut Vec<Value>, want: &[Value], key: &str) {
    let mut rest = std::mem::take(items);
    for w in want {
        if let Some(i) = rest.iter().position(|item| item.get(key) == w.get(key)) {
            items.push(rest.remove(i));
        }
    }
    items.append(&mut rest);
}
