use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use redb::{ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::*;

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("test_items");
const ITEMS_JSON: JsonTable<Item> = JsonTable::new(ITEMS);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    n: u32,
}

fn meta(store: &Store, key: &str) -> Option<String> {
    store
        .read(|txn| -> Result<_, StoreError> {
            let table = txn.open_table(tables::META)?;
            Ok(table.get(key)?.map(|v| v.value().to_owned()))
        })
        .expect("read meta")
}

fn put(n: u32) -> impl FnMut(&WriteTransaction) -> Result<(), StoreError> + Send + 'static {
    move |txn| ITEMS_JSON.insert(txn, &format!("k{n:03}"), &Item { n })
}

fn get(store: &Store, key: &str) -> Option<Item> {
    store
        .read(|txn| -> Result<_, StoreError> {
            match ITEMS_JSON.get(txn, key) {
                Err(StoreError::Redb(e)) if matches!(*e, redb::Error::TableDoesNotExist(_)) => {
                    Ok(None)
                }
                other => other,
            }
        })
        .expect("read item")
}

#[tokio::test]
async fn open_creates_private_dir_and_file_with_schema() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("a/b");
    let store = Store::open(&dir).expect("open");
    let mode = |p: &Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(DB_FILE)), 0o600);
    assert_eq!(store.path(), dir.join(DB_FILE));
    assert_eq!(
        meta(&store, tables::META_SCHEMA_VERSION),
        Some(CURRENT_SCHEMA.to_string())
    );
    assert_eq!(
        meta(&store, tables::META_CAIRN_VERSION).as_deref(),
        Some(crate::VERSION)
    );
    // The initial tables exist and are empty.
    let accounts = store.read(|txn| {
        txn.open_table(tables::ACCOUNTS)
            .map_err(StoreError::from)
            .map(|_| ())
    });
    assert!(accounts.is_ok());
    assert!(store.healthy());
}

#[tokio::test]
async fn reopen_keeps_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(tmp.path()).expect("open");
        store.write(put(7)).await.expect("write");
    }
    let store = Store::open(tmp.path()).expect("reopen");
    assert_eq!(get(&store, "k007"), Some(Item { n: 7 }));
    assert_eq!(
        store.commit_count(),
        0,
        "reopening at the current schema commits nothing"
    );
}

#[tokio::test]
async fn second_open_is_refused_while_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let _first = Store::open(tmp.path()).expect("open");
    match Store::open(tmp.path()) {
        Err(StoreError::InUse { path }) => assert_eq!(path, tmp.path().join(DB_FILE)),
        other => panic!("expected InUse, got {other:?}"),
    }
}

fn set_meta(dir: &Path, key: &str, value: &str) {
    let db = Database::open(dir.join(DB_FILE)).expect("raw open");
    let txn = db.begin_write().expect("begin");
    {
        let mut t = txn.open_table(tables::META).expect("meta");
        t.insert(key, value).expect("insert");
    }
    txn.commit().expect("commit");
}

#[tokio::test]
async fn newer_schema_is_refused_and_file_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    drop(Store::open(tmp.path()).expect("open"));
    let newer = (CURRENT_SCHEMA + 1).to_string();
    set_meta(tmp.path(), tables::META_SCHEMA_VERSION, &newer);
    set_meta(tmp.path(), tables::META_CAIRN_VERSION, "9.9.9");
    let file = tmp.path().join(DB_FILE);
    let before = fs::read(&file).expect("read");
    let err = Store::open(tmp.path()).expect_err("newer schema must be refused");
    match &err {
        StoreError::NewerSchema {
            path,
            found,
            supported,
            written_by,
        } => {
            assert_eq!(path, &file);
            assert_eq!((*found, *supported), (CURRENT_SCHEMA + 1, CURRENT_SCHEMA));
            assert_eq!(written_by, "9.9.9");
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    assert_eq!(
        fs::read(&file).expect("read"),
        before,
        "file must not change"
    );
}

#[tokio::test]
async fn unparsable_schema_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    drop(Store::open(tmp.path()).expect("open"));
    set_meta(tmp.path(), tables::META_SCHEMA_VERSION, "one");
    let err = Store::open(tmp.path()).expect_err("refused");
    assert!(matches!(err, StoreError::UnknownSchema { .. }), "{err:?}");
}

#[tokio::test]
async fn foreign_redb_file_is_refused_and_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join(DB_FILE);
    {
        let db = Database::create(&file).expect("create");
        let txn = db.begin_write().expect("begin");
        txn.open_table(ITEMS).expect("table");
        txn.commit().expect("commit");
    }
    let before = fs::read(&file).expect("read");
    let err = Store::open(tmp.path()).expect_err("refused");
    assert!(matches!(err, StoreError::UnknownSchema { .. }), "{err:?}");
    assert_eq!(fs::read(&file).expect("read"), before);
}

#[tokio::test]
async fn garbage_file_is_refused_and_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join(DB_FILE);
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&file, &garbage).expect("write");
    let err = Store::open(tmp.path()).expect_err("garbage must be refused");
    match &err {
        StoreError::NotADatabase { path, .. } => assert_eq!(path, &file),
        other => panic!("expected NotADatabase, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    assert_eq!(
        fs::read(&file).expect("read"),
        garbage,
        "byte-for-byte unchanged"
    );
    // Even a tiny file (shorter than redb's magic number) is refused, not initialized.
    fs::write(&file, b"x").expect("write");
    assert!(matches!(
        Store::open(tmp.path()),
        Err(StoreError::NotADatabase { .. })
    ));
    assert_eq!(fs::read(&file).expect("read"), b"x");
}

#[tokio::test]
async fn corrupt_redb_file_is_refused_and_unchanged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(tmp.path()).expect("open");
        store.write(put(1)).await.expect("write");
    }
    let file = tmp.path().join(DB_FILE);
    let mut bytes = fs::read(&file).expect("read");
    // Keep the magic number, damage the header that follows it.
    for b in bytes.iter_mut().skip(9).take(300) {
        *b ^= 0xA5;
    }
    fs::write(&file, &bytes).expect("write");
    let err = Store::open(tmp.path()).expect_err("corrupt file must be refused");
    assert!(
        matches!(
            err,
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. } | StoreError::Open { .. }
        ),
        "{err:?}"
    );
    assert_eq!(
        fs::read(&file).expect("read"),
        bytes,
        "byte-for-byte unchanged"
    );
}

#[tokio::test]
async fn empty_redb_and_empty_file_are_initialized() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join(DB_FILE);
    // A redb file whose first transaction never committed (schema 0).
    drop(Database::create(&file).expect("create"));
    let store = Store::open(tmp.path()).expect("upgrade from 0");
    assert_eq!(
        meta(&store, tables::META_SCHEMA_VERSION),
        Some(CURRENT_SCHEMA.to_string())
    );
    drop(store);
    fs::write(&file, b"").expect("truncate");
    let store = Store::open(tmp.path()).expect("zero-length file");
    assert_eq!(
        meta(&store, tables::META_SCHEMA_VERSION),
        Some(CURRENT_SCHEMA.to_string())
    );
}

#[tokio::test]
async fn readers_see_snapshots_while_writer_commits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    store.write(put(1)).await.expect("write");
    let before = store.inner.db.begin_read().expect("snapshot");
    // A reader thread reads continuously while the writer commits.
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut reads = 0u32;
            loop {
                let (k1, k2) = store
                    .read(|txn| -> Result<_, StoreError> {
                        Ok((ITEMS_JSON.get(txn, "k001")?, ITEMS_JSON.get(txn, "k002")?))
                    })
                    .expect("read");
                reads += 1;
                // Each read is one snapshot: before the commit or after it, never half of it.
                match k2 {
                    None => assert_eq!(k1, Some(Item { n: 1 })),
                    Some(_) => {
                        assert_eq!(k1, Some(Item { n: 10 }));
                        break reads;
                    }
                }
            }
        })
    };
    store
        .write(|txn| {
            ITEMS_JSON.insert(txn, "k001", &Item { n: 10 })?;
            ITEMS_JSON.insert(txn, "k002", &Item { n: 2 })
        })
        .await
        .expect("write");
    reader.join().expect("reader thread");
    // The old snapshot is unaffected by the commit; a new read sees it.
    assert_eq!(
        ITEMS_JSON.get(&before, "k001").expect("get"),
        Some(Item { n: 1 })
    );
    assert_eq!(ITEMS_JSON.get(&before, "k002").expect("get"), None);
    assert_eq!(get(&store, "k001"), Some(Item { n: 10 }));
}

/// Occupies the writer thread until the returned sender is used (or dropped).
async fn block_writer(store: &Store) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
    let started = Arc::new(Notify::new());
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let wait = std::sync::Mutex::new(wait);
    let handle = {
        let store = store.clone();
        let started = started.clone();
        tokio::spawn(async move {
            store
                .write(move |_txn| -> Result<(), StoreError> {
                    started.notify_one();
                    let _ = wait.lock().map(|rx| rx.recv());
                    Ok(())
                })
                .await
                .expect("blocker");
        })
    };
    started.notified().await;
    (release, handle)
}

async fn wait_queued(store: &Store, n: usize) {
    while store.queued_writes() < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn concurrent_writes_are_group_committed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    let start = store.commit_count();
    let (release, blocker) = block_writer(&store).await;
    const N: u32 = 40;
    let writers: Vec<_> = (0..N)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.write(put(n)).await })
        })
        .collect();
    wait_queued(&store, N as usize).await;
    release.send(()).expect("release");
    for w in writers {
        w.await.expect("join").expect("write");
    }
    blocker.await.expect("blocker");
    let commits = store.commit_count() - start;
    assert_eq!(commits, 2, "the blocker's commit plus one batch of {N}");
    for n in 0..N {
        assert_eq!(get(&store, &format!("k{n:03}")), Some(Item { n }));
    }
}

#[derive(Debug, thiserror::Error)]
enum TestError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("rejected")]
    Rejected,
}

type BoxedWrite = Box<dyn FnMut(&WriteTransaction) -> Result<(), TestError> + Send>;

#[tokio::test]
async fn failing_or_panicking_closure_does_not_lose_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    let (release, blocker) = block_writer(&store).await;
    let spawn = |f: BoxedWrite| {
        let store = store.clone();
        tokio::spawn(async move { store.write(f).await })
    };
    let a = spawn(Box::new(|txn| {
        Ok(ITEMS_JSON.insert(txn, "a", &Item { n: 1 })?)
    }));
    let b = spawn(Box::new(|txn| {
        ITEMS_JSON.insert(txn, "b", &Item { n: 2 })?;
        Err(TestError::Rejected)
    }));
    let c = spawn(Box::new(|txn| {
        Ok(ITEMS_JSON.insert(txn, "c", &Item { n: 3 })?)
    }));
    let d = spawn(Box::new(|txn| {
        ITEMS_JSON.insert(txn, "d", &Item { n: 4 })?;
        panic!("closure bug");
    }));
    let e = spawn(Box::new(|txn| {
        Ok(ITEMS_JSON.insert(txn, "e", &Item { n: 5 })?)
    }));
    wait_queued(&store, 5).await;
    release.send(()).expect("release");
    blocker.await.expect("blocker");
    a.await.expect("join").expect("a commits");
    assert!(matches!(b.await.expect("join"), Err(TestError::Rejected)));
    c.await.expect("join").expect("c commits");
    assert!(matches!(
        d.await.expect("join"),
        Err(TestError::Store(StoreError::Panicked))
    ));
    e.await.expect("join").expect("e commits");
    assert_eq!(get(&store, "a"), Some(Item { n: 1 }));
    assert_eq!(get(&store, "b"), None, "a failed closure leaves no trace");
    assert_eq!(get(&store, "c"), Some(Item { n: 3 }));
    assert_eq!(get(&store, "d"), None, "a panicked closure leaves no trace");
    assert_eq!(get(&store, "e"), Some(Item { n: 5 }));
    // The writer survived the panic.
    store.write(put(9)).await.expect("writer still alive");
    assert!(store.healthy());
}

#[tokio::test]
async fn json_table_operations() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    store
        .write(|txn| {
            for n in [3u32, 1, 2] {
                ITEMS_JSON.insert(txn, &format!("k{n}"), &Item { n })?;
            }
            Ok::<_, StoreError>(())
        })
        .await
        .expect("insert");
    let all = store.read(|txn| ITEMS_JSON.list(txn)).expect("list");
    let keys: Vec<_> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["k1", "k2", "k3"]);
    let removed = store
        .write(|txn| ITEMS_JSON.retain_in(txn, |_, item| item.n != 2))
        .await
        .expect("retain");
    assert_eq!(removed, 1);
    let existed = store
        .write(|txn| ITEMS_JSON.remove(txn, "k1"))
        .await
        .expect("remove");
    assert!(existed);
    let keys: Vec<_> = store
        .read(|txn| ITEMS_JSON.list(txn))
        .expect("list")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["k3"]);
    // A record that does not decode is reported with its table and key.
    store
        .write(|txn| -> Result<(), StoreError> {
            let mut t = txn.open_table(ITEMS)?;
            t.insert("bad", b"{not json".as_slice())?;
            Ok(())
        })
        .await
        .expect("raw insert");
    match store.read(|txn| ITEMS_JSON.get(txn, "bad")) {
        Err(StoreError::Decode { table, key, .. }) => {
            assert_eq!((table.as_str(), key.as_str()), ("test_items", "bad"));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_the_store_closes_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    store.write(put(1)).await.expect("write");
    drop(store);
    // Reopening immediately works: the writer thread was joined and released the file.
    let db = Database::builder()
        .open_read_only(tmp.path().join(DB_FILE))
        .expect("file released");
    drop(db.begin_read().expect("read"));
}

#[tokio::test]
async fn schema_1_upgrades_to_2_keeping_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    store.write(put(7)).await.expect("write");
    drop(store);
    // Turn the file back into a schema-1 database: no archive tables, version 1.
    {
        let db = Database::open(tmp.path().join(DB_FILE)).expect("open raw");
        let txn = db.begin_write().expect("begin");
        for def in [
            tables::ARCHIVED_WORKFLOWS,
            tables::ARCHIVED_WORKFLOW_INDEX,
            tables::ARCHIVED_WORKFLOW_LOGS,
        ] {
            assert!(txn.delete_table(def).expect("delete"));
        }
        txn.commit().expect("commit");
    }
    set_meta(tmp.path(), tables::META_SCHEMA_VERSION, "1");
    let store = Store::open(tmp.path()).expect("upgrade");
    assert_eq!(
        meta(&store, tables::META_SCHEMA_VERSION),
        Some(CURRENT_SCHEMA.to_string())
    );
    let txn = store.inner.db.begin_read().expect("read");
    txn.open_table(tables::ARCHIVED_WORKFLOWS)
        .expect("archive table exists");
    drop(txn);
    assert_eq!(get(&store, "k007").map(|i| i.n), Some(7));
}

#[tokio::test]
async fn schema_2_upgrades_to_current_keeping_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    store.write(put(9)).await.expect("write");
    drop(store);
    // Turn the file back into a schema-2 database: no event bus tables, version 2.
    {
        let db = Database::open(tmp.path().join(DB_FILE)).expect("open raw");
        let txn = db.begin_write().expect("begin");
        assert!(txn.delete_table(tables::EVENT_LOG).expect("delete"));
        assert!(txn.delete_table(tables::EVENT_TOPIC_INDEX).expect("delete"));
        assert!(txn.delete_table(tables::EVENT_CONSUMERS).expect("delete"));
        assert!(txn.delete_table(tables::EVENT_INFLIGHT).expect("delete"));
        assert!(txn.delete_table(tables::EVENT_BUS_STATE).expect("delete"));
        txn.commit().expect("commit");
    }
    set_meta(tmp.path(), tables::META_SCHEMA_VERSION, "2");
    let store = Store::open(tmp.path()).expect("upgrade");
    assert_eq!(
        meta(&store, tables::META_SCHEMA_VERSION),
        Some(CURRENT_SCHEMA.to_string())
    );
    let txn = store.inner.db.begin_read().expect("read");
    txn.open_table(tables::EVENT_LOG).expect("event log exists");
    txn.open_table(tables::EVENT_INFLIGHT)
        .expect("in-flight table exists");
    drop(txn);
    assert_eq!(get(&store, "k009").map(|i| i.n), Some(9));
}

#[tokio::test]
async fn schema_3_upgrades_to_4_creating_the_lineage_tables_and_keeping_data() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    store.write(put(4)).await.expect("write");
    drop(store);
    // Turn the file back into a schema-3 database: no lineage, registry or MLflow tables.
    {
        let db = Database::open(tmp.path().join(DB_FILE)).expect("open raw");
        let txn = db.begin_write().expect("begin");
        assert!(txn.delete_table(tables::LINEAGE_NODES).expect("delete"));
        assert!(txn.delete_table(tables::LINEAGE_EDGES_OUT).expect("delete"));
        assert!(txn.delete_table(tables::LINEAGE_EDGES_IN).expect("delete"));
        assert!(txn.delete_table(tables::LINEAGE_INDEX).expect("delete"));
        assert!(txn.delete_table(tables::MODELS).expect("delete"));
        assert!(txn.delete_table(tables::MODEL_VERSIONS).expect("delete"));
        assert!(txn.delete_table(tables::MODEL_ALIASES).expect("delete"));
        assert!(txn.delete_table(tables::PROMOTIONS).expect("delete"));
        assert!(
            txn.delete_table(tables::MLFLOW_EXPERIMENTS)
                .expect("delete")
        );
        assert!(txn.delete_table(tables::MLFLOW_RUNS).expect("delete"));
        assert!(txn.delete_table(tables::MLFLOW_METRICS).expect("delete"));
        txn.commit().expect("commit");
    }
    set_meta(tmp.path(), tables::META_SCHEMA_VERSION, "3");
    let store = Store::open(tmp.path()).expect("upgrade");
    assert_eq!(
        meta(&store, tables::META_SCHEMA_VERSION),
        Some("4".to_owned())
    );
    let txn = store.inner.db.begin_read().expect("read");
    txn.open_table(tables::LINEAGE_NODES)
        .expect("lineage nodes exist");
    txn.open_table(tables::LINEAGE_EDGES_IN)
        .expect("lineage edges exist");
    txn.open_table(tables::MODEL_VERSIONS)
        .expect("model versions exist");
    txn.open_table(tables::MLFLOW_METRICS)
        .expect("mlflow metrics exist");
    drop(txn);
    assert_eq!(get(&store, "k004").map(|i| i.n), Some(4));
}
