//! Live state: the cluster side of a comparison and of a sync.
//!
//! Owns the discovery cache (group/kind → plural and scope), the listing of the objects an
//! Application tracks (by the `argocd.argoproj.io/tracking-id` annotation, never by label), and
//! every write the applier makes: server-side apply (field manager `cairn`, conflicts forced),
//! its `dryRun=All` variant for the server-side diff, replace-or-create, and delete.
//!
//! Invariants:
//! - Listing is label-selector-free: objects of every kind the app desires or last reported are
//!   listed cluster-wide and kept when their tracking id names the app, or when they share an
//!   identity with a desired object (the planner then decides: adopt, report, or refuse).
//! - A kind the apiserver does not serve is reported per object ([`LiveError::UnknownKind`]),
//!   never guessed; discovery is refreshed at most once per [`DISCOVERY_MIN_AGE`] on a miss, so a
//!   CRD applied in an earlier wave of the same sync becomes usable for the next one.
//! - Errors carry the apiserver's message verbatim (it is what the user must read), and name the
//!   object as `group/kind/namespace/name`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{Discovery, Scope};
use kube::{Client, ResourceExt};
use serde_json::Value;
use tokio::sync::RwLock;

use super::apply_cache::{ApplyCache, LiveState, digest};
use super::track_index::{Fetch, KindIndex, ObjRef, fetch_plan};
use crate::gitops::cluster::Cluster;
use crate::gitops::sync::TRACKING_ID;
use crate::gitops::sync::options::PropagationPolicy;
use crate::k8s::{FIELD_MANAGER, ResourceKey};

/// A miss refreshes discovery only when the cache is older than this: a CRD created by a sync
/// is found on the next wave, while a typo'd kind does not hammer the apiserver.
pub const DISCOVERY_MIN_AGE: Duration = Duration::from_secs(2);

/// Errors talking to the cluster about one object or kind.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The apiserver serves no such group/kind (its CRD is missing).
    #[error(
        "{object}: the server could not find the requested resource (kind {kind} in group {group:?} is not served; is its CRD installed?)"
    )]
    UnknownKind {
        /// The object, as `group/kind/namespace/name`.
        object: String,
        /// API group.
        group: String,
        /// Kind.
        kind: String,
    },
    /// The object lacks apiVersion, kind or name.
    #[error("object {object}: {reason}")]
    Invalid {
        /// What is known of it.
        object: String,
        /// What is missing.
        reason: String,
    },
    /// Discovery failed.
    #[error("API discovery failed: {0}")]
    Discovery(#[source] Box<kube::Error>),
    /// An API call was rejected or failed.
    #[error("{action} {object}: {message}")]
    Api {
        /// What was attempted (apply, delete…).
        action: &'static str,
        /// The object.
        object: String,
        /// The apiserver's message.
        message: String,
    },
}

impl LiveError {
    /// Stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            LiveError::UnknownKind { .. } => "unknown_kind",
            LiveError::Invalid { .. } => "invalid",
            LiveError::Discovery(_) => "discovery",
            LiveError::Api { .. } => "api",
        }
    }
}

fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

/// One discovered kind.
#[derive(Clone, Debug)]
struct Kind {
    plural: String,
    version: String,
    namespaced: bool,
}

#[derive(Default)]
struct Cache {
    kinds: HashMap<(String, String), Kind>,
    refreshed: Option<Instant>,
}

/// Estimated bytes of the apply cache of one cluster: a 500-object app's answers take a few
/// MiB; older entries (objects of other revisions, pruned objects) are evicted first.
const APPLY_CACHE_BYTES: usize = 16 << 20;
/// Reads by name in flight at once while listing an app's objects.
const READ_CONCURRENCY: usize = 16;

/// The cluster client with a discovery cache; cheap to share behind an `Arc`.
pub struct Live {
    client: Client,
    cache: RwLock<Cache>,
    installation: Option<String>,
    cluster: Cluster,
    /// The server's answers to applies ([`super::apply_cache`]).
    answers: std::sync::Mutex<ApplyCache>,
    /// What the metadata watches know of each watched kind (home cluster only).
    index: std::sync::Mutex<HashMap<(String, String), KindIndex>>,
}

/// `(group, version)` of an apiVersion string.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

/// The identity of an object (group from its apiVersion).
pub fn key_of(obj: &Value) -> Option<ResourceKey> {
    let api = obj.get("apiVersion")?.as_str()?;
    let kind = obj.get("kind")?.as_str()?;
    let name = obj.pointer("/metadata/name")?.as_str()?;
    let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
    Some(ResourceKey::from_api_version(api, kind, ns, name))
}

/// Argo CD's tracking id of `key` for application `app`.
pub fn tracking_id(app: &str, key: &ResourceKey) -> String {
    format!(
        "{app}:{}/{}:{}/{}",
        key.group,
        key.kind,
        key.namespace.as_deref().unwrap_or(""),
        key.name
    )
}

/// Argo CD's annotation telling apart the objects of several installations on one cluster.
pub const INSTALLATION_ID: &str = "argocd.argoproj.io/installation-id";

/// Whether `obj` carries a tracking id naming `app` and describing the object itself, and
/// belongs to this installation: its installation id equals `installation` (both absent when
/// none is configured, so an object of an installation with an id is never taken for ours).
pub fn tracked_by(obj: &Value, app: &str, installation: Option<&str>) -> bool {
    let Some(key) = key_of(obj) else { return false };
    let annotations = obj.pointer("/metadata/annotations");
    let annotation = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
    annotation(TRACKING_ID) == Some(tracking_id(app, &key).as_str())
        && annotation(INSTALLATION_ID) == installation
}

impl Live {
    /// A live-state client of the in-cluster destination; `installation` is Argo CD's
    /// installation id.
    pub fn new(client: Client, installation: Option<String>) -> Self {
        Self::for_cluster(client, installation, Cluster::in_cluster())
    }

    /// A live-state client of `cluster` (a namespace-scoped cluster is only listed in its
    /// namespaces, as Argo CD does).
    pub fn for_cluster(client: Client, installation: Option<String>, cluster: Cluster) -> Self {
        Live {
            client,
            cache: RwLock::new(Cache::default()),
            installation: installation.filter(|i| !i.is_empty()),
            cluster,
            answers: std::sync::Mutex::new(ApplyCache::new(APPLY_CACHE_BYTES)),
            index: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Feeds the index of `(group, kind)` (the metadata watch of that kind calls this).
    pub fn with_index<T>(&self, group: &str, kind: &str, f: impl FnOnce(&mut KindIndex) -> T) -> T {
        let mut index = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(index
            .entry((group.to_owned(), kind.to_owned()))
            .or_default())
    }

    /// The requests that find the objects of `(group, kind)` concerning `app`.
    fn fetch_plan(
        &self,
        group: &str,
        kind: &str,
        app: &str,
        wanted: &BTreeSet<ResourceKey>,
        namespaced: bool,
    ) -> Vec<Fetch> {
        // A namespace-scoped cluster is listed namespace by namespace below; no index there.
        if !self.cluster.namespaces.is_empty() {
            return vec![Fetch::All];
        }
        let refs: BTreeSet<ObjRef> = wanted
            .iter()
            .filter(|k| k.group == group && k.kind == kind)
            .map(|k| (k.namespace.clone(), k.name.clone()))
            .collect();
        let index = self
            .index
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        fetch_plan(
            index.get(&(group.to_owned(), kind.to_owned())),
            app,
            &refs,
            namespaced,
        )
    }

    fn answers(&self) -> std::sync::MutexGuard<'_, ApplyCache> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A server-side dry run of `obj` against `live` (the object it would change, when it
    /// exists), answered from the apply cache when this exact live state was answered before;
    /// a fresh answer is recorded.
    pub async fn dry_run(
        &self,
        obj: &Value,
        live: Option<&Value>,
        validate: bool,
    ) -> Result<Value, LiveError> {
        let state = live.and_then(LiveState::of);
        let d = digest(obj);
        if let Some(state) = &state
            && let Some(answer) = self.answers().answer(&d, state)
        {
            return Ok((*answer).clone());
        }
        let answer = self.apply(obj, true, validate).await?;
        if let Some(state) = state
            && !answer.is_null()
        {
            self.answers().record(d, state, validate, answer.clone());
        }
        Ok(answer)
    }

    /// Whether the apply cache says the server accepts `obj` against `live` (see
    /// [`ApplyCache::accepted`]): the pre-sync dry run of it may be skipped.
    pub fn known_accepted(&self, obj: &Value, live: Option<&Value>, validate: bool) -> bool {
        let Some(state) = live.and_then(LiveState::of) else {
            return false;
        };
        self.answers().accepted(&digest(obj), &state, validate)
    }

    /// The destination cluster.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The installation id, if configured.
    pub fn installation(&self) -> Option<&str> {
        self.installation.as_deref()
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn refresh(&self, force: bool) -> Result<(), LiveError> {
        {
            let cache = self.cache.read().await;
            if let Some(at) = cache.refreshed
                && (!force || at.elapsed() < DISCOVERY_MIN_AGE)
            {
                return Ok(());
            }
        }
        let discovery = match Discovery::new(self.client.clone()).run_aggregated().await {
            Ok(d) => d,
            Err(_) => Discovery::new(self.client.clone())
                .run()
                .await
                .map_err(|e| LiveError::Discovery(Box::new(e)))?,
        };
        let mut kinds = HashMap::new();
        for group in discovery.groups() {
            for (ar, caps) in group.recommended_resources() {
                kinds.insert(
                    (ar.group.clone(), ar.kind.clone()),
                    Kind {
                        plural: ar.plural.clone(),
                        version: ar.version.clone(),
                        namespaced: caps.scope == Scope::Namespaced,
                    },
                );
            }
        }
        let mut cache = self.cache.write().await;
        cache.kinds = kinds;
        cache.refreshed = Some(Instant::now());
        Ok(())
    }

    /// Whether `(group, kind)` is served, and namespaced; refreshes discovery on a miss.
    pub async fn scope(&self, group: &str, kind: &str) -> Result<Option<bool>, LiveError> {
        self.refresh(false).await?;
        let k = (group.to_owned(), kind.to_owned());
        if let Some(found) = self.cache.read().await.kinds.get(&k) {
            return Ok(Some(found.namespaced));
        }
        self.refresh(true).await?;
        Ok(self.cache.read().await.kinds.get(&k).map(|x| x.namespaced))
    }

    /// The API resource of `(group, kind)` at its preferred version, if served.
    pub async fn api_resource(&self, group: &str, kind: &str) -> Option<ApiResource> {
        self.resource(group, kind, None, kind)
            .await
            .ok()
            .map(|(ar, _)| ar)
    }

    /// Every cluster-scoped `(group, kind)` the apiserver serves (for the planner).
    pub async fn cluster_scoped(&self) -> Result<BTreeSet<(String, String)>, LiveError> {
        self.refresh(false).await?;
        Ok(self
            .cache
            .read()
            .await
            .kinds
            .iter()
            .filter(|(_, k)| !k.namespaced)
            .map(|(gk, _)| gk.clone())
            .collect())
    }

    /// The API resource for `(group, kind)` at `version` (the discovered preferred version when
    /// `None`), and whether it is namespaced.
    async fn resource(
        &self,
        group: &str,
        kind: &str,
        version: Option<&str>,
        object: &str,
    ) -> Result<(ApiResource, bool), LiveError> {
        let k = (group.to_owned(), kind.to_owned());
        let mut found = self.cache.read().await.kinds.get(&k).cloned();
        if found.is_none() {
            self.refresh(true).await?;
            found = self.cache.read().await.kinds.get(&k).cloned();
        }
        let Some(found) = found else {
            return Err(LiveError::UnknownKind {
                object: object.to_owned(),
                group: group.to_owned(),
                kind: kind.to_owned(),
            });
        };
        let version = version.unwrap_or(&found.version);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        Ok((
            ApiResource::from_gvk_with_plural(&gvk, &found.plural),
            found.namespaced,
        ))
    }

    fn api_for(&self, ar: &ApiResource, namespaced: bool, ns: Option<&str>) -> Api<DynamicObject> {
        match (namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
            (true, None) => Api::default_namespaced_with(self.client.clone(), ar),
            (false, _) => Api::all_with(self.client.clone(), ar),
        }
    }

    async fn api_of(&self, obj: &Value) -> Result<(Api<DynamicObject>, String, String), LiveError> {
        let label = key_of(obj)
            .map(|k| k.to_string())
            .unwrap_or_else(|| "<unnamed>".into());
        let invalid = |reason: &str| LiveError::Invalid {
            object: label.clone(),
            reason: reason.to_owned(),
        };
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("apiVersion is missing"))?;
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("kind is missing"))?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("metadata.name is missing"))?;
        let (group, version) = split_api_version(api_version);
        let (ar, namespaced) = self.resource(group, kind, Some(version), &label).await?;
        let ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        Ok((self.api_for(&ar, namespaced, ns), name.to_owned(), label))
    }

    /// Every object of a kind in the cluster (a namespace-scoped cluster: in its namespaces,
    /// cluster-scoped kinds only when it manages cluster resources).
    async fn list_all(
        &self,
        ar: &ApiResource,
        namespaced: bool,
    ) -> Result<Vec<DynamicObject>, LiveError> {
        let apis: Vec<Api<DynamicObject>> = if self.cluster.namespaces.is_empty() {
            vec![Api::all_with(self.client.clone(), ar)]
        } else if namespaced {
            self.cluster
                .namespaces
                .iter()
                .map(|ns| Api::namespaced_with(self.client.clone(), ns, ar))
                .collect()
        } else if self.cluster.cluster_resources {
            vec![Api::all_with(self.client.clone(), ar)]
        } else {
            Vec::new()
        };
        let mut items = Vec::new();
        for api in apis {
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| LiveError::Api {
                    action: "list",
                    object: format!("{}/{}", ar.group, ar.kind),
                    message: api_message(&e),
                })?;
            items.extend(list.items);
        }
        Ok(items)
    }

    /// Objects of `kinds` tracked to `app`, plus those whose identity is in `wanted`. A kind that
    /// is not served is reported in the second list (`group/kind`) and skipped.
    pub async fn list_for_app(
        &self,
        app: &str,
        kinds: &BTreeSet<(String, String)>,
        wanted: &BTreeSet<ResourceKey>,
    ) -> Result<(Vec<Value>, Vec<String>), LiveError> {
        self.refresh(false).await?;
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for (group, kind) in kinds {
            let (ar, _) = match self
                .resource(group, kind, None, &format!("{group}/{kind}"))
                .await
            {
                Ok(r) => r,
                Err(LiveError::UnknownKind { .. }) => {
                    missing.push(format!("{group}/{kind}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let (ar, namespaced) = (ar, self.scope(group, kind).await?.unwrap_or(true));
            let list_err = |e: kube::Error| LiveError::Api {
                action: "list",
                object: format!("{group}/{kind}"),
                message: api_message(&e),
            };
            let mut items = Vec::new();
            let mut reads = Vec::new();
            for fetch in self.fetch_plan(group, kind, app, wanted, namespaced) {
                match fetch {
                    Fetch::All => items.extend(self.list_all(&ar, namespaced).await?),
                    Fetch::Namespace(ns) => {
                        let api: Api<DynamicObject> =
                            Api::namespaced_with(self.client.clone(), &ns, &ar);
                        items.extend(api.list(&Default::default()).await.map_err(list_err)?.items);
                    }
                    Fetch::Get((ns, name)) => {
                        reads.push((self.api_for(&ar, namespaced, ns.as_deref()), name))
                    }
                }
            }
            use futures::StreamExt as _;
            let gets: Vec<_> = reads.iter().map(|(api, name)| api.get_opt(name)).collect();
            let found: Vec<_> = futures::stream::iter(gets)
                .buffer_unordered(READ_CONCURRENCY)
                .collect()
                .await;
            for f in found {
                items.extend(f.map_err(|e| LiveError::Api {
                    action: "get",
                    object: format!("{group}/{kind}"),
                    message: api_message(&e),
                })?);
            }
            for item in items {
                let Ok(mut v) = serde_json::to_value(&item) else {
                    continue;
                };
                // Lists omit apiVersion/kind on items for some servers; set them from the list.
                if let Some(m) = v.as_object_mut() {
                    m.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
                    m.insert("kind".into(), Value::String(ar.kind.clone()));
                }
                let keep = tracked_by(&v, app, self.installation.as_deref())
                    || key_of(&v).is_some_and(|k| wanted.contains(&k));
                if keep {
                    out.push(v);
                }
            }
        }
        Ok((out, missing))
    }

    /// The live object with `obj`'s identity, if any.
    pub async fn get(&self, obj: &Value) -> Result<Option<Value>, LiveError> {
        let (api, name, label) = self.api_of(obj).await?;
        match api.get_opt(&name).await {
            Ok(found) => Ok(found.and_then(|o| serde_json::to_value(o).ok())),
            Err(e) => Err(LiveError::Api {
                action: "get",
                object: label,
                message: api_message(&e),
            }),
        }
    }

    /// Server-side apply (field manager `cairn`, conflicts forced); `dry_run` asks the server for
    /// the object it would store. `validate: false` turns field validation off.
    pub async fn apply(
        &self,
        obj: &Value,
        dry_run: bool,
        validate: bool,
    ) -> Result<Value, LiveError> {
        let (api, name, label) = self.api_of(obj).await?;
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        if dry_run {
            params = params.dry_run();
        }
        if !validate {
            params = params.validation_ignore();
        }
        let applied = api
            .patch(&name, &params, &Patch::Apply(obj))
            .await
            .map_err(|e| LiveError::Api {
                action: if dry_run { "dry-run apply" } else { "apply" },
                object: label,
                message: api_message(&e),
            })?;
        let answer = serde_json::to_value(applied).unwrap_or(Value::Null);
        // The stored object is what applying `obj` to it again would give: a later sync of
        // the unchanged object needs no dry run.
        if !dry_run && let Some(state) = LiveState::of(&answer) {
            self.answers()
                .record(digest(obj), state, validate, answer.clone());
        }
        Ok(answer)
    }

    /// `Replace=true`: replace the live object (keeping its resourceVersion) or create it.
    /// Returns what was done and the object the server stored.
    pub async fn replace(&self, obj: &Value) -> Result<(&'static str, Value), LiveError> {
        let (api, name, label) = self.api_of(obj).await?;
        let err = |action: &'static str, e: kube::Error| LiveError::Api {
            action,
            object: label.clone(),
            message: api_message(&e),
        };
        let mut data: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|e| LiveError::Invalid {
                object: label.clone(),
                reason: e.to_string(),
            })?;
        let pp = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        let (how, stored) = match api.get_opt(&name).await.map_err(|e| err("get", e))? {
            Some(live) => {
                data.metadata.resource_version = live.resource_version();
                let stored = api
                    .replace(&name, &pp, &data)
                    .await
                    .map_err(|e| err("replace", e))?;
                ("replaced", stored)
            }
            None => {
                let stored = api.create(&pp, &data).await.map_err(|e| err("create", e))?;
                ("created", stored)
            }
        };
        Ok((how, serde_json::to_value(stored).unwrap_or(Value::Null)))
    }

    /// Delete `obj` (NotFound is success). Returns whether it was still present.
    pub async fn delete(&self, obj: &Value, policy: PropagationPolicy) -> Result<bool, LiveError> {
        let (api, name, label) = self.api_of(obj).await?;
        let dp = match policy {
            PropagationPolicy::Foreground => DeleteParams::foreground(),
            PropagationPolicy::Background => DeleteParams::background(),
            PropagationPolicy::Orphan => DeleteParams::orphan(),
        };
        match api.delete(&name, &dp).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(LiveError::Api {
                action: "delete",
                object: label,
                message: api_message(&e),
            }),
        }
    }

    /// Whether the namespace exists (a namespace-scoped cluster's namespaces are taken to).
    pub async fn namespace_exists(&self, ns: &str) -> Result<bool, LiveError> {
        if self.cluster.manages_namespace(ns) && !self.cluster.namespaces.is_empty() {
            return Ok(true);
        }
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        api.get_opt(ns)
            .await
            .map(|n| n.is_some())
            .map_err(|e| LiveError::Api {
                action: "get",
                object: format!("/Namespace//{ns}"),
                message: api_message(&e),
            })
    }
}

/// Sets each desired object's namespace as Argo CD does: the destination namespace for
/// namespaced kinds that name none, none for cluster-scoped kinds. Kinds the apiserver does not
/// serve are treated as namespaced (their apply reports the missing CRD).
pub fn default_namespaces(
    desired: &mut [Value],
    destination_ns: &str,
    scopes: &BTreeMap<(String, String), bool>,
) {
    for obj in desired.iter_mut() {
        let group = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .map(|a| split_api_version(a).0.to_owned())
            .unwrap_or_default();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let namespaced = scopes.get(&(group, kind)).copied().unwrap_or(true);
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        if !namespaced {
            meta.remove("namespace");
        } else if meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && !destination_ns.is_empty()
        {
            meta.insert("namespace".into(), Value::String(destination_ns.to_owned()));
        }
    }
}

/// Sets the tracking annotation of `app` (and the installation id, when configured) on each
/// desired object that has a name.
pub fn set_tracking(desired: &mut [Value], app: &str, installation: Option<&str>) {
    for obj in desired.iter_mut() {
        let Some(key) = key_of(obj) else { continue };
        let id = tracking_id(app, &key);
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if !annotations.is_object() {
            *annotations = Value::Object(Default::default());
        }
        if let Some(a) = annotations.as_object_mut() {
            a.insert(TRACKING_ID.into(), Value::String(id));
            if let Some(i) = installation {
                a.insert(INSTALLATION_ID.into(), Value::String(i.to_owned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespaces_default_by_scope() {
        let mut desired = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "x"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        ];
        let scopes = BTreeMap::from([
            (("".to_owned(), "ConfigMap".to_owned()), true),
            (("".to_owned(), "Namespace".to_owned()), false),
        ]);
        default_namespaces(&mut desired, "dest", &scopes);
        let ns: Vec<Option<&str>> = desired
            .iter()
            .map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str))
            .collect();
        assert_eq!(ns, vec![Some("dest"), Some("other"), None, Some("dest")]);
    }

    #[test]
    fn tracking_ids_are_argo_cds_format_and_recognised() {
        let mut desired = vec![json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod"}})];
        let mut other_install = desired.clone();
        set_tracking(&mut desired, "guestbook", None);
        assert_eq!(
            desired[0]["metadata"]["annotations"][TRACKING_ID],
            "guestbook:apps/Deployment:prod/web"
        );
        assert!(tracked_by(&desired[0], "guestbook", None));
        assert!(!tracked_by(&desired[0], "other", None));
        // A tracking id copied onto another object does not make it tracked.
        let mut copy = desired[0].clone();
        copy["metadata"]["name"] = json!("web-2");
        assert!(!tracked_by(&copy, "guestbook", None));
        // Installations with an id only see their own objects, and are invisible to others.
        set_tracking(&mut other_install, "guestbook", Some("lab-a"));
        assert_eq!(
            other_install[0]["metadata"]["annotations"][INSTALLATION_ID],
            "lab-a"
        );
        assert!(tracked_by(&other_install[0], "guestbook", Some("lab-a")));
        assert!(!tracked_by(&other_install[0], "guestbook", Some("lab-b")));
        assert!(!tracked_by(&other_install[0], "guestbook", None));
        assert!(!tracked_by(&desired[0], "guestbook", Some("lab-a")));
    }
}
