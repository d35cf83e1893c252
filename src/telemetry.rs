//! Logging and metrics set-up.
//!
//! Owns the process-wide tracing subscriber (human-readable text by default, JSON on request)
//! and the Prometheus recorder behind `/metrics`.
//!
//! Invariant: nothing here formats request headers, bodies or query strings. Request spans carry
//! only the method, the matched route and the status, so passwords, tokens and cookies cannot
//! reach a log line through this layer.

use std::io;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per event, for log shippers.
    Json,
}

/// Errors raised while setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The `level` filter string could not be parsed.
    #[error(
        "log level {filter:?} is not a valid filter (expected e.g. \"info\" or \"cairn=debug,info\"): {source}"
    )]
    BadFilter {
        /// The filter as given.
        filter: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed.
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled,
}

/// Builds the filter: `RUST_LOG` wins over the configured level, as operators expect.
fn filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    EnvFilter::try_new(&spec).map_err(|source| TelemetryError::BadFilter {
        filter: spec,
        source,
    })
}

/// Installs the global subscriber writing to stderr.
pub fn init(format: LogFormat, level: &str) -> Result<(), TelemetryError> {
    use std::io::IsTerminal;
    install(format, level, io::stderr, io::stderr().is_terminal())
}

/// Installs the global subscriber with the given writer (tests capture logs this way).
pub fn init_with_writer<W>(format: LogFormat, level: &str, writer: W) -> Result<(), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    install(format, level, writer, false)
}

/// Colours only on a terminal: log files and journald get plain text.
fn install<W>(format: LogFormat, level: &str, writer: W, ansi: bool) -> Result<(), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level)?)
        .with_writer(writer)
        .with_ansi(ansi)
        .with_target(true);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|_| TelemetryError::AlreadyInstalled)
}

/// The process-wide Prometheus recorder. Installed once; later callers share the handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // A second recorder can only exist if another crate installed one; then our
            // metrics are simply not recorded, which must not stop the server.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
