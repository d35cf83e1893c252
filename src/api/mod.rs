//! The HTTP API: one route table, one authentication + authorization gate, one file per
//! resource family.
//!
//! Invariants:
//! - Every route is declared once in [`routes`] together with its [`Access`] rule; the router is
//!   built from that table and the gate reads the rule of the matched route. A route cannot be
//!   mounted without an access rule, and the route-table test walks the same table, so routes
//!   added later are covered automatically.
//! - Only [`Access::Public`] routes (the login itself, the Git webhook and event source
//!   endpoints, which authenticate by the sender's secret) skip authentication; every other `/api`
//!   route authenticates (session cookie or bearer token) and then passes an RBAC check before its
//!   handler runs. Handlers that know the exact object (an Application's project, say) check it
//!   again with that object.
//! - `/auth/login`, `/auth/callback`, `/auth/info` and `/auth/cli/{login,token}` (SSO's browser
//!   redirects and the CLI's code exchange, [`sso`]) are mounted beside `/healthz`, outside the
//!   table: they take no credential; `/auth/logout` is a table route like any other.
//! - State-changing requests must carry [`CSRF_HEADER`] and, when the browser sends one, an
//!   `Origin` equal to the server's own; a cross-site form or script cannot set either.

mod accounts;
pub mod applications;
mod error;
mod events;
pub mod lineage;
pub mod mlflow;
pub mod models;
mod projects;
pub mod promotions;
mod session;
pub mod sso;
mod workflows;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use crate::auth::{Auth, Principal};

pub use applications::{AppDiffer, DiffItem, GitopsState};
pub use error::ApiError;
pub use workflows::WorkflowsState;

/// The header every state-changing request must carry (CSRF defence; browsers cannot add it
/// to a cross-site request without a CORS pre-flight, which cairn never grants).
pub const CSRF_HEADER: &str = "x-cairn-csrf";

/// Where event source endpoints are served (`webhook`, `github`, `gitlab` sources).
pub const EVENTS_WEBHOOK_PATH: &str = "/api/events/{namespace}/{eventsource}/{*endpoint}";

/// Name of the session cookie without TLS; with TLS the `__Host-` prefix is added.
pub const SESSION_COOKIE: &str = "cairn_session";

/// Everything a handler may need, shared by all requests.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    auth: Arc<Auth>,
    kube: Option<kube::Client>,
    namespace: String,
    secure_cookies: bool,
    /// External base URL (`scheme://host[:port]`), when configured; used for Origin checks.
    public_origin: Option<String>,
    metrics: Option<PrometheusHandle>,
    started: Instant,
    /// Webhook secrets and the GitOps controller's refresh handle (set once at start-up).
    gitops: std::sync::OnceLock<GitopsState>,
    workflows: std::sync::OnceLock<WorkflowsState>,
    /// The event sources' endpoint table and bus (set once at start-up).
    events: std::sync::OnceLock<crate::events::sources::webhook::EventsState>,
    /// Promotion by Git commit (set once at start-up when `[[promotion]]` entries exist).
    promoter: std::sync::OnceLock<Arc<crate::lineage::promote::op::Promoter>>,
}

/// What [`AppState::new`] needs.
pub struct StateParts {
    /// Authentication, sessions, tokens and the RBAC policy.
    pub auth: Arc<Auth>,
    /// The cluster client, when a cluster is reachable.
    pub kube: Option<kube::Client>,
    /// cairn's control namespace (where Applications live).
    pub namespace: String,
    /// Whether cookies get `Secure` and the `__Host-` prefix.
    pub secure_cookies: bool,
    /// The configured external URL, if any.
    pub public_url: Option<String>,
    /// The Prometheus handle behind `/metrics`.
    pub metrics: Option<PrometheusHandle>,
}

impl AppState {
    /// Builds the shared state.
    pub fn new(parts: StateParts) -> Self {
        let public_origin = parts.public_url.as_deref().map(origin_of);
        // Discover the SSO provider in the background: a misconfigured one is logged at start-up
        // (once) and never delays it.
        if let (Some(sso), Ok(rt)) = (
            parts.auth.sso().cloned(),
            tokio::runtime::Handle::try_current(),
        ) {
            rt.spawn(async move { sso.status().await });
        }
        // AppProject role group bindings follow the live objects.
        if let (Some(kube), Ok(rt)) = (parts.kube.clone(), tokio::runtime::Handle::try_current()) {
            projects::spawn_role_watch(&rt, parts.auth.clone(), kube, parts.namespace.clone());
        }
        Self {
            inner: Arc::new(Inner {
                auth: parts.auth,
                kube: parts.kube,
                namespace: parts.namespace,
                secure_cookies: parts.secure_cookies,
                public_origin,
                metrics: parts.metrics,
                started: Instant::now(),
                gitops: std::sync::OnceLock::new(),
                workflows: std::sync::OnceLock::new(),
                events: std::sync::OnceLock::new(),
                promoter: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Authentication and authorization.
    pub fn auth(&self) -> &Auth {
        &self.inner.auth
    }

    /// The cluster client, or the error every cluster-backed route answers without one.
    pub fn kube(&self) -> Result<kube::Client, ApiError> {
        self.inner.kube.clone().ok_or(ApiError::ClusterUnavailable)
    }

    /// Whether a cluster client was configured at start-up.
    pub fn has_kube(&self) -> bool {
        self.inner.kube.is_some()
    }

    /// cairn's control namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The session cookie's name (with `__Host-` when cookies are `Secure`).
    pub fn cookie_name(&self) -> String {
        if self.inner.secure_cookies {
            format!("__Host-{SESSION_COOKIE}")
        } else {
            SESSION_COOKIE.to_string()
        }
    }

    /// Adds the GitOps wiring (webhook secrets, controller refresh handle); the first call wins.
    pub fn with_gitops(self, gitops: GitopsState) -> Self {
        let _ = self.inner.gitops.set(gitops);
        self
    }

    /// The GitOps wiring, when set.
    pub fn gitops(&self) -> Option<&GitopsState> {
        self.inner.gitops.get()
    }

    /// Adds the promoter (`[[promotion]]`); the first call wins.
    pub fn with_promoter(self, promoter: Arc<crate::lineage::promote::op::Promoter>) -> Self {
        let _ = self.inner.promoter.set(promoter);
        self
    }

    /// The promoter, when promotion is configured.
    pub fn promoter(&self) -> Option<&crate::lineage::promote::op::Promoter> {
        self.inner.promoter.get().map(|p| &**p)
    }

    /// Adds the workflow wiring (the archive); the first call wins.
    pub fn with_workflows(self, workflows: WorkflowsState) -> Self {
        let _ = self.inner.workflows.set(workflows);
        self
    }

    /// The workflow wiring, when set.
    pub fn workflows(&self) -> Option<&WorkflowsState> {
        self.inner.workflows.get()
    }

    /// Adds the event sources' wiring (endpoint table, bus); the first call wins.
    pub fn with_events(self, events: crate::events::sources::webhook::EventsState) -> Self {
        let _ = self.inner.events.set(events);
        self
    }

    /// The event sources' wiring, when set.
    pub fn events(&self) -> Option<&crate::events::sources::webhook::EventsState> {
        self.inner.events.get()
    }

    /// Whether cookies are marked `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.inner.secure_cookies
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication: only the login route, which is how credentials are obtained.
    Public,
    /// Any authenticated subject; the route only concerns the caller's own session.
    Session,
    /// Authenticated, and the RBAC policy must allow `action` on `resource` for some object;
    /// the handler then checks the exact object it touches.
    Rbac {
        /// RBAC resource, e.g. `applications`.
        resource: &'static str,
        /// RBAC action, e.g. `get`.
        action: &'static str,
    },
    /// Authenticated, and either the path parameter `param` names the caller's own account, or
    /// the policy allows `action` on `resource` for the object named by that parameter.
    SelfOrRbac {
        /// RBAC resource, e.g. `accounts`.
        resource: &'static str,
        /// RBAC action, e.g. `update`.
        action: &'static str,
        /// The path parameter holding the account name.
        param: &'static str,
    },
}

/// One row of the route table.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// axum path pattern, e.g. `/api/v1/applications/{name}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

/// The route table: every `/api` route with its access rule and handler.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Access::*;
    fn spec(method: Method, path: &'static str, access: Access) -> RouteSpec {
        RouteSpec {
            method,
            path,
            access,
        }
    }
    const APPS_GET: Access = Rbac {
        resource: "applications",
        action: "get",
    };
    const fn apps(action: &'static str) -> Access {
        Rbac {
            resource: "applications",
            action,
        }
    }
    const WF_GET: Access = Rbac {
        resource: "workflows",
        action: "get",
    };
    const ES_GET: Access = Rbac {
        resource: "eventsources",
        action: "get",
    };
    const SENSOR_GET: Access = Rbac {
        resource: "sensors",
        action: "get",
    };
    let mut table = vec![
        (
            spec(Method::POST, "/api/v1/session", Public),
            post(session::login),
        ),
        (
            spec(Method::DELETE, "/api/v1/session", Session),
            delete(session::logout),
        ),
        (
            spec(Method::GET, "/api/v1/session/userinfo", Session),
            get(session::userinfo),
        ),
        (
            spec(Method::POST, "/auth/logout", Session),
            post(sso::logout),
        ),
        (
            spec(Method::GET, "/api/v1/applications", APPS_GET),
            get(applications::list),
        ),
        (
            spec(Method::GET, "/api/v1/applications/{name}", APPS_GET),
            get(applications::get),
        ),
        (
            spec(Method::POST, "/api/v1/applications", apps("create")),
            post(applications::create),
        ),
        (
            spec(Method::PUT, "/api/v1/applications/{name}", apps("update")),
            put(applications::update),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/applications/{name}",
                apps("delete"),
            ),
            delete(applications::delete),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/applications/{name}/sync",
                apps("sync"),
            ),
            post(applications::sync),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/applications/{name}/rollback",
                apps("sync"),
            ),
            post(applications::rollback),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/applications/{name}/refresh",
                APPS_GET,
            ),
            post(applications::refresh),
        ),
        (
            spec(Method::GET, "/api/v1/applications/{name}/diff", APPS_GET),
            get(applications::diff),
        ),
        (
            spec(Method::GET, "/api/v1/applications/{name}/history", APPS_GET),
            get(applications::history),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/applications/{name}/resource-tree",
                APPS_GET,
            ),
            get(applications::resource_tree),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/applications/{name}/managed-resources",
                APPS_GET,
            ),
            get(applications::managed_resources),
        ),
        (
            spec(Method::GET, "/api/v1/stream/applications", APPS_GET),
            get(applications::stream),
        ),
        (
            spec(Method::POST, applications::WEBHOOK_PATH, Public),
            post(applications::receive_webhook),
        ),
        // Event source endpoints: the methods a source may name (the endpoint's own is checked
        // there; `route_layer` needs method routes, not `any`). The EventSource's secret
        // authenticates (public, like the Git webhook).
        (
            spec(Method::POST, EVENTS_WEBHOOK_PATH, Public),
            axum::routing::on(
                axum::routing::MethodFilter::GET
                    .or(axum::routing::MethodFilter::POST)
                    .or(axum::routing::MethodFilter::PUT)
                    .or(axum::routing::MethodFilter::PATCH)
                    .or(axum::routing::MethodFilter::DELETE),
                crate::events::sources::webhook::api_route,
            ),
        ),
        (
            spec(Method::GET, "/api/v1/workflows", WF_GET),
            get(workflows::list_all),
        ),
        (
            spec(Method::GET, "/api/v1/workflows/{namespace}", WF_GET),
            get(workflows::list),
        ),
        (
            spec(Method::GET, "/api/v1/workflows/{namespace}/{name}", WF_GET),
            get(workflows::get),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/workflows/{namespace}",
                Rbac {
                    resource: "workflows",
                    action: "create",
                },
            ),
            post(workflows::create),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/workflows/{namespace}/submit",
                Rbac {
                    resource: "workflows",
                    action: "create",
                },
            ),
            post(workflows::submit),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/workflows/{namespace}/{name}",
                Rbac {
                    resource: "workflows",
                    action: "delete",
                },
            ),
            delete(workflows::delete),
        ),
        (
            // suspend, resume, stop, terminate, retry (update) and resubmit (create: the
            // handler checks it on the exact object).
            spec(
                Method::PUT,
                "/api/v1/workflows/{namespace}/{name}/{action}",
                Rbac {
                    resource: "workflows",
                    action: "update",
                },
            ),
            put(workflows::action),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/workflows/{namespace}/{name}/log",
                WF_GET,
            ),
            get(workflows::logs),
        ),
        (
            spec(Method::GET, "/api/v1/archived-workflows", WF_GET),
            get(workflows::archived_list),
        ),
        (
            spec(Method::GET, "/api/v1/archived-workflows/{uid}", WF_GET),
            get(workflows::archived_get),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/archived-workflows/{uid}",
                Rbac {
                    resource: "workflows",
                    action: "delete",
                },
            ),
            delete(workflows::archived_delete),
        ),
        (
            spec(Method::GET, "/api/v1/workflow-events/{namespace}", WF_GET),
            get(workflows::events),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/workflow-templates/{namespace}",
                Rbac {
                    resource: "workflowtemplates",
                    action: "get",
                },
            ),
            get(workflows::templates_list),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/workflow-templates/{namespace}",
                Rbac {
                    resource: "workflowtemplates",
                    action: "create",
                },
            ),
            post(workflows::templates_create),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/workflow-templates/{namespace}/{name}",
                Rbac {
                    resource: "workflowtemplates",
                    action: "get",
                },
            ),
            get(workflows::templates_get),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/cron-workflows/{namespace}",
                Rbac {
                    resource: "cronworkflows",
                    action: "get",
                },
            ),
            get(workflows::cron_list),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/cron-workflows/{namespace}/{name}",
                Rbac {
                    resource: "cronworkflows",
                    action: "get",
                },
            ),
            get(workflows::cron_get),
        ),
        (
            spec(
                Method::PUT,
                "/api/v1/cron-workflows/{namespace}/{name}/{action}",
                Rbac {
                    resource: "cronworkflows",
                    action: "update",
                },
            ),
            put(workflows::cron_action),
        ),
        (
            spec(Method::GET, "/api/v1/events/eventsources", ES_GET),
            get(events::list_eventsources),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/events/eventsources/{namespace}/{name}",
                ES_GET,
            ),
            get(events::get_eventsource),
        ),
        (
            spec(Method::GET, "/api/v1/events/sensors", SENSOR_GET),
            get(events::list_sensors),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/events/sensors/{namespace}/{name}",
                SENSOR_GET,
            ),
            get(events::get_sensor),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/events/sensors/{namespace}/{name}/history",
                SENSOR_GET,
            ),
            get(events::sensor_history),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/events/log",
                Rbac {
                    resource: "events",
                    action: "get",
                },
            ),
            get(events::list_events),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/events/send/{namespace}/{eventsource}/{*endpoint}",
                Rbac {
                    resource: "events",
                    action: "create",
                },
            ),
            post(events::send_event),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/projects/{name}/roles/{role}/token",
                Rbac {
                    resource: "projects",
                    action: "get",
                },
            ),
            get(projects::list_tokens),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/projects/{name}/roles/{role}/token",
                Rbac {
                    resource: "projects",
                    action: "update",
                },
            ),
            post(projects::create_token),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/projects/{name}/roles/{role}/token/{key}",
                Rbac {
                    resource: "projects",
                    action: "update",
                },
            ),
            delete(projects::delete_token),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/project-signing-key/rotate",
                Rbac {
                    resource: "projects",
                    action: "update",
                },
            ),
            post(projects::rotate_key),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/account",
                Rbac {
                    resource: "accounts",
                    action: "get",
                },
            ),
            get(accounts::list),
        ),
        (
            spec(
                Method::PUT,
                "/api/v1/account/{name}/password",
                SelfOrRbac {
                    resource: "accounts",
                    action: "update",
                    param: "name",
                },
            ),
            put(accounts::change_password),
        ),
        (
            spec(
                Method::GET,
                "/api/v1/account/{name}/token",
                SelfOrRbac {
                    resource: "accounts",
                    action: "get",
                    param: "name",
                },
            ),
            get(accounts::list_tokens),
        ),
        (
            spec(
                Method::POST,
                "/api/v1/account/{name}/token",
                SelfOrRbac {
                    resource: "accounts",
                    action: "update",
                    param: "name",
                },
            ),
            post(accounts::create_token),
        ),
        (
            spec(
                Method::DELETE,
                "/api/v1/account/{name}/token/{id}",
                SelfOrRbac {
                    resource: "accounts",
                    action: "update",
                    param: "name",
                },
            ),
            delete(accounts::revoke_token),
        ),
    ];
    table.extend(models::routes());
    table.extend(lineage::routes());
    table.extend(mlflow::routes());
    table.extend(promotions::routes());
    table
}

/// Builds the whole HTTP application: health, metrics, the gated API and the UI fallback.
pub fn router(state: AppState) -> Router {
    let mut api = Router::new();
    for (spec, handler) in routes() {
        let gate = middleware::from_fn_with_state((state.clone(), spec.clone()), gate);
        api = api.route(spec.path, handler.route_layer(gate));
    }
    api.route(
        "/api/{*rest}",
        axum::routing::any(|| async { ApiError::NotFound("no such API route".into()) }),
    )
    // SSO's browser redirects (outside /api and the table: they take no credential).
    .route("/auth/login", get(sso::login))
    .route(crate::auth::oidc::CALLBACK_PATH, get(sso::callback))
    .route("/auth/info", get(sso::info))
    .route("/auth/cli/login", post(sso::cli_login))
    .route("/auth/cli/token", post(sso::cli_token))
    .route("/healthz", get(|| async { "ok" }))
    .route("/readyz", get(readyz))
    .route("/metrics", get(metrics))
    .with_state(state)
    .fallback_service(crate::web::router())
    .layer(middleware::from_fn(observe))
}

async fn readyz(State(state): State<AppState>) -> Response {
    let store_ok = state.auth().store_healthy();
    let cluster_ok = match state.kube() {
        Ok(client) => crate::k8s::ping(&client, crate::k8s::PING_TIMEOUT)
            .await
            .is_ok(),
        Err(_) => false,
    };
    let body = serde_json::json!({ "store": store_ok, "cluster": cluster_ok });
    let status = if store_ok && cluster_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    metrics::gauge!("cairn_uptime_seconds").set(state.inner.started.elapsed().as_secs_f64());
    let text = state
        .inner
        .metrics
        .as_ref()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// One span and one metric sample per request. Records the method, the path and the status —
/// never headers, query strings or bodies.
async fn observe(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", %method, %path);
    let start = Instant::now();
    let response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let elapsed = start.elapsed();
    span.in_scope(|| {
        tracing::info!(
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        )
    });
    metrics::counter!("cairn_http_requests_total", "method" => method.to_string(), "status" => status.to_string()).increment(1);
    metrics::histogram!("cairn_http_request_duration_seconds").record(elapsed.as_secs_f64());
    response
}

/// The gate in front of every `/api` route: CSRF, authentication, RBAC.
async fn gate(
    State((state, spec)): State<(AppState, RouteSpec)>,
    params: RawPathParams,
    mut req: Request,
    next: Next,
) -> Response {
    match check(&state, &spec, &params, &mut req).await {
        Ok(()) => next.run(req).await,
        // The MLflow client reads MLflow's error shape.
        Err(err) if spec.path.starts_with("/api/2.0/") => mlflow::gate_error(err),
        Err(err) => err.into_response(),
    }
}

async fn check(
    state: &AppState,
    spec: &RouteSpec,
    params: &RawPathParams,
    req: &mut Request,
) -> Result<(), ApiError> {
    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // The Git webhook carries no cookie, so CSRF cannot apply; its handler authenticates the
    // provider's signature instead.
    // The MLflow client sends its credential in `Authorization` (never a cookie) and no CSRF
    // header; a cross-site request cannot set that header, so CSRF cannot apply either.
    let mlflow_with_credential =
        spec.path.starts_with("/api/2.0/") && req.headers().contains_key(header::AUTHORIZATION);
    if unsafe_method
        && spec.path != applications::WEBHOOK_PATH
        && spec.path != EVENTS_WEBHOOK_PATH
        && !mlflow_with_credential
    {
        check_csrf(state, req.headers())?;
    }
    if spec.access == Access::Public {
        return Ok(());
    }
    let principal = authenticate(state, req.headers()).await?;
    match spec.access {
        Access::Public | Access::Session => {}
        Access::Rbac { resource, action } => {
            if !state.auth().authorize_any(&principal, resource, action) {
                return Err(ApiError::Forbidden {
                    resource,
                    action,
                    object: "*".into(),
                });
            }
        }
        Access::SelfOrRbac {
            resource,
            action,
            param,
        } => {
            let target = params
                .iter()
                .find(|(k, _)| *k == param)
                .map(|(_, v)| v.to_string())
                .unwrap_or_default();
            let own = principal.is_local_account(&target);
            if !own
                && !state
                    .auth()
                    .authorize(&principal, resource, action, &target)
            {
                return Err(ApiError::Forbidden {
                    resource,
                    action,
                    object: target,
                });
            }
        }
    }
    req.extensions_mut().insert(principal);
    Ok(())
}

/// Resolves the caller from `Authorization: Bearer` or the session cookie.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(token) = bearer(headers) {
        if crate::auth::project_tokens::looks_like_jwt(token) {
            return projects::authenticate(state, token).await;
        }
        return Ok(state.auth().authenticate_bearer(token).await?);
    }
    if let Some(id) = cookie(headers, &state.cookie_name()) {
        return Ok(state.auth().authenticate_session(id).await?);
    }
    Err(ApiError::Unauthenticated)
}

/// The bearer credential, if the request carries one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name`, if present.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// CSRF defence for state-changing requests: the custom header must be present, and a browser's
/// `Origin` (when sent) must be this server's own origin.
fn check_csrf(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !headers.contains_key(CSRF_HEADER) {
        return Err(ApiError::Csrf(format!(
            "state-changing requests must carry the {CSRF_HEADER} header"
        )));
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin
        .to_str()
        .map_err(|_| ApiError::Csrf("Origin header is not valid text".into()))?;
    let expected = match &state.inner.public_origin {
        Some(o) => o.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .ok_or_else(|| ApiError::Csrf("request has an Origin but no Host".into()))?;
            let scheme = if state.inner.secure_cookies {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
    };
    if origin.eq_ignore_ascii_case(&expected) {
        Ok(())
    } else {
        Err(ApiError::Csrf(format!(
            "Origin {origin} does not match this server ({expected})"
        )))
    }
}

/// `scheme://host[:port]` of a URL (drops any path).
fn origin_of(url: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    match trimmed.find("://") {
        Some(i) => {
            let rest = &trimmed[i + 3..];
            let host_end = rest.find('/').unwrap_or(rest.len());
            format!("{}://{}", &trimmed[..i], &rest[..host_end])
        }
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origin_of_strips_paths() {
        assert_eq!(
            origin_of("https://cairn.example.com/"),
            "https://cairn.example.com"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080/ui/x"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; cairn_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, "cairn_session"), Some("xyz"));
        assert_eq!(cookie(&h, "a"), Some("1"));
        assert_eq!(cookie(&h, "missing"), None);
        h.insert(header::COOKIE, HeaderValue::from_static("cairn_session="));
        assert_eq!(cookie(&h, "cairn_session"), None);
    }
}
