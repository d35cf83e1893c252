//! The workflow controller shell: watches Workflows, their pods and the executor's
//! WorkflowTaskResults, runs the pure operator once per change, persists what it decided and
//! executes its actions; archives finished workflows, applies `podGC` and `ttlStrategy`.
//!
//! Owns the I/O around `workflow::operator`: reflectors (Workflows in the managed namespaces, pods
//! labelled `workflows.argoproj.io/workflow`, WorkflowTaskResults, WorkflowTemplates,
//! ClusterWorkflowTemplates, parameter ConfigMaps labelled
//! `workflows.argoproj.io/configmap-type=Parameter`, and every ConfigMap of the managed
//! namespaces for semaphore limits), the work queue ([`queue`]), the status writer, pod creation and
//! deletion, executor RBAC, the archive hook, the lock manager of `synchronization` (`locks`:
//! one shared table, rebuilt from the Workflows' status before the workers start), and the
//! shell's pure decisions ([`decide`]).
//!
//! Invariants:
//! - **Level-triggered and idempotent.** A reconcile reads the Workflow and its pods from the
//!   reflector stores, decides from that alone, and may be repeated at any time: pod names are
//!   deterministic, so replaying "create pod X" after a crash is an `AlreadyExists`, treated as
//!   success; deleting a missing pod is success.
//! - **Status first, then actions** (the operator's contract): `.status` and the labels are
//!   written before any pod is created or deleted.
//! - **No lost update.** The Argo CRDs have no status subresource, so the whole object is
//!   written, as Argo's controller does (`Update`), with the `resourceVersion` that was read: a
//!   concurrent change (a user's `suspend`, another writer) makes the write fail with 409, and
//!   the key is reconciled again from the newer object. Until the watch delivers our own write,
//!   the object we wrote stands in for the stale one in the store, so the next reconcile does
//!   not decide from an old status.
//! - **One key at a time**: the queue never hands the same `namespace/name` to two workers.
//! - A finished workflow is archived (with the logs of its pods, read before `podGC` deletes
//!   them) before its pods are collected or it is deleted by its TTL; the
//!   `workflows.argoproj.io/workflow-archiving-status: Archived` label records that, so a
//!   restart does not archive it twice. A pod collected by `OnPodCompletion`/`OnPodSuccess`
//!   while the workflow still runs has its log archived first.
//! - Scope: `[workflow] namespaces` limits the namespaces: namespaced kinds are watched per
//!   configured namespace ([`scope`]), so nothing outside them is cached, queued or written;
//!   Argo's instance id
//!   (`workflows.argoproj.io/controller-instanceid`) splits Workflows between controllers
//!   sharing a cluster ([`instance_selector`]).
//! - A pod that cannot be built or is refused by the apiserver (admission, quota, invalid) is
//!   reported to the operator as an Error observation with the server's message, so the node
//!   fails and the workflow follows its retry/exit rules; transient errors back off and retry.

pub mod decide;
mod locks;
mod pdb;
pub mod queue;
mod readthrough;
mod reconcile;
mod resource;
pub mod scope;
mod secrets;
mod written;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::workflow::archive::Archive;
use crate::workflow::node::{LABEL_WORKFLOW, Observations, PodObservation, PodRequest};
use crate::workflow::pod::PodSettings;
use crate::workflow::resource::{ResourceObservations, ResourceRequest};
use crate::workflow::types::{
    ClusterWorkflowTemplate, Workflow, WorkflowStatus, WorkflowTaskResult, WorkflowTemplate,
};
use crate::workflow::validate::{
    CONFIGMAP_TYPE_LABEL, CONFIGMAP_TYPE_PARAMETER, ConfigMapValue, TemplateLookup,
};

pub use queue::WorkQueue;
pub use scope::Scoped;

/// Errors of one reconcile (logged, counted, and retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A call to the apiserver failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was attempted (`create pod ns/name`...).
        action: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The archive could not be written.
    #[error("archiving workflow {workflow}: {source}")]
    Archive {
        /// `namespace/name`.
        workflow: String,
        /// The archive's error.
        #[source]
        source: crate::workflow::archive::ArchiveError,
    },
    /// A Workflow field the shell acts on is invalid (podGC, ttlStrategy).
    #[error(transparent)]
    Decide(#[from] decide::DecideError),
}

impl ControllerError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube { .. } => "kube",
            Self::Archive { .. } => "archive",
            Self::Decide(_) => "invalid_field",
        }
    }

    pub(crate) fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// What the operator decided for one reconcile, in the shell's terms. The operator's own
/// `Operation` converts into this (see `reconcile::operate`), which keeps the shell's I/O
/// testable apart from the engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The new `.status`.
    pub status: WorkflowStatus,
    /// Side effects, in order, after the status is written.
    pub actions: Vec<ShellAction>,
    /// Time-driven wake-up.
    pub requeue_after: Option<SignedDuration>,
}

/// A side effect of a [`Decision`].
#[derive(Debug, Clone, PartialEq)]
pub enum ShellAction {
    /// Build and create this pod.
    CreatePod(Box<PodRequest>),
    /// Execute a resource template's action (or a poll `get`) and record what was seen.
    Resource(Box<ResourceRequest>),
    /// Delete this pod (with its grace period).
    DeletePod {
        /// The pod.
        pod_name: String,
        /// Its node.
        node_id: String,
    },
}

/// The engine the shell drives: one pure reconcile of a Workflow.
pub trait Engine: Send + Sync + 'static {
    /// Decides the new status and actions of `workflow` from what was observed at `now`.
    fn operate(
        &self,
        workflow: &Workflow,
        observations: &Observations,
        resources: &ResourceObservations,
        templates: &dyn TemplateLookup,
        now: Timestamp,
        locks: &mut dyn crate::workflow::sync::Locks,
    ) -> Decision;
}

/// The engine cairn runs: the pure operator (`workflow::operator`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Operator;

impl Engine for Operator {
    fn operate(
        &self,
        workflow: &Workflow,
        observations: &Observations,
        resources: &ResourceObservations,
        templates: &dyn TemplateLookup,
        now: Timestamp,
        locks: &mut dyn crate::workflow::sync::Locks,
    ) -> Decision {
        use crate::workflow::operator::{self, Action, OperateInput};
        let op = operator::operate_locked(
            &OperateInput {
                workflow,
                observations,
                templates,
                now,
            },
            resources,
            locks,
        );
        Decision {
            status: op.status,
            actions: op
                .actions
                .into_iter()
                .map(|a| match a {
                    Action::CreatePod(req) => ShellAction::CreatePod(req),
                    Action::Resource(req) => ShellAction::Resource(req),
                    Action::DeletePod { pod_name, node_id } => {
                        ShellAction::DeletePod { pod_name, node_id }
                    }
                })
                .collect(),
            requeue_after: op.requeue_after,
        }
    }
}

/// Controller settings (from `[workflow]` in the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Concurrent reconciles.
    pub workers: usize,
    /// How step pods are built.
    pub pods: PodSettings,
    /// Whether to create the executor's Role/RoleBinding per namespace and service account.
    pub manage_executor_rbac: bool,
    /// Namespaces whose workflows this controller runs; empty: all (Argo's default).
    pub namespaces: Vec<String>,
    /// Argo's controller instance id: with one, only Workflows labelled
    /// `workflows.argoproj.io/controller-instanceid=<id>` are this controller's; without,
    /// only Workflows without that label.
    pub instance_id: Option<String>,
}

/// Label naming the controller instance that owns a Workflow or CronWorkflow (Argo's).
pub const LABEL_INSTANCE_ID: &str = "workflows.argoproj.io/controller-instanceid";

/// The label selector of the objects a controller with `instance_id` owns (Argo's rule).
pub fn instance_selector(instance_id: Option<&str>) -> String {
    match instance_id.filter(|i| !i.is_empty()) {
        Some(id) => format!("{LABEL_INSTANCE_ID}={id}"),
        None => format!("!{LABEL_INSTANCE_ID}"),
    }
}

impl Settings {
    /// Whether workflows of `namespace` are this controller's.
    pub fn manages(&self, namespace: &str) -> bool {
        scope::manages(&self.namespaces, namespace)
    }
}

impl Settings {
    /// Settings from the server configuration.
    pub fn from_config(config: &crate::config::WorkflowConfig) -> Self {
        Settings {
            workers: config.workers,
            pods: PodSettings {
                executor_image: config.executor_image.clone(),
                executor_url: config.executor_url.clone(),
                images: config.images.clone(),
                ..PodSettings::default()
            },
            manage_executor_rbac: config.manage_executor_rbac,
            namespaces: config.namespaces.clone(),
            instance_id: config.instance_id.clone(),
        }
    }
}

/// The reflector caches the controller reads from.
#[derive(Clone)]
pub(crate) struct Caches {
    pub workflows: Scoped<Workflow>,
    pub pods: Scoped<Pod>,
    pub results: Scoped<WorkflowTaskResult>,
    pub templates: Scoped<WorkflowTemplate>,
    pub cluster_templates: Store<ClusterWorkflowTemplate>,
    /// Parameter ConfigMaps (labelled `workflows.argoproj.io/configmap-type=Parameter`, the
    /// only ones Argo's `valueFrom.configMapKeyRef` reads).
    pub config_maps: Scoped<ConfigMap>,
    /// Every ConfigMap of the managed namespaces: semaphore limits (`synchronization`), which
    /// Argo reads from any ConfigMap, labelled or not.
    pub semaphores: Scoped<ConfigMap>,
}

impl TemplateLookup for Caches {
    fn workflow_template(&self, namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        self.templates
            .get(&ObjectRef::new(name).within(namespace))
            .map(|t| (*t).clone())
    }

    fn cluster_workflow_template(&self, name: &str) -> Option<ClusterWorkflowTemplate> {
        self.cluster_templates
            .get(&ObjectRef::new(name))
            .map(|t| (*t).clone())
    }

    fn config_map_value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
        match self
            .config_maps
            .get(&ObjectRef::new(name).within(namespace))
        {
            Some(cm) => readthrough::parameter_value(&cm, key),
            None => ConfigMapValue::NoConfigMap,
        }
    }
}

/// State shared by the workers.
pub(crate) struct Shared {
    pub client: Client,
    pub caches: Caches,
    pub queue: WorkQueue,
    pub archive: Archive,
    pub settings: Settings,
    pub engine: Arc<dyn Engine>,
    /// Our writes standing in for the store's stale copies ([`written`]).
    pub written: Mutex<written::StandIns>,
    /// key → node id → a creation failure to report to the operator.
    pub failures: Mutex<HashMap<String, BTreeMap<String, PodObservation>>>,
    /// key → node id → the last outcome of a resource node's action (the operator decides
    /// from it; a restart starts empty and the operator asks again, idempotently).
    pub resources: Mutex<HashMap<String, ResourceObservations>>,
    /// (namespace, service account) whose executor RBAC exists. An async lock held across the
    /// first apply: workers meeting the same account at start-up wait for it instead of each
    /// applying the Role and RoleBinding again.
    pub rbac_done: tokio::sync::Mutex<HashSet<(String, String)>>,
    /// The lock table of `synchronization` ([`locks`]).
    pub locks: Arc<Mutex<crate::workflow::sync::LockTable>>,
}

/// `namespace/name`.
pub fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// Runs the controller until `shutdown` completes: starts the watches, waits for the caches'
/// first lists, then runs `settings.workers` workers.
pub async fn run(
    client: Client,
    settings: Settings,
    archive: Archive,
    engine: Arc<dyn Engine>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let queue = WorkQueue::new();
    let mut watches = Vec::new();
    // Only the configured namespaces are watched (all when none): another controller's
    // namespaces never reach these caches or the queue (see `scope`), so the keys below need
    // no second namespace filter.
    let targets = scope::watch_targets(&settings.namespaces);
    let workflows = scope::watch_scoped::<Workflow>(
        &client,
        &targets,
        &watcher::Config::default().labels(&instance_selector(settings.instance_id.as_deref())),
        &queue,
        |wf| {
            Some(key(
                wf.meta().namespace.as_deref()?,
                wf.meta().name.as_deref()?,
            ))
        },
        &mut watches,
    );
    let by_label = |obj: &dyn ResourceMeta| -> Option<String> {
        Some(key(obj.namespace()?, obj.label(LABEL_WORKFLOW)?))
    };
    let pods = scope::watch_scoped::<Pod>(
        &client,
        &targets,
        &watcher::Config::default().labels(LABEL_WORKFLOW),
        &queue,
        move |p| by_label(p),
        &mut watches,
    );
    let results = scope::watch_scoped::<WorkflowTaskResult>(
        &client,
        &targets,
        &watcher::Config::default().labels(LABEL_WORKFLOW),
        &queue,
        move |r| by_label(r),
        &mut watches,
    );
    let templates = scope::watch_scoped::<WorkflowTemplate>(
        &client,
        &targets,
        &watcher::Config::default(),
        &queue,
        |_| None,
        &mut watches,
    );
    // Parameter ConfigMaps change no workflow by themselves (Argo does not requeue either):
    // their values are read at the next reconcile.
    let config_maps = scope::watch_scoped::<ConfigMap>(
        &client,
        &targets,
        &watcher::Config::default().labels(&format!(
            "{CONFIGMAP_TYPE_LABEL}={CONFIGMAP_TYPE_PARAMETER}"
        )),
        &queue,
        |_| None,
        &mut watches,
    );
    // Semaphore ConfigMaps: a change re-reads the limits of the locks they back and wakes
    // the waiters a raised limit lets in (the handler queues them; the ConfigMap itself is no
    // workflow key).
    let lock_table = Arc::new(Mutex::new(crate::workflow::sync::LockTable::new()));
    let semaphores = scope::watch_scoped::<ConfigMap>(
        &client,
        &targets,
        &watcher::Config::default(),
        &queue,
        locks::on_config_map(lock_table.clone(), queue.clone()),
        &mut watches,
    );
    // Cluster-scoped: one watch whatever the namespaces.
    let (cluster_templates, task) = watch::<ClusterWorkflowTemplate>(
        Api::all(client.clone()),
        watcher::Config::default(),
        queue.clone(),
        |_| None,
    );
    watches.push(task);
    let caches = Caches {
        workflows,
        pods,
        results,
        templates,
        cluster_templates,
        config_maps,
        semaphores,
    };
    let shared = Arc::new(Shared {
        client,
        caches: caches.clone(),
        queue: queue.clone(),
        archive,
        settings,
        engine,
        written: Mutex::new(written::StandIns::default()),
        failures: Mutex::new(HashMap::new()),
        resources: Mutex::new(HashMap::new()),
        rbac_done: tokio::sync::Mutex::new(HashSet::new()),
        locks: lock_table,
    });
    let work = async {
        // Deciding before every cache is filled could, say, recreate a pod the pod cache has not
        // listed yet (harmless, AlreadyExists) or miss a template (a wrong failure): wait.
        let ready = futures::future::join5(
            caches.workflows.wait_until_ready(),
            caches.pods.wait_until_ready(),
            caches.results.wait_until_ready(),
            caches.templates.wait_until_ready(),
            caches.cluster_templates.wait_until_ready(),
        )
        .await;
        let ready_config_maps = caches.config_maps.wait_until_ready().await;
        let ready_semaphores = caches.semaphores.wait_until_ready().await;
        if ready.0.is_err()
            || ready.1.is_err()
            || ready.2.is_err()
            || ready_config_maps.is_err()
            || ready_semaphores.is_err()
        {
            tracing::error!("workflow controller caches stopped before they were ready");
            return;
        }
        // Locks held before a restart are held again before anyone may take them.
        locks::restore(&shared);
        tracing::info!(
            workers = shared.settings.workers,
            "workflow controller started"
        );
        let workers: Vec<_> = (0..shared.settings.workers.max(1))
            .map(|n| tokio::spawn(worker(shared.clone(), n)))
            .collect();
        for w in workers {
            let _ = w.await;
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
    queue.shutdown();
    for task in watches {
        task.abort();
    }
    tracing::info!("workflow controller stopped");
}

/// Reads a namespace and label off any object (for event → key mapping).
trait ResourceMeta {
    fn namespace(&self) -> Option<&str>;
    fn label(&self, key: &str) -> Option<&str>;
}

impl<K: Resource> ResourceMeta for K {
    fn namespace(&self) -> Option<&str> {
        self.meta().namespace.as_deref()
    }
    fn label(&self, key: &str) -> Option<&str> {
        self.meta().labels.as_ref()?.get(key).map(String::as_str)
    }
}

/// Starts a reflector over `api`; every event's object is mapped to a key and queued.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    queue: WorkQueue,
    to_key: impl Fn(&K) -> Option<String> + Send + 'static,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).to_string();
    let stream = reflector::reflector(writer, watcher(api, config)).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::Delete(obj))
                | Ok(watcher::Event::InitApply(obj)) => {
                    if let Some(k) = to_key(&obj) {
                        queue.add(k);
                    }
                }
                Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
                Err(err) => {
                    tracing::warn!(kind = %kind, error = %err, "watch failed; retrying");
                }
            }
        }
    });
    (reader, task)
}

/// How long a worker waits at least between two reconciles of one workflow that asks for a
/// time-driven requeue (a guard against a busy loop on a zero or negative requeue).
const MIN_REQUEUE: Duration = Duration::from_millis(100);

async fn worker(shared: Arc<Shared>, n: usize) {
    let span = tracing::info_span!("workflow_worker", worker = n);
    let _ = span;
    while let Some((k, waited)) = shared.queue.next_timed().await {
        metrics::histogram!("cairn_workflow_queue_wait_seconds").record(waited.as_secs_f64());
        let started = std::time::Instant::now();
        let outcome = reconcile::reconcile(&shared, &k).await;
        let elapsed = started.elapsed();
        metrics::histogram!("cairn_workflow_reconcile_duration_seconds")
            .record(elapsed.as_secs_f64());
        match outcome {
            Ok(requeue) => {
                metrics::counter!("cairn_workflow_reconcile_total", "result" => "ok").increment(1);
                shared.queue.forget(&k);
                if let Some(after) = requeue {
                    let after = after.max(MIN_REQUEUE);
                    shared.queue.add_after(k.clone(), after);
                }
            }
            Err(err) => {
                metrics::counter!("cairn_workflow_reconcile_total", "result" => err.metric_label())
                    .increment(1);
                let retry_in = shared.queue.add_failed(&k);
                tracing::warn!(workflow = %k, error = %err, retry_in_ms = retry_in.as_millis() as u64, "reconcile failed");
            }
        }
        shared.queue.done(&k);
    }
}

/// Converts a signed duration to a std one (negative → zero).
pub(crate) fn to_std(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
