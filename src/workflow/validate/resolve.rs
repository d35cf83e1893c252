//! Resolution of `workflowTemplateRef` and `templateRef` through a [`TemplateLookup`].

use std::collections::{BTreeMap, VecDeque};

use serde_json::Value;

use super::ValidationError;
use crate::workflow::types::{
    ClusterWorkflowTemplate, Template, TemplateRef, Workflow, WorkflowSpec, WorkflowTemplate,
};

/// Where the controller finds referenced WorkflowTemplates. Implemented with the kube API (or
/// an informer cache) by the controller and with a map by tests; `None` means "does not exist".
pub trait TemplateLookup {
    /// The WorkflowTemplate `name` in `namespace` (the Workflow's namespace, empty if unset).
    fn workflow_template(&self, namespace: &str, name: &str) -> Option<WorkflowTemplate>;
    /// The ClusterWorkflowTemplate `name`.
    fn cluster_workflow_template(&self, name: &str) -> Option<ClusterWorkflowTemplate>;
    /// The value of `key` in the parameter ConfigMap `name` of `namespace`, for
    /// `valueFrom.configMapKeyRef` (Argo reads only ConfigMaps labelled
    /// [`CONFIGMAP_TYPE_LABEL`]`: Parameter`). Lookups that cannot see ConfigMaps (submission
    /// validation) keep the default: not found.
    fn config_map_value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
        let _ = (namespace, name, key);
        ConfigMapValue::NoConfigMap
    }
    /// The value of `key` in the Secret `name` of `namespace`, for `valueFrom.secretKeyRef`
    /// (any Secret of the Workflow's namespace, as Argo). Lookups that cannot see Secrets keep
    /// the default: not found.
    fn secret_value(&self, namespace: &str, name: &str, key: &str) -> SecretValue {
        let _ = (namespace, name, key);
        SecretValue::NoSecret
    }
}

/// What [`TemplateLookup::secret_value`] found. `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    /// The key's value (UTF-8).
    Found(String),
    /// The Secret exists but has no such key (or its value is not UTF-8).
    NoKey,
    /// No such Secret (or it could not be read).
    NoSecret,
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::Found(_) => f.write_str("Found(<redacted>)"),
            SecretValue::NoKey => f.write_str("NoKey"),
            SecretValue::NoSecret => f.write_str("NoSecret"),
        }
    }
}

/// The label Argo requires on ConfigMaps that parameters read (`valueFrom.configMapKeyRef`),
/// with the value [`CONFIGMAP_TYPE_PARAMETER`].
pub const CONFIGMAP_TYPE_LABEL: &str = "workflows.argoproj.io/configmap-type";
/// See [`CONFIGMAP_TYPE_LABEL`].
pub const CONFIGMAP_TYPE_PARAMETER: &str = "Parameter";

/// What [`TemplateLookup::config_map_value`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigMapValue {
    /// The key's value.
    Found(String),
    /// The ConfigMap exists (and is labelled) but has no such key.
    NoKey,
    /// No such ConfigMap, or not labelled as a parameter ConfigMap.
    NoConfigMap,
}

/// A referenced WorkflowTemplate (`cluster: false`) or ClusterWorkflowTemplate.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    /// Whether it is a ClusterWorkflowTemplate.
    pub cluster: bool,
    /// Its name.
    pub name: String,
}

impl Source {
    /// The kind's name, for messages.
    pub fn kind(&self) -> &'static str {
        if self.cluster {
            "ClusterWorkflowTemplate"
        } else {
            "WorkflowTemplate"
        }
    }

    /// The prefix of the JSON paths of this source's spec in error messages.
    pub fn path_prefix(&self) -> String {
        format!("{}/{}:spec", self.kind(), self.name)
    }

    /// The source a `templateRef` names (`None` without a name).
    pub fn of_ref(r: &TemplateRef) -> Option<Source> {
        Some(Source {
            cluster: r.cluster_scope.unwrap_or(false),
            name: r.name.clone()?,
        })
    }
}

/// A Workflow ready for [`super::validate`] and for the controller: its spec merged with its
/// `workflowTemplateRef` (the reference removed), and the specs of every WorkflowTemplate a
/// `templateRef` reaches.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResolvedWorkflow {
    /// The effective spec.
    pub spec: WorkflowSpec,
    /// Referenced WorkflowTemplate/ClusterWorkflowTemplate specs.
    pub referenced: BTreeMap<Source, WorkflowSpec>,
}

impl ResolvedWorkflow {
    /// The spec of `source` (`None` = the Workflow's own spec).
    pub fn spec_of(&self, source: Option<&Source>) -> Option<&WorkflowSpec> {
        match source {
            None => Some(&self.spec),
            Some(s) => self.referenced.get(s),
        }
    }

    /// The template `name` of `source`'s spec, with its index.
    pub fn template(&self, source: Option<&Source>, name: &str) -> Option<(usize, &Template)> {
        self.spec_of(source)?
            .templates
            .as_deref()?
            .iter()
            .enumerate()
            .find(|(_, t)| t.name == name)
    }
}

/// The prefix of JSON paths into `source`'s spec.
pub(super) fn prefix(source: Option<&Source>) -> String {
    source.map_or_else(|| "spec".to_owned(), Source::path_prefix)
}

/// Merges the Workflow's `workflowTemplateRef` and loads every `templateRef`'s WorkflowTemplate.
/// Fails on the first reference that cannot be resolved, naming the referring field.
pub fn resolve(
    wf: &Workflow,
    lookup: &dyn TemplateLookup,
) -> Result<ResolvedWorkflow, ValidationError> {
    let namespace = wf.metadata.namespace.as_deref().unwrap_or("");
    let mut spec = wf.spec.clone();
    if let Some(wtr) = &wf.spec.workflow_template_ref {
        if wf.spec.templates.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(ValidationError::TemplatesWithRef {
                path: "spec.templates".into(),
            });
        }
        let Some(name) = wtr.name.clone().filter(|n| !n.is_empty()) else {
            return Err(ValidationError::MissingField {
                path: "spec.workflowTemplateRef.name".into(),
            });
        };
        let source = Source {
            cluster: wtr.cluster_scope.unwrap_or(false),
            name,
        };
        let Some(base) = load(lookup, namespace, &source) else {
            return Err(ValidationError::MissingWorkflowTemplate {
                path: "spec.workflowTemplateRef.name".into(),
                kind: source.kind(),
                name: source.name,
            });
        };
        spec = join_specs(&wf.spec, &base)?;
    }

    let mut resolved = ResolvedWorkflow {
        spec,
        referenced: BTreeMap::new(),
    };
    let mut queue: VecDeque<Option<Source>> = VecDeque::from([None]);
    while let Some(source) = queue.pop_front() {
        let Some(spec) = resolved.spec_of(source.as_ref()) else {
            continue;
        };
        let base = prefix(source.as_ref());
        let mut refs = Vec::new();
        for (i, t) in spec.templates.iter().flatten().enumerate() {
            for (path, r) in template_refs(t) {
                refs.push((format!("{base}.templates[{i}]{path}"), r.clone()));
            }
        }
        for (path, r) in refs {
            let Some(src) = Source::of_ref(&r).filter(|s| !s.name.is_empty()) else {
                return Err(ValidationError::MissingField {
                    path: format!("{path}.name"),
                });
            };
            let Some(template) = r.template.clone().filter(|t| !t.is_empty()) else {
                return Err(ValidationError::MissingField {
                    path: format!("{path}.template"),
                });
            };
            if !resolved.referenced.contains_key(&src) {
                let Some(loaded) = load(lookup, namespace, &src) else {
                    return Err(ValidationError::MissingWorkflowTemplate {
                        path: format!("{path}.name"),
                        kind: src.kind(),
                        name: src.name,
                    });
                };
                resolved.referenced.insert(src.clone(), loaded);
                queue.push_back(Some(src.clone()));
            }
            if resolved.template(Some(&src), &template).is_none() {
                return Err(ValidationError::MissingRefTemplate {
                    path: format!("{path}.template"),
                    kind: src.kind(),
                    name: src.name,
                    template,
                });
            }
        }
    }
    Ok(resolved)
}

fn load(lookup: &dyn TemplateLookup, namespace: &str, source: &Source) -> Option<WorkflowSpec> {
    if source.cluster {
        lookup
            .cluster_workflow_template(&source.name)
            .map(|t| t.spec)
    } else {
        lookup
            .workflow_template(namespace, &source.name)
            .map(|t| t.spec)
    }
}

/// Every `templateRef` of a steps or DAG template, with its path relative to the template.
pub(super) fn template_refs(t: &Template) -> Vec<(String, &TemplateRef)> {
    let mut out = Vec::new();
    for (g, group) in t.steps.iter().flatten().enumerate() {
        for (j, step) in group.iter().enumerate() {
            if let Some(r) = &step.template_ref {
                out.push((format!(".steps[{g}][{j}].templateRef"), r));
            }
        }
    }
    if let Some(dag) = &t.dag {
        for (j, task) in dag.tasks.iter().flatten().enumerate() {
            if let Some(r) = &task.template_ref {
                out.push((format!(".dag.tasks[{j}].templateRef"), r));
            }
        }
    }
    out
}

/// Argo's `JoinWorkflowSpec`: the referenced spec is the base and the Workflow's own fields win;
/// lists keyed by `name` (templates, argument parameters and artifacts) merge entry by entry.
fn join_specs(wf: &WorkflowSpec, base: &WorkflowSpec) -> Result<WorkflowSpec, ValidationError> {
    let merge_err = |e: serde_json::Error| ValidationError::Merge {
        path: "spec.workflowTemplateRef".into(),
        message: e.to_string(),
    };
    let mut own = serde_json::to_value(wf).map_err(merge_err)?;
    if let Value::Object(map) = &mut own {
        map.remove("workflowTemplateRef");
    }
    let mut merged = serde_json::to_value(base).map_err(merge_err)?;
    merge_value(&mut merged, own, "");
    serde_json::from_value(merged).map_err(merge_err)
}

/// Lists merged by their entries' `name` (Argo's patchMergeKey), by dotted path from the spec.
const MERGE_BY_NAME: &[&str] = &[
    ".templates",
    ".arguments.parameters",
    ".arguments.artifacts",
];

fn merge_value(base: &mut Value, over: Value, path: &str) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let child = format!("{path}.{k}");
                match b.get_mut(&k) {
                    Some(existing) => merge_value(existing, v, &child),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) if MERGE_BY_NAME.contains(&path) => {
            for item in o {
                let name = item.get("name").cloned();
                match b
                    .iter_mut()
                    .find(|e| name.is_some() && e.get("name") == name.as_ref())
                {
                    Some(existing) => merge_value(existing, item, &format!("{path}[]")),
                    None => b.push(item),
                }
            }
        }
        (b, o) => *b = o,
    }
}
