//! The subset of Go's `text/template` (with sprig functions) that Sensors use: a data filter's
//! `template` and a parameter's `dataTemplate` / `contextTemplate`, which render text from
//! `.Input` (`{{ b64dec .Input }}`, `{{ .Input.body.name | upper }}`).
//!
//! Supported: text and actions with trim markers (`{{-`, `-}}`) and comments (`{{/* */}}`);
//! pipelines (`a | f x`); operands `.`, field chains (`.Input.a.b`), string (`"..."`, raw
//! `` `...` ``), number, `true`/`false`/`nil` literals and parenthesised pipelines; functions:
//! Go's `print`, `println`, `len`, `index`, `not`, `and`, `or`, `eq`, `ne`, `lt`, `le`, `gt`,
//! `ge`, and every sprig function the workflow expression engine implements
//! ([`crate::workflow::expr`]); `{{if}} {{else}} {{end}}`.
//! Not supported (a parse error naming the action, never a silent wrong answer): `range`,
//! `with`, `define`/`template`/`block`, variables (`$x`), `printf`, method calls.
//!
//! Printing follows Go's `fmt` `%v` (maps as `map[k:v]`), with `<no value>` for a missing key.
//! JSON numbers are float64 as in Go (`3` prints `3`, `1e21` prints `1e+21`).
//!
//! Invariants: pure; no input panics; nesting depth and output size are capped.

use std::collections::BTreeMap;

use crate::workflow::expr::{self, Value};

/// Caps nesting (parentheses and `if` blocks) so hostile templates cannot overflow the stack.
const MAX_DEPTH: usize = 50;
/// Caps the rendered text (a parameter value, not a document).
const MAX_OUTPUT: usize = 1 << 20;

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline(Vec<Vec<Arg>>);

#[derive(Debug, Clone)]
enum Arg {
    /// `.a.b` (empty: the dot itself).
    Field(Vec<String>),
    Lit(Value),
    Func(String),
    Sub(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Str(String),
    Num(f64),
    Ident(String),
    Open,
    Close,
    Pipe,
}

/// Parses a template; the error says what is wrong and where (byte offset).
pub fn parse(src: &str) -> Result<Template, String> {
    let mut items: Vec<Item> = Vec::new();
    let mut rest = src;
    let mut offset = 0usize;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_owned();
        let mut body_start = open + 2;
        if rest[body_start..].starts_with("- ") || rest[body_start..].starts_with("-\t") {
            text = text.trim_end().to_owned();
            body_start += 1;
        }
        items.push(Item::Text(text));
        let close = find_close(&rest[body_start..])
            .ok_or_else(|| format!("unclosed action at byte {}", offset + open))?;
        let mut body = &rest[body_start..body_start + close];
        let mut after = body_start + close + 2;
        let trim_right = body.ends_with(" -") || body.ends_with("\t-");
        if trim_right {
            body = &body[..body.len() - 1];
        }
        let action = body.trim();
        if !(action.starts_with("/*") && action.ends_with("*/")) {
            items.push(Item::Action(action.to_owned(), offset + open));
        }
        if trim_right {
            let tail = &rest[after..];
            after += tail.len() - tail.trim_start().len();
        }
        offset += after;
        rest = &rest[after..];
    }
    items.push(Item::Text(rest.to_owned()));
    let mut at = 0;
    let nodes = build(&items, &mut at, 0)?;
    match items.get(at) {
        None => Ok(Template { nodes }),
        Some(Item::Action(a, pos)) => Err(format!("unexpected {{{{{a}}}}} at byte {pos}")),
        Some(Item::Text(_)) => Err("internal: unconsumed text".into()),
    }
}

enum Item {
    Text(String),
    Action(String, usize),
}

fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if s[i..].starts_with("}}") {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn build(items: &[Item], at: &mut usize, depth: usize) -> Result<Vec<Node>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nesting deeper than {MAX_DEPTH}"));
    }
    let mut out = Vec::new();
    while let Some(item) = items.get(*at) {
        match item {
            Item::Text(t) => {
                if !t.is_empty() {
                    out.push(Node::Text(t.clone()));
                }
                *at += 1;
            }
            Item::Action(a, pos) => {
                let word = a.split_whitespace().next().unwrap_or("");
                match word {
                    "end" | "else" => return Ok(out),
                    "if" => {
                        let cond = pipeline(a["if".len()..].trim(), *pos)?;
                        *at += 1;
                        let then = build(items, at, depth + 1)?;
                        let mut otherwise = Vec::new();
                        if let Some(Item::Action(e, _)) = items.get(*at)
                            && e == "else"
                        {
                            *at += 1;
                            otherwise = build(items, at, depth + 1)?;
                        }
                        match items.get(*at) {
                            Some(Item::Action(e, _)) if e == "end" => *at += 1,
                            _ => {
                                return Err(format!("{{{{if}}}} at byte {pos} has no {{{{end}}}}"));
                            }
                        }
                        out.push(Node::If {
                            cond,
                            then,
                            otherwise,
                        });
                    }
                    "range" | "with" | "define" | "template" | "block" | "break" | "continue" => {
                        return Err(format!(
                            "{{{{{word}}}}} at byte {pos} is not supported (supported: if/else/end, pipelines, functions)"
                        ));
                    }
                    _ => {
                        out.push(Node::Action(pipeline(a, *pos)?));
                        *at += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

fn lex(src: &str, pos: usize) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |m: String| format!("{m} in action at byte {pos}");
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '.' => {
                let mut chain = Vec::new();
                while i < chars.len() && chars[i] == '.' {
                    i += 1;
                    let start = i;
                    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                    let name: String = chars[start..i].iter().collect();
                    if name.is_empty() {
                        if chain.is_empty() && (i >= chars.len() || !chars[i].is_alphanumeric()) {
                            break;
                        }
                        return Err(err("empty field name".into()));
                    }
                    chain.push(name);
                }
                out.push(Tok::Field(chain));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err("unterminated string".into())),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('r') => s.push('\r'),
                                Some('\\') => s.push('\\'),
                                Some('"') => s.push('"'),
                                other => {
                                    return Err(err(format!("unsupported escape \\{other:?}")));
                                }
                            }
                        }
                        Some(&c) => s.push(c),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|c| *c == '`')
                    .ok_or_else(|| err("unterminated raw string".into()))?;
                out.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| err(format!("bad number {text:?}")))?;
                out.push(Tok::Num(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            '$' => return Err(err("variables ($) are not supported".into())),
            other => return Err(err(format!("unexpected character {other:?}"))),
        }
    }
    Ok(out)
}

fn pipeline(src: &str, pos: usize) -> Result<Pipeline, String> {
    let toks = lex(src, pos)?;
    let mut at = 0;
    let p = parse_pipeline(&toks, &mut at, pos, 0)?;
    if at != toks.len() {
        return Err(format!("unexpected ')' in action at byte {pos}"));
    }
    Ok(p)
}

fn parse_pipeline(
    toks: &[Tok],
    at: &mut usize,
    pos: usize,
    depth: usize,
) -> Result<Pipeline, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nesting deeper than {MAX_DEPTH} at byte {pos}"));
    }
    let mut cmds = Vec::new();
    let mut cur: Vec<Arg> = Vec::new();
    while let Some(t) = toks.get(*at) {
        match t {
            Tok::Close => break,
            Tok::Pipe => {
                if cur.is_empty() {
                    return Err(format!("missing command before '|' at byte {pos}"));
                }
                cmds.push(std::mem::take(&mut cur));
                *at += 1;
            }
            Tok::Open => {
                *at += 1;
                let sub = parse_pipeline(toks, at, pos, depth + 1)?;
                if toks.get(*at) != Some(&Tok::Close) {
                    return Err(format!("unclosed '(' at byte {pos}"));
                }
                *at += 1;
                cur.push(Arg::Sub(sub));
            }
            Tok::Field(f) => {
                cur.push(Arg::Field(f.clone()));
                *at += 1;
            }
            Tok::Str(s) => {
                cur.push(Arg::Lit(Value::Str(s.clone())));
                *at += 1;
            }
            Tok::Num(n) => {
                cur.push(Arg::Lit(if n.fract() == 0.0 && n.abs() < 9e15 {
                    Value::Int(*n as i64)
                } else {
                    Value::Float(*n)
                }));
                *at += 1;
            }
            Tok::Ident(name) => {
                cur.push(match name.as_str() {
                    "true" => Arg::Lit(Value::Bool(true)),
                    "false" => Arg::Lit(Value::Bool(false)),
                    "nil" => Arg::Lit(Value::Nil),
                    f if is_function(f) => Arg::Func(f.to_owned()),
                    f => return Err(format!("function {f:?} not defined (at byte {pos})")),
                });
                *at += 1;
            }
        }
    }
    if cur.is_empty() {
        return Err(format!("missing value for command at byte {pos}"));
    }
    cmds.push(cur);
    Ok(Pipeline(cmds))
}

const GO_BUILTINS: &[&str] = &[
    "print", "println", "len", "index", "not", "and", "or", "eq", "ne", "lt", "le", "gt", "ge",
];

fn is_function(name: &str) -> bool {
    GO_BUILTINS.contains(&name) || expr::is_sprig(name)
}

impl Template {
    /// Renders with `.` bound to `data`.
    pub fn render(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out)?;
        Ok(out)
    }
}

/// Parses and renders `src` with `{"Input": input}` as the dot, as Argo Events does.
pub fn render_input(src: &str, input: &serde_json::Value) -> Result<String, String> {
    let dot = Value::Map(BTreeMap::from([("Input".to_owned(), go_value(input))]));
    parse(src)?.render(&dot)
}

/// A JSON value as Go's `encoding/json` decodes it into `interface{}`: numbers are float64.
pub fn go_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(a) => Value::List(a.iter().map(go_value).collect()),
        serde_json::Value::Object(m) => {
            Value::Map(m.iter().map(|(k, v)| (k.clone(), go_value(v))).collect())
        }
    }
}

fn render_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval_pipeline(p, dot)?;
                out.push_str(&print(&v));
            }
            Node::If {
                cond,
                then,
                otherwise,
            } => {
                if truth(&eval_pipeline(cond, dot)?) {
                    render_nodes(then, dot, out)?;
                } else {
                    render_nodes(otherwise, dot, out)?;
                }
            }
        }
        if out.len() > MAX_OUTPUT {
            return Err(format!("output longer than {MAX_OUTPUT} bytes"));
        }
    }
    Ok(())
}

fn print(v: &Value) -> String {
    match v {
        Value::Nil => "<no value>".into(),
        other => other.go_string(),
    }
}

/// Go's `template.IsTrue`.
fn truth(v: &Value) -> bool {
    match v {
        Value::Nil => false,
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::List(l) => !l.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Time(_) => true,
        Value::Duration(d) => d.nanos() != 0,
    }
}

fn eval_pipeline(p: &Pipeline, dot: &Value) -> Result<Value, String> {
    let mut piped: Option<Value> = None;
    for cmd in &p.0 {
        piped = Some(eval_command(cmd, dot, piped)?);
    }
    Ok(piped.unwrap_or_default())
}

fn eval_command(cmd: &[Arg], dot: &Value, piped: Option<Value>) -> Result<Value, String> {
    let Some((head, rest)) = cmd.split_first() else {
        return Ok(Value::Nil);
    };
    if let Arg::Func(name) = head {
        let mut args = rest
            .iter()
            .map(|a| eval_arg(a, dot))
            .collect::<Result<Vec<_>, _>>()?;
        args.extend(piped);
        return call(name, args);
    }
    if !rest.is_empty() || piped.is_some() {
        return Err("can't give argument to non-function".into());
    }
    eval_arg(head, dot)
}

fn eval_arg(a: &Arg, dot: &Value) -> Result<Value, String> {
    match a {
        Arg::Lit(v) => Ok(v.clone()),
        Arg::Sub(p) => eval_pipeline(p, dot),
        Arg::Func(name) => call(name, Vec::new()),
        Arg::Field(chain) => {
            let mut cur = dot.clone();
            for (i, name) in chain.iter().enumerate() {
                cur = match cur {
                    Value::Map(mut m) => m.remove(name).unwrap_or(Value::Nil),
                    Value::Nil if i > 0 => {
                        return Err(format!(
                            "nil pointer evaluating interface {{}}.{name} (.{})",
                            chain.join(".")
                        ));
                    }
                    other => {
                        return Err(format!(
                            "can't evaluate field {name} in type {}",
                            go_type(&other)
                        ));
                    }
                };
            }
            Ok(cur)
        }
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Nil => "interface {}",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float64",
        Value::Str(_) => "string",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Time(_) => "time.Time",
        Value::Duration(_) => "time.Duration",
    }
}

fn cmp_args(name: &str, a: &[Value]) -> Result<std::cmp::Ordering, String> {
    let [x, y] = a else {
        return Err(format!(
            "wrong number of args for {name}: want 2 got {}",
            a.len()
        ));
    };
    // The expression engine's ordering: strings with strings, numbers with numbers.
    expr::compare(x, y).ok_or_else(|| format!("{name}: incompatible types for comparison"))
}

fn call(name: &str, a: Vec<Value>) -> Result<Value, String> {
    let res = match name {
        "print" | "println" => {
            // fmt.Sprint: a space between operands when neither is a string.
            let mut s = String::new();
            for (i, v) in a.iter().enumerate() {
                let sep = name == "println"
                    || (i > 0 && !matches!(v, Value::Str(_)) && !matches!(a[i - 1], Value::Str(_)));
                if i > 0 && sep {
                    s.push(' ');
                }
                s.push_str(&v.go_string());
            }
            if name == "println" {
                s.push('\n');
            }
            Ok(Value::Str(s))
        }
        "len" => match a.as_slice() {
            [Value::Str(s)] => Ok(Value::Int(s.len() as i64)),
            [Value::List(l)] => Ok(Value::Int(l.len() as i64)),
            [Value::Map(m)] => Ok(Value::Int(m.len() as i64)),
            [other] => Err(format!("len of type {}", go_type(other))),
            _ => Err("wrong number of args for len: want 1".into()),
        },
        "index" => {
            let Some((first, keys)) = a.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut cur = first.clone();
            for k in keys {
                cur = match (cur, k) {
                    (Value::Map(mut m), Value::Str(k)) => m.remove(k).unwrap_or(Value::Nil),
                    (Value::List(l), k) => {
                        let i = k
                            .as_f64()
                            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                            .ok_or("cannot index slice/array with a non-integer")?;
                        l.get(i as usize)
                            .cloned()
                            .ok_or_else(|| format!("index out of range: {i}"))?
                    }
                    (other, _) => {
                        return Err(format!("can't index item of type {}", go_type(&other)));
                    }
                };
            }
            Ok(cur)
        }
        "not" => match a.as_slice() {
            [v] => Ok(Value::Bool(!truth(v))),
            _ => Err("wrong number of args for not: want 1".into()),
        },
        "and" | "or" => {
            if a.is_empty() {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            // Go returns the first falsy (and) / truthy (or) argument, else the last.
            let want = name == "or";
            let pick = a
                .iter()
                .find(|v| truth(v) == want)
                .unwrap_or(&a[a.len() - 1]);
            Ok(pick.clone())
        }
        "eq" | "ne" => {
            let Some((x, ys)) = a.split_first().filter(|(_, ys)| !ys.is_empty()) else {
                return Err(format!("wrong number of args for {name}: want at least 2"));
            };
            let eq = |y: &Value| match (x.as_f64(), y.as_f64()) {
                (Some(p), Some(q)) => p == q,
                _ => x == y,
            };
            Ok(Value::Bool(if name == "eq" {
                ys.iter().any(eq)
            } else {
                !eq(&ys[0])
            }))
        }
        "lt" => Ok(Value::Bool(cmp_args(name, &a)?.is_lt())),
        "le" => Ok(Value::Bool(cmp_args(name, &a)?.is_le())),
        "gt" => Ok(Value::Bool(cmp_args(name, &a)?.is_gt())),
        "ge" => Ok(Value::Bool(cmp_args(name, &a)?.is_ge())),
        _ => expr::call_sprig(name, a),
    };
    res.map_err(|e| format!("error calling {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_argo_style_templates() {
        let input = json!({
            "body": {"name": "ada", "n": 3, "big": 1e21, "msg": "aGVsbG8gd29ybGQ=", "list": [1, 2], "flag": true},
            "header": {"X-Id": ["7"]}
        });
        let cases: &[(&str, &str)] = &[
            ("{{ .Input.body.name }}", "ada"),
            ("{{ .Input.body.name | upper }}", "ADA"),
            ("{{ upper .Input.body.name }}", "ADA"),
            ("{{ b64dec .Input.body.msg }}", "hello world"),
            ("{{ .Input.body.n }}", "3"),
            ("{{ .Input.body.big }}", "1e+21"),
            ("{{ .Input.body.list }}", "[1 2]"),
            ("{{ .Input.body.missing }}", "<no value>"),
            ("{{ index .Input.header \"X-Id\" 0 }}", "7"),
            ("{{ len .Input.body.list }}", "2"),
            ("pre-{{- \" x \" -}}-post", "pre- x -post"),
            ("a {{- /* gone */ -}} b", "ab"),
            ("{{ if .Input.body.flag }}yes{{ else }}no{{ end }}", "yes"),
            (
                "{{ if not .Input.body.flag }}yes{{ else }}no{{ end }}",
                "no",
            ),
            ("{{ if eq .Input.body.n 3 }}three{{ end }}", "three"),
            (
                "{{ if gt .Input.body.n 5 }}big{{ else }}small{{ end }}",
                "small",
            ),
            ("{{ print .Input.body.n 4 }}", "3 4"),
            ("{{ print \"a\" \"b\" }}", "ab"),
            (
                "{{ .Input.body | toJson }}",
                r#"{"big":1e+21,"flag":true,"list":[1,2],"msg":"aGVsbG8gd29ybGQ=","n":3,"name":"ada"}"#,
            ),
            ("{{ `raw \"q\"` }}", "raw \"q\""),
            ("{{ or \"\" \"dflt\" }}", "dflt"),
            ("{{ and 1 0 }}", "0"),
            (
                "{{ .Input.body.name | replace \"a\" \"o\" | title }}",
                "Odo",
            ),
        ];
        for (src, want) in cases {
            assert_eq!(
                render_input(src, &input).as_deref(),
                Ok(*want),
                "template {src}"
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let input = json!({"s": "x"});
        let cases: &[(&str, &str)] = &[
            ("{{ .Input.s", "unclosed action at byte 0"),
            (
                "{{ range .Input }}x{{ end }}",
                "{{range}} at byte 0 is not supported",
            ),
            ("{{ nosuch .Input }}", "function \"nosuch\" not defined"),
            (
                "{{ printf \"%s\" .Input.s }}",
                "function \"printf\" not defined",
            ),
            ("{{ $x := 1 }}", "variables ($) are not supported"),
            ("{{ if .Input }}x", "has no {{end}}"),
            ("{{ end }}", "unexpected {{end}}"),
            ("{{ .Input.s.t }}", "can't evaluate field t in type string"),
            ("{{ .Input.a.b }}", "nil pointer evaluating interface {}.b"),
            ("{{ .Input 1 }}", "can't give argument to non-function"),
            ("{{ len 1 }}", "len of type int"),
            ("{{ \"x\" | }}", "missing value for command"),
        ];
        for (src, want) in cases {
            let err = render_input(src, &input).expect_err(src);
            assert!(err.contains(want), "template {src}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let src = format!("{{{{ {}1{} }}}}", "(".repeat(200), ")".repeat(200));
        let err = render_input(&src, &json!(null)).expect_err("deep");
        assert!(err.contains("nesting deeper"), "{err}");
    }
}
