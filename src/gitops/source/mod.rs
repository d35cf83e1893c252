//! Git repository access for the GitOps engine: the thin I/O edge between Applications and the
//! renderers, equivalent to Argo CD's repo-server Git client.
//!
//! Owns:
//! - a **mirror cache** per repository URL, a bare repository at
//!   `<data_dir>/repos/<sha256(normalized url)>` ([`url::mirror_key`]); one fetch serves every
//!   Application of that repository, and a fetch is skipped when the wanted commit is already in
//!   the mirror;
//! - **revision resolution** of `targetRevision` (branch, tag, full or short SHA, `HEAD`, empty)
//!   to a commit SHA, the pure rules in [`resolve`] applied to the refs the remote advertises;
//! - **checkout** of a commit's tree (or the subtree `path`) into a directory for renderers;
//! - **credentials** from Argo CD repository Secrets ([`creds`]).
//!
//! Public API, for the controller:
//! ```text
//! let source = GitSource::new(GitSourceConfig::new(data_dir));
//! let creds = CredentialStore::new(secrets.iter().filter_map(|s| RepoSecret::from_secret(s).ok().flatten()).collect());
//! // polling: cheap, no objects transferred
//! let remote = source.resolve_remote(url, "main", creds.for_url(url).as_ref()).await?;   // -> Resolution
//! // sync / render
//! let fetched = source.fetch(url, "main", creds.for_url(url).as_ref()).await?;          // -> Fetched { sha, fetched }
//! source.checkout(url, &fetched.sha, "apps/web", &workdir).await?;                      // -> CheckoutSummary
//! ```
//!
//! Invariants:
//! - At most one libgit2 operation per mirror at a time (a per-URL async mutex, taken with the
//!   fetch timeout, and held by the blocking task itself so a timed-out caller cannot start a
//!   second writer on the same mirror). libgit2 runs in `spawn_blocking`, never on the runtime.
//! - Every operation has a timeout: the caller gets [`SourceError::Timeout`] when it passes, and
//!   the blocking task aborts at the next transfer callback.
//! - No credential appears in an error, a log or `Debug` output: URLs are printed through
//!   [`url::redact_url`], libgit2 messages through [`url::redact_text`] and scrubbed of the
//!   credential values themselves.
//! - A checkout never writes outside its destination: tree entry names `..`, `.`, `.git`, or
//!   with `/` or `\`, and symlinks pointing outside the checkout are refused.
//! - Shallow fetches (depth [`GitSourceConfig::depth`]) are used for remote URLs while the
//!   mirror is shallow; a revision not found in a shallow mirror (an old SHA, a short SHA)
//!   unshallows it once. libgit2's local transport (`file://`, paths) cannot fetch shallow, so
//!   local repositories are always fetched in full.

pub mod creds;
mod git;
pub mod resolve;
pub mod url;

pub use creds::{
    CredentialStore, HostKeyCheck, KnownHosts, RepoCredentials, RepoSecret, SecretKind,
};
pub(crate) use git::with_callbacks;
pub use git::{CheckoutSummary, Fetched, GitSource, GitSourceConfig};
pub use resolve::{RemoteRef, Resolution, resolve_revision};

/// Errors of repository access. Every message names the repository by its redacted URL.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A repository Secret is malformed.
    #[error("repository secret {secret}: {reason}")]
    InvalidSecret {
        /// Secret name.
        secret: String,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// The revision is neither a branch, a tag, nor a commit of the repository.
    #[error("revision {revision:?} not found in repository {repo}")]
    RevisionNotFound {
        /// The `targetRevision` as given.
        revision: String,
        /// Redacted repository URL.
        repo: String,
    },
    /// The server refused the credentials, or asked for credentials none of which are set.
    #[error("authentication to repository {repo} failed: {reason}")]
    AuthFailed {
        /// Redacted repository URL.
        repo: String,
        /// Which credentials were tried (never their values).
        reason: String,
    },
    /// The server's SSH host key is not in known_hosts, or differs from the listed one.
    #[error("host key of {host} for repository {repo} rejected: {reason}")]
    HostKey {
        /// Redacted repository URL.
        repo: String,
        /// The SSH host.
        host: String,
        /// Unknown host or mismatching key.
        reason: String,
    },
    /// A Git operation failed (unreachable host, protocol error, corrupt mirror…).
    #[error("git {op} of repository {repo} failed: {message}")]
    Git {
        /// `ls-remote`, `fetch`, `checkout`, `open mirror`.
        op: &'static str,
        /// Redacted repository URL.
        repo: String,
        /// libgit2's message, redacted.
        message: String,
    },
    /// The operation did not finish in time.
    #[error("git {op} of repository {repo} timed out after {seconds}s")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// Redacted repository URL.
        repo: String,
        /// The timeout.
        seconds: u64,
    },
    /// The Application's `path` is not a relative path inside the repository.
    #[error("path {path:?} in repository {repo}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Redacted repository URL.
        repo: String,
        /// Expected: a relative directory path without `..`, present at the revision.
        reason: String,
    },
    /// The commit's tree holds an entry that would escape the checkout directory.
    #[error("repository {repo} at {sha}: unsafe tree entry {entry:?}: {reason}")]
    UnsafeTree {
        /// Redacted repository URL.
        repo: String,
        /// Commit SHA.
        sha: String,
        /// Entry path inside the tree.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// Writing the mirror or the checkout failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The blocking Git task ended abnormally (a panic in libgit2 bindings).
    #[error("git {op} of repository {repo} aborted: {reason}")]
    Aborted {
        /// The operation.
        op: &'static str,
        /// Redacted repository URL.
        repo: String,
        /// The task's failure.
        reason: String,
    },
}

impl SourceError {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidSecret { .. } => "invalid_secret",
            Self::RevisionNotFound { .. } => "revision_not_found",
            Self::AuthFailed { .. } => "auth_failed",
            Self::HostKey { .. } => "host_key",
            Self::Git { .. } => "git",
            Self::Timeout { .. } => "timeout",
            Self::InvalidPath { .. } => "invalid_path",
            Self::UnsafeTree { .. } => "unsafe_tree",
            Self::Io { .. } => "io",
            Self::Aborted { .. } => "aborted",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every error message, as a user reads it on the Application's condition.
    #[test]
    fn error_messages() {
        let repo = || url::redact_url("https://user:hunter2@github.com/org/repo.git");
        let errors = vec![
            SourceError::InvalidSecret {
                secret: "repo-1".into(),
                reason: "field `url` is missing or empty".into(),
            },
            SourceError::RevisionNotFound {
                revision: "release-9".into(),
                repo: repo(),
            },
            SourceError::AuthFailed {
                repo: repo(),
                reason: "the server rejected the username/password".into(),
            },
            SourceError::HostKey {
                repo: repo(),
                host: "github.com".into(),
                reason: "the key differs from the one in known_hosts".into(),
            },
            SourceError::Git {
                op: "fetch",
                repo: repo(),
                message: "failed to connect to github.com: Connection refused".into(),
            },
            SourceError::Timeout {
                op: "ls-remote",
                repo: repo(),
                seconds: 90,
            },
            SourceError::InvalidPath {
                path: "../x".into(),
                repo: repo(),
                reason: "`..` is not allowed".into(),
            },
            SourceError::UnsafeTree {
                repo: repo(),
                sha: "a".repeat(40),
                entry: "..".into(),
                reason: "escapes".into(),
            },
            SourceError::Io {
                path: "/data/repos/x".into(),
                source: std::io::Error::other("disk full"),
            },
            SourceError::Aborted {
                op: "fetch",
                repo: repo(),
                reason: "task panicked".into(),
            },
        ];
        let text: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {e}", e.metric_label()))
            .collect();
        let text = text.join("\n");
        assert!(!text.contains("hunter2"));
        insta::assert_snapshot!(text);
    }
}
