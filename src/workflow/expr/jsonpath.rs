//! `jsonpath(json, path)` as Argo's expression function: `$.a.b`, `$['a-b']`, `$[0]`, `$[-1]`,
//! `$[*]`, `$.a[*].b`, `$[0,2]`, `$[1:3]`, `$..name`. A definite path (no wildcard, union, slice
//! or descent) returns the value itself; any other returns the list of matches. A missing key
//! or index on a definite path is an error (Argo's library fails the expression there too).
//! Filters (`[?(...)]`) are not supported and say so.

use super::value::Value;

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(i64),
    Wild,
    Union(Vec<Seg>),
    Slice(Option<i64>, Option<i64>),
    Descend(Option<String>),
}

fn parse(path: &str) -> Result<Vec<Seg>, String> {
    let chars: Vec<char> = path.trim().chars().collect();
    if chars.first() != Some(&'$') {
        return Err(format!("jsonpath {path:?} must start with $"));
    }
    let mut i = 1;
    let mut segs = Vec::new();
    let name_end = |i: usize| {
        let mut j = i;
        while j < chars.len() && chars[j] != '.' && chars[j] != '[' {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        match chars[i] {
            '.' if chars.get(i + 1) == Some(&'.') => {
                i += 2;
                if chars.get(i) == Some(&'*') {
                    segs.push(Seg::Descend(None));
                    i += 1;
                } else if chars.get(i) == Some(&'[') {
                    segs.push(Seg::Descend(None));
                } else {
                    let j = name_end(i);
                    if j == i {
                        return Err(format!("jsonpath {path:?}: expected a name after .."));
                    }
                    segs.push(Seg::Descend(Some(chars[i..j].iter().collect())));
                    i = j;
                }
            }
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'*') {
                    segs.push(Seg::Wild);
                    i += 1;
                    continue;
                }
                let j = name_end(i);
                if j == i {
                    return Err(format!("jsonpath {path:?}: expected a name after ."));
                }
                segs.push(Seg::Key(chars[i..j].iter().collect()));
                i = j;
            }
            '[' => {
                let Some(close) = find_close(&chars, i + 1) else {
                    return Err(format!("jsonpath {path:?}: missing ]"));
                };
                let inner: String = chars[i + 1..close].iter().collect();
                segs.push(parse_bracket(inner.trim(), path)?);
                i = close + 1;
            }
            c => return Err(format!("jsonpath {path:?}: unexpected {c:?}")),
        }
    }
    Ok(segs)
}

fn find_close(chars: &[char], from: usize) -> Option<usize> {
    let mut quote: Option<char> = None;
    for (k, &c) in chars.iter().enumerate().skip(from) {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ']' => return Some(k),
            None => {}
        }
    }
    None
}

fn parse_bracket(inner: &str, path: &str) -> Result<Seg, String> {
    if inner == "*" {
        return Ok(Seg::Wild);
    }
    if inner.starts_with('?') {
        return Err(format!(
            "jsonpath {path:?}: filter expressions are not supported"
        ));
    }
    let parts = split_union(inner);
    if parts.len() > 1 {
        return Ok(Seg::Union(
            parts
                .iter()
                .map(|p| parse_bracket(p.trim(), path))
                .collect::<Result<_, _>>()?,
        ));
    }
    if let Some(q) = inner.chars().next().filter(|c| *c == '\'' || *c == '"') {
        if inner.len() >= 2 && inner.ends_with(q) {
            return Ok(Seg::Key(inner[1..inner.len() - 1].to_owned()));
        }
        return Err(format!("jsonpath {path:?}: unterminated quoted key"));
    }
    if let Some((a, b)) = inner.split_once(':') {
        let num = |s: &str| -> Result<Option<i64>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse()
                .map(Some)
                .map_err(|_| format!("jsonpath {path:?}: bad slice bound {s:?}"))
        };
        return Ok(Seg::Slice(num(a)?, num(b)?));
    }
    inner
        .parse()
        .map(Seg::Index)
        .map_err(|_| format!("jsonpath {path:?}: bad index {inner:?}"))
}

fn split_union(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ',' => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn descend_all(v: &Value, out: &mut Vec<Value>) {
    out.push(v.clone());
    match v {
        Value::List(l) => l.iter().for_each(|c| descend_all(c, out)),
        Value::Map(m) => m.values().for_each(|c| descend_all(c, out)),
        _ => {}
    }
}

fn apply(seg: &Seg, v: &Value, out: &mut Vec<Value>, strict: bool) -> Result<(), String> {
    match (seg, v) {
        (Seg::Key(k), Value::Map(m)) => match m.get(k) {
            Some(x) => out.push(x.clone()),
            None if strict => return Err(format!("key {k:?} not found")),
            None => {}
        },
        (Seg::Index(i), Value::List(l)) => {
            let j = if *i < 0 { *i + l.len() as i64 } else { *i };
            match usize::try_from(j).ok().and_then(|j| l.get(j)) {
                Some(x) => out.push(x.clone()),
                None if strict => return Err(format!("index {i} out of range")),
                None => {}
            }
        }
        (Seg::Wild, Value::List(l)) => out.extend(l.iter().cloned()),
        (Seg::Wild, Value::Map(m)) => out.extend(m.values().cloned()),
        (Seg::Union(items), _) => {
            for s in items {
                apply(s, v, out, false)?;
            }
        }
        (Seg::Slice(a, b), Value::List(l)) => {
            let n = l.len() as i64;
            let norm = |x: i64| if x < 0 { (x + n).max(0) } else { x.min(n) };
            let st = norm(a.unwrap_or(0));
            let en = norm(b.unwrap_or(n));
            if st < en {
                out.extend(l[st as usize..en as usize].iter().cloned());
            }
        }
        (Seg::Descend(name), _) => {
            let mut all = Vec::new();
            descend_all(v, &mut all);
            for x in all {
                match name {
                    Some(k) => {
                        if let Value::Map(m) = &x
                            && let Some(y) = m.get(k)
                        {
                            out.push(y.clone());
                        }
                    }
                    None => out.push(x),
                }
            }
        }
        (s, other) if strict => {
            return Err(format!("cannot apply {s:?} to {}", other.type_name()));
        }
        _ => {}
    }
    Ok(())
}

/// Runs `path` on `doc`.
pub(crate) fn query(doc: &Value, path: &str) -> Result<Value, String> {
    let segs = parse(path)?;
    let definite = segs
        .iter()
        .all(|s| matches!(s, Seg::Key(_) | Seg::Index(_)));
    let mut cur = vec![doc.clone()];
    for seg in &segs {
        let mut next = Vec::new();
        for v in &cur {
            apply(seg, v, &mut next, definite)?;
        }
        cur = next;
    }
    if definite {
        Ok(cur.into_iter().next().unwrap_or(Value::Nil))
    } else {
        Ok(Value::List(cur))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let doc = Value::from(serde_json::json!({
            "a": {"b": 1, "c-d": "x"},
            "items": [{"n": 1, "v": "p"}, {"n": 2, "v": "q"}, {"n": 3}],
            "list": [10, 20, 30]
        }));
        let cases: &[(&str, serde_json::Value)] = &[
            ("$.a.b", serde_json::json!(1)),
            ("$['a']['c-d']", serde_json::json!("x")),
            ("$.a[\"c-d\"]", serde_json::json!("x")),
            ("$.list[0]", serde_json::json!(10)),
            ("$.list[-1]", serde_json::json!(30)),
            ("$.list[*]", serde_json::json!([10, 20, 30])),
            ("$.list[0,2]", serde_json::json!([10, 30])),
            ("$.list[1:]", serde_json::json!([20, 30])),
            ("$.list[:2]", serde_json::json!([10, 20])),
            ("$.items[*].n", serde_json::json!([1, 2, 3])),
            ("$.items[*].v", serde_json::json!(["p", "q"])),
            ("$..n", serde_json::json!([1, 2, 3])),
            ("$.a.*", serde_json::json!([1, "x"])),
            (
                "$",
                serde_json::json!({"a": {"b": 1, "c-d": "x"}, "items": [{"n": 1, "v": "p"}, {"n": 2, "v": "q"}, {"n": 3}], "list": [10, 20, 30]}),
            ),
        ];
        for (p, want) in cases {
            assert_eq!(query(&doc, p).map(|v| v.to_json()), Ok(want.clone()), "{p}");
        }
    }

    #[test]
    fn errors() {
        let doc = Value::from(serde_json::json!({"a": [1]}));
        for p in [
            "a.b",
            "$.missing",
            "$.a[5]",
            "$.a[?(@ > 1)]",
            "$[",
            "$.a.b",
            "$..",
        ] {
            assert!(query(&doc, p).is_err(), "{p}");
        }
    }
}
