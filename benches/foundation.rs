//! Foundation benchmarks: RBAC decisions, group-committed store writes, password hashing.
//!
//! `make bench` runs this and writes JSON results to `bench-results/foundation.json` (the path
//! after `--output`). Numbers are reported, not asserted: performance targets are checked by
//! reading these files, never by timed assertions in tests.

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairn::auth::password::Hasher;
use cairn::auth::rbac::Policy;
use cairn::store::{JsonTable, Store};
use redb::TableDefinition;

const BENCH_TABLE: JsonTable<u64> = JsonTable::new(TableDefinition::new("bench_kv"));

fn policy_csv(projects: usize) -> String {
    let mut csv = String::new();
    for p in 0..projects {
        csv.push_str(&format!(
            "p, role:team-{p}, applications, *, project-{p}/*, allow\n\
             p, role:team-{p}, applications, delete, project-{p}/prod-*, deny\n\
             p, role:team-{p}, workflows, get, ns-{p}/*, allow\n\
             g, group-{p}, role:team-{p}\n"
        ));
    }
    csv
}

fn bench_rbac() -> serde_json::Value {
    let projects = 250;
    let policy =
        Policy::parse(&policy_csv(projects), Some("role:readonly")).expect("policy parses");
    let subjects = ["alice", "group-17", "group-201"];
    let iterations = 200_000u32;
    let start = Instant::now();
    let mut allowed = 0u32;
    for i in 0..iterations {
        let object = format!("project-{}/app-{}", i % (projects as u32), i % 7);
        if policy.enforce(black_box(&subjects), "applications", "sync", &object) {
            allowed += 1;
        }
    }
    let elapsed = start.elapsed();
    serde_json::json!({
        "policy_lines": projects * 4,
        "iterations": iterations,
        "allowed": allowed,
        "ns_per_enforce": elapsed.as_nanos() as f64 / iterations as f64,
    })
}

fn bench_store(runtime: &tokio::runtime::Runtime) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let writes = 2_000u64;

    // Sequential: each write waits for its own commit (one fsync each).
    let seq_writes = 200u64;
    let start = Instant::now();
    runtime.block_on(async {
        for i in 0..seq_writes {
            store
                .write(move |txn| BENCH_TABLE.insert(txn, &format!("seq-{i}"), &i))
                .await
                .expect("write");
        }
    });
    let sequential = start.elapsed();

    // Concurrent: all writes in flight at once; the writer batches them.
    let commits_before = store.commit_count();
    let start = Instant::now();
    runtime.block_on(async {
        let mut handles = Vec::new();
        for i in 0..writes {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store
                    .write(move |txn| BENCH_TABLE.insert(txn, &format!("k-{i}"), &i))
                    .await
            }));
        }
        for h in handles {
            h.await.expect("join").expect("write");
        }
    });
    let concurrent = start.elapsed();
    let commits = store.commit_count() - commits_before;
    serde_json::json!({
        "sequential_writes": seq_writes,
        "sequential_writes_per_s": seq_writes as f64 / sequential.as_secs_f64(),
        "concurrent_writes": writes,
        "concurrent_writes_per_s": writes as f64 / concurrent.as_secs_f64(),
        "concurrent_commits": commits,
        "writes_per_commit": writes as f64 / commits.max(1) as f64,
    })
}

fn bench_password() -> serde_json::Value {
    let hasher = Hasher::default();
    let start = Instant::now();
    let rounds = 5;
    let mut last = String::new();
    for _ in 0..rounds {
        last = hasher.hash("correct horse battery staple").expect("hash");
    }
    let hash_ms = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
    let start = Instant::now();
    assert!(hasher.verify("correct horse battery staple", &last));
    serde_json::json!({
        "argon2id_hash_ms": hash_ms,
        "argon2id_verify_ms": start.elapsed().as_secs_f64() * 1000.0,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` also runs bench targets, without `--bench`: measure nothing then.
    if !args.iter().any(|a| a == "--bench") {
        println!("foundation benchmark: run it with `make bench` (cargo bench)");
        return;
    }
    let output = args
        .iter()
        .position(|a| a == "--output")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench-results/foundation.json".to_string());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    let results = serde_json::json!({
        "benchmark": "foundation",
        "cairn_version": cairn::VERSION,
        "git_commit": cairn::GIT_COMMIT,
        "rbac": bench_rbac(),
        "store": bench_store(&runtime),
        "password": bench_password(),
        "total_s": Duration::as_secs_f64(&started.elapsed()),
    });
    let text = serde_json::to_string_pretty(&results).expect("json");
    if let Some(dir) = std::path::Path::new(&output).parent() {
        std::fs::create_dir_all(dir).expect("create output dir");
    }
    std::fs::write(&output, &text).expect("write results");
    println!("{text}\nwritten to {output}");
}
