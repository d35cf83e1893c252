//! Parsing of manifest text into objects: multi-document YAML and JSON (objects, arrays and
//! `kind: List`), shared by the directory renderer and the output of `kustomize`/`helm`.
//!
//! Invariants: empty documents (only whitespace, comments or `null`) are skipped, as Argo CD
//! skips them; every other document must be a mapping with `apiVersion` and `kind`, else the
//! error names the file and the zero-based document index; list items are flattened in order.

use serde_json::Value;

use super::RenderError;

/// Splits YAML text at document markers (`---` at column 0, optionally followed by content).
///
/// Pure and total. A `---` inside a block scalar is always indented, so a column-0 marker is
/// always a document boundary.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        let is_marker =
            line.starts_with("---") && line[3..].chars().next().is_none_or(|c| c.is_whitespace());
        if is_marker {
            docs.push(format!("{}\n", line[3..].trim_start()));
        } else if line == "..." {
            // Document end marker: what follows until the next `---` is not content.
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

/// Parses multi-document YAML into objects; `file` names the source in errors.
pub fn parse_yaml(file: &str, text: &str) -> Result<Vec<Value>, RenderError> {
    let mut out = Vec::new();
    let mut index = 0usize;
    for doc in split_documents(text) {
        if is_blank(&doc) {
            continue;
        }
        let value: Value =
            serde_saphyr::from_str(&doc).map_err(|e| RenderError::InvalidDocument {
                file: file.to_owned(),
                document: index,
                reason: e.to_string(),
            })?;
        push_object(file, index, value, &mut out)?;
        index += 1;
    }
    Ok(out)
}

/// Parses a JSON file: one object, an array of objects, or a `kind: List`.
pub fn parse_json(file: &str, text: &str) -> Result<Vec<Value>, RenderError> {
    let value: Value = serde_json::from_str(text).map_err(|e| RenderError::InvalidDocument {
        file: file.to_owned(),
        document: 0,
        reason: e.to_string(),
    })?;
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            for (i, item) in items.into_iter().enumerate() {
                push_object(file, i, item, &mut out)?;
            }
        }
        other => push_object(file, 0, other, &mut out)?,
    }
    Ok(out)
}

/// Checks one document is an object with apiVersion and kind, flattening `*List` kinds.
fn push_object(
    file: &str,
    document: usize,
    value: Value,
    out: &mut Vec<Value>,
) -> Result<(), RenderError> {
    match value {
        Value::Null => Ok(()),
        Value::Object(map) => {
            let has = |k: &str| {
                map.get(k)
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            };
            if !has("apiVersion") || !has("kind") {
                return Err(RenderError::NotAnObject {
                    file: file.to_owned(),
                    document,
                    reason: "missing apiVersion or kind".to_owned(),
                });
            }
            // Kubernetes lists (`v1/List`, `ConfigMapList`...) are flattened, as kubectl and
            // Argo CD do.
            let is_list = map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"))
                && map.get("items").is_some_and(Value::is_array);
            if is_list {
                let items = map.get("items").and_then(Value::as_array).cloned();
                for item in items.unwrap_or_default() {
                    push_object(file, document, item, out)?;
                }
                return Ok(());
            }
            out.push(Value::Object(map));
            Ok(())
        }
        other => Err(RenderError::NotAnObject {
            file: file.to_owned(),
            document,
            reason: format!("expected a mapping, found {}", json_type(&other)),
        }),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(objs: &[Value]) -> Vec<String> {
        objs.iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    #[test]
    fn multi_document_yaml_skips_empty_documents() {
        let text = "# header\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n\
                    # only a comment\n---\n--- \napiVersion: v1\nkind: ConfigMap\nmetadata:\n  \
                    name: b\ndata:\n  x: |\n    ---\n    not a marker\n...\n";
        let objs = parse_yaml("f.yaml", text).expect("parses");
        assert_eq!(names(&objs), ["a", "b"]);
        assert_eq!(objs[1]["data"]["x"], "---\nnot a marker\n");
    }

    #[test]
    fn document_content_on_the_marker_line() {
        let objs = parse_yaml(
            "f.yaml",
            "--- {apiVersion: v1, kind: Namespace, metadata: {name: ns1}}\n",
        )
        .expect("parses");
        assert_eq!(names(&objs), ["ns1"]);
    }

    #[test]
    fn errors_name_the_file_and_document_index() {
        let cases = [
            (
                "apiVersion: v1\nkind: A\n---\nkind: B\n",
                1,
                "missing apiVersion or kind",
            ),
            ("apiVersion: v1\nkind: A\n---\n- a\n", 1, "found a sequence"),
            ("a: [\n", 0, ""),
            (
                "---\napiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\n---\nx: {\n",
                2,
                "",
            ),
        ];
        for (text, doc, reason) in cases {
            let err = parse_yaml("dir/bad.yaml", text)
                .expect_err(text)
                .to_string();
            assert!(err.contains("dir/bad.yaml"), "{err}");
            assert!(err.contains(&format!("document {doc}")), "{err}");
            assert!(err.contains(reason), "{err}");
        }
    }

    #[test]
    fn json_object_array_and_list() {
        let cases = [
            (
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}}"#,
                vec!["a"],
            ),
            (
                r#"[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},
                    {"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"}}]"#,
                vec!["a", "b"],
            ),
            (
                r#"{"apiVersion":"v1","kind":"List","items":[
                    {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}},
                    {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"y"}}]}"#,
                vec!["x", "y"],
            ),
        ];
        for (text, want) in cases {
            let objs = parse_json("f.json", text).expect(text);
            assert_eq!(names(&objs), want);
        }
    }

    #[test]
    fn yaml_lists_are_flattened_and_items_checked() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, \
                    metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n\
                    ---\napiVersion: v1\nkind: ConfigMapList\nitems: []\n";
        assert_eq!(
            names(&parse_yaml("l.yaml", text).expect("parses")),
            ["a", "b"]
        );
        let bad = "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: List\nitems:\n- {kind: X}\n";
        let err = parse_yaml("l.yaml", bad)
            .expect_err("item without apiVersion")
            .to_string();
        assert!(err.contains("l.yaml: document 1"), "{err}");
    }

    #[test]
    fn json_errors_name_file_and_item() {
        let err = parse_json(
            "a.json",
            r#"[{"apiVersion":"v1","kind":"A"}, {"kind":"B"}]"#,
        )
        .expect_err("missing apiVersion")
        .to_string();
        assert!(
            err.contains("a.json") && err.contains("document 1"),
            "{err}"
        );
        let err = parse_json("b.json", "{").expect_err("syntax").to_string();
        assert!(err.contains("b.json"), "{err}");
    }
}
