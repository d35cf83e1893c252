//! Against real bare repositories on the local filesystem (`file://`), no network.

use std::path::Path;

use git2::{Oid, Repository, Signature};

use super::*;

pub(crate) const VALUES: &str = "\
# prod values
model:
  uri: s3://models/recommender/3  # set by cairn
  version: 3
replicas: 2
";

/// Commits `files` on top of `main` of the bare repo at `dir` (creating it); returns the commit.
pub(crate) fn commit_files(dir: &Path, files: &[(&str, &str)], message: &str) -> Oid {
    let repo = if dir.join("HEAD").exists() {
        Repository::open_bare(dir).expect("open bare")
    } else {
        Repository::init_bare(dir).expect("init bare")
    };
    let parent = repo
        .find_reference("refs/heads/main")
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let mut index = git2::Index::new().expect("index");
    if let Some(p) = &parent {
        index
            .read_tree(&p.tree().expect("tree"))
            .expect("read tree");
    }
    for (path, text) in files {
        let blob = repo.blob(text.as_bytes()).expect("blob");
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: u32::try_from(text.len()).expect("small"),
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).expect("add");
    }
    let tree = repo
        .find_tree(index.write_tree_to(&repo).expect("write tree"))
        .expect("tree");
    let sig = Signature::now("test", "test@example.com").expect("sig");
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let oid = repo
        .commit(
            Some("refs/heads/main"),
            &sig,
            &sig,
            message,
            &tree,
            &parents,
        )
        .expect("commit");
    repo.set_head("refs/heads/main").expect("head");
    oid
}

pub(crate) fn read_file(dir: &Path, branch: &str, path: &str) -> String {
    let repo = Repository::open_bare(dir).expect("open");
    let tree = repo
        .find_reference(&format!("refs/heads/{branch}"))
        .expect("branch")
        .peel_to_commit()
        .expect("commit")
        .tree()
        .expect("tree");
    let blob = tree
        .get_path(Path::new(path))
        .expect("path")
        .to_object(&repo)
        .expect("object")
        .peel_to_blob()
        .expect("blob");
    String::from_utf8(blob.content().to_vec()).expect("utf8")
}

pub(crate) fn tip(dir: &Path, branch: &str) -> Option<Oid> {
    let repo = Repository::open_bare(dir).expect("open");
    repo.find_reference(&format!("refs/heads/{branch}"))
        .ok()
        .and_then(|r| r.target())
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Target, Oid) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = tmp.path().join("gitops.git");
    let first = commit_files(
        &remote,
        &[
            ("apps/recommender/values/prod.yaml", VALUES),
            ("README.md", "hi\n"),
        ],
        "initial",
    );
    let target = Target {
        url: format!("file://{}", remote.display()),
        branch: "main".into(),
        push_branch: "main".into(),
        file: "apps/recommender/values/prod.yaml".into(),
        creds: None,
        known_hosts: KnownHosts::default(),
        timeout: Duration::from_secs(30),
        work_root: tmp.path().join("data/promote"),
        author_name: "cairn".into(),
        author_email: "cairn@localhost".into(),
    };
    (tmp, remote, target, first)
}

fn set(pairs: &[(&str, &str)]) -> Change {
    Change::Set(
        pairs
            .iter()
            .map(|(p, v)| (YamlPath::parse(p).expect("path"), (*v).to_string()))
            .collect(),
    )
}

#[test]
fn one_commit_with_comments_preserved_then_no_op() {
    let (_tmp, remote, target, first) = setup();
    let change = set(&[
        ("model.uri", "s3://models/recommender/4"),
        ("model.version", "4"),
    ]);
    let pushed =
        commit_and_push(&target, &change, "promote recommender v4 to prod\n").expect("promote");
    let commit = pushed.commit.clone().expect("a commit");
    assert_eq!((pushed.base, pushed.attempts), (first.to_string(), 1));
    let head = tip(&remote, "main").expect("main");
    assert_eq!(head.to_string(), commit);
    let repo = Repository::open_bare(&remote).expect("open");
    let c = repo.find_commit(head).expect("commit");
    assert_eq!(c.parent_ids().collect::<Vec<_>>(), vec![first]);
    assert_eq!(c.message().ok(), Some("promote recommender v4 to prod\n"));
    assert_eq!(c.author().name().ok(), Some("cairn"));
    assert_eq!(
        read_file(&remote, "main", &target.file),
        VALUES
            .replace("recommender/3", "recommender/4")
            .replace("version: 3", "version: 4")
    );
    // Only the file changed.
    let diff = repo
        .diff_tree_to_tree(
            Some(&repo.find_commit(first).expect("first").tree().expect("t")),
            Some(&c.tree().expect("t")),
            None,
        )
        .expect("diff");
    assert_eq!(diff.deltas().len(), 1);
    // Again: the values are there, nothing is committed.
    let again =
        commit_and_push(&target, &change, "promote recommender v4 to prod\n").expect("no-op");
    assert_eq!(again.commit, None);
    assert_eq!(tip(&remote, "main"), Some(head));
}

#[test]
fn review_mode_pushes_a_branch() {
    let (_tmp, remote, mut target, first) = setup();
    target.push_branch = "promote/recommender-prod-v4".into();
    let pushed =
        commit_and_push(&target, &set(&[("model.version", "4")]), "promote\n").expect("promote");
    assert_eq!(
        tip(&remote, "main"),
        Some(first),
        "the tracked branch is untouched"
    );
    assert_eq!(
        tip(&remote, "promote/recommender-prod-v4").map(|o| o.to_string()),
        pushed.commit
    );
    assert!(read_file(&remote, "promote/recommender-prod-v4", &target.file).contains("version: 4"));
}

#[test]
fn a_concurrent_push_is_rebased() {
    let (_tmp, remote, target, _first) = setup();
    // Someone else pushes to main between our fetch and our push (first attempt only).
    let mut other = None;
    let mut hook = |attempt: u32| {
        if attempt == 1 {
            let edited = VALUES.replace("replicas: 2", "replicas: 5");
            other = Some(commit_files(
                &remote,
                &[("apps/recommender/values/prod.yaml", edited.as_str())],
                "scale",
            ));
        }
    };
    let pushed = commit_and_push_with(
        &target,
        &set(&[("model.version", "4")]),
        "promote\n",
        &mut hook,
    )
    .expect("promote");
    let other = other.expect("the hook ran");
    assert_eq!(pushed.attempts, 2);
    assert_eq!(pushed.base, other.to_string());
    let repo = Repository::open_bare(&remote).expect("open");
    let head = repo
        .find_commit(tip(&remote, "main").expect("main"))
        .expect("commit");
    assert_eq!(Some(head.id().to_string()), pushed.commit);
    assert_eq!(head.parent_id(0).expect("parent"), other);
    // Both changes are there.
    let text = read_file(&remote, "main", &target.file);
    assert!(
        text.contains("replicas: 5") && text.contains("version: 4"),
        "{text}"
    );
}

#[test]
fn a_branch_that_keeps_moving_gives_up() {
    let (_tmp, remote, target, _first) = setup();
    let mut n = 0;
    let mut hook = |_attempt: u32| {
        n += 1;
        commit_files(&remote, &[("README.md", &format!("{n}\n"))], "move");
    };
    let err = commit_and_push_with(&target, &set(&[("model.version", "4")]), "p\n", &mut hook)
        .expect_err("conflict");
    assert!(
        matches!(
            err,
            PromoteError::Conflict {
                attempts: MAX_PUSH_ATTEMPTS,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn revert_restores_the_file() {
    let (_tmp, remote, target, _first) = setup();
    let pushed =
        commit_and_push(&target, &set(&[("model.version", "4")]), "promote\n").expect("promote");
    let sha = pushed.commit.expect("commit");
    let reverted = commit_and_push(&target, &Change::Revert(sha), "rollback\n").expect("rollback");
    assert!(reverted.commit.is_some());
    assert_eq!(read_file(&remote, "main", &target.file), VALUES);
}

#[test]
fn missing_file_branch_and_bad_yaml_are_named() {
    let (_tmp, remote, mut target, _first) = setup();
    target.file = "apps/other.yaml".into();
    let err = commit_and_push(&target, &set(&[("a", "b")]), "p\n").expect_err("file");
    assert!(matches!(err, PromoteError::FileNotFound { .. }), "{err}");
    target.file = "apps/recommender/values/prod.yaml".into();
    let err =
        commit_and_push(&target, &set(&[("model.version.x", "b")]), "p\n").expect_err("shape");
    assert!(
        err.to_string()
            .starts_with("file \"apps/recommender/values/prod.yaml\": path \"model.version.x\""),
        "{err}"
    );
    target.branch = "nope".into();
    target.push_branch = "nope".into();
    let err = commit_and_push(&target, &set(&[("a", "b")]), "p\n").expect_err("branch");
    assert!(
        matches!(
            err,
            PromoteError::Source(_) | PromoteError::BranchNotFound { .. }
        ),
        "{err}"
    );
    assert!(tip(&remote, "nope").is_none());
}
