//! The workflow archive: finished Workflows and their nodes' logs, kept in cairn's redb database
//! after the Workflow object and its pods are gone (Argo's "workflow archive", without a
//! separate SQL database).
//!
//! Owns three tables (schema 2, see `store::tables`): the whole finished object by uid
//! (`archived_workflows`), a small summary per `<namespace>/<name>/<uid>` for listing
//! (`archived_workflow_index`), and one log record per `<uid>/<node id>`
//! (`archived_workflow_logs`).
//!
//! Invariants:
//! - Archiving is idempotent and keyed by uid: archiving the same Workflow again (a retried
//!   workflow that finished again, a controller restart) replaces its record and the logs of the
//!   nodes given; a different uid with the same name (a re-created Workflow) is a separate entry.
//! - The record, its summary and its logs are written in one transaction: a reader never sees an
//!   archived workflow without its index entry or the other way round.
//! - A node's log is at most `node_log_limit` bytes of the log's *end* (the end is where a failing
//!   step says why); a longer log starts with [`TRUNCATION_MARKER`] and says how many bytes were
//!   dropped. Cut on a UTF-8 character boundary.
//! - Reading never writes; listing decodes only the summaries.

use std::collections::BTreeMap;

use jiff::Timestamp;
use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::types::Workflow;
use crate::store::{JsonTable, Store, StoreError, tables};

/// Default per-node log limit: 1 MiB.
pub const DEFAULT_NODE_LOG_LIMIT: usize = 1024 * 1024;

/// First line of a truncated log.
pub const TRUNCATION_MARKER: &str = "[cairn: log truncated:";

const RECORDS: JsonTable<ArchivedWorkflow> = JsonTable::new(tables::ARCHIVED_WORKFLOWS);
const INDEX: JsonTable<ArchiveSummary> = JsonTable::new(tables::ARCHIVED_WORKFLOW_INDEX);
const LOGS: JsonTable<NodeLog> = JsonTable::new(tables::ARCHIVED_WORKFLOW_LOGS);

/// Errors of the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Workflow has no uid (it was never stored by an apiserver).
    #[error("workflow {workflow} has no metadata.uid: expected an object read from the cluster")]
    NoUid {
        /// `namespace/name`.
        workflow: String,
    },
    /// A label selector does not parse.
    #[error("label selector {selector:?}: {problem}")]
    Selector {
        /// The selector given.
        selector: String,
        /// What was wrong.
        problem: String,
    },
}

impl ArchiveError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Store(e) => e.metric_label(),
            Self::NoUid { .. } => "no_uid",
            Self::Selector { .. } => "selector",
        }
    }
}

/// An archived workflow: the whole object as it finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedWorkflow {
    /// Listing fields.
    #[serde(flatten)]
    pub summary: ArchiveSummary,
    /// The Workflow (metadata, spec, status).
    pub workflow: Workflow,
}

/// What a listing shows of an archived workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveSummary {
    /// The Workflow's uid.
    pub uid: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Final phase.
    #[serde(default)]
    pub phase: Option<String>,
    /// `status.startedAt`.
    #[serde(default)]
    pub started_at: Option<String>,
    /// `status.finishedAt`.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// When cairn archived it.
    pub archived_at: Timestamp,
}

/// A node's log as captured before its pod was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeLog {
    /// Node id.
    pub node_id: String,
    /// The pod it ran in.
    pub pod_name: String,
    /// Container (`main`).
    pub container: String,
    /// The log (its end, when truncated).
    pub content: String,
    /// Whether the beginning was dropped.
    pub truncated: bool,
    /// Size of the whole log in bytes.
    pub original_bytes: usize,
}

/// A log to archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogInput {
    /// Node id.
    pub node_id: String,
    /// Pod name.
    pub pod_name: String,
    /// Container.
    pub container: String,
    /// Full text read from the pod.
    pub content: String,
}

/// Which archived workflows to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveFilter {
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only names starting with this prefix (Argo's `namePrefix`).
    pub name_prefix: Option<String>,
    /// Label requirements (all must hold).
    pub labels: Vec<LabelRequirement>,
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the label is absent, as Kubernetes has it).
    NotEquals(String, String),
    /// `key`.
    Exists(String),
    /// `!key`.
    NotExists(String),
}

impl LabelRequirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Equals(k, v) => labels.get(k) == Some(v),
            Self::NotEquals(k, v) => labels.get(k) != Some(v),
            Self::Exists(k) => labels.contains_key(k),
            Self::NotExists(k) => !labels.contains_key(k),
        }
    }
}

/// Parses an equality-based label selector (`a=b,c!=d,e,!f`); set-based terms (`in`, `notin`)
/// are refused with a message saying so.
pub fn parse_selector(selector: &str) -> Result<Vec<LabelRequirement>, ArchiveError> {
    let err = |problem: &str| ArchiveError::Selector {
        selector: selector.to_owned(),
        problem: problem.to_owned(),
    };
    let mut out = Vec::new();
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if term.contains(" in ") || term.contains(" notin ") || term.contains('(') {
            return Err(err(
                "set-based terms (in, notin) are not supported; expected key=value, key!=value, key or !key",
            ));
        }
        let req = if let Some((k, v)) = term.split_once("!=") {
            LabelRequirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            LabelRequirement::Equals(k.trim().to_owned(), v.trim().to_owned())
        } else if let Some(k) = term.strip_prefix('!') {
            LabelRequirement::NotExists(k.trim().to_owned())
        } else {
            LabelRequirement::Exists(term.to_owned())
        };
        let key = match &req {
            LabelRequirement::Equals(k, _)
            | LabelRequirement::NotEquals(k, _)
            | LabelRequirement::Exists(k)
            | LabelRequirement::NotExists(k) => k,
        };
        if key.is_empty() {
            return Err(err("a term has an empty key"));
        }
        out.push(req);
    }
    Ok(out)
}

impl ArchiveFilter {
    /// Whether a summary passes the filter.
    pub fn matches(&self, s: &ArchiveSummary) -> bool {
        self.namespace.as_ref().is_none_or(|ns| &s.namespace == ns)
            && self
                .name_prefix
                .as_ref()
                .is_none_or(|p| s.name.starts_with(p.as_str()))
            && self.labels.iter().all(|r| r.matches(&s.labels))
    }
}

/// Keeps the last `limit` bytes of `content` (on a character boundary) behind a marker line.
pub fn truncate_log(content: &str, limit: usize) -> (String, bool) {
    if content.len() <= limit {
        return (content.to_owned(), false);
    }
    let mut start = content.len() - limit;
    while !content.is_char_boundary(start) {
        start += 1;
    }
    let dropped = start;
    (
        format!(
            "{TRUNCATION_MARKER} the first {dropped} of {} bytes were dropped]\n{}",
            content.len(),
            &content[start..]
        ),
        true,
    )
}

/// Builds the record of a finished Workflow (pure).
pub fn record(wf: &Workflow, archived_at: Timestamp) -> Result<ArchivedWorkflow, ArchiveError> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let uid = wf
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ArchiveError::NoUid {
            workflow: format!("{namespace}/{name}"),
        })?;
    let status = wf.status.as_ref();
    Ok(ArchivedWorkflow {
        summary: ArchiveSummary {
            uid,
            namespace,
            name,
            labels: wf.metadata.labels.clone().unwrap_or_default(),
            phase: status.and_then(|s| s.phase.clone()),
            started_at: status.and_then(|s| s.started_at.clone()),
            finished_at: status.and_then(|s| s.finished_at.clone()),
            archived_at,
        },
        workflow: wf.clone(),
    })
}

fn index_key(s: &ArchiveSummary) -> String {
    format!("{}/{}/{}", s.namespace, s.name, s.uid)
}

/// The archive over cairn's store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Archive {
    store: Store,
    node_log_limit: usize,
}

impl Archive {
    /// An archive in `store`, keeping at most `node_log_limit` bytes of each node's log.
    pub fn new(store: Store, node_log_limit: usize) -> Self {
        Self {
            store,
            node_log_limit,
        }
    }

    /// The store the archive writes to (the lineage capture writes there too).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Archives a finished Workflow and its nodes' logs (see the module invariants).
    pub async fn archive(
        &self,
        wf: &Workflow,
        logs: Vec<LogInput>,
        now: Timestamp,
    ) -> Result<ArchiveSummary, ArchiveError> {
        let rec = record(wf, now)?;
        let summary = rec.summary.clone();
        let uid = summary.uid.clone();
        let logs: Vec<NodeLog> = logs.into_iter().map(|l| self.node_log(l)).collect();
        self.store
            .write(move |txn| -> Result<(), StoreError> {
                // A renamed index key cannot happen (namespace/name/uid are immutable), but a
                // stale entry for this uid is removed all the same.
                INDEX.retain_in(txn, |_, s| s.uid != uid)?;
                RECORDS.insert(txn, &uid, &rec)?;
                INDEX.insert(txn, &index_key(&rec.summary), &rec.summary)?;
                for log in &logs {
                    LOGS.insert(txn, &format!("{uid}/{}", log.node_id), log)?;
                }
                Ok(())
            })
            .await?;
        Ok(summary)
    }

    /// Stores node logs of a workflow that has not finished yet (its pods are being deleted by
    /// `podGC`); [`Archive::archive`] later adds the record. Replaces logs of the same nodes.
    pub async fn put_logs(&self, uid: &str, logs: Vec<LogInput>) -> Result<(), ArchiveError> {
        if logs.is_empty() {
            return Ok(());
        }
        let uid = uid.to_owned();
        let logs: Vec<NodeLog> = logs.into_iter().map(|l| self.node_log(l)).collect();
        self.store
            .write(move |txn| -> Result<(), StoreError> {
                for log in &logs {
                    LOGS.insert(txn, &format!("{uid}/{}", log.node_id), log)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    fn node_log(&self, l: LogInput) -> NodeLog {
        let original_bytes = l.content.len();
        let (content, truncated) = truncate_log(&l.content, self.node_log_limit);
        NodeLog {
            node_id: l.node_id,
            pod_name: l.pod_name,
            container: l.container,
            content,
            truncated,
            original_bytes,
        }
    }

    /// One archived workflow by uid.
    pub fn get(&self, uid: &str) -> Result<Option<ArchivedWorkflow>, ArchiveError> {
        Ok(self.store.read(|txn| RECORDS.get(txn, uid))?)
    }

    /// The most recently archived workflow named `namespace/name` (a name can be reused).
    pub fn get_by_name(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ArchivedWorkflow>, ArchiveError> {
        let latest = self
            .list(&ArchiveFilter {
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            })?
            .into_iter()
            .filter(|s| s.name == name)
            .max_by_key(|s| s.archived_at);
        match latest {
            Some(s) => self.get(&s.uid),
            None => Ok(None),
        }
    }

    /// Summaries passing `filter`, newest `finishedAt` first.
    pub fn list(&self, filter: &ArchiveFilter) -> Result<Vec<ArchiveSummary>, ArchiveError> {
        let mut out: Vec<ArchiveSummary> = self
            .store
            .read(|txn| INDEX.list(txn))?
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| filter.matches(s))
            .collect();
        out.sort_by(|a, b| {
            b.finished_at
                .cmp(&a.finished_at)
                .then_with(|| a.namespace.cmp(&b.namespace))
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(out)
    }

    /// The archived logs of a workflow, by node id.
    pub fn logs(&self, uid: &str) -> Result<Vec<NodeLog>, ArchiveError> {
        let prefix = format!("{uid}/");
        Ok(self.store.read(|txn| -> Result<Vec<NodeLog>, StoreError> {
            let table = txn.open_table(tables::ARCHIVED_WORKFLOW_LOGS)?;
            let mut out = Vec::new();
            // Keys sort by uid first: one range scan, without decoding other workflows' logs.
            for entry in table.range(prefix.as_str()..)? {
                let (k, v) = entry?;
                let key = k.value();
                if !key.starts_with(&prefix) {
                    break;
                }
                let log =
                    serde_json::from_slice(v.value()).map_err(|source| StoreError::Decode {
                        table: LOGS.name(),
                        key: key.to_owned(),
                        source,
                    })?;
                out.push(log);
            }
            Ok(out)
        })?)
    }

    /// Deletes an archived workflow and its logs; returns whether it existed.
    pub async fn delete(&self, uid: &str) -> Result<bool, ArchiveError> {
        let uid = uid.to_owned();
        Ok(self
            .store
            .write(move |txn| -> Result<bool, StoreError> {
                let existed = RECORDS.remove(txn, &uid)?;
                INDEX.retain_in(txn, |_, s| s.uid != uid)?;
                let prefix = format!("{uid}/");
                let mut table = txn.open_table(tables::ARCHIVED_WORKFLOW_LOGS)?;
                let keys: Vec<String> = table
                    .range(prefix.as_str()..)?
                    .map(|e| e.map(|(k, _)| k.value().to_owned()))
                    .take_while(|k| k.as_ref().map_or(true, |k| k.starts_with(&prefix)))
                    .collect::<Result<_, _>>()?;
                for key in keys {
                    table.remove(key.as_str())?;
                }
                Ok(existed)
            })
            .await?)
    }
}

#[cfg(test)]
mod tests;
