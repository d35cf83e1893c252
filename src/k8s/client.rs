//! Building the one `kube::Client` and probing that its apiserver answers.

use std::time::Duration;

use kube::{Client, Config};

use super::K8sError;

/// How long `/readyz` waits for GET /version: short, because a readiness probe must answer
/// quickly whatever the cluster does.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A client from KUBECONFIG (or ~/.kube/config), else from the in-cluster service account.
///
/// Loading the configuration does not contact the cluster; call [`ping`] to know it is reachable.
pub async fn client() -> Result<Client, K8sError> {
    let config = Config::infer().await.map_err(|source| K8sError::NoConfig {
        source: Box::new(source),
    })?;
    client_from_config(config)
}

/// A client from an explicit configuration (tests, or a kubeconfig chosen by flag).
pub fn client_from_config(config: Config) -> Result<Client, K8sError> {
    // Two rustls providers can be linked in through dependencies' defaults; without a process
    // default, building a TLS client panics. Installing fails harmlessly when main (or an earlier
    // call) already installed one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let server = config.cluster_url.to_string();
    tracing::debug!(%server, "kubernetes client configured");
    Client::try_from(config).map_err(|source| K8sError::ClientBuild {
        server,
        source: Box::new(source),
    })
}

/// GET /version within `timeout`; Ok(git version) when the apiserver answers.
pub async fn ping(client: &Client, timeout: Duration) -> Result<String, K8sError> {
    match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Ok(Ok(info)) => Ok(info.git_version),
        Ok(Err(source)) => Err(K8sError::Unreachable {
            source: Box::new(source),
        }),
        Err(_) => Err(K8sError::Timeout {
            what: "GET /version on the Kubernetes apiserver".to_owned(),
            after: timeout,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An apiserver address on loopback where nothing listens: the ping must fail fast with a
    /// clear message, not hang.
    #[tokio::test]
    async fn ping_reports_unreachable_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        drop(listener);
        let url: http::Uri = format!("http://127.0.0.1:{port}").parse().expect("uri");
        let client = client_from_config(Config::new(url)).expect("client");
        let err = ping(&client, Duration::from_secs(5))
            .await
            .expect_err("nothing listens");
        let text = err.to_string();
        assert!(text.contains("not reachable"), "{text}");
        assert!(matches!(err, K8sError::Unreachable { .. }), "{err:?}");
    }

    /// A server that accepts but never answers: the bound applies.
    #[tokio::test]
    async fn ping_times_out_on_silent_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let url: http::Uri = format!("http://127.0.0.1:{port}").parse().expect("uri");
        let client = client_from_config(Config::new(url)).expect("client");
        let err = ping(&client, Duration::from_millis(300))
            .await
            .expect_err("silent");
        assert!(matches!(err, K8sError::Timeout { .. }), "{err:?}");
        assert_eq!(err.metric_label(), "timeout");
        hold.abort();
    }
}
