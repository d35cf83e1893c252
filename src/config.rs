//! Server configuration: embedded defaults, an optional `cairn.toml`, `CAIRN_*` environment
//! variables and command-line overrides, merged in that order (later wins).
//!
//! Invariants:
//! - `cairn server` works with no file at all: every field has an embedded default.
//! - A file is parsed strictly (`deny_unknown_fields`); any error names the file, the line and
//!   column, and the dotted field (`server.listen`), so a typo is never silently ignored.
//! - The environment is passed in as data (an iterator of pairs), never read from the process
//!   inside the merge logic, so tests control it completely.
//! - The returned [`Config`] is validated as a whole (TLS pair, URL, log filter, timeouts) and its
//!   `server.data_dir` is always resolved to a concrete path.
//!
//! Environment variables (an explicit table; other `CAIRN_*` names are left to the CLI):
//!
//! | variable | field |
//! |---|---|
//! | `CAIRN_CONFIG` | path of the config file |
//! | `CAIRN_LISTEN` | `server.listen` |
//! | `CAIRN_DATA_DIR` | `server.data_dir` |
//! | `CAIRN_NAMESPACE` | `server.namespace` |
//! | `CAIRN_URL` | `server.url` |
//! | `CAIRN_TLS_CERT_FILE` | `server.tls_cert_file` |
//! | `CAIRN_TLS_KEY_FILE` | `server.tls_key_file` |
//! | `CAIRN_LOG_FORMAT` | `log.format` |
//! | `CAIRN_LOG_LEVEL` | `log.level` |
//! | `CAIRN_RBAC_POLICY_DEFAULT` | `rbac.policy_default` |
//! | `CAIRN_ADMIN_ENABLED` | `accounts.admin_enabled` |
//! | `CAIRN_WEBHOOK_{GITHUB,GITLAB,GITEA,GOGS}_SECRET` | `webhook.<provider>_secret` |

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use crate::telemetry::LogFormat;

/// The file looked up in the working directory when neither `--config` nor `CAIRN_CONFIG` names
/// one.
pub const DEFAULT_CONFIG_FILE: &str = "cairn.toml";

/// Errors from loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read (missing when named explicitly, permissions, ...).
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file that was named.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML or does not match the schema.
    #[error("{path}:{line}:{column}: {}{message}", field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Parse {
        /// The file being parsed.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// Dotted name of the field at the error position, when one can be determined.
        field: Option<String>,
        /// What was wrong, as reported by the TOML parser / schema.
        message: String,
    },
    /// A `CAIRN_*` environment variable has a value of the wrong shape.
    #[error("environment variable {var}={value:?}: expected {expected}")]
    Env {
        /// The variable name.
        var: &'static str,
        /// The value found.
        value: String,
        /// What a valid value looks like.
        expected: String,
    },
    /// The merged configuration is inconsistent or a value is out of range.
    #[error("invalid configuration: field `{field}`: {message}")]
    Invalid {
        /// Dotted name of the offending field.
        field: &'static str,
        /// What was expected.
        message: String,
    },
}

/// The whole cairn server configuration after merging all sources.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server, storage location and cluster settings (`[server]`).
    pub server: ServerConfig,
    /// Logging (`[log]`).
    pub log: LogConfig,
    /// Browser session lifetimes (`[session]`).
    pub session: SessionConfig,
    /// Local accounts and login lockout (`[accounts]`).
    pub accounts: AccountsConfig,
    /// Authorization policy (`[rbac]`).
    pub rbac: RbacConfig,
    /// Git webhook secrets per provider and body limit (`[webhook]`; secrets never printed).
    pub webhook: crate::gitops::webhook::WebhookConfig,
    /// The workflow controller (`[workflow]`).
    pub workflow: WorkflowConfig,
    /// The GitOps controller (`[gitops]`).
    pub gitops: GitopsConfig,
    /// Event sources, the bus and sensors (`[events]`).
    pub events: EventsConfig,
    /// OpenID Connect single sign-on (`[oidc]`, Argo CD's `oidc.config` keys); none: local
    /// accounts only.
    pub oidc: Option<crate::auth::oidc::OidcConfig>,
    /// Promotion by Git commit (`[[promotion]]` entries, first match wins; see
    /// `lineage::promote::rule`).
    pub promotion: Vec<crate::lineage::promote::rule::PromotionRule>,
    /// The lineage graph (`[lineage]`).
    pub lineage: LineageConfig,
}

/// `[lineage]` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct LineageConfig {
    /// Workflow runs created longer ago than this leave the lineage graph (with their
    /// executions and the artifacts only they touched), unless a registered model version or a
    /// later run depends on them (`lineage::retention`). `0s` (the default): kept forever.
    #[serde(deserialize_with = "de_duration")]
    pub retention_max_age: Duration,
}

/// `[server]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server binds. Default `127.0.0.1:8080` (loopback only: exposing cairn is
    /// an explicit decision).
    pub listen: SocketAddr,
    /// Directory holding `cairn.redb` and `initial-admin-password`. When unset (empty in the
    /// file): `$CAIRN_DATA_DIR`, else `/var/lib/cairn` when running as root, else
    /// `$XDG_STATE_HOME/cairn`, else `~/.local/state/cairn`. Always resolved after loading.
    pub data_dir: PathBuf,
    /// Kubernetes namespace holding cairn's control objects (Applications, AppProjects), as Argo
    /// CD's `argocd` namespace. Default `argocd`.
    pub namespace: String,
    /// External base URL (e.g. `https://cairn.example.com`), used for Origin checks on
    /// state-changing requests and for SSO redirects. Optional.
    pub url: Option<String>,
    /// PEM certificate chain for serving HTTPS directly. Must be set together with
    /// `tls_key_file`.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for serving HTTPS directly. Must be set together with `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Mark cookies `Secure` (and use the `__Host-` prefix) even without TLS configured here:
    /// set `true` behind a TLS-terminating proxy. Default `false`; cookies are always `Secure`
    /// when TLS is configured (see [`ServerConfig::use_secure_cookies`]).
    pub secure_cookies: bool,
}

/// `[log]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Output format: `text` (human-readable, default) or `json`.
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directive string. Default `info`.
    pub level: String,
}

/// `[session]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A session unused for this long expires. Default `30m`.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// A session expires this long after login, however active. Default `24h`.
    #[serde(deserialize_with = "de_duration")]
    pub absolute_timeout: Duration,
}

/// `[accounts]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Whether the built-in `admin` account may log in. Default `true`.
    pub admin_enabled: bool,
    /// Consecutive failed logins after which an account is locked; `0` disables lockout.
    /// Default `5` (Argo CD's default).
    pub max_failed_logins: u32,
    /// How long a locked account stays locked. Default `5m`.
    #[serde(deserialize_with = "de_duration")]
    pub lockout: Duration,
    /// Extra local accounts (`[accounts.users.<name>]`), besides `admin`.
    pub users: BTreeMap<String, UserConfig>,
}

/// One extra local account (`[accounts.users.<name>]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserConfig {
    /// What the account may do: `login` (UI/CLI password login) and/or `apiKey` (API tokens).
    /// Default `["login"]`.
    pub capabilities: Vec<Capability>,
    /// Whether the account may authenticate at all. Default `true`.
    pub enabled: bool,
}

/// A local account capability, as Argo CD's `accounts.<name>: apiKey, login`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum Capability {
    /// May log in with a password.
    #[serde(rename = "login")]
    Login,
    /// May create and use API tokens.
    #[serde(rename = "apiKey")]
    ApiKey,
}

impl Capability {
    /// The name used in the configuration (`login`, `apiKey`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::ApiKey => "apiKey",
        }
    }
}

/// `[rbac]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RbacConfig {
    /// Policy lines in Argo CD's `policy.csv` format. Default empty (built-in roles only).
    pub policy_csv: String,
    /// Role every authenticated subject has (`policy.default`). Default `role:readonly`; an
    /// empty string means none.
    pub policy_default: String,
    /// Which SSO token claims besides the subject feed RBAC subjects (`scopes`). Default
    /// `["groups"]`.
    pub scopes: Vec<String>,
}

/// `[workflow]` section: the workflow controller.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkflowConfig {
    /// Image holding the static cairn binary that step pods run as their executor. Default
    /// `localhost/cairn/executor:<version>` (what `make executor` builds).
    pub executor_image: String,
    /// Whether the controller creates the executor's Role and RoleBinding in each namespace
    /// that runs workflows (for the workflow's service account). Default `true`.
    pub manage_executor_rbac: bool,
    /// Bytes of each step's log kept in the archive (the end of the log). Default 1 MiB.
    pub archive_log_limit_bytes: usize,
    /// Workflows reconciled concurrently. Default `32` (Argo's `--workflow-workers`): a
    /// reconcile mostly waits on the apiserver, so a burst of submissions needs many in flight.
    pub workers: usize,
    /// Namespaces whose Workflows and CronWorkflows this server runs; empty (the default): all,
    /// as Argo's controller without `--namespaced`.
    pub namespaces: Vec<String>,
    /// Argo's `instanceID`: when set, only Workflows/CronWorkflows labelled
    /// `workflows.argoproj.io/controller-instanceid=<id>` are run here; when unset (the
    /// default), only those without the label.
    pub instance_id: Option<String>,
    /// Base URL at which step pods reach cairn's executor routes (artifact upload/download of
    /// the built-in store), e.g. `http://172.31.250.1:8081`. Unset (the default): artifacts in
    /// the built-in store are refused with a message naming this setting.
    pub executor_url: Option<String>,
    /// An extra listener serving only the executor routes (plain HTTP), on an address pods can
    /// reach (a node or bridge address), so `[server] listen` can stay on loopback. Default
    /// none: the executor routes are served on `[server] listen` only.
    pub executor_listen: Option<std::net::SocketAddr>,
    /// Largest artifact the built-in store accepts, in bytes. Default 1 GiB.
    pub artifact_max_bytes: u64,
    /// Argo's image index (the `images` of its workflow-controller ConfigMap): for each image
    /// reference, exactly as templates write it, its `entrypoint` and `cmd`. A step run by the
    /// executor that gives no `command` runs `entrypoint` + its `args` (or `cmd`), since the
    /// executor runs the argv itself and cairn cannot read image configs. Default: empty.
    /// `[workflow.images."argoproj/argosay:v2"]` then `entrypoint = ["/argosay"]`.
    pub images: std::collections::BTreeMap<String, crate::workflow::pod::ImageCommand>,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            executor_image: crate::workflow::pod::default_executor_image(),
            manage_executor_rbac: true,
            archive_log_limit_bytes: crate::workflow::archive::DEFAULT_NODE_LOG_LIMIT,
            workers: 32,
            namespaces: Vec::new(),
            instance_id: None,
            executor_url: None,
            executor_listen: None,
            artifact_max_bytes: 1024 * 1024 * 1024,
            images: std::collections::BTreeMap::new(),
        }
    }
}

/// `[gitops]` section: the GitOps (Application) controller.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitopsConfig {
    /// Whether the controller runs (when a cluster is configured). Default `true`.
    pub enabled: bool,
    /// Control namespace of Applications and AppProjects. Empty (default): `server.namespace`
    /// (`argocd` unless changed), so there is one place to set it.
    pub namespace: String,
    /// Further namespaces whose Applications are reconciled (Argo CD's "applications in any
    /// namespace"); their tracking ids are `<namespace>_<name>`. Default none.
    pub namespaces: Vec<String>,
    /// How long a resolved branch or tag is trusted before asking the remote again. Default
    /// `180s` (Argo CD's `timeout.reconciliation`).
    #[serde(deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// Upper bound of the random delay added to each resync. Default `60s` (Argo CD's jitter).
    #[serde(deserialize_with = "de_duration")]
    pub poll_jitter: Duration,
    /// How often each Application is compared with the cluster again (drift, self-heal).
    /// Default `30s`.
    #[serde(deserialize_with = "de_duration")]
    pub resync_interval: Duration,
    /// Bound of one render (kustomize, helm). Default `90s` (Argo CD's repo-server timeout).
    #[serde(deserialize_with = "de_duration")]
    pub render_timeout: Duration,
    /// Applications reconciled concurrently. Default `4`.
    pub workers: usize,
    /// Argo CD's `installationID`: set it when several cairn (or Argo CD) installations manage
    /// one cluster, so none prunes another's objects. Default none.
    pub installation_id: String,
}

impl Default for GitopsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            namespace: String::new(),
            namespaces: Vec::new(),
            poll_interval: Duration::from_secs(180),
            poll_jitter: Duration::from_secs(60),
            resync_interval: Duration::from_secs(30),
            render_timeout: Duration::from_secs(90),
            workers: 4,
            installation_id: String::new(),
        }
    }
}

/// Which event bus backend carries events from sources to sensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BusBackend {
    /// The append-only log in cairn's redb (default).
    #[default]
    Embedded,
    /// NATS JetStream at `events.nats_url`.
    Nats,
}

/// `[events]` section: event sources, the bus and sensors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Whether EventSources and Sensors run (when a cluster is configured). Default `true`.
    pub enabled: bool,
    /// Namespaces whose EventSources and Sensors this server runs; empty (the default): all.
    pub namespaces: Vec<String>,
    /// The bus backend: `embedded` (default) or `nats`.
    pub bus: BusBackend,
    /// NATS server URL for `bus = "nats"`, e.g. `nats://127.0.0.1:4222`. An `EventBus` object
    /// with `jetstreamExotic.url` selects NATS too and takes precedence.
    pub nats_url: Option<String>,
    /// JetStream stream holding the events. Default `cairn-events`.
    pub nats_stream: String,
    /// Events older than this are dropped from the bus. Default `72h` (Argo's JetStream maxAge).
    #[serde(deserialize_with = "de_duration")]
    pub retention_max_age: Duration,
    /// The bus keeps at most this many bytes of events, dropping the oldest. Default 1 GiB.
    pub retention_max_bytes: u64,
    /// A delivery a sensor has not acknowledged within this is delivered again. Default `30s`.
    #[serde(deserialize_with = "de_duration")]
    pub ack_wait: Duration,
    /// Largest webhook request body accepted, in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            namespaces: Vec::new(),
            bus: BusBackend::Embedded,
            nats_url: None,
            nats_stream: "cairn-events".to_owned(),
            retention_max_age: Duration::from_secs(72 * 3600),
            retention_max_bytes: 1024 * 1024 * 1024,
            ack_wait: Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
        }
    }
}

impl GitopsConfig {
    /// The control namespace: `gitops.namespace`, else `server.namespace`.
    pub fn control_namespace<'a>(&'a self, server: &'a ServerConfig) -> &'a str {
        if self.namespace.is_empty() {
            &server.namespace
        } else {
            &self.namespace
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::new(),
            namespace: "argocd".to_owned(),
            url: None,
            tls_cert_file: None,
            tls_key_file: None,
            secure_cookies: false,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(24 * 3600),
        }
    }
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            admin_enabled: true,
            max_failed_logins: 5,
            lockout: Duration::from_secs(5 * 60),
            users: BTreeMap::new(),
        }
    }
}

impl Default for UserConfig {
    fn default() -> Self {
        Self {
            capabilities: vec![Capability::Login],
            enabled: true,
        }
    }
}

impl Default for RbacConfig {
    fn default() -> Self {
        Self {
            policy_csv: String::new(),
            policy_default: "role:readonly".to_owned(),
            scopes: vec!["groups".to_owned()],
        }
    }
}

impl ServerConfig {
    /// Whether cookies must be `Secure`: TLS is configured here or `secure_cookies` is set.
    pub fn use_secure_cookies(&self) -> bool {
        self.secure_cookies || self.tls_enabled()
    }

    /// Whether cairn serves HTTPS itself.
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert_file.is_some() && self.tls_key_file.is_some()
    }
}

impl RbacConfig {
    /// The default role, or `None` when `policy_default` is empty.
    pub fn default_role(&self) -> Option<&str> {
        let role = self.policy_default.trim();
        (!role.is_empty()).then_some(role)
    }
}

/// Command-line values that override both the file and the environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format`.
    pub log_format: Option<LogFormat>,
}

/// Facts about the host that the defaults depend on (kept apart so tests can fix them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Whether the process runs as root (uid 0): selects `/var/lib/cairn`.
    pub is_root: bool,
}

impl Host {
    /// Detects the current host: the owner of `/proc/self` is the process's effective uid.
    pub fn detect() -> Host {
        use std::os::unix::fs::MetadataExt;
        let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        Host { is_root }
    }
}

impl Config {
    /// Loads the configuration the server runs with.
    ///
    /// The file is `config_file` (the `--config` flag) if given, else `$CAIRN_CONFIG`, else
    /// `cairn.toml` in the working directory if present, else none. A named file must exist.
    pub fn load<I>(
        config_file: Option<&Path>,
        env: I,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let env: HashMap<String, String> = env.into_iter().collect();
        let explicit = config_file
            .map(Path::to_path_buf)
            .or_else(|| env.get("CAIRN_CONFIG").map(PathBuf::from));
        let path = match explicit {
            Some(path) => Some(path),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_FILE);
                default.is_file().then_some(default)
            }
        };
        let file = match &path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some((path.as_path(), text))
            }
            None => None,
        };
        Self::resolve(
            file.as_ref().map(|(p, t)| (*p, t.as_str())),
            &env,
            overrides,
            Host::detect(),
        )
    }

    /// Merges the sources given as data: `file` is `(path, contents)`. Pure apart from nothing:
    /// no process environment, no file system.
    pub fn resolve(
        file: Option<(&Path, &str)>,
        env: &HashMap<String, String>,
        overrides: &Overrides,
        host: Host,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some((path, text)) => parse_file(path, text)?,
            None => Config::default(),
        };
        apply_env(&mut config, env)?;
        if let Some(listen) = overrides.listen {
            config.server.listen = listen;
        }
        if let Some(dir) = &overrides.data_dir {
            config.server.data_dir = dir.clone();
        }
        if let Some(format) = overrides.log_format {
            config.log.format = format;
        }
        if config.server.data_dir.as_os_str().is_empty() {
            config.server.data_dir = default_data_dir(env, host);
        }
        config.validate()?;
        Ok(config)
    }

    /// Defaults with the given data directory: a ready configuration for tests and tools.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        let mut config = Config::default();
        config.server.data_dir = data_dir.into();
        config
    }

    /// Checks cross-field rules and value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        crate::lineage::promote::rule::validate_all(&self.promotion)
            .map_err(|e| invalid("promotion", &e.to_string()))?;
        if let Some(i) = self.promotion.iter().position(|r| r.uses("url"))
            && self.workflow.executor_url.is_none()
        {
            return Err(invalid(
                "promotion",
                &format!(
                    "[[promotion]] entry {i} uses {{{{url}}}}, the URL pods fetch a model version from; \
                     expected workflow.executor_url to be set (the address pods reach cairn at)"
                ),
            ));
        }
        if let Some(oidc) = &self.oidc {
            oidc.validate(s.url.as_deref())
                .map_err(|e| invalid(e.field, &e.message))?;
        }
        for ns in std::iter::once(&self.gitops.namespace)
            .filter(|n| !n.is_empty())
            .chain(&self.gitops.namespaces)
        {
            if !is_dns_label(ns) {
                return Err(invalid(
                    "gitops.namespaces",
                    &format!("{ns:?} is not a Kubernetes namespace name"),
                ));
            }
        }
        if self.gitops.workers == 0
            || self.gitops.render_timeout.is_zero()
            || self.gitops.resync_interval.is_zero()
        {
            return Err(invalid(
                "gitops",
                "workers, render_timeout and resync_interval must be greater than zero",
            ));
        }
        for ns in &self.events.namespaces {
            if !is_dns_label(ns) {
                return Err(invalid(
                    "events.namespaces",
                    &format!("{ns:?} is not a Kubernetes namespace name"),
                ));
            }
        }
        if self.events.bus == BusBackend::Nats && self.events.nats_url.is_none() {
            return Err(invalid(
                "events.nats_url",
                "must be set when events.bus is \"nats\" (e.g. nats://127.0.0.1:4222)",
            ));
        }
        if self.events.ack_wait.is_zero() || self.events.max_body_bytes == 0 {
            return Err(invalid(
                "events",
                "ack_wait and max_body_bytes must be greater than zero",
            ));
        }
        match (&s.tls_cert_file, &s.tls_key_file) {
            (Some(_), None) => {
                return Err(invalid(
                    "server.tls_key_file",
                    "must be set when server.tls_cert_file is set",
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "server.tls_cert_file",
                    "must be set when server.tls_key_file is set",
                ));
            }
            _ => {}
        }
        if let Some(url) = &s.url {
            check_url(url).map_err(|m| invalid("server.url", &m))?;
        }
        if !is_dns_label(&s.namespace) {
            return Err(invalid(
                "server.namespace",
                &format!(
                    "{:?} is not a Kubernetes namespace name (lowercase letters, digits and '-', \
                     at most 63 characters)",
                    s.namespace
                ),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid(
                "log.level",
                &format!("{:?} is not a valid filter: {e}", self.log.level),
            ));
        }
        if self.session.idle_timeout.is_zero() {
            return Err(invalid("session.idle_timeout", "must be greater than zero"));
        }
        if self.session.absolute_timeout.is_zero() {
            return Err(invalid(
                "session.absolute_timeout",
                "must be greater than zero",
            ));
        }
        if self.accounts.max_failed_logins > 0 && self.accounts.lockout.is_zero() {
            return Err(invalid(
                "accounts.lockout",
                "must be greater than zero when accounts.max_failed_logins is set",
            ));
        }
        if !(1..=64).contains(&self.workflow.workers) {
            return Err(invalid("workflow.workers", "expected 1 to 64"));
        }
        if self.workflow.archive_log_limit_bytes == 0 {
            return Err(invalid(
                "workflow.archive_log_limit_bytes",
                "must be greater than zero",
            ));
        }
        for (image, known) in &self.workflow.images {
            if known
                .entrypoint
                .iter()
                .chain(&known.cmd)
                .next()
                .is_none_or(|p| p.is_empty())
            {
                return Err(invalid(
                    "workflow.images",
                    &format!(
                        "entry {image:?}: expected an `entrypoint` or a `cmd` whose first element is the program"
                    ),
                ));
            }
        }
        if self.workflow.executor_image.trim().is_empty() {
            return Err(invalid("workflow.executor_image", "must not be empty"));
        }
        if let Some(url) = &self.workflow.executor_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "workflow.executor_url",
                "expected an http:// or https:// URL that step pods can reach",
            ));
        }
        for name in self.accounts.users.keys() {
            if name == "admin" {
                return Err(invalid(
                    "accounts.users",
                    "`admin` is built in; configure it with accounts.admin_enabled",
                ));
            }
            if !is_account_name(name) {
                return Err(invalid(
                    "accounts.users",
                    &format!(
                        "account name {name:?}: expected 1-64 characters of letters, digits, \
                         '.', '_', '@' or '-'"
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn invalid(field: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        field,
        message: message.to_owned(),
    }
}

/// Account names travel in RBAC subjects, token strings and log fields: keep them plain.
pub(crate) fn is_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{url:?}: expected an http:// or https:// URL")),
    }
    if uri.authority().is_none() {
        return Err(format!("{url:?}: expected a host"));
    }
    Ok(())
}

/// The documented default data directory.
fn default_data_dir(env: &HashMap<String, String>, host: Host) -> PathBuf {
    let non_empty = |k: &str| env.get(k).filter(|v| !v.is_empty());
    if let Some(dir) = non_empty("CAIRN_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if host.is_root {
        return PathBuf::from("/var/lib/cairn");
    }
    if let Some(state) = non_empty("XDG_STATE_HOME") {
        return Path::new(state).join("cairn");
    }
    match non_empty("HOME") {
        Some(home) => Path::new(home).join(".local/state/cairn"),
        // No HOME at all (a bare service environment): fall back to a relative directory rather
        // than guessing a shared one.
        None => PathBuf::from(".cairn"),
    }
}

fn parse_file(path: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str::<Config>(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        let (line, column) = line_col(text, offset);
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            field: field_at(text, line),
            message: e.message().trim().to_owned(),
        }
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The dotted field named at `line` (1-based): the enclosing `[table]` header plus the key on
/// that line, or the header itself when the line is one.
fn field_at(text: &str, line: usize) -> Option<String> {
    let mut table = String::new();
    for (i, raw) in text.lines().enumerate() {
        let l = strip_comment(raw).trim();
        let header = l
            .strip_prefix("[[")
            .and_then(|r| r.strip_suffix("]]"))
            .or_else(|| l.strip_prefix('[').and_then(|r| r.strip_suffix(']')));
        if let Some(h) = header {
            table = normalize_key(h);
            if i + 1 == line {
                return Some(table);
            }
            continue;
        }
        if i + 1 == line {
            let key = l.split_once('=').map(|(k, _)| normalize_key(k));
            return match key {
                Some(k) if table.is_empty() => Some(k),
                Some(k) => Some(format!("{table}.{k}")),
                None if table.is_empty() => None,
                None => Some(table),
            };
        }
    }
    None
}

fn strip_comment(line: &str) -> &str {
    // Good enough for locating a key: a '#' inside a quoted key is not used in cairn.toml.
    line.split_once('#').map_or(line, |(before, _)| before)
}

fn normalize_key(key: &str) -> String {
    key.split('.')
        .map(|p| p.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

fn apply_env(config: &mut Config, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let get = |k: &str| env.get(k).map(String::as_str);
    if let Some(v) = get("CAIRN_LISTEN") {
        config.server.listen = v
            .parse()
            .map_err(|_| env_err("CAIRN_LISTEN", v, "an address like 127.0.0.1:8080"))?;
    }
    if let Some(v) = get("CAIRN_DATA_DIR") {
        config.server.data_dir = PathBuf::from(v);
    }
    if let Some(v) = get("CAIRN_NAMESPACE") {
        config.server.namespace = v.to_owned();
    }
    if let Some(v) = get("CAIRN_URL") {
        config.server.url = (!v.is_empty()).then(|| v.to_owned());
    }
    if let Some(v) = get("CAIRN_TLS_CERT_FILE") {
        config.server.tls_cert_file = (!v.is_empty()).then(|| PathBuf::from(v));
    }
    if let Some(v) = get("CAIRN_TLS_KEY_FILE") {
        config.server.tls_key_file = (!v.is_empty()).then(|| PathBuf::from(v));
    }
    if let Some(v) = get("CAIRN_LOG_FORMAT") {
        config.log.format = match v {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(env_err("CAIRN_LOG_FORMAT", v, "`text` or `json`")),
        };
    }
    if let Some(v) = get("CAIRN_LOG_LEVEL") {
        config.log.level = v.to_owned();
    }
    if let Some(v) = get("CAIRN_RBAC_POLICY_DEFAULT") {
        config.rbac.policy_default = v.to_owned();
    }
    config.webhook.apply_env(env);
    if let Some(v) = get("CAIRN_ADMIN_ENABLED") {
        config.accounts.admin_enabled = match v {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(env_err("CAIRN_ADMIN_ENABLED", v, "`true` or `false`")),
        };
    }
    Ok(())
}

fn env_err(var: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError::Env {
        var,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

/// Error from [`parse_duration`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration: expected e.g. `30s`, `15m`, `24h` or `7d`")]
    Empty,
    /// A number is missing before a unit, or a unit after a number.
    #[error("{input:?}: expected <number><unit> with unit one of s, m, h, d (e.g. `30s`, `1h30m`)")]
    Malformed {
        /// The input.
        input: String,
    },
    /// The unit is not one of `ms`, `s`, `m`, `h`, `d`, `w`.
    #[error("{input:?}: unknown unit {unit:?}, expected one of ms, s, m, h, d, w")]
    UnknownUnit {
        /// The input.
        input: String,
        /// The unit found.
        unit: String,
    },
    /// The value does not fit in a duration.
    #[error("{input:?}: too large")]
    Overflow {
        /// The input.
        input: String,
    },
}

/// Parses a short human duration: one or more `<integer><unit>` groups, units `ms`, `s`, `m`,
/// `h`, `d`, `w` (e.g. `30s`, `15m`, `24h`, `7d`, `1h30m`). No fractions, no signs: these are
/// configuration values, and a strict format catches typos.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let malformed = || DurationError::Malformed {
        input: input.to_owned(),
    };
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(malformed());
        }
        let (num, tail) = rest.split_at(digits);
        let n: u64 = num.parse().map_err(|_| overflow())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        if !unit.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(malformed());
        }
        let part = match unit {
            "" => return Err(malformed()),
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(overflow)?),
            "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(overflow)?),
            "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(overflow)?),
            "w" => Duration::from_secs(n.checked_mul(604_800).ok_or_else(overflow)?),
            other => {
                return Err(DurationError::UnknownUnit {
                    input: input.to_owned(),
                    unit: other.to_owned(),
                });
            }
        };
        total = total.checked_add(part).ok_or_else(overflow)?;
        rest = tail;
    }
    Ok(total)
}

/// Formats a duration in the largest exact units, as [`parse_duration`] reads them (`1h30m`).
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    if secs == 0 {
        return format!("{millis}ms");
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400u64), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    out
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const USER: Host = Host { is_root: false };
    const ROOT: Host = Host { is_root: true };

    fn resolve(
        file: Option<&str>,
        vars: &[(&str, &str)],
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let vars = {
            let mut v = vars.to_vec();
            v.push(("HOME", "/home/u"));
            env(&v)
        };
        Config::resolve(
            file.map(|t| (Path::new("/etc/cairn.toml"), t)),
            &vars,
            overrides,
            USER,
        )
    }

    #[test]
    fn a_promotion_rendering_url_needs_the_executor_url() {
        let rule = "[[promotion]]\nmodel = \"m\"\nrepo = \"https://git.example.com/g.git\"\n\
                    file = \"values.yaml\"\nset = { \"model.uri\" = \"{{url}}\" }\n";
        let err = resolve(Some(rule), &[], &Overrides::default()).expect_err("no executor_url");
        let text = err.to_string();
        assert!(
            text.contains("promotion")
                && text.contains("{{url}}")
                && text.contains("workflow.executor_url"),
            "{text}"
        );
        let with_url = format!("{rule}\n[workflow]\nexecutor_url = \"http://10.0.0.1:9443\"\n");
        let c = resolve(Some(&with_url), &[], &Overrides::default()).expect("valid");
        assert!(c.promotion[0].uses("url"));
        let plain = rule.replace("{{url}}", "{{uri}}");
        resolve(Some(&plain), &[], &Overrides::default()).expect("{{uri}} needs no executor_url");
    }

    #[test]
    fn defaults_need_no_file() {
        let c = resolve(None, &[], &Overrides::default()).expect("defaults");
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(
            c.server.data_dir,
            PathBuf::from("/home/u/.local/state/cairn")
        );
        assert_eq!(c.server.namespace, "argocd");
        assert_eq!(c.server.url, None);
        assert!(!c.server.use_secure_cookies());
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
        assert_eq!(c.session.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.session.absolute_timeout, Duration::from_secs(86_400));
        assert!(c.accounts.admin_enabled);
        assert_eq!(c.accounts.max_failed_logins, 5);
        assert_eq!(c.accounts.lockout, Duration::from_secs(300));
        assert_eq!(c.rbac.default_role(), Some("role:readonly"));
        assert_eq!(c.rbac.scopes, vec!["groups".to_owned()]);
    }

    #[test]
    fn data_dir_defaults_by_host() {
        let none = Overrides::default();
        let c = Config::resolve(None, &env(&[("HOME", "/h")]), &none, ROOT).expect("root");
        assert_eq!(c.server.data_dir, PathBuf::from("/var/lib/cairn"));
        let c = Config::resolve(
            None,
            &env(&[("HOME", "/h"), ("XDG_STATE_HOME", "/x")]),
            &none,
            USER,
        )
        .expect("xdg");
        assert_eq!(c.server.data_dir, PathBuf::from("/x/cairn"));
        let c = Config::resolve(
            None,
            &env(&[("CAIRN_DATA_DIR", "/d"), ("XDG_STATE_HOME", "/x")]),
            &none,
            ROOT,
        )
        .expect("env");
        assert_eq!(c.server.data_dir, PathBuf::from("/d"));
    }

    #[test]
    fn precedence_default_file_env_flag() {
        let file = "[server]\nlisten = \"0.0.0.0:9000\"\nnamespace = \"fromfile\"\n\
                    [log]\nformat = \"json\"\nlevel = \"debug\"\n";
        // File beats defaults.
        let c = resolve(Some(file), &[], &Overrides::default()).expect("file");
        assert_eq!(c.server.listen, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(c.server.namespace, "fromfile");
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "debug");
        // Env beats file.
        let vars = [
            ("CAIRN_LISTEN", "0.0.0.0:9100"),
            ("CAIRN_NAMESPACE", "fromenv"),
            ("CAIRN_LOG_FORMAT", "text"),
        ];
        let c = resolve(Some(file), &vars, &Overrides::default()).expect("env");
        assert_eq!(c.server.listen, "0.0.0.0:9100".parse().expect("addr"));
        assert_eq!(c.server.namespace, "fromenv");
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "debug", "untouched by env stays from file");
        // Flags beat env.
        let flags = Overrides {
            listen: Some("10.0.0.1:1".parse().expect("addr")),
            data_dir: Some(PathBuf::from("/flag")),
            log_format: Some(LogFormat::Json),
        };
        let c = resolve(
            Some(file),
            &[("CAIRN_DATA_DIR", "/env"), vars[0], vars[2]],
            &flags,
        )
        .expect("flags");
        assert_eq!(c.server.listen, "10.0.0.1:1".parse().expect("addr"));
        assert_eq!(c.server.data_dir, PathBuf::from("/flag"));
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn data_dir_precedence() {
        let file = "[server]\ndata_dir = \"/file\"\n";
        let c = resolve(Some(file), &[], &Overrides::default()).expect("file");
        assert_eq!(c.server.data_dir, PathBuf::from("/file"));
        let c = resolve(
            Some(file),
            &[("CAIRN_DATA_DIR", "/env")],
            &Overrides::default(),
        )
        .expect("env");
        assert_eq!(c.server.data_dir, PathBuf::from("/env"));
    }

    #[test]
    fn every_env_var_applies() {
        let vars = [
            ("CAIRN_URL", "https://cairn.example.com"),
            ("CAIRN_TLS_CERT_FILE", "/c.pem"),
            ("CAIRN_TLS_KEY_FILE", "/k.pem"),
            ("CAIRN_LOG_LEVEL", "cairn=debug,info"),
            ("CAIRN_RBAC_POLICY_DEFAULT", ""),
            ("CAIRN_ADMIN_ENABLED", "false"),
            ("CAIRN_UNRELATED", "ignored"),
        ];
        let c = resolve(None, &vars, &Overrides::default()).expect("env");
        assert_eq!(c.server.url.as_deref(), Some("https://cairn.example.com"));
        assert!(c.server.tls_enabled());
        assert!(c.server.use_secure_cookies(), "TLS implies secure cookies");
        assert_eq!(c.log.level, "cairn=debug,info");
        assert_eq!(c.rbac.default_role(), None);
        assert!(!c.accounts.admin_enabled);
    }

    #[test]
    fn full_file_parses() {
        let file = r#"
[server]
url = "https://cairn.example.com/"
secure_cookies = true

[session]
idle_timeout = "15m"
absolute_timeout = "7d"

[accounts]
admin_enabled = false
max_failed_logins = 3
lockout = "1h"

[accounts.users.alice]
capabilities = ["login", "apiKey"]

[accounts.users.ci]
capabilities = ["apiKey"]
enabled = false

[rbac]
policy_csv = """
p, role:dev, applications, sync, dev/*, allow
g, alice, role:dev
"""
policy_default = ""
scopes = ["groups", "email"]
"#;
        let c = resolve(Some(file), &[], &Overrides::default()).expect("parse");
        assert!(c.server.use_secure_cookies());
        assert_eq!(c.session.idle_timeout, Duration::from_secs(900));
        assert_eq!(c.session.absolute_timeout, Duration::from_secs(7 * 86_400));
        assert_eq!(c.accounts.max_failed_logins, 3);
        assert_eq!(c.accounts.lockout, Duration::from_secs(3600));
        let alice = &c.accounts.users["alice"];
        assert_eq!(
            alice.capabilities,
            vec![Capability::Login, Capability::ApiKey]
        );
        assert!(alice.enabled);
        assert!(!c.accounts.users["ci"].enabled);
        assert!(c.rbac.policy_csv.contains("g, alice, role:dev"));
        assert_eq!(c.rbac.scopes, vec!["groups".to_owned(), "email".to_owned()]);
    }

    fn parse_err(file: &str) -> (usize, usize, Option<String>, String) {
        match resolve(Some(file), &[], &Overrides::default()) {
            Err(ConfigError::Parse {
                path,
                line,
                column,
                field,
                message,
            }) => {
                assert_eq!(path, PathBuf::from("/etc/cairn.toml"));
                (line, column, field, message)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let (line, col, field, msg) = parse_err("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n");
        assert_eq!((line, col), (3, 1));
        assert_eq!(field.as_deref(), Some("server.lisen"));
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn unknown_section_is_refused() {
        let (line, _, field, msg) = parse_err("# comment\n[sever]\nlisten = \"x\"\n");
        assert_eq!(line, 2);
        assert_eq!(field.as_deref(), Some("sever"));
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn wrong_type_names_field() {
        let (line, col, field, msg) = parse_err("[accounts]\n\nmax_failed_logins = \"five\"\n");
        assert_eq!((line, col), (3, 21));
        assert_eq!(field.as_deref(), Some("accounts.max_failed_logins"));
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn bad_duration_names_field() {
        let (line, _, field, msg) = parse_err("[session]\nidle_timeout = \"30min\"\n");
        assert_eq!(line, 2);
        assert_eq!(field.as_deref(), Some("session.idle_timeout"));
        assert!(msg.contains("unknown unit"), "{msg}");
    }

    #[test]
    fn bad_listen_and_enum_values() {
        let (_, _, field, _) = parse_err("[server]\nlisten = \"localhost\"\n");
        assert_eq!(field.as_deref(), Some("server.listen"));
        let (_, _, field, msg) = parse_err("[log]\nformat = \"xml\"\n");
        assert_eq!(field.as_deref(), Some("log.format"));
        assert!(msg.contains("xml"), "{msg}");
        let (_, _, field, _) = parse_err("[accounts.users.bob]\ncapabilities = [\"admin\"]\n");
        assert_eq!(field.as_deref(), Some("accounts.users.bob.capabilities"));
    }

    #[test]
    fn toml_syntax_error_has_position() {
        let (line, col, _, _) = parse_err("[server]\nlisten = \n");
        assert_eq!(line, 2);
        assert!(col >= 9, "column {col}");
        let err = resolve(Some("[server\n"), &[], &Overrides::default()).expect_err("syntax");
        assert!(err.to_string().starts_with("/etc/cairn.toml:1:"), "{err}");
    }

    #[test]
    fn error_display_names_file_line_field() {
        let err =
            resolve(Some("[rbac]\nscopes = 3\n"), &[], &Overrides::default()).expect_err("type");
        let text = err.to_string();
        assert!(
            text.starts_with("/etc/cairn.toml:2:10: field `rbac.scopes`: "),
            "{text}"
        );
    }

    #[test]
    fn env_errors_name_the_variable() {
        for (var, value) in [
            ("CAIRN_LISTEN", "nope"),
            ("CAIRN_LOG_FORMAT", "xml"),
            ("CAIRN_ADMIN_ENABLED", "maybe"),
        ] {
            match resolve(None, &[(var, value)], &Overrides::default()) {
                Err(ConfigError::Env {
                    var: v, value: got, ..
                }) => {
                    assert_eq!((v, got.as_str()), (var, value));
                }
                other => panic!("{var}: expected env error, got {other:?}"),
            }
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            ("[server]\ntls_cert_file = \"/c\"\n", "server.tls_key_file"),
            ("[server]\ntls_key_file = \"/k\"\n", "server.tls_cert_file"),
            ("[server]\nurl = \"ftp://x\"\n", "server.url"),
            ("[server]\nurl = \"/relative\"\n", "server.url"),
            ("[server]\nnamespace = \"Argo_CD\"\n", "server.namespace"),
            ("[log]\nlevel = \"cairn=loud\"\n", "log.level"),
            ("[session]\nidle_timeout = \"0s\"\n", "session.idle_timeout"),
            (
                "[session]\nabsolute_timeout = \"0m\"\n",
                "session.absolute_timeout",
            ),
            ("[accounts]\nlockout = \"0s\"\n", "accounts.lockout"),
            ("[accounts.users.admin]\n", "accounts.users"),
            ("[accounts.users.\"a b\"]\n", "accounts.users"),
            ("[workflow]\nworkers = 0\n", "workflow.workers"),
            (
                "[workflow]\narchive_log_limit_bytes = 0\n",
                "workflow.archive_log_limit_bytes",
            ),
            (
                "[workflow]\nexecutor_image = \" \"\n",
                "workflow.executor_image",
            ),
            (
                "[workflow.images.\"say:v2\"]\ncmd = []\n",
                "workflow.images",
            ),
        ];
        for (file, want) in cases {
            match resolve(Some(file), &[], &Overrides::default()) {
                Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, want, "{file}"),
                other => panic!("{file}: expected invalid {want}, got {other:?}"),
            }
        }
        // Lockout may be zero when lockout is disabled.
        resolve(
            Some("[accounts]\nmax_failed_logins = 0\nlockout = \"0s\"\n"),
            &[],
            &Overrides::default(),
        )
        .expect("lockout disabled");
    }

    #[test]
    fn load_reads_named_file_and_reports_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[server]\nnamespace = \"loaded\"\n").expect("write");
        let vars = vec![("HOME".to_owned(), "/h".to_owned())];
        let c = Config::load(Some(&path), vars.clone(), &Overrides::default()).expect("load");
        assert_eq!(c.server.namespace, "loaded");
        // CAIRN_CONFIG names the file when no flag does.
        let mut with_env = vars.clone();
        with_env.push(("CAIRN_CONFIG".to_owned(), path.display().to_string()));
        let c = Config::load(None, with_env, &Overrides::default()).expect("load env");
        assert_eq!(c.server.namespace, "loaded");
        let missing = dir.path().join("missing.toml");
        match Config::load(Some(&missing), vars, &Overrides::default()) {
            Err(ConfigError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected read error, got {other:?}"),
        }
    }

    #[test]
    fn duration_parser_accepts() {
        let cases = [
            ("30s", 30),
            ("15m", 900),
            ("24h", 86_400),
            ("7d", 604_800),
            ("2w", 1_209_600),
            ("1h30m", 5400),
            (" 5m ", 300),
            ("0s", 0),
        ];
        for (input, secs) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_secs(secs)),
                "{input}"
            );
        }
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn duration_parser_rejects() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("  "), Err(DurationError::Empty));
        for bad in ["30", "m", "1.5h", "-5m", "5 m", "h5"] {
            assert!(
                matches!(parse_duration(bad), Err(DurationError::Malformed { .. })),
                "{bad}: {:?}",
                parse_duration(bad)
            );
        }
        assert!(matches!(
            parse_duration("3y"),
            Err(DurationError::UnknownUnit { unit, .. }) if unit == "y"
        ));
        assert!(matches!(
            parse_duration("99999999999999999999s"),
            Err(DurationError::Overflow { .. })
        ));
        assert!(matches!(
            parse_duration("999999999999999999w"),
            Err(DurationError::Overflow { .. })
        ));
    }

    #[test]
    fn duration_format_round_trips() {
        for secs in [1u64, 59, 60, 5400, 86_400, 90_061] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{secs}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
    }
}
