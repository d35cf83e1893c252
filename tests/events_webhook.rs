//! Event source endpoints over the real router and a real embedded bus (redb in a tempdir):
//! an accepted request is on the bus when the 2xx arrives; every bad input is refused with its
//! status, counted, and never stored; GitHub signatures are computed here with an HMAC written
//! independently of cairn's; GitLab tokens; a dedicated port.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use cairn::api::{self, AppState, StateParts};
use cairn::auth::Auth;
use cairn::auth::password::Hasher;
use cairn::config::{Config, EventsConfig};
use cairn::events::bus::embedded::{EmbeddedBus, Retention};
use cairn::events::bus::{AnyBus, Bus, ConsumerConfig, EventQuery, Topic};
use cairn::events::sources::webhook::{EventsState, LiveEndpoint, SecretState, SecretValue, Table};
use cairn::events::sources::{self, controller};
use cairn::events::types::EventSource;
use cairn::store::Store;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

const TOKEN: &str = "webhook-token-0123";
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITLAB_TOKEN: &str = "gitlab-token-xyz";

struct Fixture {
    app: Router,
    bus: AnyBus,
    state: EventsState,
    _dir: tempfile::TempDir,
}

fn event_sources() -> Vec<EventSource> {
    let v = json!([
        {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": {"namespace": "ev", "name": "webhook", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"webhook": {
                "example": {"endpoint": "/example", "method": "POST", "port": "12000"},
                "secured": {"endpoint": "/secured", "method": "POST",
                            "authSecret": {"name": "tok", "key": "token"}, "maxPayloadSize": 64,
                            "metadata": {"team": "ml"}},
                "query": {"endpoint": "/hooks/q", "method": "GET"},
                "missing": {"endpoint": "/missing", "method": "POST",
                            "authSecret": {"name": "gone", "key": "token"}}
            }}
        },
        {
            "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
            "metadata": {"namespace": "ev", "name": "git", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {
                "github": {"gh": {
                    "repositories": [{"owner": "o", "names": ["r"]}],
                    "webhook": {"endpoint": "/push", "method": "POST"},
                    "events": ["push"], "webhookSecret": {"name": "gh", "key": "secret"}
                }},
                "gitlab": {"gl": {
                    "projects": ["1"],
                    "webhook": {"endpoint": "/gl", "method": "POST"},
                    "events": ["PushEvents"], "secretToken": {"name": "gl", "key": "token"}
                }}
            }
        }
    ]);
    serde_json::from_value(v).expect("EventSources")
}

/// The table the controller would build, with Secrets resolved from `secrets` (name → value);
/// a referenced Secret not in it is unavailable.
fn table(sources: &[EventSource], secrets: &HashMap<&str, &str>) -> Table {
    let plan = sources::plan(sources);
    Table::new(
        plan.endpoints
            .into_iter()
            .map(|endpoint| {
                let secret = match &endpoint.secret {
                    None => SecretState::NotConfigured,
                    Some(r) => match secrets.get(r.name.as_str()) {
                        Some(v) => SecretState::Ready(SecretValue::new(v.as_bytes())),
                        None => SecretState::Unavailable,
                    },
                };
                LiveEndpoint { endpoint, secret }
            })
            .collect(),
    )
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::with_data_dir(dir.path());
    let store = Store::open(dir.path()).expect("store");
    let bus = AnyBus::Embedded(
        EmbeddedBus::open(
            store.clone(),
            Retention::from_config(&EventsConfig::default()),
        )
        .expect("embedded bus"),
    );
    let auth = Arc::new(
        Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth from config"),
    );
    let state = EventsState::new(bus.clone(), config.events.max_body_bytes);
    state.set_table(table(
        &event_sources(),
        &HashMap::from([("tok", TOKEN), ("gh", GITHUB_SECRET), ("gl", GITLAB_TOKEN)]),
    ));
    let app_state = AppState::new(StateParts {
        auth,
        kube: None,
        namespace: "argocd".into(),
        secure_cookies: false,
        public_url: None,
        metrics: Some(cairn::telemetry::metrics_handle()),
    })
    .with_events(state.clone());
    Fixture {
        app: api::router(app_state),
        bus,
        state,
        _dir: dir,
    }
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn post(path: &str) -> axum::http::request::Builder {
    Request::post(path).header(header::CONTENT_TYPE, "application/json")
}

async fn stored(bus: &AnyBus) -> Vec<Value> {
    let events = bus
        .recent(&EventQuery {
            limit: 1000,
            ..Default::default()
        })
        .await
        .expect("recent");
    events.into_iter().map(|e| e.event.to_json()).collect()
}

/// HMAC-SHA256 written from RFC 2104 here, independent of cairn's.
fn hmac(key: &[u8], msg: &[u8]) -> String {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x36)
        .chain(msg.iter().copied())
        .collect();
    let inner = Sha256::digest(&inner);
    let outer: Vec<u8> = k
        .iter()
        .map(|b| b ^ 0x5c)
        .chain(inner.iter().copied())
        .collect();
    hex::encode(Sha256::digest(&outer))
}

#[test]
fn the_test_hmac_matches_githubs_documented_example() {
    assert_eq!(
        hmac(GITHUB_SECRET.as_bytes(), b"Hello, World!"),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[tokio::test]
async fn an_accepted_event_is_on_the_bus_when_the_2xx_arrives() {
    let fx = fixture().await;
    let consumer = ConsumerConfig {
        name: "ev__s__dep".into(),
        topic: Topic::new("ev", "webhook", "secured"),
        ack_wait: Duration::from_secs(30),
    };
    fx.bus.ensure_consumer(&consumer).await.expect("consumer");
    // No CSRF header, no session: the token is the only credential.
    let req = post("/api/events/ev/webhook/secured")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header("x-request-source", "test")
        .body(Body::from(r#"{"dataset_uri":"s3://b/k"}"#))
        .expect("request");
    let (status, _, body) = send(&fx.app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = serde_json::from_str::<Value>(&body).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Already durable and deliverable: no wait.
    let got = fx
        .bus
        .fetch(&consumer.name, 10, Duration::ZERO)
        .await
        .expect("fetch");
    assert_eq!(got.len(), 1);
    let e = &got[0].event;
    assert_eq!(e.context.id, id);
    assert_eq!(
        (
            e.context.type_.as_str(),
            e.context.source.as_str(),
            e.context.subject.as_str()
        ),
        ("webhook", "webhook", "secured")
    );
    assert_eq!(e.data["body"], json!({"dataset_uri": "s3://b/k"}));
    assert_eq!(e.data["header"]["X-Request-Source"], json!(["test"]));
    assert_eq!(e.data["metadata"], json!({"team": "ml"}));
    assert!(
        e.data["header"].get("Authorization").is_none(),
        "the bearer token is not stored: {}",
        e.data
    );
    assert!(!e.to_json().to_string().contains(TOKEN));

    // A second delivery of the same body is another event.
    let req = post("/api/events/ev/webhook/example")
        .body(Body::from(r#"{"n":1}"#))
        .expect("request");
    let (s1, _, b1) = send(&fx.app, req).await;
    let req = post("/api/events/ev/webhook/example")
        .body(Body::from(r#"{"n":1}"#))
        .expect("request");
    let (s2, _, b2) = send(&fx.app, req).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    assert_ne!(b1, b2, "distinct ids");

    // GET takes the query string; a form post its fields (as Argo does).
    let req = Request::get("/api/events/ev/webhook/hooks/q?a=1&a=2&b=x")
        .body(Body::empty())
        .expect("request");
    let (status, _, body) = send(&fx.app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let req = Request::post("/api/events/ev/webhook/example")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("k=v&k=w"))
        .expect("request");
    let (status, _, body) = send(&fx.app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let all = stored(&fx.bus).await;
    let bodies: Vec<&Value> = all.iter().map(|e| &e["data"]["body"]).collect();
    assert!(
        bodies.contains(&&json!({"a": ["1", "2"], "b": ["x"]})),
        "{bodies:?}"
    );
    assert!(bodies.contains(&&json!({"k": ["v", "w"]})), "{bodies:?}");
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn bad_input_is_refused_counted_and_never_stored() {
    let fx = fixture().await;
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(100));
    let cases: Vec<(&str, Request<Body>, StatusCode, &str)> = vec![
        (
            "unknown endpoint",
            post("/api/events/ev/webhook/nope")
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::NOT_FOUND,
            "unknown_endpoint",
        ),
        (
            "unknown event source",
            post("/api/events/other/webhook/example")
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::NOT_FOUND,
            "unknown_endpoint",
        ),
        (
            "wrong method",
            Request::put("/api/events/ev/webhook/example")
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
        ),
        (
            "missing token",
            post("/api/events/ev/webhook/secured")
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "wrong token",
            post("/api/events/ev/webhook/secured")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}x"))
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "token in another scheme",
            post("/api/events/ev/webhook/secured")
                .header(header::AUTHORIZATION, format!("Basic {TOKEN}"))
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "over maxPayloadSize (declared)",
            post("/api/events/ev/webhook/secured")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_LENGTH, big.len())
                .body(Body::from(big.clone()))
                .expect("r"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "over maxPayloadSize (streamed, no length)",
            post("/api/events/ev/webhook/secured")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::from_stream(futures::stream::iter(vec![Ok::<
                    _,
                    std::io::Error,
                >(
                    big.clone().into_bytes(),
                )])))
                .expect("r"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "over [events] max_body_bytes",
            post("/api/events/ev/webhook/example")
                .body(Body::from(vec![b' '; 1024 * 1024 + 1]))
                .expect("r"),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            "malformed JSON",
            post("/api/events/ev/webhook/example")
                .body(Body::from(r#"{"a":"#))
                .expect("r"),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "empty body",
            post("/api/events/ev/webhook/example")
                .body(Body::empty())
                .expect("r"),
            StatusCode::BAD_REQUEST,
            "malformed",
        ),
        (
            "secret not readable",
            post("/api/events/ev/webhook/missing")
                .header(header::AUTHORIZATION, "Bearer anything")
                .body(Body::from("{}"))
                .expect("r"),
            StatusCode::SERVICE_UNAVAILABLE,
            "secret_unavailable",
        ),
    ];
    let mut reasons = Vec::new();
    for (label, req, want, reason) in cases {
        let (status, headers, body) = send(&fx.app, req).await;
        assert_eq!(status, want, "{label}: {body}");
        assert!(!body.contains(TOKEN), "{label}: the token is never echoed");
        if want == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(
                headers.get(header::ALLOW).map(|v| v.as_bytes()),
                Some(&b"POST"[..])
            );
        }
        reasons.push(reason);
    }
    assert!(stored(&fx.bus).await.is_empty(), "nothing was stored");
    // Counted in metrics, by reason.
    let (status, _, metrics) = send(
        &fx.app,
        Request::get("/metrics").body(Body::empty()).expect("r"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for reason in reasons {
        let line = format!("cairn_events_webhook_rejected_total{{reason=\"{reason}\"}}");
        assert!(metrics.contains(&line), "{line} missing in:\n{metrics}");
    }
}

fn github(body: &str, event: &str, signature: Option<String>, delivery: &str) -> Request<Body> {
    let mut b = post("/api/events/ev/git/push")
        .header("X-GitHub-Event", event)
        .header("X-GitHub-Delivery", delivery);
    if let Some(sig) = signature {
        b = b.header("X-Hub-Signature-256", sig);
    }
    b.body(Body::from(body.to_owned())).expect("request")
}

#[tokio::test]
async fn github_requests_need_a_real_signature() {
    let fx = fixture().await;
    let body = r#"{"ref":"refs/heads/main","repository":{"full_name":"o/r"}}"#;
    let good = format!("sha256={}", hmac(GITHUB_SECRET.as_bytes(), body.as_bytes()));

    let (status, _, text) = send(&fx.app, github(body, "push", Some(good.clone()), "d-1")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let first_id = serde_json::from_str::<Value>(&text).expect("json")["id"].clone();
    let events = stored(&fx.bus).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["context"]["type"], "github");
    assert_eq!(
        events[0]["data"]["headers"]["X-Github-Event"],
        json!(["push"])
    );
    assert_eq!(events[0]["data"]["body"]["ref"], "refs/heads/main");

    // GitHub redelivering the same delivery is the same event (same id).
    let (status, _, text) = send(&fx.app, github(body, "push", Some(good.clone()), "d-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["id"],
        first_id
    );

    // Refused: a signature over another body, with another secret, or none.
    let tampered = body.replace("main", "evil");
    let other = format!("sha256={}", hmac(b"another secret", body.as_bytes()));
    for (label, req) in [
        (
            "tampered body",
            github(&tampered, "push", Some(good.clone()), "d-2"),
        ),
        ("other secret", github(body, "push", Some(other), "d-3")),
        ("no signature", github(body, "push", None, "d-4")),
    ] {
        let (status, _, text) = send(&fx.app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {text}");
    }
    // Answered but not published: ping, and an event outside `events`.
    let ping_sig = format!("sha256={}", hmac(GITHUB_SECRET.as_bytes(), b"{}"));
    let (status, _, text) =
        send(&fx.app, github("{}", "ping", Some(ping_sig.clone()), "d-5")).await;
    assert_eq!(
        (status, text.contains("ping")),
        (StatusCode::OK, true),
        "{text}"
    );
    let (status, _, text) = send(&fx.app, github("{}", "issues", Some(ping_sig), "d-6")).await;
    assert_eq!(
        (status, text.contains("filtered")),
        (StatusCode::OK, true),
        "{text}"
    );
    assert_eq!(stored(&fx.bus).await.len(), 2);
}

#[tokio::test]
async fn gitlab_requests_need_the_token() {
    let fx = fixture().await;
    let req = |token: Option<&str>, event: &str| {
        let mut b = post("/api/events/ev/git/gl").header("X-Gitlab-Event", event);
        if let Some(t) = token {
            b = b.header("X-Gitlab-Token", t);
        }
        b.body(Body::from(r#"{"object_kind":"push"}"#)).expect("r")
    };
    let (status, _, text) = send(&fx.app, req(Some(GITLAB_TOKEN), "Push Hook")).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (status, _, _) = send(&fx.app, req(Some("wrong"), "Push Hook")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = send(&fx.app, req(None, "Push Hook")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, text) = send(&fx.app, req(Some(GITLAB_TOKEN), "Tag Push Hook")).await;
    assert_eq!((status, text.contains("filtered")), (StatusCode::OK, true));
    let events = stored(&fx.bus).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0]["data"]["headers"]["X-Gitlab-Event"],
        json!(["Push Hook"])
    );
    assert!(
        events[0]["data"]["headers"].get("X-Gitlab-Token").is_none(),
        "the token is not stored"
    );
}

/// One HTTP/1.1 request over a plain socket; the status code of the answer.
async fn raw_request(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&out);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test]
async fn a_dedicated_port_serves_the_endpoint_at_its_path() {
    let fx = fixture().await;
    // A free loopback port, then an EventSource asking for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let es: EventSource = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "EventSource",
        "metadata": {"namespace": "ev", "name": "ported"},
        "spec": {"webhook": {"example": {"endpoint": "/example", "method": "POST", "port": port.to_string()}}}
    }))
    .expect("EventSource");
    fx.state.set_table(table(&[es], &HashMap::new()));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let stop = controller::serve_port(fx.state.clone(), addr)
        .await
        .expect("listener");
    assert_eq!(
        raw_request(addr, "POST", "/example", r#"{"x":1}"#).await,
        200
    );
    assert_eq!(raw_request(addr, "POST", "/other", "{}").await, 404);
    assert_eq!(raw_request(addr, "GET", "/example", "").await, 405);
    assert_eq!(raw_request(addr, "POST", "/example", "not json").await, 400);
    // The same endpoint under cairn's own listener too.
    let req = post("/api/events/ev/ported/example")
        .body(Body::from("{}"))
        .expect("r");
    assert_eq!(send(&fx.app, req).await.0, StatusCode::OK);
    assert_eq!(stored(&fx.bus).await.len(), 2);
    // A second listener on a taken port fails with the address named.
    let Err(err) = controller::serve_port(fx.state.clone(), addr).await else {
        panic!("a second listener on {addr} must fail");
    };
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    drop(stop);
}
