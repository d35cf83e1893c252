//! Executor tests: real processes (sh, sleep), no network, every wait bounded.

use super::*;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// Upper bound of any single run in these tests.
const BOUND: Duration = Duration::from_secs(4);

/// An `AsyncWrite` into a shared buffer, to observe the passthrough.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl AsyncWrite for SharedBuf {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl ExecSpec {
    fn test(argv: &[&str]) -> Self {
        Self {
            command: argv.iter().map(|s| s.to_string()).collect(),
            working_dir: None,
            outputs: Vec::new(),
            script: false,
            output_limit_bytes: DEFAULT_OUTPUT_LIMIT_BYTES,
            script_source: None,
            script_path: None,
            input_artifacts: Vec::new(),
            output_artifacts: Vec::new(),
            artifact_channel: None,
            container_set: None,
            mlflow_token: false,
        }
    }
    fn sh(script: &str) -> Self {
        Self::test(&["sh", "-c", script])
    }
    fn with_script(mut self) -> Self {
        self.script = true;
        self
    }
    fn with_limit(mut self, limit: u64) -> Self {
        self.output_limit_bytes = limit;
        self
    }
    fn in_dir(mut self, dir: &Path) -> Self {
        self.working_dir = Some(dir.to_path_buf());
        self
    }
    fn with_output(mut self, name: &str, path: &str, default: Option<&str>) -> Self {
        self.outputs.push(OutputParameter {
            name: name.to_string(),
            value_from: Some(ValueFrom {
                path: Some(PathBuf::from(path)),
                default: default.map(str::to_string),
                supplied: None,
            }),
        });
        self
    }
}

/// Test edge: captured passthrough, a signal sender, `kill` from PATH.
fn test_io() -> (ExecIo, SharedBuf, mpsc::Sender<Signal>) {
    let buf = SharedBuf::default();
    let (tx, rx) = mpsc::channel(4);
    let io = ExecIo {
        stdout: Box::pin(buf.clone()),
        inherit_stdio: false,
        signals: rx,
        forwarder: SignalForwarder::KillCommand(PathBuf::from("kill")),
    };
    (io, buf, tx)
}

async fn run_bounded(spec: &ExecSpec) -> (ExecResult, String) {
    let (io, buf, _tx) = test_io();
    let result = tokio::time::timeout(BOUND, run(spec, io))
        .await
        .expect("run finished in time")
        .expect("valid spec");
    (result, buf.text())
}

#[tokio::test]
async fn exit_codes_and_phase() {
    let cases: &[(&str, i32, ExecPhase, Option<&str>)] = &[
        ("exit 0", 0, ExecPhase::Succeeded, None),
        (
            "exit 1",
            1,
            ExecPhase::Failed,
            Some("main: Error (exit code 1)"),
        ),
        (
            "exit 3",
            3,
            ExecPhase::Failed,
            Some("main: Error (exit code 3)"),
        ),
        // A child killed by a signal reports 128 + n, as a shell would.
        (
            "kill -s KILL $$",
            137,
            ExecPhase::Failed,
            Some("main: Error (exit code 137)"),
        ),
    ];
    for (script, code, phase, message) in cases {
        let (result, _) = run_bounded(&ExecSpec::sh(script)).await;
        assert_eq!(result.exit_code, *code, "{script}");
        assert_eq!(result.phase(), *phase, "{script}");
        assert_eq!(
            result.message(MAIN_CONTAINER).as_deref(),
            *message,
            "{script}"
        );
        assert!(result.errors.is_empty(), "{script}: {:?}", result.errors);
        assert!(result.finished_at >= result.started_at);
    }
}

#[tokio::test]
async fn stdout_passes_through_and_result_only_for_scripts() {
    let (plain, out) = run_bounded(&ExecSpec::test(&["echo", "hello", "world"])).await;
    assert_eq!(out, "hello world\n");
    assert_eq!(plain.result, None);

    let (script, out) = run_bounded(&ExecSpec::sh("printf 'a\\nb\\n\\n'").with_script()).await;
    assert_eq!(out, "a\nb\n\n");
    // Only one trailing newline is trimmed.
    assert_eq!(script.result.as_deref(), Some("a\nb\n"));
    assert_eq!(script.phase(), ExecPhase::Succeeded);
}

#[tokio::test]
async fn script_result_over_limit_fails_but_log_is_complete() {
    let spec = ExecSpec::sh("printf 0123456789")
        .with_script()
        .with_limit(9);
    let (result, out) = run_bounded(&spec).await;
    assert_eq!(out, "0123456789");
    assert_eq!(result.result, None);
    assert_eq!(result.exit_code, 0);
    assert_eq!(result.phase(), ExecPhase::Failed);
    assert_eq!(
        result.message(MAIN_CONTAINER).as_deref(),
        Some("main: outputs.result: script stdout is 10 bytes, over the limit of 9 bytes")
    );

    // Exactly at the limit is fine.
    let spec = ExecSpec::sh("printf 012345678").with_script().with_limit(9);
    let (result, _) = run_bounded(&spec).await;
    assert_eq!(result.result.as_deref(), Some("012345678"));
}

#[test]
fn script_result_table() {
    let cases: &[(&[u8], u64, Result<&str, ()>)] = &[
        (b"", 10, Ok("")),
        (b"x\n", 10, Ok("x")),
        // Only `\n` is trimmed, as in Argo.
        (b"x\r\n", 10, Ok("x\r")),
        (b"x\n\n", 10, Ok("x\n")),
        // The limit applies after trimming the newline.
        (b"012345678\n", 9, Ok("012345678")),
        (b"0123456789\n", 9, Err(())),
        (b"012345678\n\n", 9, Err(())),
        (b"  x  ", 10, Ok("  x  ")),
        (b"0123456789", 9, Err(())),
    ];
    for (bytes, limit, want) in cases {
        let mut capture = Capture::default();
        capture.push(bytes, *limit);
        assert!(capture.bytes.len() as u64 <= limit + 1);
        let got = script_result(&capture, *limit);
        match want {
            Ok(text) => assert_eq!(got.as_deref(), Ok(*text)),
            Err(()) => assert!(got.is_err(), "{bytes:?}"),
        }
    }
}

#[test]
fn capture_is_bounded_across_chunks() {
    let mut capture = Capture::default();
    for _ in 0..100 {
        capture.push(b"0123456789", 25);
    }
    assert_eq!(capture.total, 1000);
    assert_eq!(capture.bytes.len(), 26);
}

#[tokio::test]
async fn signals_are_forwarded_to_the_child() {
    for (signal, code) in [(Signal::Term, 143), (Signal::Int, 130)] {
        let (io, _buf, tx) = test_io();
        let spec = ExecSpec::test(&["sleep", "10"]);
        let started = std::time::Instant::now();
        let task = tokio::spawn(async move { run(&spec, io).await });
        tx.send(signal).await.expect("send signal");
        let result = tokio::time::timeout(BOUND, task)
            .await
            .expect("child stopped in time")
            .expect("task")
            .expect("valid spec");
        assert_eq!(result.exit_code, code, "{signal:?}");
        assert!(started.elapsed() < BOUND);
        assert_eq!(
            result.message(MAIN_CONTAINER),
            Some(format!("main: Error (exit code {code})")),
            "{signal:?}"
        );
    }
}

#[tokio::test]
async fn a_child_handling_sigterm_reports_its_own_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let script = format!(
        "trap 'exit 42' TERM; touch {}; while :; do sleep 0.05; done",
        ready.display()
    );
    let (io, _buf, tx) = test_io();
    let spec = ExecSpec::sh(&script);
    let task = tokio::spawn(async move { run(&spec, io).await });
    // Wait until the trap is installed, so the signal is handled rather than fatal.
    let waited = tokio::time::timeout(BOUND, async {
        while !ready.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "child never became ready");
    tx.send(Signal::Term).await.expect("send");
    let result = tokio::time::timeout(BOUND, task)
        .await
        .expect("in time")
        .expect("task")
        .expect("valid");
    assert_eq!(result.exit_code, 42);
}

#[tokio::test]
async fn command_that_cannot_start() {
    let (result, _) = run_bounded(&ExecSpec::test(&["/nonexistent/cairn-no-such-cmd"])).await;
    assert_eq!(result.exit_code, EXIT_NOT_FOUND);
    assert_eq!(result.phase(), ExecPhase::Failed);
    let message = result.message(MAIN_CONTAINER).expect("message");
    assert!(
        message.starts_with(
            "main: Error (exit code 127): cannot start command \"/nonexistent/cairn-no-such-cmd\": "
        ),
        "{message}"
    );
    assert!(message.contains("No such file"), "{message}");

    // Exists but is not executable: 126, as a shell reports it.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("not-exec");
    std::fs::write(&file, "#!/bin/sh\n").expect("write");
    let path = file.to_string_lossy().into_owned();
    let (result, _) = run_bounded(&ExecSpec::test(&[&path])).await;
    assert_eq!(result.exit_code, EXIT_CANNOT_EXECUTE);
    assert!(
        result.errors[0].contains("Permission denied"),
        "{:?}",
        result.errors
    );
}

#[tokio::test]
async fn invalid_specs_are_errors() {
    let cases: &[(&str, &str)] = &[
        (r#"{"command": []}"#, "`command` is empty"),
        (r#"{"command": [""]}"#, "`command` is empty"),
        (r#"{}"#, "`command` is empty"),
        (r#"{"command": "true"}"#, "invalid JSON"),
        (
            r#"{"command": ["true"], "outputs": [{"name": ""}]}"#,
            "outputs.parameters[0] has an empty `name`",
        ),
    ];
    for (json, want) in cases {
        let err = ExecSpec::from_json(json).expect_err(json);
        assert!(err.to_string().contains(want), "{json}: {err}");
    }
    let (io, _buf, _tx) = test_io();
    let err = run(&ExecSpec::test(&[]), io).await.expect_err("no command");
    assert!(matches!(err, ExecutorError::MissingCommand));
}

#[test]
fn spec_parses_argo_shaped_outputs() {
    let spec = ExecSpec::from_json(
        r#"{
          "command": ["python", "main.py"],
          "workingDir": "/work",
          "script": true,
          "outputs": [
            {"name": "a", "valueFrom": {"path": "/tmp/a", "default": "x"}},
            {"name": "b", "valueFrom": {"supplied": {}}}
          ]
        }"#,
    )
    .expect("parse");
    assert_eq!(spec.output_limit_bytes, DEFAULT_OUTPUT_LIMIT_BYTES);
    assert_eq!(spec.working_dir.as_deref(), Some(Path::new("/work")));
    assert!(spec.script);
    assert_eq!(spec.outputs.len(), 2);
    assert_eq!(
        spec.outputs[0]
            .value_from
            .as_ref()
            .and_then(|v| v.default.as_deref()),
        Some("x")
    );
}

#[tokio::test]
async fn output_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("adir")).expect("mkdir");
    let spec = ExecSpec::sh("printf 'hello\\n' > present; head -c 20 /dev/zero > big")
        .in_dir(dir.path())
        .with_limit(16)
        .with_output("present", "present", None)
        .with_output("defaulted", "missing1", Some("fallback"))
        .with_output("required", "missing2", None)
        .with_output("big", "big", None)
        .with_output("dir", "adir", None)
        .with_output("dir_defaulted", "adir", Some("dflt"))
        .with_output("big_defaulted", "big", Some("dflt"));
    let (result, _) = run_bounded(&spec).await;
    assert_eq!(result.exit_code, 0);
    // File contents are kept verbatim (no trimming).
    // A directory falls back to the default as any read failure does in Argo; an oversized
    // file does not (cairn's limit is never hidden).
    let want: BTreeMap<String, String> = [
        ("defaulted", "fallback"),
        ("dir_defaulted", "dflt"),
        ("present", "hello\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(result.parameters, want);
    let d = dir.path().display();
    assert_eq!(
        result.errors,
        vec![
            format!(
                "outputs.parameters.required: file {d}/missing2 does not exist and no valueFrom.default is set"
            ),
            format!(
                "outputs.parameters.big: {d}/big: file is 20 bytes, over the limit of 16 bytes"
            ),
            format!("outputs.parameters.dir: {d}/adir: is a directory, expected a file"),
            format!(
                "outputs.parameters.big_defaulted: {d}/big: file is 20 bytes, over the limit of 16 bytes"
            ),
        ]
    );
    assert_eq!(result.phase(), ExecPhase::Failed);
    let message = result.message(MAIN_CONTAINER).expect("message");
    assert!(
        message.starts_with("main: outputs.parameters.required: file "),
        "{message}"
    );
}

#[test]
fn message_names_the_container() {
    let at: jiff::Timestamp = "2026-01-02T03:04:05Z".parse().expect("ts");
    let result = |exit_code, errors: &[&str]| ExecResult {
        exit_code,
        result: None,
        parameters: BTreeMap::new(),
        errors: errors.iter().map(|e| e.to_string()).collect(),
        artifacts: Vec::new(),
        started_at: at,
        finished_at: at,
    };
    let cases: &[(ExecResult, &str, Option<&str>)] = &[
        (result(0, &[]), "main", None),
        (result(1, &[]), "main", Some("main: Error (exit code 1)")),
        (
            result(1, &[]),
            "step-a",
            Some("step-a: Error (exit code 1)"),
        ),
        (result(0, &["e1", "e2"]), "main", Some("main: e1; e2")),
        (
            result(143, &["e1"]),
            "main",
            Some("main: Error (exit code 143): e1"),
        ),
    ];
    for (r, container, want) in cases {
        assert_eq!(r.message(container).as_deref(), *want, "{r:?}");
    }
}

#[tokio::test]
async fn outputs_are_collected_even_when_the_command_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ExecSpec::sh("printf v > out; exit 2")
        .in_dir(dir.path())
        .with_output("p", "out", None);
    let (result, _) = run_bounded(&spec).await;
    assert_eq!(result.exit_code, 2);
    assert_eq!(result.parameters.get("p").map(String::as_str), Some("v"));
    assert_eq!(
        result.message(MAIN_CONTAINER).as_deref(),
        Some("main: Error (exit code 2)")
    );
}

#[test]
fn supplied_and_pathless_parameters_are_skipped() {
    let mut spec = ExecSpec::test(&["true"]);
    spec.outputs.push(OutputParameter {
        name: "supplied".into(),
        value_from: Some(ValueFrom {
            path: Some(PathBuf::from("/nonexistent/x")),
            default: None,
            supplied: Some(serde_json::json!({})),
        }),
    });
    spec.outputs.push(OutputParameter {
        name: "nofrom".into(),
        value_from: None,
    });
    let (values, errors) = collect_parameters(&spec);
    assert!(values.is_empty());
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn exec_result_json_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = ExecSpec::sh("printf 42 > n; echo result-line")
        .with_script()
        .in_dir(dir.path())
        .with_output("n", "n", None)
        .with_output("m", "missing", Some("7"));
    let (mut result, _) = run_bounded(&spec).await;
    // Timestamps vary per run; pin them so the snapshot shows their format.
    result.started_at = "2026-01-02T03:04:05Z".parse().expect("ts");
    result.finished_at = "2026-01-02T03:04:06.5Z".parse().expect("ts");
    insta::assert_json_snapshot!("exec_result", result);
    let json = serde_json::to_string(&result).expect("serialize");
    let back: ExecResult = serde_json::from_str(&json).expect("deserialize");
    assert_eq!(back, result);
}

#[test]
fn exit_code_of_table() {
    use std::os::unix::process::ExitStatusExt;
    // Raw wait statuses: exit code in the high byte, terminating signal in the low bits.
    let cases: &[(i32, i32)] = &[
        (0, 0),
        (1 << 8, 1),
        (255 << 8, 255),
        (9, 137),
        (15, 143),
        (2, 130),
    ];
    for (raw, want) in cases {
        let status = std::process::ExitStatus::from_raw(*raw);
        assert_eq!(exit_code_of(status), *want, "raw {raw:#x}");
    }
}

#[test]
fn spawn_failure_table() {
    use std::io::{Error, ErrorKind};
    let cases: &[(ErrorKind, i32)] = &[
        (ErrorKind::NotFound, EXIT_NOT_FOUND),
        (ErrorKind::PermissionDenied, EXIT_CANNOT_EXECUTE),
        (ErrorKind::InvalidInput, EXIT_CANNOT_EXECUTE),
    ];
    for (kind, want) in cases {
        let (code, message) = spawn_failure("prog", &Error::new(*kind, "why"));
        assert_eq!(code, *want, "{kind:?}");
        assert_eq!(message, "cannot start command \"prog\": why");
    }
}

#[tokio::test]
async fn script_source_is_written_before_the_command_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script");
    let mut spec = ExecSpec::test(&["sh", path.to_str().expect("utf-8 path")]).with_script();
    spec.script_source = Some("echo from-the-script\nexit 3\n".to_string());
    spec.script_path = Some(path.clone());
    let (result, log) = run_bounded(&spec).await;
    assert_eq!(result.exit_code, 3);
    assert_eq!(result.result.as_deref(), Some("from-the-script"));
    assert_eq!(log, "from-the-script\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("script")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}

/// Argo's `scripts-bash` runs the script path itself (`sh -c /path`), so it must be executable.
#[tokio::test]
async fn script_run_by_path_through_sh_c_is_executable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("script");
    let mut spec = ExecSpec::test(&["sh", "-c", path.to_str().expect("utf-8 path")]).with_script();
    spec.script_source = Some("echo by-path\n".to_string());
    spec.script_path = Some(path.clone());
    let (result, log) = run_bounded(&spec).await;
    assert_eq!(result.exit_code, 0, "{log}");
    assert_eq!(result.result.as_deref(), Some("by-path"));
}

#[tokio::test]
async fn unwritable_script_path_is_a_recorded_failure() {
    let mut spec = ExecSpec::test(&["sh", "/nonexistent-dir/script"]).with_script();
    spec.script_source = Some("echo hi".to_string());
    spec.script_path = Some(PathBuf::from("/nonexistent-dir/script"));
    let (result, _) = run_bounded(&spec).await;
    assert_eq!(result.exit_code, EXIT_CANNOT_EXECUTE);
    assert_eq!(result.phase(), ExecPhase::Failed);
    assert!(
        result.errors[0].contains("/nonexistent-dir/script"),
        "{:?}",
        result.errors
    );
}

#[test]
fn script_source_needs_a_path() {
    let err = ExecSpec::from_json(r#"{"command":["python"],"scriptSource":"print(1)"}"#)
        .expect_err("no path");
    assert!(matches!(err, ExecutorError::ScriptWithoutPath), "{err}");
}

#[tokio::test]
async fn signals_are_forwarded_by_syscall() {
    let (mut io, _buf, tx) = test_io();
    io.forwarder = SignalForwarder::Syscall;
    let spec = ExecSpec::test(&["sleep", "10"]);
    let task = tokio::spawn(async move { run(&spec, io).await });
    tx.send(Signal::Term).await.expect("send signal");
    let result = tokio::time::timeout(BOUND, task)
        .await
        .expect("child stopped in time")
        .expect("task")
        .expect("valid spec");
    assert_eq!(result.exit_code, 143);
}

#[test]
fn the_mlflow_token_goes_to_steps_that_ask_and_never_over_their_own() {
    let mut spec = ExecSpec::test(&["true"]);
    assert_eq!(mlflow_token_file(&spec, false), None);
    spec.mlflow_token = true;
    // No channel, no token file.
    assert_eq!(mlflow_token_file(&spec, false), None);
    spec.artifact_channel = Some(crate::workflow::artifacts::transfer::ChannelSpec {
        server: Some("http://cairn:8081".into()),
        token_file: "/var/run/cairn-token/token".into(),
        namespace: "ns".into(),
        staging_dir: "/var/run/cairn/inputs".into(),
    });
    assert_eq!(
        mlflow_token_file(&spec, false),
        Some(std::path::Path::new("/var/run/cairn-token/token"))
    );
    assert_eq!(mlflow_token_file(&spec, true), None);
}

#[tokio::test]
async fn a_step_logging_to_cairn_mlflow_reads_the_pods_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-123\n").expect("token");
    let channel = |file: &std::path::Path| crate::workflow::artifacts::transfer::ChannelSpec {
        server: Some("http://cairn:8081".into()),
        token_file: file.to_path_buf(),
        namespace: "ns".into(),
        staging_dir: dir.path().join("inputs"),
    };
    let mut spec = ExecSpec::sh("printf %s \"$MLFLOW_TRACKING_TOKEN\"").with_script();
    spec.mlflow_token = true;
    spec.artifact_channel = Some(channel(&token_file));
    let (got, _) = run_bounded(&spec).await;
    assert_eq!(got.result.as_deref(), Some("tok-123"));
    assert!(got.errors.is_empty(), "{:?}", got.errors);

    // No token file: the step still runs, and the error says which file.
    spec.artifact_channel = Some(channel(&dir.path().join("absent")));
    let (got, _) = run_bounded(&spec).await;
    assert_eq!(got.result.as_deref(), Some(""));
    assert!(
        got.errors
            .iter()
            .any(|e| e.contains("absent") && e.contains("MLflow")),
        "{:?}",
        got.errors
    );
}
