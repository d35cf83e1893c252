//! A real S3-compatible server for tests: SeaweedFS (`weed server -s3`, pinned in
//! `integration-tests/lab/versions.env`), started through `integration-tests/s3/start` and
//! stopped (its state directory removed) when the [`S3Server`] is dropped.
//!
//! Include it with `#[path = "common/s3.rs"] mod s3;`. Each server has its own ports, data
//! directory and random credentials, so tests may run side by side. It serves the lab's node IP
//! when the lab is up (pods reach [`S3Server::endpoint`]) and loopback in any case.
//!
//! The start script builds SeaweedFS when it is missing (minutes on a cold machine), so
//! [`S3Server::wanted`] runs the tests when the binary is already built or `CAIRN_E2E=1`, and
//! prints a SKIP line otherwise. A killed test binary leaves nothing running: the script's
//! watcher stops the server when this process exits.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder};

/// One running SeaweedFS S3 server and the bucket `start` created in it.
#[derive(Debug)]
pub struct S3Server {
    /// `http://IP:PORT`: the lab's node IP when the lab is up (reachable from pods), else loopback.
    pub endpoint: String,
    /// `http://127.0.0.1:PORT`, the same server on loopback.
    pub loopback_endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    /// The server's state directory (data, `weed.log`); removed on drop.
    pub dir: PathBuf,
    pub pid: u32,
}

#[path = "pinned.rs"]
mod pinned;

use pinned::repo_root;

/// The pinned build this harness runs.
const SEAWEEDFS: pinned::Pinned = pinned::Pinned {
    target: "seaweedfs",
    version_key: "SEAWEEDFS_VERSION",
    binary: "weed",
    label: "SeaweedFS",
};

fn script(name: &str) -> PathBuf {
    repo_root().join("integration-tests/s3").join(name)
}

/// The directory `integration-tests/lab/build seaweedfs` builds into.
fn weed_dir() -> Option<PathBuf> {
    SEAWEEDFS.dir()
}

/// The pinned SeaweedFS is built.
pub fn weed_built() -> bool {
    SEAWEEDFS.built()
}

impl S3Server {
    /// Whether `test` should start it (see [`pinned::Pinned::wanted`]).
    pub fn wanted(test: &str) -> bool {
        SEAWEEDFS.wanted(test)
    }

    /// Starts a server with `bucket` created, ready for writes (the script round-trips an
    /// object before it returns). Blocking: call it outside async code or in `spawn_blocking`.
    pub fn start(bucket: &str) -> Result<Self, String> {
        let out = Command::new(script("start"))
            .args([
                "--bucket",
                bucket,
                "--owner",
                &std::process::id().to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script("start").display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "integration-tests/s3/start failed ({}):\n{stderr}",
                out.status
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Self::parse(&stdout)
            .map_err(|e| format!("integration-tests/s3/start printed {e}\nstderr:\n{stderr}"))
    }

    /// Reads the `KEY=value` lines `start` prints.
    fn parse(stdout: &str) -> Result<Self, String> {
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_owned)
                .ok_or_else(|| format!("no {key} line"))
        };
        Ok(S3Server {
            endpoint: get("S3_ENDPOINT")?,
            loopback_endpoint: get("S3_LOOPBACK_ENDPOINT")?,
            region: get("S3_REGION")?,
            access_key: get("S3_ACCESS_KEY")?,
            secret_key: get("S3_SECRET_KEY")?,
            bucket: get("S3_BUCKET")?,
            dir: PathBuf::from(get("S3_DIR")?),
            pid: get("S3_PID")?
                .parse()
                .map_err(|e| format!("a bad S3_PID line: {e}"))?,
        })
    }

    /// An `object_store` builder for this server's bucket on `endpoint`: path-style requests
    /// (no virtual-hosted buckets here), plain HTTP allowed, region and static keys set.
    pub fn builder_at(&self, endpoint: &str) -> AmazonS3Builder {
        // reqwest is built without a default rustls provider; pick ring, as main does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_region(&self.region)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
    }

    /// An `object_store` client of [`S3Server::builder_at`].
    pub fn store_at(&self, endpoint: &str) -> Result<AmazonS3, object_store::Error> {
        self.builder_at(endpoint).build()
    }

    /// [`S3Server::store_at`] on [`S3Server::endpoint`].
    pub fn store(&self) -> Result<Arc<AmazonS3>, object_store::Error> {
        self.store_at(&self.endpoint).map(Arc::new)
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("weed.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let status = Command::new(script("stop"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!(
                "integration-tests/s3/stop {} failed: {status:?}",
                self.dir.display()
            );
        }
    }
}
