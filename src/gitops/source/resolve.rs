//! Pure resolution of an Application's `targetRevision` against a repository's advertised refs
//! (what `git ls-remote` lists), following Argo CD's `LsRemote`:
//!
//! 1. empty → `HEAD`;
//! 2. a full 40-hex SHA is returned as is;
//! 3. the first ref (in advertised order, which is sorted, so `refs/heads/x` before
//!    `refs/tags/x`) whose full name or short name (`main`, `v1.0`) equals the revision wins; an
//!    annotated tag resolves to the commit it points at (its `^{}` peeled entry); a symbolic ref
//!    (`HEAD`) resolves through its target;
//! 4. otherwise 7–40 hex characters are a truncated SHA, looked up in the mirror after a fetch;
//! 5. otherwise the revision does not exist.

/// One advertised ref: `name` (`HEAD`, `refs/heads/main`, `refs/tags/v1^{}`), the object it
/// points at, and for a symbolic ref its target ref name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    /// Full ref name as advertised.
    pub name: String,
    /// Hex object id (for an annotated tag: the tag object, peeled in the `^{}` entry).
    pub oid: String,
    /// Target of a symbolic ref (`HEAD` → `refs/heads/main`).
    pub symref_target: Option<String>,
}

/// What a revision resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A full commit SHA (lower-case hex).
    Commit(String),
    /// A truncated SHA: only the repository's objects can expand it.
    ShortSha(String),
}

/// Why a revision did not resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveFailure {
    /// Neither a ref, nor a SHA.
    NotFound,
    /// A symbolic ref whose target is not advertised (an empty repository's `HEAD`).
    DanglingSymref(String),
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is a full commit SHA (40 hex characters).
pub fn is_commit_sha(s: &str) -> bool {
    s.len() == 40 && is_hex(s)
}

/// Whether `s` can be a truncated commit SHA (7–40 hex characters), as Argo CD accepts.
pub fn is_truncated_sha(s: &str) -> bool {
    (7..=40).contains(&s.len()) && is_hex(s)
}

/// The short name of a ref as go-git's `Short()` gives it (`refs/heads/main` → `main`).
fn short_name(name: &str) -> &str {
    for prefix in ["refs/heads/", "refs/tags/", "refs/remotes/", "refs/"] {
        if let Some(s) = name.strip_prefix(prefix) {
            return s;
        }
    }
    name
}

/// Resolves `revision` against `refs`; see the module docs for the rules.
pub fn resolve_revision(refs: &[RemoteRef], revision: &str) -> Result<Resolution, ResolveFailure> {
    let revision = revision.trim();
    let revision = if revision.is_empty() {
        "HEAD"
    } else {
        revision
    };
    if is_commit_sha(revision) {
        return Ok(Resolution::Commit(revision.to_ascii_lowercase()));
    }
    let peeled = |name: &str| {
        let peeled_name = format!("{name}^{{}}");
        refs.iter()
            .find(|r| r.name == peeled_name)
            .map(|r| r.oid.clone())
    };
    for r in refs.iter().filter(|r| !r.name.ends_with("^{}")) {
        if r.name != revision && short_name(&r.name) != revision {
            continue;
        }
        if let Some(target) = &r.symref_target {
            return match refs.iter().find(|t| &t.name == target) {
                Some(t) => Ok(Resolution::Commit(peeled(&t.name).unwrap_or(t.oid.clone()))),
                // libgit2 reports HEAD with its resolved oid too; use it when present.
                None if is_commit_sha(&r.oid) && r.oid.bytes().any(|b| b != b'0') => {
                    Ok(Resolution::Commit(r.oid.clone()))
                }
                None => Err(ResolveFailure::DanglingSymref(target.clone())),
            };
        }
        return Ok(Resolution::Commit(peeled(&r.name).unwrap_or(r.oid.clone())));
    }
    if is_truncated_sha(revision) {
        return Ok(Resolution::ShortSha(revision.to_ascii_lowercase()));
    }
    Err(ResolveFailure::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "cccccccccccccccccccccccccccccccccccccccc";
    const T: &str = "1111111111111111111111111111111111111111";

    fn r(name: &str, oid: &str) -> RemoteRef {
        RemoteRef {
            name: name.into(),
            oid: oid.into(),
            symref_target: None,
        }
    }

    fn refs() -> Vec<RemoteRef> {
        vec![
            RemoteRef {
                name: "HEAD".into(),
                oid: A.into(),
                symref_target: Some("refs/heads/main".into()),
            },
            r("refs/heads/dev", B),
            r("refs/heads/main", A),
            r("refs/heads/v2", C),
            r("refs/tags/annotated", T),
            r("refs/tags/annotated^{}", B),
            r("refs/tags/light", C),
            r("refs/tags/v2", A),
        ]
    }

    #[test]
    fn resolution_table() {
        let commit = |s: &str| Ok(Resolution::Commit(s.to_string()));
        let cases: Vec<(&str, Result<Resolution, ResolveFailure>)> = vec![
            ("", commit(A)),
            ("HEAD", commit(A)),
            ("  ", commit(A)),
            ("main", commit(A)),
            ("refs/heads/main", commit(A)),
            ("dev", commit(B)),
            ("light", commit(C)),
            ("refs/tags/light", commit(C)),
            // Annotated tag: the peeled commit, never the tag object.
            ("annotated", commit(B)),
            // Branch and tag of one name: the branch, as Argo CD's ordered scan finds it first.
            ("v2", commit(C)),
            ("refs/tags/v2", commit(A)),
            (
                "DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD",
                commit(&"d".repeat(40)),
            ),
            ("abc1234", Ok(Resolution::ShortSha("abc1234".into()))),
            ("abc123", Err(ResolveFailure::NotFound)),
            ("nope", Err(ResolveFailure::NotFound)),
            ("refs/heads/nope", Err(ResolveFailure::NotFound)),
            ("annotated^{}", Err(ResolveFailure::NotFound)),
        ];
        let refs = refs();
        for (rev, want) in cases {
            assert_eq!(resolve_revision(&refs, rev), want, "revision {rev:?}");
        }
    }

    #[test]
    fn empty_repository_head_dangles() {
        let refs = vec![RemoteRef {
            name: "HEAD".into(),
            oid: "0".repeat(40),
            symref_target: Some("refs/heads/main".into()),
        }];
        assert_eq!(
            resolve_revision(&refs, "HEAD"),
            Err(ResolveFailure::DanglingSymref("refs/heads/main".into()))
        );
        assert_eq!(resolve_revision(&[], "main"), Err(ResolveFailure::NotFound));
    }

    #[test]
    fn sha_predicates() {
        assert!(is_commit_sha(A));
        assert!(!is_commit_sha(&A[..39]));
        assert!(!is_commit_sha(&"g".repeat(40)));
        assert!(is_truncated_sha("abcdef0"));
        assert!(!is_truncated_sha("abcdef"));
        assert!(!is_truncated_sha(&"a".repeat(41)));
    }
}
