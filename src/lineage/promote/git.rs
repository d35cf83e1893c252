//! The Git side of promotion: fetch the tracked branch into a bare work repository under the
//! data dir, apply a [`Change`] to one file of its tip, commit, push; on a rejected
//! (non-fast-forward) push, fetch again and re-apply on the new tip, at most
//! [`MAX_PUSH_ATTEMPTS`] times. Blocking (libgit2): callers run it under `spawn_blocking`.
//!
//! Invariants:
//! - The commit is always built on the remote's current tip of the tracked branch, never on a
//!   stale local state; the edit is re-run on every attempt, so a concurrent change to another
//!   line of the file is kept and a concurrent change of the same value makes the edit a no-op.
//! - A change that leaves the file as it is makes no commit ([`Pushed::commit`] is `None`).
//! - Credentials go through `gitops::source::with_callbacks` (the GitOps side's callbacks:
//!   repository Secrets, known_hosts, deadline); errors carry redacted URLs only.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use git2::{FetchOptions, Oid, PushOptions, Repository, Signature};

use super::PromoteError;
use super::yaml_edit::{self, YamlPath};
use crate::gitops::source::url::{mirror_key, redact_text, redact_url};
use crate::gitops::source::{KnownHosts, RepoCredentials, with_callbacks};

/// Push attempts before giving up on a branch that keeps moving.
pub const MAX_PUSH_ATTEMPTS: u32 = 3;

/// Local ref holding the commit being pushed (libgit2 pushes refs, not bare oids).
const LOCAL_REF: &str = "refs/heads/cairn-promote";

/// Where and how to commit.
#[derive(Clone)]
pub struct Target {
    /// Repository URL.
    pub url: String,
    /// The tracked branch the commit is based on.
    pub branch: String,
    /// The branch pushed to: `branch`, or the review branch.
    pub push_branch: String,
    /// The file edited.
    pub file: String,
    /// Credentials for `url`, if any.
    pub creds: Option<RepoCredentials>,
    /// SSH host keys.
    pub known_hosts: KnownHosts,
    /// Bound of each network operation.
    pub timeout: Duration,
    /// Bare work repositories live under this directory (`<data_dir>/promote`).
    pub work_root: PathBuf,
    /// Commit author name.
    pub author_name: String,
    /// Commit author email.
    pub author_email: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &redact_url(&self.url))
            .field("branch", &self.branch)
            .field("push_branch", &self.push_branch)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// What to do to the file.
#[derive(Debug, Clone)]
pub enum Change {
    /// Set these paths to these values.
    Set(Vec<(YamlPath, String)>),
    /// Revert this commit (a previous promotion).
    Revert(String),
}

/// The outcome of [`commit_and_push`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The new commit, `None` when the file already had the values (no-op, nothing pushed).
    pub commit: Option<String>,
    /// The tip of the tracked branch the commit is based on.
    pub base: String,
    /// Push attempts made (1 unless the branch moved meanwhile).
    pub attempts: u32,
}

/// The work repository of `url` under `root`.
pub fn work_dir(root: &Path, url: &str) -> PathBuf {
    root.join(mirror_key(url))
}

fn local(op: &'static str, target: &Target, e: &git2::Error) -> PromoteError {
    PromoteError::Git {
        op,
        repo: redact_url(&target.url),
        message: redact_text(e.message()),
    }
}

/// Fetches, edits, commits and pushes. See the module docs.
pub fn commit_and_push(
    target: &Target,
    change: &Change,
    message: &str,
) -> Result<Pushed, PromoteError> {
    commit_and_push_with(target, change, message, &mut |_| {})
}

/// [`commit_and_push`] with a hook run before each push (tests use it to move the branch).
pub(crate) fn commit_and_push_with(
    target: &Target,
    change: &Change,
    message: &str,
    before_push: &mut dyn FnMut(u32),
) -> Result<Pushed, PromoteError> {
    let dir = work_dir(&target.work_root, &target.url);
    let repo = open_work_repo(&dir).map_err(|e| local("open work repository", target, &e))?;
    for attempt in 1..=MAX_PUSH_ATTEMPTS {
        let base = fetch_tip(&repo, target)?;
        let Some(oid) = build_commit(&repo, target, base, change, message)? else {
            return Ok(Pushed {
                commit: None,
                base: base.to_string(),
                attempts: attempt,
            });
        };
        before_push(attempt);
        let outcome = match push(&repo, target, oid)? {
            // A push that "succeeded" is verified on the tracked branch: a transport without an
            // atomic compare-and-swap of the ref (libgit2's local `file://` push) can let a
            // concurrent push overwrite ours. The tip must be our commit or descend from it;
            // otherwise the commit was lost and the edit is re-applied like a rejected push.
            PushOutcome::Pushed if target.push_branch == target.branch => {
                let tip = fetch_tip(&repo, target)?;
                let kept = tip == oid
                    || repo
                        .graph_descendant_of(tip, oid)
                        .map_err(|e| local("check the pushed commit", target, &e))?;
                if kept {
                    PushOutcome::Pushed
                } else {
                    PushOutcome::Rejected(format!(
                        "the branch moved to {tip} without the pushed commit {oid}"
                    ))
                }
            }
            other => other,
        };
        match outcome {
            PushOutcome::Pushed => {
                tracing::info!(
                    repo = %redact_url(&target.url),
                    branch = %target.push_branch,
                    commit = %oid,
                    attempt,
                    "promotion commit pushed"
                );
                return Ok(Pushed {
                    commit: Some(oid.to_string()),
                    base: base.to_string(),
                    attempts: attempt,
                });
            }
            PushOutcome::Rejected(reason) => {
                tracing::info!(
                    repo = %redact_url(&target.url),
                    branch = %target.push_branch,
                    attempt,
                    reason = %redact_text(&reason),
                    "push rejected, fetching the new tip"
                );
            }
        }
    }
    Err(PromoteError::Conflict {
        repo: redact_url(&target.url),
        branch: target.push_branch.clone(),
        attempts: MAX_PUSH_ATTEMPTS,
    })
}

fn open_work_repo(dir: &Path) -> Result<Repository, git2::Error> {
    if dir.join("HEAD").exists() {
        Repository::open_bare(dir)
    } else {
        std::fs::create_dir_all(dir).map_err(|e| git2::Error::from_str(&e.to_string()))?;
        Repository::init_bare(dir)
    }
}

fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

/// Fetches the tracked branch; returns its tip.
fn fetch_tip(repo: &Repository, target: &Target) -> Result<Oid, PromoteError> {
    let refspec = format!(
        "+refs/heads/{}:{}",
        target.branch,
        tracking_ref(&target.branch)
    );
    with_callbacks(
        "fetch",
        &target.url,
        target.creds.as_ref(),
        &target.known_hosts,
        target.timeout,
        |cb| {
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(cb);
            let mut remote = repo.remote_anonymous(&target.url)?;
            remote.fetch(&[refspec.as_str()], Some(&mut opts), None)
        },
    )?;
    let reference = repo
        .find_reference(&tracking_ref(&target.branch))
        .map_err(|_| PromoteError::BranchNotFound {
            repo: redact_url(&target.url),
            branch: target.branch.clone(),
        })?;
    reference
        .peel_to_commit()
        .map(|c| c.id())
        .map_err(|e| local("resolve branch", target, &e))
}

/// Builds the commit of `change` on `base`; `None` when the tree would not change.
fn build_commit(
    repo: &Repository,
    target: &Target,
    base: Oid,
    change: &Change,
    message: &str,
) -> Result<Option<Oid>, PromoteError> {
    let err = |op, e: git2::Error| local(op, target, &e);
    let base_commit = repo.find_commit(base).map_err(|e| err("read commit", e))?;
    let base_tree = base_commit.tree().map_err(|e| err("read tree", e))?;
    let tree_oid = match change {
        Change::Set(values) => {
            let entry = base_tree.get_path(Path::new(&target.file)).map_err(|_| {
                PromoteError::FileNotFound {
                    repo: redact_url(&target.url),
                    branch: target.branch.clone(),
                    file: target.file.clone(),
                }
            })?;
            let blob = entry
                .to_object(repo)
                .and_then(|o| o.peel_to_blob())
                .map_err(|e| err("read file", e))?;
            let text = std::str::from_utf8(blob.content()).map_err(|_| PromoteError::NotUtf8 {
                file: target.file.clone(),
            })?;
            let mut new_text = text.to_string();
            for (path, value) in values {
                let edit = yaml_edit::set_value(&new_text, path, value).map_err(|source| {
                    PromoteError::Edit {
                        file: target.file.clone(),
                        source,
                    }
                })?;
                new_text = edit.text;
            }
            if new_text == text {
                return Ok(None);
            }
            let blob_oid = repo
                .blob(new_text.as_bytes())
                .map_err(|e| err("write blob", e))?;
            let mut index = git2::Index::new().map_err(|e| err("index", e))?;
            index.read_tree(&base_tree).map_err(|e| err("index", e))?;
            let Some(mut ie) = index.get_path(Path::new(&target.file), 0) else {
                return Err(PromoteError::FileNotFound {
                    repo: redact_url(&target.url),
                    branch: target.branch.clone(),
                    file: target.file.clone(),
                });
            };
            ie.id = blob_oid;
            ie.file_size = u32::try_from(new_text.len()).unwrap_or(u32::MAX);
            index.add(&ie).map_err(|e| err("index", e))?;
            index
                .write_tree_to(repo)
                .map_err(|e| err("write tree", e))?
        }
        Change::Revert(sha) => {
            let oid = Oid::from_str(sha).map_err(|e| err("parse commit", e))?;
            let reverted = repo
                .find_commit(oid)
                .map_err(|_| PromoteError::CommitNotFound {
                    repo: redact_url(&target.url),
                    commit: sha.clone(),
                })?;
            let mut index = repo
                .revert_commit(&reverted, &base_commit, 0, None)
                .map_err(|e| err("revert", e))?;
            if index.has_conflicts() {
                return Err(PromoteError::RevertConflict {
                    commit: sha.clone(),
                    file: target.file.clone(),
                });
            }
            index
                .write_tree_to(repo)
                .map_err(|e| err("write tree", e))?
        }
    };
    if tree_oid == base_tree.id() {
        return Ok(None);
    }
    let tree = repo.find_tree(tree_oid).map_err(|e| err("read tree", e))?;
    let sig = Signature::now(&target.author_name, &target.author_email)
        .map_err(|e| err("signature", e))?;
    let oid = repo
        .commit(None, &sig, &sig, message, &tree, &[&base_commit])
        .map_err(|e| err("commit", e))?;
    Ok(Some(oid))
}

enum PushOutcome {
    Pushed,
    Rejected(String),
}

fn push(repo: &Repository, target: &Target, oid: Oid) -> Result<PushOutcome, PromoteError> {
    repo.reference(LOCAL_REF, oid, true, "cairn promote")
        .map_err(|e| local("update local ref", target, &e))?;
    // A review branch is cairn's own: force it to the new commit. The tracked branch only
    // fast-forwards.
    let force = if target.push_branch == target.branch {
        ""
    } else {
        "+"
    };
    let refspec = format!("{force}{LOCAL_REF}:refs/heads/{}", target.push_branch);
    let status: Rc<RefCell<Option<String>>> = Rc::default();
    let seen = Rc::clone(&status);
    let result = with_callbacks(
        "push",
        &target.url,
        target.creds.as_ref(),
        &target.known_hosts,
        target.timeout,
        move |mut cb| {
            cb.push_update_reference(move |_name, msg| {
                if let Some(msg) = msg {
                    *seen.borrow_mut() = Some(msg.to_string());
                }
                Ok(())
            });
            let mut opts = PushOptions::new();
            opts.remote_callbacks(cb);
            let mut remote = repo.remote_anonymous(&target.url)?;
            match remote.push(&[refspec.as_str()], Some(&mut opts)) {
                Err(e) if e.code() == git2::ErrorCode::NotFastForward => {
                    Ok(Some(e.message().to_string()))
                }
                Err(e) => Err(e),
                Ok(()) => Ok(None),
            }
        },
    )?;
    if let Some(reason) = result.or_else(|| status.borrow().clone()) {
        return Ok(PushOutcome::Rejected(reason));
    }
    Ok(PushOutcome::Pushed)
}

#[cfg(test)]
pub(crate) mod tests;
