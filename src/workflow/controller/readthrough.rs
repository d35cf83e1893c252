//! Read-through on cache misses, and the lookup the operator sees for one reconcile
//! ([`PassLookup`]).
//!
//! The controller reads WorkflowTemplates, ClusterWorkflowTemplates and parameter ConfigMaps
//! from reflector caches, and a cache trails the apiserver: an object created just before the
//! Workflow that uses it (`kubectl apply -f params.yaml -f workflow.yaml`) may not have reached
//! the store when the Workflow's first reconcile runs. Trusting that miss would fail the Workflow
//! with "not found" for an object that exists. So a miss is checked: before the operator runs,
//! each referenced object the cache does not have (for a ConfigMap: or whose key it lacks) is
//! read from the apiserver for this pass ([`fill`]). A hit is trusted.
//!
//! Invariants:
//! - Bounded: at most [`MAX_READS`] reads per pass, each within [`GET_TIMEOUT`]; a name is read
//!   at most once per pass.
//! - Only while the Workflow starts (no phase, or `Pending`): that pass resolves every template
//!   and reads every ConfigMap reference of the run, so each object applied with the Workflow is
//!   read then. Later passes run on the templates stored in its status and on the ConfigMap
//!   cache, which has caught up by then: no extra read on a running Workflow's reconciles.
//! - Only the Workflow's own namespace (and cluster-scoped templates) are read, as the caches
//!   hold; a ConfigMap read through counts only with Argo's parameter label, as in the cache.
//! - Absent (404) and forbidden (403) are "does not exist", so the parameter takes its default
//!   or the error names the object; other failures retry the reconcile.
//! - Which objects to read is decided by pure functions ([`missing_template`],
//!   [`config_maps_to_read`]) over the layered lookup.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client};
use serde::de::DeserializeOwned;

use super::ControllerError;
use super::secrets::{self, RefKind};
use crate::workflow::types::{ClusterWorkflowTemplate, Workflow, WorkflowTemplate};
use crate::workflow::validate::{
    self, CONFIGMAP_TYPE_LABEL, CONFIGMAP_TYPE_PARAMETER, ConfigMapValue, SecretValue,
    TemplateLookup, ValidationError,
};

/// Most objects read through in one pass (templates and ConfigMaps together).
pub const MAX_READS: usize = 32;

/// Deadline of one read.
pub const GET_TIMEOUT: Duration = Duration::from_secs(10);

/// The objects read from the apiserver for one pass; `None` records "read, does not exist".
#[derive(Debug, Default)]
pub struct Fetched {
    /// WorkflowTemplates of the Workflow's namespace, by name.
    pub templates: BTreeMap<String, Option<WorkflowTemplate>>,
    /// ClusterWorkflowTemplates, by name.
    pub cluster_templates: BTreeMap<String, Option<ClusterWorkflowTemplate>>,
    /// ConfigMaps of the Workflow's namespace, by name.
    pub config_maps: BTreeMap<String, Option<ConfigMap>>,
}

impl Fetched {
    fn reads(&self) -> usize {
        self.templates.len() + self.cluster_templates.len() + self.config_maps.len()
    }
}

/// What the operator reads during one pass: the caches, then what this pass read through, and
/// the Secrets read for it.
pub struct PassLookup<'a> {
    /// The controller's caches.
    pub base: &'a (dyn TemplateLookup + Sync),
    /// The Workflow's namespace (the only one read through, and whose Secrets were read).
    pub namespace: &'a str,
    /// Read through for this pass.
    pub fetched: &'a Fetched,
    /// `(Secret name, key)` → value.
    pub secrets: &'a BTreeMap<(String, String), SecretValue>,
}

impl TemplateLookup for PassLookup<'_> {
    fn workflow_template(&self, namespace: &str, name: &str) -> Option<WorkflowTemplate> {
        self.base.workflow_template(namespace, name).or_else(|| {
            (namespace == self.namespace)
                .then(|| self.fetched.templates.get(name).cloned().flatten())
                .flatten()
        })
    }

    fn cluster_workflow_template(&self, name: &str) -> Option<ClusterWorkflowTemplate> {
        self.base
            .cluster_workflow_template(name)
            .or_else(|| self.fetched.cluster_templates.get(name).cloned().flatten())
    }

    fn config_map_value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
        let cached = self.base.config_map_value(namespace, name, key);
        if matches!(cached, ConfigMapValue::Found(_)) || namespace != self.namespace {
            return cached;
        }
        match self.fetched.config_maps.get(name) {
            Some(Some(cm)) => parameter_value(cm, key),
            _ => cached,
        }
    }

    fn secret_value(&self, namespace: &str, name: &str, key: &str) -> SecretValue {
        if namespace != self.namespace {
            return SecretValue::NoSecret;
        }
        self.secrets
            .get(&(name.to_owned(), key.to_owned()))
            .cloned()
            .unwrap_or(SecretValue::NoSecret)
    }
}

/// `key` of a parameter ConfigMap: only one labelled `workflows.argoproj.io/configmap-type:
/// Parameter` counts, as Argo.
pub fn parameter_value(cm: &ConfigMap, key: &str) -> ConfigMapValue {
    let labelled = cm
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(CONFIGMAP_TYPE_LABEL))
        .is_some_and(|v| v == CONFIGMAP_TYPE_PARAMETER);
    if !labelled {
        return ConfigMapValue::NoConfigMap;
    }
    match cm.data.as_ref().and_then(|d| d.get(key)) {
        Some(v) => ConfigMapValue::Found(v.clone()),
        None => ConfigMapValue::NoKey,
    }
}

/// Whether the Workflow has not started yet (no phase, or `Pending`).
pub fn starting(wf: &Workflow) -> bool {
    matches!(
        wf.status.as_ref().and_then(|s| s.phase.as_deref()),
        None | Some("") | Some("Pending")
    )
}

/// A template reference that did not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MissingTemplate {
    /// A WorkflowTemplate of the Workflow's namespace.
    Namespaced(String),
    /// A ClusterWorkflowTemplate.
    Cluster(String),
}

/// The template resolving `wf` through `lookup` stops at, unless this pass read it already
/// (then it does not exist, and validation reports it).
pub fn missing_template(wf: &Workflow, lookup: &PassLookup<'_>) -> Option<MissingTemplate> {
    let Err(ValidationError::MissingWorkflowTemplate { kind, name, .. }) =
        validate::resolve(wf, lookup)
    else {
        return None;
    };
    if kind == "ClusterWorkflowTemplate" {
        (!lookup.fetched.cluster_templates.contains_key(&name))
            .then_some(MissingTemplate::Cluster(name))
    } else {
        (!lookup.fetched.templates.contains_key(&name)).then_some(MissingTemplate::Namespaced(name))
    }
}

/// The ConfigMaps of `wanted` (`(name, key)` references) whose value `lookup` does not find and
/// that this pass has not read yet, at most `budget` names.
pub fn config_maps_to_read(
    wanted: &BTreeSet<(String, String)>,
    lookup: &PassLookup<'_>,
    budget: usize,
) -> Vec<String> {
    let mut names = BTreeSet::new();
    for (name, key) in wanted {
        if names.len() >= budget {
            break;
        }
        if lookup.fetched.config_maps.contains_key(name) {
            continue;
        }
        if !matches!(
            lookup.config_map_value(lookup.namespace, name, key),
            ConfigMapValue::Found(_)
        ) {
            names.insert(name.clone());
        }
    }
    names.into_iter().collect()
}

/// Reads through what the caches miss for this pass of `wf` (see the module's invariants).
pub async fn fill(
    client: &Client,
    wf: &Workflow,
    base: &(dyn TemplateLookup + Sync),
    namespace: &str,
) -> Result<Fetched, ControllerError> {
    let mut fetched = Fetched::default();
    if !starting(wf) {
        return Ok(fetched);
    }
    let no_secrets = BTreeMap::new();
    while fetched.reads() < MAX_READS {
        let missing = missing_template(
            wf,
            &PassLookup {
                base,
                namespace,
                fetched: &fetched,
                secrets: &no_secrets,
            },
        );
        let Some(missing) = missing else {
            break;
        };
        metrics::counter!("cairn_workflow_read_through_total", "kind" => "template").increment(1);
        match missing {
            MissingTemplate::Namespaced(name) => {
                let api: Api<WorkflowTemplate> = Api::namespaced(client.clone(), namespace);
                let got = get_bounded(&api, namespace, "WorkflowTemplate", &name).await?;
                fetched.templates.insert(name, got);
            }
            MissingTemplate::Cluster(name) => {
                let api: Api<ClusterWorkflowTemplate> = Api::all(client.clone());
                let got = get_bounded(&api, "", "ClusterWorkflowTemplate", &name).await?;
                fetched.cluster_templates.insert(name, got);
            }
        }
    }
    let names = {
        let lookup = PassLookup {
            base,
            namespace,
            fetched: &fetched,
            secrets: &no_secrets,
        };
        let wanted = secrets::refs(wf, &lookup, RefKind::ConfigMap);
        config_maps_to_read(&wanted, &lookup, MAX_READS.saturating_sub(fetched.reads()))
    };
    if !names.is_empty() {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        for name in names {
            metrics::counter!("cairn_workflow_read_through_total", "kind" => "configmap")
                .increment(1);
            let got = get_bounded(&api, namespace, "ConfigMap", &name).await?;
            fetched.config_maps.insert(name, got);
        }
    }
    Ok(fetched)
}

/// GET of one object within [`GET_TIMEOUT`]: `None` when it does not exist or cairn may not
/// read it (logged, without its content).
pub async fn get_bounded<K>(
    api: &Api<K>,
    namespace: &str,
    kind: &str,
    name: &str,
) -> Result<Option<K>, ControllerError>
where
    K: Clone + DeserializeOwned + Debug,
{
    let action = || {
        if namespace.is_empty() {
            format!("read {kind} {name}")
        } else {
            format!("read {kind} {namespace}/{name}")
        }
    };
    match tokio::time::timeout(GET_TIMEOUT, api.get_opt(name)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(kube::Error::Api(s))) if s.code == 403 => {
            tracing::warn!(
                namespace,
                kind,
                name,
                "cairn may not read this object; a reference to it counts as absent"
            );
            Ok(None)
        }
        Ok(Err(e)) => Err(ControllerError::kube(action(), e)),
        Err(_) => Err(ControllerError::kube(
            action(),
            kube::Error::Service(format!("no answer within {}s", GET_TIMEOUT.as_secs()).into()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A cache with a fixed set of templates and ConfigMaps.
    #[derive(Default)]
    struct Cache {
        templates: BTreeMap<String, WorkflowTemplate>,
        config_maps: BTreeMap<String, ConfigMap>,
    }

    impl TemplateLookup for Cache {
        fn workflow_template(&self, namespace: &str, name: &str) -> Option<WorkflowTemplate> {
            (namespace == "ns").then(|| self.templates.get(name).cloned())?
        }
        fn cluster_workflow_template(&self, _: &str) -> Option<ClusterWorkflowTemplate> {
            None
        }
        fn config_map_value(&self, namespace: &str, name: &str, key: &str) -> ConfigMapValue {
            match self.config_maps.get(name) {
                Some(cm) if namespace == "ns" => parameter_value(cm, key),
                _ => ConfigMapValue::NoConfigMap,
            }
        }
    }

    fn template(name: &str, body: serde_json::Value) -> WorkflowTemplate {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowTemplate",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": body,
        }))
        .expect("template")
    }

    fn cluster_template(name: &str) -> ClusterWorkflowTemplate {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "ClusterWorkflowTemplate",
            "metadata": {"name": name},
            "spec": {"templates": [{"name": "leaf", "container": {"image": "busybox"}}]},
        }))
        .expect("cluster template")
    }

    fn config_map(name: &str, labelled: bool, data: &[(&str, &str)]) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.to_owned());
        if labelled {
            cm.metadata.labels = Some(
                [(
                    CONFIGMAP_TYPE_LABEL.to_owned(),
                    CONFIGMAP_TYPE_PARAMETER.to_owned(),
                )]
                .into(),
            );
        }
        cm.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        cm
    }

    fn workflow(spec: serde_json::Value) -> Workflow {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": "w", "namespace": "ns"},
            "spec": spec,
        }))
        .expect("workflow")
    }

    fn pass<'a>(
        base: &'a (dyn TemplateLookup + Sync),
        fetched: &'a Fetched,
        secrets: &'a BTreeMap<(String, String), SecretValue>,
    ) -> PassLookup<'a> {
        PassLookup {
            base,
            namespace: "ns",
            fetched,
            secrets,
        }
    }

    #[test]
    fn only_labelled_config_maps_give_parameter_values() {
        let cm = config_map("p", true, &[("k", "v")]);
        assert_eq!(parameter_value(&cm, "k"), ConfigMapValue::Found("v".into()));
        assert_eq!(parameter_value(&cm, "other"), ConfigMapValue::NoKey);
        let plain = config_map("p", false, &[("k", "v")]);
        assert_eq!(parameter_value(&plain, "k"), ConfigMapValue::NoConfigMap);
    }

    #[test]
    fn a_hit_is_trusted_and_a_miss_falls_back_to_what_the_pass_read() {
        let mut cache = Cache::default();
        cache
            .config_maps
            .insert("cached".into(), config_map("cached", true, &[("k", "old")]));
        let mut fetched = Fetched::default();
        fetched.config_maps.insert(
            "cached".into(),
            Some(config_map("cached", true, &[("k", "new")])),
        );
        fetched
            .config_maps
            .insert("late".into(), Some(config_map("late", true, &[("k", "v")])));
        fetched.config_maps.insert("gone".into(), None);
        fetched
            .templates
            .insert("t".into(), Some(template("t", json!({}))));
        fetched
            .cluster_templates
            .insert("c".into(), Some(cluster_template("c")));
        let secrets = BTreeMap::new();
        let l = pass(&cache, &fetched, &secrets);
        assert_eq!(
            l.config_map_value("ns", "cached", "k"),
            ConfigMapValue::Found("old".into())
        );
        assert_eq!(
            l.config_map_value("ns", "late", "k"),
            ConfigMapValue::Found("v".into())
        );
        assert_eq!(l.config_map_value("ns", "late", "x"), ConfigMapValue::NoKey);
        assert_eq!(
            l.config_map_value("ns", "gone", "k"),
            ConfigMapValue::NoConfigMap
        );
        // Another namespace is never read through.
        assert_eq!(
            l.config_map_value("other", "late", "k"),
            ConfigMapValue::NoConfigMap
        );
        assert!(l.workflow_template("ns", "t").is_some());
        assert!(l.workflow_template("other", "t").is_none());
        assert!(l.cluster_workflow_template("c").is_some());
        assert!(l.cluster_workflow_template("d").is_none());
    }

    #[test]
    fn secrets_of_the_workflow_namespace_only() {
        let cache = Cache::default();
        let fetched = Fetched::default();
        let secrets: BTreeMap<(String, String), SecretValue> =
            [(("s".into(), "k".into()), SecretValue::Found("x".into()))].into();
        let l = pass(&cache, &fetched, &secrets);
        assert_eq!(
            l.secret_value("ns", "s", "k"),
            SecretValue::Found("x".into())
        );
        assert_eq!(l.secret_value("ns", "s", "other"), SecretValue::NoSecret);
        assert_eq!(l.secret_value("other", "s", "k"), SecretValue::NoSecret);
    }

    #[test]
    fn templates_missing_from_the_cache_are_read_one_by_one_and_once() {
        // w → WorkflowTemplate outer → ClusterWorkflowTemplate lib.
        let wf = workflow(json!({"workflowTemplateRef": {"name": "outer"}}));
        let outer = template(
            "outer",
            json!({"entrypoint": "main", "templates": [{"name": "main", "steps": [[
                {"name": "s", "templateRef": {"name": "lib", "template": "leaf",
                                             "clusterScope": true}}]]}]}),
        );
        let cache = Cache::default();
        let secrets = BTreeMap::new();
        let mut fetched = Fetched::default();
        assert_eq!(
            missing_template(&wf, &pass(&cache, &fetched, &secrets)),
            Some(MissingTemplate::Namespaced("outer".into()))
        );
        fetched
            .templates
            .insert("outer".into(), Some(outer.clone()));
        assert_eq!(
            missing_template(&wf, &pass(&cache, &fetched, &secrets)),
            Some(MissingTemplate::Cluster("lib".into()))
        );
        fetched
            .cluster_templates
            .insert("lib".into(), Some(cluster_template("lib")));
        assert_eq!(
            missing_template(&wf, &pass(&cache, &fetched, &secrets)),
            None
        );
        // Read and absent: not read again (validation reports it).
        let mut absent = Fetched::default();
        absent.templates.insert("outer".into(), None);
        assert_eq!(
            missing_template(&wf, &pass(&cache, &absent, &secrets)),
            None
        );
        // In the cache: nothing to read.
        let mut cache = Cache::default();
        cache.templates.insert("outer".into(), outer);
        let mut lib_read = Fetched::default();
        lib_read
            .cluster_templates
            .insert("lib".into(), Some(cluster_template("lib")));
        assert_eq!(
            missing_template(&wf, &pass(&cache, &lib_read, &secrets)),
            None
        );
    }

    #[test]
    fn config_maps_read_are_those_missed_not_yet_read_and_within_budget() {
        let mut cache = Cache::default();
        cache
            .config_maps
            .insert("full".into(), config_map("full", true, &[("k", "v")]));
        let wanted: BTreeSet<(String, String)> = [
            ("full", "k"),
            ("full", "absent"),
            ("new", "k"),
            ("new", "j"),
            ("read", "k"),
            ("z", "k"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
        let mut fetched = Fetched::default();
        fetched.config_maps.insert("read".into(), None);
        let secrets = BTreeMap::new();
        let l = pass(&cache, &fetched, &secrets);
        // `full` lacks a key in the cache: its newer version may have it.
        assert_eq!(
            config_maps_to_read(&wanted, &l, MAX_READS),
            vec!["full".to_owned(), "new".to_owned(), "z".to_owned()]
        );
        assert_eq!(
            config_maps_to_read(&wanted, &l, 2),
            vec!["full".to_owned(), "new".to_owned()]
        );
        assert!(config_maps_to_read(&wanted, &l, 0).is_empty());
    }

    #[test]
    fn a_workflow_starts_while_it_has_no_phase_or_is_pending() {
        let mut wf = workflow(json!({}));
        assert!(starting(&wf));
        for (phase, want) in [
            ("", true),
            ("Pending", true),
            ("Running", false),
            ("Failed", false),
        ] {
            wf.status = Some(serde_json::from_value(json!({"phase": phase})).expect("status"));
            assert_eq!(starting(&wf), want, "{phase}");
        }
    }
}
