//! cairn's built-in artifact store: content-addressed blobs in the data directory.
//!
//! Layout under `<data_dir>/artifacts/`:
//! - `sha256/<ab>/<hex>`: the bytes, named after their sha256 (`ab` = the first two hex digits);
//!   identical artifacts are stored once;
//! - `refs/<namespace>/<key>.ref`: JSON `{digest, size, workflow}`, the index from a key to its
//!   blob (plain files: a key is written once per step attempt and read a few times, so a
//!   database table would add a schema version for nothing);
//! - `tmp/`: uploads in progress.
//!
//! Invariants: a blob or a ref is only ever visible complete (temp file + fsync + rename +
//! fsync of the directory); the sha256 is computed here, from the bytes received, and an upload
//! whose digest differs from the client's claim is refused and leaves nothing behind; a key is
//! a relative path of non-empty segments without `.`/`..`, so no request escapes `refs/`.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 1024;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key is not a safe relative path.
    #[error("artifact key {key:?}: {why}")]
    BadKey {
        /// The key.
        key: String,
        /// What is wrong.
        why: &'static str,
    },
    /// No artifact under this key.
    #[error("artifact {namespace}/{key} not found")]
    NotFound {
        /// Namespace.
        namespace: String,
        /// Key.
        key: String,
    },
    /// The upload is larger than the limit.
    #[error("artifact {key:?}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// Key.
        key: String,
        /// Limit.
        limit: u64,
    },
    /// The bytes received do not hash to the digest the client claimed.
    #[error("artifact {key:?}: received bytes have sha256 {actual}, the client claimed {claimed}")]
    DigestMismatch {
        /// Key.
        key: String,
        /// Claimed hex digest.
        claimed: String,
        /// Computed hex digest.
        actual: String,
    },
    /// The upload stream failed.
    #[error("artifact {key:?}: upload interrupted: {message}")]
    Body {
        /// Key.
        key: String,
        /// Transport message.
        message: String,
    },
    /// File system failure.
    #[error("artifact store: {path}: {source}")]
    Io {
        /// Path concerned.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a key points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ref {
    /// Hex sha256 of the blob.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Workflow that wrote it.
    pub workflow: String,
}

/// Checks a key (or a namespace, a one-segment key). Pure.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |why| {
        Err(StoreError::BadKey {
            key: key.to_string(),
            why,
        })
    };
    if key.is_empty() {
        return bad("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return bad("longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return bad("must be relative");
    }
    if key.contains('\0') || key.contains('\\') {
        return bad("contains NUL or a backslash");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("has an empty path segment");
        }
        if segment == "." || segment == ".." {
            return bad("has a `.` or `..` segment");
        }
    }
    Ok(())
}

/// Whether `hex` is a lowercase sha256 hex digest. Pure.
pub fn is_hex_digest(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The built-in store rooted at `<data_dir>/artifacts`.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the store under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let root = data_dir.join("artifacts");
        for dir in ["sha256", "refs", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(StoreError::io(&path))?;
        }
        Ok(Self { root })
    }

    /// Path of the blob with hex digest `hex`.
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        let prefix = hex.get(..2).unwrap_or("00");
        self.root.join("sha256").join(prefix).join(hex)
    }

    fn ref_path(&self, namespace: &str, key: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(namespace)
            .join(format!("{key}.ref"))
    }

    /// Stores the bytes of `body` under `namespace/key`. `claimed` (hex) is compared with the
    /// digest computed from the bytes; over `limit` bytes the upload is refused.
    pub async fn put<S, E>(
        &self,
        namespace: &str,
        key: &str,
        workflow: &str,
        mut body: S,
        claimed: Option<&str>,
        limit: u64,
    ) -> Result<Ref, StoreError>
    where
        S: Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        check_key(namespace)?;
        check_key(key)?;
        let tmp =
            self.root
                .join("tmp")
                .join(format!("{}-{}", std::process::id(), rand::random::<u64>()));
        let result = async {
            let mut file = tokio::fs::File::create(&tmp)
                .await
                .map_err(StoreError::io(&tmp))?;
            let mut hasher = Sha256::new();
            let mut size: u64 = 0;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Body {
                    key: key.to_string(),
                    message: e.to_string(),
                })?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(StoreError::TooLarge {
                        key: key.to_string(),
                        limit,
                    });
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(StoreError::io(&tmp))?;
            }
            file.sync_all().await.map_err(StoreError::io(&tmp))?;
            let actual = hex::encode(hasher.finalize());
            if let Some(claimed) = claimed
                && claimed != actual
            {
                return Err(StoreError::DigestMismatch {
                    key: key.to_string(),
                    claimed: claimed.to_string(),
                    actual,
                });
            }
            Ok((actual, size))
        }
        .await;
        let (digest, size) = match result {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let blob = self.blob_path(&digest);
        let parent = blob.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(StoreError::io(&parent))?;
        // Same digest, same bytes: an existing blob is kept (content addressing).
        if tokio::fs::try_exists(&blob).await.unwrap_or(false) {
            let _ = tokio::fs::remove_file(&tmp).await;
        } else {
            tokio::fs::rename(&tmp, &blob)
                .await
                .map_err(StoreError::io(&blob))?;
            sync_dir(&parent).await?;
        }
        let record = Ref {
            digest,
            size,
            workflow: workflow.to_string(),
        };
        self.write_ref(namespace, key, &record).await?;
        Ok(record)
    }

    async fn write_ref(&self, namespace: &str, key: &str, record: &Ref) -> Result<(), StoreError> {
        let path = self.ref_path(namespace, key);
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(StoreError::io(&parent))?;
        let tmp = parent.join(format!(".ref-{}", rand::random::<u64>()));
        let text = serde_json::to_vec(record).unwrap_or_default();
        let write = async {
            let mut file = tokio::fs::File::create(&tmp).await?;
            file.write_all(&text).await?;
            file.sync_all().await?;
            tokio::fs::rename(&tmp, &path).await
        };
        if let Err(e) = write.await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(StoreError::Io { path, source: e });
        }
        sync_dir(&parent).await
    }

    /// What `namespace/key` points to.
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Ref, StoreError> {
        check_key(namespace)?;
        check_key(key)?;
        let path = self.ref_path(namespace, key);
        let text = match tokio::fs::read(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound {
                    namespace: namespace.to_string(),
                    key: key.to_string(),
                });
            }
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        serde_json::from_slice(&text).map_err(|e| StoreError::Io {
            path,
            source: std::io::Error::other(e),
        })
    }
}

async fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let file = tokio::fs::File::open(dir)
        .await
        .map_err(StoreError::io(dir))?;
    file.sync_all().await.map_err(StoreError::io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<bytes::Bytes, String>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(bytes::Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn key_rules() {
        for ok in ["a", "wf/pod/out.tgz", "a.b/c-d_e"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "/abs", "a//b", "a/../b", "..", "./a", "a/", "a\\b", "a\0b",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(&"x".repeat(MAX_KEY_BYTES + 1)).is_err());
        assert!(is_hex_digest(&sha(b"x")));
        assert!(!is_hex_digest("ABC"));
    }

    #[tokio::test]
    async fn put_get_content_addressed_and_verified() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = BlobStore::open(dir.path()).expect("open");
        let want = sha(b"hello world");
        let r = store
            .put(
                "ns",
                "wf/p/a.tgz",
                "wf",
                body(&[b"hello ", b"world"]),
                Some(&want),
                100,
            )
            .await
            .expect("put");
        assert_eq!(r.digest, want);
        assert_eq!(r.size, 11);
        let blob = store.blob_path(&want);
        assert_eq!(std::fs::read(&blob).expect("blob"), b"hello world");
        assert!(blob.starts_with(dir.path().join("artifacts/sha256").join(&want[..2])));
        assert_eq!(store.get("ns", "wf/p/a.tgz").await.expect("get"), r);
        // Same bytes under another key: one blob.
        store
            .put("ns", "wf/q/b", "wf", body(&[b"hello world"]), None, 100)
            .await
            .expect("second");
        let blobs = std::fs::read_dir(blob.parent().expect("dir"))
            .expect("dir")
            .count();
        assert_eq!(blobs, 1);
        // Another namespace does not see the key.
        assert!(matches!(
            store.get("other", "wf/p/a.tgz").await,
            Err(StoreError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn refused_uploads_leave_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = BlobStore::open(dir.path()).expect("open");
        let err = store
            .put("ns", "k", "wf", body(&[b"abc"]), Some(&sha(b"abd")), 100)
            .await
            .expect_err("mismatch");
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        let err = store
            .put("ns", "k", "wf", body(&[b"abc", b"def"]), None, 4)
            .await
            .expect_err("too large");
        assert!(
            matches!(err, StoreError::TooLarge { limit: 4, .. }),
            "{err}"
        );
        let err = store
            .put("ns", "../k", "wf", body(&[b"abc"]), None, 4)
            .await
            .expect_err("bad key");
        assert!(matches!(err, StoreError::BadKey { .. }), "{err}");
        for sub in ["tmp", "refs"] {
            let n = std::fs::read_dir(dir.path().join("artifacts").join(sub))
                .expect("dir")
                .count();
            assert_eq!(n, 0, "{sub}");
        }
        assert!(matches!(
            store.get("ns", "k").await,
            Err(StoreError::NotFound { .. })
        ));
    }
}
