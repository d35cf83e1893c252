//! `cairn login --sso`: single sign-on for the CLI, as `argocd login --sso`.
//!
//! The CLI listens on a loopback port, asks the server to start a login of the public client
//! `cliClientID` with the redirect URI `http://localhost:PORT/auth/callback`
//! (`POST /auth/cli/login`; the server keeps the PKCE verifier and the nonce), shows the
//! provider URL for the user's browser, receives the provider's redirect on its port, and hands
//! state and code to the server (`POST /auth/cli/token`), which validates the ID token and
//! answers a session id. That is stored like the credential of a password login.
//!
//! Invariants: one loopback listener, bounded by [`WAIT`]; a callback whose `state` is not the
//! one the server issued is refused and waited past; each request read is bounded
//! ([`MAX_REQUEST_BYTES`]); the code is never printed.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How long the CLI waits for the browser to come back.
pub const WAIT: Duration = Duration::from_secs(300);
/// Largest request read from the browser.
const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Argo CD's default `--sso-port`.
pub const DEFAULT_PORT: u16 = 8085;

/// The outcome of an SSO login.
#[derive(Debug, Clone)]
pub struct SsoLogin {
    /// The server's name for the user.
    pub username: String,
    /// The user's groups.
    pub groups: Vec<String>,
}

/// Logs in to `server` through its identity provider, listening on `127.0.0.1:port` (`0`: any
/// free port). `show_url` receives the provider URL for the browser (printed by the command;
/// driven directly by tests). Stores the session as the server's credential.
pub async fn login_sso(
    server: &str,
    port: u16,
    show_url: impl FnOnce(&str),
) -> anyhow::Result<SsoLogin> {
    let (login, token) = login_sso_token(server, port, show_url).await?;
    let server = super::normalize(server)?;
    super::remember(&server, &token, &login.username)?;
    Ok(login)
}

/// As [`login_sso`], returning the session id instead of storing it.
pub async fn login_sso_token(
    server: &str,
    port: u16,
    show_url: impl FnOnce(&str),
) -> anyhow::Result<(SsoLogin, String)> {
    let server = super::normalize(server)?;
    let listener = TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| {
            format!("listening on 127.0.0.1:{port} for the SSO callback (--sso-port)")
        })?;
    let port = listener.local_addr()?.port();
    let redirect_uri = format!("http://localhost:{port}/auth/callback");
    let http = super::http()?;
    let resp = http
        .post(format!("{server}/auth/cli/login"))
        .json(&serde_json::json!({ "redirectURI": redirect_uri }))
        .send()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let begun: serde_json::Value = checked_json(resp).await?;
    let (Some(url), Some(state)) = (begun["url"].as_str(), begun["state"].as_str()) else {
        bail!("the server's answer to /auth/cli/login has no url and state");
    };
    show_url(url);
    let query = tokio::time::timeout(WAIT, wait_for_callback(&listener, state))
        .await
        .with_context(|| {
            format!(
                "no SSO callback on {redirect_uri} within {} s",
                WAIT.as_secs()
            )
        })??;
    let resp = http
        .post(format!("{server}/auth/cli/token"))
        .json(&query)
        .send()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let done: serde_json::Value = checked_json(resp).await?;
    let token = done["token"]
        .as_str()
        .context("the server's answer to /auth/cli/token has no token")?
        .to_owned();
    let login = SsoLogin {
        username: done["username"].as_str().unwrap_or_default().to_owned(),
        groups: done["groups"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    };
    Ok((login, token))
}

async fn checked_json(resp: reqwest::Response) -> anyhow::Result<serde_json::Value> {
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"]
            .as_str()
            .or(body["message"].as_str())
            .unwrap_or("no explanation given");
        bail!("server answered {status}: {message}");
    }
    Ok(body)
}

/// Serves the loopback port until the provider's redirect with `state` arrives; answers the
/// browser with a short page. Returns the callback's query as the server wants it.
async fn wait_for_callback(
    listener: &TcpListener,
    state: &str,
) -> anyhow::Result<serde_json::Value> {
    loop {
        let (mut conn, _) = listener
            .accept()
            .await
            .context("accepting the SSO callback")?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST_BYTES {
            let n = match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut chunk)).await
            {
                Ok(Ok(n)) if n > 0 => n,
                _ => break,
            };
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("GET "))
            .and_then(|l| l.split(' ').next())
            .unwrap_or_default();
        let Some(query) = target.strip_prefix("/auth/callback?") else {
            let _ = respond(&mut conn, "404 Not Found", "Not the SSO callback.").await;
            continue;
        };
        let params: std::collections::HashMap<String, String> =
            reqwest::Url::parse(&format!("http://localhost/?{query}"))
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default();
        if params.get("state").map(String::as_str) != Some(state) {
            let _ = respond(
                &mut conn,
                "400 Bad Request",
                "This callback is not for the login cairn started; ignored.",
            )
            .await;
            continue;
        }
        let ok = params.contains_key("code");
        let _ = respond(
            &mut conn,
            "200 OK",
            if ok {
                "Login complete: you may close this window and return to the terminal."
            } else {
                "The identity provider refused the login; see the terminal."
            },
        )
        .await;
        return Ok(serde_json::json!({
            "state": params.get("state"),
            "code": params.get("code"),
            "error": params.get("error"),
            "error_description": params.get("error_description"),
        }));
    }
}

async fn respond(
    conn: &mut tokio::net::TcpStream,
    status: &str,
    text: &str,
) -> std::io::Result<()> {
    let body = format!("<!doctype html><title>cairn</title><p>{text}</p>\n");
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    conn.shutdown().await
}
