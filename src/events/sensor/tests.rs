use serde_json::{Value, json};

use super::*;
use crate::events::bus::Topic;

fn sensor(v: Value) -> CompiledSensor {
    let mut s: Sensor = serde_json::from_value(v).expect("sensor");
    s.metadata.namespace = Some("ns".into());
    s.metadata.name = Some("s".into());
    compile(&s)
}

fn two_deps(conditions: Option<&str>) -> CompiledSensor {
    sensor(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {},
        "spec": {
            "dependencies": [
                {"name": "a", "eventSourceName": "w", "eventName": "a",
                 "filters": {"data": [{"path": "body.ok", "type": "bool", "value": ["true"]}]}},
                {"name": "b", "eventSourceName": "w", "eventName": "b"}
            ],
            "triggers": [{"template": {"name": "t", "conditions": conditions, "log": {}}}]
        }
    }))
}

fn delivery(seq: u64, name: &str, id: &str, body: Value) -> Delivery {
    Delivery {
        seq,
        attempt: 1,
        topic: Topic::new("ns", "w", name),
        event: Event::test_webhook("w", name, id, "2026-01-01T00:00:00Z", body),
    }
}

fn now() -> Timestamp {
    "2026-01-01T00:00:01Z".parse().expect("now")
}

#[test]
fn and_collects_then_fires_once_with_both_events() {
    let s = two_deps(Some("a && b"));
    assert!(s.dependency_problems.is_empty() && s.trigger_problems.is_empty());
    assert_eq!(s.dependencies["a"].consumer, "ns__s__a");
    let mut st = SensorState::default();
    let out = step(
        &s,
        &mut st,
        "a",
        &delivery(1, "a", "e1", json!({"ok": true})),
        now(),
    );
    assert!(out.fires.is_empty() && out.unmatched.is_none() && !out.duplicate);
    assert_eq!(out.ack, 1);
    assert_eq!(st.pending["t"].len(), 1);
    let out = step(&s, &mut st, "b", &delivery(2, "b", "e2", json!({})), now());
    assert_eq!(out.fires.len(), 1);
    let fired = &out.fires[0];
    assert_eq!(fired.trigger, "t");
    assert_eq!(
        fired.event_ids(),
        BTreeMap::from([
            ("a".to_owned(), "e1".to_owned()),
            ("b".to_owned(), "e2".to_owned())
        ])
    );
    assert_eq!(st.outbox, out.fires);
    assert!(st.pending["t"].is_empty());
}

#[test]
fn a_redelivery_is_not_counted_twice() {
    let s = two_deps(Some("a && b"));
    let mut st = SensorState::default();
    let d = delivery(1, "a", "e1", json!({"ok": true}));
    step(&s, &mut st, "a", &d, now());
    let before = st.clone();
    let again = step(&s, &mut st, "a", &Delivery { attempt: 2, ..d }, now());
    assert!(again.duplicate && again.fires.is_empty() && again.unmatched.is_none());
    assert_eq!(again.ack, 1);
    assert_eq!(st, before);
    // After a firing the same event coming back does not start a new collection either.
    step(&s, &mut st, "b", &delivery(2, "b", "e2", json!({})), now());
    let replay = step(&s, &mut st, "b", &delivery(2, "b", "e2", json!({})), now());
    assert!(replay.duplicate);
    assert!(st.pending["t"].is_empty());
    assert_eq!(st.outbox.len(), 1);
}

#[test]
fn a_filter_mismatch_is_recorded_with_its_reason() {
    let s = two_deps(None);
    let mut st = SensorState::default();
    let out = step(
        &s,
        &mut st,
        "a",
        &delivery(7, "a", "e1", json!({"ok": false})),
        now(),
    );
    let u = out.unmatched.expect("unmatched");
    assert_eq!((u.dependency.as_str(), u.event_id.as_str()), ("a", "e1"));
    assert!(!u.reason.is_empty());
    assert!(out.fires.is_empty());
    assert_eq!(out.ack, 7);
    assert!(st.pending.get("t").is_none_or(BTreeMap::is_empty));
    // It is remembered as processed all the same.
    assert!(
        step(
            &s,
            &mut st,
            "a",
            &delivery(7, "a", "e1", json!({"ok": false})),
            now()
        )
        .duplicate
    );
}

#[test]
fn or_fires_on_either_and_newer_events_replace_older() {
    let s = two_deps(Some("a || b"));
    let mut st = SensorState::default();
    let out = step(&s, &mut st, "b", &delivery(1, "b", "e1", json!({})), now());
    assert_eq!(out.fires.len(), 1);
    assert_eq!(out.fires[0].event_ids().len(), 1);

    let s = two_deps(Some("a && b"));
    let mut st = SensorState::default();
    step(
        &s,
        &mut st,
        "a",
        &delivery(1, "a", "old", json!({"ok": true})),
        now(),
    );
    step(
        &s,
        &mut st,
        "a",
        &delivery(2, "a", "new", json!({"ok": true})),
        now(),
    );
    let out = step(&s, &mut st, "b", &delivery(3, "b", "e3", json!({})), now());
    assert_eq!(out.fires[0].event_ids()["a"], "new");
}

#[test]
fn resets_forget_collected_events() {
    let s = sensor(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {},
        "spec": {
            "dependencies": [{"name": "a", "eventSourceName": "w", "eventName": "a"},
                             {"name": "b", "eventSourceName": "w", "eventName": "b"}],
            "triggers": [{"template": {"name": "t", "conditions": "a && b", "log": {},
                          "conditionsReset": [{"byTime": {"cron": "0 * * * *"}}]}}]
        }
    }));
    let mut st = SensorState::default();
    step(
        &s,
        &mut st,
        "a",
        &delivery(1, "a", "e1", json!({})),
        "2026-01-01T00:10:00Z".parse().expect("t"),
    );
    let out = step(
        &s,
        &mut st,
        "b",
        &delivery(2, "b", "e2", json!({})),
        "2026-01-01T01:10:00Z".parse().expect("t"),
    );
    assert!(
        out.fires.is_empty(),
        "a was collected before the 01:00 reset"
    );
    assert_eq!(st.pending["t"].keys().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn compile_reports_problems_and_keeps_what_runs() {
    let s = sensor(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {},
        "spec": {
            "dependencies": [{"name": "a", "eventSourceName": "w", "eventName": "a"},
                             {"name": "a", "eventSourceName": "w", "eventName": "x"},
                             {"name": "c"}],
            "triggers": [
                {"template": {"name": "ok", "log": {}}, "retryStrategy": {"steps": 3}},
                {"template": {"name": "kafka", "kafka": {"url": "k"}}},
                {"template": {"name": "bad-cond", "conditions": "a && zz", "log": {}}},
                {"template": {"name": "bad-retry", "log": {}}, "retryStrategy": {"duration": "soon"}},
                {"template": {"name": "ok", "log": {}}}
            ]
        }
    }));
    assert_eq!(s.dependencies.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(
        s.dependency_problems.len(),
        2,
        "{:?}",
        s.dependency_problems
    );
    assert!(s.dependency_problems[0].contains("spec.dependencies[1].name"));
    assert!(s.dependency_problems[1].contains("spec.dependencies[2]"));
    assert_eq!(
        s.triggers
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["ok"]
    );
    assert_eq!(s.triggers[0].backoff.steps, 3);
    let p = s.trigger_problems.join("\n");
    assert!(
        p.contains("template.kafka") && p.contains("not supported"),
        "{p}"
    );
    assert!(p.contains("unknown dependency \"zz\""), "{p}");
    assert!(p.contains("retryStrategy.duration"), "{p}");
    assert!(
        p.contains("spec.triggers[4].template.name") && p.contains("defined twice"),
        "{p}"
    );
    for line in &s.trigger_problems {
        assert!(
            line.starts_with("sensor ns/s: ") || line.contains("sensor ns/s"),
            "{line}"
        );
    }
}

#[test]
fn state_of_removed_triggers_and_dependencies_is_dropped() {
    let s = two_deps(Some("a && b"));
    let mut st = SensorState::default();
    step(
        &s,
        &mut st,
        "a",
        &delivery(1, "a", "e1", json!({"ok": true})),
        now(),
    );
    st.outbox.push(Fire {
        trigger: "gone".into(),
        events: BTreeMap::new(),
    });
    let smaller = sensor(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Sensor", "metadata": {},
        "spec": {"dependencies": [{"name": "b", "eventSourceName": "w", "eventName": "b"}],
                 "triggers": [{"template": {"name": "t", "log": {}}}]}
    }));
    st.retain_known(&smaller);
    assert!(st.pending["t"].is_empty());
    assert!(st.seen.is_empty());
    assert!(st.outbox.is_empty());
    // The state persists as JSON and reads back equal.
    let back: SensorState =
        serde_json::from_slice(&serde_json::to_vec(&st).expect("ser")).expect("de");
    assert_eq!(back, st);
}
