use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::*;
use crate::workflow::types::Workflow;

fn ts(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("valid timestamp")
}

fn raw(v: serde_json::Value) -> types::RetryStrategy {
    serde_json::from_value(v).expect("retryStrategy json")
}

fn strategy(v: serde_json::Value) -> RetryStrategy {
    RetryStrategy::parse("t", &raw(v)).expect("valid strategy")
}

/// Test builder: an attempt that ran from `start` to `end` (seconds after the epoch of `ts`).
fn attempt(phase: AttemptPhase, start: i64, end: i64, message: &str) -> Attempt {
    Attempt {
        phase,
        exit_code: (phase == AttemptPhase::Failed).then_some(1),
        message: message.to_owned(),
        started_at: ts(start),
        finished_at: ts(end),
    }
}

fn failed(n: usize) -> Vec<Attempt> {
    (0..n)
        .map(|i| {
            let i = i64::try_from(i).expect("small");
            attempt(AttemptPhase::Failed, i * 10, i * 10 + 5, "exit code 1")
        })
        .collect()
}

fn input(now: i64, m: &TransientMatcher) -> DecideInput<'_> {
    DecideInput {
        now: ts(now),
        workflow_deadline: None,
        shutdown: None,
        expression: None,
        transient: m,
    }
}

fn give_up(phase: AttemptPhase, reason: &str) -> RetryDecision {
    RetryDecision::GiveUp {
        phase,
        reason: reason.to_owned(),
    }
}

#[test]
fn parse_table() {
    let d = SignedDuration::from_secs;
    let cases: Vec<(serde_json::Value, Result<RetryStrategy, &str>)> = vec![
        (
            json!({}),
            Ok(RetryStrategy {
                limit: None,
                policy: RetryPolicy::OnFailure,
                backoff: None,
                has_expression: false,
            }),
        ),
        (
            json!({"limit": 3, "retryPolicy": "Always"}),
            Ok(RetryStrategy {
                limit: Some(3),
                policy: RetryPolicy::Always,
                backoff: None,
                has_expression: false,
            }),
        ),
        (
            json!({"limit": "10", "retryPolicy": "OnError", "expression": "lastRetry.exitCode > 1"}),
            Ok(RetryStrategy {
                limit: Some(10),
                policy: RetryPolicy::OnError,
                backoff: None,
                has_expression: true,
            }),
        ),
        (
            json!({"retryPolicy": "OnTransientError", "affinity": {"nodeAntiAffinity": {}}}),
            Ok(RetryStrategy {
                limit: None,
                policy: RetryPolicy::OnTransientError,
                backoff: None,
                has_expression: false,
            }),
        ),
        (
            json!({"limit": 2, "backoff": {"duration": "1m", "factor": 2, "maxDuration": "1h", "cap": 300}}),
            Ok(RetryStrategy {
                limit: Some(2),
                policy: RetryPolicy::OnFailure,
                backoff: Some(Backoff {
                    duration: d(60),
                    factor: Some(2),
                    max_duration: Some(d(3600)),
                    cap: Some(d(300)),
                }),
                has_expression: false,
            }),
        ),
        (
            json!({"backoff": {"duration": 5, "factor": "3"}}),
            Ok(RetryStrategy {
                limit: None,
                policy: RetryPolicy::OnFailure,
                backoff: Some(Backoff {
                    duration: d(5),
                    factor: Some(3),
                    max_duration: None,
                    cap: None,
                }),
                has_expression: false,
            }),
        ),
        (
            json!({"limit": "ten"}),
            Err(
                "template t: retryStrategy.limit: expected an integer or a string holding one, found \"ten\"",
            ),
        ),
        (
            json!({"limit": true}),
            Err(
                "template t: retryStrategy.limit: expected an integer or a string holding one, found true",
            ),
        ),
        (
            json!({"retryPolicy": "Sometimes"}),
            Err(
                "template t: retryStrategy.retryPolicy: expected Always, OnFailure, OnError or OnTransientError, found \"Sometimes\"",
            ),
        ),
        (
            json!({"backoff": {"factor": 2}}),
            Err(
                "template t: retryStrategy.backoff.duration: a backoff needs a base duration (seconds or a duration such as \"10s\")",
            ),
        ),
        (
            json!({"backoff": {"duration": "10 s"}}),
            Err(
                "template t: retryStrategy.backoff.duration: invalid duration \"10 s\": unknown unit",
            ),
        ),
        (
            json!({"backoff": {"duration": "1", "factor": "x2"}}),
            Err(
                "template t: retryStrategy.backoff.factor: expected an integer or a string holding one, found \"x2\"",
            ),
        ),
        (
            json!({"backoff": {"duration": "1", "maxDuration": "soon"}}),
            Err(
                "template t: retryStrategy.backoff.maxDuration: invalid duration \"soon\": expected a number",
            ),
        ),
        (
            json!({"backoff": "1s"}),
            Err("template t: retryStrategy.backoff.: expected an object, found \"1s\""),
        ),
    ];
    for (input, expected) in cases {
        let got = RetryStrategy::parse("t", &raw(input.clone())).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "input {input}");
    }
}

#[test]
fn durations() {
    let ns = |n: i64| Ok(SignedDuration::from_nanos(n));
    let s = |n: i64| Ok(SignedDuration::from_secs(n));
    let cases: Vec<(&str, Result<SignedDuration, &str>)> = vec![
        ("1", s(1)),
        ("90", s(90)),
        ("-3", s(-3)),
        ("10s", s(10)),
        ("1m", s(60)),
        ("6h", s(21_600)),
        ("1h30m", s(5_400)),
        ("1.5h", s(5_400)),
        ("2h45m0.5s", ns(9_900_500_000_000)),
        ("300ms", ns(300_000_000)),
        ("1us", ns(1_000)),
        ("1µs", ns(1_000)),
        ("7ns", ns(7)),
        ("-1.5s", ns(-1_500_000_000)),
        ("+2s", s(2)),
        ("0", s(0)),
        (".5s", ns(500_000_000)),
        ("", Err("empty")),
        ("s", Err("expected a number")),
        ("1x", Err("unknown unit")),
        ("1.2.3s", Err("expected a number")),
        ("10 s", Err("unknown unit")),
        ("99999999999h", Err("overflow")),
    ];
    for (text, expected) in cases {
        let got = parse_string_to_duration(text).map_err(|e| match e {
            RetryError::Duration { problem, .. } => problem,
            other => panic!("unexpected error {other}"),
        });
        assert_eq!(got, expected, "input {text:?}");
    }
    // A template timeout is a Go duration: a bare number has no unit.
    assert!(parse_go_duration("30").is_err());
    assert_eq!(parse_go_duration("30s"), Ok(SignedDuration::from_secs(30)));
}

#[test]
fn policy_by_phase_table() {
    use AttemptPhase::{Error, Failed};
    let m = TransientMatcher::default();
    let transient = "Get \"https://api\": dial tcp: connect: connection refused";
    let cases = [
        ("Always", Failed, "exit code 1", true),
        ("Always", Error, "pod deleted", true),
        ("OnFailure", Failed, "exit code 1", true),
        ("OnFailure", Error, "pod deleted", false),
        ("", Failed, "exit code 1", true),
        ("", Error, "pod deleted", false),
        ("OnError", Failed, "exit code 1", false),
        ("OnError", Error, "pod deleted", true),
        ("OnTransientError", Error, transient, true),
        ("OnTransientError", Failed, transient, true),
        ("OnTransientError", Error, "pod deleted", false),
        ("OnTransientError", Failed, "exit code 1", false),
        (
            "OnTransientError",
            Error,
            "etcdserver: leader changed",
            true,
        ),
    ];
    for (policy, phase, message, retried) in cases {
        let s = strategy(json!({"limit": 3, "retryPolicy": policy}));
        let attempts = vec![attempt(phase, 0, 5, message)];
        let expected = if retried {
            RetryDecision::RetryNow
        } else {
            give_up(phase, message)
        };
        assert_eq!(
            decide(&s, &attempts, &input(6, &m)),
            expected,
            "{policy} {phase:?} {message}"
        );
    }
}

#[test]
fn limit_counts_retries_after_the_first_attempt() {
    let m = TransientMatcher::default();
    let no_more = give_up(AttemptPhase::Failed, "No more retries left");
    let cases = [
        (json!({"limit": 0}), 1, no_more.clone()),
        (json!({"limit": 1}), 1, RetryDecision::RetryNow),
        (json!({"limit": 1}), 2, no_more.clone()),
        (json!({"limit": "2"}), 2, RetryDecision::RetryNow),
        (json!({"limit": "2"}), 3, no_more.clone()),
        (json!({"limit": -1}), 1, no_more.clone()),
        (json!({}), 1, RetryDecision::RetryNow),
        (json!({}), 100, RetryDecision::RetryNow),
    ];
    for (raw_strategy, n, expected) in cases {
        let s = strategy(raw_strategy.clone());
        assert_eq!(
            decide(&s, &failed(n), &input(1_000, &m)),
            expected,
            "{raw_strategy} after {n} attempts"
        );
    }
}

#[test]
fn no_attempts_means_the_first_is_due() {
    let m = TransientMatcher::default();
    let s = strategy(json!({"limit": 0}));
    assert_eq!(decide(&s, &[], &input(0, &m)), RetryDecision::RetryNow);
}

#[test]
fn backoff_wait_schedule() {
    let b = |factor: Option<i64>, cap: Option<i64>| Backoff {
        duration: SignedDuration::from_secs(1),
        factor,
        max_duration: None,
        cap: cap.map(SignedDuration::from_secs),
    };
    let cases: Vec<(Backoff, Vec<i64>)> = vec![
        (b(Some(2), None), vec![1, 2, 4, 8, 16, 32]),
        (b(Some(2), Some(5)), vec![1, 2, 4, 5, 5, 5]),
        (b(Some(3), None), vec![1, 3, 9, 27, 81, 243]),
        (b(None, None), vec![1, 1, 1, 1, 1, 1]),
        (b(Some(0), None), vec![1, 1, 1, 1, 1, 1]),
        (b(Some(-2), None), vec![1, 1, 1, 1, 1, 1]),
        (b(Some(1), Some(0)), vec![0, 0, 0, 0, 0, 0]),
    ];
    for (backoff, expected) in cases {
        let got: Vec<i64> = (1..=6)
            .map(|n| backoff_wait(&backoff, n).as_secs())
            .collect();
        assert_eq!(got, expected, "{backoff:?}");
    }
    // Huge exponents saturate instead of overflowing.
    assert_eq!(backoff_wait(&b(Some(10), None), 200), SignedDuration::MAX);
}

#[test]
fn backoff_waits_from_the_last_attempts_end() {
    let m = TransientMatcher::default();
    let s = strategy(json!({"limit": 5, "backoff": {"duration": "10", "factor": 2}}));
    // Two attempts: the second ended at 15, so the wait is 10 * 2^1 = 20 → retry at 35.
    let attempts = failed(2);
    let at = RetryDecision::RetryAt {
        at: ts(35),
        wait: SignedDuration::from_secs(20),
    };
    let cases = [
        (15, at.clone()),
        (34, at),
        (35, RetryDecision::RetryNow),
        (99, RetryDecision::RetryNow),
    ];
    for (now, expected) in cases {
        assert_eq!(
            decide(&s, &attempts, &input(now, &m)),
            expected,
            "now {now}"
        );
    }
}

#[test]
fn backoff_without_limit_does_not_wait_as_in_argo() {
    let m = TransientMatcher::default();
    let s = strategy(json!({"backoff": {"duration": "1h"}}));
    assert_eq!(
        decide(&s, &failed(1), &input(6, &m)),
        RetryDecision::RetryNow
    );
}

#[test]
fn backoff_never_delays_a_give_up() {
    let m = TransientMatcher::default();
    let cases = [
        (
            json!({"limit": 1, "backoff": {"duration": "1h"}}),
            failed(2),
            give_up(AttemptPhase::Failed, "No more retries left"),
        ),
        (
            json!({"limit": 3, "retryPolicy": "OnError", "backoff": {"duration": "1h"}}),
            failed(1),
            give_up(AttemptPhase::Failed, "exit code 1"),
        ),
    ];
    for (raw_strategy, attempts, expected) in cases {
        let s = strategy(raw_strategy.clone());
        assert_eq!(
            decide(&s, &attempts, &input(6, &m)),
            expected,
            "{raw_strategy}"
        );
    }
}

#[test]
fn max_duration_table() {
    let m = TransientMatcher::default();
    // First attempt started at 0; maxDuration 60s → deadline 60.
    let s = strategy(
        json!({"limit": 10, "backoff": {"duration": "10", "factor": 2, "maxDuration": "1m"}}),
    );
    let cases = [
        // 1 attempt ended at 5: wait 10 → 15, within 60.
        (
            failed(1),
            5,
            RetryDecision::RetryAt {
                at: ts(15),
                wait: SignedDuration::from_secs(10),
            },
        ),
        // 3 attempts, last ended at 25: wait 40 → 65 > 60.
        (
            failed(3),
            25,
            give_up(
                AttemptPhase::Failed,
                "Backoff would exceed max duration limit",
            ),
        ),
        // Past the deadline itself.
        (
            failed(1),
            61,
            give_up(AttemptPhase::Failed, "Max duration limit exceeded"),
        ),
        // Exactly at the deadline is not past it; wait 10 from 5 → 15 already over → retry now.
        (failed(1), 60, RetryDecision::RetryNow),
    ];
    for (attempts, now, expected) in cases {
        assert_eq!(
            decide(&s, &attempts, &input(now, &m)),
            expected,
            "now {now}"
        );
    }
}

#[test]
fn shutdown_deadline_and_expression() {
    let m = TransientMatcher::default();
    let s = strategy(json!({"limit": 5, "expression": "lastRetry.exitCode == 1"}));
    let attempts = vec![attempt(AttemptPhase::Error, 0, 5, "pod deleted")];
    let s_always = strategy(json!({"limit": 5, "retryPolicy": "Always", "expression": "x"}));

    let mut stop = input(6, &m);
    stop.shutdown = Some("Stop");
    assert_eq!(
        decide(&s, &attempts, &stop),
        give_up(AttemptPhase::Error, "Stopped with strategy 'Stop'")
    );

    let mut late = input(6, &m);
    late.workflow_deadline = Some(ts(5));
    assert_eq!(
        decide(&s, &attempts, &late),
        give_up(
            AttemptPhase::Error,
            "retry exceeded workflow deadline 2027-01-15 08:00:05 +0000 UTC"
        )
    );
    let mut on_time = input(5, &m);
    on_time.workflow_deadline = Some(ts(5));
    on_time.expression = Some(true);
    assert_eq!(
        decide(&s_always, &attempts, &on_time),
        RetryDecision::RetryNow
    );

    let mut no = input(6, &m);
    no.expression = Some(false);
    assert_eq!(
        decide(&s_always, &attempts, &no),
        give_up(
            AttemptPhase::Error,
            "retryStrategy.expression evaluated to false"
        )
    );
    // The limit is checked before the expression, as in Argo.
    let s_one = strategy(json!({"limit": 0, "retryPolicy": "Always", "expression": "x"}));
    assert_eq!(
        decide(&s_one, &attempts, &no),
        give_up(AttemptPhase::Error, "No more retries left")
    );
}

#[test]
fn transient_matcher_table() {
    let cases = [
        (None, "connection reset by peer while reading", true),
        (
            None,
            "http2: server sent GOAWAY and closed the connection; x",
            true,
        ),
        (None, "exit code 1", false),
        (None, "upper: no more rows in this result set", true),
        (
            Some("quota"),
            "pods \"x\" is forbidden: exceeded quota",
            true,
        ),
        (Some("^OOM"), "OOMKilled", true),
        (Some("^OOM"), "killed: OOM", false),
        (Some("timeout$"), "read: timeout", true),
        (Some("timeout$"), "timeout reading", false),
        (Some("Evicted|Preempted"), "pod was Preempted", true),
        (Some("Evicted|Preempted"), "pod was deleted", false),
        (
            Some("node .* is shutting down"),
            "node worker-1 is shutting down",
            true,
        ),
        (Some("node .* is shutting down"), "node is up", false),
        (Some("a\\.b"), "xa.by", true),
        (Some("a\\.b"), "xaxby", false),
        (Some("a.b"), "xaxby", true),
        (Some("ab*c"), "ac", true),
        (Some("ab*c"), "abbbc", true),
        (Some(""), "anything", false),
    ];
    for (pattern, message, expected) in cases {
        let m = TransientMatcher::new(pattern).expect("supported pattern");
        assert_eq!(
            m.is_transient(message),
            expected,
            "{pattern:?} on {message:?}"
        );
    }
    for (pattern, construct) in [
        ("(a|b)", '('),
        ("a+", '+'),
        ("[0-9]", '['),
        ("*a", '*'),
        ("\\d", 'd'),
    ] {
        assert_eq!(
            TransientMatcher::new(Some(pattern)),
            Err(RetryError::Pattern {
                pattern: pattern.to_owned(),
                construct
            }),
            "{pattern}"
        );
    }
}

#[test]
fn deadlines_and_timeouts() {
    assert!(!deadline_exceeded(ts(0), 10, ts(10)));
    assert!(deadline_exceeded(ts(0), 10, ts(11)));
    assert!(deadline_exceeded(ts(0), 0, ts(1)));
    assert!(!deadline_exceeded(ts(0), i64::MAX, ts(1)));
    assert_eq!(template_timed_out(ts(0), "30s", ts(30)), Ok(false));
    assert_eq!(template_timed_out(ts(0), "30s", ts(31)), Ok(true));
    assert_eq!(template_timed_out(ts(0), "1m", ts(31)), Ok(false));
    assert_eq!(template_timed_out(ts(0), "", ts(1_000_000)), Ok(false));
    assert!(template_timed_out(ts(0), "30", ts(31)).is_err());
}

/// Runs a template whose every attempt fails instantly, starting each attempt as soon as
/// `decide` allows; returns the start times (seconds) and the final reason.
fn simulate(s: &RetryStrategy) -> (Vec<i64>, String) {
    let m = TransientMatcher::default();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut now = 0;
    let mut starts = Vec::new();
    loop {
        match decide(s, &attempts, &input(now, &m)) {
            RetryDecision::RetryNow => {
                starts.push(now);
                attempts.push(attempt(AttemptPhase::Failed, now, now, "exit code 1"));
            }
            RetryDecision::RetryAt { at, .. } => now = at.as_second() - ts(0).as_second(),
            RetryDecision::GiveUp { reason, .. } => return (starts, reason),
        }
        assert!(starts.len() < 50, "runaway retries");
    }
}

fn conformance_strategy(file: &str) -> RetryStrategy {
    let path = format!(
        "{}/../shared/conformance/workflows/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).expect("conformance manifest");
    let wf: Workflow = serde_saphyr::from_str(&text).expect("workflow yaml");
    let tmpl = &wf.spec.templates.as_ref().expect("templates")[0];
    let name = tmpl.name.clone();
    RetryStrategy::parse(&name, tmpl.retry_strategy.as_ref().expect("retryStrategy"))
        .expect("valid")
}

#[test]
fn conformance_retry_backoff_schedule() {
    let s = conformance_strategy("retry-backoff.yaml");
    // duration 1, factor 2, cap 5, maxDuration 1m, limit 10: 11 attempts in all.
    assert_eq!(
        simulate(&s),
        (
            vec![0, 1, 3, 7, 12, 17, 22, 27, 32, 37, 42],
            "No more retries left".to_owned()
        )
    );
    // Without the cap the doubling wait reaches past maxDuration first.
    let mut uncapped = s.clone();
    if let Some(b) = uncapped.backoff.as_mut() {
        b.cap = None;
    }
    assert_eq!(
        simulate(&uncapped),
        (
            vec![0, 1, 3, 7, 15, 31],
            "Backoff would exceed max duration limit".to_owned()
        )
    );
}

#[test]
fn conformance_retry_container() {
    let s = conformance_strategy("retry-container.yaml");
    assert_eq!(s.limit, Some(10));
    assert_eq!(s.policy, RetryPolicy::OnFailure);
    assert_eq!(
        simulate(&s),
        (vec![0; 11], "No more retries left".to_owned())
    );
    // An Error attempt (pod deleted) is not retried by the default policy.
    let m = TransientMatcher::default();
    let attempts = vec![attempt(AttemptPhase::Error, 0, 1, "pod deleted")];
    assert_eq!(
        decide(&s, &attempts, &input(2, &m)),
        give_up(AttemptPhase::Error, "pod deleted")
    );
}

#[test]
fn expression_scope_as_argo_builds_it() {
    assert!(expression_scope(&[]).is_empty());
    let mut attempts = failed(1);
    attempts.push(Attempt {
        phase: AttemptPhase::Error,
        exit_code: None,
        message: "pod deleted".to_owned(),
        started_at: ts(20),
        finished_at: Timestamp::from_millisecond(ts(22).as_millisecond() + 500).expect("valid"),
    });
    let scope = expression_scope(&attempts);
    let get = |k: &str| scope.get(k).map(String::as_str);
    assert_eq!(get("retries"), Some("1"));
    assert_eq!(get("lastRetry.exitCode"), Some("-1"));
    assert_eq!(get("lastRetry.status"), Some("Error"));
    assert_eq!(get("lastRetry.duration"), Some("2.5"));
    assert_eq!(get("lastRetry.message"), Some("pod deleted"));
    let first = expression_scope(&failed(1));
    assert_eq!(
        first.into_iter().collect::<Vec<_>>(),
        vec![
            ("lastRetry.duration".to_owned(), "5".to_owned()),
            ("lastRetry.exitCode".to_owned(), "1".to_owned()),
            ("lastRetry.message".to_owned(), "exit code 1".to_owned()),
            ("lastRetry.status".to_owned(), "Failed".to_owned()),
            ("retries".to_owned(), "0".to_owned()),
        ]
    );
}

#[test]
fn go_time_strings() {
    assert_eq!(go_time_string(ts(5)), "2027-01-15 08:00:05 +0000 UTC");
    let t = Timestamp::from_millisecond(ts(5).as_millisecond() + 250).expect("valid");
    assert_eq!(go_time_string(t), "2027-01-15 08:00:05.25 +0000 UTC");
}

#[test]
fn retry_execution_deadlines() {
    let with_max = strategy(json!({"limit": 3, "backoff": {"duration": "1", "maxDuration": "2m"}}));
    let without = strategy(json!({"limit": 3, "backoff": {"duration": "1"}}));
    let no_backoff = strategy(json!({"limit": 3}));
    assert_eq!(
        retry_execution_deadline(&with_max, &failed(2)),
        Some(ts(120))
    );
    assert_eq!(retry_execution_deadline(&with_max, &[]), None);
    assert_eq!(retry_execution_deadline(&without, &failed(2)), None);
    assert_eq!(retry_execution_deadline(&no_backoff, &failed(2)), None);
}

/// The whole decision log of retry-backoff.yaml when every attempt fails after 2 s: what the
/// controller would see at each wake-up.
#[test]
fn conformance_retry_backoff_timeline() {
    let s = conformance_strategy("retry-backoff.yaml");
    let m = TransientMatcher::default();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut now = 0;
    let mut log = Vec::new();
    for _ in 0..40 {
        let decision = decide(&s, &attempts, &input(now, &m));
        log.push(format!(
            "t={now:>3}s after {} attempts: {decision:?}",
            attempts.len()
        ));
        match decision {
            RetryDecision::RetryNow => {
                attempts.push(attempt(AttemptPhase::Failed, now, now + 2, "exit code 1"));
                now += 2;
            }
            RetryDecision::RetryAt { at, .. } => now = at.as_second() - ts(0).as_second(),
            RetryDecision::GiveUp { .. } => break,
        }
    }
    insta::assert_snapshot!(log.join("\n"));
}
