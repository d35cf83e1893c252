//! Local accounts: the built-in `admin` plus `[accounts.users.<name>]` from the configuration.
//!
//! The configuration says which accounts exist, whether they are enabled and what they may do;
//! the store keeps their credentials (`accounts` table) and consecutive login failures
//! (`login_failures` table).
//!
//! Invariants:
//! - At first start the admin gets a random password, returned once (for the log) and kept in
//!   `<data_dir>/initial-admin-password` (mode 0600) until the admin password is changed, as
//!   Argo CD keeps `argocd-initial-admin-secret`.
//! - A failed login never reveals whether the account exists: unknown accounts cost the same
//!   argon2 verification, answer the same error, and are counted and locked the same way.
//! - After `max_failed_logins` consecutive failures (within the lockout window) the name is locked
//!   for `lockout`; while locked even the right password fails with `Locked`. A success resets
//!   the count.
//! - Whether an account is disabled (or lacks the `login` capability) is only revealed to a
//!   caller who presented its correct password.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::password::{self, Hasher};
use super::{AuthError, Principal, Secret, add, until};
use crate::config::{AccountsConfig, Capability, Config};
use crate::store::{JsonTable, Store, StoreError, tables};

/// Name of the built-in administrator account.
pub const ADMIN: &str = "admin";

/// File in the data directory holding the initial admin password until it is changed.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Length of the generated initial admin password (alphanumeric, ~119 bits).
const INITIAL_PASSWORD_CHARS: usize = 20;

/// Failure records are only kept for plausible account names, so junk names cannot bloat the
/// store (any name that can exist passes `config::is_account_name`).
const MAX_TRACKED_NAME_CHARS: usize = 64;

/// Credentials of one account, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// argon2id PHC string; `None` until a password is set.
    pub password_hash: Option<String>,
    /// When the password was last set.
    pub password_changed_at: Option<Timestamp>,
    /// When the record was created.
    pub created_at: Timestamp,
}

/// Consecutive login failures of one name, as stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    /// Failures since the last success (within the window).
    pub failures: u32,
    /// The most recent failure.
    pub last_failure: Option<Timestamp>,
    /// Logins are refused until then.
    pub locked_until: Option<Timestamp>,
}

const ACCOUNTS: JsonTable<AccountRecord> = JsonTable::new(tables::ACCOUNTS);
const FAILURES: JsonTable<FailureRecord> = JsonTable::new(tables::LOGIN_FAILURES);

/// An account as listed by the API (no password material).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    /// Account name.
    pub name: String,
    /// Whether it may authenticate.
    pub enabled: bool,
    /// `login` and/or `apiKey`.
    pub capabilities: Vec<&'static str>,
    /// Whether a password has been set.
    pub password_set: bool,
    /// When the password was last set.
    pub password_changed_at: Option<Timestamp>,
}

/// What the configuration says about one account.
#[derive(Debug, Clone, PartialEq)]
struct Definition {
    enabled: bool,
    capabilities: Vec<Capability>,
}

/// Local accounts over the store.
#[derive(Debug)]
pub struct Accounts {
    store: Store,
    hasher: Hasher,
    settings: AccountsConfig,
    data_dir: PathBuf,
}

impl Accounts {
    /// Accounts as configured in `config`, credentials in `store`.
    pub fn new(store: Store, config: &Config, hasher: Hasher) -> Accounts {
        Accounts {
            store,
            hasher,
            settings: config.accounts.clone(),
            data_dir: config.server.data_dir.clone(),
        }
    }

    fn definition(&self, name: &str) -> Option<Definition> {
        if name == ADMIN {
            // cairn's admin may also hold API tokens (`cairn account generate-token`), unlike
            // Argo CD's, whose admin is login-only.
            return Some(Definition {
                enabled: self.settings.admin_enabled,
                capabilities: vec![Capability::Login, Capability::ApiKey],
            });
        }
        self.settings.users.get(name).map(|u| Definition {
            enabled: u.enabled,
            capabilities: u.capabilities.clone(),
        })
    }

    /// Whether any local account may log in with a password: the admin when enabled, or an
    /// enabled `[accounts.users.*]` with the `login` capability. False means the login page
    /// shows SSO only (Argo CD's `userLoginsDisabled`).
    pub fn password_login_possible(&self) -> bool {
        self.settings.admin_enabled
            || self
                .settings
                .users
                .values()
                .any(|u| u.enabled && u.capabilities.contains(&Capability::Login))
    }

    /// Fails unless `name` is a configured account.
    pub fn require(&self, name: &str) -> Result<(), AuthError> {
        self.definition(name)
            .map(drop)
            .ok_or_else(|| AuthError::AccountNotFound {
                account: name.to_owned(),
            })
    }

    /// Fails unless `name` exists, is enabled and has `capability`.
    pub fn check_can(&self, name: &str, capability: Capability) -> Result<(), AuthError> {
        let def = self
            .definition(name)
            .ok_or_else(|| AuthError::AccountNotFound {
                account: name.to_owned(),
            })?;
        if !def.enabled {
            return Err(AuthError::Disabled {
                account: name.to_owned(),
            });
        }
        if !def.capabilities.contains(&capability) {
            return Err(AuthError::MissingCapability {
                account: name.to_owned(),
                capability: capability.as_str(),
            });
        }
        Ok(())
    }

    /// Creates the admin password at first start. Returns it when it was just created; `None`
    /// when the admin already has a password or is disabled.
    pub async fn ensure_admin(&self, now: Timestamp) -> Result<Option<Secret>, AuthError> {
        if !self.settings.admin_enabled {
            return Ok(None);
        }
        let existing = self.store.read(|txn| ACCOUNTS.get(txn, ADMIN))?;
        if existing.is_some_and(|r| r.password_hash.is_some()) {
            return Ok(None);
        }
        let password = password::generate_password(INITIAL_PASSWORD_CHARS);
        let hash = self.hash(&password).await?;
        // The file first: if the process dies before the commit, the next start simply makes a
        // new password and overwrites the file; the other order could lose the only copy.
        let file = self.data_dir.join(INITIAL_PASSWORD_FILE);
        write_private_file(&file, &password).map_err(|source| AuthError::InitialPasswordFile {
            path: file.clone(),
            source,
        })?;
        let created = self
            .store
            .write(move |txn| -> Result<bool, StoreError> {
                let current = ACCOUNTS.get_in(txn, ADMIN)?;
                if current.as_ref().is_some_and(|r| r.password_hash.is_some()) {
                    return Ok(false);
                }
                let record = AccountRecord {
                    password_hash: Some(hash.clone()),
                    password_changed_at: None,
                    created_at: current.map_or(now, |r| r.created_at),
                };
                ACCOUNTS.insert(txn, ADMIN, &record)?;
                Ok(true)
            })
            .await?;
        Ok(created.then(|| Secret::new(password)))
    }

    /// Checks a password login at time `now`. See the module invariants for lockout and for what
    /// errors reveal.
    pub async fn verify_login(
        &self,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<Principal, AuthError> {
        let definition = self.definition(username);
        let (record, failures) = self.store.read(|txn| -> Result<_, StoreError> {
            Ok((ACCOUNTS.get(txn, username)?, FAILURES.get(txn, username)?))
        })?;
        let locked_until = failures
            .and_then(|f| f.locked_until)
            .filter(|until| *until > now);
        // While locked, or when there is no such account or password, verify against a dummy
        // hash: the answer time is the same in every case.
        let hash = match (&definition, locked_until) {
            (Some(_), None) => record.and_then(|r| r.password_hash),
            _ => None,
        };
        let matched = self.verify(password, hash).await?;
        if let Some(locked_until) = locked_until {
            return Err(AuthError::Locked {
                retry_after: until(now, locked_until),
            });
        }
        if !matched {
            self.record_failure(username, now).await?;
            return Err(AuthError::BadCredentials);
        }
        if failures_pending(&self.store, username)? {
            let name = username.to_owned();
            self.store
                .write(move |txn| FAILURES.remove(txn, &name))
                .await?;
        }
        self.check_can(username, Capability::Login)?;
        Ok(Principal::local(username))
    }

    async fn record_failure(&self, username: &str, now: Timestamp) -> Result<(), AuthError> {
        if username.chars().count() > MAX_TRACKED_NAME_CHARS {
            return Ok(());
        }
        let max = self.settings.max_failed_logins;
        if max == 0 {
            return Ok(());
        }
        let lockout = self.settings.lockout;
        let name = username.to_owned();
        self.store
            .write(move |txn| -> Result<(), StoreError> {
                let current = FAILURES.get_in(txn, &name)?.unwrap_or_default();
                let record = next_failure(current, now, max, lockout);
                FAILURES.insert(txn, &name, &record)
            })
            .await?;
        Ok(())
    }

    /// Changes `target`'s password to `new_password` after checking `actor`'s own
    /// `actor_password` (with the same lockout as a login). Removes the initial admin password
    /// file when the admin password changes.
    pub async fn change_password(
        &self,
        actor: &str,
        actor_password: &str,
        target: &str,
        new_password: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        password::check_new_password(new_password).map_err(AuthError::NewPassword)?;
        self.verify_login(actor, actor_password, now).await?;
        self.set_password(target, new_password, now).await
    }

    /// Sets `target`'s password without checking anyone's current password (administrative
    /// tooling; the API goes through [`Accounts::change_password`]).
    pub async fn set_password(
        &self,
        target: &str,
        new_password: &str,
        now: Timestamp,
    ) -> Result<(), AuthError> {
        password::check_new_password(new_password).map_err(AuthError::NewPassword)?;
        self.require(target)?;
        let hash = self.hash(new_password).await?;
        let name = target.to_owned();
        self.store
            .write(move |txn| -> Result<(), StoreError> {
                let created_at = ACCOUNTS.get_in(txn, &name)?.map_or(now, |r| r.created_at);
                let record = AccountRecord {
                    password_hash: Some(hash.clone()),
                    password_changed_at: Some(now),
                    created_at,
                };
                ACCOUNTS.insert(txn, &name, &record)?;
                // A new password also lifts a lock.
                FAILURES.remove(txn, &name)?;
                Ok(())
            })
            .await?;
        if target == ADMIN {
            let file = self.data_dir.join(INITIAL_PASSWORD_FILE);
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(AuthError::InitialPasswordFile { path: file, source });
                }
            }
        }
        Ok(())
    }

    /// Every configured account, admin first, then by name.
    pub fn list(&self) -> Result<Vec<AccountInfo>, AuthError> {
        let names = std::iter::once(ADMIN.to_owned())
            .chain(self.settings.users.keys().cloned())
            .collect::<Vec<_>>();
        let records = self.store.read(|txn| -> Result<Vec<_>, StoreError> {
            names
                .iter()
                .map(|n| ACCOUNTS.get(txn, n))
                .collect::<Result<Vec<_>, _>>()
        })?;
        let mut out = Vec::new();
        for (name, record) in names.into_iter().zip(records) {
            let Some(def) = self.definition(&name) else {
                continue;
            };
            out.push(AccountInfo {
                enabled: def.enabled,
                capabilities: def.capabilities.iter().map(|c| c.as_str()).collect(),
                password_set: record.as_ref().is_some_and(|r| r.password_hash.is_some()),
                password_changed_at: record.and_then(|r| r.password_changed_at),
                name,
            });
        }
        Ok(out)
    }

    /// Removes failure records whose lock has ended and whose window has passed.
    pub async fn purge_failures(&self, now: Timestamp) -> Result<usize, AuthError> {
        let lockout = self.settings.lockout;
        let removed = self
            .store
            .write(move |txn| FAILURES.retain_in(txn, |_, r| !failure_is_stale(r, now, lockout)))
            .await?;
        Ok(removed)
    }

    async fn hash(&self, password: &str) -> Result<String, AuthError> {
        let hasher = self.hasher.clone();
        let password = Secret::new(password.to_owned());
        // argon2 is deliberately slow: keep it off the async workers.
        tokio::task::spawn_blocking(move || hasher.hash(password.expose()))
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?
            .map_err(|e| AuthError::Hashing(e.to_string()))
    }

    async fn verify(&self, password: &str, hash: Option<String>) -> Result<bool, AuthError> {
        let hasher = self.hasher.clone();
        let password = Secret::new(password.to_owned());
        tokio::task::spawn_blocking(move || {
            hasher.verify_or_waste(password.expose(), hash.as_deref())
        })
        .await
        .map_err(|e| AuthError::Hashing(e.to_string()))
    }
}

fn failures_pending(store: &Store, name: &str) -> Result<bool, StoreError> {
    store.read(|txn| FAILURES.get(txn, name).map(|r| r.is_some()))
}

/// The failure record after one more failure at `now`. Pure.
pub fn next_failure(
    current: FailureRecord,
    now: Timestamp,
    max_failures: u32,
    lockout: Duration,
) -> FailureRecord {
    // A lock that has ended, or failures older than the window, start a new count.
    let current = if failure_is_stale(&current, now, lockout) {
        FailureRecord::default()
    } else {
        current
    };
    let failures = current.failures.saturating_add(1);
    let locked_until = (max_failures > 0 && failures >= max_failures).then(|| add(now, lockout));
    FailureRecord {
        failures: if locked_until.is_some() { 0 } else { failures },
        last_failure: Some(now),
        locked_until: locked_until.or(current.locked_until.filter(|u| *u > now)),
    }
}

/// Whether a failure record no longer affects anything at `now`: no active lock, and the last
/// failure is at least one lockout window old.
fn failure_is_stale(record: &FailureRecord, now: Timestamp, lockout: Duration) -> bool {
    let locked = record.locked_until.is_some_and(|u| u > now);
    let recent = record.last_failure.is_some_and(|t| add(t, lockout) > now);
    !locked && !recent
}

/// Reads the initial admin password kept in `data_dir`, if it has not been changed yet.
pub fn read_initial_password(data_dir: &Path) -> Result<Option<Secret>, AuthError> {
    let file = data_dir.join(INITIAL_PASSWORD_FILE);
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some(Secret::new(text.trim_end().to_owned()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuthError::InitialPasswordFile { path: file, source }),
    }
}

/// Writes `content` to `path` with mode 0600, atomically (temporary file, fsync, rename).
fn write_private_file(path: &Path, content: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(content.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserConfig;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("timestamp")
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        data_dir: PathBuf,
        accounts: Accounts,
    }

    fn fixture(edit: impl FnOnce(&mut Config)) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let data_dir = dir.path().to_path_buf();
        let mut config = Config::with_data_dir(&data_dir);
        config.accounts.users.insert(
            "alice".into(),
            UserConfig {
                capabilities: vec![Capability::Login, Capability::ApiKey],
                enabled: true,
            },
        );
        config.accounts.users.insert(
            "ci".into(),
            UserConfig {
                capabilities: vec![Capability::ApiKey],
                enabled: true,
            },
        );
        config.accounts.users.insert(
            "olduser".into(),
            UserConfig {
                capabilities: vec![Capability::Login],
                enabled: false,
            },
        );
        edit(&mut config);
        let store = Store::open(&data_dir).expect("store");
        let accounts = Accounts::new(store, &config, Hasher::insecure_fast());
        Fixture {
            _dir: dir,
            data_dir,
            accounts,
        }
    }

    #[tokio::test]
    async fn initial_admin_password_once_and_file() {
        let f = fixture(|_| {});
        let pw = f
            .accounts
            .ensure_admin(t(0))
            .await
            .expect("ensure")
            .expect("created");
        assert_eq!(pw.expose().len(), INITIAL_PASSWORD_CHARS);
        assert!(pw.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(format!("{pw:?}"), "Secret(<redacted>)");
        // Second start: nothing new.
        assert!(
            f.accounts
                .ensure_admin(t(1))
                .await
                .expect("ensure")
                .is_none()
        );
        // The file shows it, owner-only.
        let file = f.data_dir.join(INITIAL_PASSWORD_FILE);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let shown = read_initial_password(&f.data_dir)
            .expect("read")
            .expect("present");
        assert_eq!(shown.expose(), pw.expose());
        // It logs in.
        let p = f
            .accounts
            .verify_login(ADMIN, pw.expose(), t(2))
            .await
            .expect("login");
        assert_eq!(p, Principal::local(ADMIN));
        // Changing the password removes the file.
        f.accounts
            .change_password(ADMIN, pw.expose(), ADMIN, "a-new-password", t(3))
            .await
            .expect("change");
        assert!(read_initial_password(&f.data_dir).expect("read").is_none());
        assert!(
            f.accounts
                .ensure_admin(t(4))
                .await
                .expect("ensure")
                .is_none()
        );
        assert!(matches!(
            f.accounts.verify_login(ADMIN, pw.expose(), t(5)).await,
            Err(AuthError::BadCredentials)
        ));
        f.accounts
            .verify_login(ADMIN, "a-new-password", t(6))
            .await
            .expect("new password");
    }

    #[test]
    fn password_login_is_possible_while_an_enabled_account_may_log_in() {
        assert!(fixture(|_| {}).accounts.password_login_possible());
        // alice (login) keeps it possible without the admin.
        assert!(
            fixture(|c| c.accounts.admin_enabled = false)
                .accounts
                .password_login_possible()
        );
        // Left: ci (apiKey only) and olduser (disabled): SSO only.
        let f = fixture(|c| {
            c.accounts.admin_enabled = false;
            c.accounts.users.remove("alice");
        });
        assert!(!f.accounts.password_login_possible());
    }

    #[tokio::test]
    async fn disabled_admin_gets_no_password() {
        let f = fixture(|c| c.accounts.admin_enabled = false);
        assert!(
            f.accounts
                .ensure_admin(t(0))
                .await
                .expect("ensure")
                .is_none()
        );
        assert!(read_initial_password(&f.data_dir).expect("read").is_none());
    }

    #[tokio::test]
    async fn disabled_account_cannot_log_in() {
        let f = fixture(|_| {});
        f.accounts
            .set_password("olduser", "password-1", t(0))
            .await
            .expect("set");
        // Right password: disabled is revealed.
        assert!(matches!(
            f.accounts.verify_login("olduser", "password-1", t(1)).await,
            Err(AuthError::Disabled { .. })
        ));
        // Wrong password: just bad credentials.
        assert!(matches!(
            f.accounts.verify_login("olduser", "password-2", t(2)).await,
            Err(AuthError::BadCredentials)
        ));
        // Admin disabled through the configuration.
        let f = fixture(|c| c.accounts.admin_enabled = false);
        f.accounts
            .set_password(ADMIN, "password-1", t(0))
            .await
            .expect("set");
        assert!(matches!(
            f.accounts.verify_login(ADMIN, "password-1", t(1)).await,
            Err(AuthError::Disabled { .. })
        ));
    }

    #[tokio::test]
    async fn api_key_only_account_cannot_log_in() {
        let f = fixture(|_| {});
        f.accounts
            .set_password("ci", "password-1", t(0))
            .await
            .expect("set");
        assert!(matches!(
            f.accounts.verify_login("ci", "password-1", t(1)).await,
            Err(AuthError::MissingCapability {
                capability: "login",
                ..
            })
        ));
        assert!(f.accounts.check_can("ci", Capability::ApiKey).is_ok());
        assert!(matches!(
            f.accounts.check_can("nobody", Capability::ApiKey),
            Err(AuthError::AccountNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn unknown_user_and_missing_password_look_like_bad_password() {
        let f = fixture(|_| {});
        for (user, pw) in [("nobody", "whatever1"), ("alice", "whatever1")] {
            assert!(
                matches!(
                    f.accounts.verify_login(user, pw, t(0)).await,
                    Err(AuthError::BadCredentials)
                ),
                "{user}"
            );
        }
    }

    #[tokio::test]
    async fn five_failures_lock_the_account() {
        let f = fixture(|_| {});
        f.accounts
            .set_password("alice", "right-password", t(0))
            .await
            .expect("set");
        for i in 0..5 {
            assert!(matches!(
                f.accounts
                    .verify_login("alice", "wrong-password", t(10 + i))
                    .await,
                Err(AuthError::BadCredentials)
            ));
        }
        // Locked: even the right password fails, with the remaining time.
        match f
            .accounts
            .verify_login("alice", "right-password", t(20))
            .await
        {
            Err(AuthError::Locked { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(300 - 6));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        // After the lockout the right password works and resets the count.
        f.accounts
            .verify_login("alice", "right-password", t(14 + 300))
            .await
            .expect("lock ended");
        for i in 0..4 {
            let _ = f.accounts.verify_login("alice", "wrong", t(400 + i)).await;
        }
        f.accounts
            .verify_login("alice", "right-password", t(410))
            .await
            .expect("four failures do not lock");
    }

    #[tokio::test]
    async fn unknown_accounts_lock_too() {
        let f = fixture(|_| {});
        for i in 0..5 {
            let _ = f.accounts.verify_login("ghost", "pw", t(i)).await;
        }
        assert!(matches!(
            f.accounts.verify_login("ghost", "pw", t(6)).await,
            Err(AuthError::Locked { .. })
        ));
    }

    #[tokio::test]
    async fn lockout_disabled_with_zero() {
        let f = fixture(|c| c.accounts.max_failed_logins = 0);
        f.accounts
            .set_password("alice", "right-password", t(0))
            .await
            .expect("set");
        for i in 0..10 {
            let _ = f.accounts.verify_login("alice", "wrong", t(i)).await;
        }
        f.accounts
            .verify_login("alice", "right-password", t(11))
            .await
            .expect("never locked");
    }

    #[tokio::test]
    async fn change_password_rules() {
        let f = fixture(|_| {});
        f.accounts
            .set_password(ADMIN, "admin-password", t(0))
            .await
            .expect("set");
        // Too short.
        assert!(matches!(
            f.accounts
                .change_password(ADMIN, "admin-password", ADMIN, "short", t(1))
                .await,
            Err(AuthError::NewPassword(_))
        ));
        // Wrong current password of the actor.
        assert!(matches!(
            f.accounts
                .change_password(ADMIN, "nope-nope", "alice", "alice-password", t(2))
                .await,
            Err(AuthError::BadCredentials)
        ));
        // Unknown target.
        assert!(matches!(
            f.accounts
                .change_password(ADMIN, "admin-password", "ghost", "ghost-password", t(3))
                .await,
            Err(AuthError::AccountNotFound { .. })
        ));
        // Admin sets alice's password with the admin's own current password.
        f.accounts
            .change_password(ADMIN, "admin-password", "alice", "alice-password", t(4))
            .await
            .expect("change");
        f.accounts
            .verify_login("alice", "alice-password", t(5))
            .await
            .expect("alice");
    }

    #[tokio::test]
    async fn list_has_no_password_material() {
        let f = fixture(|_| {});
        f.accounts
            .set_password("alice", "alice-password", t(7))
            .await
            .expect("set");
        let list = f.accounts.list().expect("list");
        let names: Vec<_> = list.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["admin", "alice", "ci", "olduser"]);
        let alice = &list[1];
        assert!(alice.password_set && alice.enabled);
        assert_eq!(alice.capabilities, ["login", "apiKey"]);
        assert_eq!(alice.password_changed_at, Some(t(7)));
        let json = serde_json::to_string(&list).expect("json");
        assert!(!json.contains("argon2"), "{json}");
        assert!(json.contains("passwordSet"), "{json}");
    }

    #[tokio::test]
    async fn purge_removes_only_stale_failures() {
        let f = fixture(|_| {});
        let _ = f.accounts.verify_login("alice", "wrong", t(0)).await;
        let _ = f.accounts.verify_login("bob", "wrong", t(200)).await;
        assert_eq!(f.accounts.purge_failures(t(301)).await.expect("purge"), 1);
        assert_eq!(f.accounts.purge_failures(t(301)).await.expect("purge"), 0);
        assert_eq!(f.accounts.purge_failures(t(501)).await.expect("purge"), 1);
    }

    #[test]
    fn next_failure_counts_locks_and_forgets() {
        let lockout = Duration::from_secs(300);
        let mut r = FailureRecord::default();
        for i in 1..5 {
            r = next_failure(r, t(i), 5, lockout);
            assert_eq!((r.failures, r.locked_until), (i as u32, None));
        }
        r = next_failure(r, t(5), 5, lockout);
        assert_eq!(r.locked_until, Some(t(305)));
        // A failure during the lock keeps the lock (it does not extend it).
        let during = next_failure(r.clone(), t(100), 5, lockout);
        assert_eq!(during.locked_until, Some(t(305)));
        // After the lock and the window: a fresh count.
        let after = next_failure(r, t(700), 5, lockout);
        assert_eq!((after.failures, after.locked_until), (1, None));
        // Failures older than the window are forgotten.
        let old = FailureRecord {
            failures: 4,
            last_failure: Some(t(0)),
            locked_until: None,
        };
        let r = next_failure(old, t(301), 5, lockout);
        assert_eq!((r.failures, r.locked_until), (1, None));
    }
}
