//! RBAC with Argo CD's `policy.csv` semantics. Pure: no I/O, no clock.
//!
//! Policy lines:
//! - `p, <subject>, <resource>, <action>, <object>, <allow|deny>`: a permission.
//! - `g, <user-or-group-or-role>, <role>`: membership; roles may inherit roles (transitively).
//! - `#` comments and blank lines are ignored.
//!
//! Semantics (Argo CD's documented behaviour, Argo CD 3.x):
//! - Resource, action and object of a `p` line are glob patterns (`*` any run of characters,
//!   `/` included, as Argo's glob mode treats tokens without separators; `?` one character).
//!   Subjects match exactly.
//! - For one subject (with the roles it inherits), the request is allowed when at least one
//!   `allow` line matches and no `deny` line matches: deny beats allow, line order is irrelevant.
//! - The default role (`policy.default`) is evaluated first: if it allows or denies, that is the
//!   answer, so its permissions cannot be taken away by a `deny` on a user. Otherwise the user
//!   and then each of its groups are evaluated separately, and any one allowing is enough.
//! - Application objects are `<project>/<app>` or `<project>/<app-namespace>/<app>`.
//! - `update`/`delete` on `applications` apply to the Application itself only; its managed
//!   resources need `update/<group>/<kind>/<ns>/<name>` (`delete/...`) actions, e.g.
//!   `delete/*/Pod/*/*`. Argo CD 2.x let `update`/`delete` on the Application cover its resources
//!   as well; [`Policy::with_application_inheritance`] restores that.
//! - Resource actions are `action/<group>/<kind>/<action-name>` (`action//Pod/restart` for the
//!   core group).
//! - Built-in roles: `role:readonly` (`get` on everything) and `role:admin` (everything Argo CD's
//!   built-in policy grants, plus cairn's own resources), and the `admin` user is `role:admin`.
//! - Overlays: a second policy without built-ins ([`Policy::overlay`]) can be layered over the
//!   configured one for one decision ([`Policy::enforce_with`], [`Policy::can_any_with`]); its
//!   `p` and `g` lines count exactly as if they were in `policy.csv` (deny still beats allow
//!   across both). AppProject roles (`proj:<project>:<role>`, see `auth::project_tokens`) use
//!   this: they are read from the live AppProject, never copied into the configured policy.

use std::collections::{HashMap, HashSet};

/// RBAC resources. Argo CD's, and cairn's own.
pub mod resources {
    /// Argo CD Applications (object `<project>/<app>` or `<project>/<ns>/<app>`).
    pub const APPLICATIONS: &str = "applications";
    /// Argo CD ApplicationSets (object `<project>/<appset>`).
    pub const APPLICATIONSETS: &str = "applicationsets";
    /// Destination clusters (object: the server URL).
    pub const CLUSTERS: &str = "clusters";
    /// AppProjects (object: the project name).
    pub const PROJECTS: &str = "projects";
    /// Source repositories (object: the repository URL).
    pub const REPOSITORIES: &str = "repositories";
    /// Write credentials for repositories (used by commit-back), as Argo CD.
    pub const WRITE_REPOSITORIES: &str = "write-repositories";
    /// Local accounts (object: the account name).
    pub const ACCOUNTS: &str = "accounts";
    /// Repository TLS certificates.
    pub const CERTIFICATES: &str = "certificates";
    /// GnuPG public keys.
    pub const GPGKEYS: &str = "gpgkeys";
    /// Pod logs of an application (object as applications).
    pub const LOGS: &str = "logs";
    /// Exec into pods of an application (object as applications).
    pub const EXEC: &str = "exec";
    /// Proxy extensions (object: the extension name).
    pub const EXTENSIONS: &str = "extensions";
    /// cairn: Argo Workflows `Workflow`s (object `<namespace>/<name>`).
    pub const WORKFLOWS: &str = "workflows";
    /// cairn: `WorkflowTemplate`s (object `<namespace>/<name>`).
    pub const WORKFLOWTEMPLATES: &str = "workflowtemplates";
    /// cairn: `ClusterWorkflowTemplate`s (object `<name>`).
    pub const CLUSTERWORKFLOWTEMPLATES: &str = "clusterworkflowtemplates";
    /// cairn: `CronWorkflow`s (object `<namespace>/<name>`).
    pub const CRONWORKFLOWS: &str = "cronworkflows";
    /// cairn: Argo Events `EventSource`s (object `<namespace>/<name>`).
    pub const EVENTSOURCES: &str = "eventsources";
    /// cairn: Argo Events `Sensor`s (object `<namespace>/<name>`).
    pub const SENSORS: &str = "sensors";
    /// cairn: events on the bus, read and sent (object `<namespace>/<eventsource>`).
    pub const EVENTS: &str = "events";
    /// cairn: the model registry. Models and their versions: object `<model>`, actions `get`,
    /// `create` (a model, or a version of it), `update`, `delete`; aliases (setting, moving,
    /// deleting one, and promotion): action `promote` on object `<model>/<alias>`.
    pub const MODELS: &str = "models";
    /// cairn: the lineage graph (`/api/v1/lineage/...`: subgraphs, model provenance, what is
    /// serving, export): action `get` on object `*` (one grant reads every team's lineage).
    pub const LINEAGE: &str = "lineage";
    /// cairn: MLflow experiments and their runs (object `<experiment name>`; actions get, create,
    /// update, delete).
    pub const EXPERIMENTS: &str = "experiments";

    /// Every resource a policy line may name (besides glob patterns).
    pub const ALL: [&str; 22] = [
        APPLICATIONS,
        APPLICATIONSETS,
        CLUSTERS,
        PROJECTS,
        REPOSITORIES,
        WRITE_REPOSITORIES,
        ACCOUNTS,
        CERTIFICATES,
        GPGKEYS,
        LOGS,
        EXEC,
        EXTENSIONS,
        WORKFLOWS,
        WORKFLOWTEMPLATES,
        CLUSTERWORKFLOWTEMPLATES,
        CRONWORKFLOWS,
        EVENTSOURCES,
        SENSORS,
        EVENTS,
        MODELS,
        LINEAGE,
        EXPERIMENTS,
    ];

    /// cairn's own resources (not in Argo CD).
    pub const CAIRN: [&str; 10] = [
        WORKFLOWS,
        WORKFLOWTEMPLATES,
        CLUSTERWORKFLOWTEMPLATES,
        CRONWORKFLOWS,
        EVENTSOURCES,
        SENSORS,
        EVENTS,
        MODELS,
        LINEAGE,
        EXPERIMENTS,
    ];
}

/// RBAC actions (Argo CD's verbs; resource actions are `action/<group>/<kind>/<name>`).
pub mod actions {
    /// Read.
    pub const GET: &str = "get";
    /// Create.
    pub const CREATE: &str = "create";
    /// Update (for applications: the Application itself; `update/...` for its resources).
    pub const UPDATE: &str = "update";
    /// Delete (for applications: the Application itself; `delete/...` for its resources).
    pub const DELETE: &str = "delete";
    /// Sync an application.
    pub const SYNC: &str = "sync";
    /// Roll an application back to an earlier revision.
    pub const ROLLBACK: &str = "rollback";
    /// Sync local manifests instead of the source.
    pub const OVERRIDE: &str = "override";
    /// Invoke a proxy extension.
    pub const INVOKE: &str = "invoke";
    /// Debug containers (exec resource).
    pub const DEBUG: &str = "debug";
}

/// The `<object>` of an application-scoped resource: `<project>/<app>`, or
/// `<project>/<app-namespace>/<app>` for applications outside the control namespace.
pub fn application_object(project: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{project}/{ns}/{name}"),
        None => format!("{project}/{name}"),
    }
}

/// The action for a change to one resource managed by an application:
/// `<verb>/<group>/<kind>/<namespace>/<name>` (empty group for the core group).
pub fn application_resource_action(
    verb: &str,
    group: &str,
    kind: &str,
    namespace: &str,
    name: &str,
) -> String {
    format!("{verb}/{group}/{kind}/{namespace}/{name}")
}

/// A policy that cannot be used, with the line (1-based, in the given CSV) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacError {
    /// The first field is neither `p` nor `g`.
    #[error("policy.csv line {line}: line type {found:?}: expected `p` or `g`")]
    LineType {
        /// Line number.
        line: usize,
        /// The first field.
        found: String,
    },
    /// Wrong number of comma-separated fields.
    #[error(
        "policy.csv line {line}: {found} fields; expected {expected} ({shape})",
        shape = line_shape(.kind)
    )]
    FieldCount {
        /// Line number.
        line: usize,
        /// `p` or `g`.
        kind: char,
        /// Fields found.
        found: usize,
        /// Fields expected.
        expected: usize,
    },
    /// A field is empty.
    #[error("policy.csv line {line}: the {field} is empty")]
    EmptyField {
        /// Line number.
        line: usize,
        /// Which field.
        field: &'static str,
    },
    /// The resource is not one cairn knows (and not a glob pattern).
    #[error("policy.csv line {line}: unknown resource {found:?}: expected one of {} or a pattern with `*`", resources::ALL.join(", "))]
    UnknownResource {
        /// Line number.
        line: usize,
        /// The resource.
        found: String,
    },
    /// The effect is neither `allow` nor `deny`.
    #[error("policy.csv line {line}: effect {found:?}: expected `allow` or `deny`")]
    Effect {
        /// Line number.
        line: usize,
        /// The effect found.
        found: String,
    },
    /// A field contains whitespace inside it (usually a missing comma).
    #[error("policy.csv line {line}: the {field} {found:?} contains whitespace (missing comma?)")]
    Whitespace {
        /// Line number.
        line: usize,
        /// Which field.
        field: &'static str,
        /// The field's value.
        found: String,
    },
}

fn line_shape(kind: &char) -> &'static str {
    if *kind == 'p' {
        "p, <subject>, <resource>, <action>, <object>, <allow|deny>"
    } else {
        "g, <user-or-group>, <role>"
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Takes away, beating any allow for the same subject.
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    subject: String,
    resource: String,
    action: String,
    object: String,
    effect: Effect,
}

/// The built-in role granting read access to everything.
pub const ROLE_READONLY: &str = "role:readonly";
/// The built-in role granting everything.
pub const ROLE_ADMIN: &str = "role:admin";

/// Argo CD's built-in policy (`assets/builtin-policy.csv`), as (subject, resource, action,
/// object) allow rules; cairn's own resources are added below it.
const BUILTIN_RULES: &[(&str, &str, &str, &str)] = &[
    (ROLE_READONLY, "applications", "get", "*/*"),
    (ROLE_READONLY, "applicationsets", "get", "*/*"),
    (ROLE_READONLY, "certificates", "get", "*"),
    (ROLE_READONLY, "clusters", "get", "*"),
    (ROLE_READONLY, "repositories", "get", "*"),
    (ROLE_READONLY, "write-repositories", "get", "*"),
    (ROLE_READONLY, "projects", "get", "*"),
    (ROLE_READONLY, "accounts", "get", "*"),
    (ROLE_READONLY, "gpgkeys", "get", "*"),
    (ROLE_READONLY, "logs", "get", "*/*"),
    (ROLE_ADMIN, "applications", "create", "*/*"),
    (ROLE_ADMIN, "applications", "update", "*/*"),
    (ROLE_ADMIN, "applications", "update/*", "*/*"),
    (ROLE_ADMIN, "applications", "delete", "*/*"),
    (ROLE_ADMIN, "applications", "delete/*", "*/*"),
    (ROLE_ADMIN, "applications", "sync", "*/*"),
    (ROLE_ADMIN, "applications", "rollback", "*/*"),
    (ROLE_ADMIN, "applications", "override", "*/*"),
    (ROLE_ADMIN, "applications", "action/*", "*/*"),
    (ROLE_ADMIN, "applicationsets", "get", "*/*"),
    (ROLE_ADMIN, "applicationsets", "create", "*/*"),
    (ROLE_ADMIN, "applicationsets", "update", "*/*"),
    (ROLE_ADMIN, "applicationsets", "delete", "*/*"),
    (ROLE_ADMIN, "certificates", "create", "*"),
    (ROLE_ADMIN, "certificates", "update", "*"),
    (ROLE_ADMIN, "certificates", "delete", "*"),
    (ROLE_ADMIN, "clusters", "create", "*"),
    (ROLE_ADMIN, "clusters", "update", "*"),
    (ROLE_ADMIN, "clusters", "delete", "*"),
    (ROLE_ADMIN, "repositories", "create", "*"),
    (ROLE_ADMIN, "repositories", "update", "*"),
    (ROLE_ADMIN, "repositories", "delete", "*"),
    (ROLE_ADMIN, "write-repositories", "create", "*"),
    (ROLE_ADMIN, "write-repositories", "update", "*"),
    (ROLE_ADMIN, "write-repositories", "delete", "*"),
    (ROLE_ADMIN, "projects", "create", "*"),
    (ROLE_ADMIN, "projects", "update", "*"),
    (ROLE_ADMIN, "projects", "delete", "*"),
    (ROLE_ADMIN, "accounts", "update", "*"),
    (ROLE_ADMIN, "gpgkeys", "create", "*"),
    (ROLE_ADMIN, "gpgkeys", "delete", "*"),
    (ROLE_ADMIN, "exec", "create", "*/*"),
    (ROLE_ADMIN, "exec", "debug", "*/*"),
    // Not in Argo CD's built-in file, where extensions are opt-in per policy; cairn's admin is
    // "everything", so it may invoke them too.
    (ROLE_ADMIN, "extensions", "invoke", "*"),
];

/// Built-in memberships: admin inherits readonly; the `admin` user is an admin.
const BUILTIN_GROUPS: &[(&str, &str)] = &[(ROLE_ADMIN, ROLE_READONLY), ("admin", ROLE_ADMIN)];

/// A parsed policy: built-in rules plus the configured lines, and the default role.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `p` rules by subject, in policy order: a decision looks only at the rules of the subject
    /// and its roles instead of scanning the whole policy.
    rules: HashMap<String, Vec<Rule>>,
    /// Member (user, group or role) -> roles it is assigned by `g` lines.
    roles_of: HashMap<String, Vec<String>>,
    default_role: Option<String>,
    application_inheritance: bool,
}

impl Policy {
    /// Parses `csv` (Argo CD `policy.csv` lines) on top of the built-in policy. `default_role`
    /// is `policy.default` (`None` or empty: no default role).
    pub fn parse(csv: &str, default_role: Option<&str>) -> Result<Policy, RbacError> {
        let mut policy = Policy::builtin();
        policy.default_role = default_role
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        policy.add_lines(csv)?;
        Ok(policy)
    }

    /// A policy of `csv` alone: no built-in rules, no default role. Meant to be layered over a
    /// configured policy with [`Policy::enforce_with`] / [`Policy::can_any_with`].
    pub fn overlay(csv: &str) -> Result<Policy, RbacError> {
        let mut policy = Policy::empty();
        policy.add_lines(csv)?;
        Ok(policy)
    }

    /// An overlay with no line: layering it changes nothing.
    pub fn empty_overlay() -> Policy {
        Policy::empty()
    }

    fn empty() -> Policy {
        Policy {
            rules: HashMap::new(),
            roles_of: HashMap::new(),
            default_role: None,
            application_inheritance: false,
        }
    }

    /// Whether the policy has no rule and no membership (an empty overlay changes nothing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.roles_of.is_empty()
    }

    fn add_lines(&mut self, csv: &str) -> Result<(), RbacError> {
        let policy = self;
        for (index, raw) in csv.lines().enumerate() {
            let line = index + 1;
            let text = raw.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = text.split(',').map(str::trim).collect();
            match fields.first().copied() {
                Some("p") => policy.add_rule(parse_p(line, &fields)?),
                Some("g") => {
                    let (member, role) = parse_g(line, &fields)?;
                    policy.add_membership(member, role);
                }
                other => {
                    return Err(RbacError::LineType {
                        line,
                        found: other.unwrap_or_default().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The built-in policy alone, with no default role.
    pub fn builtin() -> Policy {
        let mut policy = Policy::empty();
        for (s, r, a, o) in BUILTIN_RULES {
            policy.add_rule(allow(s, r, a, o));
        }
        for resource in resources::CAIRN {
            policy.add_rule(allow(ROLE_READONLY, resource, actions::GET, "*"));
            policy.add_rule(allow(ROLE_ADMIN, resource, "*", "*"));
        }
        for (member, role) in BUILTIN_GROUPS {
            policy.add_membership((*member).to_owned(), (*role).to_owned());
        }
        policy
    }

    /// Argo CD 2.x behaviour: `update`/`delete` allowed on an application also allow them on all
    /// of its resources (`update/...`, `delete/...`), and a deny on a resource cannot take that
    /// away. Off by default, as in Argo CD 3.
    #[must_use]
    pub fn with_application_inheritance(mut self, enabled: bool) -> Policy {
        self.application_inheritance = enabled;
        self
    }

    /// The default role, if any.
    pub fn default_role(&self) -> Option<&str> {
        self.default_role.as_deref()
    }

    fn add_rule(&mut self, rule: Rule) {
        self.rules
            .entry(rule.subject.clone())
            .or_default()
            .push(rule);
    }

    fn add_membership(&mut self, member: String, role: String) {
        let roles = self.roles_of.entry(member).or_default();
        if !roles.contains(&role) {
            roles.push(role);
        }
    }

    /// Whether any of `subjects` (the user name, then its groups) may do `action` on `object` of
    /// `resource`. Authenticated callers only: the default role applies to every call.
    pub fn enforce(&self, subjects: &[&str], resource: &str, action: &str, object: &str) -> bool {
        self.enforce_with(None, subjects, resource, action, object)
    }

    /// [`Policy::enforce`] with `overlay`'s lines counted as part of this policy.
    pub fn enforce_with(
        &self,
        overlay: Option<&Policy>,
        subjects: &[&str],
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        let layers = Layers {
            base: self,
            overlay,
        };
        if let Some(role) = &self.default_role {
            match layers.decide(role, resource, action, object) {
                Some(Effect::Allow) => return true,
                Some(Effect::Deny) => return false,
                None => {}
            }
        }
        self.enforce_granted_with(overlay, subjects, resource, action, object)
    }

    /// As [`Policy::enforce_with`] without the default role (`policy.default`): only rules and
    /// role bindings naming one of `subjects` count. For identities that are not people
    /// (Kubernetes service accounts calling the executor routes), whose rights must be granted
    /// by name.
    pub fn enforce_granted_with(
        &self,
        overlay: Option<&Policy>,
        subjects: &[&str],
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        let layers = Layers {
            base: self,
            overlay,
        };
        subjects
            .iter()
            .any(|s| layers.decide(s, resource, action, object) == Some(Effect::Allow))
    }

    /// Whether `action` on `resource` could be allowed for *some* object: a matching allow rule
    /// exists whose objects are not all covered by a deny. List routes use it as a gate and then
    /// filter each object with [`Policy::enforce`].
    pub fn can_any(&self, subjects: &[&str], resource: &str, action: &str) -> bool {
        self.can_any_with(None, subjects, resource, action)
    }

    /// [`Policy::can_any`] with `overlay`'s lines counted as part of this policy.
    pub fn can_any_with(
        &self,
        overlay: Option<&Policy>,
        subjects: &[&str],
        resource: &str,
        action: &str,
    ) -> bool {
        self.can_any_layered(overlay, subjects, resource, action, true)
    }

    /// [`Policy::can_any_with`] counting only what is granted to `subjects` by name, never
    /// the default role (as [`Policy::enforce_granted_with`]).
    pub fn can_any_granted_with(
        &self,
        overlay: Option<&Policy>,
        subjects: &[&str],
        resource: &str,
        action: &str,
    ) -> bool {
        self.can_any_layered(overlay, subjects, resource, action, false)
    }

    fn can_any_layered(
        &self,
        overlay: Option<&Policy>,
        subjects: &[&str],
        resource: &str,
        action: &str,
        with_default: bool,
    ) -> bool {
        let layers = Layers {
            base: self,
            overlay,
        };
        let default_rules: Vec<&Rule> = match &self.default_role {
            Some(role) if with_default => layers.matching_rules(role, resource, action).collect(),
            _ => Vec::new(),
        };
        let default_denies: Vec<&Rule> = default_rules
            .iter()
            .copied()
            .filter(|r| r.effect == Effect::Deny)
            .collect();
        let uncovered = |allow: &Rule, denies: &[&Rule]| {
            !denies.iter().any(|d| covers(&d.object, &allow.object))
        };
        if default_rules
            .iter()
            .any(|r| r.effect == Effect::Allow && uncovered(r, &default_denies))
        {
            return true;
        }
        subjects.iter().any(|subject| {
            let rules: Vec<&Rule> = layers.matching_rules(subject, resource, action).collect();
            let mut denies: Vec<&Rule> = rules
                .iter()
                .copied()
                .filter(|r| r.effect == Effect::Deny)
                .collect();
            denies.extend(default_denies.iter().copied());
            rules
                .iter()
                .any(|r| r.effect == Effect::Allow && uncovered(r, &denies))
        })
    }
}

/// A configured policy and an optional overlay, read as one policy.
#[derive(Clone, Copy)]
struct Layers<'a> {
    base: &'a Policy,
    overlay: Option<&'a Policy>,
}

impl<'a> Layers<'a> {
    /// The effect for one subject (with its inherited roles): `None` when no rule matches.
    fn decide(&self, subject: &str, resource: &str, action: &str, object: &str) -> Option<Effect> {
        if self.base.application_inheritance
            && resource == resources::APPLICATIONS
            && let Some((verb, _)) = action.split_once('/')
            && (verb == actions::UPDATE || verb == actions::DELETE)
            && self.decide_exact(subject, resource, verb, object) == Some(Effect::Allow)
        {
            return Some(Effect::Allow);
        }
        self.decide_exact(subject, resource, action, object)
    }

    fn decide_exact(
        &self,
        subject: &str,
        resource: &str,
        action: &str,
        object: &str,
    ) -> Option<Effect> {
        let mut effect = None;
        for rule in self.matching_rules(subject, resource, action) {
            if glob(&rule.object, object) {
                match rule.effect {
                    Effect::Deny => return Some(Effect::Deny),
                    Effect::Allow => effect = Some(Effect::Allow),
                }
            }
        }
        effect
    }

    /// Rules of `subject` or its roles whose resource and action patterns match.
    fn matching_rules<'s>(
        &self,
        subject: &'s str,
        resource: &'s str,
        action: &'s str,
    ) -> impl Iterator<Item = &'a Rule> + 's
    where
        'a: 's,
    {
        let (base, overlay) = (self.base, self.overlay);
        self.closure(subject)
            .into_iter()
            .flat_map(move |s| {
                let own = base.rules.get(s).into_iter().flatten();
                let layered = overlay.and_then(|o| o.rules.get(s)).into_iter().flatten();
                own.chain(layered)
            })
            .filter(move |r| glob(&r.resource, resource) && glob(&r.action, action))
    }

    /// `subject` and every role it inherits, transitively (cycles are harmless).
    fn closure<'s>(&self, subject: &'s str) -> HashSet<&'s str>
    where
        'a: 's,
    {
        let mut out = HashSet::new();
        let mut stack = vec![subject];
        while let Some(s) = stack.pop() {
            if out.insert(s) {
                for layer in std::iter::once(self.base).chain(self.overlay) {
                    if let Some(roles) = layer.roles_of.get(s) {
                        stack.extend(roles.iter().map(String::as_str));
                    }
                }
            }
        }
        out
    }
}

fn allow(subject: &str, resource: &str, action: &str, object: &str) -> Rule {
    Rule {
        subject: subject.to_owned(),
        resource: resource.to_owned(),
        action: action.to_owned(),
        object: object.to_owned(),
        effect: Effect::Allow,
    }
}

fn check_field(line: usize, field: &'static str, value: &str) -> Result<(), RbacError> {
    if value.is_empty() {
        return Err(RbacError::EmptyField { line, field });
    }
    if value.chars().any(char::is_whitespace) {
        return Err(RbacError::Whitespace {
            line,
            field,
            found: value.to_owned(),
        });
    }
    Ok(())
}

fn parse_p(line: usize, fields: &[&str]) -> Result<Rule, RbacError> {
    let [_, subject, resource, action, object, effect] = fields else {
        return Err(RbacError::FieldCount {
            line,
            kind: 'p',
            found: fields.len(),
            expected: 6,
        });
    };
    check_field(line, "subject", subject)?;
    check_field(line, "resource", resource)?;
    check_field(line, "action", action)?;
    check_field(line, "object", object)?;
    let is_pattern = resource.contains(['*', '?']);
    if !is_pattern && !resources::ALL.contains(resource) {
        return Err(RbacError::UnknownResource {
            line,
            found: (*resource).to_owned(),
        });
    }
    let effect = match *effect {
        "allow" => Effect::Allow,
        "deny" => Effect::Deny,
        other => {
            return Err(RbacError::Effect {
                line,
                found: other.to_owned(),
            });
        }
    };
    Ok(Rule {
        subject: (*subject).to_owned(),
        resource: (*resource).to_owned(),
        action: (*action).to_owned(),
        object: (*object).to_owned(),
        effect,
    })
}

fn parse_g(line: usize, fields: &[&str]) -> Result<(String, String), RbacError> {
    let [_, member, role] = fields else {
        return Err(RbacError::FieldCount {
            line,
            kind: 'g',
            found: fields.len(),
            expected: 3,
        });
    };
    check_field(line, "user or group", member)?;
    check_field(line, "role", role)?;
    Ok(((*member).to_owned(), (*role).to_owned()))
}

/// Glob match without separators: `*` matches any run of characters (including `/`), `?` any
/// one character; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Position of the last `*` seen and the text position it is currently matched up to: on a
    // mismatch the star absorbs one more character (linear backtracking, no recursion).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some('?') => {
                pi += 1;
                ti += 1;
            }
            Some(c) if *c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the deny pattern `deny` matches every object the allow pattern `allow` matches. Exact
/// for the shapes policies use (`*`, identical patterns, a literal prefix followed by `*`);
/// otherwise answers "no", which only makes [`Policy::can_any`] more permissive, never
/// [`Policy::enforce`].
fn covers(deny: &str, allow: &str) -> bool {
    if deny == allow || deny.chars().all(|c| c == '*') {
        return true;
    }
    match deny.strip_suffix('*') {
        Some(prefix) if !prefix.contains(['*', '?']) => {
            let literal_end = allow.find(['*', '?']).unwrap_or(allow.len());
            allow[..literal_end].starts_with(prefix)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
