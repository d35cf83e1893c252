//! The EventSource controller: runs what every EventSource asks for and reports it on the object.
//!
//! Owns the I/O around [`super::plan`]: watches EventSources (cluster-wide, or per namespace of
//! `[events] namespaces`), and on every change (debounced) and every `resync`:
//! 1. plans the EventSources seen;
//! 2. resolves the Secrets the endpoints reference (cached for `secret_ttl`; values never
//!    logged), and swaps the endpoint table the HTTP handlers read;
//! 3. starts listeners for dedicated ports that appeared and stops those no longer used (bind
//!    address `bind_ip`: cairn's own listen address by default, so loopback unless exposed);
//! 4. starts the per-event tasks of calendar, resource and nats sources
//!    (`calendar::run` / `resource::run` / `nats::run`), restarting one whose settings changed
//!    and stopping those removed (a task that ended with an error is reported, and restarted
//!    after 10 s doubling to 5 min, or at once when its settings change). A nats task gets the
//!    Secrets of its `auth` and `tls` resolved here (and is restarted when their values change; while they cannot be read, a
//!    running task keeps its old values and a new one is not started); it is stopped by a
//!    signal, so the message in hand reaches the bus, and aborted if it has not ended within
//!    [`TASK_STOP_GRACE`]; its connection problems are reported on the object;
//! 5. writes `.status.conditions` (`SourcesProvided`, `Deployed`) of each EventSource whose
//!    conditions changed, and only then.
//!
//! Invariants: one reconcile at a time (a single loop owns listeners and tasks); every API call
//! is bounded by a timeout; a failure in one EventSource (a port in use, a missing Secret, a bad
//! spec) is reported on that object and never stops the others.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use super::nats::{ConnState, Credentials, NatsSource, NatsSpec};
use super::webhook::{EventsState, LiveEndpoint, SecretState, SecretValue, Table};
use super::{Plan, Problem, SecretRef, SourceContext, TaskKind, TaskSpec};
use crate::events::bus::AnyBus;
use crate::events::bus::Topic;
use crate::events::types::EventSource;
use crate::store::Store;
use crate::workflow::controller::scope::{Scoped, manages, watch_targets};

/// Every Kubernetes call of the controller is bounded by this.
const API_TIMEOUT: Duration = Duration::from_secs(15);
/// Changes arriving within this are reconciled together.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// A task stopped by a signal (nats) is aborted when it has not ended after this.
pub const TASK_STOP_GRACE: Duration = Duration::from_secs(5);

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespaces whose EventSources run; empty: all.
    pub namespaces: Vec<String>,
    /// Address dedicated ports bind on.
    pub bind_ip: IpAddr,
    /// Full reconcile at least this often (Secret rotation, listeners to retry).
    pub resync: Duration,
    /// A resolved Secret is read again after this.
    pub secret_ttl: Duration,
}

impl Settings {
    /// Defaults around the given namespaces and bind address: resync 30 s, Secret TTL 30 s.
    pub fn new(namespaces: Vec<String>, bind_ip: IpAddr) -> Self {
        Self {
            namespaces,
            bind_ip,
            resync: Duration::from_secs(30),
            secret_ttl: Duration::from_secs(30),
        }
    }
}

/// Errors of the controller's I/O, each reported on the EventSource concerned or logged.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A Secret could not be read.
    #[error("cannot read Secret {namespace}/{name}: {detail}")]
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why (the API's message or a timeout).
        detail: String,
    },
    /// A dedicated port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The status of an EventSource could not be written.
    #[error("cannot write the status of EventSource {namespace}/{name}: {detail}")]
    Status {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Why.
        detail: String,
    },
}

impl ControllerError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ControllerError::Secret { .. } => "secret",
            ControllerError::Listen { .. } => "listen",
            ControllerError::Status { .. } => "status",
        }
    }
}

/// Runs the controller until `stop` completes; then stops listeners and tasks.
pub async fn run(
    client: kube::Client,
    bus: AnyBus,
    store: Store,
    state: EventsState,
    settings: Settings,
    stop: impl Future<Output = ()> + Send,
) {
    let changed = Arc::new(Notify::new());
    let mut watches = Vec::new();
    let mut stores = Vec::new();
    for target in watch_targets(&settings.namespaces) {
        let (reader, writer) = reflector::store::<EventSource>();
        let api: Api<EventSource> = target.api(client.clone());
        let notify = changed.clone();
        let label = format!("{target:?}");
        watches.push(tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .reflect(writer)
                .boxed();
            while let Some(item) = stream.next().await {
                match item {
                    Ok(_) => notify.notify_one(),
                    Err(error) => {
                        tracing::warn!(target = %label, %error, "EventSource watch failed; retrying")
                    }
                }
            }
        }));
        stores.push((target, reader));
    }
    let cache = Scoped::new(stores);
    let mut ctl = Controller {
        client,
        bus,
        store,
        state,
        settings,
        secrets: HashMap::new(),
        listeners: BTreeMap::new(),
        tasks: BTreeMap::new(),
    };
    tracing::info!(namespaces = ?ctl.settings.namespaces, "event source controller starting");
    tokio::pin!(stop);
    let ready = tokio::select! {
        r = cache.wait_until_ready() => r.is_ok(),
        () = &mut stop => false,
    };
    if ready {
        loop {
            let objects: Vec<EventSource> = cache
                .state()
                .iter()
                .filter(|es| {
                    manages(
                        &ctl.settings.namespaces,
                        es.metadata.namespace.as_deref().unwrap_or_default(),
                    )
                })
                .map(|es| (**es).clone())
                .collect();
            ctl.reconcile(&objects).await;
            tokio::select! {
                () = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                () = tokio::time::sleep(ctl.settings.resync) => {}
                () = &mut stop => break,
            }
        }
    }
    for w in watches {
        w.abort();
    }
    ctl.shutdown();
    tracing::info!("event source controller stopped");
}

/// A dedicated-port server; sending `true` on (or dropping) `stop` ends it gracefully.
struct Listener {
    stop: watch::Sender<bool>,
}

struct RunningTask {
    spec: Value,
    handle: tokio::task::JoinHandle<()>,
    /// Set when the task ended with an error: the message (what the status reports) and when.
    failure: Arc<Mutex<Option<(String, Instant)>>>,
    /// How many times this task was restarted after failing (the restart delay grows with it).
    restarts: u32,
    /// nats: the fingerprint of the credentials it runs with.
    fingerprint: Option<String>,
    /// nats: ends the task gracefully.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// nats: its connection state.
    conn: Option<watch::Receiver<ConnState>>,
}

impl RunningTask {
    /// The message of the failure the task ended with, if it did.
    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .ok()
            .and_then(|f| f.as_ref().map(|(m, _)| m.clone()))
    }

    /// Whether the task ended with an error at least [`restart_delay`] ago.
    fn restart_due(&self, now: Instant) -> bool {
        let ended = self
            .failure
            .lock()
            .ok()
            .and_then(|f| f.as_ref().map(|(_, at)| *at));
        ended.is_some_and(|at| {
            self.handle.is_finished() && now.duration_since(at) >= restart_delay(self.restarts)
        })
    }

    /// Stops the task: by its signal when it has one (aborted after [`TASK_STOP_GRACE`]),
    /// else at once.
    fn stop(self) {
        let mut handle = self.handle;
        match self.stop {
            Some(stop) => {
                let _ = stop.send(());
                tokio::spawn(async move {
                    if tokio::time::timeout(TASK_STOP_GRACE, &mut handle)
                        .await
                        .is_err()
                    {
                        tracing::warn!("event source task did not stop in time; aborted");
                        handle.abort();
                    }
                });
            }
            None => handle.abort(),
        }
    }
}

struct Controller {
    client: kube::Client,
    bus: AnyBus,
    store: Store,
    state: EventsState,
    settings: Settings,
    /// (namespace, name) → when read, and its data (or why it is unreadable).
    secrets: HashMap<Key, (Instant, SecretData)>,
    listeners: BTreeMap<u16, Listener>,
    tasks: BTreeMap<TaskKey, RunningTask>,
}

/// An EventSource, or a Secret: (namespace, name).
type Key = (String, String);
/// A Secret's data, or why it could not be read.
type SecretData = Result<BTreeMap<String, Vec<u8>>, String>;

impl Controller {
    async fn reconcile(&mut self, objects: &[EventSource]) {
        let start = Instant::now();
        let plan = super::plan(objects);
        let mut problems: BTreeMap<Key, Vec<Problem>> = BTreeMap::new();
        let table = self.resolve(&plan, &mut problems).await;
        let ports = table.ports();
        let endpoints = table.len();
        self.state.set_table(table);
        self.listen(&plan, &ports, &mut problems).await;
        self.run_tasks(&plan, &mut problems).await;
        self.write_status(objects, &plan, &problems).await;
        metrics::gauge!("cairn_events_endpoints").set(endpoints as f64);
        metrics::gauge!("cairn_events_source_tasks").set(self.tasks.len() as f64);
        metrics::gauge!("cairn_events_listeners").set(self.listeners.len() as f64);
        metrics::histogram!("cairn_events_source_reconcile_seconds")
            .record(start.elapsed().as_secs_f64());
    }

    /// The table with every endpoint's Secret resolved; unreadable ones are problems.
    async fn resolve(&mut self, plan: &Plan, problems: &mut BTreeMap<Key, Vec<Problem>>) -> Table {
        let mut live = Vec::with_capacity(plan.endpoints.len());
        for ep in &plan.endpoints {
            let secret = match &ep.secret {
                None => SecretState::NotConfigured,
                Some(r) => match self.secret(&ep.namespace, r).await {
                    Ok(v) => SecretState::Ready(v),
                    Err(message) => {
                        let field = match ep.kind {
                            super::EndpointKind::Webhook => "authSecret",
                            super::EndpointKind::Github => "webhookSecret",
                            super::EndpointKind::Gitlab => "secretToken",
                        };
                        problems
                            .entry((ep.namespace.clone(), ep.event_source.clone()))
                            .or_default()
                            .push(Problem {
                                reason: "SecretUnavailable",
                                message: format!(
                                    "spec.{}.{}.{field}: {message}; requests are refused until it is readable",
                                    ep.kind.as_str(),
                                    ep.event_name
                                ),
                            });
                        SecretState::Unavailable
                    }
                },
            };
            live.push(LiveEndpoint {
                endpoint: ep.clone(),
                secret,
            });
        }
        // Forget Secrets no endpoint or nats task references any more.
        let mut used: BTreeSet<Key> = plan
            .endpoints
            .iter()
            .filter_map(|e| {
                e.secret
                    .as_ref()
                    .map(|r| (e.namespace.clone(), r.name.clone()))
            })
            .collect();
        for (t, spec) in nats_specs(plan) {
            used.extend(
                spec.secret_refs()
                    .into_iter()
                    .map(|(_, r)| (t.namespace.clone(), r.name)),
            );
        }
        self.secrets.retain(|k, _| used.contains(k));
        Table::new(live)
    }

    /// The value of `r` in `namespace`, from the cache when fresh.
    async fn secret(&mut self, namespace: &str, r: &SecretRef) -> Result<SecretValue, String> {
        self.secret_bytes(namespace, r).await.map(SecretValue::new)
    }

    /// [`Controller::secret`] as bytes.
    async fn secret_bytes(&mut self, namespace: &str, r: &SecretRef) -> Result<Vec<u8>, String> {
        let key = (namespace.to_owned(), r.name.clone());
        let fresh = self
            .secrets
            .get(&key)
            .is_some_and(|(at, _)| at.elapsed() < self.settings.secret_ttl);
        if !fresh {
            let data = read_secret(&self.client, namespace, &r.name)
                .await
                .map_err(|e| {
                    metrics::counter!("cairn_events_source_errors_total", "reason" => e.metric_label())
                        .increment(1);
                    e.to_string()
                });
            self.secrets.insert(key.clone(), (Instant::now(), data));
        }
        match self.secrets.get(&key).map(|(_, d)| d) {
            Some(Ok(data)) => match data.get(&r.key) {
                Some(v) if !v.is_empty() => Ok(v.clone()),
                Some(_) => Err(format!(
                    "key {:?} of Secret {namespace}/{} is empty",
                    r.key, r.name
                )),
                None => Err(format!(
                    "Secret {namespace}/{} has no key {:?}",
                    r.name, r.key
                )),
            },
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("Secret {namespace}/{} was not read", r.name)),
        }
    }

    /// Starts listeners for `ports` not yet served, stops the others.
    async fn listen(
        &mut self,
        plan: &Plan,
        ports: &BTreeSet<u16>,
        problems: &mut BTreeMap<Key, Vec<Problem>>,
    ) {
        let gone: Vec<u16> = self
            .listeners
            .keys()
            .filter(|p| !ports.contains(p))
            .copied()
            .collect();
        for port in gone {
            if let Some(l) = self.listeners.remove(&port) {
                let _ = l.stop.send(true);
                tracing::info!(port, "event source listener stopped");
            }
        }
        for &port in ports {
            if self.listeners.contains_key(&port) {
                continue;
            }
            let addr = SocketAddr::new(self.settings.bind_ip, port);
            match start_listener(self.state.clone(), addr).await {
                Ok(l) => {
                    tracing::info!(%addr, "event source listener started");
                    self.listeners.insert(port, l);
                }
                Err(e) => {
                    metrics::counter!("cairn_events_source_errors_total", "reason" => e.metric_label())
                        .increment(1);
                    tracing::warn!(error = %e, "event source listener not started; retried at the next resync");
                    for ep in plan.endpoints.iter().filter(|e| e.port == Some(port)) {
                        problems
                            .entry((ep.namespace.clone(), ep.event_source.clone()))
                            .or_default()
                            .push(Problem {
                                reason: "ListenFailed",
                                message: format!(
                                    "spec.{}.{}.port: {e}; the event is served only under /api/events/{}/{}/{}",
                                    ep.kind.as_str(),
                                    ep.event_name,
                                    ep.namespace,
                                    ep.event_source,
                                    ep.path
                                ),
                            });
                    }
                }
            }
        }
    }

    /// The credentials of every nats task whose Secrets are readable; problems for the others.
    async fn nats_credentials(
        &mut self,
        plan: &Plan,
        problems: &mut BTreeMap<Key, Vec<Problem>>,
    ) -> BTreeMap<TaskKey, (NatsSpec, Credentials)> {
        let mut out = BTreeMap::new();
        for (t, spec) in nats_specs(plan) {
            let mut creds = Credentials::new();
            let mut ok = true;
            for (field, r) in spec.secret_refs() {
                match self.secret_bytes(&t.namespace, &r).await {
                    Ok(v) => creds.insert(field, v),
                    Err(message) => {
                        ok = false;
                        problems
                            .entry((t.namespace.clone(), t.event_source.clone()))
                            .or_default()
                            .push(Problem {
                                reason: "SecretUnavailable",
                                message: format!(
                                    "spec.nats.{}.{field}: {message}; the event is not (re)started until it is readable",
                                    t.event_name
                                ),
                            });
                    }
                }
            }
            if ok {
                out.insert(task_key(t), (spec, creds));
            }
        }
        out
    }

    /// Starts, restarts and stops calendar, resource and nats tasks to match the plan.
    async fn run_tasks(&mut self, plan: &Plan, problems: &mut BTreeMap<Key, Vec<Problem>>) {
        let mut nats = self.nats_credentials(plan, problems).await;
        let wanted: BTreeMap<_, &TaskSpec> = plan
            .tasks
            .iter()
            .map(|t| {
                (
                    (
                        t.namespace.clone(),
                        t.event_source.clone(),
                        t.event_name.clone(),
                        t.kind,
                    ),
                    t,
                )
            })
            .collect();
        let stale: Vec<_> = self
            .tasks
            .iter()
            .filter(|(k, t)| {
                wanted.get(*k).is_none_or(|w| w.spec != t.spec)
                    || nats
                        .get(*k)
                        .is_some_and(|(_, c)| t.fingerprint.as_ref() != Some(&c.fingerprint()))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut forget: BTreeSet<Key> = BTreeSet::new();
        for key in stale {
            if let Some(t) = self.tasks.remove(&key) {
                t.stop();
                if key.3 == TaskKind::Calendar && !wanted.contains_key(&key) {
                    forget.insert((key.0.clone(), key.1.clone()));
                }
            }
        }
        for (ns, es) in forget {
            let keep: Vec<String> = plan
                .tasks
                .iter()
                .filter(|t| {
                    t.kind == TaskKind::Calendar && t.namespace == ns && t.event_source == es
                })
                .map(|t| t.event_name.clone())
                .collect();
            if let Err(error) = super::calendar::forget(&self.store, &ns, &es, &keep).await {
                tracing::warn!(namespace = %ns, event_source = %es, %error, "calendar records not dropped");
            }
        }
        // Tasks that ended with an error are started again once their delay has passed (a
        // resource watch refused until its RBAC is fixed, a nats server that came back...).
        let now = Instant::now();
        let due: Vec<TaskKey> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.restart_due(now))
            .map(|(k, _)| k.clone())
            .collect();
        let mut restarts: BTreeMap<TaskKey, u32> = BTreeMap::new();
        for key in due {
            if let Some(t) = self.tasks.remove(&key) {
                restarts.insert(key, t.restarts.saturating_add(1));
                t.stop();
            }
        }
        for (key, spec) in wanted {
            if !self.tasks.contains_key(&key) {
                let task = if key.3 == TaskKind::Nats {
                    // Not started while its Secrets cannot be read (reported above).
                    let Some((nats_spec, creds)) = nats.remove(&key) else {
                        continue;
                    };
                    self.start_nats(spec, nats_spec, creds)
                } else {
                    self.start_task(spec)
                };
                let mut task = task;
                if let Some(&n) = restarts.get(&key) {
                    tracing::info!(namespace = %key.0, event_source = %key.1, event = %key.2, restarts = n, "event source task restarted");
                    task.restarts = n;
                }
                self.tasks.insert(key.clone(), task);
            }
            let connection = self
                .tasks
                .get(&key)
                .and_then(|t| t.conn.as_ref())
                .and_then(|c| c.borrow().problem());
            if let Some(message) = connection {
                problems
                    .entry((key.0.clone(), key.1.clone()))
                    .or_default()
                    .push(Problem {
                        reason: "ConnectionFailed",
                        message: format!("spec.nats.{}: {message}", key.2),
                    });
            }
            let failure = self.tasks.get(&key).and_then(|t| {
                t.failure().map(|m| {
                    format!(
                        "{m} (restart {} after {:?})",
                        t.restarts + 1,
                        restart_delay(t.restarts)
                    )
                })
            });
            if let Some(message) = failure {
                problems
                    .entry((key.0.clone(), key.1.clone()))
                    .or_default()
                    .push(Problem {
                        reason: "SourceFailed",
                        message,
                    });
            }
        }
    }

    fn start_task(&self, t: &TaskSpec) -> RunningTask {
        let ctx = SourceContext {
            namespace: t.namespace.clone(),
            event_source: t.event_source.clone(),
            bus: self.bus.clone(),
            store: self.store.clone(),
            client: self.client.clone(),
        };
        let failure = Arc::new(Mutex::new(None));
        let report = failure.clone();
        let (kind, event, spec) = (t.kind, t.event_name.clone(), t.spec.clone());
        let field = match kind {
            TaskKind::Calendar => format!("spec.calendar.{event}"),
            TaskKind::Resource => format!("spec.resource.{event}"),
            TaskKind::Nats => format!("spec.nats.{event}"),
        };
        let handle = tokio::spawn(async move {
            let result: Result<(), String> = match kind {
                TaskKind::Calendar => match serde_json::from_value(spec) {
                    Ok(spec) => super::calendar::run(ctx, event, spec)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(format!("{field}: {e}")),
                },
                TaskKind::Resource => match serde_json::from_value(spec) {
                    Ok(spec) => super::resource::run(ctx, event, spec)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(format!("{field}: {e}")),
                },
                // Started by `start_nats` (it needs its Secrets); never planned here.
                TaskKind::Nats => Err(format!("{field}: started without its credentials")),
            };
            if let Err(message) = result {
                tracing::warn!(source = %field, error = %message, "event source task ended; restarted after a delay");
                if let Ok(mut f) = report.lock() {
                    *f = Some((message, Instant::now()));
                }
            }
        });
        RunningTask {
            spec: t.spec.clone(),
            handle,
            failure,
            restarts: 0,
            fingerprint: None,
            stop: None,
            conn: None,
        }
    }

    /// Starts a nats task with its resolved credentials.
    fn start_nats(&self, t: &TaskSpec, spec: NatsSpec, credentials: Credentials) -> RunningTask {
        let failure = Arc::new(Mutex::new(None));
        let report = failure.clone();
        let fingerprint = credentials.fingerprint();
        let source = NatsSource {
            topic: Topic::new(&t.namespace, &t.event_source, &t.event_name),
            spec,
            credentials,
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (state_tx, state_rx) = watch::channel(ConnState::Connecting {
            attempts: 0,
            error: None,
        });
        let bus = self.bus.clone();
        let handle = tokio::spawn(async move {
            let stop = async move {
                // A dropped sender (the controller gone) stops the task too.
                let _ = stop_rx.await;
            };
            if let Err(e) = super::nats::run(bus, source, state_tx, stop).await {
                tracing::warn!(error = %e, "event source task ended; restarted after a delay");
                if let Ok(mut f) = report.lock() {
                    *f = Some((e.field_message(), Instant::now()));
                }
            }
        });
        RunningTask {
            spec: t.spec.clone(),
            handle,
            failure,
            restarts: 0,
            fingerprint: Some(fingerprint),
            stop: Some(stop_tx),
            conn: Some(state_rx),
        }
    }

    /// Writes the conditions of every EventSource whose conditions changed.
    async fn write_status(
        &self,
        objects: &[EventSource],
        plan: &Plan,
        problems: &BTreeMap<Key, Vec<Problem>>,
    ) {
        let now = jiff::Timestamp::now();
        for es in objects {
            let key = (
                es.metadata.namespace.clone().unwrap_or_default(),
                es.metadata.name.clone().unwrap_or_default(),
            );
            let mut verdict = plan.verdicts.get(&key).cloned().unwrap_or_default();
            verdict
                .problems
                .extend(problems.get(&key).into_iter().flatten().cloned());
            let wanted = super::conditions(&verdict);
            let current = es
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            let Some(conditions) = super::merge_conditions(&current, &wanted, now) else {
                continue;
            };
            if let Err(e) = patch_status(&self.client, &key.0, &key.1, conditions).await {
                metrics::counter!("cairn_events_source_errors_total", "reason" => e.metric_label())
                    .increment(1);
                tracing::warn!(error = %e, "EventSource status not written; retried at the next reconcile");
            }
        }
    }

    fn shutdown(&mut self) {
        for (_, l) in std::mem::take(&mut self.listeners) {
            let _ = l.stop.send(true);
        }
        for (_, t) in std::mem::take(&mut self.tasks) {
            t.stop();
        }
    }
}

/// How long a task that ended with an error waits before its restart number `restarts + 1`:
/// 10 s doubling per restart, at most 5 min (checked at each reconcile, so at least `resync`).
fn restart_delay(restarts: u32) -> Duration {
    const FIRST: Duration = Duration::from_secs(10);
    const MAX: Duration = Duration::from_secs(300);
    FIRST
        .checked_mul(2u32.saturating_pow(restarts.min(16)))
        .map_or(MAX, |d| d.min(MAX))
}

/// A task's key: (namespace, event source, event name, kind).
type TaskKey = (String, String, String, TaskKind);

fn task_key(t: &TaskSpec) -> TaskKey {
    (
        t.namespace.clone(),
        t.event_source.clone(),
        t.event_name.clone(),
        t.kind,
    )
}

/// The nats tasks of `plan` with their checked specs (the plan only lists valid ones).
fn nats_specs(plan: &Plan) -> impl Iterator<Item = (&TaskSpec, NatsSpec)> {
    plan.tasks
        .iter()
        .filter(|t| t.kind == TaskKind::Nats)
        .filter_map(|t| {
            let object = format!("{}/{}", t.namespace, t.event_source);
            NatsSpec::parse(&object, &t.event_name, &t.spec)
                .ok()
                .map(|s| (t, s))
        })
}

async fn read_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, ControllerError> {
    let err = |detail: String| ControllerError::Secret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        detail,
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let got = tokio::time::timeout(API_TIMEOUT, api.get_opt(name))
        .await
        .map_err(|_| err(format!("no answer within {}s", API_TIMEOUT.as_secs())))?
        .map_err(|e| err(e.to_string()))?;
    let secret = got.ok_or_else(|| err("not found".into()))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

async fn patch_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    conditions: Vec<Value>,
) -> Result<(), ControllerError> {
    let err = |detail: String| ControllerError::Status {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        detail,
    };
    let api: Api<EventSource> = Api::namespaced(client.clone(), namespace);
    let patch = json!({"status": {"conditions": conditions}});
    tokio::time::timeout(
        API_TIMEOUT,
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    .map_err(|_| err(format!("no answer within {}s", API_TIMEOUT.as_secs())))?
    .map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Binds `addr` and serves the endpoints of its port (from `state`'s table) until the returned
/// sender sends `true` or is dropped. What the controller does per dedicated port.
pub async fn serve_port(
    state: EventsState,
    addr: SocketAddr,
) -> Result<watch::Sender<bool>, ControllerError> {
    start_listener(state, addr).await.map(|l| l.stop)
}

async fn start_listener(state: EventsState, addr: SocketAddr) -> Result<Listener, ControllerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ControllerError::Listen { addr, source })?;
    let (tx, mut rx) = watch::channel(false);
    let router = super::webhook::port_router(state, addr.port());
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        if let Err(error) = served {
            tracing::error!(%addr, %error, "event source listener failed");
        }
    });
    Ok(Listener { stop: tx })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_from_ten_seconds_up_to_five_minutes() {
        let secs: Vec<u64> = (0..7).map(|n| restart_delay(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(300));
    }
}
