//! The executor side of artifacts: the init step stages inputs ([`stage_inputs`]), the main
//! step saves outputs after the command ([`save_outputs`]).
//!
//! - Inputs are written under [`ChannelSpec::staging_dir`] (`/var/run/cairn/inputs/<index>`, on
//!   the pod's emptyDir) by `cairn exec-init`; the pod builder mounts each one by `subPath` at
//!   the artifact's `path` in the main container, so a read-only root filesystem or a non-root
//!   user does not matter. An archived input (`tar`, or gzip-tar detected from its bytes when
//!   the producer is unknown) is extracted and its one top-level entry placed; `mode` is set
//!   on the file (or every file of a directory).
//! - Outputs are packed ([`pack`]: gzip tar with one entry named after the path, or the file as
//!   it is for `archive: none`) into the staging volume, hashed, and uploaded; transient
//!   failures (transport, 429, 5xx) are retried with the reporting backoff (6 attempts).
//!
//! Built-in store requests carry the pod's projected token, read from its file on every
//! attempt (the kubelet rotates it). Nothing here prints a token or a credential.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::routes::{DIGEST_HEADER, PREFIX};
use super::{Archive, InputArtifact, Location, OutputArtifact, Stored, digest_string, reported};
use crate::workflow::executor::report::Backoff;

/// Where the executor's artifact traffic goes, as the pod builder sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelSpec {
    /// Base URL of cairn's executor routes (`[workflow] executor_url`); `None`: no built-in
    /// store reachable (only raw/http/S3 artifacts work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The projected token (audience `cairn`).
    pub token_file: PathBuf,
    /// The workflow's namespace.
    pub namespace: String,
    /// Where inputs are staged and outputs packed (on the shared emptyDir).
    pub staging_dir: PathBuf,
}

/// Path of input `index` in the staging directory (the pod builder mounts it by subPath).
pub fn staged_path(staging_dir: &Path, index: usize) -> PathBuf {
    staging_dir.join(index.to_string())
}

/// The subPath (relative to the shared volume) of input `index`.
pub fn staged_sub_path(index: usize) -> String {
    format!("inputs/{index}")
}

fn transient(status: Option<u16>) -> bool {
    crate::workflow::executor::report::is_transient(status) && status != Some(409)
}

/// Installs cairn's TLS crypto provider (ring) unless one is installed: reqwest is built
/// without a provider of its own, and `main` installs it only in the cairn process proper.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP client. reqwest's default TLS setup reads the platform's CA certificates, which a
/// scratch or distroless step image lacks (the build then fails); the fallback is a client
/// with an empty root store: plain HTTP (the lab's executor URL) works, HTTPS is refused.
pub fn http_client() -> Result<reqwest::Client, String> {
    ensure_crypto_provider();
    let builder = || reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(10));
    match builder().build() {
        Ok(client) => Ok(client),
        Err(first) => {
            let tls = rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            builder()
                .tls_backend_preconfigured(tls)
                .build()
                .map_err(|e| {
                    format!("cannot build an HTTP client: {first}; without system roots: {e}")
                })
        }
    }
}

/// A client of the built-in store's executor routes.
pub struct Channel {
    spec: ChannelSpec,
    http: reqwest::Client,
    backoff: Backoff,
}

impl Channel {
    /// A channel from its spec.
    pub fn new(spec: ChannelSpec) -> Result<Self, String> {
        let http = http_client()?;
        Ok(Self {
            spec,
            http,
            backoff: Backoff::default(),
        })
    }

    fn url(&self, key: &str) -> Result<String, String> {
        let base = self.spec.server.as_deref().ok_or_else(|| {
            "cairn's built-in artifact store is not reachable from pods: set [workflow] executor_url".to_string()
        })?;
        Ok(format!(
            "{}{PREFIX}/{}/{key}",
            base.trim_end_matches('/'),
            self.spec.namespace
        ))
    }

    fn token(&self) -> Result<String, String> {
        std::fs::read_to_string(&self.spec.token_file)
            .map(|t| t.trim().to_string())
            .map_err(|e| {
                format!(
                    "cannot read the artifact token {}: {e}",
                    self.spec.token_file.display()
                )
            })
    }

    /// Uploads `file` (hex sha256 `hex`) under `key`, retrying transient failures.
    pub async fn upload(&self, key: &str, file: &Path, hex: &str) -> Result<(), String> {
        let url = self.url(key)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.token()?;
            let body = tokio::fs::File::open(file)
                .await
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let len = body.metadata().await.map(|m| m.len()).unwrap_or(0);
            let outcome = self
                .http
                .put(&url)
                .bearer_auth(token)
                .header(DIGEST_HEADER, hex)
                .header(reqwest::header::CONTENT_LENGTH, len)
                .body(reqwest::Body::wrap_stream(
                    tokio_util::io::ReaderStream::new(body),
                ))
                .send()
                .await;
            let (status, message) = match outcome {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    (
                        Some(status),
                        format!("HTTP {status}: {}", message_of(&text)),
                    )
                }
                Err(e) => (None, e.without_url().to_string()),
            };
            if attempt >= self.backoff.attempts || !transient(status) {
                return Err(format!(
                    "upload to cairn's artifact store failed after {attempt} attempt(s): {message}"
                ));
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
        }
    }

    /// Downloads `key` into `dest`; `Ok(false)` when it does not exist.
    pub async fn download(&self, key: &str, dest: &Path) -> Result<bool, String> {
        let url = self.url(key)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.token()?;
            let outcome = self.http.get(&url).bearer_auth(token).send().await;
            let (status, message) = match outcome {
                Ok(resp) if resp.status().is_success() => match write_body(resp, dest).await {
                    Ok(()) => return Ok(true),
                    Err(e) => (None, e),
                },
                Ok(resp) if resp.status() == reqwest::StatusCode::NOT_FOUND => return Ok(false),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    (
                        Some(status),
                        format!("HTTP {status}: {}", message_of(&text)),
                    )
                }
                Err(e) => (None, e.without_url().to_string()),
            };
            if attempt >= self.backoff.attempts || !transient(status) {
                return Err(format!(
                    "download from cairn's artifact store failed after {attempt} attempt(s): {message}"
                ));
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
        }
    }
}

fn message_of(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect())
}

async fn write_body(mut resp: reqwest::Response, dest: &Path) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| e.without_url().to_string())?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    file.flush().await.map_err(|e| e.to_string())
}

/// GET of a plain URL into `dest` (`http` inputs); `Ok(false)` on 404.
async fn http_get(url: &str, dest: &Path) -> Result<bool, String> {
    let http = http_client()?;
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(false);
    }
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()));
    }
    write_body(resp, dest).await.map(|()| true)
}

/// Hex sha256 and size of a file.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Packs `src` into `out`: a gzip tar with one entry named after `src`'s last component
/// (Argo's layout), or a copy of the file for `none` (a directory is refused).
pub fn pack(src: &Path, archive: Archive, out: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
    match archive {
        Archive::None => {
            if meta.is_dir() {
                return Err(format!(
                    "{} is a directory; `archive: none` needs a single file (use tar)",
                    src.display()
                ));
            }
            std::fs::copy(src, out).map_err(|e| format!("{}: {e}", src.display()))?;
            Ok(())
        }
        Archive::Tar => {
            let name = src
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_else(|| "artifact".into());
            let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
            let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            tar.follow_symlinks(false);
            let added = if meta.is_dir() {
                tar.append_dir_all(&name, src)
            } else {
                tar.append_path_with_name(src, &name)
            };
            added.map_err(|e| format!("archiving {}: {e}", src.display()))?;
            let gz = tar
                .into_inner()
                .map_err(|e| format!("archiving {}: {e}", src.display()))?;
            let mut file = gz
                .finish()
                .map_err(|e| format!("archiving {}: {e}", src.display()))?;
            file.flush().map_err(|e| e.to_string())?;
            file.sync_all().map_err(|e| e.to_string())
        }
    }
}

fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == [0x1f, 0x8b]
}

/// Places a downloaded file at `dest`: extracted when it is a tar (`archive` tar, or unknown
/// and gzip-tar by its bytes), moved as it is otherwise.
pub fn unpack(downloaded: &Path, archive: Option<Archive>, dest: &Path) -> Result<(), String> {
    let tar = match archive {
        Some(Archive::Tar) => true,
        Some(Archive::None) => false,
        None => is_gzip(downloaded),
    };
    if !tar {
        return std::fs::rename(downloaded, dest).map_err(|e| format!("{}: {e}", dest.display()));
    }
    let scratch = dest.with_extension("unpack");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let extracted = (|| -> std::io::Result<()> {
        let file = std::fs::File::open(downloaded)?;
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        ar.set_preserve_permissions(true);
        ar.set_overwrite(true);
        // `unpack` refuses entries that would land outside `scratch` (`..`, absolute paths).
        ar.unpack(&scratch)
    })();
    if let Err(e) = extracted {
        let _ = std::fs::remove_dir_all(&scratch);
        if archive.is_none() {
            // Gzip but not a tar: keep the bytes, as Argo keeps a non-tar download.
            return std::fs::rename(downloaded, dest)
                .map_err(|e| format!("{}: {e}", dest.display()));
        }
        return Err(format!("extracting the tar archive: {e}"));
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(&scratch)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    let result = match entries.as_slice() {
        [one] => std::fs::rename(one, dest).map_err(|e| format!("{}: {e}", dest.display())),
        // Several top-level entries (not cairn's or Argo's layout): the directory is the artifact.
        _ => std::fs::rename(&scratch, dest).map_err(|e| format!("{}: {e}", dest.display())),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    let _ = std::fs::remove_file(downloaded);
    result
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            set_mode(&entry?.path(), mode)?;
        }
        Ok(())
    } else if meta.is_file() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    } else {
        Ok(())
    }
}

fn verify(path: &Path, digest: Option<&str>) -> Result<(), String> {
    let Some(want) = digest else {
        return Ok(());
    };
    let (hex, _) = sha256_file(path).map_err(|e| e.to_string())?;
    let got = digest_string(&hex);
    if got != want {
        return Err(format!(
            "downloaded bytes have {got}, the producer recorded {want}"
        ));
    }
    Ok(())
}

/// Fetches one input into `tmp`; `Ok(false)` when it does not exist.
async fn fetch(input: &InputArtifact, channel: &Channel, tmp: &Path) -> Result<bool, String> {
    match &input.location {
        None => Ok(false),
        Some(Location::Raw { data }) => std::fs::write(tmp, data)
            .map(|()| true)
            .map_err(|e| format!("{}: {e}", tmp.display())),
        Some(Location::Http { url }) => http_get(url, tmp).await,
        Some(Location::Builtin { key }) => channel.download(key, tmp).await,
        Some(Location::S3(s3)) => super::s3::download(s3, input.credentials.as_ref(), tmp).await,
    }
}

/// Stages every input artifact (the init step). Returns one error per input that failed,
/// each naming the artifact.
pub async fn stage_inputs(inputs: &[InputArtifact], spec: &ChannelSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if inputs.is_empty() {
        return errors;
    }
    if let Err(e) = std::fs::create_dir_all(&spec.staging_dir) {
        return vec![format!("{}: {e}", spec.staging_dir.display())];
    }
    // The init container creates the staging dir as the executor's uid; `main` may run as any
    // uid and makes its outputs scratch dir in it (`save_outputs`): world-writable and sticky,
    // like /tmp (the staged inputs themselves stay read-only).
    {
        use std::os::unix::fs::PermissionsExt;
        let sticky = std::fs::Permissions::from_mode(0o1777);
        if let Err(e) = std::fs::set_permissions(&spec.staging_dir, sticky) {
            return vec![format!("{}: {e}", spec.staging_dir.display())];
        }
    }
    let channel = match Channel::new(spec.clone()) {
        Ok(c) => c,
        Err(e) => return vec![e],
    };
    for (index, input) in inputs.iter().enumerate() {
        let dest = staged_path(&spec.staging_dir, index);
        let tmp = spec.staging_dir.join(format!(".download-{index}"));
        let outcome = async {
            if !fetch(input, &channel, &tmp).await? {
                return Ok(false);
            }
            verify(&tmp, input.digest.as_deref())?;
            let (downloaded, dest2, archive) = (tmp.clone(), dest.clone(), input.archive);
            tokio::task::spawn_blocking(move || unpack(&downloaded, archive, &dest2))
                .await
                .map_err(|e| e.to_string())??;
            if let Some(mode) = input.mode {
                set_mode(&dest, mode).map_err(|e| format!("setting mode {mode:o}: {e}"))?;
            }
            Ok::<bool, String>(true)
        }
        .await;
        let _ = std::fs::remove_file(&tmp);
        match outcome {
            Ok(true) => {}
            Ok(false) if input.optional => {}
            Ok(false) => errors.push(format!(
                "inputs.artifacts.{}: not found{}",
                input.name,
                match &input.location {
                    Some(Location::Builtin { key }) => format!(" (key {key})"),
                    Some(Location::S3(s3)) => format!(" (s3 key {})", s3.key),
                    Some(Location::Http { url }) => format!(" ({url})"),
                    _ => String::new(),
                }
            )),
            Err(e) => errors.push(format!("inputs.artifacts.{}: {e}", input.name)),
        }
    }
    errors
}

/// Saves every output artifact after the command (the main step): the reported artifact JSON
/// of each one stored, and one error per output that failed.
pub async fn save_outputs(
    outputs: &[OutputArtifact],
    spec: &ChannelSpec,
    working_dir: Option<&Path>,
) -> (Vec<Value>, Vec<String>) {
    let mut saved = Vec::new();
    let mut errors = Vec::new();
    if outputs.is_empty() {
        return (saved, errors);
    }
    let channel = match Channel::new(spec.clone()) {
        Ok(c) => c,
        Err(e) => return (saved, vec![e]),
    };
    let scratch = spec.staging_dir.join("outputs");
    if let Err(e) = std::fs::create_dir_all(&scratch) {
        return (saved, vec![format!("{}: {e}", scratch.display())]);
    }
    for (index, out) in outputs.iter().enumerate() {
        let src = match working_dir {
            Some(dir) if out.path.is_relative() => dir.join(&out.path),
            _ => out.path.clone(),
        };
        if std::fs::symlink_metadata(&src).is_err() {
            if !out.optional {
                errors.push(format!(
                    "outputs.artifacts.{}: {} does not exist (set optional: true if it may be absent)",
                    out.name,
                    src.display()
                ));
            }
            continue;
        }
        let packed = scratch.join(index.to_string());
        let outcome = async {
            let (src2, packed2, archive) = (src.clone(), packed.clone(), out.archive);
            let (hex, size) = tokio::task::spawn_blocking(move || {
                pack(&src2, archive, &packed2)?;
                sha256_file(&packed2).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??;
            match &out.location {
                Location::Builtin { key } => channel.upload(key, &packed, &hex).await?,
                Location::S3(s3) => {
                    super::s3::upload(s3, out.credentials.as_ref(), &packed).await?
                }
                Location::Raw { .. } | Location::Http { .. } => {
                    return Err("outputs go to s3 or cairn's built-in store".to_string());
                }
            }
            Ok::<Stored, String>(Stored {
                name: out.name.clone(),
                digest: digest_string(&hex),
                size,
            })
        }
        .await;
        let _ = std::fs::remove_file(&packed);
        match outcome {
            Ok(stored) => saved.push(reported(out, &stored)),
            Err(e) => errors.push(format!("outputs.artifacts.{}: {e}", out.name)),
        }
    }
    (saved, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_round_trip_files_and_directories() {
        let dir = tempfile::tempdir().expect("tmp");
        let src_dir = dir.path().join("data");
        std::fs::create_dir_all(src_dir.join("sub")).expect("mkdir");
        std::fs::write(src_dir.join("a.txt"), "A").expect("write");
        std::fs::write(src_dir.join("sub/b.txt"), "B").expect("write");
        let tgz = dir.path().join("d.tgz");
        pack(&src_dir, Archive::Tar, &tgz).expect("pack dir");
        assert!(is_gzip(&tgz));
        let dest = dir.path().join("restored");
        unpack(&tgz, Some(Archive::Tar), &dest).expect("unpack");
        assert_eq!(std::fs::read_to_string(dest.join("a.txt")).expect("a"), "A");
        assert_eq!(
            std::fs::read_to_string(dest.join("sub/b.txt")).expect("b"),
            "B"
        );

        // A single file archived comes back as that file (not a directory), also when the
        // archive strategy is unknown (detected from the bytes).
        let file = dir.path().join("hello.txt");
        std::fs::write(&file, "hello").expect("write");
        let tgz = dir.path().join("f.tgz");
        pack(&file, Archive::Tar, &tgz).expect("pack file");
        let dest = dir.path().join("in-file");
        unpack(&tgz, None, &dest).expect("unpack");
        assert_eq!(std::fs::read_to_string(&dest).expect("file"), "hello");

        // none: the bytes as they are; a directory is refused.
        let raw = dir.path().join("raw");
        pack(&file, Archive::None, &raw).expect("none");
        assert_eq!(std::fs::read(&raw).expect("raw"), b"hello");
        let err = pack(&src_dir, Archive::None, &dir.path().join("x")).expect_err("dir");
        assert!(err.contains("archive: none"), "{err}");
        let dest = dir.path().join("plain");
        unpack(&raw, None, &dest).expect("plain");
        assert_eq!(std::fs::read(&dest).expect("plain"), b"hello");
    }

    #[test]
    fn digest_verification() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("f");
        std::fs::write(&f, "abc").expect("write");
        let (hex, size) = sha256_file(&f).expect("sha");
        assert_eq!(size, 3);
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(verify(&f, Some(&digest_string(&hex))).is_ok());
        assert!(verify(&f, None).is_ok());
        let err = verify(&f, Some("sha256:00")).expect_err("mismatch");
        assert!(err.contains("producer recorded"), "{err}");
    }

    #[test]
    fn modes_apply_to_files_recursively() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("d/e")).expect("mkdir");
        std::fs::write(dir.path().join("d/e/f"), "x").expect("write");
        set_mode(&dir.path().join("d"), 0o755).expect("mode");
        let mode = std::fs::metadata(dir.path().join("d/e/f"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[tokio::test]
    async fn missing_outputs_fail_unless_optional() {
        let dir = tempfile::tempdir().expect("tmp");
        let spec = ChannelSpec {
            server: None,
            token_file: dir.path().join("token"),
            namespace: "ns".into(),
            staging_dir: dir.path().join("stage"),
        };
        let out = |name: &str, optional: bool| OutputArtifact {
            name: name.into(),
            path: PathBuf::from("missing.txt"),
            optional,
            archive: Archive::Tar,
            location: Location::Builtin {
                key: "wf/p/x.tgz".into(),
            },
            credentials: None,
        };
        let (saved, errors) =
            save_outputs(&[out("a", false), out("b", true)], &spec, Some(dir.path())).await;
        assert!(saved.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("outputs.artifacts.a: "), "{errors:?}");
        assert!(
            errors[0].contains("missing.txt does not exist"),
            "{errors:?}"
        );
    }
}
