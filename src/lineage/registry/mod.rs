//! The model registry: registered models, their numbered versions and their aliases, stored in
//! the schema-4 tables `models`, `model_versions` and `model_aliases`.
//!
//! What this module owns:
//! - The records ([`RegisteredModel`], [`ModelVersion`], [`AliasRecord`]) and their pure
//!   validation ([`validate_model_name`], [`validate_alias`], ...).
//! - The store functions, each taking the caller's transaction so a registration, its lineage
//!   record and the caller's own writes commit together: reads take any [`Reader`] (a
//!   `ReadTransaction` or a `WriteTransaction`), writes a `WriteTransaction`.
//! - [`executor`]: `POST /executor/v1/models/{name}/versions`, registration from a workflow pod.
//! - [`content`]: `GET /executor/v1/models/{name}/versions/{version}/content`, a version's bytes
//!   for the pods serving it (RBAC `models get <model>` for their service account).
//!
//! RBAC (enforced by the callers, `api::models` and the executor route): resource `models`; model and
//! version operations check object `<model>` with `get`/`create`/`update`/`delete`; setting,
//! moving or deleting an alias checks `promote` on `<model>/<alias>`.
//!
//! Invariants:
//! - A model's versions are numbered 1, 2, ... by its `next_version`, allocated in the same
//!   transaction that writes the version, so two registrations never get the same number; a
//!   deleted version's number is never given out again (lineage and promotion commits name it).
//! - Version keys are `<model>/<version, 10 digits>`, alias keys `<model>/<alias>`; model names
//!   and aliases contain no `/`, so a `<model>/` prefix range holds exactly that model's records.
//! - An alias always points at an existing version: deleting a version deletes the aliases
//!   pointing at it, deleting a model deletes its versions and aliases.
//! - Alias names follow MLflow's rules (`[A-Za-z0-9_-]`, at most 256 characters, not `latest` in
//!   any case, not `v<digits>`, which MLflow reserves for version references) and are not all
//!   digits, so `NAME@3` and `NAME@prod` never mean the same thing.

pub mod content;
pub mod executor;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::store::tables::{MODEL_ALIASES, MODEL_VERSIONS, MODELS};
use crate::store::{ReadTables, StoreError};

/// Longest model name (a DNS label's limit).
pub const MAX_NAME_LEN: usize = 63;
/// Longest alias (MLflow's `MAX_REGISTERED_MODEL_ALIAS_LENGTH`).
pub const MAX_ALIAS_LEN: usize = 256;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 5000;
/// Most tags (or params, or metrics) on one record.
pub const MAX_ENTRIES: usize = 100;
/// Longest tag/param/metric key.
pub const MAX_KEY_LEN: usize = 250;
/// Longest tag or param value (MLflow's `MAX_PARAM_VAL_LENGTH`).
pub const MAX_VALUE_LEN: usize = 6000;
/// Longest source URI.
pub const MAX_URI_LEN: usize = 2048;
/// Longest `created_by`/`set_by`.
pub const MAX_ACTOR_LEN: usize = 512;

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The model, version or alias does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `version 3 of model "recommender"`.
        what: String,
    },
    /// A model of that name exists already.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What, e.g. `model "recommender"`.
        what: String,
    },
    /// A field of a request is invalid.
    #[error("{field}: expected {expected}")]
    Invalid {
        /// The field, with the object it belongs to, e.g. `model "recommender": alias`.
        field: String,
        /// What was expected (and what was found).
        expected: String,
    },
    /// Recording the version in the lineage graph failed (the registration is not written).
    #[error("recording the model version in the lineage graph: {0}")]
    Lineage(#[from] crate::lineage::graph::GraphError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::Invalid { .. } => "invalid",
            Self::Lineage(_) => "lineage",
            Self::Store(e) => e.metric_label(),
        }
    }

    fn invalid(field: impl Into<String>, expected: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            expected: expected.into(),
        }
    }
}

impl From<redb::TableError> for RegistryError {
    fn from(e: redb::TableError) -> Self {
        Self::Store(e.into())
    }
}

impl From<redb::StorageError> for RegistryError {
    fn from(e: redb::StorageError) -> Self {
        Self::Store(e.into())
    }
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredModel {
    /// Name (see [`validate_model_name`]).
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// When it was created.
    pub created: Timestamp,
    /// When it (or its version list) last changed.
    pub updated: Timestamp,
    /// Who created it (RBAC subject).
    pub created_by: String,
    /// The number the next registered version gets (starts at 1).
    pub next_version: u64,
}

/// The workflow node that produced a version, set from the registering pod's identity (never
/// from the client's own claim).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLink {
    /// The Workflow's namespace.
    pub namespace: String,
    /// The Workflow's name.
    pub workflow: String,
    /// The Workflow's uid.
    pub workflow_uid: String,
    /// The node id (`status.nodes` key).
    pub node_id: String,
}

/// Status of a version (MLflow's `ModelVersionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VersionStatus {
    /// Registration in progress.
    Pending,
    /// Usable.
    #[default]
    Ready,
    /// Registration failed.
    Failed,
}

impl VersionStatus {
    /// The serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Ready => "Ready",
            Self::Failed => "Failed",
        }
    }
}

/// One version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    /// The model's name.
    pub model: String,
    /// Version number (1, 2, ...).
    pub version: u64,
    /// Where the model's files are (e.g. `s3://bucket/key`, `cairn://ns/key`).
    pub source_uri: String,
    /// Digest of the artifact, `sha256:<64 hex>`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The workflow node that registered it, when registered from a workflow pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunLink>,
    /// Metrics (e.g. `score`).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Hyperparameters.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Status.
    #[serde(default)]
    pub status: VersionStatus,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// When it was registered.
    pub created: Timestamp,
    /// When it last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Timestamp>,
    /// Who registered it (RBAC subject).
    pub created_by: String,
    /// Its node in the lineage graph, when recorded there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage_id: Option<String>,
}

/// Where an alias points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AliasRecord {
    /// The version.
    pub version: u64,
    /// Who set it last.
    pub set_by: String,
    /// When.
    pub set_at: Timestamp,
}

/// A model to create.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewModel {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Changes to a model: fields left `None`/empty are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelPatch {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// Tags to set (added or replaced).
    #[serde(default)]
    pub set_tags: BTreeMap<String, String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
}

/// A version to register.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewVersion {
    /// Source URI.
    pub source_uri: String,
    /// Digest, `sha256:<64 hex>`.
    #[serde(default)]
    pub digest: Option<String>,
    /// Run link (set by cairn from a pod's identity, never taken from a user's request body).
    #[serde(skip)]
    pub run: Option<RunLink>,
    /// Metrics.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Params.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Status (default `Ready`).
    #[serde(default)]
    pub status: Option<VersionStatus>,
}

/// Changes to a version: fields left `None`/empty are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionPatch {
    /// New description.
    #[serde(default)]
    pub description: Option<String>,
    /// New status.
    #[serde(default)]
    pub status: Option<VersionStatus>,
    /// Tags to set.
    #[serde(default)]
    pub set_tags: BTreeMap<String, String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove_tags: Vec<String>,
}

/// Which models [`list_models`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelFilter {
    /// Only names containing this.
    #[serde(default)]
    pub name_contains: Option<String>,
    /// Only models carrying all these tags with these values.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl ModelFilter {
    /// Whether `model` passes. Pure.
    pub fn matches(&self, model: &RegisteredModel) -> bool {
        self.name_contains
            .as_deref()
            .is_none_or(|s| model.name.contains(s))
            && self
                .tags
                .iter()
                .all(|(k, v)| model.tags.get(k).is_some_and(|have| have == v))
    }
}

/// What [`delete_model`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deleted {
    /// Versions removed.
    pub versions: Vec<u64>,
    /// Aliases removed.
    pub aliases: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Pure validation.

fn model_field(model: &str, field: &str) -> String {
    format!("model {model:?}: {field}")
}

/// A model name: 1 to 63 lowercase letters, digits, `-`, `_` or `.`, starting and ending with a
/// letter or digit (DNS-label-like, so it is usable in URLs, RBAC objects and Kubernetes names).
pub fn validate_model_name(name: &str) -> Result<(), RegistryError> {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
        && name.chars().next().is_some_and(alnum)
        && name.chars().last().is_some_and(alnum);
    if ok {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            "model name",
            format!(
                "1 to {MAX_NAME_LEN} lowercase letters, digits, '-', '_' or '.', starting and \
                 ending with a letter or digit; got {name:?}"
            ),
        ))
    }
}

/// An alias, by MLflow's rules (see the module docs) and not all digits.
pub fn validate_alias(model: &str, alias: &str) -> Result<(), RegistryError> {
    let field = model_field(model, "alias");
    let expected =
        |why: &str| RegistryError::invalid(field.clone(), format!("{why}; got {alias:?}"));
    if alias.is_empty() || alias.len() > MAX_ALIAS_LEN {
        return Err(expected(&format!("1 to {MAX_ALIAS_LEN} characters")));
    }
    if !alias
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(expected("only letters, digits, '_' and '-'"));
    }
    if alias.eq_ignore_ascii_case("latest") {
        return Err(expected("not 'latest' (reserved for the newest version)"));
    }
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if digits(alias) {
        return Err(expected("not a number (numbers are version references)"));
    }
    if let Some(rest) = alias.strip_prefix(['v', 'V'])
        && digits(rest)
    {
        return Err(expected(
            "not v<number> (reserved for version references, as in MLflow)",
        ));
    }
    Ok(())
}

/// A digest: `sha256:` and 64 lowercase hex digits.
pub fn validate_digest(model: &str, digest: &str) -> Result<(), RegistryError> {
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    });
    if ok {
        Ok(())
    } else {
        Err(RegistryError::invalid(
            model_field(model, "digest"),
            format!("sha256:<64 lowercase hex digits>; got {digest:?}"),
        ))
    }
}

fn validate_text(model: &str, field: &str, text: &str, max: usize) -> Result<(), RegistryError> {
    if text.len() > max {
        return Err(RegistryError::invalid(
            model_field(model, field),
            format!("at most {max} bytes; got {}", text.len()),
        ));
    }
    Ok(())
}

fn validate_map<V>(
    model: &str,
    field: &str,
    map: &BTreeMap<String, V>,
    value_ok: impl Fn(&V) -> Result<(), String>,
) -> Result<(), RegistryError> {
    if map.len() > MAX_ENTRIES {
        return Err(RegistryError::invalid(
            model_field(model, field),
            format!("at most {MAX_ENTRIES} entries; got {}", map.len()),
        ));
    }
    for (k, v) in map {
        if k.is_empty() || k.len() > MAX_KEY_LEN || k.chars().any(char::is_control) {
            return Err(RegistryError::invalid(
                model_field(model, field),
                format!("keys of 1 to {MAX_KEY_LEN} printable characters; got {k:?}"),
            ));
        }
        value_ok(v).map_err(|why| {
            RegistryError::invalid(model_field(model, &format!("{field}.{k}")), why)
        })?;
    }
    Ok(())
}

fn string_value(v: &impl AsRef<str>) -> Result<(), String> {
    let v = v.as_ref();
    if v.len() > MAX_VALUE_LEN {
        Err(format!("at most {MAX_VALUE_LEN} bytes; got {}", v.len()))
    } else {
        Ok(())
    }
}

fn finite(v: &f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("a finite number; got {v}"))
    }
}

fn validate_actor(model: &str, actor: &str) -> Result<(), RegistryError> {
    if actor.is_empty() || actor.len() > MAX_ACTOR_LEN {
        return Err(RegistryError::invalid(
            model_field(model, "createdBy"),
            format!("a subject of 1 to {MAX_ACTOR_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Validates a model to create. Pure.
pub fn validate_new_model(new: &NewModel) -> Result<(), RegistryError> {
    validate_model_name(&new.name)?;
    validate_text(
        &new.name,
        "description",
        &new.description,
        MAX_DESCRIPTION_LEN,
    )?;
    validate_map(&new.name, "tags", &new.tags, string_value)
}

/// Validates a version to register under `model`. Pure.
pub fn validate_new_version(model: &str, new: &NewVersion) -> Result<(), RegistryError> {
    validate_model_name(model)?;
    if new.source_uri.trim().is_empty()
        || new.source_uri.len() > MAX_URI_LEN
        || new.source_uri.chars().any(char::is_control)
    {
        return Err(RegistryError::invalid(
            model_field(model, "sourceUri"),
            format!(
                "a URI of 1 to {MAX_URI_LEN} printable characters (where the model's files are); \
                 got {:?}",
                new.source_uri
            ),
        ));
    }
    if let Some(d) = &new.digest {
        validate_digest(model, d)?;
    }
    validate_map(model, "metrics", &new.metrics, finite)?;
    validate_map(model, "params", &new.params, string_value)?;
    validate_map(model, "tags", &new.tags, string_value)?;
    validate_text(model, "description", &new.description, MAX_DESCRIPTION_LEN)
}

fn apply_tags(
    model: &str,
    tags: &mut BTreeMap<String, String>,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<(), RegistryError> {
    validate_map(model, "setTags", set, string_value)?;
    for k in remove {
        tags.remove(k);
    }
    tags.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
    validate_map(model, "tags", tags, string_value)
}

/// The key of a version record. Pure.
pub fn version_key(model: &str, version: u64) -> String {
    format!("{model}/{version:010}")
}

/// The key of an alias record. Pure.
pub fn alias_key(model: &str, alias: &str) -> String {
    format!("{model}/{alias}")
}

fn version_what(model: &str, version: u64) -> String {
    format!("version {version} of model {model:?}")
}

fn model_what(model: &str) -> String {
    format!("model {model:?}")
}

fn alias_what(model: &str, alias: &str) -> String {
    format!("alias {alias:?} of model {model:?}")
}

// ---------------------------------------------------------------------------------------------
// Transactions.

type Def = TableDefinition<'static, &'static str, &'static [u8]>;

/// Read access to the registry tables, for any [`ReadTables`] (either transaction kind), so every
/// read function works inside a write transaction too (and sees its writes); a table a read
/// transaction does not find yet reads as empty.
pub trait Reader {
    /// One raw record.
    fn raw_get(&self, def: Def, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The raw records whose key starts with `prefix`, in key order (all with `""`).
    fn raw_prefix(&self, def: Def, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

fn table_missing(e: &redb::TableError) -> bool {
    matches!(e, redb::TableError::TableDoesNotExist(_))
}

fn scan(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    for entry in table.range(prefix..)? {
        let (k, v) = entry?;
        let key = k.value();
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key.to_owned(), v.value().to_vec()));
    }
    Ok(out)
}

impl<T: ReadTables> Reader for T {
    fn raw_get(&self, def: Def, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.read_table(def) {
            Ok(t) => Ok(t.get(key)?.map(|v| v.value().to_vec())),
            Err(e) if table_missing(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn raw_prefix(&self, def: Def, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        match self.read_table(def) {
            Ok(t) => scan(&t, prefix),
            Err(e) if table_missing(&e) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

fn table_name(def: Def) -> String {
    use redb::TableHandle;
    def.name().to_owned()
}

fn decode<V: serde::de::DeserializeOwned>(
    def: Def,
    key: &str,
    bytes: &[u8],
) -> Result<V, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        table: table_name(def),
        key: key.to_owned(),
        source,
    })
}

fn read_one<V: serde::de::DeserializeOwned>(
    txn: &(impl Reader + ?Sized),
    def: Def,
    key: &str,
) -> Result<Option<V>, StoreError> {
    txn.raw_get(def, key)?
        .map(|b| decode(def, key, &b))
        .transpose()
}

fn read_prefix<V: serde::de::DeserializeOwned>(
    txn: &(impl Reader + ?Sized),
    def: Def,
    prefix: &str,
) -> Result<Vec<(String, V)>, StoreError> {
    txn.raw_prefix(def, prefix)?
        .into_iter()
        .map(|(k, b)| decode(def, &k, &b).map(|v| (k, v)))
        .collect()
}

fn write_one<V: Serialize>(
    txn: &WriteTransaction,
    def: Def,
    key: &str,
    value: &V,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
        table: table_name(def),
        key: key.to_owned(),
        source,
    })?;
    let mut t = txn.open_table(def)?;
    t.insert(key, bytes.as_slice())?;
    Ok(())
}

fn remove_one(txn: &WriteTransaction, def: Def, key: &str) -> Result<bool, StoreError> {
    let mut t = txn.open_table(def)?;
    let existed = t.remove(key)?.is_some();
    Ok(existed)
}

/// Creates a model.
pub fn create_model(
    txn: &WriteTransaction,
    new: &NewModel,
    by: &str,
    now: Timestamp,
) -> Result<RegisteredModel, RegistryError> {
    validate_new_model(new)?;
    validate_actor(&new.name, by)?;
    if read_one::<RegisteredModel>(txn, MODELS, &new.name)?.is_some() {
        return Err(RegistryError::AlreadyExists {
            what: model_what(&new.name),
        });
    }
    let model = RegisteredModel {
        name: new.name.clone(),
        description: new.description.clone(),
        tags: new.tags.clone(),
        created: now,
        updated: now,
        created_by: by.to_owned(),
        next_version: 1,
    };
    write_one(txn, MODELS, &model.name, &model)?;
    Ok(model)
}

/// The model `name`, creating it (no description or tags) when missing; `true` when created.
pub fn ensure_model(
    txn: &WriteTransaction,
    name: &str,
    by: &str,
    now: Timestamp,
) -> Result<(RegisteredModel, bool), RegistryError> {
    validate_model_name(name)?;
    match read_one::<RegisteredModel>(txn, MODELS, name)? {
        Some(m) => Ok((m, false)),
        None => {
            let new = NewModel {
                name: name.to_owned(),
                ..Default::default()
            };
            create_model(txn, &new, by, now).map(|m| (m, true))
        }
    }
}

/// One model.
pub fn get_model(
    txn: &(impl Reader + ?Sized),
    name: &str,
) -> Result<RegisteredModel, RegistryError> {
    read_one(txn, MODELS, name)?.ok_or_else(|| RegistryError::NotFound {
        what: model_what(name),
    })
}

/// The models passing `filter`, by name.
pub fn list_models(
    txn: &(impl Reader + ?Sized),
    filter: &ModelFilter,
) -> Result<Vec<RegisteredModel>, RegistryError> {
    Ok(read_prefix::<RegisteredModel>(txn, MODELS, "")?
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| filter.matches(m))
        .collect())
}

/// Changes a model's description and tags.
pub fn update_model(
    txn: &WriteTransaction,
    name: &str,
    patch: &ModelPatch,
    now: Timestamp,
) -> Result<RegisteredModel, RegistryError> {
    let mut model = get_model(txn, name)?;
    if let Some(d) = &patch.description {
        validate_text(name, "description", d, MAX_DESCRIPTION_LEN)?;
        model.description = d.clone();
    }
    apply_tags(name, &mut model.tags, &patch.set_tags, &patch.remove_tags)?;
    model.updated = now;
    write_one(txn, MODELS, name, &model)?;
    Ok(model)
}

/// Deletes a model with its versions and aliases.
pub fn delete_model(txn: &WriteTransaction, name: &str) -> Result<Deleted, RegistryError> {
    get_model(txn, name)?;
    let prefix = format!("{name}/");
    let mut deleted = Deleted::default();
    for (key, v) in read_prefix::<ModelVersion>(txn, MODEL_VERSIONS, &prefix)? {
        remove_one(txn, MODEL_VERSIONS, &key)?;
        deleted.versions.push(v.version);
    }
    for (key, _) in txn.raw_prefix(MODEL_ALIASES, &prefix)? {
        remove_one(txn, MODEL_ALIASES, &key)?;
        deleted.aliases.push(key[prefix.len()..].to_owned());
    }
    remove_one(txn, MODELS, name)?;
    Ok(deleted)
}

/// Registers a version of an existing model: allocates its number from the model's
/// `next_version` and records it in the lineage graph (`lineage::graph::record_model_version`,
/// whose id becomes `lineage_id`), all in this transaction.
pub fn create_version(
    txn: &WriteTransaction,
    model: &str,
    new: &NewVersion,
    by: &str,
    now: Timestamp,
) -> Result<ModelVersion, RegistryError> {
    validate_new_version(model, new)?;
    validate_actor(model, by)?;
    let mut record = get_model(txn, model)?;
    let number = record.next_version.max(1);
    let version = ModelVersion {
        model: model.to_owned(),
        version: number,
        source_uri: new.source_uri.clone(),
        digest: new.digest.clone(),
        run: new.run.clone(),
        metrics: new.metrics.clone(),
        params: new.params.clone(),
        tags: new.tags.clone(),
        status: new.status.unwrap_or_default(),
        description: new.description.clone(),
        created: now,
        updated: None,
        created_by: by.to_owned(),
        lineage_id: None,
    };
    // The version's node in the lineage graph, in this same transaction: a registration is
    // never without its lineage, nor the graph with a version that was rolled back.
    let link = crate::lineage::graph::ModelVersionLink {
        model: model.to_owned(),
        version: number,
        uri: version.source_uri.clone(),
        digest: version.digest.clone(),
        workflow_uid: version.run.as_ref().map(|r| r.workflow_uid.clone()),
        node_id: version.run.as_ref().map(|r| r.node_id.clone()),
        metrics: version.metrics.clone(),
    };
    let version = ModelVersion {
        lineage_id: Some(crate::lineage::graph::record_model_version(txn, &link)?),
        ..version
    };
    record.next_version = number.checked_add(1).ok_or_else(|| {
        RegistryError::invalid(
            model_field(model, "nextVersion"),
            "a version number below 2^64",
        )
    })?;
    record.updated = now;
    write_one(txn, MODELS, model, &record)?;
    write_one(txn, MODEL_VERSIONS, &version_key(model, number), &version)?;
    Ok(version)
}

/// Registers a version, creating the model first when it does not exist (as MLflow's
/// `log_model(registered_model_name=...)` does): what the API and the executor route call.
pub fn register_version(
    txn: &WriteTransaction,
    model: &str,
    new: &NewVersion,
    by: &str,
    now: Timestamp,
) -> Result<ModelVersion, RegistryError> {
    validate_new_version(model, new)?;
    ensure_model(txn, model, by, now)?;
    create_version(txn, model, new, by, now)
}

/// Sets the lineage id of a version (after the caller recorded it in the graph).
pub fn set_lineage_id(
    txn: &WriteTransaction,
    model: &str,
    version: u64,
    lineage_id: &str,
) -> Result<ModelVersion, RegistryError> {
    let mut v = get_version(txn, model, version)?;
    v.lineage_id = Some(lineage_id.to_owned());
    write_one(txn, MODEL_VERSIONS, &version_key(model, version), &v)?;
    Ok(v)
}

/// One version.
pub fn get_version(
    txn: &(impl Reader + ?Sized),
    model: &str,
    version: u64,
) -> Result<ModelVersion, RegistryError> {
    match read_one(txn, MODEL_VERSIONS, &version_key(model, version))? {
        Some(v) => Ok(v),
        None => {
            // Say which is missing: the model or the version.
            get_model(txn, model)?;
            Err(RegistryError::NotFound {
                what: version_what(model, version),
            })
        }
    }
}

/// A model's versions, oldest first.
pub fn list_versions(
    txn: &(impl Reader + ?Sized),
    model: &str,
) -> Result<Vec<ModelVersion>, RegistryError> {
    get_model(txn, model)?;
    Ok(
        read_prefix::<ModelVersion>(txn, MODEL_VERSIONS, &format!("{model}/"))?
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    )
}

/// The newest version, if any.
pub fn latest_version(
    txn: &(impl Reader + ?Sized),
    model: &str,
) -> Result<Option<ModelVersion>, RegistryError> {
    Ok(list_versions(txn, model)?.pop())
}

/// Changes a version's description, status and tags.
pub fn update_version(
    txn: &WriteTransaction,
    model: &str,
    version: u64,
    patch: &VersionPatch,
    now: Timestamp,
) -> Result<ModelVersion, RegistryError> {
    let mut v = get_version(txn, model, version)?;
    if let Some(d) = &patch.description {
        validate_text(model, "description", d, MAX_DESCRIPTION_LEN)?;
        v.description = d.clone();
    }
    if let Some(s) = patch.status {
        v.status = s;
    }
    apply_tags(model, &mut v.tags, &patch.set_tags, &patch.remove_tags)?;
    v.updated = Some(now);
    write_one(txn, MODEL_VERSIONS, &version_key(model, version), &v)?;
    Ok(v)
}

/// Deletes a version and the aliases pointing at it; returns those aliases.
pub fn delete_version(
    txn: &WriteTransaction,
    model: &str,
    version: u64,
) -> Result<Vec<String>, RegistryError> {
    get_version(txn, model, version)?;
    remove_one(txn, MODEL_VERSIONS, &version_key(model, version))?;
    let mut removed = Vec::new();
    for (alias, record) in list_aliases(txn, model)? {
        if record.version == version {
            remove_one(txn, MODEL_ALIASES, &alias_key(model, &alias))?;
            removed.push(alias);
        }
    }
    Ok(removed)
}

/// Points `alias` at `version` (which must exist); returns the previous record, if any.
pub fn set_alias(
    txn: &WriteTransaction,
    model: &str,
    alias: &str,
    version: u64,
    by: &str,
    now: Timestamp,
) -> Result<Option<AliasRecord>, RegistryError> {
    validate_alias(model, alias)?;
    validate_actor(model, by)?;
    get_version(txn, model, version)?;
    let key = alias_key(model, alias);
    let previous = read_one::<AliasRecord>(txn, MODEL_ALIASES, &key)?;
    let record = AliasRecord {
        version,
        set_by: by.to_owned(),
        set_at: now,
    };
    write_one(txn, MODEL_ALIASES, &key, &record)?;
    Ok(previous)
}

/// Removes an alias; returns the record it had.
pub fn delete_alias(
    txn: &WriteTransaction,
    model: &str,
    alias: &str,
) -> Result<AliasRecord, RegistryError> {
    let record = get_alias(txn, model, alias)?;
    remove_one(txn, MODEL_ALIASES, &alias_key(model, alias))?;
    Ok(record)
}

/// An alias's record.
pub fn get_alias(
    txn: &(impl Reader + ?Sized),
    model: &str,
    alias: &str,
) -> Result<AliasRecord, RegistryError> {
    validate_alias(model, alias)?;
    match read_one(txn, MODEL_ALIASES, &alias_key(model, alias))? {
        Some(r) => Ok(r),
        None => {
            get_model(txn, model)?;
            Err(RegistryError::NotFound {
                what: alias_what(model, alias),
            })
        }
    }
}

/// The version an alias points at, with the alias record.
pub fn get_by_alias(
    txn: &(impl Reader + ?Sized),
    model: &str,
    alias: &str,
) -> Result<(AliasRecord, ModelVersion), RegistryError> {
    let record = get_alias(txn, model, alias)?;
    let version = get_version(txn, model, record.version)?;
    Ok((record, version))
}

/// A model's aliases, by name.
pub fn list_aliases(
    txn: &(impl Reader + ?Sized),
    model: &str,
) -> Result<Vec<(String, AliasRecord)>, RegistryError> {
    let prefix = format!("{model}/");
    Ok(read_prefix::<AliasRecord>(txn, MODEL_ALIASES, &prefix)?
        .into_iter()
        .map(|(k, r)| (k[prefix.len()..].to_owned(), r))
        .collect())
}

/// The aliases of each version of `model` (version -> alias names). Pure over
/// [`list_aliases`]' answer.
pub fn aliases_by_version(aliases: &[(String, AliasRecord)]) -> BTreeMap<u64, Vec<String>> {
    let mut out: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (name, r) in aliases {
        out.entry(r.version).or_default().push(name.clone());
    }
    out
}
