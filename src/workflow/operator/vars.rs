//! Variables of a template invocation and the data the operator derives from node statuses:
//! global parameters, input processing, `steps.X.*` / `tasks.X.*` scopes (aggregated for
//! loops), loop item expansion and loop node names, template outputs of steps/DAG templates,
//! and the Argo text forms these use. Pure.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

use super::OperatorError;
use crate::workflow::expr::{self, Scope, Unresolved};
use crate::workflow::types::{
    Inputs, NodeStatus, Outputs, Parameter, Template, Workflow, WorkflowSpec, any_string,
};
use crate::workflow::validate::TemplateLookup;

/// Argo's timestamp form (`metav1.Time`, RFC 3339 with whole seconds, UTC).
pub(super) fn ts(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A parameter value as Argo's `AnyString` prints it.
pub(super) fn param_text(p: &Parameter) -> Option<String> {
    p.value.as_ref().map(any_string)
}

/// Go's `json.Marshal` of a JSON value (sorted keys, HTML-safe escaping), as Argo prints
/// aggregated outputs and `workflow.parameters`.
pub(super) fn go_json(v: &Value) -> String {
    expr::Value::from(v)
        .go_json()
        .unwrap_or_else(|| "null".into())
}

/// The global variables of a workflow (Argo's `setGlobalParameters`): `workflow.name`,
/// `namespace`, `uid`, `serviceAccountName`, `mainEntrypoint`, `creationTimestamp` (and `.s`,
/// `.RFC3339`), `parameters` / `parameters.json` / `parameters.<name>`, `labels.*`,
/// `annotations.*` (and their JSON forms), `outputs.parameters.<globalName>` already produced.
/// `workflow.status` and `workflow.failures` are added by the caller once the main tree ends.
pub(super) fn globals(wf: &Workflow, spec: &WorkflowSpec, outputs: Option<&Outputs>) -> Scope {
    let meta = &wf.metadata;
    let mut s = Scope::new();
    s.insert("workflow.name", meta.name.clone().unwrap_or_default());
    s.insert(
        "workflow.namespace",
        meta.namespace.clone().unwrap_or_default(),
    );
    s.insert("workflow.uid", meta.uid.clone().unwrap_or_default());
    s.insert(
        "workflow.serviceAccountName",
        spec.service_account_name.clone().unwrap_or_default(),
    );
    s.insert(
        "workflow.mainEntrypoint",
        spec.entrypoint.clone().unwrap_or_default(),
    );
    if let Some(created) = &meta.creation_timestamp {
        let t: Timestamp = created.0;
        s.insert("workflow.creationTimestamp", ts(t));
        s.insert("workflow.creationTimestamp.RFC3339", ts(t));
        s.insert("workflow.creationTimestamp.s", t.as_second().to_string());
    }
    if let Some(at) = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get("workflows.argoproj.io/scheduled-time"))
    {
        s.insert("workflow.scheduledTime", at.clone());
    }
    let params: Vec<Parameter> = spec
        .arguments
        .as_ref()
        .and_then(|a| a.parameters.clone())
        .unwrap_or_default();
    let json = serde_json::to_value(&params).map_or_else(|_| "[]".into(), |v| go_json(&v));
    s.insert("workflow.parameters", json.clone());
    s.insert("workflow.parameters.json", json);
    for p in &params {
        if let Some(v) = param_text(p) {
            s.insert(format!("workflow.parameters.{}", p.name), v);
        }
    }
    for (key, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        let map = map.clone().unwrap_or_default();
        let json = serde_json::to_value(&map).map_or_else(|_| "{}".into(), |v| go_json(&v));
        s.insert(format!("workflow.{key}"), json.clone());
        s.insert(format!("workflow.{key}.json"), json);
        for (k, v) in map {
            s.insert(format!("workflow.{key}.{k}"), v);
        }
    }
    for p in outputs
        .and_then(|o| o.parameters.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(v) = param_text(p) {
            s.insert(format!("workflow.outputs.parameters.{}", p.name), v);
        }
    }
    s
}

/// Argo's `ProcessArgs` for parameters: each input takes the caller's argument, else its own
/// `value`, else its `default`; a value outside the `enum` or a missing value is an error.
/// Values are rendered with the globals (a default may read `{{workflow.parameters.x}}`).
pub(super) fn process_inputs(
    tmpl: &Template,
    args: &[Parameter],
    artifacts: &[Value],
    globals: &Scope,
    config_maps: (&dyn TemplateLookup, &str),
) -> Result<Inputs, OperatorError> {
    let mut inputs = tmpl.inputs.clone().unwrap_or_default();
    if let Some(declared) = inputs.artifacts.as_mut() {
        for art in declared.iter_mut() {
            let name = art
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let supplied = artifacts
                .iter()
                .find(|a| a.get("name").and_then(Value::as_str) == Some(name.as_str()));
            match (supplied, art.as_object_mut()) {
                (Some(Value::Object(given)), Some(own)) => {
                    // The location comes from the argument; path and mode stay the template's.
                    for (k, v) in given {
                        if !matches!(k.as_str(), "name" | "path" | "mode" | "from" | "optional") {
                            own.insert(k.clone(), v.clone());
                        }
                    }
                }
                (None, Some(own)) => {
                    let located = own.keys().any(|k| LOCATIONS.contains(&k.as_str()));
                    let optional = own.get("optional") == Some(&Value::Bool(true));
                    if !located && !optional {
                        return Err(OperatorError::MissingArtifact {
                            template: tmpl.name.clone(),
                            artifact: name,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    let Some(params) = inputs.parameters.as_mut() else {
        return Ok(inputs);
    };
    for p in params.iter_mut() {
        let arg = args.iter().find(|a| a.name == p.name);
        let supplied = arg.and_then(|a| a.value.clone());
        // A caller's `valueFrom` replaces the input's own (Argo's ProcessArgs); a ConfigMap
        // reference then wins over `value`/`default`.
        let from = match arg {
            Some(a) if a.value.is_none() && a.value_from.is_some() => a,
            _ => &*p,
        };
        let from_config =
            match supplied {
                Some(_) => None,
                None => super::config::value_of(from, config_maps.1, config_maps.0).map_err(
                    |e| match e.store {
                        super::config::Store::ConfigMap => OperatorError::ConfigMap {
                            template: tmpl.name.clone(),
                            parameter: p.name.clone(),
                            message: e.message,
                        },
                        super::config::Store::Secret => OperatorError::Secret {
                            template: tmpl.name.clone(),
                            parameter: p.name.clone(),
                            message: e.message,
                        },
                    },
                )?,
            };
        let value = supplied
            .or_else(|| from_config.map(Value::String))
            .or_else(|| p.value.clone())
            .or_else(|| p.default.clone());
        let Some(value) = value else {
            return Err(OperatorError::MissingInput {
                template: tmpl.name.clone(),
                parameter: p.name.clone(),
            });
        };
        let text = expr::render_with(&any_string(&value), globals, Unresolved::Keep).map_err(
            |source| OperatorError::Render {
                template: tmpl.name.clone(),
                field: format!("inputs.parameters.{}", p.name),
                source,
            },
        )?;
        if let Some(allowed) = &p.enum_values {
            let allowed: Vec<String> = allowed.iter().map(any_string).collect();
            if !allowed.contains(&text) {
                return Err(OperatorError::NotInEnum {
                    template: tmpl.name.clone(),
                    parameter: p.name.clone(),
                    value: text,
                    allowed,
                });
            }
        }
        p.value = Some(Value::String(text));
    }
    Ok(inputs)
}

/// Fields of an artifact that say where it is stored (Argo's artifact locations).
const LOCATIONS: &[&str] = &[
    // cairn's built-in store (`workflow::artifacts::BUILTIN_LOCATION`).
    "cairn",
    "s3",
    "gcs",
    "git",
    "http",
    "raw",
    "artifactory",
    "hdfs",
    "oss",
    "azure",
    "plugin",
];

/// Argument artifacts of a call: one with `from` (already rendered from
/// `{{steps.X.outputs.artifacts.Y}}`, which the scope holds as the artifact's JSON) becomes
/// that artifact under the argument's name; an optional one that did not resolve is dropped.
pub(super) fn resolve_artifact_args(
    what: &str,
    arts: Option<&Vec<Value>>,
) -> Result<Vec<Value>, OperatorError> {
    let mut out = Vec::new();
    for a in arts.into_iter().flatten() {
        let name = a.get("name").cloned().unwrap_or(Value::Null);
        let Some(from) = a.get("from").and_then(Value::as_str) else {
            out.push(a.clone());
            continue;
        };
        match serde_json::from_str::<Value>(from) {
            Ok(Value::Object(mut found)) => {
                found.insert("name".into(), name);
                out.push(Value::Object(found));
            }
            _ if a.get("optional") == Some(&Value::Bool(true)) => {}
            _ => {
                let tag = from
                    .trim()
                    .trim_start_matches("{{")
                    .trim_end_matches("}}")
                    .trim();
                return Err(OperatorError::Render {
                    template: what.to_owned(),
                    field: format!("arguments.artifacts.{}.from", any_string(&name)),
                    source: expr::ExprError::Unresolved {
                        tag: tag.to_owned(),
                    },
                });
            }
        }
    }
    Ok(out)
}

/// The scope a template body is rendered with: globals plus `inputs.parameters.<name>` and
/// `inputs.parameters` (JSON list), as Argo's substitution of a template's inputs.
pub(super) fn local_scope(globals: &Scope, inputs: &Inputs) -> Scope {
    let mut s = globals.clone();
    let params = inputs.parameters.clone().unwrap_or_default();
    for p in &params {
        if let Some(v) = param_text(p) {
            s.insert(format!("inputs.parameters.{}", p.name), v);
        }
    }
    if !params.is_empty() {
        let json = serde_json::to_value(&params).map_or_else(|_| "[]".into(), |v| go_json(&v));
        s.insert("inputs.parameters", json);
    }
    for a in inputs.artifacts.iter().flatten() {
        if let (Some(name), Some(path)) = (
            a.get("name").and_then(Value::as_str),
            a.get("path").and_then(Value::as_str),
        ) {
            s.insert(format!("inputs.artifacts.{name}.path"), path.to_owned());
        }
    }
    s
}

/// Renders a whole template with `scope`, leaving what is not known yet (`{{steps.X...}}`,
/// `{{item}}`) for later stages, as Argo's allow-unresolved substitution does.
pub(super) fn render_template(tmpl: &Template, scope: &Scope) -> Result<Template, OperatorError> {
    let doc = serde_json::to_value(tmpl).map_err(|e| OperatorError::Encode {
        what: format!("template '{}'", tmpl.name),
        message: e.to_string(),
    })?;
    let rendered = expr::render_json(&doc, scope, Unresolved::Keep).map_err(|(path, source)| {
        OperatorError::Render {
            template: tmpl.name.clone(),
            field: path.trim_start_matches('.').to_owned(),
            source,
        }
    })?;
    serde_json::from_value(rendered).map_err(|e| OperatorError::Encode {
        what: format!("template '{}'", tmpl.name),
        message: e.to_string(),
    })
}

/// Renders any serializable step/task with `scope` (unresolved tags kept).
pub(super) fn render_value<T>(what: &str, value: &T, scope: &Scope) -> Result<T, OperatorError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let doc = serde_json::to_value(value).map_err(|e| OperatorError::Encode {
        what: what.to_owned(),
        message: e.to_string(),
    })?;
    let rendered = expr::render_json(&doc, scope, Unresolved::Keep).map_err(|(path, source)| {
        OperatorError::Render {
            template: what.to_owned(),
            field: path.trim_start_matches('.').to_owned(),
            source,
        }
    })?;
    serde_json::from_value(rendered).map_err(|e| OperatorError::Encode {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

/// Arguments of a call, every tag resolved (what is still unresolved here can never resolve:
/// Argo fails the step with "failed to resolve").
pub(super) fn resolve_args(
    what: &str,
    params: Option<&Vec<Parameter>>,
    scope: &Scope,
) -> Result<Vec<Parameter>, OperatorError> {
    let mut out = Vec::new();
    for p in params.into_iter().flatten() {
        let mut p = p.clone();
        if let Some(v) = &p.value {
            let text =
                expr::render(&any_string(v), scope).map_err(|source| OperatorError::Render {
                    template: what.to_owned(),
                    field: format!("arguments.parameters.{}", p.name),
                    source,
                })?;
            p.value = Some(Value::String(text));
        }
        out.push(p);
    }
    Ok(out)
}

/// Adds what later steps/tasks may read of a completed node under `prefix` (`steps.X` or
/// `tasks.X`): `id`, `status`, `startedAt`, `finishedAt`, `outputs.result`,
/// `outputs.exitCode` (and `exitCode`), `outputs.parameters.<name>`, `ip`.
pub(super) fn add_node_scope(scope: &mut Scope, prefix: &str, node: &NodeStatus) {
    let put = |scope: &mut Scope, k: &str, v: Option<&String>| {
        if let Some(v) = v {
            scope.insert(format!("{prefix}.{k}"), v.clone());
        }
    };
    put(scope, "id", node.id.as_ref());
    put(scope, "status", node.phase.as_ref());
    put(scope, "startedAt", node.started_at.as_ref());
    put(scope, "finishedAt", node.finished_at.as_ref());
    put(scope, "ip", node.pod_ip.as_ref());
    let Some(outputs) = &node.outputs else {
        return;
    };
    put(scope, "outputs.result", outputs.result.as_ref());
    put(scope, "outputs.exitCode", outputs.exit_code.as_ref());
    put(scope, "exitCode", outputs.exit_code.as_ref());
    for p in outputs.parameters.iter().flatten() {
        if let Some(v) = param_text(p) {
            scope.insert(format!("{prefix}.outputs.parameters.{}", p.name), v);
        }
    }
    for a in outputs.artifacts.iter().flatten() {
        if let Some(name) = a.get("name").and_then(Value::as_str) {
            scope.insert(format!("{prefix}.outputs.artifacts.{name}"), go_json(a));
        }
    }
}

/// Aggregated outputs of a loop's children (Argo's `processAggregateNodeOutputs`): only
/// Succeeded children count; `outputs.result` is a JSON list of the results (a result that is
/// JSON is embedded as JSON), `outputs.parameters` a JSON list of name → value maps, and
/// `outputs.parameters.<name>` a JSON list of that parameter's values.
pub(super) fn add_aggregate_scope(scope: &mut Scope, prefix: &str, children: &[&NodeStatus]) {
    let mut results = Vec::new();
    let mut maps = Vec::new();
    let mut by_name: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for child in children {
        if child.phase.as_deref() != Some("Succeeded") {
            continue;
        }
        let Some(outputs) = &child.outputs else {
            continue;
        };
        let params = outputs.parameters.clone().unwrap_or_default();
        if !params.is_empty() {
            let mut map = serde_json::Map::new();
            for p in &params {
                let v = param_text(p).unwrap_or_default();
                map.insert(p.name.clone(), Value::String(v.clone()));
                by_name
                    .entry(p.name.clone())
                    .or_default()
                    .push(Value::String(v));
            }
            maps.push(Value::Object(map));
        }
        if let Some(r) = &outputs.result {
            results.push(serde_json::from_str(r).unwrap_or_else(|_| Value::String(r.clone())));
        }
    }
    scope.insert(
        format!("{prefix}.outputs.result"),
        go_json(&Value::Array(results)),
    );
    scope.insert(
        format!("{prefix}.outputs.parameters"),
        go_json(&Value::Array(maps)),
    );
    for (name, values) in by_name {
        scope.insert(
            format!("{prefix}.outputs.parameters.{name}"),
            go_json(&Value::Array(values)),
        );
    }
}

/// The outputs of a finished steps/DAG template (Argo's `getTemplateOutputsFromScope`): each
/// output parameter from `valueFrom.parameter` (a tag read in the template's final scope),
/// `valueFrom.expression`, or `value`, falling back to `valueFrom.default`; each output
/// artifact from `from` (a tag) or `fromExpression` (an expression, usually a ternary between
/// children's artifacts), renamed to the declared name with its `globalName`; an `optional`
/// one that resolves to nothing is left out. `None` when the template declares no outputs.
pub(super) fn template_outputs(
    tmpl: &Template,
    scope: &Scope,
) -> Result<Option<Outputs>, OperatorError> {
    let Some(declared) = &tmpl.outputs else {
        return Ok(None);
    };
    let mut out = Outputs::default();
    let mut params = Vec::new();
    for p in declared.parameters.iter().flatten() {
        let vf = p.value_from.as_ref();
        let default = vf.and_then(|v| v.get("default")).map(any_string);
        let source = if let Some(tag) = vf.and_then(|v| v.get("parameter")).and_then(Value::as_str)
        {
            expr::render(tag, scope).map_err(|e| e.to_string())
        } else if let Some(src) = vf.and_then(|v| v.get("expression")).and_then(Value::as_str) {
            expr::parse(src)
                .and_then(|ast| expr::eval(&ast, scope))
                .map_err(|e| e.to_string())
                .map(|v| match v {
                    expr::Value::Str(s) => s,
                    other => other.go_json().unwrap_or_else(|| other.go_string()),
                })
        } else if let Some(v) = &p.value {
            expr::render(&any_string(v), scope).map_err(|e| e.to_string())
        } else {
            Err("no value".to_owned())
        };
        let value = match (source, default) {
            (Ok(v), _) => v,
            (Err(_), Some(d)) => d,
            (Err(message), None) => {
                return Err(OperatorError::OutputParameter {
                    template: tmpl.name.clone(),
                    parameter: p.name.clone(),
                    message,
                });
            }
        };
        params.push(Parameter {
            name: p.name.clone(),
            value: Some(Value::String(value)),
            global_name: p.global_name.clone(),
            ..Default::default()
        });
    }
    if !params.is_empty() {
        out.parameters = Some(params);
    }
    let mut artifacts = Vec::new();
    for a in declared.artifacts.iter().flatten() {
        if let Some(found) = composite_artifact(tmpl, a, scope)? {
            artifacts.push(found);
        }
    }
    if !artifacts.is_empty() {
        out.artifacts = Some(artifacts);
    }
    Ok(Some(out))
}

/// One declared output artifact of a steps/DAG template, resolved (see [`template_outputs`]).
fn composite_artifact(
    tmpl: &Template,
    declared: &Value,
    scope: &Scope,
) -> Result<Option<Value>, OperatorError> {
    let name = declared.get("name").and_then(Value::as_str).unwrap_or("");
    let optional = declared.get("optional") == Some(&Value::Bool(true));
    let found = if let Some(tag) = declared.get("from").and_then(Value::as_str) {
        expr::render(tag, scope).map_err(|e| e.to_string())
    } else if let Some(src) = declared.get("fromExpression").and_then(Value::as_str) {
        expr::parse(src)
            .and_then(|ast| expr::eval(&ast, scope))
            .map_err(|e| e.to_string())
            .map(|v| match v {
                expr::Value::Str(s) => s,
                other => other.go_json().unwrap_or_else(|| other.go_string()),
            })
    } else {
        // Neither: the declaration itself (a location given in place).
        return Ok(Some(declared.clone()));
    };
    // The scope holds each child's artifact as its JSON object.
    let parsed = found.and_then(|text| match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("'{text}' is not an artifact")),
    });
    match parsed {
        Ok(mut art) => {
            art.insert("name".into(), Value::String(name.to_owned()));
            match declared.get("globalName") {
                Some(g) => art.insert("globalName".into(), g.clone()),
                None => art.remove("globalName"),
            };
            Ok(Some(Value::Object(art)))
        }
        Err(_) if optional => Ok(None),
        Err(message) => Err(OperatorError::OutputArtifact {
            template: tmpl.name.clone(),
            artifact: name.to_owned(),
            message,
        }),
    }
}

/// The outputs of a pod node: what the executor reported, completed with the declared
/// parameters' `globalName` and, for a parameter the report lacks, its `valueFrom.default`.
pub(super) fn pod_outputs(tmpl: &Template, reported: Option<&Outputs>) -> Option<Outputs> {
    let mut out = reported.cloned().unwrap_or_default();
    let declared = tmpl
        .outputs
        .as_ref()
        .and_then(|o| o.parameters.clone())
        .unwrap_or_default();
    if !declared.is_empty() {
        let mut params = Vec::new();
        for d in &declared {
            let got = out
                .parameters
                .iter()
                .flatten()
                .find(|p| p.name == d.name)
                .and_then(|p| p.value.clone());
            let value = got.or_else(|| {
                d.value_from
                    .as_ref()
                    .and_then(|v| v.get("default"))
                    .map(|v| Value::String(any_string(v)))
            });
            if let Some(value) = value {
                params.push(Parameter {
                    name: d.name.clone(),
                    value: Some(value),
                    global_name: d.global_name.clone(),
                    ..Default::default()
                });
            }
        }
        // Parameters reported but not declared are kept (the executor knows best).
        for p in out.parameters.iter().flatten() {
            if !params.iter().any(|q| q.name == p.name) {
                params.push(p.clone());
            }
        }
        out.parameters = Some(params);
    }
    (out != Outputs::default()).then_some(out)
}

/// The items of a loop (`withItems`, `withParam`, `withSequence`), already rendered.
pub(super) fn expand_items(
    step: &str,
    with_items: Option<&Vec<Value>>,
    with_param: Option<&str>,
    with_sequence: Option<&Value>,
) -> Result<Vec<Value>, OperatorError> {
    if let Some(items) = with_items {
        return Ok(items.clone());
    }
    if let Some(text) = with_param {
        return match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => Ok(items),
            _ => Err(OperatorError::WithParam {
                step: step.to_owned(),
                value: text.trim().to_owned(),
            }),
        };
    }
    if let Some(seq) = with_sequence {
        return expand_sequence(step, seq);
    }
    Ok(Vec::new())
}

/// Argo's `expandSequence`: `count` items from `start`, or `start..=end` (descending when
/// `end < start`), each printed with `format` (a printf verb for an integer) or as a number.
fn expand_sequence(step: &str, seq: &Value) -> Result<Vec<Value>, OperatorError> {
    let bad = |problem: String| OperatorError::Sequence {
        step: step.to_owned(),
        problem,
    };
    let int = |field: &str| -> Result<Option<i64>, OperatorError> {
        match seq.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let text = any_string(v);
                let text = text.trim();
                if text.is_empty() {
                    return Ok(None);
                }
                text.parse::<i64>()
                    .map(Some)
                    .map_err(|_| bad(format!("{field} '{text}' is not an integer")))
            }
        }
    };
    let start = int("start")?.unwrap_or(0);
    let numbers: Vec<i64> = match (int("count")?, int("end")?) {
        (Some(_), Some(_)) => return Err(bad("only one of count or end can be defined".into())),
        (Some(count), None) => {
            if count < 0 {
                return Err(bad(format!("count {count} is negative")));
            }
            if count > MAX_ITEMS {
                return Err(bad(format!("count {count} exceeds {MAX_ITEMS} items")));
            }
            (0..count).map(|i| start + i).collect()
        }
        (None, end) => {
            let end = end.unwrap_or(0);
            if (end - start).abs() > MAX_ITEMS {
                return Err(bad(format!("{start}..{end} exceeds {MAX_ITEMS} items")));
            }
            if end >= start {
                (start..=end).collect()
            } else {
                (end..=start).rev().collect()
            }
        }
    };
    let format = seq.get("format").and_then(Value::as_str).unwrap_or("");
    numbers
        .into_iter()
        .map(|n| {
            if format.is_empty() {
                Ok(Value::String(n.to_string()))
            } else {
                go_sprintf_int(format, n).map(Value::String).map_err(bad)
            }
        })
        .collect()
}

/// At most this many loop items from a sequence: a typo such as `end: 1e9` must not exhaust
/// memory.
const MAX_ITEMS: i64 = 100_000;

/// Go's `fmt.Sprintf(format, n)` for one integer argument: verbs `d`, `x`, `X`, `o`, `b`, `v`
/// with flags `0`, `-`, `+` and a width; `%%` is a percent sign.
pub(super) fn go_sprintf_int(format: &str, n: i64) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut used = false;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let (mut zero, mut left, mut plus) = (false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '0' => zero = true,
                '-' => left = true,
                '+' => plus = true,
                _ => break,
            }
            chars.next();
        }
        let mut width = 0usize;
        while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
            width = width
                .saturating_mul(10)
                .saturating_add(d as usize)
                .min(1000);
            chars.next();
        }
        let verb = chars
            .next()
            .ok_or_else(|| format!("format '{format}' ends inside a verb"))?;
        if used {
            return Err(format!("format '{format}' has more than one verb"));
        }
        used = true;
        let magnitude = n.unsigned_abs();
        let digits = match verb {
            'd' | 'v' => magnitude.to_string(),
            'x' => format!("{magnitude:x}"),
            'X' => format!("{magnitude:X}"),
            'o' => format!("{magnitude:o}"),
            'b' => format!("{magnitude:b}"),
            other => {
                return Err(format!(
                    "format '{format}': verb %{other} is not an integer verb"
                ));
            }
        };
        let sign = if n < 0 {
            "-"
        } else if plus {
            "+"
        } else {
            ""
        };
        let len = sign.len() + digits.len();
        let pad = width.saturating_sub(len);
        if left {
            out.push_str(sign);
            out.push_str(&digits);
            out.push_str(&" ".repeat(pad));
        } else if zero {
            out.push_str(sign);
            out.push_str(&"0".repeat(pad));
            out.push_str(&digits);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(sign);
            out.push_str(&digits);
        }
    }
    Ok(out)
}

/// The part of a loop child's node name after the index (Argo's `generateNodeName`): a scalar
/// as Go's `%v` prints it, a map as its sorted `key:value` pairs joined by commas, a list as
/// JSON.
pub(super) fn item_description(item: &Value) -> String {
    match item {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            let mut pairs: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", item_description(v)))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        Value::Array(_) => go_json(item),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

/// `<base>(<index>:<item>)`: a loop child's node name.
pub(super) fn loop_child_name(base: &str, index: usize, item: &Value) -> String {
    format!("{base}({index}:{})", item_description(item))
}
