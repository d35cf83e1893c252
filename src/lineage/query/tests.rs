use serde_json::json;

use super::*;
use crate::lineage::capture::{PipelineSource, capture};
use crate::lineage::graph::{ModelVersionLink, PromotionLink, artifact_id, execution_id};
use crate::store::Store;
use crate::workflow::types::Workflow;

const DM: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// train (dataset-uri parameter, model output) -> eval (model input, score) -> register.
fn run() -> Workflow {
    serde_json::from_value(json!({
        "metadata": {"name": "rec-abc", "namespace": "ml", "uid": "uid-1",
                     "labels": {"workflows.argoproj.io/workflow-template": "recommender-pipeline"}},
        "status": {"phase": "Succeeded", "nodes": {
            "rec-abc": {"type": "DAG", "children": ["n-train", "n-eval", "n-reg"]},
            "n-train": {"type": "Pod", "templateName": "train", "phase": "Succeeded",
                "inputs": {"parameters": [
                    {"name": "dataset-uri", "value": "s3://data/books.csv"},
                    {"name": "seed", "value": "7"}, {"name": "top-k", "value": "10"}]},
                "outputs": {"artifacts": [{"name": "model",
                    "cairn": {"key": "rec-abc/train/model.tgz"}, "digest": DM, "size": 9}]}},
            "n-eval": {"type": "Pod", "templateName": "eval", "phase": "Succeeded",
                "inputs": {"artifacts": [{"name": "model",
                    "cairn": {"key": "rec-abc/train/model.tgz"}}]},
                "outputs": {"parameters": [{"name": "score", "value": "0.41"}]}},
            "n-reg": {"type": "Pod", "templateName": "register", "phase": "Succeeded",
                "inputs": {"artifacts": [{"name": "model",
                    "cairn": {"key": "rec-abc/train/model.tgz"}}]},
                "outputs": {"parameters": [{"name": "version", "value": "1"}]}}
        }}
    }))
    .expect("workflow")
}

async fn loaded() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let batch = capture(
        &run(),
        &[],
        Some(&PipelineSource {
            application: "pipelines".into(),
            revision: "fedcba9".into(),
        }),
    );
    store
        .write(move |txn| {
            graph::write(txn, &batch)?;
            graph::record_model_version(
                txn,
                &ModelVersionLink {
                    model: "recommender".into(),
                    version: 1,
                    uri: "cairn://ml/rec-abc/train/model.tgz".into(),
                    digest: Some(DM.into()),
                    workflow_uid: Some("uid-1".into()),
                    node_id: Some("n-reg".into()),
                    metrics: [("score".to_owned(), 0.41)].into(),
                },
            )?;
            graph::record_promotion(
                txn,
                &PromotionLink {
                    model: "recommender".into(),
                    version: 1,
                    alias: "prod".into(),
                    repo: "https://git/gitops.git".into(),
                    path: "apps/recommender/values/prod.yaml".into(),
                    commit: SHA.into(),
                    application: Some("recommender-prod".into()),
                },
            )?;
            Ok::<_, GraphError>(())
        })
        .await
        .expect("write");
    (dir, store)
}

#[tokio::test]
async fn provenance_finds_dataset_code_hyperparameters_metrics_run() {
    let (_dir, store) = loaded().await;
    let p = store
        .read(|txn| provenance(txn, "recommender", 1))
        .expect("provenance");
    assert_eq!(
        p.model_artifact.as_ref().map(|a| a.id.clone()),
        Some(artifact_id(Some(DM), ""))
    );
    // The trainer is found through the model's digest, not the registering step.
    assert_eq!(p.executions.len(), 1);
    assert_eq!(p.executions[0].execution.template, "train");
    assert_eq!(
        p.registered_by
            .as_ref()
            .map(|r| r.execution.template.as_str()),
        Some("register")
    );
    assert_eq!(p.datasets.len(), 1);
    assert_eq!(p.datasets[0].artifact.uri, "s3://data/books.csv");
    assert_eq!(p.hyperparameters.get("seed").map(String::as_str), Some("7"));
    assert_eq!(
        p.hyperparameters.get("top-k").map(String::as_str),
        Some("10")
    );
    assert_eq!(p.metrics.registered["score"], 0.41);
    assert_eq!(
        p.metrics.run_outputs.get("eval.score").map(String::as_str),
        Some("0.41")
    );
    assert_eq!(p.code.template.as_deref(), Some("recommender-pipeline"));
    assert_eq!(p.code.template_revision.as_deref(), Some("fedcba9"));
    assert_eq!(p.code.images.len(), 2, "train and register");
    assert_eq!(p.run.as_ref().map(|r| r.uid.as_str()), Some("uid-1"));
    assert!(!p.truncated);

    let err = store
        .read(|txn| provenance(txn, "recommender", 2))
        .expect_err("unknown version");
    assert_eq!(err.metric_label(), "model_version_not_found");
}

#[tokio::test]
async fn provenance_without_capture_falls_back_to_the_registration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    store
        .write(|txn| {
            graph::record_model_version(
                txn,
                &ModelVersionLink {
                    model: "m".into(),
                    version: 1,
                    uri: "s3://m/1".into(),
                    digest: None,
                    workflow_uid: Some("u".into()),
                    node_id: None,
                    metrics: BTreeMap::new(),
                },
            )
        })
        .await
        .expect("write");
    let p = store
        .read(|txn| provenance(txn, "m", 1))
        .expect("provenance");
    assert!(p.executions.is_empty());
    assert!(p.datasets.is_empty());
    assert!(p.model_artifact.is_some());
    assert_eq!(p.run, None, "the run is not captured yet");
}

#[tokio::test]
async fn subgraph_respects_direction_and_hops() {
    let (_dir, store) = loaded().await;
    let train = execution_id("uid-1", "n-train");
    let model = artifact_id(Some(DM), "");
    store
        .read(|txn| -> Result<()> {
            let up = subgraph(txn, &model, Direction::Up, 1)?;
            let ids: Vec<&str> = up.nodes.iter().map(|n| n.id.as_str()).collect();
            assert_eq!(ids, [model.as_str(), train.as_str()]);
            assert_eq!(up.edges.len(), 1);
            let up2 = subgraph(txn, &model, Direction::Up, 2)?;
            assert!(up2.nodes.iter().any(|n| matches!(&n.node,
                Some(Node::Artifact(a)) if a.uri == "s3://data/books.csv")));
            let down = subgraph(txn, &model, Direction::Down, 1)?;
            // eval, register (inputs) and the model version (membership).
            assert_eq!(down.nodes.len(), 4);
            assert!(down.nodes.iter().all(|n| n.hops <= 1));
            let zero = subgraph(txn, &model, Direction::Both, 0)?;
            assert_eq!(zero.nodes.len(), 1);
            assert!(zero.edges.is_empty());
            let all = subgraph(txn, &model, Direction::Both, MAX_HOPS)?;
            assert!(all.nodes.len() > down.nodes.len());
            assert!(matches!(
                subgraph(txn, &model, Direction::Both, MAX_HOPS + 1),
                Err(QueryError::Invalid { field: "hops", .. })
            ));
            assert!(matches!(
                subgraph(txn, "a:nope", Direction::Both, 1),
                Err(QueryError::NodeNotFound { .. })
            ));
            Ok(())
        })
        .expect("queries");
    assert_eq!("up".parse::<Direction>().expect("up"), Direction::Up);
    assert!("sideways".parse::<Direction>().is_err());
}

#[tokio::test]
async fn serving_goes_from_tracking_id_to_the_model_and_its_dataset() {
    let (_dir, store) = loaded().await;
    let live = LiveObject {
        namespace: "shop".into(),
        kind: "Deployment".into(),
        name: "recommender".into(),
        tracking_id: Some("recommender-prod:apps/Deployment:shop/recommender".into()),
    };
    let app = application_of(&live).expect("tracked");
    assert_eq!(app, "recommender-prod");
    let s = store
        .read(|txn| serving(txn, &live, &app, &SHA.to_ascii_uppercase()))
        .expect("serving");
    assert_eq!(s.revision, SHA);
    assert_eq!(s.promotions.len(), 1);
    assert_eq!(s.models.len(), 1);
    assert_eq!(s.models[0].version, 1);
    assert_eq!(s.models[0].datasets[0].artifact.uri, "s3://data/books.csv");

    let err = store
        .read(|txn| serving(txn, &live, &app, "ffffffffffffffffffffffffffffffffffffffff"))
        .expect_err("not a promotion");
    assert_eq!(err.metric_label(), "not_promoted");
    assert!(
        err.to_string().contains("Deployment shop/recommender"),
        "{err}"
    );

    for bad in [
        None,
        Some(""),
        Some("app"),
        Some(":apps/Deployment:shop/x"),
        Some("a:b:c"),
    ] {
        let obj = LiveObject {
            tracking_id: bad.map(str::to_owned),
            ..live.clone()
        };
        assert!(
            matches!(application_of(&obj), Err(QueryError::NotTracked { .. })),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn export_lists_every_node_and_edge_once() {
    let (_dir, store) = loaded().await;
    let e = store.read(export).expect("export");
    assert_eq!(e.schema, crate::store::CURRENT_SCHEMA);
    let ids: BTreeSet<&str> = e.nodes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), e.nodes.len());
    assert!(ids.contains(execution_id("uid-1", "n-train").as_str()));
    let pairs: BTreeSet<(&str, &str)> = e
        .edges
        .iter()
        .map(|x| (x.from.as_str(), x.to.as_str()))
        .collect();
    assert_eq!(pairs.len(), e.edges.len());
    let sub = store
        .read(|txn| subgraph(txn, &e.nodes[0].id, Direction::Both, MAX_HOPS))
        .expect("subgraph");
    assert!(sub.edges.len() <= e.edges.len());
}
