//! Manifest rendering: turns a checked-out source directory into Kubernetes objects, choosing
//! the tool as Argo CD does (Directory, Kustomize or Helm).
//!
//! This is a thin I/O edge (files and child processes) around pure decisions, each unit-tested:
//! - [`detect`]: which tool, from the source's explicit options, else from the file names in the
//!   source directory (Argo CD's repo-server discovery).
//! - [`directory::select_files`]: which files a Directory source renders (recurse,
//!   include/exclude globs with Argo's semantics, see [`glob`]).
//! - [`kustomize::edit_commands`]/[`kustomize::build_args`] and [`helm::template_args`]: the
//!   exact argument lists of the pinned `kustomize` and `helm` binaries.
//! - [`cache::cache_key`]: the key of a rendered result; [`cache::RenderCache`] an LRU of them.
//!
//! Public API for the controller:
//! ```text
//! let req = RenderRequest { repo_root, source: &app_source, app_name, namespace, project,
//!                           revision: sha, kube_version, api_versions, refs };
//! let key = cache_key(repo_url, sha, path, &req.source_options(&settings, ref_revisions));
//! let rendered: Rendered = render(&req, &settings).await?;   // Rendered { tool, objects }
//! ```
//! Invariants: a checkout with a symlink resolving outside it is refused before any tool runs
//! (as Argo CD does); the checkout is never written (Kustomize edits run in a temporary copy);
//! every child runs with a timeout (default [`DEFAULT_TIMEOUT`]), a clean environment and a
//! private `HOME` (plus the non-secret `ARGOCD_APP_*` build variables for kustomize); errors
//! name the file and document index, or carry the tool's bounded stderr, never the
//! environment.
//!
//! Charts from Helm repositories (`source.chart`) are pulled by [`helm_repo::pull_chart`] into
//! a version cache and rendered by [`render_chart`]; [`render`] itself refuses `source.chart`
//! (it renders checkouts only).
//!
//! Out of scope here: remote value files, `helm dependency build` (charts must vendor `charts/`),
//! config management plugins, Jsonnet, multi-source merging (the controller renders each
//! source and concatenates; `$ref` value files are supported through [`RenderRequest::refs`]).

pub mod cache;
pub mod directory;
pub mod env;
pub mod exec;
pub mod glob;
pub mod helm;
pub mod helm_repo;
pub mod kustomize;
pub mod manifest;

#[cfg(test)]
mod conformance_tests;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

pub use cache::{RenderCache, SourceOptions, cache_key};
use kustomize::KustomizeBuildOptions;

use crate::gitops::types::ApplicationSource;

/// Default bound on one tool run: Argo CD's repo-server exec timeout is 90 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// Errors of rendering. User errors name the file, document, option or tool involved.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A YAML or JSON document could not be parsed.
    #[error("{file}: document {document}: invalid YAML/JSON: {reason}")]
    InvalidDocument {
        /// File (relative to the source path), or the tool whose output it was.
        file: String,
        /// Zero-based index of the non-empty document in the file.
        document: usize,
        /// The parser's message.
        reason: String,
    },
    /// A document parsed but is not a Kubernetes object (no apiVersion/kind, not a mapping).
    #[error("{file}: document {document}: not a Kubernetes object: {reason}")]
    NotAnObject {
        /// File (relative to the source path), or the tool whose output it was.
        file: String,
        /// Zero-based index of the document.
        document: usize,
        /// What is wrong.
        reason: String,
    },
    /// An include/exclude glob is malformed.
    #[error("{field}: invalid glob `{pattern}`: {reason}")]
    Glob {
        /// The option (`directory.include` or `directory.exclude`).
        field: String,
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// More than one of `helm`, `kustomize`, `directory`, `plugin` is set on the source.
    #[error("multiple application source types defined: {0}")]
    MultipleSourceTypes(String),
    /// The source asks for a tool cairn does not run (config management plugins).
    #[error("source type {0} is not supported by cairn")]
    UnsupportedTool(String),
    /// An option has a value the renderer cannot use.
    #[error("{field}: expected {expected}")]
    InvalidOption {
        /// The option (`kustomize.replicas[1]`, `helm.valueFiles: x.yaml`...).
        field: String,
        /// What was expected.
        expected: String,
    },
    /// The source path is missing, not a directory, or escapes the checkout.
    #[error("source path `{path}`: {reason}")]
    SourcePath {
        /// The source's `path`.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a file or directory failed.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The pinned binary is neither next to cairn nor on PATH.
    #[error("`{tool}` not found next to the cairn binary nor on PATH")]
    ToolNotFound {
        /// `kustomize` or `helm`.
        tool: String,
    },
    /// The binary could not be started.
    #[error("could not run `{tool}`: {reason}")]
    Spawn {
        /// The tool.
        tool: String,
        /// The OS error.
        reason: String,
    },
    /// The tool ran longer than the timeout and was killed.
    #[error("`{tool}` timed out after {seconds} s and was killed")]
    Timeout {
        /// The tool.
        tool: String,
        /// The timeout.
        seconds: u64,
    },
    /// The tool exited with an error.
    #[error("`{tool} {command}` failed ({status}): {stderr}")]
    ToolFailed {
        /// The tool.
        tool: String,
        /// Its subcommand (`build`, `edit`, `template`).
        command: String,
        /// The exit status.
        status: String,
        /// Its stderr, trimmed and bounded.
        stderr: String,
    },
    /// A symlink in the checkout resolves outside it (Argo CD refuses such repositories, so a
    /// repository cannot make cairn read host files).
    #[error("{path}: symlink points outside the repository")]
    OutOfBoundsSymlink {
        /// The link, relative to the repository root.
        path: String,
    },
    /// A blocking task panicked or was cancelled.
    #[error("render task aborted: {0}")]
    Aborted(String),
}

impl RenderError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidDocument { .. } | Self::NotAnObject { .. } => "invalid_manifest",
            Self::Glob { .. } | Self::InvalidOption { .. } | Self::MultipleSourceTypes(_) => {
                "invalid_option"
            }
            Self::UnsupportedTool(_) => "unsupported_tool",
            Self::SourcePath { .. } | Self::Io { .. } => "io",
            Self::OutOfBoundsSymlink { .. } => "out_of_bounds_symlink",
            Self::ToolNotFound { .. } | Self::Spawn { .. } => "tool_missing",
            Self::Timeout { .. } => "timeout",
            Self::ToolFailed { .. } => "tool_failed",
            Self::Aborted(_) => "aborted",
        }
    }
}

/// The tool that renders a source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Tool {
    /// Plain YAML/JSON files.
    Directory,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
    /// A config management plugin (detected, not rendered).
    Plugin,
}

/// Whether a JSON value is Go's zero value in spirit: null, false, 0, "", or an empty or
/// all-zero container. Argo CD normalizes such option blocks away (`helm: {}` is no Helm).
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_zero),
    }
}

fn set<T: serde::Serialize>(v: &Option<T>) -> bool {
    v.as_ref()
        .is_some_and(|v| !is_zero(&serde_json::to_value(v).unwrap_or(Value::Null)))
}

/// Chooses the tool as Argo CD does. `root_files` are the file names directly in the source
/// directory. Explicit options win (`chart` implies Helm); more than one is an error. Otherwise
/// Argo's discovery walks the directory in lexical order and the last match wins: a name
/// ending in `Chart.yaml` means Helm, a kustomization file means Kustomize, so with both
/// present Kustomize wins (`Chart.yaml` sorts before `Kustomization`/`kustomization.yaml`).
/// Nothing found: Directory.
pub fn detect(root_files: &[String], source: &ApplicationSource) -> Result<Tool, RenderError> {
    let mut explicit = Vec::new();
    if set(&source.kustomize) {
        explicit.push(Tool::Kustomize);
    }
    if set(&source.helm) || source.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        explicit.push(Tool::Helm);
    }
    if set(&source.directory) {
        explicit.push(Tool::Directory);
    }
    if source.plugin.as_ref().is_some_and(|p| !p.is_null()) {
        explicit.push(Tool::Plugin);
    }
    match explicit.as_slice() {
        [one] => return Ok(*one),
        [] => {}
        many => {
            let names: Vec<String> = many.iter().map(|t| format!("{t:?}")).collect();
            return Err(RenderError::MultipleSourceTypes(names.join(", ")));
        }
    }
    let mut names: Vec<&String> = root_files.iter().collect();
    names.sort();
    let mut tool = Tool::Directory;
    for name in names {
        if name.ends_with("Chart.yaml") {
            tool = Tool::Helm;
        }
        if kustomize::KUSTOMIZATION_FILES.contains(&name.as_str()) {
            tool = Tool::Kustomize;
        }
    }
    Ok(tool)
}

/// Cairn-wide render settings.
#[derive(Clone, Debug)]
pub struct RenderSettings {
    /// Bound on each tool run.
    pub timeout: Duration,
    /// Kustomize build options (`--enable-helm`...).
    pub kustomize_build: KustomizeBuildOptions,
    /// The kustomize binary; looked up (next to cairn, then PATH) when `None`.
    pub kustomize_bin: Option<PathBuf>,
    /// The helm binary; looked up when `None`.
    pub helm_bin: Option<PathBuf>,
}

impl Default for RenderSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            kustomize_build: KustomizeBuildOptions::default(),
            kustomize_bin: None,
            helm_bin: None,
        }
    }
}

/// One render: a source in a checkout.
#[derive(Clone, Debug)]
pub struct RenderRequest<'a> {
    /// Root of the checked-out repository.
    pub repo_root: &'a Path,
    /// The Application's source (`path` relative to `repo_root`).
    pub source: &'a ApplicationSource,
    /// The Application's name (default Helm release name).
    pub app_name: &'a str,
    /// The destination namespace.
    pub namespace: Option<&'a str>,
    /// The Application's AppProject (`ARGOCD_APP_PROJECT_NAME`).
    pub project: &'a str,
    /// The resolved commit SHA of the checkout (`ARGOCD_APP_REVISION`).
    pub revision: &'a str,
    /// The destination cluster's Kubernetes version (Helm's default `--kube-version`).
    pub kube_version: Option<&'a str>,
    /// The destination cluster's API versions (Helm's default `--api-versions`).
    pub api_versions: &'a [String],
    /// Checkouts of other sources by `ref` name, for `$ref/...` Helm value files.
    pub refs: BTreeMap<String, PathBuf>,
}

impl RenderRequest<'_> {
    /// Argo CD's build environment of this render.
    pub fn build_env(&self) -> env::BuildEnv {
        env::build_env(&env::BuildContext {
            app_name: self.app_name,
            namespace: self.namespace.unwrap_or(""),
            project: self.project,
            revision: self.revision,
            source_path: self.source.path.as_deref().unwrap_or(""),
            repo_url: self.source.repo_url.as_deref().unwrap_or(""),
            target_revision: self.source.target_revision.as_deref().unwrap_or(""),
        })
    }

    /// The options part of this render's cache key.
    pub fn source_options(
        &self,
        settings: &RenderSettings,
        ref_revisions: BTreeMap<String, String>,
    ) -> SourceOptions {
        SourceOptions {
            source: self.source.clone(),
            app_name: self.app_name.to_owned(),
            namespace: self.namespace.map(str::to_owned),
            project: self.project.to_owned(),
            kube_version: self.kube_version.map(str::to_owned),
            api_versions: self.api_versions.to_vec(),
            kustomize_build: settings.kustomize_build.clone(),
            ref_revisions,
        }
    }
}

/// The result of a render.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Rendered {
    /// The tool that produced the objects.
    pub tool: Tool,
    /// The objects, in the tool's output order.
    pub objects: Vec<Value>,
}

/// Joins the source path to the checkout root lexically, refusing an escape.
pub fn source_dir(repo_root: &Path, path: Option<&str>) -> Result<PathBuf, RenderError> {
    let rel = path.unwrap_or(".");
    let mut out = repo_root.to_path_buf();
    let mut depth = 0usize;
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => {
                out.push(p);
                depth += 1;
            }
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => {
                out.pop();
                depth -= 1;
            }
            _ => {
                return Err(RenderError::SourcePath {
                    path: rel.to_owned(),
                    reason: "must be a relative path inside the repository".to_owned(),
                });
            }
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RenderError> + Send + 'static,
) -> Result<T, RenderError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RenderError::Aborted(e.to_string()))?
}

fn root_file_names(dir: &Path) -> Result<Vec<String>, RenderError> {
    let entries = std::fs::read_dir(dir).map_err(|e| RenderError::Io {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// Renders a source: detect the tool, then run it. The only entry point that does I/O.
pub async fn render(
    req: &RenderRequest<'_>,
    settings: &RenderSettings,
) -> Result<Rendered, RenderError> {
    let dir = source_dir(req.repo_root, req.source.path.as_deref())?;
    if !dir.is_dir() {
        return Err(RenderError::SourcePath {
            path: req.source.path.clone().unwrap_or_default(),
            reason: "not a directory in the checkout".to_owned(),
        });
    }
    let names = {
        let (dir, root) = (dir.clone(), req.repo_root.to_path_buf());
        blocking(move || {
            directory::check_symlinks(&root)?;
            root_file_names(&dir)
        })
        .await?
    };
    let tool = detect(&names, req.source)?;
    let objects = match tool {
        Tool::Directory => {
            let options = req.source.directory.clone();
            blocking(move || directory::render_directory(&dir, options.as_ref())).await?
        }
        Tool::Kustomize => render_kustomize(req, settings, dir).await?,
        Tool::Helm => render_helm(req, settings, dir, false).await?,
        Tool::Plugin => return Err(RenderError::UnsupportedTool("Plugin".to_owned())),
    };
    Ok(Rendered { tool, objects })
}

/// The helm binary of `settings`: the configured one, else next to cairn, else on PATH.
pub fn helm_binary(settings: &RenderSettings) -> Result<PathBuf, RenderError> {
    binary(settings.helm_bin.as_ref(), "helm")
}

fn binary(configured: Option<&PathBuf>, name: &str) -> Result<PathBuf, RenderError> {
    match configured {
        Some(p) => Ok(p.clone()),
        None => exec::find_binary(name),
    }
}

async fn render_kustomize(
    req: &RenderRequest<'_>,
    settings: &RenderSettings,
    dir: PathBuf,
) -> Result<Vec<Value>, RenderError> {
    let bin = binary(settings.kustomize_bin.as_ref(), "kustomize")?;
    let helm_bin = if settings.kustomize_build.enable_helm {
        Some(binary(settings.helm_bin.as_ref(), "helm")?)
    } else {
        None
    };
    let home = exec::TempDir::new("cairn-kustomize-home")?;
    let options = req.source.kustomize.as_ref();
    // Keep the copy alive until the build is done.
    let mut _copy = None;
    let workdir = if kustomize::needs_edits(options)? {
        let copy = exec::TempDir::new("cairn-kustomize")?;
        let (from, to) = (req.repo_root.to_path_buf(), copy.path().join("repo"));
        blocking(move || kustomize::copy_tree(&from, &to)).await?;
        let workdir = source_dir(&copy.path().join("repo"), req.source.path.as_deref())?;
        _copy = Some(copy);
        if let Some(options) = options {
            let env = req.build_env();
            let edits = EditRun {
                bin: &bin,
                workdir: &workdir,
                home: home.path(),
                timeout: settings.timeout,
            };
            apply_kustomize_edits(&edits, options, &env).await?;
        }
        workdir
    } else {
        dir
    };
    let inv = exec::Invocation {
        tool: "kustomize".to_owned(),
        args: kustomize::build_args(&workdir, &settings.kustomize_build, helm_bin.as_deref()),
        cwd: workdir.clone(),
        env: req.build_env().into_iter().collect(),
    };
    let out = exec::run(&bin, &inv, home.path(), settings.timeout).await?;
    manifest::parse_yaml("kustomize build output", &String::from_utf8_lossy(&out))
}

/// Where and how `kustomize edit` runs.
struct EditRun<'a> {
    bin: &'a Path,
    workdir: &'a Path,
    home: &'a Path,
    timeout: Duration,
}

async fn apply_kustomize_edits(
    edits: &EditRun<'_>,
    options: &crate::gitops::types::KustomizeSource,
    env: &env::BuildEnv,
) -> Result<(), RenderError> {
    let EditRun {
        bin,
        workdir,
        home,
        timeout,
    } = *edits;
    let run = |args: Vec<String>| exec::Invocation {
        tool: "kustomize".to_owned(),
        args,
        cwd: workdir.to_path_buf(),
        env: env.clone().into_iter().collect(),
    };
    for args in kustomize::edit_commands(options, env)? {
        exec::run(bin, &run(args), home, timeout).await?;
    }
    if let Some(patches) = options.patches.as_ref().filter(|p| !p.is_empty()) {
        let names = root_file_names(workdir)?;
        let file =
            kustomize::kustomization_file(&names).ok_or_else(|| RenderError::SourcePath {
                path: workdir.display().to_string(),
                reason: "kustomize.patches needs a kustomization file".to_owned(),
            })?;
        let path = workdir.join(file);
        let io = |e: std::io::Error| RenderError::Io {
            path: file.to_owned(),
            reason: e.to_string(),
        };
        let text = std::fs::read_to_string(&path).map_err(io)?;
        let patched = kustomize::apply_patches(file, &text, patches)?;
        std::fs::write(&path, patched).map_err(io)?;
    }
    if let Some(args) = kustomize::component_command(options) {
        exec::run(bin, &run(args), home, timeout).await?;
    }
    Ok(())
}

/// Renders a chart pulled from a Helm repository ([`helm_repo::pull_chart`]) exactly like a
/// chart in a Git checkout: `chart_dir` stands for both the checkout and the source path, so
/// `valueFiles` are files of the chart package (as in Argo CD) or `$ref/...` files.
pub async fn render_chart(
    req: &RenderRequest<'_>,
    settings: &RenderSettings,
    chart_dir: &Path,
) -> Result<Rendered, RenderError> {
    {
        let root = chart_dir.to_path_buf();
        blocking(move || directory::check_symlinks(&root)).await?;
    }
    let req = RenderRequest {
        repo_root: chart_dir,
        ..req.clone()
    };
    let objects = render_helm(&req, settings, chart_dir.to_path_buf(), true).await?;
    Ok(Rendered {
        tool: Tool::Helm,
        objects,
    })
}

/// `from_repository`: the chart was pulled from a Helm repository, so `source.chart` is
/// expected rather than refused.
async fn render_helm(
    req: &RenderRequest<'_>,
    settings: &RenderSettings,
    dir: PathBuf,
    from_repository: bool,
) -> Result<Vec<Value>, RenderError> {
    let options = req.source.helm.as_ref();
    let chart = if from_repository {
        None
    } else {
        req.source.chart.as_deref()
    };
    helm::check_supported(options, chart)?;
    let bin = binary(settings.helm_bin.as_ref(), "helm")?;
    let home = exec::TempDir::new("cairn-helm-home")?;
    let default_helm = crate::gitops::types::HelmSource::default();
    let value_files = helm::resolve_value_files(
        options.unwrap_or(&default_helm),
        req.repo_root,
        &dir,
        &req.refs,
        &|p: &Path| p.is_file(),
    )?;
    let inline = match options.and_then(helm::inline_values) {
        Some(text) => {
            let path = home.path().join("inline-values.yaml");
            std::fs::write(&path, text).map_err(|e| RenderError::Io {
                path: "helm inline values".to_owned(),
                reason: e.to_string(),
            })?;
            Some(path)
        }
        None => None,
    };
    let env = req.build_env();
    let ctx = helm::HelmContext {
        env: &env,
        cluster_kube_version: req.kube_version,
        cluster_api_versions: req.api_versions,
        app_name: req.app_name,
        namespace: req.namespace,
        chart_dir: &dir,
        value_files: &value_files,
        inline_values_file: inline.as_deref(),
    };
    let inv = exec::Invocation {
        tool: "helm".to_owned(),
        args: helm::template_args(options, &ctx),
        cwd: dir.clone(),
        // Helm reads no build variables; they are substituted into arguments instead.
        env: Vec::new(),
    };
    let out = exec::run(&bin, &inv, home.path(), settings.timeout).await?;
    manifest::parse_yaml("helm template output", &String::from_utf8_lossy(&out))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn source(v: Value) -> ApplicationSource {
        serde_json::from_value(v).expect("valid source")
    }

    #[test]
    fn detection_table() {
        let cases: Vec<(Vec<&str>, Value, Result<Tool, &str>)> = vec![
            (vec!["a.yaml"], json!({}), Ok(Tool::Directory)),
            (vec![], json!({}), Ok(Tool::Directory)),
            (vec!["Chart.yaml", "values.yaml"], json!({}), Ok(Tool::Helm)),
            (vec!["MyChart.yaml"], json!({}), Ok(Tool::Helm)),
            (vec!["kustomization.yaml"], json!({}), Ok(Tool::Kustomize)),
            (vec!["kustomization.yml"], json!({}), Ok(Tool::Kustomize)),
            (vec!["Kustomization"], json!({}), Ok(Tool::Kustomize)),
            (vec!["kustomization.json"], json!({}), Ok(Tool::Directory)),
            (
                vec!["kustomization.yaml", "Chart.yaml"],
                json!({}),
                Ok(Tool::Kustomize),
            ),
            (
                vec!["Chart.yaml"],
                json!({"directory": {"recurse": true}}),
                Ok(Tool::Directory),
            ),
            (
                vec!["kustomization.yaml"],
                json!({"helm": {"releaseName": "x"}}),
                Ok(Tool::Helm),
            ),
            (vec![], json!({"chart": "redis"}), Ok(Tool::Helm)),
            (
                vec!["a.yaml"],
                json!({"kustomize": {"namePrefix": "p-"}}),
                Ok(Tool::Kustomize),
            ),
            // Empty blocks are normalized away, as Argo CD does.
            (
                vec!["Chart.yaml"],
                json!({"kustomize": {}, "directory": {"recurse": false}}),
                Ok(Tool::Helm),
            ),
            (vec![], json!({"plugin": {"name": "p"}}), Ok(Tool::Plugin)),
            (
                vec![],
                json!({"helm": {"releaseName": "x"}, "kustomize": {"namePrefix": "p"}}),
                Err("Kustomize, Helm"),
            ),
        ];
        for (files, src, want) in cases {
            let files: Vec<String> = files.iter().map(|s| (*s).to_owned()).collect();
            let got = detect(&files, &source(src.clone()));
            match (got, want) {
                (Ok(t), Ok(w)) => assert_eq!(t, w, "{files:?} {src}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{e}"),
                (got, want) => panic!("{files:?} {src}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn source_dir_refuses_escapes() {
        let root = Path::new("/repo");
        assert_eq!(source_dir(root, None).expect("ok"), PathBuf::from("/repo"));
        assert_eq!(
            source_dir(root, Some("a/./b/../c")).expect("ok"),
            PathBuf::from("/repo/a/c")
        );
        for bad in ["../x", "/etc", "a/../../x"] {
            let err = source_dir(root, Some(bad)).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    async fn render_src(root: &Path, src: ApplicationSource) -> Result<Rendered, RenderError> {
        let req = RenderRequest {
            repo_root: root,
            source: &src,
            app_name: "a",
            namespace: None,
            project: "default",
            revision: "abc",
            kube_version: None,
            api_versions: &[],
            refs: BTreeMap::new(),
        };
        render(&req, &RenderSettings::default()).await
    }

    #[tokio::test]
    async fn render_refuses_plugins_and_bad_paths() {
        let repo = tempfile::tempdir().expect("tempdir");
        let render_src = |src| render_src(repo.path(), src);
        let err = render_src(source(json!({"plugin": {"name": "cmp"}})))
            .await
            .expect_err("plugin");
        assert!(matches!(err, RenderError::UnsupportedTool(_)), "{err}");
        let err = render_src(source(json!({"path": "nope"})))
            .await
            .expect_err("missing path");
        assert!(err.to_string().contains("nope"), "{err}");
        let err = render_src(source(json!({"path": "../escape"})))
            .await
            .expect_err("escape");
        assert!(err.to_string().contains("../escape"), "{err}");
        let ok = render_src(source(json!({})))
            .await
            .expect("empty directory");
        assert_eq!(
            ok,
            Rendered {
                tool: Tool::Directory,
                objects: vec![]
            }
        );
    }

    #[test]
    fn zero_values() {
        for (v, zero) in [
            (json!(null), true),
            (json!({}), true),
            (json!({"a": false, "b": "", "c": [], "d": {"e": 0}}), true),
            (json!({"a": true}), false),
            (json!(["x"]), false),
        ] {
            assert_eq!(is_zero(&v), zero, "{v}");
        }
    }
}
