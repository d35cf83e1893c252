//! `podSpecPatch`: the strategic merge Argo applies to a built pod spec
//! (`strategicpatch.StrategicMergePatch(spec, patch, PodSpec{})` in argo-workflows'
//! `workflow/controller/workflowpod.go`), for the fields users patch.
//!
//! Rules (Kubernetes' strategic merge patch on core/v1 PodSpec):
//! - objects merge key by key; `null` deletes a key;
//! - lists with a merge key merge element-wise: [`MERGE_KEYS`] (`containers`, `initContainers`,
//!   `ephemeralContainers`, `volumes`, `imagePullSecrets`, `env` by `name`; `volumeMounts` by
//!   `mountPath`; `ports` by `containerPort`; `hostAliases` by `ip`) — a patch element whose key
//!   matches merges into that element, the others are appended; an element
//!   `{"$patch": "delete", <key>: ...}` removes the match;
//! - every other list (tolerations, args, command...) and every scalar is replaced.
//!
//! Pure; the base is modified in place.

use serde_json::{Map, Value};

/// Lists merged element-wise, and the key that identifies an element (PodSpec's
/// `patchMergeKey`s for the fields users patch).
pub const MERGE_KEYS: &[(&str, &str)] = &[
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("volumes", "name"),
    ("imagePullSecrets", "name"),
    ("env", "name"),
    ("volumeMounts", "mountPath"),
    ("ports", "containerPort"),
    ("hostAliases", "ip"),
];

/// Applies `patch` to `base` (both JSON; the patch an object).
pub fn strategic_merge(base: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *base = patch.clone();
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    let Value::Object(base) = base else {
        return;
    };
    for (key, value) in patch {
        match value {
            Value::Null => {
                base.remove(key);
            }
            Value::Object(_) => {
                let slot = base.entry(key.clone()).or_insert(Value::Null);
                strategic_merge(slot, value);
            }
            Value::Array(items) => match merge_key(key) {
                Some(merge_key) => {
                    let slot = base
                        .entry(key.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if !slot.is_array() {
                        *slot = Value::Array(Vec::new());
                    }
                    if let Value::Array(list) = slot {
                        merge_list(list, items, merge_key);
                    }
                }
                None => {
                    base.insert(key.clone(), value.clone());
                }
            },
            scalar => {
                base.insert(key.clone(), scalar.clone());
            }
        }
    }
}

fn merge_key(field: &str) -> Option<&'static str> {
    MERGE_KEYS
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, key)| *key)
}

fn merge_list(list: &mut Vec<Value>, patch: &[Value], key: &str) {
    for item in patch {
        let id = item.get(key).filter(|v| !v.is_null());
        let position = id.and_then(|id| list.iter().position(|e| e.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                list.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => strategic_merge(&mut list[i], item),
            (None, false) => list.push(item.clone()),
        }
    }
}
