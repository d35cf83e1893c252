//! The real `mlflow` Python client (PyPI mlflow-skinny, pinned by tests/mlflow/constraints.txt,
//! venv built by scripts/mlflow-env) against cairn's MLflow REST subset, served in-process on a
//! loopback port with a cairn API token as `MLFLOW_TRACKING_TOKEN`.
//!
//! tests/mlflow/client.py logs an experiment, runs, params, metrics (single, batch, history),
//! tags, a dataset input and an artifact, downloads the artifact back, searches runs with a
//! filter, order and pages, registers a model version from the run and sets an alias; this test
//! then checks cairn's side: the run record, the metric history table, the blob store, and the
//! registry version's run id, metrics and digest. RBAC denials are checked over plain HTTP.
//!
//! If the venv cannot be built (no python3, no PyPI), the client test prints a SKIP line naming
//! the reason; everything else still runs.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use cairn::api::{self, AppState, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::{Capability, Config, UserConfig};
use cairn::store::Store;

struct Server {
    url: String,
    auth: Arc<Auth>,
    ds_token: String,
    viewer_token: String,
    _dir: tempfile::TempDir,
}

const POLICY: &str = "\
p, ds, experiments, *, *, allow
p, ds, models, get, *, allow
p, ds, models, create, recommender, allow
p, ds, models, update, recommender, allow
p, ds, models, promote, recommender/champion, allow
p, ds, models, promote, recommender/scratch, allow
p, viewer, experiments, get, *, allow
p, viewer, models, get, *, allow
";

async fn start() -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.rbac.policy_default = String::new();
    config.rbac.policy_csv = POLICY.to_string();
    for user in ["ds", "viewer"] {
        config.accounts.users.insert(
            user.into(),
            UserConfig {
                capabilities: vec![Capability::ApiKey],
                enabled: true,
            },
        );
    }
    let store = Store::open(dir.path()).expect("store");
    let auth = Arc::new(Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth"));
    let ds = auth
        .create_token("ds", "mlflow", None)
        .await
        .expect("ds token");
    let viewer = auth
        .create_token("viewer", "mlflow", None)
        .await
        .expect("viewer token");
    let app = api::router(AppState::new(StateParts {
        auth: auth.clone(),
        kube: None,
        namespace: "argocd".into(),
        secure_cookies: false,
        public_url: None,
        metrics: None,
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        url: format!("http://{addr}"),
        auth,
        ds_token: ds.secret().to_string(),
        viewer_token: viewer.secret().to_string(),
        _dir: dir,
    }
}

/// The pinned client's python, building the venv if needed; `Err` says why it cannot be had.
async fn mlflow_python() -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/mlflow-env");
    let out = tokio::time::timeout(
        Duration::from_secs(900),
        tokio::process::Command::new(&script)
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| "scripts/mlflow-env did not finish in 900 s".to_string())?
    .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/mlflow-env failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

async fn call(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[tokio::test]
async fn mlflow_client_logs_a_run_and_registers_a_version() {
    let server = start().await;
    let python = match mlflow_python().await {
        Ok(p) => p,
        Err(why) => {
            eprintln!("SKIP mlflow_client_logs_a_run_and_registers_a_version: {why}");
            return;
        }
    };
    let work = tempfile::tempdir().expect("work dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mlflow/client.py");
    let child = tokio::process::Command::new(&python)
        .arg(&script)
        .env("MLFLOW_TRACKING_URI", &server.url)
        .env("MLFLOW_TRACKING_TOKEN", &server.ds_token)
        .env("WORK", work.path())
        // No retries against a refusal, no telemetry, nothing from the user's config.
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .env("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("DO_NOT_TRACK", "true")
        .env_remove("MLFLOW_TRACKING_USERNAME")
        .env_remove("MLFLOW_TRACKING_PASSWORD")
        .env("HOME", work.path())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .expect("the client script finishes within 300 s")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "client.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(
        stdout
            .lines()
            .last()
            .expect("client.py prints its result line"),
    )
    .expect("result JSON");
    let run_id = result["run_id"].as_str().expect("run id").to_string();
    let experiment_id = result["experiment_id"].as_str().expect("experiment id");

    // cairn's side: the run as stored, its metric history, the artifact's blob.
    let store = server.auth.store();
    let (run, history, version) = store
        .read(|txn| {
            let run = cairn::lineage::mlflow::get_run(txn, &run_id).expect("run stored");
            let history =
                cairn::lineage::mlflow::metric_history(txn, &run_id, "score").expect("history");
            let version =
                cairn::lineage::registry::get_version(txn, "recommender", 1).expect("version 1");
            Ok::<_, cairn::store::StoreError>((run, history, version))
        })
        .expect("read");
    assert_eq!(run.experiment_id, experiment_id);
    assert_eq!(run.user_id, "ds", "the run belongs to the token's account");
    assert_eq!(run.params["k"], "5");
    assert_eq!(run.metrics["score"].value, 0.41);
    assert_eq!(run.inputs[0].name, "co-reading");
    assert_eq!(run.workflow, None, "a user token links no workflow");
    assert_eq!(
        history
            .iter()
            .map(|p| (p.step, p.value))
            .collect::<Vec<_>>(),
        [(0, 0.30), (1, 0.41)]
    );
    let artifact = &run.artifacts["model/model.txt"];
    assert_eq!(artifact.size, 29);
    let blob = server
        ._dir
        .path()
        .join("artifacts/sha256")
        .join(&artifact.digest[..2])
        .join(&artifact.digest);
    assert_eq!(
        std::fs::read_to_string(&blob).expect("blob in the built-in store"),
        "item-knn co-occurrence model\n"
    );

    // The registry version carries the run: id, metrics, params and the artifact's digest.
    assert_eq!(version.tags[cairn::api::mlflow::RUN_ID_TAG], run_id);
    assert_eq!(version.metrics["score"], 0.41);
    assert_eq!(version.metrics["recall"], 0.5);
    assert_eq!(version.params["top_k"], "10");
    assert_eq!(
        version.digest.as_deref(),
        Some(format!("sha256:{}", artifact.digest).as_str())
    );
    assert_eq!(
        version.source_uri,
        format!("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/model/model.txt")
    );
    assert_eq!(version.created_by, "ds");
    assert!(version.lineage_id.is_some(), "the version is in the graph");
    let (alias, _) = store
        .read(|txn| cairn::lineage::registry::get_by_alias(txn, "recommender", "champion"))
        .expect("alias");
    assert_eq!(alias.version, 1);
}

#[tokio::test]
async fn rbac_and_errors_answer_in_mlflow_shape() {
    let server = start().await;
    let post = reqwest::Method::POST;
    // viewer may read experiments but not create them.
    let (status, body) = call(
        &server,
        &server.viewer_token,
        post.clone(),
        "/api/2.0/mlflow/experiments/create",
        serde_json::json!({"name": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{body}"
    );
    // No token at all.
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/api/2.0/mlflow/experiments/get?experiment_id=0",
            server.url
        ))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error_code"], "UNAUTHENTICATED");
    // A missing run, a bad filter.
    let (status, body) = call(
        &server,
        &server.ds_token,
        reqwest::Method::GET,
        "/api/2.0/mlflow/runs/get?run_id=0123456789abcdef0123456789abcdef",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST"))
    );
    let (status, body) = call(
        &server,
        &server.ds_token,
        post.clone(),
        "/api/2.0/mlflow/runs/search",
        serde_json::json!({"experiment_ids": ["0"], "filter": "metrics.a > 1 OR metrics.b > 1"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("OR is not supported")),
        "{body}"
    );
    // ds registers but may not set `prod` (no promote on recommender/prod).
    let (status, _) = call(
        &server,
        &server.ds_token,
        post.clone(),
        "/api/2.0/mlflow/registered-models/create",
        serde_json::json!({"name": "recommender"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &server,
        &server.ds_token,
        post.clone(),
        "/api/2.0/mlflow/model-versions/create",
        serde_json::json!({"name": "recommender", "source": "s3://bucket/model"}),
    )
    .await;
    assert_eq!(
        (status, body["model_version"]["version"].as_str()),
        (200, Some("1")),
        "{body}"
    );
    let (status, body) = call(
        &server,
        &server.ds_token,
        post.clone(),
        "/api/2.0/mlflow/registered-models/alias",
        serde_json::json!({"name": "recommender", "alias": "prod", "version": "1"}),
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("recommender/prod")),
        "{body}"
    );
    let none = server
        .auth
        .store()
        .read(|txn| cairn::lineage::registry::list_aliases(txn, "recommender"))
        .expect("aliases");
    assert!(none.is_empty(), "the refused alias was not set: {none:?}");
    // viewer cannot register versions of recommender.
    let (status, _) = call(
        &server,
        &server.viewer_token,
        post,
        "/api/2.0/mlflow/model-versions/create",
        serde_json::json!({"name": "recommender", "source": "s3://bucket/model"}),
    )
    .await;
    assert_eq!(status, 403);
}
