//! The operator with a shared lock table: several workflows driven pass by pass against one
//! [`LockTable`], pods advanced by a scripted kubelet (Running on the pass after creation,
//! Succeeded with the executor's report on the next). Test data for pure functions.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::*;
use crate::workflow::node::{PodObservation, PodPhase};
use crate::workflow::sync::{Gate, LockTable, SemaphoreConfig};
use crate::workflow::types::{ClusterWorkflowTemplate, Outputs, WorkflowTemplate};
use crate::workflow::validate::ConfigMapValue;

/// No stored templates; semaphore ConfigMaps from a map.
#[derive(Default)]
struct World {
    /// (namespace, name, key) → value.
    config_maps: BTreeMap<(String, String, String), String>,
}

impl TemplateLookup for World {
    fn workflow_template(&self, _: &str, _: &str) -> Option<WorkflowTemplate> {
        None
    }
    fn cluster_workflow_template(&self, _: &str) -> Option<ClusterWorkflowTemplate> {
        None
    }
}

impl SemaphoreConfig for World {
    fn value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
        match self
            .config_maps
            .get(&(namespace.into(), name.into(), key.into()))
        {
            Some(v) => ConfigMapValue::Found(v.clone()),
            None => ConfigMapValue::NoConfigMap,
        }
    }
}

/// One workflow with its pods.
struct Run {
    wf: Workflow,
    observations: Observations,
    /// node id → passes since creation.
    pods: BTreeMap<String, (String, usize)>,
    /// Every pod ever created.
    created: Vec<String>,
    last: Option<Operation>,
}

struct Cluster {
    world: World,
    table: LockTable,
    runs: Vec<Run>,
    now: Timestamp,
    /// Workflows woken by the last pass.
    woken: Vec<String>,
}

fn workflow(yaml: &str, created_secs: i64) -> Workflow {
    let mut wf: Workflow = serde_saphyr::from_str(yaml).expect("Workflow YAML");
    wf.metadata.namespace = Some("ns".into());
    wf.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        t0().checked_add(SignedDuration::from_secs(created_secs))
            .expect("time"),
    ));
    wf
}

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().expect("time")
}

impl Cluster {
    fn new(workflows: Vec<Workflow>) -> Cluster {
        Cluster {
            world: World::default(),
            table: LockTable::new(),
            runs: workflows
                .into_iter()
                .map(|wf| Run {
                    wf,
                    observations: Observations::new(),
                    pods: BTreeMap::new(),
                    created: Vec::new(),
                    last: None,
                })
                .collect(),
            now: t0(),
            woken: Vec::new(),
        }
    }

    /// One reconcile of workflow `i`.
    fn pass(&mut self, i: usize) -> Operation {
        let run = &mut self.runs[i];
        let mut gate = Gate::new(&mut self.table, &self.world);
        let op = operate_locked(
            &OperateInput {
                workflow: &run.wf,
                observations: &run.observations,
                templates: &self.world,
                now: self.now,
            },
            &Default::default(),
            &mut gate,
        );
        self.woken = gate.woken.into_iter().collect();
        run.wf.status = Some(op.status.clone());
        for a in &op.actions {
            if let Action::CreatePod(req) = a
                && !run.pods.contains_key(&req.node_id)
            {
                run.created.push(req.pod_name.clone());
                run.pods
                    .insert(req.node_id.clone(), (req.pod_name.clone(), 0));
            }
        }
        run.last = Some(op.clone());
        op
    }

    /// The kubelet advances every pod of workflow `i` one stage.
    fn kubelet(&mut self, i: usize) {
        let now = self.now;
        let run = &mut self.runs[i];
        for (id, (pod, stage)) in run.pods.iter_mut() {
            let (phase, reported) = match stage {
                0 => (PodPhase::Running, false),
                _ => (PodPhase::Succeeded, true),
            };
            run.observations.insert(
                id.clone(),
                PodObservation {
                    pod_name: pod.clone(),
                    phase,
                    message: None,
                    started_at: Some(now),
                    finished_at: reported.then_some(now),
                    host_node_name: None,
                    pod_ip: None,
                    outputs: reported.then(|| Outputs {
                        exit_code: Some("0".into()),
                        ..Default::default()
                    }),
                    outputs_reported: reported,
                },
            );
            *stage += 1;
        }
        self.now = self
            .now
            .checked_add(SignedDuration::from_secs(1))
            .expect("time");
    }

    /// Passes and kubelet steps of workflow `i` until it completes (bounded).
    fn finish(&mut self, i: usize) {
        for _ in 0..20 {
            if self.phase(i) == "Succeeded" {
                return;
            }
            self.pass(i);
            self.kubelet(i);
        }
        assert_eq!(self.phase(i), "Succeeded");
    }

    fn status(&self, i: usize) -> WorkflowStatus {
        self.runs[i].wf.status.clone().unwrap_or_default()
    }

    fn phase(&self, i: usize) -> String {
        self.status(i).phase.unwrap_or_default()
    }

    fn sync(&self, i: usize) -> Value {
        self.status(i)
            .extra
            .get("synchronization")
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn node_by_display(&self, i: usize, display: &str) -> NodeStatus {
        self.status(i)
            .nodes
            .unwrap_or_default()
            .into_values()
            .find(|n| n.display_name.as_deref() == Some(display))
            .unwrap_or_else(|| panic!("no node {display}"))
    }
}

const WF_MUTEX: &str = "
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  entrypoint: main
  synchronization:
    mutexes: [{name: deploy}]
  templates:
  - name: main
    container: {image: busybox}
";

fn wf_mutex(name: &str, created: i64) -> Workflow {
    workflow(&WF_MUTEX.replace("NAME", name), created)
}

#[test]
fn a_workflow_level_mutex_runs_one_workflow_at_a_time() {
    let mut c = Cluster::new(vec![wf_mutex("first", 0), wf_mutex("second", 1)]);
    let op = c.pass(0);
    assert_eq!(op.status.phase.as_deref(), Some("Running"));
    assert_eq!(op.actions.len(), 1);
    assert_eq!(
        c.sync(0),
        json!({"mutex": {"holding": [{"mutex": "ns/Mutex/deploy", "holder": "ns/first"}]}})
    );

    let op = c.pass(1);
    assert_eq!(op.status.phase.as_deref(), Some("Pending"));
    assert_eq!(
        op.status.message.as_deref(),
        Some("Waiting for ns/Mutex/deploy lock. Lock status: 0/1")
    );
    assert!(op.actions.is_empty());
    assert!(op.status.started_at.is_none());
    assert_eq!(op.requeue_after, Some(SignedDuration::from_secs(30)));
    assert_eq!(
        c.sync(1),
        json!({"mutex": {"waiting": [{"mutex": "ns/Mutex/deploy", "holder": "ns/first"}]}})
    );
    // Waiting again changes nothing.
    assert_eq!(c.pass(1).status, op.status);

    // The first completes: it releases, holds nothing any more, and wakes the second.
    for _ in 0..10 {
        c.pass(0);
        if c.phase(0) == "Succeeded" {
            break;
        }
        c.kubelet(0);
        assert_eq!(c.pass(1).status.phase.as_deref(), Some("Pending"));
    }
    assert_eq!(c.phase(0), "Succeeded");
    assert_eq!(c.sync(0), Value::Null);
    assert_eq!(c.woken, ["ns/second"]);

    let op = c.pass(1);
    assert_eq!(op.status.phase.as_deref(), Some("Running"));
    assert_eq!(op.status.message, None);
    assert_eq!(op.actions.len(), 1);
    assert_eq!(
        c.sync(1),
        json!({"mutex": {"holding": [{"mutex": "ns/Mutex/deploy", "holder": "ns/second"}]}})
    );
    c.finish(1);
    assert_eq!(c.sync(1), Value::Null);
    assert!(c.table.holders("ns/Mutex/deploy").is_empty());
}

#[test]
fn waiting_workflows_go_by_priority_then_age() {
    let mut urgent = wf_mutex("urgent", 5);
    urgent.spec.extra.insert("priority".into(), json!(10));
    let mut c = Cluster::new(vec![
        wf_mutex("holder", 0),
        wf_mutex("older", 1),
        urgent,
        wf_mutex("younger", 2),
    ]);
    c.pass(0);
    c.pass(3);
    c.pass(1);
    c.pass(2);
    assert_eq!(
        c.table.waiters("ns/Mutex/deploy"),
        ["ns/urgent", "ns/older", "ns/younger"]
    );
    c.finish(0);
    assert_eq!(c.woken, ["ns/urgent"]);
    // The older one, reconciled first, still waits: the slot is the urgent one's.
    assert_eq!(c.pass(1).status.phase.as_deref(), Some("Pending"));
    assert_eq!(c.pass(2).status.phase.as_deref(), Some("Running"));
}

const TMPL_SEMAPHORE: &str = "
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: loop}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: work
        template: limited
        withItems: [a, b, c]
  - name: limited
    synchronization:
      semaphores:
      - configMapKeyRef: {name: limits, key: template}
    container: {image: busybox}
";

#[test]
fn a_template_level_semaphore_limits_the_nodes_of_a_loop() {
    let mut c = Cluster::new(vec![workflow(TMPL_SEMAPHORE, 0)]);
    c.world.config_maps.insert(
        ("ns".into(), "limits".into(), "template".into()),
        "2".into(),
    );
    let op = c.pass(0);
    assert_eq!(op.status.phase.as_deref(), Some("Running"));
    assert_eq!(c.runs[0].created.len(), 2, "{:?}", op.actions);
    let waiting = c.node_by_display(0, "work(2:c)");
    assert_eq!(waiting.phase.as_deref(), Some("Pending"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("Waiting for ns/ConfigMap/limits/template lock. Lock status: 0/2")
    );
    let sync = c.sync(0);
    let holders = sync["semaphore"]["holding"][0]["holders"]
        .as_array()
        .expect("holders")
        .len();
    assert_eq!(holders, 2);
    assert_eq!(
        sync["semaphore"]["waiting"][0]["semaphore"],
        "ns/ConfigMap/limits/template"
    );
    assert_eq!(op.requeue_after, Some(SignedDuration::from_secs(30)));

    // Never more than two pods of the template unfinished at once.
    for _ in 0..20 {
        if c.phase(0) == "Succeeded" {
            break;
        }
        c.kubelet(0);
        c.pass(0);
        let unfinished = c.runs[0]
            .observations
            .values()
            .filter(|o| o.phase != PodPhase::Succeeded)
            .count()
            + c.runs[0]
                .pods
                .keys()
                .filter(|id| !c.runs[0].observations.contains_key(*id))
                .count();
        assert!(unfinished <= 2, "{unfinished} pods at once");
    }
    assert_eq!(c.phase(0), "Succeeded");
    assert_eq!(c.runs[0].created.len(), 3);
    assert_eq!(c.sync(0), Value::Null);
    let third = c.node_by_display(0, "work(2:c)");
    assert_eq!(third.phase.as_deref(), Some("Succeeded"));
    assert_eq!(third.message, None);
}

const TMPL_MUTEX: &str = "
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: NAME}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: locked
        template: critical
  - name: critical
    synchronization:
      mutex: {name: critical}
    container: {image: busybox}
";

#[test]
fn a_template_level_mutex_is_held_by_the_node_and_released_when_it_ends() {
    let mut c = Cluster::new(vec![
        workflow(&TMPL_MUTEX.replace("NAME", "one"), 0),
        workflow(&TMPL_MUTEX.replace("NAME", "two"), 1),
    ]);
    c.pass(0);
    let op = c.pass(1);
    // The workflow runs; its node waits.
    assert_eq!(op.status.phase.as_deref(), Some("Running"));
    assert!(op.actions.is_empty());
    let node = c.node_by_display(1, "locked");
    assert_eq!(node.node_type.as_deref(), Some("Pod"));
    assert_eq!(
        node.message.as_deref(),
        Some("Waiting for ns/Mutex/critical lock. Lock status: 0/1")
    );
    let holder = c.node_by_display(0, "locked").id.expect("id");
    assert_eq!(
        c.sync(0),
        json!({"mutex": {"holding": [{"mutex": "ns/Mutex/critical", "holder": format!("ns/one/{holder}")}]}})
    );
    assert_eq!(
        c.sync(1)["mutex"]["waiting"][0]["holder"],
        json!(format!("ns/one/{holder}"))
    );
    // The node ends: the lock is released in the same pass, before the workflow ends.
    c.kubelet(0);
    c.pass(0);
    c.kubelet(0);
    c.pass(0);
    assert_eq!(
        c.node_by_display(0, "locked").phase.as_deref(),
        Some("Succeeded")
    );
    assert_eq!(c.woken, ["ns/two"]);
    let op = c.pass(1);
    assert_eq!(op.actions.len(), 1);
    let node = c.node_by_display(1, "locked");
    assert_eq!(node.phase.as_deref(), Some("Pending"));
    assert_eq!(node.message, None);
    c.finish(0);
    c.finish(1);
    assert!(c.table.holders("ns/Mutex/critical").is_empty());
}

#[test]
fn an_unreadable_semaphore_fails_the_workflow_or_errors_the_node() {
    let wf_level = workflow(
        "
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf}
spec:
  entrypoint: main
  synchronization:
    semaphore: {configMapKeyRef: {name: missing, key: k}}
  templates:
  - name: main
    container: {image: busybox}
",
        0,
    );
    let mut c = Cluster::new(vec![wf_level, workflow(TMPL_SEMAPHORE, 0)]);
    let op = c.pass(0);
    assert_eq!(op.status.phase.as_deref(), Some("Failed"));
    assert_eq!(
        op.status.message.as_deref(),
        Some("invalid spec: semaphore ns/ConfigMap/missing/k: the ConfigMap does not exist")
    );
    let op = c.pass(1);
    assert!(op.actions.is_empty());
    let node = c.node_by_display(1, "work(0:a)");
    assert_eq!(node.phase.as_deref(), Some("Error"));
    assert_eq!(
        node.message.as_deref(),
        Some(
            "template 'limited': synchronization: semaphore ns/ConfigMap/limits/template: the \
             ConfigMap does not exist"
        )
    );
}

#[test]
fn a_node_stopped_while_waiting_never_runs_and_leaves_the_queue() {
    let mut c = Cluster::new(vec![
        workflow(&TMPL_MUTEX.replace("NAME", "one"), 0),
        workflow(&TMPL_MUTEX.replace("NAME", "two"), 1),
    ]);
    c.pass(0);
    c.pass(1);
    assert_eq!(c.table.waiters("ns/Mutex/critical").len(), 1);
    c.runs[1].wf.spec.shutdown = Some("Stop".into());
    for _ in 0..5 {
        c.pass(1);
    }
    assert_eq!(c.phase(1), "Failed");
    assert!(c.runs[1].created.is_empty());
    assert!(c.table.waiters("ns/Mutex/critical").is_empty());
    assert_eq!(c.sync(1), Value::Null);
    assert_eq!(
        c.node_by_display(1, "locked").message.as_deref(),
        Some("Stopped with strategy 'Stop'")
    );
}

#[test]
fn a_lone_operate_grants_free_locks_from_its_own_table() {
    let wf = wf_mutex("alone", 0);
    let op = operate(&OperateInput {
        workflow: &wf,
        observations: &Observations::new(),
        templates: &World::default(),
        now: t0(),
    });
    assert_eq!(op.status.phase.as_deref(), Some("Running"));
    assert_eq!(op.actions.len(), 1);
}
