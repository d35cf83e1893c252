//! AppProject enforcement, with Argo CD's exact rules (pure).
//!
//! Owns the decision "may this Application, and each resource it renders, be deployed under its
//! project?". Nothing here touches the network: the controller passes the project it read (or
//! `None`), the Application, and the destination after cluster resolution ([`Destination`] with
//! both `server` and `name` filled when the cluster registry knows them), and gets back
//! [`Violation`]s that render as Application conditions.
//!
//! Rules (Argo CD `pkg/apis/application/v1alpha1/app_project_types.go`, `types.go`):
//! - `sourceRepos`: each entry and the app's `repoURL` are normalized as Argo CD's
//!   `NormalizeGitURL` does, then glob-matched with `/` as separator (`*` stays inside one path
//!   segment, `**` crosses them; the entry `*` alone matches everything). An entry `!pattern` is a
//!   deny rule: a URL matching it is refused whatever else matches; a deny entry that does *not*
//!   match counts as a match (Argo CD's quirk, kept: `['!x']` alone permits everything but x).
//! - `destinations`: an entry matches when (server glob matches a non-empty server, or name glob
//!   matches a non-empty name) and the namespace glob matches; globs here have no separator.
//!   An entry with a `!` server/name/namespace that the destination fails to match is a deny hit,
//!   and any deny hit refuses the destination.
//! - resource kinds: namespaced kinds are allowed when `namespaceResourceWhitelist` is absent or
//!   lists them, and the blacklist does not; cluster-scoped kinds are allowed **only** when
//!   `clusterResourceWhitelist` lists them (absent or empty = none), and the blacklist does not.
//!   Group/kind patterns are shell globs (Go's `filepath.Match`).
//! - `sourceNamespaces`: an Application outside the control namespace must be in a namespace
//!   matching one of them (glob, or `/regex/` — regexes are not supported here and never match,
//!   see [`namespace_permitted`]).
//! - The project `default`: when no AppProject named `default` exists, the implicit one Argo CD
//!   creates at install is used (every repo, every destination, every kind).
//!
//! Invariant: every refusal is a [`Violation`] whose message is the text Argo CD writes, so a
//! user reading the condition sees what they would see in Argo CD.

use std::fmt;

use crate::gitops::source::url::template_match_form;
use crate::gitops::types::{
    AppProject, AppProjectSpec, Application, ApplicationDestination, GroupKind,
};

/// The name of the project every Application without `spec.project` belongs to.
pub const DEFAULT_PROJECT: &str = "default";

/// Application condition types used for project violations (Argo CD's names).
pub mod reasons {
    /// The Application's spec cannot be deployed as written (project rules, missing project).
    pub const INVALID_SPEC_ERROR: &str = "InvalidSpecError";
    /// A rendered resource cannot be compared or synced under the project's rules.
    pub const COMPARISON_ERROR: &str = "ComparisonError";
}

/// The project named by an Application (`default` when unset or empty).
pub fn project_name(app: &Application) -> &str {
    app.spec
        .project
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_PROJECT)
}

/// The implicit `default` project: Argo CD's install creates it with every source, every
/// destination and every cluster-scoped kind allowed.
pub fn implicit_default() -> AppProject {
    let mut project = AppProject {
        types: Default::default(),
        metadata: Default::default(),
        spec: AppProjectSpec {
            source_repos: Some(vec!["*".into()]),
            destinations: Some(vec![ApplicationDestination {
                server: Some("*".into()),
                namespace: Some("*".into()),
                ..Default::default()
            }]),
            cluster_resource_whitelist: Some(vec![GroupKind {
                group: Some("*".into()),
                kind: Some("*".into()),
                ..Default::default()
            }]),
            ..Default::default()
        },
        status: None,
        extra: Default::default(),
    };
    project.metadata.name = Some(DEFAULT_PROJECT.into());
    project
}

/// The project that governs `app`: the AppProject found by name, the implicit default when the
/// name is `default` and none exists, or a [`Violation::ProjectNotFound`].
pub fn resolve(app: &Application, found: Option<AppProject>) -> Result<AppProject, Violation> {
    let name = project_name(app);
    match found {
        Some(p) => Ok(p),
        None if name == DEFAULT_PROJECT => Ok(implicit_default()),
        None => Err(Violation::ProjectNotFound {
            project: name.to_string(),
        }),
    }
}

/// A destination as the checks see it: after cluster resolution, `server` and `name` are both
/// known when the cluster is registered. Empty strings mean "not set", as in Argo CD.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    /// API server URL.
    pub server: String,
    /// Cluster name.
    pub name: String,
    /// Target namespace (empty for cluster-scoped resources or no default namespace).
    pub namespace: String,
}

impl Destination {
    /// The destination as written in the Application (before cluster resolution).
    pub fn of_app(app: &Application) -> Self {
        let d = app.spec.destination.clone().unwrap_or_default();
        Self {
            server: d.server.unwrap_or_default(),
            name: d.name.unwrap_or_default(),
            namespace: d.namespace.unwrap_or_default(),
        }
    }

    /// The same cluster, another namespace (a resource's own namespace).
    pub fn with_namespace(&self, namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            ..self.clone()
        }
    }
}

/// Why a project refuses an Application or one of its resources.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// `spec.project` names an AppProject that does not exist.
    #[error("Application referencing project {project} which does not exist")]
    ProjectNotFound {
        /// The project named.
        project: String,
    },
    /// The Application lives outside the control namespace in a namespace the project's
    /// `sourceNamespaces` does not list.
    #[error(
        "application in namespace '{namespace}' is not permitted to use project '{project}' (spec.sourceNamespaces of the project does not list the namespace)"
    )]
    AppNamespaceNotPermitted {
        /// The project.
        project: String,
        /// The Application's namespace.
        namespace: String,
    },
    /// The Application has no source (`spec.source` or `spec.sources`) with a `repoURL`.
    #[error(
        "application spec has no source: spec.source.repoURL or spec.sources[].repoURL is required"
    )]
    NoSource,
    /// A source's `repoURL` is not allowed by `sourceRepos`.
    #[error("application repo {repo} is not permitted in project '{project}'")]
    SourceNotPermitted {
        /// The project.
        project: String,
        /// The repository URL as written in the Application.
        repo: String,
    },
    /// The destination is not allowed by `destinations`.
    #[error(
        "application destination {target} and namespace '{namespace}' do not match any of the allowed destinations in project '{project}'",
        target = destination_text(.server, .name)
    )]
    DestinationNotPermitted {
        /// The project.
        project: String,
        /// The destination server (may be empty when only a name is known).
        server: String,
        /// The destination cluster name (may be empty).
        name: String,
        /// The destination namespace.
        namespace: String,
    },
    /// A rendered resource's group/kind is not allowed by the resource white/blacklists.
    #[error("resource {group}:{kind} is not permitted in project {project}")]
    ResourceNotPermitted {
        /// The project.
        project: String,
        /// API group (empty for the core group).
        group: String,
        /// Kind.
        kind: String,
        /// Whether the kind is namespaced (decides which lists applied).
        namespaced: bool,
    },
    /// A namespaced resource targets a namespace the project's destinations do not allow.
    #[error("namespace {namespace} is not permitted in project '{project}'")]
    ResourceNamespaceNotPermitted {
        /// The project.
        project: String,
        /// The resource's namespace.
        namespace: String,
    },
}

fn destination_text(server: &str, name: &str) -> String {
    if server.is_empty() && !name.is_empty() {
        format!("name '{name}'")
    } else {
        format!("server '{server}'")
    }
}

impl Violation {
    /// The Application condition type this violation is reported under (Argo CD's).
    pub fn condition_type(&self) -> &'static str {
        match self {
            Self::ResourceNotPermitted { .. } | Self::ResourceNamespaceNotPermitted { .. } => {
                reasons::COMPARISON_ERROR
            }
            _ => reasons::INVALID_SPEC_ERROR,
        }
    }

    /// The condition message (the same text as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The violation as an Application condition (`{type, message}`; the controller adds
    /// `lastTransitionTime`).
    pub fn condition(&self) -> crate::gitops::types::ApplicationCondition {
        crate::gitops::types::ApplicationCondition {
            condition_type: Some(self.condition_type().to_string()),
            message: Some(self.message()),
            ..Default::default()
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = if self.server.is_empty() {
            &self.name
        } else {
            &self.server
        };
        write!(f, "{target} namespace {}", self.namespace)
    }
}

/// Checks everything about the Application itself: where it lives (`sourceNamespaces`), its
/// sources (`sourceRepos`) and its destination (`destinations`). `destination` is the resolved
/// destination (see [`Destination`]); all violations are returned, not just the first.
pub fn check_app(
    project: &AppProject,
    app: &Application,
    control_namespace: &str,
    destination: &Destination,
) -> Result<(), Vec<Violation>> {
    let name = project
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| project_name(app).to_string());
    let mut violations = Vec::new();
    if let Some(ns) = app.metadata.namespace.as_deref()
        && !namespace_permitted(&project.spec, ns, control_namespace)
    {
        violations.push(Violation::AppNamespaceNotPermitted {
            project: name.clone(),
            namespace: ns.to_string(),
        });
    }
    let repos: Vec<&str> = app
        .spec
        .sources
        .iter()
        .flatten()
        .chain(app.spec.source.iter())
        .filter_map(|s| s.repo_url.as_deref())
        .filter(|r| !r.is_empty())
        .collect();
    if repos.is_empty() {
        violations.push(Violation::NoSource);
    }
    for repo in repos {
        if !source_permitted(&project.spec, repo) {
            violations.push(Violation::SourceNotPermitted {
                project: name.clone(),
                repo: repo.to_string(),
            });
        }
    }
    if !destination_permitted(&project.spec, destination) {
        violations.push(Violation::DestinationNotPermitted {
            project: name,
            server: destination.server.clone(),
            name: destination.name.clone(),
            namespace: destination.namespace.clone(),
        });
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}

/// Checks one rendered resource: its group/kind against the white/blacklists and, when
/// namespaced, its namespace against the destinations (on the app's cluster), as Argo CD's
/// sync permission validator does. `namespace` is the resource's namespace (empty when
/// cluster-scoped).
pub fn check_resource(
    project: &AppProject,
    destination: &Destination,
    group: &str,
    kind: &str,
    namespace: &str,
    namespaced: bool,
) -> Result<(), Violation> {
    let name = project.metadata.name.clone().unwrap_or_default();
    if !group_kind_permitted(&project.spec, group, kind, namespaced) {
        return Err(Violation::ResourceNotPermitted {
            project: name,
            group: group.to_string(),
            kind: kind.to_string(),
            namespaced,
        });
    }
    if namespaced && !destination_permitted(&project.spec, &destination.with_namespace(namespace)) {
        return Err(Violation::ResourceNamespaceNotPermitted {
            project: name,
            namespace: namespace.to_string(),
        });
    }
    Ok(())
}

/// Argo CD's `IsSourcePermitted`.
pub fn source_permitted(spec: &AppProjectSpec, repo_url: &str) -> bool {
    let wanted = template_match_form(repo_url);
    let mut any = false;
    for entry in spec.source_repos.iter().flatten() {
        let (deny, pattern) = match entry.strip_prefix('!') {
            Some(rest) => (true, template_match_form(rest)),
            None => (false, template_match_form(entry)),
        };
        let hit = pattern == "*" || glob_match(&pattern, &wanted, Some('/'));
        match (deny, hit) {
            (false, true) | (true, false) => any = true,
            (true, true) => return false,
            (false, false) => {}
        }
    }
    any
}

/// Argo CD's `isDestinationMatched`.
pub fn destination_permitted(spec: &AppProjectSpec, dst: &Destination) -> bool {
    let mut any = false;
    let mut deny_hit = false;
    for item in spec.destinations.iter().flatten() {
        let item_server = item.server.as_deref().unwrap_or("");
        let item_name = item.name.as_deref().unwrap_or("");
        let item_ns = item.namespace.as_deref().unwrap_or("");
        let name_ok = !dst.name.is_empty() && neg_glob(item_name, &dst.name);
        let server_ok = !dst.server.is_empty() && neg_glob(item_server, &dst.server);
        let ns_ok = neg_glob(item_ns, &dst.namespace);
        if (server_ok || name_ok) && ns_ok {
            any = true;
        } else if (!name_ok && is_deny(item_name))
            || (!server_ok && is_deny(item_server))
            || (!ns_ok && is_deny(item_ns))
        {
            deny_hit = true;
        }
    }
    any && !deny_hit
}

/// Argo CD's `IsGroupKindPermitted`.
pub fn group_kind_permitted(
    spec: &AppProjectSpec,
    group: &str,
    kind: &str,
    namespaced: bool,
) -> bool {
    let in_list = |list: &Option<Vec<GroupKind>>| {
        list.iter().flatten().any(|gk| {
            glob_match(gk.kind.as_deref().unwrap_or(""), kind, None)
                && glob_match(gk.group.as_deref().unwrap_or(""), group, None)
        })
    };
    let non_empty = |list: &Option<Vec<GroupKind>>| list.as_ref().is_some_and(|l| !l.is_empty());
    if namespaced {
        let white = spec.namespace_resource_whitelist.is_none()
            || (non_empty(&spec.namespace_resource_whitelist)
                && in_list(&spec.namespace_resource_whitelist));
        let black = in_list(&spec.namespace_resource_blacklist);
        white && !black
    } else {
        in_list(&spec.cluster_resource_whitelist) && !in_list(&spec.cluster_resource_blacklist)
    }
}

/// Argo CD's `IsAppNamespacePermitted`: the control namespace always; elsewhere a glob of
/// `sourceNamespaces` must match. Argo CD also accepts `/regex/` entries; cairn has no regex
/// engine in its dependencies, so such an entry never matches (fails closed) rather than being
/// misread as a glob.
pub fn namespace_permitted(
    spec: &AppProjectSpec,
    namespace: &str,
    control_namespace: &str,
) -> bool {
    if namespace.is_empty() || namespace == control_namespace {
        return true;
    }
    spec.source_namespaces.iter().flatten().any(|p| {
        let is_regex = p.len() >= 2 && p.starts_with('/') && p.ends_with('/');
        !is_regex && glob_match(p, namespace, None)
    })
}

fn is_deny(pattern: &str) -> bool {
    pattern.starts_with('!')
}

/// Argo CD's `globMatch` with negation allowed and no separator.
fn neg_glob(pattern: &str, value: &str) -> bool {
    match pattern.strip_prefix('!') {
        Some(rest) => !glob_match(rest, value, None),
        None => pattern == "*" || glob_match(pattern, value, None),
    }
}

/// A glob in the dialect Argo CD uses (gobwas/glob; Go's `filepath.Match` for group/kind is the
/// same for these inputs): `*` any run of characters except `separator`, `**` any run at all,
/// `?` one character except `separator`, `[abc]`, `[a-z]`, `[!abc]` one character of (or not
/// of) a class, `{a,b}` alternatives, `\x` a literal `x`. A malformed pattern matches only
/// itself literally.
pub fn glob_match(pattern: &str, text: &str, separator: Option<char>) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    match expand_braces(&p) {
        Some(alternatives) => alternatives
            .iter()
            .any(|alt| match_here(alt, &t, separator).unwrap_or(pattern == text)),
        None => pattern == text,
    }
}

/// `{a,b}` expanded into every alternative (nesting allowed); None when braces are unbalanced.
fn expand_braces(p: &[char]) -> Option<Vec<Vec<char>>> {
    let Some(open) = find_unescaped(p, '{') else {
        return Some(vec![p.to_vec()]);
    };
    let mut depth = 0;
    let mut close = None;
    let mut commas = Vec::new();
    let mut i = open;
    while i < p.len() {
        match p[i] {
            '\\' => i += 1,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
        i += 1;
    }
    let close = close?;
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let mut alt = p[..open].to_vec();
        alt.extend_from_slice(&p[w[0] + 1..w[1]]);
        alt.extend_from_slice(&p[close + 1..]);
        out.extend(expand_braces(&alt)?);
    }
    Some(out)
}

fn find_unescaped(p: &[char], c: char) -> Option<usize> {
    let mut i = 0;
    while i < p.len() {
        if p[i] == '\\' {
            i += 2;
            continue;
        }
        if p[i] == c {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Backtracking matcher; None when the pattern is malformed (unterminated class or escape).
fn match_here(p: &[char], t: &[char], sep: Option<char>) -> Option<bool> {
    let Some(&first) = p.first() else {
        return Some(t.is_empty());
    };
    match first {
        '*' => {
            let super_star = p.get(1) == Some(&'*');
            let rest = if super_star { &p[2..] } else { &p[1..] };
            for i in 0..=t.len() {
                if match_here(rest, &t[i..], sep)? {
                    return Some(true);
                }
                if i < t.len() && !super_star && Some(t[i]) == sep {
                    return Some(false);
                }
            }
            Some(false)
        }
        '?' => match t.first() {
            Some(&c) if Some(c) != sep => match_here(&p[1..], &t[1..], sep),
            _ => Some(false),
        },
        '[' => {
            let end = p.iter().skip(2).position(|&c| c == ']').map(|i| i + 2)?;
            let class = &p[1..end];
            let (negated, class) = match class.first() {
                Some('!') | Some('^') => (true, &class[1..]),
                _ => (false, class),
            };
            let Some(&c) = t.first() else {
                return Some(false);
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            if hit != negated && Some(c) != sep {
                match_here(&p[end + 1..], &t[1..], sep)
            } else {
                Some(false)
            }
        }
        '\\' => {
            let lit = *p.get(1)?;
            match t.first() {
                Some(&c) if c == lit => match_here(&p[2..], &t[1..], sep),
                _ => Some(false),
            }
        }
        lit => match t.first() {
            Some(&c) if c == lit => match_here(&p[1..], &t[1..], sep),
            _ => Some(false),
        },
    }
}

#[cfg(test)]
mod tests;
