//! Starting a private copy of the `cairn` binary from a test without tripping over ETXTBSY.
//!
//! Tests run on several threads. While one thread writes its copy of the binary, another may
//! fork a child; until that child execs, it holds the write descriptor, and an exec of the copy
//! in that window fails with "Text file busy". A hard link opens nothing for writing, so it is
//! the first choice; a copy (other file system) is the fallback, and spawning retries a busy
//! executable for a bounded time, as Go's `os/exec` users do.
//!
//! Include it with `#[path = "common/spawn.rs"] mod spawn;`.
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// The cairn binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// Places a private copy of the cairn binary at `dir/cairn` (the shared target directory may be
/// rebuilt while the test runs) and returns its path. An existing copy is kept.
pub fn private_binary(dir: &Path) -> PathBuf {
    let bin = dir.join("cairn");
    if !bin.exists() && std::fs::hard_link(BIN, &bin).is_err() {
        std::fs::copy(BIN, &bin).expect("copy the cairn binary");
    }
    bin
}

/// `cmd.spawn()`, retrying for up to 10 s while the executable is busy (see the module note).
#[allow(
    clippy::disallowed_methods,
    reason = "callers are sync and async; a busy binary is rare and the wait is short"
)]
pub fn spawn(cmd: &mut Command) -> io::Result<Child> {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}
