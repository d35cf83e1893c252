//! The client side of the CLI: the per-user config file, the HTTP client and output formats.
//!
//! Like `argocd`, the CLI remembers the server of the last `login` and its credential in a
//! per-user file (`$CAIRN_CLI_CONFIG`, else `$XDG_CONFIG_HOME/cairn/config.toml`, else
//! `~/.config/cairn/config.toml`), written with mode 0600.

pub mod app;
pub mod events;
pub mod lineage;
pub mod model;
mod output;
pub mod proj;
pub mod promote;
pub mod sso;
pub mod wf;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub use output::OutputFormat;
use output::{Table, print_value};

/// The per-user CLI configuration.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientConfig {
    /// URL of the server used by commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_server: Option<String>,
    /// Credentials per server URL.
    #[serde(default)]
    pub servers: BTreeMap<String, ServerEntry>,
}

/// One remembered server.
#[derive(Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerEntry {
    /// The bearer credential: a session id from a password login, or an API token.
    pub auth_token: String,
    /// Who the credential belongs to.
    #[serde(default)]
    pub user: String,
}

impl std::fmt::Debug for ServerEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerEntry")
            .field("auth_token", &"<redacted>")
            .field("user", &self.user)
            .finish()
    }
}

/// Where the CLI config lives.
pub fn config_path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_CLI_CONFIG") {
        return Ok(PathBuf::from(p));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set")?).join(".config"),
    };
    Ok(base.join("cairn").join("config.toml"))
}

impl ClientConfig {
    /// Reads the config; a missing file is an empty config.
    pub fn load() -> anyhow::Result<Self> {
        let path = config_path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("CLI config {} is not valid", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the config atomically with mode 0600 (it holds credentials).
    pub fn save(&self) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = config_path()?;
        let dir = path.parent().context("CLI config path has no parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = path.with_extension("toml.tmp");
        let text = toml::to_string(self).context("serializing CLI config")?;
        {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }
}

/// Reads one line from standard input without echoing it anywhere (for passwords).
pub fn read_secret_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading from standard input")?;
    let line = line.trim_end_matches(['\r', '\n']).to_string();
    if line.is_empty() {
        bail!("expected a password on standard input, got an empty line");
    }
    Ok(line)
}

fn http() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .user_agent(concat!("cairn-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

fn normalize(server: &str) -> anyhow::Result<String> {
    let s = server.trim_end_matches('/');
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        bail!("server {server:?} must start with http:// or https://");
    }
    Ok(s.to_string())
}

/// Turns an error response into a message naming the status and the server's explanation.
async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    let message = body
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("no explanation given");
    bail!("server answered {status}: {message}")
}

/// Logs in with a password; stores the session as the current server's credential.
pub async fn login_password(
    server: &str,
    username: &str,
    password: &str,
) -> anyhow::Result<String> {
    let server = normalize(server)?;
    let resp = http()?
        .post(format!("{server}/api/v1/session"))
        .header(crate::api::CSRF_HEADER, "1")
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let resp = check(resp).await?;
    let session = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.ends_with(crate::api::SESSION_COOKIE))
        .map(|(_, v)| v.to_string())
        .context("the server did not return a session")?;
    remember(&server, &session, username)?;
    Ok(username.to_string())
}

/// Logs in with an API token after checking it against the server.
pub async fn login_token(server: &str, token: &str) -> anyhow::Result<String> {
    let server = normalize(server)?;
    let resp = http()?
        .get(format!("{server}/api/v1/session/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("connecting to {server}"))?;
    let info: serde_json::Value = check(resp).await?.json().await?;
    let user = info
        .get("username")
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_string();
    remember(&server, token, &user)?;
    Ok(user)
}

fn remember(server: &str, token: &str, user: &str) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::load()?;
    cfg.servers.insert(
        server.to_string(),
        ServerEntry {
            auth_token: token.to_string(),
            user: user.to_string(),
        },
    );
    cfg.current_server = Some(server.to_string());
    cfg.save()
}

/// Forgets a server's credential.
pub fn logout(server: Option<&str>) -> anyhow::Result<()> {
    let mut cfg = ClientConfig::load()?;
    let server = match server {
        Some(s) => normalize(s)?,
        None => cfg
            .current_server
            .clone()
            .context("not logged in: run `cairn login` first")?,
    };
    cfg.servers.remove(&server);
    if cfg.current_server.as_deref() == Some(server.as_str()) {
        cfg.current_server = None;
    }
    cfg.save()?;
    println!("logged out of {server}");
    Ok(())
}

/// Prints the version.
pub fn print_version(format: OutputFormat) -> anyhow::Result<()> {
    let v = serde_json::json!({
        "version": crate::VERSION,
        "gitCommit": crate::GIT_COMMIT,
        "buildDate": crate::BUILD_DATE,
    });
    match format {
        OutputFormat::Table | OutputFormat::Wide => {
            println!(
                "cairn {} (commit {}, built {})",
                crate::VERSION,
                crate::GIT_COMMIT,
                crate::BUILD_DATE
            );
            Ok(())
        }
        other => print_value(&v, other),
    }
}

/// An authenticated connection to the current server.
pub struct Client {
    server: String,
    token: String,
    user: String,
    http: reqwest::Client,
}

impl Client {
    /// The current server from the CLI config.
    pub fn current() -> anyhow::Result<Self> {
        let mut cfg = ClientConfig::load()?;
        let server = cfg
            .current_server
            .clone()
            .context("not logged in: run `cairn login --server URL ...` first")?;
        let entry = cfg
            .servers
            .remove(&server)
            .with_context(|| format!("no credential stored for {server}: log in again"))?;
        Ok(Self {
            server,
            token: entry.auth_token,
            user: entry.user,
            http: http()?,
        })
    }

    fn account<'a>(&'a self, account: Option<&'a str>) -> &'a str {
        account.unwrap_or(&self.user)
    }

    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.server))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("connecting to {}", self.server))?;
        Ok(check(resp).await?.json().await?)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let resp = self
            .http
            .request(method, format!("{}{path}", self.server))
            .bearer_auth(&self.token)
            .header(crate::api::CSRF_HEADER, "1")
            .json(&body)
            .send()
            .await
            .with_context(|| format!("connecting to {}", self.server))?;
        Ok(check(resp).await?.json().await?)
    }

    /// `cairn account generate-token`.
    pub async fn generate_token(
        &self,
        account: Option<&str>,
        name: &str,
        expires_in: Option<&str>,
    ) -> anyhow::Result<()> {
        let account = self.account(account);
        let created = self
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/account/{account}/token"),
                serde_json::json!({ "name": name, "expiresIn": expires_in }),
            )
            .await?;
        let token = created
            .get("token")
            .and_then(|t| t.as_str())
            .context("the server returned no token")?;
        println!("{token}");
        Ok(())
    }

    /// `cairn account list-tokens`.
    pub async fn list_tokens(
        &self,
        account: Option<&str>,
        format: OutputFormat,
    ) -> anyhow::Result<()> {
        let account = self.account(account);
        let list = self
            .get(&format!("/api/v1/account/{account}/token"))
            .await?;
        Table::new(&["ID", "NAME", "CREATED", "EXPIRES"], &["LAST USED"])
            .columns(|t| {
                vec![
                    output::field(t, "/id"),
                    output::field(t, "/name"),
                    output::field(t, "/createdAt"),
                    output::field(t, "/expiresAt"),
                    output::field(t, "/lastUsedAt"),
                ]
            })
            .print_list(&list, format)
    }

    /// `cairn account revoke-token`.
    pub async fn revoke_token(&self, account: Option<&str>, id: &str) -> anyhow::Result<()> {
        let account = self.account(account);
        self.send(
            reqwest::Method::DELETE,
            &format!("/api/v1/account/{account}/token/{id}"),
            serde_json::json!({}),
        )
        .await?;
        println!("token {id} revoked");
        Ok(())
    }

    /// `cairn account list`.
    pub async fn account_list(&self, format: OutputFormat) -> anyhow::Result<()> {
        let list = self.get("/api/v1/account").await?;
        Table::new(&["NAME", "ENABLED", "CAPABILITIES"], &[])
            .columns(|a| {
                vec![
                    output::field(a, "/name"),
                    output::field(a, "/enabled"),
                    output::field(a, "/capabilities"),
                ]
            })
            .print_list(&list, format)
    }

    /// `cairn account get-user-info`.
    pub async fn userinfo(&self, format: OutputFormat) -> anyhow::Result<()> {
        let info = self.get("/api/v1/session/userinfo").await?;
        match format {
            OutputFormat::Table | OutputFormat::Wide => {
                println!("Logged In: {}", output::field(&info, "/loggedIn"));
                println!("Username: {}", output::field(&info, "/username"));
                println!("Groups: {}", output::field(&info, "/groups"));
                Ok(())
            }
            other => print_value(&info, other),
        }
    }

    /// `cairn account update-password`.
    pub async fn update_password(
        &self,
        account: Option<&str>,
        current: &str,
        new: &str,
    ) -> anyhow::Result<()> {
        let account = self.account(account);
        self.send(
            reqwest::Method::PUT,
            &format!("/api/v1/account/{account}/password"),
            serde_json::json!({ "currentPassword": current, "newPassword": new }),
        )
        .await?;
        println!("password updated for {account}");
        Ok(())
    }

    /// `cairn app list`.
    pub async fn app_list(
        &self,
        project: Option<&str>,
        format: OutputFormat,
    ) -> anyhow::Result<()> {
        let path = match project {
            Some(p) => format!("/api/v1/applications?project={p}"),
            None => "/api/v1/applications".to_string(),
        };
        let list = self.get(&path).await?;
        app_table().print_list(&list, format)
    }

    /// `cairn app get`.
    pub async fn app_get(&self, name: &str, format: OutputFormat) -> anyhow::Result<()> {
        let app = self.get(&format!("/api/v1/applications/{name}")).await?;
        app_table().print_one(&app, format)
    }

    /// `cairn wf list`.
    pub async fn wf_list(
        &self,
        namespace: Option<&str>,
        format: OutputFormat,
    ) -> anyhow::Result<()> {
        let path = match namespace {
            Some(ns) => format!("/api/v1/workflows/{ns}"),
            None => "/api/v1/workflows".to_string(),
        };
        let list = self.get(&path).await?;
        wf_table().print_list(&list, format)
    }

    /// `cairn wf get`.
    pub async fn wf_get(
        &self,
        namespace: &str,
        name: &str,
        format: OutputFormat,
    ) -> anyhow::Result<()> {
        let wf = self
            .get(&format!("/api/v1/workflows/{namespace}/{name}"))
            .await?;
        wf_table().print_one(&wf, format)
    }
}

fn app_table() -> Table {
    Table::new(
        &["NAME", "PROJECT", "SYNC STATUS", "HEALTH STATUS"],
        &["NAMESPACE", "REPO", "PATH", "TARGET"],
    )
    .columns(|a| {
        vec![
            output::field(a, "/metadata/name"),
            output::field(a, "/spec/project"),
            output::field(a, "/status/sync/status"),
            output::field(a, "/status/health/status"),
            output::field(a, "/spec/destination/namespace"),
            output::field(a, "/spec/source/repoURL"),
            output::field(a, "/spec/source/path"),
            output::field(a, "/spec/source/targetRevision"),
        ]
    })
}

fn wf_table() -> Table {
    Table::new(
        &["NAMESPACE", "NAME", "STATUS", "STARTED"],
        &["FINISHED", "MESSAGE"],
    )
    .columns(|w| {
        vec![
            output::field(w, "/metadata/namespace"),
            output::field(w, "/metadata/name"),
            output::field(w, "/status/phase"),
            output::field(w, "/status/startedAt"),
            output::field(w, "/status/finishedAt"),
            output::field(w, "/status/message"),
        ]
    })
}
