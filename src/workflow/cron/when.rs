//! A CronWorkflow's `spec.when` and `spec.stopStrategy` (Argo 3.6), pure over the
//! CronWorkflow as read.
//!
//! Argo semantics (docs "Cron Workflows" / "Variables", `workflow/cron/operator.go`):
//! - The variables are `cronworkflow.name`, `.namespace`, `.labels` (and `.labels.<key>`,
//!   `.labels.json`), `.annotations` (and `.annotations.<key>`, `.annotations.json`),
//!   `.lastScheduledTime` (a `time.Time`, `nil` before the first run), `.failed` and
//!   `.succeeded` (the counters in `.status`). Expressions may use expr-lang's time functions:
//!   `now()` is the controller's decision time (the planner's `now`, passed in, so a decision
//!   is a pure function of its inputs), so Argo's example
//!   `{{= cronworkflow.lastScheduledTime == nil || (now() - cronworkflow.lastScheduledTime).Seconds() > 360 }}`
//!   works as documented.
//! - `when` is a template: its `{{...}}` tags (simple or `{{= expression}}`) are substituted,
//!   then the text is decided as a govaluate condition, as a step's `when`. Empty is true. It
//!   is evaluated at each due time after `suspend` and a stop, before the concurrency policy;
//!   false skips that run. An error is a `SubmissionError` condition and no run.
//! - `stopStrategy.expression` (also the older `condition` field) is an expr-lang expression
//!   over the same variables; when it is true the CronWorkflow stops: `status.phase: Stopped`
//!   and the label `workflows.argoproj.io/cron-workflow-completed: "true"`, and no further run
//!   is created. It is checked at each due time and whenever an active run finishes (after the
//!   counters are updated).
//!
//! Differences from Argo, each explicit: a `lastScheduledTime` in `.status` that is not
//! RFC 3339 (cairn always writes RFC 3339) stays its text, so time arithmetic on it is an
//! evaluation error rather than a guess. Argo's `cronworkflow.annotations` map holds the *labels* (a bug in its `expressionEnv`);
//! cairn gives the annotations.

use std::collections::BTreeMap;

use serde_json::Value;

use jiff::Timestamp;

use crate::workflow::expr::{self, ExprError, Scope};
use crate::workflow::types::CronWorkflow;

/// Label Argo puts on a CronWorkflow its `stopStrategy` stopped.
pub const LABEL_CRON_COMPLETED: &str = "workflows.argoproj.io/cron-workflow-completed";

/// `status.phase` of a stopped CronWorkflow.
pub const PHASE_STOPPED: &str = "Stopped";

/// The `cronworkflow.*` variables of `cw`, with `now()` reading `now` (see the module docs).
pub fn scope(cw: &CronWorkflow, now: Timestamp) -> Scope {
    let meta = &cw.metadata;
    let status = cw.status.clone().unwrap_or_default();
    let mut s = Scope::new().with_now(now);
    s.insert("cronworkflow.name", meta.name.clone().unwrap_or_default());
    s.insert(
        "cronworkflow.namespace",
        meta.namespace.clone().unwrap_or_default(),
    );
    for (key, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        let map: BTreeMap<String, String> = map.clone().unwrap_or_default();
        let as_value = Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        );
        let json = expr::Value::from(&as_value)
            .go_json()
            .unwrap_or_else(|| "{}".into());
        s.insert(format!("cronworkflow.{key}"), as_value);
        s.insert(format!("cronworkflow.{key}.json"), json);
        for (k, v) in map {
            s.insert(format!("cronworkflow.{key}.{k}"), v);
        }
    }
    s.insert(
        "cronworkflow.lastScheduledTime",
        status
            .last_scheduled_time
            .map_or(expr::Value::Nil, |t| match expr::Time::parse(&t) {
                Ok(time) => expr::Value::Time(time),
                Err(_) => expr::Value::Str(t),
            }),
    );
    s.insert("cronworkflow.failed", status.failed.unwrap_or(0));
    s.insert("cronworkflow.succeeded", status.succeeded.unwrap_or(0));
    s
}

/// Whether the run due at `now` may be created (`spec.when`; empty or unset is true).
pub fn when_allows(cw: &CronWorkflow, now: Timestamp) -> Result<bool, ExprError> {
    match cw.spec.when.as_deref() {
        None | Some("") => Ok(true),
        Some(text) => expr::eval_when(text, &scope(cw, now)),
    }
}

/// The stop expression of `spec.stopStrategy` (`expression`, or Argo 3.6's earlier
/// `condition`), when set and not blank.
pub fn stop_expression(cw: &CronWorkflow) -> Option<&str> {
    let s = cw.spec.extra.get("stopStrategy")?;
    ["expression", "condition"]
        .into_iter()
        .find_map(|f| s.get(f).and_then(Value::as_str))
        .filter(|e| !e.trim().is_empty())
}

/// Whether `spec.stopStrategy` says to stop (`false` without one). A non-boolean result is an
/// error.
pub fn should_stop(cw: &CronWorkflow, now: Timestamp) -> Result<bool, ExprError> {
    let Some(source) = stop_expression(cw) else {
        return Ok(false);
    };
    let ast = expr::parse(source)?;
    match expr::eval(&ast, &scope(cw, now))? {
        expr::Value::Bool(b) => Ok(b),
        other => Err(ExprError::Eval {
            expr: source.to_owned(),
            pos: 0,
            message: format!("expected a boolean, got {}", other.type_name()),
        }),
    }
}

/// Whether `cw` was stopped by its `stopStrategy`.
pub fn is_stopped(cw: &CronWorkflow) -> bool {
    cw.status.as_ref().and_then(|s| s.phase.as_deref()) == Some(PHASE_STOPPED)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;
    use crate::workflow::types::{CronWorkflowSpec, CronWorkflowStatus};

    fn cw(when: Option<&str>, stop: Option<&str>) -> CronWorkflow {
        let mut spec = CronWorkflowSpec {
            schedule: Some("* * * * *".into()),
            when: when.map(str::to_owned),
            ..Default::default()
        };
        if let Some(e) = stop {
            spec.extra
                .insert("stopStrategy".into(), json!({"expression": e}));
        }
        CronWorkflow {
            metadata: ObjectMeta {
                name: Some("nightly".into()),
                namespace: Some("ml".into()),
                labels: Some([("team".to_owned(), "ml".to_owned())].into()),
                annotations: Some([("owner".to_owned(), "bob".to_owned())].into()),
                ..Default::default()
            },
            spec,
            status: Some(CronWorkflowStatus {
                succeeded: Some(2),
                failed: Some(1),
                last_scheduled_time: Some("2026-01-01T00:05:00Z".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The planner's clock in these tests: 7 minutes after the last scheduled run.
    fn at(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    const NOW: &str = "2026-01-01T00:12:00Z";

    #[test]
    fn when_sees_the_cronworkflow_variables() {
        let cases: &[(&str, Result<bool, ()>)] = &[
            ("", Ok(true)),
            ("{{cronworkflow.name}} == nightly", Ok(true)),
            ("{{cronworkflow.namespace}} != ml", Ok(false)),
            ("{{cronworkflow.labels.team}} == ml", Ok(true)),
            ("{{= cronworkflow.annotations.owner == 'bob' }}", Ok(true)),
            ("{{= cronworkflow.labels['team'] == 'ml' }}", Ok(true)),
            ("{{cronworkflow.succeeded}} >= 2", Ok(true)),
            ("{{= cronworkflow.failed > 1 }}", Ok(false)),
            ("{{= cronworkflow.lastScheduledTime == nil }}", Ok(false)),
            (
                "{{= cronworkflow.lastScheduledTime < date('2026-01-01T00:06:00Z') }}",
                Ok(true),
            ),
            (
                "{{= cronworkflow.lastScheduledTime == date('2026-01-01T02:05:00+02:00') }}",
                Ok(true),
            ),
            // A time is not a string (expr-lang: mismatched types).
            (
                "{{= cronworkflow.lastScheduledTime < '2026-01-01T00:06:00Z' }}",
                Err(()),
            ),
            ("{{cronworkflow.nope}} == x", Err(())),
            // Time arithmetic against the planner's clock.
            (
                "{{= (now() - cronworkflow.lastScheduledTime).Minutes() == 7 }}",
                Ok(true),
            ),
            (
                "{{= now() - cronworkflow.lastScheduledTime > duration('6m') }}",
                Ok(true),
            ),
            (
                "{{= cronworkflow.lastScheduledTime + duration('1h') < now() }}",
                Ok(false),
            ),
            ("{{= now().Hour() == 0 && now().Minute() == 12 }}", Ok(true)),
            (
                "{{= (now() - cronworkflow.lastScheduledTime).Seconds() > 'x' }}",
                Err(()),
            ),
        ];
        for (when, want) in cases {
            let got = when_allows(&cw(Some(when), None), at(NOW)).map_err(|_| ());
            assert_eq!(&got, want, "{when}");
        }
        let mut first = cw(Some("{{= cronworkflow.lastScheduledTime == nil }}"), None);
        first.status = None;
        assert_eq!(when_allows(&first, at(NOW)), Ok(true));
    }

    /// Argo's documented cron `when` example, with a fixed clock.
    #[test]
    fn argo_example_runs_at_most_every_six_minutes() {
        let argo = "{{= cronworkflow.lastScheduledTime == nil || \
                    (now() - cronworkflow.lastScheduledTime).Seconds() > 360 }}";
        // Last run 00:05:00; at 00:12:00 it is 420 s ago.
        assert_eq!(when_allows(&cw(Some(argo), None), at(NOW)), Ok(true));
        // At 00:10:00 it is 300 s ago.
        assert_eq!(
            when_allows(&cw(Some(argo), None), at("2026-01-01T00:10:00Z")),
            Ok(false)
        );
        // Exactly 360 s is not more than 360.
        assert_eq!(
            when_allows(&cw(Some(argo), None), at("2026-01-01T00:11:00Z")),
            Ok(false)
        );
        // Never scheduled: nil, and `||` does not evaluate the subtraction.
        let mut first = cw(Some(argo), None);
        first.status = None;
        assert_eq!(when_allows(&first, at(NOW)), Ok(true));
        // A status time that is not RFC 3339 stays text: the subtraction is an error.
        let mut odd = cw(Some(argo), None);
        if let Some(st) = odd.status.as_mut() {
            st.last_scheduled_time = Some("yesterday".into());
        }
        let err = when_allows(&odd, at(NOW)).expect_err("text minus time");
        assert!(err.to_string().contains("mismatched types"), "{err}");
    }

    #[test]
    fn stop_strategy_sees_the_clock() {
        let stop = "now() - cronworkflow.lastScheduledTime >= duration('1h')";
        assert_eq!(should_stop(&cw(None, Some(stop)), at(NOW)), Ok(false));
        assert_eq!(
            should_stop(&cw(None, Some(stop)), at("2026-01-01T01:05:00Z")),
            Ok(true)
        );
    }

    #[test]
    fn stop_strategy_is_an_expression_over_the_counters() {
        assert_eq!(should_stop(&cw(None, None), at(NOW)), Ok(false));
        assert_eq!(
            should_stop(&cw(None, Some("cronworkflow.succeeded >= 2")), at(NOW)),
            Ok(true)
        );
        assert_eq!(
            should_stop(&cw(None, Some("cronworkflow.failed >= 3")), at(NOW)),
            Ok(false)
        );
        assert!(should_stop(&cw(None, Some("cronworkflow.name")), at(NOW)).is_err());
        assert!(should_stop(&cw(None, Some("cronworkflow.failed >=")), at(NOW)).is_err());
        let mut older = cw(None, None);
        older.spec.extra.insert(
            "stopStrategy".into(),
            json!({"condition": "cronworkflow.failed >= 1"}),
        );
        assert_eq!(should_stop(&older, at(NOW)), Ok(true));
    }
}
