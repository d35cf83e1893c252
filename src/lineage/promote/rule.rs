//! `[[promotion]]` entries of `cairn.toml`: which file of which GitOps repository a promotion of
//! a model to an alias edits, and how. Pure: parsing, validation, matching, template rendering,
//! the commit message and the review branch name.
//!
//! ```toml
//! [[promotion]]
//! model = "recommender"           # name or glob (`*`, `?`)
//! alias = "prod"                  # name or glob; default "*"
//! repo = "https://git.example.com/acme/gitops.git"
//! branch = "main"                 # default "main"
//! file = "apps/recommender/values/prod.yaml"
//! review = false                  # true: push promote/<model>-<alias>-v<version> instead
//! set = { "model.uri" = "{{uri}}", "model.version" = "{{version}}" }
//! ```
//!
//! Invariants: a validated rule's `set` paths parse as [`YamlPath`]s, its templates use only the
//! known placeholders, its `file` is a relative path inside the repository and its `branch` a
//! valid branch name. The first rule matching (model, alias) in file order applies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::yaml_edit::YamlPath;
// Rules match model and alias names as RBAC objects are matched: `*` any run, `?` one character.
use crate::auth::rbac::glob;

/// Placeholders a `set` template may use.
pub const PLACEHOLDERS: &[&str] = &["model", "version", "uri", "digest", "alias", "run", "url"];

/// One `[[promotion]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromotionRule {
    /// Registered model name, or a glob over names.
    pub model: String,
    /// Alias name, or a glob (default `*`).
    #[serde(default = "default_alias")]
    pub alias: String,
    /// The GitOps repository URL (HTTPS, SSH, `file://`).
    pub repo: String,
    /// The branch the serving Application tracks (default `main`).
    #[serde(default = "default_branch")]
    pub branch: String,
    /// The YAML file to edit, relative to the repository root.
    pub file: String,
    /// Dotted path -> template (`{{model}}`, `{{version}}`, `{{uri}}`, `{{digest}}`,
    /// `{{alias}}`, `{{run}}`, `{{url}}`: the URL pods fetch the version's bytes from, under
    /// `workflow.executor_url`).
    pub set: BTreeMap<String, String>,
    /// Push a `promote/<model>-<alias>-v<version>` branch for review instead of the tracked
    /// branch.
    #[serde(default)]
    pub review: bool,
    /// Commit author name (default `cairn`).
    #[serde(default = "default_author_name")]
    pub author_name: String,
    /// Commit author email (default `cairn@localhost`).
    #[serde(default = "default_author_email")]
    pub author_email: String,
}

fn default_alias() -> String {
    "*".into()
}
fn default_branch() -> String {
    "main".into()
}
fn default_author_name() -> String {
    "cairn".into()
}
fn default_author_email() -> String {
    "cairn@localhost".into()
}

/// A validation failure of one entry: the key and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[[promotion]] entry {index}: key `{key}`: {message}")]
pub struct RuleError {
    /// 0-based index of the entry in the file.
    pub index: usize,
    /// The key (`set."model.uri"` for a set entry).
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl PromotionRule {
    /// Checks the entry; `index` is its position among the `[[promotion]]` entries.
    pub fn validate(&self, index: usize) -> Result<(), RuleError> {
        let err = |key: &str, message: String| RuleError {
            index,
            key: key.to_string(),
            message,
        };
        if self.model.is_empty() || self.model.contains('/') {
            return Err(err(
                "model",
                "expected a model name or glob without '/'".into(),
            ));
        }
        if self.alias.is_empty() || self.alias.contains('/') {
            return Err(err(
                "alias",
                "expected an alias name or glob without '/'".into(),
            ));
        }
        if !is_repo_url(&self.repo) {
            return Err(err(
                "repo",
                format!(
                    "expected a Git URL (https://, http://, ssh://, git@host:path, file://), got {:?}",
                    crate::gitops::source::url::redact_url(&self.repo)
                ),
            ));
        }
        if !is_branch_name(&self.branch) {
            return Err(err(
                "branch",
                format!("{:?} is not a valid branch name", self.branch),
            ));
        }
        if let Some(reason) = bad_file(&self.file) {
            return Err(err("file", format!("{:?}: {reason}", self.file)));
        }
        if self.set.is_empty() {
            return Err(err(
                "set",
                "expected at least one `path = template` entry".into(),
            ));
        }
        for (path, template) in &self.set {
            let key = format!("set.{path:?}");
            YamlPath::parse(path).map_err(|e| err(&key, e.to_string()))?;
            check_template(template).map_err(|m| err(&key, m))?;
        }
        if self.author_name.trim().is_empty() {
            return Err(err("author_name", "expected a non-empty name".into()));
        }
        if !self.author_email.contains('@') || self.author_email.contains(['<', '>', '\n']) {
            return Err(err(
                "author_email",
                format!("{:?} is not an email address", self.author_email),
            ));
        }
        Ok(())
    }

    /// Whether one of the `set` templates uses placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.set
            .values()
            .any(|t| placeholders(t).any(|p| p == name))
    }

    /// Whether this rule applies to promoting `model` to `alias`.
    pub fn matches(&self, model: &str, alias: &str) -> bool {
        glob(&self.model, model) && glob(&self.alias, alias)
    }
}

/// Validates all entries.
pub fn validate_all(rules: &[PromotionRule]) -> Result<(), RuleError> {
    rules
        .iter()
        .enumerate()
        .try_for_each(|(i, r)| r.validate(i))
}

/// The first rule for (model, alias), in file order.
pub fn find_rule<'r>(
    rules: &'r [PromotionRule],
    model: &str,
    alias: &str,
) -> Option<&'r PromotionRule> {
    rules.iter().find(|r| r.matches(model, alias))
}

fn is_repo_url(url: &str) -> bool {
    let schemes = ["https://", "http://", "ssh://", "git://", "file://"];
    if let Some(s) = schemes.iter().find(|s| url.starts_with(**s)) {
        return url.len() > s.len() && !url.contains(char::is_whitespace);
    }
    // scp-like `user@host:path`
    matches!(url.split_once(':'), Some((host, path)) if host.contains('@') && !path.is_empty() && !url.contains(char::is_whitespace))
}

fn is_branch_name(branch: &str) -> bool {
    !branch.is_empty()
        && !branch.starts_with("refs/")
        && git2::Reference::is_valid_name(&format!("refs/heads/{branch}"))
}

fn bad_file(file: &str) -> Option<&'static str> {
    if file.is_empty() {
        return Some("expected a path relative to the repository root");
    }
    if file.starts_with('/') || file.contains('\\') {
        return Some("expected a relative path with '/' separators");
    }
    if file
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == ".." || c == ".git")
    {
        return Some("expected a path inside the repository (no empty, '.', '..' or '.git' parts)");
    }
    if !(file.ends_with(".yaml") || file.ends_with(".yml")) {
        return Some("expected a .yaml or .yml file");
    }
    None
}

/// The placeholder names a template uses, in order (unclosed ones are not). Pure.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    let mut rest = template;
    std::iter::from_fn(move || {
        let open = rest.find("{{")?;
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        rest = &after[close + 2..];
        Some(after[..close].trim())
    })
}

fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("unclosed '{{{{' in {template:?}"))?;
        let name = after[..close].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{{{name}}}}}; expected one of {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{{{p}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rest = &after[close + 2..];
    }
    Ok(())
}

/// The values the placeholders take for one promotion.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateVars {
    /// Model name.
    pub model: String,
    /// Version number.
    pub version: u64,
    /// The version's source URI.
    pub uri: String,
    /// The version's digest (empty when unknown).
    pub digest: String,
    /// The alias.
    pub alias: String,
    /// The run (`<namespace>/<workflow>`, empty when not registered from a workflow).
    pub run: String,
    /// The URL pods fetch the version's bytes from (`registry::content`), empty without
    /// `workflow.executor_url`.
    pub url: String,
}

/// Renders a validated template.
pub fn render(template: &str, vars: &TemplateVars) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        match after[..close].trim() {
            "model" => out.push_str(&vars.model),
            "version" => out.push_str(&vars.version.to_string()),
            "uri" => out.push_str(&vars.uri),
            "digest" => out.push_str(&vars.digest),
            "alias" => out.push_str(&vars.alias),
            "run" => out.push_str(&vars.run),
            "url" => out.push_str(&vars.url),
            _ => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// What the commit message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo<'a> {
    /// Model name.
    pub model: &'a str,
    /// Version number.
    pub version: u64,
    /// Alias.
    pub alias: &'a str,
    /// The file edited.
    pub file: &'a str,
    /// The model version's lineage node, when recorded.
    pub lineage_id: Option<&'a str>,
    /// The run that produced the version, when known.
    pub run: Option<&'a str>,
    /// For a rollback: the commit reverted.
    pub reverts: Option<&'a str>,
}

/// `promote <model> v<version> to <alias>` (or `rollback ...`), a body line, and the trailers
/// `Model-Version:`, `Lineage-Id:`, `Run:` (and `Reverts:`) in the last paragraph, where
/// `git interpret-trailers` finds them.
pub fn commit_message(info: &CommitInfo<'_>) -> String {
    let subject = match info.reverts {
        None => format!("promote {} v{} to {}", info.model, info.version, info.alias),
        Some(_) => format!(
            "rollback {} {} to v{}",
            info.model, info.alias, info.version
        ),
    };
    let mut msg = format!(
        "{subject}\n\nSet by cairn in {}.\n\nModel-Version: {}/{}\n",
        info.file, info.model, info.version
    );
    msg.push_str(&format!(
        "Lineage-Id: {}\n",
        info.lineage_id.unwrap_or("none")
    ));
    msg.push_str(&format!("Run: {}\n", info.run.unwrap_or("none")));
    if let Some(sha) = info.reverts {
        msg.push_str(&format!("Reverts: {sha}\n"));
    }
    msg
}

/// The review branch: `promote/<model>-<alias>-v<version>`.
pub fn review_branch(model: &str, alias: &str, version: u64) -> String {
    format!("promote/{model}-{alias}-v{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> PromotionRule {
        toml::from_str(
            r#"
model = "recommender"
repo = "https://git.example.com/acme/gitops.git"
file = "apps/recommender/values/prod.yaml"
set = { "model.uri" = "{{uri}}", "model.version" = "{{ version }}" }
"#,
        )
        .expect("rule")
    }

    #[test]
    fn defaults_and_strict_parsing() {
        let r = rule();
        assert_eq!(
            (r.alias.as_str(), r.branch.as_str(), r.review),
            ("*", "main", false)
        );
        assert_eq!(r.author_name, "cairn");
        assert!(r.validate(0).is_ok());
        let typo = toml::from_str::<PromotionRule>(
            "model='m'\nrepo='file:///r'\nfile='a.yaml'\nset={a='b'}\nbrnch='x'\n",
        );
        assert!(typo.is_err_and(|e| e.to_string().contains("brnch")));
    }

    #[test]
    fn validation_names_entry_and_key() {
        type Mutate = fn(&mut PromotionRule);
        let cases: Vec<(Mutate, &str)> = vec![
            (|r| r.model = String::new(), "model"),
            (|r| r.alias = "a/b".into(), "alias"),
            (|r| r.repo = "not a url".into(), "repo"),
            (|r| r.branch = "bad..name".into(), "branch"),
            (|r| r.branch = "refs/heads/main".into(), "branch"),
            (|r| r.file = "/etc/passwd.yaml".into(), "file"),
            (|r| r.file = "apps/../x.yaml".into(), "file"),
            (|r| r.file = "apps/x.json".into(), "file"),
            (|r| r.set.clear(), "set"),
            (
                |r| {
                    r.set.insert("a..b".into(), "x".into());
                },
                "set.\"a..b\"",
            ),
            (
                |r| {
                    r.set.insert("a".into(), "{{nope}}".into());
                },
                "set.\"a\"",
            ),
            (
                |r| {
                    r.set.insert("a".into(), "{{uri".into());
                },
                "set.\"a\"",
            ),
            (|r| r.author_email = "nobody".into(), "author_email"),
        ];
        for (mutate, key) in cases {
            let mut r = rule();
            mutate(&mut r);
            let e = r.validate(3).expect_err(key);
            assert_eq!((e.index, e.key.as_str()), (3, key), "{e}");
            assert!(
                e.to_string().starts_with("[[promotion]] entry 3: key `"),
                "{e}"
            );
        }
        // Credentials in a repo URL never show in the error.
        let mut r = rule();
        r.repo = "https://user:s3cret@host/x y".into();
        assert!(
            !r.validate(0)
                .expect_err("space")
                .to_string()
                .contains("s3cret")
        );
    }

    #[test]
    fn accepted_repo_urls() {
        for url in [
            "https://h/r.git",
            "ssh://git@h:22/r.git",
            "git@github.com:acme/gitops.git",
            "file:///tmp/repo.git",
        ] {
            assert!(is_repo_url(url), "{url}");
        }
        for url in ["", "h/r", "https://", "/tmp/repo"] {
            assert!(!is_repo_url(url), "{url}");
        }
    }

    #[test]
    fn globs_and_rule_order() {
        for (p, t, want) in [
            ("*", "", true),
            ("rec*", "recommender", true),
            ("*der", "recommender", true),
            ("r?c*r", "recommender", true),
            ("rec", "recommender", false),
            ("*x*", "recommender", false),
            ("a*b*c", "aXbYbc", true),
        ] {
            assert_eq!(glob(p, t), want, "{p} {t}");
        }
        let mut staging = rule();
        staging.alias = "staging".into();
        staging.file = "staging.yaml".into();
        let rules = vec![staging, rule()];
        assert_eq!(
            find_rule(&rules, "recommender", "staging").map(|r| r.file.as_str()),
            Some("staging.yaml")
        );
        assert_eq!(
            find_rule(&rules, "recommender", "prod").map(|r| r.file.as_str()),
            Some("apps/recommender/values/prod.yaml")
        );
        assert!(find_rule(&rules, "other", "prod").is_none());
    }

    #[test]
    fn templates_render() {
        let vars = TemplateVars {
            model: "recommender".into(),
            version: 4,
            uri: "s3://m/4".into(),
            digest: "sha256:ab".into(),
            alias: "prod".into(),
            run: "ml/train-x".into(),
            url: "http://h/c".into(),
        };
        assert_eq!(
            render(
                "{{model}}:{{ version }} {{uri}}@{{digest}} {{alias}} {{run}} {{url}}",
                &vars
            ),
            "recommender:4 s3://m/4@sha256:ab prod ml/train-x http://h/c"
        );
        assert_eq!(render("v{{version}}-{{x", &vars), "v4-{{x");
    }

    #[test]
    fn commit_message_format() {
        let info = CommitInfo {
            model: "recommender",
            version: 4,
            alias: "prod",
            file: "apps/recommender/values/prod.yaml",
            lineage_id: Some("ctx:model_version/recommender/4"),
            run: Some("ml/train-x"),
            reverts: None,
        };
        assert_eq!(
            commit_message(&info),
            "promote recommender v4 to prod\n\nSet by cairn in apps/recommender/values/prod.yaml.\n\n\
             Model-Version: recommender/4\nLineage-Id: ctx:model_version/recommender/4\nRun: ml/train-x\n"
        );
        let rollback = CommitInfo {
            version: 3,
            lineage_id: None,
            run: None,
            reverts: Some("abc123"),
            ..info
        };
        assert_eq!(
            commit_message(&rollback),
            "rollback recommender prod to v3\n\nSet by cairn in apps/recommender/values/prod.yaml.\n\n\
             Model-Version: recommender/3\nLineage-Id: none\nRun: none\nReverts: abc123\n"
        );
        assert_eq!(
            review_branch("recommender", "prod", 4),
            "promote/recommender-prod-v4"
        );
    }
}
