use serde_json::json;

use super::*;

fn event(body: Value) -> Event {
    Event::test_webhook("webhook", "example", "id-1", "2026-03-04T02:45:00Z", body)
}

fn dep(filters: Value, op: Option<&str>) -> EventDependency {
    serde_json::from_value(json!({
        "name": "dep-a", "eventSourceName": "webhook", "eventName": "example",
        "filters": filters, "filtersLogicalOperator": op,
    }))
    .expect("dependency")
}

fn verdict(filters: Value, op: Option<&str>, body: Value) -> Verdict {
    filter_event(&dep(filters, op), &event(body))
}

/// A table case's verdict: a match when `want` is `None`, else a non-match whose reason
/// contains `want`.
fn expect(case: &str, got: Verdict, want: Option<&str>) {
    match want {
        None => assert_eq!(got, Verdict::Match, "{case}"),
        Some(reason) => match got {
            Verdict::NoMatch(r) => assert!(r.contains(reason), "{case}: {r}"),
            Verdict::Match => panic!("{case}: matched"),
        },
    }
}

fn body() -> Value {
    json!({
        "name": "hello there", "value": 51.5, "count": 3, "flag": true, "sflag": "true",
        "msg": "aGVsbG8gd29ybGQ=", "nested": {"e": false},
        "labels": [{"id": "1", "name": "Webhook"}, {"id": "2", "name": "Approved"}]
    })
}

/// (case, filters, filtersLogicalOperator, expected: None = match, Some(reason substring)).
#[test]
fn data_filters_follow_argo() {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "string regex, unanchored",
            json!({"data": [{"path": "body.name", "type": "string", "value": ["hello"]}]}),
            None,
        ),
        (
            "string anchored no",
            json!({"data": [{"path": "body.name", "type": "string", "value": ["^there"]}]}),
            Some(
                "data filter path 'body.name': value \"hello there\" matches none of [\"^there\"] (string)",
            ),
        ),
        (
            "string any of values",
            json!({"data": [{"path": "body.name", "type": "string", "value": ["nope", "th.re$"]}]}),
            None,
        ),
        (
            "string !=",
            json!({"data": [{"path": "body.name", "type": "string", "comparator": "!=", "value": ["bye"]}]}),
            None,
        ),
        (
            "string != hits",
            json!({"data": [{"path": "body.name", "type": "string", "comparator": "!=", "value": ["hello"]}]}),
            Some("matches none of != [\"hello\"]"),
        ),
        (
            "string > is an error",
            json!({"data": [{"path": "body.name", "type": "string", "comparator": ">", "value": ["a"]}]}),
            Some("comparator \">\" does not apply to type \"string\""),
        ),
        (
            "bad regex",
            json!({"data": [{"path": "body.name", "type": "string", "value": ["("]}]}),
            Some("invalid regex \"(\""),
        ),
        (
            "number >",
            json!({"data": [{"path": "body.value", "type": "number", "comparator": ">", "value": ["50.0"]}]}),
            None,
        ),
        (
            "number > fails",
            json!({"data": [{"path": "body.value", "type": "number", "comparator": ">", "value": ["60"]}]}),
            Some("value 51.5 matches none of > [\"60\"] (number)"),
        ),
        (
            "number =",
            json!({"data": [{"path": "body.count", "type": "number", "value": ["3"]}]}),
            None,
        ),
        (
            "number <=",
            json!({"data": [{"path": "body.count", "type": "number", "comparator": "<=", "value": ["3"]}]}),
            None,
        ),
        (
            "number <",
            json!({"data": [{"path": "body.count", "type": "number", "comparator": "<", "value": ["3"]}]}),
            Some("matches none of < [\"3\"]"),
        ),
        (
            "number >=",
            json!({"data": [{"path": "body.count", "type": "number", "comparator": ">=", "value": ["3"]}]}),
            None,
        ),
        (
            "number !=",
            json!({"data": [{"path": "body.count", "type": "number", "comparator": "!=", "value": ["4"]}]}),
            None,
        ),
        (
            "number from string",
            json!({"data": [{"path": "body.name", "type": "number", "value": ["0"]}]}),
            None,
        ),
        (
            "not a number",
            json!({"data": [{"path": "body.count", "type": "number", "value": ["three"]}]}),
            Some("\"three\" is not a number"),
        ),
        (
            "bool",
            json!({"data": [{"path": "body.flag", "type": "bool", "value": ["true"]}]}),
            None,
        ),
        (
            "bool from string",
            json!({"data": [{"path": "body.sflag", "type": "bool", "value": ["T"]}]}),
            None,
        ),
        (
            "bool false",
            json!({"data": [{"path": "body.nested.e", "type": "bool", "value": ["true"]}]}),
            Some("value false matches none"),
        ),
        (
            "not a bool",
            json!({"data": [{"path": "body.flag", "type": "bool", "value": ["yes"]}]}),
            Some("\"yes\" is not a boolean"),
        ),
        (
            "unknown type",
            json!({"data": [{"path": "body.flag", "type": "float", "value": ["1"]}]}),
            Some("unsupported type \"float\""),
        ),
        (
            "missing path",
            json!({"data": [{"path": "body.x", "type": "string", "value": ["a"]}]}),
            Some("data filter path 'body.x' not found in the event"),
        ),
        (
            "no values",
            json!({"data": [{"path": "body.name", "type": "string"}]}),
            Some("no values specified"),
        ),
        (
            "gjson query",
            json!({"data": [{"path": "body.labels.#(name==\"Approved\").id", "type": "string", "value": ["^2$"]}]}),
            None,
        ),
        (
            "template b64dec",
            json!({"data": [{"path": "body.msg", "type": "string", "value": ["^hello world$"], "template": "{{ b64dec .Input }}"}]}),
            None,
        ),
        (
            "template then number",
            json!({"data": [{"path": "body.name", "type": "number", "value": ["11"], "template": "{{ len .Input }}"}]}),
            None,
        ),
        (
            "template empty",
            json!({"data": [{"path": "body.name", "type": "string", "value": ["x"], "template": "{{ if false }}x{{ end }}"}]}),
            Some("evaluated to an empty string or no value"),
        ),
        (
            "template broken",
            json!({"data": [{"path": "body.name", "type": "string", "value": ["x"], "template": "{{ nosuch }}"}]}),
            Some("function \"nosuch\" not defined"),
        ),
        (
            "and: all must pass",
            json!({"data": [
            {"path": "body.name", "type": "string", "value": ["hello"]},
            {"path": "body.count", "type": "number", "value": ["4"]}]}),
            Some("path 'body.count'"),
        ),
        (
            "or: one is enough",
            json!({"dataLogicalOperator": "or", "data": [
            {"path": "body.x", "type": "string", "value": ["hello"]},
            {"path": "body.count", "type": "number", "value": ["3"]}]}),
            None,
        ),
        (
            "or: none",
            json!({"dataLogicalOperator": "or", "data": [
            {"path": "body.x", "type": "string", "value": ["hello"]},
            {"path": "body.count", "type": "number", "value": ["4"]}]}),
            Some(
                "data filters: none matched: path 'body.x' not found in the event / path 'body.count'",
            ),
        ),
        (
            "bad data operator",
            json!({"dataLogicalOperator": "OR", "data": [{"path": "body.name", "type": "string", "value": ["x"]}]}),
            Some("filters.dataLogicalOperator: unknown logical operator \"OR\""),
        ),
    ];
    for (case, filters, want) in cases {
        let got = verdict(filters, None, body());
        expect(case, got, want);
    }
}

#[test]
fn expr_filters_use_govaluate_over_paths() {
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "argo example",
            json!({"exprs": [{"expr": "a == \"hello there\" || c != 10", "fields": [{"name": "a", "path": "name"}, {"name": "c", "path": "count"}]}]}),
            None,
        ),
        (
            "numbers are floats",
            json!({"exprs": [{"expr": "c == 3.0 && v > 51", "fields": [{"name": "c", "path": "count"}, {"name": "v", "path": "value"}]}]}),
            None,
        ),
        (
            "regex",
            json!({"exprs": [{"expr": "a =~ \"^hel+o\"", "fields": [{"name": "a", "path": "name"}]}]}),
            None,
        ),
        (
            "bool false",
            json!({"exprs": [{"expr": "e == true", "fields": [{"name": "e", "path": "nested.e"}]}]}),
            Some("expr filter 'e == true' is false"),
        ),
        (
            "missing path",
            json!({"exprs": [{"expr": "e == true", "fields": [{"name": "e", "path": "nested.x"}]}]}),
            Some("expr filter path 'nested.x' not found in the event"),
        ),
        (
            "unknown variable",
            json!({"exprs": [{"expr": "z == 1", "fields": [{"name": "e", "path": "nested.e"}]}]}),
            Some("No parameter 'z' found"),
        ),
        (
            "not boolean",
            json!({"exprs": [{"expr": "c + 1", "fields": [{"name": "c", "path": "count"}]}]}),
            Some("is not a boolean (got 4)"),
        ),
        (
            "syntax",
            json!({"exprs": [{"expr": "c == (1", "fields": [{"name": "c", "path": "count"}]}]}),
            Some("'c == (1'"),
        ),
        (
            "no fields: skipped",
            json!({"exprs": [{"expr": "false"}]}),
            None,
        ),
        (
            "or",
            json!({"exprLogicalOperator": "or", "exprs": [
            {"expr": "c == 1", "fields": [{"name": "c", "path": "count"}]},
            {"expr": "c == 3", "fields": [{"name": "c", "path": "count"}]}]}),
            None,
        ),
        (
            "or none",
            json!({"exprLogicalOperator": "or", "exprs": [
            {"expr": "c == 1", "fields": [{"name": "c", "path": "count"}]}]}),
            Some("expr filters: none matched: 'c == 1' is false"),
        ),
    ];
    for (case, filters, want) in cases {
        // Expr paths are relative to data, so the body is the data itself here.
        let mut e = event(json!(null));
        e.data = body();
        let got = filter_event(&dep(filters, None), &e);
        expect(case, got, want);
    }
}

#[test]
fn context_and_time_filters() {
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        (
            "context source",
            json!({"context": {"source": "webhook"}}),
            "02:45:00",
            None,
        ),
        (
            "context all",
            json!({"context": {"source": "webhook", "subject": "example", "type": "webhook", "datacontenttype": "application/json", "id": "ignored"}}),
            "02:45:00",
            None,
        ),
        (
            "context mismatch",
            json!({"context": {"source": "custom-webhook"}}),
            "02:45:00",
            Some("context filter source: expected \"custom-webhook\", the event has \"webhook\""),
        ),
        (
            "time inside",
            json!({"time": {"start": "02:30:00", "stop": "04:30:00"}}),
            "02:45:00",
            None,
        ),
        (
            "time start inclusive",
            json!({"time": {"start": "02:30:00", "stop": "04:30:00"}}),
            "02:30:00",
            None,
        ),
        (
            "time stop exclusive",
            json!({"time": {"start": "02:30:00", "stop": "04:30:00"}}),
            "04:30:00",
            Some("time filter: event time 04:30:00 is outside [02:30:00, 04:30:00)"),
        ),
        (
            "time before",
            json!({"time": {"start": "02:30:00", "stop": "04:30:00"}}),
            "01:00:00",
            Some("outside"),
        ),
        (
            "midnight: late",
            json!({"time": {"start": "22:00:00", "stop": "02:00:00"}}),
            "23:59:59",
            None,
        ),
        (
            "midnight: early",
            json!({"time": {"start": "22:00:00", "stop": "02:00:00"}}),
            "01:59:59",
            None,
        ),
        (
            "midnight: outside",
            json!({"time": {"start": "22:00:00", "stop": "02:00:00"}}),
            "02:00:00",
            Some("outside"),
        ),
        (
            "equal: always",
            json!({"time": {"start": "05:00:00", "stop": "05:00:00"}}),
            "17:00:00",
            None,
        ),
        (
            "bad time",
            json!({"time": {"start": "2:30", "stop": "04:30:00"}}),
            "02:45:00",
            Some("time filter start: \"2:30\" is not a time of day HH:MM:SS"),
        ),
        (
            "script",
            json!({"script": "return true"}),
            "02:45:00",
            Some("Lua script filters are not supported"),
        ),
    ];
    for (case, filters, at, want) in cases {
        let mut e = event(body());
        e.context.time = format!("2026-03-04T{at}Z").parse().expect("time");
        let got = filter_event(&dep(filters, None), &e);
        expect(case, got, want);
    }
}

#[test]
fn time_filter_reads_the_zone() {
    let f = TimeFilter {
        start: "09:00:00".into(),
        stop: "17:00:00".into(),
        ..Default::default()
    };
    let at: Timestamp = "2026-03-04T08:30:00Z".parse().expect("time");
    let berlin = TimeZone::get("Europe/Berlin").expect("zone");
    assert!(time_filter(&f, at, &TimeZone::UTC).is_err());
    assert!(time_filter(&f, at, &berlin).is_ok(), "09:30 in Berlin");
}

#[test]
fn filters_logical_operator_combines_kinds() {
    let ctx_bad = json!({"context": {"source": "other"}, "data": [{"path": "body.count", "type": "number", "value": ["3"]}]});
    assert!(
        matches!(verdict(ctx_bad.clone(), None, body()), Verdict::NoMatch(r) if r.starts_with("context filter source"))
    );
    assert!(!verdict(ctx_bad.clone(), Some("and"), body()).matched());
    assert_eq!(verdict(ctx_bad, Some("or"), body()), Verdict::Match);
    let both_bad = json!({"context": {"source": "other"}, "data": [{"path": "body.count", "type": "number", "value": ["4"]}]});
    match verdict(both_bad, Some("or"), body()) {
        Verdict::NoMatch(r) => {
            assert!(
                r.starts_with("no filter kind matched: data filter path 'body.count'"),
                "{r}"
            );
            assert!(r.contains(" / context filter source"), "{r}");
        }
        Verdict::Match => panic!("matched"),
    }
    // Argo's order: exprs are reported before data.
    let order = json!({"data": [{"path": "body.x", "type": "string", "value": ["a"]}],
                       "exprs": [{"expr": "c == 1", "fields": [{"name": "c", "path": "body.count"}]}]});
    assert!(
        matches!(verdict(order, None, body()), Verdict::NoMatch(r) if r.starts_with("expr filter"))
    );
    assert!(
        matches!(verdict(json!({}), Some("AND"), body()), Verdict::NoMatch(r) if r.contains("filtersLogicalOperator"))
    );
    assert_eq!(verdict(json!({}), Some("or"), body()), Verdict::Match);
    assert_eq!(
        filter_event(&dep(json!(null), None), &event(body())),
        Verdict::Match
    );
}

#[test]
fn null_data_passes_data_and_expr_filters() {
    let mut e = event(json!(null));
    e.data = Value::Null;
    let d = dep(
        json!({"data": [{"path": "body.x", "type": "string", "value": ["a"]}],
                       "exprs": [{"expr": "c == 1", "fields": [{"name": "c", "path": "x"}]}]}),
        None,
    );
    assert_eq!(filter_event(&d, &e), Verdict::Match);
}

#[test]
fn validate_names_each_bad_field() {
    let d = dep(
        json!({
            "dataLogicalOperator": "xor",
            "data": [
                {"path": "", "type": "string", "value": ["("]},
                {"path": "a", "type": "number", "comparator": "~", "value": ["x"], "template": "{{ range . }}{{ end }}"},
                {"path": "b", "type": "bool"}
            ],
            "exprs": [{"expr": "a ==", "fields": [{"name": "", "path": "x"}]}],
            "time": {"start": "25:00:00", "stop": "04:30"},
            "script": "return true"
        }),
        Some("both"),
    );
    let errs: Vec<String> = validate("ev/sensor", &d)
        .iter()
        .map(ToString::to_string)
        .collect();
    insta::assert_yaml_snapshot!(errs);
    let ok = dep(
        json!({"data": [{"path": "body.x", "type": "string", "value": ["a"]}]}),
        None,
    );
    assert!(validate("ev/sensor", &ok).is_empty());
}
