//! The libgit2 side of [`super`]: mirrors, ls-remote, fetch, checkout. Blocking functions run
//! under `spawn_blocking`; the async [`GitSource`] adds the per-URL lock and the timeout.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions,
    ObjectType, Oid, Remote, RemoteCallbacks, Repository,
};

use super::SourceError;
use super::creds::{HostKeyCheck, KnownHosts, RepoCredentials};
use super::resolve::{RemoteRef, Resolution, ResolveFailure, resolve_revision};
use super::url::{is_local, mirror_key, redact_text, redact_url};

/// Default timeout of one Git network operation; Argo CD's repo-server uses 90 s for Git
/// requests (`ARGOCD_EXEC_TIMEOUT`), a lab repository takes well under that.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// Deepest directory nesting a checkout follows; deeper trees are refused rather than risking
/// unbounded work on a hostile repository.
const MAX_TREE_DEPTH: usize = 256;

/// Settings of the Git source.
#[derive(Debug, Clone)]
pub struct GitSourceConfig {
    /// cairn's data dir; mirrors live under `<data_dir>/repos/`.
    pub data_dir: PathBuf,
    /// Timeout of one ls-remote or fetch (and of waiting for the repository's lock).
    pub timeout: Duration,
    /// Shallow-fetch depth for remote URLs; 0 fetches full history.
    pub depth: u32,
    /// SSH host keys the servers must present (unless a repository is `insecure`).
    pub known_hosts: KnownHosts,
}

impl GitSourceConfig {
    /// Defaults: 90 s timeout, depth 1, no known hosts.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            timeout: DEFAULT_TIMEOUT,
            depth: 1,
            known_hosts: KnownHosts::default(),
        }
    }
}

/// Result of [`GitSource::fetch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The commit the revision resolved to, present in the mirror.
    pub sha: String,
    /// Whether objects were fetched (`false`: the mirror already had the commit).
    pub fetched: bool,
}

/// Result of [`GitSource::checkout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutSummary {
    /// Regular files and symlinks written.
    pub files: usize,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Repository access with a mirror cache; share one per process (it is `Send + Sync`).
#[derive(Debug)]
pub struct GitSource {
    config: GitSourceConfig,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    fetches: AtomicU64,
}

/// What the blocking side needs to talk to one remote. No `Debug`: it holds credentials.
struct Endpoint {
    url: String,
    creds: Option<RepoCredentials>,
    known_hosts: KnownHosts,
    deadline: Instant,
    timeout: Duration,
}

/// Failure notes written by callbacks, because libgit2 flattens a callback error into text.
#[derive(Default)]
struct CallbackNotes {
    auth: RefCell<Option<String>>,
    host_key: RefCell<Option<(String, String)>>,
    timed_out: Cell<bool>,
}

impl GitSource {
    /// A source with this configuration.
    pub fn new(config: GitSourceConfig) -> Self {
        Self {
            config,
            locks: Mutex::new(HashMap::new()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The mirror directory of `url`.
    pub fn mirror_path(&self, url: &str) -> PathBuf {
        self.config.data_dir.join("repos").join(mirror_key(url))
    }

    /// How many fetches transferred objects since start (for metrics and tests).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lock_for(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(mirror_key(url)).or_default().clone()
    }

    /// Resolves `revision` against the remote's advertised refs without fetching objects: the
    /// cheap check polling uses to see whether a new commit exists. A short SHA comes back as
    /// [`Resolution::ShortSha`] (only a fetch can expand it).
    pub async fn resolve_remote(
        &self,
        url: &str,
        revision: &str,
        creds: Option<&RepoCredentials>,
    ) -> Result<Resolution, SourceError> {
        let remote = self.remote(url, creds);
        let revision = revision.to_string();
        self.run("ls-remote", url, None, move || {
            let refs = ls_remote(&remote)?;
            resolve_or_error(&refs, &revision, &remote.url)
        })
        .await
    }

    /// Makes the commit `revision` resolves to present in the mirror (fetching only when it is
    /// not there yet) and returns its SHA.
    pub async fn fetch(
        &self,
        url: &str,
        revision: &str,
        creds: Option<&RepoCredentials>,
    ) -> Result<Fetched, SourceError> {
        let remote = self.remote(url, creds);
        let revision = revision.to_string();
        let mirror = self.mirror_path(url);
        let depth = self.config.depth;
        let lock = self.lock_for(url);
        let fetched = self
            .run("fetch", url, Some(lock), move || {
                fetch_revision(&remote, &mirror, &revision, depth)
            })
            .await?;
        if fetched.fetched {
            self.fetches.fetch_add(1, Ordering::Relaxed);
        }
        Ok(fetched)
    }

    /// Writes the tree of commit `sha` at `path` (`""` or `.` for the root) into `dest`, which
    /// must not exist or be empty. The commit must be in the mirror (see [`Self::fetch`]).
    pub async fn checkout(
        &self,
        url: &str,
        sha: &str,
        path: &str,
        dest: &Path,
    ) -> Result<CheckoutSummary, SourceError> {
        let mirror = self.mirror_path(url);
        let (repo_url, sha, path, dest) = (
            url.to_string(),
            sha.to_string(),
            path.to_string(),
            dest.to_path_buf(),
        );
        let lock = self.lock_for(url);
        self.run("checkout", url, Some(lock), move || {
            checkout(&mirror, &repo_url, &sha, &path, &dest)
        })
        .await
    }

    fn remote(&self, url: &str, creds: Option<&RepoCredentials>) -> Endpoint {
        Endpoint {
            url: url.to_string(),
            creds: creds.cloned(),
            known_hosts: self.config.known_hosts.clone(),
            deadline: Instant::now() + self.config.timeout,
            timeout: self.config.timeout,
        }
    }

    /// Runs `work` on the blocking pool, holding the repository's lock (when given) inside the
    /// task, bounded by the timeout.
    async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        url: &str,
        lock: Option<Arc<tokio::sync::Mutex<()>>>,
        work: impl FnOnce() -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let timeout = self.config.timeout;
        let timeout_err = || SourceError::Timeout {
            op,
            repo: redact_url(url),
            seconds: timeout.as_secs(),
        };
        let started = Instant::now();
        let guard = match lock {
            Some(lock) => Some(
                tokio::time::timeout(timeout, lock.lock_owned())
                    .await
                    .map_err(|_| timeout_err())?,
            ),
            None => None,
        };
        let remaining = timeout.saturating_sub(started.elapsed());
        // The span carries the redacted URL only: libgit2 runs with credentials in scope.
        let span = tracing::debug_span!("git", op, repo = %redact_url(url));
        let task = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let out = work();
            drop(guard);
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match &out {
                Ok(_) => tracing::debug!(elapsed_ms, "git operation done"),
                Err(e) => tracing::debug!(elapsed_ms, error = %e, "git operation failed"),
            }
            out
        });
        match tokio::time::timeout(remaining, task).await {
            Err(_) => Err(timeout_err()),
            Ok(Err(join)) => Err(SourceError::Aborted {
                op,
                repo: redact_url(url),
                reason: join.to_string(),
            }),
            Ok(Ok(out)) => out,
        }
    }
}

fn git_error(
    op: &'static str,
    remote: &Endpoint,
    notes: &CallbackNotes,
    err: &git2::Error,
) -> SourceError {
    let repo = redact_url(&remote.url);
    if notes.timed_out.get() {
        return SourceError::Timeout {
            op,
            repo,
            seconds: remote.timeout.as_secs(),
        };
    }
    if let Some((host, reason)) = notes.host_key.borrow().clone() {
        return SourceError::HostKey { repo, host, reason };
    }
    if let Some(reason) = notes.auth.borrow().clone() {
        return SourceError::AuthFailed { repo, reason };
    }
    if err.code() == git2::ErrorCode::Auth {
        return SourceError::AuthFailed {
            repo,
            reason: scrub(remote, err.message()),
        };
    }
    SourceError::Git {
        op,
        repo,
        message: scrub(remote, err.message()),
    }
}

/// libgit2's message without userinfo and without any credential value.
fn scrub(remote: &Endpoint, message: &str) -> String {
    let mut text = redact_text(message);
    if let Some(creds) = &remote.creds {
        for secret in creds.secrets() {
            text = text.replace(secret, "<redacted>");
        }
    }
    text
}

/// Runs `f` with the callbacks of [`callbacks`] for `url` (credentials tried once each, host key
/// check against `known_hosts`, a deadline `timeout` from now) and maps a libgit2 failure to a
/// redacted [`SourceError`]. For code that talks to a remote outside the mirror cache (promotion's
/// fetch and push), so credentials are handled in one place.
pub(crate) fn with_callbacks<T>(
    op: &'static str,
    url: &str,
    creds: Option<&RepoCredentials>,
    known_hosts: &KnownHosts,
    timeout: Duration,
    f: impl FnOnce(RemoteCallbacks<'_>) -> Result<T, git2::Error>,
) -> Result<T, SourceError> {
    let remote = Endpoint {
        url: url.to_string(),
        creds: creds.cloned(),
        known_hosts: known_hosts.clone(),
        deadline: Instant::now() + timeout,
        timeout,
    };
    let notes = CallbackNotes::default();
    f(callbacks(&remote, &notes)).map_err(|e| git_error(op, &remote, &notes, &e))
}

/// Callbacks for one connection: credentials (tried once each, so a wrong password fails instead
/// of looping), host key check, and the deadline.
fn callbacks<'a>(remote: &'a Endpoint, notes: &'a CallbackNotes) -> RemoteCallbacks<'a> {
    let mut cb = RemoteCallbacks::new();
    // One try per kind of credential: libgit2 asks again after every rejection, and a wrong
    // password would otherwise loop until the server gives up.
    let (user_tries, key_tries, pass_tries) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let once = |tries: &Cell<u32>| {
        tries.set(tries.get() + 1);
        tries.get() == 1
    };
    cb.credentials(move |_url, user_from_url, allowed| {
        let Some(creds) = remote.creds.as_ref().filter(|c| c.has_credentials()) else {
            *notes.auth.borrow_mut() =
                Some("the server requires credentials and none are configured".into());
            return Err(git2::Error::from_str("no credentials configured"));
        };
        // SSH: the user is the URL's (`git@host:…`), as Argo CD does; HTTPS: the Secret's.
        let ssh_user = user_from_url.or(creds.username()).unwrap_or("git");
        if allowed.contains(CredentialType::SSH_KEY)
            && let Some(key) = creds.ssh_private_key()
        {
            if !once(&key_tries) {
                *notes.auth.borrow_mut() = Some("the server rejected the SSH private key".into());
                return Err(git2::Error::from_str("credentials rejected"));
            }
            return Cred::ssh_key_from_memory(ssh_user, None, key, None);
        }
        if allowed.contains(CredentialType::USERNAME) && once(&user_tries) {
            return Cred::username(ssh_user);
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some(password) = creds.password()
        {
            if !once(&pass_tries) {
                *notes.auth.borrow_mut() = Some("the server rejected the username/password".into());
                return Err(git2::Error::from_str("credentials rejected"));
            }
            let user = creds.username().or(user_from_url).unwrap_or("");
            return Cred::userpass_plaintext(user, password);
        }
        *notes.auth.borrow_mut() = Some(format!(
            "no configured credential fits what the server accepts ({allowed:?})"
        ));
        Err(git2::Error::from_str("no usable credentials"))
    });
    let insecure = remote.creds.as_ref().is_some_and(RepoCredentials::insecure);
    cb.certificate_check(move |cert, host| {
        if insecure {
            return Ok(CertificateCheckStatus::CertificateOk);
        }
        let Some(hostkey) = cert.as_hostkey() else {
            // X.509: libgit2 (OpenSSL) already verified the chain; keep its verdict.
            return Ok(CertificateCheckStatus::CertificatePassthrough);
        };
        let Some(key) = hostkey.hostkey() else {
            *notes.host_key.borrow_mut() = Some((
                host.to_string(),
                "the server's raw host key is unavailable".into(),
            ));
            return Err(git2::Error::from_str("host key unavailable"));
        };
        let reason = match remote.known_hosts.check(host, key) {
            HostKeyCheck::Match => return Ok(CertificateCheckStatus::CertificateOk),
            HostKeyCheck::Mismatch => "the key differs from the one in known_hosts",
            HostKeyCheck::Unknown => "the host is not in known_hosts (argocd-ssh-known-hosts-cm)",
        };
        *notes.host_key.borrow_mut() = Some((host.to_string(), reason.to_string()));
        Err(git2::Error::from_str("host key rejected"))
    });
    let alive = move || {
        let expired = Instant::now() >= remote.deadline;
        if expired {
            notes.timed_out.set(true);
        }
        !expired
    };
    cb.transfer_progress(move |_| alive());
    cb.sideband_progress(move |_| alive());
    cb
}

fn ls_remote(remote: &Endpoint) -> Result<Vec<RemoteRef>, SourceError> {
    let notes = CallbackNotes::default();
    let mut git_remote = Remote::create_detached(remote.url.as_str())
        .map_err(|e| git_error("ls-remote", remote, &notes, &e))?;
    let conn = git_remote
        .connect_auth(Direction::Fetch, Some(callbacks(remote, &notes)), None)
        .map_err(|e| git_error("ls-remote", remote, &notes, &e))?;
    let heads = conn
        .list()
        .map_err(|e| git_error("ls-remote", remote, &notes, &e))?;
    Ok(heads
        .iter()
        .map(|h| RemoteRef {
            name: h.name().to_string(),
            oid: h.oid().to_string(),
            symref_target: h.symref_target().map(str::to_string),
        })
        .collect())
}

fn resolve_or_error(
    refs: &[RemoteRef],
    revision: &str,
    url: &str,
) -> Result<Resolution, SourceError> {
    resolve_revision(refs, revision).map_err(|failure| match failure {
        ResolveFailure::NotFound => SourceError::RevisionNotFound {
            revision: revision.to_string(),
            repo: redact_url(url),
        },
        ResolveFailure::DanglingSymref(target) => SourceError::RevisionNotFound {
            revision: format!("{revision} (-> {target}, which does not exist: empty repository?)"),
            repo: redact_url(url),
        },
    })
}

fn open_mirror(mirror: &Path, remote: &Endpoint) -> Result<Repository, SourceError> {
    let open = if mirror.join("HEAD").exists() {
        Repository::open_bare(mirror)
    } else {
        std::fs::create_dir_all(mirror).map_err(|source| SourceError::Io {
            path: mirror.display().to_string(),
            source,
        })?;
        Repository::init_bare(mirror)
    };
    open.map_err(|e| git_error("open mirror", remote, &CallbackNotes::default(), &e))
}

/// Commit `spec` (full or short SHA) in `repo`, if present.
fn find_commit(repo: &Repository, spec: &str) -> Option<String> {
    let object = match Oid::from_str(spec) {
        Ok(oid) if spec.len() == 40 => repo.find_object(oid, None).ok()?,
        _ => repo.revparse_single(spec).ok()?,
    };
    object.peel_to_commit().ok().map(|c| c.id().to_string())
}

fn fetch_into(repo: &Repository, remote: &Endpoint, depth: i32) -> Result<(), SourceError> {
    let notes = CallbackNotes::default();
    let mut opts = FetchOptions::new();
    opts.remote_callbacks(callbacks(remote, &notes));
    opts.download_tags(AutotagOption::All);
    opts.depth(depth);
    let mut git_remote = repo
        .remote_anonymous(&remote.url)
        .map_err(|e| git_error("fetch", remote, &notes, &e))?;
    git_remote
        .fetch(
            &["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"],
            Some(&mut opts),
            None,
        )
        .map_err(|e| git_error("fetch", remote, &notes, &e))
}

/// libgit2's `GIT_FETCH_DEPTH_UNSHALLOW`: fetch the history a shallow mirror is missing.
const UNSHALLOW: i32 = i32::MAX;

fn fetch_revision(
    remote: &Endpoint,
    mirror: &Path,
    revision: &str,
    depth: u32,
) -> Result<Fetched, SourceError> {
    let refs = ls_remote(remote)?;
    let resolution = resolve_or_error(&refs, revision, &remote.url)?;
    let repo = open_mirror(mirror, remote)?;
    let wanted = match &resolution {
        Resolution::Commit(sha) | Resolution::ShortSha(sha) => sha.as_str(),
    };
    if let Some(sha) = find_commit(&repo, wanted) {
        return Ok(Fetched {
            sha,
            fetched: false,
        });
    }
    let is_tip = |sha: &str| refs.iter().any(|r| r.oid == sha);
    let fresh = repo
        .references()
        .map(|mut r| r.next().is_none())
        .unwrap_or(true);
    let shallow_ok = depth > 0 && !is_local(&remote.url) && (fresh || repo.is_shallow());
    let first_depth = match &resolution {
        Resolution::Commit(sha) if shallow_ok && is_tip(sha) => {
            i32::try_from(depth).unwrap_or(i32::MAX)
        }
        _ if repo.is_shallow() => UNSHALLOW,
        _ => 0,
    };
    fetch_into(&repo, remote, first_depth)?;
    if let Some(sha) = find_commit(&repo, wanted) {
        return Ok(Fetched { sha, fetched: true });
    }
    if repo.is_shallow() {
        fetch_into(&repo, remote, UNSHALLOW)?;
        if let Some(sha) = find_commit(&repo, wanted) {
            return Ok(Fetched { sha, fetched: true });
        }
    }
    Err(SourceError::RevisionNotFound {
        revision: revision.to_string(),
        repo: redact_url(&remote.url),
    })
}

/// Checks `path` is a relative path without `..`; returns its normal components.
fn subtree_path(path: &str, url: &str) -> Result<PathBuf, SourceError> {
    let invalid = |reason: &str| SourceError::InvalidPath {
        path: path.to_string(),
        repo: redact_url(url),
        reason: reason.to_string(),
    };
    let mut out = PathBuf::new();
    for component in Path::new(path.trim()).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(invalid(
                    "`..` is not allowed: the path must stay inside the repository",
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid("must be relative to the repository root"));
            }
        }
    }
    Ok(out)
}

/// Whether a tree entry name is safe to create in a directory.
fn unsafe_name(name: &str) -> Option<&'static str> {
    if name.is_empty() || name == "." || name == ".." {
        Some("`.`/`..`/empty names would leave the checkout directory")
    } else if name.contains(['/', '\\', '\0']) {
        Some("a name with a path separator would leave its directory")
    } else if name.eq_ignore_ascii_case(".git") {
        Some("a `.git` entry could plant Git metadata")
    } else {
        None
    }
}

/// Whether a symlink at `entry` (relative to the checkout root) pointing to `target` stays
/// inside the checkout.
fn symlink_inside(entry: &Path, target: &str) -> bool {
    let target = Path::new(target);
    if target.is_absolute() {
        return false;
    }
    let mut depth: i64 = entry.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => depth -= 1,
            Component::RootDir | Component::Prefix(_) => return false,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

fn checkout(
    mirror: &Path,
    url: &str,
    sha: &str,
    path: &str,
    dest: &Path,
) -> Result<CheckoutSummary, SourceError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| SourceError::Io { path: p, source }
    };
    let git = |e: git2::Error| SourceError::Git {
        op: "checkout",
        repo: redact_url(url),
        message: redact_text(e.message()),
    };
    let sub = subtree_path(path, url)?;
    let repo = Repository::open_bare(mirror).map_err(git)?;
    let not_found = || SourceError::RevisionNotFound {
        revision: sha.to_string(),
        repo: redact_url(url),
    };
    let commit = Oid::from_str(sha)
        .ok()
        .and_then(|oid| repo.find_commit(oid).ok())
        .ok_or_else(not_found)?;
    let root = commit.tree().map_err(git)?;
    let tree = if sub.as_os_str().is_empty() {
        root
    } else {
        let entry = root.get_path(&sub).map_err(|_| SourceError::InvalidPath {
            path: path.to_string(),
            repo: redact_url(url),
            reason: format!("does not exist at revision {sha}"),
        })?;
        entry
            .to_object(&repo)
            .and_then(|o| o.peel_to_tree())
            .map_err(|_| SourceError::InvalidPath {
                path: path.to_string(),
                repo: redact_url(url),
                reason: format!("is a file, not a directory, at revision {sha}"),
            })?
    };
    if dest.exists() {
        let mut entries = std::fs::read_dir(dest).map_err(io(dest))?;
        if entries.next().is_some() {
            return Err(SourceError::Io {
                path: dest.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "checkout destination is not empty",
                ),
            });
        }
    }
    std::fs::create_dir_all(dest).map_err(io(dest))?;
    let written = write_tree(&repo, tree.id(), url, sha, dest);
    if written.is_err() {
        // The destination was empty: leave nothing half-written for a renderer to pick up.
        let _ = std::fs::remove_dir_all(dest);
    }
    written
}

/// Writes tree `tree_id` into the existing empty directory `dest`.
fn write_tree(
    repo: &Repository,
    tree_id: Oid,
    url: &str,
    sha: &str,
    dest: &Path,
) -> Result<CheckoutSummary, SourceError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| SourceError::Io { path: p, source }
    };
    let git = |e: git2::Error| SourceError::Git {
        op: "checkout",
        repo: redact_url(url),
        message: redact_text(e.message()),
    };
    let unsafe_entry = |entry: &Path, reason: &str| SourceError::UnsafeTree {
        repo: redact_url(url),
        sha: sha.to_string(),
        entry: entry.display().to_string(),
        reason: reason.to_string(),
    };
    let mut summary = CheckoutSummary { files: 0, bytes: 0 };
    // Explicit stack instead of recursion: bounded by MAX_TREE_DEPTH, not by the thread stack.
    let mut stack = vec![(tree_id, PathBuf::new())];
    while let Some((tree_id, rel)) = stack.pop() {
        if rel.components().count() > MAX_TREE_DEPTH {
            return Err(unsafe_entry(
                &rel,
                "directory nesting deeper than 256 levels",
            ));
        }
        let tree = repo.find_tree(tree_id).map_err(git)?;
        for entry in tree.iter() {
            let Ok(name) = entry.name() else {
                return Err(unsafe_entry(&rel, "entry name is not UTF-8"));
            };
            let entry_rel = rel.join(name);
            if let Some(reason) = unsafe_name(name) {
                return Err(unsafe_entry(&rel.join(name.replace('\0', "\\0")), reason));
            }
            let target = dest.join(&entry_rel);
            match entry.kind() {
                Some(ObjectType::Tree) => {
                    std::fs::create_dir(&target).map_err(io(&target))?;
                    stack.push((entry.id(), entry_rel));
                }
                Some(ObjectType::Blob) => {
                    let blob = repo.find_blob(entry.id()).map_err(git)?;
                    let content = blob.content();
                    if entry.filemode() == 0o120000 {
                        let link = std::str::from_utf8(content)
                            .map_err(|_| unsafe_entry(&entry_rel, "symlink target is not UTF-8"))?;
                        if !symlink_inside(&entry_rel, link) {
                            return Err(unsafe_entry(
                                &entry_rel,
                                "symlink points outside the checkout",
                            ));
                        }
                        std::os::unix::fs::symlink(link, &target).map_err(io(&target))?;
                    } else {
                        std::fs::write(&target, content).map_err(io(&target))?;
                        if entry.filemode() == 0o100755 {
                            use std::os::unix::fs::PermissionsExt as _;
                            std::fs::set_permissions(
                                &target,
                                std::fs::Permissions::from_mode(0o755),
                            )
                            .map_err(io(&target))?;
                        }
                        summary.bytes += content.len() as u64;
                    }
                    summary.files += 1;
                }
                // Submodules (commits) are not fetched, as Argo CD does not by default.
                _ => {}
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_path_table() {
        let ok = [
            ("", ""),
            (".", ""),
            ("apps/web", "apps/web"),
            ("./apps//web/", "apps/web"),
        ];
        for (input, want) in ok {
            assert_eq!(
                subtree_path(input, "u").expect("valid"),
                PathBuf::from(want),
                "{input}"
            );
        }
        for bad in ["..", "apps/../../etc", "/etc", "a/.."] {
            let err = subtree_path(bad, "https://u:pw@h/r")
                .expect_err(bad)
                .to_string();
            assert!(err.contains(bad) && !err.contains("pw"), "{err}");
        }
    }

    #[test]
    fn unsafe_names() {
        for name in ["", ".", "..", "a/b", "a\\b", ".git", ".GIT", "x\0y"] {
            assert!(unsafe_name(name).is_some(), "{name:?}");
        }
        for name in ["a", ".gitignore", "..a", "a..", ".github"] {
            assert!(unsafe_name(name).is_none(), "{name:?}");
        }
    }

    #[test]
    fn symlink_bounds() {
        let cases = [
            ("link", "file", true),
            ("dir/link", "../file", true),
            ("dir/link", "../../file", false),
            ("link", "../x", false),
            ("link", "/etc/passwd", false),
            ("a/b/link", "../../c/./d", true),
            ("a/link", "b/../../../x", false),
        ];
        for (entry, target, want) in cases {
            assert_eq!(
                symlink_inside(Path::new(entry), target),
                want,
                "{entry} -> {target}"
            );
        }
    }

    #[test]
    fn scrub_removes_credential_values() {
        let remote = Endpoint {
            url: "https://h/r".into(),
            creds: Some(RepoCredentials::basic("u", "tok-123456")),
            known_hosts: KnownHosts::default(),
            deadline: Instant::now(),
            timeout: Duration::from_secs(1),
        };
        let got = scrub(
            &remote,
            "bad request to https://u:tok-123456@h/r with tok-123456",
        );
        assert_eq!(got, "bad request to https://h/r with <redacted>");
    }
}
