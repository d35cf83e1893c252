//! Steps scheduling tests: validation, then conformance manifests driven step by step.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::*;
use crate::workflow::types::Workflow;
use NodePhase::{Daemoned, Error, Failed, Running, Skipped, Succeeded};

fn conformance(file: &str) -> Workflow {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/conformance/workflows")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("conformance manifest");
    serde_saphyr::from_str(&text).expect("manifest parses as a Workflow")
}

fn steps_of(file: &str, name: &str) -> Steps {
    let wf = conformance(file);
    let t = wf
        .spec
        .templates
        .as_ref()
        .and_then(|ts| ts.iter().find(|t| t.name == name))
        .expect("template exists");
    Steps::from_template(t).expect("valid steps")
}

/// A steps template from the YAML of a whole template.
fn steps_yaml(yaml: &str) -> Result<Steps, StepsError> {
    let t: Template = serde_saphyr::from_str(yaml).expect("template yaml");
    Steps::from_template(&t)
}

fn steps(yaml: &str) -> Steps {
    steps_yaml(yaml).expect("valid steps")
}

fn s(list: &[&str]) -> Vec<String> {
    list.iter().map(|x| (*x).to_owned()).collect()
}

/// Applies decisions as a controller would; see the DAG tests' `Sim`.
struct Sim {
    steps: Steps,
    states: TaskStates,
    opts: PlanOptions,
    items: BTreeMap<String, usize>,
    when: BTreeMap<String, bool>,
    trace: Vec<Traced>,
}

#[derive(Serialize)]
struct Traced {
    after: String,
    decision: StepsDecision,
}

impl Sim {
    fn new(steps: Steps) -> Self {
        Sim {
            steps,
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

    fn items(mut self, step: &str, n: usize) -> Self {
        self.items.insert(step.into(), n);
        self
    }

    fn when(mut self, step: &str, value: bool) -> Self {
        self.when.insert(step.into(), value);
        self
    }

    fn step(&mut self, after: &str) -> StepsDecision {
        let mut decision = plan(&self.steps, &self.states, &self.opts);
        while !decision.evaluate_when.is_empty() {
            for step in &decision.evaluate_when {
                let value = *self.when.get(step).expect("test supplies every when");
                self.states.set_when(step, value);
            }
            decision = plan(&self.steps, &self.states, &self.opts);
        }
        for t in &decision.start {
            self.states.set_phase(t, Running);
        }
        for t in &decision.skip {
            self.states.set_phase(t, Skipped);
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
        self.trace.push(Traced {
            after: after.to_owned(),
            decision: decision.clone(),
        });
        decision
    }

    fn finish(&mut self, step: &str, phase: NodePhase) -> &mut Self {
        self.states.set_phase(step, phase);
        self
    }

    fn finish_child(&mut self, step: &str, index: usize, phase: NodePhase) -> &mut Self {
        self.states.set_child(step, index, phase);
        self
    }
}

// ---------------------------------------------------------------- validation

#[test]
fn conformance_steps_templates_build() {
    let cases = [
        (
            "steps.yaml",
            "hello-hello-hello",
            vec![vec!["hello1"], vec!["hello2a", "hello2b"]],
        ),
        (
            "continue-on-fail.yaml",
            "workflow-ignore",
            vec![vec!["A"], vec!["B", "C"], vec!["D"]],
        ),
        (
            "coinflip.yaml",
            "coinflip",
            vec![vec!["flip-coin"], vec!["heads", "tails"]],
        ),
        (
            "loops.yaml",
            "loop-example",
            vec![vec!["print-message-loop"]],
        ),
    ];
    for (file, name, groups) in cases {
        let st = steps_of(file, name);
        assert_eq!(st.template(), name);
        assert_eq!(st.group_count(), groups.len(), "{file}");
        for (g, want) in groups.iter().enumerate() {
            assert_eq!(st.group(g), *want, "{file} group {g}");
        }
    }
    let st = steps_of("continue-on-fail.yaml", "workflow-ignore");
    assert_eq!(st.group_of("C"), Some(1));
    assert_eq!(st.group_of("Z"), None);
    assert!(st.group(9).is_empty());
}

#[test]
fn invalid_steps_are_refused_with_the_field_named() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "{name: m, steps: [[{name: a}], [{name: a}]]}",
            "duplicate_step",
            "steps[1].name 'a' is not unique",
        ),
        (
            "{name: m, steps: [[{name: a}, {template: x}]]}",
            "missing_name",
            "steps[0][1].name is required",
        ),
        (
            "{name: m, steps: [[{name: 'a.b'}]]}",
            "invalid_name",
            "steps[0].name 'a.b' is invalid",
        ),
        (
            "{name: m, steps: [[{name: a, continueOn: [1]}]]}",
            "continue_on",
            "step 'a': continueOn: expected an object",
        ),
        (
            "{name: m, container: {image: x}}",
            "not_steps",
            "not a steps template",
        ),
    ];
    for (yaml, label, message) in cases {
        let err = steps_yaml(yaml).expect_err(yaml);
        assert_eq!(err.metric_label(), *label, "{yaml}: {err}");
        assert!(err.to_string().contains(message), "{yaml}: {err}");
        assert!(err.to_string().starts_with("template 'm'"), "{err}");
    }
}

// ---------------------------------------------------------------- conformance traces

#[test]
fn steps_run_group_after_group() {
    let mut sim = Sim::new(steps_of("steps.yaml", "hello-hello-hello"));
    let d = sim.step("submit");
    assert_eq!((d.group, d.start.clone()), (Some(0), s(&["hello1"])));
    let d = sim.step("hello1 running");
    assert!(d.start.is_empty());
    assert_eq!(d.phase, TemplatePhase::Running);
    sim.finish("hello1", Succeeded);
    let d = sim.step("hello1 succeeded");
    assert_eq!(
        (d.group, d.start.clone()),
        (Some(1), s(&["hello2a", "hello2b"]))
    );
    assert_eq!(d.groups_done.len(), 1);
    sim.finish("hello2a", Succeeded);
    assert_eq!(sim.step("hello2a").phase, TemplatePhase::Running);
    sim.finish("hello2b", Succeeded);
    let d = sim.step("hello2b");
    assert_eq!(d.phase, TemplatePhase::Succeeded);
    assert_eq!(d.group, None);
    insta::assert_yaml_snapshot!("steps", sim.trace);
}

#[test]
fn continue_on_fail_conformance_succeeds_one_pod_at_a_time() {
    // The workflow's `parallelism: 1` reaches the plan as max_starts (the free workflow slots).
    let mut sim = Sim::new(steps_of("continue-on-fail.yaml", "workflow-ignore"));
    let one = |sim: &Sim| {
        let running = sim
            .steps
            .group(0)
            .into_iter()
            .chain(sim.steps.group(1))
            .chain(sim.steps.group(2))
            .filter(|s| sim.states.get(s).phase == Some(Running))
            .count();
        PlanOptions {
            max_starts: Some(1usize.saturating_sub(running)),
            ..Default::default()
        }
    };
    sim.opts = one(&sim);
    assert_eq!(sim.step("submit").start, s(&["A"]));
    sim.finish("A", Succeeded);
    sim.opts = one(&sim);
    let d = sim.step("A succeeded");
    assert_eq!(d.start, s(&["B"]));
    assert_eq!(d.throttled, s(&["C"]));
    sim.finish("B", Succeeded);
    sim.opts = one(&sim);
    assert_eq!(sim.step("B succeeded").start, s(&["C"]));
    sim.finish("C", Failed);
    sim.opts = one(&sim);
    let d = sim.step("C failed (continueOn failed)");
    assert_eq!(d.start, s(&["D"]));
    sim.finish("D", Succeeded);
    sim.opts = one(&sim);
    let d = sim.step("D succeeded");
    assert_eq!(d.phase, TemplatePhase::Succeeded);
    insta::assert_yaml_snapshot!("continue_on_fail", sim.trace);
}

#[test]
fn coinflip_runs_one_branch_and_skips_the_other() {
    for (heads, run, skip) in [(true, "heads", "tails"), (false, "tails", "heads")] {
        let mut sim = Sim::new(steps_of("coinflip.yaml", "coinflip"))
            .when("heads", heads)
            .when("tails", !heads);
        assert_eq!(sim.step("submit").start, s(&["flip-coin"]));
        sim.finish("flip-coin", Succeeded);
        let d = sim.step("flipped");
        assert_eq!(d.start, s(&[run]));
        assert_eq!(d.skip, s(&[skip]));
        sim.finish(run, Succeeded);
        assert_eq!(sim.step("done").phase, TemplatePhase::Succeeded);
    }
}

#[test]
fn when_is_asked_only_for_the_current_group() {
    let st = steps_of("coinflip.yaml", "coinflip");
    let mut states = TaskStates::new();
    let d = plan(&st, &states, &PlanOptions::default());
    assert!(d.evaluate_when.is_empty(), "group 1 waits for group 0");
    states.set_phase("flip-coin", Succeeded);
    let d = plan(&st, &states, &PlanOptions::default());
    assert_eq!(d.evaluate_when, s(&["heads", "tails"]));
    assert!(d.start.is_empty());
    assert_eq!(d.phase, TemplatePhase::Running);
}

#[test]
fn conditionals_all_false_skip_and_succeed_at_once() {
    let mut sim = Sim::new(steps_of("conditionals.yaml", "conditional-example"))
        .when("print-hello-govaluate", false)
        .when("print-hello-expr", false)
        .when("print-hello-expr-json", false);
    let d = sim.step("submit");
    assert_eq!(
        d.skip,
        s(&[
            "print-hello-govaluate",
            "print-hello-expr",
            "print-hello-expr-json"
        ])
    );
    assert_eq!(d.phase, TemplatePhase::Succeeded);
}

#[test]
fn loops_conformance_expands_and_runs_children() {
    let mut sim = Sim::new(steps_of("loops.yaml", "loop-example"));
    assert_eq!(sim.step("submit").expand, s(&["print-message-loop"]));
    let d = sim.step("expanded");
    assert_eq!(d.start_children.len(), 2);
    sim.finish_child("print-message-loop", 0, Succeeded)
        .finish_child("print-message-loop", 1, Succeeded);
    assert_eq!(sim.step("children").phase, TemplatePhase::Succeeded);
    insta::assert_yaml_snapshot!("loops", sim.trace);
}

#[test]
fn parallelism_limit_conformance_runs_two_children_at_a_time() {
    let mut sim = Sim::new(steps_of("parallelism-limit.yaml", "parallelism-limit"))
        .items("sleep", 10)
        .opts(PlanOptions {
            parallelism: Some(2),
            ..Default::default()
        });
    sim.step("submit");
    let mut started = Vec::new();
    for round in 0..5 {
        let d = sim.step(&format!("round {round}"));
        let indexes: Vec<usize> = d.start_children.iter().map(|c| c.index).collect();
        assert_eq!(indexes, vec![2 * round, 2 * round + 1], "round {round}");
        for i in indexes {
            sim.finish_child("sleep", i, Succeeded);
            started.push(i);
        }
    }
    assert_eq!(started, (0..10).collect::<Vec<_>>());
    assert_eq!(sim.step("all").phase, TemplatePhase::Succeeded);
}

// ---------------------------------------------------------------- failures

#[test]
fn a_failed_step_fails_its_group_and_the_template() {
    let mut sim = Sim::new(steps(
        "{name: m, steps: [[{name: a}, {name: b}], [{name: c}]]}",
    ));
    sim.step("submit");
    sim.finish("a", Failed);
    let d = sim.step("a failed, b running");
    assert_eq!(d.phase, TemplatePhase::Running, "b still runs");
    sim.finish("b", Succeeded);
    let d = sim.step("b");
    assert!(d.start.is_empty(), "group 1 never starts");
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(d.message.as_deref(), Some("child 'a' failed"));
    assert_eq!(
        d.groups_done,
        vec![GroupOutcome {
            index: 0,
            phase: TemplatePhase::Failed,
            message: Some("child 'a' failed".into())
        }]
    );
    insta::assert_yaml_snapshot!("group_failed", sim.trace);
}

#[test]
fn continue_on_covers_only_its_phase() {
    let cases = [
        ("{failed: true}", Failed, TemplatePhase::Succeeded),
        ("{failed: true}", Error, TemplatePhase::Failed),
        ("{error: true}", Error, TemplatePhase::Succeeded),
        ("{error: true}", Failed, TemplatePhase::Failed),
        ("{}", Failed, TemplatePhase::Failed),
    ];
    for (continue_on, end, want) in cases {
        let st = steps(&format!(
            "{{name: m, steps: [[{{name: a, continueOn: {continue_on}}}], [{{name: b}}]]}}"
        ));
        let mut states = TaskStates::new();
        states.set_phase("a", end);
        let d = plan(&st, &states, &PlanOptions::default());
        if want == TemplatePhase::Succeeded {
            assert_eq!(d.start, s(&["b"]), "{continue_on} {end:?}");
            states.set_phase("b", Succeeded);
            let d = plan(&st, &states, &PlanOptions::default());
            assert_eq!(d.phase, want, "{continue_on} {end:?}");
        } else {
            assert_eq!(d.phase, want, "{continue_on} {end:?}");
            assert!(d.start.is_empty());
        }
    }
}

#[test]
fn an_errored_step_fails_the_group_as_failed() {
    let st = steps("{name: m, steps: [[{name: a}]]}");
    let mut states = TaskStates::new();
    states.set_phase("a", Error);
    let d = plan(&st, &states, &PlanOptions::default());
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(d.message.as_deref(), Some("child 'a' errored"));
}

#[test]
fn loop_children_are_judged_one_by_one() {
    let cases = [
        ("{}", vec![Succeeded, Failed], TemplatePhase::Failed),
        (
            "{failed: true}",
            vec![Succeeded, Failed],
            TemplatePhase::Succeeded,
        ),
        (
            "{failed: true}",
            vec![Error, Succeeded],
            TemplatePhase::Failed,
        ),
        ("{}", vec![Skipped, Succeeded], TemplatePhase::Succeeded),
    ];
    for (continue_on, children, want) in cases {
        let st = steps(&format!(
            "{{name: m, steps: [[{{name: l, withItems: [1, 2], continueOn: {continue_on}}}]]}}"
        ));
        let mut states = TaskStates::new();
        states.set_children("l", children.iter().copied().map(Some).collect());
        let d = plan(&st, &states, &PlanOptions::default());
        assert_eq!(d.phase, want, "{continue_on} {children:?}");
    }
    let st = steps("{name: m, steps: [[{name: l, withItems: [1, 2]}]]}");
    let mut states = TaskStates::new();
    states.set_children("l", vec![Some(Succeeded), Some(Failed)]);
    assert_eq!(
        plan(&st, &states, &PlanOptions::default())
            .message
            .as_deref(),
        Some("child 'l(1)' failed")
    );
}

#[test]
fn an_empty_loop_step_is_skipped_and_the_next_group_runs() {
    let mut sim = Sim::new(steps(
        "{name: m, steps: [[{name: l, withParam: '[]'}], [{name: after}]]}",
    ))
    .items("l", 0);
    assert_eq!(sim.step("submit").expand, s(&["l"]));
    let d = sim.step("expanded to nothing");
    assert_eq!(d.start, s(&["after"]));
}

#[test]
fn template_fail_fast_stops_new_starts() {
    // Argo's test/e2e/expectedfailures/parallelism-step-fail-fast.yaml, plus a later group.
    let st = steps(
        "{name: main, parallelism: 2, failFast: true, steps: [[{name: step1}, {name: step2}, {name: step3}], [{name: later}]]}",
    );
    let t: Template = serde_saphyr::from_str(
        "{name: main, parallelism: 2, failFast: true, steps: [[{name: step1}]]}",
    )
    .expect("template");
    let opts = PlanOptions::from_template(&t);
    let mut sim = Sim::new(st).opts(opts);
    let d = sim.step("submit");
    assert_eq!(d.start, s(&["step1", "step2"]));
    assert_eq!(d.throttled, s(&["step3"]));
    sim.finish("step1", Failed);
    let d = sim.step("step1 failed");
    assert!(d.start.is_empty(), "step3 must not start");
    assert_eq!(d.phase, TemplatePhase::Running);
    sim.finish("step2", Succeeded);
    let d = sim.step("step2 succeeded");
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(
        d.message.as_deref(),
        Some("template has failed or errored children and failFast enabled")
    );
}

#[test]
fn shutdown_starts_nothing_and_fails_once_idle() {
    let st = steps("{name: m, steps: [[{name: a}, {name: b}]]}");
    let opts = PlanOptions {
        shutdown: true,
        ..Default::default()
    };
    let mut states = TaskStates::new();
    states.set_phase("a", Running);
    let d = plan(&st, &states, &opts);
    assert!(d.start.is_empty());
    assert_eq!(d.phase, TemplatePhase::Running);
    states.set_phase("a", Succeeded);
    let d = plan(&st, &states, &opts);
    assert_eq!(d.phase, TemplatePhase::Failed);
    assert_eq!(d.message.as_deref(), Some("the workflow was shut down"));
}

// ---------------------------------------------------------------- edges

#[test]
fn daemons_let_the_group_finish() {
    let st = steps("{name: m, steps: [[{name: db}], [{name: use}]]}");
    let mut states = TaskStates::new();
    states.set_phase("db", Daemoned);
    let d = plan(&st, &states, &PlanOptions::default());
    assert_eq!(d.start, s(&["use"]));
    states.set_phase("use", Succeeded);
    assert_eq!(
        plan(&st, &states, &PlanOptions::default()).phase,
        TemplatePhase::Succeeded
    );
}

#[test]
fn exit_handlers_hold_the_group() {
    let st = steps("{name: m, steps: [[{name: a}], [{name: b}]]}");
    let mut states = TaskStates::new();
    states
        .set_phase("a", Succeeded)
        .set_hooks_pending("a", true);
    let d = plan(&st, &states, &PlanOptions::default());
    assert!(d.start.is_empty());
    assert_eq!(d.phase, TemplatePhase::Running);
    assert_eq!(d.group, Some(0));
}

#[test]
fn empty_steps_and_empty_groups_succeed() {
    for yaml in [
        "{name: m, steps: []}",
        "{name: m, steps: [[]]}",
        "{name: m, steps: [[], [{name: a}]]}",
    ] {
        let st = steps(yaml);
        let mut states = TaskStates::new();
        let d = plan(&st, &states, &PlanOptions::default());
        if st.group_count() == 2 {
            assert_eq!(d.start, s(&["a"]), "{yaml}");
            states.set_phase("a", Succeeded);
        }
        assert_eq!(
            plan(&st, &states, &PlanOptions::default()).phase,
            TemplatePhase::Succeeded,
            "{yaml}"
        );
    }
}

#[test]
fn plans_are_idempotent() {
    let st = steps_of("steps.yaml", "hello-hello-hello");
    let mut states = TaskStates::new();
    states
        .set_phase("hello1", Succeeded)
        .set_phase("hello2a", Running);
    let first = plan(&st, &states, &PlanOptions::default());
    assert_eq!(first, plan(&st, &states, &PlanOptions::default()));
    assert_eq!(first.start, s(&["hello2b"]), "never restarts hello2a");
}

#[test]
fn a_skipped_group_lets_the_next_group_start_in_the_same_plan() {
    let mut sim = Sim::new(steps(
        "{name: m, steps: [[{name: a, when: 'x == y'}], [{name: b}]]}",
    ))
    .when("a", false);
    let d = sim.step("submit");
    assert_eq!(d.skip, s(&["a"]));
    assert_eq!(d.start, s(&["b"]));
    assert_eq!(d.group, Some(1));
}

fn node(name: &str, phase: &str, children: &[&str]) -> NodeStatus {
    NodeStatus {
        name: Some(name.into()),
        phase: Some(phase.into()),
        children: (!children.is_empty()).then(|| children.iter().map(|c| (*c).into()).collect()),
        ..Default::default()
    }
}

#[test]
fn step_states_read_from_workflow_nodes() {
    let st = steps(
        "{name: m, steps: [[{name: a}], [{name: l, withItems: [x, y, z]}, {name: w, when: 'false'}]]}",
    );
    let nodes: BTreeMap<String, NodeStatus> = [
        ("s", node("wf", "Running", &["g0"])),
        ("g0", node("wf[0]", "Succeeded", &["a"])),
        ("a", node("wf[0].a", "Succeeded", &[])),
        ("g1", node("wf[1]", "Running", &["l0", "l1", "w"])),
        ("l0", node("wf[1].l(0:x)", "Succeeded", &[])),
        ("l1", node("wf[1].l(1:y)", "Running", &["l1a0"])),
        ("l1a0", node("wf[1].l(1:y)(0)", "Failed", &[])),
        ("w", node("wf[1].w", "Skipped", &[])),
    ]
    .into_iter()
    .map(|(id, n)| (id.to_owned(), n))
    .collect();
    let mut states = st.states_from_nodes("wf", &nodes);
    assert_eq!(states.get("a").effective_phase(), Some(Succeeded));
    assert_eq!(states.get("w").effective_phase(), Some(Skipped));
    assert_eq!(
        states.get("l").children,
        Some(vec![Some(Succeeded), Some(Running)])
    );
    // The caller knows the loop has three items: the third has no node yet.
    states.set_children("l", vec![Some(Succeeded), Some(Running), None]);
    let d = plan(&st, &states, &PlanOptions::default());
    assert_eq!(
        d.start_children,
        vec![ChildStart {
            task: "l".into(),
            index: 2
        }]
    );
    assert_eq!(d.group, Some(1));
}

/// xorshift64*, as in the DAG tests.
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
}

#[test]
fn random_steps_respect_the_group_order() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let outcomes = [Succeeded, Succeeded, Succeeded, Failed, Error];
    for case in 0..300 {
        let groups = 1 + rng.below(4) as usize;
        let mut yaml = String::from("{name: m, steps: [");
        let mut k = 0;
        for g in 0..groups {
            yaml.push('[');
            for j in 0..rng.below(4) {
                if j > 0 {
                    yaml.push_str(", ");
                }
                let extra = match rng.below(6) {
                    0 => ", withItems: [1, 2]",
                    1 => ", when: 'x'",
                    2 => ", continueOn: {failed: true, error: true}",
                    _ => "",
                };
                yaml.push_str(&format!("{{name: s{k}{extra}}}"));
                k += 1;
            }
            yaml.push(']');
            if g + 1 < groups {
                yaml.push_str(", ");
            }
        }
        yaml.push_str("]}");
        let st = steps(&yaml);
        let parallelism = [None, Some(1), Some(2)][rng.below(3) as usize];
        let opts = PlanOptions {
            parallelism,
            ..Default::default()
        };
        let mut states = TaskStates::new();
        let mut done = None;
        for _ in 0..100 {
            let mut d = plan(&st, &states, &opts);
            if !d.evaluate_when.is_empty() {
                for s in &d.evaluate_when {
                    states.set_when(s, rng.below(2) == 0);
                }
                d = plan(&st, &states, &opts);
            }
            let ctx = format!("case {case}: {yaml}\n{d:?}");
            for s in d.start.iter().chain(&d.expand) {
                assert_eq!(states.get(s).effective_phase(), None, "{s} twice: {ctx}");
                // Every earlier group has finished.
                let g = st.group_of(s).expect("known step");
                assert_eq!(d.group, Some(g), "{ctx}");
                assert!(d.groups_done.iter().all(|o| o.index < g), "{ctx}");
                assert_eq!(d.groups_done.len(), g, "{ctx}");
            }
            if d.phase != TemplatePhase::Running {
                done = Some(d.phase);
                break;
            }
            for s in &d.skip {
                states.set_phase(s, Skipped);
            }
            for s in &d.start {
                states.set_phase(s, Running);
            }
            for s in &d.expand {
                states.set_children(s, vec![None, None]);
            }
            for c in &d.start_children {
                states.set_child(&c.task, c.index, Running);
            }
            for g in 0..st.group_count() {
                for s in st.group(g) {
                    let cur = states.get(s);
                    if let Some(children) = &cur.children {
                        for (i, c) in children.iter().enumerate() {
                            if *c == Some(Running) {
                                let o = outcomes[rng.below(5) as usize];
                                states.set_child(s, i, o);
                            }
                        }
                    } else if cur.phase == Some(Running) {
                        states.set_phase(s, outcomes[rng.below(5) as usize]);
                    }
                }
            }
        }
        assert!(done.is_some(), "case {case} never finished: {yaml}");
    }
}
