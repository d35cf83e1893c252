//! Execution of resource templates' actions (the I/O half of `workflow::resource`): resolves
//! the manifest's apiVersion/kind by discovery, runs get/create/apply/delete/replace/patch
//! with the dynamic API, and records what it saw as a
//! [`ResourceObservation`] for the operator's next pass.
//!
//! Invariants:
//! - Idempotent, so a restarted controller may replay any action: a create whose object
//!   exists reads the existing object (Argo's executor would fail, but it never replays), a
//!   delete of a missing object succeeds (Argo's `--ignore-not-found`), apply is server-side
//!   apply, forced.
//! - The apiserver's refusal (4xx but 429) is the node's failure, with the server's message;
//!   other errors are transient and retried with the key's backoff.
//! - Observations live in controller memory only: everything durable is in `.status.nodes`,
//!   and a restart re-runs the action and re-reads the live object, never relying on memory.

use jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use serde_json::Value;

use super::{ControllerError, Shared};
use crate::workflow::resource::{
    MergeStrategy, ResourceAction, ResourceObservation, ResourceRequest, owner_reference,
};

/// Field manager of server-side applies made for `action: apply`.
const MANAGER: &str = "cairn-workflow-resource";

/// Executes `req` for workflow key `k`, records the outcome and requeues the workflow.
pub(super) async fn execute(
    shared: &Shared,
    k: &str,
    req: &ResourceRequest,
) -> Result<(), ControllerError> {
    let seen = run(&shared.client, req).await?;
    tracing::debug!(
        workflow = %k,
        node = %req.node_id,
        action = ?req.action,
        kind = %req.target.kind,
        name = %seen.target.name,
        refused = seen.error.is_some(),
        "resource action executed"
    );
    super::reconcile::lock(&shared.resources)
        .entry(k.to_owned())
        .or_default()
        .insert(req.node_id.clone(), seen);
    shared.queue.add(k);
    Ok(())
}

fn refused(req: &ResourceRequest, message: String) -> ResourceObservation {
    ResourceObservation {
        target: req.target.clone(),
        live: None,
        error: Some(message),
        observed_at: Timestamp::now(),
    }
}

/// Whether an apiserver status code is the user's problem rather than a passing one.
fn is_refusal(code: u16) -> bool {
    (400..500).contains(&code) && code != 429
}

async fn run(
    client: &kube::Client,
    req: &ResourceRequest,
) -> Result<ResourceObservation, ControllerError> {
    let t = &req.target;
    let (group, version) = t
        .api_version
        .split_once('/')
        .unwrap_or(("", &t.api_version));
    let gvk = GroupVersionKind::gvk(group, version, &t.kind);
    let (ar, caps) = match discovery::pinned_kind(client, &gvk).await {
        Ok(found) => found,
        Err(kube::Error::Api(s)) if is_refusal(s.code) => {
            return Ok(refused(
                req,
                format!("{} {}: {}", t.api_version, t.kind, s.message),
            ));
        }
        Err(kube::Error::Discovery(e)) => {
            return Ok(refused(req, format!("{} {}: {e}", t.api_version, t.kind)));
        }
        Err(e) => {
            return Err(ControllerError::kube(
                format!("discover {} {}", t.api_version, t.kind),
                e,
            ));
        }
    };
    let namespaced = caps.scope == Scope::Namespaced;
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(client.clone(), &t.namespace, &ar)
    } else {
        Api::all_with(client.clone(), &ar)
    };
    let mut body = req.manifest.clone();
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        if !namespaced {
            meta.remove("namespace");
        }
        if req.set_owner_reference {
            let owner = owner_reference(&req.workflow_name, &req.workflow_uid);
            match meta
                .get_mut("ownerReferences")
                .and_then(Value::as_array_mut)
            {
                Some(list) => list.push(owner),
                None => {
                    meta.insert("ownerReferences".into(), Value::Array(vec![owner]));
                }
            }
        }
    }
    let object: DynamicObject = match serde_json::from_value(body.clone()) {
        Ok(o) => o,
        Err(e) => return Ok(refused(req, format!("resource.manifest: {e}"))),
    };
    let result = match req.action {
        ResourceAction::Get => api.get(&t.name).await.map(Some),
        ResourceAction::Create => match api.create(&PostParams::default(), &object).await {
            // Replayed after a restart (or the name was taken): the existing object is the
            // one the node waits on.
            Err(kube::Error::Api(s)) if s.code == 409 && !t.name.is_empty() => {
                api.get(&t.name).await.map(Some)
            }
            other => other.map(Some),
        },
        ResourceAction::Apply => api
            .patch(
                &t.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .map(Some),
        ResourceAction::Replace => match api.get(&t.name).await {
            Ok(current) => {
                let mut object = object;
                object.metadata.resource_version = current.metadata.resource_version;
                api.replace(&t.name, &PostParams::default(), &object)
                    .await
                    .map(Some)
            }
            Err(e) => Err(e),
        },
        ResourceAction::Patch => {
            let patch = match req.merge_strategy {
                MergeStrategy::Strategic => Patch::Strategic(body),
                MergeStrategy::Merge => Patch::Merge(body),
            };
            api.patch(&t.name, &PatchParams::default(), &patch)
                .await
                .map(Some)
        }
        ResourceAction::Delete => match api.delete(&t.name, &DeleteParams::default()).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(live) => {
            let mut target = t.clone();
            if let Some(name) = live.as_ref().and_then(|o| o.metadata.name.clone()) {
                target.name = name;
            }
            let live = match live.map(serde_json::to_value).transpose() {
                Ok(v) => v,
                Err(e) => return Ok(refused(req, format!("reading the object: {e}"))),
            };
            Ok(ResourceObservation {
                target,
                live,
                error: None,
                observed_at: Timestamp::now(),
            })
        }
        Err(kube::Error::Api(s)) if is_refusal(s.code) => Ok(refused(req, s.message)),
        Err(e) => Err(ControllerError::kube(
            format!("{:?} {} {}/{}", req.action, t.kind, t.namespace, t.name),
            e,
        )),
    }
}
