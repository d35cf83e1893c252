//! Destination clusters, as Argo CD declares them: Secrets labelled
//! `argocd.argoproj.io/secret-type: cluster` in the control namespace, plus the implicit
//! in-cluster destination (`https://kubernetes.default.svc`, name `in-cluster`).
//!
//! Owns:
//! - parsing a cluster Secret ([`parse_secret`], pure): `name`, `server`, `config` (JSON with
//!   `bearerToken`, `username`/`password`, `tlsClientConfig {caData, certData, keyData, insecure,
//!   serverName}`; the byte fields base64 as Go encodes `[]byte`), `namespaces` (comma-separated:
//!   the cluster is namespace-scoped), `clusterResources`, `project`;
//! - resolving an Application destination by `server` or `name` ([`resolve`], pure) with Argo
//!   CD's rules and messages (both set is an error; a name must be unique; a Secret for
//!   `https://kubernetes.default.svc` replaces the implicit in-cluster entry);
//! - [`Clusters`], the registry that lists the Secrets and builds one `kube::Client` per cluster,
//!   cached by the Secret's `resourceVersion` (a changed Secret rebuilds its client). The
//!   in-cluster destination uses cairn's own client.
//!
//! Invariant: credentials (token, password, client key) live only in [`ClusterCredentials`],
//! whose `Debug` is redacted; errors name the Secret and the field, never a value.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde::Deserialize;

use crate::gitops::project::Destination;
use crate::gitops::types::ApplicationDestination;

/// The API server URL of the cluster cairn runs in (Argo CD's `KubernetesInternalAPIServerAddr`).
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// The name of the in-cluster destination.
pub const IN_CLUSTER_NAME: &str = "in-cluster";
/// The label selecting cluster Secrets.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// The label value of cluster Secrets.
pub const SECRET_TYPE_CLUSTER: &str = "cluster";

/// Errors of cluster parsing, resolution and client construction.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A cluster Secret lacks a required key or has an invalid value.
    #[error("cluster secret {secret}: field `{field}`: {expected}")]
    InvalidSecret {
        /// The Secret's name.
        secret: String,
        /// The data key (`server`, `config`, `config.tlsClientConfig.caData`…).
        field: String,
        /// What was expected (never the value found).
        expected: String,
    },
    /// The destination has both `server` and `name`.
    #[error("application destination can't have both name and server defined: {name} {server}")]
    BothNameAndServer {
        /// `destination.name`.
        name: String,
        /// `destination.server`.
        server: String,
    },
    /// The destination has neither `server` nor `name`.
    #[error("application destination must set spec.destination.server or spec.destination.name")]
    NoDestination,
    /// No cluster has this name.
    #[error("unable to find destination server: there are no clusters with this name: {0}")]
    UnknownName(String),
    /// Several clusters share this name.
    #[error(
        "unable to find destination server: there are {count} clusters with the same name: [{servers}]"
    )]
    AmbiguousName {
        /// How many.
        count: usize,
        /// Their servers, space-separated.
        servers: String,
    },
    /// No cluster has this server URL.
    #[error("unable to find destination server: there are no clusters with this URL: {0}")]
    UnknownServer(String),
    /// Listing the cluster Secrets failed.
    #[error("cannot list cluster secrets in namespace {namespace}: {message}")]
    List {
        /// The control namespace.
        namespace: String,
        /// The API's answer.
        message: String,
    },
    /// A client for the cluster could not be built from its Secret.
    #[error("cluster {server}: cannot build a client: {message}")]
    Client {
        /// The cluster's server.
        server: String,
        /// What failed (kube's message; it never contains the credentials).
        message: String,
    },
}

impl ClusterError {
    /// A short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSecret { .. } => "invalid_secret",
            Self::BothNameAndServer { .. } | Self::NoDestination => "invalid_destination",
            Self::UnknownName(_) | Self::AmbiguousName { .. } | Self::UnknownServer(_) => {
                "unknown_cluster"
            }
            Self::List { .. } => "list",
            Self::Client { .. } => "client",
        }
    }
}

/// How cairn authenticates to a cluster. `Debug` never prints a credential.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClusterCredentials {
    /// Bearer token.
    pub bearer_token: Option<String>,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// PEM CA bundle.
    pub ca_data: Option<Vec<u8>>,
    /// PEM client certificate.
    pub cert_data: Option<Vec<u8>>,
    /// PEM client key.
    pub key_data: Option<Vec<u8>>,
    /// Skip TLS verification.
    pub insecure: bool,
    /// SNI / verification name override.
    pub server_name: Option<String>,
}

impl fmt::Debug for ClusterCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "<set>" } else { "<unset>" };
        f.debug_struct("ClusterCredentials")
            .field("bearer_token", &set(self.bearer_token.is_some()))
            .field("username", &self.username)
            .field("password", &set(self.password.is_some()))
            .field("ca_data", &set(self.ca_data.is_some()))
            .field("cert_data", &set(self.cert_data.is_some()))
            .field("key_data", &set(self.key_data.is_some()))
            .field("insecure", &self.insecure)
            .field("server_name", &self.server_name)
            .finish()
    }
}

/// One destination cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    /// Display name (`name` in the Secret; defaults to the server).
    pub name: String,
    /// API server URL.
    pub server: String,
    /// When non-empty, the cluster is namespace-scoped: only these namespaces are managed.
    pub namespaces: Vec<String>,
    /// With `namespaces`, whether cluster-scoped resources may still be managed.
    pub cluster_resources: bool,
    /// The project the cluster is scoped to (`project` key), if any.
    pub project: Option<String>,
    /// Credentials; None for the in-cluster destination (cairn's own client).
    pub credentials: Option<ClusterCredentials>,
    /// The Secret it came from (None for the implicit in-cluster entry).
    pub secret: Option<String>,
    /// The Secret's resourceVersion: the client cache key.
    pub version: String,
}

impl Cluster {
    /// The implicit in-cluster destination.
    pub fn in_cluster() -> Self {
        Self {
            name: IN_CLUSTER_NAME.into(),
            server: IN_CLUSTER_SERVER.into(),
            namespaces: Vec::new(),
            cluster_resources: true,
            project: None,
            credentials: None,
            secret: None,
            version: String::new(),
        }
    }

    /// The resolved destination for project checks (server and name both known).
    pub fn destination(&self, namespace: &str) -> Destination {
        Destination {
            server: self.server.clone(),
            name: self.name.clone(),
            namespace: namespace.to_string(),
        }
    }

    /// Whether the cluster lets cairn manage this namespace (namespace-scoped clusters).
    pub fn manages_namespace(&self, namespace: &str) -> bool {
        self.namespaces.is_empty() || self.namespaces.iter().any(|n| n == namespace)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigJson {
    bearer_token: Option<String>,
    username: Option<String>,
    password: Option<String>,
    tls_client_config: Option<TlsJson>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TlsJson {
    #[serde(default)]
    insecure: bool,
    server_name: Option<String>,
    ca_data: Option<String>,
    cert_data: Option<String>,
    key_data: Option<String>,
}

/// Parses one cluster Secret (its decoded `data`, with `stringData` as a fallback).
pub fn parse_secret(secret: &Secret) -> Result<Cluster, ClusterError> {
    let secret_name = secret.metadata.name.clone().unwrap_or_default();
    let mut fields: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in secret.string_data.iter().flatten() {
        fields.insert(k.clone(), v.as_bytes().to_vec());
    }
    for (k, v) in secret.data.iter().flatten() {
        fields.insert(k.clone(), v.0.clone());
    }
    let invalid = |field: &str, expected: &str| ClusterError::InvalidSecret {
        secret: secret_name.clone(),
        field: field.to_string(),
        expected: expected.to_string(),
    };
    let text = |key: &str| -> Result<Option<String>, ClusterError> {
        match fields.get(key) {
            None => Ok(None),
            Some(b) => String::from_utf8(b.clone())
                .map(|s| Some(s.trim().to_string()))
                .map_err(|_| invalid(key, "UTF-8 text")),
        }
    };
    let server = text("server")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("server", "the API server URL (required)"))?;
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(invalid("server", "an http:// or https:// URL"));
    }
    let name = text("name")?.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        if server == IN_CLUSTER_SERVER {
            IN_CLUSTER_NAME.to_string()
        } else {
            server.clone()
        }
    });
    let config: ConfigJson = match fields.get("config") {
        None => ConfigJson::default(),
        Some(b) => serde_json::from_slice(b).map_err(|e| {
            // serde's message names the field and position, never the value of a string.
            invalid(
                "config",
                &format!(
                    "JSON with bearerToken / tlsClientConfig ({})",
                    e.classify_name()
                ),
            )
        })?,
    };
    let b64 = |field: &str, v: Option<String>| -> Result<Option<Vec<u8>>, ClusterError> {
        v.filter(|s| !s.is_empty())
            .map(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|_| invalid(field, "base64-encoded PEM"))
            })
            .transpose()
    };
    let tls = config.tls_client_config.unwrap_or_default();
    let credentials = ClusterCredentials {
        bearer_token: config.bearer_token.filter(|s| !s.is_empty()),
        username: config.username.filter(|s| !s.is_empty()),
        password: config.password.filter(|s| !s.is_empty()),
        ca_data: b64("config.tlsClientConfig.caData", tls.ca_data)?,
        cert_data: b64("config.tlsClientConfig.certData", tls.cert_data)?,
        key_data: b64("config.tlsClientConfig.keyData", tls.key_data)?,
        insecure: tls.insecure,
        server_name: tls.server_name.filter(|s| !s.is_empty()),
    };
    if credentials.cert_data.is_some() != credentials.key_data.is_some() {
        return Err(invalid(
            "config.tlsClientConfig",
            "certData and keyData together (a client certificate needs its key)",
        ));
    }
    let namespaces: Vec<String> = text("namespaces")?
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let cluster_resources = match text("clusterResources")?.as_deref() {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(invalid("clusterResources", "`true` or `false`")),
    };
    Ok(Cluster {
        name,
        server,
        // Argo CD: the flag only narrows namespace-scoped clusters; a cluster without a
        // namespace list manages cluster-scoped resources too.
        cluster_resources: cluster_resources || namespaces.is_empty(),
        namespaces,
        project: text("project")?.filter(|s| !s.is_empty()),
        credentials: Some(credentials),
        secret: Some(secret_name),
        version: secret.metadata.resource_version.clone().unwrap_or_default(),
    })
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "a field has the wrong type",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

/// The clusters known from Secrets plus the implicit in-cluster one (unless a Secret declares
/// `https://kubernetes.default.svc` itself). Sorted by name, then server.
pub fn with_in_cluster(mut from_secrets: Vec<Cluster>) -> Vec<Cluster> {
    if !from_secrets.iter().any(|c| c.server == IN_CLUSTER_SERVER) {
        from_secrets.push(Cluster::in_cluster());
    }
    from_secrets.sort_by(|a, b| (&a.name, &a.server).cmp(&(&b.name, &b.server)));
    from_secrets
}

/// Resolves an Application destination to one cluster, with Argo CD's rules.
pub fn resolve<'c>(
    dest: &ApplicationDestination,
    clusters: &'c [Cluster],
) -> Result<&'c Cluster, ClusterError> {
    let server = dest.server.as_deref().unwrap_or("").trim();
    let name = dest.name.as_deref().unwrap_or("").trim();
    match (server.is_empty(), name.is_empty()) {
        (false, false) => Err(ClusterError::BothNameAndServer {
            name: name.into(),
            server: server.into(),
        }),
        (true, true) => Err(ClusterError::NoDestination),
        (true, false) => {
            let hits: Vec<&Cluster> = clusters.iter().filter(|c| c.name == name).collect();
            match hits.as_slice() {
                [one] => Ok(one),
                [] => Err(ClusterError::UnknownName(name.into())),
                many => Err(ClusterError::AmbiguousName {
                    count: many.len(),
                    servers: many
                        .iter()
                        .map(|c| c.server.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                }),
            }
        }
        (false, true) => {
            let wanted = server.trim_end_matches('/');
            clusters
                .iter()
                .find(|c| c.server.trim_end_matches('/') == wanted)
                .ok_or_else(|| ClusterError::UnknownServer(server.into()))
        }
    }
}

/// A kubeconfig (as JSON) for a cluster with credentials; the client is built from it so kube's
/// own TLS and auth handling apply.
fn kubeconfig_json(cluster: &Cluster, creds: &ClusterCredentials) -> serde_json::Value {
    let b64 = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
    };
    let mut c = serde_json::json!({ "server": cluster.server });
    if creds.insecure {
        c["insecure-skip-tls-verify"] = true.into();
    }
    if let Some(ca) = b64(&creds.ca_data) {
        c["certificate-authority-data"] = ca.into();
    }
    if let Some(sn) = &creds.server_name {
        c["tls-server-name"] = sn.clone().into();
    }
    let mut u = serde_json::json!({});
    if let Some(t) = &creds.bearer_token {
        u["token"] = t.clone().into();
    }
    if let Some(n) = &creds.username {
        u["username"] = n.clone().into();
    }
    if let Some(p) = &creds.password {
        u["password"] = p.clone().into();
    }
    if let Some(cert) = b64(&creds.cert_data) {
        u["client-certificate-data"] = cert.into();
    }
    if let Some(key) = b64(&creds.key_data) {
        u["client-key-data"] = key.into();
    }
    let mut ctx = serde_json::json!({"cluster": "c", "user": "u"});
    if let [only] = cluster.namespaces.as_slice() {
        ctx["namespace"] = only.clone().into();
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": c}],
        "users": [{"name": "u", "user": u}],
        "contexts": [{"name": "ctx", "context": ctx}],
        "current-context": "ctx",
    })
}

/// Builds a client for a cluster with credentials.
pub async fn build_client(cluster: &Cluster) -> Result<kube::Client, ClusterError> {
    let fail = |message: String| ClusterError::Client {
        server: cluster.server.clone(),
        message,
    };
    let creds = cluster.credentials.as_ref().ok_or_else(|| {
        fail("no credentials (the in-cluster destination uses cairn's own client)".into())
    })?;
    let kubeconfig: kube::config::Kubeconfig =
        serde_json::from_value(kubeconfig_json(cluster, creds))
            .map_err(|e| fail(format!("kubeconfig shape: {}", e.classify_name())))?;
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .map_err(|e| fail(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
}

/// The registry: cluster Secrets of the control namespace, and one cached client per cluster.
#[derive(Clone)]
pub struct Clusters {
    home: kube::Client,
    namespace: String,
    cache: Arc<Mutex<HashMap<String, (String, kube::Client)>>>,
}

impl fmt::Debug for Clusters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clusters")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Clusters {
    /// A registry reading Secrets of `namespace` through `home`, which is also the in-cluster
    /// destination's client.
    pub fn new(home: kube::Client, namespace: impl Into<String>) -> Self {
        Self {
            home,
            namespace: namespace.into(),
            cache: Arc::default(),
        }
    }

    /// Every cluster: parsed Secrets plus in-cluster. An unparseable Secret is skipped with a
    /// warning naming it (one bad Secret must not hide the others).
    pub async fn list(&self) -> Result<Vec<Cluster>, ClusterError> {
        let api: Api<Secret> = Api::namespaced(self.home.clone(), &self.namespace);
        let lp =
            ListParams::default().labels(&format!("{SECRET_TYPE_LABEL}={SECRET_TYPE_CLUSTER}"));
        let list = api.list(&lp).await.map_err(|e| ClusterError::List {
            namespace: self.namespace.clone(),
            message: e.to_string(),
        })?;
        let mut clusters = Vec::new();
        for secret in &list.items {
            match parse_secret(secret) {
                Ok(c) => clusters.push(c),
                Err(e) => tracing::warn!(error = %e, "ignoring cluster secret"),
            }
        }
        Ok(with_in_cluster(clusters))
    }

    /// Resolves a destination and returns its cluster and a client for it.
    pub async fn client_for(
        &self,
        dest: &ApplicationDestination,
    ) -> Result<(Cluster, kube::Client), ClusterError> {
        let clusters = self.list().await?;
        let cluster = resolve(dest, &clusters)?.clone();
        let client = self.client(&cluster).await?;
        Ok((cluster, client))
    }

    /// The client of one cluster: cairn's own for in-cluster without a Secret, else built from
    /// the Secret and cached until its resourceVersion changes.
    pub async fn client(&self, cluster: &Cluster) -> Result<kube::Client, ClusterError> {
        if cluster.credentials.is_none() {
            return Ok(self.home.clone());
        }
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((version, client)) = cache.get(&cluster.server)
                && *version == cluster.version
            {
                return Ok(client.clone());
            }
        }
        let client = build_client(cluster).await?;
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                cluster.server.clone(),
                (cluster.version.clone(), client.clone()),
            );
        tracing::info!(cluster = %cluster.name, server = %cluster.server, "cluster client built");
        Ok(client)
    }
}

#[cfg(test)]
mod tests;
