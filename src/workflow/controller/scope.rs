//! The namespaces a workflow controller watches and acts in (`[workflow] namespaces`).
//!
//! With namespaces configured, every namespaced kind the controllers read (Workflows, pods,
//! WorkflowTaskResults, WorkflowTemplates, CronWorkflows) is watched per namespace, so objects of
//! other namespaces never reach a cache or the work queue, and a controller whose RBAC is limited
//! to its namespaces can run. Without any, one cluster-wide watch (Argo's default). Two servers
//! sharing an instance id but configured with different namespaces therefore never reconcile
//! each other's workflows. ClusterWorkflowTemplates are cluster-scoped and always watched whole.
//!
//! [`watch_targets`] and [`manages`] are the pure rules; [`Scoped`] reads several per-namespace
//! reflector stores as one.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::WorkQueue;

/// Where one watch looks: one namespace, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WatchTarget {
    /// Every namespace (no namespaces configured).
    All,
    /// One namespace.
    Namespace(String),
}

/// The watches a controller configured with `namespaces` runs per namespaced kind: one
/// cluster-wide watch when none (or only empty names) are configured, else one per distinct
/// namespace, sorted.
pub fn watch_targets(namespaces: &[String]) -> Vec<WatchTarget> {
    let distinct: BTreeSet<&str> = namespaces
        .iter()
        .map(String::as_str)
        .filter(|n| !n.is_empty())
        .collect();
    if distinct.is_empty() {
        vec![WatchTarget::All]
    } else {
        distinct
            .into_iter()
            .map(|n| WatchTarget::Namespace(n.to_owned()))
            .collect()
    }
}

/// Whether an object in `namespace` belongs to a controller configured with `namespaces`
/// (all namespaces when none are configured).
pub fn manages(namespaces: &[String], namespace: &str) -> bool {
    let mut configured = namespaces.iter().filter(|n| !n.is_empty()).peekable();
    configured.peek().is_none() || configured.any(|n| n == namespace)
}

impl WatchTarget {
    /// The API of `K` this target watches.
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match self {
            WatchTarget::All => Api::all(client),
            WatchTarget::Namespace(ns) => Api::namespaced(client, ns),
        }
    }
}

/// Several reflector stores, one per [`WatchTarget`], read as one cache. Lookups by key go to the
/// store of the key's namespace only.
pub struct Scoped<K: Resource<DynamicType = ()> + 'static> {
    stores: Arc<Vec<(WatchTarget, Store<K>)>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Scoped<K> {
    fn clone(&self) -> Self {
        Self {
            stores: self.stores.clone(),
        }
    }
}

impl<K> Scoped<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    /// The stores, each with the target it was filled from.
    pub fn new(stores: Vec<(WatchTarget, Store<K>)>) -> Self {
        Self {
            stores: Arc::new(stores),
        }
    }

    /// One cluster-wide store (cluster-scoped kinds, tests).
    pub fn all(store: Store<K>) -> Self {
        Self::new(vec![(WatchTarget::All, store)])
    }

    /// The object `key` names, from the store covering its namespace.
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>> {
        self.stores.iter().find_map(|(target, store)| {
            let covers = match target {
                WatchTarget::All => true,
                WatchTarget::Namespace(ns) => key.namespace.as_deref() == Some(ns.as_str()),
            };
            if covers { store.get(key) } else { None }
        })
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|(_, s)| s.state()).collect()
    }

    /// Waits until every store has its first list; `Err` when a store's writer was dropped.
    pub async fn wait_until_ready(&self) -> Result<(), reflector::store::WriterDropped> {
        for (_, store) in self.stores.iter() {
            store.wait_until_ready().await?;
        }
        Ok(())
    }
}

/// Starts one reflector of `K` per target (see [`super::watch`]), pushing their tasks onto
/// `tasks`, and returns their stores as one.
pub(crate) fn watch_scoped<K>(
    client: &Client,
    targets: &[WatchTarget],
    config: &watcher::Config,
    queue: &WorkQueue,
    to_key: impl Fn(&K) -> Option<String> + Clone + Send + 'static,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Scoped<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stores = targets
        .iter()
        .map(|target| {
            let (store, task) = super::watch(
                target.api::<K>(client.clone()),
                config.clone(),
                queue.clone(),
                to_key.clone(),
            );
            tasks.push(task);
            (target.clone(), store)
        })
        .collect();
    Scoped::new(stores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::types::Workflow;

    fn ns(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn no_namespaces_is_one_cluster_wide_watch() {
        assert_eq!(watch_targets(&[]), vec![WatchTarget::All]);
        assert_eq!(watch_targets(&ns(&[""])), vec![WatchTarget::All]);
    }

    #[test]
    fn configured_namespaces_are_one_watch_each_deduplicated() {
        assert_eq!(
            watch_targets(&ns(&["ml", "ci", "ml", ""])),
            vec![
                WatchTarget::Namespace("ci".into()),
                WatchTarget::Namespace("ml".into())
            ]
        );
    }

    #[test]
    fn manages_only_configured_namespaces() {
        assert!(manages(&[], "anything"));
        assert!(manages(&ns(&[""]), "anything"));
        let two = ns(&["team-a", "team-b"]);
        assert!(manages(&two, "team-a"));
        assert!(manages(&two, "team-b"));
        assert!(!manages(&two, "team-c"));
        assert!(!manages(&two, ""));
        // Same instance id, different namespaces: disjoint.
        let a = ns(&["wf-a"]);
        let b = ns(&["wf-b"]);
        for n in ["wf-a", "wf-b", "other"] {
            assert!(!(manages(&a, n) && manages(&b, n)), "{n} claimed twice");
        }
    }

    fn put(w: &mut reflector::store::Writer<Workflow>, namespace: &str, name: &str) {
        w.apply_watcher_event(&watcher::Event::Apply(Workflow::test(namespace, name)));
    }

    #[test]
    fn scoped_reads_each_namespace_from_its_own_store() {
        let (ra, mut wa) = reflector::store::<Workflow>();
        let (rb, mut wb) = reflector::store::<Workflow>();
        put(&mut wa, "a", "x");
        // A store never holds another namespace's objects in practice; if one did, a lookup by
        // key must still not find it through the wrong store.
        put(&mut wb, "a", "stray");
        put(&mut wb, "b", "y");
        let scoped = Scoped::new(vec![
            (WatchTarget::Namespace("a".into()), ra),
            (WatchTarget::Namespace("b".into()), rb),
        ]);
        assert!(scoped.get(&ObjectRef::new("x").within("a")).is_some());
        assert!(scoped.get(&ObjectRef::new("y").within("b")).is_some());
        assert!(scoped.get(&ObjectRef::new("stray").within("a")).is_none());
        assert!(scoped.get(&ObjectRef::new("x").within("b")).is_none());
        assert!(scoped.get(&ObjectRef::new("y").within("c")).is_none());
        let mut names: Vec<_> = scoped
            .state()
            .iter()
            .map(|w| w.metadata.name.clone().unwrap_or_default())
            .collect();
        names.sort();
        assert_eq!(names, vec!["stray", "x", "y"]);
    }

    #[test]
    fn scoped_all_finds_any_namespace() {
        let (r, mut w) = reflector::store::<Workflow>();
        put(&mut w, "a", "x");
        put(&mut w, "b", "y");
        let scoped = Scoped::all(r);
        assert!(scoped.get(&ObjectRef::new("x").within("a")).is_some());
        assert!(scoped.get(&ObjectRef::new("y").within("b")).is_some());
        assert_eq!(scoped.state().len(), 2);
    }
}
