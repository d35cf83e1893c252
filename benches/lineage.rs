//! Lineage benchmark: provenance of a model version over a graph of 1,000,000 lineage records.
//!
//! Builds a synthetic history in a temporary store, shaped like what `lineage::capture` and the
//! registry write for a train pipeline: per run a prepare, train, eval and register execution,
//! the dataset (shared by many runs), the prepared data, the model and the metrics artifacts,
//! the run and pipeline contexts, and a registered model version. Records = nodes + edges
//! (index entries are written too but not counted). Then times `lineage::query::provenance` of
//! random model versions, each in its own read transaction (as the API does): p50/p99.
//! The target: under 5 ms.
//!
//! `make bench` runs it and writes `bench-results/lineage.json` (the path after `--output`).
//! Numbers are reported, not asserted.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn::lineage::graph::{
    self, Artifact, ArtifactType, Batch, Context, ContextKind, EdgeKind, Execution,
    ModelVersionLink, Node,
};
use cairn::lineage::query;
use cairn::store::Store;

const TARGET_RECORDS: usize = 1_000_000;
const MODELS: usize = 100;
const DATASETS: usize = 1_000;
const RUNS_PER_COMMIT: usize = 1_000;
const QUERIES: usize = 10_000;

/// A small deterministic PRNG (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn digest(run: usize, what: u8) -> String {
    format!("sha256:{:056x}{:02x}{:06x}", run, what, run % 0xff_ffff)
}

fn exec(uid: &str, run: usize, node: &str, template: &str, inputs: &[(&str, String)]) -> Node {
    Node::Execution(Box::new(Execution {
        namespace: "bench".into(),
        workflow: format!("pipeline-{run}"),
        workflow_uid: uid.to_owned(),
        node_id: node.to_owned(),
        template: template.to_owned(),
        attempt: 0,
        image: "localhost/bench/train:1".into(),
        image_digest: Some(format!("localhost/bench/train@{}", digest(run % 7, 9))),
        command: vec!["python".into(), format!("{template}.py")],
        inputs: inputs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        outputs: if template == "eval" {
            BTreeMap::from([("score".to_owned(), format!("0.{}", run % 1000))])
        } else {
            BTreeMap::new()
        },
        exit_code: Some(0),
        phase: "Succeeded".into(),
        started: None,
        finished: None,
    }))
}

fn artifact(
    b: &mut Batch,
    name: &str,
    uri: String,
    digest: Option<String>,
    t: ArtifactType,
) -> String {
    let id = b.node(Node::Artifact(Artifact {
        name: name.to_owned(),
        uri: uri.clone(),
        digest: digest.clone(),
        size: Some(1024),
        type_: t,
        created: None,
    }));
    if let Some(d) = digest {
        b.index(graph::index::DIGEST, &d, &id);
    }
    b.index(graph::index::URI, &uri, &id);
    id
}

/// One run's records; returns the batch and the (model, version) it registers.
fn run_batch(run: usize) -> (Batch, String, u64) {
    let uid = format!("00000000-0000-0000-0000-{run:012}");
    let mut b = Batch::default();
    let run_ctx = b.node(Node::Context(Context {
        kind: ContextKind::WorkflowRun,
        name: uid.clone(),
        properties: BTreeMap::from([
            ("namespace".to_owned(), "bench".into()),
            ("workflow".to_owned(), format!("pipeline-{run}").into()),
            ("phase".to_owned(), "Succeeded".into()),
        ]),
    }));
    b.index(graph::index::WORKFLOW_UID, &uid, &run_ctx);
    b.index(graph::index::TIME, &format!("{:020}", run), &run_ctx);
    let template = format!("pipeline-{}", run % 20);
    let pipeline = b.node(Node::Context(Context {
        kind: ContextKind::Pipeline,
        name: format!("{template}@{:040x}", run / 1000),
        properties: BTreeMap::from([
            ("template".to_owned(), template.clone().into()),
            ("revision".to_owned(), format!("{:040x}", run / 1000).into()),
        ]),
    }));
    b.edge(&run_ctx, &pipeline, EdgeKind::Member);

    let ds_uri = format!("s3://data/books-{}.csv", run % DATASETS);
    let dataset = artifact(
        &mut b,
        "dataset",
        ds_uri.clone(),
        None,
        ArtifactType::Dataset,
    );
    let prep = b.node(exec(
        &uid,
        run,
        "n-prep",
        "prepare",
        &[("dataset-uri", ds_uri.clone())],
    ));
    b.edge(&dataset, &prep, EdgeKind::Input);
    let prepared = artifact(
        &mut b,
        "prepared",
        format!("cairn://bench/pipeline-{run}/prep/prepared.tgz"),
        Some(digest(run, 1)),
        ArtifactType::Artifact,
    );
    b.edge(&prep, &prepared, EdgeKind::Output);
    let seed = (run % 97).to_string();
    let train = b.node(exec(
        &uid,
        run,
        "n-train",
        "train",
        &[
            ("seed", seed),
            ("top-k", "10".into()),
            ("dataset-uri", ds_uri),
        ],
    ));
    b.edge(&prepared, &train, EdgeKind::Input);
    let model_uri = format!("cairn://bench/pipeline-{run}/train/model.tgz");
    let model = artifact(
        &mut b,
        "model",
        model_uri.clone(),
        Some(digest(run, 2)),
        ArtifactType::Model,
    );
    b.edge(&train, &model, EdgeKind::Output);
    let eval = b.node(exec(
        &uid,
        run,
        "n-eval",
        "eval",
        &[("min-score", "0.1".into())],
    ));
    b.edge(&model, &eval, EdgeKind::Input);
    let metrics = artifact(
        &mut b,
        "metrics",
        format!("cairn://bench/pipeline-{run}/eval/metrics.json"),
        Some(digest(run, 3)),
        ArtifactType::Metrics,
    );
    b.edge(&eval, &metrics, EdgeKind::Output);
    let register = b.node(exec(&uid, run, "n-register", "register", &[]));
    b.edge(&model, &register, EdgeKind::Input);
    for x in [&prep, &train, &eval, &register] {
        b.edge(x, &run_ctx, EdgeKind::Member);
        b.index(graph::index::WORKFLOW_UID, &uid, x);
    }

    let model_name = format!("model-{}", run % MODELS);
    let version = (run / MODELS) as u64 + 1;
    let (_, mv) = graph::model_version_batch(&ModelVersionLink {
        model: model_name.clone(),
        version,
        uri: model_uri,
        digest: Some(digest(run, 2)),
        workflow_uid: Some(uid),
        node_id: Some("n-register".into()),
        metrics: BTreeMap::from([("score".to_owned(), (run % 1000) as f64 / 1000.0)]),
    })
    .expect("model version batch");
    b.nodes.extend(mv.nodes);
    b.edges.extend(mv.edges);
    b.index.extend(mv.index);
    (b, model_name, version)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e6
}

fn bench_provenance(runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");

    // Build.
    let started = Instant::now();
    let mut records = 0usize;
    let mut index_entries = 0usize;
    let mut versions: Vec<(String, u64)> = Vec::new();
    let mut run = 0usize;
    while records < TARGET_RECORDS {
        let mut chunk = Batch::default();
        for _ in 0..RUNS_PER_COMMIT {
            let (b, model, version) = run_batch(run);
            run += 1;
            records += b.nodes.len() + b.edges.len();
            index_entries += b.index.len();
            chunk.nodes.extend(b.nodes);
            chunk.edges.extend(b.edges);
            chunk.index.extend(b.index);
            versions.push((model, version));
            if records >= TARGET_RECORDS {
                break;
            }
        }
        runtime
            .block_on(store.write(move |txn| graph::write(txn, &chunk)))
            .expect("write chunk");
    }
    let build = started.elapsed();
    let db_bytes = std::fs::metadata(store.path())
        .map(|m| m.len())
        .unwrap_or(0);

    // Sanity: the query finds what was written (a broken query must not look fast).
    let sample = store
        .read(|txn| query::provenance(txn, &versions[0].0, versions[0].1))
        .expect("provenance");
    assert_eq!(sample.executions.len(), 1, "training execution found");
    assert_eq!(sample.datasets.len(), 1, "dataset found");
    assert_eq!(
        sample.hyperparameters.get("top-k").map(String::as_str),
        Some("10")
    );
    assert!(
        sample.code.template_revision.is_some(),
        "template revision found"
    );

    // Query.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut times = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let (model, version) = &versions[(rng.next() % versions.len() as u64) as usize];
        let t = Instant::now();
        let p = store
            .read(|txn| query::provenance(txn, model, *version))
            .expect("provenance");
        times.push(t.elapsed());
        black_box(p);
    }
    times.sort();
    let mean = times.iter().sum::<Duration>().as_secs_f64() * 1e6 / times.len() as f64;
    serde_json::json!({
        "records": records,
        "index_entries": index_entries,
        "runs": run,
        "model_versions": versions.len(),
        "build_s": build.as_secs_f64(),
        "db_bytes": db_bytes,
        "queries": QUERIES,
        "provenance_p50_us": percentile(&times, 0.50),
        "provenance_p99_us": percentile(&times, 0.99),
        "provenance_max_us": percentile(&times, 1.0),
        "provenance_mean_us": mean,
        "target_ms": 5,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` also runs bench targets, without `--bench`: measure nothing then.
    if !args.iter().any(|a| a == "--bench") {
        println!("lineage benchmark: run it with `make bench` (cargo bench)");
        return;
    }
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench-results/lineage.json".to_string());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let results = serde_json::json!({
        "benchmark": "lineage",
        "cairn_version": cairn::VERSION,
        "git_commit": cairn::GIT_COMMIT,
        "provenance": bench_provenance(&runtime),
        "total_s": Duration::as_secs_f64(&started.elapsed()),
    });
    let text = serde_json::to_string_pretty(&results).expect("json");
    if let Some(dir) = std::path::Path::new(&output).parent() {
        std::fs::create_dir_all(dir).expect("create output dir");
    }
    std::fs::write(&output, &text).expect("write results");
    println!("{text}\nwritten to {output}");
}
