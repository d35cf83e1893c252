//! Submission-time validation of Workflows, as Argo's `validate.go` does it, pure.
//!
//! Owns two steps, both free of I/O:
//! - [`resolve`]: merges a `workflowTemplateRef` (namespaced, or `clusterScope: true`) into the
//!   Workflow's spec the way Argo's `JoinWorkflowSpec` does (the referenced spec is the base, the
//!   Workflow's own fields override it; `templates` and `arguments.parameters`/`artifacts` merge
//!   by `name`, the Workflow's entry winning), then follows every `templateRef` of every steps
//!   and DAG template (transitively: a referenced template may refer further) and loads the
//!   WorkflowTemplate/ClusterWorkflowTemplate specs through a [`TemplateLookup`]. The controller
//!   implements the lookup with the kube API (or an informer cache); tests with a map.
//! - [`validate`]: every problem of the [`ResolvedWorkflow`] at once, each a
//!   [`ValidationError`] carrying the JSON path of the offending field
//!   (`spec.templates[2].dag.tasks[1].depends`). Templates that come from a referenced
//!   WorkflowTemplate are reported under `WorkflowTemplate/<name>:spec.templates[i]...`
//!   (`ClusterWorkflowTemplate/<name>:...` for cluster-scoped ones).
//!
//! Argo rules kept (argo-workflows `workflow/validate/validate.go`, docs "Workflow Variables",
//! "Workflow Templates", "Exit handlers"):
//! - `entrypoint` is required and must name a template; `onExit` likewise; template names are
//!   unique and in Argo's format (`[a-zA-Z0-9][-a-zA-Z0-9]*`, at most 128 characters); each
//!   template has exactly one type (container, script, resource, suspend, steps, dag, http,
//!   plugin, containerSet, data).
//! - Every step/task calls an existing template (`template`, or `templateRef` resolved by
//!   [`resolve`]), not both. Input parameters with no `value`, `default` nor `valueFrom` must be
//!   supplied by every caller, and by `spec.arguments` for the entrypoint and the exit handler.
//!   Workflow arguments need a value; a literal value (without tags) must be in the parameter's
//!   `enum`, and so must an input's `default`.
//! - DAGs are checked by [`crate::workflow::dag::Dag`] (names, cycles, unknown dependencies,
//!   targets; a templated `target` is rendered with the workflow arguments first), steps by
//!   [`crate::workflow::steps::Steps`], retry strategies by
//!   [`crate::workflow::retry::RetryStrategy::parse`].
//! - Steps/tasks: at most one of `withItems`/`withParam`/`withSequence` (and a sequence has
//!   `count` or `end`); a DAG has tasks; `continueOn` is refused in a DAG that uses `depends`;
//!   `onExit` and lifecycle `hooks` (workflow, step, task) name existing templates;
//!   `parallelism` only on steps/DAG templates, `activeDeadlineSeconds` and `timeout` only on
//!   leaf templates, and `timeout` is a duration (`30s`), not a bare number.
//! - Variables (Argo's `resolveAllVariables` and the scope `validateTemplate`, `validateSteps`
//!   and `validateDAG` build): every `{{...}}` tag Argo validates (the prefixes of
//!   [`crate::workflow::expr::is_validated_name`], plus `item`, `retries` and `lastRetry.*`) must
//!   name a variable of that scope: globals (`workflow.name`, `namespace`, `uid`, `status`,
//!   `parameters.<declared>` and, with arguments, `parameters`/`parameters.json`,
//!   `outputs.parameters.<globalName>`...), the template's `inputs.*`, `pod.name` in pod
//!   templates, `outputs.*.path` in leaf templates, `retries`/`lastRetry.*` only with a
//!   `retryStrategy`. Names Argo accepts by prefix are accepted (`outputs.` self references,
//!   `workflow.labels.`/`annotations.`, `creationTimestamp`, `scheduledTime`, `duration`,
//!   `node.name`). Steps: `steps.<name>.*` only for steps before this one (the outputs of a step
//!   are added after it, its `status` before it, as Argo does). DAGs: every task's outputs are
//!   in scope, but `tasks.<name>.status` and aggregated loop outputs only for ancestors, and an
//!   argument value (or artifact `from`) starting with `{{tasks.X.` needs X among the task's
//!   ancestors (Argo's `validateDAGTaskArgumentDependency`). Items: scalar `withItems` give
//!   `item`, maps `item.<key>`, lists `item.[i]`, `withParam` any `item.*`, `withSequence`
//!   `item`. `{{=...}}` expressions must parse and what they read is held to the same scope (a
//!   map they read whole, such as `inputs.parameters`, is known when something under it is).
//!   Tags Argo does not validate (a Helm template in a script) are left alone.
//! - `synchronization` (mutexes and semaphores, workflow- or template-level, legacy and plural
//!   forms) must have Argo's shape ([`crate::workflow::sync::lock_refs`]); database locks are
//!   refused ([`ValidationError::Synchronization`]). The locks themselves are the operator's.
//! - `inline` templates in steps and DAG tasks: a step/task has exactly one of `template`,
//!   `templateRef` and `inline`; the inline body is validated as a template of its caller's
//!   source (path `...dag.tasks[1].inline`), its required inputs supplied by the step's
//!   arguments, and it may hold inline templates itself.
//! - `workflow.failures` is for exit handlers only: Argo adds it to the globals after it has
//!   validated the entrypoint's tree, so a template reachable from the entrypoint through
//!   steps/DAG calls may not use it; the `onExit` tree and templates reached only otherwise may.
//!   (`workflow.status` is added before the entrypoint is validated: valid everywhere.)
//!
//! Deliberate differences (stricter only where Argo would fail at run time anyway): a templated
//! DAG `target` is rendered with the workflow arguments and checked (Argo skips it at
//! submission); all errors are reported, where Argo stops at the first; a `{{item}}` is not
//! carried over from a loop step to the next steps (Argo's scope leaks it); labels and
//! annotations are not checked against the Workflow's metadata (cairn does not see the
//! controller's `workflowDefaults`).
//!
//! Wiring (for the controller and the API): on submission, `resolve(&wf, &lookup)` with a
//! lookup over the informer caches of WorkflowTemplates/ClusterWorkflowTemplates, then
//! `validate(&resolved)`; answer 400 with every error's `to_string()` (it starts with the path).
//! Keep the [`ResolvedWorkflow`] to run from: its `spec` is what Argo stores as
//! `status.storedWorkflowTemplateSpec`.
//!
//! Invariants: no panics on input; `validate` never stops at the first problem (except that an
//! expression syntax error ends the walk of the field's template, as the expression engine
//! reports one per document); error order is deterministic (spec order).

mod check;
mod resolve;

#[cfg(test)]
mod tests;

pub use check::validate;
pub use resolve::{
    CONFIGMAP_TYPE_LABEL, CONFIGMAP_TYPE_PARAMETER, ConfigMapValue, ResolvedWorkflow, SecretValue,
    Source, TemplateLookup, resolve,
};

use super::dag::DagError;
use super::expr::ExprError;
use super::retry::RetryError;
use super::steps::StepsError;

/// A problem found at submission. Every variant names the JSON path of the offending field.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// `workflowTemplateRef` or `templateRef` names a WorkflowTemplate that does not exist.
    #[error("{path}: {kind} '{name}' not found")]
    MissingWorkflowTemplate {
        /// Path of the reference.
        path: String,
        /// `WorkflowTemplate` or `ClusterWorkflowTemplate`.
        kind: &'static str,
        /// The name referred to.
        name: String,
    },
    /// A reference lacks a required field (`name`, `template`).
    #[error("{path} is required")]
    MissingField {
        /// Path of the missing field.
        path: String,
    },
    /// `templateRef.template` names a template the referenced WorkflowTemplate does not have.
    #[error("{path}: template '{template}' not found in {kind} '{name}'")]
    MissingRefTemplate {
        /// Path of `templateRef.template`.
        path: String,
        /// `WorkflowTemplate` or `ClusterWorkflowTemplate`.
        kind: &'static str,
        /// The WorkflowTemplate.
        name: String,
        /// The template looked for.
        template: String,
    },
    /// Merging the referenced spec with the Workflow's gave something that is not a spec.
    #[error("{path}: cannot merge workflowTemplateRef: {message}")]
    Merge {
        /// Path of the reference.
        path: String,
        /// The decoding error.
        message: String,
    },
    /// A template name is empty, malformed or too long.
    #[error(
        "{path}: template name '{name}' is invalid: expected [a-zA-Z0-9][-a-zA-Z0-9]*, at most 128 characters"
    )]
    InvalidTemplateName {
        /// Path of the name.
        path: String,
        /// The name as written.
        name: String,
    },
    /// A parameter name outside `[-a-zA-Z0-9_]+`.
    #[error("{path}: parameter name '{name}' is invalid: expected [-a-zA-Z0-9_]+")]
    InvalidParameterName {
        /// Path of the name.
        path: String,
        /// The name as written.
        name: String,
    },
    /// Two templates share a name.
    #[error("{path}: template name '{name}' is not unique")]
    DuplicateTemplate {
        /// Path of the second occurrence's name.
        path: String,
        /// The repeated name.
        name: String,
    },
    /// A template without any type field.
    #[error(
        "{path}: template '{template}' type unspecified: choose one of container, containerSet, dag, data, http, plugin, resource, script, steps, suspend"
    )]
    NoTemplateType {
        /// Path of the template.
        path: String,
        /// Template name.
        template: String,
    },
    /// A template with several type fields.
    #[error("{path}: template '{template}' has multiple template types specified: {}", types.join(", "))]
    MultipleTemplateTypes {
        /// Path of the template.
        path: String,
        /// Template name.
        template: String,
        /// The type fields set.
        types: Vec<&'static str>,
    },
    /// `spec.entrypoint` is missing.
    #[error("{path} is required: the name of the template to run first")]
    MissingEntrypoint {
        /// `spec.entrypoint`.
        path: String,
    },
    /// A reference (entrypoint, onExit, a step or task's `template`) to a template that does not
    /// exist.
    #[error("{path}: template '{name}' not found")]
    UnknownTemplate {
        /// Path of the reference.
        path: String,
        /// The name referred to.
        name: String,
    },
    /// A step or task with neither `template` nor `templateRef`, or both.
    #[error("{path}: exactly one of 'template', 'templateRef' or 'inline' is required")]
    TemplateChoice {
        /// Path of the step or task.
        path: String,
    },
    /// A required input parameter the caller does not supply.
    #[error(
        "{path}: inputs.parameters.{parameter} was not supplied (required by template '{template}')"
    )]
    MissingArgument {
        /// Path of the caller's arguments.
        path: String,
        /// The called template.
        template: String,
        /// The parameter.
        parameter: String,
    },
    /// An argument with neither `value` nor `valueFrom`.
    #[error("{path} is required: argument '{parameter}' has no value")]
    MissingArgumentValue {
        /// Path of the `value` field.
        path: String,
        /// The parameter.
        parameter: String,
    },
    /// A value outside the parameter's `enum`.
    #[error("{path}: value '{value}' of parameter '{parameter}' is not in enum [{}]", allowed.join(", "))]
    NotInEnum {
        /// Path of the value.
        path: String,
        /// The parameter.
        parameter: String,
        /// The value given.
        value: String,
        /// The allowed values.
        allowed: Vec<String>,
    },
    /// An `enum` with no values.
    #[error("{path}: enum of parameter '{parameter}' must not be empty")]
    EmptyEnum {
        /// Path of the enum.
        path: String,
        /// The parameter.
        parameter: String,
    },
    /// A DAG template is invalid.
    #[error("{path}: {source}")]
    Dag {
        /// Path of the offending DAG field.
        path: String,
        /// What the DAG check found.
        source: Box<DagError>,
    },
    /// A steps template is invalid.
    #[error("{path}: {source}")]
    Steps {
        /// Path of the offending step field.
        path: String,
        /// What the steps check found.
        source: Box<StepsError>,
    },
    /// A `retryStrategy` does not parse.
    #[error("{path}: {source}")]
    Retry {
        /// Path of the retryStrategy.
        path: String,
        /// The parse error.
        source: Box<RetryError>,
    },
    /// A DAG task's argument reads a task that is not among its ancestors.
    #[error(
        "{path}: missing dependency '{task}' for argument '{argument}': add it to depends/dependencies"
    )]
    MissingDependency {
        /// Path of the argument's value (or artifact `from`).
        path: String,
        /// The task read.
        task: String,
        /// The argument.
        argument: String,
    },
    /// A DAG template without tasks.
    #[error("{path}: template '{template}' must have at least one task")]
    EmptyDag {
        /// Path of `dag.tasks`.
        path: String,
        /// Template name.
        template: String,
    },
    /// `continueOn` on a task of a DAG that uses `depends`.
    #[error(
        "{path}: template '{template}' cannot use 'continueOn' when using 'depends'; use 'task.Failed' / 'task.Errored' instead"
    )]
    ContinueOnWithDepends {
        /// Path of the `continueOn`.
        path: String,
        /// Template name.
        template: String,
    },
    /// Several of `withItems`, `withParam`, `withSequence`.
    #[error("{path}: only one of withItems, withParam, withSequence can be specified")]
    LoopFields {
        /// Path of the step or task.
        path: String,
    },
    /// `withSequence` with both `count` and `end`.
    #[error("{path}: only one of count or end can be defined in withSequence")]
    SequenceBounds {
        /// Path of the withSequence.
        path: String,
    },
    /// A field that is valid only for some template types.
    #[error("{path}: template '{template}': {field} is only valid for {valid_for} templates")]
    FieldNotAllowed {
        /// Path of the field.
        path: String,
        /// Template name.
        template: String,
        /// The field.
        field: &'static str,
        /// Which templates may have it.
        valid_for: &'static str,
    },
    /// A `timeout` that is a bare number (Argo wants a duration such as `30s`).
    #[error(
        "{path}: template '{template}' has invalid duration format in timeout '{timeout}' (use a duration such as 30s)"
    )]
    InvalidTimeout {
        /// Path of the timeout.
        path: String,
        /// Template name.
        template: String,
        /// The value.
        timeout: String,
    },
    /// `workflowTemplateRef` together with the Workflow's own `templates`.
    #[error("{path}: templates is an invalid field in a Workflow that has a workflowTemplateRef")]
    TemplatesWithRef {
        /// `spec.templates`.
        path: String,
    },
    /// Two parameters with the same name in one list.
    #[error("{path}: parameter name '{name}' is not unique")]
    DuplicateParameter {
        /// Path of the second occurrence's name.
        path: String,
        /// The repeated name.
        name: String,
    },
    /// An output parameter without a usable source for its template's type.
    #[error("{path}: template '{template}': output parameter '{parameter}' {problem}")]
    OutputParameter {
        /// Path of the parameter.
        path: String,
        /// Template name.
        template: String,
        /// The parameter.
        parameter: String,
        /// What is wrong.
        problem: String,
    },
    /// An Argo field cairn does not implement and that changes what a run does, so running
    /// without it would be silently wrong (`synchronization`: the run would not wait for its
    /// lock).
    #[error("{path}: {field} is not supported by cairn yet: {consequence}; remove the field")]
    Unsupported {
        /// Path of the field.
        path: String,
        /// The field (`synchronization`).
        field: &'static str,
        /// What running without it would do wrong.
        consequence: &'static str,
    },
    /// A `synchronization` block without Argo's shape (a mutex without a name, a semaphore
    /// without `configMapKeyRef.name`/`key`, a database lock).
    #[error("{path}: {message}")]
    Synchronization {
        /// Path of the offending field.
        path: String,
        /// What was expected.
        message: String,
    },
    /// The `inline` body of a step or DAG task is not a template.
    #[error("{path}: expected a template (container, script, steps, dag...): {message}")]
    InvalidInline {
        /// Path of the `inline` field.
        path: String,
        /// What the decoder found wrong.
        message: String,
    },
    /// A tag refers to a variable that does not exist in its scope.
    #[error(
        "{path}: template '{template}': failed to resolve {tag}{}",
        reads(tag, variable)
    )]
    UnknownVariable {
        /// Path of the field holding the tag.
        path: String,
        /// The template being validated.
        template: String,
        /// The tag as written.
        tag: String,
        /// The variable that does not exist (an expression may read several).
        variable: String,
    },
    /// `workflow.failures` outside an exit handler.
    #[error(
        "{path}: template '{template}': {tag} is only available in exit handlers (spec.onExit)"
    )]
    ExitHandlerOnly {
        /// Path of the field holding the tag.
        path: String,
        /// The template being validated.
        template: String,
        /// The tag as written.
        tag: String,
    },
    /// A tag that does not parse (bad expression, unclosed `{{`).
    #[error("{path}: template '{template}': {source}")]
    Expression {
        /// Path of the field.
        path: String,
        /// The template being validated.
        template: String,
        /// The engine's error (names the expression and column).
        source: ExprError,
    },
}

/// For an expression tag, which of the variables it reads is unknown.
fn reads(tag: &str, variable: &str) -> String {
    if tag.trim_start_matches('{').trim_end_matches('}').trim() == variable {
        String::new()
    } else {
        format!(" (unknown variable {variable})")
    }
}

impl ValidationError {
    /// The JSON path of the offending field.
    pub fn path(&self) -> &str {
        match self {
            ValidationError::MissingWorkflowTemplate { path, .. }
            | ValidationError::MissingField { path }
            | ValidationError::MissingRefTemplate { path, .. }
            | ValidationError::Merge { path, .. }
            | ValidationError::InvalidTemplateName { path, .. }
            | ValidationError::InvalidParameterName { path, .. }
            | ValidationError::DuplicateTemplate { path, .. }
            | ValidationError::NoTemplateType { path, .. }
            | ValidationError::MultipleTemplateTypes { path, .. }
            | ValidationError::MissingEntrypoint { path }
            | ValidationError::UnknownTemplate { path, .. }
            | ValidationError::TemplateChoice { path }
            | ValidationError::MissingArgument { path, .. }
            | ValidationError::MissingArgumentValue { path, .. }
            | ValidationError::NotInEnum { path, .. }
            | ValidationError::EmptyEnum { path, .. }
            | ValidationError::Dag { path, .. }
            | ValidationError::Steps { path, .. }
            | ValidationError::Retry { path, .. }
            | ValidationError::UnknownVariable { path, .. }
            | ValidationError::ExitHandlerOnly { path, .. }
            | ValidationError::Expression { path, .. }
            | ValidationError::MissingDependency { path, .. }
            | ValidationError::EmptyDag { path, .. }
            | ValidationError::ContinueOnWithDepends { path, .. }
            | ValidationError::LoopFields { path }
            | ValidationError::SequenceBounds { path }
            | ValidationError::FieldNotAllowed { path, .. }
            | ValidationError::InvalidTimeout { path, .. }
            | ValidationError::TemplatesWithRef { path }
            | ValidationError::DuplicateParameter { path, .. }
            | ValidationError::OutputParameter { path, .. }
            | ValidationError::Unsupported { path, .. }
            | ValidationError::Synchronization { path, .. }
            | ValidationError::InvalidInline { path, .. } => path,
        }
    }

    /// A short, stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ValidationError::MissingWorkflowTemplate { .. } => "missing_workflow_template",
            ValidationError::MissingField { .. } => "missing_field",
            ValidationError::MissingRefTemplate { .. } => "missing_ref_template",
            ValidationError::Merge { .. } => "merge",
            ValidationError::InvalidTemplateName { .. } => "invalid_template_name",
            ValidationError::InvalidParameterName { .. } => "invalid_parameter_name",
            ValidationError::DuplicateTemplate { .. } => "duplicate_template",
            ValidationError::NoTemplateType { .. } => "no_template_type",
            ValidationError::MultipleTemplateTypes { .. } => "multiple_template_types",
            ValidationError::MissingEntrypoint { .. } => "missing_entrypoint",
            ValidationError::UnknownTemplate { .. } => "unknown_template",
            ValidationError::TemplateChoice { .. } => "template_choice",
            ValidationError::MissingArgument { .. } => "missing_argument",
            ValidationError::MissingArgumentValue { .. } => "missing_argument_value",
            ValidationError::NotInEnum { .. } => "not_in_enum",
            ValidationError::EmptyEnum { .. } => "empty_enum",
            ValidationError::Dag { .. } => "dag",
            ValidationError::Steps { .. } => "steps",
            ValidationError::Retry { .. } => "retry",
            ValidationError::UnknownVariable { .. } => "unknown_variable",
            ValidationError::ExitHandlerOnly { .. } => "exit_handler_only",
            ValidationError::Expression { .. } => "expression",
            ValidationError::MissingDependency { .. } => "missing_dependency",
            ValidationError::EmptyDag { .. } => "empty_dag",
            ValidationError::ContinueOnWithDepends { .. } => "continue_on_with_depends",
            ValidationError::LoopFields { .. } => "loop_fields",
            ValidationError::SequenceBounds { .. } => "sequence_bounds",
            ValidationError::FieldNotAllowed { .. } => "field_not_allowed",
            ValidationError::InvalidTimeout { .. } => "invalid_timeout",
            ValidationError::TemplatesWithRef { .. } => "templates_with_ref",
            ValidationError::DuplicateParameter { .. } => "duplicate_parameter",
            ValidationError::OutputParameter { .. } => "output_parameter",
            ValidationError::Unsupported { .. } => "unsupported",
            ValidationError::Synchronization { .. } => "synchronization",
            ValidationError::InvalidInline { .. } => "invalid_inline",
        }
    }
}
