use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().expect("RFC 3339 timestamp")
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).expect("zone in the system tzdb")
}

fn sched(text: &str, tz: &str) -> Schedule {
    parse_schedule_text(text, &zone(tz)).expect("valid schedule")
}

/// The first `n` times strictly after `from`.
fn upcoming(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = t(from);
    for _ in 0..n {
        match s.next_after(at, None) {
            Some(next) => {
                out.push(next.to_string());
                at = next;
            }
            None => break,
        }
    }
    out
}

/// Test builder: a spec over UTC schedules with the given policy knobs.
fn spec(schedules: &[&str]) -> CronSpec {
    CronSpec {
        schedules: schedules.iter().map(|s| sched(s, "UTC")).collect(),
        starting_deadline_seconds: None,
        concurrency_policy: ConcurrencyPolicy::Allow,
        suspend: false,
        successful_history_limit: DEFAULT_SUCCESSFUL_HISTORY,
        failed_history_limit: DEFAULT_FAILED_HISTORY,
    }
}

#[test]
fn parse_errors_table() {
    let cases = [
        (
            "* * * *",
            "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 4",
        ),
        (
            "0 * * * * *",
            "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 6",
        ),
        (
            "",
            "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 0",
        ),
        (
            "* * * * 7",
            "day-of-week: \"7\" is not 0-6 or a weekday name (sun..sat)",
        ),
        ("* * * * 5-2", "day-of-week: range \"5-2\" runs backwards"),
        (
            "* * * * funday",
            "day-of-week: \"funday\" is not 0-6 or a weekday name (sun..sat)",
        ),
        (
            "*/0 * * * *",
            "minute: step \"0\" must be a positive integer",
        ),
        (
            "* * * * */0",
            "day-of-week: step \"0\" must be a positive integer",
        ),
        (
            "@often",
            "unknown descriptor (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every <duration>)",
        ),
        (
            "@every soon",
            "@every: invalid duration \"soon\": expected a number",
        ),
        (
            "CRON_TZ=UTC",
            "a time zone prefix must be followed by a schedule",
        ),
        ("0 0 L * *", "day-of-month: unexpected character 'L'"),
        ("0 0 15W * *", "day-of-month: unexpected character 'W'"),
        ("0 jan * * *", "hour: unexpected character 'j'"),
        ("x * * * *", "minute: unexpected character 'x'"),
        ("30-10 * * * *", "minute: range \"30-10\" runs backwards"),
        (
            "0 0 * * 5#3",
            "day-of-week: \"5#3\" is not 0-6 or a weekday name (sun..sat)",
        ),
    ];
    for (text, problem) in cases {
        assert_eq!(
            parse_schedule_text(text, &TimeZone::UTC).map(|_| ()),
            Err(ScheduleError::Syntax(problem.to_owned())),
            "{text:?}"
        );
    }
    // Out-of-range values are refused by the cron crate.
    for text in [
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * 32 * *",
        "* * * 13 *",
    ] {
        assert!(
            matches!(parse_schedule_text(text, &TimeZone::UTC), Err(ScheduleError::Syntax(p)) if p.starts_with("invalid field")),
            "{text:?}"
        );
    }
    assert_eq!(
        parse_schedule_text("CRON_TZ=Mars/Olympus 0 * * * *", &TimeZone::UTC).map(|_| ()),
        Err(ScheduleError::Zone("Mars/Olympus".to_owned()))
    );
}

#[test]
fn next_times_table() {
    let cases: Vec<(&str, &str, usize, Vec<&str>)> = vec![
        (
            "* * * * *",
            "2026-05-01T10:07:30Z",
            2,
            vec!["2026-05-01T10:08:00Z", "2026-05-01T10:09:00Z"],
        ),
        (
            "*/15 * * * *",
            "2026-05-01T10:07:00Z",
            3,
            vec![
                "2026-05-01T10:15:00Z",
                "2026-05-01T10:30:00Z",
                "2026-05-01T10:45:00Z",
            ],
        ),
        (
            "5/20 * * * *",
            "2026-05-01T10:00:00Z",
            3,
            vec![
                "2026-05-01T10:05:00Z",
                "2026-05-01T10:25:00Z",
                "2026-05-01T10:45:00Z",
            ],
        ),
        (
            "0 9 * * MON-FRI",
            "2026-05-01T10:00:00Z",
            2,
            vec!["2026-05-04T09:00:00Z", "2026-05-05T09:00:00Z"],
        ),
        (
            "0 9 * * 1-5",
            "2026-05-01T08:00:00Z",
            2,
            vec!["2026-05-01T09:00:00Z", "2026-05-04T09:00:00Z"],
        ),
        (
            "0 12 * * 0",
            "2026-05-01T00:00:00Z",
            2,
            vec!["2026-05-03T12:00:00Z", "2026-05-10T12:00:00Z"],
        ),
        (
            "0 12 * * sun,SAT",
            "2026-05-01T00:00:00Z",
            3,
            vec![
                "2026-05-02T12:00:00Z",
                "2026-05-03T12:00:00Z",
                "2026-05-09T12:00:00Z",
            ],
        ),
        (
            "0 0 * * 1/2",
            "2026-05-01T00:00:00Z",
            3,
            vec![
                "2026-05-04T00:00:00Z",
                "2026-05-06T00:00:00Z",
                "2026-05-08T00:00:00Z",
            ],
        ),
        // Both day fields restricted: either matches (13th, or any Friday).
        (
            "0 0 13 * 5",
            "2026-05-01T00:00:00Z",
            3,
            vec![
                "2026-05-08T00:00:00Z",
                "2026-05-13T00:00:00Z",
                "2026-05-15T00:00:00Z",
            ],
        ),
        // Day-of-month `*`: both must match, i.e. Fridays only.
        (
            "0 0 * * 5",
            "2026-05-01T00:00:00Z",
            2,
            vec!["2026-05-08T00:00:00Z", "2026-05-15T00:00:00Z"],
        ),
        // `*/2` has a step, so it is restricted: odd days or Fridays.
        (
            "0 0 */2 * 5",
            "2026-05-01T00:00:00Z",
            3,
            vec![
                "2026-05-03T00:00:00Z",
                "2026-05-05T00:00:00Z",
                "2026-05-07T00:00:00Z",
            ],
        ),
        (
            "0 0 ? * 5",
            "2026-05-01T00:00:00Z",
            1,
            vec!["2026-05-08T00:00:00Z"],
        ),
        (
            "@hourly",
            "2026-05-01T10:59:59Z",
            1,
            vec!["2026-05-01T11:00:00Z"],
        ),
        (
            "@daily",
            "2026-05-01T10:00:00Z",
            1,
            vec!["2026-05-02T00:00:00Z"],
        ),
        (
            "@midnight",
            "2026-05-01T10:00:00Z",
            1,
            vec!["2026-05-02T00:00:00Z"],
        ),
        (
            "@weekly",
            "2026-05-01T10:00:00Z",
            1,
            vec!["2026-05-03T00:00:00Z"],
        ),
        (
            "@monthly",
            "2026-05-01T10:00:00Z",
            1,
            vec!["2026-06-01T00:00:00Z"],
        ),
        (
            "@yearly",
            "2026-05-01T10:00:00Z",
            1,
            vec!["2027-01-01T00:00:00Z"],
        ),
        (
            "@annually",
            "2026-05-01T10:00:00Z",
            1,
            vec!["2027-01-01T00:00:00Z"],
        ),
        (
            "0 0 29 2 *",
            "2026-05-01T00:00:00Z",
            2,
            vec!["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        ("0 0 30 2 *", "2026-05-01T00:00:00Z", 1, vec![]),
        (
            "CRON_TZ=Asia/Tokyo 0 9 * * *",
            "2026-05-01T00:00:00Z",
            1,
            vec!["2026-05-02T00:00:00Z"],
        ),
        (
            "TZ=Asia/Kolkata 0 9 * * *",
            "2026-05-01T00:00:00Z",
            1,
            vec!["2026-05-01T03:30:00Z"],
        ),
        (
            "@every 90m",
            "1970-01-01T00:00:00Z",
            2,
            vec!["1970-01-01T01:30:00Z", "1970-01-01T03:00:00Z"],
        ),
        (
            "@every 500ms",
            "2026-05-01T00:00:00Z",
            2,
            vec!["2026-05-01T00:00:01Z", "2026-05-01T00:00:02Z"],
        ),
    ];
    for (text, from, n, expected) in cases {
        assert_eq!(
            upcoming(&sched(text, "UTC"), from, n),
            expected,
            "{text:?} after {from}"
        );
    }
}

#[test]
fn dst_transitions() {
    let cases: Vec<(&str, &str, &str, usize, Vec<&str>)> = vec![
        // New York springs forward on 2026-03-08 02:00 EST → 03:00 EDT: 02:30 does not exist
        // that day, so the daily 02:30 run is skipped (robfig, hence Argo).
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T08:00:00Z",
            2,
            vec!["2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"],
        ),
        // Hourly across the gap: 01:00 EST then 03:00 EDT, one hour apart in real time.
        (
            "America/New_York",
            "0 * * * *",
            "2026-03-08T05:30:00Z",
            2,
            vec!["2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"],
        ),
        // Falls back on 2026-11-01 02:00 EDT → 01:00 EST: 01:30 happens twice, so it runs twice.
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T12:00:00Z",
            3,
            vec![
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-02T06:30:00Z",
            ],
        ),
        // A time outside the transition keeps its wall-clock hour across the change.
        (
            "America/New_York",
            "0 9 * * *",
            "2026-03-07T15:00:00Z",
            2,
            vec!["2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"],
        ),
        // Berlin springs forward on 2026-03-29 02:00 CET → 03:00 CEST.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-03-28T12:00:00Z",
            2,
            vec!["2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"],
        ),
        (
            "Europe/Berlin",
            "0 9 * * *",
            "2026-03-28T00:00:00Z",
            2,
            vec!["2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"],
        ),
        // Falls back on 2026-10-25 03:00 CEST → 02:00 CET: 02:30 happens twice.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-10-24T12:00:00Z",
            3,
            vec![
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-26T01:30:00Z",
            ],
        ),
        (
            "Europe/Berlin",
            "*/30 2 25 10 *",
            "2026-10-24T12:00:00Z",
            4,
            vec![
                "2026-10-25T00:00:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:30:00Z",
            ],
        ),
    ];
    for (tz, text, from, n, expected) in cases {
        assert_eq!(
            upcoming(&sched(text, tz), from, n),
            expected,
            "{tz} {text:?} after {from}"
        );
    }
}

#[test]
fn latest_is_the_mirror_of_next() {
    let cases = [
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T06:45:00Z",
            None,
            Some("2026-11-01T06:30:00Z"),
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-11-01T06:00:00Z",
            None,
            Some("2026-11-01T05:30:00Z"),
        ),
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-09T06:00:00Z",
            None,
            Some("2026-03-07T07:30:00Z"),
        ),
        (
            "UTC",
            "0 * * * *",
            "2026-05-01T10:00:00Z",
            None,
            Some("2026-05-01T10:00:00Z"),
        ),
        (
            "UTC",
            "0 * * * *",
            "2026-05-01T10:00:00Z",
            Some("2026-05-01T10:00:00Z"),
            None,
        ),
        (
            "UTC",
            "0 0 1 1 *",
            "2026-05-01T10:00:00Z",
            Some("2026-03-01T00:00:00Z"),
            None,
        ),
        ("UTC", "0 0 30 2 *", "2026-05-01T10:00:00Z", None, None),
    ];
    for (tz, text, now, floor, expected) in cases {
        let got = sched(text, tz).latest_at_or_before(t(now), floor.map(t), None);
        assert_eq!(
            got,
            expected.map(t),
            "{tz} {text:?} at {now} above {floor:?}"
        );
    }
}

/// name, spec, last decided time, now, active runs, expected decision.
type DueCase = (
    &'static str,
    CronSpec,
    Option<&'static str>,
    &'static str,
    usize,
    CronDecision,
);

#[test]
fn due_table() {
    use CronDecision::*;
    let hourly = || spec(&["0 * * * *"]);
    let with = |f: &dyn Fn(&mut CronSpec)| {
        let mut s = hourly();
        f(&mut s);
        s
    };
    let run = |s: &str| Run {
        scheduled_time: t(s),
    };
    let skip = |s: &str, reason| Skip {
        scheduled_time: t(s),
        reason,
    };
    let wait = |s: &str| Wait { next: Some(t(s)) };
    let cases: Vec<DueCase> = vec![
        (
            "first run on time",
            hourly(),
            None,
            "2026-05-01T10:00:00Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "first run a little late",
            hourly(),
            None,
            "2026-05-01T10:00:10Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "first run too late: nothing to catch up",
            hourly(),
            None,
            "2026-05-01T10:00:11Z",
            0,
            wait("2026-05-01T11:00:00Z"),
        ),
        (
            "already decided",
            hourly(),
            Some("2026-05-01T10:00:00Z"),
            "2026-05-01T10:00:05Z",
            0,
            wait("2026-05-01T11:00:00Z"),
        ),
        (
            "between runs",
            hourly(),
            Some("2026-05-01T10:00:00Z"),
            "2026-05-01T10:30:00Z",
            0,
            wait("2026-05-01T11:00:00Z"),
        ),
        (
            "missed without deadline",
            hourly(),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:30:00Z",
            0,
            skip("2026-05-01T10:00:00Z", SkipReason::MissedDeadline),
        ),
        (
            "missed within deadline",
            with(&|s| s.starting_deadline_seconds = Some(3600)),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:30:00Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "deadline end is exclusive",
            with(&|s| s.starting_deadline_seconds = Some(1800)),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:30:00Z",
            0,
            skip("2026-05-01T10:00:00Z", SkipReason::MissedDeadline),
        ),
        (
            "just inside the deadline",
            with(&|s| s.starting_deadline_seconds = Some(1800)),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:29:59Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "many missed: only the latest",
            with(&|s| s.starting_deadline_seconds = Some(3600)),
            Some("2026-05-01T05:00:00Z"),
            "2026-05-01T10:30:00Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "deadline 0 still runs on time",
            with(&|s| s.starting_deadline_seconds = Some(0)),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:03Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "deadline 0 skips a missed run",
            with(&|s| s.starting_deadline_seconds = Some(0)),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:30Z",
            0,
            skip("2026-05-01T10:00:00Z", SkipReason::MissedDeadline),
        ),
        (
            "suspended",
            with(&|s| s.suspend = true),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:00Z",
            0,
            skip("2026-05-01T10:00:00Z", SkipReason::Suspended),
        ),
        (
            "suspended, nothing due",
            with(&|s| s.suspend = true),
            Some("2026-05-01T10:00:00Z"),
            "2026-05-01T10:20:00Z",
            0,
            wait("2026-05-01T11:00:00Z"),
        ),
        (
            "forbid with an active run",
            with(&|s| s.concurrency_policy = ConcurrencyPolicy::Forbid),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:00Z",
            1,
            skip(
                "2026-05-01T10:00:00Z",
                SkipReason::ConcurrencyForbid { active: 1 },
            ),
        ),
        (
            "forbid, none active",
            with(&|s| s.concurrency_policy = ConcurrencyPolicy::Forbid),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:00Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "replace with active runs",
            with(&|s| s.concurrency_policy = ConcurrencyPolicy::Replace),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:00Z",
            2,
            ReplaceThenRun {
                scheduled_time: t("2026-05-01T10:00:00Z"),
                active: 2,
            },
        ),
        (
            "replace, none active",
            with(&|s| s.concurrency_policy = ConcurrencyPolicy::Replace),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:00Z",
            0,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "allow with active runs",
            hourly(),
            Some("2026-05-01T09:00:00Z"),
            "2026-05-01T10:00:00Z",
            5,
            run("2026-05-01T10:00:00Z"),
        ),
        (
            "two schedules: the latest wins",
            spec(&["0 * * * *", "30 * * * *"]),
            Some("2026-05-01T10:00:00Z"),
            "2026-05-01T10:30:01Z",
            0,
            run("2026-05-01T10:30:00Z"),
        ),
        (
            "two schedules: the nearest next",
            spec(&["0 * * * *", "30 * * * *"]),
            Some("2026-05-01T10:30:00Z"),
            "2026-05-01T10:31:00Z",
            0,
            wait("2026-05-01T11:00:00Z"),
        ),
        (
            "a clock behind the deciding one never re-offers a decided time",
            hourly(),
            Some("2026-05-01T11:00:00Z"),
            "2026-05-01T10:59:59Z",
            0,
            wait("2026-05-01T12:00:00Z"),
        ),
        (
            "never fires",
            spec(&["0 0 30 2 *"]),
            None,
            "2026-05-01T10:00:00Z",
            0,
            Wait { next: None },
        ),
        (
            "every: anchored on the last run",
            spec(&["@every 45m"]),
            Some("2026-05-01T10:10:00Z"),
            "2026-05-01T10:55:02Z",
            0,
            run("2026-05-01T10:55:00Z"),
        ),
        (
            "every: waiting",
            spec(&["@every 45m"]),
            Some("2026-05-01T10:10:00Z"),
            "2026-05-01T10:20:00Z",
            0,
            wait("2026-05-01T10:55:00Z"),
        ),
    ];
    for (name, s, last, now, active, expected) in cases {
        assert_eq!(due(&s, last.map(t), t(now), active), expected, "{name}");
    }
}

/// A controller loop over `due`: each tick persists decisions; `crash_before_persist` loses the
/// persistence of that tick's decision (created, then cairn died before writing status).
fn drive(s: &CronSpec, ticks: &[(&str, bool)]) -> (Vec<String>, Option<Timestamp>) {
    let mut last: Option<Timestamp> = None;
    let mut created: Vec<String> = Vec::new();
    for (now, crash_before_persist) in ticks {
        let decision = due(s, last, t(now), 0);
        let decided = match decision {
            CronDecision::Run { scheduled_time }
            | CronDecision::ReplaceThenRun { scheduled_time, .. } => {
                let name = child_workflow_name("nightly", scheduled_time);
                // The apiserver refuses a second object with the same name.
                if !created.contains(&name) {
                    created.push(name);
                }
                Some(scheduled_time)
            }
            CronDecision::Skip { scheduled_time, .. } => Some(scheduled_time),
            CronDecision::Wait { .. } => None,
        };
        if !crash_before_persist && decided.is_some() {
            last = decided;
        }
    }
    (created, last)
}

#[test]
fn restarts_neither_skip_nor_double() {
    let mut s = spec(&["0 * * * *"]);
    s.starting_deadline_seconds = Some(3600);
    // Runs at 10:00; crash right after creating 11:00's run; restart at 11:00:20 (missed, within
    // deadline) re-decides 11:00 under the same name; down from 11:05 to 14:10 → only 14:00 runs.
    let (created, last) = drive(
        &s,
        &[
            ("2026-05-01T10:00:00Z", false),
            ("2026-05-01T10:00:01Z", false),
            ("2026-05-01T11:00:00Z", true),
            ("2026-05-01T11:00:20Z", false),
            ("2026-05-01T11:05:00Z", false),
            ("2026-05-01T14:10:00Z", false),
            ("2026-05-01T14:10:01Z", false),
        ],
    );
    assert_eq!(
        created,
        vec![
            "nightly-1777629600",
            "nightly-1777633200",
            "nightly-1777644000"
        ]
    );
    assert_eq!(last, Some(t("2026-05-01T14:00:00Z")));
}

#[test]
fn child_names() {
    assert_eq!(
        child_workflow_name("hello-world", t("2026-05-01T10:00:00Z")),
        "hello-world-1777629600"
    );
    assert_eq!(child_workflow_name("x", t("1970-01-01T00:01:00Z")), "x-60");
}

#[test]
fn history_table() {
    let run = |name: &str, phase, finished: Option<&str>| RunSummary {
        name: name.to_owned(),
        phase,
        finished_at: finished.map(t),
    };
    use RunPhase::*;
    let runs = vec![
        run("s1", Succeeded, Some("2026-05-01T01:00:00Z")),
        run("s2", Succeeded, Some("2026-05-01T02:00:00Z")),
        run("s3", Succeeded, Some("2026-05-01T03:00:00Z")),
        run("s4", Succeeded, Some("2026-05-01T04:00:00Z")),
        run("f1", Failed, Some("2026-05-01T01:30:00Z")),
        run("e1", Error, Some("2026-05-01T02:30:00Z")),
        run("r1", Running, None),
    ];
    let cases: Vec<(usize, usize, Vec<&str>)> = vec![
        (3, 1, vec!["s1", "f1"]),
        (4, 4, vec![]),
        (0, 0, vec!["s4", "s3", "s2", "s1", "e1", "f1"]),
        (1, 2, vec!["s3", "s2", "s1"]),
    ];
    for (ok, failed, expected) in cases {
        assert_eq!(
            history_to_delete(&runs, ok, failed),
            expected,
            "limits {ok}/{failed}"
        );
    }
}

fn cron_workflow(yaml: &str) -> CronWorkflow {
    serde_saphyr::from_str(yaml).expect("cron workflow yaml")
}

#[test]
fn spec_errors_table() {
    let base =
        "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata:\n  name: c\nspec:\n";
    let cases = [
        (
            "  timezone: UTC\n",
            "cronworkflow c: spec.schedules: expected at least one schedule",
        ),
        (
            "  schedules: []\n",
            "cronworkflow c: spec.schedules: expected at least one schedule",
        ),
        (
            "  schedule: '0 * * * *'\n  schedules: ['1 * * * *']\n",
            "cronworkflow c: spec.schedule and spec.schedules: set only one of them",
        ),
        (
            "  schedules: ['0 * * * *', '0 * * *']\n",
            "cronworkflow c: spec.schedules[1] \"0 * * *\": expected exactly 5 fields (minute hour day-of-month month day-of-week), found 4",
        ),
        (
            "  schedule: 'CRON_TZ=Nowhere/Town 0 * * * *'\n",
            "cronworkflow c: spec.schedule: unknown time zone \"Nowhere/Town\" (expected an IANA name such as America/Los_Angeles)",
        ),
        (
            "  schedule: '0 * * * *'\n  timezone: Moon/Base\n",
            "cronworkflow c: spec.timezone: unknown time zone \"Moon/Base\" (expected an IANA name such as America/Los_Angeles)",
        ),
        (
            "  schedule: '0 * * * *'\n  concurrencyPolicy: Sometimes\n",
            "cronworkflow c: spec.concurrencyPolicy: expected Allow, Forbid or Replace, found \"Sometimes\"",
        ),
        (
            "  schedule: '0 * * * *'\n  startingDeadlineSeconds: -5\n",
            "cronworkflow c: spec.startingDeadlineSeconds: must not be negative, found -5",
        ),
    ];
    for (spec_yaml, message) in cases {
        let cw = cron_workflow(&format!("{base}{spec_yaml}"));
        let got = CronSpec::from_cron_workflow(&cw, &TimeZone::UTC)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, Err(message.to_owned()), "{spec_yaml}");
    }
}

#[test]
fn spec_defaults_and_single_schedule() {
    let cw = cron_workflow(
        "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata:\n  name: c\nspec:\n  schedule: '0 9 * * *'\n  successfulJobsHistoryLimit: -1\n",
    );
    let s = CronSpec::from_cron_workflow(&cw, &zone("Europe/Berlin")).expect("valid");
    assert_eq!(s.concurrency_policy, ConcurrencyPolicy::Allow);
    assert!(!s.suspend);
    assert_eq!(s.starting_deadline_seconds, None);
    assert_eq!((s.successful_history_limit, s.failed_history_limit), (3, 1));
    // The default zone applies: 09:00 Berlin (CEST) is 07:00 UTC.
    assert_eq!(
        s.next_after(t("2026-05-01T00:00:00Z"), None),
        Some(t("2026-05-01T07:00:00Z"))
    );
}

#[test]
fn conformance_cron_workflow() {
    let path = format!(
        "{}/../shared/conformance/workflows/cron-workflow.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let cw = cron_workflow(&std::fs::read_to_string(path).expect("conformance manifest"));
    let s = CronSpec::from_cron_workflow(&cw, &TimeZone::UTC).expect("valid");
    assert_eq!(s.schedules.len(), 1);
    assert_eq!(s.schedules[0].source(), "* * * * *");
    assert_eq!(
        s.schedules[0].time_zone().iana_name(),
        Some("America/Los_Angeles")
    );
    assert_eq!(s.starting_deadline_seconds, Some(0));
    assert_eq!(s.concurrency_policy, ConcurrencyPolicy::Replace);
    assert!(!s.suspend);
    assert_eq!((s.successful_history_limit, s.failed_history_limit), (4, 4));
    let cases = [
        (
            Some("2026-05-01T10:00:00Z"),
            "2026-05-01T10:01:00Z",
            1,
            CronDecision::ReplaceThenRun {
                scheduled_time: t("2026-05-01T10:01:00Z"),
                active: 1,
            },
        ),
        (
            Some("2026-05-01T10:00:00Z"),
            "2026-05-01T10:01:02Z",
            0,
            CronDecision::Run {
                scheduled_time: t("2026-05-01T10:01:00Z"),
            },
        ),
        (
            Some("2026-05-01T10:01:00Z"),
            "2026-05-01T10:01:30Z",
            0,
            CronDecision::Wait {
                next: Some(t("2026-05-01T10:02:00Z")),
            },
        ),
        // startingDeadlineSeconds 0: after downtime the missed minute is skipped.
        (
            Some("2026-05-01T10:01:00Z"),
            "2026-05-01T10:07:30Z",
            0,
            CronDecision::Skip {
                scheduled_time: t("2026-05-01T10:07:00Z"),
                reason: SkipReason::MissedDeadline,
            },
        ),
    ];
    for (last, now, active, expected) in cases {
        assert_eq!(
            due(&s, last.map(t), t(now), active),
            expected,
            "{last:?} {now}"
        );
    }
    assert_eq!(
        child_workflow_name("hello-world", t("2026-05-01T10:01:00Z")),
        "hello-world-1777629660"
    );
}

#[test]
fn long_names_are_refused() {
    let name = "n".repeat(53);
    let cw = cron_workflow(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata:\n  name: {name}\nspec:\n  schedule: '0 * * * *'\n"
    ));
    assert_eq!(
        CronSpec::from_cron_workflow(&cw, &TimeZone::UTC).map(|_| ()),
        Err(CronError::NameTooLong {
            cron: name,
            len: 53
        })
    );
    let ok = cron_workflow(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata:\n  name: {}\nspec:\n  schedule: '0 * * * *'\n",
        "n".repeat(52)
    ));
    let s = CronSpec::from_cron_workflow(&ok, &TimeZone::UTC).expect("52 characters fit");
    let child = child_workflow_name(&"n".repeat(52), t("2026-05-01T10:00:00Z"));
    assert_eq!((s.schedules.len(), child.len()), (1, 63));
}

#[test]
fn schedule_strings() {
    let spec = |yaml: &str| {
        cron_workflow(&format!("apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata:\n  name: c\nspec:\n{yaml}")).spec
    };
    let cases = [
        ("  schedule: '0 * * * *'\n", "0 * * * *"),
        (
            "  schedule: '0 * * * *'\n  timezone: Europe/Berlin\n",
            "CRON_TZ=Europe/Berlin 0 * * * *",
        ),
        (
            "  schedules: ['0 1 * * *', '0 2 * * *']\n  timezone: UTC\n",
            "CRON_TZ=UTC 0 1 * * *,CRON_TZ=UTC 0 2 * * *",
        ),
        (
            "  schedules: ['0 1 * * *', '0 2 * * *']\n",
            "0 1 * * *,0 2 * * *",
        ),
    ];
    for (yaml, expected) in cases {
        assert_eq!(schedule_string(&spec(yaml)), expected, "{yaml}");
    }
}

/// robfig/cron's own DST vectors (America/New_York, 2012), which Argo inherits.
#[test]
fn robfig_dst_vectors() {
    let cases = [
        // 02:30 on the spring-forward day does not exist: next year's.
        (
            "30 2 11 3 *",
            "2012-03-11T05:00:00Z",
            "2013-03-11T06:30:00Z",
        ),
        ("0 * * * *", "2012-03-11T06:00:00Z", "2012-03-11T07:00:00Z"),
        ("0 1 * * *", "2012-03-11T06:00:00Z", "2012-03-12T05:00:00Z"),
        ("0 2 * * *", "2012-03-11T05:00:00Z", "2012-03-12T06:00:00Z"),
        (
            "30 2 4 11 *",
            "2012-11-04T04:00:00Z",
            "2012-11-04T07:30:00Z",
        ),
        (
            "30 1 4 11 *",
            "2012-11-04T05:45:00Z",
            "2012-11-04T06:30:00Z",
        ),
        ("0 * * * *", "2012-11-04T05:00:00Z", "2012-11-04T06:00:00Z"),
        ("0 * * * *", "2012-11-04T06:00:00Z", "2012-11-04T07:00:00Z"),
        ("0 1 * * *", "2012-11-04T05:00:00Z", "2012-11-04T06:00:00Z"),
        ("0 1 * * *", "2012-11-04T06:00:00Z", "2012-11-05T06:00:00Z"),
        ("0 2 * * *", "2012-11-04T04:00:00Z", "2012-11-04T07:00:00Z"),
        ("0 3 * * *", "2012-11-04T04:00:00Z", "2012-11-04T08:00:00Z"),
    ];
    for (text, after, expected) in cases {
        assert_eq!(
            upcoming(&sched(text, "America/New_York"), after, 1),
            vec![expected],
            "{text:?} after {after}"
        );
    }
}
