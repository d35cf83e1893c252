//! Argo's `synchronization`: mutexes and semaphores that limit how many Workflows, or
//! invocations of a template, run at once (Argo docs "Synchronization"; argo-workflows
//! `workflow/sync`).
//!
//! Owns:
//! - The spec side ([`lock_refs`]): `synchronization` of a Workflow spec or of a template, in
//!   both forms Argo reads — the legacy single `mutex: {name}` / `semaphore: {configMapKeyRef:
//!   {name, key}}` and the plural lists `mutexes: [...]` / `semaphores: [...]` (Argo >= 3.6; all
//!   of them, legacy ones included, must be acquired together). Each ref may name another
//!   `namespace` (default: the Workflow's). Lock keys are Argo's: `<namespace>/Mutex/<name>` and
//!   `<namespace>/ConfigMap/<configmap>/<key>`; a semaphore's limit is the integer in that
//!   ConfigMap key, a mutex is a semaphore of limit 1. Database locks (`database: ...`) are
//!   refused: cairn has no shared lock database.
//! - The lock table ([`table::LockTable`], pure): holders and priority-ordered waiters per key,
//!   `try_acquire` (all of a request's keys or none), `release`, `release_workflow`,
//!   `set_limit`, `restore`; every change answers which waiting holders to wake.
//! - The operator's port to it ([`Locks`], implemented by [`Gate`] over a table and the
//!   semaphore ConfigMaps) and the status Argo writes ([`SyncStatus`], `.status.synchronization`
//!   with `mutex.holding[{mutex, holder}]`, `mutex.waiting[{mutex, holder}]`,
//!   `semaphore.holding[{semaphore, holders}]`, `semaphore.waiting[{semaphore, holders}]`; a
//!   waiting entry lists who holds the lock now).
//!
//! Semantics kept from Argo:
//! - Holders: `<namespace>/<workflow>` for a workflow-level lock, held from the first reconcile
//!   until the workflow completes (it stays `Pending` with the message
//!   `Waiting for <key> lock. Lock status: <available>/<limit>` until then);
//!   `<namespace>/<workflow>/<node id>` for a template-level lock, held from the node's start
//!   until the node is fulfilled (the node waits `Pending` with the same message).
//! - Queue order: higher `spec.priority` first, then older `creationTimestamp`, then the holder
//!   key (a total order, so the table is deterministic). A holder may take a free slot only when
//!   fewer waiters of other workflows are ahead of it than there are free slots (Argo lets only
//!   the front take a lock; with a limit above 1 cairn lets the first `free` waiters in, which
//!   keeps the priority order and does not leave a slot idle while the front's reconcile is
//!   queued). Waiters of the same workflow at the same level do not block each other.
//! - A request with several locks takes all or none, and waits in every queue meanwhile (Argo's
//!   documented caveat: the front of a queue blocks the others even on a subset of its locks).
//! - Limits are re-read on every attempt and on every change of a ConfigMap; lowering a limit
//!   never takes a lock away, it only stops new acquisitions until holders drop below it.
//! - A completed workflow releases everything it holds; a deleted Workflow too (the shell calls
//!   [`table::LockTable::release_workflow`]); each release wakes the waiters that can now go.
//! - Restart: the table lives in memory and is rebuilt from every Workflow's
//!   `.status.synchronization.*.holding` before any reconcile ([`restore_from_status`]), as
//!   Argo's `Initialize` does, so nothing is held twice.
//!
//! Invariants: the table never holds more than `limit` holders of a key except after a restore
//! or a lowered limit (never by an acquisition); a holder is never both holding and waiting
//! for one key; every loop is bounded by the number of keys, holders and waiters.

pub mod table;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::workflow::validate::ConfigMapValue;

pub use table::{LockTable, Outcome, Want};

/// Kind segment of a mutex key.
const KIND_MUTEX: &str = "Mutex";
/// Kind segment of a ConfigMap semaphore key.
const KIND_CONFIG_MAP: &str = "ConfigMap";
/// Field of a Workflow status / spec / template holding the synchronization.
pub const FIELD: &str = "synchronization";
/// How often a waiting workflow looks at its locks again even without a wake-up: a safety
/// net only (a release wakes the waiters at once), so a lost wake-up costs at most this.
pub const WAIT_RECHECK_SECS: i64 = 30;

/// Problems with a `synchronization` block or its semaphore's limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The block does not have Argo's shape (a ref without a name, a name with `/`...).
    #[error("{path}: {message}")]
    Spec {
        /// JSON path of the offending field.
        path: String,
        /// What was expected.
        message: String,
    },
    /// A semaphore's limit cannot be read from its ConfigMap.
    #[error("semaphore {key}: {message}")]
    Limit {
        /// The lock key (`<ns>/ConfigMap/<name>/<key>`).
        key: String,
        /// What is missing or wrong.
        message: String,
    },
}

impl SyncError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SyncError::Spec { .. } => "sync_spec",
            SyncError::Limit { .. } => "sync_limit",
        }
    }
}

/// What a lock is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockKind {
    /// A mutex (limit 1).
    Mutex,
    /// A semaphore whose limit is the integer in a ConfigMap key.
    Semaphore {
        /// Namespace of the ConfigMap.
        namespace: String,
        /// The ConfigMap.
        config_map: String,
        /// The key.
        key: String,
    },
}

/// One lock a workflow or template asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LockRef {
    /// Argo's lock key (`<ns>/Mutex/<name>`, `<ns>/ConfigMap/<cm>/<key>`).
    pub key: String,
    /// Mutex or semaphore.
    pub kind: LockKind,
}

impl LockRef {
    /// Whether this is a mutex.
    pub fn is_mutex(&self) -> bool {
        self.kind == LockKind::Mutex
    }
}

/// The locks of a `synchronization` block (`value`, at JSON path `path`) of a workflow in
/// `namespace`, deduplicated and sorted by key. `null` or an absent block is no lock.
pub fn lock_refs(value: &Value, namespace: &str, path: &str) -> Result<Vec<LockRef>, SyncError> {
    let spec_err = |path: String, message: &str| SyncError::Spec {
        path,
        message: message.to_owned(),
    };
    let obj = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(o) => o,
        _ => return Err(spec_err(path.to_owned(), "expected an object")),
    };
    let mut refs = BTreeSet::new();
    let mut mutexes: Vec<(String, &Value)> = Vec::new();
    let mut semaphores: Vec<(String, &Value)> = Vec::new();
    if let Some(m) = obj.get("mutex").filter(|v| !v.is_null()) {
        mutexes.push((format!("{path}.mutex"), m));
    }
    if let Some(s) = obj.get("semaphore").filter(|v| !v.is_null()) {
        semaphores.push((format!("{path}.semaphore"), s));
    }
    for (field, out) in [("mutexes", &mut mutexes), ("semaphores", &mut semaphores)] {
        match obj.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    out.push((format!("{path}.{field}[{i}]"), item));
                }
            }
            Some(_) => return Err(spec_err(format!("{path}.{field}"), "expected a list")),
        }
    }
    for (p, m) in mutexes {
        refs.insert(mutex_ref(m, namespace, &p)?);
    }
    for (p, s) in semaphores {
        refs.insert(semaphore_ref(s, namespace, &p)?);
    }
    Ok(refs.into_iter().collect())
}

/// A name segment of a lock key: non-empty, no `/` (the key's separator).
fn segment<'v>(
    obj: &'v serde_json::Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<&'v str, SyncError> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.is_empty() && !s.contains('/') => Ok(s),
        Some(Value::String(s)) if s.contains('/') => Err(SyncError::Spec {
            path: format!("{path}.{field}"),
            message: format!("'{s}' must not contain '/'"),
        }),
        _ => Err(SyncError::Spec {
            path: format!("{path}.{field}"),
            message: "expected a non-empty string".into(),
        }),
    }
}

/// The ref's `namespace`, else the workflow's.
fn ref_namespace<'v>(
    obj: &'v serde_json::Map<String, Value>,
    default: &'v str,
    path: &str,
) -> Result<&'v str, SyncError> {
    match obj.get("namespace") {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) if s.is_empty() => Ok(default),
        Some(_) => segment(obj, "namespace", path),
    }
}

fn database_refused(obj: &serde_json::Map<String, Value>, path: &str) -> Result<(), SyncError> {
    let database = obj
        .get("database")
        .is_some_and(|d| !d.is_null() && d != &Value::Bool(false));
    if database {
        return Err(SyncError::Spec {
            path: format!("{path}.database"),
            message: "database locks are not supported by cairn (its locks are local to the \
                      controller); use a mutex or a ConfigMap semaphore"
                .into(),
        });
    }
    Ok(())
}

fn mutex_ref(value: &Value, namespace: &str, path: &str) -> Result<LockRef, SyncError> {
    let Value::Object(obj) = value else {
        return Err(SyncError::Spec {
            path: path.to_owned(),
            message: "expected an object with 'name'".into(),
        });
    };
    database_refused(obj, path)?;
    let name = segment(obj, "name", path)?;
    let ns = ref_namespace(obj, namespace, path)?;
    Ok(LockRef {
        key: format!("{ns}/{KIND_MUTEX}/{name}"),
        kind: LockKind::Mutex,
    })
}

fn semaphore_ref(value: &Value, namespace: &str, path: &str) -> Result<LockRef, SyncError> {
    let Value::Object(obj) = value else {
        return Err(SyncError::Spec {
            path: path.to_owned(),
            message: "expected an object with 'configMapKeyRef'".into(),
        });
    };
    database_refused(obj, path)?;
    let cm_path = format!("{path}.configMapKeyRef");
    let Some(Value::Object(cm)) = obj.get("configMapKeyRef") else {
        return Err(SyncError::Spec {
            path: cm_path,
            message: "expected an object with 'name' and 'key'".into(),
        });
    };
    let name = segment(cm, "name", &cm_path)?;
    let key = segment(cm, "key", &cm_path)?;
    let ns = ref_namespace(obj, namespace, path)?;
    Ok(LockRef {
        key: format!("{ns}/{KIND_CONFIG_MAP}/{name}/{key}"),
        kind: LockKind::Semaphore {
            namespace: ns.to_owned(),
            config_map: name.to_owned(),
            key: key.to_owned(),
        },
    })
}

/// The prefix of the keys of every semaphore backed by ConfigMap `namespace/name`.
pub fn config_map_prefix(namespace: &str, name: &str) -> String {
    format!("{namespace}/{KIND_CONFIG_MAP}/{name}/")
}

/// Argo's holder key: `<ns>/<workflow>` (workflow level) or `<ns>/<workflow>/<node id>`.
pub fn holder_key(namespace: &str, workflow: &str, node_id: Option<&str>) -> String {
    match node_id {
        Some(id) => format!("{namespace}/{workflow}/{id}"),
        None => format!("{namespace}/{workflow}"),
    }
}

/// The workflow (`<ns>/<name>`, the controller's queue key) of a holder key.
pub fn workflow_of(holder: &str) -> &str {
    let mut slashes = holder.match_indices('/').map(|(i, _)| i);
    let _ = slashes.next();
    match slashes.next() {
        Some(i) => &holder[..i],
        None => holder,
    }
}

/// Argo's waiting message.
pub fn waiting_message(key: &str, available: usize, limit: usize) -> String {
    format!("Waiting for {key} lock. Lock status: {available}/{limit}")
}

/// Whether a node or workflow message is a lock wait's.
pub fn is_waiting_message(message: Option<&str>) -> bool {
    message.is_some_and(|m| m.starts_with("Waiting for ") && m.contains(" lock. Lock status: "))
}

/// Reads a semaphore's limit: the ConfigMap key's value as a non-negative integer.
pub fn parse_limit(key: &str, value: ConfigMapValue) -> Result<usize, SyncError> {
    let limit_err = |message: String| SyncError::Limit {
        key: key.to_owned(),
        message,
    };
    match value {
        ConfigMapValue::Found(v) => v.trim().parse::<usize>().map_err(|_| {
            limit_err(format!(
                "the ConfigMap value '{v}' is not a non-negative integer"
            ))
        }),
        ConfigMapValue::NoKey => Err(limit_err("the ConfigMap has no such key".into())),
        ConfigMapValue::NoConfigMap => Err(limit_err("the ConfigMap does not exist".into())),
    }
}

/// What the operator asks of the lock manager.
#[derive(Debug, Clone)]
pub struct LockRequest<'a> {
    /// [`holder_key`].
    pub holder: &'a str,
    /// The workflow's `spec.priority` (default 0).
    pub priority: i64,
    /// The workflow's `creationTimestamp`.
    pub created: Option<Timestamp>,
    /// The locks, all or none.
    pub refs: &'a [LockRef],
}

/// The answer to a [`LockRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquire {
    /// Every lock is held by the requester.
    Acquired,
    /// Not all could be taken; the requester waits in every queue.
    Waiting {
        /// Argo's message (the first lock that blocked).
        message: String,
        /// Every requested key with its current holders, for `.status.synchronization`.
        holders: Vec<(LockRef, Vec<String>)>,
    },
}

/// The operator's port to the lock manager.
pub trait Locks {
    /// Takes every lock of the request, or none and queues the requester.
    fn acquire(&mut self, request: &LockRequest<'_>) -> Result<Acquire, SyncError>;
    /// Releases `holder`'s hold of (and place in the queues of) `refs`.
    fn release(&mut self, holder: &str, refs: &[LockRef]);
    /// Releases every hold and queue place of workflow `<namespace>/<name>`.
    fn release_workflow(&mut self, namespace: &str, name: &str);
}

/// Where semaphore limits come from (the controller's ConfigMap cache; a map in tests).
pub trait SemaphoreConfig {
    /// The value of `key` in ConfigMap `namespace/name`.
    fn value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue;
}

/// The limit of `r`: 1 for a mutex, the ConfigMap's for a semaphore.
pub fn limit_of(r: &LockRef, config: &dyn SemaphoreConfig) -> Result<usize, SyncError> {
    match &r.kind {
        LockKind::Mutex => Ok(1),
        LockKind::Semaphore {
            namespace,
            config_map,
            key,
        } => parse_limit(&r.key, config.value(namespace, config_map, key)),
    }
}

/// [`Locks`] over a [`LockTable`]: resolves limits, and collects the workflows (queue keys
/// `<ns>/<name>`) its changes woke, for the shell to requeue.
pub struct Gate<'a> {
    /// The table.
    pub table: &'a mut LockTable,
    /// Semaphore limits.
    pub config: &'a dyn SemaphoreConfig,
    /// Workflows to requeue.
    pub woken: BTreeSet<String>,
}

impl<'a> Gate<'a> {
    /// A gate over `table`.
    pub fn new(table: &'a mut LockTable, config: &'a dyn SemaphoreConfig) -> Self {
        Gate {
            table,
            config,
            woken: BTreeSet::new(),
        }
    }

    fn wake(&mut self, holders: BTreeSet<String>) {
        for h in holders {
            self.woken.insert(workflow_of(&h).to_owned());
        }
    }
}

impl Locks for Gate<'_> {
    fn acquire(&mut self, request: &LockRequest<'_>) -> Result<Acquire, SyncError> {
        let mut locks = Vec::with_capacity(request.refs.len());
        for r in request.refs {
            locks.push((r.key.clone(), limit_of(r, self.config)?));
        }
        let (outcome, wake) = self.table.try_acquire(&Want {
            holder: request.holder,
            priority: request.priority,
            created: request.created,
            locks,
        });
        self.wake(wake);
        Ok(match outcome {
            Outcome::Acquired => Acquire::Acquired,
            Outcome::Waiting {
                key,
                available,
                limit,
            } => Acquire::Waiting {
                message: waiting_message(&key, available, limit),
                holders: request
                    .refs
                    .iter()
                    .map(|r| (r.clone(), self.table.holders(&r.key)))
                    .collect(),
            },
        })
    }

    fn release(&mut self, holder: &str, refs: &[LockRef]) {
        let keys: Vec<String> = refs.iter().map(|r| r.key.clone()).collect();
        let wake = self.table.release(holder, &keys);
        self.wake(wake);
    }

    fn release_workflow(&mut self, namespace: &str, name: &str) {
        let wake = self
            .table
            .release_workflow(&holder_key(namespace, name, None));
        self.wake(wake);
    }
}

/// `.status.synchronization` as Argo writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Mutexes held and waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mutex: Option<MutexStatus>,
    /// Semaphores held and waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semaphore: Option<SemaphoreStatus>,
}

/// Argo's `MutexStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MutexStatus {
    /// Mutexes this workflow holds (`holder`: the holder key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holding: Vec<MutexHolding>,
    /// Mutexes this workflow waits for (`holder`: who holds it now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<MutexHolding>,
}

/// Argo's `MutexHolding`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MutexHolding {
    /// The lock key.
    #[serde(default)]
    pub mutex: String,
    /// The holder key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub holder: String,
}

/// Argo's `SemaphoreStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SemaphoreStatus {
    /// Semaphores this workflow holds (`holders`: its holder keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holding: Vec<SemaphoreHolding>,
    /// Semaphores this workflow waits for (`holders`: who holds them now).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<SemaphoreHolding>,
}

/// Argo's `SemaphoreHolding`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SemaphoreHolding {
    /// The lock key.
    #[serde(default)]
    pub semaphore: String,
    /// Holder keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<String>,
}

impl SyncStatus {
    /// The status kept in a Workflow status' unmodelled fields (a malformed one reads as
    /// empty: it is cairn's own record, rewritten on the next change).
    pub fn read(extra: &serde_json::Map<String, Value>) -> SyncStatus {
        extra
            .get(FIELD)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// Writes the status back (removes the field when empty).
    pub fn write(&self, extra: &mut serde_json::Map<String, Value>) {
        let mut s = self.clone();
        if s.mutex
            .as_ref()
            .is_some_and(|m| m.holding.is_empty() && m.waiting.is_empty())
        {
            s.mutex = None;
        }
        if s.semaphore
            .as_ref()
            .is_some_and(|m| m.holding.is_empty() && m.waiting.is_empty())
        {
            s.semaphore = None;
        }
        match serde_json::to_value(&s) {
            Ok(v) if s != SyncStatus::default() => {
                extra.insert(FIELD.into(), v);
            }
            _ => {
                extra.remove(FIELD);
            }
        }
    }

    /// Forgets every waiting entry (each pass records the waits it still has).
    pub fn clear_waiting(&mut self) {
        if let Some(m) = self.mutex.as_mut() {
            m.waiting.clear();
        }
        if let Some(s) = self.semaphore.as_mut() {
            s.waiting.clear();
        }
    }

    /// Forgets everything (the workflow completed and released all).
    pub fn clear(&mut self) {
        *self = SyncStatus::default();
    }

    /// `holder` now holds `refs`.
    pub fn acquired(&mut self, holder: &str, refs: &[LockRef]) {
        for r in refs {
            if r.is_mutex() {
                let m = self.mutex.get_or_insert_with(Default::default);
                m.waiting.retain(|w| w.mutex != r.key);
                let entry = MutexHolding {
                    mutex: r.key.clone(),
                    holder: holder.to_owned(),
                };
                if !m.holding.contains(&entry) {
                    m.holding.push(entry);
                }
            } else {
                let s = self.semaphore.get_or_insert_with(Default::default);
                s.waiting.retain(|w| w.semaphore != r.key);
                match s.holding.iter_mut().find(|h| h.semaphore == r.key) {
                    Some(h) => {
                        if !h.holders.iter().any(|x| x == holder) {
                            h.holders.push(holder.to_owned());
                        }
                    }
                    None => s.holding.push(SemaphoreHolding {
                        semaphore: r.key.clone(),
                        holders: vec![holder.to_owned()],
                    }),
                }
            }
        }
    }

    /// This workflow waits for these keys, held now by the listed holders.
    pub fn waiting(&mut self, holders: &[(LockRef, Vec<String>)]) {
        for (r, current) in holders {
            if r.is_mutex() {
                let m = self.mutex.get_or_insert_with(Default::default);
                if m.holding.iter().any(|h| h.mutex == r.key) {
                    continue;
                }
                m.waiting.retain(|w| w.mutex != r.key);
                m.waiting.push(MutexHolding {
                    mutex: r.key.clone(),
                    holder: current.first().cloned().unwrap_or_default(),
                });
            } else {
                let s = self.semaphore.get_or_insert_with(Default::default);
                s.waiting.retain(|w| w.semaphore != r.key);
                s.waiting.push(SemaphoreHolding {
                    semaphore: r.key.clone(),
                    holders: current.clone(),
                });
            }
        }
    }

    /// `holder` released `refs`.
    pub fn released(&mut self, holder: &str, refs: &[LockRef]) {
        for r in refs {
            if let Some(m) = self.mutex.as_mut() {
                m.holding
                    .retain(|h| !(h.mutex == r.key && h.holder == holder));
            }
            if let Some(s) = self.semaphore.as_mut() {
                for h in s.holding.iter_mut().filter(|h| h.semaphore == r.key) {
                    h.holders.retain(|x| x != holder);
                }
                s.holding.retain(|h| !h.holders.is_empty());
            }
        }
    }

    /// Every (lock key, holder key) this status holds.
    pub fn holdings(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for h in self.mutex.iter().flat_map(|m| &m.holding) {
            if !h.holder.is_empty() {
                out.push((h.mutex.clone(), h.holder.clone()));
            }
        }
        for h in self.semaphore.iter().flat_map(|s| &s.holding) {
            for holder in &h.holders {
                out.push((h.semaphore.clone(), holder.clone()));
            }
        }
        out
    }
}

/// A Workflow as the restore needs it.
pub struct RestoreInput<'a> {
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its `.status` unmodelled fields (where `synchronization` lives).
    pub status_extra: &'a serde_json::Map<String, Value>,
    /// Whether it is completed (a completed workflow holds nothing).
    pub completed: bool,
}

/// Rebuilds the table after a restart from the Workflows' `.status.synchronization` holdings
/// (Argo's `Initialize`). Holder keys of another workflow, or legacy ones without a namespace,
/// are read as this workflow's (`<ns>/<wf>` or `<ns>/<wf>/<holder>`). A semaphore whose limit
/// cannot be read is restored at its holders' count (re-read at the next acquisition).
pub fn restore_from_status(
    table: &mut LockTable,
    workflows: &[RestoreInput<'_>],
    config: &dyn SemaphoreConfig,
) -> usize {
    let mut restored = 0;
    for wf in workflows.iter().filter(|w| !w.completed) {
        let own = holder_key(wf.namespace, wf.name, None);
        for (key, holder) in SyncStatus::read(wf.status_extra).holdings() {
            let holder = if holder == own || holder.starts_with(&format!("{own}/")) {
                holder
            } else if holder == wf.name {
                own.clone()
            } else {
                format!("{own}/{holder}")
            };
            let limit = limit_for_key(&key, config);
            table.restore(&holder, &key, limit);
            restored += 1;
        }
    }
    restored
}

/// The limit of a lock key as restore reads it (`None` when unknown).
fn limit_for_key(key: &str, config: &dyn SemaphoreConfig) -> Option<usize> {
    let parts: Vec<&str> = key.splitn(4, '/').collect();
    match parts.as_slice() {
        [_, KIND_MUTEX, _] => Some(1),
        [ns, KIND_CONFIG_MAP, cm, k] => parse_limit(key, config.value(ns, cm, k)).ok(),
        _ => None,
    }
}
