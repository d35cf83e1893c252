//! Cluster Secret parsing and destination resolution.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use serde_json::json;

use super::*;

const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.super-secret-token";

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.resource_version = Some("42".into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect::<BTreeMap<_, _>>(),
    );
    s
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn parses_a_bearer_token_cluster_with_tls() {
    let config = json!({
        "bearerToken": TOKEN,
        "tlsClientConfig": {"insecure": false, "caData": b64("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}
    })
    .to_string();
    let c = parse_secret(&secret(
        "prod",
        &[
            ("name", "prod"),
            ("server", "https://10.0.0.1:6443"),
            ("config", &config),
        ],
    ))
    .expect("valid");
    assert_eq!(c.name, "prod");
    assert_eq!(c.server, "https://10.0.0.1:6443");
    assert!(c.namespaces.is_empty() && c.cluster_resources);
    let creds = c.credentials.as_ref().expect("creds");
    assert_eq!(creds.bearer_token.as_deref(), Some(TOKEN));
    assert!(
        creds
            .ca_data
            .as_ref()
            .is_some_and(|ca| ca.starts_with(b"-----BEGIN"))
    );
    assert_eq!(c.version, "42");
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains(TOKEN) && !dbg.contains("super-secret"),
        "{dbg}"
    );
}

#[test]
fn namespace_scoped_clusters() {
    let c = parse_secret(&secret(
        "scoped",
        &[
            ("server", "https://k:6443"),
            ("namespaces", "team-a, team-b"),
            ("config", "{}"),
        ],
    ))
    .expect("valid");
    assert_eq!(c.name, "https://k:6443", "name defaults to the server");
    assert_eq!(c.namespaces, vec!["team-a", "team-b"]);
    assert!(!c.cluster_resources);
    assert!(c.manages_namespace("team-b") && !c.manages_namespace("kube-system"));
    let c = parse_secret(&secret(
        "scoped",
        &[
            ("server", "https://k"),
            ("namespaces", "a"),
            ("clusterResources", "true"),
        ],
    ))
    .expect("valid");
    assert!(c.cluster_resources);
}

#[test]
fn bad_secrets_name_the_field_and_never_the_value() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("name", "x")], "field `server`"),
        (&[("server", "10.0.0.1:6443")], "field `server`: an http"),
        (
            &[("server", "https://k"), ("config", "{\"bearerToken\": ")],
            "field `config`",
        ),
        (
            &[("server", "https://k"), ("config", "{\"bearerToken\": 5}")],
            "wrong type",
        ),
        (
            &[
                ("server", "https://k"),
                ("config", "{\"tlsClientConfig\": {\"caData\": \"%%%\"}}"),
            ],
            "config.tlsClientConfig.caData",
        ),
        (
            &[
                ("server", "https://k"),
                (
                    "config",
                    &format!(
                        "{{\"tlsClientConfig\": {{\"certData\": \"{}\"}}}}",
                        b64("cert")
                    ),
                ),
            ],
            "certData and keyData together",
        ),
        (
            &[("server", "https://k"), ("clusterResources", "yes")],
            "clusterResources",
        ),
    ];
    for (data, want) in cases {
        let err = parse_secret(&secret("bad", data)).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("cluster secret bad") && text.contains(want),
            "{text}"
        );
        assert_eq!(err.metric_label(), "invalid_secret");
    }
}

fn dest(server: &str, name: &str) -> ApplicationDestination {
    ApplicationDestination {
        server: (!server.is_empty()).then(|| server.to_string()),
        name: (!name.is_empty()).then(|| name.to_string()),
        namespace: Some("apps".into()),
        ..Default::default()
    }
}

fn cluster(name: &str, server: &str) -> Cluster {
    Cluster {
        name: name.into(),
        server: server.into(),
        credentials: Some(ClusterCredentials::default()),
        ..Cluster::in_cluster()
    }
}

#[test]
fn resolution_table() {
    let clusters = with_in_cluster(vec![
        cluster("prod", "https://prod:6443"),
        cluster("dup", "https://a:6443"),
        cluster("dup", "https://b:6443"),
    ]);
    let cases: &[(&str, &str, Result<&str, &str>)] = &[
        (
            "https://kubernetes.default.svc",
            "",
            Ok("https://kubernetes.default.svc"),
        ),
        ("", "in-cluster", Ok("https://kubernetes.default.svc")),
        ("", "prod", Ok("https://prod:6443")),
        ("https://prod:6443/", "", Ok("https://prod:6443")),
        (
            "",
            "nope",
            Err("there are no clusters with this name: nope"),
        ),
        (
            "https://nope",
            "",
            Err("there are no clusters with this URL: https://nope"),
        ),
        (
            "",
            "dup",
            Err("there are 2 clusters with the same name: [https://a:6443 https://b:6443]"),
        ),
        (
            "https://prod:6443",
            "prod",
            Err("can't have both name and server defined"),
        ),
        (
            "",
            "",
            Err("must set spec.destination.server or spec.destination.name"),
        ),
    ];
    for (server, name, want) in cases {
        let got = resolve(&dest(server, name), &clusters);
        match (got, want) {
            (Ok(c), Ok(s)) => assert_eq!(c.server, *s, "{server} {name}"),
            (Err(e), Err(m)) => assert!(e.to_string().contains(m), "{e}"),
            (got, want) => panic!("{server:?} {name:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn a_secret_for_the_in_cluster_server_replaces_the_implicit_entry() {
    let renamed = parse_secret(&secret(
        "local",
        &[
            ("name", "home"),
            ("server", IN_CLUSTER_SERVER),
            ("namespaces", "apps"),
        ],
    ))
    .expect("valid");
    let clusters = with_in_cluster(vec![renamed]);
    assert_eq!(clusters.len(), 1);
    assert!(resolve(&dest("", "in-cluster"), &clusters).is_err());
    let c = resolve(&dest("", "home"), &clusters).expect("renamed");
    assert_eq!(c.destination("apps").server, IN_CLUSTER_SERVER);
    assert_eq!(c.destination("apps").name, "home");
}

#[test]
fn kubeconfig_carries_every_credential_kind() {
    let c = Cluster {
        namespaces: vec!["team-a".into()],
        credentials: Some(ClusterCredentials {
            bearer_token: Some(TOKEN.into()),
            ca_data: Some(b"CA".to_vec()),
            cert_data: Some(b"CERT".to_vec()),
            key_data: Some(b"KEY".to_vec()),
            insecure: true,
            server_name: Some("api.internal".into()),
            username: Some("u".into()),
            password: Some("p".into()),
        }),
        ..cluster("x", "https://x:6443")
    };
    let creds = c.credentials.clone().expect("creds");
    let doc = kubeconfig_json(&c, &creds);
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(doc.clone()).expect("kubeconfig shape");
    assert_eq!(kc.current_context.as_deref(), Some("ctx"));
    let cl = kc.clusters[0].cluster.as_ref().expect("cluster");
    assert_eq!(cl.server.as_deref(), Some("https://x:6443"));
    assert_eq!(cl.insecure_skip_tls_verify, Some(true));
    assert_eq!(
        cl.certificate_authority_data.as_deref(),
        Some(b64("CA").as_str())
    );
    assert_eq!(cl.tls_server_name.as_deref(), Some("api.internal"));
    let user = &doc["users"][0]["user"];
    assert_eq!(user["token"], TOKEN);
    assert_eq!(user["client-key-data"], b64("KEY"));
    assert_eq!(doc["contexts"][0]["context"]["namespace"], "team-a");
}
