//! S3-compatible artifact locations through `object_store` (AWS signing with ring, path-style
//! requests, `insecure` = plain HTTP). Credentials come from the executor's environment, where
//! the pod builder put them as `valueFrom.secretKeyRef` (so the values are never in the pod
//! spec, the status or a log); without them the request is anonymous.
//!
//! Uploads stream the packed file through `object_store`'s buffered multipart writer; downloads
//! stream to a file. `object_store` retries transient failures itself (its default
//! `RetryConfig`: bounded attempts and time).

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::S3Repository;

/// Names of the environment variables holding a location's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialEnv {
    /// Access key id variable.
    pub access_key: String,
    /// Secret access key variable.
    pub secret_key: String,
}

/// object_store's HTTP client, with the executor's fallback when the step image has no CA
/// certificates: object_store's own reqwest build reads the platform roots and fails in scratch
/// or busybox images (lab run: "Generic HTTP client error: builder error"); then the client of
/// [`super::transfer::http_client`] is used (plain HTTP works, HTTPS is refused for want of roots).
#[derive(Debug)]
struct Connector;

impl object_store::client::HttpConnector for Connector {
    fn connect(
        &self,
        options: &object_store::ClientOptions,
    ) -> object_store::Result<object_store::client::HttpClient> {
        match object_store::client::ReqwestConnector::default().connect(options) {
            Ok(client) => Ok(client),
            Err(first) => super::transfer::http_client()
                .map(object_store::client::HttpClient::new)
                .map_err(|e| object_store::Error::Generic {
                    store: "S3",
                    source: format!("{first}; {e}").into(),
                }),
        }
    }
}

/// The variables of input (`"IN"`) or output (`"OUT"`) artifact `index`.
pub fn credential_env(direction: &str, index: usize) -> CredentialEnv {
    CredentialEnv {
        access_key: format!("CAIRN_S3_{direction}_{index}_ACCESS_KEY"),
        secret_key: format!("CAIRN_S3_{direction}_{index}_SECRET_KEY"),
    }
}

fn store(
    s3: &S3Repository,
    credentials: Option<&CredentialEnv>,
) -> Result<Arc<dyn object_store::ObjectStore>, String> {
    super::transfer::ensure_crypto_provider();
    let url = s3.endpoint_url();
    let mut builder = AmazonS3Builder::new()
        .with_endpoint(&url)
        .with_bucket_name(&s3.bucket)
        .with_region(s3.region.as_deref().unwrap_or("us-east-1"))
        .with_virtual_hosted_style_request(false)
        .with_allow_http(url.starts_with("http://"))
        .with_http_connector(Connector);
    match credentials {
        Some(env) => {
            let get = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| format!("S3 credentials: environment variable {name} is not set (the Secret key selector)"))
            };
            builder = builder
                .with_access_key_id(get(&env.access_key)?)
                .with_secret_access_key(get(&env.secret_key)?);
        }
        None => builder = builder.with_skip_signature(true),
    }
    let built = builder
        .build()
        .map_err(|e| format!("S3 {url} bucket {}: {e}", s3.bucket))?;
    Ok(Arc::new(built))
}

/// Uploads `file` to `s3.key`.
pub async fn upload(
    s3: &S3Repository,
    credentials: Option<&CredentialEnv>,
    file: &Path,
) -> Result<(), String> {
    let store = store(s3, credentials)?;
    let location = object_store::path::Path::from(s3.key.as_str());
    let mut writer = object_store::buffered::BufWriter::new(store, location);
    let mut src = tokio::fs::File::open(file)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    let copied = tokio::io::copy(&mut src, &mut writer).await;
    if let Err(e) = copied {
        let _ = writer.abort().await;
        return Err(format!("S3 upload of {}: {e}", s3.key));
    }
    writer
        .shutdown()
        .await
        .map_err(|e| format!("S3 upload of {} to bucket {}: {e}", s3.key, s3.bucket))
}

/// Downloads `s3.key` into `dest`; `Ok(false)` when it does not exist.
pub async fn download(
    s3: &S3Repository,
    credentials: Option<&CredentialEnv>,
    dest: &Path,
) -> Result<bool, String> {
    let store = store(s3, credentials)?;
    let location = object_store::path::Path::from(s3.key.as_str());
    let got = match store.get(&location).await {
        Ok(got) => got,
        Err(object_store::Error::NotFound { .. }) => return Ok(false),
        Err(e) => {
            return Err(format!(
                "S3 download of {} from bucket {}: {e}",
                s3.key, s3.bucket
            ));
        }
    };
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("S3 download of {}: {e}", s3.key))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| format!("{}: {e}", dest.display()))?;
    }
    file.flush().await.map_err(|e| e.to_string())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_variables_are_per_artifact() {
        assert_eq!(
            credential_env("IN", 2),
            CredentialEnv {
                access_key: "CAIRN_S3_IN_2_ACCESS_KEY".into(),
                secret_key: "CAIRN_S3_IN_2_SECRET_KEY".into(),
            }
        );
    }

    #[test]
    fn endpoints() {
        let mut s3 = S3Repository {
            endpoint: "minio:9000".into(),
            bucket: "b".into(),
            ..Default::default()
        };
        assert_eq!(s3.endpoint_url(), "https://minio:9000");
        s3.insecure = Some(true);
        assert_eq!(s3.endpoint_url(), "http://minio:9000");
        s3.endpoint = "http://10.0.0.1:8333/".into();
        assert_eq!(s3.endpoint_url(), "http://10.0.0.1:8333");
    }
}
