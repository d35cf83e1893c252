//! Repository URL handling: the mirror-cache key and credential-free display.
//!
//! Invariant: nothing this crate prints about a repository goes through anything but
//! [`redact_url`] / [`redact_text`], so a `https://user:token@host/...` URL never reaches a log,
//! an error or the UI.

use sha2::{Digest, Sha256};

/// The form of a repository URL used as the mirror-cache key, as Argo CD's `NormalizeGitURL`
/// does: lower-cased, without userinfo, without a trailing `/` or `.git`. Two spellings of one
/// repository share one mirror.
pub fn normalize_url(url: &str) -> String {
    let mut out = redact_url(url.trim()).to_lowercase();
    while out.ends_with('/') {
        out.pop();
    }
    if let Some(stripped) = out.strip_suffix(".git") {
        out = stripped.to_string();
    }
    out
}

/// The directory name of a repository's mirror: hex SHA-256 of [`normalize_url`].
pub fn mirror_key(url: &str) -> String {
    hex::encode(Sha256::digest(normalize_url(url).as_bytes()))
}

/// `url` without the userinfo of a `scheme://user:secret@host/...` URL. scp-like addresses
/// (`git@host:org/repo`) keep their user: it cannot carry a password.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => format!(
            "{}{}{}",
            &url[..scheme_end + 3],
            &authority[at + 1..],
            &rest[authority_end..]
        ),
        None => url.to_string(),
    }
}

/// Free text (a libgit2 error message, say) with the userinfo of every `scheme://` URL in it
/// removed.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        // The URL starts at the scheme: the run of scheme characters before `://`.
        let scheme_start = rest[..pos]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        out.push_str(&rest[..scheme_start]);
        let url_part = &rest[scheme_start..];
        let url_end = url_part
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>'))
            .unwrap_or(url_part.len());
        out.push_str(&redact_url(&url_part[..url_end]));
        rest = &url_part[url_end..];
    }
    out.push_str(rest);
    out
}

/// The form Argo CD's `NormalizeGitURL` gives a URL before a credential template's prefix is
/// matched: trimmed, lower-cased, `.git` suffix removed, and SSH URLs (`git@host:org/r`,
/// `ssh://git@host/org/r`) both written `git@host/org/r`. Userinfo and a trailing `/` stay, as
/// they do in Argo CD, so a template `https://host/org/` matches `https://host/org/r` only.
pub fn template_match_form(url: &str) -> String {
    let mut out = url.trim().to_lowercase();
    if !out.contains("://") && out.contains('@') {
        out = out.replacen(':', "/", 1);
    } else if let Some(rest) = out.strip_prefix("ssh://") {
        out = rest.to_string();
    }
    if let Some(stripped) = out.strip_suffix(".git") {
        out = stripped.to_string();
    }
    out
}

/// Whether the URL is served by libgit2's local transport (a path or `file://`), which cannot
/// do shallow fetches.
pub fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/') || url.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_table() {
        let cases = [
            (
                "https://user:tok@github.com/o/r.git",
                "https://github.com/o/r.git",
            ),
            ("https://tok@github.com/o/r", "https://github.com/o/r"),
            ("https://github.com/o/r", "https://github.com/o/r"),
            ("ssh://git@host:22/o/r", "ssh://host:22/o/r"),
            ("git@github.com:o/r.git", "git@github.com:o/r.git"),
            ("https://u:p%40ss@h/x?y=a@b", "https://h/x?y=a@b"),
            ("/tmp/repo", "/tmp/repo"),
            ("https://u:p@h", "https://h"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_url(input), want, "{input}");
        }
    }

    #[test]
    fn redact_text_strips_every_url() {
        let text = "failed to fetch 'https://me:s3cret@h/r.git': status 401; also http://a:b@c/d\n";
        let got = redact_text(text);
        assert_eq!(
            got,
            "failed to fetch 'https://h/r.git': status 401; also http://c/d\n"
        );
        assert!(!got.contains("s3cret"));
        assert_eq!(redact_text("no url here"), "no url here");
    }

    #[test]
    fn normalize_and_key() {
        let same = [
            "https://GitHub.com/o/r.git",
            "https://github.com/o/r/",
            "https://user:tok@github.com/o/r",
        ];
        for u in same {
            assert_eq!(normalize_url(u), "https://github.com/o/r", "{u}");
            assert_eq!(mirror_key(u), mirror_key("https://github.com/o/r"));
        }
        assert_ne!(
            mirror_key("https://github.com/o/r"),
            mirror_key("https://github.com/o/s")
        );
        assert_eq!(mirror_key("x").len(), 64);
    }

    #[test]
    fn template_forms() {
        let cases = [
            ("git@GitHub.com:org/repo.git", "git@github.com/org/repo"),
            ("ssh://git@github.com/org/repo", "git@github.com/org/repo"),
            (" https://h/org/ ", "https://h/org/"),
            ("https://h/org/r.git", "https://h/org/r"),
        ];
        for (input, want) in cases {
            assert_eq!(template_match_form(input), want, "{input}");
        }
    }

    #[test]
    fn local_urls() {
        assert!(is_local("file:///tmp/x"));
        assert!(is_local("/tmp/x"));
        assert!(!is_local("https://h/x"));
        assert!(!is_local("git@h:x"));
    }
}
