//! One reconciliation of one Application: source → render → live → compare → health → status,
//! then the operation (manual or automated) through [`super::applier`].
//!
//! Every bad input of the list becomes a condition naming what failed (the source and
//! file from the renderer, the object and the apiserver's message from the applier); the
//! previous `resources`/`health` stay as they were and nothing is applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

use super::live::{self, Live, key_of};
use super::status::{self, AutoSync, AutoSyncInput, LastOperation, reasons};
use super::{AppRef, ControllerError, Inner, applier, lock};
use crate::gitops::cluster;
use crate::gitops::diff::{self, AppComparison, DiffMode, DiffOptions};
use crate::gitops::health::{self, ResourceHealth};
use crate::gitops::project::{self, Destination};
use crate::gitops::render::{self, RenderRequest, Rendered, cache_key};
use crate::gitops::source::{CredentialStore, RepoSecret, url::normalize_url};
use crate::gitops::sync::hooks;
use crate::gitops::types::{
    AppProject, Application, ApplicationCondition, ApplicationSource, ApplicationStatus,
    HealthStatus, SyncStatus,
};
use crate::k8s::ResourceKey;

/// Annotation asking for a refresh (`normal` or `hard`), removed once handled.
pub const REFRESH: &str = "argocd.argoproj.io/refresh";
/// The in-cluster destination.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// Argo CD's label on repository Secrets.
const SECRET_TYPE: &str = "argocd.argoproj.io/secret-type";

/// Now, as Kubernetes writes times.
pub(crate) fn now_string() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The name in tracking ids: bare in the control namespace, `<ns>_<name>` elsewhere (Argo CD).
pub(crate) fn tracking_name(inner: &Inner, key: &AppRef) -> String {
    if key.namespace == inner.settings.control_namespace {
        key.name.clone()
    } else {
        format!("{}_{}", key.namespace, key.name)
    }
}

/// How much of the cached state a reconcile may reuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refresh {
    /// Resolutions younger than the poll interval and rendered manifests are reused.
    None,
    /// Revisions are resolved again (`refresh: normal`, webhook).
    Normal,
    /// Revisions resolved and manifests rendered again (`refresh: hard`).
    Hard,
}

/// What rendering produced for an application.
#[derive(Clone, Debug, Default)]
pub(crate) struct Target {
    /// Resolved SHAs, one per source.
    pub revisions: Vec<String>,
    /// The sources rendered.
    pub sources: Vec<ApplicationSource>,
    /// Whether the app uses `spec.sources`.
    pub multi: bool,
    /// Tools used (`Directory`, `Kustomize`, `Helm`), one per rendered source.
    pub source_types: Vec<String>,
}

/// A full comparison.
pub(crate) struct Compared {
    pub target: Target,
    /// Desired objects: namespace defaulted, tracking id set.
    pub desired: Vec<Value>,
    /// Live objects tracked to the app or sharing a desired identity.
    pub live: Vec<Value>,
    pub cmp: AppComparison,
    /// Conditions found while comparing (warnings, unknown kinds, project violations).
    pub conditions: Vec<ApplicationCondition>,
    /// Objects the AppProject forbids: a sync is refused while there is any.
    pub violations: Vec<String>,
}

/// The sources of an application, and whether it is multi-source.
pub(crate) fn app_sources(app: &Application) -> (Vec<ApplicationSource>, bool) {
    match &app.spec.sources {
        Some(s) if !s.is_empty() => (s.clone(), true),
        _ => (app.spec.source.clone().into_iter().collect(), false),
    }
}

/// What an edit of the Application writes (re-applied on a conflict).
#[derive(Clone, Debug, Default)]
pub(crate) struct Edit {
    pub status: Option<ApplicationStatus>,
    /// Remove `.operation` when it still equals this one.
    pub clear_operation: Option<Value>,
    /// Set `.operation`.
    pub set_operation: Option<Value>,
    pub remove_refresh: bool,
    /// Remove this finalizer.
    pub remove_finalizer: Option<String>,
}

fn apply_edit(app: &mut Application, edit: &Edit) {
    if let Some(s) = &edit.status {
        // A termination requested meanwhile (phase `Terminating`, written by the API) is kept
        // while cairn would only report progress: the next reconcile acts on it.
        let terminating = app
            .status
            .as_ref()
            .and_then(|st| st.operation_state.as_ref())
            .filter(|o| o.phase.as_deref() == Some("Terminating"))
            .cloned();
        let mut s = s.clone();
        if let (Some(t), Some(mine)) = (terminating, s.operation_state.as_mut())
            && mine.phase.as_deref() == Some("Running")
            && mine.operation == t.operation
        {
            mine.phase = Some("Terminating".into());
        }
        app.status = Some(s);
    }
    if let Some(op) = &edit.clear_operation
        && app.operation.as_ref() == Some(op)
    {
        app.operation = None;
    }
    if let Some(op) = &edit.set_operation {
        app.operation = Some(op.clone());
    }
    if edit.remove_refresh
        && let Some(a) = app.metadata.annotations.as_mut()
    {
        a.remove(REFRESH);
    }
    if let Some(f) = &edit.remove_finalizer
        && let Some(fs) = app.metadata.finalizers.as_mut()
    {
        fs.retain(|x| x != f);
    }
}

/// Writes the edit with the object's resourceVersion; on a conflict re-reads and re-applies
/// only the edit, so a concurrent user change is kept.
pub(crate) async fn save(
    api: &Api<Application>,
    app: &mut Application,
    edit: &Edit,
) -> Result<(), ControllerError> {
    let name = app.metadata.name.clone().unwrap_or_default();
    let label = format!("{}/{name}", app.metadata.namespace.as_deref().unwrap_or(""));
    apply_edit(app, edit);
    for _ in 0..8 {
        match api.replace(&name, &PostParams::default(), app).await {
            Ok(new) => {
                *app = new;
                return Ok(());
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                match api.get_opt(&name).await {
                    Ok(Some(fresh)) => *app = fresh,
                    Ok(None) => return Ok(()),
                    Err(e) => {
                        return Err(ControllerError::Application {
                            action: "get",
                            app: label,
                            source: Box::new(e),
                        });
                    }
                }
                apply_edit(app, edit);
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => {
                return Err(ControllerError::Application {
                    action: "replace",
                    app: label,
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(())
}

/// Repository credentials from the Secrets in the control namespace.
async fn credentials(inner: &Inner) -> CredentialStore {
    let api: Api<Secret> = Api::namespaced(
        inner.live.client().clone(),
        &inner.settings.control_namespace,
    );
    let lp = ListParams::default().labels(&format!("{SECRET_TYPE} in (repository,repo-creds)"));
    let secrets = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(err) => {
            tracing::warn!(error = %err, "listing repository secrets failed; fetching anonymously");
            Vec::new()
        }
    };
    let mut out = Vec::new();
    for s in &secrets {
        match RepoSecret::from_secret(s) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "repository secret ignored"),
        }
    }
    CredentialStore::new(out)
}

/// Resolve `revision` of `url` to a commit present in the mirror, trusting a resolution for
/// `poll_interval` unless `hard`.
async fn resolve(
    inner: &Inner,
    url: &str,
    revision: &str,
    creds: &CredentialStore,
    force: bool,
) -> Result<String, String> {
    let cache_key = (normalize_url(url), revision.to_owned());
    if !force
        && let Some((sha, at)) = lock(&inner.revisions).get(&cache_key).cloned()
        && at.elapsed() < inner.settings.poll_interval
    {
        return Ok(sha);
    }
    let fetched = inner
        .git
        .fetch(url, revision, creds.for_url(url).as_ref())
        .await
        .map_err(|e| e.to_string())?;
    lock(&inner.revisions).insert(cache_key, (fetched.sha.clone(), Instant::now()));
    Ok(fetched.sha)
}

/// What to render and compare.
#[derive(Clone, Copy)]
pub(crate) struct Request<'a> {
    pub app: &'a Application,
    /// Name in tracking ids.
    pub app_name: &'a str,
    pub sources: &'a [ApplicationSource],
    pub multi: bool,
    /// Pinned revisions (an operation's), else each source's `targetRevision`.
    pub revisions: Option<&'a [String]>,
    pub refresh: Refresh,
    pub creds: &'a CredentialStore,
    /// The destination cluster.
    pub live: &'a Live,
}

/// Fetch and render the request's sources.
pub(crate) async fn render_target(
    inner: &Inner,
    r: Request<'_>,
) -> Result<(Target, Vec<Value>), String> {
    let Request {
        app,
        app_name,
        sources,
        multi,
        revisions,
        refresh,
        creds,
        live: _,
    } = r;
    let hard = refresh == Refresh::Hard;
    let namespace = app
        .spec
        .destination
        .as_ref()
        .and_then(|d| d.namespace.clone());
    let project = app.spec.project.clone().unwrap_or_else(|| "default".into());
    let field = |i: usize| {
        if multi {
            format!("spec.sources[{i}]")
        } else {
            "spec.source".to_owned()
        }
    };
    if sources.is_empty() {
        return Err("spec.source or spec.sources is required".into());
    }
    let mut shas = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let Some(url) = source.repo_url.as_deref().filter(|u| !u.is_empty()) else {
            return Err(format!("{}.repoURL is required", field(i)));
        };
        if is_chart(source) {
            // A Helm repository is not Git: its "revision" is the chart version (Argo CD),
            // an empty one meaning the latest.
            let wanted = revisions
                .and_then(|r| r.get(i).cloned())
                .filter(|r| !r.is_empty())
                .or_else(|| source.target_revision.clone())
                .unwrap_or_default();
            let version =
                resolve_chart_version(inner, source, url, &wanted, refresh != Refresh::None)
                    .await
                    .map_err(|e| format!("{}: {e}", field(i)))?;
            shas.push(version);
            continue;
        }
        let wanted = revisions
            .and_then(|r| r.get(i).cloned())
            .filter(|r| !r.is_empty())
            .or_else(|| source.target_revision.clone().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| "HEAD".to_owned());
        let sha = resolve(inner, url, &wanted, creds, refresh != Refresh::None)
            .await
            .map_err(|e| format!("{}: {e}", field(i)))?;
        shas.push(sha);
    }
    // `ref` sources: checked out for `$ref/...` value files of the others.
    let mut refs = BTreeMap::new();
    let mut ref_revisions = BTreeMap::new();
    let mut keep = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        if let Some(name) = source.reference.as_deref().filter(|r| !r.is_empty())
            && !is_chart(source)
        {
            let url = source.repo_url.as_deref().unwrap_or("");
            let dir = render::exec::TempDir::new("cairn-ref").map_err(|e| e.to_string())?;
            inner
                .git
                .checkout(url, &shas[i], "", dir.path())
                .await
                .map_err(|e| format!("{}: {e}", field(i)))?;
            refs.insert(name.to_owned(), dir.path().to_path_buf());
            ref_revisions.insert(name.to_owned(), shas[i].clone());
            keep.push(dir);
        }
    }
    let mut objects = Vec::new();
    let mut types = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        // A ref-only source (no path) is not rendered (Argo CD).
        if source.reference.is_some() && source.path.is_none() {
            continue;
        }
        let url = source.repo_url.as_deref().unwrap_or("");
        let placeholder = PathBuf::new();
        let req = RenderRequest {
            repo_root: &placeholder,
            source,
            app_name,
            namespace: namespace.as_deref(),
            project: &project,
            revision: &shas[i],
            kube_version: None,
            api_versions: &[],
            refs: refs.clone(),
        };
        let key = cache_key(
            url,
            &shas[i],
            source.path.as_deref().unwrap_or(""),
            &req.source_options(&inner.render, ref_revisions.clone()),
        );
        // The same source of the same app at any revision: a new render replaces the old one.
        let lineage = cache_key(
            url,
            "",
            source.path.as_deref().unwrap_or(""),
            &req.source_options(&inner.render, BTreeMap::new()),
        );
        // A version range may resolve to a newer chart: only exact versions are cached.
        let cacheable = !is_chart(source) || render::helm_repo::is_exact_version(&shas[i]);
        let cached = if hard || !cacheable {
            None
        } else {
            lock(&inner.cache).get(&key)
        };
        let rendered: Arc<Rendered> = match cached {
            Some(r) => r,
            None if is_chart(source) => {
                let r = Arc::new(
                    render_repo_chart(inner, &req, url, &shas[i])
                        .await
                        .map_err(|e| format!("{}: {e}", field(i)))?,
                );
                if cacheable {
                    lock(&inner.cache).insert(key, Some(lineage), Arc::clone(&r));
                }
                r
            }
            None => {
                let dir = render::exec::TempDir::new("cairn-src").map_err(|e| e.to_string())?;
                inner
                    .git
                    .checkout(url, &shas[i], "", dir.path())
                    .await
                    .map_err(|e| format!("{}: {e}", field(i)))?;
                let req = RenderRequest {
                    repo_root: dir.path(),
                    ..req
                };
                let r = Arc::new(render::render(&req, &inner.render).await.map_err(|e| {
                    format!(
                        "{} (path {:?}): {e}",
                        field(i),
                        source.path.as_deref().unwrap_or(".")
                    )
                })?);
                lock(&inner.cache).insert(key, Some(lineage), Arc::clone(&r));
                r
            }
        };
        types.push(format!("{:?}", rendered.tool));
        objects.extend(rendered.objects.iter().cloned());
    }
    drop(keep);
    Ok((
        Target {
            revisions: shas,
            sources: sources.to_vec(),
            multi,
            source_types: types,
        },
        objects,
    ))
}

/// Whether a source is a chart of a Helm repository (`chart` set) rather than a Git path.
fn is_chart(source: &ApplicationSource) -> bool {
    source.chart.as_deref().is_some_and(|c| !c.is_empty())
}

/// The exact chart version `wanted` (a version, a range, or empty for the latest) stands
/// for, as Argo CD records it: a range is resolved by pulling the newest match, trusted for
/// `poll_interval` unless `force`.
async fn resolve_chart_version(
    inner: &Inner,
    source: &ApplicationSource,
    url: &str,
    wanted: &str,
    force: bool,
) -> Result<String, render::RenderError> {
    if render::helm_repo::is_exact_version(wanted) {
        return Ok(wanted.trim().to_owned());
    }
    let chart = source.chart.as_deref().unwrap_or("");
    let cache_key = (
        format!("helm:{}#{chart}", normalize_url(url)),
        wanted.to_owned(),
    );
    if !force
        && let Some((version, at)) = lock(&inner.revisions).get(&cache_key).cloned()
        && at.elapsed() < inner.settings.poll_interval
    {
        return Ok(version);
    }
    let creds = helm_credentials(inner, url).await;
    let chart_ref = render::helm_repo::ChartRef {
        repo_url: url,
        chart,
        version: wanted,
        creds: creds.as_ref(),
    };
    let bin = render::helm_binary(&inner.render)?;
    let cache_root = inner.settings.data_dir.join("helm-charts");
    let pulled =
        render::helm_repo::pull_chart(&chart_ref, &cache_root, &bin, inner.render.timeout).await?;
    let version = pulled.version()?;
    lock(&inner.revisions).insert(cache_key, (version.clone(), Instant::now()));
    Ok(version)
}

/// Credentials for Helm repository `url` from the repository Secrets of the control namespace.
async fn helm_credentials(
    inner: &Inner,
    url: &str,
) -> Option<render::helm_repo::HelmRepoCredentials> {
    let api: Api<Secret> = Api::namespaced(
        inner.live.client().clone(),
        &inner.settings.control_namespace,
    );
    let lp = ListParams::default().labels(&format!("{SECRET_TYPE} in (repository,repo-creds)"));
    let secrets = match api.list(&lp).await {
        Ok(l) => l.items,
        Err(err) => {
            tracing::warn!(error = %err, "listing repository secrets failed; pulling anonymously");
            Vec::new()
        }
    };
    render::helm_repo::credentials_for(url, &secrets)
}

/// Pulls (or finds cached) the chart of a Helm repository source and renders it. Credentials
/// come from Argo CD repository Secrets of `type: helm` (or a matching `repo-creds`).
async fn render_repo_chart(
    inner: &Inner,
    req: &RenderRequest<'_>,
    url: &str,
    version: &str,
) -> Result<Rendered, render::RenderError> {
    let creds = helm_credentials(inner, url).await;
    let chart = render::helm_repo::ChartRef {
        repo_url: url,
        chart: req.source.chart.as_deref().unwrap_or(""),
        version,
        creds: creds.as_ref(),
    };
    let bin = render::helm_binary(&inner.render)?;
    let cache_root = inner.settings.data_dir.join("helm-charts");
    let pulled =
        render::helm_repo::pull_chart(&chart, &cache_root, &bin, inner.render.timeout).await?;
    render::render_chart(req, &inner.render, &pulled.dir).await
}

/// Render, default, list live, compare.
/// Dry-run applies in flight at once while comparing (server-side diff).
const DRY_RUN_CONCURRENCY: usize = 32;

pub(crate) async fn compare(
    inner: &Inner,
    r: Request<'_>,
    project: &AppProject,
) -> Result<Compared, String> {
    let (app, app_name, live) = (r.app, r.app_name, r.live);
    let (target, mut desired) = render_target(inner, r).await?;
    let dest_ns = app
        .spec
        .destination
        .as_ref()
        .and_then(|d| d.namespace.clone())
        .unwrap_or_default();
    let mut conditions = Vec::new();
    let now = now_string();
    // Scopes of the desired kinds, from discovery.
    let mut kinds: BTreeSet<(String, String)> = BTreeSet::new();
    for obj in &desired {
        if let (Some(api), Some(kind)) = (
            obj.get("apiVersion").and_then(Value::as_str),
            obj.get("kind").and_then(Value::as_str),
        ) {
            kinds.insert((live::split_api_version(api).0.to_owned(), kind.to_owned()));
        }
    }
    // CRDs of this sync make their kinds known even before they exist.
    let crd_kinds: BTreeSet<(String, String)> = desired
        .iter()
        .filter(|o| o.get("kind") == Some(&json!("CustomResourceDefinition")))
        .filter_map(|o| {
            Some((
                o.pointer("/spec/group")?.as_str()?.to_owned(),
                o.pointer("/spec/names/kind")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut scopes = BTreeMap::new();
    for (g, k) in &kinds {
        match live.scope(g, k).await {
            Ok(Some(namespaced)) => {
                scopes.insert((g.clone(), k.clone()), namespaced);
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    live::default_namespaces(&mut desired, &dest_ns, &scopes);
    live::set_tracking(&mut desired, app_name, live.installation());
    let destination = live.cluster().destination(
        &app.spec
            .destination
            .clone()
            .unwrap_or_default()
            .namespace
            .unwrap_or_default(),
    );
    let mut violations = Vec::new();
    for obj in &desired {
        let Some(k) = key_of(obj) else { continue };
        let namespaced = scopes
            .get(&(k.group.clone(), k.kind.clone()))
            .copied()
            .unwrap_or(true);
        if let Err(v) = project::check_resource(
            project,
            &destination,
            &k.group,
            &k.kind,
            k.namespace.as_deref().unwrap_or(""),
            namespaced,
        ) {
            let message = format!("{k}: {}", v.message());
            conditions.push(status::condition(v.condition_type(), message.clone(), &now));
            violations.push(message);
        }
    }
    for (g, k) in &kinds {
        if !scopes.contains_key(&(g.clone(), k.clone()))
            && !crd_kinds.contains(&(g.clone(), k.clone()))
        {
            let names: Vec<String> = desired
                .iter()
                .filter_map(key_of)
                .filter(|key| &key.group == g && &key.kind == k)
                .map(|key| key.to_string())
                .collect();
            conditions.push(status::condition(
                reasons::COMPARISON_ERROR,
                format!(
                    "{}: the server could not find the requested resource: kind {k} of group {g:?} is not served (CRD missing?)",
                    names.join(", ")
                ),
                &now,
            ));
        }
    }
    for r in app
        .status
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .into_iter()
        .flatten()
    {
        if let Some(k) = &r.kind {
            kinds.insert((r.group.clone().unwrap_or_default(), k.clone()));
        }
    }
    let wanted: BTreeSet<ResourceKey> = desired.iter().filter_map(key_of).collect();
    let (live_objs, _missing) = live
        .list_for_app(app_name, &kinds, &wanted)
        .await
        .map_err(|e| e.to_string())?;
    let (cmp, judged) = judge(app, app_name, live, &desired, &live_objs).await?;
    conditions.extend(judged);
    Ok(Compared {
        target,
        desired,
        live: live_objs,
        cmp,
        conditions,
        violations,
    })
}

/// Compares `desired` with `live_objs` as the app asks (server-side mode: against the
/// server's dry-run answers, from the apply cache when the live state was answered before):
/// the comparison, and the conditions it raises (repeated resources, comparison errors,
/// objects tracked by another application).
pub(crate) async fn judge(
    app: &Application,
    app_name: &str,
    live: &Live,
    desired: &[Value],
    live_objs: &[Value],
) -> Result<(AppComparison, Vec<ApplicationCondition>), String> {
    let now = now_string();
    let mut conditions = Vec::new();
    let mut opts = DiffOptions::for_app(app, &[]);
    if let Err(e) = opts.validate() {
        return Err(format!("spec.ignoreDifferences: {e}"));
    }
    let targets = if opts.mode == DiffMode::ServerSide {
        // Server-side diff compares with the server's answer to a dry-run apply; an object
        // the server cannot dry-run (missing CRD, missing namespace) is compared as written.
        // The dry runs are independent: issued concurrently (bounded), answers kept in order.
        use futures::StreamExt as _;
        let by_key: BTreeMap<ResourceKey, &Value> = live_objs
            .iter()
            .filter_map(|o| Some((key_of(o)?, o)))
            .collect();
        // (Futures collected first: a stream of closures over borrows is not `Send` for every
        // lifetime, which the spawned worker needs.)
        let dry_runs: Vec<_> = desired
            .iter()
            .map(|obj| {
                let current = key_of(obj).and_then(|k| by_key.get(&k).copied());
                async move {
                    match live.dry_run(obj, current, true).await {
                        Ok(v) if !v.is_null() => v,
                        _ => obj.clone(),
                    }
                }
            })
            .collect();
        futures::stream::iter(dry_runs)
            .buffered(DRY_RUN_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
    } else {
        opts.mode = DiffMode::ClientSide;
        desired.to_vec()
    };
    let cmp = diff::compare_app(&targets, live_objs, &opts);
    for w in &cmp.warnings {
        conditions.push(status::condition(
            reasons::REPEATED_RESOURCE,
            w.clone(),
            &now,
        ));
    }
    for e in &cmp.errors {
        conditions.push(status::condition(
            reasons::COMPARISON_ERROR,
            e.clone(),
            &now,
        ));
    }
    // Objects tracked by another application: reported, never silently taken over.
    for obj in live_objs {
        if let Some(id) = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(crate::gitops::sync::TRACKING_ID))
            .and_then(Value::as_str)
            && let Some(owner) = id.split(':').next()
            && owner != app_name
            && let Some(k) = key_of(obj)
        {
            conditions.push(status::condition(
                reasons::SHARED_RESOURCE,
                format!("{k} is part of application {owner} and of application {app_name}"),
                &now,
            ));
        }
    }
    Ok((cmp, conditions))
}

/// The comparison after an operation, from the one made before it: the objects the operation
/// stored (the server's answers to its applies, by identity) replace their listed versions and
/// the objects it pruned are gone, which is what listing again would find, without listing.
pub(crate) async fn recompare(
    before: &Compared,
    app: &Application,
    app_name: &str,
    live: &Live,
    stored: &BTreeMap<ResourceKey, Value>,
    pruned: &BTreeSet<ResourceKey>,
) -> Result<Compared, String> {
    let mut seen = BTreeSet::new();
    let mut live_objs: Vec<Value> = Vec::with_capacity(before.live.len() + stored.len());
    for obj in &before.live {
        let Some(k) = key_of(obj) else {
            live_objs.push(obj.clone());
            continue;
        };
        if pruned.contains(&k) {
            continue;
        }
        match stored.get(&k) {
            Some(new) => {
                seen.insert(k);
                live_objs.push(new.clone());
            }
            None => live_objs.push(obj.clone()),
        }
    }
    for (k, obj) in stored {
        if !seen.contains(k) {
            live_objs.push(obj.clone());
        }
    }
    // The conditions stay those of the comparison before: the operation changed no input of
    // the rendering or the project checks, and the status write that follows keeps them.
    let (cmp, _) = judge(app, app_name, live, &before.desired, &live_objs).await?;
    Ok(Compared {
        target: before.target.clone(),
        desired: before.desired.clone(),
        live: live_objs,
        cmp,
        conditions: before.conditions.clone(),
        violations: before.violations.clone(),
    })
}

/// The destination cluster of `app` (Argo CD's resolution by server or name, clusters from
/// Secrets plus in-cluster) and its live client; `Err` is the message of an InvalidSpecError.
pub(crate) async fn live_for(
    inner: &Inner,
    app: &Application,
) -> Result<(Arc<Live>, Destination), String> {
    let dest = app.spec.destination.clone().unwrap_or_default();
    let namespace = dest.namespace.clone().unwrap_or_default();
    let clusters = inner.clusters.list().await.map_err(|e| e.to_string())?;
    let cluster = cluster::resolve(&dest, &clusters)
        .map_err(|e| e.to_string())?
        .clone();
    if !namespace.is_empty() && !cluster.manages_namespace(&namespace) {
        return Err(format!(
            "namespace {namespace:?} is not managed by cluster {} (namespaces: {})",
            cluster.name,
            cluster.namespaces.join(", ")
        ));
    }
    let destination = cluster.destination(&namespace);
    if cluster.credentials.is_none() {
        return Ok((Arc::clone(&inner.live), destination));
    }
    if let Some((version, l)) = lock(&inner.lives).get(&cluster.server)
        && *version == cluster.version
    {
        return Ok((Arc::clone(l), destination));
    }
    let client = inner
        .clusters
        .client(&cluster)
        .await
        .map_err(|e| e.to_string())?;
    let l = Arc::new(Live::for_cluster(
        client,
        inner.live.installation().map(str::to_owned),
        cluster.clone(),
    ));
    lock(&inner.lives).insert(
        cluster.server.clone(),
        (cluster.version.clone(), Arc::clone(&l)),
    );
    Ok((l, destination))
}

/// The AppProject governing `app`, checked against the app itself.
async fn load_project(
    inner: &Inner,
    app: &Application,
    destination: &Destination,
) -> Result<AppProject, Vec<ApplicationCondition>> {
    let api: Api<AppProject> = Api::namespaced(
        inner.live.client().clone(),
        &inner.settings.control_namespace,
    );
    let now = now_string();
    let found = match api.get_opt(project::project_name(app)).await {
        Ok(p) => p,
        Err(e) => {
            return Err(vec![status::condition(
                reasons::INVALID_SPEC,
                format!("reading AppProject {}: {e}", project::project_name(app)),
                &now,
            )]);
        }
    };
    let with_time = |v: &project::Violation| {
        let mut c = v.condition();
        c.last_transition_time = Some(now.clone());
        c
    };
    let proj = project::resolve(app, found).map_err(|v| vec![with_time(&v)])?;
    project::check_app(&proj, app, &inner.settings.control_namespace, destination)
        .map_err(|vs| vs.iter().map(with_time).collect::<Vec<_>>())?;
    Ok(proj)
}

fn to_status_health(h: &health::HealthStatus) -> HealthStatus {
    HealthStatus {
        status: Some(h.status.as_str().to_owned()),
        message: h.message.clone(),
        ..HealthStatus::default()
    }
}

/// `.status` fields from a comparison (sync, health, resources, summary, sourceType).
pub(crate) fn comparison_status(
    status: &mut ApplicationStatus,
    app: &Application,
    key: &AppRef,
    c: &Compared,
) {
    let desired: BTreeMap<ResourceKey, &Value> = c
        .desired
        .iter()
        .filter_map(|o| Some((key_of(o)?, o)))
        .collect();
    let live: BTreeMap<ResourceKey, &Value> = c
        .live
        .iter()
        .filter_map(|o| Some((key_of(o)?, o)))
        .collect();
    let own = ResourceKey::new(
        "argoproj.io",
        "Application",
        Some(&key.namespace),
        &key.name,
    );
    let mut healths = Vec::new();
    let mut per_resource = Vec::new();
    let mut versions = Vec::new();
    let mut waves = Vec::new();
    for r in &c.cmp.resources {
        let d = desired.get(&r.key).copied();
        let l = live.get(&r.key).copied();
        if let Some(api) = l
            .or(d)
            .and_then(|o| o.get("apiVersion"))
            .and_then(Value::as_str)
        {
            versions.push((r.key.clone(), live::split_api_version(api).1.to_owned()));
        }
        if let Some(obj) = d.or(l)
            && let Ok(w) = hooks::wave(obj, &r.key)
            && w != 0
        {
            waves.push((r.key.clone(), w));
        }
        let rh = ResourceHealth::of(d, l);
        per_resource.push((r.key.clone(), rh.health.as_ref().map(to_status_health)));
        // An app managing itself is left out of its own health (Argo CD).
        if r.key != own && !r.requires_pruning {
            healths.push(rh);
        }
    }
    let agg = health::aggregate(&healths);
    status.health = Some(HealthStatus {
        last_transition_time: status
            .health
            .as_ref()
            .filter(|h| h.status.as_deref() == Some(agg.status.as_str()))
            .and_then(|h| h.last_transition_time.clone())
            .or_else(|| Some(now_string())),
        ..to_status_health(&agg)
    });
    status.resources = Some(status::resources(&c.cmp, &per_resource, &versions, &waves));
    let mut compared_to = json!({});
    if let Some(d) = &app.spec.destination {
        compared_to["destination"] = json!(d);
    }
    if c.target.multi {
        compared_to["sources"] = json!(c.target.sources);
    } else {
        compared_to["source"] = json!(c.target.sources.first());
    }
    if let Some(ignore) = &app.spec.ignore_differences {
        compared_to["ignoreDifferences"] = json!(ignore);
    }
    status.sync = Some(SyncStatus {
        status: Some(c.cmp.status.as_str().to_owned()),
        revision: (!c.target.multi)
            .then(|| c.target.revisions.first().cloned())
            .flatten(),
        revisions: c.target.multi.then(|| c.target.revisions.clone()),
        compared_to: Some(compared_to),
        ..SyncStatus::default()
    });
    if c.target.multi {
        status.source_types = Some(c.target.source_types.clone());
        status.source_type = None;
    } else {
        status.source_type = c.target.source_types.first().cloned();
    }
    let images = status::images(&c.live);
    status.summary = Some(json!({ "images": images }));
}

/// The last operation as the auto-sync decision reads it.
fn last_operation(status: &ApplicationStatus) -> Option<LastOperation> {
    let st = status.operation_state.as_ref()?;
    let phase = st.phase.as_deref().unwrap_or("");
    let result = st.sync_result.as_ref();
    let mut revisions: Vec<String> = result
        .and_then(|r| r.get("revisions"))
        .and_then(|r| serde_json::from_value(r.clone()).ok())
        .unwrap_or_default();
    if revisions.is_empty()
        && let Some(r) = result
            .and_then(|r| r.get("revision"))
            .and_then(Value::as_str)
    {
        revisions.push(r.to_owned());
    }
    let finished_ago = st
        .finished_at
        .as_deref()
        .and_then(|f| f.parse::<jiff::Timestamp>().ok())
        .and_then(|f| {
            let secs = jiff::Timestamp::now().as_second() - f.as_second();
            u64::try_from(secs).ok().map(Duration::from_secs)
        });
    Some(LastOperation {
        revisions,
        succeeded: phase == "Succeeded",
        completed: matches!(phase, "Succeeded" | "Failed" | "Error"),
        message: st.message.clone().unwrap_or_default(),
        finished_ago,
        self_heal_attempts: st
            .operation
            .as_ref()
            .and_then(|o| o.pointer("/sync/selfHealAttemptsCount"))
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
    })
}

/// Whether `.operation` is a request not started yet: a sync without a revision deploys the
/// latest commit of the target revision, so the revision is resolved again (Argo CD).
fn new_operation(app: &Application) -> bool {
    let Some(op) = &app.operation else {
        return false;
    };
    let state = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
    !state.is_some_and(|st| {
        st.operation.as_ref() == Some(op) && st.phase.as_deref() == Some("Running")
    })
}

/// Reconcile one application. `Ok(Some(d))`: look again within `d`.
pub(crate) async fn reconcile(
    inner: &Inner,
    key: &AppRef,
) -> Result<Option<Duration>, ControllerError> {
    let api: Api<Application> = Api::namespaced(inner.live.client().clone(), &key.namespace);
    let mut app = match api.get_opt(&key.name).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            lock(&inner.sources).remove(key);
            return Ok(None);
        }
        Err(e) => {
            return Err(ControllerError::Application {
                action: "get",
                app: key.to_string(),
                source: Box::new(e),
            });
        }
    };
    let app_name = tracking_name(inner, key);
    if app.metadata.deletion_timestamp.is_some() {
        return applier::finalize(inner, &api, &mut app, &app_name).await;
    }
    let (sources, multi) = app_sources(&app);
    lock(&inner.sources).insert(
        key.clone(),
        sources
            .iter()
            .map(|s| {
                (
                    normalize_url(s.repo_url.as_deref().unwrap_or("")),
                    s.target_revision.clone().unwrap_or_default(),
                )
            })
            .collect(),
    );
    let refresh = app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REFRESH))
        .cloned();
    let requested = lock(&inner.refreshes).remove(key);
    let refresh_kind = if refresh.as_deref() == Some("hard") || requested == Some(true) {
        Refresh::Hard
    } else if refresh.is_some() || requested.is_some() || new_operation(&app) {
        Refresh::Normal
    } else {
        Refresh::None
    };
    let now = now_string();
    let mut status = app.status.clone().unwrap_or_default();
    let mut conditions: Vec<ApplicationCondition> = Vec::new();
    // Independent reads: the repository credentials and the destination cluster.
    let (creds, destination) = tokio::join!(credentials(inner), live_for(inner, &app));

    let (project, dest_live) = match destination {
        Err(message) => {
            conditions.push(status::condition(reasons::INVALID_SPEC, message, &now));
            (None, None)
        }
        Ok((l, destination)) => match load_project(inner, &app, &destination).await {
            Ok(p) => (Some(p), Some(l)),
            Err(c) => {
                conditions.extend(c);
                (None, None)
            }
        },
    };
    let compared = match (&project, &dest_live) {
        (Some(project), Some(dest_live)) => match compare(
            inner,
            Request {
                app: &app,
                app_name: &app_name,
                sources: &sources,
                multi,
                revisions: None,
                refresh: refresh_kind,
                creds: &creds,
                live: dest_live,
            },
            project,
        )
        .await
        {
            Ok(c) => Some(c),
            Err(message) => {
                conditions.push(status::condition(reasons::COMPARISON_ERROR, message, &now));
                None
            }
        },
        _ => None,
    };
    if let (Some(c), Some(l)) = (&compared, &dest_live)
        && Arc::ptr_eq(l, &inner.live)
    {
        let kinds: BTreeSet<(String, String)> = c
            .cmp
            .resources
            .iter()
            .map(|r| (r.key.group.clone(), r.key.kind.clone()))
            .collect();
        super::watch_kinds(inner, &kinds).await;
    }
    match &compared {
        Some(c) => {
            comparison_status(&mut status, &app, key, c);
            conditions.extend(c.conditions.iter().cloned());
        }
        None => {
            // Previous resources and health stay; the comparison is unknown.
            let mut sync = status.sync.clone().unwrap_or_default();
            sync.status = Some("Unknown".into());
            status.sync = Some(sync);
        }
    }
    status.reconciled_at = Some(now.clone());

    let mut requeue = inner.settings.resync_interval;
    let mut edit = Edit {
        remove_refresh: refresh.is_some(),
        ..Edit::default()
    };
    // Automated sync.
    if app.operation.is_none()
        && let Some(c) = &compared
    {
        let last = last_operation(&status);
        let decision = status::auto_sync(&AutoSyncInput {
            policy: app.spec.sync_policy.as_ref(),
            comparison: &c.cmp,
            revisions: &c.target.revisions,
            last: last.as_ref(),
            operation_pending: false,
            deleting: false,
        });
        match decision {
            AutoSync::Skip(why) => tracing::debug!(app = %key, reason = %why, "auto-sync skipped"),
            AutoSync::Refuse(message) => {
                conditions.push(status::condition(reasons::SYNC_ERROR, message, &now));
            }
            AutoSync::WaitFor(d) => requeue = requeue.min(d),
            AutoSync::Sync(op) => {
                tracing::info!(app = %key, "auto-sync initiated");
                edit.set_operation = Some(op);
            }
        }
    }
    keep_user_conditions(&mut conditions, &status);
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    edit.status = Some(status);
    save(&api, &mut app, &edit).await?;

    if app.operation.is_some()
        && let (Some(project), Some(dest_live)) = (&project, &dest_live)
    {
        let mut status = app.status.clone().unwrap_or_default();
        let ctx = applier::OpContext {
            app_name: &app_name,
            compared: compared.as_ref(),
            project,
            creds: &creds,
            live: dest_live,
        };
        let after = applier::run_operation(inner, &api, &mut app, &mut status, &ctx).await?;
        if let Some(d) = after {
            requeue = requeue.min(d);
        }
    } else if let Some(op) = app.operation.clone() {
        // The destination or the project refuses the app: the requested operation fails with
        // the same words as the condition, as Argo CD fails it, instead of waiting forever.
        let mut status = app.status.clone().unwrap_or_default();
        let reasons: Vec<String> = status
            .conditions
            .iter()
            .flatten()
            .filter(|c| c.condition_type.as_deref() == Some(reasons::INVALID_SPEC))
            .filter_map(|c| c.message.clone())
            .collect();
        let now = now_string();
        status.operation_state = Some(crate::gitops::types::OperationState {
            operation: Some(op.clone()),
            phase: Some("Failed".into()),
            message: Some(reasons.join("; ")),
            started_at: Some(now.clone()),
            finished_at: Some(now),
            ..Default::default()
        });
        let edit = Edit {
            status: Some(status),
            clear_operation: Some(op),
            ..Edit::default()
        };
        save(&api, &mut app, &edit).await?;
    }
    Ok(Some(requeue))
}

/// The per-resource diff of `app` at its target revisions (`cairn app diff`, the UI): the same
/// comparison a reconcile makes, without writing anything.
pub(crate) async fn diff_app(
    inner: &Inner,
    app: &Application,
    hard: bool,
) -> Result<Vec<crate::api::DiffItem>, String> {
    let key = AppRef {
        namespace: app.metadata.namespace.clone().unwrap_or_default(),
        name: app.metadata.name.clone().unwrap_or_default(),
    };
    let app_name = tracking_name(inner, &key);
    let (dest_live, destination) = live_for(inner, app).await?;
    let project = load_project(inner, app, &destination).await.map_err(|cs| {
        cs.iter()
            .filter_map(|c| c.message.clone())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let creds = credentials(inner).await;
    let (sources, multi) = app_sources(app);
    let c = compare(
        inner,
        Request {
            app,
            app_name: &app_name,
            sources: &sources,
            multi,
            revisions: None,
            refresh: if hard { Refresh::Hard } else { Refresh::None },
            creds: &creds,
            live: &dest_live,
        },
        &project,
    )
    .await?;
    Ok(c.cmp
        .resources
        .iter()
        .map(|r| crate::api::DiffItem {
            group: r.key.group.clone(),
            kind: r.key.kind.clone(),
            namespace: r.key.namespace.clone().unwrap_or_default(),
            name: r.key.name.clone(),
            modified: r.status != diff::SyncStatusCode::Synced,
            diff: r
                .diff
                .as_ref()
                .map(|d| d.text.clone())
                .or_else(|| r.error.clone())
                .unwrap_or_default(),
        })
        .collect())
}

/// Conditions cairn does not compute (e.g. written by another component) are kept.
fn keep_user_conditions(conditions: &mut Vec<ApplicationCondition>, status: &ApplicationStatus) {
    const OURS: &[&str] = &[
        reasons::COMPARISON_ERROR,
        reasons::INVALID_SPEC,
        reasons::SYNC_ERROR,
        reasons::SHARED_RESOURCE,
        reasons::REPEATED_RESOURCE,
        reasons::DELETION_ERROR,
    ];
    for c in status.conditions.iter().flatten() {
        let ours = c
            .condition_type
            .as_deref()
            .is_some_and(|t| OURS.contains(&t));
        if !ours {
            conditions.push(c.clone());
        }
    }
    // A condition that persists keeps its first transition time.
    for c in conditions.iter_mut() {
        if let Some(old) = status
            .conditions
            .iter()
            .flatten()
            .find(|o| o.condition_type == c.condition_type && o.message == c.message)
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.status` from a comparison: sync, health (worst resource, the app itself left out),
    /// resources with version, health, wave and requiresPruning, images.
    #[test]
    fn comparison_status_shape() {
        let desired = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "ns",
                                "annotations": {"argocd.argoproj.io/sync-wave": "2"}},
                   "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "web:1"}]}}}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "ns"},
                   "data": {"a": "1"}}),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                   "metadata": {"name": "self", "namespace": "argocd"}, "spec": {}}),
        ];
        let live = vec![
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "web", "namespace": "ns", "generation": 1},
                   "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "image": "web:1"}]}}},
                   "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                              "readyReplicas": 0, "availableReplicas": 0}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "namespace": "ns"}}),
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                   "metadata": {"name": "self", "namespace": "argocd"}, "spec": {},
                   "status": {"health": {"status": "Degraded"}}}),
        ];
        let cmp = diff::compare_app(&desired, &live, &DiffOptions::default());
        let c = Compared {
            target: Target {
                revisions: vec!["abc".into()],
                sources: vec![ApplicationSource {
                    repo_url: Some("https://git.example.com/r.git".into()),
                    path: Some("app".into()),
                    ..ApplicationSource::default()
                }],
                multi: false,
                source_types: vec!["Directory".into()],
            },
            desired,
            live,
            cmp,
            conditions: vec![],
            violations: vec![],
        };
        let app = Application::default();
        let key = AppRef {
            namespace: "argocd".into(),
            name: "self".into(),
        };
        let mut status = ApplicationStatus::default();
        comparison_status(&mut status, &app, &key, &c);
        if let Some(h) = status.health.as_mut() {
            assert!(h.last_transition_time.take().is_some());
        }
        insta::assert_json_snapshot!(status);
    }

    #[test]
    fn edit_clears_only_the_consumed_operation() {
        let mut app = Application::default();
        let op = json!({"sync": {"revision": "a"}});
        app.operation = Some(json!({"sync": {"revision": "b"}}));
        apply_edit(
            &mut app,
            &Edit {
                clear_operation: Some(op.clone()),
                ..Edit::default()
            },
        );
        assert!(app.operation.is_some(), "a newer operation is kept");
        app.operation = Some(op.clone());
        apply_edit(
            &mut app,
            &Edit {
                clear_operation: Some(op),
                ..Edit::default()
            },
        );
        assert!(app.operation.is_none());
    }

    #[test]
    fn last_operation_from_status() {
        let status: ApplicationStatus = serde_json::from_value(json!({
            "operationState": {"phase": "Failed", "message": "boom",
                "finishedAt": "2020-01-01T00:00:00Z",
                "operation": {"sync": {"selfHealAttemptsCount": 2}},
                "syncResult": {"revision": "abc"}}
        }))
        .unwrap_or_default();
        let last = last_operation(&status).unwrap_or_default();
        assert_eq!(last.revisions, vec!["abc"]);
        assert!(last.completed && !last.succeeded);
        assert_eq!(last.self_heal_attempts, 2);
        assert!(
            last.finished_ago
                .is_some_and(|d| d > Duration::from_secs(3600))
        );
    }
}
