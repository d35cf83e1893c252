//! The `[oidc]` section of `cairn.toml`: Argo CD's `oidc.config` keys, with their names and
//! meanings.
//!
//! ```toml
//! [oidc]
//! name = "Dex"
//! issuer = "https://dex.example.com/dex"
//! clientID = "cairn"
//! clientSecretFile = "/etc/cairn/oidc-secret"   # or clientSecretEnv = "CAIRN_OIDC_SECRET",
//! # or clientSecretRef = { namespace = "argocd", name = "cairn-oidc", key = "clientSecret" }
//! cliClientID = "cairn-cli"
//! requestedScopes = ["openid", "profile", "email", "groups"]
//! requestedIDTokenClaims = { groups = { essential = true } }
//! allowedAudiences = []
//! rootCAFile = "/etc/cairn/idp-ca.pem"          # or rootCA = "-----BEGIN CERTIFICATE-----..."
//! logoutURL = "https://dex.example.com/logout?redirect={{logoutRedirectURL}}"
//! enableUserInfoGroups = false
//! userInfoPath = "/userinfo"
//! ```
//!
//! Invariants:
//! - The client secret never appears in `Debug` output: it is held as [`Secret`] and the
//!   source (file path or variable name) is what gets printed.
//! - [`OidcConfig::validate`] checks shapes only (URLs, non-empty ids, one secret source);
//!   whether the issuer answers is a run-time matter that never stops the server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::auth::Secret;

/// Default `requestedScopes`, as Argo CD.
pub const DEFAULT_SCOPES: [&str; 4] = ["openid", "profile", "email", "groups"];

/// One entry of `requestedIDTokenClaims` (OIDC Core 5.5.1).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    /// Whether the claim is essential.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    /// The one value wanted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Acceptable values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// `clientSecretRef`: the client secret is the value of `key` in the Kubernetes Secret
/// `namespace`/`name` (`{ namespace = "argocd", name = "cairn-oidc", key = "clientSecret" }`).
/// Its `Debug` names the Secret, never a value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The Secret's namespace (a DNS label).
    pub namespace: String,
    /// The Secret's name (a DNS subdomain).
    pub name: String,
    /// The key in its `data`.
    pub key: String,
}

impl SecretRef {
    /// Checks the shapes Kubernetes allows: a namespace is a DNS-1123 label, a name a DNS-1123
    /// subdomain, a key letters, digits, `-`, `_` and `.`.
    pub fn validate(&self) -> Result<(), Invalid> {
        let label = |s: &str| {
            !s.is_empty()
                && s.len() <= 63
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !s.starts_with('-')
                && !s.ends_with('-')
        };
        if !label(&self.namespace) {
            return Err(invalid(
                "oidc.clientSecretRef.namespace",
                format!(
                    "{:?}: expected a namespace name (lowercase letters, digits and -)",
                    self.namespace
                ),
            ));
        }
        if self.name.is_empty() || self.name.len() > 253 || !self.name.split('.').all(label) {
            return Err(invalid(
                "oidc.clientSecretRef.name",
                format!(
                    "{:?}: expected a Secret name (lowercase letters, digits, - and .)",
                    self.name
                ),
            ));
        }
        if self.key.is_empty()
            || self.key.len() > 253
            || !self
                .key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(invalid(
                "oidc.clientSecretRef.key",
                format!(
                    "{:?}: expected a Secret key (letters, digits, -, _ and .)",
                    self.key
                ),
            ));
        }
        Ok(())
    }

    /// The client secret from the Secret's `data` (`None`: the Secret does not exist). Errors
    /// name the Secret and the key, never a value; a trailing newline is dropped, as from a file.
    pub fn pick(&self, data: Option<&BTreeMap<String, Vec<u8>>>) -> Result<Secret, String> {
        let what = format!(
            "oidc.clientSecretRef: Secret {}/{}",
            self.namespace, self.name
        );
        let data = data.ok_or_else(|| format!("{what} not found"))?;
        let value = data
            .get(&self.key)
            .ok_or_else(|| format!("{what} has no key {:?}", self.key))?;
        let text = std::str::from_utf8(value)
            .map_err(|_| format!("{what}: key {:?} is not UTF-8 text", self.key))?
            .trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            return Err(format!("{what}: key {:?} is empty", self.key));
        }
        Ok(Secret::new(text.to_owned()))
    }
}

/// `[oidc]`: single sign-on through an OpenID Connect provider.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Display name of the provider on the login page. Default `SSO`.
    #[serde(default = "default_name")]
    pub name: String,
    /// The issuer URL; discovery is read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id registered at the provider for cairn's server.
    #[serde(rename = "clientID")]
    pub client_id: String,
    /// The client secret inline (prefer `clientSecretFile` or `clientSecretEnv`). Empty or
    /// absent with no other source: a public client (PKCE only).
    #[serde(rename = "clientSecret", default)]
    pub client_secret: Option<Secret>,
    /// A file holding the client secret (trailing newline ignored).
    #[serde(rename = "clientSecretFile", default)]
    pub client_secret_file: Option<PathBuf>,
    /// An environment variable holding the client secret.
    #[serde(rename = "clientSecretEnv", default)]
    pub client_secret_env: Option<String>,
    /// A key of a Kubernetes Secret holding the client secret, read through the server's
    /// cluster client when a login first needs it (see [`SecretRef`]).
    #[serde(rename = "clientSecretRef", default)]
    pub client_secret_ref: Option<SecretRef>,
    /// The public client the CLI uses for `cairn login --sso` (PKCE, loopback redirect).
    #[serde(rename = "cliClientID", default)]
    pub cli_client_id: Option<String>,
    /// Scopes requested. Default `openid profile email groups`; `openid` is always sent.
    #[serde(rename = "requestedScopes", default = "default_scopes")]
    pub requested_scopes: Vec<String>,
    /// Claims requested in the ID token (the `claims` request parameter).
    #[serde(rename = "requestedIDTokenClaims", default)]
    pub requested_id_token_claims: BTreeMap<String, ClaimRequest>,
    /// Audiences accepted in ID tokens besides the client ids.
    #[serde(rename = "allowedAudiences", default)]
    pub allowed_audiences: Vec<String>,
    /// PEM certificates trusted for the provider (instead of the system roots' failing).
    #[serde(rename = "rootCA", default)]
    pub root_ca: Option<String>,
    /// A PEM file of certificates trusted for the provider.
    #[serde(rename = "rootCAFile", default)]
    pub root_ca_file: Option<PathBuf>,
    /// Where the browser goes after logout; `{{logoutRedirectURL}}` is replaced by cairn's URL.
    #[serde(rename = "logoutURL", default)]
    pub logout_url: Option<String>,
    /// Read groups from the userinfo endpoint as well as the ID token.
    #[serde(rename = "enableUserInfoGroups", default)]
    pub enable_user_info_groups: bool,
    /// Path of the userinfo endpoint under the issuer when discovery names none.
    #[serde(rename = "userInfoPath", default)]
    pub user_info_path: Option<String>,
    /// PKCE S256 on the authorization request. Default `true`.
    #[serde(rename = "enablePKCEAuthentication", default = "yes")]
    pub enable_pkce: bool,
}

fn default_name() -> String {
    "SSO".to_owned()
}

fn default_scopes() -> Vec<String> {
    DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for OidcConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcConfig")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_secret_file", &self.client_secret_file)
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret_ref", &self.client_secret_ref)
            .field("cli_client_id", &self.cli_client_id)
            .field("requested_scopes", &self.requested_scopes)
            .field("requested_id_token_claims", &self.requested_id_token_claims)
            .field("allowed_audiences", &self.allowed_audiences)
            .field("root_ca", &self.root_ca.as_ref().map(|_| "<pem>"))
            .field("root_ca_file", &self.root_ca_file)
            .field("logout_url", &self.logout_url)
            .field("enable_user_info_groups", &self.enable_user_info_groups)
            .field("user_info_path", &self.user_info_path)
            .field("enable_pkce", &self.enable_pkce)
            .finish()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// A shape error in `[oidc]`: the dotted field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Dotted field, e.g. `oidc.issuer`.
    pub field: &'static str,
    /// What was expected.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: message.into(),
    }
}

impl OidcConfig {
    /// Checks the shapes of the section; `server_url` is `[server] url`, which SSO needs (the
    /// redirect URI is `<url>/auth/callback`).
    pub fn validate(&self, server_url: Option<&str>) -> Result<(), Invalid> {
        let issuer = Url::parse(&self.issuer).map_err(|e| {
            invalid(
                "oidc.issuer",
                format!("{:?} is not a URL ({e})", self.issuer),
            )
        })?;
        if !matches!(issuer.scheme(), "https" | "http")
            || issuer.query().is_some()
            || issuer.fragment().is_some()
        {
            return Err(invalid(
                "oidc.issuer",
                format!(
                    "{:?}: expected an http(s) URL without query or fragment",
                    self.issuer
                ),
            ));
        }
        if self.client_id.trim().is_empty() {
            return Err(invalid("oidc.clientID", "must not be empty"));
        }
        if self
            .cli_client_id
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(invalid("oidc.cliClientID", "must not be empty when set"));
        }
        let sources = [
            self.client_secret.is_some(),
            self.client_secret_file.is_some(),
            self.client_secret_env.is_some(),
            self.client_secret_ref.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(invalid(
                "oidc.clientSecret",
                "set at most one of clientSecret, clientSecretFile, clientSecretEnv and clientSecretRef",
            ));
        }
        if let Some(reference) = &self.client_secret_ref {
            reference.validate()?;
        }
        if self.root_ca.is_some() && self.root_ca_file.is_some() {
            return Err(invalid(
                "oidc.rootCA",
                "set at most one of rootCA and rootCAFile",
            ));
        }
        if let Some(scope) = self
            .requested_scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"'))
        {
            return Err(invalid(
                "oidc.requestedScopes",
                format!("{scope:?}: expected scope names without spaces or quotes"),
            ));
        }
        if let Some(url) = &self.logout_url {
            let probe = url.replace("{{logoutRedirectURL}}", "x");
            if Url::parse(&probe).is_err() {
                return Err(invalid(
                    "oidc.logoutURL",
                    format!("{url:?} is not an absolute URL"),
                ));
            }
        }
        if let Some(path) = &self.user_info_path
            && !path.starts_with('/')
        {
            return Err(invalid(
                "oidc.userInfoPath",
                format!("{path:?}: expected a path starting with /"),
            ));
        }
        match server_url {
            Some(url) if Url::parse(url).is_ok() => Ok(()),
            _ => Err(invalid(
                "server.url",
                "must be set to cairn's external URL when [oidc] is configured (the redirect URI is <url>/auth/callback)",
            )),
        }
    }

    /// The scopes to request: the configured ones, with `openid` first when missing.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes = self.requested_scopes.clone();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".to_owned());
        }
        scopes
    }

    /// Reads the client secret from its source: `None` for a public client, and for
    /// `clientSecretRef`, which is read from the cluster later ([`SecretRef::pick`]). `env` looks
    /// up an environment variable (the process environment in production).
    pub fn resolve_secret(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, String> {
        if let Some(secret) = &self.client_secret {
            return Ok((!secret.expose().is_empty()).then(|| secret.clone()));
        }
        if let Some(path) = &self.client_secret_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("oidc.clientSecretFile {}: {e}", path.display()))?;
            let secret = text.trim_end_matches(['\r', '\n']).to_owned();
            if secret.is_empty() {
                return Err(format!(
                    "oidc.clientSecretFile {}: the file is empty",
                    path.display()
                ));
            }
            return Ok(Some(Secret::new(secret)));
        }
        if let Some(var) = &self.client_secret_env {
            return match env(var) {
                Some(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
                _ => Err(format!(
                    "oidc.clientSecretEnv: environment variable {var} is not set or empty"
                )),
            };
        }
        Ok(None)
    }

    /// The PEM text of `rootCA` / `rootCAFile`, if configured.
    pub fn root_ca_pem(&self) -> Result<Option<Vec<u8>>, String> {
        if let Some(pem) = &self.root_ca {
            return Ok(Some(pem.as_bytes().to_vec()));
        }
        match &self.root_ca_file {
            Some(path) => std::fs::read(path)
                .map(Some)
                .map_err(|e| format!("oidc.rootCAFile {}: {e}", path.display())),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> OidcConfig {
        toml::from_str(toml_text).expect("parses")
    }

    const MINIMAL: &str = r#"
issuer = "https://idp.example/dex"
clientID = "cairn"
"#;

    #[test]
    fn defaults_follow_argo_cd() {
        let c = parse(MINIMAL);
        assert_eq!(c.requested_scopes, ["openid", "profile", "email", "groups"]);
        assert!(c.enable_pkce);
        assert_eq!(c.name, "SSO");
        assert!(c.validate(Some("https://cairn.example")).is_ok());
    }

    #[test]
    fn the_secret_is_never_in_debug() {
        let c = parse(&format!("{MINIMAL}clientSecret = \"s3cr3t-value\"\n"));
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert_eq!(
            c.resolve_secret(|_| None).unwrap().unwrap().expose(),
            "s3cr3t-value"
        );
    }

    #[test]
    fn secret_sources() {
        let c = parse(&format!("{MINIMAL}clientSecretEnv = \"OIDC_S\"\n"));
        let s = c
            .resolve_secret(|v| (v == "OIDC_S").then(|| "from-env".to_owned()))
            .unwrap();
        assert_eq!(s.unwrap().expose(), "from-env");
        let err = c.resolve_secret(|_| None).unwrap_err();
        assert!(err.contains("OIDC_S"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-file\n").unwrap();
        let c = parse(&format!(
            "{MINIMAL}clientSecretFile = {:?}\n",
            file.display().to_string()
        ));
        assert_eq!(
            c.resolve_secret(|_| None).unwrap().unwrap().expose(),
            "from-file"
        );
        assert_eq!(parse(MINIMAL).resolve_secret(|_| None).unwrap(), None);
    }

    #[test]
    fn shape_errors_name_the_field() {
        let cases = [
            ("issuer = \"not a url\"\nclientID = \"c\"\n", "oidc.issuer"),
            (
                "issuer = \"ftp://idp.example\"\nclientID = \"c\"\n",
                "oidc.issuer",
            ),
            (
                "issuer = \"https://idp.example?x=1\"\nclientID = \"c\"\n",
                "oidc.issuer",
            ),
            (
                "issuer = \"https://idp.example\"\nclientID = \" \"\n",
                "oidc.clientID",
            ),
            (
                "issuer = \"https://idp.example\"\nclientID = \"c\"\nclientSecret = \"a\"\nclientSecretEnv = \"B\"\n",
                "oidc.clientSecret",
            ),
            (
                "issuer = \"https://idp.example\"\nclientID = \"c\"\nrequestedScopes = [\"openid groups\"]\n",
                "oidc.requestedScopes",
            ),
            (
                "issuer = \"https://idp.example\"\nclientID = \"c\"\nlogoutURL = \"/relative\"\n",
                "oidc.logoutURL",
            ),
            (
                "issuer = \"https://idp.example\"\nclientID = \"c\"\nuserInfoPath = \"userinfo\"\n",
                "oidc.userInfoPath",
            ),
        ];
        for (text, field) in cases {
            let err = parse(text)
                .validate(Some("https://cairn.example"))
                .expect_err(text);
            assert_eq!(err.field, field, "{text}: {err:?}");
        }
        let err = parse(MINIMAL).validate(None).unwrap_err();
        assert_eq!(err.field, "server.url");
    }

    #[test]
    fn a_secret_ref_is_parsed_checked_and_picked() {
        let c = parse(&format!(
            "{MINIMAL}clientSecretRef = {{ namespace = \"argocd\", name = \"cairn-oidc\", key = \"clientSecret\" }}\n"
        ));
        c.validate(Some("https://cairn.example")).expect("valid");
        let r = c.client_secret_ref.clone().expect("a ref");
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str(), r.key.as_str()),
            ("argocd", "cairn-oidc", "clientSecret")
        );
        // Read from the cluster later, not here.
        assert_eq!(c.resolve_secret(|_| None).unwrap(), None);

        let data = |k: &str, v: &[u8]| BTreeMap::from([(k.to_owned(), v.to_vec())]);
        assert_eq!(
            r.pick(Some(&data("clientSecret", b"s3cr3t\n")))
                .unwrap()
                .expose(),
            "s3cr3t"
        );
        let missing = r.pick(None).unwrap_err();
        assert_eq!(
            missing,
            "oidc.clientSecretRef: Secret argocd/cairn-oidc not found"
        );
        let no_key = r.pick(Some(&data("other", b"x"))).unwrap_err();
        assert_eq!(
            no_key,
            "oidc.clientSecretRef: Secret argocd/cairn-oidc has no key \"clientSecret\""
        );
        assert!(
            r.pick(Some(&data("clientSecret", b"\n")))
                .unwrap_err()
                .ends_with("is empty")
        );
        let binary = r
            .pick(Some(&data("clientSecret", &[0xff, 0xfe, b's'])))
            .unwrap_err();
        assert!(binary.ends_with("is not UTF-8 text"), "{binary}");
        // The value never shows in Debug or in an error.
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn secret_ref_shape_errors_name_the_field() {
        let with = |r: &str| format!("{MINIMAL}clientSecretRef = {{ {r} }}\n");
        let cases = [
            (
                with("namespace = \"Argo\", name = \"s\", key = \"k\""),
                "oidc.clientSecretRef.namespace",
            ),
            (
                with("namespace = \"argocd\", name = \"a..b\", key = \"k\""),
                "oidc.clientSecretRef.name",
            ),
            (
                with("namespace = \"argocd\", name = \"s\", key = \"a/b\""),
                "oidc.clientSecretRef.key",
            ),
            (
                format!(
                    "{}clientSecretEnv = \"X\"\n",
                    with("namespace = \"argocd\", name = \"s\", key = \"k\"")
                ),
                "oidc.clientSecret",
            ),
        ];
        for (text, field) in cases {
            let err = parse(&text)
                .validate(Some("https://cairn.example"))
                .expect_err(&text);
            assert_eq!(err.field, field, "{text}: {err:?}");
        }
        // A ref without its key is a TOML error, not a silent public client.
        assert!(
            toml::from_str::<OidcConfig>(&with("namespace = \"argocd\", name = \"s\"")).is_err()
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<OidcConfig>(&format!("{MINIMAL}clientId = \"x\"\n")).is_err());
    }

    #[test]
    fn openid_is_always_requested() {
        let c = parse(&format!("{MINIMAL}requestedScopes = [\"groups\"]\n"));
        assert_eq!(c.scopes(), ["openid", "groups"]);
    }
}
