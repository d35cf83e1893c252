//! Promotion by Git commit over the real HTTP router against a real bare Git repository
//! (`file://`, and smart HTTP through `git http-backend` on loopback): the promoting user's
//! commit keeps the file's comments, a user without `promote` on `<model>/<alias>` makes no
//! commit, review mode pushes a branch, and two promoters pushing to one branch at once both
//! land on a linear history.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

#[path = "common/git_http.rs"]
mod git_http;
use git_http::HttpServer;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cairn::api::{self, AppState, CSRF_HEADER, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::{Capability, Config, UserConfig};
use cairn::lineage::promote::op::Promoter;
use cairn::lineage::promote::rule::PromotionRule;
use cairn::lineage::registry::{self, NewVersion};
use cairn::store::Store;
use git2::{Repository, Signature};
use http_body_util::BodyExt;
use tower::ServiceExt;

const FILE: &str = "apps/recommender/values/prod.yaml";
const VALUES: &str = "\
# Values of the recommender in prod.
model:
  # the artifact the server loads
  uri: s3://models/recommender/1  # set by cairn
  version: 1

replicas: 2
";
const PASSWORD: &str = "a-long-password-123";

fn seed(dir: &Path) {
    let repo = Repository::init_bare(dir).expect("init");
    let mut index = git2::Index::new().expect("index");
    let blob = repo.blob(VALUES.as_bytes()).expect("blob");
    index
        .add(&git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: VALUES.len() as u32,
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: FILE.as_bytes().to_vec(),
        })
        .expect("add");
    let tree = repo
        .find_tree(index.write_tree_to(&repo).expect("tree"))
        .expect("tree");
    let sig = Signature::now("test", "t@example.com").expect("sig");
    repo.commit(Some("refs/heads/main"), &sig, &sig, "initial", &tree, &[])
        .expect("commit");
    repo.set_head("refs/heads/main").expect("head");
}

fn history(dir: &Path, branch: &str) -> Vec<String> {
    let repo = Repository::open_bare(dir).expect("open");
    let mut walk = repo.revwalk().expect("walk");
    walk.push_ref(&format!("refs/heads/{branch}"))
        .expect("branch");
    walk.simplify_first_parent().expect("first parent");
    walk.map(|o| {
        let c = repo.find_commit(o.expect("oid")).expect("commit");
        c.summary().ok().flatten().unwrap_or_default().to_string()
    })
    .collect()
}

fn file_at(dir: &Path, branch: &str) -> String {
    let repo = Repository::open_bare(dir).expect("open");
    let tree = repo
        .find_reference(&format!("refs/heads/{branch}"))
        .expect("ref")
        .peel_to_tree()
        .expect("tree");
    let blob = tree
        .get_path(Path::new(FILE))
        .expect("file")
        .to_object(&repo)
        .expect("obj")
        .peel_to_blob()
        .expect("blob");
    String::from_utf8(blob.content().to_vec()).expect("utf8")
}

fn rule(repo: &str, alias: &str, path: &str) -> PromotionRule {
    let mut set = BTreeMap::new();
    set.insert(path.to_string(), "{{version}}".to_string());
    if alias == "prod" {
        set.insert("model.uri".to_string(), "{{uri}}".to_string());
    }
    PromotionRule {
        model: "recommender".into(),
        alias: alias.into(),
        repo: repo.into(),
        branch: "main".into(),
        file: FILE.into(),
        set,
        review: false,
        author_name: "cairn".into(),
        author_email: "cairn@localhost".into(),
    }
}

struct Fixture {
    app: Router,
    store: Store,
    remote: std::path::PathBuf,
    config: Config,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = dir.path().join("gitops.git");
    seed(&remote);
    let url = format!("file://{}", remote.display());
    let mut config = Config::with_data_dir(dir.path().join("data"));
    config.rbac.policy_default = String::new();
    config.rbac.policy_csv = "p, alice, models, promote, recommender/*, allow\n\
                              p, alice, models, get, *, allow\n\
                              p, bob, models, promote, recommender/staging, allow\n"
        .into();
    config.promotion = vec![
        rule(&url, "prod", "model.version"),
        rule(&url, "canary", "canary.version"),
    ];
    config.validate().expect("config");
    for user in ["alice", "bob"] {
        config.accounts.users.insert(
            user.into(),
            UserConfig {
                capabilities: vec![Capability::Login],
                enabled: true,
            },
        );
    }
    std::fs::create_dir_all(&config.server.data_dir).expect("data dir");
    let store = Store::open(&config.server.data_dir).expect("store");
    for v in 1..=3 {
        let new = NewVersion {
            source_uri: format!("s3://models/recommender/{v}"),
            ..NewVersion::default()
        };
        store
            .write(move |txn| {
                registry::register_version(
                    txn,
                    "recommender",
                    &new,
                    "admin",
                    jiff::Timestamp::now(),
                )
            })
            .await
            .expect("register");
    }
    let auth =
        Arc::new(Auth::with_hasher(store.clone(), &config, Hasher::insecure_fast()).expect("auth"));
    let admin_password = auth
        .ensure_admin()
        .await
        .expect("admin")
        .expect("new admin password")
        .expose()
        .to_string();
    let admin = cairn::auth::Principal::local("admin");
    for user in ["alice", "bob"] {
        auth.change_password(&admin, user, &admin_password, PASSWORD)
            .await
            .expect("password");
    }
    let state = AppState::new(StateParts {
        auth,
        kube: None,
        namespace: "argocd".into(),
        secure_cookies: false,
        public_url: None,
        metrics: None,
    });
    let state = state.with_promoter(Promoter::from_config(
        &config,
        store.clone(),
        None,
        "argocd",
    ));
    Fixture {
        app: api::router(state),
        store,
        remote,
        config,
        _dir: dir,
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn login(app: &Router, user: &str) -> String {
    let req = Request::post("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .header(CSRF_HEADER, "1")
        .body(Body::from(
            serde_json::json!({ "username": user, "password": PASSWORD }).to_string(),
        ))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("login");
    assert_eq!(resp.status(), StatusCode::OK, "login {user}");
    resp.headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("cookie")
        .to_string()
}

async fn promote(app: &Router, cookie: &str, body: serde_json::Value) -> (StatusCode, String) {
    let req = Request::post("/api/v1/models/recommender/promote")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, cookie)
        .header(CSRF_HEADER, "1")
        .body(Body::from(body.to_string()))
        .expect("request");
    send(app, req).await
}

#[tokio::test]
async fn promote_commits_once_keeping_comments() {
    let f = fixture().await;
    let alice = login(&f.app, "alice").await;
    let (status, body) = promote(
        &f.app,
        &alice,
        serde_json::json!({"version": 2, "alias": "prod"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let record: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(record["version"], 2);
    assert_eq!(record["by"], "alice");
    assert_eq!(
        history(&f.remote, "main"),
        vec!["promote recommender v2 to prod", "initial"]
    );
    assert_eq!(
        file_at(&f.remote, "main"),
        VALUES
            .replace("recommender/1", "recommender/2")
            .replace("version: 1", "version: 2")
    );
    let alias = f
        .store
        .read(|txn| registry::get_alias(txn, "recommender", "prod"))
        .expect("alias");
    assert_eq!(alias.version, 2);
    // The same promotion again changes nothing in Git.
    let (status, body) = promote(
        &f.app,
        &alice,
        serde_json::json!({"version": 2, "alias": "prod"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(history(&f.remote, "main").len(), 2);
    // Listed.
    let req = Request::get("/api/v1/promotions?model=recommender")
        .header(header::COOKIE, &alice)
        .body(Body::empty())
        .expect("request");
    let (status, body) = send(&f.app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn denied_promotion_makes_no_commit() {
    let f = fixture().await;
    let bob = login(&f.app, "bob").await;
    let (status, body) = promote(
        &f.app,
        &bob,
        serde_json::json!({"version": 2, "alias": "prod"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(history(&f.remote, "main"), vec!["initial"]);
    assert!(
        !f.config.server.data_dir.join("promote").exists(),
        "no work repository was even fetched"
    );
}

#[tokio::test]
async fn review_mode_pushes_a_branch() {
    let f = fixture().await;
    let alice = login(&f.app, "alice").await;
    let (status, body) = promote(
        &f.app,
        &alice,
        serde_json::json!({"version": 3, "alias": "prod", "review": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(history(&f.remote, "main"), vec!["initial"]);
    assert_eq!(
        history(&f.remote, "promote/recommender-prod-v3"),
        vec!["promote recommender v3 to prod", "initial"]
    );
}

/// Two processes promoting at once on one repository served over smart HTTP: both commits land,
/// one of them re-applied on the other's tip.
#[tokio::test]
async fn concurrent_promotions_both_land() {
    let f = fixture().await;
    // Two promoters with their own work repositories and locks, as two cairn processes would be.
    // Over smart HTTP, as a real Git server is reached: receive-pack updates the ref with a
    // compare-and-swap, so a push based on a stale tip is rejected and re-applied.
    let root = f.remote.parent().expect("remote's directory");
    let server = HttpServer::start(root, None);
    let url = server.url_of("gitops.git");
    let mut mine = f.config.clone();
    for rule in &mut mine.promotion {
        rule.repo = url.clone();
    }
    let mut other = mine.clone();
    other.server.data_dir = f.config.server.data_dir.join("other");
    let a = Promoter::from_config(&mine, f.store.clone(), None, "argocd");
    let b = Promoter::from_config(&other, f.store.clone(), None, "argocd");
    let allowed = |_: &str| true;
    let actor = cairn::lineage::promote::op::Actor {
        subject: "alice",
        allowed: &allowed,
    };
    let (ra, rb) = tokio::join!(
        a.promote(&actor, "recommender", 2, "prod", None),
        b.promote(&actor, "recommender", 3, "canary", None),
    );
    let (ra, rb) = (ra.expect("prod"), rb.expect("canary"));
    let mut subjects = history(&f.remote, "main");
    assert_eq!(subjects.pop().as_deref(), Some("initial"));
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            "promote recommender v2 to prod",
            "promote recommender v3 to canary"
        ]
    );
    let text = file_at(&f.remote, "main");
    assert!(
        text.contains("  version: 2\n") && text.contains("canary:\n  version: \"3\"\n"),
        "{text}"
    );
    assert!(ra.attempts + rb.attempts >= 2);
}
