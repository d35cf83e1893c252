//! Steps templates: the validated step groups and the pure scheduling decision.
//!
//! Owns [`Steps::from_template`] (Argo's validation of a `steps` template: names required,
//! unique across the template, in Argo's field-name format; `continueOn` well-formed) and
//! [`plan`], which says what the controller does next with a steps node, in the same style as
//! [`super::dag::plan`]: steps to start, loop steps to expand and their children to start,
//! `when` conditions to evaluate, steps to mark Skipped, the step groups that just finished
//! (to mark their `StepGroup` nodes) and the template's phase. No I/O.
//!
//! State is [`TaskStates`] keyed by step name (step names are unique across the template), read
//! from the `<steps node>[<group>].<step>` nodes; a loop step's children are
//! `<steps node>[<group>].<step>(<i>:<item>)`.
//!
//! Argo semantics kept (argo-workflows `workflow/controller/steps.go`, docs "Steps"):
//! - The outer list runs in order: group `i+1` starts only once every step of group `i` has
//!   finished (Succeeded, Failed, Error, Skipped, a daemon that is up) and its exit handlers are
//!   done. The inner list runs in parallel.
//! - A step whose `when` is false is Skipped; a loop step's `when` is evaluated per child by the
//!   caller; a loop over nothing is Skipped ("Skipped, empty params").
//! - A finished group fails when one of its steps (each child, for a loop step) Failed or
//!   errored without a `continueOn` covering it; the template then fails at once with the group's
//!   message and later groups never start. Otherwise the group succeeds and the next one runs.
//!   The template succeeds when its last group has.
//! - Template `parallelism` caps running steps/children (daemons count); starts come in
//!   declaration order. Template `failFast` stops new starts after any failed child and fails
//!   the template with Argo's message. A shutdown starts nothing and fails the template once
//!   nothing runs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::dag::{
    ChildStart, ContinueOn, NodePhase, PlanOptions, TaskState, TaskStates, TemplatePhase,
    loop_children, node_phase, nodes_by_name,
};
use super::depends::is_task_name;
use super::types::{NodeStatus, Template};

/// Argo's message when a template's own `failFast` stops it.
const FAIL_FAST_MESSAGE: &str = "template has failed or errored children and failFast enabled";

/// Errors of a steps template.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StepsError {
    /// The template has no `steps`.
    #[error("template '{template}': not a steps template (no 'steps' field)")]
    NotSteps {
        /// Template name.
        template: String,
    },
    /// A step without a name.
    #[error("template '{template}': steps[{group}][{index}].name is required")]
    MissingName {
        /// Template name.
        template: String,
        /// Group index.
        group: usize,
        /// Index in the group.
        index: usize,
    },
    /// A name outside Argo's field-name format.
    #[error(
        "template '{template}': steps[{group}].name '{step}' is invalid: expected [a-zA-Z0-9][-a-zA-Z0-9]*"
    )]
    InvalidName {
        /// Template name.
        template: String,
        /// Group index.
        group: usize,
        /// The name as written.
        step: String,
    },
    /// Two steps with the same name (anywhere in the template).
    #[error("template '{template}': steps[{group}].name '{step}' is not unique")]
    DuplicateStep {
        /// Template name.
        template: String,
        /// Group index of the second occurrence.
        group: usize,
        /// The repeated name.
        step: String,
    },
    /// `continueOn` is not `{failed: bool, error: bool}`.
    #[error("template '{template}': step '{step}': continueOn: {reason}")]
    InvalidContinueOn {
        /// Template name.
        template: String,
        /// Step name.
        step: String,
        /// What is wrong.
        reason: String,
    },
}

impl StepsError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            StepsError::NotSteps { .. } => "not_steps",
            StepsError::MissingName { .. } => "missing_name",
            StepsError::InvalidName { .. } => "invalid_name",
            StepsError::DuplicateStep { .. } => "duplicate_step",
            StepsError::InvalidContinueOn { .. } => "continue_on",
        }
    }
}

#[derive(Clone, Debug)]
struct Step {
    name: String,
    has_when: bool,
    is_loop: bool,
    continue_on: ContinueOn,
}

/// A validated steps template.
#[derive(Clone, Debug)]
pub struct Steps {
    template: String,
    groups: Vec<Vec<Step>>,
    /// Step name → group index.
    index: BTreeMap<String, usize>,
}

impl Steps {
    /// Reads and validates the `steps` of `template`.
    pub fn from_template(template: &Template) -> Result<Steps, StepsError> {
        let name = template.name.clone();
        let Some(groups) = &template.steps else {
            return Err(StepsError::NotSteps { template: name });
        };
        let mut index = BTreeMap::new();
        let mut out = Vec::with_capacity(groups.len());
        for (g, group) in groups.iter().enumerate() {
            let mut steps = Vec::with_capacity(group.len());
            for (i, spec) in group.iter().enumerate() {
                if spec.name.is_empty() {
                    return Err(StepsError::MissingName {
                        template: name,
                        group: g,
                        index: i,
                    });
                }
                if !is_task_name(&spec.name) {
                    return Err(StepsError::InvalidName {
                        template: name,
                        group: g,
                        step: spec.name.clone(),
                    });
                }
                if index.insert(spec.name.clone(), g).is_some() {
                    return Err(StepsError::DuplicateStep {
                        template: name,
                        group: g,
                        step: spec.name.clone(),
                    });
                }
                let continue_on =
                    ContinueOn::from_value(spec.continue_on.as_ref()).map_err(|reason| {
                        StepsError::InvalidContinueOn {
                            template: name.clone(),
                            step: spec.name.clone(),
                            reason,
                        }
                    })?;
                steps.push(Step {
                    name: spec.name.clone(),
                    has_when: spec.when.as_deref().is_some_and(|w| !w.trim().is_empty()),
                    is_loop: spec.with_items.is_some()
                        || spec.with_param.is_some()
                        || spec.with_sequence.is_some(),
                    continue_on,
                });
            }
            out.push(steps);
        }
        Ok(Steps {
            template: name,
            groups: out,
            index,
        })
    }

    /// The template's name.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The number of step groups.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The group a step belongs to.
    pub fn group_of(&self, step: &str) -> Option<usize> {
        self.index.get(step).copied()
    }

    /// Reads the steps of the steps node named `boundary` from a workflow's `.status.nodes`, by
    /// Argo's node names: `<boundary>[<g>].<step>` for a step; the children of a loop step are
    /// the children of the StepGroup node `<boundary>[<g>]` named
    /// `<boundary>[<g>].<step>(<i>:<item>)` (retry attempts, `…(<n>)`, are not). As with
    /// [`TaskStates::from_nodes`], children without a node yet are for the caller to add.
    pub fn states_from_nodes(
        &self,
        boundary: &str,
        nodes: &BTreeMap<String, NodeStatus>,
    ) -> TaskStates {
        let by_name = nodes_by_name(nodes);
        let mut states = TaskStates::new();
        for (g, group) in self.groups.iter().enumerate() {
            let group_name = format!("{boundary}[{g}]");
            for step in group {
                let name = format!("{group_name}.{}", step.name);
                if let Some(phase) = by_name.get(name.as_str()).and_then(|n| node_phase(n)) {
                    states.set_phase(&step.name, phase);
                }
                if step.is_loop
                    && let Some(sg) = by_name.get(group_name.as_str())
                {
                    for (index, phase) in loop_children(nodes, sg, &name) {
                        states.set_child(&step.name, index, phase);
                    }
                }
            }
        }
        states
    }

    /// Step names of group `g`, in declaration order.
    pub fn group(&self, g: usize) -> Vec<&str> {
        self.groups
            .get(g)
            .map(|steps| steps.iter().map(|s| s.name.as_str()).collect())
            .unwrap_or_default()
    }
}

/// A step group that has finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GroupOutcome {
    /// Group index.
    pub index: usize,
    /// Succeeded or Failed (Argo marks a failed group Failed, even for an errored child).
    pub phase: TemplatePhase,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What to do next with one steps node. Lists are in declaration order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepsDecision {
    /// The group being run, `None` once the template is finished.
    pub group: Option<usize>,
    /// Steps to start now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start: Vec<String>,
    /// Loop steps to expand now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expand: Vec<String>,
    /// Loop children to start now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start_children: Vec<ChildStart>,
    /// Steps whose `when` must be evaluated before they can start or be skipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evaluate_when: Vec<String>,
    /// Steps to mark Skipped (`when` false).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<String>,
    /// Steps ready but held back by parallelism.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub throttled: Vec<String>,
    /// Every finished group, in order (mark their StepGroup nodes).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups_done: Vec<GroupOutcome>,
    /// The template's phase after this decision.
    pub phase: TemplatePhase,
    /// Why the template failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a group needs, before slots and stops apply.
#[derive(Default)]
struct GroupWork<'a> {
    start: Vec<&'a str>,
    expand: Vec<&'a str>,
    children: Vec<(&'a str, usize)>,
    evaluate_when: Vec<&'a str>,
    skip: Vec<&'a str>,
    /// A step is created but not finished (or its exit handler runs).
    running: bool,
}

/// Decides what the controller does next with a steps node; see the module docs.
pub fn plan(steps: &Steps, state: &TaskStates, opts: &PlanOptions) -> StepsDecision {
    let all: Vec<(&Step, TaskState)> = steps
        .groups
        .iter()
        .flatten()
        .map(|s| (s, state.get(&s.name)))
        .collect();
    let active: usize = all
        .iter()
        .map(|(_, st)| match &st.children {
            Some(children) => children.iter().flatten().filter(|p| p.active()).count(),
            None => usize::from(st.phase.is_some_and(NodePhase::active)),
        })
        .sum();
    let any_failed = all.iter().any(|(_, st)| {
        st.phase.is_some_and(NodePhase::failed_or_error)
            || st
                .children
                .iter()
                .flatten()
                .flatten()
                .any(|p| p.failed_or_error())
    });
    let fail_fast = opts.template_fail_fast && any_failed;
    let stop = opts.shutdown || fail_fast;

    let mut decision = StepsDecision {
        group: None,
        start: Vec::new(),
        expand: Vec::new(),
        start_children: Vec::new(),
        evaluate_when: Vec::new(),
        skip: Vec::new(),
        throttled: Vec::new(),
        groups_done: Vec::new(),
        phase: TemplatePhase::Succeeded,
        message: None,
    };

    for (g, group) in steps.groups.iter().enumerate() {
        let work = group_work(group, state);
        // Skips decided now are recorded even if the group then waits.
        decision
            .skip
            .extend(work.skip.iter().map(|s| (*s).to_owned()));
        let waiting = work.running
            || !work.start.is_empty()
            || !work.expand.is_empty()
            || !work.children.is_empty()
            || !work.evaluate_when.is_empty();
        if waiting {
            decision.group = Some(g);
            if !stop {
                apply_slots(&mut decision, group, &work, opts, active);
            }
            break;
        }
        match failed_step(group, state) {
            Some(message) => {
                decision.groups_done.push(GroupOutcome {
                    index: g,
                    phase: TemplatePhase::Failed,
                    message: Some(message.clone()),
                });
                decision.phase = TemplatePhase::Failed;
                decision.message = Some(if fail_fast {
                    FAIL_FAST_MESSAGE.to_owned()
                } else {
                    message
                });
                return decision;
            }
            None => decision.groups_done.push(GroupOutcome {
                index: g,
                phase: TemplatePhase::Succeeded,
                message: None,
            }),
        }
    }

    let busy = decision.group.is_some()
        && (all.iter().any(|(_, st)| st.in_flight())
            || !decision.start.is_empty()
            || !decision.expand.is_empty()
            || !decision.start_children.is_empty()
            || !decision.evaluate_when.is_empty()
            || !decision.throttled.is_empty());
    if busy {
        decision.phase = TemplatePhase::Running;
    } else if opts.shutdown {
        decision.phase = TemplatePhase::Failed;
        decision.message = Some("the workflow was shut down".to_owned());
    } else if fail_fast {
        decision.phase = TemplatePhase::Failed;
        decision.message = Some(FAIL_FAST_MESSAGE.to_owned());
    }
    decision
}

/// What group `group` still needs; a group needing nothing has finished.
fn group_work<'a>(group: &'a [Step], state: &TaskStates) -> GroupWork<'a> {
    let mut work = GroupWork::default();
    for step in group {
        let st = state.get(&step.name);
        match st.effective_phase() {
            Some(phase) => {
                if !phase.fulfilled() || st.hooks_pending {
                    work.running = true;
                }
                if let Some(children) = &st.children
                    && !matches!(st.phase, Some(NodePhase::Skipped | NodePhase::Omitted))
                {
                    for (i, child) in children.iter().enumerate() {
                        if child.is_none() {
                            work.children.push((&step.name, i));
                        }
                    }
                }
            }
            None if step.is_loop => work.expand.push(&step.name),
            None if !step.has_when => work.start.push(&step.name),
            None => match st.when {
                None => work.evaluate_when.push(&step.name),
                Some(true) => work.start.push(&step.name),
                Some(false) => work.skip.push(&step.name),
            },
        }
    }
    work
}

/// Hands out free slots in declaration order: a loop step's children, then later steps.
fn apply_slots(
    decision: &mut StepsDecision,
    group: &[Step],
    work: &GroupWork<'_>,
    opts: &PlanOptions,
    active: usize,
) {
    let mut slots = match (opts.parallelism, opts.max_starts) {
        (Some(p), Some(m)) => Some(p.saturating_sub(active).min(m)),
        (Some(p), None) => Some(p.saturating_sub(active)),
        (None, m) => m,
    };
    let mut take = || match &mut slots {
        None => true,
        Some(0) => false,
        Some(s) => {
            *s -= 1;
            true
        }
    };
    let throttle = |decision: &mut StepsDecision, name: &str| {
        if !decision.throttled.iter().any(|t| t == name) {
            decision.throttled.push(name.to_owned());
        }
    };
    for step in group {
        let name = step.name.as_str();
        for &(_, index) in work.children.iter().filter(|(n, _)| *n == name) {
            if take() {
                decision.start_children.push(ChildStart {
                    task: name.to_owned(),
                    index,
                });
            } else {
                throttle(decision, name);
            }
        }
        if work.start.contains(&name) {
            if take() {
                decision.start.push(name.to_owned());
            } else {
                throttle(decision, name);
            }
        }
    }
    decision.expand = work.expand.iter().map(|s| (*s).to_owned()).collect();
    decision.evaluate_when = work.evaluate_when.iter().map(|s| (*s).to_owned()).collect();
}

/// The message of the first step (or loop child) of a finished group that failed or errored
/// without a `continueOn` covering it.
fn failed_step(group: &[Step], state: &TaskStates) -> Option<String> {
    for step in group {
        let st = state.get(&step.name);
        let failing = |p: NodePhase| p.failed_or_error() && !step.continue_on.covers(p);
        match &st.children {
            Some(children)
                if !matches!(st.phase, Some(NodePhase::Skipped | NodePhase::Omitted)) =>
            {
                for (i, child) in children.iter().enumerate() {
                    if let Some(p) = child
                        && failing(*p)
                    {
                        return Some(format!("child '{}({i})' {}", step.name, verb(*p)));
                    }
                }
            }
            _ => {
                if let Some(p) = st.effective_phase()
                    && failing(p)
                {
                    return Some(format!("child '{}' {}", step.name, verb(p)));
                }
            }
        }
    }
    None
}

fn verb(p: NodePhase) -> &'static str {
    if p == NodePhase::Error {
        "errored"
    } else {
        "failed"
    }
}

#[cfg(test)]
mod tests;
