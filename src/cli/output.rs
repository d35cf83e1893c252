//! `-o json|yaml|wide` and the default table, shared by every list/get command.

use std::fmt::Write as _;

use anyhow::Context;
use serde_json::Value;

/// How a command prints what it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns (the default).
    #[default]
    #[value(skip)]
    Table,
    /// More columns.
    Wide,
    /// The server's JSON, pretty-printed.
    Json,
    /// The server's JSON as YAML.
    Yaml,
}

/// Prints a value as JSON or YAML.
pub fn print_value(value: &Value, format: OutputFormat) -> anyhow::Result<()> {
    match format {
        OutputFormat::Yaml => {
            print!(
                "{}",
                serde_saphyr::to_string(value).context("rendering YAML")?
            );
        }
        _ => println!(
            "{}",
            serde_json::to_string_pretty(value).context("rendering JSON")?
        ),
    }
    Ok(())
}

/// The text at a JSON pointer, `-` when absent; arrays are joined with commas.
pub fn field(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) if s.is_empty() => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

type Extractor = Box<dyn Fn(&Value) -> Vec<String>>;

/// A table: normal columns, extra `wide` columns, and how to fill a row from an object.
pub struct Table {
    headers: Vec<&'static str>,
    wide: Vec<&'static str>,
    extract: Extractor,
}

impl Table {
    /// A table with these headers (`wide` ones are shown only with `-o wide`).
    pub fn new(headers: &[&'static str], wide: &[&'static str]) -> Self {
        Self {
            headers: headers.to_vec(),
            wide: wide.to_vec(),
            extract: Box::new(|_| Vec::new()),
        }
    }

    /// Sets the row extractor; it returns normal columns first, then the wide ones.
    pub fn columns(mut self, f: impl Fn(&Value) -> Vec<String> + 'static) -> Self {
        self.extract = Box::new(f);
        self
    }

    /// Renders rows as aligned text.
    pub fn render(&self, items: &[Value], wide: bool) -> String {
        let n = self.headers.len() + if wide { self.wide.len() } else { 0 };
        let headers: Vec<&str> = self
            .headers
            .iter()
            .chain(self.wide.iter())
            .take(n)
            .copied()
            .collect();
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|i| (self.extract)(i).into_iter().take(n).collect())
            .collect();
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for (i, cell) in cells.enumerate() {
                let pad = widths.get(i).copied().unwrap_or(0);
                let _ = write!(text, "{cell:<pad$}  ");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        line(&mut headers.iter().copied());
        for row in &rows {
            line(&mut row.iter().map(String::as_str));
        }
        out
    }

    /// Prints a `{items: [...]}` list.
    pub fn print_list(&self, list: &Value, format: OutputFormat) -> anyhow::Result<()> {
        match format {
            OutputFormat::Table | OutputFormat::Wide => {
                let items = list
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                print!("{}", self.render(&items, format == OutputFormat::Wide));
                Ok(())
            }
            other => print_value(list, other),
        }
    }

    /// Prints one object.
    pub fn print_one(&self, item: &Value, format: OutputFormat) -> anyhow::Result<()> {
        match format {
            OutputFormat::Table | OutputFormat::Wide => {
                print!(
                    "{}",
                    self.render(std::slice::from_ref(item), format == OutputFormat::Wide)
                );
                Ok(())
            }
            other => print_value(item, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Table {
        Table::new(&["NAME", "PHASE"], &["MESSAGE"]).columns(|v| {
            vec![
                field(v, "/metadata/name"),
                field(v, "/status/phase"),
                field(v, "/status/message"),
            ]
        })
    }

    #[test]
    fn field_handles_missing_arrays_and_scalars() {
        let v = json!({"a": "x", "b": ["g1", "g2"], "c": true, "d": "", "e": null});
        assert_eq!(field(&v, "/a"), "x");
        assert_eq!(field(&v, "/b"), "g1,g2");
        assert_eq!(field(&v, "/c"), "true");
        assert_eq!(field(&v, "/d"), "-");
        assert_eq!(field(&v, "/e"), "-");
        assert_eq!(field(&v, "/zzz"), "-");
    }

    #[test]
    fn table_aligns_and_hides_wide_columns() {
        let items = vec![
            json!({"metadata": {"name": "hello-world-abc"}, "status": {"phase": "Succeeded", "message": "done"}}),
            json!({"metadata": {"name": "x"}}),
        ];
        let narrow = table().render(&items, false);
        assert_eq!(
            narrow,
            "NAME             PHASE\nhello-world-abc  Succeeded\nx                -\n"
        );
        let wide = table().render(&items, true);
        assert!(
            wide.starts_with("NAME             PHASE      MESSAGE\n"),
            "{wide}"
        );
        assert!(
            wide.contains("hello-world-abc  Succeeded  done\n"),
            "{wide}"
        );
    }
}
