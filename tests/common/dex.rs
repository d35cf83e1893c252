//! A real OpenID provider for tests: Dex (pinned in `integration-tests/lab/versions.env`),
//! started through `integration-tests/dex/start` on loopback with its own port and in-memory
//! storage, and stopped (its directory removed) when the [`DexServer`] is dropped.
//!
//! Include it with `#[path = "common/dex.rs"] mod dex;`. What Dex knows (clients, the `local`
//! password user, the `platform-admins` and `data-readers` authproxy connectors) is described in
//! the start script's header.
//!
//! The start script builds Dex when it is missing (a few minutes here), so [`DexServer::wanted`]
//! runs the tests when the binary is built or `CAIRN_E2E=1`, and prints a SKIP line otherwise.
//! A killed test binary leaves nothing running: the script's watcher stops Dex when this
//! process exits.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// One running Dex.
#[derive(Debug)]
pub struct DexServer {
    /// `http://127.0.0.1:PORT/dex`.
    pub issuer: String,
    pub port: u16,
    /// The state directory (config, `dex.log`); removed on drop.
    pub dir: PathBuf,
    pub pid: u32,
    /// The secret of the confidential client `cairn`.
    pub client_secret: String,
    /// With `--tls`: the PEM file of the CA that signed Dex's certificate.
    pub ca: Option<PathBuf>,
}

#[path = "pinned.rs"]
mod pinned;

use pinned::repo_root;

/// The pinned build this harness runs.
const DEX: pinned::Pinned = pinned::Pinned {
    target: "dex",
    version_key: "DEX_VERSION",
    binary: "dex",
    label: "dex",
};

fn script(name: &str) -> PathBuf {
    repo_root().join("integration-tests/dex").join(name)
}

/// The directory `integration-tests/lab/build dex` builds into.
fn bin_dir() -> Option<PathBuf> {
    DEX.dir()
}

/// The pinned dex is built.
pub fn dex_built() -> bool {
    DEX.built()
}

impl DexServer {
    /// Whether `test` should start it (see [`pinned::Pinned::wanted`]).
    pub fn wanted(test: &str) -> bool {
        DEX.wanted(test)
    }

    /// Starts Dex on a free loopback port with `redirect_uris` for the `cairn` client, ready
    /// for discovery. Blocking: call it outside async code or in `spawn_blocking`.
    pub fn start(redirect_uris: &[&str]) -> Result<Self, String> {
        Self::start_with(redirect_uris, &[])
    }

    /// As [`DexServer::start`] with more arguments for the start script (e.g.
    /// `--rotate-keys-after 1s`).
    pub fn start_with(redirect_uris: &[&str], extra: &[&str]) -> Result<Self, String> {
        let owner = std::process::id().to_string();
        let mut cmd = Command::new(script("start"));
        cmd.args(["--owner", &owner]).args(extra);
        for r in redirect_uris {
            cmd.args(["--redirect-uri", r]);
        }
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script("start").display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "integration-tests/dex/start failed ({}):\n{stderr}",
                out.status
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Self::parse(&stdout)
            .map_err(|e| format!("integration-tests/dex/start printed {e}\nstderr:\n{stderr}"))
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
        Ok(DexServer {
            issuer: get("DEX_ISSUER")?,
            port: get("DEX_PORT")?
                .parse()
                .map_err(|e| format!("a bad DEX_PORT line: {e}"))?,
            dir: PathBuf::from(get("DEX_DIR")?),
            pid: get("DEX_PID")?
                .parse()
                .map_err(|e| format!("a bad DEX_PID line: {e}"))?,
            client_secret: get("DEX_CLIENT_SECRET")?,
            ca: get("DEX_CA").ok().map(PathBuf::from),
        })
    }

    /// The last lines of Dex's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("dex.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for DexServer {
    fn drop(&mut self) {
        let status = Command::new(script("stop"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!(
                "integration-tests/dex/stop {} failed: {status:?}",
                self.dir.display()
            );
        }
    }
}
