//! Stamps the git commit and a reproducible build date into the binary.
//!
//! The date is `CAIRN_BUILD_DATE` when set, else the commit's own date, so two builds of the
//! same commit are identical.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = std::env::var("CAIRN_GIT_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    let date = std::env::var("CAIRN_BUILD_DATE")
        .ok()
        .or_else(|| git(&["log", "-1", "--format=%cI"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=CAIRN_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=CAIRN_BUILD_DATE={date}");
    println!("cargo:rerun-if-env-changed=CAIRN_BUILD_DATE");
    println!("cargo:rerun-if-env-changed=CAIRN_GIT_COMMIT");
    // The embedded UI: rebuild when web/dist changes (release builds embed the files).
    println!("cargo:rerun-if-changed=web/dist");
    // Rebuild when HEAD moves: HEAD itself, the branch file it names, and packed refs.
    for path in ["HEAD", "packed-refs"] {
        // Only existing files: a missing one would make cargo rerun this script every build.
        if let Some(p) = git(&["rev-parse", "--git-path", path])
            && std::path::Path::new(&p).exists()
        {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={p}");
    }
}
