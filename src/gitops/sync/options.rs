//! Sync options: the application's `syncPolicy.syncOptions`, the per-resource
//! `argocd.argoproj.io/sync-options` annotation, and the options of one sync operation.
//!
//! Invariant: a per-resource option always overrides the application-level one (Argo CD: "setting
//! a Prune sync option on the resource will always override a Prune sync policy defined in the
//! Application"). Unknown option *keys* are ignored, as Argo CD ignores them, so manifests written
//! for a newer Argo CD still sync; a known key with a value cairn does not understand is an error
//! naming the option, because silently ignoring `Prune=flase` would delete what the user protected.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PlanError, annotation_csv};
use crate::k8s::ResourceKey;

/// Annotation holding per-resource sync options, comma-separated.
pub const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";

/// Deletion propagation used when pruning (`PrunePropagationPolicy=`); Argo CD's default is
/// foreground.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PropagationPolicy {
    /// Delete dependents first, then the owner (Argo CD's default).
    #[default]
    Foreground,
    /// Delete the owner now, dependents in the background.
    Background,
    /// Leave dependents in place.
    Orphan,
}

/// A tri-state option value: `true`, `false` or `confirm` (Prune and Delete accept `confirm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Allowed.
    True,
    /// Forbidden.
    False,
    /// Allowed once a user confirms (`argocd.argoproj.io/deletion-approved`).
    Confirm,
}

/// The application-level `syncPolicy.syncOptions`, parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSyncOptions {
    /// `Prune=false|confirm`: default prune permission for every resource.
    pub prune: Option<Permission>,
    /// `Delete=false|confirm`: default delete permission for every resource.
    pub delete: Option<Permission>,
    /// `PruneLast=true`: prune in a final wave after everything else is healthy.
    pub prune_last: bool,
    /// `ApplyOutOfSyncOnly=true`: skip resources the diff found in sync.
    pub apply_out_of_sync_only: bool,
    /// `CreateNamespace=true`: create the destination namespace when missing.
    pub create_namespace: bool,
    /// `Replace=true`: `replace`/`create` instead of apply.
    pub replace: bool,
    /// `ServerSideApply=true`.
    pub server_side_apply: bool,
    /// `Validate=false` disables schema validation.
    pub validate: bool,
    /// `PrunePropagationPolicy=foreground|background|orphan`.
    pub prune_propagation_policy: PropagationPolicy,
    /// `FailOnSharedResource=true`: refuse to sync a resource tracked by another application.
    pub fail_on_shared_resource: bool,
    /// `SkipDryRunOnMissingResource=true` for every resource.
    pub skip_dry_run_on_missing_resource: bool,
    /// `RespectIgnoreDifferences=true`: the applier pre-patches ignored fields.
    pub respect_ignore_differences: bool,
}

impl AppSyncOptions {
    /// Parse `syncPolicy.syncOptions` (`KEY=VALUE` strings).
    pub fn parse<S: AsRef<str>>(options: &[S]) -> Result<Self, PlanError> {
        let mut out = AppSyncOptions {
            validate: true,
            ..AppSyncOptions::default()
        };
        for raw in options {
            let raw = raw.as_ref().trim();
            let bad = |expected: &str| PlanError::BadSyncOption {
                option: raw.to_owned(),
                expected: expected.to_owned(),
            };
            let Some((key, value)) = raw.split_once('=') else {
                return Err(bad("KEY=VALUE"));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "Prune" => out.prune = Some(permission(value).ok_or_else(|| bad(TRI))?),
                "Delete" => out.delete = Some(permission(value).ok_or_else(|| bad(TRI))?),
                "PruneLast" => out.prune_last = boolean(value).ok_or_else(|| bad(BOOL))?,
                "ApplyOutOfSyncOnly" => {
                    out.apply_out_of_sync_only = boolean(value).ok_or_else(|| bad(BOOL))?
                }
                "CreateNamespace" => {
                    out.create_namespace = boolean(value).ok_or_else(|| bad(BOOL))?
                }
                "Replace" => out.replace = boolean(value).ok_or_else(|| bad(BOOL))?,
                "ServerSideApply" => {
                    out.server_side_apply = boolean(value).ok_or_else(|| bad(BOOL))?
                }
                "Validate" => out.validate = boolean(value).ok_or_else(|| bad(BOOL))?,
                "PrunePropagationPolicy" => {
                    out.prune_propagation_policy = match value.to_ascii_lowercase().as_str() {
                        "foreground" => PropagationPolicy::Foreground,
                        "background" => PropagationPolicy::Background,
                        "orphan" => PropagationPolicy::Orphan,
                        _ => return Err(bad("foreground, background or orphan")),
                    }
                }
                "FailOnSharedResource" => {
                    out.fail_on_shared_resource = boolean(value).ok_or_else(|| bad(BOOL))?
                }
                "SkipDryRunOnMissingResource" => {
                    out.skip_dry_run_on_missing_resource =
                        boolean(value).ok_or_else(|| bad(BOOL))?
                }
                "RespectIgnoreDifferences" => {
                    out.respect_ignore_differences = boolean(value).ok_or_else(|| bad(BOOL))?
                }
                // Options cairn does not act on (Force, ClientSideApplyMigration, ...): ignored
                // as Argo CD ignores unknown ones.
                _ => {}
            }
        }
        Ok(out)
    }
}

const BOOL: &str = "true or false";
const TRI: &str = "true, false or confirm";

fn boolean(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn permission(value: &str) -> Option<Permission> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Some(Permission::True),
        "false" => Some(Permission::False),
        "confirm" => Some(Permission::Confirm),
        _ => None,
    }
}

/// The `argocd.argoproj.io/sync-options` annotation of one object, parsed. `None` means "not set
/// on the resource": the application-level option applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSyncOptions {
    /// `Prune=true|false|confirm`.
    pub prune: Option<Permission>,
    /// `Delete=true|false|confirm` (`helm.sh/resource-policy: keep` means `Delete=false`).
    pub delete: Option<Permission>,
    /// `PruneLast=true`.
    pub prune_last: Option<bool>,
    /// `Replace=true`.
    pub replace: Option<bool>,
    /// `ServerSideApply=true|false`.
    pub server_side_apply: Option<bool>,
    /// `Validate=false`.
    pub validate: Option<bool>,
    /// `SkipDryRunOnMissingResource=true`.
    pub skip_dry_run_on_missing_resource: Option<bool>,
    /// `RespectIgnoreDifferences=true|false`.
    pub respect_ignore_differences: Option<bool>,
    /// `Force=true` (with Replace: delete and re-create).
    pub force: Option<bool>,
}

impl ResourceSyncOptions {
    /// Parse the annotation of `obj`; `key` names the object in errors.
    pub fn of(obj: &Value, key: &ResourceKey) -> Result<Self, PlanError> {
        let mut out = ResourceSyncOptions::default();
        for item in annotation_csv(obj, SYNC_OPTIONS) {
            let bad = |expected: &str| PlanError::BadAnnotation {
                object: key.to_string(),
                annotation: SYNC_OPTIONS.to_owned(),
                value: item.clone(),
                expected: expected.to_owned(),
            };
            let Some((k, v)) = item.split_once('=') else {
                return Err(bad("comma-separated KEY=VALUE options"));
            };
            let (k, v) = (k.trim(), v.trim());
            let flag = || boolean(v).ok_or_else(|| bad(BOOL));
            match k {
                "Prune" => out.prune = Some(permission(v).ok_or_else(|| bad(TRI))?),
                "Delete" => out.delete = Some(permission(v).ok_or_else(|| bad(TRI))?),
                "PruneLast" => out.prune_last = Some(flag()?),
                "Replace" => out.replace = Some(flag()?),
                "ServerSideApply" => out.server_side_apply = Some(flag()?),
                "Validate" => out.validate = Some(flag()?),
                "SkipDryRunOnMissingResource" => {
                    out.skip_dry_run_on_missing_resource = Some(flag()?)
                }
                "RespectIgnoreDifferences" => out.respect_ignore_differences = Some(flag()?),
                "Force" => out.force = Some(flag()?),
                _ => {}
            }
        }
        // Helm's "keep" policy: Argo CD maps it to Delete=false; an explicit Delete wins.
        if out.delete.is_none()
            && super::annotation(obj, "helm.sh/resource-policy").map(str::trim) == Some("keep")
        {
            out.delete = Some(Permission::False);
        }
        Ok(out)
    }
}

/// How the applier writes one object (the effective per-resource + app options).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplySettings {
    /// Server-side apply (field manager `cairn`).
    pub server_side: bool,
    /// Schema validation on.
    pub validate: bool,
    /// Skip the dry run when the resource type is not known yet (its CRD is in this sync or
    /// the option is set).
    pub skip_dry_run: bool,
    /// Pre-patch the desired object with the live values of ignored fields.
    pub respect_ignore_differences: bool,
    /// Delete and re-create on replace.
    pub force: bool,
}

/// One entry of a selective sync: `GROUP:KIND:NAME` or `GROUP:KIND:NAMESPACE/NAME` (as
/// `argocd app sync --resource`); segments are globs (`*`, `?`), and a leading `!` makes the
/// entry an exclusion (`!*:Service:*`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceSelector {
    /// `!`-prefixed: resources matching it are left out.
    #[serde(default)]
    pub exclude: bool,
    /// API group ("" for core), or "*".
    pub group: String,
    /// Kind, or "*".
    pub kind: String,
    /// Namespace when given, or "*".
    pub namespace: Option<String>,
    /// Name, or "*".
    pub name: String,
}

impl ResourceSelector {
    /// Parse `[!]GROUP:KIND:NAME` or `[!]GROUP:KIND:NAMESPACE/NAME`.
    pub fn parse(selector: &str) -> Result<Self, PlanError> {
        let bad = || PlanError::BadResourceSelector {
            selector: selector.to_owned(),
            expected:
                "GROUP:KIND:NAME or GROUP:KIND:NAMESPACE/NAME (empty group for core, ! to exclude)"
                    .to_owned(),
        };
        let (exclude, body) = match selector.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, selector),
        };
        let parts: Vec<&str> = body.split(':').collect();
        let [group, kind, rest] = parts.as_slice() else {
            return Err(bad());
        };
        let (namespace, name) = match rest.split_once('/') {
            Some((ns, name)) => (Some(ns.to_owned()), name),
            None => (None, *rest),
        };
        if kind.is_empty() || name.is_empty() {
            return Err(bad());
        }
        Ok(ResourceSelector {
            exclude,
            group: (*group).to_owned(),
            kind: (*kind).to_owned(),
            namespace,
            name: name.to_owned(),
        })
    }

    /// Whether `key` matches the pattern (whatever `exclude` says).
    pub fn matches(&self, key: &ResourceKey) -> bool {
        let seg = |pattern: &str, value: &str| glob(pattern.as_bytes(), value.as_bytes());
        seg(&self.group, &key.group)
            && seg(&self.kind, &key.kind)
            && seg(&self.name, &key.name)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| seg(ns, key.namespace.as_deref().unwrap_or("")))
    }
}

/// The options of one sync operation (`operation.sync` of the Application).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationOptions {
    /// Operation id: names `generateName` hooks deterministically. Use something unique per
    /// operation and stable across restarts (e.g. the Application's uid + the operation's
    /// `startedAt`), persisted in the operation state.
    pub id: String,
    /// Delete tracked resources absent from the desired state. For an automated sync this is
    /// `syncPolicy.automated.prune` (Argo CD prunes automatically only when `prune: true`).
    pub prune: bool,
    /// Plan and report, change nothing.
    pub dry_run: bool,
    /// Selective sync: only these resources (hooks do not run, as in Argo CD). `None`: all.
    pub resources: Option<Vec<ResourceSelector>>,
    /// The user confirmed pruning/deletion of `Prune=confirm` resources.
    pub prune_confirmed: bool,
}

impl OperationOptions {
    /// Options of an automated sync under `policy` (prune only when `automated.prune` is true).
    pub fn automated(id: impl Into<String>, policy: &crate::gitops::types::SyncPolicy) -> Self {
        OperationOptions {
            id: id.into(),
            prune: policy
                .automated
                .as_ref()
                .and_then(|a| a.prune)
                .unwrap_or(false),
            ..OperationOptions::default()
        }
    }

    /// Whether `key` is part of this operation: always without a selection; otherwise it must
    /// match an inclusion (when there is any) and no exclusion.
    pub fn selects(&self, key: &ResourceKey) -> bool {
        let Some(selectors) = &self.resources else {
            return true;
        };
        let (exclusions, inclusions): (Vec<_>, Vec<_>) = selectors.iter().partition(|s| s.exclude);
        (inclusions.is_empty() || inclusions.iter().any(|s| s.matches(key)))
            && !exclusions.iter().any(|s| s.matches(key))
    }
}

/// Shell-style glob over bytes: `*` any run, `?` any one byte, everything else literal.
fn glob(pattern: &[u8], value: &[u8]) -> bool {
    // Iterative matcher with one backtrack point for the last `*` (linear in practice).
    let (mut p, mut v) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while v < value.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, v));
                p += 1;
            }
            Some(c) if *c == b'?' || *c == value[v] => {
                p += 1;
                v += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    p = sp + 1;
                    v = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn app_options_parse_every_documented_option() {
        let opts = AppSyncOptions::parse(&[
            "Prune=false",
            "PruneLast=true",
            "ApplyOutOfSyncOnly=true",
            "CreateNamespace=true",
            "Replace=true",
            "ServerSideApply=true",
            "Validate=false",
            "PrunePropagationPolicy=orphan",
            "FailOnSharedResource=true",
            "SkipDryRunOnMissingResource=true",
            "RespectIgnoreDifferences=true",
            "Force=true",
        ])
        .expect("parses");
        assert_eq!(opts.prune, Some(Permission::False));
        assert!(opts.prune_last && opts.apply_out_of_sync_only && opts.create_namespace);
        assert!(opts.replace && opts.server_side_apply && !opts.validate);
        assert_eq!(opts.prune_propagation_policy, PropagationPolicy::Orphan);
        assert!(opts.fail_on_shared_resource && opts.skip_dry_run_on_missing_resource);
        assert!(opts.respect_ignore_differences);
    }

    #[test]
    fn app_options_defaults_match_argo_cd() {
        let opts = AppSyncOptions::parse::<&str>(&[]).expect("parses");
        assert!(opts.validate);
        assert_eq!(opts.prune_propagation_policy, PropagationPolicy::Foreground);
        assert_eq!(opts.prune, None);
        assert!(!opts.create_namespace);
    }

    #[test]
    fn app_options_reject_bad_values_naming_the_option() {
        for (option, expected) in [
            ("Prune=flase", "true, false or confirm"),
            ("CreateNamespace=yes", "true or false"),
            (
                "PrunePropagationPolicy=cascade",
                "foreground, background or orphan",
            ),
            ("ServerSideApply", "KEY=VALUE"),
        ] {
            let err = AppSyncOptions::parse(&[option]).expect_err(option);
            assert_eq!(
                err,
                PlanError::BadSyncOption {
                    option: option.into(),
                    expected: expected.into()
                }
            );
            assert!(err.to_string().contains(option), "{err}");
        }
    }

    #[test]
    fn resource_options_parse_annotation_and_helm_keep() {
        let key = ResourceKey::new("", "ConfigMap", Some("ns"), "c");
        let obj = json!({"metadata": {"annotations": {
            SYNC_OPTIONS: " Prune=false , Delete=false,Replace=true,ServerSideApply=false,Validate=false,PruneLast=true,Prune=false"
        }}});
        let opts = ResourceSyncOptions::of(&obj, &key).expect("parses");
        assert_eq!(opts.prune, Some(Permission::False));
        assert_eq!(opts.delete, Some(Permission::False));
        assert_eq!(opts.replace, Some(true));
        assert_eq!(opts.server_side_apply, Some(false));
        assert_eq!(opts.validate, Some(false));
        assert_eq!(opts.prune_last, Some(true));

        let keep = json!({"metadata": {"annotations": {"helm.sh/resource-policy": "keep"}}});
        assert_eq!(
            ResourceSyncOptions::of(&keep, &key).expect("parses").delete,
            Some(Permission::False)
        );
        let bad = json!({"metadata": {"annotations": {SYNC_OPTIONS: "Prune=never"}}});
        let err = ResourceSyncOptions::of(&bad, &key).expect_err("bad");
        assert!(
            err.to_string()
                .contains("/ConfigMap/ns/c: annotation argocd.argoproj.io/sync-options"),
            "{err}"
        );
    }

    #[test]
    fn selectors_parse_and_match() {
        let key = ResourceKey::new("apps", "Deployment", Some("prod"), "web");
        for (selector, matches) in [
            ("apps:Deployment:web", true),
            ("apps:Deployment:prod/web", true),
            ("apps:Deployment:dev/web", false),
            (":Deployment:web", false),
            ("*:Deployment:*", true),
            ("apps:Service:web", false),
            ("apps:Deployment:we*", true),
            ("apps:Deployment:w?b", true),
            ("apps:Deployment:*-canary", false),
            ("*:*:*", true),
        ] {
            let sel = ResourceSelector::parse(selector).expect(selector);
            assert_eq!(sel.matches(&key), matches, "{selector}");
        }
        for bad in [
            "apps:Deployment",
            "apps::web",
            "a:b:c:d",
            "apps:Deployment:",
        ] {
            assert!(
                matches!(
                    ResourceSelector::parse(bad),
                    Err(PlanError::BadResourceSelector { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn glob_table() {
        for (pattern, value, expected) in [
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c*e", "abcde", true),
            ("a*c*e", "abcdf", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("**", "x", true),
            ("web", "web2", false),
        ] {
            assert_eq!(
                glob(pattern.as_bytes(), value.as_bytes()),
                expected,
                "{pattern} {value}"
            );
        }
    }

    #[test]
    fn exclusions_and_inclusions_combine() {
        let svc = ResourceKey::new("", "Service", Some("ns"), "web");
        let dep = ResourceKey::new("apps", "Deployment", Some("ns"), "web");
        let op = |sels: &[&str]| OperationOptions {
            resources: Some(
                sels.iter()
                    .map(|s| ResourceSelector::parse(s).expect(s))
                    .collect(),
            ),
            ..OperationOptions::default()
        };
        let only_excl = op(&["!*:Service:*"]);
        assert!(!only_excl.selects(&svc) && only_excl.selects(&dep));
        let both = op(&["*:*:web", "!apps:Deployment:*"]);
        assert!(both.selects(&svc) && !both.selects(&dep));
        assert!(OperationOptions::default().selects(&svc));
        assert!(ResourceSelector::parse("!").is_err());
    }

    #[test]
    fn automated_prune_requires_prune_true() {
        let mut policy = crate::gitops::types::SyncPolicy::default();
        assert!(!OperationOptions::automated("op", &policy).prune);
        policy.automated = Some(crate::gitops::types::AutomatedSyncPolicy {
            prune: Some(true),
            ..Default::default()
        });
        assert!(OperationOptions::automated("op", &policy).prune);
    }
}
