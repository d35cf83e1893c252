//! The bookstore example (`examples/bookstore`), without a cluster:
//! - its Python unit tests (`examples/bookstore/test`: unittest in a virtualenv of the pinned
//!   requirements, from the wheel cache under `~/.cache/cairn/bookstore`, filled from PyPI the
//!   first time) pass;
//! - every manifest in `examples/bookstore/manifests` passes cairn's own checks, the ones the
//!   API and the controllers run on submission: WorkflowTemplates are resolved (templateRefs
//!   between them included) and validated as Workflows, the CronWorkflow's schedule and
//!   policies parse and its workflow validates against the pipeline template, the EventSource
//!   plans without a problem, and the Sensor compiles with no dependency or trigger problem,
//!   the Workflow its trigger submits validating too;
//! - and they say what the example promises (parameters, schedule, security context...).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use cairn::events::types::{EventSource, Sensor};
use cairn::workflow::cron::CronSpec;
use cairn::workflow::types::{ClusterWorkflowTemplate, CronWorkflow, Workflow, WorkflowTemplate};
use cairn::workflow::validate::{self, TemplateLookup};
use serde_json::Value;

const MANIFESTS: &str = "examples/bookstore/manifests";

#[derive(Default)]
struct Manifests {
    templates: BTreeMap<String, WorkflowTemplate>,
    crons: Vec<CronWorkflow>,
    sources: Vec<EventSource>,
    sensors: Vec<Sensor>,
    other: Vec<Value>,
}

impl TemplateLookup for Manifests {
    fn workflow_template(&self, _namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        self.templates.get(name).cloned()
    }
    fn cluster_workflow_template(&self, _name: &str) -> Option<ClusterWorkflowTemplate> {
        None
    }
}

fn load() -> Manifests {
    let mut m = Manifests::default();
    let mut files: Vec<_> = std::fs::read_dir(MANIFESTS)
        .expect("manifests dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {MANIFESTS}");
    for file in files {
        let docs = cairn::cli::wf::read_documents(&file)
            .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
        for doc in docs {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let what = format!("{}: {kind}", file.display());
            let fail = |e: serde_json::Error| -> ! { panic!("{what}: {e}") };
            match kind.as_str() {
                "WorkflowTemplate" => {
                    let t: WorkflowTemplate =
                        serde_json::from_value(doc).unwrap_or_else(|e| fail(e));
                    let name = t.metadata.name.clone().unwrap_or_default();
                    m.templates.insert(name, t);
                }
                "CronWorkflow" => m
                    .crons
                    .push(serde_json::from_value(doc).unwrap_or_else(|e| fail(e))),
                "EventSource" => m
                    .sources
                    .push(serde_json::from_value(doc).unwrap_or_else(|e| fail(e))),
                "Sensor" => m
                    .sensors
                    .push(serde_json::from_value(doc).unwrap_or_else(|e| fail(e))),
                _ => m.other.push(doc),
            }
        }
    }
    m
}

fn check(wf: &Workflow, lookup: &dyn TemplateLookup, what: &str) {
    let resolved =
        validate::resolve(wf, lookup).unwrap_or_else(|e| panic!("{what}: does not resolve: {e}"));
    if let Err(errors) = validate::validate(&resolved) {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{what}: invalid:\n  {}", list.join("\n  "));
    }
}

fn as_workflow(t: &WorkflowTemplate) -> Workflow {
    Workflow {
        metadata: t.metadata.clone(),
        spec: t.spec.clone(),
        ..Default::default()
    }
}

fn parameter_names(t: &WorkflowTemplate) -> Vec<String> {
    let v = serde_json::to_value(&t.spec).expect("spec json");
    v["arguments"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn workflow_templates_validate_as_cairn_validates_them() {
    let m = load();
    for name in ["recommender-pipeline", "recommender-sweep"] {
        let t = m
            .templates
            .get(name)
            .unwrap_or_else(|| panic!("WorkflowTemplate {name} missing"));
        check(&as_workflow(t), &m, &format!("WorkflowTemplate {name}"));
    }
    let pipeline = &m.templates["recommender-pipeline"];
    let names = parameter_names(pipeline);
    for p in ["dataset-uri", "seed", "top-k", "min-score", "model-name"] {
        assert!(
            names.iter().any(|n| n == p),
            "parameter {p} missing: {names:?}"
        );
    }
    // The DAG is train -> eval -> register -> promote.
    let spec = serde_json::to_value(&pipeline.spec).expect("spec json");
    let templates = spec["templates"].as_array().expect("templates");
    let dag = templates
        .iter()
        .find(|t| t["name"] == "pipeline")
        .expect("pipeline template");
    let deps: Vec<(String, String)> = dag["dag"]["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or_default().to_owned(),
                t["depends"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("train", ""),
        ("eval", "train"),
        ("register", "eval"),
        ("promote", "register"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(deps, want);
    // Pod Security "restricted": pod level and every container.
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    for t in templates {
        let c = if t["container"].is_object() {
            &t["container"]
        } else if t["script"].is_object() {
            &t["script"]
        } else {
            continue;
        };
        let sc = &c["securityContext"];
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", t["name"]);
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", t["name"]);
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{}",
            t["name"]
        );
    }
    // train's model is an output artifact, eval's input; eval's score an output parameter.
    let by_name = |n: &str| templates.iter().find(|t| t["name"] == n).expect(n);
    assert_eq!(by_name("train")["outputs"]["artifacts"][0]["name"], "model");
    assert_eq!(by_name("eval")["inputs"]["artifacts"][0]["name"], "model");
    assert_eq!(by_name("eval")["outputs"]["parameters"][0]["name"], "score");
    let register = by_name("register")["container"]["args"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        register.contains("/var/run/cairn/cairn model register")
            && register.contains("--artifact model")
            && register.contains("--metric \"score=$SCORE\""),
        "{register}"
    );
    let promote: Vec<&str> = by_name("promote")["container"]["command"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .take(3)
        .collect();
    assert_eq!(promote, ["/var/run/cairn/cairn", "model", "promote"]);
    // The sweep fans out with withItems.
    let sweep = serde_json::to_value(&m.templates["recommender-sweep"].spec).expect("json");
    let trial = &sweep["templates"][0]["dag"]["tasks"][0];
    assert_eq!(trial["name"], "trial");
    assert!(
        trial["withItems"].as_array().is_some_and(|i| i.len() >= 2),
        "{trial}"
    );
}

#[test]
fn nightly_cron_schedules_the_pipeline() {
    let m = load();
    let cron = m
        .crons
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some("recommender-nightly"))
        .expect("CronWorkflow recommender-nightly");
    let spec = CronSpec::from_cron_workflow(cron, &jiff::tz::TimeZone::UTC)
        .unwrap_or_else(|e| panic!("recommender-nightly: {e}"));
    assert_eq!(spec.starting_deadline_seconds, Some(600));
    assert_eq!(cron.spec.schedule.as_deref(), Some("0 2 * * *"));
    assert_eq!(cron.spec.timezone.as_deref(), Some("UTC"));
    assert_eq!(cron.spec.concurrency_policy.as_deref(), Some("Replace"));
    // 02:00 UTC next after 2026-12-07 08:00 UTC is 2026-12-08 02:00 UTC.
    let after: jiff::Timestamp = "2026-12-07T08:00:00Z".parse().expect("ts");
    let next = spec.schedules[0].next_after(after, None).expect("next");
    assert_eq!(next.to_string(), "2026-12-08T02:00:00Z");
    let wf = Workflow {
        metadata: cron.metadata.clone(),
        spec: cron.spec.workflow_spec.clone().expect("workflowSpec"),
        ..Default::default()
    };
    check(&wf, &m, "CronWorkflow recommender-nightly");
}

#[test]
fn dataset_ready_event_source_and_sensor_compile() {
    let m = load();
    let plan = cairn::events::sources::plan(&m.sources);
    assert_eq!(plan.endpoints.len(), 1, "{plan:?}");
    assert_eq!(plan.endpoints[0].event_name, "dataset-ready");
    for (key, verdict) in &plan.verdicts {
        assert!(
            verdict.invalid.is_empty() && verdict.problems.is_empty(),
            "EventSource {key:?}: {verdict:?}"
        );
    }
    let sensor = m
        .sensors
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some("recommender-on-dataset"))
        .expect("Sensor recommender-on-dataset");
    let compiled = cairn::events::sensor::compile(sensor);
    assert!(
        compiled.dependency_problems.is_empty() && compiled.trigger_problems.is_empty(),
        "deps {:?} triggers {:?}",
        compiled.dependency_problems,
        compiled.trigger_problems
    );
    assert_eq!(compiled.triggers.len(), 1);
    let resource = serde_json::to_value(&compiled.triggers[0].spec).expect("trigger json")
        ["template"]["argoWorkflow"]["source"]["resource"]
        .clone();
    let wf: Workflow = serde_json::from_value(resource).expect("the trigger's Workflow");
    check(&wf, &m, "Sensor recommender-on-dataset trigger");
}

#[test]
fn python_unit_tests_pass() {
    let script = Path::new("examples/bookstore/test");
    let out = Command::new(script)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stderr}");
    assert!(
        out.status.success(),
        "examples/bookstore/test failed:\n{stderr}"
    );
    // unittest's closing lines: "Ran N tests" and "OK".
    assert!(stderr.contains("\nOK"), "{stderr}");
}
