//! GitHub and GitLab event sources: request verification and the `events` filter.
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` keyed with the
//!   source's `webhookSecret`; the event name is `X-GitHub-Event`; `ping` (sent when a hook is
//!   created) is answered and not published.
//! - GitLab: `X-Gitlab-Token` equal to the source's `secretToken`; the event name is
//!   `X-Gitlab-Event` (`Push Hook`, `Merge Request Hook`...). The `events` of an Argo gitlab
//!   source are GitLab's hook option names (`PushEvents`, `MergeRequestsEvents`...), which
//!   [`gitlab_event_allowed`] maps to those header values.
//!
//! Argo registers the hook on the provider, and the provider filters by `events`; cairn cannot
//! reach GitHub or GitLab, so the hook is created by hand and cairn applies `events` itself.
//! Without a configured secret a request is accepted unsigned, as Argo does.
//!
//! Invariant: pure; comparisons are constant-time (`subtle`), over digests for tokens so that
//! neither a token's content nor its length leaks through timing; secrets never appear in
//! errors.

use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::gitops::webhook::hmac_sha256;

/// GitHub's signature header.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
/// GitHub's event-name header.
pub const GITHUB_EVENT: &str = "x-github-event";
/// GitHub's delivery id header (the event's delivery key: a redelivery keeps it).
pub const GITHUB_DELIVERY: &str = "x-github-delivery";
/// GitLab's token header.
pub const GITLAB_TOKEN: &str = "x-gitlab-token";
/// GitLab's event-name header.
pub const GITLAB_EVENT: &str = "x-gitlab-event";
/// GitLab's delivery id header.
pub const GITLAB_DELIVERY: &str = "x-gitlab-event-uuid";

/// Why a GitHub or GitLab request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitVerifyError {
    /// The signature or token header is absent.
    #[error("missing {header} header")]
    Missing {
        /// The header expected.
        header: &'static str,
    },
    /// The signature or token does not match the configured secret.
    #[error("{header} does not match the event source's secret")]
    Mismatch {
        /// The header checked.
        header: &'static str,
    },
}

impl GitVerifyError {
    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            GitVerifyError::Missing { .. } => "missing_signature",
            GitVerifyError::Mismatch { .. } => "bad_signature",
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Verifies `X-Hub-Signature-256` over `body` with `secret`.
pub fn verify_github(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), GitVerifyError> {
    let value = header(headers, GITHUB_SIGNATURE).ok_or(GitVerifyError::Missing {
        header: GITHUB_SIGNATURE,
    })?;
    let mismatch = GitVerifyError::Mismatch {
        header: GITHUB_SIGNATURE,
    };
    let given = value
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(mismatch.clone())?;
    let expected = hmac_sha256(secret, body);
    if bool::from(given.as_slice().ct_eq(&expected)) {
        Ok(())
    } else {
        Err(mismatch)
    }
}

/// Verifies `X-Gitlab-Token` against `secret`.
pub fn verify_gitlab(secret: &[u8], headers: &HeaderMap) -> Result<(), GitVerifyError> {
    let value = header(headers, GITLAB_TOKEN).ok_or(GitVerifyError::Missing {
        header: GITLAB_TOKEN,
    })?;
    if token_matches(value.as_bytes(), secret) {
        Ok(())
    } else {
        Err(GitVerifyError::Mismatch {
            header: GITLAB_TOKEN,
        })
    }
}

/// Constant-time equality of a presented token and the expected one, compared as SHA-256
/// digests so the expected token's length does not leak either.
pub fn token_matches(given: &[u8], expected: &[u8]) -> bool {
    bool::from(
        Sha256::digest(given)
            .as_slice()
            .ct_eq(Sha256::digest(expected).as_slice()),
    )
}

/// The GitHub event name of a request (`X-GitHub-Event`), empty when absent.
pub fn github_event(headers: &HeaderMap) -> &str {
    header(headers, GITHUB_EVENT).unwrap_or("")
}

/// The GitLab event name of a request (`X-Gitlab-Event`), empty when absent.
pub fn gitlab_event(headers: &HeaderMap) -> &str {
    header(headers, GITLAB_EVENT).unwrap_or("")
}

/// Whether a GitHub event passes the source's `events` (empty or containing `*`: all).
pub fn github_event_allowed(events: &[String], event: &str) -> bool {
    events.is_empty()
        || events
            .iter()
            .any(|e| e == "*" || e.eq_ignore_ascii_case(event))
}

/// GitLab's hook option names (what Argo's `events` lists) and the `X-Gitlab-Event` values
/// they produce.
const GITLAB_EVENTS: &[(&str, &[&str])] = &[
    ("PushEvents", &["Push Hook"]),
    ("TagPushEvents", &["Tag Push Hook"]),
    ("IssuesEvents", &["Issue Hook"]),
    ("ConfidentialIssuesEvents", &["Confidential Issue Hook"]),
    ("NoteEvents", &["Note Hook"]),
    ("ConfidentialNoteEvents", &["Confidential Note Hook"]),
    ("MergeRequestsEvents", &["Merge Request Hook"]),
    ("JobEvents", &["Job Hook"]),
    ("PipelineEvents", &["Pipeline Hook"]),
    ("WikiPageEvents", &["Wiki Page Hook"]),
    ("DeploymentEvents", &["Deployment Hook"]),
    ("ReleasesEvents", &["Release Hook"]),
    ("FeatureFlagEvents", &["Feature Flag Hook"]),
];

/// Whether a GitLab event (`X-Gitlab-Event` value) passes the source's `events`: empty or `*`
/// passes all; an entry matches by GitLab's option name or by the header value itself.
pub fn gitlab_event_allowed(events: &[String], event: &str) -> bool {
    events.is_empty()
        || events.iter().any(|e| {
            e == "*"
                || e.eq_ignore_ascii_case(event)
                || GITLAB_EVENTS.iter().any(|(option, values)| {
                    option.eq_ignore_ascii_case(e)
                        && values.iter().any(|v| v.eq_ignore_ascii_case(event))
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn github_signatures_verify_over_the_raw_body() {
        // RFC 4231 test case 2 checks the HMAC itself; here, GitHub's documented example:
        // secret "It's a Secret to Everybody", body "Hello, World!".
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            verify_github(secret, &headers(&[(GITHUB_SIGNATURE, sig)]), body),
            Ok(())
        );
        // One byte of body changed, another secret, a malformed or missing header: refused.
        assert_eq!(
            verify_github(
                secret,
                &headers(&[(GITHUB_SIGNATURE, sig)]),
                b"Hello, World?"
            ),
            Err(GitVerifyError::Mismatch {
                header: GITHUB_SIGNATURE
            })
        );
        assert!(verify_github(b"other", &headers(&[(GITHUB_SIGNATURE, sig)]), body).is_err());
        assert!(
            verify_github(secret, &headers(&[(GITHUB_SIGNATURE, &sig[7..])]), body).is_err(),
            "the sha256= prefix is required"
        );
        assert_eq!(
            verify_github(secret, &HeaderMap::new(), body),
            Err(GitVerifyError::Missing {
                header: GITHUB_SIGNATURE
            })
        );
    }

    #[test]
    fn gitlab_tokens_compare_exactly() {
        assert_eq!(
            verify_gitlab(b"tok", &headers(&[(GITLAB_TOKEN, "tok")])),
            Ok(())
        );
        assert!(verify_gitlab(b"tok", &headers(&[(GITLAB_TOKEN, "tok2")])).is_err());
        assert!(verify_gitlab(b"tok", &headers(&[(GITLAB_TOKEN, "to")])).is_err());
        assert_eq!(
            verify_gitlab(b"tok", &HeaderMap::new()).map_err(|e| e.metric_label()),
            Err("missing_signature")
        );
    }

    #[test]
    fn event_filters() {
        let push = vec!["push".to_owned()];
        assert!(github_event_allowed(&[], "push"));
        assert!(github_event_allowed(&["*".to_owned()], "issues"));
        assert!(github_event_allowed(&push, "push"));
        assert!(!github_event_allowed(&push, "pull_request"));
        let gl = vec!["PushEvents".to_owned(), "MergeRequestsEvents".to_owned()];
        assert!(gitlab_event_allowed(&gl, "Push Hook"));
        assert!(gitlab_event_allowed(&gl, "Merge Request Hook"));
        assert!(!gitlab_event_allowed(&gl, "Tag Push Hook"));
        assert!(gitlab_event_allowed(
            &["Tag Push Hook".to_owned()],
            "Tag Push Hook"
        ));
        assert!(gitlab_event_allowed(&[], "Note Hook"));
    }
}
