//! The executor wrapper: cairn's equivalent of Argo's emissary, run inside the user's container
//! as `cairn exec -- <command...>`.
//!
//! Owns one step of a workflow node from the inside of its pod: start the user's command
//! directly (no shell), pass its stdin/stdout/stderr through, capture stdout for a `script`
//! template's `outputs.result`, forward SIGTERM/SIGINT to it, wait, then collect the declared
//! output parameters from their files. The outcome is an [`ExecResult`] (JSON, camelCase) that the
//! controller side reports in a WorkflowTaskResult's status.
//!
//! The process edge ([`run`]) is thin; the decisions are pure functions tested on data:
//! [`exit_code_of`] (signal → `128 + n`, as shells report it), [`script_result`] (trailing
//! newline trimmed), [`collect_parameters`] (files → values, defaults, size limit) and
//! [`ExecResult::phase`] / [`ExecResult::message`] (Argo's node phase and message).
//!
//! `cairn exec` and `cairn exec-init` are wired in [`command`]; the WorkflowTaskResult written at
//! the end of a run is built and sent by [`report`].
//!
//! Public API, as [`command::exec_main`] wires it:
//!
//! ```text
//! let spec = ExecSpec::from_json(&std::env::var(SPEC_ENV)?)?;   // or from a file
//! let result = run(&spec, ExecIo::process()).await?;             // Err only for an invalid spec
//! // report `serde_json::to_string(&result)` to the controller (WorkflowTaskResult status);
//! // the controller derives the node with `result.phase()` / `result.message(MAIN_CONTAINER)`;
//! // the wrapper exits with `result.exit_code` so the pod's container status agrees.
//! ```
//!
//! Argo sources followed (argoproj/argo-workflows): `workflow/executor/executor.go`
//! (`CaptureScriptResult`: one trailing `\n` trimmed; `SaveParameters`: `valueFrom.default` on
//! any read failure, file contents verbatim), `workflow/executor/emissary/emissary.go` (file
//! contents verbatim), `workflow/controller/operator.go` (failed-pod message
//! `<container>: <reason> (exit code N)`, main container → Failed). Deliberate difference: an
//! oversized `result` fails the node (Argo keeps its last 256 kB with a warning).
//!
//! Invariants:
//! - [`run`] returns `Err` only for an invalid [`ExecSpec`] (e.g. no command); everything that
//!   happens after validation (spawn failure, non-zero exit, unreadable outputs) is recorded in
//!   the [`ExecResult`], so the controller always gets a result to report.
//! - The passthrough of stdout is never truncated; only the capture for `result` is bounded,
//!   so a chatty script keeps its logs while its `result` fails the node with a clear message.
//! - No output value larger than [`ExecSpec::output_limit_bytes`] is ever read into memory
//!   whole: a parameter file's size is checked before it is read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

pub mod command;
pub mod container_set;
pub mod report;

/// Environment variable through which the controller passes the [`ExecSpec`] as JSON.
pub const SPEC_ENV: &str = "CAIRN_EXEC_SPEC";

/// Default size limit of one output (a parameter file or a script's stdout): Argo's 256 KiB.
pub const DEFAULT_OUTPUT_LIMIT_BYTES: u64 = 256 * 1024;

/// Exit code reported when the command is not found, as POSIX shells report it.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Exit code reported when the command exists but cannot be started (e.g. not executable).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;

/// Errors of the executor: only an invalid spec is an error; run-time failures live in
/// [`ExecResult::errors`].
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The spec has no command (or an empty program name); the template must give one.
    #[error(
        "executor spec: `command` is empty; the template must set `command` (or the image's entrypoint must be resolved by the controller)"
    )]
    MissingCommand,
    /// The spec's JSON does not parse into an [`ExecSpec`].
    #[error("executor spec: invalid JSON: {0}")]
    InvalidSpec(#[source] serde_json::Error),
    /// `cairn exec-init` could not install the executor binary.
    #[error("executor: cannot install the executor binary at {dest}: {source}")]
    Install {
        /// Destination path.
        dest: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A script source is given without the path to write it to.
    #[error("executor spec: `scriptSource` is set but `scriptPath` is not")]
    ScriptWithoutPath,
    /// An output parameter declares no name.
    #[error("executor spec: outputs.parameters[{index}] has an empty `name`")]
    UnnamedParameter {
        /// Position of the parameter in `outputs`.
        index: usize,
    },
}

/// What the controller tells the executor to do; deserialized from JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecSpec {
    /// The argv of the user's command: `command` followed by `args` of the template. In a pod
    /// the argv comes from `cairn exec -- <argv>` instead and the spec leaves this empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Working directory of the command (the container's `workingDir`); relative output paths
    /// are resolved against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<PathBuf>,
    /// The template's declared `outputs.parameters`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputParameter>,
    /// Whether stdout becomes `outputs.result`: set for `script` templates (Argo also captures it
    /// for container templates whose result is referenced; the controller decides).
    #[serde(default)]
    pub script: bool,
    /// Size limit in bytes of each output (a parameter file, the script's result).
    #[serde(default = "default_limit")]
    pub output_limit_bytes: u64,
    /// A `script` template's source. The wrapper writes it to [`ExecSpec::script_path`] before
    /// starting the command (whose argv already ends with that path, as Argo runs
    /// `command + args + [script file]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_source: Option<String>,
    /// Where the script source is written (under the shared `/var/run/cairn` volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_path: Option<PathBuf>,
    /// Input artifacts, staged by `cairn exec-init` before the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_artifacts: Vec<crate::workflow::artifacts::InputArtifact>,
    /// Output artifacts, saved by `cairn exec` after the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_artifacts: Vec<crate::workflow::artifacts::OutputArtifact>,
    /// Where artifact traffic goes (set when there are artifacts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_channel: Option<crate::workflow::artifacts::transfer::ChannelSpec>,
    /// Set for a container of a `containerSet` template: its place in the set (dependencies,
    /// retries, whether it reports); see [`container_set`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_set: Option<container_set::SetRole>,
    /// The step logs to cairn's MLflow API as its pod (`MLFLOW_TRACKING_URI: cairn`): the
    /// command gets `MLFLOW_TRACKING_TOKEN`, the pod's projected token read from the artifact
    /// channel's token file when the command starts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mlflow_token: bool,
}

fn default_limit() -> u64 {
    DEFAULT_OUTPUT_LIMIT_BYTES
}

/// One declared output parameter, as in Argo's `outputs.parameters[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputParameter {
    /// Parameter name (`outputs.parameters.<name>`).
    pub name: String,
    /// Where the value comes from; parameters without a `path` are not the executor's concern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// Argo's `valueFrom` as far as the executor reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// File holding the value once the command has exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// Value used when the file does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Set for parameters supplied from outside (e.g. resuming a suspend node): never read here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplied: Option<serde_json::Value>,
}

impl ExecSpec {
    /// Parses and validates a spec from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, ExecutorError> {
        let spec: Self = serde_json::from_str(text).map_err(ExecutorError::InvalidSpec)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what cannot be decided later: a command to run, named outputs.
    pub fn validate(&self) -> Result<(), ExecutorError> {
        match self.command.first() {
            Some(program) if !program.is_empty() => {}
            _ => return Err(ExecutorError::MissingCommand),
        }
        if let Some(index) = self.outputs.iter().position(|p| p.name.is_empty()) {
            return Err(ExecutorError::UnnamedParameter { index });
        }
        if self.script_source.is_some() && self.script_path.is_none() {
            return Err(ExecutorError::ScriptWithoutPath);
        }
        Ok(())
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        match &self.working_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// Name of the container running the user's command in container and script templates (Argo's).
pub const MAIN_CONTAINER: &str = "main";

/// Phase of the node as the executor sees it (Argo's node phases for a finished pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecPhase {
    /// Exit code 0 and every output collected.
    Succeeded,
    /// Non-zero exit code, or an output that could not be collected.
    Failed,
}

/// The outcome of one run, reported to the controller. Field names are stable (camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecResult {
    /// Exit code of the command; `128 + n` when killed by signal `n`; 127/126 when it could
    /// not be started.
    pub exit_code: i32,
    /// `outputs.result` of a script template (stdout, one trailing newline trimmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Collected output parameters by name.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Everything that went wrong after validation, each naming the object concerned.
    #[serde(default)]
    pub errors: Vec<String>,
    /// Output artifacts stored (Argo's artifact JSON with location, `digest`, `size`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<serde_json::Value>,
    /// When the command was started (or its start attempted).
    pub started_at: jiff::Timestamp,
    /// When the outputs had been collected.
    pub finished_at: jiff::Timestamp,
}

impl ExecResult {
    /// Argo's phase: exit 0 with no collection error → Succeeded, otherwise Failed.
    pub fn phase(&self) -> ExecPhase {
        if self.exit_code == 0 && self.errors.is_empty() {
            ExecPhase::Succeeded
        } else {
            ExecPhase::Failed
        }
    }

    /// The node's message for the run in `container` (`main` for container and script
    /// templates): Argo's `<container>: Error (exit code N)` for a non-zero exit (the wording of
    /// its operator's failed-pod reason, where the container's terminated reason is `Error`),
    /// else the collection errors joined; `None` on success.
    pub fn message(&self, container: &str) -> Option<String> {
        if self.exit_code != 0 {
            let mut msg = format!("{container}: Error (exit code {})", self.exit_code);
            // A spawn failure carries the OS error; keep it visible next to Argo's wording.
            if !self.errors.is_empty() {
                msg.push_str(": ");
                msg.push_str(&self.errors.join("; "));
            }
            Some(msg)
        } else if self.errors.is_empty() {
            None
        } else {
            Some(format!("{container}: {}", self.errors.join("; ")))
        }
    }
}

/// A signal the wrapper forwards to its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM (15): Kubernetes' graceful stop.
    Term,
    /// SIGINT (2).
    Int,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Term => "TERM",
            Self::Int => "INT",
        }
    }
}

/// How a signal reaches the child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalForwarder {
    /// The kill(2) system call (through rustix, so the crate stays free of `unsafe`): works in
    /// images without a `kill` program (scratch, distroless), what a pod needs.
    Syscall,
    /// Run this `kill` program with `-s NAME PID` (tests use it to observe forwarding).
    KillCommand(PathBuf),
}

impl SignalForwarder {
    async fn forward(&self, pid: u32, signal: Signal) -> std::io::Result<()> {
        match self {
            Self::Syscall => {
                let raw = i32::try_from(pid).map_err(std::io::Error::other)?;
                let pid = rustix::process::Pid::from_raw(raw)
                    .ok_or_else(|| std::io::Error::other(format!("invalid pid {raw}")))?;
                let sig = match signal {
                    Signal::Term => rustix::process::Signal::TERM,
                    Signal::Int => rustix::process::Signal::INT,
                };
                rustix::process::kill_process(pid, sig).map_err(std::io::Error::from)
            }
            Self::KillCommand(program) => {
                let status = tokio::process::Command::new(program)
                    .arg("-s")
                    .arg(signal.name())
                    .arg(pid.to_string())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .status()
                    .await?;
                if status.success() {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "{} exited with {status}",
                        program.display()
                    )))
                }
            }
        }
    }
}

/// The process edge of [`run`]: where stdout goes, where signals come from, how they are sent.
pub struct ExecIo {
    /// Passthrough of the child's stdout (the container's log); never truncated.
    pub stdout: Pin<Box<dyn AsyncWrite + Send>>,
    /// Whether the child inherits the wrapper's stdin and stderr (true in a pod; tests use false
    /// to keep their output quiet).
    pub inherit_stdio: bool,
    /// Signals received by the wrapper, to forward to the child.
    pub signals: mpsc::Receiver<Signal>,
    /// How forwarded signals are delivered.
    pub forwarder: SignalForwarder,
}

impl ExecIo {
    /// The real edge: the process' stdout, SIGTERM/SIGINT from `tokio::signal`, kill(2).
    /// Must be called inside a Tokio runtime. If a signal handler cannot be installed the
    /// wrapper still runs; it just cannot forward that signal (logged).
    pub fn process() -> Self {
        let (tx, rx) = mpsc::channel(8);
        for (kind, signal) in [
            (tokio::signal::unix::SignalKind::terminate(), Signal::Term),
            (tokio::signal::unix::SignalKind::interrupt(), Signal::Int),
        ] {
            match tokio::signal::unix::signal(kind) {
                Ok(mut stream) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        while stream.recv().await.is_some() {
                            if tx.send(signal).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(signal = signal.name(), %error, "cannot install signal handler");
                }
            }
        }
        Self {
            stdout: Box::pin(tokio::io::stdout()),
            inherit_stdio: true,
            signals: rx,
            forwarder: SignalForwarder::Syscall,
        }
    }
}

/// Maps a finished process' status to a shell-style exit code: the code, or `128 + n` for a
/// process killed by signal `n`.
pub fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        // Neither code nor signal (stopped/continued) cannot come out of wait(); keep a failure.
        (None, None) => 1,
    }
}

/// Exit code and message for a command that could not be started.
pub fn spawn_failure(program: &str, error: &std::io::Error) -> (i32, String) {
    let code = if error.kind() == std::io::ErrorKind::NotFound {
        EXIT_NOT_FOUND
    } else {
        EXIT_CANNOT_EXECUTE
    };
    (code, format!("cannot start command {program:?}: {error}"))
}

/// The captured stdout of a script, bounded by the output limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    /// The first bytes of stdout, at most `limit + 1` of them (one more tells it overflowed).
    pub bytes: Vec<u8>,
    /// Total bytes the child wrote to stdout.
    pub total: u64,
}

impl Capture {
    fn push(&mut self, chunk: &[u8], limit: u64) {
        self.total += chunk.len() as u64;
        let keep = usize::try_from(limit.saturating_add(1))
            .unwrap_or(usize::MAX)
            .saturating_sub(self.bytes.len())
            .min(chunk.len());
        self.bytes.extend_from_slice(&chunk[..keep]);
    }
}

/// `outputs.result` of a script from its captured stdout, or an error when it is over the limit.
///
/// As Argo's `CaptureScriptResult`: exactly one trailing `\n` is trimmed (not `\r\n`, not other
/// whitespace) and the limit applies to the trimmed text. Argo keeps only the last 256 kB of an
/// oversized result with a warning; cairn fails the node instead (issue 5, "Bad input": outputs
/// over the size limit fail the node with a clear message), so a result is never silently cut.
pub fn script_result(capture: &Capture, limit: u64) -> Result<String, String> {
    let complete = capture.total == capture.bytes.len() as u64;
    let trailing_newline = complete && capture.bytes.last() == Some(&b'\n');
    let trimmed_len = capture.total - u64::from(trailing_newline);
    if trimmed_len > limit {
        return Err(format!(
            "outputs.result: script stdout is {} bytes, over the limit of {limit} bytes",
            capture.total
        ));
    }
    let bytes = if trailing_newline {
        &capture.bytes[..capture.bytes.len() - 1]
    } else {
        &capture.bytes[..]
    };
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Reads every declared output parameter that has a `valueFrom.path` and is not `supplied`.
/// Returns the values and one error per parameter that could not be collected.
pub fn collect_parameters(spec: &ExecSpec) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut errors = Vec::new();
    for param in &spec.outputs {
        let Some(from) = &param.value_from else {
            continue;
        };
        if from.supplied.is_some() {
            continue;
        }
        let Some(path) = &from.path else {
            continue;
        };
        let full = spec.resolve(path);
        match read_bounded(&full, spec.output_limit_bytes) {
            Ok(value) => {
                values.insert(param.name.clone(), value);
            }
            // Argo falls back to `valueFrom.default` on any read failure, not only a missing file.
            Err(ReadFailure::Missing | ReadFailure::Unreadable(_)) if from.default.is_some() => {
                values.insert(param.name.clone(), from.default.clone().unwrap_or_default());
            }
            Err(ReadFailure::Missing) => errors.push(format!(
                "outputs.parameters.{}: file {} does not exist and no valueFrom.default is set",
                param.name,
                full.display()
            )),
            // Too large is cairn's own rule and never hidden behind a default: the user must
            // learn that their output was dropped.
            Err(ReadFailure::Unreadable(why) | ReadFailure::TooLarge(why)) => errors.push(format!(
                "outputs.parameters.{}: {}: {why}",
                param.name,
                full.display()
            )),
        }
    }
    (values, errors)
}

enum ReadFailure {
    Missing,
    Unreadable(String),
    TooLarge(String),
}

fn read_bounded(path: &Path, limit: u64) -> Result<String, ReadFailure> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadFailure::Missing),
        Err(e) => return Err(ReadFailure::Unreadable(e.to_string())),
    };
    if meta.is_dir() {
        return Err(ReadFailure::Unreadable(
            "is a directory, expected a file".to_string(),
        ));
    }
    if meta.len() > limit {
        return Err(ReadFailure::TooLarge(format!(
            "file is {} bytes, over the limit of {limit} bytes",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| ReadFailure::Unreadable(e.to_string()))?;
    // The file may have grown between stat and read (a lingering writer); the limit still holds.
    if bytes.len() as u64 > limit {
        return Err(ReadFailure::TooLarge(format!(
            "file is {} bytes, over the limit of {limit} bytes",
            bytes.len()
        )));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The variable the MLflow client reads its bearer token from.
pub const MLFLOW_TOKEN_ENV: &str = "MLFLOW_TRACKING_TOKEN";

/// The token file to hand the command as [`MLFLOW_TOKEN_ENV`]: only for a step that logs to
/// cairn's MLflow API, and never over a token the step set itself. Pure.
pub fn mlflow_token_file(spec: &ExecSpec, already_set: bool) -> Option<&std::path::Path> {
    if !spec.mlflow_token || already_set {
        return None;
    }
    spec.artifact_channel
        .as_ref()
        .map(|c| c.token_file.as_path())
}

/// Runs the command of `spec` to completion and collects its outputs.
///
/// Returns `Err` only when the spec is invalid; see the module invariants.
pub async fn run(spec: &ExecSpec, io: ExecIo) -> Result<ExecResult, ExecutorError> {
    spec.validate()?;
    let ExecIo {
        mut stdout,
        inherit_stdio,
        mut signals,
        forwarder,
    } = io;
    let started_at = jiff::Timestamp::now();
    let (program, args) = match spec.command.split_first() {
        Some(split) => split,
        None => return Err(ExecutorError::MissingCommand),
    };
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdout(Stdio::piped());
    if inherit_stdio {
        command.stdin(Stdio::inherit()).stderr(Stdio::inherit());
    } else {
        command.stdin(Stdio::null()).stderr(Stdio::null());
    }
    if let Some(dir) = &spec.working_dir {
        command.current_dir(dir);
    }
    let mut errors = Vec::new();
    if let Some(token_file) = mlflow_token_file(spec, std::env::var_os(MLFLOW_TOKEN_ENV).is_some())
    {
        match std::fs::read_to_string(token_file) {
            Ok(token) => {
                command.env(MLFLOW_TOKEN_ENV, token.trim());
            }
            // The step still runs (its MLflow calls are refused); the node fails naming the file.
            Err(error) => errors.push(format!(
                "cannot read the pod's token {} for MLflow: {error}",
                token_file.display()
            )),
        }
    }
    if let (Some(source), Some(path)) = (&spec.script_source, &spec.script_path)
        && let Err(error) = write_script(path, source)
    {
        errors.push(format!(
            "cannot write the script source to {}: {error}",
            path.display()
        ));
        return Ok(ExecResult {
            exit_code: EXIT_CANNOT_EXECUTE,
            result: None,
            parameters: BTreeMap::new(),
            errors,
            artifacts: Vec::new(),
            started_at,
            finished_at: jiff::Timestamp::now(),
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            let (exit_code, message) = spawn_failure(program, &error);
            errors.push(message);
            return Ok(ExecResult {
                exit_code,
                result: None,
                parameters: BTreeMap::new(),
                errors,
                artifacts: Vec::new(),
                started_at,
                finished_at: jiff::Timestamp::now(),
            });
        }
    };
    let pid = child.id();
    let limit = spec.output_limit_bytes;
    let capture_limit = if spec.script { limit } else { 0 };
    let child_out = child.stdout.take();
    let pump = async {
        let mut out_errors = Vec::new();
        let mut capture = Capture::default();
        if let Some(mut child_out) = child_out
            && let Err(e) =
                pump_stdout(&mut child_out, &mut stdout, &mut capture, capture_limit).await
        {
            out_errors.push(format!("stdout passthrough: {e}"));
        }
        (capture, out_errors)
    };
    tokio::pin!(pump);
    let mut captured: Option<Capture> = None;
    let mut signals_open = true;
    let status = loop {
        tokio::select! {
            (capture, out_errors) = &mut pump, if captured.is_none() => {
                captured = Some(capture);
                errors.extend(out_errors);
            }
            received = signals.recv(), if signals_open => match received {
                Some(signal) => {
                    // The child is not reaped before `wait` returns, so its pid cannot be reused.
                    if let Some(pid) = pid
                        && let Err(e) = forwarder.forward(pid, signal).await
                    {
                        tracing::warn!(pid, signal = signal.name(), error = %e, "cannot forward signal");
                    }
                }
                None => signals_open = false,
            },
            status = child.wait(), if captured.is_some() => break status,
        }
    };
    let exit_code = match status {
        Ok(status) => exit_code_of(status),
        Err(e) => {
            errors.push(format!("waiting for the command: {e}"));
            1
        }
    };
    let result = if spec.script {
        match script_result(&captured.unwrap_or_default(), limit) {
            Ok(result) => Some(result),
            Err(e) => {
                errors.push(e);
                None
            }
        }
    } else {
        None
    };
    let (parameters, param_errors) = collect_parameters(spec);
    errors.extend(param_errors);
    Ok(ExecResult {
        exit_code,
        result,
        parameters,
        errors,
        artifacts: Vec::new(),
        started_at,
        finished_at: jiff::Timestamp::now(),
    })
}

/// Writes a script's source where the command expects it: readable and executable by any user
/// (the main container may run as another uid than whoever reads it; Argo's `StageFiles` writes
/// it 0755 because `command: [sh, -c]` runs the path itself, as in Argo's `scripts-bash`
/// example), replaced atomically so a retried write never leaves a half-written script.
fn write_script(path: &Path, source: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, source)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, path)
}

/// Copies the child's stdout to the passthrough until EOF, capturing up to `limit + 1` bytes.
async fn pump_stdout(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut Pin<Box<dyn AsyncWrite + Send>>,
    capture: &mut Capture,
    limit: u64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut passthrough_ok = true;
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        capture.push(chunk, limit);
        // A broken log sink must not block the child on a full pipe: keep draining.
        if passthrough_ok && to.write_all(chunk).await.is_err() {
            passthrough_ok = false;
        }
    }
    if passthrough_ok {
        to.flush().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
