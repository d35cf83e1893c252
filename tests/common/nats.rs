//! A real NATS server with JetStream for tests: nats-server (pinned in
//! `integration-tests/lab/versions.env`), started through `integration-tests/nats/start` on
//! loopback with its own port and store directory, and stopped (the directory removed) when
//! the [`NatsServer`] is dropped.
//!
//! Include it with `#[path = "common/nats.rs"] mod nats;`. The server fsyncs every message
//! before its PubAck (`sync_interval: always`), as cairn's bus promises. [`NatsServer::restart`]
//! and [`NatsServer::crash_restart`] stop it (SIGTERM, or SIGKILL) and start it again on the same
//! port and store, for tests of a bus that outlives its server.
//!
//! The start script builds nats-server when it is missing (about 2 minutes here), so
//! [`NatsServer::wanted`] runs the tests when the binary is built or `CAIRN_E2E=1`, and prints
//! a SKIP line otherwise. A killed test binary leaves nothing running: the script's watcher
//! stops the server when this process exits.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// One running nats-server.
#[derive(Debug)]
pub struct NatsServer {
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    pub port: u16,
    /// The state directory (JetStream store, `nats.log`); removed on drop.
    pub dir: PathBuf,
    pub pid: u32,
}

#[path = "pinned.rs"]
mod pinned;

use pinned::repo_root;

/// The pinned build this harness runs.
const NATS: pinned::Pinned = pinned::Pinned {
    target: "nats-server",
    version_key: "NATS_SERVER_VERSION",
    binary: "nats-server",
    label: "nats-server",
};

fn script(name: &str) -> PathBuf {
    repo_root().join("integration-tests/nats").join(name)
}

/// The directory `integration-tests/lab/build nats-server` builds into.
fn bin_dir() -> Option<PathBuf> {
    NATS.dir()
}

/// The pinned nats-server is built.
pub fn nats_built() -> bool {
    NATS.built()
}

impl NatsServer {
    /// Whether `test` should start it (see [`pinned::Pinned::wanted`]).
    pub fn wanted(test: &str) -> bool {
        NATS.wanted(test)
    }

    /// Starts a server with JetStream on a free loopback port, ready for clients. Blocking:
    /// call it outside async code or in `spawn_blocking`.
    pub fn start() -> Result<Self, String> {
        Self::run_start(&[])
    }

    fn run_start(extra: &[&str]) -> Result<Self, String> {
        let owner = std::process::id().to_string();
        let out = Command::new(script("start"))
            .args(["--owner", &owner])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", script("start").display()))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            return Err(format!(
                "integration-tests/nats/start failed ({}):\n{stderr}",
                out.status
            ));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        Self::parse(&stdout)
            .map_err(|e| format!("integration-tests/nats/start printed {e}\nstderr:\n{stderr}"))
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
        Ok(NatsServer {
            url: get("NATS_URL")?,
            port: get("NATS_PORT")?
                .parse()
                .map_err(|e| format!("a bad NATS_PORT line: {e}"))?,
            dir: PathBuf::from(get("NATS_DIR")?),
            pid: get("NATS_PID")?
                .parse()
                .map_err(|e| format!("a bad NATS_PID line: {e}"))?,
        })
    }

    /// Stops the server (keeping its store and port): SIGTERM (a clean shutdown) or, with
    /// `kill`, SIGKILL (a crash). Blocking.
    pub fn stop_keep(&self, kill: bool) -> Result<(), String> {
        let mut cmd = Command::new(script("stop"));
        cmd.arg("--keep");
        if kill {
            cmd.arg("--kill");
        }
        let status = cmd
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running integration-tests/nats/stop: {e}"))?;
        if !status.success() {
            return Err(format!("integration-tests/nats/stop failed: {status}"));
        }
        Ok(())
    }

    /// Starts the server again on the same port and store after [`NatsServer::stop_keep`].
    /// Blocking.
    pub fn start_again(&mut self) -> Result<(), String> {
        let dir = self.dir.to_string_lossy().into_owned();
        let port = self.port.to_string();
        let again = Self::run_start(&["--dir", &dir, "--port", &port])?;
        self.pid = again.pid;
        // `again` names the same directory: dropping it would stop the server just started.
        std::mem::forget(again);
        Ok(())
    }

    /// SIGTERM, then the same server again on its store. Blocking.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop_keep(false)?;
        self.start_again()
    }

    /// SIGKILL, then the same server again on its store. Blocking.
    pub fn crash_restart(&mut self) -> Result<(), String> {
        self.stop_keep(true)?;
        self.start_again()
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let status = Command::new(script("stop"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !status.as_ref().is_ok_and(|s| s.success()) {
            eprintln!(
                "integration-tests/nats/stop {} failed: {status:?}",
                self.dir.display()
            );
        }
    }
}

/// A core-NATS server (no JetStream, no store) run straight from the built binary with extra
/// flags (`--auth TOKEN`, `--user U --pass P`) on a free loopback port: for tests of clients
/// that authenticate. Killed on drop. Needs the binary built ([`nats_built`]).
#[derive(Debug)]
pub struct CoreServer {
    /// `nats://127.0.0.1:PORT` (no credentials).
    pub url: String,
    pub port: u16,
    child: std::process::Child,
}

impl CoreServer {
    /// Starts the server with `flags` and waits (at most 10 s) until it accepts connections.
    pub async fn start(flags: &[&str]) -> Result<Self, String> {
        let bin = bin_dir()
            .map(|d| d.join("nats-server"))
            .filter(|_| nats_built())
            .ok_or("nats-server is not built (integration-tests/lab/build nats-server)")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        let mut server = CoreServer {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            child,
        };
        for _ in 0..100 {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("nats-server exited at start: {status}"));
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(server);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(format!(
            "nats-server did not listen on port {port} within 10 s"
        ))
    }
}

impl Drop for CoreServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
