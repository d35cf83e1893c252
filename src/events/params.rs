//! Trigger parameterization (Argo Events' `parameters`) and the effectively-once name of the
//! Workflow an `argoWorkflow` trigger creates.
//!
//! A parameter's value comes from the event of `src.dependencyName`:
//! - `dataKey` / `dataTemplate` read the event data, `contextKey` / `contextTemplate` its context
//!   (data wins when both are set); a template ([`super::gotemplate`], `.Input` = the JSON) is
//!   tried first, then the gjson key; then `value` (the default); otherwise an error. Without any
//!   key or template the value is `value`, or the whole event as JSON.
//! - A dependency without an event (possible under `||` conditions) yields `value`, or no
//!   value at all: the parameter is skipped.
//! - `operation`: `overwrite` (default) replaces the field at `dest`; `append` / `prepend` join
//!   the existing field's text and the value as strings (Argo: `append` puts the value after).
//! - The value is inserted as a string, except with `useRawData: true` where a number, bool,
//!   null, object or list found by a key is inserted as JSON (a string stays a string; template
//!   results, defaults and joined values are strings).
//! - `dest` is an sjson path: dotted keys with `\` escapes, array indices, `-1` to append to an
//!   array; missing objects are created (arrays when the next key is an index, padded with
//!   null); `:123` forces an object key.
//!
//! [`workflow_name`] derives a Workflow's name from the sensor, the trigger and the ids of the
//! events it fires with, so a redelivered event resolves to the same name and the create is a
//! no-op (AlreadyExists) instead of a second Workflow.
//!
//! Invariants: pure; errors name the trigger and the parameter index.

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::event::Event;
use super::gotemplate;
use super::types::{TriggerParameter, TriggerParameterSource};
use crate::gjson;

/// Kubernetes names that end up in label values must fit 63 characters.
const MAX_NAME: usize = 63;
/// Hex digits of the name suffix (40 bits: collisions need ~10^6 triggers of one prefix).
const SUFFIX_LEN: usize = 10;

/// A parameter that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    /// Resolving or inserting parameter `index` of `trigger` failed.
    #[error("trigger {trigger}: {field}[{index}]: {message}")]
    Parameter {
        /// Trigger name.
        trigger: String,
        /// `parameters` or `template.argoWorkflow.parameters`...
        field: String,
        /// Index in that list.
        index: usize,
        /// What went wrong.
        message: String,
    },
}

impl ParamError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ParamError::Parameter { .. } => "parameter",
        }
    }
}

/// A resolved value: its text, and the JSON to insert with `useRawData` (non-strings only).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The value as a string.
    pub text: String,
    /// The JSON value when it was found by a key and is not a string.
    pub raw: Option<Value>,
}

impl Resolved {
    fn text(text: String) -> Self {
        Resolved { text, raw: None }
    }
}

/// Resolves a parameter source against the fired events (dependency → event). `Ok(None)`: the
/// dependency has no event and there is no default, so the parameter is skipped.
pub fn resolve(
    src: &TriggerParameterSource,
    events: &BTreeMap<String, Event>,
) -> Result<Option<Resolved>, String> {
    let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let Some(event) = events.get(&src.dependency_name) else {
        return Ok(src.value.clone().map(Resolved::text));
    };
    let (data_key, data_tpl) = (nonempty(&src.data_key), nonempty(&src.data_template));
    let (ctx_key, ctx_tpl) = (nonempty(&src.context_key), nonempty(&src.context_template));
    let (payload, key, template) = if data_key.is_some() || data_tpl.is_some() {
        (event.data.clone(), data_key, data_tpl)
    } else if ctx_key.is_some() || ctx_tpl.is_some() {
        (event.context_json(), ctx_key, ctx_tpl)
    } else {
        return Ok(Some(Resolved::text(match &src.value {
            Some(v) => v.clone(),
            None => event.to_json().to_string(),
        })));
    };
    let mut why = Vec::new();
    if let Some(t) = &template {
        match gotemplate::render_input(t, &payload) {
            Ok(out) if !out.is_empty() && out != "<no value>" => {
                return Ok(Some(Resolved::text(out)));
            }
            Ok(_) => why.push(format!(
                "template {t:?} evaluated to an empty string or no value"
            )),
            Err(e) => why.push(format!("template {t:?}: {e}")),
        }
    }
    if let Some(k) = &key {
        match gjson::get(&payload, k) {
            Some(Value::String(s)) => return Ok(Some(Resolved::text(s))),
            Some(Value::Null) => {
                return Ok(Some(Resolved {
                    text: "null".into(),
                    raw: Some(Value::Null),
                }));
            }
            Some(v) => {
                return Ok(Some(Resolved {
                    text: v.to_string(),
                    raw: Some(v),
                }));
            }
            None => why.push(format!(
                "key '{k}' not found in the event of dependency {:?}",
                src.dependency_name
            )),
        }
    }
    if let Some(v) = &src.value {
        return Ok(Some(Resolved::text(v.clone())));
    }
    Err(format!("no value and no default: {}", why.join("; ")))
}

/// Applies `params` to `doc` in order (Argo's `ApplyParams`); `field` names the list in errors.
pub fn apply(
    doc: &mut Value,
    params: &[TriggerParameter],
    events: &BTreeMap<String, Event>,
    trigger: &str,
    field: &str,
) -> Result<(), ParamError> {
    for (index, p) in params.iter().enumerate() {
        let err = |message: String| ParamError::Parameter {
            trigger: trigger.to_owned(),
            field: field.to_owned(),
            index,
            message,
        };
        let src = p
            .src
            .as_ref()
            .ok_or_else(|| err("src is required".into()))?;
        if p.dest.is_empty() {
            return Err(err("dest is required".into()));
        }
        let Some(mut value) = resolve(src, events).map_err(err)? else {
            continue;
        };
        match p.operation.as_deref().unwrap_or("") {
            "" | "overwrite" => {}
            op @ ("append" | "prepend") => {
                if let Some(current) = gjson::get(doc, &p.dest) {
                    let current = gjson::string(&current);
                    value.text = if op == "append" {
                        current + &value.text
                    } else {
                        value.text + &current
                    };
                    value.raw = None;
                }
            }
            other => {
                return Err(err(format!(
                    "unsupported operation {other:?} (expected overwrite, append or prepend)"
                )));
            }
        }
        let insert = match (src.use_raw_data.unwrap_or(false), value.raw) {
            (true, Some(raw)) => raw,
            _ => Value::String(value.text),
        };
        set(doc, &p.dest, insert).map_err(|e| err(format!("dest '{}': {e}", p.dest)))?;
    }
    Ok(())
}

fn split_dest(path: &str) -> Vec<(String, bool)> {
    // (key, forced object key via `:`)
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|k| match k.strip_prefix(':') {
            Some(rest) if !rest.is_empty() => (rest.to_owned(), true),
            _ => (k, false),
        })
        .collect()
}

fn index_of(key: &str, forced: bool) -> Option<i64> {
    if forced {
        return None;
    }
    key.parse::<i64>().ok().filter(|i| *i >= -1)
}

/// Sets `value` at the sjson path `path` in `doc`.
pub fn set(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let keys = split_dest(path);
    if keys.iter().any(|(k, _)| k.is_empty()) {
        return Err("empty key in path".into());
    }
    let mut node = doc;
    for (i, (key, forced)) in keys.iter().enumerate() {
        let last = i + 1 == keys.len();
        if node.is_null() {
            *node = if index_of(key, *forced).is_some() {
                Value::Array(Vec::new())
            } else {
                Value::Object(serde_json::Map::new())
            };
        }
        let next_is_index = keys
            .get(i + 1)
            .is_some_and(|(k, f)| index_of(k, *f).is_some());
        let fresh = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(serde_json::Map::new())
            }
        };
        node = match node {
            Value::Object(m) => {
                if last {
                    m.insert(key.clone(), value);
                    return Ok(());
                }
                m.entry(key.clone()).or_insert_with(fresh)
            }
            Value::Array(a) => {
                let Some(idx) = index_of(key, *forced) else {
                    return Err(format!("'{key}' is not an index into a list"));
                };
                let idx = if idx == -1 { a.len() } else { idx as usize };
                if idx > a.len() + 10_000 {
                    return Err(format!("index {idx} is too far past the end of the list"));
                }
                while a.len() <= idx {
                    a.push(Value::Null);
                }
                if last {
                    a[idx] = value;
                    return Ok(());
                }
                if a[idx].is_null() {
                    a[idx] = fresh();
                }
                &mut a[idx]
            }
            other => {
                return Err(format!(
                    "cannot set '{key}' inside a {}",
                    match other {
                        Value::String(_) => "string",
                        Value::Number(_) => "number",
                        _ => "boolean",
                    }
                ));
            }
        };
    }
    Ok(())
}

/// The deterministic name of the Workflow a trigger creates for a set of events:
/// `<prefix><10 hex digits>`, the digits from SHA-256 over the sensor (`namespace/name`), the
/// trigger name and the fired events (dependency and event id, sorted). The prefix is the
/// resource's `metadata.generateName` (else `<sensor>-<trigger>-`), cut so the name fits 63
/// characters. A resource with a fixed `metadata.name` keeps it (a second create of it fails
/// as AlreadyExists, which is once as well).
pub fn workflow_name(
    resource: &Value,
    sensor_namespace: &str,
    sensor_name: &str,
    trigger: &str,
    fired: &BTreeMap<String, String>,
) -> String {
    let meta = &resource["metadata"];
    if let Some(name) = meta["name"].as_str().filter(|n| !n.is_empty()) {
        return name.to_owned();
    }
    let prefix = meta["generateName"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map_or_else(|| format!("{sensor_name}-{trigger}-"), str::to_owned);
    let mut h = Sha256::new();
    let mut feed = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    feed(sensor_namespace);
    feed(sensor_name);
    feed(trigger);
    for (dep, id) in fired {
        feed(dep);
        feed(id);
    }
    let digest = hex::encode(h.finalize());
    let room = MAX_NAME - SUFFIX_LEN;
    let cut = (0..=room.min(prefix.len()))
        .rev()
        .find(|i| prefix.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}{}", &prefix[..cut], &digest[..SUFFIX_LEN])
}

#[cfg(test)]
mod tests;
