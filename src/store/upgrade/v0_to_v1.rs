//! Schema 0 -> 1: an empty (new) database gets cairn's initial tables.

use redb::WriteTransaction;

use crate::store::StoreError;
use crate::store::tables::{ACCOUNTS, API_TOKENS, LOGIN_FAILURES, META, SESSIONS};

/// Creates the meta table and the authentication tables.
pub(super) fn apply(txn: &WriteTransaction) -> Result<(), StoreError> {
    // Opening a table in a write transaction creates it.
    txn.open_table(META)?;
    for def in [ACCOUNTS, API_TOKENS, SESSIONS, LOGIN_FAILURES] {
        txn.open_table(def)?;
    }
    Ok(())
}
