//! Argo CD's build environment: the `ARGOCD_APP_*` variables and their substitution into
//! Kustomize images/labels and Helm parameters.
//!
//! [`build_env`] names the variables as Argo CD's "Build Environment" documents them;
//! [`envsubst`] follows Go's `os.Expand` as Argo CD calls it: `$NAME` and `${NAME}` are
//! replaced, an unknown name becomes empty, `$$` is a literal `$`, a `$` not followed by a name
//! stays. Both are pure. These variables are substituted into arguments only; they are never
//! put into a tool's environment (the child environment stays clean).

use std::collections::BTreeMap;

/// The build variables, by name.
pub type BuildEnv = BTreeMap<String, String>;

/// What the build variables are made of.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildContext<'a> {
    /// Application name.
    pub app_name: &'a str,
    /// Destination namespace.
    pub namespace: &'a str,
    /// AppProject name.
    pub project: &'a str,
    /// Resolved revision (commit SHA).
    pub revision: &'a str,
    /// Source path.
    pub source_path: &'a str,
    /// Source repository URL.
    pub repo_url: &'a str,
    /// Source `targetRevision` as written.
    pub target_revision: &'a str,
}

/// Argo CD's build environment for `ctx`.
pub fn build_env(ctx: &BuildContext<'_>) -> BuildEnv {
    let short = |n: usize| ctx.revision.chars().take(n).collect::<String>();
    [
        ("ARGOCD_APP_NAME", ctx.app_name.to_owned()),
        ("ARGOCD_APP_NAMESPACE", ctx.namespace.to_owned()),
        ("ARGOCD_APP_PROJECT_NAME", ctx.project.to_owned()),
        ("ARGOCD_APP_REVISION", ctx.revision.to_owned()),
        ("ARGOCD_APP_REVISION_SHORT", short(7)),
        ("ARGOCD_APP_REVISION_SHORT_8", short(8)),
        ("ARGOCD_APP_SOURCE_PATH", ctx.source_path.to_owned()),
        ("ARGOCD_APP_SOURCE_REPO_URL", ctx.repo_url.to_owned()),
        (
            "ARGOCD_APP_SOURCE_TARGET_REVISION",
            ctx.target_revision.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Substitutes `$NAME`/`${NAME}` from `env` (Go `os.Expand` rules, `$$` → `$`).
pub fn envsubst(s: &str, env: &BuildEnv) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' || i + 1 >= chars.len() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let next = chars[i + 1];
        if next == '{' {
            match chars[i + 2..].iter().position(|c| *c == '}') {
                Some(0) => i += 3, // `${}`: invalid, eaten as Go does
                Some(len) => {
                    let name: String = chars[i + 2..i + 2 + len].iter().collect();
                    out.push_str(lookup(&name, env));
                    i += 3 + len;
                }
                None => i += 2, // unterminated `${`: Go eats the brace
            }
        } else if next == '$' {
            out.push('$');
            i += 2;
        } else if "*#@!?-0123456789".contains(next) {
            out.push_str(lookup(&next.to_string(), env));
            i += 2;
        } else if next.is_ascii_alphanumeric() || next == '_' {
            let len = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            let name: String = chars[i + 1..i + 1 + len].iter().collect();
            out.push_str(lookup(&name, env));
            i += 1 + len;
        } else {
            out.push('$');
            i += 1;
        }
    }
    out
}

fn lookup<'a>(name: &str, env: &'a BuildEnv) -> &'a str {
    env.get(name).map(String::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BuildEnv {
        build_env(&BuildContext {
            app_name: "guestbook",
            namespace: "prod",
            project: "default",
            revision: "0123456789abcdef",
            source_path: "apps/gb",
            repo_url: "https://git/r.git",
            target_revision: "main",
        })
    }

    #[test]
    fn build_env_names() {
        insta::assert_yaml_snapshot!(env());
    }

    #[test]
    fn envsubst_table() {
        let cases = [
            ("app:$ARGOCD_APP_NAME", "app:guestbook"),
            ("${ARGOCD_APP_NAMESPACE}-x", "prod-x"),
            ("img:${ARGOCD_APP_REVISION_SHORT}", "img:0123456"),
            ("$ARGOCD_APP_REVISION_SHORT_8.", "01234567."),
            ("$UNKNOWN/${NOPE}", "/"),
            ("cost $$5", "cost $5"),
            ("trailing $", "trailing $"),
            ("$ space", "$ space"),
            ("${}x", "x"),
            ("${ARGOCD_APP_NAME", "ARGOCD_APP_NAME"),
            ("$1", ""),
            ("plain", "plain"),
            ("ünï$ARGOCD_APP_NAMEcode", "ünï"),
        ];
        for (input, want) in cases {
            assert_eq!(envsubst(input, &env()), want, "{input}");
        }
    }
}
