//! `/api/v1/applications` and `/api/webhook`: Argo CD's Application API over the cluster.
//!
//! Reads go through `k8s::objects` (typed kinds that keep every unknown field, so the JSON
//! answered is the object as stored). The RBAC object is `rbac::application_object`:
//! `<project>/<name>` in the control namespace, `<project>/<namespace>/<name>` elsewhere. The
//! gate checks that the caller may do the route's action on *some* object; every handler then
//! checks the exact object (and, when an update moves an app to another project, both).
//!
//! Actions follow Argo CD's object model, so the GitOps controller needs no private channel:
//! - sync and rollback write `.operation` (`{sync: {revision, prune, dryRun, resources,
//!   syncOptions, source}, initiatedBy: {username}}`) with the object's resourceVersion as a
//!   precondition; a running operation refuses a new one ("another operation is already in
//!   progress"), and rollback is refused while automated sync is on, as Argo CD does;
//! - refresh sets the `argocd.argoproj.io/refresh` annotation (`normal` / `hard`), or calls the
//!   controller's handle when one is wired ([`GitopsState::refresher`]);
//! - delete with `cascade` (default) adds `resources-finalizer.argocd.argoproj.io` (or its
//!   `/background` form) before deleting, so the controller prunes the app's resources first;
//!   `cascade=false` removes it so only the Application goes.
//!
//! Invariants: Secret values are masked (`gitops::diff::mask_secret`) in every live object this
//! module answers; the webhook never logs its payload, only the provider and why it was refused.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::auth::rbac::application_object;
use crate::gitops::cluster::{Clusters, resolve};
use crate::gitops::project::{self, Destination};
use crate::gitops::types::{AppProject, Application};
use crate::gitops::webhook::{
    self, AnnotationRefresher, AppRefresher, RefreshKind, WebhookConfig, WebhookError,
};
use crate::k8s::objects;

/// The webhook's path (the gate skips CSRF for it: it carries no cookie and is authenticated
/// by the provider's signature).
pub const WEBHOOK_PATH: &str = "/api/webhook";
/// Argo CD's cascade-delete finalizer (foreground).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// Argo CD's cascade-delete finalizer with background propagation.
pub const RESOURCES_FINALIZER_BACKGROUND: &str =
    "resources-finalizer.argocd.argoproj.io/background";

/// GitOps wiring of the API: the webhook secrets and the controller's refresh handle.
#[derive(Clone, Default)]
pub struct GitopsState {
    /// `[webhook]` of the configuration.
    pub webhook: WebhookConfig,
    /// The controller's refresh handle; without one, refreshes go through the annotation.
    pub refresher: Option<Arc<dyn AppRefresher>>,
    /// The controller's diff (it owns rendering); without one, `/diff` answers 503.
    pub differ: Option<Arc<dyn AppDiffer>>,
    /// Argo CD's `application.sync.requireOverridePrivilegeForRevisionSync` (default off, as in
    /// Argo CD): a sync to a revision other than `targetRevision` also needs `override`.
    pub require_override_for_revision_sync: bool,
    /// Namespaces besides the control namespace whose Applications the API serves and the
    /// webhook refreshes (Argo CD's "applications in any namespace").
    pub namespaces: Vec<String>,
}

/// One resource of an app's diff, as `cairn app diff` prints it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffItem {
    /// API group (empty for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty when cluster-scoped).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Whether live differs from desired (missing and extra resources count).
    pub modified: bool,
    /// Unified diff live → desired after normalization, Secret values masked.
    pub diff: String,
}

/// Computes an Application's per-resource diff: desired (rendered from Git at the target
/// revision) against live, through `gitops::diff`. The GitOps controller implements it, since
/// it owns fetching and rendering; the API only serves the answer.
pub trait AppDiffer: Send + Sync {
    /// The diff of every resource of `app`; `hard` re-renders instead of using the cache.
    fn diff<'a>(
        &'a self,
        app: &'a Application,
        hard: bool,
    ) -> futures::future::BoxFuture<'a, Result<Vec<DiffItem>, String>>;
}

/// Query parameters of the Application routes.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppQuery {
    /// Only Applications of this project.
    project: Option<String>,
    /// The namespace the Application lives in (default: the control namespace).
    app_namespace: Option<String>,
    /// Create: update the existing Application instead of failing (Argo CD's `upsert`).
    upsert: Option<bool>,
    /// Create/update: check the project and destination first (default true).
    validate: Option<bool>,
    /// Delete: also delete the Application's resources (default true).
    cascade: Option<bool>,
    /// Delete: `foreground` (default) or `background`.
    propagation_policy: Option<String>,
    /// Refresh: `normal` (default) or `hard`.
    refresh: Option<String>,
}

fn project(app: &Application) -> &str {
    project::project_name(app)
}

/// The RBAC object for an Application.
fn rbac_object(control_ns: &str, app: &Application) -> String {
    let ns = app.namespace();
    let outside = ns.as_deref().filter(|ns| *ns != control_ns);
    application_object(project(app), outside, &app.name_any())
}

/// Checks `action` on the exact Application.
fn require(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    app: &Application,
) -> Result<(), ApiError> {
    let object = rbac_object(state.namespace(), app);
    if state
        .auth()
        .authorize(principal, "applications", action, &object)
    {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            resource: "applications",
            action,
            object,
        })
    }
}

/// The namespace a request addresses: the control namespace, or one of the namespaces enabled
/// for Applications (Argo CD's `application.namespaces`); any other is refused.
fn app_ns<'a>(state: &'a AppState, q: &'a AppQuery) -> Result<&'a str, ApiError> {
    allowed_ns(state, q.app_namespace.as_deref())
}

fn allowed_ns<'a>(state: &'a AppState, wanted: Option<&'a str>) -> Result<&'a str, ApiError> {
    let ns = wanted.unwrap_or(state.namespace());
    let enabled = ns == state.namespace()
        || state
            .gitops()
            .is_some_and(|g| g.namespaces.iter().any(|n| n == ns));
    if enabled {
        Ok(ns)
    } else {
        Err(ApiError::BadRequest(format!(
            "query `appNamespace`: applications in namespace {ns} are not enabled (expected {} or one of gitops.namespaces)",
            state.namespace()
        )))
    }
}

fn kube_err(what: &str, err: kube::Error) -> ApiError {
    match &err {
        kube::Error::Api(s) if s.code == 404 => ApiError::NotFound(format!("{what}: not found")),
        kube::Error::Api(s) if s.code == 409 => ApiError::BadRequest(format!(
            "{what}: the object was changed concurrently, retry ({})",
            s.message
        )),
        kube::Error::Api(s) if s.code == 400 || s.code == 422 => {
            ApiError::BadRequest(format!("{what}: {}", s.message))
        }
        _ => ApiError::Kube(format!("{what}: {err}")),
    }
}

async fn load(client: &Client, ns: &str, name: &str) -> Result<Application, ApiError> {
    objects::get_application(client, ns, name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("application {ns}/{name} not found")))
}

/// Loads the app and checks `action` on it (403 after the read: the project decides).
async fn load_checked(
    state: &AppState,
    principal: &Principal,
    action: &'static str,
    name: &str,
    q: &AppQuery,
) -> Result<(Client, Application), ApiError> {
    let client = state.kube()?;
    let app = load(&client, app_ns(state, q)?, name).await?;
    require(state, principal, action, &app)?;
    Ok((client, app))
}

/// Lists the Applications the caller may `get`.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Value>, ApiError> {
    let ns = app_ns(&state, &q)?;
    let items: Vec<Application> = objects::list_applications(&state.kube()?, ns)
        .await?
        .into_iter()
        .filter(|app| q.project.as_deref().is_none_or(|p| project(app) == p))
        .filter(|app| {
            state.auth().authorize(
                &principal,
                "applications",
                "get",
                &rbac_object(state.namespace(), app),
            )
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// One Application, if the caller may `get` it.
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Application>, ApiError> {
    let (_, app) = load_checked(&state, &principal, "get", &name, &q).await?;
    Ok(Json(app))
}

/// The project and destination checks Argo CD makes when an Application is created or
/// updated: the project must exist (or be the implicit `default`), the destination must resolve
/// to a known cluster, and `check_app` must pass.
async fn validate(state: &AppState, client: &Client, app: &Application) -> Result<(), ApiError> {
    let name = project(app).to_string();
    let projects: Api<AppProject> = Api::namespaced(client.clone(), state.namespace());
    let found = projects
        .get_opt(&name)
        .await
        .map_err(|e| kube_err(&format!("appproject {name}"), e))?;
    let proj = project::resolve(app, found).map_err(|v| ApiError::BadRequest(v.message()))?;
    let dest = app.spec.destination.clone().unwrap_or_default();
    let clusters = Clusters::new(client.clone(), state.namespace())
        .list()
        .await
        .map_err(|e| ApiError::Kube(e.to_string()))?;
    let cluster = resolve(&dest, &clusters).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let resolved: Destination = cluster.destination(dest.namespace.as_deref().unwrap_or(""));
    project::check_app(&proj, app, state.namespace(), &resolved).map_err(|vs| {
        ApiError::BadRequest(
            vs.iter()
                .map(|v| v.message())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// Parses a request body holding an Application manifest (JSON).
fn parse_app(body: Value, ns: &str) -> Result<Application, ApiError> {
    let kind = body
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Application");
    if kind != "Application" {
        return Err(ApiError::BadRequest(format!(
            "body: field `kind`: expected Application, found {kind}"
        )));
    }
    let mut app: Application = serde_json::from_value(body)
        .map_err(|e| ApiError::BadRequest(format!("body: not an Application: {e}")))?;
    if app.metadata.name.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest(
            "body: field `metadata.name`: expected the Application's name".into(),
        ));
    }
    match app.metadata.namespace.as_deref() {
        None | Some("") => app.metadata.namespace = Some(ns.to_string()),
        Some(n) if n == ns => {}
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "body: field `metadata.namespace`: {n} differs from the request's namespace {ns} (use ?appNamespace={n})"
            )));
        }
    }
    // Never let a create or update smuggle in status or an operation.
    app.status = None;
    app.operation = None;
    app.metadata.resource_version = None;
    app.metadata.uid = None;
    app.metadata.managed_fields = None;
    app.metadata.creation_timestamp = None;
    Ok(app)
}

/// Creates an Application (Argo CD's `app create`; `?upsert=true` updates an existing one).
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<AppQuery>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Application>), ApiError> {
    let ns = app_ns(&state, &q)?.to_string();
    let app = parse_app(body, &ns)?;
    require(&state, &principal, "create", &app)?;
    let client = state.kube()?;
    if q.validate.unwrap_or(true) {
        validate(&state, &client, &app).await?;
    }
    let name = app.name_any();
    let api: Api<Application> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &app).await {
        Ok(created) => Ok((StatusCode::CREATED, Json(created))),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = load(&client, &ns, &name).await?;
            if existing.spec == app.spec {
                return Ok((StatusCode::OK, Json(existing)));
            }
            if !q.upsert.unwrap_or(false) {
                return Err(ApiError::BadRequest(format!(
                    "application {ns}/{name}: existing application spec is different, use upsert flag to force update"
                )));
            }
            require(&state, &principal, "update", &existing)?;
            let updated = replace_spec(&api, existing, app).await?;
            Ok((StatusCode::OK, Json(updated)))
        }
        Err(e) => Err(kube_err(&format!("create application {ns}/{name}"), e)),
    }
}

async fn replace_spec(
    api: &Api<Application>,
    mut existing: Application,
    new: Application,
) -> Result<Application, ApiError> {
    let name = existing.name_any();
    existing.spec = new.spec;
    existing.metadata.labels = new.metadata.labels;
    existing.metadata.annotations = new.metadata.annotations;
    if new.metadata.finalizers.is_some() {
        existing.metadata.finalizers = new.metadata.finalizers;
    }
    api.replace(&name, &PostParams::default(), &existing)
        .await
        .map_err(|e| kube_err(&format!("update application {name}"), e))
}

/// Replaces an Application's spec, labels and annotations (`update` on the old object, and on
/// the new one when the project changes).
pub async fn update(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
    Json(body): Json<Value>,
) -> Result<Json<Application>, ApiError> {
    let (client, existing) = load_checked(&state, &principal, "update", &name, &q).await?;
    let ns = app_ns(&state, &q)?.to_string();
    let new = parse_app(body, &ns)?;
    if new.name_any() != name {
        return Err(ApiError::BadRequest(format!(
            "body: field `metadata.name`: {} differs from the path's {name}",
            new.name_any()
        )));
    }
    if project(&new) != project(&existing) {
        require(&state, &principal, "update", &new)?;
    }
    if q.validate.unwrap_or(true) {
        validate(&state, &client, &new).await?;
    }
    let api: Api<Application> = Api::namespaced(client, &ns);
    Ok(Json(replace_spec(&api, existing, new).await?))
}

/// The finalizer list after a delete request's cascade choice.
pub fn cascade_finalizers(current: &[String], cascade: bool, background: bool) -> Vec<String> {
    let mut out: Vec<String> = current
        .iter()
        .filter(|f| *f != RESOURCES_FINALIZER && *f != RESOURCES_FINALIZER_BACKGROUND)
        .cloned()
        .collect();
    if cascade {
        out.push(
            if background {
                RESOURCES_FINALIZER_BACKGROUND
            } else {
                RESOURCES_FINALIZER
            }
            .to_string(),
        );
    }
    out
}

/// Deletes an Application; with `cascade` (default) its resources go first (the controller
/// handles the finalizer), without it only the Application is removed.
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Value>, ApiError> {
    let (client, app) = load_checked(&state, &principal, "delete", &name, &q).await?;
    let background = match q.propagation_policy.as_deref() {
        None | Some("foreground") => false,
        Some("background") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "query `propagationPolicy`: expected foreground or background, found {other}"
            )));
        }
    };
    let cascade = q.cascade.unwrap_or(true);
    let current = app.metadata.finalizers.clone().unwrap_or_default();
    let wanted = cascade_finalizers(&current, cascade, background);
    let api: Api<Application> = Api::namespaced(client, app_ns(&state, &q)?);
    if wanted != current {
        let patch = json!({"metadata": {
            "finalizers": wanted,
            "resourceVersion": app.metadata.resource_version,
        }});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| kube_err(&format!("set finalizers of application {name}"), e))?;
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(Json(json!({}))),
        // Already being deleted: dropping its last finalizer above removed it.
        Err(kube::Error::Api(s)) if s.code == 404 && app.metadata.deletion_timestamp.is_some() => {
            Ok(Json(json!({})))
        }
        Err(e) => Err(kube_err(&format!("delete application {name}"), e)),
    }
}

/// One resource selected for a partial sync.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct SyncResource {
    /// API group (empty for core).
    #[serde(default)]
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace (empty for cluster-scoped or the app's default).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The body of `POST /{name}/sync` (Argo CD's `ApplicationSyncRequest`, the parts cairn runs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncRequest {
    /// Revision to sync to (default: the app's targetRevision).
    pub revision: Option<String>,
    /// Revisions per source, for multi-source apps.
    pub revisions: Option<Vec<String>>,
    /// Delete resources no longer in Git.
    #[serde(default)]
    pub prune: bool,
    /// Plan and dry-run only.
    #[serde(default)]
    pub dry_run: bool,
    /// Only these resources.
    pub resources: Option<Vec<SyncResource>>,
    /// Sync options for this operation (`Replace=true`, …).
    pub sync_options: Option<Vec<String>>,
    /// Sync strategy (`{apply: {force}}` / `{hook: {force}}`), passed through.
    pub strategy: Option<Value>,
    /// Retry strategy for this operation, passed through.
    pub retry_strategy: Option<Value>,
    /// Free-form `{name, value}` info shown with the operation.
    pub infos: Option<Vec<Value>>,
}

/// The `.operation` written for a sync request (pure).
pub fn sync_operation(req: &SyncRequest, username: &str) -> Value {
    let mut sync = json!({ "prune": req.prune });
    if let Some(r) = req.revision.as_ref().filter(|r| !r.is_empty()) {
        sync["revision"] = json!(r);
    }
    if let Some(rs) = &req.revisions {
        sync["revisions"] = json!(rs);
    }
    if req.dry_run {
        sync["dryRun"] = json!(true);
    }
    if let Some(rs) = &req.resources {
        sync["resources"] = json!(rs);
    }
    if let Some(o) = req.sync_options.as_ref().filter(|o| !o.is_empty()) {
        sync["syncOptions"] = json!(o);
    }
    if let Some(s) = &req.strategy {
        sync["syncStrategy"] = s.clone();
    }
    let mut op = json!({"sync": sync, "initiatedBy": {"username": username}});
    if let Some(r) = &req.retry_strategy {
        op["retry"] = r.clone();
    }
    if let Some(i) = &req.infos {
        op["info"] = json!(i);
    }
    op
}

/// Whether the app runs an operation now (a pending `.operation` or a `Running` state).
pub fn operation_in_progress(app: &Application) -> bool {
    app.operation.is_some()
        || app
            .status
            .as_ref()
            .and_then(|s| s.operation_state.as_ref())
            .and_then(|o| o.phase.as_deref())
            .is_some_and(|p| p == "Running" || p == "Terminating")
}

fn automated(app: &Application) -> bool {
    app.spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref())
        .is_some_and(|a| a.enabled.unwrap_or(true))
}

/// The revision a sync request asks for when it differs from the app's `targetRevision`
/// (`HEAD` when unset), as Argo CD compares them; None when it is the target (pure).
pub fn other_revision<'r>(app: &Application, req: &'r SyncRequest) -> Option<&'r str> {
    let rev = req.revision.as_deref().filter(|r| !r.is_empty())?;
    let target = app
        .spec
        .source
        .as_ref()
        .and_then(|s| s.target_revision.as_deref())
        .filter(|t| !t.is_empty())
        .unwrap_or("HEAD");
    (rev != target).then_some(rev)
}

/// Argo CD's refusals before an operation is written (pure): not while the app is being
/// deleted, one operation at a time, and with automated sync on no (non-dry-run) sync to
/// another revision.
pub fn check_sync(app: &Application, req: &SyncRequest) -> Result<(), String> {
    if app.metadata.deletion_timestamp.is_some() {
        return Err("application is deleting".into());
    }
    if operation_in_progress(app) {
        return Err("another operation is already in progress".into());
    }
    if automated(app)
        && !req.dry_run
        && let Some(rev) = other_revision(app, req)
    {
        let target = app
            .spec
            .source
            .as_ref()
            .and_then(|s| s.target_revision.as_deref())
            .unwrap_or("HEAD");
        return Err(format!(
            "Cannot sync to {rev}: auto-sync currently set to {target}"
        ));
    }
    Ok(())
}

async fn write_operation(
    client: Client,
    app: &Application,
    op: Value,
) -> Result<Application, ApiError> {
    let name = app.name_any();
    let ns = app.namespace().unwrap_or_default();
    let api: Api<Application> = Api::namespaced(client, &ns);
    // The resourceVersion makes the patch conditional: a concurrent operation write loses.
    let patch = json!({
        "metadata": {"resourceVersion": app.metadata.resource_version},
        "operation": op,
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_err(&format!("start operation on application {ns}/{name}"), e))
}

/// Starts a sync (`.operation`), as `argocd app sync` does.
pub async fn sync(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
    body: Option<Json<SyncRequest>>,
) -> Result<Json<Application>, ApiError> {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let (client, app) = load_checked(&state, &principal, "sync", &name, &q).await?;
    // Argo CD's `application.sync.requireOverridePrivilegeForRevisionSync`: syncing to another
    // revision than the spec's then needs `override` too.
    if state
        .gitops()
        .is_some_and(|g| g.require_override_for_revision_sync)
        && other_revision(&app, &req).is_some()
    {
        require(&state, &principal, "override", &app)?;
    }
    check_sync(&app, &req).map_err(ApiError::BadRequest)?;
    let op = sync_operation(&req, &principal.subject);
    Ok(Json(write_operation(client, &app, op).await?))
}

/// The body of `POST /{name}/rollback`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollbackRequest {
    /// `.status.history[].id` to return to.
    pub id: i64,
    /// Delete resources not in that revision.
    #[serde(default)]
    pub prune: bool,
    /// Plan only.
    #[serde(default)]
    pub dry_run: bool,
}

/// The `.operation` of a rollback (pure): Argo CD's refusals, then a sync to the history entry's
/// revision(s) and source(s).
pub fn rollback_operation(
    app: &Application,
    req: &RollbackRequest,
    username: &str,
) -> Result<Value, String> {
    if automated(app) {
        return Err("rollback cannot be initiated when auto-sync is enabled".into());
    }
    if operation_in_progress(app) {
        return Err("another operation is already in progress".into());
    }
    let entry = app
        .status
        .as_ref()
        .and_then(|s| s.history.as_ref())
        .and_then(|h| h.iter().find(|e| e.id == Some(req.id)))
        .ok_or_else(|| {
            format!(
                "application {} does not have deployment with id {}",
                app.name_any(),
                req.id
            )
        })?;
    let mut sync = json!({ "prune": req.prune });
    if req.dry_run {
        sync["dryRun"] = json!(true);
    }
    if let Some(r) = &entry.revision {
        sync["revision"] = json!(r);
    }
    if let Some(rs) = &entry.revisions {
        sync["revisions"] = json!(rs);
    }
    if let Some(s) = &entry.source {
        sync["source"] = json!(s);
    }
    if let Some(ss) = &entry.sources {
        sync["sources"] = json!(ss);
    }
    Ok(json!({
        "sync": sync,
        "initiatedBy": {"username": username},
        "info": [{"name": "Rollback", "value": req.id.to_string()}],
    }))
}

/// Rolls back to a history entry (refused while automated sync is on).
pub async fn rollback(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
    Json(req): Json<RollbackRequest>,
) -> Result<Json<Application>, ApiError> {
    let (client, app) = load_checked(&state, &principal, "sync", &name, &q).await?;
    let op = rollback_operation(&app, &req, &principal.subject).map_err(ApiError::BadRequest)?;
    Ok(Json(write_operation(client, &app, op).await?))
}

/// `.status.history`, newest last (as stored).
pub async fn history(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Value>, ApiError> {
    let (_, app) = load_checked(&state, &principal, "get", &name, &q).await?;
    let items = app
        .status
        .as_ref()
        .and_then(|s| s.history.clone())
        .unwrap_or_default();
    Ok(Json(json!({ "items": items })))
}

fn refresher(state: &AppState) -> Result<Arc<dyn AppRefresher>, ApiError> {
    match state.gitops().and_then(|g| g.refresher.clone()) {
        Some(r) => Ok(r),
        None => Ok(AnnotationRefresher::shared(state.kube()?)),
    }
}

/// Requests a refresh (`?refresh=normal|hard`); `get` is enough, as in Argo CD.
pub async fn refresh(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Value>, ApiError> {
    let kind = match q.refresh.as_deref() {
        None => RefreshKind::Normal,
        Some(s) => RefreshKind::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "query `refresh`: expected normal or hard, found {s}"
            ))
        })?,
    };
    let (_, app) = load_checked(&state, &principal, "get", &name, &q).await?;
    let ns = app.namespace().unwrap_or_default();
    refresher(&state)?
        .refresh(&ns, &name, kind)
        .await
        .map_err(|e| ApiError::Kube(e.to_string()))?;
    Ok(Json(json!({"refresh": kind.as_str()})))
}

/// `GET /{name}/diff[?refresh=hard]`: the per-resource diff (`cairn app diff`).
pub async fn diff(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Value>, ApiError> {
    let (_, app) = load_checked(&state, &principal, "get", &name, &q).await?;
    let differ = state
        .gitops()
        .and_then(|g| g.differ.clone())
        .ok_or_else(|| {
            ApiError::Kube(
                "diff needs the GitOps controller, which is not running in this server".into(),
            )
        })?;
    let hard = q.refresh.as_deref() == Some("hard");
    let items = differ
        .diff(&app, hard)
        .await
        .map_err(|e| ApiError::BadRequest(format!("diff of application {name}: {e}")))?;
    Ok(Json(json!({ "items": items })))
}

/// The client of the app's destination cluster.
async fn destination_client(
    state: &AppState,
    client: &Client,
    app: &Application,
) -> Result<Client, ApiError> {
    let dest = app.spec.destination.clone().unwrap_or_default();
    Clusters::new(client.clone(), state.namespace())
        .client_for(&dest)
        .await
        .map(|(_, c)| c)
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// Fetches live objects by (group, version, kind, namespace, name); discovery is done once per
/// group/version. Missing objects are None.
async fn fetch_live(
    client: &Client,
    keys: &[(String, String, String, String, String)],
) -> Result<Vec<Option<Value>>, ApiError> {
    let mut resources: HashMap<
        (String, String, String),
        Option<(kube::discovery::ApiResource, bool)>,
    > = HashMap::new();
    let mut out = Vec::with_capacity(keys.len());
    for (group, version, kind, namespace, name) in keys {
        let gvk_key = (group.clone(), version.clone(), kind.clone());
        if !resources.contains_key(&gvk_key) {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let found = match kube::discovery::pinned_kind(client, &gvk).await {
                Ok((ar, caps)) => Some((ar, caps.scope == kube::discovery::Scope::Namespaced)),
                Err(kube::Error::Api(s)) if s.code == 404 => None,
                Err(e) => return Err(kube_err(&format!("discover {group}/{version} {kind}"), e)),
            };
            resources.insert(gvk_key.clone(), found);
        }
        let Some(Some((ar, namespaced))) = resources.get(&gvk_key) else {
            out.push(None);
            continue;
        };
        let api: Api<DynamicObject> = if *namespaced {
            Api::namespaced_with(client.clone(), namespace, ar)
        } else {
            Api::all_with(client.clone(), ar)
        };
        let obj = api
            .get_opt(name)
            .await
            .map_err(|e| kube_err(&format!("get {kind} {namespace}/{name}"), e))?;
        out.push(match obj {
            Some(o) => {
                Some(serde_json::to_value(o).map_err(|e| ApiError::Internal(e.to_string()))?)
            }
            None => None,
        });
    }
    Ok(out)
}

fn managed_keys(app: &Application) -> Vec<(String, String, String, String, String)> {
    app.status
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .into_iter()
        .flatten()
        .map(|r| {
            let s = |v: &Option<String>| v.clone().unwrap_or_default();
            (
                s(&r.group),
                r.version
                    .clone()
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "v1".into()),
                s(&r.kind),
                s(&r.namespace),
                s(&r.name),
            )
        })
        .collect()
}

fn strip_noise(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
}

/// The live state of every resource in `.status.resources` (Secret values masked).
pub async fn managed_resources(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Value>, ApiError> {
    let (client, app) = load_checked(&state, &principal, "get", &name, &q).await?;
    let dest = destination_client(&state, &client, &app).await?;
    let keys = managed_keys(&app);
    let live = fetch_live(&dest, &keys).await?;
    let status: Vec<_> = app
        .status
        .as_ref()
        .and_then(|s| s.resources.clone())
        .unwrap_or_default();
    let items: Vec<Value> = keys
        .iter()
        .zip(live)
        .zip(status)
        .map(|(((group, version, kind, namespace, name), live), st)| {
            let live = live.map(|mut o| {
                strip_noise(&mut o);
                crate::gitops::diff::mask_secret(&mut o);
                o
            });
            json!({
                "group": group, "version": version, "kind": kind,
                "namespace": namespace, "name": name,
                "status": st.status, "health": st.health,
                "requiresPruning": st.requires_pruning, "hook": st.hook,
                "liveState": live,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Builds the resource tree (pure): managed resources are roots, and every object whose
/// `ownerReferences` lead to a node joins with its `parentRefs`. Nodes are sorted by
/// (group, kind, namespace, name).
pub fn build_tree(managed: &[Value], candidates: &[Value]) -> Vec<Value> {
    fn node(obj: &Value, parents: Vec<Value>) -> Value {
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("v1");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let m = &obj["metadata"];
        let mut n = json!({
            "group": group, "version": version,
            "kind": obj.get("kind").cloned().unwrap_or(Value::Null),
            "namespace": m.get("namespace").cloned().unwrap_or(json!("")),
            "name": m.get("name").cloned().unwrap_or(Value::Null),
            "uid": m.get("uid").cloned().unwrap_or(Value::Null),
            "resourceVersion": m.get("resourceVersion").cloned().unwrap_or(Value::Null),
            "createdAt": m.get("creationTimestamp").cloned().unwrap_or(Value::Null),
        });
        if !parents.is_empty() {
            n["parentRefs"] = json!(parents);
        }
        if let Some(phase) = obj.pointer("/status/phase") {
            n["info"] = json!([{"name": "Status Reason", "value": phase}]);
        }
        n
    }
    let mut by_uid: BTreeMap<String, Value> = BTreeMap::new();
    let mut out: Vec<Value> = Vec::new();
    for obj in managed {
        if let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) {
            by_uid.insert(uid.to_string(), obj.clone());
        }
        out.push(node(obj, Vec::new()));
    }
    let mut added: BTreeSet<String> = by_uid.keys().cloned().collect();
    loop {
        let mut grew = false;
        for obj in candidates {
            let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) else {
                continue;
            };
            if added.contains(uid) {
                continue;
            }
            let parents: Vec<Value> = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|r| {
                    let puid = r.get("uid")?.as_str()?;
                    let parent = by_uid.get(puid)?;
                    let pav = parent.get("apiVersion").and_then(Value::as_str).unwrap_or("v1");
                    Some(json!({
                        "group": pav.rsplit_once('/').map_or("", |(g, _)| g),
                        "kind": parent.get("kind"),
                        "namespace": parent.pointer("/metadata/namespace").cloned().unwrap_or(json!("")),
                        "name": parent.pointer("/metadata/name"),
                        "uid": puid,
                    }))
                })
                .collect();
            if parents.is_empty() {
                continue;
            }
            added.insert(uid.to_string());
            by_uid.insert(uid.to_string(), obj.clone());
            out.push(node(obj, parents));
            grew = true;
        }
        if !grew {
            break;
        }
    }
    let key = |n: &Value| {
        ["group", "kind", "namespace", "name"]
            .map(|k| n.get(k).and_then(Value::as_str).unwrap_or("").to_string())
    };
    out.sort_by_key(key);
    out
}

/// Kinds whose objects are children of workloads (Argo CD's tree shows them under their owner).
const CHILD_KINDS: [(&str, &str, &str); 5] = [
    ("apps", "v1", "ReplicaSet"),
    ("", "v1", "Pod"),
    ("batch", "v1", "Job"),
    ("apps", "v1", "ControllerRevision"),
    ("discovery.k8s.io", "v1", "EndpointSlice"),
];

/// The resource tree: managed resources and the objects they own (ReplicaSets, Pods, Jobs…).
pub async fn resource_tree(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppQuery>,
) -> Result<Json<Value>, ApiError> {
    let (client, app) = load_checked(&state, &principal, "get", &name, &q).await?;
    let dest = destination_client(&state, &client, &app).await?;
    let keys = managed_keys(&app);
    let managed: Vec<Value> = fetch_live(&dest, &keys)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let namespaces: BTreeSet<String> = keys
        .iter()
        .map(|k| k.3.clone())
        .filter(|n| !n.is_empty())
        .collect();
    let mut candidates = Vec::new();
    for ns in &namespaces {
        for (group, version, kind) in CHILD_KINDS {
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let ar = kube::discovery::ApiResource::from_gvk(&gvk);
            let api: Api<DynamicObject> = Api::namespaced_with(dest.clone(), ns, &ar);
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    for mut o in list.items {
                        o.types = Some(kube::core::TypeMeta {
                            api_version: gvk.api_version(),
                            kind: kind.to_string(),
                        });
                        candidates.push(
                            serde_json::to_value(o)
                                .map_err(|e| ApiError::Internal(e.to_string()))?,
                        );
                    }
                }
                // A namespace-scoped destination may not list some kinds: show what it can.
                Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => {}
                Err(e) => return Err(kube_err(&format!("list {kind} in {ns}"), e)),
            }
        }
    }
    let mut nodes = build_tree(&managed, &candidates);
    // Health and sync status as the controller recorded them.
    let status: Vec<_> = app
        .status
        .as_ref()
        .and_then(|s| s.resources.clone())
        .unwrap_or_default();
    for n in &mut nodes {
        let hit = status.iter().find(|r| {
            r.kind.as_deref() == n["kind"].as_str()
                && r.name.as_deref() == n["name"].as_str()
                && r.namespace.as_deref().unwrap_or("") == n["namespace"].as_str().unwrap_or("")
                && r.group.as_deref().unwrap_or("") == n["group"].as_str().unwrap_or("")
        });
        if let Some(r) = hit
            && let Some(h) = &r.health
        {
            n["health"] = json!(h);
        }
    }
    Ok(Json(json!({ "nodes": nodes })))
}

/// Server-sent events of Application changes the caller may `get`: each event's data is
/// `{"result": {"type": "ADDED"|"MODIFIED"|"DELETED", "application": {...}}}`, as Argo CD's
/// watch stream. `?name=` narrows to one app, `?project=` to one project.
pub async fn stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let ns = allowed_ns(&state, q.app_namespace.as_deref())?.to_string();
    let api: Api<Application> = Api::namespaced(state.kube()?, &ns);
    let cfg = match &q.name {
        Some(n) => watcher::Config::default().fields(&format!("metadata.name={n}")),
        None => watcher::Config::default(),
    };
    // The watch does not say whether an object is new; an object first seen on this stream is
    // ADDED (Argo CD's event type), later ones MODIFIED.
    let seen: Arc<std::sync::Mutex<BTreeSet<String>>> = Arc::default();
    let events = watcher(api, cfg).filter_map(move |ev| {
        let state = state.clone();
        let principal = principal.clone();
        let project_filter = q.project.clone();
        let seen = seen.clone();
        async move {
            let first = |a: &Application| {
                let uid = a.metadata.uid.clone().unwrap_or_else(|| a.name_any());
                seen.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(uid)
            };
            let (kind, app) = match ev {
                Ok(watcher::Event::InitApply(a) | watcher::Event::Apply(a)) => {
                    (if first(&a) { "ADDED" } else { "MODIFIED" }, a)
                }
                Ok(watcher::Event::Delete(a)) => {
                    if let Some(uid) = &a.metadata.uid {
                        seen.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(uid);
                    }
                    ("DELETED", a)
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => return None,
                Err(e) => {
                    // The watcher retries by itself; tell the client without ending the stream.
                    tracing::warn!(error = %e, "application watch");
                    return None;
                }
            };
            if project_filter
                .as_deref()
                .is_some_and(|p| project(&app) != p)
            {
                return None;
            }
            let object = rbac_object(state.namespace(), &app);
            if !state
                .auth()
                .authorize(&principal, "applications", "get", &object)
            {
                return None;
            }
            let data = json!({"result": {"type": kind, "application": app}});
            Some(Ok(Event::default().data(data.to_string())))
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Query of the stream route.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamQuery {
    /// Only this Application.
    name: Option<String>,
    /// Only this project.
    project: Option<String>,
    /// The namespace watched (default: the control namespace).
    app_namespace: Option<String>,
}

fn webhook_refusal(err: &WebhookError) -> Response {
    let status = match err {
        WebhookError::UnknownProvider | WebhookError::BadPayload { .. } => StatusCode::BAD_REQUEST,
        WebhookError::NotConfigured { .. }
        | WebhookError::MissingSignature { .. }
        | WebhookError::BadSignature { .. } => StatusCode::UNAUTHORIZED,
        WebhookError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        WebhookError::Refresh { .. } => StatusCode::BAD_GATEWAY,
    };
    let body = json!({"error": err.metric_label(), "message": err.to_string()});
    (status, Json(body)).into_response()
}

/// `POST /api/webhook`: a Git push from GitHub, GitLab, Gitea or Gogs. Authenticated by the
/// provider's signature (no session); refreshes the Applications tracking the pushed branch.
pub async fn receive_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let config = state
        .gitops()
        .map(|g| g.webhook.clone())
        .unwrap_or_default();
    let limit = config.max_payload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let refuse = |err: WebhookError, provider: &str| {
        tracing::warn!(provider, reason = err.metric_label(), "webhook refused");
        metrics::counter!("cairn_webhook_refused_total", "reason" => err.metric_label())
            .increment(1);
        webhook_refusal(&err)
    };
    if declared.is_some_and(|n| n > limit) {
        return refuse(WebhookError::TooLarge { limit }, "unknown");
    }
    let (provider, event) = match webhook::detect(&headers) {
        Ok(p) => p,
        Err(e) => return refuse(e, "unknown"),
    };
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return refuse(WebhookError::TooLarge { limit }, provider.as_str()),
    };
    if let Err(e) = webhook::verify(provider, &headers, &body, &config) {
        return refuse(e, provider.as_str());
    }
    let push = match webhook::parse(provider, &event, &body) {
        Ok(Some(p)) => p,
        Ok(None) => return (StatusCode::OK, Json(json!({"ignored": event}))).into_response(),
        Err(e) => return refuse(e, provider.as_str()),
    };
    match refresh_matching(&state, &push).await {
        Ok(n) => {
            tracing::info!(provider = provider.as_str(), revision = %push.revision, refreshed = n, "webhook push");
            (StatusCode::OK, Json(json!({"refreshed": n}))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn refresh_matching(state: &AppState, push: &webhook::PushEvent) -> Result<usize, ApiError> {
    let client = state.kube()?;
    let mut apps = objects::list_applications(&client, state.namespace()).await?;
    for ns in state
        .gitops()
        .map(|g| g.namespaces.as_slice())
        .unwrap_or_default()
    {
        apps.extend(objects::list_applications(&client, ns).await?);
    }
    let refresher = refresher(state)?;
    let mut n = 0;
    for app in apps.iter().filter(|a| webhook::app_matches(a, push)) {
        let ns = app.namespace().unwrap_or_default();
        match refresher
            .refresh(&ns, &app.name_any(), RefreshKind::Normal)
            .await
        {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!(error = %e, "webhook refresh"),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
