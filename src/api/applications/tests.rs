//! Pure parts of the Application API: operations, refusals, finalizers, the resource tree.

use serde_json::json;

use super::*;

fn app(spec: Value, status: Value) -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "web", "namespace": "argocd", "resourceVersion": "7"},
        "spec": spec,
        "status": status,
    }))
    .expect("app")
}

fn manual() -> Value {
    json!({"project": "team", "source": {"repoURL": "https://g/r", "targetRevision": "main"}})
}

fn auto() -> Value {
    json!({"project": "team", "source": {"repoURL": "https://g/r", "targetRevision": "main"},
           "syncPolicy": {"automated": {"prune": true}}})
}

fn history() -> Value {
    json!({"history": [
        {"id": 0, "revision": "aaa", "source": {"repoURL": "https://g/r", "targetRevision": "main"}},
        {"id": 1, "revision": "bbb", "source": {"repoURL": "https://g/r", "targetRevision": "main"}}
    ]})
}

#[test]
fn sync_operation_shape() {
    let req = SyncRequest {
        revision: Some("abc".into()),
        prune: true,
        dry_run: true,
        resources: Some(vec![SyncResource {
            group: "apps".into(),
            kind: "Deployment".into(),
            name: "web".into(),
            namespace: "team-a".into(),
        }]),
        sync_options: Some(vec!["Replace=true".into()]),
        ..Default::default()
    };
    insta::assert_json_snapshot!(sync_operation(&req, "alice"));
    assert_eq!(
        sync_operation(&SyncRequest::default(), "bob"),
        json!({"sync": {"prune": false}, "initiatedBy": {"username": "bob"}})
    );
}

#[test]
fn sync_refusals() {
    let rev = |r: &str| SyncRequest {
        revision: Some(r.into()),
        ..Default::default()
    };
    let running = json!({"operationState": {"phase": "Running"}});
    let done = json!({"operationState": {"phase": "Succeeded"}});
    let cases: Vec<(Application, SyncRequest, Result<(), &str>)> = vec![
        (app(manual(), done.clone()), SyncRequest::default(), Ok(())),
        (
            app(manual(), running.clone()),
            SyncRequest::default(),
            Err("another operation is already in progress"),
        ),
        (app(manual(), done.clone()), rev("other"), Ok(())),
        (app(auto(), done.clone()), rev("main"), Ok(())),
        (
            app(auto(), done.clone()),
            rev("other"),
            Err("Cannot sync to other: auto-sync currently set to main"),
        ),
        (app(auto(), done.clone()), SyncRequest::default(), Ok(())),
    ];
    for (a, req, want) in cases {
        assert_eq!(check_sync(&a, &req), want.map_err(String::from), "{req:?}");
    }
    let dry = SyncRequest {
        revision: Some("other".into()),
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(
        check_sync(&app(auto(), json!({})), &dry),
        Ok(()),
        "a dry run may preview another revision"
    );
    let mut deleting = app(manual(), json!({}));
    deleting.metadata.deletion_timestamp =
        serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("time");
    assert_eq!(
        check_sync(&deleting, &SyncRequest::default()),
        Err("application is deleting".into())
    );
    for (spec, r, want) in [
        (manual(), Some("main"), None),
        (manual(), Some("v2"), Some("v2")),
        (manual(), None, None),
        (
            json!({"source": {"repoURL": "https://g/r"}}),
            Some("HEAD"),
            None,
        ),
        (
            json!({"source": {"repoURL": "https://g/r"}}),
            Some("main"),
            Some("main"),
        ),
    ] {
        let req = SyncRequest {
            revision: r.map(String::from),
            ..Default::default()
        };
        assert_eq!(
            other_revision(&app(spec.clone(), json!({})), &req),
            want,
            "{spec} {r:?}"
        );
    }
    let mut pending = app(manual(), done);
    pending.operation = Some(json!({"sync": {}}));
    assert!(check_sync(&pending, &SyncRequest::default()).is_err());
}

#[test]
fn rollback_table() {
    let req = |id| RollbackRequest {
        id,
        prune: false,
        dry_run: false,
    };
    let err = rollback_operation(&app(auto(), history()), &req(0), "alice").expect_err("auto");
    assert_eq!(
        err,
        "rollback cannot be initiated when auto-sync is enabled"
    );
    let err = rollback_operation(&app(manual(), history()), &req(5), "alice").expect_err("id");
    assert_eq!(err, "application web does not have deployment with id 5");
    let mut running = history();
    running["operationState"] = json!({"phase": "Running"});
    assert!(rollback_operation(&app(manual(), running), &req(0), "a").is_err());
    let mut disabled = auto();
    disabled["syncPolicy"]["automated"]["enabled"] = json!(false);
    assert!(rollback_operation(&app(disabled, history()), &req(0), "a").is_ok());
    let op = rollback_operation(&app(manual(), history()), &req(0), "alice").expect("ok");
    insta::assert_json_snapshot!(op);
}

#[test]
fn cascade_finalizers_table() {
    let other = "example.com/keep".to_string();
    let cases: &[(&[&str], bool, bool, &[&str])] = &[
        (&[], true, false, &[RESOURCES_FINALIZER]),
        (&[], true, true, &[RESOURCES_FINALIZER_BACKGROUND]),
        (&[], false, false, &[]),
        (&[RESOURCES_FINALIZER], false, false, &[]),
        (
            &[RESOURCES_FINALIZER],
            true,
            true,
            &[RESOURCES_FINALIZER_BACKGROUND],
        ),
        (
            &["example.com/keep", RESOURCES_FINALIZER],
            false,
            false,
            &["example.com/keep"],
        ),
    ];
    for (current, cascade, background, want) in cases {
        let current: Vec<String> = current.iter().map(|s| s.to_string()).collect();
        let got = cascade_finalizers(&current, *cascade, *background);
        assert_eq!(
            got,
            want.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{current:?}"
        );
    }
    assert_eq!(
        cascade_finalizers(std::slice::from_ref(&other), true, false),
        vec![other, RESOURCES_FINALIZER.to_string()]
    );
}

#[test]
fn parse_app_table() {
    let good = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "web", "resourceVersion": "9"},
        "spec": {"project": "p"}, "status": {"sync": {"status": "Synced"}}, "operation": {"sync": {}}});
    let a = parse_app(good, "argocd").expect("valid");
    assert_eq!(a.metadata.namespace.as_deref(), Some("argocd"));
    assert!(a.status.is_none() && a.operation.is_none() && a.metadata.resource_version.is_none());
    let cases = [
        (
            json!({"kind": "AppProject", "metadata": {"name": "x"}}),
            "field `kind`",
        ),
        (
            json!({"kind": "Application", "metadata": {}}),
            "field `metadata.name`",
        ),
        (
            json!({"metadata": {"name": "x", "namespace": "other"}}),
            "field `metadata.namespace`",
        ),
        (
            json!({"metadata": {"name": "x"}, "spec": "nope"}),
            "not an Application",
        ),
    ];
    for (body, want) in cases {
        let err = parse_app(body, "argocd").expect_err("invalid");
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn resource_tree_follows_owner_references() {
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "a", "uid": "d1"}});
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-1", "namespace": "a", "uid": "r1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1"}]}});
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1-x", "namespace": "a", "uid": "p1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "r1"}]},
        "status": {"phase": "Running"}});
    let stranger = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "other", "namespace": "a", "uid": "p2"}});
    // The pod comes before its parent in the list: the walk reaches a fixpoint anyway.
    let nodes = build_tree(&[deploy], &[pod, stranger, rs]);
    insta::assert_json_snapshot!(nodes);
}
