//! The one expression/template engine of Workflows: `{{...}}` tags, `{{=...}}` expressions and
//! `when` conditions, with Argo Workflows' semantics.
//!
//! Owns:
//! - [`Scope`]: the variables visible to a template, as Argo's flat "replace map" of dotted names
//!   (`inputs.parameters.x`, `tasks.A.outputs.result`, `item.field`) to values. Expressions see
//!   the same map expanded into nested maps (a name that has children, like `item` next to
//!   `item.a`, is shadowed by its children, as Argo's `expand` does).
//! - Templates ([`render`], [`render_with`], [`references`], [`unresolved_tags`], [`check`]):
//!   Argo's fasttemplate rules — a tag runs from `{{` to the first `}}`; a simple tag is its
//!   trimmed text looked up verbatim; a tag starting with `=` is an expression. Rendering is
//!   staged as in Argo: [`Unresolved::Keep`] leaves what cannot be resolved yet untouched,
//!   [`Unresolved::Defer`] leaves only the tags the caller marks deferred (e.g. `tasks.X.*`
//!   before X ran) and fails on the rest. [`render_json`] and [`unresolved_in_json`] do the
//!   same over a whole template as JSON and name the offending field's path.
//! - Expressions ([`Ast`], [`parse`], [`eval`]): the expr-lang dialect Argo uses, parsed once to an
//!   AST (a bad expression is an error with its column before anything runs), evaluated against
//!   a [`Scope`], with Argo's added functions (`asInt`, `asFloat`, `toJson`, `jsonpath`, `sprig.*`).
//!   The result of a tag is inserted as Argo does: a string as is, anything else as Go's JSON.
//! - Time values ([`Time`], [`Duration`]): expr-lang's `now()`, `date(s)`, `duration(s)`,
//!   `Time - Time`, `Time ± Duration`, comparisons and the Go methods (`.Seconds()`, `.Unix()`,
//!   `.Hour()`...). `now()` reads the clock the caller put in the scope ([`Scope::set_now`]);
//!   without one it is an evaluation error, so evaluation stays pure.
//! - `when` ([`eval_when`], [`eval_condition`], [`Condition`]): govaluate as Argo uses it — after
//!   substitution, bare words are strings (`heads == heads`), numbers compare numerically, `=~`/`!~`
//!   regexes, `in (a, b)`. [`Condition::eval_with`] evaluates the same language with real
//!   variables, for sensor filters.
//!
//! Invariants: pure (no I/O, no clock, no randomness); no input panics — every failure is an
//! [`ExprError`] naming the tag or expression and the position; work is bounded (nesting depth,
//! ranges, string growth and regex size are capped), so hostile input cannot exhaust the stack or
//! memory. Regexes (`matches`, `=~`, `sprig.regex*`) use an own linear-time matcher implementing
//! RE2 syntax without Unicode classes (`\pL`) and without backreferences (RE2 has none either).
//!
//! Known differences from Argo (each an error or a documented choice, never a silent wrong
//! answer): govaluate's conversion of quoted dates to times is not done (ISO dates compare the
//! same as strings); `sprig` functions that are random, time-based, or need SHA-1 (`shuffle`,
//! `now`, `date`, `uuidv4`, `sha1sum`, semver) are unknown functions at parse time; `jsonpath`
//! filters (`[?(...)]`) are an error; regex replacement expands numbered groups only; JSON
//! integers stay ints (Go would make them float64, which only matters for `%`); a simple tag of a
//! non-string value renders as JSON where Argo, whose values are all strings, cannot get one.
//!
//! Wiring (for the controller): build a [`Scope`] per template invocation (global parameters,
//! `workflow.*`, inputs, `item`/`item.*` via [`Scope::set_item`], completed `steps.*`/`tasks.*`
//! outputs); validate every templated field at submission with [`check`] and a predicate of
//! known names (for example [`Scope::knows`] plus the names that appear only at run time), adding
//! the template name to the error; render fields with [`render_with`] in the stage's mode; decide
//! a step or task with [`eval_when`].

mod funcs;
mod jsonpath;
mod lang;
mod regex;
mod template;
mod time;
mod value;
mod when;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use lang::{Ast, eval, parse};
pub use template::{
    TagRef, Unresolved, check, is_validated_name, references, render, render_json, render_with,
    unresolved_in_json, unresolved_tags,
};
pub use time::{Duration, Time};
pub use value::Value;
pub use when::{Condition, eval_condition, eval_when};

// For sensors (`events::gotemplate`, `events::filter`): sprig functions, value ordering and
// RE2 regexes.
pub(crate) use funcs::{call_sprig, is_sprig};
pub(crate) use lang::compare;
pub(crate) use regex::Regex;

/// Errors of the template and expression engine. Each names the tag, expression or condition
/// as the user wrote it; the caller adds the template and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ExprError {
    /// A `{{` has no closing `}}` (Argo refuses the whole field).
    #[error("unclosed template tag at byte {offset}: `{{{{` without a closing `}}}}`")]
    UnclosedTag {
        /// Byte offset of the `{{` in the text.
        offset: usize,
    },
    /// A simple tag names a variable that is not in scope (Argo: "failed to resolve {{x}}").
    #[error("failed to resolve {{{{{tag}}}}}")]
    Unresolved {
        /// The tag's text between the braces.
        tag: String,
    },
    /// Validation found a tag referring to a variable that will not exist.
    #[error("unknown variable `{name}` in {tag}")]
    UnknownVariable {
        /// The whole tag, braces included.
        tag: String,
        /// The variable it refers to.
        name: String,
    },
    /// An expression does not parse.
    #[error("invalid expression `{expr}` at column {}: {message}", .pos + 1)]
    Syntax {
        /// The expression source.
        expr: String,
        /// Character offset of the problem (0-based).
        pos: usize,
        /// What was expected.
        message: String,
    },
    /// An expression failed while evaluating (type mismatch, unknown name, bad argument).
    #[error("failed to evaluate expression `{expr}` at column {}: {message}", .pos + 1)]
    Eval {
        /// The expression source.
        expr: String,
        /// Character offset of the failing node (0-based).
        pos: usize,
        /// What went wrong.
        message: String,
    },
    /// An expression tag evaluated to nil, which cannot be inserted into text.
    #[error("expression `{expr}` evaluated to nil (a missing variable or map key?)")]
    NilResult {
        /// The expression source.
        expr: String,
    },
    /// A `when` condition does not parse, fails, or is not boolean.
    #[error("invalid 'when' expression '{condition}': {message}")]
    When {
        /// The condition after substitution.
        condition: String,
        /// What went wrong.
        message: String,
    },
}

impl ExprError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ExprError::UnclosedTag { .. } => "unclosed_tag",
            ExprError::Unresolved { .. } => "unresolved",
            ExprError::UnknownVariable { .. } => "unknown_variable",
            ExprError::Syntax { .. } => "syntax",
            ExprError::Eval { .. } => "eval",
            ExprError::NilResult { .. } => "nil_result",
            ExprError::When { .. } => "when",
        }
    }
}

/// The variables visible to a template: dotted names to values, as Argo's replace map.
///
/// Argo's values are strings (`inputs.parameters.x` is a string even when it looks like a
/// number); other [`Value`]s are allowed so sensor payloads can be typed. A simple tag of a
/// non-string value renders as Go's JSON of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scope {
    vars: BTreeMap<String, Value>,
    /// The instant `now()` returns; unset, `now()` is an evaluation error (the engine never
    /// reads the system clock).
    now: Option<Time>,
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builder form of [`Scope::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(name, value);
        self
    }

    /// Sets the clock `now()` reads (shown in UTC), so an evaluation is a pure function of its
    /// scope.
    pub fn set_now(&mut self, now: jiff::Timestamp) {
        self.now = Some(Time::utc(now));
    }

    /// Builder form of [`Scope::set_now`].
    pub fn with_now(mut self, now: jiff::Timestamp) -> Self {
        self.set_now(now);
        self
    }

    /// The clock `now()` reads, when set.
    pub fn now(&self) -> Option<Time> {
        self.now
    }

    /// Sets a variable, replacing a previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Removes a variable.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.vars.remove(name)
    }

    /// The value of exactly this name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars.get(name)
    }

    /// Whether exactly this name is set.
    pub fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// Whether `path` is a variable or a prefix of variables (`inputs.parameters` when
    /// `inputs.parameters.x` is set): what an expression can read without getting nil.
    pub fn knows(&self, path: &str) -> bool {
        self.contains(path) || self.has_children(path)
    }

    /// All names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// Number of variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// Adds every variable of `other`, replacing same-named ones, and its clock when set.
    pub fn extend(&mut self, other: &Scope) {
        for (k, v) in &other.vars {
            self.vars.insert(k.clone(), v.clone());
        }
        if other.now.is_some() {
            self.now = other.now;
        }
    }

    /// Sets `item` (and `item.<field>` for an object) for one loop iteration, as Argo does for
    /// `withItems`/`withParam`/`withSequence`: a string as is, a number or bool as its text, an
    /// object or list as Go's compact JSON (sorted keys); each field of an object as a string
    /// (strings as is, other values as JSON). Previous `item` variables are removed first.
    pub fn set_item(&mut self, item: &serde_json::Value) {
        let stale: Vec<String> = self
            .vars
            .keys()
            .filter(|k| *k == "item" || k.starts_with("item."))
            .cloned()
            .collect();
        for k in stale {
            self.vars.remove(&k);
        }
        let text = |v: &serde_json::Value| -> String {
            match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Null => "null".into(),
                other => Value::from(other).go_json().unwrap_or_default(),
            }
        };
        if let serde_json::Value::Object(fields) = item {
            for (k, v) in fields {
                self.vars.insert(format!("item.{k}"), Value::Str(text(v)));
            }
        }
        self.vars.insert("item".into(), Value::Str(text(item)));
    }

    fn has_children(&self, prefix: &str) -> bool {
        let start = format!("{prefix}.");
        self.vars
            .range(start.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&start))
    }

    /// The nested map of every variable under `prefix.` (children win over a same-named leaf,
    /// as in Argo's `expand`).
    fn subtree(&self, prefix: &str) -> Value {
        let start = format!("{prefix}.");
        let mut root = BTreeMap::new();
        for (k, v) in self.vars.range(start.clone()..) {
            let Some(rest) = k.strip_prefix(&start) else {
                break;
            };
            insert_path(&mut root, rest, v);
        }
        Value::Map(root)
    }

    /// What an expression reads for a root name: a leaf value, a nested map, or nothing.
    fn root(&self, name: &str) -> Option<Value> {
        if self.has_children(name) {
            Some(self.subtree(name))
        } else {
            self.vars.get(name).cloned()
        }
    }
}

fn insert_path(map: &mut BTreeMap<String, Value>, path: &str, v: &Value) {
    match path.split_once('.') {
        None => {
            // A deeper name already made this a map: children win.
            if !matches!(map.get(path), Some(Value::Map(_))) {
                map.insert(path.to_owned(), v.clone());
            }
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_owned())
                .or_insert_with(|| Value::Map(BTreeMap::new()));
            if !matches!(entry, Value::Map(_)) {
                *entry = Value::Map(BTreeMap::new());
            }
            if let Value::Map(m) = entry {
                insert_path(m, rest, v);
            }
        }
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Scope {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut s = Scope::new();
        for (k, v) in iter {
            s.insert(k, v);
        }
        s
    }
}
