//! Pure decisions of the controller: what `.status` says, whether an automated sync is due, the
//! self-heal and retry backoffs. No client; time is an input.
//!
//! Sources: Argo CD `controller/appcontroller.go` (`autoSync`, `alreadyAttemptedSync`,
//! self-heal backoff), `controller/state.go` (resources, images summary), the "Automated Sync
//! Policy" page of the user guide (prune, selfHeal, allowEmpty; "automated sync will not
//! reattempt a sync if the previous sync attempt against the same commit-SHA and parameters had
//! failed"), and the `retry` fields of `syncPolicy` (duration 5s, factor 2, maxDuration 3m).

use std::time::Duration;

use serde_json::{Value, json};

use crate::gitops::diff::{AppComparison, SyncStatusCode};
use crate::gitops::sync::options::ResourceSelector;
use crate::gitops::types::{
    ApplicationCondition, ApplicationSource, HealthStatus, ResourceStatus, RevisionHistory,
    SyncPolicy,
};
use crate::k8s::ResourceKey;

/// Condition types, as Argo CD names them.
pub mod reasons {
    /// Fetching or rendering the source failed.
    pub const COMPARISON_ERROR: &str = "ComparisonError";
    /// The spec is unusable (destination, project, source).
    pub const INVALID_SPEC: &str = "InvalidSpecError";
    /// A sync could not run or was refused.
    pub const SYNC_ERROR: &str = "SyncError";
    /// A desired object is tracked by another application.
    pub const SHARED_RESOURCE: &str = "SharedResourceWarning";
    /// The same object appears twice in the manifests.
    pub const REPEATED_RESOURCE: &str = "RepeatedResourceWarning";
    /// Deleting the application's resources failed.
    pub const DELETION_ERROR: &str = "DeletionError";
}

/// Argo CD's self-heal backoff: 2 s, ×3 per attempt, capped at 5 minutes.
pub const SELF_HEAL_BASE: Duration = Duration::from_secs(2);
/// Factor of the self-heal backoff.
pub const SELF_HEAL_FACTOR: u32 = 3;
/// Cap of the self-heal backoff.
pub const SELF_HEAL_CAP: Duration = Duration::from_secs(300);

/// Argo CD's default `revisionHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 10;

/// A condition.
pub fn condition(kind: &str, message: impl Into<String>, now: &str) -> ApplicationCondition {
    ApplicationCondition {
        condition_type: Some(kind.to_owned()),
        message: Some(message.into()),
        last_transition_time: Some(now.to_owned()),
        ..ApplicationCondition::default()
    }
}

/// Whether `syncPolicy.automated` is on (present, and `enabled` not false).
pub fn automated_enabled(policy: Option<&SyncPolicy>) -> bool {
    policy
        .and_then(|p| p.automated.as_ref())
        .is_some_and(|a| a.enabled != Some(false))
}

/// The last operation, as the auto-sync decision needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LastOperation {
    /// Revisions it synced (one per source).
    pub revisions: Vec<String>,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Whether it is finished.
    pub completed: bool,
    /// Its message.
    pub message: String,
    /// Seconds since it finished.
    pub finished_ago: Option<Duration>,
    /// `operation.sync.selfHealAttemptsCount`.
    pub self_heal_attempts: u32,
}

/// The auto-sync decision.
#[derive(Clone, Debug, PartialEq)]
pub enum AutoSync {
    /// Nothing to do; the string says why (logged, not a condition).
    Skip(String),
    /// Refused: becomes a `SyncError` condition.
    Refuse(String),
    /// Self-heal is due later.
    WaitFor(Duration),
    /// Start this operation (`.operation` as Argo CD writes it).
    Sync(Value),
}

/// What the decision reads.
#[derive(Clone, Debug)]
pub struct AutoSyncInput<'a> {
    /// `spec.syncPolicy`.
    pub policy: Option<&'a SyncPolicy>,
    /// The comparison just made.
    pub comparison: &'a AppComparison,
    /// Resolved revisions of the comparison (one per source).
    pub revisions: &'a [String],
    /// The last operation, if any.
    pub last: Option<&'a LastOperation>,
    /// Whether the application has an operation pending.
    pub operation_pending: bool,
    /// Whether the application is being deleted.
    pub deleting: bool,
}

/// Self-heal delay after `attempts` earlier self-heal syncs of the same revision.
pub fn self_heal_delay(attempts: u32) -> Duration {
    let mut d = SELF_HEAL_BASE;
    for _ in 0..attempts {
        d = d.saturating_mul(SELF_HEAL_FACTOR);
        if d >= SELF_HEAL_CAP {
            return SELF_HEAL_CAP;
        }
    }
    d.min(SELF_HEAL_CAP)
}

/// Argo CD's `autoSync`.
pub fn auto_sync(input: &AutoSyncInput<'_>) -> AutoSync {
    let Some(policy) = input.policy.filter(|p| automated_enabled(Some(p))) else {
        return AutoSync::Skip("automated sync is off".into());
    };
    let automated = policy.automated.clone().unwrap_or_default();
    if input.operation_pending {
        return AutoSync::Skip("an operation is in progress".into());
    }
    if input.deleting {
        return AutoSync::Skip("application is being deleted".into());
    }
    if input.comparison.status != SyncStatusCode::OutOfSync {
        return AutoSync::Skip(format!(
            "application status is {}",
            input.comparison.status.as_str()
        ));
    }
    let prune = automated.prune.unwrap_or(false);
    let counted: Vec<_> = input
        .comparison
        .resources
        .iter()
        .filter(|r| !r.ignore_extraneous)
        .collect();
    if !prune {
        let prune_only = counted
            .iter()
            .filter(|r| r.status != SyncStatusCode::Synced)
            .all(|r| r.requires_pruning);
        if prune_only {
            return AutoSync::Skip(
                "need to prune extra resources only but automated prune is disabled".into(),
            );
        }
    }
    let revision_text = input.revisions.join(", ");
    let mut self_heal_attempts = 0u32;
    let mut only_out_of_sync = false;
    if let Some(last) = input.last
        && last.completed
        && last.revisions == input.revisions
    {
        if !last.succeeded {
            return AutoSync::Refuse(format!(
                "Failed last sync attempt to {revision_text}: {}",
                last.message
            ));
        }
        if automated.self_heal != Some(true) {
            return AutoSync::Skip(format!("most recent sync already to {revision_text}"));
        }
        let delay = self_heal_delay(last.self_heal_attempts);
        if let Some(ago) = last.finished_ago
            && ago < delay
        {
            return AutoSync::WaitFor(delay - ago);
        }
        self_heal_attempts = last.self_heal_attempts + 1;
        only_out_of_sync = true;
    }
    if automated.allow_empty != Some(true) {
        let all_prune = !counted.is_empty() && counted.iter().all(|r| r.requires_pruning);
        if all_prune {
            return AutoSync::Refuse(format!(
                "Skipping sync attempt to {revision_text}: auto-sync will wipe out all resources"
            ));
        }
    }
    let mut sync = json!({
        "revision": input.revisions.first().cloned().unwrap_or_default(),
        "prune": prune,
    });
    if input.revisions.len() > 1 {
        sync["revisions"] = json!(input.revisions);
    }
    if let Some(options) = &policy.sync_options {
        sync["syncOptions"] = json!(options);
    }
    if self_heal_attempts > 0 {
        sync["selfHealAttemptsCount"] = json!(self_heal_attempts);
    }
    if only_out_of_sync {
        let resources: Vec<Value> = counted
            .iter()
            .filter(|r| r.status != SyncStatusCode::Synced)
            .map(|r| {
                json!({"group": r.key.group, "kind": r.key.kind, "name": r.key.name,
                       "namespace": r.key.namespace.clone().unwrap_or_default()})
            })
            .collect();
        sync["resources"] = json!(resources);
    }
    let mut op = json!({"sync": sync, "initiatedBy": {"automated": true}});
    if let Some(retry) = &policy.retry
        && let Ok(v) = serde_json::to_value(retry)
    {
        op["retry"] = v;
    }
    AutoSync::Sync(op)
}

/// The resource selectors of `operation.sync.resources` (Argo CD's `SyncOperationResource`).
pub fn selectors(sync: &Value) -> Option<Vec<ResourceSelector>> {
    let items = sync.get("resources")?.as_array()?;
    Some(
        items
            .iter()
            .map(|r| {
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                ResourceSelector {
                    exclude: false,
                    group: s("group"),
                    kind: s("kind"),
                    namespace: Some(s("namespace")).filter(|n| !n.is_empty()),
                    name: s("name"),
                }
            })
            .collect(),
    )
}

/// The delay before retry number `attempt` (1-based) of `retry.backoff`; `None` when the limit
/// is reached. Argo CD: duration 5s, factor 2, maxDuration 3m; a negative limit is unlimited.
pub fn retry_delay(retry: Option<&Value>, attempt: u32) -> Option<Duration> {
    let retry = retry?;
    let limit = retry.get("limit").and_then(Value::as_i64).unwrap_or(0);
    if limit >= 0 && i64::from(attempt) > limit {
        return None;
    }
    let backoff = retry.get("backoff");
    let dur = |k: &str, default: Duration| {
        backoff
            .and_then(|b| b.get(k))
            .and_then(Value::as_str)
            .and_then(|s| crate::config::parse_duration(s).ok())
            .or_else(|| {
                backoff
                    .and_then(|b| b.get(k))
                    .and_then(Value::as_u64)
                    .map(Duration::from_secs)
            })
            .unwrap_or(default)
    };
    let base = dur("duration", Duration::from_secs(5));
    let cap = dur("maxDuration", Duration::from_secs(180));
    let factor = backoff
        .and_then(|b| b.get("factor"))
        .and_then(Value::as_u64)
        .unwrap_or(2)
        .clamp(1, 100) as u32;
    let mut d = base;
    for _ in 1..attempt {
        d = d.saturating_mul(factor);
        if d >= cap {
            return Some(cap);
        }
    }
    Some(d.min(cap))
}

/// Appends a history entry and trims to `limit` (oldest dropped). Ids increase by one.
pub fn append_history(
    history: &mut Vec<RevisionHistory>,
    mut entry: RevisionHistory,
    limit: Option<i64>,
) {
    let next = history
        .iter()
        .filter_map(|h| h.id)
        .max()
        .map_or(0, |m| m + 1);
    entry.id = Some(next);
    history.push(entry);
    let limit = limit
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(DEFAULT_HISTORY_LIMIT);
    if history.len() > limit {
        let drop = history.len() - limit;
        history.drain(..drop);
    }
}

/// A history entry for a finished sync.
pub fn history_entry(
    revisions: &[String],
    sources: &[ApplicationSource],
    multi_source: bool,
    deployed_at: &str,
    started_at: &str,
    initiated_by: Option<Value>,
) -> RevisionHistory {
    let mut entry = RevisionHistory {
        deployed_at: Some(deployed_at.to_owned()),
        deploy_started_at: Some(started_at.to_owned()),
        initiated_by,
        ..RevisionHistory::default()
    };
    if multi_source {
        entry.revisions = Some(revisions.to_vec());
        entry.sources = Some(sources.to_vec());
    } else {
        entry.revision = revisions.first().cloned();
        entry.source = sources.first().cloned();
    }
    entry
}

/// `.status.resources[]` from the comparison, with health and the version of each object.
pub fn resources(
    comparison: &AppComparison,
    health: &[(ResourceKey, Option<HealthStatus>)],
    versions: &[(ResourceKey, String)],
    waves: &[(ResourceKey, i64)],
) -> Vec<ResourceStatus> {
    comparison
        .resources
        .iter()
        .map(|r| {
            let find = |k: &ResourceKey| k == &r.key;
            ResourceStatus {
                group: Some(r.key.group.clone()).filter(|g| !g.is_empty()),
                version: versions
                    .iter()
                    .find(|(k, _)| find(k))
                    .map(|(_, v)| v.clone()),
                kind: Some(r.key.kind.clone()),
                namespace: r.key.namespace.clone(),
                name: Some(r.key.name.clone()),
                status: Some(r.status.as_str().to_owned()),
                health: health
                    .iter()
                    .find(|(k, _)| find(k))
                    .and_then(|(_, h)| h.clone()),
                hook: None,
                requires_pruning: r.requires_pruning.then_some(true),
                sync_wave: waves.iter().find(|(k, _)| find(k)).map(|(_, w)| *w),
                ..ResourceStatus::default()
            }
        })
        .collect()
}

/// `summary.images`: every container image of the live objects, sorted, deduplicated (Argo CD
/// reads pod templates and pods).
pub fn images(live: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for obj in live {
        for spec in [
            obj.pointer("/spec/template/spec"),
            obj.pointer("/spec/jobTemplate/spec/template/spec"),
            obj.get("spec")
                .filter(|_| obj.get("kind") == Some(&json!("Pod"))),
        ]
        .into_iter()
        .flatten()
        {
            for list in ["containers", "initContainers"] {
                for c in spec
                    .get(list)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(image) = c.get("image").and_then(Value::as_str) {
                        out.push(image.to_owned());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitops::diff::ResourceComparison;
    use crate::gitops::types::AutomatedSyncPolicy;

    fn res(name: &str, status: SyncStatusCode, prune: bool) -> ResourceComparison {
        ResourceComparison {
            key: ResourceKey::new("", "ConfigMap", Some("ns"), name),
            status,
            requires_pruning: prune,
            ignore_extraneous: false,
            diff: None,
            error: None,
        }
    }

    fn cmp(resources: Vec<ResourceComparison>) -> AppComparison {
        let status = crate::gitops::diff::aggregate(&resources, false);
        AppComparison {
            status,
            resources,
            errors: vec![],
            warnings: vec![],
        }
    }

    fn policy(prune: bool, self_heal: bool, allow_empty: bool) -> SyncPolicy {
        SyncPolicy {
            automated: Some(AutomatedSyncPolicy {
                prune: Some(prune),
                self_heal: Some(self_heal),
                allow_empty: Some(allow_empty),
                ..AutomatedSyncPolicy::default()
            }),
            ..SyncPolicy::default()
        }
    }

    fn decide(p: Option<&SyncPolicy>, c: &AppComparison, last: Option<&LastOperation>) -> AutoSync {
        auto_sync(&AutoSyncInput {
            policy: p,
            comparison: c,
            revisions: &["abc".to_owned()],
            last,
            operation_pending: false,
            deleting: false,
        })
    }

    #[test]
    fn auto_sync_decisions() {
        let out = cmp(vec![res("a", SyncStatusCode::OutOfSync, false)]);
        let synced = cmp(vec![res("a", SyncStatusCode::Synced, false)]);
        let prune_only = cmp(vec![
            res("a", SyncStatusCode::Synced, false),
            res("b", SyncStatusCode::OutOfSync, true),
        ]);
        let wipe = cmp(vec![res("b", SyncStatusCode::OutOfSync, true)]);
        let ok_last = LastOperation {
            revisions: vec!["abc".into()],
            succeeded: true,
            completed: true,
            message: "ok".into(),
            finished_ago: Some(Duration::from_secs(1)),
            self_heal_attempts: 0,
        };
        let failed_last = LastOperation {
            succeeded: false,
            message: "boom".into(),
            ..ok_last.clone()
        };
        let old_ok = LastOperation {
            finished_ago: Some(Duration::from_secs(60)),
            self_heal_attempts: 1,
            ..ok_last.clone()
        };
        let (on, heal, empty) = (
            policy(false, false, false),
            policy(true, true, false),
            policy(true, false, true),
        );
        let mut disabled = policy(true, true, true);
        if let Some(a) = disabled.automated.as_mut() {
            a.enabled = Some(false);
        }
        let cases: Vec<(&str, AutoSync)> = vec![
            ("no policy", decide(None, &out, None)),
            ("enabled: false", decide(Some(&disabled), &out, None)),
            ("synced", decide(Some(&on), &synced, None)),
            ("prune only, no prune", decide(Some(&on), &prune_only, None)),
            ("wipe refused", decide(Some(&heal), &wipe, None)),
            ("wipe allowed", decide(Some(&empty), &wipe, None)),
            (
                "failed same revision",
                decide(Some(&heal), &out, Some(&failed_last)),
            ),
            (
                "same revision no selfHeal",
                decide(Some(&on), &out, Some(&ok_last)),
            ),
            (
                "selfHeal backoff",
                decide(Some(&heal), &out, Some(&ok_last)),
            ),
            ("selfHeal due", decide(Some(&heal), &out, Some(&old_ok))),
            ("new revision", decide(Some(&on), &out, None)),
        ];
        let text: Vec<String> = cases
            .iter()
            .map(|(name, d)| format!("{name}: {d:?}"))
            .collect();
        insta::assert_snapshot!(text.join("\n"));
    }

    #[test]
    fn self_heal_backoff_is_2s_times_3_capped_at_5m() {
        let d: Vec<u64> = (0..7).map(|a| self_heal_delay(a).as_secs()).collect();
        assert_eq!(d, vec![2, 6, 18, 54, 162, 300, 300]);
    }

    #[test]
    fn retry_backoff() {
        let retry =
            json!({"limit": 3, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "15s"}});
        let d: Vec<Option<u64>> = (1..=4)
            .map(|a| retry_delay(Some(&retry), a).map(|d| d.as_secs()))
            .collect();
        assert_eq!(d, vec![Some(5), Some(10), Some(15), None]);
        assert_eq!(retry_delay(None, 1), None);
        let unlimited = json!({"limit": -1});
        assert_eq!(
            retry_delay(Some(&unlimited), 50),
            Some(Duration::from_secs(180))
        );
    }

    #[test]
    fn history_is_capped_and_ids_increase() {
        let mut h = Vec::new();
        for i in 0..5 {
            let e = history_entry(&[format!("r{i}")], &[], false, "t", "s", None);
            append_history(&mut h, e, Some(3));
        }
        let ids: Vec<(i64, String)> = h
            .iter()
            .map(|e| (e.id.unwrap_or(-1), e.revision.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            ids,
            vec![(2, "r2".into()), (3, "r3".into()), (4, "r4".into())]
        );
        let mut d = Vec::new();
        for i in 0..12 {
            append_history(
                &mut d,
                history_entry(&[i.to_string()], &[], false, "t", "s", None),
                None,
            );
        }
        assert_eq!(d.len(), DEFAULT_HISTORY_LIMIT);
    }

    #[test]
    fn images_from_pods_and_templates() {
        let live = vec![
            json!({"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"image": "b:1"}], "initContainers": [{"image": "a:1"}]}}}}),
            json!({"kind": "Pod", "spec": {"containers": [{"image": "b:1"}]}}),
            json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"image": "c:1"}]}}}}}}),
            json!({"kind": "ConfigMap", "data": {"image": "x"}}),
        ];
        assert_eq!(images(&live), vec!["a:1", "b:1", "c:1"]);
    }

    #[test]
    fn selectors_from_operation_resources() {
        let sync = json!({"resources": [{"group": "apps", "kind": "Deployment", "name": "web"},
                                        {"kind": "ConfigMap", "name": "c", "namespace": "ns"}]});
        let s = selectors(&sync).unwrap_or_default();
        assert!(s[0].matches(&ResourceKey::new("apps", "Deployment", Some("x"), "web")));
        assert!(s[1].matches(&ResourceKey::new("", "ConfigMap", Some("ns"), "c")));
        assert!(!s[1].matches(&ResourceKey::new("", "ConfigMap", Some("other"), "c")));
        assert_eq!(selectors(&json!({})), None);
    }
}
