//! Authentication (local accounts, API tokens, server-side sessions) and authorization (RBAC).
//!
//! [`Auth`] bundles the store, the account settings and the parsed policy; the API layer holds
//! one and asks it who a request is ([`Auth::authenticate_session`],
//! [`Auth::authenticate_bearer`]) and what that principal may do ([`Auth::authorize`]).
//!
//! Invariants:
//! - Secrets (passwords, token secrets, session ids) never appear in `Debug` output or logs:
//!   they travel as [`Secret`] / [`SessionId`], whose `Debug` is redacted.
//! - Only hashes are stored: argon2id for passwords, SHA-256 for high-entropy token secrets and
//!   session ids.
//! - A failed login never says whether the account exists.
//! - Every time-dependent operation has a form taking `now`, so tests control time; the `Auth`
//!   methods pass the wall clock.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;

use crate::config::{Capability, Config};
use crate::store::{Store, StoreError};

pub mod accounts;
pub mod oidc;
pub mod password;
pub mod project_tokens;
pub mod rbac;
pub mod session;
pub mod tokens;

pub use accounts::{AccountInfo, Accounts, INITIAL_PASSWORD_FILE, read_initial_password};
pub use password::Hasher;
pub use rbac::{Policy, RbacError};
pub use session::{SessionId, Sessions};
pub use tokens::{CreatedToken, TokenInfo, Tokens};

/// Issuer reported for local accounts and their tokens (SSO principals carry their IdP's).
pub const LOCAL_ISSUER: &str = "cairn";
/// Issuer reported for Kubernetes service accounts (their tokens are the cluster's).
pub const KUBERNETES_ISSUER: &str = "kubernetes";

/// Errors of authentication and account management.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong user name or password (deliberately not saying which).
    #[error("invalid username or password")]
    BadCredentials,
    /// No valid credential: unknown or malformed session id or token.
    #[error("not authenticated")]
    Unauthenticated,
    /// The session or token has expired.
    #[error("credentials expired")]
    Expired,
    /// Too many failed logins: the account is locked for `retry_after`.
    #[error("account locked after too many failed logins; retry in {}", crate::config::format_duration(*retry_after))]
    Locked {
        /// Time until the lock ends.
        retry_after: Duration,
    },
    /// The account is disabled in the configuration.
    #[error("account {account:?} is disabled")]
    Disabled {
        /// The account.
        account: String,
    },
    /// The account lacks the capability the operation needs (`login` or `apiKey`).
    #[error("account {account:?} does not have the {capability:?} capability")]
    MissingCapability {
        /// The account.
        account: String,
        /// The capability: `login` or `apiKey`.
        capability: &'static str,
    },
    /// No such local account (only reported to authenticated callers).
    #[error("account {account:?} does not exist")]
    AccountNotFound {
        /// The account.
        account: String,
    },
    /// No such token for this account.
    #[error("token {id:?} of account {account:?} does not exist")]
    TokenNotFound {
        /// The account.
        account: String,
        /// The token id.
        id: String,
    },
    /// The new password breaks the password rule.
    #[error("new password rejected: {0}")]
    NewPassword(password::PasswordError),
    /// The token name is empty or too long.
    #[error(
        "token name {name:?}: expected 1-{} characters",
        tokens::MAX_NAME_CHARS
    )]
    TokenName {
        /// The name given.
        name: String,
    },
    /// The token lifetime is not a duration like `30d` or `12h`.
    #[error("token expiry {input:?}: {source}")]
    Expiry {
        /// The text given.
        input: String,
        /// Why it does not parse.
        source: crate::config::DurationError,
    },
    /// The RBAC policy in the configuration does not parse.
    #[error("rbac.policy_csv: {0}")]
    Policy(#[from] RbacError),
    /// The initial admin password file could not be written, read or removed.
    #[error("initial admin password file {path}: {source}")]
    InitialPasswordFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Password hashing failed (randomness or parameters); not the caller's fault.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuthError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::BadCredentials => "bad_credentials",
            Self::Unauthenticated => "unauthenticated",
            Self::Expired => "expired",
            Self::Locked { .. } => "locked",
            Self::Disabled { .. } => "disabled",
            Self::MissingCapability { .. } => "missing_capability",
            Self::AccountNotFound { .. } => "account_not_found",
            Self::TokenNotFound { .. } => "token_not_found",
            Self::NewPassword(_) => "new_password",
            Self::TokenName { .. } => "token_name",
            Self::Expiry { .. } => "expiry",
            Self::Policy(_) => "policy",
            Self::InitialPasswordFile { .. } => "initial_password_file",
            Self::Hashing(_) => "hashing",
            Self::Store(_) => "store",
        }
    }
}

/// A secret string (password, token) whose `Debug` and `Display` are redacted. Read it with
/// [`Secret::expose`], only where it is deliberately shown or sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How a principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A local account, by password (through a session).
    Local,
    /// A local account, by API token.
    Token {
        /// The token id (not secret).
        id: String,
    },
    /// An SSO user.
    Sso {
        /// The identity provider's issuer URL.
        issuer: String,
    },
    /// An AppProject role token (`proj:<project>:<role>`), with the role's policies as read
    /// from the live AppProject when the token was presented.
    ProjectToken(Box<project_tokens::ProjectGrant>),
    /// A Kubernetes service account, by its projected token (the executor listener's routes:
    /// workflow steps and serving pods). `policy.default` never applies to it: a default role
    /// meant for people must not reach every pod of the cluster.
    ServiceAccount,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// User name: the local account name, or the SSO subject.
    pub subject: String,
    /// SSO groups (the `groups` scope); empty for local accounts.
    pub groups: Vec<String>,
    /// How it authenticated.
    pub kind: PrincipalKind,
    /// The session it came through, if any (for logout).
    pub session_id: Option<SessionId>,
}

impl Principal {
    /// A local account principal without a session.
    pub fn local(name: &str) -> Principal {
        Principal {
            subject: name.to_owned(),
            groups: Vec::new(),
            kind: PrincipalKind::Local,
            session_id: None,
        }
    }

    /// The RBAC subjects: the user name, then its groups. For an SSO principal the groups are
    /// the values of the claims named by RBAC `scopes` (Argo CD's `scopes`, default `[groups]`),
    /// chosen when the login was validated ([`oidc::principal_from_claims`]): with
    /// `scopes = [email]` the email is a subject and the `groups` claim is not.
    pub fn rbac_subjects(&self) -> Vec<&str> {
        let mut subjects = vec![self.subject.as_str()];
        subjects.extend(self.groups.iter().map(String::as_str));
        subjects
    }

    /// The session id, if the principal came through a session.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_ref().map(SessionId::as_str)
    }

    /// Whether this principal is the local account `name` (by password or by token).
    pub fn is_local_account(&self, name: &str) -> bool {
        matches!(
            self.kind,
            PrincipalKind::Local | PrincipalKind::Token { .. }
        ) && self.subject == name
    }

    /// Whether `policy.default` counts for this principal: for people and their tokens, not
    /// for Kubernetes service accounts.
    pub fn default_applies(&self) -> bool {
        !matches!(self.kind, PrincipalKind::ServiceAccount)
    }

    /// The issuer, as Argo CD's userinfo reports it.
    pub fn issuer(&self) -> &str {
        match &self.kind {
            PrincipalKind::Sso { issuer } => issuer,
            PrincipalKind::Local | PrincipalKind::Token { .. } | PrincipalKind::ProjectToken(_) => {
                LOCAL_ISSUER
            }
            PrincipalKind::ServiceAccount => KUBERNETES_ISSUER,
        }
    }
}

/// Authentication and authorization, as the API layer uses them.
#[derive(Debug)]
pub struct Auth {
    store: Store,
    accounts: Accounts,
    tokens: Tokens,
    sessions: Sessions,
    policy: Policy,
    /// The OIDC relying party, when `[oidc]` is configured.
    sso: Option<std::sync::Arc<oidc::Sso>>,
    /// Signing keys of AppProject role tokens.
    project_keys: project_tokens::ProjectKeys,
    /// AppProject role policies and their group bindings (`g, <group>, proj:<p>:<r>`), from
    /// the AppProject watch; layered over `policy` for users with groups.
    project_groups: std::sync::RwLock<std::sync::Arc<Policy>>,
}

impl Auth {
    /// Builds the auth layer from the configuration, with production password hashing. Fails
    /// when `rbac.policy_csv` does not parse.
    pub fn new(store: Store, config: &Config) -> Result<Auth, AuthError> {
        Self::with_hasher(store, config, Hasher::default())
    }

    /// As [`Auth::new`] with a chosen password hasher (tests use [`Hasher::insecure_fast`]).
    pub fn with_hasher(store: Store, config: &Config, hasher: Hasher) -> Result<Auth, AuthError> {
        let policy = Policy::parse(&config.rbac.policy_csv, config.rbac.default_role())?;
        Ok(Auth {
            accounts: Accounts::new(store.clone(), config, hasher),
            tokens: Tokens::new(store.clone()),
            project_keys: project_tokens::ProjectKeys::new(store.clone()),
            project_groups: std::sync::RwLock::new(std::sync::Arc::new(Policy::empty_overlay())),
            sessions: Sessions::new(
                store.clone(),
                config.session.idle_timeout,
                config.session.absolute_timeout,
            ),
            store,
            policy,
            sso: config.oidc.as_ref().map(|oidc| {
                let url = config.server.url.as_deref().unwrap_or_default();
                std::sync::Arc::new(oidc::Sso::new(oidc, url, &config.rbac.scopes))
            }),
        })
    }

    /// The store (for readiness checks and other modules' tables).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether the store answers (for `/readyz`).
    pub fn store_healthy(&self) -> bool {
        self.store.healthy()
    }

    /// The local accounts.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// The parsed RBAC policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Sessions end this long after login.
    pub fn session_absolute_timeout(&self) -> Duration {
        self.sessions.absolute_timeout()
    }

    /// Sessions end after this long unused.
    pub fn session_idle_timeout(&self) -> Duration {
        self.sessions.idle_timeout()
    }

    /// At first start, creates the admin password and returns it (once); `None` afterwards.
    pub async fn ensure_admin(&self) -> Result<Option<Secret>, AuthError> {
        self.accounts.ensure_admin(Timestamp::now()).await
    }

    /// Password login: on success a new session (a fresh id every time).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(Principal, SessionId), AuthError> {
        let now = Timestamp::now();
        let principal = self.accounts.verify_login(username, password, now).await?;
        let id = self.sessions.create(&principal, now).await?;
        let principal = Principal {
            session_id: Some(id.clone()),
            ..principal
        };
        Ok((principal, id))
    }

    /// The OIDC relying party, when SSO is configured.
    pub fn sso(&self) -> Option<&std::sync::Arc<oidc::Sso>> {
        self.sso.as_ref()
    }

    /// Starts a server-side session for a principal that logged in through SSO, exactly as a
    /// password login does (a fresh id, the same timeouts).
    pub async fn login_sso(
        &self,
        principal: Principal,
    ) -> Result<(Principal, SessionId), AuthError> {
        if !matches!(principal.kind, PrincipalKind::Sso { .. }) {
            return Err(AuthError::Unauthenticated);
        }
        let id = self.sessions.create(&principal, Timestamp::now()).await?;
        let principal = Principal {
            session_id: Some(id.clone()),
            ..principal
        };
        Ok((principal, id))
    }

    /// The principal of a session id (from the cookie), enforcing timeouts and re-checking that
    /// a local account is still enabled.
    pub async fn authenticate_session(&self, id: &str) -> Result<Principal, AuthError> {
        let principal = self.sessions.get(id, Timestamp::now()).await?;
        if principal.kind == PrincipalKind::Local {
            self.accounts
                .check_can(&principal.subject, Capability::Login)
                .map_err(account_gone_is_unauthenticated)?;
        }
        Ok(principal)
    }

    /// The principal of an `Authorization: Bearer` credential: an API token (`cairn_...`) or a
    /// session id (the CLI presents its session that way).
    pub async fn authenticate_bearer(&self, credential: &str) -> Result<Principal, AuthError> {
        if !credential.starts_with(tokens::TOKEN_PREFIX) {
            return self.authenticate_session(credential).await;
        }
        let record = self.tokens.verify(credential, Timestamp::now()).await?;
        self.accounts
            .check_can(&record.account, Capability::ApiKey)
            .map_err(account_gone_is_unauthenticated)?;
        Ok(Principal {
            subject: record.account,
            groups: Vec::new(),
            kind: PrincipalKind::Token { id: record.id },
            session_id: None,
        })
    }

    /// Ends a session (unknown ids are ignored).
    pub async fn logout(&self, id: &str) -> Result<(), AuthError> {
        self.sessions.delete(id).await?;
        Ok(())
    }

    /// Whether `principal` may do `action` on `object` of `resource`. A project token is
    /// judged by its role's live policies (with `policy.csv` and the default role); other
    /// principals by `policy.csv` plus the AppProject roles their groups are bound to. For a
    /// service account only what is granted to its subjects by name counts, never
    /// `policy.default` ([`Principal::default_applies`]).
    pub fn authorize(
        &self,
        principal: &Principal,
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        let overlay = self.overlay_for(principal);
        let subjects = principal.rbac_subjects();
        if principal.default_applies() {
            self.policy
                .enforce_with(overlay.as_deref(), &subjects, resource, action, object)
        } else {
            self.policy.enforce_granted_with(
                overlay.as_deref(),
                &subjects,
                resource,
                action,
                object,
            )
        }
    }

    /// Whether `principal` may do `action` on some object of `resource` (list routes).
    pub fn authorize_any(&self, principal: &Principal, resource: &str, action: &str) -> bool {
        let overlay = self.overlay_for(principal);
        let subjects = principal.rbac_subjects();
        if principal.default_applies() {
            self.policy
                .can_any_with(overlay.as_deref(), &subjects, resource, action)
        } else {
            self.policy
                .can_any_granted_with(overlay.as_deref(), &subjects, resource, action)
        }
    }

    /// The policy layered over `policy.csv` for `principal`: its role's live policies for a
    /// project token; otherwise the AppProject role bindings, when there are any.
    fn overlay_for(&self, principal: &Principal) -> Option<std::sync::Arc<Policy>> {
        match &principal.kind {
            PrincipalKind::ProjectToken(grant) => Some(grant.overlay()),
            _ => {
                let groups = self.project_groups();
                (!groups.is_empty()).then_some(groups)
            }
        }
    }

    /// Signing keys of AppProject role tokens.
    pub fn project_keys(&self) -> &project_tokens::ProjectKeys {
        &self.project_keys
    }

    /// Replaces the AppProject role bindings used for users with groups by those of
    /// `projects` (the AppProject watch calls this on every change). Returns the problems
    /// found (malformed roles, policies outside their project); those grant nothing.
    pub fn set_project_roles(
        &self,
        projects: &[crate::gitops::types::AppProject],
    ) -> Vec<project_tokens::ProjectTokenError> {
        let (overlay, problems) = project_tokens::group_overlay(projects);
        let overlay = std::sync::Arc::new(overlay);
        match self.project_groups.write() {
            Ok(mut guard) => *guard = overlay,
            Err(poisoned) => *poisoned.into_inner() = overlay,
        }
        problems
    }

    fn project_groups(&self) -> std::sync::Arc<Policy> {
        match self.project_groups.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Sets `target`'s password. The caller proves itself with its own current password (as
    /// Argo CD's `account update-password`), even when changing another account; authorizing
    /// the change is the caller's job. Ends all sessions of `target`.
    pub async fn change_password(
        &self,
        actor: &Principal,
        target: &str,
        current_password: &str,
        new_password: &str,
    ) -> Result<(), AuthError> {
        if !matches!(
            actor.kind,
            PrincipalKind::Local | PrincipalKind::Token { .. }
        ) {
            return Err(AuthError::MissingCapability {
                account: actor.subject.clone(),
                capability: "login",
            });
        }
        self.accounts
            .change_password(
                &actor.subject,
                current_password,
                target,
                new_password,
                Timestamp::now(),
            )
            .await?;
        self.sessions.delete_for_subject(target).await?;
        Ok(())
    }

    /// Creates an API token for `account`; `expires_in` is a duration like `30d` (none: never
    /// expires). The secret is in the result once and never again.
    pub async fn create_token(
        &self,
        account: &str,
        name: &str,
        expires_in: Option<&str>,
    ) -> Result<CreatedToken, AuthError> {
        let lifetime = expires_in
            .map(|input| {
                crate::config::parse_duration(input).map_err(|source| AuthError::Expiry {
                    input: input.to_owned(),
                    source,
                })
            })
            .transpose()?;
        self.accounts.check_can(account, Capability::ApiKey)?;
        self.tokens
            .create(account, name, lifetime, Timestamp::now())
            .await
    }

    /// The tokens of `account` (never their secrets).
    pub async fn list_tokens(&self, account: &str) -> Result<Vec<TokenInfo>, AuthError> {
        self.accounts.require(account)?;
        self.tokens.list(account)
    }

    /// Revokes token `id` of `account`.
    pub async fn revoke_token(&self, account: &str, id: &str) -> Result<(), AuthError> {
        self.tokens.revoke(account, id).await
    }

    /// All local accounts (never password material).
    pub async fn list_accounts(&self) -> Result<Vec<AccountInfo>, AuthError> {
        self.accounts.list()
    }

    /// Housekeeping the server runs periodically: removes sessions past their timeouts and
    /// login-failure records that no longer matter. Returns how many records were removed.
    pub async fn purge_expired_sessions(&self) -> Result<usize, AuthError> {
        let now = Timestamp::now();
        let sessions = self.sessions.purge_expired(now).await?;
        let failures = self.accounts.purge_failures(now).await?;
        Ok(sessions + failures)
    }
}

/// A credential of an account removed from the configuration is simply no longer valid.
fn account_gone_is_unauthenticated(e: AuthError) -> AuthError {
    match e {
        AuthError::AccountNotFound { .. } => AuthError::Unauthenticated,
        other => other,
    }
}

/// `ts + d`, saturating at the end of representable time.
pub(crate) fn add(ts: Timestamp, d: Duration) -> Timestamp {
    ts.saturating_add(d).unwrap_or(Timestamp::MAX)
}

/// How long from `now` until `later` (zero if `later` is not after `now`).
pub(crate) fn until(now: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;
