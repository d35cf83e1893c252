//! Presentation of a difference: an RFC 6902 patch (live → target) and a unified diff of YAML.
//!
//! Invariants: output is deterministic — object keys are sorted before anything is rendered,
//! patch operations follow sorted key order and, in arrays, descending indices for removals
//! (so the patch applies in order) — and lists are compared by position (see the parent
//! module's docs).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::pointer::escape;

/// One RFC 6902 operation turning the normalized live object into the normalized target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum JsonPatchOp {
    /// Add `value` at `path`.
    Add {
        /// RFC 6901 pointer.
        path: String,
        /// The value in the target.
        value: Value,
    },
    /// Remove what is at `path`.
    Remove {
        /// RFC 6901 pointer.
        path: String,
    },
    /// Replace what is at `path` by `value`.
    Replace {
        /// RFC 6901 pointer.
        path: String,
        /// The value in the target.
        value: Value,
    },
}

/// Sort every object's keys, recursively (serde_json keeps insertion order in this crate).
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let sorted: Map<String, Value> = keys
                .into_iter()
                .filter_map(|k| map.get(k).map(|v| (k.clone(), canonical(v))))
                .collect();
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

/// The operations turning `live` into `target` (both canonical).
pub fn json_patch(live: &Value, target: &Value) -> Vec<JsonPatchOp> {
    let mut ops = Vec::new();
    walk(live, target, String::new(), &mut ops);
    ops
}

fn walk(live: &Value, target: &Value, path: String, ops: &mut Vec<JsonPatchOp>) {
    match (live, target) {
        (Value::Object(l), Value::Object(t)) => {
            let mut keys: Vec<&String> = l.keys().chain(t.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let p = format!("{path}/{}", escape(key));
                match (l.get(key), t.get(key)) {
                    (Some(lv), Some(tv)) => walk(lv, tv, p, ops),
                    (Some(_), None) => ops.push(JsonPatchOp::Remove { path: p }),
                    (None, Some(tv)) => ops.push(JsonPatchOp::Add {
                        path: p,
                        value: tv.clone(),
                    }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(l), Value::Array(t)) => {
            for (i, (lv, tv)) in l.iter().zip(t).enumerate() {
                walk(lv, tv, format!("{path}/{i}"), ops);
            }
            for i in (t.len()..l.len()).rev() {
                ops.push(JsonPatchOp::Remove {
                    path: format!("{path}/{i}"),
                });
            }
            for (i, tv) in t.iter().enumerate().skip(l.len()) {
                ops.push(JsonPatchOp::Add {
                    path: format!("{path}/{i}"),
                    value: tv.clone(),
                });
            }
        }
        (l, t) if l == t => {}
        // 1 and 1.0 are one quantity (YAML and JSON writers disagree on which they emit).
        (Value::Number(l), Value::Number(t)) if l.as_f64() == t.as_f64() => {}
        (_, t) => ops.push(JsonPatchOp::Replace {
            path,
            value: t.clone(),
        }),
    }
}

/// Render a canonical value as YAML (`null` for an absent object).
pub fn to_yaml(value: Option<&Value>) -> String {
    match value {
        None => String::new(),
        // Serializing a serde_json::Value cannot meet a non-string key or a custom error; the
        // JSON text is a faithful (if less readable) fallback should the YAML writer refuse.
        Some(v) => serde_saphyr::to_string(v).unwrap_or_else(|_| format!("{v:#}\n")),
    }
}

/// Past this many differing lines (product of both sides) the line diff gives up on finding
/// the shortest edit and shows the changed middle as removed then added: bounded memory for
/// huge objects (a CRD schema), still correct output.
const LCS_CELL_LIMIT: usize = 4_000_000;

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Edit {
    Keep,
    Del,
    Ins,
}

/// A unified diff of two texts (`--- live` / `+++ target`); empty when they are equal.
pub fn unified(live: &str, target: &str, live_name: &str, target_name: &str) -> String {
    let a: Vec<&str> = live.lines().collect();
    let b: Vec<&str> = target.lines().collect();
    let script = edit_script(&a, &b);
    if script.iter().all(|(e, _, _)| *e == Edit::Keep) {
        return String::new();
    }
    let mut out = format!("--- {live_name}\n+++ {target_name}\n");
    // Group edits into hunks with CONTEXT lines around changes.
    let changed: Vec<usize> = script
        .iter()
        .enumerate()
        .filter(|(_, (e, _, _))| *e != Edit::Keep)
        .map(|(i, _)| i)
        .collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &i in &changed {
        let start = i.saturating_sub(CONTEXT);
        let end = (i + CONTEXT + 1).min(script.len());
        match hunks.last_mut() {
            Some((_, e)) if start <= *e => *e = end,
            _ => hunks.push((start, end)),
        }
    }
    for (start, end) in hunks {
        let slice = &script[start..end];
        let a_start = slice.iter().find_map(|(_, ai, _)| *ai);
        let b_start = slice.iter().find_map(|(_, _, bi)| *bi);
        let a_len = slice.iter().filter(|(e, _, _)| *e != Edit::Ins).count();
        let b_len = slice.iter().filter(|(e, _, _)| *e != Edit::Del).count();
        // `diff -u` numbers an empty side by the line before it.
        let a_line = a_start.map_or_else(|| before(&script[..start], true), |i| i + 1);
        let b_line = b_start.map_or_else(|| before(&script[..start], false), |i| i + 1);
        out.push_str(&format!("@@ -{a_line},{a_len} +{b_line},{b_len} @@\n"));
        for (edit, ai, bi) in slice {
            let (sign, line) = match edit {
                Edit::Keep => (' ', ai.and_then(|i| a.get(i))),
                Edit::Del => ('-', ai.and_then(|i| a.get(i))),
                Edit::Ins => ('+', bi.and_then(|i| b.get(i))),
            };
            out.push(sign);
            out.push_str(line.copied().unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

fn before(prefix: &[(Edit, Option<usize>, Option<usize>)], live_side: bool) -> usize {
    prefix
        .iter()
        .filter(|(e, _, _)| {
            if live_side {
                *e != Edit::Ins
            } else {
                *e != Edit::Del
            }
        })
        .count()
}

/// (edit, index in a, index in b) for every line, by longest common subsequence over the part
/// between the common prefix and suffix.
fn edit_script(a: &[&str], b: &[&str]) -> Vec<(Edit, Option<usize>, Option<usize>)> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut script: Vec<_> = (0..prefix)
        .map(|i| (Edit::Keep, Some(i), Some(i)))
        .collect();
    if am.len().saturating_mul(bm.len()) > LCS_CELL_LIMIT {
        script.extend((0..am.len()).map(|i| (Edit::Del, Some(prefix + i), None)));
        script.extend((0..bm.len()).map(|j| (Edit::Ins, None, Some(prefix + j))));
    } else {
        // lcs[i][j]: LCS length of am[i..] and bm[j..].
        let w = bm.len() + 1;
        let mut lcs = vec![0u32; (am.len() + 1) * w];
        for i in (0..am.len()).rev() {
            for j in (0..bm.len()).rev() {
                lcs[i * w + j] = if am[i] == bm[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < am.len() || j < bm.len() {
            if i < am.len() && j < bm.len() && am[i] == bm[j] {
                script.push((Edit::Keep, Some(prefix + i), Some(prefix + j)));
                i += 1;
                j += 1;
            } else if i < am.len() && (j == bm.len() || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])
            {
                // Deletions before insertions, as `diff -u` shows a replaced line.
                script.push((Edit::Del, Some(prefix + i), None));
                i += 1;
            } else {
                script.push((Edit::Ins, None, Some(prefix + j)));
                j += 1;
            }
        }
    }
    let (a_off, b_off) = (a.len() - suffix, b.len() - suffix);
    script.extend((0..suffix).map(|k| (Edit::Keep, Some(a_off + k), Some(b_off + k))));
    script
}
