//! Secret masking: no Secret value ever leaves the diff, yet a change is still visible.
//!
//! Argo CD's scheme (gitops-engine `HideSecretData`): every distinct value seen under a key
//! (across the objects masked together, in the order given: target, live) gets its own run of
//! `+` characters, the first `++++++++` (8), each next one 4 longer. Equal values on both sides get the same marker, so "no change" looks equal;
//! different values get markers of different length, so a change still shows as a change.
//!
//! Invariants: after [`mask_secrets`], no `data`/`stringData` value of a Secret is present in
//! either object, nor in its `kubectl.kubernetes.io/last-applied-configuration` annotation (its
//! `data`/`stringData` are masked with the same markers, or the whole annotation is replaced
//! when it cannot be parsed). Annotations named as sensitive (Argo CD's
//! `resource.sensitive.mask.annotations`) are masked on Secrets by the same scheme. Objects
//! that are not `v1` Secrets are left untouched.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::LAST_APPLIED;

/// The first marker: 8 `+`, as Argo CD writes it.
const FIRST_MARKER_LEN: usize = 8;

/// How much longer each further distinct value's marker is, as in Argo CD.
const MARKER_STEP: usize = 4;

/// Whether `obj` is a core-group Secret.
pub fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Mask one object alone (for display of a single object, e.g. `cairn app manifests`).
pub fn mask_secret(obj: &mut Value) {
    mask_secrets(&mut [obj], &[]);
}

/// Mask a set of versions of the same Secret together (target, live, ...), so equal values get
/// equal markers; also the values of the `sensitive_annotations`. Non-Secret objects in the set
/// are left as they are.
pub fn mask_secrets(objs: &mut [&mut Value], sensitive_annotations: &[String]) {
    // Per (field, key), distinct values in first-seen order → marker.
    let mut markers: BTreeMap<(&'static str, String), Vec<String>> = BTreeMap::new();
    let mut marker_for = |field: &'static str, key: &str, value: &Value| -> Value {
        let text = value.to_string();
        let seen = markers.entry((field, key.to_owned())).or_default();
        let n = match seen.iter().position(|v| *v == text) {
            Some(n) => n,
            None => {
                seen.push(text);
                seen.len() - 1
            }
        };
        Value::String("+".repeat(FIRST_MARKER_LEN + MARKER_STEP * n))
    };
    for obj in objs.iter_mut() {
        if !is_secret(obj) {
            continue;
        }
        mask_data(obj, &mut marker_for);
        let Some(annotations) = obj
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for (k, v) in annotations.iter_mut() {
            if k != LAST_APPLIED && sensitive_annotations.contains(k) {
                *v = marker_for("annotations", k, v);
            }
        }
        let Some(Value::String(applied)) = annotations.get_mut(LAST_APPLIED) else {
            continue;
        };
        *applied = match serde_json::from_str::<Value>(applied) {
            Ok(mut inner) if inner.is_object() => {
                mask_data(&mut inner, &mut marker_for);
                inner.to_string()
            }
            // Unparseable: the values may be anywhere in it, so none of it is shown.
            _ => "+".repeat(FIRST_MARKER_LEN),
        };
    }
}

fn mask_data(obj: &mut Value, marker_for: &mut impl FnMut(&'static str, &str, &Value) -> Value) {
    for field in ["data", "stringData"] {
        match obj.get_mut(field) {
            Some(Value::Object(map)) => {
                let masked: Map<String, Value> = map
                    .iter()
                    // stringData was folded into data before a comparison; for display
                    // of a lone object both share the key's markers.
                    .map(|(k, v)| (k.clone(), marker_for("data", k, v)))
                    .collect();
                *map = masked;
            }
            // Not a map (malformed): hide it whole rather than risk showing a value.
            Some(other) if !other.is_null() => *other = Value::String("+".repeat(FIRST_MARKER_LEN)),
            _ => {}
        }
    }
}

/// Fold `stringData` into `data` (base64), as the API server does on write, so a desired
/// Secret written with `stringData` compares equal to the live one holding `data`.
pub fn fold_string_data(obj: &mut Value) {
    if !is_secret(obj) {
        return;
    }
    let Some(Value::Object(string_data)) = obj
        .as_object_mut()
        .and_then(|m| m.shift_remove("stringData"))
    else {
        return;
    };
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (k, v) in string_data {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data.insert(k, Value::String(base64(text.as_bytes())));
        }
    }
}

/// Standard base64 with padding (RFC 4648 §4), the encoding of a Secret's `data`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
pub(super) fn base64_for_tests(bytes: &[u8]) -> String {
    base64(bytes)
}
