//! Wires the process together: store, authentication, the cluster client, CRD installation,
//! background housekeeping and the HTTP server; shuts down gracefully.
//!
//! Start-up order matters: the store opens first (a refused store stops the process before it
//! listens), the admin account exists before the first request, and the listener binds last.
//! A missing cluster does not stop the server: `/readyz` reports it and CRD installation retries
//! in the background.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{self, AppState, StateParts};
use crate::auth::Auth;
use crate::config::Config;
use crate::store::Store;
use crate::tls::TlsListener;

/// How often expired sessions are purged from the store.
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(300);
/// Upper bound of the CRD installation retry backoff.
const CRD_RETRY_MAX: Duration = Duration::from_secs(60);

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened (refused, corrupt, or unwritable).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Authentication could not be set up (e.g. the admin account could not be created).
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: std::net::SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The event bus could not be opened or reached.
    #[error(transparent)]
    Events(#[from] crate::events::runtime::RuntimeError),
    /// The built-in artifact store could not be opened.
    #[error("artifact store: {0}")]
    Artifacts(String),
}

/// Runs the server until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let started = std::time::Instant::now();
    let store = Store::open(&config.server.data_dir)?;
    tracing::info!(data_dir = %config.server.data_dir.display(), "store open");
    let archive = crate::workflow::archive::Archive::new(
        store.clone(),
        config.workflow.archive_log_limit_bytes,
    );
    let events_store = store.clone();
    let auth = Arc::new(Auth::new(store, &config)?);
    if let Some(password) = auth.ensure_admin().await? {
        // Printed once, at first start, as Argo CD users expect to find it; afterwards
        // `cairn admin initial-password` shows it until it is changed.
        eprintln!(
            "\n  cairn: initial password for user \"admin\": {}\n  (shown once; later: `cairn admin initial-password --data-dir {}`)\n",
            password.expose(),
            config.server.data_dir.display()
        );
    }

    let kube = match crate::k8s::client().await {
        Ok(client) => Some(client),
        Err(err) => {
            tracing::warn!(error = %err, "no Kubernetes cluster configured; cluster routes answer 503");
            None
        }
    };
    if let Some(client) = kube.clone() {
        tokio::spawn(install_crds(client));
    }
    // [oidc] clientSecretRef is read through the same client.
    if let (Some(sso), Some(client)) = (auth.sso(), &kube) {
        sso.use_kube(client.clone());
    }
    // The GitOps controller. Its handle implements `gitops::webhook::AppRefresher`: the webhook
    // route and the API's refresh enqueue through it (no API round trip).
    let gitops_handle = match (&kube, config.gitops.enabled) {
        (Some(client), true) => Some(start_gitops(client.clone(), &config)),
        _ => None,
    };
    tokio::spawn(purge_sessions(auth.clone()));
    tokio::spawn(crate::lineage::retention::run(
        auth.store().clone(),
        config.lineage.retention_max_age,
    ));
    // The workflow controller stops when the server is asked to stop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        sd_notify("STOPPING=1");
        let _ = stop_tx.send(true);
    };
    if let Some(client) = kube.clone() {
        let settings = crate::workflow::controller::Settings::from_config(&config.workflow);
        let mut stop = stop_rx.clone();
        tokio::spawn(crate::workflow::controller::run(
            client.clone(),
            settings,
            archive.clone(),
            Arc::new(crate::workflow::controller::Operator),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
        let mut stop = stop_rx.clone();
        tokio::spawn(crate::workflow::cron_controller::run(
            client,
            config.workflow.namespaces.clone(),
            config.workflow.instance_id.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }

    // The event bus, the EventSource controller and (H4) the sensor controller.
    let events =
        crate::events::runtime::start(&config, events_store, kube.clone(), stop_rx.clone()).await?;

    // The promoter, shared by the API and the executor's promotion route.
    let promoter = (!config.promotion.is_empty()).then(|| {
        crate::lineage::promote::op::Promoter::from_config(
            &config,
            auth.store().clone(),
            kube.clone(),
            config.gitops.control_namespace(&config.server),
        )
    });
    // The executor's artifact routes (built-in store), authenticated by TokenReview.
    let executor_routes = match &kube {
        Some(client) => {
            let store = crate::workflow::artifacts::store::BlobStore::open(&config.server.data_dir)
                .map_err(|e| ServerError::Artifacts(e.to_string()))?;
            let registry_executor = crate::lineage::registry::executor::RegistryExecutorService {
                verifier: Arc::new(crate::workflow::artifacts::routes::TokenReviewVerifier {
                    client: client.clone(),
                }),
                client: client.clone(),
                auth: auth.clone(),
            };
            let blobs = Arc::new(store);
            Some((
                crate::workflow::artifacts::routes::router(
                    crate::workflow::artifacts::routes::ArtifactService {
                        store: blobs.clone(),
                        verifier: Arc::new(
                            crate::workflow::artifacts::routes::TokenReviewVerifier {
                                client: client.clone(),
                            },
                        ),
                        max_bytes: config.workflow.artifact_max_bytes,
                    },
                )
                // A model version's bytes for the pods serving it (any pod's projected token,
                // RBAC `models get`).
                .merge(crate::lineage::registry::content::router(
                    crate::lineage::registry::content::ContentService {
                        verifier: Arc::new(
                            crate::lineage::registry::content::TokenReviewAccounts {
                                client: client.clone(),
                            },
                        ),
                        auth: auth.clone(),
                        blobs,
                    },
                ))
                // Model registration and promotion from workflow steps, on the same token
                // (lineage::registry, lineage::promote).
                .merge(crate::lineage::registry::executor::router(
                    registry_executor.clone(),
                ))
                .merge(crate::lineage::promote::executor::router(
                    crate::lineage::promote::executor::PromoteExecutorService {
                        registry: registry_executor.clone(),
                        promoter: promoter.clone(),
                        follow: crate::lineage::promote::executor::FollowSettings {
                            refresher: gitops_handle.clone().map(|h| {
                                Arc::new(h) as Arc<dyn crate::gitops::webhook::AppRefresher>
                            }),
                            namespaces: std::iter::once(
                                config.gitops.control_namespace(&config.server).to_owned(),
                            )
                            .chain(config.gitops.namespaces.iter().cloned())
                            .collect(),
                        },
                    },
                )),
                registry_executor,
            ))
        }
        None => None,
    };
    let secure_cookies = config.server.use_secure_cookies();
    let state = AppState::new(StateParts {
        auth,
        kube,
        // The Applications API (and the webhook) serve the namespace the GitOps controller
        // watches: `[gitops] namespace`, defaulting to `[server] namespace`.
        namespace: config.gitops.control_namespace(&config.server).to_owned(),
        secure_cookies,
        public_url: config.server.url.clone(),
        metrics: Some(crate::telemetry::metrics_handle()),
    })
    .with_gitops(api::GitopsState {
        webhook: config.webhook.clone(),
        refresher: gitops_handle
            .clone()
            .map(|h| Arc::new(h) as Arc<dyn crate::gitops::webhook::AppRefresher>),
        differ: gitops_handle.map(|h| Arc::new(h) as Arc<dyn api::AppDiffer>),
        namespaces: config.gitops.namespaces.clone(),
        ..Default::default()
    })
    .with_workflows(api::WorkflowsState { archive });
    let state = match promoter {
        Some(promoter) => state.with_promoter(promoter),
        None => state,
    };
    let state = match events {
        Some(events) => state.with_events(events.state),
        None => state,
    };
    // MLflow for workflow pods (their token, their node linked), beside the executor's routes.
    let executor_routes = executor_routes
        .map(|(routes, pods)| routes.merge(api::mlflow::executor_router(state.clone(), pods)));
    if let (Some(routes), Some(addr)) = (&executor_routes, config.workflow.executor_listen) {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        tracing::info!(%addr, "executor routes listening");
        let routes = routes.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, routes)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "executor listener stopped");
            }
        });
    }
    let app = match executor_routes {
        Some(routes) => api::router(state).merge(routes),
        None => api::router(state),
    };
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let tls = match (&config.server.tls_cert_file, &config.server.tls_key_file) {
        (Some(cert), Some(key)) => Some(crate::tls::server_config(cert, key)?),
        _ => None,
    };
    tracing::info!(
        addr = %local,
        tls = tls.is_some(),
        ready_ms = started.elapsed().as_millis() as u64,
        version = crate::VERSION,
        "listening"
    );
    // Readiness for a `Type=notify` systemd unit: the store is open and the listener bound.
    sd_notify(&format!("READY=1\nSTATUS=listening on {local}"));
    match tls {
        Some(tls) => {
            let listener = TlsListener::new(listener, tls).map_err(ServerError::Serve)?;
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ServerError::Serve)?;
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ServerError::Serve)?;
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts the GitOps controller in the background; returns its refresh handle.
fn start_gitops(
    client: kube::Client,
    config: &Config,
) -> crate::gitops::controller::ControllerHandle {
    let g = &config.gitops;
    let settings = crate::gitops::controller::Settings {
        control_namespace: g.control_namespace(&config.server).to_owned(),
        namespaces: g.namespaces.clone(),
        poll_interval: g.poll_interval,
        poll_jitter: g.poll_jitter,
        resync_interval: g.resync_interval,
        render_timeout: g.render_timeout,
        workers: g.workers,
        data_dir: config.server.data_dir.clone(),
        installation_id: Some(g.installation_id.clone()).filter(|i| !i.is_empty()),
    };
    tracing::info!(namespace = %settings.control_namespace, workers = settings.workers, "gitops controller starting");
    let controller = crate::gitops::controller::Controller::new(client, settings);
    let handle = controller.handle();
    tokio::spawn(controller.run());
    handle
}

/// Installs or upgrades the CRDs, retrying with backoff until the cluster accepts them.
async fn install_crds(client: kube::Client) {
    let mut delay = Duration::from_secs(1);
    loop {
        match crate::k8s::crds::install(&client).await {
            // `crds::install` logs the per-CRD outcome itself.
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(error = %err, retry_in_s = delay.as_secs(), "CRD installation failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(CRD_RETRY_MAX);
            }
        }
    }
}

async fn purge_sessions(auth: Arc<Auth>) {
    let mut tick = tokio::time::interval(SESSION_PURGE_INTERVAL);
    loop {
        tick.tick().await;
        if let Err(err) = auth.purge_expired_sessions().await {
            tracing::warn!(error = %err, "purging expired sessions failed");
        }
    }
}

/// Tells systemd about a state change (sd_notify(3), e.g. `READY=1`) when it started this process
/// as a `Type=notify` unit, i.e. when `$NOTIFY_SOCKET` is set; nothing otherwise. A failure is
/// logged, never fatal: systemd then reports the unit as failing to start, which names the cause.
fn sd_notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send_notify(&socket, state) {
        tracing::warn!(%error, socket = ?socket, "cannot notify systemd");
    }
}

/// Sends one sd_notify datagram to `socket`: a file system path, or an abstract socket name
/// written with a leading `@` (as systemd sets it).
fn send_notify(socket: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let addr = match socket.as_bytes().strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(std::io::Error::other(format!(
            "sent {sent} of {} bytes",
            state.len()
        )));
    }
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::send_notify;
    use std::os::unix::net::UnixDatagram;

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn notify_reaches_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        send_notify(path.as_os_str(), "READY=1").expect("send");
        assert_eq!(received(&socket), "READY=1");
    }

    #[test]
    fn notify_reaches_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("cairn-test-notify-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind");
        send_notify(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").expect("send");
        assert_eq!(received(&socket), "STOPPING=1");
    }

    #[test]
    fn notify_to_a_missing_socket_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("absent");
        assert!(send_notify(missing.as_os_str(), "READY=1").is_err());
    }
}
