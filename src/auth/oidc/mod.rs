//! OpenID Connect single sign-on: cairn as a relying party of one identity provider (`[oidc]`).
//!
//! Layout: a pure core and a thin I/O shell.
//! - [`config`]: the `[oidc]` section (Argo CD's `oidc.config` keys).
//! - [`jwt`]: JWKS parsing, key selection by `kid`, signature verification with an algorithm
//!   allow-list, and complete ID-token validation. Pure.
//! - [`flow`]: PKCE S256, `state`/`nonce`, the authorization URL, the return-URL rule and the
//!   single-use table of pending logins. Pure.
//! - [`Sso`] (`relying_party.rs`): discovery and JWKS fetching with a cache (re-fetched on an unknown
//!   `kid`, at most once per [`JWKS_REFETCH_INTERVAL`]), the token exchange, userinfo, and the
//!   mapping of claims to a [`Principal`].
//!
//! Invariants:
//! - A misconfigured provider (unreachable, wrong discovery document, TLS failure, unreadable
//!   secret or CA) never stops the server or local login: [`Sso::status`] reports one clear
//!   error, the log has it once per distinct error, and SSO logins fail with it until the
//!   provider answers (re-tried at most once per [`DISCOVERY_RETRY`]).
//! - A login completes only with a `state` issued by this process, presented by the same browser
//!   (its cookie) and used once, and an ID token that passed [`jwt::validate_id_token`].
//! - The client secret, codes, tokens, nonces and verifiers are never logged.
//! - Every request to the provider has a timeout ([`HTTP_TIMEOUT`]) and a body limit
//!   ([`MAX_BODY_BYTES`]).

pub mod config;
pub mod flow;
pub mod jwt;
mod relying_party;

use std::time::Duration;

pub use config::{ClaimRequest, OidcConfig};
pub use flow::{PendingLogin, PendingLogins, safe_return_url};
pub use jwt::{Alg, IdClaims, Jwk, JwkSet};
pub use relying_party::{
    Begun, CallbackQuery, Discovery, Finished, Sso, SsoStatus, principal_from_claims,
};

/// Path of the callback route (the redirect URI is `<server.url>` + this).
pub const CALLBACK_PATH: &str = "/auth/callback";
/// Timeout of each request to the provider.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body read from the provider.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// A failed discovery is retried at most this often (logins in between get the same error).
pub const DISCOVERY_RETRY: Duration = Duration::from_secs(10);
/// A successful discovery (and its JWKS) is re-read after this long.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The JWKS is re-fetched for an unknown `kid` at most this often (a flood of forged `kid`s
/// cannot turn cairn into a load generator against the provider).
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// Errors of SSO login.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// SSO is not configured (`[oidc]` absent).
    #[error("SSO is not configured ([oidc] in cairn.toml)")]
    NotConfigured,
    /// The provider could not be used: discovery, JWKS, TLS, secret or CA problem.
    #[error("identity provider {issuer}: {reason}")]
    Provider {
        /// The configured issuer.
        issuer: String,
        /// What failed, for the login page and the log.
        reason: String,
    },
    /// The callback's `state` is missing, was not issued here, was already used, expired, or
    /// does not match the browser's login cookie.
    #[error("login state {reason}; start the login again")]
    State {
        /// Which of those.
        reason: &'static str,
    },
    /// The provider sent the browser back with an error instead of a code.
    #[error("the identity provider refused the login: {error}{}", description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    ProviderRefused {
        /// The `error` parameter.
        error: String,
        /// The `error_description` parameter.
        description: Option<String>,
    },
    /// The token endpoint refused the code (used twice, expired, wrong verifier...).
    #[error("the token endpoint refused the code: {reason}")]
    CodeExchange {
        /// The provider's error, or the HTTP status.
        reason: String,
    },
    /// The token is not a well-formed compact JWS.
    #[error("ID token malformed: {reason}")]
    MalformedToken {
        /// What is wrong.
        reason: String,
    },
    /// The token's algorithm is not in the allow-list (`none`, `HS256`, ...).
    #[error("ID token algorithm {alg:?} is not allowed (asymmetric algorithms only)")]
    AlgorithmNotAllowed {
        /// The header's `alg`.
        alg: String,
    },
    /// No key of the provider's JWKS has the token's `kid` (even after a re-fetch).
    #[error("ID token signed by unknown key {kid:?}")]
    UnknownKey {
        /// The header's `kid` (empty when absent and no single key fits).
        kid: String,
    },
    /// The key named by `kid` cannot verify this algorithm.
    #[error("key {kid:?} cannot verify {alg}")]
    KeyMismatch {
        /// The key id.
        kid: String,
        /// The token's algorithm.
        alg: &'static str,
    },
    /// The signature does not verify.
    #[error("ID token signature does not verify")]
    BadSignature,
    /// The provider's JWKS is not a valid key set or a key is incomplete.
    #[error("provider JWKS invalid: {reason}")]
    BadJwks {
        /// What is wrong.
        reason: String,
    },
    /// A claim failed validation.
    #[error("ID token claim {claim}: {reason}")]
    Claim {
        /// The claim name.
        claim: &'static str,
        /// Why.
        reason: String,
    },
    /// `cairn login --sso` needs `cliClientID` in `[oidc]`.
    #[error("SSO for the CLI is not configured (oidc.cliClientID)")]
    CliNotConfigured,
    /// The CLI's redirect URI is not a loopback `http://localhost:PORT/...` URL.
    #[error(
        "CLI redirect URI {redirect_uri:?}: expected http://localhost:PORT/... or http://127.0.0.1:PORT/..."
    )]
    CliRedirect {
        /// The URI given.
        redirect_uri: String,
    },
}

impl OidcError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::Provider { .. } => "provider",
            Self::State { .. } => "state",
            Self::ProviderRefused { .. } => "provider_refused",
            Self::CodeExchange { .. } => "code_exchange",
            Self::MalformedToken { .. } => "malformed_token",
            Self::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            Self::UnknownKey { .. } => "unknown_key",
            Self::KeyMismatch { .. } => "key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::BadJwks { .. } => "bad_jwks",
            Self::Claim { .. } => "claim",
            Self::CliNotConfigured => "cli_not_configured",
            Self::CliRedirect { .. } => "cli_redirect",
        }
    }
}
