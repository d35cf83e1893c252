//! The expr-lang dialect of `{{=...}}` tags: lexer, parser (to an [`Ast`]) and evaluator.
//!
//! Semantics follow expr-lang as Argo runs it: `int` and `float64` are distinct (`/` always gives
//! a float, `%` needs ints), `+` adds numbers or joins two strings (never a string and a number),
//! `&&`/`||`/`!` need booleans, a missing map key reads as nil while an unknown root name is an
//! error, `??` replaces nil, `a?.b` is nil when `a` is. Operator precedence is expr-lang's
//! (`??` binds tightest, then `**`, unary minus, `* / %`, `+ -`, `..`, comparisons, unary `not`,
//! `and`, `or`, the `|` pipe, and the ternary last).

use std::collections::BTreeMap;

use super::time::{self, Time};
use super::value::Value;
use super::{ExprError, Scope, funcs};

/// Caps nesting so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 100;
/// Caps a `a..b` range, so `1..1e12` is an error rather than an allocation failure.
pub(crate) const MAX_LIST: usize = 100_000;

/// A parsed expression: its source and syntax tree. Parse once with [`parse`], evaluate many
/// times with [`eval`].
#[derive(Debug, Clone)]
pub struct Ast {
    src: String,
    root: Node,
}

impl Ast {
    /// The expression's source text.
    pub fn source(&self) -> &str {
        &self.src
    }

    /// The variables the expression reads, as dotted paths (`inputs.parameters.x`, with
    /// `['x-y']` written as `.x-y`), each cut at the first computed index. Closure elements
    /// (`#`) and function names are not variables.
    pub fn references(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_refs(&self.root, &mut out);
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub pos: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum UnOp {
    Not,
    Neg,
    Plus,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Matches,
    Contains,
    StartsWith,
    EndsWith,
    Range,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Coalesce,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Lit(Value),
    List(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Ident(String),
    /// `#` (""), `#index`, `#acc` inside a closure.
    Pointer(String),
    Member {
        obj: Box<Node>,
        key: Box<Node>,
        optional: bool,
    },
    Slice {
        obj: Box<Node>,
        from: Option<Box<Node>>,
        to: Option<Box<Node>>,
    },
    Unary(UnOp, Box<Node>),
    Binary {
        op: BinOp,
        negate: bool,
        left: Box<Node>,
        right: Box<Node>,
    },
    Cond {
        cond: Box<Node>,
        then: Box<Node>,
        other: Box<Node>,
    },
    Call {
        name: String,
        args: Vec<Node>,
    },
    Sprig {
        name: String,
        args: Vec<Node>,
    },
    /// A method of a time value (`d.Seconds()`, `t.Add(d)`); `optional` for `?.`.
    Method {
        obj: Box<Node>,
        name: String,
        args: Vec<Node>,
        optional: bool,
    },
    Closure(Box<Node>),
    Elvis(Box<Node>, Box<Node>),
}

fn collect_refs(n: &Node, out: &mut Vec<String>) {
    if let Some(path) = static_path(n) {
        if !path.is_empty() {
            out.push(path.join("."));
        }
        return;
    }
    match &n.kind {
        Kind::Lit(_) | Kind::Pointer(_) | Kind::Ident(_) => {}
        Kind::List(items) => items.iter().for_each(|i| collect_refs(i, out)),
        Kind::Map(items) => items.iter().for_each(|(k, v)| {
            collect_refs(k, out);
            collect_refs(v, out);
        }),
        Kind::Member { obj, key, .. } => {
            collect_refs(obj, out);
            collect_refs(key, out);
        }
        Kind::Slice { obj, from, to } => {
            collect_refs(obj, out);
            from.iter()
                .chain(to.iter())
                .for_each(|i| collect_refs(i, out));
        }
        Kind::Unary(_, e) | Kind::Closure(e) => collect_refs(e, out),
        Kind::Binary { left, right, .. } => {
            collect_refs(left, out);
            collect_refs(right, out);
        }
        Kind::Elvis(a, b) => {
            collect_refs(a, out);
            collect_refs(b, out);
        }
        Kind::Cond { cond, then, other } => {
            collect_refs(cond, out);
            collect_refs(then, out);
            collect_refs(other, out);
        }
        Kind::Call { args, .. } | Kind::Sprig { args, .. } => {
            args.iter().for_each(|a| collect_refs(a, out))
        }
        Kind::Method { obj, args, .. } => {
            collect_refs(obj, out);
            args.iter().for_each(|a| collect_refs(a, out))
        }
    }
}

/// `a.b['c']` as ["a", "b", "c"]: a chain of constant keys from a root name, without `?.`.
fn static_path(n: &Node) -> Option<Vec<String>> {
    match &n.kind {
        Kind::Ident(name) => Some(vec![name.clone()]),
        Kind::Member {
            obj,
            key,
            optional: false,
        } => match &key.kind {
            Kind::Lit(Value::Str(k)) => {
                let mut p = static_path(obj)?;
                p.push(k.clone());
                Some(p)
            }
            _ => None,
        },
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    Pointer(String),
    Op(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    pos: usize,
}

const OPS: &[&str] = &[
    "?.", "??", "**", "==", "!=", "<=", ">=", "&&", "||", "..", "!", "<", ">", "+", "-", "*", "/",
    "%", "^", "(", ")", "[", "]", "{", "}", ",", ":", "?", ".", "|",
];

fn lex(src: &str) -> Result<Vec<Token>, (usize, String)> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit()
            || (c == '.'
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                && !out.last().is_some_and(|t: &Token| {
                    matches!(t.tok, Tok::Ident(_) | Tok::Op(")") | Tok::Op("]"))
                }))
        {
            let (tok, next) = lex_number(&chars, i)?;
            out.push(Token { tok, pos: start });
            i = next;
            continue;
        }
        if c.is_alphabetic() || c == '_' || c == '$' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Ident(chars[start..i].iter().collect()),
                pos: start,
            });
            continue;
        }
        if c == '#' {
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Pointer(chars[start + 1..i].iter().collect()),
                pos: start,
            });
            continue;
        }
        if c == '"' || c == '\'' {
            let (s, next) = lex_string(&chars, i)?;
            out.push(Token {
                tok: Tok::Str(s),
                pos: start,
            });
            i = next;
            continue;
        }
        if c == '`' {
            let Some(end) = chars[i + 1..].iter().position(|&x| x == '`') else {
                return Err((start, "unterminated raw string".into()));
            };
            out.push(Token {
                tok: Tok::Str(chars[i + 1..i + 1 + end].iter().collect()),
                pos: start,
            });
            i += end + 2;
            continue;
        }
        let mut matched = None;
        for op in OPS {
            let n = op.chars().count();
            if chars.len() >= i + n && chars[i..i + n].iter().copied().eq(op.chars()) {
                // `?.` followed by a digit is `? .5`, a ternary with a float.
                if *op == "?." && chars.get(i + 2).is_some_and(|d| d.is_ascii_digit()) {
                    continue;
                }
                matched = Some(*op);
                break;
            }
        }
        match matched {
            Some(op) => {
                i += op.chars().count();
                out.push(Token {
                    tok: Tok::Op(op),
                    pos: start,
                });
            }
            None => return Err((start, format!("unexpected character {c:?}"))),
        }
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: chars.len(),
    });
    Ok(out)
}

fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize), (usize, String)> {
    let mut i = start;
    let radix = if chars[i] == '0' {
        match chars.get(i + 1) {
            Some('x' | 'X') => 16,
            Some('o' | 'O') => 8,
            Some('b' | 'B') => 2,
            _ => 10,
        }
    } else {
        10
    };
    if radix != 10 {
        i += 2;
        let s = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let digits: String = chars[s..i].iter().filter(|&&c| c != '_').collect();
        return i64::from_str_radix(&digits, radix)
            .map(|v| (Tok::Int(v), i))
            .map_err(|_| {
                (
                    start,
                    format!(
                        "invalid number {:?}",
                        chars[start..i].iter().collect::<String>()
                    ),
                )
            });
    }
    let mut is_float = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() || c == '_' {
            i += 1;
        } else if c == '.' && !is_float && chars.get(i + 1) != Some(&'.') {
            is_float = true;
            i += 1;
        } else if (c == 'e' || c == 'E')
            && (chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                || (matches!(chars.get(i + 1), Some('+' | '-'))
                    && chars.get(i + 2).is_some_and(|d| d.is_ascii_digit())))
        {
            is_float = true;
            i += 2;
        } else {
            break;
        }
    }
    if i < chars.len() && (chars[i].is_alphabetic() || chars[i] == '_') {
        return Err((start, "invalid number: a digit run ends in a letter".into()));
    }
    let text: String = chars[start..i].iter().filter(|&&c| c != '_').collect();
    if is_float {
        text.parse::<f64>()
            .map(|f| (Tok::Float(f), i))
            .map_err(|_| (start, format!("invalid float {text:?}")))
    } else {
        match text.parse::<i64>() {
            Ok(v) => Ok((Tok::Int(v), i)),
            // Go's lexer also turns an int literal that overflows int into an error.
            Err(_) => Err((start, format!("integer {text} overflows int"))),
        }
    }
}

fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), (usize, String)> {
    let quote = chars[start];
    let mut i = start + 1;
    let mut out = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c == quote {
            return Ok((out, i + 1));
        }
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else {
                break;
            };
            i += 2;
            let hex = |n: usize, i: &mut usize| -> Result<char, (usize, String)> {
                let end = (*i + n).min(chars.len());
                let h: String = chars[*i..end].iter().collect();
                *i = end;
                u32::from_str_radix(&h, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or((start, format!("invalid escape in string: {h:?}")))
            };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'a' => out.push('\u{7}'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'v' => out.push('\u{b}'),
                '\\' | '\'' | '"' | '`' => out.push(e),
                'x' => out.push(hex(2, &mut i)?),
                'u' => out.push(hex(4, &mut i)?),
                'U' => out.push(hex(8, &mut i)?),
                '0'..='7' => {
                    let end = (i + 2).min(chars.len());
                    let o: String = std::iter::once(e)
                        .chain(chars[i..end].iter().copied())
                        .collect();
                    i = end;
                    match u32::from_str_radix(&o, 8).ok().and_then(char::from_u32) {
                        Some(ch) => out.push(ch),
                        None => return Err((start, format!("invalid octal escape {o:?}"))),
                    }
                }
                other => return Err((i - 2, format!("invalid escape \\{other} in string"))),
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    Err((start, "unterminated string".into()))
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<Token>,
    at: usize,
    depth: usize,
    closures: usize,
}

type PResult<T> = Result<T, (usize, String)>;

fn binary_op(tok: &Tok) -> Option<(BinOp, u8, bool)> {
    // (op, precedence, right-associative), expr-lang's table.
    Some(match tok {
        Tok::Op("||") => (BinOp::Or, 10, false),
        Tok::Ident(s) if s == "or" => (BinOp::Or, 10, false),
        Tok::Op("&&") => (BinOp::And, 15, false),
        Tok::Ident(s) if s == "and" => (BinOp::And, 15, false),
        Tok::Op("==") => (BinOp::Eq, 20, false),
        Tok::Op("!=") => (BinOp::Ne, 20, false),
        Tok::Op("<") => (BinOp::Lt, 20, false),
        Tok::Op(">") => (BinOp::Gt, 20, false),
        Tok::Op("<=") => (BinOp::Le, 20, false),
        Tok::Op(">=") => (BinOp::Ge, 20, false),
        Tok::Ident(s) if s == "in" => (BinOp::In, 20, false),
        Tok::Ident(s) if s == "matches" => (BinOp::Matches, 20, false),
        Tok::Ident(s) if s == "contains" => (BinOp::Contains, 20, false),
        Tok::Ident(s) if s == "startsWith" => (BinOp::StartsWith, 20, false),
        Tok::Ident(s) if s == "endsWith" => (BinOp::EndsWith, 20, false),
        Tok::Op("..") => (BinOp::Range, 25, false),
        Tok::Op("+") => (BinOp::Add, 30, false),
        Tok::Op("-") => (BinOp::Sub, 30, false),
        Tok::Op("*") => (BinOp::Mul, 60, false),
        Tok::Op("/") => (BinOp::Div, 60, false),
        Tok::Op("%") => (BinOp::Mod, 60, false),
        Tok::Op("**") | Tok::Op("^") => (BinOp::Pow, 100, true),
        Tok::Op("??") => (BinOp::Coalesce, 200, false),
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.at).map(|t| &t.tok).unwrap_or(&Tok::Eof)
    }

    fn peek_at(&self, n: usize) -> &Tok {
        self.toks
            .get(self.at + n)
            .map(|t| &t.tok)
            .unwrap_or(&Tok::Eof)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.at).map(|t| t.pos).unwrap_or(0)
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.at < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn expect(&mut self, op: &'static str) -> PResult<()> {
        if self.peek() == &Tok::Op(op) {
            self.next();
            Ok(())
        } else {
            Err((
                self.pos(),
                format!("expected `{op}`, found {}", describe(self.peek())),
            ))
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((self.pos(), "expression nested too deeply".into()));
        }
        Ok(())
    }

    fn parse_expression(&mut self, min_prec: u8) -> PResult<Node> {
        self.enter()?;
        let mut left = self.parse_unary()?;
        loop {
            let pos = self.pos();
            // `not in`, `not matches`, ... are the negated comparisons.
            let (tok, negate) = match self.peek() {
                Tok::Ident(s) if s == "not" => (self.peek_at(1).clone(), true),
                t => (t.clone(), false),
            };
            if tok == Tok::Op("|") && min_prec == 0 {
                self.next();
                left = self.parse_pipe(left, pos)?;
                continue;
            }
            let Some((op, prec, right_assoc)) = binary_op(&tok) else {
                break;
            };
            if negate
                && (prec != 20
                    || matches!(
                        op,
                        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge
                    ))
            {
                return Err((
                    pos,
                    "`not` must be followed by in, matches, contains, startsWith or endsWith"
                        .into(),
                ));
            }
            if prec < min_prec {
                break;
            }
            self.next();
            if negate {
                self.next();
            }
            let right = self.parse_expression(if right_assoc { prec } else { prec + 1 })?;
            left = Node {
                pos,
                kind: Kind::Binary {
                    op,
                    negate,
                    left: Box::new(left),
                    right: Box::new(right),
                },
            };
        }
        if min_prec == 0 && self.peek() == &Tok::Op("?") {
            let pos = self.pos();
            self.next();
            if self.peek() == &Tok::Op(":") {
                // `a ?: b`: a unless it is nil or false.
                self.next();
                let other = self.parse_expression(0)?;
                left = Node {
                    pos,
                    kind: Kind::Elvis(Box::new(left), Box::new(other)),
                };
            } else {
                let then = self.parse_expression(0)?;
                self.expect(":")?;
                let other = self.parse_expression(0)?;
                left = Node {
                    pos,
                    kind: Kind::Cond {
                        cond: Box::new(left),
                        then: Box::new(then),
                        other: Box::new(other),
                    },
                };
            }
        }
        self.depth -= 1;
        Ok(left)
    }

    fn parse_pipe(&mut self, left: Node, pos: usize) -> PResult<Node> {
        let name = match self.next() {
            Tok::Ident(n) => n,
            t => {
                return Err((
                    pos,
                    format!("expected a function after `|`, found {}", describe(&t)),
                ));
            }
        };
        let mut call = self.parse_call_from(name, pos, 1)?;
        if let Kind::Call { args, .. } | Kind::Sprig { args, .. } = &mut call.kind {
            args.insert(0, left);
        }
        Ok(call)
    }

    fn parse_unary(&mut self) -> PResult<Node> {
        let pos = self.pos();
        let op = match self.peek() {
            Tok::Op("!") => Some((UnOp::Not, 50)),
            Tok::Ident(s) if s == "not" => Some((UnOp::Not, 50)),
            Tok::Op("-") => Some((UnOp::Neg, 90)),
            Tok::Op("+") => Some((UnOp::Plus, 90)),
            _ => None,
        };
        if let Some((op, prec)) = op {
            self.next();
            self.enter()?;
            let e = self.parse_expression(prec)?;
            self.depth -= 1;
            return Ok(Node {
                pos,
                kind: Kind::Unary(op, Box::new(e)),
            });
        }
        let primary = self.parse_primary()?;
        self.parse_postfix(primary)
    }

    fn parse_primary(&mut self) -> PResult<Node> {
        let pos = self.pos();
        let lit = |v: Value| {
            Ok(Node {
                pos,
                kind: Kind::Lit(v),
            })
        };
        match self.next() {
            Tok::Int(i) => lit(Value::Int(i)),
            Tok::Float(f) => lit(Value::Float(f)),
            Tok::Str(s) => lit(Value::Str(s)),
            Tok::Pointer(name) => {
                if self.closures == 0 {
                    return Err((pos, "`#` can only be used inside a predicate".into()));
                }
                if !matches!(name.as_str(), "" | "index" | "acc") {
                    return Err((pos, format!("unknown pointer #{name}")));
                }
                Ok(Node {
                    pos,
                    kind: Kind::Pointer(name),
                })
            }
            Tok::Ident(name) => match name.as_str() {
                "nil" => lit(Value::Nil),
                "true" => lit(Value::Bool(true)),
                "false" => lit(Value::Bool(false)),
                _ if self.peek() == &Tok::Op("(") => self.parse_call(name, pos),
                _ => Ok(Node {
                    pos,
                    kind: Kind::Ident(name),
                }),
            },
            Tok::Op("(") => {
                let e = self.parse_expression(0)?;
                self.expect(")")?;
                Ok(e)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while self.peek() != &Tok::Op("]") {
                    items.push(self.parse_expression(0)?);
                    if self.peek() == &Tok::Op(",") {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.expect("]")?;
                Ok(Node {
                    pos,
                    kind: Kind::List(items),
                })
            }
            Tok::Op("{") => {
                let mut items = Vec::new();
                while self.peek() != &Tok::Op("}") {
                    let kpos = self.pos();
                    let key = match self.next() {
                        Tok::Ident(k) => Node {
                            pos: kpos,
                            kind: Kind::Lit(Value::Str(k)),
                        },
                        Tok::Str(k) => Node {
                            pos: kpos,
                            kind: Kind::Lit(Value::Str(k)),
                        },
                        Tok::Int(i) => Node {
                            pos: kpos,
                            kind: Kind::Lit(Value::Str(i.to_string())),
                        },
                        Tok::Op("(") => {
                            let e = self.parse_expression(0)?;
                            self.expect(")")?;
                            e
                        }
                        t => {
                            return Err((
                                kpos,
                                format!(
                                    "a map key must be a name, string or (expression), found {}",
                                    describe(&t)
                                ),
                            ));
                        }
                    };
                    self.expect(":")?;
                    let v = self.parse_expression(0)?;
                    items.push((key, v));
                    if self.peek() == &Tok::Op(",") {
                        self.next();
                    } else {
                        break;
                    }
                }
                self.expect("}")?;
                Ok(Node {
                    pos,
                    kind: Kind::Map(items),
                })
            }
            Tok::Op(".") if self.closures > 0 => {
                // `.field` inside a predicate is `#.field`.
                let key = self.member_name()?;
                let ptr = Node {
                    pos,
                    kind: Kind::Pointer(String::new()),
                };
                Ok(Node {
                    pos,
                    kind: Kind::Member {
                        obj: Box::new(ptr),
                        key: Box::new(key),
                        optional: false,
                    },
                })
            }
            Tok::Eof => Err((pos, "unexpected end of expression".into())),
            t => Err((pos, format!("unexpected {}", describe(&t)))),
        }
    }

    fn member_name(&mut self) -> PResult<Node> {
        let pos = self.pos();
        match self.next() {
            Tok::Ident(name) => Ok(Node {
                pos,
                kind: Kind::Lit(Value::Str(name)),
            }),
            t => Err((
                pos,
                format!("expected a name after `.`, found {}", describe(&t)),
            )),
        }
    }

    fn parse_postfix(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            let pos = self.pos();
            match self.peek().clone() {
                Tok::Op(op @ ("." | "?.")) => {
                    self.next();
                    let optional = op == "?.";
                    if optional && self.peek() == &Tok::Op("[") {
                        self.next();
                        let key = self.parse_expression(0)?;
                        self.expect("]")?;
                        node = Node {
                            pos,
                            kind: Kind::Member {
                                obj: Box::new(node),
                                key: Box::new(key),
                                optional,
                            },
                        };
                        continue;
                    }
                    let key = self.member_name()?;
                    if self.peek() == &Tok::Op("(") {
                        // Method call: the `sprig` namespace, or a method of a time value.
                        let Kind::Lit(Value::Str(name)) = &key.kind else {
                            return Err((pos, "invalid method call".into()));
                        };
                        if !matches!(&node.kind, Kind::Ident(root) if root == "sprig") {
                            if !time::METHODS.contains(&name.as_str()) {
                                return Err((pos, format!("unknown method {name}")));
                            }
                            let name = name.clone();
                            let args = self.parse_args(&name, None)?;
                            node = Node {
                                pos,
                                kind: Kind::Method {
                                    obj: Box::new(node),
                                    name,
                                    args,
                                    optional,
                                },
                            };
                            continue;
                        }
                        if !funcs::is_sprig(name) {
                            return Err((
                                pos,
                                format!("unknown or unsupported function sprig.{name}"),
                            ));
                        }
                        let name = name.clone();
                        let args = self.parse_args(&name, None)?;
                        node = Node {
                            pos: node.pos,
                            kind: Kind::Sprig { name, args },
                        };
                        continue;
                    }
                    node = Node {
                        pos,
                        kind: Kind::Member {
                            obj: Box::new(node),
                            key: Box::new(key),
                            optional,
                        },
                    };
                }
                Tok::Op("[") => {
                    self.next();
                    if self.peek() == &Tok::Op(":") {
                        self.next();
                        let to = if self.peek() == &Tok::Op("]") {
                            None
                        } else {
                            Some(Box::new(self.parse_expression(0)?))
                        };
                        self.expect("]")?;
                        node = Node {
                            pos,
                            kind: Kind::Slice {
                                obj: Box::new(node),
                                from: None,
                                to,
                            },
                        };
                        continue;
                    }
                    let key = self.parse_expression(0)?;
                    if self.peek() == &Tok::Op(":") {
                        self.next();
                        let to = if self.peek() == &Tok::Op("]") {
                            None
                        } else {
                            Some(Box::new(self.parse_expression(0)?))
                        };
                        self.expect("]")?;
                        node = Node {
                            pos,
                            kind: Kind::Slice {
                                obj: Box::new(node),
                                from: Some(Box::new(key)),
                                to,
                            },
                        };
                        continue;
                    }
                    self.expect("]")?;
                    node = Node {
                        pos,
                        kind: Kind::Member {
                            obj: Box::new(node),
                            key: Box::new(key),
                            optional: false,
                        },
                    };
                }
                _ => return Ok(node),
            }
        }
    }

    fn parse_call(&mut self, name: String, pos: usize) -> PResult<Node> {
        self.parse_call_from(name, pos, 0)
    }

    /// `piped` arguments come before the parenthesis (`x | f(...)`), which moves the predicate.
    fn parse_call_from(&mut self, name: String, pos: usize, piped: usize) -> PResult<Node> {
        if name == "sprig" {
            return Err((pos, "use sprig functions as sprig.name(...)".into()));
        }
        if !funcs::is_builtin(&name) {
            return Err((pos, format!("unknown function {name}")));
        }
        let closure_at = funcs::is_predicate(&name).then(|| 1usize.saturating_sub(piped));
        let args = self.parse_args(&name, closure_at)?;
        Ok(Node {
            pos,
            kind: Kind::Call { name, args },
        })
    }

    fn parse_args(&mut self, name: &str, closure_at: Option<usize>) -> PResult<Vec<Node>> {
        self.expect("(")?;
        let mut args = Vec::new();
        while self.peek() != &Tok::Op(")") {
            if closure_at == Some(args.len()) {
                let pos = self.pos();
                self.closures += 1;
                let body = if self.peek() == &Tok::Op("{") {
                    self.next();
                    let b = self.parse_expression(0)?;
                    self.expect("}")?;
                    b
                } else {
                    self.parse_expression(0)?
                };
                self.closures -= 1;
                args.push(Node {
                    pos,
                    kind: Kind::Closure(Box::new(body)),
                });
            } else {
                args.push(self.parse_expression(0)?);
            }
            if self.peek() == &Tok::Op(",") {
                self.next();
            } else {
                break;
            }
        }
        if self.peek() != &Tok::Op(")") {
            return Err((
                self.pos(),
                format!(
                    "expected `,` or `)` in the arguments of {name}, found {}",
                    describe(self.peek())
                ),
            ));
        }
        self.next();
        Ok(args)
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Int(i) => format!("`{i}`"),
        Tok::Float(f) => format!("`{f}`"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Pointer(p) => format!("`#{p}`"),
        Tok::Op(o) => format!("`{o}`"),
        Tok::Eof => "end of expression".into(),
    }
}

/// Parses an expression (the text after `{{=`). The error carries the column.
pub fn parse(src: &str) -> Result<Ast, ExprError> {
    let err = |(pos, message): (usize, String)| ExprError::Syntax {
        expr: src.to_owned(),
        pos,
        message,
    };
    let toks = lex(src).map_err(err)?;
    let mut p = Parser {
        toks,
        at: 0,
        depth: 0,
        closures: 0,
    };
    let root = p.parse_expression(0).map_err(err)?;
    if p.peek() != &Tok::Eof {
        return Err(err((
            p.pos(),
            format!("unexpected {} after the expression", describe(p.peek())),
        )));
    }
    Ok(Ast {
        src: src.to_owned(),
        root,
    })
}

/// Evaluates a parsed expression against a scope.
pub fn eval(ast: &Ast, scope: &Scope) -> Result<Value, ExprError> {
    let mut ev = Eval {
        scope,
        frames: Vec::new(),
    };
    ev.eval(&ast.root).map_err(|(pos, mut message)| {
        // `steps.flip-coin` parses as `steps.flip - coin`: say how to write it.
        let before_dash = pos > 0 && ast.src.chars().nth(pos - 1) == Some('-');
        if message.starts_with("unknown name") && before_dash {
            message.push_str(" (a name with a dash needs brackets, e.g. steps['flip-coin'])");
        }
        ExprError::Eval {
            expr: ast.src.clone(),
            pos,
            message,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Evaluator

pub(crate) type EResult = Result<Value, (usize, String)>;

pub(crate) struct Frame {
    pub elem: Value,
    pub index: i64,
    pub acc: Value,
}

pub(crate) struct Eval<'a> {
    scope: &'a Scope,
    pub frames: Vec<Frame>,
}

pub(crate) fn truthy_bool(v: &Value, pos: usize, what: &str) -> Result<bool, (usize, String)> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err((
            pos,
            format!(
                "{what} needs a bool, got {} ({})",
                other.type_name(),
                other.go_string()
            ),
        )),
    }
}

/// expr-lang's `==`: numbers compare across int and float, everything else structurally.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64() == b.as_f64()
        }
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        // Go's `Time.Equal`: the same instant whatever the offset.
        (Value::Time(x), Value::Time(y)) => x.cmp_instant(y).is_eq(),
        _ => a == b,
    }
}

pub(crate) fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            a.as_f64()?.partial_cmp(&b.as_f64()?)
        }
        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
        (Value::Time(x), Value::Time(y)) => Some(x.cmp_instant(y)),
        (Value::Duration(x), Value::Duration(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn index_of(len: usize, idx: &Value, pos: usize) -> Result<usize, (usize, String)> {
    let i = match idx {
        Value::Int(i) => *i,
        Value::Float(f) if f.fract() == 0.0 && f.is_finite() => *f as i64,
        other => {
            return Err((
                pos,
                format!("array index must be an int, got {}", other.type_name()),
            ));
        }
    };
    let n = len as i64;
    let j = if i < 0 { i + n } else { i };
    if j < 0 || j >= n {
        return Err((
            pos,
            format!("index out of range: {i} (array length is {len})"),
        ));
    }
    Ok(j as usize)
}

pub(crate) fn fetch(obj: &Value, key: &Value, pos: usize) -> EResult {
    match (obj, key) {
        (Value::Map(m), Value::Str(k)) => Ok(m.get(k).cloned().unwrap_or(Value::Nil)),
        (Value::Map(_), k) => Err((pos, format!("cannot use {} as a map key", k.type_name()))),
        (Value::List(l), k) => Ok(l[index_of(l.len(), k, pos)?].clone()),
        (Value::Str(s), k) => {
            let chars: Vec<char> = s.chars().collect();
            Ok(Value::Str(
                chars[index_of(chars.len(), k, pos)?].to_string(),
            ))
        }
        (o, k) => Err((
            pos,
            format!("cannot fetch {} from {}", k.go_string(), o.type_name()),
        )),
    }
}

fn slice_bounds(
    len: usize,
    from: Option<&Value>,
    to: Option<&Value>,
    pos: usize,
) -> Result<(usize, usize), (usize, String)> {
    let conv = |v: Option<&Value>, default: i64| -> Result<i64, (usize, String)> {
        match v {
            None => Ok(default),
            Some(Value::Int(i)) => Ok(*i),
            Some(other) => Err((
                pos,
                format!("slice bound must be an int, got {}", other.type_name()),
            )),
        }
    };
    let n = len as i64;
    let mut a = conv(from, 0)?;
    let mut b = conv(to, n)?;
    if a < 0 {
        a += n;
    }
    if b < 0 {
        b += n;
    }
    let a = a.clamp(0, n);
    let b = b.clamp(0, n);
    if a > b {
        return Err((pos, format!("invalid slice indices: {a} > {b}")));
    }
    Ok((a as usize, b as usize))
}

impl Eval<'_> {
    pub(crate) fn eval(&mut self, n: &Node) -> EResult {
        match &n.kind {
            Kind::Lit(v) => Ok(v.clone()),
            Kind::List(items) => Ok(Value::List(
                items
                    .iter()
                    .map(|i| self.eval(i))
                    .collect::<Result<_, _>>()?,
            )),
            Kind::Map(items) => {
                let mut m = BTreeMap::new();
                for (k, v) in items {
                    let key = match self.eval(k)? {
                        Value::Str(s) => s,
                        other => other.go_string(),
                    };
                    m.insert(key, self.eval(v)?);
                }
                Ok(Value::Map(m))
            }
            Kind::Ident(name) => self
                .scope
                .root(name)
                .ok_or_else(|| (n.pos, format!("unknown name {name}"))),
            Kind::Pointer(which) => {
                let Some(f) = self.frames.last() else {
                    return Err((n.pos, "`#` used outside a predicate".into()));
                };
                Ok(match which.as_str() {
                    "index" => Value::Int(f.index),
                    "acc" => f.acc.clone(),
                    _ => f.elem.clone(),
                })
            }
            Kind::Member { .. } => Ok(self.member(n)?.unwrap_or(Value::Nil)),
            Kind::Slice { obj, from, to } => {
                let o = self.eval(obj)?;
                let from = from.as_ref().map(|f| self.eval(f)).transpose()?;
                let to = to.as_ref().map(|t| self.eval(t)).transpose()?;
                match o {
                    Value::List(l) => {
                        let (a, b) = slice_bounds(l.len(), from.as_ref(), to.as_ref(), n.pos)?;
                        Ok(Value::List(l[a..b].to_vec()))
                    }
                    Value::Str(s) => {
                        let chars: Vec<char> = s.chars().collect();
                        let (a, b) = slice_bounds(chars.len(), from.as_ref(), to.as_ref(), n.pos)?;
                        Ok(Value::Str(chars[a..b].iter().collect()))
                    }
                    other => Err((n.pos, format!("cannot slice {}", other.type_name()))),
                }
            }
            Kind::Unary(op, e) => {
                let v = self.eval(e)?;
                match (op, v) {
                    (UnOp::Not, v) => Ok(Value::Bool(!truthy_bool(&v, n.pos, "`!`")?)),
                    (UnOp::Neg, Value::Int(i)) => Ok(Value::Int(i.wrapping_neg())),
                    (UnOp::Neg, Value::Float(f)) => Ok(Value::Float(-f)),
                    (UnOp::Plus, v @ (Value::Int(_) | Value::Float(_))) => Ok(v),
                    (_, v) => Err((
                        n.pos,
                        format!("invalid operation: unary minus/plus on {}", v.type_name()),
                    )),
                }
            }
            Kind::Binary {
                op,
                negate,
                left,
                right,
            } => {
                let v = self.binary(*op, left, right, n.pos)?;
                if *negate {
                    Ok(Value::Bool(!truthy_bool(&v, n.pos, "`not`")?))
                } else {
                    Ok(v)
                }
            }
            Kind::Cond { cond, then, other } => {
                let c = self.eval(cond)?;
                if truthy_bool(&c, n.pos, "the ternary condition")? {
                    self.eval(then)
                } else {
                    self.eval(other)
                }
            }
            Kind::Elvis(left, right) => match self.eval(left)? {
                Value::Nil | Value::Bool(false) => self.eval(right),
                v => Ok(v),
            },
            Kind::Call { name, args } => funcs::call_builtin(self, name, args, n.pos),
            Kind::Sprig { name, args } => {
                let vals = args
                    .iter()
                    .map(|a| self.eval(a))
                    .collect::<Result<Vec<_>, _>>()?;
                funcs::call_sprig(name, vals).map_err(|m| (n.pos, format!("sprig.{name}: {m}")))
            }
            Kind::Method {
                obj,
                name,
                args,
                optional,
            } => {
                let recv = match &obj.kind {
                    Kind::Member { .. } => match self.member(obj)? {
                        Some(v) => v,
                        None => return Ok(Value::Nil),
                    },
                    _ => self.eval(obj)?,
                };
                if *optional && recv == Value::Nil {
                    return Ok(Value::Nil);
                }
                let vals = args
                    .iter()
                    .map(|a| self.eval(a))
                    .collect::<Result<Vec<_>, _>>()?;
                time::call_method(&recv, name, &vals).map_err(|m| (n.pos, format!("{name}: {m}")))
            }
            Kind::Closure(_) => Err((
                n.pos,
                "a predicate can only be an argument of a builtin".into(),
            )),
        }
    }

    /// The clock of the scope (`now()`), when the caller set one.
    pub(crate) fn clock(&self) -> Option<Time> {
        self.scope.now()
    }

    /// Member access; `None` means an optional chain stopped at nil.
    fn member(&mut self, n: &Node) -> Result<Option<Value>, (usize, String)> {
        let Kind::Member { obj, key, optional } = &n.kind else {
            return self.eval(n).map(Some);
        };
        if let Some(path) = static_path(n) {
            let mut root = n;
            while let Kind::Member { obj, .. } = &root.kind {
                root = obj;
            }
            if !path.first().is_some_and(|r| self.scope.knows(r)) {
                return Err((root.pos, format!("unknown name {}", path[0])));
            }
            return self.resolve_path(&path, n.pos).map(Some);
        }
        let o = match &obj.kind {
            Kind::Member { .. } => match self.member(obj)? {
                Some(v) => v,
                None => return Ok(None),
            },
            _ => self.eval(obj)?,
        };
        if *optional && o == Value::Nil {
            return Ok(None);
        }
        let k = self.eval(key)?;
        fetch(&o, &k, n.pos).map(Some)
    }

    /// Reads a constant path straight from the flat scope, so `tasks.A.outputs.result` never
    /// materialises every task's outputs.
    fn resolve_path(&self, path: &[String], pos: usize) -> EResult {
        let Some(root) = path.first() else {
            return Ok(Value::Nil);
        };
        if !self.scope.knows(root) {
            return Err((pos, format!("unknown name {root}")));
        }
        let mut prefix = root.clone();
        let mut i = 1;
        while i < path.len() && self.scope.has_children(&prefix) {
            let next = format!("{prefix}.{}", path[i]);
            if !self.scope.knows(&next) {
                // A missing key reads as nil; reading further from nil is an error.
                if i + 1 < path.len() {
                    return Err((
                        pos,
                        format!("cannot fetch {} from nil ({next} is not set)", path[i + 1]),
                    ));
                }
                return Ok(Value::Nil);
            }
            prefix = next;
            i += 1;
        }
        let mut v = self.scope.root(&prefix).unwrap_or(Value::Nil);
        for k in &path[i..] {
            v = fetch(&v, &Value::Str(k.clone()), pos)?;
        }
        Ok(v)
    }

    fn binary(&mut self, op: BinOp, left: &Node, right: &Node, pos: usize) -> EResult {
        match op {
            BinOp::And | BinOp::Or => {
                let l = truthy_bool(
                    &self.eval(left)?,
                    pos,
                    if op == BinOp::And { "`&&`" } else { "`||`" },
                )?;
                if (op == BinOp::And && !l) || (op == BinOp::Or && l) {
                    return Ok(Value::Bool(l));
                }
                let r = truthy_bool(
                    &self.eval(right)?,
                    pos,
                    if op == BinOp::And { "`&&`" } else { "`||`" },
                )?;
                return Ok(Value::Bool(r));
            }
            BinOp::Coalesce => {
                let l = match &left.kind {
                    Kind::Member { .. } => self.member(left)?.unwrap_or(Value::Nil),
                    _ => self.eval(left)?,
                };
                return if l == Value::Nil {
                    self.eval(right)
                } else {
                    Ok(l)
                };
            }
            _ => {}
        }
        let l = self.eval(left)?;
        let r = self.eval(right)?;
        let mismatch = |sym: &str| {
            Err((
                pos,
                format!(
                    "invalid operation: {} {sym} {} (mismatched types {} and {})",
                    l.go_string(),
                    r.go_string(),
                    l.type_name(),
                    r.type_name()
                ),
            ))
        };
        match op {
            BinOp::Eq => Ok(Value::Bool(equal(&l, &r))),
            BinOp::Ne => Ok(Value::Bool(!equal(&l, &r))),
            BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => {
                let sym = match op {
                    BinOp::Lt => "<",
                    BinOp::Gt => ">",
                    BinOp::Le => "<=",
                    _ => ">=",
                };
                let Some(ord) = compare(&l, &r) else {
                    // NaN compares false, as in Go.
                    if l.as_f64().is_some() && r.as_f64().is_some() {
                        return Ok(Value::Bool(false));
                    }
                    return mismatch(sym);
                };
                Ok(Value::Bool(match op {
                    BinOp::Lt => ord.is_lt(),
                    BinOp::Gt => ord.is_gt(),
                    BinOp::Le => ord.is_le(),
                    _ => ord.is_ge(),
                }))
            }
            BinOp::In => match &r {
                Value::List(items) => Ok(Value::Bool(items.iter().any(|i| equal(&l, i)))),
                Value::Map(m) => match &l {
                    Value::Str(k) => Ok(Value::Bool(m.contains_key(k))),
                    other => Err((
                        pos,
                        format!("cannot use {} as a map key in `in`", other.type_name()),
                    )),
                },
                other => Err((
                    pos,
                    format!("operator `in` not defined on {}", other.type_name()),
                )),
            },
            BinOp::Matches => match (&l, &r) {
                (Value::Str(s), Value::Str(p)) => {
                    let re = super::regex::Regex::new(p)
                        .map_err(|e| (pos, format!("invalid regex {p:?}: {e}")))?;
                    Ok(Value::Bool(re.is_match(s)))
                }
                _ => mismatch("matches"),
            },
            BinOp::Contains | BinOp::StartsWith | BinOp::EndsWith => match (&l, &r) {
                (Value::Str(a), Value::Str(b)) => Ok(Value::Bool(match op {
                    BinOp::Contains => a.contains(b.as_str()),
                    BinOp::StartsWith => a.starts_with(b.as_str()),
                    _ => a.ends_with(b.as_str()),
                })),
                _ => mismatch(match op {
                    BinOp::Contains => "contains",
                    BinOp::StartsWith => "startsWith",
                    _ => "endsWith",
                }),
            },
            BinOp::Range => match (&l, &r) {
                (Value::Int(a), Value::Int(b)) => {
                    if b < a {
                        return Ok(Value::List(Vec::new()));
                    }
                    let len = b.saturating_sub(*a).saturating_add(1);
                    if len > MAX_LIST as i64 {
                        return Err((
                            pos,
                            format!("range {a}..{b} is longer than {MAX_LIST} elements"),
                        ));
                    }
                    Ok(Value::List((*a..=*b).map(Value::Int).collect()))
                }
                _ => mismatch(".."),
            },
            BinOp::Add => match (&l, &r) {
                (Value::Int(a), Value::Int(b)) => Ok(Value::Int(a.wrapping_add(*b))),
                (Value::Time(t), Value::Duration(d)) | (Value::Duration(d), Value::Time(t)) => {
                    t.add(*d).map(Value::Time).map_err(|m| (pos, m))
                }
                (Value::Duration(a), Value::Duration(b)) => {
                    a.checked_add(*b).map(Value::Duration).map_err(|m| (pos, m))
                }
                (Value::Str(a), Value::Str(b)) => {
                    funcs::check_len(a.len() + b.len(), pos)?;
                    Ok(Value::Str(format!("{a}{b}")))
                }
                (Value::List(a), Value::List(b)) => {
                    Ok(Value::List(a.iter().chain(b).cloned().collect()))
                }
                _ => match (l.as_f64(), r.as_f64()) {
                    (Some(a), Some(b)) => Ok(Value::Float(a + b)),
                    _ => mismatch("+"),
                },
            },
            BinOp::Sub => match (&l, &r) {
                (Value::Time(a), Value::Time(b)) => Ok(Value::Duration(a.sub(b))),
                (Value::Time(t), Value::Duration(d)) => d
                    .checked_neg()
                    .and_then(|d| t.add(d))
                    .map(Value::Time)
                    .map_err(|m| (pos, m)),
                (Value::Duration(a), Value::Duration(b)) => b
                    .checked_neg()
                    .and_then(|b| a.checked_add(b))
                    .map(Value::Duration)
                    .map_err(|m| (pos, m)),
                (Value::Int(a), Value::Int(b)) => Ok(Value::Int(a.wrapping_sub(*b))),
                _ => match (l.as_f64(), r.as_f64()) {
                    (Some(a), Some(b)) => Ok(Value::Float(a - b)),
                    _ => mismatch("-"),
                },
            },
            BinOp::Mul => match (&l, &r) {
                (Value::Int(a), Value::Int(b)) => Ok(Value::Int(a.wrapping_mul(*b))),
                _ => match (l.as_f64(), r.as_f64()) {
                    (Some(a), Some(b)) => Ok(Value::Float(a * b)),
                    _ => mismatch("*"),
                },
            },
            BinOp::Div => match (l.as_f64(), r.as_f64()) {
                (Some(a), Some(b)) => Ok(Value::Float(a / b)),
                _ => mismatch("/"),
            },
            BinOp::Mod => match (&l, &r) {
                (Value::Int(_), Value::Int(0)) => Err((pos, "integer divide by zero".into())),
                (Value::Int(a), Value::Int(b)) => Ok(Value::Int(a.wrapping_rem(*b))),
                _ => mismatch("%"),
            },
            BinOp::Pow => match (l.as_f64(), r.as_f64()) {
                (Some(a), Some(b)) => Ok(Value::Float(a.powf(b))),
                _ => mismatch("**"),
            },
            BinOp::And | BinOp::Or | BinOp::Coalesce => Ok(Value::Nil),
        }
    }

    /// Runs a predicate body with `#` bound.
    pub(crate) fn call_closure(
        &mut self,
        body: &Node,
        elem: Value,
        index: i64,
        acc: Value,
    ) -> EResult {
        let body = match &body.kind {
            Kind::Closure(b) => b.as_ref(),
            _ => body,
        };
        self.frames.push(Frame { elem, index, acc });
        let r = self.eval(body);
        self.frames.pop();
        r
    }
}
