//! `when` conditions: govaluate as Argo runs it.
//!
//! Argo substitutes the tags first, then parses the text with govaluate and turns every
//! variable token into a string, so `heads == heads` compares two strings and needs no quotes.
//! Kept from govaluate: numbers are float64 (`3 == 3.0`), `==`/`!=` need equal types (`1 == '1'`
//! is false), `< <= > >=` compare two numbers or two strings, `+` joins when either side is a
//! string, `=~`/`!~` are (RE2) regex matches, `in` tests membership of a `(a, b)` list, `&&`/`||`
//! need booleans and short-circuit, `? :` and `??`; a bare word is letters, digits and `_`, so
//! `my-value` is `my - value` (an error, as in Argo: quote such values), and a dotted bare word
//! (`v1.2`) is a struct accessor that fails. Not kept: govaluate's conversion of quoted dates
//! to times (quoted dates compare as strings).

use super::regex::Regex;
use super::template::render;
use super::value::Value;
use super::{ExprError, Scope};

/// Caps nesting so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 100;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Bool(bool),
    Str(String),
    Var(String),
    Accessor(String),
    Open,
    Close,
    Sep,
    /// `-`, `!`, `~` in prefix position.
    Prefix(String),
    /// Any binary symbol or `in`.
    Op(String),
}

#[derive(Debug, Clone)]
enum Node {
    Lit(Value),
    Var(String),
    Accessor(String),
    Prefix(String, Box<Node>),
    Binary(String, Box<Node>, Box<Node>),
    /// `a, b` (read by `in`).
    List(Vec<Node>),
}

/// A parsed govaluate condition.
#[derive(Debug, Clone)]
pub struct Condition {
    src: String,
    root: Node,
}

const MODIFIERS: &[&str] = &["+", "-", "*", "/", "%", "**", "&", "|", "^", ">>", "<<"];
const LOGICAL: &[&str] = &["&&", "||"];
const COMPARATORS: &[&str] = &["==", "!=", ">", ">=", "<", "<=", "=~", "!~"];
const TERNARY: &[&str] = &["?", ":", "??"];

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let n = text
                .parse::<f64>()
                .map_err(|_| format!("Unable to parse numeric value '{text}' to float64"))?;
            out.push(Tok::Num(n));
            continue;
        }
        if c == ',' {
            out.push(Tok::Sep);
            i += 1;
            continue;
        }
        if c == '[' {
            let (s, next) =
                read_until(&chars, i + 1, |c| c == ']').ok_or("Unclosed parameter bracket")?;
            out.push(Tok::Var(s));
            i = next + 1;
            continue;
        }
        if c.is_alphabetic() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(match word.as_str() {
                "true" => Tok::Bool(true),
                "false" => Tok::Bool(false),
                "in" | "IN" => Tok::Op("in".into()),
                w if w.contains('.') => {
                    if w.ends_with('.') {
                        return Err(format!("Hanging accessor on token '{w}'"));
                    }
                    Tok::Accessor(word)
                }
                _ => Tok::Var(word),
            });
            continue;
        }
        if c == '\'' || c == '"' {
            // govaluate ends a string at the next quote of either kind.
            let (s, next) = read_until(&chars, i + 1, |c| c == '\'' || c == '"')
                .ok_or("Unclosed string literal")?;
            out.push(Tok::Str(s));
            i = next + 1;
            continue;
        }
        if c == '(' {
            out.push(Tok::Open);
            i += 1;
            continue;
        }
        if c == ')' {
            out.push(Tok::Close);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() {
            let d = chars[i];
            if d.is_whitespace()
                || d.is_alphanumeric()
                || matches!(d, '(' | ')' | '[' | ']' | '\'' | '"')
            {
                break;
            }
            i += 1;
        }
        let sym: String = chars[start..i].iter().collect();
        let prefix_ok = matches!(
            out.last(),
            None | Some(Tok::Open | Tok::Sep | Tok::Op(_) | Tok::Prefix(_))
        );
        if prefix_ok && matches!(sym.as_str(), "-" | "!" | "~") {
            out.push(Tok::Prefix(sym));
        } else if MODIFIERS.contains(&sym.as_str())
            || LOGICAL.contains(&sym.as_str())
            || COMPARATORS.contains(&sym.as_str())
            || TERNARY.contains(&sym.as_str())
        {
            out.push(Tok::Op(sym));
        } else {
            return Err(format!(
                "Invalid token: '{sym}' (hint: try wrapping the affected expression in quotes (\"))"
            ));
        }
    }
    Ok(out)
}

/// Reads until `stop` with backslash escapes; returns the text and the stop's index.
fn read_until(chars: &[char], from: usize, stop: impl Fn(char) -> bool) -> Option<(String, usize)> {
    let mut s = String::new();
    let mut i = from;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            if let Some(&n) = chars.get(i + 1) {
                s.push(n);
            }
            i += 2;
            continue;
        }
        if stop(c) {
            return Some((s, i));
        }
        s.push(c);
        i += 1;
    }
    None
}

fn precedence(op: &str) -> u8 {
    match op {
        "?" | ":" | "??" => 1,
        "||" => 2,
        "&&" => 3,
        "&" | "|" | "^" => 4,
        "==" | "!=" | ">" | ">=" | "<" | "<=" | "=~" | "!~" | "in" => 5,
        "<<" | ">>" => 6,
        "+" | "-" => 7,
        "*" | "/" | "%" => 8,
        "**" => 9,
        _ => 0,
    }
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += 1;
        t
    }

    /// A separated list (`a, b`) is the lowest level.
    fn parse_list(&mut self) -> Result<Node, String> {
        let first = self.parse_binary(1)?;
        if self.peek() != Some(&Tok::Sep) {
            return Ok(first);
        }
        let mut items = vec![first];
        while self.peek() == Some(&Tok::Sep) {
            self.next();
            items.push(self.parse_binary(1)?);
        }
        Ok(Node::List(items))
    }

    fn parse_binary(&mut self, min: u8) -> Result<Node, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression nested too deeply".into());
        }
        let mut left = self.parse_prefix()?;
        while let Some(Tok::Op(op)) = self.peek() {
            let op = op.clone();
            let p = precedence(&op);
            if p < min {
                break;
            }
            self.next();
            let right = self.parse_binary(p + 1)?;
            left = Node::Binary(op, Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn parse_prefix(&mut self) -> Result<Node, String> {
        match self.next() {
            Some(Tok::Prefix(p)) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err("expression nested too deeply".into());
                }
                let inner = self.parse_prefix()?;
                self.depth -= 1;
                Ok(Node::Prefix(p, Box::new(inner)))
            }
            Some(Tok::Num(n)) => Ok(Node::Lit(Value::Float(n))),
            Some(Tok::Bool(b)) => Ok(Node::Lit(Value::Bool(b))),
            Some(Tok::Str(s)) => Ok(Node::Lit(Value::Str(s))),
            Some(Tok::Var(v)) => {
                if self.peek() == Some(&Tok::Open) {
                    return Err(format!("Undefined function {v}"));
                }
                Ok(Node::Var(v))
            }
            Some(Tok::Accessor(a)) => Ok(Node::Accessor(a)),
            Some(Tok::Open) => {
                if self.peek() == Some(&Tok::Close) {
                    self.next();
                    return Ok(Node::List(Vec::new()));
                }
                let inner = self.parse_list()?;
                match self.next() {
                    Some(Tok::Close) => Ok(inner),
                    _ => Err("Unbalanced parenthesis".into()),
                }
            }
            Some(t) => Err(format!("Unexpected token {}", describe(&t))),
            None => Err("Unexpected end of expression".into()),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("{n}"),
        Tok::Bool(b) => format!("{b}"),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Var(v) | Tok::Accessor(v) => v.clone(),
        Tok::Open => "(".into(),
        Tok::Close => ")".into(),
        Tok::Sep => ",".into(),
        Tok::Prefix(p) | Tok::Op(p) => p.clone(),
    }
}

/// How variables are read.
enum Vars<'a> {
    /// Argo's `when`: a variable is its own name as a string.
    BareWords,
    /// Sensor filters: variables come from the caller.
    Lookup(&'a dyn Fn(&str) -> Option<Value>),
}

fn num(v: &Value, op: &str) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        other => Err(format!(
            "Value '{}' cannot be used with the modifier '{op}', it is not a number",
            other.go_string()
        )),
    }
}

fn boolean(v: &Value, op: &str) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(format!(
            "Value '{}' cannot be used with the logical operator '{op}', it is not a bool",
            other.go_string()
        )),
    }
}

/// govaluate's `==`: same type and value (numbers are all float64).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        _ => a == b,
    }
}

fn eval(n: &Node, vars: &Vars<'_>) -> Result<Value, String> {
    match n {
        Node::Lit(v) => Ok(v.clone()),
        Node::Var(name) => match vars {
            Vars::BareWords => Ok(Value::Str(name.clone())),
            Vars::Lookup(f) => f(name).ok_or_else(|| format!("No parameter '{name}' found.")),
        },
        Node::Accessor(path) => match vars {
            Vars::BareWords => Err(format!(
                "No parameter '{}' found. (a dotted word is a struct accessor in govaluate; quote the value)",
                path.split('.').next().unwrap_or(path)
            )),
            Vars::Lookup(f) => {
                if let Some(v) = f(path) {
                    return Ok(v);
                }
                let mut parts = path.split('.');
                let root = parts.next().unwrap_or_default();
                let mut cur = f(root).ok_or_else(|| format!("No parameter '{root}' found."))?;
                for p in parts {
                    cur = match &cur {
                        Value::Map(m) => m
                            .get(p)
                            .cloned()
                            .ok_or_else(|| format!("No field '{p}' in '{path}'"))?,
                        _ => return Err(format!("Cannot access '{p}' in '{path}'")),
                    };
                }
                Ok(cur)
            }
        },
        Node::List(items) => Ok(Value::List(
            items
                .iter()
                .map(|i| eval(i, vars))
                .collect::<Result<_, _>>()?,
        )),
        Node::Prefix(op, inner) => {
            let v = eval(inner, vars)?;
            match op.as_str() {
                "-" => Ok(Value::Float(-num(&v, "-")?)),
                "!" => Ok(Value::Bool(!boolean(&v, "!")?)),
                _ => Ok(Value::Float(!(num(&v, "~")? as i64) as f64)),
            }
        }
        Node::Binary(op, l, r) => {
            match op.as_str() {
                "&&" | "||" => {
                    let a = boolean(&eval(l, vars)?, op)?;
                    if (op == "&&" && !a) || (op == "||" && a) {
                        return Ok(Value::Bool(a));
                    }
                    return Ok(Value::Bool(boolean(&eval(r, vars)?, op)?));
                }
                "??" => {
                    let a = eval(l, vars)?;
                    return if a == Value::Nil {
                        eval(r, vars)
                    } else {
                        Ok(a)
                    };
                }
                "?" => {
                    let c = eval(l, vars)?;
                    let Value::Bool(c) = c else {
                        return Err(format!(
                            "Value '{}' cannot be used with the ternary operator '?', it is not a bool",
                            c.go_string()
                        ));
                    };
                    return if c { eval(r, vars) } else { Ok(Value::Nil) };
                }
                ":" => {
                    let a = eval(l, vars)?;
                    return if a == Value::Nil {
                        eval(r, vars)
                    } else {
                        Ok(a)
                    };
                }
                _ => {}
            }
            let a = eval(l, vars)?;
            let b = eval(r, vars)?;
            match op.as_str() {
                "==" => Ok(Value::Bool(same(&a, &b))),
                "!=" => Ok(Value::Bool(!same(&a, &b))),
                ">" | ">=" | "<" | "<=" => {
                    let ord = match (&a, &b) {
                        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
                        _ => num(&a, op)?.partial_cmp(&num(&b, op)?),
                    };
                    let Some(ord) = ord else {
                        return Ok(Value::Bool(false));
                    };
                    Ok(Value::Bool(match op.as_str() {
                        ">" => ord.is_gt(),
                        ">=" => ord.is_ge(),
                        "<" => ord.is_lt(),
                        _ => ord.is_le(),
                    }))
                }
                "=~" | "!~" => {
                    let (Value::Str(s), Value::Str(p)) = (&a, &b) else {
                        return Err(format!(
                            "Value '{}' cannot be used with the comparator '{op}', it is not a string",
                            a.go_string()
                        ));
                    };
                    let re = Regex::new(p).map_err(|e| format!("invalid regex '{p}': {e}"))?;
                    Ok(Value::Bool(re.is_match(s) == (op == "=~")))
                }
                "in" => match &b {
                    Value::List(items) => Ok(Value::Bool(items.iter().any(|i| same(&a, i)))),
                    other => Err(format!(
                        "Value '{}' cannot be used with the comparator 'in', it is not an array",
                        other.go_string()
                    )),
                },
                "+" => {
                    if matches!(a, Value::Str(_)) || matches!(b, Value::Str(_)) {
                        return Ok(Value::Str(format!("{}{}", a.go_string(), b.go_string())));
                    }
                    Ok(Value::Float(num(&a, op)? + num(&b, op)?))
                }
                "-" => Ok(Value::Float(num(&a, op)? - num(&b, op)?)),
                "*" => Ok(Value::Float(num(&a, op)? * num(&b, op)?)),
                "/" => Ok(Value::Float(num(&a, op)? / num(&b, op)?)),
                "%" => Ok(Value::Float(num(&a, op)? % num(&b, op)?)),
                "**" => Ok(Value::Float(num(&a, op)?.powf(num(&b, op)?))),
                "&" | "|" | "^" | "<<" | ">>" => {
                    let (x, y) = (num(&a, op)? as i64, num(&b, op)? as i64);
                    Ok(Value::Float(match op.as_str() {
                        "&" => x & y,
                        "|" => x | y,
                        "^" => x ^ y,
                        "<<" => x.checked_shl(y.clamp(0, 63) as u32).unwrap_or(0),
                        _ => x.checked_shr(y.clamp(0, 63) as u32).unwrap_or(0),
                    } as f64))
                }
                other => Err(format!("unknown operator {other}")),
            }
        }
    }
}

impl Condition {
    /// Parses a condition (already substituted).
    pub fn parse(text: &str) -> Result<Condition, ExprError> {
        let err = |message: String| ExprError::When {
            condition: text.to_owned(),
            message,
        };
        let toks = lex(text).map_err(err)?;
        let mut p = Parser {
            toks,
            at: 0,
            depth: 0,
        };
        let root = p.parse_list().map_err(err)?;
        match p.peek() {
            None => Ok(Condition {
                src: text.to_owned(),
                root,
            }),
            Some(Tok::Close) => Err(err("Unbalanced parenthesis".into())),
            Some(t) => Err(err(format!(
                "unexpected token '{}' (hint: wrap values with spaces or dashes in quotes)",
                describe(t)
            ))),
        }
    }

    /// Evaluates as Argo's `when` does: variables are their own names as strings.
    pub fn eval_bare_words(&self) -> Result<Value, ExprError> {
        eval(&self.root, &Vars::BareWords).map_err(|message| ExprError::When {
            condition: self.src.clone(),
            message,
        })
    }

    /// Evaluates with variables from `vars` (sensor filters); an unknown variable is an error.
    pub fn eval_with(&self, vars: &dyn Fn(&str) -> Option<Value>) -> Result<Value, ExprError> {
        eval(&self.root, &Vars::Lookup(vars)).map_err(|message| ExprError::When {
            condition: self.src.clone(),
            message,
        })
    }
}

/// Decides an already-substituted `when`: empty is true; otherwise govaluate with bare words as
/// strings, and the result must be a boolean.
pub fn eval_condition(resolved: &str) -> Result<bool, ExprError> {
    if resolved.is_empty() {
        return Ok(true);
    }
    if resolved.trim().is_empty() {
        // govaluate evaluates a blank expression to nil, which is not a boolean.
        return Err(ExprError::When {
            condition: resolved.to_owned(),
            message: "Expected boolean evaluation, got <nil>".into(),
        });
    }
    match Condition::parse(resolved)?.eval_bare_words()? {
        Value::Bool(b) => Ok(b),
        other => Err(ExprError::When {
            condition: resolved.to_owned(),
            message: format!("Expected boolean evaluation, got {}", other.go_string()),
        }),
    }
}

/// Substitutes every tag of a `when` (simple and `{{=...}}`, all must resolve) and decides it.
pub fn eval_when(text: &str, scope: &Scope) -> Result<bool, ExprError> {
    eval_condition(&render(text, scope)?)
}
