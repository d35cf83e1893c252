//! API tokens of local accounts.
//!
//! A token is `cairn_<id>_<secret>`: `id` is 16 lowercase hex characters (public: it names the
//! token in lists and logs), `secret` is 32 random bytes in unpadded base64url. Only the SHA-256
//! of the secret is stored (a fast hash is enough for 256 bits of entropy), compared in constant
//! time.
//!
//! Invariants:
//! - The secret exists in plaintext only in the [`CreatedToken`] returned by [`Tokens::create`].
//! - An expired or revoked (deleted) token never authenticates.
//! - `last_used` is written at most once per [`LAST_USED_RESOLUTION`] per token, so API traffic
//!   does not turn into a durable write per request.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthError, Secret, add};
use crate::store::{JsonTable, Store, StoreError, tables};

/// Every token starts with this; it tells tokens from session ids in `Authorization: Bearer`.
pub const TOKEN_PREFIX: &str = "cairn_";
/// Longest token name accepted.
pub const MAX_NAME_CHARS: usize = 100;
/// `last_used` is refreshed at most this often.
pub const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A token as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public id.
    pub id: String,
    /// The account it authenticates as.
    pub account: String,
    /// A name to recognise it by.
    pub name: String,
    /// SHA-256 of the secret bytes, hex.
    pub secret_sha256: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry; `None`: never.
    pub expires_at: Option<Timestamp>,
    /// Last successful use (at [`LAST_USED_RESOLUTION`]).
    pub last_used: Option<Timestamp>,
}

const TOKENS: JsonTable<TokenRecord> = JsonTable::new(tables::API_TOKENS);

/// A token as listed (no secret, no hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// The account.
    pub account: String,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// Last use, if any.
    pub last_used: Option<Timestamp>,
}

/// A newly created token: the only place its secret exists.
#[derive(Debug, Clone)]
pub struct CreatedToken {
    /// Public id.
    pub id: String,
    /// The account.
    pub account: String,
    /// Name.
    pub name: String,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    token: Secret,
}

impl CreatedToken {
    /// The full token string (`cairn_<id>_<secret>`), to show the user once.
    pub fn secret(&self) -> &str {
        self.token.expose()
    }
}

/// API tokens over the store.
#[derive(Debug, Clone)]
pub struct Tokens {
    store: Store,
}

impl Tokens {
    /// Tokens kept in `store`.
    pub fn new(store: Store) -> Tokens {
        Tokens { store }
    }

    /// Creates a token for `account` (the caller checked the account may hold tokens).
    pub async fn create(
        &self,
        account: &str,
        name: &str,
        lifetime: Option<Duration>,
        now: Timestamp,
    ) -> Result<CreatedToken, AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(AuthError::TokenName {
                name: name.to_owned(),
            });
        }
        let secret: [u8; SECRET_BYTES] = rand::random();
        let expires_at = lifetime.map(|d| add(now, d));
        let base = TokenRecord {
            id: String::new(),
            account: account.to_owned(),
            name: name.to_owned(),
            secret_sha256: hex::encode(Sha256::digest(secret)),
            created_at: now,
            expires_at,
            last_used: None,
        };
        let record = self
            .store
            .write(move |txn| -> Result<TokenRecord, StoreError> {
                // 64-bit random ids: a collision is astronomically unlikely, but cheap to rule out.
                loop {
                    let id = hex::encode(rand::random::<[u8; ID_BYTES]>());
                    if TOKENS.get_in(txn, &id)?.is_none() {
                        let record = TokenRecord {
                            id: id.clone(),
                            ..base.clone()
                        };
                        TOKENS.insert(txn, &id, &record)?;
                        return Ok(record);
                    }
                }
            })
            .await?;
        let token = format!(
            "{TOKEN_PREFIX}{}_{}",
            record.id,
            URL_SAFE_NO_PAD.encode(secret)
        );
        Ok(CreatedToken {
            id: record.id,
            account: record.account,
            name: record.name,
            expires_at: record.expires_at,
            token: Secret::new(token),
        })
    }

    /// Checks a token string at `now`; returns its record (the caller checks the account).
    pub async fn verify(&self, token: &str, now: Timestamp) -> Result<TokenRecord, AuthError> {
        let (id, secret) = parse(token).ok_or(AuthError::Unauthenticated)?;
        let record = self
            .store
            .read(|txn| TOKENS.get(txn, id))?
            .ok_or(AuthError::Unauthenticated)?;
        let presented = Sha256::digest(secret);
        let stored = hex::decode(&record.secret_sha256).unwrap_or_default();
        if !bool::from(presented.as_slice().ct_eq(&stored)) {
            return Err(AuthError::Unauthenticated);
        }
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err(AuthError::Expired);
        }
        if record
            .last_used
            .is_none_or(|used| add(used, LAST_USED_RESOLUTION) <= now)
        {
            let id = record.id.clone();
            self.store
                .write(move |txn| -> Result<(), StoreError> {
                    // Only touch a token that still exists: never resurrect a revoked one.
                    if let Some(mut current) = TOKENS.get_in(txn, &id)? {
                        current.last_used = Some(now);
                        TOKENS.insert(txn, &id, &current)?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(record)
    }

    /// The tokens of `account`, oldest first.
    pub fn list(&self, account: &str) -> Result<Vec<TokenInfo>, AuthError> {
        let mut out: Vec<TokenInfo> = self
            .store
            .read(|txn| TOKENS.list(txn))?
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.account == account)
            .map(|r| TokenInfo {
                id: r.id,
                account: r.account,
                name: r.name,
                created_at: r.created_at,
                expires_at: r.expires_at,
                last_used: r.last_used,
            })
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Revokes (deletes) token `id` of `account`.
    pub async fn revoke(&self, account: &str, id: &str) -> Result<(), AuthError> {
        let (account_owned, id_owned) = (account.to_owned(), id.to_owned());
        let removed = self
            .store
            .write(move |txn| -> Result<bool, StoreError> {
                match TOKENS.get_in(txn, &id_owned)? {
                    Some(r) if r.account == account_owned => TOKENS.remove(txn, &id_owned),
                    _ => Ok(false),
                }
            })
            .await?;
        if removed {
            Ok(())
        } else {
            Err(AuthError::TokenNotFound {
                account: account.to_owned(),
                id: id.to_owned(),
            })
        }
    }
}

/// Splits `cairn_<id>_<secret>` into the id and the secret bytes; `None` if malformed.
fn parse(token: &str) -> Option<(&str, [u8; SECRET_BYTES])> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    // The id is hex (no `_`); the secret is base64url and may itself contain `_`.
    let (id, secret) = rest.split_once('_')?;
    if id.len() != ID_BYTES * 2 || !id.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(secret).ok()?;
    let secret: [u8; SECRET_BYTES] = bytes.try_into().ok()?;
    Some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn tokens() -> (tempfile::TempDir, Tokens) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        (dir, Tokens::new(store))
    }

    #[tokio::test]
    async fn create_verify_list_revoke() {
        let (_dir, tokens) = tokens();
        let created = tokens
            .create("alice", "ci", None, t(0))
            .await
            .expect("create");
        let s = created.secret();
        assert!(s.starts_with("cairn_"), "{s}");
        assert_eq!(s.len(), "cairn_".len() + 16 + 1 + 43);
        assert!(
            !format!("{created:?}").contains(&s[23..]),
            "Debug must not show the secret"
        );
        let record = tokens.verify(s, t(1)).await.expect("verify");
        assert_eq!(
            (record.account.as_str(), record.id.as_str()),
            ("alice", created.id.as_str())
        );
        let list = tokens.list("alice").expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name, "ci");
        assert_eq!(list[0].last_used, Some(t(1)));
        assert!(tokens.list("bob").expect("list").is_empty());
        let json = serde_json::to_string(&list).expect("json");
        assert!(
            !json.contains("sha256") && !json.contains(&s[23..]),
            "{json}"
        );
        // Another account cannot revoke it.
        assert!(matches!(
            tokens.revoke("bob", &created.id).await,
            Err(AuthError::TokenNotFound { .. })
        ));
        tokens.revoke("alice", &created.id).await.expect("revoke");
        assert!(matches!(
            tokens.verify(s, t(2)).await,
            Err(AuthError::Unauthenticated)
        ));
        assert!(matches!(
            tokens.revoke("alice", &created.id).await,
            Err(AuthError::TokenNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn expiry() {
        let (_dir, tokens) = tokens();
        let lifetime = crate::config::parse_duration("30d").expect("duration");
        let created = tokens
            .create("alice", "short", Some(lifetime), t(0))
            .await
            .expect("create");
        assert_eq!(created.expires_at, Some(t(30 * 86_400)));
        tokens
            .verify(created.secret(), t(30 * 86_400 - 1))
            .await
            .expect("valid");
        assert!(matches!(
            tokens.verify(created.secret(), t(30 * 86_400)).await,
            Err(AuthError::Expired)
        ));
    }

    #[tokio::test]
    async fn tampered_or_malformed_tokens_fail() {
        let (_dir, tokens) = tokens();
        let created = tokens
            .create("alice", "x", None, t(0))
            .await
            .expect("create");
        let s = created.secret().to_owned();
        let mut tampered = s.clone();
        let last = tampered.pop().expect("char");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let other_id = format!("cairn_0000000000000000_{}", &s[23..]);
        for bad in [
            tampered.as_str(),
            other_id.as_str(),
            "",
            "cairn_",
            "cairn_abc_def",
            "cairn_ZZZZZZZZZZZZZZZZ_AAAA",
            &s[..s.len() - 1],
            "Bearer whatever",
        ] {
            assert!(
                matches!(
                    tokens.verify(bad, t(1)).await,
                    Err(AuthError::Unauthenticated)
                ),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn last_used_written_at_most_once_a_minute() {
        let (_dir, tokens) = tokens();
        let created = tokens
            .create("alice", "x", None, t(0))
            .await
            .expect("create");
        let commits = |tokens: &Tokens| tokens.store.commit_count();
        tokens.verify(created.secret(), t(1)).await.expect("verify");
        let after_first = commits(&tokens);
        tokens
            .verify(created.secret(), t(30))
            .await
            .expect("verify");
        tokens
            .verify(created.secret(), t(60))
            .await
            .expect("verify");
        assert_eq!(commits(&tokens), after_first, "no write within the minute");
        tokens
            .verify(created.secret(), t(61))
            .await
            .expect("verify");
        assert_eq!(commits(&tokens), after_first + 1);
        assert_eq!(
            tokens.list("alice").expect("list")[0].last_used,
            Some(t(61))
        );
    }

    #[tokio::test]
    async fn names_are_checked() {
        let (_dir, tokens) = tokens();
        for bad in ["", "   ", &"n".repeat(101)] {
            assert!(matches!(
                tokens.create("alice", bad, None, t(0)).await,
                Err(AuthError::TokenName { .. })
            ));
        }
    }

    #[test]
    fn parse_splits_id_and_secret() {
        let secret = [0xFFu8; 32];
        let text = format!("cairn_0123456789abcdef_{}", URL_SAFE_NO_PAD.encode(secret));
        assert!(
            text.matches('_').count() > 2,
            "base64url secret contains '_'"
        );
        let (id, bytes) = parse(&text).expect("parse");
        assert_eq!((id, bytes), ("0123456789abcdef", secret));
        assert!(parse("cairn_0123456789ABCDEF_x").is_none(), "uppercase id");
    }
}
