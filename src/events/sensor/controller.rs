//! The Sensor controller: runs a [`SensorRunner`] per Sensor and reports on the objects.
//!
//! Watches Sensors (cluster-wide, or per namespace of `[events] namespaces`) and on every
//! change (debounced) and every [`RESYNC`]:
//! 1. compiles each Sensor ([`super::compile`]); a runner whose Sensor's spec is unchanged
//!    keeps running, one whose spec changed is stopped and started again (its persisted state
//!    is kept, minus triggers and dependencies that are gone), a new Sensor gets one;
//! 2. stops the runners of Sensors that are gone, deletes their state and their bus
//!    consumers, and deletes consumers of dependencies no Sensor has (in managed namespaces);
//! 3. writes `.status.conditions` (`DependenciesProvided`, `TriggersProvided`, `Deployed`, as
//!    Argo Events names them) of each Sensor whose conditions changed, and only then;
//! 4. prunes the sensor history (7 days, 10,000 records per sensor).
//!
//! Invariants: one reconcile at a time; every API call is bounded by [`API_TIMEOUT`]; a runner
//! that cannot start (bus down) is retried with a bounded backoff inside its own task and
//! reported in `Deployed`; one Sensor's failure never stops another.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::runner::{self, SensorRunner, Settings};
use super::{CompiledSensor, compile};
use crate::config::EventsConfig;
use crate::events::bus::{AnyBus, Bus, encode_token};
use crate::events::history::{History, Retention};
use crate::events::sources::{Condition, merge_conditions};
use crate::events::trigger::Executor;
use crate::events::types::Sensor;
use crate::store::Store;
use crate::workflow::controller::scope::{Scoped, manages, watch_targets};

/// Every Kubernetes call of the controller is bounded by this.
pub const API_TIMEOUT: Duration = Duration::from_secs(15);
/// Changes arriving within this are reconciled together.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// Full reconcile at least this often.
pub const RESYNC: Duration = Duration::from_secs(60);

struct Running {
    fingerprint: String,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    /// Why the runner is not running (start failures), for `Deployed`.
    failure: Arc<Mutex<Option<String>>>,
}

/// The conditions of a compiled Sensor, given why its runner is not running (if it is not).
pub fn conditions(sensor: &CompiledSensor, failure: Option<&str>) -> Vec<Condition> {
    let cond = |type_, problems: &[String], reason: &str| Condition {
        type_,
        status: problems.is_empty(),
        reason: if problems.is_empty() {
            String::new()
        } else {
            reason.to_owned()
        },
        message: problems.join("; "),
    };
    let deployed = match failure {
        Some(f) => Condition {
            type_: "Deployed",
            status: false,
            reason: "NotRunning".into(),
            message: f.to_owned(),
        },
        None if sensor.triggers.is_empty() || sensor.dependencies.is_empty() => Condition {
            type_: "Deployed",
            status: false,
            reason: "NothingToRun".into(),
            message: "no dependency or no trigger of this sensor can run".into(),
        },
        None => Condition {
            type_: "Deployed",
            status: true,
            reason: "Running".into(),
            message: String::new(),
        },
    };
    vec![
        cond(
            "DependenciesProvided",
            &sensor.dependency_problems,
            "InvalidDependencies",
        ),
        cond(
            "TriggersProvided",
            &sensor.trigger_problems,
            "InvalidTriggers",
        ),
        deployed,
    ]
}

/// Runs every Sensor of the managed namespaces until `stop` resolves. Opens the sensor
/// history in `store`; trigger HTTP requests use their own client.
pub async fn run(
    client: kube::Client,
    bus: AnyBus,
    store: Store,
    config: EventsConfig,
    stop: impl Future<Output = ()> + Send,
) {
    let history = match History::open(store).await {
        Ok(h) => h,
        Err(error) => {
            tracing::error!(%error, "sensor history unavailable; sensors do not run");
            return;
        }
    };
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(error) => {
            tracing::error!(%error, "HTTP client for triggers unavailable; sensors do not run");
            return;
        }
    };
    let executor = Executor::new(Some(client.clone()), http);
    let changed = Arc::new(Notify::new());
    let mut watches = Vec::new();
    let mut stores = Vec::new();
    for target in watch_targets(&config.namespaces) {
        let (reader, writer) = reflector::store::<Sensor>();
        let api: Api<Sensor> = target.api(client.clone());
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
                        tracing::warn!(target = %label, %error, "Sensor watch failed; retrying")
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
        history,
        executor,
        config,
        running: BTreeMap::new(),
        pruned: None,
    };
    tracing::info!(namespaces = ?ctl.config.namespaces, "sensor controller starting");
    tokio::pin!(stop);
    let ready = tokio::select! {
        r = cache.wait_until_ready() => r.is_ok(),
        () = &mut stop => false,
    };
    if ready {
        loop {
            let sensors: Vec<Sensor> = cache
                .state()
                .iter()
                .filter(|s| {
                    manages(
                        &ctl.config.namespaces,
                        s.metadata.namespace.as_deref().unwrap_or_default(),
                    )
                })
                .map(|s| (**s).clone())
                .collect();
            ctl.reconcile(&sensors).await;
            tokio::select! {
                () = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
                () = tokio::time::sleep(RESYNC) => {}
                () = &mut stop => break,
            }
        }
    }
    for w in watches {
        w.abort();
    }
    for (_, r) in std::mem::take(&mut ctl.running) {
        stop_runner(r).await;
    }
    tracing::info!("sensor controller stopped");
}

struct Controller {
    client: kube::Client,
    bus: AnyBus,
    history: History,
    executor: Executor,
    config: EventsConfig,
    running: BTreeMap<String, Running>,
    /// When the history was last pruned (at most once per [`RESYNC`]).
    pruned: Option<tokio::time::Instant>,
}

/// Stops a runner: cancels it, waits up to 5 s for it to end between batches, then aborts it
/// (a firing cut short is replayed from the persisted outbox by the next runner), so two
/// runners of one Sensor never overlap.
async fn stop_runner(r: Running) {
    r.stop.cancel();
    let mut handle = r.handle;
    if tokio::time::timeout(Duration::from_secs(5), &mut handle)
        .await
        .is_err()
    {
        handle.abort();
        let _ = handle.await;
    }
}

impl Controller {
    async fn reconcile(&mut self, sensors: &[Sensor]) {
        let mut wanted_consumers = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for s in sensors {
            if s.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let compiled = Arc::new(compile(s));
            let key = compiled.key();
            seen.insert(key.clone());
            wanted_consumers.extend(compiled.dependencies.values().map(|d| d.consumer.clone()));
            let fingerprint = serde_json::to_string(&s.spec).unwrap_or_default();
            let same = self
                .running
                .get(&key)
                .is_some_and(|r| r.fingerprint == fingerprint && !r.handle.is_finished());
            if !same {
                if let Some(old) = self.running.remove(&key) {
                    stop_runner(old).await;
                    tracing::info!(sensor = %key, "sensor spec changed; restarting");
                }
                self.running
                    .insert(key.clone(), self.start(compiled.clone(), fingerprint));
            }
            let failure = self
                .running
                .get(&key)
                .and_then(|r| r.failure.lock().ok().and_then(|f| f.clone()));
            self.write_status(s, &compiled, failure.as_deref()).await;
        }
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(r) = self.running.remove(&key) {
                stop_runner(r).await;
            }
            if let Err(error) = runner::delete_state(self.history.store(), &key).await {
                tracing::warn!(sensor = %key, %error, "state of a deleted sensor not removed");
            }
            tracing::info!(sensor = %key, "sensor deleted; stopped");
        }
        // Consumers of sensors or dependencies that are gone, in the namespaces managed here.
        match tokio::time::timeout(API_TIMEOUT, self.bus.consumers()).await {
            Ok(Ok(all)) => {
                for c in all {
                    if wanted_consumers.contains(&c) || !self.owns_consumer(&c) {
                        continue;
                    }
                    if let Err(error) = self.bus.delete_consumer(&c).await {
                        tracing::warn!(consumer = %c, %error, "stale consumer not deleted");
                    }
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "bus consumers not listed"),
            Err(_) => tracing::warn!("bus consumers not listed within the timeout"),
        }
        // State rows of sensors that no longer exist (deleted while cairn was down).
        if let Ok(keys) = runner::state_keys(self.history.store()) {
            for key in keys.into_iter().filter(|k| !seen.contains(k)) {
                let ns = key.split('/').next().unwrap_or_default();
                if manages(&self.config.namespaces, ns) {
                    let _ = runner::delete_state(self.history.store(), &key).await;
                }
            }
        }
        if self.pruned.is_none_or(|t| t.elapsed() >= RESYNC) {
            self.pruned = Some(tokio::time::Instant::now());
            if let Err(error) = self
                .history
                .prune(Retention::default(), jiff::Timestamp::now())
                .await
            {
                tracing::warn!(%error, "sensor history not pruned");
            }
        }
    }

    /// Whether a consumer name belongs to a sensor of a namespace managed here.
    fn owns_consumer(&self, consumer: &str) -> bool {
        let Some((ns, rest)) = consumer.split_once("__") else {
            return false;
        };
        if !rest.contains("__") {
            return false;
        }
        self.config.namespaces.is_empty()
            || self.config.namespaces.iter().any(|n| encode_token(n) == ns)
    }

    fn start(&self, sensor: Arc<CompiledSensor>, fingerprint: String) -> Running {
        let stop = CancellationToken::new();
        let failure = Arc::new(Mutex::new(None));
        let (bus, history, executor) = (
            self.bus.clone(),
            self.history.clone(),
            self.executor.clone(),
        );
        let settings = Settings::new(self.config.ack_wait);
        let (task_stop, task_failure) = (stop.clone(), failure.clone());
        let handle = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(500);
            let runner = loop {
                let started = SensorRunner::start(
                    sensor.clone(),
                    bus.clone(),
                    history.clone(),
                    executor.clone(),
                    settings.clone(),
                )
                .await;
                match started {
                    Ok(r) => break r,
                    Err(error) => {
                        tracing::warn!(sensor = %sensor.key(), %error, retry_in_ms = backoff.as_millis() as u64, "sensor not started");
                        if let Ok(mut f) = task_failure.lock() {
                            *f = Some(error.to_string());
                        }
                        tokio::select! {
                            () = task_stop.cancelled() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            };
            if let Ok(mut f) = task_failure.lock() {
                *f = None;
            }
            runner.run(task_stop).await;
        });
        Running {
            fingerprint,
            stop,
            handle,
            failure,
        }
    }

    async fn write_status(&self, s: &Sensor, compiled: &CompiledSensor, failure: Option<&str>) {
        let wanted = conditions(compiled, failure);
        let current = s
            .status
            .as_ref()
            .and_then(|st| st.conditions.clone())
            .unwrap_or_default();
        let Some(conditions) = merge_conditions(&current, &wanted, jiff::Timestamp::now()) else {
            return;
        };
        let api: Api<Sensor> = Api::namespaced(self.client.clone(), &compiled.namespace);
        let patch = json!({"status": {"conditions": Value::Array(conditions)}});
        let written = tokio::time::timeout(
            API_TIMEOUT,
            api.patch_status(
                &compiled.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ),
        )
        .await;
        match written {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(sensor = %compiled.key(), %error, "Sensor status not written; retried at the next reconcile")
            }
            Err(_) => {
                tracing::warn!(sensor = %compiled.key(), "Sensor status not written within the timeout; retried at the next reconcile")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_say_what_does_not_run() {
        let s: Sensor = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor",
            "metadata": {"namespace": "ns", "name": "s"},
            "spec": {"dependencies": [{"name": "a", "eventSourceName": "w", "eventName": "a"}],
                     "triggers": [{"template": {"name": "k", "kafka": {}}},
                                  {"template": {"name": "l", "log": {}}}]}
        }))
        .expect("sensor");
        let c = conditions(&compile(&s), None);
        assert_eq!(c[0].type_, "DependenciesProvided");
        assert!(c[0].status);
        assert_eq!(c[1].type_, "TriggersProvided");
        assert!(!c[1].status);
        assert!(c[1].message.contains("kafka"), "{}", c[1].message);
        assert!(c[2].status, "the log trigger runs");
        let down = conditions(&compile(&s), Some("event bus: unreachable"));
        assert!(!down[2].status && down[2].message.contains("unreachable"));
    }
}
