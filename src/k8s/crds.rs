//! The CRDs of `argoproj.io/v1alpha1` that cairn serves, and their installation.
//!
//! The manifests live in `src/k8s/crds/*.yaml` and are embedded in the binary. Their names,
//! scopes, short names, printer columns and subresources follow Argo CD, Argo Workflows and Argo
//! Events; their schemas keep every field (`x-kubernetes-preserve-unknown-fields`) so any real
//! Argo manifest is accepted.
//!
//! Installation is a server-side apply (field manager `cairn`, forced, so cairn takes over CRDs
//! an earlier Argo install created) followed by a bounded wait for the Established condition.
//! It is idempotent: applying unchanged manifests leaves every resourceVersion as it was, and the
//! report says so.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde::Serialize;

use super::{FIELD_MANAGER, K8sError, is_not_found};

/// How long [`install`] waits for each CRD to be Established. The apiserver usually takes well
/// under a second; the bound keeps a wedged apiserver from hanging start-up.
pub const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The embedded manifests: (file name, YAML), in the order of [`super::kinds`].
const FILES: &[(&str, &str)] = &[
    (
        "applications.argoproj.io.yaml",
        include_str!("crds/applications.argoproj.io.yaml"),
    ),
    (
        "appprojects.argoproj.io.yaml",
        include_str!("crds/appprojects.argoproj.io.yaml"),
    ),
    (
        "applicationsets.argoproj.io.yaml",
        include_str!("crds/applicationsets.argoproj.io.yaml"),
    ),
    (
        "workflows.argoproj.io.yaml",
        include_str!("crds/workflows.argoproj.io.yaml"),
    ),
    (
        "workflowtemplates.argoproj.io.yaml",
        include_str!("crds/workflowtemplates.argoproj.io.yaml"),
    ),
    (
        "clusterworkflowtemplates.argoproj.io.yaml",
        include_str!("crds/clusterworkflowtemplates.argoproj.io.yaml"),
    ),
    (
        "cronworkflows.argoproj.io.yaml",
        include_str!("crds/cronworkflows.argoproj.io.yaml"),
    ),
    (
        "workflowtaskresults.argoproj.io.yaml",
        include_str!("crds/workflowtaskresults.argoproj.io.yaml"),
    ),
    (
        "workflowtasksets.argoproj.io.yaml",
        include_str!("crds/workflowtasksets.argoproj.io.yaml"),
    ),
    (
        "workflowartifactgctasks.argoproj.io.yaml",
        include_str!("crds/workflowartifactgctasks.argoproj.io.yaml"),
    ),
    (
        "workfloweventbindings.argoproj.io.yaml",
        include_str!("crds/workfloweventbindings.argoproj.io.yaml"),
    ),
    (
        "eventsources.argoproj.io.yaml",
        include_str!("crds/eventsources.argoproj.io.yaml"),
    ),
    (
        "sensors.argoproj.io.yaml",
        include_str!("crds/sensors.argoproj.io.yaml"),
    ),
    (
        "eventbus.argoproj.io.yaml",
        include_str!("crds/eventbus.argoproj.io.yaml"),
    ),
];

/// All CRD manifests as one multi-document YAML stream (what `cairn crds` prints).
pub fn yaml() -> String {
    let mut out = String::new();
    for (_, doc) in FILES {
        out.push_str("---\n");
        out.push_str(doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// All CRDs, parsed, or the first embedded file that does not parse.
pub fn try_all() -> Result<Vec<CustomResourceDefinition>, K8sError> {
    FILES
        .iter()
        .map(|(file, doc)| {
            serde_saphyr::from_str::<CustomResourceDefinition>(doc).map_err(|e| {
                K8sError::EmbeddedCrd {
                    file,
                    message: e.to_string(),
                }
            })
        })
        .collect()
}

/// All CRDs, parsed.
///
/// The manifests are compiled into the binary and `tests::every_embedded_crd_parses` parses each
/// one, so a failure here is a build defect, not an input error.
pub fn all() -> Vec<CustomResourceDefinition> {
    match try_all() {
        Ok(crds) => crds,
        // Unreachable in a tested build; the message names the file to fix.
        Err(err) => panic!("{err}"),
    }
}

/// What one [`install`] did to one CRD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The CRD did not exist and was created.
    Created,
    /// The CRD existed and the apply changed it.
    Configured,
    /// The CRD existed and the apply changed nothing.
    Unchanged,
}

/// The outcome for one CRD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CrdOutcome {
    /// The CRD name, e.g. "workflows.argoproj.io".
    pub name: String,
    /// What the apply did.
    pub change: Change,
}

/// The outcome of one [`install`], one entry per CRD in [`all`] order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct InstallReport {
    /// Per-CRD outcomes.
    pub crds: Vec<CrdOutcome>,
}

impl InstallReport {
    /// True when at least one CRD was created or changed.
    pub fn changed(&self) -> bool {
        self.crds.iter().any(|c| c.change != Change::Unchanged)
    }

    /// How many CRDs had the given outcome.
    pub fn count(&self, change: Change) -> usize {
        self.crds.iter().filter(|c| c.change == change).count()
    }
}

/// Classifies an apply by the resourceVersion before (None: absent) and after it.
///
/// The apiserver does not write (and so does not bump the resourceVersion) when a server-side
/// apply changes nothing, which makes the comparison exact.
pub fn classify(before: Option<&str>, after: Option<&str>) -> Change {
    match before {
        None => Change::Created,
        Some(b) if Some(b) == after => Change::Unchanged,
        Some(_) => Change::Configured,
    }
}

/// Installs or upgrades every CRD and waits until each is Established, each within
/// [`ESTABLISH_TIMEOUT`].
pub async fn install(client: &Client) -> Result<InstallReport, K8sError> {
    install_with_timeout(client, ESTABLISH_TIMEOUT).await
}

/// [`install`] with an explicit bound on the wait for each CRD.
pub async fn install_with_timeout(
    client: &Client,
    establish_timeout: Duration,
) -> Result<InstallReport, K8sError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut report = InstallReport::default();
    for crd in try_all()? {
        let name = crd.name_any();
        let before = match api.get_opt(&name).await {
            Ok(found) => found.and_then(|c| c.resource_version()),
            Err(source) => return Err(K8sError::api(format!("get CRD {name}"), source)),
        };
        let applied = api
            .patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|source| K8sError::api(format!("server-side apply of CRD {name}"), source))?;
        let change = classify(before.as_deref(), applied.resource_version().as_deref());
        tracing::debug!(crd = %name, ?change, "applied CRD");
        report.crds.push(CrdOutcome { name, change });
    }
    for outcome in &report.crds {
        let wait = await_condition(api.clone(), &outcome.name, conditions::is_crd_established());
        match tokio::time::timeout(establish_timeout, wait).await {
            Ok(Ok(_)) => {}
            Ok(Err(source)) => {
                return Err(K8sError::Wait {
                    crd: outcome.name.clone(),
                    source,
                });
            }
            Err(_) => {
                return Err(K8sError::NotEstablished {
                    crd: outcome.name.clone(),
                    after: establish_timeout,
                });
            }
        }
    }
    tracing::info!(
        created = report.count(Change::Created),
        configured = report.count(Change::Configured),
        unchanged = report.count(Change::Unchanged),
        "argoproj.io CRDs installed"
    );
    Ok(report)
}

/// Whether the apiserver serves the CRD `name` (used to turn a 404 on a list into a clear
/// "not installed" error).
pub(crate) async fn is_installed(client: &Client, name: &str) -> Result<bool, K8sError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.get_opt(name).await {
        Ok(found) => Ok(found.is_some()),
        Err(err) if is_not_found(&err) => Ok(false),
        Err(source) => Err(K8sError::api(format!("get CRD {name}"), source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_crd_parses() {
        let crds = try_all().expect("embedded CRDs parse");
        assert_eq!(crds.len(), FILES.len());
        for ((file, _), crd) in FILES.iter().zip(&crds) {
            assert_eq!(format!("{}.yaml", crd.name_any()), *file);
            assert_eq!(
                crd.labels()
                    .get("app.kubernetes.io/part-of")
                    .map(String::as_str),
                Some("cairn"),
                "{file}"
            );
        }
    }

    #[test]
    fn yaml_stream_holds_every_crd_once() {
        let text = yaml();
        assert_eq!(text.matches("\n---\n").count() + 1, FILES.len());
        assert!(text.starts_with("---\n"));
        for crd in all() {
            assert_eq!(
                text.matches(&format!("  name: {}\n", crd.name_any()))
                    .count(),
                1
            );
        }
    }

    #[test]
    fn names_follow_plural_dot_group() {
        for crd in all() {
            assert_eq!(
                crd.name_any(),
                format!("{}.{}", crd.spec.names.plural, crd.spec.group)
            );
            assert_eq!(crd.spec.group, "argoproj.io");
            assert_eq!(crd.spec.versions.len(), 1);
            let v = &crd.spec.versions[0];
            assert!(v.served && v.storage && v.name == "v1alpha1");
        }
    }

    /// Facts checked against Argo's own CRDs.
    #[test]
    fn short_names_scopes_and_subresources_match_argo() {
        let by_name = |n: &str| {
            all()
                .into_iter()
                .find(|c| c.name_any() == n)
                .unwrap_or_else(|| panic!("{n} missing"))
        };
        let short = |n: &str| by_name(n).spec.names.short_names.unwrap_or_default();
        assert_eq!(short("applications.argoproj.io"), ["app", "apps"]);
        assert_eq!(short("appprojects.argoproj.io"), ["appproj", "appprojs"]);
        assert_eq!(short("applicationsets.argoproj.io"), ["appset", "appsets"]);
        assert_eq!(short("workflows.argoproj.io"), ["wf"]);
        assert_eq!(short("workflowtemplates.argoproj.io"), ["wftmpl"]);
        assert_eq!(
            short("clusterworkflowtemplates.argoproj.io"),
            ["clusterwftmpl", "cwft"]
        );
        assert_eq!(short("cronworkflows.argoproj.io"), ["cwf", "cronwf"]);
        assert_eq!(short("workfloweventbindings.argoproj.io"), ["wfeb"]);
        assert_eq!(short("eventsources.argoproj.io"), ["es"]);
        assert_eq!(short("sensors.argoproj.io"), ["sn"]);
        assert_eq!(short("eventbus.argoproj.io"), ["eb"]);
        assert!(short("workflowtaskresults.argoproj.io").is_empty());

        for crd in all() {
            let want = if crd.spec.names.kind == "ClusterWorkflowTemplate" {
                "Cluster"
            } else {
                "Namespaced"
            };
            assert_eq!(crd.spec.scope, want, "{}", crd.name_any());
            let status_sub = crd.spec.versions[0]
                .subresources
                .as_ref()
                .is_some_and(|s| s.status.is_some());
            let want_status = matches!(
                crd.spec.names.kind.as_str(),
                "ApplicationSet"
                    | "WorkflowTaskSet"
                    | "WorkflowArtifactGCTask"
                    | "EventSource"
                    | "Sensor"
                    | "EventBus"
            );
            assert_eq!(status_sub, want_status, "{}", crd.name_any());
        }
    }

    #[test]
    fn printer_columns_match_argo() {
        let cols = |kind: &str| -> Vec<(String, String, i32)> {
            all()
                .into_iter()
                .find(|c| c.spec.names.kind == kind)
                .and_then(|c| c.spec.versions[0].additional_printer_columns.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|c| (c.name, c.json_path, c.priority.unwrap_or(0)))
                .collect()
        };
        let own = |v: &[(&str, &str, i32)]| -> Vec<(String, String, i32)> {
            v.iter()
                .map(|(a, b, p)| (a.to_string(), b.to_string(), *p))
                .collect()
        };
        assert_eq!(
            cols("Application"),
            own(&[
                ("Sync Status", ".status.sync.status", 0),
                ("Health Status", ".status.health.status", 0),
                ("Revision", ".status.sync.revision", 10),
                ("Project", ".spec.project", 10),
            ])
        );
        assert_eq!(
            cols("Workflow"),
            own(&[
                ("Status", ".status.phase", 0),
                ("Age", ".status.startedAt", 0),
                ("Message", ".status.message", 0),
            ])
        );
        for kind in [
            "CronWorkflow",
            "EventSource",
            "Sensor",
            "EventBus",
            "AppProject",
        ] {
            assert!(cols(kind).is_empty(), "{kind}");
        }
    }

    /// Every schema must accept arbitrary Argo fields: spec (and status, and Application's
    /// operation) keep unknown fields.
    #[test]
    fn schemas_preserve_unknown_fields() {
        for crd in all() {
            let schema = crd.spec.versions[0]
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .expect("schema");
            let props = schema.properties.as_ref().expect("properties");
            let kind = crd.spec.names.kind.as_str();
            let open: &[&str] = match kind {
                "WorkflowTaskResult" => &["outputs"],
                "Application" => &["spec", "status", "operation"],
                "WorkflowTemplate" | "ClusterWorkflowTemplate" | "WorkflowEventBinding" => {
                    &["spec"]
                }
                _ => &["spec", "status"],
            };
            for field in open {
                let p = props
                    .get(*field)
                    .unwrap_or_else(|| panic!("{kind}.{field}"));
                assert_eq!(
                    p.x_kubernetes_preserve_unknown_fields,
                    Some(true),
                    "{kind}.{field}"
                );
            }
            let required = schema.required.clone().unwrap_or_default();
            let want: &[&str] = if kind == "WorkflowTaskResult" {
                &["metadata"]
            } else {
                &["metadata", "spec"]
            };
            assert_eq!(required, want, "{kind}");
        }
    }

    #[test]
    fn classify_compares_resource_versions() {
        assert_eq!(classify(None, Some("5")), Change::Created);
        assert_eq!(classify(Some("5"), Some("5")), Change::Unchanged);
        assert_eq!(classify(Some("5"), Some("6")), Change::Configured);
        assert_eq!(classify(Some("5"), None), Change::Configured);
    }

    #[test]
    fn report_counts_and_changed() {
        let mut report = InstallReport::default();
        assert!(!report.changed());
        report.crds.push(CrdOutcome {
            name: "a".into(),
            change: Change::Unchanged,
        });
        assert!(!report.changed());
        report.crds.push(CrdOutcome {
            name: "b".into(),
            change: Change::Created,
        });
        assert!(report.changed());
        assert_eq!(report.count(Change::Created), 1);
        assert_eq!(
            serde_json::to_value(&report.crds[1]).expect("json"),
            serde_json::json!({"name": "b", "change": "created"})
        );
    }
}
