//! Project roles and tokens: policy scoping, the overlays, JWT signing and verification, the
//! listing rules (revocation), the status patches, the store's keys, and `Auth` deciding with
//! live roles.

use super::*;
use crate::auth::{Auth, Hasher, Principal, PrincipalKind};
use crate::config::Config;

const NOW: i64 = 1_800_000_000;

/// An AppProject `name` with `roles` (JSON) and `status` (JSON or null).
fn project(name: &str, roles: Value, status: Value) -> AppProject {
    let mut raw = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": { "name": name, "namespace": "argocd", "resourceVersion": "42" },
        "spec": { "roles": roles },
    });
    if !status.is_null() {
        raw["status"] = status;
    }
    serde_json::from_value(raw).expect("AppProject")
}

fn deployer(policies: &[&str], groups: &[&str], spec_tokens: Value) -> Value {
    json!([{ "name": "deployer", "policies": policies, "groups": groups, "jwtTokens": spec_tokens }])
}

fn listed(items: Value) -> Value {
    json!({ "jwtTokensByRole": { "deployer": { "items": items } } })
}

fn key(kid: &str, byte: u8) -> SigningKey {
    SigningKey::new(kid.to_owned(), [byte; 32])
}

fn ring(current: SigningKey) -> KeyRing {
    KeyRing {
        current: Some(current),
        previous: None,
    }
}

fn claims(sub: &str, iat: i64, exp: Option<i64>, jti: &str) -> Claims {
    Claims {
        sub: sub.to_owned(),
        iat,
        exp,
        jti: jti.to_owned(),
        iss: ISSUER.to_owned(),
    }
}

const SYNC_A: &str = "p, proj:team-a:deployer, applications, sync, team-a/*, allow";

#[test]
fn subjects_round_trip() {
    assert_eq!(subject("team-a", "deployer"), "proj:team-a:deployer");
    assert_eq!(
        parse_subject("proj:team-a:deployer"),
        Some(("team-a", "deployer"))
    );
    for bad in [
        "team-a:deployer",
        "proj:team-a",
        "proj::r",
        "proj:p:",
        "proj:p:r:x",
    ] {
        assert_eq!(parse_subject(bad), None, "{bad}");
    }
}

#[test]
fn role_policies_may_only_name_their_own_project() {
    let ok = |line: &str| validate_policy("team-a", "deployer", line);
    assert_eq!(
        ok(" p,proj:team-a:deployer,applications,sync,team-a/*,allow "),
        Ok(SYNC_A.to_owned()),
        "fields are normalized"
    );
    assert!(ok("p, proj:team-a:deployer, applications, get, team-a/web, deny").is_ok());
    assert!(ok("p, proj:team-a:deployer, logs, get, team-a/*, allow").is_ok());
    assert!(ok("p, proj:team-a:deployer, projects, get, team-a, allow").is_ok());
    let refused = [
        // Another project's objects, everything, and a longer project name sharing the prefix.
        (
            "p, proj:team-a:deployer, applications, sync, team-b/*, allow",
            "own project",
        ),
        (
            "p, proj:team-a:deployer, applications, sync, *, allow",
            "own project",
        ),
        (
            "p, proj:team-a:deployer, applications, sync, */*, allow",
            "own project",
        ),
        (
            "p, proj:team-a:deployer, applications, sync, team-a-evil/*, allow",
            "own project",
        ),
        (
            "p, proj:team-a:deployer, applications, sync, team-a/, allow",
            "own project",
        ),
        (
            "p, proj:team-a:deployer, projects, update, *, allow",
            "own project",
        ),
        (
            "p, proj:team-a:deployer, projects, update, team-b, allow",
            "own project",
        ),
        // Another subject: a role cannot grant to users, other roles or other projects.
        ("p, alice, applications, sync, team-a/*, allow", "subject"),
        (
            "p, proj:team-a:other, applications, sync, team-a/*, allow",
            "subject",
        ),
        (
            "p, proj:team-b:deployer, applications, sync, team-a/*, allow",
            "subject",
        ),
        // Resources outside a project, membership lines, shapes.
        (
            "p, proj:team-a:deployer, accounts, update, team-a/*, allow",
            "resource",
        ),
        ("p, proj:team-a:deployer, *, *, team-a/*, allow", "resource"),
        ("g, proj:team-a:deployer, role:admin", "6 comma-separated"),
        (
            "p, proj:team-a:deployer, applications, sync, team-a/*",
            "6 comma-separated",
        ),
        (
            "p, proj:team-a:deployer, applications, sync, team-a/*, maybe",
            "effect",
        ),
        (
            "x, proj:team-a:deployer, applications, sync, team-a/*, allow",
            "line type",
        ),
    ];
    for (line, why) in refused {
        let err = ok(line).expect_err(line);
        assert!(err.contains(why), "{line}: {err}");
    }
}

#[test]
fn roles_are_read_and_malformed_entries_named() {
    let p = project(
        "team-a",
        deployer(&[SYNC_A], &["devs"], json!([])),
        Value::Null,
    );
    let roles = roles(&p).expect("roles");
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].groups, vec!["devs".to_owned()]);
    let bad = project(
        "team-a",
        json!([{ "name": "ok" }, { "policies": [] }]),
        Value::Null,
    );
    let err = super::roles(&bad).expect_err("missing name").to_string();
    assert!(err.contains("spec.roles[1]"), "{err}");
    let bad = project("team-a", json!([{ "name": "a b" }]), Value::Null);
    let err = super::roles(&bad).expect_err("bad name").to_string();
    assert!(
        err.contains("spec.roles[0]") && err.contains("\"a b\""),
        "{err}"
    );
    assert!(matches!(
        find_role(&p, "nope"),
        Err(ProjectTokenError::RoleNotFound { .. })
    ));
}

/// The configured policy of these tests: no default role, nothing for the groups.
fn base() -> Policy {
    Policy::parse("p, alice, applications, get, */*, allow", None).expect("policy")
}

#[test]
fn groups_map_to_project_roles_within_their_project() {
    let a = project(
        "team-a",
        deployer(
            &[
                SYNC_A,
                "p, proj:team-a:deployer, applications, get, team-a/*, allow",
                "p, proj:team-a:deployer, applications, sync, team-a/frozen, deny",
                // Refused (another project): must grant nothing.
                "p, proj:team-a:deployer, applications, sync, team-b/*, allow",
            ],
            &["devs", "bad group"],
            json!([]),
        ),
        Value::Null,
    );
    let b = project(
        "team-b",
        json!([{ "name": "viewer", "policies": ["p, proj:team-b:viewer, applications, get, team-b/*, allow"], "groups": ["auditors"] }]),
        Value::Null,
    );
    let (overlay, problems) = group_overlay(&[a, b]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].to_string().contains("team-b/*"),
        "{}",
        problems[0]
    );
    let base = base();
    let can = |subjects: &[&str], action: &str, object: &str| {
        base.enforce_with(Some(&overlay), subjects, "applications", action, object)
    };
    // A user in `devs` gets the role's grants in team-a only.
    assert!(can(&["u1", "devs"], "sync", "team-a/web"));
    assert!(can(&["u1", "devs"], "get", "team-a/web"));
    assert!(
        !can(&["u1", "devs"], "sync", "team-a/frozen"),
        "deny beats allow"
    );
    assert!(
        !can(&["u1", "devs"], "sync", "team-b/web"),
        "refused line grants nothing"
    );
    assert!(!can(&["u1", "devs"], "get", "team-b/web"));
    // Another group, another project's role.
    assert!(can(&["u2", "auditors"], "get", "team-b/api"));
    assert!(!can(&["u2", "auditors"], "sync", "team-b/api"));
    assert!(!can(&["u2", "auditors"], "get", "team-a/web"));
    // No group: nothing from the roles; the configured policy still applies.
    assert!(!can(&["u3"], "sync", "team-a/web"));
    assert!(can(&["alice"], "get", "team-b/api"));
    // A group name with a space was skipped, not split into two.
    assert!(!can(&["u4", "bad"], "sync", "team-a/web"));
    // The coarse gate sees the role's grants too.
    assert!(base.can_any_with(Some(&overlay), &["u1", "devs"], "applications", "sync"));
    assert!(!base.can_any_with(Some(&overlay), &["u3"], "applications", "sync"));
}

#[test]
fn tokens_sign_and_verify() {
    let k = key("k1", 7);
    let c = claims("proj:team-a:deployer", NOW, Some(NOW + 600), "id-1");
    let token = sign(&k, &c);
    assert!(looks_like_jwt(&token));
    assert!(!looks_like_jwt("cairn_0123_abc") && !looks_like_jwt("sessionid"));
    assert_eq!(verify(&token, &ring(k.clone()), NOW).expect("valid"), c);
    assert_eq!(
        verify(&token, &ring(k.clone()), NOW + 599).expect("valid"),
        c
    );
    assert!(matches!(
        verify(&token, &ring(k.clone()), NOW + 600),
        Err(ProjectTokenError::Expired)
    ));
    // Another key with the same kid: the signature fails.
    assert!(matches!(
        verify(&token, &ring(key("k1", 8)), NOW),
        Err(ProjectTokenError::Signature)
    ));
    // An unknown kid.
    assert!(matches!(
        verify(&token, &ring(key("k2", 7)), NOW),
        Err(ProjectTokenError::UnknownKey { .. })
    ));
    // No key at all (nothing issued yet).
    assert!(matches!(
        verify(&token, &KeyRing::default(), NOW),
        Err(ProjectTokenError::UnknownKey { .. })
    ));
    // Claims changed after signing.
    let parts: Vec<&str> = token.split('.').collect();
    let forged_claims = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&claims("proj:team-b:deployer", NOW, None, "id-1")).expect("json"),
    );
    let forged = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
    assert!(matches!(
        verify(&forged, &ring(k.clone()), NOW),
        Err(ProjectTokenError::Signature)
    ));
    // alg none, and HS512, are refused before any key is looked at.
    for alg in ["none", "HS512", "RS256"] {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","kid":"k1"}}"#));
        let t = format!("{header}.{}.", parts[1]);
        assert!(
            matches!(
                verify(&t, &ring(k.clone()), NOW),
                Err(ProjectTokenError::Algorithm { .. })
            ),
            "{alg}"
        );
    }
    // Shapes.
    for bad in ["a.b", "a.b.c.d", "!!.??.**", &"x.".repeat(3000)] {
        assert!(
            matches!(
                verify(bad, &ring(k.clone()), NOW),
                Err(ProjectTokenError::Malformed(_))
            ),
            "{bad:.20}"
        );
    }
    // A validly signed token that is not a project subject, or not ours.
    let not_project = sign(&k, &claims("alice", NOW, None, "x"));
    assert!(matches!(
        verify(&not_project, &ring(k.clone()), NOW),
        Err(ProjectTokenError::Subject { .. })
    ));
    let mut foreign = claims("proj:team-a:deployer", NOW, None, "x");
    foreign.iss = "argocd".into();
    assert!(matches!(
        verify(&sign(&k, &foreign), &ring(k.clone()), NOW),
        Err(ProjectTokenError::Subject { .. })
    ));
    // Debug never shows key bytes.
    let debug = format!("{k:?}");
    assert!(
        debug.contains("redacted") && !debug.contains("7, 7"),
        "{debug}"
    );
}

#[test]
fn previous_key_verifies_only_during_its_grace() {
    let old = key("old", 1);
    let token = sign(&old, &claims("proj:team-a:deployer", NOW, None, "id"));
    let keys = KeyRing {
        current: Some(key("new", 2)),
        previous: Some((old, NOW + 3600)),
    };
    assert!(verify(&token, &keys, NOW + 3599).is_ok());
    assert!(matches!(
        verify(&token, &keys, NOW + 3600),
        Err(ProjectTokenError::UnknownKey { .. })
    ));
}

#[test]
fn only_listed_tokens_grant_and_policies_come_from_the_live_project() {
    let c = claims("proj:team-a:deployer", NOW, None, "id-1");
    let entry = json!([{ "iat": NOW, "id": "id-1" }]);
    let live = project(
        "team-a",
        deployer(&[SYNC_A], &[], json!([])),
        listed(entry.clone()),
    );
    let g = grant(&c, Some(&live)).expect("listed token");
    assert_eq!(g.subject(), "proj:team-a:deployer");
    assert_eq!(g.token_id, "id-1");
    let base = base();
    let sub = g.subject();
    let can = |g: &ProjectGrant, action: &str, object: &str| {
        base.enforce_with(
            Some(&*g.overlay()),
            &[sub.as_str()],
            "applications",
            action,
            object,
        )
    };
    assert!(can(&g, "sync", "team-a/web"));
    assert!(!can(&g, "sync", "team-b/web"));
    assert!(!can(&g, "delete", "team-a/web"));

    // The policy is edited: the same token, presented again, gets the new policy.
    let edited = project(
        "team-a",
        deployer(
            &["p, proj:team-a:deployer, applications, get, team-a/*, allow"],
            &[],
            json!([]),
        ),
        listed(entry),
    );
    let g2 = grant(&c, Some(&edited)).expect("still listed");
    assert!(
        !can(&g2, "sync", "team-a/web"),
        "sync removed from the role"
    );
    assert!(can(&g2, "get", "team-a/web"));

    // Unlisted (deleted), wrong id with the same iat, role removed, project removed: revoked.
    let revoked =
        |p: Option<&AppProject>| matches!(grant(&c, p), Err(ProjectTokenError::Revoked { .. }));
    let unlisted = project(
        "team-a",
        deployer(&[SYNC_A], &[], json!([])),
        listed(json!([])),
    );
    assert!(revoked(Some(&unlisted)));
    let other_id = project(
        "team-a",
        deployer(&[SYNC_A], &[], json!([])),
        listed(json!([{ "iat": NOW, "id": "id-2" }])),
    );
    assert!(revoked(Some(&other_id)));
    let no_role = project(
        "team-a",
        json!([{ "name": "viewer" }]),
        json!({ "jwtTokensByRole": { "deployer": { "items": [{ "iat": NOW, "id": "id-1" }] } } }),
    );
    assert!(revoked(Some(&no_role)));
    assert!(revoked(None));

    // Argo CD's legacy place (spec.roles[].jwtTokens) and id-less entries (by iat) also list.
    let legacy = project(
        "team-a",
        deployer(&[SYNC_A], &[], json!([{ "iat": NOW }])),
        Value::Null,
    );
    assert!(grant(&c, Some(&legacy)).is_ok());
}

#[test]
fn issuing_keeps_issued_at_unique_per_role() {
    assert_eq!(next_iat(NOW, &[]), NOW);
    let taken = [
        JwtToken {
            iat: NOW,
            exp: None,
            id: "a".into(),
        },
        JwtToken {
            iat: NOW + 1,
            exp: None,
            id: "b".into(),
        },
    ];
    assert_eq!(next_iat(NOW, &taken), NOW + 2);
    let k = key("k", 3);
    let t = issue(
        &k,
        "team-a",
        "deployer",
        None,
        Some(Duration::from_secs(600)),
        &taken,
        NOW,
    )
    .expect("issue");
    assert_eq!(t.entry.iat, NOW + 2);
    assert_eq!(t.entry.exp, Some(NOW + 602));
    assert_eq!(t.entry.id.len(), 36, "a UUID: {}", t.entry.id);
    let c = verify(t.token.expose(), &ring(k.clone()), NOW + 2).expect("verifies");
    assert_eq!(
        (c.iat, c.exp, c.jti.as_str()),
        (NOW + 2, Some(NOW + 602), t.entry.id.as_str())
    );
    assert!(!format!("{t:?}").contains(t.token.expose()));
    let named = issue(&k, "team-a", "deployer", Some("ci"), None, &[], NOW).expect("issue");
    assert_eq!((named.entry.id.as_str(), named.entry.exp), ("ci", None));
    assert!(matches!(
        issue(&k, "team-a", "deployer", Some("has space"), None, &[], NOW),
        Err(ProjectTokenError::TokenId { .. })
    ));
    assert!(parse_expiry(Some("10m")).expect("10m") == Some(Duration::from_secs(600)));
    assert!(parse_expiry(None).expect("none").is_none());
    assert!(matches!(
        parse_expiry(Some("soon")),
        Err(ProjectTokenError::Expiry { .. })
    ));
}

#[test]
fn status_patches_list_and_unlist() {
    let p = project(
        "team-a",
        deployer(&[SYNC_A], &[], json!([{ "iat": 5, "id": "legacy" }])),
        json!({ "jwtTokensByRole": {
            "deployer": { "items": [{ "iat": 10, "id": "t1" }, { "iat": 20, "exp": 99, "id": "t2" }] },
            "other": { "items": [{ "iat": 30 }] }
        } }),
    );
    let add = add_token_patch(
        &p,
        "deployer",
        &JwtToken {
            iat: 40,
            exp: None,
            id: "t3".into(),
        },
    );
    assert_eq!(
        add,
        json!({
            "metadata": { "resourceVersion": "42" },
            "status": { "jwtTokensByRole": { "deployer": { "items": [
                { "iat": 10, "id": "t1" }, { "iat": 20, "exp": 99, "id": "t2" }, { "iat": 40, "id": "t3" }
            ] } } }
        })
    );
    // By issued-at: only the status changes, the other role is not in the patch.
    let by_iat = remove_token_patch(&p, "deployer", "20").expect("by iat");
    assert_eq!(
        by_iat,
        json!({
            "metadata": { "resourceVersion": "42" },
            "status": { "jwtTokensByRole": { "deployer": { "items": [{ "iat": 10, "id": "t1" }] } } }
        })
    );
    // By id.
    let by_id = remove_token_patch(&p, "deployer", "t1").expect("by id");
    assert_eq!(
        by_id["status"]["jwtTokensByRole"]["deployer"]["items"],
        json!([{ "iat": 20, "exp": 99, "id": "t2" }])
    );
    assert!(by_id.get("spec").is_none());
    // A legacy spec entry: the roles are written back with it removed, the rest kept.
    let legacy = remove_token_patch(&p, "deployer", "legacy").expect("legacy");
    assert!(legacy.get("status").is_none());
    assert_eq!(legacy["spec"]["roles"][0]["jwtTokens"], json!([]));
    assert_eq!(legacy["spec"]["roles"][0]["policies"], json!([SYNC_A]));
    assert!(matches!(
        remove_token_patch(&p, "deployer", "nope"),
        Err(ProjectTokenError::TokenNotFound { .. })
    ));
    assert!(matches!(
        remove_token_patch(&p, "ghost", "10"),
        Err(ProjectTokenError::RoleNotFound { .. })
    ));
    let by_role = tokens_by_role(&p).expect("roles");
    assert_eq!(
        by_role["deployer"].len(),
        3,
        "status and legacy: {by_role:?}"
    );
}

#[tokio::test]
async fn keys_are_created_once_and_rotated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let keys = ProjectKeys::new(store);
    let now = Timestamp::from_second(NOW).expect("ts");
    assert!(
        keys.load().expect("empty").current.is_none(),
        "no table yet"
    );
    let first = keys.current(now).await.expect("created");
    let again = keys.current(now).await.expect("kept");
    assert_eq!(first.kid, again.kid);
    let token = sign(&first, &claims("proj:p:r", NOW, None, "x"));

    // With grace: the old key verifies until the grace ends.
    let rotated = keys
        .rotate(Duration::from_secs(3600), now)
        .await
        .expect("rotate");
    assert_ne!(rotated.kid, first.kid);
    assert_eq!(rotated.previous_kid.as_deref(), Some(first.kid.as_str()));
    let ring = keys.load().expect("load");
    assert_eq!(
        ring.current.as_ref().map(|k| k.kid.clone()),
        Some(rotated.kid.clone())
    );
    assert!(verify(&token, &ring, NOW + 10).is_ok());
    assert!(verify(&token, &ring, NOW + 3600).is_err());

    // Without grace: every earlier token stops at once.
    let second = keys.current(now).await.expect("current");
    let token2 = sign(&second, &claims("proj:p:r", NOW, None, "y"));
    let rotated = keys.rotate(Duration::ZERO, now).await.expect("rotate");
    assert_eq!(rotated.previous_kid, None);
    let ring = keys.load().expect("load");
    assert!(ring.previous.is_none());
    assert!(matches!(
        verify(&token2, &ring, NOW),
        Err(ProjectTokenError::UnknownKey { .. })
    ));
}

#[tokio::test]
async fn auth_decides_with_live_roles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.rbac.policy_default = String::new();
    config.rbac.policy_csv = "p, alice, applications, get, */*, allow".into();
    let store = Store::open(dir.path()).expect("store");
    let auth = Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth");
    let sso = Principal {
        subject: "u1".into(),
        groups: vec!["devs".into()],
        kind: PrincipalKind::Sso {
            issuer: "https://idp".into(),
        },
        session_id: None,
    };
    assert!(!auth.authorize(&sso, "applications", "sync", "team-a/web"));
    let live = project(
        "team-a",
        deployer(&[SYNC_A], &["devs"], json!([])),
        listed(json!([{ "iat": NOW, "id": "id-1" }])),
    );
    assert!(
        auth.set_project_roles(std::slice::from_ref(&live))
            .is_empty()
    );
    assert!(auth.authorize(&sso, "applications", "sync", "team-a/web"));
    assert!(auth.authorize_any(&sso, "applications", "sync"));
    assert!(!auth.authorize(&sso, "applications", "sync", "team-b/web"));
    // The project is gone from the watch: the binding goes with it.
    assert!(auth.set_project_roles(&[]).is_empty());
    assert!(!auth.authorize(&sso, "applications", "sync", "team-a/web"));

    // A token principal: its role's policies, nothing else (no group bindings, no alice).
    let c = claims("proj:team-a:deployer", NOW, None, "id-1");
    let g = grant(&c, Some(&live)).expect("grant");
    let token = Principal {
        subject: g.subject(),
        groups: Vec::new(),
        kind: PrincipalKind::ProjectToken(Box::new(g)),
        session_id: None,
    };
    assert!(auth.authorize(&token, "applications", "sync", "team-a/web"));
    assert!(!auth.authorize(&token, "applications", "get", "team-b/web"));
    assert!(auth.authorize_any(&token, "applications", "sync"));
    assert!(!auth.authorize_any(&token, "accounts", "update"));
    assert!(!token.is_local_account("proj:team-a:deployer"));
    assert_eq!(token.issuer(), crate::auth::LOCAL_ISSUER);
}
