//! The Application API and the Git webhook over the real router.
//!
//! Without a cluster: the webhook's signature checks per provider (accepted, refused, not
//! configured, too large, unknown provider, non-push events) and that neither the payload nor
//! the secret reaches a log line.
//!
//! With `CAIRN_E2E=1` (the lab): each test makes its own namespace, used as the control
//! namespace of the router, and deletes it at the end; RBAC per action and per
//! `<project>/<app>` object, sync and rollback writing `.operation` (and the refusals: an
//! operation in progress, rollback under automated sync), create with the project checks, the
//! webhook refreshing exactly the matching app, and a namespace-scoped cluster Secret (a
//! ServiceAccount token bound to one namespace) resolved into a working client.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use cairn::api::{self, AppState, CSRF_HEADER, GitopsState, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::{Capability, Config, UserConfig};
use cairn::gitops::webhook::{WebhookConfig, WebhookSecret, hmac_sha256};
use cairn::store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ALICE_PASSWORD: &str = "alice-password-123";
const SECRET: &str = "webhook-SECRET-MARKER-7f3a";
const PAYLOAD_MARKER: &str = "PAYLOAD-MARKER-c0ffee";

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

/// Every log line of this test binary, at TRACE (installed once: the subscriber is global).
fn logs() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        cairn::telemetry::init_with_writer(cairn::telemetry::LogFormat::Json, "trace", move || {
            writer.clone()
        })
        .expect("log capture");
        capture
    })
}

fn e2e(test: &str) -> bool {
    let on = std::env::var("CAIRN_E2E").is_ok_and(|v| v == "1");
    if !on {
        eprintln!("SKIP {test}: CAIRN_E2E is not set");
    }
    on
}

struct Fixture {
    app: Router,
    admin_password: String,
    _dir: tempfile::TempDir,
}

async fn fixture(namespace: &str, policy: &str, kube: Option<kube::Client>) -> Fixture {
    fixture_opts(namespace, policy, kube, false).await
}

async fn fixture_opts(
    namespace: &str,
    policy: &str,
    kube: Option<kube::Client>,
    require_override: bool,
) -> Fixture {
    logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.rbac.policy_default = String::new();
    config.rbac.policy_csv = policy.to_string();
    config.accounts.users.insert(
        "alice".into(),
        UserConfig {
            capabilities: vec![Capability::Login, Capability::ApiKey],
            enabled: true,
        },
    );
    let store = Store::open(dir.path()).expect("store");
    let auth = Arc::new(
        Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth from config"),
    );
    let admin_password = auth
        .ensure_admin()
        .await
        .expect("ensure admin")
        .expect("new admin password")
        .expose()
        .to_string();
    let admin = cairn::auth::Principal::local("admin");
    auth.change_password(&admin, "alice", &admin_password, ALICE_PASSWORD)
        .await
        .expect("alice's password");
    let state = AppState::new(StateParts {
        auth,
        kube,
        namespace: namespace.into(),
        secure_cookies: false,
        public_url: None,
        metrics: None,
    })
    .with_gitops(GitopsState {
        webhook: WebhookConfig {
            github_secret: Some(WebhookSecret::new(SECRET)),
            gitlab_secret: Some(WebhookSecret::new(SECRET)),
            gogs_secret: Some(WebhookSecret::new(SECRET)),
            // Gitea deliberately unconfigured: its events must be refused.
            gitea_secret: None,
            max_payload_bytes: 64 * 1024,
        },
        require_override_for_revision_sync: require_override,
        ..Default::default()
    });
    Fixture {
        app: api::router(state),
        admin_password,
        _dir: dir,
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    (status, value)
}

async fn login(app: &Router, user: &str, password: &str) -> String {
    let req = Request::post("/api/v1/session")
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"username": user, "password": password}).to_string(),
        ))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("login");
    assert_eq!(resp.status(), StatusCode::OK, "login {user}");
    let cookie = resp
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("session cookie");
    cookie.split(';').next().expect("pair").to_string()
}

fn call(method: Method, path: &str, cookie: &str, body: Option<Value>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(path)
        .header(CSRF_HEADER, "1")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/json");
    b.body(body.map_or_else(Body::empty, |v| Body::from(v.to_string())))
        .expect("request")
}

fn push_body(repo: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "repository": {"html_url": repo, "clone_url": format!("{repo}.git"), "default_branch": "main",
                       "description": PAYLOAD_MARKER},
        "commits": [{"id": "abc", "message": PAYLOAD_MARKER, "added": [], "modified": ["apps/x.yaml"], "removed": []}]
    }))
    .expect("json")
}

fn webhook(headers: &[(&str, String)], body: Vec<u8>) -> Request<Body> {
    let mut b = Request::post("/api/webhook").header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(Body::from(body)).expect("request")
}

/// Request headers of a webhook case.
type Headers<'a> = Vec<(&'a str, String)>;

fn sig(body: &[u8]) -> String {
    hex::encode(hmac_sha256(SECRET.as_bytes(), body))
}

#[tokio::test]
async fn webhook_signatures_per_provider() {
    let fx = fixture("argocd", "", None).await;
    let body = push_body("https://github.com/team/gitops");
    let good = sig(&body);
    // Without a cluster an accepted push answers 503 (it got past verification to the app
    // listing); a refusal is 401, 400 or 413 and never reaches the cluster.
    let cases: Vec<(&str, Headers, StatusCode, &str)> = vec![
        (
            "github signed",
            vec![
                ("x-github-event", "push".into()),
                ("x-hub-signature-256", format!("sha256={good}")),
            ],
            StatusCode::SERVICE_UNAVAILABLE,
            "",
        ),
        (
            "github wrong signature",
            vec![
                ("x-github-event", "push".into()),
                ("x-hub-signature-256", format!("sha256={}", sig(b"other"))),
            ],
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "github unsigned",
            vec![("x-github-event", "push".into())],
            StatusCode::UNAUTHORIZED,
            "missing_signature",
        ),
        (
            "gitlab token",
            vec![
                ("x-gitlab-event", "Push Hook".into()),
                ("x-gitlab-token", SECRET.into()),
            ],
            StatusCode::BAD_REQUEST,
            "bad_payload",
        ),
        (
            "gitlab wrong token",
            vec![
                ("x-gitlab-event", "Push Hook".into()),
                ("x-gitlab-token", "guess".into()),
            ],
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "gogs signed",
            vec![
                ("x-gogs-event", "push".into()),
                ("x-gogs-signature", good.clone()),
            ],
            StatusCode::SERVICE_UNAVAILABLE,
            "",
        ),
        (
            "gogs wrong signature",
            vec![
                ("x-gogs-event", "push".into()),
                ("x-gogs-signature", sig(b"x")),
            ],
            StatusCode::UNAUTHORIZED,
            "bad_signature",
        ),
        (
            "gitea without a configured secret",
            vec![
                ("x-gitea-event", "push".into()),
                ("x-gitea-signature", good.clone()),
            ],
            StatusCode::UNAUTHORIZED,
            "not_configured",
        ),
        (
            "no provider header",
            vec![],
            StatusCode::BAD_REQUEST,
            "unknown_provider",
        ),
    ];
    for (label, headers, want, code) in cases {
        let (status, answer) = send(&fx.app, webhook(&headers, body.clone())).await;
        assert_eq!(status, want, "{label}: {answer}");
        if !code.is_empty() {
            assert_eq!(answer["error"], code, "{label}: {answer}");
        }
        assert!(
            !answer.to_string().contains(SECRET) && !answer.to_string().contains(PAYLOAD_MARKER),
            "{label}: {answer}"
        );
    }
    // GitLab's payload shape differs: a real one passes verification and parsing.
    let gitlab = serde_json::to_vec(&json!({"ref": "refs/heads/main",
        "project": {"web_url": "https://gitlab.example.com/t/g", "default_branch": "main"}, "commits": []}))
    .expect("json");
    let (status, answer) = send(
        &fx.app,
        webhook(
            &[
                ("x-gitlab-event", "Push Hook".into()),
                ("x-gitlab-token", SECRET.into()),
            ],
            gitlab,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    // A signed ping is acknowledged and ignored (no cluster needed).
    let ping = br#"{"zen": "Keep it logically awesome."}"#.to_vec();
    let (status, answer) = send(
        &fx.app,
        webhook(
            &[
                ("x-github-event", "ping".into()),
                ("x-hub-signature-256", format!("sha256={}", sig(&ping))),
            ],
            ping,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["ignored"], "ping");
    // Over the body limit: refused by the declared length, and by the bytes actually sent.
    let big = vec![b' '; 65 * 1024];
    let (status, _) = send(
        &fx.app,
        webhook(
            &[
                ("x-github-event", "push".into()),
                ("content-length", big.len().to_string()),
            ],
            big.clone(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let chunked = Request::post("/api/webhook")
        .header("x-github-event", "push")
        .body(Body::from_stream(futures::stream::iter(vec![Ok::<
            _,
            std::io::Error,
        >(
            big
        )])))
        .expect("request");
    let (status, _) = send(&fx.app, chunked).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn webhook_logs_carry_neither_payload_nor_secret() {
    let fx = fixture("argocd", "", None).await;
    let body = push_body("https://github.com/team/gitops");
    let bad = webhook(
        &[
            ("x-github-event", "push".into()),
            ("x-hub-signature-256", format!("sha256={}", sig(b"forged"))),
        ],
        body.clone(),
    );
    let (status, _) = send(&fx.app, bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let good = webhook(
        &[
            ("x-github-event", "push".into()),
            ("x-hub-signature-256", format!("sha256={}", sig(&body))),
        ],
        body,
    );
    send(&fx.app, good).await;
    let text = String::from_utf8_lossy(&logs().0.lock().expect("logs")).into_owned();
    // The refusal was logged (so the capture works and this test can fail)…
    assert!(
        text.contains("webhook refused") && text.contains("bad_signature"),
        "no refusal logged: {text}"
    );
    // …with neither the payload nor the secret.
    assert!(!text.contains(PAYLOAD_MARKER), "payload in logs");
    assert!(!text.contains(SECRET), "secret in logs");
}

// ---------------------------------------------------------------------------------------------
// On the lab.

/// A namespace made for one test, deleted (without waiting) when dropped.
struct TestNamespace {
    name: String,
}

impl TestNamespace {
    fn create(prefix: &str) -> Self {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            rand::random::<u32>() % 100_000
        );
        kubectl(&["create", "namespace", &name], None);
        TestNamespace { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new("kubectl")
        .arg("--request-timeout=60s")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl output");
    assert!(
        out.status.success(),
        "kubectl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn apply(ns: &str, doc: Value) {
    kubectl(&["apply", "-n", ns, "-f", "-"], Some(&doc.to_string()));
}

fn read(ns: &str, kind: &str, name: &str) -> Value {
    serde_json::from_str(&kubectl(&["get", kind, name, "-n", ns, "-o", "json"], None))
        .expect("json")
}

fn project_doc(name: &str, dest_ns: &str) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
           "metadata": {"name": name},
           "spec": {"sourceRepos": ["*"],
                    "destinations": [{"server": "https://kubernetes.default.svc", "namespace": dest_ns}]}})
}

fn app_doc(name: &str, project: &str, automated: bool) -> Value {
    let mut app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name},
        "spec": {"project": project,
                 "source": {"repoURL": "https://github.com/team/gitops.git", "targetRevision": "main", "path": name},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "apps"}},
        "status": {"history": [
            {"id": 0, "revision": "1111111111111111111111111111111111111111",
             "source": {"repoURL": "https://github.com/team/gitops.git", "targetRevision": "main", "path": name}}]}});
    if automated {
        app["spec"]["syncPolicy"] = json!({"automated": {"prune": true}});
    }
    app
}

async fn lab_client() -> kube::Client {
    cairn::k8s::client()
        .await
        .expect("CAIRN_E2E=1 needs KUBECONFIG pointing at the lab")
}

#[tokio::test]
async fn rbac_per_action_and_object_and_operations() {
    if !e2e("rbac_per_action_and_object_and_operations") {
        return;
    }
    let ns = TestNamespace::create("h5-appapi");
    apply(&ns.name, project_doc("team", "apps"));
    apply(&ns.name, project_doc("other", "apps"));
    apply(&ns.name, app_doc("team-app", "team", false));
    apply(&ns.name, app_doc("other-app", "other", false));
    apply(&ns.name, app_doc("auto-app", "team", true));
    let policy = "p, alice, applications, get, team/*, allow\n\
                  p, alice, applications, sync, team/*, allow\n";
    let fx = fixture(&ns.name, policy, Some(lab_client().await)).await;
    let alice = login(&fx.app, "alice", ALICE_PASSWORD).await;
    let admin = login(&fx.app, "admin", &fx.admin_password).await;

    // get: only team's apps.
    let (status, list) = send(
        &fx.app,
        call(Method::GET, "/api/v1/applications", &alice, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|a| a["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, vec!["auto-app", "team-app"]);
    for (path, want) in [
        ("/api/v1/applications/team-app", StatusCode::OK),
        ("/api/v1/applications/other-app", StatusCode::FORBIDDEN),
        ("/api/v1/applications/team-app/history", StatusCode::OK),
        (
            "/api/v1/applications/other-app/history",
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (status, body) = send(&fx.app, call(Method::GET, path, &alice, None)).await;
        assert_eq!(status, want, "{path}: {body}");
    }

    // Only the control namespace (and enabled ones) is served.
    let (status, body) = send(
        &fx.app,
        call(
            Method::GET,
            "/api/v1/applications?appNamespace=kube-system",
            &admin,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("not enabled"),
        "{body}"
    );

    // sync: allowed on team/*, and it writes Argo CD's operation.
    let sync = json!({"prune": true, "resources": [{"group": "apps", "kind": "Deployment", "name": "web"}]});
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/team-app/sync",
            &alice,
            Some(sync.clone()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = read(&ns.name, "applications.argoproj.io", "team-app");
    assert_eq!(stored["operation"]["initiatedBy"]["username"], "alice");
    assert_eq!(stored["operation"]["sync"]["prune"], true);
    assert_eq!(
        stored["operation"]["sync"]["resources"][0]["kind"],
        "Deployment"
    );
    // One operation at a time.
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/team-app/sync",
            &alice,
            Some(sync.clone()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("another operation is already in progress")
    );
    // Not on another project's app.
    let (status, _) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/other-app/sync",
            &alice,
            Some(sync),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // No delete, update or create for alice at all.
    for (method, path, body) in [
        (Method::DELETE, "/api/v1/applications/team-app", None),
        (
            Method::PUT,
            "/api/v1/applications/team-app",
            Some(app_doc("team-app", "team", false)),
        ),
        (
            Method::POST,
            "/api/v1/applications",
            Some(app_doc("new-app", "team", false)),
        ),
    ] {
        let (status, answer) = send(&fx.app, call(method.clone(), path, &alice, body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }

    // Rollback: refused under automated sync, as Argo CD.
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/auto-app/rollback",
            &alice,
            Some(json!({"id": 0})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["message"],
        "rollback cannot be initiated when auto-sync is enabled"
    );
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/other-app/rollback",
            &admin,
            Some(json!({"id": 7})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/other-app/rollback",
            &admin,
            Some(json!({"id": 0})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = read(&ns.name, "applications.argoproj.io", "other-app");
    assert_eq!(
        stored["operation"]["sync"]["revision"],
        "1111111111111111111111111111111111111111"
    );
    assert_eq!(stored["operation"]["initiatedBy"]["username"], "admin");

    // Refresh needs only get, and sets Argo CD's annotation.
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/auto-app/refresh?refresh=hard",
            &alice,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = read(&ns.name, "applications.argoproj.io", "auto-app");
    assert_eq!(
        stored["metadata"]["annotations"]["argocd.argoproj.io/refresh"],
        "hard"
    );

    // Create: project checks with Argo CD's messages.
    let mut ghost = app_doc("ghost-app", "ghost", false);
    ghost.as_object_mut().expect("object").remove("status");
    let mut outside = app_doc("outside-app", "team", false);
    outside["spec"]["destination"]["namespace"] = json!("kube-system");
    let mut unknown_cluster = app_doc("far-app", "team", false);
    unknown_cluster["spec"]["destination"] = json!({"name": "nowhere", "namespace": "apps"});
    for (doc, want) in [
        (
            ghost,
            "Application referencing project ghost which does not exist",
        ),
        (
            outside,
            "do not match any of the allowed destinations in project 'team'",
        ),
        (
            unknown_cluster,
            "there are no clusters with this name: nowhere",
        ),
    ] {
        let (status, body) = send(
            &fx.app,
            call(Method::POST, "/api/v1/applications", &admin, Some(doc)),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(want),
            "{body}"
        );
    }
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications",
            &admin,
            Some(app_doc("new-app", "team", false)),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body["status"].is_null(),
        "create drops a submitted status: {body}"
    );

    // Delete: cascade puts Argo CD's finalizer on before deleting (no controller runs in this
    // namespace, so the object stays, marked for deletion, holding the finalizer).
    let (status, body) = send(
        &fx.app,
        call(Method::DELETE, "/api/v1/applications/new-app", &admin, None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored = read(&ns.name, "applications.argoproj.io", "new-app");
    assert_eq!(
        stored["metadata"]["finalizers"],
        json!(["resources-finalizer.argocd.argoproj.io"])
    );
    assert!(stored["metadata"]["deletionTimestamp"].is_string());
    // …and without cascade the finalizer goes and so does the Application.
    let (status, body) = send(
        &fx.app,
        call(
            Method::DELETE,
            "/api/v1/applications/new-app?cascade=false",
            &admin,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let gone = kubectl(
        &[
            "get",
            "applications.argoproj.io",
            "new-app",
            "-n",
            &ns.name,
            "--ignore-not-found",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(gone.trim(), "");
}

#[tokio::test]
async fn webhook_refreshes_only_the_matching_app() {
    if !e2e("webhook_refreshes_only_the_matching_app") {
        return;
    }
    let ns = TestNamespace::create("h5-hook");
    let mut on_main = app_doc("on-main", "default", false);
    on_main["spec"]["source"]["repoURL"] = json!("git@github.com:Team/GitOps.git");
    let mut on_release = app_doc("on-release", "default", false);
    on_release["spec"]["source"]["targetRevision"] = json!("release");
    let mut elsewhere = app_doc("elsewhere", "default", false);
    elsewhere["spec"]["source"]["repoURL"] = json!("https://github.com/team/other.git");
    for doc in [on_main, on_release, elsewhere] {
        apply(&ns.name, doc);
    }
    let fx = fixture(&ns.name, "", Some(lab_client().await)).await;
    let body = push_body("https://github.com/team/gitops");
    let (status, answer) = send(
        &fx.app,
        webhook(
            &[
                ("x-github-event", "push".into()),
                ("x-hub-signature-256", format!("sha256={}", sig(&body))),
            ],
            body,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["refreshed"], 1);
    let annotation = |name: &str| {
        read(&ns.name, "applications.argoproj.io", name)["metadata"]["annotations"]
            ["argocd.argoproj.io/refresh"]
            .clone()
    };
    assert_eq!(annotation("on-main"), "normal");
    assert!(annotation("on-release").is_null());
    assert!(annotation("elsewhere").is_null());
}

/// PEM of the DER certificates kube inferred (the lab's CA).
fn pem(ders: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in ders {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).expect("ascii"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

#[tokio::test]
async fn namespace_scoped_cluster_secret_gives_a_scoped_client() {
    use cairn::gitops::cluster::Clusters;
    use cairn::gitops::types::ApplicationDestination;
    use k8s_openapi::api::core::v1::ConfigMap;

    if !e2e("namespace_scoped_cluster_secret_gives_a_scoped_client") {
        return;
    }
    let control = TestNamespace::create("h5-ctl");
    let target = TestNamespace::create("h5-target");
    let sa = "cairn-deployer";
    kubectl(&["create", "serviceaccount", sa, "-n", &target.name], None);
    kubectl(
        &[
            "create",
            "role",
            "deployer",
            "-n",
            &target.name,
            "--verb=get,list,create,delete",
            "--resource=configmaps",
        ],
        None,
    );
    kubectl(
        &[
            "create",
            "rolebinding",
            "deployer",
            "-n",
            &target.name,
            "--role=deployer",
            &format!("--serviceaccount={}:{sa}", target.name),
        ],
        None,
    );
    let token = kubectl(
        &["create", "token", sa, "-n", &target.name, "--duration=10m"],
        None,
    )
    .trim()
    .to_string();
    let inferred = kube::Config::infer().await.expect("kubeconfig");
    let server = inferred
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let ca = pem(inferred.root_cert.as_deref().unwrap_or_default());
    let secret_doc = |token: &str| {
        let config = json!({"bearerToken": token, "tlsClientConfig": {
            "insecure": ca.is_empty(),
            "caData": base64::engine::general_purpose::STANDARD.encode(&ca)}});
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "scoped-cluster",
                            "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
               "stringData": {"name": "scoped", "server": server,
                              "namespaces": target.name, "config": config.to_string()}})
    };
    apply(&control.name, secret_doc(&token));
    let clusters = Clusters::new(lab_client().await, control.name.clone());
    let dest = ApplicationDestination {
        name: Some("scoped".into()),
        namespace: Some(target.name.clone()),
        ..Default::default()
    };
    let (cluster, client) = clusters
        .client_for(&dest)
        .await
        .expect("resolved and built");
    assert_eq!(cluster.namespaces, vec![target.name.clone()]);
    assert!(!cluster.cluster_resources);
    // The client acts as the ServiceAccount: its namespace is open…
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), &target.name);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "probe"}})).expect("cm");
    cms.create(&Default::default(), &cm)
        .await
        .expect("create in the scoped namespace");
    assert!(cms.get_opt("probe").await.expect("get").is_some());
    // …and every other namespace is closed (403 from the apiserver, not a cairn check).
    let other: kube::Api<ConfigMap> = kube::Api::namespaced(client, "kube-system");
    match other.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("kube-system must be forbidden to the scoped token: {other:?}"),
    }
    // A changed Secret rebuilds the client: a bad token now fails authentication.
    apply(&control.name, secret_doc("not-a-valid-token"));
    // The resourceVersion changes on apply; a bounded loop waits for the list to show it.
    let mut rebuilt = None;
    for _ in 0..20 {
        let (c, client) = clusters.client_for(&dest).await.expect("resolved");
        if c.version != cluster.version {
            rebuilt = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let client = rebuilt.expect("the Secret's new version is seen");
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client, &target.name);
    match cms.list(&Default::default()).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 401, "{s:?}"),
        other => panic!("a rebuilt client with a bad token must be refused: {other:?}"),
    }
}

/// Reads server-sent events until `done` accepts one's data, or 20 s pass.
async fn read_events(body: Body, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            for line in frame.lines() {
                if let Some(data) = line.strip_prefix("data: ")
                    && let Ok(v) = serde_json::from_str::<Value>(data)
                {
                    let stop = done(&v);
                    events.push(v);
                    if stop {
                        return events;
                    }
                }
            }
        }
    }
    events
}

#[tokio::test]
async fn stream_sends_changes_the_caller_may_see() {
    if !e2e("stream_sends_changes_the_caller_may_see") {
        return;
    }
    let ns = TestNamespace::create("h5-stream");
    apply(&ns.name, project_doc("team", "apps"));
    apply(&ns.name, project_doc("other", "apps"));
    apply(&ns.name, app_doc("existing", "team", false));
    let policy = "p, alice, applications, get, team/*, allow\n";
    let fx = fixture(&ns.name, policy, Some(lab_client().await)).await;
    let alice = login(&fx.app, "alice", ALICE_PASSWORD).await;
    let resp = fx
        .app
        .clone()
        .oneshot(call(
            Method::GET,
            "/api/v1/stream/applications",
            &alice,
            None,
        ))
        .await
        .expect("stream");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let body = resp.into_body();
    let ns_name = ns.name.clone();
    // Changes made after the stream opened: another project's app first, then alice's.
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        apply(&ns_name, app_doc("hidden", "other", false));
        apply(&ns_name, app_doc("visible", "team", false));
    });
    let events = read_events(body, |e| {
        e["result"]["application"]["metadata"]["name"] == "visible"
    })
    .await;
    writer.await.expect("writer");
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["result"]["type"].as_str().unwrap_or("").to_string(),
                e["result"]["application"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("ADDED".to_string(), "existing".to_string()),
            ("ADDED".to_string(), "visible".to_string())
        ],
        "alice sees her project's apps only, each first as ADDED"
    );
}

#[tokio::test]
async fn managed_resources_mask_secrets_and_the_tree_follows_owners() {
    if !e2e("managed_resources_mask_secrets_and_the_tree_follows_owners") {
        return;
    }
    const PASSWORD: &str = "hunter2-very-secret-value";
    let ns = TestNamespace::create("h5-live");
    apply(
        &ns.name,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
               "stringData": {"password": PASSWORD}}),
    );
    apply(
        &ns.name,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}}),
    );
    apply(
        &ns.name,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "localhost/none:0"}]}}}}),
    );
    let mut app = app_doc("live", "default", false);
    app["spec"]["destination"]["namespace"] = json!(ns.name);
    app["status"]["resources"] = json!([
        {"version": "v1", "kind": "Secret", "namespace": ns.name, "name": "creds", "status": "Synced"},
        {"version": "v1", "kind": "ConfigMap", "namespace": ns.name, "name": "cfg", "status": "Synced"},
        {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": ns.name, "name": "web",
         "status": "Synced", "health": {"status": "Healthy"}},
        {"version": "v1", "kind": "ConfigMap", "namespace": ns.name, "name": "missing", "status": "OutOfSync"}
    ]);
    apply(&ns.name, app);
    let fx = fixture(&ns.name, "", Some(lab_client().await)).await;
    let admin = login(&fx.app, "admin", &fx.admin_password).await;
    let (status, body) = send(
        &fx.app,
        call(
            Method::GET,
            "/api/v1/applications/live/managed-resources",
            &admin,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text = body.to_string();
    let encoded = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    assert!(
        !text.contains(PASSWORD) && !text.contains(&encoded),
        "secret value answered"
    );
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 4);
    assert!(
        items[0]["liveState"]["data"]["password"].is_string(),
        "{}",
        items[0]
    );
    assert_eq!(items[1]["liveState"]["data"]["k"], "v");
    assert!(
        items[3]["liveState"].is_null(),
        "a missing object has no live state"
    );
    assert!(items[0]["liveState"]["metadata"]["managedFields"].is_null());

    // The tree: the Deployment's ReplicaSet appears under it (the deployment controller
    // creates it; a bounded loop waits for it).
    let mut tree = Value::Null;
    for _ in 0..40 {
        let (status, body) = send(
            &fx.app,
            call(
                Method::GET,
                "/api/v1/applications/live/resource-tree",
                &admin,
                None,
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["kind"] == "ReplicaSet"))
        {
            tree = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let nodes = tree["nodes"]
        .as_array()
        .expect("a ReplicaSet node appeared");
    let rs = nodes
        .iter()
        .find(|n| n["kind"] == "ReplicaSet")
        .expect("replicaset");
    assert_eq!(rs["parentRefs"][0]["kind"], "Deployment");
    assert_eq!(rs["parentRefs"][0]["name"], "web");
    let deploy = nodes
        .iter()
        .find(|n| n["kind"] == "Deployment")
        .expect("deployment");
    assert_eq!(deploy["health"]["status"], "Healthy");
    assert!(
        !tree.to_string().contains(PASSWORD),
        "the tree never carries Secret data"
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI against a real `cairn server` (with its GitOps controller) on the lab.

struct ServerProcess(std::process::Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.email=t@example.com", "-c", "user.name=t"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cli(config: &std::path::Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("CAIRN_CLI_CONFIG", config)
        .env_remove("CAIRN_OUTPUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn");
    let input = stdin.unwrap_or("").to_string();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("stdin");
    child.wait_with_output().expect("cairn finishes")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn cli_app_commands_against_a_real_server() {
    if !e2e("cli_app_commands_against_a_real_server") {
        return;
    }
    let ns = TestNamespace::create("h5-cli");
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("app")).expect("repo dir");
    let manifest = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\ndata:\n  v: \"{v}\"\n")
    };
    std::fs::write(repo.join("app/cm.yaml"), manifest("1")).expect("manifest");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "one"]);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let data = dir.path().join("data");
    let server = ServerProcess(
        Command::new(env!("CARGO_BIN_EXE_cairn"))
            .args([
                "server",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .env("CAIRN_NAMESPACE", &ns.name)
            .env("CAIRN_WEBHOOK_GITHUB_SECRET", SECRET)
            .env("HOME", dir.path())
            .env_remove("CAIRN_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cairn server"),
    );
    // reqwest is built without a default crypto provider (as in main).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if http
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "cairn server ready with the lab cluster");
    let cfg = dir.path().join("cli.toml");
    let out = cli(
        &cfg,
        &[
            "admin",
            "initial-password",
            "--data-dir",
            data.to_str().expect("utf8"),
        ],
        None,
    );
    let password = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = cli(
        &cfg,
        &[
            "login",
            "--server",
            &url,
            "--username",
            "admin",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    );
    assert!(out.status.success(), "{}", text(&out));

    let app_file = dir.path().join("app.yaml");
    std::fs::write(
        &app_file,
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: hello\nspec:\n  \
             project: default\n  source:\n    repoURL: file://{}\n    targetRevision: main\n    path: app\n  \
             destination:\n    server: https://kubernetes.default.svc\n    namespace: {}\n",
            repo.display(),
            ns.name
        ),
    )
    .expect("app file");
    let out = cli(
        &cfg,
        &["app", "create", "-f", app_file.to_str().expect("utf8")],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&cfg, &["app", "list", "-o", "wide"], None);
    assert!(
        text(&out).contains("hello") && text(&out).contains(&ns.name),
        "{}",
        text(&out)
    );

    // Sync and wait: the progress line for the ConfigMap, then Synced.
    let out = cli(&cfg, &["app", "sync", "hello", "--timeout", "120"], None);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("ConfigMap") && t.contains("Sync Status:   Synced"),
        "{t}"
    );
    assert_eq!(
        kubectl(
            &[
                "get",
                "configmap",
                "hello",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.v}"
            ],
            None
        ),
        "1"
    );
    let out = cli(&cfg, &["app", "diff", "hello"], None);
    assert!(
        out.status.success(),
        "no difference after a sync: {}",
        text(&out)
    );

    // A push, announced by a signed webhook, shows as OutOfSync with a diff.
    std::fs::write(repo.join("app/cm.yaml"), manifest("2")).expect("manifest");
    git(&repo, &["commit", "-qam", "two"]);
    let body = serde_json::to_vec(&json!({"ref": "refs/heads/main",
        "repository": {"clone_url": format!("file://{}", repo.display()), "default_branch": "main"},
        "commits": [{"modified": ["app/cm.yaml"]}]}))
    .expect("json");
    let resp = http
        .post(format!("{url}/api/webhook"))
        .header("x-github-event", "push")
        .header("x-hub-signature-256", format!("sha256={}", sig(&body)))
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.expect("json")["refreshed"], 1);
    let mut diff = String::new();
    for _ in 0..60 {
        let out = cli(&cfg, &["app", "diff", "hello"], None);
        if !out.status.success() {
            diff = text(&out);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        diff.contains("/ConfigMap") && diff.contains("v: \"2\""),
        "{diff}"
    );

    let out = cli(&cfg, &["app", "sync", "hello", "--timeout", "120"], None);
    assert!(out.status.success(), "{}", text(&out));
    let out = cli(&cfg, &["app", "history", "hello"], None);
    let history = text(&out);
    assert_eq!(
        history.lines().count(),
        3,
        "header and two deployments: {history}"
    );

    // Rollback to the first deployment restores v=1.
    let out = cli(
        &cfg,
        &["app", "rollback", "hello", "0", "--timeout", "120"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        kubectl(
            &[
                "get",
                "configmap",
                "hello",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.data.v}"
            ],
            None
        ),
        "1"
    );
    let out = cli(&cfg, &["app", "rollback", "hello", "9"], None);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not have deployment with id 9"),
        "{}",
        text(&out)
    );

    // Cascade delete: the controller removes the ConfigMap, then the Application goes.
    let out = cli(&cfg, &["app", "delete", "hello", "-y"], None);
    assert!(out.status.success(), "{}", text(&out));
    let mut gone = false;
    for _ in 0..120 {
        let app = kubectl(
            &[
                "get",
                "applications.argoproj.io",
                "hello",
                "-n",
                &ns.name,
                "--ignore-not-found",
                "-o",
                "name",
            ],
            None,
        );
        let cm = kubectl(
            &[
                "get",
                "configmap",
                "hello",
                "-n",
                &ns.name,
                "--ignore-not-found",
                "-o",
                "name",
            ],
            None,
        );
        if app.trim().is_empty() && cm.trim().is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        gone,
        "cascade delete removed the ConfigMap and the Application"
    );
    drop(server);
}

#[tokio::test]
async fn revision_sync_needs_override_when_configured() {
    if !e2e("revision_sync_needs_override_when_configured") {
        return;
    }
    let ns = TestNamespace::create("h5-override");
    apply(&ns.name, project_doc("team", "apps"));
    apply(&ns.name, app_doc("a", "team", false));
    apply(&ns.name, app_doc("b", "team", false));
    let policy = "p, alice, applications, get, team/*, allow\n\
                  p, alice, applications, sync, team/*, allow\n";
    let fx = fixture_opts(&ns.name, policy, Some(lab_client().await), true).await;
    let alice = login(&fx.app, "alice", ALICE_PASSWORD).await;
    let other = json!({"revision": "v2"});
    // The target revision needs only `sync`…
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/a/sync",
            &alice,
            Some(json!({"revision": "main"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // …another revision needs `override` on the exact object.
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/b/sync",
            &alice,
            Some(other.clone()),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap_or("").contains("override"),
        "{body}"
    );
    let admin = login(&fx.app, "admin", &fx.admin_password).await;
    let (status, body) = send(
        &fx.app,
        call(
            Method::POST,
            "/api/v1/applications/b/sync",
            &admin,
            Some(other),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        read(&ns.name, "applications.argoproj.io", "b")["operation"]["sync"]["revision"],
        "v2"
    );
}
