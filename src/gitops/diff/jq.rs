//! The subset of jq path expressions that `ignoreDifferences.jqPathExpressions` supports.
//!
//! Argo CD evaluates `del(<expression>)` with a full jq; cairn implements the paths users write,
//! and refuses anything else with [`DiffError::UnsupportedJq`] naming the expression, so an
//! unsupported expression is never silently ignored. Supported, freely combined:
//!
//! | form | meaning |
//! |---|---|
//! | `.a.b`, `."x/y"` | object field |
//! | `.a["x/y"]`, `.["a"]` | object field, bracket form (needed for keys with `/`, `.`, `-`) |
//! | `.a[0]`, `.a[-1]` | array element (negative counts from the end) |
//! | `.a[]` | every element of an array (or every value of an object) |
//! | `.a[]?`, `.a?` | the same (a missing or mistyped value already selects nothing) |
//! | `... \| select(PATH == LIT)` , `!=` | keep the current values whose `PATH` (a field chain, possibly `.`) equals / differs from a literal string, number, `true`, `false` or `null` |
//! | `A \| B` | B applied to what A selects, B being a path or a `select` |
//!
//! Invariant: evaluation only *selects* existing locations; deleting them from a value is
//! [`JqPath::remove`], which deletes deeper and later locations first so array indices stay valid.

use serde_json::Value;

use super::DiffError;

/// One step of a parsed expression.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    Iterate,
    Select {
        path: Vec<Step>,
        equal: bool,
        literal: Value,
    },
}

/// A parsed, supported jq path expression.
#[derive(Clone, Debug, PartialEq)]
pub struct JqPath {
    steps: Vec<Step>,
}

/// One concrete location: object keys and array indices from the root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Idx(usize),
}

impl JqPath {
    /// Parse `expr`, refusing whatever is outside the supported subset.
    pub fn parse(expr: &str) -> Result<Self, DiffError> {
        let mut p = Parser {
            expr,
            chars: expr.char_indices().collect(),
            pos: 0,
        };
        let steps = p.pipeline()?;
        p.skip_ws();
        if p.pos < p.chars.len() {
            return Err(p.unsupported("unexpected text"));
        }
        Ok(JqPath { steps })
    }

    /// Delete every location the expression selects in `doc` (jq's `del(expr)`).
    pub fn remove(&self, doc: &mut Value) {
        let mut paths = select(doc, &self.steps, Vec::new());
        paths.sort();
        paths.dedup();
        // Reverse order: a descendant sorts after its ancestor and index 3 after index 1, so
        // deleting from the end never shifts a location still to be deleted.
        for path in paths.iter().rev() {
            delete(doc, path);
        }
    }
}

fn select(doc: &Value, steps: &[Step], base: Vec<Seg>) -> Vec<Vec<Seg>> {
    let mut current = vec![base];
    for step in steps {
        let mut next = Vec::new();
        for path in current {
            let Some(value) = resolve(doc, &path) else {
                continue;
            };
            match step {
                Step::Field(name) => {
                    if value.as_object().is_some_and(|m| m.contains_key(name)) {
                        next.push(with(&path, Seg::Key(name.clone())));
                    }
                }
                Step::Index(i) => {
                    if let Some(items) = value.as_array() {
                        let len = items.len() as i64;
                        let at = if *i < 0 { len + i } else { *i };
                        if (0..len).contains(&at) {
                            next.push(with(&path, Seg::Idx(at as usize)));
                        }
                    }
                }
                Step::Iterate => match value {
                    Value::Array(items) => {
                        next.extend((0..items.len()).map(|i| with(&path, Seg::Idx(i))));
                    }
                    Value::Object(map) => {
                        next.extend(map.keys().map(|k| with(&path, Seg::Key(k.clone()))));
                    }
                    _ => {}
                },
                Step::Select {
                    path: cond,
                    equal,
                    literal,
                } => {
                    let found = select(value, cond, Vec::new())
                        .first()
                        .and_then(|p| resolve(value, p))
                        .cloned()
                        .unwrap_or(Value::Null);
                    if (found == *literal) == *equal {
                        next.push(path);
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn with(path: &[Seg], seg: Seg) -> Vec<Seg> {
    let mut out = path.to_vec();
    out.push(seg);
    out
}

fn resolve<'v>(doc: &'v Value, path: &[Seg]) -> Option<&'v Value> {
    path.iter().try_fold(doc, |v, seg| match seg {
        Seg::Key(k) => v.as_object()?.get(k),
        Seg::Idx(i) => v.as_array()?.get(*i),
    })
}

fn delete(doc: &mut Value, path: &[Seg]) {
    let Some((last, parents)) = path.split_last() else {
        // `del(.)` sets the document to null in jq; nothing sensible to compare then, so both
        // sides become null alike.
        *doc = Value::Null;
        return;
    };
    let mut cur = doc;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k),
            (Seg::Idx(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return,
        }
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.shift_remove(k);
        }
        (Seg::Idx(i), Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
        }
        _ => {}
    }
}

struct Parser<'e> {
    expr: &'e str,
    chars: Vec<(usize, char)>,
    pos: usize,
}

impl Parser<'_> {
    fn unsupported(&self, what: &str) -> DiffError {
        let at = self
            .chars
            .get(self.pos)
            .map_or(self.expr.len(), |(i, _)| *i);
        DiffError::UnsupportedJq {
            expression: self.expr.to_owned(),
            reason: format!(
                "{what} at byte {at}; supported: .a.b, .a[\"k\"], .a[N], .a[], \
                 | select(.path == literal) and != (see gitops::diff::jq)"
            ),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|(_, c)| *c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, s: &str) -> bool {
        let n = s.chars().count();
        let matches = self.chars.len() >= self.pos + n
            && self.chars[self.pos..self.pos + n]
                .iter()
                .map(|(_, c)| *c)
                .eq(s.chars());
        if matches {
            self.pos += n;
        }
        matches
    }

    fn pipeline(&mut self) -> Result<Vec<Step>, DiffError> {
        let mut steps = Vec::new();
        loop {
            self.skip_ws();
            if self.eat("select") {
                steps.push(self.select()?);
            } else if self.peek() == Some('.') {
                steps.extend(self.path()?);
            } else {
                return Err(self.unsupported("expected a path starting with '.' or select(...)"));
            }
            self.skip_ws();
            if !self.eat("|") {
                return Ok(steps);
            }
        }
    }

    fn select(&mut self) -> Result<Step, DiffError> {
        self.skip_ws();
        if !self.eat("(") {
            return Err(self.unsupported("expected '(' after select"));
        }
        self.skip_ws();
        if self.peek() != Some('.') {
            return Err(self.unsupported("select needs a path on the left of == or !="));
        }
        let path = self.path()?;
        if path
            .iter()
            .any(|s| !matches!(s, Step::Field(_) | Step::Index(_)))
        {
            return Err(self.unsupported("select's path may only name fields and indices"));
        }
        self.skip_ws();
        let equal = if self.eat("==") {
            true
        } else if self.eat("!=") {
            false
        } else {
            return Err(self.unsupported("select supports only == and !="));
        };
        self.skip_ws();
        let literal = self.literal()?;
        self.skip_ws();
        if !self.eat(")") {
            return Err(self.unsupported("expected ')' closing select"));
        }
        Ok(Step::Select {
            path,
            equal,
            literal,
        })
    }

    fn literal(&mut self) -> Result<Value, DiffError> {
        if self.peek() == Some('"') {
            return Ok(Value::String(self.string()?));
        }
        for (word, value) in [
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("null", Value::Null),
        ] {
            if self.eat(word) {
                return Ok(value);
            }
        }
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | 'E' | '+'))
        {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().map(|(_, c)| c).collect();
        serde_json::from_str::<serde_json::Number>(&text)
            .map(Value::Number)
            .map_err(|_| {
                self.pos = start;
                self.unsupported("expected a string, number, true, false or null literal")
            })
    }

    /// A JSON-style string literal starting at the current '"'.
    fn string(&mut self) -> Result<String, DiffError> {
        let start = self.pos;
        self.pos += 1;
        let mut escaped = false;
        while let Some(c) = self.peek() {
            self.pos += 1;
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                let text: String = self.chars[start..self.pos].iter().map(|(_, c)| c).collect();
                return serde_json::from_str(&text).map_err(|_| {
                    self.pos = start;
                    self.unsupported("invalid string literal")
                });
            }
        }
        self.pos = start;
        Err(self.unsupported("unterminated string"))
    }

    /// `.` followed by field / bracket suffixes; a lone `.` is the identity (no step).
    fn path(&mut self) -> Result<Vec<Step>, DiffError> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                // `?` suppresses errors on a missing or mistyped value; selection here never
                // errors on those (it selects nothing), so it changes nothing.
                Some('?') if !steps.is_empty() => self.pos += 1,
                Some('.') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('"') => steps.push(Step::Field(self.string()?)),
                        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                            let start = self.pos;
                            while self
                                .peek()
                                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                            {
                                self.pos += 1;
                            }
                            steps.push(Step::Field(
                                self.chars[start..self.pos].iter().map(|(_, c)| c).collect(),
                            ));
                        }
                        Some('[') => {}
                        Some('.') => {
                            return Err(self.unsupported("recursive descent '..' is not supported"));
                        }
                        // The identity `.`, possibly before a pipe or the end.
                        _ if steps.is_empty() => {}
                        _ => return Err(self.unsupported("expected a field name after '.'")),
                    }
                }
                Some('[') => {
                    self.pos += 1;
                    self.skip_ws();
                    if self.eat("]") {
                        steps.push(Step::Iterate);
                        continue;
                    }
                    let step = if self.peek() == Some('"') {
                        Step::Field(self.string()?)
                    } else {
                        match self.literal()? {
                            Value::Number(n) if n.is_i64() => {
                                Step::Index(n.as_i64().unwrap_or_default())
                            }
                            _ => {
                                return Err(
                                    self.unsupported("brackets hold a string key or an integer")
                                );
                            }
                        }
                    };
                    self.skip_ws();
                    if !self.eat("]") {
                        return Err(self.unsupported("expected ']'"));
                    }
                    steps.push(step);
                }
                _ => return Ok(steps),
            }
        }
    }
}
