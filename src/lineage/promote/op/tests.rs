use std::collections::BTreeMap;

use super::*;
use crate::lineage::promote::git::tests::{VALUES, commit_files, read_file, tip};
use crate::lineage::registry::{NewVersion, RunLink};

const FILE: &str = "apps/recommender/values/prod.yaml";

fn rule_for(repo: &str) -> PromotionRule {
    let mut set = BTreeMap::new();
    set.insert("model.uri".to_string(), "{{uri}}".to_string());
    set.insert("model.version".to_string(), "{{version}}".to_string());
    PromotionRule {
        model: "recommender".into(),
        alias: "prod".into(),
        repo: repo.into(),
        branch: "main".into(),
        file: FILE.into(),
        set,
        review: false,
        author_name: "cairn".into(),
        author_email: "cairn@localhost".into(),
    }
}

fn version(status: VersionStatus) -> ModelVersion {
    ModelVersion {
        model: "recommender".into(),
        version: 4,
        source_uri: "s3://models/recommender/4".into(),
        digest: None,
        run: Some(RunLink {
            namespace: "ml".into(),
            workflow: "train-abc".into(),
            workflow_uid: "u".into(),
            node_id: "n".into(),
        }),
        metrics: BTreeMap::new(),
        params: BTreeMap::new(),
        tags: BTreeMap::new(),
        status,
        description: String::new(),
        created: Timestamp::UNIX_EPOCH,
        updated: None,
        created_by: "admin".into(),
        lineage_id: Some("ctx:model_version/recommender/4".into()),
    }
}

#[test]
fn plan_renders_values_message_and_branch() {
    let rules = vec![rule_for("file:///r.git")];
    let p = plan(&rules, &version(VersionStatus::Ready), "prod", None, None).expect("plan");
    assert_eq!(p.push_branch, "main");
    let values: Vec<(String, String)> = p
        .values
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            (
                "model.uri".to_string(),
                "s3://models/recommender/4".to_string()
            ),
            ("model.version".to_string(), "4".to_string()),
        ]
    );
    assert_eq!(
        p.message,
        "promote recommender v4 to prod\n\nSet by cairn in apps/recommender/values/prod.yaml.\n\n\
         Model-Version: recommender/4\nLineage-Id: ctx:model_version/recommender/4\nRun: ml/train-abc\n"
    );
    let review = plan(
        &rules,
        &version(VersionStatus::Ready),
        "prod",
        Some(true),
        None,
    )
    .expect("plan");
    assert_eq!(review.push_branch, "promote/recommender-prod-v4");
    assert!(matches!(
        plan(&rules, &version(VersionStatus::Pending), "prod", None, None),
        Err(PromoteError::NotReady {
            status: "Pending",
            ..
        })
    ));
    assert!(matches!(
        plan(
            &rules,
            &version(VersionStatus::Ready),
            "staging",
            None,
            None
        ),
        Err(PromoteError::NoRule { .. })
    ));
}

#[test]
fn url_is_the_content_route_under_the_executor_url() {
    let mut rule = rule_for("file:///r.git");
    rule.set
        .insert("model.uri".to_string(), "{{url}}".to_string());
    assert!(rule.uses("url") && !rule.uses("digest"));
    let rules = vec![rule];
    let ready = version(VersionStatus::Ready);
    let p = plan(&rules, &ready, "prod", None, Some("http://10.1.2.3:9443/")).expect("plan");
    assert_eq!(
        p.values[0].1,
        "http://10.1.2.3:9443/executor/v1/models/recommender/versions/4/content"
    );
    // Without executor_url (config validation refuses such a rule), it renders empty.
    let p = plan(&rules, &ready, "prod", None, None).expect("plan");
    assert_eq!(p.values[0].1, "");
}

#[test]
fn promotion_keys_sort_by_time() {
    let a = promotion_key("m", "prod", Timestamp::from_second(1).expect("t"));
    let b = promotion_key("m", "prod", Timestamp::from_second(10).expect("t"));
    assert!(a < b);
    assert_eq!(a, "m/prod/00000000001000000000");
}

struct Fixture {
    _tmp: tempfile::TempDir,
    remote: std::path::PathBuf,
    store: Store,
    promoter: Promoter,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().expect("tempdir");
    let remote = tmp.path().join("gitops.git");
    commit_files(&remote, &[(FILE, VALUES)], "initial");
    let store = Store::open(&tmp.path().join("db")).expect("store");
    for v in 1..=4 {
        let new = NewVersion {
            source_uri: format!("s3://models/recommender/{v}"),
            ..NewVersion::default()
        };
        store
            .write(move |txn| {
                registry::register_version(txn, "recommender", &new, "admin", Timestamp::now())
            })
            .await
            .expect("register");
    }
    let promoter = Promoter::new(
        store.clone(),
        PromoterConfig {
            rules: vec![rule_for(&format!("file://{}", remote.display()))],
            data_dir: tmp.path().join("data"),
            known_hosts: KnownHosts::default(),
            timeout: Duration::from_secs(30),
            content_base: None,
        },
        Arc::new(CredentialStore::new(Vec::new())),
    );
    Fixture {
        _tmp: tmp,
        remote,
        store,
        promoter,
    }
}

fn allow(_: &str) -> bool {
    true
}
fn deny(_: &str) -> bool {
    false
}

#[tokio::test]
async fn promote_commits_sets_alias_and_records() {
    let f = fixture().await;
    let before = tip(&f.remote, "main");
    let actor = Actor {
        subject: "alice",
        allowed: &allow,
    };
    let p = f
        .promoter
        .promote(&actor, "recommender", 4, "prod", None)
        .await
        .expect("promote");
    let commit = p.commit.clone().expect("commit");
    assert_eq!(
        tip(&f.remote, "main").map(|o| o.to_string()),
        Some(commit.clone())
    );
    assert_ne!(tip(&f.remote, "main"), before);
    assert_eq!(
        read_file(&f.remote, "main", FILE),
        VALUES
            .replace("recommender/3", "recommender/4")
            .replace("version: 3", "version: 4")
    );
    assert_eq!(
        (p.version, p.previous_version, p.by.as_str()),
        (4, None, "alice")
    );
    assert!(p.lineage_id.is_some());
    let (alias, listed) = f
        .store
        .read(|txn| {
            Ok::<_, PromoteError>((
                registry::get_alias(txn, "recommender", "prod")
                    .map_err(|e| PromoteError::Registry(Box::new(e)))?,
                list_promotions(txn, Some("recommender"))?,
            ))
        })
        .expect("read");
    assert_eq!(alias.version, 4);
    assert_eq!(listed, vec![p.clone()]);

    // Rollback: version 3 first, then 4, then roll back to 3.
    let p3 = f
        .promoter
        .promote(&actor, "recommender", 3, "prod", None)
        .await
        .expect("v3");
    assert_eq!(p3.previous_version, Some(4));
    let again = f
        .promoter
        .promote(&actor, "recommender", 4, "prod", None)
        .await
        .expect("v4");
    let rb = f
        .promoter
        .rollback(&actor, "recommender", "prod")
        .await
        .expect("rollback");
    assert_eq!(
        (rb.kind, rb.version, rb.reverts.clone()),
        (PromotionKind::Rollback, 3, again.commit.clone())
    );
    assert!(read_file(&f.remote, "main", FILE).contains("version: 3"));
    let alias = f
        .store
        .read(|txn| registry::get_alias(txn, "recommender", "prod"))
        .expect("alias");
    assert_eq!(alias.version, 3);
}

#[tokio::test]
async fn denied_promotion_makes_no_commit() {
    let f = fixture().await;
    let before = tip(&f.remote, "main");
    let actor = Actor {
        subject: "mallory",
        allowed: &deny,
    };
    let err = f
        .promoter
        .promote(&actor, "recommender", 4, "prod", None)
        .await
        .expect_err("denied");
    assert_eq!(
        err.to_string(),
        "permission denied: mallory may not promote recommender/prod"
    );
    assert_eq!(tip(&f.remote, "main"), before);
    assert!(
        !f._tmp.path().join("data/promote").exists(),
        "Git was not touched"
    );
}

#[tokio::test]
async fn review_mode_leaves_the_alias() {
    let f = fixture().await;
    let actor = Actor {
        subject: "alice",
        allowed: &allow,
    };
    let before = tip(&f.remote, "main");
    let p = f
        .promoter
        .promote(&actor, "recommender", 4, "prod", Some(true))
        .await
        .expect("promote");
    assert!(p.review);
    assert_eq!(p.pushed_branch, "promote/recommender-prod-v4");
    assert_eq!(tip(&f.remote, "main"), before);
    assert_eq!(
        tip(&f.remote, "promote/recommender-prod-v4").map(|o| o.to_string()),
        p.commit
    );
    let alias = f
        .store
        .read(|txn| registry::get_alias(txn, "recommender", "prod"));
    assert!(alias.is_err(), "the alias did not move");
}
