//! Steps and DAG bodies: Argo's `executeSteps`/`executeDAG` on top of the pure planners
//! [`steps::plan`] and [`dag::plan`]. Each reconcile re-plans in rounds until nothing changes
//! (a `when` evaluated, a loop expanded, a child that completed at once), so one pass settles
//! whole chains of skips and instant children; rounds are bounded by the template's size.

use std::collections::BTreeMap;

use serde_json::Value;

use super::OperatorError;
use super::reasons;
use super::vars::{self, loop_child_name};
use super::walk::{
    Call, Ctx, Frame, PHASE_ERROR, PHASE_FAILED, PHASE_OMITTED, PHASE_RUNNING, PHASE_SKIPPED,
    PHASE_SUCCEEDED, fulfilled, hook_call, hook_fires,
};
use crate::workflow::dag::{self, Dag, NodePhase, PlanOptions, TaskStates, TemplatePhase};
use crate::workflow::expr::{self, Scope};
use crate::workflow::steps::{self, Steps};
use crate::workflow::types::{Arguments, DagTask, NodeStatus, Template, WorkflowStep};

/// The planners' message for a template stopped by a shutdown.
const SHUT_DOWN: &str = "the workflow was shut down";

/// One step or task, the fields the flow needs from either.
struct Unit<'t> {
    name: &'t str,
    when: Option<&'t str>,
    with_items: Option<&'t Vec<Value>>,
    with_param: Option<&'t str>,
    with_sequence: Option<&'t Value>,
    on_exit: Option<&'t str>,
    /// Lifecycle `hooks` (the `exit` one is `on_exit`).
    hooks: Option<&'t Value>,
}

impl<'t> Unit<'t> {
    fn of_step(s: &'t WorkflowStep) -> Self {
        Unit {
            name: &s.name,
            when: s.when.as_deref().filter(|w| !w.trim().is_empty()),
            with_items: s.with_items.as_ref(),
            with_param: s.with_param.as_deref(),
            with_sequence: s.with_sequence.as_ref(),
            on_exit: exit_template(s.on_exit.as_ref(), &s.extra),
            hooks: s.extra.get("hooks"),
        }
    }

    fn of_task(t: &'t DagTask) -> Self {
        Unit {
            name: &t.name,
            when: t.when.as_deref().filter(|w| !w.trim().is_empty()),
            with_items: t.with_items.as_ref(),
            with_param: t.with_param.as_deref(),
            with_sequence: t.with_sequence.as_ref(),
            on_exit: exit_template(t.on_exit.as_ref(), &t.extra),
            hooks: t.extra.get("hooks"),
        }
    }

    fn is_loop(&self) -> bool {
        self.with_items.is_some() || self.with_param.is_some() || self.with_sequence.is_some()
    }
}

/// The phase the planners use for a node phase string.
fn plan_phase(p: TemplatePhase) -> &'static str {
    match p {
        TemplatePhase::Running => PHASE_RUNNING,
        TemplatePhase::Succeeded => PHASE_SUCCEEDED,
        TemplatePhase::Failed => PHASE_FAILED,
        TemplatePhase::Error => PHASE_ERROR,
    }
}

impl Ctx<'_> {
    /// A node for a child that does not run (Skipped / Omitted / Error before it ran).
    fn marker_node(
        &mut self,
        frame: &Frame,
        name: &str,
        display: &str,
        template: Option<&String>,
        phase: &str,
        message: String,
    ) -> String {
        let child = Frame {
            node_name: name.to_owned(),
            display_name: display.to_owned(),
            template_name: template.cloned().unwrap_or_default(),
            template_ref: None,
            boundary_id: Some(self.id(&frame.node_name)),
            inputs: Default::default(),
            ..frame.clone()
        };
        let id = self.init_node(&child, "Skipped", phase, Some(message));
        self.set_phase(&id, phase, None);
        id
    }

    /// Renders a step/task for one invocation (optionally one loop item) into a call.
    #[allow(clippy::too_many_arguments)]
    fn unit_call<T>(
        &self,
        frame: &Frame,
        base: &str,
        display: &str,
        raw: &T,
        scope: &Scope,
        item: Option<(usize, &Value)>,
        extract: impl Fn(&T) -> Parts,
    ) -> Result<Call, OperatorError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone,
    {
        let mut scope = scope.clone();
        if let Some((_, it)) = item {
            scope.set_item(it);
        }
        let what = format!("{}: step '{display}'", frame.template_name);
        let rendered: T = vars::render_value(&what, raw, &scope)?;
        let (template, template_ref, inline, arguments) = extract(&rendered);
        let inline = match inline {
            None => None,
            Some(raw) => Some(Box::new(serde_json::from_value::<Template>(raw).map_err(
                |e| OperatorError::Structure {
                    template: frame.template_name.clone(),
                    message: format!("step '{display}': inline template: {e}"),
                },
            )?)),
        };
        let arguments = arguments.unwrap_or_default();
        let args = vars::resolve_args(&what, arguments.parameters.as_ref(), &scope)?;
        let artifacts = vars::resolve_artifact_args(&what, arguments.artifacts.as_ref())?;
        let (node_name, display_name) = match item {
            Some((i, it)) => (
                loop_child_name(base, i, it),
                loop_child_name(display, i, it),
            ),
            None => (base.to_owned(), display.to_owned()),
        };
        Ok(Call {
            node_name,
            display_name,
            template,
            template_ref,
            inline,
            scope_src: frame.src.clone(),
            args,
            artifacts,
            boundary_id: Some(self.id(&frame.node_name)),
            on_exit: frame.on_exit,
        })
    }

    /// Decides a `when` with `scope` (and an item): `Ok(None)` without one.
    fn decide_when(
        unit: &Unit<'_>,
        scope: &Scope,
        item: Option<&Value>,
    ) -> Result<Option<(bool, String)>, OperatorError> {
        let Some(when) = unit.when else {
            return Ok(None);
        };
        let mut scope = scope.clone();
        if let Some(it) = item {
            scope.set_item(it);
        }
        let err = |source| OperatorError::When {
            step: unit.name.to_owned(),
            source,
        };
        let rendered = expr::render(when, &scope).map_err(err)?;
        let ok = expr::eval_condition(&rendered).map_err(err)?;
        Ok(Some((ok, rendered)))
    }

    /// Runs the expression-triggered lifecycle hooks of a step/task node (Argo's template-level
    /// `hooks`): a hook whose `expression` holds over the scope plus the node's own
    /// `steps.X.*`/`tasks.X.*` runs once as `<node>.hooks.<name>`; true while one runs.
    fn unit_hooks_pending(
        &mut self,
        frame: &Frame,
        unit: &Unit<'_>,
        node_name: &str,
        prefix: &str,
        scope: &Scope,
    ) -> bool {
        let Some(hooks) = unit.hooks.and_then(Value::as_object) else {
            return false;
        };
        let Some(node) = self.node(node_name).cloned() else {
            return false;
        };
        let mut scope = scope.clone();
        vars::add_node_scope(&mut scope, prefix, &node);
        let sorted: BTreeMap<&String, &Value> =
            hooks.iter().filter(|(k, _)| k.as_str() != "exit").collect();
        let mut pending = false;
        for (name, hook) in sorted {
            let hook_name = format!("{node_name}.hooks.{name}");
            if self.node(&hook_name).is_none() && !hook_fires(hook, &scope) {
                continue;
            }
            let display = format!(
                "{}.hooks.{name}",
                node.display_name.clone().unwrap_or_default()
            );
            let Some(mut call) = hook_call(hook, hook_name, display, &[]) else {
                continue;
            };
            call.scope_src = frame.src.clone();
            call.boundary_id = node.boundary_id.clone();
            if let Some(n) = self.execute(&call) {
                let parent = self.id(node_name);
                let child = n.id.clone().unwrap_or_default();
                self.add_child(&parent, &child);
                pending |= !fulfilled(n.phase.as_deref());
            }
        }
        pending
    }

    /// Runs the `onExit` of a completed step/task node; true while it is not finished.
    fn unit_exit_pending(&mut self, frame: &Frame, unit: &Unit<'_>, node_name: &str) -> bool {
        let Some(on_exit) = unit.on_exit else {
            return false;
        };
        let Some(node) = self.node(node_name).cloned() else {
            return false;
        };
        if !matches!(
            node.phase.as_deref(),
            Some(PHASE_SUCCEEDED | PHASE_FAILED | PHASE_ERROR)
        ) {
            return false;
        }
        let call = Call {
            node_name: format!("{node_name}.onExit"),
            display_name: format!("{}.onExit", node.display_name.clone().unwrap_or_default()),
            template: Some(on_exit.to_owned()),
            scope_src: frame.src.clone(),
            boundary_id: node.boundary_id.clone(),
            on_exit: true,
            ..Default::default()
        };
        match self.execute(&call) {
            Some(exit) => {
                let parent = self.id(node_name);
                let child = exit.id.clone().unwrap_or_default();
                self.add_child(&parent, &child);
                !fulfilled(exit.phase.as_deref())
            }
            None => false,
        }
    }

    /// Runs (advances) a steps template.
    pub(super) fn execute_steps(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
    ) -> Option<NodeStatus> {
        let id = self.id(&frame.node_name);
        if !self.nodes.contains_key(&id) {
            if self.no_new_work(frame.on_exit) {
                return None;
            }
            self.init_node(frame, "Steps", PHASE_RUNNING, None);
        }
        let steps = match Steps::from_template(tmpl) {
            Ok(s) => s,
            Err(e) => {
                self.set_phase(&id, PHASE_ERROR, Some(e.to_string()));
                return self.nodes.get(&id).cloned();
            }
        };
        let mut opts = PlanOptions::from_template(tmpl);
        opts.shutdown = self.stopping(frame.on_exit);
        let defs: Vec<Vec<WorkflowStep>> = tmpl.steps.clone().unwrap_or_default();
        let mut whens: BTreeMap<String, bool> = BTreeMap::new();
        let mut items: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let sg_name = |g: usize| format!("{}[{g}]", frame.node_name);
        let size: usize = defs.iter().map(Vec::len).sum();
        for _ in 0..(8 + 3 * size + defs.len()) {
            let mut changed = false;
            // The last group reached (its StepGroup node exists).
            let reached = (0..defs.len())
                .rev()
                .find(|g| self.node(&sg_name(*g)).is_some());
            if let Some(g) = reached {
                let scope = self.steps_scope(local, &frame.node_name, &defs, g);
                for step in &defs[g] {
                    let unit = Unit::of_step(step);
                    let step_node = format!("{}.{}", sg_name(g), step.name);
                    if !unit.is_loop()
                        || items.contains_key(&step.name)
                        || self.node(&step_node).is_some()
                    {
                        continue;
                    }
                    let sg_id = self.id(&sg_name(g));
                    match self.expand(&unit, step, &scope) {
                        Ok(list) if list.is_empty() => {
                            let cid = self.marker_node(
                                frame,
                                &step_node,
                                &step.name,
                                step.template.as_ref(),
                                PHASE_SKIPPED,
                                reasons::EMPTY_PARAMS.into(),
                            );
                            self.add_child(&sg_id, &cid);
                            changed = true;
                        }
                        Ok(list) => {
                            items.insert(step.name.clone(), list);
                        }
                        Err(e) => {
                            let cid = self.marker_node(
                                frame,
                                &step_node,
                                &step.name,
                                step.template.as_ref(),
                                PHASE_ERROR,
                                e.to_string(),
                            );
                            self.add_child(&sg_id, &cid);
                            changed = true;
                        }
                    }
                }
            }

            let mut states = steps.states_from_nodes(&frame.node_name, &self.nodes);
            for (s, w) in &whens {
                states.set_when(s, *w);
            }
            for (s, list) in &items {
                let mut children = states.get(s).children.unwrap_or_default();
                children.resize(list.len(), None);
                states.set_children(s, children);
            }
            if let Some(g) = reached {
                let scope = self.steps_scope(local, &frame.node_name, &defs, g);
                for step in &defs[g] {
                    let unit = Unit::of_step(step);
                    let node_name = format!("{}.{}", sg_name(g), step.name);
                    let prefix = format!("steps.{}", step.name);
                    let hooks = self.unit_hooks_pending(frame, &unit, &node_name, &prefix, &scope);
                    if self.unit_exit_pending(frame, &unit, &node_name) || hooks {
                        states.set_hooks_pending(&step.name, true);
                    }
                }
            }
            let decision = steps::plan(&steps, &states, &opts);

            if let Some(g) = decision.group {
                changed |= self.ensure_step_group(frame, g);
            }
            for done in &decision.groups_done {
                self.ensure_step_group(frame, done.index);
                let sg_id = self.id(&sg_name(done.index));
                self.set_phase(&sg_id, plan_phase(done.phase), done.message.clone());
            }
            let current = decision.group.unwrap_or(defs.len());
            let scope = self.steps_scope(local, &frame.node_name, &defs, current);

            // Advance what runs in the current group.
            if let Some(g) = decision.group {
                for step in &defs[g] {
                    let base = format!("{}.{}", sg_name(g), step.name);
                    let unit = Unit::of_step(step);
                    let calls: Vec<(String, Option<(usize, Value)>)> = if unit.is_loop() {
                        items
                            .get(&step.name)
                            .map(|list| {
                                list.iter()
                                    .enumerate()
                                    .map(|(i, it)| {
                                        (loop_child_name(&base, i, it), Some((i, it.clone())))
                                    })
                                    .collect()
                            })
                            .unwrap_or_default()
                    } else {
                        vec![(base.clone(), None)]
                    };
                    for (name, item) in calls {
                        let Some(before) = self.node(&name).map(|n| n.phase.clone()) else {
                            continue;
                        };
                        if fulfilled(before.as_deref()) {
                            continue;
                        }
                        let call = self.unit_call(
                            frame,
                            &base,
                            &step.name,
                            &strip_loop(step),
                            &scope,
                            item.as_ref().map(|(i, v)| (*i, v)),
                            step_parts,
                        );
                        if let Ok(call) = call
                            && let Some(n) = self.execute(&call)
                            && n.phase != before
                        {
                            changed = true;
                        }
                    }
                }
            }

            for s in &decision.skip {
                let Some(g) = steps.group_of(s) else { continue };
                let Some(step) = defs[g].iter().find(|x| &x.name == s) else {
                    continue;
                };
                let name = format!("{}.{s}", sg_name(g));
                if self.node(&name).is_some() {
                    continue;
                }
                let when = Unit::of_step(step)
                    .when
                    .map(|w| {
                        expr::render_with(w, &scope, expr::Unresolved::Keep)
                            .unwrap_or_else(|_| w.to_owned())
                    })
                    .unwrap_or_default();
                let sg_id = self.id(&sg_name(g));
                let cid = self.marker_node(
                    frame,
                    &name,
                    s,
                    step.template.as_ref(),
                    PHASE_SKIPPED,
                    format!("when '{when}' evaluated false"),
                );
                self.add_child(&sg_id, &cid);
                changed = true;
            }
            for s in &decision.evaluate_when {
                let Some(g) = steps.group_of(s) else { continue };
                let Some(step) = defs[g].iter().find(|x| &x.name == s) else {
                    continue;
                };
                match Self::decide_when(&Unit::of_step(step), &scope, None) {
                    Ok(Some((ok, _))) => {
                        whens.insert(s.clone(), ok);
                    }
                    Ok(None) => {
                        whens.insert(s.clone(), true);
                    }
                    Err(e) => {
                        let name = format!("{}.{s}", sg_name(g));
                        let sg_id = self.id(&sg_name(g));
                        let cid = self.marker_node(
                            frame,
                            &name,
                            s,
                            step.template.as_ref(),
                            PHASE_ERROR,
                            e.to_string(),
                        );
                        self.add_child(&sg_id, &cid);
                    }
                }
                changed = true;
            }
            if !decision.expand.is_empty() {
                changed = true;
            }
            for s in &decision.start {
                let Some(g) = steps.group_of(s) else { continue };
                let Some(step) = defs[g].iter().find(|x| &x.name == s) else {
                    continue;
                };
                let base = format!("{}.{s}", sg_name(g));
                changed |= self.start_unit(frame, &sg_name(g), &base, s, step, &scope, None);
            }
            for cs in &decision.start_children {
                let Some(g) = steps.group_of(&cs.task) else {
                    continue;
                };
                let Some(step) = defs[g].iter().find(|x| x.name == cs.task) else {
                    continue;
                };
                let Some(item) = items.get(&cs.task).and_then(|l| l.get(cs.index)).cloned() else {
                    continue;
                };
                let base = format!("{}.{}", sg_name(g), cs.task);
                changed |= self.start_unit(
                    frame,
                    &sg_name(g),
                    &base,
                    &cs.task,
                    step,
                    &scope,
                    Some((cs.index, &item)),
                );
            }

            if decision.phase != TemplatePhase::Running {
                let scope = self.steps_scope(local, &frame.node_name, &defs, defs.len());
                self.finish_template(
                    frame,
                    tmpl,
                    &scope,
                    decision.phase,
                    decision.message.clone(),
                    |ctx| ctx.steps_outbound(&frame.node_name, defs.len()),
                );
                break;
            }
            if !changed {
                break;
            }
        }
        self.nodes.get(&id).cloned()
    }

    /// Starts one step (or loop child) under its StepGroup; true if something changed.
    #[allow(clippy::too_many_arguments)]
    fn start_unit(
        &mut self,
        frame: &Frame,
        parent_name: &str,
        base: &str,
        display: &str,
        step: &WorkflowStep,
        scope: &Scope,
        item: Option<(usize, &Value)>,
    ) -> bool {
        let parent = self.id(parent_name);
        let unit = Unit::of_step(step);
        let name = match item {
            Some((i, it)) => loop_child_name(base, i, it),
            None => base.to_owned(),
        };
        let child_display = match item {
            Some((i, it)) => loop_child_name(display, i, it),
            None => display.to_owned(),
        };
        if item.is_some() {
            match Self::decide_when(&unit, scope, item.map(|(_, v)| v)) {
                Ok(Some((false, rendered))) => {
                    let cid = self.marker_node(
                        frame,
                        &name,
                        &child_display,
                        step.template.as_ref(),
                        PHASE_SKIPPED,
                        format!("when '{rendered}' evaluated false"),
                    );
                    self.add_child(&parent, &cid);
                    return true;
                }
                Ok(_) => {}
                Err(e) => {
                    let cid = self.marker_node(
                        frame,
                        &name,
                        &child_display,
                        step.template.as_ref(),
                        PHASE_ERROR,
                        e.to_string(),
                    );
                    self.add_child(&parent, &cid);
                    return true;
                }
            }
        }
        match self.unit_call(
            frame,
            base,
            display,
            &strip_loop(step),
            scope,
            item,
            step_parts,
        ) {
            Ok(call) => match self.execute(&call) {
                Some(n) => {
                    let cid = n.id.clone().unwrap_or_default();
                    self.add_child(&parent, &cid);
                    fulfilled(n.phase.as_deref())
                }
                None => false,
            },
            Err(e) => {
                let cid = self.marker_node(
                    frame,
                    &name,
                    &child_display,
                    step.template.as_ref(),
                    PHASE_ERROR,
                    e.to_string(),
                );
                self.add_child(&parent, &cid);
                true
            }
        }
    }

    /// Creates StepGroup `g` when missing and links it (Argo: the first group is a child of
    /// the steps node, later ones children of the previous group's outbound nodes).
    fn ensure_step_group(&mut self, frame: &Frame, g: usize) -> bool {
        let name = format!("{}[{g}]", frame.node_name);
        if self.node(&name).is_some() {
            return false;
        }
        let sg = Frame {
            node_name: name.clone(),
            display_name: format!("[{g}]"),
            boundary_id: Some(self.id(&frame.node_name)),
            inputs: Default::default(),
            ..frame.clone()
        };
        let sg_id = self.init_node(&sg, "StepGroup", PHASE_RUNNING, None);
        if g == 0 {
            let parent = self.id(&frame.node_name);
            self.add_child(&parent, &sg_id);
        } else {
            let prev = self.id(&format!("{}[{}]", frame.node_name, g - 1));
            let children = self
                .nodes
                .get(&prev)
                .and_then(|n| n.children.clone())
                .unwrap_or_default();
            if children.is_empty() {
                self.add_child(&prev, &sg_id);
            }
            for c in children {
                for o in self.outbound(&c) {
                    self.add_child(&o, &sg_id);
                }
            }
        }
        true
    }

    /// Outbound nodes of a steps node: those of the last StepGroup's children.
    fn steps_outbound(&self, name: &str, groups: usize) -> Vec<String> {
        let last = (0..groups)
            .rev()
            .find_map(|g| self.node(&format!("{name}[{g}]")));
        last.and_then(|n| n.children.clone())
            .unwrap_or_default()
            .iter()
            .flat_map(|c| self.outbound(c))
            .collect()
    }

    /// The scope of group `upto`: the template's local scope plus `steps.X.*` of every step of
    /// the groups before it (aggregated for loops).
    fn steps_scope(
        &self,
        local: &Scope,
        name: &str,
        defs: &[Vec<WorkflowStep>],
        upto: usize,
    ) -> Scope {
        let mut scope = self.with_global_outputs(local);
        for (g, group) in defs.iter().enumerate().take(upto) {
            let sg = format!("{name}[{g}]");
            let Some(sg_node) = self.node(&sg) else {
                continue;
            };
            for step in group {
                let prefix = format!("steps.{}", step.name);
                let base = format!("{sg}.{}", step.name);
                if let Some(n) = self.node(&base) {
                    vars::add_node_scope(&mut scope, &prefix, n);
                } else if Unit::of_step(step).is_loop() {
                    let children: Vec<&NodeStatus> = sg_node
                        .children
                        .iter()
                        .flatten()
                        .filter_map(|c| self.nodes.get(c))
                        .filter(|c| {
                            c.name
                                .as_deref()
                                .is_some_and(|n| n.starts_with(&format!("{base}(")))
                                && c.node_type.as_deref() != Some("Skipped")
                        })
                        .collect();
                    vars::add_aggregate_scope(&mut scope, &prefix, &children);
                }
            }
        }
        scope
    }

    /// `local` with the global outputs produced so far (also those of this pass).
    fn with_global_outputs(&self, local: &Scope) -> Scope {
        let mut scope = local.clone();
        for name in self.globals.names() {
            if name.starts_with("workflow.outputs.")
                && let Some(v) = self.globals.get(name)
            {
                scope.insert(name, v.clone());
            }
        }
        scope
    }

    /// Items of a loop step/task, rendered with `scope`.
    fn expand<T: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        unit: &Unit<'_>,
        raw: &T,
        scope: &Scope,
    ) -> Result<Vec<Value>, OperatorError> {
        // Only the loop fields are rendered here: the rest may use {{item}}.
        let loop_fields = serde_json::json!({
            "withItems": unit.with_items,
            "withParam": unit.with_param,
            "withSequence": unit.with_sequence,
        });
        let _ = raw;
        let rendered: Value = vars::render_value(unit.name, &loop_fields, scope)?;
        let with_items: Option<Vec<Value>> =
            rendered.get("withItems").and_then(Value::as_array).cloned();
        let with_param = match rendered.get("withParam").and_then(Value::as_str) {
            Some(p) if p.contains("{{") => {
                // Still a tag: what it reads is not there (a failed or skipped step).
                expr::render(p, scope).map_err(|source| OperatorError::Render {
                    template: unit.name.to_owned(),
                    field: "withParam".into(),
                    source,
                })?;
                Some(p.to_owned())
            }
            other => other.map(str::to_owned),
        };
        let with_sequence = rendered.get("withSequence").filter(|v| !v.is_null());
        vars::expand_items(
            unit.name,
            with_items.as_ref(),
            with_param.as_deref(),
            with_sequence,
        )
    }

    /// Marks a finished steps/DAG node: outbound nodes, outputs (on success), phase, message.
    fn finish_template(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        scope: &Scope,
        phase: TemplatePhase,
        message: Option<String>,
        outbound: impl Fn(&Self) -> Vec<String>,
    ) {
        let id = self.id(&frame.node_name);
        self.stop_daemons(&id);
        let out = outbound(self);
        if let Some(n) = self.nodes.get_mut(&id) {
            n.outbound_nodes = (!out.is_empty()).then_some(out);
        }
        let mut phase = plan_phase(phase);
        let mut message = message;
        // The planners say "shut down" for any stop; a passed deadline says why.
        if message.as_deref() == Some(SHUT_DOWN)
            && self.shutdown.is_none()
            && self.deadline_passed()
        {
            message = Some(reasons::DEADLINE.into());
        }
        if phase == PHASE_SUCCEEDED {
            match vars::template_outputs(tmpl, scope) {
                Ok(outputs) => {
                    if let Some(n) = self.nodes.get_mut(&id) {
                        n.outputs = outputs;
                    }
                }
                Err(e) => {
                    phase = PHASE_ERROR;
                    message = Some(e.to_string());
                }
            }
        }
        self.set_phase(&id, phase, message);
    }

    /// Runs (advances) a DAG template.
    pub(super) fn execute_dag(
        &mut self,
        frame: &Frame,
        tmpl: &Template,
        local: &Scope,
    ) -> Option<NodeStatus> {
        let id = self.id(&frame.node_name);
        if !self.nodes.contains_key(&id) {
            if self.no_new_work(frame.on_exit) {
                return None;
            }
            self.init_node(frame, "DAG", PHASE_RUNNING, None);
        }
        let dag = match Dag::from_template(tmpl, None) {
            Ok(d) => d,
            Err(e) => {
                self.set_phase(&id, PHASE_ERROR, Some(e.to_string()));
                return self.nodes.get(&id).cloned();
            }
        };
        let tasks: Vec<DagTask> = tmpl
            .dag
            .as_ref()
            .and_then(|d| d.tasks.clone())
            .unwrap_or_default();
        let mut opts = PlanOptions::from_template(tmpl);
        opts.shutdown = self.stopping(frame.on_exit);
        let mut whens: BTreeMap<String, bool> = BTreeMap::new();
        let mut items: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let task_name = |t: &str| format!("{}.{t}", frame.node_name);
        for _ in 0..(8 + 4 * tasks.len()) {
            let mut changed = false;
            let scope = self.dag_scope(local, &frame.node_name, &tasks);
            for task in &tasks {
                let unit = Unit::of_task(task);
                if !unit.is_loop() || items.contains_key(&task.name) {
                    continue;
                }
                let Some(tg) = self.node(&task_name(&task.name)) else {
                    continue;
                };
                if tg.node_type.as_deref() != Some("TaskGroup") {
                    continue;
                }
                match self.expand(&unit, task, &scope) {
                    Ok(list) => {
                        items.insert(task.name.clone(), list);
                    }
                    Err(e) => {
                        let tg_id = self.id(&task_name(&task.name));
                        self.set_phase(&tg_id, PHASE_ERROR, Some(e.to_string()));
                        changed = true;
                    }
                }
            }

            // Advance what runs; settle TaskGroups whose children are all done.
            for task in &tasks {
                let base = task_name(&task.name);
                let Some(node) = self.node(&base).cloned() else {
                    continue;
                };
                if fulfilled(node.phase.as_deref()) {
                    continue;
                }
                if node.node_type.as_deref() == Some("TaskGroup") {
                    let Some(list) = items.get(&task.name).cloned() else {
                        continue;
                    };
                    let mut phases = Vec::with_capacity(list.len());
                    for (i, it) in list.iter().enumerate() {
                        let child = loop_child_name(&base, i, it);
                        let Some(before) = self.node(&child).map(|n| n.phase.clone()) else {
                            phases.push(None);
                            continue;
                        };
                        let mut after = before.clone();
                        if !fulfilled(before.as_deref())
                            && let Ok(call) = self.unit_call(
                                frame,
                                &base,
                                &task.name,
                                &strip_task_loop(task),
                                &scope,
                                Some((i, it)),
                                task_parts,
                            )
                            && let Some(n) = self.execute(&call)
                        {
                            after = n.phase.clone();
                            changed |= after != before;
                        }
                        phases.push(after.as_deref().and_then(NodePhase::parse));
                    }
                    if !phases.is_empty()
                        && phases.iter().all(|p| p.is_some_and(NodePhase::fulfilled))
                    {
                        let phase = dag::group_phase(&phases);
                        let tg_id = self.id(&base);
                        self.set_phase(&tg_id, phase.as_str(), None);
                        changed = true;
                    }
                } else if let Ok(call) = self.unit_call(
                    frame,
                    &base,
                    &task.name,
                    &strip_task_loop(task),
                    &scope,
                    None,
                    task_parts,
                ) && let Some(n) = self.execute(&call)
                    && n.phase != node.phase
                {
                    changed = true;
                }
            }

            let mut states = TaskStates::from_nodes(&dag, &frame.node_name, &self.nodes);
            for (t, w) in &whens {
                states.set_when(t, *w);
            }
            for (t, list) in &items {
                let mut children = states.get(t).children.unwrap_or_default();
                children.resize(list.len(), None);
                states.set_children(t, children);
            }
            let hook_scope = self.dag_scope(local, &frame.node_name, &tasks);
            for task in &tasks {
                let unit = Unit::of_task(task);
                let node_name = task_name(&task.name);
                let prefix = format!("tasks.{}", task.name);
                let hooks = self.unit_hooks_pending(frame, &unit, &node_name, &prefix, &hook_scope);
                if self.unit_exit_pending(frame, &unit, &node_name) || hooks {
                    states.set_hooks_pending(&task.name, true);
                }
            }
            let decision = dag::plan(&dag, &states, &opts);
            let scope = self.dag_scope(local, &frame.node_name, &tasks);
            let find = |t: &str| tasks.iter().find(|x| x.name == t);

            for t in &decision.omit {
                let Some(task) = find(t) else { continue };
                if self.node(&task_name(t)).is_some() {
                    continue;
                }
                let cid = self.marker_node(
                    frame,
                    &task_name(t),
                    t,
                    task.template.as_ref(),
                    PHASE_OMITTED,
                    reasons::OMITTED.into(),
                );
                self.link_task(&dag, &frame.node_name, t, &cid);
                changed = true;
            }
            for t in &decision.skip {
                let Some(task) = find(t) else { continue };
                if self.node(&task_name(t)).is_some() {
                    continue;
                }
                let when = task
                    .when
                    .as_deref()
                    .map(|w| {
                        expr::render_with(w, &scope, expr::Unresolved::Keep)
                            .unwrap_or_else(|_| w.to_owned())
                    })
                    .unwrap_or_default();
                let cid = self.marker_node(
                    frame,
                    &task_name(t),
                    t,
                    task.template.as_ref(),
                    PHASE_SKIPPED,
                    format!("when '{when}' evaluated false"),
                );
                self.link_task(&dag, &frame.node_name, t, &cid);
                changed = true;
            }
            for t in &decision.evaluate_when {
                let Some(task) = find(t) else { continue };
                match Self::decide_when(&Unit::of_task(task), &scope, None) {
                    Ok(Some((ok, _))) => {
                        whens.insert(t.clone(), ok);
                    }
                    Ok(None) => {
                        whens.insert(t.clone(), true);
                    }
                    Err(e) => {
                        let cid = self.marker_node(
                            frame,
                            &task_name(t),
                            t,
                            task.template.as_ref(),
                            PHASE_ERROR,
                            e.to_string(),
                        );
                        self.link_task(&dag, &frame.node_name, t, &cid);
                    }
                }
                changed = true;
            }
            for t in &decision.expand {
                let Some(task) = find(t) else { continue };
                if self.node(&task_name(t)).is_some() {
                    continue;
                }
                match self.expand(&Unit::of_task(task), task, &scope) {
                    Ok(list) if list.is_empty() => {
                        let cid = self.marker_node(
                            frame,
                            &task_name(t),
                            t,
                            task.template.as_ref(),
                            PHASE_SKIPPED,
                            reasons::EMPTY_PARAMS.into(),
                        );
                        self.link_task(&dag, &frame.node_name, t, &cid);
                    }
                    Ok(list) => {
                        let tg = Frame {
                            node_name: task_name(t),
                            display_name: t.clone(),
                            boundary_id: Some(id.clone()),
                            template_name: task.template.clone().unwrap_or_default(),
                            template_ref: task.template_ref.clone(),
                            inputs: Default::default(),
                            ..frame.clone()
                        };
                        let tg_id = self.init_node(&tg, "TaskGroup", PHASE_RUNNING, None);
                        self.link_task(&dag, &frame.node_name, t, &tg_id);
                        items.insert(t.clone(), list);
                    }
                    Err(e) => {
                        let cid = self.marker_node(
                            frame,
                            &task_name(t),
                            t,
                            task.template.as_ref(),
                            PHASE_ERROR,
                            e.to_string(),
                        );
                        self.link_task(&dag, &frame.node_name, t, &cid);
                    }
                }
                changed = true;
            }
            for t in &decision.start {
                let Some(task) = find(t) else { continue };
                let base = task_name(t);
                match self.unit_call(
                    frame,
                    &base,
                    t,
                    &strip_task_loop(task),
                    &scope,
                    None,
                    task_parts,
                ) {
                    Ok(call) => {
                        if let Some(n) = self.execute(&call) {
                            let cid = n.id.clone().unwrap_or_default();
                            self.link_task(&dag, &frame.node_name, t, &cid);
                            changed |= fulfilled(n.phase.as_deref());
                        }
                    }
                    Err(e) => {
                        let cid = self.marker_node(
                            frame,
                            &base,
                            t,
                            task.template.as_ref(),
                            PHASE_ERROR,
                            e.to_string(),
                        );
                        self.link_task(&dag, &frame.node_name, t, &cid);
                        changed = true;
                    }
                }
            }
            for cs in &decision.start_children {
                let Some(task) = find(&cs.task) else { continue };
                let Some(item) = items.get(&cs.task).and_then(|l| l.get(cs.index)).cloned() else {
                    continue;
                };
                let base = task_name(&cs.task);
                let tg_id = self.id(&base);
                let unit = Unit::of_task(task);
                let name = loop_child_name(&base, cs.index, &item);
                let display = loop_child_name(&cs.task, cs.index, &item);
                match Self::decide_when(&unit, &scope, Some(&item)) {
                    Ok(Some((false, rendered))) => {
                        let cid = self.marker_node(
                            frame,
                            &name,
                            &display,
                            task.template.as_ref(),
                            PHASE_SKIPPED,
                            format!("when '{rendered}' evaluated false"),
                        );
                        self.add_child(&tg_id, &cid);
                        changed = true;
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let cid = self.marker_node(
                            frame,
                            &name,
                            &display,
                            task.template.as_ref(),
                            PHASE_ERROR,
                            e.to_string(),
                        );
                        self.add_child(&tg_id, &cid);
                        changed = true;
                        continue;
                    }
                }
                match self.unit_call(
                    frame,
                    &base,
                    &cs.task,
                    &strip_task_loop(task),
                    &scope,
                    Some((cs.index, &item)),
                    task_parts,
                ) {
                    Ok(call) => {
                        if let Some(n) = self.execute(&call) {
                            let cid = n.id.clone().unwrap_or_default();
                            self.add_child(&tg_id, &cid);
                            changed |= fulfilled(n.phase.as_deref());
                        }
                    }
                    Err(e) => {
                        let cid = self.marker_node(
                            frame,
                            &name,
                            &display,
                            task.template.as_ref(),
                            PHASE_ERROR,
                            e.to_string(),
                        );
                        self.add_child(&tg_id, &cid);
                        changed = true;
                    }
                }
            }

            if decision.phase != TemplatePhase::Running {
                let targets: Vec<String> = dag.targets().iter().map(|t| task_name(t)).collect();
                self.finish_template(
                    frame,
                    tmpl,
                    &scope,
                    decision.phase,
                    decision.message.clone(),
                    |ctx| {
                        targets
                            .iter()
                            .filter_map(|t| ctx.node(t).and_then(|n| n.id.clone()))
                            .flat_map(|tid| ctx.outbound(&tid))
                            .collect()
                    },
                );
                break;
            }
            if !changed {
                break;
            }
        }
        self.nodes.get(&id).cloned()
    }

    /// Links a task's node under its dependencies' outbound nodes (or the DAG node).
    fn link_task(&mut self, dag: &Dag, dag_name: &str, task: &str, task_id: &str) {
        let deps: Vec<String> = dag
            .dependencies(task)
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect();
        if deps.is_empty() {
            let parent = self.id(dag_name);
            self.add_child(&parent, task_id);
            return;
        }
        for dep in deps {
            let Some(dep_id) = self
                .node(&format!("{dag_name}.{dep}"))
                .and_then(|n| n.id.clone())
            else {
                continue;
            };
            for o in self.outbound(&dep_id) {
                self.add_child(&o, task_id);
            }
        }
    }

    /// The scope of a DAG's tasks: the local scope plus `tasks.X.*` of every finished task
    /// (aggregated for loops).
    fn dag_scope(&self, local: &Scope, name: &str, tasks: &[DagTask]) -> Scope {
        let mut scope = self.with_global_outputs(local);
        for task in tasks {
            let base = format!("{name}.{}", task.name);
            let Some(n) = self.node(&base) else { continue };
            let prefix = format!("tasks.{}", task.name);
            if n.node_type.as_deref() == Some("TaskGroup") {
                let children: Vec<&NodeStatus> = n
                    .children
                    .iter()
                    .flatten()
                    .filter_map(|c| self.nodes.get(c))
                    .filter(|c| c.node_type.as_deref() != Some("Skipped"))
                    .collect();
                vars::add_aggregate_scope(&mut scope, &prefix, &children);
                if let Some(p) = &n.phase {
                    scope.insert(format!("{prefix}.status"), p.clone());
                }
            } else if fulfilled(n.phase.as_deref())
                || n.extra.get("daemoned") == Some(&Value::Bool(true))
            {
                vars::add_node_scope(&mut scope, &prefix, n);
            }
        }
        scope
    }
}

/// A step without its loop fields (rendered per item; the items were expanded apart).
fn strip_loop(step: &WorkflowStep) -> WorkflowStep {
    WorkflowStep {
        with_items: None,
        with_param: None,
        with_sequence: None,
        when: None,
        ..step.clone()
    }
}

fn strip_task_loop(task: &DagTask) -> DagTask {
    DagTask {
        with_items: None,
        with_param: None,
        with_sequence: None,
        when: None,
        depends: None,
        dependencies: None,
        ..task.clone()
    }
}

/// What a step or task calls: `template`, `templateRef`, `inline` (unparsed) and arguments.
type Parts = (
    Option<String>,
    Option<crate::workflow::types::TemplateRef>,
    Option<Value>,
    Option<Arguments>,
);

fn step_parts(s: &WorkflowStep) -> Parts {
    (
        s.template.clone(),
        s.template_ref.clone(),
        s.extra.get("inline").filter(|v| !v.is_null()).cloned(),
        s.arguments.clone(),
    )
}

fn task_parts(t: &DagTask) -> Parts {
    (
        t.template.clone(),
        t.template_ref.clone(),
        t.extra.get("inline").filter(|v| !v.is_null()).cloned(),
        t.arguments.clone(),
    )
}

/// The exit handler of a step/task: `onExit`, else the template of `hooks.exit` (Argo's
/// `GetExitHook`).
fn exit_template<'t>(
    on_exit: Option<&'t String>,
    extra: &'t crate::workflow::types::Extra,
) -> Option<&'t str> {
    on_exit
        .map(String::as_str)
        .filter(|e| !e.is_empty())
        .or_else(|| {
            extra
                .get("hooks")
                .and_then(|h| h.get("exit"))
                .and_then(|e| e.get("template"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
        })
}
