//! AppProject role tokens against a real `cairn server` on the lab (CAIRN_E2E=1): a token made
//! with `cairn proj role create-token` is listed in the AppProject's status and used as a bearer
//! credential (API and `cairn login --token`); its rights follow the role's policies as edited
//! with kubectl, on the very next request; a policy naming another project grants nothing;
//! `delete-token` revokes it (401) and `rotate-signing-key` invalidates every token.
//!
//! The server runs with its own namespace as the control namespace and no default role, so
//! every grant a token has comes from its role.

#[path = "common/lab.rs"]
mod lab;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_cairn");

/// A `cairn server` with `namespace` as its control namespace, no default role, and a CLI
/// configuration of this test's own.
struct Server {
    inner: lab::Server,
    cli_dir: tempfile::TempDir,
    url: String,
}

impl Server {
    async fn start(namespace: &str) -> Server {
        let inner = lab::Server::start_with(
            &format!("namespace = \"{namespace}\"\n"),
            "[events]\nenabled = false\n\n[rbac]\npolicy_default = \"\"\n",
            &[],
        )
        .await;
        Server {
            url: format!("http://{}", inner.api()),
            inner,
            cli_dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn log(&self) -> String {
        self.inner.log()
    }

    fn admin_password(&self) -> String {
        cairn::auth::read_initial_password(&self.inner.data_dir())
            .expect("read initial password")
            .expect("initial password present")
            .expose()
            .to_owned()
    }

    /// Runs the `cairn` CLI with this test's own CLI config.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(BIN)
            .args(args)
            .env("CAIRN_CLI_CONFIG", self.cli_dir.path().join("cli.toml"))
            .env_remove("CAIRN_SERVER")
            .env_remove("CAIRN_TOKEN")
            .env_remove("CAIRN_OUTPUT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cairn");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("cairn finishes")
    }

    fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.cli(args, stdin);
        assert!(
            out.status.success(),
            "cairn {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// GET `path` with `token`: the status code.
async fn status(server: &Server, token: &str, path: &str) -> u16 {
    client()
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

fn project_json(namespace: &str) -> Value {
    kubectl_json(&["-n", namespace, "get", "appproject", "team-a", "-o", "json"])
}

fn kubectl_json(args: &[&str]) -> Value {
    serde_json::from_str(&lab::kubectl(args, None)).expect("kubectl JSON")
}

/// Replaces the deployer role's policies with `policies`.
fn set_policies(namespace: &str, policies: &[&str]) {
    let patch = json!({ "spec": { "roles": [{
        "name": "deployer",
        "description": "CI deploys",
        "policies": policies,
    }] } });
    lab::kubectl(
        &[
            "-n",
            namespace,
            "patch",
            "appproject",
            "team-a",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    );
}

fn apply(namespace: &str, manifest: &str) {
    lab::kubectl(&["-n", namespace, "apply", "-f", "-"], Some(manifest));
}

fn application(name: &str, project: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n\
         spec:\n  project: {project}\n  source:\n    repoURL: https://example.invalid/repo.git\n    \
         path: .\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: default\n"
    )
}

const GET_A: &str = "p, proj:team-a:deployer, applications, get, team-a/*, allow";

#[tokio::test]
async fn project_role_tokens_create_use_edit_revoke_rotate() {
    if !lab::e2e("project_role_tokens_create_use_edit_revoke_rotate") {
        return;
    }
    lab::client().await;
    lab::install_crds();
    let ns = lab::TestNamespace::create("proj-tokens");
    let namespace = ns.0.as_str();
    apply(
        namespace,
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: team-a\n\
         spec:\n  sourceRepos: ['*']\n  destinations: [{server: '*', namespace: '*'}]\n",
    );
    set_policies(namespace, &[GET_A]);
    apply(namespace, &application("web", "team-a"));
    apply(namespace, &application("billing", "team-b"));

    let server = Server::start(namespace).await;
    let url = server.url.clone();
    let password = server.admin_password();
    server.cli_ok(
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

    // Create: printed once, listed in the status with its id and a 10-minute expiry.
    let token = server
        .cli_ok(
            &[
                "proj",
                "role",
                "create-token",
                "team-a",
                "deployer",
                "-e",
                "10m",
                "-t",
            ],
            None,
        )
        .trim()
        .to_owned();
    assert_eq!(token.matches('.').count(), 2, "a JWT: {token:.16}…");
    let items = project_json(namespace)["status"]["jwtTokensByRole"]["deployer"]["items"].clone();
    let items = items.as_array().expect("items listed in the status");
    assert_eq!(items.len(), 1, "{items:?}");
    let iat = items[0]["iat"].as_i64().expect("iat");
    assert_eq!(items[0]["exp"].as_i64(), Some(iat + 600));
    let id = items[0]["id"].as_str().expect("id").to_owned();
    assert!(!server.log().contains(&token), "the token reached the log");

    // Use: the role's grants and nothing more.
    assert_eq!(
        status(&server, &token, "/api/v1/applications/web").await,
        200
    );
    assert_eq!(
        status(&server, &token, "/api/v1/applications/billing").await,
        403
    );
    let me: Value = client()
        .get(format!("{url}/api/v1/session/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(me["username"], "proj:team-a:deployer", "{me}");
    let sync = client()
        .post(format!("{url}/api/v1/applications/web/sync"))
        .bearer_auth(&token)
        .header(cairn::api::CSRF_HEADER, "1")
        .json(&json!({}))
        .send()
        .await
        .expect("sync");
    assert_eq!(sync.status().as_u16(), 403, "no sync policy");

    // Listed by the CLI with its id and issued-at.
    let listed = server.cli_ok(
        &[
            "proj",
            "role",
            "list-tokens",
            "team-a",
            "deployer",
            "-u",
            "-o",
            "json",
        ],
        None,
    );
    assert!(
        listed.contains(&id) && listed.contains(&iat.to_string()),
        "{listed}"
    );

    // Policy edits apply to the existing token at once (no wait between edit and request).
    set_policies(
        namespace,
        &["p, proj:team-a:deployer, applications, get, team-a/nothing, allow"],
    );
    assert_eq!(
        status(&server, &token, "/api/v1/applications/web").await,
        403
    );
    // A line naming another project's objects is refused: it grants nothing.
    set_policies(
        namespace,
        &[
            GET_A,
            "p, proj:team-a:deployer, applications, get, team-b/*, allow",
        ],
    );
    assert_eq!(
        status(&server, &token, "/api/v1/applications/web").await,
        200
    );
    assert_eq!(
        status(&server, &token, "/api/v1/applications/billing").await,
        403
    );

    // A second token (by id) and `cairn login --token` with it.
    let second = server
        .cli_ok(
            &[
                "proj",
                "role",
                "create-token",
                "team-a",
                "deployer",
                "-i",
                "ci-2",
                "-t",
            ],
            None,
        )
        .trim()
        .to_owned();
    let other_cli = tempfile::tempdir().expect("tempdir");
    let login = Command::new(BIN)
        .args(["login", "--server", &url, "--token", &second])
        .env("CAIRN_CLI_CONFIG", other_cli.path().join("cli.toml"))
        .output()
        .expect("cairn login --token");
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert!(String::from_utf8_lossy(&login.stdout).contains("proj:team-a:deployer"));
    let get = Command::new(BIN)
        .args(["app", "get", "web", "-o", "json"])
        .env("CAIRN_CLI_CONFIG", other_cli.path().join("cli.toml"))
        .output()
        .expect("cairn app get");
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );

    // Revoke the first by issued-at: 401 at once; the second still works.
    server.cli_ok(
        &[
            "proj",
            "role",
            "delete-token",
            "team-a",
            "deployer",
            &iat.to_string(),
        ],
        None,
    );
    assert_eq!(
        status(&server, &token, "/api/v1/applications/web").await,
        401
    );
    assert_eq!(
        status(&server, &second, "/api/v1/applications/web").await,
        200
    );
    let items = project_json(namespace)["status"]["jwtTokensByRole"]["deployer"]["items"].clone();
    assert_eq!(items.as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items[0]["id"], "ci-2");

    // Deleting the role revokes its tokens too.
    set_policies(namespace, &[GET_A]);
    lab::kubectl(
        &[
            "-n",
            namespace,
            "patch",
            "appproject",
            "team-a",
            "--type=merge",
            "-p",
            r#"{"spec":{"roles":[{"name":"viewer"}]}}"#,
        ],
        None,
    );
    assert_eq!(
        status(&server, &second, "/api/v1/applications/web").await,
        401
    );
    set_policies(namespace, &[GET_A]);
    assert_eq!(
        status(&server, &second, "/api/v1/applications/web").await,
        200
    );

    // Rotation without grace invalidates every token signed so far.
    let out = server.cli_ok(&["proj", "rotate-signing-key"], None);
    assert!(out.contains("no longer work"), "{out}");
    assert_eq!(
        status(&server, &second, "/api/v1/applications/web").await,
        401
    );
    // A token made after the rotation works.
    let third = server
        .cli_ok(
            &["proj", "role", "create-token", "team-a", "deployer", "-t"],
            None,
        )
        .trim()
        .to_owned();
    assert_eq!(
        status(&server, &third, "/api/v1/applications/web").await,
        200
    );

    // Refusals: unknown role (404), a token for a project the caller may not update (403 for a
    // project token itself), a forged token (401).
    let unknown = server.cli(&["proj", "role", "create-token", "team-a", "ghost"], None);
    assert!(!unknown.status.success());
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("no role \"ghost\""),
        "{stderr}"
    );
    let by_token = client()
        .post(format!("{url}/api/v1/projects/team-a/roles/deployer/token"))
        .bearer_auth(&third)
        .header(cairn::api::CSRF_HEADER, "1")
        .json(&json!({}))
        .send()
        .await
        .expect("create with a project token");
    assert_eq!(by_token.status().as_u16(), 403);
    // One character of the signature changed (not the last, whose low bits are padding).
    let at = third.len() - 5;
    let flipped = if &third[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &third[..at], &third[at + 1..]);
    assert_eq!(
        status(&server, &forged, "/api/v1/applications/web").await,
        401
    );
    assert!(!server.log().contains(&third), "a token reached the log");
}
