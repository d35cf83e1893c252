//! The Git webhook: verification and parsing of push events from GitHub, GitLab, Gitea and
//! Gogs, and the choice of which Applications a push refreshes (pure), plus the refresh handle.
//!
//! Owns, as Argo CD's `util/webhook` does:
//! - provider detection from the event header (`X-GitHub-Event`, `X-Gitlab-Event`,
//!   `X-Gitea-Event`, `X-Gogs-Event`);
//! - verification: GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, GitLab
//!   `X-Gitlab-Token: <secret>`, Gitea `X-Gitea-Signature` / Gogs `X-Gogs-Signature`: hex
//!   HMAC-SHA256 of the body. Comparisons are constant-time (`subtle`);
//! - parsing a push into [`PushEvent`]: the repository in all its clone forms, the pushed branch
//!   or tag, whether the default branch moved, and the changed files;
//! - matching ([`app_matches`]): an Application is refreshed when one of its sources has the same
//!   repository (host and path compared case-insensitively, scheme, user, port and `.git`
//!   ignored, so the SSH and HTTPS forms match) and its `targetRevision` is the pushed branch or
//!   tag (`HEAD` or empty = the default branch), and — when the Application carries
//!   `argocd.argoproj.io/manifest-generate-paths` — a changed file lies under one of those paths.
//!
//! Invariants:
//! - A secret never appears in `Debug`, `Display`, logs or errors ([`WebhookSecret`]).
//! - Unlike Argo CD, which accepts unsigned payloads when no secret is configured, cairn refuses
//!   a provider without a secret ([`WebhookError::NotConfigured`]): the route is reachable
//!   without a login, so the signature is its only authentication.
//! - Errors never carry the payload, only what was wrong with it.
//!
//! Not covered: Bitbucket and Azure DevOps payloads; semver-constraint `targetRevision`s (Argo CD
//! refreshes an app whose constraint the pushed tag satisfies; here only exact names match).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::gitops::types::{Application, ApplicationSource};

/// The annotation Argo CD (and cairn's controller) reads as a refresh request.
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";
/// The annotation restricting webhook refreshes to pushes touching these paths (`;`-separated,
/// relative to the source path unless they start with `/`).
pub const MANIFEST_PATHS_ANNOTATION: &str = "argocd.argoproj.io/manifest-generate-paths";
/// Default body limit: GitHub caps webhook payloads at 25 MB, so a larger body is not a push
/// from any supported provider and is refused before it is buffered.
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 25 * 1024 * 1024;

/// A webhook secret. Never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// `[webhook]` in `cairn.toml`: one secret per provider, and the body limit.
///
/// Environment: `CAIRN_WEBHOOK_GITHUB_SECRET`, `CAIRN_WEBHOOK_GITLAB_SECRET`,
/// `CAIRN_WEBHOOK_GITEA_SECRET`, `CAIRN_WEBHOOK_GOGS_SECRET` (see [`WebhookConfig::apply_env`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// GitHub's webhook secret (HMAC key of `X-Hub-Signature-256`).
    pub github_secret: Option<WebhookSecret>,
    /// GitLab's secret token (`X-Gitlab-Token`).
    pub gitlab_secret: Option<WebhookSecret>,
    /// Gitea's webhook secret (HMAC key of `X-Gitea-Signature`).
    pub gitea_secret: Option<WebhookSecret>,
    /// Gogs' webhook secret (HMAC key of `X-Gogs-Signature`).
    pub gogs_secret: Option<WebhookSecret>,
    /// Largest accepted body, in bytes.
    pub max_payload_bytes: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            github_secret: None,
            gitlab_secret: None,
            gitea_secret: None,
            gogs_secret: None,
            max_payload_bytes: DEFAULT_MAX_PAYLOAD_BYTES,
        }
    }
}

impl WebhookConfig {
    /// Applies the `CAIRN_WEBHOOK_*_SECRET` variables (an empty value unsets the secret).
    pub fn apply_env(&mut self, env: &HashMap<String, String>) {
        let vars: [(&str, &mut Option<WebhookSecret>); 4] = [
            ("CAIRN_WEBHOOK_GITHUB_SECRET", &mut self.github_secret),
            ("CAIRN_WEBHOOK_GITLAB_SECRET", &mut self.gitlab_secret),
            ("CAIRN_WEBHOOK_GITEA_SECRET", &mut self.gitea_secret),
            ("CAIRN_WEBHOOK_GOGS_SECRET", &mut self.gogs_secret),
        ];
        for (var, slot) in vars {
            if let Some(v) = env.get(var) {
                *slot = (!v.is_empty()).then(|| WebhookSecret::new(v.clone()));
            }
        }
    }

    /// The secret configured for `provider`.
    pub fn secret(&self, provider: Provider) -> Option<&WebhookSecret> {
        match provider {
            Provider::GitHub => self.github_secret.as_ref(),
            Provider::GitLab => self.gitlab_secret.as_ref(),
            Provider::Gitea => self.gitea_secret.as_ref(),
            Provider::Gogs => self.gogs_secret.as_ref(),
        }
        .filter(|s| !s.0.is_empty())
    }
}

/// A Git hosting provider whose push events cairn understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// GitHub (and GitHub Enterprise).
    GitHub,
    /// GitLab.
    GitLab,
    /// Gitea (and Forgejo, which sends the same headers).
    Gitea,
    /// Gogs.
    Gogs,
}

impl Provider {
    /// Lower-case name, used in logs, metrics and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitHub => "github",
            Self::GitLab => "gitlab",
            Self::Gitea => "gitea",
            Self::Gogs => "gogs",
        }
    }

    /// The header carrying the signature or token.
    pub fn signature_header(self) -> &'static str {
        match self {
            Self::GitHub => "x-hub-signature-256",
            Self::GitLab => "x-gitlab-token",
            Self::Gitea => "x-gitea-signature",
            Self::Gogs => "x-gogs-signature",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a webhook request was refused. No variant carries the payload or a secret.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No `X-GitHub-Event` / `X-Gitlab-Event` / `X-Gitea-Event` / `X-Gogs-Event` header.
    #[error(
        "unknown webhook provider: expected one of the headers X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event, X-Gogs-Event"
    )]
    UnknownProvider,
    /// No secret is configured for this provider, so its requests cannot be authenticated.
    #[error(
        "webhook secret for {provider} is not configured (set webhook.{provider}_secret); refusing unauthenticated events"
    )]
    NotConfigured {
        /// The provider.
        provider: Provider,
    },
    /// The signature/token header is missing.
    #[error("{provider} webhook: header {header} is missing")]
    MissingSignature {
        /// The provider.
        provider: Provider,
        /// The header expected.
        header: &'static str,
    },
    /// The signature/token does not match the configured secret.
    #[error("{provider} webhook: signature in {header} does not match the configured secret")]
    BadSignature {
        /// The provider.
        provider: Provider,
        /// The header checked.
        header: &'static str,
    },
    /// The body is larger than `webhook.max_payload_bytes`.
    #[error("webhook payload larger than {limit} bytes (webhook.max_payload_bytes)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The payload is not the JSON shape the provider documents.
    #[error("{provider} webhook: invalid push payload: {message}")]
    BadPayload {
        /// The provider.
        provider: Provider,
        /// What was wrong (never the payload itself).
        message: String,
    },
    /// Refreshing a matched Application failed.
    #[error("refresh of application {namespace}/{name} failed: {message}")]
    Refresh {
        /// The Application's namespace.
        namespace: String,
        /// The Application's name.
        name: String,
        /// The cluster's answer.
        message: String,
    },
}

impl WebhookError {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnknownProvider => "unknown_provider",
            Self::NotConfigured { .. } => "not_configured",
            Self::MissingSignature { .. } => "missing_signature",
            Self::BadSignature { .. } => "bad_signature",
            Self::TooLarge { .. } => "too_large",
            Self::BadPayload { .. } => "bad_payload",
            Self::Refresh { .. } => "refresh",
        }
    }
}

/// The provider and event name of a request, from its event header.
pub fn detect(headers: &HeaderMap) -> Result<(Provider, String), WebhookError> {
    // Gitea also sends X-Gogs-Event and X-GitHub-Event for compatibility (and Gogs
    // X-GitHub-Event): a provider's own header wins, so it is checked with its own secret.
    let by_priority = [
        ("x-gitea-event", Provider::Gitea),
        ("x-gogs-event", Provider::Gogs),
        ("x-github-event", Provider::GitHub),
        ("x-gitlab-event", Provider::GitLab),
    ];
    for (header, provider) in by_priority {
        if let Some(v) = headers.get(header) {
            let event = v.to_str().unwrap_or_default().trim().to_string();
            return Ok((provider, event));
        }
    }
    Err(WebhookError::UnknownProvider)
}

/// Verifies the request against the provider's secret.
pub fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    config: &WebhookConfig,
) -> Result<(), WebhookError> {
    let secret = config
        .secret(provider)
        .ok_or(WebhookError::NotConfigured { provider })?;
    let header = provider.signature_header();
    let value = headers
        .get(header)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or(WebhookError::MissingSignature { provider, header })?;
    let bad = WebhookError::BadSignature { provider, header };
    let ok = match provider {
        // Compared as digests so that neither the content nor the length of the secret leaks
        // through timing.
        Provider::GitLab => bool::from(
            Sha256::digest(value.as_bytes())
                .as_slice()
                .ct_eq(Sha256::digest(secret.bytes()).as_slice()),
        ),
        Provider::GitHub => {
            let hex_sig = value.strip_prefix("sha256=").ok_or(bad)?;
            hmac_matches(secret, body, hex_sig)
        }
        Provider::Gitea | Provider::Gogs => hmac_matches(secret, body, value),
    };
    if ok {
        Ok(())
    } else {
        Err(WebhookError::BadSignature { provider, header })
    }
}

fn hmac_matches(secret: &WebhookSecret, body: &[u8], hex_sig: &str) -> bool {
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let expected = hmac_sha256(secret.bytes(), body);
    bool::from(given.as_slice().ct_eq(&expected))
}

/// HMAC-SHA256 (RFC 2104) over sha2; 64-byte block.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let mut inner = Sha256::new();
    inner.update(ipad);
    inner.update(message);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(opad);
    outer.update(inner);
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer.finalize());
    out
}

/// A push, as far as refreshing Applications is concerned.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PushEvent {
    /// The provider it came from.
    pub provider: Provider,
    /// The repository in every form the payload gives (web, HTTPS clone, SSH clone).
    pub repo_urls: Vec<String>,
    /// The branch or tag name (without `refs/heads/` / `refs/tags/`).
    pub revision: String,
    /// Whether the ref is a tag.
    pub tag: bool,
    /// Whether the pushed ref is the repository's default branch (moves `HEAD`).
    pub touched_head: bool,
    /// Files added, modified or removed by the pushed commits (repository-relative).
    pub changed_files: Vec<String>,
}

impl serde::Serialize for Provider {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Parses a verified body. `Ok(None)` for events that are not pushes (GitHub's `ping`, say),
/// which are acknowledged and ignored.
pub fn parse(
    provider: Provider,
    event: &str,
    body: &[u8],
) -> Result<Option<PushEvent>, WebhookError> {
    let is_push = match provider {
        Provider::GitHub | Provider::Gitea | Provider::Gogs => event.eq_ignore_ascii_case("push"),
        Provider::GitLab => {
            event.eq_ignore_ascii_case("Push Hook")
                || event.eq_ignore_ascii_case("Tag Push Hook")
                || event.eq_ignore_ascii_case("System Hook")
        }
    };
    if !is_push {
        return Ok(None);
    }
    let bad = |message: &str| WebhookError::BadPayload {
        provider,
        message: message.to_string(),
    };
    let doc: Value = serde_json::from_slice(body).map_err(|e| bad(&format!("not JSON ({e})")))?;
    let git_ref = doc
        .get("ref")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("field `ref` (string) is missing"))?;
    let (repo, url_fields): (&Value, &[&str]) = match provider {
        Provider::GitLab => (
            doc.get("project")
                .or_else(|| doc.get("repository"))
                .ok_or_else(|| bad("field `project` (object) is missing"))?,
            &[
                "web_url",
                "git_http_url",
                "git_ssh_url",
                "http_url",
                "ssh_url",
                "url",
                "homepage",
            ],
        ),
        _ => (
            doc.get("repository")
                .ok_or_else(|| bad("field `repository` (object) is missing"))?,
            &["html_url", "clone_url", "ssh_url", "git_url", "url"],
        ),
    };
    let mut repo_urls: Vec<String> = Vec::new();
    for field in url_fields {
        if let Some(u) = repo.get(*field).and_then(Value::as_str)
            && !u.is_empty()
            && !repo_urls.iter().any(|x| x == u)
        {
            repo_urls.push(u.to_string());
        }
    }
    if repo_urls.is_empty() {
        return Err(bad(
            "the repository object has no URL (html_url/clone_url/web_url)",
        ));
    }
    let (revision, tag) = match git_ref.strip_prefix("refs/tags/") {
        Some(t) => (t.to_string(), true),
        None => (
            git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(git_ref)
                .to_string(),
            false,
        ),
    };
    let default_branch = repo.get("default_branch").and_then(Value::as_str);
    let touched_head = !tag && default_branch.is_some_and(|b| b == revision);
    let mut changed_files: Vec<String> = Vec::new();
    for commit in doc
        .get("commits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for key in ["added", "modified", "removed"] {
            for f in commit
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(f) = f.as_str()
                    && !changed_files.iter().any(|x| x == f)
                {
                    changed_files.push(f.to_string());
                }
            }
        }
    }
    Ok(Some(PushEvent {
        provider,
        repo_urls,
        revision,
        tag,
        touched_head,
        changed_files,
    }))
}

/// `(host, path)` of a repository URL, lower-cased, without scheme, user, port, leading or
/// trailing `/` and `.git`: the identity two spellings of one repository share.
pub fn repo_identity(url: &str) -> Option<(String, String)> {
    let url = url.trim().to_lowercase();
    let (host, path) = match url.split_once("://") {
        // A local repository (the lab serves Git from disk): the path is the identity.
        Some(("file", rest)) => ("file".to_string(), rest.to_string()),
        Some((_, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = match host_port.rsplit_once(':') {
                Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
                _ => host_port,
            };
            (host.to_string(), path.to_string())
        }
        None => {
            // scp-like: [user@]host:path
            let (user_host, path) = url.split_once(':')?;
            let host = user_host.rsplit_once('@').map_or(user_host, |(_, h)| h);
            (host.to_string(), path.to_string())
        }
    };
    let mut path = path.trim_matches('/').to_string();
    if let Some(p) = path.strip_suffix(".git") {
        path = p.trim_end_matches('/').to_string();
    }
    if host.is_empty() || path.is_empty() {
        return None;
    }
    Some((host, path))
}

/// Whether two repository URLs name the same repository (see [`repo_identity`]).
pub fn same_repo(a: &str, b: &str) -> bool {
    match (repo_identity(a), repo_identity(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Whether a source's `targetRevision` follows the pushed ref (Argo CD's
/// `sourceRevisionHasChanged`, without semver constraints).
pub fn revision_matches(target_revision: Option<&str>, push: &PushEvent) -> bool {
    let target = target_revision.unwrap_or("").trim();
    let target = target
        .strip_prefix("refs/heads/")
        .or_else(|| target.strip_prefix("refs/tags/"))
        .unwrap_or(target);
    if target.is_empty() || target == "HEAD" {
        return push.touched_head;
    }
    target == push.revision
}

fn source_matches(source: &ApplicationSource, push: &PushEvent) -> bool {
    let Some(repo) = source.repo_url.as_deref() else {
        return false;
    };
    push.repo_urls.iter().any(|u| same_repo(u, repo))
        && revision_matches(source.target_revision.as_deref(), push)
}

/// Whether the push should refresh `app`: a source matches by repository and revision, and the
/// changed files touch the `manifest-generate-paths` annotation's paths when it is set (Argo CD
/// refreshes when no file list is known).
pub fn app_matches(app: &Application, push: &PushEvent) -> bool {
    let sources: Vec<&ApplicationSource> = app
        .spec
        .sources
        .iter()
        .flatten()
        .chain(app.spec.source.iter())
        .collect();
    let matching: Vec<&&ApplicationSource> =
        sources.iter().filter(|s| source_matches(s, push)).collect();
    if matching.is_empty() {
        return false;
    }
    let paths = app
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MANIFEST_PATHS_ANNOTATION))
        .map(String::as_str)
        .unwrap_or("");
    if paths.trim().is_empty() || push.changed_files.is_empty() {
        return true;
    }
    matching.iter().any(|source| {
        let base = source.path.as_deref().unwrap_or("");
        paths
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| refresh_path(base, p))
            .any(|dir| {
                push.changed_files
                    .iter()
                    .any(|f| dir.is_empty() || f == &dir || f.starts_with(&format!("{dir}/")))
            })
    })
}

/// A `manifest-generate-paths` entry as a repository-relative directory: `/x` from the root,
/// otherwise relative to the source path (`.` is the source path itself; `..` climbs).
fn refresh_path(base: &str, entry: &str) -> String {
    let joined = match entry.strip_prefix('/') {
        Some(abs) => abs.to_string(),
        None => format!("{base}/{entry}"),
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in joined.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// How hard a refresh is: `normal` re-compares with the cached manifests of a new revision,
/// `hard` also invalidates the render cache (Argo CD's two refresh types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshKind {
    /// `argocd.argoproj.io/refresh: normal`.
    Normal,
    /// `argocd.argoproj.io/refresh: hard`.
    Hard,
}

impl RefreshKind {
    /// The annotation value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Hard => "hard",
        }
    }

    /// Parses `normal` / `hard` (the API's `?refresh=` values).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "normal" => Some(Self::Normal),
            "hard" => Some(Self::Hard),
            _ => None,
        }
    }
}

/// The refresh handle the webhook (and the API) calls for each matched Application.
///
/// The GitOps controller implements it to enqueue the app directly (no API round trip, which is
/// what makes push → applied fast); until it is wired, [`AnnotationRefresher`] asks for the
/// refresh the Argo CD way, through the `argocd.argoproj.io/refresh` annotation that the
/// controller watches and clears.
pub trait AppRefresher: Send + Sync {
    /// Requests a refresh of one Application.
    fn refresh<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        kind: RefreshKind,
    ) -> BoxFuture<'a, Result<(), WebhookError>>;
}

/// Requests refreshes by setting the `argocd.argoproj.io/refresh` annotation (merge patch).
#[derive(Clone)]
pub struct AnnotationRefresher {
    client: kube::Client,
}

impl AnnotationRefresher {
    /// A refresher writing through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    /// As a shareable trait object.
    pub fn shared(client: kube::Client) -> Arc<dyn AppRefresher> {
        Arc::new(Self::new(client))
    }
}

impl AppRefresher for AnnotationRefresher {
    fn refresh<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        kind: RefreshKind,
    ) -> BoxFuture<'a, Result<(), WebhookError>> {
        Box::pin(async move {
            let api: kube::Api<Application> = kube::Api::namespaced(self.client.clone(), namespace);
            let patch = serde_json::json!({
                "metadata": {"annotations": {REFRESH_ANNOTATION: kind.as_str()}}
            });
            api.patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .map(|_| ())
            .map_err(|e| WebhookError::Refresh {
                namespace: namespace.to_string(),
                name: name.to_string(),
                message: e.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests;
