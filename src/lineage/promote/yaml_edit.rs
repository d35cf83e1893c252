//! Comment-preserving edit of one scalar in a YAML file's text: the pure heart of promotion.
//!
//! [`set_value`] replaces only the bytes of the value at a [`YamlPath`]; comments, key order,
//! indentation, quoting style, blank lines, line endings and the other documents of a
//! multi-document file are left as they are. A missing key is inserted under its parent (at the
//! parent's indentation, creating intermediate block mappings) when the parent is a block mapping
//! or an empty value; anything else is refused with an error naming the path and what was
//! expected.
//!
//! Invariants:
//! - The text is never trusted alone: every edit is checked by parsing the old and the new text
//!   (serde-saphyr) and requiring that the new tree equals the old tree with exactly that value set.
//!   An edit that would change anything else (an anchored value with aliases elsewhere, a value the
//!   scanner misread) is refused with [`YamlEditError::Verification`].
//! - A new value is written as a string unless the old value was an integer and the new one is a
//!   canonical integer. It keeps the old quoting style when it needs none; it is double-quoted when
//!   a YAML 1.1 or 1.2 reader could read it as something else (`1.10`, `yes`, `on`, `null`, a
//!   leading indicator, `: `, ` #`).
//! - Block scalars (`|`, `>`), multi-line flow scalars, flow collections, tabs in indentation and
//!   duplicate keys are refused rather than guessed at.
//!
//! The scanner understands the block subset of YAML that configuration files use (block mappings
//! and sequences, single-line scalars, comments, document markers); it only has to find spans,
//! since the parse check decides correctness.

use std::fmt;

use serde_json::Value;

/// Why an edit was refused. None of these carries file contents beyond a key or a line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlEditError {
    /// The dotted path itself is malformed.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as written.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The file does not parse as YAML before the edit.
    #[error("not valid YAML: {reason}")]
    NotYaml {
        /// The parser's message.
        reason: String,
    },
    /// A tab in a line's indentation (YAML forbids it; refusing beats guessing the width).
    #[error("line {line}: tab in indentation; expected spaces")]
    Tab {
        /// 1-based line.
        line: usize,
    },
    /// A construct the scanner does not edit through (complex key, content after `---`).
    #[error("line {line}: unsupported YAML construct: {what}")]
    Unsupported {
        /// 1-based line.
        line: usize,
        /// The construct.
        what: &'static str,
    },
    /// A mapping along the path repeats a key.
    #[error("line {line}: duplicate key {key:?}")]
    DuplicateKey {
        /// 1-based line of the repeated key.
        line: usize,
        /// The key.
        key: String,
    },
    /// A segment's parent is not what the segment needs (a block mapping for a key, a block
    /// sequence for a selector).
    #[error("path {path:?}: expected {expected} at {at:?} (line {line}), found {found}")]
    WrongShape {
        /// The full path being set.
        path: String,
        /// The path prefix where the shape is wrong.
        at: String,
        /// 1-based line of the node found.
        line: usize,
        /// What was expected there.
        expected: &'static str,
        /// What was found.
        found: &'static str,
    },
    /// A selector or index matched no sequence item (items are never created).
    #[error("path {path:?}: no item matches {selector} at {at:?}")]
    NoMatch {
        /// The full path.
        path: String,
        /// The path prefix holding the sequence.
        at: String,
        /// The selector (`[name=recommender]`, `[2]`).
        selector: String,
    },
    /// A selector matched several items, or several documents hold the path.
    #[error("path {path:?}: ambiguous: {what}")]
    Ambiguous {
        /// The full path.
        path: String,
        /// What matched more than once.
        what: String,
    },
    /// The path is missing and the file has several documents: there is no single place to insert.
    #[error(
        "path {path:?} is in none of the {documents} documents; expected it in one of them (keys are only inserted into single-document files)"
    )]
    NotFoundMultiDoc {
        /// The full path.
        path: String,
        /// Number of documents in the file.
        documents: usize,
    },
    /// The edited text did not parse to the old tree with only the path changed.
    #[error("path {path:?}: edit not applied, the result failed verification: {reason}")]
    Verification {
        /// The full path.
        path: String,
        /// What differed.
        reason: String,
    },
}

impl YamlEditError {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidPath { .. } => "invalid_path",
            Self::NotYaml { .. } => "not_yaml",
            Self::Tab { .. } => "tab",
            Self::Unsupported { .. } => "unsupported",
            Self::DuplicateKey { .. } => "duplicate_key",
            Self::WrongShape { .. } => "wrong_shape",
            Self::NoMatch { .. } => "no_match",
            Self::Ambiguous { .. } => "ambiguous",
            Self::NotFoundMultiDoc { .. } => "not_found",
            Self::Verification { .. } => "verification",
        }
    }
}

/// One step of a [`YamlPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A mapping key.
    Key(String),
    /// The n-th item (0-based) of a sequence.
    Index(usize),
    /// The sequence item that is a mapping whose `field` is the scalar `value`.
    Select {
        /// Field of the item.
        field: String,
        /// Its value, compared as text.
        value: String,
    },
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(k) if k.contains(['.', '[', ']']) => write!(f, "{k:?}"),
            Self::Key(k) => f.write_str(k),
            Self::Index(i) => write!(f, "[{i}]"),
            Self::Select { field, value } => write!(f, "[{field}={value}]"),
        }
    }
}

/// A dotted path: `model.uri`, `images[name=recommender].newTag`, `items[0].a`,
/// `labels."app.kubernetes.io/name"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlPath {
    raw: String,
    segments: Vec<Segment>,
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl YamlPath {
    /// Parses a path. Keys are separated by `.`; a key may be double-quoted to contain dots;
    /// `[N]` indexes a sequence and `[field=value]` selects the item whose `field` is `value`.
    pub fn parse(raw: &str) -> Result<Self, YamlEditError> {
        let bad = |reason: &str| YamlEditError::InvalidPath {
            path: raw.to_string(),
            reason: reason.to_string(),
        };
        let mut segments = Vec::new();
        let mut rest = raw;
        let mut expect_key = true;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                if segments.is_empty() {
                    return Err(bad("a path starts with a key"));
                }
                let close = after.find(']').ok_or_else(|| bad("unclosed '['"))?;
                let inner = &after[..close];
                let segment = match inner.split_once('=') {
                    Some((field, value)) if !field.is_empty() && !value.is_empty() => {
                        Segment::Select {
                            field: field.to_string(),
                            value: value.to_string(),
                        }
                    }
                    Some(_) => return Err(bad("a selector is [field=value]")),
                    None => Segment::Index(
                        inner
                            .parse()
                            .map_err(|_| bad("an index is a non-negative integer: [0]"))?,
                    ),
                };
                segments.push(segment);
                rest = &after[close + 1..];
                expect_key = false;
                continue;
            }
            if !expect_key {
                rest = rest
                    .strip_prefix('.')
                    .ok_or_else(|| bad("expected '.' or '[' after a segment"))?;
                expect_key = true;
                if rest.is_empty() {
                    return Err(bad("a path does not end with '.'"));
                }
                continue;
            }
            let (key, after) = if let Some(q) = rest.strip_prefix('"') {
                let close = q.find('"').ok_or_else(|| bad("unclosed '\"'"))?;
                (&q[..close], &q[close + 1..])
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            if key.is_empty() {
                return Err(bad("empty key"));
            }
            if key.contains([']', '"']) {
                return Err(bad("unexpected ']' or '\"' in a key (quote the whole key)"));
            }
            segments.push(Segment::Key(key.to_string()));
            rest = after;
            expect_key = false;
        }
        if segments.is_empty() {
            return Err(bad("empty path"));
        }
        Ok(Self {
            raw: raw.to_string(),
            segments,
        })
    }

    /// The segments.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    fn prefix(&self, n: usize) -> String {
        let mut out = String::new();
        for (i, s) in self.segments[..n].iter().enumerate() {
            if i > 0 && matches!(s, Segment::Key(_)) {
                out.push('.');
            }
            out.push_str(&s.to_string());
        }
        out
    }
}

/// The outcome of [`set_value`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The new text (equal to the input when `changed` is false).
    pub text: String,
    /// Whether the value differed (false: it was already there, nothing to commit).
    pub changed: bool,
    /// The previous value as text, if the path existed and held a scalar.
    pub previous: Option<String>,
}

/// Sets the scalar at `path` to `value` in the YAML `text`, changing only that value's bytes (or
/// inserting the missing keys), and verifies the result by parsing it.
pub fn set_value(text: &str, path: &YamlPath, value: &str) -> Result<Edit, YamlEditError> {
    check_tabs(text)?;
    let old_docs = parse_docs(text).map_err(|reason| YamlEditError::NotYaml { reason })?;
    let scan = Scan::new(text)?;
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for doc in &scan.docs {
        match resolve(&scan, doc, path) {
            Ok(Resolved::Found(target)) => found.push(target),
            Ok(Resolved::Missing(m)) => missing.push(Ok(m)),
            Err(e) => missing.push(Err(e)),
        }
    }
    let plan = match (found.len(), missing.pop()) {
        (1, _) => Plan::Replace(found.remove(0)),
        (0, Some(m)) if scan.docs.len() == 1 => Plan::Insert(m?),
        (0, _) => {
            return Err(YamlEditError::NotFoundMultiDoc {
                path: path.raw.clone(),
                documents: scan.docs.len(),
            });
        }
        (n, _) => {
            return Err(YamlEditError::Ambiguous {
                path: path.raw.clone(),
                what: format!("{n} documents hold it"),
            });
        }
    };
    let old_value = lookup(&old_docs, path);
    let (expected, previous) = typed_value(old_value.as_ref(), value);
    if old_value.as_ref() == Some(&expected) {
        return Ok(Edit {
            text: text.to_string(),
            changed: false,
            previous,
        });
    }
    let new_text = match plan {
        Plan::Replace(target) => replace(text, &target, value, &expected),
        Plan::Insert(m) => insert(text, &scan, path, &m, value, &expected),
    };
    verify(&old_docs, &new_text, path, &expected)?;
    Ok(Edit {
        text: new_text,
        changed: true,
        previous,
    })
}

// ---- typing and quoting --------------------------------------------------------------------

/// The value the new text must parse to, and the old value as text.
fn typed_value(old: Option<&Value>, new: &str) -> (Value, Option<String>) {
    let previous = old.and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    });
    let keep_int = matches!(old, Some(Value::Number(n)) if n.is_i64() || n.is_u64());
    if keep_int
        && is_canonical_int(new)
        && let Ok(i) = new.parse::<i64>()
    {
        return (Value::from(i), previous);
    }
    (Value::String(new.to_string()), previous)
}

fn is_canonical_int(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
}

/// Words YAML 1.1 (Helm's and Kustomize's go-yaml) or 1.2 read as bool, null or special floats.
const SPECIAL_WORDS: &[&str] = &[
    "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", ".inf", "-.inf", "+.inf",
    ".nan", "<<", "=",
];

/// Whether `s` written plain could be read as anything but the string `s`.
pub fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s.trim() != s || s.chars().any(char::is_control) {
        return true;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return true;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if SPECIAL_WORDS.contains(&lower.as_str()) {
        return true;
    }
    // Numbers in any YAML version: 1.10, 0x1F, 0o17, 017, 1_000, 1:20 (1.1 sexagesimal),
    // 1e3, 2024-01-01 (1.1 timestamp). Conservative: anything made only of these characters.
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let starts_numeric = body.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if starts_numeric
        && body
            .chars()
            .all(|c| c.is_ascii_hexdigit() || "xXoO._:+-".contains(c))
    {
        return true;
    }
    !matches!(serde_saphyr::from_str::<Value>(s), Ok(Value::String(ref p)) if p == s)
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render(value: &str, expected: &Value, style: Style) -> String {
    if expected.is_number() {
        return value.to_string();
    }
    match style {
        Style::Double => double_quoted(value),
        Style::Single if !value.chars().any(char::is_control) => {
            format!("'{}'", value.replace('\'', "''"))
        }
        _ if needs_quotes(value) => double_quoted(value),
        _ => value.to_string(),
    }
}

fn render_key(key: &str) -> String {
    if needs_quotes(key) {
        double_quoted(key)
    } else {
        key.to_string()
    }
}

// ---- parsing for verification --------------------------------------------------------------

fn parse_docs(text: &str) -> Result<Vec<Value>, String> {
    serde_saphyr::from_multiple::<Value>(text).map_err(|e| e.to_string())
}

fn lookup(docs: &[Value], path: &YamlPath) -> Option<Value> {
    let mut hits = docs.iter().filter_map(|d| get_in(d, &path.segments));
    let first = hits.next()?;
    Some(first.clone())
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn select<'v>(items: &'v [Value], field: &str, value: &str) -> Option<&'v Value> {
    items
        .iter()
        .find(|i| i.get(field).and_then(scalar_text).as_deref() == Some(value))
}

fn get_in<'v>(v: &'v Value, segments: &[Segment]) -> Option<&'v Value> {
    let Some((first, rest)) = segments.split_first() else {
        return Some(v);
    };
    let next = match (first, v) {
        (Segment::Key(k), Value::Object(m)) => m.get(k)?,
        (Segment::Index(i), Value::Array(a)) => a.get(*i)?,
        (Segment::Select { field, value }, Value::Array(a)) => select(a, field, value)?,
        _ => return None,
    };
    get_in(next, rest)
}

/// Sets `segments` in `v` (creating mappings for missing keys); false if the shape forbids it.
fn set_in(v: &mut Value, segments: &[Segment], new: Value) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        *v = new;
        return true;
    };
    if v.is_null() && matches!(first, Segment::Key(_)) {
        *v = Value::Object(serde_json::Map::new());
    }
    let next = match (first, v) {
        (Segment::Key(k), Value::Object(m)) => m.entry(k.clone()).or_insert(Value::Null),
        (Segment::Index(i), Value::Array(a)) => match a.get_mut(*i) {
            Some(x) => x,
            None => return false,
        },
        (Segment::Select { field, value }, Value::Array(a)) => match a
            .iter_mut()
            .find(|i| i.get(field.as_str()).and_then(scalar_text).as_deref() == Some(value))
        {
            Some(x) => x,
            None => return false,
        },
        _ => return false,
    };
    set_in(next, rest, new)
}

fn verify(
    old_docs: &[Value],
    new_text: &str,
    path: &YamlPath,
    expected: &Value,
) -> Result<(), YamlEditError> {
    let fail = |reason: String| YamlEditError::Verification {
        path: path.raw.clone(),
        reason,
    };
    let new_docs =
        parse_docs(new_text).map_err(|e| fail(format!("the new text does not parse: {e}")))?;
    // An empty file has no document; inserting into it creates the first one.
    let old_docs: Vec<Value> = if old_docs.is_empty() {
        vec![Value::Null]
    } else {
        old_docs.to_vec()
    };
    if new_docs.len() != old_docs.len() {
        return Err(fail(format!(
            "{} documents before, {} after",
            old_docs.len(),
            new_docs.len()
        )));
    }
    let differing: Vec<usize> = (0..old_docs.len())
        .filter(|&i| old_docs[i] != new_docs[i])
        .collect();
    let [index] = differing[..] else {
        return Err(fail(format!(
            "{} documents changed, expected 1",
            differing.len()
        )));
    };
    let mut want = old_docs[index].clone();
    if !set_in(&mut want, &path.segments, expected.clone()) {
        return Err(fail("the path cannot be set in the parsed document".into()));
    }
    if get_in(&new_docs[index], &path.segments) != Some(expected) {
        return Err(fail(
            "the value read back differs from the value written".into(),
        ));
    }
    if new_docs[index] != want {
        return Err(fail(
            "other values changed too (an anchor with aliases elsewhere?)".into(),
        ));
    }
    Ok(())
}

// ---- the scanner ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    /// An alias (`*name`): replaced as a plain value.
    Alias,
}

#[derive(Debug, Clone)]
struct Line {
    /// Byte offset of the first character.
    start: usize,
    /// Byte offset just past the text (before `\r\n` / `\n`).
    end: usize,
    /// Byte offset just past the line ending.
    next: usize,
    /// Leading spaces; `None` for blank and comment-only lines.
    indent: Option<usize>,
}

#[derive(Debug)]
enum NodeKind {
    Map(Vec<Entry>),
    Seq(Vec<Node>),
    Scalar {
        start: usize,
        end: usize,
        style: Style,
    },
    /// No value on the key's line and nothing nested: `key:` (optionally with a comment).
    /// `at` is the byte offset just past the colon.
    Empty {
        at: usize,
    },
    Other(&'static str),
}

#[derive(Debug)]
struct Node {
    kind: NodeKind,
    /// Column of the node's content (the entries' column for a map, the dashes' for a sequence).
    col: usize,
    /// Index of the node's first line.
    first: usize,
    /// Index of the last line the node covers.
    last: usize,
}

#[derive(Debug)]
struct Entry {
    key: String,
    value: Node,
}

#[derive(Debug)]
struct Doc {
    /// The root node, `None` for a document without content.
    root: Option<Node>,
    /// Byte offset where content is appended to an empty document.
    end: usize,
}

struct Scan<'t> {
    text: &'t str,
    lines: Vec<Line>,
    docs: Vec<Doc>,
    newline: &'static str,
    indent_unit: usize,
}

fn is_doc_marker(s: &str, marker: &str) -> bool {
    s.strip_prefix(marker)
        .is_some_and(|r| r.is_empty() || r.starts_with(' '))
}

fn check_tabs(text: &str) -> Result<(), YamlEditError> {
    for (i, line) in text.split('\n').enumerate() {
        let lead = line.len() - line.trim_start_matches([' ', '\t']).len();
        if line[..lead].contains('\t') {
            return Err(YamlEditError::Tab { line: i + 1 });
        }
    }
    Ok(())
}

impl<'t> Scan<'t> {
    fn new(text: &'t str) -> Result<Self, YamlEditError> {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let mut lines = Vec::new();
        let mut start = if text.starts_with('\u{feff}') { 3 } else { 0 };
        while start < text.len() {
            let nl = text[start..].find('\n').map(|i| start + i);
            let next = nl.map_or(text.len(), |i| i + 1);
            let mut end = nl.unwrap_or(text.len());
            if end > start && text.as_bytes()[end - 1] == b'\r' {
                end -= 1;
            }
            let s = &text[start..end];
            let trimmed = s.trim_start_matches(' ');
            let indent = if trimmed.is_empty() || trimmed.starts_with('#') {
                None
            } else {
                Some(s.len() - trimmed.len())
            };
            lines.push(Line {
                start,
                end,
                next,
                indent,
            });
            start = next;
        }
        let mut scan = Scan {
            text,
            lines,
            docs: Vec::new(),
            newline,
            indent_unit: 2,
        };
        scan.docs = scan.split_docs()?;
        scan.indent_unit = scan.detect_indent_unit();
        Ok(scan)
    }

    fn line_text(&self, i: usize) -> &'t str {
        &self.text[self.lines[i].start..self.lines[i].end]
    }

    /// Splits at `---` / `...` lines and parses each document's block structure.
    fn split_docs(&self) -> Result<Vec<Doc>, YamlEditError> {
        let mut ranges = Vec::new();
        let mut lo = 0;
        let mut explicit = false;
        for i in 0..self.lines.len() {
            let s = self.line_text(i);
            let start = is_doc_marker(s, "---");
            let end = is_doc_marker(s, "...");
            if start || end {
                if explicit
                    || (lo..i).any(|j| self.lines[j].indent.is_some() && !self.is_directive(j))
                {
                    ranges.push((lo, i));
                }
                explicit = start;
                lo = i + 1;
                if start {
                    let rest = s[3..].trim_start();
                    if !rest.is_empty() && !rest.starts_with('#') {
                        return Err(YamlEditError::Unsupported {
                            line: i + 1,
                            what: "content on the '---' line",
                        });
                    }
                }
            }
        }
        if explicit
            || (lo..self.lines.len()).any(|j| self.lines[j].indent.is_some())
            || ranges.is_empty()
        {
            ranges.push((lo, self.lines.len()));
        }
        ranges
            .into_iter()
            .map(|(lo, hi)| {
                let p = Parser { scan: self, hi };
                let root = match p.next_content(lo) {
                    Some(first) => {
                        let (node, next) = p.node(first, self.indent(first), None)?;
                        if let Some(extra) = p.next_content(next) {
                            return Err(YamlEditError::Unsupported {
                                line: extra + 1,
                                what: "content after the document's root node",
                            });
                        }
                        Some(node)
                    }
                    None => None,
                };
                let end = if hi < self.lines.len() {
                    self.lines[hi].start
                } else {
                    self.text.len()
                };
                Ok(Doc { root, end })
            })
            .collect()
    }

    fn is_directive(&self, i: usize) -> bool {
        self.line_text(i).starts_with('%')
    }

    fn indent(&self, i: usize) -> usize {
        self.lines[i].indent.unwrap_or(0)
    }

    fn detect_indent_unit(&self) -> usize {
        fn walk(n: &Node, best: &mut Option<usize>) {
            match &n.kind {
                NodeKind::Map(entries) => {
                    for e in entries {
                        if matches!(e.value.kind, NodeKind::Map(_)) && e.value.col > n.col {
                            let d = e.value.col - n.col;
                            *best = Some(best.map_or(d, |b: usize| b.min(d)));
                        }
                        walk(&e.value, best);
                    }
                }
                NodeKind::Seq(items) => items.iter().for_each(|i| walk(i, best)),
                _ => {}
            }
        }
        let mut best = None;
        for d in &self.docs {
            if let Some(r) = &d.root {
                walk(r, &mut best);
            }
        }
        best.unwrap_or(2)
    }
}

struct Parser<'s, 't> {
    scan: &'s Scan<'t>,
    /// End (exclusive) of the document's lines.
    hi: usize,
}

/// A quoted scalar's end (byte index in `s` just past the closing quote), if it closes on the line.
fn quoted_end(s: &str) -> Option<usize> {
    let quote = s.chars().next()?;
    let bytes = s.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if quote == '"' && b == b'\\' {
            i += 2;
            continue;
        }
        if b == quote as u8 {
            if quote == '\'' && bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        i += 1;
    }
    None
}

/// If `s` starts with a mapping key, its decoded text and the byte index just past the colon.
fn key_of(s: &str) -> Option<(String, usize)> {
    if s.starts_with(['"', '\'']) {
        let end = quoted_end(s)?;
        let after = s[end..].trim_start_matches(' ');
        let colon = end + (s.len() - end - after.len());
        let rest = after.strip_prefix(':')?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        let key = match serde_saphyr::from_str::<Value>(&s[..end]) {
            Ok(Value::String(k)) => k,
            _ => return None,
        };
        return Some((key, colon + 1));
    }
    if s.starts_with(|c: char| "[{|>*&!%@`#,?".contains(c)) || s.starts_with("- ") || s == "-" {
        return None;
    }
    let bytes = s.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'#' if i > 0 && bytes[i - 1] == b' ' => return None,
            b':' if bytes.get(i + 1).is_none_or(|&b| b == b' ') => {
                let key = s[..i].trim_end();
                if key.is_empty() {
                    return None;
                }
                return Some((key.to_string(), i + 1));
            }
            _ => {}
        }
    }
    None
}

fn is_dash(s: &str) -> bool {
    s == "-" || s.starts_with("- ")
}

impl Parser<'_, '_> {
    fn next_content(&self, from: usize) -> Option<usize> {
        (from..self.hi).find(|&i| self.scan.lines[i].indent.is_some())
    }

    /// Text of line `i` from byte column `col`.
    fn rest(&self, i: usize, col: usize) -> &str {
        let t = self.scan.line_text(i);
        t.get(col..).unwrap_or("")
    }

    /// Index past the last line belonging to a value whose lines must be indented more than
    /// `parent`, starting after line `i` (blank and comment lines included only if followed by
    /// such a line).
    fn skip_more_indented(&self, i: usize, parent: Option<usize>) -> usize {
        let mut last = i;
        for j in i + 1..self.hi {
            match self.scan.lines[j].indent {
                None => continue,
                Some(ind) if parent.is_none_or(|p| ind > p) => last = j,
                Some(_) => break,
            }
        }
        last + 1
    }

    /// The block node whose content starts at line `i`, column `col`; `parent` is the column
    /// of the enclosing collection (lines of this node are indented more). Returns the node and
    /// the index of the first line after it.
    fn node(
        &self,
        i: usize,
        col: usize,
        parent: Option<usize>,
    ) -> Result<(Node, usize), YamlEditError> {
        let rest = self.rest(i, col);
        if rest == "?" || rest.starts_with("? ") {
            return Err(YamlEditError::Unsupported {
                line: i + 1,
                what: "complex mapping key ('? ')",
            });
        }
        if is_dash(rest) {
            return self.seq(i, col);
        }
        if key_of(rest).is_some() {
            return self.map(i, col);
        }
        self.value(i, col, parent)
    }

    fn map(&self, first: usize, col: usize) -> Result<(Node, usize), YamlEditError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut i = first;
        let mut start_col = col;
        loop {
            let rest = self.rest(i, start_col);
            let Some((key, after)) = key_of(rest) else {
                return Err(YamlEditError::Unsupported {
                    line: i + 1,
                    what: "a line in a block mapping that is not 'key: value'",
                });
            };
            if entries.iter().any(|e| e.key == key) {
                return Err(YamlEditError::DuplicateKey { line: i + 1, key });
            }
            let (value, next) = self.entry_value(i, start_col + after, col)?;
            entries.push(Entry { key, value });
            let Some(n) = self.next_content(next) else {
                break;
            };
            let ind = self.scan.indent(n);
            if ind < col || (ind == col && is_dash(self.rest(n, ind))) {
                break;
            }
            if ind > col {
                return Err(YamlEditError::Unsupported {
                    line: n + 1,
                    what: "unexpected indentation in a block mapping",
                });
            }
            i = n;
            start_col = col;
        }
        let last = entries.last().map_or(first, |e| e.value.last);
        Ok((
            Node {
                kind: NodeKind::Map(entries),
                col,
                first,
                last,
            },
            last + 1,
        ))
    }

    /// The value after a key's colon at byte column `at` of line `i`, in a map at column `col`.
    fn entry_value(&self, i: usize, at: usize, col: usize) -> Result<(Node, usize), YamlEditError> {
        let inline = self.rest(i, at);
        let (props, body) = split_properties(inline);
        if body.is_empty() || body.starts_with('#') {
            if let Some(n) = self.next_content(i + 1) {
                let ind = self.scan.indent(n);
                if ind > col {
                    return self.node(n, ind, Some(col));
                }
                if ind == col && is_dash(self.rest(n, ind)) {
                    // `key:` followed by a sequence at the key's own column (Kustomize style).
                    return self.seq(n, col);
                }
            }
            let line = self.scan.lines[i].start;
            let kind = if props.is_empty() {
                NodeKind::Empty { at: line + at }
            } else {
                NodeKind::Other("empty value with an anchor or tag")
            };
            return Ok((
                Node {
                    kind,
                    col,
                    first: i,
                    last: i,
                },
                i + 1,
            ));
        }
        let body_col = at + (inline.len() - body.len());
        self.value(i, body_col, Some(col))
    }

    /// A value that starts on line `i` at byte column `col` and is not a block collection.
    fn value(
        &self,
        i: usize,
        col: usize,
        parent: Option<usize>,
    ) -> Result<(Node, usize), YamlEditError> {
        let (_, body) = split_properties(self.rest(i, col));
        let body_col = col + (self.rest(i, col).len() - body.len());
        let line_start = self.scan.lines[i].start;
        let other = |what: &'static str, next: usize| {
            Ok((
                Node {
                    kind: NodeKind::Other(what),
                    col,
                    first: i,
                    last: next - 1,
                },
                next,
            ))
        };
        if body.starts_with(['|', '>']) {
            return other("block scalar", self.skip_more_indented(i, parent));
        }
        if body.starts_with(['{', '[']) {
            let what = if body.starts_with('{') {
                "flow mapping"
            } else {
                "flow sequence"
            };
            return other(what, self.skip_more_indented(i, parent));
        }
        let (end, style) = if body.starts_with(['"', '\'']) {
            let Some(end) = quoted_end(body) else {
                return other(
                    "multi-line quoted scalar",
                    self.skip_more_indented(i, parent),
                );
            };
            let style = if body.starts_with('"') {
                Style::Double
            } else {
                Style::Single
            };
            (end, style)
        } else {
            let bytes = body.as_bytes();
            let mut end = bytes.len();
            for k in 1..bytes.len() {
                if bytes[k] == b'#' && bytes[k - 1] == b' ' {
                    end = k;
                    break;
                }
            }
            let end = body[..end].trim_end().len();
            let style = if body.starts_with('*') {
                Style::Alias
            } else {
                Style::Plain
            };
            (end, style)
        };
        let next = self.skip_more_indented(i, parent);
        if next != i + 1 {
            return other("multi-line scalar", next);
        }
        Ok((
            Node {
                kind: NodeKind::Scalar {
                    start: line_start + body_col,
                    end: line_start + body_col + end,
                    style,
                },
                col,
                first: i,
                last: i,
            },
            i + 1,
        ))
    }

    fn seq(&self, first: usize, col: usize) -> Result<(Node, usize), YamlEditError> {
        let mut items = Vec::new();
        let mut i = first;
        loop {
            let after_dash = self.rest(i, col + 1);
            let content = after_dash.trim_start_matches(' ');
            let c2 = col + 1 + (after_dash.len() - content.len());
            let (item, next) = if content.is_empty() || content.starts_with('#') {
                match self.next_content(i + 1) {
                    Some(n) if self.scan.indent(n) > col => {
                        self.node(n, self.scan.indent(n), Some(col))?
                    }
                    _ => (
                        Node {
                            kind: NodeKind::Other("empty sequence item"),
                            col,
                            first: i,
                            last: i,
                        },
                        i + 1,
                    ),
                }
            } else {
                self.node(i, c2, Some(col))?
            };
            items.push(item);
            let Some(n) = self.next_content(next) else {
                break;
            };
            let ind = self.scan.indent(n);
            if ind == col && is_dash(self.rest(n, ind)) {
                i = n;
                continue;
            }
            if ind > col {
                return Err(YamlEditError::Unsupported {
                    line: n + 1,
                    what: "unexpected indentation in a block sequence",
                });
            }
            break;
        }
        let last = items.last().map_or(first, |n| n.last);
        Ok((
            Node {
                kind: NodeKind::Seq(items),
                col,
                first,
                last,
            },
            last + 1,
        ))
    }
}

/// Splits leading `&anchor` / `!tag` properties off a value.
fn split_properties(s: &str) -> (&str, &str) {
    let mut rest = s.trim_start_matches(' ');
    let start = s.len() - rest.len();
    while rest.starts_with(['&', '!']) {
        let end = rest.find(' ').unwrap_or(rest.len());
        rest = rest[end..].trim_start_matches(' ');
    }
    let props_end = s.len() - rest.len();
    (s[start..props_end].trim_end(), rest)
}

// ---- resolving a path in the scan ------------------------------------------------------------

struct Target {
    kind: TargetKind,
}

enum TargetKind {
    Scalar {
        start: usize,
        end: usize,
        style: Style,
    },
    Empty {
        at: usize,
    },
}

enum Parent<'n> {
    /// A block mapping to append entries to.
    Map(&'n Node),
    /// `key:` with nothing under it, at map column `col`, on line `line`.
    EmptyEntry { line: usize, col: usize },
    /// A document with no content: append at this byte offset.
    Empty { at_end: usize },
}

struct Missing<'n> {
    parent: Parent<'n>,
    /// Index of the first missing segment.
    remaining: usize,
}

enum Resolved<'n> {
    Found(Target),
    Missing(Missing<'n>),
}

enum Plan<'n> {
    Replace(Target),
    Insert(Missing<'n>),
}

fn kind_name(n: &Node) -> &'static str {
    match &n.kind {
        NodeKind::Map(_) => "a block mapping",
        NodeKind::Seq(_) => "a block sequence",
        NodeKind::Scalar { .. } => "a scalar",
        NodeKind::Empty { .. } => "an empty value",
        NodeKind::Other(what) => what,
    }
}

fn scalar_value(scan: &Scan<'_>, n: &Node) -> Option<String> {
    let NodeKind::Scalar { start, end, style } = n.kind else {
        return None;
    };
    if style == Style::Alias {
        return None;
    }
    scalar_text(&serde_saphyr::from_str::<Value>(&scan.text[start..end]).ok()?)
}

fn resolve<'n>(
    scan: &Scan<'_>,
    doc: &'n Doc,
    path: &YamlPath,
) -> Result<Resolved<'n>, YamlEditError> {
    // Keys are created under a mapping; sequence items never are.
    let missing = |parent: Parent<'n>, idx: usize| match path.segments[idx..]
        .iter()
        .find(|s| !matches!(s, Segment::Key(_)))
    {
        Some(seg) => Err(YamlEditError::NoMatch {
            path: path.raw.clone(),
            at: path.prefix(idx),
            selector: seg.to_string(),
        }),
        None => Ok(Resolved::Missing(Missing {
            parent,
            remaining: idx,
        })),
    };
    let Some(mut node) = doc.root.as_ref() else {
        return missing(Parent::Empty { at_end: doc.end }, 0);
    };
    let wrong = |n: &Node, at: usize, expected: &'static str| YamlEditError::WrongShape {
        path: path.raw.clone(),
        at: path.prefix(at),
        line: n.first + 1,
        expected,
        found: kind_name(n),
    };
    for (idx, seg) in path.segments.iter().enumerate() {
        node = match (seg, &node.kind) {
            (Segment::Key(k), NodeKind::Map(entries)) => {
                match entries.iter().find(|e| &e.key == k) {
                    Some(e) => &e.value,
                    None => return missing(Parent::Map(node), idx),
                }
            }
            (Segment::Key(_), NodeKind::Empty { .. }) => {
                let parent = Parent::EmptyEntry {
                    line: node.first,
                    col: node.col,
                };
                return missing(parent, idx);
            }
            (Segment::Key(_), _) => return Err(wrong(node, idx, "a block mapping")),
            (Segment::Index(i), NodeKind::Seq(items)) => match items.get(*i) {
                Some(n) => n,
                None => {
                    return Err(YamlEditError::NoMatch {
                        path: path.raw.clone(),
                        at: path.prefix(idx),
                        selector: seg.to_string(),
                    });
                }
            },
            (Segment::Select { field, value }, NodeKind::Seq(items)) => {
                let hits: Vec<&Node> = items
                    .iter()
                    .filter_map(|item| match &item.kind {
                        NodeKind::Map(es) => es
                            .iter()
                            .find(|e| &e.key == field)
                            .filter(|e| scalar_value(scan, &e.value).as_deref() == Some(value))
                            .map(|_| item),
                        _ => None,
                    })
                    .collect();
                match hits[..] {
                    [one] => one,
                    [] => {
                        return Err(YamlEditError::NoMatch {
                            path: path.raw.clone(),
                            at: path.prefix(idx),
                            selector: seg.to_string(),
                        });
                    }
                    _ => {
                        return Err(YamlEditError::Ambiguous {
                            path: path.raw.clone(),
                            what: format!("{} items match {seg}", hits.len()),
                        });
                    }
                }
            }
            (_, _) => return Err(wrong(node, idx, "a block sequence")),
        };
    }
    match node.kind {
        NodeKind::Scalar { start, end, style } => Ok(Resolved::Found(Target {
            kind: TargetKind::Scalar { start, end, style },
        })),
        NodeKind::Empty { at } => Ok(Resolved::Found(Target {
            kind: TargetKind::Empty { at },
        })),
        _ => Err(YamlEditError::WrongShape {
            path: path.raw.clone(),
            at: path.raw.clone(),
            line: node.first + 1,
            expected: "a single-line scalar",
            found: kind_name(node),
        }),
    }
}

fn replace(text: &str, target: &Target, value: &str, expected: &Value) -> String {
    match target.kind {
        TargetKind::Scalar { start, end, style } => {
            let token = render(value, expected, style);
            format!("{}{token}{}", &text[..start], &text[end..])
        }
        TargetKind::Empty { at } => {
            let token = render(value, expected, Style::Plain);
            format!("{} {token}{}", &text[..at], &text[at..])
        }
    }
}

fn insert(
    text: &str,
    scan: &Scan<'_>,
    path: &YamlPath,
    missing: &Missing<'_>,
    value: &str,
    expected: &Value,
) -> String {
    let nl = scan.newline;
    let (col, at) = match missing.parent {
        Parent::Map(node) => (node.col, scan.lines[node.last].next),
        Parent::EmptyEntry { line, col } => (col + scan.indent_unit, scan.lines[line].next),
        Parent::Empty { at_end } => (0, at_end),
    };
    let keys = &path.segments[missing.remaining..];
    let mut block = String::new();
    if at > 0 && !text[..at].ends_with('\n') {
        block.push_str(nl);
    }
    for (depth, seg) in keys.iter().enumerate() {
        let Segment::Key(k) = seg else { continue };
        block.push_str(&" ".repeat(col + depth * scan.indent_unit));
        block.push_str(&render_key(k));
        block.push(':');
        if depth + 1 == keys.len() {
            block.push(' ');
            block.push_str(&render(value, expected, Style::Plain));
        }
        block.push_str(nl);
    }
    format!("{}{block}{}", &text[..at], &text[at..])
}

#[cfg(test)]
mod tests;
