//! Server-side browser sessions.
//!
//! A session id is 32 random bytes in unpadded base64url (43 characters), handed to the browser
//! in a cookie. The store keeps only its SHA-256 (a copy of the database yields no usable
//! cookies), with who it belongs to, when it was created and when it was last seen.
//!
//! Invariants:
//! - Every login creates a new id (rotation); ids are never reused or derived from old ones.
//! - A session ends `absolute_timeout` after creation however active it is, and `idle_timeout`
//!   after it was last seen; an ended session is deleted when next presented, and by
//!   [`Sessions::purge_expired`].
//! - `last_seen` is written at most once per [`TOUCH_RESOLUTION`] per session: reading a page
//!   does not cost a durable write per request. (The idle timeout is therefore exact to within
//!   that resolution.)

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuthError, Principal, PrincipalKind, add};
use crate::store::{JsonTable, Store, StoreError, tables};

/// `last_seen` is refreshed at most this often.
pub const TOUCH_RESOLUTION: Duration = Duration::from_secs(60);

const ID_BYTES: usize = 32;
/// Length of an encoded id: 32 bytes in unpadded base64.
const ID_CHARS: usize = 43;

/// A session id. `Debug` is redacted: the id is a bearer credential.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    fn generate() -> SessionId {
        SessionId(URL_SAFE_NO_PAD.encode(rand::random::<[u8; ID_BYTES]>()))
    }

    /// The id as sent in the cookie.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// How the session's principal authenticated (tokens never get sessions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SessionKind {
    /// Local account password login.
    Local,
    /// SSO login.
    Sso {
        /// The identity provider's issuer.
        issuer: String,
    },
}

/// A session as stored (keyed by the hash of its id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// User name.
    pub subject: String,
    /// SSO groups at login.
    pub groups: Vec<String>,
    /// How the user authenticated.
    pub kind: SessionKind,
    /// Login time.
    pub created_at: Timestamp,
    /// Last time the session was presented (at [`TOUCH_RESOLUTION`]).
    pub last_seen: Timestamp,
}

const SESSIONS: JsonTable<SessionRecord> = JsonTable::new(tables::SESSIONS);

/// Sessions over the store.
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Store,
    idle: Duration,
    absolute: Duration,
}

impl Sessions {
    /// Sessions in `store` with the given timeouts.
    pub fn new(store: Store, idle_timeout: Duration, absolute_timeout: Duration) -> Sessions {
        Sessions {
            store,
            idle: idle_timeout,
            absolute: absolute_timeout,
        }
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    /// The absolute timeout.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute
    }

    /// Starts a new session for `principal` (always a new id).
    pub async fn create(
        &self,
        principal: &Principal,
        now: Timestamp,
    ) -> Result<SessionId, AuthError> {
        let kind = match &principal.kind {
            PrincipalKind::Local => SessionKind::Local,
            PrincipalKind::Sso { issuer } => SessionKind::Sso {
                issuer: issuer.clone(),
            },
            // A token is already a credential; wrapping it in a session would outlive a revoke.
            PrincipalKind::Token { .. }
            | PrincipalKind::ProjectToken(_)
            | PrincipalKind::ServiceAccount => {
                return Err(AuthError::Unauthenticated);
            }
        };
        let id = SessionId::generate();
        let key = key_of(id.as_str());
        let record = SessionRecord {
            subject: principal.subject.clone(),
            groups: principal.groups.clone(),
            kind,
            created_at: now,
            last_seen: now,
        };
        self.store
            .write(move |txn| SESSIONS.insert(txn, &key, &record))
            .await?;
        Ok(id)
    }

    /// The principal of session `id` at `now`; `Unauthenticated` if unknown, `Expired` (and the
    /// session deleted) if past a timeout.
    pub async fn get(&self, id: &str, now: Timestamp) -> Result<Principal, AuthError> {
        if !well_formed(id) {
            return Err(AuthError::Unauthenticated);
        }
        let key = key_of(id);
        let record = self
            .store
            .read(|txn| SESSIONS.get(txn, &key))?
            .ok_or(AuthError::Unauthenticated)?;
        if self.expired(&record, now) {
            self.store
                .write(move |txn| SESSIONS.remove(txn, &key))
                .await?;
            return Err(AuthError::Expired);
        }
        if add(record.last_seen, TOUCH_RESOLUTION) <= now {
            self.store
                .write(move |txn| -> Result<(), StoreError> {
                    // Only touch a session that still exists: a concurrent logout wins.
                    if let Some(mut current) = SESSIONS.get_in(txn, &key)? {
                        current.last_seen = now;
                        SESSIONS.insert(txn, &key, &current)?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(Principal {
            subject: record.subject,
            groups: record.groups,
            kind: match record.kind {
                SessionKind::Local => PrincipalKind::Local,
                SessionKind::Sso { issuer } => PrincipalKind::Sso { issuer },
            },
            session_id: Some(SessionId(id.to_owned())),
        })
    }

    fn expired(&self, record: &SessionRecord, now: Timestamp) -> bool {
        add(record.created_at, self.absolute) <= now || add(record.last_seen, self.idle) <= now
    }

    /// Ends session `id`; returns whether it existed.
    pub async fn delete(&self, id: &str) -> Result<bool, AuthError> {
        if !well_formed(id) {
            return Ok(false);
        }
        let key = key_of(id);
        Ok(self
            .store
            .write(move |txn| SESSIONS.remove(txn, &key))
            .await?)
    }

    /// Ends every session of `subject` (after a password change); returns how many.
    pub async fn delete_for_subject(&self, subject: &str) -> Result<usize, AuthError> {
        let subject = subject.to_owned();
        Ok(self
            .store
            .write(move |txn| SESSIONS.retain_in(txn, |_, r| r.subject != subject))
            .await?)
    }

    /// Deletes every session past a timeout at `now`; returns how many.
    pub async fn purge_expired(&self, now: Timestamp) -> Result<usize, AuthError> {
        let this = self.clone();
        Ok(self
            .store
            .write(move |txn| SESSIONS.retain_in(txn, |_, r| !this.expired(r, now)))
            .await?)
    }
}

fn well_formed(id: &str) -> bool {
    id.len() == ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The store key of a session id.
fn key_of(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    fn sessions() -> (tempfile::TempDir, Sessions) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let s = Sessions::new(
            store,
            Duration::from_secs(30 * 60),
            Duration::from_secs(24 * 3600),
        );
        (dir, s)
    }

    #[tokio::test]
    async fn create_get_delete() {
        let (_dir, s) = sessions();
        let id = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        assert_eq!(id.as_str().len(), ID_CHARS);
        assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
        let p = s.get(id.as_str(), t(1)).await.expect("get");
        assert_eq!(p.subject, "alice");
        assert_eq!(p.kind, PrincipalKind::Local);
        assert_eq!(p.session_id(), Some(id.as_str()));
        assert!(s.delete(id.as_str()).await.expect("delete"));
        assert!(!s.delete(id.as_str()).await.expect("delete again"));
        assert!(matches!(
            s.get(id.as_str(), t(2)).await,
            Err(AuthError::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn every_login_gets_a_new_id() {
        let (_dir, s) = sessions();
        let a = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        let b = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        assert_ne!(a, b);
        // Both are valid until ended.
        s.get(a.as_str(), t(1)).await.expect("a");
        s.get(b.as_str(), t(1)).await.expect("b");
    }

    #[tokio::test]
    async fn ids_are_stored_hashed() {
        let (_dir, s) = sessions();
        let id = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        let keys: Vec<String> = s
            .store
            .read(|txn| SESSIONS.list(txn))
            .expect("list")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, [key_of(id.as_str())]);
        assert_ne!(keys[0], id.as_str());
    }

    #[tokio::test]
    async fn idle_timeout() {
        let (_dir, s) = sessions();
        let id = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        // Used every 20 minutes: stays alive.
        for minute in [20, 40, 60, 80] {
            s.get(id.as_str(), t(minute * 60)).await.expect("active");
        }
        // 30 minutes unused: gone, and deleted.
        assert!(matches!(
            s.get(id.as_str(), t(110 * 60)).await,
            Err(AuthError::Expired)
        ));
        assert!(matches!(
            s.get(id.as_str(), t(110 * 60)).await,
            Err(AuthError::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn absolute_timeout() {
        let (_dir, s) = sessions();
        let id = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        let mut now = 0;
        while now < 24 * 3600 - 600 {
            now += 600;
            s.get(id.as_str(), t(now)).await.expect("active");
        }
        assert!(matches!(
            s.get(id.as_str(), t(24 * 3600)).await,
            Err(AuthError::Expired)
        ));
    }

    #[tokio::test]
    async fn last_seen_written_at_most_once_a_minute() {
        let (_dir, s) = sessions();
        let id = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        let before = s.store.commit_count();
        for sec in [1, 10, 59] {
            s.get(id.as_str(), t(sec)).await.expect("get");
        }
        assert_eq!(
            s.store.commit_count(),
            before,
            "no writes within the minute"
        );
        s.get(id.as_str(), t(60)).await.expect("get");
        assert_eq!(s.store.commit_count(), before + 1);
    }

    #[tokio::test]
    async fn delete_for_subject_and_purge() {
        let (_dir, s) = sessions();
        let a1 = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        let a2 = s
            .create(&Principal::local("alice"), t(0))
            .await
            .expect("create");
        let b = s
            .create(&Principal::local("bob"), t(0))
            .await
            .expect("create");
        assert_eq!(s.delete_for_subject("alice").await.expect("delete"), 2);
        for id in [&a1, &a2] {
            assert!(matches!(
                s.get(id.as_str(), t(1)).await,
                Err(AuthError::Unauthenticated)
            ));
        }
        let c = s
            .create(&Principal::local("carol"), t(1700))
            .await
            .expect("create");
        // At 31 minutes bob's session (unused since 0) is idle; carol's is not.
        assert_eq!(s.purge_expired(t(31 * 60)).await.expect("purge"), 1);
        assert!(matches!(
            s.get(b.as_str(), t(31 * 60)).await,
            Err(AuthError::Unauthenticated)
        ));
        s.get(c.as_str(), t(31 * 60)).await.expect("carol alive");
    }

    #[tokio::test]
    async fn sso_sessions_keep_groups_and_tokens_get_none() {
        let (_dir, s) = sessions();
        let sso = Principal {
            subject: "sub-1".into(),
            groups: vec!["team-a".into()],
            kind: PrincipalKind::Sso {
                issuer: "https://idp".into(),
            },
            session_id: None,
        };
        let id = s.create(&sso, t(0)).await.expect("create");
        let p = s.get(id.as_str(), t(1)).await.expect("get");
        assert_eq!((p.groups, p.kind), (sso.groups.clone(), sso.kind.clone()));
        let token = Principal {
            kind: PrincipalKind::Token { id: "x".into() },
            ..Principal::local("alice")
        };
        assert!(matches!(
            s.create(&token, t(0)).await,
            Err(AuthError::Unauthenticated)
        ));
    }

    #[tokio::test]
    async fn malformed_ids_are_rejected_without_lookup() {
        let (_dir, s) = sessions();
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert!(
                matches!(s.get(bad, t(0)).await, Err(AuthError::Unauthenticated)),
                "{bad}"
            );
        }
    }
}
