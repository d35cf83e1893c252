//! The resumable sync state machine: [`step`] advances one operation by one decision.
//!
//! Contract with the applier (gitops-engine `sync_context.go`, re-expressed as data):
//! 1. Call `step(plan, state, observations)`; persist `next.state` in `.status.operationState`
//!    ([`OperationState::to_status`]); execute `next.actions` in order; report each outcome in
//!    the next [`Observations`], with the current health of the applied objects.
//! 2. A wave is executed at once; the next wave starts only when every task of the current wave
//!    has succeeded (applied and Healthy, hooks completed). Within a wave prunes run first, then
//!    hook deletions (BeforeHookCreation), and only after those are confirmed the creates.
//! 3. A failed task (apply rejected, resource Degraded, hook failed) ends the sync: SyncFail hooks
//!    run, then the operation is Failed. Hooks are deleted per policy (HookSucceeded at the end of a
//!    successful operation, HookFailed at the end of a failed one) before the phase becomes final.
//!
//! Invariants: the state only records what was observed, never what was merely emitted, so a
//! crash between persisting and executing re-emits the same (idempotent, deterministically named)
//! actions; a task with a recorded result is never emitted again, so a completed hook never runs
//! twice after a restart; a completed operation never changes. Together with the plan's rule
//! that a live hook carrying this operation's generated name is resumed, never deleted first, a
//! restart between creating a hook and recording it re-applies the same object instead of
//! starting a second run.
//!
//! As in Argo CD, the last wave's ordinary resources do not hold the operation: once applied the
//! sync succeeds even if they are still progressing (health is then the app's health, not the
//! operation's); with a single wave only hooks are waited for.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::hooks::DeletePolicy;
use super::plan::{Action, Plan, SyncPhase, Task, TaskId};
use crate::gitops::types;
use crate::k8s::ResourceKey;

/// Key under `.status.operationState` where cairn keeps its own resumable state.
pub const STATUS_KEY: &str = "cairnSync";

/// Phase of an operation, and of one task (Argo CD's `hookPhase`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationPhase {
    /// In progress.
    #[default]
    Running,
    /// Being terminated.
    Terminating,
    /// Finished unsuccessfully.
    Failed,
    /// Finished because of an error of cairn or the cluster.
    Error,
    /// Finished successfully.
    Succeeded,
}

impl OperationPhase {
    /// Finished, whatever the outcome.
    pub fn is_completed(self) -> bool {
        matches!(
            self,
            OperationPhase::Failed | OperationPhase::Error | OperationPhase::Succeeded
        )
    }

    fn as_str(self) -> &'static str {
        match self {
            OperationPhase::Running => "Running",
            OperationPhase::Terminating => "Terminating",
            OperationPhase::Failed => "Failed",
            OperationPhase::Error => "Error",
            OperationPhase::Succeeded => "Succeeded",
        }
    }
}

/// Result of one task (Argo CD's result codes, plus `Skipped`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultCode {
    /// Applied (or hook created).
    Synced,
    /// Rejected.
    SyncFailed,
    /// Deleted.
    Pruned,
    /// A prune not done (policy, prune disabled).
    PruneSkipped,
    /// Nothing to do (in sync, `hook: Skip`, a hook not run during syncs).
    Skipped,
}

/// What is recorded about one task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    /// The task.
    pub task: TaskId,
    /// The object.
    pub key: ResourceKey,
    /// Phase of the task.
    pub sync_phase: SyncPhase,
    /// Wave of the task.
    pub wave: i64,
    /// Whether the task is a hook.
    pub hook: bool,
    /// Result code.
    pub status: ResultCode,
    /// State of the task: Running until applied and healthy (hooks: completed).
    pub hook_phase: OperationPhase,
    /// Last message.
    pub message: String,
    /// The hook object was deleted per its delete policy.
    #[serde(default)]
    pub deleted: bool,
}

/// The phase and wave being executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaveRef {
    /// Phase.
    pub phase: SyncPhase,
    /// Wave.
    pub wave: i64,
}

/// A decided end, held while hook deletions are confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finish {
    /// Final phase.
    pub phase: OperationPhase,
    /// Final message.
    pub message: String,
}

/// The persisted state of one sync operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// The operation (matches [`Plan::operation_id`]).
    pub operation_id: String,
    /// Phase.
    pub phase: OperationPhase,
    /// Human-readable progress.
    pub message: String,
    /// The wave being executed.
    pub current: Option<WaveRef>,
    /// Results, in the order they were first recorded.
    pub results: Vec<ResourceResult>,
    /// The end decided, pending hook deletions.
    pub finishing: Option<Finish>,
}

impl OperationState {
    /// A new, running operation.
    pub fn new(operation_id: impl Into<String>) -> Self {
        OperationState {
            operation_id: operation_id.into(),
            ..OperationState::default()
        }
    }

    /// The result recorded for a task.
    pub fn result(&self, id: &TaskId) -> Option<&ResourceResult> {
        self.results.iter().find(|r| &r.task == id)
    }

    fn record(&mut self, task: &Task, status: ResultCode, phase: OperationPhase, message: String) {
        if let Some(r) = self.results.iter_mut().find(|r| r.task == task.id) {
            r.status = status;
            r.hook_phase = phase;
            if !message.is_empty() {
                r.message = message;
            }
            return;
        }
        self.results.push(ResourceResult {
            task: task.id.clone(),
            key: task.key.clone(),
            sync_phase: task.phase,
            wave: task.wave,
            hook: task.is_hook(),
            status,
            hook_phase: phase,
            message,
            deleted: false,
        });
    }

    /// The Argo CD shape of `.status.operationState`: phase, message and `syncResult.resources`
    /// as Argo CD writes them, with cairn's resumable state under [`STATUS_KEY`].
    pub fn to_status(&self) -> types::OperationState {
        let resources: Vec<Value> = self
            .results
            .iter()
            .map(|r| {
                let mut v = json!({
                    "group": r.key.group,
                    "kind": r.key.kind,
                    "namespace": r.key.namespace.clone().unwrap_or_default(),
                    "name": r.key.name,
                    "status": format!("{:?}", r.status),
                    "message": r.message,
                    "hookPhase": r.hook_phase.as_str(),
                    "syncPhase": r.sync_phase.as_str(),
                });
                if r.hook
                    && let Some(m) = v.as_object_mut()
                {
                    m.insert("hookType".into(), json!(r.sync_phase.as_str()));
                }
                v
            })
            .collect();
        let mut status = types::OperationState {
            phase: Some(self.phase.as_str().to_owned()),
            message: Some(self.message.clone()),
            sync_result: Some(json!({ "resources": resources })),
            ..types::OperationState::default()
        };
        if let Ok(own) = serde_json::to_value(self) {
            status.extra.insert(STATUS_KEY.into(), own);
        }
        status
    }

    /// Read cairn's state back from `.status.operationState` (`None` when absent or written by
    /// something else: the operation then starts over, which re-applies idempotently).
    pub fn from_status(status: &types::OperationState) -> Option<Self> {
        serde_json::from_value(status.extra.get(STATUS_KEY)?.clone()).ok()
    }
}

/// What happened to an action the applier executed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done; the message is the server's answer (e.g. "configmap/x created").
    Ok(String),
    /// Rejected; the message says why.
    Failed(String),
}

/// Health of a live object, as the health module assesses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Health {
    /// Healthy.
    Healthy,
    /// Not yet healthy, may become so.
    Progressing,
    /// Failed.
    Degraded,
    /// Paused.
    Suspended,
    /// Does not exist.
    Missing,
    /// Cannot be assessed.
    Unknown,
}

/// What the applier saw since the state was persisted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observations {
    /// Outcomes of [`StepAction::Run`] actions.
    pub outcomes: BTreeMap<TaskId, Outcome>,
    /// Outcomes of [`StepAction::DeleteHook`] actions (NotFound counts as Ok).
    pub deleted: BTreeMap<TaskId, Outcome>,
    /// Health of live objects; an object absent from the map has no health check (ConfigMap,
    /// Secret...) and counts as healthy once applied, as in Argo CD.
    pub health: BTreeMap<ResourceKey, Health>,
    /// Pruned objects still being deleted (deletionTimestamp set).
    pub terminating: BTreeSet<ResourceKey>,
}

/// One thing for the applier to do now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepAction {
    /// Execute the task's [`Action`].
    Run(TaskId),
    /// Delete the task's hook object (delete policy, or termination).
    DeleteHook(TaskId),
}

/// The next state and what to do now. No actions and a running phase mean "wait and call again".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Next {
    /// The state to persist.
    pub state: OperationState,
    /// Actions, in order.
    pub actions: Vec<StepAction>,
}

/// Advance the operation by one decision.
pub fn step(plan: &Plan, state: &OperationState, obs: &Observations) -> Next {
    let mut st = state.clone();
    if st.phase.is_completed() {
        return Next {
            state: st,
            actions: Vec::new(),
        };
    }
    if st.operation_id != plan.operation_id {
        // A state from another operation must never steer this plan (its results would mark
        // this operation's hooks as done).
        st.phase = OperationPhase::Error;
        st.message = format!(
            "operation state belongs to operation {:?}, the plan to {:?}",
            st.operation_id, plan.operation_id
        );
        return Next {
            state: st,
            actions: Vec::new(),
        };
    }
    if plan.dry_run {
        return dry_run(plan, st);
    }
    fold_observations(plan, &mut st, obs);

    if let Some(finish) = st.finishing.clone() {
        let actions = pending_deletions(plan, &st);
        if actions.is_empty() {
            st.phase = finish.phase;
            st.message = finish.message;
            st.finishing = None;
        }
        return Next { state: st, actions };
    }

    let (sync_fail, main): (Vec<&Task>, Vec<&Task>) = plan
        .tasks
        .iter()
        .partition(|t| t.phase == SyncPhase::SyncFail);
    let waves: BTreeSet<(SyncPhase, i64)> = main.iter().map(|t| (t.phase, t.wave)).collect();
    let multi_step = waves.len() > 1;
    let final_wave = waves.iter().next_back().copied();

    let failed: Vec<ResourceResult> = main
        .iter()
        .filter_map(|t| st.result(&t.id))
        .filter(|r| r.hook_phase.is_completed() && r.hook_phase != OperationPhase::Succeeded)
        .cloned()
        .collect();
    // A rejected apply ends the sync at once (Argo CD fails in the call that applied), without
    // waiting for the rest of the wave, which may never become healthy without it.
    if failed.iter().any(|r| r.status == ResultCode::SyncFailed) {
        return fail(plan, st, &sync_fail, &failed);
    }

    // Wait for what is running.
    let blocking: Vec<(&Task, &'static str)> = main
        .iter()
        .filter_map(|t| {
            let r = st.result(&t.id)?;
            if r.hook_phase != OperationPhase::Running {
                return None;
            }
            if t.prune {
                return Some((*t, "deletion of"));
            }
            if t.is_hook() {
                return Some((*t, "completion of hook"));
            }
            let in_final = final_wave == Some((t.phase, t.wave));
            (multi_step && !in_final).then_some((*t, "healthy state of"))
        })
        .collect();
    if let Some((first, what)) = blocking.first() {
        st.phase = OperationPhase::Running;
        st.message = waiting_message(what, &first.key, blocking.len() - 1);
        return Next {
            state: st,
            actions: Vec::new(),
        };
    }
    if !failed.is_empty() {
        return fail(plan, st, &sync_fail, &failed);
    }

    loop {
        let pending: Vec<&Task> = main
            .iter()
            .copied()
            .filter(|t| is_pending(&st, t))
            .collect();
        let Some(first) = pending.first() else {
            let message = "successfully synced (all tasks run)".to_owned();
            return finish(
                plan,
                st,
                OperationPhase::Succeeded,
                message,
                DeletePolicy::HookSucceeded,
            );
        };
        let wave = WaveRef {
            phase: first.phase,
            wave: first.wave,
        };
        let in_wave: Vec<&Task> = pending
            .iter()
            .copied()
            .filter(|t| t.phase == wave.phase && t.wave == wave.wave)
            .collect();
        st.current = Some(wave);
        let actions = wave_actions(&mut st, &in_wave);
        if actions.is_empty() {
            // The wave held only skips, now recorded: move on.
            continue;
        }
        st.phase = OperationPhase::Running;
        st.message = format!(
            "one or more tasks are running (phase {}, wave {})",
            wave.phase, wave.wave
        );
        return Next { state: st, actions };
    }
}

/// Stop the operation: running hooks are deleted, the operation fails ("Operation terminated").
pub fn terminate(plan: &Plan, state: &OperationState) -> Next {
    let mut st = state.clone();
    if st.phase.is_completed() {
        return Next {
            state: st,
            actions: Vec::new(),
        };
    }
    let mut actions = Vec::new();
    for task in plan.tasks.iter().filter(|t| t.is_hook()) {
        if st
            .result(&task.id)
            .is_some_and(|r| r.hook_phase == OperationPhase::Running)
        {
            st.record(
                task,
                ResultCode::Synced,
                OperationPhase::Failed,
                "terminated".to_owned(),
            );
            actions.push(StepAction::DeleteHook(task.id.clone()));
        }
    }
    st.phase = OperationPhase::Failed;
    st.message = "Operation terminated".to_owned();
    st.finishing = None;
    Next { state: st, actions }
}

fn dry_run(plan: &Plan, mut st: OperationState) -> Next {
    for task in plan.tasks.iter().filter(|t| t.phase != SyncPhase::SyncFail) {
        let (status, message) = match &task.action {
            Action::Prune => (ResultCode::Pruned, "pruned (dry run)".to_owned()),
            Action::Skip(reason) if task.prune => (ResultCode::PruneSkipped, reason.message()),
            Action::Skip(reason) => (ResultCode::Skipped, reason.message()),
            other => (ResultCode::Synced, format!("{other} (dry run)")),
        };
        st.record(task, status, OperationPhase::Succeeded, message);
    }
    st.phase = OperationPhase::Succeeded;
    st.message = "successfully synced (dry run)".to_owned();
    Next {
        state: st,
        actions: Vec::new(),
    }
}

fn fold_observations(plan: &Plan, st: &mut OperationState, obs: &Observations) {
    for (id, outcome) in &obs.outcomes {
        // An outcome for a task the plan no longer has (the plan was recomputed) is stale.
        let Some(task) = plan.task(id) else { continue };
        // A completed task's result is final: a replayed outcome must not reopen it.
        if st.result(id).is_some_and(|r| r.hook_phase.is_completed()) {
            continue;
        }
        match outcome {
            Outcome::Failed(message) => {
                let phase = if task.action == Action::DeleteHookBeforeCreation {
                    OperationPhase::Error
                } else {
                    OperationPhase::Failed
                };
                st.record(task, ResultCode::SyncFailed, phase, message.clone());
            }
            Outcome::Ok(message) => match &task.action {
                Action::Prune => {
                    let phase = if obs.terminating.contains(&task.key) {
                        OperationPhase::Running
                    } else {
                        OperationPhase::Succeeded
                    };
                    st.record(task, ResultCode::Pruned, phase, or(message, "pruned"));
                }
                Action::DeleteHookBeforeCreation => st.record(
                    task,
                    ResultCode::Synced,
                    OperationPhase::Succeeded,
                    or(message, "deleted before creation"),
                ),
                Action::Create | Action::Apply | Action::Replace | Action::RunHook => st.record(
                    task,
                    ResultCode::Synced,
                    OperationPhase::Running,
                    message.clone(),
                ),
                Action::Skip(_) => {}
            },
        }
    }
    for (id, outcome) in &obs.deleted {
        if let Some(r) = st.results.iter_mut().find(|r| &r.task == id) {
            r.deleted = true;
            if let Outcome::Failed(message) = outcome {
                // Argo CD records the error and carries on: a hook that cannot be deleted must
                // not hold the operation forever.
                r.message = format!("failed to delete hook: {message}");
            }
        }
    }
    // Running tasks: completion from health.
    let running: Vec<TaskId> = st
        .results
        .iter()
        .filter(|r| r.hook_phase == OperationPhase::Running)
        .map(|r| r.task.clone())
        .collect();
    for id in running {
        let Some(task) = plan.task(&id) else { continue };
        if task.prune {
            if !obs.terminating.contains(&task.key) {
                st.record(
                    task,
                    ResultCode::Pruned,
                    OperationPhase::Succeeded,
                    String::new(),
                );
            }
            continue;
        }
        let health = obs.health.get(&task.key).copied();
        let created = format!("{} created", task.key.name);
        let next = match (task.is_hook(), health) {
            (_, None | Some(Health::Healthy)) => Some((OperationPhase::Succeeded, created)),
            (_, Some(Health::Degraded)) => {
                Some((OperationPhase::Failed, format!("{} is Degraded", task.key)))
            }
            (true, Some(Health::Unknown)) => Some((
                OperationPhase::Failed,
                format!("{}: hook health is Unknown", task.key),
            )),
            (true, Some(Health::Missing)) => Some((
                OperationPhase::Failed,
                format!("{}: hook deleted before it completed", task.key),
            )),
            _ => None,
        };
        if let Some((phase, message)) = next {
            let status = st
                .result(&task.id)
                .map(|r| r.status)
                .unwrap_or(ResultCode::Synced);
            st.record(task, status, phase, message);
        }
    }
}

fn or(message: &str, default: &str) -> String {
    if message.is_empty() {
        default.to_owned()
    } else {
        message.to_owned()
    }
}

/// A task still to be emitted: no result of its own, and for a delete-before-creation, its hook
/// has not started either (the object found live is then this operation's own run).
fn is_pending(st: &OperationState, task: &Task) -> bool {
    if st.result(&task.id).is_some() {
        return false;
    }
    if task.action == Action::DeleteHookBeforeCreation {
        let run_id = TaskId(task.id.0.trim_end_matches(":delete").to_owned());
        return st.result(&run_id).is_none();
    }
    true
}

/// Record the wave's skips and return its actions: prunes first, then hook deletions (the hooks
/// themselves wait for the next step), else the creates.
fn wave_actions(st: &mut OperationState, in_wave: &[&Task]) -> Vec<StepAction> {
    let mut prunes = Vec::new();
    let mut deletes = Vec::new();
    let mut creates = Vec::new();
    for task in in_wave {
        match &task.action {
            Action::Skip(reason) => {
                let status = if task.prune {
                    ResultCode::PruneSkipped
                } else {
                    ResultCode::Skipped
                };
                st.record(task, status, OperationPhase::Succeeded, reason.message());
            }
            Action::Prune => prunes.push(StepAction::Run(task.id.clone())),
            Action::DeleteHookBeforeCreation => deletes.push(StepAction::Run(task.id.clone())),
            Action::Create | Action::Apply | Action::Replace | Action::RunHook => {
                creates.push(StepAction::Run(task.id.clone()))
            }
        }
    }
    if deletes.is_empty() {
        prunes.extend(creates);
    } else {
        prunes.extend(deletes);
    }
    prunes
}

fn fail(
    plan: &Plan,
    mut st: OperationState,
    sync_fail: &[&Task],
    failed: &[ResourceResult],
) -> Next {
    let applied_failed = failed.iter().any(|r| r.status == ResultCode::SyncFailed);
    let mut reasons: Vec<&str> = failed.iter().map(|r| r.message.as_str()).collect();
    reasons.sort();
    reasons.dedup();
    let mut message = format!(
        "{}, reason: {}",
        if applied_failed {
            "one or more objects failed to apply"
        } else {
            "one or more synchronization tasks completed unsuccessfully"
        },
        reasons.join(",")
    );

    // SyncFail hooks: start those not started, wait for those running.
    let running = sync_fail.iter().any(|t| {
        st.result(&t.id)
            .is_some_and(|r| r.hook_phase == OperationPhase::Running)
    });
    let pending: Vec<&Task> = sync_fail
        .iter()
        .copied()
        .filter(|t| is_pending(&st, t))
        .collect();
    if running || !pending.is_empty() {
        st.phase = OperationPhase::Running;
        st.message = format!("{message}; running SyncFail hooks");
        let actions = if running {
            Vec::new()
        } else {
            wave_actions(&mut st, &pending)
        };
        if let Some(t) = pending.first() {
            st.current = Some(WaveRef {
                phase: t.phase,
                wave: t.wave,
            });
        }
        return Next { state: st, actions };
    }
    let sync_fail_failed: Vec<&str> = sync_fail
        .iter()
        .filter_map(|t| st.result(&t.id))
        .filter(|r| r.hook_phase.is_completed() && r.hook_phase != OperationPhase::Succeeded)
        .map(|r| r.message.as_str())
        .collect();
    if !sync_fail_failed.is_empty() {
        message = format!(
            "{message}\none or more SyncFail hooks failed, reason: {}",
            sync_fail_failed.join(",")
        );
    }
    finish(
        plan,
        st,
        OperationPhase::Failed,
        message,
        DeletePolicy::HookFailed,
    )
}

/// Decide the end; delete the hooks `policy` names first, then (next step) become final.
fn finish(
    plan: &Plan,
    mut st: OperationState,
    phase: OperationPhase,
    message: String,
    policy: DeletePolicy,
) -> Next {
    st.finishing = Some(Finish {
        phase,
        message: message.clone(),
    });
    st.current = None;
    let actions = pending_deletions_for(plan, &st, policy);
    if actions.is_empty() {
        st.phase = phase;
        st.message = message;
        st.finishing = None;
    } else {
        st.phase = OperationPhase::Running;
        st.message = format!("{message} (deleting hooks)");
    }
    Next { state: st, actions }
}

fn pending_deletions(plan: &Plan, st: &OperationState) -> Vec<StepAction> {
    let policy = match st.finishing.as_ref().map(|f| f.phase) {
        Some(OperationPhase::Succeeded) => DeletePolicy::HookSucceeded,
        _ => DeletePolicy::HookFailed,
    };
    pending_deletions_for(plan, st, policy)
}

/// Hooks created in this operation, with `policy`, not yet deleted.
fn pending_deletions_for(
    plan: &Plan,
    st: &OperationState,
    policy: DeletePolicy,
) -> Vec<StepAction> {
    plan.tasks
        .iter()
        .filter(|t| t.action == Action::RunHook && t.has_delete_policy(policy))
        .filter(|t| {
            st.result(&t.id).is_some_and(|r| {
                r.status == ResultCode::Synced
                    && r.hook_phase != OperationPhase::Running
                    && !r.deleted
            })
        })
        .map(|t| StepAction::DeleteHook(t.id.clone()))
        .collect()
}

fn waiting_message(what: &str, key: &ResourceKey, more: usize) -> String {
    let mut message = format!("waiting for {what} {}/{}/{}", key.group, key.kind, key.name);
    if more > 0 {
        let noun = if what == "completion of hook" {
            "hooks"
        } else {
            "resources"
        };
        message = format!("{message} and {more} more {noun}");
    }
    message
}
