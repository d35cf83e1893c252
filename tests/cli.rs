//! The `cairn` binary end to end: exit codes, config errors, a real `cairn server` process, and
//! the client commands against it (login with password and token, tokens, output formats).
//!
//! The server runs without a cluster here (KUBECONFIG points at a missing file), which is a
//! supported mode: cluster routes answer 503 and `/readyz` says why.
#![allow(
    clippy::disallowed_methods,
    reason = "plain threads polling child processes; there is no async runtime to block here"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A plain HTTP GET over a raw socket (keeps the test free of client libraries).
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

fn start_server(data_dir: &Path) -> Server {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
    let child = Command::new(BIN)
        .args(["server", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data_dir)
        .env("KUBECONFIG", data_dir.join("no-such-kubeconfig"))
        .env_remove("CAIRN_CONFIG")
        .env("HOME", data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cairn server");
    let mut server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(resp) = http_get(addr, "/healthz")
            && resp.starts_with("HTTP/1.1 200")
        {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("cairn server exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.child.kill();
    panic!("cairn server did not answer /healthz within 30s");
}

fn cairn(cli_config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env("CAIRN_CLI_CONFIG", cli_config)
        .env_remove("CAIRN_SERVER")
        .env_remove("CAIRN_TOKEN")
        .env_remove("CAIRN_OUTPUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("cairn finishes")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("cli.toml");
    assert_eq!(
        cairn(&cfg, &["--no-such-flag"], None).status.code(),
        Some(2)
    );
    assert_eq!(
        cairn(&cfg, &["app", "list", "-o", "xml"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        cairn(&cfg, &["login", "--server", "http://x"], None)
            .status
            .code(),
        Some(2),
        "login needs a credential"
    );
    assert_eq!(cairn(&cfg, &["--help"], None).status.code(), Some(0));
    let out = cairn(&cfg, &["app", "list"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "not logged in is a failure, not usage"
    );
    assert!(stderr(&out).contains("not logged in"), "{}", stderr(&out));
}

#[test]
fn version_and_crds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("cli.toml");
    let out = cairn(&cfg, &["version", "-o", "json"], None);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["gitCommit"].as_str().is_some_and(|c| !c.is_empty()));
    let out = cairn(&cfg, &["version", "-o", "yaml"], None);
    assert!(stdout(&out).contains("version:"), "{}", stdout(&out));
    let out = cairn(&cfg, &["crds"], None);
    assert!(out.status.success());
    let text = stdout(&out);
    for name in [
        "applications.argoproj.io",
        "appprojects.argoproj.io",
        "workflows.argoproj.io",
        "clusterworkflowtemplates.argoproj.io",
        "sensors.argoproj.io",
    ] {
        assert!(
            text.contains(&format!("name: {name}")),
            "cairn crds lacks {name}"
        );
    }
}

#[test]
fn malformed_config_is_refused_with_file_line_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("cairn.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"127.0.0.1:8080\"\nlisen = \"typo\"\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["server", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cairn.toml:3"), "names file and line: {err}");
    assert!(err.contains("lisen"), "names the field: {err}");
    assert!(
        !dir.path().join("cairn.redb").exists(),
        "nothing was started"
    );
}

#[test]
fn refuses_a_foreign_database_file_and_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("cairn.redb");
    std::fs::write(&db, b"this is not a database").expect("write");
    let out = Command::new(BIN)
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("KUBECONFIG", dir.path().join("none"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cairn.redb"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&db).expect("read"), b"this is not a database");
}

#[test]
fn login_tokens_and_outputs_against_a_real_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let cfg = dir.path().join("cli").join("config.toml");
    let server = start_server(&data);
    let url = format!("http://{}", server.addr);

    let ready = http_get(server.addr, "/readyz").expect("readyz answers");
    assert!(
        ready.starts_with("HTTP/1.1 503"),
        "no cluster → not ready: {ready}"
    );
    assert!(ready.contains("\"cluster\":false"), "{ready}");

    let out = cairn(
        &cfg,
        &[
            "admin",
            "initial-password",
            "--data-dir",
            data.to_str().expect("utf8"),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let password = stdout(&out).trim().to_string();
    assert!(password.len() >= 16, "a generated password");

    // Wrong password: failure, no credential stored.
    let out = cairn(
        &cfg,
        &[
            "login",
            "--server",
            &url,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some("nope\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("invalid username or password"),
        "{}",
        stderr(&out)
    );
    assert!(!cfg.exists());

    let out = cairn(
        &cfg,
        &[
            "login",
            "--server",
            &url,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&cfg)
        .expect("config written")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "credentials file is private");

    let out = cairn(&cfg, &["account", "get-user-info", "-o", "json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(info["username"], "admin");

    let out = cairn(
        &cfg,
        &[
            "account",
            "generate-token",
            "--name",
            "ci",
            "--expires-in",
            "30d",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("cairn_"), "{token}");

    // A second profile logs in with the token alone.
    let cfg2 = dir.path().join("cli2.toml");
    let out = cairn(&cfg2, &["login", "--server", &url, "--token", &token], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("as admin"), "{}", stdout(&out));
    let out = cairn(&cfg2, &["account", "list-tokens", "-o", "yaml"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("name: ci"), "{}", stdout(&out));
    assert!(!stdout(&out).contains(&token), "secrets are never listed");
    let out = cairn(&cfg2, &["account", "list", "-o", "wide"], None);
    assert!(stdout(&out).starts_with("NAME"), "{}", stdout(&out));
    assert!(stdout(&out).contains("admin"), "{}", stdout(&out));

    // Cluster-backed commands fail clearly without a cluster.
    let out = cairn(&cfg, &["app", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("503"), "{}", stderr(&out));

    // Revoke the token: the token profile is locked out.
    let list = cairn(&cfg, &["account", "list-tokens", "-o", "json"], None);
    let list: serde_json::Value = serde_json::from_str(&stdout(&list)).expect("json");
    let id = list["items"][0]["id"]
        .as_str()
        .expect("token id")
        .to_string();
    let out = cairn(&cfg, &["account", "revoke-token", "--id", &id], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = cairn(&cfg2, &["account", "get-user-info"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    let out = cairn(&cfg, &["logout"], None);
    assert!(out.status.success());
    let out = cairn(&cfg, &["account", "get-user-info"], None);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_server(dir.path());
    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(status.success(), "clean exit on SIGTERM, got {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not stop within 15s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The store reopens: nothing was left half-written.
    let reopened = cairn::store::Store::open(dir.path());
    assert!(reopened.is_ok(), "{:?}", reopened.err());
}
