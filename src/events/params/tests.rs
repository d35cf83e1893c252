use serde_json::json;

use super::*;

fn events() -> BTreeMap<String, Event> {
    let e = Event::test_webhook(
        "webhook",
        "example",
        "id-1",
        "2026-01-02T03:04:05Z",
        json!({"dataset_uri": "s3://b/k", "n": 3, "flag": true, "obj": {"a": [1, 2]}, "nil": null, "msg": "hey!!"}),
    );
    BTreeMap::from([("dep".to_owned(), e)])
}

fn params(v: Value) -> Vec<TriggerParameter> {
    serde_json::from_value(v).expect("parameters")
}

fn wf() -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "recommender-pipeline-"},
        "spec": {"arguments": {"parameters": [{"name": "dataset_uri", "value": "hello world"}]}}
    })
}

/// (case, parameter, dest value expected at `spec.arguments.parameters.0.value`).
#[test]
fn parameters_resolve_and_insert_as_argo() {
    let dest = "spec.arguments.parameters.0.value";
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "dataKey",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.dataset_uri"}}),
            json!("s3://b/k"),
        ),
        (
            "number as string",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.n"}}),
            json!("3"),
        ),
        (
            "number raw",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.n", "useRawData": true}}),
            json!(3),
        ),
        (
            "bool raw",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.flag", "useRawData": true}}),
            json!(true),
        ),
        (
            "object as string",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.obj"}}),
            json!("{\"a\":[1,2]}"),
        ),
        (
            "object raw",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.obj", "useRawData": true}}),
            json!({"a": [1, 2]}),
        ),
        (
            "null raw",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.nil", "useRawData": true}}),
            Value::Null,
        ),
        (
            "null as string",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.nil"}}),
            json!("null"),
        ),
        (
            "string raw stays string",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.dataset_uri", "useRawData": true}}),
            json!("s3://b/k"),
        ),
        (
            "contextKey",
            json!({"src": {"dependencyName": "dep", "contextKey": "type"}}),
            json!("webhook"),
        ),
        (
            "data wins over context",
            json!({"src": {"dependencyName": "dep", "contextKey": "type", "dataKey": "body.msg"}}),
            json!("hey!!"),
        ),
        (
            "dataTemplate",
            json!({"src": {"dependencyName": "dep", "dataTemplate": "{{ .Input.body.dataset_uri | upper }}"}}),
            json!("S3://B/K"),
        ),
        (
            "contextTemplate",
            json!({"src": {"dependencyName": "dep", "contextTemplate": "{{ .Input.source }}/{{ .Input.subject }}"}}),
            json!("webhook/example"),
        ),
        (
            "template falls back to key",
            json!({"src": {"dependencyName": "dep", "dataTemplate": "{{ .Input.body.none }}", "dataKey": "body.msg"}}),
            json!("hey!!"),
        ),
        (
            "default when key missing",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.none", "value": "wow! a default value."}}),
            json!("wow! a default value."),
        ),
        (
            "default without keys",
            json!({"src": {"dependencyName": "dep", "value": "plain"}}),
            json!("plain"),
        ),
        (
            "default when dependency absent",
            json!({"src": {"dependencyName": "other", "dataKey": "body.msg", "value": "dflt"}}),
            json!("dflt"),
        ),
        (
            "absent dependency, no default: skipped",
            json!({"src": {"dependencyName": "other", "dataKey": "body.msg"}}),
            json!("hello world"),
        ),
        (
            "append",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.msg"}, "operation": "append"}),
            json!("hello worldhey!!"),
        ),
        (
            "prepend",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.msg"}, "operation": "prepend"}),
            json!("hey!!hello world"),
        ),
        (
            "append raw becomes string",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.n", "useRawData": true}, "operation": "append"}),
            json!("hello world3"),
        ),
        (
            "overwrite",
            json!({"src": {"dependencyName": "dep", "dataKey": "body.msg"}, "operation": "overwrite"}),
            json!("hey!!"),
        ),
    ];
    for (case, p, want) in cases {
        let mut doc = wf();
        let mut p = p;
        p["dest"] = json!(dest);
        apply(&mut doc, &params(json!([p])), &events(), "t", "parameters").expect(case);
        assert_eq!(gjson::get(&doc, dest), Some(want), "{case}");
    }
}

#[test]
fn whole_event_without_key() {
    let mut doc = json!({});
    apply(
        &mut doc,
        &params(json!([{"src": {"dependencyName": "dep"}, "dest": "payload"}])),
        &events(),
        "t",
        "parameters",
    )
    .expect("applies");
    let text = doc["payload"].as_str().expect("a string");
    let back: Value = serde_json::from_str(text).expect("JSON text");
    assert_eq!(back["context"]["id"], "id-1");
    assert_eq!(back["data"]["body"]["n"], 3);
}

#[test]
fn errors_name_trigger_and_index() {
    let cases = [
        json!([{"src": {"dependencyName": "dep", "dataKey": "body.msg"}, "dest": "a"},
               {"src": {"dependencyName": "dep", "dataKey": "body.none"}, "dest": "b"}]),
        json!([{"src": {"dependencyName": "dep", "dataTemplate": "{{ nosuch }}"}, "dest": "b"}]),
        json!([{"src": {"dependencyName": "dep", "dataKey": "body.msg"}, "dest": "a", "operation": "replace"}]),
        json!([{"src": {"dependencyName": "dep", "dataKey": "body.msg"}, "dest": "kind.x"}]),
        json!([{"src": {"dependencyName": "dep", "dataKey": "body.msg"}, "dest": "spec.arguments.parameters.x"}]),
        json!([{"dest": "a"}]),
        json!([{"src": {"dependencyName": "dep"}}]),
    ];
    let errs: Vec<String> = cases
        .into_iter()
        .map(|p| {
            let mut doc = wf();
            apply(
                &mut doc,
                &params(p),
                &events(),
                "wf-trigger",
                "template.argoWorkflow.parameters",
            )
            .expect_err("fails")
            .to_string()
        })
        .collect();
    insta::assert_yaml_snapshot!(errs);
}

#[test]
fn dest_paths_follow_sjson() {
    let cases: Vec<(Value, &str, Value)> = vec![
        (json!({}), "a.b", json!({"a": {"b": "v"}})),
        (json!({}), "a.0", json!({"a": ["v"]})),
        (json!({}), "a.2.b", json!({"a": [null, null, {"b": "v"}]})),
        (json!({"a": [1]}), "a.-1", json!({"a": [1, "v"]})),
        (json!({"a": [1, 2]}), "a.0", json!({"a": ["v", 2]})),
        (
            json!({}),
            "users.:2313.name",
            json!({"users": {"2313": {"name": "v"}}}),
        ),
        (json!({}), "fav\\.movie", json!({"fav.movie": "v"})),
        (Value::Null, "x", json!({"x": "v"})),
    ];
    for (mut doc, path, want) in cases {
        set(&mut doc, path, json!("v")).expect(path);
        assert_eq!(doc, want, "{path}");
    }
    let mut doc = json!({"a": [1]});
    assert!(set(&mut doc, "a.99999999", json!(1)).is_err());
    assert!(set(&mut doc, "a..b", json!(1)).is_err());
}

#[test]
fn workflow_names_are_deterministic_per_event_set() {
    let fired = |id: &str| BTreeMap::from([("dep".to_owned(), id.to_owned())]);
    let name = workflow_name(&wf(), "ev", "sensor", "trig", &fired("e1"));
    assert!(name.starts_with("recommender-pipeline-"), "{name}");
    assert_eq!(name.len(), "recommender-pipeline-".len() + SUFFIX_LEN);
    // Redelivery of the same event: the same name.
    assert_eq!(
        name,
        workflow_name(&wf(), "ev", "sensor", "trig", &fired("e1"))
    );
    for other in [
        workflow_name(&wf(), "ev", "sensor", "trig", &fired("e2")),
        workflow_name(&wf(), "ev2", "sensor", "trig", &fired("e1")),
        workflow_name(&wf(), "ev", "sensor2", "trig", &fired("e1")),
        workflow_name(&wf(), "ev", "sensor", "trig2", &fired("e1")),
    ] {
        assert_ne!(name, other);
    }
    let long = json!({"metadata": {"generateName": "x".repeat(80)}});
    let n = workflow_name(&long, "ev", "s", "t", &fired("e1"));
    assert_eq!(n.len(), 63);
    let fixed = json!({"metadata": {"name": "fixed"}});
    assert_eq!(workflow_name(&fixed, "ev", "s", "t", &fired("e1")), "fixed");
    let bare = json!({"metadata": {}});
    assert!(workflow_name(&bare, "ev", "s", "t", &fired("e1")).starts_with("s-t-"));
}
