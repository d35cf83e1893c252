//! `/api/v1/models/...`: the model registry ([`crate::lineage::registry`]) — what
//! `cairn model list|get|create|register|alias|delete` call.
//!
//! RBAC (resource `models`): model and version operations check object `<model>` with `get`,
//! `create` (creating a model, registering a version), `update`, `delete`; setting, moving or
//! deleting an alias checks `promote` on `<model>/<alias>`. Deleting a version or a model that
//! aliases point at removes those aliases, so it also needs `promote` on each of them: `delete`
//! alone cannot take `prod` away. The promotion route (`POST /api/v1/models/{name}/promote`) is
//! `api::promotions`'.
//!
//! Invariants:
//! - Lists only show the models the caller may `get`.
//! - A version's `run` link is never taken from a request body; only the executor route sets
//!   it, from the registering pod's verified identity.
//! - The alias checks that guard a delete run inside the deleting transaction, against the
//!   aliases present at commit time.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, post, put};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Access, ApiError, AppState, RouteSpec};
use crate::auth::Principal;
use crate::auth::rbac::resources::MODELS;
use crate::lineage::registry::{
    self, AliasRecord, ModelFilter, ModelPatch, ModelVersion, NewModel, NewVersion,
    RegisteredModel, RegistryError, VersionPatch,
};
use crate::store::StoreError;

/// This family's rows of the route table.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    const fn rbac(action: &'static str) -> Access {
        Access::Rbac {
            resource: MODELS,
            action,
        }
    }
    fn spec(method: axum::http::Method, path: &'static str, access: Access) -> RouteSpec {
        RouteSpec {
            method,
            path,
            access,
        }
    }
    use axum::http::Method;
    vec![
        (
            spec(Method::GET, "/api/v1/models", rbac("get")),
            get(list_models),
        ),
        (
            spec(Method::POST, "/api/v1/models", rbac("create")),
            post(create_model),
        ),
        (
            spec(Method::GET, "/api/v1/models/{name}", rbac("get")),
            get(get_model),
        ),
        (
            spec(Method::PUT, "/api/v1/models/{name}", rbac("update")),
            put(update_model),
        ),
        (
            spec(Method::DELETE, "/api/v1/models/{name}", rbac("delete")),
            delete(delete_model),
        ),
        (
            spec(Method::GET, "/api/v1/models/{name}/versions", rbac("get")),
            get(list_versions),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/models/{name}/versions",
                rbac("create"),
            ),
            post(register_version),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/models/{name}/versions/{version}",
                rbac("get"),
            ),
            get(get_version),
        ),
        (
            spec(
                Method::PUT,
                "/api/v1/models/{name}/versions/{version}",
                rbac("update"),
            ),
            put(update_version),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/models/{name}/versions/{version}",
                rbac("delete"),
            ),
            delete(delete_version),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/models/{name}/aliases/{alias}",
                rbac("get"),
            ),
            get(get_alias),
        ),
        (
            spec(
                Method::PUT,
                "/api/v1/models/{name}/aliases/{alias}",
                rbac("promote"),
            ),
            put(set_alias),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/models/{name}/aliases/{alias}",
                rbac("promote"),
            ),
            delete(delete_alias),
        ),
    ]
}

/// A registry error as the API answers it.
pub fn api_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::NotFound { .. } => ApiError::NotFound(e.to_string()),
        RegistryError::AlreadyExists { .. } => ApiError::Conflict(e.to_string()),
        RegistryError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
        RegistryError::Lineage(crate::lineage::graph::GraphError::Invalid { .. }) => {
            ApiError::BadRequest(e.to_string())
        }
        RegistryError::Lineage(_) | RegistryError::Store(_) => ApiError::Internal(e.to_string()),
    }
}

/// Errors of a write closure: the registry's, or an alias the caller may not remove.
#[derive(Debug)]
enum TxnError {
    Registry(RegistryError),
    Forbidden(String),
}

impl From<StoreError> for TxnError {
    fn from(e: StoreError) -> Self {
        Self::Registry(e.into())
    }
}

impl From<RegistryError> for TxnError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(e)
    }
}

impl From<TxnError> for ApiError {
    fn from(e: TxnError) -> Self {
        match e {
            TxnError::Registry(e) => api_error(e),
            TxnError::Forbidden(object) => ApiError::Forbidden {
                resource: MODELS,
                action: "promote",
                object,
            },
        }
    }
}

fn authorize(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    object: String,
) -> Result<(), ApiError> {
    if state.auth().authorize(principal, MODELS, action, &object) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            resource: MODELS,
            action,
            object,
        })
    }
}

fn read<T>(
    state: &AppState,
    f: impl FnOnce(&redb::ReadTransaction) -> Result<T, RegistryError>,
) -> Result<T, ApiError> {
    state.auth().store().read(f).map_err(api_error)
}

/// `{version}` as a number.
fn parse_version(model: &str, raw: &str) -> Result<u64, ApiError> {
    raw.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "model {model:?}: version: expected a positive integer, got {raw:?}"
        ))
    })
}

/// A model with its aliases and newest version number.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelView {
    /// The record.
    #[serde(flatten)]
    pub model: RegisteredModel,
    /// Alias -> version.
    pub aliases: BTreeMap<String, u64>,
    /// The newest existing version.
    pub latest_version: Option<u64>,
}

/// A version with the aliases pointing at it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// The record.
    #[serde(flatten)]
    pub version: ModelVersion,
    /// Aliases pointing at it.
    pub aliases: Vec<String>,
}

fn model_view(
    txn: &redb::ReadTransaction,
    model: RegisteredModel,
) -> Result<ModelView, RegistryError> {
    let aliases = registry::list_aliases(txn, &model.name)?
        .into_iter()
        .map(|(a, r)| (a, r.version))
        .collect();
    let latest_version = registry::latest_version(txn, &model.name)?.map(|v| v.version);
    Ok(ModelView {
        model,
        aliases,
        latest_version,
    })
}

fn version_view(aliases: &[(String, AliasRecord)], version: ModelVersion) -> VersionView {
    let names = aliases
        .iter()
        .filter(|(_, r)| r.version == version.version)
        .map(|(a, _)| a.clone())
        .collect();
    VersionView {
        version,
        aliases: names,
    }
}

/// `?nameContains=&tag=k=v`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    /// Only names containing this.
    pub name_contains: Option<String>,
    /// Only models with this tag, `KEY=VALUE`.
    pub tag: Option<String>,
}

/// The models the caller may `get`.
pub async fn list_models(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let mut filter = ModelFilter {
        name_contains: q.name_contains,
        ..Default::default()
    };
    if let Some(tag) = &q.tag {
        let (k, v) = tag
            .split_once('=')
            .ok_or_else(|| ApiError::BadRequest(format!("tag: expected KEY=VALUE, got {tag:?}")))?;
        filter.tags.insert(k.to_owned(), v.to_owned());
    }
    let items = read(&state, |txn| {
        registry::list_models(txn, &filter)?
            .into_iter()
            .filter(|m| state.auth().authorize(&principal, MODELS, "get", &m.name))
            .map(|m| model_view(txn, m))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(Json(json!({ "items": items })))
}

/// Creates a model (`create` on its name).
pub async fn create_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Json(new): Json<NewModel>,
) -> Result<(StatusCode, Json<RegisteredModel>), ApiError> {
    registry::validate_new_model(&new).map_err(api_error)?;
    authorize(&state, &principal, "create", new.name.clone())?;
    let by = principal.subject.clone();
    let now = Timestamp::now();
    let model = state
        .auth()
        .store()
        .write(move |txn| registry::create_model(txn, &new, &by, now))
        .await
        .map_err(api_error)?;
    tracing::info!(model = %model.name, by = %model.created_by, "model created");
    Ok((StatusCode::CREATED, Json(model)))
}

/// One model with its aliases.
pub async fn get_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<ModelView>, ApiError> {
    authorize(&state, &principal, "get", name.clone())?;
    let view = read(&state, |txn| {
        let model = registry::get_model(txn, &name)?;
        model_view(txn, model)
    })?;
    Ok(Json(view))
}

/// Changes a model's description and tags.
pub async fn update_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(patch): Json<ModelPatch>,
) -> Result<Json<RegisteredModel>, ApiError> {
    authorize(&state, &principal, "update", name.clone())?;
    let now = Timestamp::now();
    let model = state
        .auth()
        .store()
        .write(move |txn| registry::update_model(txn, &name, &patch, now))
        .await
        .map_err(api_error)?;
    Ok(Json(model))
}

/// Refuses (inside the transaction) when an alias of `model` that `doomed` selects is one the
/// caller may not `promote`.
fn check_aliases(
    state: &AppState,
    principal: &Principal,
    txn: &redb::WriteTransaction,
    model: &str,
    doomed: impl Fn(&AliasRecord) -> bool,
) -> Result<(), TxnError> {
    for (alias, record) in registry::list_aliases(txn, model)? {
        let object = registry::alias_key(model, &alias);
        if doomed(&record)
            && !state
                .auth()
                .authorize(principal, MODELS, "promote", &object)
        {
            return Err(TxnError::Forbidden(object));
        }
    }
    Ok(())
}

/// Deletes a model, its versions and its aliases.
pub async fn delete_model(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &principal, "delete", name.clone())?;
    let (st, who, model) = (state.clone(), principal.clone(), name.clone());
    let deleted = state
        .auth()
        .store()
        .write(move |txn| -> Result<_, TxnError> {
            check_aliases(&st, &who, txn, &model, |_| true)?;
            Ok(registry::delete_model(txn, &model)?)
        })
        .await?;
    tracing::info!(model = %name, by = %principal.subject, versions = deleted.versions.len(), aliases = deleted.aliases.len(), "model deleted");
    Ok(Json(json!({ "model": name, "deleted": deleted })))
}

/// A model's versions, oldest first.
pub async fn list_versions(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &principal, "get", name.clone())?;
    let items = read(&state, |txn| {
        let aliases = registry::list_aliases(txn, &name)?;
        Ok(registry::list_versions(txn, &name)?
            .into_iter()
            .map(|v| version_view(&aliases, v))
            .collect::<Vec<_>>())
    })?;
    Ok(Json(json!({ "items": items })))
}

/// Registers a version (`create` on the model), creating the model when it does not exist.
pub async fn register_version(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Json(new): Json<NewVersion>,
) -> Result<(StatusCode, Json<ModelVersion>), ApiError> {
    authorize(&state, &principal, "create", name.clone())?;
    registry::validate_new_version(&name, &new).map_err(api_error)?;
    let by = principal.subject.clone();
    let now = Timestamp::now();
    let model = name.clone();
    let version = state
        .auth()
        .store()
        .write(move |txn| registry::register_version(txn, &model, &new, &by, now))
        .await
        .map_err(api_error)?;
    tracing::info!(model = %name, version = version.version, by = %version.created_by, "model version registered");
    Ok((StatusCode::CREATED, Json(version)))
}

/// One version.
pub async fn get_version(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    authorize(&state, &principal, "get", name.clone())?;
    let version = parse_version(&name, &version)?;
    let view = read(&state, |txn| {
        let v = registry::get_version(txn, &name, version)?;
        Ok(version_view(&registry::list_aliases(txn, &name)?, v))
    })?;
    Ok(Json(view))
}

/// Changes a version's description, status and tags.
pub async fn update_version(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
    Json(patch): Json<VersionPatch>,
) -> Result<Json<ModelVersion>, ApiError> {
    authorize(&state, &principal, "update", name.clone())?;
    let version = parse_version(&name, &version)?;
    let now = Timestamp::now();
    let updated = state
        .auth()
        .store()
        .write(move |txn| registry::update_version(txn, &name, version, &patch, now))
        .await
        .map_err(api_error)?;
    Ok(Json(updated))
}

/// Deletes a version and the aliases pointing at it.
pub async fn delete_version(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &principal, "delete", name.clone())?;
    let version = parse_version(&name, &version)?;
    let (st, who, model) = (state.clone(), principal.clone(), name.clone());
    let aliases = state
        .auth()
        .store()
        .write(move |txn| -> Result<_, TxnError> {
            check_aliases(&st, &who, txn, &model, |r| r.version == version)?;
            Ok(registry::delete_version(txn, &model, version)?)
        })
        .await?;
    tracing::info!(model = %name, version, by = %principal.subject, "model version deleted");
    Ok(Json(
        json!({ "model": name, "version": version, "deletedAliases": aliases }),
    ))
}

/// An alias: where it points, with that version.
pub async fn get_alias(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &principal, "get", name.clone())?;
    let (record, version) = read(&state, |txn| registry::get_by_alias(txn, &name, &alias))?;
    Ok(Json(alias_json(&name, &alias, &record, Some(&version))))
}

fn alias_json(
    model: &str,
    alias: &str,
    record: &AliasRecord,
    version: Option<&ModelVersion>,
) -> Value {
    let mut out = json!({
        "model": model,
        "alias": alias,
        "version": record.version,
        "setBy": record.set_by,
        "setAt": record.set_at,
    });
    if let Some(v) = version {
        out["modelVersion"] = json!(v);
    }
    out
}

/// `PUT .../aliases/{alias}` body.
#[derive(Debug, Deserialize)]
pub struct AliasBody {
    /// The version the alias points at.
    pub version: u64,
}

/// Sets or moves an alias (`promote` on `<model>/<alias>`).
pub async fn set_alias(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, alias)): Path<(String, String)>,
    Json(body): Json<AliasBody>,
) -> Result<Json<Value>, ApiError> {
    registry::validate_alias(&name, &alias).map_err(api_error)?;
    authorize(
        &state,
        &principal,
        "promote",
        registry::alias_key(&name, &alias),
    )?;
    let by = principal.subject.clone();
    let now = Timestamp::now();
    let (model, a) = (name.clone(), alias.clone());
    let previous = state
        .auth()
        .store()
        .write(move |txn| registry::set_alias(txn, &model, &a, body.version, &by, now))
        .await
        .map_err(api_error)?;
    tracing::info!(model = %name, alias = %alias, version = body.version, previous = previous.as_ref().map(|p| p.version), by = %principal.subject, "model alias set");
    let record = AliasRecord {
        version: body.version,
        set_by: principal.subject.clone(),
        set_at: now,
    };
    let mut out = alias_json(&name, &alias, &record, None);
    out["previousVersion"] = json!(previous.map(|p| p.version));
    Ok(Json(out))
}

/// Removes an alias (`promote` on `<model>/<alias>`).
pub async fn delete_alias(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    registry::validate_alias(&name, &alias).map_err(api_error)?;
    authorize(
        &state,
        &principal,
        "promote",
        registry::alias_key(&name, &alias),
    )?;
    let (model, a) = (name.clone(), alias.clone());
    let record = state
        .auth()
        .store()
        .write(move |txn| registry::delete_alias(txn, &model, &a))
        .await
        .map_err(api_error)?;
    tracing::info!(model = %name, alias = %alias, version = record.version, by = %principal.subject, "model alias deleted");
    Ok(Json(alias_json(&name, &alias, &record, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_as_positive_integers() {
        assert_eq!(parse_version("m", "3").expect("3"), 3);
        for bad in ["0", "-1", "x", "", "1.5"] {
            let err = parse_version("m", bad).expect_err(bad).to_string();
            assert!(
                err.starts_with("model \"m\": version: expected a positive integer"),
                "{err}"
            );
        }
    }

    #[test]
    fn registry_errors_map_to_statuses() {
        use axum::response::IntoResponse;
        for (e, status) in [
            (
                RegistryError::NotFound { what: "x".into() },
                StatusCode::NOT_FOUND,
            ),
            (
                RegistryError::AlreadyExists { what: "x".into() },
                StatusCode::CONFLICT,
            ),
            (
                RegistryError::Invalid {
                    field: "f".into(),
                    expected: "e".into(),
                },
                StatusCode::BAD_REQUEST,
            ),
            (
                RegistryError::Store(StoreError::WriterStopped),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ] {
            assert_eq!(api_error(e).into_response().status(), status);
        }
        let forbidden: ApiError = TxnError::Forbidden("m/prod".into()).into();
        assert_eq!(
            forbidden.to_string(),
            "permission denied: promote on models m/prod"
        );
    }
}
