//! The HTTP API's security contract, checked over the real router.
//!
//! The route-table test walks `cairn::api::routes()`, the same table the router is built from,
//! so a route added later is covered without touching this file: no credentials → 401, a
//! subject whose role lacks the permission → 403, admin → passes the gate.
//!
//! With `CAIRN_E2E=1` the router also gets a real cluster client (KUBECONFIG), and admin's list
//! routes must answer 200 with real data.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cairn::api::{self, Access, AppState, CSRF_HEADER, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::{Capability, Config, UserConfig};
use cairn::store::Store;
use http_body_util::BodyExt;
use tower::ServiceExt;

const ALICE_PASSWORD: &str = "alice-password-123";

struct Fixture {
    app: Router,
    admin_password: String,
    _dir: tempfile::TempDir,
}

fn e2e() -> bool {
    std::env::var("CAIRN_E2E").is_ok_and(|v| v == "1")
}

async fn fixture_with(mutate: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    // No default role: a subject gets exactly what policy_csv grants it.
    config.rbac.policy_default = String::new();
    config.accounts.users.insert(
        "alice".into(),
        UserConfig {
            capabilities: vec![Capability::Login, Capability::ApiKey],
            enabled: true,
        },
    );
    mutate(&mut config);
    let store = Store::open(dir.path()).expect("store");
    // The server always wires the workflow archive; so does this fixture.
    let archive = cairn::workflow::archive::Archive::new(
        store.clone(),
        config.workflow.archive_log_limit_bytes,
    );
    // And the events runtime's HTTP side: the embedded bus and the sensor history.
    let events = {
        use cairn::events::bus::{AnyBus, embedded};
        let bus = embedded::EmbeddedBus::open(
            store.clone(),
            embedded::Retention::from_config(&config.events),
        )
        .expect("embedded bus");
        let history = cairn::events::history::History::open(store.clone())
            .await
            .expect("sensor history");
        cairn::events::sources::webhook::EventsState::new(
            AnyBus::Embedded(bus),
            config.events.max_body_bytes,
        )
        .with_history(history)
    };
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
    auth.change_password(&admin, "alice", &admin_password, ALICE_PASSWORD)
        .await
        .expect("admin sets alice's password");
    let kube = if e2e() {
        Some(
            cairn::k8s::client()
                .await
                .expect("CAIRN_E2E=1 needs a cluster"),
        )
    } else {
        None
    };
    let state = AppState::new(StateParts {
        auth,
        kube,
        namespace: "argocd".into(),
        secure_cookies: false,
        public_url: None,
        metrics: None,
    })
    .with_workflows(cairn::api::WorkflowsState { archive })
    .with_events(events);
    Fixture {
        app: api::router(state),
        admin_password,
        _dir: dir,
    }
}

async fn fixture() -> Fixture {
    fixture_with(|_| {}).await
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    // An event stream never ends: only its status and headers are read.
    if headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
    {
        return (status, headers, String::new());
    }
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn login_request(user: &str, password: &str) -> Request<Body> {
    Request::post("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .header(CSRF_HEADER, "1")
        .body(Body::from(
            serde_json::json!({ "username": user, "password": password }).to_string(),
        ))
        .expect("request")
}

/// Logs in and returns the session cookie pair (`cairn_session=...`).
async fn login(app: &Router, user: &str, password: &str) -> String {
    let (status, headers, body) = send(app, login_request(user, password)).await;
    assert_eq!(status, StatusCode::OK, "login of {user}: {body}");
    let set_cookie = headers
        .get(header::SET_COOKIE)
        .expect("login sets a cookie")
        .to_str()
        .expect("ascii cookie");
    set_cookie
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string()
}

/// A concrete path for a route pattern: account names point at `admin` (another account than
/// the unprivileged caller), namespaces at `default`.
fn concrete(path: &str) -> String {
    path.replace("{name}", "admin")
        .replace("{namespace}", "default")
        .replace("{id}", "no-such-token")
}

/// The query a GET route without path parameters needs to answer 200 or 404 (MLflow's API and
/// the lineage graph take their identifiers as query parameters); `None` for routes that need
/// none.
fn required_query(path: &str) -> Option<&'static str> {
    Some(match path {
        "/api/v1/lineage/graph" => "from=a:0&hops=1",
        "/api/2.0/mlflow/experiments/get" => "experiment_id=0",
        "/api/2.0/mlflow/experiments/get-by-name" => "experiment_name=Default",
        "/api/2.0/mlflow/runs/get" | "/api/2.0/mlflow/metrics/get-history" => {
            "run_id=0123456789abcdef0123456789abcdef&metric_key=score"
        }
        "/api/2.0/mlflow/registered-models/get" => "name=recommender",
        "/api/2.0/mlflow/registered-models/alias" => "name=recommender&alias=prod",
        "/api/2.0/mlflow/model-versions/get" => "name=recommender&version=1",
        "/api/2.0/mlflow-artifacts/artifacts" => "path=0/run/artifacts",
        _ => return None,
    })
}

fn request(method: &Method, path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(c) = cookie {
        builder = builder.header(header::COOKIE, c);
    }
    let body = if matches!(*method, Method::GET | Method::HEAD) {
        Body::empty()
    } else {
        Body::from("{}")
    };
    builder.body(body).expect("request")
}

#[tokio::test]
async fn every_route_requires_authentication_and_permission() {
    let fx = fixture().await;
    let routes = api::routes();
    assert!(routes.len() >= 10, "the route table lists the API");
    let alice = login(&fx.app, "alice", ALICE_PASSWORD).await;
    let mut checked = 0;
    let mut public = 0;
    // GET routes without path parameters that did not answer 200 (with a cluster).
    let mut not_ok = Vec::new();
    for (spec, _) in &routes {
        let path = concrete(spec.path);
        let label = format!("{} {}", spec.method, spec.path);
        if spec.access == Access::Public {
            // The Git webhook is authenticated by the provider's signature (tests/app_api.rs),
            // event source endpoints by the EventSource's secret (tests/events_webhook.rs).
            assert!(
                spec.path == "/api/v1/session"
                    || spec.path == "/api/webhook"
                    || spec.path == api::EVENTS_WEBHOOK_PATH,
                "only login and the webhooks may be public: {label}"
            );
            public += 1;
            continue;
        }
        // 1. No credentials.
        let (status, _, body) = send(&fx.app, request(&spec.method, &path, None)).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{label} without credentials: {body}"
        );
        // 2. A subject without the permission.
        if !matches!(spec.access, Access::Session) {
            let (status, _, body) = send(&fx.app, request(&spec.method, &path, Some(&alice))).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{label} as alice: {body}");
        }
        // 3. Admin, with a fresh session (a route may end the session it is called with).
        let admin = login(&fx.app, "admin", &fx.admin_password).await;
        let (status, _, body) = send(&fx.app, request(&spec.method, &path, Some(&admin))).await;
        assert!(
            status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            "{label} as admin must pass the gate, got {status}: {body}"
        );
        if e2e() && spec.method == Method::GET && !spec.path.contains('{') {
            match required_query(spec.path) {
                // A route with required query parameters is called again with them, naming
                // something that may not exist: it must answer, found or not found, not 400/500.
                Some(query) => {
                    let with = format!("{path}?{query}");
                    let (status, _, body) =
                        send(&fx.app, request(&spec.method, &with, Some(&admin))).await;
                    if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
                        not_ok.push(format!(
                            "GET {with} as admin with a cluster: {status}: {body}"
                        ));
                    }
                }
                None if status != StatusCode::OK => {
                    not_ok.push(format!("{label} as admin with a cluster: {status}: {body}"));
                }
                None => {}
            }
        }
        checked += 1;
    }
    assert!(not_ok.is_empty(), "{}", not_ok.join("\n"));
    assert_eq!(checked, routes.len() - public);
}

#[tokio::test]
async fn granted_permission_opens_the_route() {
    let fx = fixture_with(|c| {
        c.rbac.policy_csv = "p, alice, accounts, get, *, allow\n".into();
    })
    .await;
    let alice = login(&fx.app, "alice", ALICE_PASSWORD).await;
    let (status, _, body) = send(
        &fx.app,
        request(&Method::GET, "/api/v1/account", Some(&alice)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("\"admin\"") && body.contains("\"alice\""),
        "{body}"
    );
}

#[tokio::test]
async fn login_cookie_flags_and_rotation() {
    let fx = fixture().await;
    let (status, headers, _) = send(&fx.app, login_request("admin", &fx.admin_password)).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "cookie lacks {flag}: {cookie}");
    }
    assert!(cookie.starts_with("cairn_session="), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "no Secure without TLS: {cookie}"
    );
    let first = cookie.split(';').next().expect("pair").to_string();

    // A second login from the same browser gets a new id and ends the old session.
    let mut again = login_request("admin", &fx.admin_password);
    again
        .headers_mut()
        .insert(header::COOKIE, first.parse().expect("header"));
    let (status, headers, _) = send(&fx.app, again).await;
    assert_eq!(status, StatusCode::OK);
    let second = headers[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    assert_ne!(first, second, "session id rotates at login");
    let (status, _, _) = send(
        &fx.app,
        request(&Method::GET, "/api/v1/session/userinfo", Some(&first)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old session is gone");
    let (status, _, body) = send(
        &fx.app,
        request(&Method::GET, "/api/v1/session/userinfo", Some(&second)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"username\":\"admin\""), "{body}");
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::with_data_dir(dir.path());
    let store = Store::open(dir.path()).expect("store");
    let auth = Arc::new(Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth"));
    let password = auth.ensure_admin().await.expect("admin").expect("new");
    let app = api::router(AppState::new(StateParts {
        auth,
        kube: None,
        namespace: "argocd".into(),
        secure_cookies: true,
        public_url: Some("https://cairn.example.com".into()),
        metrics: None,
    }));
    let (status, headers, _) = send(&app, login_request("admin", password.expose())).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with("__Host-cairn_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn csrf_defences() {
    let fx = fixture().await;
    // Missing custom header.
    let mut req = login_request("admin", &fx.admin_password);
    req.headers_mut().remove(CSRF_HEADER);
    let (status, _, body) = send(&fx.app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("csrf"), "{body}");
    // Cross-site Origin.
    let mut req = login_request("admin", &fx.admin_password);
    req.headers_mut()
        .insert(header::ORIGIN, "https://evil.example".parse().expect("h"));
    req.headers_mut()
        .insert(header::HOST, "127.0.0.1:8080".parse().expect("h"));
    let (status, _, _) = send(&fx.app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Same Origin passes.
    let mut req = login_request("admin", &fx.admin_password);
    req.headers_mut()
        .insert(header::ORIGIN, "http://127.0.0.1:8080".parse().expect("h"));
    req.headers_mut()
        .insert(header::HOST, "127.0.0.1:8080".parse().expect("h"));
    let (status, _, _) = send(&fx.app, req).await;
    assert_eq!(status, StatusCode::OK);
    // A logged-in session still cannot log out cross-site.
    let admin = login(&fx.app, "admin", &fx.admin_password).await;
    let req = Request::delete("/api/v1/session")
        .header(header::COOKIE, &admin)
        .body(Body::empty())
        .expect("req");
    let (status, _, _) = send(&fx.app, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn logout_ends_the_session() {
    let fx = fixture().await;
    let admin = login(&fx.app, "admin", &fx.admin_password).await;
    let (status, headers, _) = send(
        &fx.app,
        request(&Method::DELETE, "/api/v1/session", Some(&admin)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cleared = headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, _, _) = send(
        &fx.app,
        request(&Method::GET, "/api/v1/session/userinfo", Some(&admin)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn lockout_after_five_failures() {
    let fx = fixture().await;
    for i in 0..5 {
        let (status, _, body) = send(&fx.app, login_request("alice", "wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
    }
    let (status, headers, body) = send(&fx.app, login_request("alice", ALICE_PASSWORD)).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "locked even with the right password: {body}"
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
    // Other accounts are unaffected.
    login(&fx.app, "admin", &fx.admin_password).await;
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let fx = fixture().await;
    let (s1, _, b1) = send(&fx.app, login_request("nobody", "x")).await;
    let (s2, _, b2) = send(&fx.app, login_request("admin", "x")).await;
    assert_eq!((s1, &b1), (s2, &b2));
}

#[tokio::test]
async fn api_tokens_work_until_revoked() {
    let fx = fixture().await;
    let alice = login(&fx.app, "alice", ALICE_PASSWORD).await;
    let req = Request::post("/api/v1/account/alice/token")
        .header(header::COOKIE, &alice)
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name":"ci","expiresIn":"30d"}"#))
        .expect("req");
    let (status, _, body) = send(&fx.app, req).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "alice creates her own token: {body}"
    );
    let created: serde_json::Value = serde_json::from_str(&body).expect("json");
    let token = created["token"].as_str().expect("token").to_string();
    let id = created["id"].as_str().expect("id").to_string();

    let bearer = |t: &str| {
        Request::get("/api/v1/session/userinfo")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::empty())
            .expect("req")
    };
    let (status, _, body) = send(&fx.app, bearer(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"username\":\"alice\""), "{body}");

    // The list shows the token without its secret.
    let (status, _, body) = send(
        &fx.app,
        request(&Method::GET, "/api/v1/account/alice/token", Some(&alice)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&id) && !body.contains(&token), "{body}");

    let (status, _, body) = send(
        &fx.app,
        request(
            &Method::DELETE,
            &format!("/api/v1/account/alice/token/{id}"),
            Some(&alice),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = send(&fx.app, bearer(&token)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token is refused"
    );
    let (status, _, _) = send(&fx.app, bearer("cairn_garbage")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn health_metrics_and_unknown_api_paths() {
    let fx = fixture().await;
    let (status, _, body) = send(&fx.app, request(&Method::GET, "/healthz", None)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
    let (status, _, body) = send(&fx.app, request(&Method::GET, "/readyz", None)).await;
    if e2e() {
        assert_eq!(status, StatusCode::OK, "{body}");
    } else {
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "no cluster: {body}"
        );
        assert!(body.contains("\"store\":true"), "{body}");
    }
    let (status, headers, _) = send(&fx.app, request(&Method::GET, "/metrics", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ct")
            .starts_with("text/plain")
    );
    let (status, _, body) = send(
        &fx.app,
        request(&Method::GET, "/api/v1/no-such-thing", None),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body.contains("not_found"),
        "unknown API paths answer JSON, not the SPA: {body}"
    );
}
