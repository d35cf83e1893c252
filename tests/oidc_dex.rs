//! OIDC single sign-on against a real identity provider: Dex (tests/common/dex.rs) on
//! loopback, and a real cairn router served on a loopback port. The authorization-code flow is
//! driven headlessly with reqwest, one redirect at a time: `GET /auth/login` on cairn → Dex's
//! authorization endpoint → Dex's connector (its password form, or an authproxy connector with
//! the user in `X-Remote-User`) → back to `/auth/callback` → a cairn session.
//!
//! Asserted: the session's user and groups, RBAC decisions through the groups
//! (`g, platform-admins, role:admin` may sync; `data-readers` get 403 on sync), logout with
//! `logoutURL`, and the relying-party negatives that need the provider: a replayed callback
//! (state used twice), a code used twice, a callback without the browser's state cookie, an
//! absolute return URL. A misconfigured issuer leaves local login working and is reported on
//! `/auth/info` (no Dex needed), and so does a provider served over TLS by a CA cairn does not
//! trust until `rootCAFile` names it. A signing-key rotation at Dex is picked up without restarting
//! cairn (the unknown `kid` makes it re-fetch the JWKS). Runs when Dex is built or with `CAIRN_E2E=1`; prints a SKIP
//! line otherwise.

#[path = "common/dex.rs"]
mod dex;

use std::collections::HashMap;
use std::sync::Arc;

use cairn::api::{self, AppState, CSRF_HEADER, StateParts};
use cairn::auth::Auth;
use cairn::auth::oidc::OidcConfig;
use cairn::auth::password::Hasher;
use cairn::config::Config;
use cairn::store::Store;
use dex::DexServer;
use reqwest::{StatusCode, Url, header};

/// Argo CD's scopes plus Dex's `federated:id`, so the RBAC subject is the user id at the
/// connector (`federated_claims.user_id`), not Dex's opaque `sub`.
const SCOPES: &str = r#"["openid", "profile", "email", "groups", "federated:id"]"#;
const POLICY: &str = "g, platform-admins, role:admin\ng, data-readers, role:readonly\n";

/// A cairn server on a loopback port with `[oidc]` pointing at `issuer`.
struct Cairn {
    base: String,
    admin_password: String,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Cairn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    (listener, format!("http://127.0.0.1:{port}"))
}

async fn cairn(
    listener: tokio::net::TcpListener,
    base: &str,
    issuer: &str,
    secret: &str,
    extra: &str,
) -> Cairn {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.server.url = Some(base.to_owned());
    config.rbac.policy_csv = POLICY.to_owned();
    config.rbac.policy_default = String::new();
    // An empty `secret`: the secret's source is in `extra` (e.g. clientSecretRef).
    let secret_line = if secret.is_empty() {
        String::new()
    } else {
        format!("clientSecret = \"{secret}\"\n")
    };
    let oidc: OidcConfig = toml::from_str(&format!(
        "name = \"Dex\"\nissuer = \"{issuer}\"\nclientID = \"cairn\"\n{secret_line}cliClientID = \"cairn-cli\"\nrequestedScopes = {SCOPES}\n{extra}"
    ))
    .expect("oidc config");
    config.oidc = Some(oidc);
    config.validate().expect("valid config");
    let store = Store::open(dir.path()).expect("store");
    let auth = Arc::new(Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth"));
    let admin_password = auth
        .ensure_admin()
        .await
        .expect("ensure admin")
        .expect("new store")
        .expose()
        .to_owned();
    let state = AppState::new(StateParts {
        auth,
        kube: None,
        namespace: "argocd".into(),
        secure_cookies: false,
        public_url: Some(base.to_owned()),
        metrics: None,
    });
    let app = api::router(state);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Cairn {
        base: base.to_owned(),
        admin_password,
        server,
        _dir: dir,
    }
}

/// A browser without JavaScript: follows nothing by itself, keeps cookies per host:port.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    fn new() -> Browser {
        Self::trusting(None)
    }

    /// A browser that also trusts the CA in PEM file `ca`.
    fn trusting(ca: Option<&std::path::Path>) -> Browser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30));
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).expect("CA file");
            builder =
                builder.add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("CA PEM"));
        }
        Browser {
            http: builder.build().expect("client"),
            cookies: HashMap::new(),
        }
    }

    fn origin(url: &Url) -> String {
        format!(
            "{}:{}",
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or(0)
        )
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let jar = self.cookies.get(&Self::origin(url))?;
        let path = url.path();
        let pairs: Vec<String> = jar
            .iter()
            .filter(|(k, _)| !k.starts_with("cairn_oidc_state") || path == "/auth/callback")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn remember(&mut self, url: &Url, resp: &reqwest::Response) {
        let jar = self.cookies.entry(Self::origin(url)).or_default();
        for set in resp.headers().get_all(header::SET_COOKIE) {
            let Ok(set) = set.to_str() else { continue };
            let first = set.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let expired = set.contains("Max-Age=0") || value.is_empty();
            if expired {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, url: &Url) -> reqwest::Response {
        let req = match self.cookie_header(url) {
            Some(c) => req.header(header::COOKIE, c),
            None => req,
        };
        let resp = req.send().await.expect("request");
        self.remember(url, &resp);
        resp
    }

    async fn get(&mut self, url: &Url, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.http.get(url.clone());
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        self.send(req, url).await
    }

    async fn post_form(&mut self, url: &Url, form: &[(&str, &str)]) -> reqwest::Response {
        let body = Url::parse_with_params("x:", form)
            .expect("form")
            .query()
            .unwrap_or_default()
            .to_owned();
        let req = self
            .http
            .post(url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(req, url).await
    }

    fn session(&self, base: &str) -> Option<String> {
        let url = Url::parse(base).ok()?;
        self.cookies
            .get(&Self::origin(&url))?
            .get("cairn_session")
            .cloned()
    }
}

fn location(resp: &reqwest::Response, base: &Url) -> Url {
    let loc = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{} without Location", resp.status()));
    base.join(loc).expect("Location is a URL")
}

/// How the user authenticates at Dex.
enum As<'a> {
    /// An authproxy connector (`platform-admins`, `data-readers`) with this user.
    Proxy { connector: &'a str, user: &'a str },
    /// Dex's own password form (`local` connector).
    Password { email: &'a str, password: &'a str },
}

/// Where a login through Dex ended: cairn's callback URL (not yet visited).
async fn through_dex(browser: &mut Browser, dex: &DexServer, start: Url, who: &As<'_>) -> Url {
    // Dex's authorization endpoint lists the connectors (its own selection page).
    let page = browser.get(&start, &[]).await;
    assert_eq!(page.status(), StatusCode::OK, "Dex selection page");
    let html = page.text().await.expect("page");
    let connector = match who {
        As::Proxy { connector, .. } => connector,
        As::Password { .. } => &"local",
    };
    assert!(
        html.contains(&format!("/dex/auth/{connector}")),
        "Dex lists connector {connector}: {html}"
    );
    let mut url = start.clone();
    url.set_path(&format!("/dex/auth/{connector}"));
    let proxy_headers: Vec<(&str, &str)> = match who {
        As::Proxy { user, .. } => vec![("X-Remote-User", *user)],
        As::Password { .. } => vec![],
    };
    for _hop in 0..10 {
        let resp = browser.get(&url, &proxy_headers).await;
        let status = resp.status();
        if status.is_redirection() {
            let next = location(&resp, &url);
            if next.path() == "/auth/callback" {
                return next;
            }
            url = next;
            continue;
        }
        assert_eq!(status, StatusCode::OK, "Dex at {url}: {}", dex.log_tail(20));
        // Dex's password form: POST it where it was served.
        let As::Password { email, password } = who else {
            panic!("unexpected page at {url}");
        };
        let resp = browser
            .post_form(&url, &[("login", email), ("password", password)])
            .await;
        assert!(
            resp.status().is_redirection(),
            "Dex accepts the password: {}",
            resp.status()
        );
        let next = location(&resp, &url);
        if next.path() == "/auth/callback" {
            return next;
        }
        url = next;
    }
    panic!(
        "no redirect back to cairn within 10 hops; Dex log:\n{}",
        dex.log_tail(30)
    );
}

/// `/auth/login` → Dex → the callback URL, with the state cookie set in `browser`.
async fn start_login(
    browser: &mut Browser,
    cairn: &Cairn,
    dex: &DexServer,
    return_url: Option<&str>,
    who: &As<'_>,
) -> Url {
    let mut login = Url::parse(&format!("{}/auth/login", cairn.base)).expect("url");
    if let Some(r) = return_url {
        login.query_pairs_mut().append_pair("return_url", r);
    }
    let resp = browser.get(&login, &[]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "/auth/login redirects"
    );
    let to_dex = location(&resp, &login);
    assert!(to_dex.as_str().starts_with(&dex.issuer), "{to_dex}");
    let q: HashMap<String, String> = to_dex.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["client_id"], "cairn");
    assert_eq!(q["scope"], "openid profile email groups federated:id");
    through_dex(browser, dex, to_dex, who).await
}

async fn userinfo(browser: &mut Browser, cairn: &Cairn) -> (StatusCode, serde_json::Value) {
    let url = Url::parse(&format!("{}/api/v1/session/userinfo", cairn.base)).expect("url");
    let resp = browser.get(&url, &[]).await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or_default())
}

async fn sync_status(browser: &mut Browser, cairn: &Cairn) -> StatusCode {
    let url = Url::parse(&format!(
        "{}/api/v1/applications/guestbook/sync",
        cairn.base
    ))
    .expect("url");
    let req = browser
        .http
        .post(url.clone())
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{}");
    browser.send(req, &url).await.status()
}

async fn setup(extra: &str) -> Option<(DexServer, Cairn)> {
    setup_with(extra, &[]).await
}

async fn setup_with(extra: &str, dex_args: &[&'static str]) -> Option<(DexServer, Cairn)> {
    if !DexServer::wanted("oidc_dex") {
        return None;
    }
    let (listener, base) = bind().await;
    let callback = format!("{base}/auth/callback");
    let dex_args = dex_args.to_vec();
    let dex = tokio::task::spawn_blocking(move || DexServer::start_with(&[&callback], &dex_args))
        .await
        .expect("join")
        .expect("dex starts");
    let cairn = cairn(listener, &base, &dex.issuer, &dex.client_secret, extra).await;
    Some((dex, cairn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_from_dex_decide_rbac() {
    let Some((dex, cairn)) = setup("").await else {
        return;
    };
    // A platform admin may sync.
    let mut admin = Browser::new();
    let who = As::Proxy {
        connector: "platform-admins",
        user: "alice@example.com",
    };
    let callback = start_login(
        &mut admin,
        &cairn,
        &dex,
        Some("/applications/guestbook"),
        &who,
    )
    .await;
    let resp = admin.get(&callback, &[]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        resp.text().await
    );
    assert_eq!(
        resp.headers()[header::LOCATION],
        "/applications/guestbook",
        "the same-origin return URL is kept"
    );
    let set_cookies: Vec<String> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let session_cookie = set_cookies
        .iter()
        .find(|c| c.starts_with("cairn_session="))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"));
    assert!(
        set_cookies
            .iter()
            .any(|c| c.starts_with("cairn_oidc_state=;") && c.contains("Max-Age=0")),
        "the state cookie is cleared: {set_cookies:?}"
    );
    let (status, info) = userinfo(&mut admin, &cairn).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["username"], "alice@example.com");
    assert_eq!(info["groups"], serde_json::json!(["platform-admins"]));
    assert_eq!(info["iss"], dex.issuer.as_str());
    let status = sync_status(&mut admin, &cairn).await;
    assert!(
        status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
        "platform-admins pass the sync gate (no cluster here: {status})"
    );

    // A data reader sees the user info but may not sync.
    let mut reader = Browser::new();
    let who = As::Proxy {
        connector: "data-readers",
        user: "bob@example.com",
    };
    let callback = start_login(&mut reader, &cairn, &dex, None, &who).await;
    let resp = reader.get(&callback, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/");
    let (_, info) = userinfo(&mut reader, &cairn).await;
    assert_eq!(info["groups"], serde_json::json!(["data-readers"]));
    assert_eq!(
        sync_status(&mut reader, &cairn).await,
        StatusCode::FORBIDDEN
    );
    let apps = Url::parse(&format!("{}/api/v1/applications", cairn.base)).expect("url");
    let status = reader.get(&apps, &[]).await.status();
    assert!(
        status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
        "data-readers pass the list gate (role:readonly): {status}"
    );

    // Logout ends the session.
    let url = Url::parse(&format!("{}/auth/logout", cairn.base)).expect("url");
    let req = reader.http.post(url.clone()).header(CSRF_HEADER, "1");
    let resp = reader.send(req, &url).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["redirect"], "/login");
    assert!(reader.session(&cairn.base).is_none(), "cookie cleared");
    assert_eq!(
        userinfo(&mut reader, &cairn).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The admin's session is untouched.
    assert_eq!(userinfo(&mut admin, &cairn).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dex_password_form_login_and_logout_url() {
    let Some((dex, cairn)) =
        setup("logoutURL = \"http://127.0.0.1:1/logout?next={{logoutRedirectURL}}\"\n").await
    else {
        return;
    };
    let mut b = Browser::new();
    let who = As::Password {
        email: "local@example.com",
        password: "password",
    };
    let callback = start_login(&mut b, &cairn, &dex, None, &who).await;
    let resp = b.get(&callback, &[]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        resp.text().await
    );
    let (status, info) = userinfo(&mut b, &cairn).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["username"], "6f1c2b0e-0000-4000-8000-000000000001");
    assert_eq!(info["groups"], serde_json::json!([]));
    // No group, no default role: no sync.
    assert_eq!(sync_status(&mut b, &cairn).await, StatusCode::FORBIDDEN);
    // A wrong password stays at Dex.
    let mut other = Browser::new();
    let mut login = Url::parse(&format!("{}/auth/login", cairn.base)).expect("url");
    let resp = other.get(&login, &[]).await;
    login = location(&resp, &login);
    login.set_path("/dex/auth/local");
    let mut url = login;
    for _ in 0..5 {
        let resp = other.get(&url, &[]).await;
        if !resp.status().is_redirection() {
            break;
        }
        url = location(&resp, &url);
    }
    let resp = other
        .post_form(
            &url,
            &[("login", "local@example.com"), ("password", "wrong")],
        )
        .await;
    assert!(
        !resp.status().is_redirection(),
        "a wrong password is refused by Dex"
    );
    // Logout sends an SSO user to the provider's logoutURL.
    let url = Url::parse(&format!("{}/auth/logout", cairn.base)).expect("url");
    let req = b.http.post(url.clone()).header(CSRF_HEADER, "1");
    let body: serde_json::Value = b.send(req, &url).await.json().await.expect("json");
    assert_eq!(
        body["redirect"],
        format!("http://127.0.0.1:1/logout?next={}", cairn.base).as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_state_reused_code_missing_cookie_and_absolute_return_url_fail() {
    let Some((dex, cairn)) = setup("").await else {
        return;
    };
    let who = As::Proxy {
        connector: "platform-admins",
        user: "mallory@example.com",
    };
    // An absolute return URL is replaced by "/".
    let mut b = Browser::new();
    let first = start_login(&mut b, &cairn, &dex, Some("https://evil.example/"), &who).await;
    let state_cookie = b
        .cookie_header(&first)
        .expect("the state cookie goes to the callback");
    let resp = b.get(&first, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()[header::LOCATION], "/", "no open redirect");

    // The same callback again (state and code replayed, even with the old cookie): refused.
    let mut replay = Browser::new();
    let resp = replay
        .get(&first, &[("Cookie", state_cookie.as_str())])
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = resp.text().await.expect("body");
    assert!(body.contains("state"), "{body}");
    assert!(replay.session(&cairn.base).is_none());

    // A fresh login's state with the first login's code: the provider refuses the code.
    let mut c = Browser::new();
    let second = start_login(&mut c, &cairn, &dex, None, &who).await;
    let old_code = first
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let mut reused = second.clone();
    let kept: Vec<(String, String)> = second
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "code" {
                old_code.clone()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    reused.query_pairs_mut().clear().extend_pairs(kept);
    let resp = c.get(&reused, &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = resp.text().await.expect("body");
    assert!(body.contains("token endpoint refused the code"), "{body}");
    assert!(c.session(&cairn.base).is_none());

    // A callback without the browser's state cookie (a login started in another browser).
    let mut d = Browser::new();
    let third = start_login(&mut d, &cairn, &dex, None, &who).await;
    let mut stranger = Browser::new();
    let resp = stranger.get(&third, &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.text().await.expect("body").contains("cookie"));
    // ... and that consumed the state: the rightful browser cannot finish either.
    assert_eq!(d.get(&third, &[]).await.status(), StatusCode::UNAUTHORIZED);

    // A callback with no state at all.
    let mut e = Browser::new();
    let mut no_state = Url::parse(&format!("{}/auth/callback", cairn.base)).expect("url");
    no_state.query_pairs_mut().append_pair("code", "x");
    assert_eq!(
        e.get(&no_state, &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn misconfigured_issuer_leaves_local_login_working() {
    // Nothing listens on the issuer's port: discovery fails.
    let (dead, _) = bind().await;
    let dead_issuer = format!("http://{}/dex", dead.local_addr().expect("addr"));
    drop(dead);
    let (listener, base) = bind().await;
    let cairn = cairn(listener, &base, &dead_issuer, "s", "").await;
    let mut b = Browser::new();
    let info_url = Url::parse(&format!("{base}/auth/info")).expect("url");
    let info: serde_json::Value = b.get(&info_url, &[]).await.json().await.expect("json");
    assert_eq!(info["enabled"], true);
    assert_eq!(info["ready"], false);
    let error = info["error"].as_str().unwrap_or_default();
    assert!(error.contains(&dead_issuer), "{error}");
    // The login redirect fails with the same clear error, not a crash.
    let login = Url::parse(&format!("{base}/auth/login")).expect("url");
    let resp = b.get(&login, &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.text().await.expect("body").contains(&dead_issuer));
    // Local login still works.
    let url = Url::parse(&format!("{base}/api/v1/session")).expect("url");
    let req = b
        .http
        .post(url.clone())
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            serde_json::json!({"username": "admin", "password": cairn.admin_password}).to_string(),
        );
    let resp = b.send(req, &url).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(userinfo(&mut b, &cairn).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_client_secret_ref_without_a_cluster_is_one_clear_error() {
    if !DexServer::wanted("oidc_dex") {
        return;
    }
    let (listener, base) = bind().await;
    let callback = format!("{base}/auth/callback");
    let dex = tokio::task::spawn_blocking(move || DexServer::start(&[&callback]))
        .await
        .expect("join")
        .expect("dex starts");
    // This in-process server has no cluster client, so the Secret cannot be read: start-up is
    // not blocked, /auth/info names the Secret and why, and a login cannot start.
    let cairn = cairn(
        listener,
        &base,
        &dex.issuer,
        "",
        "clientSecretRef = { namespace = \"argocd\", name = \"cairn-oidc\", key = \"clientSecret\" }\n",
    )
    .await;
    let mut b = Browser::new();
    let info_url = Url::parse(&format!("{base}/auth/info")).expect("url");
    let info: serde_json::Value = b.get(&info_url, &[]).await.json().await.expect("json");
    assert_eq!(info["ready"], false, "{info}");
    let error = info["error"].as_str().unwrap_or_default();
    assert!(
        error.ends_with(
            "oidc.clientSecretRef: Secret argocd/cairn-oidc cannot be read: no Kubernetes cluster is configured"
        ),
        "{error}"
    );
    assert!(!error.contains(&dex.client_secret));
    let login = Url::parse(&format!("{base}/auth/login")).expect("url");
    let resp = b.get(&login, &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Local login still works.
    let url = Url::parse(&format!("{base}/api/v1/session")).expect("url");
    let req = b
        .http
        .post(url.clone())
        .header(CSRF_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            serde_json::json!({"username": "admin", "password": cairn.admin_password}).to_string(),
        );
    assert_eq!(b.send(req, &url).await.status(), StatusCode::OK);
}

/// The key ids Dex publishes.
async fn dex_kids(dex: &DexServer) -> Vec<String> {
    let keys: serde_json::Value = reqwest::get(format!("{}/keys", dex.issuer))
        .await
        .expect("Dex keys")
        .json()
        .await
        .expect("JWKS");
    keys["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signing_key_rotated_at_dex_is_picked_up_without_restart() {
    let Some((dex, cairn)) = setup_with("", &["--rotate-keys-after", "1s"]).await else {
        return;
    };
    let who = As::Proxy {
        connector: "platform-admins",
        user: "alice@example.com",
    };
    // First login: cairn caches Dex's JWKS as it is now.
    let mut b = Browser::new();
    let callback = start_login(&mut b, &cairn, &dex, None, &who).await;
    assert_eq!(b.get(&callback, &[]).await.status(), StatusCode::SEE_OTHER);
    let before = dex_kids(&dex).await;
    // Dex checks its keys every 30 s; with a 1 s lifetime the next check rotates. Wait (bounded)
    // until a key id appears that cairn's cache cannot know.
    let mut rotated = false;
    for _ in 0..90 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        if dex_kids(&dex).await.iter().any(|k| !before.contains(k)) {
            rotated = true;
            break;
        }
    }
    assert!(
        rotated,
        "Dex did not rotate its signing key within 90 s: {}",
        dex.log_tail(10)
    );
    // Second login: the ID token is signed by the new key; cairn re-fetches and accepts it.
    let mut c = Browser::new();
    let callback = start_login(&mut c, &cairn, &dex, None, &who).await;
    let resp = c.get(&callback, &[]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "login after rotation: {:?}",
        resp.text().await
    );
    assert_eq!(userinfo(&mut c, &cairn).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_sso_login_through_dex() {
    let Some((dex, cairn)) = setup("").await else {
        return;
    };
    // The CLI side, in this process: it listens on a loopback port and hands the provider URL
    // to `show_url`; the "browser" below takes it from there.
    let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
    let server = cairn.base.clone();
    let cli = tokio::spawn(async move {
        cairn::cli::sso::login_sso_token(&server, 0, move |url| {
            let _ = url_tx.send(url.to_owned());
        })
        .await
    });
    let url = Url::parse(&url_rx.await.expect("the CLI shows a URL")).expect("url");
    assert!(url.as_str().starts_with(&dex.issuer), "{url}");
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "cairn-cli");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["redirect_uri"].starts_with("http://localhost:"), "{q:?}");
    let mut browser = Browser::new();
    let who = As::Proxy {
        connector: "data-readers",
        user: "carol@example.com",
    };
    let callback = through_dex(&mut browser, &dex, url, &who).await;
    assert_eq!(callback.host_str(), Some("localhost"));
    let page = browser.get(&callback, &[]).await;
    assert_eq!(page.status(), StatusCode::OK);
    let (login, token) = cli.await.expect("join").expect("CLI login succeeds");
    assert_eq!(login.username, "carol@example.com");
    assert_eq!(login.groups, ["data-readers"]);
    // The token is a bearer credential like a password login's session.
    let info: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/session/userinfo", cairn.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["username"], "carol@example.com");
    assert_eq!(info["groups"], serde_json::json!(["data-readers"]));
    // A redirect URI that is not loopback is refused.
    let resp = reqwest::Client::new()
        .post(format!("{}/auth/cli/login", cairn.base))
        .json(&serde_json::json!({"redirectURI": "https://evil.example/cb"}))
        .send()
        .await
        .expect("cli login");
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_provider_needs_its_root_ca() {
    if !DexServer::wanted("oidc_dex") {
        return;
    }
    let (trusting_listener, trusting_base) = bind().await;
    let (plain_listener, plain_base) = bind().await;
    let callbacks = [
        format!("{trusting_base}/auth/callback"),
        format!("{plain_base}/auth/callback"),
    ];
    let dex = tokio::task::spawn_blocking(move || {
        DexServer::start_with(&[&callbacks[0], &callbacks[1]], &["--tls"])
    })
    .await
    .expect("join")
    .expect("dex starts with TLS");
    assert!(dex.issuer.starts_with("https://"), "{}", dex.issuer);
    let ca = dex.ca.clone().expect("DEX_CA");

    // Without rootCA the system roots do not know Dex's CA: SSO reports it, local login works.
    let plain = cairn(
        plain_listener,
        &plain_base,
        &dex.issuer,
        &dex.client_secret,
        "",
    )
    .await;
    let mut b = Browser::new();
    let info_url = Url::parse(&format!("{plain_base}/auth/info")).expect("url");
    let info: serde_json::Value = b.get(&info_url, &[]).await.json().await.expect("json");
    assert_eq!(info["ready"], false);
    let error = info["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate"), "{error}");
    let login = Url::parse(&format!("{plain_base}/auth/login")).expect("url");
    assert_eq!(
        b.get(&login, &[]).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    drop(plain);

    // With rootCAFile naming it, the whole login works over TLS.
    let extra = format!("rootCAFile = {:?}\n", ca.display().to_string());
    let trusting = cairn(
        trusting_listener,
        &trusting_base,
        &dex.issuer,
        &dex.client_secret,
        &extra,
    )
    .await;
    let mut b = Browser::trusting(Some(&ca));
    let who = As::Proxy {
        connector: "platform-admins",
        user: "tls@example.com",
    };
    let callback = start_login(&mut b, &trusting, &dex, None, &who).await;
    let resp = b.get(&callback, &[]).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        resp.text().await
    );
    let (status, info) = userinfo(&mut b, &trusting).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["username"], "tls@example.com");
}
