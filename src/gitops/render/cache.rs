//! Cache keys of rendered manifests and a small in-memory LRU of rendered results.
//!
//! [`cache_key`] is pure: the SHA-256 (hex) of a canonical JSON document (object keys sorted at
//! every level) of the repository URL, the resolved revision SHA, the path and every option that
//! changes the output ([`SourceOptions`]). Two option sets that differ only in key order hash
//! equal; any value change hashes differently. Invariant of [`RenderCache`]: it never holds more
//! than its capacity; the least recently used entry goes first.

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

/// A bounded least-recently-used cache of rendered results, keyed by [`cache_key`].
#[derive(Debug)]
pub struct RenderCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<String, (u64, Arc<Rendered>)>,
}

impl RenderCache {
    /// A cache holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// The entry for `key`, marking it most recently used.
    pub fn get(&mut self, key: &str) -> Option<Arc<Rendered>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(used, v)| {
            *used = tick;
            Arc::clone(v)
        })
    }

    /// Stores `value` under `key`, evicting the least recently used entry when full.
    pub fn insert(&mut self, key: String, value: Arc<Rendered>) {
        self.tick += 1;
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            // O(n) over a small bounded map: simpler than a linked list and fast enough.
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(key, (self.tick, value));
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
        let mut cache = RenderCache::new(2);
        assert!(cache.is_empty());
        cache.insert("a".into(), rendered(1));
        cache.insert("b".into(), rendered(2));
        assert!(cache.get("a").is_some()); // a is now fresher than b
        cache.insert("c".into(), rendered(3));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").expect("kept").objects, [Value::from(1)]);
        cache.insert("a".into(), rendered(4)); // replacing does not evict
        assert_eq!(cache.len(), 2);
        assert!(cache.get("c").is_some());
        assert_eq!(RenderCache::new(0).capacity, 1);
    }
}
