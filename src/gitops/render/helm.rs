//! The Helm renderer: `helm template` of a chart in the checkout, with Argo CD's options.
//!
//! Argument order follows Argo CD (util/helm): release name and chart, `--namespace`,
//! `--kube-version`, `--values` for each value file, then `--values` of the inline values
//! (`valuesObject` wins over `values`), then `--set`/`--set-string`, `--set-file`,
//! `--api-versions`, and `--include-crds` unless `skipCrds`. Later values override earlier
//! ones, so inline values beat files and parameters beat both. The argument list is pure
//! ([`template_args`]); value-file resolution is pure over the set of existing files
//! ([`resolve_value_files`]). `passCredentials` is ignored: charts are local (from the Git
//! checkout or pulled by `helm_repo`); a `chart:` reaching [`check_supported`] from a checkout
//! render is refused (`super::render_chart` renders pulled charts).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::RenderError;
use super::env::{BuildEnv, envsubst};
use crate::gitops::types::HelmSource;

/// What `helm template` needs besides the source's options.
#[derive(Clone, Debug, PartialEq)]
pub struct HelmContext<'a> {
    /// Release name when `helm.releaseName` is absent: the Application's name.
    pub app_name: &'a str,
    /// Destination namespace, used when `helm.namespace` is absent.
    pub namespace: Option<&'a str>,
    /// The chart directory (absolute).
    pub chart_dir: &'a Path,
    /// Value files, already resolved to absolute paths.
    pub value_files: &'a [PathBuf],
    /// The file holding the inline values, when there are any.
    pub inline_values_file: Option<&'a Path>,
    /// Build variables substituted into `--set`/`--set-string`/`--set-file` values.
    pub env: &'a BuildEnv,
    /// The destination cluster's version, used when `helm.kubeVersion` is empty (Argo CD
    /// templates against the destination cluster).
    pub cluster_kube_version: Option<&'a str>,
    /// The destination cluster's API versions, used when `helm.apiVersions` is empty.
    pub cluster_api_versions: &'a [String],
}

/// Escapes unescaped commas in a `--set` value, as Argo CD does, so `a,b` stays one value;
/// a `{...}` list literal is passed through.
pub fn escape_set_value(value: &str) -> String {
    if value.starts_with('{') && value.ends_with('}') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut prev = None;
    for c in value.chars() {
        if c == ',' && prev != Some('\\') {
            out.push('\\');
        }
        out.push(c);
        prev = Some(c);
    }
    out
}

/// The inline values as YAML text: `valuesObject` (as JSON, which is YAML) or `values`; `None`
/// when both are absent or empty.
pub fn inline_values(helm: &HelmSource) -> Option<String> {
    match &helm.values_object {
        Some(Value::Object(m)) if !m.is_empty() => {
            return serde_json::to_string(&Value::Object(m.clone())).ok();
        }
        _ => {}
    }
    helm.values
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .map(str::to_owned)
}

/// Resolves `valueFiles` against the chart directory. `$name/path` refers to another source
/// (multi-source `ref`), looked up in `refs`; `/path` is relative to the repository root, as in
/// Argo CD. A file must stay inside its root (`repo_root` or
/// the ref's checkout); a missing file is an error unless `ignoreMissingValueFiles`.
/// `exists` answers whether an absolute path is a file, so this stays pure.
pub fn resolve_value_files(
    helm: &HelmSource,
    repo_root: &Path,
    chart_dir: &Path,
    refs: &BTreeMap<String, PathBuf>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<PathBuf>, RenderError> {
    let ignore_missing = helm.ignore_missing_value_files.unwrap_or(false);
    let mut out = Vec::new();
    for file in helm.value_files.iter().flatten() {
        if file.contains("://") {
            return Err(RenderError::InvalidOption {
                field: format!("helm.valueFiles: {file}"),
                expected: "a file in the repository (remote value files are not fetched)"
                    .to_owned(),
            });
        }
        let (root, joined) = if let Some(rest) = file.strip_prefix('$') {
            let (name, rel) = rest.split_once('/').unwrap_or((rest, ""));
            let root = refs.get(name).ok_or_else(|| RenderError::InvalidOption {
                field: format!("helm.valueFiles: {file}"),
                expected: format!("a source with `ref: {name}`"),
            })?;
            (root.clone(), root.join(rel))
        } else if let Some(from_root) = file.strip_prefix('/') {
            // Argo CD reads a leading `/` as the repository root, not the host's.
            (repo_root.to_path_buf(), repo_root.join(from_root))
        } else {
            (repo_root.to_path_buf(), chart_dir.join(file))
        };
        let path = normalize(&joined);
        if !path.starts_with(normalize(&root)) {
            return Err(RenderError::InvalidOption {
                field: format!("helm.valueFiles: {file}"),
                expected: "a path inside the repository".to_owned(),
            });
        }
        if !exists(&path) {
            if ignore_missing {
                continue;
            }
            return Err(RenderError::InvalidOption {
                field: format!("helm.valueFiles: {file}"),
                expected: "an existing file".to_owned(),
            });
        }
        out.push(path);
    }
    Ok(out)
}

/// Lexical normalization (`.` and `..`), so a traversal check needs no filesystem.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The `helm template` argument list.
pub fn template_args(helm: Option<&HelmSource>, ctx: &HelmContext<'_>) -> Vec<String> {
    let release = helm
        .and_then(|h| h.release_name.as_deref())
        .filter(|r| !r.is_empty())
        .unwrap_or(ctx.app_name);
    let mut args = vec![
        "template".to_owned(),
        release.to_owned(),
        ctx.chart_dir.display().to_string(),
    ];
    let namespace = helm
        .and_then(|h| h.namespace.as_deref())
        .filter(|n| !n.is_empty())
        .or(ctx.namespace.filter(|n| !n.is_empty()));
    if let Some(ns) = namespace {
        args.extend(["--namespace".to_owned(), ns.to_owned()]);
    }
    let kube_version = helm
        .and_then(|h| h.kube_version.as_deref())
        .filter(|v| !v.is_empty())
        .or(ctx.cluster_kube_version.filter(|v| !v.is_empty()));
    if let Some(kv) = kube_version {
        args.extend(["--kube-version".to_owned(), kv.to_owned()]);
    }
    for f in ctx.value_files {
        args.extend(["--values".to_owned(), f.display().to_string()]);
    }
    if let Some(f) = ctx.inline_values_file {
        args.extend(["--values".to_owned(), f.display().to_string()]);
    }
    for p in helm
        .and_then(|h| h.parameters.as_ref())
        .into_iter()
        .flatten()
    {
        let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let flag = if p.force_string.unwrap_or(false) {
            "--set-string"
        } else {
            "--set"
        };
        // Argo CD substitutes the build environment first, then escapes commas.
        let value = escape_set_value(&envsubst(p.value.as_deref().unwrap_or(""), ctx.env));
        args.extend([flag.to_owned(), format!("{name}={value}")]);
    }
    for p in helm
        .and_then(|h| h.file_parameters.as_ref())
        .into_iter()
        .flatten()
    {
        let name = p.get("name").and_then(Value::as_str);
        let path = p.get("path").and_then(Value::as_str);
        if let (Some(name), Some(path)) = (name, path) {
            let file = normalize(&ctx.chart_dir.join(envsubst(path, ctx.env)));
            args.extend([
                "--set-file".to_owned(),
                format!("{name}={}", file.display()),
            ]);
        }
    }
    let own = helm
        .and_then(|h| h.api_versions.as_deref())
        .filter(|v| !v.is_empty());
    let api_versions: BTreeSet<&str> = own
        .unwrap_or(ctx.cluster_api_versions)
        .iter()
        .map(String::as_str)
        .collect();
    for v in api_versions {
        args.extend(["--api-versions".to_owned(), v.to_owned()]);
    }
    if !helm.and_then(|h| h.skip_crds).unwrap_or(false) {
        args.push("--include-crds".to_owned());
    }
    args
}

/// Rejects options this renderer cannot honour, naming the field.
pub fn check_supported(helm: Option<&HelmSource>, chart: Option<&str>) -> Result<(), RenderError> {
    if chart.is_some_and(|c| !c.is_empty()) {
        return Err(RenderError::InvalidOption {
            field: "source.chart".to_owned(),
            expected: "a chart in the Git checkout (`path`); a Helm repository chart is pulled \
                       first and rendered with render_chart"
                .to_owned(),
        });
    }
    for (i, p) in helm
        .and_then(|h| h.file_parameters.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ok = p.get("name").and_then(Value::as_str).is_some()
            && p.get("path")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.contains(".."));
        if !ok {
            return Err(RenderError::InvalidOption {
                field: format!("helm.fileParameters[{i}]"),
                expected: "a `name` and a `path` inside the chart".to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn helm(value: Value) -> HelmSource {
        serde_json::from_value(value).expect("valid HelmSource")
    }

    #[test]
    fn template_args_full() {
        let h = helm(json!({
            "releaseName": "rel",
            "kubeVersion": "1.37.0",
            "apiVersions": ["monitoring.coreos.com/v1", "batch/v1"],
            "parameters": [
                {"name": "image.tag", "value": "v1,2"},
                {"name": "port", "value": "80", "forceString": true},
                {"name": "list", "value": "{a,b}"},
                {"name": "owner", "value": "${ARGOCD_APP_NAME},x"},
                {"value": "nameless"}
            ],
            "fileParameters": [{"name": "cfg", "path": "files/c.txt"}],
            "skipCrds": true,
            "passCredentials": true,
        }));
        let files = [PathBuf::from("/repo/chart/values-prod.yaml")];
        let ctx = HelmContext {
            app_name: "app",
            namespace: Some("dest"),
            chart_dir: Path::new("/repo/chart"),
            value_files: &files,
            inline_values_file: Some(Path::new("/tmp/inline.yaml")),
            env: &BuildEnv::from([("ARGOCD_APP_NAME".to_owned(), "app".to_owned())]),
            cluster_kube_version: Some("1.30.0"),
            cluster_api_versions: &["cluster/v1".to_owned()],
        };
        insta::assert_yaml_snapshot!(template_args(Some(&h), &ctx));
    }

    #[test]
    fn defaults_release_to_app_name_and_include_crds() {
        let ctx = HelmContext {
            app_name: "guestbook",
            namespace: None,
            chart_dir: Path::new("/c"),
            value_files: &[],
            inline_values_file: None,
            env: &BuildEnv::new(),
            cluster_kube_version: None,
            cluster_api_versions: &[],
        };
        assert_eq!(
            template_args(None, &ctx),
            ["template", "guestbook", "/c", "--include-crds"]
        );
        let ns = helm(json!({"namespace": "override", "releaseName": ""}));
        let ctx = HelmContext {
            namespace: Some("dest"),
            ..ctx
        };
        assert_eq!(
            template_args(Some(&ns), &ctx),
            [
                "template",
                "guestbook",
                "/c",
                "--namespace",
                "override",
                "--include-crds"
            ]
        );
    }

    #[test]
    fn cluster_capabilities_are_the_default() {
        let cluster_apis = ["batch/v1".to_owned(), "apps/v1".to_owned()];
        let ctx = HelmContext {
            app_name: "a",
            namespace: None,
            chart_dir: Path::new("/c"),
            value_files: &[],
            inline_values_file: None,
            env: &BuildEnv::new(),
            cluster_kube_version: Some("1.37.2"),
            cluster_api_versions: &cluster_apis,
        };
        assert_eq!(
            template_args(None, &ctx),
            [
                "template",
                "a",
                "/c",
                "--kube-version",
                "1.37.2",
                "--api-versions",
                "apps/v1",
                "--api-versions",
                "batch/v1",
                "--include-crds"
            ]
        );
        let own = helm(json!({"kubeVersion": "1.29.0", "apiVersions": ["x/v1"]}));
        assert_eq!(
            template_args(Some(&own), &ctx),
            [
                "template",
                "a",
                "/c",
                "--kube-version",
                "1.29.0",
                "--api-versions",
                "x/v1",
                "--include-crds"
            ]
        );
    }

    #[test]
    fn set_value_escaping() {
        for (input, want) in [
            ("a,b", "a\\,b"),
            ("a\\,b", "a\\,b"),
            ("{a,b}", "{a,b}"),
            ("", ""),
        ] {
            assert_eq!(escape_set_value(input), want, "{input}");
        }
    }

    #[test]
    fn inline_values_prefer_the_object() {
        let both = helm(json!({"values": "a: 1\n", "valuesObject": {"b": 2}}));
        assert_eq!(inline_values(&both).as_deref(), Some(r#"{"b":2}"#));
        assert_eq!(
            inline_values(&helm(json!({"values": "a: 1\n"}))).as_deref(),
            Some("a: 1\n")
        );
        assert_eq!(
            inline_values(&helm(json!({"values": "  ", "valuesObject": {}}))),
            None
        );
    }

    #[test]
    fn value_file_resolution() {
        let root = Path::new("/repo");
        let chart = Path::new("/repo/charts/app");
        let refs = BTreeMap::from([("values".to_owned(), PathBuf::from("/other"))]);
        let exists = |p: &Path| p != Path::new("/repo/charts/app/missing.yaml");
        let ok = helm(
            json!({"valueFiles": ["values-dev.yaml", "../common.yaml", "$values/env/prod.yaml", "/envs/prod.yaml"]}),
        );
        assert_eq!(
            resolve_value_files(&ok, root, chart, &refs, &exists).expect("resolves"),
            [
                PathBuf::from("/repo/charts/app/values-dev.yaml"),
                PathBuf::from("/repo/charts/common.yaml"),
                PathBuf::from("/other/env/prod.yaml"),
                PathBuf::from("/repo/envs/prod.yaml"),
            ]
        );
        let cases = [
            (
                json!({"valueFiles": ["../../../etc/passwd"]}),
                "inside the repository",
            ),
            (
                json!({"valueFiles": ["$values/../x.yaml"]}),
                "inside the repository",
            ),
            (json!({"valueFiles": ["$nope/x.yaml"]}), "ref: nope"),
            (json!({"valueFiles": ["missing.yaml"]}), "an existing file"),
            (
                json!({"valueFiles": ["https://example.com/v.yaml"]}),
                "remote",
            ),
        ];
        for (h, want) in cases {
            let err = resolve_value_files(&helm(h.clone()), root, chart, &refs, &exists)
                .expect_err("invalid");
            let msg = err.to_string();
            assert!(
                msg.contains(want) && msg.contains("helm.valueFiles"),
                "{h}: {msg}"
            );
        }
        let ignore = helm(json!({"valueFiles": ["missing.yaml"], "ignoreMissingValueFiles": true}));
        assert!(
            resolve_value_files(&ignore, root, chart, &refs, &exists)
                .expect("ok")
                .is_empty()
        );
    }

    #[test]
    fn unsupported_options_are_named() {
        let err = check_supported(None, Some("redis")).expect_err("repo chart");
        assert!(err.to_string().contains("source.chart"), "{err}");
        let bad = helm(json!({"fileParameters": [{"name": "a", "path": "../x"}]}));
        let err = check_supported(Some(&bad), None).expect_err("traversal");
        assert!(err.to_string().contains("helm.fileParameters[0]"), "{err}");
        assert!(check_supported(Some(&helm(json!({}))), None).is_ok());
    }
}
