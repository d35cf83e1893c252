//! The apply cache: what the apiserver answered to a server-side apply of a desired object
//! against a given live state, so that an object already answered is not dry-run again.
//!
//! An entry is keyed by the SHA-256 of the desired object (as sent) and records the live state
//! it was answered against (uid, resourceVersion, generation) and the answer (the object the
//! server stored, or would store for a dry run). Entries come from two places: a dry run
//! against a known live object (recorded against that object's state), and a real apply (the
//! answer is the stored object, so it is recorded against its own new state: re-applying the
//! same desired object to it changes nothing).
//!
//! Two questions, two strengths:
//! - [`ApplyCache::answer`] — the would-be object for the server-side diff — needs the exact
//!   live state (same uid and resourceVersion): any write since may change the answer.
//! - [`ApplyCache::accepted`] — may the pre-sync dry run be skipped — also holds when only the
//!   object's status or metadata moved and its `metadata.generation` (bumped by every spec
//!   change) is the same: the server accepted this desired object against this spec. A
//!   Deployment's status updates after each apply would otherwise defeat the cache. Deliberate
//!   difference from Argo CD, which dry-runs every task of every sync: a rejection a new
//!   admission policy would raise for an unchanged object is reported by the apply itself
//!   rather than before the sync starts.
//!
//! Pure and synchronous; bounded by an estimated byte budget (least recently used first out).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::gitops::render::cache::approx_bytes;

/// SHA-256 of a desired object as serialized (key order as rendered).
pub type Digest = [u8; 32];

/// The digest of `desired`.
pub fn digest(desired: &Value) -> Digest {
    let bytes = serde_json::to_vec(desired).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// The identity of one state of a live object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveState {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.generation`, when the kind sets it.
    pub generation: Option<i64>,
}

impl LiveState {
    /// The state of `obj`; `None` without a uid or resourceVersion (nothing to key by).
    pub fn of(obj: &Value) -> Option<LiveState> {
        let meta = obj.get("metadata")?;
        let text = |k: &str| {
            meta.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(LiveState {
            uid: text("uid")?,
            resource_version: text("resourceVersion")?,
            generation: meta.get("generation").and_then(Value::as_i64),
        })
    }
}

#[derive(Debug)]
struct Entry {
    state: LiveState,
    /// Whether the answer was given with field validation on.
    validated: bool,
    answer: Arc<Value>,
    bytes: usize,
    used: u64,
}

/// Answers of the apiserver to applies, by desired object (see the module docs).
#[derive(Debug)]
pub struct ApplyCache {
    max_bytes: usize,
    bytes: usize,
    tick: u64,
    entries: HashMap<Digest, Entry>,
}

impl ApplyCache {
    /// An empty cache of about `max_bytes` (estimated).
    pub fn new(max_bytes: usize) -> Self {
        ApplyCache {
            max_bytes,
            bytes: 0,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    fn touch(&mut self, desired: &Digest) -> Option<&Entry> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(desired)?;
        e.used = tick;
        Some(e)
    }

    /// The server's answer for `desired` applied to exactly `live` (same uid and
    /// resourceVersion).
    pub fn answer(&mut self, desired: &Digest, live: &LiveState) -> Option<Arc<Value>> {
        let e = self.touch(desired)?;
        (e.state.uid == live.uid && e.state.resource_version == live.resource_version)
            .then(|| Arc::clone(&e.answer))
    }

    /// Whether the server accepted `desired` against this object with the same spec: same uid,
    /// and the same resourceVersion or (when the kind has one) the same generation; with
    /// `validate`, only an answer given with validation counts.
    pub fn accepted(&mut self, desired: &Digest, live: &LiveState, validate: bool) -> bool {
        let Some(e) = self.touch(desired) else {
            return false;
        };
        let same_spec = e.state.resource_version == live.resource_version
            || (e.state.generation.is_some() && e.state.generation == live.generation);
        e.state.uid == live.uid && same_spec && (e.validated || !validate)
    }

    /// Records the answer to `desired` applied against `state`.
    pub fn record(&mut self, desired: Digest, state: LiveState, validated: bool, answer: Value) {
        self.tick += 1;
        let bytes = approx_bytes(&answer) + state.uid.len() + state.resource_version.len() + 128;
        if let Some(old) = self.entries.remove(&desired) {
            self.bytes -= old.bytes;
        }
        if bytes > self.max_bytes {
            return;
        }
        while self.bytes + bytes > self.max_bytes {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            match oldest.and_then(|k| self.entries.remove(&k)) {
                Some(e) => self.bytes -= e.bytes,
                None => break,
            }
        }
        self.bytes += bytes;
        self.entries.insert(
            desired,
            Entry {
                state,
                validated,
                answer: Arc::new(answer),
                bytes,
                used: self.tick,
            },
        );
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state(uid: &str, rv: &str, generation: Option<i64>) -> LiveState {
        LiveState {
            uid: uid.into(),
            resource_version: rv.into(),
            generation,
        }
    }

    fn cm(v: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "namespace": "n"}, "data": {"v": v}})
    }

    #[test]
    fn live_state_needs_uid_and_resource_version() {
        let live = json!({"metadata": {"uid": "u", "resourceVersion": "7", "generation": 3}});
        assert_eq!(LiveState::of(&live), Some(state("u", "7", Some(3))));
        assert_eq!(
            LiveState::of(&json!({"metadata": {"uid": "u", "resourceVersion": "7"}})),
            Some(state("u", "7", None))
        );
        assert_eq!(LiveState::of(&json!({"metadata": {"uid": "u"}})), None);
        assert_eq!(
            LiveState::of(&json!({"metadata": {"uid": "", "resourceVersion": "1"}})),
            None
        );
        assert_eq!(LiveState::of(&json!(null)), None);
    }

    #[test]
    fn digests_tell_desired_objects_apart() {
        assert_eq!(digest(&cm("a")), digest(&cm("a")));
        assert_ne!(digest(&cm("a")), digest(&cm("b")));
    }

    #[test]
    fn answers_need_the_exact_live_state() {
        let mut cache = ApplyCache::new(1 << 20);
        let d = digest(&cm("a"));
        assert!(cache.answer(&d, &state("u", "7", None)).is_none());
        cache.record(d, state("u", "7", None), true, json!({"answer": 1}));
        assert_eq!(
            cache.answer(&d, &state("u", "7", None)).as_deref(),
            Some(&json!({"answer": 1}))
        );
        assert!(cache.answer(&d, &state("u", "8", None)).is_none());
        assert!(cache.answer(&d, &state("other", "7", None)).is_none());
        assert!(
            cache
                .answer(&digest(&cm("b")), &state("u", "7", None))
                .is_none()
        );
    }

    #[test]
    fn acceptance_survives_status_only_changes() {
        let mut cache = ApplyCache::new(1 << 20);
        let d = digest(&cm("a"));
        cache.record(d, state("u", "7", Some(2)), true, json!({}));
        assert!(cache.accepted(&d, &state("u", "7", Some(2)), true));
        // A status update: new resourceVersion, same generation.
        assert!(cache.accepted(&d, &state("u", "9", Some(2)), true));
        // A spec change by someone else, or a re-created object: dry-run again.
        assert!(!cache.accepted(&d, &state("u", "10", Some(3)), true));
        assert!(!cache.accepted(&d, &state("u2", "7", Some(2)), true));
        // Without a generation only the exact resourceVersion counts.
        let c = digest(&cm("c"));
        cache.record(c, state("v", "1", None), true, json!({}));
        assert!(cache.accepted(&c, &state("v", "1", None), true));
        assert!(!cache.accepted(&c, &state("v", "2", None), true));
        // A different desired object was never answered.
        assert!(!cache.accepted(&digest(&cm("b")), &state("u", "7", Some(2)), true));
    }

    #[test]
    fn an_answer_without_validation_does_not_vouch_for_one_with() {
        let mut cache = ApplyCache::new(1 << 20);
        let d = digest(&cm("a"));
        cache.record(d, state("u", "1", None), false, json!({}));
        assert!(cache.accepted(&d, &state("u", "1", None), false));
        assert!(!cache.accepted(&d, &state("u", "1", None), true));
        cache.record(d, state("u", "1", None), true, json!({}));
        assert!(cache.accepted(&d, &state("u", "1", None), false));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn bounded_by_bytes_least_recently_used_first() {
        let answer = json!({"data": "x".repeat(1000)});
        let one = approx_bytes(&answer) + 2 + 128;
        let mut cache = ApplyCache::new(one * 3);
        for i in 0..3 {
            cache.record(
                digest(&cm(&i.to_string())),
                state("u", &i.to_string(), None),
                true,
                answer.clone(),
            );
        }
        assert_eq!(cache.len(), 3);
        // Use the oldest: the second becomes the least recently used.
        assert!(cache.accepted(&digest(&cm("0")), &state("u", "0", None), true));
        cache.record(
            digest(&cm("3")),
            state("u", "3", None),
            true,
            answer.clone(),
        );
        assert_eq!(cache.len(), 3);
        assert!(cache.bytes() <= one * 3);
        assert!(!cache.accepted(&digest(&cm("1")), &state("u", "1", None), true));
        assert!(cache.accepted(&digest(&cm("0")), &state("u", "0", None), true));
        // Re-recording replaces, never double counts.
        let before = cache.bytes();
        cache.record(
            digest(&cm("3")),
            state("u", "3", None),
            true,
            answer.clone(),
        );
        assert_eq!(cache.bytes(), before);
        // An answer larger than the whole budget is not kept.
        let mut tiny = ApplyCache::new(10);
        tiny.record(digest(&cm("a")), state("u", "1", None), true, answer);
        assert!(tiny.is_empty() && tiny.bytes() == 0);
    }
}
