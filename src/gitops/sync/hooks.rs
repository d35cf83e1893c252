//! The annotations that decide *when* an object is applied: hook phases, sync waves, hook delete
//! policies, Helm's hook annotations mapped as Argo CD maps them, and the names of
//! `generateName` hooks.
//!
//! Rules (Argo CD "Resource Hooks", "Sync Phases and Waves", "Helm" hook table; gitops-engine
//! `pkg/sync/hook`, `pkg/sync/syncwaves`):
//! - `argocd.argoproj.io/hook` is a comma-separated list of PreSync, Sync, PostSync, SyncFail,
//!   Skip, PreDelete, PostDelete. `Skip` alone means "do not apply"; with other types it is
//!   ignored. When the Argo CD annotation names any type, Helm's hook annotations are ignored.
//! - `helm.sh/hook`: pre-install/pre-upgrade → PreSync, post-install/post-upgrade → PostSync,
//!   pre-delete → PreDelete, post-delete → PostDelete, `crd-install` → an ordinary resource;
//!   test hooks and rollback hooks are unsupported and the object is not applied.
//! - Wave: `argocd.argoproj.io/sync-wave`, else `helm.sh/hook-weight`, else 0.
//! - Delete policies: `argocd.argoproj.io/hook-delete-policy` plus `helm.sh/hook-delete-policy`
//!   (hook-succeeded, hook-failed, before-hook-creation); none given → BeforeHookCreation.
//!
//! cairn is stricter than Argo CD in one way, on purpose: an unknown hook type, delete policy or a
//! non-integer wave is a [`PlanError::BadAnnotation`] naming the object, where Argo CD silently
//! falls back (and e.g. runs a misspelt `PreSyncc` hook never, or at wave 0).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::plan::SyncPhase;
use super::{PlanError, annotation, annotation_csv};
use crate::k8s::ResourceKey;

/// Argo CD's hook annotation.
pub const HOOK: &str = "argocd.argoproj.io/hook";
/// Argo CD's hook delete policy annotation.
pub const HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
/// Argo CD's sync wave annotation.
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// Helm's hook annotation.
pub const HELM_HOOK: &str = "helm.sh/hook";
/// Helm's hook weight annotation (a wave when no sync-wave is set).
pub const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";
/// Helm's hook delete policy annotation.
pub const HELM_HOOK_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";

/// Longest hook name cairn generates: Job names end up in a label value (63 characters max).
const MAX_GENERATED_NAME: usize = 63;

/// A value of the hook annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HookType {
    /// Before the manifests are applied.
    PreSync,
    /// With the manifests.
    Sync,
    /// After everything is applied and healthy.
    PostSync,
    /// When the sync fails.
    SyncFail,
    /// Never applied.
    Skip,
    /// Before the Application's resources are deleted (not part of a sync).
    PreDelete,
    /// After the Application's resources are deleted (not part of a sync).
    PostDelete,
}

impl HookType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PreSync" => HookType::PreSync,
            "Sync" => HookType::Sync,
            "PostSync" => HookType::PostSync,
            "SyncFail" => HookType::SyncFail,
            "Skip" => HookType::Skip,
            "PreDelete" => HookType::PreDelete,
            "PostDelete" => HookType::PostDelete,
            _ => return None,
        })
    }

    /// The sync phase a hook of this type runs in, if it runs during a sync.
    pub fn sync_phase(self) -> Option<SyncPhase> {
        match self {
            HookType::PreSync => Some(SyncPhase::PreSync),
            HookType::Sync => Some(SyncPhase::Sync),
            HookType::PostSync => Some(SyncPhase::PostSync),
            HookType::SyncFail => Some(SyncPhase::SyncFail),
            HookType::Skip | HookType::PreDelete | HookType::PostDelete => None,
        }
    }
}

/// When a hook object is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DeletePolicy {
    /// After the hook succeeded (at the end of a successful operation).
    HookSucceeded,
    /// After the hook failed (when the operation fails).
    HookFailed,
    /// An existing hook object is deleted before the new one is created (the default).
    BeforeHookCreation,
}

/// What the annotations make of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classification {
    /// An ordinary resource, applied in the Sync phase.
    Resource,
    /// A hook: run in each of `phases`, deleted per `delete_policies`.
    Hook {
        /// Sync phases it runs in, in phase order, without duplicates.
        phases: Vec<SyncPhase>,
        /// Its delete policies (never empty: BeforeHookCreation by default).
        delete_policies: Vec<DeletePolicy>,
    },
    /// `argocd.argoproj.io/hook: Skip`: never applied.
    Skip,
    /// A hook that does not run during a sync (PreDelete/PostDelete only, or an unsupported Helm
    /// hook); the reason says which.
    NotInSync {
        /// Why it is left out.
        reason: String,
    },
}

fn bad(key: &ResourceKey, annotation: &str, value: &str, expected: &str) -> PlanError {
    PlanError::BadAnnotation {
        object: key.to_string(),
        annotation: annotation.to_owned(),
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

/// Classify `obj` (named `key` in errors) by its hook annotations.
pub fn classify(obj: &Value, key: &ResourceKey) -> Result<Classification, PlanError> {
    let argo = annotation_csv(obj, HOOK);
    let types: Vec<HookType> = if !argo.is_empty() {
        let mut types = Vec::new();
        for text in &argo {
            let t = HookType::parse(text).ok_or_else(|| {
                bad(
                    key,
                    HOOK,
                    annotation(obj, HOOK).unwrap_or(""),
                    "a comma-separated list of PreSync, Sync, PostSync, SyncFail, Skip, PreDelete, PostDelete",
                )
            })?;
            types.push(t);
        }
        types
    } else {
        let helm = annotation_csv(obj, HELM_HOOK);
        if helm.is_empty() {
            return Ok(Classification::Resource);
        }
        let mut types = Vec::new();
        let mut unsupported = Vec::new();
        for text in &helm {
            match text.as_str() {
                "pre-install" | "pre-upgrade" => types.push(HookType::PreSync),
                "post-install" | "post-upgrade" => types.push(HookType::PostSync),
                "pre-delete" => types.push(HookType::PreDelete),
                "post-delete" => types.push(HookType::PostDelete),
                // Helm marks CRDs with this; Argo CD treats them as ordinary CRDs.
                "crd-install" => {}
                other => unsupported.push(other.to_owned()),
            }
        }
        if types.is_empty() {
            if unsupported.is_empty() {
                return Ok(Classification::Resource);
            }
            return Ok(Classification::NotInSync {
                reason: format!(
                    "unsupported Helm hook {} (Argo CD has no equivalent)",
                    unsupported.join(",")
                ),
            });
        }
        types
    };

    // "Skip" alone skips; combined with real types it is ignored (gitops-engine hook.Skip).
    if types.iter().all(|t| *t == HookType::Skip) {
        return Ok(Classification::Skip);
    }
    let mut phases: Vec<SyncPhase> = types.iter().filter_map(|t| t.sync_phase()).collect();
    phases.sort();
    phases.dedup();
    if phases.is_empty() {
        return Ok(Classification::NotInSync {
            reason: "deletion hook (runs only when the Application is deleted)".to_owned(),
        });
    }
    Ok(Classification::Hook {
        phases,
        delete_policies: delete_policies(obj, key)?,
    })
}

/// The delete policies of a hook (Argo CD's and Helm's annotations together; BeforeHookCreation
/// when neither is set).
pub fn delete_policies(obj: &Value, key: &ResourceKey) -> Result<Vec<DeletePolicy>, PlanError> {
    let mut out = Vec::new();
    for text in annotation_csv(obj, HOOK_DELETE_POLICY) {
        out.push(match text.as_str() {
            "HookSucceeded" => DeletePolicy::HookSucceeded,
            "HookFailed" => DeletePolicy::HookFailed,
            "BeforeHookCreation" => DeletePolicy::BeforeHookCreation,
            _ => {
                return Err(bad(
                    key,
                    HOOK_DELETE_POLICY,
                    annotation(obj, HOOK_DELETE_POLICY).unwrap_or(""),
                    "a comma-separated list of HookSucceeded, HookFailed, BeforeHookCreation",
                ));
            }
        });
    }
    for text in annotation_csv(obj, HELM_HOOK_DELETE_POLICY) {
        out.push(match text.as_str() {
            "hook-succeeded" => DeletePolicy::HookSucceeded,
            "hook-failed" => DeletePolicy::HookFailed,
            "before-hook-creation" => DeletePolicy::BeforeHookCreation,
            _ => {
                return Err(bad(
                    key,
                    HELM_HOOK_DELETE_POLICY,
                    annotation(obj, HELM_HOOK_DELETE_POLICY).unwrap_or(""),
                    "a comma-separated list of hook-succeeded, hook-failed, before-hook-creation",
                ));
            }
        });
    }
    out.sort();
    out.dedup();
    if out.is_empty() {
        out.push(DeletePolicy::BeforeHookCreation);
    }
    Ok(out)
}

/// The sync wave of `obj`: `argocd.argoproj.io/sync-wave`, else `helm.sh/hook-weight`, else 0.
pub fn wave(obj: &Value, key: &ResourceKey) -> Result<i64, PlanError> {
    for name in [SYNC_WAVE, HELM_HOOK_WEIGHT] {
        if let Some(text) = obj
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(name))
        {
            let raw = match text {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return raw
                .trim()
                .parse::<i64>()
                .map_err(|_| bad(key, name, &raw, "an integer such as \"-1\" or \"5\""));
        }
    }
    Ok(0)
}

/// The name of a `generateName` hook in one operation and phase.
///
/// Argo CD appends the revision, the phase and the operation's start time; cairn appends a hash
/// of the operation id and the phase, so the name is the same after a restart of cairn (the
/// applier re-applies the same object instead of starting a second run of the hook) and differs
/// between operations (each sync runs the hook afresh). The prefix is shortened when needed so
/// the name fits 63 characters (a Job's name lands in a label value).
pub fn generated_name(generate_name: &str, operation_id: &str, phase: SyncPhase) -> String {
    let digest = hex::encode(Sha256::digest(operation_id.as_bytes()));
    let suffix = format!("{}-{}", &digest[..8], phase.as_str().to_ascii_lowercase());
    let room = MAX_GENERATED_NAME.saturating_sub(suffix.len());
    let prefix: String = generate_name.chars().take(room).collect();
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(annotations: Value) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "annotations": annotations}})
    }

    fn key() -> ResourceKey {
        ResourceKey::new("batch", "Job", Some("ns"), "j")
    }

    fn hook(phases: &[SyncPhase], policies: &[DeletePolicy]) -> Classification {
        Classification::Hook {
            phases: phases.to_vec(),
            delete_policies: policies.to_vec(),
        }
    }

    #[test]
    fn classification_table() {
        use DeletePolicy::*;
        use SyncPhase::*;
        let cases: Vec<(Value, Classification)> = vec![
            (json!({}), Classification::Resource),
            (
                json!({HOOK: "PreSync"}),
                hook(&[PreSync], &[BeforeHookCreation]),
            ),
            (
                json!({HOOK: "PostSync,PreSync"}),
                hook(&[PreSync, PostSync], &[BeforeHookCreation]),
            ),
            (
                json!({HOOK: " Sync , Sync "}),
                hook(&[Sync], &[BeforeHookCreation]),
            ),
            (
                json!({HOOK: "SyncFail"}),
                hook(&[SyncFail], &[BeforeHookCreation]),
            ),
            (json!({HOOK: "Skip"}), Classification::Skip),
            (
                json!({HOOK: "Skip,PostSync"}),
                hook(&[PostSync], &[BeforeHookCreation]),
            ),
            (
                json!({HOOK: "PostSync", HOOK_DELETE_POLICY: "HookSucceeded,HookFailed"}),
                hook(&[PostSync], &[HookSucceeded, HookFailed]),
            ),
            (
                json!({HOOK: "PostDelete"}),
                Classification::NotInSync {
                    reason: "deletion hook (runs only when the Application is deleted)".into(),
                },
            ),
            // Helm mapping.
            (
                json!({HELM_HOOK: "pre-install"}),
                hook(&[PreSync], &[BeforeHookCreation]),
            ),
            (
                json!({HELM_HOOK: "pre-install,pre-upgrade"}),
                hook(&[PreSync], &[BeforeHookCreation]),
            ),
            (
                json!({HELM_HOOK: "post-upgrade"}),
                hook(&[PostSync], &[BeforeHookCreation]),
            ),
            (
                json!({HELM_HOOK: "post-install", HELM_HOOK_DELETE_POLICY: "hook-succeeded,before-hook-creation"}),
                hook(&[PostSync], &[HookSucceeded, BeforeHookCreation]),
            ),
            (json!({HELM_HOOK: "crd-install"}), Classification::Resource),
            (
                json!({HELM_HOOK: "test-success"}),
                Classification::NotInSync {
                    reason: "unsupported Helm hook test-success (Argo CD has no equivalent)".into(),
                },
            ),
            // Argo CD's annotation wins over Helm's.
            (
                json!({HOOK: "Sync", HELM_HOOK: "pre-install"}),
                hook(&[Sync], &[BeforeHookCreation]),
            ),
        ];
        for (annotations, expected) in cases {
            let got = classify(&obj(annotations.clone()), &key()).expect("classifies");
            assert_eq!(got, expected, "{annotations}");
        }
    }

    #[test]
    fn bad_hook_annotations_name_the_object_and_annotation() {
        for (annotations, name) in [
            (json!({HOOK: "PreSyncc"}), HOOK),
            (
                json!({HOOK: "PreSync", HOOK_DELETE_POLICY: "Always"}),
                HOOK_DELETE_POLICY,
            ),
            (
                json!({HELM_HOOK: "pre-install", HELM_HOOK_DELETE_POLICY: "never"}),
                HELM_HOOK_DELETE_POLICY,
            ),
        ] {
            let err = classify(&obj(annotations), &key()).expect_err("bad");
            let text = err.to_string();
            assert!(text.starts_with("batch/Job/ns/j: annotation "), "{text}");
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn waves_table() {
        for (annotations, expected) in [
            (json!({}), Ok(0)),
            (json!({SYNC_WAVE: "5"}), Ok(5)),
            (json!({SYNC_WAVE: "-3"}), Ok(-3)),
            (json!({SYNC_WAVE: " 2 "}), Ok(2)),
            (json!({SYNC_WAVE: 7}), Ok(7)),
            (json!({HELM_HOOK_WEIGHT: "-5"}), Ok(-5)),
            (json!({SYNC_WAVE: "1", HELM_HOOK_WEIGHT: "-5"}), Ok(1)),
            (json!({SYNC_WAVE: "one"}), Err(SYNC_WAVE)),
            (json!({SYNC_WAVE: "1.5"}), Err(SYNC_WAVE)),
            (json!({HELM_HOOK_WEIGHT: "heavy"}), Err(HELM_HOOK_WEIGHT)),
        ] {
            let got = wave(&obj(annotations.clone()), &key());
            match expected {
                Ok(w) => assert_eq!(got, Ok(w), "{annotations}"),
                Err(name) => {
                    let err = got.expect_err("bad wave");
                    assert!(
                        matches!(&err, PlanError::BadAnnotation { annotation, object, .. }
                        if annotation == name && object == "batch/Job/ns/j"),
                        "{err}"
                    );
                }
            }
        }
    }

    #[test]
    fn generated_names_are_deterministic_per_operation_and_phase() {
        let a = generated_name("migrate-", "op-1", SyncPhase::PreSync);
        assert_eq!(a, generated_name("migrate-", "op-1", SyncPhase::PreSync));
        assert!(a.starts_with("migrate-") && a.ends_with("-presync"), "{a}");
        assert_ne!(a, generated_name("migrate-", "op-2", SyncPhase::PreSync));
        assert_ne!(a, generated_name("migrate-", "op-1", SyncPhase::PostSync));
        let long = generated_name(&"x".repeat(100), "op", SyncPhase::SyncFail);
        assert_eq!(long.len(), MAX_GENERATED_NAME);
        assert!(long.ends_with("-syncfail"));
    }
}
