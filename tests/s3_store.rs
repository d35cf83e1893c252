//! `object_store`'s S3 client against a real S3-compatible server: SeaweedFS started by
//! `tests/common/s3.rs` (own ports, data directory, credentials and bucket; stopped on drop).
//!
//! Proves what the workflow artifacts rely on: path-style requests over plain HTTP with static
//! keys and a region; put/get/head/ranges/list/delete; a multipart upload; objects larger than
//! SeaweedFS's 4 MiB chunk; a wrong secret refused. Runs when SeaweedFS is built or with
//! `CAIRN_E2E=1` (which builds it); prints a SKIP line otherwise. With `CAIRN_E2E=1` and the lab
//! up, a pod uploads to the server through a presigned URL (own namespace, deleted at the end).

#[path = "common/s3.rs"]
mod s3;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use s3::S3Server;

/// Deterministic, non-repeating-looking bytes (a chunk boundary lands inside a pattern).
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// The whole object at `path` (panics naming it when the get or its body fails).
async fn read<S: ObjectStoreExt>(store: &S, path: &Path) -> Vec<u8> {
    store
        .get(path)
        .await
        .unwrap_or_else(|e| panic!("get {path}: {e}"))
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("body of {path}: {e}"))
        .to_vec()
}

async fn start(bucket: &str) -> S3Server {
    let bucket = bucket.to_owned();
    tokio::task::spawn_blocking(move || S3Server::start(&bucket))
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("starting SeaweedFS: {e}"))
}

#[tokio::test]
async fn put_get_list_delete_on_seaweedfs() {
    if !S3Server::wanted("put_get_list_delete_on_seaweedfs") {
        return;
    }
    let server = start("cairn-artifacts").await;
    let store = server.store().expect("S3 client");

    let small = Path::from("runs/wf-1/step-a/out.txt");
    let big = Path::from("runs/wf-1/step-b/model.bin");
    let other = Path::from("runs/wf-2/log.txt");
    let big_bytes = payload(9 * 1024 * 1024 + 123, 7); // > SeaweedFS's 4 MiB chunks
    store
        .put(&small, PutPayload::from_static(b"hello artifacts\n"))
        .await
        .unwrap_or_else(|e| panic!("put {small}: {e}\n{}", server.log_tail(20)));
    store
        .put(&big, PutPayload::from(big_bytes.clone()))
        .await
        .expect("put big");
    store
        .put(&other, PutPayload::from_static(b"x"))
        .await
        .expect("put other");

    let got = read(&*store, &small).await;
    assert_eq!(&got[..], b"hello artifacts\n");
    let got = read(&*store, &big).await;
    assert_eq!(got.len(), big_bytes.len());
    assert!(
        got[..] == big_bytes[..],
        "the big object came back different"
    );
    let range = store
        .get_range(&big, 4_194_300..4_194_310)
        .await
        .expect("range");
    assert_eq!(&range[..], &big_bytes[4_194_300..4_194_310]);
    let meta = store.head(&big).await.expect("head");
    assert_eq!(meta.size, big_bytes.len() as u64);

    let mut listed: Vec<(String, u64)> = store
        .list(Some(&Path::from("runs/wf-1")))
        .map_ok(|m| (m.location.to_string(), m.size))
        .try_collect()
        .await
        .expect("list");
    listed.sort();
    assert_eq!(
        listed,
        vec![
            (small.to_string(), 16),
            (big.to_string(), big_bytes.len() as u64)
        ]
    );
    let dirs = store
        .list_with_delimiter(Some(&Path::from("runs")))
        .await
        .expect("list with delimiter");
    let mut prefixes: Vec<String> = dirs.common_prefixes.iter().map(|p| p.to_string()).collect();
    prefixes.sort();
    assert_eq!(prefixes, ["runs/wf-1", "runs/wf-2"]);
    assert!(dirs.objects.is_empty(), "{:?}", dirs.objects);

    store.delete(&small).await.expect("delete");
    match store.get(&small).await {
        Err(object_store::Error::NotFound { .. }) => {}
        other => panic!("get after delete: expected NotFound, got {other:?}"),
    }

    // The same server on loopback, whichever address `endpoint` is.
    let lo = server
        .store_at(&server.loopback_endpoint)
        .expect("loopback client");
    let got = read(&lo, &other).await;
    assert_eq!(&got[..], b"x");
}

#[tokio::test]
async fn multipart_upload_and_wrong_secret_on_seaweedfs() {
    if !S3Server::wanted("multipart_upload_and_wrong_secret_on_seaweedfs") {
        return;
    }
    let server = start("cairn-multipart").await;
    let store = server.store().expect("S3 client");

    // Three parts: two of S3's 5 MiB minimum and a short tail.
    let data = payload(10 * 1024 * 1024 + 4321, 3);
    let path = Path::from("outputs/archive.tgz");
    let upload = store
        .put_multipart(&path)
        .await
        .expect("create multipart upload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * 1024 * 1024);
    for piece in data.chunks(1024 * 1024) {
        writer.write(piece);
    }
    writer
        .finish()
        .await
        .unwrap_or_else(|e| panic!("complete multipart upload: {e}\n{}", server.log_tail(20)));
    let got = read(&*store, &path).await;
    assert_eq!(got.len(), data.len());
    assert!(
        got[..] == data[..],
        "the multipart object came back different"
    );

    // A wrong secret is refused (the server checks signatures), and names no missing object.
    let bad = server
        .builder_at(&server.endpoint)
        .with_secret_access_key(format!("{}x", server.secret_key))
        .build()
        .expect("client");
    match bad
        .put(&Path::from("nope"), PutPayload::from_static(b"n"))
        .await
    {
        Err(object_store::Error::NotFound { .. }) | Ok(_) => {
            panic!("a put with a wrong secret was not refused")
        }
        Err(_) => {}
    }
    match bad.get(&path).await {
        Ok(_) => panic!("a get with a wrong secret succeeded"),
        Err(object_store::Error::NotFound { .. }) => panic!("a wrong secret read as NotFound"),
        Err(_) => {}
    }
    assert!(
        store.head(&Path::from("nope")).await.is_err(),
        "the refused put stored an object"
    );
}

/// Runs kubectl (on PATH with the lab's env, as for the other lab tests); stdout, or the error.
async fn kubectl(args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("kubectl")
        .arg("--request-timeout=60s")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Deletes the test's namespace however the test ends.
struct Namespace(String);

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .args(["delete", "namespace", &self.0, "--wait=false"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// What a workflow pod's executor will do: a pod on the lab uploads to `endpoint` (the node IP)
/// through a presigned URL, and the host reads the object back.
#[tokio::test]
async fn a_lab_pod_uploads_to_seaweedfs() {
    use object_store::signer::{Method, Signer};

    if std::env::var("CAIRN_E2E").map_or(true, |v| v != "1") {
        eprintln!("SKIP a_lab_pod_uploads_to_seaweedfs: CAIRN_E2E is not set");
        return;
    }
    let server = start("cairn-from-pod").await;
    if server.endpoint == server.loopback_endpoint {
        eprintln!(
            "SKIP a_lab_pod_uploads_to_seaweedfs: the lab's node IP is not on lo (another cluster?)"
        );
        return;
    }
    let store = server.store().expect("S3 client");
    let path = Path::from("from-pod/out.txt");
    let url = store
        .signed_url(Method::PUT, &path, std::time::Duration::from_secs(600))
        .await
        .expect("presigned PUT URL");

    let ns = Namespace(format!("s3-pod-{}", std::process::id()));
    kubectl(&["create", "namespace", &ns.0])
        .await
        .expect("namespace");
    let code = "import sys, urllib.request\n\
                r = urllib.request.Request(sys.argv[1], data=b'from a pod', method='PUT')\n\
                print('status', urllib.request.urlopen(r, timeout=30).status)";
    kubectl(&[
        "-n",
        &ns.0,
        "run",
        "upload",
        "--image=python:alpine3.23",
        "--image-pull-policy=IfNotPresent",
        "--restart=Never",
        "--command",
        "--",
        "python3",
        "-c",
        code,
        url.as_str(),
    ])
    .await
    .expect("pod");
    let mut phase = String::new();
    for _ in 0..180 {
        phase = kubectl(&[
            "-n",
            &ns.0,
            "get",
            "pod",
            "upload",
            "-o",
            "jsonpath={.status.phase}",
        ])
        .await
        .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let logs = kubectl(&["-n", &ns.0, "logs", "upload"])
        .await
        .unwrap_or_else(|e| e);
    assert_eq!(
        phase,
        "Succeeded",
        "the upload pod: {logs}\n{}",
        server.log_tail(20)
    );
    assert!(logs.contains("status 200"), "{logs}");
    let got = read(&*store, &path).await;
    assert_eq!(&got[..], b"from a pod");
}
