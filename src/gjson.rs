//! The subset of gjson path syntax Argo uses (resource conditions in Workflows, data filters and
//! parameter keys in Sensors), over `serde_json::Value`.
//!
//! Supported: dotted keys (`a.b.c`), `\` escapes (`fav\.movie`), array indices (`a.0`), `#` (an
//! array's length), `#.rest` (the list of `rest` over each element), the wildcards `*` and `?` in
//! an object key (the first matching key in document order), queries `#(key op value)` (the
//! first element that matches) and `#(key op value)#` (every element that matches), with `==`,
//! `!=`, `<`, `<=`, `>`, `>=`, `%` (glob match) and `!%`; a query without an operator
//! (`#(key)`) selects elements where `key` exists.
//!
//! Not supported (a path using them finds nothing, never a wrong value): modifiers (`@reverse`),
//! multipaths (`[a,b]`, `{a,b}`), nested queries and the JSON Lines prefix `..`.
//!
//! Invariants: pure; no input panics; work is linear in the path and the visited document.

use serde_json::Value;

/// The value at `path` in `doc`, if any.
pub fn get(doc: &Value, path: &str) -> Option<Value> {
    let segments = split(path);
    get_segments(doc, &segments)
}

/// gjson's `String()` of a value: strings raw, `null` empty, others their JSON.
pub fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Splits a path at unescaped dots, keeping `#(...)` queries whole (their values may hold dots).
fn split(path: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    let mut depth = 0usize;
    let mut in_quote = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if depth > 0 {
                    cur.push('\\');
                }
                if let Some(n) = chars.next() {
                    // Keep the escape on wildcard characters so they match literally.
                    if depth == 0 && matches!(n, '*' | '?') {
                        cur.push('\\');
                    }
                    cur.push(n);
                }
            }
            '"' if depth > 0 => {
                in_quote = !in_quote;
                cur.push(c);
            }
            '(' if !in_quote && cur.ends_with('#') => {
                depth += 1;
                cur.push(c);
            }
            '(' if depth > 0 && !in_quote => {
                depth += 1;
                cur.push(c);
            }
            ')' if depth > 0 && !in_quote => {
                depth -= 1;
                cur.push(c);
            }
            '.' if depth == 0 => segments.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    segments.push(cur);
    segments
}

fn get_segments(node: &Value, segments: &[String]) -> Option<Value> {
    let Some((seg, rest)) = segments.split_first() else {
        return Some(node.clone());
    };
    match node {
        Value::Array(items) => {
            if seg == "#" {
                if rest.is_empty() {
                    return Some(Value::from(items.len()));
                }
                let all: Vec<Value> = items
                    .iter()
                    .filter_map(|item| get_segments(item, rest))
                    .collect();
                return Some(Value::Array(all));
            }
            if let Some(q) = seg.strip_prefix("#(") {
                let (body, all) = match q.strip_suffix(")#") {
                    Some(b) => (b, true),
                    None => (q.strip_suffix(')')?, false),
                };
                let query = Query::parse(body)?;
                if all {
                    let hits: Vec<Value> = items
                        .iter()
                        .filter(|i| query.matches(i))
                        .filter_map(|i| get_segments(i, rest))
                        .collect();
                    return Some(Value::Array(hits));
                }
                let hit = items.iter().find(|i| query.matches(i))?;
                return get_segments(hit, rest);
            }
            let index = seg.parse::<usize>().ok()?;
            get_segments(items.get(index)?, rest)
        }
        Value::Object(map) => {
            if let Some(v) = map.get(unescape(seg).as_str())
                && !has_wildcard(seg)
            {
                return get_segments(v, rest);
            }
            if has_wildcard(seg) {
                let (_, v) = map.iter().find(|(k, _)| glob(seg, k))?;
                return get_segments(v, rest);
            }
            None
        }
        _ => None,
    }
}

fn has_wildcard(seg: &str) -> bool {
    let mut escaped = false;
    for c in seg.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '*' | '?' if !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

fn unescape(seg: &str) -> String {
    let mut out = String::with_capacity(seg.len());
    let mut chars = seg.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// gjson's wildcard match: `*` any run, `?` any one character, `\` escapes. Iterative with one
/// backtrack point, so it is linear-ish and never recursive.
pub fn glob(pattern: &str, text: &str) -> bool {
    // Tokens: Some(c) a literal, None a `?`; stars are separate markers.
    #[derive(Clone, Copy, PartialEq)]
    enum T {
        Lit(char),
        Any,
        Star,
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '\\' => T::Lit(chars.next().unwrap_or('\\')),
            '*' => T::Star,
            '?' => T::Any,
            c => T::Lit(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    while t < text.len() {
        match toks.get(p) {
            Some(T::Star) => {
                back = Some((p, t));
                p += 1;
            }
            Some(T::Any) => {
                p += 1;
                t += 1;
            }
            Some(T::Lit(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match back {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    back = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    toks[p.min(toks.len())..].iter().all(|t| *t == T::Star)
}

/// A `#(...)` query.
struct Query {
    path: String,
    op: Option<(String, Value)>,
}

impl Query {
    fn parse(body: &str) -> Option<Query> {
        const OPS: [&str; 8] = ["==", "!=", "<=", ">=", "!%", "<", ">", "%"];
        let mut in_quote = false;
        let chars: Vec<(usize, char)> = body.char_indices().collect();
        for (i, c) in &chars {
            if *c == '"' {
                in_quote = !in_quote;
                continue;
            }
            if in_quote {
                continue;
            }
            for op in OPS {
                if body[*i..].starts_with(op) {
                    let path = body[..*i].trim().to_owned();
                    let raw = body[*i + op.len()..].trim();
                    let value = serde_json::from_str::<Value>(raw)
                        .unwrap_or_else(|_| Value::String(raw.to_owned()));
                    return Some(Query {
                        path,
                        op: Some((op.to_owned(), value)),
                    });
                }
            }
        }
        Some(Query {
            path: body.trim().to_owned(),
            op: None,
        })
    }

    fn matches(&self, item: &Value) -> bool {
        let got = if self.path.is_empty() || self.path == "@this" {
            Some(item.clone())
        } else {
            get(item, &self.path)
        };
        let Some(got) = got else {
            return false;
        };
        let Some((op, want)) = &self.op else {
            return true;
        };
        match op.as_str() {
            "%" => glob(&string(want), &string(&got)),
            "!%" => !glob(&string(want), &string(&got)),
            _ => {
                let ord = match (&got, want) {
                    (Value::Number(a), Value::Number(b)) => a
                        .as_f64()
                        .zip(b.as_f64())
                        .and_then(|(a, b)| a.partial_cmp(&b)),
                    (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
                    (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
                    (Value::Null, Value::Null) => Some(std::cmp::Ordering::Equal),
                    _ => None,
                };
                let Some(ord) = ord else {
                    return op == "!=";
                };
                match op.as_str() {
                    "==" => ord.is_eq(),
                    "!=" => ord.is_ne(),
                    "<" => ord.is_lt(),
                    "<=" => ord.is_le(),
                    ">" => ord.is_gt(),
                    _ => ord.is_ge(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "name": {"first": "Tom", "last": "Anderson"},
            "age": 37,
            "children": ["Sara", "Alex", "Jack"],
            "fav.movie": "Deer Hunter",
            "friends": [
                {"first": "Dale", "last": "Murphy", "age": 44, "nets": ["ig", "fb", "tw"]},
                {"first": "Roger", "last": "Craig", "age": 68, "nets": ["fb", "tw"]},
                {"first": "Jane", "last": "Murphy", "age": 47, "nets": ["ig", "tw"]}
            ],
            "nil": null
        })
    }

    #[test]
    fn paths_follow_gjson_syntax() {
        let cases: &[(&str, Option<Value>)] = &[
            ("name.last", Some(json!("Anderson"))),
            ("age", Some(json!(37))),
            ("children", Some(json!(["Sara", "Alex", "Jack"]))),
            ("children.#", Some(json!(3))),
            ("children.1", Some(json!("Alex"))),
            ("child*.2", Some(json!("Jack"))),
            ("c?ildren.0", Some(json!("Sara"))),
            ("fav\\.movie", Some(json!("Deer Hunter"))),
            ("friends.#.first", Some(json!(["Dale", "Roger", "Jane"]))),
            ("friends.1.last", Some(json!("Craig"))),
            ("friends.#(last==\"Murphy\").first", Some(json!("Dale"))),
            (
                "friends.#(last==\"Murphy\")#.first",
                Some(json!(["Dale", "Jane"])),
            ),
            ("friends.#(age>45)#.last", Some(json!(["Craig", "Murphy"]))),
            ("friends.#(first%\"D*\").last", Some(json!("Murphy"))),
            ("friends.#(first!%\"D*\").last", Some(json!("Craig"))),
            (
                "friends.#(nets)#.first",
                Some(json!(["Dale", "Roger", "Jane"])),
            ),
            ("friends.#(age==99).first", None),
            ("nil", Some(Value::Null)),
            ("missing", None),
            ("name.first.x", None),
            ("children.9", None),
            ("children.x", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(&get(&doc(), path), want, "path {path:?}");
        }
    }

    #[test]
    fn strings_print_as_gjson_does() {
        assert_eq!(string(&json!("a")), "a");
        assert_eq!(string(&Value::Null), "");
        assert_eq!(string(&json!(1.5)), "1.5");
        assert_eq!(string(&json!({"a": [1]})), r#"{"a":[1]}"#);
    }

    #[test]
    fn globs_match_like_gjson_wildcards() {
        for (p, t, want) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("*b*b*", "abxxb", true),
        ] {
            assert_eq!(glob(p, t), want, "{p} ~ {t}");
        }
    }
}
