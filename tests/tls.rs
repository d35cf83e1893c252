//! cairn serving HTTPS itself: a real `cairn server` with `tls_cert_file`/`tls_key_file`, a
//! client that trusts only that certificate, and the cookie rules that TLS switches on
//! (`Secure` and the `__Host-` prefix).
//!
//! A throw-away CA and server certificate are made by the `openssl` command line for each run.
#![allow(
    clippy::disallowed_methods,
    reason = "plain threads polling a child process; the async runtime is not blocked"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success(), "openssl {args:?}");
}

/// A throw-away CA and a server certificate for localhost/127.0.0.1 signed by it.
/// Returns (CA certificate, server certificate, server key).
fn certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=cairn test CA"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(&ca, dir);
    let mut csr = vec!["req", "-new", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "tls.key", "-out", "tls.csr"]);
    openssl(&csr, dir);
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("write extensions");
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "tls.crt",
        ],
        dir,
    );
    (dir.join("ca.crt"), dir.join("tls.crt"), dir.join("tls.key"))
}

#[tokio::test]
async fn serves_https_with_secure_host_cookies() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = certificates(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = dir.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\ndata_dir = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            dir.path().join("data").display(),
            cert.display(),
            key.display()
        ),
    )
    .expect("write config");
    let _server = Server(
        Command::new(BIN)
            .args(["server", "--config"])
            .arg(&config)
            .env("KUBECONFIG", dir.path().join("none"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server"),
    );

    let pem = std::fs::read(&ca).expect("read CA");
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).expect("pem")])
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(resp) if resp.status().is_success() => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("HTTPS /healthz never answered: {other:?}"),
        }
    }

    // Plain HTTP on the TLS port gets no answer that a browser would accept.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.expect("resp").status().is_success());

    let password = Command::new(BIN)
        .args(["admin", "initial-password", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .expect("initial-password");
    let password = String::from_utf8(password.stdout).expect("utf8");
    let resp = client
        .post(format!("{base}/api/v1/session"))
        .header("x-cairn-csrf", "1")
        .json(&serde_json::json!({"username": "admin", "password": password.trim()}))
        .send()
        .await
        .expect("login");
    assert!(resp.status().is_success(), "{}", resp.status());
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(cookie.starts_with("__Host-cairn_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/"),
        "{cookie}"
    );
}
