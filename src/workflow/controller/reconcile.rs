//! One reconcile of one Workflow: the I/O half of the controller (see the parent module for the
//! invariants). Decisions come from the engine (the operator) and from `decide`.
//!
//! Latency: the status is written once, then the pods the operator asked for are created
//! concurrently (a DAG level's ten pods in one round trip instead of ten); the `completed`
//! labels and the archive's log reads are concurrent too. Every apiserver call is counted and
//! timed (`cairn_workflow_api_calls_total`, `cairn_workflow_api_seconds`, by `call`), and so is
//! the operator (`cairn_workflow_operate_seconds`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::StreamExt;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::ObjectRef;

use super::decide::{self, GcPod, PodGc, TtlDecision};
use super::{ControllerError, Decision, Shared, ShellAction, key, to_std};
use crate::workflow::actions::{LABEL_ARCHIVING_STATUS, is_completed};
use crate::workflow::archive::LogInput;
use crate::workflow::executor::MAIN_CONTAINER;
use crate::workflow::node::{
    ANNOTATION_NODE_ID, LABEL_COMPLETED, LABEL_WORKFLOW, PodPhase, PodRequest,
};
use crate::workflow::types::{Workflow, WorkflowTaskResult};

/// Largest log read from a pod for the archive (the archive keeps its end): bounds memory for a
/// step that printed gigabytes.
const LOG_READ_LIMIT: i64 = 64 * 1024 * 1024;

/// Field manager of the controller's writes.
const MANAGER: &str = "cairn-workflow-controller";

/// Apiserver calls of one reconcile in flight at once (pod creates of a DAG level, labels, log
/// reads): enough for a wide level in one round trip, few enough not to flood the apiserver.
const CONCURRENT_CALLS: usize = 16;

/// When a refused status write (409) is looked at again if no watch event comes first: the
/// newer object is on its way through the watch, which queues the key by itself.
const CONFLICT_RECHECK: Duration = Duration::from_secs(1);

/// Runs one apiserver call, counting and timing it under `call`.
async fn timed<T>(
    call: &'static str,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    let started = Instant::now();
    let out = fut.await;
    let result = match &out {
        Ok(_) => "ok",
        Err(kube::Error::Api(s)) if s.code == 409 => "conflict",
        Err(kube::Error::Api(s)) if s.code == 404 => "not_found",
        Err(_) => "error",
    };
    metrics::histogram!("cairn_workflow_api_seconds", "call" => call)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("cairn_workflow_api_calls_total", "call" => call, "result" => result)
        .increment(1);
    out
}

/// Reconciles `k` (`namespace/name`); returns when to look again.
pub(super) async fn reconcile(
    shared: &Shared,
    k: &str,
) -> Result<Option<Duration>, ControllerError> {
    let Some((namespace, name)) = k.split_once('/') else {
        return Ok(None);
    };
    let Some(mut wf) = current(shared, k, namespace, name) else {
        forget(shared, k);
        return Ok(None);
    };
    if wf.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let now = Timestamp::now();
    let pods = pods_of(shared, namespace, name);
    let results = results_of(shared, namespace, name);
    let (mut observations, report_recheck) = decide::observations(&pods, &results, now);
    if let Some(failed) = lock(&shared.failures).get(k) {
        for (node, obs) in failed {
            // A pod that exists after all (created by an earlier attempt) is what counts.
            observations
                .entry(node.clone())
                .or_insert_with(|| obs.clone());
        }
    }
    let resources = lock(&shared.resources).get(k).cloned().unwrap_or_default();
    let mut requeue: Vec<Option<Duration>> = vec![report_recheck.map(to_std)];

    let old_phase = wf.status.as_ref().and_then(|s| s.phase.clone());
    if !is_completed(old_phase.as_deref()) {
        // Argo's `.status.artifactRepositoryRef`, resolved before the first operation; the
        // operator keeps it.
        crate::workflow::artifacts::cluster::record(&shared.client, &mut wf)
            .await
            .map_err(|e| {
                ControllerError::kube(format!("read the artifact repository of {k}"), e)
            })?;
        // What the caches miss (an object created just before the Workflow), read through.
        let fetched =
            super::readthrough::fill(&shared.client, &wf, &shared.caches, namespace).await?;
        let no_secrets = BTreeMap::new();
        let through = super::readthrough::PassLookup {
            base: &shared.caches,
            namespace,
            fetched: &fetched,
            secrets: &no_secrets,
        };
        // `valueFrom.secretKeyRef` parameters: the referenced Secrets, read for this pass only.
        let wanted = super::secrets::refs(&wf, &through, super::secrets::RefKind::Secret);
        let secret_values = if wanted.is_empty() {
            BTreeMap::new()
        } else {
            super::secrets::fetch(&shared.client, namespace, &wanted).await?
        };
        let lookup = super::readthrough::PassLookup {
            secrets: &secret_values,
            ..through
        };
        let started = Instant::now();
        let decision: Decision = super::locks::operate(shared, k, &wf, |locks| {
            shared
                .engine
                .operate(&wf, &observations, &resources, &lookup, now, locks)
        });
        metrics::histogram!("cairn_workflow_operate_seconds")
            .record(started.elapsed().as_secs_f64());
        let mut labels = wf.metadata.labels.clone().unwrap_or_default();
        let labels_changed = decide::workflow_labels(&mut labels, decision.status.phase.as_deref());
        let status_changed = wf.status.as_ref() != Some(&decision.status);
        // The pass that starts the workflow: `workflowMetadata` goes onto the object with the
        // first status, the podDisruptionBudget is created after it.
        let just_started = matches!(old_phase.as_deref(), None | Some("") | Some("Pending"))
            && decision.status.phase.as_deref() == Some("Running");
        let mut annotations = wf.metadata.annotations.clone().unwrap_or_default();
        let metadata_changed = just_started
            && match crate::workflow::operator::metadata::for_start(&wf, &lookup) {
                Ok(md) => md.apply(&mut labels, &mut annotations),
                Err(e) => {
                    tracing::warn!(workflow = %k, error = %e, "workflowMetadata not applied");
                    false
                }
            };
        if status_changed || labels_changed || metadata_changed {
            let mut next = wf.clone();
            next.status = Some(decision.status.clone());
            next.metadata.labels = Some(labels);
            if metadata_changed {
                next.metadata.annotations = Some(annotations);
            }
            match write(shared, k, &wf, &next).await? {
                Some(written) => wf = written,
                // Conflict: the newer object is on its way through the watch (which queues the
                // key); deciding again before it arrives would only be refused again.
                None => return Ok(Some(CONFLICT_RECHECK)),
            }
        }
        if just_started {
            super::pdb::ensure(shared, k, &wf).await;
        }
        execute_all(shared, k, &wf, &decision.actions).await?;
        requeue.push(decision.requeue_after.map(to_std));
    }
    mark_completed_pods(shared, &wf, &pods).await?;
    let completed = is_completed(wf.status.as_ref().and_then(|s| s.phase.as_deref()));
    // Archive before collecting: the archive reads every pod's log while the pods exist.
    if completed {
        // A finished workflow is never operated again: its resource observations are done.
        lock(&shared.resources).remove(k);
        // Claims are collected once, on the pass that archives (an error retries both).
        if !archived(shared, &wf) {
            super::pdb::remove(shared, k, &wf).await?;
            collect_claims(shared, &wf).await?;
            archive(shared, k, &mut wf, &pods, now).await?;
        }
    }
    requeue.push(collect_pods(shared, &wf, &pods, now).await?);
    if completed {
        requeue.push(apply_ttl(shared, &wf, now).await?);
    }
    Ok(requeue.into_iter().flatten().min())
}

pub(super) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The Workflow to decide from: the store's, unless it is still the version our last write
/// replaced (the watch has not delivered the write yet), in which case the written object.
pub(super) fn current(shared: &Shared, k: &str, namespace: &str, name: &str) -> Option<Workflow> {
    let stored = shared
        .caches
        .workflows
        .get(&ObjectRef::new(name).within(namespace))
        .map(|w| (*w).clone());
    lock(&shared.written).resolve(k, stored)
}

fn forget(shared: &Shared, k: &str) {
    super::locks::release_deleted(shared, k);
    lock(&shared.written).forget(k);
    lock(&shared.failures).remove(k);
    lock(&shared.resources).remove(k);
}

pub(super) fn pods_of(shared: &Shared, namespace: &str, name: &str) -> Vec<Pod> {
    shared
        .caches
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace)
                && p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_WORKFLOW))
                    .map(String::as_str)
                    == Some(name)
        })
        .map(|p| (*p).clone())
        .collect()
}

fn results_of(shared: &Shared, namespace: &str, name: &str) -> Vec<WorkflowTaskResult> {
    shared
        .caches
        .results
        .state()
        .into_iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == Some(namespace)
                && r.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_WORKFLOW))
                    .map(String::as_str)
                    == Some(name)
        })
        .map(|r| (*r).clone())
        .collect()
}

/// Replaces the Workflow with `next` under `old`'s resourceVersion. `Ok(None)` on a conflict.
async fn write(
    shared: &Shared,
    k: &str,
    old: &Workflow,
    next: &Workflow,
) -> Result<Option<Workflow>, ControllerError> {
    let namespace = old.metadata.namespace.clone().unwrap_or_default();
    let name = old.metadata.name.clone().unwrap_or_default();
    let wfs: Api<Workflow> = api_for(shared, &namespace);
    match timed(
        "status_replace",
        wfs.replace(&name, &PostParams::default(), next),
    )
    .await
    {
        Ok(written) => {
            lock(&shared.written).wrote(
                k,
                old.metadata.resource_version.as_deref(),
                written.clone(),
            );
            let phase = written.status.as_ref().and_then(|s| s.phase.clone());
            tracing::debug!(workflow = %k, phase = phase.as_deref().unwrap_or(""), "status written");
            Ok(Some(written))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            lock(&shared.written).forget(k);
            tracing::debug!(workflow = %k, "status write conflict; will decide again");
            Ok(None)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(ControllerError::kube(format!("update workflow {k}"), e)),
    }
}

/// Executes a decision's actions in order; each run of consecutive pod creations goes out
/// concurrently (distinct pods under deterministic names: their order does not matter).
async fn execute_all(
    shared: &Shared,
    k: &str,
    wf: &Workflow,
    actions: &[ShellAction],
) -> Result<(), ControllerError> {
    let mut rest = actions;
    while let Some(first) = rest.first() {
        let creates: Vec<&PodRequest> = rest
            .iter()
            .map_while(|a| match a {
                ShellAction::CreatePod(req) => Some(&**req),
                _ => None,
            })
            .collect();
        if creates.is_empty() {
            execute(shared, wf, first).await?;
            rest = &rest[1..];
        } else {
            rest = &rest[creates.len()..];
            create_pods(shared, k, wf, &creates).await?;
        }
    }
    Ok(())
}

async fn execute(
    shared: &Shared,
    wf: &Workflow,
    action: &ShellAction,
) -> Result<(), ControllerError> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let k = key(&namespace, wf.metadata.name.as_deref().unwrap_or_default());
    match action {
        ShellAction::CreatePod(req) => create_pods(shared, &k, wf, &[&**req]).await?,
        ShellAction::Resource(req) => {
            super::resource::execute(shared, &k, req).await?;
        }
        ShellAction::DeletePod { pod_name, .. } => {
            let pods: Api<Pod> = api_for(shared, &namespace);
            delete_pod(&pods, &namespace, pod_name).await?;
        }
    }
    Ok(())
}

/// A namespaced API of the controller's client.
fn api_for<K>(shared: &Shared, namespace: &str) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(shared.client.clone(), namespace)
}

/// The service account a step's pod runs as.
fn service_account(req: &PodRequest) -> String {
    req.spec
        .service_account_name
        .clone()
        .or_else(|| {
            req.template
                .extra
                .get("serviceAccountName")
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "default".to_owned())
}

/// Creates the pods of `reqs` concurrently, after what they need (the executor's RBAC per
/// service account, the workflow's claims). Every create is attempted; the first error is
/// returned (the retry replays the others idempotently).
async fn create_pods(
    shared: &Shared,
    k: &str,
    wf: &Workflow,
    reqs: &[&PodRequest],
) -> Result<(), ControllerError> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    if shared.settings.manage_executor_rbac {
        let accounts: std::collections::BTreeSet<String> =
            reqs.iter().map(|r| service_account(r)).collect();
        for sa in accounts {
            ensure_rbac(shared, &namespace, &sa).await?;
        }
    }
    // The claims are the workflow's, the same for every pod: once per reconcile.
    if let Some(req) = reqs
        .iter()
        .find(|r| r.spec.volume_claim_templates.is_some())
    {
        ensure_claims(shared, wf, req).await?;
    }
    let pods: Api<Pod> = api_for(shared, &namespace);
    // The futures are built first: a stream `map` over borrowed requests would make the
    // worker's future fail the `Send` check of `tokio::spawn` (higher-ranked lifetimes).
    let creates: Vec<_> = reqs
        .iter()
        .map(|req| create_pod(shared, k, wf, &pods, &namespace, req))
        .collect();
    all_bounded(creates).await
}

async fn create_pod(
    shared: &Shared,
    k: &str,
    wf: &Workflow,
    pods: &Api<Pod>,
    namespace: &str,
    req: &PodRequest,
) -> Result<(), ControllerError> {
    // The workflow's artifact repository (or why it cannot be used) goes into the request.
    let built = crate::workflow::artifacts::cluster::prepare(&shared.client, wf, req)
        .await
        .and_then(|req| {
            crate::workflow::pod::build_pod(&req, &shared.settings.pods).map_err(|e| e.to_string())
        });
    let pod = match built {
        Ok(pod) => pod,
        Err(e) => {
            record_failure(shared, k, &req.node_id, &req.pod_name, e);
            shared.queue.add(k);
            return Ok(());
        }
    };
    match timed("pod_create", pods.create(&PostParams::default(), &pod)).await {
        Ok(_) => {
            metrics::counter!("cairn_workflow_pods_created_total").increment(1);
            tracing::debug!(workflow = %k, pod = %req.pod_name, "pod created");
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        // The apiserver refused this pod (admission, quota, invalid spec, forbidden): the node
        // fails with its message. Other errors are transient: retried.
        Err(kube::Error::Api(s)) if matches!(s.code, 400 | 403 | 422) => {
            record_failure(shared, k, &req.node_id, &req.pod_name, s.message.clone());
            shared.queue.add(k);
        }
        Err(e) => {
            return Err(ControllerError::kube(
                format!("create pod {namespace}/{}", req.pod_name),
                e,
            ));
        }
    }
    Ok(())
}

/// The claims of `spec.volumeClaimTemplates`, named `<workflow>-<template name>` as Argo names
/// them, created before the first pod that mounts them (AlreadyExists is success, so a replay
/// or a second pod is harmless), owned by the Workflow so deleting it removes them.
async fn ensure_claims(
    shared: &Shared,
    wf: &Workflow,
    req: &PodRequest,
) -> Result<(), ControllerError> {
    let Some(templates) = req.spec.volume_claim_templates.as_ref() else {
        return Ok(());
    };
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let api: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(shared.client.clone(), &namespace);
    for claim in claim_objects(wf, templates) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        match timed("claim_create", api.create(&PostParams::default(), &claim)).await {
            Ok(_) => tracing::debug!(workflow = %req.workflow_name, claim = %name, "claim created"),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                return Err(ControllerError::kube(
                    format!("create persistentvolumeclaim {namespace}/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// The PersistentVolumeClaims of a workflow's `volumeClaimTemplates` (pure).
pub(super) fn claim_objects(
    wf: &Workflow,
    templates: &[serde_json::Value],
) -> Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim> {
    let wf_name = wf.metadata.name.clone().unwrap_or_default();
    let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Workflow".into(),
        name: wf_name.clone(),
        uid: wf.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    templates
        .iter()
        .filter_map(|t| {
            let short = t.pointer("/metadata/name")?.as_str()?;
            let mut claim: k8s_openapi::api::core::v1::PersistentVolumeClaim =
                serde_json::from_value(t.clone()).ok()?;
            claim.status = None;
            claim.metadata.name = Some(format!("{wf_name}-{short}"));
            claim.metadata.namespace = wf.metadata.namespace.clone();
            claim.metadata.resource_version = None;
            claim.metadata.uid = None;
            claim
                .metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert(LABEL_WORKFLOW.to_owned(), wf_name.clone());
            claim.metadata.owner_references = Some(vec![owner.clone()]);
            Some(claim)
        })
        .collect()
}

/// Deletes the workflow's claims once it completes, per `volumeClaimGC.strategy`:
/// `OnWorkflowCompletion` (Argo's default) or `OnWorkflowSuccess` (kept for inspection when
/// the workflow did not succeed). A claim still mounted is removed by Kubernetes once its pods
/// are gone (pvc-protection).
async fn collect_claims(shared: &Shared, wf: &Workflow) -> Result<(), ControllerError> {
    let Some(templates) = wf.spec.volume_claim_templates.as_ref() else {
        return Ok(());
    };
    let strategy = wf
        .spec
        .extra
        .get("volumeClaimGC")
        .and_then(|g| g.get("strategy"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("OnWorkflowCompletion");
    let phase = wf.status.as_ref().and_then(|s| s.phase.as_deref());
    if strategy == "OnWorkflowSuccess" && phase != Some("Succeeded") {
        return Ok(());
    }
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let api: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(shared.client.clone(), &namespace);
    for claim in claim_objects(wf, templates) {
        let name = claim.metadata.name.unwrap_or_default();
        match timed("claim_delete", api.delete(&name, &DeleteParams::default())).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(ControllerError::kube(
                    format!("delete persistentvolumeclaim {namespace}/{name}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

fn record_failure(shared: &Shared, k: &str, node_id: &str, pod_name: &str, message: String) {
    tracing::info!(workflow = %k, pod = %pod_name, reason = %message, "pod could not be created");
    lock(&shared.failures)
        .entry(k.to_owned())
        .or_default()
        .insert(
            node_id.to_owned(),
            decide::failed_creation(pod_name, message, Timestamp::now()),
        );
}

async fn delete_pod(pods: &Api<Pod>, namespace: &str, name: &str) -> Result<(), ControllerError> {
    match timed("pod_delete", pods.delete(name, &DeleteParams::default())).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ControllerError::kube(
            format!("delete pod {namespace}/{name}"),
            e,
        )),
    }
}

/// Creates (server-side apply) the executor's Role and RoleBinding once per namespace and
/// service account for the life of the process (concurrent workers wait for the first apply).
async fn ensure_rbac(shared: &Shared, namespace: &str, sa: &str) -> Result<(), ControllerError> {
    let id = (namespace.to_owned(), sa.to_owned());
    let mut done = shared.rbac_done.lock().await;
    if done.contains(&id) {
        return Ok(());
    }
    let (role, binding) = crate::workflow::pod::executor_rbac(namespace, sa);
    let params = PatchParams::apply(MANAGER).force();
    let roles: Api<k8s_openapi::api::rbac::v1::Role> =
        Api::namespaced(shared.client.clone(), namespace);
    let role_name = role.metadata.name.clone().unwrap_or_default();
    timed(
        "rbac_apply",
        roles.patch(&role_name, &params, &Patch::Apply(&role)),
    )
    .await
    .map_err(|e| ControllerError::kube(format!("apply role {namespace}/{role_name}"), e))?;
    let bindings: Api<k8s_openapi::api::rbac::v1::RoleBinding> =
        Api::namespaced(shared.client.clone(), namespace);
    let binding_name = binding.metadata.name.clone().unwrap_or_default();
    timed(
        "rbac_apply",
        bindings.patch(&binding_name, &params, &Patch::Apply(&binding)),
    )
    .await
    .map_err(|e| {
        ControllerError::kube(format!("apply rolebinding {namespace}/{binding_name}"), e)
    })?;
    done.insert(id);
    Ok(())
}

fn node_id_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_NODE_ID)
        .map(String::as_str)
}

fn node_completed(wf: &Workflow, node_id: &str) -> bool {
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .and_then(|n| n.get(node_id))
        .and_then(|n| n.phase.as_deref())
        .is_some_and(|p| matches!(p, "Succeeded" | "Failed" | "Error" | "Skipped" | "Omitted"))
}

/// Labels `workflows.argoproj.io/completed=true` on pods whose node the status completed.
async fn mark_completed_pods(
    shared: &Shared,
    wf: &Workflow,
    pods: &[Pod],
) -> Result<(), ControllerError> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = api_for(shared, &namespace);
    let unlabelled = pods.iter().filter(|pod| {
        let done = node_id_of(pod).is_some_and(|id| node_completed(wf, id));
        let labelled = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_COMPLETED))
            .is_some_and(|v| v == "true");
        done && !labelled
    });
    let label = |pod: &Pod| {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api = &api;
        let namespace = &namespace;
        async move {
            let patch = serde_json::json!({"metadata": {"labels": {LABEL_COMPLETED: "true"}}});
            match timed(
                "pod_completed_label",
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(ControllerError::kube(
                    format!("label pod {namespace}/{name}"),
                    e,
                )),
            }
        }
    };
    all_bounded(unlabelled.map(label).collect()).await
}

/// Runs `calls` with at most [`CONCURRENT_CALLS`] in flight, every one to its end; the first
/// error, if any.
async fn all_bounded<F>(calls: Vec<F>) -> Result<(), ControllerError>
where
    F: Future<Output = Result<(), ControllerError>>,
{
    let outcomes: Vec<Result<(), ControllerError>> = futures::stream::iter(calls)
        .buffer_unordered(CONCURRENT_CALLS)
        .collect()
        .await;
    outcomes.into_iter().collect()
}

fn gc_pod(pod: &Pod, now: Timestamp) -> GcPod {
    let obs = crate::workflow::pod::observe(pod, None);
    GcPod {
        name: pod.metadata.name.clone().unwrap_or_default(),
        phase: obs.phase,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        finished_at: obs.finished_at.or(matches!(
            obs.phase,
            PodPhase::Succeeded | PodPhase::Failed | PodPhase::Error
        )
        .then_some(now)),
    }
}

/// Applies `podGC`; logs of collected pods are archived first.
async fn collect_pods(
    shared: &Shared,
    wf: &Workflow,
    pods: &[Pod],
    now: Timestamp,
) -> Result<Option<Duration>, ControllerError> {
    let k = key(
        wf.metadata.namespace.as_deref().unwrap_or_default(),
        wf.metadata.name.as_deref().unwrap_or_default(),
    );
    let Some(gc) = PodGc::from_spec(&k, wf.spec.pod_gc.as_ref())? else {
        return Ok(None);
    };
    let status = wf.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    // Only pods whose node the status has recorded as complete may go: their outcome is kept.
    let candidates: Vec<GcPod> = pods
        .iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && (is_completed(phase) || node_id_of(p).is_some_and(|id| node_completed(wf, id)))
        })
        .map(|p| gc_pod(p, now))
        .collect();
    let plan = decide::gc_plan(
        &gc,
        phase,
        status.and_then(|s| s.finished_at()),
        &candidates,
        now,
    );
    if plan.delete.is_empty() {
        return Ok(plan.recheck_after.map(to_std));
    }
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let doomed: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .name
                .as_ref()
                .is_some_and(|n| plan.delete.contains(n))
        })
        .collect();
    // Once the workflow is archived its logs are in; before that, save these pods' logs now.
    if !archived(shared, wf)
        && let Some(uid) = wf.metadata.uid.as_deref()
    {
        let logs = read_logs(&api, doomed.iter().copied()).await;
        shared
            .archive
            .put_logs(uid, logs)
            .await
            .map_err(|source| ControllerError::Archive {
                workflow: k.clone(),
                source,
            })?;
    }
    for pod in doomed {
        let name = pod.metadata.name.clone().unwrap_or_default();
        delete_pod(&api, &namespace, &name).await?;
        tracing::debug!(workflow = %k, pod = %name, "pod collected (podGC)");
    }
    Ok(plan.recheck_after.map(to_std))
}

/// Whether this cairn's archive holds `wf` as it is now (same uid, same finish). Decided from
/// the local archive, not from the `workflow-archiving-status` label: another controller (a
/// second cairn, Argo) may have set the label, and this archive would then miss the workflow.
fn archived(shared: &Shared, wf: &Workflow) -> bool {
    let Some(uid) = wf.metadata.uid.as_deref() else {
        return false;
    };
    match shared.archive.get(uid) {
        Ok(Some(rec)) => {
            rec.summary.finished_at == wf.status.as_ref().and_then(|s| s.finished_at.clone())
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "reading the archive");
            false
        }
    }
}

/// Most pod logs read at once for the archive: each read holds up to [`LOG_READ_LIMIT`].
const CONCURRENT_LOG_READS: usize = 4;

/// The `main` logs of `pods` (those that have one), read a few at a time, in the pods' order.
async fn read_logs<'a>(api: &Api<Pod>, pods: impl Iterator<Item = &'a Pod>) -> Vec<LogInput> {
    let reads: Vec<_> = pods.map(|pod| read_log(api, pod)).collect();
    let logs: Vec<Option<LogInput>> = futures::stream::iter(reads)
        .buffered(CONCURRENT_LOG_READS)
        .collect()
        .await;
    logs.into_iter().flatten().collect()
}

/// The `main` container's log of a pod, or None when there is none to read.
async fn read_log(api: &Api<Pod>, pod: &Pod) -> Option<LogInput> {
    let name = pod.metadata.name.clone()?;
    let node_id = node_id_of(pod)?.to_owned();
    let params = LogParams {
        container: Some(MAIN_CONTAINER.to_owned()),
        limit_bytes: Some(LOG_READ_LIMIT),
        ..Default::default()
    };
    match timed("pod_logs", api.logs(&name, &params)).await {
        Ok(content) => Some(LogInput {
            node_id,
            pod_name: name,
            container: MAIN_CONTAINER.to_owned(),
            content,
        }),
        Err(e) => {
            // A container that never started has no log; that is not worth failing over. One
            // that ran and cannot be read loses its archived log: that is worth a warning.
            if main_started(pod) {
                tracing::warn!(pod = %name, error = %e, "the log of a step that ran could not be read for the archive");
            } else {
                tracing::debug!(pod = %name, error = %e, "no log to archive");
            }
            None
        }
    }
}

/// Whether the pod's `main` container has started (running or terminated).
fn main_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.name == MAIN_CONTAINER)
        .any(|c| {
            c.state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
        })
}

/// Archives a finished workflow with its pods' logs, then labels it as archived; the caller
/// checks [`archived`] first.
async fn archive(
    shared: &Shared,
    k: &str,
    wf: &mut Workflow,
    pods: &[Pod],
    now: Timestamp,
) -> Result<(), ControllerError> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &namespace);
    let logs = read_logs(&api, pods.iter()).await;
    let mut record = wf.clone();
    record
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_ARCHIVING_STATUS.to_owned(), "Archived".to_owned());
    shared
        .archive
        .archive(&record, logs, now)
        .await
        .map_err(|source| ControllerError::Archive {
            workflow: k.to_owned(),
            source,
        })?;
    // Lineage (issue 7) while the pods exist; it logs and counts its own failures.
    let template_app = crate::lineage::capture::pipeline_template(wf)
        .and_then(|t| {
            use crate::workflow::validate::TemplateLookup as _;
            shared
                .caches
                .workflow_template(&namespace, &t)
                .map(|t| t.metadata)
                .or_else(|| {
                    shared
                        .caches
                        .cluster_workflow_template(&t)
                        .map(|t| t.metadata)
                })
        })
        .and_then(|meta| crate::lineage::capture::tracking_app(&meta));
    crate::lineage::capture::record(
        shared.archive.store(),
        &shared.client,
        wf,
        pods,
        template_app,
    )
    .await;
    let wfs: Api<Workflow> = Api::namespaced(shared.client.clone(), &namespace);
    let patch = serde_json::json!({"metadata": {"labels": {LABEL_ARCHIVING_STATUS: "Archived"}}});
    match timed(
        "archived_label",
        wfs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)),
    )
    .await
    {
        Ok(patched) => {
            lock(&shared.written).wrote(
                k,
                wf.metadata.resource_version.as_deref(),
                patched.clone(),
            );
            *wf = patched;
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(ControllerError::kube(format!("label workflow {k}"), e)),
    }
    metrics::counter!("cairn_workflow_archived_total").increment(1);
    tracing::info!(workflow = %k, "workflow archived");
    Ok(())
}

/// Deletes the Workflow when its `ttlStrategy` says so.
async fn apply_ttl(
    shared: &Shared,
    wf: &Workflow,
    now: Timestamp,
) -> Result<Option<Duration>, ControllerError> {
    let namespace = wf.metadata.namespace.clone().unwrap_or_default();
    let name = wf.metadata.name.clone().unwrap_or_default();
    let k = key(&namespace, &name);
    let status = wf.status.as_ref();
    let decision = decide::ttl_decision(
        &k,
        wf.spec.ttl_strategy.as_ref(),
        status.and_then(|s| s.phase.as_deref()),
        status.and_then(|s| s.finished_at()),
        now,
    )?;
    match decision {
        TtlDecision::Keep => Ok(None),
        TtlDecision::After(d) => Ok(Some(to_std(d))),
        TtlDecision::Delete => {
            let api: Api<Workflow> = Api::namespaced(shared.client.clone(), &namespace);
            match timed(
                "workflow_delete",
                api.delete(&name, &DeleteParams::background()),
            )
            .await
            {
                Ok(_) => {
                    tracing::info!(workflow = %k, "workflow deleted (ttlStrategy)");
                    Ok(None)
                }
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                Err(e) => Err(ControllerError::kube(format!("delete workflow {k}"), e)),
            }
        }
    }
}
