//! No secret (password, token, cookie, Authorization header) ever reaches a log line.
//!
//! Captures everything the process logs, at TRACE level, while a password login, a failed
//! login, a token creation and bearer/cookie requests run through the real router; then looks
//! for each secret in the captured text.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cairn::api::{self, AppState, CSRF_HEADER, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::Config;
use cairn::store::Store;
use http_body_util::BodyExt;
use tower::ServiceExt;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn login(user: &str, password: &str) -> Request<Body> {
    Request::post("/api/v1/session")
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({"username": user, "password": password}).to_string(),
        ))
        .expect("req")
}

#[tokio::test]
async fn secrets_never_appear_in_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    cairn::telemetry::init_with_writer(cairn::telemetry::LogFormat::Json, "trace", move || {
        writer.clone()
    })
    .expect("install the subscriber once in this test binary");

    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::with_data_dir(dir.path());
    let store = Store::open(dir.path()).expect("store");
    let auth = Arc::new(Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth"));
    let admin_password = auth.ensure_admin().await.expect("admin").expect("new");
    let password = admin_password.expose().to_string();
    let app = api::router(AppState::new(StateParts {
        auth,
        kube: None,
        namespace: "argocd".into(),
        secure_cookies: false,
        public_url: None,
        metrics: None,
    }));

    let wrong = "Wr0ng-but-secret-guess";
    let (status, _, _) = call(&app, login("admin", wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, headers, _) = call(&app, login("admin", &password)).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = headers[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let session_id = cookie.split_once('=').expect("k=v").1.to_string();

    let req = Request::post("/api/v1/account/admin/token")
        .header(header::COOKIE, &cookie)
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"name":"ci"}"#))
        .expect("req");
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();

    for credential in [
        format!("Bearer {token}"),
        "Bearer cairn_forged_credential".to_string(),
    ] {
        let req = Request::get("/api/v1/session/userinfo")
            .header(header::AUTHORIZATION, credential)
            .body(Body::empty())
            .expect("req");
        call(&app, req).await;
    }
    let req = Request::get("/api/v1/session/userinfo?token=query-secret-value")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .expect("req");
    call(&app, req).await;

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("utf8 logs");
    assert!(
        logs.contains("login"),
        "the test must actually capture logs:\n{logs}"
    );
    assert!(logs.contains("token created"), "{logs}");
    for (what, secret) in [
        ("admin password", password.as_str()),
        ("wrong password", wrong),
        ("session id", session_id.as_str()),
        ("API token", token.as_str()),
        ("forged bearer", "cairn_forged_credential"),
        ("query string", "query-secret-value"),
    ] {
        assert!(
            !logs.contains(secret),
            "the {what} appears in the logs:\n{logs}"
        );
    }
}
