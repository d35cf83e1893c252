//! Integration tests of `cairn::gitops::source` against real Git: repositories made with the
//! `git` CLI in a tempdir, served as local paths and over smart HTTP (`git http-backend` behind a
//! small std::net server with basic auth), all on loopback. Every loop and wait is bounded.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cairn::gitops::source::{
    CredentialStore, GitSource, GitSourceConfig, RepoCredentials, RepoSecret, Resolution,
    SecretKind, SourceError,
};
use k8s_openapi::ByteString;

#[path = "common/git_http.rs"]
mod git_http;
use git_http::HttpServer;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-token-value";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A working repository and the bare repository it pushes to (the one served).
struct Fixture {
    _tmp: tempfile::TempDir,
    work: PathBuf,
    /// Directory served as GIT_PROJECT_ROOT; the bare repository is `root/repo.git`.
    root: PathBuf,
    data: PathBuf,
    /// main's first commit, main's second commit, the `dev` branch's commit.
    c1: String,
    c2: String,
    dev: String,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let work = tmp.path().join("work");
        let root = tmp.path().join("served");
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&work).expect("mkdir");
        std::fs::create_dir_all(&root).expect("mkdir");
        git(&work, &["init", "-q"]);
        write(&work, "apps/web/deploy.yaml", "kind: Deployment\n");
        write(&work, "apps/web/nested/cm.yaml", "kind: ConfigMap\n");
        write(&work, "README.md", "v1\n");
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "one"]);
        let c1 = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["tag", "v1"]);
        write(&work, "README.md", "v2\n");
        write(&work, "apps/web/run.sh", "#!/bin/sh\n");
        git(
            &work,
            &["update-index", "--add", "--chmod=+x", "apps/web/run.sh"],
        );
        git(&work, &["add", "README.md"]);
        git(&work, &["commit", "-qm", "two"]);
        let c2 = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["tag", "-a", "v2", "-m", "annotated"]);
        git(&work, &["checkout", "-qb", "dev"]);
        write(&work, "dev.txt", "dev\n");
        git(&work, &["add", "."]);
        git(&work, &["commit", "-qm", "dev"]);
        let dev = git(&work, &["rev-parse", "HEAD"]);
        git(&work, &["checkout", "-q", "main"]);
        git(
            tmp.path(),
            &[
                "clone",
                "-q",
                "--bare",
                work.to_str().expect("utf8"),
                root.join("repo.git").to_str().expect("utf8"),
            ],
        );
        git(
            &work,
            &[
                "remote",
                "add",
                "origin",
                root.join("repo.git").to_str().expect("utf8"),
            ],
        );
        Self {
            _tmp: tmp,
            work,
            root,
            data,
            c1,
            c2,
            dev,
        }
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.root.join("repo.git").display())
    }

    fn source(&self) -> GitSource {
        let mut config = GitSourceConfig::new(&self.data);
        config.timeout = Duration::from_secs(30);
        GitSource::new(config)
    }

    /// Commits a change on main and pushes it; returns the new SHA.
    fn push_commit(&self, text: &str) -> String {
        write(&self.work, "README.md", text);
        git(&self.work, &["commit", "-qam", text]);
        git(&self.work, &["push", "-q", "origin", "main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn write(dir: &Path, rel: &str, content: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

fn commit(sha: &str) -> Resolution {
    Resolution::Commit(sha.to_string())
}

#[tokio::test]
async fn resolves_branch_tag_sha_and_head_from_a_local_repository() {
    let fx = Fixture::new();
    let source = fx.source();
    let url = fx.file_url();
    let cases: Vec<(&str, Resolution)> = vec![
        ("", commit(&fx.c2)),
        ("HEAD", commit(&fx.c2)),
        ("main", commit(&fx.c2)),
        ("dev", commit(&fx.dev)),
        ("refs/heads/dev", commit(&fx.dev)),
        ("v1", commit(&fx.c1)),
        ("v2", commit(&fx.c2)),
        (&fx.c1, commit(&fx.c1)),
        (&fx.c1[..8], Resolution::ShortSha(fx.c1[..8].to_string())),
    ];
    for (revision, want) in &cases {
        assert_eq!(
            &source
                .resolve_remote(&url, revision, None)
                .await
                .expect(revision),
            want,
            "{revision:?}"
        );
    }
    // Polling transfers no objects: no mirror exists yet.
    assert!(!source.mirror_path(&url).exists());
    assert_eq!(source.fetch_count(), 0);
    // fetch expands every form to the full commit SHA present in the mirror.
    for (revision, want) in [
        ("main", &fx.c2),
        ("v2", &fx.c2),
        ("dev", &fx.dev),
        (&fx.c1[..8], &fx.c1),
        (&fx.c1, &fx.c1),
    ] {
        assert_eq!(
            &source
                .fetch(&url, revision, None)
                .await
                .expect(revision)
                .sha,
            want,
            "{revision}"
        );
    }
}

#[tokio::test]
async fn new_commit_is_seen_and_mirror_is_shared_between_apps() {
    let fx = Fixture::new();
    let source = fx.source();
    let url = fx.file_url();
    // Two apps of one repository, spelled differently: one mirror, one fetch.
    let other_spelling = format!("{url}/");
    let (a, b) = tokio::join!(
        source.fetch(&url, "main", None),
        source.fetch(&other_spelling, "HEAD", None)
    );
    let (a, b) = (a.expect("app a"), b.expect("app b"));
    assert_eq!(
        (a.sha.as_str(), b.sha.as_str()),
        (fx.c2.as_str(), fx.c2.as_str())
    );
    assert_eq!(source.fetch_count(), 1, "one fetch serves both apps");
    assert_eq!(
        source.mirror_path(&url),
        source.mirror_path(&format!("{url}/"))
    );
    assert!(source.mirror_path(&url).starts_with(fx.data.join("repos")));
    // Everything already fetched: a tag of a fetched commit needs no fetch.
    assert!(!source.fetch(&url, "v1", None).await.expect("v1").fetched);
    assert_eq!(source.fetch_count(), 1);

    let c3 = fx.push_commit("v3\n");
    assert_eq!(
        source
            .resolve_remote(&url, "main", None)
            .await
            .expect("poll"),
        commit(&c3)
    );
    let again = source.fetch(&url, "main", None).await.expect("refetch");
    assert_eq!((again.sha.as_str(), again.fetched), (c3.as_str(), true));
    assert_eq!(source.fetch_count(), 2);
}

#[tokio::test]
async fn checks_out_a_path_of_a_commit() {
    let fx = Fixture::new();
    let source = fx.source();
    let url = fx.file_url();
    let sha = source.fetch(&url, "main", None).await.expect("fetch").sha;
    let dest = fx.data.join("work/app");
    let summary = source
        .checkout(&url, &sha, "apps/web", &dest)
        .await
        .expect("checkout");
    assert_eq!(summary.files, 3);
    assert_eq!(
        std::fs::read_to_string(dest.join("deploy.yaml")).expect("read"),
        "kind: Deployment\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("nested/cm.yaml")).expect("read"),
        "kind: ConfigMap\n"
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(dest.join("run.sh"))
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "executable bit kept");
    assert!(!dest.join("README.md").exists(), "only the subtree");

    // The older commit has no run.sh; the whole tree at the root.
    let old = fx.data.join("work/old");
    let summary = source
        .checkout(&url, &fx.c1, ".", &old)
        .await
        .expect("root checkout");
    assert_eq!(summary.files, 3);
    assert_eq!(
        std::fs::read_to_string(old.join("README.md")).expect("read"),
        "v1\n"
    );

    let bad: [(&str, &str); 4] = [
        ("apps/missing", "does not exist"),
        ("README.md", "not a directory"),
        ("../etc", "`..`"),
        ("/etc", "relative"),
    ];
    for (i, (path, want)) in bad.iter().enumerate() {
        let err = source
            .checkout(&url, &sha, path, &fx.data.join(format!("bad{i}")))
            .await
            .expect_err(path);
        assert!(
            matches!(err, SourceError::InvalidPath { .. }),
            "{path}: {err}"
        );
        assert!(err.to_string().contains(want), "{path}: {err}");
    }
    let err = source
        .checkout(&url, &sha, "", &dest)
        .await
        .expect_err("non-empty dest");
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[tokio::test]
async fn unknown_revision_and_unreachable_repositories_are_errors() {
    let fx = Fixture::new();
    let source = fx.source();
    let url = fx.file_url();
    for revision in ["no-such-branch", "refs/tags/nope", "zzzzzzz"] {
        let err = source
            .fetch(&url, revision, None)
            .await
            .expect_err(revision);
        assert!(matches!(err, SourceError::RevisionNotFound { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(revision) && msg.contains("repo.git"), "{msg}");
    }
    // A well-formed SHA the repository does not have.
    let ghost = "0123456789abcdef0123456789abcdef01234567";
    let err = source.fetch(&url, ghost, None).await.expect_err("ghost");
    assert!(
        matches!(err, SourceError::RevisionNotFound { .. }) && err.to_string().contains(ghost),
        "{err}"
    );

    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let missing = format!("file://{}", fx.root.join("missing.git").display());
    for url in [
        format!("http://u:{PASSWORD}@127.0.0.1:{port}/repo.git"),
        missing,
    ] {
        let err = source
            .resolve_remote(&url, "main", None)
            .await
            .expect_err(&url);
        assert!(matches!(err, SourceError::Git { .. }), "{err}");
        assert!(!err.to_string().contains(PASSWORD), "{err}");
        let err = source.fetch(&url, "main", None).await.expect_err(&url);
        assert!(!format!("{err} {err:?}").contains(PASSWORD), "{err:?}");
    }
}

#[tokio::test]
async fn fetches_over_http_with_basic_auth_and_shallow_history() {
    let fx = Fixture::new();
    let server = HttpServer::start(&fx.root, Some((USER, PASSWORD)));
    let source = fx.source();
    let url = server.url();
    let creds = RepoCredentials::basic(USER, PASSWORD);

    assert_eq!(
        source
            .resolve_remote(&url, "dev", Some(&creds))
            .await
            .expect("ls-remote"),
        commit(&fx.dev)
    );
    assert_eq!(
        source
            .resolve_remote(&url, "v2", Some(&creds))
            .await
            .expect("tag"),
        commit(&fx.c2)
    );
    let fetched = source
        .fetch(&url, "main", Some(&creds))
        .await
        .expect("fetch");
    assert_eq!(
        (fetched.sha.as_str(), fetched.fetched),
        (fx.c2.as_str(), true)
    );
    assert!(
        source.mirror_path(&url).join("shallow").exists(),
        "remote fetch is shallow"
    );
    let dest = fx.data.join("http-checkout");
    source
        .checkout(&url, &fetched.sha, "apps", &dest)
        .await
        .expect("checkout");
    assert!(dest.join("web/deploy.yaml").is_file());

    // Two new commits pushed: the next fetch sees the newest, still shallow.
    let c3 = fx.push_commit("v3 over http\n");
    let c4 = fx.push_commit("v4 over http\n");
    let seen = source
        .fetch(&url, "HEAD", Some(&creds))
        .await
        .expect("refetch");
    assert_eq!((seen.sha.as_str(), seen.fetched), (c4.as_str(), true));
    assert!(
        source.mirror_path(&url).join("shallow").exists(),
        "still shallow"
    );
    // c3 is no ref's tip, so the shallow mirror lacks it: the mirror is deepened once.
    let old = source
        .fetch(&url, &c3, Some(&creds))
        .await
        .expect("old sha");
    assert_eq!((old.sha.as_str(), old.fetched), (c3.as_str(), true));
    assert!(
        !source.mirror_path(&url).join("shallow").exists(),
        "unshallowed"
    );
    let short = source
        .fetch(&url, &fx.c1[..10], Some(&creds))
        .await
        .expect("short sha");
    assert_eq!((short.sha.as_str(), short.fetched), (fx.c1.as_str(), false));

    // The same credentials read from Argo CD Secrets: a repo-creds template for the host.
    let secret = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    };
    let prefix = format!("http://127.0.0.1:{}/", server.port());
    let template = RepoSecret::from_data(
        "lab-creds",
        SecretKind::RepoCreds,
        &secret(&[
            ("type", "git"),
            ("url", &prefix),
            ("username", USER),
            ("password", PASSWORD),
        ]),
    )
    .expect("valid secret")
    .expect("git secret");
    let store = CredentialStore::new(vec![template]);
    let from_secret = store.for_url(&url).expect("template matches");
    assert_eq!(
        source
            .resolve_remote(&url, "main", Some(&from_secret))
            .await
            .expect("via secret"),
        commit(&c4)
    );

    let err = source
        .fetch(&url, "nope", Some(&creds))
        .await
        .expect_err("unknown revision");
    let msg = err.to_string();
    assert!(msg.contains("\"nope\"") && msg.contains(&url), "{msg}");
    assert!(server.requests.load(Ordering::Relaxed) > 0);
}

#[tokio::test]
async fn http_authentication_failures_never_show_the_password() {
    let fx = Fixture::new();
    let server = HttpServer::start(&fx.root, Some((USER, PASSWORD)));
    let source = fx.source();
    let url = server.url();
    let wrong = RepoCredentials::basic(USER, "wrong-password-123");
    let with_userinfo = format!(
        "http://{USER}:wrong-password-123@127.0.0.1:{}/repo.git",
        server.port()
    );
    let cases: [(&str, Option<&RepoCredentials>); 3] = [
        (&url, Some(&wrong)),
        (&url, None),
        (&with_userinfo, Some(&wrong)),
    ];
    for (url, creds) in cases {
        let err = source
            .fetch(url, "main", creds)
            .await
            .expect_err("auth must fail");
        let text = format!("{err} {err:?}");
        assert!(matches!(err, SourceError::AuthFailed { .. }), "{text}");
        assert!(text.contains("authentication"), "{text}");
        assert!(
            !text.contains("wrong-password-123") && !text.contains(PASSWORD),
            "{text}"
        );
        let err = source
            .resolve_remote(url, "main", creds)
            .await
            .expect_err("auth must fail");
        assert!(matches!(err, SourceError::AuthFailed { .. }), "{err}");
    }
    assert_eq!(source.fetch_count(), 0);
}

#[test]
fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts and says nothing, then closes after a bounded wait.
    let server = std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            // Waits (at most 2 s) for a request that never gets an answer.
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
    });
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut config = GitSourceConfig::new(tmp.path());
    config.timeout = Duration::from_secs(1);
    let source = GitSource::new(config);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let err = rt
        .block_on(source.fetch(&url, "main", None))
        .expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, SourceError::Timeout { seconds: 1, .. }),
        "{err}"
    );
    // The libgit2 call still blocks on the silent socket; do not wait for it.
    rt.shutdown_background();
    let _ = server.join();
}

/// Writes a commit whose root tree holds one entry (`mode`, `name`, blob `content`) straight into
/// the served bare repository, as a hostile repository could, on branch `branch`.
fn plant_entry(fx: &Fixture, branch: &str, mode: &str, name: &str, content: &str) {
    let bare = fx.root.join("repo.git");
    let blob_file = fx.data.join(format!("{branch}.blob"));
    std::fs::create_dir_all(&fx.data).expect("mkdir");
    std::fs::write(&blob_file, content).expect("write");
    let blob = git(
        &bare,
        &["hash-object", "-w", blob_file.to_str().expect("utf8")],
    );
    let listing = fx.data.join(format!("{branch}.tree"));
    std::fs::write(&listing, format!("{mode} blob {blob}\t{name}\n")).expect("write");
    let out = Command::new("git")
        .arg("mktree")
        .current_dir(&bare)
        .stdin(std::fs::File::open(&listing).expect("open"))
        .output()
        .expect("mktree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let commit = git(&bare, &["commit-tree", &tree, "-m", "hostile"]);
    git(
        &bare,
        &["update-ref", &format!("refs/heads/{branch}"), &commit],
    );
}

#[tokio::test]
async fn checkout_refuses_entries_that_escape_the_destination() {
    let fx = Fixture::new();
    let cases = [
        ("dotdot", "100644", "..", "parent"),
        ("dotgit", "100644", ".git", "gitdir: /tmp/evil\n"),
        ("backslash", "100644", "a\\..\\b", "x"),
        ("symlink-out", "120000", "link", "../../../../etc/passwd"),
        ("symlink-abs", "120000", "link", "/etc/passwd"),
    ];
    for (branch, mode, name, content) in cases {
        plant_entry(&fx, branch, mode, name, content);
    }
    let source = fx.source();
    let url = fx.file_url();
    for (branch, _, name, _) in cases {
        let sha = source.fetch(&url, branch, None).await.expect(branch).sha;
        let dest = fx.data.join("checkouts").join(branch);
        let err = source
            .checkout(&url, &sha, "", &dest)
            .await
            .expect_err(branch);
        assert!(
            matches!(err, SourceError::UnsafeTree { .. }),
            "{branch}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("{name:?}")),
            "{branch}: {err}"
        );
        assert!(
            !dest.exists(),
            "{branch}: a failed checkout leaves no partial tree"
        );
        // Nothing was written outside the destination.
        assert!(
            !fx.data.join("checkouts/parent").exists() && !fx.data.join("checkouts/.git").exists()
        );
    }
    // A symlink that stays inside is fine.
    plant_entry(&fx, "symlink-in", "120000", "link", "./target.yaml");
    let sha = source
        .fetch(&url, "symlink-in", None)
        .await
        .expect("fetch")
        .sha;
    let dest = fx.data.join("checkouts/ok");
    source
        .checkout(&url, &sha, "", &dest)
        .await
        .expect("inside symlink");
    assert_eq!(
        std::fs::read_link(dest.join("link")).expect("link"),
        PathBuf::from("./target.yaml")
    );
}

/// `git daemon` on loopback, killed on drop.
struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_daemon(root: &Path) -> Daemon {
    let probe = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = probe.local_addr().expect("addr").port();
    drop(probe);
    let child = Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", root.display()))
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon");
    let daemon = Daemon { child, port };
    // Bounded wait (at most 5 s) for the daemon to listen.
    let mut ready = false;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "git daemon did not start on port {port}");
    daemon
}

#[tokio::test]
async fn fetches_over_the_git_protocol_from_git_daemon() {
    let fx = Fixture::new();
    let daemon = start_daemon(&fx.root).await;
    let source = fx.source();
    let url = format!("git://127.0.0.1:{}/repo.git", daemon.port);
    assert_eq!(
        source
            .resolve_remote(&url, "v1", None)
            .await
            .expect("ls-remote"),
        commit(&fx.c1)
    );
    let fetched = source.fetch(&url, "main", None).await.expect("fetch");
    assert_eq!(
        (fetched.sha.as_str(), fetched.fetched),
        (fx.c2.as_str(), true)
    );
    let dest = fx.data.join("daemon-checkout");
    source
        .checkout(&url, &fetched.sha, "apps/web/nested", &dest)
        .await
        .expect("checkout");
    assert!(dest.join("cm.yaml").is_file());
}
