//! Password hashing (argon2id, PHC strings), the new-password rule, and password generation.
//!
//! Invariants:
//! - Only PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`) are stored; verification
//!   reads the parameters from the stored string, so raising the cost later keeps old hashes
//!   valid.
//! - Verifying against a missing account costs the same as against a real one: callers use
//!   [`Hasher::verify_or_waste`] with `None`, which checks a dummy hash made with the same
//!   parameters.

use std::sync::{Arc, OnceLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use rand::RngExt;
use rand::distr::Alphanumeric;

/// Shortest password accepted when setting one (Argo CD's default password pattern is 8-32).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted: bounds the work one request can cause.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Errors of hashing and of the new-password rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// The new password is shorter than [`MIN_PASSWORD_CHARS`].
    #[error("password too short: expected at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// The new password is longer than [`MAX_PASSWORD_CHARS`].
    #[error("password too long: expected at most {MAX_PASSWORD_CHARS} characters")]
    TooLong,
    /// The argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// Hashing failed (e.g. the random salt could not be generated).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes and verifies passwords with argon2id at fixed parameters.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    /// A hash of a random password, made on first use, verified when there is no real hash.
    dummy: Arc<OnceLock<Option<String>>>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("m_cost_kib", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("p_cost", &self.params.p_cost())
            .finish()
    }
}

impl Default for Hasher {
    /// OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane), the argon2 crate's default.
    fn default() -> Self {
        Self::from_params(Params::default())
    }
}

impl Hasher {
    /// A hasher with explicit argon2id costs: memory in KiB, passes, lanes. Low costs are for
    /// tests only.
    pub fn with_costs(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Hasher, PasswordError> {
        let params = Params::new(m_cost_kib, t_cost, p_cost, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Self::from_params(params))
    }

    /// The cheapest parameters argon2 allows: for tests, where the cost is pure waiting.
    pub fn insecure_fast() -> Hasher {
        // Params::MIN_* are valid by construction; fall back to the default if that ever changes.
        Self::with_costs(Params::MIN_M_COST, Params::MIN_T_COST, Params::MIN_P_COST)
            .unwrap_or_default()
    }

    fn from_params(params: Params) -> Hasher {
        Hasher {
            params,
            dummy: Arc::new(OnceLock::new()),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Hashes `password` with a fresh random salt into a PHC string.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        self.argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }

    /// Whether `password` matches the PHC string `hash`. A malformed hash never matches.
    pub fn verify(&self, password: &str, hash: &str) -> bool {
        // Parameters come from the hash itself, not from `self`.
        PasswordVerifier::<str>::verify_password(&self.argon2(), password.as_bytes(), hash).is_ok()
    }

    /// Verifies against `hash`, or, when there is none, spends the same time on a dummy hash and
    /// returns false: the caller's timing does not reveal whether an account exists.
    pub fn verify_or_waste(&self, password: &str, hash: Option<&str>) -> bool {
        match hash {
            Some(hash) => self.verify(password, hash),
            None => {
                let dummy = self
                    .dummy
                    .get_or_init(|| self.hash(&generate_password(20)).ok());
                if let Some(dummy) = dummy {
                    let _ = self.verify(password, dummy);
                }
                false
            }
        }
    }
}

/// Checks the rule for a new password.
pub fn check_new_password(password: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// A random password of `len` ASCII letters and digits (about 5.95 bits each), from the
/// thread-local CSPRNG seeded by the OS.
pub fn generate_password(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = Hasher::insecure_fast();
        let phc = h.hash("correct horse").expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(h.verify("correct horse", &phc));
        assert!(!h.verify("correct horsE", &phc));
        assert!(!h.verify("", &phc));
        // Salted: the same password hashes differently each time.
        assert_ne!(phc, h.hash("correct horse").expect("hash"));
    }

    #[test]
    fn verification_uses_parameters_from_the_hash() {
        let cheap = Hasher::insecure_fast();
        let phc = cheap.hash("pw-123456").expect("hash");
        let other = Hasher::with_costs(64, 2, 1).expect("params");
        assert!(other.verify("pw-123456", &phc));
    }

    #[test]
    fn malformed_hash_never_matches() {
        let h = Hasher::insecure_fast();
        for bad in [
            "",
            "plain",
            "$argon2id$v=19$m=8,t=1,p=1$",
            "$2b$12$abcdefghijklmnopqrstuv",
        ] {
            assert!(!h.verify("plain", bad), "{bad}");
        }
    }

    #[test]
    fn verify_or_waste_without_hash_is_false() {
        let h = Hasher::insecure_fast();
        assert!(!h.verify_or_waste("anything", None));
        assert!(!h.verify_or_waste("anything", None), "dummy is reused");
        let phc = h.hash("anything").expect("hash");
        assert!(h.verify_or_waste("anything", Some(&phc)));
    }

    #[test]
    fn new_password_rule() {
        assert_eq!(check_new_password("short"), Err(PasswordError::TooShort));
        assert_eq!(check_new_password("1234567"), Err(PasswordError::TooShort));
        assert_eq!(check_new_password("12345678"), Ok(()));
        // Counted in characters, not bytes.
        assert_eq!(check_new_password("ééééééé"), Err(PasswordError::TooShort));
        assert_eq!(
            check_new_password(&"x".repeat(129)),
            Err(PasswordError::TooLong)
        );
    }

    #[test]
    fn generated_passwords() {
        let a = generate_password(20);
        let b = generate_password(20);
        assert_eq!(a.len(), 20);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn bad_params_are_reported() {
        assert!(matches!(
            Hasher::with_costs(1, 1, 1),
            Err(PasswordError::Params(_))
        ));
    }

    #[test]
    fn debug_shows_costs_only() {
        let text = format!("{:?}", Hasher::default());
        assert!(text.contains("m_cost_kib: 19456"), "{text}");
    }
}
