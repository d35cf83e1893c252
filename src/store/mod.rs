//! cairn's embedded database: one redb file, `cairn.redb`, in the data directory.
//!
//! What this module owns:
//! - Opening: creating a new database, checking the schema version of an existing one, and
//!   upgrading it (see the `upgrade` module).
//! - Concurrency: any number of MVCC readers ([`Store::read`]) beside one writer task that
//!   *group-commits* ([`Store::write`]): every write waiting when a transaction starts joins it,
//!   and each caller is answered once that one durable commit has happened. An fsync costs
//!   milliseconds here, so batching is what lets many writers proceed at once.
//!
//! Invariants:
//! - An existing file is inspected read-only first. A file that is not a redb database, is
//!   corrupt, comes from a newer cairn, or is not a cairn database is refused with an error naming
//!   it, and is never written, truncated or repaired. (A valid redb file that was not closed
//!   cleanly is recovered by redb's own crash recovery on open, which only restores its last
//!   committed state.)
//! - An older-schema file is copied to `cairn.redb.schema-<n>.bak` (durably) before its upgrade
//!   is committed; the copy is never overwritten, so a downgrade can go back to it.
//! - Every write closure runs in the single writer thread, inside a batch transaction. A closure
//!   that returns an error (or panics) has no effect: the batch is rolled back and re-run without
//!   it, so it never takes other callers' writes down with it. Closures are therefore `FnMut` and
//!   must only depend on the transaction they are given.
//! - Writes are durable (redb `Durability::Immediate`) before `write` returns `Ok`.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;

use redb::{Database, ReadTransaction, ReadableDatabase, StorageError, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

pub mod tables;
mod upgrade;

pub use tables::JsonTable;

/// The schema version this binary reads and writes.
pub const CURRENT_SCHEMA: u32 = 4;

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "cairn.redb";

/// Upper bound on closures per transaction: bounds the work lost to one retry and the latency of
/// the first caller in a very large batch.
const MAX_BATCH: usize = 512;

/// Writes waiting for the writer; senders wait beyond this (back-pressure, not unbounded memory).
const QUEUE_DEPTH: usize = 4096;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created or inspected.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The database file could not be created or inspected.
    #[error("cannot access database file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The copy of an older-schema file taken before upgrading it could not be written; the file
    /// was not upgraded.
    #[error(
        "cannot back up database {path} to {backup} before upgrading it from schema {from}: \
         {source}; it was not upgraded"
    )]
    Backup {
        /// The database file.
        path: PathBuf,
        /// Where the copy goes.
        backup: PathBuf,
        /// The file's schema version.
        from: u32,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The file exists but is not a redb database; it was left untouched.
    #[error(
        "{path} is not a cairn database ({detail}); refusing to open it. It was not modified: \
         move it away to start with a new database"
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        detail: String,
    },
    /// The file is a redb database but is damaged; it was left untouched.
    #[error(
        "database {path} is corrupt ({detail}); refusing to open it. It was not modified: \
         restore it from a backup"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What redb reported.
        detail: String,
    },
    /// The file was written by a newer cairn with a schema this binary does not know.
    #[error(
        "database {path} has schema version {found} (written by cairn {written_by}), newer than \
         the {supported} this cairn {version} supports; refusing to open it. Run a newer cairn",
        version = crate::VERSION
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Schema version found in the file.
        found: u32,
        /// [`CURRENT_SCHEMA`].
        supported: u32,
        /// The cairn version recorded in the file, or `unknown`.
        written_by: String,
    },
    /// The file is a redb database but not one cairn recognises (no or unreadable schema record).
    #[error("database {path} has an unknown schema ({detail}); refusing to open it")]
    UnknownSchema {
        /// The file.
        path: PathBuf,
        /// Why the schema could not be determined.
        detail: String,
    },
    /// The file uses an older redb file format that needs an offline upgrade.
    #[error("database {path} uses redb file format {format}, which this cairn cannot open")]
    FileFormat {
        /// The file.
        path: PathBuf,
        /// redb's format number.
        format: u8,
    },
    /// Another process (probably another `cairn server`) has the database open.
    #[error("database {path} is in use by another process")]
    InUse {
        /// The file.
        path: PathBuf,
    },
    /// Opening the database failed for another reason.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// redb's error.
        source: Box<redb::DatabaseError>,
    },
    /// A read, write or commit failed in redb.
    #[error("database operation failed: {0}")]
    Redb(#[source] Box<redb::Error>),
    /// A batch commit failed; every write in the batch failed with it.
    #[error("database commit failed: {0}")]
    Commit(String),
    /// A record could not be encoded.
    #[error("cannot encode record {key:?} of table {table}: {source}")]
    Encode {
        /// Table name.
        table: String,
        /// Record key.
        key: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A stored record could not be decoded (written by an incompatible version or damaged).
    #[error("cannot decode record {key:?} of table {table}: {source}")]
    Decode {
        /// Table name.
        table: String,
        /// Record key.
        key: String,
        /// The deserializer's error.
        source: serde_json::Error,
    },
    /// A write closure panicked; its writes were discarded.
    #[error("a database write panicked and was rolled back")]
    Panicked,
    /// The writer thread is gone (the store is shutting down).
    #[error("the database writer has stopped")]
    WriterStopped,
}

impl StoreError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::DataDir { .. } => "data_dir",
            Self::File { .. } => "file",
            Self::Backup { .. } => "backup",
            Self::NotADatabase { .. } => "not_a_database",
            Self::Corrupt { .. } => "corrupt",
            Self::NewerSchema { .. } => "newer_schema",
            Self::UnknownSchema { .. } => "unknown_schema",
            Self::FileFormat { .. } => "file_format",
            Self::InUse { .. } => "in_use",
            Self::Open { .. } => "open",
            Self::Redb(_) => "redb",
            Self::Commit(_) => "commit",
            Self::Encode { .. } => "encode",
            Self::Decode { .. } => "decode",
            Self::Panicked => "panicked",
            Self::WriterStopped => "writer_stopped",
        }
    }
}

macro_rules! redb_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Redb(Box::new(e.into()))
            }
        }
    )*};
}
redb_error_from!(
    redb::TableError,
    redb::StorageError,
    redb::TransactionError,
    redb::CommitError
);

/// Handle to the open database. Cheap to clone; the database closes when the last clone drops.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: Arc<Database>,
    tx: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    queued: AtomicUsize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel stops the writer after it finishes what is queued; waiting for it
        // means the file is closed when the last handle is gone, so it can be reopened at once.
        self.tx.take();
        if let Some(handle) = self.writer.take() {
            // A write closure may own the last handle; then this runs on the writer thread itself.
            if handle.thread().id() != std::thread::current().id() {
                let _ = handle.join();
            }
        }
    }
}

/// What an inspection of an existing file found.
enum Found {
    /// A cairn database at this schema version (0: a redb file with no tables yet).
    Schema(u32),
    /// A redb file that needs crash recovery before it can be read.
    NeedsRecovery,
}

impl Store {
    /// Opens (creating if needed) the database in `dir`, upgrading its schema to
    /// [`CURRENT_SCHEMA`]. Creates `dir` with mode 0700 and the file with mode 0600 when they
    /// do not exist. Blocking: call it at start-up (or from `spawn_blocking`).
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        ensure_dir(dir)?;
        let path = dir.join(DB_FILE);
        let len = match fs::metadata(&path) {
            Ok(meta) => Some(meta.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(StoreError::File { path, source }),
        };
        let (db, found) = match len {
            // A zero-length file holds nothing to lose: redb initializes it like a new file.
            None | Some(0) => {
                if len.is_none() {
                    create_private_file(&path)?;
                }
                let db = Database::builder()
                    .create(&path)
                    .map_err(|e| open_error(&path, e))?;
                (db, 0)
            }
            Some(_) => {
                let found = inspect(&path)?;
                // The copy is taken before redb's open, which writes to the file's header.
                if let Found::Schema(v) = found
                    && needs_backup(v)
                {
                    backup(&path, v)?;
                }
                let db = Database::builder()
                    .open(&path)
                    .map_err(|e| open_error(&path, e))?;
                let version = match found {
                    Found::Schema(v) => v,
                    // Recovered by the open above; now the schema can be checked (and the
                    // recovered file copied before its upgrade).
                    Found::NeedsRecovery => {
                        let txn = db.begin_read()?;
                        let v = schema_version(&path, &txn)?;
                        if needs_backup(v) {
                            backup(&path, v)?;
                        }
                        v
                    }
                };
                (db, version)
            }
        };
        if found < CURRENT_SCHEMA {
            let txn = db.begin_write()?;
            upgrade::apply(&txn, found)?;
            txn.commit()?;
            if found > 0 {
                tracing::info!(path = %path.display(), from = found, to = CURRENT_SCHEMA, "database schema upgraded");
            }
        }
        Ok(Self::start(path, db))
    }

    fn start(path: PathBuf, db: Database) -> Store {
        let db = Arc::new(db);
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let writer = {
            let db = db.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("cairn-store-writer".to_owned())
                .spawn(move || writer_loop(&db, rx, &counters))
        };
        let writer = match writer {
            Ok(handle) => Some(handle),
            Err(e) => {
                // Without a writer every write reports WriterStopped; reads still work.
                tracing::error!(error = %e, "cannot start the database writer thread");
                None
            }
        };
        Store {
            inner: Arc::new(Inner {
                path,
                db,
                tx: writer.as_ref().map(|_| tx),
                writer,
                counters,
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` in a read transaction: a consistent snapshot, concurrent with writes.
    pub fn read<T, E>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let txn = self.inner.db.begin_read().map_err(StoreError::from)?;
        f(&txn)
    }

    /// Runs `f` in the writer's next batch transaction and returns its result once the batch is
    /// durably committed. If `f` returns `Err` (or panics) its writes are discarded and only this
    /// call fails. `f` may run more than once (when another closure in its batch fails), so it
    /// must be a pure function of the transaction. Once queued, the write happens even if the
    /// returned future is dropped.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnMut(&WriteTransaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let Some(tx) = &self.inner.tx else {
            return Err(StoreError::WriterStopped.into());
        };
        let (reply, answer) = oneshot::channel();
        let job = Box::new(TypedJob {
            f,
            outcome: None,
            reply: Some(reply),
        });
        self.inner.counters.queued.fetch_add(1, Ordering::Relaxed);
        if tx.send(job).await.is_err() {
            self.inner.counters.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StoreError::WriterStopped.into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::WriterStopped.into()))
    }

    /// Number of transactions the writer has committed since the store was opened.
    pub fn commit_count(&self) -> u64 {
        self.inner.counters.commits.load(Ordering::Relaxed)
    }

    /// Writes submitted but not yet taken by the writer.
    pub fn queued_writes(&self) -> usize {
        self.inner.counters.queued.load(Ordering::Relaxed)
    }

    /// Whether the database answers a read and the writer is running (for `/readyz`).
    pub fn healthy(&self) -> bool {
        let writer_alive = self.inner.writer.as_ref().is_some_and(|h| !h.is_finished());
        writer_alive && self.inner.db.begin_read().is_ok()
    }
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    // Password hashes and session records live here: owner-only from the start.
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Read access to redb tables in either kind of transaction: a read transaction, or a write
/// transaction (which sees its own writes). The lineage graph and the model registry read
/// through it, so every read function also runs inside the caller's write transaction. A write
/// transaction creates a table it opens; a read transaction reports a missing one as
/// `TableError::TableDoesNotExist`.
pub trait ReadTables {
    /// Opens `def` for reading.
    fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: redb::TableDefinition<'static, K, V>,
    ) -> Result<impl redb::ReadableTable<K, V>, redb::TableError>;
}

impl ReadTables for ReadTransaction {
    fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: redb::TableDefinition<'static, K, V>,
    ) -> Result<impl redb::ReadableTable<K, V>, redb::TableError> {
        self.open_table(def)
    }
}

impl ReadTables for WriteTransaction {
    fn read_table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &self,
        def: redb::TableDefinition<'static, K, V>,
    ) -> Result<impl redb::ReadableTable<K, V>, redb::TableError> {
        self.open_table(def)
    }
}

/// Name of the copy of a schema-`from` database kept by its upgrade, next to it.
pub fn backup_file_name(from: u32) -> String {
    format!("{DB_FILE}.schema-{from}.bak")
}

/// Whether a file at schema `found` is upgraded and so copied first (schema 0 holds no data).
fn needs_backup(found: u32) -> bool {
    found > 0 && found < CURRENT_SCHEMA
}

/// Copies the database at `path` (schema `from`, not yet written by this process) to
/// [`backup_file_name`] next to it, durably, before it is upgraded. A copy already there is
/// kept: it holds the same schema's data from an upgrade that did not commit.
fn backup(path: &Path, from: u32) -> Result<(), StoreError> {
    let target = path.with_file_name(backup_file_name(from));
    let error = |source| StoreError::Backup {
        path: path.to_path_buf(),
        backup: target.clone(),
        from,
        source,
    };
    let tmp = path.with_file_name(format!("{}.tmp", backup_file_name(from)));
    if target.exists() {
        tracing::info!(backup = %target.display(), "keeping the existing pre-upgrade copy");
        return Ok(());
    }
    let copy = || -> io::Result<()> {
        let _ = fs::remove_file(&tmp);
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        io::copy(&mut fs::File::open(path)?, &mut out)?;
        out.sync_all()?;
        fs::rename(&tmp, &target)?;
        if let Some(dir) = target.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    copy().map_err(error)?;
    tracing::info!(path = %path.display(), backup = %target.display(), schema = from, "database copied before its schema upgrade");
    Ok(())
}

fn create_private_file(path: &Path) -> Result<(), StoreError> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::File {
            path: path.to_path_buf(),
            source,
        })
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    let path = path.to_path_buf();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path },
        redb::DatabaseError::UpgradeRequired(format) => StoreError::FileFormat { path, format },
        redb::DatabaseError::Storage(StorageError::Io(io))
            if io.kind() == io::ErrorKind::InvalidData =>
        {
            StoreError::NotADatabase {
                path,
                detail: io.to_string(),
            }
        }
        redb::DatabaseError::Storage(StorageError::Corrupted(detail)) => {
            StoreError::Corrupt { path, detail }
        }
        other => StoreError::Open {
            path,
            source: Box::new(other),
        },
    }
}

/// Looks at an existing file without writing to it: is it a redb database, and which schema?
fn inspect(path: &Path) -> Result<Found, StoreError> {
    // redb documents that a damaged file may make it panic rather than return an error; a panic
    // here must become a refusal, not a crash loop of the service.
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Found, StoreError> {
        let db = match Database::builder().open_read_only(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::RepairAborted) => return Ok(Found::NeedsRecovery),
            Err(e) => return Err(open_error(path, e)),
        };
        let txn = db.begin_read()?;
        schema_version(path, &txn).map(Found::Schema)
    }));
    result.unwrap_or_else(|_| {
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: "redb failed while reading it".to_owned(),
        })
    })
}

/// The supported schema version recorded in the file: 0 for a redb file with no tables at all (a
/// new database whose first transaction never committed). A newer or unreadable schema is an
/// error.
fn schema_version(path: &Path, txn: &ReadTransaction) -> Result<u32, StoreError> {
    let unknown = |detail: String| StoreError::UnknownSchema {
        path: path.to_path_buf(),
        detail,
    };
    let meta = match txn.open_table(tables::META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            let tables = txn.list_tables()?.count() + txn.list_multimap_tables()?.count();
            return if tables == 0 {
                Ok(0)
            } else {
                Err(unknown(format!(
                    "it has {tables} tables but no `meta` table"
                )))
            };
        }
        Err(redb::TableError::Storage(e)) => return Err(storage_error(path, e)),
        Err(e) => return Err(unknown(format!("the `meta` table cannot be read: {e}"))),
    };
    let read = |key: &str| -> Result<Option<String>, StoreError> {
        let value = meta.get(key).map_err(|e| storage_error(path, e))?;
        Ok(value.map(|v| v.value().to_owned()))
    };
    let text = read(tables::META_SCHEMA_VERSION)?
        .ok_or_else(|| unknown("no schema_version record".to_owned()))?;
    let version = text
        .parse::<u32>()
        .map_err(|_| unknown(format!("schema_version is {text:?}, expected a number")))?;
    if version > CURRENT_SCHEMA {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: CURRENT_SCHEMA,
            written_by: read(tables::META_CAIRN_VERSION)?.unwrap_or_else(|| "unknown".to_owned()),
        });
    }
    Ok(version)
}

fn storage_error(path: &Path, e: StorageError) -> StoreError {
    match e {
        StorageError::Corrupted(detail) => StoreError::Corrupt {
            path: path.to_path_buf(),
            detail,
        },
        other => other.into(),
    }
}

/// A type-erased write request.
trait Job: Send {
    /// Runs the closure; returns false when it failed (its outcome is then its error).
    fn run(&mut self, txn: &WriteTransaction) -> bool;
    /// Answers the caller with the closure's outcome (after commit, or after its own failure).
    fn answer(self: Box<Self>);
    /// Answers the caller with a batch failure.
    fn fail(self: Box<Self>, err: StoreError);
}

struct TypedJob<F, T, E> {
    f: F,
    outcome: Option<Result<T, E>>,
    reply: Option<oneshot::Sender<Result<T, E>>>,
}

impl<F, T, E> Job for TypedJob<F, T, E>
where
    F: FnMut(&WriteTransaction) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, txn: &WriteTransaction) -> bool {
        let outcome = catch_unwind(AssertUnwindSafe(|| (self.f)(txn)))
            .unwrap_or_else(|_| Err(StoreError::Panicked.into()));
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn answer(mut self: Box<Self>) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err(StoreError::WriterStopped.into()));
        if let Some(reply) = self.reply.take() {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(outcome);
        }
    }

    fn fail(mut self: Box<Self>, err: StoreError) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(Err(err.into()));
        }
    }
}

fn writer_loop(db: &Database, mut rx: mpsc::Receiver<Box<dyn Job>>, counters: &Counters) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        counters.queued.fetch_sub(batch.len(), Ordering::Relaxed);
        run_batch(db, batch, counters);
    }
}

/// Runs a batch in one transaction. A failing closure is answered with its own error and the
/// batch restarts without it (redb savepoints cannot be taken once a transaction has written, so
/// a per-closure rollback is done by re-running the others).
fn run_batch(db: &Database, mut batch: Vec<Box<dyn Job>>, counters: &Counters) {
    while !batch.is_empty() {
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                let message = e.to_string();
                for job in batch {
                    job.fail(StoreError::Commit(message.clone()));
                }
                return;
            }
        };
        let failed = batch.iter_mut().position(|job| !job.run(&txn));
        match failed {
            Some(index) => {
                // Dropping the transaction would abort it too; aborting explicitly reports errors.
                if let Err(e) = txn.abort() {
                    tracing::warn!(error = %e, "aborting a database write failed");
                }
                batch.remove(index).answer();
            }
            None => {
                match txn.commit() {
                    Ok(()) => {
                        counters.commits.fetch_add(1, Ordering::Relaxed);
                        for job in batch {
                            job.answer();
                        }
                    }
                    Err(e) => {
                        let message = e.to_string();
                        for job in batch {
                            job.fail(StoreError::Commit(message.clone()));
                        }
                    }
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
