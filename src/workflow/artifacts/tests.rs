use serde_json::json;

use super::repository::{ConfigMapData, RepositoryError, from_status, resolve};
use super::*;

const VARS: KeyVars<'static> = KeyVars {
    workflow_name: "wf",
    namespace: "ns",
    workflow_uid: "uid-1",
    pod_name: "wf-make-123",
};

#[test]
fn default_keys_follow_argo() {
    assert_eq!(
        output_key(None, &VARS, "out", "/tmp/out.txt", Archive::Tar).expect("tar"),
        "wf/wf-make-123/out.tgz"
    );
    assert_eq!(
        output_key(None, &VARS, "out", "/tmp/out.txt", Archive::None).expect("none"),
        "wf/wf-make-123/out.txt"
    );
    assert_eq!(
        output_key(
            Some("{{workflow.namespace}}/{{ workflow.uid }}/{{artifact.name}}"),
            &VARS,
            "out",
            "/tmp/x",
            Archive::Tar
        )
        .expect("format"),
        "ns/uid-1/out"
    );
    let err = output_key(
        Some("{{workflow.creationTimestamp.Y}}/x"),
        &VARS,
        "o",
        "/p",
        Archive::Tar,
    )
    .expect_err("unknown");
    assert!(
        err.to_string().contains("workflow.creationTimestamp.Y"),
        "{err}"
    );
}

#[test]
fn archive_choice() {
    let obj = |v: serde_json::Value| v.as_object().cloned().expect("object");
    for (art, want) in [
        (json!({}), Ok(Archive::Tar)),
        (json!({"archive": {}}), Ok(Archive::Tar)),
        (
            json!({"archive": {"tar": {"compressionLevel": 1}}}),
            Ok(Archive::Tar),
        ),
        (json!({"archive": {"none": {}}}), Ok(Archive::None)),
        (
            json!({"archive": {"zip": {}}}),
            Err("archive strategy \"zip\""),
        ),
        (json!({"archive": "none"}), Err("expected an object")),
    ] {
        match (
            Archive::of("t", "outputs.artifacts.a", &obj(art.clone())),
            want,
        ) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{art}"),
            (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{e}"),
            (got, want) => panic!("{art}: {got:?} vs {want:?}"),
        }
    }
}

fn s3_repo() -> ArtifactRepository {
    ArtifactRepository::S3(S3Repository {
        endpoint: "10.0.0.1:8333".into(),
        bucket: "bucket".into(),
        insecure: Some(true),
        access_key_secret: Some(SecretRef {
            name: "s3".into(),
            key: "access".into(),
        }),
        secret_key_secret: Some(SecretRef {
            name: "s3".into(),
            key: "secret".into(),
        }),
        key_format: Some("runs/{{workflow.name}}/{{pod.name}}/{{artifact.name}}".into()),
        ..Default::default()
    })
}

#[test]
fn outputs_go_to_the_builtin_store_inline_s3_or_the_repository() {
    let art = json!({"name": "out", "path": "/tmp/out"});
    let builtin =
        output_spec("make", 0, &art, &ArtifactRepository::Builtin, &VARS).expect("builtin");
    assert_eq!(
        builtin.location,
        Location::Builtin {
            key: "wf/wf-make-123/out.tgz".into()
        }
    );
    assert_eq!(builtin.credentials, None);

    let repo = output_spec("make", 1, &art, &s3_repo(), &VARS).expect("repo");
    let Location::S3(s3) = &repo.location else {
        panic!("{repo:?}")
    };
    assert_eq!(s3.key, "runs/wf/wf-make-123/out");
    assert_eq!(s3.bucket, "bucket");
    assert_eq!(repo.credentials, Some(s3::credential_env("OUT", 1)));

    // Key-only artifact: the key kept, the rest from the repository.
    let key_only = json!({"name": "out", "path": "/tmp/out", "s3": {"key": "fixed/key.tgz"}});
    let spec = output_spec("make", 0, &key_only, &s3_repo(), &VARS).expect("key only");
    let Location::S3(s3) = &spec.location else {
        panic!()
    };
    assert_eq!(
        (s3.key.as_str(), s3.endpoint.as_str()),
        ("fixed/key.tgz", "10.0.0.1:8333")
    );

    // Inline without a repository and without an endpoint: refused naming the field.
    let err = output_spec("make", 0, &key_only, &ArtifactRepository::Builtin, &VARS)
        .expect_err("no endpoint");
    assert_eq!(
        err.to_string(),
        "template \"make\": outputs.artifacts.out.s3.endpoint: expected an endpoint (inline, or from the artifact repository)"
    );
    for (bad, want) in [
        (json!({"name": "o"}), "outputs.artifacts.o.path"),
        (json!({"path": "/x"}), "outputs.artifacts[0].name"),
        (
            json!({"name": "o", "path": "/x", "gcs": {"bucket": "b"}}),
            "the gcs artifact location is not supported",
        ),
        (
            json!({"name": "o", "path": "/x", "raw": {"data": "x"}}),
            "an output to a raw location",
        ),
    ] {
        let err = output_spec("t", 0, &bad, &ArtifactRepository::Builtin, &VARS).expect_err("bad");
        assert!(err.to_string().contains(want), "{err} / {want}");
    }
}

#[test]
fn inputs_carry_location_archive_digest_and_mode() {
    let from_producer = json!({
        "name": "data", "path": "/in/data", "mode": 493,
        "archive": {"none": {}}, "cairn": {"key": "wf/p/out.txt"},
        "digest": "sha256:ab", "size": 3
    });
    let spec = input_spec("use", 0, &from_producer, &ArtifactRepository::Builtin).expect("in");
    assert_eq!(
        spec.location,
        Some(Location::Builtin {
            key: "wf/p/out.txt".into()
        })
    );
    assert_eq!(spec.archive, Some(Archive::None));
    assert_eq!(spec.digest.as_deref(), Some("sha256:ab"));
    assert_eq!(spec.mode, Some(0o755));

    let raw = json!({"name": "r", "path": "/r", "raw": {"data": "hi"}});
    let spec = input_spec("use", 0, &raw, &ArtifactRepository::Builtin).expect("raw");
    assert_eq!(spec.location, Some(Location::Raw { data: "hi".into() }));
    assert_eq!(spec.archive, None);

    let http = json!({"name": "h", "path": "/h", "http": {"url": "https://example.invalid/x"}});
    assert!(input_spec("use", 0, &http, &ArtifactRepository::Builtin).is_ok());
    let optional = json!({"name": "o", "path": "/o", "optional": true});
    let spec = input_spec("use", 0, &optional, &ArtifactRepository::Builtin).expect("optional");
    assert!(spec.optional && spec.location.is_none());

    let s3 = json!({"name": "s", "path": "/s", "s3": {"key": "k"}});
    let spec = input_spec("use", 3, &s3, &s3_repo()).expect("s3");
    assert_eq!(spec.credentials, Some(s3::credential_env("IN", 3)));
    for (bad, want) in [
        (
            json!({"name": "x", "path": "rel"}),
            "inputs.artifacts.x.path: expected an absolute path",
        ),
        (
            json!({"name": "x", "path": "/x", "mode": "0755"}),
            "inputs.artifacts.x.mode",
        ),
        (
            json!({"name": "x", "path": "/x", "http": {"url": "ftp://h/x"}}),
            "inputs.artifacts.x.http.url",
        ),
    ] {
        let err = input_spec("use", 0, &bad, &ArtifactRepository::Builtin).expect_err("bad");
        assert!(err.to_string().contains(want), "{err} / {want}");
    }
}

#[test]
fn reported_json_has_location_digest_and_size() {
    let out = output_spec(
        "make",
        0,
        &json!({"name": "out", "path": "/tmp/out"}),
        &ArtifactRepository::Builtin,
        &VARS,
    )
    .expect("spec");
    let stored = Stored {
        name: "out".into(),
        digest: "sha256:ff".into(),
        size: 7,
    };
    assert_eq!(
        reported(&out, &stored),
        json!({
            "name": "out", "path": "/tmp/out", "archive": {"tar": {}},
            "cairn": {"key": "wf/wf-make-123/out.tgz"},
            "digest": "sha256:ff", "size": 7
        })
    );
    // What a consumer receives from it is an input with the same location and digest.
    let consumer = input_spec(
        "use",
        0,
        &reported(&out, &stored),
        &ArtifactRepository::Builtin,
    )
    .expect("in");
    assert_eq!(consumer.location, Some(out.location.clone()));
    assert_eq!(consumer.archive, Some(Archive::Tar));
    assert_eq!(consumer.digest.as_deref(), Some("sha256:ff"));
}

fn cm(data: &[(&str, &str)], default_key: Option<&str>) -> ConfigMapData {
    ConfigMapData {
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: default_key
            .map(|k| {
                (
                    repository::DEFAULT_KEY_ANNOTATION.to_string(),
                    k.to_string(),
                )
            })
            .into_iter()
            .collect(),
    }
}

const S3_YAML: &str = "s3:\n  endpoint: 10.0.0.1:8333\n  bucket: b\n  insecure: true\n  accessKeySecret: {name: s3, key: access}\n  secretKeySecret: {name: s3, key: secret}\n";

#[test]
fn repository_resolution() {
    // Nothing configured: the built-in store.
    let r = resolve("ns", None, None).expect("builtin");
    assert_eq!(r.repository, ArtifactRepository::Builtin);
    assert_eq!(from_status(&r.status), Some(ArtifactRepository::Builtin));
    // The default ConfigMap without a default key: still built-in.
    let r = resolve("ns", None, Some(&cm(&[("my-key", S3_YAML)], None))).expect("no default");
    assert_eq!(r.repository, ArtifactRepository::Builtin);
    // The default ConfigMap with its annotation.
    let r = resolve(
        "ns",
        None,
        Some(&cm(&[("my-key", S3_YAML)], Some("my-key"))),
    )
    .expect("default");
    let ArtifactRepository::S3(s3) = &r.repository else {
        panic!("{r:?}")
    };
    assert_eq!(s3.bucket, "b");
    assert_eq!(r.status["configMap"], "artifact-repositories");
    assert_eq!(r.status["key"], "my-key");
    assert_eq!(r.status["namespace"], "ns");
    assert_eq!(from_status(&r.status), Some(r.repository.clone()));
    // An explicit reference.
    let reference = json!({"configMap": "repos", "key": "my-key"});
    let r = resolve(
        "ns",
        Some(&reference),
        Some(&cm(&[("my-key", S3_YAML)], None)),
    )
    .expect("explicit");
    assert_eq!(r.status["configMap"], "repos");
    assert_eq!(
        repository::configmap_name(Some(&reference)).expect("name"),
        "repos"
    );
}

#[test]
fn repository_errors_name_configmap_key_and_field() {
    let reference = json!({"configMap": "repos", "key": "k"});
    for (cmap, want) in [
        (None, "spec.artifactRepositoryRef: ConfigMap ns/repos not found".to_string()),
        (Some(cm(&[], None)), "ConfigMap ns/repos has no key \"k\"".to_string()),
        (
            Some(cm(&[("k", "s3:\n  bucket: b\n")], None)),
            "ConfigMap ns/repos key \"k\": template \"ConfigMap ns/repos key k\": s3.endpoint: expected an endpoint".to_string(),
        ),
        (
            Some(cm(&[("k", "gcs:\n  bucket: b\n")], None)),
            "ConfigMap ns/repos key \"k\": gcs: repository kind not supported".to_string(),
        ),
        (
            Some(cm(&[("k", "s3:\n  endpoint: e\n  bucket: b\n  accessKeySecret: {name: s}\n")], None)),
            "s3.accessKeySecret.key: expected a non-empty string".to_string(),
        ),
    ] {
        let err = resolve("ns", Some(&reference), cmap.as_ref()).expect_err("error").to_string();
        assert!(err.contains(&want), "{err}\n wanted: {want}");
    }
    let err = resolve(
        "ns",
        Some(&json!({"configMap": "repos"})),
        Some(&cm(&[], None)),
    )
    .expect_err("no key");
    assert!(matches!(err, RepositoryError::NoDefaultKey { .. }), "{err}");
}

mod http {
    //! The executor's channel against the real routes and store on loopback; the token check
    //! is a fixed table here (the TokenReview path is exercised on the lab).
    use std::sync::Arc;

    use super::super::routes::{
        ArtifactService, AuthFailure, PodIdentity, Verifier, VerifyFuture, router,
    };
    use super::super::store::BlobStore;
    use super::super::transfer::{ChannelSpec, save_outputs, sha256_file, stage_inputs};
    use super::*;

    struct Table;

    impl Verifier for Table {
        fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
            Box::pin(async move {
                match token {
                    "pod-of-wf" => Ok(PodIdentity {
                        namespace: "ns".into(),
                        pod: "wf-make-123".into(),
                        workflow: "wf".into(),
                    }),
                    _ => Err(AuthFailure::Refused("unknown token".into())),
                }
            })
        }
    }

    async fn serve(dir: &std::path::Path, max_bytes: u64) -> (String, BlobStore) {
        let store = BlobStore::open(dir).expect("store");
        let app = router(ArtifactService {
            store: Arc::new(store.clone()),
            verifier: Arc::new(Table),
            max_bytes,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), store)
    }

    fn channel(dir: &std::path::Path, server: &str, token: &str) -> ChannelSpec {
        let token_file = dir.join(format!("token-{token}"));
        std::fs::write(&token_file, format!("{token}\n")).expect("token");
        ChannelSpec {
            server: Some(server.to_string()),
            token_file,
            namespace: "ns".into(),
            staging_dir: dir.join(format!("stage-{token}")),
        }
    }

    #[tokio::test]
    async fn outputs_upload_and_inputs_download_through_the_routes() {
        let dir = tempfile::tempdir().expect("tmp");
        let (server, store) = serve(&dir.path().join("data"), 1 << 20).await;
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("tree/sub")).expect("mkdir");
        std::fs::write(work.join("hello.txt"), "hello world").expect("write");
        std::fs::write(work.join("tree/sub/leaf"), "leaf").expect("write");
        let out = |name: &str, path: &str, archive: serde_json::Value| {
            output_spec(
                "make",
                0,
                &json!({"name": name, "path": path, "archive": archive}),
                &ArtifactRepository::Builtin,
                &VARS,
            )
            .expect("spec")
        };
        let outputs = vec![
            out("plain", "hello.txt", json!({"none": {}})),
            out("tree", "tree", json!({})),
        ];
        let ch = channel(dir.path(), &server, "pod-of-wf");
        let (saved, errors) = save_outputs(&outputs, &ch, Some(&work)).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(saved.len(), 2);
        // The recorded digest is the sha256 of the bytes in the store.
        for art in &saved {
            let key = art["cairn"]["key"].as_str().expect("key");
            let record = store.get("ns", key).await.expect("stored");
            let (hex, size) = sha256_file(&store.blob_path(&record.digest)).expect("blob");
            assert_eq!(art["digest"], json!(format!("sha256:{hex}")));
            assert_eq!(art["size"], json!(size));
            assert_eq!(record.workflow, "wf");
        }
        assert_eq!(saved[0]["cairn"]["key"], "wf/wf-make-123/hello.txt");
        let plain = store
            .get("ns", "wf/wf-make-123/hello.txt")
            .await
            .expect("plain");
        assert_eq!(
            std::fs::read(store.blob_path(&plain.digest)).expect("bytes"),
            b"hello world"
        );

        // A consumer stages both from what the producer reported.
        let inputs: Vec<InputArtifact> = saved
            .iter()
            .enumerate()
            .map(|(i, art)| {
                let mut art = art.clone();
                art["path"] = json!(format!("/in/{i}"));
                input_spec("use", i, &art, &ArtifactRepository::Builtin).expect("input")
            })
            .collect();
        let errors = stage_inputs(&inputs, &ch).await;
        assert!(errors.is_empty(), "{errors:?}");
        let staged = &ch.staging_dir;
        // A `main` of another uid than the init container's makes its outputs dir in it.
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(staged)
                .expect("staging dir")
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o1777);
        }
        assert_eq!(
            std::fs::read_to_string(staged.join("0")).expect("0"),
            "hello world"
        );
        assert_eq!(
            std::fs::read_to_string(staged.join("1/sub/leaf")).expect("1"),
            "leaf"
        );

        // A digest that does not match fails the input, naming it.
        let mut tampered = inputs[0].clone();
        tampered.digest = Some(digest_string(&"0".repeat(64)));
        let errors = stage_inputs(&[tampered], &ch).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("inputs.artifacts.plain: downloaded bytes"),
            "{errors:?}"
        );

        // Missing: an error unless optional.
        let mut missing = inputs[0].clone();
        missing.location = Some(Location::Builtin {
            key: "wf/nope".into(),
        });
        missing.digest = None;
        let errors = stage_inputs(std::slice::from_ref(&missing), &ch).await;
        assert!(errors[0].contains("not found (key wf/nope)"), "{errors:?}");
        missing.optional = true;
        assert!(stage_inputs(&[missing], &ch).await.is_empty());
    }

    #[tokio::test]
    async fn unauthenticated_or_out_of_scope_uploads_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let (server, store) = serve(&dir.path().join("data"), 8).await;
        // Run alone, nothing else has installed the TLS provider reqwest needs.
        crate::workflow::artifacts::transfer::ensure_crypto_provider();
        let http = reqwest::Client::new();
        let url = |key: &str| format!("{server}/executor/v1/artifacts/ns/{key}");
        let put = |key: String, token: Option<&'static str>, body: &'static str| {
            let mut req = http.put(url(&key)).body(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        for (key, token, body, status) in [
            ("wf/p/a", None, "x", 401),
            ("wf/p/a", Some("forged"), "x", 401),
            ("other-wf/p/a", Some("pod-of-wf"), "x", 403),
            ("wf/p/big", Some("pod-of-wf"), "more than eight bytes", 413),
            ("wf/p/a", Some("pod-of-wf"), "x", 201),
        ] {
            let resp = put(key.to_string(), token, body).await.expect("send");
            assert_eq!(resp.status().as_u16(), status, "{key} {token:?}");
        }
        assert!(store.get("ns", "other-wf/p/a").await.is_err());
        assert!(store.get("ns", "wf/p/big").await.is_err());
        // A wrong digest claim is refused.
        let resp = http
            .put(url("wf/p/c"))
            .bearer_auth("pod-of-wf")
            .header(super::super::routes::DIGEST_HEADER, "0".repeat(64))
            .body("x")
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 422);
        // Reads: only with a token, only in the pod's namespace.
        let resp = http.get(url("wf/p/a")).send().await.expect("get");
        assert_eq!(resp.status().as_u16(), 401);
        let resp = http
            .get(format!("{server}/executor/v1/artifacts/other/wf/p/a"))
            .bearer_auth("pod-of-wf")
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status().as_u16(), 403);
        let resp = http
            .get(url("wf/p/a"))
            .bearer_auth("pod-of-wf")
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(resp.text().await.expect("body"), "x");
    }
}

mod pods {
    //! What the pod builder makes of a template's artifacts.
    use crate::workflow::node::{PodRequest, node_id, pod_name};
    use crate::workflow::pod::{PodSettings, TOKEN_VOLUME, build_pod};
    use crate::workflow::types::Template;

    use super::*;

    fn request(template: serde_json::Value, repository: Option<ArtifactRepository>) -> PodRequest {
        let template: Template = serde_json::from_value(template).expect("template");
        let node_name = format!("wf[0].{}", template.name);
        PodRequest {
            namespace: "ns".into(),
            workflow_name: "wf".into(),
            workflow_uid: "uid".into(),
            node_id: node_id("wf", &node_name),
            pod_name: pod_name("wf", &template.name, &node_name),
            node_name,
            template,
            spec: Default::default(),
            capture_result: false,
            active_deadline_seconds: None,
            artifact_repository: repository,
        }
    }

    fn settings() -> PodSettings {
        PodSettings {
            executor_url: Some("http://172.31.250.1:8081".into()),
            ..PodSettings::default()
        }
    }

    #[test]
    fn inputs_are_staged_by_init_and_mounted_by_sub_path() {
        let req = request(
            json!({"name": "use", "container": {"image": "busybox", "command": ["cat", "/in/data"]},
                   "inputs": {"artifacts": [{"name": "data", "path": "/in/data", "cairn": {"key": "wf/p/x.tgz"}}]}}),
            None,
        );
        let pod = serde_json::to_value(build_pod(&req, &settings()).expect("pod")).expect("json");
        let init = &pod["spec"]["initContainers"][0];
        let env = init["env"].as_array().expect("init env");
        assert!(env.iter().any(|e| e["name"] == "CAIRN_EXEC_SPEC"));
        assert!(
            init["volumeMounts"]
                .as_array()
                .expect("mounts")
                .iter()
                .any(|m| m["name"] == TOKEN_VOLUME)
        );
        let main = &pod["spec"]["containers"][0];
        let mount = main["volumeMounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["mountPath"] == "/in/data")
            .expect("input mount")
            .clone();
        assert_eq!(mount["subPath"], "inputs/0");
        let token = pod["spec"]["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == TOKEN_VOLUME)
            .expect("token volume")
            .clone();
        assert_eq!(
            token["projected"]["sources"][0]["serviceAccountToken"]["audience"],
            "cairn"
        );
    }

    #[test]
    fn s3_credentials_come_from_secret_refs_only() {
        let repo = ArtifactRepository::S3(S3Repository {
            endpoint: "10.0.0.1:8333".into(),
            bucket: "b".into(),
            access_key_secret: Some(SecretRef {
                name: "s3".into(),
                key: "ak".into(),
            }),
            secret_key_secret: Some(SecretRef {
                name: "s3".into(),
                key: "sk".into(),
            }),
            ..Default::default()
        });
        let req = request(
            json!({"name": "make", "container": {"image": "busybox", "command": ["true"]},
                   "outputs": {"artifacts": [{"name": "out", "path": "/tmp/out"}]}}),
            Some(repo),
        );
        let pod = serde_json::to_value(build_pod(&req, &settings()).expect("pod")).expect("json");
        let env = pod["spec"]["containers"][0]["env"]
            .as_array()
            .expect("env")
            .clone();
        let access = env
            .iter()
            .find(|e| e["name"] == "CAIRN_S3_OUT_0_ACCESS_KEY")
            .expect("access key env");
        assert_eq!(
            access["valueFrom"]["secretKeyRef"],
            json!({"name": "s3", "key": "ak"})
        );
        assert!(access.get("value").is_none());
        // No init staging without inputs: the init container is cairn's plain one.
        assert!(pod["spec"]["initContainers"][0].get("env").is_none());
    }

    #[test]
    fn builtin_artifacts_need_the_executor_url() {
        let req = request(
            json!({"name": "make", "container": {"image": "busybox", "command": ["true"]},
                   "outputs": {"artifacts": [{"name": "out", "path": "/tmp/out"}]}}),
            None,
        );
        let err = build_pod(&req, &PodSettings::default()).expect_err("no url");
        assert!(
            err.to_string()
                .contains("outputs.artifacts.out uses cairn's built-in artifact store"),
            "{err}"
        );
        assert!(err.to_string().contains("[workflow] executor_url"), "{err}");
        // Without artifacts nothing changes.
        let plain = request(
            json!({"name": "t", "container": {"image": "busybox", "command": ["true"]}}),
            None,
        );
        let pod = serde_json::to_value(build_pod(&plain, &PodSettings::default()).expect("pod"))
            .expect("json");
        assert!(
            !pod["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["name"] == TOKEN_VOLUME)
        );
    }
}
