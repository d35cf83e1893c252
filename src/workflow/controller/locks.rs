//! The controller's lock manager (Argo's `syncManager`): one in-process
//! [`LockTable`](crate::workflow::sync::LockTable) shared by the workers, the semaphore limits
//! read from the ConfigMap cache, requeues of the workflows a change lets go, the rebuild after
//! a restart, and the release of a deleted Workflow's locks. The semantics are
//! `workflow::sync`'s; this file is only their I/O wiring.
//!
//! Invariants:
//! - The table is touched under one mutex, held for one operator pass of a workflow that uses
//!   `synchronization` (so two workers never both take the last slot); workflows that cannot
//!   use a lock (no `synchronization` and no template reference anywhere in spec or status)
//!   never take the mutex.
//! - The table is rebuilt from every Workflow's `.status.synchronization` before the first
//!   reconcile, so a restart holds nothing twice.
//! - Every release (node or workflow done, Workflow deleted, ConfigMap limit raised) requeues
//!   the waiting workflows that may now take a slot.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::ObjectRef;

use super::reconcile::lock;
use super::{Caches, Decision, Shared, WorkQueue};
use crate::workflow::actions::is_completed;
use crate::workflow::sync::{self, Gate, LockTable, Locks, SemaphoreConfig};
use crate::workflow::types::Workflow;
use crate::workflow::validate::ConfigMapValue;

/// Semaphore limits from the ConfigMaps the controller watches in its namespaces.
impl SemaphoreConfig for Caches {
    fn value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
        let Some(cm) = self.semaphores.get(&ObjectRef::new(name).within(namespace)) else {
            return ConfigMapValue::NoConfigMap;
        };
        match cm.data.as_ref().and_then(|d| d.get(key)) {
            Some(v) => ConfigMapValue::Found(v.clone()),
            None => ConfigMapValue::NoKey,
        }
    }
}

/// Whether a pass over `wf` may touch a lock: `synchronization` anywhere in its spec or
/// status, or a template reference (whose templates may have one). Conservative by design:
/// a `false` here must mean the operator never asks for a lock.
pub(super) fn may_lock(wf: &Workflow) -> bool {
    let mentions = |v: Result<String, serde_json::Error>| {
        v.map(|s| s.contains(sync::FIELD) || s.contains("templateRef") || s.contains("TemplateRef"))
            .unwrap_or(true)
    };
    mentions(serde_json::to_string(&wf.spec))
        || wf
            .status
            .as_ref()
            .is_some_and(|s| s.extra.contains_key(sync::FIELD))
}

/// Runs one operator pass with the lock manager, then requeues the workflows it woke.
pub(super) fn operate(
    shared: &Shared,
    k: &str,
    wf: &Workflow,
    pass: impl FnOnce(&mut dyn Locks) -> Decision,
) -> Decision {
    if !may_lock(wf) {
        // Never consulted (see `may_lock`): an empty table of this pass's own.
        let mut table = LockTable::new();
        return pass(&mut Gate::new(&mut table, &shared.caches));
    }
    let (decision, woken) = {
        let mut table = lock(&shared.locks);
        let mut gate = Gate::new(&mut table, &shared.caches);
        let decision = pass(&mut gate);
        (decision, gate.woken)
    };
    requeue(&shared.queue, k, woken);
    decision
}

/// Releases whatever the deleted workflow `k` (`<ns>/<name>`) held or waited for.
pub(super) fn release_deleted(shared: &Shared, k: &str) {
    let woken = lock(&shared.locks).release_workflow(k);
    if !woken.is_empty() {
        tracing::info!(workflow = %k, woken = woken.len(), "released the locks of a deleted workflow");
    }
    requeue(
        &shared.queue,
        k,
        woken.iter().map(|h| sync::workflow_of(h).to_owned()),
    );
}

fn requeue(queue: &WorkQueue, k: &str, woken: impl IntoIterator<Item = String>) {
    for w in woken {
        if w != k {
            tracing::debug!(workflow = %w, by = %k, "lock available; requeued");
            queue.add(w);
        }
    }
}

/// The ConfigMap watch's handler: a changed semaphore ConfigMap sets the new limits of its
/// known keys and requeues the waiters a raised limit lets in. Never queues the ConfigMap.
pub(super) fn on_config_map(
    table: Arc<Mutex<LockTable>>,
    queue: WorkQueue,
) -> impl Fn(&ConfigMap) -> Option<String> + Clone + Send + 'static {
    move |cm: &ConfigMap| {
        let (Some(ns), Some(name)) = (
            cm.metadata.namespace.as_deref(),
            cm.metadata.name.as_deref(),
        ) else {
            return None;
        };
        let prefix = sync::config_map_prefix(ns, name);
        let mut woken = Vec::new();
        {
            let mut t = lock(&table);
            for key in t.keys_with_prefix(&prefix) {
                let data_key = &key[prefix.len()..];
                let value = match cm.data.as_ref().and_then(|d| d.get(data_key)) {
                    Some(v) => ConfigMapValue::Found(v.clone()),
                    None => ConfigMapValue::NoKey,
                };
                match sync::parse_limit(&key, value) {
                    Ok(limit) => {
                        if t.limit(&key) != Some(limit) {
                            tracing::info!(semaphore = %key, limit, "semaphore limit changed");
                        }
                        woken.extend(t.set_limit(&key, limit));
                    }
                    Err(e) => {
                        tracing::warn!(semaphore = %key, error = %e, "semaphore limit unreadable");
                    }
                }
            }
        }
        for h in woken {
            queue.add(sync::workflow_of(&h).to_owned());
        }
        None
    }
}

/// A cached Workflow as the restore reads it.
struct Row {
    namespace: String,
    name: String,
    status_extra: serde_json::Map<String, serde_json::Value>,
    completed: bool,
}

/// Rebuilds the table from every cached Workflow's `.status.synchronization` (before the
/// workers start).
pub(super) fn restore(shared: &Shared) {
    let workflows = shared.caches.workflows.state();
    let inputs: Vec<Row> = workflows
        .iter()
        .filter_map(|wf| {
            let status = wf.status.as_ref()?;
            Some(Row {
                namespace: wf.metadata.namespace.clone()?,
                name: wf.metadata.name.clone()?,
                status_extra: status.extra.clone(),
                completed: is_completed(status.phase.as_deref()),
            })
        })
        .collect();
    let rows: Vec<sync::RestoreInput<'_>> = inputs
        .iter()
        .map(|r| sync::RestoreInput {
            namespace: &r.namespace,
            name: &r.name,
            status_extra: &r.status_extra,
            completed: r.completed,
        })
        .collect();
    let restored = sync::restore_from_status(&mut lock(&shared.locks), &rows, &shared.caches);
    if restored > 0 {
        tracing::info!(holds = restored, "lock table rebuilt from workflow status");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::workflow::sync::Want;

    fn wf(yaml: &str) -> Workflow {
        serde_saphyr::from_str(yaml).expect("Workflow YAML")
    }

    #[test]
    fn only_workflows_that_may_lock_take_the_table() {
        let plain = wf(
            "metadata: {name: a}\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    container: {image: busybox}\n",
        );
        assert!(!may_lock(&plain));
        let template = wf(
            "metadata: {name: a}\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    synchronization: {mutex: {name: m}}\n    container: {image: busybox}\n",
        );
        assert!(may_lock(&template));
        let referenced = wf("metadata: {name: a}\nspec:\n  workflowTemplateRef: {name: t}\n");
        assert!(may_lock(&referenced));
        let step_ref = wf(
            "metadata: {name: a}\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    steps:\n    - - {name: s, templateRef: {name: t, template: x}}\n",
        );
        assert!(may_lock(&step_ref));
        let mut held = plain.clone();
        let mut status = crate::workflow::types::WorkflowStatus::default();
        status
            .extra
            .insert(sync::FIELD.into(), serde_json::json!({"mutex": {}}));
        held.status = Some(status);
        assert!(may_lock(&held));
    }

    #[tokio::test]
    async fn a_changed_semaphore_config_map_sets_limits_and_requeues_the_waiters_it_lets_in() {
        let table = Arc::new(Mutex::new(LockTable::new()));
        let key = "ns/ConfigMap/limits/template";
        {
            let mut t = lock(&table);
            for (holder, created) in [("ns/a", 0), ("ns/b/n1", 1), ("ns/c", 2)] {
                t.try_acquire(&Want {
                    holder,
                    priority: 0,
                    created: jiff::Timestamp::from_second(created).ok(),
                    locks: vec![(key.into(), 1)],
                });
            }
        }
        let queue = WorkQueue::new();
        let handler = on_config_map(table.clone(), queue.clone());
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.name = Some("limits".into());
        cm.data = Some(BTreeMap::from([("template".into(), "3".into())]));
        assert_eq!(handler(&cm), None);
        assert_eq!(lock(&table).limit(key), Some(3));
        assert_eq!(queue.len(), 2);
        let mut queued = Vec::new();
        for _ in 0..2 {
            queued.extend(queue.next().await);
        }
        queued.sort();
        assert_eq!(queued, ["ns/b", "ns/c"]);
        // An unreadable value changes nothing.
        cm.data = Some(BTreeMap::from([("template".into(), "many".into())]));
        handler(&cm);
        assert_eq!(lock(&table).limit(key), Some(3));
    }
}
