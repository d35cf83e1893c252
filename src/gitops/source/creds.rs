//! Repository credentials as Argo CD declares them: Secrets labelled
//! `argocd.argoproj.io/secret-type: repository` (one repository, matched by URL) or `repo-creds`
//! (a credential template, matched by URL prefix after [`template_match_form`], the longest
//! prefix winning, as Argo CD's `getRepositoryCredentialIndex`), with the data
//! fields `url`, `username`, `password` (a token is a password), `sshPrivateKey`, `insecure`,
//! `type` (a `repository` of type `helm`/`oci` is not Git and is skipped; templates apply by
//! URL whatever their type) and `project`.
//!
//! Resolution as Argo CD's `GetRepository`: the `repository` Secret of the URL gives the
//! credentials; when it has none (or there is no such Secret) the longest-prefix `repo-creds`
//! template gives them. `insecure` skips TLS verification (HTTPS) and host key checking (SSH).
//!
//! SSH host keys: libgit2 does not read `~/.ssh/known_hosts` for us, so the caller passes
//! [`KnownHosts`] parsed from Argo CD's `argocd-ssh-known-hosts-cm` (`ssh_known_hosts` key,
//! OpenSSH `known_hosts` format). A host whose key is not listed, or listed with another key, is
//! refused unless `insecure` is set. Hashed (`|1|…`) and wildcard entries are not supported and
//! are ignored; `[host]:port` entries match the host on any port, because libgit2 only reports
//! the host name to the check.
//!
//! Invariant: secrets never leave this module in text: [`RepoCredentials`] and [`RepoSecret`]
//! have hand-written `Debug` that prints only whether a field is set.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::SourceError;
use super::url::{normalize_url, redact_url, template_match_form};

/// The label whose value says what kind of Argo CD Secret an object is.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// Which kind of repository Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// `repository`: credentials for exactly one repository URL.
    Repository,
    /// `repo-creds`: a credential template for every URL with this prefix.
    RepoCreds,
}

/// Credentials for one repository. Fields are private so nothing can print them by accident.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RepoCredentials {
    username: Option<String>,
    password: Option<String>,
    ssh_private_key: Option<String>,
    insecure: bool,
}

impl RepoCredentials {
    /// HTTPS basic-auth credentials (`password` may be a token).
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Self::default()
        }
    }

    /// SSH private-key credentials (PEM / OpenSSH text).
    pub fn ssh_key(private_key: impl Into<String>) -> Self {
        Self {
            ssh_private_key: Some(private_key.into()),
            ..Self::default()
        }
    }

    /// Same credentials, with TLS / host-key verification skipped or not.
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Whether any secret material is set (Argo CD's `HasCredentials`).
    pub fn has_credentials(&self) -> bool {
        self.username.is_some() || self.password.is_some() || self.ssh_private_key.is_some()
    }

    /// Username for basic auth or SSH (`None`: unset).
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Password or token for basic auth.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// SSH private key text.
    pub fn ssh_private_key(&self) -> Option<&str> {
        self.ssh_private_key.as_deref()
    }

    /// Whether TLS verification / SSH host key checking is skipped.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// Every secret string, so error text can be scrubbed of them as a last line of defence.
    pub(crate) fn secrets(&self) -> impl Iterator<Item = &str> {
        [self.password.as_deref(), self.ssh_private_key.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| s.len() >= 4)
    }
}

impl fmt::Debug for RepoCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |o: &Option<String>| if o.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("RepoCredentials")
            .field("username", &set(&self.username))
            .field("password", &set(&self.password))
            .field("ssh_private_key", &set(&self.ssh_private_key))
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// One Argo CD repository Secret, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoSecret {
    /// Secret name, for messages.
    pub name: String,
    /// `repository` or `repo-creds`.
    pub kind: SecretKind,
    /// `url`: the repository URL, or the prefix of a template.
    pub url: String,
    /// `project`: the AppProject a scoped repository belongs to (not enforced here).
    pub project: Option<String>,
    /// The credentials the Secret carries.
    pub credentials: RepoCredentials,
}

impl fmt::Debug for RepoSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepoSecret")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("project", &self.project)
            .field("credentials", &self.credentials)
            .finish()
    }
}

fn field(
    data: &BTreeMap<String, ByteString>,
    secret: &str,
    key: &str,
) -> Result<Option<String>, SourceError> {
    match data.get(key) {
        None => Ok(None),
        Some(v) => {
            String::from_utf8(v.0.clone())
                .map(Some)
                .map_err(|_| SourceError::InvalidSecret {
                    secret: secret.to_string(),
                    reason: format!("field `{key}` is not UTF-8 text"),
                })
        }
    }
}

impl RepoSecret {
    /// Parses a Secret's `data`. `Ok(None)` for a `repository` of `type: helm`/`oci` (not Git).
    pub fn from_data(
        name: &str,
        kind: SecretKind,
        data: &BTreeMap<String, ByteString>,
    ) -> Result<Option<Self>, SourceError> {
        let get = |key| field(data, name, key);
        // A `repository` of another type (helm, oci) is not a Git repository. Templates are
        // matched by URL alone, as Argo CD matches them, whatever their `type`.
        if kind == SecretKind::Repository
            && let Some(t) = get("type")?
            && !t.trim().is_empty()
            && t.trim() != "git"
        {
            return Ok(None);
        }
        let url = get("url")?
            .map(|u| u.trim().to_string())
            .unwrap_or_default();
        if url.is_empty() {
            return Err(SourceError::InvalidSecret {
                secret: name.to_string(),
                reason: "field `url` is missing or empty".to_string(),
            });
        }
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let insecure = match get("insecure")?.as_deref().map(str::trim) {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(SourceError::InvalidSecret {
                    secret: name.to_string(),
                    reason: format!(
                        "field `insecure` must be \"true\" or \"false\", got {other:?}"
                    ),
                });
            }
        };
        Ok(Some(Self {
            name: name.to_string(),
            kind,
            url,
            project: non_empty(get("project")?),
            credentials: RepoCredentials {
                username: non_empty(get("username")?),
                password: non_empty(get("password")?),
                ssh_private_key: non_empty(get("sshPrivateKey")?),
                insecure,
            },
        }))
    }

    /// Parses a Kubernetes Secret: `Ok(None)` unless it carries the [`SECRET_TYPE_LABEL`] with
    /// `repository` or `repo-creds` (or it is a Helm repository).
    pub fn from_secret(secret: &Secret) -> Result<Option<Self>, SourceError> {
        let kind = match secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SECRET_TYPE_LABEL))
            .map(String::as_str)
        {
            Some("repository") => SecretKind::Repository,
            Some("repo-creds") => SecretKind::RepoCreds,
            _ => return Ok(None),
        };
        let name = secret.metadata.name.as_deref().unwrap_or("<unnamed>");
        let empty = BTreeMap::new();
        Self::from_data(name, kind, secret.data.as_ref().unwrap_or(&empty))
    }
}

/// All repository Secrets known to the controller; answers "which credentials for this URL".
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    secrets: Vec<RepoSecret>,
}

impl CredentialStore {
    /// A store of these Secrets (order does not matter: matching is by URL).
    pub fn new(secrets: Vec<RepoSecret>) -> Self {
        Self { secrets }
    }

    /// The credentials for `url`, following Argo CD: the `repository` Secret's own credentials,
    /// else the longest-prefix `repo-creds` template's. `None`: anonymous access.
    pub fn for_url(&self, url: &str) -> Option<RepoCredentials> {
        let wanted = normalize_url(url);
        let repo = self
            .secrets
            .iter()
            .filter(|s| s.kind == SecretKind::Repository && normalize_url(&s.url) == wanted)
            // Several Secrets for one URL: the first by name, so the choice is deterministic.
            .min_by(|a, b| a.name.cmp(&b.name));
        if let Some(r) = repo
            && r.credentials.has_credentials()
        {
            return Some(r.credentials.clone());
        }
        let wanted_prefix = template_match_form(url);
        let template = self
            .secrets
            .iter()
            .filter(|s| {
                s.kind == SecretKind::RepoCreds
                    && wanted_prefix.starts_with(&template_match_form(&s.url))
            })
            .max_by(|a, b| {
                a.url
                    .len()
                    .cmp(&b.url.len())
                    .then_with(|| b.name.cmp(&a.name))
            });
        match (repo, template) {
            (Some(r), Some(t)) => Some(
                t.credentials
                    .clone()
                    .with_insecure(r.credentials.insecure || t.credentials.insecure),
            ),
            (None, Some(t)) => Some(t.credentials.clone()),
            (Some(r), None) if r.credentials.insecure => Some(r.credentials.clone()),
            _ => None,
        }
    }
}

/// One usable `known_hosts` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KnownHost {
    hosts: Vec<String>,
    key_type: String,
    key: Vec<u8>,
}

/// Result of checking a server's SSH host key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// A listed key of the host equals the presented key.
    Match,
    /// The host is listed, with other keys only: possible man in the middle.
    Mismatch,
    /// The host is not listed.
    Unknown,
}

/// SSH known hosts (OpenSSH format, as in Argo CD's `argocd-ssh-known-hosts-cm`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownHosts {
    entries: Vec<KnownHost>,
}

impl KnownHosts {
    /// Parses `known_hosts` text; comments, blank lines, markers (`@revoked`, `@cert-authority`),
    /// hashed and wildcard entries and lines with an undecodable key are skipped.
    pub fn parse(text: &str) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        let entries = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('@'))
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let hosts = parts.next()?;
                let key_type = parts.next()?;
                let key = b64.decode(parts.next()?).ok()?;
                let hosts: Vec<String> = hosts
                    .split(',')
                    .filter(|h| !h.starts_with('|') && !h.contains(['*', '?', '!']))
                    .map(|h| {
                        let h = h
                            .strip_prefix('[')
                            .and_then(|h| h.split_once("]:"))
                            .map_or(h, |(host, _)| host);
                        h.to_lowercase()
                    })
                    .collect();
                (!hosts.is_empty()).then(|| KnownHost {
                    hosts,
                    key_type: key_type.to_string(),
                    key,
                })
            })
            .collect();
        Self { entries }
    }

    /// Number of usable entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no entry is usable.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks the raw host key blob `key` presented by `host`.
    pub fn check(&self, host: &str, key: &[u8]) -> HostKeyCheck {
        let host = host.to_lowercase();
        let mut listed = false;
        for e in self.entries.iter().filter(|e| e.hosts.contains(&host)) {
            listed = true;
            if e.key == key {
                return HostKeyCheck::Match;
            }
        }
        if listed {
            HostKeyCheck::Mismatch
        } else {
            HostKeyCheck::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    fn secret(name: &str, kind: SecretKind, pairs: &[(&str, &str)]) -> RepoSecret {
        RepoSecret::from_data(name, kind, &data(pairs))
            .expect("valid")
            .expect("git")
    }

    #[test]
    fn parses_argo_fields() {
        let s = secret(
            "private-repo",
            SecretKind::Repository,
            &[
                ("type", "git"),
                ("url", "https://github.com/argoproj/private-repo"),
                ("username", "me"),
                ("password", "tok3n-value"),
                ("insecure", "true"),
                ("project", "data"),
            ],
        );
        assert_eq!(s.url, "https://github.com/argoproj/private-repo");
        assert_eq!(s.project.as_deref(), Some("data"));
        assert_eq!(s.credentials.username(), Some("me"));
        assert_eq!(s.credentials.password(), Some("tok3n-value"));
        assert!(s.credentials.insecure());
        let ssh = secret(
            "k",
            SecretKind::RepoCreds,
            &[
                ("url", "git@github.com:org"),
                ("sshPrivateKey", "-----BEGIN KEY-----"),
            ],
        );
        assert_eq!(
            ssh.credentials.ssh_private_key(),
            Some("-----BEGIN KEY-----")
        );
    }

    #[test]
    fn invalid_secrets_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("username", "u")], "field `url` is missing"),
            (
                &[("url", "https://h/r"), ("insecure", "yes")],
                "field `insecure`",
            ),
        ];
        for (pairs, want) in cases {
            let err = RepoSecret::from_data("s1", SecretKind::Repository, &data(pairs))
                .expect_err("invalid");
            let msg = err.to_string();
            assert!(msg.contains("s1") && msg.contains(want), "{msg}");
        }
        let mut bad = data(&[("url", "https://h/r")]);
        bad.insert("password".into(), ByteString(vec![0xff, 0xfe]));
        let msg = RepoSecret::from_data("s2", SecretKind::Repository, &bad)
            .expect_err("utf8")
            .to_string();
        assert!(msg.contains("`password`") && msg.contains("s2"), "{msg}");
        assert_eq!(
            RepoSecret::from_data(
                "h",
                SecretKind::Repository,
                &data(&[("type", "helm"), ("url", "https://charts")])
            )
            .expect("ok"),
            None
        );
        let template = RepoSecret::from_data(
            "t",
            SecretKind::RepoCreds,
            &data(&[("type", "helm"), ("url", "https://github.com/argoproj")]),
        )
        .expect("ok");
        assert_eq!(template.map(|t| t.kind), Some(SecretKind::RepoCreds));
    }

    #[test]
    fn from_secret_reads_label() {
        let mut s = Secret::default();
        s.metadata.name = Some("r".into());
        s.data = Some(data(&[("url", "https://h/r")]));
        assert_eq!(RepoSecret::from_secret(&s).expect("ok"), None);
        for (label, kind) in [
            ("repository", SecretKind::Repository),
            ("repo-creds", SecretKind::RepoCreds),
        ] {
            s.metadata.labels = Some([(SECRET_TYPE_LABEL.to_string(), label.to_string())].into());
            assert_eq!(
                RepoSecret::from_secret(&s).expect("ok").map(|r| r.kind),
                Some(kind)
            );
        }
        s.metadata.labels = Some([(SECRET_TYPE_LABEL.to_string(), "cluster".to_string())].into());
        assert_eq!(RepoSecret::from_secret(&s).expect("ok"), None);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = secret(
            "x",
            SecretKind::Repository,
            &[
                ("url", "https://u:urlpass@h/r"),
                ("username", "alice"),
                ("password", "hunter22"),
                ("sshPrivateKey", "PRIVATEKEY"),
            ],
        );
        let dbg = format!("{s:?} {:?}", CredentialStore::new(vec![s.clone()]));
        for secret in ["hunter22", "PRIVATEKEY", "urlpass", "alice"] {
            assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
        }
        assert!(dbg.contains("<set>"), "{dbg}");
    }

    #[test]
    fn credential_matching_table() {
        let store = CredentialStore::new(vec![
            secret(
                "ssh",
                SecretKind::RepoCreds,
                &[("url", "git@github.com:ssh-org"), ("password", "ssh-token")],
            ),
            secret(
                "org",
                SecretKind::RepoCreds,
                &[("url", "https://github.com/org"), ("password", "org-token")],
            ),
            secret(
                "team",
                SecretKind::RepoCreds,
                &[
                    ("url", "https://github.com/org/team-"),
                    ("password", "team-token"),
                ],
            ),
            secret(
                "exact",
                SecretKind::Repository,
                &[
                    ("url", "https://github.com/org/special.git"),
                    ("password", "exact-token"),
                ],
            ),
            secret(
                "nocreds",
                SecretKind::Repository,
                &[
                    ("url", "https://github.com/org/plain"),
                    ("insecure", "true"),
                ],
            ),
            secret(
                "anon-insecure",
                SecretKind::Repository,
                &[("url", "https://other.io/x"), ("insecure", "true")],
            ),
        ]);
        let cases: &[(&str, Option<(&str, bool)>)] = &[
            (
                "https://github.com/org/special",
                Some(("exact-token", false)),
            ),
            (
                "https://github.com/org/special.git",
                Some(("exact-token", false)),
            ),
            ("https://github.com/org/team-a", Some(("team-token", false))),
            ("https://github.com/org/other", Some(("org-token", false))),
            ("https://GitHub.com/org/other", Some(("org-token", false))),
            // repository Secret without credentials: the template's, with its `insecure`.
            ("https://github.com/org/plain", Some(("org-token", true))),
            ("https://gitlab.com/org/x", None),
            ("ssh://git@github.com/ssh-org/r", Some(("ssh-token", false))),
            ("git@github.com:ssh-org/r.git", Some(("ssh-token", false))),
        ];
        for (url, want) in cases {
            let got = store.for_url(url);
            let got = got
                .as_ref()
                .map(|c| (c.password().unwrap_or(""), c.insecure()));
            assert_eq!(got, *want, "{url}");
        }
        let anon = store.for_url("https://other.io/x").expect("insecure only");
        assert!(anon.insecure() && !anon.has_credentials());
    }

    #[test]
    fn known_hosts() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let k1 = b64.encode(b"key-one");
        let k2 = b64.encode(b"key-two");
        let text = format!(
            "# comment\n\ngithub.com,140.82.1.1 ssh-ed25519 {k1}\n[git.local]:2222 ssh-rsa {k2}\n\
             |1|salt|hash ssh-rsa {k1}\n*.wild ssh-rsa {k1}\n@revoked bad.com ssh-rsa {k1}\nbroken.com ssh-rsa !!!\n"
        );
        let kh = KnownHosts::parse(&text);
        assert_eq!(kh.len(), 2);
        let cases = [
            ("github.com", b"key-one".as_slice(), HostKeyCheck::Match),
            ("GitHub.com", b"key-one", HostKeyCheck::Match),
            ("140.82.1.1", b"key-one", HostKeyCheck::Match),
            ("github.com", b"key-two", HostKeyCheck::Mismatch),
            ("git.local", b"key-two", HostKeyCheck::Match),
            ("bad.com", b"key-one", HostKeyCheck::Unknown),
            ("x.wild", b"key-one", HostKeyCheck::Unknown),
            ("gitlab.com", b"key-one", HostKeyCheck::Unknown),
        ];
        for (host, key, want) in cases {
            assert_eq!(kh.check(host, key), want, "{host}");
        }
        assert!(KnownHosts::parse("").is_empty());
    }
}
