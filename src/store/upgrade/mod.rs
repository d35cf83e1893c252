//! On-disk schema upgrades: one module per version step, applied in order inside the single write
//! transaction that also records the new schema version, so an upgrade is all-or-nothing.
//!
//! Invariants:
//! - `STEPS[n]` upgrades schema `n` to `n + 1`; there is exactly one step per version below
//!   [`CURRENT_SCHEMA`](super::CURRENT_SCHEMA) (checked by a test).
//! - A step never deletes data it does not understand; it only creates tables or rewrites
//!   records of tables it owns.
//! - A database whose schema is newer than this binary's is never passed here: `Store::open`
//!   refuses it first.

use redb::WriteTransaction;

use super::StoreError;
use super::tables::{META, META_CAIRN_VERSION, META_SCHEMA_VERSION};

mod v0_to_v1;
mod v1_to_v2;
mod v2_to_v3;
mod v3_to_v4;

/// One upgrade step: from schema `n` to `n + 1`.
type Step = fn(&WriteTransaction) -> Result<(), StoreError>;

/// The steps, indexed by the version they upgrade from.
const STEPS: [Step; super::CURRENT_SCHEMA as usize] = [
    v0_to_v1::apply,
    v1_to_v2::apply,
    v2_to_v3::apply,
    v3_to_v4::apply,
];

/// Applies every step from `from` up to [`CURRENT_SCHEMA`](super::CURRENT_SCHEMA) and records the
/// new version (and the cairn version that wrote it) in the meta table. The caller commits.
pub(super) fn apply(txn: &WriteTransaction, from: u32) -> Result<(), StoreError> {
    let steps = STEPS.get(from as usize..).unwrap_or(&[]);
    for step in steps {
        step(txn)?;
    }
    let mut meta = txn.open_table(META)?;
    let version = super::CURRENT_SCHEMA.to_string();
    meta.insert(META_SCHEMA_VERSION, version.as_str())?;
    meta.insert(META_CAIRN_VERSION, crate::VERSION)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_step_per_version() {
        assert_eq!(STEPS.len(), super::super::CURRENT_SCHEMA as usize);
    }
}
