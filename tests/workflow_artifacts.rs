//! Workflow artifacts on the lab (CAIRN_E2E=1): a real `cairn server` whose executor routes
//! listen on the lab's node IP (which pods reach through the CNI bridge gateway) runs Argo-style
//! artifact passing through cairn's built-in store — steps → steps and dag → dag, `archive:
//! none` and the default tar — and the recorded digest is checked against the bytes in the
//! store; a missing non-optional output fails its node; uploads without a valid token are
//! refused (401, the real TokenReview); and the same passing through a real S3-compatible
//! server (SeaweedFS, `integration-tests/s3/start`) when its binary is built.
//!
//! Needs the lab (`eval "$(integration-tests/lab/env)"`) with the executor image loaded
//! (`make executor`). Own namespace per test (deleted at the end), own controller instance id.
//! Every wait is bounded; nothing asserts on timing.

#[path = "common/lab.rs"]
mod lab;
#[path = "common/s3.rs"]
mod s3;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cairn::workflow::types::Workflow;
use kube::api::Api;
use lab::{TestNamespace, client, e2e, free_port, kubectl};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const INSTANCE: &str = "cairn-h1-artifacts";
const RUN_BOUND: Duration = Duration::from_secs(300);

/// A `cairn server` for one namespace: API on loopback, executor routes on the node IP.
struct Server {
    server: lab::Server,
    executor_url: String,
}

impl Server {
    async fn start(namespace: &str, node_ip: &str) -> Server {
        let exec: SocketAddr = format!("{node_ip}:{}", free_port(node_ip))
            .parse()
            .expect("addr");
        let executor_url = format!("http://{exec}");
        let server = lab::Server::start(
            &format!(
                "namespaces = [\"{namespace}\"]\ninstance_id = \"{INSTANCE}\"\n\
                 executor_url = \"{executor_url}\"\nexecutor_listen = \"{exec}\"\n"
            ),
            &[exec],
        )
        .await;
        Server {
            server,
            executor_url,
        }
    }

    fn log(&self) -> String {
        self.server.log()
    }

    fn store(&self) -> PathBuf {
        self.server.data_dir().join("artifacts")
    }

    /// The bytes stored under `namespace/key` (through the ref file to the blob).
    fn stored(&self, namespace: &str, key: &str) -> Vec<u8> {
        let reference: Value = serde_json::from_slice(
            &std::fs::read(
                self.store()
                    .join("refs")
                    .join(namespace)
                    .join(format!("{key}.ref")),
            )
            .unwrap_or_else(|e| panic!("ref of {key}: {e}")),
        )
        .expect("ref json");
        let digest = reference["digest"].as_str().expect("digest").to_string();
        std::fs::read(self.store().join("sha256").join(&digest[..2]).join(&digest)).expect("blob")
    }
}

fn create(ns: &str, mut wf: Value) -> String {
    wf["metadata"]["labels"]["workflows.argoproj.io/controller-instanceid"] = json!(INSTANCE);
    let out = kubectl(
        &["-n", ns, "create", "-f", "-", "-o", "name"],
        Some(&wf.to_string()),
    );
    out.trim().rsplit('/').next().unwrap_or_default().to_owned()
}

async fn wait_finished(api: &Api<Workflow>, name: &str, server: &Server) -> Workflow {
    lab::wait_finished(api, name, RUN_BOUND, &server.server).await
}

fn phase(wf: &Workflow) -> String {
    wf.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

/// The output artifacts of the node whose display name is `display`.
fn node_artifacts(wf: &Workflow, display: &str) -> Vec<Value> {
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .into_iter()
        .flatten()
        .map(|(_, n)| n)
        .find(|n| n.display_name.as_deref() == Some(display))
        .and_then(|n| n.outputs.as_ref())
        .and_then(|o| o.artifacts.clone())
        .unwrap_or_default()
}

fn node_message(wf: &Workflow, display: &str) -> String {
    wf.status
        .as_ref()
        .and_then(|s| s.nodes.as_ref())
        .into_iter()
        .flatten()
        .map(|(_, n)| n)
        .find(|n| n.display_name.as_deref() == Some(display))
        .and_then(|n| n.message.clone())
        .unwrap_or_default()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The producer writes a file (stored as it is) and a directory (tar); the consumer checks
/// both byte for byte, so a wrong artifact fails its pod.
fn templates() -> Value {
    json!([
        {"name": "make",
         "container": {"image": "busybox", "command": ["sh", "-c"],
           "args": ["echo 'hello world' > /tmp/hello.txt && mkdir -p /tmp/tree/sub && echo leaf > /tmp/tree/sub/leaf"]},
         "outputs": {"artifacts": [
            {"name": "hello", "path": "/tmp/hello.txt", "archive": {"none": {}}},
            {"name": "tree", "path": "/tmp/tree"}]}},
        {"name": "use",
         "inputs": {"artifacts": [
            {"name": "hello", "path": "/in/hello.txt"},
            {"name": "tree", "path": "/in/tree"}]},
         "container": {"image": "busybox", "command": ["sh", "-c"],
           "args": ["test \"$(cat /in/hello.txt)\" = 'hello world' && test \"$(cat /in/tree/sub/leaf)\" = leaf && echo verified"]},
         "securityContext": {"runAsUser": 1000, "runAsNonRoot": true}}
    ])
}

fn steps_workflow() -> Value {
    let mut templates = templates().as_array().cloned().expect("templates");
    templates.insert(
        0,
        json!({"name": "main", "steps": [
            [{"name": "make", "template": "make"}],
            [{"name": "use", "template": "use", "arguments": {"artifacts": [
                {"name": "hello", "from": "{{steps.make.outputs.artifacts.hello}}"},
                {"name": "tree", "from": "{{steps.make.outputs.artifacts.tree}}"}]}}]
        ]}),
    );
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
           "metadata": {"generateName": "artifact-passing-"},
           "spec": {"entrypoint": "main", "templates": templates}})
}

fn dag_workflow() -> Value {
    let mut templates = templates().as_array().cloned().expect("templates");
    templates.insert(0, json!({"name": "main", "dag": {"tasks": [
        {"name": "make", "template": "make"},
        {"name": "use", "template": "use", "dependencies": ["make"], "arguments": {"artifacts": [
            {"name": "hello", "from": "{{tasks.make.outputs.artifacts.hello}}"},
            {"name": "tree", "from": "{{tasks.make.outputs.artifacts.tree}}"}]}}
    ]}}));
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
           "metadata": {"generateName": "artifact-passing-dag-"},
           "spec": {"entrypoint": "main", "templates": templates}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_pass_through_the_builtin_store() {
    if !e2e("artifacts_pass_through_the_builtin_store") {
        return;
    }
    let client = client().await;
    let ip = lab::node_ip(&client).await;
    let ns = TestNamespace::create("cairn-h1-art");
    let server = Server::start(&ns.0, &ip).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);

    let steps = create(&ns.0, steps_workflow());
    let dag = create(&ns.0, dag_workflow());
    let missing = create(
        &ns.0,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
               "metadata": {"generateName": "artifact-missing-"},
               "spec": {"entrypoint": "main", "templates": [
                 {"name": "main", "container": {"image": "busybox", "command": ["true"]},
                  "outputs": {"artifacts": [
                    {"name": "gone", "path": "/tmp/never-written"},
                    {"name": "maybe", "path": "/tmp/also-not", "optional": true}]}}]}}),
    );

    for (name, producer) in [(&steps, "make"), (&dag, "make")] {
        let wf = wait_finished(&api, name, &server).await;
        assert_eq!(
            phase(&wf),
            "Succeeded",
            "{name}: {}\n{}",
            serde_json::to_string_pretty(&wf.status).unwrap_or_default(),
            server.log()
        );
        // Argo's `.status.artifactRepositoryRef`: nothing configured → the built-in store.
        let reference = wf
            .status
            .as_ref()
            .and_then(|s| s.extra.get("artifactRepositoryRef"))
            .cloned();
        assert_eq!(
            reference,
            Some(json!({"default": true, "artifactRepository": {"cairn": {}}}))
        );
        let arts = node_artifacts(&wf, producer);
        assert_eq!(arts.len(), 2, "{arts:?}");
        for art in &arts {
            let key = art["cairn"]["key"].as_str().expect("builtin key");
            assert!(key.starts_with(&format!("{name}/")), "{key}");
            let bytes = server.stored(&ns.0, key);
            assert_eq!(
                art["digest"],
                json!(format!("sha256:{}", sha256_hex(&bytes))),
                "{art}"
            );
            assert_eq!(art["size"], json!(bytes.len()), "{art}");
            match art["name"].as_str() {
                // archive: none → the file's bytes as they are, under its own file name.
                Some("hello") => {
                    assert_eq!(bytes, b"hello world\n");
                    assert!(key.ends_with("/hello.txt"), "{key}");
                    assert_eq!(art["archive"], json!({"none": {}}));
                }
                // default → gzip tar, `<name>.tgz`.
                Some("tree") => {
                    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");
                    assert!(key.ends_with("/tree.tgz"), "{key}");
                }
                other => panic!("unexpected artifact {other:?}"),
            }
        }
        println!(
            "{name}: artifacts {}",
            serde_json::to_string(&arts).unwrap_or_default()
        );
    }

    let wf = wait_finished(&api, &missing, &server).await;
    assert_eq!(phase(&wf), "Failed", "{}", server.log());
    let message = node_message(&wf, &missing);
    assert!(
        message.contains("outputs.artifacts.gone")
            && message.contains("/tmp/never-written does not exist"),
        "{message}"
    );
    assert!(!message.contains("maybe"), "{message}");

    // Without a valid token the executor routes refuse uploads (the real TokenReview).
    let http = reqwest::Client::new();
    let url = format!(
        "{}/executor/v1/artifacts/{}/{steps}/forged/x",
        server.executor_url, ns.0
    );
    for token in [
        None,
        Some("not-a-token"),
        Some("eyJhbGciOiJSUzI1NiJ9.e30.c2lnbmF0dXJl"),
    ] {
        let mut req = http.put(&url).body("forged bytes");
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("send");
        assert_eq!(resp.status().as_u16(), 401, "token {token:?}");
    }
    assert!(
        !server
            .store()
            .join("refs")
            .join(&ns.0)
            .join(&steps)
            .join("forged")
            .exists()
    );
    let log = server.log();
    assert!(
        log.contains("artifact request refused"),
        "refusals are logged"
    );
    assert!(
        !log.contains("not-a-token"),
        "a token never appears in the log"
    );
}

/// The same passing through a real S3-compatible server (SeaweedFS on the node IP): the
/// repository comes from the namespace's `artifact-repositories` ConfigMap (default key by
/// annotation), the credentials from a Secret through `secretKeyRef`; the digest recorded for
/// each output is the sha256 of the object in the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_pass_through_s3() {
    if !e2e("artifacts_pass_through_s3") {
        return;
    }
    let client = client().await;
    let ip = lab::node_ip(&client).await;
    let s3 = tokio::task::spawn_blocking(|| s3::S3Server::start("cairn-h1-artifacts"))
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("starting SeaweedFS: {e}"));
    assert!(
        s3.endpoint.contains(&ip),
        "S3 must listen on the node IP: {}",
        s3.endpoint
    );
    let ns = TestNamespace::create("cairn-h1-s3");
    // Through stdin: the keys never appear in a command line.
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "my-s3-credentials"},
        "stringData": {"accessKey": s3.access_key, "secretKey": s3.secret_key}});
    kubectl(
        &["-n", &ns.0, "apply", "-f", "-"],
        Some(&secret.to_string()),
    );
    let endpoint = s3.endpoint.trim_start_matches("http://").to_string();
    let repository = format!(
        "s3:\n  endpoint: {endpoint}\n  bucket: {}\n  region: {}\n  insecure: true\n  \
         accessKeySecret: {{name: my-s3-credentials, key: accessKey}}\n  \
         secretKeySecret: {{name: my-s3-credentials, key: secretKey}}\n",
        s3.bucket, s3.region
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "artifact-repositories",
                     "annotations": {"workflows.argoproj.io/default-artifact-repository": "my-s3"}},
        "data": {"my-s3": repository}});
    kubectl(&["-n", &ns.0, "apply", "-f", "-"], Some(&cm.to_string()));
    let server = Server::start(&ns.0, &ip).await;
    let api: Api<Workflow> = Api::namespaced(client.clone(), &ns.0);
    let name = create(&ns.0, steps_workflow());
    let wf = wait_finished(&api, &name, &server).await;
    assert_eq!(
        phase(&wf),
        "Succeeded",
        "{}\n{}\n{}",
        serde_json::to_string_pretty(&wf.status).unwrap_or_default(),
        server.log(),
        s3.log_tail(30)
    );
    let reference = wf
        .status
        .as_ref()
        .and_then(|s| s.extra.get("artifactRepositoryRef"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(reference["configMap"], "artifact-repositories");
    assert_eq!(reference["key"], "my-s3");
    let store = s3.store_at(&s3.loopback_endpoint).expect("S3 client");
    let arts = node_artifacts(&wf, "make");
    assert_eq!(arts.len(), 2, "{arts:?}");
    for art in &arts {
        let key = art["s3"]["key"].as_str().expect("s3 key");
        assert!(key.starts_with(&format!("{name}/")), "{key}");
        let text = art.to_string();
        assert!(
            !text.contains(&s3.secret_key) && !text.contains(&s3.access_key),
            "{text}"
        );
        use object_store::ObjectStoreExt;
        let bytes = store
            .get(&object_store::path::Path::from(key))
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e}"))
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(
            art["digest"],
            json!(format!("sha256:{}", sha256_hex(&bytes))),
            "{art}"
        );
        if art["name"] == "hello" {
            assert_eq!(&bytes[..], b"hello world\n");
        }
    }
    // The credentials never reach the pod spec or cairn's log.
    let pods = kubectl(&["-n", &ns.0, "get", "pods", "-o", "json"], None);
    assert!(!pods.contains(&s3.secret_key), "secret value in a pod spec");
    assert!(
        !server.log().contains(&s3.secret_key),
        "secret value in the log"
    );
    println!(
        "s3: artifacts {}",
        serde_json::to_string(&arts).unwrap_or_default()
    );
}
