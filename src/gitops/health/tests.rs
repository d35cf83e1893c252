//! Table tests: every YAML fixture under `testdata/<kind>/` is one case. The file name starts
//! with the expected status in lower case (`degraded-progress-deadline.yaml`), or `none` when the
//! object must have no health; a first line `# message: <text>` gives the expected message
//! (without it, the expected message is none).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gitops/health/testdata")
}

struct Fixture {
    path: PathBuf,
    expected: Option<HealthStatus>,
    object: Value,
}

fn load(path: &Path) -> Fixture {
    let text = std::fs::read_to_string(path).expect("fixture readable");
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name");
    let prefix = file.split(['-', '.']).next().expect("a prefix");
    let message = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# message: "))
        .map(str::to_owned);
    let expected = if prefix == "none" {
        assert!(message.is_none(), "{file}: a `none` fixture has no message");
        None
    } else {
        let mut code = prefix.to_owned();
        code[..1].make_ascii_uppercase();
        let status = HealthStatusCode::parse(&code)
            .unwrap_or_else(|| panic!("{file}: unknown expected status {prefix:?}"));
        Some(HealthStatus { status, message })
    };
    let object: Value = serde_saphyr::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    Fixture {
        path: path.to_owned(),
        expected,
        object,
    }
}

fn fixtures() -> Vec<(String, Vec<Fixture>)> {
    let mut kinds: Vec<PathBuf> = std::fs::read_dir(testdata())
        .expect("testdata exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    kinds.sort();
    kinds
        .into_iter()
        .map(|dir| {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .expect("kind dir readable")
                .map(|e| e.expect("dir entry").path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .collect();
            files.sort();
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 dir")
                .to_owned();
            (name, files.iter().map(|f| load(f)).collect())
        })
        .collect()
}

#[test]
fn every_fixture_gets_its_expected_health() {
    let mut failures = Vec::new();
    let mut count = 0;
    for (_, cases) in fixtures() {
        for case in cases {
            count += 1;
            let got = assess(&case.object);
            if got != case.expected {
                failures.push(format!(
                    "{}:\n  expected {:?}\n  got      {:?}",
                    case.path.display(),
                    case.expected,
                    got
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 60, "only {count} fixtures");
}

#[test]
fn every_kind_with_a_check_has_at_least_three_fixtures_and_its_directory_matches() {
    let expected_dirs = [
        "apiservice",
        "application",
        "cronjob",
        "customresourcedefinition",
        "daemonset",
        "deployment",
        "hpa",
        "ingress",
        "job",
        "namespace",
        "pod",
        "pvc",
        "replicaset",
        "service",
        "statefulset",
        "unknown-kinds",
        "workflow",
    ];
    let all = fixtures();
    let dirs: Vec<&str> = all.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(dirs, expected_dirs);
    for (dir, cases) in &all {
        assert!(cases.len() >= 3, "{dir} has {} fixtures", cases.len());
        if dir == "unknown-kinds" {
            continue;
        }
        // Every fixture of a kind directory is of one kind that has a check (no stray files).
        for case in cases {
            let api_version = case.object["apiVersion"].as_str().unwrap_or("");
            let kind = case.object["kind"].as_str().unwrap_or("");
            assert!(
                has_health_check(api_group(api_version), kind),
                "{}: {api_version} {kind} has no check",
                case.path.display()
            );
        }
    }
}

#[test]
fn status_codes_serialise_as_argo_cd_strings_and_order_as_argo_cd_health_order() {
    let order = [
        HealthStatusCode::Healthy,
        HealthStatusCode::Suspended,
        HealthStatusCode::Progressing,
        HealthStatusCode::Missing,
        HealthStatusCode::Degraded,
        HealthStatusCode::Unknown,
    ];
    for pair in order.windows(2) {
        assert!(pair[1].is_worse_than(pair[0]), "{} > {}", pair[1], pair[0]);
        assert!(!pair[0].is_worse_than(pair[1]));
    }
    for code in order {
        assert_eq!(
            serde_json::to_value(code).expect("serialises"),
            json!(code.as_str())
        );
        assert_eq!(HealthStatusCode::parse(code.as_str()), Some(code));
    }
    assert_eq!(HealthStatusCode::parse("healthy"), None);
    assert_eq!(
        serde_json::to_value(HealthStatus::new(HealthStatusCode::Degraded, "boom"))
            .expect("serialises"),
        json!({"status": "Degraded", "message": "boom"})
    );
    assert_eq!(
        serde_json::to_value(HealthStatus::new(HealthStatusCode::Healthy, "")).expect("serialises"),
        json!({"status": "Healthy"})
    );
    assert_eq!(HealthStatus::missing().status, HealthStatusCode::Missing);
}

#[test]
fn malformed_fields_are_unknown_with_the_field_named() {
    let cases = [
        (
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"replicas": "three"}, "status": {}}),
            "Deployment \"web\": field spec.replicas is a string, expected an integer",
        ),
        (
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"restartPolicy": "Always"},
                   "status": {"phase": "Running", "containerStatuses": {"name": "x"}}}),
            "Pod \"p\": field status.containerStatuses is an object, expected a list",
        ),
        (
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "h", "annotations": {
                       "autoscaling.alpha.kubernetes.io/conditions": "{not json"}}}),
            "HorizontalPodAutoscaler \"h\": annotation autoscaling.alpha.kubernetes.io/conditions is not a JSON list of conditions",
        ),
        (
            json!({"apiVersion": "autoscaling/v3", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "h"}}),
            "HorizontalPodAutoscaler \"h\": unsupported apiVersion \"autoscaling/v3\" for this health check",
        ),
    ];
    for (obj, message) in cases {
        let got = assess(&obj).expect("has a check");
        assert_eq!(got.status, HealthStatusCode::Unknown, "{obj}");
        let got_message = got.message.unwrap_or_default();
        assert!(
            got_message.starts_with(message),
            "{got_message:?} should start with {message:?}"
        );
        assert!(try_assess(&obj).is_err());
    }
    let err = try_assess(&json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s"}, "spec": {"type": 7}}))
    .expect_err("type error");
    assert_eq!(err.metric_label(), "field_type");
}

#[test]
fn api_group_splits_core_and_named_groups() {
    assert_eq!(api_group("v1"), "");
    assert_eq!(api_group("apps/v1"), "apps");
    assert_eq!(api_group("argoproj.io/v1alpha1"), "argoproj.io");
    assert_eq!(api_group(""), "");
}

// ---- aggregation ----------------------------------------------------------------------------

/// Test builder: a live object of `apiVersion`/`kind` with a status that `assess` maps to `code`
/// (via a Workflow phase or an Application's health) or a ConfigMap without health.
fn obj(api_version: &str, kind: &str, name: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "ns"}})
}

fn workflow(phase: &str) -> Value {
    let mut o = obj("argoproj.io/v1alpha1", "Workflow", "wf");
    o["status"] = json!({"phase": phase});
    o
}

fn pvc(phase: &str) -> Value {
    let mut o = obj("v1", "PersistentVolumeClaim", "data");
    o["status"] = json!({"phase": phase});
    o
}

fn app(status: Option<&str>) -> Value {
    let mut o = obj("argoproj.io/v1alpha1", "Application", "child");
    if let Some(s) = status {
        o["status"] = json!({"health": {"status": s}});
    }
    o
}

fn deployment_paused() -> Value {
    let mut o = obj("apps/v1", "Deployment", "web");
    o["spec"] = json!({"paused": true});
    o
}

fn with_annotation(mut o: Value, key: &str, value: &str) -> Value {
    o["metadata"]["annotations"] = json!({ key: value });
    o
}

fn live(o: Value) -> ResourceHealth {
    ResourceHealth::of(Some(&o), Some(&o))
}

fn missing(o: Value) -> ResourceHealth {
    ResourceHealth::of(Some(&o), None)
}

#[test]
fn aggregate_table() {
    use HealthStatusCode::*;
    let configmap = || obj("v1", "ConfigMap", "cm");
    let cases: Vec<(&str, Vec<ResourceHealth>, HealthStatusCode)> = vec![
        ("no resources is healthy", vec![], Healthy),
        (
            "only resources without health are healthy",
            vec![live(configmap())],
            Healthy,
        ),
        (
            "worst wins: progressing over healthy",
            vec![live(pvc("Bound")), live(pvc("Pending"))],
            Progressing,
        ),
        (
            "suspended is better than progressing",
            vec![live(deployment_paused()), live(pvc("Pending"))],
            Progressing,
        ),
        (
            "suspended is worse than healthy",
            vec![live(pvc("Bound")), live(deployment_paused())],
            Suspended,
        ),
        (
            "degraded is worse than missing",
            vec![missing(pvc("Bound")), live(workflow("Failed"))],
            Degraded,
        ),
        (
            "unknown is the worst",
            vec![live(workflow("Failed")), live(pvc("Weird"))],
            Unknown,
        ),
        (
            "a missing resource with a health check counts as Missing",
            vec![live(pvc("Bound")), missing(pvc("Bound"))],
            Missing,
        ),
        (
            "missing is worse than progressing",
            vec![
                live(pvc("Pending")),
                missing(obj("apps/v1", "Deployment", "web")),
            ],
            Missing,
        ),
        (
            "a missing ConfigMap does not count while something is live",
            vec![live(pvc("Bound")), missing(configmap())],
            Healthy,
        ),
        (
            "when nothing exists the app is Missing even for kinds without health",
            vec![missing(configmap()), missing(obj("v1", "Secret", "s"))],
            Missing,
        ),
        (
            "a missing child Application does not count",
            vec![live(pvc("Bound")), missing(app(Some("Healthy")))],
            Healthy,
        ),
        (
            "an Unknown child Application does not count",
            vec![live(pvc("Bound")), live(app(Some("Unknown")))],
            Healthy,
        ),
        (
            "a Degraded child Application counts",
            vec![live(pvc("Bound")), live(app(Some("Degraded")))],
            Degraded,
        ),
        (
            "a child Application without status yet is Progressing",
            vec![live(pvc("Bound")), live(app(None))],
            Progressing,
        ),
        (
            "a live hook is left out",
            vec![
                live(pvc("Bound")),
                live(with_annotation(
                    workflow("Failed"),
                    ANNOTATION_HOOK,
                    "PreSync",
                )),
            ],
            Healthy,
        ),
        (
            "a live Helm hook is left out",
            vec![
                live(pvc("Bound")),
                live(with_annotation(
                    workflow("Failed"),
                    ANNOTATION_HELM_HOOK,
                    "pre-install",
                )),
            ],
            Healthy,
        ),
        (
            "a Helm crd-install annotation is not a hook",
            vec![live(with_annotation(
                workflow("Failed"),
                ANNOTATION_HELM_HOOK,
                "crd-install",
            ))],
            Degraded,
        ),
        (
            "ignore-healthcheck leaves the health out",
            vec![
                live(pvc("Bound")),
                live(with_annotation(
                    pvc("Lost"),
                    ANNOTATION_IGNORE_HEALTHCHECK,
                    "true",
                )),
            ],
            Healthy,
        ),
        (
            "ignore-healthcheck other than \"true\" counts",
            vec![live(with_annotation(
                pvc("Lost"),
                ANNOTATION_IGNORE_HEALTHCHECK,
                "yes",
            ))],
            Degraded,
        ),
        (
            "an ignored live resource still counts as existing",
            vec![
                missing(pvc("Bound")),
                live(with_annotation(
                    pvc("Bound"),
                    ANNOTATION_IGNORE_HEALTHCHECK,
                    "true",
                )),
            ],
            Missing,
        ),
        (
            "a Skip hook in Git is left out even when it is missing",
            vec![
                live(pvc("Bound")),
                missing(with_annotation(pvc("Bound"), ANNOTATION_HOOK, "Skip")),
            ],
            Healthy,
        ),
        (
            "only hooks: nothing managed, healthy",
            vec![missing(with_annotation(
                pvc("Bound"),
                ANNOTATION_HOOK,
                "Skip",
            ))],
            Healthy,
        ),
    ];
    for (name, children, want) in cases {
        let got = aggregate(&children);
        assert_eq!(got, HealthStatus::code(want), "{name}");
    }
}

#[test]
fn resource_health_of_reads_identity_and_health() {
    let d = obj("apps/v1", "Deployment", "web");
    let r = ResourceHealth::of(Some(&d), None);
    assert_eq!(
        r,
        ResourceHealth {
            group: "apps".to_owned(),
            kind: "Deployment".to_owned(),
            live: false,
            participation: Participation::Counted,
            health: Some(HealthStatus::missing()),
        }
    );
    let cm = obj("v1", "ConfigMap", "cm");
    let r = ResourceHealth::of(None, Some(&cm));
    assert_eq!((r.group.as_str(), r.live, r.health), ("", true, None));
    let r = ResourceHealth::of(None, None);
    assert_eq!(r.participation, Participation::Excluded);
    let ignored = with_annotation(pvc("Lost"), ANNOTATION_IGNORE_HEALTHCHECK, "true");
    let r = ResourceHealth::of(Some(&ignored), Some(&ignored));
    assert_eq!(
        (r.participation, r.live, r.health),
        (Participation::HealthIgnored, true, None)
    );
    let hook = with_annotation(workflow("Running"), ANNOTATION_HOOK, "PostSync");
    let r = ResourceHealth::of(Some(&hook), Some(&hook));
    assert_eq!((r.participation, r.health), (Participation::Excluded, None));
}

#[test]
fn pending_deletion_applies_to_every_kind_unless_held_by_the_hook_finalizer() {
    let mut cm = obj("v1", "ConfigMap", "cm");
    cm["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:00:00Z");
    assert_eq!(
        assess(&cm),
        Some(HealthStatus::new(
            HealthStatusCode::Progressing,
            "Pending deletion"
        ))
    );
    let mut hook = workflow("Succeeded");
    hook["metadata"]["deletionTimestamp"] = json!("2026-11-23T10:00:00Z");
    hook["metadata"]["finalizers"] = json!([FINALIZER_HOOK]);
    assert_eq!(assess(&hook), Some(HealthStatus::healthy()));
}

#[test]
fn converts_into_the_application_status_type() {
    let status: crate::gitops::types::HealthStatus =
        HealthStatus::new(HealthStatusCode::Degraded, "boom").into();
    assert_eq!(status.status.as_deref(), Some("Degraded"));
    assert_eq!(status.message.as_deref(), Some("boom"));
    assert_eq!(status.last_transition_time, None);
}
