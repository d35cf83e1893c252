//! RFC 6901 JSON pointers, used by `ignoreDifferences.jsonPointers`: parse and remove.
//!
//! Invariant: removing a pointer that does not resolve is a no-op (Argo CD ignores pointers that
//! do not exist in an object), but a pointer that is not syntactically valid is an error naming it.

use serde_json::Value;

use super::DiffError;

/// One reference token of a pointer, unescaped (`~1` → `/`, `~0` → `~`).
pub type Token = String;

/// Parse a pointer (`""` is refused: removing the whole document is never what a user means).
pub fn parse(pointer: &str) -> Result<Vec<Token>, DiffError> {
    let bad = |why: &str| DiffError::BadJsonPointer {
        pointer: pointer.to_owned(),
        reason: why.to_owned(),
    };
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(bad("a JSON pointer must start with '/'"));
    };
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(bad("'~' must be followed by '0' or '1'")),
                }
            }
            Ok(out)
        })
        .collect()
}

/// Remove what `tokens` points at in `doc`, if it exists.
pub fn remove(doc: &mut Value, tokens: &[Token]) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut cur = doc;
    for tok in parents {
        let next = match cur {
            Value::Object(map) => map.get_mut(tok.as_str()),
            Value::Array(items) => index(tok).and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return,
        }
    }
    match cur {
        Value::Object(map) => {
            map.shift_remove(last.as_str());
        }
        Value::Array(items) => {
            if let Some(i) = index(last).filter(|i| *i < items.len()) {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// An array index token: digits only, no leading zero (RFC 6901 §4); `-` never exists.
fn index(tok: &str) -> Option<usize> {
    if tok.is_empty() || (tok.len() > 1 && tok.starts_with('0')) {
        return None;
    }
    if !tok.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    tok.parse().ok()
}

/// Escape one token for display in a pointer.
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
