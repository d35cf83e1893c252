//! The library side of the `cairn exec` and `cairn exec-init` subcommands, as the pod builder
//! (`workflow::pod`) wires them into a step pod.
//!
//! - `cairn exec-init DEST` ([`exec_init`]) runs in the `init` container of the executor image
//!   (which has no shell): it copies the running executable to DEST, mode 0755, through a
//!   temporary file and a rename, so the main container never sees a half-copied binary.
//! - `cairn exec -- ARGV...` ([`exec_main`]) runs in the main container: reads the
//!   [`ExecSpec`] from [`SPEC_ENV`], runs ARGV ([`run`](super::run)), writes the node's
//!   WorkflowTaskResult ([`report`]), and returns the exit code the process must exit with.
//!
//! Exit codes: the command's own; [`EXIT_EXECUTOR_ERROR`] (64, Argo's emissary uses the same)
//! when the executor itself failed: an invalid spec, or a command that exited 0 but whose
//! outputs could not be collected (so the pod's status agrees with the reported Failed phase).
//! A reporting failure is printed on stderr and does not change the exit code.

use std::path::{Path, PathBuf};

use super::container_set::{self, SetRole, WaitOutcome};
use super::report::{self, Backoff, ReportTarget};
use super::{ExecIo, ExecPhase, ExecResult, ExecSpec, ExecutorError, SPEC_ENV, run};

/// Exit code of an executor failure (not the command's).
pub const EXIT_EXECUTOR_ERROR: i32 = 64;

/// Copies the running executable to `dest` (0755, atomic rename).
pub fn exec_init(dest: &Path) -> Result<(), ExecutorError> {
    use std::os::unix::fs::PermissionsExt;
    let install = |source: std::io::Error| ExecutorError::Install {
        dest: dest.to_path_buf(),
        source,
    };
    let exe = std::env::current_exe().map_err(install)?;
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cairn".to_string());
    let tmp: PathBuf = dest.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    std::fs::copy(&exe, &tmp).map_err(install)?;
    let finish = || -> std::io::Result<()> {
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, dest)
    };
    finish().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        install(e)
    })
}

/// `cairn exec-init DEST` in a pod: installs the binary, then stages the input artifacts the
/// spec in [`SPEC_ENV`] lists (if any). Returns the process exit code: 0, or 1 when the binary
/// could not be installed or an input could not be staged (reported as the node's Error).
pub fn exec_init_main(dest: &Path) -> i32 {
    if let Err(e) = exec_init(dest) {
        eprintln!("cairn exec-init: {e}");
        return 1;
    }
    // The containerSet state directory, writable by every uid the set's containers run as.
    if let Some(dir) = dest.parent() {
        use std::os::unix::fs::PermissionsExt;
        let ctr = dir.join("ctr");
        if std::fs::create_dir_all(&ctr).is_ok() {
            let _ = std::fs::set_permissions(&ctr, std::fs::Permissions::from_mode(0o777));
        }
    }
    let Ok(text) = std::env::var(SPEC_ENV) else {
        return 0;
    };
    let spec: ExecSpec = match serde_json::from_str(&text) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("cairn exec-init: {}", ExecutorError::InvalidSpec(e));
            return 1;
        }
    };
    let Some(channel) = spec.artifact_channel.clone() else {
        return 0;
    };
    if spec.input_artifacts.is_empty() {
        return 0;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cairn exec-init: cannot start a runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async {
        let errors =
            crate::workflow::artifacts::transfer::stage_inputs(&spec.input_artifacts, &channel)
                .await;
        if errors.is_empty() {
            return 0;
        }
        let message = errors.join("; ");
        eprintln!("cairn exec-init: {message}");
        // The kubelet's termination message of the init container: the node's message names
        // the artifact instead of a bare exit code.
        let _ = std::fs::write("/dev/termination-log", &message);
        if let Ok(Some(target)) = ReportTarget::from_env(|k| std::env::var(k).ok()) {
            send(&report::error_result(&target, &format!("init: {message}"))).await;
        }
        1
    })
}

/// Parses the spec from the environment's JSON (absent: defaults), the argv given on the
/// command line taking the place of its `command`.
pub fn spec_from(text: Option<&str>, argv: Vec<String>) -> Result<ExecSpec, ExecutorError> {
    let mut spec: ExecSpec =
        serde_json::from_str(text.unwrap_or("{}")).map_err(ExecutorError::InvalidSpec)?;
    if !argv.is_empty() {
        spec.command = argv;
    }
    spec.validate()?;
    Ok(spec)
}

/// Runs `cairn exec -- argv` in a pod and returns the process exit code.
pub async fn exec_main(argv: Vec<String>) -> i32 {
    let target = match ReportTarget::from_env(|k| std::env::var(k).ok()) {
        Ok(target) => target,
        Err(e) => {
            eprintln!("cairn exec: {e}; outputs will not be reported");
            None
        }
    };
    let spec_text = std::env::var(SPEC_ENV).ok();
    let spec = match spec_from(spec_text.as_deref(), argv) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("cairn exec: {e}");
            if let Some(target) = &target {
                send(&report::error_result(target, &e.to_string())).await;
            }
            return EXIT_EXECUTOR_ERROR;
        }
    };
    if let Some(role) = spec.container_set.clone() {
        return exec_set_member(spec, role, target).await;
    }
    let mut result = match run(&spec, ExecIo::process()).await {
        Ok(result) => result,
        Err(e) => {
            eprintln!("cairn exec: {e}");
            if let Some(target) = &target {
                send(&report::error_result(target, &e.to_string())).await;
            }
            return EXIT_EXECUTOR_ERROR;
        }
    };
    // Outputs are saved after a successful command only: a failed step's node fails with the
    // command's message rather than with outputs it never produced.
    if result.exit_code == 0
        && result.errors.is_empty()
        && let Some(channel) = &spec.artifact_channel
    {
        let (saved, errors) = crate::workflow::artifacts::transfer::save_outputs(
            &spec.output_artifacts,
            channel,
            spec.working_dir.as_deref(),
        )
        .await;
        result.artifacts = saved;
        result.errors.extend(errors);
    }
    for error in &result.errors {
        eprintln!("cairn exec: {error}");
    }
    if let Some(target) = &target {
        send(&report::task_result(target, &result)).await;
    }
    exit_code(result.exit_code, result.phase())
}

/// One container of a `containerSet` ([`container_set`]): wait for the dependencies, run with
/// the set's retries, write the exit code file; `main` then waits for the other containers,
/// collects the outputs and reports. Returns the process exit code.
async fn exec_set_member(mut spec: ExecSpec, role: SetRole, target: Option<ReportTarget>) -> i32 {
    let target = target.filter(|_| role.reports);
    if let Err(e) = container_set::prepare(&role) {
        eprintln!(
            "cairn exec: {}: cannot create its state directory: {e}",
            role.name
        );
    }
    let write_code = |code: i32| {
        if let Err(e) = container_set::write_exit_code(&role, code) {
            eprintln!(
                "cairn exec: {}: cannot write its exit code file: {e}",
                role.name
            );
        }
    };
    match container_set::wait_for(&role, &role.dependencies, false).await {
        WaitOutcome::Done => {}
        WaitOutcome::Blocked(why) | WaitOutcome::TimedOut(why) => {
            eprintln!("cairn exec: {}: {why}", role.name);
            write_code(container_set::EXIT_DEPENDENCY_FAILED);
            if let Some(target) = &target {
                send(&report::error_result(
                    target,
                    &format!("{}: {why}", role.name),
                ))
                .await;
            }
            return container_set::EXIT_DEPENDENCY_FAILED;
        }
    }
    // Outputs are collected once every container of the set is over (module docs).
    let outputs = std::mem::take(&mut spec.outputs);
    let attempts = role.attempts();
    let mut attempt = 1;
    let mut result: ExecResult = loop {
        let result = match run(&spec, ExecIo::process()).await {
            Ok(result) => result,
            Err(e) => {
                eprintln!("cairn exec: {e}");
                write_code(EXIT_EXECUTOR_ERROR);
                if let Some(target) = &target {
                    send(&report::error_result(target, &e.to_string())).await;
                }
                return EXIT_EXECUTOR_ERROR;
            }
        };
        if result.phase() == ExecPhase::Succeeded || attempt >= attempts {
            break result;
        }
        eprintln!(
            "cairn exec: {}: attempt {attempt} of {attempts} exited with code {}; retrying",
            role.name, result.exit_code
        );
        attempt += 1;
        tokio::time::sleep(std::time::Duration::from_millis(role.retry_delay_ms)).await;
    };
    write_code(result.exit_code);
    let Some(target) = target else {
        for error in &result.errors {
            eprintln!("cairn exec: {error}");
        }
        return exit_code(result.exit_code, result.phase());
    };
    if let WaitOutcome::TimedOut(why) | WaitOutcome::Blocked(why) =
        container_set::wait_for(&role, &role.others(), true).await
    {
        result.errors.push(format!("outputs not collected: {why}"));
    }
    spec.outputs = outputs;
    let (parameters, errors) = super::collect_parameters(&spec);
    result.parameters = parameters;
    result.errors.extend(errors);
    if result.exit_code == 0
        && result.errors.is_empty()
        && let Some(channel) = &spec.artifact_channel
    {
        let (saved, errors) = crate::workflow::artifacts::transfer::save_outputs(
            &spec.output_artifacts,
            channel,
            spec.working_dir.as_deref(),
        )
        .await;
        result.artifacts = saved;
        result.errors.extend(errors);
    }
    for error in &result.errors {
        eprintln!("cairn exec: {error}");
    }
    send(&report::task_result(&target, &result)).await;
    exit_code(result.exit_code, result.phase())
}

/// The exit code of the wrapper: the command's, or [`EXIT_EXECUTOR_ERROR`] when the command
/// succeeded but the run failed (outputs not collected).
pub fn exit_code(command: i32, phase: ExecPhase) -> i32 {
    match (command, phase) {
        (0, ExecPhase::Failed) => EXIT_EXECUTOR_ERROR,
        (code, _) => code,
    }
}

async fn send(object: &crate::workflow::types::WorkflowTaskResult) {
    let outcome = match report::client().await {
        Ok(client) => report::report(client, object, Backoff::default()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        eprintln!("cairn exec: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_replaces_the_spec_command() {
        let spec = spec_from(
            Some(r#"{"script":true,"outputLimitBytes":10}"#),
            vec!["echo".into(), "hi".into()],
        )
        .expect("spec");
        assert_eq!(spec.command, vec!["echo", "hi"]);
        assert!(spec.script);
        assert_eq!(spec.output_limit_bytes, 10);
        let spec = spec_from(None, vec!["true".into()]).expect("defaults");
        assert_eq!(
            spec.output_limit_bytes,
            super::super::DEFAULT_OUTPUT_LIMIT_BYTES
        );
        assert!(matches!(
            spec_from(None, vec![]),
            Err(ExecutorError::MissingCommand)
        ));
        assert!(matches!(
            spec_from(Some("{"), vec!["true".into()]),
            Err(ExecutorError::InvalidSpec(_))
        ));
    }

    #[test]
    fn exit_code_table() {
        for (command, phase, want) in [
            (0, ExecPhase::Succeeded, 0),
            (0, ExecPhase::Failed, EXIT_EXECUTOR_ERROR),
            (3, ExecPhase::Failed, 3),
            (137, ExecPhase::Failed, 137),
        ] {
            assert_eq!(exit_code(command, phase), want, "{command} {phase:?}");
        }
    }

    #[test]
    fn exec_init_copies_atomically_with_mode_0755() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let dest = dir.path().join("cairn");
        exec_init(&dest).expect("install");
        let exe = std::env::current_exe().expect("exe");
        assert_eq!(
            std::fs::metadata(&dest).expect("dest").len(),
            std::fs::metadata(&exe).expect("exe").len()
        );
        let mode = std::fs::metadata(&dest).expect("dest").permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Idempotent: a second install replaces the first; no temporary file is left behind.
        exec_init(&dest).expect("again");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("cairn")]);
        let err = exec_init(Path::new("/nonexistent-dir/cairn")).expect_err("no dir");
        assert!(err.to_string().contains("/nonexistent-dir/cairn"), "{err}");
    }
}
