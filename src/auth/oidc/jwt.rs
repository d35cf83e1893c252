//! JWS compact tokens, JSON Web Keys and OpenID Connect ID-token validation. Pure: no I/O, the
//! clock is a parameter.
//!
//! Invariants:
//! - Only asymmetric algorithms of [`Alg`] are accepted; `none`, the `HS*` family and any other
//!   name are refused before a key is looked at (an `HS256` token "signed" with a public key is
//!   the classic confusion attack).
//! - A key is used only for the algorithm family its `kty` (and `crv`) allows, only when its
//!   `use` is absent or `sig`, and only when its own `alg`, if set, equals the token's.
//! - A token whose `kid` is not in the key set fails with [`OidcError::UnknownKey`], which the
//!   I/O shell takes as its cue to re-fetch the JWKS once; a token without `kid` is accepted only
//!   when exactly one compatible key exists.
//! - Claims are checked only after the signature verified: nothing unsigned is trusted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;

use super::OidcError;

/// Largest compact token accepted (bytes); an ID token is a few kilobytes at most.
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// Clock skew tolerated on `exp` and `iat` (seconds), as most relying parties allow.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// An ID token issued longer ago than this is refused (seconds): cairn validates it right after
/// the code exchange, so an old one is a replay.
pub const MAX_IAT_AGE_SECS: i64 = 10 * 60;

/// A signature algorithm cairn accepts (JWA names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// The allow-list: parses a JWA name, refusing everything not listed (`none`, `HS*`, ...).
    pub fn parse(name: &str) -> Result<Alg, OidcError> {
        Ok(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            "EdDSA" => Alg::EdDsa,
            other => {
                return Err(OidcError::AlgorithmNotAllowed {
                    alg: other.to_owned(),
                });
            }
        })
    }

    /// The JWA name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The hash `at_hash` uses for this algorithm (OIDC Core 3.1.3.6; SHA-512 for Ed25519).
    fn digest(self) -> &'static ring::digest::Algorithm {
        match self {
            Alg::Rs256 | Alg::Ps256 | Alg::Es256 => &ring::digest::SHA256,
            Alg::Rs384 | Alg::Ps384 | Alg::Es384 => &ring::digest::SHA384,
            Alg::Rs512 | Alg::Ps512 | Alg::EdDsa => &ring::digest::SHA512,
        }
    }
}

/// One JSON Web Key as published in a JWKS (only the members cairn uses).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Intended use (`sig` or `enc`).
    #[serde(default, rename = "use")]
    pub use_: Option<String>,
    /// The algorithm the key is for, when the issuer says.
    #[serde(default)]
    pub alg: Option<String>,
    /// RSA modulus (base64url).
    #[serde(default)]
    pub n: Option<String>,
    /// RSA exponent (base64url).
    #[serde(default)]
    pub e: Option<String>,
    /// Curve (`P-256`, `P-384`, `Ed25519`).
    #[serde(default)]
    pub crv: Option<String>,
    /// EC x coordinate / OKP public key (base64url).
    #[serde(default)]
    pub x: Option<String>,
    /// EC y coordinate (base64url).
    #[serde(default)]
    pub y: Option<String>,
}

/// A JWK Set (`jwks_uri`'s document).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct JwkSet {
    /// The keys, in the issuer's order.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parses a JWKS document. Keys of unknown types are kept (and never selected).
    pub fn parse(body: &[u8]) -> Result<JwkSet, OidcError> {
        serde_json::from_slice(body).map_err(|e| OidcError::BadJwks {
            reason: e.to_string(),
        })
    }

    /// Whether a key with this id is present.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The key to verify a token of `alg` with `kid` (see the module invariants).
    pub fn select(&self, alg: Alg, kid: Option<&str>) -> Result<&Jwk, OidcError> {
        let usable = |k: &&Jwk| {
            k.use_.as_deref().is_none_or(|u| u == "sig")
                && k.alg.as_deref().is_none_or(|a| a == alg.name())
                && key_fits(k, alg)
        };
        match kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid))
                    .ok_or_else(|| OidcError::UnknownKey {
                        kid: kid.to_owned(),
                    })?;
                if usable(&key) {
                    Ok(key)
                } else {
                    Err(OidcError::KeyMismatch {
                        kid: kid.to_owned(),
                        alg: alg.name(),
                    })
                }
            }
            None => {
                let mut candidates = self.keys.iter().filter(usable);
                match (candidates.next(), candidates.next()) {
                    (Some(key), None) => Ok(key),
                    _ => Err(OidcError::UnknownKey { kid: String::new() }),
                }
            }
        }
    }
}

fn key_fits(key: &Jwk, alg: Alg) -> bool {
    match alg {
        Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => {
            key.kty == "RSA"
        }
        Alg::Es256 => key.kty == "EC" && key.crv.as_deref() == Some("P-256"),
        Alg::Es384 => key.kty == "EC" && key.crv.as_deref() == Some("P-384"),
        Alg::EdDsa => key.kty == "OKP" && key.crv.as_deref() == Some("Ed25519"),
    }
}

/// The protected header of a JWS.
#[derive(Debug, Clone, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// Critical extensions: cairn understands none, so any listed one refuses the token.
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// A compact JWS split and decoded, not yet verified.
#[derive(Debug, Clone)]
pub struct Jws {
    /// The accepted algorithm of the header.
    pub alg: Alg,
    /// The header's key id.
    pub kid: Option<String>,
    signing_input: String,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, OidcError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| OidcError::MalformedToken {
            reason: format!("{what} is not unpadded base64url"),
        })
}

impl Jws {
    /// Splits a compact JWS and checks its header's algorithm against the allow-list.
    pub fn parse(token: &str) -> Result<Jws, OidcError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(OidcError::MalformedToken {
                reason: format!("longer than {MAX_TOKEN_BYTES} bytes"),
            });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::MalformedToken {
                reason: "expected three dot-separated parts (compact JWS)".into(),
            });
        };
        let header: Header =
            serde_json::from_slice(&b64(h, "header")?).map_err(|e| OidcError::MalformedToken {
                reason: format!("header: {e}"),
            })?;
        if header.crit.is_some() {
            return Err(OidcError::MalformedToken {
                reason: "header lists critical extensions (crit), none of which cairn supports"
                    .into(),
            });
        }
        let alg = Alg::parse(&header.alg)?;
        Ok(Jws {
            alg,
            kid: header.kid,
            signing_input: format!("{h}.{p}"),
            payload: b64(p, "payload")?,
            signature: b64(s, "signature")?,
        })
    }

    /// Verifies the signature with `key` and returns the payload.
    pub fn verify(&self, key: &Jwk) -> Result<&[u8], OidcError> {
        let bad_key = |what: &str| OidcError::BadJwks {
            reason: format!("key {:?}: {what}", key.kid.as_deref().unwrap_or("(no kid)")),
        };
        let field = |v: &Option<String>, name: &str| -> Result<Vec<u8>, OidcError> {
            let v = v
                .as_deref()
                .ok_or_else(|| bad_key(&format!("missing {name}")))?;
            URL_SAFE_NO_PAD
                .decode(v)
                .map_err(|_| bad_key(&format!("{name} is not base64url")))
        };
        if !key_fits(key, self.alg) {
            return Err(OidcError::KeyMismatch {
                kid: key.kid.clone().unwrap_or_default(),
                alg: self.alg.name(),
            });
        }
        let msg = self.signing_input.as_bytes();
        let ok = match self.alg {
            Alg::Rs256 | Alg::Rs384 | Alg::Rs512 | Alg::Ps256 | Alg::Ps384 | Alg::Ps512 => {
                let params: &signature::RsaParameters = match self.alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA512,
                };
                let n = field(&key.n, "n")?;
                let e = field(&key.e, "e")?;
                signature::RsaPublicKeyComponents { n: &n, e: &e }
                    .verify(params, msg, &self.signature)
                    .is_ok()
            }
            Alg::Es256 | Alg::Es384 => {
                let x = field(&key.x, "x")?;
                let y = field(&key.y, "y")?;
                let (algorithm, len): (&signature::EcdsaVerificationAlgorithm, usize) =
                    if self.alg == Alg::Es256 {
                        (&signature::ECDSA_P256_SHA256_FIXED, 32)
                    } else {
                        (&signature::ECDSA_P384_SHA384_FIXED, 48)
                    };
                if x.len() != len || y.len() != len {
                    return Err(bad_key("x and y must have the curve's length"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                UnparsedPublicKey::new(algorithm, point)
                    .verify(msg, &self.signature)
                    .is_ok()
            }
            Alg::EdDsa => {
                let x = field(&key.x, "x")?;
                UnparsedPublicKey::new(&signature::ED25519, x)
                    .verify(msg, &self.signature)
                    .is_ok()
            }
        };
        if ok {
            Ok(&self.payload)
        } else {
            Err(OidcError::BadSignature)
        }
    }
}

/// `aud`: one string or an array of strings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of a validated ID token.
#[derive(Debug, Clone, PartialEq)]
pub struct IdClaims {
    /// Issuer.
    pub iss: String,
    /// Subject at the issuer.
    pub sub: String,
    /// Audiences.
    pub aud: Vec<String>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Every claim as sent (for `scopes` matching, `email`, `name`, userinfo merging).
    pub all: serde_json::Map<String, serde_json::Value>,
}

impl IdClaims {
    /// A string claim.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.all.get(name).and_then(serde_json::Value::as_str)
    }

    /// The values of claim `name` as strings: a string is one value, an array its string items.
    pub fn values(&self, name: &str) -> Vec<String> {
        claim_values(self.all.get(name))
    }
}

/// The values of a claim as strings: a string is one value, an array its string items; anything
/// else none.
pub fn claim_values(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// What an ID token must satisfy.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// The discovered issuer, compared exactly.
    pub issuer: &'a str,
    /// The client the token was issued to: `aud` must contain it, and `azp`, when present or
    /// when there are several audiences, must equal it.
    pub client_id: &'a str,
    /// Further audiences that may appear beside `client_id` (Argo CD's `allowedAudiences`).
    pub trusted_audiences: &'a [String],
    /// The nonce sent in the authorization request.
    pub nonce: &'a str,
    /// The access token returned with the ID token, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// Now, Unix seconds.
    pub now: i64,
}

/// Validates an ID token completely: algorithm allow-list, signature by the key chosen by `kid`,
/// then `iss`, `aud`/`azp`, `exp`, `iat`, `nonce` and `at_hash` (OIDC Core 3.1.3.7).
pub fn validate_id_token(
    token: &str,
    keys: &JwkSet,
    want: &Expectations<'_>,
) -> Result<IdClaims, OidcError> {
    let jws = Jws::parse(token)?;
    let key = keys.select(jws.alg, jws.kid.as_deref())?;
    let payload = jws.verify(key)?;
    let all: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(payload).map_err(|e| OidcError::MalformedToken {
            reason: format!("payload is not a JSON object: {e}"),
        })?;
    let claim = |name: &'static str| -> Result<&serde_json::Value, OidcError> {
        all.get(name).ok_or(OidcError::Claim {
            claim: name,
            reason: "missing".into(),
        })
    };
    let string = |name: &'static str| -> Result<String, OidcError> {
        claim(name)?
            .as_str()
            .map(str::to_owned)
            .ok_or(OidcError::Claim {
                claim: name,
                reason: "expected a string".into(),
            })
    };
    let number = |name: &'static str| -> Result<i64, OidcError> {
        let v = claim(name)?;
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or(OidcError::Claim {
                claim: name,
                reason: "expected a number of seconds".into(),
            })
    };

    let iss = string("iss")?;
    if iss != want.issuer {
        return Err(OidcError::Claim {
            claim: "iss",
            reason: format!("{iss:?} is not the discovered issuer {:?}", want.issuer),
        });
    }
    let sub = string("sub")?;
    if sub.is_empty() {
        return Err(OidcError::Claim {
            claim: "sub",
            reason: "empty".into(),
        });
    }
    let aud = match serde_json::from_value::<Audience>(claim("aud")?.clone()) {
        Ok(Audience::One(a)) => vec![a],
        Ok(Audience::Many(a)) => a,
        Err(_) => {
            return Err(OidcError::Claim {
                claim: "aud",
                reason: "expected a string or an array of strings".into(),
            });
        }
    };
    if !aud.iter().any(|a| a == want.client_id) {
        return Err(OidcError::Claim {
            claim: "aud",
            reason: format!(
                "{aud:?} does not contain the client id {:?}",
                want.client_id
            ),
        });
    }
    if let Some(untrusted) = aud
        .iter()
        .find(|a| *a != want.client_id && !want.trusted_audiences.contains(a))
    {
        return Err(OidcError::Claim {
            claim: "aud",
            reason: format!("audience {untrusted:?} is not trusted (allowedAudiences)"),
        });
    }
    match all.get("azp") {
        Some(serde_json::Value::String(azp)) if azp == want.client_id => {}
        Some(other) => {
            return Err(OidcError::Claim {
                claim: "azp",
                reason: format!("{other} is not the client id {:?}", want.client_id),
            });
        }
        None if aud.len() > 1 => {
            return Err(OidcError::Claim {
                claim: "azp",
                reason: "missing while the token has several audiences".into(),
            });
        }
        None => {}
    }
    let exp = number("exp")?;
    if want.now > exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(OidcError::Claim {
            claim: "exp",
            reason: format!("expired {} s ago", want.now - exp),
        });
    }
    let iat = number("iat")?;
    if iat > want.now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(OidcError::Claim {
            claim: "iat",
            reason: format!("{} s in the future", iat - want.now),
        });
    }
    if iat < want.now.saturating_sub(MAX_IAT_AGE_SECS + CLOCK_SKEW_SECS) {
        return Err(OidcError::Claim {
            claim: "iat",
            reason: format!(
                "issued {} s ago, more than the {MAX_IAT_AGE_SECS} s allowed",
                want.now - iat
            ),
        });
    }
    match all.get("nonce") {
        Some(serde_json::Value::String(n))
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                n.as_bytes(),
                want.nonce.as_bytes(),
            )) => {}
        Some(_) => {
            return Err(OidcError::Claim {
                claim: "nonce",
                reason: "does not match the nonce of this login".into(),
            });
        }
        None => {
            return Err(OidcError::Claim {
                claim: "nonce",
                reason: "missing".into(),
            });
        }
    }
    if let Some(at_hash) = all.get("at_hash") {
        let at_hash = at_hash.as_str().ok_or(OidcError::Claim {
            claim: "at_hash",
            reason: "expected a string".into(),
        })?;
        let access_token = want.access_token.ok_or(OidcError::Claim {
            claim: "at_hash",
            reason: "present but no access token was returned".into(),
        })?;
        if at_hash != token_hash(jws.alg, access_token) {
            return Err(OidcError::Claim {
                claim: "at_hash",
                reason: "does not match the access token".into(),
            });
        }
    }
    Ok(IdClaims {
        iss,
        sub,
        aud,
        exp,
        iat,
        all,
    })
}

/// `at_hash` / `c_hash`: base64url of the left half of the token's hash under `alg`'s digest.
pub fn token_hash(alg: Alg, token: &str) -> String {
    let digest = ring::digest::digest(alg.digest(), token.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
