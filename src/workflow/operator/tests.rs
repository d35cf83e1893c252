//! Operator tests. `Sim` drives [`operate`] in a loop against a simulated kubelet: a scripted
//! table says how each pod ends (test data for a pure function, not a stand-in for cairn);
//! pods go Running on the pass after their creation and finish on the pass after that, with
//! the executor's report complete. Time advances one second per pass, or jumps to the
//! operator's `requeue_after` when nothing else can happen.

use std::collections::{BTreeMap, BTreeSet};

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::vars::{go_sprintf_int, item_description};
use super::*;
use crate::workflow::node::{PodObservation, PodPhase};
use crate::workflow::types::{
    ClusterWorkflowTemplate, NodeStatus, Outputs, Parameter, Workflow, WorkflowTemplate,
};

const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/workflows"
);

#[derive(Default)]
struct MapLookup {
    namespaced: BTreeMap<String, WorkflowTemplate>,
    /// (namespace, name) → data of the parameter ConfigMaps.
    config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// (namespace, name) → data of Secrets.
    secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
}

impl TemplateLookup for MapLookup {
    fn workflow_template(&self, _namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        self.namespaced.get(name).cloned()
    }
    fn cluster_workflow_template(&self, _name: &str) -> Option<ClusterWorkflowTemplate> {
        None
    }
    fn config_map_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> crate::workflow::validate::ConfigMapValue {
        use crate::workflow::validate::ConfigMapValue;
        match self
            .config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
        {
            None => ConfigMapValue::NoConfigMap,
            Some(data) => data
                .get(key)
                .map_or(ConfigMapValue::NoKey, |v| ConfigMapValue::Found(v.clone())),
        }
    }
    fn secret_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> crate::workflow::validate::SecretValue {
        use crate::workflow::validate::SecretValue;
        match self.secrets.get(&(namespace.to_owned(), name.to_owned())) {
            None => SecretValue::NoSecret,
            Some(data) => data
                .get(key)
                .map_or(SecretValue::NoKey, |v| SecretValue::Found(v.clone())),
        }
    }
}

fn documents(yaml: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in yaml.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| d.lines().any(|l| l.starts_with("kind:")))
        .collect()
}

fn templates_lookup() -> MapLookup {
    let text = std::fs::read_to_string(format!("{CONFORMANCE}/workflow-template-templates.yaml"))
        .expect("read templates");
    let mut lookup = MapLookup::default();
    for doc in documents(&text) {
        let t: WorkflowTemplate = serde_saphyr::from_str(&doc).expect("WorkflowTemplate");
        lookup
            .namespaced
            .insert(t.metadata.name.clone().expect("name"), t);
    }
    lookup
}

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("time")
}

/// A workflow from YAML, named as the apiserver would name it.
fn wf_from_yaml(yaml: &str) -> Workflow {
    let mut wf: Workflow = serde_saphyr::from_str(yaml).expect("Workflow YAML");
    if wf.metadata.name.is_none() {
        let prefix = wf
            .metadata
            .generate_name
            .clone()
            .unwrap_or_else(|| "wf-".into());
        wf.metadata.name = Some(format!("{prefix}abcde"));
    }
    wf.metadata.namespace = Some("default".into());
    wf.metadata.uid = Some("uid-1".into());
    wf.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()));
    wf
}

fn conformance(file: &str) -> Workflow {
    let text = std::fs::read_to_string(format!("{CONFORMANCE}/{file}")).expect("read manifest");
    wf_from_yaml(&text)
}

/// How a pod ends.
#[derive(Clone, Debug)]
struct Outcome {
    phase: PodPhase,
    exit_code: i32,
    result: Option<String>,
    params: Vec<(String, String)>,
    message: Option<String>,
    /// Stays Running forever (a `sleep 1d`).
    hang: bool,
}

fn ok() -> Outcome {
    Outcome {
        phase: PodPhase::Succeeded,
        exit_code: 0,
        result: None,
        params: Vec::new(),
        message: None,
        hang: false,
    }
}

fn fail() -> Outcome {
    Outcome {
        phase: PodPhase::Failed,
        exit_code: 1,
        message: Some("Error (exit code 1)".into()),
        ..ok()
    }
}

fn with_result(r: &str) -> Outcome {
    Outcome {
        result: Some(r.into()),
        ..ok()
    }
}

type Script = Box<dyn Fn(&PodRequest) -> Outcome>;

struct Pod {
    request: PodRequest,
    stage: u8,
    started: Timestamp,
}

/// The simulated cluster around the operator.
struct Sim {
    wf: Workflow,
    lookup: MapLookup,
    now: Timestamp,
    pods: BTreeMap<String, Pod>,
    observations: Observations,
    /// Every pod ever created, in order (a second create of a name is AlreadyExists).
    created: Vec<String>,
    deleted: Vec<String>,
    script: Script,
    passes: usize,
    /// What the shell saw of resource nodes (set by the tests).
    resources: crate::workflow::resource::ResourceObservations,
    /// Every resource action asked for, in order.
    resource_requests: Vec<crate::workflow::resource::ResourceRequest>,
}

impl Sim {
    fn new(wf: Workflow, script: Script) -> Sim {
        Sim {
            wf,
            lookup: MapLookup::default(),
            now: t0(),
            pods: BTreeMap::new(),
            observations: Observations::new(),
            created: Vec::new(),
            deleted: Vec::new(),
            script,
            passes: 0,
            resources: Default::default(),
            resource_requests: Vec::new(),
        }
    }

    fn pass(&mut self) -> Operation {
        let op = operate_with_resources(
            &OperateInput {
                workflow: &self.wf,
                observations: &self.observations,
                templates: &self.lookup,
                now: self.now,
            },
            &self.resources,
        );
        self.passes += 1;
        // Status first, then actions (the shell's order).
        self.wf.status = Some(op.status.clone());
        for a in &op.actions {
            match a {
                Action::CreatePod(req) => {
                    if !self.pods.contains_key(&req.node_id)
                        && !self.deleted.contains(&req.pod_name)
                    {
                        self.created.push(req.pod_name.clone());
                        self.pods.insert(
                            req.node_id.clone(),
                            Pod {
                                request: (**req).clone(),
                                stage: 0,
                                started: self.now,
                            },
                        );
                    }
                }
                Action::DeletePod { pod_name, node_id } => {
                    self.deleted.push(pod_name.clone());
                    self.pods.remove(node_id);
                    self.observations.remove(node_id);
                }
                Action::Resource(req) => self.resource_requests.push((**req).clone()),
            }
        }
        op
    }

    /// The kubelet: advances every pod one stage.
    fn kubelet(&mut self) -> bool {
        let mut busy = false;
        for (id, pod) in self.pods.iter_mut() {
            let outcome = (self.script)(&pod.request);
            let obs = match pod.stage {
                0 => Some(PodObservation {
                    pod_name: pod.request.pod_name.clone(),
                    phase: PodPhase::Running,
                    message: None,
                    started_at: Some(pod.started),
                    finished_at: None,
                    host_node_name: Some("lab".into()),
                    pod_ip: Some("10.0.0.1".into()),
                    outputs: None,
                    outputs_reported: false,
                }),
                1 if !outcome.hang => {
                    let params: Vec<Parameter> = outcome
                        .params
                        .iter()
                        .map(|(n, v)| Parameter {
                            name: n.clone(),
                            value: Some(json!(v)),
                            ..Default::default()
                        })
                        .collect();
                    Some(PodObservation {
                        pod_name: pod.request.pod_name.clone(),
                        phase: outcome.phase,
                        message: outcome.message.clone(),
                        started_at: Some(pod.started),
                        finished_at: Some(self.now),
                        host_node_name: Some("lab".into()),
                        pod_ip: None,
                        outputs: Some(Outputs {
                            parameters: (!params.is_empty()).then_some(params),
                            result: outcome.result.clone(),
                            exit_code: Some(outcome.exit_code.to_string()),
                            ..Default::default()
                        }),
                        outputs_reported: true,
                    })
                }
                _ => None,
            };
            if let Some(o) = obs {
                self.observations.insert(id.clone(), o);
                pod.stage += 1;
                busy = true;
            }
            if outcome.hang {
                busy = busy || pod.stage < 2;
            }
        }
        busy
    }

    /// Runs to a final phase (or `max` passes).
    fn run(&mut self, max: usize) -> &mut Self {
        for _ in 0..max {
            let op = self.pass();
            if matches!(
                op.status.phase.as_deref(),
                Some("Succeeded" | "Failed" | "Error")
            ) {
                return self;
            }
            let busy = self.kubelet();
            let step = match (busy, op.requeue_after) {
                (false, Some(d)) if d > SignedDuration::ZERO => d,
                _ => SignedDuration::from_secs(1),
            };
            self.now = self.now.checked_add(step).expect("time");
        }
        self
    }

    fn status(&self) -> WorkflowStatus {
        self.wf.status.clone().unwrap_or_default()
    }

    fn phase(&self) -> String {
        self.status().phase.unwrap_or_default()
    }

    fn nodes(&self) -> BTreeMap<String, NodeStatus> {
        self.status().nodes.unwrap_or_default()
    }

    fn by_name(&self, name: &str) -> Option<NodeStatus> {
        self.nodes()
            .into_values()
            .find(|n| n.name.as_deref() == Some(name))
    }

    /// The node tree as sorted `name type phase [message]` lines, for snapshots.
    fn tree(&self) -> Vec<String> {
        let nodes = self.nodes();
        let mut lines: Vec<String> = nodes
            .values()
            .map(|n| {
                let children: Vec<String> = n
                    .children
                    .iter()
                    .flatten()
                    .filter_map(|c| nodes.get(c).and_then(|c| c.display_name.clone()))
                    .collect();
                format!(
                    "{} | {} | {}{}{}",
                    n.name.clone().unwrap_or_default(),
                    n.node_type.clone().unwrap_or_default(),
                    n.phase.clone().unwrap_or_default(),
                    n.message
                        .as_ref()
                        .map(|m| format!(" | {m}"))
                        .unwrap_or_default(),
                    if children.is_empty() {
                        String::new()
                    } else {
                        format!(" -> [{}]", children.join(", "))
                    }
                )
            })
            .collect();
        lines.sort();
        lines
    }
}

/// Outcomes by template name (others succeed).
type Table = &'static [(&'static str, fn() -> Outcome)];

fn by_template(table: Table) -> Script {
    Box::new(move |req: &PodRequest| {
        table
            .iter()
            .find(|(t, _)| *t == req.template.name)
            .map(|(_, f)| f())
            .unwrap_or_else(ok)
    })
}

fn all_ok() -> Script {
    Box::new(|_| ok())
}

// ---------------------------------------------------------------- conformance workflows

#[test]
fn conformance_hello_world_is_one_pod_named_after_the_workflow() {
    let mut sim = Sim::new(conformance("hello-world.yaml"), all_ok());
    sim.run(20);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    let root = sim.by_name(&name).expect("root node");
    assert_eq!(root.node_type.as_deref(), Some("Pod"));
    assert_eq!(root.id.as_deref(), Some(name.as_str()));
    assert_eq!(sim.created, vec![name.clone()]);
    assert_eq!(sim.status().progress.as_deref(), Some("1/1"));
    assert_eq!(
        sim.status().conditions,
        Some(vec![
            json!({"type": "PodRunning", "status": "False"}),
            json!({"type": "Completed", "status": "True"})
        ])
    );
    assert!(sim.status().finished_at.is_some());
}

#[test]
fn conformance_steps_tree_shape() {
    let mut sim = Sim::new(conformance("steps.yaml"), all_ok());
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded");
    insta::assert_yaml_snapshot!("steps_tree", sim.tree());
}

#[test]
fn conformance_coinflip_takes_the_branch_of_the_result() {
    for (side, other) in [("heads", "tails"), ("tails", "heads")] {
        let script: Script = Box::new(move |r: &PodRequest| {
            if r.template.name == "flip-coin" {
                with_result(side)
            } else {
                ok()
            }
        });
        let mut sim = Sim::new(conformance("coinflip.yaml"), script);
        sim.run(40);
        assert_eq!(sim.phase(), "Succeeded", "{side}");
        let name = sim.wf.metadata.name.clone().expect("name");
        let ran = sim
            .by_name(&format!("{name}[1].{side}"))
            .expect("branch ran");
        assert_eq!(ran.phase.as_deref(), Some("Succeeded"));
        let skipped = sim.by_name(&format!("{name}[1].{other}")).expect("other");
        assert_eq!(skipped.phase.as_deref(), Some("Skipped"));
        assert_eq!(
            skipped.message.as_deref(),
            Some(format!("when '{side} == {other}' evaluated false").as_str())
        );
        // The script's pod captures stdout.
        assert!(sim.created.iter().any(|p| p.contains("flip-coin")));
    }
}

#[test]
fn conformance_continue_on_fail_succeeds_with_a_failed_step() {
    let mut sim = Sim::new(
        conformance("continue-on-fail.yaml"),
        by_template(&[("intentional-fail", fail)]),
    );
    sim.run(60);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    assert_eq!(
        sim.by_name(&format!("{name}[1].C")).and_then(|n| n.phase),
        Some("Failed".into())
    );
    assert_eq!(
        sim.by_name(&format!("{name}[2].D")).and_then(|n| n.phase),
        Some("Succeeded".into())
    );
}

#[test]
fn conformance_parallelism_limit_never_runs_more_than_two_pods() {
    let mut sim = Sim::new(conformance("parallelism-limit.yaml"), all_ok());
    let mut max_running = 0;
    for _ in 0..200 {
        let op = sim.pass();
        if op.status.phase.as_deref() == Some("Succeeded") {
            break;
        }
        let running = sim
            .nodes()
            .values()
            .filter(|n| {
                n.node_type.as_deref() == Some("Pod")
                    && matches!(n.phase.as_deref(), Some("Pending" | "Running"))
            })
            .count();
        max_running = max_running.max(running);
        sim.kubelet();
        sim.now = sim
            .now
            .checked_add(SignedDuration::from_secs(1))
            .expect("t");
    }
    assert_eq!(sim.phase(), "Succeeded");
    assert_eq!(max_running, 2);
    assert_eq!(sim.created.len(), 10);
    let name = sim.wf.metadata.name.clone().expect("name");
    assert!(sim.by_name(&format!("{name}[0].sleep(0:this)")).is_some());
    assert!(sim.by_name(&format!("{name}[0].sleep(6:60)")).is_some());
}

#[test]
fn conformance_exit_handler_sees_failed_status() {
    let mut sim = Sim::new(
        conformance("exit-handlers.yaml"),
        by_template(&[("intentional-fail", fail)]),
    );
    sim.run(60);
    assert_eq!(sim.phase(), "Failed");
    let name = sim.wf.metadata.name.clone().expect("name");
    let cry = sim.by_name(&format!("{name}.onExit[0].cry")).expect("cry");
    assert_eq!(cry.phase.as_deref(), Some("Succeeded"));
    let celebrate = sim
        .by_name(&format!("{name}.onExit[0].celebrate"))
        .expect("celebrate");
    assert_eq!(celebrate.phase.as_deref(), Some("Skipped"));
    assert_eq!(sim.status().message.as_deref(), Some("Error (exit code 1)"));
    let email = sim
        .pods
        .values()
        .find(|p| p.request.template.name == "send-email")
        .expect("send-email pod");
    let args = email
        .request
        .template
        .container
        .as_ref()
        .and_then(|c| c.args.clone())
        .expect("args");
    assert!(
        args[0].starts_with(&format!("echo send e-mail: {name} Failed ")),
        "{}",
        args[0]
    );
    assert!(
        args[0].ends_with(&format!(
            ". Failed steps [{{\"displayName\":\"{name}\",\"message\":\"Error (exit code 1)\",\"templateName\":\"intentional-fail\",\"phase\":\"Failed\",\"podName\":\"{name}\",\"finishedAt\":\"2026-01-01T00:00:01Z\"}}]"
        )),
        "{}",
        args[0]
    );
}

#[test]
fn conformance_retry_container_retries_until_success() {
    // Attempts 0 and 1 fail, attempt 2 succeeds.
    let script: Script = Box::new(|r: &PodRequest| {
        if r.node_name.ends_with("(2)") {
            ok()
        } else {
            fail()
        }
    });
    let mut sim = Sim::new(conformance("retry-container.yaml"), script);
    sim.run(60);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    let retry = sim.by_name(&name).expect("retry node");
    assert_eq!(retry.node_type.as_deref(), Some("Retry"));
    assert_eq!(retry.children.as_ref().map(Vec::len), Some(3));
    assert_eq!(sim.created.len(), 3);
    let unique: BTreeSet<&String> = sim.created.iter().collect();
    assert_eq!(unique.len(), 3, "each attempt has its own pod");
}

#[test]
fn conformance_retry_backoff_waits_and_reports_it() {
    let script: Script = Box::new(|r: &PodRequest| {
        if r.node_name.ends_with("(2)") {
            ok()
        } else {
            fail()
        }
    });
    let mut sim = Sim::new(conformance("retry-backoff.yaml"), script);
    let mut saw_backoff = None;
    for _ in 0..80 {
        let op = sim.pass();
        if op.status.phase.as_deref() != Some("Running") {
            break;
        }
        let name = sim.wf.metadata.name.clone().expect("name");
        if let Some(m) = sim.by_name(&name).and_then(|n| n.message)
            && m.starts_with("Backoff for")
        {
            saw_backoff.get_or_insert((m, op.requeue_after));
        }
        let busy = sim.kubelet();
        let step = match (busy, op.requeue_after) {
            (false, Some(d)) if d > SignedDuration::ZERO => d,
            _ => SignedDuration::from_secs(1),
        };
        sim.now = sim.now.checked_add(step).expect("t");
    }
    assert_eq!(sim.phase(), "Succeeded");
    let (message, requeue) = saw_backoff.expect("a backoff was reported");
    // Attempt 0 failed at t+1 and its 1 s wait was over by the next pass; attempt 1's wait is
    // 1 s * factor 2 from its end at t+3, so at t+4 one second of it is left.
    assert_eq!(message, "Backoff for 2 seconds");
    assert_eq!(requeue, Some(SignedDuration::from_secs(1)));
}

#[test]
fn conformance_loops_maps_node_names_and_item_fields() {
    let mut sim = Sim::new(conformance("loops-maps.yaml"), all_ok());
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    let child = format!("{name}[0].test-linux(0:image:debian,tag:9.1)");
    let node = sim.by_name(&child).expect("loop child");
    let id = node.id.clone().expect("id");
    // The image came from the item.
    let image = sim.pods[&id]
        .request
        .template
        .container
        .as_ref()
        .and_then(|c| c.image.clone());
    assert_eq!(image.as_deref(), Some("debian:9.1"));
}

#[test]
fn conformance_loops_param_result_expands_json_output() {
    let script: Script = Box::new(|r: &PodRequest| {
        if r.template.name == "gen-number-list" {
            with_result("[20, 21, 22]")
        } else {
            ok()
        }
    });
    let mut sim = Sim::new(conformance("loops-param-result.yaml"), script);
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    let node = sim
        .by_name(&format!("{name}[1].sleep(2:22)"))
        .expect("child");
    let args = sim.pods[&node.id.clone().expect("id")]
        .request
        .template
        .container
        .as_ref()
        .and_then(|c| c.args.clone())
        .expect("args");
    assert_eq!(args[0], "echo sleeping for 22 seconds; sleep 22; echo done");
}

#[test]
fn conformance_loops_sequence_items() {
    let mut sim = Sim::new(conformance("loops-sequence.yaml"), all_ok());
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    for child in [
        "sequence-count(0:0)",
        "sequence-count(4:4)",
        "sequence-start-end(5:105)",
        "sequence-param(2:202)",
        "sequence-negative(0:5)",
        "sequence-negative(5:0)",
        "sequence-format(4:testuser04)",
    ] {
        assert!(
            sim.by_name(&format!("{name}[0].{child}")).is_some(),
            "{child}: {:#?}",
            sim.tree()
        );
    }
}

#[test]
fn conformance_output_parameter_flows_to_the_next_step() {
    let script: Script = Box::new(|r: &PodRequest| {
        if r.template.name == "hello-world-to-file" {
            Outcome {
                params: vec![("hello-param".into(), "hello world".into())],
                ..ok()
            }
        } else {
            ok()
        }
    });
    let mut sim = Sim::new(conformance("output-parameter.yaml"), script);
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    let consume = sim
        .by_name(&format!("{name}[1].consume-parameter"))
        .expect("consumer");
    let req = &sim.pods[&consume.id.clone().expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec!["hello world".to_owned()])
    );
}

#[test]
fn conformance_output_parameter_default_when_not_reported() {
    let mut sim = Sim::new(conformance("output-parameter.yaml"), all_ok());
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded");
    let name = sim.wf.metadata.name.clone().expect("name");
    let consume = sim
        .by_name(&format!("{name}[1].consume-parameter"))
        .expect("consumer");
    let req = &sim.pods[&consume.id.clone().expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec!["Foobar".to_owned()])
    );
}

#[test]
fn conformance_dags() {
    for file in [
        "dag-diamond.yaml",
        "dag-enhanced-depends.yaml",
        "dag-targets.yaml",
    ] {
        // dag-enhanced-depends' `fail` template exits 1; its failure is handled by `depends`.
        let mut sim = Sim::new(conformance(file), by_template(&[("fail", fail)]));
        sim.run(60);
        assert_eq!(sim.phase(), "Succeeded", "{file}: {:#?}", sim.tree());
        insta::assert_yaml_snapshot!(file.trim_end_matches(".yaml").to_owned(), sim.tree());
    }
}

#[test]
fn conformance_simple_successes() {
    for file in [
        "arguments-parameters.yaml",
        "conditionals.yaml",
        "global-parameters.yaml",
        "loops.yaml",
        "scripts-bash.yaml",
        "scripts-python.yaml",
        "volumes-emptydir.yaml",
        "volumes-pvc.yaml",
    ] {
        let script: Script = Box::new(|r: &PodRequest| {
            if r.capture_result && r.template.script.is_some() {
                with_result("42")
            } else {
                Outcome {
                    params: vec![("hello-param".into(), "x".into())],
                    ..ok()
                }
            }
        });
        let mut sim = Sim::new(conformance(file), script);
        sim.run(80);
        assert_eq!(sim.phase(), "Succeeded", "{file}: {:#?}", sim.tree());
    }
}

#[test]
fn conformance_global_parameter_reaches_the_pod() {
    let mut sim = Sim::new(conformance("global-parameters.yaml"), all_ok());
    sim.run(20);
    let pod = sim.pods.values().next().expect("pod");
    assert_eq!(
        pod.request
            .template
            .container
            .as_ref()
            .and_then(|c| c.args.clone()),
        Some(vec!["hello world".to_owned()])
    );
}

#[test]
fn conformance_workflow_template_ref_stores_spec_and_survives_template_deletion() {
    let mut sim = Sim::new(conformance("workflow-template-ref.yaml"), all_ok());
    sim.lookup = templates_lookup();
    sim.pass();
    let stored = sim
        .status()
        .stored_workflow_template_spec
        .expect("stored spec");
    assert_eq!(stored["entrypoint"], json!("print-message"));
    // The WorkflowTemplate disappears: the run goes on from the stored spec.
    sim.lookup = MapLookup::default();
    sim.kubelet();
    sim.run(20);
    assert_eq!(sim.phase(), "Succeeded");
    let pod = sim.pods.values().next().expect("pod");
    assert_eq!(
        pod.request
            .template
            .container
            .as_ref()
            .and_then(|c| c.args.clone()),
        Some(vec!["hello world".to_owned()])
    );
}

#[test]
fn conformance_timeouts_step_deletes_the_pod_at_its_deadline() {
    let script: Script = Box::new(|_| Outcome { hang: true, ..ok() });
    let mut sim = Sim::new(conformance("timeouts-step.yaml"), script);
    sim.run(40);
    assert_eq!(sim.phase(), "Failed");
    assert_eq!(sim.status().message.as_deref(), Some(reasons::DEADLINE));
    assert_eq!(sim.deleted.len(), 1);
    let pod = sim.created.first().expect("pod");
    assert_eq!(&sim.deleted[0], pod);
}

#[test]
fn conformance_suspend_template_waits_for_resume_then_duration() {
    let mut sim = Sim::new(conformance("suspend-template.yaml"), all_ok());
    sim.run(30);
    assert_eq!(sim.phase(), "Running");
    let name = sim.wf.metadata.name.clone().expect("name");
    let approve = sim.by_name(&format!("{name}[1].approve")).expect("approve");
    assert_eq!(approve.node_type.as_deref(), Some("Suspend"));
    assert_eq!(approve.phase.as_deref(), Some("Running"));
    let op = sim.pass();
    assert_eq!(op.requeue_after, None, "manual suspend has no wake-up");
    // Resume.
    let status = resume(&sim.wf, Some("displayName=approve"), sim.now);
    sim.wf.status = Some(status);
    let op = sim.pass();
    let delay = sim.by_name(&format!("{name}[2].delay")).expect("delay");
    assert_eq!(delay.phase.as_deref(), Some("Running"));
    assert_eq!(op.requeue_after, Some(SignedDuration::from_secs(20)));
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded");
}

#[test]
fn conformance_intermediate_parameters_reads_the_supplied_output() {
    let mut sim = Sim::new(conformance("intermediate-parameters.yaml"), all_ok());
    sim.run(30);
    assert_eq!(sim.phase(), "Running");
    let name = sim.wf.metadata.name.clone().expect("name");
    let approval = sim
        .by_name(&format!("{name}[1].approval"))
        .expect("approval");
    assert_eq!(approval.node_type.as_deref(), Some("Suspend"));
    // What the UI (or `argo node set`) does, then `argo resume`.
    let mut status = resume(&sim.wf, None, sim.now);
    let id = approval.id.expect("id");
    if let Some(n) = status.nodes.as_mut().and_then(|n| n.get_mut(&id)) {
        n.outputs = Some(Outputs {
            parameters: Some(vec![Parameter {
                name: "approve".into(),
                value: Some(json!("YES")),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }
    sim.wf.status = Some(status);
    sim.run(30);
    assert_eq!(sim.phase(), "Succeeded");
    let prod = sim
        .by_name(&format!("{name}[2].deploy-prod"))
        .expect("deploy-prod");
    assert_eq!(prod.phase.as_deref(), Some("Succeeded"));
}

#[test]
fn dag_loop_task_group_and_aggregated_results() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: fan
        template: echo
        arguments:
          parameters: [{name: n, value: "{{item}}"}]
        withItems: [1, 2, 3]
      - name: sum
        depends: fan
        template: show
        arguments:
          parameters: [{name: all, value: "{{tasks.fan.outputs.result}}"}]
    outputs:
      parameters:
      - name: total
        valueFrom:
          parameter: "{{tasks.sum.outputs.result}}"
  - name: echo
    inputs:
      parameters: [{name: n}]
    script:
      image: python:alpine3.23
      command: [python]
      source: "print({{inputs.parameters.n}})"
  - name: show
    inputs:
      parameters: [{name: all}]
    container:
      image: busybox
      args: ["{{inputs.parameters.all}}"]
"#;
    let script: Script = Box::new(|r: &PodRequest| {
        if r.template.name == "echo" {
            let n = r
                .node_name
                .rsplit('(')
                .next()
                .unwrap_or("")
                .trim_end_matches(')');
            let n = n.split(':').nth(1).unwrap_or("").to_owned();
            with_result(&n)
        } else {
            with_result("6")
        }
    });
    let mut sim = Sim::new(yaml_wf(spec), script);
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    insta::assert_yaml_snapshot!("dag_loop_tree", sim.tree());
    let sum = sim.by_name("wf.sum").expect("sum");
    let req = &sim.pods[&sum.id.expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec!["[1,2,3]".to_owned()])
    );
    let root = sim.by_name("wf").expect("root");
    let total = root
        .outputs
        .and_then(|o| o.parameters)
        .and_then(|p| p.into_iter().next())
        .and_then(|p| p.value);
    assert_eq!(total, Some(json!("6")));
}

#[test]
fn step_on_exit_runs_after_the_step_and_the_group_waits() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        template: t
        onExit: cleanup
    - - name: b
        template: t
  - name: t
    container: {image: busybox}
  - name: cleanup
    container: {image: busybox}
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    let mut order = Vec::new();
    for _ in 0..40 {
        let op = sim.pass();
        for a in &op.actions {
            if let Action::CreatePod(r) = a
                && !order.contains(&r.node_name)
            {
                order.push(r.node_name.clone());
            }
        }
        if op.status.phase.as_deref() == Some("Succeeded") {
            break;
        }
        sim.kubelet();
        sim.now = sim
            .now
            .checked_add(SignedDuration::from_secs(1))
            .expect("t");
    }
    assert_eq!(sim.phase(), "Succeeded");
    assert_eq!(order, ["wf[0].a", "wf[0].a.onExit", "wf[1].b"]);
}

#[test]
fn loop_children_when_is_per_item() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: s
        template: t
        withItems: [1, 2, 3]
        when: "{{item}} > 1"
  - name: t
    container: {image: busybox}
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(30);
    assert_eq!(sim.phase(), "Succeeded");
    assert_eq!(
        sim.by_name("wf[0].s(0:1)").and_then(|n| n.phase),
        Some("Skipped".into())
    );
    assert_eq!(
        sim.by_name("wf[0].s(1:2)").and_then(|n| n.phase),
        Some("Succeeded".into())
    );
    assert_eq!(sim.created.len(), 2);
}

#[test]
fn run_time_errors_name_the_field() {
    for (spec, want) in [
        (
            r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: g
        template: g
    - - name: s
        template: t
        withParam: "{{steps.g.outputs.result}}"
  - name: g
    script: {image: busybox, command: [sh], source: "echo"}
  - name: t
    container: {image: busybox}
"#,
            "s: withParam value could not be parsed as a JSON list: not json",
        ),
        (
            r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: g
        template: g
    - - name: s
        template: t
        when: "{{steps.g.outputs.result}} =="
  - name: g
    script: {image: busybox, command: [sh], source: "echo"}
  - name: t
    container: {image: busybox}
"#,
            "s: invalid 'when' expression",
        ),
    ] {
        let mut sim = Sim::new(yaml_wf(spec), Box::new(|_| with_result("not json")));
        sim.run(30);
        assert_eq!(sim.phase(), "Failed", "{want}: {:#?}", sim.tree());
        let node = sim.by_name("wf[1].s").expect("errored step");
        assert_eq!(node.phase.as_deref(), Some("Error"));
        let message = node.message.unwrap_or_default();
        assert!(message.starts_with(want), "{message}");
    }
}

#[test]
fn artifacts_pass_from_a_step_to_the_next() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: make
        template: make
    - - name: use
        template: use
        arguments:
          artifacts:
          - name: data
            from: "{{steps.make.outputs.artifacts.out}}"
  - name: make
    container: {image: busybox}
    outputs:
      artifacts:
      - {name: out, path: /tmp/out}
  - name: use
    inputs:
      artifacts:
      - {name: data, path: /in/data}
    container: {image: busybox}
"#;
    let script: Script = Box::new(|_| ok());
    let mut sim = Sim::new(yaml_wf(spec), script);
    // The executor of `make` reports where it stored the artifact.
    for _ in 0..40 {
        let op = sim.pass();
        if op.status.phase.as_deref() != Some("Running") {
            break;
        }
        sim.kubelet();
        for (id, o) in sim.observations.iter_mut() {
            if o.outputs_reported && sim.pods[id].request.template.name == "make" {
                let outputs = o.outputs.get_or_insert_with(Outputs::default);
                outputs.artifacts = Some(vec![json!({
                    "name": "out", "path": "/tmp/out", "s3": {"key": "wf/make/out.tgz"}
                })]);
            }
        }
        sim.now = sim
            .now
            .checked_add(SignedDuration::from_secs(1))
            .expect("t");
    }
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    let node = sim.by_name("wf[1].use").expect("use");
    let req = &sim.pods[&node.id.expect("id")].request;
    let arts = req
        .template
        .inputs
        .as_ref()
        .and_then(|i| i.artifacts.clone())
        .expect("artifacts");
    assert_eq!(
        arts,
        vec![json!({"name": "data", "path": "/in/data", "s3": {"key": "wf/make/out.tgz"}})]
    );
}

#[test]
fn input_artifacts_need_a_location_or_an_argument() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: use
        template: use
  - name: use
    inputs:
      artifacts:
      - {name: data, path: /in/data LOCATION}
    container: {image: busybox}
"#;
    for (location, phase) in [(", raw: {data: hi}", "Succeeded"), ("", "Failed")] {
        let mut sim = Sim::new(yaml_wf(&spec.replace(" LOCATION", location)), all_ok());
        sim.run(20);
        assert_eq!(sim.phase(), phase, "{location}");
        if phase == "Failed" {
            let node = sim.by_name("wf[0].use").expect("use");
            assert_eq!(node.phase.as_deref(), Some("Error"));
            assert_eq!(
                node.message.as_deref(),
                Some("template 'use': inputs.artifacts.data was not supplied")
            );
        }
    }
}

#[test]
fn hooks_exit_is_the_exit_handler() {
    let spec = r#"  entrypoint: main
  hooks:
    exit:
      template: bye
      arguments:
        parameters: [{name: who, value: hooks}]
  templates:
  - name: main
    container: {image: busybox}
  - name: bye
    inputs:
      parameters: [{name: who}]
    container:
      image: busybox
      args: ["{{inputs.parameters.who}} {{workflow.status}}"]
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(20);
    assert_eq!(sim.phase(), "Succeeded");
    let exit = sim.by_name("wf.onExit").expect("exit node");
    let req = &sim.pods[&exit.id.expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec!["hooks Succeeded".to_owned()])
    );
}

#[test]
fn a_failing_exit_handler_fails_a_succeeded_workflow() {
    let spec = "  entrypoint: main\n  onExit: bye\n  templates:\n  - name: main\n    container: {image: busybox}\n  - name: bye\n    container: {image: busybox}\n";
    let mut sim = Sim::new(yaml_wf(spec), by_template(&[("bye", fail)]));
    sim.run(20);
    assert_eq!(sim.phase(), "Failed");
    assert_eq!(sim.status().message.as_deref(), Some("Error (exit code 1)"));
}

#[test]
fn template_defaults_apply_under_the_template() {
    let spec = r#"  entrypoint: main
  templateDefaults:
    timeout: 30s
    container:
      image: busybox
      env: [{name: FROM, value: defaults}]
  templates:
  - name: main
    container:
      command: [echo]
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    let op = sim.pass();
    let Some(Action::CreatePod(req)) = op.actions.first() else {
        panic!("{:?}", op.actions);
    };
    let c = req.template.container.clone().expect("container");
    assert_eq!(c.image.as_deref(), Some("busybox"));
    assert_eq!(c.command, Some(vec!["echo".to_owned()]));
    assert_eq!(
        c.env,
        Some(vec![json!({"name": "FROM", "value": "defaults"})])
    );
    assert_eq!(req.active_deadline_seconds, Some(30));
}

#[test]
fn resume_supplies_suspend_outputs_from_their_default() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: approve
        template: approve
    - - name: use
        template: use
        arguments:
          parameters: [{name: v, value: "{{steps.approve.outputs.parameters.answer}}"}]
  - name: approve
    suspend: {}
    outputs:
      parameters:
      - name: answer
        valueFrom: {supplied: {}, default: "no"}
  - name: use
    inputs:
      parameters: [{name: v}]
    container:
      image: busybox
      args: ["{{inputs.parameters.v}}"]
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(5);
    sim.wf.status = Some(resume(&sim.wf, None, sim.now));
    sim.run(20);
    assert_eq!(sim.phase(), "Succeeded");
    let node = sim.by_name("wf[1].use").expect("use");
    let req = &sim.pods[&node.id.expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec!["no".to_owned()])
    );
}

#[test]
fn retry_expression_and_steps_template_retries() {
    // The expression stops retrying once the exit code is 2.
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    retryStrategy:
      limit: 5
      expression: "asInt(lastRetry.exitCode) != 2"
    container: {image: busybox}
"#;
    let script: Script = Box::new(|r: &PodRequest| {
        if r.node_name.ends_with("(1)") {
            Outcome {
                exit_code: 2,
                ..fail()
            }
        } else {
            fail()
        }
    });
    let mut sim = Sim::new(yaml_wf(spec), script);
    sim.run(30);
    assert_eq!(sim.phase(), "Failed");
    assert_eq!(sim.created.len(), 2);
    assert_eq!(
        sim.status().message.as_deref(),
        Some("retryStrategy.expression evaluated to false")
    );

    // A steps template with a retryStrategy: each attempt is a Steps node.
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    retryStrategy: {limit: 2}
    steps:
    - - name: s
        template: t
  - name: t
    container: {image: busybox}
"#;
    let script: Script = Box::new(|r: &PodRequest| {
        if r.node_name.starts_with("wf(1)") {
            ok()
        } else {
            fail()
        }
    });
    let mut sim = Sim::new(yaml_wf(spec), script);
    sim.run(30);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    assert_eq!(
        sim.by_name("wf(0)").and_then(|n| n.node_type),
        Some("Steps".into())
    );
    assert_eq!(
        sim.by_name("wf(1)[0].s").and_then(|n| n.phase),
        Some("Succeeded".into())
    );
}

#[test]
fn daemon_steps_let_later_steps_run_and_stop_with_their_template() {
    for (kind, spec) in [
        (
            "steps",
            r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: db
        template: db
    - - name: client
        template: client
        arguments:
          parameters: [{name: ip, value: "{{steps.db.ip}}"}]
  - name: db
    daemon: true
    container: {image: busybox}
  - name: client
    inputs:
      parameters: [{name: ip}]
    container:
      image: busybox
      args: ["{{inputs.parameters.ip}}"]
"#,
        ),
        (
            "dag",
            r#"  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: db, template: db}
      - name: client
        template: client
        depends: db
        arguments:
          parameters: [{name: ip, value: "{{tasks.db.ip}}"}]
  - name: db
    daemon: true
    container: {image: busybox}
  - name: client
    inputs:
      parameters: [{name: ip}]
    container:
      image: busybox
      args: ["{{inputs.parameters.ip}}"]
"#,
        ),
    ] {
        let script: Script = Box::new(|r: &PodRequest| {
            if r.template.name == "db" {
                Outcome { hang: true, ..ok() }
            } else {
                ok()
            }
        });
        let mut sim = Sim::new(yaml_wf(spec), script);
        sim.run(30);
        assert_eq!(sim.phase(), "Succeeded", "{kind}: {:#?}", sim.tree());
        let db_name = if kind == "steps" { "wf[0].db" } else { "wf.db" };
        let db = sim.by_name(db_name).expect("db");
        assert_eq!(db.phase.as_deref(), Some("Succeeded"), "{kind}");
        assert_eq!(sim.deleted.len(), 1, "{kind}: the daemon's pod is stopped");
        let client_name = if kind == "steps" {
            "wf[1].client"
        } else {
            "wf.client"
        };
        let client = sim.by_name(client_name).expect("client");
        let req = &sim.pods[&client.id.expect("id")].request;
        assert_eq!(
            req.template.container.as_ref().and_then(|c| c.args.clone()),
            Some(vec!["10.0.0.1".to_owned()]),
            "{kind}"
        );
    }
}

#[test]
fn lifecycle_hooks_fire_on_their_expression_and_are_waited_for() {
    let spec = r#"  entrypoint: main
  hooks:
    running:
      expression: workflow.status == "Running"
      template: note
  templates:
  - name: main
    steps:
    - - name: a
        template: t
        hooks:
          started:
            expression: steps.a.status == "Running"
            template: note
          never:
            expression: steps.a.status == "Error"
            template: note
  - name: t
    container: {image: busybox}
  - name: note
    container: {image: busybox}
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(30);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    insta::assert_yaml_snapshot!("hooks_tree", sim.tree());
    assert!(sim.by_name("wf.hooks.running").is_some());
    assert!(sim.by_name("wf[0].a.hooks.started").is_some());
    assert!(sim.by_name("wf[0].a.hooks.never").is_none());
}

#[test]
fn template_refs_are_stored_and_survive_template_deletion() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: call
        templateRef:
          name: workflow-template-inner-steps
          template: inner-steps
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.lookup = templates_lookup();
    sim.pass();
    let stored = sim.status().stored_templates.expect("stored templates");
    let keys: Vec<&String> = stored.as_object().expect("map").keys().collect();
    assert!(
        keys.iter()
            .any(|k| *k == "namespaced/workflow-template-print-message/print-message"),
        "{keys:?}"
    );
    sim.lookup = MapLookup::default();
    sim.kubelet();
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    insta::assert_yaml_snapshot!("template_ref_tree", sim.tree());
    let hello = sim
        .by_name("wf[0].call[0].inner-hello1")
        .expect("inner step");
    assert_eq!(
        hello.template_ref.and_then(|r| r.name),
        Some("workflow-template-print-message".to_owned())
    );
    // Where each template was resolved: the templateRef'd WorkflowTemplate, or for a plain
    // `template:` inside a referenced template, that template's WorkflowTemplate.
    assert_eq!(
        hello.extra.get("templateScope"),
        Some(&json!("namespaced/workflow-template-print-message"))
    );
    let local = sim
        .by_name("wf[0].call[1].inner-hello2b")
        .expect("inner step");
    assert_eq!(
        local.extra.get("templateScope"),
        Some(&json!("namespaced/workflow-template-inner-steps"))
    );
    let root = sim.by_name("wf").expect("root");
    assert_eq!(root.extra.get("templateScope"), Some(&json!("local/wf")));
}

#[test]
fn global_outputs_are_visible_to_later_steps_in_the_same_pass() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: make
        template: make
    - - name: use
        template: use
        arguments:
          parameters: [{name: v, value: "{{workflow.outputs.parameters.shared}}"}]
  - name: make
    container: {image: busybox}
    outputs:
      parameters:
      - name: p
        globalName: shared
        valueFrom: {path: /tmp/p}
  - name: use
    inputs:
      parameters: [{name: v}]
    container:
      image: busybox
      args: ["{{inputs.parameters.v}}"]
"#;
    let script: Script = Box::new(|r: &PodRequest| {
        if r.template.name == "make" {
            Outcome {
                params: vec![("p".into(), "from-make".into())],
                ..ok()
            }
        } else {
            ok()
        }
    });
    let mut sim = Sim::new(yaml_wf(spec), script);
    sim.run(30);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    let node = sim.by_name("wf[1].use").expect("use");
    let req = &sim.pods[&node.id.expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec!["from-make".to_owned()])
    );
    let outputs = sim
        .status()
        .outputs
        .and_then(|o| o.parameters)
        .expect("outputs");
    assert_eq!(outputs[0].name, "shared");
    assert_eq!(outputs[0].value, Some(json!("from-make")));
}

#[test]
fn endless_recursion_is_an_error_not_a_stack_overflow() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: again
        template: main
"#;
    // A thread with a tokio worker's stack (2 MiB): 100 levels fit, growing on the heap.
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let mut sim = Sim::new(yaml_wf(spec), all_ok());
            sim.run(5);
            let deepest = sim
                .nodes()
                .values()
                .filter(|n| n.phase.as_deref() == Some("Error"))
                .filter_map(|n| n.message.clone())
                .collect::<Vec<_>>();
            (sim.phase(), sim.nodes().len(), deepest)
        })
        .expect("spawn");
    let (phase, nodes, errors) = handle.join().expect("no stack overflow");
    // The error of the deepest node fails every step group above it.
    assert_eq!(phase, "Failed");
    assert!(nodes > 100, "{nodes}");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("Maximum recursion depth exceeded"),
        "{errors:?}"
    );
}

// ---------------------------------------------------------------- invariants

#[test]
fn operate_is_deterministic() {
    let mut sim = Sim::new(conformance("dag-diamond.yaml"), all_ok());
    for _ in 0..4 {
        sim.pass();
        sim.kubelet();
    }
    let input = OperateInput {
        workflow: &sim.wf,
        observations: &sim.observations,
        templates: &sim.lookup,
        now: sim.now,
    };
    assert_eq!(operate(&input), operate(&input));
}

#[test]
fn a_pass_reaches_a_fixpoint() {
    // Applying a pass's status and running again with the same observations and time changes
    // nothing: the shell writes status only when something happened.
    for file in [
        "dag-diamond.yaml",
        "steps.yaml",
        "exit-handlers.yaml",
        "loops.yaml",
    ] {
        let mut sim = Sim::new(
            conformance(file),
            by_template(&[("intentional-fail", fail)]),
        );
        for _ in 0..12 {
            sim.pass();
            let again = operate(&OperateInput {
                workflow: &sim.wf,
                observations: &sim.observations,
                templates: &sim.lookup,
                now: sim.now,
            });
            assert_eq!(Some(&again.status), sim.wf.status.as_ref(), "{file}");
            sim.kubelet();
            sim.now = sim
                .now
                .checked_add(SignedDuration::from_secs(1))
                .expect("t");
        }
    }
}

#[test]
fn a_requested_pod_not_observed_is_requested_again_under_the_same_name() {
    let mut sim = Sim::new(conformance("hello-world.yaml"), all_ok());
    let first = sim.pass();
    let second = sim.pass();
    let name = |op: &Operation| match op.actions.as_slice() {
        [Action::CreatePod(r)] => r.pod_name.clone(),
        other => panic!("expected one CreatePod, got {other:?}"),
    };
    assert_eq!(name(&first), name(&second));
    assert_eq!(first.status.nodes, second.status.nodes);
}

#[test]
fn a_running_pod_that_vanishes_errors_the_node() {
    let mut sim = Sim::new(conformance("hello-world.yaml"), all_ok());
    sim.pass();
    sim.kubelet();
    sim.pass();
    sim.observations.clear();
    sim.pass();
    assert_eq!(sim.phase(), "Error");
    assert_eq!(sim.status().message.as_deref(), Some(reasons::POD_DELETED));
}

#[test]
fn a_finished_pod_without_its_report_keeps_the_node_running() {
    let mut sim = Sim::new(conformance("hello-world.yaml"), all_ok());
    sim.pass();
    let id = sim.wf.metadata.name.clone().expect("name");
    sim.observations.insert(
        id.clone(),
        PodObservation {
            pod_name: id.clone(),
            phase: PodPhase::Succeeded,
            message: None,
            started_at: Some(t0()),
            finished_at: Some(t0()),
            host_node_name: None,
            pod_ip: None,
            outputs: None,
            outputs_reported: false,
        },
    );
    sim.pass();
    assert_eq!(
        sim.by_name(&id).and_then(|n| n.phase),
        Some("Running".into())
    );
    if let Some(o) = sim.observations.get_mut(&id) {
        o.outputs_reported = true;
    }
    sim.pass();
    assert_eq!(sim.phase(), "Succeeded");
}

#[test]
fn a_completed_workflow_is_left_alone() {
    let mut sim = Sim::new(conformance("hello-world.yaml"), all_ok());
    sim.run(20);
    let before = sim.status();
    let op = sim.pass();
    assert_eq!(op.status, before);
    assert!(op.actions.is_empty());
    assert_eq!(op.requeue_after, None);
}

#[test]
fn completed_nodes_are_never_rerun() {
    let mut sim = Sim::new(conformance("steps.yaml"), all_ok());
    sim.run(40);
    // Forget the pods (a restart of cairn with pods garbage-collected): nothing is recreated.
    sim.observations.clear();
    sim.wf.status.as_mut().expect("status").phase = Some("Running".into());
    let op = sim.pass();
    assert!(op.actions.is_empty(), "{:?}", op.actions);
}

#[test]
fn invalid_workflows_fail_with_the_field_path() {
    let wf = wf_from_yaml(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: bad\nspec:\n  entrypoint: nope\n  templates:\n  - name: main\n    container:\n      image: busybox\n",
    );
    let mut sim = Sim::new(wf, all_ok());
    let op = sim.pass();
    assert_eq!(op.status.phase.as_deref(), Some("Failed"));
    let message = op.status.message.unwrap_or_default();
    assert!(
        message.starts_with("invalid spec: spec.entrypoint"),
        "{message}"
    );
    assert!(op.actions.is_empty());
}

#[test]
fn malformed_synchronization_fails_at_start_before_any_pod() {
    // Created with kubectl (no API validation): the operator refuses it before any pod.
    let wf = wf_from_yaml(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: locked\nspec:\n  entrypoint: main\n  synchronization:\n    mutexes: [{namespace: x}]\n  templates:\n  - name: main\n    container:\n      image: busybox\n",
    );
    let mut sim = Sim::new(wf, all_ok());
    let op = sim.pass();
    assert_eq!(op.status.phase.as_deref(), Some("Failed"));
    assert_eq!(
        op.status.message.as_deref(),
        Some("invalid spec: spec.synchronization.mutexes[0].name: expected a non-empty string")
    );
    assert!(op.actions.is_empty(), "{:?}", op.actions);
}

#[test]
fn missing_workflow_template_fails_at_start() {
    let mut sim = Sim::new(conformance("workflow-template-ref.yaml"), all_ok());
    let op = sim.pass();
    assert_eq!(op.status.phase.as_deref(), Some("Failed"));
    assert_eq!(
        op.status.message.as_deref(),
        Some(
            "invalid spec: spec.workflowTemplateRef.name: WorkflowTemplate 'workflow-template-submittable' not found"
        )
    );
}

// ---------------------------------------------------------------- features

fn yaml_wf(spec: &str) -> Workflow {
    wf_from_yaml(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  name: wf\nspec:\n{spec}"
    ))
}

const JOB_SPEC: &str = "  entrypoint: pi\n  templates:\n  - name: pi\n    resource:\n      action: create\n      setOwnerReference: true\n      successCondition: status.succeeded > 0\n      failureCondition: status.failed > 3\n      manifest: |\n        apiVersion: batch/v1\n        kind: Job\n        metadata:\n          name: pi-{{workflow.name}}\n        spec:\n          template:\n            spec:\n              restartPolicy: Never\n              containers: [{name: pi, image: perl}]\n";

fn seen(
    req: &crate::workflow::resource::ResourceRequest,
    live: Option<serde_json::Value>,
    error: Option<&str>,
    at: Timestamp,
) -> crate::workflow::resource::ResourceObservation {
    crate::workflow::resource::ResourceObservation {
        target: req.target.clone(),
        live,
        error: error.map(str::to_owned),
        observed_at: at,
    }
}

#[test]
fn resource_create_waits_on_its_conditions_and_polls_the_live_object() {
    use crate::workflow::resource::ResourceAction;
    let mut sim = Sim::new(yaml_wf(JOB_SPEC), all_ok());
    sim.pass();
    assert_eq!(sim.resource_requests.len(), 1);
    let create = sim.resource_requests[0].clone();
    assert_eq!(create.action, ResourceAction::Create);
    assert_eq!(create.target.name, "pi-wf");
    assert_eq!(create.target.namespace, "default");
    assert_eq!(create.manifest["metadata"]["namespace"], "default");
    assert!(create.set_owner_reference);
    assert_eq!(sim.nodes()["wf"].phase.as_deref(), Some("Pending"));
    assert_eq!(sim.nodes()["wf"].node_type.as_deref(), Some("Pod"));

    // No observation (the action failed transiently, or cairn restarted): asked again, the
    // same create (the shell takes an existing object as created).
    sim.pass();
    assert_eq!(sim.resource_requests.len(), 2);
    assert_eq!(sim.resource_requests[1], create);

    // Created, not finished: Running, no new action until the poll period has passed.
    sim.resources.insert(
        "wf".into(),
        seen(
            &create,
            Some(json!({"status": {"active": 1}})),
            None,
            sim.now,
        ),
    );
    let op = sim.pass();
    assert_eq!(sim.nodes()["wf"].phase.as_deref(), Some("Running"));
    assert_eq!(sim.resource_requests.len(), 2);
    assert_eq!(op.requeue_after, Some(SignedDuration::from_secs(5)));

    // A restart (no observation in memory) while waiting: the recorded object is read
    // again, the create is not replayed.
    let mut restarted = Sim::new(sim.wf.clone(), all_ok());
    restarted.now = sim.now;
    restarted.pass();
    assert_eq!(restarted.resource_requests.len(), 1);
    assert_eq!(restarted.resource_requests[0].action, ResourceAction::Get);
    assert_eq!(restarted.resource_requests[0].target, create.target);

    // Poll period over: a get of the object.
    sim.now += SignedDuration::from_secs(5);
    sim.pass();
    assert_eq!(sim.resource_requests.len(), 3);
    let poll = &sim.resource_requests[2];
    assert_eq!(poll.action, ResourceAction::Get);
    assert_eq!(poll.target, create.target);

    sim.resources.insert(
        "wf".into(),
        seen(
            &create,
            Some(json!({"status": {"succeeded": 1}})),
            None,
            sim.now,
        ),
    );
    sim.pass();
    assert_eq!(sim.nodes()["wf"].phase.as_deref(), Some("Succeeded"));
    assert_eq!(sim.phase(), "Succeeded");
    assert!(sim.created.is_empty(), "no pod for a resource template");
}

#[test]
fn resource_outcomes_set_the_node_phase_and_message() {
    let cases: Vec<(serde_json::Value, Option<&str>, &str, Option<&str>)> = vec![
        (
            json!({"status": {"failed": 4}}),
            None,
            "Failed",
            Some("failure condition 'status.failed>3' evaluated true"),
        ),
        (
            json!({"status": {"failed": 4, "succeeded": 1}}),
            None,
            "Failed",
            Some("failure condition 'status.failed>3' evaluated true"),
        ),
        (
            json!(null),
            Some("jobs.batch \"pi-wf\" is forbidden"),
            "Failed",
            Some("jobs.batch \"pi-wf\" is forbidden"),
        ),
        (json!({"status": {"succeeded": 2}}), None, "Succeeded", None),
    ];
    for (live, error, phase, message) in cases {
        let mut sim = Sim::new(yaml_wf(JOB_SPEC), all_ok());
        sim.pass();
        let req = sim.resource_requests[0].clone();
        let live = (!live.is_null()).then_some(live);
        sim.resources
            .insert("wf".into(), seen(&req, live, error, sim.now));
        sim.run(3);
        let node = &sim.nodes()["wf"];
        assert_eq!(node.phase.as_deref(), Some(phase), "{error:?}");
        assert_eq!(node.message.as_deref(), message);
        assert_eq!(sim.phase(), phase);
    }
}

#[test]
fn resource_outputs_come_from_the_live_object() {
    let spec = "  entrypoint: main\n  templates:\n  - name: main\n    steps:\n    - - name: make\n        template: make\n    - - name: read\n        template: read\n    - - name: use\n        template: use\n        arguments:\n          parameters:\n          - {name: v, value: '{{steps.read.outputs.parameters.value}}'}\n  - name: make\n    resource:\n      action: create\n      manifest: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata: {name: cm}\n        data: {k: hello}\n  - name: read\n    resource:\n      action: get\n      manifest: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata: {name: cm, namespace: other}\n    outputs:\n      parameters:\n      - name: value\n        valueFrom: {jsonPath: '{.data.k}'}\n      - name: name\n        valueFrom: {jqFilter: '.metadata.name'}\n  - name: use\n    inputs:\n      parameters: [{name: v}]\n    container:\n      image: busybox\n      command: [echo, '{{inputs.parameters.v}}']\n";
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    let cm = json!({"metadata": {"name": "cm"}, "data": {"k": "hello"}});
    for _ in 0..20 {
        sim.pass();
        for req in std::mem::take(&mut sim.resource_requests) {
            sim.resources.insert(
                req.node_id.clone(),
                seen(&req, Some(cm.clone()), None, sim.now),
            );
        }
        sim.kubelet();
        if sim.phase() == "Succeeded" {
            break;
        }
    }
    assert_eq!(sim.phase(), "Succeeded");
    let read = sim
        .nodes()
        .into_values()
        .find(|n| n.display_name.as_deref() == Some("read"))
        .expect("read node");
    let params: Vec<(String, serde_json::Value)> = read
        .outputs
        .and_then(|o| o.parameters)
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.name, p.value.unwrap_or_default()))
        .collect();
    assert_eq!(
        params,
        vec![
            ("value".into(), json!("hello")),
            ("name".into(), json!("\"cm\"")),
        ]
    );
    let echo = sim
        .pods
        .values()
        .find(|p| p.request.template.name == "use")
        .map(|p| p.request.template.container.clone());
    assert!(
        format!("{echo:?}").contains("hello"),
        "the next step sees the output: {echo:?}"
    );
}

#[test]
fn resource_template_errors_name_the_field() {
    for (resource, want) in [
        (
            "      action: create\n      manifest: |\n        apiVersion: v1\n        kind: ConfigMap\n",
            "template 'main': resource.manifest: metadata.name is missing",
        ),
        (
            "      action: frob\n      manifest: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata: {name: a}\n",
            "template 'main': resource.action 'frob' is invalid (expected get, create, apply, delete, replace or patch)",
        ),
        (
            "      action: create\n      manifestFrom:\n        artifact: {name: m}\n",
            "template 'main': resource.manifestFrom is not supported yet",
        ),
    ] {
        let wf = yaml_wf(&format!(
            "  entrypoint: main\n  templates:\n  - name: main\n    resource:\n{resource}"
        ));
        let mut sim = Sim::new(wf, all_ok());
        sim.run(5);
        assert_eq!(sim.phase(), "Error", "{want}");
        assert_eq!(sim.nodes()["wf"].message.as_deref(), Some(want));
        assert!(sim.resource_requests.is_empty());
    }
}

#[test]
fn resource_delete_succeeds_without_waiting() {
    let wf = yaml_wf(
        "  entrypoint: main\n  templates:\n  - name: main\n    resource:\n      action: delete\n      successCondition: never\n      manifest: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata: {name: gone}\n",
    );
    let mut sim = Sim::new(wf, all_ok());
    sim.pass();
    let req = sim.resource_requests[0].clone();
    assert_eq!(
        req.action,
        crate::workflow::resource::ResourceAction::Delete
    );
    sim.resources
        .insert("wf".into(), seen(&req, None, None, sim.now));
    sim.run(3);
    assert_eq!(sim.phase(), "Succeeded");
}

#[test]
fn stop_deletes_running_pods_and_runs_the_exit_handler() {
    let spec = "  entrypoint: main\n  onExit: bye\n  templates:\n  - name: main\n    container:\n      image: busybox\n      command: [sleep, '100']\n  - name: bye\n    container:\n      image: busybox\n      command: [echo, '{{workflow.status}}']\n";
    for (strategy, exit_runs) in [("Stop", true), ("Terminate", false)] {
        let script: Script = Box::new(|r: &PodRequest| {
            if r.template.name == "main" {
                Outcome { hang: true, ..ok() }
            } else {
                ok()
            }
        });
        let mut sim = Sim::new(yaml_wf(spec), script);
        sim.pass();
        sim.kubelet();
        sim.pass();
        sim.wf.spec.shutdown = Some(strategy.into());
        sim.run(20);
        assert_eq!(sim.phase(), "Failed", "{strategy}");
        assert_eq!(
            sim.status().message,
            Some(format!("Stopped with strategy '{strategy}'"))
        );
        assert_eq!(sim.deleted, vec!["wf".to_owned()], "{strategy}");
        let exit = sim.by_name("wf.onExit");
        assert_eq!(exit.is_some(), exit_runs, "{strategy}");
        if exit_runs {
            let req = sim
                .pods
                .values()
                .find(|p| p.request.template.name == "bye")
                .expect("exit pod");
            assert_eq!(
                req.request
                    .template
                    .container
                    .as_ref()
                    .and_then(|c| c.command.clone()),
                Some(vec!["echo".to_owned(), "Failed".to_owned()])
            );
        }
    }
}

#[test]
fn spec_suspend_starts_nothing() {
    let mut wf = conformance("steps.yaml");
    wf.spec.suspend = Some(true);
    let mut sim = Sim::new(wf, all_ok());
    let op = sim.pass();
    assert!(op.actions.is_empty());
    assert_eq!(op.status.phase.as_deref(), Some("Running"));
    sim.wf.spec.suspend = None;
    let op = sim.pass();
    assert_eq!(op.actions.len(), 1);
}

#[test]
fn workflow_deadline_fails_running_pods() {
    let spec = "  entrypoint: main\n  activeDeadlineSeconds: 5\n  templates:\n  - name: main\n    container:\n      image: busybox\n";
    let script: Script = Box::new(|_| Outcome { hang: true, ..ok() });
    let mut sim = Sim::new(yaml_wf(spec), script);
    let first = sim.pass();
    match first.actions.as_slice() {
        [Action::CreatePod(r)] => assert_eq!(r.active_deadline_seconds, Some(5)),
        other => panic!("{other:?}"),
    }
    assert_eq!(first.requeue_after, Some(SignedDuration::from_secs(6)));
    sim.run(20);
    assert_eq!(sim.phase(), "Failed");
    assert_eq!(sim.status().message.as_deref(), Some(reasons::DEADLINE));
}

#[test]
fn retry_gives_up_after_the_limit() {
    let spec = "  entrypoint: main\n  templates:\n  - name: main\n    retryStrategy:\n      limit: 2\n    container:\n      image: busybox\n      args: ['{{retries}}']\n";
    let mut sim = Sim::new(yaml_wf(spec), Box::new(|_| fail()));
    sim.run(40);
    assert_eq!(sim.phase(), "Failed");
    assert_eq!(
        sim.status().message.as_deref(),
        Some("No more retries left")
    );
    let args: Vec<String> = sim
        .pods
        .values()
        .filter_map(|p| {
            p.request
                .template
                .container
                .as_ref()
                .and_then(|c| c.args.clone())
        })
        .flatten()
        .collect();
    let mut args = args;
    args.sort();
    assert_eq!(args, vec!["0", "1", "2"]);
    assert!(sim.by_name("wf(2)").is_some());
}

#[test]
fn aggregated_loop_outputs_and_global_outputs() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: gen
        template: gen
        arguments:
          parameters: [{name: n, value: "{{item}}"}]
        withItems: [a, b]
    - - name: show
        template: show
        arguments:
          parameters:
          - {name: results, value: "{{steps.gen.outputs.result}}"}
          - {name: params, value: "{{steps.gen.outputs.parameters.p}}"}
  - name: gen
    inputs:
      parameters: [{name: n}]
    container:
      image: busybox
    outputs:
      parameters:
      - name: p
        globalName: last-p
        valueFrom: {path: /tmp/p}
  - name: show
    inputs:
      parameters: [{name: results}, {name: params}]
    container:
      image: busybox
      args: ["{{inputs.parameters.results}}", "{{inputs.parameters.params}}"]
"#;
    let script: Script = Box::new(|r: &PodRequest| {
        let n = r
            .template
            .inputs
            .as_ref()
            .and_then(|i| i.parameters.as_ref())
            .and_then(|p| p.first())
            .and_then(|p| p.value.clone())
            .map(|v| crate::workflow::types::any_string(&v))
            .unwrap_or_default();
        Outcome {
            result: Some(format!("r-{n}")),
            params: vec![("p".into(), format!("p-{n}"))],
            ..ok()
        }
    });
    let mut sim = Sim::new(yaml_wf(spec), script);
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    let show = sim.by_name("wf[1].show").expect("show");
    let req = &sim.pods[&show.id.expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec![
            r#"["r-a","r-b"]"#.to_owned(),
            r#"["p-a","p-b"]"#.to_owned()
        ])
    );
    // The container's result is referenced in the workflow: its pods capture stdout.
    assert!(req.capture_result);
    let outputs = sim
        .status()
        .outputs
        .and_then(|o| o.parameters)
        .expect("global outputs");
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].name, "last-p");
}

#[test]
fn dag_task_failure_fails_the_workflow_and_omits_dependents() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    dag:
      FAIL_FAST
      tasks:
      - {name: A, template: t}
      - {name: B, template: t, depends: A}
      - {name: C, template: t, depends: "A.Failed"}
  - name: t
    container: {image: busybox}
"#;
    for (fail_fast, snapshot) in [
        ("", "dag_failure_tree"),
        ("failFast: false", "dag_failure_no_fail_fast"),
    ] {
        let script: Script = Box::new(
            |r: &PodRequest| {
                if r.node_name == "wf.A" { fail() } else { ok() }
            },
        );
        let mut sim = Sim::new(yaml_wf(&spec.replace("FAIL_FAST", fail_fast)), script);
        sim.run(40);
        insta::assert_yaml_snapshot!(snapshot, sim.tree());
        // Target B's branch failed (A failed, B omitted): the DAG fails either way.
        assert_eq!(sim.phase(), "Failed");
        assert_eq!(
            sim.by_name("wf.B").and_then(|n| n.phase),
            Some("Omitted".into())
        );
        // failFast (the default) starts nothing once the DAG is certain to fail, as Argo's
        // docs say; without it C, which handles A's failure, runs.
        let c = sim.by_name("wf.C").and_then(|n| n.phase);
        if fail_fast.is_empty() {
            assert_eq!(c, None);
        } else {
            assert_eq!(c, Some("Succeeded".into()));
        }
    }
}

#[test]
fn sprintf_table() {
    for (format, n, want) in [
        ("testuser%02X", 10, "testuser0A"),
        ("%d", -5, "-5"),
        ("%05d", -42, "-0042"),
        ("%-4d|", 7, "7   |"),
        ("%x", 255, "ff"),
        ("100%%-%d", 3, "100%-3"),
        ("%+d", 3, "+3"),
        ("%o", 8, "10"),
    ] {
        assert_eq!(go_sprintf_int(format, n).as_deref(), Ok(want), "{format}");
    }
    assert!(go_sprintf_int("%s", 1).is_err());
    assert!(go_sprintf_int("%d %d", 1).is_err());
    assert!(go_sprintf_int("%", 1).is_err());
}

#[test]
fn item_description_table() {
    for (item, want) in [
        (json!("a"), "a"),
        (json!(60), "60"),
        (json!(true), "true"),
        (
            json!({"tag": "9.1", "image": "debian"}),
            "image:debian,tag:9.1",
        ),
        (json!([1, "x"]), r#"[1,"x"]"#),
        (json!({"a": {"b": 1}}), "a:b:1"),
    ] {
        assert_eq!(item_description(&item), want, "{item}");
    }
}

#[test]
fn resume_selector_table() {
    let mut wf = conformance("suspend-template.yaml");
    let mut nodes = BTreeMap::new();
    for (id, display, ty, phase) in [
        ("a", "approve", "Suspend", "Running"),
        ("b", "other", "Suspend", "Running"),
        ("c", "done", "Suspend", "Succeeded"),
        ("d", "pod", "Pod", "Running"),
    ] {
        nodes.insert(
            id.to_owned(),
            NodeStatus {
                id: Some(id.into()),
                name: Some(id.into()),
                display_name: Some(display.into()),
                node_type: Some(ty.into()),
                phase: Some(phase.into()),
                ..Default::default()
            },
        );
    }
    wf.status = Some(WorkflowStatus {
        nodes: Some(nodes),
        ..Default::default()
    });
    let phases = |s: WorkflowStatus| -> Vec<String> {
        s.nodes
            .unwrap_or_default()
            .values()
            .map(|n| n.phase.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        phases(resume(&wf, None, t0())),
        ["Succeeded", "Succeeded", "Succeeded", "Running"]
    );
    assert_eq!(
        phases(resume(&wf, Some("displayName=approve"), t0())),
        ["Succeeded", "Running", "Succeeded", "Running"]
    );
    assert_eq!(
        phases(resume(&wf, Some("displayName!=approve"), t0())),
        ["Running", "Succeeded", "Succeeded", "Running"]
    );
    assert_eq!(
        phases(resume(&wf, Some("bogus"), t0())),
        ["Running", "Running", "Succeeded", "Running"]
    );
}

#[test]
fn a_hundred_task_dag_completes_with_one_pod_per_task() {
    let mut spec = String::from(
        "  entrypoint: main\n  templates:\n  - name: t\n    container: {image: busybox}\n  - name: main\n    dag:\n      tasks:\n",
    );
    for i in 0..100 {
        if i < 10 {
            spec.push_str(&format!("      - {{name: t{i}, template: t}}\n"));
        } else {
            spec.push_str(&format!(
                "      - {{name: t{i}, template: t, depends: t{}}}\n",
                i - 10
            ));
        }
    }
    let mut sim = Sim::new(yaml_wf(&spec), all_ok());
    sim.run(400);
    assert_eq!(sim.phase(), "Succeeded");
    assert_eq!(sim.created.len(), 100);
    // Ten chains of ten: each level runs in parallel, so the whole takes ~2 passes per level.
    assert!(sim.passes <= 25, "{}", sim.passes);
}

#[test]
fn inline_templates_run_with_their_own_inputs_and_nest() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - name: a
        inline:
          script:
            image: python:alpine3.23
            command: [python]
            source: "print(7)"
      - name: b
        depends: a
        arguments:
          parameters: [{name: x, value: "{{tasks.a.outputs.result}}"}]
        inline:
          inputs:
            parameters: [{name: x}]
          steps:
          - - name: c
              arguments:
                parameters: [{name: val, value: "{{inputs.parameters.x}}"}]
              inline:
                inputs: {parameters: [{name: val}]}
                container: {image: busybox, command: [echo], args: ["val={{inputs.parameters.val}}"]}
"#;
    let script: Script = Box::new(|r: &PodRequest| {
        if r.node_name == "wf.a" {
            with_result("7")
        } else {
            ok()
        }
    });
    let mut sim = Sim::new(yaml_wf(spec), script);
    sim.run(40);
    assert_eq!(
        sim.phase(),
        "Succeeded",
        "{:?} {:#?}",
        sim.status().message,
        sim.tree()
    );
    let a = sim.by_name("wf.a").expect("a");
    assert_eq!(a.node_type.as_deref(), Some("Pod"));
    // An inline template has no name: the node names none and the pod is `<wf>-<hash>`.
    assert_eq!(a.template_name, None);
    let a_pod = &sim.pods[&a.id.clone().expect("id")].request.pod_name;
    assert_eq!(a_pod, &crate::workflow::node::pod_name("wf", "", "wf.a"));
    let b = sim.by_name("wf.b").expect("b");
    assert_eq!(b.node_type.as_deref(), Some("Steps"));
    let c = sim.by_name("wf.b[0].c").expect("c");
    let req = &sim.pods[&c.id.expect("id")].request;
    assert_eq!(
        req.template.container.as_ref().and_then(|c| c.args.clone()),
        Some(vec!["val=7".to_owned()])
    );
}

#[test]
fn inline_template_that_is_not_a_template_fails_the_workflow_at_start() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: a
        inline: {container: "busybox"}
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(10);
    assert_eq!(sim.phase(), "Failed", "{:#?}", sim.tree());
    let message = sim.status().message.unwrap_or_default();
    assert!(
        message.contains("spec.templates[0].steps[0][0].inline: expected a template"),
        "{message}"
    );
    assert!(sim.created.is_empty());
}

fn with_config_map(sim: &mut Sim, name: &str, data: &[(&str, &str)]) {
    sim.lookup.config_maps.insert(
        ("default".to_owned(), name.to_owned()),
        data.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
}

fn pod_args(sim: &Sim, node: &str) -> Option<Vec<String>> {
    let n = sim.by_name(node)?;
    let req = &sim.pods.get(&n.id?)?.request;
    req.template.container.as_ref().and_then(|c| c.args.clone())
}

const CONFIG_MAP_SPEC: &str = r#"  entrypoint: main
  arguments:
    parameters:
    - name: greeting
      valueFrom: {configMapKeyRef: {name: params, key: greeting}}
  templates:
  - name: main
    steps:
    - - name: own
        template: show
    - - name: passed
        template: show
        arguments:
          parameters: [{name: msg, value: "given"}]
    - - name: redirected
        template: show
        arguments:
          parameters:
          - name: msg
            valueFrom: {configMapKeyRef: {name: params, key: other}}
  - name: show
    inputs:
      parameters:
      - name: msg
        default: "unused"
        valueFrom: {configMapKeyRef: {name: params, key: msg}}
    container:
      image: busybox
      command: [echo]
      args: ["{{workflow.parameters.greeting}}", "{{inputs.parameters.msg}}"]
"#;

#[test]
fn config_map_parameters_feed_globals_and_inputs() {
    let mut sim = Sim::new(yaml_wf(CONFIG_MAP_SPEC), all_ok());
    with_config_map(
        &mut sim,
        "params",
        &[
            ("greeting", "hello"),
            ("msg", "from-cm"),
            ("other", "second"),
        ],
    );
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    let args = |node| pod_args(&sim, node).unwrap_or_default();
    assert_eq!(args("wf[0].own"), ["hello", "from-cm"]);
    // A caller's value wins over the input's ConfigMap reference...
    assert_eq!(args("wf[1].passed"), ["hello", "given"]);
    // ...and a caller's own reference replaces the input's.
    assert_eq!(args("wf[2].redirected"), ["hello", "second"]);
    let own = sim.by_name("wf[0].own").expect("own");
    let msg = own
        .inputs
        .and_then(|i| i.parameters)
        .and_then(|p| p.into_iter().find(|p| p.name == "msg"))
        .and_then(|p| p.value);
    assert_eq!(msg, Some(json!("from-cm")));
}

#[test]
fn missing_config_map_key_errors_the_node_unless_a_default_is_given() {
    let mut sim = Sim::new(yaml_wf(CONFIG_MAP_SPEC), all_ok());
    with_config_map(&mut sim, "params", &[("greeting", "hello"), ("other", "x")]);
    sim.run(40);
    assert_eq!(sim.phase(), "Failed", "{:#?}", sim.tree());
    let own = sim.by_name("wf[0].own").expect("own");
    assert_eq!(own.phase.as_deref(), Some("Error"));
    assert_eq!(
        own.message.as_deref(),
        Some(
            "template 'show': unable to retrieve inputs.parameters.msg from ConfigMap: \
             ConfigMap 'params' does not have the key 'msg'"
        )
    );
    assert!(sim.created.is_empty());

    let with_default = CONFIG_MAP_SPEC.replace(
        "{configMapKeyRef: {name: params, key: msg}}",
        "{configMapKeyRef: {name: params, key: msg}, default: fallback}",
    );
    let mut sim = Sim::new(yaml_wf(&with_default), all_ok());
    with_config_map(&mut sim, "params", &[("greeting", "hello"), ("other", "x")]);
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    assert_eq!(
        pod_args(&sim, "wf[0].own").unwrap_or_default(),
        ["hello", "fallback"]
    );
}

#[test]
fn missing_config_map_of_a_workflow_argument_fails_the_workflow() {
    let mut sim = Sim::new(yaml_wf(CONFIG_MAP_SPEC), all_ok());
    sim.run(5);
    assert_eq!(sim.phase(), "Failed");
    let message = sim.status().message.unwrap_or_default();
    assert!(
        message.contains(
            "spec.arguments.parameters[0] (greeting): ConfigMap 'params' does not exist in \
             namespace 'default' or lacks the label workflows.argoproj.io/configmap-type: Parameter"
        ),
        "{message}"
    );
    assert!(sim.created.is_empty());
}

#[test]
fn composite_output_artifacts_from_a_tag_and_from_an_expression() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: pick
        template: pick
    - - name: use
        template: use
        arguments:
          artifacts:
          - name: data
            from: "{{steps.pick.outputs.artifacts.chosen}}"
  - name: pick
    dag:
      tasks:
      - {name: flip, template: flip}
      - {name: heads, template: make, depends: flip}
      - {name: tails, template: make, depends: flip}
    outputs:
      artifacts:
      - name: chosen
        fromExpression: "tasks.flip.outputs.result == 'heads' ? tasks.heads.outputs.artifacts.out : tasks.tails.outputs.artifacts.out"
      - name: last
        from: "{{tasks.tails.outputs.artifacts.out}}"
  - name: flip
    script: {image: python, command: [python], source: "print('heads')"}
  - name: make
    container: {image: busybox}
    outputs:
      artifacts:
      - {name: out, path: /tmp/out}
  - name: use
    inputs:
      artifacts:
      - {name: data, path: /in/data}
    container: {image: busybox}
"#;
    let script: Script = Box::new(|r: &PodRequest| {
        if r.template.name == "flip" {
            with_result("heads")
        } else {
            ok()
        }
    });
    let mut sim = Sim::new(yaml_wf(spec), script);
    // The executors of `heads` and `tails` report where they stored their artifact.
    for _ in 0..40 {
        let op = sim.pass();
        if op.status.phase.as_deref() != Some("Running") {
            break;
        }
        sim.kubelet();
        for (id, o) in sim.observations.iter_mut() {
            let node = &sim.pods[id].request.node_name;
            if o.outputs_reported && sim.pods[id].request.template.name == "make" {
                let task = node.rsplit('.').next().unwrap_or("").to_owned();
                let outputs = o.outputs.get_or_insert_with(Outputs::default);
                outputs.artifacts = Some(vec![json!({
                    "name": "out", "path": "/tmp/out", "s3": {"key": format!("{task}.tgz")}
                })]);
            }
        }
        sim.now = sim
            .now
            .checked_add(SignedDuration::from_secs(1))
            .expect("t");
    }
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    let pick = sim.by_name("wf[0].pick").expect("pick");
    let arts = pick.outputs.and_then(|o| o.artifacts).expect("artifacts");
    assert_eq!(
        arts,
        vec![
            json!({"name": "chosen", "path": "/tmp/out", "s3": {"key": "heads.tgz"}}),
            json!({"name": "last", "path": "/tmp/out", "s3": {"key": "tails.tgz"}}),
        ]
    );
    let node = sim.by_name("wf[1].use").expect("use");
    let req = &sim.pods[&node.id.expect("id")].request;
    let inputs = req
        .template
        .inputs
        .as_ref()
        .and_then(|i| i.artifacts.clone())
        .expect("artifacts");
    assert_eq!(
        inputs,
        vec![json!({"name": "data", "path": "/in/data", "s3": {"key": "heads.tgz"}})]
    );
}

#[test]
fn composite_output_artifact_that_names_no_artifact_errors_unless_optional() {
    let spec = r#"  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: flip
        template: flip
    outputs:
      artifacts:
      - name: chosen
        fromExpression: "steps.flip.outputs.result"
  - name: flip
    script: {image: python, command: [python], source: "print('heads')"}
"#;
    let script: Script = Box::new(|_| with_result("heads"));
    let mut sim = Sim::new(yaml_wf(spec), script);
    sim.run(20);
    let root = sim.by_name("wf").expect("root");
    assert_eq!(root.phase.as_deref(), Some("Error"), "{:#?}", sim.tree());
    assert_eq!(
        root.message.as_deref(),
        Some("template 'main': output artifact 'chosen': 'heads' is not an artifact")
    );
    let optional = spec.replace(
        "- name: chosen\n",
        "- name: chosen\n        optional: true\n",
    );
    let mut sim = Sim::new(yaml_wf(&optional), Box::new(|_| with_result("heads")));
    sim.run(20);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    let root = sim.by_name("wf").expect("root");
    assert_eq!(root.outputs.and_then(|o| o.artifacts), None);
}

const SECRET_SPEC: &str = r#"  entrypoint: main
  arguments:
    parameters:
    - name: token
      valueFrom: {secretKeyRef: {name: creds, key: token}}
  templates:
  - name: main
    steps:
    - - name: own
        template: show
    - - name: redirected
        template: show
        arguments:
          parameters:
          - name: msg
            valueFrom: {secretKeyRef: {name: creds, key: other}}
  - name: show
    inputs:
      parameters:
      - name: msg
        valueFrom: {secretKeyRef: {name: creds, key: msg}}
    container:
      image: busybox
      command: [echo]
      args: ["{{workflow.parameters.token}}", "{{inputs.parameters.msg}}"]
"#;

fn with_secret(sim: &mut Sim, name: &str, data: &[(&str, &str)]) {
    sim.lookup.secrets.insert(
        ("default".to_owned(), name.to_owned()),
        data.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
}

#[test]
fn secret_parameters_feed_globals_and_inputs_and_sit_in_the_node_inputs() {
    let mut sim = Sim::new(yaml_wf(SECRET_SPEC), all_ok());
    with_secret(
        &mut sim,
        "creds",
        &[
            ("token", "t0k"),
            ("msg", "from-secret"),
            ("other", "second"),
        ],
    );
    sim.run(40);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
    let args = |node| pod_args(&sim, node).unwrap_or_default();
    assert_eq!(args("wf[0].own"), ["t0k", "from-secret"]);
    assert_eq!(args("wf[1].redirected"), ["t0k", "second"]);
    // As in Argo, the resolved value is the node's input value in the status.
    let own = sim.by_name("wf[0].own").expect("own");
    let msg = own
        .inputs
        .and_then(|i| i.parameters)
        .and_then(|p| p.into_iter().find(|p| p.name == "msg"))
        .and_then(|p| p.value);
    assert_eq!(msg, Some(json!("from-secret")));
}

#[test]
fn missing_secret_key_errors_the_node_and_a_missing_secret_fails_the_workflow() {
    let mut sim = Sim::new(yaml_wf(SECRET_SPEC), all_ok());
    with_secret(&mut sim, "creds", &[("token", "t0k"), ("other", "x")]);
    sim.run(40);
    assert_eq!(sim.phase(), "Failed", "{:#?}", sim.tree());
    let own = sim.by_name("wf[0].own").expect("own");
    assert_eq!(own.phase.as_deref(), Some("Error"));
    assert_eq!(
        own.message.as_deref(),
        Some(
            "template 'show': unable to retrieve inputs.parameters.msg from Secret: \
             Secret 'creds' does not have the key 'msg'"
        )
    );
    assert!(sim.created.is_empty());

    let mut sim = Sim::new(yaml_wf(SECRET_SPEC), all_ok());
    sim.run(10);
    assert_eq!(sim.phase(), "Failed", "{:#?}", sim.tree());
    let message = sim.status().message.unwrap_or_default();
    assert!(
        message.contains(
            "spec.arguments.parameters[0] (token): Secret 'creds' does not exist in namespace \
             'default'"
        ),
        "{message}"
    );
    assert!(sim.created.is_empty());
}

#[test]
fn a_bad_labels_from_or_pod_disruption_budget_fails_the_workflow_at_start() {
    let spec = r#"  entrypoint: main
  workflowMetadata:
    labelsFrom:
      size: {expression: "1 + 1"}
  templates:
  - name: main
    container: {image: busybox}
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(10);
    assert_eq!(sim.phase(), "Failed", "{:#?}", sim.tree());
    let message = sim.status().message.unwrap_or_default();
    assert!(
        message.contains("spec.workflowMetadata.labelsFrom.size.expression")
            && message.contains("must be a string"),
        "{message}"
    );
    assert!(sim.created.is_empty());

    let spec = r#"  entrypoint: main
  podDisruptionBudget: {minAvailable: [1]}
  templates:
  - name: main
    container: {image: busybox}
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(10);
    assert_eq!(sim.phase(), "Failed", "{:#?}", sim.tree());
    let message = sim.status().message.unwrap_or_default();
    assert!(message.contains("spec.podDisruptionBudget"), "{message}");

    let spec = r#"  entrypoint: main
  podDisruptionBudget: {minAvailable: 1}
  workflowMetadata:
    labelsFrom:
      by-name: {expression: "workflow.name"}
  templates:
  - name: main
    container: {image: busybox}
"#;
    let mut sim = Sim::new(yaml_wf(spec), all_ok());
    sim.run(20);
    assert_eq!(sim.phase(), "Succeeded", "{:#?}", sim.tree());
}
