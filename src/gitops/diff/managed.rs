//! `managedFields` (FieldsV1) parsing, for `ignoreDifferences.managedFieldsManagers`.
//!
//! A FieldsV1 document is a tree whose keys are path elements: `f:<name>` (a map field),
//! `k:<json object>` (a list item identified by its merge keys), `v:<json>` (a set-list item
//! identified by its value), `i:<n>` (a list item by index) and `.` (the element itself).
//! [`FieldSet::remove_from`] deletes what a set owns from an object.
//!
//! Invariant: an element is deleted whole only when the set owns it as a leaf (no owned
//! children); an element with owned children loses those children, and is deleted too when that
//! leaves it empty and the set also owns the element itself (`.`). A field another manager still
//! owns partly is thus never deleted by accident.

use serde_json::{Map, Value};

use super::DiffError;

/// One FieldsV1 path element.
#[derive(Clone, Debug, PartialEq)]
pub enum PathElement {
    /// `f:<name>`: a field of a map.
    Field(String),
    /// `k:{...}`: the list item whose fields equal these.
    Key(Vec<(String, Value)>),
    /// `v:<json>`: the list item equal to this value.
    Value(Value),
    /// `i:<n>`: the list item at this index.
    Index(usize),
}

/// A parsed FieldsV1 tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldSet {
    /// Whether the element itself (`.`) is owned.
    pub own: bool,
    /// Owned children, in document order, each element once.
    pub children: Vec<(PathElement, FieldSet)>,
}

impl FieldSet {
    /// Parse a FieldsV1 object; `manager` names the entry in errors.
    pub fn parse(fields: &Value, manager: &str) -> Result<Self, DiffError> {
        let bad = |element: &str, reason: &str| DiffError::BadManagedFields {
            manager: manager.to_owned(),
            element: element.to_owned(),
            reason: reason.to_owned(),
        };
        let Some(map) = fields.as_object() else {
            return Err(bad("", "fieldsV1 must be an object"));
        };
        let mut set = FieldSet::default();
        for (raw, child) in map {
            if raw == "." {
                set.own = true;
                continue;
            }
            let element = if let Some(name) = raw.strip_prefix("f:") {
                PathElement::Field(name.to_owned())
            } else if let Some(json) = raw.strip_prefix("k:") {
                let keys: Map<String, Value> = serde_json::from_str(json)
                    .map_err(|e| bad(raw, &format!("k: must hold a JSON object: {e}")))?;
                PathElement::Key(keys.into_iter().collect())
            } else if let Some(json) = raw.strip_prefix("v:") {
                let value: Value = serde_json::from_str(json)
                    .map_err(|e| bad(raw, &format!("v: must hold a JSON value: {e}")))?;
                PathElement::Value(value)
            } else if let Some(n) = raw.strip_prefix("i:") {
                PathElement::Index(
                    n.parse()
                        .map_err(|_| bad(raw, "i: must hold a non-negative integer"))?,
                )
            } else {
                return Err(bad(raw, "expected '.', f:, k:, v: or i:"));
            };
            set.insert(element, FieldSet::parse(child, manager)?);
        }
        Ok(set)
    }

    /// The union of the sets of every `managedFields` entry of `live` whose manager is in
    /// `managers` (any operation, any subresource), as Argo CD unions them.
    pub fn of_managers(live: &Value, managers: &[String]) -> Result<Self, DiffError> {
        let mut set = FieldSet::default();
        let entries = live
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for entry in entries {
            let manager = entry.get("manager").and_then(Value::as_str).unwrap_or("");
            if !managers.iter().any(|m| m == manager) {
                continue;
            }
            if let Some(fields) = entry.get("fieldsV1") {
                set.merge(FieldSet::parse(fields, manager)?);
            }
        }
        Ok(set)
    }

    /// The set `manager` last applied (its `operation: Apply` entries, main resource only, not
    /// the `status` or `scale` subresource), empty when it never applied this object.
    pub fn of_applier(live: &Value, manager: &str) -> Result<Self, DiffError> {
        let mut set = FieldSet::default();
        let entries = live
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        for entry in entries {
            let field = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or("");
            if field("manager") != manager
                || field("operation") != "Apply"
                || !field("subresource").is_empty()
            {
                continue;
            }
            if let Some(fields) = entry.get("fieldsV1") {
                set.merge(FieldSet::parse(fields, manager)?);
            }
        }
        Ok(set)
    }

    fn merge(&mut self, other: FieldSet) {
        self.own |= other.own;
        for (k, v) in other.children {
            self.insert(k, v);
        }
    }

    fn insert(&mut self, element: PathElement, set: FieldSet) {
        match self.children.iter_mut().find(|(e, _)| *e == element) {
            Some((_, existing)) => existing.merge(set),
            None => self.children.push((element, set)),
        }
    }

    fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }

    /// Delete every owned field from `value` (see the module invariant).
    pub fn remove_from(&self, value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (element, sub) in &self.children {
                    let PathElement::Field(name) = element else {
                        continue;
                    };
                    let Some(child) = map.get_mut(name) else {
                        continue;
                    };
                    if sub.prune(child) {
                        map.shift_remove(name);
                    }
                }
            }
            Value::Array(items) => {
                let mut doomed = Vec::new();
                for (element, sub) in &self.children {
                    let found = locate(element, items);
                    if let Some(i) = found
                        && let Some(item) = items.get_mut(i)
                        && sub.prune(item)
                    {
                        doomed.push(i);
                    }
                }
                doomed.sort_unstable();
                doomed.dedup();
                for i in doomed.into_iter().rev() {
                    items.remove(i);
                }
            }
            _ => {}
        }
    }

    /// Remove owned parts of `child`; true when `child` itself should go.
    fn prune(&self, child: &mut Value) -> bool {
        if self.is_leaf() {
            return true;
        }
        self.remove_from(child);
        let empty = match child {
            Value::Object(m) => m.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        self.own && empty
    }
}

/// The index of the list item a (non-field) element names, if present.
pub fn locate(element: &PathElement, items: &[Value]) -> Option<usize> {
    match element {
        PathElement::Field(_) => None,
        PathElement::Index(i) => (*i < items.len()).then_some(*i),
        PathElement::Value(v) => items.iter().position(|item| item == v),
        PathElement::Key(keys) => items
            .iter()
            .position(|item| keys.iter().all(|(k, v)| item.get(k) == Some(v))),
    }
}
