//! Schema 1 -> 2: the workflow archive's tables (`workflow::archive`).

use redb::WriteTransaction;

use crate::store::StoreError;
use crate::store::tables::{ARCHIVED_WORKFLOW_INDEX, ARCHIVED_WORKFLOW_LOGS, ARCHIVED_WORKFLOWS};

/// Creates the archive tables; nothing existing is touched.
pub(super) fn apply(txn: &WriteTransaction) -> Result<(), StoreError> {
    for def in [
        ARCHIVED_WORKFLOWS,
        ARCHIVED_WORKFLOW_INDEX,
        ARCHIVED_WORKFLOW_LOGS,
    ] {
        txn.open_table(def)?;
    }
    Ok(())
}
