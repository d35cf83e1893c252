//! Promotion by Git commit: a model version moves to an alias by a commit to the GitOps
//! repository that the serving Application tracks.
//!
//! - [`yaml_edit`]: the pure, comment-preserving YAML edit (set a scalar at a dotted path,
//!   verified by parsing).
//! - [`rule`]: the `[[promotion]]` config entries, templates, commit message, review branch.
//! - [`git`]: fetch, edit, commit, push with re-application on a moved branch (blocking).
//! - [`op`]: the operation: RBAC, plan, push, then the alias + PROMOTIONS + lineage write; rollback.
//! - [`follow`]: refresh the Applications tracking the file, record sync and Healthy time.
//! - [`executor`]: `POST /executor/v1/models/{name}/promote`, the same promotion from a workflow
//!   step on the pod's token.

pub mod executor;
pub mod follow;
pub mod git;
pub mod op;
pub mod rule;
pub mod yaml_edit;

/// Errors of promotion. Repository URLs are always redacted; no credential ever appears.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// No `[[promotion]]` entry matches the model and alias.
    #[error("no [[promotion]] entry in cairn.toml matches model {model:?} and alias {alias:?}")]
    NoRule {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
    },
    /// The caller may not promote to this alias (RBAC `models`, `promote`, `<model>/<alias>`).
    #[error("permission denied: {subject} may not promote {object}")]
    Forbidden {
        /// The RBAC subject.
        subject: String,
        /// `<model>/<alias>`.
        object: String,
    },
    /// The version is not Ready.
    #[error("model {model} version {version} is {status}; expected Ready")]
    NotReady {
        /// The model.
        model: String,
        /// The version.
        version: u64,
        /// Its status.
        status: &'static str,
    },
    /// Nothing to roll back: no promotion of that model to that alias is recorded.
    #[error("no promotion of model {model:?} to alias {alias:?} is recorded; nothing to roll back")]
    NothingToRollBack {
        /// The model.
        model: String,
        /// The alias.
        alias: String,
    },
    /// The registry refused (unknown model or version, bad alias name).
    #[error(transparent)]
    Registry(#[from] Box<crate::lineage::registry::RegistryError>),
    /// The lineage graph refused the record.
    #[error(transparent)]
    Graph(#[from] Box<crate::lineage::graph::GraphError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] Box<crate::store::StoreError>),
    /// Fetch or push failed (authentication, host key, network, timeout); already redacted.
    #[error(transparent)]
    Source(#[from] Box<crate::gitops::source::SourceError>),
    /// A local Git operation in the work repository failed.
    #[error("git {op} for repository {repo} failed: {message}")]
    Git {
        /// The operation.
        op: &'static str,
        /// Redacted URL.
        repo: String,
        /// libgit2's message, redacted.
        message: String,
    },
    /// The tracked branch does not exist on the remote.
    #[error("branch {branch:?} not found in repository {repo}")]
    BranchNotFound {
        /// Redacted URL.
        repo: String,
        /// The branch.
        branch: String,
    },
    /// The configured file is not in the branch's tip.
    #[error("file {file:?} not found on branch {branch:?} of repository {repo}")]
    FileNotFound {
        /// Redacted URL.
        repo: String,
        /// The branch.
        branch: String,
        /// The file.
        file: String,
    },
    /// The file is not UTF-8 text.
    #[error("file {file:?} is not UTF-8 text; expected a YAML file")]
    NotUtf8 {
        /// The file.
        file: String,
    },
    /// The YAML edit was refused.
    #[error("file {file:?}: {source}")]
    Edit {
        /// The file.
        file: String,
        /// Why.
        source: yaml_edit::YamlEditError,
    },
    /// The commit to revert is not in the repository.
    #[error("commit {commit} not found in repository {repo}")]
    CommitNotFound {
        /// Redacted URL.
        repo: String,
        /// The commit.
        commit: String,
    },
    /// Reverting conflicts with later changes of the file.
    #[error(
        "reverting commit {commit} conflicts with later changes of {file:?}; revert it by hand"
    )]
    RevertConflict {
        /// The commit.
        commit: String,
        /// The file.
        file: String,
    },
    /// The branch kept moving: every push was rejected.
    #[error(
        "push to branch {branch:?} of repository {repo} rejected {attempts} times (the branch keeps moving)"
    )]
    Conflict {
        /// Redacted URL.
        repo: String,
        /// The branch pushed to.
        branch: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The Git work did not finish in time or its task was aborted.
    #[error("promotion {op} did not finish: {reason}")]
    Aborted {
        /// The step.
        op: &'static str,
        /// Why.
        reason: String,
    },
}

impl PromoteError {
    /// Low-cardinality label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NoRule { .. } => "no_rule",
            Self::Forbidden { .. } => "forbidden",
            Self::NotReady { .. } => "not_ready",
            Self::NothingToRollBack { .. } => "nothing_to_roll_back",
            Self::Registry(_) => "registry",
            Self::Graph(_) => "graph",
            Self::Store(_) => "store",
            Self::Source(_) => "git_remote",
            Self::Git { .. } => "git_local",
            Self::BranchNotFound { .. } => "branch_not_found",
            Self::FileNotFound { .. } => "file_not_found",
            Self::NotUtf8 { .. } => "not_utf8",
            Self::Edit { .. } => "edit",
            Self::CommitNotFound { .. } => "commit_not_found",
            Self::RevertConflict { .. } => "revert_conflict",
            Self::Conflict { .. } => "conflict",
            Self::Aborted { .. } => "aborted",
        }
    }
}

impl From<crate::gitops::source::SourceError> for PromoteError {
    fn from(e: crate::gitops::source::SourceError) -> Self {
        Self::Source(Box::new(e))
    }
}

impl From<crate::store::StoreError> for PromoteError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}
