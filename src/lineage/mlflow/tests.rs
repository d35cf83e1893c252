//! Unit tests of the MLflow records and transactions (a real store in a temp dir).

use super::*;

fn store() -> (tempfile::TempDir, crate::store::Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(dir.path()).expect("store");
    (dir, store)
}

fn metric(key: &str, value: f64, timestamp: i64, step: i64) -> NewMetric {
    NewMetric {
        key: key.into(),
        point: MetricPoint {
            value,
            timestamp,
            step,
        },
    }
}

#[tokio::test]
async fn runs_log_params_metrics_and_history() {
    let (_dir, store) = store();
    let tags = BTreeMap::from([("team".to_string(), "recs".to_string())]);
    let exp = store
        .write(move |txn| create_experiment(txn, "bookstore", &tags, 1000))
        .await
        .expect("create");
    assert_eq!(exp.id, "1", "the first experiment after Default");
    let dup = store
        .write(|txn| create_experiment(txn, "bookstore", &BTreeMap::new(), 1001))
        .await
        .expect_err("duplicate");
    assert_eq!(dup.error_code(), "RESOURCE_ALREADY_EXISTS");
    let default_dup = store
        .write(|txn| create_experiment(txn, DEFAULT_EXPERIMENT_NAME, &BTreeMap::new(), 1))
        .await
        .expect_err("Default exists");
    assert_eq!(default_dup.metric_label(), "already_exists");

    let new = NewRun {
        experiment_id: exp.id.clone(),
        user_id: "alice".into(),
        start_time: 5,
        tags: BTreeMap::from([(RUN_NAME_TAG.to_string(), "tagged".to_string())]),
        ..NewRun::default()
    };
    let run = store
        .write(move |txn| create_run(txn, &new))
        .await
        .expect("run");
    assert_eq!(run.name, "tagged", "name from the mlflow.runName tag");
    assert_eq!(run.id.len(), 32);
    assert_eq!(
        run.artifact_uri(),
        format!("mlflow-artifacts:/1/{}/artifacts", run.id)
    );
    let id = run.id.clone();
    let batch = Batch {
        metrics: vec![
            metric("score", 0.3, 10, 0),
            metric("score", 0.5, 11, 1),
            // An older step logged later does not become the latest value.
            metric("score", 0.1, 12, 0),
        ],
        params: vec![("k".into(), "5".into())],
        tags: vec![(RUN_NAME_TAG.into(), "renamed".into())],
    };
    store
        .write(move |txn| log_batch(txn, &id, &batch))
        .await
        .expect("batch");
    let id = run.id.clone();
    let changed = Batch {
        params: vec![("k".into(), "6".into())],
        ..Batch::default()
    };
    let err = store
        .write(move |txn| log_batch(txn, &id, &changed))
        .await
        .expect_err("params are immutable");
    assert!(err.to_string().contains("changing param \"k\""), "{err}");
    let (got, history, runs) = store
        .read(|txn| {
            Ok::<_, MlflowError>((
                get_run(txn, &run.id)?,
                metric_history(txn, &run.id, "score")?,
                list_runs(txn, &["1".to_string()])?,
            ))
        })
        .expect("read");
    assert_eq!(got.name, "renamed", "the tag renames the run");
    assert_eq!(got.params["k"], "5", "the refused batch changed nothing");
    assert_eq!(got.metrics["score"].value, 0.5);
    assert_eq!(
        history
            .iter()
            .map(|p| (p.step, p.value))
            .collect::<Vec<_>>(),
        [(0, 0.3), (0, 0.1), (1, 0.5)]
    );
    assert_eq!(runs.len(), 1);
    let missing = store
        .read(|txn| get_run(txn, "nope"))
        .expect_err("missing run");
    assert_eq!(missing.error_code(), "RESOURCE_DOES_NOT_EXIST");
}

#[tokio::test]
async fn default_experiment_exists_before_and_after_a_run() {
    let (_dir, store) = store();
    let before = store
        .read(|txn| get_experiment_by_name(txn, DEFAULT_EXPERIMENT_NAME))
        .expect("Default");
    assert_eq!(before.id, DEFAULT_EXPERIMENT_ID);
    let run = store
        .write(|txn| create_run(txn, &NewRun::default()))
        .await
        .expect("run in Default");
    assert_eq!(run.experiment_id, "0");
    assert!(run.name.starts_with("run-"), "{}", run.name);
    let all = store.read(list_experiments).expect("list");
    assert_eq!(all.len(), 1, "Default is stored once: {all:?}");
}

#[test]
fn batch_validation_names_the_field() {
    let too_many = Batch {
        params: (0..=MAX_BATCH_PARAMS)
            .map(|i| (format!("p{i}"), "v".to_string()))
            .collect(),
        ..Batch::default()
    };
    assert!(
        validate_batch(&too_many)
            .expect_err("101")
            .to_string()
            .starts_with("params:")
    );
    let bad_key = Batch {
        metrics: vec![metric("a/../b", 1.0, 0, 0)],
        ..Batch::default()
    };
    assert!(
        validate_batch(&bad_key)
            .expect_err("..")
            .to_string()
            .starts_with("metrics[0].key")
    );
    let twice = Batch {
        params: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
        ..Batch::default()
    };
    assert!(
        validate_batch(&twice)
            .expect_err("twice")
            .to_string()
            .contains("twice")
    );
    let long = Batch {
        tags: vec![("t".into(), "x".repeat(MAX_TAG_VALUE_CHARS + 1))],
        ..Batch::default()
    };
    assert!(
        validate_batch(&long)
            .expect_err("long")
            .to_string()
            .starts_with("tags[0].value")
    );
}

#[test]
fn artifact_paths_and_listing() {
    assert_eq!(
        split_artifact_path("1/abc/artifacts/model/m.bin").expect("ok"),
        ("1", "abc", "model/m.bin")
    );
    assert_eq!(
        split_artifact_path("1/abc/artifacts").expect("root"),
        ("1", "abc", "")
    );
    for bad in [
        "1/abc",
        "1/abc/other/x",
        "1/abc/artifacts/a/../b",
        "1/abc/artifacts/a//b",
    ] {
        assert_eq!(
            split_artifact_path(bad).expect_err(bad).metric_label(),
            "invalid",
            "{bad}"
        );
    }
    let entry = |size| ArtifactEntry {
        digest: "d".into(),
        size,
    };
    let index = BTreeMap::from([
        ("a.txt".to_string(), entry(1)),
        ("model/m.bin".to_string(), entry(2)),
        ("model/sub/x".to_string(), entry(3)),
        ("modelz".to_string(), entry(4)),
    ]);
    let names = |dir| {
        list_artifacts(&index, dir)
            .into_iter()
            .map(|l| (l.path, l.is_dir, l.size))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(""),
        [
            ("a.txt".to_string(), false, Some(1)),
            ("model".to_string(), true, None),
            ("modelz".to_string(), false, Some(4)),
        ]
    );
    assert_eq!(
        names("model"),
        [
            ("m.bin".to_string(), false, Some(2)),
            ("sub".to_string(), true, None),
        ]
    );
    assert_eq!(names("a.txt"), vec![], "a file has no children");
}

#[tokio::test]
async fn a_run_logged_by_a_workflow_step_joins_the_lineage_graph() {
    use crate::lineage::graph::{self, ContextKind, EdgeKind, Node, context_id, execution_id};
    let (_dir, store) = store();
    let link = WorkflowLink::example();
    let new = NewRun {
        user_id: "system:serviceaccount:ml:default".into(),
        start_time: 5,
        workflow: Some(link.clone()),
        ..NewRun::default()
    };
    let run = store
        .write(move |txn| create_run(txn, &new))
        .await
        .expect("run");
    assert_eq!(run.workflow.as_ref(), Some(&link));
    let ctx = context_id(ContextKind::MlflowRun, &run.id);
    let x = execution_id("uid-1", "train-x-123");
    let (node, found, edges) = store
        .read(|txn| {
            Ok::<_, graph::GraphError>((
                graph::get(txn, &ctx)?,
                graph::lookup(txn, graph::index::MLFLOW_RUN, &run.id)?,
                graph::out_edges(txn, &x)?,
            ))
        })
        .expect("graph");
    match node {
        Some(Node::Context(c)) => {
            assert_eq!(c.kind, ContextKind::MlflowRun);
            assert_eq!(c.properties["node_id"], "train-x-123");
            assert_eq!(c.properties["experiment_id"], DEFAULT_EXPERIMENT_ID);
        }
        other => panic!("no MlflowRun context: {other:?}"),
    }
    assert_eq!(found, vec![ctx.clone()]);
    assert!(
        edges
            .iter()
            .any(|e| e.to == ctx && e.kind == EdgeKind::Logged),
        "{edges:?}"
    );

    // A run from outside a workflow (or an old link without the node) writes no lineage.
    let mut old = link;
    old.node_id.clear();
    let new = NewRun {
        workflow: Some(old),
        ..NewRun::default()
    };
    let run = store
        .write(move |txn| create_run(txn, &new))
        .await
        .expect("run");
    let found = store
        .read(|txn| graph::lookup(txn, graph::index::MLFLOW_RUN, &run.id))
        .expect("lookup");
    assert!(found.is_empty());
}
