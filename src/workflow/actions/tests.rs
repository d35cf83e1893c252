use super::*;
use crate::workflow::types::{Outputs, WorkflowStatus};

fn node(id: &str, name: &str, kind: &str, phase: &str, children: &[&str]) -> NodeStatus {
    NodeStatus {
        id: Some(id.to_owned()),
        name: Some(name.to_owned()),
        node_type: Some(kind.to_owned()),
        phase: Some(phase.to_owned()),
        template_name: Some("t".to_owned()),
        message: (phase == "Failed").then(|| "boom".to_owned()),
        finished_at: Some("2026-01-01T00:00:00Z".to_owned()),
        children: (!children.is_empty()).then(|| children.iter().map(|c| c.to_string()).collect()),
        ..Default::default()
    }
}

fn wf_with(phase: &str, nodes: Vec<NodeStatus>) -> Workflow {
    let mut wf = Workflow::test("ns", "wf").with_phase(phase);
    let status = wf.status.get_or_insert_with(WorkflowStatus::default);
    status.finished_at = Some("2026-01-01T00:00:00Z".to_owned());
    status.message = Some("child failed".to_owned());
    status.nodes = Some(
        nodes
            .into_iter()
            .map(|n| (n.id.clone().unwrap_or_default(), n))
            .collect(),
    );
    wf
}

fn now() -> Timestamp {
    "2026-02-02T00:00:00Z".parse().unwrap()
}

/// wf (DAG) -> a (Pod, Succeeded), b (Pod, Failed) ; b's dependent c omitted.
fn dag_failed() -> Workflow {
    wf_with(
        "Failed",
        vec![
            node("wf", "wf", "DAG", "Failed", &["wf-a", "wf-b"]),
            node("wf-a", "wf.a", "Pod", "Succeeded", &["wf-b"]),
            node("wf-b", "wf.b", "Pod", "Failed", &[]),
            node("wf-x", "wf.onExit", "Pod", "Succeeded", &[]),
        ],
    )
}

#[test]
fn suspend_stop_terminate_table() {
    type Act = fn(&Workflow) -> Result<Workflow, ActionError>;
    let cases: [(&str, Act, &str); 3] = [
        ("suspend", suspend, "suspend"),
        ("stop", stop, "stop"),
        ("terminate", terminate, "terminate"),
    ];
    for (label, act, action) in cases {
        for phase in ["Running", "Pending", ""] {
            let wf = Workflow::test("ns", "wf").with_phase(phase);
            let out = act(&wf).unwrap_or_else(|e| panic!("{label} {phase}: {e}"));
            match label {
                "suspend" => assert_eq!(out.spec.suspend, Some(true)),
                "stop" => assert_eq!(out.spec.shutdown.as_deref(), Some("Stop")),
                _ => assert_eq!(out.spec.shutdown.as_deref(), Some("Terminate")),
            }
        }
        for phase in ["Succeeded", "Failed", "Error"] {
            let wf = Workflow::test("ns", "wf").with_phase(phase);
            assert_eq!(
                act(&wf),
                Err(ActionError::Completed {
                    action,
                    workflow: "ns/wf".into(),
                    phase: phase.into()
                }),
                "{label} {phase}"
            );
        }
    }
}

#[test]
fn resume_unsets_suspend_and_completes_suspend_nodes() {
    let mut wf = wf_with(
        "Running",
        vec![
            node("wf", "wf", "Steps", "Running", &["wf-s"]),
            node("wf-s", "wf[0].approve", "Suspend", "Running", &[]),
            node("wf-p", "wf[0].other", "Pod", "Running", &[]),
        ],
    );
    wf.spec.suspend = Some(true);
    let out = resume(&wf, now()).unwrap();
    assert_eq!(out.spec.suspend, None);
    let nodes = out.status.unwrap().nodes.unwrap();
    assert_eq!(nodes["wf-s"].phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        nodes["wf-s"].finished_at.as_deref(),
        Some("2026-02-02T00:00:00Z")
    );
    assert_eq!(nodes["wf-p"].phase.as_deref(), Some("Running"));
    assert_eq!(nodes["wf"].phase.as_deref(), Some("Running"));
}

#[test]
fn resume_supplied_outputs_default_or_refuse() {
    let mut wf = wf_with(
        "Running",
        vec![node("wf-s", "wf[0].approve", "Suspend", "Running", &[])],
    );
    let param = |default: Option<&str>| Parameter {
        name: "ok".into(),
        value_from: Some(serde_json::json!({"supplied": {}})),
        default: default.map(|d| Value::String(d.into())),
        ..Default::default()
    };
    let set = |wf: &mut Workflow, p: Parameter| {
        let n = wf
            .status
            .as_mut()
            .unwrap()
            .nodes
            .as_mut()
            .unwrap()
            .get_mut("wf-s")
            .unwrap();
        n.outputs = Some(Outputs {
            parameters: Some(vec![p]),
            ..Default::default()
        });
    };
    set(&mut wf, param(Some("yes")));
    let out = resume(&wf, now()).unwrap();
    let n = &out.status.unwrap().nodes.unwrap()["wf-s"];
    assert_eq!(
        n.outputs.as_ref().unwrap().parameters.as_ref().unwrap()[0].value,
        Some(Value::String("yes".into()))
    );
    set(&mut wf, param(None));
    assert_eq!(
        resume(&wf, now()),
        Err(ActionError::UnsetSuppliedOutput {
            workflow: "ns/wf".into(),
            node: "wf[0].approve".into(),
            parameter: "ok".into()
        })
    );
}

#[test]
fn retry_refuses_unfinished_or_succeeded() {
    for phase in ["Running", "Succeeded", "Pending", ""] {
        let wf = Workflow::test("ns", "wf").with_phase(phase);
        assert_eq!(
            retry(&wf, &[], now()).map(|_| ()),
            Err(ActionError::NotRetryable {
                workflow: "ns/wf".into(),
                phase: phase.into()
            }),
            "{phase}"
        );
    }
}

#[test]
fn retry_removes_failed_pods_and_exit_handler_keeps_succeeded() {
    let mut wf = dag_failed();
    wf.metadata.labels = Some(
        [
            (LABEL_COMPLETED.to_owned(), "true".to_owned()),
            (LABEL_PHASE.to_owned(), "Failed".to_owned()),
            ("team".to_owned(), "ml".to_owned()),
        ]
        .into(),
    );
    wf.spec.shutdown = Some("Terminate".into());
    wf.spec.active_deadline_seconds = Some(0);
    let out = retry(&wf, &[], now()).unwrap();
    let status = out.workflow.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.finished_at, None);
    assert_eq!(status.message, None);
    let nodes = status.nodes.as_ref().unwrap();
    let ids: Vec<&str> = nodes.keys().map(String::as_str).collect();
    assert_eq!(ids, ["wf", "wf-a"]);
    // The succeeded pod is untouched; the root DAG is reset to run again.
    assert_eq!(
        nodes["wf-a"],
        dag_failed().status.unwrap().nodes.unwrap()["wf-a"]
            .clone()
            .tap_children(&[])
    );
    assert_eq!(nodes["wf"].phase.as_deref(), Some("Running"));
    assert_eq!(nodes["wf"].finished_at, None);
    assert_eq!(
        nodes["wf"].children.as_deref(),
        Some(&["wf-a".to_owned()][..])
    );
    assert_eq!(
        out.pods_to_delete,
        [
            pod_name("wf", "t", "wf.b"),
            pod_name("wf", "t", "wf.onExit")
        ]
    );
    let labels = out.workflow.metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get(LABEL_COMPLETED), None);
    assert_eq!(labels.get(LABEL_PHASE).map(String::as_str), Some("Running"));
    assert_eq!(labels.get("team").map(String::as_str), Some("ml"));
    assert_eq!(out.workflow.spec.shutdown, None);
    assert_eq!(out.workflow.spec.active_deadline_seconds, None);
    let cond = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        cond,
        &serde_json::json!({"type": "Completed", "status": "False"})
    );
}

trait TapChildren {
    fn tap_children(self, children: &[&str]) -> Self;
}
impl TapChildren for NodeStatus {
    fn tap_children(mut self, children: &[&str]) -> Self {
        if children.is_empty() {
            // wf-a listed wf-b as a child (its dependent); the retry prunes removed ids.
            self.children = Some(Vec::new());
        } else {
            self.children = Some(children.iter().map(|c| c.to_string()).collect());
        }
        self
    }
}

#[test]
fn retry_resets_every_ancestor_of_a_failed_pod() {
    // wf (Steps) -> [0] (StepGroup) -> retry node (Retry) -> attempt pods (0 failed, 1 failed)
    let wf = wf_with(
        "Failed",
        vec![
            node("wf", "wf", "Steps", "Failed", &["g0"]),
            node("g0", "wf[0]", "StepGroup", "Failed", &["r"]),
            node("r", "wf[0].s", "Retry", "Failed", &["p0", "p1"]),
            node("p0", "wf[0].s(0)", "Pod", "Failed", &[]),
            node("p1", "wf[0].s(1)", "Pod", "Error", &[]),
        ],
    );
    let out = retry(&wf, &[], now()).unwrap();
    let nodes = out.workflow.status.unwrap().nodes.unwrap();
    let got: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(k, n)| (k.as_str(), n.phase.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [("g0", "Running"), ("r", "Running"), ("wf", "Running")]
    );
    assert_eq!(nodes["r"].children.as_deref(), Some(&[][..]));
    assert_eq!(out.pods_to_delete.len(), 2);
}

#[test]
fn retry_keeps_a_failed_pod_whose_descendant_succeeded() {
    // Argo's isDescendantNodeSucceeded: a failed node with a succeeded descendant is kept.
    let wf = wf_with(
        "Failed",
        vec![
            node("wf", "wf", "DAG", "Failed", &["a"]),
            node("a", "wf.a", "Pod", "Failed", &["b"]),
            node("b", "wf.b", "Pod", "Succeeded", &[]),
        ],
    );
    let out = retry(&wf, &[], now()).unwrap();
    assert_eq!(out.workflow.status.unwrap().nodes.unwrap().len(), 3);
    assert!(out.pods_to_delete.is_empty());
}

#[test]
fn retry_skipped_ancestors_stay_skipped() {
    let wf = wf_with(
        "Error",
        vec![
            node("wf", "wf", "DAG", "Skipped", &["a"]),
            node("a", "wf.a", "Pod", "Error", &[]),
        ],
    );
    let out = retry(&wf, &[], now()).unwrap();
    assert_eq!(
        out.workflow.status.unwrap().nodes.unwrap()["wf"]
            .phase
            .as_deref(),
        Some("Skipped")
    );
}

#[test]
fn parameters_parse_and_override() {
    assert_eq!(
        parse_parameters(&["a=1".into(), "b=x=y".into(), "c=".into()]).unwrap(),
        [
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "x=y".to_owned()),
            ("c".to_owned(), String::new())
        ]
    );
    for bad in ["a", "=1", ""] {
        assert_eq!(
            parse_parameters(&[bad.into()]),
            Err(ActionError::ParameterSyntax { given: bad.into() })
        );
    }
    let mut wf = dag_failed();
    let err = retry(&wf, &[("x".into(), "1".into())], now()).unwrap_err();
    assert_eq!(
        err,
        ActionError::NoParameters {
            workflow: "ns/wf".into()
        }
    );
    wf.spec.arguments = Some(Arguments {
        parameters: Some(vec![
            Parameter {
                name: "keep".into(),
                value: Some("k".into()),
                ..Default::default()
            },
            Parameter {
                name: "x".into(),
                value: Some("old".into()),
                ..Default::default()
            },
        ]),
        ..Default::default()
    });
    let out = retry(&wf, &[("x".into(), "new".into())], now()).unwrap();
    let params = out.workflow.spec.arguments.unwrap().parameters.unwrap();
    let got: Vec<(String, String)> = params
        .iter()
        .map(|p| (p.name.clone(), p.value_text().unwrap_or_default()))
        .collect();
    assert_eq!(
        got,
        [("x".into(), "new".into()), ("keep".into(), "k".into())]
    );
}

#[test]
fn submit_parameters_replace_or_append() {
    let mut wf = Workflow::test("ns", "wf");
    apply_submit_parameters(&mut wf, &[("a".into(), "1".into())]);
    apply_submit_parameters(
        &mut wf,
        &[("a".into(), "2".into()), ("b".into(), "3".into())],
    );
    let params = wf.spec.arguments.unwrap().parameters.unwrap();
    let got: Vec<(String, String)> = params
        .iter()
        .map(|p| (p.name.clone(), p.value_text().unwrap_or_default()))
        .collect();
    assert_eq!(got, [("a".into(), "2".into()), ("b".into(), "3".into())]);
}

#[test]
fn resubmit_table() {
    struct Case {
        name: &'static str,
        generate_name: Option<&'static str>,
        want_generate: &'static str,
    }
    let cases = [
        Case {
            name: "hello-abcde",
            generate_name: Some("hello-"),
            want_generate: "hello-",
        },
        Case {
            name: "fixed",
            generate_name: None,
            want_generate: "fixed-",
        },
        Case {
            name: "fixed",
            generate_name: Some(""),
            want_generate: "fixed-",
        },
    ];
    for case in cases {
        let mut wf = dag_failed();
        wf.metadata.name = Some(case.name.into());
        wf.metadata.generate_name = case.generate_name.map(str::to_owned);
        wf.metadata.uid = Some("uid-1".into());
        wf.metadata.resource_version = Some("42".into());
        wf.metadata.labels = Some(
            [
                (LABEL_PHASE, "Failed"),
                (LABEL_COMPLETED, "true"),
                (CREATOR_LABELS[0], "alice"),
                ("team", "ml"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        wf.spec.shutdown = Some("Stop".into());
        let out = resubmit(&wf, &[]).unwrap();
        assert_eq!(out.metadata.name, None);
        assert_eq!(
            out.metadata.generate_name.as_deref(),
            Some(case.want_generate)
        );
        assert_eq!(out.metadata.uid, None);
        assert_eq!(out.metadata.resource_version, None);
        assert_eq!(out.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(out.status, None);
        assert_eq!(out.spec.shutdown, None);
        assert_eq!(out.spec.templates, wf.spec.templates);
        let labels = out.metadata.labels.unwrap();
        let keys: Vec<&str> = labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["team", LABEL_RESUBMITTED_FROM]);
        assert_eq!(labels[LABEL_RESUBMITTED_FROM], case.name);
    }
}

#[test]
fn completed_phases() {
    for (phase, want) in [
        (Some("Succeeded"), true),
        (Some("Failed"), true),
        (Some("Error"), true),
        (Some("Running"), false),
        (Some("Pending"), false),
        (None, false),
    ] {
        assert_eq!(is_completed(phase), want, "{phase:?}");
    }
}
