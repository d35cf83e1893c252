//! The embedded web UI: serves the single-page app built into `web/dist` (by `npm run build` in
//! `web/`) from inside the binary.
//!
//! This module owns every non-API path of the HTTP server. The API router answers `/api/**`
//! first; this router is mounted as its fallback and answers the rest:
//!
//! - `/assets/<hashed name>` — Vite's content-hashed bundles, cached for a year as `immutable`
//!   (a new build has new names, so a cached copy can never be stale); a missing one is a 404,
//!   never `index.html` (a stale tab asking for last build's bundle must fail loudly, not parse
//!   HTML as JavaScript).
//! - other files at the root of `dist` (`favicon.svg`, …) — served with `no-cache`.
//! - any other GET/HEAD path — `index.html` with `no-cache` (SPA fallback: the client-side router
//!   reads the path), so a reload of `/workflows?namespace=ml` works.
//! - `/api` and below — never the UI: a JSON 404, because reaching this router means no API
//!   route matched.
//!
//! Invariants:
//! - Only files inside `web/dist` are ever served. Paths with `.`/`..` segments, backslashes, NUL
//!   or percent-encoded dots, slashes or backslashes are refused (404) before any lookup, and
//!   only names made of `[A-Za-z0-9._-]` segments that do not start with a dot are looked up.
//! - HTML responses carry a Content-Security-Policy (`default-src 'self'`, no framing) and every
//!   response carries `X-Content-Type-Options: nosniff`.
//! - Serving cannot fail: every outcome is an HTTP response, so this module has no error type.
//!
//! Embedding is behind the default Cargo feature `ui`. Without it, or when `web/dist` had no
//! `index.html` when the binary was built, every page is a short HTML note saying how to build
//! the UI. (Debug builds read `web/dist` from disk at run time, as rust-embed does, so a fresh
//! `npm run build` shows up without recompiling.)

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::header::{
    ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;

/// Cache policy of content-hashed bundles: a changed file gets a new name, so a year is safe.
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache policy of everything else: the browser may keep it but must revalidate (ETag) first,
/// so a new build is picked up on the next load.
const CACHE_REVALIDATE: &str = "no-cache";
/// The UI loads only its own scripts, styles and images, calls only its own API, and is never
/// framed (clickjacking).
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";
/// Same-origin API calls keep their referrer; nothing leaks to other sites.
const REFERRER_POLICY_VALUE: &str = "same-origin";
/// The folder, relative to the crate root, that holds the built UI.
const DIST_DIR: &str = "web/dist";
/// The SPA's entry page.
const INDEX: &str = "index.html";
/// Vite puts every hashed bundle under this folder of `dist`.
const ASSETS_PREFIX: &str = "assets/";

/// One file of the built UI.
#[derive(Clone)]
pub struct Asset {
    /// The file's bytes.
    pub data: Cow<'static, [u8]>,
    /// SHA-256 of `data`, used as the ETag.
    pub sha256: [u8; 32],
    /// A content type guessed by the source, used when [`content_type`] does not know the
    /// extension.
    pub guessed_type: Option<String>,
}

impl std::fmt::Debug for Asset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes are a bundle: their length says enough.
        f.debug_struct("Asset")
            .field("len", &self.data.len())
            .field("sha256", &hex::encode(self.sha256))
            .field("guessed_type", &self.guessed_type)
            .finish()
    }
}

/// Where the UI's files come from: the embedded build in production, a fixed map in tests.
pub trait AssetSource: Send + Sync + 'static {
    /// The file at `name`, a path relative to `dist` without a leading slash (`assets/x.js`).
    /// Callers pass only names that passed the traversal checks of this module.
    fn get(&self, name: &str) -> Option<Asset>;

    /// Why there is no UI, when there is none: shown on the placeholder page.
    fn missing_reason(&self) -> &'static str;
}

/// The UI embedded in this binary (empty when built without the `ui` feature).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedUi;

#[cfg(feature = "ui")]
#[derive(rust_embed::RustEmbed)]
#[folder = "web/dist"]
#[allow_missing = true]
struct Dist;

impl AssetSource for EmbeddedUi {
    #[cfg(feature = "ui")]
    fn get(&self, name: &str) -> Option<Asset> {
        let file = Dist::get(name)?;
        Some(Asset {
            sha256: file.metadata.sha256_hash(),
            guessed_type: Some(file.metadata.mimetype().to_owned()),
            data: file.data,
        })
    }

    #[cfg(not(feature = "ui"))]
    fn get(&self, _name: &str) -> Option<Asset> {
        None
    }

    fn missing_reason(&self) -> &'static str {
        if cfg!(feature = "ui") {
            "The web UI was not built when this binary was compiled (web/dist has no index.html)."
        } else {
            "This binary was built without the web UI (Cargo feature `ui` disabled)."
        }
    }
}

/// The router that serves the embedded UI; mount it as the fallback after the API routes:
/// `Router::new().nest("/api", api).fallback_service(web::router())` or
/// `api_router.merge(...)`-style with `.fallback_service(web::router())`.
pub fn router() -> Router<()> {
    router_with(Arc::new(EmbeddedUi))
}

/// [`router`] over any [`AssetSource`] (tests use an in-memory one).
pub fn router_with(source: Arc<dyn AssetSource>) -> Router<()> {
    Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let source = Arc::clone(&source);
        async move { respond(source.as_ref(), &method, &uri, &headers) }
    })
}

/// A fallback handler over the embedded UI, for `Router::fallback(web::fallback)`.
pub async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    respond(&EmbeddedUi, &method, &uri, &headers)
}

/// What a request path asks for, decided from the path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `/api` or below: not the UI's (no API route matched).
    Api,
    /// A traversal attempt or a malformed path: refused.
    Rejected,
    /// The entry page itself (`/` or `/index.html`).
    Index,
    /// A hashed bundle under `assets/` (name relative to `dist`): 404 when missing.
    Asset(&'a str),
    /// A file name at some other place of `dist`: served if it exists, else the SPA page.
    File(&'a str),
    /// A client-side route (`/workflows`, `/applications/`): the SPA page.
    Route,
}

/// Classifies a request path (the URI's path, still percent-encoded).
pub fn classify(path: &str) -> Target<'_> {
    if path == "/api" || path.starts_with("/api/") {
        return Target::Api;
    }
    let Some(relative) = path.strip_prefix('/') else {
        // Origin-form paths always start with '/'; anything else (`*`, absolute-form) is no page.
        return Target::Rejected;
    };
    if relative.split('/').any(is_dangerous_segment) {
        return Target::Rejected;
    }
    if relative.is_empty() || relative == INDEX {
        return Target::Index;
    }
    if !relative.split('/').all(is_file_segment) {
        return Target::Route;
    }
    if relative.starts_with(ASSETS_PREFIX) {
        Target::Asset(relative)
    } else {
        Target::File(relative)
    }
}

/// A segment that could climb out of `dist` once decoded by someone, or that no sane URL has.
fn is_dangerous_segment(segment: &str) -> bool {
    if segment == "." || segment == ".." || segment.contains(['\\', '\0']) {
        return true;
    }
    let lower = segment.to_ascii_lowercase();
    // Encoded '.', '/', '\' and NUL: a later decoding step must never turn them into a traversal.
    ["%2e", "%2f", "%5c", "%00"]
        .iter()
        .any(|encoded| lower.contains(encoded))
}

/// A segment that can name a file Vite emits: plain ASCII, no leading dot (no dotfiles).
fn is_file_segment(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The Content-Type of a file of `dist`, by extension; `guessed` (from the source) covers
/// extensions this table does not list, and `application/octet-stream` the rest.
pub fn content_type<'a>(name: &str, guessed: Option<&'a str>) -> Cow<'a, str> {
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    let known = match extension.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => {
            return match guessed {
                Some(guess) if !guess.is_empty() => Cow::Borrowed(guess),
                _ => Cow::Borrowed("application/octet-stream"),
            };
        }
    };
    Cow::Borrowed(known)
}

/// The quoted strong ETag of a file: half its SHA-256, which is plenty to tell builds apart.
fn etag(sha256: &[u8; 32]) -> String {
    format!("\"{}\"", hex::encode(&sha256[..16]))
}

/// True when `If-None-Match` lists `etag` (or `*`); weak validators compare equal (RFC 9110
/// uses weak comparison for If-None-Match).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// Answers one request from `source`. Pure apart from reading `source`: the whole policy of
/// this module, testable without a server.
pub fn respond(
    source: &dyn AssetSource,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    let target = classify(uri.path());
    if target == Target::Api {
        return api_not_found();
    }
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed();
    }
    let head = method == Method::HEAD;
    match target {
        Target::Api => api_not_found(),
        Target::Rejected => not_found(head),
        Target::Asset(name) => match source.get(name) {
            Some(asset) => file_response(name, &asset, CACHE_IMMUTABLE, headers, head),
            None => not_found(head),
        },
        Target::File(name) => match source.get(name) {
            Some(asset) => file_response(name, &asset, CACHE_REVALIDATE, headers, head),
            None => index_response(source, headers, head),
        },
        Target::Index | Target::Route => index_response(source, headers, head),
    }
}

fn index_response(source: &dyn AssetSource, headers: &HeaderMap, head: bool) -> Response {
    match source.get(INDEX) {
        Some(asset) => file_response(INDEX, &asset, CACHE_REVALIDATE, headers, head),
        None => not_built(source.missing_reason(), head),
    }
}

fn file_response(
    name: &str,
    asset: &Asset,
    cache_control: &'static str,
    request_headers: &HeaderMap,
    head: bool,
) -> Response {
    let etag = etag(&asset.sha256);
    let content_type = content_type(name, asset.guessed_type.as_deref());
    let is_html = content_type.starts_with("text/html");
    let fresh = not_modified(request_headers, &etag);
    let (status, body, length) = if fresh {
        (StatusCode::NOT_MODIFIED, Body::empty(), None)
    } else if head {
        (StatusCode::OK, Body::empty(), Some(asset.data.len()))
    } else {
        (
            StatusCode::OK,
            Body::from(asset.data.clone()),
            Some(asset.data.len()),
        )
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(
        CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
    );
    out.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(ETAG, value);
    }
    if let Some(length) = length {
        out.insert(CONTENT_LENGTH, HeaderValue::from(length));
    }
    security_headers(out, is_html);
    response
}

fn security_headers(headers: &mut HeaderMap, html: bool) {
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if html {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
        );
        headers.insert(
            REFERRER_POLICY,
            HeaderValue::from_static(REFERRER_POLICY_VALUE),
        );
        // For browsers that predate frame-ancestors.
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
}

fn plain(status: StatusCode, content_type: &'static str, body: String, head: bool) -> Response {
    let length = body.len();
    let mut response = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    *response.status_mut() = status;
    let out = response.headers_mut();
    out.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    out.insert(CACHE_CONTROL, HeaderValue::from_static(CACHE_REVALIDATE));
    out.insert(CONTENT_LENGTH, HeaderValue::from(length));
    security_headers(out, content_type.starts_with("text/html"));
    response
}

fn not_found(head: bool) -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 not found\n".to_owned(),
        head,
    )
}

fn api_not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "application/json",
        serde_json::json!({"error": "not found", "message": "no API endpoint at this path"})
            .to_string(),
        false,
    )
}

fn method_not_allowed() -> Response {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "text/plain; charset=utf-8",
        "405 method not allowed: the web UI answers GET and HEAD only\n".to_owned(),
        false,
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// The placeholder page of a binary without a UI. 200, not an error status: the server works,
/// and this page is the answer a person opening it needs.
fn not_built(reason: &str, head: bool) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>cairn: web UI not built</title></head>\n\
         <body><h1>cairn: web UI not built</h1>\n<p>{reason}</p>\n\
         <p>Build it with <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code> (or <code>make</code>), \
         then rebuild cairn with the default features (<code>cargo build</code>); it embeds <code>{DIST_DIR}</code>.</p>\n\
         <p>The API is available under <code>/api/v1/</code> regardless.</p></body></html>\n"
    );
    plain(StatusCode::OK, "text/html; charset=utf-8", body, head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use sha2::{Digest, Sha256};
    use std::collections::BTreeMap;
    use tower::ServiceExt;

    const INDEX_HTML: &str = "<!doctype html><html><body><div id=\"root\"></div><script type=\"module\" src=\"/assets/index-AbC123.js\"></script></body></html>";
    const APP_JS: &str = "console.log('cairn')";
    const APP_CSS: &str = "body{margin:0}";
    const FAVICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\"/>";

    /// An in-memory `dist`: tests must not depend on whether `npm run build` ran.
    struct MemoryUi {
        files: BTreeMap<&'static str, &'static str>,
    }

    impl MemoryUi {
        fn built() -> Self {
            let files = BTreeMap::from([
                (INDEX, INDEX_HTML),
                ("assets/index-AbC123.js", APP_JS),
                ("assets/index-Xy_9-z.css", APP_CSS),
                ("favicon.svg", FAVICON),
                ("data.bin.unknownext", "??"),
            ]);
            Self { files }
        }

        fn empty() -> Self {
            Self {
                files: BTreeMap::new(),
            }
        }
    }

    impl AssetSource for MemoryUi {
        fn get(&self, name: &str) -> Option<Asset> {
            let text = self.files.get(name)?;
            Some(Asset {
                data: Cow::Borrowed(text.as_bytes()),
                sha256: Sha256::digest(text.as_bytes()).into(),
                guessed_type: None,
            })
        }

        fn missing_reason(&self) -> &'static str {
            "test UI was not built"
        }
    }

    async fn send(
        source: MemoryUi,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::empty()).expect("test request is valid");
        let response = router_with(Arc::new(source))
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body collects")
            .to_bytes();
        (
            status,
            headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    async fn get(uri: &str) -> (StatusCode, HeaderMap, String) {
        send(MemoryUi::built(), Method::GET, uri, &[]).await
    }

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn classify_covers_every_kind_of_path() {
        let cases: &[(&str, Target<'_>)] = &[
            ("/api", Target::Api),
            ("/api/", Target::Api),
            ("/api/v1/nope", Target::Api),
            ("/apis", Target::File("apis")),
            ("/", Target::Index),
            ("/index.html", Target::Index),
            (
                "/assets/index-AbC123.js",
                Target::Asset("assets/index-AbC123.js"),
            ),
            ("/assets/", Target::Route),
            ("/favicon.svg", Target::File("favicon.svg")),
            ("/workflows", Target::File("workflows")),
            ("/applications/", Target::Route),
            ("/applications/my%20app", Target::Route),
            ("/.env", Target::Route),
            ("/assets/.hidden", Target::Route),
            ("/../Cargo.toml", Target::Rejected),
            ("/assets/../../Cargo.toml", Target::Rejected),
            ("/./index.html", Target::Rejected),
            ("/%2e%2e/Cargo.toml", Target::Rejected),
            ("/%2E%2E/Cargo.toml", Target::Rejected),
            ("/assets/%2e%2e%2fCargo.toml", Target::Rejected),
            ("/..%2fCargo.toml", Target::Rejected),
            ("/..%5cCargo.toml", Target::Rejected),
            ("/a\\..\\Cargo.toml", Target::Rejected),
            ("/x%00.js", Target::Rejected),
            ("*", Target::Rejected),
            ("", Target::Rejected),
        ];
        for (path, expected) in cases {
            assert_eq!(classify(path), *expected, "path {path:?}");
        }
    }

    #[test]
    fn content_type_knows_vite_outputs_and_falls_back() {
        let cases = [
            ("index.html", "text/html; charset=utf-8"),
            ("assets/a.js", "text/javascript; charset=utf-8"),
            ("assets/a.MJS", "text/javascript; charset=utf-8"),
            ("assets/a.css", "text/css; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
            ("assets/font.woff2", "font/woff2"),
            ("assets/logo.png", "image/png"),
            ("assets/a.js.map", "application/json"),
            ("noextension", "application/octet-stream"),
            ("x.unknownext", "application/octet-stream"),
        ];
        for (name, expected) in cases {
            assert_eq!(content_type(name, None), expected, "name {name}");
        }
        assert_eq!(
            content_type("x.pdf", Some("application/pdf")),
            "application/pdf"
        );
        assert_eq!(
            content_type("x.css", Some("text/plain")),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type("x.bin", Some("")), "application/octet-stream");
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        let tag = "\"abc\"";
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(IF_NONE_MATCH, HeaderValue::from_str(value).expect("valid"));
            headers
        };
        assert!(not_modified(&with("\"abc\""), tag));
        assert!(not_modified(&with("\"x\", W/\"abc\""), tag));
        assert!(not_modified(&with("*"), tag));
        assert!(!not_modified(&with("\"abcd\""), tag));
        assert!(!not_modified(&HeaderMap::new(), tag));
    }

    #[tokio::test]
    async fn hashed_assets_are_immutable_with_their_content_type() {
        let (status, headers, body) = get("/assets/index-AbC123.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, APP_JS);
        assert_eq!(
            header(&headers, "content-type"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(header(&headers, "cache-control"), CACHE_IMMUTABLE);
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "content-length"), APP_JS.len().to_string());
        // Bundles are not documents: no page policy on them.
        assert_eq!(header(&headers, "content-security-policy"), "");

        let (status, headers, body) = get("/assets/index-Xy_9-z.css").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, APP_CSS);
        assert_eq!(header(&headers, "content-type"), "text/css; charset=utf-8");
    }

    #[tokio::test]
    async fn missing_hashed_asset_is_404_not_index() {
        let (status, headers, body) = get("/assets/index-OLD.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.contains("<html"), "got {body}");
        assert_eq!(
            header(&headers, "content-type"),
            "text/plain; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn index_is_revalidated_and_carries_security_headers() {
        for path in ["/", "/index.html"] {
            let (status, headers, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(body, INDEX_HTML, "{path}");
            assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
            assert_eq!(header(&headers, "cache-control"), "no-cache");
            let csp = header(&headers, "content-security-policy");
            assert!(csp.starts_with("default-src 'self'"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
            assert_eq!(header(&headers, "referrer-policy"), "same-origin");
            assert_eq!(header(&headers, "x-frame-options"), "DENY");
            assert!(header(&headers, "etag").starts_with('"'));
        }
    }

    #[tokio::test]
    async fn client_routes_fall_back_to_index() {
        for path in [
            "/login",
            "/applications",
            "/workflows?namespace=ml",
            "/applications/guestbook/",
            "/applications/my%20app",
            "/some.dotted.name",
        ] {
            let (status, headers, body) = get(path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(body, INDEX_HTML, "{path}");
            assert_eq!(header(&headers, "cache-control"), "no-cache", "{path}");
        }
    }

    #[tokio::test]
    async fn root_files_are_served_and_revalidated() {
        let (status, headers, body) = get("/favicon.svg").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, FAVICON);
        assert_eq!(header(&headers, "content-type"), "image/svg+xml");
        assert_eq!(header(&headers, "cache-control"), "no-cache");
        let (_, headers, _) = get("/data.bin.unknownext").await;
        assert_eq!(header(&headers, "content-type"), "application/octet-stream");
    }

    #[tokio::test]
    async fn traversal_attempts_never_leave_dist() {
        let cargo_toml = include_str!("../Cargo.toml");
        for path in [
            "/../Cargo.toml",
            "/%2e%2e/Cargo.toml",
            "/%2E%2E/%2E%2E/Cargo.toml",
            "/assets/../../Cargo.toml",
            "/assets/%2e%2e/%2e%2e/Cargo.toml",
            "/..%2fCargo.toml",
            "/..%5c..%5cCargo.toml",
            "/src/web.rs",
            "/Cargo.toml",
            "/.git/config",
        ] {
            let (status, _, body) = get(path).await;
            assert!(
                status == StatusCode::NOT_FOUND || body == INDEX_HTML,
                "{path}: {status} {body}"
            );
            assert!(!body.contains("[package]"), "{path} leaked Cargo.toml");
            assert_ne!(body, cargo_toml, "{path}");
        }
        let (status, _, _) = get("/%2e%2e/Cargo.toml").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn embedded_source_never_serves_files_outside_dist() {
        // Whatever state web/dist is in, the real source must not reach the crate root.
        let source = EmbeddedUi;
        for name in [
            "../Cargo.toml",
            "../src/web.rs",
            "/etc/passwd",
            "..%2fCargo.toml",
        ] {
            assert!(source.get(name).is_none(), "{name}");
        }
        for path in ["/../Cargo.toml", "/%2e%2e/Cargo.toml", "/Cargo.toml"] {
            let uri: Uri = path.parse().expect("valid uri");
            let response = respond(&source, &Method::GET, &uri, &HeaderMap::new());
            let bytes = response
                .into_body()
                .collect()
                .await
                .expect("body collects")
                .to_bytes();
            let body = String::from_utf8_lossy(&bytes);
            assert!(!body.contains("[package]"), "{path} leaked Cargo.toml");
        }
    }

    #[tokio::test]
    async fn api_paths_are_not_the_ui() {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            let (status, headers, body) =
                send(MemoryUi::built(), method.clone(), "/api/v1/nothing", &[]).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
            assert_eq!(header(&headers, "content-type"), "application/json");
            let json: serde_json::Value = serde_json::from_str(&body).expect("json body");
            assert_eq!(json["error"], "not found");
        }
        let (status, _, body) = get("/api").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.contains("<html"));
    }

    #[tokio::test]
    async fn head_has_headers_and_no_body() {
        let (status, headers, body) = send(
            MemoryUi::built(),
            Method::HEAD,
            "/assets/index-AbC123.js",
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "");
        assert_eq!(header(&headers, "content-length"), APP_JS.len().to_string());
        assert_eq!(header(&headers, "cache-control"), CACHE_IMMUTABLE);

        let (status, headers, body) =
            send(MemoryUi::built(), Method::HEAD, "/workflows", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "");
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert_eq!(
            header(&headers, "content-length"),
            INDEX_HTML.len().to_string()
        );

        let (status, _, body) = send(MemoryUi::built(), Method::HEAD, "/assets/nope.js", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, "");
    }

    #[tokio::test]
    async fn other_methods_are_refused_with_allow() {
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let (status, headers, _) = send(MemoryUi::built(), method.clone(), "/", &[]).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(header(&headers, "allow"), "GET, HEAD");
        }
    }

    #[tokio::test]
    async fn matching_etag_gives_304_without_body() {
        let (_, headers, _) = get("/").await;
        let tag = header(&headers, "etag").to_owned();
        let (status, headers, body) = send(
            MemoryUi::built(),
            Method::GET,
            "/",
            &[("if-none-match", &tag)],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert_eq!(body, "");
        assert_eq!(header(&headers, "etag"), tag);
        assert_eq!(header(&headers, "cache-control"), "no-cache");

        let (status, _, body) = send(
            MemoryUi::built(),
            Method::GET,
            "/",
            &[("if-none-match", "\"stale\"")],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, INDEX_HTML);
    }

    #[tokio::test]
    async fn without_a_build_pages_explain_how_to_build() {
        let (status, headers, body) = send(MemoryUi::empty(), Method::GET, "/workflows", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
        assert!(body.contains("web UI not built"), "{body}");
        assert!(body.contains("test UI was not built"), "{body}");
        assert!(body.contains("npm run build"), "{body}");
        assert!(header(&headers, "content-security-policy").contains("default-src 'self'"));
        let (status, _, _) = send(
            MemoryUi::empty(),
            Method::GET,
            "/assets/index-AbC123.js",
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn embedded_reason_matches_the_feature() {
        let reason = EmbeddedUi.missing_reason();
        if cfg!(feature = "ui") {
            assert!(reason.contains("web/dist"), "{reason}");
        } else {
            assert!(reason.contains("feature `ui`"), "{reason}");
        }
    }

    #[test]
    fn asset_debug_does_not_dump_bytes() {
        let asset = Asset {
            data: Cow::Borrowed(b"secret-looking bytes"),
            sha256: [0; 32],
            guessed_type: None,
        };
        let debug = format!("{asset:?}");
        assert!(debug.contains("len: 20"), "{debug}");
        assert!(!debug.contains("secret-looking"), "{debug}");
    }
}
