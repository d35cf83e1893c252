//! Tools the tests start that `integration-tests/lab/build <tool>` builds at a pinned version
//! into the lab cache (`$CAIRN_LAB_CACHE`, else `~/.cache/cairn-lab`): where the binary is,
//! whether it is built, and whether a test should use it.
//!
//! Included by the harness of each tool (`#[path = "pinned.rs"] mod pinned;`).
#![allow(
    dead_code,
    reason = "shared by several harnesses, each using part of it"
)]

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool the lab's build script builds.
pub struct Pinned {
    /// The build target's name (`integration-tests/lab/build <target>`), also the prefix of its
    /// cache directory `bin/<target>-<version>`.
    pub target: &'static str,
    /// Its version's key in `integration-tests/lab/versions.env`.
    pub version_key: &'static str,
    /// The executable inside the cache directory.
    pub binary: &'static str,
    /// Its name in messages.
    pub label: &'static str,
}

impl Pinned {
    /// The directory the build writes into.
    pub fn dir(&self) -> Option<PathBuf> {
        let versions =
            std::fs::read_to_string(repo_root().join("integration-tests/lab/versions.env")).ok()?;
        let prefix = format!("{}=", self.version_key);
        let version = versions
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()))?
            .trim();
        let cache = match std::env::var("CAIRN_LAB_CACHE") {
            Ok(c) if !c.is_empty() => PathBuf::from(c),
            _ => PathBuf::from(std::env::var("HOME").ok()?).join(".cache/cairn-lab"),
        };
        Some(cache.join(format!("bin/{}-{version}", self.target)))
    }

    /// The tool is built (the `.done` marker is written last).
    pub fn built(&self) -> bool {
        self.dir()
            .is_some_and(|d| d.join(".done").is_file() && d.join(self.binary).is_file())
    }

    /// Whether `test` should start the tool: it is built, or `CAIRN_E2E=1` (which accepts
    /// building it). Prints a SKIP line when not.
    pub fn wanted(&self, test: &str) -> bool {
        if self.built() || std::env::var("CAIRN_E2E").is_ok_and(|v| v == "1") {
            return true;
        }
        eprintln!(
            "SKIP {test}: {} is not built (integration-tests/lab/build {}) and CAIRN_E2E is not set",
            self.label, self.target
        );
        false
    }
}
