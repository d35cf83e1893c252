//! Secrets for `valueFrom.secretKeyRef` parameters: which ones a Workflow reads ([`refs`], pure),
//! reading them for one reconcile ([`fetch`]); the operator sees them through
//! [`super::readthrough::PassLookup`].
//!
//! Why no Secret cache: a reflector of every Secret would keep every credential of the watched
//! namespaces in memory for the few workflows that read one. Instead each reconcile of a running
//! Workflow that references Secrets GETs those Secrets (at most [`MAX_SECRETS`], each bounded by
//! [`super::readthrough::GET_TIMEOUT`]), as Argo reads them through the API.
//!
//! Invariants: a Secret's value is never logged, never put in an error, and `Debug` of
//! [`SecretValue`] is redacted; the values live only for the reconcile that read them. A Secret
//! that does not exist (404) or that cairn may not read (403) is `NoSecret`, so the parameter
//! takes its `default` or its node errors naming the Secret; other failures retry the reconcile.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::Value;

use super::ControllerError;
use crate::workflow::types::Workflow;
use crate::workflow::validate::{self, SecretValue, TemplateLookup};

/// Most Secrets one Workflow may reference (a bound on the reads of one reconcile; more are
/// `NoSecret`, and their parameters say so).
pub const MAX_SECRETS: usize = 32;

/// Deepest JSON nesting scanned for references (templates nest far less).
const MAX_DEPTH: usize = 64;

/// Which `valueFrom` source a parameter reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefKind {
    /// `valueFrom.secretKeyRef`.
    Secret,
    /// `valueFrom.configMapKeyRef`.
    ConfigMap,
}

impl RefKind {
    fn pointer(self) -> &'static str {
        match self {
            RefKind::Secret => "/valueFrom/secretKeyRef",
            RefKind::ConfigMap => "/valueFrom/configMapKeyRef",
        }
    }
}

/// `(name, key)` of every `valueFrom` reference of `kind` in a `parameters` list of `v`
/// (workflow arguments, template inputs, step/task arguments). Container `env` entries are not
/// parameters and are not collected.
pub fn refs_in(v: &Value, kind: RefKind, out: &mut BTreeSet<(String, String)>) {
    scan(v, kind, out, 0);
}

fn scan(v: &Value, kind: RefKind, out: &mut BTreeSet<(String, String)>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "parameters"
                    && let Value::Array(params) = child
                {
                    for p in params {
                        if let Some(r) = p.pointer(kind.pointer()) {
                            let field = |f: &str| r.get(f).and_then(Value::as_str);
                            if let (Some(name), Some(key)) = (field("name"), field("key")) {
                                out.insert((name.to_owned(), key.to_owned()));
                            }
                        }
                    }
                }
                scan(child, kind, out, depth + 1);
            }
        }
        Value::Array(items) => {
            for item in items {
                scan(item, kind, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// Every reference of `kind` a Workflow's run can meet: in its spec, in the templates stored in
/// its status (once started) and in the WorkflowTemplates it references, as `lookup` resolves
/// them.
pub fn refs(
    wf: &Workflow,
    lookup: &dyn TemplateLookup,
    kind: RefKind,
) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    if let Ok(v) = serde_json::to_value(&wf.spec) {
        refs_in(&v, kind, &mut out);
    }
    // Not the node tree: only the templates a running workflow keeps.
    if let Some(status) = &wf.status {
        for stored in [
            &status.stored_templates,
            &status.stored_workflow_template_spec,
        ]
        .into_iter()
        .flatten()
        {
            refs_in(stored, kind, &mut out);
        }
    }
    // Once started, the referenced templates are the stored copies scanned above; before, they
    // are resolved (only then: a resolve per reconcile of every running workflow would cost).
    if super::readthrough::starting(wf)
        && let Ok(resolved) = validate::resolve(wf, lookup)
    {
        for spec in resolved.referenced.values().chain([&resolved.spec]) {
            if let Ok(v) = serde_json::to_value(spec) {
                refs_in(&v, kind, &mut out);
            }
        }
    }
    out
}

/// Reads the referenced Secrets of `namespace` (at most [`MAX_SECRETS`] distinct names).
pub async fn fetch(
    client: &Client,
    namespace: &str,
    wanted: &BTreeSet<(String, String)>,
) -> Result<BTreeMap<(String, String), SecretValue>, ControllerError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let names: BTreeSet<&str> = wanted.iter().map(|(n, _)| n.as_str()).collect();
    let mut secrets: BTreeMap<&str, Option<Secret>> = BTreeMap::new();
    for name in names.into_iter().take(MAX_SECRETS) {
        let got = super::readthrough::get_bounded(&api, namespace, "Secret", name).await?;
        secrets.insert(name, got);
    }
    Ok(wanted
        .iter()
        .map(|(name, key)| {
            let value = match secrets.get(name.as_str()) {
                Some(Some(secret)) => value_of(secret, key),
                _ => SecretValue::NoSecret,
            };
            ((name.clone(), key.clone()), value)
        })
        .collect())
}

/// `key` of a Secret: `data` (bytes, UTF-8) first, then `stringData`.
pub fn value_of(secret: &Secret, key: &str) -> SecretValue {
    if let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return match String::from_utf8(bytes.0.clone()) {
            Ok(s) => SecretValue::Found(s),
            Err(_) => SecretValue::NoKey,
        };
    }
    match secret.string_data.as_ref().and_then(|d| d.get(key)) {
        Some(s) => SecretValue::Found(s.clone()),
        None => SecretValue::NoKey,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use serde_json::json;

    use super::*;
    use crate::workflow::types::{ClusterWorkflowTemplate, WorkflowTemplate};

    #[test]
    fn refs_are_collected_from_parameter_lists_only() {
        let v = json!({
            "spec": {
                "arguments": {"parameters": [
                    {"name": "a", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k1"}}},
                    {"name": "b", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
                    {"name": "c", "value": "x"},
                ]},
                "templates": [{
                    "name": "t",
                    "inputs": {"parameters": [
                        {"name": "m", "valueFrom": {"secretKeyRef": {"name": "s2", "key": "k2"}}},
                        {"name": "bad", "valueFrom": {"secretKeyRef": {"name": "s3"}}},
                    ]},
                    "container": {"env": [
                        {"name": "E", "valueFrom": {"secretKeyRef": {"name": "env-only", "key": "k"}}}
                    ]},
                    "steps": [[{"name": "x", "arguments": {"parameters": [
                        {"name": "p", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k3"}}}
                    ]}}]],
                }],
            }
        });
        let mut out = BTreeSet::new();
        refs_in(&v, RefKind::Secret, &mut out);
        let want: BTreeSet<(String, String)> = [("s1", "k1"), ("s1", "k3"), ("s2", "k2")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        assert_eq!(out, want);
        let mut cms = BTreeSet::new();
        refs_in(&v, RefKind::ConfigMap, &mut cms);
        assert_eq!(cms, [("cm".to_owned(), "k".to_owned())].into());
    }

    /// One WorkflowTemplate `t` whose input reads Secret `tpl`.
    struct OneTemplate;

    impl TemplateLookup for OneTemplate {
        fn workflow_template(&self, _: &str, name: &str) -> Option<WorkflowTemplate> {
            (name == "t").then(|| {
                serde_json::from_value(json!({
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "WorkflowTemplate",
                    "metadata": {"name": "t"},
                    "spec": {"entrypoint": "main", "templates": [{"name": "main",
                        "inputs": {"parameters": [{"name": "p", "valueFrom":
                            {"secretKeyRef": {"name": "tpl", "key": "k"}}}]},
                        "container": {"image": "busybox"}}]},
                }))
                .expect("template")
            })
        }
        fn cluster_workflow_template(&self, _: &str) -> Option<ClusterWorkflowTemplate> {
            None
        }
    }

    #[test]
    fn refs_of_a_referenced_template_before_start_and_of_the_stored_copy_after() {
        let mut wf: Workflow = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "w", "namespace": "ns"},
            "spec": {"workflowTemplateRef": {"name": "t"}},
        }))
        .expect("workflow");
        let want: BTreeSet<(String, String)> = [("tpl".to_owned(), "k".to_owned())].into();
        assert_eq!(refs(&wf, &OneTemplate, RefKind::Secret), want);
        wf.status = Some(
            serde_json::from_value(json!({
                "phase": "Running",
                "storedWorkflowTemplateSpec": {"templates": [{"name": "main",
                    "inputs": {"parameters": [{"name": "p", "valueFrom":
                        {"secretKeyRef": {"name": "stored", "key": "k"}}}]}}]},
            }))
            .expect("status"),
        );
        // Running: the stored copy counts, the live template is not resolved again.
        let stored: BTreeSet<(String, String)> = [("stored".to_owned(), "k".to_owned())].into();
        assert_eq!(refs(&wf, &OneTemplate, RefKind::Secret), stored);
    }

    #[test]
    fn secret_values_come_from_data_then_string_data() {
        let secret = Secret {
            data: Some(
                [
                    ("a".to_owned(), ByteString(b"from-data".to_vec())),
                    ("bin".to_owned(), ByteString(vec![0xff, 0xfe])),
                ]
                .into(),
            ),
            string_data: Some([("b".to_owned(), "from-string-data".to_owned())].into()),
            ..Default::default()
        };
        assert_eq!(
            value_of(&secret, "a"),
            SecretValue::Found("from-data".into())
        );
        assert_eq!(
            value_of(&secret, "b"),
            SecretValue::Found("from-string-data".into())
        );
        assert_eq!(value_of(&secret, "bin"), SecretValue::NoKey);
        assert_eq!(value_of(&secret, "c"), SecretValue::NoKey);
    }
}
