//! Retention of the lineage graph (`[lineage] retention_max_age`): workflow runs created before
//! the cutoff leave the graph with their executions and the artifacts nothing else touches,
//! unless something still needs them.
//!
//! A run is kept when any of these holds:
//! - it, or one of its executions, produced a registered model version (`Produced`), so
//!   `cairn lineage model` answers for every version in the registry;
//! - an artifact one of its executions wrote is a model version's artifact (`Member` of a
//!   ModelVersion context) or was read by an execution of another run (a later run's provenance
//!   reaches through it).
//!
//! An artifact goes only when every edge it has touches a node that goes; pipelines,
//! applications, model versions and promotions never go. [`plan`] is pure over a read view
//! (and is run inside the write transaction that removes, so what it saw is what is removed);
//! [`prune`] applies one pass. Every pass is bounded by `max_runs`.

use std::collections::BTreeSet;

use redb::{ReadableTable, WriteTransaction};

use super::graph::{self, ContextKind, EdgeKind, GraphRead, Node, Result, index};

/// What one pass removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Runs examined (older than the cutoff), kept ones included.
    pub examined: usize,
    /// Runs that go.
    pub runs: usize,
    /// Node ids that go (runs, executions, artifacts).
    pub ids: Vec<String>,
    /// Index entries `(index key, id)` that go with them.
    pub index: Vec<(String, String)>,
    /// Whether runs older than the cutoff remain unexamined (the pass hit `max_runs`).
    pub more: bool,
}

/// The run contexts created before `cutoff_ms` (unix milliseconds), oldest first, at most
/// `limit`, from the `time` index; the flag says whether more remain.
fn old_runs(
    txn: &impl GraphRead,
    cutoff_ms: i64,
    limit: usize,
) -> Result<(Vec<(String, String)>, bool)> {
    let lo = graph::index_key(index::TIME, "");
    let hi = graph::index_key(index::TIME, &format!("{:020}", cutoff_ms.max(0)));
    let table = txn
        .read_table(crate::store::tables::LINEAGE_INDEX)
        .map_err(crate::store::StoreError::from)?;
    let mut out = Vec::new();
    for entry in table.range((lo.as_str(), "")..(hi.as_str(), ""))? {
        let (k, _) = entry?;
        if out.len() == limit {
            return Ok((out, true));
        }
        let (key, id) = k.value();
        out.push((key.to_owned(), id.to_owned()));
    }
    Ok((out, false))
}

/// The index entries a node carries, as capture and the registry write them.
fn index_entries(id: &str, node: &Node) -> Vec<(String, String)> {
    let entry = |name: &str, value: &str| (graph::index_key(name, value), id.to_owned());
    match node {
        Node::Execution(x) => {
            let mut v = vec![entry(index::WORKFLOW_UID, &x.workflow_uid)];
            if let Some(d) = &x.image_digest {
                v.push(entry(index::IMAGE_DIGEST, d));
            }
            v
        }
        Node::Artifact(a) => {
            let mut v = vec![entry(index::URI, &a.uri)];
            if let Some(d) = &a.digest {
                v.push(entry(index::DIGEST, d));
            }
            v
        }
        Node::Context(c) if c.kind == ContextKind::WorkflowRun => {
            vec![entry(index::WORKFLOW_UID, &c.name)]
        }
        Node::Context(_) => Vec::new(),
    }
}

fn is_model_version(txn: &impl GraphRead, id: &str) -> Result<bool> {
    Ok(matches!(
        graph::get(txn, id)?,
        Some(Node::Context(c)) if c.kind == ContextKind::ModelVersion
    ))
}

/// Plans one pass: the runs created before `cutoff_ms`, at most `max_runs` of them. Pure over
/// `txn`.
pub fn plan(txn: &impl GraphRead, cutoff_ms: i64, max_runs: usize) -> Result<Plan> {
    let (runs, more) = old_runs(txn, cutoff_ms, max_runs)?;
    let mut plan = Plan {
        examined: runs.len(),
        more,
        ..Plan::default()
    };
    for (time_key, run) in runs {
        let Some(run_node) = graph::get(txn, &run)? else {
            // A dangling index entry: drop it.
            plan.index.push((time_key, run));
            continue;
        };
        if !matches!(&run_node, Node::Context(c) if c.kind == ContextKind::WorkflowRun) {
            continue;
        }
        let executions: Vec<String> = graph::in_edges(txn, &run)?
            .into_iter()
            .filter(|e| e.kind == EdgeKind::Member)
            .map(|e| e.from)
            .collect();
        let mut going: BTreeSet<String> = executions.iter().cloned().collect();
        going.insert(run.clone());
        let mut keep = graph::out_edges(txn, &run)?
            .iter()
            .any(|e| e.kind == EdgeKind::Produced);
        let mut artifacts = BTreeSet::new();
        for x in &executions {
            if keep {
                break;
            }
            for e in graph::out_edges(txn, x)? {
                match e.kind {
                    EdgeKind::Produced => keep = true,
                    EdgeKind::Output => {
                        artifacts.insert(e.to);
                    }
                    _ => {}
                }
            }
            for e in graph::in_edges(txn, x)? {
                if e.kind == EdgeKind::Input {
                    artifacts.insert(e.from);
                }
            }
        }
        let mut leaving = Vec::new();
        for a in &artifacts {
            if keep {
                break;
            }
            let out = graph::out_edges(txn, a)?;
            let inn = graph::in_edges(txn, a)?;
            let wrote_here = inn
                .iter()
                .any(|e| e.kind == EdgeKind::Output && going.contains(&e.from));
            for e in &out {
                let other_reader = e.kind == EdgeKind::Input && !going.contains(&e.to);
                let in_model = e.kind == EdgeKind::Member && is_model_version(txn, &e.to)?;
                if wrote_here && (other_reader || in_model) {
                    keep = true;
                }
            }
            let only_here = out
                .iter()
                .map(|e| &e.to)
                .chain(inn.iter().map(|e| &e.from))
                .all(|n| going.contains(n));
            if only_here {
                leaving.push(a.clone());
            }
        }
        if keep {
            continue;
        }
        plan.runs += 1;
        plan.index.push((time_key, run.clone()));
        plan.index.extend(index_entries(&run, &run_node));
        for id in executions.into_iter().chain(leaving) {
            if let Some(node) = graph::get(txn, &id)? {
                plan.index.extend(index_entries(&id, &node));
            }
            plan.ids.push(id);
        }
        plan.ids.push(run);
    }
    Ok(plan)
}

/// One pass inside `txn`: plans and removes; returns the plan (what went).
pub fn prune(txn: &WriteTransaction, cutoff_ms: i64, max_runs: usize) -> Result<Plan> {
    let plan = plan(txn, cutoff_ms, max_runs)?;
    graph::remove(txn, &plan.ids, &plan.index)?;
    Ok(plan)
}

/// How often the retention task runs.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
/// Runs examined per pass (one write transaction).
pub const PASS_RUNS: usize = 500;
/// Passes per round at most (the rest waits for the next round).
const MAX_PASSES: usize = 200;

/// The retention task: at start and every [`INTERVAL`], removes what [`plan`] allows for runs
/// older than `max_age`, in passes of [`PASS_RUNS`]; nothing when `max_age` is zero. Failures
/// are logged and retried next round.
pub async fn run(store: crate::store::Store, max_age: std::time::Duration) {
    if max_age.is_zero() {
        return;
    }
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        let cutoff = jiff::Timestamp::now().as_millisecond()
            - i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let (mut runs, mut nodes) = (0, 0);
        for _ in 0..MAX_PASSES {
            match store.write(move |txn| prune(txn, cutoff, PASS_RUNS)).await {
                Ok(p) => {
                    runs += p.runs;
                    nodes += p.ids.len();
                    if !p.more {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lineage retention pass failed");
                    break;
                }
            }
        }
        if runs > 0 {
            tracing::info!(runs, nodes, "lineage retention removed old runs");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::graph::{Artifact, ArtifactType, Batch, Context, Execution};
    use crate::store::Store;

    fn execution(run_uid: &str, node: &str) -> Node {
        Node::Execution(Box::new(Execution {
            namespace: "ml".into(),
            workflow: format!("wf-{run_uid}"),
            workflow_uid: run_uid.into(),
            node_id: node.into(),
            template: node.into(),
            attempt: 0,
            image: "img".into(),
            image_digest: Some(format!("sha256:{run_uid}{node}")),
            command: vec![],
            inputs: Default::default(),
            outputs: Default::default(),
            exit_code: Some(0),
            phase: "Succeeded".into(),
            started: None,
            finished: None,
        }))
    }

    fn artifact(uri: &str) -> Node {
        Node::Artifact(Artifact {
            name: "a".into(),
            uri: uri.into(),
            digest: Some(format!("sha256:{uri}")),
            size: None,
            type_: ArtifactType::from_name("artifact"),
            created: None,
        })
    }

    /// A run `uid` created at `ms`: one execution reading `input` and writing `output`.
    fn run(b: &mut Batch, uid: &str, ms: i64, input: &str, output: &str) -> (String, String) {
        let r = b.node(Node::Context(Context {
            kind: ContextKind::WorkflowRun,
            name: uid.into(),
            properties: Default::default(),
        }));
        b.index(index::WORKFLOW_UID, uid, &r);
        b.index(index::TIME, &format!("{ms:020}"), &r);
        let x = b.node(execution(uid, "train"));
        b.index(index::WORKFLOW_UID, uid, &x);
        b.edge(&x, &r, EdgeKind::Member);
        for (uri, kind) in [(input, EdgeKind::Input), (output, EdgeKind::Output)] {
            let a = b.node(artifact(uri));
            b.index(index::URI, uri, &a);
            b.index(index::DIGEST, &format!("sha256:{uri}"), &a);
            if kind == EdgeKind::Input {
                b.edge(&a, &x, kind);
            } else {
                b.edge(&x, &a, kind);
            }
        }
        (r, x)
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (dir, store)
    }

    async fn write(store: &Store, b: Batch) {
        store
            .write(move |txn| graph::write(txn, &b))
            .await
            .expect("write");
    }

    async fn pass(store: &Store, cutoff_ms: i64, max_runs: usize) -> Plan {
        store
            .write(move |txn| prune(txn, cutoff_ms, max_runs))
            .await
            .expect("prune")
    }

    fn exists(store: &Store, id: &str) -> bool {
        store
            .read(|txn| graph::get(txn, id))
            .expect("read")
            .is_some()
    }

    #[tokio::test]
    async fn an_old_run_goes_with_what_only_it_touched() {
        let (_d, store) = store();
        let mut b = Batch::default();
        let (old, old_x) = run(&mut b, "u1", 1_000, "s3://data/shared", "s3://out/1");
        let (new, _) = run(&mut b, "u2", 9_000, "s3://data/shared", "s3://out/2");
        write(&store, b).await;
        let shared = graph::artifact_id(Some("sha256:s3://data/shared"), "s3://data/shared");
        let out1 = graph::artifact_id(Some("sha256:s3://out/1"), "s3://out/1");

        let plan = pass(&store, 5_000, 100).await;
        assert_eq!((plan.examined, plan.runs, plan.more), (1, 1, false));
        for gone in [&old, &old_x, &out1] {
            assert!(!exists(&store, gone), "{gone} should be gone");
        }
        // The dataset the newer run read stays, with the newer run.
        assert!(exists(&store, &shared));
        assert!(exists(&store, &new));
        let left: Vec<String> = store
            .read(|txn| graph::lookup(txn, index::WORKFLOW_UID, "u1"))
            .expect("lookup");
        assert!(left.is_empty(), "{left:?}");
        let left = store
            .read(|txn| graph::lookup(txn, index::URI, "s3://out/1"))
            .expect("lookup");
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(
            store
                .read(|txn| graph::lookup(txn, index::URI, "s3://data/shared"))
                .expect("lookup")
                .len(),
            1
        );
        // A second pass finds nothing older.
        let again = pass(&store, 5_000, 100).await;
        assert_eq!((again.examined, again.runs), (0, 0));
    }

    #[tokio::test]
    async fn runs_behind_a_model_version_or_a_later_run_stay() {
        let (_d, store) = store();
        let mut b = Batch::default();
        // u1 produced a model version (Produced from its execution).
        let (r1, x1) = run(&mut b, "u1", 1_000, "s3://d/1", "s3://m/1");
        let mv = b.node(Node::Context(Context {
            kind: ContextKind::ModelVersion,
            name: "recommender/1".into(),
            properties: Default::default(),
        }));
        b.edge(&x1, &mv, EdgeKind::Produced);
        // u2's output is a model version's artifact.
        let (r2, _) = run(&mut b, "u2", 2_000, "s3://d/2", "s3://m/2");
        let m2 = graph::artifact_id(Some("sha256:s3://m/2"), "s3://m/2");
        let mv2 = b.node(Node::Context(Context {
            kind: ContextKind::ModelVersion,
            name: "recommender/2".into(),
            properties: Default::default(),
        }));
        b.edge(&m2, &mv2, EdgeKind::Member);
        // u3's output is read by the newer run u4.
        let (r3, _) = run(&mut b, "u3", 3_000, "s3://d/3", "s3://features/3");
        let (r4, _) = run(&mut b, "u4", 9_000, "s3://features/3", "s3://m/4");
        write(&store, b).await;

        let plan = pass(&store, 5_000, 100).await;
        assert_eq!((plan.examined, plan.runs), (3, 0), "{plan:?}");
        for kept in [&r1, &r2, &r3, &r4, &mv, &mv2] {
            assert!(exists(&store, kept), "{kept} should stay");
        }
    }

    #[tokio::test]
    async fn passes_are_bounded_and_resume() {
        let (_d, store) = store();
        let mut b = Batch::default();
        for i in 0..5 {
            run(
                &mut b,
                &format!("u{i}"),
                1_000 + i,
                &format!("s3://d/{i}"),
                &format!("s3://o/{i}"),
            );
        }
        write(&store, b).await;
        let first = pass(&store, 5_000, 2).await;
        assert_eq!((first.examined, first.runs, first.more), (2, 2, true));
        let second = pass(&store, 5_000, 10).await;
        assert_eq!((second.examined, second.runs, second.more), (3, 3, false));
    }
}
