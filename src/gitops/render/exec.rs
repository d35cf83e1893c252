//! Running `kustomize` and `helm`: binary lookup, a clean environment, a timeout, bounded stderr.
//!
//! Invariants: a child never inherits cairn's environment (only `PATH` of the binary's own
//! directory plus `/usr/bin:/bin`, `HOME`/XDG dirs pointing into a private temp dir, and the
//! `ARGOCD_APP_*` build variables the caller passes — any other name is dropped); it is
//! killed when the timeout fires (`kill_on_drop`); its stderr reaches the caller trimmed to
//! [`MAX_STDERR`] bytes. The lookup order ([`binary_candidates`]) is pure.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::RenderError;

/// Bound on the stderr kept in an error: enough for a template error and its context, small
/// enough for a condition message on an Application.
pub const MAX_STDERR: usize = 4096;

/// Where to look for `name`, in order: next to the running binary (the pinned tools ship beside
/// cairn), then each entry of `path_var`.
pub fn binary_candidates(
    name: &str,
    exe_dir: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = exe_dir.map(|d| d.join(name)).into_iter().collect();
    if let Some(path_var) = path_var {
        out.extend(
            std::env::split_paths(path_var)
                .filter(|d| !d.as_os_str().is_empty())
                .map(|d| d.join(name)),
        );
    }
    out
}

/// Finds `name` next to the current executable, then on `PATH`.
pub fn find_binary(name: &str) -> Result<PathBuf, RenderError> {
    let exe = std::env::current_exe().ok();
    let exe_dir = exe.as_deref().and_then(Path::parent);
    let path_var = std::env::var_os("PATH");
    binary_candidates(name, exe_dir, path_var.as_deref())
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| RenderError::ToolNotFound {
            tool: name.to_owned(),
        })
}

/// Trims and bounds a tool's stderr (on a char boundary), marking a cut.
pub fn bounded_stderr(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    if text.len() <= MAX_STDERR {
        return text.to_owned();
    }
    let mut end = MAX_STDERR;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (truncated)", &text[..end])
}

/// A private temporary directory, removed on drop (the crate's `tempfile` is a dev-dependency).
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temp dir; `create_dir` fails on an existing
    /// name, so a collision retries with the next counter value.
    pub fn new(prefix: &str) -> Result<Self, RenderError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last_err = String::new();
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("{prefix}-{}-{nanos}-{n}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(RenderError::Io {
            path: base.display().to_string(),
            reason: last_err,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless and must not turn a render into an error.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One tool invocation, built by the pure argument builders.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The tool, for errors (`kustomize`, `helm`).
    pub tool: String,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// Variables added to the clean environment: only Argo CD's non-secret build variables
    /// (`ARGOCD_APP_*`), which kustomize plugins read as they do under Argo CD.
    pub env: Vec<(String, String)>,
}

/// Runs `program` with `inv`, a clean environment with `HOME` in `home`, and `timeout`.
/// Returns stdout; a non-zero exit or a timeout is an error carrying bounded stderr.
pub async fn run(
    program: &Path,
    inv: &Invocation,
    home: &Path,
    timeout: Duration,
) -> Result<Vec<u8>, RenderError> {
    let mut path_var = program
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    path_var.push_str(":/usr/bin:/bin");
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&inv.args)
        .current_dir(&inv.cwd)
        .env_clear()
        .env("PATH", path_var)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .envs(
            inv.env
                .iter()
                .filter(|(k, _)| k.starts_with("ARGOCD_APP_"))
                .map(|(k, v)| (k, v)),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| RenderError::Spawn {
        tool: inv.tool.clone(),
        reason: e.to_string(),
    })?;
    // On timeout the future is dropped with the child in it, and `kill_on_drop` kills it.
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| RenderError::Timeout {
            tool: inv.tool.clone(),
            seconds: timeout.as_secs(),
        })?
        .map_err(|e| RenderError::Spawn {
            tool: inv.tool.clone(),
            reason: e.to_string(),
        })?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(RenderError::ToolFailed {
            tool: inv.tool.clone(),
            command: inv.args.first().cloned().unwrap_or_default(),
            status: output.status.to_string(),
            stderr: bounded_stderr(&output.stderr),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_put_the_exe_dir_first() {
        let got = binary_candidates(
            "helm",
            Some(Path::new("/opt/cairn")),
            Some(OsStr::new("/a::/b")),
        );
        assert_eq!(
            got,
            [
                PathBuf::from("/opt/cairn/helm"),
                PathBuf::from("/a/helm"),
                PathBuf::from("/b/helm")
            ]
        );
        assert_eq!(binary_candidates("k", None, None), Vec::<PathBuf>::new());
    }

    #[test]
    fn stderr_is_trimmed_and_bounded() {
        assert_eq!(bounded_stderr(b"  Error: boom\n\n"), "Error: boom");
        let long = "é".repeat(MAX_STDERR);
        let got = bounded_stderr(long.as_bytes());
        assert!(got.len() <= MAX_STDERR + "… (truncated)".len());
        assert!(got.ends_with("(truncated)"));
    }

    fn sh(script: &str, dir: &Path) -> Invocation {
        Invocation {
            tool: "sh".to_owned(),
            args: vec!["-c".to_owned(), script.to_owned()],
            cwd: dir.to_path_buf(),
            env: vec![
                ("ARGOCD_APP_NAME".to_owned(), "gb".to_owned()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), "leak".to_owned()),
            ],
        }
    }

    #[tokio::test]
    async fn environment_is_clean_and_home_is_private() {
        let home = TempDir::new("cairn-test-home").expect("home");
        let out = run(
            Path::new("/bin/sh"),
            &sh("env", home.path()),
            home.path(),
            Duration::from_secs(10),
        )
        .await
        .expect("runs");
        let env = String::from_utf8_lossy(&out);
        let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
        for name in &names {
            assert!(
                [
                    "PATH",
                    "HOME",
                    "XDG_CONFIG_HOME",
                    "XDG_CACHE_HOME",
                    "XDG_DATA_HOME",
                    "ARGOCD_APP_NAME",
                    "PWD",
                    "SHLVL",
                    "_"
                ]
                .contains(name),
                "leaked variable {name}"
            );
        }
        assert!(env.contains(&format!("HOME={}", home.path().display())));
        assert!(env.contains("ARGOCD_APP_NAME=gb"), "{env}");
        assert!(
            !env.contains("leak"),
            "a non-build variable reached the child"
        );
    }

    #[tokio::test]
    async fn failure_carries_stderr_and_timeout_kills() {
        let home = TempDir::new("cairn-test-home").expect("home");
        let err = run(
            Path::new("/bin/sh"),
            &sh("echo bad >&2; exit 3", home.path()),
            home.path(),
            Duration::from_secs(10),
        )
        .await
        .expect_err("fails");
        let msg = err.to_string();
        assert!(msg.contains("bad") && msg.contains('3'), "{msg}");
        // `exec` makes the recorded pid the long-running process itself.
        let pid_file = home.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
        let started = std::time::Instant::now();
        let err = run(
            Path::new("/bin/sh"),
            &sh(&script, home.path()),
            home.path(),
            Duration::from_millis(300),
        )
        .await
        .expect_err("times out");
        assert!(matches!(err, RenderError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pid_file).expect("pid written");
        // SIGKILL was sent on drop; delivery is asynchronous, so wait (bounded) until the
        // process is gone or a zombie awaiting reaping.
        let stat_path = format!("/proc/{}/stat", pid.trim());
        let mut stat = String::new();
        for _ in 0..250 {
            stat = std::fs::read_to_string(&stat_path).unwrap_or_default();
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next());
            if matches!(state, None | Some('Z' | 'X')) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("child still running 5 s after its timeout: {stat}");
    }
}
