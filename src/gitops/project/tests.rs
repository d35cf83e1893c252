//! Table tests of Argo CD's AppProject rules.

use serde_json::json;

use super::*;

fn project(spec: serde_json::Value) -> AppProject {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AppProject",
        "metadata": {"name": "team", "namespace": "argocd"},
        "spec": spec,
    }))
    .expect("project")
}

fn app(spec: serde_json::Value, namespace: &str) -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "guestbook", "namespace": namespace},
        "spec": spec,
    }))
    .expect("application")
}

fn dest(server: &str, name: &str, namespace: &str) -> Destination {
    Destination {
        server: server.into(),
        name: name.into(),
        namespace: namespace.into(),
    }
}

#[test]
fn glob_dialect() {
    let cases: &[(&str, &str, Option<char>, bool)] = &[
        ("*", "anything/at/all", None, true),
        ("a*c", "abbbc", None, true),
        ("a*c", "ab/c", Some('/'), false),
        ("a**c", "ab/c", Some('/'), true),
        ("a?c", "abc", None, true),
        ("a?c", "a/c", Some('/'), false),
        ("a?c", "ac", None, false),
        ("[abc]x", "bx", None, true),
        ("[!abc]x", "bx", None, false),
        ("[a-c]x", "cx", None, true),
        ("[a-c]x", "dx", None, false),
        ("{apps,batch}", "batch", None, true),
        ("{apps,batch}", "core", None, false),
        ("team-{a,b{1,2}}", "team-b2", None, true),
        ("\\*", "*", None, true),
        ("\\*", "x", None, false),
        ("", "", None, true),
        ("", "x", None, false),
        ("[abc", "[abc", None, true),
        ("{a,b", "{a,b", None, true),
        ("prod-*", "prod-eu", None, true),
        ("prod-*", "dev-eu", None, false),
    ];
    for (pattern, text, sep, want) in cases {
        assert_eq!(
            glob_match(pattern, text, *sep),
            *want,
            "glob {pattern:?} on {text:?} sep {sep:?}"
        );
    }
}

#[test]
fn source_repos_table() {
    let cases: &[(serde_json::Value, &str, bool)] = &[
        (json!(["*"]), "https://github.com/o/r.git", true),
        (json!([]), "https://github.com/o/r.git", false),
        (json!(null), "https://github.com/o/r.git", false),
        // normalization: case, .git suffix, scp-like SSH vs ssh://
        (
            json!(["https://GitHub.com/o/r"]),
            "https://github.com/o/r.git",
            true,
        ),
        (
            json!(["git@github.com:o/r.git"]),
            "ssh://git@github.com/o/r",
            true,
        ),
        // `*` stays within a path segment, `**` crosses segments
        (
            json!(["https://github.com/o/*"]),
            "https://github.com/o/r",
            true,
        ),
        (
            json!(["https://github.com/*"]),
            "https://github.com/o/r",
            false,
        ),
        (
            json!(["https://github.com/**"]),
            "https://github.com/o/r",
            true,
        ),
        // deny wins over allow
        (
            json!(["!https://github.com/o/secret", "*"]),
            "https://github.com/o/secret.git",
            false,
        ),
        (
            json!(["!https://github.com/o/secret", "*"]),
            "https://github.com/o/public",
            true,
        ),
        (
            json!(["*", "!https://github.com/o/*"]),
            "https://github.com/o/r",
            false,
        ),
        // Argo CD quirk: an unmatched deny entry counts as a match
        (
            json!(["!https://github.com/o/secret"]),
            "https://github.com/o/x",
            true,
        ),
        (
            json!(["https://gitlab.com/o/r"]),
            "https://github.com/o/r",
            false,
        ),
    ];
    for (repos, url, want) in cases {
        let p = project(json!({ "sourceRepos": repos }));
        assert_eq!(
            source_permitted(&p.spec, url),
            *want,
            "sourceRepos {repos} for {url}"
        );
    }
}

#[test]
fn destinations_table() {
    let cases: &[(serde_json::Value, Destination, bool)] = &[
        (
            json!([{"server": "*", "namespace": "*"}]),
            dest("https://kubernetes.default.svc", "", "x"),
            true,
        ),
        (
            json!([{"server": "https://kubernetes.default.svc", "namespace": "team-*"}]),
            dest("https://kubernetes.default.svc", "", "team-a"),
            true,
        ),
        (
            json!([{"server": "https://kubernetes.default.svc", "namespace": "team-*"}]),
            dest("https://kubernetes.default.svc", "", "kube-system"),
            false,
        ),
        // by name only
        (
            json!([{"name": "in-cluster", "namespace": "*"}]),
            dest("", "in-cluster", "x"),
            true,
        ),
        // an entry with only a server does not match a name-only destination
        (
            json!([{"server": "https://kubernetes.default.svc", "namespace": "*"}]),
            dest("", "in-cluster", "x"),
            false,
        ),
        // resolved destinations carry both: either matches
        (
            json!([{"server": "https://kubernetes.default.svc", "namespace": "*"}]),
            dest("https://kubernetes.default.svc", "in-cluster", "x"),
            true,
        ),
        // namespace deny
        (
            json!([{"server": "*", "namespace": "!kube-system"}, {"server": "*", "namespace": "*"}]),
            dest("https://k", "", "kube-system"),
            false,
        ),
        (
            json!([{"server": "*", "namespace": "!kube-system"}, {"server": "*", "namespace": "*"}]),
            dest("https://k", "", "apps"),
            true,
        ),
        // server deny
        (
            json!([{"server": "!https://prod.example.com", "namespace": "*"}, {"server": "*", "namespace": "*"}]),
            dest("https://prod.example.com", "", "apps"),
            false,
        ),
        // no destinations at all
        (json!([]), dest("https://k", "", "apps"), false),
        // empty namespace only matches an empty or `*` pattern
        (
            json!([{"server": "*", "namespace": "apps"}]),
            dest("https://k", "", ""),
            false,
        ),
        (
            json!([{"server": "*", "namespace": "*"}]),
            dest("https://k", "", ""),
            true,
        ),
    ];
    for (destinations, d, want) in cases {
        let p = project(json!({ "destinations": destinations }));
        assert_eq!(
            destination_permitted(&p.spec, d),
            *want,
            "destinations {destinations} for {d:?}"
        );
    }
}

#[test]
fn group_kind_table() {
    let cases: &[(serde_json::Value, &str, &str, bool, bool)] = &[
        // defaults: every namespaced kind, no cluster-scoped kind
        (json!({}), "apps", "Deployment", true, true),
        (json!({}), "", "Namespace", false, false),
        (
            json!({}),
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false,
            false,
        ),
        // cluster whitelist
        (
            json!({"clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}]}),
            "",
            "Namespace",
            false,
            true,
        ),
        (
            json!({"clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}),
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false,
            true,
        ),
        (
            json!({"clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                   "clusterResourceBlacklist": [{"group": "rbac.authorization.k8s.io", "kind": "*"}]}),
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false,
            false,
        ),
        // an empty cluster whitelist allows nothing
        (
            json!({"clusterResourceWhitelist": []}),
            "",
            "Namespace",
            false,
            false,
        ),
        // namespace whitelist present: only what it lists
        (
            json!({"namespaceResourceWhitelist": [{"group": "apps", "kind": "Deployment"}]}),
            "apps",
            "Deployment",
            true,
            true,
        ),
        (
            json!({"namespaceResourceWhitelist": [{"group": "apps", "kind": "Deployment"}]}),
            "",
            "Service",
            true,
            false,
        ),
        // an empty (not absent) namespace whitelist allows nothing
        (
            json!({"namespaceResourceWhitelist": []}),
            "",
            "ConfigMap",
            true,
            false,
        ),
        // namespace blacklist
        (
            json!({"namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}]}),
            "",
            "ResourceQuota",
            true,
            false,
        ),
        (
            json!({"namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}]}),
            "",
            "ConfigMap",
            true,
            true,
        ),
        // globs in group and kind
        (
            json!({"namespaceResourceBlacklist": [{"group": "*.k8s.io", "kind": "*"}]}),
            "networking.k8s.io",
            "NetworkPolicy",
            true,
            false,
        ),
        // the cluster lists never apply to namespaced kinds
        (
            json!({"clusterResourceBlacklist": [{"group": "*", "kind": "*"}]}),
            "",
            "ConfigMap",
            true,
            true,
        ),
    ];
    for (spec, group, kind, namespaced, want) in cases {
        let p = project(spec.clone());
        assert_eq!(
            group_kind_permitted(&p.spec, group, kind, *namespaced),
            *want,
            "{spec} for {group}/{kind} namespaced={namespaced}"
        );
    }
}

#[test]
fn source_namespaces_table() {
    let cases: &[(serde_json::Value, &str, bool)] = &[
        (json!(null), "argocd", true),
        (json!(null), "team-a", false),
        (json!(["team-*"]), "team-a", true),
        (json!(["team-*"]), "other", false),
        (json!(["*"]), "anything", true),
        // regex entries fail closed
        (json!(["/team-.*/"]), "team-a", false),
        (json!([]), "", true),
    ];
    for (namespaces, ns, want) in cases {
        let p = project(json!({ "sourceNamespaces": namespaces }));
        assert_eq!(
            namespace_permitted(&p.spec, ns, "argocd"),
            *want,
            "sourceNamespaces {namespaces} for {ns}"
        );
    }
}

#[test]
fn check_app_collects_every_violation_with_argo_messages() {
    let p = project(json!({
        "sourceRepos": ["https://github.com/team/*"],
        "destinations": [{"server": "https://kubernetes.default.svc", "namespace": "team-*"}],
    }));
    let a = app(
        json!({
            "project": "team",
            "sources": [
                {"repoURL": "https://github.com/team/ok.git"},
                {"repoURL": "https://github.com/other/bad.git"},
            ],
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "kube-system"},
        }),
        "apps",
    );
    let d = Destination::of_app(&a);
    let got = check_app(&p, &a, "argocd", &d).expect_err("three violations");
    let rendered: Vec<(String, &str)> = got
        .iter()
        .map(|v| (v.message(), v.condition_type()))
        .collect();
    insta::assert_yaml_snapshot!(rendered);
}

#[test]
fn check_app_accepts_an_allowed_app() {
    let p = project(json!({
        "sourceRepos": ["*"],
        "destinations": [{"name": "in-cluster", "namespace": "team-*"}],
    }));
    let a = app(
        json!({
            "project": "team",
            "source": {"repoURL": "https://github.com/team/ok.git", "path": "x"},
            "destination": {"name": "in-cluster", "namespace": "team-a"},
        }),
        "argocd",
    );
    assert_eq!(
        check_app(&p, &a, "argocd", &Destination::of_app(&a)),
        Ok(())
    );
}

#[test]
fn check_app_requires_a_source() {
    let p = implicit_default();
    let a = app(
        json!({"destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}),
        "argocd",
    );
    assert_eq!(
        check_app(&p, &a, "argocd", &Destination::of_app(&a)),
        Err(vec![Violation::NoSource])
    );
}

#[test]
fn implicit_default_project_allows_everything() {
    let a = app(
        json!({
            "source": {"repoURL": "git@example.com:any/repo.git"},
            "destination": {"server": "https://elsewhere:6443", "namespace": "kube-system"},
        }),
        "argocd",
    );
    let p = resolve(&a, None).expect("implicit default");
    assert_eq!(p.metadata.name.as_deref(), Some("default"));
    assert_eq!(
        check_app(&p, &a, "argocd", &Destination::of_app(&a)),
        Ok(())
    );
    let d = Destination::of_app(&a);
    for (group, kind, ns, namespaced) in [
        ("", "Namespace", "", false),
        ("rbac.authorization.k8s.io", "ClusterRole", "", false),
        ("apps", "Deployment", "anywhere", true),
    ] {
        assert_eq!(check_resource(&p, &d, group, kind, ns, namespaced), Ok(()));
    }
}

#[test]
fn an_existing_default_project_replaces_the_implicit_one() {
    let a = app(json!({"source": {"repoURL": "https://x/y"}}), "argocd");
    let mut strict = project(json!({"sourceRepos": []}));
    strict.metadata.name = Some("default".into());
    let p = resolve(&a, Some(strict)).expect("found");
    assert!(!source_permitted(&p.spec, "https://x/y"));
}

#[test]
fn a_missing_named_project_is_a_violation() {
    let a = app(json!({"project": "ghost"}), "argocd");
    let err = resolve(&a, None).expect_err("missing");
    assert_eq!(
        err.message(),
        "Application referencing project ghost which does not exist"
    );
    assert_eq!(err.condition_type(), "InvalidSpecError");
}

#[test]
fn check_resource_table() {
    let p = project(json!({
        "destinations": [{"server": "https://kubernetes.default.svc", "namespace": "team-*"}],
        "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
        "namespaceResourceBlacklist": [{"group": "", "kind": "Secret"}],
    }));
    let d = dest("https://kubernetes.default.svc", "in-cluster", "team-a");
    let cases: &[(&str, &str, &str, bool, Option<&str>)] = &[
        ("apps", "Deployment", "team-a", true, None),
        ("", "Namespace", "", false, None),
        (
            "",
            "Secret",
            "team-a",
            true,
            Some("resource :Secret is not permitted in project team"),
        ),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            "",
            false,
            Some("resource rbac.authorization.k8s.io:ClusterRole is not permitted in project team"),
        ),
        (
            "apps",
            "Deployment",
            "kube-system",
            true,
            Some("namespace kube-system is not permitted in project 'team'"),
        ),
    ];
    for (group, kind, ns, namespaced, want) in cases {
        let got = check_resource(&p, &d, group, kind, ns, *namespaced);
        assert_eq!(
            got.as_ref().err().map(Violation::message).as_deref(),
            *want,
            "{group}/{kind} in {ns}"
        );
        if let Err(v) = got {
            assert_eq!(v.condition_type(), "ComparisonError");
        }
    }
}

#[test]
fn destination_text_prefers_the_server() {
    let v = Violation::DestinationNotPermitted {
        project: "p".into(),
        server: String::new(),
        name: "prod".into(),
        namespace: "x".into(),
    };
    assert_eq!(
        v.message(),
        "application destination name 'prod' and namespace 'x' do not match any of the allowed destinations in project 'p'"
    );
}
