use std::time::Duration;

use serde_json::json;

use super::*;
use crate::events::bus::embedded::{EmbeddedBus, Retention};
use crate::events::sources::{EndpointKind, TaskKind, conditions, plan};
use crate::events::types::EventSource;

/// A self-signed CA certificate (P-256), a test fixture only.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBiDCCAS2gAwIBAgIUQ96nqZYPXqoCe2nfDQyV9d95uwgwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNY2Fpcm4tdGVzdC1jYTAgFw0yNjEyMDYyMjA3MThaGA8yMTI2
MTExMjIyMDcxOFowGDEWMBQGA1UEAwwNY2Fpcm4tdGVzdC1jYTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABMA1claIYGBoYG7KIvpf64y5yZgubDOq4pvVM4OaoNLv
kW84hf0T18vW8rRgIuOXy6Z2pXPhvfytGpY4J+1SsaOjUzBRMB0GA1UdDgQWBBQG
TDAEF3AB9Hp/M8X4/vhX2dDHdzAfBgNVHSMEGDAWgBQGTDAEF3AB9Hp/M8X4/vhX
2dDHdzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQDbE6oVegr0
emlD+bDzoOmYE6QArn4739eXGgh7ge1PmQIhAK8y+wZwhY93sRJhtbCKpHM30VIV
IYPuw2WUcoOqZtO6
-----END CERTIFICATE-----
";

fn parse(v: Value) -> Result<NatsSpec, NatsError> {
    NatsSpec::parse("ev/queue", "orders", &v)
}

fn spec(v: Value) -> NatsSpec {
    parse(v).expect("valid spec")
}

fn base() -> Value {
    json!({"url": "nats://127.0.0.1:4222", "subject": "orders.created"})
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

fn topic() -> Topic {
    Topic::new("ev", "queue", "orders")
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn msg(subject: &str, payload: &[u8], headers: &[(&str, &str)]) -> Incoming {
    let mut h: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        h.entry((*k).to_owned()).or_default().push((*v).to_owned());
    }
    Incoming {
        subject: subject.to_owned(),
        payload: payload.to_vec(),
        headers: h,
    }
}

#[test]
fn missing_url_or_subject_names_the_eventsource_event_and_field() {
    let e = parse(json!({"subject": "a"})).expect_err("no url");
    assert_eq!(e.metric_label(), "spec");
    let text = e.to_string();
    assert!(
        text.contains("eventsource ev/queue") && text.contains("spec.nats.orders.url: required"),
        "{text}"
    );
    let e = parse(json!({"url": "nats://x:4222", "subject": "  "})).expect_err("no subject");
    assert!(
        e.to_string()
            .contains("eventsource ev/queue: spec.nats.orders.subject: required"),
        "{e}"
    );
    assert_eq!(
        e.field_message(),
        "spec.nats.orders.subject: required: the subject to subscribe to, e.g. orders.created"
    );
    let e = parse(json!("nats://x")).expect_err("not an object");
    assert!(e.to_string().contains("expected an object"), "{e}");
}

#[test]
fn invalid_fields_are_named() {
    let cases = [
        (with(base(), "subject", json!("a..b")), "subject"),
        (with(base(), "subject", json!("a.>.b")), "subject"),
        (with(base(), "subject", json!("a.b*")), "subject"),
        (with(base(), "url", json!("nats://a:1, ")), "url"),
        (with(base(), "queue", json!("")), "queue"),
        (with(base(), "jsonBody", json!("yes")), "jsonBody"),
        (
            with(base(), "metadata", json!({"team": 1})),
            "metadata.team",
        ),
        (
            with(
                base(),
                "auth",
                json!({"basic": {"username": {"name": "s", "key": "u"}}}),
            ),
            "auth.basic.password",
        ),
        (
            with(base(), "auth", json!({"token": {"name": "s"}})),
            "auth.token",
        ),
        (
            with(
                base(),
                "tls",
                json!({"caCertSecret": {"name": "s", "key": "ca"}, "clientCertSecret": {"name": "s", "key": "c"}}),
            ),
            "tls.clientKeySecret",
        ),
        (
            with(base(), "connectionBackoff", json!({"duration": "soon"})),
            "connectionBackoff.duration",
        ),
        (
            with(base(), "connectionBackoff", json!({"factor": -1})),
            "connectionBackoff.factor",
        ),
        (
            with(base(), "filter", json!({"expression": "body.a =="})),
            "filter.expression",
        ),
    ];
    for (v, field) in cases {
        let e = parse(v.clone()).expect_err(&format!("{v} is invalid"));
        assert!(
            matches!(&e, NatsError::Spec { field: f, .. } if f == field),
            "{v}: expected field {field}, got {e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("eventsource ev/queue: spec.nats.orders.{field}: ")),
            "{e}"
        );
    }
}

#[test]
fn unsupported_settings_are_named() {
    let cases = [
        (
            with(
                base(),
                "auth",
                json!({"nkey": {"name": "s", "key": "seed"}}),
            ),
            "auth.nkey",
        ),
        (
            with(
                base(),
                "auth",
                json!({"credential": {"name": "s", "key": "creds"}}),
            ),
            "auth.credential",
        ),
        (
            with(
                base(),
                "tls",
                json!({"insecureSkipVerify": true, "caCertSecret": {"name": "s", "key": "ca"}}),
            ),
            "tls.insecureSkipVerify",
        ),
        (
            with(
                base(),
                "tls",
                json!({"clientCertSecret": {"name": "s", "key": "c"}}),
            ),
            "tls.caCertSecret",
        ),
    ];
    for (v, field) in cases {
        let e = parse(v.clone()).expect_err("unsupported");
        assert_eq!(e.metric_label(), "unsupported", "{v}");
        assert!(
            e.field_message()
                .starts_with(&format!("spec.nats.orders.{field}: "))
                && e.field_message().contains("not supported by cairn"),
            "{e}"
        );
    }
}

#[test]
fn a_full_entry_is_read_as_argo_writes_it() {
    let s = spec(json!({
        "url": "nats://nats.argo-events.svc:4222",
        "subject": "orders.>",
        "queue": "workers",
        "jsonBody": true,
        "metadata": {"team": "ml"},
        "auth": {"basic": {"username": {"name": "nats", "key": "user"},
                           "password": {"name": "nats", "key": "pass"}}},
        "tls": {"caCertSecret": {"name": "ca", "key": "ca.crt"},
                "clientCertSecret": {"name": "me", "key": "tls.crt"},
                "clientKeySecret": {"name": "me", "key": "tls.key"}},
        "connectionBackoff": {"duration": "10s", "steps": 5, "factor": 2, "jitter": 0.2},
        "filter": {"expression": "body.kind == 'order'"}
    }));
    assert_eq!(s.subject, "orders.>");
    assert_eq!(s.queue.as_deref(), Some("workers"));
    assert!(s.json_body);
    assert_eq!(s.metadata.get("team").map(String::as_str), Some("ml"));
    assert_eq!(
        s.backoff,
        ReconnectBackoff {
            first: Duration::from_secs(10),
            factor: 2.0,
            steps: 5,
            jitter: 0.2
        }
    );
    assert!(s.filter.is_some());
    let refs: Vec<(&str, String)> = s
        .secret_refs()
        .into_iter()
        .map(|(f, r)| (f, format!("{}/{}", r.name, r.key)))
        .collect();
    assert_eq!(
        refs,
        [
            (FIELD_USERNAME, "nats/user".to_owned()),
            (FIELD_PASSWORD, "nats/pass".to_owned()),
            (FIELD_CA_CERT, "ca/ca.crt".to_owned()),
            (FIELD_CLIENT_CERT, "me/tls.crt".to_owned()),
            (FIELD_CLIENT_KEY, "me/tls.key".to_owned()),
        ]
    );
    let token = spec(with(
        base(),
        "auth",
        json!({"token": {"name": "t", "key": "token"}}),
    ));
    assert_eq!(
        token.auth,
        Some(AuthRef::Token(SecretRef {
            name: "t".into(),
            key: "token".into()
        }))
    );
    // Defaults: no queue, raw bodies, 1 s doubling back-off.
    let plain = spec(base());
    assert_eq!(
        (plain.queue, plain.json_body, plain.auth, plain.tls),
        (None, false, None, None)
    );
    assert_eq!(plain.backoff, ReconnectBackoff::default());
}

#[test]
fn json_bodies_headers_and_metadata_take_argo_shape() {
    let s = spec(with(
        with(base(), "jsonBody", json!(true)),
        "metadata",
        json!({"team": "ml"}),
    ));
    let m = msg(
        "orders.created",
        br#"{"id": 7, "kind": "order"}"#,
        &[("Nats-Msg-Id", "abc"), ("X-Trace", "1"), ("X-Trace", "2")],
    );
    let e = nats_event(&topic(), &s, &m, [1; 16], ts("2026-01-02T03:04:05Z")).expect("event");
    insta::assert_json_snapshot!(e.to_json(), @r#"
    {
      "context": {
        "id": "71754de6bd4122ec2e6ef7f188259832",
        "source": "queue",
        "specversion": "1.0",
        "type": "nats",
        "subject": "orders",
        "datacontenttype": "application/json",
        "time": "2026-01-02T03:04:05Z"
      },
      "data": {
        "subject": "orders.created",
        "body": {
          "id": 7,
          "kind": "order"
        },
        "header": {
          "Nats-Msg-Id": [
            "abc"
          ],
          "X-Trace": [
            "1",
            "2"
          ]
        },
        "metadata": {
          "team": "ml"
        }
      }
    }
    "#);
    assert_eq!(
        e.context.id,
        event_id("ev", "queue", "orders", "orders.created/abc")
    );
    // Not JSON while jsonBody is set: dropped with a reason. Empty: null.
    let bad = nats_event(
        &topic(),
        &s,
        &msg("a", b"{nope", &[]),
        [0; 16],
        Timestamp::UNIX_EPOCH,
    );
    assert!(bad.expect_err("not JSON").contains("not JSON"));
    let empty = nats_event(
        &topic(),
        &s,
        &msg("a", b"", &[]),
        [0; 16],
        Timestamp::UNIX_EPOCH,
    )
    .expect("ok");
    assert_eq!(empty.data["body"], Value::Null);
}

#[test]
fn raw_bodies_are_base64_and_absent_headers_are_left_out() {
    let s = spec(base());
    let e = nats_event(
        &topic(),
        &s,
        &msg("orders.created", b"hello \xff", &[]),
        [2; 16],
        Timestamp::UNIX_EPOCH,
    )
    .expect("event");
    assert_eq!(
        e.data,
        json!({"subject": "orders.created", "body": "aGVsbG8g/w=="})
    );
    // No Nats-Msg-Id: the id comes from the random draw.
    let again = nats_event(
        &topic(),
        &s,
        &msg("orders.created", b"hello \xff", &[]),
        [3; 16],
        Timestamp::UNIX_EPOCH,
    )
    .expect("event");
    assert_ne!(e.context.id, again.context.id);
    assert_eq!(
        e.context.id,
        event_id("ev", "queue", "orders", &hex::encode([2u8; 16]))
    );
}

#[test]
fn a_msg_id_makes_the_event_id_deterministic_per_subject() {
    let s = spec(base());
    let id = |subject: &str, header: &str, random: u8| {
        nats_event(
            &topic(),
            &s,
            &msg(subject, b"x", &[(header, "m-1")]),
            [random; 16],
            Timestamp::UNIX_EPOCH,
        )
        .expect("event")
        .context
        .id
    };
    assert_eq!(id("a", "Nats-Msg-Id", 1), id("a", "Nats-Msg-Id", 2));
    assert_eq!(id("a", "nats-msg-id", 1), id("a", "Nats-Msg-Id", 2));
    assert_ne!(id("a", "Nats-Msg-Id", 1), id("b", "Nats-Msg-Id", 1));
    // An empty id is no id.
    let empty = msg("a", b"x", &[("Nats-Msg-Id", "")]);
    assert_eq!(empty.msg_id(), None);
}

#[test]
fn the_filter_sees_the_event_data() {
    let s = spec(with(
        with(base(), "jsonBody", json!(true)),
        "filter",
        json!({"expression": "body.kind == 'order' && body.n > 2 && subject == 'orders.created'"}),
    ));
    let data = |body: Value| json!({"subject": "orders.created", "body": body});
    assert_eq!(passes(&s, &data(json!({"kind": "order", "n": 3}))), Ok(()));
    let no = passes(&s, &data(json!({"kind": "refund", "n": 3}))).expect_err("false");
    assert!(no.contains("is false"), "{no}");
    // A missing key reads as nil: `nil > 2` fails, so the message is not published.
    assert!(passes(&s, &data(json!({"kind": "order"}))).is_err());
    let not_bool = spec(with(base(), "filter", json!({"expression": "subject"})));
    let e = passes(&not_bool, &data(json!(1))).expect_err("not a boolean");
    assert!(e.contains("not a boolean"), "{e}");
    // No filter, or an empty expression: everything passes.
    assert_eq!(passes(&spec(base()), &json!({})), Ok(()));
    let empty = spec(with(base(), "filter", json!({"expression": " "})));
    assert_eq!(passes(&empty, &json!({})), Ok(()));
}

#[test]
fn reconnect_waits_grow_then_hold_within_bounds() {
    let d = ReconnectBackoff::default();
    let waits: Vec<u64> = (0..9).map(|i| d.delay(i, 0.0).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 32, 32, 32]);
    let jittered = ReconnectBackoff {
        jitter: 0.5,
        ..d.clone()
    };
    assert_eq!(jittered.delay(1, 0.999_999).as_millis(), 2999);
    let tiny = ReconnectBackoff {
        first: Duration::ZERO,
        factor: 0.0,
        steps: 1,
        jitter: 0.0,
    };
    assert_eq!(tiny.delay(5, 0.5), RECONNECT_MIN);
    let huge = ReconnectBackoff {
        first: Duration::from_secs(3600),
        factor: 1e300,
        steps: 100,
        jitter: 1.0,
    };
    assert_eq!(huge.delay(usize::MAX, 1.0), RECONNECT_MAX);
}

#[test]
fn credentials_never_print_and_fingerprint_their_values() {
    let mut c = Credentials::new();
    c.insert(FIELD_TOKEN, b"s3cr3t-token\n".to_vec());
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains(FIELD_TOKEN), "{shown}");
    assert_eq!(c.text(FIELD_TOKEN).as_deref(), Ok("s3cr3t-token"));
    let before = c.fingerprint();
    c.insert(FIELD_TOKEN, b"rotated".to_vec());
    assert_ne!(before, c.fingerprint());
    c.insert(FIELD_PASSWORD, vec![0xff]);
    assert!(c.text(FIELD_PASSWORD).is_err());
    assert!(c.text(FIELD_USERNAME).is_err());
}

#[test]
fn tls_settings_come_from_pem_and_errors_name_the_field() {
    assert!(tls_config(CA_PEM.as_bytes(), None).is_ok());
    let (field, e) = tls_config(b"not a pem", None).expect_err("no certificate");
    assert_eq!(field, FIELD_CA_CERT);
    assert!(e.contains("no PEM certificate"), "{e}");
    let (field, _) =
        tls_config(CA_PEM.as_bytes(), Some((CA_PEM.as_bytes(), b"no key"))).expect_err("no key");
    assert_eq!(field, FIELD_CLIENT_KEY);
    let (field, _) =
        tls_config(CA_PEM.as_bytes(), Some((b"", b"no key"))).expect_err("no client cert");
    assert_eq!(field, FIELD_CLIENT_CERT);
}

#[test]
fn unusable_secrets_fail_the_options_naming_the_field() {
    let mut s = spec(with(
        base(),
        "auth",
        json!({"token": {"name": "t", "key": "token"}}),
    ));
    let source = |s: &NatsSpec, c: Credentials| NatsSource {
        topic: topic(),
        spec: s.clone(),
        credentials: c,
    };
    let (tx, _rx) = mpsc::channel(1);
    let e = source(&s, Credentials::new())
        .options(tx.clone())
        .expect_err("token not resolved");
    assert_eq!(e.metric_label(), "credentials");
    assert!(e.to_string().contains("spec.nats.orders.auth.token"), "{e}");
    let mut ok = Credentials::new();
    ok.insert(FIELD_TOKEN, b"t".to_vec());
    assert!(source(&s, ok).options(tx.clone()).is_ok());
    s.tls = Some(TlsRef {
        ca_cert: SecretRef {
            name: "ca".into(),
            key: "ca.crt".into(),
        },
        client: None,
    });
    let mut bad_ca = Credentials::new();
    bad_ca.insert(FIELD_TOKEN, b"t".to_vec());
    bad_ca.insert(FIELD_CA_CERT, b"garbage".to_vec());
    let e = source(&s, bad_ca).options(tx).expect_err("bad CA");
    assert!(e.to_string().contains("tls.caCertSecret"), "{e}");
}

fn es(v: Value) -> EventSource {
    serde_json::from_value(v).expect("EventSource")
}

#[test]
fn the_plan_runs_valid_entries_and_reports_the_others() {
    let source = es(json!({
        "metadata": {"namespace": "ev", "name": "queue", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nats": {
            "orders": {"url": "nats://n:4222", "subject": "orders.*"},
            "nokey": {"url": "nats://n:4222", "subject": "x", "auth": {"nkey": {"name": "s", "key": "k"}}},
            "nourl": {"subject": "x"}
        }}
    }));
    let p = plan(&[source]);
    assert!(p.endpoints.iter().all(|e| e.kind != EndpointKind::Webhook));
    let tasks: Vec<_> = p
        .tasks
        .iter()
        .map(|t| (t.event_name.as_str(), t.kind))
        .collect();
    assert_eq!(tasks, [("orders", TaskKind::Nats)]);
    let v = &p.verdicts[&("ev".to_owned(), "queue".to_owned())];
    assert_eq!(v.invalid.len(), 1);
    assert!(
        v.invalid[0].starts_with("spec.nats.nourl.url: required"),
        "{v:?}"
    );
    assert_eq!(v.problems.len(), 1);
    assert_eq!(v.problems[0].reason, "UnsupportedField");
    assert!(
        v.problems[0].message.contains("spec.nats.nokey.auth.nkey"),
        "{v:?}"
    );
    let c = conditions(v);
    assert!(!c[0].status && !c[1].status, "{c:?}");
    // A valid entry alone: both conditions True.
    let ok = es(json!({
        "metadata": {"namespace": "ev", "name": "ok"},
        "spec": {"nats": {"orders": {"url": "nats://n:4222", "subject": "orders"}}}
    }));
    let p = plan(&[ok]);
    assert!(
        conditions(&p.verdicts[&("ev".to_owned(), "ok".to_owned())])
            .iter()
            .all(|c| c.status)
    );
}

fn bus() -> (tempfile::TempDir, AnyBus) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = crate::store::Store::open(dir.path()).expect("store");
    let bus = EmbeddedBus::open(
        store,
        Retention {
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 20,
        },
    )
    .expect("bus");
    (dir, AnyBus::Embedded(bus))
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_server_is_reported_and_retried_until_stopped() {
    let (_dir, bus) = bus();
    let url = format!("nats://user:hunter2@127.0.0.1:{}", closed_port());
    let source = NatsSource {
        topic: topic(),
        spec: spec(
            json!({"url": url, "subject": "a", "connectionBackoff": {"duration": "1s", "factor": 1}}),
        ),
        credentials: Credentials::new(),
    };
    let (state_tx, mut state_rx) = watch::channel(ConnState::Connecting {
        attempts: 0,
        error: None,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(bus, source, state_tx, async move {
        let _ = stop_rx.await;
    }));
    let seen = state_rx
        .wait_for(|s| matches!(s, ConnState::Connecting { attempts, .. } if *attempts >= 3))
        .await
        .expect("state")
        .clone();
    let problem = seen.problem().expect("a problem to report");
    assert!(problem.contains("cannot connect to nats://"), "{problem}");
    assert!(
        !problem.contains("hunter2"),
        "the password leaked: {problem}"
    );
    assert!(
        !task.is_finished(),
        "a connection failure never ends the task"
    );
    stop_tx.send(()).expect("stop");
    let result = task.await.expect("no panic");
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(*state_rx.borrow(), ConnState::Stopped);
}
