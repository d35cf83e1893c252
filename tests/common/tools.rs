//! PATH for tests that run the lab's pinned tools: `helm`, `kustomize`, `kubectl` (built by
//! `integration-tests/lab/build`, linked under `~/.cache/cairn-lab/bin/tools-*`). Include it
//! with `#[path = "common/tools.rs"] mod tools;` (`common/lab.rs` includes it).
#![allow(
    dead_code,
    reason = "shared by several test binaries, each using part of it"
)]

/// PATH with the lab's tools directories put first when one of `helm`, `kustomize`, `kubectl`
/// is not already on it.
pub fn tool_path() -> String {
    let mut path = std::env::var("PATH").unwrap_or_default();
    let has = |path: &str, tool: &str| std::env::split_paths(path).any(|d| d.join(tool).is_file());
    if ["helm", "kustomize", "kubectl"]
        .iter()
        .any(|t| !has(&path, t))
    {
        let cache = std::env::var("HOME").unwrap_or_default() + "/.cache/cairn-lab/bin";
        if let Ok(entries) = std::fs::read_dir(cache) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("tools-") {
                    path = format!("{}:{path}", e.path().display());
                }
            }
        }
    }
    path
}
