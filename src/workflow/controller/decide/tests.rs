use super::*;
use serde_json::json;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-01-01T00:00:00Z";

fn pod(name: &str, phase: PodPhase, labels: &[(&str, &str)]) -> GcPod {
    GcPod {
        name: name.to_owned(),
        phase,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        finished_at: matches!(
            phase,
            PodPhase::Succeeded | PodPhase::Failed | PodPhase::Error
        )
        .then(|| ts(T0)),
    }
}

fn pods() -> Vec<GcPod> {
    vec![
        pod("ok", PodPhase::Succeeded, &[("keep", "no")]),
        pod("bad", PodPhase::Failed, &[]),
        pod("err", PodPhase::Error, &[]),
        pod("run", PodPhase::Running, &[]),
    ]
}

#[test]
fn pod_gc_parsing() {
    assert_eq!(PodGc::from_spec("ns/wf", None), Ok(None));
    assert_eq!(PodGc::from_spec("ns/wf", Some(&json!({}))), Ok(None));
    assert_eq!(
        PodGc::from_spec("ns/wf", Some(&json!({"strategy": ""}))),
        Ok(None)
    );
    let gc = PodGc::from_spec(
        "ns/wf",
        Some(&json!({
            "strategy": "OnPodSuccess",
            "labelSelector": {"matchLabels": {"keep": "no"}},
            "deleteDelayDuration": "30s"
        })),
    )
    .unwrap()
    .unwrap();
    assert_eq!(gc.strategy, GcStrategy::OnPodSuccess);
    assert_eq!(gc.match_labels.get("keep").map(String::as_str), Some("no"));
    assert_eq!(gc.delay, SignedDuration::from_secs(30));
    let err = PodGc::from_spec("ns/wf", Some(&json!({"strategy": "Always"}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "workflow ns/wf: spec.podGC.strategy \"Always\": expected OnPodCompletion, OnPodSuccess, OnWorkflowCompletion or OnWorkflowSuccess"
    );
    assert!(matches!(
        PodGc::from_spec(
            "ns/wf",
            Some(&json!({"strategy": "OnPodSuccess", "deleteDelayDuration": "soon"}))
        ),
        Err(DecideError::PodGcDelay { .. })
    ));
}

#[test]
fn gc_strategy_table() {
    let now = ts("2026-01-01T00:01:00Z");
    let gc = |strategy| PodGc {
        strategy,
        match_labels: BTreeMap::new(),
        delay: SignedDuration::ZERO,
    };
    let cases: [(GcStrategy, Option<&str>, &[&str]); 8] = [
        (
            GcStrategy::OnPodCompletion,
            Some("Running"),
            &["ok", "bad", "err"],
        ),
        (GcStrategy::OnPodSuccess, Some("Running"), &["ok"]),
        (GcStrategy::OnWorkflowCompletion, Some("Running"), &[]),
        (
            GcStrategy::OnWorkflowCompletion,
            Some("Failed"),
            &["ok", "bad", "err", "run"],
        ),
        (GcStrategy::OnWorkflowSuccess, Some("Failed"), &[]),
        (GcStrategy::OnWorkflowSuccess, Some("Error"), &[]),
        (
            GcStrategy::OnWorkflowSuccess,
            Some("Succeeded"),
            &["ok", "bad", "err", "run"],
        ),
        (GcStrategy::OnPodSuccess, Some("Succeeded"), &["ok"]),
    ];
    for (strategy, phase, want) in cases {
        let plan = gc_plan(&gc(strategy), phase, Some(ts(T0)), &pods(), now);
        assert_eq!(plan.delete, want, "{strategy:?} {phase:?}");
        assert_eq!(plan.recheck_after, None);
    }
}

#[test]
fn gc_label_selector_and_delay() {
    let gc = PodGc {
        strategy: GcStrategy::OnPodCompletion,
        match_labels: [("keep".to_owned(), "no".to_owned())].into(),
        delay: SignedDuration::from_secs(60),
    };
    let early = gc_plan(
        &gc,
        Some("Running"),
        None,
        &pods(),
        ts("2026-01-01T00:00:20Z"),
    );
    assert!(early.delete.is_empty());
    assert_eq!(early.recheck_after, Some(SignedDuration::from_secs(40)));
    let due = gc_plan(
        &gc,
        Some("Running"),
        None,
        &pods(),
        ts("2026-01-01T00:01:00Z"),
    );
    assert_eq!(due.delete, ["ok"]);
}

#[test]
fn ttl_table() {
    let ttl = json!({"secondsAfterCompletion": 100, "secondsAfterSuccess": 10, "secondsAfterFailure": 50});
    let only_completion = json!({"secondsAfterCompletion": 100});
    let at = |secs: i64| ts(T0).checked_add(SignedDuration::from_secs(secs)).unwrap();
    let cases: [(&Value, Option<&str>, i64, TtlDecision); 9] = [
        (&ttl, Some("Running"), 1000, TtlDecision::Keep),
        (&ttl, None, 1000, TtlDecision::Keep),
        (
            &ttl,
            Some("Succeeded"),
            5,
            TtlDecision::After(SignedDuration::from_secs(5)),
        ),
        (&ttl, Some("Succeeded"), 10, TtlDecision::Delete),
        (
            &ttl,
            Some("Failed"),
            10,
            TtlDecision::After(SignedDuration::from_secs(40)),
        ),
        (&ttl, Some("Error"), 50, TtlDecision::Delete),
        (
            &only_completion,
            Some("Succeeded"),
            99,
            TtlDecision::After(SignedDuration::from_secs(1)),
        ),
        (&only_completion, Some("Failed"), 100, TtlDecision::Delete),
        (&json!({}), Some("Failed"), 100, TtlDecision::Keep),
    ];
    for (spec, phase, elapsed, want) in cases {
        let got = ttl_decision("ns/wf", Some(spec), phase, Some(ts(T0)), at(elapsed)).unwrap();
        assert_eq!(got, want, "{spec} {phase:?} +{elapsed}s");
    }
    assert_eq!(
        ttl_decision("ns/wf", None, Some("Failed"), Some(ts(T0)), at(1)),
        Ok(TtlDecision::Keep)
    );
    assert_eq!(
        ttl_decision(
            "ns/wf",
            Some(&json!({"secondsAfterCompletion": "soon"})),
            Some("Failed"),
            Some(ts(T0)),
            at(1)
        ),
        Err(DecideError::Ttl {
            workflow: "ns/wf".into(),
            field: "secondsAfterCompletion"
        })
    );
}

#[test]
fn labels_follow_the_phase() {
    let mut labels = BTreeMap::new();
    assert!(workflow_labels(&mut labels, Some("Running")));
    assert_eq!(labels[LABEL_PHASE], "Running");
    assert_eq!(labels[LABEL_COMPLETED], "false");
    assert!(!workflow_labels(&mut labels, Some("Running")));
    assert!(workflow_labels(&mut labels, Some("Failed")));
    assert_eq!(labels[LABEL_PHASE], "Failed");
    assert_eq!(labels[LABEL_COMPLETED], "true");
    let mut fresh = BTreeMap::new();
    assert!(workflow_labels(&mut fresh, None));
    assert_eq!(fresh.get(LABEL_PHASE), None);
    assert_eq!(fresh[LABEL_COMPLETED], "false");
}

fn k8s_pod(name: &str, node: Option<&str>, phase: &str, main_exit: Option<i32>) -> Pod {
    let mut value = json!({
        "metadata": {"name": name, "namespace": "ns"},
        "status": {"phase": phase}
    });
    if let Some(node) = node {
        value["metadata"]["annotations"] = json!({ ANNOTATION_NODE_ID: node });
    }
    if let Some(code) = main_exit {
        value["status"]["containerStatuses"] = json!([{
            "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "startedAt": T0, "finishedAt": T0}}
        }]);
    }
    serde_json::from_value(value).unwrap()
}

fn result(node: &str, complete: bool) -> WorkflowTaskResult {
    let labels = if complete {
        json!({ crate::workflow::node::LABEL_REPORT_OUTPUTS_COMPLETED: "true" })
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskResult",
        "metadata": {"name": node, "labels": labels},
        "outputs": {"result": "hi"}
    }))
    .unwrap()
}

#[test]
fn observations_by_node_with_report_grace() {
    let pods = [
        k8s_pod("p-a", Some("wf-a"), "Succeeded", Some(0)),
        k8s_pod("p-b", Some("wf-b"), "Succeeded", Some(0)),
        k8s_pod("p-c", Some("wf-c"), "Running", None),
        k8s_pod("stray", None, "Running", None),
    ];
    let results = [result("wf-a", true), result("wf-b", false)];
    // Within the grace: b's incomplete report holds it back, and a recheck is asked for.
    let (obs, recheck) = observations(&pods, &results, ts("2026-01-01T00:00:10Z"));
    assert_eq!(obs.keys().collect::<Vec<_>>(), ["wf-a", "wf-b", "wf-c"]);
    assert!(obs["wf-a"].outputs_reported);
    assert_eq!(
        obs["wf-a"]
            .outputs
            .as_ref()
            .and_then(|o| o.result.as_deref()),
        Some("hi")
    );
    assert!(!obs["wf-b"].outputs_reported);
    assert_eq!(obs["wf-c"].phase, PodPhase::Running);
    assert_eq!(recheck, Some(SignedDuration::from_secs(20)));
    // After the grace the node may complete without outputs.
    let (obs, recheck) = observations(&pods, &results, ts("2026-01-01T00:00:30Z"));
    assert!(obs["wf-b"].outputs_reported);
    assert_eq!(recheck, None);
}

#[test]
fn failed_creation_is_a_complete_error() {
    let obs = failed_creation("p", "admission webhook denied".into(), ts(T0));
    assert_eq!(obs.phase, PodPhase::Error);
    assert!(obs.outputs_reported);
    assert_eq!(obs.message.as_deref(), Some("admission webhook denied"));
}

/// A pod with the given containers whose kubelet status says `phase` (main not terminated).
fn live_pod(node: &str, phase: &str, containers: &[&str]) -> Pod {
    let containers: Vec<_> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "x"}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("p-{node}"), "namespace": "ns",
                     "annotations": { ANNOTATION_NODE_ID: node }},
        "spec": {"containers": containers},
        "status": {"phase": phase, "containerStatuses": [{
            "name": "main", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": T0}}
        }]}
    }))
    .unwrap()
}

/// The executor's report of `node`: `phase`, exit code, complete or not, written at `at`.
fn report(
    node: &str,
    phase: &str,
    exit: Option<&str>,
    complete: bool,
    at: Option<&str>,
) -> WorkflowTaskResult {
    let mut v = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTaskResult",
        "metadata": {"name": node, "creationTimestamp": "2026-01-01T00:00:03Z",
                     "labels": if complete {
                         json!({ crate::workflow::node::LABEL_REPORT_OUTPUTS_COMPLETED: "true" })
                     } else { json!({}) }},
        "phase": phase,
        "outputs": {"result": "hi"}
    });
    if let Some(code) = exit {
        v["outputs"]["exitCode"] = json!(code);
    }
    if let Some(at) = at {
        v["metadata"]["managedFields"] = json!([
            {"manager": "cairn-executor", "operation": "Apply", "time": "2026-01-01T00:00:01Z"},
            {"manager": "cairn-executor", "operation": "Apply", "time": at}
        ]);
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_complete_succeeded_report_ends_a_single_container_pod_before_the_kubelet_does() {
    let now = ts("2026-01-01T00:00:09Z");
    // (case, pod, report) → expected phase and finishedAt.
    let main = &["main"][..];
    let cases: Vec<(&str, Pod, WorkflowTaskResult, PodPhase, Option<&str>)> = vec![
        (
            "running, report in",
            live_pod("n", "Running", main),
            report(
                "n",
                "Succeeded",
                Some("0"),
                true,
                Some("2026-01-01T00:00:05Z"),
            ),
            PodPhase::Succeeded,
            Some("2026-01-01T00:00:05Z"),
        ),
        (
            "kubelet status still Pending",
            live_pod("n", "Pending", main),
            report("n", "Succeeded", Some("0"), true, None),
            PodPhase::Succeeded,
            Some("2026-01-01T00:00:03Z"),
        ),
        (
            "a sidecar: the pod decides",
            live_pod("n", "Running", &["main", "proxy"]),
            report("n", "Succeeded", Some("0"), true, None),
            PodPhase::Running,
            None,
        ),
        (
            "a failed run: the pod decides",
            live_pod("n", "Running", main),
            report("n", "Failed", Some("1"), true, None),
            PodPhase::Running,
            None,
        ),
        (
            "report incomplete",
            live_pod("n", "Running", main),
            report("n", "Succeeded", Some("0"), false, None),
            PodPhase::Running,
            None,
        ),
        (
            "no exit code",
            live_pod("n", "Running", main),
            report("n", "Succeeded", None, true, None),
            PodPhase::Running,
            None,
        ),
        (
            "the kubelet says Failed: the pod wins",
            live_pod("n", "Failed", main),
            report("n", "Succeeded", Some("0"), true, None),
            PodPhase::Failed,
            None,
        ),
    ];
    for (case, pod, result, phase, finished) in cases {
        let (obs, _) = observations(std::slice::from_ref(&pod), &[result], now);
        let o = &obs["n"];
        assert_eq!(o.phase, phase, "{case}");
        if phase == PodPhase::Succeeded {
            assert!(o.outputs_reported, "{case}");
            assert_eq!(o.message, None, "{case}");
            assert_eq!(
                o.outputs.as_ref().and_then(|x| x.result.as_deref()),
                Some("hi"),
                "{case}"
            );
            assert_eq!(o.finished_at, finished.map(ts), "{case}");
        } else {
            assert_eq!(
                o.finished_at.map(|t| t.to_string()),
                finished.map(str::to_owned),
                "{case}"
            );
        }
    }
}
