//! Pod builder tests: snapshots of the pods of every container/script template of the
//! conformance manifests, one table per pod-level field, errors, `podSpecPatch`, and `observe`
//! from the YAML fixtures in `testdata/observe/`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::*;
use crate::workflow::node::{PodObservation, PodPhase, node_id, pod_name};
use crate::workflow::types::{Template, WorkflowSpec, WorkflowTaskResult};

fn request(spec: WorkflowSpec, template: Template) -> PodRequest {
    let node_name = format!("wf[0].{}", template.name);
    PodRequest {
        namespace: "ns".into(),
        workflow_name: "wf".into(),
        workflow_uid: "0000-uid".into(),
        node_id: node_id("wf", &node_name),
        pod_name: pod_name("wf", &template.name, &node_name),
        node_name,
        template,
        spec,
        capture_result: false,
        active_deadline_seconds: None,
        artifact_repository: None,
    }
}

fn template(value: Value) -> Template {
    serde_json::from_value(value).expect("template")
}

fn spec(value: Value) -> WorkflowSpec {
    serde_json::from_value(value).expect("spec")
}

fn echo() -> Value {
    json!({"name": "t", "container": {"image": "busybox", "command": ["echo"], "args": ["hi"]}})
}

/// `t` with an output parameter, so its pod carries the executor.
fn reporting(mut t: Value) -> Value {
    t["outputs"] = json!({"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/p"}}]});
    t
}

fn build(spec_v: Value, tmpl: Value) -> Value {
    let pod = build_pod(
        &request(spec(spec_v), template(tmpl)),
        &PodSettings::default(),
    )
    .expect("build");
    serde_json::to_value(pod).expect("json")
}

fn build_err(spec_v: Value, tmpl: Value) -> PodError {
    build_pod(
        &request(spec(spec_v), template(tmpl)),
        &PodSettings::default(),
    )
    .expect_err("should fail")
}

fn conformance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/workflows")
}

/// The workflow spec of a conformance manifest (Workflow, WorkflowTemplate or CronWorkflow).
fn manifest_spec(doc: &Value) -> Option<Value> {
    doc.pointer("/spec/workflowSpec")
        .or_else(|| doc.get("spec"))
        .cloned()
}

#[test]
fn conformance_pods_snapshot() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance())
        .expect("conformance folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() > 20,
        "conformance manifests found: {}",
        files.len()
    );
    let mut built = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let stem = file
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let mut pods = serde_json::Map::new();
        for doc in serde_saphyr::from_multiple::<Value>(&text).expect("yaml") {
            let Some(spec_v) = manifest_spec(&doc) else {
                continue;
            };
            // As the operator decides it: a workflow naming `outputs.result` captures them all.
            let capture = spec_v.to_string().contains("outputs.result");
            let spec: WorkflowSpec = serde_json::from_value(spec_v).expect("spec");
            for t in spec.templates.clone().unwrap_or_default() {
                if t.container.is_none() && t.script.is_none() {
                    continue;
                }
                let name = t.name.clone();
                let mut req = request(spec.clone(), t);
                req.capture_result = capture;
                let entry = match build_pod(&req, &PodSettings::default()) {
                    Ok(pod) => serde_json::to_value(pod).expect("json"),
                    Err(e) => json!({"error": e.to_string()}),
                };
                pods.insert(name, entry);
                built += 1;
            }
        }
        if !pods.is_empty() {
            insta::assert_yaml_snapshot!(format!("conformance__{stem}"), pods);
        }
    }
    assert!(built > 30, "pods built: {built}");
}

#[test]
fn container_is_wrapped_and_kept() {
    let pod = build(
        json!({}),
        json!({"name": "t", "container": {
            "image": "busybox", "command": ["sh", "-c"], "args": ["echo $X"],
            "env": [{"name": "X", "value": "1"}, {"name": "CAIRN_NODE_ID", "value": "spoof"}],
            "resources": {"limits": {"memory": "64Mi"}},
            "workingDir": "/work",
            "securityContext": {"runAsUser": 1000},
            "imagePullPolicy": "Always",
            "volumeMounts": [{"name": "v", "mountPath": "/v"}]
        }, "volumes": [{"name": "v", "emptyDir": {}}],
        "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/p"}}]}}),
    );
    let main = &pod["spec"]["containers"][0];
    assert_eq!(main["name"], "main");
    assert_eq!(
        main["command"],
        json!(["/var/run/cairn/cairn", "exec", "--", "sh", "-c", "echo $X"])
    );
    assert!(main.get("args").is_none());
    assert_eq!(main["resources"]["limits"]["memory"], "64Mi");
    assert_eq!(main["workingDir"], "/work");
    assert_eq!(main["securityContext"]["runAsUser"], 1000);
    assert_eq!(main["imagePullPolicy"], "Always");
    let env: Vec<&str> = main["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| e["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        env,
        [
            "X",
            "CAIRN_EXEC_SPEC",
            "CAIRN_NAMESPACE",
            "CAIRN_WORKFLOW_NAME",
            "CAIRN_WORKFLOW_UID",
            "CAIRN_NODE_ID",
            "CAIRN_POD_NAME"
        ]
    );
    let node = main["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "CAIRN_NODE_ID")
        .expect("node id");
    assert_ne!(node["value"], "spoof");
    let spec: ExecSpec =
        serde_json::from_str(main["env"][1]["value"].as_str().expect("spec")).expect("exec spec");
    assert_eq!(spec.working_dir.as_deref(), Some(Path::new("/work")));
    assert!(!spec.script);
    assert_eq!(
        main["volumeMounts"],
        json!([{"name": "v", "mountPath": "/v"}, {"name": "var-run-cairn", "mountPath": "/var/run/cairn"}])
    );
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["name"], "init");
    assert_eq!(
        init["command"],
        json!(["/cairn", "exec-init", "/var/run/cairn/cairn"])
    );
    assert_eq!(init["image"], default_executor_image());
    assert_eq!(init["imagePullPolicy"], "IfNotPresent");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
}

#[test]
fn a_container_needing_nothing_runs_without_the_executor() {
    let pod = build(
        json!({"automountServiceAccountToken": false,
               "podMetadata": {"annotations": {"workflows.cairn.dev/executor": "other"}}}),
        json!({"name": "t", "container": {
            "image": "busybox", "command": ["sh", "-c"], "args": ["exit 3"],
            "env": [{"name": "X", "value": "1"}],
            "volumeMounts": [{"name": "v", "mountPath": "/v"}]
        }, "volumes": [{"name": "v", "emptyDir": {}}]}),
    );
    let main = &pod["spec"]["containers"][0];
    assert_eq!(main["name"], "main");
    assert_eq!(main["command"], json!(["sh", "-c"]));
    assert_eq!(main["args"], json!(["exit 3"]));
    assert_eq!(main["env"], json!([{"name": "X", "value": "1"}]));
    assert_eq!(
        main["volumeMounts"],
        json!([{"name": "v", "mountPath": "/v"}])
    );
    assert!(pod["spec"].get("initContainers").is_none());
    assert_eq!(
        pod["spec"]["volumes"],
        json!([{"name": "v", "emptyDir": {}}])
    );
    assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
    assert_eq!(
        pod["metadata"]["annotations"]["workflows.cairn.dev/executor"],
        "none"
    );

    // No command: the image's entrypoint runs.
    let pod = build(
        json!({}),
        json!({"name": "t", "container": {"image": "busybox"}}),
    );
    assert!(pod["spec"]["containers"][0].get("command").is_none());
}

#[test]
fn the_image_index_gives_a_wrapped_step_its_entrypoint() {
    let mut settings = PodSettings::default();
    settings.images.insert(
        "say:v2".into(),
        ImageCommand {
            entrypoint: vec!["/say".into()],
            cmd: vec!["hello".into()],
        },
    );
    settings.images.insert(
        "cmd-only".into(),
        ImageCommand {
            entrypoint: vec![],
            cmd: vec!["/bin/tool".into(), "run".into()],
        },
    );
    let argv = |t: Value| -> Result<Value, PodError> {
        let pod = build_pod(&request(WorkflowSpec::default(), template(t)), &settings)?;
        let pod = serde_json::to_value(pod).expect("json");
        Ok(pod["spec"]["containers"][0]["command"].clone())
    };
    let wrap = |rest: &[&str]| {
        let mut v = vec!["/var/run/cairn/cairn", "exec", "--"];
        v.extend_from_slice(rest);
        json!(v)
    };
    let cases: Vec<(&str, Value, Result<Value, &str>)> = vec![
        (
            "entrypoint + cmd",
            reporting(json!({"name": "t", "container": {"image": "say:v2"}})),
            Ok(wrap(&["/say", "hello"])),
        ),
        (
            "entrypoint + the step's args",
            reporting(json!({"name": "t", "container": {"image": "say:v2", "args": ["x", "y"]}})),
            Ok(wrap(&["/say", "x", "y"])),
        ),
        (
            "cmd is the program when there is no entrypoint",
            reporting(json!({"name": "t", "container": {"image": "cmd-only"}})),
            Ok(wrap(&["/bin/tool", "run"])),
        ),
        (
            "the step's command wins",
            reporting(
                json!({"name": "t", "container": {"image": "say:v2", "command": ["echo"], "args": ["z"]}}),
            ),
            Ok(wrap(&["echo", "z"])),
        ),
        (
            "an image not in the index",
            reporting(json!({"name": "t", "container": {"image": "other"}})),
            Err("missing_command"),
        ),
    ];
    for (what, t, want) in cases {
        match (argv(t), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}"),
            (Err(e), Err(label)) => assert_eq!(e.metric_label(), label, "{what}: {e}"),
            (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
    // A containerSet container without a command is named in the error.
    let err = build_pod(
        &request(
            WorkflowSpec::default(),
            template(json!({"name": "set", "containerSet": {"containers": [
                {"name": "a", "image": "say:v2"},
                {"name": "main", "image": "other", "dependencies": ["a"]}
            ]}})),
        ),
        &settings,
    )
    .expect_err("main has no command");
    assert!(
        err.to_string()
            .contains("containerSet.containers[main].command"),
        "{err}"
    );
    assert!(err.to_string().contains("[workflow.images"), "{err}");
}

#[test]
fn what_needs_the_executor_gets_it() {
    let cases: Vec<(&str, Value, bool)> = vec![
        ("plain container", echo(), false),
        ("output parameter", reporting(echo()), true),
        (
            "script",
            json!({"name": "s", "script": {"image": "python", "command": ["python"], "source": "1"}}),
            true,
        ),
        (
            "input artifact",
            json!({"name": "t", "container": {"image": "b", "command": ["true"]},
                   "inputs": {"artifacts": [{"name": "a", "path": "/a", "raw": {"data": "x"}}]}}),
            true,
        ),
        (
            "sidecar only",
            json!({"name": "t", "container": {"image": "b", "command": ["true"]},
                   "sidecars": [{"name": "db", "image": "postgres"}]}),
            false,
        ),
    ];
    for (what, t, want) in cases {
        let pod = build(json!({}), t);
        let annotated = pod["metadata"]["annotations"]
            .get("workflows.cairn.dev/executor")
            .is_some();
        let init = pod["spec"]["initContainers"]
            .as_array()
            .is_some_and(|inits| inits.iter().any(|c| c["name"] == "init"));
        assert_eq!(init, want, "{what}: init container");
        assert_eq!(annotated, !want, "{what}: annotation");
    }
    // A captured result needs it too, and a user's annotation cannot claim otherwise.
    let mut req = request(
        spec(json!({"podMetadata": {"annotations": {"workflows.cairn.dev/executor": "none"}}})),
        template(echo()),
    );
    req.capture_result = true;
    let pod = serde_json::to_value(build_pod(&req, &PodSettings::default()).expect("build"))
        .expect("json");
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "init");
    assert!(
        pod["metadata"]["annotations"]
            .get("workflows.cairn.dev/executor")
            .is_none()
    );
}

#[test]
fn script_source_travels_in_the_spec_and_its_path_ends_the_argv() {
    let mut req = request(
        WorkflowSpec::default(),
        template(json!({"name": "s", "script": {
            "image": "python:alpine3.23", "command": ["python"], "args": ["-u"],
            "source": "print(42)\n"
        }})),
    );
    req.capture_result = false;
    let pod = serde_json::to_value(build_pod(&req, &PodSettings::default()).expect("build"))
        .expect("json");
    let main = &pod["spec"]["containers"][0];
    assert_eq!(
        main["command"],
        json!([
            "/var/run/cairn/cairn",
            "exec",
            "--",
            "python",
            "-u",
            "/var/run/cairn/script"
        ])
    );
    assert!(main.get("source").is_none());
    let spec: ExecSpec =
        serde_json::from_str(main["env"][0]["value"].as_str().expect("spec")).expect("exec spec");
    assert!(spec.script, "script templates always capture the result");
    assert_eq!(spec.script_source.as_deref(), Some("print(42)\n"));
    assert_eq!(
        spec.script_path.as_deref(),
        Some(Path::new("/var/run/cairn/script"))
    );
}

#[test]
fn output_parameters_and_result_capture_reach_the_exec_spec() {
    let mut req = request(
        WorkflowSpec::default(),
        template(json!({"name": "t",
        "container": {"image": "busybox", "command": ["sh", "-c", "echo hi > /tmp/p"]},
        "outputs": {"parameters": [
            {"name": "p", "valueFrom": {"path": "/tmp/p", "default": 5}},
            {"name": "s", "valueFrom": {"supplied": {}}},
            {"name": "e", "valueFrom": {"expression": "x"}}
        ]}})),
    );
    req.capture_result = true;
    let pod = serde_json::to_value(build_pod(&req, &PodSettings::default()).expect("build"))
        .expect("json");
    let spec: ExecSpec = serde_json::from_str(
        pod["spec"]["containers"][0]["env"][0]["value"]
            .as_str()
            .expect("spec"),
    )
    .expect("exec spec");
    assert!(spec.script);
    assert_eq!(spec.outputs.len(), 3);
    let p = spec.outputs[0].value_from.as_ref().expect("valueFrom");
    assert_eq!(p.path.as_deref(), Some(Path::new("/tmp/p")));
    assert_eq!(p.default.as_deref(), Some("5"), "AnyString default as text");
    assert!(
        spec.outputs[1]
            .value_from
            .as_ref()
            .expect("vf")
            .supplied
            .is_some()
    );
    assert!(
        spec.outputs[2]
            .value_from
            .as_ref()
            .expect("vf")
            .path
            .is_none()
    );
}

#[test]
fn metadata_labels_annotations_and_owner() {
    let pod = build(
        json!({"podMetadata": {"labels": {"team": "a", "tier": "wf"}, "annotations": {"a": "wf"}}}),
        json!({"name": "t", "container": {"image": "busybox", "command": ["true"]},
               "metadata": {"labels": {"tier": "tmpl", "version": 2,
                                        "workflows.argoproj.io/workflow": "hijack"},
                            "annotations": {"a": "tmpl"}}}),
    );
    let md = &pod["metadata"];
    assert_eq!(md["name"], pod_name("wf", "t", "wf[0].t"));
    assert_eq!(md["namespace"], "ns");
    assert_eq!(md["labels"]["team"], "a");
    assert_eq!(
        md["labels"]["tier"], "tmpl",
        "template metadata wins over podMetadata"
    );
    assert_eq!(md["labels"]["version"], "2");
    assert_eq!(
        md["labels"]["workflows.argoproj.io/workflow"], "wf",
        "cairn's label wins"
    );
    assert_eq!(md["labels"]["workflows.argoproj.io/completed"], "false");
    assert_eq!(md["annotations"]["a"], "tmpl");
    assert_eq!(
        md["annotations"]["workflows.argoproj.io/node-name"],
        "wf[0].t"
    );
    assert_eq!(
        md["annotations"]["workflows.argoproj.io/node-id"],
        node_id("wf", "wf[0].t")
    );
    assert_eq!(
        md["ownerReferences"],
        json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": "wf",
                "uid": "0000-uid", "controller": true, "blockOwnerDeletion": true}])
    );
}

/// One row per pod-level field: (what, workflow spec, template extras, pod.spec field, want).
#[test]
fn pod_level_fields_table() {
    let cases: Vec<(&str, Value, Value, &str, Value)> = vec![
        (
            "sa from workflow",
            json!({"serviceAccountName": "wf-sa"}),
            json!({}),
            "serviceAccountName",
            json!("wf-sa"),
        ),
        (
            "sa template wins",
            json!({"serviceAccountName": "wf-sa"}),
            json!({"serviceAccountName": "t-sa"}),
            "serviceAccountName",
            json!("t-sa"),
        ),
        (
            "no sa",
            json!({}),
            json!({}),
            "serviceAccountName",
            Value::Null,
        ),
        (
            "automount true kept",
            json!({"automountServiceAccountToken": true}),
            json!({}),
            "automountServiceAccountToken",
            json!(true),
        ),
        (
            "nodeSelector from workflow",
            json!({"nodeSelector": {"a": "1"}}),
            json!({}),
            "nodeSelector",
            json!({"a": "1"}),
        ),
        (
            "nodeSelector template wins whole",
            json!({"nodeSelector": {"a": "1"}}),
            json!({"nodeSelector": {"b": "2"}}),
            "nodeSelector",
            json!({"b": "2"}),
        ),
        (
            "empty template nodeSelector is unset",
            json!({"nodeSelector": {"a": "1"}}),
            json!({"nodeSelector": {}}),
            "nodeSelector",
            json!({"a": "1"}),
        ),
        (
            "tolerations template wins",
            json!({"tolerations": [{"key": "a", "operator": "Exists"}]}),
            json!({"tolerations": [{"key": "b", "operator": "Exists"}]}),
            "tolerations",
            json!([{"key": "b", "operator": "Exists"}]),
        ),
        (
            "tolerations from workflow",
            json!({"tolerations": [{"key": "a", "operator": "Exists"}]}),
            json!({}),
            "tolerations",
            json!([{"key": "a", "operator": "Exists"}]),
        ),
        (
            "affinity template wins",
            json!({"affinity": {"nodeAffinity": {}}}),
            json!({"affinity": {"podAffinity": {}}}),
            "affinity",
            json!({"podAffinity": {}}),
        ),
        (
            "pod securityContext from workflow",
            json!({"securityContext": {"runAsNonRoot": true}}),
            json!({}),
            "securityContext",
            json!({"runAsNonRoot": true}),
        ),
        (
            "pod securityContext template wins",
            json!({"securityContext": {"runAsNonRoot": true}}),
            json!({"securityContext": {"fsGroup": 2000}}),
            "securityContext",
            json!({"fsGroup": 2000}),
        ),
        (
            "priorityClassName from workflow's podPriorityClassName",
            json!({"podPriorityClassName": "high"}),
            json!({}),
            "priorityClassName",
            json!("high"),
        ),
        (
            "priorityClassName template wins",
            json!({"podPriorityClassName": "high"}),
            json!({"priorityClassName": "low"}),
            "priorityClassName",
            json!("low"),
        ),
        (
            "schedulerName",
            json!({"schedulerName": "s1"}),
            json!({}),
            "schedulerName",
            json!("s1"),
        ),
        (
            "imagePullSecrets from workflow",
            json!({"imagePullSecrets": [{"name": "reg"}]}),
            json!({}),
            "imagePullSecrets",
            json!([{"name": "reg"}]),
        ),
        (
            "hostAliases workflow then template",
            json!({"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]}),
            json!({"hostAliases": [{"ip": "10.0.0.2", "hostnames": ["b"]}]}),
            "hostAliases",
            json!([{"ip": "10.0.0.1", "hostnames": ["a"]}, {"ip": "10.0.0.2", "hostnames": ["b"]}]),
        ),
        (
            "dnsPolicy",
            json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"]}}),
            json!({}),
            "dnsPolicy",
            json!("None"),
        ),
        (
            "hostNetwork",
            json!({"hostNetwork": true}),
            json!({}),
            "hostNetwork",
            json!(true),
        ),
    ];
    for (what, wf, extras, field, want) in cases {
        let mut t = echo();
        for (k, v) in extras.as_object().expect("object") {
            t[k] = v.clone();
        }
        let pod = build(wf, t);
        let got = pod["spec"].get(field).cloned().unwrap_or(Value::Null);
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn active_deadline_comes_from_the_request() {
    let mut req = request(WorkflowSpec::default(), template(echo()));
    req.active_deadline_seconds = Some(30);
    let pod = build_pod(&req, &PodSettings::default()).expect("build");
    assert_eq!(pod.spec.expect("spec").active_deadline_seconds, Some(30));
}

#[test]
fn volumes_template_workflow_and_claims() {
    let pod = build(
        json!({
            "volumes": [{"name": "shared", "emptyDir": {}}, {"name": "unused", "emptyDir": {}}],
            "volumeClaimTemplates": [{"metadata": {"name": "workdir"}, "spec": {}}]
        }),
        reporting(json!({"name": "t",
            "container": {"image": "busybox", "command": ["true"], "volumeMounts": [
                {"name": "shared", "mountPath": "/a"},
                {"name": "workdir", "mountPath": "/b"},
                {"name": "own", "mountPath": "/c"},
                {"name": "shared", "mountPath": "/d"}
            ]},
            "volumes": [{"name": "own", "configMap": {"name": "cm"}}]})),
    );
    assert_eq!(
        pod["spec"]["volumes"],
        json!([
            {"name": "var-run-cairn", "emptyDir": {}},
            {"name": "own", "configMap": {"name": "cm"}},
            {"name": "shared", "emptyDir": {}},
            {"name": "workdir", "persistentVolumeClaim": {"claimName": "wf-workdir"}}
        ])
    );
}

#[test]
fn sidecars_and_user_init_containers_follow_cairns() {
    let pod = build(
        json!({}),
        reporting(json!({"name": "t",
            "container": {"image": "busybox", "command": ["true"],
                          "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
            "volumes": [{"name": "v", "emptyDir": {}}],
            "initContainers": [{"name": "prep", "image": "busybox", "mirrorVolumeMounts": true}],
            "sidecars": [{"name": "db", "image": "postgres"}]})),
    );
    let inits: Vec<&str> = pod["spec"]["initContainers"]
        .as_array()
        .expect("inits")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(inits, ["init", "prep"]);
    assert_eq!(
        pod["spec"]["initContainers"][1]["volumeMounts"],
        json!([{"name": "v", "mountPath": "/v"}]),
        "mirrorVolumeMounts copies main's mounts, not cairn's own"
    );
    assert_eq!(pod["spec"]["containers"][1]["name"], "db");
}

#[test]
fn pod_spec_patch_workflow_then_template() {
    let pod = build(
        json!({"podSpecPatch": "containers:\n- name: main\n  resources:\n    limits:\n      cpu: \"1\"\n"}),
        reporting(json!({"name": "t",
            "container": {"image": "busybox", "command": ["true"],
                          "resources": {"limits": {"memory": "32Mi"}}},
            "podSpecPatch": "{\"containers\":[{\"name\":\"main\",\"resources\":{\"limits\":{\"cpu\":\"2\"}}}],\"terminationGracePeriodSeconds\":5}"})),
    );
    let limits = &pod["spec"]["containers"][0]["resources"]["limits"];
    assert_eq!(
        limits["cpu"], "2",
        "template patch applied after the workflow's"
    );
    assert_eq!(limits["memory"], "32Mi", "merged, not replaced");
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 5);
    assert_eq!(
        pod["spec"]["containers"][0]["command"][0],
        "/var/run/cairn/cairn"
    );
}

#[test]
fn strategic_merge_table() {
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        (
            "scalar replaced",
            json!({"a": 1}),
            json!({"a": 2}),
            json!({"a": 2}),
        ),
        (
            "null deletes",
            json!({"a": 1, "b": 2}),
            json!({"a": null}),
            json!({"b": 2}),
        ),
        (
            "objects merge",
            json!({"o": {"x": 1}}),
            json!({"o": {"y": 2}}),
            json!({"o": {"x": 1, "y": 2}}),
        ),
        (
            "containers by name",
            json!({"containers": [{"name": "main", "image": "a"}, {"name": "s", "image": "b"}]}),
            json!({"containers": [{"name": "s", "image": "c"}, {"name": "new", "image": "d"}]}),
            json!({"containers": [{"name": "main", "image": "a"}, {"name": "s", "image": "c"}, {"name": "new", "image": "d"}]}),
        ),
        (
            "env by name inside a container",
            json!({"containers": [{"name": "main", "env": [{"name": "A", "value": "1"}]}]}),
            json!({"containers": [{"name": "main", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]}),
            json!({"containers": [{"name": "main", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]}),
        ),
        (
            "volumeMounts by mountPath",
            json!({"volumeMounts": [{"name": "a", "mountPath": "/a"}]}),
            json!({"volumeMounts": [{"name": "b", "mountPath": "/a", "readOnly": true}]}),
            json!({"volumeMounts": [{"name": "b", "mountPath": "/a", "readOnly": true}]}),
        ),
        (
            "$patch delete",
            json!({"volumes": [{"name": "a"}, {"name": "b"}]}),
            json!({"volumes": [{"$patch": "delete", "name": "a"}]}),
            json!({"volumes": [{"name": "b"}]}),
        ),
        (
            "lists without merge key are replaced",
            json!({"tolerations": [{"key": "a"}]}),
            json!({"tolerations": [{"key": "b"}]}),
            json!({"tolerations": [{"key": "b"}]}),
        ),
        (
            "command replaced",
            json!({"containers": [{"name": "main", "command": ["a", "b"]}]}),
            json!({"containers": [{"name": "main", "command": ["c"]}]}),
            json!({"containers": [{"name": "main", "command": ["c"]}]}),
        ),
    ];
    for (what, mut base, p, want) in cases {
        patch::strategic_merge(&mut base, &p);
        assert_eq!(base, want, "{what}");
    }
}

#[test]
fn errors_name_the_template_and_field() {
    let cases: Vec<(&str, Value, Value, &str, &[&str])> = vec![
        (
            "container without command",
            json!({}),
            reporting(json!({"name": "t", "container": {"image": "busybox"}})),
            "missing_command",
            &["\"t\"", "`container.command`"],
        ),
        (
            "script without command",
            json!({}),
            json!({"name": "s", "script": {"image": "python", "source": "print(1)"}}),
            "missing_command",
            &["\"s\"", "`script.command`"],
        ),
        (
            "empty command",
            json!({}),
            reporting(json!({"name": "t", "container": {"image": "busybox", "command": []}})),
            "missing_command",
            &["`container.command`"],
        ),
        (
            "steps template",
            json!({}),
            json!({"name": "st", "steps": []}),
            "not_a_pod_template",
            &["\"st\"", "steps"],
        ),
        (
            "unknown volume",
            json!({}),
            json!({"name": "t", "container": {"image": "b", "command": ["true"], "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}}),
            "unknown_volume",
            &["\"nope\"", "container.volumeMounts[0]"],
        ),
        (
            "automount false in workflow",
            json!({"automountServiceAccountToken": false}),
            reporting(echo()),
            "automount_disabled",
            &["spec.automountServiceAccountToken"],
        ),
        (
            "automount false in template",
            json!({}),
            {
                let mut t = reporting(echo());
                t["automountServiceAccountToken"] = json!(false);
                t
            },
            "automount_disabled",
            &["`automountServiceAccountToken: false`"],
        ),
        (
            "bad patch",
            json!({"podSpecPatch": "- a list"}),
            echo(),
            "invalid_pod_spec_patch",
            &["spec.podSpecPatch", "object"],
        ),
        (
            "bad patch yaml",
            json!({}),
            {
                let mut t = echo();
                t["podSpecPatch"] = json!("containers: [unclosed");
                t
            },
            "invalid_pod_spec_patch",
            &["`podSpecPatch`"],
        ),
        (
            "workingDir not a string",
            json!({}),
            json!({"name": "t", "container": {"image": "b", "command": ["true"], "workingDir": 5}}),
            "invalid_field",
            &["container.workingDir", "a string"],
        ),
        (
            "volumeMounts not a list",
            json!({}),
            json!({"name": "t", "container": {"image": "b", "command": ["true"], "volumeMounts": {"a": 1}}}),
            "invalid_field",
            &["container.volumeMounts", "a list"],
        ),
        (
            "output path not a string",
            json!({}),
            json!({"name": "t", "container": {"image": "b", "command": ["true"]},
                   "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": 1}}]}}),
            "invalid_field",
            &["outputs.parameters[0].valueFrom.path"],
        ),
        (
            "wrong type for a pod field",
            json!({"nodeSelector": "zone-a"}),
            echo(),
            "invalid_pod",
            &["\"t\""],
        ),
        (
            "labels not a map",
            json!({"podMetadata": {"labels": ["a"]}}),
            echo(),
            "invalid_field",
            &["spec.podMetadata.labels"],
        ),
        (
            "huge script",
            json!({}),
            json!({"name": "big", "script": {"image": "python", "command": ["python"], "source": "#".repeat(200 * 1024)}}),
            "spec_too_large",
            &["\"big\"", "source"],
        ),
    ];
    for (what, wf, t, label, needles) in cases {
        let err = build_err(wf, t);
        assert_eq!(err.metric_label(), label, "{what}: {err}");
        let text = err.to_string();
        for needle in needles {
            assert!(text.contains(needle), "{what}: {text:?} lacks {needle:?}");
        }
    }
}

#[test]
fn settings_change_image_policy_and_mount() {
    let settings = PodSettings {
        executor_image: "reg/exec:1".into(),
        image_pull_policy: "Always".into(),
        mount_path: "/x/".into(),
        ..Default::default()
    };
    let req = request(WorkflowSpec::default(), template(reporting(echo())));
    let pod = serde_json::to_value(build_pod(&req, &settings).expect("build")).expect("json");
    let init = &pod["spec"]["initContainers"][0];
    assert_eq!(init["image"], "reg/exec:1");
    assert_eq!(init["imagePullPolicy"], "Always");
    assert_eq!(init["command"][2], "/x/cairn");
    assert_eq!(pod["spec"]["containers"][0]["command"][0], "/x/cairn");
}

#[test]
fn executor_rbac_is_minimal() {
    let (role, binding) = executor_rbac("ns", "default");
    insta::assert_yaml_snapshot!("executor_rbac", (role, binding));
}

// ----------------------------------------------------------------------------- observe

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Want {
    phase: PodPhase,
    #[serde(default)]
    message: Option<String>,
    outputs_reported: bool,
    #[serde(default)]
    exit_code: Option<String>,
    #[serde(default)]
    result: Option<String>,
    #[serde(default)]
    started_at: Option<String>,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(rename = "podIP", default)]
    pod_ip: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fixture {
    pod: k8s_openapi::api::core::v1::Pod,
    #[serde(default)]
    task_result: Option<WorkflowTaskResult>,
    want: Want,
}

#[test]
fn observe_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/workflow/pod/testdata/observe");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 15, "{}", files.len());
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).expect("read");
        let f: Fixture = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got: PodObservation = observe(&f.pod, f.task_result.as_ref());
        let w = f.want;
        assert_eq!(got.phase, w.phase, "{name}");
        assert_eq!(got.message, w.message, "{name}");
        assert_eq!(got.outputs_reported, w.outputs_reported, "{name}");
        let outputs = got.outputs.clone().unwrap_or_default();
        assert_eq!(outputs.exit_code, w.exit_code, "{name}");
        if w.result.is_some() {
            assert_eq!(outputs.result, w.result, "{name}");
        }
        if let Some(at) = w.started_at {
            assert_eq!(got.started_at.map(|t| t.to_string()), Some(at), "{name}");
        }
        if let Some(at) = w.finished_at {
            assert_eq!(got.finished_at.map(|t| t.to_string()), Some(at), "{name}");
        }
        if w.pod_ip.is_some() {
            assert_eq!(got.pod_ip, w.pod_ip, "{name}");
        }
        assert_eq!(got.pod_name, "wf-main-1", "{name}");
        assert_eq!(got.host_node_name.as_deref(), Some("node-1"), "{name}");
    }
}

#[test]
fn observe_keeps_reported_parameters() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/workflow/pod/testdata/observe/succeeded-reported.yaml"),
    )
    .expect("fixture");
    let f: Fixture = serde_saphyr::from_str(&text).expect("fixture");
    let got = observe(&f.pod, f.task_result.as_ref());
    let params = got.outputs.and_then(|o| o.parameters).expect("parameters");
    assert_eq!(params[0].name, "p");
    assert_eq!(params[0].value, Some(json!("hello")));
}

/// The value of the env variable `name` of container `c` (JSON).
fn env_of(c: &Value, name: &str) -> Option<String> {
    c["env"].as_array().and_then(|env| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str().map(str::to_owned))
    })
}

/// Whether container `c` (JSON) mounts the projected token.
fn token_mounted(c: &Value) -> bool {
    c["volumeMounts"]
        .as_array()
        .is_some_and(|ms| ms.iter().any(|m| m["name"] == TOKEN_VOLUME))
}

#[test]
fn a_step_running_cairn_from_the_executor_volume_gets_it_and_the_token() {
    let settings = PodSettings {
        executor_url: Some("http://cairn.cairn:8081".into()),
        ..PodSettings::default()
    };
    for (what, container) in [
        (
            "direct",
            json!({"image": "b", "command": ["/var/run/cairn/cairn", "model", "register", "--name", "m", "--uri", "s3://x"]}),
        ),
        (
            "through sh -c",
            json!({"image": "b", "command": ["sh", "-c"], "args": ["/var/run/cairn/cairn model register --name m --uri s3://x"]}),
        ),
    ] {
        let t = json!({"name": "register", "container": container});
        let pod =
            build_pod(&request(WorkflowSpec::default(), template(t)), &settings).expect("build");
        let pod = serde_json::to_value(pod).expect("json");
        assert_eq!(pod["spec"]["initContainers"][0]["name"], "init", "{what}");
        let main = &pod["spec"]["containers"][0];
        assert_eq!(main["command"][1], "exec", "{what}: wrapped");
        assert!(token_mounted(main), "{what}: token in main");
        let spec: Value = serde_json::from_str(
            &env_of(main, crate::workflow::executor::SPEC_ENV).expect("spec env"),
        )
        .expect("spec");
        assert_eq!(
            spec["artifactChannel"]["server"], "http://cairn.cairn:8081",
            "{what}"
        );
        assert_eq!(
            spec["artifactChannel"]["tokenFile"],
            format!("{TOKEN_MOUNT_PATH}/token"),
            "{what}"
        );
    }
    // A step with only an input artifact keeps the token to its init container, as before.
    let t = json!({"name": "t", "container": {"image": "b", "command": ["true"]},
                   "inputs": {"artifacts": [{"name": "a", "path": "/a", "raw": {"data": "x"}}]}});
    let pod = build_pod(&request(WorkflowSpec::default(), template(t)), &settings).expect("build");
    let pod = serde_json::to_value(pod).expect("json");
    assert!(!token_mounted(&pod["spec"]["containers"][0]));
    // A plain step that only mentions another path under the mount stays unwrapped.
    let t =
        json!({"name": "t", "container": {"image": "b", "command": ["ls", "/var/run/cairnish"]}});
    let pod = build_pod(&request(WorkflowSpec::default(), template(t)), &settings).expect("build");
    let pod = serde_json::to_value(pod).expect("json");
    assert!(pod["spec"].get("initContainers").is_none());
}

#[test]
fn a_step_logging_to_cairn_mlflow_gets_the_url_and_the_token() {
    let settings = PodSettings {
        executor_url: Some("http://cairn.cairn:8081/".into()),
        ..PodSettings::default()
    };
    let step = |uri: &str| {
        json!({"name": "train", "container": {"image": "py", "command": ["python", "train.py"],
            "env": [{"name": "MLFLOW_TRACKING_URI", "value": uri},
                    {"name": "OTHER", "value": "cairn"}]}})
    };
    let pod = build_pod(
        &request(WorkflowSpec::default(), template(step("cairn"))),
        &settings,
    )
    .expect("build");
    let pod = serde_json::to_value(pod).expect("json");
    let main = &pod["spec"]["containers"][0];
    assert_eq!(main["command"][1], "exec", "wrapped");
    assert_eq!(
        env_of(main, MLFLOW_URI_ENV).as_deref(),
        Some("http://cairn.cairn:8081/executor/v1/mlflow")
    );
    // Only that variable's sentinel is replaced.
    assert_eq!(env_of(main, "OTHER").as_deref(), Some("cairn"));
    assert!(token_mounted(main), "token in main");
    let spec: Value =
        serde_json::from_str(&env_of(main, crate::workflow::executor::SPEC_ENV).expect("spec env"))
            .expect("spec");
    assert_eq!(spec["mlflowToken"], true);
    assert_eq!(
        spec["artifactChannel"]["tokenFile"],
        format!("{TOKEN_MOUNT_PATH}/token")
    );

    // An MLflow server of its own: the step runs as written.
    let pod = build_pod(
        &request(
            WorkflowSpec::default(),
            template(step("http://mlflow.ml:5000")),
        ),
        &settings,
    )
    .expect("build");
    let pod = serde_json::to_value(pod).expect("json");
    assert!(pod["spec"].get("initContainers").is_none());
    assert_eq!(
        env_of(&pod["spec"]["containers"][0], MLFLOW_URI_ENV).as_deref(),
        Some("http://mlflow.ml:5000")
    );

    // Pods cannot reach cairn: the error names the template and the variable.
    let err = build_pod(
        &request(WorkflowSpec::default(), template(step("cairn"))),
        &PodSettings::default(),
    )
    .expect_err("no executor url");
    assert!(
        matches!(err, PodError::NoExecutorUrlForMlflow { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("\"train\"") && message.contains("MLFLOW_TRACKING_URI"),
        "{message}"
    );
}
