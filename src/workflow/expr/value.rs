//! Values of the expression language and their text forms as Argo (a Go program) prints them.
//!
//! Argo's output depends on two Go formatters: `fmt.Sprintf("%v")` (used by `string()`,
//! govaluate's string concatenation, sprig's `toString`) and `encoding/json.Marshal` (used for
//! an expression tag's non-string result, `toJson` and `{{item}}` of an object). Both are
//! reproduced here exactly for the values the engine produces, so a rendered argument is
//! byte-for-byte what Argo would pass to the pod.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::time::{Duration, Time};

/// A value of the expression language.
///
/// Maps are ordered by key: Go maps have no order, and Go's JSON encoder and `%v` print keys
/// sorted, so sorted maps give the same text without a sort at every print.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `nil`; also what a missing map key reads as.
    #[default]
    Nil,
    /// `true` / `false`.
    Bool(bool),
    /// A Go `int` (64-bit).
    Int(i64),
    /// A Go `float64`.
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    List(Vec<Value>),
    /// A map with string keys.
    Map(BTreeMap<String, Value>),
    /// A Go `time.Time` (`now()`, `date(s)`, `cronworkflow.lastScheduledTime`).
    Time(Time),
    /// A Go `time.Duration` (`duration(s)`, `t1 - t2`).
    Duration(Duration),
}

impl Value {
    /// The expr-lang type name, used in error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) => "array",
            Value::Map(_) => "map",
            Value::Time(_) => "time.Time",
            Value::Duration(_) => "time.Duration",
        }
    }

    /// The number as a float, when this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The value as JSON. Non-finite floats (which JSON cannot hold) become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::List(l) => serde_json::Value::Array(l.iter().map(Value::to_json).collect()),
            Value::Map(m) => {
                serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
            Value::Time(t) => serde_json::Value::String(t.rfc3339()),
            Value::Duration(d) => serde_json::Value::from(d.nanos()),
        }
    }

    /// Go's `fmt.Sprintf("%v", v)`.
    pub fn go_string(&self) -> String {
        let mut out = String::new();
        write_go_v(&mut out, self);
        out
    }

    /// Go's `json.Marshal(v)` (compact, sorted keys, HTML-safe escaping); `None` for NaN and
    /// infinities, which Go refuses to encode.
    pub fn go_json(&self) -> Option<String> {
        let mut out = String::new();
        write_go_json(&mut out, self, true).then_some(out)
    }
}

impl From<serde_json::Value> for Value {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::List(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(o) => {
                Value::Map(o.into_iter().map(|(k, v)| (k, Value::from(v))).collect())
            }
        }
    }
}

impl From<&serde_json::Value> for Value {
    fn from(v: &serde_json::Value) -> Self {
        Value::from(v.clone())
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Self {
        Value::Str(s.clone())
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Splits Rust's shortest `{:e}` form into (digits with optional point, decimal exponent).
fn sci_parts(f: f64) -> (String, i32) {
    let s = format!("{:e}", f.abs());
    match s.split_once('e') {
        Some((mant, exp)) => (mant.to_owned(), exp.parse().unwrap_or(0)),
        None => (s, 0),
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which is what `%v` prints for a float64:
/// shortest digits, exponent form when the exponent is < -4 or >= 6 (the "shortest" rule).
pub fn go_float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (mant, exp) = sci_parts(f);
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

/// Go's `encoding/json` float64 encoding: positional unless |f| < 1e-6 or >= 1e21.
pub fn go_float_json(f: f64) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mant, exp) = sci_parts(f);
        let sign = if f < 0.0 { "-" } else { "" };
        let esign = if exp < 0 { "-" } else { "+" };
        // Go prints two exponent digits then trims "e-0X" to "e-X"; positive exponents here are
        // always >= 21, so the result is the plain exponent either way.
        Some(format!("{sign}{mant}e{esign}{}", exp.abs()))
    } else {
        Some(format!("{f}"))
    }
}

fn write_go_v(out: &mut String, v: &Value) {
    match v {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => out.push_str(&go_float_v(*f)),
        Value::Str(s) => out.push_str(s),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_v(out, e);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_v(out, e);
            }
            out.push(']');
        }
        Value::Time(t) => out.push_str(&t.go_string()),
        Value::Duration(d) => out.push_str(&d.go_string()),
    }
}

/// Writes a JSON string literal as Go's encoder does (`html` adds Go's default HTML escaping).
pub(crate) fn write_go_json_str(out: &mut String, s: &str, html: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' if html => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Returns false when a non-finite float makes the value unencodable.
pub(crate) fn write_go_json(out: &mut String, v: &Value, html: bool) -> bool {
    match v {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => match go_float_json(*f) {
            Some(s) => out.push_str(&s),
            None => return false,
        },
        Value::Str(s) => write_go_json_str(out, s, html),
        Value::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                if !write_go_json(out, e, html) {
                    return false;
                }
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json_str(out, k, html);
                out.push(':');
                if !write_go_json(out, e, html) {
                    return false;
                }
            }
            out.push('}');
        }
        Value::Time(t) => write_go_json_str(out, &t.rfc3339(), html),
        Value::Duration(d) => {
            let _ = write!(out, "{}", d.nanos());
        }
    }
    true
}

/// Go's `json.MarshalIndent(v, "", "  ")` (expr's `toJSON`).
pub(crate) fn go_json_indent(v: &Value) -> Option<String> {
    fn go(out: &mut String, v: &Value, depth: usize) -> bool {
        let pad = |out: &mut String, d: usize| {
            out.push('\n');
            for _ in 0..d {
                out.push_str("  ");
            }
        };
        match v {
            Value::List(l) if !l.is_empty() => {
                out.push('[');
                for (i, e) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    if !go(out, e, depth + 1) {
                        return false;
                    }
                }
                pad(out, depth);
                out.push(']');
                true
            }
            Value::Map(m) if !m.is_empty() => {
                out.push('{');
                for (i, (k, e)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    pad(out, depth + 1);
                    write_go_json_str(out, k, true);
                    out.push_str(": ");
                    if !go(out, e, depth + 1) {
                        return false;
                    }
                }
                pad(out, depth);
                out.push('}');
                true
            }
            other => write_go_json(out, other, true),
        }
    }
    let mut out = String::new();
    go(&mut out, v, 0).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_v_floats() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (0.5, "0.5"),
            (123456.0, "123456"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5, "-2.5"),
            (1e21, "1e+21"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float_v(*f), *want, "{f}");
        }
    }

    #[test]
    fn go_json_floats() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1"),
            (1_000_000.0, "1000000"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (1.5e-10, "1.5e-10"),
            (0.000001, "0.000001"),
            (-0.25, "-0.25"),
        ];
        for (f, want) in cases {
            assert_eq!(go_float_json(*f).as_deref(), Some(*want), "{f}");
        }
        assert_eq!(go_float_json(f64::NAN), None);
    }

    #[test]
    fn go_v_composites() {
        let v = Value::from(serde_json::json!({"b": [1, "x", true], "a": null}));
        assert_eq!(v.go_string(), "map[a:<nil> b:[1 x true]]");
    }

    #[test]
    fn go_json_escapes_like_go() {
        let v = Value::from(serde_json::json!({"z": "<a&b>", "a": "line\nq\"\u{1}"}));
        assert_eq!(
            v.go_json().as_deref(),
            Some(r#"{"a":"line\nq\"\u0001","z":"\u003ca\u0026b\u003e"}"#)
        );
        assert_eq!(Value::Float(f64::INFINITY).go_json(), None);
    }

    #[test]
    fn json_indent_matches_go() {
        let v = Value::from(serde_json::json!({"a": [1, 2], "b": {}}));
        assert_eq!(
            go_json_indent(&v).as_deref(),
            Some("{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {}\n}")
        );
    }
}
