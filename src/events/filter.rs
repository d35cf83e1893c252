//! Dependency filters: whether an event satisfies a Sensor dependency, with Argo Events'
//! semantics, and a readable reason when it does not (the sensor history shows it).
//!
//! Filter kinds are evaluated in Argo's order — `exprs`, `data`, `context`, `time` — and
//! combined by `filtersLogicalOperator` (`and`, the default, or `or`: any kind that is present
//! and passes). Within `data` and `exprs`, `dataLogicalOperator` / `exprLogicalOperator` combine
//! the entries the same way. As in Argo, any error (a path that does not exist, a value that does
//! not parse, a template that fails) counts as "does not match" and becomes the reason.
//!
//! - `data`: the gjson `path` ([`crate::gjson`]) must exist; an optional Go `template` renders
//!   the value's text as `.Input` ([`super::gotemplate`]; empty or `<no value>` fails); then by
//!   `type`: `string` — each `value` is an RE2 regex searched (unanchored, as Go's
//!   `regexp.Match`) in the text, `comparator` `=` (default) or `!=`; `number` — float
//!   comparison with `comparator` `=`, `!=`, `<`, `<=`, `>`, `>=`; `bool` — Go's `ParseBool`
//!   of each value against gjson's truth of the event value. Any value that matches passes.
//! - `exprs`: each `fields` entry binds `name` to the value at `path` (JSON numbers are float64,
//!   as govaluate sees them); the govaluate `expr` ([`crate::workflow::expr::Condition`]) must
//!   be `true`. An entry with no fields is skipped (Argo).
//! - `context`: each non-empty attribute (type, subject, source, datacontenttype) must equal the
//!   event's.
//! - `time`: `start`/`stop` are `HH:MM:SS` on the event's day in the filter's zone (UTC, as Argo);
//!   the window is `[start, stop)`, crossing midnight when `stop` < `start`.
//! - `script` (Lua) is not supported: a dependency using it never matches and says why.
//!
//! Differences from Argo, each deliberate: a logical operator other than `and`/`or`/empty is an
//! error (Argo silently treats it as `and`); a comparator a type cannot use is an error (Argo
//! silently fails to match); `or` over a filters object with no kinds set matches (Argo: never).
//! [`validate`] reports the static mistakes up front, naming sensor, dependency and field.
//!
//! Invariants: pure; time is an input; no input panics.

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use serde_json::Value;

use super::event::Event;
use super::gotemplate;
use super::types::{
    ContextFilter, DataFilter, EventDependency, EventDependencyFilter, ExprFilter, TimeFilter,
};
use crate::gjson;
use crate::workflow::expr::{Condition, ExprError, Regex, Value as EValue};

/// Whether an event satisfies a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The event satisfies every filter the operators require.
    Match,
    /// It does not; why, in words.
    NoMatch(String),
}

impl Verdict {
    /// Whether this is [`Verdict::Match`].
    pub fn matched(&self) -> bool {
        matches!(self, Verdict::Match)
    }
}

/// A filter that cannot work as written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// A field of a dependency's filters is invalid.
    #[error("sensor {sensor}: dependency {dependency}: {field}: {message}")]
    Invalid {
        /// Sensor `namespace/name`.
        sensor: String,
        /// Dependency name.
        dependency: String,
        /// Path of the field (`filters.data[0].comparator`).
        field: String,
        /// What was expected.
        message: String,
    },
}

impl FilterError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            FilterError::Invalid { .. } => "invalid_filter",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    And,
    Or,
}

fn logical(field: &str, v: Option<&str>) -> Result<Op, (String, String)> {
    match v.unwrap_or("") {
        "" | "and" => Ok(Op::And),
        "or" => Ok(Op::Or),
        other => Err((
            field.to_owned(),
            format!("unknown logical operator {other:?} (expected \"and\" or \"or\", lower case)"),
        )),
    }
}

/// Checks a dependency's filters statically: operators, types, comparators, values, regexes,
/// templates, expressions and times. Every problem found is returned.
pub fn validate(sensor: &str, dep: &EventDependency) -> Vec<FilterError> {
    let mut problems: Vec<(String, String)> = Vec::new();
    if let Err(p) = logical(
        "filtersLogicalOperator",
        dep.filters_logical_operator.as_deref(),
    ) {
        problems.push(p);
    }
    if let Some(f) = &dep.filters {
        for (field, v) in [
            ("filters.dataLogicalOperator", &f.data_logical_operator),
            ("filters.exprLogicalOperator", &f.expr_logical_operator),
        ] {
            if let Err(p) = logical(field, v.as_deref()) {
                problems.push(p);
            }
        }
        for (i, d) in f.data.iter().flatten().enumerate() {
            let field = |name: &str| format!("filters.data[{i}].{name}");
            if d.path.is_empty() {
                problems.push((field("path"), "a gjson path is required".into()));
            }
            if d.value.as_ref().is_none_or(Vec::is_empty) {
                problems.push((field("value"), "at least one value is required".into()));
            }
            if let Some(t) = &d.template
                && let Err(e) = gotemplate::parse(t)
            {
                problems.push((field("template"), e));
            }
            if let Err(e) = comparator(d) {
                problems.push((field("comparator"), e));
            }
            for (j, v) in d.value.iter().flatten().enumerate() {
                if let Err(e) = parse_value(d, v) {
                    problems.push((field(&format!("value[{j}]")), e));
                }
            }
        }
        for (i, e) in f.exprs.iter().flatten().enumerate() {
            if let Err(err) = Condition::parse(&e.expr) {
                problems.push((format!("filters.exprs[{i}].expr"), govaluate_message(err)));
            }
            for (j, fl) in e.fields.iter().flatten().enumerate() {
                if fl.name.is_empty() || fl.path.is_empty() {
                    problems.push((
                        format!("filters.exprs[{i}].fields[{j}]"),
                        "name and path are required".into(),
                    ));
                }
            }
        }
        if let Some(t) = &f.time {
            for (name, v) in [("start", &t.start), ("stop", &t.stop)] {
                if let Err(e) = parse_hms(v) {
                    problems.push((format!("filters.time.{name}"), e));
                }
            }
        }
        if f.script.as_deref().is_some_and(|s| !s.is_empty()) {
            problems.push((
                "filters.script".into(),
                "Lua script filters are not supported by cairn".into(),
            ));
        }
    }
    problems
        .into_iter()
        .map(|(field, message)| FilterError::Invalid {
            sensor: sensor.to_owned(),
            dependency: dep.name.clone(),
            field,
            message,
        })
        .collect()
}

/// Decides whether `event` satisfies `dep`'s filters (time filters in UTC, as Argo).
pub fn filter_event(dep: &EventDependency, event: &Event) -> Verdict {
    filter_event_in(dep, event, &TimeZone::UTC)
}

/// [`filter_event`] with time filters read in `tz`.
pub fn filter_event_in(dep: &EventDependency, event: &Event, tz: &TimeZone) -> Verdict {
    let Some(filters) = &dep.filters else {
        return Verdict::Match;
    };
    let op = match logical(
        "filtersLogicalOperator",
        dep.filters_logical_operator.as_deref(),
    ) {
        Ok(op) => op,
        Err((field, msg)) => return Verdict::NoMatch(format!("{field}: {msg}")),
    };
    let kinds = kinds(filters, event, tz);
    if kinds.is_empty() {
        return Verdict::Match;
    }
    match op {
        Op::And => match kinds.into_iter().find_map(|r| r.err()) {
            None => Verdict::Match,
            Some(reason) => Verdict::NoMatch(reason),
        },
        Op::Or => {
            let mut reasons = Vec::new();
            for r in kinds {
                match r {
                    Ok(()) => return Verdict::Match,
                    Err(reason) => reasons.push(reason),
                }
            }
            Verdict::NoMatch(format!("no filter kind matched: {}", reasons.join(" / ")))
        }
    }
}

/// The result of each filter kind that is present, in Argo's order.
fn kinds(f: &EventDependencyFilter, event: &Event, tz: &TimeZone) -> Vec<Result<(), String>> {
    let mut out = Vec::new();
    if let Some(exprs) = &f.exprs {
        out.push(exprs_filter(
            exprs,
            f.expr_logical_operator.as_deref(),
            &event.data,
        ));
    }
    if let Some(data) = &f.data {
        out.push(data_filter(
            data,
            f.data_logical_operator.as_deref(),
            &event.data,
        ));
    }
    if let Some(ctx) = &f.context {
        out.push(context_filter(ctx, event));
    }
    if let Some(t) = &f.time {
        out.push(time_filter(t, event.context.time, tz));
    }
    if f.script.as_deref().is_some_and(|s| !s.is_empty()) {
        out.push(Err(
            "script filter: Lua script filters are not supported by cairn".into(),
        ));
    }
    out
}

/// Combines per-entry results under `op`; `kind` names the filter kind in reasons.
fn combine(
    kind: &str,
    operator: Option<&str>,
    field: &str,
    results: impl Iterator<Item = Option<Result<(), String>>>,
) -> Result<(), String> {
    let op = logical(field, operator).map_err(|(f, m)| format!("{f}: {m}"))?;
    let mut reasons = Vec::new();
    for r in results {
        match (op, r) {
            (_, None) => {}
            (Op::And, Some(Err(reason))) => return Err(format!("{kind} filter {reason}")),
            (Op::And, Some(Ok(()))) => {}
            (Op::Or, Some(Ok(()))) => return Ok(()),
            (Op::Or, Some(Err(reason))) => reasons.push(reason),
        }
    }
    match op {
        Op::And => Ok(()),
        Op::Or if reasons.is_empty() => Err(format!("{kind} filters: none to match")),
        Op::Or => Err(format!(
            "{kind} filters: none matched: {}",
            reasons.join(" / ")
        )),
    }
}

fn data_filter(filters: &[DataFilter], operator: Option<&str>, data: &Value) -> Result<(), String> {
    if filters.is_empty() || data.is_null() {
        return Ok(());
    }
    combine(
        "data",
        operator,
        "filters.dataLogicalOperator",
        filters.iter().map(|f| Some(data_one(f, data))),
    )
}

fn comparator(f: &DataFilter) -> Result<&str, String> {
    let c = f.comparator.as_deref().unwrap_or("");
    let allowed: &[&str] = match f.type_.as_str() {
        "string" | "bool" => &["", "=", "!="],
        _ => &["", "=", "!=", "<", "<=", ">", ">="],
    };
    if allowed.contains(&c) {
        Ok(if c.is_empty() { "=" } else { c })
    } else {
        Err(format!(
            "comparator {c:?} does not apply to type {:?} (expected one of {})",
            f.type_,
            allowed[1..].join(", ")
        ))
    }
}

enum Want {
    Str(Regex),
    Num(f64),
    Bool(bool),
}

fn parse_value(f: &DataFilter, v: &str) -> Result<Want, String> {
    match f.type_.as_str() {
        "string" => Regex::new(v)
            .map(Want::Str)
            .map_err(|e| format!("invalid regex {v:?}: {e}")),
        "number" => v
            .trim()
            .parse::<f64>()
            .map(Want::Num)
            .map_err(|_| format!("{v:?} is not a number")),
        "bool" => go_parse_bool(v)
            .map(Want::Bool)
            .ok_or_else(|| format!("{v:?} is not a boolean")),
        other => Err(format!(
            "unsupported type {other:?} (expected string, number or bool)"
        )),
    }
}

fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// gjson's `Float()`.
fn gjson_float(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        Value::Bool(true) => 1.0,
        _ => 0.0,
    }
}

/// gjson's `Bool()`.
fn gjson_bool(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => go_parse_bool(s).unwrap_or(false),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

fn data_one(f: &DataFilter, data: &Value) -> Result<(), String> {
    let Some(mut got) = gjson::get(data, &f.path) else {
        return Err(format!("path '{}' not found in the event", f.path));
    };
    let values = f.value.as_deref().unwrap_or_default();
    if values.is_empty() {
        return Err(format!("path '{}': no values specified", f.path));
    }
    if let Some(t) = f.template.as_deref().filter(|t| !t.is_empty()) {
        let input = Value::String(gjson::string(&got));
        let out = gotemplate::render_input(t, &input)
            .map_err(|e| format!("path '{}': template {t:?}: {e}", f.path))?;
        if out.is_empty() || out == "<no value>" {
            return Err(format!(
                "path '{}': template {t:?} evaluated to an empty string or no value",
                f.path
            ));
        }
        got = Value::String(out);
    }
    let cmp = comparator(f).map_err(|e| format!("path '{}': {e}", f.path))?;
    for v in values {
        let want = parse_value(f, v).map_err(|e| format!("path '{}': {e}", f.path))?;
        let hit = match want {
            Want::Str(re) => re.is_match(&gjson::string(&got)) == (cmp == "="),
            Want::Bool(b) => (gjson_bool(&got) == b) == (cmp == "="),
            Want::Num(n) => {
                let have = gjson_float(&got);
                match cmp {
                    "=" => have == n,
                    "!=" => have != n,
                    "<" => have < n,
                    "<=" => have <= n,
                    ">" => have > n,
                    _ => have >= n,
                }
            }
        };
        if hit {
            return Ok(());
        }
    }
    let shown = if cmp == "=" {
        String::new()
    } else {
        format!("{cmp} ")
    };
    Err(format!(
        "path '{}': value {} matches none of {shown}{values:?} ({})",
        f.path,
        gjson_display(&got),
        f.type_
    ))
}

/// The event value as shown in a reason, cut short so a large body cannot flood the history.
fn gjson_display(v: &Value) -> String {
    const MAX: usize = 80;
    let s = v.to_string();
    if s.len() <= MAX {
        return s;
    }
    let cut = (0..=MAX)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &s[..cut])
}

fn exprs_filter(
    filters: &[ExprFilter],
    operator: Option<&str>,
    data: &Value,
) -> Result<(), String> {
    if filters.is_empty() || data.is_null() {
        return Ok(());
    }
    combine(
        "expr",
        operator,
        "filters.exprLogicalOperator",
        filters.iter().map(|f| expr_one(f, data)),
    )
}

fn expr_one(f: &ExprFilter, data: &Value) -> Option<Result<(), String>> {
    let mut vars: Vec<(String, EValue)> = Vec::new();
    for field in f.fields.iter().flatten() {
        match gjson::get(data, &field.path) {
            Some(v) => vars.push((field.name.clone(), gotemplate::go_value(&v))),
            None => return Some(Err(format!("path '{}' not found in the event", field.path))),
        }
    }
    if vars.is_empty() {
        return None;
    }
    let cond = match Condition::parse(&f.expr) {
        Ok(c) => c,
        Err(e) => return Some(Err(format!("'{}': {}", f.expr, govaluate_message(e)))),
    };
    let lookup = |name: &str| vars.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    Some(match cond.eval_with(&lookup) {
        Ok(EValue::Bool(true)) => Ok(()),
        Ok(EValue::Bool(false)) => Err(format!("'{}' is false", f.expr)),
        Ok(other) => Err(format!(
            "'{}' is not a boolean (got {})",
            f.expr,
            other.go_string()
        )),
        Err(e) => Err(format!("'{}': {}", f.expr, govaluate_message(e))),
    })
}

/// The message of a govaluate error without the `when` wording of the workflow engine.
fn govaluate_message(e: ExprError) -> String {
    match e {
        ExprError::When { message, .. } => message,
        other => other.to_string(),
    }
}

fn context_filter(f: &ContextFilter, event: &Event) -> Result<(), String> {
    let c = &event.context;
    for (name, want, have) in [
        ("type", &f.type_, &c.type_),
        ("subject", &f.subject, &c.subject),
        ("source", &f.source, &c.source),
        ("datacontenttype", &f.datacontenttype, &c.datacontenttype),
    ] {
        if let Some(w) = want.as_deref().filter(|w| !w.is_empty())
            && w != have
        {
            return Err(format!(
                "context filter {name}: expected {w:?}, the event has {have:?}"
            ));
        }
    }
    Ok(())
}

fn parse_hms(s: &str) -> Result<Time, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [h, m, sec] = parts[..] else {
        return Err(format!("{s:?} is not a time of day HH:MM:SS"));
    };
    let num = |p: &str, max: i8| -> Option<i8> {
        (p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<i8>().ok())
            .flatten()
            .filter(|n| *n <= max)
    };
    match (num(h, 23), num(m, 59), num(sec, 59)) {
        (Some(h), Some(m), Some(sec)) => Time::new(h, m, sec, 0).map_err(|e| format!("{s:?}: {e}")),
        _ => Err(format!("{s:?} is not a time of day HH:MM:SS")),
    }
}

/// Whether `at` falls in the daily window of `f` in zone `tz`: `[start, stop)`, or, when `stop`
/// is not after `start`, `[start, midnight) ∪ [midnight, stop)` (equal times: always).
pub fn time_filter(f: &TimeFilter, at: Timestamp, tz: &TimeZone) -> Result<(), String> {
    let start = parse_hms(&f.start).map_err(|e| format!("time filter start: {e}"))?;
    let stop = parse_hms(&f.stop).map_err(|e| format!("time filter stop: {e}"))?;
    let local = at.to_zoned(tz.clone()).time();
    let inside = if start < stop {
        local >= start && local < stop
    } else {
        local >= start || local < stop
    };
    if inside {
        Ok(())
    } else {
        Err(format!(
            "time filter: event time {} is outside [{}, {})",
            local.strftime("%H:%M:%S"),
            f.start,
            f.stop
        ))
    }
}

#[cfg(test)]
mod tests;
