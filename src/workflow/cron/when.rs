//! A CronWorkflow's `spec.when` and `spec.stopStrategy` (Argo 3.6), pure over the
//! CronWorkflow as read.
//!
//! Argo semantics (docs "Cron Workflows" / "Variables", `workflow/cron/operator.go`):
//! - The variables are `cronworkflow.name`, `.namespace`, `.labels` (and `.labels.<key>`,
//!   `.labels.json`), `.annotations` (and `.annotations.<key>`, `.annotations.json`),
//!   `.lastScheduledTime` (RFC 3339 text, `nil` before the first run), `.failed` and
//!   `.succeeded` (the counters in `.status`).
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
//! Differences from Argo, each explicit: cairn's expression engine has no time values, so
//! `now()` and arithmetic on `cronworkflow.lastScheduledTime` (Argo's cron-when example) are
//! an evaluation error (the run is not created and the condition says why), never a silent
//! true or false; `lastScheduledTime` compares as text (RFC 3339 in UTC sorts by time).
//! Argo's `cronworkflow.annotations` map holds the *labels* (a bug in its `expressionEnv`);
//! cairn gives the annotations.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::workflow::expr::{self, ExprError, Scope};
use crate::workflow::types::CronWorkflow;

/// Label Argo puts on a CronWorkflow its `stopStrategy` stopped.
pub const LABEL_CRON_COMPLETED: &str = "workflows.argoproj.io/cron-workflow-completed";

/// `status.phase` of a stopped CronWorkflow.
pub const PHASE_STOPPED: &str = "Stopped";

/// The `cronworkflow.*` variables of `cw` (see the module docs).
pub fn scope(cw: &CronWorkflow) -> Scope {
    let meta = &cw.metadata;
    let status = cw.status.clone().unwrap_or_default();
    let mut s = Scope::new();
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
            .map_or(expr::Value::Nil, expr::Value::Str),
    );
    s.insert("cronworkflow.failed", status.failed.unwrap_or(0));
    s.insert("cronworkflow.succeeded", status.succeeded.unwrap_or(0));
    s
}

/// Whether the run due now may be created (`spec.when`; empty or unset is true).
pub fn when_allows(cw: &CronWorkflow) -> Result<bool, ExprError> {
    match cw.spec.when.as_deref() {
        None | Some("") => Ok(true),
        Some(text) => expr::eval_when(text, &scope(cw)),
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
pub fn should_stop(cw: &CronWorkflow) -> Result<bool, ExprError> {
    let Some(source) = stop_expression(cw) else {
        return Ok(false);
    };
    let ast = expr::parse(source)?;
    match expr::eval(&ast, &scope(cw))? {
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
                "{{= cronworkflow.lastScheduledTime < '2026-01-01T00:06:00Z' }}",
                Ok(true),
            ),
            ("{{cronworkflow.nope}} == x", Err(())),
            // No time values in cairn's engine: an error, never a guess.
            (
                "{{= (now() - cronworkflow.lastScheduledTime).Seconds() > 360 }}",
                Err(()),
            ),
        ];
        for (when, want) in cases {
            let got = when_allows(&cw(Some(when), None)).map_err(|_| ());
            assert_eq!(&got, want, "{when}");
        }
        let mut first = cw(Some("{{= cronworkflow.lastScheduledTime == nil }}"), None);
        first.status = None;
        assert_eq!(when_allows(&first), Ok(true));
    }

    #[test]
    fn stop_strategy_is_an_expression_over_the_counters() {
        assert_eq!(should_stop(&cw(None, None)), Ok(false));
        assert_eq!(
            should_stop(&cw(None, Some("cronworkflow.succeeded >= 2"))),
            Ok(true)
        );
        assert_eq!(
            should_stop(&cw(None, Some("cronworkflow.failed >= 3"))),
            Ok(false)
        );
        assert!(should_stop(&cw(None, Some("cronworkflow.name"))).is_err());
        assert!(should_stop(&cw(None, Some("cronworkflow.failed >="))).is_err());
        let mut older = cw(None, None);
        older.spec.extra.insert(
            "stopStrategy".into(),
            json!({"condition": "cronworkflow.failed >= 1"}),
        );
        assert_eq!(should_stop(&older), Ok(true));
    }
}
