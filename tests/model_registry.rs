//! The model registry's API over the real router and store (no cluster): create a model,
//! register three versions, set aliases, and RBAC on `<model>/<alias>` — a group that may
//! register versions of `recommender` may not move `recommender/prod`; another may.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cairn::api::{self, AppState, CSRF_HEADER, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::{Capability, Config, UserConfig};
use cairn::store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "a-long-password-123";

const POLICY: &str = "\
p, role:ds, models, get, recommender, allow
p, role:ds, models, create, recommender, allow
p, role:ds, models, delete, recommender, allow
p, role:ds, models, promote, recommender/staging, allow
p, role:release, models, get, *, allow
p, role:release, models, promote, recommender/prod, allow
p, role:other, models, get, other, allow
g, alice, role:ds
g, bob, role:release
g, carol, role:other
";

struct Fixture {
    app: Router,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.rbac.policy_default = String::new();
    config.rbac.policy_csv = POLICY.into();
    for user in ["alice", "bob", "carol"] {
        config.accounts.users.insert(
            user.into(),
            UserConfig {
                capabilities: vec![Capability::Login],
                enabled: true,
            },
        );
    }
    let store = Store::open(dir.path()).expect("store");
    let auth = Arc::new(
        Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth from config"),
    );
    let admin_password = auth
        .ensure_admin()
        .await
        .expect("ensure admin")
        .expect("a new store generates the admin password")
        .expose()
        .to_string();
    let admin = cairn::auth::Principal::local("admin");
    for user in ["alice", "bob", "carol"] {
        auth.change_password(&admin, user, &admin_password, PASSWORD)
            .await
            .expect("admin sets the password");
    }
    let state = AppState::new(StateParts {
        auth,
        kube: None,
        namespace: "argocd".into(),
        secure_cookies: false,
        public_url: None,
        metrics: None,
    });
    Fixture {
        app: api::router(state),
        _dir: dir,
    }
}

async fn call(
    app: &Router,
    cookie: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie)
        .header(CSRF_HEADER, "1");
    let body = match body {
        Some(b) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = app
        .clone()
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("router answers");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn login(app: &Router, user: &str) -> String {
    let req = Request::post("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .header(CSRF_HEADER, "1")
        .body(Body::from(
            json!({ "username": user, "password": PASSWORD }).to_string(),
        ))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("login answers");
    assert_eq!(resp.status(), StatusCode::OK, "login of {user}");
    resp.headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("session cookie")
        .to_owned()
}

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn register_alias_and_rbac_on_aliases() {
    let fx = fixture().await;
    let app = &fx.app;
    let alice = login(app, "alice").await;
    let bob = login(app, "bob").await;
    let carol = login(app, "carol").await;

    let (status, model) = call(
        app,
        &alice,
        Method::POST,
        "/api/v1/models",
        Some(json!({"name": "recommender", "description": "item-kNN", "tags": {"team": "recs"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{model}");
    assert_eq!(model["createdBy"], "alice");
    let (status, body) = call(
        app,
        &alice,
        Method::POST,
        "/api/v1/models",
        Some(json!({"name": "recommender"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a second create: {body}");
    assert_eq!(body["error"], "conflict", "{body}");
    let (status, body) = call(
        app,
        &alice,
        Method::POST,
        "/api/v1/models",
        Some(json!({"name": "ranker"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "alice may create recommender only: {body}"
    );

    for (i, score) in [0.31, 0.41, 0.38].into_iter().enumerate() {
        let (status, v) = call(
            app,
            &alice,
            Method::POST,
            "/api/v1/models/recommender/versions",
            Some(json!({
                "sourceUri": format!("cairn://ml/pipe-{i}/model.tgz"),
                "digest": DIGEST,
                "metrics": {"score": score},
                "params": {"top_k": "20"},
                // Ignored: a run link only comes from a workflow pod's identity.
                "run": {"namespace": "x", "workflow": "y", "workflowUid": "z", "nodeId": "n"},
            })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        assert_eq!(v["version"], i as u64 + 1);
        assert_eq!(v["metrics"]["score"], score);
        assert!(v.get("run").is_none(), "no run link from a user: {v}");
        assert!(
            v["lineageId"].as_str().is_some_and(|id| !id.is_empty()),
            "recorded in lineage: {v}"
        );
    }
    let (status, body) = call(
        app,
        &alice,
        Method::POST,
        "/api/v1/models/recommender/versions",
        Some(json!({"sourceUri": "s3://x", "digest": "md5:abc"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "model \"recommender\": digest: expected sha256:<64 lowercase hex digits>; got \"md5:abc\""
    );

    // alice may set `staging`, not `prod`; the refused alias is not written.
    let (status, body) = call(
        app,
        &alice,
        Method::PUT,
        "/api/v1/models/recommender/aliases/staging",
        Some(json!({"version": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        app,
        &alice,
        Method::PUT,
        "/api/v1/models/recommender/aliases/prod",
        Some(json!({"version": 3})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        body["message"],
        "permission denied: promote on models recommender/prod"
    );
    let (status, _) = call(
        app,
        &bob,
        Method::GET,
        "/api/v1/models/recommender/aliases/prod",
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the denied alias was not set"
    );

    // bob (release) sets prod, and moves it.
    for (version, previous) in [(2, Value::Null), (3, json!(2))] {
        let (status, body) = call(
            app,
            &bob,
            Method::PUT,
            "/api/v1/models/recommender/aliases/prod",
            Some(json!({ "version": version })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["previousVersion"], previous);
        assert_eq!(body["setBy"], "bob");
    }
    let (status, body) = call(
        app,
        &alice,
        Method::GET,
        "/api/v1/models/recommender/aliases/prod",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], 3);
    assert_eq!(
        body["modelVersion"]["sourceUri"],
        "cairn://ml/pipe-2/model.tgz"
    );
    let (status, body) = call(
        app,
        &bob,
        Method::PUT,
        "/api/v1/models/recommender/aliases/prod",
        Some(json!({"version": 9})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body["message"],
        "version 9 of model \"recommender\" not found"
    );

    // The model shows its aliases; versions list which aliases point at them.
    let (_, m) = call(app, &alice, Method::GET, "/api/v1/models/recommender", None).await;
    assert_eq!(m["aliases"], json!({"prod": 3, "staging": 3}));
    assert_eq!(m["latestVersion"], 3);
    let (_, versions) = call(
        app,
        &alice,
        Method::GET,
        "/api/v1/models/recommender/versions",
        None,
    )
    .await;
    let listed: Vec<(u64, Value)> = versions["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|v| (v["version"].as_u64().unwrap_or(0), v["aliases"].clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (1, json!([])),
            (2, json!([])),
            (3, json!(["prod", "staging"]))
        ]
    );

    // alice may delete versions, but not one `prod` points at (that would move prod).
    let (status, body) = call(
        app,
        &alice,
        Method::DELETE,
        "/api/v1/models/recommender/versions/3",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = call(
        app,
        &alice,
        Method::GET,
        "/api/v1/models/recommender/versions/3",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the refused delete removed nothing");
    let (status, body) = call(
        app,
        &alice,
        Method::DELETE,
        "/api/v1/models/recommender/versions/1",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // carol sees only what she may get.
    let (status, list) = call(app, &carol, Method::GET, "/api/v1/models", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([]));
    let (status, _) = call(app, &carol, Method::GET, "/api/v1/models/recommender", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, list) = call(app, &bob, Method::GET, "/api/v1/models", None).await;
    assert_eq!(list["items"][0]["name"], "recommender");

    // Invalid names and aliases name the field and what was expected.
    let (status, body) = call(
        app,
        &bob,
        Method::PUT,
        "/api/v1/models/recommender/aliases/latest",
        Some(json!({"version": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("model \"recommender\": alias: expected not 'latest'")),
        "{body}"
    );
}
