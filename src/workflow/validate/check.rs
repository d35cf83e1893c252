//! The checks of [`validate`]: structure, calls and arguments, DAG/steps/retry, variables.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::ValidationError;
use super::resolve::{ResolvedWorkflow, Source, prefix};
use crate::workflow::dag::Dag;
use crate::workflow::depends::is_task_name;
use crate::workflow::expr::{self, Scope, is_validated_name};
use crate::workflow::retry::RetryStrategy;
use crate::workflow::steps::Steps;
use crate::workflow::types::{
    Arguments, Parameter, Template, TemplateRef, TemplateType, any_string,
};

/// Argo's limit on template names (`maxCharsInObjectName`).
const MAX_TEMPLATE_NAME: usize = 128;

/// Globals Argo sets for every workflow (`workflow/common/common.go` GlobalVar*).
const GLOBALS: &[&str] = &[
    "workflow.name",
    "workflow.namespace",
    "workflow.mainEntrypoint",
    "workflow.serviceAccountName",
    "workflow.uid",
    "workflow.duration",
    "workflow.priority",
    "workflow.status",
    "workflow.labels",
    "workflow.labels.json",
    "workflow.annotations",
    "workflow.annotations.json",
];

/// Names Argo's `resolveAllVariables` accepts by prefix without a scope entry: values known only
/// at run time (creation/scheduled time, duration), self references for metrics (`outputs.`),
/// node names, and labels/annotations (cairn does not see `workflowDefaults`, which may add
/// some, so it accepts any key rather than reject a workflow Argo would run).
const RUNTIME_PREFIXES: &[&str] = &[
    "workflow.labels.",
    "workflow.annotations.",
    "workflow.creationTimestamp",
    "workflow.scheduledTime",
    "workflow.duration",
    "outputs.",
    "tasks.name",
    "steps.name",
    "node.name",
];

/// Set only for exit handlers: Argo adds it to the globals after it has validated the
/// entrypoint's tree (`workflow.status` is added before, so it is valid everywhere).
const EXIT_ONLY: &[&str] = &["workflow.failures"];

/// Every problem of the resolved workflow, in spec order.
pub fn validate(resolved: &ResolvedWorkflow) -> Result<(), Vec<ValidationError>> {
    let (inlines, errors) = collect_inlines(resolved);
    let by_path = inlines
        .iter()
        .enumerate()
        .map(|(k, i)| (i.path.clone(), k))
        .collect();
    let mut v = Validator {
        wf: resolved,
        inlines: &inlines,
        inline_by_path: by_path,
        errors,
        globals: BTreeSet::new(),
        main_tree: BTreeSet::new(),
    };
    v.run();
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

/// A template identified by its source (`None` = the Workflow's spec) and slot.
type Key = (Option<Source>, Slot);

/// Where a template sits in its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    /// `templates[i]`.
    Named(usize),
    /// The `k`th entry of the [`Inline`] list: the `inline` body of a step or DAG task.
    Inline(usize),
}

/// The `inline` template of a step or DAG task, parsed once before the walk. Argo validates it
/// as a template of its caller's source (its own inputs are its scope; the step's arguments
/// feed them).
struct Inline {
    src: Option<Source>,
    /// The JSON path of the step or task (`spec.templates[0].dag.tasks[1]`).
    path: String,
    template: Template,
}

/// Every `inline` template of every spec (the Workflow's and the referenced ones), nested
/// inline templates included; one that is not a template is reported at its `inline` field.
fn collect_inlines(wf: &ResolvedWorkflow) -> (Vec<Inline>, Vec<ValidationError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut sources = vec![None];
    sources.extend(wf.referenced.keys().cloned().map(Some));
    for src in sources {
        let Some(spec) = wf.spec_of(src.as_ref()) else {
            continue;
        };
        for (i, t) in spec.templates.iter().flatten().enumerate() {
            let path = format!("{}.templates[{i}]", prefix(src.as_ref()));
            scan_inlines(t, &src, &path, &mut out, &mut errors);
        }
    }
    // Inline templates may hold inline templates; each pass looks at the ones found before.
    // The list is finite (every entry is a strictly smaller part of the document).
    let mut k = 0;
    while k < out.len() {
        let (t, src, path) = (
            out[k].template.clone(),
            out[k].src.clone(),
            format!("{}.inline", out[k].path),
        );
        scan_inlines(&t, &src, &path, &mut out, &mut errors);
        k += 1;
    }
    (out, errors)
}

fn scan_inlines(
    t: &Template,
    src: &Option<Source>,
    path: &str,
    out: &mut Vec<Inline>,
    errors: &mut Vec<ValidationError>,
) {
    let steps = t.steps.iter().flatten().enumerate().flat_map(|(g, group)| {
        group
            .iter()
            .enumerate()
            .map(move |(j, s)| (format!("{path}.steps[{g}][{j}]"), s.extra.get("inline")))
    });
    let tasks = t
        .dag
        .iter()
        .flat_map(|d| d.tasks.iter().flatten())
        .enumerate()
        .map(|(j, task)| (format!("{path}.dag.tasks[{j}]"), task.extra.get("inline")));
    for (call_path, raw) in steps.chain(tasks) {
        let Some(raw) = raw.filter(|v| !v.is_null()) else {
            continue;
        };
        match serde_json::from_value::<Template>(raw.clone()) {
            Ok(template) => out.push(Inline {
                src: src.clone(),
                path: call_path,
                template,
            }),
            Err(e) => errors.push(ValidationError::InvalidInline {
                path: format!("{call_path}.inline"),
                message: e.to_string(),
            }),
        }
    }
}

struct Validator<'a> {
    wf: &'a ResolvedWorkflow,
    inlines: &'a [Inline],
    /// The step/task path of each inline template, to its index in `inlines`.
    inline_by_path: BTreeMap<String, usize>,
    errors: Vec<ValidationError>,
    globals: BTreeSet<String>,
    /// Templates reachable from the entrypoint through steps/DAG calls.
    main_tree: BTreeSet<Key>,
}

/// Where a step or task's callee lives.
struct Callee<'a> {
    key: Key,
    template: &'a Template,
}

impl<'a> Validator<'a> {
    fn run(&mut self) {
        let spec = &self.wf.spec;
        self.check_workflow_arguments();
        self.collect_globals();

        let entry = spec.entrypoint.as_deref().filter(|e| !e.is_empty());
        match entry {
            None => self.errors.push(ValidationError::MissingEntrypoint {
                path: "spec.entrypoint".into(),
            }),
            Some(name) => match self.wf.template(None, name) {
                None => self.errors.push(ValidationError::UnknownTemplate {
                    path: "spec.entrypoint".into(),
                    name: name.to_owned(),
                }),
                Some((i, t)) => {
                    self.check_required(t, spec.arguments.as_ref(), "spec.arguments.parameters");
                    self.main_tree = self.reachable((None, Slot::Named(i)));
                }
            },
        }
        if let Some(on_exit) = spec.on_exit.as_deref().filter(|e| !e.is_empty()) {
            match self.wf.template(None, on_exit) {
                None => self.errors.push(ValidationError::UnknownTemplate {
                    path: "spec.onExit".into(),
                    name: on_exit.to_owned(),
                }),
                Some((_, t)) => {
                    self.check_required(t, spec.arguments.as_ref(), "spec.arguments.parameters")
                }
            }
        }

        self.check_exit_refs(None, None, spec.hooks.as_ref(), "spec");
        self.check_unsupported(&spec.extra, "spec");

        // Names across the Workflow's own templates.
        let mut seen = BTreeSet::new();
        for (i, t) in spec.templates.iter().flatten().enumerate() {
            let path = format!("spec.templates[{i}].name");
            if !valid_template_name(&t.name) {
                self.errors.push(ValidationError::InvalidTemplateName {
                    path,
                    name: t.name.clone(),
                });
            } else if !seen.insert(t.name.as_str()) {
                self.errors.push(ValidationError::DuplicateTemplate {
                    path,
                    name: t.name.clone(),
                });
            }
        }

        // Every template of the Workflow, then the referenced templates (and what they call in
        // their own WorkflowTemplate), each once.
        let mut keys: Vec<Key> = (0..spec.templates.as_ref().map_or(0, Vec::len))
            .map(|i| (None, Slot::Named(i)))
            .collect();
        let mut seen_keys: BTreeSet<Key> = keys.iter().cloned().collect();
        let mut n = 0;
        while n < keys.len() {
            let key = keys[n].clone();
            n += 1;
            if let Some(t) = self.template_at(&key) {
                for callee in self.callees(&key, t) {
                    let foreign = callee.key.0.is_some() || matches!(callee.key.1, Slot::Inline(_));
                    if foreign && seen_keys.insert(callee.key.clone()) {
                        keys.push(callee.key);
                    }
                }
            }
        }
        for key in keys {
            self.check_template(&key);
        }
    }

    fn template_at(&self, key: &Key) -> Option<&'a Template> {
        match key.1 {
            Slot::Named(i) => self
                .wf
                .spec_of(key.0.as_ref())?
                .templates
                .as_deref()?
                .get(i),
            Slot::Inline(k) => self.inlines.get(k).map(|i| &i.template),
        }
    }

    fn template_path(&self, key: &Key) -> String {
        match key.1 {
            Slot::Named(i) => format!("{}.templates[{i}]", prefix(key.0.as_ref())),
            Slot::Inline(k) => self
                .inlines
                .get(k)
                .map_or_else(String::new, |i| format!("{}.inline", i.path)),
        }
    }

    /// The inline template of the step or task at `path` (`None` if it has none or it did not
    /// parse, which `collect_inlines` reported).
    fn inline_callee(&self, source: Option<&Source>, path: &str) -> Option<Callee<'a>> {
        let k = *self.inline_by_path.get(path)?;
        Some(Callee {
            key: (source.cloned(), Slot::Inline(k)),
            template: &self.inlines.get(k)?.template,
        })
    }

    /// The template a step or task calls from `source`'s spec (`None` if unresolvable).
    fn callee(
        &self,
        source: Option<&Source>,
        template: Option<&str>,
        template_ref: Option<&TemplateRef>,
    ) -> Option<Callee<'a>> {
        let (src, name) = match (template, template_ref) {
            (Some(name), None) => (source.cloned(), name),
            (None, Some(r)) => (Some(Source::of_ref(r)?), r.template.as_deref()?),
            _ => return None,
        };
        let (i, t) = self.wf.template(src.as_ref(), name)?;
        Some(Callee {
            key: (src, Slot::Named(i)),
            template: t,
        })
    }

    fn callees(&self, key: &Key, t: &Template) -> Vec<Callee<'a>> {
        let src = key.0.as_ref();
        let path = self.template_path(key);
        let mut out = Vec::new();
        for (g, group) in t.steps.iter().flatten().enumerate() {
            for (j, step) in group.iter().enumerate() {
                out.extend(
                    self.callee(src, step.template.as_deref(), step.template_ref.as_ref())
                        .or_else(|| self.inline_callee(src, &format!("{path}.steps[{g}][{j}]"))),
                );
            }
        }
        if let Some(dag) = &t.dag {
            for (j, task) in dag.tasks.iter().flatten().enumerate() {
                out.extend(
                    self.callee(src, task.template.as_deref(), task.template_ref.as_ref())
                        .or_else(|| self.inline_callee(src, &format!("{path}.dag.tasks[{j}]"))),
                );
            }
        }
        out
    }

    fn reachable(&self, from: Key) -> BTreeSet<Key> {
        let mut seen = BTreeSet::from([from.clone()]);
        let mut stack = vec![from];
        while let Some(key) = stack.pop() {
            if let Some(t) = self.template_at(&key) {
                for c in self.callees(&key, t) {
                    if seen.insert(c.key.clone()) {
                        stack.push(c.key);
                    }
                }
            }
        }
        seen
    }

    fn check_workflow_arguments(&mut self) {
        let params = self
            .wf
            .spec
            .arguments
            .as_ref()
            .and_then(|a| a.parameters.as_deref())
            .unwrap_or(&[]);
        let mut seen = BTreeSet::new();
        for (k, p) in params.iter().enumerate() {
            let path = format!("spec.arguments.parameters[{k}]");
            self.check_parameter_name(p, &path);
            self.check_unique(&mut seen, &p.name, &path);
            if p.value.is_none() && p.value_from.is_none() {
                self.errors.push(ValidationError::MissingArgumentValue {
                    path: format!("{path}.value"),
                    parameter: p.name.clone(),
                });
            }
            self.check_enum(p, &path, p.value.as_ref(), "value");
        }
    }

    fn check_unique(&mut self, seen: &mut BTreeSet<String>, name: &str, path: &str) {
        if !name.is_empty() && !seen.insert(name.to_owned()) {
            self.errors.push(ValidationError::DuplicateParameter {
                path: format!("{path}.name"),
                name: name.to_owned(),
            });
        }
    }

    /// Argo's `validateOutputParameter` and the per-type `valueFrom` rules of `validateOutputs`.
    fn check_output_parameters(&mut self, t: &Template, path: &str) {
        let mut seen = BTreeSet::new();
        for (k, p) in t
            .outputs
            .iter()
            .flat_map(|o| o.parameters.iter().flatten())
            .enumerate()
        {
            let ppath = format!("{path}.outputs.parameters[{k}]");
            self.check_parameter_name(p, &ppath);
            self.check_unique(&mut seen, &p.name, &ppath);
            let problem = match (&p.value, &p.value_from) {
                (Some(_), Some(_)) => Some("has both value and valueFrom; choose one".to_owned()),
                (Some(_), None) => None,
                (None, None) => Some("needs value or valueFrom".to_owned()),
                (None, Some(from)) => output_value_from_problem(t, from),
            };
            if let Some(problem) = problem {
                self.errors.push(ValidationError::OutputParameter {
                    path: ppath,
                    template: t.name.clone(),
                    parameter: p.name.clone(),
                    problem,
                });
            }
        }
    }

    fn check_parameter_name(&mut self, p: &Parameter, path: &str) {
        let ok = !p.name.is_empty()
            && p.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            self.errors.push(ValidationError::InvalidParameterName {
                path: format!("{path}.name"),
                name: p.name.clone(),
            });
        }
    }

    /// The parameter's `enum` must be non-empty and hold `value` when it is a literal.
    fn check_enum(&mut self, p: &Parameter, path: &str, value: Option<&Value>, field: &str) {
        let Some(allowed) = &p.enum_values else {
            return;
        };
        if allowed.is_empty() {
            self.errors.push(ValidationError::EmptyEnum {
                path: format!("{path}.enum"),
                parameter: p.name.clone(),
            });
            return;
        }
        self.check_in_enum(&p.name, allowed, value, &format!("{path}.{field}"));
    }

    fn check_in_enum(&mut self, name: &str, allowed: &[Value], value: Option<&Value>, path: &str) {
        let Some(value) = value.map(any_string) else {
            return;
        };
        if value.contains("{{") {
            // Known only at run time.
            return;
        }
        let allowed: Vec<String> = allowed.iter().map(any_string).collect();
        if !allowed.contains(&value) {
            self.errors.push(ValidationError::NotInEnum {
                path: path.to_owned(),
                parameter: name.to_owned(),
                value,
                allowed,
            });
        }
    }

    /// Required inputs of `callee` must be in `args`; supplied literals must be in its enums.
    fn check_required(&mut self, callee: &Template, args: Option<&Arguments>, path: &str) {
        let given = args.and_then(|a| a.parameters.as_deref()).unwrap_or(&[]);
        for p in callee
            .inputs
            .as_ref()
            .and_then(|i| i.parameters.as_deref())
            .unwrap_or(&[])
        {
            let required = p.value.is_none() && p.default.is_none() && p.value_from.is_none();
            match given.iter().position(|g| g.name == p.name) {
                None if required => self.errors.push(ValidationError::MissingArgument {
                    path: path.to_owned(),
                    template: callee.name.clone(),
                    parameter: p.name.clone(),
                }),
                Some(k) => {
                    if let Some(allowed) = p.enum_values.as_deref().filter(|a| !a.is_empty()) {
                        self.check_in_enum(
                            &p.name,
                            allowed,
                            given[k].value.as_ref(),
                            &format!("{path}[{k}].value"),
                        );
                    }
                }
                None => {}
            }
        }
    }

    fn collect_globals(&mut self) {
        let mut globals: BTreeSet<String> = GLOBALS.iter().map(|g| (*g).to_owned()).collect();
        let mut any = false;
        for p in self
            .wf
            .spec
            .arguments
            .iter()
            .flat_map(|a| a.parameters.iter().flatten())
        {
            any = true;
            globals.insert(format!("workflow.parameters.{}", p.name));
        }
        if any {
            globals.insert("workflow.parameters".into());
            globals.insert("workflow.parameters.json".into());
        }
        let specs = std::iter::once(&self.wf.spec).chain(self.wf.referenced.values());
        for spec in specs {
            for t in spec.templates.iter().flatten() {
                let Some(outputs) = &t.outputs else { continue };
                for p in outputs.parameters.iter().flatten() {
                    if let Some(g) = &p.global_name {
                        // A templated globalName is known only at run time: Argo then accepts
                        // any `workflow.outputs.parameters.*`.
                        let g = if g.contains("{{") { "*" } else { g };
                        globals.insert(format!("workflow.outputs.parameters.{g}"));
                    }
                }
                for a in outputs.artifacts.iter().flatten() {
                    if let Some(g) = a.get("globalName").and_then(Value::as_str) {
                        let g = if g.contains("{{") { "*" } else { g };
                        globals.insert(format!("workflow.outputs.artifacts.{g}"));
                    }
                }
            }
        }
        self.globals = globals;
    }

    fn check_template(&mut self, key: &Key) {
        let Some(t) = self.template_at(key) else {
            return;
        };
        let path = self.template_path(key);
        let types = type_fields(t);
        match types.len() {
            0 => self.errors.push(ValidationError::NoTemplateType {
                path: path.clone(),
                template: t.name.clone(),
            }),
            1 => {}
            _ => self.errors.push(ValidationError::MultipleTemplateTypes {
                path: path.clone(),
                template: t.name.clone(),
                types,
            }),
        }
        if let Some(rs) = &t.retry_strategy
            && let Err(e) = RetryStrategy::parse(&t.name, rs)
        {
            self.errors.push(ValidationError::Retry {
                path: format!("{path}.retryStrategy"),
                source: Box::new(e),
            });
        }
        self.check_type_fields(t, &path);
        self.check_unsupported(&t.extra, &path);
        let mut seen = BTreeSet::new();
        for (k, p) in t
            .inputs
            .iter()
            .flat_map(|i| i.parameters.iter().flatten())
            .enumerate()
        {
            let ppath = format!("{path}.inputs.parameters[{k}]");
            self.check_parameter_name(p, &ppath);
            self.check_unique(&mut seen, &p.name, &ppath);
            self.check_enum(p, &ppath, p.default.as_ref(), "default");
        }
        self.check_output_parameters(t, &path);

        let scope = self.template_scope(t);
        let exit_ok = !self.main_tree.contains(key);
        // Everything but the children (checked with their own scopes) and, for steps/DAG, the
        // outputs (which may read any child).
        let mut own = serde_json::to_value(t).unwrap_or(Value::Null);
        let composite = t.steps.is_some() || t.dag.is_some();
        if let Value::Object(map) = &mut own {
            map.remove("steps");
            map.remove("dag");
            if composite {
                map.remove("outputs");
            }
        }
        let ctx = VarCtx {
            template: &t.name,
            exit_ok,
        };
        self.check_vars(&own, &path, &scope, &ctx);

        if t.steps.is_some() {
            self.check_steps(key, t, &path, scope, &ctx);
        } else if t.dag.is_some() {
            self.check_dag(key, t, &path, scope, &ctx);
        }
    }

    /// `synchronization` (workflow or template level) has Argo's shape: mutex names, semaphore
    /// `configMapKeyRef`s, no database locks (see [`crate::workflow::sync::lock_refs`]).
    fn check_unsupported(&mut self, extra: &serde_json::Map<String, Value>, path: &str) {
        let Some(block) = extra.get(crate::workflow::sync::FIELD) else {
            return;
        };
        // The namespace only shapes the lock keys, not whether the block is valid.
        let field = format!("{path}.{}", crate::workflow::sync::FIELD);
        if let Err(e) = crate::workflow::sync::lock_refs(block, "namespace", &field) {
            let (path, message) = match e {
                crate::workflow::sync::SyncError::Spec { path, message } => (path, message),
                crate::workflow::sync::SyncError::Limit { key, message } => (key, message),
            };
            self.errors
                .push(ValidationError::Synchronization { path, message });
        }
    }

    /// Argo's `validateLeaf`/`validateNonLeaf` field rules and the `timeout` format.
    fn check_type_fields(&mut self, t: &Template, path: &str) {
        let composite = t.steps.is_some() || t.dag.is_some();
        if composite && t.active_deadline_seconds.is_some() {
            self.errors.push(ValidationError::FieldNotAllowed {
                path: format!("{path}.activeDeadlineSeconds"),
                template: t.name.clone(),
                field: "activeDeadlineSeconds",
                valid_for: "leaf (container, script, resource...)",
            });
        }
        if !composite && t.parallelism.is_some() {
            self.errors.push(ValidationError::FieldNotAllowed {
                path: format!("{path}.parallelism"),
                template: t.name.clone(),
                field: "parallelism",
                valid_for: "steps and dag",
            });
        }
        if let Some(timeout) = &t.timeout {
            // Argo's IsLeaf: pod-running and agent templates, not suspend.
            let leaf = t.container.is_some()
                || t.container_set.is_some()
                || t.script.is_some()
                || t.resource.is_some()
                || t.data.is_some()
                || t.http.is_some()
                || t.plugin.is_some();
            if !leaf {
                self.errors.push(ValidationError::FieldNotAllowed {
                    path: format!("{path}.timeout"),
                    template: t.name.clone(),
                    field: "timeout",
                    valid_for: "leaf (container, script, resource...)",
                });
            } else if timeout.trim().parse::<i64>().is_ok() {
                self.errors.push(ValidationError::InvalidTimeout {
                    path: format!("{path}.timeout"),
                    template: t.name.clone(),
                    timeout: timeout.clone(),
                });
            }
        }
    }

    fn template_scope(&self, t: &Template) -> Known {
        let mut k = Known::default();
        for g in &self.globals {
            k.names.insert(g.clone());
        }
        if let Some(inputs) = &t.inputs {
            k.names.insert("inputs.parameters".into());
            for p in inputs.parameters.iter().flatten() {
                k.names.insert(format!("inputs.parameters.{}", p.name));
            }
            for a in inputs.artifacts.iter().flatten() {
                if let Some(n) = a.get("name").and_then(Value::as_str) {
                    k.names.insert(format!("inputs.artifacts.{n}"));
                    k.names.insert(format!("inputs.artifacts.{n}.path"));
                }
            }
        }
        let pod = matches!(
            t.template_type(),
            Some(
                TemplateType::Container
                    | TemplateType::Script
                    | TemplateType::Resource
                    | TemplateType::ContainerSet
                    | TemplateType::Data
            )
        );
        if pod {
            k.names.insert("pod.name".into());
        }
        if t.steps.is_none()
            && t.dag.is_none()
            && let Some(outputs) = &t.outputs
        {
            for p in outputs.parameters.iter().flatten() {
                let has_path = p.value_from.as_ref().and_then(|v| v.get("path")).is_some();
                if has_path {
                    k.names
                        .insert(format!("outputs.parameters.{}.path", p.name));
                }
            }
            for a in outputs.artifacts.iter().flatten() {
                if let (Some(n), Some(_)) = (
                    a.get("name").and_then(Value::as_str),
                    a.get("path").and_then(Value::as_str),
                ) {
                    k.names.insert(format!("outputs.artifacts.{n}.path"));
                }
            }
        }
        if t.retry_strategy.is_some() {
            k.names.insert("retries".into());
            for f in ["exitCode", "status", "duration", "message"] {
                k.names.insert(format!("lastRetry.{f}"));
            }
        }
        k
    }

    fn check_vars(&mut self, doc: &Value, path: &str, known: &Known, ctx: &VarCtx<'_>) {
        let mut exit_tags: Vec<(String, String)> = Vec::new();
        let pred = |name: &str| known.knows(name, ctx.exit_ok);
        match expr::unresolved_in_json(doc, &pred) {
            Ok(found) => {
                for (p, r) in found {
                    if r.expression && known.knows_map(&r.name) {
                        continue;
                    }
                    let full = format!("{path}{p}");
                    if EXIT_ONLY.contains(&r.name.as_str()) {
                        exit_tags.push((full, r.tag));
                    } else {
                        self.errors.push(ValidationError::UnknownVariable {
                            path: full,
                            template: ctx.template.to_owned(),
                            tag: r.tag,
                            variable: r.name,
                        });
                    }
                }
            }
            Err((p, e)) => self.errors.push(ValidationError::Expression {
                path: format!("{path}{p}"),
                template: ctx.template.to_owned(),
                source: e,
            }),
        }
        for (path, tag) in exit_tags {
            self.errors.push(ValidationError::ExitHandlerOnly {
                path,
                template: ctx.template.to_owned(),
                tag,
            });
        }
    }

    /// A step or task's call: `template` xor `templateRef`, the callee exists, its required
    /// inputs are supplied and the arguments have values.
    /// A step/task/workflow `onExit` and lifecycle `hooks` must name existing templates of the
    /// same spec (hooks with a `templateRef` were left to [`super::resolve`]'s lookup rules).
    fn check_exit_refs(
        &mut self,
        source: Option<&Source>,
        on_exit: Option<&str>,
        hooks: Option<&Value>,
        path: &str,
    ) {
        if let Some(name) = on_exit.filter(|n| !n.is_empty())
            && self.wf.template(source, name).is_none()
        {
            self.errors.push(ValidationError::UnknownTemplate {
                path: format!("{path}.onExit"),
                name: name.to_owned(),
            });
        }
        let Some(Value::Object(hooks)) = hooks else {
            return;
        };
        for (hook, spec) in hooks {
            if let Some(name) = spec.get("template").and_then(Value::as_str)
                && self.wf.template(source, name).is_none()
            {
                self.errors.push(ValidationError::UnknownTemplate {
                    path: format!("{path}.hooks.{hook}.template"),
                    name: name.to_owned(),
                });
            }
        }
    }

    fn check_call(
        &mut self,
        key: &Key,
        template: Option<&str>,
        template_ref: Option<&TemplateRef>,
        inline: Option<&Value>,
        args: Option<&Arguments>,
        path: &str,
    ) -> Option<Callee<'a>> {
        let inline = inline.is_some_and(|v| !v.is_null());
        match (template, template_ref, inline) {
            (Some(_), None, false) | (None, Some(_), false) | (None, None, true) => {}
            _ => {
                self.errors.push(ValidationError::TemplateChoice {
                    path: path.to_owned(),
                });
                return None;
            }
        }
        let found = if inline {
            // A body that is not a template was reported by `collect_inlines`.
            self.inline_callee(key.0.as_ref(), path)
        } else {
            self.callee(key.0.as_ref(), template, template_ref)
        };
        let Some(callee) = found else {
            if let Some(name) = template {
                self.errors.push(ValidationError::UnknownTemplate {
                    path: format!("{path}.template"),
                    name: name.to_owned(),
                });
            }
            // A missing templateRef target is reported by `resolve`.
            return None;
        };
        for (k, p) in args
            .iter()
            .flat_map(|a| a.parameters.iter().flatten())
            .enumerate()
        {
            if p.value.is_none() && p.value_from.is_none() {
                self.errors.push(ValidationError::MissingArgumentValue {
                    path: format!("{path}.arguments.parameters[{k}].value"),
                    parameter: p.name.clone(),
                });
            }
        }
        self.check_required(
            callee.template,
            args,
            &format!("{path}.arguments.parameters"),
        );
        Some(callee)
    }

    fn check_steps(
        &mut self,
        key: &Key,
        t: &Template,
        path: &str,
        mut scope: Known,
        ctx: &VarCtx<'_>,
    ) {
        if let Err(e) = Steps::from_template(t) {
            self.errors.push(ValidationError::Steps {
                path: format!("{path}.steps"),
                source: Box::new(e),
            });
            return;
        }
        for (g, group) in t.steps.iter().flatten().enumerate() {
            for (j, step) in group.iter().enumerate() {
                let spath = format!("{path}.steps[{g}][{j}]");
                // Argo adds a step's status before checking it (so later steps of the same group
                // may read it too); its outputs only after.
                scope.names.insert(format!("steps.{}.status", step.name));
                self.check_loop_fields(
                    step.with_items.is_some(),
                    step.with_param.is_some(),
                    step.with_sequence.as_ref(),
                    &spath,
                );
                self.check_exit_refs(
                    key.0.as_ref(),
                    step.on_exit.as_deref(),
                    step.extra.get("hooks"),
                    &spath,
                );
                let callee = self.check_call(
                    key,
                    step.template.as_deref(),
                    step.template_ref.as_ref(),
                    step.extra.get("inline"),
                    step.arguments.as_ref(),
                    &spath,
                );
                let mut local = scope.clone();
                local.add_item(
                    step.with_items.as_deref(),
                    step.with_param.is_some(),
                    step.with_sequence.is_some(),
                );
                let doc = call_doc(step);
                self.check_vars(&doc, &spath, &local, ctx);
                let aggregate = step.with_items.as_ref().is_some_and(|i| !i.is_empty())
                    || step.with_param.is_some();
                scope.add_outputs(
                    &format!("steps.{}", step.name),
                    callee.map(|c| c.template),
                    aggregate,
                    false,
                );
            }
        }
        self.check_composite_outputs(t, path, &scope, ctx);
    }

    /// At most one of `withItems`, `withParam`, `withSequence`; a sequence has `count` or `end`.
    fn check_loop_fields(
        &mut self,
        items: bool,
        param: bool,
        sequence: Option<&Value>,
        path: &str,
    ) {
        if [items, param, sequence.is_some()]
            .iter()
            .filter(|b| **b)
            .count()
            > 1
        {
            self.errors.push(ValidationError::LoopFields {
                path: path.to_owned(),
            });
        }
        if let Some(seq) = sequence
            && seq.get("count").is_some()
            && seq.get("end").is_some()
        {
            self.errors.push(ValidationError::SequenceBounds {
                path: format!("{path}.withSequence"),
            });
        }
    }

    fn check_dag(
        &mut self,
        key: &Key,
        t: &Template,
        path: &str,
        mut scope: Known,
        ctx: &VarCtx<'_>,
    ) {
        let Some(dag_spec) = &t.dag else { return };
        let tasks = dag_spec.tasks.as_deref().unwrap_or(&[]);
        if tasks.is_empty() {
            self.errors.push(ValidationError::EmptyDag {
                path: format!("{path}.dag.tasks"),
                template: t.name.clone(),
            });
            return;
        }
        let index: BTreeMap<&str, usize> = tasks
            .iter()
            .enumerate()
            .map(|(i, task)| (task.name.as_str(), i))
            .collect();
        let using_depends = tasks.iter().any(|task| task.depends.is_some());
        for (j, task) in tasks.iter().enumerate() {
            if using_depends && task.continue_on.is_some() {
                self.errors.push(ValidationError::ContinueOnWithDepends {
                    path: format!("{path}.dag.tasks[{j}].continueOn"),
                    template: t.name.clone(),
                });
            }
        }
        // A templated target is rendered with the workflow's arguments so an unknown target is
        // reported at submission (Argo skips it then and fails at run time); if rendering fails
        // the variable check reports the tag.
        let target = dag_spec
            .target
            .as_deref()
            .filter(|t| t.contains("{{"))
            .map(|raw| {
                let mut s = Scope::new();
                for p in self
                    .wf
                    .spec
                    .arguments
                    .iter()
                    .flat_map(|a| a.parameters.iter().flatten())
                {
                    if let Some(v) = p.value_text() {
                        s.insert(format!("workflow.parameters.{}", p.name), v);
                    }
                }
                expr::render(raw, &s).unwrap_or_default()
            });
        let dag = match Dag::from_template(t, target.as_deref()) {
            Ok(d) => Some(d),
            Err(e) => {
                let field = dag_error_field(&e, &index, tasks);
                self.errors.push(ValidationError::Dag {
                    path: format!("{path}.dag{field}"),
                    source: Box::new(e),
                });
                None
            }
        };
        let mut callees = Vec::with_capacity(tasks.len());
        for (j, task) in tasks.iter().enumerate() {
            let tpath = format!("{path}.dag.tasks[{j}]");
            self.check_loop_fields(
                task.with_items.is_some(),
                task.with_param.is_some(),
                task.with_sequence.as_ref(),
                &tpath,
            );
            self.check_exit_refs(
                key.0.as_ref(),
                task.on_exit.as_deref(),
                task.extra.get("hooks"),
                &tpath,
            );
            callees.push(self.check_call(
                key,
                task.template.as_deref(),
                task.template_ref.as_ref(),
                task.extra.get("inline"),
                task.arguments.as_ref(),
                &tpath,
            ));
        }
        let aggregate = |j: usize| {
            let task = &tasks[j];
            task.with_items.as_ref().is_some_and(|i| !i.is_empty()) || task.with_param.is_some()
        };
        // As in Argo's validateDAG, every task's outputs are in scope (so the DAG's outputs and
        // hooks can read them); an ancestor adds its status and aggregated outputs; argument
        // values that start with `{{tasks.` must name an ancestor.
        for (j, task) in tasks.iter().enumerate() {
            let callee = callees[j].as_ref().map(|c| c.template);
            scope.add_outputs(&format!("tasks.{}", task.name), callee, aggregate(j), false);
        }
        // Variables need the ancestry, which only a valid DAG has.
        let Some(dag) = dag else { return };
        for (j, task) in tasks.iter().enumerate() {
            let tpath = format!("{path}.dag.tasks[{j}]");
            let mut local = scope.clone();
            if task.extra.contains_key("hooks") {
                local.names.insert(format!("tasks.{}.status", task.name));
            }
            let ancestry = ancestors(&dag, &task.name);
            for anc in &ancestry {
                if let Some(&a) = index.get(anc.as_str()) {
                    let callee = callees[a].as_ref().map(|c| c.template);
                    local.add_outputs(&format!("tasks.{anc}"), callee, aggregate(a), true);
                }
            }
            local.add_item(
                task.with_items.as_deref(),
                task.with_param.is_some(),
                task.with_sequence.is_some(),
            );
            let doc = call_doc(task);
            self.check_vars(&doc, &tpath, &local, ctx);
            self.check_argument_ancestry(task.arguments.as_ref(), &ancestry, &tpath);
        }
        self.check_composite_outputs(t, path, &scope, ctx);
    }

    /// Argo's `validateDAGTaskArgumentDependency`: an argument whose value (or artifact `from`)
    /// starts with `{{tasks.X.` needs X among the task's ancestors.
    fn check_argument_ancestry(
        &mut self,
        args: Option<&Arguments>,
        ancestry: &BTreeSet<String>,
        path: &str,
    ) {
        let Some(args) = args else { return };
        let referenced = |text: &str| -> Option<String> {
            let rest = text.strip_prefix("{{tasks.")?;
            Some(rest.split(['.', '}']).next().unwrap_or("").to_owned())
        };
        for (k, p) in args.parameters.iter().flatten().enumerate() {
            let Some(value) = p.value.as_ref().and_then(Value::as_str) else {
                continue;
            };
            if let Some(task) = referenced(value).filter(|t| !ancestry.contains(t)) {
                self.errors.push(ValidationError::MissingDependency {
                    path: format!("{path}.arguments.parameters[{k}].value"),
                    task,
                    argument: p.name.clone(),
                });
            }
        }
        for (k, a) in args.artifacts.iter().flatten().enumerate() {
            let Some(from) = a.get("from").and_then(Value::as_str) else {
                continue;
            };
            if let Some(task) = referenced(from).filter(|t| !ancestry.contains(t)) {
                self.errors.push(ValidationError::MissingDependency {
                    path: format!("{path}.arguments.artifacts[{k}].from"),
                    task,
                    argument: a
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                });
            }
        }
    }

    fn check_composite_outputs(
        &mut self,
        t: &Template,
        path: &str,
        scope: &Known,
        ctx: &VarCtx<'_>,
    ) {
        if let Some(outputs) = &t.outputs {
            let doc = serde_json::to_value(outputs).unwrap_or(Value::Null);
            self.check_vars(&doc, &format!("{path}.outputs"), scope, ctx);
        }
    }
}

/// What is wrong with an output parameter's `valueFrom` for this kind of template, if anything.
fn output_value_from_problem(t: &Template, from: &Value) -> Option<String> {
    let set = |k: &str| {
        from.get(k)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
    };
    let kinds = [
        "path",
        "jqFilter",
        "jsonPath",
        "parameter",
        "expression",
        "supplied",
    ];
    let count = kinds.iter().filter(|k| set(k)).count();
    if count == 0 {
        return Some(
            "valueFrom type unspecified: choose one of path, jqFilter, jsonPath, parameter, expression, supplied"
                .to_owned(),
        );
    }
    if count > 1 {
        return Some(
            "multiple valueFrom types specified: choose one of path, jqFilter, jsonPath, parameter, expression, supplied"
                .to_owned(),
        );
    }
    if t.container.is_some() || t.script.is_some() || t.container_set.is_some() {
        (!set("path")).then(|| {
            "valueFrom.path must be specified for container and script templates".to_owned()
        })
    } else if t.resource.is_some() {
        (!set("jqFilter") && !set("jsonPath")).then(|| {
            "valueFrom.jqFilter or jsonPath must be specified for resource templates".to_owned()
        })
    } else if t.steps.is_some() || t.dag.is_some() {
        (!set("parameter") && !set("expression")).then(|| {
            "valueFrom.parameter or expression must be specified for steps and dag templates"
                .to_owned()
        })
    } else {
        None
    }
}

/// Transitive dependencies of a task (Argo's `GetTaskAncestry`).
fn ancestors(dag: &Dag, task: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![task.to_owned()];
    while let Some(t) = stack.pop() {
        for d in dag.dependencies(&t).unwrap_or_default() {
            if out.insert(d.to_owned()) {
                stack.push(d.to_owned());
            }
        }
    }
    out
}

/// The field of a DAG template a [`crate::workflow::dag::DagError`] is about, relative to `dag`.
fn dag_error_field(
    e: &crate::workflow::dag::DagError,
    index: &BTreeMap<&str, usize>,
    tasks: &[crate::workflow::types::DagTask],
) -> String {
    use crate::workflow::dag::DagError as E;
    let deps_field = |task: &str| {
        let Some(&i) = index.get(task) else {
            return ".tasks".to_owned();
        };
        let f = if tasks[i].depends.is_some() {
            "depends"
        } else {
            "dependencies"
        };
        format!(".tasks[{i}].{f}")
    };
    match e {
        E::NotDag { .. } => String::new(),
        E::MissingName { index, .. } => format!(".tasks[{index}].name"),
        E::InvalidName { task, .. } => match index.get(task.as_str()) {
            Some(i) => format!(".tasks[{i}].name"),
            None => ".tasks".into(),
        },
        E::DuplicateTask { task, .. } => {
            let second = tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| &t.name == task)
                .nth(1)
                .map(|(i, _)| i);
            match second {
                Some(i) => format!(".tasks[{i}].name"),
                None => ".tasks".into(),
            }
        }
        E::MixedDependencyFields { .. } => ".tasks".into(),
        E::Depends { source, .. } => {
            use crate::workflow::depends::DependsError as D;
            match source.as_ref() {
                D::Syntax { task, .. } | D::UnknownResult { task, .. } => deps_field(task),
                D::InvalidDependency { task, index: k, .. } => match index.get(task.as_str()) {
                    Some(i) => format!(".tasks[{i}].dependencies[{k}]"),
                    None => ".tasks".into(),
                },
            }
        }
        E::UnknownDependency { task, .. } => deps_field(task),
        E::Cycle { cycle, .. } => cycle
            .first()
            .map_or_else(|| ".tasks".to_owned(), |t| deps_field(t)),
        E::UnknownTarget { .. } | E::UnresolvedTarget { .. } => ".target".into(),
        E::InvalidContinueOn { task, .. } => match index.get(task.as_str()) {
            Some(i) => format!(".tasks[{i}].continueOn"),
            None => ".tasks".into(),
        },
    }
}

fn valid_template_name(name: &str) -> bool {
    name.len() <= MAX_TEMPLATE_NAME && is_task_name(name)
}

/// The type fields a template sets, in Argo's spelling.
fn type_fields(t: &Template) -> Vec<&'static str> {
    [
        (t.container.is_some(), "container"),
        (t.container_set.is_some(), "containerSet"),
        (t.dag.is_some(), "dag"),
        (t.data.is_some(), "data"),
        (t.http.is_some(), "http"),
        (t.plugin.is_some(), "plugin"),
        (t.resource.is_some(), "resource"),
        (t.script.is_some(), "script"),
        (t.steps.is_some(), "steps"),
        (t.suspend.is_some(), "suspend"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, n)| n)
    .collect()
}

struct VarCtx<'t> {
    template: &'t str,
    exit_ok: bool,
}

/// The variables known at one point of a template: exact names, plus the loop's `item`.
#[derive(Clone, Default)]
struct Known {
    names: BTreeSet<String>,
    /// `withParam`: any `item.*` (the JSON is known only at run time).
    any_item: bool,
}

impl Known {
    /// Argo's `addItemsToScope`: scalar items give `item`, maps `item.<key>`, lists
    /// `item.[i]`; `withParam` any `item.*`; `withSequence` `item`.
    fn add_item(&mut self, items: Option<&[Value]>, param: bool, sequence: bool) {
        if let Some(items) = items.filter(|i| !i.is_empty()) {
            for item in items {
                match item {
                    Value::Object(map) => {
                        for k in map.keys() {
                            self.names.insert(format!("item.{k}"));
                        }
                    }
                    Value::Array(list) => {
                        for i in 0..list.len() {
                            self.names.insert(format!("item.[{i}]"));
                        }
                    }
                    _ => {
                        self.names.insert("item".into());
                    }
                }
            }
        } else if param {
            self.any_item = true;
            self.names.insert("item".into());
        } else if sequence {
            self.names.insert("item".into());
        }
    }

    /// Argo's `addOutputsToScope` for a finished step or ancestor task.
    fn add_outputs(
        &mut self,
        prefix: &str,
        callee: Option<&Template>,
        aggregate: bool,
        ancestor: bool,
    ) {
        for f in ["id", "startedAt", "finishedAt", "hostNodeName"] {
            self.names.insert(format!("{prefix}.{f}"));
        }
        if ancestor {
            self.names.insert(format!("{prefix}.status"));
        }
        let Some(t) = callee else {
            return;
        };
        if t.extra.get("daemon").and_then(Value::as_bool) == Some(true) {
            self.names.insert(format!("{prefix}.ip"));
        }
        let has_output = t.container.is_some()
            || t.script.is_some()
            || t.container_set.is_some()
            || t.data.is_some()
            || t.http.is_some()
            || t.plugin.is_some();
        if has_output {
            self.names.insert(format!("{prefix}.outputs.result"));
            self.names.insert(format!("{prefix}.exitCode"));
        }
        if let Some(outputs) = &t.outputs {
            for p in outputs.parameters.iter().flatten() {
                self.names
                    .insert(format!("{prefix}.outputs.parameters.{}", p.name));
            }
            for a in outputs.artifacts.iter().flatten() {
                if let Some(n) = a.get("name").and_then(Value::as_str) {
                    self.names.insert(format!("{prefix}.outputs.artifacts.{n}"));
                }
            }
        }
        if aggregate {
            if t.script.is_some() || t.container_set.is_some() {
                self.names.insert(format!("{prefix}.outputs.result"));
                self.names.insert(format!("{prefix}.exitCode"));
                self.names.insert(format!("{prefix}.outputs.parameters"));
            } else {
                self.names.insert(format!("{prefix}.outputs.parameters"));
            }
        }
    }

    /// Whether a reference is acceptable: not one Argo validates, or in scope.
    fn knows(&self, name: &str, exit_ok: bool) -> bool {
        let validated = is_validated_name(name)
            || name == "item"
            || name == "retries"
            || name.starts_with("lastRetry.");
        if !validated {
            return true;
        }
        if EXIT_ONLY.contains(&name) {
            return exit_ok;
        }
        if self.names.contains(name) {
            return true;
        }
        if RUNTIME_PREFIXES.iter().any(|p| name.starts_with(p)) {
            return true;
        }
        if self.any_item && (name == "item" || name.starts_with("item.")) {
            return true;
        }
        for kind in ["parameters", "artifacts"] {
            let prefix = format!("workflow.outputs.{kind}.");
            if name.starts_with(&prefix) && self.names.contains(&format!("{prefix}*")) {
                return true;
            }
        }
        false
    }

    /// For expressions: a map they read whole (`inputs.parameters`, `steps.a.outputs`) and
    /// index is known when a known name lies under it. Simple tags need the exact name.
    fn knows_map(&self, name: &str) -> bool {
        let dotted = format!("{name}.");
        self.names
            .range(dotted.clone()..)
            .next()
            .is_some_and(|n| n.starts_with(&dotted))
    }
}

/// A step or DAG task as the document whose tags `check_vars` reads. An `inline` body is
/// checked as a template of its own (its tags are its inputs', not the caller's), so it is
/// left out.
fn call_doc(call: &impl serde::Serialize) -> Value {
    let mut doc = serde_json::to_value(call).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut doc {
        m.remove("inline");
    }
    doc
}
