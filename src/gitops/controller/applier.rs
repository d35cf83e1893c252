//! The applier: runs an operation (`.operation` on the Application) with the pure sync core.
//!
//! Each reconcile of an application with an operation: find or start the operation state
//! (`.status.operationState`, cairn's resumable part under `cairnSync`), render at the
//! operation's revisions, `sync::plan`, then loop `sync::step` → persist → execute → observe
//! until the step asks to wait (requeue in [`super::OPERATION_POLL`], never a sleep on a wave)
//! or the operation completes. A new operation first dry-runs every apply on the server (as
//! Argo CD does): a rejected object fails the operation before anything changes. On success the
//! history gets an entry (capped by `revisionHistoryLimit`) and `.operation` is cleared; on
//! failure `retry` re-runs it after its backoff.
//!
//! Deliberate differences from Argo CD: every apply is server-side (field manager `cairn`,
//! conflicts forced), also without `ServerSideApply=true`; a hook deleted before creation is
//! awaited (bounded) in the worker, since the state machine records the deletion as done.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube::api::Api;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::live::Live;
use super::reconcile::{self, Compared, Edit, app_sources, now_string, save};
use super::status::{self, reasons};
use super::{ControllerError, Inner, OPERATION_POLL};
use crate::gitops::health::{self, HealthStatusCode};
use crate::gitops::source::CredentialStore;
use crate::gitops::sync::options::{OperationOptions, PropagationPolicy};
use crate::gitops::sync::plan::{Action, Plan, PlanInput, TaskId};
use crate::gitops::sync::state::{
    self, Health, Observations, OperationPhase, OperationState, Outcome, StepAction,
};
use crate::gitops::types::{AppProject, Application, ApplicationSource, ApplicationStatus};
use crate::k8s::ResourceKey;

/// Steps taken in one reconcile before yielding the worker (a long plan continues next time).
const MAX_STEPS: usize = 64;
/// Bound on waiting for a hook deleted before its re-creation to disappear.
const HOOK_DELETE_WAIT: Duration = Duration::from_secs(30);
/// Bound on waiting for the CRD of a custom resource created in the same sync.
const CRD_WAIT: Duration = Duration::from_secs(15);
/// The finalizer that makes deleting an Application delete its resources.
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

fn health_of(code: HealthStatusCode) -> Health {
    match code {
        HealthStatusCode::Healthy => Health::Healthy,
        HealthStatusCode::Progressing => Health::Progressing,
        HealthStatusCode::Degraded => Health::Degraded,
        HealthStatusCode::Suspended => Health::Suspended,
        HealthStatusCode::Missing => Health::Missing,
        HealthStatusCode::Unknown => Health::Unknown,
    }
}

fn operation_id(app: &Application, started_at: &str, attempt: i64) -> String {
    let uid = app.metadata.uid.as_deref().unwrap_or("");
    let digest = Sha256::digest(format!("{uid}/{started_at}/{attempt}").as_bytes());
    hex::encode(&digest[..5])
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    let v: Vec<String> = serde_json::from_value(v?.clone()).ok()?;
    (!v.is_empty()).then_some(v)
}

/// Whether the sync operation deploys explicit sources (a rollback to a history entry).
fn explicit_sources(sync: &Value) -> Option<Vec<ApplicationSource>> {
    if let Some(s) = sync.get("sources")
        && let Ok(v) = serde_json::from_value::<Vec<ApplicationSource>>(s.clone())
        && !v.is_empty()
    {
        return Some(v);
    }
    sync.get("source")
        .and_then(|s| serde_json::from_value::<ApplicationSource>(s.clone()).ok())
        .map(|s| vec![s])
}

/// Everything one run of an operation carries between steps.
struct Run {
    op: Value,
    started_at: String,
    retry_count: i64,
    revisions: Vec<String>,
    sources: Vec<ApplicationSource>,
    multi: bool,
    /// Terminated by the user: never retried.
    terminated: bool,
    /// The comparison in the status was made after the sync: no refresh is needed.
    refreshed: bool,
}

impl Run {
    fn write(&self, status: &mut ApplicationStatus, st: &OperationState, finished: bool) {
        let mut os = st.to_status();
        os.operation = Some(self.op.clone());
        os.started_at = Some(self.started_at.clone());
        os.retry_count = (self.retry_count > 0).then_some(self.retry_count);
        if finished {
            os.finished_at = Some(now_string());
        }
        if let Some(Value::Object(result)) = os.sync_result.as_mut() {
            if self.multi {
                result.insert("revisions".into(), json!(self.revisions));
                result.insert("sources".into(), json!(self.sources));
            } else {
                result.insert(
                    "revision".into(),
                    json!(self.revisions.first().cloned().unwrap_or_default()),
                );
                result.insert("source".into(), json!(self.sources.first()));
            }
        }
        status.operation_state = Some(os);
    }
}

/// What the reconcile hands the operation.
pub(crate) struct OpContext<'a> {
    /// Name in tracking ids.
    pub app_name: &'a str,
    /// The comparison at the target revisions, when it succeeded.
    pub compared: Option<&'a Compared>,
    /// The governing AppProject.
    pub project: &'a AppProject,
    /// Repository credentials.
    pub creds: &'a CredentialStore,
    /// The destination cluster.
    pub live: &'a Live,
}

/// Run (or continue) the application's operation. `Ok(Some(d))`: look again within `d`.
pub(crate) async fn run_operation(
    inner: &Inner,
    api: &Api<Application>,
    app: &mut Application,
    status: &mut ApplicationStatus,
    ctx: &OpContext<'_>,
) -> Result<Option<Duration>, ControllerError> {
    let OpContext {
        app_name,
        compared,
        project,
        creds,
        live,
    } = *ctx;
    let Some(op) = app.operation.clone() else {
        return Ok(None);
    };
    let sync = op.get("sync").cloned().unwrap_or(Value::Null);
    let prev = status.operation_state.clone();
    let same = prev.as_ref().and_then(|p| p.operation.as_ref()) == Some(&op);
    let (spec_sources, spec_multi) = app_sources(app);
    let op_sources = explicit_sources(&sync);
    let multi = spec_multi || op_sources.as_ref().is_some_and(|s| s.len() > 1);
    let sources = op_sources.clone().unwrap_or(spec_sources);

    // Find the state to continue, or start.
    let mut resumed: Option<(OperationState, String, i64)> = None;
    if same && let Some(p) = &prev {
        // A completed state means this `.operation` is a new request (completing an operation
        // clears `.operation` in the same write, as Argo CD does), so only a running one, or a
        // failed attempt waiting for its retry, is continued.
        let phase = p.phase.as_deref().unwrap_or("");
        if phase == "Running" || phase == "Terminating" {
            let retry_count = p.retry_count.unwrap_or(0);
            let started = p.started_at.clone().unwrap_or_else(now_string);
            match OperationState::from_status(p) {
                Some(st) if !st.phase.is_completed() => resumed = Some((st, started, retry_count)),
                Some(_) => {
                    // A failed attempt waiting for its retry.
                    let delay = status::retry_delay(
                        op.get("retry"),
                        u32::try_from(retry_count).unwrap_or(u32::MAX),
                    )
                    .unwrap_or(Duration::ZERO);
                    let finished = p
                        .finished_at
                        .as_deref()
                        .and_then(|f| f.parse::<jiff::Timestamp>().ok())
                        .map_or(0, |f| f.as_second());
                    let due = finished + i64::try_from(delay.as_secs()).unwrap_or(0);
                    let now = jiff::Timestamp::now().as_second();
                    if now < due {
                        return Ok(Some(Duration::from_secs(
                            u64::try_from(due - now).unwrap_or(1),
                        )));
                    }
                    let id = operation_id(app, &started, retry_count);
                    resumed = Some((OperationState::new(id), started, retry_count));
                }
                None => {}
            }
        }
    }
    let fresh_start = resumed.is_none();
    let (mut st, started_at, retry_count) = resumed.unwrap_or_else(|| {
        let started = now_string();
        (
            OperationState::new(operation_id(app, &started, 0)),
            started,
            0,
        )
    });

    // Revisions: the operation's, else those resumed from the status, else the comparison's.
    let mut revisions = strings(sync.get("revisions")).or_else(|| {
        sync.get("revision")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(|r| vec![r.to_owned()])
    });
    if revisions.is_none() && !fresh_start {
        let result = prev.as_ref().and_then(|p| p.sync_result.as_ref());
        revisions = strings(result.and_then(|r| r.get("revisions"))).or_else(|| {
            result
                .and_then(|r| r.get("revision"))
                .and_then(Value::as_str)
                .map(|r| vec![r.to_owned()])
        });
    }
    let mut run = Run {
        op: op.clone(),
        started_at,
        retry_count,
        revisions: revisions.clone().unwrap_or_default(),
        sources: sources.clone(),
        multi,
        terminated: false,
        refreshed: false,
    };

    let fail = |st: &mut OperationState, message: String| {
        st.phase = OperationPhase::Failed;
        st.message = message;
    };

    // Rollback (explicit sources) is refused while automated sync is on (Argo CD).
    if op_sources.is_some() && status::automated_enabled(app.spec.sync_policy.as_ref()) {
        fail(
            &mut st,
            "rollback cannot be initiated when auto-sync is enabled".into(),
        );
        let now = now_string();
        let mut conds = status.conditions.clone().unwrap_or_default();
        conds.push(status::condition(
            reasons::SYNC_ERROR,
            st.message.clone(),
            &now,
        ));
        status.conditions = Some(conds);
        return complete(inner, api, app, status, &run, &st).await;
    }

    // The desired state at the operation's revisions.
    let reuse = compared.filter(|c| {
        op_sources.is_none() && revisions.as_ref().is_none_or(|r| *r == c.target.revisions)
    });
    let owned;
    let c: &Compared = match reuse {
        Some(c) => c,
        None => {
            match reconcile::compare(
                inner,
                reconcile::Request {
                    app,
                    app_name,
                    sources: &sources,
                    multi,
                    revisions: revisions.as_deref(),
                    refresh: reconcile::Refresh::None,
                    creds,
                    live,
                },
                project,
            )
            .await
            {
                Ok(c) => {
                    owned = c;
                    &owned
                }
                Err(message) => {
                    fail(&mut st, format!("ComparisonError: {message}"));
                    return complete(inner, api, app, status, &run, &st).await;
                }
            }
        }
    };
    run.revisions = c.target.revisions.clone();

    let dest_ns = app
        .spec
        .destination
        .as_ref()
        .and_then(|d| d.namespace.clone())
        .unwrap_or_default();
    let policy = app.spec.sync_policy.clone().unwrap_or_default();
    let sync_options = strings(sync.get("syncOptions"))
        .or(policy.sync_options.clone())
        .unwrap_or_default();
    let namespace_exists = if dest_ns.is_empty() {
        true
    } else {
        live.namespace_exists(&dest_ns).await?
    };
    let input = PlanInput {
        app: app_name.to_owned(),
        namespace: dest_ns,
        desired: c.desired.clone(),
        live: c.live.clone(),
        in_sync: c.cmp.in_sync(),
        sync_options,
        managed_namespace_metadata: policy.managed_namespace_metadata.clone(),
        namespace_exists,
        cluster_scoped: live.cluster_scoped().await?,
        operation: OperationOptions {
            id: st.operation_id.clone(),
            prune: sync.get("prune").and_then(Value::as_bool).unwrap_or(false),
            dry_run: sync.get("dryRun").and_then(Value::as_bool).unwrap_or(false),
            resources: status::selectors(&sync),
            prune_confirmed: false,
        },
    };
    let plan = match crate::gitops::sync::plan(&input) {
        Ok(p) => p,
        Err(e) => {
            fail(&mut st, e.to_string());
            return complete(inner, api, app, status, &run, &st).await;
        }
    };
    if !c.violations.is_empty() {
        fail(
            &mut st,
            format!("the project forbids: {}", c.violations.join("; ")),
        );
        return complete(inner, api, app, status, &run, &st).await;
    }
    // `Terminating` (written by the API, as Argo CD's terminate does): running hooks are
    // deleted and the operation fails, without a retry.
    let terminating = prev.as_ref().and_then(|p| p.phase.as_deref()) == Some("Terminating");
    if same && terminating {
        let next = state::terminate(&plan, &st);
        execute(live, &plan, &next.actions).await;
        run.terminated = true;
        return complete(inner, api, app, status, &run, &next.state).await;
    }
    let live_by_key: BTreeMap<ResourceKey, &Value> = c
        .live
        .iter()
        .filter_map(|o| Some((super::live::key_of(o)?, o)))
        .collect();
    if fresh_start && !plan.dry_run {
        let rejected = dry_run(live, &plan, &live_by_key).await;
        if !rejected.is_empty() {
            fail(
                &mut st,
                format!(
                    "one or more objects failed to apply (dry run), reason: {}",
                    rejected.join(", ")
                ),
            );
            return complete(inner, api, app, status, &run, &st).await;
        }
    }

    // The server's answers to this run's writes: health is read from them instead of from
    // the cluster, and at the end they give the comparison after the sync without listing.
    let mut answers = Answers::default();
    let mut obs = observe(live, &plan, &st, Observations::default(), &answers).await;
    for _ in 0..MAX_STEPS {
        let next = state::step(&plan, &st, &obs);
        st = next.state;
        if st.phase.is_completed() {
            if st.phase == OperationPhase::Succeeded
                && reuse.is_some()
                && let Some(refreshed) = answers.comparison(c, app, app_name, live).await
            {
                // The sync status written with the result is already the one after the sync.
                let key = super::AppRef {
                    namespace: app.metadata.namespace.clone().unwrap_or_default(),
                    name: app.metadata.name.clone().unwrap_or_default(),
                };
                reconcile::comparison_status(status, app, &key, &refreshed);
                run.refreshed = true;
            }
            return complete(inner, api, app, status, &run, &st).await;
        }
        run.write(status, &st, false);
        let edit = Edit {
            status: Some(status.clone()),
            ..Edit::default()
        };
        if next.actions.is_empty() {
            save(api, app, &edit).await?;
            return Ok(Some(OPERATION_POLL));
        }
        let done = if next.actions.iter().any(|a| touches_hook(&plan, a)) {
            // A hook is persisted before it is created: a restart must find this operation's
            // state and resume its hooks, never start them again under a new operation.
            save(api, app, &edit).await?;
            execute(live, &plan, &next.actions).await
        } else {
            // Applies and prunes are idempotent and the state records only what was observed:
            // if cairn stops before this write lands, the operation re-emits the same actions.
            // So the progress is written while they run instead of before.
            let (saved, done) =
                tokio::join!(save(api, app, &edit), execute(live, &plan, &next.actions));
            saved?;
            done
        };
        answers.absorb(&plan, &done);
        obs = observe(live, &plan, &st, done.obs, &answers).await;
    }
    Ok(Some(Duration::ZERO))
}

/// What the server answered to the writes of one run of an operation.
#[derive(Default)]
struct Answers {
    /// The stored object of each task applied (or replaced, or created).
    by_task: BTreeMap<TaskId, Value>,
    /// The same for ordinary resources (not hooks), by identity.
    stored: BTreeMap<ResourceKey, Value>,
    /// Ordinary resources pruned.
    pruned: BTreeSet<ResourceKey>,
    /// An ordinary resource was written without a readable answer: the comparison after the
    /// sync needs a listing.
    incomplete: bool,
}

impl Answers {
    fn absorb(&mut self, plan: &Plan, done: &Executed) {
        for (id, outcome) in &done.obs.outcomes {
            let Some(task) = plan.task(id) else { continue };
            if !matches!(outcome, Outcome::Ok(_)) {
                continue;
            }
            match (&task.action, done.stored.get(id)) {
                (Action::Prune, _) => {
                    self.pruned.insert(task.key.clone());
                }
                (Action::Create | Action::Apply | Action::Replace | Action::RunHook, Some(v))
                    if !v.is_null() =>
                {
                    self.by_task.insert(id.clone(), v.clone());
                    if !task.is_hook() {
                        self.stored.insert(task.key.clone(), v.clone());
                    }
                }
                (Action::Create | Action::Apply | Action::Replace, _) if !task.is_hook() => {
                    self.incomplete = true;
                }
                _ => {}
            }
        }
    }

    /// The comparison after the sync (see [`reconcile::recompare`]); `None` when an answer is
    /// missing or the comparison fails (the next reconcile then lists and compares).
    async fn comparison(
        &self,
        before: &Compared,
        app: &Application,
        app_name: &str,
        live: &Live,
    ) -> Option<Compared> {
        if self.incomplete {
            return None;
        }
        reconcile::recompare(before, app, app_name, live, &self.stored, &self.pruned)
            .await
            .map_err(|e| tracing::debug!(error = %e, "comparison after the sync failed"))
            .ok()
    }
}

/// Whether an action creates, deletes or waits on a hook.
fn touches_hook(plan: &Plan, action: &StepAction) -> bool {
    match action {
        StepAction::DeleteHook(_) => true,
        StepAction::Run(id) => plan.task(id).is_none_or(|t| {
            t.is_hook() || matches!(t.action, Action::RunHook | Action::DeleteHookBeforeCreation)
        }),
    }
}

/// Record the end of an attempt: history and cleared operation on success, a retry or the
/// final failure otherwise.
async fn complete(
    _inner: &Inner,
    api: &Api<Application>,
    app: &mut Application,
    status: &mut ApplicationStatus,
    run: &Run,
    st: &OperationState,
) -> Result<Option<Duration>, ControllerError> {
    let succeeded = st.phase == OperationPhase::Succeeded;
    run.write(status, st, true);
    let dry = run.op.pointer("/sync/dryRun").and_then(Value::as_bool) == Some(true);
    if succeeded && !dry {
        let mut history = status.history.clone().unwrap_or_default();
        let entry = status::history_entry(
            &run.revisions,
            &run.sources,
            run.multi,
            &now_string(),
            &run.started_at,
            run.op.get("initiatedBy").cloned(),
        );
        status::append_history(&mut history, entry, app.spec.revision_history_limit);
        status.history = Some(history);
    }
    let mut clear = true;
    let mut after = Duration::ZERO;
    if !succeeded && !run.terminated {
        let attempt = run.retry_count + 1;
        if let Some(delay) = status::retry_delay(
            run.op.get("retry"),
            u32::try_from(attempt).unwrap_or(u32::MAX),
        ) && let Some(os) = status.operation_state.as_mut()
        {
            os.phase = Some("Running".into());
            os.retry_count = Some(attempt);
            os.message = Some(format!(
                "Retrying attempt #{attempt} in {}s. {}",
                delay.as_secs(),
                st.message
            ));
            clear = false;
            after = delay;
        }
    }
    let edit = Edit {
        status: Some(status.clone()),
        clear_operation: clear.then(|| run.op.clone()),
        ..Edit::default()
    };
    save(api, app, &edit).await?;
    tracing::info!(
        app = app.metadata.name.as_deref().unwrap_or(""),
        phase = ?st.phase,
        message = %st.message,
        "operation finished"
    );
    if succeeded && run.refreshed {
        // Changes of the tracked objects from now on re-queue the app through their watches.
        return Ok(None);
    }
    Ok(Some(after))
}

/// Server-side dry run of every apply of the plan; the rejected ones, with the server's words.
/// Objects that skip the dry run (`SkipDryRunOnMissingResource`, CRs of CRDs in this sync) and
/// objects in a namespace this sync creates are not dry-run (the server cannot know them yet).
async fn dry_run(
    live: &Live,
    plan: &Plan,
    live_by_key: &BTreeMap<ResourceKey, &Value>,
) -> Vec<String> {
    let new_namespaces: BTreeSet<String> = plan
        .tasks
        .iter()
        .filter(|t| t.key.group.is_empty() && t.key.kind == "Namespace" && !t.live_exists)
        .map(|t| t.key.name.clone())
        .collect();
    let candidates: Vec<(&crate::gitops::sync::plan::Task, Option<&Value>)> = plan
        .tasks
        .iter()
        .filter(|task| {
            matches!(
                task.action,
                Action::Create | Action::Apply | Action::RunHook
            ) && !task.apply.skip_dry_run
                && !task
                    .key
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| new_namespaces.contains(ns))
        })
        .map(|task| (task, live_by_key.get(&task.key).copied()))
        // An unchanged object the server accepted against the same spec: no dry run.
        .filter(|(task, current)| !live.known_accepted(&task.object, *current, task.apply.validate))
        .collect();
    use futures::StreamExt as _;
    let dry_runs: Vec<_> = candidates
        .iter()
        .map(|(t, current)| live.dry_run(&t.object, *current, t.apply.validate))
        .collect();
    let mut rejected: Vec<String> = futures::stream::iter(dry_runs)
        .buffer_unordered(CONCURRENCY)
        .filter_map(|r| async move { r.err().map(|e| e.to_string()) })
        .collect()
        .await;
    rejected.sort();
    rejected
}

fn kind_name(task_object: &Value) -> String {
    let kind = task_object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let name = task_object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    format!("{kind}/{name}")
}

/// Requests in flight at once within one group of a wave (gitops-engine also runs the tasks of
/// a wave concurrently); bounded so a large wave does not flood the apiserver.
const CONCURRENCY: usize = 32;

/// What an action does, to keep the order between groups: prunes, then hook deletions before
/// creation, then applies, then hook deletions by policy.
fn group_of(plan: &Plan, action: &StepAction) -> u8 {
    match action {
        StepAction::DeleteHook(_) => 4,
        StepAction::Run(id) => match plan.task(id) {
            Some(t) if t.action == Action::Prune => 0,
            Some(t) if t.action == Action::DeleteHookBeforeCreation => 1,
            // Namespaces and CRDs before what lives in them or is of their kind, even within
            // one wave (the plan already orders them first).
            Some(t)
                if (t.key.group.is_empty() && t.key.kind == "Namespace")
                    || (t.key.group == "apiextensions.k8s.io"
                        && t.key.kind == "CustomResourceDefinition") =>
            {
                2
            }
            _ => 3,
        },
    }
}

/// Apply, waiting (bounded) for a kind the apiserver does not serve yet: a CRD applied just
/// before takes a moment to be established and discovered.
async fn apply_when_served(
    live: &Live,
    task: &crate::gitops::sync::plan::Task,
) -> Result<Value, super::live::LiveError> {
    let deadline = tokio::time::Instant::now() + CRD_WAIT;
    loop {
        match live.apply(&task.object, false, task.apply.validate).await {
            Err(super::live::LiveError::UnknownKind { .. })
                if task.apply.skip_dry_run && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
}

/// What executing a step gave: the outcomes, and the objects the server stored.
#[derive(Default)]
struct Executed {
    obs: Observations,
    stored: BTreeMap<TaskId, Value>,
}

/// Execute the step's actions: consecutive actions of one group run concurrently (bounded),
/// groups one after the other in the order given; outcomes for the next step.
async fn execute(live: &Live, plan: &Plan, actions: &[StepAction]) -> Executed {
    let mut done = Executed::default();
    let mut rest = actions;
    while let Some(first) = rest.first() {
        let group = group_of(plan, first);
        let n = rest
            .iter()
            .take_while(|a| group_of(plan, a) == group)
            .count();
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        // A sliding window (not fixed chunks): one slow request does not hold back the rest.
        use futures::StreamExt as _;
        let runs: Vec<_> = batch
            .iter()
            .map(|a| async move { (a, execute_one(live, plan, a).await) })
            .collect();
        let results: Vec<(&StepAction, Option<Done>)> = futures::stream::iter(runs)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (action, result) in results {
            let Some((outcome, stored)) = result else {
                continue;
            };
            match action {
                StepAction::Run(id) => {
                    if let Some(v) = stored {
                        done.stored.insert(id.clone(), v);
                    }
                    done.obs.outcomes.insert(id.clone(), outcome);
                }
                StepAction::DeleteHook(id) => {
                    done.obs.deleted.insert(id.clone(), outcome);
                }
            }
        }
    }
    done
}

/// An action's outcome, and the object the server stored when it wrote one.
type Done = (Outcome, Option<Value>);

/// One action: its outcome, and the object the server stored when it wrote one.
async fn execute_one(live: &Live, plan: &Plan, action: &StepAction) -> Option<Done> {
    match action {
        StepAction::Run(id) => {
            let task = plan.task(id)?;
            let what = kind_name(&task.object);
            let result = match &task.action {
                Action::Create | Action::Apply | Action::RunHook => apply_when_served(live, task)
                    .await
                    .map(|v| (format!("{what} serverside-applied"), Some(v))),
                Action::Replace => live
                    .replace(&task.object)
                    .await
                    .map(|(how, v)| (format!("{what} {how}"), Some(v))),
                Action::Prune => live
                    .delete(&task.object, plan.propagation_policy)
                    .await
                    .map(|_| ("pruned".to_owned(), None)),
                Action::DeleteHookBeforeCreation => delete_and_wait(live, &task.object)
                    .await
                    .map(|()| (format!("{what} deleted before creation"), None)),
                Action::Skip(_) => return None,
            };
            if let Err(e) = &result {
                tracing::info!(task = %id, error = %e, "task failed");
            }
            Some(match result {
                Ok((m, stored)) => (Outcome::Ok(m), stored),
                Err(e) => (Outcome::Failed(e.to_string()), None),
            })
        }
        StepAction::DeleteHook(id) => {
            let task = plan.task(id)?;
            let result = live
                .delete(&task.object, PropagationPolicy::Background)
                .await;
            Some(match result {
                Ok(_) => (Outcome::Ok(String::new()), None),
                Err(e) => (Outcome::Failed(e.to_string()), None),
            })
        }
    }
}

/// Delete a hook and wait (bounded) until it is gone, so its re-creation is a new object.
async fn delete_and_wait(live: &Live, obj: &Value) -> Result<(), super::live::LiveError> {
    live.delete(obj, PropagationPolicy::Background).await?;
    let deadline = tokio::time::Instant::now() + HOOK_DELETE_WAIT;
    while live.get(obj).await?.is_some() {
        if tokio::time::Instant::now() >= deadline {
            return Err(super::live::LiveError::Api {
                action: "delete",
                object: kind_name(obj),
                message: format!(
                    "still present {}s after deletion",
                    HOOK_DELETE_WAIT.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// Health of the running tasks (and of those just executed), and prunes still terminating.
/// A task just written is assessed on the object the server answered (what a read right after
/// would give); earlier ones, and prunes, are read.
async fn observe(
    live: &Live,
    plan: &Plan,
    st: &OperationState,
    mut obs: Observations,
    answers: &Answers,
) -> Observations {
    let wanted: Vec<&crate::gitops::sync::plan::Task> = plan
        .tasks
        .iter()
        .filter(|task| {
            let running = st
                .result(&task.id)
                .is_some_and(|r| r.hook_phase == OperationPhase::Running);
            let just_done = matches!(obs.outcomes.get(&task.id), Some(Outcome::Ok(_)));
            // Without a health check an applied object counts as healthy (Argo CD): no read
            // is needed, except to see a prune finish.
            (running || just_done)
                && !matches!(task.action, Action::DeleteHookBeforeCreation)
                && (task.prune || health::has_health_check(&task.key.group, &task.key.kind))
        })
        .collect();
    let (answered, to_read): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|task| {
        !task.prune
            && matches!(obs.outcomes.get(&task.id), Some(Outcome::Ok(_)))
            && answers.by_task.contains_key(&task.id)
    });
    use futures::StreamExt as _;
    let gets: Vec<_> = to_read
        .iter()
        .map(|t| async move { (*t, live.get(&t.object).await) })
        .collect();
    let found: Vec<_> = futures::stream::iter(gets)
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut seen: Vec<(&crate::gitops::sync::plan::Task, Option<Value>)> = answered
        .into_iter()
        .map(|t| (t, answers.by_task.get(&t.id).cloned()))
        .collect();
    for (task, result) in found {
        match result {
            Ok(l) => seen.push((task, l)),
            Err(e) => tracing::debug!(task = %task.id, error = %e, "observing failed"),
        }
    }
    for (task, found) in seen {
        if task.prune {
            if found.is_some() {
                obs.terminating.insert(task.key.clone());
            }
            continue;
        }
        match found {
            None => {
                obs.health.insert(task.key.clone(), Health::Missing);
            }
            Some(v) => {
                if let Some(h) = health::assess(&v) {
                    obs.health.insert(task.key.clone(), health_of(h.status));
                }
            }
        }
    }
    obs
}

/// Deletion of an Application with Argo CD's resources finalizer: delete every tracked
/// resource (foreground, or background with the `/background` variant), wait until they are
/// gone, then remove the finalizer.
pub(crate) async fn finalize(
    inner: &Inner,
    api: &Api<Application>,
    app: &mut Application,
    app_name: &str,
) -> Result<Option<Duration>, ControllerError> {
    let Some(finalizer) = app
        .metadata
        .finalizers
        .iter()
        .flatten()
        .find(|f| f.starts_with(RESOURCES_FINALIZER))
        .cloned()
    else {
        return Ok(None);
    };
    let policy = if finalizer.ends_with("/background") {
        PropagationPolicy::Background
    } else {
        PropagationPolicy::Foreground
    };
    let live = match reconcile::live_for(inner, app).await {
        Ok((l, _)) => l,
        Err(message) => {
            // The destination is gone: nothing can be deleted there; keep the finalizer and say
            // why, as Argo CD does, until the user removes it or restores the cluster.
            tracing::warn!(app = app_name, error = %message, "cascade deletion impossible");
            return Ok(Some(Duration::from_secs(30)));
        }
    };
    let live: &Live = &live;
    let kinds: BTreeSet<(String, String)> = app
        .status
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r.group.clone().unwrap_or_default(), r.kind.clone()?)))
        .collect();
    let (tracked, _) = live
        .list_for_app(app_name, &kinds, &BTreeSet::new())
        .await?;
    if tracked.is_empty() {
        let edit = Edit {
            remove_finalizer: Some(finalizer),
            ..Edit::default()
        };
        save(api, app, &edit).await?;
        return Ok(None);
    }
    for obj in &tracked {
        if obj.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        if let Err(e) = live.delete(obj, policy).await {
            tracing::warn!(error = %e, "cascade deletion failed");
        }
    }
    Ok(Some(OPERATION_POLL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::sync::plan::{SyncPhase, TaskId};
    use crate::gitops::sync::state::{ResourceResult, ResultCode};
    use crate::k8s::ResourceKey;

    #[test]
    fn health_codes_map_one_to_one() {
        let all = [
            (HealthStatusCode::Healthy, Health::Healthy),
            (HealthStatusCode::Progressing, Health::Progressing),
            (HealthStatusCode::Degraded, Health::Degraded),
            (HealthStatusCode::Suspended, Health::Suspended),
            (HealthStatusCode::Missing, Health::Missing),
            (HealthStatusCode::Unknown, Health::Unknown),
        ];
        for (code, health) in all {
            assert_eq!(health_of(code), health);
        }
    }

    #[test]
    fn operation_ids_are_stable_and_distinct_per_attempt() {
        let mut app = Application::default();
        app.metadata.uid = Some("u-1".into());
        let a = operation_id(&app, "2026-01-01T00:00:00Z", 0);
        assert_eq!(a, operation_id(&app, "2026-01-01T00:00:00Z", 0));
        assert_eq!(a.len(), 10);
        assert_ne!(a, operation_id(&app, "2026-01-01T00:00:00Z", 1));
        assert_ne!(a, operation_id(&app, "2026-01-01T00:00:01Z", 0));
    }

    #[test]
    fn rollback_sources_are_read_from_the_operation() {
        let single = json!({"revision": "abc", "source": {"repoURL": "r", "path": "p"}});
        let multi = json!({"sources": [{"repoURL": "a"}, {"repoURL": "b", "ref": "v"}]});
        assert_eq!(
            explicit_sources(&single).map(|s| s[0].path.clone()),
            Some(Some("p".to_owned()))
        );
        assert_eq!(explicit_sources(&multi).map(|s| s.len()), Some(2));
        assert_eq!(explicit_sources(&json!({"revision": "abc"})), None);
        assert_eq!(
            strings(Some(&json!(["a", "b"]))),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(strings(Some(&json!([]))), None);
    }

    /// `.status.operationState` as written while an operation runs: Argo CD's fields plus
    /// cairn's resumable state.
    #[test]
    fn operation_state_shape() {
        let run = Run {
            op: json!({"sync": {"prune": true}, "initiatedBy": {"username": "admin"}}),
            started_at: "2026-01-01T00:00:00Z".into(),
            retry_count: 0,
            revisions: vec!["abc".into()],
            sources: vec![ApplicationSource {
                repo_url: Some("https://git.example.com/r.git".into()),
                path: Some("app".into()),
                ..ApplicationSource::default()
            }],
            multi: false,
            terminated: false,
            refreshed: false,
        };
        let mut st = OperationState::new("op-1");
        st.message = "one or more tasks are running (phase Sync, wave 0)".into();
        st.results.push(ResourceResult {
            task: TaskId("Sync:/ConfigMap/ns/a".into()),
            key: ResourceKey::new("", "ConfigMap", Some("ns"), "a"),
            sync_phase: SyncPhase::Sync,
            wave: 0,
            hook: false,
            status: ResultCode::Synced,
            hook_phase: OperationPhase::Running,
            message: "configmap/a serverside-applied".into(),
            deleted: false,
        });
        let mut status = ApplicationStatus::default();
        run.write(&mut status, &st, false);
        insta::assert_json_snapshot!(status.operation_state);
    }
}
