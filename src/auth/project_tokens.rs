//! AppProject roles and their JWT tokens (Argo CD's `spec.roles`, `argocd proj role
//! create-token`).
//!
//! What this module owns:
//! - Reading roles out of an AppProject (`spec.roles[]`: `name`, `policies`, `groups`,
//!   `jwtTokens`) and the issued tokens out of `status.jwtTokensByRole.<role>.items`.
//! - Validating role policies as Argo CD does: `p, proj:<project>:<role>, <resource>, <action>,
//!   <object>, <allow|deny>` where the subject is the role itself, the resource one of
//!   [`ROLE_RESOURCES`], and the object belongs to the project (`<project>/<...>`, or the
//!   project's own name for `projects`). A line that breaks this grants nothing.
//! - The RBAC overlays built from live AppProjects: [`group_overlay`] (every project's valid role
//!   policies plus `g, <group>, proj:<project>:<role>` for each role group, used for SSO users)
//!   and [`ProjectGrant`] (one role's policies, carried by a project-token principal).
//! - The tokens: HS256 JWTs with `sub = proj:<project>:<role>`, `iat`, optional `exp`, `jti` (the
//!   token id) and `iss = cairn`, signed by a 256-bit key kept in the store
//!   ([`ProjectKeys`], table `project_signing_keys`).
//! - The status patches that list and unlist tokens ([`add_token_patch`],
//!   [`remove_token_patch`]).
//!
//! Invariants:
//! - A token authenticates only while it is listed on its role (status `jwtTokensByRole`, or the
//!   role's legacy `jwtTokens` in the spec, as Argo CD reads both): unlisting it is revoking it.
//! - A token carries no permission: the role's policies are read from the live AppProject on
//!   every request, so a policy edit applies to existing tokens at once.
//! - Verification accepts exactly `HS256` with a key cairn holds, by `kid`: the current key, or
//!   the previous one until the grace period its rotation gave it ends (none by default, as
//!   Argo CD, where a new `server.secretkey` invalidates every token).
//! - The signing key's bytes never appear in `Debug` output or logs; tokens are never logged.
//!
//! HS256 rather than an asymmetric algorithm: cairn is the only party that issues and verifies
//! these tokens (as Argo CD with `server.secretkey`), so a shared secret kept in the store is
//! enough, and `ring::hmac` verifies in constant time.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::rbac::{self, Policy};
use crate::gitops::types::AppProject;
use crate::store::{JsonTable, Store, StoreError, tables};

/// Subjects of project roles start with this: `proj:<project>:<role>`.
pub const SUBJECT_PREFIX: &str = "proj:";
/// The `iss` claim of cairn's project tokens.
pub const ISSUER: &str = "cairn";
/// The only signature algorithm issued and accepted.
pub const ALGORITHM: &str = "HS256";
/// Longest token accepted for verification (bytes); anything longer is not one of ours.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Resources a role policy may name (Argo CD's project-scoped resources).
pub const ROLE_RESOURCES: [&str; 7] = [
    rbac::resources::APPLICATIONS,
    rbac::resources::APPLICATIONSETS,
    rbac::resources::LOGS,
    rbac::resources::EXEC,
    rbac::resources::CLUSTERS,
    rbac::resources::REPOSITORIES,
    rbac::resources::PROJECTS,
];

const KEY_BYTES: usize = 32;
const CURRENT_KEY: &str = "current";
const PREVIOUS_KEY: &str = "previous";

/// Errors of project roles and tokens.
#[derive(Debug, thiserror::Error)]
pub enum ProjectTokenError {
    /// The credential is not a compact JWT (three base64url parts with JSON header and claims).
    #[error("project token: malformed ({0})")]
    Malformed(&'static str),
    /// The header names another algorithm than HS256 (`none` included).
    #[error("project token: algorithm {alg:?} is not accepted (expected HS256)")]
    Algorithm {
        /// The `alg` of the header.
        alg: String,
    },
    /// The `kid` names no key cairn holds (rotated away, or never issued here).
    #[error("project token: signing key {kid:?} is unknown or past its grace period")]
    UnknownKey {
        /// The `kid` of the header.
        kid: String,
    },
    /// The signature does not verify.
    #[error("project token: bad signature")]
    Signature,
    /// `exp` is past.
    #[error("project token: expired")]
    Expired,
    /// `sub` is not `proj:<project>:<role>`, or `iss` is not cairn.
    #[error("project token: subject {sub:?} is not proj:<project>:<role> issued by cairn")]
    Subject {
        /// The `sub` claim.
        sub: String,
    },
    /// The token is not listed on its role any more (deleted: revoked).
    #[error(
        "project token {id:?} of proj:{project}:{role} is revoked (not listed in the AppProject)"
    )]
    Revoked {
        /// The project.
        project: String,
        /// The role.
        role: String,
        /// The token id (`jti`) or issued-at.
        id: String,
    },
    /// The AppProject does not exist.
    #[error("AppProject {project:?} not found")]
    ProjectNotFound {
        /// The project.
        project: String,
    },
    /// The role does not exist in the AppProject's `spec.roles`.
    #[error("AppProject {project:?} has no role {role:?} in spec.roles")]
    RoleNotFound {
        /// The project.
        project: String,
        /// The role.
        role: String,
    },
    /// A `spec.roles` entry is not a role object.
    #[error("AppProject {project:?} spec.roles[{index}]: {reason}")]
    Role {
        /// The project.
        project: String,
        /// Index in `spec.roles`.
        index: usize,
        /// What was expected.
        reason: String,
    },
    /// A role policy line breaks Argo CD's rules for project policies (it grants nothing).
    #[error("AppProject {project:?} role {role:?} policy {line:?}: {reason}")]
    Policy {
        /// The project.
        project: String,
        /// The role.
        role: String,
        /// The policy line.
        line: String,
        /// What was expected.
        reason: String,
    },
    /// No listed token of the role has this issued-at or id.
    #[error("AppProject {project:?} role {role:?} has no token with issued-at or id {key:?}")]
    TokenNotFound {
        /// The project.
        project: String,
        /// The role.
        role: String,
        /// The issued-at (Unix seconds) or id asked for.
        key: String,
    },
    /// `expiresIn` is not a duration.
    #[error("expiresIn {input:?}: {source}")]
    Expiry {
        /// The text given.
        input: String,
        /// Why it does not parse.
        source: crate::config::DurationError,
    },
    /// A token id given by the caller is empty, too long or not printable ASCII.
    #[error("token id {id:?}: expected 1-128 printable ASCII characters without spaces")]
    TokenId {
        /// The id given.
        id: String,
    },
    /// Validated role policies did not parse as `policy.csv` (a bug; nothing is granted).
    #[error("project role policies: {0}")]
    Overlay(rbac::RbacError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ProjectTokenError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Algorithm { .. } => "algorithm",
            Self::UnknownKey { .. } => "unknown_key",
            Self::Signature => "signature",
            Self::Expired => "expired",
            Self::Subject { .. } => "subject",
            Self::Revoked { .. } => "revoked",
            Self::ProjectNotFound { .. } => "project_not_found",
            Self::RoleNotFound { .. } => "role_not_found",
            Self::Role { .. } => "role",
            Self::Policy { .. } => "policy",
            Self::TokenNotFound { .. } => "token_not_found",
            Self::Expiry { .. } => "expiry",
            Self::TokenId { .. } => "token_id",
            Self::Overlay(_) => "overlay",
            Self::Store(_) => "store",
        }
    }

    /// Whether this is a verification failure of a presented token (answered 401).
    pub fn is_unauthenticated(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_)
                | Self::Algorithm { .. }
                | Self::UnknownKey { .. }
                | Self::Signature
                | Self::Expired
                | Self::Subject { .. }
                | Self::Revoked { .. }
        )
    }
}

/// The RBAC subject of a project role.
pub fn subject(project: &str, role: &str) -> String {
    format!("{SUBJECT_PREFIX}{project}:{role}")
}

/// `(project, role)` of a `proj:<project>:<role>` subject.
pub fn parse_subject(sub: &str) -> Option<(&str, &str)> {
    let rest = sub.strip_prefix(SUBJECT_PREFIX)?;
    let (project, role) = rest.split_once(':')?;
    (!project.is_empty() && !role.is_empty() && !role.contains(':')).then_some((project, role))
}

/// One issued token as listed on its role (Argo CD's `JWTToken`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtToken {
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds; absent (or 0) for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// The token id (`jti`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

impl JwtToken {
    /// Whether `key` names this token: its id, or its issued-at in decimal.
    pub fn is_named(&self, key: &str) -> bool {
        (!self.id.is_empty() && self.id == key) || self.iat.to_string() == key
    }
}

/// One role of an AppProject (Argo CD's `ProjectRole`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    /// Role name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Policy lines (`p, proj:<project>:<role>, ...`).
    #[serde(default)]
    pub policies: Vec<String>,
    /// IdP groups bound to the role.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Tokens listed in the spec (Argo CD's legacy place; the status is the current one).
    #[serde(default)]
    pub jwt_tokens: Vec<JwtToken>,
}

/// The project's name (`metadata.name`, empty when unset).
pub fn project_name(project: &AppProject) -> &str {
    project.metadata.name.as_deref().unwrap_or_default()
}

/// The roles of `project`. A malformed `spec.roles` entry is an error naming its index.
pub fn roles(project: &AppProject) -> Result<Vec<ProjectRole>, ProjectTokenError> {
    let name = project_name(project);
    project
        .spec
        .roles
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, raw)| {
            let role: ProjectRole =
                serde_json::from_value(raw.clone()).map_err(|e| ProjectTokenError::Role {
                    project: name.to_owned(),
                    index,
                    reason: format!("expected {{name, policies, groups, jwtTokens}}: {e}"),
                })?;
            if !valid_role_name(&role.name) {
                return Err(ProjectTokenError::Role {
                    project: name.to_owned(),
                    index,
                    reason: format!(
                        "name {:?}: expected letters, digits, `-`, `_` or `.` (1-63 characters)",
                        role.name
                    ),
                });
            }
            Ok(role)
        })
        .collect()
}

/// Argo CD's role name rule (a DNS-label-like token without `:` or `,`).
fn valid_role_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The role named `role` of `project`.
pub fn find_role(project: &AppProject, role: &str) -> Result<ProjectRole, ProjectTokenError> {
    roles(project)?
        .into_iter()
        .find(|r| r.name == role)
        .ok_or_else(|| ProjectTokenError::RoleNotFound {
            project: project_name(project).to_owned(),
            role: role.to_owned(),
        })
}

/// Checks one role policy line against Argo CD's rules for project policies. Returns the
/// normalized line (fields trimmed, joined by `, `).
pub fn validate_policy(project: &str, role: &str, line: &str) -> Result<String, String> {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    let [kind, sub, resource, action, object, effect] = fields.as_slice() else {
        return Err(format!(
            "expected 6 comma-separated fields `p, proj:{project}:{role}, <resource>, <action>, <object>, <allow|deny>`, found {}",
            fields.len()
        ));
    };
    if *kind != "p" {
        return Err(format!("line type {kind:?}: expected `p`"));
    }
    let want = subject(project, role);
    if *sub != want {
        return Err(format!("subject {sub:?}: expected {want:?}"));
    }
    if !ROLE_RESOURCES.contains(resource) {
        return Err(format!(
            "resource {resource:?}: expected one of {}",
            ROLE_RESOURCES.join(", ")
        ));
    }
    if action.is_empty() || action.chars().any(char::is_whitespace) {
        return Err(format!("action {action:?}: expected a non-empty word"));
    }
    let scoped = if *resource == rbac::resources::PROJECTS {
        *object == project
    } else {
        object
            .strip_prefix(project)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty() && !rest.chars().any(char::is_whitespace))
    };
    if !scoped {
        let expected = if *resource == rbac::resources::PROJECTS {
            format!("{project:?}")
        } else {
            format!("\"{project}/<name or pattern>\"")
        };
        return Err(format!(
            "object {object:?}: a role may only name its own project's objects ({expected})"
        ));
    }
    if !matches!(*effect, "allow" | "deny") {
        return Err(format!("effect {effect:?}: expected `allow` or `deny`"));
    }
    Ok(fields.join(", "))
}

/// The valid policy lines of `role` (normalized) and the problems of the others.
pub fn role_policy_lines(
    project: &str,
    role: &ProjectRole,
) -> (Vec<String>, Vec<ProjectTokenError>) {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for line in role.policies.iter().filter(|l| !l.trim().is_empty()) {
        match validate_policy(project, &role.name, line) {
            Ok(valid) => lines.push(valid),
            Err(reason) => problems.push(ProjectTokenError::Policy {
                project: project.to_owned(),
                role: role.name.clone(),
                line: line.clone(),
                reason,
            }),
        }
    }
    (lines, problems)
}

/// The overlay for SSO users: every valid role policy of every project, plus
/// `g, <group>, proj:<project>:<role>` for each group of each role. Problems (malformed roles,
/// policies breaking the project rules) are returned beside it; they grant nothing.
pub fn group_overlay(projects: &[AppProject]) -> (Policy, Vec<ProjectTokenError>) {
    let mut csv = String::new();
    let mut problems = Vec::new();
    for project in projects {
        let name = project_name(project);
        let roles = match roles(project) {
            Ok(roles) => roles,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for role in roles.iter().filter(|r| !r.groups.is_empty()) {
            let (lines, bad) = role_policy_lines(name, role);
            problems.extend(bad);
            let sub = subject(name, &role.name);
            let groups = role.groups.iter().map(|g| g.trim()).filter(|g| {
                !g.is_empty() && !g.contains([',', '\n']) && !g.contains(char::is_whitespace)
            });
            for line in lines {
                csv.push_str(&line);
                csv.push('\n');
            }
            for group in groups {
                csv.push_str(&format!("g, {group}, {sub}\n"));
            }
        }
    }
    let overlay = overlay_of(&csv, &mut problems);
    (overlay, problems)
}

fn overlay_of(csv: &str, problems: &mut Vec<ProjectTokenError>) -> Policy {
    match Policy::overlay(csv) {
        Ok(policy) => policy,
        // Validated lines always parse; if they ever do not, nothing is granted.
        Err(e) => {
            problems.push(ProjectTokenError::Overlay(e));
            Policy::empty_overlay()
        }
    }
}

/// What a project-token principal may do: one role's valid policies, read from the live
/// AppProject when the token was presented.
#[derive(Debug, Clone)]
pub struct ProjectGrant {
    /// The project.
    pub project: String,
    /// The role.
    pub role: String,
    /// The token id (`jti`), or its issued-at when it has none.
    pub token_id: String,
    lines: Vec<String>,
    overlay: Arc<Policy>,
}

impl PartialEq for ProjectGrant {
    fn eq(&self, other: &Self) -> bool {
        self.project == other.project
            && self.role == other.role
            && self.token_id == other.token_id
            && self.lines == other.lines
    }
}

impl Eq for ProjectGrant {}

impl ProjectGrant {
    /// The RBAC subject, `proj:<project>:<role>`.
    pub fn subject(&self) -> String {
        subject(&self.project, &self.role)
    }

    /// The role's valid policy lines.
    pub fn policies(&self) -> &[String] {
        &self.lines
    }

    /// The role's policies as an RBAC overlay.
    pub fn overlay(&self) -> Arc<Policy> {
        Arc::clone(&self.overlay)
    }
}

/// The claims of a project token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// `proj:<project>:<role>`.
    pub sub: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expiry, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Token id.
    #[serde(default)]
    pub jti: String,
    /// Issuer: `cairn`.
    pub iss: String,
}

/// The grant for verified `claims` given the live `project` (`None`: it does not exist): the
/// role must exist and list the token. Pure.
pub fn grant(
    claims: &Claims,
    project: Option<&AppProject>,
) -> Result<ProjectGrant, ProjectTokenError> {
    let Some((project_name_, role_name)) = parse_subject(&claims.sub) else {
        return Err(ProjectTokenError::Subject {
            sub: claims.sub.clone(),
        });
    };
    let revoked = || ProjectTokenError::Revoked {
        project: project_name_.to_owned(),
        role: role_name.to_owned(),
        id: token_key(claims),
    };
    let Some(project) = project else {
        return Err(revoked());
    };
    let role = match find_role(project, role_name) {
        Ok(role) => role,
        Err(ProjectTokenError::RoleNotFound { .. }) => return Err(revoked()),
        Err(e) => return Err(e),
    };
    if !listed_tokens(project, &role)
        .iter()
        .any(|t| lists(t, claims))
    {
        return Err(revoked());
    }
    let (lines, mut problems) = role_policy_lines(project_name_, &role);
    let overlay = overlay_of(&lines.join("\n"), &mut problems);
    for problem in &problems {
        tracing::warn!(error = %problem, "project role policy ignored");
    }
    Ok(ProjectGrant {
        project: project_name_.to_owned(),
        role: role_name.to_owned(),
        token_id: token_key(claims),
        lines,
        overlay: Arc::new(overlay),
    })
}

fn token_key(claims: &Claims) -> String {
    if claims.jti.is_empty() {
        claims.iat.to_string()
    } else {
        claims.jti.clone()
    }
}

/// Whether the listed entry `t` is the token of `claims`: same id when both carry one, else the
/// same issued-at (Argo CD's tokens before ids).
fn lists(t: &JwtToken, claims: &Claims) -> bool {
    if !t.id.is_empty() && !claims.jti.is_empty() {
        t.id == claims.jti && t.iat == claims.iat
    } else {
        t.iat == claims.iat
    }
}

/// Tokens of `role` listed in the status (`jwtTokensByRole`), then those only in the spec.
pub fn listed_tokens(project: &AppProject, role: &ProjectRole) -> Vec<JwtToken> {
    let mut out = status_tokens(project, &role.name);
    for t in &role.jwt_tokens {
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    out
}

/// Tokens of `role` in `status.jwtTokensByRole.<role>.items` (entries that do not decode are
/// skipped: they cannot name a token).
pub fn status_tokens(project: &AppProject, role: &str) -> Vec<JwtToken> {
    project
        .status
        .as_ref()
        .and_then(|s| s.pointer(&format!("/jwtTokensByRole/{}/items", escape_pointer(role))))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| serde_json::from_value::<JwtToken>(i.clone()).ok())
                .map(|mut t| {
                    if t.exp == Some(0) {
                        t.exp = None;
                    }
                    t
                })
                .collect()
        })
        .unwrap_or_default()
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// The issued-at for a new token of `role` at `now`: `now`, or the next second not already
/// used by a listed token (issued-at names a token, so it must be unique per role).
pub fn next_iat(now: i64, listed: &[JwtToken]) -> i64 {
    let mut iat = now;
    // At most one step per listed token.
    for _ in 0..=listed.len() {
        if !listed.iter().any(|t| t.iat == iat) {
            break;
        }
        iat += 1;
    }
    iat
}

/// The JSON merge patch listing `token` on `role` in the status, guarded by the project's
/// `resourceVersion` (a concurrent change makes it fail with 409 instead of losing a token).
pub fn add_token_patch(project: &AppProject, role: &str, token: &JwtToken) -> Value {
    let mut items = status_tokens(project, role);
    items.push(token.clone());
    json!({
        "metadata": { "resourceVersion": project.metadata.resource_version },
        "status": { "jwtTokensByRole": { role: { "items": items } } },
    })
}

/// The JSON merge patch unlisting every token of `role` named `key` (issued-at or id) from the
/// status and from the role's legacy `jwtTokens`; `TokenNotFound` when none is named.
pub fn remove_token_patch(
    project: &AppProject,
    role: &str,
    key: &str,
) -> Result<Value, ProjectTokenError> {
    let found = find_role(project, role)?;
    let status = status_tokens(project, role);
    let in_status = status.iter().any(|t| t.is_named(key));
    let in_spec = found.jwt_tokens.iter().any(|t| t.is_named(key));
    if !in_status && !in_spec {
        return Err(ProjectTokenError::TokenNotFound {
            project: project_name(project).to_owned(),
            role: role.to_owned(),
            key: key.to_owned(),
        });
    }
    let mut patch = json!({
        "metadata": { "resourceVersion": project.metadata.resource_version },
    });
    if in_status {
        let kept: Vec<&JwtToken> = status.iter().filter(|t| !t.is_named(key)).collect();
        patch["status"] = json!({ "jwtTokensByRole": { role: { "items": kept } } });
    }
    if in_spec {
        // A merge patch replaces arrays whole: every role is written back as it was (unknown
        // fields included), only this role's jwtTokens filtered.
        let roles: Vec<Value> = project
            .spec
            .roles
            .iter()
            .flatten()
            .map(|raw| {
                let mut raw = raw.clone();
                if raw.get("name").and_then(Value::as_str) == Some(role)
                    && let Some(tokens) = raw.get_mut("jwtTokens").and_then(Value::as_array_mut)
                {
                    tokens.retain(|t| {
                        serde_json::from_value::<JwtToken>(t.clone())
                            .map_or(true, |t| !t.is_named(key))
                    });
                }
                raw
            })
            .collect();
        patch["spec"] = json!({ "roles": roles });
    }
    Ok(patch)
}

/// A token id given by the caller (`--id`): printable ASCII without spaces, 1-128 characters.
pub fn check_token_id(id: &str) -> Result<(), ProjectTokenError> {
    let ok = !id.is_empty() && id.len() <= 128 && id.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(ProjectTokenError::TokenId { id: id.to_owned() })
    }
}

/// A random UUID (version 4) for `jti`, as `argocd` generates by default.
pub fn random_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `expiresIn` (`10m`, `12h`, `7d`) as a duration; `None` or empty: no expiry.
pub fn parse_expiry(input: Option<&str>) -> Result<Option<Duration>, ProjectTokenError> {
    match input.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(text) => crate::config::parse_duration(text)
            .map(Some)
            .map_err(|source| ProjectTokenError::Expiry {
                input: text.to_owned(),
                source,
            }),
    }
}

// ---- signing -------------------------------------------------------------------------------

/// A signing key: its id (`kid`) and 256 secret bits. `Debug` never shows the bits.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id, public (in every token's header).
    pub kid: String,
    secret: [u8; KEY_BYTES],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A key from its id and bits (tests, and the store's records).
    pub fn new(kid: String, secret: [u8; KEY_BYTES]) -> SigningKey {
        SigningKey { kid, secret }
    }

    /// A fresh random key.
    pub fn generate() -> SigningKey {
        SigningKey {
            kid: hex::encode(rand::random::<[u8; 8]>()),
            secret: rand::random(),
        }
    }

    fn hmac(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.secret)
    }
}

/// The keys a token may be verified with: the current one, and the previous one until
/// `previous_until` (Unix seconds).
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    /// The key new tokens are signed with.
    pub current: Option<SigningKey>,
    /// The key before the last rotation, and when it stops verifying.
    pub previous: Option<(SigningKey, i64)>,
}

impl KeyRing {
    fn key(&self, kid: &str, now: i64) -> Option<&SigningKey> {
        if let Some(k) = self.current.as_ref().filter(|k| k.kid == kid) {
            return Some(k);
        }
        self.previous
            .as_ref()
            .filter(|(k, until)| k.kid == kid && now < *until)
            .map(|(k, _)| k)
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: String,
}

/// Signs `claims` with `key`: a compact HS256 JWT.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    let header = Header {
        alg: ALGORITHM.to_owned(),
        typ: Some("JWT".to_owned()),
        kid: key.kid.clone(),
    };
    // Serializing these plain structs cannot fail.
    let h = serde_json::to_vec(&header).unwrap_or_default();
    let c = serde_json::to_vec(claims).unwrap_or_default();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(h),
        URL_SAFE_NO_PAD.encode(c)
    );
    let tag = hmac::sign(&key.hmac(), signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Whether a bearer credential has the shape of a JWT (two dots); session ids and API tokens
/// never contain one.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.matches('.').count() == 2
}

/// Verifies `token` against `keys` at `now` (Unix seconds): shape, HS256, known `kid`,
/// signature (constant time), `exp`, `iss` and the `proj:<project>:<role>` subject. Whether
/// the token is still listed is [`grant`]'s job, with the live AppProject.
pub fn verify(token: &str, keys: &KeyRing, now: i64) -> Result<Claims, ProjectTokenError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ProjectTokenError::Malformed("longer than 4096 bytes"));
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProjectTokenError::Malformed(
            "expected three dot-separated parts",
        ));
    };
    let header: Header = decode_json(h64, "header")?;
    if header.alg != ALGORITHM {
        return Err(ProjectTokenError::Algorithm { alg: header.alg });
    }
    let key = keys
        .key(&header.kid, now)
        .ok_or_else(|| ProjectTokenError::UnknownKey {
            kid: header.kid.clone(),
        })?;
    let signature = URL_SAFE_NO_PAD
        .decode(s64)
        .map_err(|_| ProjectTokenError::Malformed("signature is not base64url"))?;
    let signing_input = &token[..h64.len() + 1 + c64.len()];
    hmac::verify(&key.hmac(), signing_input.as_bytes(), &signature)
        .map_err(|_| ProjectTokenError::Signature)?;
    let claims: Claims = decode_json(c64, "claims")?;
    if claims.exp.is_some_and(|exp| exp != 0 && now >= exp) {
        return Err(ProjectTokenError::Expired);
    }
    if claims.iss != ISSUER || parse_subject(&claims.sub).is_none() {
        return Err(ProjectTokenError::Subject { sub: claims.sub });
    }
    Ok(claims)
}

fn decode_json<T: serde::de::DeserializeOwned>(
    part: &str,
    what: &'static str,
) -> Result<T, ProjectTokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| {
        ProjectTokenError::Malformed(if what == "header" {
            "header is not base64url"
        } else {
            "claims are not base64url"
        })
    })?;
    serde_json::from_slice(&bytes).map_err(|_| {
        ProjectTokenError::Malformed(if what == "header" {
            "header is not a JWT header"
        } else {
            "claims are not JWT claims"
        })
    })
}

// ---- the store -----------------------------------------------------------------------------

/// A signing key as stored in `project_signing_keys` (`current`, `previous`).
#[derive(Clone, Serialize, Deserialize)]
struct KeyRecord {
    kid: String,
    /// The 32 key bytes, base64url.
    secret: String,
    created_at: Timestamp,
    /// Only for `previous`: when it stops verifying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    valid_until: Option<Timestamp>,
}

impl KeyRecord {
    fn from_key(key: &SigningKey, now: Timestamp) -> KeyRecord {
        KeyRecord {
            kid: key.kid.clone(),
            secret: URL_SAFE_NO_PAD.encode(key.secret),
            created_at: now,
            valid_until: None,
        }
    }

    fn key(&self) -> Option<SigningKey> {
        let bytes = URL_SAFE_NO_PAD.decode(&self.secret).ok()?;
        let secret: [u8; KEY_BYTES] = bytes.try_into().ok()?;
        Some(SigningKey::new(self.kid.clone(), secret))
    }
}

const KEYS: JsonTable<KeyRecord> = JsonTable::new(tables::PROJECT_SIGNING_KEYS);

/// What a rotation left behind (no key bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatedKey {
    /// The new key's id.
    pub kid: String,
    /// The previous key's id, if it still verifies.
    pub previous_kid: Option<String>,
    /// Until when the previous key verifies.
    pub previous_valid_until: Option<Timestamp>,
}

/// The project-token signing keys in the store.
#[derive(Debug, Clone)]
pub struct ProjectKeys {
    store: Store,
}

impl ProjectKeys {
    /// Keys kept in `store`.
    pub fn new(store: Store) -> ProjectKeys {
        ProjectKeys { store }
    }

    /// The keys as stored now (empty before the first token was issued).
    pub fn load(&self) -> Result<KeyRing, StoreError> {
        self.store.read(|txn| {
            let read = |name: &str| match KEYS.get(txn, name) {
                Err(StoreError::Redb(e)) if matches!(*e, redb::Error::TableDoesNotExist(_)) => {
                    Ok(None)
                }
                other => other,
            };
            let current = read(CURRENT_KEY)?.and_then(|r| r.key());
            let previous = read(PREVIOUS_KEY)?.and_then(|r| {
                let until = r.valid_until?.as_second();
                r.key().map(|k| (k, until))
            });
            Ok(KeyRing { current, previous })
        })
    }

    /// The current key, created (durably) on first use.
    pub async fn current(&self, now: Timestamp) -> Result<SigningKey, StoreError> {
        if let Some(key) = self.load()?.current {
            return Ok(key);
        }
        let fresh = KeyRecord::from_key(&SigningKey::generate(), now);
        let record = self
            .store
            .write(move |txn| -> Result<KeyRecord, StoreError> {
                // Another caller may have created it first: keep theirs.
                if let Some(existing) = KEYS.get_in(txn, CURRENT_KEY)? {
                    return Ok(existing);
                }
                KEYS.insert(txn, CURRENT_KEY, &fresh)?;
                Ok(fresh.clone())
            })
            .await?;
        record.key().ok_or(StoreError::WriterStopped)
    }

    /// Replaces the current key by a new one. With a non-zero `grace` the old key keeps
    /// verifying tokens until `now + grace`; with zero every token issued so far stops working
    /// at once (Argo CD's behaviour when `server.secretkey` changes).
    pub async fn rotate(&self, grace: Duration, now: Timestamp) -> Result<RotatedKey, StoreError> {
        let fresh = KeyRecord::from_key(&SigningKey::generate(), now);
        let until = super::add(now, grace);
        self.store
            .write(move |txn| -> Result<RotatedKey, StoreError> {
                let old = KEYS.get_in(txn, CURRENT_KEY)?;
                KEYS.insert(txn, CURRENT_KEY, &fresh)?;
                let previous = match old {
                    Some(mut old) if !grace.is_zero() => {
                        old.valid_until = Some(until);
                        KEYS.insert(txn, PREVIOUS_KEY, &old)?;
                        Some(old.kid)
                    }
                    _ => {
                        KEYS.remove(txn, PREVIOUS_KEY)?;
                        None
                    }
                };
                Ok(RotatedKey {
                    kid: fresh.kid.clone(),
                    previous_valid_until: previous.as_ref().map(|_| until),
                    previous_kid: previous,
                })
            })
            .await
    }
}

/// A new token's listing entry and its signed text.
#[derive(Clone)]
pub struct IssuedToken {
    /// The entry to list on the role.
    pub entry: JwtToken,
    /// The JWT, shown to the caller once.
    pub token: super::Secret,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("entry", &self.entry)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Signs a token for `role` of `project` at `now` (Unix seconds), with id `id` (a random UUID
/// when `None`) and an optional lifetime; `listed` are the role's tokens (for a unique iat).
pub fn issue(
    key: &SigningKey,
    project: &str,
    role: &str,
    id: Option<&str>,
    lifetime: Option<Duration>,
    listed: &[JwtToken],
    now: i64,
) -> Result<IssuedToken, ProjectTokenError> {
    let id = match id.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => {
            check_token_id(id)?;
            id.to_owned()
        }
        None => random_id(),
    };
    let iat = next_iat(now, listed);
    let exp = lifetime.map(|d| iat.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)));
    let claims = Claims {
        sub: subject(project, role),
        iat,
        exp,
        jti: id.clone(),
        iss: ISSUER.to_owned(),
    };
    Ok(IssuedToken {
        entry: JwtToken { iat, exp, id },
        token: super::Secret::new(sign(key, &claims)),
    })
}

/// Tokens by role, as listed (status first, then the spec's legacy lists).
pub fn tokens_by_role(
    project: &AppProject,
) -> Result<BTreeMap<String, Vec<JwtToken>>, ProjectTokenError> {
    Ok(roles(project)?
        .iter()
        .map(|r| (r.name.clone(), listed_tokens(project, r)))
        .collect())
}

#[cfg(test)]
mod tests;
