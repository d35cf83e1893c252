//! ID-token validation: every relying-party negative of issue 8 that needs no provider, with
//! tokens signed here by real keys (ES256 keys made per test, an RSA key from testdata/).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use super::*;

const ISS: &str = "https://idp.example/dex";
const CLIENT: &str = "cairn";
const NONCE: &str = "nonce-123";
const NOW: i64 = 1_800_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum Signer {
    Es256(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
    Ed(Ed25519KeyPair),
}

struct Key {
    kid: String,
    signer: Signer,
}

impl Key {
    fn es256(kid: &str) -> Key {
        let rng = SystemRandom::new();
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Es256(pair),
        }
    }

    fn rsa(kid: &str, encoding: &'static dyn signature::RsaEncoding) -> Key {
        let pair =
            RsaKeyPair::from_pkcs8(include_bytes!("testdata/rsa2048-test-only.pk8")).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Rsa(pair, encoding),
        }
    }

    fn ed25519(kid: &str) -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Key {
            kid: kid.into(),
            signer: Signer::Ed(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()),
        }
    }

    fn alg(&self) -> &'static str {
        match &self.signer {
            Signer::Es256(_) => "ES256",
            Signer::Rsa(_, enc) => {
                if std::ptr::eq(
                    *enc as *const dyn signature::RsaEncoding as *const u8,
                    &signature::RSA_PSS_SHA256 as *const _ as *const u8,
                ) {
                    "PS256"
                } else {
                    "RS256"
                }
            }
            Signer::Ed(_) => "EdDSA",
        }
    }

    fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Es256(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Signer::Rsa(pair, _) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64(&c.n), "e": b64(&c.e)})
            }
            Signer::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "x": b64(pair.public_key().as_ref())})
            }
        }
    }

    fn sign_raw(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.signer {
            Signer::Es256(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Signer::Rsa(pair, enc) => {
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(*enc, &rng, input, &mut sig).unwrap();
                sig
            }
            Signer::Ed(pair) => pair.sign(input).as_ref().to_vec(),
        }
    }

    /// A token with this key's alg and kid.
    fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": self.alg(), "kid": self.kid, "typ": "JWT"}),
            claims,
        )
    }

    fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.sign_raw(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }
}

fn jwks(keys: &[&Key]) -> JwkSet {
    let doc = json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    JwkSet::parse(doc.to_string().as_bytes()).unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISS, "sub": "user-1", "aud": CLIENT, "exp": NOW + 300, "iat": NOW - 5,
        "nonce": NONCE, "email": "alice@example.com", "groups": ["platform-admins"],
    })
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

fn want<'a>() -> Expectations<'a> {
    Expectations {
        issuer: ISS,
        client_id: CLIENT,
        trusted_audiences: &[],
        nonce: NONCE,
        access_token: None,
        now: NOW,
    }
}

fn validate(token: &str, keys: &JwkSet) -> Result<IdClaims, OidcError> {
    validate_id_token(token, keys, &want())
}

fn claim_error(r: Result<IdClaims, OidcError>) -> &'static str {
    match r {
        Err(OidcError::Claim { claim, .. }) => claim,
        other => panic!("expected a claim error, got {other:?}"),
    }
}

#[test]
fn valid_tokens_of_every_key_type_pass() {
    for key in [
        Key::es256("ec"),
        Key::rsa("rs", &signature::RSA_PKCS1_SHA256),
        Key::rsa("ps", &signature::RSA_PSS_SHA256),
        Key::ed25519("ed"),
    ] {
        let keys = jwks(&[&key]);
        let c =
            validate(&key.sign(&claims()), &keys).unwrap_or_else(|e| panic!("{}: {e}", key.alg()));
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.values("groups"), ["platform-admins"]);
        assert_eq!(c.string("email"), Some("alice@example.com"));
    }
}

#[test]
fn forged_signature_fails() {
    let key = Key::es256("k1");
    let forger = Key::es256("k1");
    let keys = jwks(&[&key]);
    // Same kid, different private key.
    assert!(matches!(
        validate(&forger.sign(&claims()), &keys),
        Err(OidcError::BadSignature)
    ));
    // A valid token whose payload was edited afterwards.
    let token = key.sign(&claims());
    let parts: Vec<&str> = token.split('.').collect();
    let edited = b64(with(claims(), "groups", json!(["root"]))
        .to_string()
        .as_bytes());
    let tampered = format!("{}.{}.{}", parts[0], edited, parts[2]);
    assert!(matches!(
        validate(&tampered, &keys),
        Err(OidcError::BadSignature)
    ));
}

#[test]
fn unknown_key_fails_with_its_kid() {
    let key = Key::es256("k1");
    let other = Key::es256("k2");
    match validate(&other.sign(&claims()), &jwks(&[&key])) {
        Err(OidcError::UnknownKey { kid }) => assert_eq!(kid, "k2"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn alg_none_and_hmac_are_refused() {
    let key = Key::es256("k1");
    let keys = jwks(&[&key]);
    let body = b64(claims().to_string().as_bytes());
    for alg in ["none", "None", "HS256", "HS512", "", "ES256K"] {
        let header = b64(json!({"alg": alg, "kid": "k1"}).to_string().as_bytes());
        for sig in ["", "AAAA"] {
            let token = format!("{header}.{body}.{sig}");
            assert!(
                matches!(
                    validate(&token, &keys),
                    Err(OidcError::AlgorithmNotAllowed { .. })
                ),
                "{alg}"
            );
        }
    }
}

#[test]
fn key_of_the_wrong_type_is_refused() {
    // An RS256 header naming an EC key.
    let ec = Key::es256("k1");
    let token = ec.sign_with_header(&json!({"alg": "RS256", "kid": "k1"}), &claims());
    assert!(matches!(
        validate(&token, &jwks(&[&ec])),
        Err(OidcError::KeyMismatch { .. })
    ));
    // An encryption key is never used to verify.
    let mut doc = json!({"keys": [ec.jwk()]});
    doc["keys"][0]["use"] = json!("enc");
    let keys = JwkSet::parse(doc.to_string().as_bytes()).unwrap();
    assert!(matches!(
        validate(&ec.sign(&claims()), &keys),
        Err(OidcError::KeyMismatch { .. })
    ));
}

#[test]
fn without_kid_only_a_single_fitting_key_is_used() {
    let a = Key::es256("a");
    let b = Key::es256("b");
    let token = a.sign_with_header(&json!({"alg": "ES256"}), &claims());
    assert!(validate(&token, &jwks(&[&a])).is_ok());
    assert!(matches!(
        validate(&token, &jwks(&[&a, &b])),
        Err(OidcError::UnknownKey { .. })
    ));
}

#[test]
fn expired_token_fails_and_small_skew_is_tolerated() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    let t = key.sign(&with(claims(), "exp", json!(NOW - CLOCK_SKEW_SECS - 1)));
    assert_eq!(claim_error(validate(&t, &keys)), "exp");
    let t = key.sign(&with(claims(), "exp", json!(NOW - CLOCK_SKEW_SECS + 1)));
    assert!(validate(&t, &keys).is_ok());
    assert_eq!(
        claim_error(validate(&key.sign(&without(claims(), "exp")), &keys)),
        "exp"
    );
    let t = key.sign(&with(claims(), "exp", json!("tomorrow")));
    assert_eq!(claim_error(validate(&t, &keys)), "exp");
}

#[test]
fn iat_is_bounded() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    let future = key.sign(&with(claims(), "iat", json!(NOW + CLOCK_SKEW_SECS + 10)));
    assert_eq!(claim_error(validate(&future, &keys)), "iat");
    let old = key.sign(&with(
        claims(),
        "iat",
        json!(NOW - MAX_IAT_AGE_SECS - CLOCK_SKEW_SECS - 1),
    ));
    assert_eq!(claim_error(validate(&old, &keys)), "iat");
    assert_eq!(
        claim_error(validate(&key.sign(&without(claims(), "iat")), &keys)),
        "iat"
    );
}

#[test]
fn wrong_issuer_fails() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    for iss in [
        json!("https://evil.example/dex"),
        json!(format!("{ISS}/")),
        json!("https://IDP.example/dex"),
        json!(null),
    ] {
        let t = key.sign(&with(claims(), "iss", iss.clone()));
        assert_eq!(claim_error(validate(&t, &keys)), "iss", "{iss}");
    }
}

#[test]
fn wrong_audience_fails() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    let t = key.sign(&with(claims(), "aud", json!("other-client")));
    assert_eq!(claim_error(validate(&t, &keys)), "aud");
    let t = key.sign(&with(claims(), "aud", json!([])));
    assert_eq!(claim_error(validate(&t, &keys)), "aud");
    let t = key.sign(&with(claims(), "aud", json!(42)));
    assert_eq!(claim_error(validate(&t, &keys)), "aud");
    // Several audiences: an untrusted one fails even with the client among them.
    let t = key.sign(&with(
        with(claims(), "aud", json!([CLIENT, "stranger"])),
        "azp",
        json!(CLIENT),
    ));
    assert_eq!(claim_error(validate(&t, &keys)), "aud");
    // ... and a trusted one (allowedAudiences) passes, with azp.
    let trusted = vec!["kubernetes".to_owned()];
    let w = Expectations {
        trusted_audiences: &trusted,
        ..want()
    };
    assert!(validate_id_token(&t, &keys, &w).is_err());
    let ok = key.sign(&with(
        with(claims(), "aud", json!([CLIENT, "kubernetes"])),
        "azp",
        json!(CLIENT),
    ));
    assert!(validate_id_token(&ok, &keys, &w).is_ok());
}

#[test]
fn azp_is_required_with_several_audiences_and_must_be_the_client() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    let trusted = vec!["kubernetes".to_owned()];
    let w = Expectations {
        trusted_audiences: &trusted,
        ..want()
    };
    let many = with(claims(), "aud", json!([CLIENT, "kubernetes"]));
    let t = key.sign(&many);
    assert_eq!(claim_error(validate_id_token(&t, &keys, &w)), "azp");
    let t = key.sign(&with(many, "azp", json!("kubernetes")));
    assert_eq!(claim_error(validate_id_token(&t, &keys, &w)), "azp");
    let t = key.sign(&with(claims(), "azp", json!("someone-else")));
    assert_eq!(claim_error(validate(&t, &keys)), "azp");
}

#[test]
fn missing_or_wrong_nonce_fails() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    assert_eq!(
        claim_error(validate(&key.sign(&without(claims(), "nonce")), &keys)),
        "nonce"
    );
    let t = key.sign(&with(claims(), "nonce", json!("another-login")));
    assert_eq!(claim_error(validate(&t, &keys)), "nonce");
    let t = key.sign(&with(claims(), "nonce", json!(1)));
    assert_eq!(claim_error(validate(&t, &keys)), "nonce");
}

#[test]
fn at_hash_is_checked_when_present() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    let access = "ya29.access-token";
    let good = token_hash(Alg::Es256, access);
    let t = key.sign(&with(claims(), "at_hash", json!(good)));
    let w = Expectations {
        access_token: Some(access),
        ..want()
    };
    assert!(validate_id_token(&t, &keys, &w).is_ok());
    let w2 = Expectations {
        access_token: Some("another"),
        ..want()
    };
    assert_eq!(claim_error(validate_id_token(&t, &keys, &w2)), "at_hash");
    assert_eq!(claim_error(validate(&t, &keys)), "at_hash");
    // Absent at_hash: nothing to check.
    assert!(validate_id_token(&key.sign(&claims()), &keys, &w2).is_ok());
}

#[test]
fn at_hash_matches_the_oidc_example() {
    // OIDC Core A.3: access token "jHkWEdUXMU1BwAsC4vtUsZwnNUNAiLVVx3DLapZBiwA"... uses RS256;
    // compute independently: left half of SHA-256, base64url.
    let token = "jHkWEdUXMU1BwAsC4vtUsZwnNUNAiLVVx3DLapZBiwA";
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    assert_eq!(token_hash(Alg::Rs256, token), b64(&digest.as_ref()[..16]));
    assert_eq!(token_hash(Alg::Rs256, token).len(), 22);
}

#[test]
fn malformed_tokens_fail_cleanly() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    for bad in [
        "",
        "a.b",
        "a.b.c.d",
        "!!.!!.!!",
        "eyJhbGciOiJFUzI1NiJ9.e30=.AA",
        &"a".repeat(MAX_TOKEN_BYTES + 1),
    ] {
        let r = validate(bad, &keys);
        assert!(
            matches!(r, Err(OidcError::MalformedToken { .. })),
            "{bad:.20}: {r:?}"
        );
    }
    // crit headers are refused.
    let t = key.sign_with_header(
        &json!({"alg": "ES256", "kid": "k", "crit": ["exp"], "exp": 1}),
        &claims(),
    );
    assert!(matches!(
        validate(&t, &keys),
        Err(OidcError::MalformedToken { .. })
    ));
    // A payload that is not an object.
    let t = key.sign_with_header(&json!({"alg": "ES256", "kid": "k"}), &json!([1, 2]));
    assert!(matches!(
        validate(&t, &keys),
        Err(OidcError::MalformedToken { .. })
    ));
}

#[test]
fn jwks_parse_errors_and_incomplete_keys() {
    assert!(matches!(
        JwkSet::parse(b"{\"nokeys\": 1}"),
        Err(OidcError::BadJwks { .. })
    ));
    let key = Key::es256("k");
    let mut doc = json!({"keys": [key.jwk()]});
    doc["keys"][0].as_object_mut().unwrap().remove("y");
    let keys = JwkSet::parse(doc.to_string().as_bytes()).unwrap();
    assert!(matches!(
        validate(&key.sign(&claims()), &keys),
        Err(OidcError::BadJwks { .. })
    ));
    // Unknown key types are kept but never chosen.
    let doc = json!({"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]});
    let keys = JwkSet::parse(doc.to_string().as_bytes()).unwrap();
    assert!(keys.has_kid("k"));
    assert!(matches!(
        validate(&key.sign(&claims()), &keys),
        Err(OidcError::KeyMismatch { .. })
    ));
}

#[test]
fn missing_sub_fails() {
    let key = Key::es256("k");
    let keys = jwks(&[&key]);
    assert_eq!(
        claim_error(validate(&key.sign(&without(claims(), "sub")), &keys)),
        "sub"
    );
    let t = key.sign(&with(claims(), "sub", json!("")));
    assert_eq!(claim_error(validate(&t, &keys)), "sub");
}
