use std::collections::BTreeSet;

use serde_json::json;

use super::*;

fn deps(names: &[&str]) -> Vec<EventDependency> {
    names
        .iter()
        .map(|n| EventDependency {
            name: (*n).to_owned(),
            ..Default::default()
        })
        .collect()
}

fn parse(text: Option<&str>) -> Result<Condition, ConditionsError> {
    parse_conditions(
        "ev/s",
        "trig",
        text,
        &deps(&["dep01", "dep02", "dep-03", "dep.04"]),
    )
}

fn holds(text: Option<&str>, satisfied: &[&str]) -> bool {
    let set: BTreeSet<&str> = satisfied.iter().copied().collect();
    parse(text).expect("parses").eval(&|d| set.contains(d))
}

#[test]
fn conditions_evaluate_over_satisfied_dependencies() {
    let cases: &[(Option<&str>, &[&str], bool)] = &[
        (Some("dep02"), &["dep02"], true),
        (Some("dep02"), &["dep01"], false),
        (Some("dep02 && dep-03"), &["dep02"], false),
        (Some("dep02 && dep-03"), &["dep02", "dep-03"], true),
        (
            Some("(dep01 || dep02) && dep-03"),
            &["dep01", "dep-03"],
            true,
        ),
        (
            Some("(dep01 || dep02) && dep-03"),
            &["dep01", "dep02"],
            false,
        ),
        // && binds tighter than ||.
        (Some("dep01 || dep02 && dep-03"), &["dep01"], true),
        (Some("dep01 || dep02 && dep-03"), &["dep02"], false),
        (Some("dep01&&dep.04"), &["dep01", "dep.04"], true),
        (Some("((dep01))"), &["dep01"], true),
        // No conditions: all dependencies.
        (None, &["dep01", "dep02", "dep-03"], false),
        (None, &["dep01", "dep02", "dep-03", "dep.04"], true),
        (Some("  "), &["dep01", "dep02", "dep-03", "dep.04"], true),
    ];
    for (text, sat, want) in cases {
        assert_eq!(holds(*text, sat), *want, "{text:?} over {sat:?}");
    }
}

#[test]
fn bad_conditions_name_sensor_trigger_field_and_column() {
    let cases = [
        "dep01 &&",
        "dep01 & dep02",
        "dep01 || (dep02",
        "dep01 dep02",
        "!dep01",
        "dep01 && nope",
        ")",
        "dep01 ||| dep02",
    ];
    let errs: Vec<String> = cases
        .iter()
        .map(|c| parse(Some(c)).expect_err(c).to_string())
        .collect();
    insta::assert_yaml_snapshot!(errs);
    let none = parse_conditions("ev/s", "trig", None, &[]).expect_err("no deps");
    assert_eq!(
        none.to_string(),
        "sensor ev/s: trigger trig: template.conditions: the sensor has no dependencies (in \"\")"
    );
    let deep = format!("{}dep01{}", "(".repeat(100), ")".repeat(100));
    assert!(parse(Some(&deep)).is_err());
}

fn resets(v: serde_json::Value) -> Result<Resets, ConditionsError> {
    let r: Vec<ConditionsResetCriteria> = serde_json::from_value(v).expect("resets");
    parse_resets("ev/s", "trig", &r)
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

#[test]
fn resets_follow_cron_in_the_zone() {
    // 23:59 in Los Angeles is 07:59 UTC (PST, UTC-8) in January.
    let r = resets(json!([{"byTime": {"cron": "59 23 * * *", "timezone": "America/Los_Angeles"}}]))
        .expect("parses");
    assert_eq!(
        r.reset_between(ts("2026-01-10T12:00:00Z"), ts("2026-01-11T07:58:59Z")),
        None
    );
    assert_eq!(
        r.reset_between(ts("2026-01-10T12:00:00Z"), ts("2026-01-11T07:59:00Z")),
        Some(ts("2026-01-11T07:59:00Z"))
    );
    assert_eq!(
        r.next_after(ts("2026-01-10T12:00:00Z")),
        Some(ts("2026-01-11T07:59:00Z"))
    );
    // UTC by default; two schedules: the latest reset wins.
    let r2 = resets(json!([{"byTime": {"cron": "0 * * * *"}}, {"byTime": {"cron": "30 * * * *"}}, {"other": 1}]))
        .expect("parses");
    assert_eq!(
        r2.reset_between(ts("2026-01-10T12:10:00Z"), ts("2026-01-10T13:40:00Z")),
        Some(ts("2026-01-10T13:30:00Z"))
    );
    assert_eq!(
        r2.reset_between(ts("2026-01-10T12:00:00Z"), ts("2026-01-10T12:00:00Z")),
        None,
        "a reset at the collection instant does not drop it"
    );
    let errs: Vec<String> = [
        json!([{"byTime": {"cron": "61 * * * *"}}]),
        json!([{"byTime": {"cron": ""}}]),
        json!([{"byTime": {"cron": "0 0 * * *", "timezone": "Mars/Base"}}]),
    ]
    .into_iter()
    .map(|v| resets(v).expect_err("invalid").to_string())
    .collect();
    insta::assert_yaml_snapshot!(errs);
}

#[test]
fn pending_fires_once_and_resets() {
    let d = deps(&["a", "b", "c"]);
    let cond = parse_conditions("ev/s", "t", Some("a && (b || c)"), &d).expect("parses");
    let none = Resets::default();
    let mut p = Pending::default();
    assert_eq!(
        p.offer(&cond, &none, "a", "e1", ts("2026-01-01T00:00:00Z")),
        None
    );
    // A newer event replaces the older one for the same dependency.
    assert_eq!(
        p.offer(&cond, &none, "a", "e2", ts("2026-01-01T00:01:00Z")),
        None
    );
    // Dependencies the condition does not name are ignored.
    let other = parse_conditions("ev/s", "t", Some("a"), &d).expect("parses");
    let mut q = Pending::default();
    assert_eq!(
        q.offer(&other, &none, "b", "x", ts("2026-01-01T00:00:00Z")),
        None
    );
    assert!(q.events().is_empty());
    let fired = p
        .offer(&cond, &none, "c", "e3", ts("2026-01-01T00:02:00Z"))
        .expect("fires");
    assert_eq!(
        fired,
        BTreeMap::from([("a".into(), "e2".into()), ("c".into(), "e3".into())])
    );
    assert!(p.events().is_empty(), "cleared after firing");

    // With a daily reset at midnight UTC, yesterday's `a` does not pair with today's `b`.
    let daily = resets(json!([{"byTime": {"cron": "0 0 * * *"}}])).expect("parses");
    let mut r = Pending::default();
    assert_eq!(
        r.offer(&cond, &daily, "a", "y1", ts("2026-01-01T23:00:00Z")),
        None
    );
    assert_eq!(
        r.offer(&cond, &daily, "b", "y2", ts("2026-01-02T01:00:00Z")),
        None
    );
    assert_eq!(
        r.events().keys().collect::<Vec<_>>(),
        vec!["b"],
        "a was dropped at midnight"
    );
    let fired = r
        .offer(&cond, &daily, "a", "y3", ts("2026-01-02T02:00:00Z"))
        .expect("fires");
    assert_eq!(fired.get("a").map(String::as_str), Some("y3"));
}
