use super::*;
use crate::config::UserConfig;

struct Fixture {
    _dir: tempfile::TempDir,
    auth: Auth,
}

fn fixture(edit: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    let user = |caps: &[Capability], enabled| UserConfig {
        capabilities: caps.to_vec(),
        enabled,
    };
    let users = &mut config.accounts.users;
    users.insert("alice".into(), user(&[Capability::Login], true));
    users.insert("ci".into(), user(&[Capability::ApiKey], true));
    users.insert(
        "gone".into(),
        user(&[Capability::Login, Capability::ApiKey], false),
    );
    edit(&mut config);
    let store = Store::open(dir.path()).expect("store");
    let auth = Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth");
    Fixture { _dir: dir, auth }
}

#[tokio::test]
async fn admin_login_session_logout() {
    let f = fixture(|_| {});
    let pw = f
        .auth
        .ensure_admin()
        .await
        .expect("ensure")
        .expect("first start");
    let (principal, id) = f.auth.login("admin", pw.expose()).await.expect("login");
    assert_eq!(principal.subject, "admin");
    assert_eq!(principal.session_id(), Some(id.as_str()));
    let debug = format!("{principal:?}");
    assert!(!debug.contains(id.as_str()), "{debug}");

    let again = f
        .auth
        .authenticate_session(id.as_str())
        .await
        .expect("session");
    assert_eq!(again.subject, "admin");
    // The CLI presents the session id as a bearer credential.
    let bearer = f
        .auth
        .authenticate_bearer(id.as_str())
        .await
        .expect("bearer session");
    assert_eq!(bearer.subject, "admin");
    assert!(f.auth.authorize(&again, "clusters", "delete", "https://x"));
    assert!(f.auth.authorize_any(&again, "workflows", "create"));

    // A second login rotates: a different id.
    let (_, id2) = f.auth.login("admin", pw.expose()).await.expect("login");
    assert_ne!(id, id2);

    f.auth.logout(id.as_str()).await.expect("logout");
    assert!(matches!(
        f.auth.authenticate_session(id.as_str()).await,
        Err(AuthError::Unauthenticated)
    ));
    f.auth
        .authenticate_session(id2.as_str())
        .await
        .expect("other session lives");
}

#[tokio::test]
async fn failed_login_does_not_create_sessions() {
    let f = fixture(|_| {});
    f.auth.ensure_admin().await.expect("ensure");
    assert!(matches!(
        f.auth.login("admin", "wrong-password").await,
        Err(AuthError::BadCredentials)
    ));
    assert!(matches!(
        f.auth.login("nobody", "x").await,
        Err(AuthError::BadCredentials)
    ));
    let sessions = f.auth.store().read(session_count).expect("count");
    assert_eq!(sessions, 0);
}

fn session_count(txn: &redb::ReadTransaction) -> Result<u64, StoreError> {
    use redb::ReadableTableMetadata;
    Ok(txn.open_table(crate::store::tables::SESSIONS)?.len()?)
}

#[tokio::test]
async fn api_tokens_authenticate_and_revoke() {
    let f = fixture(|_| {});
    let created = f
        .auth
        .create_token("ci", "pipeline", Some("30d"))
        .await
        .expect("create");
    let p = f
        .auth
        .authenticate_bearer(created.secret())
        .await
        .expect("token");
    assert_eq!(p.subject, "ci");
    assert_eq!(
        p.kind,
        PrincipalKind::Token {
            id: created.id.clone()
        }
    );
    assert!(p.is_local_account("ci"));
    assert_eq!(p.issuer(), LOCAL_ISSUER);
    // Default policy: read-only.
    assert!(f.auth.authorize(&p, "applications", "get", "default/app"));
    assert!(!f.auth.authorize(&p, "applications", "sync", "default/app"));

    let listed = f.auth.list_tokens("ci").await.expect("list");
    assert_eq!(listed.len(), 1);
    f.auth
        .revoke_token("ci", &created.id)
        .await
        .expect("revoke");
    assert!(matches!(
        f.auth.authenticate_bearer(created.secret()).await,
        Err(AuthError::Unauthenticated)
    ));
}

#[tokio::test]
async fn token_rules_follow_account_capabilities() {
    let f = fixture(|_| {});
    assert!(matches!(
        f.auth.create_token("alice", "x", None).await,
        Err(AuthError::MissingCapability {
            capability: "apiKey",
            ..
        })
    ));
    assert!(matches!(
        f.auth.create_token("gone", "x", None).await,
        Err(AuthError::Disabled { .. })
    ));
    assert!(matches!(
        f.auth.create_token("ghost", "x", None).await,
        Err(AuthError::AccountNotFound { .. })
    ));
    assert!(matches!(
        f.auth.create_token("ci", "x", Some("30 days")).await,
        Err(AuthError::Expiry { .. })
    ));
    assert!(matches!(
        f.auth.list_tokens("ghost").await,
        Err(AuthError::AccountNotFound { .. })
    ));
    // The admin may hold tokens in cairn.
    f.auth
        .create_token("admin", "cli", Some("12h"))
        .await
        .expect("admin token");
}

#[tokio::test]
async fn token_of_a_disabled_account_stops_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.accounts.users.insert(
        "ci".into(),
        UserConfig {
            capabilities: vec![Capability::ApiKey],
            enabled: true,
        },
    );
    let store = Store::open(dir.path()).expect("store");
    let token = {
        let auth =
            Auth::with_hasher(store.clone(), &config, Hasher::insecure_fast()).expect("auth");
        auth.create_token("ci", "x", None).await.expect("create")
    };
    config.accounts.users.get_mut("ci").expect("ci").enabled = false;
    let auth = Auth::with_hasher(store.clone(), &config, Hasher::insecure_fast()).expect("auth");
    assert!(matches!(
        auth.authenticate_bearer(token.secret()).await,
        Err(AuthError::Disabled { .. })
    ));
    // Removed from the configuration: the token no longer authenticates anyone.
    config.accounts.users.clear();
    let auth = Auth::with_hasher(store, &config, Hasher::insecure_fast()).expect("auth");
    assert!(matches!(
        auth.authenticate_bearer(token.secret()).await,
        Err(AuthError::Unauthenticated)
    ));
}

#[tokio::test]
async fn password_change_ends_the_targets_sessions() {
    let f = fixture(|_| {});
    let pw = f
        .auth
        .ensure_admin()
        .await
        .expect("ensure")
        .expect("created");
    let (admin, admin_session) = f.auth.login("admin", pw.expose()).await.expect("login");
    f.auth
        .change_password(&admin, "alice", pw.expose(), "alice-password-1")
        .await
        .expect("set alice");
    let (alice, alice_session) = f
        .auth
        .login("alice", "alice-password-1")
        .await
        .expect("alice");
    f.auth
        .change_password(&alice, "alice", "alice-password-1", "alice-password-2")
        .await
        .expect("alice changes her own");
    assert!(matches!(
        f.auth.authenticate_session(alice_session.as_str()).await,
        Err(AuthError::Unauthenticated)
    ));
    f.auth
        .authenticate_session(admin_session.as_str())
        .await
        .expect("admin's session is untouched");
    f.auth
        .login("alice", "alice-password-2")
        .await
        .expect("new password");
}

#[tokio::test]
async fn policy_from_config_and_scopes() {
    let f = fixture(|c| {
        c.rbac.policy_csv =
            "g, alice, role:admin\np, team-a, applications, sync, dev/*, allow".into();
        c.rbac.policy_default = String::new();
    });
    let alice = Principal::local("alice");
    assert!(f.auth.authorize(&alice, "applications", "sync", "prod/app"));
    let sso = Principal {
        subject: "sub-1".into(),
        groups: vec!["team-a".into()],
        kind: PrincipalKind::Sso {
            issuer: "https://idp".into(),
        },
        session_id: None,
    };
    assert!(f.auth.authorize(&sso, "applications", "sync", "dev/app"));
    assert!(
        !f.auth.authorize(&sso, "applications", "get", "dev/app"),
        "no default role"
    );
    assert!(
        !f.auth
            .authorize_any(&Principal::local("bob"), "applications", "get")
    );

    // With `scopes = [email]` the login's email is a subject and its `groups` claim is not.
    let f = fixture(|c| {
        c.rbac.policy_csv = "p, team-a, applications, sync, dev/*, allow\n\
                             p, a@example.com, applications, get, dev/*, allow"
            .into();
        c.rbac.scopes = vec!["email".into()];
    });
    let mut all = serde_json::Map::new();
    all.insert("groups".into(), serde_json::json!(["team-a"]));
    all.insert("email".into(), serde_json::json!("a@example.com"));
    let claims = crate::auth::oidc::IdClaims {
        iss: "https://idp".into(),
        sub: "sub-1".into(),
        aud: vec!["cairn".into()],
        exp: 0,
        iat: 0,
        all,
    };
    let by_email = crate::auth::oidc::principal_from_claims(&claims, &["email".to_owned()], &[]);
    assert!(
        !f.auth
            .authorize(&by_email, "applications", "sync", "dev/app")
    );
    assert!(
        f.auth
            .authorize(&by_email, "applications", "get", "dev/app")
    );
}

#[tokio::test]
async fn the_default_role_never_reaches_service_accounts() {
    let f = fixture(|c| {
        c.rbac.policy_csv = "p, system:serviceaccounts:ml, experiments, update, *, allow".into();
        c.rbac.policy_default = "role:readonly".into();
    });
    let sa = |ns: &str| Principal {
        subject: format!("system:serviceaccount:{ns}:default"),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
        ],
        kind: PrincipalKind::ServiceAccount,
        session_id: None,
    };
    assert!(!sa("ml").default_applies());
    assert!(Principal::local("bob").default_applies());
    // A person gets the default role's reads; a pod does not.
    assert!(
        f.auth
            .authorize(&Principal::local("bob"), "experiments", "get", "e")
    );
    assert!(!f.auth.authorize(&sa("other"), "experiments", "get", "e"));
    assert!(!f.auth.authorize_any(&sa("other"), "experiments", "get"));
    // What its group is granted counts.
    assert!(f.auth.authorize(&sa("ml"), "experiments", "update", "e"));
    assert!(f.auth.authorize_any(&sa("ml"), "experiments", "update"));
    assert!(!f.auth.authorize(&sa("ml"), "experiments", "get", "e"));
    assert_eq!(sa("ml").issuer(), KUBERNETES_ISSUER);
}

#[test]
fn rbac_subjects_are_the_user_then_its_groups() {
    let p = Principal {
        groups: vec!["g1".into(), "g2".into()],
        ..Principal::local("u")
    };
    assert_eq!(p.rbac_subjects(), ["u", "g1", "g2"]);
    assert!(!p.is_local_account("v"));
}

#[tokio::test]
async fn bad_policy_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::with_data_dir(dir.path());
    config.rbac.policy_csv = "# ok\np, a, applications, get".into();
    let store = Store::open(dir.path()).expect("store");
    let err = Auth::new(store, &config).expect_err("bad policy");
    assert!(matches!(
        err,
        AuthError::Policy(RbacError::FieldCount { line: 2, .. })
    ));
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[tokio::test]
async fn lockout_reports_retry_after() {
    let f = fixture(|c| c.accounts.max_failed_logins = 2);
    f.auth.ensure_admin().await.expect("ensure");
    for _ in 0..2 {
        let _ = f.auth.login("admin", "wrong-password").await;
    }
    match f.auth.login("admin", "wrong-password").await {
        Err(e @ AuthError::Locked { retry_after }) => {
            assert!(retry_after <= Duration::from_secs(300) && retry_after > Duration::ZERO);
            assert_eq!(e.metric_label(), "locked");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[tokio::test]
async fn purge_runs() {
    let f = fixture(|_| {});
    assert_eq!(f.auth.purge_expired_sessions().await.expect("purge"), 0);
    assert!(f.auth.store_healthy());
    let accounts = f.auth.list_accounts().await.expect("accounts");
    assert_eq!(accounts.len(), 4);
}

#[test]
fn secret_is_redacted() {
    let s = Secret::new("hunter2-hunter2".into());
    assert_eq!(format!("{s:?} {s}"), "Secret(<redacted>) <redacted>");
    assert_eq!(s.expose(), "hunter2-hunter2");
}
