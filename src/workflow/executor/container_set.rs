//! The executor's part of a `containerSet` template: several containers of one pod, each run by
//! its own `cairn exec` wrapper, ordered by `dependencies` (a DAG inside the pod).
//!
//! Owns the in-pod protocol between the wrappers, over the shared emptyDir (Argo's emissary
//! protocol, `/var/run/argo/ctr/<name>/exitcode`, with cairn's mount path):
//! - each wrapper writes `<ctr_dir>/<name>/exitcode` (the decimal exit code, written to a
//!   temporary file and renamed, so a reader never sees half a number) once its command is over,
//!   whatever happened — also when it did not run because a dependency failed (code
//!   [`EXIT_DEPENDENCY_FAILED`]);
//! - a wrapper with dependencies polls those files ([`POLL`]) until each dependency has one,
//!   bounded by [`SetRole::wait_seconds`]; it runs its command only when every dependency exited
//!   0. A dependency that exited non-zero stops it at once with Argo's message
//!   `dependency "<d>" exited with non-zero code: <n>` ([`readiness`]);
//! - the command is retried by the containerSet's `retryStrategy` (`retries` more attempts,
//!   `duration` between them; Argo's process-level retry: no new pod, no new container);
//! - only the container named `main` reports the node's outputs, and it collects them after
//!   every other container of the set has written its exit code, as Argo's `wait` container
//!   collects them after all the set's containers ended: in a set where `main` runs in
//!   parallel with the container writing the shared workspace, the output is read once that
//!   file is complete.
//!
//! Decisions are pure ([`readiness`], [`parse_exit_code`], [`SetRole::attempts`]); the waiting
//! and the file writes are the thin edge, driven by [`super::command::exec_main`].
//!
//! Invariants: every wait is bounded (`wait_seconds`); a wrapper always writes its exit code
//! file before it exits when it could create its directory, so a dependent never waits on a
//! wrapper that finished; a wrapper killed by SIGKILL or OOM writes nothing, and its dependents
//! then wait until their bound (Argo holds a lock file for that case; cairn does not, yet).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exit code of a container that did not run because a dependency failed, or whose wrapper
/// failed (Argo's emissary code 64: its Container node is an Error, not Failed).
pub const EXIT_DEPENDENCY_FAILED: i32 = 64;

/// Exit code of a container whose dependency wait ran out of time.
pub const EXIT_WAIT_TIMEOUT: i32 = 64;

/// Interval between two reads of the dependencies' exit code files.
pub const POLL: Duration = Duration::from_millis(200);

/// Default bound of a dependency wait: one day (the pod's `activeDeadlineSeconds` is the
/// real bound when the workflow sets one; the controller passes the smaller).
pub const DEFAULT_WAIT_SECONDS: u64 = 24 * 3600;

/// Name of the exit code file in a container's directory.
pub const EXIT_CODE_FILE: &str = "exitcode";

/// What one wrapper of a containerSet must know about its place in the set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SetRole {
    /// This container's name in the set.
    pub name: String,
    /// Containers that must have exited 0 before this one runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Every container of the set (`main` waits for all the others before collecting).
    #[serde(default)]
    pub members: Vec<String>,
    /// Directory of the per-container state files (`<mount>/ctr`).
    pub ctr_dir: PathBuf,
    /// Whether this container reports the node's outputs (the one named `main`).
    #[serde(default)]
    pub reports: bool,
    /// `retryStrategy.retries`: attempts after the first.
    #[serde(default)]
    pub retries: u32,
    /// `retryStrategy.duration` in milliseconds: the pause between attempts.
    #[serde(default)]
    pub retry_delay_ms: u64,
    /// Bound of every wait on another container, in seconds.
    #[serde(default = "default_wait")]
    pub wait_seconds: u64,
}

fn default_wait() -> u64 {
    DEFAULT_WAIT_SECONDS
}

impl SetRole {
    /// How many times the command may run: the first attempt plus `retries`.
    pub fn attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The exit code file of container `name`.
    pub fn exit_code_path(&self, name: &str) -> PathBuf {
        self.ctr_dir.join(name).join(EXIT_CODE_FILE)
    }

    /// The other members, for `main`'s wait before it collects outputs.
    pub fn others(&self) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| **m != self.name)
            .cloned()
            .collect()
    }
}

/// What a wrapper knows of one dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepState {
    /// No exit code file yet: still running (or not started).
    Pending,
    /// Exited with this code.
    Exited(i32),
    /// The file exists but does not hold a number.
    Garbled(String),
}

/// Whether a container may run, from its dependencies' states (in `dependencies` order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Every dependency exited 0.
    Run,
    /// At least one dependency has not finished, none failed yet.
    Wait,
    /// A dependency failed: the container does not run.
    Blocked(String),
}

/// Argo's rule: a container runs once all its dependencies exited 0; the first dependency (in
/// the declared order) that exited non-zero blocks it at once. Pure.
pub fn readiness(deps: &[(String, DepState)]) -> Readiness {
    let mut waiting = false;
    for (name, state) in deps {
        match state {
            DepState::Exited(0) => {}
            DepState::Exited(code) => {
                return Readiness::Blocked(format!(
                    "dependency {name:?} exited with non-zero code: {code}"
                ));
            }
            DepState::Garbled(text) => {
                return Readiness::Blocked(format!(
                    "dependency {name:?} died without reporting exit code (file holds {text:?})"
                ));
            }
            DepState::Pending => waiting = true,
        }
    }
    if waiting {
        Readiness::Wait
    } else {
        Readiness::Run
    }
}

/// The exit code in an `exitcode` file (surrounding whitespace ignored). Pure.
pub fn parse_exit_code(text: &str) -> Option<i32> {
    text.trim().parse().ok()
}

/// Reads the state of container `name` from its exit code file.
pub fn dep_state(role: &SetRole, name: &str) -> DepState {
    match std::fs::read_to_string(role.exit_code_path(name)) {
        Ok(text) => match parse_exit_code(&text) {
            Some(code) => DepState::Exited(code),
            None => DepState::Garbled(text.chars().take(32).collect()),
        },
        Err(_) => DepState::Pending,
    }
}

/// How a wait on other containers ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitOutcome {
    /// All of them exited 0 (for a dependency wait) or exited at all (for `main`'s wait).
    Done,
    /// A dependency failed (message).
    Blocked(String),
    /// The bound ran out (message naming the containers still running).
    TimedOut(String),
}

/// Waits until `names` allow this container to run ([`readiness`]), bounded by the role's
/// `wait_seconds`. With `any_exit`, any exit code counts as finished (`main` waiting for the
/// others before collecting outputs).
pub async fn wait_for(role: &SetRole, names: &[String], any_exit: bool) -> WaitOutcome {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(role.wait_seconds);
    loop {
        let states: Vec<(String, DepState)> = names
            .iter()
            .map(|n| {
                let state = match dep_state(role, n) {
                    DepState::Exited(_) | DepState::Garbled(_) if any_exit => DepState::Exited(0),
                    other => other,
                };
                (n.clone(), state)
            })
            .collect();
        match readiness(&states) {
            Readiness::Run => return WaitOutcome::Done,
            Readiness::Blocked(message) => return WaitOutcome::Blocked(message),
            Readiness::Wait => {}
        }
        if tokio::time::Instant::now() >= deadline {
            let running: Vec<&str> = states
                .iter()
                .filter(|(_, s)| *s == DepState::Pending)
                .map(|(n, _)| n.as_str())
                .collect();
            return WaitOutcome::TimedOut(format!(
                "containers {running:?} did not finish within {} s",
                role.wait_seconds
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Creates this container's directory (mode 0777: the set's containers may run as different
/// users, as Argo's emissary does).
pub fn prepare(role: &SetRole) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = role.ctr_dir.join(&role.name);
    std::fs::create_dir_all(&dir)?;
    // Best effort: another uid may own the parent; the file write below is what matters.
    let _ = std::fs::set_permissions(&role.ctr_dir, std::fs::Permissions::from_mode(0o777));
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
    Ok(())
}

/// Writes this container's exit code file atomically (temporary file, then rename).
pub fn write_exit_code(role: &SetRole, code: i32) -> std::io::Result<()> {
    let path = role.exit_code_path(&role.name);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{EXIT_CODE_FILE}.tmp"));
    std::fs::write(&tmp, code.to_string())?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deps(items: &[(&str, DepState)]) -> Vec<(String, DepState)> {
        items
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    #[test]
    fn readiness_table() {
        use DepState::*;
        assert_eq!(readiness(&[]), Readiness::Run);
        assert_eq!(
            readiness(&deps(&[("a", Exited(0)), ("b", Exited(0))])),
            Readiness::Run
        );
        assert_eq!(
            readiness(&deps(&[("a", Exited(0)), ("b", Pending)])),
            Readiness::Wait
        );
        // A failed dependency blocks at once, even while another still runs.
        assert_eq!(
            readiness(&deps(&[("a", Pending), ("b", Exited(2))])),
            Readiness::Blocked("dependency \"b\" exited with non-zero code: 2".into())
        );
        assert_eq!(
            readiness(&deps(&[("a", Exited(1)), ("b", Exited(3))])),
            Readiness::Blocked("dependency \"a\" exited with non-zero code: 1".into())
        );
        assert!(matches!(
            readiness(&deps(&[("a", Garbled("x".into()))])),
            Readiness::Blocked(m) if m.contains("died without reporting")
        ));
    }

    #[test]
    fn exit_code_files_round_trip() {
        assert_eq!(parse_exit_code("0"), Some(0));
        assert_eq!(parse_exit_code(" 137\n"), Some(137));
        assert_eq!(parse_exit_code(""), None);
        assert_eq!(parse_exit_code("x1"), None);
        let dir = tempfile::tempdir().expect("tempdir");
        let role = |name: &str| SetRole {
            name: name.into(),
            dependencies: vec![],
            members: vec!["a".into(), "b".into()],
            ctr_dir: dir.path().join("ctr"),
            reports: false,
            retries: 2,
            retry_delay_ms: 0,
            wait_seconds: 1,
        };
        let a = role("a");
        assert_eq!(a.attempts(), 3);
        assert_eq!(a.others(), vec!["b".to_string()]);
        assert_eq!(dep_state(&a, "b"), DepState::Pending);
        prepare(&role("b")).expect("prepare");
        write_exit_code(&role("b"), 7).expect("write");
        assert_eq!(dep_state(&a, "b"), DepState::Exited(7));
        write_exit_code(&role("b"), 0).expect("rewrite");
        assert_eq!(dep_state(&a, "b"), DepState::Exited(0));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_are_bounded_and_see_failures() {
        let dir = tempfile::tempdir().expect("tempdir");
        let role = SetRole {
            name: "c".into(),
            dependencies: vec!["a".into(), "b".into()],
            members: vec!["a".into(), "b".into(), "c".into()],
            ctr_dir: dir.path().to_path_buf(),
            reports: false,
            retries: 0,
            retry_delay_ms: 0,
            wait_seconds: 5,
        };
        let names = role.dependencies.clone();
        // Nothing written: the wait ends at its bound, naming who is still running.
        match wait_for(&role, &names, false).await {
            WaitOutcome::TimedOut(m) => assert!(m.contains("\"a\", \"b\""), "{m}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let writer = |name: &str, code| {
            let mut r = role.clone();
            r.name = name.into();
            write_exit_code(&r, code).expect("write");
        };
        writer("a", 0);
        writer("b", 1);
        assert_eq!(
            wait_for(&role, &names, false).await,
            WaitOutcome::Blocked("dependency \"b\" exited with non-zero code: 1".into())
        );
        // `main`'s wait for the others: any exit counts.
        assert_eq!(wait_for(&role, &names, true).await, WaitOutcome::Done);
        writer("b", 0);
        assert_eq!(wait_for(&role, &names, false).await, WaitOutcome::Done);
    }
}
