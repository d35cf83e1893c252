//! Table-driven tests of the whole engine: templates, expressions, sprig, `when`, the tags of the
//! conformance manifests, and garbage input (never a panic).

use super::*;
use serde_json::json;

/// A scope like the one a step of the conformance workflows sees.
fn scope() -> Scope {
    let mut s = Scope::new()
        .with("inputs.parameters.message", "hello world")
        .with("inputs.parameters.should-print", "true")
        .with("inputs.parameters.x", "5")
        .with("inputs.parameters.f", "2.5")
        .with("inputs.parameters.image", "debian")
        .with("inputs.parameters.tag", "9.1")
        .with("inputs.parameters.seconds", "20")
        .with(
            "inputs.parameters.json",
            r#"{"some":{"path":"v"},"list":[1,2,3]}"#,
        )
        .with("tasks.A.outputs.parameters.p", "from-A")
        .with("tasks.A.outputs.result", "42")
        .with("tasks.A.status", "Succeeded")
        .with("steps.flip-coin.outputs.result", "heads")
        .with("steps.generate.outputs.result", "[20,21,22]")
        .with(
            "steps.generate-parameter.outputs.parameters.hello-param",
            "hello",
        )
        .with("steps.approval.outputs.parameters.approve", "YES")
        .with("workflow.name", "wf-abc")
        .with("workflow.namespace", "argo")
        .with("workflow.uid", "1234-5678")
        .with("workflow.parameters.message", "global")
        .with("workflow.parameters.count", "3")
        .with("workflow.parameters.target", "E")
        .with(
            "workflow.parameters.json",
            r#"[{"name":"should-print","value":"true"}]"#,
        )
        .with("workflow.status", "Failed")
        .with("workflow.duration", "12.5")
        .with("workflow.scheduledTime", "2026-01-01T00:00:00Z")
        .with(
            "workflow.failures",
            r#"[{"displayName":"intentional-fail","message":"exit 1","phase":"Failed"}]"#,
        )
        .with("pod.name", "wf-abc-main-123")
        .with("node.name", "wf-abc.A")
        .with("retries", "2")
        .with("inputs.artifacts.data.path", "/tmp/data")
        .with("outputs.parameters.out.path", "/tmp/out.txt");
    s.set_item(&json!({"image": "debian", "tag": "9.1"}));
    s
}

#[test]
fn simple_tags_render() {
    let s = scope();
    let cases: &[(&str, &str)] = &[
        ("{{inputs.parameters.message}}", "hello world"),
        ("{{ inputs.parameters.message }}", "hello world"),
        ("{{\tinputs.parameters.message\n}}", "hello world"),
        ("echo {{inputs.parameters.message}}!", "echo hello world!"),
        ("{{tasks.A.outputs.parameters.p}}", "from-A"),
        ("{{tasks.A.outputs.result}}", "42"),
        ("{{steps.flip-coin.outputs.result}}", "heads"),
        (
            "{{workflow.name}}/{{workflow.namespace}}/{{workflow.uid}}",
            "wf-abc/argo/1234-5678",
        ),
        ("{{workflow.parameters.message}}", "global"),
        ("{{workflow.status}}", "Failed"),
        ("{{pod.name}}", "wf-abc-main-123"),
        ("{{node.name}}", "wf-abc.A"),
        ("{{retries}}", "2"),
        ("{{inputs.artifacts.data.path}}", "/tmp/data"),
        ("{{outputs.parameters.out.path}}", "/tmp/out.txt"),
        ("{{item}}", r#"{"image":"debian","tag":"9.1"}"#),
        ("{{item.image}}:{{item.tag}}", "debian:9.1"),
        ("no tags at all", "no tags at all"),
        ("", ""),
        ("a }} b", "a }} b"),
        (
            "{{inputs.parameters.message}}{{inputs.parameters.message}}",
            "hello worldhello world",
        ),
        (
            r#"{{- with secret "{{inputs.parameters.message}}" -}}"#,
            r#"{{- with secret "hello world" -}}"#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(render(text, &s).as_deref(), Ok(*want), "{text}");
    }
}

#[test]
fn simple_tag_errors() {
    let s = scope();
    let cases: &[(&str, ExprError)] = &[
        (
            "{{inputs.parameters.nope}}",
            ExprError::Unresolved {
                tag: "inputs.parameters.nope".into(),
            },
        ),
        (
            "{{ workflow.nope }}",
            ExprError::Unresolved {
                tag: " workflow.nope ".into(),
            },
        ),
        (
            "x {{inputs.parameters.message",
            ExprError::UnclosedTag { offset: 2 },
        ),
        ("{{", ExprError::UnclosedTag { offset: 0 }),
        // A namespace is not a value in a simple tag.
        (
            "{{inputs.parameters}}",
            ExprError::Unresolved {
                tag: "inputs.parameters".into(),
            },
        ),
        // `=` must follow the braces immediately to make an expression.
        (
            "{{ =workflow.name}}",
            ExprError::Unresolved {
                tag: " =workflow.name".into(),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(render(text, &s).as_ref(), Err(want), "{text}");
    }
}

#[test]
fn unresolved_error_names_the_tag() {
    let e = render("{{inputs.parameters.nope}}", &scope()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to resolve {{inputs.parameters.nope}}"
    );
    assert_eq!(e.metric_label(), "unresolved");
}

#[test]
fn item_forms_match_argo() {
    type ItemCase<'a> = (serde_json::Value, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[ItemCase] = &[
        (json!("a"), "a", &[]),
        (json!(20), "20", &[]),
        (json!(1.5), "1.5", &[]),
        (json!(true), "true", &[]),
        (json!([1, "b"]), r#"[1,"b"]"#, &[]),
        (
            json!({"z": 1, "a": {"k": "<v>"}, "s": "str"}),
            r#"{"a":{"k":"\u003cv\u003e"},"s":"str","z":1}"#,
            &[
                ("item.z", "1"),
                ("item.s", "str"),
                ("item.a", r#"{"k":"\u003cv\u003e"}"#),
            ],
        ),
    ];
    for (item, want, fields) in cases {
        let mut s = Scope::new().with("item.stale", "x");
        s.set_item(item);
        assert_eq!(render("{{item}}", &s).as_deref(), Ok(*want), "{item}");
        assert!(!s.contains("item.stale"), "old item fields are removed");
        for (k, v) in *fields {
            assert_eq!(s.get(k), Some(&Value::from(*v)), "{k}");
        }
    }
}

#[test]
fn keep_mode_leaves_unresolved_tags() {
    let s = Scope::new()
        .with("inputs.parameters.x", "1")
        .with("workflow.name", "w");
    let cases: &[(&str, &str)] = &[
        (
            "{{inputs.parameters.x}} {{tasks.A.outputs.result}}",
            "1 {{tasks.A.outputs.result}}",
        ),
        ("{{=sprig.int(retries) + 1}}", "{{=sprig.int(retries) + 1}}"),
        (
            r#"{{=workflow.status == "Succeeded" ? "OK" : "KO"}}"#,
            r#"{{=workflow.status == "Succeeded" ? "OK" : "KO"}}"#,
        ),
        ("{{=1 +}}", "{{=1 +}}"),
        ("{{=asInt('x')}}", "{{=asInt('x')}}"),
        ("{{=inputs.parameters.x + '0'}}", "10"),
        ("{{=inputs.parameters.nope ?? 'dflt'}}", "dflt"),
        ("{{=tasks.A.outputs.result}}", "{{=tasks.A.outputs.result}}"),
        (
            "{{=lastRetry.exitCode == '1'}}",
            "{{=lastRetry.exitCode == '1'}}",
        ),
        ("{{ .Values.image }}", "{{ .Values.image }}"),
    ];
    for (text, want) in cases {
        assert_eq!(
            render_with(text, &s, Unresolved::Keep).as_deref(),
            Ok(*want),
            "{text}"
        );
    }
}

#[test]
fn defer_mode_leaves_only_deferred_tags() {
    let s = Scope::new().with("inputs.parameters.x", "1");
    let deferred = |name: &str| name.starts_with("tasks.");
    let mode = Unresolved::Defer(&deferred);
    assert_eq!(
        render_with(
            "{{inputs.parameters.x}}-{{tasks.B.outputs.result}}",
            &s,
            mode
        )
        .as_deref(),
        Ok("1-{{tasks.B.outputs.result}}")
    );
    assert_eq!(
        render_with(
            "{{=tasks.B.outputs.result + inputs.parameters.x}}",
            &s,
            mode
        )
        .as_deref(),
        Ok("{{=tasks.B.outputs.result + inputs.parameters.x}}")
    );
    assert_eq!(
        render_with("{{workflow.nope}}", &s, mode),
        Err(ExprError::Unresolved {
            tag: "workflow.nope".into()
        })
    );
    assert!(matches!(
        render_with("{{=1 +}}", &s, mode),
        Err(ExprError::Syntax { .. })
    ));
}

#[test]
fn validation_reports_unknown_variables_with_the_tag() {
    let s = scope();
    let known = |n: &str| s.knows(n) || !is_validated_name(n);
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        ("{{inputs.parameters.message}}", None),
        ("{{ .Values.x }} {{foo}}", None),
        (
            "{{inputs.parameters.typo}}",
            Some(("{{inputs.parameters.typo}}", "inputs.parameters.typo")),
        ),
        (
            "a {{ workflow.parameters.nope }}",
            Some(("{{ workflow.parameters.nope }}", "workflow.parameters.nope")),
        ),
        ("{{=inputs.parameters['should-print'] == 'true'}}", None),
        ("{{=sprig.trim(inputs.parameters.message)}}", None),
        ("{{=map([1,2], {# * 2})}}", None),
        (
            "{{=inputs.parameters.typo}}",
            Some(("{{=inputs.parameters.typo}}", "inputs.parameters.typo")),
        ),
        (
            "{{=steps['flip-coin'].outputs.res}}",
            Some((
                "{{=steps['flip-coin'].outputs.res}}",
                "steps.flip-coin.outputs.res",
            )),
        ),
    ];
    for (text, want) in cases {
        let got = check(text, &known);
        match want {
            None => assert_eq!(got, Ok(()), "{text}"),
            Some((tag, name)) => assert_eq!(
                got,
                Err(ExprError::UnknownVariable {
                    tag: (*tag).into(),
                    name: (*name).into()
                }),
                "{text}"
            ),
        }
    }
    assert!(matches!(
        check("{{=1 +}}", &known),
        Err(ExprError::Syntax { .. })
    ));
    assert!(matches!(
        check("{{x", &known),
        Err(ExprError::UnclosedTag { .. })
    ));
}

#[test]
fn references_list_simple_and_expression_variables() {
    let refs = references("{{a.b}} {{=c.d['e-f'] + g[0] + h[x.y]}} {{=#}}");
    assert!(refs.is_err(), "`#` outside a predicate is a syntax error");
    let refs = references("{{ a.b }} {{=c.d['e-f'] + g[0] + sprig.upper(h[x.y])}}").unwrap();
    let names: Vec<(&str, bool)> = refs
        .iter()
        .map(|r| (r.name.as_str(), r.expression))
        .collect();
    assert_eq!(
        names,
        [
            ("a.b", false),
            ("c.d.e-f", true),
            ("g", true),
            ("h", true),
            ("x.y", true)
        ]
    );
    assert_eq!(refs[1].offset, 10);
}

/// (expression, expected result as JSON).
const EXPRESSIONS: &[(&str, &str)] = &[
    // literals
    ("1", "1"),
    ("1.5", "1.5"),
    ("0x1F", "31"),
    ("1_000", "1000"),
    ("1e3", "1000.0"),
    (".5", "0.5"),
    ("'single'", r#""single""#),
    (r#""dou\"ble""#, r#""dou\"ble""#),
    ("`raw\\n`", r#""raw\\n""#),
    (r#""\u00e9\t""#, "\"\u{e9}\\t\""),
    ("true", "true"),
    ("nil", "null"),
    ("[1, 'a', [true]]", r#"[1,"a",[true]]"#),
    ("{a: 1, 'b-c': 2, (1 + 1): 3}", r#"{"2":3,"a":1,"b-c":2}"#),
    ("[]", "[]"),
    ("[1, 2,]", "[1,2]"),
    // arithmetic
    ("1 + 2 * 3", "7"),
    ("(1 + 2) * 3", "9"),
    ("7 / 2", "3.5"),
    ("6 / 3", "2.0"),
    ("7 % 3", "1"),
    ("-7 % 3", "-1"),
    ("2 ** 10", "1024.0"),
    ("2 ^ 3 ^ 2", "512.0"),
    ("-2 ** 2", "-4.0"),
    ("1 + 2.5", "3.5"),
    ("10 - 2 - 3", "5"),
    ("-(3)", "-3"),
    ("+3", "3"),
    ("1..4", "[1,2,3,4]"),
    ("3..1", "[]"),
    // strings
    ("'a' + 'b'", r#""ab""#),
    ("'hello' contains 'ell'", "true"),
    ("'hello' startsWith 'he'", "true"),
    ("'hello' endsWith 'lo'", "true"),
    ("'hello' not contains 'z'", "true"),
    ("'abc123' matches '^[a-z]+[0-9]+$'", "true"),
    ("'abc' not matches 'x'", "true"),
    ("'abc'[1]", r#""b""#),
    ("'abcdef'[1:3]", r#""bc""#),
    ("'abcdef'[-2:]", r#""ef""#),
    // comparisons and logic
    ("1 == 1.0", "true"),
    ("'1' == 1", "false"),
    ("nil == nil", "true"),
    ("[1, 2] == [1, 2]", "true"),
    ("2 > 1 && 'b' > 'a'", "true"),
    ("1 >= 2 || 2 <= 2", "true"),
    ("!true", "false"),
    ("not false", "true"),
    ("true and false", "false"),
    ("false or true", "true"),
    ("false && (1/0 > 'x')", "false"),
    ("true || nosuchname", "true"),
    ("2 in [1, 2, 3]", "true"),
    ("4 not in [1, 2, 3]", "true"),
    ("'a' in {a: 1}", "true"),
    ("1 < 2 ? 'yes' : 'no'", r#""yes""#),
    ("false ? 1 : true ? 2 : 3", "2"),
    ("nil ?? 'd'", r#""d""#),
    ("'v' ?? 'd'", r#""v""#),
    ("nil ?: 'e'", r#""e""#),
    // variables
    ("inputs.parameters.message", r#""hello world""#),
    ("inputs.parameters['should-print']", r#""true""#),
    (r#"inputs.parameters["should-print"] == 'true'"#, "true"),
    ("inputs.parameters.x", r#""5""#),
    ("asInt(inputs.parameters.x) * 2", "10"),
    ("asFloat(inputs.parameters.f) * 2", "5.0"),
    ("steps['flip-coin'].outputs.result", r#""heads""#),
    ("tasks.A.outputs.result", r#""42""#),
    ("tasks['A'].outputs.parameters.p", r#""from-A""#),
    (
        "workflow.status == 'Succeeded' ? 'SUCCESSFUL' : 'FAILED'",
        r#""FAILED""#,
    ),
    ("inputs.parameters.missing", "null"),
    ("inputs.parameters.missing ?? 'dflt'", r#""dflt""#),
    ("inputs.parameters?.missing?.deeper", "null"),
    ("item.image + ':' + item.tag", r#""debian:9.1""#),
    ("item", r#"{"image":"debian","tag":"9.1"}"#),
    ("len(inputs.parameters)", "8"),
    ("'json' in inputs.parameters", "true"),
    ("int(retries) + 1", "3"),
    // builtins
    ("asInt('42')", "42"),
    ("asInt(4.9)", "4"),
    ("int('-7')", "-7"),
    ("float('1e3')", "1000.0"),
    ("asFloat('3')", "3.0"),
    ("string(1.5)", r#""1.5""#),
    ("string(1000000.0)", r#""1e+06""#),
    ("string([1, 'a'])", r#""[1 a]""#),
    ("string({a: 1})", r#""map[a:1]""#),
    ("string(nil)", r#""<nil>""#),
    ("toJson([1, 2])", r#""[1,2]""#),
    ("toJson({b: 1, a: 'x'})", r#""{\"a\":\"x\",\"b\":1}""#),
    ("toJSON([1])", r#""[\n  1\n]""#),
    ("fromJSON('{\"a\": [1, 2]}').a[1]", "2"),
    ("jsonpath(inputs.parameters.json, '$.some.path')", r#""v""#),
    ("jsonpath(inputs.parameters.json, '$.list[*]')", "[1,2,3]"),
    (
        "jsonpath(workflow.parameters.json, '$[0].value') == 'true'",
        "true",
    ),
    ("len('héllo')", "5"),
    ("len([1, 2])", "2"),
    ("upper('ab') + lower('CD')", r#""ABcd""#),
    ("trim('  x  ')", r#""x""#),
    ("trim('xxaxx', 'x')", r#""a""#),
    ("trimPrefix('v1.2', 'v')", r#""1.2""#),
    ("trimSuffix('a.txt', '.txt')", r#""a""#),
    ("split('a,b,c', ',')", r#"["a","b","c"]"#),
    ("split('a,b,c', ',', 2)", r#"["a","b,c"]"#),
    ("splitAfter('a,b', ',')", r#"["a,","b"]"#),
    ("join(['a', 'b'], '-')", r#""a-b""#),
    ("replace('aXbX', 'X', '_')", r#""a_b_""#),
    ("repeat('ab', 3)", r#""ababab""#),
    ("indexOf('hello', 'l')", "2"),
    ("lastIndexOf('hello', 'l')", "3"),
    ("hasPrefix('hello', 'he')", "true"),
    ("abs(-3)", "3"),
    ("ceil(1.2)", "2.0"),
    ("floor(-1.2)", "-2.0"),
    ("round(2.5)", "3.0"),
    ("max(1, 5, 3)", "5"),
    ("min([4, 2, 8])", "2"),
    ("mean([1, 2, 3, 4])", "2.5"),
    ("median([3, 1, 2])", "2.0"),
    ("keys({b: 1, a: 2})", r#"["a","b"]"#),
    ("values({b: 1, a: 2})", "[2,1]"),
    ("first([1, 2])", "1"),
    ("last([1, 2])", "2"),
    ("first([])", "null"),
    ("get({a: 1}, 'a')", "1"),
    ("get([1, 2], -1)", "2"),
    ("take([1, 2, 3], 2)", "[1,2]"),
    ("reverse([1, 2, 3])", "[3,2,1]"),
    ("sort([3, 1, 2])", "[1,2,3]"),
    ("sort(['b', 'a'], 'desc')", r#"["b","a"]"#),
    ("concat([1], [2, 3])", "[1,2,3]"),
    ("flatten([1, [2, [3]]])", "[1,2,3]"),
    ("uniq([1, 1, 2])", "[1,2]"),
    ("toPairs({a: 1})", r#"[["a",1]]"#),
    ("fromPairs([['a', 1]])", r#"{"a":1}"#),
    ("type(1.5)", r#""float64""#),
    ("toBase64('hi')", r#""aGk=""#),
    ("fromBase64('aGk=')", r#""hi""#),
    ("[1, 2, 3][-1]", "3"),
    ("[1, 2, 3][1:]", "[2,3]"),
    ("[1, 2, 3][:1]", "[1]"),
    // predicates
    ("filter([1, 2, 3], {# > 1})", "[2,3]"),
    ("filter([1, 2, 3], # > 1)", "[2,3]"),
    ("map([1, 2], {# * 2})", "[2,4]"),
    ("map([{n: 1}, {n: 2}], .n)", "[1,2]"),
    ("map(['a', 'b'], # + string(#index))", r#"["a0","b1"]"#),
    ("all([2, 4], # % 2 == 0)", "true"),
    ("any([1, 2], # > 1)", "true"),
    ("none([1, 2], # > 5)", "true"),
    ("one([1, 2], # > 1)", "true"),
    ("count([1, 2, 3], # >= 2)", "2"),
    ("find([1, 2, 3], # > 1)", "2"),
    ("findIndex([1, 2, 3], # > 1)", "1"),
    ("findLast([1, 2, 3], # > 1)", "3"),
    ("findLastIndex([1, 2, 3], # > 5)", "-1"),
    ("sum([1, 2, 3])", "6"),
    ("sum([1, 2], # * 1.5)", "4.5"),
    ("reduce([1, 2, 3], #acc + #)", "6"),
    ("reduce([1, 2, 3], #acc + #, 10)", "16"),
    (
        "groupBy([1, 2, 3], # % 2 == 0)",
        r#"{"false":[1,3],"true":[2]}"#,
    ),
    ("sortBy([{n: 2}, {n: 1}], .n)", r#"[{"n":1},{"n":2}]"#),
    ("map(filter(1..6, # % 2 == 0), # * 10)", "[20,40,60]"),
    ("[1, 2] | map(# + 1)", "[2,3]"),
    ("'a,b' | split(',')", r#"["a","b"]"#),
    // sprig
    ("sprig.upper('ab')", r#""AB""#),
    ("sprig.lower('AB')", r#""ab""#),
    ("sprig.title('hello world')", r#""Hello World""#),
    ("sprig.trim('  x ')", r#""x""#),
    ("sprig.trimAll('$', '$5.00$')", r#""5.00""#),
    ("sprig.trimPrefix('v', 'v1')", r#""1""#),
    ("sprig.trimSuffix('-', 'a-')", r#""a""#),
    ("sprig.replace('a', 'b', 'banana')", r#""bbnbnb""#),
    ("sprig.default('d', '')", r#""d""#),
    ("sprig.default('d', 'v')", r#""v""#),
    ("sprig.default('d', nil)", r#""d""#),
    ("sprig.default('d', 0)", r#""d""#),
    ("sprig.int('3')", "3"),
    ("sprig.int('3.0')", "3"),
    ("sprig.int('abc')", "0"),
    ("sprig.int('0x10')", "16"),
    ("sprig.int(3.9)", "3"),
    ("sprig.int(retries) + 1", "3"),
    ("sprig.int64('12')", "12"),
    ("sprig.float64('1.5')", "1.5"),
    ("sprig.atoi('12')", "12"),
    ("sprig.add(1, '2', 3.5)", "6"),
    ("sprig.add1(1)", "2"),
    ("sprig.sub(5, 2)", "3"),
    ("sprig.mul(2, 3, 4)", "24"),
    ("sprig.div(7, 2)", "3"),
    ("sprig.mod(7, 2)", "1"),
    ("sprig.max(1, 9, 3)", "9"),
    ("sprig.min(4, 2)", "2"),
    ("sprig.addf(1.5, 1)", "2.5"),
    ("sprig.divf(1, 4)", "0.25"),
    ("sprig.round(2.345, 2)", "2.35"),
    ("sprig.toString(12)", r#""12""#),
    ("sprig.toString(1.5)", r#""1.5""#),
    ("sprig.b64enc('hello')", r#""aGVsbG8=""#),
    ("sprig.b64dec('aGVsbG8=')", r#""hello""#),
    ("sprig.contains('ell', 'hello')", "true"),
    ("sprig.hasPrefix('he', 'hello')", "true"),
    ("sprig.hasSuffix('lo', 'hello')", "true"),
    ("sprig.trunc(5, 'hello world')", r#""hello""#),
    ("sprig.trunc(-5, 'hello world')", r#""world""#),
    ("sprig.trunc(50, 'hi')", r#""hi""#),
    ("sprig.quote('a\"b', 1)", r#""\"a\\\"b\" \"1\"""#),
    ("sprig.squote('a')", r#""'a'""#),
    ("sprig.cat('a', nil, 1)", r#""a 1""#),
    ("sprig.repeat(3, 'x')", r#""xxx""#),
    ("sprig.substr(1, 3, 'hello')", r#""el""#),
    ("sprig.nospace('a b c')", r#""abc""#),
    ("sprig.indent(2, 'a\nb')", r#""  a\n  b""#),
    ("sprig.nindent(2, 'a')", r#""\n  a""#),
    ("sprig.abbrev(5, 'hello world')", r#""he...""#),
    ("sprig.snakecase('FirstName')", r#""first_name""#),
    ("sprig.kebabcase('firstName')", r#""first-name""#),
    ("sprig.camelcase('http_server')", r#""HttpServer""#),
    ("sprig.split('$', 'a$b')", r#"{"_0":"a","_1":"b"}"#),
    ("sprig.splitList(',', 'a,b')", r#"["a","b"]"#),
    ("sprig.join('-', ['a', 1, nil])", r#""a-1""#),
    ("sprig.list(1, 'a')", r#"[1,"a"]"#),
    ("sprig.dict('a', 1, 'b')", r#"{"a":1,"b":""}"#),
    ("sprig.get(sprig.dict('a', 1), 'a')", "1"),
    ("sprig.get(sprig.dict('a', 1), 'z')", r#""""#),
    ("sprig.hasKey(sprig.dict('a', 1), 'a')", "true"),
    ("sprig.keys(sprig.dict('b', 1, 'a', 2))", r#"["a","b"]"#),
    ("sprig.dig('a', 'b', 'dflt', {a: {b: 'x'}})", r#""x""#),
    ("sprig.dig('a', 'z', 'dflt', {a: {b: 'x'}})", r#""dflt""#),
    ("sprig.dig('status', nil, workflow)", r#""Failed""#),
    ("sprig.first([1, 2])", "1"),
    ("sprig.last([1, 2])", "2"),
    ("sprig.rest([1, 2, 3])", "[2,3]"),
    ("sprig.initial([1, 2, 3])", "[1,2]"),
    ("sprig.append([1], 2)", "[1,2]"),
    ("sprig.prepend([1], 0)", "[0,1]"),
    ("sprig.concat([1], [2])", "[1,2]"),
    ("sprig.reverse([1, 2])", "[2,1]"),
    ("sprig.uniq([1, 1, 2])", "[1,2]"),
    ("sprig.compact(['a', '', nil, 0, 'b'])", r#"["a","b"]"#),
    ("sprig.without([1, 2, 3], 2)", "[1,3]"),
    ("sprig.has(2, [1, 2])", "true"),
    ("sprig.slice([1, 2, 3], 1)", "[2,3]"),
    ("sprig.sortAlpha(['b', 'a', 'c'])", r#"["a","b","c"]"#),
    ("sprig.until(3)", "[0,1,2]"),
    ("sprig.untilStep(0, 10, 4)", "[0,4,8]"),
    ("sprig.empty('')", "true"),
    ("sprig.empty([1])", "false"),
    ("sprig.coalesce(nil, '', 'x')", r#""x""#),
    ("sprig.ternary('a', 'b', true)", r#""a""#),
    ("sprig.toJson({a: '<'})", r#""{\"a\":\"\\u003c\"}""#),
    ("sprig.toRawJson({a: '<'})", r#""{\"a\":\"<\"}""#),
    ("sprig.fromJson('{\"a\":1}').a", "1"),
    ("sprig.fromJson('nope')", "null"),
    ("sprig.regexMatch('^[a-z]+$', 'abc')", "true"),
    ("sprig.regexMatch('(', 'abc')", "false"),
    ("sprig.regexFind('[0-9]+', 'ab123cd45')", r#""123""#),
    (
        "sprig.regexFindAll('[0-9]+', 'ab123cd45', -1)",
        r#"["123","45"]"#,
    ),
    (
        "sprig.regexReplaceAll('a(x*)b', '-ab-axxb-', '${1}W')",
        r#""-W-xxW-""#,
    ),
    (
        "sprig.regexReplaceAllLiteral('a(x*)b', '-ab-', '$1')",
        r#""-$1-""#,
    ),
    ("sprig.regexSplit('[,;]', 'a,b;c', -1)", r#"["a","b","c"]"#),
    (
        "sprig.sha256sum('abc')",
        r#""ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad""#,
    ),
    ("sprig.kindOf([1])", r#""slice""#),
    ("sprig.kindIs('string', 'x')", "true"),
    ("sprig.plural('one', 'many', 2)", r#""many""#),
];

#[test]
fn expressions_evaluate_like_expr_lang() {
    let s = scope();
    for (src, want) in EXPRESSIONS {
        let ast = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let got = eval(&ast, &s).unwrap_or_else(|e| panic!("{src}: {e}"));
        let want: serde_json::Value =
            serde_json::from_str(want).unwrap_or_else(|e| panic!("{want}: {e}"));
        let want = Value::from(want);
        // JSON cannot tell 2 from 2.0: compare the kind of number too.
        assert_eq!(got, want, "{src}");
    }
}

#[test]
fn expression_tags_render_like_argo() {
    let s = scope();
    let cases: &[(&str, &str)] = &[
        ("{{=inputs.parameters.message}}", "hello world"),
        ("{{= inputs.parameters.message }}", "hello world"),
        ("{{=asInt(inputs.parameters.x) * 3}}", "15"),
        ("{{=7 / 2}}", "3.5"),
        ("{{=6 / 3}}", "2"),
        ("{{=asFloat('1e21')}}", "1e+21"),
        ("{{=asFloat('1000000')}}", "1000000"),
        ("{{=[1, 2]}}", "[1,2]"),
        ("{{=toJson(map([1, 2], # * 2))}}", "[2,4]"),
        ("{{={'a': 1}.a == 1}}", "true"),
        ("{{=sprig.trunc(5, inputs.parameters.message)}}", "hello"),
        (
            "test {{= sprig.trunc(-5, inputs.parameters.message) }}",
            "test world",
        ),
        (
            r#"{{=workflow.status == "Succeeded" ? "SUCCESSFUL" : "FAILED"}}"#,
            "FAILED",
        ),
        ("count={{=asInt(workflow.parameters.count) + 1}}", "count=4"),
        ("{{=item.tag}}", "9.1"),
    ];
    for (text, want) in cases {
        assert_eq!(render(text, &s).as_deref(), Ok(*want), "{text}");
    }
}

/// (expression, syntax error?, message fragment).
const EXPRESSION_ERRORS: &[(&str, bool, &str)] = &[
    ("1 +", true, "unexpected end"),
    ("(1", true, "expected `)`"),
    ("[1, 2", true, "expected `]`"),
    ("'open", true, "unterminated string"),
    ("a b", true, "unexpected `b` after"),
    ("foo(1)", true, "unknown function foo"),
    ("sprig.nope(1)", true, "sprig.nope"),
    ("sprig.shuffle('ab')", true, "sprig.shuffle"),
    ("sprig.sha1sum('ab')", true, "sprig.sha1sum"),
    ("inputs.trim()", true, "unknown method trim"),
    ("#", true, "inside a predicate"),
    ("1 not == 2", true, "`not` must be followed"),
    (
        "inputs.parameters.should-print",
        false,
        "unknown name print",
    ),
    ("nosuchname", false, "unknown name nosuchname"),
    ("'a' + 1", false, "mismatched types string and int"),
    ("1 && true", false, "needs a bool"),
    ("!'x'", false, "needs a bool"),
    ("1 % 0", false, "integer divide by zero"),
    ("1.5 % 1", false, "mismatched types"),
    ("asInt('x')", false, "not an integer"),
    ("asInt('1.5')", false, "not an integer"),
    ("asFloat('abc')", false, "not a number"),
    ("[1][5]", false, "index out of range"),
    ("{a: 1}[0]", false, "cannot use int as a map key"),
    ("inputs.parameters.missing.deeper", false, "cannot fetch"),
    ("1 in 'abc'", false, "not defined on string"),
    ("'a' matches '('", false, "invalid regex"),
    ("jsonpath('{', '$.a')", false, "invalid JSON"),
    ("jsonpath('{\"a\":1}', '$.b')", false, "not found"),
    ("1 ? 2 : 3", false, "needs a bool"),
    ("1..1000000000", false, "longer than"),
    ("repeat('x', 100000000)", false, "longer than"),
    ("sprig.div(1, 0)", false, "divide by zero"),
    ("sprig.trim(1)", false, "must be a string"),
    ("len(1)", false, "invalid argument"),
    ("filter(1, # > 0)", false, "must be an array"),
];

#[test]
fn expression_errors_carry_expression_and_position() {
    let s = scope();
    for (src, syntax, fragment) in EXPRESSION_ERRORS {
        let result = parse(src).and_then(|ast| eval(&ast, &s));
        let err = result.expect_err(src);
        match (&err, syntax) {
            (ExprError::Syntax { expr, .. }, true) | (ExprError::Eval { expr, .. }, false) => {
                assert_eq!(expr, src);
            }
            _ => panic!("{src}: wrong error kind {err:?}"),
        }
        assert!(err.to_string().contains(fragment), "{src}: {err}");
    }
    let err = parse("1 + (2 *").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid expression `1 + (2 *` at column 9: unexpected end of expression"
    );
    let err = parse("a.b + 'x' + 1")
        .and_then(|a| eval(&a, &Scope::new().with("a.b", "s")))
        .unwrap_err();
    assert!(matches!(err, ExprError::Eval { pos: 10, .. }), "{err:?}");
}

#[test]
fn nil_expression_result_is_an_error_in_strict_mode() {
    assert_eq!(
        render("{{=inputs.parameters.missing}}", &scope()),
        Err(ExprError::NilResult {
            expr: "inputs.parameters.missing".into()
        })
    );
}

/// (when after nothing to substitute, expected).
const CONDITIONS: &[(&str, bool)] = &[
    ("", true),
    ("heads == heads", true),
    ("heads == tails", false),
    ("tails != heads", true),
    ("Succeeded == Succeeded", true),
    ("Failed != Succeeded", true),
    ("true == true", true),
    ("true", true),
    ("false", false),
    ("false == true", false),
    ("YES == YES", true),
    ("3 == 3", true),
    ("3 == 3.0", true),
    ("3 == '3'", false),
    ("'a b' == 'a b'", true),
    ("\"dq\" == 'dq'", true),
    ("10 > 9", true),
    ("10 > 9.5 && 2 < 3", true),
    ("'b' > 'a'", true),
    ("1 + 1 == 2", true),
    ("2 * 3 - 1 == 5", true),
    ("7 % 4 == 3", true),
    ("2 ** 3 == 8", true),
    ("-1 < 0", true),
    ("!(1 > 2)", true),
    ("!false", true),
    ("(a == a) && (b != c)", true),
    ("a == b || c == c", true),
    ("a == b || c == d", false),
    ("foo =~ '^f.o$'", true),
    ("foo !~ '^b'", true),
    ("'v1.2.3' =~ 'v[0-9]+'", true),
    ("a in (a, b)", true),
    ("c in (a, b)", false),
    ("3 in (1, 2, 3)", true),
    ("'a' + 1 == 'a1'", true),
    ("[escaped var] == 'escaped var'", true),
    ("2 > 1 ? true : false", true),
    ("(1 > 2 ? 'x' : 'y') == y", true),
    ("(6 & 3) == 2", true),
    ("heads== heads", true),
];

#[test]
fn when_conditions_follow_govaluate() {
    for (cond, want) in CONDITIONS {
        assert_eq!(eval_condition(cond), Ok(*want), "{cond}");
    }
}

const BAD_CONDITIONS: &[(&str, &str)] = &[
    (
        "my-value == my-value",
        "cannot be used with the modifier '-'",
    ),
    ("hello world == x", "unexpected token 'world'"),
    ("v1.2 == v1.2", "No parameter"),
    ("a. == b", "Hanging accessor"),
    ("1 == 1 &&", "Unexpected end"),
    ("(1 == 1", "Unbalanced"),
    ("1 == 1)", "Unbalanced"),
    ("a == 'b", "Unclosed string"),
    ("{{x}} == y", "Invalid token"),
    ("a @ b", "Invalid token"),
    ("a", "Expected boolean"),
    ("1 + 1", "Expected boolean"),
    ("a && b", "not a bool"),
    ("'a' > 1", "not a number"),
    ("a in b", "not an array"),
    ("a =~ '('", "invalid regex"),
    ("f(1)", "Undefined function"),
    ("1.2.3 == 1", "Unable to parse numeric"),
    ("   ", "Expected boolean"),
];

#[test]
fn bad_when_conditions_are_errors_naming_the_condition() {
    for (cond, fragment) in BAD_CONDITIONS {
        let err = eval_condition(cond).expect_err(cond);
        let ExprError::When { condition, message } = &err else {
            panic!("{cond}: {err:?}");
        };
        assert_eq!(condition, cond);
        assert!(message.contains(fragment), "{cond}: {message}");
    }
}

#[test]
fn when_with_tags_substitutes_then_decides() {
    let s = scope();
    let cases: &[(&str, bool)] = &[
        ("{{steps.flip-coin.outputs.result}} == heads", true),
        ("{{steps.flip-coin.outputs.result}} == tails", false),
        ("{{inputs.parameters.should-print}} == true", true),
        (r#"{{= inputs.parameters["should-print"] == 'true'}}"#, true),
        (
            "{{=jsonpath(workflow.parameters.json, '$[0].value') == 'true'}}",
            true,
        ),
        ("{{workflow.status}} == Succeeded", false),
        ("{{workflow.status}} != Succeeded", true),
        ("{{steps.approval.outputs.parameters.approve}} == YES", true),
        ("{{tasks.A.outputs.result}} > 40", true),
        (
            "{{tasks.A.status}} == Succeeded && {{inputs.parameters.x}} < 10",
            true,
        ),
        ("{{=asInt(tasks.A.outputs.result) % 2 == 0}}", true),
        ("{{item.image}} =~ '^deb'", true),
    ];
    for (when, want) in cases {
        assert_eq!(eval_when(when, &s), Ok(*want), "{when}");
    }
    assert_eq!(
        eval_when("{{steps.nope.outputs.result}} == x", &s),
        Err(ExprError::Unresolved {
            tag: "steps.nope.outputs.result".into()
        })
    );
}

#[test]
fn conditions_with_variables_for_sensor_filters() {
    let vars = |name: &str| match name {
        "a" => Some(Value::Str("b".into())),
        "n" => Some(Value::Float(12.0)),
        "body" => Some(Value::from(json!({"x": {"y": "z"}}))),
        _ => None,
    };
    let cases: &[(&str, bool)] = &[
        ("a == 'b'", true),
        ("a == \"c\"", false),
        ("n > 10 && a != 'x'", true),
        ("body.x.y == 'z'", true),
        ("n in (1, 12)", true),
    ];
    for (cond, want) in cases {
        let c = Condition::parse(cond).unwrap();
        assert_eq!(c.eval_with(&vars), Ok(Value::Bool(*want)), "{cond}");
    }
    let err = Condition::parse("missing == 1")
        .unwrap()
        .eval_with(&vars)
        .unwrap_err();
    assert!(
        err.to_string().contains("No parameter 'missing' found"),
        "{err}"
    );
}

#[test]
fn scope_expands_like_argo() {
    let s = Scope::new()
        .with("a", "shadowed")
        .with("a.b", "1")
        .with("a.c.d", "2")
        .with("ab", "4");
    let ast = parse("a").unwrap();
    assert_eq!(
        eval(&ast, &s).map(|v| v.to_json()),
        Ok(json!({"b": "1", "c": {"d": "2"}}))
    );
    assert_eq!(eval(&parse("ab").unwrap(), &s), Ok(Value::from("4")));
    assert!(s.knows("a.c") && s.knows("a.c.d") && !s.knows("a.x") && !s.knows("a.c.d.e"));
    // A simple tag reads the exact name even when it has children.
    assert_eq!(render("{{a}}", &s).as_deref(), Ok("shadowed"));
}

/// Every tag and `when` in the conformance manifests renders or decides with a scope that has
/// the variables Argo provides there.
#[test]
fn conformance_manifests_tags_and_whens() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/workflows");
    let mut s = scope();
    for (k, v) in [
        ("inputs.parameters.msg", "m"),
        ("inputs.parameters.should-print", "true"),
    ] {
        s.insert(k, v);
    }
    let mut tags = 0;
    let mut whens = 0;
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("conformance dir")
        .flatten()
        .collect();
    files.sort_by_key(|e| e.path());
    for entry in files {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        for line in text.lines() {
            let line = line.trim_start();
            if line.starts_with('#') {
                continue;
            }
            let value = line.split_once(": ").map(|(_, v)| v).unwrap_or(line);
            let value = value.split(" # ").next().unwrap_or(value).trim();
            let value: String = serde_saphyr::from_str::<String>(value)
                .ok()
                .or_else(|| {
                    serde_saphyr::from_str::<Vec<String>>(value)
                        .ok()
                        .map(|v| v.join(" "))
                })
                .unwrap_or_else(|| value.to_owned());
            if line.starts_with("when:") {
                whens += 1;
                eval_when(&value, &s)
                    .unwrap_or_else(|e| panic!("{}: {value}: {e}", path.display()));
            } else if value.contains("{{") {
                tags += 1;
                let out = render(&value, &s)
                    .unwrap_or_else(|e| panic!("{}: {value}: {e}", path.display()));
                assert!(!out.contains("{{"), "{}: {out}", path.display());
            }
        }
    }
    assert!(tags >= 30 && whens >= 8, "tags {tags}, whens {whens}");
}

/// A tiny deterministic generator (no extra crates): xorshift.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const ALPHABET: &[&str] = &[
    "a",
    "b",
    "1",
    "0",
    "2.5",
    ".",
    "..",
    "'",
    "\"",
    "`",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "{{",
    "}}",
    "=",
    "==",
    "!",
    "?",
    ":",
    "??",
    "?.",
    "#",
    "#index",
    ",",
    "+",
    "-",
    "*",
    "/",
    "%",
    "**",
    "^",
    "&&",
    "||",
    "|",
    "<",
    ">",
    "=~",
    "!~",
    " ",
    "in",
    "not",
    "and",
    "matches",
    "nil",
    "true",
    "map(",
    "filter(",
    "sprig.",
    "upper(",
    "jsonpath(",
    "inputs.parameters.x",
    "item",
    "\\",
    "é",
    "1e400",
    "9223372036854775807",
    "-",
    "$",
    "[0]",
    "[-1]",
    "[:",
    "..",
    "{a:",
    "\n",
    "_",
    "now()",
    "date(",
    "duration(",
    "'1h30m'",
    "'2026-01-01T00:05:00Z'",
    ".Seconds()",
    ".Unix()",
    ".Add(",
];

#[test]
fn garbage_never_panics() {
    let mut s = scope();
    s.extend(&time_scope());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let n = (rng.next() % 16) as usize;
        let mut text = String::new();
        for _ in 0..n {
            text.push_str(ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize]);
        }
        let _ = parse(&text).map(|ast| eval(&ast, &s));
        let _ = render(&text, &s);
        let _ = render_with(&text, &s, Unresolved::Keep);
        let _ = eval_condition(&text);
        let _ = references(&text);
        let _ = super::regex::Regex::new(&text).map(|r| r.is_match("abc é 123"));
        let _ = super::jsonpath::query(&Value::from(json!({"a": [1]})), &text);
        let _ = Duration::parse(&text);
        let _ = Time::parse(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(matches!(parse(&deep), Err(ExprError::Syntax { .. })));
    let deep_unary = format!("{}true", "!".repeat(5000));
    assert!(parse(&deep_unary).is_err());
    assert!(eval_condition(&format!("{}1 == 1{}", "(".repeat(5000), ")".repeat(5000))).is_err());
    assert!(eval_condition(&format!("{}true", "!".repeat(5000))).is_err());
    assert!(super::regex::Regex::new(&"(".repeat(5000)).is_err());
    assert!(super::regex::Regex::new("(a{1000}){1000}").is_err());
}

/// The messages users read: each names the tag, expression or condition and says what is wrong.
#[test]
fn error_messages_snapshot() {
    let s = scope();
    let mut out: Vec<(String, String)> = Vec::new();
    let texts = [
        "{{inputs.parameters.typo}}",
        "echo {{inputs.parameters.message",
        "{{=inputs.parameters['x'] +}}",
        "{{=inputs.parameters.x + 1}}",
        "{{=asInt(inputs.parameters.message)}}",
        "{{=inputs.parameters.missing}}",
        "{{=steps.flip-coin.outputs.result}}",
        "{{=sprig.nosuch(1)}}",
        "{{=jsonpath(inputs.parameters.json, '$.nope')}}",
        "{{='a' matches '[a-'}}",
    ];
    for t in texts {
        out.push((t.to_owned(), render(t, &s).unwrap_err().to_string()));
    }
    let known = |n: &str| s.knows(n);
    out.push((
        "check: {{workflow.parameters.nope}}".into(),
        check("{{workflow.parameters.nope}}", &known)
            .unwrap_err()
            .to_string(),
    ));
    for w in [
        "{{steps.flip-coin.outputs.result}} == my-value",
        "hello world == hello world",
        "{{workflow.status}}",
        "{{=asInt(tasks.A.outputs.result) > 'x'}}",
    ] {
        out.push((
            format!("when: {w}"),
            eval_when(w, &s).unwrap_err().to_string(),
        ));
    }
    insta::assert_yaml_snapshot!(out);
}

#[test]
fn json_documents_render_and_validate_with_field_paths() {
    let s = scope();
    let doc = json!({
        "name": "print",
        "container": {
            "image": "{{inputs.parameters.image}}:{{inputs.parameters.tag}}",
            "args": ["{{inputs.parameters.message}}", "{{=asInt(inputs.parameters.x) + 1}}", 3],
        },
        "{{workflow.name}}": true,
    });
    let out = render_json(&doc, &s, Unresolved::Error).unwrap();
    assert_eq!(
        out,
        json!({
            "name": "print",
            "container": {"image": "debian:9.1", "args": ["hello world", "6", 3]},
            "wf-abc": true,
        })
    );
    let bad = json!({"container": {"args": ["ok", "{{inputs.parameters.typo}}"]}});
    assert_eq!(
        render_json(&bad, &s, Unresolved::Error),
        Err((
            ".container.args[1]".into(),
            ExprError::Unresolved {
                tag: "inputs.parameters.typo".into()
            }
        ))
    );
    let known = |n: &str| s.knows(n) || !is_validated_name(n);
    let found = unresolved_in_json(&bad, &known).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, ".container.args[1]");
    assert_eq!(found[0].1.name, "inputs.parameters.typo");
    let syntax = json!({"when": "{{=1 +}}"});
    assert!(matches!(
        unresolved_in_json(&syntax, &known),
        Err((path, ExprError::Syntax { .. })) if path == ".when"
    ));
}

#[test]
fn scope_from_pairs_and_parsed_expressions_are_reusable() {
    let s: Scope = [("inputs.parameters.n", "2"), ("workflow.name", "w")]
        .into_iter()
        .collect();
    assert_eq!(s.len(), 2);
    let ast = parse("asInt(inputs.parameters.n) * 10 + len(workflow.name)").unwrap();
    assert_eq!(
        ast.source(),
        "asInt(inputs.parameters.n) * 10 + len(workflow.name)"
    );
    assert_eq!(ast.references(), ["inputs.parameters.n", "workflow.name"]);
    assert_eq!(eval(&ast, &s), Ok(Value::Int(21)));
    let other = Scope::new()
        .with("inputs.parameters.n", "3")
        .with("workflow.name", "ab");
    assert_eq!(eval(&ast, &other), Ok(Value::Int(32)));
    // Typed values (sensor payloads) work too.
    let typed = Scope::new().with("body", json!({"n": 4, "tags": ["a", "b"]}));
    let ast = parse("body.n * 2 == 8 && 'b' in body.tags").unwrap();
    assert_eq!(eval(&ast, &typed), Ok(Value::Bool(true)));
}

/// The scope of the time tests: a fixed clock and a time and a duration variable.
fn time_scope() -> Scope {
    let now: jiff::Timestamp = "2026-01-01T00:12:00Z".parse().expect("test clock");
    let last = Time::parse("2026-01-01T00:05:00Z").expect("test time");
    Scope::new()
        .with_now(now)
        .with("last", Value::Time(last))
        .with("never", Value::Nil)
}

/// Expression, then the result as Go's `%v` prints it.
const TIME_EXPRESSIONS: &[(&str, &str)] = &[
    ("now()", "2026-01-01 00:12:00 +0000 UTC"),
    ("now() - last", "7m0s"),
    ("(now() - last).Seconds()", "420"),
    ("(now() - last).Minutes()", "7"),
    ("(now() - last).Hours() < 0.12", "true"),
    ("(now() - last).Milliseconds()", "420000"),
    ("(now() - last).Seconds() > 360", "true"),
    ("(last - now()).Seconds()", "-420"),
    ("(last - now()).Abs() == duration('7m')", "true"),
    ("last + duration('1h30m')", "2026-01-01 01:35:00 +0000 UTC"),
    ("duration('1h') + last", "2026-01-01 01:05:00 +0000 UTC"),
    ("last - duration('5m')", "2026-01-01 00:00:00 +0000 UTC"),
    ("duration('1h') - duration('90m')", "-30m0s"),
    ("duration('1h') + duration('1.5s')", "1h0m1.5s"),
    ("last < now()", "true"),
    ("last >= now()", "false"),
    ("last == date('2026-01-01T02:05:00+02:00')", "true"),
    ("last != now()", "true"),
    ("duration('360s') == duration('6m')", "true"),
    ("duration('1ms') < duration('1s')", "true"),
    ("date('2026-03-04')", "2026-03-04 00:00:00 +0000 UTC"),
    (
        "date('2026-03-04 05:06:07')",
        "2026-03-04 05:06:07 +0000 UTC",
    ),
    (
        "date('2026-03-04T05:06:07.25+02:00')",
        "2026-03-04 05:06:07.25 +0200 +0200",
    ),
    ("date('2026-03-04T05:06:07+02:00').Hour()", "5"),
    ("date('2026-03-04T05:06:07+02:00').UTC().Hour()", "3"),
    ("date('2026-03-04T05:06:07Z').Unix()", "1772600767"),
    ("last.Year()", "2026"),
    ("last.Month()", "1"),
    ("last.Day()", "1"),
    ("last.Minute()", "5"),
    ("last.YearDay()", "1"),
    ("last.Weekday()", "4"),
    ("last.Before(now())", "true"),
    ("last.After(now())", "false"),
    ("now().Sub(last).String()", "7m0s"),
    ("last.Add(duration('-5m')).Unix()", "1767225600"),
    ("string(duration('1500ms'))", "1.5s"),
    ("toJson(last)", "\"2026-01-01T00:05:00Z\""),
    ("toJson(duration('1s'))", "1000000000"),
    ("never == nil || (now() - never).Seconds() > 360", "true"),
    ("never?.Seconds()", "<nil>"),
];

#[test]
fn time_values_follow_expr_lang() {
    let s = time_scope();
    for (src, want) in TIME_EXPRESSIONS {
        let ast = parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        let got = eval(&ast, &s).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(got.go_string(), *want, "{src}");
    }
}

#[test]
fn time_errors_name_the_problem() {
    let s = time_scope();
    let cases: &[(&str, &str)] = &[
        (
            "now() - '2026-01-01T00:05:00Z'",
            "mismatched types time.Time and string",
        ),
        (
            "last < '2026-01-02'",
            "mismatched types time.Time and string",
        ),
        ("last + last", "mismatched types time.Time and time.Time"),
        (
            "duration('1h') - last",
            "mismatched types time.Duration and time.Time",
        ),
        (
            "duration('1h') < 3600",
            "mismatched types time.Duration and int",
        ),
        ("duration('90')", "missing unit"),
        ("duration('1d')", "unknown unit \"d\""),
        ("duration('')", "empty"),
        ("duration(3)", "must be a string, got int"),
        ("date('yesterday')", "expected RFC 3339"),
        ("date('2026-01-01', '2006-01-02')", "layout"),
        ("now(1)", "takes no arguments"),
        ("last.Seconds()", "type time.Time has no method Seconds"),
        (
            "(now() - last).Unix()",
            "type time.Duration has no method Unix",
        ),
        ("last.Before(1)", "needs a time.Time, got int"),
        ("'x'.Seconds()", "type string has no method Seconds"),
        ("date('9999-01-01') + duration('2562047h')", "out of range"),
    ];
    for (src, want) in cases {
        let err = parse(src)
            .and_then(|a| eval(&a, &s))
            .expect_err(src)
            .to_string();
        assert!(err.contains(want), "{src}: {err}");
    }
    // Parse time: only known methods.
    let err = parse("last.Format('2006')")
        .expect_err("Format")
        .to_string();
    assert!(err.contains("unknown method Format"), "{err}");
    // No clock: now() is an error, never the system time.
    let err = parse("now()")
        .and_then(|a| eval(&a, &Scope::new()))
        .expect_err("no clock")
        .to_string();
    assert!(err.contains("no clock"), "{err}");
}

#[test]
fn durations_parse_and_print_like_go() {
    // Go's time.ParseDuration then Duration.String().
    let cases: &[(&str, i64, &str)] = &[
        ("0", 0, "0s"),
        ("-0", 0, "0s"),
        ("360s", 360_000_000_000, "6m0s"),
        ("1h30m", 5_400_000_000_000, "1h30m0s"),
        ("1.5h", 5_400_000_000_000, "1h30m0s"),
        ("+5s", 5_000_000_000, "5s"),
        ("-1m30s", -90_000_000_000, "-1m30s"),
        (".5s", 500_000_000, "500ms"),
        ("1.s", 1_000_000_000, "1s"),
        ("300ms", 300_000_000, "300ms"),
        ("1500us", 1_500_000, "1.5ms"),
        ("2µs", 2_000, "2µs"),
        ("7ns", 7, "7ns"),
        ("1001ns", 1_001, "1.001µs"),
        ("72h3m0.5s", 259_380_500_000_000, "72h3m0.5s"),
        (
            "2562047h47m16.854775807s",
            i64::MAX,
            "2562047h47m16.854775807s",
        ),
        (
            "-2562047h47m16.854775808s",
            i64::MIN,
            "-2562047h47m16.854775808s",
        ),
    ];
    for (src, nanos, text) in cases {
        let d = Duration::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(d.nanos(), *nanos, "{src}");
        assert_eq!(d.go_string(), *text, "{src}");
    }
    for bad in [
        "",
        "+",
        "-",
        "s",
        "1",
        "1x",
        "1h1",
        ".s",
        "1..5s",
        "2562047h47m16.854775808s",
        "9999999999999999999999h",
    ] {
        assert!(Duration::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn time_tags_render_like_argo() {
    let s = time_scope();
    let cases: &[(&str, &str)] = &[
        // A non-string result is inserted as Go's JSON, as Argo does.
        ("{{= now() }}", "\"2026-01-01T00:12:00Z\""),
        ("{{= now() - last }}", "420000000000"),
        ("{{= string(now() - last) }}", "7m0s"),
        ("{{= last.Unix() }}", "1767225900"),
        ("{{= (now() - last).Seconds() > 360 }}", "true"),
    ];
    for (tpl, want) in cases {
        assert_eq!(render(tpl, &s).as_deref(), Ok(*want), "{tpl}");
    }
    assert_eq!(
        eval_when("{{= never == nil || (now() - never).Seconds() > 360 }}", &s),
        Ok(true)
    );
    assert_eq!(
        eval_when("{{= (now() - last).Seconds() > 600 }}", &s),
        Ok(false)
    );
}
