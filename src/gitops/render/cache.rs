//! Cache keys of rendered manifests and a small in-memory LRU of rendered results.
//!
//! [`cache_key`] is pure: the SHA-256 (hex) of a canonical JSON document (object keys sorted at
//! every level) of the repository URL, the resolved revision SHA, the path and every option that
//! changes the output ([`SourceOptions`]). Two option sets that differ only in key order hash
//! equal; any value change hashes differently. Invariant of [`RenderCache`]: it never holds more
//! than its entry capacity, nor more than its byte budget (estimated by [`approx_bytes`]) except
//! for the one entry just inserted; the least recently used entry goes first. Every new
//! revision of an app is a new key, so a count bound alone let a large app grow the process by
//! its full manifests on each push.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::kustomize::KustomizeBuildOptions;
use super::{Rendered, is_zero};
use crate::gitops::types::ApplicationSource;

/// Everything besides repo, revision and path that changes what a render produces.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceOptions {
    /// The source (its `helm`, `kustomize`, `directory`, `plugin` and `chart` are used).
    pub source: ApplicationSource,
    /// Application name (Helm's default release name).
    pub app_name: String,
    /// Destination namespace (Helm's `--namespace`).
    pub namespace: Option<String>,
    /// AppProject name (`ARGOCD_APP_PROJECT_NAME` may appear in options).
    pub project: String,
    /// Destination cluster version (Helm `--kube-version` default).
    pub kube_version: Option<String>,
    /// Destination cluster API versions (Helm `--api-versions` default).
    pub api_versions: Vec<String>,
    /// Cairn-wide Kustomize build options.
    pub kustomize_build: KustomizeBuildOptions,
    /// Resolved revisions of the sources referenced by `$ref` value files.
    pub ref_revisions: BTreeMap<String, String>,
}

/// Sorts object keys at every level (the crate's maps keep insertion order).
pub fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                if let Some(v) = map.get(k) {
                    out.insert(k.clone(), canonical(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

fn part<T: serde::Serialize>(v: &Option<T>) -> Value {
    // An absent block and an all-default block render alike (Argo CD normalizes them away).
    let v = serde_json::to_value(v).unwrap_or(Value::Null);
    if is_zero(&v) { Value::Null } else { v }
}

/// The cache key of a render.
pub fn cache_key(
    repo_url: &str,
    revision_sha: &str,
    path: &str,
    options: &SourceOptions,
) -> String {
    let doc = json!({
        "v": 1,
        "repo": repo_url,
        "revision": revision_sha,
        "path": path,
        "chart": options.source.chart,
        "helm": part(&options.source.helm),
        "kustomize": part(&options.source.kustomize),
        "directory": part(&options.source.directory),
        "plugin": part(&options.source.plugin),
        "app": options.app_name,
        "namespace": options.namespace,
        "project": options.project,
        "kubeVersion": options.kube_version,
        "apiVersions": options.api_versions,
        "enableHelm": options.kustomize_build.enable_helm,
        "loadRestrictorNone": options.kustomize_build.load_restrictor_none,
        "refs": options.ref_revisions,
    });
    let bytes = serde_json::to_vec(&canonical(&doc)).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Estimated heap bytes of a JSON value as held in memory (`serde_json` with `preserve_order`):
/// the value slot, strings, array slots, and per object entry the key, the slot, the stored
/// hash and the index table. An estimate for cache budgets, not an allocator measurement.
pub fn approx_bytes(value: &Value) -> usize {
    let slot = std::mem::size_of::<Value>();
    slot + heap_bytes(value)
}

/// The allocator's overhead per heap allocation (header and rounding), as glibc malloc gives.
const ALLOCATION: usize = 16;

fn heap_bytes(value: &Value) -> usize {
    let slot = std::mem::size_of::<Value>();
    match value {
        Value::String(s) if s.is_empty() => 0,
        Value::String(s) => s.len() + ALLOCATION,
        Value::Array(items) if items.is_empty() => 0,
        Value::Array(items) => {
            ALLOCATION + items.iter().map(|v| slot + heap_bytes(v)).sum::<usize>()
        }
        Value::Object(map) if map.is_empty() => 0,
        Value::Object(map) => {
            // The entries and the hash table are two allocations.
            2 * ALLOCATION
                + map
                    .iter()
                    .map(|(k, v)| {
                        // Bucket (hash, key, value), the key's own allocation, and the hash
                        // table's index and control byte.
                        std::mem::size_of::<String>()
                            + 8
                            + k.len()
                            + ALLOCATION
                            + 9
                            + slot
                            + heap_bytes(v)
                    })
                    .sum::<usize>()
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// Estimated bytes of a rendered result (see [`approx_bytes`]).
pub fn rendered_bytes(rendered: &Rendered) -> usize {
    std::mem::size_of::<Rendered>() + rendered.objects.iter().map(approx_bytes).sum::<usize>()
}

/// A bounded least-recently-used cache of rendered results, keyed by [`cache_key`]: at most
/// `capacity` entries and `max_bytes` estimated bytes (the newest entry is kept even when it
/// alone exceeds the budget, so the app being reconciled still benefits).
#[derive(Debug)]
pub struct RenderCache {
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    tick: u64,
    entries: HashMap<String, Entry>,
}

#[derive(Debug)]
struct Entry {
    used: u64,
    bytes: usize,
    /// The source the render is of, whatever its revision (see [`RenderCache::insert`]).
    lineage: Option<String>,
    value: Arc<Rendered>,
}

impl RenderCache {
    /// A cache holding at most `capacity` entries (at least one) and about `max_bytes`.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// The entry for `key`, marking it most recently used.
    pub fn get(&mut self, key: &str) -> Option<Arc<Rendered>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|e| {
            e.used = tick;
            Arc::clone(&e.value)
        })
    }

    /// Stores `value` under `key`, evicting least recently used entries while over a bound.
    /// With a `lineage` (the key of the same source at no particular revision), the renders of
    /// that source at other revisions are dropped first: an app following a branch needs its
    /// newest render, and each push would otherwise leave one more behind.
    pub fn insert(&mut self, key: String, lineage: Option<String>, value: Arc<Rendered>) {
        self.tick += 1;
        let bytes = rendered_bytes(&value);
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.bytes;
        }
        if lineage.is_some() {
            let stale: Vec<String> = self
                .entries
                .iter()
                .filter(|(_, e)| e.lineage == lineage)
                .map(|(k, _)| k.clone())
                .collect();
            for k in stale {
                if let Some(e) = self.entries.remove(&k) {
                    self.bytes -= e.bytes;
                }
            }
        }
        // O(n) per eviction over a small bounded map: simpler than a linked list and fast enough.
        while !self.entries.is_empty()
            && (self.entries.len() >= self.capacity || self.bytes + bytes > self.max_bytes)
        {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone());
            if let Some(e) = oldest.and_then(|k| self.entries.remove(&k)) {
                self.bytes -= e.bytes;
            }
        }
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                used: self.tick,
                bytes,
                lineage,
                value,
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
    use super::super::Tool;
    use super::*;

    fn source(value: Value) -> ApplicationSource {
        serde_json::from_value(value).expect("valid source")
    }

    fn opts(value: Value) -> SourceOptions {
        SourceOptions {
            source: source(value),
            app_name: "app".to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn key_is_stable_and_sensitive() {
        let base = opts(
            serde_json::json!({"helm": {"parameters": [{"name": "a", "value": "1"}], "releaseName": "r"}}),
        );
        let reordered = opts(
            serde_json::json!({"helm": {"releaseName": "r", "parameters": [{"value": "1", "name": "a"}]}}),
        );
        let k = cache_key("https://g/r.git", "abc", "p", &base);
        assert_eq!(k.len(), 64);
        assert_eq!(k, cache_key("https://g/r.git", "abc", "p", &reordered));
        // Absent and empty option blocks are the same render.
        assert_eq!(
            cache_key("u", "s", "p", &opts(serde_json::json!({}))),
            cache_key(
                "u",
                "s",
                "p",
                &opts(serde_json::json!({"kustomize": {}, "directory": {"recurse": false}}))
            ),
        );
        let mut variants = vec![
            cache_key("https://g/other.git", "abc", "p", &base),
            cache_key("https://g/r.git", "abd", "p", &base),
            cache_key("https://g/r.git", "abc", "q", &base),
            cache_key(
                "https://g/r.git",
                "abc",
                "p",
                &opts(serde_json::json!({"helm": {"releaseName": "r2"}})),
            ),
            cache_key(
                "https://g/r.git",
                "abc",
                "p",
                &SourceOptions {
                    app_name: "other".to_owned(),
                    ..base.clone()
                },
            ),
            cache_key(
                "https://g/r.git",
                "abc",
                "p",
                &SourceOptions {
                    namespace: Some("ns".to_owned()),
                    ..base.clone()
                },
            ),
            cache_key(
                "https://g/r.git",
                "abc",
                "p",
                &SourceOptions {
                    kustomize_build: KustomizeBuildOptions {
                        enable_helm: true,
                        load_restrictor_none: false,
                    },
                    ..base.clone()
                },
            ),
        ];
        variants.push(cache_key(
            "https://g/r.git",
            "abc",
            "p",
            &SourceOptions {
                kube_version: Some("1.37.0".to_owned()),
                ..base.clone()
            },
        ));
        variants.push(cache_key(
            "https://g/r.git",
            "abc",
            "p",
            &SourceOptions {
                project: "other".to_owned(),
                ..base.clone()
            },
        ));
        variants.push(k);
        let unique: std::collections::BTreeSet<&String> = variants.iter().collect();
        assert_eq!(unique.len(), variants.len());
    }

    fn rendered(n: usize) -> Arc<Rendered> {
        Arc::new(Rendered {
            tool: Tool::Directory,
            objects: vec![Value::from(n)],
        })
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut cache = RenderCache::new(2, usize::MAX);
        assert!(cache.is_empty());
        cache.insert("a".into(), None, rendered(1));
        cache.insert("b".into(), None, rendered(2));
        assert!(cache.get("a").is_some()); // a is now fresher than b
        cache.insert("c".into(), None, rendered(3));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").expect("kept").objects, [Value::from(1)]);
        cache.insert("a".into(), None, rendered(4)); // replacing does not evict
        assert_eq!(cache.len(), 2);
        assert!(cache.get("c").is_some());
        assert_eq!(RenderCache::new(0, 0).capacity, 1);
    }

    fn big(n: usize, payload: usize) -> Arc<Rendered> {
        Arc::new(Rendered {
            tool: Tool::Directory,
            objects: (0..n)
                .map(|i| serde_json::json!({"metadata": {"name": format!("o-{i}")}, "data": {"v": "x".repeat(payload)}}))
                .collect(),
        })
    }

    #[test]
    fn byte_budget_evicts_old_revisions() {
        let one = rendered_bytes(&big(100, 1000));
        assert!(one > 100 * 1000, "payload counted: {one}");
        // Room for three such renders.
        let mut cache = RenderCache::new(256, one * 3 + one / 2);
        for rev in 0..10 {
            cache.insert(format!("rev-{rev}"), None, big(100, 1000));
            assert!(
                cache.bytes() <= one * 3 + one / 2,
                "rev {rev}: {}",
                cache.bytes()
            );
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("rev-9").is_some() && cache.get("rev-7").is_some());
        assert!(cache.get("rev-6").is_none());
        // A recently used old entry survives a newer one.
        assert!(cache.get("rev-7").is_some());
        cache.insert("rev-10".into(), None, big(100, 1000));
        assert!(cache.get("rev-7").is_some() && cache.get("rev-8").is_none());
        // Replacing an entry does not count it twice.
        let before = cache.bytes();
        cache.insert("rev-10".into(), None, big(100, 1000));
        assert_eq!(cache.bytes(), before);
    }

    #[test]
    fn a_new_revision_of_a_source_replaces_the_old_one() {
        let mut cache = RenderCache::new(256, usize::MAX);
        cache.insert("app-a@1".into(), Some("app-a".into()), big(10, 10));
        cache.insert("app-b@1".into(), Some("app-b".into()), big(10, 10));
        cache.insert("pinned".into(), None, big(10, 10));
        cache.insert("app-a@2".into(), Some("app-a".into()), big(10, 10));
        assert!(cache.get("app-a@1").is_none());
        assert!(cache.get("app-a@2").is_some() && cache.get("app-b@1").is_some());
        assert!(cache.get("pinned").is_some());
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.bytes(), 3 * rendered_bytes(&big(10, 10)));
    }

    #[test]
    fn an_entry_over_the_budget_is_kept_alone() {
        let mut cache = RenderCache::new(8, 10);
        cache.insert("a".into(), None, rendered(1));
        cache.insert("huge".into(), None, big(10, 100));
        assert_eq!(cache.len(), 1);
        assert!(cache.get("huge").is_some());
        cache.insert("b".into(), None, rendered(2));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), rendered_bytes(&rendered(2)));
    }

    #[test]
    fn approx_bytes_grows_with_content() {
        let small = approx_bytes(&serde_json::json!({"a": "b"}));
        let larger = approx_bytes(&serde_json::json!({"a": "b".repeat(100)}));
        assert_eq!(larger - small, 99);
        let arr = approx_bytes(&serde_json::json!([1, 2, 3]));
        assert_eq!(arr, 4 * std::mem::size_of::<Value>() + ALLOCATION);
        assert_eq!(
            approx_bytes(&serde_json::json!({})),
            std::mem::size_of::<Value>()
        );
    }
}
