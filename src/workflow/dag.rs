//! DAG templates: the validated task graph and the pure scheduling decision.
//!
//! Owns two things, both free of I/O:
//! - [`Dag::from_template`] / [`Dag::new`]: a DAG template's tasks as a petgraph graph, checked
//!   the way Argo's validation checks them (names, duplicates, `depends` syntax, unknown
//!   references, cycles named edge by edge, `depends` mixed with `dependencies`, `target`s).
//! - [`plan`]: given each task's state (from the Workflow's `.status.nodes`, see
//!   [`TaskStates::from_nodes`]) it says what the controller does next: tasks to start, loop
//!   tasks to expand and loop children to start, `when` conditions to evaluate, tasks to mark
//!   Skipped or Omitted, and the DAG's own phase. It never touches the network.
//!
//! [`plan`] is the DESIGN's `dag::ready(workflow_status)`, widened to everything the controller
//! must do besides starting pods. How a controller uses it, once per reconcile of a DAG node:
//! 1. build the [`Dag`] (cheap; validation errors are reported at submission),
//! 2. read [`TaskStates`] from the node statuses and call [`plan`],
//! 3. evaluate the `when` of every task in [`Decision::evaluate_when`] (the expression engine
//!    does that), record the results with [`TaskStates::set_when`] and call [`plan`] again: it
//!    is pure and fast, and a `when` result can only turn into a start or a skip (a `when` that
//!    fails to evaluate is the caller's to mark Error, as Argo does),
//! 4. apply the decision: create Skipped/Omitted nodes, expand loops, create pods (node names
//!    `<dag node>.<task>`), then mark the DAG node with [`Decision::phase`] once it is final.
//!
//! Argo semantics kept (argo-workflows `workflow/controller/dag.go`, `workflow/common/
//! ancestry.go`, docs "DAG" and "Enhanced Depends Logic"):
//! - A task is decided only when every task its `depends` names has finished (Succeeded,
//!   Failed, Error, Skipped, Omitted, or a daemon that is up) and their exit handlers/hooks are
//!   done. If the expression is false the task is **Omitted**; if it is true and the task's
//!   `when` is false the task is **Skipped**; otherwise it starts. Omitting or skipping a task
//!   can decide its dependents at once, so one plan settles whole chains.
//! - A bare `A` is `A.Succeeded || A.Skipped || A.Daemoned`, widened by `A`'s `continueOn`;
//!   `dependencies: [A, B]` is `A && B`.
//! - Loop tasks (`withItems`/`withParam`/`withSequence`): the task's phase is that of its
//!   children (Running until all have finished, then Succeeded, or the phase of the last child
//!   that failed or errored); no children means Skipped ("empty params"). `AnySucceeded` and
//!   `AllFailed` read the children. A loop task's `when` is evaluated per child by the caller
//!   (it may use `{{item}}`), so [`plan`] never asks for it.
//! - Targets are `dag.target` (space-separated) or else the leaf tasks (no dependents, sorted by
//!   name as Argo sorts them). Only targets and their transitive dependencies ever run.
//! - The DAG is Running while any of its tasks is Pending/Running (daemons excepted) or can
//!   still be started. Then each target's *branch phase* decides: a target's own phase when it
//!   completed (Succeeded/Failed/Error), else (Skipped, Omitted, daemon) the failing phase of a
//!   parent branch if any, else Succeeded. A failing branch fails the DAG unless the target has
//!   `continueOn` for that phase. So failures handled by `depends` (`C.Failed`) or in non-leaf
//!   tasks whose dependents still ran do not fail the DAG, as in Argo.
//! - `failFast` (default true), as documented: once the DAG is certain to fail, no new task
//!   starts, running ones finish, then the DAG fails. "Certain" is: a target's branch has
//!   failed, or will (its `depends` can no longer be true, three-valued, and a failed parent
//!   branch would pass to it). Argo's controller also starts tasks that become ready in the
//!   same reconcile as the failure (argo-workflows#5223, #10312); cairn follows the docs.
//! - Template `parallelism`: never more running tasks/loop children (pods, nested DAG/steps;
//!   daemons count, as in Argo) than the limit; starts are given in declaration order. The
//!   template-level `failFast` (with `parallelism`) stops new starts after any failed child and
//!   fails the template, with Argo's message.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;
use serde_json::Value;

use super::depends::{self, DependsError, Expr, Outcome};
use super::types::{DagTask, DagTemplate, NodeStatus, Template};

/// Phase of a task's node, Argo's strings. `Daemoned` stands for a daemon step that is up (Argo
/// keeps it Running with `daemoned: true`; dependents treat it as finished).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum NodePhase {
    /// Created, not running yet.
    Pending,
    /// Running.
    Running,
    /// Finished without error.
    Succeeded,
    /// Exited non-zero.
    Failed,
    /// Ended in an error.
    Error,
    /// `when` was false (or a loop over nothing).
    Skipped,
    /// `depends` was false.
    Omitted,
    /// A daemon that is up.
    Daemoned,
}

impl NodePhase {
    /// The phase named by Argo's `phase` string (`Daemoned` has no string of its own).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Pending" => Self::Pending,
            "Running" => Self::Running,
            "Succeeded" => Self::Succeeded,
            "Failed" => Self::Failed,
            "Error" => Self::Error,
            "Skipped" => Self::Skipped,
            "Omitted" => Self::Omitted,
            _ => return None,
        })
    }

    /// Argo's spelling (a daemon that is up is "Running").
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running | Self::Daemoned => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Error => "Error",
            Self::Skipped => "Skipped",
            Self::Omitted => "Omitted",
        }
    }

    /// Finished as far as dependents are concerned (Argo's `Fulfilled`).
    pub fn fulfilled(self) -> bool {
        !matches!(self, Self::Pending | Self::Running)
    }

    /// Ran to an end: Succeeded, Failed or Error (Argo's `Completed`).
    pub fn completed(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Error)
    }

    /// Failed or Error.
    pub fn failed_or_error(self) -> bool {
        matches!(self, Self::Failed | Self::Error)
    }

    /// Occupies a parallelism slot (Argo counts Pending and Running pods, daemons included).
    pub fn active(self) -> bool {
        matches!(self, Self::Pending | Self::Running | Self::Daemoned)
    }
}

/// `continueOn` of a task or step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContinueOn {
    /// Dependents run, and the template does not fail, when the task Failed.
    pub failed: bool,
    /// The same when it ended in Error.
    pub error: bool,
}

impl ContinueOn {
    /// Reads `{failed: bool, error: bool}`; `None` is no continueOn. `Err` carries what was
    /// found instead.
    pub fn from_value(value: Option<&Value>) -> Result<Self, String> {
        let Some(value) = value else {
            return Ok(Self::default());
        };
        let Value::Object(map) = value else {
            return Err(format!(
                "expected an object {{failed, error}}, found {value}"
            ));
        };
        let flag = |key: &str| match map.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("expected '{key}' to be a boolean, found {other}")),
        };
        Ok(Self {
            failed: flag("failed")?,
            error: flag("error")?,
        })
    }

    /// True when this continueOn covers `phase`.
    pub fn covers(self, phase: NodePhase) -> bool {
        match phase {
            NodePhase::Failed => self.failed,
            NodePhase::Error => self.error,
            _ => false,
        }
    }
}

/// Errors of a DAG template.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DagError {
    /// The template has no `dag`.
    #[error("template '{template}': not a DAG template (no 'dag' field)")]
    NotDag {
        /// Template name.
        template: String,
    },
    /// A task without a name.
    #[error("template '{template}': tasks[{index}].name is required")]
    MissingName {
        /// Template name.
        template: String,
        /// Index of the task.
        index: usize,
    },
    /// A task name outside Argo's format, or starting with a digit while the DAG uses
    /// `depends`/`dependencies`.
    #[error("template '{template}': task name '{task}' is invalid: {reason}")]
    InvalidName {
        /// Template name.
        template: String,
        /// The name as written.
        task: String,
        /// What was expected.
        reason: &'static str,
    },
    /// Two tasks with the same name.
    #[error("template '{template}': task name '{task}' is not unique")]
    DuplicateTask {
        /// Template name.
        template: String,
        /// The repeated name.
        task: String,
    },
    /// Some tasks use `depends` and others `dependencies`.
    #[error(
        "template '{template}': cannot use both 'depends' and 'dependencies' in the same DAG template"
    )]
    MixedDependencyFields {
        /// Template name.
        template: String,
    },
    /// A `depends` expression or `dependencies` entry that does not parse.
    #[error("template '{template}': {source}")]
    Depends {
        /// Template name.
        template: String,
        /// The parse error (names the task and column).
        source: Box<DependsError>,
    },
    /// A dependency on a task that does not exist.
    #[error(
        "template '{template}': task '{task}' depends on '{dependency}', which is not a task of this DAG"
    )]
    UnknownDependency {
        /// Template name.
        template: String,
        /// The dependent task.
        task: String,
        /// The missing task.
        dependency: String,
    },
    /// Dependencies form a cycle (the first element is repeated at the end).
    #[error("template '{template}': dependency cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// Template name.
        template: String,
        /// The tasks of the cycle, in dependency order.
        cycle: Vec<String>,
    },
    /// `target` names a task that does not exist.
    #[error("template '{template}': target '{target}' is not a task of this DAG")]
    UnknownTarget {
        /// Template name.
        template: String,
        /// The target as written.
        target: String,
    },
    /// `target` still holds a `{{...}}` tag: the caller must resolve it first.
    #[error(
        "template '{template}': target '{target}' is not resolved (substitute its {{{{...}}}} tags first)"
    )]
    UnresolvedTarget {
        /// Template name.
        template: String,
        /// The target as given.
        target: String,
    },
    /// `continueOn` is not `{failed: bool, error: bool}`.
    #[error("template '{template}': task '{task}': continueOn: {reason}")]
    InvalidContinueOn {
        /// Template name.
        template: String,
        /// Task name.
        task: String,
        /// What is wrong.
        reason: String,
    },
}

impl DagError {
    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DagError::NotDag { .. } => "not_dag",
            DagError::MissingName { .. } => "missing_name",
            DagError::InvalidName { .. } => "invalid_name",
            DagError::DuplicateTask { .. } => "duplicate_task",
            DagError::MixedDependencyFields { .. } => "mixed_dependency_fields",
            DagError::Depends { .. } => "depends",
            DagError::UnknownDependency { .. } => "unknown_dependency",
            DagError::Cycle { .. } => "cycle",
            DagError::UnknownTarget { .. } => "unknown_target",
            DagError::UnresolvedTarget { .. } => "unresolved_target",
            DagError::InvalidContinueOn { .. } => "continue_on",
        }
    }
}

/// One task as the scheduler sees it.
#[derive(Clone, Debug)]
struct Task {
    name: String,
    /// `depends`, or `dependencies` joined with `&&`; `None` for a root task.
    depends: Option<Expr>,
    /// Indexes of the tasks `depends` names, in declaration order.
    deps: Vec<usize>,
    /// Indexes of the tasks that depend on this one, in declaration order.
    dependents: Vec<usize>,
    has_when: bool,
    is_loop: bool,
    continue_on: ContinueOn,
}

/// A validated DAG template. Task order is declaration order throughout.
#[derive(Clone, Debug)]
pub struct Dag {
    template: String,
    tasks: Vec<Task>,
    index: BTreeMap<String, usize>,
    /// Edge dependency → dependent; node `i` is task `i`.
    graph: DiGraph<usize, ()>,
    /// Topological order, ties broken by declaration order.
    topo: Vec<usize>,
    targets: Vec<usize>,
    /// Targets and their transitive dependencies: the only tasks that run.
    scheduled: Vec<bool>,
    fail_fast: bool,
}

impl Dag {
    /// Builds the DAG of `template`. `target` is the resolved `dag.target` (its `{{...}}` tags
    /// substituted, e.g. from the workflow argument `target`); `None` uses `dag.target` as
    /// written.
    pub fn from_template(template: &Template, target: Option<&str>) -> Result<Dag, DagError> {
        let Some(dag) = &template.dag else {
            return Err(DagError::NotDag {
                template: template.name.clone(),
            });
        };
        Dag::new(&template.name, dag, target)
    }

    /// Builds the DAG of the template named `template`; see [`Dag::from_template`].
    pub fn new(template: &str, dag: &DagTemplate, target: Option<&str>) -> Result<Dag, DagError> {
        let specs: &[DagTask] = dag.tasks.as_deref().unwrap_or(&[]);
        let name = template.to_owned();
        let uses_depends = specs
            .iter()
            .any(|t| t.depends.as_deref().is_some_and(|d| !d.is_empty()));
        let uses_dependencies = specs
            .iter()
            .any(|t| t.dependencies.as_ref().is_some_and(|d| !d.is_empty()));
        if uses_depends && uses_dependencies {
            return Err(DagError::MixedDependencyFields { template: name });
        }

        let mut index = BTreeMap::new();
        let mut tasks = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            if spec.name.is_empty() {
                return Err(DagError::MissingName {
                    template: name,
                    index: i,
                });
            }
            if !depends::is_task_name(&spec.name) {
                return Err(DagError::InvalidName {
                    template: name,
                    task: spec.name.clone(),
                    reason: "expected [a-zA-Z0-9][-a-zA-Z0-9]*",
                });
            }
            if (uses_depends || uses_dependencies)
                && spec.name.starts_with(|c: char| c.is_ascii_digit())
            {
                return Err(DagError::InvalidName {
                    template: name,
                    task: spec.name.clone(),
                    reason: "cannot begin with a digit when using either 'depends' or 'dependencies'",
                });
            }
            if index.insert(spec.name.clone(), i).is_some() {
                return Err(DagError::DuplicateTask {
                    template: name,
                    task: spec.name.clone(),
                });
            }
            let depends = match (&spec.depends, &spec.dependencies) {
                (Some(d), _) if !d.is_empty() => depends::parse(&spec.name, d),
                (_, Some(list)) => depends::from_dependencies(&spec.name, list),
                _ => Ok(None),
            }
            .map_err(|source| DagError::Depends {
                template: name.clone(),
                source: Box::new(source),
            })?;
            let continue_on =
                ContinueOn::from_value(spec.continue_on.as_ref()).map_err(|reason| {
                    DagError::InvalidContinueOn {
                        template: name.clone(),
                        task: spec.name.clone(),
                        reason,
                    }
                })?;
            tasks.push(Task {
                name: spec.name.clone(),
                depends,
                deps: Vec::new(),
                dependents: Vec::new(),
                has_when: spec.when.as_deref().is_some_and(|w| !w.trim().is_empty()),
                is_loop: spec.with_items.is_some()
                    || spec.with_param.is_some()
                    || spec.with_sequence.is_some(),
                continue_on,
            });
        }

        let mut graph = DiGraph::with_capacity(tasks.len(), tasks.len());
        for i in 0..tasks.len() {
            graph.add_node(i);
        }
        for i in 0..tasks.len() {
            let mut deps = BTreeSet::new();
            if let Some(expr) = &tasks[i].depends {
                for dep in expr.tasks() {
                    let Some(&j) = index.get(dep) else {
                        return Err(DagError::UnknownDependency {
                            template: name,
                            task: tasks[i].name.clone(),
                            dependency: dep.to_owned(),
                        });
                    };
                    deps.insert(j);
                }
            }
            for &j in &deps {
                graph.add_edge(NodeIndex::new(j), NodeIndex::new(i), ());
                tasks[j].dependents.push(i);
            }
            tasks[i].deps = deps.into_iter().collect();
        }
        // Dependents were pushed in increasing i: already in declaration order.

        if let Some(cycle) = find_cycle(&graph, &tasks) {
            return Err(DagError::Cycle {
                template: name,
                cycle,
            });
        }
        let topo = topological_order(&tasks);

        let written = dag.target.as_deref().unwrap_or("");
        let target = target.unwrap_or(written);
        if target.contains("{{") {
            return Err(DagError::UnresolvedTarget {
                template: name,
                target: target.to_owned(),
            });
        }
        let mut targets = Vec::new();
        for t in target.split_whitespace() {
            let Some(&i) = index.get(t) else {
                return Err(DagError::UnknownTarget {
                    template: name,
                    target: t.to_owned(),
                });
            };
            if !targets.contains(&i) {
                targets.push(i);
            }
        }
        if targets.is_empty() {
            // Argo's findLeafTaskNames: tasks nobody depends on, sorted by name.
            let mut leaves: Vec<usize> = (0..tasks.len())
                .filter(|&i| tasks[i].dependents.is_empty())
                .collect();
            leaves.sort_by(|&a, &b| tasks[a].name.cmp(&tasks[b].name));
            targets = leaves;
        }
        let mut scheduled = vec![false; tasks.len()];
        let mut reversed = graph.clone();
        reversed.reverse();
        for &t in &targets {
            let mut dfs = petgraph::visit::Dfs::new(&reversed, NodeIndex::new(t));
            while let Some(n) = dfs.next(&reversed) {
                scheduled[n.index()] = true;
            }
        }

        Ok(Dag {
            template: name,
            tasks,
            index,
            graph,
            topo,
            targets,
            scheduled,
            fail_fast: dag.fail_fast.unwrap_or(true),
        })
    }

    /// The template's name.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Task names in declaration order.
    pub fn tasks(&self) -> impl Iterator<Item = &str> {
        self.tasks.iter().map(|t| t.name.as_str())
    }

    /// The target tasks, in the order the DAG phase considers them.
    pub fn targets(&self) -> Vec<&str> {
        self.targets
            .iter()
            .map(|&i| self.tasks[i].name.as_str())
            .collect()
    }

    /// The tasks that run (targets and their transitive dependencies), in declaration order.
    pub fn scheduled(&self) -> Vec<&str> {
        (0..self.tasks.len())
            .filter(|&i| self.scheduled[i])
            .map(|i| self.tasks[i].name.as_str())
            .collect()
    }

    /// The tasks `task` depends on, in declaration order; `None` for an unknown task.
    pub fn dependencies(&self, task: &str) -> Option<Vec<&str>> {
        let &i = self.index.get(task)?;
        Some(
            self.tasks[i]
                .deps
                .iter()
                .map(|&j| self.tasks[j].name.as_str())
                .collect(),
        )
    }

    /// The `depends` expression of `task` (from `depends` or `dependencies`).
    pub fn depends(&self, task: &str) -> Option<&Expr> {
        self.tasks[*self.index.get(task)?].depends.as_ref()
    }

    /// Whether `failFast` is on (Argo's default: true).
    pub fn fail_fast(&self) -> bool {
        self.fail_fast
    }

    /// The number of dependency edges (for diagnostics).
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }
}

/// A cycle, if any, as task names with the first repeated at the end. Deterministic: the cycle
/// through the lowest-declared task of the first strongly connected component found.
fn find_cycle(graph: &DiGraph<usize, ()>, tasks: &[Task]) -> Option<Vec<String>> {
    let mut best: Option<Vec<usize>> = None;
    for scc in petgraph::algo::tarjan_scc(graph) {
        let members: BTreeSet<usize> = scc.iter().map(|n| n.index()).collect();
        let Some(&start) = members.first() else {
            continue;
        };
        let cyclic = members.len() > 1 || tasks[start].deps.contains(&start);
        if !cyclic || best.as_ref().is_some_and(|b| b[0] < start) {
            continue;
        }
        // Walk dependents inside the component, lowest index first, until back at start.
        let mut path = vec![start];
        let mut seen = BTreeSet::from([start]);
        let mut current = start;
        loop {
            let next = tasks[current]
                .dependents
                .iter()
                .copied()
                .filter(|d| members.contains(d))
                .find(|d| *d == start || !seen.contains(d));
            match next {
                Some(d) if d == start => break,
                Some(d) => {
                    path.push(d);
                    seen.insert(d);
                    current = d;
                }
                None => {
                    // Dead end inside the component: backtrack one step and avoid it.
                    path.pop();
                    match path.last() {
                        Some(&prev) => current = prev,
                        None => break,
                    }
                }
            }
        }
        if !path.is_empty() {
            best = Some(path);
        }
    }
    best.map(|path| {
        let mut names: Vec<String> = path.iter().map(|&i| tasks[i].name.clone()).collect();
        names.push(tasks[path[0]].name.clone());
        names
    })
}

/// Kahn's algorithm with the lowest declaration index first, so plans are deterministic.
fn topological_order(tasks: &[Task]) -> Vec<usize> {
    let mut remaining: Vec<usize> = tasks.iter().map(|t| t.deps.len()).collect();
    let mut ready: BTreeSet<usize> = (0..tasks.len()).filter(|&i| remaining[i] == 0).collect();
    let mut order = Vec::with_capacity(tasks.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &tasks[i].dependents {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                ready.insert(d);
            }
        }
    }
    order
}

/// What the controller knows of one task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskState {
    /// Phase of the task's node; `None` while it has no node.
    pub phase: Option<NodePhase>,
    /// For an expanded loop task: its children in item order, `None` for a child whose node is
    /// not created yet. Once set, the task's phase is derived from them.
    pub children: Option<Vec<Option<NodePhase>>>,
    /// The task's `when`, once evaluated by the caller.
    pub when: Option<bool>,
    /// The task's onExit handler or lifecycle hooks have not finished: dependents wait.
    pub hooks_pending: bool,
}

impl TaskState {
    /// The phase the scheduler reasons with: a loop's from its children, else the node's.
    pub fn effective_phase(&self) -> Option<NodePhase> {
        if matches!(self.phase, Some(NodePhase::Skipped | NodePhase::Omitted)) {
            return self.phase;
        }
        match &self.children {
            Some(children) => Some(group_phase(children)),
            None => self.phase,
        }
    }

    /// Something of this task runs: its node (or a loop child) is Pending/Running, or its exit
    /// handler is. Loop children not created yet do not count: they are starts, not work in
    /// flight, and a stopped DAG abandons them.
    pub fn in_flight(&self) -> bool {
        let Some(phase) = self.effective_phase() else {
            return false;
        };
        if self.hooks_pending {
            return true;
        }
        match &self.children {
            Some(children)
                if !matches!(self.phase, Some(NodePhase::Skipped | NodePhase::Omitted)) =>
            {
                children
                    .iter()
                    .flatten()
                    .any(|p| matches!(p, NodePhase::Pending | NodePhase::Running))
            }
            _ => !phase.fulfilled(),
        }
    }

    fn outcome(&self, continue_on: ContinueOn) -> Option<Outcome> {
        let phase = self.effective_phase()?;
        if !phase.fulfilled() || self.hooks_pending {
            return None;
        }
        let children = self.children.as_deref().unwrap_or(&[]);
        Some(Outcome {
            succeeded: phase == NodePhase::Succeeded,
            failed: phase == NodePhase::Failed,
            errored: phase == NodePhase::Error,
            skipped: phase == NodePhase::Skipped,
            omitted: phase == NodePhase::Omitted,
            daemoned: phase == NodePhase::Daemoned,
            any_succeeded: children.contains(&Some(NodePhase::Succeeded)),
            all_failed: !children.is_empty()
                && children.iter().all(|c| *c == Some(NodePhase::Failed)),
            continue_on_failed: continue_on.failed,
            continue_on_error: continue_on.error,
        })
    }
}

/// Phase of a loop task from its children (Argo's TaskGroup): Skipped when empty, Running until
/// all are finished, then the last failed/errored child's phase, else Succeeded.
pub fn group_phase(children: &[Option<NodePhase>]) -> NodePhase {
    if children.is_empty() {
        return NodePhase::Skipped;
    }
    let mut phase = NodePhase::Succeeded;
    for child in children {
        match child {
            Some(p) if p.fulfilled() => {
                if p.failed_or_error() {
                    phase = *p;
                }
            }
            _ => return NodePhase::Running,
        }
    }
    phase
}

/// The state of every task of one DAG node, by task name. Tasks absent have no node yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskStates {
    tasks: BTreeMap<String, TaskState>,
}

impl TaskStates {
    /// No task has a node.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of `task` (default when unknown).
    pub fn get(&self, task: &str) -> TaskState {
        self.tasks.get(task).cloned().unwrap_or_default()
    }

    fn entry(&mut self, task: &str) -> &mut TaskState {
        self.tasks.entry(task.to_owned()).or_default()
    }

    /// Sets the phase of `task`'s node.
    pub fn set_phase(&mut self, task: &str, phase: NodePhase) -> &mut Self {
        self.entry(task).phase = Some(phase);
        self
    }

    /// Records the children of an expanded loop task.
    pub fn set_children(&mut self, task: &str, children: Vec<Option<NodePhase>>) -> &mut Self {
        let entry = self.entry(task);
        if entry.phase.is_none() {
            entry.phase = Some(NodePhase::Running);
        }
        entry.children = Some(children);
        self
    }

    /// Sets the phase of child `index` of a loop task (growing the list if needed).
    pub fn set_child(&mut self, task: &str, index: usize, phase: NodePhase) -> &mut Self {
        let children = self.entry(task).children.get_or_insert_with(Vec::new);
        if children.len() <= index {
            children.resize(index + 1, None);
        }
        children[index] = Some(phase);
        self
    }

    /// Records the result of `task`'s `when`.
    pub fn set_when(&mut self, task: &str, when: bool) -> &mut Self {
        self.entry(task).when = Some(when);
        self
    }

    /// Marks whether `task`'s exit handler or hooks are still running.
    pub fn set_hooks_pending(&mut self, task: &str, pending: bool) -> &mut Self {
        self.entry(task).hooks_pending = pending;
        self
    }

    /// Reads the tasks of the DAG node named `boundary` (e.g. `wf-abc.main`) from a workflow's
    /// `.status.nodes`, by Argo's node names: `<boundary>.<task>` is a task's node; for a loop
    /// task that node is a `TaskGroup` whose `children` are the loop children, named
    /// `<boundary>.<task>(<i>:<item>)`. Retry attempts (`…(<n>)`, children of a Retry node) are
    /// not loop children: the task's (or child's) own node carries the phase that counts.
    /// A daemoned node (`daemoned: true`, Running) reads as [`NodePhase::Daemoned`]; a node with
    /// a phase cairn does not know is left out.
    ///
    /// Children are those with a node; a loop child held back by parallelism has none yet, so
    /// the caller, which knows the expansion, completes the list with [`TaskStates::set_children`]
    /// (unknown children as `None`) before planning.
    pub fn from_nodes(dag: &Dag, boundary: &str, nodes: &BTreeMap<String, NodeStatus>) -> Self {
        let by_name = nodes_by_name(nodes);
        let mut states = TaskStates::new();
        for task in &dag.tasks {
            let name = format!("{boundary}.{}", task.name);
            let Some(node) = by_name.get(name.as_str()) else {
                continue;
            };
            let Some(phase) = node_phase(node) else {
                continue;
            };
            states.entry(&task.name).phase = Some(phase);
            if node.node_type.as_deref() == Some("TaskGroup") {
                for (index, child) in loop_children(nodes, node, &name) {
                    states.set_child(&task.name, index, child);
                }
            }
        }
        states
    }
}

/// Nodes by their `name`.
pub(crate) fn nodes_by_name(nodes: &BTreeMap<String, NodeStatus>) -> BTreeMap<&str, &NodeStatus> {
    nodes
        .values()
        .filter_map(|n| n.name.as_deref().map(|name| (name, n)))
        .collect()
}

/// The loop children among `parent`'s children: nodes named `<task_node>(<i>:<item>)`, with
/// their item index and phase.
pub(crate) fn loop_children(
    nodes: &BTreeMap<String, NodeStatus>,
    parent: &NodeStatus,
    task_node: &str,
) -> Vec<(usize, NodePhase)> {
    let mut out = Vec::new();
    for id in parent.children.iter().flatten() {
        let Some(child) = nodes.get(id) else {
            continue;
        };
        let Some(index) = child
            .name
            .as_deref()
            .and_then(|n| n.strip_prefix(task_node))
            .and_then(|rest| rest.strip_prefix('('))
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(i, _)| i.parse::<usize>().ok())
        else {
            continue;
        };
        if let Some(phase) = node_phase(child) {
            out.push((index, phase));
        }
    }
    out
}

pub(crate) fn node_phase(node: &NodeStatus) -> Option<NodePhase> {
    let phase = NodePhase::parse(node.phase.as_deref()?)?;
    let daemoned = node.extra.get("daemoned") == Some(&Value::Bool(true));
    Some(if daemoned && phase == NodePhase::Running {
        NodePhase::Daemoned
    } else {
        phase
    })
}

/// Inputs of a plan besides the DAG and the task states.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// The template's `parallelism`: at most this many running tasks/loop children.
    pub parallelism: Option<usize>,
    /// A further cap on starts, from the caller (e.g. the workflow's free `parallelism` slots).
    pub max_starts: Option<usize>,
    /// The template's own `failFast` (Argo's `template.failFast`, used with `parallelism`):
    /// any failed child stops new starts and fails the template.
    pub template_fail_fast: bool,
    /// The workflow is being stopped or terminated: nothing starts; the DAG fails once nothing
    /// runs.
    pub shutdown: bool,
}

impl PlanOptions {
    /// `parallelism` and `failFast` as written on the template.
    pub fn from_template(template: &Template) -> Self {
        PlanOptions {
            parallelism: template
                .parallelism
                .map(|p| usize::try_from(p).unwrap_or(0)),
            template_fail_fast: template.extra.get("failFast") == Some(&Value::Bool(true)),
            ..Default::default()
        }
    }
}

/// The phase of a DAG or steps template node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum TemplatePhase {
    /// Not finished.
    Running,
    /// Finished; no failure counts against it.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Finished with an error.
    Error,
}

impl TemplatePhase {
    /// Argo's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Error => "Error",
        }
    }
}

/// A child of a loop task to start: `task`'s item number `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChildStart {
    /// The loop task.
    pub task: String,
    /// The item index.
    pub index: usize,
}

/// What to do next with one DAG node. Lists are in declaration order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Tasks to start now (within the free parallelism slots).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start: Vec<String>,
    /// Loop tasks whose dependencies are met: expand their items and record the children.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expand: Vec<String>,
    /// Loop children to start now (within the free slots; slots go to tasks and children in
    /// the declaration order of their tasks, children in item order).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub start_children: Vec<ChildStart>,
    /// Tasks whose dependencies are met and whose `when` must be evaluated before they can
    /// start or be skipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evaluate_when: Vec<String>,
    /// Tasks to mark Skipped: their `when` was false.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<String>,
    /// Tasks to mark Omitted: their `depends` is false.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub omit: Vec<String>,
    /// Ready tasks held back by parallelism.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub throttled: Vec<String>,
    /// The DAG's phase after this decision is applied.
    pub phase: TemplatePhase,
    /// Why the DAG failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What one pass over the tasks found.
struct Pass {
    /// Known phase after this pass's omissions and skips.
    known: Vec<Option<NodePhase>>,
    start: Vec<usize>,
    expand: Vec<usize>,
    evaluate_when: Vec<usize>,
    skip: Vec<usize>,
    omit: Vec<usize>,
}

/// Decides what the controller does next with a DAG node; see the module docs.
pub fn plan(dag: &Dag, state: &TaskStates, opts: &PlanOptions) -> Decision {
    let n = dag.tasks.len();
    let states: Vec<TaskState> = dag.tasks.iter().map(|t| state.get(&t.name)).collect();
    let pass = decide(dag, &states);

    // Branch phases, with the tasks that can no longer run predicted Omitted.
    let predicted = predict(dag, &states, &pass.known);
    let branches = branch_phases(dag, &predicted);
    let known_branches = branch_phases(dag, &pass.known);

    let doomed = dag.fail_fast && failing_target(dag, &branches).is_some();
    let any_child_failed = (0..n).filter(|&i| dag.scheduled[i]).any(|i| {
        let s = &states[i];
        s.phase.is_some_and(NodePhase::failed_or_error)
            || s.children
                .iter()
                .flatten()
                .flatten()
                .any(|p| p.failed_or_error())
    });
    let template_fail_fast = opts.template_fail_fast && any_child_failed;
    let stop = opts.shutdown || doomed || template_fail_fast;

    // Slots: running pods/nested templates of this DAG, against parallelism and max_starts.
    let active: usize = (0..n)
        .filter(|&i| dag.scheduled[i])
        .map(|i| match &states[i].children {
            Some(children) => children.iter().flatten().filter(|p| p.active()).count(),
            None => usize::from(states[i].phase.is_some_and(NodePhase::active)),
        })
        .sum();
    let mut slots = match (opts.parallelism, opts.max_starts) {
        (Some(p), Some(m)) => Some(p.saturating_sub(active).min(m)),
        (Some(p), None) => Some(p.saturating_sub(active)),
        (None, m) => m,
    };

    let mut startable = vec![false; n];
    for &i in &pass.start {
        startable[i] = true;
    }
    let mut start = Vec::new();
    let mut start_children = Vec::new();
    let mut throttled = Vec::new();
    if !stop {
        for (i, task_state) in states.iter().enumerate() {
            if !dag.scheduled[i] {
                continue;
            }
            let name = &dag.tasks[i].name;
            if let Some(children) = &task_state.children {
                if matches!(
                    task_state.phase,
                    Some(NodePhase::Skipped | NodePhase::Omitted)
                ) {
                    continue;
                }
                for (index, child) in children.iter().enumerate() {
                    if child.is_some() {
                        continue;
                    }
                    if take_slot(&mut slots) {
                        start_children.push(ChildStart {
                            task: name.clone(),
                            index,
                        });
                    } else if !throttled.contains(name) {
                        throttled.push(name.clone());
                    }
                }
            }
            if startable[i] {
                if take_slot(&mut slots) {
                    start.push(name.clone());
                } else {
                    throttled.push(name.clone());
                }
            }
        }
    }
    let names = |list: &[usize]| -> Vec<String> {
        let mut sorted = list.to_vec();
        sorted.sort_unstable();
        sorted.iter().map(|&i| dag.tasks[i].name.clone()).collect()
    };
    let expand = if stop {
        Vec::new()
    } else {
        names(&pass.expand)
    };
    let evaluate_when = if stop {
        Vec::new()
    } else {
        names(&pass.evaluate_when)
    };

    let running_task = (0..n)
        .filter(|&i| dag.scheduled[i])
        .any(|i| states[i].in_flight());
    let busy = running_task
        || !start.is_empty()
        || !start_children.is_empty()
        || !expand.is_empty()
        || !evaluate_when.is_empty()
        || !throttled.is_empty();

    let (phase, message) = if busy {
        (TemplatePhase::Running, None)
    } else if opts.shutdown {
        (
            TemplatePhase::Failed,
            Some("the workflow was shut down".to_owned()),
        )
    } else if template_fail_fast {
        (
            TemplatePhase::Failed,
            Some("template has failed or errored children and failFast enabled".to_owned()),
        )
    } else if dag.fail_fast {
        // With failFast the DAG may end before every target has a node: judge the predicted
        // branches (a target that can no longer run carries its failed parent's phase).
        assess(dag, &predicted, &branches)
    } else {
        assess(dag, &pass.known, &known_branches)
    };

    Decision {
        start,
        expand,
        start_children,
        evaluate_when,
        skip: names(&pass.skip),
        omit: names(&pass.omit),
        throttled,
        phase,
        message,
    }
}

/// Takes one slot if any is free (`None` is unlimited).
fn take_slot(slots: &mut Option<usize>) -> bool {
    match slots {
        None => true,
        Some(0) => false,
        Some(s) => {
            *s -= 1;
            true
        }
    }
}

/// One pass in topological order: decides every task whose dependencies have all finished.
fn decide(dag: &Dag, states: &[TaskState]) -> Pass {
    let n = dag.tasks.len();
    let mut known: Vec<Option<NodePhase>> = states.iter().map(|s| s.effective_phase()).collect();
    let mut pass = Pass {
        known: Vec::new(),
        start: Vec::new(),
        expand: Vec::new(),
        evaluate_when: Vec::new(),
        skip: Vec::new(),
        omit: Vec::new(),
    };
    for &i in &dag.topo {
        if !dag.scheduled[i] || known[i].is_some() {
            continue;
        }
        let task = &dag.tasks[i];
        let finished = task
            .deps
            .iter()
            .all(|&j| known[j].is_some_and(NodePhase::fulfilled) && !states[j].hooks_pending);
        if !finished {
            continue;
        }
        let run = match &task.depends {
            None => true,
            Some(expr) => {
                let lookup = |name: &str| outcome_of(dag, states, &known, name);
                expr.eval(&lookup) == Some(true)
            }
        };
        if !run {
            known[i] = Some(NodePhase::Omitted);
            pass.omit.push(i);
        } else if task.is_loop {
            pass.expand.push(i);
        } else if !task.has_when {
            pass.start.push(i);
        } else {
            match states[i].when {
                None => pass.evaluate_when.push(i),
                Some(true) => pass.start.push(i),
                Some(false) => {
                    known[i] = Some(NodePhase::Skipped);
                    pass.skip.push(i);
                }
            }
        }
    }
    debug_assert_eq!(known.len(), n);
    pass.known = known;
    pass
}

/// The outcome of task `name` given the phases known so far (`None` while unfinished).
fn outcome_of(
    dag: &Dag,
    states: &[TaskState],
    known: &[Option<NodePhase>],
    name: &str,
) -> Option<Outcome> {
    let &j = dag.index.get(name)?;
    let phase = known[j]?;
    let base = if states[j].effective_phase() == Some(phase) {
        states[j].clone()
    } else {
        // Decided in this pass (Omitted or Skipped): no node, no children yet.
        TaskState {
            phase: Some(phase),
            ..Default::default()
        }
    };
    base.outcome(dag.tasks[j].continue_on)
}

/// Known phases, plus Omitted for every undecided task whose `depends` is already certain to be
/// false (three-valued evaluation), propagated in topological order.
fn predict(dag: &Dag, states: &[TaskState], known: &[Option<NodePhase>]) -> Vec<Option<NodePhase>> {
    let mut predicted = known.to_vec();
    for &i in &dag.topo {
        if !dag.scheduled[i] || predicted[i].is_some() {
            continue;
        }
        if let Some(expr) = &dag.tasks[i].depends {
            let lookup = |name: &str| outcome_of(dag, states, &predicted, name);
            if expr.eval(&lookup) == Some(false) {
                predicted[i] = Some(NodePhase::Omitted);
            }
        }
    }
    predicted
}

/// Argo's branch phase of every task: its own phase once completed; for a Skipped, Omitted or
/// daemon task, the first failing parent branch, else Succeeded once all parents are known.
fn branch_phases(dag: &Dag, phases: &[Option<NodePhase>]) -> Vec<Option<NodePhase>> {
    let mut branch: Vec<Option<NodePhase>> = vec![None; dag.tasks.len()];
    for &i in &dag.topo {
        let Some(phase) = phases[i] else {
            continue;
        };
        branch[i] = if phase.completed() {
            Some(phase)
        } else if !phase.fulfilled() {
            None
        } else {
            let parents: Vec<Option<NodePhase>> =
                dag.tasks[i].deps.iter().map(|&j| branch[j]).collect();
            if let Some(failing) = parents.iter().flatten().find(|p| p.failed_or_error()) {
                Some(*failing)
            } else if parents.iter().all(Option::is_some) {
                Some(NodePhase::Succeeded)
            } else {
                None
            }
        };
    }
    branch
}

/// The first target whose branch fails the DAG (no `continueOn` for that phase).
fn failing_target(dag: &Dag, branches: &[Option<NodePhase>]) -> Option<(usize, NodePhase)> {
    dag.targets.iter().find_map(|&t| {
        let b = branches[t]?;
        (b.failed_or_error() && !dag.tasks[t].continue_on.covers(b)).then_some((t, b))
    })
}

/// Argo's assessDAGPhase over the targets, once nothing runs.
fn assess(
    dag: &Dag,
    phases: &[Option<NodePhase>],
    branches: &[Option<NodePhase>],
) -> (TemplatePhase, Option<String>) {
    let mut result = TemplatePhase::Succeeded;
    let mut message = None;
    for &t in &dag.targets {
        match branches[t] {
            None => {
                result = TemplatePhase::Running;
                if !dag.fail_fast {
                    break;
                }
            }
            Some(b) if b.failed_or_error() && !dag.tasks[t].continue_on.covers(b) => {
                result = if b == NodePhase::Error {
                    TemplatePhase::Error
                } else {
                    TemplatePhase::Failed
                };
                message = Some(failure_message(dag, phases, branches, t));
                if dag.fail_fast {
                    break;
                }
            }
            Some(_) => {}
        }
    }
    if result == TemplatePhase::Running {
        message = None;
    }
    (result, message)
}

/// Names the task whose failure reached target `t`: `t` itself, or the nearest ancestor that
/// completed with a failing phase, following failing branches.
fn failure_message(
    dag: &Dag,
    phases: &[Option<NodePhase>],
    branches: &[Option<NodePhase>],
    t: usize,
) -> String {
    let mut current = t;
    while !phases[current].is_some_and(NodePhase::failed_or_error) {
        let parent = dag.tasks[current]
            .deps
            .iter()
            .copied()
            .find(|&j| branches[j].is_some_and(NodePhase::failed_or_error));
        match parent {
            Some(j) => current = j,
            None => break,
        }
    }
    let verb = if branches[t] == Some(NodePhase::Error) {
        "errored"
    } else {
        "failed"
    };
    if current == t {
        format!("task '{}' {verb}", dag.tasks[t].name)
    } else {
        format!(
            "task '{}' {verb}, so target '{}' did not run",
            dag.tasks[current].name, dag.tasks[t].name
        )
    }
}

#[cfg(test)]
mod tests;
