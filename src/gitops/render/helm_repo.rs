//! Charts from Helm repositories (`source.repoURL` an HTTP(S) Helm repository, `source.chart`,
//! `source.targetRevision` the chart version), pulled with the pinned `helm` binary into a
//! per-(repository, chart, version) cache under the data dir, then rendered exactly like a chart
//! in a Git checkout ([`super::render_chart`]).
//!
//! Argo CD semantics (argo-cd docs, "Helm" user guide, and `util/helm/client.go`): the chart's
//! "revision" is the chart version; an empty `targetRevision` or a semver constraint selects
//! the newest matching version; a repository Secret of `type: helm` carries `username`,
//! `password`, `tlsClientCertData`/`tlsClientCertKey` and `insecure`.
//!
//! Invariants:
//! - Credentials never reach argv, logs or errors: they are written to a 0600
//!   `repositories.yaml` in a per-call temporary `HOME`, read by `helm repo update` and
//!   `helm pull NAME/CHART` through `--repository-config` (argv is world-readable in /proc).
//! - Helm's config, cache and data dirs live in that temporary `HOME` ([`super::exec::run`]
//!   clears the environment and points the XDG dirs there), so calls share no state but the
//!   chart cache.
//! - Only an exact version is cached (a range may resolve differently tomorrow); a cached
//!   chart is moved in place with a rename, so a reader sees a whole chart or none.
//! - Errors name `source.chart` (unknown chart, unreachable repository) or
//!   `source.targetRevision` (unknown version) and carry helm's bounded stderr.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};

use super::RenderError;
use super::exec;

/// Name of the single repository entry in the per-call `repositories.yaml`.
const REPO_NAME: &str = "cairn";

/// Credentials of a Helm repository (from an Argo CD repository Secret of `type: helm`).
/// `Debug` redacts the secrets.
#[derive(Clone, Default, PartialEq)]
pub struct HelmRepoCredentials {
    /// Basic-auth user.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// PEM client certificate (`tlsClientCertData`).
    pub tls_client_cert: Option<String>,
    /// PEM client key (`tlsClientCertKey`).
    pub tls_client_key: Option<String>,
    /// Skip TLS verification (`insecure: "true"`).
    pub insecure: bool,
}

impl std::fmt::Debug for HelmRepoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelmRepoCredentials")
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_client_cert", &self.tls_client_cert.is_some())
            .field("tls_client_key", &self.tls_client_key.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Argo CD's repository Secret label.
const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

fn secret_text(data: &BTreeMap<String, ByteString>, key: &str) -> Option<String> {
    data.get(key)
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .map(|s| s.trim_end_matches('\n').to_owned())
        .filter(|s| !s.is_empty())
}

fn creds_of(data: &BTreeMap<String, ByteString>) -> HelmRepoCredentials {
    HelmRepoCredentials {
        username: secret_text(data, "username"),
        password: secret_text(data, "password"),
        tls_client_cert: secret_text(data, "tlsClientCertData"),
        tls_client_key: secret_text(data, "tlsClientCertKey"),
        insecure: secret_text(data, "insecure").is_some_and(|v| v.trim() == "true"),
    }
}

/// The credentials for Helm repository `url`, as Argo CD picks them: a Secret labelled
/// `repository` with `type: helm` and the same URL (trailing `/` ignored), else the
/// `repo-creds` template whose `url` is the longest prefix of `url`. `None`: anonymous.
pub fn credentials_for(url: &str, secrets: &[Secret]) -> Option<HelmRepoCredentials> {
    let norm = |u: &str| u.trim().trim_end_matches('/').to_owned();
    let wanted = norm(url);
    let empty = BTreeMap::new();
    let mut template: Option<(usize, HelmRepoCredentials)> = None;
    for s in secrets {
        let kind = s
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SECRET_TYPE_LABEL))
            .map(String::as_str);
        let data = s.data.as_ref().unwrap_or(&empty);
        let Some(secret_url) = secret_text(data, "url").map(|u| norm(&u)) else {
            continue;
        };
        match kind {
            Some("repository")
                if secret_url == wanted
                    && secret_text(data, "type").is_some_and(|t| t.trim() == "helm") =>
            {
                return Some(creds_of(data));
            }
            Some("repo-creds")
                if wanted.starts_with(&secret_url)
                    && template
                        .as_ref()
                        .is_none_or(|(len, _)| secret_url.len() > *len) =>
            {
                template = Some((secret_url.len(), creds_of(data)));
            }
            _ => {}
        }
    }
    template.map(|(_, c)| c)
}

/// Whether `version` names exactly one chart version (a semver, optionally `v`-prefixed), as
/// opposed to a constraint (`^1.0`, `>=1, <2`, `1.x`, `*`) or empty (latest).
pub fn is_exact_version(version: &str) -> bool {
    let v = version.trim().strip_prefix('v').unwrap_or(version.trim());
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    !v.is_empty()
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'))
}

/// The cache directory name of a chart version: the hex SHA-256 of the repository URL
/// (trailing `/` dropped), chart and version, so a URL cannot escape the cache root.
pub fn chart_cache_key(repo_url: &str, chart: &str, version: &str) -> String {
    let mut h = Sha256::new();
    for part in [repo_url.trim_end_matches('/'), chart, version] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// Checks that `url` is an HTTP(S) Helm repository (OCI registries, `oci://` or a bare host as
/// Argo CD's `enableOCI` takes them, are not pulled this way).
pub fn check_repo_url(url: &str) -> Result<(), RenderError> {
    let lower = url.trim().to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"));
    if rest.is_some_and(|r| !r.is_empty()) {
        Ok(())
    } else {
        Err(RenderError::InvalidOption {
            field: format!("source.repoURL: {url}"),
            expected: "an http:// or https:// Helm repository (OCI registries are not supported)"
                .to_owned(),
        })
    }
}

/// Checks the chart name: one path segment, so `NAME/CHART` and the untar dir stay in place.
pub fn check_chart_name(chart: &str) -> Result<(), RenderError> {
    let ok = !chart.is_empty()
        && chart != "."
        && chart != ".."
        && chart
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(RenderError::InvalidOption {
            field: format!("source.chart: {chart}"),
            expected: "a chart name (letters, digits, `-`, `_`, `.`)".to_owned(),
        })
    }
}

/// Double-quoted YAML scalar (JSON strings are YAML).
fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// The `repositories.yaml` of one repository named [`REPO_NAME`]; `cert_file`/`key_file` are
/// paths of the client certificate files when the credentials have them.
pub fn repositories_yaml(
    repo_url: &str,
    creds: Option<&HelmRepoCredentials>,
    cert_file: Option<&Path>,
    key_file: Option<&Path>,
) -> String {
    let mut out = format!(
        "apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n- name: {REPO_NAME}\n  url: {}\n",
        yaml_str(repo_url.trim_end_matches('/'))
    );
    if let Some(c) = creds {
        if let Some(u) = c.username.as_deref() {
            out.push_str(&format!("  username: {}\n", yaml_str(u)));
        }
        if let Some(p) = c.password.as_deref() {
            out.push_str(&format!("  password: {}\n", yaml_str(p)));
        }
        if c.insecure {
            out.push_str("  insecure_skip_tls_verify: true\n");
        }
    }
    if let Some(f) = cert_file {
        out.push_str(&format!(
            "  certFile: {}\n",
            yaml_str(&f.display().to_string())
        ));
    }
    if let Some(f) = key_file {
        out.push_str(&format!(
            "  keyFile: {}\n",
            yaml_str(&f.display().to_string())
        ));
    }
    out
}

/// `helm repo update` arguments (fails when the repository is unreachable).
pub fn update_args(repo_config: &Path, repo_cache: &Path) -> Vec<String> {
    vec![
        "repo".to_owned(),
        "update".to_owned(),
        REPO_NAME.to_owned(),
        "--fail-on-repo-update-fail".to_owned(),
        "--repository-config".to_owned(),
        repo_config.display().to_string(),
        "--repository-cache".to_owned(),
        repo_cache.display().to_string(),
    ]
}

/// `helm pull` arguments: the chart of [`REPO_NAME`], untarred into `dest/<chart>`.
pub fn pull_args(
    chart: &str,
    version: &str,
    dest: &Path,
    repo_config: &Path,
    repo_cache: &Path,
) -> Vec<String> {
    let mut args = vec![
        "pull".to_owned(),
        format!("{REPO_NAME}/{chart}"),
        "--untar".to_owned(),
        "--untardir".to_owned(),
        dest.display().to_string(),
        "--repository-config".to_owned(),
        repo_config.display().to_string(),
        "--repository-cache".to_owned(),
        repo_cache.display().to_string(),
    ];
    if !version.trim().is_empty() {
        args.extend(["--version".to_owned(), version.trim().to_owned()]);
    }
    args
}

/// Turns a helm failure into an error naming the field at fault: helm says "... version ...
/// not found" for a missing version and "... not found" for a missing chart.
pub fn classify_failure(err: RenderError, chart: &str, version: &str) -> RenderError {
    let RenderError::ToolFailed { stderr, .. } = &err else {
        return err;
    };
    let lower = stderr.to_ascii_lowercase();
    let (field, expected) = if lower.contains("version") && lower.contains("not found") {
        (
            format!("source.targetRevision: {version}"),
            format!("a version of chart `{chart}` in the repository; helm: {stderr}"),
        )
    } else if lower.contains("not found") && !lower.contains("404") {
        (
            format!("source.chart: {chart}"),
            format!("a chart in the repository; helm: {stderr}"),
        )
    } else {
        (
            format!("source.chart: {chart}"),
            format!("a reachable Helm repository serving the chart; helm: {stderr}"),
        )
    };
    RenderError::InvalidOption { field, expected }
}

/// What to pull.
#[derive(Clone, Debug)]
pub struct ChartRef<'a> {
    /// The Helm repository URL (`source.repoURL`).
    pub repo_url: &'a str,
    /// `source.chart`.
    pub chart: &'a str,
    /// `source.targetRevision`: exact version, constraint, or empty for the latest.
    pub version: &'a str,
    /// Credentials for the repository, if any.
    pub creds: Option<&'a HelmRepoCredentials>,
}

/// A pulled chart: `dir` is the chart directory; `_temp` keeps an uncached pull alive.
#[derive(Debug)]
pub struct PulledChart {
    /// The chart directory (holds `Chart.yaml`).
    pub dir: PathBuf,
    _temp: Option<exec::TempDir>,
}

impl PulledChart {
    /// The chart's own `version` (from `Chart.yaml`): what a version range resolved to.
    pub fn version(&self) -> Result<String, RenderError> {
        let path = self.dir.join("Chart.yaml");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        chart_yaml_version(&text).ok_or_else(|| RenderError::NotAnObject {
            file: "Chart.yaml".to_owned(),
            document: 0,
            reason: "no `version`".to_owned(),
        })
    }
}

/// The `version` of a `Chart.yaml` text.
pub fn chart_yaml_version(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_saphyr::from_str(text).ok()?;
    match &v["version"] {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> RenderError + '_ {
    move |e| RenderError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Pulls `chart` (or finds it in `cache_root` when the version is exact and was pulled
/// before). `bin` is the pinned helm binary.
pub async fn pull_chart(
    chart: &ChartRef<'_>,
    cache_root: &Path,
    bin: &Path,
    timeout: Duration,
) -> Result<PulledChart, RenderError> {
    check_repo_url(chart.repo_url)?;
    check_chart_name(chart.chart)?;
    let exact = is_exact_version(chart.version);
    let cached = cache_root
        .join(chart_cache_key(chart.repo_url, chart.chart, chart.version))
        .join(chart.chart);
    if exact && cached.join("Chart.yaml").is_file() {
        return Ok(PulledChart {
            dir: cached,
            _temp: None,
        });
    }
    let home = exec::TempDir::new("cairn-helm-pull")?;
    let repo_config = home.path().join("repositories.yaml");
    let (mut cert, mut key) = (None, None);
    if let Some(c) = chart.creds {
        if let Some(pem) = c.tls_client_cert.as_deref() {
            let p = home.path().join("client.crt");
            write_private(&p, pem)?;
            cert = Some(p);
        }
        if let Some(pem) = c.tls_client_key.as_deref() {
            let p = home.path().join("client.key");
            write_private(&p, pem)?;
            key = Some(p);
        }
    }
    write_private(
        &repo_config,
        &repositories_yaml(chart.repo_url, chart.creds, cert.as_deref(), key.as_deref()),
    )?;
    // An exact version is pulled straight into a staging dir next to its cache entry (same
    // filesystem, so the final rename is atomic even when the data dir is not on /tmp's).
    let stage = if exact {
        std::fs::create_dir_all(cache_root).map_err(io_err(cache_root))?;
        let name = home
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Some(cache_root.join(format!(".stage-{}-{name}", std::process::id())))
    } else {
        None
    };
    let out = stage.clone().unwrap_or_else(|| home.path().join("out"));
    let pulled = pull_into(chart, bin, timeout, &home, &out).await;
    let Some(stage) = stage else {
        return pulled.map(|dir| PulledChart {
            dir,
            _temp: Some(home),
        });
    };
    if let Err(e) = pulled {
        let _ = std::fs::remove_dir_all(&stage);
        return Err(e);
    }
    let parent = cached.parent().unwrap_or(cache_root).to_path_buf();
    if std::fs::rename(&stage, &parent).is_err() {
        // Another pull won the race; its copy is the same version.
        let _ = std::fs::remove_dir_all(&stage);
    }
    if cached.join("Chart.yaml").is_file() {
        Ok(PulledChart {
            dir: cached,
            _temp: None,
        })
    } else {
        Err(RenderError::Io {
            path: cached.display().to_string(),
            reason: "chart cache entry missing after pull".to_owned(),
        })
    }
}

/// `helm repo update` then `helm pull` into `out`; returns `out/<chart>`.
async fn pull_into(
    chart: &ChartRef<'_>,
    bin: &Path,
    timeout: Duration,
    home: &exec::TempDir,
    out: &Path,
) -> Result<PathBuf, RenderError> {
    let repo_config = home.path().join("repositories.yaml");
    let repo_cache = home.path().join("repository-cache");
    let inv = |args: Vec<String>| exec::Invocation {
        tool: "helm".to_owned(),
        args,
        cwd: home.path().to_path_buf(),
        env: Vec::new(),
    };
    exec::run(
        bin,
        &inv(update_args(&repo_config, &repo_cache)),
        home.path(),
        timeout,
    )
    .await
    .map_err(|e| classify_failure(e, chart.chart, chart.version))?;
    exec::run(
        bin,
        &inv(pull_args(
            chart.chart,
            chart.version,
            out,
            &repo_config,
            &repo_cache,
        )),
        home.path(),
        timeout,
    )
    .await
    .map_err(|e| classify_failure(e, chart.chart, chart.version))?;
    let pulled = out.join(chart.chart);
    if pulled.join("Chart.yaml").is_file() {
        Ok(pulled)
    } else {
        Err(RenderError::InvalidOption {
            field: format!("source.chart: {}", chart.chart),
            expected: "a chart archive whose top directory is the chart name".to_owned(),
        })
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), RenderError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(text.as_bytes()).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(label: &str, data: &[(&str, &str)]) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s", "labels": {SECRET_TYPE_LABEL: label}},
            "data": data.iter().map(|(k, v)| {
                (k.to_string(), base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v))
            }).collect::<BTreeMap<_, _>>(),
        }))
        .expect("secret")
    }

    #[test]
    fn credentials_follow_argo_cd_matching() {
        let secrets = [
            secret(
                "repository",
                &[
                    ("type", "git"),
                    ("url", "https://c.example/charts"),
                    ("username", "git"),
                ],
            ),
            secret(
                "repo-creds",
                &[("url", "https://c.example"), ("username", "short")],
            ),
            secret(
                "repo-creds",
                &[
                    ("url", "https://c.example/ch"),
                    ("username", "long"),
                    ("insecure", "true"),
                ],
            ),
            secret(
                "repository",
                &[
                    ("type", "helm"),
                    ("url", "https://h.example/"),
                    ("username", "u"),
                    ("password", "p"),
                    ("tlsClientCertData", "CERT"),
                ],
            ),
            secret("other", &[("type", "helm"), ("url", "https://o.example")]),
        ];
        let got = credentials_for("https://h.example", &secrets).expect("exact");
        assert_eq!(
            (
                got.username.as_deref(),
                got.password.as_deref(),
                got.tls_client_cert.as_deref(),
                got.insecure
            ),
            (Some("u"), Some("p"), Some("CERT"), false)
        );
        let got = credentials_for("https://c.example/charts", &secrets).expect("template");
        assert_eq!(
            (got.username.as_deref(), got.insecure),
            (Some("long"), true)
        );
        assert!(credentials_for("https://o.example", &secrets).is_none());
        assert!(credentials_for("https://x.example", &secrets).is_none());
    }

    #[test]
    fn exact_versions() {
        for (v, want) in [
            ("0.1.0", true),
            ("v1.2.3", true),
            ("1.2.3-rc.1+build", true),
            ("", false),
            ("1.2", false),
            ("^1.2.0", false),
            (">=1.0.0, <2.0.0", false),
            ("1.x.0", false),
            ("*", false),
            ("~1.2.3", false),
        ] {
            assert_eq!(is_exact_version(v), want, "{v:?}");
        }
    }

    #[test]
    fn cache_keys_separate_every_part() {
        let k = chart_cache_key("https://r/", "a", "1.0.0");
        assert_eq!(k, chart_cache_key("https://r", "a", "1.0.0"));
        assert_eq!(k.len(), 64);
        assert_ne!(k, chart_cache_key("https://r", "a", "1.0.1"));
        assert_ne!(k, chart_cache_key("https://r", "b", "1.0.0"));
        assert_ne!(k, chart_cache_key("https://s", "a", "1.0.0"));
        assert_ne!(
            chart_cache_key("https://r", "ab", "1.0.0"),
            chart_cache_key("https://r", "a", "b1.0.0")
        );
    }

    #[test]
    fn chart_yaml_versions() {
        assert_eq!(
            chart_yaml_version("apiVersion: v2\nname: a\nversion: 0.2.0\n").as_deref(),
            Some("0.2.0")
        );
        assert_eq!(chart_yaml_version("name: a\n"), None);
        assert_eq!(chart_yaml_version("version: ''\n"), None);
        assert_eq!(chart_yaml_version(": : :"), None);
    }

    #[test]
    fn repo_urls() {
        for ok in [
            "https://charts.example",
            "http://127.0.0.1:8080/sub/",
            "HTTPS://X",
        ] {
            assert!(check_repo_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "oci://ghcr.io/x",
            "registry-1.docker.io/bitnamicharts",
            "https://",
            "",
        ] {
            let err = check_repo_url(bad).expect_err(bad).to_string();
            assert!(
                err.contains("source.repoURL") && err.contains("OCI"),
                "{err}"
            );
        }
    }

    #[test]
    fn chart_names() {
        assert!(check_chart_name("redis-ha_x.1").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b"] {
            let err = check_chart_name(bad).expect_err(bad);
            assert!(err.to_string().contains("source.chart"), "{err}");
        }
    }

    #[test]
    fn args() {
        let (cfg, cache) = (Path::new("/h/repositories.yaml"), Path::new("/h/c"));
        assert_eq!(
            update_args(cfg, cache),
            [
                "repo",
                "update",
                "cairn",
                "--fail-on-repo-update-fail",
                "--repository-config",
                "/h/repositories.yaml",
                "--repository-cache",
                "/h/c"
            ]
        );
        assert_eq!(
            pull_args("app", " 0.2.0 ", Path::new("/h/out"), cfg, cache),
            [
                "pull",
                "cairn/app",
                "--untar",
                "--untardir",
                "/h/out",
                "--repository-config",
                "/h/repositories.yaml",
                "--repository-cache",
                "/h/c",
                "--version",
                "0.2.0"
            ]
        );
        assert!(!pull_args("app", "", Path::new("/o"), cfg, cache).contains(&"--version".into()));
    }

    #[test]
    fn repositories_file() {
        let creds = HelmRepoCredentials {
            username: Some("u\"ser".into()),
            password: Some("p:w".into()),
            insecure: true,
            ..Default::default()
        };
        insta::assert_snapshot!(repositories_yaml(
            "https://charts.example/",
            Some(&creds),
            Some(Path::new("/h/client.crt")),
            Some(Path::new("/h/client.key")),
        ));
        assert_eq!(
            repositories_yaml("http://r", None, None, None),
            "apiVersion: \"\"\ngenerated: \"0001-01-01T00:00:00Z\"\nrepositories:\n- name: cairn\n  url: \"http://r\"\n"
        );
        let dbg = format!("{creds:?}");
        assert!(!dbg.contains("p:w") && !dbg.contains("u\"ser"), "{dbg}");
    }

    #[test]
    fn failures_name_the_field() {
        let fail = |stderr: &str| RenderError::ToolFailed {
            tool: "helm".into(),
            command: "pull".into(),
            status: "exit status: 1".into(),
            stderr: stderr.into(),
        };
        for (stderr, want) in [
            (
                "Error: chart \"app\" version \"9.9.9\" not found in http://r repository",
                "source.targetRevision: 9.9.9",
            ),
            (
                "Error: chart \"nope\" not found in http://r repository",
                "source.chart: app",
            ),
            (
                "Error: looks like \"http://r\" is not a valid chart repository or cannot be reached",
                "reachable Helm repository",
            ),
        ] {
            let msg = classify_failure(fail(stderr), "app", "9.9.9").to_string();
            assert!(msg.contains(want) && msg.contains(stderr), "{msg}");
        }
        let other = RenderError::Aborted("x".into());
        assert!(matches!(
            classify_failure(other, "a", "1"),
            RenderError::Aborted(_)
        ));
    }
}
