//! containerSet: parsing, child links, the pod built for a set, container phases and the pod
//! node's phase of a set.

use serde_json::{Value, json};

use super::*;
use crate::workflow::executor::container_set::SetRole;
use crate::workflow::node::{PodRequest, node_id, pod_name};
use crate::workflow::pod::{PodSettings, build_pod, observe};
use crate::workflow::types::WorkflowSpec;

fn template(value: Value) -> Template {
    serde_json::from_value(value).expect("template")
}

fn set(containers: Value) -> Template {
    template(json!({"name": "group", "containerSet": {"containers": containers}}))
}

fn ctr(name: &str, deps: &[&str]) -> Value {
    json!({"name": name, "image": "busybox", "command": ["sh", "-c"], "args": [format!("echo {name}")], "dependencies": deps})
}

fn request(t: Template) -> PodRequest {
    let node_name = "wf[0].a".to_string();
    PodRequest {
        namespace: "ns".into(),
        workflow_name: "wf".into(),
        workflow_uid: "uid".into(),
        node_id: node_id("wf", &node_name),
        pod_name: pod_name("wf", &t.name, &node_name),
        node_name,
        template: t,
        spec: WorkflowSpec::default(),
        capture_result: true,
        active_deadline_seconds: Some(600),
        artifact_repository: None,
    }
}

fn err_text(t: Template) -> String {
    parse(&t).expect_err("should be refused").to_string()
}

#[test]
fn parse_refuses_bad_sets_naming_the_field() {
    // A missing command is the pod builder's to judge (the image index may know the image).
    let no_cmd = set(json!([{"name": "a", "image": "busybox"}]));
    let err = build_pod(&request(no_cmd), &PodSettings::default()).expect_err("no command");
    assert!(
        err.to_string()
            .contains("containerSet.containers[a].command"),
        "missing command: {err}"
    );
    let unknown = set(json!([ctr("a", &["zz"])]));
    let msg = err_text(unknown);
    assert!(
        msg.contains("containers[0].dependencies") && msg.contains("\"zz\""),
        "{msg}"
    );
    let cycle = set(json!([ctr("a", &["b"]), ctr("b", &["a"]), ctr("c", &[])]));
    assert!(err_text(cycle).contains("cycle"));
    let dup = set(json!([ctr("a", &[]), ctr("a", &[])]));
    assert!(err_text(dup).contains("used twice"));
    let empty = set(json!([]));
    assert!(err_text(empty).contains("non-empty list"));
    let bad_retry = template(json!({"name": "g", "containerSet": {
        "containers": [ctr("a", &[])], "retryStrategy": {"retries": "x"}}}));
    assert!(err_text(bad_retry).contains("retryStrategy.retries"));
}

#[test]
fn parse_reads_graph_mounts_and_retries() {
    let t = template(json!({"name": "g", "containerSet": {
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
        "retryStrategy": {"retries": "2", "duration": "1500ms"},
        "containers": [ctr("a", &[]), ctr("b", &["a"]), ctr("main", &["a", "b"])]}}));
    let s = parse(&t).expect("parse");
    assert_eq!(s.retries, 2);
    assert_eq!(s.retry_delay_ms, 1500);
    assert_eq!(s.volume_mounts.len(), 1);
    assert_eq!(
        s.main().map(|m| m.dependencies.clone()),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    // `dependencies` is not a container field: it must not reach the pod.
    assert!(
        s.members
            .iter()
            .all(|m| !m.container.extra.contains_key("dependencies"))
    );
}

#[test]
fn child_links_follow_argo() {
    let t = set(json!([
        ctr("a", &[]),
        ctr("b", &["a"]),
        ctr("c", &["a"]),
        ctr("d", &["b", "c"])
    ]));
    let links = child_links("n", &t);
    let want: Vec<(String, String)> = [
        ("n", "n.a"),
        ("n.a", "n.b"),
        ("n.a", "n.c"),
        ("n.b", "n.d"),
        ("n.c", "n.d"),
    ]
    .iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect();
    assert_eq!(links, want);
}

fn env_of(c: &Value, key: &str) -> Option<String> {
    c["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == key)?
        .get("value")?
        .as_str()
        .map(str::to_string)
}

#[test]
fn the_pod_wraps_every_container_with_its_role() {
    let t = template(json!({"name": "group",
        "volumes": [{"name": "workspace", "emptyDir": {}}],
        "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/workspace/out"}}]},
        "containerSet": {
            "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
            "retryStrategy": {"retries": 1},
            "containers": [ctr("a", &[]), ctr("main", &["a"])]}}));
    let pod = build_pod(&request(t), &PodSettings::default()).expect("build");
    let pod = serde_json::to_value(pod).expect("json");
    assert_eq!(
        pod["metadata"]["annotations"][ANNOTATION_CONTAINER_SET],
        "a,main"
    );
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "init");
    let ctrs = pod["spec"]["containers"].as_array().expect("containers");
    assert_eq!(ctrs.len(), 2);
    for (c, name, deps, reports) in [
        (&ctrs[0], "a", vec![], false),
        (&ctrs[1], "main", vec!["a"], true),
    ] {
        assert_eq!(c["name"], name);
        assert_eq!(
            c["command"],
            json!([
                "/var/run/cairn/cairn",
                "exec",
                "--",
                "sh",
                "-c",
                format!("echo {name}")
            ])
        );
        assert!(
            c.get("args").is_none() && c.get("dependencies").is_none(),
            "{c}"
        );
        let spec: crate::workflow::executor::ExecSpec =
            serde_json::from_str(&env_of(c, SPEC_ENV_NAME).expect("spec env")).expect("spec");
        let role: SetRole = spec.container_set.clone().expect("role");
        assert_eq!(role.name, name);
        assert_eq!(role.dependencies, deps);
        assert_eq!(role.members, vec!["a", "main"]);
        assert_eq!(role.reports, reports);
        assert_eq!(role.retries, 1);
        assert_eq!(role.wait_seconds, 600);
        assert_eq!(role.ctr_dir, std::path::PathBuf::from("/var/run/cairn/ctr"));
        // Only `main` collects the outputs and captures the result.
        assert_eq!(spec.outputs.len(), usize::from(reports));
        assert_eq!(spec.script, reports);
        let mounts: Vec<&str> = c["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter_map(|m| m["mountPath"].as_str())
            .collect();
        assert_eq!(mounts, vec!["/workspace", "/var/run/cairn"]);
    }
    let vols: Vec<&str> = pod["spec"]["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vols, vec!["var-run-cairn", "workspace"]);
}

const SPEC_ENV_NAME: &str = crate::workflow::executor::SPEC_ENV;

/// A containerSet pod with the given pod phase and container states (`None`: running).
fn pod(phase: &str, states: &[(&str, Option<i32>)]) -> Pod {
    let statuses: Vec<Value> = states
        .iter()
        .enumerate()
        .map(|(i, (name, code))| {
            let state = match code {
                Some(code) => json!({"terminated": {
                    "exitCode": code,
                    "reason": if *code == 0 { "Completed" } else { "Error" },
                    "startedAt": "2026-12-07T00:00:00Z",
                    "finishedAt": format!("2026-12-07T00:00:{:02}Z", 10 + i),
                }}),
                None => json!({"running": {"startedAt": "2026-12-07T00:00:00Z"}}),
            };
            json!({"name": name, "image": "busybox", "imageID": "", "ready": false,
                   "restartCount": 0, "state": state})
        })
        .collect();
    let names: Vec<&str> = states.iter().map(|(n, _)| *n).collect();
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns",
            "labels": {"workflows.argoproj.io/workflow": "wf"},
            "annotations": {ANNOTATION_CONTAINER_SET: names.join(","),
                            "workflows.argoproj.io/node-name": "wf[0].a"}},
        "spec": {"containers": []},
        "status": {"phase": phase, "containerStatuses": statuses},
    }))
    .expect("pod")
}

#[test]
fn container_phases_table() {
    let p = pod(
        "Running",
        &[
            ("a", Some(0)),
            ("b", Some(2)),
            ("c", Some(64)),
            ("main", None),
        ],
    );
    let names: Vec<String> = ["a", "b", "c", "main", "x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let got: Vec<(String, PodPhase, Option<String>)> = container_phases(&p, &names)
        .into_iter()
        .map(|c| (c.name, c.phase, c.message))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), PodPhase::Succeeded, None),
            (
                "b".into(),
                PodPhase::Failed,
                Some("b: Error (exit code 2)".into())
            ),
            (
                "c".into(),
                PodPhase::Error,
                Some("c: Error (exit code 64)".into())
            ),
            ("main".into(), PodPhase::Running, None),
            ("x".into(), PodPhase::Pending, None),
        ]
    );
    // A Failed pod: what did not terminate fails with Argo's message.
    let p = pod("Failed", &[("a", Some(0)), ("main", None)]);
    let phases = container_phases(&p, &["a".into(), "main".into()]);
    assert_eq!(phases[1].phase, PodPhase::Failed);
    assert_eq!(
        phases[1].message.as_deref(),
        Some("Pod Failed whilst container running")
    );
    // The observations carry the child node ids.
    let obs = observe_containers(&p);
    assert_eq!(obs.len(), 2);
    assert_eq!(obs[0].0, node_id("wf", "wf[0].a.a"));
    assert_eq!(obs[1].0, node_id("wf", "wf[0].a.main"));
    assert!(obs.iter().all(|(_, o)| o.outputs_reported));
}

#[test]
fn the_pod_node_is_over_only_when_every_container_is() {
    // `main` done while `a` still runs (the workspace shape): still Running, not Succeeded.
    let o = observe(&pod("Running", &[("a", None), ("main", Some(0))]), None);
    assert_eq!(o.phase, PodPhase::Running);
    // All done, one failed and one blocked by it (64): the command's failure names the node.
    let o = observe(
        &pod(
            "Failed",
            &[("a", Some(3)), ("b", Some(64)), ("main", Some(64))],
        ),
        None,
    );
    assert_eq!(o.phase, PodPhase::Failed);
    assert_eq!(o.message.as_deref(), Some("a: Error (exit code 3)"));
    assert_eq!(
        o.outputs.and_then(|x| x.exit_code).as_deref(),
        Some("64"),
        "exit code of main"
    );
    // No `main`: nothing reports, the pod status is the whole report.
    let o = observe(&pod("Succeeded", &[("a", Some(0)), ("b", Some(0))]), None);
    assert_eq!(o.phase, PodPhase::Succeeded);
    assert!(o.outputs_reported);
    // With `main`, its wrapper ran: the report is awaited.
    let o = observe(
        &pod("Succeeded", &[("a", Some(0)), ("main", Some(0))]),
        None,
    );
    assert_eq!(o.phase, PodPhase::Succeeded);
    assert!(!o.outputs_reported);
}

struct NoTemplates;

impl crate::workflow::validate::TemplateLookup for NoTemplates {
    fn workflow_template(
        &self,
        _namespace: &str,
        _name: &str,
    ) -> Option<crate::workflow::types::WorkflowTemplate> {
        None
    }
    fn cluster_workflow_template(
        &self,
        _name: &str,
    ) -> Option<crate::workflow::types::ClusterWorkflowTemplate> {
        None
    }
}

/// The operator and the pod together: one pod, Container children linked by the
/// dependencies, their phases from the container statuses, the node Failed with the message of
/// the container that failed, its dependent an Error.
#[test]
fn the_operator_builds_container_children_from_the_pod() {
    use crate::workflow::operator::{Action, OperateInput, operate};
    use crate::workflow::types::Workflow;
    let mut wf: Workflow = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "cs", "namespace": "ns", "uid": "uid-1",
                     "creationTimestamp": "2026-12-07T00:00:00Z"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "containerSet": {
            "containers": [ctr("a", &[]), ctr("b", &["a"]), ctr("c", &["b"])]}}]},
    }))
    .expect("workflow");
    let now: jiff::Timestamp = "2026-12-07T00:00:01Z".parse().expect("now");
    let empty = crate::workflow::node::Observations::new();
    let op = operate(&OperateInput {
        workflow: &wf,
        observations: &empty,
        templates: &NoTemplates,
        now,
    });
    let request = op
        .actions
        .iter()
        .find_map(|a| match a {
            Action::CreatePod(r) => Some((**r).clone()),
            _ => None,
        })
        .expect("one pod for the set");
    let nodes = op.status.nodes.clone().unwrap_or_default();
    let by_name =
        |nodes: &std::collections::BTreeMap<String, crate::workflow::types::NodeStatus>,
         name: &str| {
            nodes
                .values()
                .find(|n| n.name.as_deref() == Some(name))
                .cloned()
                .unwrap_or_else(|| panic!("no node {name}: {nodes:#?}"))
        };
    let id = |name: &str| node_id("cs", name);
    assert_eq!(by_name(&nodes, "cs").node_type.as_deref(), Some("Pod"));
    assert_eq!(by_name(&nodes, "cs").children, Some(vec![id("cs.a")]));
    assert_eq!(by_name(&nodes, "cs.a").children, Some(vec![id("cs.b")]));
    assert_eq!(by_name(&nodes, "cs.b").children, Some(vec![id("cs.c")]));
    for c in ["a", "b", "c"] {
        let n = by_name(&nodes, &format!("cs.{c}"));
        assert_eq!(n.node_type.as_deref(), Some("Container"));
        assert_eq!(n.display_name.as_deref(), Some(c));
        assert_eq!(n.phase.as_deref(), Some("Pending"));
        assert_eq!(n.boundary_id, Some(id("cs")));
    }

    // The pod as built, then as the kubelet ends it: b exits 3, c never runs (64).
    let built = build_pod(&request, &PodSettings::default()).expect("pod");
    let mut pod_value = serde_json::to_value(built).expect("json");
    let ended = pod("Failed", &[("a", Some(0)), ("b", Some(3)), ("c", Some(64))]);
    pod_value["status"] = serde_json::to_value(ended.status).expect("status");
    let ended: Pod = serde_json::from_value(pod_value).expect("pod");
    let mut obs = crate::workflow::node::Observations::new();
    obs.insert(request.node_id.clone(), observe(&ended, None));
    obs.extend(observe_containers(&ended));
    wf.status = Some(op.status);
    let op = operate(&OperateInput {
        workflow: &wf,
        observations: &obs,
        templates: &NoTemplates,
        now,
    });
    let nodes = op.status.nodes.clone().unwrap_or_default();
    let pod_node = by_name(&nodes, "cs");
    assert_eq!(pod_node.phase.as_deref(), Some("Failed"), "{pod_node:#?}");
    assert_eq!(pod_node.message.as_deref(), Some("b: Error (exit code 3)"));
    let phases: Vec<Option<String>> = ["cs.a", "cs.b", "cs.c"]
        .iter()
        .map(|n| by_name(&nodes, n).phase)
        .collect();
    assert_eq!(
        phases,
        vec![
            Some("Succeeded".to_string()),
            Some("Failed".to_string()),
            Some("Error".to_string())
        ]
    );
    assert_eq!(op.status.phase.as_deref(), Some("Failed"));
}
