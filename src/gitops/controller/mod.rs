//! The GitOps controller: the I/O shell that runs the pure cores (`source`, `render`, `diff`,
//! `sync`, `health`) against a real cluster, as Argo CD's application controller does.
//!
//! # What it owns
//! - A level-triggered work queue keyed by `namespace/name` of each Application (a key is never
//!   processed by two workers at once; an event during processing re-queues it once), fed by a
//!   watch of Applications in the control namespace and the extra namespaces, by delayed
//!   requeues (resync with jitter, operation progress, self-heal backoff) and by
//!   [`ControllerHandle::refresh`] (the webhook's entry point).
//! - [`reconcile`]: resolve and fetch each source (one mirror per repository), render (with the
//!   render cache; `argocd.argoproj.io/refresh: hard` bypasses it), set tracking ids and default
//!   namespaces, list live objects ([`live`]), compare, assess health, and write `.status` as Argo
//!   CD does; every bad input becomes a condition and leaves the cluster untouched.
//! - [`applier`]: operations (`.operation` written by a user or the API, or by automated sync):
//!   `sync::plan` then `sync::step` in a loop, persisting `.status.operationState` after every
//!   step and executing the actions (server-side apply, replace, hooks, prunes, hook deletions);
//!   history on success; retries; the `resources-finalizer.argocd.argoproj.io` cascade.
//! - [`status`]: the pure decisions (auto-sync, self-heal and retry backoffs, history, resource
//!   list, images summary).
//!
//! # Invariants
//! - A worker never blocks on a wave: waiting for health is a requeue (2 s), never a sleep.
//! - State lives in the Application: a restart resumes an operation from
//!   `.status.operationState` (the sync core guarantees a completed hook is never re-run).
//! - The only writes to an Application are full replaces with its resourceVersion; on a conflict
//!   the fresh object is read and only cairn's parts (status, the consumed operation, the handled
//!   refresh annotation, the finalizer) are re-applied, so a user's concurrent edit is never lost.
//! - AppProject rules ([`crate::gitops::project`]) are checked before anything is applied; a
//!   violation is a condition. Destinations other than the in-cluster one are refused with a
//!   condition until the cluster registry lands.

pub mod applier;
pub mod apply_cache;
pub mod live;
pub mod reconcile;
pub mod status;
pub mod track_index;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;

use crate::gitops::render::{RenderCache, RenderSettings};
use crate::gitops::source::{GitSource, GitSourceConfig, url::normalize_url};
use crate::gitops::types::Application;

/// How often an operation waiting for health or hooks is looked at again.
pub const OPERATION_POLL: Duration = Duration::from_secs(2);
/// Entries of the rendered-manifest cache.
const RENDER_CACHE_ENTRIES: usize = 256;
/// Estimated bytes of the rendered-manifest cache: the current revision of every app of a small
/// team fits many times over, while old revisions (one per push) are evicted instead of
/// growing the process.
const RENDER_CACHE_BYTES: usize = 32 << 20;

/// Errors of one reconciliation (bad user input is a condition, not one of these).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// Reading or writing the Application failed.
    #[error("{action} application {app}: {source}")]
    Application {
        /// get, replace…
        action: &'static str,
        /// `namespace/name`.
        app: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The cluster could not be read (discovery, listing) for reasons other than bad input.
    #[error(transparent)]
    Live(#[from] live::LiveError),
}

impl ControllerError {
    /// Stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ControllerError::Application { .. } => "application",
            ControllerError::Live(e) => e.metric_label(),
        }
    }
}

/// Controller settings (from `[gitops]` of the configuration).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The control namespace (`argocd` by default): tracking ids of its apps are bare names.
    pub control_namespace: String,
    /// Further namespaces whose Applications are reconciled ("applications in any namespace").
    pub namespaces: Vec<String>,
    /// How long a resolved branch/tag is trusted before `ls-remote` again (Argo CD's 180 s).
    pub poll_interval: Duration,
    /// Upper bound of the random delay added to each resync.
    pub poll_jitter: Duration,
    /// How often each Application is compared with the cluster again.
    pub resync_interval: Duration,
    /// Bound of one render (kustomize, helm).
    pub render_timeout: Duration,
    /// Concurrent reconciliations.
    pub workers: usize,
    /// cairn's data dir (Git mirrors live under `repos/`).
    pub data_dir: PathBuf,
    /// Argo CD's `installationID`: written on every applied object and required on tracked
    /// ones, so several installations share a cluster without pruning each other's objects.
    pub installation_id: Option<String>,
}

/// An Application's queue key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for AppRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Default)]
struct QueueState {
    ready: VecDeque<AppRef>,
    queued: HashSet<AppRef>,
    active: HashSet<AppRef>,
    dirty: HashSet<AppRef>,
    timers: HashMap<AppRef, Instant>,
}

/// The work queue: each key at most once in `ready`, never in two workers.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<QueueState>,
    notify: Notify,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn add(&self, key: AppRef) {
        let mut st = self.lock();
        if st.active.contains(&key) {
            st.dirty.insert(key);
            return;
        }
        if st.queued.insert(key.clone()) {
            st.ready.push_back(key);
            drop(st);
            self.notify.notify_one();
        }
    }

    pub(crate) fn add_after(self: &Arc<Self>, key: AppRef, after: Duration) {
        let due = Instant::now() + after;
        {
            let mut st = self.lock();
            if st.timers.get(&key).is_some_and(|d| *d <= due) {
                return;
            }
            st.timers.insert(key.clone(), due);
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let fire = {
                let mut st = queue.lock();
                if st.timers.get(&key) == Some(&due) {
                    st.timers.remove(&key);
                    true
                } else {
                    false
                }
            };
            if fire {
                queue.add(key);
            }
        });
    }

    async fn pop(&self) -> AppRef {
        loop {
            let notified = self.notify.notified();
            {
                let mut st = self.lock();
                if let Some(key) = st.ready.pop_front() {
                    st.queued.remove(&key);
                    st.active.insert(key.clone());
                    if !st.ready.is_empty() {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    fn done(&self, key: &AppRef) {
        let again = {
            let mut st = self.lock();
            st.active.remove(key);
            st.dirty.remove(key)
        };
        if again {
            self.add(key.clone());
        }
    }
}

/// Shared state of the controller.
pub(crate) struct Inner {
    pub(crate) settings: Settings,
    /// The in-cluster destination (and the home cluster of Applications and Secrets).
    pub(crate) live: Arc<live::Live>,
    /// Destination clusters from Secrets.
    pub(crate) clusters: crate::gitops::cluster::Clusters,
    /// Live clients of other clusters: server → (Secret resourceVersion, client).
    pub(crate) lives: Mutex<HashMap<String, (String, Arc<live::Live>)>>,
    pub(crate) git: GitSource,
    pub(crate) render: RenderSettings,
    pub(crate) cache: Mutex<RenderCache>,
    pub(crate) queue: Arc<Queue>,
    /// `(normalized url, targetRevision)` → (sha, resolved at).
    pub(crate) revisions: Mutex<HashMap<(String, String), (String, Instant)>>,
    /// Sources of each known app, for [`ControllerHandle::refresh`].
    pub(crate) sources: Mutex<BTreeMap<AppRef, Vec<(String, String)>>>,
    /// Watch fingerprints: events that change nothing but status are not work.
    fingerprints: Mutex<HashMap<AppRef, u64>>,
    /// Apps with a refresh requested through the handle: `true` for a hard refresh.
    pub(crate) refreshes: Mutex<HashMap<AppRef, bool>>,
    /// Kinds of the home cluster watched for changes of tracked objects.
    pub(crate) watched: Mutex<HashSet<(String, String)>>,
}

/// The running controller.
#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

/// What the webhook (and the API's refresh) call.
#[derive(Clone)]
pub struct ControllerHandle {
    inner: Arc<Inner>,
}

impl ControllerHandle {
    /// Refreshes the applications with a source on `repo_url` whose `targetRevision` is
    /// `revision` (a branch or tag name, `refs/heads/…` accepted) or follows HEAD; `None` matches
    /// every revision. Cached resolutions are dropped so the next reconcile asks the remote.
    /// Returns how many applications were enqueued.
    pub fn refresh(&self, repo_url: &str, revision: Option<&str>) -> usize {
        let url = normalize_url(repo_url);
        let wanted = revision.map(|r| {
            r.trim_start_matches("refs/heads/")
                .trim_start_matches("refs/tags/")
                .to_owned()
        });
        let matches = |target: &str| match &wanted {
            None => true,
            Some(w) => target == w || target.is_empty() || target == "HEAD",
        };
        let hits: Vec<AppRef> = {
            let sources = self
                .inner
                .sources
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            sources
                .iter()
                .filter(|(_, srcs)| srcs.iter().any(|(u, t)| *u == url && matches(t)))
                .map(|(k, _)| k.clone())
                .collect()
        };
        {
            let mut revs = self
                .inner
                .revisions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            revs.retain(|(u, t), _| !(*u == url && matches(t)));
        }
        for key in &hits {
            self.inner.queue.add(key.clone());
        }
        hits.len()
    }

    /// Refreshes one application now: its revisions are resolved again, and with `hard` its
    /// manifests are rendered again.
    pub fn refresh_app(&self, namespace: &str, name: &str, hard: bool) {
        let key = AppRef {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let mut refreshes = lock(&self.inner.refreshes);
        let entry = refreshes.entry(key.clone()).or_insert(false);
        *entry |= hard;
        drop(refreshes);
        self.inner.queue.add(key);
    }
}

impl crate::api::AppDiffer for ControllerHandle {
    fn diff<'a>(
        &'a self,
        app: &'a Application,
        hard: bool,
    ) -> futures::future::BoxFuture<'a, Result<Vec<crate::api::DiffItem>, String>> {
        Box::pin(reconcile::diff_app(&self.inner, app, hard))
    }
}

impl crate::gitops::webhook::AppRefresher for ControllerHandle {
    fn refresh<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        kind: crate::gitops::webhook::RefreshKind,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::gitops::webhook::WebhookError>> {
        let hard = kind == crate::gitops::webhook::RefreshKind::Hard;
        self.refresh_app(namespace, name, hard);
        Box::pin(async { Ok(()) })
    }
}

impl Controller {
    /// A controller over `client`.
    pub fn new(client: Client, settings: Settings) -> Self {
        let git = GitSource::new(GitSourceConfig::new(settings.data_dir.clone()));
        let render = RenderSettings {
            timeout: settings.render_timeout,
            ..RenderSettings::default()
        };
        Controller {
            inner: Arc::new(Inner {
                live: Arc::new(live::Live::new(
                    client.clone(),
                    settings.installation_id.clone(),
                )),
                clusters: crate::gitops::cluster::Clusters::new(
                    client,
                    settings.control_namespace.clone(),
                ),
                lives: Mutex::new(HashMap::new()),
                git,
                render,
                cache: Mutex::new(RenderCache::new(RENDER_CACHE_ENTRIES, RENDER_CACHE_BYTES)),
                queue: Arc::new(Queue::default()),
                revisions: Mutex::new(HashMap::new()),
                sources: Mutex::new(BTreeMap::new()),
                fingerprints: Mutex::new(HashMap::new()),
                refreshes: Mutex::new(HashMap::new()),
                watched: Mutex::new(HashSet::new()),
                settings,
            }),
        }
    }

    /// The handle the webhook and the API use.
    pub fn handle(&self) -> ControllerHandle {
        ControllerHandle {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Runs the watches and the workers until the task is dropped.
    pub async fn run(self) {
        let mut namespaces = vec![self.inner.settings.control_namespace.clone()];
        for ns in &self.inner.settings.namespaces {
            if !namespaces.contains(ns) {
                namespaces.push(ns.clone());
            }
        }
        for ns in namespaces {
            tokio::spawn(watch(Arc::clone(&self.inner), ns));
        }
        let mut workers = Vec::new();
        for id in 0..self.inner.settings.workers.max(1) {
            workers.push(tokio::spawn(worker(Arc::clone(&self.inner), id)));
        }
        for w in workers {
            let _ = w.await;
        }
    }
}

/// Hash of what makes an Application event worth a reconcile: spec, operation, annotations,
/// finalizers and deletion (a status-only change, e.g. cairn's own write, is not).
fn fingerprint(app: &Application) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let parts = serde_json::json!({
        "spec": app.spec,
        "operation": app.operation,
        "annotations": app.metadata.annotations,
        "finalizers": app.metadata.finalizers,
        "deleting": app.metadata.deletion_timestamp.is_some(),
        "statusless": app.status.is_none(),
    });
    parts.to_string().hash(&mut h);
    h.finish()
}

async fn watch(inner: Arc<Inner>, namespace: String) {
    let api: Api<Application> = Api::namespaced(inner.live.client().clone(), &namespace);
    let mut backoff = Duration::from_secs(1);
    loop {
        let stream = watcher(api.clone(), watcher::Config::default());
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(app) | watcher::Event::InitApply(app)) => {
                    backoff = Duration::from_secs(1);
                    let Some(name) = app.metadata.name.clone() else {
                        continue;
                    };
                    let key = AppRef {
                        namespace: namespace.clone(),
                        name,
                    };
                    let fp = fingerprint(&app);
                    let changed = {
                        let mut fps = inner
                            .fingerprints
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        fps.insert(key.clone(), fp) != Some(fp)
                    };
                    if changed {
                        inner.queue.add(key);
                    }
                }
                Ok(watcher::Event::Delete(app)) => {
                    if let Some(name) = app.metadata.name.clone() {
                        let key = AppRef {
                            namespace: namespace.clone(),
                            name,
                        };
                        lock(&inner.fingerprints).remove(&key);
                        lock(&inner.sources).remove(&key);
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(namespace = %namespace, error = %err, "application watch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

/// Coalescing delay of reconciles caused by changes of tracked objects.
const LIVE_EVENT_DELAY: Duration = Duration::from_millis(500);

/// The application a tracking id names: `<app>` in the control namespace, `<ns>_<app>`
/// elsewhere (names cannot contain `_`).
fn app_of_tracking_id(id: &str, control_namespace: &str) -> Option<AppRef> {
    let owner = id.split(':').next().filter(|o| !o.is_empty())?;
    Some(match owner.split_once('_') {
        Some((ns, name)) => AppRef {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        },
        None => AppRef {
            namespace: control_namespace.to_owned(),
            name: owner.to_owned(),
        },
    })
}

/// Watch `kinds` of the home cluster (once each): a change of an object tracked by an app
/// re-queues that app, so drift is seen (and self-healed) at once rather than at the next
/// resync, as Argo CD's cluster cache does.
pub(crate) async fn watch_kinds(
    inner: &Inner,
    kinds: &std::collections::BTreeSet<(String, String)>,
) {
    for (group, kind) in kinds {
        if !lock(&inner.watched).insert((group.clone(), kind.clone())) {
            continue;
        }
        let Some(ar) = inner.live.api_resource(group, kind).await else {
            lock(&inner.watched).remove(&(group.clone(), kind.clone()));
            continue;
        };
        // Metadata only: the annotations are all a change needs to be routed.
        let api: Api<kube::core::PartialObjectMeta<kube::api::DynamicObject>> =
            Api::all_with(inner.live.client().clone(), &ar);
        let queue = Arc::clone(&inner.queue);
        let control = inner.settings.control_namespace.clone();
        let live = Arc::clone(&inner.live);
        let (group, kind) = (group.clone(), kind.clone());
        tokio::spawn(async move {
            let installation = live.installation().map(str::to_owned);
            // The app a change concerns: the owner in its tracking id, for this installation.
            let owner = |m: &kube::core::PartialObjectMeta<kube::api::DynamicObject>| {
                let annotations = m.metadata.annotations.as_ref();
                let get = |k: &str| annotations.and_then(|a| a.get(k)).map(String::as_str);
                if get(live::INSTALLATION_ID) != installation.as_deref() {
                    return None;
                }
                get(crate::gitops::sync::TRACKING_ID)
                    .and_then(|id| id.split(':').next())
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
            };
            let obj_ref = |m: &kube::core::PartialObjectMeta<kube::api::DynamicObject>| {
                (
                    m.metadata.namespace.clone(),
                    m.metadata.name.clone().unwrap_or_default(),
                )
            };
            let stream = watcher(api, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let (meta, deleted) = match event {
                    Ok(watcher::Event::Init) => {
                        live.with_index(&group, &kind, |i| i.init());
                        continue;
                    }
                    Ok(watcher::Event::InitApply(m)) => {
                        let (r, o) = (obj_ref(&m), owner(&m));
                        live.with_index(&group, &kind, |i| i.init_apply(r, o));
                        continue;
                    }
                    Ok(watcher::Event::InitDone) => {
                        live.with_index(&group, &kind, |i| i.init_done());
                        continue;
                    }
                    Ok(watcher::Event::Apply(m)) => (m, false),
                    Ok(watcher::Event::Delete(m)) => (m, true),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        continue;
                    }
                };
                let (r, o) = (obj_ref(&meta), owner(&meta));
                if deleted {
                    live.with_index(&group, &kind, |i| i.delete(&r));
                } else {
                    live.with_index(&group, &kind, |i| i.apply(r, o.clone()));
                }
                if let Some(key) = o.and_then(|o| app_of_tracking_id(&o, &control)) {
                    queue.add_after(key, LIVE_EVENT_DELAY);
                }
            }
        });
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A jitter in `[0, max)` from the clock's nanoseconds: spreads resyncs without a RNG.
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    max.mul_f64(f64::from(nanos % 1000) / 1000.0)
}

async fn worker(inner: Arc<Inner>, id: usize) {
    loop {
        let key = inner.queue.pop().await;
        let span = tracing::info_span!("reconcile", app = %key, worker = id);
        let _guard = span.enter();
        drop(_guard);
        let started = Instant::now();
        let result = {
            use tracing::Instrument;
            reconcile::reconcile(&inner, &key)
                .instrument(span.clone())
                .await
        };
        let resync = inner.settings.resync_interval + jitter(inner.settings.poll_jitter);
        match result {
            Ok(Some(after)) => inner.queue.add_after(key.clone(), after.min(resync)),
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(app = %key, error = %err, kind = err.metric_label(), "reconcile failed");
                inner.queue.add_after(key.clone(), Duration::from_secs(5));
            }
        }
        tracing::debug!(app = %key, ms = started.elapsed().as_millis() as u64, "reconciled");
        inner.queue.done(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: &str) -> AppRef {
        AppRef {
            namespace: "argocd".into(),
            name: n.into(),
        }
    }

    #[tokio::test]
    async fn queue_dedups_and_never_hands_a_key_to_two_workers() {
        let q = Queue::default();
        q.add(key("a"));
        q.add(key("a"));
        q.add(key("b"));
        let first = q.pop().await;
        assert_eq!(first, key("a"));
        // While `a` is active, adding it marks it dirty instead of queueing it.
        q.add(key("a"));
        assert_eq!(q.pop().await, key("b"));
        assert!(q.lock().ready.is_empty());
        q.done(&first);
        assert_eq!(q.pop().await, key("a"));
        q.done(&key("a"));
        q.done(&key("b"));
        assert!(q.lock().ready.is_empty());
    }

    #[tokio::test]
    async fn delayed_adds_keep_the_earliest() {
        let q = Arc::new(Queue::default());
        q.add_after(key("a"), Duration::from_millis(20));
        // A later deadline for the same key does not postpone the earlier one.
        q.add_after(key("a"), Duration::from_secs(3600));
        let popped = tokio::time::timeout(Duration::from_secs(10), q.pop()).await;
        assert_eq!(popped.ok(), Some(key("a")));
        assert!(q.lock().timers.is_empty());
    }

    #[test]
    fn tracking_ids_name_their_application() {
        let a = app_of_tracking_id("web:apps/Deployment:prod/web", "argocd");
        assert_eq!(a, Some(key("web")));
        let b = app_of_tracking_id("team-a_web:/ConfigMap:prod/c", "argocd");
        assert_eq!(
            b,
            Some(AppRef {
                namespace: "team-a".into(),
                name: "web".into()
            })
        );
        assert_eq!(app_of_tracking_id(":x", "argocd"), None);
    }

    #[test]
    fn fingerprint_ignores_status() {
        let mut app = Application {
            status: Some(Default::default()),
            ..Application::default()
        };
        let a = fingerprint(&app);
        if let Some(s) = app.status.as_mut() {
            s.reconciled_at = Some("now".into());
        }
        assert_eq!(a, fingerprint(&app));
        app.operation = Some(serde_json::json!({"sync": {}}));
        assert_ne!(a, fingerprint(&app));
    }
}
