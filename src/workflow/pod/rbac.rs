//! The executor's RBAC: what a step pod's service account needs so that `cairn exec` can write
//! its node's WorkflowTaskResult (Argo's executor role grants the same on
//! `workflowtaskresults`: create and patch; cairn adds get/update for its retries).
//!
//! Pure: the controller (or an operator, by hand) applies the objects.

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Name of the Role in each namespace that runs workflows.
pub const EXECUTOR_ROLE: &str = "cairn-executor";

/// The Role (`cairn-executor`) and the RoleBinding (`cairn-executor-<service account>`) that
/// let `service_account` of `namespace` report step outputs, and nothing else.
pub fn executor_rbac(namespace: &str, service_account: &str) -> (Role, RoleBinding) {
    let labels = Some(
        [(
            "app.kubernetes.io/managed-by".to_string(),
            "cairn".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    let role = Role {
        metadata: ObjectMeta {
            name: Some(EXECUTOR_ROLE.to_string()),
            namespace: Some(namespace.to_string()),
            labels: labels.clone(),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![crate::k8s::GROUP.to_string()]),
            resources: Some(vec!["workflowtaskresults".to_string()]),
            verbs: ["create", "get", "patch", "update"]
                .map(str::to_string)
                .to_vec(),
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{EXECUTOR_ROLE}-{service_account}")),
            namespace: Some(namespace.to_string()),
            labels,
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_string()),
            kind: "Role".to_string(),
            name: EXECUTOR_ROLE.to_string(),
        },
        subjects: Some(vec![Subject {
            api_group: None,
            kind: "ServiceAccount".to_string(),
            name: service_account.to_string(),
            namespace: Some(namespace.to_string()),
        }]),
    };
    (role, binding)
}
