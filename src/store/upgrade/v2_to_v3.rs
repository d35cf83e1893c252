//! Schema 2 -> 3: the embedded event bus's tables (`events::bus::embedded`).

use redb::WriteTransaction;

use crate::store::StoreError;
use crate::store::tables::{
    EVENT_BUS_STATE, EVENT_CONSUMERS, EVENT_INFLIGHT, EVENT_LOG, EVENT_TOPIC_INDEX,
};

/// Creates the event bus tables; nothing existing is touched.
pub(super) fn apply(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(EVENT_LOG)?;
    txn.open_table(EVENT_TOPIC_INDEX)?;
    txn.open_table(EVENT_CONSUMERS)?;
    txn.open_table(EVENT_INFLIGHT)?;
    txn.open_table(EVENT_BUS_STATE)?;
    Ok(())
}
