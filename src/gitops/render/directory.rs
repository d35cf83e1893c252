//! The plain-directory renderer (Argo CD's "Directory" tool).
//!
//! Selection is pure ([`select_files`] over a listing of relative paths): files ending in
//! `.yaml`, `.yml` or `.json`; subdirectories only with `recurse`; `include` then `exclude`
//! globs matched against the path relative to the source path ([`super::glob`]). Only `.git`
//! is never scanned (Argo CD walks every other directory, hidden ones included); unrelated YAML
//! files are skipped as [`parse_file`] explains. Parsing is [`super::manifest`]; only the listing
//! and the reads touch the disk ([`render_directory`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::RenderError;
use super::glob::Glob;
use super::manifest::{parse_json, parse_yaml};
use crate::gitops::types::DirectorySource;

/// Which of `files` (relative paths with `/`, sorted or not) the directory tool renders, in
/// lexical order (Argo CD walks the tree in lexical order).
pub fn select_files(
    files: &[String],
    options: Option<&DirectorySource>,
) -> Result<Vec<String>, RenderError> {
    let recurse = options.and_then(|o| o.recurse).unwrap_or(false);
    let include = options
        .and_then(|o| o.include.as_deref())
        .filter(|p| !p.is_empty())
        .map(|p| Glob::new(p, "directory.include"))
        .transpose()?;
    let exclude = options
        .and_then(|o| o.exclude.as_deref())
        .filter(|p| !p.is_empty())
        .map(|p| Glob::new(p, "directory.exclude"))
        .transpose()?;
    let mut out: Vec<String> = files
        .iter()
        .filter(|f| recurse || !f.contains('/'))
        .filter(|f| !f.split('/').any(|part| part == ".git"))
        .filter(|f| is_manifest_name(f))
        .filter(|f| include.as_ref().is_none_or(|g| g.matches(f)))
        .filter(|f| exclude.as_ref().is_none_or(|g| !g.matches(f)))
        .cloned()
        .collect();
    out.sort();
    Ok(out)
}

fn is_manifest_name(path: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// Parses one selected file's text (YAML or JSON by extension).
///
/// As Argo CD does, a YAML file whose *first* document is not an object (a CI config, a Helm
/// values file) is skipped as unrelated, unless its text looks like a resource (it contains
/// `apiVersion:`, `kind:` and `metadata:`); a failure after a valid object is always an error.
pub fn parse_file(relative: &str, text: &str) -> Result<Vec<Value>, RenderError> {
    if relative.ends_with(".json") {
        return parse_json(relative, text);
    }
    match parse_yaml(relative, text) {
        Err(
            RenderError::InvalidDocument { document: 0, .. }
            | RenderError::NotAnObject { document: 0, .. },
        ) if !looks_like_resource(text) => Ok(Vec::new()),
        other => other,
    }
}

fn looks_like_resource(text: &str) -> bool {
    ["apiVersion:", "kind:", "metadata:"]
        .iter()
        .all(|m| text.contains(m))
}

/// Lists `dir` recursively as relative `/`-separated paths, skipping `.git`.
pub fn list_files(dir: &Path) -> Result<Vec<String>, RenderError> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, String)> = vec![(dir.to_path_buf(), String::new())];
    while let Some((abs, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&abs).map_err(|e| RenderError::Io {
            path: abs.display().to_string(),
            reason: e.to_string(),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| RenderError::Io {
                path: abs.display().to_string(),
                reason: e.to_string(),
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            // `metadata` follows symlinks, so a link to a file is read like a file.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                if name != ".git" {
                    stack.push((entry.path(), child_rel));
                }
            } else if meta.is_file() {
                out.push(child_rel);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Refuses a checkout containing a symlink that resolves outside `root` (`.git` aside).
/// A dangling link inside the tree is allowed, as it reads nothing.
pub fn check_symlinks(root: &Path) -> Result<(), RenderError> {
    let io = |p: &Path, e: std::io::Error| RenderError::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    let canon_root = std::fs::canonicalize(root).map_err(|e| io(root, e))?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| io(&path, e))?;
            if kind.is_symlink() {
                if let Ok(target) = std::fs::canonicalize(&path)
                    && !target.starts_with(&canon_root)
                {
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    return Err(RenderError::OutOfBoundsSymlink {
                        path: rel.display().to_string(),
                    });
                }
            } else if kind.is_dir() && entry.file_name() != ".git" {
                stack.push(path);
            }
        }
    }
    Ok(())
}

/// Renders a plain directory: list, select, read and parse (blocking file I/O).
pub fn render_directory(
    dir: &Path,
    options: Option<&DirectorySource>,
) -> Result<Vec<Value>, RenderError> {
    let files = list_files(dir)?;
    let mut out = Vec::new();
    for rel in select_files(&files, options)? {
        let text = std::fs::read_to_string(dir.join(&rel)).map_err(|e| RenderError::Io {
            path: rel.clone(),
            reason: e.to_string(),
        })?;
        out.extend(parse_file(&rel, &text)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(recurse: bool, include: &str, exclude: &str) -> DirectorySource {
        DirectorySource {
            recurse: Some(recurse),
            include: Some(include.to_owned()),
            exclude: Some(exclude.to_owned()),
            ..DirectorySource::default()
        }
    }

    #[test]
    fn selection_table() {
        let files: Vec<String> = [
            "a.yaml",
            "b.yml",
            "c.json",
            "README.md",
            "values.txt",
            "sub/d.yaml",
            "sub/deep/e.json",
            ".git/config.yaml",
            "sub/.hidden/f.yaml",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let cases: Vec<(DirectorySource, Vec<&str>)> = vec![
            (
                DirectorySource::default(),
                vec!["a.yaml", "b.yml", "c.json"],
            ),
            (
                opts(true, "", ""),
                vec![
                    "a.yaml",
                    "b.yml",
                    "c.json",
                    "sub/.hidden/f.yaml",
                    "sub/d.yaml",
                    "sub/deep/e.json",
                ],
            ),
            (opts(true, "*.json", ""), vec!["c.json", "sub/deep/e.json"]),
            (
                opts(true, "{a.yaml,sub/*}", ""),
                vec![
                    "a.yaml",
                    "sub/.hidden/f.yaml",
                    "sub/d.yaml",
                    "sub/deep/e.json",
                ],
            ),
            (opts(true, "", "sub/*"), vec!["a.yaml", "b.yml", "c.json"]),
            (opts(false, "*.{yaml,yml}", "b.*"), vec!["a.yaml"]),
            (
                opts(true, "*.yaml", "*{deep,hidden}*"),
                vec!["a.yaml", "sub/d.yaml"],
            ),
        ];
        for (options, want) in cases {
            let got = select_files(&files, Some(&options)).expect("valid globs");
            assert_eq!(got, want, "{options:?}");
        }
    }

    #[test]
    fn unrelated_yaml_is_skipped_resource_like_yaml_is_not() {
        let cases: &[(&str, &str, Result<usize, &str>)] = &[
            ("ci.yaml", "on: push\njobs: {}\n", Ok(0)),
            ("values.yaml", "replicas: 1\n", Ok(0)),
            ("list.yaml", "- a\n- b\n", Ok(0)),
            ("broken.yaml", "a: [\n", Ok(0)),
            (
                "bad.yaml",
                "kind: Pod\nmetadata: {name: x}\napiVersion:\n",
                Err("document 0"),
            ),
            (
                "bad2.yaml",
                "apiVersion: v1\nkind: A\n---\nfoo: bar\n",
                Err("document 1"),
            ),
            ("ok.yaml", "apiVersion: v1\nkind: A\n", Ok(1)),
        ];
        for (file, text, want) in cases {
            match (parse_file(file, text), want) {
                (Ok(objs), Ok(n)) => assert_eq!(objs.len(), *n, "{file}"),
                (Err(e), Err(w)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(file) && msg.contains(w), "{msg}");
                }
                (got, want) => panic!("{file}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_bad_glob_names_the_field() {
        let err = select_files(&[], Some(&opts(false, "{a", ""))).expect_err("bad glob");
        assert!(err.to_string().contains("directory.include"), "{err}");
    }

    #[test]
    fn symlinks_out_of_the_checkout_are_refused() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret.yaml"), "x: 1\n").expect("write");
        let repo = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(repo.path().join("app/sub")).expect("mkdir");
        std::fs::write(repo.path().join("app/a.yaml"), "x: 1\n").expect("write");
        let link = |target: &Path, at: &str| {
            std::os::unix::fs::symlink(target, repo.path().join(at)).expect("symlink")
        };
        link(&repo.path().join("app/a.yaml"), "app/sub/inside.yaml");
        link(Path::new("/nonexistent/dangling"), "app/dangling.yaml");
        check_symlinks(repo.path()).expect("links inside the checkout are fine");
        link(&outside.path().join("secret.yaml"), "app/sub/leak.yaml");
        let err = check_symlinks(repo.path()).expect_err("out of bounds");
        assert!(err.to_string().contains("app/sub/leak.yaml"), "{err}");
    }

    #[test]
    fn renders_a_tree_from_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |rel: &str, text: &str| {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write(
            "a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        );
        write("notes.md", "not yaml: [");
        write(
            "sub/b.json",
            r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b"}}]}"#,
        );
        write(
            ".git/c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: git}\n",
        );
        write(
            ".argo/d.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden}\n",
        );
        let flat = render_directory(dir.path(), None).expect("renders");
        assert_eq!(flat.len(), 1);
        let deep = render_directory(dir.path(), Some(&opts(true, "", ""))).expect("renders");
        let names: Vec<&str> = deep
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        assert_eq!(names, ["hidden", "a", "b"]);
        write(
            "sub/bad.yaml",
            "apiVersion: v1\nkind: A\n---\nmetadata: {}\n",
        );
        let err = render_directory(dir.path(), Some(&opts(true, "", ""))).expect_err("bad doc");
        let msg = err.to_string();
        assert!(
            msg.contains("sub/bad.yaml") && msg.contains("document 1"),
            "{msg}"
        );
    }
}
