//! The whole train → eval → register → promote → sync → serve loop on the lab (CAIRN_E2E=1),
//! with one real `cairn server` doing GitOps, workflows, the registry and lineage at once:
//!
//! - a Git server (smart HTTP on loopback) holds `examples/gitops` as the GitOps repository
//!   (its placeholder repoURL, the control namespace and the serving namespace rewritten to this
//!   test's, as `examples/gitops/sync-to-lab` does); the AppProject and the serving Application
//!   `recommender-prod` (Helm, `values/prod.yaml`) are applied and sync the seed model;
//! - the `recommender-pipeline` WorkflowTemplate runs as written: train and eval in the lab's
//!   bookstore image, register and promote from the pods with `/var/run/cairn/cairn` and their
//!   projected tokens (TokenReview), promote writing `model.uri = {{url}}` and `model.version`
//!   by a commit that cairn pushes, then sees, syncs and follows to Healthy;
//! - the serving pods fetch the promoted version from cairn's content route with their own
//!   projected token, and answer recommendations with the version's sha256;
//! - `lineage/serving` from the live Deployment names that version, its dataset, the train
//!   image's digest, the hyperparameters and the eval score.
//!
//! Then two runs at once: one whose eval gate fails (registers and promotes nothing), one
//! promoting to `staging`, which the pipeline's service account may not do (RBAC: no commit).
//!
//! Needs the lab with the executor and bookstore images (`integration-tests/lab/up` imports
//! both) and `helm` (the lab's pinned build). Own namespaces (deleted at the end), own
//! controller instance id. Every wait is bounded; nothing asserts on timing.

#[path = "common/lab.rs"]
mod lab;
#[path = "common/session.rs"]
mod session;

#[path = "common/pipeline.rs"]
mod pipeline;

#[path = "common/git_http.rs"]
mod git_http;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cairn::workflow::types::Workflow;
use kube::api::Api;
use lab::{TestNamespace, client, e2e, free_port, kubectl};
use pipeline::{node, output_parameter, phase, submit};
use serde_json::{Value, json};

const INSTANCE: &str = "cairn-mlops-loop";
const RUN_BOUND: Duration = Duration::from_secs(480);
const SYNC_BOUND: Duration = Duration::from_secs(300);
const PLACEHOLDER_REPO: &str = "https://git.example.com/data-platform/gitops.git";
const VALUES: &str = "apps/recommender/values/prod.yaml";

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Rewrites every YAML file under `dir` with `edit`.
fn rewrite(dir: &Path, edit: &dyn Fn(&str) -> String) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rewrite(&path, edit);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = std::fs::read_to_string(&path).expect("read");
            std::fs::write(&path, edit(&text)).expect("write");
        }
    }
}

/// `(sha, subject)` of the bare repository's `main`, newest first.
fn log(bare: &Path) -> Vec<(String, String)> {
    git(bare, &["log", "--format=%H %s", "main"])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, s)| (h.to_owned(), s.to_owned()))
        .collect()
}

/// Polls the Application until `done` holds for it; fails after `bound` with its status.
async fn wait_app(
    ns: &str,
    name: &str,
    bound: Duration,
    server: &lab::Server,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let text = kubectl(
            &[
                "-n",
                ns,
                "get",
                "applications.argoproj.io",
                name,
                "-o",
                "json",
                "--ignore-not-found",
            ],
            None,
        );
        let app: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if done(&app) {
            return app;
        }
        assert!(
            Instant::now() < deadline,
            "Application {ns}/{name} not {what} within {bound:?}:\n{}\n{}",
            serde_json::to_string_pretty(&app["status"]).unwrap_or_default(),
            server.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Takes the Application's finalizer off when dropped (after the test or a failed assertion),
/// so its namespace can go once the server that would honour the finalizer has stopped.
struct Unfinalize {
    namespace: String,
    app: &'static str,
}

impl Drop for Unfinalize {
    fn drop(&mut self) {
        let _ = Command::new("kubectl")
            .args([
                "--request-timeout=30s",
                "-n",
                &self.namespace,
                "patch",
                "applications.argoproj.io",
                self.app,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ])
            .output();
    }
}

fn synced_healthy_at(app: &Value, revision: Option<&str>) -> bool {
    let status = &app["status"];
    status["sync"]["status"] == "Synced"
        && status["health"]["status"] == "Healthy"
        && revision.is_none_or(|r| status["sync"]["revision"] == r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_eval_register_promote_sync_serve() {
    if !e2e("train_eval_register_promote_sync_serve") {
        return;
    }
    let client = client().await;
    let ip = lab::node_ip(&client).await;
    let control = TestNamespace::create("cairn-loop");
    let ml = TestNamespace::create("cairn-loop-ml");
    // The AppProject lets the repository deploy only to dp-* namespaces.
    let serving = TestNamespace::create("dp-loop");

    // --- the GitOps repository --------------------------------------------------------------
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("git");
    let bare = root.join("gitops.git");
    std::fs::create_dir_all(&root).expect("mkdir");
    git(&root, &["init", "-q", "--bare", "-b", "main", "gitops.git"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let server_git = git_http::HttpServer::start(&root, None);
    let repo_url = server_git.url_of("gitops.git");
    let work = tmp.path().join("work");
    for dir in ["apps", "clusters", "projects"] {
        copy_tree(&Path::new("examples/gitops").join(dir), &work.join(dir));
    }
    let (control_ns, serving_ns) = (control.0.clone(), serving.0.clone());
    rewrite(&work, &|text: &str| {
        text.replace(PLACEHOLDER_REPO, &repo_url)
            .replace("namespace: argocd", &format!("namespace: {control_ns}"))
            .replace("namespace: dp-prod", &format!("namespace: {serving_ns}"))
    });
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "example tree"]);
    git(&work, &["push", "-q", &repo_url, "main"]);
    let seeded = log(&bare);
    assert_eq!(seeded.len(), 1, "{seeded:?}");

    // --- cairn --------------------------------------------------------------------------------
    let exec: SocketAddr = format!("{ip}:{}", free_port(&ip))
        .parse()
        .expect("executor addr");
    let pipeline_sa = format!("system:serviceaccount:{}:recommender-pipeline", ml.0);
    let serving_sa = format!("system:serviceaccount:{}:recommender", serving.0);
    let server = lab::Server::start_with(
        "",
        &format!(
            "[gitops]\nnamespace = \"{control}\"\npoll_interval = \"30s\"\npoll_jitter = \"1s\"\n\
             resync_interval = \"5s\"\ninstallation_id = \"{control}\"\n\n\
             [workflow]\nnamespaces = [\"{ml}\"]\ninstance_id = \"{INSTANCE}\"\n\
             executor_url = \"http://{exec}\"\nexecutor_listen = \"{exec}\"\n\n\
             [rbac]\npolicy_default = \"\"\npolicy_csv = \"\"\"\n\
             p, {pipeline_sa}, models, create, recommender, allow\n\
             p, {pipeline_sa}, models, promote, recommender/prod, allow\n\
             p, {serving_sa}, models, get, recommender, allow\n\"\"\"\n\n\
             [[promotion]]\nmodel = \"recommender\"\nalias = \"prod\"\nrepo = \"{repo_url}\"\n\
             branch = \"main\"\nfile = \"{VALUES}\"\n\
             set = {{ \"model.uri\" = \"{{{{url}}}}\", \"model.version\" = \"{{{{version}}}}\" }}\n",
            control = control.0,
            ml = ml.0,
        ),
        &[exec],
    )
    .await;
    let api = session::Session::open(&server).await;

    // --- the serving Application, synced at the seed commit ------------------------------------
    for file in [
        "projects/data-platform-project.yaml",
        "clusters/prod/apps/recommender.yaml",
    ] {
        let text = std::fs::read_to_string(work.join(file)).expect(file);
        kubectl(&["apply", "-f", "-"], Some(&text));
    }
    let _finalizer = Unfinalize {
        namespace: control.0.clone(),
        app: "recommender-prod",
    };
    let started = Instant::now();
    wait_app(
        &control.0,
        "recommender-prod",
        SYNC_BOUND,
        &server,
        "Synced and Healthy at the seed commit",
        |app| synced_healthy_at(app, Some(&seeded[0].0)),
    )
    .await;
    let seed_wall = started.elapsed();

    // --- the pipeline, as written, in its namespace ---------------------------------------------
    for file in ["rbac.yaml", "recommender-pipeline.yaml"] {
        let text =
            std::fs::read_to_string(format!("examples/bookstore/manifests/{file}")).expect(file);
        let text = text.replace("namespace: bookstore", &format!("namespace: {}", ml.0));
        kubectl(&["-n", &ml.0, "apply", "-f", "-"], Some(&text));
    }
    let workflows: Api<Workflow> = Api::namespaced(client.clone(), &ml.0);
    let started = Instant::now();
    let run = submit(&ml.0, INSTANCE, "recommender-", json!([]));
    let wf = lab::wait_finished(&workflows, &run, RUN_BOUND, &server).await;
    let run_wall = started.elapsed();
    let status = serde_json::to_string_pretty(&wf.status).unwrap_or_default();
    assert_eq!(phase(&wf), "Succeeded", "{run}: {status}\n{}", server.log());

    // The version: registered from the register pod, with the run's score and parameters.
    let (code, versions) = api.get("/api/v1/models/recommender/versions").await;
    assert_eq!(code, 200, "{versions}");
    let items = versions["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{versions}");
    let version = &items[0];
    assert_eq!(version["version"], 1, "{version}");
    assert_eq!(version["run"]["workflow"], run.as_str(), "{version}");
    assert_eq!(version["createdBy"], pipeline_sa.as_str(), "{version}");
    let score = output_parameter(&node(&wf, "eval"), "score")
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("eval has no score: {status}"));
    assert_eq!(
        version["metrics"]["score"].as_f64(),
        Some(score),
        "{version}"
    );
    let dataset = "gen://bookstore?users=2000&books=300&clusters=6&seed=7";
    assert_eq!(version["params"]["dataset_uri"], dataset, "{version}");
    assert_eq!(version["params"]["top_k"], "20", "{version}");
    let digest = version["digest"]
        .as_str()
        .filter(|d| d.starts_with("sha256:") && d.len() == 71)
        .unwrap_or_else(|| panic!("no digest: {version}"))
        .to_owned();
    assert!(
        version["sourceUri"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("cairn://{}/", ml.0))),
        "{version}"
    );

    // The promotion commit: one more commit on main, editing only the values file.
    let history = log(&bare);
    assert_eq!(history.len(), 2, "{history:?}");
    let (promoted, subject) = history[0].clone();
    assert_eq!(subject, "promote recommender v1 to prod", "{history:?}");
    let body = git(&bare, &["log", "-1", "--format=%B", &promoted]);
    assert!(body.contains("Model-Version: recommender/1"), "{body}");
    assert!(body.contains(&format!("Run: {}/{run}", ml.0)), "{body}");
    let changed = git(&bare, &["diff", "--name-only", &seeded[0].0, &promoted]);
    assert_eq!(changed.trim(), VALUES, "{changed}");
    let values = git(&bare, &["show", &format!("{promoted}:{VALUES}")]);
    let url = format!("http://{exec}/executor/v1/models/recommender/versions/1/content");
    assert!(values.contains(&format!("uri: {url}")), "{values}");
    assert!(values.contains("version: \"1\""), "{values}");
    assert!(
        values.contains("# Written by `cairn model promote"),
        "the file's comments are kept:\n{values}"
    );

    // cairn sees its own push, syncs it, and the new pods turn Healthy serving version 1.
    let started = Instant::now();
    wait_app(
        &control.0,
        "recommender-prod",
        SYNC_BOUND,
        &server,
        "Synced and Healthy at the promotion commit",
        |app| synced_healthy_at(app, Some(&promoted)),
    )
    .await;
    let sync_wall = started.elapsed();
    let svc: Value = serde_json::from_str(&kubectl(
        &[
            "-n",
            &serving.0,
            "get",
            "service",
            "recommender",
            "-o",
            "json",
        ],
        None,
    ))
    .expect("service json");
    let cluster_ip = svc["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_owned();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    // The rollout may still be replacing old pods behind the Service: bounded retries until
    // every answer comes from version 1.
    let deadline = Instant::now() + Duration::from_secs(120);
    let answer = loop {
        let got = http
            .get(format!("http://{cluster_ip}/recommendations?book=0&n=5"))
            .send()
            .await;
        let last = match got {
            Ok(resp) if resp.status().is_success() => {
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                if body["version"] == "1" {
                    break body;
                }
                body.to_string()
            }
            Ok(resp) => format!("HTTP {}", resp.status()),
            Err(e) => e.to_string(),
        };
        assert!(
            Instant::now() < deadline,
            "the Service does not answer from version 1 within 120 s (last: {last})\n{}",
            kubectl(&["-n", &serving.0, "get", "pods", "-o", "wide"], None)
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(answer["model"], "recommender", "{answer}");
    assert_eq!(
        format!("sha256:{}", answer["sha256"].as_str().unwrap_or_default()),
        digest,
        "the pods serve the registered bytes: {answer}"
    );
    assert_eq!(
        answer["recommendations"].as_array().map(Vec::len),
        Some(5),
        "{answer}"
    );

    // "What is serving now", from the live Deployment.
    let path = format!(
        "/api/v1/lineage/serving/{}/deployment/recommender",
        serving.0
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let now_serving = loop {
        let (code, body) = api.get(&path).await;
        // The run's capture (its executions and artifacts) follows the Workflow's end.
        if code == 200
            && !body["models"][0]["executions"]
                .as_array()
                .is_none_or(Vec::is_empty)
        {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "lineage/serving within 120 s: {code} {body}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    assert_eq!(
        now_serving["application"], "recommender-prod",
        "{now_serving}"
    );
    assert_eq!(now_serving["revision"], promoted.as_str(), "{now_serving}");
    let model = &now_serving["models"][0];
    assert_eq!(model["model"], "recommender", "{model}");
    assert_eq!(model["version"], 1, "{model}");
    assert!(
        model["datasets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["uri"] == dataset),
        "the dataset: {model}"
    );
    let train_image = model["code"]["images"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["template"] == "train")
        .cloned()
        .unwrap_or_else(|| panic!("the train image: {model}"));
    assert_eq!(
        train_image["image"], "localhost/cairn/bookstore:0.1.0",
        "{model}"
    );
    assert!(
        train_image["image_digest"]
            .as_str()
            .is_some_and(|d| d.contains("sha256:")),
        "the train image's digest: {model}"
    );
    assert_eq!(model["hyperparameters"]["top-k"], "20", "{model}");
    assert_eq!(model["hyperparameters"]["seed"], "7", "{model}");
    assert_eq!(
        model["metrics"]["registered"]["score"].as_f64(),
        Some(score),
        "{model}"
    );

    // --- a run whose gate fails and a promotion RBAC denies, at once -----------------------------
    let started = Instant::now();
    let gated = submit(
        &ml.0,
        INSTANCE,
        "recommender-gated-",
        json!([{"name": "min-score", "value": "1.1"}]),
    );
    let denied = submit(
        &ml.0,
        INSTANCE,
        "recommender-staging-",
        json!([{"name": "alias", "value": "staging"}]),
    );
    let wf = lab::wait_finished(&workflows, &gated, RUN_BOUND, &server).await;
    let status = serde_json::to_string_pretty(&wf.status).unwrap_or_default();
    assert_eq!(phase(&wf), "Failed", "{gated}: {status}");
    assert_eq!(node(&wf, "eval")["phase"], "Failed", "{status}");
    for never in ["register", "promote"] {
        let n = node(&wf, never);
        assert!(
            !matches!(
                n["phase"].as_str(),
                Some("Succeeded" | "Failed" | "Running")
            ),
            "{never} ran after a failed gate: {n}"
        );
    }
    let wf = lab::wait_finished(&workflows, &denied, RUN_BOUND, &server).await;
    let others_wall = started.elapsed();
    let status = serde_json::to_string_pretty(&wf.status).unwrap_or_default();
    assert_eq!(phase(&wf), "Failed", "{denied}: {status}");
    assert_eq!(node(&wf, "register")["phase"], "Succeeded", "{status}");
    let promote = node(&wf, "promote");
    assert_eq!(promote["phase"], "Failed", "{status}");
    let pod = cairn::workflow::node::pod_name(
        &denied,
        "promote",
        promote["name"].as_str().unwrap_or_default(),
    );
    let promote_log = kubectl(&["-n", &ml.0, "logs", &pod, "-c", "main"], None);
    assert!(
        promote_log.contains("permission denied"),
        "the promote step says why: {promote_log}"
    );
    // Only the denied run's registration is new (version 2); no commit was made.
    let (_, versions) = api.get("/api/v1/models/recommender/versions").await;
    let numbers: Vec<u64> = versions["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["version"].as_u64())
        .collect();
    assert_eq!(numbers, vec![1, 2], "{versions}");
    assert_eq!(
        versions["items"][1]["run"]["workflow"],
        denied.as_str(),
        "{versions}"
    );
    assert_eq!(log(&bare), history, "no commit after a denied promotion");
    let (code, promotions) = api.get("/api/v1/promotions?model=recommender").await;
    assert_eq!(code, 200, "{promotions}");
    assert_eq!(
        promotions["items"].as_array().map(Vec::len),
        Some(1),
        "{promotions}"
    );

    println!(
        "mlops loop: seed synced in {:.1} s; run {run} (score {score}) Succeeded in {:.1} s; \
         promotion {promoted} synced and Healthy {:.1} s after; gated + denied runs {:.1} s",
        seed_wall.as_secs_f64(),
        run_wall.as_secs_f64(),
        sync_wall.as_secs_f64(),
        others_wall.as_secs_f64()
    );
}
