use std::collections::BTreeMap;

use super::*;
use crate::workflow::types::{ClusterWorkflowTemplate, CronWorkflow, Workflow, WorkflowTemplate};

const CONFORMANCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/workflows"
);

/// Test lookup: WorkflowTemplates and ClusterWorkflowTemplates by name.
#[derive(Default)]
struct MapLookup {
    namespaced: BTreeMap<String, WorkflowTemplate>,
    cluster: BTreeMap<String, ClusterWorkflowTemplate>,
}

impl TemplateLookup for MapLookup {
    fn workflow_template(&self, _namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        self.namespaced.get(name).cloned()
    }
    fn cluster_workflow_template(&self, name: &str) -> Option<ClusterWorkflowTemplate> {
        self.cluster.get(name).cloned()
    }
}

impl MapLookup {
    fn with_yaml(mut self, yaml: &str) -> Self {
        for doc in documents(yaml) {
            let kind = doc_kind(&doc);
            if kind == "WorkflowTemplate" {
                let t: WorkflowTemplate = serde_saphyr::from_str(&doc).expect("WorkflowTemplate");
                let name = t.metadata.name.clone().expect("name");
                self.namespaced.insert(name, t);
            } else if kind == "ClusterWorkflowTemplate" {
                let t: ClusterWorkflowTemplate =
                    serde_saphyr::from_str(&doc).expect("ClusterWorkflowTemplate");
                let name = t.metadata.name.clone().expect("name");
                self.cluster.insert(name, t);
            }
        }
        self
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

fn doc_kind(doc: &str) -> String {
    doc.lines()
        .find_map(|l| l.strip_prefix("kind:"))
        .map(|k| k.trim().to_owned())
        .unwrap_or_default()
}

fn conformance_lookup() -> MapLookup {
    let mut lookup = MapLookup::default();
    for entry in std::fs::read_dir(CONFORMANCE).expect("conformance folder") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            lookup = lookup.with_yaml(&std::fs::read_to_string(&path).expect("read"));
        }
    }
    lookup
}

fn run(wf: &Workflow, lookup: &MapLookup) -> Result<(), Vec<ValidationError>> {
    let resolved = resolve(wf, lookup).map_err(|e| vec![e])?;
    validate(&resolved)
}

#[test]
fn every_conformance_manifest_validates() {
    let lookup = conformance_lookup();
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(CONFORMANCE)
        .expect("conformance folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("read");
        for doc in documents(&text) {
            let wf = match doc_kind(&doc).as_str() {
                "Workflow" => serde_saphyr::from_str::<Workflow>(&doc).expect("Workflow"),
                "CronWorkflow" => {
                    let cron: CronWorkflow = serde_saphyr::from_str(&doc).expect("CronWorkflow");
                    Workflow {
                        spec: cron.spec.workflow_spec.clone().expect("workflowSpec"),
                        ..Workflow::default()
                    }
                }
                _ => continue,
            };
            checked += 1;
            if let Err(errors) = run(&wf, &lookup) {
                let msgs: Vec<String> = errors.iter().map(ToString::to_string).collect();
                failures.push(format!("{}: {msgs:#?}", path.display()));
            }
        }
    }
    assert!(checked >= 28, "only {checked} workflows found");
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A Workflow from the YAML of its `spec`.
fn spec_wf(spec: &str) -> Workflow {
    let spec = serde_saphyr::from_str(spec).expect("spec YAML");
    Workflow {
        spec,
        ..Workflow::default()
    }
}

/// Templates shared by the cases, by name.
const LIB: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: lib
spec:
  templates:
  - name: echo
    inputs:
      parameters:
      - name: msg
    container:
      image: busybox
      args: ["{{inputs.parameters.msg}}"]
  - name: bad-var
    container:
      image: busybox
      args: ["{{inputs.parameters.nope}}"]
---
apiVersion: argoproj.io/v1alpha1
kind: ClusterWorkflowTemplate
metadata:
  name: cluster-lib
spec:
  entrypoint: hello
  arguments:
    parameters:
    - name: greeting
      value: hi
  templates:
  - name: hello
    container:
      image: busybox
      args: ["{{workflow.parameters.greeting}}"]
"#;

fn lib() -> MapLookup {
    MapLookup::default().with_yaml(LIB)
}

/// Cases that must validate.
const ACCEPTED: &[(&str, &str)] = &[
    (
        "inline templates in steps and DAG tasks, with inputs from the arguments",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      inline:
        inputs: {parameters: [{name: x}]}
        container: {image: busybox, args: ["{{inputs.parameters.x}}", "{{pod.name}}"]}
      arguments: {parameters: [{name: x, value: "1"}]}
  - - name: b
      template: dag
      arguments: {parameters: [{name: y, value: "{{steps.a.outputs.result}}"}]}
- name: dag
  inputs: {parameters: [{name: y}]}
  dag:
    tasks:
    - name: c
      inline:
        inputs: {parameters: [{name: z, default: "{{workflow.name}}"}]}
        script: {image: python, source: "print('{{inputs.parameters.z}}')"}
    - name: d
      depends: c
      inline:
        steps:
        - - name: e
            inline: {container: {image: busybox, args: ["{{workflow.name}}"]}}
"#,
    ),
    (
        "withParam allows any item field",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: gen
      template: gen
  - - name: use
      template: echo
      arguments: {parameters: [{name: m, value: "{{item.a.b}}"}]}
      withParam: "{{steps.gen.outputs.result}}"
- name: gen
  script: {image: python, source: "print(1)"}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox, args: ["{{inputs.parameters.m}}"]}
"#,
    ),
    (
        "workflow.status and failures in the exit handler",
        r#"
entrypoint: main
onExit: exit
templates:
- name: main
  container: {image: busybox}
- name: exit
  steps:
  - - name: notify
      template: notify
      arguments: {parameters: [{name: s, value: "{{workflow.status}}"}]}
      when: "{{workflow.status}} != Succeeded"
- name: notify
  inputs: {parameters: [{name: s}]}
  container: {image: busybox, args: ["{{inputs.parameters.s}} {{workflow.failures}}"]}
"#,
    ),
    (
        "retries and lastRetry with a retryStrategy",
        r#"
entrypoint: main
templates:
- name: main
  retryStrategy: {limit: 3, expression: "lastRetry.status == 'Error'"}
  container: {image: busybox, args: ["{{retries}}", "{{=asInt(retries) + 1}}"]}
"#,
    ),
    (
        "tasks of transitive ancestors",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: gen}
    - {name: b, template: gen, depends: a}
    - name: c
      template: echo
      depends: b
      arguments: {parameters: [{name: m, value: "{{tasks.a.outputs.result}} {{tasks.b.status}}"}]}
  outputs:
    parameters:
    - name: out
      valueFrom: {parameter: "{{tasks.c.outputs.parameters.o}}"}
- name: gen
  script: {image: python, source: "print(1)"}
- name: echo
  inputs: {parameters: [{name: m}]}
  outputs: {parameters: [{name: o, valueFrom: {path: /tmp/o}}]}
  container: {image: busybox, args: ["{{inputs.parameters.m}}", "{{outputs.parameters.o.path}}", "{{pod.name}}"]}
"#,
    ),
    (
        "expressions reading maps, defaults and global outputs",
        r#"
entrypoint: main
arguments: {parameters: [{name: p, value: "1", enum: ["1", "2"]}]}
templates:
- name: main
  inputs: {parameters: [{name: x, default: a, enum: [a, b]}]}
  outputs: {parameters: [{name: g, globalName: shared, valueFrom: {path: /tmp/g}}]}
  container:
    image: busybox
    args:
    - "{{=inputs.parameters['x'] + workflow.parameters.p}}"
    - "{{workflow.outputs.parameters.shared}} {{workflow.labels.team}} {{workflow.name}}"
    - "{{ .Values.notArgo }}"
"#,
    ),
    (
        "a cluster-scoped workflowTemplateRef with overridden arguments",
        r#"
workflowTemplateRef: {name: cluster-lib, clusterScope: true}
arguments: {parameters: [{name: greeting, value: hello}]}
"#,
    ),
    (
        "templateRef into a WorkflowTemplate with a required input supplied",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - name: a
      templateRef: {name: lib, template: echo}
      arguments: {parameters: [{name: msg, value: "{{item}}"}]}
      withSequence: {count: "3"}
"#,
    ),
    (
        "Argo's run-time names: workflow.status anywhere, outputs self references, durations",
        r#"
entrypoint: main
templates:
- name: main
  outputs: {parameters: [{name: x, valueFrom: {path: /tmp/x}}]}
  container:
    image: busybox
    args: ["{{workflow.status}} {{outputs.parameters.x.path}} {{outputs.result}} {{workflow.duration}} {{workflow.scheduledTime}} {{node.name}}"]
"#,
    ),
    (
        "items: scalars, maps by key, lists by index",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: echo, arguments: {parameters: [{name: m, value: "{{item}}"}]}, withItems: [1, two, true]}
  - - {name: b, template: echo, arguments: {parameters: [{name: m, value: "{{item.os}}"}]}, withItems: [{os: debian}]}
  - - {name: c, template: echo, arguments: {parameters: [{name: m, value: "{{item.[1]}}"}]}, withItems: [[x, y]]}
  - - {name: d, template: echo, arguments: {parameters: [{name: m, value: "{{steps.a.outputs.parameters}} {{steps.d.status}}"}]}}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
    ),
    (
        "expressions with bracket access and sprig",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: flip-coin, template: gen}
    - name: heads
      template: echo
      depends: flip-coin
      when: "{{=tasks['flip-coin'].outputs.result == 'heads'}}"
      arguments:
        parameters:
        - name: m
          value: "{{=sprig.trim(tasks['flip-coin'].outputs.result) + string(asInt('1'))}}"
- name: gen
  script: {image: python, source: "print(1)"}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
    ),
    (
        "a templated globalName allows any global output",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: leaf}
  - - {name: b, template: leaf, arguments: {parameters: [{name: g, value: "{{workflow.outputs.parameters.anything}}"}]}}
- name: leaf
  inputs: {parameters: [{name: g, default: x}]}
  outputs: {parameters: [{name: o, globalName: "{{inputs.parameters.g}}", valueFrom: {path: /tmp/o}}]}
  container: {image: busybox}
"#,
    ),
];

#[test]
fn accepted_cases() {
    let lookup = lib();
    for (name, spec) in ACCEPTED {
        let result = run(&spec_wf(spec), &lookup);
        let msgs: Vec<String> = result
            .err()
            .unwrap_or_default()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(msgs.is_empty(), "{name}: {msgs:#?}");
    }
}

#[test]
fn workflow_template_ref_merges_arguments_and_templates() {
    let wf = spec_wf(
        r#"
workflowTemplateRef: {name: cluster-lib, clusterScope: true}
arguments: {parameters: [{name: greeting, value: hello}]}
"#,
    );
    let resolved = resolve(&wf, &lib()).expect("resolves");
    assert_eq!(resolved.spec.entrypoint.as_deref(), Some("hello"));
    assert!(resolved.spec.workflow_template_ref.is_none());
    let params = resolved
        .spec
        .arguments
        .as_ref()
        .and_then(|a| a.parameters.clone())
        .expect("parameters");
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].value_text().as_deref(), Some("hello"));
}

#[test]
fn template_ref_loads_referenced_specs_transitively() {
    let lookup = conformance_lookup();
    let wf = spec_wf(
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      templateRef: {name: workflow-template-inner-steps, template: inner-steps}
"#,
    );
    let resolved = resolve(&wf, &lookup).expect("resolves");
    let names: Vec<&str> = resolved
        .referenced
        .keys()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "workflow-template-inner-steps",
            "workflow-template-print-message"
        ]
    );
    assert_eq!(validate(&resolved).map_err(|e| e.len()), Ok(()));
}

/// Every (path, message) a case must report, in order.
type Expected = &'static [(&'static str, &'static str)];

/// Cases that must fail: (name, spec YAML, expected errors).
const REJECTED: &[(&str, &str, Expected)] = &[
    (
        "inline template reads an input nobody declared",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      inline:
        container: {image: busybox, args: ["{{inputs.parameters.x}}"]}
"#,
        &[(
            "spec.templates[0].steps[0][0].inline.container.args[0]",
            "spec.templates[0].steps[0][0].inline.container.args[0]: template '': failed to resolve {{inputs.parameters.x}}",
        )],
    ),
    (
        "inline template input not supplied by the task's arguments",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - name: a
      inline:
        inputs: {parameters: [{name: x}]}
        container: {image: busybox, args: ["{{inputs.parameters.x}}"]}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].arguments.parameters",
            "spec.templates[0].dag.tasks[0].arguments.parameters: inputs.parameters.x was not supplied (required by template '')",
        )],
    ),
    (
        "inline body that is not a template",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - name: a
      inline: {container: "busybox"}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].inline",
            "spec.templates[0].dag.tasks[0].inline: expected a template (container, script, steps, dag...): invalid type: string \"busybox\", expected struct Container",
        )],
    ),
    (
        "inline template beside a template name",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: leaf, inline: {container: {image: busybox}}}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].steps[0][0]",
            "spec.templates[0].steps[0][0]: exactly one of 'template', 'templateRef' or 'inline' is required",
        )],
    ),
    (
        "inline template with two types",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - name: a
      inline: {container: {image: busybox}, script: {image: busybox, source: "x"}}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].inline",
            "spec.templates[0].dag.tasks[0].inline: template '' has multiple template types specified: container, script",
        )],
    ),
    (
        "workflow-level synchronization: a mutex without a name",
        r#"
entrypoint: main
synchronization:
  mutexes: [{name: deploy}, {namespace: other}]
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.synchronization.mutexes[1].name",
            "spec.synchronization.mutexes[1].name: expected a non-empty string",
        )],
    ),
    (
        "template-level synchronization: legacy semaphore without a key",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: locked}
- name: locked
  synchronization:
    semaphore: {configMapKeyRef: {name: my-config}}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[1].synchronization.semaphore.configMapKeyRef.key",
            "spec.templates[1].synchronization.semaphore.configMapKeyRef.key: expected a non-empty string",
        )],
    ),
    (
        "synchronization: database locks",
        r#"
entrypoint: main
synchronization:
  semaphores: [{database: {key: shared}}]
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.synchronization.semaphores[0].database",
            "spec.synchronization.semaphores[0].database: database locks are not supported by cairn (its locks are local to the controller); use a mutex or a ConfigMap semaphore",
        )],
    ),
    (
        "missing entrypoint",
        r#"
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.entrypoint",
            "spec.entrypoint is required: the name of the template to run first",
        )],
    ),
    (
        "unknown entrypoint",
        r#"
entrypoint: nope
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.entrypoint",
            "spec.entrypoint: template 'nope' not found",
        )],
    ),
    (
        "unknown onExit",
        r#"
entrypoint: main
onExit: bye
templates:
- {name: main, container: {image: busybox}}
"#,
        &[("spec.onExit", "spec.onExit: template 'bye' not found")],
    ),
    (
        "duplicate template",
        r#"
entrypoint: main
templates:
- {name: main, container: {image: busybox}}
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.templates[1].name",
            "spec.templates[1].name: template name 'main' is not unique",
        )],
    ),
    (
        "invalid template name",
        r#"
entrypoint: main
templates:
- {name: main, container: {image: busybox}}
- {name: bad_name, container: {image: busybox}}
"#,
        &[(
            "spec.templates[1].name",
            "spec.templates[1].name: template name 'bad_name' is invalid: expected [a-zA-Z0-9][-a-zA-Z0-9]*, at most 128 characters",
        )],
    ),
    (
        "template name too long",
        r#"
entrypoint: main
templates:
- {name: main, container: {image: busybox}}
- {name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, container: {image: busybox}}
"#,
        &[(
            "spec.templates[1].name",
            "spec.templates[1].name: template name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' is invalid: expected [a-zA-Z0-9][-a-zA-Z0-9]*, at most 128 characters",
        )],
    ),
    (
        "no template type",
        r#"
entrypoint: main
templates:
- {name: main}
"#,
        &[(
            "spec.templates[0]",
            "spec.templates[0]: template 'main' type unspecified: choose one of container, containerSet, dag, data, http, plugin, resource, script, steps, suspend",
        )],
    ),
    (
        "two template types",
        r#"
entrypoint: main
templates:
- {name: main, container: {image: busybox}, script: {image: python, source: "print(1)"}}
"#,
        &[(
            "spec.templates[0]",
            "spec.templates[0]: template 'main' has multiple template types specified: container, script",
        )],
    ),
    (
        "step calls an unknown template",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: missing}
"#,
        &[(
            "spec.templates[0].steps[0][0].template",
            "spec.templates[0].steps[0][0].template: template 'missing' not found",
        )],
    ),
    (
        "task calls an unknown template",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: missing}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].template",
            "spec.templates[0].dag.tasks[0].template: template 'missing' not found",
        )],
    ),
    (
        "step with template and templateRef",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: leaf, templateRef: {name: lib, template: echo}}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].steps[0][0]",
            "spec.templates[0].steps[0][0]: exactly one of 'template', 'templateRef' or 'inline' is required",
        )],
    ),
    (
        "task with neither template nor templateRef",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a}
"#,
        &[(
            "spec.templates[0].dag.tasks[0]",
            "spec.templates[0].dag.tasks[0]: exactly one of 'template', 'templateRef' or 'inline' is required",
        )],
    ),
    (
        "step misses a required parameter",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: echo}
- name: echo
  inputs: {parameters: [{name: msg}]}
  container: {image: busybox, args: ["{{inputs.parameters.msg}}"]}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters",
            "spec.templates[0].steps[0][0].arguments.parameters: inputs.parameters.msg was not supplied (required by template 'echo')",
        )],
    ),
    (
        "task misses a required parameter among others",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - name: a
      template: echo
      arguments: {parameters: [{name: other, value: x}]}
- name: echo
  inputs: {parameters: [{name: msg}, {name: opt, default: d}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].arguments.parameters",
            "spec.templates[0].dag.tasks[0].arguments.parameters: inputs.parameters.msg was not supplied (required by template 'echo')",
        )],
    ),
    (
        "entrypoint misses a required parameter",
        r#"
entrypoint: main
templates:
- name: main
  inputs: {parameters: [{name: msg}]}
  container: {image: busybox}
"#,
        &[(
            "spec.arguments.parameters",
            "spec.arguments.parameters: inputs.parameters.msg was not supplied (required by template 'main')",
        )],
    ),
    (
        "exit handler misses a required parameter",
        r#"
entrypoint: main
onExit: bye
templates:
- {name: main, container: {image: busybox}}
- name: bye
  inputs: {parameters: [{name: who}]}
  container: {image: busybox}
"#,
        &[(
            "spec.arguments.parameters",
            "spec.arguments.parameters: inputs.parameters.who was not supplied (required by template 'bye')",
        )],
    ),
    (
        "workflow argument without value",
        r#"
entrypoint: main
arguments: {parameters: [{name: p}]}
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.arguments.parameters[0].value",
            "spec.arguments.parameters[0].value is required: argument 'p' has no value",
        )],
    ),
    (
        "step argument without value",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: echo
      arguments: {parameters: [{name: msg}]}
- name: echo
  inputs: {parameters: [{name: msg}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value is required: argument 'msg' has no value",
        )],
    ),
    (
        "workflow argument outside its enum",
        r#"
entrypoint: main
arguments: {parameters: [{name: env, value: prod, enum: [dev, staging]}]}
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.arguments.parameters[0].value",
            "spec.arguments.parameters[0].value: value 'prod' of parameter 'env' is not in enum [dev, staging]",
        )],
    ),
    (
        "step argument outside the input's enum",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: echo
      arguments: {parameters: [{name: color, value: green}]}
- name: echo
  inputs: {parameters: [{name: color, enum: [red, blue]}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value: value 'green' of parameter 'color' is not in enum [red, blue]",
        )],
    ),
    (
        "input default outside its enum",
        r#"
entrypoint: main
templates:
- name: main
  inputs: {parameters: [{name: color, default: green, enum: [red, blue]}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].inputs.parameters[0].default",
            "spec.templates[0].inputs.parameters[0].default: value 'green' of parameter 'color' is not in enum [red, blue]",
        )],
    ),
    (
        "empty enum",
        r#"
entrypoint: main
arguments: {parameters: [{name: env, value: dev, enum: []}]}
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.arguments.parameters[0].enum",
            "spec.arguments.parameters[0].enum: enum of parameter 'env' must not be empty",
        )],
    ),
    (
        "invalid parameter name",
        r#"
entrypoint: main
arguments: {parameters: [{name: "a.b", value: x}]}
templates:
- {name: main, container: {image: busybox}}
"#,
        &[(
            "spec.arguments.parameters[0].name",
            "spec.arguments.parameters[0].name: parameter name 'a.b' is invalid: expected [-a-zA-Z0-9_]+",
        )],
    ),
    (
        "dag cycle",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf, depends: c}
    - {name: b, template: leaf, depends: a}
    - {name: c, template: leaf, depends: b}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].depends",
            "spec.templates[0].dag.tasks[0].depends: template 'main': dependency cycle: a -> b -> c -> a",
        )],
    ),
    (
        "dag unknown depends",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf}
    - {name: b, template: leaf, depends: "a && x"}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].depends",
            "spec.templates[0].dag.tasks[1].depends: template 'main': task 'b' depends on 'x', which is not a task of this DAG",
        )],
    ),
    (
        "dag unknown dependencies entry",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf}
    - {name: b, template: leaf, dependencies: [a, x]}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].dependencies",
            "spec.templates[0].dag.tasks[1].dependencies: template 'main': task 'b' depends on 'x', which is not a task of this DAG",
        )],
    ),
    (
        "dag depends syntax",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf}
    - {name: b, template: leaf, depends: "a &&"}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].depends",
            "spec.templates[0].dag.tasks[1].depends: template 'main': task 'b': depends \"a &&\": column 5: expected a task name, '!' or '(', found end of input",
        )],
    ),
    (
        "dag unknown result",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf}
    - {name: b, template: leaf, depends: "a.Exploded"}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].depends",
            "spec.templates[0].dag.tasks[1].depends: template 'main': task 'b': depends \"a.Exploded\": column 1: task result 'Exploded' for task 'a' is invalid (expected one of Succeeded, Failed, Errored, Skipped, Omitted, Daemoned, AnySucceeded, AllFailed)",
        )],
    ),
    (
        "dag unknown target",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    target: z
    tasks:
    - {name: a, template: leaf}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.target",
            "spec.templates[0].dag.target: template 'main': target 'z' is not a task of this DAG",
        )],
    ),
    (
        "dag templated target resolving to an unknown task",
        r#"
entrypoint: main
arguments: {parameters: [{name: target, value: z}]}
templates:
- name: main
  dag:
    target: "{{workflow.parameters.target}}"
    tasks:
    - {name: a, template: leaf}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.target",
            "spec.templates[0].dag.target: template 'main': target 'z' is not a task of this DAG",
        )],
    ),
    (
        "dag duplicate task",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf}
    - {name: a, template: leaf}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].name",
            "spec.templates[0].dag.tasks[1].name: template 'main': task name 'a' is not unique",
        )],
    ),
    (
        "dag mixes depends and dependencies",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf}
    - {name: b, template: leaf, depends: a}
    - {name: c, template: leaf, dependencies: [a]}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks",
            "spec.templates[0].dag.tasks: template 'main': cannot use both 'depends' and 'dependencies' in the same DAG template",
        )],
    ),
    (
        "dag bad continueOn",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf, continueOn: {failed: maybe}}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].continueOn",
            "spec.templates[0].dag.tasks[0].continueOn: template 'main': task 'a': continueOn: expected 'failed' to be a boolean, found \"maybe\"",
        )],
    ),
    (
        "steps duplicate names",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: leaf}
  - - {name: a, template: leaf}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].steps",
            "spec.templates[0].steps: template 'main': steps[1].name 'a' is not unique",
        )],
    ),
    (
        "steps invalid name",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: "a b", template: leaf}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].steps",
            "spec.templates[0].steps: template 'main': steps[0].name 'a b' is invalid: expected [a-zA-Z0-9][-a-zA-Z0-9]*",
        )],
    ),
    (
        "retry limit not a number",
        r#"
entrypoint: main
templates:
- name: main
  retryStrategy: {limit: lots}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].retryStrategy",
            "spec.templates[0].retryStrategy: template main: retryStrategy.limit: expected an integer or a string holding one, found \"lots\"",
        )],
    ),
    (
        "retry policy unknown",
        r#"
entrypoint: main
templates:
- name: main
  retryStrategy: {limit: 2, retryPolicy: Sometimes}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].retryStrategy",
            "spec.templates[0].retryStrategy: template main: retryStrategy.retryPolicy: expected Always, OnFailure, OnError or OnTransientError, found \"Sometimes\"",
        )],
    ),
    (
        "unknown input parameter",
        r#"
entrypoint: main
templates:
- name: main
  inputs: {parameters: [{name: x, value: "1"}]}
  container: {image: busybox, args: ["{{inputs.parameters.y}}"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': failed to resolve {{inputs.parameters.y}}",
        )],
    ),
    (
        "unknown input artifact",
        r#"
entrypoint: main
templates:
- name: main
  container: {image: busybox, args: ["{{inputs.artifacts.data.path}}"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': failed to resolve {{inputs.artifacts.data.path}}",
        )],
    ),
    (
        "undeclared workflow parameter",
        r#"
entrypoint: main
arguments: {parameters: [{name: a, value: "1"}]}
templates:
- name: main
  container: {image: busybox, command: [echo, "{{workflow.parameters.b}}"]}
"#,
        &[(
            "spec.templates[0].container.command[1]",
            "spec.templates[0].container.command[1]: template 'main': failed to resolve {{workflow.parameters.b}}",
        )],
    ),
    (
        "unknown global",
        r#"
entrypoint: main
templates:
- name: main
  container: {image: busybox, args: ["{{workflow.nope}}", "{{workflow.outputs.parameters.nobody}}"]}
"#,
        &[
            (
                "spec.templates[0].container.args[0]",
                "spec.templates[0].container.args[0]: template 'main': failed to resolve {{workflow.nope}}",
            ),
            (
                "spec.templates[0].container.args[1]",
                "spec.templates[0].container.args[1]: template 'main': failed to resolve {{workflow.outputs.parameters.nobody}}",
            ),
        ],
    ),
    (
        "step output of a later group",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: echo
      arguments: {parameters: [{name: m, value: "{{steps.b.outputs.result}}"}]}
  - - {name: b, template: gen}
- name: gen
  script: {image: python, source: "print(1)"}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value: template 'main': failed to resolve {{steps.b.outputs.result}}",
        )],
    ),
    (
        "step output of a later step in the same group",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: b
      template: echo
      arguments: {parameters: [{name: m, value: "{{steps.a.outputs.result}}"}]}
    - {name: a, template: gen}
- name: gen
  script: {image: python, source: "print(1)"}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value: template 'main': failed to resolve {{steps.a.outputs.result}}",
        )],
    ),
    (
        "step output parameter the callee does not declare",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: gen}
  - - name: b
      template: echo
      arguments: {parameters: [{name: m, value: "{{steps.a.outputs.parameters.nope}}"}]}
- name: gen
  script: {image: python, source: "print(1)"}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[1][0].arguments.parameters[0].value",
            "spec.templates[0].steps[1][0].arguments.parameters[0].value: template 'main': failed to resolve {{steps.a.outputs.parameters.nope}}",
        )],
    ),
    (
        "task output of a non-ancestor",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: gen}
    - {name: b, template: gen}
    - name: c
      template: echo
      depends: a
      arguments: {parameters: [{name: m, value: "{{tasks.b.outputs.result}}"}]}
- name: gen
  script: {image: python, source: "print(1)"}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].dag.tasks[2].arguments.parameters[0].value",
            "spec.templates[0].dag.tasks[2].arguments.parameters[0].value: missing dependency 'b' for argument 'm': add it to depends/dependencies",
        )],
    ),
    (
        "task when reads a non-ancestor's status",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: gen}
    - {name: b, template: gen, when: "{{tasks.a.status}} == Succeeded"}
- name: gen
  script: {image: python, source: "print(1)"}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].when",
            "spec.templates[0].dag.tasks[1].when: template 'main': failed to resolve {{tasks.a.status}}",
        )],
    ),
    (
        "dag outputs read an unknown task",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: gen}
  outputs:
    parameters:
    - name: out
      valueFrom: {parameter: "{{tasks.zz.outputs.result}}"}
- name: gen
  script: {image: python, source: "print(1)"}
"#,
        &[(
            "spec.templates[0].outputs.parameters[0].valueFrom.parameter",
            "spec.templates[0].outputs.parameters[0].valueFrom.parameter: template 'main': failed to resolve {{tasks.zz.outputs.result}}",
        )],
    ),
    (
        "item outside a loop",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: echo
      arguments: {parameters: [{name: m, value: "{{item}}"}]}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value: template 'main': failed to resolve {{item}}",
        )],
    ),
    (
        "item key the withItems maps do not have",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: echo
      arguments: {parameters: [{name: m, value: "{{item.os}} {{item.arch}}"}]}
      withItems: [{os: debian}, {os: alpine}]
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value: template 'main': failed to resolve {{item.arch}}",
        )],
    ),
    (
        "item in a leaf template",
        r#"
entrypoint: main
templates:
- name: main
  container: {image: busybox, args: ["{{item}}"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': failed to resolve {{item}}",
        )],
    ),
    (
        "retries without retryStrategy",
        r#"
entrypoint: main
templates:
- name: main
  container: {image: busybox, args: ["attempt {{retries}}"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': failed to resolve {{retries}}",
        )],
    ),
    (
        "pod.name in a steps template",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: echo
      arguments: {parameters: [{name: m, value: "{{pod.name}}"}]}
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value: template 'main': failed to resolve {{pod.name}}",
        )],
    ),
    (
        "workflow.failures in the entrypoint",
        r#"
entrypoint: main
templates:
- name: main
  container: {image: busybox, args: ["{{workflow.failures}}"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': {{workflow.failures}} is only available in exit handlers (spec.onExit)",
        )],
    ),
    (
        "workflow.failures in a template the entrypoint calls",
        r#"
entrypoint: main
onExit: main
templates:
- name: main
  steps:
  - - {name: a, template: leaf}
- name: leaf
  container: {image: busybox, args: ["{{workflow.failures}}"]}
"#,
        &[(
            "spec.templates[1].container.args[0]",
            "spec.templates[1].container.args[0]: template 'leaf': {{workflow.failures}} is only available in exit handlers (spec.onExit)",
        )],
    ),
    (
        "bad expression",
        r#"
entrypoint: main
templates:
- name: main
  inputs: {parameters: [{name: x, value: "1"}]}
  container: {image: busybox, args: ["{{=inputs.parameters.x +}}"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': invalid expression `inputs.parameters.x +` at column 22: unexpected end of expression",
        )],
    ),
    (
        "expression reading an unknown variable",
        r#"
entrypoint: main
templates:
- name: main
  container: {image: busybox, args: ["{{=asInt(inputs.parameters.n) * 2}}"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': failed to resolve {{=asInt(inputs.parameters.n) * 2}} (unknown variable inputs.parameters.n)",
        )],
    ),
    (
        "unclosed tag",
        r#"
entrypoint: main
templates:
- name: main
  container: {image: busybox, args: ["{{inputs.parameters.x"]}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': unclosed template tag at byte 0: `{{` without a closing `}}`",
        )],
    ),
    (
        "unknown variable in a referenced WorkflowTemplate",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      templateRef: {name: lib, template: bad-var}
"#,
        &[(
            "WorkflowTemplate/lib:spec.templates[1].container.args[0]",
            "WorkflowTemplate/lib:spec.templates[1].container.args[0]: template 'bad-var': failed to resolve {{inputs.parameters.nope}}",
        )],
    ),
    (
        "templateRef misses a required parameter",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      templateRef: {name: lib, template: echo}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters",
            "spec.templates[0].steps[0][0].arguments.parameters: inputs.parameters.msg was not supplied (required by template 'echo')",
        )],
    ),
    (
        "several problems at once",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: ghost}
    - {name: b, template: leaf, arguments: {parameters: [{name: m, value: "{{steps.a.outputs.result}}"}]}}
- {name: leaf, container: {image: busybox}, resource: {action: create}}
"#,
        &[
            (
                "spec.templates[0].steps[0][0].template",
                "spec.templates[0].steps[0][0].template: template 'ghost' not found",
            ),
            (
                "spec.templates[0].steps[0][1].arguments.parameters[0].value",
                "spec.templates[0].steps[0][1].arguments.parameters[0].value: template 'main': failed to resolve {{steps.a.outputs.result}}",
            ),
            (
                "spec.templates[1]",
                "spec.templates[1]: template 'leaf' has multiple template types specified: container, resource",
            ),
        ],
    ),
    (
        "continueOn with depends",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf}
    - {name: b, template: leaf, depends: a, continueOn: {failed: true}}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].continueOn",
            "spec.templates[0].dag.tasks[1].continueOn: template 'main' cannot use 'continueOn' when using 'depends'; use 'task.Failed' / 'task.Errored' instead",
        )],
    ),
    (
        "dag without tasks",
        r#"
entrypoint: main
templates:
- name: main
  dag: {tasks: []}
"#,
        &[(
            "spec.templates[0].dag.tasks",
            "spec.templates[0].dag.tasks: template 'main' must have at least one task",
        )],
    ),
    (
        "withItems and withParam together",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: leaf, withItems: [1, 2], withParam: "[1]"}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].steps[0][0]",
            "spec.templates[0].steps[0][0]: only one of withItems, withParam, withSequence can be specified",
        )],
    ),
    (
        "withSequence with count and end",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: leaf, withSequence: {count: "3", end: "5"}}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].dag.tasks[0].withSequence",
            "spec.templates[0].dag.tasks[0].withSequence: only one of count or end can be defined in withSequence",
        )],
    ),
    (
        "parallelism on a container template",
        r#"
entrypoint: main
templates:
- {name: main, parallelism: 2, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].parallelism",
            "spec.templates[0].parallelism: template 'main': parallelism is only valid for steps and dag templates",
        )],
    ),
    (
        "activeDeadlineSeconds on a steps template",
        r#"
entrypoint: main
templates:
- name: main
  activeDeadlineSeconds: 10
  steps:
  - - {name: a, template: leaf}
- {name: leaf, container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].activeDeadlineSeconds",
            "spec.templates[0].activeDeadlineSeconds: template 'main': activeDeadlineSeconds is only valid for leaf (container, script, resource...) templates",
        )],
    ),
    (
        "timeout on a suspend template",
        r#"
entrypoint: main
templates:
- {name: main, timeout: 30s, suspend: {}}
"#,
        &[(
            "spec.templates[0].timeout",
            "spec.templates[0].timeout: template 'main': timeout is only valid for leaf (container, script, resource...) templates",
        )],
    ),
    (
        "timeout without unit",
        r#"
entrypoint: main
templates:
- {name: main, timeout: "30", container: {image: busybox}}
"#,
        &[(
            "spec.templates[0].timeout",
            "spec.templates[0].timeout: template 'main' has invalid duration format in timeout '30' (use a duration such as 30s)",
        )],
    ),
    (
        "artifact from a non-ancestor task",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: produce}
    - name: b
      template: consume
      arguments: {artifacts: [{name: in, from: "{{tasks.a.outputs.artifacts.out}}"}]}
- name: produce
  outputs: {artifacts: [{name: out, path: /tmp/out}]}
  container: {image: busybox}
- name: consume
  inputs: {artifacts: [{name: in, path: /tmp/in}]}
  container: {image: busybox, args: ["{{inputs.artifacts.in.path}}"]}
"#,
        &[(
            "spec.templates[0].dag.tasks[1].arguments.artifacts[0].from",
            "spec.templates[0].dag.tasks[1].arguments.artifacts[0].from: missing dependency 'a' for argument 'in': add it to depends/dependencies",
        )],
    ),
    (
        "item of a withItems of maps used bare",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - name: a
      template: echo
      arguments: {parameters: [{name: m, value: "{{item}}"}]}
      withItems: [{os: debian}]
- name: echo
  inputs: {parameters: [{name: m}]}
  container: {image: busybox}
"#,
        &[(
            "spec.templates[0].steps[0][0].arguments.parameters[0].value",
            "spec.templates[0].steps[0][0].arguments.parameters[0].value: template 'main': failed to resolve {{item}}",
        )],
    ),
    (
        "workflow.parameters without any argument",
        r#"
entrypoint: main
templates:
- {name: main, container: {image: busybox, args: ["{{workflow.parameters}}"]}}
"#,
        &[(
            "spec.templates[0].container.args[0]",
            "spec.templates[0].container.args[0]: template 'main': failed to resolve {{workflow.parameters}}",
        )],
    ),
    (
        "unknown step onExit and task hook templates",
        r#"
entrypoint: main
hooks:
  exit: {template: gone}
templates:
- name: main
  steps:
  - - {name: a, template: dag, onExit: missing-exit}
- name: dag
  dag:
    tasks:
    - name: t
      template: leaf
      hooks:
        running: {expression: "true", template: nowhere}
- {name: leaf, container: {image: busybox}}
"#,
        &[
            (
                "spec.hooks.exit.template",
                "spec.hooks.exit.template: template 'gone' not found",
            ),
            (
                "spec.templates[0].steps[0][0].onExit",
                "spec.templates[0].steps[0][0].onExit: template 'missing-exit' not found",
            ),
            (
                "spec.templates[1].dag.tasks[0].hooks.running.template",
                "spec.templates[1].dag.tasks[0].hooks.running.template: template 'nowhere' not found",
            ),
        ],
    ),
    (
        "duplicate input and argument parameters",
        r#"
entrypoint: main
arguments: {parameters: [{name: a, value: "1"}, {name: a, value: "2"}]}
templates:
- name: main
  inputs: {parameters: [{name: x, value: "1"}, {name: x, value: "2"}]}
  container: {image: busybox}
"#,
        &[
            (
                "spec.arguments.parameters[1].name",
                "spec.arguments.parameters[1].name: parameter name 'a' is not unique",
            ),
            (
                "spec.templates[0].inputs.parameters[1].name",
                "spec.templates[0].inputs.parameters[1].name: parameter name 'x' is not unique",
            ),
        ],
    ),
    (
        "output parameters without a usable source",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: leaf}
  outputs:
    parameters:
    - {name: p1, valueFrom: {path: /tmp/x}}
- name: leaf
  outputs:
    parameters:
    - {name: q1}
    - {name: q2, value: v, valueFrom: {path: /tmp/q}}
    - {name: q3, valueFrom: {jsonPath: "{.a}"}}
    - {name: q4, valueFrom: {path: /tmp/q, parameter: x}}
  container: {image: busybox}
- name: res
  resource: {action: get, manifest: "{}"}
  outputs:
    parameters:
    - {name: r1, valueFrom: {path: /tmp/r}}
"#,
        &[
            (
                "spec.templates[0].outputs.parameters[0]",
                "spec.templates[0].outputs.parameters[0]: template 'main': output parameter 'p1' valueFrom.parameter or expression must be specified for steps and dag templates",
            ),
            (
                "spec.templates[1].outputs.parameters[0]",
                "spec.templates[1].outputs.parameters[0]: template 'leaf': output parameter 'q1' needs value or valueFrom",
            ),
            (
                "spec.templates[1].outputs.parameters[1]",
                "spec.templates[1].outputs.parameters[1]: template 'leaf': output parameter 'q2' has both value and valueFrom; choose one",
            ),
            (
                "spec.templates[1].outputs.parameters[2]",
                "spec.templates[1].outputs.parameters[2]: template 'leaf': output parameter 'q3' valueFrom.path must be specified for container and script templates",
            ),
            (
                "spec.templates[1].outputs.parameters[3]",
                "spec.templates[1].outputs.parameters[3]: template 'leaf': output parameter 'q4' multiple valueFrom types specified: choose one of path, jqFilter, jsonPath, parameter, expression, supplied",
            ),
            (
                "spec.templates[2].outputs.parameters[0]",
                "spec.templates[2].outputs.parameters[0]: template 'res': output parameter 'r1' valueFrom.jqFilter or jsonPath must be specified for resource templates",
            ),
        ],
    ),
    (
        "empty spec",
        "{}",
        &[(
            "spec.entrypoint",
            "spec.entrypoint is required: the name of the template to run first",
        )],
    ),
];

/// Resolution failures: (name, spec YAML, path, message).
const UNRESOLVED: &[(&str, &str, &str, &str)] = &[
    (
        "workflowTemplateRef with own templates",
        r#"
workflowTemplateRef: {name: lib}
templates:
- {name: main, container: {image: busybox}}
"#,
        "spec.templates",
        "spec.templates: templates is an invalid field in a Workflow that has a workflowTemplateRef",
    ),
    (
        "missing WorkflowTemplate",
        r#"
workflowTemplateRef: {name: nowhere}
"#,
        "spec.workflowTemplateRef.name",
        "spec.workflowTemplateRef.name: WorkflowTemplate 'nowhere' not found",
    ),
    (
        "missing ClusterWorkflowTemplate",
        r#"
workflowTemplateRef: {name: lib, clusterScope: true}
"#,
        "spec.workflowTemplateRef.name",
        "spec.workflowTemplateRef.name: ClusterWorkflowTemplate 'lib' not found",
    ),
    (
        "workflowTemplateRef without name",
        r#"
workflowTemplateRef: {clusterScope: true}
"#,
        "spec.workflowTemplateRef.name",
        "spec.workflowTemplateRef.name is required",
    ),
    (
        "templateRef to a missing WorkflowTemplate",
        r#"
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, templateRef: {name: nowhere, template: echo}}
"#,
        "spec.templates[0].dag.tasks[0].templateRef.name",
        "spec.templates[0].dag.tasks[0].templateRef.name: WorkflowTemplate 'nowhere' not found",
    ),
    (
        "templateRef to a missing template",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, templateRef: {name: lib, template: nope}}
"#,
        "spec.templates[0].steps[0][0].templateRef.template",
        "spec.templates[0].steps[0][0].templateRef.template: template 'nope' not found in WorkflowTemplate 'lib'",
    ),
    (
        "templateRef without template",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, templateRef: {name: lib}}
"#,
        "spec.templates[0].steps[0][0].templateRef.template",
        "spec.templates[0].steps[0][0].templateRef.template is required",
    ),
    (
        "templateRef cluster scope to a namespaced template",
        r#"
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, templateRef: {name: lib, template: echo, clusterScope: true}}
"#,
        "spec.templates[0].steps[0][0].templateRef.name",
        "spec.templates[0].steps[0][0].templateRef.name: ClusterWorkflowTemplate 'lib' not found",
    ),
];

#[test]
fn rejected_cases() {
    let lookup = lib();
    let mut report = String::new();
    for (name, spec, expected) in REJECTED {
        let got: Vec<(String, String)> = run(&spec_wf(spec), &lookup)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| (e.path().to_owned(), e.to_string()))
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
            .collect();
        // A case that expects nothing could not fail: it is a mistake in the table.
        if got != want || want.is_empty() {
            report.push_str(&format!("{name}:\n{got:#?}\n"));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn unresolved_cases() {
    let lookup = lib();
    let mut report = String::new();
    for (name, spec, path, message) in UNRESOLVED {
        match resolve(&spec_wf(spec), &lookup) {
            Ok(_) => report.push_str(&format!("{name}: resolved\n")),
            Err(e) => {
                if e.path() != *path || e.to_string() != *message {
                    report.push_str(&format!("{name}: {:?} {:?}\n", e.path(), e.to_string()));
                }
            }
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn merged_spec_of_the_conformance_workflow_template_ref() {
    let text =
        std::fs::read_to_string(format!("{CONFORMANCE}/workflow-template-ref.yaml")).expect("read");
    let wf: Workflow = serde_saphyr::from_str(&text).expect("Workflow");
    let resolved = resolve(&wf, &conformance_lookup()).expect("resolves");
    insta::assert_yaml_snapshot!(resolved.spec);
}
