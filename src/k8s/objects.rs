//! Thin typed reads of Applications (in the control namespace), Workflows (per namespace) and
//! other namespaced Argo kinds ([`list_kind`], [`get_kind`]).
//!
//! Lists are returned sorted by namespace then name, so API and CLI output is stable. A 404 on a
//! list means the kind is not served: it is reported as [`K8sError::CrdMissing`], which tells the
//! operator what to do, rather than as an opaque API error.

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

use super::{ArgoKind, K8sError, crds, is_not_found};
use crate::gitops::types::Application;
use crate::workflow::types::Workflow;

/// Applications in `namespace` (cairn's control namespace), sorted by name.
pub async fn list_applications(
    client: &Client,
    namespace: &str,
) -> Result<Vec<Application>, K8sError> {
    list(
        client,
        Api::namespaced(client.clone(), namespace),
        Some(namespace),
    )
    .await
}

/// One Application, or None when it does not exist.
pub async fn get_application(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Application>, K8sError> {
    get(
        client,
        Api::namespaced(client.clone(), namespace),
        namespace,
        name,
    )
    .await
}

/// Workflows in `namespace`, or in every namespace when None; sorted by namespace then name.
pub async fn list_workflows(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<Workflow>, K8sError> {
    let api = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    list(client, api, namespace).await
}

/// One Workflow, or None when it does not exist.
pub async fn get_workflow(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Workflow>, K8sError> {
    get(
        client,
        Api::namespaced(client.clone(), namespace),
        namespace,
        name,
    )
    .await
}

/// Namespaced Argo objects of kind `K` (EventSources, Sensors...) in `namespace`, or in every
/// namespace when None; sorted by namespace then name.
pub async fn list_kind<K>(client: &Client, namespace: Option<&str>) -> Result<Vec<K>, K8sError>
where
    K: ArgoKind
        + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    list(client, api, namespace).await
}

/// One namespaced Argo object of kind `K`, or None when it does not exist.
pub async fn get_kind<K>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, K8sError>
where
    K: ArgoKind
        + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    get(
        client,
        Api::namespaced(client.clone(), namespace),
        namespace,
        name,
    )
    .await
}

fn scope_text(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "in all namespaces".to_owned(),
    }
}

async fn list<K>(client: &Client, api: Api<K>, namespace: Option<&str>) -> Result<Vec<K>, K8sError>
where
    K: ArgoKind + Clone + DeserializeOwned + Debug,
{
    match api.list(&ListParams::default()).await {
        Ok(list) => {
            let mut items = list.items;
            sort_by_namespace_and_name(&mut items);
            Ok(items)
        }
        Err(err) => Err(explain::<K>(client, err, || {
            format!("list {} {}", K::crd_name(), scope_text(namespace))
        })
        .await),
    }
}

async fn get<K>(
    client: &Client,
    api: Api<K>,
    namespace: &str,
    name: &str,
) -> Result<Option<K>, K8sError>
where
    K: ArgoKind + Clone + DeserializeOwned + Debug,
{
    match api.get(name).await {
        Ok(obj) => Ok(Some(obj)),
        Err(err) if is_not_found(&err) => {
            // A 404 is either "no such object" or "no such kind"; only the CRD lookup tells.
            if crds::is_installed(client, &K::crd_name()).await? {
                Ok(None)
            } else {
                Err(K8sError::CrdMissing { crd: K::crd_name() })
            }
        }
        Err(err) => Err(K8sError::api(
            format!("get {} {namespace}/{name}", K::crd_name()),
            err,
        )),
    }
}

async fn explain<K: ArgoKind>(
    client: &Client,
    err: kube::Error,
    action: impl FnOnce() -> String,
) -> K8sError {
    if is_not_found(&err) {
        match crds::is_installed(client, &K::crd_name()).await {
            Ok(false) => return K8sError::CrdMissing { crd: K::crd_name() },
            Ok(true) => {}
            Err(other) => return other,
        }
    }
    K8sError::api(action(), err)
}

/// Sorts objects by (namespace, name): the stable order every list answer uses.
pub fn sort_by_namespace_and_name<K: kube::Resource>(items: &mut [K]) {
    items.sort_by_key(|o| (o.namespace(), o.name_any()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::types::Workflow;

    #[test]
    fn sorting_is_by_namespace_then_name() {
        let mut wfs = vec![
            Workflow::test("b", "z"),
            Workflow::test("a", "y"),
            Workflow::test("b", "a"),
        ];
        sort_by_namespace_and_name(&mut wfs);
        let order: Vec<String> = wfs
            .iter()
            .map(|w| format!("{}/{}", w.namespace().unwrap_or_default(), w.name_any()))
            .collect();
        assert_eq!(order, ["a/y", "b/a", "b/z"]);
    }

    #[test]
    fn scope_text_names_the_namespace() {
        assert_eq!(scope_text(Some("ml")), "in namespace ml");
        assert_eq!(scope_text(None), "in all namespaces");
    }
}
