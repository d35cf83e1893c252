//! The API against a real apiserver: it lists what kubectl created, filtered by RBAC.
//!
//! Runs only with `CAIRN_E2E=1` (cluster from KUBECONFIG: the lab, or kind); without it the test
//! prints a SKIP line. With it and no cluster, it fails.

use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cairn::api::{self, AppState, CSRF_HEADER, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::{Capability, Config, UserConfig};
use cairn::store::Store;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl on PATH");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write manifest");
    }
    let out = child.wait_with_output().expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

struct Namespace(String);
impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args([
                "delete",
                "namespace",
                &self.0,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

async fn get(app: &axum::Router, path: &str, cookie: &str) -> (StatusCode, serde_json::Value) {
    let req = Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .expect("req");
    let resp = app.clone().oneshot(req).await.expect("answer");
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

async fn login(app: &axum::Router, user: &str, password: &str) -> String {
    let req = Request::post("/api/v1/session")
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::json!({"username": user, "password": password}).to_string(),
        ))
        .expect("req");
    let resp = app.clone().oneshot(req).await.expect("answer");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string()
}

fn names(list: &serde_json::Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn api_lists_what_kubectl_created() {
    if std::env::var("CAIRN_E2E").map_or(true, |v| v != "1") {
        eprintln!(
            "SKIP api_lists_what_kubectl_created: set CAIRN_E2E=1 with a cluster in KUBECONFIG"
        );
        return;
    }
    let client = cairn::k8s::client()
        .await
        .expect("CAIRN_E2E=1 needs a reachable cluster");
    cairn::k8s::crds::install(&client)
        .await
        .expect("CRDs install");

    let ns = Namespace(format!("cairn-api-e2e-{}", std::process::id()));
    kubectl(&["create", "namespace", &ns.0], None);
    let manifest = |name: &str, project: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  project: {project}\n  source:\n    repoURL: https://example.invalid/r.git\n    path: guestbook\n    targetRevision: HEAD\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {ns}\n  someFutureField: kept\n",
            ns = ns.0
        )
    };
    kubectl(
        &["apply", "-f", "-"],
        Some(&manifest("team-a-app", "team-a")),
    );
    kubectl(
        &["apply", "-f", "-"],
        Some(&manifest("team-b-app", "team-b")),
    );
    let hello = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance/workflows/hello-world.yaml"
    );
    let created = kubectl(&["-n", &ns.0, "create", "-f", hello, "-o", "name"], None);
    let wf_name = created.trim().rsplit('/').next().expect("name").to_string();

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.rbac.policy_default = String::new();
    config.rbac.policy_csv = format!(
        "p, role:team-a, applications, get, team-a/*, allow\ng, alice, role:team-a\np, alice, workflows, get, {}/*, allow\n",
        ns.0
    );
    config.accounts.users.insert(
        "alice".into(),
        UserConfig {
            capabilities: vec![Capability::Login],
            enabled: true,
        },
    );
    let store = Store::open(dir.path()).expect("store");
    let auth = Arc::new(Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth"));
    let admin_pw = auth.ensure_admin().await.expect("admin").expect("new");
    auth.change_password(
        &cairn::auth::Principal::local("admin"),
        "alice",
        admin_pw.expose(),
        "alice-password-123",
    )
    .await
    .expect("set alice's password");
    let app = api::router(
        AppState::new(StateParts {
            auth,
            kube: Some(client),
            namespace: "argocd".into(),
            secure_cookies: false,
            public_url: None,
            metrics: None,
        })
        // The test namespace is enabled for Applications, as Argo CD's "applications in any
        // namespace" requires (`[gitops] namespaces`).
        .with_gitops(api::GitopsState {
            namespaces: vec![ns.0.clone()],
            ..Default::default()
        }),
    );
    let admin = login(&app, "admin", admin_pw.expose()).await;
    let alice = login(&app, "alice", "alice-password-123").await;

    let apps_path = format!("/api/v1/applications?appNamespace={}", ns.0);
    let (status, list) = get(&app, &apps_path, &admin).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names(&list), ["team-a-app", "team-b-app"]);
    let a = &list["items"][0];
    assert_eq!(
        a["spec"]["someFutureField"], "kept",
        "unknown fields pass through: {a}"
    );

    // alice sees only team-a's app; team-b's is forbidden to her.
    let (status, list) = get(&app, &apps_path, &alice).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&list), ["team-a-app"]);
    let (status, _) = get(
        &app,
        &format!("/api/v1/applications/team-b-app?appNamespace={}", ns.0),
        &alice,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, one) = get(
        &app,
        &format!("/api/v1/applications/team-a-app?appNamespace={}", ns.0),
        &alice,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["spec"]["project"], "team-a");
    let (status, _) = get(
        &app,
        &format!("/api/v1/applications/missing?appNamespace={}", ns.0),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Workflows, per namespace and across namespaces.
    let (status, list) = get(&app, &format!("/api/v1/workflows/{}", ns.0), &alice).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(names(&list), std::slice::from_ref(&wf_name));
    let (status, list) = get(&app, "/api/v1/workflows", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(names(&list).contains(&wf_name), "{list}");
    let (status, wf) = get(
        &app,
        &format!("/api/v1/workflows/{}/{wf_name}", ns.0),
        &admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wf["spec"]["entrypoint"], "hello-world", "{wf}");
    let (status, _) = get(&app, "/api/v1/workflows/default/whatever", &alice).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "alice may not read outside her namespace"
    );
}
