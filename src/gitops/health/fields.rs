//! Typed reads of an unstructured object for the health checks.
//!
//! Argo CD converts an object to its typed Go struct before assessing it, so a field of the wrong
//! JSON type fails the conversion and the resource is reported `Unknown` with the error. These
//! accessors reproduce that: an absent or `null` field reads as the Go zero value, a field of the
//! wrong type is a [`HealthError::FieldType`] naming the object and the field.

use serde_json::Value;

use super::HealthError;

/// One object (or one item inside it) being read, with what is needed to name it in an error.
#[derive(Clone, Copy)]
pub(super) struct Obj<'a> {
    value: &'a Value,
    kind: &'a str,
    name: &'a str,
}

/// A status condition as Kubernetes and Argo write them; absent strings read as empty.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Condition<'a> {
    pub(super) type_: &'a str,
    pub(super) status: &'a str,
    pub(super) reason: &'a str,
    pub(super) message: &'a str,
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl<'a> Obj<'a> {
    /// Reads a whole object; kind and name come from the object itself.
    pub(super) fn new(value: &'a Value) -> Self {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        Obj { value, kind, name }
    }

    /// Reads an item nested in this object (a container status, a condition); errors still name
    /// the enclosing object.
    pub(super) fn item(&self, value: &'a Value) -> Self {
        Obj {
            value,
            kind: self.kind,
            name: self.name,
        }
    }

    /// `metadata.name`, empty when absent.
    pub(super) fn name(&self) -> &'a str {
        self.name
    }

    /// The value at `path`; `null` counts as absent, as in Go's unstructured maps.
    pub(super) fn get(&self, path: &[&str]) -> Option<&'a Value> {
        let mut cur = self.value;
        for key in path {
            cur = cur.get(key)?;
        }
        if cur.is_null() { None } else { Some(cur) }
    }

    fn type_error(&self, path: &[&str], expected: &'static str, found: &Value) -> HealthError {
        HealthError::FieldType {
            kind: self.kind.to_owned(),
            name: self.name.to_owned(),
            field: path.join("."),
            expected,
            found: json_type(found),
        }
    }

    /// An integer field, `None` when absent (Go's nil pointer).
    pub(super) fn int(&self, path: &[&str]) -> Result<Option<i64>, HealthError> {
        match self.get(path) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.type_error(path, "an integer", v)),
        }
    }

    /// An integer field, 0 when absent (Go's zero value).
    pub(super) fn int_or_zero(&self, path: &[&str]) -> Result<i64, HealthError> {
        Ok(self.int(path)?.unwrap_or(0))
    }

    /// A string field, `None` when absent.
    pub(super) fn string(&self, path: &[&str]) -> Result<Option<&'a str>, HealthError> {
        match self.get(path) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.type_error(path, "a string", v)),
        }
    }

    /// A string field, empty when absent.
    pub(super) fn str_or_empty(&self, path: &[&str]) -> Result<&'a str, HealthError> {
        Ok(self.string(path)?.unwrap_or(""))
    }

    /// A boolean field, false when absent.
    pub(super) fn flag(&self, path: &[&str]) -> Result<bool, HealthError> {
        match self.get(path) {
            None => Ok(false),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.type_error(path, "a boolean", v)),
        }
    }

    /// A list field, empty when absent.
    pub(super) fn list(&self, path: &[&str]) -> Result<&'a [Value], HealthError> {
        match self.get(path) {
            None => Ok(&[]),
            Some(v) => v
                .as_array()
                .map(Vec::as_slice)
                .ok_or_else(|| self.type_error(path, "a list", v)),
        }
    }

    /// The conditions list at `path`, each item read as a [`Condition`].
    pub(super) fn conditions(&self, path: &[&str]) -> Result<Vec<Condition<'a>>, HealthError> {
        self.list(path)?
            .iter()
            .map(|c| {
                let c = self.item(c);
                Ok(Condition {
                    type_: c.str_or_empty(&["type"])?,
                    status: c.str_or_empty(&["status"])?,
                    reason: c.str_or_empty(&["reason"])?,
                    message: c.str_or_empty(&["message"])?,
                })
            })
            .collect()
    }

    /// The annotation `key`, if set to a string.
    pub(super) fn annotation(&self, key: &str) -> Option<&'a str> {
        self.value
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(key))
            .and_then(Value::as_str)
    }
}
