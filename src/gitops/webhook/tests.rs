//! Webhook verification, parsing and matching, with payloads shaped as the providers send them.

use http::{HeaderMap, HeaderValue};
use serde_json::json;

use super::*;

const SECRET: &str = "It's a Secret to Everybody";

fn config() -> WebhookConfig {
    WebhookConfig {
        github_secret: Some(WebhookSecret::new(SECRET)),
        gitlab_secret: Some(WebhookSecret::new(SECRET)),
        gitea_secret: Some(WebhookSecret::new(SECRET)),
        gogs_secret: Some(WebhookSecret::new(SECRET)),
        ..Default::default()
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(*k, HeaderValue::from_str(v).expect("header"));
    }
    h
}

fn github_push() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "repository": {
            "id": 1296269,
            "name": "gitops",
            "full_name": "Team/GitOps",
            "html_url": "https://github.com/Team/GitOps",
            "clone_url": "https://github.com/Team/GitOps.git",
            "ssh_url": "git@github.com:Team/GitOps.git",
            "git_url": "git://github.com/Team/GitOps.git",
            "default_branch": "main"
        },
        "pusher": {"name": "octocat", "email": "octocat@github.com"},
        "commits": [
            {"id": "6113728f", "added": ["apps/web/new.yaml"], "modified": ["apps/web/deploy.yaml"], "removed": []},
            {"id": "7113728f", "added": [], "modified": ["README.md", "apps/web/deploy.yaml"], "removed": ["old.yaml"]}
        ],
        "head_commit": {"id": "7113728f"}
    }))
    .expect("json")
}

fn gitlab_push(git_ref: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object_kind": if git_ref.starts_with("refs/tags/") { "tag_push" } else { "push" },
        "event_name": "push",
        "ref": git_ref,
        "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "project": {
            "id": 15,
            "name": "gitops",
            "web_url": "https://gitlab.example.com/team/gitops",
            "git_ssh_url": "git@gitlab.example.com:team/gitops.git",
            "git_http_url": "https://gitlab.example.com/team/gitops.git",
            "default_branch": "main",
            "path_with_namespace": "team/gitops"
        },
        "commits": [{"id": "da15608", "added": ["a.yaml"], "modified": [], "removed": []}],
        "total_commits_count": 1
    }))
    .expect("json")
}

fn gitea_push() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ref": "refs/heads/develop",
        "before": "28e1879d029cb852e4844d9c718537df08844e03",
        "after": "bffeb74224043ba2feb48d137756c8a9331c449a",
        "repository": {
            "id": 140,
            "name": "gitops",
            "full_name": "team/gitops",
            "html_url": "http://gitea.local:3000/team/gitops",
            "ssh_url": "ssh://git@gitea.local:2222/team/gitops.git",
            "clone_url": "http://gitea.local:3000/team/gitops.git",
            "default_branch": "main"
        },
        "commits": [{"id": "bffeb742", "added": [], "modified": ["envs/dev/values.yaml"], "removed": []}]
    }))
    .expect("json")
}

/// Header pairs of one verification case.
type Headers = Vec<(&'static str, String)>;

fn sign(body: &[u8]) -> String {
    hex::encode(hmac_sha256(SECRET.as_bytes(), body))
}

#[test]
fn hmac_sha256_rfc4231_vectors() {
    // RFC 4231 test cases 2 and 6 (a key longer than the block).
    assert_eq!(
        hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex::encode(hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

#[test]
fn github_signature_from_githubs_documentation() {
    // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
    let h = headers(&[
        ("x-github-event", "push"),
        (
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
    ]);
    assert!(verify(Provider::GitHub, &h, b"Hello, World!", &config()).is_ok());
}

#[test]
fn verification_table() {
    let body = github_push();
    let good = sign(&body);
    let cases: Vec<(Provider, Headers, bool, &str)> = vec![
        (
            Provider::GitHub,
            vec![("x-hub-signature-256", format!("sha256={good}"))],
            true,
            "ok",
        ),
        (
            Provider::GitHub,
            vec![("x-hub-signature-256", good.clone())],
            false,
            "bad_signature",
        ),
        (
            Provider::GitHub,
            vec![("x-hub-signature-256", "sha256=00".into())],
            false,
            "bad_signature",
        ),
        (
            Provider::GitHub,
            vec![("x-hub-signature-256", "sha256=zz".into())],
            false,
            "bad_signature",
        ),
        (Provider::GitHub, vec![], false, "missing_signature"),
        (
            Provider::GitLab,
            vec![("x-gitlab-token", SECRET.into())],
            true,
            "ok",
        ),
        (
            Provider::GitLab,
            vec![("x-gitlab-token", "guess".into())],
            false,
            "bad_signature",
        ),
        (
            Provider::GitLab,
            vec![("x-gitlab-token", format!("{SECRET}x"))],
            false,
            "bad_signature",
        ),
        (
            Provider::Gitea,
            vec![("x-gitea-signature", good.clone())],
            true,
            "ok",
        ),
        (
            Provider::Gitea,
            vec![("x-gitea-signature", format!("sha256={good}"))],
            false,
            "bad_signature",
        ),
        (
            Provider::Gogs,
            vec![("x-gogs-signature", good.clone())],
            true,
            "ok",
        ),
        (
            Provider::Gogs,
            vec![("x-gitea-signature", good.clone())],
            false,
            "missing_signature",
        ),
    ];
    for (provider, pairs, ok, label) in cases {
        let mut h = HeaderMap::new();
        for (k, v) in &pairs {
            h.insert(*k, HeaderValue::from_str(v).expect("header"));
        }
        let got = verify(provider, &h, &body, &config());
        match got {
            Ok(()) => assert!(ok, "{provider} {pairs:?} accepted"),
            Err(e) => {
                assert!(!ok, "{provider} {pairs:?} refused: {e}");
                assert_eq!(e.metric_label(), label, "{provider} {pairs:?}");
                assert!(!e.to_string().contains(SECRET), "secret in error: {e}");
            }
        }
    }
}

#[test]
fn a_tampered_body_is_refused() {
    let body = github_push();
    let h = headers(&[("x-hub-signature-256", &format!("sha256={}", sign(&body)))]);
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert!(verify(Provider::GitHub, &h, &body, &config()).is_ok());
    assert!(matches!(
        verify(Provider::GitHub, &h, &tampered, &config()),
        Err(WebhookError::BadSignature { .. })
    ));
}

#[test]
fn a_provider_without_a_secret_is_refused() {
    let body = github_push();
    let h = headers(&[("x-hub-signature-256", &format!("sha256={}", sign(&body)))]);
    let mut c = config();
    c.github_secret = None;
    assert!(matches!(
        verify(Provider::GitHub, &h, &body, &c),
        Err(WebhookError::NotConfigured {
            provider: Provider::GitHub
        })
    ));
    c.github_secret = Some(WebhookSecret::new(""));
    assert!(matches!(
        verify(Provider::GitHub, &h, &body, &c),
        Err(WebhookError::NotConfigured { .. })
    ));
}

#[test]
fn secrets_never_print() {
    let c = config();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(SECRET), "{dbg}");
    assert!(dbg.contains("<redacted>"));
}

#[test]
fn env_sets_and_unsets_secrets() {
    let mut c = config();
    let env: HashMap<String, String> = [
        ("CAIRN_WEBHOOK_GITHUB_SECRET", "from-env"),
        ("CAIRN_WEBHOOK_GITLAB_SECRET", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    c.apply_env(&env);
    assert_eq!(c.github_secret, Some(WebhookSecret::new("from-env")));
    assert_eq!(c.gitlab_secret, None);
    assert_eq!(c.gitea_secret, Some(WebhookSecret::new(SECRET)));
}

#[test]
fn detection_prefers_giteas_own_header() {
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<Provider>);
    let cases: &[Case] = &[
        (&[("x-github-event", "push")], Some(Provider::GitHub)),
        (&[("x-gitlab-event", "Push Hook")], Some(Provider::GitLab)),
        (
            &[
                ("x-github-event", "push"),
                ("x-gogs-event", "push"),
                ("x-gitea-event", "push"),
            ],
            Some(Provider::Gitea),
        ),
        (
            &[("x-github-event", "push"), ("x-gogs-event", "push")],
            Some(Provider::Gogs),
        ),
        (&[("content-type", "application/json")], None),
    ];
    for (pairs, want) in cases {
        let got = detect(&headers(pairs)).ok().map(|(p, _)| p);
        assert_eq!(got, *want, "{pairs:?}");
    }
}

#[test]
fn parse_github_push() {
    let push = parse(Provider::GitHub, "push", &github_push())
        .expect("valid")
        .expect("a push");
    insta::assert_yaml_snapshot!(push);
}

#[test]
fn parse_gitlab_push_and_tag_push() {
    let push = parse(
        Provider::GitLab,
        "Push Hook",
        &gitlab_push("refs/heads/main"),
    )
    .expect("valid")
    .expect("a push");
    assert_eq!(push.revision, "main");
    assert!(push.touched_head && !push.tag);
    assert_eq!(push.repo_urls.len(), 3);
    let tag = parse(
        Provider::GitLab,
        "Tag Push Hook",
        &gitlab_push("refs/tags/v1.2.0"),
    )
    .expect("valid")
    .expect("a push");
    assert_eq!(
        (tag.revision.as_str(), tag.tag, tag.touched_head),
        ("v1.2.0", true, false)
    );
}

#[test]
fn parse_gitea_push() {
    let push = parse(Provider::Gitea, "push", &gitea_push())
        .expect("valid")
        .expect("a push");
    insta::assert_yaml_snapshot!(push);
}

#[test]
fn non_push_events_are_ignored_and_bad_payloads_named() {
    assert_eq!(
        parse(Provider::GitHub, "ping", b"{\"zen\": \"x\"}").expect("ok"),
        None
    );
    assert_eq!(
        parse(Provider::GitLab, "Merge Request Hook", b"{}").expect("ok"),
        None
    );
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "not JSON"),
        (b"{}", "field `ref`"),
        (b"{\"ref\": \"refs/heads/main\"}", "field `repository`"),
        (
            b"{\"ref\": \"refs/heads/main\", \"repository\": {}}",
            "has no URL",
        ),
    ];
    for (body, want) in cases {
        let err = parse(Provider::GitHub, "push", body).expect_err("bad payload");
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn repo_identity_table() {
    let cases: &[(&str, Option<(&str, &str)>)] = &[
        (
            "https://github.com/Team/GitOps",
            Some(("github.com", "team/gitops")),
        ),
        (
            "https://github.com/Team/GitOps.git",
            Some(("github.com", "team/gitops")),
        ),
        (
            "https://user:tok@github.com/team/gitops/",
            Some(("github.com", "team/gitops")),
        ),
        (
            "git@github.com:Team/GitOps.git",
            Some(("github.com", "team/gitops")),
        ),
        (
            "ssh://git@gitea.local:2222/team/gitops.git",
            Some(("gitea.local", "team/gitops")),
        ),
        (
            "http://gitea.local:3000/team/gitops",
            Some(("gitea.local", "team/gitops")),
        ),
        (
            "git://github.com/Team/GitOps.git",
            Some(("github.com", "team/gitops")),
        ),
        ("https://github.com", None),
        (
            "file:///srv/git/GitOps.git",
            Some(("file", "srv/git/gitops")),
        ),
        ("file:///", None),
        ("not a url", None),
    ];
    for (url, want) in cases {
        assert_eq!(
            repo_identity(url),
            want.map(|(h, p)| (h.to_string(), p.to_string())),
            "{url}"
        );
    }
}

fn app(sources: serde_json::Value, annotations: serde_json::Value) -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "web", "namespace": "argocd", "annotations": annotations},
        "spec": {"sources": sources, "destination": {"server": "https://kubernetes.default.svc"}},
    }))
    .expect("app")
}

#[test]
fn matching_table() {
    let push = parse(Provider::GitHub, "push", &github_push())
        .expect("valid")
        .expect("push");
    let none = json!({});
    let cases: Vec<(serde_json::Value, serde_json::Value, bool, &str)> = vec![
        (
            json!([{"repoURL": "https://github.com/team/gitops.git", "targetRevision": "main"}]),
            none.clone(),
            true,
            "branch",
        ),
        (
            json!([{"repoURL": "git@github.com:team/gitops.git", "targetRevision": "HEAD"}]),
            none.clone(),
            true,
            "HEAD = default branch, SSH form",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops"}]),
            none.clone(),
            true,
            "empty revision = HEAD",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops", "targetRevision": "refs/heads/main"}]),
            none.clone(),
            true,
            "refs/heads prefix",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops", "targetRevision": "release"}]),
            none.clone(),
            false,
            "other branch",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops", "targetRevision": "6113728f27ae82c7b1a177c8d03f9e96e0adf246"}]),
            none.clone(),
            false,
            "pinned SHA",
        ),
        (
            json!([{"repoURL": "https://github.com/team/other", "targetRevision": "main"}]),
            none.clone(),
            false,
            "other repo",
        ),
        (
            json!([{"repoURL": "https://gitlab.com/team/gitops", "targetRevision": "main"}]),
            none.clone(),
            false,
            "other host",
        ),
        (
            json!([{"repoURL": "https://charts.example.com", "chart": "x"}, {"repoURL": "https://github.com/team/gitops", "targetRevision": "main", "ref": "values"}]),
            none.clone(),
            true,
            "multi-source: a ref source matches",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops", "targetRevision": "main", "path": "apps/web"}]),
            json!({MANIFEST_PATHS_ANNOTATION: "."}),
            true,
            "path annotation: touched",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops", "targetRevision": "main", "path": "apps/db"}]),
            json!({MANIFEST_PATHS_ANNOTATION: "."}),
            false,
            "path annotation: untouched",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops", "targetRevision": "main", "path": "apps/db"}]),
            json!({MANIFEST_PATHS_ANNOTATION: ".;/apps/web"}),
            true,
            "absolute path entry",
        ),
        (
            json!([{"repoURL": "https://github.com/team/gitops", "targetRevision": "main", "path": "apps/db"}]),
            json!({MANIFEST_PATHS_ANNOTATION: "../web"}),
            true,
            "relative .. entry",
        ),
    ];
    for (sources, annotations, want, label) in cases {
        assert_eq!(
            app_matches(&app(sources, annotations), &push),
            want,
            "{label}"
        );
    }
}

#[test]
fn tags_match_by_name_and_never_move_head() {
    let push = parse(
        Provider::GitLab,
        "Tag Push Hook",
        &gitlab_push("refs/tags/v1.2.0"),
    )
    .expect("valid")
    .expect("push");
    let cases = [
        ("v1.2.0", true),
        ("refs/tags/v1.2.0", true),
        ("HEAD", false),
        ("v1.2", false),
    ];
    for (rev, want) in cases {
        assert_eq!(revision_matches(Some(rev), &push), want, "{rev}");
    }
}

#[test]
fn refresh_kind_parsing() {
    assert_eq!(RefreshKind::parse("normal"), Some(RefreshKind::Normal));
    assert_eq!(RefreshKind::parse("hard"), Some(RefreshKind::Hard));
    assert_eq!(RefreshKind::parse("soft"), None);
}

#[test]
fn webhook_section_of_cairn_toml() {
    use crate::config::{Config, Host, Overrides};
    let path = std::path::Path::new("/etc/cairn/cairn.toml");
    let text = format!(
        "[server]\ndata_dir = \"/tmp/x\"\n\n[webhook]\ngithub_secret = \"{SECRET}\"\nmax_payload_bytes = 1048576\n"
    );
    let host = Host { is_root: false };
    let config = Config::resolve(
        Some((path, &text)),
        &HashMap::new(),
        &Overrides::default(),
        host,
    )
    .expect("valid");
    assert_eq!(
        config.webhook.github_secret,
        Some(WebhookSecret::new(SECRET))
    );
    assert_eq!(config.webhook.gitlab_secret, None);
    assert_eq!(config.webhook.max_payload_bytes, 1_048_576);
    assert!(
        !format!("{config:?}").contains(SECRET),
        "secret in the config's Debug"
    );
    // Strict: a misspelt key names the file, the line and the field.
    let typo = "[webhook]\ngithub_secrett = \"x\"\n";
    let err = Config::resolve(
        Some((path, typo)),
        &HashMap::new(),
        &Overrides::default(),
        host,
    )
    .expect_err("unknown key");
    let text = err.to_string();
    assert!(
        text.contains("cairn.toml:2") && text.contains("github_secrett"),
        "{text}"
    );
    // Defaults: no secret at all, GitHub's 25 MB cap.
    let none =
        Config::resolve(None, &HashMap::new(), &Overrides::default(), host).expect("defaults");
    assert_eq!(none.webhook, WebhookConfig::default());
    assert_eq!(none.webhook.max_payload_bytes, 25 * 1024 * 1024);
}
