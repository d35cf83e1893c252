//! The relying party's I/O shell: [`Sso`] holds one provider's cached discovery document and
//! JWKS, the pending logins, and the HTTP client (timeouts, body limit, `rootCA`); it starts
//! logins, exchanges codes, validates ID tokens through [`super::jwt`] and maps claims to a
//! [`Principal`]. The invariants are the module's (see [`super`]).
//!
//! A `clientSecretRef` is read from the cluster (the client given to [`Sso::use_kube`]) the
//! first time a login or `/auth/info` needs it, and kept; a failure (no cluster, the Secret or
//! its key missing) is that one error on `/auth/info`, logged once per distinct reason and
//! retried at most every [`DISCOVERY_RETRY`]. The value is never logged.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use reqwest::Url;
use serde::Deserialize;

use super::config::{OidcConfig, SecretRef};
use super::flow::{self, PendingLogin, PendingLogins, safe_return_url};
use super::jwt::{self, IdClaims, JwkSet};
use super::{
    CALLBACK_PATH, DISCOVERY_RETRY, DISCOVERY_TTL, HTTP_TIMEOUT, JWKS_REFETCH_INTERVAL,
    MAX_BODY_BYTES, OidcError,
};
use crate::auth::{Principal, PrincipalKind, Secret};

/// The discovery document's members cairn uses (OIDC Discovery 3).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Discovery {
    /// Must equal the configured issuer exactly.
    pub issuer: String,
    /// Where the browser logs in.
    pub authorization_endpoint: String,
    /// Where codes are exchanged.
    pub token_endpoint: String,
    /// The key set.
    pub jwks_uri: String,
    /// Userinfo, when offered.
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    /// Signing algorithms the provider uses for ID tokens.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Vec<String>,
}

impl Discovery {
    /// Parses and checks a discovery document against the configured `issuer`.
    pub fn parse(body: &[u8], issuer: &str) -> Result<Discovery, String> {
        let d: Discovery = serde_json::from_slice(body)
            .map_err(|e| format!("discovery document is not valid: {e}"))?;
        if d.issuer != issuer {
            return Err(format!(
                "discovery document names issuer {:?}, expected exactly {issuer:?}",
                d.issuer
            ));
        }
        for (name, url) in [
            ("authorization_endpoint", &d.authorization_endpoint),
            ("token_endpoint", &d.token_endpoint),
            ("jwks_uri", &d.jwks_uri),
        ] {
            if Url::parse(url).is_err() {
                return Err(format!("discovery document: {name} {url:?} is not a URL"));
            }
        }
        Ok(d)
    }
}

/// The `/auth/callback` query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state sent in the request.
    pub state: Option<String>,
    /// The provider's error, instead of a code.
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
}

/// What the login page shows about SSO.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SsoStatus {
    /// The provider's display name.
    pub name: String,
    /// The issuer.
    pub issuer: String,
    /// Whether a login can start now.
    pub ready: bool,
    /// Why not, when it cannot.
    pub error: Option<String>,
}

/// The client secret read through `clientSecretRef`, or the last failure to read it.
#[derive(Debug, Default)]
struct KubeSecret {
    value: Option<Secret>,
    last_failure: Option<(Instant, String)>,
}

#[derive(Debug, Clone)]
struct ProviderState {
    discovery: Arc<Discovery>,
    jwks: Arc<JwkSet>,
    fetched: Instant,
    jwks_fetched: Instant,
}

#[derive(Debug, Default)]
struct Cache {
    provider: Option<ProviderState>,
    last_failure: Option<(Instant, String)>,
}

/// A started login: where to send the browser, and the state its cookie must carry.
#[derive(Debug, Clone)]
pub struct Begun {
    /// The provider's authorization URL.
    pub url: Url,
    /// The state (goes in the short-lived login cookie).
    pub state: String,
}

/// A finished login.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Who logged in (no session yet).
    pub principal: Principal,
    /// The return URL recorded at the start.
    pub return_url: String,
    /// The validated ID token's claims.
    pub claims: IdClaims,
}

/// The relying party: one provider, its cached metadata and the pending logins.
pub struct Sso {
    config: OidcConfig,
    secret: Option<Secret>,
    redirect_uri: String,
    public_url: String,
    rbac_scopes: Vec<String>,
    /// The HTTP client, or why it could not be built (bad CA, unreadable secret).
    http: Result<reqwest::Client, String>,
    /// The cluster client `clientSecretRef` is read with (set once at start-up).
    kube: std::sync::OnceLock<kube::Client>,
    kube_secret: tokio::sync::Mutex<KubeSecret>,
    cache: tokio::sync::Mutex<Cache>,
    pending: Mutex<PendingLogins>,
    clock_origin: Instant,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

impl Sso {
    /// The relying party for `config`, with cairn's external URL `public_url` and the RBAC
    /// `scopes`. Never fails: a secret or CA that cannot be read makes every login fail with
    /// that error (see [`Sso::status`]).
    pub fn new(config: &OidcConfig, public_url: &str, rbac_scopes: &[String]) -> Sso {
        let public_url = public_url.trim_end_matches('/').to_owned();
        let secret = config.resolve_secret(|v| std::env::var(v).ok());
        let http = secret.clone().and_then(|_| http_client(config));
        Sso {
            config: config.clone(),
            secret: secret.ok().flatten(),
            redirect_uri: format!("{public_url}{CALLBACK_PATH}"),
            public_url,
            rbac_scopes: rbac_scopes.to_vec(),
            http,
            kube: std::sync::OnceLock::new(),
            kube_secret: tokio::sync::Mutex::new(KubeSecret::default()),
            cache: tokio::sync::Mutex::new(Cache::default()),
            pending: Mutex::new(PendingLogins::default()),
            clock_origin: Instant::now(),
        }
    }

    /// Gives the relying party the server's cluster client, for `clientSecretRef`. The first
    /// call wins; later ones are ignored.
    pub fn use_kube(&self, client: kube::Client) {
        let _ = self.kube.set(client);
    }

    /// The confidential client's secret: the configured one, or the `clientSecretRef` value
    /// read from the cluster (see the module docs).
    async fn client_secret(&self) -> Result<Option<Secret>, OidcError> {
        let Some(reference) = &self.config.client_secret_ref else {
            return Ok(self.secret.clone());
        };
        let mut cached = self.kube_secret.lock().await;
        if let Some(value) = &cached.value {
            return Ok(Some(value.clone()));
        }
        if let Some((at, reason)) = &cached.last_failure
            && at.elapsed() < DISCOVERY_RETRY
        {
            return Err(self.provider_error(reason.clone()));
        }
        match read_secret_ref(self.kube.get(), reference).await {
            Ok(value) => {
                tracing::info!(namespace = %reference.namespace, secret = %reference.name, key = %reference.key, "OIDC client secret read from the cluster");
                cached.last_failure = None;
                cached.value = Some(value.clone());
                Ok(Some(value))
            }
            Err(reason) => {
                if cached
                    .last_failure
                    .as_ref()
                    .is_none_or(|(_, r)| *r != reason)
                {
                    tracing::error!(namespace = %reference.namespace, secret = %reference.name, key = %reference.key, error = %reason, "SSO unavailable: the client secret cannot be read; local login still works");
                }
                cached.last_failure = Some((Instant::now(), reason.clone()));
                Err(self.provider_error(reason))
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The redirect URI registered at the provider.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    fn provider_error(&self, reason: impl Into<String>) -> OidcError {
        OidcError::Provider {
            issuer: self.config.issuer.clone(),
            reason: reason.into(),
        }
    }

    fn now_secs(&self) -> u64 {
        self.clock_origin.elapsed().as_secs()
    }

    fn http(&self) -> Result<&reqwest::Client, OidcError> {
        self.http
            .as_ref()
            .map_err(|e| self.provider_error(e.clone()))
    }

    /// Whether SSO can be used now, and if not why (discovers the provider when needed).
    pub async fn status(&self) -> SsoStatus {
        let error = self.provider().await.err().map(|e| e.to_string());
        SsoStatus {
            name: self.config.name.clone(),
            issuer: self.config.issuer.clone(),
            ready: error.is_none(),
            error,
        }
    }

    /// The provider's metadata and keys, from the cache or fetched.
    async fn provider(&self) -> Result<ProviderState, OidcError> {
        let http = self.http()?;
        // A secret that cannot be read is the one error to show, before the provider's.
        self.client_secret().await?;
        let mut cache = self.cache.lock().await;
        if let Some(p) = &cache.provider
            && p.fetched.elapsed() < DISCOVERY_TTL
        {
            return Ok(p.clone());
        }
        if let Some((at, reason)) = &cache.last_failure
            && at.elapsed() < DISCOVERY_RETRY
        {
            return Err(self.provider_error(reason.clone()));
        }
        match self.discover(http).await {
            Ok(p) => {
                if cache.last_failure.take().is_some() {
                    tracing::info!(issuer = %self.config.issuer, "identity provider reachable again");
                }
                cache.provider = Some(p.clone());
                Ok(p)
            }
            Err(reason) => {
                let repeated = cache
                    .last_failure
                    .as_ref()
                    .is_some_and(|(_, r)| *r == reason);
                if !repeated {
                    tracing::error!(issuer = %self.config.issuer, error = %reason, "SSO unavailable: identity provider misconfigured or unreachable; local login still works");
                }
                metrics::counter!("cairn_sso_provider_errors_total").increment(1);
                cache.last_failure = Some((Instant::now(), reason.clone()));
                // A provider that was fine keeps serving from its last good metadata.
                match &cache.provider {
                    Some(p) => Ok(p.clone()),
                    None => Err(self.provider_error(reason)),
                }
            }
        }
    }

    async fn discover(&self, http: &reqwest::Client) -> Result<ProviderState, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let body = get_bytes(http, &url).await?;
        let discovery = Discovery::parse(&body, &self.config.issuer)?;
        let jwks = self.fetch_jwks(http, &discovery).await?;
        let now = Instant::now();
        Ok(ProviderState {
            discovery: Arc::new(discovery),
            jwks: Arc::new(jwks),
            fetched: now,
            jwks_fetched: now,
        })
    }

    async fn fetch_jwks(
        &self,
        http: &reqwest::Client,
        discovery: &Discovery,
    ) -> Result<JwkSet, String> {
        let body = get_bytes(http, &discovery.jwks_uri).await?;
        JwkSet::parse(&body).map_err(|e| e.to_string())
    }

    /// The JWKS after a re-fetch for an unknown `kid` (rate-limited; the cached set otherwise).
    async fn refreshed_jwks(&self) -> Result<Arc<JwkSet>, OidcError> {
        let http = self.http()?;
        let mut cache = self.cache.lock().await;
        let Some(p) = cache.provider.clone() else {
            return Err(self.provider_error("not discovered"));
        };
        if p.jwks_fetched.elapsed() < JWKS_REFETCH_INTERVAL {
            return Ok(p.jwks);
        }
        match self.fetch_jwks(http, &p.discovery).await {
            Ok(jwks) => {
                tracing::info!(issuer = %self.config.issuer, keys = jwks.keys.len(), "JWKS re-fetched for an unknown key id");
                let jwks = Arc::new(jwks);
                if let Some(cached) = cache.provider.as_mut() {
                    cached.jwks = jwks.clone();
                    cached.jwks_fetched = Instant::now();
                }
                Ok(jwks)
            }
            Err(reason) => Err(self.provider_error(reason)),
        }
    }

    /// Starts a login for the server's client: records the pending login and returns the
    /// provider URL and the state for the cookie.
    pub async fn begin(&self, return_url: Option<&str>) -> Result<Begun, OidcError> {
        let client_id = self.config.client_id.clone();
        let redirect_uri = self.redirect_uri.clone();
        self.begin_for(client_id, redirect_uri, return_url).await
    }

    /// Starts a login for `client_id` with `redirect_uri` (the CLI's public client uses its
    /// loopback redirect).
    pub async fn begin_for(
        &self,
        client_id: String,
        redirect_uri: String,
        return_url: Option<&str>,
    ) -> Result<Begun, OidcError> {
        let provider = self.provider().await?;
        let endpoint = Url::parse(&provider.discovery.authorization_endpoint)
            .map_err(|e| self.provider_error(format!("authorization_endpoint: {e}")))?;
        let state = flow::random_token();
        let nonce = flow::random_token();
        let verifier = flow::random_token();
        let scopes = self.config.scopes();
        let mut url = flow::authorization_url(&flow::AuthRequest {
            endpoint: &endpoint,
            client_id: &client_id,
            redirect_uri: &redirect_uri,
            scopes: &scopes,
            state: &state,
            nonce: &nonce,
            verifier: &verifier,
            claims: Some(&self.config.requested_id_token_claims),
        });
        if !self.config.enable_pkce {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| !k.starts_with("code_challenge"))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        let login = PendingLogin {
            nonce,
            verifier,
            return_url: safe_return_url(return_url),
            client_id,
            redirect_uri,
            started: self.now_secs(),
        };
        let now = self.now_secs();
        self.pending
            .lock()
            .map_err(|_| self.provider_error("pending-login table poisoned"))?
            .insert(state.clone(), login, now);
        Ok(Begun { url, state })
    }

    /// Completes a login from the callback: `cookie_state` is the state the browser's login
    /// cookie carries. Consumes the pending login whatever the outcome.
    pub async fn finish(
        &self,
        cookie_state: Option<&str>,
        query: &CallbackQuery,
    ) -> Result<Finished, OidcError> {
        let client_id = self.config.client_id.clone();
        self.finish_for(&client_id, cookie_state, query).await
    }

    /// Starts a login of the CLI's public client (`cliClientID`) whose browser comes back to
    /// the CLI's loopback `redirect_uri` (`http://localhost:PORT/...`, as `argocd login --sso`).
    pub async fn begin_cli(&self, redirect_uri: &str) -> Result<Begun, OidcError> {
        let client_id = self
            .config
            .cli_client_id
            .clone()
            .ok_or(OidcError::CliNotConfigured)?;
        if !flow::is_loopback_redirect(redirect_uri) {
            return Err(OidcError::CliRedirect {
                redirect_uri: redirect_uri.to_owned(),
            });
        }
        self.begin_for(client_id, redirect_uri.to_owned(), None)
            .await
    }

    /// Completes a CLI login: the CLI presents the state [`Sso::begin_cli`] gave it and the
    /// code its loopback listener received.
    pub async fn finish_cli(&self, query: &CallbackQuery) -> Result<Finished, OidcError> {
        let client_id = self
            .config
            .cli_client_id
            .clone()
            .ok_or(OidcError::CliNotConfigured)?;
        self.finish_for(&client_id, query.state.as_deref(), query)
            .await
    }

    /// Completes a login started for `client_id` (a web login cannot be finished as a CLI one
    /// or the reverse).
    async fn finish_for(
        &self,
        client_id: &str,
        cookie_state: Option<&str>,
        query: &CallbackQuery,
    ) -> Result<Finished, OidcError> {
        let state = query
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(OidcError::State {
                reason: "is missing from the callback",
            })?;
        let login = self
            .pending
            .lock()
            .map_err(|_| self.provider_error("pending-login table poisoned"))?
            .take(state, self.now_secs())
            .ok_or(OidcError::State {
                reason: "is unknown, already used or expired",
            })?;
        let same_browser = cookie_state.is_some_and(|c| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                c.as_bytes(),
                state.as_bytes(),
            ))
        });
        if !same_browser {
            return Err(OidcError::State {
                reason: "does not match this browser's login cookie",
            });
        }
        if login.client_id != client_id {
            return Err(OidcError::State {
                reason: "belongs to another client",
            });
        }
        if let Some(error) = &query.error {
            return Err(OidcError::ProviderRefused {
                error: error.clone(),
                description: query.error_description.clone(),
            });
        }
        let code =
            query
                .code
                .as_deref()
                .filter(|c| !c.is_empty())
                .ok_or(OidcError::ProviderRefused {
                    error: "no code in the callback".into(),
                    description: None,
                })?;
        self.complete(code, &login).await
    }

    /// Exchanges `code` for tokens, validates the ID token and maps it to a principal.
    async fn complete(&self, code: &str, login: &PendingLogin) -> Result<Finished, OidcError> {
        let provider = self.provider().await?;
        let tokens = self.exchange(&provider.discovery, code, login).await?;
        let now = jiff::Timestamp::now().as_second();
        let trusted: Vec<String> = self
            .config
            .allowed_audiences
            .iter()
            .cloned()
            .chain(std::iter::once(self.config.client_id.clone()))
            .chain(self.config.cli_client_id.clone())
            .collect();
        let want = jwt::Expectations {
            issuer: &provider.discovery.issuer,
            client_id: &login.client_id,
            trusted_audiences: &trusted,
            nonce: &login.nonce,
            access_token: tokens.access_token.as_deref(),
            now,
        };
        let claims = match jwt::validate_id_token(&tokens.id_token, &provider.jwks, &want) {
            Err(OidcError::UnknownKey { .. }) => {
                let jwks = self.refreshed_jwks().await?;
                jwt::validate_id_token(&tokens.id_token, &jwks, &want)?
            }
            other => other?,
        };
        let userinfo_groups = if self.config.enable_user_info_groups {
            match (&tokens.access_token, self.userinfo_url(&provider.discovery)) {
                (Some(token), Some(url)) => self.userinfo_groups(&url, token, &claims.sub).await?,
                _ => Vec::new(),
            }
        } else {
            Vec::new()
        };
        let principal = principal_from_claims(&claims, &self.rbac_scopes, &userinfo_groups);
        Ok(Finished {
            principal,
            return_url: login.return_url.clone(),
            claims,
        })
    }

    fn userinfo_url(&self, discovery: &Discovery) -> Option<String> {
        discovery.userinfo_endpoint.clone().or_else(|| {
            self.config
                .user_info_path
                .as_ref()
                .map(|p| format!("{}{p}", self.config.issuer.trim_end_matches('/')))
        })
    }

    async fn userinfo_groups(
        &self,
        url: &str,
        access_token: &str,
        sub: &str,
    ) -> Result<Vec<String>, OidcError> {
        let http = self.http()?;
        let resp = http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| self.provider_error(format!("userinfo: {}", describe(&e))))?;
        if !resp.status().is_success() {
            return Err(self.provider_error(format!("userinfo answered {}", resp.status())));
        }
        let body = read_limited(resp)
            .await
            .map_err(|e| self.provider_error(e))?;
        let info: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
            .map_err(|e| self.provider_error(format!("userinfo is not a JSON object: {e}")))?;
        // OIDC Core 5.3.2: a userinfo response for another subject must not be used.
        if info.get("sub").and_then(|v| v.as_str()) != Some(sub) {
            return Err(OidcError::Claim {
                claim: "sub",
                reason: "userinfo is about another subject".into(),
            });
        }
        Ok(jwt::claim_values(info.get("groups")))
    }

    async fn exchange(
        &self,
        discovery: &Discovery,
        code: &str,
        login: &PendingLogin,
    ) -> Result<TokenResponse, OidcError> {
        let http = self.http()?;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &login.redirect_uri),
            ("client_id", &login.client_id),
        ];
        if self.config.enable_pkce {
            form.push(("code_verifier", &login.verifier));
        }
        let mut req = http.post(&discovery.token_endpoint);
        // The server's confidential client authenticates with client_secret_basic; the CLI's
        // public client with PKCE only.
        let secret = if login.client_id == self.config.client_id {
            self.client_secret().await?
        } else {
            None
        };
        if let Some(secret) = &secret {
            req = req.basic_auth(
                form_urlencode(&login.client_id),
                Some(form_urlencode(secret.expose())),
            );
        }
        let body = Url::parse_with_params("x:", &form)
            .ok()
            .and_then(|u| u.query().map(str::to_owned))
            .unwrap_or_default();
        let resp = req
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| self.provider_error(format!("token endpoint: {}", describe(&e))))?;
        let status = resp.status();
        let body = read_limited(resp)
            .await
            .map_err(|e| self.provider_error(e))?;
        if !status.is_success() {
            #[derive(Deserialize)]
            struct ErrorBody {
                error: String,
                #[serde(default)]
                error_description: Option<String>,
            }
            let reason = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => match e.error_description {
                    Some(d) => format!("{} ({d})", e.error),
                    None => e.error,
                },
                Err(_) => format!("HTTP {status}"),
            };
            return Err(OidcError::CodeExchange { reason });
        }
        serde_json::from_slice(&body).map_err(|e| OidcError::CodeExchange {
            reason: format!("token response without an id_token: {e}"),
        })
    }

    /// Where to send the browser after logout, when `logoutURL` is set.
    pub fn logout_url(&self) -> Option<String> {
        self.config
            .logout_url
            .as_ref()
            .map(|u| u.replace("{{logoutRedirectURL}}", &self.public_url))
    }
}

/// The token endpoint's answer (RFC 6749 5.1 plus `id_token`).
#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
    #[serde(default)]
    access_token: Option<String>,
}

/// The principal of validated claims: subject from Dex's `federated_claims.user_id` or `sub`
/// (Argo CD's rule); its groups are the values of the claims named by the RBAC `scopes`
/// (`groups`, `email`…), plus the userinfo groups when `groups` is among them. Claims not named
/// by a scope are never RBAC subjects.
pub fn principal_from_claims(
    claims: &IdClaims,
    rbac_scopes: &[String],
    userinfo_groups: &[String],
) -> Principal {
    let subject = claims
        .all
        .get("federated_claims")
        .and_then(|f| f.get("user_id"))
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(&claims.sub)
        .to_owned();
    let mut groups: Vec<String> = Vec::new();
    let mut add = |v: String| {
        if !groups.contains(&v) {
            groups.push(v);
        }
    };
    for scope in rbac_scopes {
        for v in claims.values(scope) {
            add(v);
        }
    }
    if rbac_scopes.iter().any(|s| s == "groups") {
        for g in userinfo_groups {
            add(g.clone());
        }
    }
    Principal {
        subject,
        groups,
        kind: PrincipalKind::Sso {
            issuer: claims.iss.clone(),
        },
        session_id: None,
    }
}

/// `application/x-www-form-urlencoded` encoding of a client id or secret, as RFC 6749 2.3.1
/// asks before HTTP Basic.
fn form_urlencode(s: &str) -> String {
    reqwest::Url::parse_with_params("x:", [("v", s)])
        .ok()
        .and_then(|u| u.query().map(|q| q.trim_start_matches("v=").to_owned()))
        .unwrap_or_else(|| s.to_owned())
}

/// Reads `reference` through `kube` (bounded by [`HTTP_TIMEOUT`]); errors name the Secret and
/// the key, never the value.
async fn read_secret_ref(
    kube: Option<&kube::Client>,
    reference: &SecretRef,
) -> Result<Secret, String> {
    let Some(client) = kube else {
        return Err(format!(
            "oidc.clientSecretRef: Secret {}/{} cannot be read: no Kubernetes cluster is configured",
            reference.namespace, reference.name
        ));
    };
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), &reference.namespace);
    let found = tokio::time::timeout(HTTP_TIMEOUT, api.get_opt(&reference.name))
        .await
        .map_err(|_| {
            format!(
                "oidc.clientSecretRef: reading Secret {}/{} timed out after {}s",
                reference.namespace,
                reference.name,
                HTTP_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| {
            format!(
                "oidc.clientSecretRef: reading Secret {}/{}: {e}",
                reference.namespace, reference.name
            )
        })?;
    let data = found.map(|s| {
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    reference.pick(data.as_ref())
}

fn http_client(config: &OidcConfig) -> Result<reqwest::Client, String> {
    // reqwest is built without a default rustls provider; the process's is ring (main installs
    // it first; this covers library users and tests). Installing twice is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT)
        // The provider's answers are read as they are; a redirect is not followed.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = config.root_ca_pem()? {
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("oidc.rootCA: not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err("oidc.rootCA: no certificate in the PEM text".into());
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("HTTP client: {}", describe(&e)))
}

/// An error with its causes (a TLS failure is in the source chain).
fn describe(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    let mut depth = 0;
    while let Some(cause) = source
        && depth < 8
    {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    s
}

async fn get_bytes(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let resp = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", describe(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: HTTP {}", resp.status()));
    }
    read_limited(resp)
        .await
        .map_err(|e| format!("GET {url}: {e}"))
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("response larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_must_name_the_configured_issuer() {
        let doc = br#"{"issuer":"https://idp.example/dex","authorization_endpoint":"https://idp.example/dex/auth","token_endpoint":"https://idp.example/dex/token","jwks_uri":"https://idp.example/dex/keys"}"#;
        assert!(Discovery::parse(doc, "https://idp.example/dex").is_ok());
        let err = Discovery::parse(doc, "https://idp.example/dex/").unwrap_err();
        assert!(err.contains("expected exactly"), "{err}");
        let err = Discovery::parse(b"<html>", "https://idp.example/dex").unwrap_err();
        assert!(err.contains("not valid"), "{err}");
        let bad = br#"{"issuer":"https://i","authorization_endpoint":"nope","token_endpoint":"https://i/t","jwks_uri":"https://i/k"}"#;
        assert!(
            Discovery::parse(bad, "https://i")
                .unwrap_err()
                .contains("authorization_endpoint")
        );
    }

    #[test]
    fn principal_uses_federated_user_id_and_scope_claims() {
        let mut all = serde_json::Map::new();
        all.insert("groups".into(), serde_json::json!(["platform-admins", "x"]));
        all.insert("email".into(), serde_json::json!("a@example.com"));
        all.insert(
            "federated_claims".into(),
            serde_json::json!({"connector_id": "c", "user_id": "alice"}),
        );
        let claims = IdClaims {
            iss: "https://idp".into(),
            sub: "opaque".into(),
            aud: vec!["cairn".into()],
            exp: 0,
            iat: 0,
            all,
        };
        let scopes = vec!["groups".to_owned(), "email".to_owned()];
        let p = principal_from_claims(&claims, &scopes, &["x".to_owned(), "y".to_owned()]);
        assert_eq!(p.subject, "alice");
        assert_eq!(p.groups, ["platform-admins", "x", "a@example.com", "y"]);
        assert_eq!(p.issuer(), "https://idp");

        // Only the claims named by a scope count: with `[email]` neither the `groups` claim
        // nor the userinfo groups are subjects.
        let p = principal_from_claims(&claims, &["email".to_owned()], &["y".to_owned()]);
        assert_eq!(p.groups, ["a@example.com"]);
        assert_eq!(p.rbac_subjects(), ["alice", "a@example.com"]);
        let p = principal_from_claims(&claims, &[], &["y".to_owned()]);
        assert_eq!(p.rbac_subjects(), ["alice"]);
    }

    #[test]
    fn logout_url_substitution() {
        let cfg: OidcConfig = toml::from_str(
            "issuer = \"https://idp\"\nclientID = \"c\"\nlogoutURL = \"https://idp/logout?r={{logoutRedirectURL}}\"\n",
        )
        .unwrap();
        let sso = Sso::new(&cfg, "https://cairn.example/", &[]);
        assert_eq!(
            sso.logout_url().as_deref(),
            Some("https://idp/logout?r=https://cairn.example")
        );
        assert_eq!(sso.redirect_uri(), "https://cairn.example/auth/callback");
    }

    #[test]
    fn a_bad_root_ca_is_a_provider_error_not_a_panic() {
        let cfg: OidcConfig =
            toml::from_str("issuer = \"https://idp\"\nclientID = \"c\"\nrootCA = \"not pem\"\n")
                .unwrap();
        let sso = Sso::new(&cfg, "https://cairn.example", &[]);
        let err = sso.http().unwrap_err().to_string();
        assert!(err.contains("rootCA"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_reported_not_fatal() {
        // Port 9 (discard) on loopback: nothing listens in the test environment.
        let cfg: OidcConfig =
            toml::from_str("issuer = \"http://127.0.0.1:9/dex\"\nclientID = \"c\"\n").unwrap();
        let sso = Sso::new(&cfg, "http://127.0.0.1:1", &[]);
        let status = sso.status().await;
        assert!(!status.ready);
        let error = status.error.unwrap_or_default();
        assert!(error.contains("http://127.0.0.1:9/dex"), "{error}");
        assert!(matches!(
            sso.begin(None).await,
            Err(OidcError::Provider { .. })
        ));
    }

    #[tokio::test]
    async fn a_callback_without_a_known_state_fails() {
        let cfg: OidcConfig =
            toml::from_str("issuer = \"http://127.0.0.1:9/dex\"\nclientID = \"c\"\n").unwrap();
        let sso = Sso::new(&cfg, "http://127.0.0.1:1", &[]);
        let q = CallbackQuery {
            code: Some("c".into()),
            state: None,
            ..Default::default()
        };
        assert!(matches!(
            sso.finish(Some("x"), &q).await,
            Err(OidcError::State { .. })
        ));
        let q = CallbackQuery {
            code: Some("c".into()),
            state: Some("forged".into()),
            ..Default::default()
        };
        assert!(matches!(
            sso.finish(Some("forged"), &q).await,
            Err(OidcError::State { .. })
        ));
    }
}
