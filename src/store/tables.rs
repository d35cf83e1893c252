//! Every redb table cairn uses, defined in one place, plus a typed JSON view over them.
//!
//! Invariants:
//! - A table's key and value types never change within a schema version; changing them is a new
//!   schema version with an upgrade module (see `store::upgrade`).
//! - [`META`] is frozen forever (`&str -> &str`): every cairn version, old or new, must be able
//!   to read the schema version out of any cairn database in order to refuse it cleanly.
//! - Values of the other tables are JSON documents (`&[u8]`), so records can gain optional fields
//!   without a schema change; the record types live with the code that owns them. The event
//!   bus's tables are the exception where it needs ordered numeric keys or fixed-width values on
//!   its hot path (sequence numbers, deadlines, counters); their layout is documented per table.

use std::marker::PhantomData;

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Database metadata: `schema_version` (decimal u32) and `cairn_version` (the version that last
/// wrote the schema). Frozen: see the module invariants.
pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta");

/// Key of the schema version in [`META`].
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// Key of the cairn version that created or last upgraded the schema, in [`META`].
pub const META_CAIRN_VERSION: &str = "cairn_version";

/// Local account credentials: account name -> JSON `auth::accounts::AccountRecord`.
pub const ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("accounts");

/// API tokens: token id -> JSON `auth::tokens::TokenRecord` (secret stored hashed).
pub const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");

/// Server-side sessions: SHA-256 of the session id (hex) -> JSON `auth::session::SessionRecord`.
/// Keyed by hash so a copy of the database does not yield live session cookies.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");

/// Consecutive login failures: account name -> JSON `auth::accounts::FailureRecord`.
pub const LOGIN_FAILURES: TableDefinition<&str, &[u8]> = TableDefinition::new("login_failures");

/// Signing keys of AppProject role tokens (`auth::project_tokens`): `current` and `previous`
/// -> JSON `KeyRecord` (key id, the 32 key bytes, creation time; `previous` also the end of its
/// grace period). Created on first use, so schema 3 needs no upgrade step: a missing table means
/// no key has been made yet. The key bytes are as secret as the database file (mode 0600).
pub const PROJECT_SIGNING_KEYS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("project_signing_keys");

/// Archived workflows: Workflow uid -> JSON `workflow::archive::ArchivedWorkflow` (the whole
/// object as it finished). Schema 2.
pub const ARCHIVED_WORKFLOWS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("archived_workflows");

/// Summaries of archived workflows for listing: `<namespace>/<name>/<uid>` -> JSON
/// `workflow::archive::ArchiveSummary`. Schema 2.
pub const ARCHIVED_WORKFLOW_INDEX: TableDefinition<&str, &[u8]> =
    TableDefinition::new("archived_workflow_index");

/// Logs of archived workflows' nodes: `<uid>/<node id>` -> JSON `workflow::archive::NodeLog`.
/// Schema 2.
pub const ARCHIVED_WORKFLOW_LOGS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("archived_workflow_logs");

/// The embedded event bus's log (`events::bus::embedded`): sequence number -> (publish time in
/// Unix ms, topic key, JSON `{topic, event}`). Time and topic key sit outside the JSON so
/// retention and listing filters read them without decoding events. Schema 3.
pub const EVENT_LOG: TableDefinition<u64, (u64, &str, &[u8])> = TableDefinition::new("event_log");

/// The event log by topic: (topic key, sequence number) -> (), so a consumer scans only its
/// topic. Schema 3.
pub const EVENT_TOPIC_INDEX: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("event_topic_index");

/// Durable bus consumers: name -> JSON `events::bus::embedded::ConsumerRecord` (topic, ack wait,
/// cursor). Schema 3.
pub const EVENT_CONSUMERS: TableDefinition<&str, &[u8]> = TableDefinition::new("event_consumers");

/// Deliveries not yet acknowledged: (consumer, sequence number) -> (redelivery deadline in Unix
/// ms, attempt). Schema 3.
pub const EVENT_INFLIGHT: TableDefinition<(&str, u64), (u64, u32)> =
    TableDefinition::new("event_inflight");

/// The event log's counters: `next_seq`, `events`, `bytes` -> value. Schema 3.
pub const EVENT_BUS_STATE: TableDefinition<&str, u64> = TableDefinition::new("event_bus_state");

/// Lineage graph nodes (`lineage::graph`): node id -> JSON `lineage::graph::Node`. Ids are
/// `a:<hex>` (artifact), `x:<hex>` (execution), `c:<hex>` (context), derived from the node's
/// natural key so a replayed capture writes the same node. Schema 4.
pub const LINEAGE_NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("lineage_nodes");

/// Lineage edges by source: (from id, to id) -> JSON `lineage::graph::EdgeKind` (input, output,
/// member, promotes...). A prefix range on `from` lists a node's outgoing edges. Schema 4.
pub const LINEAGE_EDGES_OUT: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("lineage_edges_out");

/// The same edges by target: (to id, from id) -> JSON edge kind, for upstream walks. Schema 4.
pub const LINEAGE_EDGES_IN: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("lineage_edges_in");

/// Secondary lookups into the graph: (index key, node id) -> (). Index keys are
/// `<index name>/<value>`, e.g. `digest/sha256:<hex>`, `workflow-uid/<uid>`, `uri/<uri>`,
/// `time/<unix ms, 20 digits>` (retention). Schema 4.
pub const LINEAGE_INDEX: TableDefinition<(&str, &str), ()> = TableDefinition::new("lineage_index");

/// Registered models (`lineage::registry`): model name -> JSON `RegisteredModel` (description,
/// tags, creation/update times, the next version number). Schema 4.
pub const MODELS: TableDefinition<&str, &[u8]> = TableDefinition::new("models");

/// Model versions: `<model>/<version, 10 digits>` -> JSON `ModelVersion` (source URI, artifact
/// digest, run link, metrics, tags, status, lineage id). Zero-padded so a range lists a model's
/// versions in order. Schema 4.
pub const MODEL_VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("model_versions");

/// Model aliases: `<model>/<alias>` -> JSON `AliasRecord` (version, who set it, when). Schema 4.
pub const MODEL_ALIASES: TableDefinition<&str, &[u8]> = TableDefinition::new("model_aliases");

/// Promotions by Git commit (`lineage::promote`): promotion id -> JSON `Promotion` (model,
/// version, alias, repository, file, commit, branch, then the sync result and the time the
/// serving workload became Healthy at that revision). Schema 4.
pub const PROMOTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("promotions");

/// MLflow experiments (`lineage::mlflow`): experiment id -> JSON. Schema 4.
pub const MLFLOW_EXPERIMENTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("mlflow_experiments");

/// MLflow runs: run id -> JSON (info, params, tags, latest metrics, inputs). Schema 4.
pub const MLFLOW_RUNS: TableDefinition<&str, &[u8]> = TableDefinition::new("mlflow_runs");

/// MLflow metric history: (run id, metric key, step, timestamp ms) -> value. Schema 4.
pub const MLFLOW_METRICS: TableDefinition<(&str, &str, i64, i64), f64> =
    TableDefinition::new("mlflow_metrics");

/// A typed view of a `&str -> JSON` table.
pub struct JsonTable<V> {
    def: TableDefinition<'static, &'static str, &'static [u8]>,
    _value: PhantomData<fn() -> V>,
}

impl<V> JsonTable<V> {
    /// Wraps a table definition whose values are JSON encodings of `V`.
    pub const fn new(def: TableDefinition<'static, &'static str, &'static [u8]>) -> Self {
        Self {
            def,
            _value: PhantomData,
        }
    }

    /// The table's name.
    pub fn name(&self) -> String {
        use redb::TableHandle;
        self.def.name().to_owned()
    }
}

impl<V: Serialize + DeserializeOwned> JsonTable<V> {
    /// Reads one record in a read transaction.
    pub fn get(&self, txn: &ReadTransaction, key: &str) -> Result<Option<V>, StoreError> {
        let table = txn.open_table(self.def)?;
        self.get_from(&table, key)
    }

    /// Reads one record inside a write transaction (sees the transaction's own writes).
    pub fn get_in(&self, txn: &WriteTransaction, key: &str) -> Result<Option<V>, StoreError> {
        let table = txn.open_table(self.def)?;
        self.get_from(&table, key)
    }

    /// Inserts or replaces one record.
    pub fn insert(&self, txn: &WriteTransaction, key: &str, value: &V) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode {
            table: self.name(),
            key: key.to_owned(),
            source,
        })?;
        let mut table = txn.open_table(self.def)?;
        table.insert(key, bytes.as_slice())?;
        Ok(())
    }

    /// Removes one record; returns whether it existed.
    pub fn remove(&self, txn: &WriteTransaction, key: &str) -> Result<bool, StoreError> {
        let mut table = txn.open_table(self.def)?;
        let existed = table.remove(key)?.is_some();
        Ok(existed)
    }

    /// All records, in key order, in a read transaction.
    pub fn list(&self, txn: &ReadTransaction) -> Result<Vec<(String, V)>, StoreError> {
        let table = txn.open_table(self.def)?;
        self.list_from(&table)
    }

    /// All records, in key order, inside a write transaction.
    pub fn list_in(&self, txn: &WriteTransaction) -> Result<Vec<(String, V)>, StoreError> {
        let table = txn.open_table(self.def)?;
        self.list_from(&table)
    }

    /// Removes every record for which `keep` returns false; returns how many were removed.
    /// A record that does not decode is kept (and reported by the next read) rather than lost.
    pub fn retain_in(
        &self,
        txn: &WriteTransaction,
        mut keep: impl FnMut(&str, &V) -> bool,
    ) -> Result<usize, StoreError> {
        let doomed: Vec<String> = self
            .list_in(txn)?
            .into_iter()
            .filter(|(k, v)| !keep(k, v))
            .map(|(k, _)| k)
            .collect();
        let mut table = txn.open_table(self.def)?;
        for key in &doomed {
            table.remove(key.as_str())?;
        }
        Ok(doomed.len())
    }

    fn get_from(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<V>, StoreError> {
        match table.get(key)? {
            Some(guard) => self.decode(key, guard.value()).map(Some),
            None => Ok(None),
        }
    }

    fn list_from(
        &self,
        table: &impl ReadableTable<&'static str, &'static [u8]>,
    ) -> Result<Vec<(String, V)>, StoreError> {
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            let key = k.value().to_owned();
            let value = self.decode(&key, v.value())?;
            out.push((key, value));
        }
        Ok(out)
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<V, StoreError> {
        serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
            table: self.name(),
            key: key.to_owned(),
            source,
        })
    }
}
