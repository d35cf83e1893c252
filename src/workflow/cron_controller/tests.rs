use super::*;
use crate::workflow::types::{CronWorkflowSpec, CronWorkflowStatus};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron(schedule: &str) -> CronWorkflow {
    CronWorkflow {
        metadata: ObjectMeta {
            name: Some("nightly".into()),
            namespace: Some("ml".into()),
            uid: Some("cron-uid".into()),
            ..Default::default()
        },
        spec: CronWorkflowSpec {
            schedule: Some(schedule.into()),
            workflow_spec: Some(Workflow::test("ml", "x").spec),
            workflow_metadata: Some(json!({"labels": {"team": "ml"}})),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A CronWorkflow that has already decided `decided` with the current schedule.
fn decided(mut cw: CronWorkflow, at: &str) -> CronWorkflow {
    let schedule = schedule_string(&cw.spec);
    cw.metadata.annotations = Some(
        [
            (ANNOTATION_LAST_USED_SCHEDULE.to_owned(), schedule),
            (ANNOTATION_LAST_DECIDED.to_owned(), at.to_owned()),
        ]
        .into(),
    );
    cw
}

fn child(name: &str, phase: Option<&str>, finished: Option<&str>) -> Child {
    Child {
        name: name.into(),
        uid: Some(format!("uid-{name}")),
        phase: phase.map(str::to_owned),
        finished_at: finished.map(ts),
    }
}

fn utc() -> TimeZone {
    TimeZone::UTC
}

#[test]
fn a_due_run_creates_the_named_child_and_persists_the_time() {
    let cw = decided(cron("*/5 * * * *"), "2026-01-01T00:00:00Z");
    let now = ts("2026-01-01T00:05:02Z");
    let p = plan(&cw, &[], now, &utc());
    let child = p.create.expect("a run");
    assert_eq!(child.metadata.name.as_deref(), Some("nightly-1767225900"));
    let labels = child.metadata.labels.unwrap();
    assert_eq!(labels[LABEL_CRON_WORKFLOW], "nightly");
    assert_eq!(labels["team"], "ml");
    assert_eq!(
        child.metadata.annotations.unwrap()[ANNOTATION_SCHEDULED_TIME],
        "2026-01-01T00:05:00Z"
    );
    let owner = &child.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("CronWorkflow", "cron-uid")
    );
    assert_eq!(
        p.status.last_scheduled_time.as_deref(),
        Some("2026-01-01T00:05:00Z")
    );
    assert_eq!(
        p.annotations[ANNOTATION_LAST_DECIDED],
        "2026-01-01T00:05:00Z"
    );
    assert_eq!(p.status.active.as_ref().unwrap().len(), 1);
    assert_eq!(p.requeue_after, Some(SignedDuration::ZERO));
}

#[test]
fn after_the_decision_is_persisted_the_same_time_is_not_run_again() {
    // Restart right after the run: the persisted time makes it a wait, not a second run.
    let cw = decided(cron("*/5 * * * *"), "2026-01-01T00:05:00Z");
    let p = plan(&cw, &[], ts("2026-01-01T00:05:30Z"), &utc());
    assert_eq!(p.create, None);
    assert_eq!(p.requeue_after, Some(SignedDuration::from_secs(270)));
}

#[test]
fn a_restart_within_the_deadline_runs_the_missed_time_once() {
    let mut cw = decided(cron("*/5 * * * *"), "2026-01-01T00:00:00Z");
    cw.spec.starting_deadline_seconds = Some(120);
    // Down from 00:04 to 00:06:30: 00:05 was missed, and is within 120 s.
    let p = plan(&cw, &[], ts("2026-01-01T00:06:30Z"), &utc());
    assert_eq!(
        p.create.and_then(|c| c.metadata.name),
        Some("nightly-1767225900".into())
    );
    // Without a deadline the missed time is skipped, and recorded as decided.
    cw.spec.starting_deadline_seconds = None;
    let p = plan(&cw, &[], ts("2026-01-01T00:06:30Z"), &utc());
    assert_eq!(p.create, None);
    assert_eq!(
        p.annotations[ANNOTATION_LAST_DECIDED],
        "2026-01-01T00:05:00Z"
    );
    assert_eq!(p.status.last_scheduled_time, None);
}

#[test]
fn a_replayed_replace_decision_never_terminates_its_own_run() {
    // The store still holds the CronWorkflow from before our write (last decided 00:00), while
    // the child of 00:05 already exists and runs: the same decision comes back.
    let mut cw = decided(cron("*/5 * * * *"), "2026-01-01T00:00:00Z");
    cw.spec.concurrency_policy = Some("Replace".into());
    let kids = [
        child("nightly-1", Some("Running"), None),
        child("nightly-1767225900", Some("Running"), None),
    ];
    let p = plan(&cw, &kids, ts("2026-01-01T00:05:01Z"), &utc());
    assert_eq!(p.terminate, ["nightly-1"]);
    let active = p.status.active.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["name"], "nightly-1767225900");
}

#[test]
fn concurrency_policies() {
    let running = [child("nightly-1", Some("Running"), None)];
    let now = ts("2026-01-01T00:05:01Z");
    let mut cw = decided(cron("*/5 * * * *"), "2026-01-01T00:00:00Z");
    cw.spec.concurrency_policy = Some("Forbid".into());
    let p = plan(&cw, &running, now, &utc());
    assert_eq!(p.create, None);
    assert_eq!(p.status.active.as_ref().unwrap().len(), 1);
    cw.spec.concurrency_policy = Some("Replace".into());
    let p = plan(&cw, &running, now, &utc());
    assert_eq!(p.terminate, ["nightly-1"]);
    assert!(p.create.is_some());
    let active = p.status.active.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["name"], "nightly-1767225900");
    cw.spec.concurrency_policy = None;
    let p = plan(&cw, &running, now, &utc());
    assert!(p.terminate.is_empty());
    assert_eq!(p.status.active.unwrap().len(), 2);
}

#[test]
fn suspended_and_edited_schedules_and_when() {
    let now = ts("2026-01-01T00:05:01Z");
    let mut cw = decided(cron("*/5 * * * *"), "2026-01-01T00:00:00Z");
    cw.spec.suspend = Some(true);
    let p = plan(&cw, &[], now, &utc());
    assert_eq!(p.create, None);
    assert_eq!(
        p.annotations[ANNOTATION_LAST_DECIDED],
        "2026-01-01T00:05:00Z"
    );

    // Edited schedule: a missed time is not run even within the deadline.
    let mut cw = decided(cron("*/5 * * * *"), "2026-01-01T00:00:00Z");
    cw.spec.schedule = Some("*/10 * * * *".into());
    cw.spec.starting_deadline_seconds = Some(600);
    let p = plan(&cw, &[], ts("2026-01-01T00:10:30Z"), &utc());
    assert_eq!(p.create, None);
    assert_eq!(p.annotations[ANNOTATION_LAST_USED_SCHEDULE], "*/10 * * * *");

    // `when`: false skips that time (decided), true runs, an error says why and runs nothing.
    let mut cw = decided(cron("*/5 * * * *"), "2026-01-01T00:00:00Z");
    cw.spec.when = Some("{{cronworkflow.name}} != nightly".into());
    let p = plan(&cw, &[], now, &utc());
    assert_eq!(p.create, None);
    assert_eq!(p.status.conditions, None);
    assert_eq!(
        p.annotations[ANNOTATION_LAST_DECIDED],
        "2026-01-01T00:05:00Z"
    );
    assert_eq!(p.status.last_scheduled_time, None);

    cw.spec.when = Some("{{= cronworkflow.labels.team == 'ml' || true }}".into());
    let p = plan(&cw, &[], now, &utc());
    assert!(p.create.is_some());

    cw.spec.when = Some("{{= now() > 1 }}".into());
    let p = plan(&cw, &[], now, &utc());
    assert_eq!(p.create, None);
    let cond = &p.status.conditions.unwrap()[0];
    assert_eq!(cond["type"], "SubmissionError");
    assert!(
        cond["message"]
            .as_str()
            .unwrap()
            .starts_with("run policy error: spec.when:"),
        "{cond}"
    );
    assert_eq!(p.status.failed, Some(1));
}

#[test]
fn finished_runs_are_counted_and_a_true_stop_strategy_stops_scheduling() {
    let mut cw = decided(cron("*/5 * * * *"), "2026-01-01T00:05:00Z");
    cw.spec.extra.insert(
        "stopStrategy".into(),
        json!({"expression": "cronworkflow.succeeded >= 1"}),
    );
    cw.status = Some(CronWorkflowStatus {
        active: Some(vec![json!({"name": "nightly-1767225900"})]),
        last_scheduled_time: Some("2026-01-01T00:05:00Z".into()),
        ..Default::default()
    });
    // Still running: nothing counted, nothing stopped.
    let running = [child("nightly-1767225900", Some("Running"), None)];
    let p = plan(&cw, &running, ts("2026-01-01T00:06:00Z"), &utc());
    assert_eq!((p.status.succeeded, p.status.failed), (None, None));
    assert_eq!(p.status.phase.as_deref(), Some("Active"));

    // It succeeded: counted once, the stop expression holds, the CronWorkflow stops.
    let done = [child(
        "nightly-1767225900",
        Some("Succeeded"),
        Some("2026-01-01T00:06:00Z"),
    )];
    let p = plan(&cw, &done, ts("2026-01-01T00:07:00Z"), &utc());
    assert_eq!(p.status.succeeded, Some(1));
    assert_eq!(p.status.phase.as_deref(), Some("Stopped"));
    assert_eq!(p.labels[when::LABEL_CRON_COMPLETED], "true");
    assert_eq!(p.status.active, None);

    // Stopped: the next due time creates nothing and counts nothing again.
    let mut stopped = cw.clone();
    stopped.status = Some(p.status.clone());
    let p = plan(&stopped, &done, ts("2026-01-01T00:10:01Z"), &utc());
    assert_eq!(p.create, None);
    assert_eq!(p.status.succeeded, Some(1));
    assert_eq!(p.status.phase.as_deref(), Some("Stopped"));
    assert_eq!(
        p.annotations[ANNOTATION_LAST_DECIDED],
        "2026-01-01T00:10:00Z"
    );

    // A failed run counts as failed; a stop expression that does not hold lets runs go on.
    let failed = [child(
        "nightly-1767225900",
        Some("Error"),
        Some("2026-01-01T00:06:00Z"),
    )];
    let p = plan(&cw, &failed, ts("2026-01-01T00:10:01Z"), &utc());
    assert_eq!((p.status.succeeded, p.status.failed), (Some(0), Some(1)));
    assert!(p.create.is_some());
    assert_eq!(p.status.phase.as_deref(), Some("Active"));
}

#[test]
fn invalid_specs_schedule_nothing_and_say_why() {
    let cw = cron("not a schedule");
    let p = plan(&cw, &[], ts("2026-01-01T00:05:01Z"), &utc());
    assert_eq!(p.create, None);
    assert_eq!(p.requeue_after, None);
    let cond = &p.status.conditions.unwrap()[0];
    assert_eq!(cond["type"], "SpecError");
    assert!(
        cond["message"].as_str().unwrap().contains("spec.schedule"),
        "{cond}"
    );
}

#[test]
fn history_limits_delete_the_oldest_finished_runs() {
    let mut cw = decided(cron("0 0 1 1 *"), "2026-01-01T00:00:00Z");
    cw.spec.successful_jobs_history_limit = Some(1);
    cw.spec.failed_jobs_history_limit = Some(1);
    let kids = [
        child("a", Some("Succeeded"), Some("2026-01-01T01:00:00Z")),
        child("b", Some("Succeeded"), Some("2026-01-01T02:00:00Z")),
        child("c", Some("Failed"), Some("2026-01-01T01:00:00Z")),
        child("d", Some("Error"), Some("2026-01-01T03:00:00Z")),
        child("e", Some("Running"), None),
    ];
    let p = plan(&cw, &kids, ts("2026-01-02T00:00:00Z"), &utc());
    assert_eq!(p.delete, ["a", "c"]);
    assert_eq!(p.status.phase.as_deref(), Some("Active"));
}

#[test]
fn children_inherit_the_controller_instance() {
    let mut cw = cron("* * * * *");
    let child = child_workflow(&cw, ts("2026-01-01T00:00:00Z"));
    assert!(
        !child
            .metadata
            .labels
            .unwrap()
            .contains_key(crate::workflow::controller::LABEL_INSTANCE_ID)
    );
    cw.metadata.labels = Some(
        [(
            crate::workflow::controller::LABEL_INSTANCE_ID.to_owned(),
            "team-a".to_owned(),
        )]
        .into(),
    );
    let child = child_workflow(&cw, ts("2026-01-01T00:00:00Z"));
    assert_eq!(
        child.metadata.labels.unwrap()[crate::workflow::controller::LABEL_INSTANCE_ID],
        "team-a"
    );
}
