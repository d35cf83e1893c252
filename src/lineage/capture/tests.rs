use serde_json::json;

use super::*;
use crate::lineage::graph::{Edge, artifact_id, context_id, execution_id};

const DM: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DS: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn wf(v: Value) -> Workflow {
    serde_json::from_value(v).expect("workflow fixture")
}

fn pod(node_id: &str, image_id: &str, exit: i32, command: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("pod-{node_id}"), "annotations": {ANNOTATION_NODE_ID: node_id}},
        "spec": {"containers": [
            {"name": "wait", "image": "cairn"},
            {"name": "main", "image": "localhost/bookstore:0.1.0", "command": command}
        ]},
        "status": {"containerStatuses": [
            {"name": "main", "image": "localhost/bookstore:0.1.0", "imageID": image_id,
             "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": exit}}}
        ]}
    }))
    .expect("pod fixture")
}

fn executions(b: &Batch) -> Vec<&Execution> {
    b.nodes
        .iter()
        .filter_map(|(_, n)| match n {
            Node::Execution(x) => Some(x.as_ref()),
            _ => None,
        })
        .collect()
}

fn artifacts_of(b: &Batch) -> Vec<&Artifact> {
    b.nodes
        .iter()
        .filter_map(|(_, n)| match n {
            Node::Artifact(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn has_edge(b: &Batch, from: &str, to: &str, kind: EdgeKind) -> bool {
    b.edges.contains(&Edge {
        from: from.to_owned(),
        to: to.to_owned(),
        kind,
    })
}

/// A DAG run from a WorkflowTemplate: train (dataset as a parameter, model as an output with
/// digest) -> eval (model as input by location only, score output parameter).
fn dag_run() -> Workflow {
    wf(json!({
        "metadata": {"name": "rec-abc", "namespace": "ml", "uid": "uid-1",
                     "creationTimestamp": "2026-12-07T08:00:00Z",
                     "labels": {LABEL_WORKFLOW_TEMPLATE: "recommender-pipeline"}},
        "spec": {"workflowTemplateRef": {"name": "recommender-pipeline"},
                 "arguments": {"parameters": [{"name": "seed", "value": 7}]}},
        "status": {
            "phase": "Succeeded",
            "startedAt": "2026-12-07T08:00:01Z", "finishedAt": "2026-12-07T08:03:00Z",
            "storedWorkflowTemplateSpec": {"templates": [
                {"name": "train", "container": {"image": "localhost/bookstore:0.1.0",
                                                "command": ["python", "train.py"]}},
                {"name": "eval", "script": {"image": "localhost/bookstore:0.1.0",
                                            "command": ["python"], "source": "print(1)"}}
            ]},
            "nodes": {
                "rec-abc": {"id": "rec-abc", "type": "DAG", "templateName": "pipeline",
                            "phase": "Succeeded", "children": ["rec-abc-1", "rec-abc-2"]},
                "rec-abc-1": {"id": "rec-abc-1", "type": "Pod", "templateName": "train",
                    "phase": "Succeeded",
                    "startedAt": "2026-12-07T08:00:02Z", "finishedAt": "2026-12-07T08:01:00Z",
                    "inputs": {"parameters": [
                        {"name": "dataset-uri", "value": "s3://data/books.csv"},
                        {"name": "seed", "value": 7},
                        {"name": "top-k", "value": "10"}]},
                    "outputs": {"artifacts": [
                        {"name": "model", "path": "/tmp/model.joblib",
                         "cairn": {"key": "rec-abc/rec-abc-train-1/model.tgz"},
                         "digest": DM, "size": 2048}],
                        "exitCode": "0"}},
                "rec-abc-2": {"id": "rec-abc-2", "type": "Pod", "templateName": "eval",
                    "phase": "Succeeded",
                    "inputs": {"parameters": [{"name": "min-score", "value": "0.2"}],
                        "artifacts": [{"name": "model", "path": "/tmp/model.joblib",
                            "cairn": {"key": "rec-abc/rec-abc-train-1/model.tgz"}}]},
                    "outputs": {"parameters": [{"name": "score", "value": "0.41"}],
                                "exitCode": "0"}}
            }
        }
    }))
}

#[test]
fn dag_run_links_dataset_model_and_eval() {
    let w = dag_run();
    let pods = [
        pod(
            "rec-abc-1",
            "localhost/bookstore@sha256:1111",
            0,
            json!([
                "/var/run/cairn/cairn",
                "exec",
                "--",
                "python",
                "train.py",
                "--seed",
                "7"
            ]),
        ),
        pod(
            "rec-abc-2",
            "localhost/bookstore@sha256:1111",
            0,
            json!(["python", "/s"]),
        ),
    ];
    let source = PipelineSource {
        application: "pipelines".into(),
        revision: "0123abc".into(),
    };
    let b = capture(&w, &pods, Some(&source));

    let xs = executions(&b);
    assert_eq!(xs.len(), 2, "DAG node is not an execution");
    let train = xs.iter().find(|x| x.template == "train").expect("train");
    assert_eq!(train.namespace, "ml");
    assert_eq!(train.workflow, "rec-abc");
    assert_eq!(
        train.image_digest.as_deref(),
        Some("localhost/bookstore@sha256:1111")
    );
    assert_eq!(
        train.command,
        ["python", "train.py", "--seed", "7"],
        "wrapper removed"
    );
    assert_eq!(
        train.inputs["seed"], "7",
        "numbers as Argo substitutes them"
    );
    assert_eq!(train.exit_code, Some(0));
    assert_eq!(train.attempt, 0);
    assert_eq!(
        train.started.map(|t| t.to_string()).as_deref(),
        Some("2026-12-07T08:00:02Z")
    );
    let eval = xs.iter().find(|x| x.template == "eval").expect("eval");
    assert_eq!(eval.outputs["score"], "0.41");

    let tx = execution_id("uid-1", "rec-abc-1");
    let ex = execution_id("uid-1", "rec-abc-2");
    let model = artifact_id(Some(DM), "ignored");
    let dataset = artifact_id(None, "s3://data/books.csv");
    assert!(has_edge(&b, &tx, &model, EdgeKind::Output));
    // The eval input had no digest: it resolves to the train output at the same URI.
    assert!(has_edge(&b, &model, &ex, EdgeKind::Input));
    assert!(has_edge(&b, &dataset, &tx, EdgeKind::Input));
    let arts = artifacts_of(&b);
    let ds = arts
        .iter()
        .find(|a| a.uri == "s3://data/books.csv")
        .expect("dataset");
    assert_eq!(ds.type_, ArtifactType::Dataset);
    assert_eq!(ds.name, "dataset");
    let m = arts
        .iter()
        .find(|a| a.digest.as_deref() == Some(DM) && a.size.is_some())
        .expect("model");
    assert_eq!(m.uri, "cairn://ml/rec-abc/rec-abc-train-1/model.tgz");
    assert_eq!(m.type_, ArtifactType::Model);
    assert_eq!(m.size, Some(2048));

    let run = context_id(ContextKind::WorkflowRun, "uid-1");
    let pipeline = context_id(ContextKind::Pipeline, "recommender-pipeline@0123abc");
    let app = context_id(ContextKind::Application, "pipelines");
    assert!(has_edge(&b, &tx, &run, EdgeKind::Member));
    assert!(has_edge(&b, &ex, &run, EdgeKind::Member));
    assert!(has_edge(&b, &run, &pipeline, EdgeKind::Member));
    assert!(has_edge(&b, &app, &pipeline, EdgeKind::Manages));
    assert!(b.index.contains(&(
        index::TIME.into(),
        format!(
            "{:020}",
            "2026-12-07T08:00:00Z"
                .parse::<jiff::Timestamp>()
                .expect("time")
                .as_millisecond()
        ),
        run.clone()
    )));
    assert!(
        b.index
            .contains(&(index::WORKFLOW_UID.into(), "uid-1".into(), tx.clone()))
    );
    assert!(
        b.index
            .contains(&(index::DIGEST.into(), DM.into(), model.clone()))
    );
    // Deterministic: the same inputs give the same batch.
    assert_eq!(capture(&w, &pods, Some(&source)), b);
}

#[test]
fn without_pods_the_template_gives_image_and_command() {
    let b = capture(&dag_run(), &[], None);
    let xs = executions(&b);
    let train = xs.iter().find(|x| x.template == "train").expect("train");
    assert_eq!(train.image, "localhost/bookstore:0.1.0");
    assert_eq!(train.image_digest, None);
    assert_eq!(train.command, ["python", "train.py"]);
    assert_eq!(train.exit_code, Some(0), "from outputs.exitCode");
    // No source: the pipeline context is the bare template name, with no Application.
    let pipeline = context_id(ContextKind::Pipeline, "recommender-pipeline");
    assert!(b.nodes.iter().any(|(id, _)| *id == pipeline));
    assert!(
        !b.nodes
            .iter()
            .any(|(_, n)| matches!(n, Node::Context(c) if c.kind == ContextKind::Application))
    );
}

#[test]
fn steps_with_retries_number_attempts_and_keep_the_failed_one() {
    let w = wf(json!({
        "metadata": {"name": "st", "namespace": "ns", "uid": "uid-2"},
        "spec": {"templates": [{"name": "flaky", "container": {"image": "busybox", "args": ["x"]}}]},
        "status": {"phase": "Succeeded", "nodes": {
            "st": {"type": "Steps", "children": ["st-g"]},
            "st-g": {"type": "StepGroup", "children": ["st-r"]},
            "st-r": {"type": "Retry", "templateName": "flaky", "children": ["st-a0", "st-a1"]},
            "st-a0": {"type": "Pod", "templateName": "flaky", "phase": "Failed",
                      "message": "Error (exit code 3)", "outputs": {"exitCode": "3"}},
            "st-a1": {"type": "Pod", "templateName": "flaky", "phase": "Succeeded",
                      "outputs": {"exitCode": "0"}}
        }}
    }));
    let pods = [pod(
        "st-a0",
        "docker.io/library/busybox@sha256:9",
        3,
        json!(["x"]),
    )];
    let b = capture(&w, &pods, None);
    let xs = executions(&b);
    assert_eq!(xs.len(), 2);
    let a0 = xs.iter().find(|x| x.node_id == "st-a0").expect("a0");
    let a1 = xs.iter().find(|x| x.node_id == "st-a1").expect("a1");
    assert_eq!((a0.attempt, a1.attempt), (0, 1));
    assert_eq!(a0.phase, "Failed");
    assert_eq!(a0.exit_code, Some(3));
    assert_eq!(a1.image, "busybox");
    assert_eq!(a1.command, ["x"]);
    // Not from a template: no pipeline context.
    assert!(
        !b.nodes
            .iter()
            .any(|(_, n)| matches!(n, Node::Context(c) if c.kind == ContextKind::Pipeline))
    );
}

#[test]
fn artifact_locations_become_uris() {
    let ns = "ns";
    let none = BTreeMap::new();
    let cases = [
        (
            json!({"name": "a", "s3": {"bucket": "b", "key": "k/f.tgz"}}),
            "s3://b/k/f.tgz",
        ),
        (
            json!({"name": "a", "gcs": {"bucket": "b", "key": "k"}}),
            "gs://b/k",
        ),
        (
            json!({"name": "a", "http": {"url": "https://x/y"}}),
            "https://x/y",
        ),
        (
            json!({"name": "a", "git": {"repo": "https://g/r.git", "revision": "abc"}}),
            "https://g/r.git@abc",
        ),
        (json!({"name": "a", "hdfs": {"path": "/p/q"}}), "hdfs://p/q"),
        (
            json!({"name": "a", "azure": {"container": "c", "blob": "b"}}),
            "azure://c/b",
        ),
        (
            json!({"name": "a", "cairn": {"key": "/w/p/a.tgz"}}),
            "cairn://ns/w/p/a.tgz",
        ),
    ];
    for (art, want) in cases {
        let got = artifact(&art, ns, &none, None).expect("artifact");
        assert_eq!(got.uri, want, "{art}");
        assert_eq!(got.digest, None);
    }
    // Raw artifacts are identified by their content.
    let raw = artifact(
        &json!({"name": "cfg", "raw": {"data": "hello"}}),
        ns,
        &none,
        None,
    )
    .expect("raw");
    assert_eq!(
        raw.digest.as_deref(),
        Some("sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
    );
    // No location (an unresolved `from`): nothing to record.
    assert_eq!(
        artifact(&json!({"name": "x", "from": "{{a}}"}), ns, &none, None),
        None
    );
    // A digest that is not sha256 is not trusted as an identity.
    let md5 = artifact(
        &json!({"name": "a", "http": {"url": "u://x"}, "digest": "md5:1"}),
        ns,
        &none,
        None,
    )
    .expect("artifact");
    assert_eq!(md5.digest, None);
}

#[test]
fn uri_parameters_are_inputs_other_parameters_are_not() {
    assert!(looks_like_uri("s3://data/books.csv"));
    assert!(looks_like_uri("https://x/y"));
    assert!(!looks_like_uri("0.41"));
    assert!(!looks_like_uri("://x"));
    assert!(!looks_like_uri("a b://c"));
    assert!(!looks_like_uri("s3://"));
    let w = wf(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "status": {"nodes": {"p": {"type": "Pod", "templateName": "t", "phase": "Succeeded",
            "inputs": {"parameters": [
                {"name": "model_uri", "value": "s3://m/model.joblib"},
                {"name": "lr", "value": "0.1"}],
                "artifacts": [{"name": "data", "s3": {"bucket": "d", "key": "k"}, "digest": DS}]}}}}
    }));
    let b = capture(&w, &[], None);
    let arts = artifacts_of(&b);
    assert_eq!(arts.len(), 2);
    let m = arts
        .iter()
        .find(|a| a.uri == "s3://m/model.joblib")
        .expect("uri parameter");
    assert_eq!((m.name.as_str(), m.type_), ("model", ArtifactType::Model));
    let d = arts
        .iter()
        .find(|a| a.digest.as_deref() == Some(DS))
        .expect("digest input");
    assert_eq!(d.type_, ArtifactType::Dataset);
    let x = execution_id("u", "p");
    assert_eq!(
        b.edges
            .iter()
            .filter(|e| e.to == x && e.kind == EdgeKind::Input)
            .count(),
        2
    );
}

#[test]
fn no_uid_no_lineage_and_no_nodes_only_the_run() {
    let mut w = dag_run();
    w.metadata.uid = None;
    assert!(capture(&w, &[], None).is_empty());
    let w = wf(json!({"metadata": {"name": "e", "namespace": "ns", "uid": "u3"}}));
    let b = capture(&w, &[], None);
    assert_eq!(b.nodes.len(), 1, "the run context alone");
    assert!(executions(&b).is_empty());
}

#[test]
fn template_name_from_ref_or_label() {
    let mut w =
        wf(json!({"metadata": {"name": "x", "labels": {LABEL_CLUSTER_WORKFLOW_TEMPLATE: "c"}}}));
    assert_eq!(pipeline_template(&w).as_deref(), Some("c"));
    w.spec.workflow_template_ref = Some(serde_json::from_value(json!({"name": "t"})).expect("ref"));
    assert_eq!(pipeline_template(&w).as_deref(), Some("t"));
    assert_eq!(
        pipeline_template(&wf(json!({"metadata": {"name": "y"}}))),
        None
    );
}

#[test]
fn tracking_app_reads_the_annotation() {
    let meta = |v: Option<&str>| k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        annotations: v
            .map(|v| BTreeMap::from([(crate::gitops::sync::TRACKING_ID.to_owned(), v.to_owned())])),
        ..Default::default()
    };
    assert_eq!(
        tracking_app(&meta(Some("pipelines:argoproj.io/WorkflowTemplate:ml/rec"))).as_deref(),
        Some("pipelines")
    );
    assert_eq!(
        tracking_app(&meta(Some("argocd_pipelines:a/B:c/d"))).as_deref(),
        Some("argocd_pipelines")
    );
    assert_eq!(tracking_app(&meta(None)), None);
    assert_eq!(tracking_app(&meta(Some("nocolon"))), None);
    assert_eq!(tracking_app(&meta(Some(":x/y:z"))), None);
}
