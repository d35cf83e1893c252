//! DAG scheduling tests: validation, then the state machine driven step by step, from the
//! conformance manifests and from small inline DAGs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::*;
use crate::workflow::types::Workflow;
use NodePhase::{Daemoned, Error, Failed, Pending, Running, Skipped, Succeeded};

/// A conformance manifest from `../shared/conformance/workflows`.
fn conformance(file: &str) -> Workflow {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/workflows")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("conformance manifest");
    serde_saphyr::from_str(&text).expect("manifest parses as a Workflow")
}

fn template<'a>(wf: &'a Workflow, name: &str) -> &'a Template {
    wf.spec
        .templates
        .as_ref()
        .and_then(|ts| ts.iter().find(|t| t.name == name))
        .expect("template exists")
}

/// A DAG from the YAML of a `dag:` field.
fn dag_yaml(yaml: &str) -> Result<Dag, DagError> {
    let spec: DagTemplate = serde_saphyr::from_str(yaml).expect("dag yaml");
    Dag::new("t", &spec, None)
}

fn dag(yaml: &str) -> Dag {
    dag_yaml(yaml).expect("valid dag")
}

/// Drives [`plan`] the way a controller would: starts become Running, skips and omissions are
/// recorded, loops expand to `items[task]` children (2 by default), and `when` results come
/// from `when`.
struct Sim {
    dag: Dag,
    states: TaskStates,
    opts: PlanOptions,
    items: BTreeMap<String, usize>,
    when: BTreeMap<String, bool>,
    trace: Vec<Step>,
}

#[derive(Serialize)]
struct Step {
    after: String,
    decision: Decision,
}

impl Sim {
    fn new(dag: Dag) -> Self {
        Sim {
            dag,
            states: TaskStates::new(),
            opts: PlanOptions::default(),
            items: BTreeMap::new(),
            when: BTreeMap::new(),
            trace: Vec::new(),
        }
    }

    fn opts(mut self, opts: PlanOptions) -> Self {
        self.opts = opts;
        self
    }

    fn items(mut self, task: &str, n: usize) -> Self {
        self.items.insert(task.into(), n);
        self
    }

    fn when(mut self, task: &str, value: bool) -> Self {
        self.when.insert(task.into(), value);
        self
    }

    /// Plans and applies, answering `when` questions until the decision needs none.
    fn step(&mut self, after: &str) -> Decision {
        let mut decision = plan(&self.dag, &self.states, &self.opts);
        while !decision.evaluate_when.is_empty() {
            for task in &decision.evaluate_when {
                let value = *self.when.get(task).expect("test supplies every when");
                self.states.set_when(task, value);
            }
            decision = plan(&self.dag, &self.states, &self.opts);
        }
        for t in &decision.start {
            self.states.set_phase(t, Running);
        }
        for t in &decision.skip {
            self.states.set_phase(t, Skipped);
        }
        for t in &decision.omit {
            self.states.set_phase(t, NodePhase::Omitted);
        }
        for t in &decision.expand {
            let n = self.items.get(t).copied().unwrap_or(2);
            if n == 0 {
                self.states.set_phase(t, Skipped);
            } else {
                self.states.set_children(t, vec![None; n]);
            }
        }
        for c in &decision.start_children {
            self.states.set_child(&c.task, c.index, Running);
        }
        self.trace.push(Step {
            after: after.to_owned(),
            decision: decision.clone(),
        });
        decision
    }

    fn finish(&mut self, task: &str, phase: NodePhase) -> &mut Self {
        self.states.set_phase(task, phase);
        self
    }

    fn finish_child(&mut self, task: &str, index: usize, phase: NodePhase) -> &mut Self {
        self.states.set_child(task, index, phase);
        self
    }

    fn phase_of(&self, task: &str) -> Option<NodePhase> {
        self.states.get(task).effective_phase()
    }
}

fn s(list: &[&str]) -> Vec<String> {
    list.iter().map(|x| (*x).to_owned()).collect()
}

const DIAMOND: &str = "
tasks:
- {name: A, template: t}
- {name: B, template: t, depends: A}
- {name: C, template: t, depends: A}
- {name: D, template: t, depends: B && C}
";

// ---------------------------------------------------------------- validation

#[test]
fn conformance_dags_build() {
    let cases = [
        ("dag-diamond.yaml", "diamond", 4, vec!["D"]),
        (
            "dag-enhanced-depends.yaml",
            "diamond",
            10,
            vec!["should-execute-1", "should-execute-3"],
        ),
        ("dag-targets.yaml", "dag-target", 5, vec!["E"]),
    ];
    for (file, name, edges, targets) in cases {
        let wf = conformance(file);
        let t = template(&wf, name);
        // dag-targets' target is "{{workflow.parameters.target}}": the caller resolves it.
        let target = (file == "dag-targets.yaml").then_some("E");
        let dag = Dag::from_template(t, target).expect(file);
        assert_eq!(dag.edge_count(), edges, "{file}");
        assert_eq!(dag.targets(), targets, "{file}");
        assert!(dag.fail_fast(), "{file}: failFast defaults to true");
    }
}

#[test]
fn dependencies_resolve_in_declaration_order() {
    let wf = conformance("dag-enhanced-depends.yaml");
    let dag = Dag::from_template(template(&wf, "diamond"), None).expect("valid");
    assert_eq!(
        dag.dependencies("should-execute-3"),
        Some(vec!["should-execute-2", "should-not-execute"])
    );
    assert_eq!(dag.dependencies("should-execute-1"), Some(vec!["A", "C"]));
    assert_eq!(dag.dependencies("nope"), None);
    assert_eq!(
        dag.depends("should-execute-1").map(ToString::to_string),
        Some("A && (C.Succeeded || C.Failed)".to_owned())
    );
}

#[test]
fn invalid_dags_are_refused_with_the_field_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "tasks: [{name: A, depends: B}]",
            "unknown_dependency",
            "task 'A' depends on 'B', which is not a task of this DAG",
        ),
        (
            "tasks: [{name: A}, {name: A}]",
            "duplicate_task",
            "task name 'A' is not unique",
        ),
        (
            "tasks: [{template: x}]",
            "missing_name",
            "tasks[0].name is required",
        ),
        (
            "tasks: [{name: a_b}]",
            "invalid_name",
            "task name 'a_b' is invalid",
        ),
        (
            "tasks: [{name: A}, {name: 1b, depends: A}]",
            "invalid_name",
            "cannot begin with a digit",
        ),
        (
            "tasks: [{name: A}, {name: B, depends: A}, {name: C, dependencies: [A]}]",
            "mixed_dependency_fields",
            "cannot use both 'depends' and 'dependencies'",
        ),
        (
            "tasks: [{name: A}, {name: B, depends: 'A &&'}]",
            "depends",
            "task 'B': depends \"A &&\": column 5: expected a task name, '!' or '(', found end of input",
        ),
        (
            "tasks: [{name: A}, {name: B, depends: A.Done}]",
            "depends",
            "task result 'Done' for task 'A' is invalid",
        ),
        (
            "tasks: [{name: A}, {name: B, dependencies: ['A || C']}]",
            "depends",
            "dependencies[0] 'A || C' is not a task name",
        ),
        (
            "tasks: [{name: A, continueOn: yes}]",
            "continue_on",
            "task 'A': continueOn: expected an object",
        ),
        (
            "tasks: [{name: A, continueOn: {failed: 'x'}}]",
            "continue_on",
            "expected 'failed' to be a boolean",
        ),
        (
            "{target: Z, tasks: [{name: A}]}",
            "unknown_target",
            "target 'Z' is not a task of this DAG",
        ),
        (
            "{target: '{{workflow.parameters.target}}', tasks: [{name: A}]}",
            "unresolved_target",
            "is not resolved",
        ),
    ];
    for (yaml, label, message) in cases {
        let err = dag_yaml(yaml).expect_err(yaml);
        assert_eq!(err.metric_label(), *label, "{yaml}: {err}");
        assert!(err.to_string().contains(message), "{yaml}: {err}");
        assert!(err.to_string().starts_with("template 't'"), "{err}");
    }
}

#[test]
fn cycles_are_named_edge_by_edge() {
    let cases = [
        ("tasks: [{name: A, depends: A}]", vec!["A", "A"]),
        (
            "tasks: [{name: A, depends: B}, {name: B, depends: A}]",
            vec!["A", "B", "A"],
        ),
        (
            "tasks: [{name: R}, {name: A, depends: R && C}, {name: B, depends: A}, {name: C, depends: B}, {name: T, depends: C}]",
            vec!["A", "B", "C", "A"],
        ),
        (
            "tasks: [{name: A, dependencies: [C]}, {name: B, dependencies: [A]}, {name: C, dependencies: [B]}]",
            vec!["A", "B", "C", "A"],
        ),
        (
            "tasks: [{name: X}, {name: P, depends: Q.Failed}, {name: Q, depends: '!P'}]",
            vec!["P", "Q", "P"],
        ),
    ];
    for (yaml, cycle) in cases {
        let err = dag_yaml(yaml).expect_err(yaml);
        assert_eq!(
            err,
            DagError::Cycle {
                template: "t".into(),
                cycle: s(&cycle)
            },
            "{yaml}"
        );
        assert!(err.to_string().contains(&cycle.join(" -> ")), "{err}");
    }
}

#[test]
fn not_a_dag_template_is_refused() {
    let t = Template::container("c", "busybox");
    let err = Dag::from_template(&t, None).expect_err("container");
    assert_eq!(err.metric_label(), "not_dag");
    assert!(err.to_string().contains("template 'c'"), "{err}");
}

#[test]
fn leaf_targets_are_sorted_by_name_and_targets_keep_their_order() {
    let d = dag("tasks: [{name: Z}, {name: A}, {name: M, depends: Z}]");
    assert_eq!(d.targets(), vec!["A", "M"]);
    let spec: DagTemplate =
        serde_saphyr::from_str("tasks: [{name: Z}, {name: A}, {name: M, depends: Z}]").expect("y");
    let d = Dag::new("t", &spec, Some("  M   A M ")).expect("valid");
    assert_eq!(d.targets(), vec!["M", "A"]);
    assert_eq!(d.scheduled(), vec!["Z", "A", "M"]);
}

#[test]
fn continue_on_reads_argo_shapes() {
    let cases = [
        (None, Ok(ContinueOn::default())),
        (
            Some(serde_json::json!({"failed": true})),
            Ok(ContinueOn {
                failed: true,
                error: false,
            }),
        ),
        (
            Some(serde_json::json!({"error": true, "failed": null})),
            Ok(ContinueOn {
                failed: false,
                error: true,
            }),
        ),
        (Some(serde_json::json!({})), Ok(ContinueOn::default())),
    ];
    for (value, want) in cases {
        assert_eq!(ContinueOn::from_value(value.as_ref()), want, "{value:?}");
    }
    assert!(ContinueOn::from_value(Some(&serde_json::json!(true))).is_err());
    let c = ContinueOn {
        failed: true,
        error: false,
    };
    assert!(c.covers(Failed) && !c.covers(Error) && !c.covers(Succeeded));
}

#[test]
fn node_phases_parse_and_classify() {
    let cases = [
        ("Pending", Pending, false, false),
        ("Running", Running, false, false),
        ("Succeeded", Succeeded, true, true),
        ("Failed", Failed, true, true),
        ("Error", Error, true, true),
        ("Skipped", Skipped, true, false),
        ("Omitted", NodePhase::Omitted, true, false),
    ];
    for (text, phase, fulfilled, completed) in cases {
        assert_eq!(NodePhase::parse(text), Some(phase));
        assert_eq!(phase.as_str(), text);
        assert_eq!(phase.fulfilled(), fulfilled, "{text}");
        assert_eq!(phase.completed(), completed, "{text}");
    }
    assert_eq!(NodePhase::parse("Unknown"), None);
    assert!(Daemoned.fulfilled() && !Daemoned.completed() && Daemoned.active());
    assert_eq!(Daemoned.as_str(), "Running");
}

#[test]
fn group_phase_follows_children() {
    let cases = [
        (vec![], Skipped),
        (vec![Some(Succeeded), None], Running),
        (vec![Some(Succeeded), Some(Running)], Running),
        (vec![Some(Succeeded), Some(Skipped)], Succeeded),
        (vec![Some(Failed), Some(Succeeded)], Failed),
        (vec![Some(Failed), Some(Error)], Error),
        (vec![Some(Error), Some(Failed)], Failed),
        (vec![Some(Daemoned)], Succeeded),
    ];
    for (children, want) in cases {
        assert_eq!(group_phase(&children), want, "{children:?}");
    }
}

// ---------------------------------------------------------------- conformance traces

#[test]
fn diamond_runs_in_dependency_order() {
    let wf = conformance("dag-diamond.yaml");
    let mut sim = Sim::new(Dag::from_template(template(&wf, "diamond"), None).expect("valid"));
    assert_eq!(sim.step("submit").start, s(&["A"]));
    sim.finish("A", Succeeded);
    assert_eq!(sim.step("A succeeded").start, s(&["B", "C"]));
    sim.finish("B", Succeeded);
    let d = sim.step("B succeeded");
    assert!(d.start.is_empty() && d.omit.is_empty());
    assert_eq!(d.phase, TemplatePhase::Running);
    sim.finish("C", Succeeded);
    assert_eq!(sim.step("C succeeded").start, s(&["D"]));
    sim.finish("D", Succeeded);
    assert_eq!(sim.step("D succeeded").phase, TemplatePhase::Succeeded);
    insta::assert_yaml_snapshot!("diamond", sim.trace);
}

#[test]
fn diamond_with_a_failed_branch_omits_the_join_and_fails() {
    let wf = conformance("dag-diamond.yaml");
    let mut sim = Sim::new(Dag::from_template(template(&wf, "diamond"), None).expect("valid"));
    sim.step("submit");
    sim.finish("A", Succeeded);
    sim.step("A succeeded");
    sim.finish("B", Failed);
    let d = sim.step("B failed, C running");
    // D waits for C (Argo decides a task only when all its dependencies finished) ...
    assert!(d.omit.is_empty());
    assert_eq!(d.phase, TemplatePhase::Running);
    sim.finish("C", Succeeded);
    let d = sim.step("C succeeded");
    assert_eq!(d.omit, s(&["D"]));
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(
        d.message.as_deref(),
        Some("task 'B' failed, so target 'D' did not run")
    );
    insta::assert_yaml_snapshot!("diamond_b_failed", sim.trace);
}

#[test]
fn enhanced_depends_conformance_succeeds_with_c_failed() {
    let wf = conformance("dag-enhanced-depends.yaml");
    let mut sim = Sim::new(Dag::from_template(template(&wf, "diamond"), None).expect("valid"));
    assert_eq!(sim.step("submit").start, s(&["A"]));
    sim.finish("A", Succeeded);
    assert_eq!(sim.step("A succeeded").start, s(&["B", "C"]));
    sim.finish("B", Succeeded).finish("C", Failed);
    let d = sim.step("B succeeded, C failed");
    assert_eq!(d.start, s(&["should-execute-1", "should-execute-2"]));
    assert_eq!(d.omit, s(&["should-not-execute"]));
    sim.finish("should-execute-1", Succeeded)
        .finish("should-execute-2", Succeeded);
    assert_eq!(
        sim.step("should-execute-1/2 succeeded").start,
        s(&["should-execute-3"])
    );
    sim.finish("should-execute-3", Succeeded);
    let d = sim.step("should-execute-3 succeeded");
    // C failed, but no target's branch did: Argo ends this workflow Succeeded.
    assert_eq!(d.phase, TemplatePhase::Succeeded);
    insta::assert_yaml_snapshot!("enhanced_depends", sim.trace);
}

#[test]
fn enhanced_depends_conformance_when_c_succeeds() {
    let wf = conformance("dag-enhanced-depends.yaml");
    let mut sim = Sim::new(Dag::from_template(template(&wf, "diamond"), None).expect("valid"));
    sim.step("submit");
    sim.finish("A", Succeeded);
    sim.step("A");
    sim.finish("B", Succeeded).finish("C", Succeeded);
    let d = sim.step("B, C succeeded");
    assert_eq!(
        d.start,
        s(&["should-execute-1", "should-execute-2", "should-not-execute"])
    );
    sim.finish("should-execute-1", Succeeded)
        .finish("should-execute-2", Failed)
        .finish("should-not-execute", Succeeded);
    let d = sim.step("should-execute-2 failed");
    // should-execute-3 = should-execute-2.Succeeded || should-not-execute: still true.
    assert_eq!(d.start, s(&["should-execute-3"]));
    sim.finish("should-execute-3", Succeeded);
    assert_eq!(sim.step("done").phase, TemplatePhase::Succeeded);
}

#[test]
fn targets_run_only_their_dependency_chain() {
    let wf = conformance("dag-targets.yaml");
    let t = template(&wf, "dag-target");
    // The workflow argument `target` is "E"; the caller substitutes it.
    let arg = wf
        .spec
        .arguments
        .as_ref()
        .and_then(|a| a.parameters.as_ref())
        .and_then(|p| p.iter().find(|p| p.name == "target"))
        .and_then(|p| p.value_text())
        .expect("target argument");
    let mut sim = Sim::new(Dag::from_template(t, Some(&arg)).expect("valid"));
    assert_eq!(sim.dag.scheduled(), vec!["A", "C", "E"]);
    assert_eq!(sim.step("submit").start, s(&["A"]));
    sim.finish("A", Succeeded);
    assert_eq!(sim.step("A succeeded").start, s(&["C"]));
    sim.finish("C", Succeeded);
    assert_eq!(sim.step("C succeeded").start, s(&["E"]));
    sim.finish("E", Succeeded);
    assert_eq!(sim.step("E succeeded").phase, TemplatePhase::Succeeded);
    assert_eq!(sim.phase_of("B"), None, "B never runs");
    assert_eq!(sim.phase_of("D"), None, "D never runs");
    insta::assert_yaml_snapshot!("targets_e", sim.trace);
}

#[test]
fn target_sets_select_the_tasks_that_run() {
    let wf = conformance("dag-targets.yaml");
    let t = template(&wf, "dag-target");
    let cases = [
        ("B E", vec!["A", "B", "C", "E"]),
        ("D", vec!["A", "B", "C", "D"]),
        ("A", vec!["A"]),
        ("", vec!["A", "B", "C", "D", "E"]),
        ("E C", vec!["A", "C", "E"]),
    ];
    for (target, scheduled) in cases {
        let dag = Dag::from_template(t, Some(target)).expect(target);
        assert_eq!(dag.scheduled(), scheduled, "target {target:?}");
    }
    assert_eq!(
        Dag::from_template(t, None)
            .expect_err("unresolved")
            .metric_label(),
        "unresolved_target"
    );
    assert_eq!(
        Dag::from_template(t, Some("B F"))
            .expect_err("unknown")
            .to_string(),
        "template 'dag-target': target 'F' is not a task of this DAG"
    );
}

#[test]
fn a_failed_target_fails_the_dag_even_if_other_targets_are_fine() {
    let wf = conformance("dag-targets.yaml");
    let mut sim =
        Sim::new(Dag::from_template(template(&wf, "dag-target"), Some("B E")).expect("valid"));
    sim.step("submit");
    sim.finish("A", Succeeded);
    assert_eq!(sim.step("A").start, s(&["B", "C"]));
    sim.finish("B", Failed).finish("C", Succeeded);
    let d = sim.step("B failed");
    // B is a target and failed: with failFast nothing new starts (E stays unstarted).
    assert!(d.start.is_empty());
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(d.message.as_deref(), Some("task 'B' failed"));
}

// ---------------------------------------------------------------- failFast

const TWO_CHAINS: &str = "
tasks:
- {name: X1}
- {name: X2, depends: X1}
- {name: Y1}
- {name: Y2, depends: Y1}
- {name: Y3, depends: Y2}
";

#[test]
fn fail_fast_stops_new_starts_and_waits_for_running_tasks() {
    let mut sim = Sim::new(dag(TWO_CHAINS));
    assert_eq!(sim.step("submit").start, s(&["X1", "Y1"]));
    sim.finish("X1", Failed);
    let d = sim.step("X1 failed, Y1 running");
    assert_eq!(d.omit, s(&["X2"]));
    assert_eq!(d.phase, TemplatePhase::Running, "Y1 still runs");
    sim.finish("Y1", Succeeded);
    let d = sim.step("Y1 succeeded");
    assert!(d.start.is_empty(), "Y2 must not start after the failure");
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(
        d.message.as_deref(),
        Some("task 'X1' failed, so target 'X2' did not run")
    );
    insta::assert_yaml_snapshot!("fail_fast_on", sim.trace);
}

#[test]
fn fail_fast_off_runs_every_branch_then_fails() {
    let mut sim = Sim::new(dag(&format!("failFast: false\n{TWO_CHAINS}")));
    assert!(!sim.dag.fail_fast());
    sim.step("submit");
    sim.finish("X1", Failed);
    assert_eq!(sim.step("X1 failed").omit, s(&["X2"]));
    sim.finish("Y1", Succeeded);
    assert_eq!(sim.step("Y1").start, s(&["Y2"]));
    sim.finish("Y2", Succeeded);
    let d = sim.step("Y2");
    assert_eq!(d.start, s(&["Y3"]));
    assert_eq!(d.phase, TemplatePhase::Running);
    sim.finish("Y3", Succeeded);
    let d = sim.step("Y3");
    assert_eq!(d.phase, TemplatePhase::Failed);
    insta::assert_yaml_snapshot!("fail_fast_off", sim.trace);
}

#[test]
fn fail_fast_sees_a_join_that_can_no_longer_run() {
    // B fails while C and E1 run: D (B && C) can no longer run and is a target, so the DAG is
    // certain to fail; E2 must not start when E1 finishes, although D is not decided yet.
    let mut sim = Sim::new(dag("
tasks:
- {name: A}
- {name: B, depends: A}
- {name: C, depends: A}
- {name: D, depends: B && C}
- {name: E1}
- {name: E2, depends: E1}
"));
    assert_eq!(sim.step("submit").start, s(&["A", "E1"]));
    sim.finish("A", Succeeded);
    assert_eq!(sim.step("A").start, s(&["B", "C"]));
    sim.finish("B", Failed).finish("E1", Succeeded);
    let d = sim.step("B failed, E1 succeeded");
    assert!(d.start.is_empty(), "{d:?}");
    assert!(d.omit.is_empty(), "D waits for C as in Argo");
    assert_eq!(d.phase, TemplatePhase::Running);
    sim.finish("C", Succeeded);
    let d = sim.step("C");
    assert_eq!(d.omit, s(&["D"]));
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(sim.phase_of("E2"), None);
}

#[test]
fn fail_fast_ignores_failures_that_depends_handles() {
    // B's failure is handled by C (B.Failed) and cannot reach a target: the DAG goes on.
    let mut sim = Sim::new(dag("
tasks:
- {name: B}
- {name: C, depends: B.Failed}
- {name: Y1}
- {name: Y2, depends: Y1}
"));
    sim.step("submit");
    sim.finish("B", Failed);
    assert_eq!(sim.step("B failed").start, s(&["C"]));
    sim.finish("Y1", Succeeded);
    assert_eq!(sim.step("Y1").start, s(&["Y2"]));
    sim.finish("C", Succeeded).finish("Y2", Succeeded);
    assert_eq!(sim.step("done").phase, TemplatePhase::Succeeded);
}

#[test]
fn fail_fast_waits_while_an_or_may_still_hold() {
    // D = B || C: B failed, C unknown: D may still run, so nothing is certain yet.
    let mut sim = Sim::new(dag("
tasks:
- {name: B}
- {name: C}
- {name: D, depends: B || C}
- {name: E}
- {name: F, depends: E}
"));
    sim.step("submit");
    sim.finish("B", Failed).finish("E", Succeeded);
    assert_eq!(sim.step("B failed, E ok").start, s(&["F"]));
    sim.finish("C", Failed);
    let d = sim.step("C failed");
    assert_eq!(d.omit, s(&["D"]));
    assert_eq!(d.phase, TemplatePhase::Running, "F runs");
    sim.finish("F", Succeeded);
    let d = sim.step("F");
    assert_eq!(d.phase, TemplatePhase::Failed);
}

#[test]
fn first_failing_target_decides_with_fail_fast_last_without() {
    // Leaves sorted by name: A (Failed) then B (Error).
    let cases = [
        ("tasks: [{name: B}, {name: A}]", TemplatePhase::Failed),
        (
            "{failFast: false, tasks: [{name: B}, {name: A}]}",
            TemplatePhase::Error,
        ),
    ];
    for (yaml, want) in cases {
        let mut sim = Sim::new(dag(yaml));
        sim.step("submit");
        sim.finish("A", Failed).finish("B", Error);
        assert_eq!(sim.step("both done").phase, want, "{yaml}");
    }
}

#[test]
fn an_errored_leaf_makes_the_dag_error() {
    let mut sim = Sim::new(dag("tasks: [{name: A}, {name: B, depends: A}]"));
    sim.step("submit");
    sim.finish("A", Succeeded);
    sim.step("A");
    sim.finish("B", Error);
    let d = sim.step("B errored");
    assert_eq!(d.phase, TemplatePhase::Error);
    assert_eq!(d.message.as_deref(), Some("task 'B' errored"));
}

#[test]
fn a_failed_non_leaf_with_dependents_that_ran_does_not_fail_the_dag() {
    let mut sim = Sim::new(dag("
tasks:
- {name: A}
- {name: B, depends: A.Failed || A.Succeeded}
"));
    sim.step("submit");
    sim.finish("A", Failed);
    assert_eq!(sim.step("A failed").start, s(&["B"]));
    sim.finish("B", Succeeded);
    assert_eq!(sim.step("B").phase, TemplatePhase::Succeeded);
}

// ---------------------------------------------------------------- continueOn

#[test]
fn continue_on_lets_dependents_run_and_the_dag_succeed() {
    let cases = [
        // (continueOn of A, A's end, B starts?, final phase)
        ("{failed: true}", Failed, true, TemplatePhase::Succeeded),
        ("{error: true}", Error, true, TemplatePhase::Succeeded),
        ("{failed: true}", Error, false, TemplatePhase::Error),
        ("{error: true}", Failed, false, TemplatePhase::Failed),
        (
            "{failed: true, error: true}",
            Error,
            true,
            TemplatePhase::Succeeded,
        ),
    ];
    for (continue_on, end, b_runs, want) in cases {
        let mut sim = Sim::new(dag(&format!(
            "tasks: [{{name: A, continueOn: {continue_on}}}, {{name: B, dependencies: [A]}}]"
        )));
        sim.step("submit");
        sim.finish("A", end);
        let d = sim.step("A done");
        assert_eq!(d.start == s(&["B"]), b_runs, "{continue_on} {end:?}");
        if b_runs {
            sim.finish("B", Succeeded);
        }
        assert_eq!(sim.step("end").phase, want, "{continue_on} {end:?}");
    }
}

#[test]
fn continue_on_a_failed_leaf_keeps_the_dag_succeeded() {
    let mut sim = Sim::new(dag("
tasks:
- {name: A}
- {name: B, depends: A, continueOn: {failed: true}}
- {name: C, depends: A}
"));
    sim.step("submit");
    sim.finish("A", Succeeded);
    sim.step("A");
    sim.finish("B", Failed).finish("C", Succeeded);
    let d = sim.step("B failed");
    assert_eq!(d.phase, TemplatePhase::Succeeded);
    assert_eq!(d.message, None);
}

#[test]
fn continue_on_also_widens_bare_names_in_depends() {
    // Argo's expandDependency applies the dependency's continueOn to bare names in `depends`.
    let mut sim = Sim::new(dag("
tasks:
- {name: A, continueOn: {failed: true}}
- {name: B, depends: A && !A.Succeeded}
"));
    sim.step("submit");
    sim.finish("A", Failed);
    assert_eq!(sim.step("A failed").start, s(&["B"]));
}

// ---------------------------------------------------------------- omitted / skipped chains

#[test]
fn an_omission_settles_the_whole_chain_in_one_plan() {
    let mut sim = Sim::new(dag("
tasks:
- {name: A}
- {name: B, depends: A}
- {name: C, depends: B}
- {name: D, depends: C}
- {name: E, depends: D.Omitted}
"));
    sim.step("submit");
    sim.finish("A", Failed);
    let d = sim.step("A failed");
    assert_eq!(d.omit, s(&["B", "C", "D"]));
    assert_eq!(d.start, s(&["E"]), "E handles D's omission");
    sim.finish("E", Succeeded);
    let d = sim.step("E");
    assert_eq!(d.phase, TemplatePhase::Succeeded);
    insta::assert_yaml_snapshot!("omitted_chain", sim.trace);
}

#[test]
fn omitted_leaf_inherits_the_failure_of_its_branch() {
    let mut sim = Sim::new(dag("
tasks:
- {name: A}
- {name: B, depends: A.Succeeded}
"));
    sim.step("submit");
    sim.finish("A", Failed);
    let d = sim.step("A failed");
    assert_eq!(d.omit, s(&["B"]));
    assert_eq!(d.phase, TemplatePhase::Failed);
}

#[test]
fn omitted_leaf_under_a_succeeded_branch_does_not_fail() {
    let mut sim = Sim::new(dag("
tasks:
- {name: A}
- {name: B, depends: A.Failed}
"));
    sim.step("submit");
    sim.finish("A", Succeeded);
    let d = sim.step("A ok");
    assert_eq!(d.omit, s(&["B"]));
    assert_eq!(d.phase, TemplatePhase::Succeeded);
}

#[test]
fn when_is_asked_for_once_dependencies_finish() {
    let d = dag("
tasks:
- {name: A}
- {name: B, depends: A, when: '{{tasks.A.outputs.result}} == yes'}
- {name: C, depends: B}
");
    let mut states = TaskStates::new();
    let first = plan(&d, &states, &PlanOptions::default());
    assert_eq!(first.start, s(&["A"]));
    assert!(
        first.evaluate_when.is_empty(),
        "B's dependencies are not done"
    );
    states.set_phase("A", Succeeded);
    let asked = plan(&d, &states, &PlanOptions::default());
    assert_eq!(asked.evaluate_when, s(&["B"]));
    assert!(asked.start.is_empty());
    assert_eq!(asked.phase, TemplatePhase::Running);
    let mut yes = states.clone();
    yes.set_when("B", true);
    assert_eq!(plan(&d, &yes, &PlanOptions::default()).start, s(&["B"]));
    let mut no = states.clone();
    no.set_when("B", false);
    let skipped = plan(&d, &no, &PlanOptions::default());
    assert_eq!(skipped.skip, s(&["B"]));
    // Skipped satisfies a bare dependency: C starts in the same plan.
    assert_eq!(skipped.start, s(&["C"]));
}

#[test]
fn skipped_tasks_feed_explicit_results() {
    let cases = [
        ("B.Skipped", true),
        ("B.Succeeded", false),
        ("B", true),
        ("!B.Skipped", false),
    ];
    for (depends, c_runs) in cases {
        let mut sim = Sim::new(dag(&format!(
            "tasks: [{{name: B, when: 'false'}}, {{name: C, depends: '{depends}'}}]"
        )))
        .when("B", false);
        let d = sim.step("submit");
        assert_eq!(d.skip, s(&["B"]), "{depends}");
        assert_eq!(d.start == s(&["C"]), c_runs, "{depends}");
        assert_eq!(d.omit == s(&["C"]), !c_runs, "{depends}");
    }
}

#[test]
fn skipped_root_leaves_the_dag_succeeded() {
    let mut sim = Sim::new(dag("tasks: [{name: A, when: 'false'}]")).when("A", false);
    let d = sim.step("submit");
    assert_eq!(d.skip, s(&["A"]));
    assert_eq!(d.phase, TemplatePhase::Succeeded);
}

// ---------------------------------------------------------------- loops

#[test]
fn loop_tasks_expand_then_start_children() {
    let mut sim = Sim::new(dag("
tasks:
- {name: L, withItems: [a, b, c]}
- {name: D, depends: L}
"))
    .items("L", 3);
    let d = sim.step("submit");
    assert_eq!(d.expand, s(&["L"]));
    assert!(d.start.is_empty());
    let d = sim.step("expanded");
    assert_eq!(
        d.start_children,
        vec![
            ChildStart {
                task: "L".into(),
                index: 0
            },
            ChildStart {
                task: "L".into(),
                index: 1
            },
            ChildStart {
                task: "L".into(),
                index: 2
            },
        ]
    );
    sim.finish_child("L", 0, Succeeded)
        .finish_child("L", 1, Succeeded);
    assert_eq!(sim.step("two children").phase, TemplatePhase::Running);
    sim.finish_child("L", 2, Succeeded);
    assert_eq!(sim.step("all children").start, s(&["D"]));
    sim.finish("D", Succeeded);
    assert_eq!(sim.step("D").phase, TemplatePhase::Succeeded);
    insta::assert_yaml_snapshot!("loop", sim.trace);
}

#[test]
fn any_succeeded_and_all_failed_read_the_children() {
    let cases = [
        // children, AnySucceeded runs, AllFailed runs, bare runs
        (vec![Succeeded, Failed], true, false, false),
        (vec![Failed, Failed], false, true, false),
        (vec![Failed, Error], false, false, false),
        (vec![Succeeded, Succeeded], true, false, true),
        (vec![Skipped, Succeeded], true, false, true),
        (vec![Skipped, Skipped], false, false, true),
    ];
    for (children, any, all, bare) in cases {
        let d = dag("
failFast: false
tasks:
- {name: L, withParam: '{{tasks.x.outputs.result}}'}
- {name: ANY, depends: L.AnySucceeded}
- {name: ALL, depends: L.AllFailed}
- {name: BARE, depends: L}
");
        let mut states = TaskStates::new();
        states.set_children("L", children.iter().copied().map(Some).collect());
        let decision = plan(&d, &states, &PlanOptions::default());
        let mut want = Vec::new();
        if any {
            want.push("ANY");
        }
        if all {
            want.push("ALL");
        }
        if bare {
            want.push("BARE");
        }
        assert_eq!(decision.start, s(&want), "{children:?}");
    }
}

#[test]
fn an_empty_loop_is_skipped() {
    let mut sim = Sim::new(dag("
tasks:
- {name: L, withItems: []}
- {name: D, depends: L}
- {name: E, depends: L.AnySucceeded}
"))
    .items("L", 0);
    assert_eq!(sim.step("submit").expand, s(&["L"]));
    assert_eq!(sim.phase_of("L"), Some(Skipped));
    let d = sim.step("empty");
    assert_eq!(d.start, s(&["D"]));
    assert_eq!(d.omit, s(&["E"]));
}

#[test]
fn a_loop_with_a_failed_child_fails_its_branch() {
    let mut sim = Sim::new(dag("tasks: [{name: L, withSequence: {count: '2'}}]"));
    sim.step("submit");
    sim.step("expanded");
    sim.finish_child("L", 0, Failed)
        .finish_child("L", 1, Succeeded);
    let d = sim.step("children done");
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(d.message.as_deref(), Some("task 'L' failed"));
}

#[test]
fn loop_when_is_left_to_the_caller_per_item() {
    let d = dag("tasks: [{name: L, withItems: [1, 2], when: '{{item}} > 1'}]");
    let decision = plan(&d, &TaskStates::new(), &PlanOptions::default());
    assert_eq!(decision.expand, s(&["L"]));
    assert!(decision.evaluate_when.is_empty());
}

// ---------------------------------------------------------------- parallelism, ordering

#[test]
fn parallelism_caps_starts_in_declaration_order() {
    let yaml = "tasks: [{name: Z}, {name: A}, {name: M}, {name: B}]";
    let mut sim = Sim::new(dag(yaml)).opts(PlanOptions {
        parallelism: Some(2),
        ..Default::default()
    });
    let d = sim.step("submit");
    assert_eq!(d.start, s(&["Z", "A"]));
    assert_eq!(d.throttled, s(&["M", "B"]));
    assert_eq!(d.phase, TemplatePhase::Running);
    assert!(sim.step("nothing finished").start.is_empty());
    sim.finish("A", Succeeded);
    assert_eq!(sim.step("A").start, s(&["M"]));
    sim.finish("Z", Succeeded).finish("M", Succeeded);
    assert_eq!(sim.step("Z, M").start, s(&["B"]));
    sim.finish("B", Succeeded);
    assert_eq!(sim.step("B").phase, TemplatePhase::Succeeded);
    insta::assert_yaml_snapshot!("parallelism", sim.trace);
}

#[test]
fn starts_never_exceed_free_slots() {
    let yaml = "tasks: [{name: A}, {name: B}, {name: C}, {name: D}, {name: E}]";
    let cases = [
        (None, None, 0, 5),
        (Some(3), None, 0, 3),
        (Some(3), None, 2, 1),
        (Some(3), None, 3, 0),
        (Some(3), None, 4, 0),
        (None, Some(2), 0, 2),
        (Some(4), Some(1), 0, 1),
        (Some(0), None, 0, 0),
    ];
    for (parallelism, max_starts, running, want) in cases {
        let d = dag(yaml);
        let mut states = TaskStates::new();
        // `running` extra tasks already run: mark the last ones Running.
        for name in ["E", "D", "C", "B"].iter().take(running) {
            states.set_phase(name, Running);
        }
        let opts = PlanOptions {
            parallelism,
            max_starts,
            ..Default::default()
        };
        let decision = plan(&d, &states, &opts);
        assert_eq!(
            decision.start.len(),
            want,
            "{parallelism:?} {max_starts:?} {running}"
        );
        let order: Vec<&str> = d.tasks().collect();
        let mut sorted = decision.start.clone();
        sorted.sort_by_key(|t| order.iter().position(|o| o == t));
        assert_eq!(decision.start, sorted, "declaration order");
    }
}

#[test]
fn loop_children_share_the_parallelism_slots() {
    let mut sim = Sim::new(dag("
tasks:
- {name: L, withItems: [1, 2, 3, 4]}
- {name: S}
"))
    .items("L", 4)
    .opts(PlanOptions {
        parallelism: Some(2),
        ..Default::default()
    });
    let d = sim.step("submit");
    assert_eq!(d.expand, s(&["L"]));
    assert_eq!(d.start, s(&["S"]));
    let d = sim.step("expanded");
    assert_eq!(
        d.start_children,
        vec![ChildStart {
            task: "L".into(),
            index: 0
        }]
    );
    assert_eq!(d.throttled, s(&["L"]));
    sim.finish("S", Succeeded);
    let d = sim.step("S");
    assert_eq!(
        d.start_children,
        vec![ChildStart {
            task: "L".into(),
            index: 1
        }]
    );
    sim.finish_child("L", 0, Succeeded)
        .finish_child("L", 1, Succeeded);
    let d = sim.step("two children");
    assert_eq!(
        d.start_children,
        vec![
            ChildStart {
                task: "L".into(),
                index: 2
            },
            ChildStart {
                task: "L".into(),
                index: 3
            }
        ]
    );
}

#[test]
fn daemons_hold_a_slot_and_satisfy_dependents() {
    let mut sim = Sim::new(dag("
tasks:
- {name: DB}
- {name: USE, depends: DB.Daemoned}
- {name: OTHER}
"))
    .opts(PlanOptions {
        parallelism: Some(2),
        ..Default::default()
    });
    assert_eq!(sim.step("submit").start, s(&["DB", "OTHER"]));
    sim.finish("DB", Daemoned);
    let d = sim.step("DB up, OTHER running");
    assert!(d.start.is_empty(), "the daemon still holds a slot");
    assert_eq!(d.throttled, s(&["USE"]));
    sim.finish("OTHER", Succeeded);
    assert_eq!(sim.step("OTHER").start, s(&["USE"]));
    sim.finish("USE", Succeeded);
    // The daemon does not keep the DAG running (Argo kills daemons when the DAG ends).
    assert_eq!(sim.step("USE").phase, TemplatePhase::Succeeded);
}

#[test]
fn plans_are_idempotent_and_never_restart_a_task() {
    let d = dag(DIAMOND);
    let mut states = TaskStates::new();
    states.set_phase("A", Succeeded).set_phase("B", Running);
    let first = plan(&d, &states, &PlanOptions::default());
    let second = plan(&d, &states, &PlanOptions::default());
    assert_eq!(first, second);
    assert_eq!(first.start, s(&["C"]));
}

#[test]
fn exit_hooks_hold_dependents_back() {
    let d = dag(DIAMOND);
    let mut states = TaskStates::new();
    states
        .set_phase("A", Succeeded)
        .set_hooks_pending("A", true);
    let decision = plan(&d, &states, &PlanOptions::default());
    assert!(decision.start.is_empty());
    assert_eq!(decision.phase, TemplatePhase::Running);
    states.set_hooks_pending("A", false);
    assert_eq!(
        plan(&d, &states, &PlanOptions::default()).start,
        s(&["B", "C"])
    );
}

#[test]
fn shutdown_starts_nothing_and_fails_once_idle() {
    let d = dag(DIAMOND);
    let opts = PlanOptions {
        shutdown: true,
        ..Default::default()
    };
    let mut states = TaskStates::new();
    states.set_phase("A", Running);
    let running = plan(&d, &states, &opts);
    assert!(running.start.is_empty());
    assert_eq!(running.phase, TemplatePhase::Running);
    states.set_phase("A", Succeeded);
    let done = plan(&d, &states, &opts);
    assert!(done.start.is_empty());
    assert_eq!(done.phase, TemplatePhase::Failed);
}

#[test]
fn template_fail_fast_stops_after_any_failed_child() {
    let d = dag("
tasks:
- {name: A, continueOn: {failed: true}}
- {name: B}
- {name: C, depends: A}
");
    let opts = PlanOptions {
        template_fail_fast: true,
        ..Default::default()
    };
    let mut states = TaskStates::new();
    states.set_phase("A", Failed).set_phase("B", Running);
    let decision = plan(&d, &states, &opts);
    assert!(
        decision.start.is_empty(),
        "C would run without template failFast"
    );
    assert_eq!(decision.phase, TemplatePhase::Running);
    states.set_phase("B", Succeeded);
    let decision = plan(&d, &states, &opts);
    assert_eq!(decision.phase, TemplatePhase::Failed);
    assert_eq!(
        decision.message.as_deref(),
        Some("template has failed or errored children and failFast enabled")
    );
}

#[test]
fn options_read_from_the_template() {
    let t: Template = serde_saphyr::from_str(
        "{name: main, parallelism: 2, failFast: true, dag: {tasks: [{name: A}]}}",
    )
    .expect("template");
    assert_eq!(
        PlanOptions::from_template(&t),
        PlanOptions {
            parallelism: Some(2),
            template_fail_fast: true,
            ..Default::default()
        }
    );
    assert_eq!(
        PlanOptions::from_template(&Template::container("c", "busybox")),
        PlanOptions::default()
    );
}

#[test]
fn an_empty_dag_succeeds_at_once() {
    let d = dag("tasks: []");
    let decision = plan(&d, &TaskStates::new(), &PlanOptions::default());
    assert_eq!(decision.phase, TemplatePhase::Succeeded);
    assert!(decision.start.is_empty());
}

#[test]
fn dependencies_list_behaves_like_depends() {
    let listed = dag("
tasks:
- {name: A}
- {name: B}
- {name: C, dependencies: [A, B]}
");
    let written = dag("
tasks:
- {name: A}
- {name: B}
- {name: C, depends: A && B}
");
    for (a, b) in [
        (Succeeded, Succeeded),
        (Succeeded, Failed),
        (Skipped, Succeeded),
        (Error, Succeeded),
        (Running, Succeeded),
    ] {
        let mut states = TaskStates::new();
        states.set_phase("A", a).set_phase("B", b);
        let opts = PlanOptions::default();
        assert_eq!(
            plan(&listed, &states, &opts),
            plan(&written, &states, &opts),
            "{a:?} {b:?}"
        );
    }
}

#[test]
fn large_fan_out_fan_in_settles() {
    // 50 independent tasks, then one join: a start-only shape used by the lab's 50-step DAG.
    let mut yaml = String::from("tasks:\n");
    let mut names = Vec::new();
    for i in 0..50 {
        yaml.push_str(&format!("- {{name: t{i}}}\n"));
        names.push(format!("t{i}"));
    }
    yaml.push_str(&format!(
        "- {{name: join, dependencies: [{}]}}\n",
        names.join(", ")
    ));
    let mut sim = Sim::new(dag(&yaml));
    assert_eq!(sim.step("submit").start.len(), 50);
    for n in &names {
        sim.finish(n, Succeeded);
    }
    assert_eq!(sim.step("all done").start, s(&["join"]));
}

// ---------------------------------------------------------------- from_nodes

fn node(name: &str, phase: &str, node_type: &str) -> NodeStatus {
    NodeStatus {
        name: Some(name.into()),
        phase: Some(phase.into()),
        node_type: Some(node_type.into()),
        ..Default::default()
    }
}

#[test]
fn task_states_read_from_workflow_nodes() {
    let d = dag("
tasks:
- {name: A}
- {name: L, withItems: [x, y], depends: A}
- {name: D, depends: A}
- {name: E, depends: L}
");
    let mut daemon = node("wf.main.D", "Running", "Pod");
    daemon
        .extra
        .insert("daemoned".into(), serde_json::json!(true));
    let mut group = node("wf.main.L", "Running", "TaskGroup");
    group.children = Some(vec!["c0".into(), "c1".into()]);
    let mut retry = node("wf.main.L(1:y)", "Failed", "Retry");
    retry.children = Some(vec!["c1a0".into()]);
    let nodes: BTreeMap<String, NodeStatus> = [
        ("dag", node("wf.main", "Running", "DAG")),
        ("a", node("wf.main.A", "Succeeded", "Pod")),
        ("l", group),
        ("c0", node("wf.main.L(0:x)", "Succeeded", "Pod")),
        ("c1", retry),
        // A retry attempt: not a loop child, its phase must not count as item 0 or 1.
        ("c1a0", node("wf.main.L(1:y)(0)", "Succeeded", "Pod")),
        ("d", daemon),
        ("other", node("wf.other.A", "Failed", "Pod")),
        ("z", node("wf.main.Z", "Succeeded", "Pod")),
        ("weird", node("wf.main.E", "Weird", "Pod")),
    ]
    .into_iter()
    .map(|(id, n)| (id.to_owned(), n))
    .collect();
    let states = TaskStates::from_nodes(&d, "wf.main", &nodes);
    assert_eq!(states.get("A").effective_phase(), Some(Succeeded));
    assert_eq!(
        states.get("L").children,
        Some(vec![Some(Succeeded), Some(Failed)])
    );
    assert_eq!(states.get("L").effective_phase(), Some(Failed));
    assert_eq!(states.get("D").effective_phase(), Some(Daemoned));
    assert_eq!(
        states.get("E"),
        TaskState::default(),
        "unknown phase is left out"
    );
    let decision = plan(&d, &states, &PlanOptions::default());
    assert_eq!(decision.omit, s(&["E"]));
}

// ---------------------------------------------------------------- invariants over random DAGs

/// A small deterministic generator (no external crate): xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A random DAG over tasks t0..tn: each task depends on a few earlier ones through a random
/// expression; some loop, some have `when`, some `continueOn`.
fn random_dag(rng: &mut Rng) -> String {
    let n = 1 + rng.below(10) as usize;
    let mut yaml = format!(
        "failFast: {}\ntasks:\n",
        if rng.below(2) == 0 { "true" } else { "false" }
    );
    for i in 0..n {
        let mut fields = vec![format!("name: t{i}")];
        if i > 0 && rng.below(4) != 0 {
            let k = 1 + rng.below(3) as usize;
            let mut terms = Vec::new();
            for _ in 0..k {
                let dep = rng.below(i as u64);
                let result = rng.pick(&[
                    "",
                    "",
                    ".Succeeded",
                    ".Failed",
                    ".Skipped",
                    ".Omitted",
                    ".Errored",
                    ".AnySucceeded",
                    ".AllFailed",
                ]);
                let not = if rng.below(6) == 0 { "!" } else { "" };
                terms.push(format!("{not}t{dep}{result}"));
            }
            let op = rng.pick(&[" && ", " || "]);
            fields.push(format!("depends: '{}'", terms.join(op)));
        }
        if rng.below(5) == 0 {
            fields.push("withItems: [1, 2, 3]".into());
        } else if rng.below(5) == 0 {
            fields.push("when: 'x'".into());
        }
        if rng.below(5) == 0 {
            fields.push("continueOn: {failed: true}".into());
        }
        yaml.push_str(&format!("- {{{}}}\n", fields.join(", ")));
    }
    yaml
}

#[test]
fn random_dags_respect_the_scheduling_invariants() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..400 {
        let yaml = random_dag(&mut rng);
        let d = dag(&yaml);
        let parallelism = rng.pick(&[None, Some(1), Some(2), Some(3)]);
        let opts = PlanOptions {
            parallelism,
            ..Default::default()
        };
        let mut states = TaskStates::new();
        let outcomes = [Succeeded, Succeeded, Failed, Error];
        let mut finished = None;
        for _round in 0..200 {
            let mut decision = plan(&d, &states, &opts);
            if !decision.evaluate_when.is_empty() {
                for t in &decision.evaluate_when {
                    states.set_when(t, rng.below(2) == 0);
                }
                decision = plan(&d, &states, &opts);
            }
            let ctx = format!("case {case}:\n{yaml}\n{decision:?}");
            // Never more running than parallelism allows.
            if let Some(p) = parallelism {
                let active: usize = d
                    .tasks()
                    .map(|t| {
                        let st = states.get(t);
                        match &st.children {
                            Some(c) => c.iter().flatten().filter(|p| p.active()).count(),
                            None => usize::from(st.phase.is_some_and(NodePhase::active)),
                        }
                    })
                    .sum();
                assert!(
                    active + decision.start.len() + decision.start_children.len() <= p,
                    "{ctx}"
                );
            }
            for t in decision
                .start
                .iter()
                .chain(&decision.skip)
                .chain(&decision.omit)
                .chain(&decision.expand)
            {
                // Never decide a task twice, never before its dependencies finished.
                assert_eq!(states.get(t).effective_phase(), None, "{t} twice: {ctx}");
                for dep in d.dependencies(t).expect("known task") {
                    let st = states.get(dep);
                    let done = st.effective_phase().is_some_and(NodePhase::fulfilled)
                        || decision.skip.iter().chain(&decision.omit).any(|x| x == dep);
                    assert!(done, "{t} before {dep}: {ctx}");
                }
            }
            if decision.phase != TemplatePhase::Running {
                assert!(
                    decision.start.is_empty() && decision.start_children.is_empty(),
                    "{ctx}"
                );
                finished = Some(decision.phase);
                break;
            }
            // Apply, then finish every running task or child with a random outcome.
            for t in &decision.skip {
                states.set_phase(t, Skipped);
            }
            for t in &decision.omit {
                states.set_phase(t, NodePhase::Omitted);
            }
            for t in &decision.start {
                states.set_phase(t, Running);
            }
            for t in &decision.expand {
                states.set_children(t, vec![None; 3]);
            }
            for c in &decision.start_children {
                states.set_child(&c.task, c.index, Running);
            }
            let names: Vec<String> = d.tasks().map(str::to_owned).collect();
            for t in &names {
                let st = states.get(t);
                if let Some(children) = &st.children {
                    for (i, c) in children.iter().enumerate() {
                        if *c == Some(Running) {
                            states.set_child(t, i, rng.pick(&outcomes));
                        }
                    }
                } else if st.phase == Some(Running) {
                    states.set_phase(t, rng.pick(&outcomes));
                }
            }
        }
        let phase = finished.unwrap_or_else(|| panic!("case {case} never finished:\n{yaml}"));
        // A DAG that succeeded has no target whose branch failed without continueOn; one that
        // did not has at least one failed or errored task.
        if phase != TemplatePhase::Succeeded {
            let any_failure = d.tasks().any(|t| {
                let st = states.get(t);
                st.effective_phase().is_some_and(NodePhase::failed_or_error)
            });
            assert!(any_failure, "case {case} failed without a failure:\n{yaml}");
        }
    }
}
