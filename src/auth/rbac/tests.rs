//! Table-driven cases from Argo CD's RBAC documentation (operator-manual/rbac.md,
//! builtin-policy.csv, the 2.14 -> 3.0 upgrade notes) and the cairn additions.

use super::*;

/// Policy lines taken from (or shaped like) the examples of Argo CD's RBAC documentation.
const DOCS: &str = r#"
# Grant all members of the group 'my-org:team-alpha' the ability to sync apps in 'my-project'
p, my-org:team-alpha, applications, sync, my-project/*, allow
# Grant all members of 'my-org:team-beta' admins
g, my-org:team-beta, role:admin
g, user@example.org, role:admin

p, example-user, applications, get, *, allow
p, example-user, logs, get, example-project/my-app, allow
p, ns-user, applications, get, */app-namespace/*, allow
p, ns-user, logs, get, example-project/app-namespace/my-app, allow

p, pod-deleter, applications, delete/*/Pod/*/*, default/prod-app, allow
p, res-updater, applications, update/*, default/prod-app, allow
p, pod-only, applications, delete, default/prod-app, deny
p, pod-only, applications, delete/*/Pod/*/*, default/prod-app, allow
p, explicit, applications, delete, default/prod-app, allow
p, explicit, applications, delete/*/Pod/*/*, default/prod-app, deny

p, action-user, applications, action//Pod/maintenance-off, default/*, allow
p, action-user, applications, action/extensions/DaemonSet/*, default/*, allow
p, any-action, applications, action/*, default/*, allow
p, glob-user, applications, action/extensions/*, default/*, allow

p, dev-group, applicationsets, *, dev-project/*, allow
p, ext-user, applications, get, default/*, allow
p, ext-user, extensions, invoke, httpbin, allow
p, my-local-user, *, *, *, allow

p, role:dev, applications, *, dev/*, allow
p, role:dev, applications, delete, dev/protected, deny
g, alice, role:dev
p, role:lead, projects, update, dev, allow
g, role:lead, role:dev
g, bob, role:lead

p, carol, clusters, create, *, allow
p, carol, clusters, create, https://prod-*, deny
p, dave, applications, sync, team-?/*, allow

p, role:loop-a, models, get, *, allow
g, role:loop-a, role:loop-b
g, role:loop-b, role:loop-a
g, erin, role:loop-b

p, ml-team, workflows, create, ml/*, allow
p, ml-team, workflows, delete, ml/*, deny
"#;

#[derive(Clone, Copy, Debug)]
enum P {
    /// DOCS, no default role, Argo CD 3 semantics.
    None,
    /// DOCS with `policy.default: role:readonly`.
    Ro,
    /// DOCS with Argo CD 2.x application inheritance.
    V2,
    /// A custom default role with its own deny.
    Base,
}

const BASE: &str = "
p, role:base, applications, get, */*, allow
p, role:base, applications, get, secret/*, deny
g, frank, role:admin
p, gina, applications, get, pub/*, deny
";

fn policy(p: P) -> Policy {
    let parsed = match p {
        P::None => Policy::parse(DOCS, None),
        P::Ro => Policy::parse(DOCS, Some("role:readonly")),
        P::V2 => Policy::parse(DOCS, None).map(|p| p.with_application_inheritance(true)),
        P::Base => Policy::parse(BASE, Some("role:base")),
    };
    parsed.expect("test policy parses")
}

type Case = (
    P,
    &'static [&'static str],
    &'static str,
    &'static str,
    &'static str,
    bool,
);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Group grants from the argocd-rbac-cm example.
    (P::None, &["my-org:team-alpha"], "applications", "sync", "my-project/guestbook", true),
    (P::None, &["my-org:team-alpha"], "applications", "sync", "other/guestbook", false),
    (P::None, &["my-org:team-alpha"], "applications", "get", "my-project/guestbook", false),
    (P::None, &["someone", "my-org:team-beta"], "clusters", "delete", "https://k", true),
    (P::None, &["user@example.org"], "projects", "create", "p", true),
    (P::None, &["my-org:team-beta"], "accounts", "update", "alice", true),
    // Built-in role:admin.
    (P::None, &["my-org:team-beta"], "applications", "delete/apps/Deployment/ns/web", "p/a", true),
    (P::None, &["my-org:team-beta"], "applications", "action//Pod/restart", "p/a", true),
    (P::None, &["my-org:team-beta"], "exec", "create", "p/a", true),
    (P::None, &["my-org:team-beta"], "workflows", "create", "ml/train", true),
    (P::None, &["my-org:team-beta"], "lineage", "get", "*", true),
    (P::None, &["admin"], "repositories", "create", "https://git.example.com/r", true),
    // Application-specific objects.
    (P::None, &["example-user"], "applications", "get", "example-project/my-app", true),
    (P::None, &["example-user"], "logs", "get", "example-project/my-app", true),
    (P::None, &["example-user"], "logs", "get", "example-project/other-app", false),
    (P::None, &["ns-user"], "applications", "get", "proj/app-namespace/app1", true),
    (P::None, &["ns-user"], "applications", "get", "proj/other-ns/app1", false),
    (P::None, &["ns-user"], "logs", "get", "example-project/app-namespace/my-app", true),
    // Fine-grained update/delete on an application's resources (Argo CD 3).
    (P::None, &["pod-deleter"], "applications", "delete//Pod/ns/web-0", "default/prod-app", true),
    (P::None, &["pod-deleter"], "applications", "delete/apps/Deployment/ns/web", "default/prod-app", false),
    (P::None, &["pod-deleter"], "applications", "delete", "default/prod-app", false),
    (P::None, &["res-updater"], "applications", "update/apps/Deployment/ns/web", "default/prod-app", true),
    (P::None, &["res-updater"], "applications", "update", "default/prod-app", false),
    (P::None, &["pod-only"], "applications", "delete", "default/prod-app", false),
    (P::None, &["pod-only"], "applications", "delete//Pod/ns/p", "default/prod-app", true),
    (P::None, &["explicit"], "applications", "delete//Pod/ns/p", "default/prod-app", false),
    (P::None, &["explicit"], "applications", "delete/apps/Deployment/ns/x", "default/prod-app", false),
    // Argo CD 2.x: delete on the application covers its resources; a resource deny cannot
    // take that away.
    (P::V2, &["explicit"], "applications", "delete//Pod/ns/p", "default/prod-app", true),
    (P::V2, &["explicit"], "applications", "delete", "default/prod-app", true),
    (P::V2, &["explicit"], "applications", "delete/apps/Deployment/ns/x", "default/prod-app", true),
    (P::V2, &["pod-only"], "applications", "delete/apps/Deployment/ns/x", "default/prod-app", false),
    // Resource actions.
    (P::None, &["action-user"], "applications", "action//Pod/maintenance-off", "default/app", true),
    (P::None, &["action-user"], "applications", "action//Pod/other", "default/app", false),
    (P::None, &["action-user"], "applications", "action/extensions/DaemonSet/restart", "default/app", true),
    (P::None, &["action-user"], "applications", "action/extensions/DaemonSet/restart", "prod/app", false),
    (P::None, &["any-action"], "applications", "action/apps/Deployment/restart", "default/x", true),
    (P::None, &["glob-user"], "applications", "action/extensions/DaemonSet/test", "default/my-app", true),
    // ApplicationSets and extensions.
    (P::None, &["dev-group"], "applicationsets", "create", "dev-project/appset", true),
    (P::None, &["dev-group"], "applicationsets", "create", "prod-project/appset", false),
    (P::None, &["ext-user"], "extensions", "invoke", "httpbin", true),
    (P::None, &["ext-user"], "extensions", "invoke", "other", false),
    (P::None, &["ext-user"], "applications", "delete", "default/x", false),
    (P::None, &["my-local-user"], "clusters", "delete", "https://x", true),
    // Roles, transitive inheritance, deny inside a role.
    (P::None, &["alice"], "applications", "sync", "dev/app", true),
    (P::None, &["alice"], "applications", "delete", "dev/protected", false),
    (P::None, &["alice"], "applications", "delete", "dev/other", true),
    (P::None, &["bob"], "applications", "sync", "dev/app", true),
    (P::None, &["bob"], "projects", "update", "dev", true),
    (P::None, &["alice"], "projects", "update", "dev", false),
    (P::None, &["bob"], "applications", "delete", "dev/protected", false),
    (P::None, &["Alice"], "applications", "sync", "dev/app", false),
    (P::None, &["erin"], "models", "get", "m", true),
    // Deny beats allow; `?` matches one character.
    (P::None, &["carol"], "clusters", "create", "https://staging", true),
    (P::None, &["carol"], "clusters", "create", "https://prod-eu", false),
    (P::None, &["dave"], "applications", "sync", "team-a/app", true),
    (P::None, &["dave"], "applications", "sync", "team-ab/app", false),
    // Subjects are evaluated separately: one group's deny does not cancel another's allow.
    (P::None, &["u", "ml-team"], "workflows", "delete", "ml/x", false),
    (P::None, &["u", "ml-team", "my-org:team-beta"], "workflows", "delete", "ml/x", true),
    (P::None, &["ml-team"], "workflows", "create", "ml/x", true),
    // policy.default.
    (P::None, &["nobody"], "applications", "get", "p/a", false),
    (P::Ro, &["nobody"], "applications", "get", "p/a", true),
    (P::Ro, &["nobody"], "applications", "sync", "p/a", false),
    (P::Ro, &["nobody"], "logs", "get", "p/a", true),
    (P::Ro, &["nobody"], "exec", "create", "p/a", false),
    (P::Ro, &["nobody"], "workflows", "get", "ns/wf", true),
    (P::Ro, &["nobody"], "accounts", "update", "nobody", false),
    (P::Ro, &[], "clusters", "get", "https://x", true),
    // The default role decides first: its deny is final, and a user deny cannot remove it.
    (P::Base, &["frank"], "applications", "get", "secret/x", false),
    (P::Base, &["frank"], "applications", "get", "pub/x", true),
    (P::Base, &["frank"], "applications", "delete", "secret/x", true),
    (P::Base, &["gina"], "applications", "get", "pub/x", true),
];

#[test]
fn enforce_table() {
    assert!(CASES.len() >= 40);
    let mut failures = Vec::new();
    for (i, (p, subjects, resource, action, object, want)) in CASES.iter().enumerate() {
        let got = policy(*p).enforce(subjects, resource, action, object);
        if got != *want {
            failures.push(format!(
                "case {i}: {p:?} {subjects:?} {resource} {action} {object}: got {got}, want {want}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn builtin_roles_cover_every_resource() {
    let p = Policy::parse("g, ann, role:readonly\ng, root, role:admin", None).expect("parse");
    for resource in resources::ALL {
        let readable = !matches!(resource, "exec" | "extensions");
        assert_eq!(
            p.enforce(&["ann"], resource, "get", "a/b"),
            readable,
            "readonly get {resource}"
        );
        assert!(
            !p.enforce(&["ann"], resource, "delete", "a/b"),
            "readonly delete {resource}"
        );
        assert!(
            !p.enforce(&["ann"], resource, "create", "a/b"),
            "readonly create {resource}"
        );
    }
    for resource in resources::CAIRN {
        for action in ["get", "create", "update", "delete", "submit"] {
            assert!(
                p.enforce(&["root"], resource, action, "ns/x"),
                "admin {action} {resource}"
            );
        }
    }
    for (resource, action) in [
        ("applications", "sync"),
        ("applications", "rollback"),
        ("applications", "override"),
        ("applicationsets", "delete"),
        ("certificates", "create"),
        ("gpgkeys", "delete"),
        ("exec", "debug"),
        ("extensions", "invoke"),
        ("write-repositories", "update"),
    ] {
        assert!(
            p.enforce(&["root"], resource, action, "a/b"),
            "admin {action} {resource}"
        );
    }
    // Argo CD's built-in admin does not create accounts (the verb does not exist for them).
    assert!(!p.enforce(&["root"], "accounts", "create", "x"));
}

#[test]
fn can_any_for_list_gates() {
    let none = policy(P::None);
    assert!(none.can_any(&["my-org:team-alpha"], "applications", "sync"));
    assert!(!none.can_any(&["my-org:team-alpha"], "applications", "get"));
    assert!(!none.can_any(&["nobody"], "applications", "get"));
    assert!(
        none.can_any(&["carol"], "clusters", "create"),
        "allow * is not covered by prod-*"
    );
    assert!(
        none.can_any(&["bob"], "applications", "get"),
        "via role:dev"
    );
    assert!(policy(P::Ro).can_any(&["nobody"], "applications", "get"));
    assert!(policy(P::Ro).can_any(&[], "workflows", "get"));
    assert!(!policy(P::Ro).can_any(&["nobody"], "workflows", "delete"));

    let p = |csv: &str| Policy::parse(csv, None).expect("parse");
    let covered = p("p, h, applications, get, proj/*, allow\np, h, applications, get, *, deny");
    assert!(!covered.can_any(&["h"], "applications", "get"));
    let same = p("p, h, applications, get, proj/*, allow\np, h, applications, get, proj/*, deny");
    assert!(!same.can_any(&["h"], "applications", "get"));
    let prefix =
        p("p, h, applications, get, proj/a*, allow\np, h, applications, get, proj/*, deny");
    assert!(!prefix.can_any(&["h"], "applications", "get"));
    let partial =
        p("p, h, applications, get, proj/*, allow\np, h, applications, get, proj/a*, deny");
    assert!(partial.can_any(&["h"], "applications", "get"));
    // A deny of the default role applies to everyone.
    let base = Policy::parse(
        "p, role:base, applications, get, secret/*, deny\np, h, applications, get, secret/*, allow",
        Some("role:base"),
    )
    .expect("parse");
    assert!(!base.can_any(&["h"], "applications", "get"));
}

#[test]
fn parse_errors_name_line_and_expectation() {
    let cases: &[(&str, RbacError)] = &[
        (
            "p, a, applications, get, */*",
            RbacError::FieldCount {
                line: 1,
                kind: 'p',
                found: 5,
                expected: 6,
            },
        ),
        (
            "\n# comment\ng, a",
            RbacError::FieldCount {
                line: 3,
                kind: 'g',
                found: 2,
                expected: 3,
            },
        ),
        (
            "x, a, b",
            RbacError::LineType {
                line: 1,
                found: "x".into(),
            },
        ),
        (
            "p, a, applicaitons, get, *, allow",
            RbacError::UnknownResource {
                line: 1,
                found: "applicaitons".into(),
            },
        ),
        (
            "p, a, applications, get, *, permit",
            RbacError::Effect {
                line: 1,
                found: "permit".into(),
            },
        ),
        (
            "p, , applications, get, *, allow",
            RbacError::EmptyField {
                line: 1,
                field: "subject",
            },
        ),
        (
            "g, alice,",
            RbacError::EmptyField {
                line: 1,
                field: "role",
            },
        ),
        (
            "p, a b, applications, get, *, allow",
            RbacError::Whitespace {
                line: 1,
                field: "subject",
                found: "a b".into(),
            },
        ),
    ];
    for (csv, want) in cases {
        assert_eq!(Policy::parse(csv, None).expect_err(csv), *want, "{csv}");
    }
    let text = Policy::parse("g, a, b\n\np, a, apps, get, *, allow", None)
        .expect_err("unknown resource")
        .to_string();
    assert!(text.contains("line 3"), "{text}");
    assert!(
        text.contains("applications"),
        "lists what is expected: {text}"
    );
    let text = Policy::parse("p, a, applications, get, *", None)
        .expect_err("fields")
        .to_string();
    assert!(
        text.contains("p, <subject>, <resource>, <action>, <object>, <allow|deny>"),
        "{text}"
    );
}

#[test]
fn parse_accepts_patterns_comments_and_spacing() {
    let p = Policy::parse(
        "  # indented comment\n\
         p,h,app*,get,*,allow\n\
         \tp ,  k , *, * , * , deny  \n",
        Some("  "),
    )
    .expect("parse");
    assert_eq!(p.default_role(), None, "a blank default role is none");
    assert!(p.enforce(&["h"], "applications", "get", "x/y"));
    assert!(p.enforce(&["h"], "applicationsets", "get", "x/y"));
    assert!(!p.enforce(&["h"], "clusters", "get", "x"));
    assert!(!p.enforce(&["k"], "clusters", "get", "x"));
}

#[test]
fn glob_semantics() {
    let cases = [
        ("*", "", true),
        ("*", "a/b/c", true),
        ("*/*", "proj/app", true),
        ("*/*", "proj/ns/app", true),
        ("*/*", "proj", false),
        ("my-project/*", "my-project/a", true),
        ("my-project/*", "my-project", false),
        ("*/prod-*", "team/prod-api", true),
        ("*/prod-*", "team/dev-api", false),
        ("a?c", "abc", true),
        ("a?c", "ac", false),
        ("a*b*c", "aXXbYYc", true),
        ("a*b*c", "aXXbYY", false),
        ("action//Pod/*", "action//Pod/restart", true),
        ("delete/*/Pod/*/*", "delete//Pod/ns/p", true),
        ("delete/*/Pod/*/*", "delete/apps/Deployment/ns/p", false),
        ("exact", "exact", true),
        ("exact", "exactly", false),
        ("**", "x", true),
    ];
    for (pattern, text, want) in cases {
        assert_eq!(glob(pattern, text), want, "{pattern} ~ {text}");
    }
}

#[test]
fn object_helpers() {
    assert_eq!(application_object("p", None, "a"), "p/a");
    assert_eq!(application_object("p", Some("ns"), "a"), "p/ns/a");
    assert_eq!(
        application_resource_action("delete", "", "Pod", "ns", "web-0"),
        "delete//Pod/ns/web-0"
    );
}

#[test]
fn granted_checks_ignore_the_default_role() {
    let policy = Policy::parse(
        "p, system:serviceaccount:dp-prod:recommender, models, get, recommender, allow\n\
         p, system:serviceaccounts:ml, models, create, *, allow\n\
         g, system:serviceaccount:ml:trainer, role:model-promoter\n\
         p, role:model-promoter, models, promote, recommender/staging, allow\n",
        Some(ROLE_READONLY),
    )
    .expect("policy");
    let serving = ["system:serviceaccount:dp-prod:recommender"];
    let other = ["system:serviceaccount:dp-prod:other"];
    let trainer = [
        "system:serviceaccount:ml:trainer",
        "system:serviceaccounts",
        "system:serviceaccounts:ml",
    ];
    // The default role lets anyone read every model; a granted check does not.
    assert!(policy.enforce_with(None, &other, "models", "get", "recommender"));
    assert!(!policy.enforce_granted_with(None, &other, "models", "get", "recommender"));
    // What is granted by name (subject, group, role binding) still counts.
    assert!(policy.enforce_granted_with(None, &serving, "models", "get", "recommender"));
    assert!(!policy.enforce_granted_with(None, &serving, "models", "get", "other-model"));
    assert!(policy.enforce_granted_with(None, &trainer, "models", "create", "recommender"));
    assert!(policy.enforce_granted_with(
        None,
        &trainer,
        "models",
        "promote",
        "recommender/staging"
    ));
    assert!(!policy.enforce_granted_with(None, &trainer, "models", "promote", "recommender/prod"));
    // The same for "some object" (list routes): the default role's `get` does not count.
    assert!(policy.can_any_with(None, &other, "models", "get"));
    assert!(!policy.can_any_granted_with(None, &other, "models", "get"));
    assert!(policy.can_any_granted_with(None, &serving, "models", "get"));
    assert!(policy.can_any_granted_with(None, &trainer, "models", "create"));
    assert!(!policy.can_any_granted_with(None, &trainer, "models", "delete"));
    assert!(!policy.can_any_granted_with(None, &serving, "experiments", "get"));
}
