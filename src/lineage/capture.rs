//! What a Workflow run contributes to the lineage graph, computed from the Workflow object and
//! its pods as observed when the run is archived (the pods still exist then).
//!
//! [`capture`] is pure: `(Workflow, pods, pipeline source) -> graph::Batch`. It records
//! - one [`Execution`] per node of type `Pod` (each attempt of a retried step is its own `Pod`
//!   node, child of the `Retry` node; its position there is the attempt number), with the image
//!   as written and the resolved image (`imageID` of the pod's `main` container), the command as
//!   the pod ran it (cairn's `cairn exec --` wrapper removed), input and output parameters, exit
//!   code, phase and times;
//! - its input and output artifacts (Argo's artifact JSON in the node's `inputs`/`outputs`, with
//!   the `digest`/`size` cairn's executor reports, see `workflow::artifacts::reported`) as
//!   [`Artifact`]s with `Input`/`Output` edges. An input artifact without a digest takes the
//!   digest of the output of the same run stored at the same URI, so it is the same node;
//! - input parameters whose value is a URI (`<scheme>://...`) as input artifacts keyed by that
//!   URI (pipelines commonly pass the dataset location as a parameter, e.g. `dataset-uri`);
//! - the WorkflowRun context (every execution a `Member`), and, when the run came from a
//!   WorkflowTemplate (`spec.workflowTemplateRef` or the `workflows.argoproj.io/workflow-template`
//!   label), the Pipeline context `<template>[@<revision>]` the run is a `Member` of, with the
//!   Application that manages the template when the shell found one ([`PipelineSource`]).
//!
//! Invariants: capture never fails (a workflow without a uid yields an empty batch; a field it
//! cannot read is left out), and the same inputs give the same batch, so replaying it is a no-op.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::graph::{
    Artifact, ArtifactType, Batch, Context, ContextKind, EdgeKind, Execution, Node, index,
};
use crate::workflow::node::ANNOTATION_NODE_ID;
use crate::workflow::types::{Parameter, Template, Workflow};

/// Label Argo sets on a Workflow submitted from a WorkflowTemplate.
pub const LABEL_WORKFLOW_TEMPLATE: &str = "workflows.argoproj.io/workflow-template";
/// Label Argo sets on a Workflow submitted from a ClusterWorkflowTemplate.
pub const LABEL_CLUSTER_WORKFLOW_TEMPLATE: &str = "workflows.argoproj.io/cluster-workflow-template";

/// Where the run's WorkflowTemplate was deployed from, looked up by the shell: the cairn
/// Application whose tracking id the template carries, and that Application's synced revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSource {
    /// The Application managing the WorkflowTemplate.
    pub application: String,
    /// The Git revision it is synced at.
    pub revision: String,
}

/// The WorkflowTemplate a run came from: `spec.workflowTemplateRef.name`, else the
/// `workflows.argoproj.io/(cluster-)workflow-template` label.
pub fn pipeline_template(wf: &Workflow) -> Option<String> {
    if let Some(name) = wf
        .spec
        .workflow_template_ref
        .as_ref()
        .and_then(|r| r.name.clone())
        .filter(|n| !n.is_empty())
    {
        return Some(name);
    }
    let labels = wf.metadata.labels.as_ref()?;
    labels
        .get(LABEL_WORKFLOW_TEMPLATE)
        .or_else(|| labels.get(LABEL_CLUSTER_WORKFLOW_TEMPLATE))
        .filter(|n| !n.is_empty())
        .cloned()
}

/// The lineage a run contributes (see the module docs).
pub fn capture(wf: &Workflow, pods: &[Pod], source: Option<&PipelineSource>) -> Batch {
    let mut b = Batch::default();
    let Some(uid) = wf.metadata.uid.clone().filter(|u| !u.is_empty()) else {
        return b;
    };
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let status = wf.status.clone().unwrap_or_default();

    // The run.
    let mut props = BTreeMap::new();
    props.insert("namespace".to_owned(), Value::from(namespace.clone()));
    props.insert("workflow".to_owned(), Value::from(name.clone()));
    if let Some(p) = &status.phase {
        props.insert("phase".to_owned(), Value::from(p.clone()));
    }
    if let Some(t) = status.started_at() {
        props.insert("started".to_owned(), Value::from(t.to_string()));
    }
    if let Some(t) = status.finished_at() {
        props.insert("finished".to_owned(), Value::from(t.to_string()));
    }
    let template = pipeline_template(wf);
    if let Some(t) = &template {
        props.insert("template".to_owned(), Value::from(t.clone()));
    }
    if let Some(params) = wf
        .spec
        .arguments
        .as_ref()
        .and_then(|a| a.parameters.as_ref())
    {
        let args: serde_json::Map<String, Value> = params
            .iter()
            .filter_map(|p| p.value_text().map(|v| (p.name.clone(), Value::from(v))))
            .collect();
        if !args.is_empty() {
            props.insert("arguments".to_owned(), Value::Object(args));
        }
    }
    let run = b.node(Node::Context(Context {
        kind: ContextKind::WorkflowRun,
        name: uid.clone(),
        properties: props,
    }));
    b.index(index::WORKFLOW_UID, &uid, &run);
    let created = wf
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond())
        .or_else(|| status.started_at().map(|t| t.as_millisecond()));
    if let Some(ms) = created {
        b.index(index::TIME, &format!("{:020}", ms.max(0)), &run);
    }

    // The pipeline it came from, and who deployed it.
    if let Some(t) = &template {
        let mut props = BTreeMap::new();
        props.insert("template".to_owned(), Value::from(t.clone()));
        let name = match source {
            Some(s) => {
                props.insert("revision".to_owned(), Value::from(s.revision.clone()));
                props.insert("application".to_owned(), Value::from(s.application.clone()));
                format!("{t}@{}", s.revision)
            }
            None => t.clone(),
        };
        let pipeline = b.node(Node::Context(Context {
            kind: ContextKind::Pipeline,
            name,
            properties: props,
        }));
        b.index(index::PIPELINE, t, &pipeline);
        b.edge(&run, &pipeline, EdgeKind::Member);
        if let Some(s) = source {
            let app = b.node(Node::Context(Context {
                kind: ContextKind::Application,
                name: s.application.clone(),
                properties: BTreeMap::new(),
            }));
            b.index(index::APPLICATION, &s.application, &app);
            b.edge(&app, &pipeline, EdgeKind::Manages);
        }
    }

    let nodes = status.nodes.clone().unwrap_or_default();
    let templates = Templates::of(wf);
    // Digest of every output of the run by URI, so an input read from a sibling's output (which
    // Argo reports by location only) is the same artifact node.
    let mut digests: BTreeMap<String, String> = BTreeMap::new();
    for node in nodes.values() {
        for art in artifacts(node.outputs.as_ref().and_then(|o| o.artifacts.as_ref())) {
            if let (Some(uri), Some(d)) = (artifact_uri(art, &namespace), digest_of(art)) {
                digests.insert(uri, d);
            }
        }
    }
    // Attempt numbers: position among the children of a Retry parent.
    let mut attempt: BTreeMap<&str, u32> = BTreeMap::new();
    for node in nodes.values() {
        if node.node_type.as_deref() == Some("Retry") {
            for (i, child) in node.children.iter().flatten().enumerate() {
                attempt.insert(child.as_str(), u32::try_from(i).unwrap_or(u32::MAX));
            }
        }
    }

    for (node_id, node) in &nodes {
        if node.node_type.as_deref() != Some("Pod") {
            continue;
        }
        let pod = find_pod(pods, node_id);
        let template_name = node
            .template_name
            .clone()
            .or_else(|| node.template_ref.as_ref().and_then(|r| r.template.clone()))
            .unwrap_or_default();
        let tmpl = templates.get(&template_name);
        let (image, command) = match pod.and_then(main_container) {
            Some(c) => (c.image.clone().unwrap_or_default(), pod_command(c)),
            None => template_container(tmpl),
        };
        let finished = parse_time(node.finished_at.as_deref());
        let exit_code = pod.and_then(main_exit_code).or_else(|| {
            node.outputs
                .as_ref()
                .and_then(|o| o.exit_code.as_deref())
                .and_then(|c| c.trim().parse().ok())
        });
        let execution = Execution {
            namespace: namespace.clone(),
            workflow: name.clone(),
            workflow_uid: uid.clone(),
            node_id: node_id.clone(),
            template: template_name,
            attempt: attempt.get(node_id.as_str()).copied().unwrap_or(0),
            image,
            image_digest: pod.and_then(main_image_id),
            command,
            inputs: params(node.inputs.as_ref().and_then(|i| i.parameters.as_ref())),
            outputs: params(node.outputs.as_ref().and_then(|o| o.parameters.as_ref())),
            exit_code,
            phase: node.phase.clone().unwrap_or_default(),
            started: parse_time(node.started_at.as_deref()),
            finished,
        };
        let image_digest = execution.image_digest.clone();
        let uri_params: Vec<(String, String)> = execution
            .inputs
            .iter()
            .filter(|(_, v)| looks_like_uri(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let x = b.node(Node::Execution(Box::new(execution)));
        b.edge(&x, &run, EdgeKind::Member);
        b.index(index::WORKFLOW_UID, &uid, &x);
        if let Some(d) = &image_digest {
            b.index(index::IMAGE_DIGEST, d, &x);
        }

        for art in artifacts(node.inputs.as_ref().and_then(|i| i.artifacts.as_ref())) {
            if let Some(a) = artifact(art, &namespace, &digests, None) {
                let id = add_artifact(&mut b, a);
                b.edge(&id, &x, EdgeKind::Input);
            }
        }
        for (param, uri) in uri_params {
            let name = param
                .trim_end_matches("-uri")
                .trim_end_matches("_uri")
                .trim_end_matches("Uri")
                .to_owned();
            let a = Artifact {
                type_: ArtifactType::from_name(&name),
                digest: digests.get(&uri).cloned(),
                name,
                uri,
                size: None,
                created: None,
            };
            let id = add_artifact(&mut b, a);
            b.edge(&id, &x, EdgeKind::Input);
        }
        for art in artifacts(node.outputs.as_ref().and_then(|o| o.artifacts.as_ref())) {
            if let Some(a) = artifact(art, &namespace, &digests, finished) {
                let id = add_artifact(&mut b, a);
                b.edge(&x, &id, EdgeKind::Output);
            }
        }
    }
    b
}

fn add_artifact(b: &mut Batch, a: Artifact) -> String {
    let digest = a.digest.clone();
    let uri = a.uri.clone();
    let id = b.node(Node::Artifact(a));
    if let Some(d) = &digest {
        b.index(index::DIGEST, d, &id);
    }
    b.index(index::URI, &uri, &id);
    id
}

/// Templates by name: the Workflow's own, then those stored from its WorkflowTemplate.
struct Templates {
    by_name: BTreeMap<String, Template>,
}

impl Templates {
    fn of(wf: &Workflow) -> Self {
        let mut by_name = BTreeMap::new();
        let stored = wf
            .status
            .as_ref()
            .and_then(|s| s.stored_workflow_template_spec.as_ref())
            .and_then(|s| s.get("templates"))
            .and_then(|t| serde_json::from_value::<Vec<Template>>(t.clone()).ok())
            .unwrap_or_default();
        for t in stored
            .into_iter()
            .chain(wf.spec.templates.clone().unwrap_or_default())
        {
            by_name.insert(t.name.clone(), t);
        }
        Self { by_name }
    }

    fn get(&self, name: &str) -> Option<&Template> {
        self.by_name.get(name)
    }
}

fn template_container(t: Option<&Template>) -> (String, Vec<String>) {
    let Some(c) = t.and_then(|t| t.container.as_ref().or(t.script.as_ref())) else {
        return (String::new(), Vec::new());
    };
    let mut command = c.command.clone().unwrap_or_default();
    command.extend(c.args.clone().unwrap_or_default());
    (c.image.clone().unwrap_or_default(), command)
}

fn find_pod<'a>(pods: &'a [Pod], node_id: &str) -> Option<&'a Pod> {
    pods.iter().find(|p| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_NODE_ID))
            .is_some_and(|id| id == node_id)
    })
}

fn main_container(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::Container> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == "main")
}

/// The command and args as the pod ran them, without cairn's `<mount>/cairn exec --` wrapper.
fn pod_command(c: &k8s_openapi::api::core::v1::Container) -> Vec<String> {
    let mut command = c.command.clone().unwrap_or_default();
    command.extend(c.args.clone().unwrap_or_default());
    let wrapped = command.len() >= 3
        && command[0].ends_with("/cairn")
        && command[1] == "exec"
        && command[2] == "--";
    if wrapped {
        command.drain(..3);
    }
    command
}

fn main_status(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|s| s.name == "main")
}

fn main_image_id(pod: &Pod) -> Option<String> {
    main_status(pod)
        .map(|s| s.image_id.clone())
        .filter(|id| !id.is_empty())
}

fn main_exit_code(pod: &Pod) -> Option<i32> {
    let s = main_status(pod)?;
    s.state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .or_else(|| s.last_state.as_ref().and_then(|st| st.terminated.as_ref()))
        .map(|t| t.exit_code)
}

fn parse_time(t: Option<&str>) -> Option<jiff::Timestamp> {
    t.and_then(|t| t.parse().ok())
}

fn params(list: Option<&Vec<Parameter>>) -> BTreeMap<String, String> {
    list.into_iter()
        .flatten()
        .filter(|p| !p.name.is_empty())
        .filter_map(|p| p.value_text().map(|v| (p.name.clone(), v)))
        .collect()
}

fn artifacts(list: Option<&Vec<Value>>) -> impl Iterator<Item = &Value> {
    list.into_iter().flatten()
}

fn looks_like_uri(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && !rest.is_empty()
        && !v.contains(char::is_whitespace)
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn digest_of(art: &Value) -> Option<String> {
    art.get("digest")
        .and_then(Value::as_str)
        .filter(|d| d.starts_with("sha256:"))
        .map(str::to_owned)
}

fn str_at<'a>(v: &'a Value, loc: &str, field: &str) -> Option<&'a str> {
    v.get(loc)?.get(field)?.as_str().filter(|s| !s.is_empty())
}

/// The artifact's location as a URI (Argo's location JSON: s3, gcs, oss, azure, hdfs, http,
/// artifactory, git, raw, and cairn's built-in `cairn: {key}` relative to the namespace). The
/// one spelling of artifact URIs: the registry resolves `--artifact NAME` through it too. Pure.
pub fn artifact_uri(art: &Value, namespace: &str) -> Option<String> {
    let bucket_key = |loc: &str, scheme: &str| {
        str_at(art, loc, "key").map(|key| {
            let bucket = str_at(art, loc, "bucket").unwrap_or_default();
            format!("{scheme}://{bucket}/{}", key.trim_start_matches('/'))
        })
    };
    if let Some(key) = str_at(art, "cairn", "key") {
        return Some(format!(
            "cairn://{namespace}/{}",
            key.trim_start_matches('/')
        ));
    }
    bucket_key("s3", "s3")
        .or_else(|| bucket_key("gcs", "gs"))
        .or_else(|| bucket_key("oss", "oss"))
        .or_else(|| {
            str_at(art, "azure", "blob").map(|blob| {
                let container = str_at(art, "azure", "container").unwrap_or_default();
                format!("azure://{container}/{blob}")
            })
        })
        .or_else(|| {
            str_at(art, "hdfs", "path").map(|p| format!("hdfs://{}", p.trim_start_matches('/')))
        })
        .or_else(|| str_at(art, "http", "url").map(str::to_owned))
        .or_else(|| str_at(art, "artifactory", "url").map(str::to_owned))
        .or_else(|| {
            str_at(art, "git", "repo").map(|repo| match str_at(art, "git", "revision") {
                Some(rev) => format!("{repo}@{rev}"),
                None => repo.to_owned(),
            })
        })
        .or_else(|| {
            art.get("raw").map(|_| {
                let name = art.get("name").and_then(Value::as_str).unwrap_or_default();
                format!("raw://{name}")
            })
        })
}

fn artifact(
    art: &Value,
    namespace: &str,
    digests: &BTreeMap<String, String>,
    created: Option<jiff::Timestamp>,
) -> Option<Artifact> {
    let name = art
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let uri = artifact_uri(art, namespace)?;
    // Raw artifacts carry their content: its digest identifies them.
    let raw_digest = str_at(art, "raw", "data")
        .map(|data| format!("sha256:{}", hex::encode(Sha256::digest(data.as_bytes()))));
    let digest = digest_of(art)
        .or(raw_digest)
        .or_else(|| digests.get(&uri).cloned());
    Some(Artifact {
        type_: ArtifactType::from_name(&name),
        size: art.get("size").and_then(Value::as_u64),
        name,
        uri,
        digest,
        created,
    })
}

/// The Application named by an object's `argocd.argoproj.io/tracking-id` annotation
/// (`<app>:<group>/<kind>:<namespace>/<name>`; `<app>` may be `<namespace>_<name>`).
pub fn tracking_app(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    let id = meta
        .annotations
        .as_ref()?
        .get(crate::gitops::sync::TRACKING_ID)?;
    let (app, rest) = id.split_once(':')?;
    (!app.is_empty() && rest.contains('/')).then(|| app.to_owned())
}

/// Bound on the Application lookup of the capture shell: capture runs in the archiving pass,
/// which must not wait on a slow apiserver.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The synced revision of Application `app` (`<name>` or `<namespace>_<name>`), when the
/// apiserver answers in time and the Application has one.
pub async fn application_revision(client: &kube::Client, app: &str) -> Option<PipelineSource> {
    use crate::gitops::types::Application;
    let (api, name): (kube::Api<Application>, &str) = match app.split_once('_') {
        Some((ns, name)) => (kube::Api::namespaced(client.clone(), ns), name),
        None => (kube::Api::all(client.clone()), app),
    };
    let params = kube::api::ListParams::default()
        .fields(&format!("metadata.name={name}"))
        .limit(2);
    let list = match tokio::time::timeout(LOOKUP_TIMEOUT, api.list(&params)).await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => {
            tracing::debug!(application = %app, error = %e, "lineage: application lookup failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(application = %app, "lineage: application lookup timed out");
            return None;
        }
    };
    let revision = list.items.into_iter().next()?.status?.sync?.revision?;
    Some(PipelineSource {
        application: name.to_owned(),
        revision,
    })
}

/// The capture shell, called by the workflow controller's archiving pass (while the pods
/// exist): looks up the template's Application revision, captures, and writes the batch in one
/// `Store::write`. Never fails the caller: a failure is logged and counted in
/// `cairn_lineage_capture_total{result}` (`ok`, `empty`, or the error's metric label).
pub async fn record(
    store: &crate::store::Store,
    client: &kube::Client,
    wf: &Workflow,
    pods: &[Pod],
    template_app: Option<String>,
) {
    let source = match &template_app {
        Some(app) => application_revision(client, app).await,
        None => None,
    };
    let batch = capture(wf, pods, source.as_ref());
    let uid = wf.metadata.uid.clone().unwrap_or_default();
    if batch.is_empty() {
        metrics::counter!("cairn_lineage_capture_total", "result" => "empty").increment(1);
        return;
    }
    let records = batch.len();
    let result = store
        .write(move |txn| super::graph::write(txn, &batch))
        .await;
    match result {
        Ok(()) => {
            metrics::counter!("cairn_lineage_capture_total", "result" => "ok").increment(1);
            tracing::debug!(workflow_uid = %uid, records, "lineage captured");
        }
        Err(e) => {
            metrics::counter!("cairn_lineage_capture_total", "result" => e.metric_label())
                .increment(1);
            tracing::warn!(workflow_uid = %uid, error = %e, "lineage capture failed; the workflow is not affected");
        }
    }
}

#[cfg(test)]
mod tests;
