//! Functions of `{{=...}}` expressions: expr-lang's builtins, Argo's additions (`asInt`,
//! `asFloat`, `toJson`, `jsonpath`) and the `sprig.*` helpers.
//!
//! Sprig functions keep sprig's argument order (the "piped" value last: `sprig.replace(old, new,
//! s)`) and its forgiving conversions (`sprig.int("abc")` is 0), as Argo's docs warn. Expr-lang
//! builtins are strict (`int("abc")` is an error).

use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::Digest as _;

use super::lang::{EResult, Eval, MAX_LIST, Node, compare, equal, truthy_bool};
use super::regex::Regex;
use super::time::{Duration, Time};
use super::value::{Value, go_json_indent, write_go_json};

/// Caps strings built by `repeat`, `+` and friends, so one expression cannot exhaust memory.
pub(crate) const MAX_STRING: usize = 4 << 20;

pub(crate) fn check_len(len: usize, pos: usize) -> Result<(), (usize, String)> {
    if len > MAX_STRING {
        return Err((pos, format!("result longer than {MAX_STRING} bytes")));
    }
    Ok(())
}

const PREDICATES: &[&str] = &[
    "all",
    "none",
    "any",
    "one",
    "filter",
    "map",
    "count",
    "find",
    "findIndex",
    "findLast",
    "findLastIndex",
    "groupBy",
    "sortBy",
    "sum",
    "reduce",
];

const BUILTINS: &[&str] = &[
    "now",
    "date",
    "duration",
    "len",
    "abs",
    "ceil",
    "floor",
    "round",
    "int",
    "float",
    "string",
    "asInt",
    "asFloat",
    "toJson",
    "toJSON",
    "fromJSON",
    "jsonpath",
    "trim",
    "trimPrefix",
    "trimSuffix",
    "upper",
    "lower",
    "split",
    "splitAfter",
    "replace",
    "repeat",
    "indexOf",
    "lastIndexOf",
    "hasPrefix",
    "hasSuffix",
    "join",
    "keys",
    "values",
    "first",
    "last",
    "get",
    "take",
    "reverse",
    "sort",
    "concat",
    "flatten",
    "uniq",
    "toPairs",
    "fromPairs",
    "type",
    "max",
    "min",
    "mean",
    "median",
    "toBase64",
    "fromBase64",
];

const SPRIG: &[&str] = &[
    "upper",
    "lower",
    "title",
    "untitle",
    "trim",
    "trimAll",
    "trimPrefix",
    "trimSuffix",
    "replace",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "trunc",
    "quote",
    "squote",
    "cat",
    "repeat",
    "substr",
    "nospace",
    "indent",
    "nindent",
    "abbrev",
    "snakecase",
    "camelcase",
    "kebabcase",
    "split",
    "splitList",
    "join",
    "toString",
    "toStrings",
    "int",
    "int64",
    "float64",
    "atoi",
    "toDecimal",
    "add",
    "add1",
    "sub",
    "mul",
    "div",
    "mod",
    "max",
    "min",
    "addf",
    "subf",
    "mulf",
    "divf",
    "ceil",
    "floor",
    "round",
    "default",
    "empty",
    "coalesce",
    "ternary",
    "list",
    "dict",
    "get",
    "set",
    "hasKey",
    "keys",
    "values",
    "pluck",
    "dig",
    "first",
    "last",
    "rest",
    "initial",
    "append",
    "prepend",
    "concat",
    "reverse",
    "uniq",
    "compact",
    "without",
    "has",
    "slice",
    "sortAlpha",
    "until",
    "untilStep",
    "b64enc",
    "b64dec",
    "toJson",
    "toRawJson",
    "toPrettyJson",
    "fromJson",
    "mustFromJson",
    "regexMatch",
    "mustRegexMatch",
    "regexFind",
    "regexFindAll",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "regexSplit",
    "sha256sum",
    "sha1sum",
    "kindOf",
    "typeOf",
    "kindIs",
    "len",
    "plural",
    "wrap",
    "shuffle",
];

pub(crate) fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name) || PREDICATES.contains(&name)
}

pub(crate) fn is_predicate(name: &str) -> bool {
    PREDICATES.contains(&name)
}

pub(crate) fn is_sprig(name: &str) -> bool {
    // `shuffle` is random and SHA-1 is not available: both are refused when parsing.
    SPRIG.contains(&name) && name != "shuffle" && name != "sha1sum"
}

fn arity(name: &str, args: usize, min: usize, max: usize) -> Result<(), String> {
    if args < min || args > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(format!("{name} takes {want} arguments, got {args}"));
    }
    Ok(())
}

fn want_str<'v>(v: &'v Value, what: &str) -> Result<&'v str, String> {
    match v {
        Value::Str(s) => Ok(s),
        other => Err(format!(
            "{what} must be a string, got {}",
            other.type_name()
        )),
    }
}

fn want_list<'v>(v: &'v Value, what: &str) -> Result<&'v [Value], String> {
    match v {
        Value::List(l) => Ok(l),
        other => Err(format!(
            "{what} must be an array, got {}",
            other.type_name()
        )),
    }
}

fn want_int(v: &Value, what: &str) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!("{what} must be an int, got {}", other.type_name())),
    }
}

/// Go's `strconv.Atoi`.
fn atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for the forms users write.
fn parse_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    if t.is_empty() || t.contains('_') || t.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    s.parse().ok()
}

fn to_int(v: &Value) -> Result<Value, String> {
    match v {
        Value::Int(i) => Ok(Value::Int(*i)),
        Value::Float(f) => Ok(Value::Int(*f as i64)),
        Value::Str(s) => atoi(s)
            .map(Value::Int)
            .ok_or_else(|| format!("invalid operation: int({s:?}): not an integer")),
        other => Err(format!("invalid operation: int({})", other.type_name())),
    }
}

fn to_float(v: &Value) -> Result<Value, String> {
    match v {
        Value::Int(i) => Ok(Value::Float(*i as f64)),
        Value::Float(f) => Ok(Value::Float(*f)),
        Value::Str(s) => parse_float(s)
            .map(Value::Float)
            .ok_or_else(|| format!("invalid operation: float({s:?}): not a number")),
        other => Err(format!("invalid operation: float({})", other.type_name())),
    }
}

fn compact_json(v: &Value) -> Result<String, String> {
    v.go_json()
        .ok_or_else(|| "json: unsupported value (NaN or Inf)".to_string())
}

fn from_json(s: &str) -> Result<Value, String> {
    serde_json::from_str::<serde_json::Value>(s)
        .map(Value::from)
        .map_err(|e| format!("invalid JSON: {e}"))
}

fn round_half_away(f: f64) -> f64 {
    f.round()
}

fn numbers(args: &[Value], name: &str) -> Result<Vec<Value>, String> {
    let flat: Vec<Value> = if args.len() == 1 {
        match &args[0] {
            Value::List(l) => l.clone(),
            v => vec![v.clone()],
        }
    } else {
        args.to_vec()
    };
    for v in &flat {
        if v.as_f64().is_none() {
            return Err(format!("{name}: {} is not a number", v.type_name()));
        }
    }
    Ok(flat)
}

fn sorted_values(mut items: Vec<Value>, desc: bool) -> Result<Vec<Value>, String> {
    let mut err = None;
    items.sort_by(|a, b| {
        compare(a, b).unwrap_or_else(|| {
            err = Some(format!(
                "cannot compare {} and {}",
                a.type_name(),
                b.type_name()
            ));
            std::cmp::Ordering::Equal
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    if desc {
        items.reverse();
    }
    Ok(items)
}

fn order_desc(v: Option<&Value>) -> Result<bool, String> {
    match v {
        None => Ok(false),
        Some(Value::Str(s)) if s == "asc" => Ok(false),
        Some(Value::Str(s)) if s == "desc" => Ok(true),
        Some(other) => Err(format!(
            "order must be \"asc\" or \"desc\", got {}",
            other.go_string()
        )),
    }
}

/// Calls an expr-lang builtin or Argo function; predicate arguments are evaluated per element.
pub(crate) fn call_builtin(ev: &mut Eval<'_>, name: &str, args: &[Node], pos: usize) -> EResult {
    if is_predicate(name) {
        return call_predicate(ev, name, args, pos);
    }
    let vals = args
        .iter()
        .map(|a| ev.eval(a))
        .collect::<Result<Vec<_>, _>>()?;
    if name == "now" {
        return match (vals.len(), ev.clock()) {
            (0, Some(t)) => Ok(Value::Time(t)),
            (0, None) => Err((
                pos,
                "now: no clock in this context (only a caller that sets one, such as a \
                 CronWorkflow's when or stopStrategy, provides now())"
                    .into(),
            )),
            (n, _) => Err((pos, format!("now: takes no arguments, got {n}"))),
        };
    }
    builtin(name, &vals, pos).map_err(|m| (pos, format!("{name}: {m}")))
}

fn call_predicate(ev: &mut Eval<'_>, name: &str, args: &[Node], pos: usize) -> EResult {
    let fail = |m: String| (pos, format!("{name}: {m}"));
    let Some(first) = args.first() else {
        return Err(fail("missing the array argument".into()));
    };
    let coll = ev.eval(first)?;
    let items: Vec<Value> = match coll {
        Value::List(l) => l,
        Value::Map(m) if name == "map" || name == "filter" => m.into_values().collect(),
        Value::Nil => Vec::new(),
        other => {
            return Err(fail(format!(
                "the first argument must be an array, got {}",
                other.type_name()
            )));
        }
    };
    let Some(pred) = args.get(1) else {
        return match name {
            "sum" => sum(&items).map_err(fail),
            "count" => {
                let mut n = 0;
                for i in &items {
                    if truthy_bool(i, pos, "count")? {
                        n += 1;
                    }
                }
                Ok(Value::Int(n))
            }
            _ => Err(fail("missing the predicate".into())),
        };
    };
    let max_args = match name {
        "sortBy" | "reduce" => 3,
        _ => 2,
    };
    if args.len() > max_args {
        return Err(fail(format!("too many arguments ({})", args.len())));
    }
    let mut results = Vec::with_capacity(items.len());
    if name == "reduce" {
        let mut iter = items.into_iter().enumerate();
        let mut acc = match args.get(2) {
            Some(init) => ev.eval(init)?,
            None => match iter.next() {
                Some((_, v)) => v,
                None => return Ok(Value::Nil),
            },
        };
        for (i, item) in iter {
            acc = ev.call_closure(pred, item, i as i64, acc)?;
        }
        return Ok(acc);
    }
    for (i, item) in items.iter().enumerate() {
        let r = ev.call_closure(pred, item.clone(), i as i64, Value::Nil)?;
        results.push(r);
    }
    let as_bool = |r: &Value| truthy_bool(r, pos, name);
    match name {
        "map" => Ok(Value::List(results)),
        "filter" => {
            let mut out = Vec::new();
            for (item, r) in items.into_iter().zip(&results) {
                if as_bool(r)? {
                    out.push(item);
                }
            }
            Ok(Value::List(out))
        }
        "all" | "none" | "any" | "one" | "count" => {
            let mut n = 0i64;
            for r in &results {
                if as_bool(r)? {
                    n += 1;
                }
            }
            let total = results.len() as i64;
            Ok(match name {
                "all" => Value::Bool(n == total),
                "none" => Value::Bool(n == 0),
                "any" => Value::Bool(n > 0),
                "one" => Value::Bool(n == 1),
                _ => Value::Int(n),
            })
        }
        "find" | "findIndex" | "findLast" | "findLastIndex" => {
            let mut hits = Vec::new();
            for (i, r) in results.iter().enumerate() {
                if as_bool(r)? {
                    hits.push(i);
                }
            }
            let hit = if name.starts_with("findLast") {
                hits.last()
            } else {
                hits.first()
            };
            Ok(match (name.ends_with("Index"), hit) {
                (true, Some(i)) => Value::Int(*i as i64),
                (true, None) => Value::Int(-1),
                (false, Some(i)) => items[*i].clone(),
                (false, None) => Value::Nil,
            })
        }
        "groupBy" => {
            let mut groups: BTreeMap<String, Value> = BTreeMap::new();
            for (item, key) in items.into_iter().zip(results) {
                let k = match key {
                    Value::Str(s) => s,
                    other => other.go_string(),
                };
                if let Value::List(l) = groups.entry(k).or_insert_with(|| Value::List(Vec::new())) {
                    l.push(item);
                }
            }
            Ok(Value::Map(groups))
        }
        "sortBy" => {
            let desc = match args.get(2) {
                Some(o) => order_desc(Some(&ev.eval(o)?)).map_err(fail)?,
                None => false,
            };
            let mut pairs: Vec<(Value, Value)> = results.into_iter().zip(items).collect();
            let mut err = None;
            pairs.sort_by(|a, b| {
                compare(&a.0, &b.0).unwrap_or_else(|| {
                    err = Some(format!(
                        "cannot compare {} and {}",
                        a.0.type_name(),
                        b.0.type_name()
                    ));
                    std::cmp::Ordering::Equal
                })
            });
            if let Some(e) = err {
                return Err(fail(e));
            }
            if desc {
                pairs.reverse();
            }
            Ok(Value::List(pairs.into_iter().map(|p| p.1).collect()))
        }
        "sum" => sum(&results).map_err(fail),
        _ => Err(fail("unknown predicate function".into())),
    }
}

fn sum(items: &[Value]) -> Result<Value, String> {
    let mut int = 0i64;
    let mut float = 0f64;
    let mut is_float = false;
    for v in items {
        match v {
            Value::Int(i) => int = int.wrapping_add(*i),
            Value::Float(f) => {
                is_float = true;
                float += f;
            }
            other => return Err(format!("cannot sum {}", other.type_name())),
        }
    }
    Ok(if is_float {
        Value::Float(float + int as f64)
    } else {
        Value::Int(int)
    })
}

fn builtin(name: &str, a: &[Value], pos: usize) -> Result<Value, String> {
    let n = a.len();
    let s0 = || want_str(&a[0], "the argument");
    match name {
        "date" => {
            if n > 1 {
                return Err("a layout or time-zone argument is not supported; \
                            write the date in RFC 3339 (2006-01-02T15:04:05Z07:00)"
                    .into());
            }
            arity(name, n, 1, 1)?;
            match &a[0] {
                Value::Time(t) => Ok(Value::Time(*t)),
                other => Time::parse(want_str(other, "the date")?).map(Value::Time),
            }
        }
        "duration" => {
            arity(name, n, 1, 1)?;
            match &a[0] {
                Value::Duration(d) => Ok(Value::Duration(*d)),
                other => Duration::parse(want_str(other, "the duration")?).map(Value::Duration),
            }
        }
        "len" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Int(match &a[0] {
                Value::Str(s) => s.chars().count() as i64,
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                other => {
                    return Err(format!(
                        "invalid argument for len (type {})",
                        other.type_name()
                    ));
                }
            }))
        }
        "abs" => {
            arity(name, n, 1, 1)?;
            match &a[0] {
                Value::Int(i) => Ok(Value::Int(i.wrapping_abs())),
                Value::Float(f) => Ok(Value::Float(f.abs())),
                other => Err(format!(
                    "invalid argument for abs (type {})",
                    other.type_name()
                )),
            }
        }
        "ceil" | "floor" | "round" => {
            arity(name, n, 1, 1)?;
            let f = a[0]
                .as_f64()
                .ok_or_else(|| format!("invalid argument (type {})", a[0].type_name()))?;
            Ok(Value::Float(match name {
                "ceil" => f.ceil(),
                "floor" => f.floor(),
                _ => round_half_away(f),
            }))
        }
        "int" | "asInt" => {
            arity(name, n, 1, 1)?;
            to_int(&a[0])
        }
        "float" | "asFloat" => {
            arity(name, n, 1, 1)?;
            to_float(&a[0])
        }
        "string" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Str(a[0].go_string()))
        }
        "toJson" => {
            arity(name, n, 1, 1)?;
            compact_json(&a[0]).map(Value::Str)
        }
        "toJSON" => {
            arity(name, n, 1, 1)?;
            go_json_indent(&a[0])
                .map(Value::Str)
                .ok_or_else(|| "json: unsupported value".into())
        }
        "fromJSON" => {
            arity(name, n, 1, 1)?;
            from_json(s0()?)
        }
        "jsonpath" => {
            arity(name, n, 2, 2)?;
            let doc = from_json(want_str(&a[0], "the JSON document")?)?;
            super::jsonpath::query(&doc, want_str(&a[1], "the path")?)
        }
        "trim" => {
            arity(name, n, 1, 2)?;
            let s = s0()?;
            Ok(Value::Str(match a.get(1) {
                Some(c) => {
                    let cut: Vec<char> = want_str(c, "the cutset")?.chars().collect();
                    s.trim_matches(|ch| cut.contains(&ch)).to_owned()
                }
                None => s.trim().to_owned(),
            }))
        }
        "trimPrefix" | "trimSuffix" => {
            arity(name, n, 1, 2)?;
            let s = s0()?;
            let fix = match a.get(1) {
                Some(p) => want_str(p, "the affix")?,
                None => " ",
            };
            Ok(Value::Str(if name == "trimPrefix" {
                s.strip_prefix(fix).unwrap_or(s).to_owned()
            } else {
                s.strip_suffix(fix).unwrap_or(s).to_owned()
            }))
        }
        "upper" | "lower" => {
            arity(name, n, 1, 1)?;
            let s = s0()?;
            Ok(Value::Str(if name == "upper" {
                s.to_uppercase()
            } else {
                s.to_lowercase()
            }))
        }
        "split" | "splitAfter" => {
            arity(name, n, 2, 3)?;
            let s = s0()?;
            let sep = want_str(&a[1], "the separator")?;
            let limit = match a.get(2) {
                Some(v) => want_int(v, "the count")?,
                None => -1,
            };
            Ok(Value::List(
                go_split(s, sep, limit, name == "splitAfter")
                    .into_iter()
                    .map(Value::Str)
                    .collect(),
            ))
        }
        "replace" => {
            arity(name, n, 3, 3)?;
            let s = s0()?;
            let old = want_str(&a[1], "the old string")?;
            let new = want_str(&a[2], "the new string")?;
            let out = go_replace(s, old, new);
            check_len(out.len(), pos).map_err(|e| e.1)?;
            Ok(Value::Str(out))
        }
        "repeat" => {
            arity(name, n, 2, 2)?;
            let s = s0()?;
            let k = want_int(&a[1], "the count")?;
            if k < 0 {
                return Err("negative repeat count".into());
            }
            check_len(s.len().saturating_mul(k as usize), pos).map_err(|e| e.1)?;
            Ok(Value::Str(s.repeat(k as usize)))
        }
        "indexOf" | "lastIndexOf" => {
            arity(name, n, 2, 2)?;
            let s = s0()?;
            let sub = want_str(&a[1], "the substring")?;
            let found = if name == "indexOf" {
                s.find(sub)
            } else {
                s.rfind(sub)
            };
            Ok(Value::Int(
                found.map(|b| s[..b].chars().count() as i64).unwrap_or(-1),
            ))
        }
        "hasPrefix" | "hasSuffix" => {
            arity(name, n, 2, 2)?;
            let s = s0()?;
            let f = want_str(&a[1], "the affix")?;
            Ok(Value::Bool(if name == "hasPrefix" {
                s.starts_with(f)
            } else {
                s.ends_with(f)
            }))
        }
        "join" => {
            arity(name, n, 1, 2)?;
            let items = want_list(&a[0], "the first argument")?;
            let sep = match a.get(1) {
                Some(v) => want_str(v, "the separator")?,
                None => "",
            };
            let parts = items
                .iter()
                .map(|i| want_str(i, "each element").map(str::to_owned))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::Str(parts.join(sep)))
        }
        "keys" | "values" => {
            arity(name, n, 1, 1)?;
            match &a[0] {
                Value::Map(m) => Ok(Value::List(if name == "keys" {
                    m.keys().map(|k| Value::Str(k.clone())).collect()
                } else {
                    m.values().cloned().collect()
                })),
                other => Err(format!(
                    "the argument must be a map, got {}",
                    other.type_name()
                )),
            }
        }
        "first" | "last" => {
            arity(name, n, 1, 1)?;
            let l = want_list(&a[0], "the argument")?;
            Ok(if name == "first" { l.first() } else { l.last() }
                .cloned()
                .unwrap_or(Value::Nil))
        }
        "get" => {
            arity(name, n, 2, 2)?;
            Ok(match (&a[0], &a[1]) {
                (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or(Value::Nil),
                (Value::List(l), Value::Int(i)) => {
                    let j = if *i < 0 { *i + l.len() as i64 } else { *i };
                    usize::try_from(j)
                        .ok()
                        .and_then(|j| l.get(j))
                        .cloned()
                        .unwrap_or(Value::Nil)
                }
                _ => Value::Nil,
            })
        }
        "take" => {
            arity(name, n, 2, 2)?;
            let l = want_list(&a[0], "the first argument")?;
            let k = want_int(&a[1], "the count")?.max(0) as usize;
            Ok(Value::List(l.iter().take(k).cloned().collect()))
        }
        "reverse" => {
            arity(name, n, 1, 1)?;
            let l = want_list(&a[0], "the argument")?;
            Ok(Value::List(l.iter().rev().cloned().collect()))
        }
        "sort" => {
            arity(name, n, 1, 2)?;
            let l = want_list(&a[0], "the argument")?;
            sorted_values(l.to_vec(), order_desc(a.get(1))?).map(Value::List)
        }
        "concat" => {
            let mut out = Vec::new();
            for v in a {
                out.extend_from_slice(want_list(v, "each argument")?);
            }
            Ok(Value::List(out))
        }
        "flatten" => {
            arity(name, n, 1, 1)?;
            fn flat(v: &[Value], out: &mut Vec<Value>) {
                for i in v {
                    match i {
                        Value::List(l) => flat(l, out),
                        other => out.push(other.clone()),
                    }
                }
            }
            let mut out = Vec::new();
            flat(want_list(&a[0], "the argument")?, &mut out);
            Ok(Value::List(out))
        }
        "uniq" => {
            arity(name, n, 1, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for v in want_list(&a[0], "the argument")? {
                if !out.iter().any(|o| equal(o, v)) {
                    out.push(v.clone());
                }
            }
            Ok(Value::List(out))
        }
        "toPairs" => {
            arity(name, n, 1, 1)?;
            match &a[0] {
                Value::Map(m) => Ok(Value::List(
                    m.iter()
                        .map(|(k, v)| Value::List(vec![Value::Str(k.clone()), v.clone()]))
                        .collect(),
                )),
                other => Err(format!(
                    "the argument must be a map, got {}",
                    other.type_name()
                )),
            }
        }
        "fromPairs" => {
            arity(name, n, 1, 1)?;
            let mut m = BTreeMap::new();
            for p in want_list(&a[0], "the argument")? {
                match p {
                    Value::List(kv) if kv.len() == 2 => {
                        m.insert(want_str(&kv[0], "a key")?.to_owned(), kv[1].clone());
                    }
                    _ => return Err("each pair must be a [key, value] array".into()),
                }
            }
            Ok(Value::Map(m))
        }
        "type" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Str(a[0].type_name().to_owned()))
        }
        "max" | "min" => {
            let items = numbers(a, name)?;
            let mut best: Option<Value> = None;
            for v in items {
                best = Some(match best {
                    None => v,
                    Some(b) => {
                        let ord = compare(&v, &b).unwrap_or(std::cmp::Ordering::Equal);
                        if (name == "max" && ord.is_gt()) || (name == "min" && ord.is_lt()) {
                            v
                        } else {
                            b
                        }
                    }
                });
            }
            best.ok_or_else(|| "needs at least one number".into())
        }
        "mean" | "median" => {
            let mut items: Vec<f64> = numbers(a, name)?.iter().filter_map(Value::as_f64).collect();
            if items.is_empty() {
                return Ok(Value::Float(0.0));
            }
            if name == "mean" {
                return Ok(Value::Float(items.iter().sum::<f64>() / items.len() as f64));
            }
            items.sort_by(|x, y| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal));
            let mid = items.len() / 2;
            Ok(Value::Float(if items.len().is_multiple_of(2) {
                (items[mid - 1] + items[mid]) / 2.0
            } else {
                items[mid]
            }))
        }
        "toBase64" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Str(
                base64::engine::general_purpose::STANDARD.encode(s0()?),
            ))
        }
        "fromBase64" => {
            arity(name, n, 1, 1)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s0()?)
                .map_err(|e| format!("invalid base64: {e}"))?;
            String::from_utf8(bytes)
                .map(Value::Str)
                .map_err(|_| "decoded bytes are not UTF-8".into())
        }
        _ => Err("unknown function".into()),
    }
}

/// Go's `strings.SplitN` / `SplitAfterN` (limit < 0: all).
fn go_split(s: &str, sep: &str, limit: i64, after: bool) -> Vec<String> {
    if limit == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        let mut out: Vec<String> = s.chars().map(|c| c.to_string()).collect();
        if limit > 0 && out.len() > limit as usize {
            let rest: String = out[limit as usize - 1..].concat();
            out.truncate(limit as usize - 1);
            out.push(rest);
        }
        return out;
    }
    let mut out = Vec::new();
    let mut rest = s;
    while limit < 0 || (out.len() as i64) < limit - 1 {
        let Some(i) = rest.find(sep) else {
            break;
        };
        let cut = if after { i + sep.len() } else { i };
        out.push(rest[..cut].to_owned());
        rest = &rest[i + sep.len()..];
    }
    out.push(rest.to_owned());
    out
}

/// Go's `strings.ReplaceAll` (an empty `old` inserts `new` around every character).
fn go_replace(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}

// ---------------------------------------------------------------------------------------------
// sprig

/// sprig's `strval`: strings as is, everything else as Go's `%v`.
fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        other => other.go_string(),
    }
}

/// cast.ToInt64 as sprig uses it: forgiving, 0 when the value is not a number.
fn cast_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => {
            // "3.0" is accepted (trailing zero decimals are trimmed), then Go's base-0 parsing.
            let t = match s.split_once('.') {
                Some((int, frac)) if !frac.is_empty() && frac.bytes().all(|b| b == b'0') => int,
                _ => s.as_str(),
            };
            parse_int_base0(t).unwrap_or(0)
        }
        _ => 0,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.replace('_', ""))
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.replace('_', ""))
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.replace('_', ""))
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].replace('_', ""))
    } else {
        if lower.contains('_') {
            return None;
        }
        (10, lower)
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

fn cast_float(v: &Value) -> f64 {
    match v {
        Value::Int(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's `empty`.
fn empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(s) => s.is_empty(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        // Go: a struct is never empty, a Duration is an int64.
        Value::Time(_) => false,
        Value::Duration(d) => d.nanos() == 0,
    }
}

fn list_of(v: &Value) -> Result<Vec<Value>, String> {
    match v {
        Value::List(l) => Ok(l.clone()),
        Value::Nil => Ok(Vec::new()),
        other => Err(format!("cannot use {} as a list", other.type_name())),
    }
}

/// Go's `%q`: a double-quoted Go string literal.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                if (c as u32) < 0x100 {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn words(s: &str) -> Vec<String> {
    // Splits camelCase, snake_case, kebab-case and spaces into lower-case words.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in s.chars() {
        if !c.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Calls `sprig.<name>` with evaluated arguments.
pub(crate) fn call_sprig(name: &str, a: Vec<Value>) -> Result<Value, String> {
    let n = a.len();
    let s = |i: usize| -> Result<String, String> {
        match a.get(i) {
            Some(Value::Str(s)) => Ok(s.clone()),
            Some(other) => Err(format!(
                "argument {} must be a string, got {}",
                i + 1,
                other.type_name()
            )),
            None => Err(format!("missing argument {}", i + 1)),
        }
    };
    let str_out = |v: String| -> Result<Value, String> {
        if v.len() > MAX_STRING {
            return Err(format!("result longer than {MAX_STRING} bytes"));
        }
        Ok(Value::Str(v))
    };
    match name {
        "upper" | "lower" | "title" | "untitle" | "trim" | "nospace" | "snakecase"
        | "camelcase" | "kebabcase" | "b64enc" | "b64dec" | "sha256sum" | "sha1sum" => {
            arity(name, n, 1, 1)?;
            let v = if matches!(name, "b64enc" | "sha256sum" | "sha1sum") {
                strval(&a[0])
            } else {
                s(0)?
            };
            Ok(Value::Str(match name {
                "upper" => v.to_uppercase(),
                "lower" => v.to_lowercase(),
                "title" => v.split(' ').map(capitalize).collect::<Vec<_>>().join(" "),
                "untitle" => v
                    .split(' ')
                    .map(|w| {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_lowercase().chain(c).collect())
                            .unwrap_or_default()
                    })
                    .collect::<Vec<String>>()
                    .join(" "),
                "trim" => v.trim().to_owned(),
                "nospace" => v.chars().filter(|c| !c.is_whitespace()).collect(),
                "snakecase" => words(&v).join("_"),
                "kebabcase" => words(&v).join("-"),
                "camelcase" => words(&v).iter().map(|w| capitalize(w)).collect(),
                "b64enc" => base64::engine::general_purpose::STANDARD.encode(v),
                "b64dec" => match base64::engine::general_purpose::STANDARD.decode(&v) {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    // sprig returns the error text instead of failing.
                    Err(e) => e.to_string(),
                },
                "sha256sum" => hex::encode(sha2::Sha256::digest(v.as_bytes())),
                _ => return Err("sha1sum is not supported by cairn; use sha256sum".into()),
            }))
        }
        "trimAll" => {
            arity(name, n, 2, 2)?;
            let cut: Vec<char> = s(0)?.chars().collect();
            Ok(Value::Str(
                s(1)?.trim_matches(|c| cut.contains(&c)).to_owned(),
            ))
        }
        "trimPrefix" | "trimSuffix" => {
            arity(name, n, 2, 2)?;
            let (fix, v) = (s(0)?, s(1)?);
            Ok(Value::Str(if name == "trimPrefix" {
                v.strip_prefix(fix.as_str()).unwrap_or(&v).to_owned()
            } else {
                v.strip_suffix(fix.as_str()).unwrap_or(&v).to_owned()
            }))
        }
        "replace" => {
            arity(name, n, 3, 3)?;
            str_out(go_replace(&s(2)?, &s(0)?, &s(1)?))
        }
        "contains" | "hasPrefix" | "hasSuffix" => {
            arity(name, n, 2, 2)?;
            let (needle, hay) = (s(0)?, s(1)?);
            Ok(Value::Bool(match name {
                "contains" => hay.contains(&needle),
                "hasPrefix" => hay.starts_with(&needle),
                _ => hay.ends_with(&needle),
            }))
        }
        "trunc" => {
            arity(name, n, 2, 2)?;
            let c = cast_int(&a[0]);
            let v: Vec<char> = s(1)?.chars().collect();
            let len = v.len() as i64;
            Ok(Value::Str(if c < 0 && len + c > 0 {
                v[(len + c) as usize..].iter().collect()
            } else if c >= 0 && len > c {
                v[..c as usize].iter().collect()
            } else {
                v.iter().collect()
            }))
        }
        "quote" | "squote" => Ok(Value::Str(
            a.iter()
                .filter(|v| **v != Value::Nil)
                .map(|v| {
                    if name == "quote" {
                        go_quote(&strval(v))
                    } else {
                        format!("'{}'", strval(v))
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "cat" => Ok(Value::Str(
            a.iter()
                .filter(|v| **v != Value::Nil)
                .map(strval)
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "repeat" => {
            arity(name, n, 2, 2)?;
            let k = cast_int(&a[0]).max(0) as usize;
            let v = s(1)?;
            if v.len().saturating_mul(k) > MAX_STRING {
                return Err(format!("result longer than {MAX_STRING} bytes"));
            }
            Ok(Value::Str(v.repeat(k)))
        }
        "substr" => {
            arity(name, n, 3, 3)?;
            let v: Vec<char> = s(2)?.chars().collect();
            let (start, end) = (cast_int(&a[0]), cast_int(&a[1]));
            let len = v.len() as i64;
            let (st, en) = if start < 0 {
                (0, end.clamp(0, len))
            } else if end < 0 || end > len {
                (start.min(len), len)
            } else {
                (start.min(end), end)
            };
            Ok(Value::Str(v[st as usize..en as usize].iter().collect()))
        }
        "indent" | "nindent" => {
            arity(name, n, 2, 2)?;
            let pad = " ".repeat(cast_int(&a[0]).clamp(0, 1000) as usize);
            let body = format!("{pad}{}", s(1)?.replace('\n', &format!("\n{pad}")));
            str_out(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            })
        }
        "abbrev" => {
            arity(name, n, 2, 2)?;
            let w = cast_int(&a[0]);
            let v: Vec<char> = s(1)?.chars().collect();
            Ok(Value::Str(if w < 4 || v.len() as i64 <= w {
                v.iter().collect()
            } else {
                let keep: String = v[..(w - 3) as usize].iter().collect();
                format!("{keep}...")
            }))
        }
        "wrap" => {
            arity(name, n, 2, 2)?;
            let width = cast_int(&a[0]).max(1) as usize;
            let mut out = String::new();
            let mut line = 0;
            for (i, w) in s(1)?.split(' ').enumerate() {
                if i > 0 {
                    if line + 1 + w.chars().count() > width {
                        out.push('\n');
                        line = 0;
                    } else {
                        out.push(' ');
                        line += 1;
                    }
                }
                out.push_str(w);
                line += w.chars().count();
            }
            Ok(Value::Str(out))
        }
        "plural" => {
            arity(name, n, 3, 3)?;
            Ok(Value::Str(if cast_int(&a[2]) == 1 { s(0)? } else { s(1)? }))
        }
        "split" | "splitList" | "regexSplit" => {
            let parts = if name == "regexSplit" {
                arity(name, n, 3, 3)?;
                let re = Regex::new(&s(0)?)?;
                let v = s(1)?;
                let chars: Vec<char> = v.chars().collect();
                let limit = cast_int(&a[2]);
                let mut out = Vec::new();
                let mut last = 0;
                for caps in re.find_all(&chars, usize::MAX) {
                    if limit > 0 && out.len() as i64 == limit - 1 {
                        break;
                    }
                    if let (Some(st), Some(en)) = (caps[0], caps[1]) {
                        if en == 0 && st == 0 {
                            continue;
                        }
                        out.push(chars[last..st].iter().collect::<String>());
                        last = en;
                    }
                }
                out.push(chars[last..].iter().collect());
                out
            } else {
                arity(name, n, 2, 2)?;
                go_split(&s(1)?, &s(0)?, -1, false)
            };
            if name == "split" {
                Ok(Value::Map(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| (format!("_{i}"), Value::Str(p)))
                        .collect(),
                ))
            } else {
                Ok(Value::List(parts.into_iter().map(Value::Str).collect()))
            }
        }
        "join" => {
            arity(name, n, 2, 2)?;
            let items = match &a[1] {
                Value::List(l) => l.iter().filter(|v| **v != Value::Nil).map(strval).collect(),
                Value::Nil => Vec::new(),
                other => vec![strval(other)],
            };
            str_out(items.join(&s(0)?))
        }
        "toString" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Str(strval(&a[0])))
        }
        "toStrings" => {
            arity(name, n, 1, 1)?;
            Ok(Value::List(
                list_of(&a[0])?
                    .iter()
                    .map(|v| Value::Str(strval(v)))
                    .collect(),
            ))
        }
        "int" | "int64" | "atoi" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Int(if name == "atoi" {
                atoi(&strval(&a[0])).unwrap_or(0)
            } else {
                cast_int(&a[0])
            }))
        }
        "float64" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Float(cast_float(&a[0])))
        }
        "toDecimal" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Int(
                i64::from_str_radix(&strval(&a[0]), 8).unwrap_or(0),
            ))
        }
        "add" | "mul" => {
            let mut acc: i64 = if name == "add" { 0 } else { 1 };
            for v in &a {
                let x = cast_int(v);
                acc = if name == "add" {
                    acc.wrapping_add(x)
                } else {
                    acc.wrapping_mul(x)
                };
            }
            Ok(Value::Int(acc))
        }
        "add1" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Int(cast_int(&a[0]).wrapping_add(1)))
        }
        "sub" | "div" | "mod" => {
            arity(name, n, 2, 2)?;
            let (x, y) = (cast_int(&a[0]), cast_int(&a[1]));
            if name != "sub" && y == 0 {
                return Err("integer divide by zero".into());
            }
            Ok(Value::Int(match name {
                "sub" => x.wrapping_sub(y),
                "div" => x.wrapping_div(y),
                _ => x.wrapping_rem(y),
            }))
        }
        "max" | "min" => {
            if a.is_empty() {
                return Err("needs at least one argument".into());
            }
            let vals = a.iter().map(cast_int);
            Ok(Value::Int(
                if name == "max" {
                    vals.max()
                } else {
                    vals.min()
                }
                .unwrap_or(0),
            ))
        }
        "addf" | "subf" | "mulf" | "divf" => {
            if a.is_empty() {
                return Err("needs at least one argument".into());
            }
            let mut acc = cast_float(&a[0]);
            for v in &a[1..] {
                let x = cast_float(v);
                match name {
                    "addf" => acc += x,
                    "subf" => acc -= x,
                    "mulf" => acc *= x,
                    _ => acc /= x,
                }
            }
            Ok(Value::Float(acc))
        }
        "ceil" | "floor" | "round" => {
            arity(name, n, 1, 2)?;
            let f = cast_float(&a[0]);
            Ok(Value::Float(match name {
                "ceil" => f.ceil(),
                "floor" => f.floor(),
                _ => {
                    let p = 10f64.powi(a.get(1).map(cast_int).unwrap_or(0).clamp(0, 15) as i32);
                    (f * p).round() / p
                }
            }))
        }
        "default" => {
            arity(name, n, 1, 2)?;
            Ok(match a.get(1) {
                Some(given) if !empty(given) => given.clone(),
                _ => a[0].clone(),
            })
        }
        "empty" => {
            arity(name, n, 1, 1)?;
            Ok(Value::Bool(empty(&a[0])))
        }
        "coalesce" => Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil)),
        "ternary" => {
            arity(name, n, 3, 3)?;
            let cond = truthy_bool(&a[2], 0, "ternary").map_err(|e| e.1)?;
            Ok(if cond { a[0].clone() } else { a[1].clone() })
        }
        "list" => Ok(Value::List(a)),
        "dict" => {
            let mut m = BTreeMap::new();
            let mut it = a.iter();
            while let Some(k) = it.next() {
                m.insert(
                    strval(k),
                    it.next().cloned().unwrap_or(Value::Str(String::new())),
                );
            }
            Ok(Value::Map(m))
        }
        "get" | "hasKey" => {
            arity(name, n, 2, 2)?;
            let Value::Map(m) = &a[0] else {
                return Err(format!(
                    "the first argument must be a dict, got {}",
                    a[0].type_name()
                ));
            };
            let k = s(1)?;
            Ok(if name == "get" {
                m.get(&k).cloned().unwrap_or(Value::Str(String::new()))
            } else {
                Value::Bool(m.contains_key(&k))
            })
        }
        "set" => {
            arity(name, n, 3, 3)?;
            let Value::Map(m) = &a[0] else {
                return Err(format!(
                    "the first argument must be a dict, got {}",
                    a[0].type_name()
                ));
            };
            let mut m = m.clone();
            m.insert(s(1)?, a[2].clone());
            Ok(Value::Map(m))
        }
        "keys" | "values" => {
            let mut out = Vec::new();
            for d in &a {
                let Value::Map(m) = d else {
                    return Err(format!("arguments must be dicts, got {}", d.type_name()));
                };
                if name == "keys" {
                    out.extend(m.keys().map(|k| Value::Str(k.clone())));
                } else {
                    out.extend(m.values().cloned());
                }
            }
            Ok(Value::List(out))
        }
        "pluck" => {
            if a.is_empty() {
                return Err("needs a key".into());
            }
            let k = s(0)?;
            Ok(Value::List(
                a[1..]
                    .iter()
                    .filter_map(|d| match d {
                        Value::Map(m) => m.get(&k).cloned(),
                        _ => None,
                    })
                    .collect(),
            ))
        }
        "dig" => {
            if n < 3 {
                return Err("dig takes keys, a default and a dict".into());
            }
            let mut cur = a[n - 1].clone();
            for k in &a[..n - 2] {
                let key = want_str(k, "each key")?;
                cur = match &cur {
                    Value::Map(m) => match m.get(key) {
                        Some(v) => v.clone(),
                        None => return Ok(a[n - 2].clone()),
                    },
                    _ => return Ok(a[n - 2].clone()),
                };
            }
            Ok(cur)
        }
        "first" | "last" | "rest" | "initial" | "reverse" | "uniq" | "compact" | "sortAlpha" => {
            arity(name, n, 1, 1)?;
            let l = list_of(&a[0])?;
            Ok(match name {
                "first" => l.first().cloned().unwrap_or(Value::Nil),
                "last" => l.last().cloned().unwrap_or(Value::Nil),
                "rest" => Value::List(l.iter().skip(1).cloned().collect()),
                "initial" => Value::List(l[..l.len().saturating_sub(1)].to_vec()),
                "reverse" => Value::List(l.into_iter().rev().collect()),
                "uniq" => {
                    let mut out: Vec<Value> = Vec::new();
                    for v in l {
                        if !out.iter().any(|o| equal(o, &v)) {
                            out.push(v);
                        }
                    }
                    Value::List(out)
                }
                "compact" => Value::List(l.into_iter().filter(|v| !empty(v)).collect()),
                _ => {
                    let mut strs: Vec<String> = l.iter().map(strval).collect();
                    strs.sort();
                    Value::List(strs.into_iter().map(Value::Str).collect())
                }
            })
        }
        "append" | "prepend" => {
            arity(name, n, 2, 2)?;
            let mut l = list_of(&a[0])?;
            if name == "append" {
                l.push(a[1].clone());
            } else {
                l.insert(0, a[1].clone());
            }
            Ok(Value::List(l))
        }
        "concat" => {
            let mut out = Vec::new();
            for v in &a {
                out.extend(list_of(v)?);
            }
            Ok(Value::List(out))
        }
        "without" => {
            if a.is_empty() {
                return Err("needs a list".into());
            }
            let l = list_of(&a[0])?;
            Ok(Value::List(
                l.into_iter()
                    .filter(|v| !a[1..].iter().any(|x| equal(x, v)))
                    .collect(),
            ))
        }
        "has" => {
            arity(name, n, 2, 2)?;
            Ok(Value::Bool(list_of(&a[1])?.iter().any(|v| equal(v, &a[0]))))
        }
        "slice" => {
            arity(name, n, 1, 3)?;
            let l = list_of(&a[0])?;
            let len = l.len() as i64;
            let st = a.get(1).map(cast_int).unwrap_or(0);
            let en = a.get(2).map(cast_int).unwrap_or(len);
            if st < 0 || en > len || st > en {
                return Err(format!(
                    "slice bounds out of range [{st}:{en}] with length {len}"
                ));
            }
            Ok(Value::List(l[st as usize..en as usize].to_vec()))
        }
        "until" | "untilStep" => {
            let (start, stop, step) = if name == "until" {
                arity(name, n, 1, 1)?;
                let c = cast_int(&a[0]);
                (0, c, if c < 0 { -1 } else { 1 })
            } else {
                arity(name, n, 3, 3)?;
                (cast_int(&a[0]), cast_int(&a[1]), cast_int(&a[2]))
            };
            let mut out = Vec::new();
            if step == 0 {
                return Ok(Value::List(out));
            }
            let mut i = start;
            while (step > 0 && i < stop) || (step < 0 && i > stop) {
                if out.len() >= MAX_LIST {
                    return Err(format!("more than {MAX_LIST} elements"));
                }
                out.push(Value::Int(i));
                i = i.saturating_add(step);
            }
            Ok(Value::List(out))
        }
        "toJson" | "toRawJson" | "toPrettyJson" => {
            arity(name, n, 1, 1)?;
            // sprig returns "" when the value cannot be encoded.
            Ok(Value::Str(match name {
                "toPrettyJson" => go_json_indent(&a[0]).unwrap_or_default(),
                "toRawJson" => {
                    let mut out = String::new();
                    if write_go_json(&mut out, &a[0], false) {
                        out
                    } else {
                        String::new()
                    }
                }
                _ => a[0].go_json().unwrap_or_default(),
            }))
        }
        "fromJson" => {
            arity(name, n, 1, 1)?;
            // sprig's fromJson gives nil for invalid JSON; mustFromJson fails.
            Ok(from_json(&s(0)?).unwrap_or(Value::Nil))
        }
        "mustFromJson" => {
            arity(name, n, 1, 1)?;
            from_json(&s(0)?)
        }
        "regexMatch" | "mustRegexMatch" => {
            arity(name, n, 2, 2)?;
            match Regex::new(&s(0)?) {
                Ok(re) => Ok(Value::Bool(re.is_match(&s(1)?))),
                Err(e) if name == "mustRegexMatch" => Err(e),
                Err(_) => Ok(Value::Bool(false)),
            }
        }
        "regexFind" | "regexFindAll" => {
            arity(
                name,
                n,
                if name == "regexFind" { 2 } else { 3 },
                if name == "regexFind" { 2 } else { 3 },
            )?;
            let re = Regex::new(&s(0)?)?;
            let v = s(1)?;
            let chars: Vec<char> = v.chars().collect();
            let text = |caps: &Vec<Option<usize>>| match (caps[0], caps[1]) {
                (Some(st), Some(en)) => chars[st..en].iter().collect::<String>(),
                _ => String::new(),
            };
            if name == "regexFind" {
                return Ok(Value::Str(
                    re.find_at(&chars, 0).map(|c| text(&c)).unwrap_or_default(),
                ));
            }
            let limit = cast_int(&a[2]);
            let limit = if limit < 0 {
                usize::MAX
            } else {
                limit as usize
            };
            Ok(Value::List(
                re.find_all(&chars, limit)
                    .iter()
                    .map(|c| Value::Str(text(c)))
                    .collect(),
            ))
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            arity(name, n, 3, 3)?;
            let re = Regex::new(&s(0)?)?;
            str_out(re.replace_all(&s(1)?, &s(2)?, name == "regexReplaceAllLiteral"))
        }
        "kindOf" | "typeOf" => {
            arity(name, n, 1, 1)?;
            let (kind, ty) = match &a[0] {
                Value::Nil => ("invalid", "<nil>"),
                Value::Bool(_) => ("bool", "bool"),
                Value::Int(_) => ("int", "int"),
                Value::Float(_) => ("float64", "float64"),
                Value::Str(_) => ("string", "string"),
                Value::List(_) => ("slice", "[]interface {}"),
                Value::Map(_) => ("map", "map[string]interface {}"),
                Value::Time(_) => ("struct", "time.Time"),
                Value::Duration(_) => ("int64", "time.Duration"),
            };
            Ok(Value::Str(
                if name == "kindOf" { kind } else { ty }.to_owned(),
            ))
        }
        "kindIs" => {
            arity(name, n, 2, 2)?;
            let kind = call_sprig("kindOf", vec![a[1].clone()])?;
            Ok(Value::Bool(kind == Value::Str(s(0)?)))
        }
        "len" => {
            arity(name, n, 1, 1)?;
            builtin("len", &a, 0)
        }
        _ => Err("unknown or unsupported sprig function".into()),
    }
}
