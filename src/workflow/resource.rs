//! Resource templates (Argo's `resource:`), the pure half: what a template asks for
//! ([`ResourceSpec::parse`]), the request the operator hands the controller shell
//! ([`ResourceRequest`]), what the shell saw of the object ([`ResourceObservation`]), Argo's
//! `successCondition` / `failureCondition` evaluation over the live object ([`Conditions`],
//! [`verdict`]) and output parameters read from it ([`output_parameters`]).
//!
//! Invariants:
//! - Pure: no client, no clock (observations carry the time they were made).
//! - Conditions follow Argo's executor (`workflow/executor/resource.go`, `matchConditions`):
//!   each is a Kubernetes label-selector-like list of requirements whose keys are gjson paths
//!   into the live object (`status.succeeded`, `status.conditions.0.type`). The node fails as
//!   soon as **any** failure requirement matches; it succeeds once **all** success
//!   requirements match; otherwise it waits. A requirement matches as
//!   `k8s.io/apimachinery/pkg/labels.Requirement.Matches` does: `=`, `==`, `in` need the key
//!   present and its value in the set; `!=`, `notin` hold for a missing key; `>`/`<` need
//!   the key present and both sides integers; `key` / `!key` test presence.
//! - Output parameters (`valueFrom.jsonPath`, `valueFrom.jqFilter`) are evaluated against the
//!   same live object as the conditions, so they are consistent with the verdict. jsonPath is
//!   kubectl's template syntax (`{.metadata.name}`, `[n]`, `[*]`, `['key']`, literal text);
//!   jqFilter is the path subset of jq (`.a.b`, `.a[0]`, `.["k"]`, `.`), printed as `jq -c`.
//!
//! Left out (an explicit node error): `manifestFrom` (artifacts), `mergeStrategy: json`
//! (Argo takes its target from `flags`), jq beyond paths.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::types::Parameter;

/// How long a resource whose conditions are undecided waits before it is read again (Argo's
/// executor polls its `kubectl get` on a similar period).
pub const POLL_SECONDS: i64 = 5;

/// Errors of a resource template (each becomes the node's message).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ResourceError {
    /// `resource.action` is missing or not one of Argo's.
    #[error(
        "template '{template}': resource.action '{action}' is invalid (expected get, create, apply, delete, replace or patch)"
    )]
    Action {
        /// The template.
        template: String,
        /// The value found.
        action: String,
    },
    /// `resource.mergeStrategy` is not one of Argo's.
    #[error(
        "template '{template}': resource.mergeStrategy '{strategy}' is invalid (expected strategic, merge or json)"
    )]
    MergeStrategy {
        /// The template.
        template: String,
        /// The value found.
        strategy: String,
    },
    /// A part of resource templates cairn does not run.
    #[error("template '{template}': resource.{field} is not supported yet")]
    Unsupported {
        /// The template.
        template: String,
        /// The field.
        field: &'static str,
    },
    /// `resource.manifest` is missing or not one YAML/JSON object with apiVersion, kind and
    /// a name (or generateName for create).
    #[error("template '{template}': resource.manifest: {problem}")]
    Manifest {
        /// The template.
        template: String,
        /// What is wrong.
        problem: String,
    },
    /// A success/failure condition that does not parse.
    #[error("template '{template}': resource.{field} '{condition}': {problem}")]
    Condition {
        /// The template.
        template: String,
        /// `successCondition` or `failureCondition`.
        field: &'static str,
        /// The text.
        condition: String,
        /// What is wrong.
        problem: String,
    },
    /// An output parameter whose path does not parse or find anything in the live object.
    #[error("template '{template}': outputs.parameters.{parameter}: {problem}")]
    Output {
        /// The template.
        template: String,
        /// The parameter.
        parameter: String,
        /// What is wrong.
        problem: String,
    },
}

impl ResourceError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Action { .. } => "action",
            Self::MergeStrategy { .. } => "merge_strategy",
            Self::Unsupported { .. } => "unsupported",
            Self::Manifest { .. } => "manifest",
            Self::Condition { .. } => "condition",
            Self::Output { .. } => "output",
        }
    }
}

/// `resource.action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ResourceAction {
    /// Read the object.
    Get,
    /// Create it (an existing object of that name is taken as created: a restart replays it).
    Create,
    /// Apply it (server-side apply, forced).
    Apply,
    /// Delete it (a missing object is success, as Argo's `--ignore-not-found`).
    Delete,
    /// Replace it.
    Replace,
    /// Patch it with `mergeStrategy`.
    Patch,
}

impl ResourceAction {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "get" => Self::Get,
            "create" => Self::Create,
            "apply" => Self::Apply,
            "delete" => Self::Delete,
            "replace" => Self::Replace,
            "patch" => Self::Patch,
            _ => return None,
        })
    }
}

/// `resource.mergeStrategy` of a patch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MergeStrategy {
    /// Strategic merge patch (Argo's default).
    #[default]
    Strategic,
    /// JSON merge patch.
    Merge,
}

/// Which object a request addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIdentity {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace (ignored for cluster-scoped kinds).
    pub namespace: String,
    /// Name (empty with `generate_name` on a create).
    pub name: String,
}

/// A resource template, parsed from its rendered `resource:` field.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceSpec {
    /// The action.
    pub action: ResourceAction,
    /// Patch strategy.
    pub merge_strategy: MergeStrategy,
    /// The manifest as an object.
    pub manifest: Value,
    /// Whether the workflow becomes the object's owner.
    pub set_owner_reference: bool,
    /// `successCondition`.
    pub success: Conditions,
    /// `failureCondition`.
    pub failure: Conditions,
}

impl ResourceSpec {
    /// Parses a rendered `resource:` field of template `template`.
    pub fn parse(template: &str, resource: &Value) -> Result<Self, ResourceError> {
        let field = |k: &str| resource.get(k).and_then(Value::as_str).unwrap_or("");
        let action_text = field("action");
        let action = ResourceAction::parse(action_text).ok_or_else(|| ResourceError::Action {
            template: template.into(),
            action: action_text.into(),
        })?;
        if resource.get("manifestFrom").is_some_and(|v| !v.is_null()) {
            return Err(ResourceError::Unsupported {
                template: template.into(),
                field: "manifestFrom",
            });
        }
        let merge_strategy = match field("mergeStrategy") {
            "" | "strategic" => MergeStrategy::Strategic,
            "merge" => MergeStrategy::Merge,
            "json" => {
                return Err(ResourceError::Unsupported {
                    template: template.into(),
                    field: "mergeStrategy json",
                });
            }
            other => {
                return Err(ResourceError::MergeStrategy {
                    template: template.into(),
                    strategy: other.into(),
                });
            }
        };
        let manifest_err = |problem: String| ResourceError::Manifest {
            template: template.into(),
            problem,
        };
        let text = field("manifest");
        if text.trim().is_empty() {
            return Err(manifest_err("is empty".into()));
        }
        let manifest: Value =
            serde_saphyr::from_str(text).map_err(|e| manifest_err(format!("not YAML: {e}")))?;
        if !manifest.is_object() {
            return Err(manifest_err("is not an object".into()));
        }
        for k in ["apiVersion", "kind"] {
            if manifest
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .is_empty()
            {
                return Err(manifest_err(format!("{k} is missing")));
            }
        }
        let meta = |k: &str| {
            manifest
                .pointer(&format!("/metadata/{k}"))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        let named = !meta("name").is_empty()
            || (action == ResourceAction::Create && !meta("generateName").is_empty());
        if !named {
            return Err(manifest_err("metadata.name is missing".into()));
        }
        let cond = |f: &'static str| {
            let text = field(f);
            Conditions::parse(text).map_err(|problem| ResourceError::Condition {
                template: template.into(),
                field: f,
                condition: text.into(),
                problem,
            })
        };
        Ok(Self {
            action,
            merge_strategy,
            set_owner_reference: resource
                .get("setOwnerReference")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            success: cond("successCondition")?,
            failure: cond("failureCondition")?,
            manifest,
        })
    }
}

/// The object a manifest addresses, namespace defaulting to `default_namespace`.
pub fn identity_of(manifest: &Value, default_namespace: &str) -> ResourceIdentity {
    let s = |p: &str| manifest.pointer(p).and_then(Value::as_str).unwrap_or("");
    let ns = s("/metadata/namespace");
    ResourceIdentity {
        api_version: s("/apiVersion").into(),
        kind: s("/kind").into(),
        namespace: if ns.is_empty() {
            default_namespace.into()
        } else {
            ns.into()
        },
        name: s("/metadata/name").into(),
    }
}

/// What the operator asks the shell to do for one resource node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequest {
    /// Workflow name.
    pub workflow_name: String,
    /// Workflow uid (owner reference).
    pub workflow_uid: String,
    /// Node id.
    pub node_id: String,
    /// The action; a poll of an undecided object is a `Get` of [`Self::target`].
    pub action: ResourceAction,
    /// Patch strategy.
    pub merge_strategy: MergeStrategy,
    /// The object to send (create/apply/replace), the patch (patch), or the object whose
    /// identity to read (get/delete). Its namespace is already defaulted.
    pub manifest: Value,
    /// The object to act on.
    pub target: ResourceIdentity,
    /// Whether to add the workflow as an owner reference before sending.
    pub set_owner_reference: bool,
}

/// What the shell saw after executing a [`ResourceRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceObservation {
    /// The object acted on (its name filled in after a `generateName` create).
    pub target: ResourceIdentity,
    /// The live object after the action (None after a delete or on error).
    pub live: Option<Value>,
    /// The server's refusal (the node fails with it).
    pub error: Option<String>,
    /// When the object was read.
    pub observed_at: Timestamp,
}

/// Observations of a workflow's resource nodes, by node id.
pub type ResourceObservations = BTreeMap<String, ResourceObservation>;

/// The owner reference of a workflow (controller, blocking deletion, as Argo sets it).
pub fn owner_reference(workflow_name: &str, workflow_uid: &str) -> Value {
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "name": workflow_name,
        "uid": workflow_uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A selector operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=` / `==` / `in`.
    In,
    /// `!=` / `notin`.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `>`.
    Gt,
    /// `<`.
    Lt,
}

/// One requirement of a condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Requirement {
    /// gjson path.
    pub key: String,
    /// Operator.
    pub op: Op,
    /// Values (one for `=`, `!=`, `>`, `<`).
    pub values: Vec<String>,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Op::Exists => write!(f, "{}", self.key),
            Op::DoesNotExist => write!(f, "!{}", self.key),
            Op::In if self.values.len() == 1 => write!(f, "{}={}", self.key, self.values[0]),
            Op::NotIn if self.values.len() == 1 => write!(f, "{}!={}", self.key, self.values[0]),
            Op::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Op::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Op::Gt => write!(f, "{}>{}", self.key, self.values.join("")),
            Op::Lt => write!(f, "{}<{}", self.key, self.values.join("")),
        }
    }
}

/// A parsed `successCondition` / `failureCondition`: requirements separated by commas.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conditions(pub Vec<Requirement>);

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Op(&'static str),
    Comma,
    Open,
    Close,
}

fn lex(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '=' if next == Some('=') => {
                out.push(Tok::Op("=="));
                i += 2;
            }
            '!' if next == Some('=') => {
                out.push(Tok::Op("!="));
                i += 2;
            }
            '=' => {
                out.push(Tok::Op("="));
                i += 1;
            }
            '!' => {
                out.push(Tok::Op("!"));
                i += 1;
            }
            '>' => {
                out.push(Tok::Op(">"));
                i += 1;
            }
            '<' => {
                out.push(Tok::Op("<"));
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(chars[i], ',' | '(' | ')' | '=' | '!' | '>' | '<')
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    out
}

impl Conditions {
    /// Parses Kubernetes selector syntax (empty text: no requirement).
    pub fn parse(text: &str) -> Result<Self, String> {
        let toks = lex(text);
        let mut reqs = Vec::new();
        let mut i = 0;
        let word = |i: usize| match toks.get(i) {
            Some(Tok::Word(w)) => Some(w.clone()),
            _ => None,
        };
        while i < toks.len() {
            let req = if toks[i] == Tok::Op("!") {
                let key = word(i + 1).ok_or("expected a key after '!'")?;
                i += 2;
                Requirement {
                    key,
                    op: Op::DoesNotExist,
                    values: vec![],
                }
            } else {
                let key = word(i).ok_or_else(|| format!("expected a key at {:?}", toks[i]))?;
                i += 1;
                match toks.get(i) {
                    None | Some(Tok::Comma) => Requirement {
                        key,
                        op: Op::Exists,
                        values: vec![],
                    },
                    Some(Tok::Op(op)) => {
                        let op = match *op {
                            "=" | "==" => Op::In,
                            "!=" => Op::NotIn,
                            ">" => Op::Gt,
                            "<" => Op::Lt,
                            other => return Err(format!("unexpected '{other}' after '{key}'")),
                        };
                        // An empty value is allowed for = and != (as in label selectors).
                        let value = word(i + 1);
                        i += if value.is_some() { 2 } else { 1 };
                        let value = value.unwrap_or_default();
                        if matches!(op, Op::Gt | Op::Lt) && value.parse::<i64>().is_err() {
                            return Err(format!(
                                "for '>' and '<' the value must be an integer, got '{value}'"
                            ));
                        }
                        Requirement {
                            key,
                            op,
                            values: vec![value],
                        }
                    }
                    Some(Tok::Word(w)) if w == "in" || w == "notin" => {
                        let op = if w == "in" { Op::In } else { Op::NotIn };
                        i += 1;
                        if toks.get(i) != Some(&Tok::Open) {
                            return Err(format!("expected '(' after '{key} {w}'"));
                        }
                        i += 1;
                        let mut values = Vec::new();
                        loop {
                            match toks.get(i) {
                                Some(Tok::Word(v)) => values.push(v.clone()),
                                Some(Tok::Comma) => {}
                                Some(Tok::Close) => break,
                                _ => return Err(format!("unterminated set after '{key} {w}'")),
                            }
                            i += 1;
                        }
                        i += 1;
                        Requirement { key, op, values }
                    }
                    Some(t) => return Err(format!("unexpected {t:?} after '{key}'")),
                }
            };
            reqs.push(req);
            match toks.get(i) {
                None => {}
                Some(Tok::Comma) => {
                    i += 1;
                    if i >= toks.len() {
                        return Err("trailing ','".into());
                    }
                }
                Some(t) => return Err(format!("expected ',' but found {t:?}")),
            }
        }
        Ok(Self(reqs))
    }
}

/// A gjson path lookup (see [`crate::gjson`]): `a.b.0.c`, `\.` escapes a dot, `#` is an
/// array's length.
pub use crate::gjson::get as gjson_get;
use crate::gjson::string as gjson_string;

impl Requirement {
    /// Whether the live object satisfies this requirement (labels.Requirement.Matches).
    pub fn matches(&self, live: &Value) -> bool {
        let got = gjson_get(live, &self.key);
        match self.op {
            Op::Exists => got.is_some(),
            Op::DoesNotExist => got.is_none(),
            Op::In => got.is_some_and(|v| self.values.contains(&gjson_string(&v))),
            Op::NotIn => got.is_none_or(|v| !self.values.contains(&gjson_string(&v))),
            Op::Gt | Op::Lt => {
                let Some(have) = got.and_then(|v| gjson_string(&v).parse::<i64>().ok()) else {
                    return false;
                };
                let Some(want) = self.values.first().and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                if self.op == Op::Gt {
                    have > want
                } else {
                    have < want
                }
            }
        }
    }
}

/// Where a resource node stands given its live object.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// All success requirements hold (or there are none).
    Succeeded,
    /// A failure requirement holds: Argo's message.
    Failed(String),
    /// Neither: read again later.
    Waiting,
}

/// Argo's `matchConditions`: failure first (any requirement), then success (all).
pub fn verdict(spec: &ResourceSpec, live: &Value) -> Verdict {
    for req in &spec.failure.0 {
        if req.matches(live) {
            return Verdict::Failed(format!("failure condition '{req}' evaluated true"));
        }
    }
    if spec.success.0.iter().all(|r| r.matches(live)) {
        Verdict::Succeeded
    } else {
        Verdict::Waiting
    }
}

/// Whether the node must wait on conditions at all (Argo waits only when one is set, and
/// never for a delete).
pub fn waits(spec: &ResourceSpec) -> bool {
    spec.action != ResourceAction::Delete
        && !(spec.success.0.is_empty() && spec.failure.0.is_empty())
}

/// The template's output parameters with values read from `live` (`valueFrom.jsonPath` /
/// `jqFilter`; `valueFrom.default` when the path finds nothing; others dropped).
pub fn output_parameters(
    template: &str,
    declared: &[Parameter],
    live: &Value,
) -> Result<Vec<Parameter>, ResourceError> {
    let mut out = Vec::new();
    for p in declared {
        let Some(vf) = &p.value_from else { continue };
        let err = |problem: String| ResourceError::Output {
            template: template.into(),
            parameter: p.name.clone(),
            problem,
        };
        let found = if let Some(path) = vf.get("jsonPath").and_then(Value::as_str) {
            kubectl_jsonpath(live, path).map_err(&err)?
        } else if let Some(filter) = vf.get("jqFilter").and_then(Value::as_str) {
            jq_path(live, filter).map_err(&err)?
        } else {
            continue;
        };
        let value = match (found, vf.get("default")) {
            (Some(v), _) => Value::String(v),
            (None, Some(d)) => Value::String(crate::workflow::types::any_string(d)),
            (None, None) => return Err(err("not found in the resource".into())),
        };
        out.push(Parameter {
            name: p.name.clone(),
            value: Some(value),
            ..Default::default()
        });
    }
    Ok(out)
}

/// kubectl's `-o jsonpath=` (subset): literal text and `{...}` path expressions with
/// `.field`, `['field']`, `[n]`, `[*]`; several results are joined by spaces; strings print
/// raw, other values as JSON. `Ok(None)` when a path finds nothing.
pub fn kubectl_jsonpath(live: &Value, template: &str) -> Result<Option<String>, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("unclosed '{{' in '{template}'"));
        };
        let expr = &rest[open + 1..open + close];
        let results = select(live, expr)?;
        if results.is_empty() {
            return Ok(None);
        }
        let printed: Vec<String> = results.iter().map(gjson_string).collect();
        out.push_str(&printed.join(" "));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// jq's path subset, printed as `jq -c` prints (compact JSON).
pub fn jq_path(live: &Value, filter: &str) -> Result<Option<String>, String> {
    let results = select(live, filter.trim())?;
    Ok(match results.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        many => Some(
            many.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n"),
        ),
    })
}

/// Evaluates a path (`.a.b[0]['c'][*]`, with an optional leading `$`).
fn select(live: &Value, expr: &str) -> Result<Vec<Value>, String> {
    let expr = expr.trim();
    let expr = expr.strip_prefix('$').unwrap_or(expr);
    let chars: Vec<char> = expr.chars().collect();
    let mut cur = vec![live.clone()];
    let mut i = 0;
    let bad = || format!("unsupported path '{expr}'");
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && !matches!(chars[i], '.' | '[') {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name.is_empty() {
                    continue;
                }
                if name == "*" {
                    cur = cur.iter().flat_map(children).collect();
                } else {
                    cur = cur.iter().filter_map(|v| v.get(&name).cloned()).collect();
                }
            }
            '[' => {
                let close = chars[i..].iter().position(|c| *c == ']').ok_or_else(bad)? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                i = close + 1;
                if inner == "*" {
                    cur = cur.iter().flat_map(children).collect();
                } else if let Ok(n) = inner.parse::<i64>() {
                    cur = cur
                        .iter()
                        .filter_map(|v| {
                            let a = v.as_array()?;
                            let idx = if n < 0 {
                                a.len().checked_sub(n.unsigned_abs() as usize)?
                            } else {
                                usize::try_from(n).ok()?
                            };
                            a.get(idx).cloned()
                        })
                        .collect();
                } else if let Some(key) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
                } else {
                    return Err(bad());
                }
            }
            c if c.is_whitespace() => i += 1,
            _ => return Err(bad()),
        }
    }
    Ok(cur)
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Object(m) => m.values().cloned().collect(),
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(succeeded: Option<i64>, failed: Option<i64>) -> Value {
        let mut status = serde_json::Map::new();
        if let Some(s) = succeeded {
            status.insert("succeeded".into(), json!(s));
        }
        if let Some(f) = failed {
            status.insert("failed".into(), json!(f));
        }
        json!({"metadata": {"name": "pi-abc", "labels": {"a.b/c": "x"}},
               "status": status,
               "phase": "Failed",
               "items": [{"n": "one"}, {"n": "two"}]})
    }

    #[test]
    fn requirements_match_as_label_selectors_over_gjson_paths() {
        let live = job(Some(1), Some(4));
        let cases: &[(&str, bool)] = &[
            ("status.succeeded > 0", true),
            ("status.succeeded > 1", false),
            ("status.failed > 3", true),
            ("status.failed < 3", false),
            ("status.missing > 0", false),
            ("status.missing < 5", false),
            ("phase in (Failed, Error)", true),
            ("phase in (Succeeded)", false),
            ("phase notin (Failed, Error)", false),
            ("status.missing notin (x)", true),
            ("phase = Failed", true),
            ("phase == Failed", true),
            ("phase != Failed", false),
            ("status.missing != x", true),
            ("status.missing = x", false),
            ("status.succeeded", true),
            ("status.missing", false),
            ("!status.missing", true),
            ("!status.succeeded", false),
            ("items.1.n = two", true),
            ("items.# = 2", true),
            ("items.5.n", false),
            ("metadata.name = pi-abc", true),
            ("status.succeeded > 0, phase = Failed", true),
            ("status.succeeded > 0, phase = Running", false),
            ("", true),
        ];
        for (text, want) in cases {
            let c = Conditions::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let got = c.0.iter().all(|r| r.matches(&live));
            assert_eq!(got, *want, "{text}");
        }
    }

    #[test]
    fn bad_conditions_are_rejected_with_a_reason() {
        for text in [
            "status.succeeded > x",
            "a in b",
            "a in (b",
            "a b",
            "a,",
            "!",
            "> 3",
        ] {
            assert!(Conditions::parse(text).is_err(), "{text}");
        }
    }

    fn spec(action: &str, success: &str, failure: &str) -> ResourceSpec {
        ResourceSpec::parse(
            "t",
            &json!({"action": action, "successCondition": success, "failureCondition": failure,
                    "manifest": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\n"}),
        )
        .expect("parses")
    }

    #[test]
    fn verdicts_follow_argo_match_conditions() {
        let s = spec("create", "status.succeeded > 0", "status.failed > 3");
        let cases = [
            (job(None, None), Verdict::Waiting),
            (job(Some(1), None), Verdict::Succeeded),
            (job(None, Some(2)), Verdict::Waiting),
            (
                job(None, Some(4)),
                Verdict::Failed("failure condition 'status.failed>3' evaluated true".into()),
            ),
            // Failure wins over success, as Argo checks it first.
            (
                job(Some(1), Some(4)),
                Verdict::Failed("failure condition 'status.failed>3' evaluated true".into()),
            ),
        ];
        for (live, want) in cases {
            assert_eq!(verdict(&s, &live), want, "{live}");
        }
        assert!(waits(&s));
        assert!(!waits(&spec("create", "", "")));
        assert!(!waits(&spec("delete", "a", "")));
    }

    #[test]
    fn spec_parsing_checks_each_field() {
        let m = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
        let ok = ResourceSpec::parse(
            "t",
            &json!({"action": "patch", "mergeStrategy": "merge", "manifest": m}),
        )
        .expect("ok");
        assert_eq!(ok.merge_strategy, MergeStrategy::Merge);
        assert_eq!(ok.action, ResourceAction::Patch);
        let errs = [
            (
                json!({"action": "frob", "manifest": m}),
                "resource.action 'frob' is invalid",
            ),
            (json!({"manifest": m}), "resource.action '' is invalid"),
            (json!({"action": "get"}), "resource.manifest: is empty"),
            (
                json!({"action": "get", "manifest": "kind: X\nmetadata: {name: a}"}),
                "apiVersion is missing",
            ),
            (
                json!({"action": "get", "manifest": "apiVersion: v1\nkind: X\nmetadata: {generateName: a}"}),
                "metadata.name is missing",
            ),
            (
                json!({"action": "get", "manifest": "- a"}),
                "is not an object",
            ),
            (
                json!({"action": "patch", "mergeStrategy": "json", "manifest": m}),
                "mergeStrategy json is not supported yet",
            ),
            (
                json!({"action": "patch", "mergeStrategy": "x", "manifest": m}),
                "mergeStrategy 'x' is invalid",
            ),
            (
                json!({"action": "create", "manifestFrom": {"artifact": {"name": "a"}}}),
                "manifestFrom is not supported yet",
            ),
            (
                json!({"action": "get", "manifest": m, "successCondition": "a >"}),
                "resource.successCondition 'a >'",
            ),
        ];
        for (input, want) in errs {
            let e = ResourceSpec::parse("t", &input)
                .expect_err("must fail")
                .to_string();
            assert!(e.contains(want), "{e} does not contain {want}");
            assert!(e.starts_with("template 't'"), "{e}");
        }
    }

    #[test]
    fn identity_defaults_the_namespace() {
        let m = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert_eq!(identity_of(&m, "wfns").namespace, "wfns");
        let m = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "o"}});
        assert_eq!(identity_of(&m, "wfns").namespace, "o");
    }

    #[test]
    fn jsonpath_and_jq_read_the_live_object() {
        let live = json!({"metadata": {"name": "cm", "labels": {"a.b/c": "x"}},
                          "data": {"k": "v", "n": "1"},
                          "items": [{"n": 1}, {"n": 2}]});
        let cases: &[(&str, Option<&str>)] = &[
            ("{.metadata.name}", Some("cm")),
            ("{.data.k}", Some("v")),
            ("{.metadata.labels['a.b/c']}", Some("x")),
            ("{.items[1].n}", Some("2")),
            ("{.items[-1].n}", Some("2")),
            ("{.items[*].n}", Some("1 2")),
            ("name={.metadata.name}!", Some("name=cm!")),
            ("{.data}", Some(r#"{"k":"v","n":"1"}"#)),
            ("{.missing}", None),
            ("{$.metadata.name}", Some("cm")),
        ];
        for (path, want) in cases {
            assert_eq!(
                kubectl_jsonpath(&live, path).expect("parses").as_deref(),
                *want,
                "{path}"
            );
        }
        assert!(kubectl_jsonpath(&live, "{.a").is_err());
        assert!(kubectl_jsonpath(&live, "{.a[x]}").is_err());
        assert_eq!(
            jq_path(&live, ".metadata.name").expect("ok").as_deref(),
            Some("\"cm\"")
        );
        assert_eq!(
            jq_path(&live, ".items[0]").expect("ok").as_deref(),
            Some(r#"{"n":1}"#)
        );
        assert_eq!(
            jq_path(&live, ".[\"data\"].n").expect("ok").as_deref(),
            Some("\"1\"")
        );
        assert_eq!(jq_path(&live, ".nope").expect("ok"), None);
    }

    #[test]
    fn output_parameters_use_the_live_object_and_defaults() {
        let live = json!({"metadata": {"name": "cm"}});
        let params: Vec<Parameter> = serde_json::from_value(json!([
            {"name": "n", "valueFrom": {"jsonPath": "{.metadata.name}"}},
            {"name": "j", "valueFrom": {"jqFilter": ".metadata"}},
            {"name": "d", "valueFrom": {"jsonPath": "{.x}", "default": "dflt"}},
            {"name": "skip", "valueFrom": {"path": "/tmp/x"}},
        ]))
        .expect("params");
        let out = output_parameters("t", &params, &live).expect("ok");
        let got: Vec<(String, Option<Value>)> =
            out.into_iter().map(|p| (p.name, p.value)).collect();
        assert_eq!(
            got,
            vec![
                ("n".into(), Some(json!("cm"))),
                ("j".into(), Some(json!(r#"{"name":"cm"}"#))),
                ("d".into(), Some(json!("dflt"))),
            ]
        );
        let missing: Vec<Parameter> =
            serde_json::from_value(json!([{"name": "m", "valueFrom": {"jsonPath": "{.x}"}}]))
                .expect("params");
        let e = output_parameters("t", &missing, &live)
            .expect_err("fails")
            .to_string();
        assert_eq!(
            e,
            "template 't': outputs.parameters.m: not found in the resource"
        );
    }
}
