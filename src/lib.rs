//! cairn: one process for the Argo-style MLOps platform.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library; integration tests link the
//! library directly. See ARCHITECTURE.md for the module map and invariants.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod events;
pub mod gitops;
pub mod gjson;
pub mod k8s;
pub mod lineage;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod workflow;

/// cairn's version (from Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the binary was built from.
pub const GIT_COMMIT: &str = env!("CAIRN_GIT_COMMIT");
/// When the built commit was made (reproducible: not the wall-clock time of the build).
pub const BUILD_DATE: &str = env!("CAIRN_BUILD_DATE");
