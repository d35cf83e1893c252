//! Reporting: the executor's [`ExecResult`] → the node's WorkflowTaskResult, written through the
//! Kubernetes API with the pod's service account (Argo's executor writes the same object:
//! named after the node id, labelled with the workflow, owned by the Workflow, and labelled
//! `workflows.argoproj.io/report-outputs-completed=true` once complete).
//!
//! [`task_result`] is pure (tested on data); [`report`] is the I/O edge: one server-side apply
//! (field manager [`FIELD_MANAGER`]), so a retry, or a second writer of the same node, converges
//! on the same object; transient failures are retried with a bounded exponential backoff
//! ([`Backoff`]).
//!
//! Invariant: nothing here logs or returns a credential. Errors carry the object's name and the
//! apiserver's status message only.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};

use super::{ExecPhase, ExecResult, MAIN_CONTAINER};
use crate::workflow::node::{LABEL_REPORT_OUTPUTS_COMPLETED, LABEL_WORKFLOW};
use crate::workflow::types::{Outputs, Parameter, WorkflowTaskResult};

/// Namespace of the pod and its workflow.
pub const ENV_NAMESPACE: &str = "CAIRN_NAMESPACE";
/// Name of the workflow.
pub const ENV_WORKFLOW_NAME: &str = "CAIRN_WORKFLOW_NAME";
/// Uid of the workflow (the task result's owner).
pub const ENV_WORKFLOW_UID: &str = "CAIRN_WORKFLOW_UID";
/// Node id: the task result's name.
pub const ENV_NODE_ID: &str = "CAIRN_NODE_ID";
/// Pod name (for messages).
pub const ENV_POD_NAME: &str = "CAIRN_POD_NAME";
/// Field manager of the executor's server-side applies.
pub const FIELD_MANAGER: &str = "cairn-executor";

/// Errors of reporting.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A reporting variable is missing from the environment (the pod was not built by cairn).
    #[error(
        "executor: environment variable {0} is not set; the pod must be built by cairn's pod builder"
    )]
    MissingEnv(&'static str),
    /// No Kubernetes client could be configured in the pod.
    #[error("executor: cannot configure a Kubernetes client (in-cluster service account): {0}")]
    Client(String),
    /// The apiserver refused the write, or kept failing until the retries were spent.
    #[error(
        "executor: writing WorkflowTaskResult {namespace}/{name} failed after {attempts} attempt(s): {message}"
    )]
    Write {
        /// Namespace.
        namespace: String,
        /// Task result name (the node id).
        name: String,
        /// Attempts made.
        attempts: u32,
        /// The last error (apiserver status message or transport error).
        message: String,
    },
}

/// Where the report goes: read from the pod's environment ([`ENV_NODE_ID`]...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportTarget {
    /// Namespace of the pod and workflow.
    pub namespace: String,
    /// Workflow name.
    pub workflow_name: String,
    /// Workflow uid.
    pub workflow_uid: String,
    /// Node id.
    pub node_id: String,
    /// Pod name.
    pub pod_name: String,
}

impl ReportTarget {
    /// Reads the target through `lookup` (the process environment in a pod). `Ok(None)` when
    /// none of the variables is set (`cairn exec` run by hand: nothing to report to); an error
    /// when only some are.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ReportError> {
        let keys = [
            ENV_NAMESPACE,
            ENV_WORKFLOW_NAME,
            ENV_WORKFLOW_UID,
            ENV_NODE_ID,
            ENV_POD_NAME,
        ];
        let get = |key: &'static str| lookup(key).filter(|v| !v.is_empty());
        if keys.iter().all(|key| get(key).is_none()) {
            return Ok(None);
        }
        let need = |key: &'static str| get(key).ok_or(ReportError::MissingEnv(key));
        Ok(Some(Self {
            namespace: need(ENV_NAMESPACE)?,
            workflow_name: need(ENV_WORKFLOW_NAME)?,
            workflow_uid: need(ENV_WORKFLOW_UID)?,
            node_id: need(ENV_NODE_ID)?,
            pod_name: need(ENV_POD_NAME)?,
        }))
    }
}

/// The complete task result of one run. Pure.
pub fn task_result(target: &ReportTarget, result: &ExecResult) -> WorkflowTaskResult {
    let parameters: Vec<Parameter> = result
        .parameters
        .iter()
        .map(|(name, value)| Parameter {
            name: name.clone(),
            value: Some(serde_json::Value::String(value.clone())),
            ..Default::default()
        })
        .collect();
    let outputs = Outputs {
        parameters: (!parameters.is_empty()).then_some(parameters),
        artifacts: (!result.artifacts.is_empty()).then(|| result.artifacts.clone()),
        result: result.result.clone(),
        exit_code: Some(result.exit_code.to_string()),
        ..Default::default()
    };
    let phase = match result.phase() {
        ExecPhase::Succeeded => "Succeeded",
        ExecPhase::Failed => "Failed",
    };
    object(target, phase, result.message(MAIN_CONTAINER), Some(outputs))
}

/// The task result of a run that could not start (invalid spec): an Error, complete, so the
/// controller does not wait for outputs that will never come. Pure.
pub fn error_result(target: &ReportTarget, message: &str) -> WorkflowTaskResult {
    object(target, "Error", Some(message.to_string()), None)
}

fn object(
    target: &ReportTarget,
    phase: &str,
    message: Option<String>,
    outputs: Option<Outputs>,
) -> WorkflowTaskResult {
    let labels: BTreeMap<String, String> = [
        (LABEL_WORKFLOW.to_string(), target.workflow_name.clone()),
        (
            LABEL_REPORT_OUTPUTS_COMPLETED.to_string(),
            "true".to_string(),
        ),
    ]
    .into_iter()
    .collect();
    WorkflowTaskResult {
        metadata: ObjectMeta {
            name: Some(target.node_id.clone()),
            namespace: Some(target.namespace.clone()),
            labels: Some(labels),
            owner_references: Some(vec![OwnerReference {
                api_version: crate::k8s::API_VERSION.to_string(),
                kind: "Workflow".to_string(),
                name: target.workflow_name.clone(),
                uid: target.workflow_uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        phase: Some(phase.to_string()),
        message,
        outputs,
        ..Default::default()
    }
}

/// Bounded exponential backoff of the report's retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts in total (≥ 1).
    pub attempts: u32,
    /// Delay after the first failure.
    pub initial: Duration,
    /// Upper bound of one delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 6 attempts, 250 ms doubling to at most 4 s: about 11.5 s of waiting in the worst case,
    /// enough to ride out an apiserver restart without holding a finished pod for long.
    fn default() -> Self {
        Self {
            attempts: 6,
            initial: Duration::from_millis(250),
            max: Duration::from_secs(4),
        }
    }
}

impl Backoff {
    /// The delay after failed attempt `n` (1-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Whether an apiserver answer is worth retrying: throttling, conflicts, server errors and
/// transport failures are; a refusal (bad request, forbidden, not found: the CRD or RBAC is
/// missing) is not, and is reported at once.
pub fn is_transient(code: Option<u16>) -> bool {
    match code {
        None => true,
        Some(code) => code == 409 || code == 429 || code >= 500,
    }
}

/// Writes `object` with server-side apply, retrying transient failures per `backoff`.
pub async fn report(
    client: kube::Client,
    object: &WorkflowTaskResult,
    backoff: Backoff,
) -> Result<(), ReportError> {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let api: Api<WorkflowTaskResult> = Api::namespaced(client, &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let attempts = backoff.attempts.max(1);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = api.patch(&name, &params, &Patch::Apply(object)).await;
        let (code, message) = match outcome {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) => (Some(status.code), status.message.clone()),
            Err(other) => (None, other.to_string()),
        };
        if attempt >= attempts || !is_transient(code) {
            return Err(ReportError::Write {
                namespace,
                name,
                attempts: attempt,
                message,
            });
        }
        tokio::time::sleep(backoff.delay(attempt)).await;
    }
}

/// A client from the pod's service account, falling back to the usual inference (KUBECONFIG)
/// when run outside a pod.
pub async fn client() -> Result<kube::Client, ReportError> {
    let config = match kube::Config::incluster() {
        Ok(config) => config,
        Err(_) => kube::Config::infer()
            .await
            .map_err(|e| ReportError::Client(e.to_string()))?,
    };
    crate::k8s::client_from_config(config).map_err(|e| ReportError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ReportTarget {
        ReportTarget {
            namespace: "ns".into(),
            workflow_name: "wf".into(),
            workflow_uid: "uid-1".into(),
            node_id: "wf-123".into(),
            pod_name: "wf-main-123".into(),
        }
    }

    fn result(exit_code: i32, errors: &[&str]) -> ExecResult {
        let at = jiff::Timestamp::from_second(1_700_000_000).expect("ts");
        ExecResult {
            exit_code,
            result: Some("hello".into()),
            parameters: [("p".to_string(), "v".to_string())].into_iter().collect(),
            errors: errors.iter().map(|e| e.to_string()).collect(),
            artifacts: Vec::new(),
            started_at: at,
            finished_at: at,
        }
    }

    #[test]
    fn task_results_snapshot() {
        let ok = serde_json::to_value(task_result(&target(), &result(0, &[]))).expect("json");
        insta::assert_json_snapshot!("task_result_succeeded", ok);
        let failed = serde_json::to_value(task_result(&target(), &result(2, &[]))).expect("json");
        assert_eq!(failed["phase"], "Failed");
        assert_eq!(failed["message"], "main: Error (exit code 2)");
        assert_eq!(failed["outputs"]["exitCode"], "2");
        let err = serde_json::to_value(error_result(&target(), "bad spec")).expect("json");
        assert_eq!(err["phase"], "Error");
        assert_eq!(
            err["metadata"]["labels"][LABEL_REPORT_OUTPUTS_COMPLETED],
            "true"
        );
        assert!(err.get("outputs").is_none());
    }

    #[test]
    fn collection_errors_fail_the_report_with_the_message() {
        let r = serde_json::to_value(task_result(
            &target(),
            &result(0, &["outputs.parameters.p: file /tmp/p does not exist"]),
        ))
        .expect("json");
        assert_eq!(r["phase"], "Failed");
        assert_eq!(
            r["message"],
            "main: outputs.parameters.p: file /tmp/p does not exist"
        );
    }

    #[test]
    fn target_from_env() {
        let all = |k: &str| Some(format!("v-{k}"));
        let t = ReportTarget::from_env(all).expect("ok").expect("some");
        assert_eq!(t.node_id, "v-CAIRN_NODE_ID");
        assert_eq!(ReportTarget::from_env(|_| None).expect("ok"), None);
        let partial = |k: &str| (k != ENV_WORKFLOW_UID).then(|| "x".to_string());
        let err = ReportTarget::from_env(partial).expect_err("partial");
        assert!(err.to_string().contains(ENV_WORKFLOW_UID), "{err}");
    }

    #[test]
    fn backoff_is_bounded() {
        let b = Backoff::default();
        let delays: Vec<u128> = (1..=b.attempts).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, vec![250, 500, 1000, 2000, 4000, 4000]);
        assert_eq!(b.delay(40), b.max);
    }

    #[test]
    fn transient_table() {
        for (code, transient) in [
            (None, true),
            (Some(500), true),
            (Some(503), true),
            (Some(429), true),
            (Some(409), true),
            (Some(400), false),
            (Some(403), false),
            (Some(404), false),
            (Some(422), false),
        ] {
            assert_eq!(is_transient(code), transient, "{code:?}");
        }
    }
}
