use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;

fn entry(v: Value) -> ResourceEventSource {
    serde_json::from_value(v).expect("resource entry")
}

fn spec(v: Value) -> ResourceSpec {
    ResourceSpec::parse("ns/es", "cm", &entry(v)).expect("valid spec")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn cm(name: &str, uid: &str, rv: &str, created: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "ev", "uid": uid, "resourceVersion": rv,
                     "creationTimestamp": created, "labels": {"app": "x"}},
        "data": {"k": "v", "n": 5}
    })
}

fn base() -> Value {
    json!({"version": "v1", "resource": "configmaps", "eventTypes": ["ADD", "UPDATE", "DELETE"]})
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

#[test]
fn label_filters_become_one_server_side_selector() {
    let s = spec(with(
        base(),
        "filter",
        json!({"labels": [
            {"key": "app", "value": "x"},
            {"key": "tier", "operation": "!=", "value": "db"},
            {"key": "env", "operation": "in", "value": "a, b"},
            {"key": "zone", "operation": "notin", "value": "c"},
            {"key": "has", "operation": "exists"},
            {"key": "gone", "operation": "!"},
            {"key": "n", "operation": "gt", "value": "3"},
            {"key": "m", "operation": "lt", "value": "9"},
            {"key": "k", "operation": "==", "value": "v"}
        ]}),
    ));
    assert_eq!(
        s.label_selector.as_deref(),
        Some("app=x,tier!=db,env in (a,b),zone notin (c),has,!gone,n>3,m<9,k=v")
    );
    assert_eq!(s.gvr(), "v1/configmaps");
    assert_eq!(spec(base()).label_selector, None);
    let apps = spec(
        json!({"group": "apps", "version": "v1", "resource": "deployments", "eventTypes": ["ADD"]}),
    );
    assert_eq!(apps.gvr(), "apps/v1/deployments");
    assert_eq!(apps.event_types, BTreeSet::from([EventType::Add]));
}

#[test]
fn invalid_entries_name_the_object_field_and_expectation() {
    let cases = [
        (
            json!({"resource": "configmaps", "eventTypes": ["ADD"]}),
            "spec.resource.cm.version: required",
        ),
        (
            json!({"version": "v1", "eventTypes": ["ADD"]}),
            "spec.resource.cm.resource: required",
        ),
        (
            json!({"version": "v1", "resource": "configmaps"}),
            "spec.resource.cm.eventTypes: required",
        ),
        (
            json!({"version": "v1", "resource": "configmaps", "eventTypes": []}),
            "eventTypes: required",
        ),
        (
            json!({"version": "v1", "resource": "configmaps", "eventTypes": ["ADD", "MODIFY"]}),
            "spec.resource.cm.eventTypes[1]: \"MODIFY\": expected ADD, UPDATE or DELETE",
        ),
        (
            with(
                base(),
                "filter",
                json!({"labels": [{"key": "a", "operation": "like", "value": "b"}]}),
            ),
            "spec.resource.cm.filter.labels[0]: operation: \"like\"",
        ),
        (
            with(
                base(),
                "filter",
                json!({"labels": [{"key": "", "value": "b"}]}),
            ),
            "filter.labels[0]: key: required",
        ),
        (
            with(
                base(),
                "filter",
                json!({"labels": [{"key": "a", "operation": "exists", "value": "b"}]}),
            ),
            "filter.labels[0]: value: must be empty",
        ),
        (
            with(
                base(),
                "filter",
                json!({"labels": [{"key": "a", "operation": "gt", "value": "b"}]}),
            ),
            "expected an integer",
        ),
        (
            with(
                base(),
                "filter",
                json!({"labels": [{"key": "a", "value": "b c"}]}),
            ),
            "is not a label value",
        ),
        (
            with(
                base(),
                "filter",
                json!({"fields": [{"key": "x", "operation": "in", "value": "b"}]}),
            ),
            "spec.resource.cm.filter.fields[0].operation: \"in\": expected =, == or !=",
        ),
        (
            with(base(), "filter", json!({"fields": [{"value": "b"}]})),
            "filter.fields[0].key: required",
        ),
        (
            with(
                base(),
                "filter",
                json!({"fields": [{"key": "x", "value": "(("}]}),
            ),
            "filter.fields[0].value: \"((\": not a valid regular expression",
        ),
        (
            with(base(), "filter", json!({"createdBy": "yesterday"})),
            "spec.resource.cm.filter.createdBy: \"yesterday\": expected an RFC 3339 time",
        ),
        (
            with(base(), "metadata", json!({"a": true})),
            "spec.resource.cm.metadata.a: expected a string",
        ),
    ];
    for (input, want) in cases {
        let got = ResourceSpec::parse("ns/es", "cm", &entry(input.clone()))
            .expect_err("invalid")
            .to_string();
        assert!(got.starts_with("eventsource ns/es: "), "{input}: {got}");
        assert!(got.contains(want), "{input}: {got}\n  wanted: {want}");
    }
}

fn kinds(changes: &[Change]) -> Vec<(EventType, String)> {
    changes
        .iter()
        .map(|c| (c.kind, meta_str(&c.object, "name").to_owned()))
        .collect()
}

#[test]
fn tracker_turns_watch_events_into_changes() {
    let mut t = Tracker::default();
    let t0 = "2026-12-06T10:00:00Z";
    assert!(t.observe(watcher::Event::Init).is_empty());
    let a = t.observe(watcher::Event::InitApply(cm("a", "u-a", "1", t0)));
    let b = t.observe(watcher::Event::InitApply(cm("b", "u-b", "2", t0)));
    let d = t.observe(watcher::Event::InitApply(cm("d", "u-d", "3", t0)));
    assert_eq!(
        [a, b, d]
            .concat()
            .iter()
            .map(|c| c.kind)
            .collect::<Vec<_>>(),
        vec![EventType::Add; 3]
    );
    assert!(t.observe(watcher::Event::InitDone).is_empty());

    // A change: UPDATE with the old object; the same version again: nothing.
    let up = t.observe(watcher::Event::Apply(cm("a", "u-a", "4", t0)));
    assert_eq!(kinds(&up), vec![(EventType::Update, "a".to_owned())]);
    assert_eq!(
        up[0].old.as_ref().map(|o| meta_str(o, "resourceVersion")),
        Some("1")
    );
    assert!(
        t.observe(watcher::Event::Apply(cm("a", "u-a", "4", t0)))
            .is_empty()
    );

    // Deleted, and recreated under its name (another uid).
    let del = t.observe(watcher::Event::Delete(cm("b", "u-b", "5", t0)));
    assert_eq!(kinds(&del), vec![(EventType::Delete, "b".to_owned())]);
    let re = t.observe(watcher::Event::Apply(cm("a", "u-a2", "6", t0)));
    assert_eq!(
        kinds(&re),
        vec![
            (EventType::Delete, "a".to_owned()),
            (EventType::Add, "a".to_owned())
        ]
    );

    // A relist after the watch expired: what changed, appeared and vanished meanwhile.
    assert!(t.observe(watcher::Event::Init).is_empty());
    let mut seen = Vec::new();
    seen.extend(t.observe(watcher::Event::InitApply(cm("a", "u-a2", "7", t0))));
    seen.extend(t.observe(watcher::Event::InitApply(cm("c", "u-c", "8", t0))));
    seen.extend(t.observe(watcher::Event::InitDone));
    assert_eq!(
        kinds(&seen),
        vec![
            (EventType::Update, "a".to_owned()),
            (EventType::Add, "c".to_owned()),
            (EventType::Delete, "d".to_owned()),
        ]
    );
}

fn change(kind: EventType, obj: Value) -> Change {
    Change {
        kind,
        object: obj,
        old: None,
    }
}

#[test]
fn filters_follow_argo() {
    let start = ts("2026-12-06T10:00:00.600Z");
    let now = ts("2026-12-06T11:00:00Z");
    let f = |filter: Value| spec(with(base(), "filter", filter));
    let old = cm("cm-old", "u1", "1", "2026-12-06T09:00:00Z");
    let same_second = cm("cm-new", "u2", "2", "2026-12-06T10:00:00Z");
    let new = cm("cm-new", "u2", "2", "2026-12-06T10:30:00Z");

    // Types not listed are not emitted.
    let adds = spec(json!({"version": "v1", "resource": "configmaps", "eventTypes": ["ADD"]}));
    assert!(passes(&adds, &change(EventType::Add, old.clone()), start, now).is_ok());
    let err = passes(&adds, &change(EventType::Delete, old.clone()), start, now).unwrap_err();
    assert!(err.contains("DELETE not watched"), "{err}");

    // Prefix.
    let p = f(json!({"prefix": "cm-n"}));
    assert!(passes(&p, &change(EventType::Add, new.clone()), start, now).is_ok());
    assert!(passes(&p, &change(EventType::Add, old.clone()), start, now).is_err());

    // afterStart: ADD by creation time (the start's second counts as after).
    let a = f(json!({"afterStart": true}));
    assert!(passes(&a, &change(EventType::Add, old.clone()), start, now).is_err());
    assert!(passes(&a, &change(EventType::Add, same_second), start, now).is_ok());
    assert!(passes(&a, &change(EventType::Add, new.clone()), start, now).is_ok());
    // UPDATE by the latest managed-fields time (Update or Apply).
    let mut updated = old.clone();
    updated["metadata"]["managedFields"] = json!([
        {"manager": "kubectl", "operation": "Update", "time": "2026-12-06T09:30:00Z"},
        {"manager": "cairn", "operation": "Apply", "time": "2026-12-06T10:10:00Z"}
    ]);
    assert!(passes(&a, &change(EventType::Update, updated.clone()), start, now).is_ok());
    assert_eq!(
        change_time(&change(EventType::Update, updated), now),
        ts("2026-12-06T10:10:00Z")
    );
    assert!(passes(&a, &change(EventType::Update, old.clone()), start, now).is_err());
    // DELETE by deletionTimestamp, else now.
    assert!(passes(&a, &change(EventType::Delete, old.clone()), start, now).is_ok());
    let mut deleting = old.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-06T09:59:00Z");
    assert!(passes(&a, &change(EventType::Delete, deleting), start, now).is_err());

    // createdBy: created at or before.
    let c = f(json!({"createdBy": "2026-12-06T10:00:00Z"}));
    assert!(passes(&c, &change(EventType::Add, old.clone()), start, now).is_ok());
    let err = passes(&c, &change(EventType::Add, new.clone()), start, now).unwrap_err();
    assert!(err.contains("after createdBy"), "{err}");

    // fields: regex search on the field's text; != negates; missing never passes.
    let eq = f(json!({"fields": [{"key": "metadata.name", "operation": "==", "value": "^cm-o"}]}));
    assert!(passes(&eq, &change(EventType::Add, old.clone()), start, now).is_ok());
    assert!(passes(&eq, &change(EventType::Add, new.clone()), start, now).is_err());
    let ne = f(json!({"fields": [{"key": "metadata.name", "operation": "!=", "value": "old"}]}));
    assert!(passes(&ne, &change(EventType::Add, old.clone()), start, now).is_err());
    assert!(passes(&ne, &change(EventType::Add, new.clone()), start, now).is_ok());
    let default_op = f(json!({"fields": [{"key": "data.k", "value": "v"}]}));
    assert!(
        passes(
            &default_op,
            &change(EventType::Add, old.clone()),
            start,
            now
        )
        .is_ok()
    );
    let number = f(json!({"fields": [{"key": "data.n", "value": "^5$"}]}));
    assert!(passes(&number, &change(EventType::Add, old.clone()), start, now).is_ok());
    let missing = f(json!({"fields": [{"key": "data.nope", "operation": "!=", "value": "x"}]}));
    let err = passes(&missing, &change(EventType::Add, old.clone()), start, now).unwrap_err();
    assert!(err.contains("missing"), "{err}");
    // All requirements must hold.
    let both = f(json!({"prefix": "cm-", "fields": [
        {"key": "metadata.labels.app", "value": "x"}, {"key": "data.k", "value": "w"}]}));
    assert!(passes(&both, &change(EventType::Add, old), start, now).is_err());
}

#[test]
fn events_have_argo_shape_and_ids_from_the_change() {
    let s = spec(with(base(), "metadata", json!({"team": "ml"})));
    let now = ts("2026-12-06T11:00:00Z");
    let update = Change {
        kind: EventType::Update,
        object: cm("a", "u-a", "7", "2026-12-06T10:00:00Z"),
        old: Some(cm("a", "u-a", "6", "2026-12-06T10:00:00Z")),
    };
    let e = resource_event("ev", "es", "cm", &s, &update, now);
    assert_eq!(e.context.id, event_id("ev", "es", "cm", "UPDATE/u-a/7"));
    assert_eq!(e, resource_event("ev", "es", "cm", &s, &update, now));
    assert_eq!(e.context.type_, "resource");
    assert_eq!(e.context.source, "es");
    assert_eq!(e.context.subject, "cm");
    assert_eq!(e.context.time, ts("2026-12-06T10:00:00Z"));
    assert_eq!(e.data["type"], "UPDATE");
    assert_eq!(e.data["group"], "");
    assert_eq!(e.data["version"], "v1");
    assert_eq!(e.data["resource"], "configmaps");
    assert_eq!(e.data["body"]["metadata"]["resourceVersion"], "7");
    assert_eq!(e.data["oldBody"]["metadata"]["resourceVersion"], "6");
    assert_eq!(e.data["metadata"], json!({"team": "ml"}));
    let add = change(EventType::Add, cm("a", "u-a", "7", "2026-12-06T10:00:00Z"));
    let added = resource_event("ev", "es", "cm", &spec(base()), &add, now);
    assert_eq!(added.data["oldBody"], Value::Null);
    assert!(added.data.get("metadata").is_none());
    assert_ne!(added.context.id, e.context.id);
}

#[tokio::test(start_paused = true)]
async fn process_emits_what_passes_and_retries_failed_publishes() {
    let s = spec(with(
        json!({"version": "v1", "resource": "configmaps", "eventTypes": ["ADD", "UPDATE"]}),
        "filter",
        json!({"afterStart": true}),
    ));
    let start = ts("2026-12-06T10:00:00Z");
    let events = futures::stream::iter(vec![
        Ok(watcher::Event::Init),
        Ok(watcher::Event::InitApply(cm(
            "before",
            "u1",
            "1",
            "2026-12-06T09:00:00Z",
        ))),
        Ok(watcher::Event::InitDone),
        Err(watcher::Error::NoResourceVersion),
        Ok(watcher::Event::Apply(cm(
            "after",
            "u2",
            "2",
            "2026-12-06T10:05:00Z",
        ))),
        Ok(watcher::Event::Apply(cm(
            "after",
            "u2",
            "2",
            "2026-12-06T10:05:00Z",
        ))),
        Ok(watcher::Event::Delete(cm(
            "after",
            "u2",
            "3",
            "2026-12-06T10:05:00Z",
        ))),
    ]);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(0usize));
    let (seen2, attempts2) = (seen.clone(), attempts.clone());
    process(events, "ev", "es", "cm", &s, start, move |event: Event| {
        let (seen, attempts) = (seen2.clone(), attempts2.clone());
        async move {
            let n = {
                let mut a = attempts.lock().expect("lock");
                *a += 1;
                *a
            };
            if n == 1 {
                return Err(SourceError::Publish {
                    namespace: "ev".to_owned(),
                    event_source: "es".to_owned(),
                    event_name: "cm".to_owned(),
                    source: crate::events::bus::BusError::UnknownConsumer("test".to_owned()),
                });
            }
            seen.lock().expect("lock").push(event);
            Ok(n as u64)
        }
    })
    .await;
    let seen = seen.lock().expect("lock");
    // "before" predates the start; the repeat has the same version; DELETE is not watched.
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].data["type"], "ADD");
    assert_eq!(seen[0].data["body"]["metadata"]["name"], "after");
    assert_eq!(*attempts.lock().expect("lock"), 2);
}
