//! The sensor history: every trigger outcome and every event a sensor did not use, kept in
//! cairn's redb database, for `cairn sensor history`, `cairn events list` and the API.
//!
//! Owns two tables of its own (created by [`History::open`]; new tables need no schema version,
//! since an older cairn ignores tables it does not know):
//! - `events_sensor_history`: `<namespace>/<sensor>/<time: 20-digit ns since the epoch>/<key>`
//!   → JSON [`HistoryEntry`]. Sensor names cannot contain `/`, so a sensor's records are one key
//!   range, in time order.
//! - `events_sensor_history_keys`: `<namespace>/<sensor>/<key>` → the record's key above, where
//!   `<key>` is the record's identity: for an outcome SHA-256 of (trigger, the fired event ids
//!   by dependency), for an unmatched event SHA-256 of (dependency, event id).
//!
//! Invariants:
//! - Recording is idempotent on the identity: recording the same (sensor, trigger, event ids)
//!   again keeps the first record and returns it; this is what the runner asks before firing
//!   ([`History::outcome`]), so a redelivered event never fires a trigger twice.
//! - A record and its identity entry are written and removed in the same transaction.
//! - Retention ([`History::prune`]) is bounded by age and by count per sensor; nothing else
//!   deletes records, except [`History::delete_sensor`].
//! - Reading never writes. No secret is recorded: errors are the trigger's messages, which never
//!   carry credentials (HTTP triggers record the URL without userinfo).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::{Store, StoreError};

/// Records by `<namespace>/<sensor>/<time>/<key>`.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("events_sensor_history");
/// Identity → record key.
const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("events_sensor_history_keys");

/// Default retention by age: 7 days.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default retention by count: the newest 10,000 records per sensor.
pub const DEFAULT_MAX_PER_SENSOR: usize = 10_000;
/// Largest `limit` a query honours.
pub const MAX_LIMIT: usize = 10_000;

/// Errors of the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The database failed.
    #[error("sensor history: {0}")]
    Store(#[from] StoreError),
}

impl HistoryError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            HistoryError::Store(_) => "store",
        }
    }
}

/// What a trigger produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum OutcomeResult {
    /// A Kubernetes object was created, updated or patched (or already existed: a replay).
    Object {
        /// Its kind.
        kind: String,
        /// Its namespace (empty for cluster-scoped objects).
        namespace: String,
        /// Its name.
        name: String,
        /// `created`, `existed`, `updated`, `patched` or `deleted`.
        action: String,
    },
    /// A trigger without an object (http, log) did its work.
    Done {
        /// What it did (`POST http://host/path -> 200`, `logged`).
        detail: String,
    },
    /// The trigger failed after its attempts.
    Failed {
        /// The last error.
        error: String,
    },
}

/// One trigger outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerOutcome {
    /// Trigger name.
    pub trigger: String,
    /// The events it fired with: dependency → event id.
    pub event_ids: BTreeMap<String, String>,
    /// When the outcome was decided.
    pub at: Timestamp,
    /// Attempts made (1 without retries).
    pub attempts: u32,
    /// What happened.
    #[serde(flatten)]
    pub result: OutcomeResult,
}

/// An event a dependency received but did not use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Unmatched {
    /// Dependency name.
    pub dependency: String,
    /// The event id.
    pub event_id: String,
    /// When it was seen.
    pub at: Timestamp,
    /// Why it was not used (the filter's reason, a parameter path that is missing...).
    pub reason: String,
}

/// A history record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "camelCase")]
pub enum HistoryEntry {
    /// A trigger outcome.
    Outcome(TriggerOutcome),
    /// An event not used.
    Unmatched(Unmatched),
}

impl HistoryEntry {
    /// When the record was made.
    pub fn at(&self) -> Timestamp {
        match self {
            HistoryEntry::Outcome(o) => o.at,
            HistoryEntry::Unmatched(u) => u.at,
        }
    }

    /// The record's identity within its sensor (see the module docs).
    pub fn identity(&self) -> String {
        match self {
            HistoryEntry::Outcome(o) => outcome_identity(&o.trigger, &o.event_ids),
            HistoryEntry::Unmatched(u) => {
                digest(&["unmatched", u.dependency.as_str(), u.event_id.as_str()])
            }
        }
    }
}

/// A history record with its sensor, as queries return it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SensorRecord {
    /// Sensor namespace.
    pub namespace: String,
    /// Sensor name.
    pub sensor: String,
    /// The record (nested, not flattened: an object outcome has a `namespace` of its own).
    pub entry: HistoryEntry,
}

/// Which records [`History::list`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Only records made at or after this time.
    pub since: Option<Timestamp>,
    /// At most this many, newest first (0 means [`MAX_LIMIT`]; larger values are capped).
    pub limit: usize,
}

/// Retention bounds for [`History::prune`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this are removed.
    pub max_age: Duration,
    /// Per sensor, only the newest this many records are kept.
    pub max_per_sensor: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: DEFAULT_MAX_AGE,
            max_per_sensor: DEFAULT_MAX_PER_SENSOR,
        }
    }
}

/// The identity of an outcome: trigger name and fired event ids (length-prefixed SHA-256).
pub fn outcome_identity(trigger: &str, event_ids: &BTreeMap<String, String>) -> String {
    let mut parts = vec!["outcome", trigger];
    for (dep, id) in event_ids {
        parts.push(dep);
        parts.push(id);
    }
    digest(&parts)
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

fn sensor_prefix(namespace: &str, sensor: &str) -> String {
    format!("{namespace}/{sensor}/")
}

fn nanos(t: Timestamp) -> u64 {
    u64::try_from(t.as_nanosecond()).unwrap_or(0)
}

fn record_key(namespace: &str, sensor: &str, at: Timestamp, identity: &str) -> String {
    format!(
        "{}{:020}/{identity}",
        sensor_prefix(namespace, sensor),
        nanos(at)
    )
}

fn decode(key: &str, bytes: &[u8]) -> Result<HistoryEntry, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        table: "events_sensor_history".to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// Writes `entry` unless its identity is recorded; returns the record that is stored.
fn insert_once(
    txn: &redb::WriteTransaction,
    namespace: &str,
    sensor: &str,
    entry: &HistoryEntry,
) -> Result<HistoryEntry, StoreError> {
    let identity = entry.identity();
    let id_key = format!("{}{identity}", sensor_prefix(namespace, sensor));
    let mut keys = txn.open_table(KEYS)?;
    let mut records = txn.open_table(RECORDS)?;
    let existing = keys
        .get(id_key.as_str())?
        .map(|g| String::from_utf8_lossy(g.value()).into_owned());
    if let Some(rec_key) = existing {
        let found = records
            .get(rec_key.as_str())?
            .map(|g| decode(&rec_key, g.value()));
        if let Some(found) = found {
            return found;
        }
    }
    let rec_key = record_key(namespace, sensor, entry.at(), &identity);
    let bytes = serde_json::to_vec(entry).map_err(|source| StoreError::Encode {
        table: "events_sensor_history".to_owned(),
        key: rec_key.clone(),
        source,
    })?;
    records.insert(rec_key.as_str(), bytes.as_slice())?;
    keys.insert(id_key.as_str(), rec_key.as_bytes())?;
    Ok(entry.clone())
}

/// The sensor history over cairn's store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct History {
    store: Store,
}

impl History {
    /// The history in `store`; creates its tables when they do not exist.
    pub async fn open(store: Store) -> Result<History, HistoryError> {
        store
            .write(|txn| -> Result<(), StoreError> {
                txn.open_table(RECORDS)?;
                txn.open_table(KEYS)?;
                Ok(())
            })
            .await?;
        Ok(History { store })
    }

    /// The store it writes to (the sensor runner persists its state in the same one).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Records entries of one sensor in one durable write; an entry whose identity is already
    /// recorded is not written again. Returns the stored records (the earlier one for a
    /// duplicate), in the order given.
    pub async fn record(
        &self,
        namespace: &str,
        sensor: &str,
        entries: Vec<HistoryEntry>,
    ) -> Result<Vec<HistoryEntry>, HistoryError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (ns, name) = (namespace.to_owned(), sensor.to_owned());
        Ok(self
            .store
            .write(move |txn| -> Result<Vec<HistoryEntry>, StoreError> {
                record_in(txn, &ns, &name, &entries)
            })
            .await?)
    }

    /// The recorded outcome of (sensor, trigger, fired event ids), if any.
    pub fn outcome(
        &self,
        namespace: &str,
        sensor: &str,
        trigger: &str,
        event_ids: &BTreeMap<String, String>,
    ) -> Result<Option<TriggerOutcome>, HistoryError> {
        let id_key = format!(
            "{}{}",
            sensor_prefix(namespace, sensor),
            outcome_identity(trigger, event_ids)
        );
        Ok(self
            .store
            .read(|txn| -> Result<Option<TriggerOutcome>, StoreError> {
                let keys = txn.open_table(KEYS)?;
                let Some(rec_key) = keys
                    .get(id_key.as_str())?
                    .map(|g| String::from_utf8_lossy(g.value()).into_owned())
                else {
                    return Ok(None);
                };
                let records = txn.open_table(RECORDS)?;
                let found = records
                    .get(rec_key.as_str())?
                    .map(|g| decode(&rec_key, g.value()))
                    .transpose()?;
                Ok(match found {
                    Some(HistoryEntry::Outcome(o)) => Some(o),
                    _ => None,
                })
            })?)
    }

    /// A sensor's records matching `query`, newest first.
    pub fn list(
        &self,
        namespace: &str,
        sensor: &str,
        query: &HistoryQuery,
    ) -> Result<Vec<SensorRecord>, HistoryError> {
        let prefix = sensor_prefix(namespace, sensor);
        let limit = match query.limit {
            0 => MAX_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let start = match query.since {
            Some(t) => format!("{prefix}{:020}", nanos(t)),
            None => prefix.clone(),
        };
        // The byte after '/' ends the sensor's range.
        let end = format!("{namespace}/{sensor}0");
        Ok(self
            .store
            .read(|txn| -> Result<Vec<SensorRecord>, StoreError> {
                let records = txn.open_table(RECORDS)?;
                let mut out = Vec::new();
                for entry in records.range(start.as_str()..end.as_str())?.rev() {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, v) = entry?;
                    out.push(SensorRecord {
                        namespace: namespace.to_owned(),
                        sensor: sensor.to_owned(),
                        entry: decode(k.value(), v.value())?,
                    });
                }
                Ok(out)
            })?)
    }

    /// Removes records older than `retention.max_age` at `now` and, per sensor, all but the
    /// newest `retention.max_per_sensor`. Returns how many were removed.
    pub async fn prune(&self, retention: Retention, now: Timestamp) -> Result<usize, HistoryError> {
        let cutoff = now
            .checked_sub(jiff::SignedDuration::try_from(retention.max_age).unwrap_or_default())
            .unwrap_or(Timestamp::UNIX_EPOCH);
        Ok(self
            .store
            .write(move |txn| -> Result<usize, StoreError> {
                let doomed = {
                    let records = txn.open_table(RECORDS)?;
                    // Keys sort by sensor, then time: walk each sensor's range newest first.
                    let mut per_sensor: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
                    for entry in records.iter()? {
                        let (k, _) = entry?;
                        let key = k.value().to_owned();
                        let mut parts = key.rsplitn(3, '/');
                        let (_, time, sensor) = (parts.next(), parts.next(), parts.next());
                        let time = time.and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
                        per_sensor
                            .entry(sensor.unwrap_or_default().to_owned())
                            .or_default()
                            .push((key, time));
                    }
                    let mut doomed = Vec::new();
                    for (_, mut keys) in per_sensor {
                        keys.reverse();
                        for (i, (key, time)) in keys.into_iter().enumerate() {
                            if i >= retention.max_per_sensor || time < nanos(cutoff) {
                                doomed.push(key);
                            }
                        }
                    }
                    doomed
                };
                remove_records(txn, &doomed)?;
                Ok(doomed.len())
            })
            .await?)
    }

    /// Removes every record of a sensor (it was deleted). Returns how many were removed.
    pub async fn delete_sensor(
        &self,
        namespace: &str,
        sensor: &str,
    ) -> Result<usize, HistoryError> {
        let prefix = sensor_prefix(namespace, sensor);
        let end = format!("{namespace}/{sensor}0");
        Ok(self
            .store
            .write(move |txn| -> Result<usize, StoreError> {
                let doomed: Vec<String> = {
                    let records = txn.open_table(RECORDS)?;
                    records
                        .range(prefix.as_str()..end.as_str())?
                        .map(|e| e.map(|(k, _)| k.value().to_owned()))
                        .collect::<Result<_, _>>()?
                };
                remove_records(txn, &doomed)?;
                Ok(doomed.len())
            })
            .await?)
    }
}

/// Records `entries` of one sensor inside `txn` (for callers that write other state in the
/// same transaction, as the runner does with unmatched events and its pending state).
pub fn record_in(
    txn: &redb::WriteTransaction,
    namespace: &str,
    sensor: &str,
    entries: &[HistoryEntry],
) -> Result<Vec<HistoryEntry>, StoreError> {
    entries
        .iter()
        .map(|e| insert_once(txn, namespace, sensor, e))
        .collect()
}

/// Removes records and their identity entries (the identity is the last key segment).
fn remove_records(txn: &redb::WriteTransaction, keys: &[String]) -> Result<(), StoreError> {
    let mut records = txn.open_table(RECORDS)?;
    let mut ids = txn.open_table(KEYS)?;
    for key in keys {
        records.remove(key.as_str())?;
        let mut parts = key.rsplitn(3, '/');
        if let (Some(identity), Some(_time), Some(sensor_prefix)) =
            (parts.next(), parts.next(), parts.next())
        {
            ids.remove(format!("{sensor_prefix}/{identity}").as_str())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("test time")
    }

    fn outcome(trigger: &str, id: &str, time: &str) -> HistoryEntry {
        HistoryEntry::Outcome(TriggerOutcome {
            trigger: trigger.into(),
            event_ids: BTreeMap::from([("dep".to_owned(), id.to_owned())]),
            at: at(time),
            attempts: 1,
            result: OutcomeResult::Object {
                kind: "Workflow".into(),
                namespace: "ns".into(),
                name: format!("wf-{id}"),
                action: "created".into(),
            },
        })
    }

    fn unmatched(id: &str, time: &str) -> HistoryEntry {
        HistoryEntry::Unmatched(Unmatched {
            dependency: "dep".into(),
            event_id: id.into(),
            at: at(time),
            reason: "filters.data[0]: path body.x not found".into(),
        })
    }

    async fn history() -> (tempfile::TempDir, History) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (dir, History::open(store).await.expect("history"))
    }

    #[tokio::test]
    async fn the_same_outcome_twice_keeps_one_record() {
        let (_d, h) = history().await;
        let first = outcome("t", "e1", "2026-01-01T00:00:00Z");
        h.record("ns", "s", vec![first.clone()]).await.expect("rec");
        // A replay after a crash decides later, with another result: the first one stands.
        let mut replay = outcome("t", "e1", "2026-01-01T00:05:00Z");
        if let HistoryEntry::Outcome(o) = &mut replay {
            o.attempts = 3;
        }
        let stored = h.record("ns", "s", vec![replay]).await.expect("rec");
        assert_eq!(stored, vec![first.clone()]);
        let all = h.list("ns", "s", &HistoryQuery::default()).expect("list");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].entry, first);
        let ids = BTreeMap::from([("dep".to_owned(), "e1".to_owned())]);
        assert!(h.outcome("ns", "s", "t", &ids).expect("get").is_some());
        assert!(h.outcome("ns", "s", "other", &ids).expect("get").is_none());
        assert!(h.outcome("ns", "s2", "t", &ids).expect("get").is_none());
    }

    #[tokio::test]
    async fn list_is_per_sensor_newest_first_with_since_and_limit() {
        let (_d, h) = history().await;
        h.record(
            "ns",
            "s",
            vec![
                outcome("t", "e1", "2026-01-01T00:00:01Z"),
                unmatched("e2", "2026-01-01T00:00:02Z"),
                outcome("t", "e3", "2026-01-01T00:00:03Z"),
            ],
        )
        .await
        .expect("rec");
        // Names that share a prefix stay apart.
        h.record("ns", "s-2", vec![outcome("t", "x", "2026-01-01T00:00:04Z")])
            .await
            .expect("rec");
        h.record("ns", "s", vec![unmatched("e2", "2026-01-01T00:09:00Z")])
            .await
            .expect("duplicate unmatched");
        let all = h.list("ns", "s", &HistoryQuery::default()).expect("list");
        let times: Vec<String> = all.iter().map(|r| r.entry.at().to_string()).collect();
        assert_eq!(
            times,
            [
                "2026-01-01T00:00:03Z",
                "2026-01-01T00:00:02Z",
                "2026-01-01T00:00:01Z"
            ]
        );
        let recent = h
            .list(
                "ns",
                "s",
                &HistoryQuery {
                    since: Some(at("2026-01-01T00:00:02Z")),
                    limit: 1,
                },
            )
            .expect("list");
        assert_eq!(recent.len(), 1);
        assert_eq!(recent[0].entry.at(), at("2026-01-01T00:00:03Z"));
        assert_eq!(
            h.list("ns", "s-2", &HistoryQuery::default())
                .expect("l")
                .len(),
            1
        );
        assert!(
            h.list("other", "s", &HistoryQuery::default())
                .expect("l")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn retention_by_age_and_count_removes_identities_too() {
        let (_d, h) = history().await;
        let entries: Vec<HistoryEntry> = (0..5)
            .map(|i| {
                outcome(
                    "t",
                    &format!("e{i}"),
                    &format!("2026-01-0{}T00:00:00Z", i + 1),
                )
            })
            .collect();
        h.record("ns", "s", entries).await.expect("rec");
        h.record("ns", "b", vec![outcome("t", "b1", "2026-01-05T00:00:00Z")])
            .await
            .expect("rec");
        let removed = h
            .prune(
                Retention {
                    max_age: Duration::from_secs(3 * 24 * 3600),
                    max_per_sensor: 2,
                },
                at("2026-01-05T12:00:00Z"),
            )
            .await
            .expect("prune");
        // s: e0, e1 too old (before 01-02T12:00); e2 beyond the newest two.
        assert_eq!(removed, 3);
        let left: Vec<String> = h
            .list("ns", "s", &HistoryQuery::default())
            .expect("list")
            .into_iter()
            .map(|r| match r.entry {
                HistoryEntry::Outcome(o) => o.event_ids["dep"].clone(),
                HistoryEntry::Unmatched(u) => u.event_id,
            })
            .collect();
        assert_eq!(left, ["e4", "e3"]);
        assert_eq!(
            h.list("ns", "b", &HistoryQuery::default())
                .expect("l")
                .len(),
            1
        );
        // A pruned identity can be recorded again (it is gone from the index too).
        let e0 = BTreeMap::from([("dep".to_owned(), "e0".to_owned())]);
        assert!(h.outcome("ns", "s", "t", &e0).expect("get").is_none());
        assert_eq!(h.delete_sensor("ns", "s").await.expect("delete"), 2);
        assert!(
            h.list("ns", "s", &HistoryQuery::default())
                .expect("l")
                .is_empty()
        );
        assert_eq!(
            h.list("ns", "b", &HistoryQuery::default())
                .expect("l")
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn records_survive_reopening_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let h = History::open(Store::open(dir.path()).expect("store"))
                .await
                .expect("history");
            h.record("ns", "s", vec![outcome("t", "e1", "2026-01-01T00:00:00Z")])
                .await
                .expect("rec");
        }
        let h = History::open(Store::open(dir.path()).expect("store"))
            .await
            .expect("history");
        assert_eq!(
            h.list("ns", "s", &HistoryQuery::default())
                .expect("l")
                .len(),
            1
        );
    }
}
