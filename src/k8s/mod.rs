//! The Kubernetes edge: the one client, the Argo CRDs cairn installs, the identity of a
//! resource, and thin typed reads of the objects the API serves.
//!
//! Owns:
//! - [`client()`] / [`ping()`]: a `kube::Client` from KUBECONFIG (or in-cluster), and a cheap
//!   reachability probe for `/readyz`.
//! - [`crds`]: the CRDs of `argoproj.io/v1alpha1`, embedded as YAML, and their idempotent
//!   installation by server-side apply.
//! - [`ResourceKey`]: the single (group, kind, namespace, name) identity used by gitops,
//!   workflow and lineage.
//! - [`TypeTag`] and [`ArgoKind`]: how the typed Argo objects in `gitops::types`,
//!   `workflow::types` and `events::types` carry `apiVersion`/`kind` and implement
//!   `kube::Resource` without a derive.
//! - [`objects`]: list/get of Applications and Workflows.
//!
//! Invariants:
//! - Every typed Argo object serializes the `apiVersion` and `kind` of its Rust type, and refuses
//!   to deserialize a document that names another kind.
//! - The CRD names, plurals, kinds and scopes in [`crds::all`] agree with the `kube::Resource`
//!   impls of the Rust types (checked by `tests/crd_roundtrip.rs`).
//! - Nothing here decides anything about desired state: the module reads, applies CRDs, and
//!   reports; the controllers own decisions.

mod client;
pub mod crds;
mod key;
pub mod objects;
mod resource;

use std::time::Duration;

pub use client::{PING_TIMEOUT, client, client_from_config, ping};
pub use key::{ParseKeyError, ResourceKey};
pub(crate) use resource::argo_resource;
pub use resource::{ArgoKind, KindInfo, TypeTag, kinds};

/// The API group of every Argo kind.
pub const GROUP: &str = "argoproj.io";
/// The one served and stored version of every Argo kind.
pub const VERSION: &str = "v1alpha1";
/// `GROUP/VERSION`, as written in manifests.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";
/// The field manager cairn uses for every server-side apply.
pub const FIELD_MANAGER: &str = "cairn";

/// Errors at the Kubernetes edge.
#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    /// Neither a kubeconfig (KUBECONFIG or ~/.kube/config) nor an in-cluster service account
    /// could be loaded, so there is no cluster to talk to.
    #[error(
        "no Kubernetes cluster configured: set KUBECONFIG to a kubeconfig file (or run in a pod \
         with a service account): {source}"
    )]
    NoConfig {
        /// Why both the kubeconfig and the in-cluster configuration failed.
        #[source]
        source: Box<kube::config::InferConfigError>,
    },
    /// The configuration was loaded but a client could not be built from it (bad TLS material,
    /// bad proxy settings...).
    #[error("cannot build a Kubernetes client for {server}: {source}")]
    ClientBuild {
        /// The apiserver URL from the configuration.
        server: String,
        /// The client's error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The apiserver did not answer GET /version.
    #[error("Kubernetes apiserver is not reachable (GET /version failed): {source}")]
    Unreachable {
        /// The transport or API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// An operation did not finish in its time bound.
    #[error("{what} did not finish within {after:?}")]
    Timeout {
        /// What was being waited for, e.g. "GET /version on https://127.0.0.1:6443".
        what: String,
        /// The bound that expired.
        after: Duration,
    },
    /// The kind is not served by the apiserver: its CRD is not installed.
    #[error(
        "{crd} is not installed in the cluster; start `cairn server` once or run \
         `cairn crds | kubectl apply --server-side -f -`"
    )]
    CrdMissing {
        /// The CRD name, e.g. "applications.argoproj.io".
        crd: String,
    },
    /// An API request failed.
    #[error("{action} failed: {source}")]
    Api {
        /// What was attempted, e.g. "list workflows.argoproj.io in namespace ml".
        action: String,
        /// The client's error (carries the apiserver's status message).
        #[source]
        source: Box<kube::Error>,
    },
    /// An embedded CRD manifest does not parse. Only a broken build can cause this; a unit test
    /// parses every file.
    #[error("embedded CRD manifest {file} does not parse: {message}")]
    EmbeddedCrd {
        /// The embedded file name.
        file: &'static str,
        /// The YAML parser's message.
        message: String,
    },
    /// Watching a CRD for its Established condition failed.
    #[error("waiting for CRD {crd} to be Established failed: {source}")]
    Wait {
        /// The CRD name.
        crd: String,
        /// The watch error.
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// A CRD was applied but the apiserver did not mark it Established in time.
    #[error("CRD {crd} was not Established within {after:?}")]
    NotEstablished {
        /// The CRD name.
        crd: String,
        /// The bound that expired.
        after: Duration,
    },
}

impl K8sError {
    /// A short, stable label for metrics (`error` label of counters).
    pub fn metric_label(&self) -> &'static str {
        match self {
            K8sError::NoConfig { .. } => "no_config",
            K8sError::ClientBuild { .. } => "client_build",
            K8sError::Unreachable { .. } => "unreachable",
            K8sError::Timeout { .. } => "timeout",
            K8sError::CrdMissing { .. } => "crd_missing",
            K8sError::Api { .. } => "api",
            K8sError::EmbeddedCrd { .. } => "embedded_crd",
            K8sError::Wait { .. } => "wait",
            K8sError::NotEstablished { .. } => "not_established",
        }
    }

    pub(crate) fn api(action: impl Into<String>, source: kube::Error) -> Self {
        K8sError::Api {
            action: action.into(),
            source: Box::new(source),
        }
    }
}

/// True when the error is the apiserver's 404 (object or resource type absent).
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}
