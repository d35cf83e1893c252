//! Glob matching with Argo CD's `directory.include`/`directory.exclude` semantics.
//!
//! Argo CD compiles these patterns with gobwas/glob *without* separators, matched against the
//! file path relative to the source path. So `*` and `?` also cross `/`: `*.yaml` matches
//! `sub/a.yaml`. Supported: `*`, `?`, `[abc]`, `[a-z]`, `[!a]`/`[^a]`, `{a,b}` (nestable) and
//! `\` escapes. Invariant: matching is total — a malformed pattern (unclosed `[` or `{`) is
//! refused by [`Glob::new`], never a panic.

use super::RenderError;

/// One compiled pattern element.
#[derive(Clone, Debug, PartialEq)]
enum Token {
    Literal(char),
    /// `?`: any one character.
    Any,
    /// `*`: any run of characters, `/` included (no separators, as Argo compiles it).
    Star,
    /// `[...]`: a class; `negated` for `[!...]`/`[^...]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `{a,b}`: alternatives, each a token sequence.
    Alt(Vec<Vec<Token>>),
}

/// A compiled glob.
#[derive(Clone, Debug, PartialEq)]
pub struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    /// Compiles `pattern`; `field` names the option it came from, for the error.
    pub fn new(pattern: &str, field: &str) -> Result<Self, RenderError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let tokens = parse_seq(&chars, &mut pos, false).map_err(|reason| RenderError::Glob {
            field: field.to_owned(),
            pattern: pattern.to_owned(),
            reason,
        })?;
        if pos != chars.len() {
            return Err(RenderError::Glob {
                field: field.to_owned(),
                pattern: pattern.to_owned(),
                reason: "unexpected `}` or `,`".to_owned(),
            });
        }
        Ok(Self { tokens })
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        match_seq(&self.tokens, &chars, 0, &[])
    }
}

fn parse_seq(chars: &[char], pos: &mut usize, in_alt: bool) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    while let Some(&c) = chars.get(*pos) {
        match c {
            '}' | ',' if in_alt => return Ok(out),
            '*' => {
                *pos += 1;
                // `**` means the same as `*` here (no separators).
                if out.last() != Some(&Token::Star) {
                    out.push(Token::Star);
                }
            }
            '?' => {
                *pos += 1;
                out.push(Token::Any);
            }
            '\\' => {
                let escaped = chars.get(*pos + 1).ok_or("trailing `\\`")?;
                out.push(Token::Literal(*escaped));
                *pos += 2;
            }
            '[' => out.push(parse_class(chars, pos)?),
            '{' => {
                *pos += 1;
                let mut alts = Vec::new();
                loop {
                    alts.push(parse_seq(chars, pos, true)?);
                    match chars.get(*pos) {
                        Some(',') => *pos += 1,
                        Some('}') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err("unclosed `{`".to_owned()),
                    }
                }
                out.push(Token::Alt(alts));
            }
            _ => {
                *pos += 1;
                out.push(Token::Literal(c));
            }
        }
    }
    Ok(out)
}

fn parse_class(chars: &[char], pos: &mut usize) -> Result<Token, String> {
    *pos += 1; // '['
    let negated = matches!(chars.get(*pos), Some('!' | '^'));
    if negated {
        *pos += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(*pos).ok_or("unclosed `[`")?;
        if c == ']' && !ranges.is_empty() {
            *pos += 1;
            break;
        }
        let lo = if c == '\\' {
            *pos += 1;
            *chars.get(*pos).ok_or("unclosed `[`")?
        } else {
            c
        };
        *pos += 1;
        if chars.get(*pos) == Some(&'-') && chars.get(*pos + 1).is_some_and(|n| *n != ']') {
            let hi = *chars.get(*pos + 1).ok_or("unclosed `[`")?;
            *pos += 2;
            if hi < lo {
                return Err(format!("bad range `{lo}-{hi}`"));
            }
            ranges.push((lo, hi));
        } else {
            ranges.push((lo, lo));
        }
    }
    Ok(Token::Class { negated, ranges })
}

/// Backtracking matcher; `rest` is the continuation after an alternative's branch, so `{a,ab}c`
/// tries every branch against the remainder.
fn match_seq(tokens: &[Token], text: &[char], at: usize, rest: &[&[Token]]) -> bool {
    let Some((first, tail)) = tokens.split_first() else {
        return match rest.split_first() {
            Some((next, more)) => match_seq(next, text, at, more),
            None => at == text.len(),
        };
    };
    match first {
        Token::Literal(c) => text.get(at) == Some(c) && match_seq(tail, text, at + 1, rest),
        Token::Any => at < text.len() && match_seq(tail, text, at + 1, rest),
        Token::Class { negated, ranges } => text.get(at).is_some_and(|c| {
            ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
                && match_seq(tail, text, at + 1, rest)
        }),
        Token::Star => (at..=text.len()).any(|i| match_seq(tail, text, i, rest)),
        Token::Alt(alts) => alts.iter().any(|alt| {
            let mut cont: Vec<&[Token]> = Vec::with_capacity(rest.len() + 1);
            cont.push(tail);
            cont.extend_from_slice(rest);
            match_seq(alt, text, at, &cont)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.yaml", "a.yaml", true),
            ("*.yaml", "sub/a.yaml", true),
            ("*.yaml", "a.yml", false),
            ("*.{yaml,yml}", "a.yml", true),
            ("*.{yaml,yml}", "a.json", false),
            ("{config.json,*.yaml}", "config.json", true),
            ("{config.json,*.yaml}", "other.json", false),
            ("{a,ab}c", "abc", true),
            ("{a,ab}c", "ac", true),
            ("{a,ab}c", "abbc", false),
            ("{x,{y,z}}", "z", true),
            ("?.yaml", "a.yaml", true),
            ("?.yaml", "ab.yaml", false),
            ("[ab].yaml", "b.yaml", true),
            ("[!ab].yaml", "b.yaml", false),
            ("[a-c]x", "cx", true),
            ("[a-c]x", "dx", false),
            ("\\*.yaml", "*.yaml", true),
            ("\\*.yaml", "a.yaml", false),
            ("prod/**", "prod/x/y.yaml", true),
            ("prod/**", "dev/x.yaml", false),
            ("", "", true),
            ("", "a", false),
        ];
        for (pattern, text, want) in cases {
            let glob = Glob::new(pattern, "include").expect("valid pattern");
            assert_eq!(glob.matches(text), *want, "{pattern} vs {text}");
        }
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_field() {
        for pattern in ["{a,b", "[ab", "x\\", "[z-a]"] {
            let err = Glob::new(pattern, "exclude").expect_err(pattern);
            let msg = err.to_string();
            assert!(msg.contains("exclude") && msg.contains(pattern), "{msg}");
        }
    }
}
