//! `{{...}}` tags in text: scanning, rendering in stages, and validation.
//!
//! Scanning follows Argo's fasttemplate: a tag runs from `{{` to the first following `}}`
//! (so an expression cannot contain `}}`), and a `{{` without a `}}` is an error for the whole
//! text. A simple tag's name is its trimmed text; a nested opening inside an unknown tag
//! (`{{- with secret "{{inputs.parameters.x}}" -}}`) resolves the innermost tag, as Argo does.

use super::lang::{eval, parse};
use super::value::Value;
use super::{ExprError, Scope};

/// The names Argo validates at submission; other tags (a Helm or Jinja template in a script's
/// source, say) are left alone.
const VALIDATED_PREFIXES: &[&str] = &[
    "item.",
    "steps.",
    "inputs.",
    "outputs.",
    "pod.",
    "workflow.",
    "tasks.",
];

/// Whether Argo checks a simple tag with this name at submission (its prefix is one of
/// `item. steps. inputs. outputs. pod. workflow. tasks.`). Validators combine this with their
/// scope so that user text such as `{{ .Values.x }}` is not reported.
pub fn is_validated_name(name: &str) -> bool {
    VALIDATED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// What [`render_with`] does with a tag it cannot resolve.
#[derive(Clone, Copy)]
pub enum Unresolved<'a> {
    /// Fail (Argo's `allowUnresolved=false`): a missing simple variable is
    /// [`ExprError::Unresolved`], a failing expression is its error.
    Error,
    /// Leave the tag as written (Argo's `allowUnresolved=true`): a simple tag that is not in
    /// scope, and an expression that reads a name not in scope, fails, or gives nil.
    Keep,
    /// Leave a tag as written when the predicate marks a variable it reads as deferred (e.g.
    /// `tasks.X.` before X ran); fail on anything else that does not resolve.
    Defer(&'a dyn Fn(&str) -> bool),
}

/// One variable reference of a tag, for validation and dependency checks.
#[derive(Debug, Clone, PartialEq)]
pub struct TagRef {
    /// The whole tag as written, braces included.
    pub tag: String,
    /// The variable: a simple tag's trimmed text, or a dotted path an expression reads.
    pub name: String,
    /// Byte offset of the tag's `{{` in the text.
    pub offset: usize,
    /// Whether the tag is an expression (`{{=...}}`).
    pub expression: bool,
}

pub(crate) struct RawTag<'a> {
    pub start: usize,
    pub end: usize,
    pub inner: &'a str,
}

/// Splits text into tags; errors on a `{{` without `}}`.
pub(crate) fn scan(text: &str) -> Result<Vec<RawTag<'_>>, ExprError> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(rel) = text[at..].find("{{") {
        let start = at + rel;
        let Some(close) = text[start + 2..].find("}}") else {
            return Err(ExprError::UnclosedTag { offset: start });
        };
        let end = start + 2 + close + 2;
        out.push(RawTag {
            start,
            end,
            inner: &text[start + 2..start + 2 + close],
        });
        at = end;
    }
    Ok(out)
}

/// The text a value becomes inside a template: a string as is, anything else as Go's JSON.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Nil => None,
        other => other.go_json(),
    }
}

/// Renders every tag; unresolved variables are errors (Argo's `allowUnresolved=false`).
pub fn render(text: &str, scope: &Scope) -> Result<String, ExprError> {
    render_with(text, scope, Unresolved::Error)
}

/// Renders every tag, handling what cannot be resolved as `mode` says.
pub fn render_with(text: &str, scope: &Scope, mode: Unresolved<'_>) -> Result<String, ExprError> {
    let tags = scan(text)?;
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for tag in tags {
        out.push_str(&text[last..tag.start]);
        last = tag.end;
        let whole = &text[tag.start..tag.end];
        if let Some(src) = tag.inner.strip_prefix('=') {
            match render_expression(src, scope, mode)? {
                Some(s) => out.push_str(&s),
                None => out.push_str(whole),
            }
            continue;
        }
        let name = tag.inner.trim();
        if let Some(s) = scope.get(name).and_then(value_text) {
            out.push_str(&s);
            continue;
        }
        // `{{ prefix {{name` (the tag swallowed an earlier `{{`): resolve the innermost tag.
        if let Some(i) = tag.inner.rfind("{{").filter(|i| *i > 0) {
            let nested = &tag.inner[i + 2..];
            if let Some(Value::Str(s)) = scope.get(nested) {
                out.push_str("{{");
                out.push_str(&tag.inner[..i]);
                out.push_str(s);
                continue;
            }
        }
        match mode {
            Unresolved::Keep => out.push_str(whole),
            Unresolved::Defer(deferred) if deferred(name) => out.push_str(whole),
            _ => {
                return Err(ExprError::Unresolved {
                    tag: tag.inner.to_owned(),
                });
            }
        }
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// `Ok(None)`: keep the tag as written.
fn render_expression(
    src: &str,
    scope: &Scope,
    mode: Unresolved<'_>,
) -> Result<Option<String>, ExprError> {
    let ast = match parse(src) {
        Ok(a) => a,
        Err(_) if matches!(mode, Unresolved::Keep) => return Ok(None),
        Err(e) => return Err(e),
    };
    let refs = ast.references();
    match mode {
        Unresolved::Keep if refs.iter().any(|r| not_yet_known(r, scope)) => return Ok(None),
        Unresolved::Defer(deferred) if refs.iter().any(|r| deferred(r)) => return Ok(None),
        _ => {}
    }
    let v = match eval(&ast, scope) {
        Ok(v) => v,
        Err(_) if matches!(mode, Unresolved::Keep) => return Ok(None),
        Err(e) => return Err(e),
    };
    match value_text(&v) {
        Some(s) => Ok(Some(s)),
        None if matches!(mode, Unresolved::Keep) => Ok(None),
        None if v == Value::Nil => Err(ExprError::NilResult {
            expr: src.to_owned(),
        }),
        None => Err(ExprError::Eval {
            expr: src.to_owned(),
            pos: 0,
            message: format!("json: unsupported value {}", v.go_string()),
        }),
    }
}

/// Whether an expression tag must wait in [`Unresolved::Keep`] mode because of this reference:
/// its root name is not in scope (Argo keeps any expression reading a variable not in its
/// environment), or it is one of the variables Argo sets late and must not read as nil early
/// (`retries`, `lastRetry.*`, `workflow.status`, `workflow.failures`). A missing key under a
/// known root (`inputs.parameters.x ?? 'default'`) is evaluated, so `??` defaults work.
fn not_yet_known(reference: &str, scope: &Scope) -> bool {
    let root = reference.split('.').next().unwrap_or(reference);
    let late = reference == "retries"
        || reference.starts_with("lastRetry.")
        || reference == "workflow.status"
        || reference == "workflow.failures";
    !scope.knows(root) || (late && !scope.knows(reference))
}

/// Every variable the text's tags read, in order. Expression tags must parse.
pub fn references(text: &str) -> Result<Vec<TagRef>, ExprError> {
    let mut out = Vec::new();
    for tag in scan(text)? {
        let whole = &text[tag.start..tag.end];
        if let Some(src) = tag.inner.strip_prefix('=') {
            let ast = parse(src)?;
            for name in ast.references() {
                out.push(TagRef {
                    tag: whole.to_owned(),
                    name,
                    offset: tag.start,
                    expression: true,
                });
            }
        } else {
            out.push(TagRef {
                tag: whole.to_owned(),
                name: tag.inner.trim().to_owned(),
                offset: tag.start,
                expression: false,
            });
        }
    }
    Ok(out)
}

/// The references `known` rejects. A syntax error in an expression tag is an error.
pub fn unresolved_tags(text: &str, known: &dyn Fn(&str) -> bool) -> Result<Vec<TagRef>, ExprError> {
    Ok(references(text)?
        .into_iter()
        .filter(|r| !known(&r.name))
        .collect())
}

/// Validation before anything runs: the first reference `known` rejects is
/// [`ExprError::UnknownVariable`] naming the tag; syntax errors are reported as such.
pub fn check(text: &str, known: &dyn Fn(&str) -> bool) -> Result<(), ExprError> {
    match unresolved_tags(text, known)?.into_iter().next() {
        Some(r) => Err(ExprError::UnknownVariable {
            tag: r.tag,
            name: r.name,
        }),
        None => Ok(()),
    }
}

/// Renders every string of a JSON document (object keys too, as Argo renders the template's
/// whole JSON text). An error names the field as a JSON path (`.container.args[0]`).
pub fn render_json(
    doc: &serde_json::Value,
    scope: &Scope,
    mode: Unresolved<'_>,
) -> Result<serde_json::Value, (String, ExprError)> {
    fn go(
        v: &serde_json::Value,
        path: &mut String,
        scope: &Scope,
        mode: Unresolved<'_>,
    ) -> Result<serde_json::Value, (String, ExprError)> {
        Ok(match v {
            serde_json::Value::String(s) => serde_json::Value::String(
                render_with(s, scope, mode).map_err(|e| (path.clone(), e))?,
            ),
            serde_json::Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(go(item, path, scope, mode)?);
                    path.truncate(len);
                }
                serde_json::Value::Array(out)
            }
            serde_json::Value::Object(map) => {
                let mut out = serde_json::Map::with_capacity(map.len());
                for (k, item) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    let key = render_with(k, scope, mode).map_err(|e| (path.clone(), e))?;
                    out.insert(key, go(item, path, scope, mode)?);
                    path.truncate(len);
                }
                serde_json::Value::Object(out)
            }
            other => other.clone(),
        })
    }
    go(doc, &mut String::new(), scope, mode)
}

/// Validation of a whole JSON document (a template as JSON): every reference `known` rejects,
/// with the JSON path of its field; the first syntax error stops the walk, with its path.
pub fn unresolved_in_json(
    doc: &serde_json::Value,
    known: &dyn Fn(&str) -> bool,
) -> Result<Vec<(String, TagRef)>, (String, ExprError)> {
    fn go(
        v: &serde_json::Value,
        path: &mut String,
        known: &dyn Fn(&str) -> bool,
        out: &mut Vec<(String, TagRef)>,
    ) -> Result<(), (String, ExprError)> {
        match v {
            serde_json::Value::String(s) => text(s, path, known, out)?,
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    go(item, path, known, out)?;
                    path.truncate(len);
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map {
                    let len = path.len();
                    path.push('.');
                    path.push_str(k);
                    text(k, path, known, out)?;
                    go(item, path, known, out)?;
                    path.truncate(len);
                }
            }
            _ => {}
        }
        Ok(())
    }
    fn text(
        s: &str,
        path: &str,
        known: &dyn Fn(&str) -> bool,
        out: &mut Vec<(String, TagRef)>,
    ) -> Result<(), (String, ExprError)> {
        for r in unresolved_tags(s, known).map_err(|e| (path.to_owned(), e))? {
            out.push((path.to_owned(), r));
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(doc, &mut String::new(), known, &mut out)?;
    Ok(out)
}
