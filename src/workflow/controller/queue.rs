//! The controller's work queue: keys (`namespace/name`) to reconcile, with per-key
//! serialization, de-duplication, delayed requeues and per-key failure backoff (client-go's
//! rate-limited work queue, in small).
//!
//! Invariants:
//! - A key is handed to at most one worker at a time: an `add` while the key is being worked on
//!   marks it dirty and it is queued again when the worker calls [`WorkQueue::done`].
//! - A key waits in the ready list at most once, however many events name it.
//! - `add_after` keeps only the earliest pending wake-up per key that is still in the future; a
//!   plain `add` makes the key ready now and the delayed wake-up still happens later (harmless:
//!   reconciles are idempotent).
//! - After [`WorkQueue::shutdown`], `next` returns `None` once nothing is ready; nothing new is
//!   accepted.
//! - [`WorkQueue::next_timed`] also says how long the key waited ready (from the first `add`
//!   that made it ready, or from its due time): the queueing delay the controller reports.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// First failure backoff.
const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest failure backoff (a failing workflow is retried at least this often).
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// A queue of string keys. Cheap to clone; clones share the queue.
#[derive(Clone, Default)]
pub struct WorkQueue {
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
}

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    /// Keys in `ready`, with when each became ready.
    queued: HashMap<String, Instant>,
    active: HashSet<String>,
    dirty: HashSet<String>,
    delayed: BTreeSet<(Instant, String)>,
    due_at: HashMap<String, Instant>,
    failures: HashMap<String, u32>,
    closed: bool,
}

impl State {
    fn push(&mut self, key: String, now: Instant) {
        if self.closed {
            return;
        }
        if self.active.contains(&key) {
            self.dirty.insert(key);
        } else if !self.queued.contains_key(&key) {
            self.queued.insert(key.clone(), now);
            self.ready.push_back(key);
        }
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some((at, _)) = self.delayed.first() {
            if *at > now {
                break;
            }
            let Some((due, key)) = self.delayed.pop_first() else {
                break;
            };
            self.due_at.remove(&key);
            self.push(key, due);
        }
    }
}

impl WorkQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked while holding the lock leaves consistent state (every update
        // is a few inserts), so the queue keeps working.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` now.
    pub fn add(&self, key: impl Into<String>) {
        self.lock().push(key.into(), Instant::now());
        self.notify.notify_one();
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        let mut st = self.lock();
        if st.closed {
            return;
        }
        if let Some(prev) = st.due_at.get(&key).copied() {
            if prev <= at {
                return;
            }
            st.delayed.remove(&(prev, key.clone()));
        }
        st.due_at.insert(key.clone(), at);
        st.delayed.insert((at, key));
        drop(st);
        // A sleeping worker must recompute its wake-up time.
        self.notify.notify_one();
    }

    /// Queues `key` after its next failure backoff (200 ms doubling up to 2 min); returns it.
    pub fn add_failed(&self, key: &str) -> Duration {
        let delay = {
            let mut st = self.lock();
            let n = st.failures.entry(key.to_owned()).or_insert(0);
            let delay = backoff(*n);
            *n = n.saturating_add(1);
            delay
        };
        self.add_after(key, delay);
        delay
    }

    /// Resets `key`'s failure count (after a successful reconcile).
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// The next key to work on, waiting for one; `None` after shutdown.
    pub async fn next(&self) -> Option<String> {
        self.next_timed().await.map(|(key, _)| key)
    }

    /// The next key to work on and how long it waited ready; `None` after shutdown.
    pub async fn next_timed(&self) -> Option<(String, Duration)> {
        loop {
            let notified = self.notify.notified();
            let wake = {
                let mut st = self.lock();
                let now = Instant::now();
                st.promote_due(now);
                if let Some(key) = st.ready.pop_front() {
                    let since = st.queued.remove(&key).unwrap_or(now);
                    st.active.insert(key.clone());
                    let more = !st.ready.is_empty();
                    drop(st);
                    if more {
                        // Another worker may take the rest.
                        self.notify.notify_one();
                    }
                    return Some((key, now.saturating_duration_since(since)));
                }
                if st.closed {
                    drop(st);
                    // Wake the other workers so they see the shutdown too.
                    self.notify.notify_one();
                    return None;
                }
                st.delayed.first().map(|(at, _)| *at)
            };
            match wake {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` finished; it is queued again if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut st = self.lock();
        st.active.remove(key);
        if st.dirty.remove(key) {
            st.push(key.to_owned(), Instant::now());
            drop(st);
            self.notify.notify_one();
        }
    }

    /// Stops the queue: waiting workers return `None` once the ready keys are taken.
    pub fn shutdown(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.ready.clear();
        st.queued.clear();
        drop(st);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }

    /// Keys waiting now (ready, not delayed).
    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// Whether no key is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The failure backoff after `n` earlier failures.
pub fn backoff(n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let got: Vec<u64> = (0..12).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            got,
            [
                200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 102400, 120000, 120000
            ]
        );
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[tokio::test(start_paused = true)]
    async fn dedupes_and_serializes_per_key() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await.as_deref(), Some("a"));
        // "a" is active: a new event marks it dirty instead of handing it out twice.
        q.add("a");
        assert_eq!(q.next().await.as_deref(), Some("b"));
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.next().await.as_deref(), Some("a"));
        q.done("a");
        q.done("b");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_wake_in_order_and_keep_the_earliest() {
        let q = WorkQueue::new();
        let start = Instant::now();
        q.add_after("late", Duration::from_secs(10));
        q.add_after("soon", Duration::from_secs(5));
        q.add_after("soon", Duration::from_secs(8));
        assert!(q.is_empty());
        assert_eq!(q.next().await.as_deref(), Some("soon"));
        assert_eq!(start.elapsed(), Duration::from_secs(5));
        q.done("soon");
        assert_eq!(q.next().await.as_deref(), Some("late"));
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // An earlier requeue replaces a later one.
        q.done("late");
        q.add_after("x", Duration::from_secs(30));
        q.add_after("x", Duration::from_secs(1));
        let t = Instant::now();
        assert_eq!(q.next().await.as_deref(), Some("x"));
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn next_timed_reports_the_wait_since_the_key_became_ready() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        tokio::time::advance(Duration::from_millis(300)).await;
        // A second add of a waiting key does not restart its clock.
        q.add("a");
        assert_eq!(
            q.next_timed().await,
            Some(("a".to_owned(), Duration::from_millis(300)))
        );
        // An add while "a" is worked on: its wait starts when `done` queues it again.
        q.add("a");
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(
            q.next_timed().await,
            Some(("b".to_owned(), Duration::from_millis(350)))
        );
        q.done("a");
        tokio::time::advance(Duration::from_millis(20)).await;
        assert_eq!(
            q.next_timed().await,
            Some(("a".to_owned(), Duration::from_millis(20)))
        );
        q.done("a");
        q.done("b");
        // A delayed key waits from its due time, not from the `add_after`.
        q.add_after("d", Duration::from_secs(5));
        assert_eq!(q.next_timed().await, Some(("d".to_owned(), Duration::ZERO)));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_until_forgotten() {
        let q = WorkQueue::new();
        assert_eq!(q.add_failed("k"), Duration::from_millis(200));
        assert_eq!(q.next().await.as_deref(), Some("k"));
        q.done("k");
        assert_eq!(q.add_failed("k"), Duration::from_millis(400));
        assert_eq!(q.next().await.as_deref(), Some("k"));
        q.done("k");
        q.forget("k");
        assert_eq!(q.add_failed("k"), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_worker_is_woken_by_add_and_by_shutdown() {
        let q = WorkQueue::new();
        let worker = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::task::yield_now().await;
        q.add("k");
        assert_eq!(worker.await.unwrap().as_deref(), Some("k"));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.next().await })
            })
            .collect();
        tokio::task::yield_now().await;
        q.shutdown();
        for w in workers {
            assert_eq!(w.await.unwrap(), None);
        }
        q.add("ignored");
        assert!(q.is_empty());
    }
}
