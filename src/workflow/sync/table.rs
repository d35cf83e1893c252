//! The lock table: per lock key its limit, its holders and its priority-ordered waiters. Pure
//! data: no clock, no I/O; every change returns the waiting holders it lets go (to requeue).
//! See the parent module for the semantics.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

/// One acquisition attempt: all of `locks` (key, current limit) for `holder`, or none.
#[derive(Debug, Clone)]
pub struct Want<'a> {
    /// The holder key (`<ns>/<wf>` or `<ns>/<wf>/<node id>`).
    pub holder: &'a str,
    /// Higher goes first.
    pub priority: i64,
    /// Older goes first among equal priorities.
    pub created: Option<Timestamp>,
    /// The keys with their limits as read now.
    pub locks: Vec<(String, usize)>,
}

/// The result of [`LockTable::try_acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every key is held by the holder.
    Acquired,
    /// The holder waits (queued in every key it does not hold).
    Waiting {
        /// The first key that blocked.
        key: String,
        /// Free slots of that key.
        available: usize,
        /// Its limit.
        limit: usize,
    },
}

/// A queued holder.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiter {
    holder: String,
    priority: i64,
    created: Option<Timestamp>,
}

impl Waiter {
    /// Queue order: priority descending, then creation ascending (unknown last), then holder.
    fn order(&self) -> (std::cmp::Reverse<i64>, bool, Option<Timestamp>, &str) {
        (
            std::cmp::Reverse(self.priority),
            self.created.is_none(),
            self.created,
            self.holder.as_str(),
        )
    }
}

/// One key.
#[derive(Debug, Clone, Default)]
struct Lock {
    limit: usize,
    holders: BTreeSet<String>,
    queue: Vec<Waiter>,
}

impl Lock {
    fn free(&self) -> usize {
        self.limit.saturating_sub(self.holders.len())
    }

    fn enqueue(&mut self, w: Waiter) {
        if let Some(existing) = self.queue.iter().position(|q| q.holder == w.holder) {
            if self.queue[existing] == w {
                return;
            }
            self.queue.remove(existing);
        }
        let at = self
            .queue
            .iter()
            .position(|q| q.order() > w.order())
            .unwrap_or(self.queue.len());
        self.queue.insert(at, w);
    }

    fn dequeue(&mut self, holder: &str) {
        self.queue.retain(|q| q.holder != holder);
    }

    /// Whether `holder` (queued) may take a slot now: fewer waiters of other workflows (or of
    /// its workflow at another level) are ahead of it than there are free slots.
    fn admits(&self, holder: &str) -> bool {
        let free = self.free();
        if free == 0 {
            return false;
        }
        let ahead = self
            .queue
            .iter()
            .take_while(|q| q.holder != holder)
            .filter(|q| !same_workflow_level(&q.holder, holder))
            .count();
        ahead < free
    }

    /// The waiters that may take a slot now (the first `free` ones), excluding `except`.
    fn wakeable(&self, except: Option<&str>) -> impl Iterator<Item = &str> {
        self.queue
            .iter()
            .take(self.free())
            .map(|q| q.holder.as_str())
            .filter(move |h| Some(*h) != except)
    }
}

/// Argo's `isSameWorkflowNodeKeys`: same workflow, same level (same number of segments).
fn same_workflow_level(a: &str, b: &str) -> bool {
    let sa: Vec<&str> = a.splitn(3, '/').collect();
    let sb: Vec<&str> = b.splitn(3, '/').collect();
    sa.len() == sb.len() && sa.get(..2) == sb.get(..2)
}

/// Whether holder key `holder` belongs to workflow key `workflow` (`<ns>/<wf>`).
fn of_workflow(holder: &str, workflow: &str) -> bool {
    holder == workflow
        || holder
            .strip_prefix(workflow)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Every lock key with its holders and waiters.
#[derive(Debug, Clone, Default)]
pub struct LockTable {
    locks: BTreeMap<String, Lock>,
}

impl LockTable {
    /// An empty table.
    pub fn new() -> Self {
        LockTable::default()
    }

    /// Takes every key of `want` for its holder, or none: then the holder waits in the queue
    /// of every key it does not hold. Limits are refreshed from `want`. Answers the outcome
    /// and the other waiters that may now take a slot.
    pub fn try_acquire(&mut self, want: &Want<'_>) -> (Outcome, BTreeSet<String>) {
        let mut wake = BTreeSet::new();
        for (key, limit) in &want.locks {
            self.locks.entry(key.clone()).or_default().limit = *limit;
        }
        let waiter = Waiter {
            holder: want.holder.to_owned(),
            priority: want.priority,
            created: want.created,
        };
        let mut blocked = None;
        for (key, _) in &want.locks {
            let Some(lock) = self.locks.get_mut(key) else {
                continue;
            };
            if lock.holders.contains(want.holder) {
                lock.dequeue(want.holder);
                continue;
            }
            lock.enqueue(waiter.clone());
            if blocked.is_none() && !lock.admits(want.holder) {
                blocked = Some((key.clone(), lock.free(), lock.limit));
            }
        }
        if let Some((key, available, limit)) = blocked {
            // A free slot this holder cannot take belongs to someone ahead of it: wake them.
            for (k, _) in &want.locks {
                if let Some(lock) = self.locks.get(k) {
                    wake.extend(lock.wakeable(Some(want.holder)).map(str::to_owned));
                }
            }
            return (
                Outcome::Waiting {
                    key,
                    available,
                    limit,
                },
                wake,
            );
        }
        for (key, _) in &want.locks {
            if let Some(lock) = self.locks.get_mut(key) {
                lock.dequeue(want.holder);
                lock.holders.insert(want.holder.to_owned());
                wake.extend(lock.wakeable(Some(want.holder)).map(str::to_owned));
            }
        }
        (Outcome::Acquired, wake)
    }

    /// Releases `holder`'s hold of `keys` and removes it from their queues; answers the
    /// waiters that may now take a slot.
    pub fn release(&mut self, holder: &str, keys: &[String]) -> BTreeSet<String> {
        let mut wake = BTreeSet::new();
        for key in keys {
            if let Some(lock) = self.locks.get_mut(key) {
                let held = lock.holders.remove(holder);
                let queued = lock.queue.len();
                lock.dequeue(holder);
                if held || queued != lock.queue.len() {
                    wake.extend(lock.wakeable(None).map(str::to_owned));
                }
            }
        }
        self.prune();
        wake
    }

    /// Releases everything workflow `workflow` (`<ns>/<wf>`) holds or waits for, at every
    /// level; answers the waiters that may now take a slot.
    pub fn release_workflow(&mut self, workflow: &str) -> BTreeSet<String> {
        let mut wake = BTreeSet::new();
        for lock in self.locks.values_mut() {
            let before = (lock.holders.len(), lock.queue.len());
            lock.holders.retain(|h| !of_workflow(h, workflow));
            lock.queue.retain(|q| !of_workflow(&q.holder, workflow));
            if before != (lock.holders.len(), lock.queue.len()) {
                wake.extend(lock.wakeable(None).map(str::to_owned));
            }
        }
        self.prune();
        wake
    }

    /// A new limit for `key` (a semaphore ConfigMap changed); answers the waiters that may
    /// now take a slot. Holders above a lowered limit keep their hold.
    pub fn set_limit(&mut self, key: &str, limit: usize) -> BTreeSet<String> {
        match self.locks.get_mut(key) {
            Some(lock) => {
                lock.limit = limit;
                lock.wakeable(None).map(str::to_owned).collect()
            }
            None => BTreeSet::new(),
        }
    }

    /// Records a hold found in a Workflow's status after a restart, whatever the limit (so
    /// nothing is held twice). `limit`: the key's limit if known, else the holders' count.
    pub fn restore(&mut self, holder: &str, key: &str, limit: Option<usize>) {
        let lock = self.locks.entry(key.to_owned()).or_default();
        lock.holders.insert(holder.to_owned());
        lock.dequeue(holder);
        lock.limit = limit.unwrap_or(lock.holders.len()).max(lock.limit);
    }

    /// The holders of `key`, sorted.
    pub fn holders(&self, key: &str) -> Vec<String> {
        self.locks
            .get(key)
            .map(|l| l.holders.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The waiters of `key`, in queue order.
    pub fn waiters(&self, key: &str) -> Vec<String> {
        self.locks
            .get(key)
            .map(|l| l.queue.iter().map(|q| q.holder.clone()).collect())
            .unwrap_or_default()
    }

    /// The limit last seen for `key`.
    pub fn limit(&self, key: &str) -> Option<usize> {
        self.locks.get(key).map(|l| l.limit)
    }

    /// The known keys starting with `prefix` (the semaphores of one ConfigMap).
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.locks
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Drops keys nobody holds or waits for (the table does not grow with finished work).
    fn prune(&mut self) {
        self.locks
            .retain(|_, l| !l.holders.is_empty() || !l.queue.is_empty());
    }
}
