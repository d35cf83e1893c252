//! The CronWorkflow controller: creates a CronWorkflow's Workflows when they are due, keeps
//! `status.active` and `status.lastScheduledTime`, applies `concurrencyPolicy` and the history
//! limits. The scheduling rules are `workflow::cron`'s; this module decides what to write
//! ([`plan`], pure) and writes it ([`run`]).
//!
//! Invariants:
//! - **A restart neither skips nor doubles a run.** The last *decided* scheduled time (run or
//!   skipped) is persisted on the CronWorkflow: `status.lastScheduledTime` for runs (as Argo
//!   writes it) and the [`ANNOTATION_LAST_DECIDED`] annotation for both. The child's name is
//!   deterministic (`<cron>-<unix seconds>`), and the child is created *before* the time is
//!   persisted: a crash in between replays the same decision, whose create answers
//!   AlreadyExists (treated as done), then persists.
//! - The CronWorkflow is written whole with the `resourceVersion` read (no status subresource on
//!   Argo's CRDs): a concurrent edit makes the write fail and the key is decided again.
//! - An invalid spec (schedule syntax, zone, policy, name too long) schedules nothing and is
//!   reported as a `SpecError` condition naming the field, as Argo does.
//!
//! Argo semantics (docs "Cron Workflows"; `workflow/cron/operator.go`): children carry the
//! `workflows.argoproj.io/cron-workflow` label, the `workflows.argoproj.io/scheduled-time`
//! annotation, `workflowMetadata`'s labels and annotations, and an owner reference to the
//! CronWorkflow; `Replace` terminates the active runs (`spec.shutdown: Terminate`) before the
//! new one; the `workflows.argoproj.io/last-used-schedule` annotation detects an edited
//! schedule, after which no missed time is run; children carry the CronWorkflow's
//! `workflows.argoproj.io/controller-instanceid` label. `spec.when` and `spec.stopStrategy`
//! (`cron::when`): at a due time a stopped CronWorkflow, or one whose stop expression now
//! holds, creates nothing; a false `when` skips that time (decided, never retried); an active
//! run that finishes counts in `status.succeeded`/`status.failed` and the stop expression is
//! checked again; stopping sets `status.phase: Stopped` and the
//! `workflows.argoproj.io/cron-workflow-completed: "true"` label.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::actions::is_completed;
use super::controller::WorkQueue;
use super::controller::scope::{self, Scoped};
use super::cron::when;
use super::cron::{
    CronDecision, CronSpec, RunPhase, RunSummary, child_workflow_name, due, history_to_delete,
    schedule_string,
};
use super::types::{CronWorkflow, CronWorkflowStatus, Workflow};

/// Label on a CronWorkflow's children (Argo's).
pub const LABEL_CRON_WORKFLOW: &str = "workflows.argoproj.io/cron-workflow";
/// Annotation on a child: the time it was scheduled for (Argo's).
pub const ANNOTATION_SCHEDULED_TIME: &str = "workflows.argoproj.io/scheduled-time";
/// Annotation on a CronWorkflow: the schedules last used (Argo's).
pub const ANNOTATION_LAST_USED_SCHEDULE: &str = "workflows.argoproj.io/last-used-schedule";
/// Annotation on a CronWorkflow: the latest scheduled time decided, run or skipped (cairn's:
/// Argo keeps that only in memory, which a restart loses).
pub const ANNOTATION_LAST_DECIDED: &str = "cairn/last-decided-time";

/// Errors of one CronWorkflow reconcile (logged and retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum CronControllerError {
    /// A call to the apiserver failed.
    #[error("{action}: {source}")]
    Kube {
        /// What was attempted.
        action: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
}

impl CronControllerError {
    fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// One child Workflow as the plan sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// Name.
    pub name: String,
    /// uid.
    pub uid: Option<String>,
    /// Phase.
    pub phase: Option<String>,
    /// `status.finishedAt`.
    pub finished_at: Option<Timestamp>,
}

impl Child {
    /// From a Workflow.
    pub fn of(wf: &Workflow) -> Child {
        Child {
            name: wf.name_any(),
            uid: wf.metadata.uid.clone(),
            phase: wf.status.as_ref().and_then(|s| s.phase.clone()),
            finished_at: wf.status.as_ref().and_then(|s| s.finished_at()),
        }
    }
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct CronPlan {
    /// A child to create (an existing one of that name counts as created).
    pub create: Option<Workflow>,
    /// Active children to terminate first (`Replace`).
    pub terminate: Vec<String>,
    /// Finished children beyond the history limits.
    pub delete: Vec<String>,
    /// The new status.
    pub status: CronWorkflowStatus,
    /// Annotations to set on the CronWorkflow.
    pub annotations: BTreeMap<String, String>,
    /// Labels to set on the CronWorkflow (`stopStrategy`'s completed label).
    pub labels: BTreeMap<String, String>,
    /// When to look again.
    pub requeue_after: Option<SignedDuration>,
}

fn parse_ts(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(|t| t.parse().ok())
}

fn condition(kind: &str, message: &str) -> Value {
    json!({"type": kind, "status": "True", "message": message})
}

fn child_ref(namespace: &str, name: &str, uid: Option<&str>) -> Value {
    let mut r = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "namespace": namespace,
        "name": name,
    });
    if let Some(uid) = uid {
        r["uid"] = json!(uid);
    }
    r
}

/// The Workflow a CronWorkflow creates for `scheduled` (pure).
pub fn child_workflow(cw: &CronWorkflow, scheduled: Timestamp) -> Workflow {
    let cron_name = cw.name_any();
    let namespace = cw.metadata.namespace.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    if let Some(meta) = &cw.spec.workflow_metadata {
        for (field, target) in [("labels", &mut labels), ("annotations", &mut annotations)] {
            if let Some(map) = meta.get(field).and_then(Value::as_object) {
                for (k, v) in map {
                    target.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                }
            }
        }
    }
    labels.insert(LABEL_CRON_WORKFLOW.to_owned(), cron_name.clone());
    // The child belongs to the same controller instance as its CronWorkflow (Argo's rule).
    if let Some(id) = cw.labels().get(super::controller::LABEL_INSTANCE_ID) {
        labels.insert(super::controller::LABEL_INSTANCE_ID.to_owned(), id.clone());
    }
    annotations.insert(ANNOTATION_SCHEDULED_TIME.to_owned(), scheduled.to_string());
    Workflow {
        metadata: ObjectMeta {
            name: Some(child_workflow_name(&cron_name, scheduled)),
            namespace: Some(namespace),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: cw.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "argoproj.io/v1alpha1".to_owned(),
                    kind: "CronWorkflow".to_owned(),
                    name: cron_name.clone(),
                    uid,
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..Default::default()
        },
        spec: cw.spec.workflow_spec.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// Decides what a CronWorkflow does at `now` given its children (see the module docs).
pub fn plan(cw: &CronWorkflow, children: &[Child], now: Timestamp, tz: &TimeZone) -> CronPlan {
    let namespace = cw.metadata.namespace.clone().unwrap_or_default();
    let mut status = cw.status.clone().unwrap_or_default();
    let annotations_in = cw.metadata.annotations.clone().unwrap_or_default();
    let mut out = CronPlan {
        create: None,
        terminate: Vec::new(),
        delete: Vec::new(),
        status: status.clone(),
        annotations: BTreeMap::new(),
        labels: BTreeMap::new(),
        requeue_after: None,
    };
    let spec = match CronSpec::from_cron_workflow(cw, tz) {
        Ok(spec) => spec,
        Err(e) => {
            status.conditions = Some(vec![condition("SpecError", &e.to_string())]);
            out.status = status;
            return out;
        }
    };
    let active: Vec<&Child> = children
        .iter()
        .filter(|c| !is_completed(c.phase.as_deref()))
        .collect();
    let schedule = schedule_string(&cw.spec);
    let edited = annotations_in
        .get(ANNOTATION_LAST_USED_SCHEDULE)
        .is_some_and(|s| s != &schedule);
    let decided = [
        parse_ts(status.last_scheduled_time.as_deref()),
        parse_ts(
            annotations_in
                .get(ANNOTATION_LAST_DECIDED)
                .map(String::as_str),
        ),
    ]
    .into_iter()
    .flatten()
    .max();
    // An edited schedule runs no missed time (Argo); an on-time run still happens.
    let last = if edited { None } else { decided };
    // Runs that were active and have finished since: Argo's succeeded/failed counters, then
    // its stop check.
    let was_active: Vec<&str> = status
        .active
        .iter()
        .flatten()
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .collect();
    let mut finished = 0;
    let (mut succeeded, mut failed) = (status.succeeded.unwrap_or(0), status.failed.unwrap_or(0));
    for c in children {
        if was_active.contains(&c.name.as_str()) && is_completed(c.phase.as_deref()) {
            finished += 1;
            match c.phase.as_deref() {
                Some("Succeeded") => succeeded += 1,
                _ => failed += 1,
            }
        }
    }
    if finished > 0 {
        status.succeeded = Some(succeeded);
        status.failed = Some(failed);
    }
    let mut conditions: Vec<Value> = Vec::new();
    if finished > 0 && !when::is_stopped(&with_status(cw, &status)) {
        check_stop(cw, now, &mut status, &mut conditions, &mut out.labels);
    }
    let mut active_refs: Vec<Value> = active
        .iter()
        .map(|c| child_ref(&namespace, &c.name, c.uid.as_deref()))
        .collect();
    let record = |out: &mut CronPlan, t: Timestamp| {
        out.annotations
            .insert(ANNOTATION_LAST_DECIDED.to_owned(), t.to_string());
        // Ask again at once: the next wake-up is computed from the new decided time.
        out.requeue_after = Some(SignedDuration::ZERO);
    };
    let decision = due(&spec, last, now, active.len());
    let allowed = !matches!(
        decision,
        CronDecision::Run { .. } | CronDecision::ReplaceThenRun { .. }
    ) || gate(cw, now, &mut status, &mut conditions, &mut out.labels);
    match decision {
        CronDecision::Run { scheduled_time }
        | CronDecision::ReplaceThenRun { scheduled_time, .. }
            if !allowed =>
        {
            record(&mut out, scheduled_time);
        }
        d @ (CronDecision::Run { scheduled_time }
        | CronDecision::ReplaceThenRun { scheduled_time, .. }) => {
            let child = child_workflow(cw, scheduled_time);
            let child_name = child.metadata.name.clone().unwrap_or_default();
            if matches!(d, CronDecision::ReplaceThenRun { .. }) {
                // The run of this very time is never a victim: a decision replayed from a
                // CronWorkflow the watch has not refreshed yet sees its own fresh child as
                // active, and must not terminate it.
                out.terminate = active
                    .iter()
                    .filter(|c| c.name != child_name)
                    .map(|c| c.name.clone())
                    .collect();
                active_refs
                    .retain(|r| r.get("name").and_then(Value::as_str) == Some(child_name.as_str()));
            }
            if !active_refs
                .iter()
                .any(|r| r.get("name").and_then(Value::as_str) == Some(child_name.as_str()))
            {
                active_refs.push(child_ref(&namespace, &child_name, None));
            }
            out.create = Some(child);
            status.last_scheduled_time = Some(scheduled_time.to_string());
            record(&mut out, scheduled_time);
        }
        CronDecision::Skip { scheduled_time, .. } => record(&mut out, scheduled_time),
        CronDecision::Wait { next } => {
            out.requeue_after = next.map(|n| n.duration_since(now));
        }
    }
    let runs: Vec<RunSummary> = children
        .iter()
        .map(|c| RunSummary {
            name: c.name.clone(),
            phase: match c.phase.as_deref() {
                Some("Succeeded") => RunPhase::Succeeded,
                Some("Failed") => RunPhase::Failed,
                Some("Error") => RunPhase::Error,
                _ => RunPhase::Running,
            },
            finished_at: c.finished_at,
        })
        .collect();
    out.delete = history_to_delete(
        &runs,
        spec.successful_history_limit,
        spec.failed_history_limit,
    );
    out.annotations
        .insert(ANNOTATION_LAST_USED_SCHEDULE.to_owned(), schedule);
    status.active = (!active_refs.is_empty()).then_some(active_refs);
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    if status.phase.is_none() {
        status.phase = Some("Active".to_owned());
    }
    out.status = status;
    out
}

/// `cw` as if its status were `status`.
fn with_status(cw: &CronWorkflow, status: &CronWorkflowStatus) -> CronWorkflow {
    let mut view = cw.clone();
    view.status = Some(status.clone());
    view
}

/// Evaluates `stopStrategy` and stops `status` when it holds. `true` when stopped.
fn check_stop(
    cw: &CronWorkflow,
    now: Timestamp,
    status: &mut CronWorkflowStatus,
    conditions: &mut Vec<Value>,
    labels: &mut BTreeMap<String, String>,
) -> bool {
    match when::should_stop(&with_status(cw, status), now) {
        Ok(false) => false,
        Ok(true) => {
            status.phase = Some(when::PHASE_STOPPED.to_owned());
            labels.insert(when::LABEL_CRON_COMPLETED.to_owned(), "true".to_owned());
            true
        }
        Err(e) => {
            conditions.push(condition(
                "SpecError",
                &format!(
                    "failed to check CronWorkflow '{}' stopping condition: {e}",
                    cw.name_any()
                ),
            ));
            true
        }
    }
}

/// Whether the run due now may be created: not stopped (nor stopping now), and `when` true.
/// A `when` that cannot be evaluated is a `SubmissionError` and counts as a failure (Argo).
fn gate(
    cw: &CronWorkflow,
    now: Timestamp,
    status: &mut CronWorkflowStatus,
    conditions: &mut Vec<Value>,
    labels: &mut BTreeMap<String, String>,
) -> bool {
    if when::is_stopped(&with_status(cw, status)) || check_stop(cw, now, status, conditions, labels)
    {
        return false;
    }
    match when::when_allows(&with_status(cw, status), now) {
        Ok(allowed) => allowed,
        Err(e) => {
            conditions.push(condition(
                "SubmissionError",
                &format!("run policy error: spec.when: {e}"),
            ));
            status.failed = Some(status.failed.unwrap_or(0) + 1);
            false
        }
    }
}

/// Runs the CronWorkflow controller until `shutdown` completes.
/// `namespaces` limits it to those namespaces (empty: all).
/// `instance_id` is Argo's controller instance id (see `controller::instance_selector`); the
/// children carry it.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    instance_id: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let selector = super::controller::instance_selector(instance_id.as_deref());
    let queue = WorkQueue::new();
    let mut tasks = Vec::new();
    // Only the configured namespaces are watched (all when none), see `controller::scope`:
    // the keys below need no second namespace filter.
    let targets = scope::watch_targets(&namespaces);
    let crons = scope::watch_scoped::<CronWorkflow>(
        &client,
        &targets,
        &watcher::Config::default().labels(&selector),
        &queue,
        |c| Some(format!("{}/{}", c.namespace()?, c.name_any())),
        &mut tasks,
    );
    // The children carry the parent's instance id label: another instance's runs are not ours.
    let children = scope::watch_scoped::<Workflow>(
        &client,
        &targets,
        &watcher::Config::default().labels(&format!("{LABEL_CRON_WORKFLOW},{selector}")),
        &queue,
        |w| {
            let ns = w.namespace()?;
            let parent = w.labels().get(LABEL_CRON_WORKFLOW)?;
            Some(format!("{ns}/{parent}"))
        },
        &mut tasks,
    );
    let shared = Arc::new((client, crons, children, queue.clone()));
    let work = async {
        if shared.1.wait_until_ready().await.is_err() || shared.2.wait_until_ready().await.is_err()
        {
            return;
        }
        tracing::info!("cronworkflow controller started");
        let tz = TimeZone::system();
        while let Some(k) = shared.3.next().await {
            match reconcile(&shared.0, &shared.1, &shared.2, &k, &tz).await {
                Ok(requeue) => {
                    shared.3.forget(&k);
                    if let Some(d) = requeue {
                        shared.3.add_after(k.clone(), d);
                    }
                }
                Err(e) => {
                    let retry_in = shared.3.add_failed(&k);
                    tracing::warn!(cronworkflow = %k, error = %e, retry_in_ms = retry_in.as_millis() as u64, "cron reconcile failed");
                }
            }
            shared.3.done(&k);
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
    queue.shutdown();
    for task in tasks {
        task.abort();
    }
}

async fn reconcile(
    client: &Client,
    crons: &Scoped<CronWorkflow>,
    children: &Scoped<Workflow>,
    k: &str,
    tz: &TimeZone,
) -> Result<Option<Duration>, CronControllerError> {
    let Some((namespace, name)) = k.split_once('/') else {
        return Ok(None);
    };
    let Some(cw) = crons.get(&ObjectRef::new(name).within(namespace)) else {
        return Ok(None);
    };
    let cw = (*cw).clone();
    if cw.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let kids: Vec<Child> = children
        .state()
        .into_iter()
        .filter(|w| {
            w.metadata.namespace.as_deref() == Some(namespace)
                && w.labels().get(LABEL_CRON_WORKFLOW).map(String::as_str) == Some(name)
        })
        .map(|w| Child::of(&w))
        .collect();
    let now = Timestamp::now();
    let p = plan(&cw, &kids, now, tz);
    let wfs: Api<Workflow> = Api::namespaced(client.clone(), namespace);
    for victim in &p.terminate {
        let patch = json!({"spec": {"shutdown": "Terminate"}});
        match wfs
            .patch(victim, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(CronControllerError::kube(
                    format!("terminate workflow {namespace}/{victim}"),
                    e,
                ));
            }
        }
    }
    if let Some(child) = &p.create {
        let child_name = child.metadata.name.clone().unwrap_or_default();
        match wfs.create(&PostParams::default(), child).await {
            Ok(_) => {
                tracing::info!(cronworkflow = %k, workflow = %child_name, "scheduled run created");
                metrics::counter!("cairn_cronworkflow_runs_total").increment(1);
            }
            // Created before a restart: the decision is being replayed.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(CronControllerError::kube(
                    format!("create workflow {namespace}/{child_name}"),
                    e,
                ));
            }
        }
    }
    let mut next = cw.clone();
    next.status = Some(p.status.clone());
    let annotations = next.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (key, value) in &p.annotations {
        annotations.insert(key.clone(), value.clone());
    }
    if !p.labels.is_empty() {
        let labels = next.metadata.labels.get_or_insert_with(BTreeMap::new);
        for (key, value) in &p.labels {
            labels.insert(key.clone(), value.clone());
        }
    }
    if next != cw {
        let api: Api<CronWorkflow> = Api::namespaced(client.clone(), namespace);
        match api.replace(name, &PostParams::default(), &next).await {
            Ok(_) => {}
            // Edited meanwhile: decide again from the newer object (the child, if any, exists
            // and its deterministic name keeps the replay from doubling it).
            Err(kube::Error::Api(s)) if s.code == 409 => {
                return Ok(Some(Duration::from_millis(200)));
            }
            Err(e) => {
                return Err(CronControllerError::kube(
                    format!("update cronworkflow {k}"),
                    e,
                ));
            }
        }
    }
    for old in &p.delete {
        match wfs.delete(old, &DeleteParams::background()).await {
            Ok(_) => {
                tracing::info!(cronworkflow = %k, workflow = %old, "history limit: run deleted")
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(CronControllerError::kube(
                    format!("delete workflow {namespace}/{old}"),
                    e,
                ));
            }
        }
    }
    Ok(p.requeue_after.map(|d| {
        Duration::try_from(d)
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_millis(100))
    }))
}

#[cfg(test)]
mod tests;
