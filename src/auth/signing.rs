//! The authorization server's own token-signing keys: RS256 JWS (RFC 7515, RFC 7518 §3.3) JWTs (RFC 7519
//! §7.2 validation), `kid`-selected key rotation, and the published JWK Set (RFC 7517 §4–5).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

const ALG: &str = "RS256";
const RSA_BITS: usize = 2048;
/// Tolerated clock skew for `exp`/`nbf`; our own tokens are checked by our own clocks, so this only
/// covers drift between server instances.
const LEEWAY_SECS: u64 = 5;
/// RFC 7518 §6.3.2 / §6.2.2 / §6.4 private members; any of them in a published JWK leaks the key.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("RSA key generation failed: {0}")]
    Generation(String),
    #[error("key '{kid}' is unusable: {reason}")]
    InvalidKey { kid: String, reason: String },
    #[error("kid '{0}' appears more than once in the key ring")]
    DuplicateKid(String),
    #[error("token signing failed: {0}")]
    Signing(String),
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token alg '{0}' is not accepted; only RS256 is")]
    UnsupportedAlgorithm(String),
    #[error("token header has no kid")]
    MissingKid,
    #[error("no key with kid '{0}'")]
    UnknownKid(String),
    #[error("token signature is invalid")]
    InvalidSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token iss is not this server")]
    InvalidIssuer,
    #[error("token aud does not include the expected audience")]
    InvalidAudience,
    #[error("token has no {0} claim")]
    MissingClaim(String),
    #[error("token claims are invalid: {0}")]
    InvalidClaims(String),
}

/// One of the server's RSA signing keys, in the form it is stored and configured.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub private_pem: String,
    /// Public JWK: kty, n, e, kid, alg RS256, use sig.
    pub public_jwk: Value,
}

// Hand-written so that logging a SigningKey can never print the private key.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_pem", &"<redacted>")
            .field("public_jwk", &self.public_jwk)
            .finish()
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key for RS256.
    pub fn generate_rs256(kid: &str) -> Result<SigningKey, KeyError> {
        if kid.is_empty() {
            return Err(invalid_key(kid, "kid must not be empty"));
        }
        let key =
            RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS).map_err(|e| KeyError::Generation(e.to_string()))?;
        let private_pem =
            key.to_pkcs8_pem(LineEnding::LF).map_err(|e| KeyError::Generation(e.to_string()))?.to_string();
        Ok(SigningKey { kid: kid.to_owned(), private_pem, public_jwk: public_jwk(&key, kid) })
    }
}

/// The active signing key plus the public keys of retired ones, which keep verifying the tokens they
/// signed until those expire. Cloning shares the prebuilt keys (one `Arc`), so hand clones to request
/// handlers freely.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<Inner>,
}

struct Inner {
    active_kid: String,
    encoding_key: EncodingKey,
    decoding_keys: HashMap<String, DecodingKey>,
    jwks: Value,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.inner.decoding_keys.keys().collect();
        kids.sort();
        f.debug_struct("KeyRing").field("active_kid", &self.inner.active_kid).field("kids", &kids).finish()
    }
}

impl KeyRing {
    /// `verification_only` are the public JWKs of older keys. Fails on anything that would make the
    /// published JWKS wrong or dangerous: a `public_jwk` that does not match the private key, private
    /// members in a public JWK, a non-RS256 or short key, or a repeated kid.
    pub fn new(active: SigningKey, verification_only: Vec<Value>) -> Result<KeyRing, KeyError> {
        let kid = active.kid.as_str();
        if kid.is_empty() {
            return Err(invalid_key(kid, "kid must not be empty"));
        }
        let private = RsaPrivateKey::from_pkcs8_pem(&active.private_pem)
            .map_err(|e| invalid_key(kid, &format!("private_pem is not a PKCS#8 RSA key: {e}")))?;
        if private.size() * 8 < RSA_BITS {
            return Err(invalid_key(kid, "RSA modulus is shorter than 2048 bits"));
        }
        let derived = public_jwk(&private, kid);
        // The configured public_jwk is what a deployment may have published elsewhere; if it disagrees
        // with the private key, every token we sign would fail verification at resource servers.
        for member in ["kid", "n", "e"] {
            if active.public_jwk.get(member) != derived.get(member) {
                return Err(invalid_key(kid, &format!("public_jwk {member} does not match the private key")));
            }
        }
        check_published_jwk(&active.public_jwk, kid)?;

        // jsonwebtoken's RSA signer wants PKCS#1 DER.
        let der = private.to_pkcs1_der().map_err(|e| invalid_key(kid, &e.to_string()))?;
        let encoding_key = EncodingKey::from_rsa_der(der.as_bytes());

        let mut decoding_keys = HashMap::with_capacity(1 + verification_only.len());
        let mut published = Vec::with_capacity(1 + verification_only.len());
        decoding_keys.insert(
            kid.to_owned(),
            DecodingKey::from_rsa_raw_components(&private.n().to_bytes_be(), &private.e().to_bytes_be()),
        );
        published.push(derived);

        for jwk in verification_only {
            let old_kid = jwk.get("kid").and_then(Value::as_str).unwrap_or_default().to_owned();
            if old_kid.is_empty() {
                return Err(invalid_key("", "verification-only JWK has no kid"));
            }
            if decoding_keys.contains_key(&old_kid) {
                return Err(KeyError::DuplicateKid(old_kid));
            }
            check_published_jwk(&jwk, &old_kid)?;
            let (n, e) = rsa_components(&jwk, &old_kid)?;
            decoding_keys.insert(old_kid, DecodingKey::from_rsa_raw_components(&n, &e));
            published.push(jwk);
        }

        Ok(KeyRing {
            inner: Arc::new(Inner {
                active_kid: kid.to_owned(),
                encoding_key,
                decoding_keys,
                jwks: json!({ "keys": published }),
            }),
        })
    }

    pub fn active_kid(&self) -> &str {
        &self.inner.active_kid
    }

    /// Signs `claims` as-is with the active key; the caller sets iss, exp, aud etc.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.kid = Some(self.inner.active_kid.clone());
        jsonwebtoken::encode(&header, claims, &self.inner.encoding_key).map_err(|e| KeyError::Signing(e.to_string()))
    }

    /// Verifies a token this server issued: RS256 only, key chosen by kid among active and retired keys,
    /// `exp` required and enforced, `nbf` enforced when present, `iss` must equal `issuer`, and `aud`
    /// must contain `audience` when one is given.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
    ) -> Result<T, KeyError> {
        let header = decode_header(token)?;
        // Checked on the raw header rather than via jsonwebtoken's typed Header so that `none` and
        // unknown algorithms get a precise error instead of a generic parse failure.
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("(missing)");
        if alg != ALG {
            return Err(KeyError::UnsupportedAlgorithm(alg.to_owned()));
        }
        // RFC 7515 §4.1.11: extensions we do not understand must not be silently ignored.
        if header.contains_key("crit") {
            return Err(KeyError::Malformed("crit header parameter is not supported".to_owned()));
        }
        let kid = header.get("kid").and_then(Value::as_str).ok_or(KeyError::MissingKid)?;
        let key = self.inner.decoding_keys.get(kid).ok_or_else(|| KeyError::UnknownKid(kid.to_owned()))?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        match audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            }
            None => {
                // Otherwise jsonwebtoken rejects every token that carries an aud at all.
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss"]);
            }
        }
        jsonwebtoken::decode::<T>(token, key, &validation).map(|data| data.claims).map_err(map_jwt_error)
    }

    /// `{"keys": [...]}` with the active key first, for the jwks_uri endpoint.
    pub fn jwks(&self) -> Value {
        self.inner.jwks.clone()
    }
}

fn public_jwk(key: &RsaPrivateKey, kid: &str) -> Value {
    json!({
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": ALG,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    })
}

/// Refuses JWKs that must never go into the published JWKS or cannot verify RS256.
fn check_published_jwk(jwk: &Value, kid: &str) -> Result<(), KeyError> {
    let obj = jwk.as_object().ok_or_else(|| invalid_key(kid, "JWK is not a JSON object"))?;
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(invalid_key(kid, &format!("public JWK contains private member '{member}'")));
    }
    if obj.get("kty").and_then(Value::as_str) != Some("RSA") {
        return Err(invalid_key(kid, "kty must be RSA"));
    }
    if obj.get("alg").is_some_and(|alg| alg != ALG) {
        return Err(invalid_key(kid, "alg must be RS256"));
    }
    if obj.get("use").is_some_and(|u| u != "sig") {
        return Err(invalid_key(kid, "use must be sig"));
    }
    Ok(())
}

fn rsa_components(jwk: &Value, kid: &str) -> Result<(Vec<u8>, Vec<u8>), KeyError> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .ok_or_else(|| invalid_key(kid, &format!("{name} is missing or not base64url")))
    };
    let (n, e) = (member("n")?, member("e")?);
    let significant = n.iter().skip_while(|b| **b == 0).count();
    if significant * 8 < RSA_BITS {
        return Err(invalid_key(kid, "RSA modulus is shorter than 2048 bits"));
    }
    Ok((n, e))
}

fn decode_header(token: &str) -> Result<Map<String, Value>, KeyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Malformed("expected three dot-separated parts".to_owned()));
    };
    let bytes =
        URL_SAFE_NO_PAD.decode(header).map_err(|_| KeyError::Malformed("header is not base64url".to_owned()))?;
    serde_json::from_slice(&bytes).map_err(|_| KeyError::Malformed("header is not a JSON object".to_owned()))
}

fn map_jwt_error(err: jsonwebtoken::errors::Error) -> KeyError {
    match err.into_kind() {
        ErrorKind::InvalidSignature => KeyError::InvalidSignature,
        ErrorKind::ExpiredSignature => KeyError::Expired,
        ErrorKind::ImmatureSignature => KeyError::NotYetValid,
        ErrorKind::InvalidIssuer => KeyError::InvalidIssuer,
        ErrorKind::InvalidAudience => KeyError::InvalidAudience,
        ErrorKind::MissingRequiredClaim(claim) => KeyError::MissingClaim(claim),
        ErrorKind::InvalidClaimFormat(claim) => KeyError::InvalidClaims(format!("{claim} has the wrong type")),
        ErrorKind::Json(e) => KeyError::InvalidClaims(e.to_string()),
        other => KeyError::Malformed(format!("{other:?}")),
    }
}

fn invalid_key(kid: &str, reason: &str) -> KeyError {
    KeyError::InvalidKey { kid: kid.to_owned(), reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::sync::OnceLock;
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    const ISS: &str = "https://auth.example.org";

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        iss: String,
        sub: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        aud: Option<String>,
        exp: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        nbf: Option<i64>,
    }

    fn generate(kid: &str) -> SigningKey {
        let started = Instant::now();
        let key = SigningKey::generate_rs256(kid).unwrap();
        eprintln!("RSA-2048 key generation for {kid}: {:?}", started.elapsed());
        key
    }

    fn key_a() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| generate("2024-01"))
    }

    fn key_b() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| generate("2024-07"))
    }

    /// An unrelated key, used to forge tokens under another key's kid.
    fn key_attacker() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| generate("attacker"))
    }

    fn with_kid(key: &SigningKey, kid: &str) -> SigningKey {
        let mut key = key.clone();
        key.kid = kid.to_owned();
        key.public_jwk["kid"] = json!(kid);
        key
    }

    fn now() -> i64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn claims(exp: i64) -> Claims {
        Claims { iss: ISS.to_owned(), sub: "patient-1".to_owned(), aud: None, exp, nbf: None }
    }

    fn ring_a() -> KeyRing {
        KeyRing::new(key_a().clone(), vec![]).unwrap()
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn generated_key_is_pkcs8_with_public_jwk() {
        let key = key_a();
        assert!(key.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let jwk = &key.public_jwk;
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["kid"], "2024-01");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap().len(), 256);
        assert!(!format!("{key:?}").contains("PRIVATE KEY"), "Debug must not print the private key");
    }

    #[test]
    fn sign_verify_round_trip() {
        let ring = ring_a();
        let original = claims(now() + 300);
        let token = ring.sign(&original).unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["kid"], "2024-01");
        assert_eq!(ring.verify::<Claims>(&token, ISS, None).unwrap(), original);
    }

    #[test]
    fn clone_shares_prebuilt_keys() {
        let ring = ring_a();
        let copy = ring.clone();
        assert!(Arc::ptr_eq(&ring.inner, &copy.inner));
        let token = ring.sign(&claims(now() + 60)).unwrap();
        assert!(copy.verify::<Claims>(&token, ISS, None).is_ok());
    }

    #[test]
    fn old_tokens_verify_after_rotation() {
        let before = ring_a();
        let old_token = before.sign(&claims(now() + 300)).unwrap();

        let after = KeyRing::new(key_b().clone(), vec![key_a().public_jwk.clone()]).unwrap();
        assert_eq!(after.active_kid(), "2024-07");
        assert!(after.verify::<Claims>(&old_token, ISS, None).is_ok());

        let new_token = after.sign(&claims(now() + 300)).unwrap();
        assert_eq!(decode_header(&new_token).unwrap()["kid"], "2024-07");
        assert!(after.verify::<Claims>(&new_token, ISS, None).is_ok());
        // The pre-rotation ring never heard of the new key.
        assert_eq!(before.verify::<Claims>(&new_token, ISS, None), Err(KeyError::UnknownKid("2024-07".to_owned())));
    }

    #[test]
    fn forged_signature_with_same_kid_refused() {
        let forger = KeyRing::new(with_kid(key_attacker(), "2024-01"), vec![]).unwrap();
        let forged = forger.sign(&claims(now() + 300)).unwrap();
        assert_eq!(ring_a().verify::<Claims>(&forged, ISS, None), Err(KeyError::InvalidSignature));
    }

    #[test]
    fn tampered_payload_refused() {
        let ring = ring_a();
        let token = ring.sign(&claims(now() + 300)).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        payload["sub"] = json!("admin");
        let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
        assert_eq!(ring.verify::<Claims>(&tampered, ISS, None), Err(KeyError::InvalidSignature));
    }

    #[test]
    fn expiry_enforced_with_small_leeway() {
        let ring = ring_a();
        let expired = ring.sign(&claims(now() - 60)).unwrap();
        assert_eq!(ring.verify::<Claims>(&expired, ISS, None), Err(KeyError::Expired));
        // Within the 5 s skew allowance.
        let just_expired = ring.sign(&claims(now() - 1)).unwrap();
        assert!(ring.verify::<Claims>(&just_expired, ISS, None).is_ok());
    }

    #[test]
    fn missing_exp_refused() {
        let ring = ring_a();
        let token = ring.sign(&json!({ "iss": ISS, "sub": "x" })).unwrap();
        assert_eq!(ring.verify::<Value>(&token, ISS, None), Err(KeyError::MissingClaim("exp".to_owned())));
    }

    #[test]
    fn future_nbf_refused() {
        let ring = ring_a();
        let token = ring.sign(&Claims { nbf: Some(now() + 120), ..claims(now() + 300) }).unwrap();
        assert_eq!(ring.verify::<Claims>(&token, ISS, None), Err(KeyError::NotYetValid));
    }

    #[test]
    fn wrong_issuer_refused() {
        let ring = ring_a();
        let token = ring.sign(&Claims { iss: "https://evil.example".to_owned(), ..claims(now() + 300) }).unwrap();
        assert_eq!(ring.verify::<Claims>(&token, ISS, None), Err(KeyError::InvalidIssuer));
    }

    #[test]
    fn audience_checked_only_when_given() {
        let ring = ring_a();
        let with_aud = ring.sign(&Claims { aud: Some("https://fhir.example.org".to_owned()), ..claims(now() + 300) });
        let with_aud = with_aud.unwrap();
        assert!(ring.verify::<Claims>(&with_aud, ISS, Some("https://fhir.example.org")).is_ok());
        assert!(ring.verify::<Claims>(&with_aud, ISS, None).is_ok());
        assert_eq!(
            ring.verify::<Claims>(&with_aud, ISS, Some("https://other.example")),
            Err(KeyError::InvalidAudience)
        );

        let without_aud = ring.sign(&claims(now() + 300)).unwrap();
        assert_eq!(
            ring.verify::<Claims>(&without_aud, ISS, Some("https://fhir.example.org")),
            Err(KeyError::MissingClaim("aud".to_owned()))
        );
    }

    #[test]
    fn unknown_kid_refused() {
        let stranger = KeyRing::new(with_kid(key_a(), "retired-long-ago"), vec![]).unwrap();
        let token = stranger.sign(&claims(now() + 300)).unwrap();
        assert_eq!(
            ring_a().verify::<Claims>(&token, ISS, None),
            Err(KeyError::UnknownKid("retired-long-ago".to_owned()))
        );
    }

    #[test]
    fn missing_kid_refused() {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = None;
        let der = RsaPrivateKey::from_pkcs8_pem(&key_a().private_pem).unwrap().to_pkcs1_der().unwrap();
        let token =
            jsonwebtoken::encode(&header, &claims(now() + 300), &EncodingKey::from_rsa_der(der.as_bytes())).unwrap();
        assert_eq!(ring_a().verify::<Claims>(&token, ISS, None), Err(KeyError::MissingKid));
    }

    #[test]
    fn alg_none_refused() {
        let header = json!({ "alg": "none", "typ": "JWT", "kid": "2024-01" });
        let payload = serde_json::to_value(claims(now() + 300)).unwrap();
        let token = format!("{}.{}.", b64(&header), b64(&payload));
        assert_eq!(
            ring_a().verify::<Claims>(&token, ISS, None),
            Err(KeyError::UnsupportedAlgorithm("none".to_owned()))
        );
    }

    #[test]
    fn hmac_keyed_with_public_modulus_refused() {
        // Classic algorithm-confusion attack: HS256 using the published public key as the HMAC secret.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("2024-01".to_owned());
        let secret = serde_json::to_vec(&key_a().public_jwk).unwrap();
        let token = jsonwebtoken::encode(&header, &claims(now() + 300), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(
            ring_a().verify::<Claims>(&token, ISS, None),
            Err(KeyError::UnsupportedAlgorithm("HS256".to_owned()))
        );
    }

    #[test]
    fn garbage_refused() {
        let ring = ring_a();
        for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.sig"] {
            assert!(matches!(ring.verify::<Value>(token, ISS, None), Err(KeyError::Malformed(_))), "{token:?}");
        }
    }

    #[test]
    fn jwks_lists_all_public_keys_active_first() {
        let ring = KeyRing::new(key_b().clone(), vec![key_a().public_jwk.clone()]).unwrap();
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0]["kid"], "2024-07");
        assert_eq!(keys[1]["kid"], "2024-01");
        for key in keys {
            assert_eq!(key["kty"], "RSA");
            assert_eq!(key["alg"], "RS256");
            assert!(PRIVATE_MEMBERS.iter().all(|m| key.get(*m).is_none()));
        }
        // Parses as a standard JWK Set and each key is usable for verification.
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
        let token = ring.sign(&claims(now() + 300)).unwrap();
        let key = DecodingKey::from_jwk(set.find("2024-07").unwrap()).unwrap();
        assert!(jsonwebtoken::decode::<Claims>(&token, &key, &Validation::new(Algorithm::RS256)).is_ok());
    }

    #[test]
    fn ring_refuses_bad_configuration() {
        let mut leaky = key_a().public_jwk.clone();
        leaky["d"] = json!("AQAB");
        assert!(matches!(KeyRing::new(key_b().clone(), vec![leaky]), Err(KeyError::InvalidKey { .. })));

        assert_eq!(
            KeyRing::new(key_a().clone(), vec![key_a().public_jwk.clone()]).unwrap_err(),
            KeyError::DuplicateKid("2024-01".to_owned())
        );

        let mut mismatched = key_a().clone();
        mismatched.public_jwk = with_kid(key_b(), "2024-01").public_jwk;
        assert!(matches!(KeyRing::new(mismatched, vec![]), Err(KeyError::InvalidKey { .. })));

        let mut wrong_alg = key_a().public_jwk.clone();
        wrong_alg["kid"] = json!("other");
        wrong_alg["alg"] = json!("RS512");
        assert!(matches!(KeyRing::new(key_b().clone(), vec![wrong_alg]), Err(KeyError::InvalidKey { .. })));

        let not_pem = SigningKey { private_pem: "nope".to_owned(), ..key_a().clone() };
        assert!(matches!(KeyRing::new(not_pem, vec![]), Err(KeyError::InvalidKey { .. })));
    }
}
