//! The authorization-code flow's pure parts: PKCE (S256), `state` and `nonce` generation, the
//! authorization request URL, the return-URL rule and the table of pending logins.
//!
//! Invariants:
//! - `state`, `nonce` and the PKCE verifier are 32 random bytes each (unpadded base64url), new
//!   for every login.
//! - A pending login is taken out of [`PendingLogins`] by its `state` exactly once: a replayed
//!   callback finds nothing. Entries older than [`PENDING_TTL`] are never returned, and the
//!   table holds at most [`MAX_PENDING`] entries (the oldest are dropped first), so unfinished
//!   logins cannot grow memory without bound.
//! - A return URL is accepted only as a same-origin relative path (`/...`, not `//host`, no
//!   backslash, no scheme, no control characters); anything else becomes `/`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Url;

/// A login must come back from the identity provider within this long.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);
/// At most this many logins may be pending at once (the oldest are forgotten first).
pub const MAX_PENDING: usize = 10_000;
/// Longest return URL kept (characters).
pub const MAX_RETURN_URL: usize = 2048;

/// 32 random bytes, unpadded base64url (43 characters).
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ))
}

/// The return URL to send the browser to after login: `candidate` when it is a same-origin
/// relative path, else `/`.
pub fn safe_return_url(candidate: Option<&str>) -> String {
    match candidate {
        Some(url) if is_relative_path(url) => url.to_owned(),
        _ => "/".to_owned(),
    }
}

/// Whether `url` is a path on this origin: starts with one `/`, not `//` or `/\` (which browsers
/// read as another host), no backslashes or control characters, bounded length.
pub fn is_relative_path(url: &str) -> bool {
    url.starts_with('/')
        && !url.starts_with("//")
        && !url.contains('\\')
        && url.len() <= MAX_RETURN_URL
        && !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Whether `uri` is a loopback redirect for a native client (RFC 8252 7.3): `http`, host
/// `localhost`, `127.0.0.1` or `[::1]`, an explicit port, no query or fragment.
pub fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    url.scheme() == "http"
        && matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        && url.port().is_some()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
}

/// One login between `/auth/login` and `/auth/callback`.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier sent with the code.
    pub verifier: String,
    /// Where to send the browser afterwards (already checked by [`safe_return_url`]).
    pub return_url: String,
    /// Which client it is for: the server's (`clientID`) or the CLI's (`cliClientID`).
    pub client_id: String,
    /// The redirect URI sent (the token request must repeat it).
    pub redirect_uri: String,
    /// When it started, in the caller's clock (seconds).
    pub started: u64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("return_url", &self.return_url)
            .field("client_id", &self.client_id)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// Pending logins by `state`, each taken at most once (see the module invariants).
#[derive(Debug, Default)]
pub struct PendingLogins {
    by_state: HashMap<String, PendingLogin>,
    order: VecDeque<String>,
}

impl PendingLogins {
    /// Records a login under `state` at `now` (seconds).
    pub fn insert(&mut self, state: String, login: PendingLogin, now: u64) {
        self.expire(now);
        while self.by_state.len() >= MAX_PENDING {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.by_state.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.push_back(state.clone());
        self.by_state.insert(state, login);
    }

    /// Takes the login of `state` out of the table; `None` when unknown, already taken or older
    /// than [`PENDING_TTL`].
    pub fn take(&mut self, state: &str, now: u64) -> Option<PendingLogin> {
        self.expire(now);
        let login = self.by_state.remove(state)?;
        self.order.retain(|s| s != state);
        Some(login)
    }

    /// How many logins are pending.
    pub fn len(&self) -> usize {
        self.by_state.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.by_state.is_empty()
    }

    fn expire(&mut self, now: u64) {
        while let Some(oldest) = self.order.front() {
            let expired = self
                .by_state
                .get(oldest)
                .is_none_or(|l| l.started.saturating_add(PENDING_TTL.as_secs()) <= now);
            if !expired {
                break;
            }
            if let Some(s) = self.order.pop_front() {
                self.by_state.remove(&s);
            }
        }
    }
}

/// What the authorization request carries.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// The provider's `authorization_endpoint`.
    pub endpoint: &'a Url,
    /// The client id.
    pub client_id: &'a str,
    /// Where the provider sends the browser back.
    pub redirect_uri: &'a str,
    /// Scopes, `openid` among them.
    pub scopes: &'a [String],
    /// The state (CSRF binding of the callback).
    pub state: &'a str,
    /// The nonce (binding of the ID token to this login).
    pub nonce: &'a str,
    /// The PKCE verifier, whose S256 challenge is sent.
    pub verifier: &'a str,
    /// Requested ID-token claims (the `claims` parameter), when configured.
    pub claims: Option<&'a BTreeMap<String, super::config::ClaimRequest>>,
}

/// The URL the browser is redirected to for login (OIDC Core 3.1.2.1 with PKCE).
pub fn authorization_url(req: &AuthRequest<'_>) -> Url {
    let mut url = req.endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", req.client_id)
            .append_pair("redirect_uri", req.redirect_uri)
            .append_pair("scope", &req.scopes.join(" "))
            .append_pair("state", req.state)
            .append_pair("nonce", req.nonce)
            .append_pair("code_challenge", &pkce_challenge(req.verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(claims) = req.claims.filter(|c| !c.is_empty()) {
            let body = serde_json::json!({ "id_token": claims });
            q.append_pair("claims", &body.to_string());
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(started: u64) -> PendingLogin {
        PendingLogin {
            nonce: "n".into(),
            verifier: "v".into(),
            return_url: "/".into(),
            client_id: "cairn".into(),
            redirect_uri: "http://127.0.0.1/auth/callback".into(),
            started,
        }
    }

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token();
        let b = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn return_urls() {
        for ok in ["/", "/applications/guestbook", "/a?b=c#d"] {
            assert_eq!(safe_return_url(Some(ok)), ok, "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/a\nb",
            "/a b",
            "",
        ] {
            assert_eq!(safe_return_url(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_url(None), "/");
        assert_eq!(
            safe_return_url(Some(&format!("/{}", "a".repeat(3000)))),
            "/"
        );
    }

    #[test]
    fn loopback_redirects() {
        for ok in [
            "http://localhost:8085/auth/callback",
            "http://127.0.0.1:40000/cb",
            "http://[::1]:1234/",
        ] {
            assert!(is_loopback_redirect(ok), "{ok}");
        }
        for bad in [
            "https://localhost:8085/auth/callback",
            "http://localhost/auth/callback",
            "http://evil.example:8085/",
            "http://localhost.evil.example:8085/",
            "http://user@localhost:8085/",
            "http://localhost:8085/cb?x=1",
            "not a url",
        ] {
            assert!(!is_loopback_redirect(bad), "{bad}");
        }
    }

    #[test]
    fn a_state_is_taken_once() {
        let mut p = PendingLogins::default();
        p.insert("s1".into(), login(100), 100);
        assert!(p.take("unknown", 101).is_none());
        assert_eq!(p.take("s1", 101), Some(login(100)));
        assert!(
            p.take("s1", 102).is_none(),
            "a replayed state finds nothing"
        );
        assert!(p.is_empty());
    }

    #[test]
    fn old_logins_expire() {
        let mut p = PendingLogins::default();
        p.insert("old".into(), login(0), 0);
        p.insert("new".into(), login(500), 500);
        let ttl = PENDING_TTL.as_secs();
        assert!(p.take("old", ttl).is_none());
        assert!(p.take("new", ttl).is_some());
    }

    #[test]
    fn the_table_is_bounded() {
        let mut p = PendingLogins::default();
        for i in 0..(MAX_PENDING + 5) {
            p.insert(format!("s{i}"), login(1), 1);
        }
        assert_eq!(p.len(), MAX_PENDING);
        assert!(p.take("s0", 2).is_none(), "the oldest were dropped");
        assert!(p.take(&format!("s{}", MAX_PENDING + 4), 2).is_some());
    }

    #[test]
    fn authorization_url_carries_pkce_state_nonce() {
        let endpoint = Url::parse("https://idp.example/auth?x=1").unwrap();
        let scopes = vec!["openid".to_owned(), "groups".to_owned()];
        let mut claims = BTreeMap::new();
        claims.insert(
            "groups".to_owned(),
            super::super::config::ClaimRequest {
                essential: Some(true),
                value: None,
                values: None,
            },
        );
        let url = authorization_url(&AuthRequest {
            endpoint: &endpoint,
            client_id: "cairn",
            redirect_uri: "https://cairn.example/auth/callback",
            scopes: &scopes,
            state: "st",
            nonce: "no",
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            claims: Some(&claims),
        });
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["x"], "1");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "openid groups");
        assert_eq!(q["state"], "st");
        assert_eq!(q["nonce"], "no");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["code_challenge"],
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(q["claims"], r#"{"id_token":{"groups":{"essential":true}}}"#);
    }
}
