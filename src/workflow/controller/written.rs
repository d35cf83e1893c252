//! Our own writes standing in for the reflector's stale copy of a Workflow until the watch
//! delivers them ([`StandIns`]).
//!
//! The controller replaces the whole Workflow under the `resourceVersion` it read. The watch
//! delivers that write a little later; a reconcile in between must decide from what we wrote,
//! not from the store's older copy (it would decide from an old status, and its write would be
//! refused with 409). Under load the watch can lag by more than one write, so a stand-in keeps
//! the chain of versions our writes replaced, oldest first: while the store holds any of them,
//! our last write is the current object. Any other version in the store is newer than ours (the
//! apiserver orders an object's writes; a write based on one of the replaced versions would have
//! been refused) or is ours: the store wins and the stand-in is dropped.
//!
//! Pure: no I/O, no clock.

use std::collections::{HashMap, VecDeque};

use crate::workflow::types::Workflow;

/// Most versions a chain remembers: a store lagging further behind makes the controller decide
/// from the store's copy, whose write then fails with 409 and is retried (slower, still safe).
pub const MAX_CHAIN: usize = 32;

/// Per `namespace/name`: the versions our writes replaced and the object we last wrote.
#[derive(Debug, Default)]
pub struct StandIns {
    by_key: HashMap<String, StandIn>,
}

#[derive(Debug)]
struct StandIn {
    replaced: VecDeque<String>,
    ours: Workflow,
}

impl StandIns {
    /// Records that `ours` (as the apiserver returned it) replaced the version `base` of `key`.
    /// A write based on our previous write extends its chain; any other base starts a new one.
    pub fn wrote(&mut self, key: &str, base: Option<&str>, ours: Workflow) {
        let Some(base) = base else {
            // Without the version we replaced we cannot recognise the stale copy.
            self.by_key.remove(key);
            return;
        };
        match self.by_key.get_mut(key) {
            Some(s) if s.ours.metadata.resource_version.as_deref() == Some(base) => {
                s.replaced.push_back(base.to_owned());
                while s.replaced.len() > MAX_CHAIN {
                    s.replaced.pop_front();
                }
                s.ours = ours;
            }
            _ => {
                self.by_key.insert(
                    key.to_owned(),
                    StandIn {
                        replaced: VecDeque::from([base.to_owned()]),
                        ours,
                    },
                );
            }
        }
    }

    /// The object to decide from, given the store's copy of `key`: our last write while the
    /// store holds a version it replaced, else the store's (the stand-in is then dropped).
    pub fn resolve(&mut self, key: &str, stored: Option<Workflow>) -> Option<Workflow> {
        let stored = stored?;
        let stale = match (
            self.by_key.get(key),
            stored.metadata.resource_version.as_deref(),
        ) {
            (Some(s), Some(rv)) => s.replaced.iter().any(|r| r == rv),
            _ => false,
        };
        if stale {
            return self.by_key.get(key).map(|s| s.ours.clone());
        }
        self.by_key.remove(key);
        Some(stored)
    }

    /// Drops `key`'s stand-in (a write was refused, or the Workflow is gone).
    pub fn forget(&mut self, key: &str) {
        self.by_key.remove(key);
    }

    /// Keys with a stand-in.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key has a stand-in.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(rv: &str, phase: &str) -> Workflow {
        let mut w = Workflow::test("ns", "wf").with_phase(phase);
        w.metadata.resource_version = Some(rv.to_owned());
        w
    }

    fn rv(w: Option<Workflow>) -> Option<String> {
        w.and_then(|w| w.metadata.resource_version)
    }

    #[test]
    fn one_write_stands_in_until_the_watch_delivers_it() {
        let mut s = StandIns::default();
        assert_eq!(s.resolve("ns/wf", None), None);
        s.wrote("ns/wf", Some("1"), wf("2", "Running"));
        assert_eq!(
            rv(s.resolve("ns/wf", Some(wf("1", "Pending")))),
            Some("2".into())
        );
        // Delivered: the store's copy is ours; the stand-in goes.
        assert_eq!(
            rv(s.resolve("ns/wf", Some(wf("2", "Running")))),
            Some("2".into())
        );
        assert!(s.is_empty());
    }

    #[test]
    fn a_store_two_writes_behind_still_sees_the_last_write() {
        let mut s = StandIns::default();
        s.wrote("ns/wf", Some("1"), wf("2", "Running"));
        // Decided from the stand-in (version 2) and wrote again before the watch caught up.
        s.wrote("ns/wf", Some("2"), wf("3", "Running"));
        s.wrote("ns/wf", Some("3"), wf("4", "Succeeded"));
        for behind in ["1", "2", "3"] {
            let got = s.resolve("ns/wf", Some(wf(behind, "Pending")));
            assert_eq!(rv(got), Some("4".into()), "store at {behind}");
        }
        assert_eq!(s.len(), 1);
        assert_eq!(
            rv(s.resolve("ns/wf", Some(wf("4", "Succeeded")))),
            Some("4".into())
        );
        assert!(s.is_empty());
    }

    #[test]
    fn a_newer_version_in_the_store_wins() {
        let mut s = StandIns::default();
        s.wrote("ns/wf", Some("1"), wf("2", "Running"));
        // Someone else (a user's suspend) wrote after us.
        let got = s.resolve("ns/wf", Some(wf("7", "Running")));
        assert_eq!(rv(got), Some("7".into()));
        assert!(s.is_empty());
    }

    #[test]
    fn a_write_from_the_store_copy_starts_a_new_chain() {
        let mut s = StandIns::default();
        s.wrote("ns/wf", Some("1"), wf("2", "Running"));
        // A write based on a version that is not our last write (the store's newer copy).
        s.wrote("ns/wf", Some("5"), wf("6", "Running"));
        // The old chain is gone: version 1 is no longer recognised as ours to replace.
        assert_eq!(
            rv(s.resolve("ns/wf", Some(wf("5", "Running")))),
            Some("6".into())
        );
        assert_eq!(
            rv(s.resolve("ns/wf", Some(wf("1", "Pending")))),
            Some("1".into())
        );
    }

    #[test]
    fn the_chain_is_bounded_and_keys_are_independent() {
        let mut s = StandIns::default();
        s.wrote("ns/wf", Some("0"), wf("1", "Running"));
        for n in 1..100u32 {
            s.wrote(
                "ns/wf",
                Some(&n.to_string()),
                wf(&(n + 1).to_string(), "Running"),
            );
        }
        // Only the last MAX_CHAIN replaced versions are remembered.
        let oldest_kept = 100 - MAX_CHAIN;
        assert_eq!(
            rv(s.resolve("ns/wf", Some(wf(&oldest_kept.to_string(), "Running")))),
            Some("100".into())
        );
        s.wrote("ns/other", Some("1"), wf("2", "Running"));
        s.forget("ns/wf");
        assert_eq!(
            rv(s.resolve("ns/wf", Some(wf("99", "Running")))),
            Some("99".into())
        );
        assert_eq!(
            rv(s.resolve("ns/other", Some(wf("1", "Running")))),
            Some("2".into())
        );
        // Without a base version nothing can stand in.
        s.wrote("ns/other", None, wf("9", "Running"));
        assert!(s.is_empty());
    }
}
