//! The registry against a real store in a temporary directory.

use super::*;
use crate::store::Store;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).expect("time")
}

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    (dir, store)
}

async fn write<T: Send + 'static>(
    store: &Store,
    f: impl FnMut(&WriteTransaction) -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    store.write(f).await
}

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

fn version(uri: &str, score: f64) -> NewVersion {
    NewVersion {
        source_uri: uri.to_owned(),
        digest: Some(digest('a')),
        metrics: BTreeMap::from([("score".to_owned(), score)]),
        params: BTreeMap::from([("k".to_owned(), "20".to_owned())]),
        ..Default::default()
    }
}

async fn model(store: &Store, name: &'static str) -> RegisteredModel {
    write(store, move |txn| {
        create_model(
            txn,
            &NewModel {
                name: name.to_owned(),
                description: "d".into(),
                tags: BTreeMap::from([("team".to_owned(), "recs".to_owned())]),
            },
            "alice",
            t(0),
        )
    })
    .await
    .expect("create model")
}

fn invalid_field(err: RegistryError) -> String {
    match err {
        RegistryError::Invalid { field, expected } => format!("{field} | {expected}"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn model_names() {
    for ok in ["recommender", "a", "r2-d2", "m.v1_x", &"a".repeat(63)] {
        assert!(validate_model_name(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        "Recommender",
        "-a",
        "a-",
        "a/b",
        "a b",
        "ü",
        ".a",
        &"a".repeat(64),
    ] {
        let err = invalid_field(validate_model_name(bad).expect_err(bad));
        assert!(err.starts_with("model name | 1 to 63"), "{err}");
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn aliases_follow_mlflow() {
    for ok in [
        "prod",
        "champion",
        "Staging_2",
        "a-b",
        "v",
        "v1a",
        "version1",
        "latest2",
    ] {
        assert!(validate_alias("m", ok).is_ok(), "{ok}");
    }
    for (bad, why) in [
        ("", "1 to 256"),
        ("latest", "latest"),
        ("LATEST", "latest"),
        ("v1", "v<number>"),
        ("V12", "v<number>"),
        ("3", "not a number"),
        ("a/b", "only letters"),
        ("a.b", "only letters"),
        ("a b", "only letters"),
    ] {
        let err = invalid_field(validate_alias("m", bad).expect_err(bad));
        assert!(err.starts_with("model \"m\": alias | "), "{err}");
        assert!(err.contains(why), "{bad}: {err}");
    }
    assert!(validate_alias("m", &"a".repeat(256)).is_ok());
    assert!(validate_alias("m", &"a".repeat(257)).is_err());
}

#[test]
fn versions_validate_their_fields() {
    assert!(validate_new_version("m", &version("s3://b/k", 0.4)).is_ok());
    let cases: Vec<(NewVersion, &str)> = vec![
        (version("", 0.4), "sourceUri"),
        (version("  ", 0.4), "sourceUri"),
        (version("s3://b/\nk", 0.4), "sourceUri"),
        (version(&"x".repeat(MAX_URI_LEN + 1), 0.4), "sourceUri"),
        (version("s3://b/k", f64::NAN), "metrics.score"),
        (version("s3://b/k", f64::INFINITY), "metrics.score"),
        (
            NewVersion {
                digest: Some("sha256:ABC".into()),
                ..version("s3://b/k", 1.0)
            },
            "digest",
        ),
        (
            NewVersion {
                digest: Some("a".repeat(64)),
                ..version("s3://b/k", 1.0)
            },
            "digest",
        ),
        (
            NewVersion {
                params: BTreeMap::from([(String::new(), "x".into())]),
                ..version("s3://b/k", 1.0)
            },
            "params",
        ),
        (
            NewVersion {
                tags: BTreeMap::from([("k".into(), "x".repeat(MAX_VALUE_LEN + 1))]),
                ..version("s3://b/k", 1.0)
            },
            "tags.k",
        ),
        (
            NewVersion {
                tags: (0..=MAX_ENTRIES)
                    .map(|i| (format!("k{i}"), String::new()))
                    .collect(),
                ..version("s3://b/k", 1.0)
            },
            "tags",
        ),
        (
            NewVersion {
                description: "x".repeat(MAX_DESCRIPTION_LEN + 1),
                ..version("s3://b/k", 1.0)
            },
            "description",
        ),
    ];
    for (new, field) in cases {
        let err = invalid_field(validate_new_version("m", &new).expect_err(field));
        assert!(
            err.starts_with(&format!("model \"m\": {field} | ")),
            "{field}: {err}"
        );
    }
}

#[test]
fn filter_and_keys() {
    let m = RegisteredModel {
        name: "recommender".into(),
        description: String::new(),
        tags: BTreeMap::from([("team".into(), "recs".into())]),
        created: t(0),
        updated: t(0),
        created_by: "a".into(),
        next_version: 1,
    };
    assert!(ModelFilter::default().matches(&m));
    let by_name = |s: &str| ModelFilter {
        name_contains: Some(s.into()),
        ..Default::default()
    };
    assert!(by_name("comm").matches(&m));
    assert!(!by_name("x").matches(&m));
    let by_tag = |k: &str, v: &str| ModelFilter {
        tags: BTreeMap::from([(k.into(), v.into())]),
        ..Default::default()
    };
    assert!(by_tag("team", "recs").matches(&m));
    assert!(!by_tag("team", "ads").matches(&m));
    assert!(!by_tag("owner", "recs").matches(&m));
    assert_eq!(version_key("m", 3), "m/0000000003");
    assert_eq!(alias_key("m", "prod"), "m/prod");
    let labels: Vec<&str> = [
        RegistryError::NotFound { what: "x".into() },
        RegistryError::AlreadyExists { what: "x".into() },
        RegistryError::invalid("f", "e"),
        RegistryError::Store(StoreError::WriterStopped),
    ]
    .iter()
    .map(RegistryError::metric_label)
    .collect();
    assert_eq!(labels[..3], ["not_found", "already_exists", "invalid"]);
    assert_ne!(labels[3], "invalid");
}

#[tokio::test]
async fn models_create_get_list_update_delete() {
    let (_dir, store) = store();
    let created = model(&store, "recommender").await;
    assert_eq!(created.next_version, 1);
    assert_eq!(created.created_by, "alice");
    model(&store, "ranker").await;
    let again = write(&store, |txn| {
        create_model(
            txn,
            &NewModel {
                name: "ranker".into(),
                ..Default::default()
            },
            "bob",
            t(1),
        )
    })
    .await
    .expect_err("exists");
    assert_eq!(again.to_string(), "model \"ranker\" already exists");

    let names: Vec<String> = store
        .read(|txn| list_models(txn, &ModelFilter::default()))
        .expect("list")
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["ranker", "recommender"]);

    let updated = write(&store, |txn| {
        update_model(
            txn,
            "recommender",
            &ModelPatch {
                description: Some("item-kNN".into()),
                set_tags: BTreeMap::from([("tier".into(), "gold".into())]),
                remove_tags: vec!["team".into()],
            },
            t(5),
        )
    })
    .await
    .expect("update");
    assert_eq!(updated.description, "item-kNN");
    assert_eq!(
        updated.tags,
        BTreeMap::from([("tier".into(), "gold".into())])
    );
    assert_eq!(updated.updated, t(5));
    assert_eq!(updated.created, t(0));

    let missing = store
        .read(|txn| get_model(txn, "nope"))
        .expect_err("missing");
    assert_eq!(missing.to_string(), "model \"nope\" not found");
    let deleted = write(&store, |txn| delete_model(txn, "ranker"))
        .await
        .expect("delete");
    assert_eq!(deleted, Deleted::default());
    assert!(matches!(
        write(&store, |txn| delete_model(txn, "ranker")).await,
        Err(RegistryError::NotFound { .. })
    ));
}

#[tokio::test]
async fn versions_are_numbered_and_never_reused() {
    let (_dir, store) = store();
    model(&store, "recommender").await;
    // Another model's keys sort right after `recommender/`: the prefix must not leak them.
    model(&store, "recommender-2").await;
    for (i, score) in [0.31, 0.41, 0.38].into_iter().enumerate() {
        let v = write(&store, move |txn| {
            create_version(
                txn,
                "recommender",
                &version(&format!("s3://m/{i}"), score),
                "ci",
                t(10 + i as i64),
            )
        })
        .await
        .expect("register");
        assert_eq!(v.version, i as u64 + 1);
        assert_eq!(v.status, VersionStatus::Ready);
        assert_eq!(v.run, None);
    }
    write(&store, |txn| {
        create_version(txn, "recommender-2", &version("s3://o", 0.1), "ci", t(20))
    })
    .await
    .expect("other model");
    let listed: Vec<u64> = store
        .read(|txn| list_versions(txn, "recommender"))
        .expect("list")
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, [1, 2, 3]);
    assert_eq!(
        store
            .read(|txn| get_model(txn, "recommender"))
            .expect("model")
            .next_version,
        4
    );
    let removed = write(&store, |txn| delete_version(txn, "recommender", 3))
        .await
        .expect("delete 3");
    assert!(removed.is_empty());
    let v4 = write(&store, |txn| {
        create_version(txn, "recommender", &version("s3://m/4", 0.5), "ci", t(30))
    })
    .await
    .expect("register after delete");
    assert_eq!(v4.version, 4, "a deleted number is not given out again");
    let latest = store
        .read(|txn| latest_version(txn, "recommender"))
        .expect("latest")
        .map(|v| v.version);
    assert_eq!(latest, Some(4));

    let err = store
        .read(|txn| get_version(txn, "recommender", 3))
        .expect_err("deleted");
    assert_eq!(
        err.to_string(),
        "version 3 of model \"recommender\" not found"
    );
    let err = store
        .read(|txn| get_version(txn, "nope", 1))
        .expect_err("no model");
    assert_eq!(err.to_string(), "model \"nope\" not found");
    let err = write(&store, |txn| {
        create_version(txn, "nope", &version("s3://x", 0.1), "ci", t(31))
    })
    .await
    .expect_err("register under a missing model");
    assert_eq!(err.to_string(), "model \"nope\" not found");

    let patched = write(&store, |txn| {
        update_version(
            txn,
            "recommender",
            2,
            &VersionPatch {
                description: Some("best".into()),
                status: Some(VersionStatus::Failed),
                set_tags: BTreeMap::from([("gate".into(), "passed".into())]),
                remove_tags: vec![],
            },
            t(40),
        )
    })
    .await
    .expect("update version");
    assert_eq!(patched.description, "best");
    assert_eq!(patched.status, VersionStatus::Failed);
    assert_eq!(patched.updated, Some(t(40)));
    assert_eq!(patched.metrics["score"], 0.41);
    let linked = write(&store, |txn| {
        set_lineage_id(txn, "recommender", 2, "mv:abc")
    })
    .await
    .expect("lineage id");
    assert_eq!(linked.lineage_id.as_deref(), Some("mv:abc"));
}

#[tokio::test]
async fn concurrent_registrations_get_distinct_numbers() {
    let (_dir, store) = store();
    model(&store, "m").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .write(move |txn| {
                    create_version(txn, "m", &version(&format!("s3://{i}"), 0.1), "ci", t(i))
                })
                .await
                .map(|v| v.version)
        }));
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.expect("join").expect("register"));
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<u64>>());
}

#[tokio::test]
async fn aliases_point_at_existing_versions() {
    let (_dir, store) = store();
    model(&store, "recommender").await;
    for i in 0..2 {
        write(&store, move |txn| {
            create_version(txn, "recommender", &version("s3://m", 0.1), "ci", t(i))
        })
        .await
        .expect("register");
    }
    let prev = write(&store, |txn| {
        set_alias(txn, "recommender", "prod", 1, "rel", t(50))
    })
    .await
    .expect("set prod");
    assert_eq!(prev, None);
    let prev = write(&store, |txn| {
        set_alias(txn, "recommender", "prod", 2, "rel", t(51))
    })
    .await
    .expect("move prod");
    assert_eq!(prev.map(|p| p.version), Some(1));
    write(&store, |txn| {
        set_alias(txn, "recommender", "champion", 2, "rel", t(52))
    })
    .await
    .expect("champion");
    write(&store, |txn| {
        set_alias(txn, "recommender", "old", 1, "rel", t(53))
    })
    .await
    .expect("old");
    let (record, v) = store
        .read(|txn| get_by_alias(txn, "recommender", "prod"))
        .expect("by alias");
    assert_eq!(
        (record.version, record.set_by.as_str(), record.set_at),
        (2, "rel", t(51))
    );
    assert_eq!(v.version, 2);

    let err = write(&store, |txn| {
        set_alias(txn, "recommender", "prod", 9, "rel", t(54))
    })
    .await
    .expect_err("no version 9");
    assert_eq!(
        err.to_string(),
        "version 9 of model \"recommender\" not found"
    );
    let err = write(&store, |txn| {
        set_alias(txn, "recommender", "latest", 1, "rel", t(54))
    })
    .await
    .expect_err("reserved");
    assert!(matches!(err, RegistryError::Invalid { .. }), "{err}");
    let err = store
        .read(|txn| get_by_alias(txn, "recommender", "staging"))
        .expect_err("unset");
    assert_eq!(
        err.to_string(),
        "alias \"staging\" of model \"recommender\" not found"
    );

    // Deleting version 2 takes `prod` and `champion` with it, and leaves `old`.
    let mut removed = write(&store, |txn| delete_version(txn, "recommender", 2))
        .await
        .expect("delete v2");
    removed.sort();
    assert_eq!(removed, ["champion", "prod"]);
    let left: Vec<String> = store
        .read(|txn| list_aliases(txn, "recommender"))
        .expect("aliases")
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(left, ["old"]);
    let by_version = aliases_by_version(
        &store
            .read(|txn| list_aliases(txn, "recommender"))
            .expect("aliases"),
    );
    assert_eq!(by_version, BTreeMap::from([(1, vec!["old".to_owned()])]));

    let record = write(&store, |txn| delete_alias(txn, "recommender", "old"))
        .await
        .expect("delete alias");
    assert_eq!(record.version, 1);
    assert!(matches!(
        write(&store, |txn| delete_alias(txn, "recommender", "old")).await,
        Err(RegistryError::NotFound { .. })
    ));
}

#[tokio::test]
async fn deleting_a_model_deletes_its_versions_and_aliases_only() {
    let (_dir, store) = store();
    model(&store, "a").await;
    model(&store, "a-b").await;
    for name in ["a", "a", "a-b"] {
        write(&store, move |txn| {
            create_version(txn, name, &version("s3://m", 0.1), "ci", t(0))
        })
        .await
        .expect("register");
    }
    write(&store, |txn| set_alias(txn, "a", "prod", 2, "rel", t(1)))
        .await
        .expect("alias a");
    write(&store, |txn| set_alias(txn, "a-b", "prod", 1, "rel", t(1)))
        .await
        .expect("alias a-b");
    let deleted = write(&store, |txn| delete_model(txn, "a"))
        .await
        .expect("delete a");
    assert_eq!(
        deleted,
        Deleted {
            versions: vec![1, 2],
            aliases: vec!["prod".into()],
        }
    );
    // Re-creating the model starts over, with nothing left from before.
    model(&store, "a").await;
    assert!(
        store
            .read(|txn| list_versions(txn, "a"))
            .expect("list")
            .is_empty()
    );
    assert!(
        store
            .read(|txn| list_aliases(txn, "a"))
            .expect("list")
            .is_empty()
    );
    let (_, v) = store
        .read(|txn| get_by_alias(txn, "a-b", "prod"))
        .expect("a-b untouched");
    assert_eq!(v.model, "a-b");
}

#[tokio::test]
async fn a_failed_write_leaves_nothing() {
    let (_dir, store) = store();
    model(&store, "m").await;
    // Register, then fail in the same transaction: neither the version nor the counter stays.
    let err = write(&store, |txn| {
        create_version(txn, "m", &version("s3://m", 0.1), "ci", t(0))?;
        set_alias(txn, "m", "v2", 1, "rel", t(0))
    })
    .await
    .expect_err("invalid alias");
    assert!(matches!(err, RegistryError::Invalid { .. }));
    let m = store.read(|txn| get_model(txn, "m")).expect("model");
    assert_eq!(m.next_version, 1);
    assert!(
        store
            .read(|txn| list_versions(txn, "m"))
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn ensure_model_creates_once() {
    let (_dir, store) = store();
    let (m, created) = write(&store, |txn| ensure_model(txn, "m", "ci", t(0)))
        .await
        .expect("ensure");
    assert!(created);
    assert_eq!(m.name, "m");
    let (_, created) = write(&store, |txn| ensure_model(txn, "m", "ci", t(1)))
        .await
        .expect("ensure again");
    assert!(!created);
    assert!(matches!(
        write(&store, |txn| ensure_model(txn, "M", "ci", t(1))).await,
        Err(RegistryError::Invalid { .. })
    ));
}

#[test]
fn records_round_trip_as_camel_case_json() {
    let v = ModelVersion {
        model: "m".into(),
        version: 1,
        source_uri: "s3://b/k".into(),
        digest: Some(digest('b')),
        run: Some(RunLink {
            namespace: "ml".into(),
            workflow: "wf".into(),
            workflow_uid: "u".into(),
            node_id: "wf-123".into(),
        }),
        metrics: BTreeMap::from([("score".into(), 0.41)]),
        params: BTreeMap::new(),
        tags: BTreeMap::new(),
        status: VersionStatus::Ready,
        description: String::new(),
        created: t(0),
        updated: None,
        created_by: "system:serviceaccount:ml:default".into(),
        lineage_id: None,
    };
    let json = serde_json::to_value(&v).expect("json");
    assert_eq!(json["sourceUri"], "s3://b/k");
    assert_eq!(json["run"]["workflowUid"], "u");
    assert_eq!(json["status"], "Ready");
    assert_eq!(json["createdBy"], "system:serviceaccount:ml:default");
    let back: ModelVersion = serde_json::from_value(json).expect("back");
    assert_eq!(back, v);
    // A client cannot smuggle a run link in through a registration body.
    let new: NewVersion = serde_json::from_value(serde_json::json!({
        "sourceUri": "s3://x",
        "run": {"namespace": "a", "workflow": "b", "workflowUid": "c", "nodeId": "d"},
    }))
    .expect("new version");
    assert_eq!(new.run, None);
}
