//! `/api/v1/workflows`, `/api/v1/archived-workflows`, `/api/v1/workflow-templates`,
//! `/api/v1/cron-workflows` and `/api/v1/workflow-events`: the Argo Workflows server's API
//! surface, read from and written to the cluster, filtered and checked by RBAC.
//!
//! RBAC objects are `<namespace>/<name>`: Workflows (live and archived) under `workflows`,
//! WorkflowTemplates under `workflowtemplates`, CronWorkflows under `cronworkflows` (the
//! resources cairn's policy language defines for them, so a policy can open templates without
//! opening workflows). Actions: `get`; `create` (submit, resubmit); `update` (suspend, resume,
//! stop, terminate, retry); `delete`.
//!
//! Invariants:
//! - A submission is resolved (`workflowTemplateRef`, `templateRef`) and validated before it is
//!   created: an invalid Workflow is a 400 whose message lists every problem with the JSON path
//!   of its field, and nothing is created.
//! - Actions read, apply the pure `workflow::actions` function, and write back with the
//!   `resourceVersion` read; on a conflict they re-read and re-apply (bounded), so a concurrent
//!   controller write is never overwritten.
//! - Logs come from the live pod when it exists, else from the archive, so they stay readable
//!   after podGC or the Workflow's deletion.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{AsyncBufReadExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::auth::Principal;
use crate::k8s::objects;
use crate::workflow::actions::{self, ActionError};
use crate::workflow::archive::{Archive, ArchiveFilter, parse_selector};
use crate::workflow::executor::MAIN_CONTAINER;
use crate::workflow::types::{
    ClusterWorkflowTemplate, CronWorkflow, Workflow, WorkflowTaskResult, WorkflowTemplate,
};
use crate::workflow::validate::{self, TemplateLookup};

/// What the workflow routes need besides the cluster: the archive.
#[derive(Clone, Debug)]
pub struct WorkflowsState {
    /// Finished workflows and their logs.
    pub archive: Archive,
}

/// Label set on Workflows created from a WorkflowTemplate (Argo's).
pub const LABEL_WORKFLOW_TEMPLATE: &str = "workflows.argoproj.io/workflow-template";
/// Label set on Workflows created from a ClusterWorkflowTemplate (Argo's).
pub const LABEL_CLUSTER_WORKFLOW_TEMPLATE: &str = "workflows.argoproj.io/cluster-workflow-template";
/// Label set on Workflows created from a CronWorkflow (Argo's).
pub const LABEL_CRON_WORKFLOW: &str = "workflows.argoproj.io/cron-workflow";

/// Attempts of a read-modify-write before giving up on conflicts.
const CONFLICT_ATTEMPTS: usize = 5;

pub(super) fn authorize(
    state: &AppState,
    principal: &Principal,
    resource: &'static str,
    action: &'static str,
    object: String,
) -> Result<(), ApiError> {
    if state.auth().authorize(principal, resource, action, &object) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            resource,
            action,
            object,
        })
    }
}

fn kube_error(what: String, e: kube::Error) -> ApiError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => ApiError::NotFound(format!("{what}: not found")),
        kube::Error::Api(s) if matches!(s.code, 400 | 409 | 422) => {
            ApiError::BadRequest(format!("{what}: {}", s.message))
        }
        _ => ApiError::Kube(format!("{what}: {e}")),
    }
}

fn action_error(e: ActionError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn archive(state: &AppState) -> Result<&Archive, ApiError> {
    state
        .workflows()
        .map(|w| &w.archive)
        .ok_or_else(|| ApiError::Internal("the workflow archive is not configured".into()))
}

/// Query of the list routes.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// Label selector (`a=b,c!=d`); Argo's `listOptions.labelSelector` is accepted too.
    #[serde(rename = "labelSelector", alias = "listOptions.labelSelector")]
    label_selector: Option<String>,
}

/// Workflows of one namespace, or of all when `namespace` is None, that the caller may `get`.
async fn list_in(
    state: &AppState,
    principal: &Principal,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let reqs = parse_selector(selector.unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let items: Vec<Workflow> = objects::list_workflows(&state.kube()?, namespace)
        .await?
        .into_iter()
        .filter(|wf| {
            let labels = wf.metadata.labels.clone().unwrap_or_default();
            reqs.iter().all(|r| r.matches(&labels))
        })
        .filter(|wf| {
            let object = format!("{}/{}", wf.namespace().unwrap_or_default(), wf.name_any());
            state
                .auth()
                .authorize(principal, "workflows", "get", &object)
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// Workflows of every namespace the caller may see.
pub async fn list_all(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    list_in(&state, &principal, None, q.label_selector.as_deref()).await
}

/// Workflows of one namespace.
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    list_in(
        &state,
        &principal,
        Some(&namespace),
        q.label_selector.as_deref(),
    )
    .await
}

/// One Workflow.
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Workflow>, ApiError> {
    authorize(
        &state,
        &principal,
        "workflows",
        "get",
        format!("{namespace}/{name}"),
    )?;
    objects::get_workflow(&state.kube()?, &namespace, &name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("workflow {namespace}/{name} not found")))
}

/// A lookup over every WorkflowTemplate of a namespace and every ClusterWorkflowTemplate,
/// listed once per submission (validation is synchronous).
struct Prefetched {
    templates: BTreeMap<(String, String), WorkflowTemplate>,
    cluster: BTreeMap<String, ClusterWorkflowTemplate>,
}

impl TemplateLookup for Prefetched {
    fn workflow_template(&self, namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        self.templates
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }
    fn cluster_workflow_template(&self, name: &str) -> Option<ClusterWorkflowTemplate> {
        self.cluster.get(name).cloned()
    }
}

async fn prefetch(client: &kube::Client, namespace: &str) -> Result<Prefetched, ApiError> {
    let wt: Api<WorkflowTemplate> = Api::namespaced(client.clone(), namespace);
    let templates = wt
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_error(format!("list workflowtemplates in {namespace}"), e))?
        .items
        .into_iter()
        .map(|t| ((namespace.to_owned(), t.name_any()), t))
        .collect();
    let cwt: Api<ClusterWorkflowTemplate> = Api::all(client.clone());
    // A cluster without cluster templates (or without the right to list them) still submits
    // workflows that do not use them; a reference to one then fails validation by name.
    let cluster = match cwt.list(&ListParams::default()).await {
        Ok(list) => list.items.into_iter().map(|t| (t.name_any(), t)).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "cannot list clusterworkflowtemplates");
            BTreeMap::new()
        }
    };
    Ok(Prefetched { templates, cluster })
}

/// Resolves and validates `wf`; a 400 listing every problem with its field path.
pub(crate) fn check_workflow(wf: &Workflow, lookup: &dyn TemplateLookup) -> Result<(), ApiError> {
    let label = wf
        .metadata
        .name
        .clone()
        .or_else(|| wf.metadata.generate_name.clone())
        .unwrap_or_default();
    let resolved = validate::resolve(wf, lookup)
        .map_err(|e| ApiError::BadRequest(format!("workflow {label} is invalid: {e}")))?;
    validate::validate(&resolved).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        ApiError::BadRequest(format!("workflow {label} is invalid: {}", list.join("; ")))
    })
}

async fn create_workflow(
    state: &AppState,
    principal: &Principal,
    namespace: &str,
    mut wf: Workflow,
) -> Result<Workflow, ApiError> {
    wf.metadata.namespace = Some(namespace.to_owned());
    if wf.metadata.name.is_none() && wf.metadata.generate_name.is_none() {
        return Err(ApiError::BadRequest(
            "workflow metadata: expected metadata.name or metadata.generateName".into(),
        ));
    }
    let object = format!(
        "{namespace}/{}",
        wf.metadata
            .name
            .clone()
            .or_else(|| wf.metadata.generate_name.clone())
            .unwrap_or_default()
    );
    authorize(state, principal, "workflows", "create", object)?;
    let client = state.kube()?;
    let lookup = prefetch(&client, namespace).await?;
    check_workflow(&wf, &lookup)?;
    wf.status = None;
    wf.metadata.resource_version = None;
    wf.metadata.uid = None;
    let api: Api<Workflow> = Api::namespaced(client, namespace);
    api.create(&PostParams::default(), &wf)
        .await
        .map_err(|e| kube_error(format!("create workflow in {namespace}"), e))
}

/// `POST /api/v1/workflows/{namespace}`: body `{"workflow": {...}}` (Argo's) or the Workflow.
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Workflow>), ApiError> {
    let value = match body.get("workflow") {
        Some(w) => w.clone(),
        None => body,
    };
    let wf: Workflow = serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("body: expected a Workflow: {e}")))?;
    let created = create_workflow(&state, &principal, &namespace, wf).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Body of `POST /api/v1/workflows/{namespace}/submit` (Argo's WorkflowSubmitRequest).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitRequest {
    /// `WorkflowTemplate`, `ClusterWorkflowTemplate` or `CronWorkflow` (case-insensitive, Argo's
    /// short forms `workflowtemplate`, `cronwf`... accepted).
    resource_kind: String,
    /// Its name.
    resource_name: String,
    /// Options.
    #[serde(default)]
    submit_options: SubmitOptions,
}

/// Argo's SubmitOpts (the fields cairn reads).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubmitOptions {
    /// `NAME=VALUE` parameters.
    #[serde(default)]
    parameters: Vec<String>,
    /// `metadata.generateName` of the new Workflow.
    generate_name: Option<String>,
    /// `metadata.name` of the new Workflow.
    name: Option<String>,
    /// Extra labels, `a=b,c=d`.
    labels: Option<String>,
}

/// The Workflow Argo's `submit --from` creates from a template or a CronWorkflow (pure).
pub(crate) fn workflow_from(
    kind: &str,
    name: &str,
    namespace: &str,
    cron: Option<&CronWorkflow>,
    opts: &SubmitOptions,
) -> Result<Workflow, ApiError> {
    let mut wf = Workflow::default();
    let mut labels = BTreeMap::new();
    let mut annotations = BTreeMap::new();
    match kind {
        "workflowtemplate" => {
            wf.spec.workflow_template_ref = Some(crate::workflow::types::WorkflowTemplateRef {
                name: Some(name.to_owned()),
                ..Default::default()
            });
            labels.insert(LABEL_WORKFLOW_TEMPLATE.to_owned(), name.to_owned());
        }
        "clusterworkflowtemplate" => {
            wf.spec.workflow_template_ref = Some(crate::workflow::types::WorkflowTemplateRef {
                name: Some(name.to_owned()),
                cluster_scope: Some(true),
                ..Default::default()
            });
            labels.insert(LABEL_CLUSTER_WORKFLOW_TEMPLATE.to_owned(), name.to_owned());
        }
        "cronworkflow" => {
            let cron = cron.ok_or_else(|| {
                ApiError::NotFound(format!("cronworkflow {namespace}/{name} not found"))
            })?;
            wf.spec = cron.spec.workflow_spec.clone().unwrap_or_default();
            if let Some(meta) = &cron.spec.workflow_metadata {
                for (field, target) in [("labels", &mut labels), ("annotations", &mut annotations)]
                {
                    if let Some(map) = meta.get(field).and_then(Value::as_object) {
                        for (k, v) in map {
                            target.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
                        }
                    }
                }
            }
            labels.insert(LABEL_CRON_WORKFLOW.to_owned(), name.to_owned());
            annotations.insert(
                "workflows.argoproj.io/scheduled-time".to_owned(),
                jiff::Timestamp::now().to_string(),
            );
        }
        other => {
            return Err(ApiError::BadRequest(format!(
                "resourceKind {other:?}: expected WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow"
            )));
        }
    }
    for pair in opts
        .labels
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            ApiError::BadRequest(format!("submitOptions.labels {pair:?}: expected key=value"))
        })?;
        labels.insert(k.to_owned(), v.to_owned());
    }
    wf.metadata.namespace = Some(namespace.to_owned());
    wf.metadata.name = opts.name.clone();
    if wf.metadata.name.is_none() {
        wf.metadata.generate_name = Some(
            opts.generate_name
                .clone()
                .unwrap_or_else(|| format!("{name}-")),
        );
    }
    wf.metadata.labels = Some(labels);
    wf.metadata.annotations = (!annotations.is_empty()).then_some(annotations);
    let params = actions::parse_parameters(&opts.parameters).map_err(action_error)?;
    actions::apply_submit_parameters(&mut wf, &params);
    Ok(wf)
}

fn normalize_kind(kind: &str) -> String {
    match kind.to_ascii_lowercase().as_str() {
        "workflowtemplate" | "workflowtemplates" | "wftmpl" => "workflowtemplate".into(),
        "clusterworkflowtemplate" | "clusterworkflowtemplates" | "cwftmpl" => {
            "clusterworkflowtemplate".into()
        }
        "cronworkflow" | "cronworkflows" | "cronwf" | "cwf" => "cronworkflow".into(),
        other => other.to_owned(),
    }
}

/// `POST /api/v1/workflows/{namespace}/submit`: a Workflow from a template or CronWorkflow.
pub async fn submit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
    Json(req): Json<SubmitRequest>,
) -> Result<(StatusCode, Json<Workflow>), ApiError> {
    let kind = normalize_kind(&req.resource_kind);
    let cron = if kind == "cronworkflow" {
        authorize(
            &state,
            &principal,
            "cronworkflows",
            "get",
            format!("{namespace}/{}", req.resource_name),
        )?;
        let api: Api<CronWorkflow> = Api::namespaced(state.kube()?, &namespace);
        Some(api.get(&req.resource_name).await.map_err(|e| {
            kube_error(
                format!("get cronworkflow {namespace}/{}", req.resource_name),
                e,
            )
        })?)
    } else {
        None
    };
    let wf = workflow_from(
        &kind,
        &req.resource_name,
        &namespace,
        cron.as_ref(),
        &req.submit_options,
    )?;
    let created = create_workflow(&state, &principal, &namespace, wf).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `DELETE /api/v1/workflows/{namespace}/{name}` (its pods go with it, by owner reference).
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    authorize(
        &state,
        &principal,
        "workflows",
        "delete",
        format!("{namespace}/{name}"),
    )?;
    let api: Api<Workflow> = Api::namespaced(state.kube()?, &namespace);
    api.delete(&name, &DeleteParams::background())
        .await
        .map_err(|e| kube_error(format!("delete workflow {namespace}/{name}"), e))?;
    Ok(Json(json!({})))
}

/// Body of the action routes (all fields optional).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionBody {
    /// `NAME=VALUE` parameters (retry, resubmit).
    #[serde(default)]
    parameters: Vec<String>,
}

/// Read, apply `f`, write back under the read resourceVersion; re-read on conflict.
async fn update_with(
    api: &Api<Workflow>,
    ident: &str,
    f: impl Fn(&Workflow) -> Result<Workflow, ApiError>,
) -> Result<(Workflow, Workflow), ApiError> {
    let name = ident.rsplit('/').next().unwrap_or(ident);
    for _ in 0..CONFLICT_ATTEMPTS {
        let current = api
            .get(name)
            .await
            .map_err(|e| kube_error(format!("get workflow {ident}"), e))?;
        let next = f(&current)?;
        match api.replace(name, &PostParams::default(), &next).await {
            Ok(written) => return Ok((current, written)),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return Err(kube_error(format!("update workflow {ident}"), e)),
        }
    }
    Err(ApiError::Kube(format!(
        "update workflow {ident}: still conflicting after {CONFLICT_ATTEMPTS} attempts"
    )))
}

/// `PUT /api/v1/workflows/{namespace}/{name}/{action}`: suspend, resume, stop, terminate, retry,
/// resubmit.
pub async fn action(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name, verb)): Path<(String, String, String)>,
    body: Option<Json<ActionBody>>,
) -> Result<Json<Workflow>, ApiError> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let params = actions::parse_parameters(&body.parameters).map_err(action_error)?;
    let ident = format!("{namespace}/{name}");
    let rbac_action = if verb == "resubmit" {
        "create"
    } else {
        "update"
    };
    authorize(&state, &principal, "workflows", rbac_action, ident.clone())?;
    let client = state.kube()?;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &namespace);
    let now = jiff::Timestamp::now();
    let written = match verb.as_str() {
        "suspend" => {
            update_with(&api, &ident, |wf| {
                actions::suspend(wf).map_err(action_error)
            })
            .await?
            .1
        }
        "resume" => {
            update_with(&api, &ident, |wf| {
                actions::resume(wf, now).map_err(action_error)
            })
            .await?
            .1
        }
        "stop" => {
            update_with(&api, &ident, |wf| actions::stop(wf).map_err(action_error))
                .await?
                .1
        }
        "terminate" => {
            update_with(&api, &ident, |wf| {
                actions::terminate(wf).map_err(action_error)
            })
            .await?
            .1
        }
        "retry" => retry(&client, &api, &namespace, &ident, &params, now).await?,
        "resubmit" => {
            let old = api
                .get(&name)
                .await
                .map_err(|e| kube_error(format!("get workflow {ident}"), e))?;
            let new = actions::resubmit(&old, &params).map_err(action_error)?;
            api.create(&PostParams::default(), &new)
                .await
                .map_err(|e| kube_error(format!("resubmit workflow {ident}"), e))?
        }
        other => {
            return Err(ApiError::NotFound(format!(
                "no workflow action {other:?}: expected suspend, resume, stop, terminate, retry or resubmit"
            )));
        }
    };
    Ok(Json(written))
}

/// Argo's retry: the failed nodes' pods (and their task results) go first, so the controller
/// cannot read the old attempt's outcome for the re-run nodes; then the status is rewritten.
async fn retry(
    client: &kube::Client,
    api: &Api<Workflow>,
    namespace: &str,
    ident: &str,
    params: &[(String, String)],
    now: jiff::Timestamp,
) -> Result<Workflow, ApiError> {
    let name = ident.rsplit('/').next().unwrap_or(ident);
    let current = api
        .get(name)
        .await
        .map_err(|e| kube_error(format!("get workflow {ident}"), e))?;
    let plan = actions::retry(&current, params, now).map_err(action_error)?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    for pod in &plan.pods_to_delete {
        match pods.delete(pod, &dp).await {
            Ok(_) | Err(kube::Error::Api(_)) => {}
            Err(e) => return Err(kube_error(format!("delete pod {namespace}/{pod}"), e)),
        }
    }
    let kept: BTreeSet<String> = plan
        .workflow
        .status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let removed: Vec<String> = current
        .status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .map(|n| n.keys().filter(|k| !kept.contains(*k)).cloned().collect())
        .unwrap_or_default();
    let results: Api<WorkflowTaskResult> = Api::namespaced(client.clone(), namespace);
    for id in &removed {
        let _ = results.delete(id, &DeleteParams::default()).await;
    }
    // Bounded wait for the pods to be gone (they have finished; deletion is quick).
    for _ in 0..50 {
        let mut left = 0;
        for pod in &plan.pods_to_delete {
            if pods
                .get_opt(pod)
                .await
                .map_err(|e| kube_error(format!("get pod {namespace}/{pod}"), e))?
                .is_some()
            {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, written) = update_with(api, ident, |wf| {
        actions::retry(wf, params, now)
            .map(|r| r.workflow)
            .map_err(action_error)
    })
    .await?;
    Ok(written)
}

/// Query of the log route.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// Only this node.
    #[serde(rename = "nodeId")]
    node_id: Option<String>,
    /// Keep streaming until the workflow completes.
    #[serde(default)]
    follow: bool,
}

fn ndjson(pod: &str, node: &str, content: &str) -> Bytes {
    let mut line =
        json!({"result": {"podName": pod, "nodeId": node, "content": content}}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Pod nodes of a workflow: (node id, pod name).
fn pod_nodes(wf: &Workflow) -> Vec<(String, String)> {
    let name = wf.metadata.name.clone().unwrap_or_default();
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .map(|nodes| {
            nodes
                .iter()
                .filter(|(_, n)| n.node_type.as_deref() == Some("Pod"))
                .map(|(id, n)| {
                    let template = n
                        .template_ref
                        .as_ref()
                        .and_then(|r| r.template.clone())
                        .or_else(|| n.template_name.clone())
                        .unwrap_or_default();
                    let pod = crate::workflow::node::pod_name(
                        &name,
                        &template,
                        n.name.as_deref().unwrap_or_default(),
                    );
                    (id.clone(), pod)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /api/v1/workflows/{namespace}/{name}/log`: newline-delimited JSON
/// `{"result": {"podName", "nodeId", "content"}}`, one line per log line; live pods first-hand,
/// collected ones from the archive. `?follow=true` streams until the workflow completes.
pub async fn logs(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let ident = format!("{namespace}/{name}");
    authorize(&state, &principal, "workflows", "get", ident.clone())?;
    let client = state.kube()?;
    let archive = archive(&state)?.clone();
    let live = objects::get_workflow(&client, &namespace, &name).await?;
    let wf = match live.clone() {
        Some(wf) => wf,
        None => archive
            .get_by_name(&namespace, &name)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map(|a| a.workflow)
            .ok_or_else(|| ApiError::NotFound(format!("workflow {ident} not found")))?,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let node_filter = q.node_id.clone();
    let follow = q.follow && live.is_some();
    tokio::spawn(async move {
        let uid = wf.metadata.uid.clone().unwrap_or_default();
        let archived: BTreeMap<String, crate::workflow::archive::NodeLog> = archive
            .logs(&uid)
            .unwrap_or_default()
            .into_iter()
            .map(|l| (l.node_id.clone(), l))
            .collect();
        let mut sent: BTreeSet<String> = BTreeSet::new();
        let mut current = wf;
        loop {
            let mut followers = Vec::new();
            for (node, pod) in pod_nodes(&current) {
                if node_filter.as_ref().is_some_and(|n| n != &node) || sent.contains(&node) {
                    continue;
                }
                // A pod being deleted (its workflow was deleted, or podGC) may already have
                // lost its log: the archive's copy is read instead when there is one.
                let phase = match pods.get_opt(&pod).await {
                    Ok(Some(p))
                        if !(p.metadata.deletion_timestamp.is_some()
                            && archived.contains_key(&node)) =>
                    {
                        Some(p.status.and_then(|s| s.phase).unwrap_or_default())
                    }
                    _ => None,
                };
                if let Some(phase) = phase {
                    let params = LogParams {
                        container: Some(MAIN_CONTAINER.into()),
                        ..Default::default()
                    };
                    match phase.as_str() {
                        // Nothing printed yet; looked at again on the next pass.
                        "Pending" | "" => continue,
                        "Running" if follow => {
                            sent.insert(node.clone());
                            followers.push(follow_pod(pods.clone(), pod, node, tx.clone()));
                            continue;
                        }
                        // Without follow a running pod shows what it printed so far.
                        "Running" => {}
                        _ => {
                            sent.insert(node.clone());
                        }
                    }
                    // A log that cannot be read live (the container was just removed) is
                    // served from the archive when the archive has it.
                    let (pod_name, text) = match pods.logs(&pod, &params).await {
                        Ok(text) => (pod.clone(), text),
                        Err(e) => match archived.get(&node) {
                            Some(log) => (log.pod_name.clone(), log.content.clone()),
                            None => {
                                tracing::debug!(pod = %pod, error = %e, "pod log not readable");
                                (pod.clone(), String::new())
                            }
                        },
                    };
                    for l in text.lines() {
                        if tx.send(ndjson(&pod_name, &node, l)).await.is_err() {
                            return;
                        }
                    }
                } else if let Some(log) = archived.get(&node) {
                    sent.insert(node.clone());
                    for l in log.content.lines() {
                        if tx.send(ndjson(&log.pod_name, &node, l)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            for f in followers {
                tokio::spawn(f);
            }
            let done =
                actions::is_completed(current.status.as_ref().and_then(|s| s.phase.as_deref()));
            if !follow || done || tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            match Api::<Workflow>::namespaced(pods.clone().into_client(), &namespace)
                .get_opt(&current.name_any())
                .await
            {
                Ok(Some(wf)) => current = wf,
                _ => return,
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Streams one running pod's `main` log to `tx` until it ends.
async fn follow_pod(
    pods: Api<Pod>,
    pod: String,
    node: String,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let params = LogParams {
        container: Some(MAIN_CONTAINER.into()),
        follow: true,
        ..Default::default()
    };
    let Ok(reader) = pods.log_stream(&pod, &params).await else {
        return;
    };
    let mut lines = reader.lines();
    while let Some(Ok(line)) = lines.next().await {
        if tx.send(ndjson(&pod, &node, &line)).await.is_err() {
            return;
        }
    }
}

/// Query of the archived-workflows list.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveQuery {
    /// Only this namespace.
    namespace: Option<String>,
    /// Only names with this prefix.
    name_prefix: Option<String>,
    /// Label selector.
    #[serde(alias = "listOptions.labelSelector")]
    label_selector: Option<String>,
}

/// `GET /api/v1/archived-workflows`: summaries the caller may `get`, newest first.
pub async fn archived_list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Query(q): Query<ArchiveQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = ArchiveFilter {
        namespace: q.namespace,
        name_prefix: q.name_prefix,
        labels: parse_selector(q.label_selector.as_deref().unwrap_or_default())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
    };
    let items: Vec<_> = archive(&state)?
        .list(&filter)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .into_iter()
        .filter(|s| {
            state.auth().authorize(
                &principal,
                "workflows",
                "get",
                &format!("{}/{}", s.namespace, s.name),
            )
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/archived-workflows/{uid}`: the archived Workflow as it finished.
pub async fn archived_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(uid): Path<String>,
) -> Result<Json<Workflow>, ApiError> {
    let rec = archive(&state)?
        .get(&uid)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("archived workflow {uid} not found")))?;
    authorize(
        &state,
        &principal,
        "workflows",
        "get",
        format!("{}/{}", rec.summary.namespace, rec.summary.name),
    )?;
    Ok(Json(rec.workflow))
}

/// `DELETE /api/v1/archived-workflows/{uid}`.
pub async fn archived_delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(uid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let archive = archive(&state)?;
    let rec = archive
        .get(&uid)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| ApiError::NotFound(format!("archived workflow {uid} not found")))?;
    authorize(
        &state,
        &principal,
        "workflows",
        "delete",
        format!("{}/{}", rec.summary.namespace, rec.summary.name),
    )?;
    archive
        .delete(&uid)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({})))
}

/// `GET /api/v1/workflow-templates/{namespace}`.
pub async fn templates_list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let api: Api<WorkflowTemplate> = Api::namespaced(state.kube()?, &namespace);
    let mut items: Vec<WorkflowTemplate> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_error(format!("list workflowtemplates in {namespace}"), e))?
        .items
        .into_iter()
        .filter(|t| {
            state.auth().authorize(
                &principal,
                "workflowtemplates",
                "get",
                &format!("{namespace}/{}", t.name_any()),
            )
        })
        .collect();
    items.sort_by_key(|t| t.name_any());
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/workflow-templates/{namespace}/{name}`.
pub async fn templates_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<WorkflowTemplate>, ApiError> {
    authorize(
        &state,
        &principal,
        "workflowtemplates",
        "get",
        format!("{namespace}/{name}"),
    )?;
    let api: Api<WorkflowTemplate> = Api::namespaced(state.kube()?, &namespace);
    api.get(&name)
        .await
        .map(Json)
        .map_err(|e| kube_error(format!("workflowtemplate {namespace}/{name}"), e))
}

/// `POST /api/v1/workflow-templates/{namespace}`: body `{"template": {...}}` (Argo's) or the
/// WorkflowTemplate; validated as a Workflow would be.
pub async fn templates_create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<WorkflowTemplate>), ApiError> {
    let value = match body.get("template") {
        Some(t) => t.clone(),
        None => body,
    };
    let mut tmpl: WorkflowTemplate = serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("body: expected a WorkflowTemplate: {e}")))?;
    let name = tmpl.metadata.name.clone().ok_or_else(|| {
        ApiError::BadRequest("workflowtemplate metadata.name: expected a name".into())
    })?;
    authorize(
        &state,
        &principal,
        "workflowtemplates",
        "create",
        format!("{namespace}/{name}"),
    )?;
    tmpl.metadata.namespace = Some(namespace.clone());
    let client = state.kube()?;
    let lookup = prefetch(&client, &namespace).await?;
    let as_wf = Workflow {
        metadata: tmpl.metadata.clone(),
        spec: tmpl.spec.clone(),
        ..Default::default()
    };
    // A template without an entrypoint is a library of templates: Argo validates those
    // without the entrypoint rules.
    if as_wf.spec.entrypoint.is_some() {
        check_workflow(&as_wf, &lookup)?;
    }
    let api: Api<WorkflowTemplate> = Api::namespaced(client, &namespace);
    let created = api
        .create(&PostParams::default(), &tmpl)
        .await
        .map_err(|e| kube_error(format!("create workflowtemplate {namespace}/{name}"), e))?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/v1/cron-workflows/{namespace}`.
pub async fn cron_list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let api: Api<CronWorkflow> = Api::namespaced(state.kube()?, &namespace);
    let mut items: Vec<CronWorkflow> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| kube_error(format!("list cronworkflows in {namespace}"), e))?
        .items
        .into_iter()
        .filter(|c| {
            state.auth().authorize(
                &principal,
                "cronworkflows",
                "get",
                &format!("{namespace}/{}", c.name_any()),
            )
        })
        .collect();
    items.sort_by_key(|c| c.name_any());
    Ok(Json(json!({ "items": items })))
}

/// `GET /api/v1/cron-workflows/{namespace}/{name}`.
pub async fn cron_get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name)): Path<(String, String)>,
) -> Result<Json<CronWorkflow>, ApiError> {
    authorize(
        &state,
        &principal,
        "cronworkflows",
        "get",
        format!("{namespace}/{name}"),
    )?;
    let api: Api<CronWorkflow> = Api::namespaced(state.kube()?, &namespace);
    api.get(&name)
        .await
        .map(Json)
        .map_err(|e| kube_error(format!("cronworkflow {namespace}/{name}"), e))
}

/// `PUT /api/v1/cron-workflows/{namespace}/{name}/{suspend|resume}`: sets `spec.suspend`.
pub async fn cron_action(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((namespace, name, verb)): Path<(String, String, String)>,
) -> Result<Json<CronWorkflow>, ApiError> {
    let suspend = match verb.as_str() {
        "suspend" => true,
        "resume" => false,
        other => {
            return Err(ApiError::NotFound(format!(
                "no cronworkflow action {other:?}: expected suspend or resume"
            )));
        }
    };
    authorize(
        &state,
        &principal,
        "cronworkflows",
        "update",
        format!("{namespace}/{name}"),
    )?;
    let api: Api<CronWorkflow> = Api::namespaced(state.kube()?, &namespace);
    let patch = json!({"spec": {"suspend": suspend}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(Json)
        .map_err(|e| kube_error(format!("{verb} cronworkflow {namespace}/{name}"), e))
}

/// Query of the events stream.
#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    /// Only this workflow.
    name: Option<String>,
}

/// `GET /api/v1/workflow-events/{namespace}`: server-sent events of Workflow changes the caller
/// may `get`, each `{"result": {"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}}` as
/// Argo's watch stream; `?name=` narrows to one workflow.
pub async fn events(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(namespace): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let api: Api<Workflow> = Api::namespaced(state.kube()?, &namespace);
    let cfg = match &q.name {
        Some(n) => watcher::Config::default().fields(&format!("metadata.name={n}")),
        None => watcher::Config::default(),
    };
    let events = watcher(api, cfg).filter_map(move |ev| {
        let state = state.clone();
        let principal = principal.clone();
        async move {
            let (kind, wf) = match ev {
                Ok(watcher::Event::InitApply(w)) => ("ADDED", w),
                Ok(watcher::Event::Apply(w)) => ("MODIFIED", w),
                Ok(watcher::Event::Delete(w)) => ("DELETED", w),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "workflow watch");
                    return None;
                }
            };
            let object = format!("{}/{}", wf.namespace().unwrap_or_default(), wf.name_any());
            if !state
                .auth()
                .authorize(&principal, "workflows", "get", &object)
            {
                return None;
            }
            let data = json!({"result": {"type": kind, "object": wf}});
            Some(Ok(Event::default().data(data.to_string())))
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests;
