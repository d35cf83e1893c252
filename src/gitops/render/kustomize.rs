//! The Kustomize renderer: Argo CD's `kustomize` options mapped to `kustomize edit` commands run
//! in a temporary copy of the checkout, then `kustomize build`.
//!
//! Argo CD's order and spelling (util/kustomize): `edit set nameprefix -- P`, `edit set
//! namesuffix -- S`, `edit set image I...`, `edit set replicas name=N...`, `edit add label
//! [--force] k:v,...`, `edit add annotation [--force] k:v,...`, `edit set namespace -- NS`, then
//! `patches` appended to the kustomization file, then `edit add component C...`. The command
//! lists are pure ([`edit_commands`], [`build_args`]). Invariant: the user's checkout is never
//! modified — edits happen only in a copy, and without edits the build reads the checkout.

use std::path::Path;

use serde_json::Value;

use super::RenderError;
use super::env::{BuildEnv, envsubst};
use crate::gitops::types::KustomizeSource;

/// Kustomization file names, in kustomize's lookup order.
pub const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Build options that are cairn settings, not Application fields (Argo CD's
/// `kustomize.buildOptions` in `argocd-cm`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KustomizeBuildOptions {
    /// Pass `--enable-helm` (with `--helm-command <helm>`).
    pub enable_helm: bool,
    /// Pass `--load-restrictor LoadRestrictionsNone`.
    pub load_restrictor_none: bool,
}

fn extra_bool(options: &KustomizeSource, key: &str) -> bool {
    options
        .extra
        .get(key)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// One `key:value` argument per pair: `kustomize edit add label a:1,b:2` would read the value
/// of `a` as `1,b:2`.
fn pair_args(
    map: &std::collections::BTreeMap<String, String>,
    env: Option<&BuildEnv>,
) -> Vec<String> {
    map.iter()
        .map(|(k, v)| match env {
            Some(env) => format!("{k}:{}", envsubst(v, env)),
            None => format!("{k}:{v}"),
        })
        .collect()
}

/// The `kustomize edit ...` argument lists for `options`, in Argo CD's order. Empty when no
/// option asks for an edit. `patches` are not a command: see [`apply_patches`]. As Argo CD
/// does, `env` is substituted into images and label values always, and into annotation values
/// when `commonAnnotationsEnvsubst` is set.
pub fn edit_commands(
    options: &KustomizeSource,
    env: &BuildEnv,
) -> Result<Vec<Vec<String>>, RenderError> {
    let s = |v: &str| v.to_owned();
    let mut out: Vec<Vec<String>> = Vec::new();
    if let Some(p) = options.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        out.push(vec![s("edit"), s("set"), s("nameprefix"), s("--"), s(p)]);
    }
    if let Some(p) = options.name_suffix.as_deref().filter(|p| !p.is_empty()) {
        out.push(vec![s("edit"), s("set"), s("namesuffix"), s("--"), s(p)]);
    }
    if let Some(images) = options.images.as_ref().filter(|i| !i.is_empty()) {
        let mut cmd = vec![s("edit"), s("set"), s("image")];
        cmd.extend(images.iter().map(|i| envsubst(i, env)));
        out.push(cmd);
    }
    if let Some(replicas) = options.replicas.as_ref().filter(|r| !r.is_empty()) {
        let mut cmd = vec![s("edit"), s("set"), s("replicas")];
        for (i, r) in replicas.iter().enumerate() {
            let name = r
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty());
            // Argo CD accepts the count as a number or a numeric string.
            let count = match r.get("count") {
                Some(Value::Number(n)) => n.as_u64().map(|n| n.to_string()),
                Some(Value::String(c)) if c.parse::<u64>().is_ok() => Some(c.clone()),
                _ => None,
            };
            let (Some(name), Some(count)) = (name, count) else {
                return Err(RenderError::InvalidOption {
                    field: format!("kustomize.replicas[{i}]"),
                    expected: "a `name` and a non-negative integer `count`".to_owned(),
                });
            };
            cmd.push(format!("{name}={count}"));
        }
        out.push(cmd);
    }
    if let Some(labels) = options.common_labels.as_ref().filter(|m| !m.is_empty()) {
        let mut cmd = vec![s("edit"), s("add"), s("label")];
        if extra_bool(options, "forceCommonLabels") {
            cmd.push(s("--force"));
        }
        if extra_bool(options, "labelWithoutSelector") {
            cmd.push(s("--without-selector"));
        }
        cmd.extend(pair_args(labels, Some(env)));
        out.push(cmd);
    }
    if let Some(ann) = options
        .common_annotations
        .as_ref()
        .filter(|m| !m.is_empty())
    {
        let mut cmd = vec![s("edit"), s("add"), s("annotation")];
        if extra_bool(options, "forceCommonAnnotations") {
            cmd.push(s("--force"));
        }
        let subst = extra_bool(options, "commonAnnotationsEnvsubst");
        cmd.extend(pair_args(ann, subst.then_some(env)));
        out.push(cmd);
    }
    if let Some(ns) = options.namespace.as_deref().filter(|n| !n.is_empty()) {
        out.push(vec![s("edit"), s("set"), s("namespace"), s("--"), s(ns)]);
    }
    Ok(out)
}

/// The component command, run after the patches as Argo CD does.
pub fn component_command(options: &KustomizeSource) -> Option<Vec<String>> {
    let components = options.components.as_ref().filter(|c| !c.is_empty())?;
    let mut cmd = vec!["edit".to_owned(), "add".to_owned(), "component".to_owned()];
    cmd.extend(components.iter().cloned());
    Some(cmd)
}

/// Whether `options` needs a writable copy of the checkout.
pub fn needs_edits(options: Option<&KustomizeSource>) -> Result<bool, RenderError> {
    let Some(o) = options else { return Ok(false) };
    Ok(!edit_commands(o, &BuildEnv::new())?.is_empty()
        || component_command(o).is_some()
        || o.patches.as_ref().is_some_and(|p| !p.is_empty()))
}

/// `kustomize build` arguments for the directory `dir` (absolute).
pub fn build_args(dir: &Path, build: &KustomizeBuildOptions, helm: Option<&Path>) -> Vec<String> {
    let mut args = vec!["build".to_owned(), dir.display().to_string()];
    if build.enable_helm {
        args.push("--enable-helm".to_owned());
        if let Some(helm) = helm {
            args.push("--helm-command".to_owned());
            args.push(helm.display().to_string());
        }
    }
    if build.load_restrictor_none {
        args.push("--load-restrictor".to_owned());
        args.push("LoadRestrictionsNone".to_owned());
    }
    args
}

/// Appends `patches` to the kustomization text (`file` names it in errors); returns the new
/// text as JSON, which kustomize reads as YAML.
pub fn apply_patches(file: &str, text: &str, patches: &[Value]) -> Result<String, RenderError> {
    let mut doc: Value =
        serde_saphyr::from_str(text).map_err(|e| RenderError::InvalidDocument {
            file: file.to_owned(),
            document: 0,
            reason: e.to_string(),
        })?;
    let Some(map) = doc.as_object_mut() else {
        return Err(RenderError::NotAnObject {
            file: file.to_owned(),
            document: 0,
            reason: "a kustomization must be a mapping".to_owned(),
        });
    };
    let list = map
        .entry("patches")
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(list) = list.as_array_mut() else {
        return Err(RenderError::InvalidOption {
            field: format!("{file}: patches"),
            expected: "a list".to_owned(),
        });
    };
    list.extend(patches.iter().cloned());
    serde_json::to_string_pretty(&doc).map_err(|e| RenderError::InvalidOption {
        field: "kustomize.patches".to_owned(),
        expected: e.to_string(),
    })
}

/// The kustomization file name among a directory's file names, in kustomize's order.
pub fn kustomization_file(names: &[String]) -> Option<&'static str> {
    KUSTOMIZATION_FILES
        .into_iter()
        .find(|f| names.iter().any(|n| n == f))
}

/// Copies `from` into `to` recursively, skipping `.git` (a blocking helper for the temp copy).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), RenderError> {
    let io = |p: &Path, e: std::io::Error| RenderError::Io {
        path: p.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        if entry.file_name() == ".git" {
            continue;
        }
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = std::fs::metadata(&src).map_err(|e| io(&src, e))?;
        if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).map_err(|e| io(&src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn opts(value: Value) -> KustomizeSource {
        serde_json::from_value(value).expect("valid KustomizeSource")
    }

    #[test]
    fn edit_commands_follow_argo_order() {
        let o = opts(json!({
            "namePrefix": "p-", "nameSuffix": "-s",
            "images": ["nginx=nginx:1.27", "busybox:1.36"],
            "replicas": [{"name": "web", "count": 3}, {"name": "api", "count": "2"}],
            "commonLabels": {"team": "ml", "env": "dev"},
            "forceCommonLabels": true,
            "commonAnnotations": {"a": "b"},
            "namespace": "ns1",
            "components": ["../c1", "../c2"],
        }));
        insta::assert_yaml_snapshot!(edit_commands(&o, &BuildEnv::new()).expect("valid"));
        assert_eq!(
            component_command(&o).expect("some"),
            ["edit", "add", "component", "../c1", "../c2"]
        );
        assert!(needs_edits(Some(&o)).expect("valid"));
    }

    #[test]
    fn no_options_no_edits() {
        assert!(
            edit_commands(&KustomizeSource::default(), &BuildEnv::new())
                .expect("valid")
                .is_empty()
        );
        assert!(!needs_edits(None).expect("valid"));
        assert!(!needs_edits(Some(&KustomizeSource::default())).expect("valid"));
        let patches_only = opts(json!({"patches": [{"patch": "x"}]}));
        assert!(needs_edits(Some(&patches_only)).expect("valid"));
        let empty = KustomizeSource {
            common_labels: Some(BTreeMap::new()),
            ..Default::default()
        };
        assert!(!needs_edits(Some(&empty)).expect("valid"));
    }

    #[test]
    fn bad_replicas_name_the_field() {
        for bad in [
            json!({"name": "a"}),
            json!({"name": "a", "count": "x"}),
            json!({"count": 1}),
        ] {
            let o = opts(json!({"replicas": [{"name": "ok", "count": 1}, bad]}));
            let err = edit_commands(&o, &BuildEnv::new()).expect_err("invalid");
            assert!(err.to_string().contains("kustomize.replicas[1]"), "{err}");
        }
    }

    #[test]
    fn build_env_is_substituted_as_argo_does() {
        let env = BuildEnv::from([
            ("ARGOCD_APP_NAME".to_owned(), "gb".to_owned()),
            ("ARGOCD_APP_REVISION_SHORT".to_owned(), "abc1234".to_owned()),
        ]);
        let cases = [
            (
                json!({"images": ["app=reg/app:${ARGOCD_APP_REVISION_SHORT}"]}),
                vec!["edit", "set", "image", "app=reg/app:abc1234"],
            ),
            (
                json!({"commonLabels": {"app": "$ARGOCD_APP_NAME"}}),
                vec!["edit", "add", "label", "app:gb"],
            ),
            // Annotations only with commonAnnotationsEnvsubst.
            (
                json!({"commonAnnotations": {"a": "$ARGOCD_APP_NAME"}}),
                vec!["edit", "add", "annotation", "a:$ARGOCD_APP_NAME"],
            ),
            (
                json!({"commonAnnotations": {"a": "$ARGOCD_APP_NAME"}, "commonAnnotationsEnvsubst": true}),
                vec!["edit", "add", "annotation", "a:gb"],
            ),
            // Not substituted: prefix and namespace.
            (
                json!({"namePrefix": "$ARGOCD_APP_NAME-"}),
                vec!["edit", "set", "nameprefix", "--", "$ARGOCD_APP_NAME-"],
            ),
        ];
        for (o, want) in cases {
            let got = edit_commands(&opts(o.clone()), &env).expect("valid");
            assert_eq!(got, [want], "{o}");
        }
    }

    #[test]
    fn build_args_table() {
        let dir = Path::new("/tmp/x");
        assert_eq!(
            build_args(dir, &KustomizeBuildOptions::default(), None),
            ["build", "/tmp/x"]
        );
        let all = KustomizeBuildOptions {
            enable_helm: true,
            load_restrictor_none: true,
        };
        assert_eq!(
            build_args(dir, &all, Some(Path::new("/bin/helm"))),
            [
                "build",
                "/tmp/x",
                "--enable-helm",
                "--helm-command",
                "/bin/helm",
                "--load-restrictor",
                "LoadRestrictionsNone"
            ]
        );
    }

    #[test]
    fn patches_are_appended() {
        let text = "resources: [a.yaml]\npatches:\n- path: p.yaml\n";
        let out = apply_patches("kustomization.yaml", text, &[json!({"patch": "q"})]).expect("ok");
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["patches"], json!([{"path": "p.yaml"}, {"patch": "q"}]));
        let out = apply_patches("k.yaml", "resources: []\n", &[json!({"patch": "q"})]).expect("ok");
        let v: Value = serde_json::from_str(&out).expect("json");
        assert_eq!(v["patches"], json!([{"patch": "q"}]));
        let err = apply_patches("k.yaml", "patches: 3\n", &[]).expect_err("not a list");
        assert!(err.to_string().contains("k.yaml"), "{err}");
    }

    #[test]
    fn kustomization_file_lookup() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            kustomization_file(&names(&["Kustomization", "kustomization.yml"])),
            Some("kustomization.yml")
        );
        assert_eq!(kustomization_file(&names(&["a.yaml"])), None);
    }
}
