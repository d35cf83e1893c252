//! Charts from a Helm repository: a real repository (`helm package` of one chart at 0.1.0 and
//! 0.2.0, `helm repo index`) served on loopback by a std-only HTTP server thread, pulled and
//! rendered with the pinned `helm`.
//!
//! The render tests need only `helm` (on PATH or in the lab's tool cache); without it they
//! print a SKIP line. With `CAIRN_E2E=1` one Application from that repository is synced on the
//! lab through a real `cairn server` (own control and destination namespaces, deleted at the
//! end). Waits are bounded polls; nothing asserts a duration.
#![allow(
    clippy::disallowed_methods,
    reason = "plain threads serving HTTP and polling kubectl; the render tests own their runtime"
)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn::gitops::render::helm_repo::{ChartRef, HelmRepoCredentials, pull_chart};
use cairn::gitops::render::{RenderError, RenderRequest, RenderSettings, render_chart};
use cairn::gitops::types::ApplicationSource;
use serde_json::{Value, json};

#[path = "common/tools.rs"]
mod tools;
use tools::tool_path;

const BIN: &str = env!("CARGO_BIN_EXE_cairn");
const CHART: &str = "hello";

fn helm_bin(test: &str) -> Option<PathBuf> {
    let found = std::env::split_paths(&tool_path())
        .map(|d| d.join("helm"))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIP {test}: no helm on PATH nor in the lab's tool cache");
    }
    found
}

fn run(bin: &Path, args: &[&str], cwd: &Path) {
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .env("HOME", cwd)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A served Helm repository: its directory, URL, and how many requests it answered.
struct HelmRepo {
    _dir: tempfile::TempDir,
    url: String,
    requests: Arc<AtomicUsize>,
}

/// Packages `hello` at 0.1.0 and 0.2.0, indexes them, and serves the directory. With `auth`,
/// every request must carry that `Authorization` header value (else 401).
fn serve_repo(helm: &Path, auth: Option<String>) -> HelmRepo {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(src.join("templates")).expect("mkdir");
    std::fs::create_dir_all(&repo).expect("mkdir");
    std::fs::write(
        src.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hello\n\
         data:\n  version: {{ .Chart.Version | quote }}\n  greeting: {{ .Values.greeting | quote }}\n\
         \x20 namespace: {{ .Release.Namespace | quote }}\n",
    )
    .expect("template");
    std::fs::write(src.join("values.yaml"), "greeting: hi\n").expect("values");
    std::fs::write(src.join("values-loud.yaml"), "greeting: HI\n").expect("values");
    for version in ["0.1.0", "0.2.0"] {
        std::fs::write(
            src.join("Chart.yaml"),
            format!("apiVersion: v2\nname: {CHART}\nversion: {version}\n"),
        )
        .expect("Chart.yaml");
        run(
            helm,
            &["package", &src.display().to_string(), "-d", "repo"],
            dir.path(),
        );
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    run(helm, &["repo", "index", "repo", "--url", &url], dir.path());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = answer(stream, &repo, auth.as_deref());
        }
    });
    HelmRepo {
        _dir: dir,
        url,
        requests,
    }
}

/// One HTTP/1.1 GET, answered and closed.
fn answer(mut stream: std::net::TcpStream, root: &Path, auth: Option<&str>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let authorized = auth.is_none_or(|want| {
        head.lines().any(|l| {
            l.split_once(':')
                .is_some_and(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.trim() == want)
        })
    });
    let name = path.trim_start_matches('/').split('?').next().unwrap_or("");
    let file = (!name.contains("..") && !name.contains('/'))
        .then(|| std::fs::read(root.join(name)).ok())
        .flatten();
    let (status, body) = match (authorized, file) {
        (false, _) => ("401 Unauthorized", b"unauthorized".to_vec()),
        (true, Some(body)) => ("200 OK", body),
        (true, None) => ("404 Not Found", b"not found".to_vec()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

fn source(value: Value) -> ApplicationSource {
    serde_json::from_value(value).expect("valid source")
}

/// Pulls and renders `version` of the served chart with `helm` options; returns the
/// ConfigMap's data.
async fn render(
    repo_url: &str,
    chart: &str,
    version: &str,
    helm_opts: Value,
    creds: Option<&HelmRepoCredentials>,
    cache_root: &Path,
    settings: &RenderSettings,
) -> Result<Value, RenderError> {
    let src = source(json!({
        "repoURL": repo_url, "chart": chart, "targetRevision": version, "helm": helm_opts,
    }));
    let chart_ref = ChartRef {
        repo_url,
        chart,
        version,
        creds,
    };
    let bin = settings.helm_bin.clone().expect("helm");
    let pulled = pull_chart(&chart_ref, cache_root, &bin, settings.timeout).await?;
    let placeholder = PathBuf::new();
    let req = RenderRequest {
        repo_root: &placeholder,
        source: &src,
        app_name: "app",
        namespace: Some("dest"),
        project: "default",
        revision: version,
        kube_version: None,
        api_versions: &[],
        refs: BTreeMap::new(),
    };
    let rendered = render_chart(&req, settings, &pulled.dir).await?;
    assert_eq!(rendered.objects.len(), 1, "{:?}", rendered.objects);
    Ok(rendered.objects[0]["data"].clone())
}

#[tokio::test]
async fn renders_versions_from_a_helm_repository_and_names_bad_input() {
    let Some(helm) = helm_bin("renders_versions_from_a_helm_repository_and_names_bad_input") else {
        return;
    };
    let repo = serve_repo(&helm, None);
    let cache = tempfile::tempdir().expect("cache");
    let settings = RenderSettings {
        helm_bin: Some(helm),
        ..RenderSettings::default()
    };
    let none = json!({});
    let v1 = render(
        &repo.url,
        CHART,
        "0.1.0",
        none.clone(),
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect("0.1.0 renders");
    assert_eq!(
        (
            v1["version"].as_str(),
            v1["greeting"].as_str(),
            v1["namespace"].as_str()
        ),
        (Some("0.1.0"), Some("hi"), Some("dest"))
    );
    // Options as for a Git chart: a value file of the package, then parameters on top.
    let opts = json!({"releaseName": "rel", "valueFiles": ["values-loud.yaml"],
                      "parameters": [{"name": "greeting", "value": "hey,you"}]});
    let v2 = render(
        &repo.url,
        CHART,
        "0.2.0",
        opts,
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect("0.2.0 renders");
    assert_eq!(
        (v2["version"].as_str(), v2["greeting"].as_str()),
        (Some("0.2.0"), Some("hey,you"))
    );
    let loud = render(
        &repo.url,
        CHART,
        "0.2.0",
        json!({"valueFiles": ["values-loud.yaml"]}),
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect("value file of the package");
    assert_eq!(loud["greeting"].as_str(), Some("HI"));

    // An exact version pulled once is served from the cache: no request reaches the repo.
    let before = repo.requests.load(Ordering::SeqCst);
    render(
        &repo.url,
        CHART,
        "0.1.0",
        none.clone(),
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect("cached 0.1.0");
    assert_eq!(repo.requests.load(Ordering::SeqCst), before, "cache hit");
    // A range resolves through the repository to the newest match.
    let latest = render(
        &repo.url,
        CHART,
        "^0.1.0 || ^0.2.0",
        none.clone(),
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect("range");
    assert_eq!(latest["version"].as_str(), Some("0.2.0"));
    assert!(
        repo.requests.load(Ordering::SeqCst) > before,
        "a range is not cached"
    );

    let err = render(
        &repo.url,
        CHART,
        "9.9.9",
        none.clone(),
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect_err("unknown version");
    let msg = err.to_string();
    assert!(
        msg.contains("source.targetRevision: 9.9.9") && msg.contains("helm:"),
        "{msg}"
    );
    let err = render(
        &repo.url,
        "nope",
        "0.1.0",
        none.clone(),
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect_err("unknown chart");
    let msg = err.to_string();
    assert!(msg.contains("source.chart: nope"), "{msg}");
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let err = render(&dead, CHART, "0.1.0", none, None, cache.path(), &settings)
        .await
        .expect_err("unreachable");
    let msg = err.to_string();
    assert!(
        msg.contains("source.chart: hello") && msg.contains("reachable Helm repository"),
        "{msg}"
    );
}

#[tokio::test]
async fn basic_auth_credentials_reach_the_repository() {
    let Some(helm) = helm_bin("basic_auth_credentials_reach_the_repository") else {
        return;
    };
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode("robot:s3cret");
    let repo = serve_repo(&helm, Some(format!("Basic {token}")));
    let cache = tempfile::tempdir().expect("cache");
    let settings = RenderSettings {
        helm_bin: Some(helm),
        ..RenderSettings::default()
    };
    let err = render(
        &repo.url,
        CHART,
        "0.1.0",
        json!({}),
        None,
        cache.path(),
        &settings,
    )
    .await
    .expect_err("anonymous is refused");
    assert!(err.to_string().contains("source.chart"), "{err}");
    let creds = HelmRepoCredentials {
        username: Some("robot".into()),
        password: Some("s3cret".into()),
        ..Default::default()
    };
    let data = render(
        &repo.url,
        CHART,
        "0.1.0",
        json!({}),
        Some(&creds),
        cache.path(),
        &settings,
    )
    .await
    .expect("with credentials");
    assert_eq!(data["version"].as_str(), Some("0.1.0"));
    let wrong = HelmRepoCredentials {
        password: Some("nope".into()),
        ..creds
    };
    let err = render(
        &repo.url,
        CHART,
        "0.2.0",
        json!({}),
        Some(&wrong),
        cache.path(),
        &settings,
    )
    .await
    .expect_err("wrong password");
    assert!(
        !err.to_string().contains("nope"),
        "no secret in errors: {err}"
    );
}

// ---- end to end on the lab ----

fn kubectl_out(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut child = Command::new("kubectl")
        .args(args)
        .env("PATH", tool_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
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
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn kubectl(args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = kubectl_out(args, stdin);
    assert!(ok, "kubectl {args:?} failed: {err}");
    out
}

fn get(kind: &str, ns: &str, name: &str) -> Option<Value> {
    let (ok, out, _) = kubectl_out(&["get", kind, "-n", ns, name, "-o", "json"], None);
    if !ok {
        return None;
    }
    serde_json::from_str(&out).ok()
}

/// Namespaces of the test, deleted when it ends (Applications' finalizers dropped first).
struct Namespaces(Vec<String>);
impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let (_, names, _) = kubectl_out(
                &["get", "applications.argoproj.io", "-n", ns, "-o", "name"],
                None,
            );
            for name in names.lines().filter(|l| !l.is_empty()) {
                let _ = kubectl_out(
                    &[
                        "patch",
                        name,
                        "-n",
                        ns,
                        "--type=merge",
                        "-p",
                        r#"{"metadata":{"finalizers":null}}"#,
                    ],
                    None,
                );
            }
            let _ = kubectl_out(
                &[
                    "delete",
                    "namespace",
                    ns,
                    "--wait=false",
                    "--ignore-not-found",
                ],
                None,
            );
        }
    }
}

struct Server {
    child: Child,
    data: tempfile::TempDir,
}
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(control_ns: &str) -> Server {
    let data = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = data.path().join("cairn.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"{addr}\"\n\n[gitops]\nnamespace = \"{control_ns}\"\n\
             poll_interval = \"2s\"\npoll_jitter = \"1s\"\nresync_interval = \"2s\"\nworkers = 2\n\
             installation_id = \"{control_ns}\"\n"
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(data.path().join("server.log")).expect("log");
    let child = Command::new(BIN)
        .args(["server", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(data.path().join("data"))
        .env_remove("CAIRN_CONFIG")
        .env("HOME", data.path())
        .env("PATH", tool_path())
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start cairn server");
    let server = Server { child, data };
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err() {
        assert!(Instant::now() < deadline, "cairn server did not listen");
        std::thread::sleep(Duration::from_millis(300));
    }
    server
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{}", std::process::id() % 10000, nanos % 100000)
}

/// Polls the Application until `ok` holds of its status (bounded); panics with the status and
/// the server log tail otherwise.
fn wait_status(
    server: &Server,
    ns: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let st = get("applications.argoproj.io", ns, name)
            .map(|a| a["status"].clone())
            .unwrap_or(Value::Null);
        if ok(&st) {
            return st;
        }
        last = st;
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = std::fs::read_to_string(server.data.path().join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    panic!(
        "{ns}/{name}: {what} not reached: {last}\n--- log tail ---\n{}",
        lines[lines.len().saturating_sub(40)..].join("\n")
    );
}

#[test]
fn application_from_a_helm_repository_syncs_on_the_lab() {
    if !std::env::var("CAIRN_E2E").is_ok_and(|v| v == "1") {
        eprintln!("SKIP application_from_a_helm_repository_syncs_on_the_lab: set CAIRN_E2E=1");
        return;
    }
    let helm = helm_bin("application_from_a_helm_repository_syncs_on_the_lab")
        .expect("helm is required with CAIRN_E2E=1");
    let repo = serve_repo(&helm, None);
    let control = unique("hr-ctl");
    let dest = format!("{control}-dest");
    let _nss = Namespaces(vec![control.clone(), dest.clone()]);
    kubectl(&["create", "namespace", &control], None);
    let server = start_server(&control);
    let app = |version: &str| {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Application",
            "metadata": {"name": "hello", "namespace": control},
            "spec": {
                "project": "default",
                "source": {"repoURL": repo.url, "chart": CHART, "targetRevision": version,
                           "helm": {"valuesObject": {"greeting": "from-argo"}}},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": dest},
                "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
            }
        })
        .to_string()
    };
    // A range is recorded as the version it resolved to, as Argo CD records it.
    kubectl(&["apply", "-f", "-"], Some(&app(">=0.1.0, <0.2.0")));
    let synced = |rev: &'static str| {
        move |st: &Value| {
            st["sync"]["status"] == "Synced"
                && st["health"]["status"] == "Healthy"
                && st["sync"]["revision"] == rev
                && st["operationState"]["phase"] == "Succeeded"
        }
    };
    let st = wait_status(&server, &control, "hello", "Synced 0.1.0", synced("0.1.0"));
    assert_eq!(st["sourceType"], "Helm", "{st}");
    let cm = get("configmap", &dest, "hello-hello").expect("configmap");
    assert_eq!(cm["data"]["version"], "0.1.0");
    assert_eq!(cm["data"]["greeting"], "from-argo");
    // Bumping targetRevision upgrades to the other chart version.
    kubectl(&["apply", "-f", "-"], Some(&app("0.2.0")));
    wait_status(&server, &control, "hello", "Synced 0.2.0", synced("0.2.0"));
    let cm = get("configmap", &dest, "hello-hello").expect("configmap");
    assert_eq!(cm["data"]["version"], "0.2.0");
    // A version the repository does not have is a readable condition; 0.2.0 stays in place.
    kubectl(&["apply", "-f", "-"], Some(&app("9.9.9")));
    let st = wait_status(
        &server,
        &control,
        "hello",
        "a condition naming targetRevision",
        |st| {
            st["conditions"].as_array().is_some_and(|c| {
                c.iter().any(|c| {
                    c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("source.targetRevision: 9.9.9"))
                })
            })
        },
    );
    assert!(st.to_string().contains("9.9.9"), "{st}");
    let cm = get("configmap", &dest, "hello-hello").expect("configmap");
    assert_eq!(cm["data"]["version"], "0.2.0", "previous state kept");
}
