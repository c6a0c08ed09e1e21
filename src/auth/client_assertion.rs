//! `private_key_jwt` client authentication at the token endpoint: RFC 7523 §2.2 and §3 (JWT client
//! assertions), as profiled by SMART App Launch "Client Authentication: Asymmetric (public key)"
//! (client-confidential-asymmetric: RS384/ES384, kid+kty key resolution, 5-minute exp, jti).
//!
//! Every [`AssertionError`] message is meant to be sent back as the `invalid_client`
//! `error_description`, so messages only use the characters RFC 6749 §5.2 allows there
//! (%x20-21 / %x23-5B / %x5D-7E) and client-supplied values are filtered into that set.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// SMART caps assertion lifetime at five minutes.
const MAX_LIFETIME_SECS: i64 = 300;
const CLOCK_SKEW_SECS: i64 = 5;
const MAX_JTI_CHARS: usize = 255;
const MIN_RSA_BITS: usize = 2048;
const P384_COORDINATE_LEN: usize = 48;
/// RFC 7518 §6.2.2, §6.3.2 and §6.4 private members.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// Longest client-supplied value echoed in an error message.
const MAX_ECHO_CHARS: usize = 64;

/// What the caller needs for replay detection (SMART: the server must reject a jti it has already
/// seen for this client until `exp` has passed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub jti: String,
    pub exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    #[error("client_assertion is not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("client_assertion header has no alg")]
    MissingAlgorithm,
    #[error("client_assertion alg '{0}' is not accepted; sign with RS384 or ES384")]
    UnsupportedAlgorithm(String),
    #[error("client_assertion header has a crit parameter; no JWS extensions are supported")]
    UnsupportedCritical,
    #[error("client_assertion header has no kid; it must name a key in the client's registered JWKS")]
    MissingKid,
    #[error("the client's registered JWKS is unusable: {0}")]
    InvalidJwks(String),
    #[error("no key with kid '{0}' in the client's registered JWKS")]
    UnknownKid(String),
    #[error("key '{kid}' in the client's JWKS is not kty {kty}, which {alg} requires")]
    KeyTypeMismatch { kid: String, kty: &'static str, alg: &'static str },
    #[error("more than one key with kid '{kid}' and kty {kty} in the client's JWKS")]
    AmbiguousKey { kid: String, kty: &'static str },
    #[error("key '{kid}' in the client's JWKS is registered for alg '{key_alg}', but the assertion uses {alg}")]
    KeyAlgorithmMismatch { kid: String, key_alg: String, alg: &'static str },
    #[error("key '{kid}' in the client's JWKS is unusable: {reason}")]
    InvalidKey { kid: String, reason: String },
    #[error("client_assertion signature does not verify with key '{0}'")]
    InvalidSignature(String),
    #[error("client_assertion payload is not a JSON object")]
    InvalidPayload,
    #[error("client_assertion has no {0} claim")]
    MissingClaim(&'static str),
    #[error("client_assertion {0} claim has the wrong type")]
    InvalidClaimType(&'static str),
    #[error("client_assertion iss must equal the client_id")]
    IssuerMismatch,
    #[error("client_assertion sub must equal the client_id")]
    SubjectMismatch,
    #[error("client_assertion aud must be the token endpoint URL {0}")]
    AudienceMismatch(String),
    #[error("client_assertion expired at {exp} (server time {now})")]
    Expired { exp: i64, now: i64 },
    #[error("client_assertion exp {exp} is more than 300 seconds after server time {now}")]
    ExpiresTooLate { exp: i64, now: i64 },
    #[error("client_assertion nbf {nbf} is after server time {now}")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("client_assertion jti is empty")]
    EmptyJti,
    #[error("client_assertion jti is longer than 255 characters")]
    JtiTooLong,
}

/// The only algorithms accepted: SMART requires servers to support RS384 and ES384, and accepting
/// nothing else rules out `none`, HMAC key confusion, and weaker hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AssertionAlg {
    Rs384,
    Es384,
}

impl AssertionAlg {
    fn parse(alg: &str) -> Option<Self> {
        match alg {
            "RS384" => Some(Self::Rs384),
            "ES384" => Some(Self::Es384),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rs384 => "RS384",
            Self::Es384 => "ES384",
        }
    }

    fn kty(self) -> &'static str {
        match self {
            Self::Rs384 => "RSA",
            Self::Es384 => "EC",
        }
    }

    fn jwt_alg(self) -> Algorithm {
        match self {
            Self::Rs384 => Algorithm::RS384,
            Self::Es384 => Algorithm::ES384,
        }
    }

    fn for_kty(kty: &str) -> Option<Self> {
        match kty {
            "RSA" => Some(Self::Rs384),
            "EC" => Some(Self::Es384),
            _ => None,
        }
    }
}

/// Authenticates a client from its `client_assertion`.
///
/// `client_jwks` is the client's JWK Set as registered (or as fetched from its registered jwks_uri).
/// The `jku` header is never dereferenced: keys come only from `client_jwks`, so a caller that
/// supports jwks_uri clients must itself refuse a `jku` that differs from the registered URL if it
/// wants SMART's step-1 behaviour. Replay detection on the returned jti is the caller's job.
pub fn verify(
    assertion: &str,
    client_id: &str,
    token_endpoint: &str,
    client_jwks: &Value,
    now_unix: i64,
) -> Result<VerifiedAssertion, AssertionError> {
    let (header_b64, payload_b64, signature_b64) = split_compact(assertion)?;
    let header = decode_json_segment(header_b64).ok_or(AssertionError::Malformed("header is not base64url JSON"))?;
    let header = header.as_object().ok_or(AssertionError::Malformed("header is not a JSON object"))?;

    let alg = match header.get("alg") {
        None => return Err(AssertionError::MissingAlgorithm),
        Some(Value::String(alg)) => {
            AssertionAlg::parse(alg).ok_or_else(|| AssertionError::UnsupportedAlgorithm(echo(alg)))?
        }
        Some(_) => return Err(AssertionError::Malformed("header alg is not a string")),
    };
    // RFC 7515 §4.1.11: extensions we do not understand must not be silently ignored.
    if header.contains_key("crit") {
        return Err(AssertionError::UnsupportedCritical);
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.as_str(),
        _ => return Err(AssertionError::MissingKid),
    };

    let jwk = resolve_key(client_jwks, kid, alg)?;
    let decoding_key = decoding_key(jwk, alg).map_err(|reason| invalid_key(kid, reason))?;

    let signing_input = &assertion[..header_b64.len() + 1 + payload_b64.len()];
    match jsonwebtoken::crypto::verify(signature_b64, signing_input.as_bytes(), &decoding_key, alg.jwt_alg()) {
        Ok(true) => {}
        Ok(false) => return Err(AssertionError::InvalidSignature(echo(kid))),
        Err(err) => {
            return Err(match err.kind() {
                ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidRsaKey(_) | ErrorKind::InvalidKeyFormat => {
                    invalid_key(kid, "not a valid public key")
                }
                // An undecodable signature is still just a signature that does not verify.
                _ => AssertionError::InvalidSignature(echo(kid)),
            });
        }
    }

    // Claims are examined only after the signature holds, so unauthenticated input cannot probe them.
    let payload = decode_json_segment(payload_b64).ok_or(AssertionError::InvalidPayload)?;
    let claims = payload.as_object().ok_or(AssertionError::InvalidPayload)?;
    check_claims(claims, client_id, token_endpoint, now_unix)
}

/// Parses a JWK Set with jsonwebtoken's types, e.g. to cache a client's keys.
///
/// [`verify`] does not go through this: SMART's key resolution filters on kid *and* kty and must fail
/// when two keys match, which `JwkSet::find` (first match by kid) cannot express, and one unparseable
/// key would otherwise make the whole set unusable.
pub fn key_set_from_json(value: &Value) -> Result<JwkSet, AssertionError> {
    if !value.get("keys").is_some_and(Value::is_array) {
        return Err(AssertionError::InvalidJwks("expected an object with a keys array".to_owned()));
    }
    serde_json::from_value(value.clone()).map_err(|e| AssertionError::InvalidJwks(echo(&e.to_string())))
}

/// Registration-time check of a client's JWKS: `{"keys": [...]}`, every key with a kid, kty RSA
/// (at least 2048 bits) or EC on P-384, usable for RS384/ES384 signatures, public members only, and
/// no two keys sharing kid and kty (which would make key resolution fail at the token endpoint).
pub fn public_jwk_is_valid(value: &Value) -> Result<(), String> {
    let keys = value
        .as_object()
        .and_then(|set| set.get("keys"))
        .and_then(Value::as_array)
        .ok_or_else(|| "a JWKS must be an object with a keys array".to_owned())?;
    if keys.is_empty() {
        return Err("the JWKS has no keys".to_owned());
    }
    let mut seen: Vec<(&str, &str)> = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        let key = key.as_object().ok_or_else(|| format!("key {index} is not a JSON object"))?;
        // Checked before anything else so a leaked private key is always reported as such.
        if PRIVATE_MEMBERS.iter().any(|m| key.contains_key(*m)) {
            return Err("private key material in a public JWKS".to_owned());
        }
        let kid = match key.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() => kid.as_str(),
            _ => return Err(format!("key {index} has no kid")),
        };
        let kty = key.get("kty").and_then(Value::as_str).unwrap_or_default();
        let alg = AssertionAlg::for_kty(kty)
            .ok_or_else(|| format!("key '{}' has kty '{}'; only RSA and EC are accepted", echo(kid), echo(kty)))?;
        if key.get("alg").is_some_and(|a| a != alg.name()) {
            return Err(format!("key '{}' alg must be {} when present", echo(kid), alg.name()));
        }
        let decoding_key = decoding_key(key, alg).map_err(|reason| format!("key '{}': {reason}", echo(kid)))?;
        // There is no public "is this a valid point / modulus" call, but verifying a dummy signature
        // makes the crypto backend parse the key and report a bad one distinctly from a bad signature.
        if let Err(err) = jsonwebtoken::crypto::verify("AA", b"probe", &decoding_key, alg.jwt_alg()) {
            return Err(format!("key '{}' is not a valid public key ({err})", echo(kid)));
        }
        if seen.contains(&(kid, kty)) {
            return Err(format!("more than one key with kid '{}' and kty {kty}", echo(kid)));
        }
        seen.push((kid, kty));
    }
    Ok(())
}

/// SMART key resolution step 3: exactly one key whose kid matches and whose kty fits the alg.
fn resolve_key<'a>(jwks: &'a Value, kid: &str, alg: AssertionAlg) -> Result<&'a Map<String, Value>, AssertionError> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| AssertionError::InvalidJwks("expected an object with a keys array".to_owned()))?;
    let same_kid: Vec<&Map<String, Value>> = keys
        .iter()
        .filter_map(Value::as_object)
        .filter(|key| key.get("kid").and_then(Value::as_str) == Some(kid))
        .collect();
    if same_kid.is_empty() {
        return Err(AssertionError::UnknownKid(echo(kid)));
    }
    let mut candidates = same_kid.into_iter().filter(|key| key.get("kty").and_then(Value::as_str) == Some(alg.kty()));
    let key = match (candidates.next(), candidates.next()) {
        (Some(key), None) => key,
        (None, _) => return Err(AssertionError::KeyTypeMismatch { kid: echo(kid), kty: alg.kty(), alg: alg.name() }),
        (Some(_), Some(_)) => return Err(AssertionError::AmbiguousKey { kid: echo(kid), kty: alg.kty() }),
    };
    if let Some(key_alg) = key.get("alg")
        && key_alg != alg.name()
    {
        let key_alg = key_alg.as_str().map_or_else(|| "(not a string)".to_owned(), echo);
        return Err(AssertionError::KeyAlgorithmMismatch { kid: echo(kid), key_alg, alg: alg.name() });
    }
    // A client's JWKS may come from its jwks_uri and never have passed public_jwk_is_valid.
    if PRIVATE_MEMBERS.iter().any(|m| key.contains_key(*m)) {
        return Err(invalid_key(kid, "private key material in a public JWKS"));
    }
    Ok(key)
}

/// Builds the verification key, enforcing what the alg needs of it (P-384, RSA size, signing use).
fn decoding_key(key: &Map<String, Value>, alg: AssertionAlg) -> Result<DecodingKey, &'static str> {
    if key.get("use").is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    if let Some(ops) = key.get("key_ops")
        && !ops.as_array().is_some_and(|ops| ops.iter().any(|op| op == "verify"))
    {
        return Err("key_ops does not include verify");
    }
    let member = |name: &str| key.get(name).and_then(Value::as_str).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
    match alg {
        AssertionAlg::Rs384 => {
            let (Some(n), Some(e)) = (member("n"), member("e")) else {
                return Err("n or e is missing or not base64url");
            };
            if n.iter().skip_while(|b| **b == 0).count() * 8 < MIN_RSA_BITS {
                return Err("RSA modulus is shorter than 2048 bits");
            }
            Ok(DecodingKey::from_rsa_raw_components(&n, &e))
        }
        AssertionAlg::Es384 => {
            if key.get("crv").and_then(Value::as_str) != Some("P-384") {
                return Err("crv must be P-384 for ES384");
            }
            let coordinate = |name: &str| {
                key.get(name)
                    .and_then(Value::as_str)
                    .filter(|s| URL_SAFE_NO_PAD.decode(s).is_ok_and(|bytes| bytes.len() == P384_COORDINATE_LEN))
            };
            let (Some(x), Some(y)) = (coordinate("x"), coordinate("y")) else {
                return Err("x and y must be base64url 48-byte P-384 coordinates");
            };
            DecodingKey::from_ec_components(x, y).map_err(|_| "x or y is not base64url")
        }
    }
}

fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    token_endpoint: &str,
    now: i64,
) -> Result<VerifiedAssertion, AssertionError> {
    if string_claim(claims, "iss")? != client_id {
        return Err(AssertionError::IssuerMismatch);
    }
    if string_claim(claims, "sub")? != client_id {
        return Err(AssertionError::SubjectMismatch);
    }

    // RFC 7519 §4.1.3: a single string or an array of strings.
    let audience_ok = match claims.get("aud") {
        None => return Err(AssertionError::MissingClaim("aud")),
        Some(Value::String(aud)) => aud == token_endpoint,
        Some(Value::Array(auds)) if auds.iter().all(Value::is_string) => auds.iter().any(|a| a == token_endpoint),
        Some(_) => return Err(AssertionError::InvalidClaimType("aud")),
    };
    if !audience_ok {
        return Err(AssertionError::AudienceMismatch(echo(token_endpoint)));
    }

    let exp = numeric_date(claims, "exp")?.ok_or(AssertionError::MissingClaim("exp"))?;
    if exp < now.saturating_sub(CLOCK_SKEW_SECS) {
        return Err(AssertionError::Expired { exp, now });
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECS + CLOCK_SKEW_SECS) {
        return Err(AssertionError::ExpiresTooLate { exp, now });
    }
    // RFC 7523 §3 item 5: nbf is optional, but must be honoured when present.
    if let Some(nbf) = numeric_date(claims, "nbf")?
        && nbf > now.saturating_add(CLOCK_SKEW_SECS)
    {
        return Err(AssertionError::NotYetValid { nbf, now });
    }

    let jti = string_claim(claims, "jti")?;
    if jti.is_empty() {
        return Err(AssertionError::EmptyJti);
    }
    if jti.chars().count() > MAX_JTI_CHARS {
        return Err(AssertionError::JtiTooLong);
    }
    Ok(VerifiedAssertion { jti: jti.to_owned(), exp })
}

fn string_claim<'a>(claims: &'a Map<String, Value>, name: &'static str) -> Result<&'a str, AssertionError> {
    match claims.get(name) {
        None => Err(AssertionError::MissingClaim(name)),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(AssertionError::InvalidClaimType(name)),
    }
}

/// RFC 7519 §2 NumericDate: a JSON number of seconds, possibly fractional.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, AssertionError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(secs), _) => Ok(Some(secs)),
            // `as` saturates, so absurd values still land on the "too late"/"expired" checks.
            (None, Some(secs)) if secs.is_finite() => Ok(Some(secs.floor() as i64)),
            _ => Err(AssertionError::InvalidClaimType(name)),
        },
        Some(_) => Err(AssertionError::InvalidClaimType(name)),
    }
}

fn split_compact(token: &str) -> Result<(&str, &str, &str), AssertionError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err(AssertionError::Malformed("expected three dot-separated parts")),
    }
}

fn decode_json_segment(segment: &str) -> Option<Value> {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
}

fn invalid_key(kid: &str, reason: &str) -> AssertionError {
    AssertionError::InvalidKey { kid: echo(kid), reason: reason.to_owned() }
}

/// Makes a client-supplied value safe to embed in an `error_description` (RFC 6749 §5.2 charset,
/// bounded length), so a hostile kid or alg cannot inject quotes or control characters.
fn echo(value: &str) -> String {
    let mut out: String =
        value.chars().filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\').take(MAX_ECHO_CHARS).collect();
    if value.chars().count() > MAX_ECHO_CHARS {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};
    use p384::pkcs8::EncodePrivateKey as _;
    use rand::rngs::OsRng;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use serde_json::json;
    use std::sync::OnceLock;

    const CLIENT: &str = "backend-client-1";
    const TOKEN_ENDPOINT: &str = "https://auth.example.org/token";
    const NOW: i64 = 1_750_000_000;
    const RSA_KID: &str = "rsa-1";
    const EC_KID: &str = "ec-1";

    struct TestKey {
        encoding: EncodingKey,
        public_jwk: Value,
    }

    fn public_jwk(encoding: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(encoding, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk
    }

    fn rsa_key(kid: &str) -> TestKey {
        let private = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        let encoding = EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
        let public_jwk = public_jwk(&encoding, Algorithm::RS384, kid);
        TestKey { encoding, public_jwk }
    }

    fn ec_key(kid: &str) -> TestKey {
        let secret = p384::SecretKey::random(&mut OsRng);
        let encoding = EncodingKey::from_ec_der(secret.to_pkcs8_der().unwrap().as_bytes());
        let public_jwk = public_jwk(&encoding, Algorithm::ES384, kid);
        TestKey { encoding, public_jwk }
    }

    fn client_rsa() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| rsa_key(RSA_KID))
    }

    fn attacker_rsa() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| rsa_key("attacker"))
    }

    fn client_ec() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| ec_key(EC_KID))
    }

    fn client_jwks() -> Value {
        json!({ "keys": [client_rsa().public_jwk, client_ec().public_jwk] })
    }

    fn claims() -> Value {
        json!({
            "iss": CLIENT,
            "sub": CLIENT,
            "aud": TOKEN_ENDPOINT,
            "exp": NOW + 240,
            "jti": "6f1f3ad6-5b0e-4b7c-9d1a-0c2f7a9a8e11",
        })
    }

    fn claims_with(name: &str, value: Value) -> Value {
        let mut claims = claims();
        claims[name] = value;
        claims
    }

    fn claims_without(name: &str) -> Value {
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    fn rs384(claims: &Value) -> String {
        sign(Algorithm::RS384, &client_rsa().encoding, Some(RSA_KID), claims)
    }

    fn check(assertion: &str) -> Result<VerifiedAssertion, AssertionError> {
        verify(assertion, CLIENT, TOKEN_ENDPOINT, &client_jwks(), NOW)
    }

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    /// RFC 6749 §5.2 error_description charset.
    fn assert_description_safe(err: &AssertionError) {
        let text = err.to_string();
        assert!(text.chars().all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\'), "unsafe description: {text}");
    }

    fn expect_err(assertion: &str, expected: AssertionError) {
        let err = check(assertion).unwrap_err();
        assert_description_safe(&err);
        assert_eq!(err, expected, "{err}");
    }

    #[test]
    fn rs384_happy_path() {
        let verified = check(&rs384(&claims())).unwrap();
        assert_eq!(
            verified,
            VerifiedAssertion { jti: "6f1f3ad6-5b0e-4b7c-9d1a-0c2f7a9a8e11".to_owned(), exp: NOW + 240 }
        );
    }

    #[test]
    fn es384_happy_path() {
        let assertion = sign(Algorithm::ES384, &client_ec().encoding, Some(EC_KID), &claims());
        assert_eq!(check(&assertion).unwrap().exp, NOW + 240);
    }

    #[test]
    fn jwks_key_without_alg_is_accepted() {
        let mut jwk = client_rsa().public_jwk.clone();
        jwk.as_object_mut().unwrap().remove("alg");
        let jwks = json!({ "keys": [jwk] });
        assert!(verify(&rs384(&claims()), CLIENT, TOKEN_ENDPOINT, &jwks, NOW).is_ok());
    }

    #[test]
    fn rs256_refused() {
        let assertion = sign(Algorithm::RS256, &client_rsa().encoding, Some(RSA_KID), &claims());
        expect_err(&assertion, AssertionError::UnsupportedAlgorithm("RS256".to_owned()));
    }

    #[test]
    fn hs256_refused() {
        // Keyed with the public JWK, as an algorithm-confusion attacker would.
        let secret = serde_json::to_vec(&client_rsa().public_jwk).unwrap();
        let assertion = sign(Algorithm::HS256, &EncodingKey::from_secret(&secret), Some(RSA_KID), &claims());
        expect_err(&assertion, AssertionError::UnsupportedAlgorithm("HS256".to_owned()));
    }

    #[test]
    fn other_algorithms_refused() {
        let ps384 = sign(Algorithm::PS384, &client_rsa().encoding, Some(RSA_KID), &claims());
        expect_err(&ps384, AssertionError::UnsupportedAlgorithm("PS384".to_owned()));

        let none = format!("{}.{}.", b64(&json!({ "alg": "none", "kid": RSA_KID })), b64(&claims()));
        expect_err(&none, AssertionError::UnsupportedAlgorithm("none".to_owned()));

        let no_alg = format!("{}.{}.AA", b64(&json!({ "kid": RSA_KID })), b64(&claims()));
        expect_err(&no_alg, AssertionError::MissingAlgorithm);
    }

    #[test]
    fn hostile_header_values_are_sanitised_in_messages() {
        let alg = format!("\"\\\n{}", "x".repeat(100));
        let token = format!("{}.{}.AA", b64(&json!({ "alg": alg, "kid": RSA_KID })), b64(&claims()));
        let err = check(&token).unwrap_err();
        assert_description_safe(&err);
        assert_eq!(err, AssertionError::UnsupportedAlgorithm(format!("{}...", "x".repeat(64))));
    }

    #[test]
    fn missing_kid_refused() {
        let assertion = sign(Algorithm::RS384, &client_rsa().encoding, None, &claims());
        expect_err(&assertion, AssertionError::MissingKid);
    }

    #[test]
    fn unknown_kid_refused() {
        let assertion = sign(Algorithm::RS384, &client_rsa().encoding, Some("rsa-2"), &claims());
        expect_err(&assertion, AssertionError::UnknownKid("rsa-2".to_owned()));
    }

    #[test]
    fn kty_must_fit_alg() {
        // An RS384 assertion naming the client's EC key.
        let assertion = sign(Algorithm::RS384, &client_rsa().encoding, Some(EC_KID), &claims());
        expect_err(&assertion, AssertionError::KeyTypeMismatch { kid: EC_KID.to_owned(), kty: "RSA", alg: "RS384" });
    }

    #[test]
    fn same_kid_different_kty_resolves_by_kty() {
        let mut ec = client_ec().public_jwk.clone();
        ec["kid"] = json!(RSA_KID);
        let jwks = json!({ "keys": [ec, client_rsa().public_jwk] });
        assert!(verify(&rs384(&claims()), CLIENT, TOKEN_ENDPOINT, &jwks, NOW).is_ok());
    }

    #[test]
    fn ambiguous_key_refused() {
        let mut twin = attacker_rsa().public_jwk.clone();
        twin["kid"] = json!(RSA_KID);
        let jwks = json!({ "keys": [client_rsa().public_jwk, twin] });
        assert_eq!(
            verify(&rs384(&claims()), CLIENT, TOKEN_ENDPOINT, &jwks, NOW),
            Err(AssertionError::AmbiguousKey { kid: RSA_KID.to_owned(), kty: "RSA" })
        );
    }

    #[test]
    fn jwks_alg_must_match() {
        let mut jwk = client_rsa().public_jwk.clone();
        jwk["alg"] = json!("RS256");
        let jwks = json!({ "keys": [jwk] });
        assert_eq!(
            verify(&rs384(&claims()), CLIENT, TOKEN_ENDPOINT, &jwks, NOW),
            Err(AssertionError::KeyAlgorithmMismatch {
                kid: RSA_KID.to_owned(),
                key_alg: "RS256".to_owned(),
                alg: "RS384"
            })
        );
    }

    #[test]
    fn es384_needs_p384_key() {
        let mut jwk = client_ec().public_jwk.clone();
        jwk["crv"] = json!("P-256");
        let jwks = json!({ "keys": [jwk] });
        let assertion = sign(Algorithm::ES384, &client_ec().encoding, Some(EC_KID), &claims());
        let err = verify(&assertion, CLIENT, TOKEN_ENDPOINT, &jwks, NOW).unwrap_err();
        assert!(matches!(&err, AssertionError::InvalidKey { reason, .. } if reason.contains("P-384")), "{err}");
    }

    #[test]
    fn forged_signature_refused() {
        let forged = sign(Algorithm::RS384, &attacker_rsa().encoding, Some(RSA_KID), &claims());
        expect_err(&forged, AssertionError::InvalidSignature(RSA_KID.to_owned()));

        let other_ec = ec_key(EC_KID);
        let forged = sign(Algorithm::ES384, &other_ec.encoding, Some(EC_KID), &claims());
        expect_err(&forged, AssertionError::InvalidSignature(EC_KID.to_owned()));
    }

    #[test]
    fn tampered_payload_refused() {
        let assertion = rs384(&claims());
        let parts: Vec<&str> = assertion.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], b64(&claims_with("sub", json!("other-client"))), parts[2]);
        expect_err(&tampered, AssertionError::InvalidSignature(RSA_KID.to_owned()));
    }

    #[test]
    fn iss_must_be_client() {
        expect_err(&rs384(&claims_with("iss", json!("someone-else"))), AssertionError::IssuerMismatch);
        expect_err(&rs384(&claims_without("iss")), AssertionError::MissingClaim("iss"));
    }

    #[test]
    fn sub_must_be_client() {
        expect_err(&rs384(&claims_with("sub", json!("someone-else"))), AssertionError::SubjectMismatch);
        expect_err(&rs384(&claims_without("sub")), AssertionError::MissingClaim("sub"));
    }

    #[test]
    fn aud_must_be_token_endpoint() {
        let wrong = AssertionError::AudienceMismatch(TOKEN_ENDPOINT.to_owned());
        expect_err(&rs384(&claims_with("aud", json!("https://auth.example.org/authorize"))), wrong.clone());
        expect_err(&rs384(&claims_with("aud", json!("https://auth.example.org/token/"))), wrong.clone());
        expect_err(&rs384(&claims_with("aud", json!(["https://fhir.example.org"]))), wrong);
        expect_err(&rs384(&claims_without("aud")), AssertionError::MissingClaim("aud"));
        expect_err(&rs384(&claims_with("aud", json!(42))), AssertionError::InvalidClaimType("aud"));
    }

    #[test]
    fn aud_array_containing_token_endpoint_ok() {
        let aud = json!(["https://fhir.example.org", TOKEN_ENDPOINT]);
        assert!(check(&rs384(&claims_with("aud", aud))).is_ok());
    }

    #[test]
    fn expired_refused() {
        expect_err(&rs384(&claims_with("exp", json!(NOW - 60))), AssertionError::Expired { exp: NOW - 60, now: NOW });
        // 5 s of skew is tolerated, not a second more.
        assert!(check(&rs384(&claims_with("exp", json!(NOW - 5)))).is_ok());
        expect_err(&rs384(&claims_with("exp", json!(NOW - 6))), AssertionError::Expired { exp: NOW - 6, now: NOW });
    }

    #[test]
    fn exp_too_far_ahead_refused() {
        assert!(check(&rs384(&claims_with("exp", json!(NOW + 300)))).is_ok());
        assert!(check(&rs384(&claims_with("exp", json!(NOW + 305)))).is_ok());
        expect_err(
            &rs384(&claims_with("exp", json!(NOW + 306))),
            AssertionError::ExpiresTooLate { exp: NOW + 306, now: NOW },
        );
        expect_err(
            &rs384(&claims_with("exp", json!(NOW + 86_400))),
            AssertionError::ExpiresTooLate { exp: NOW + 86_400, now: NOW },
        );
    }

    #[test]
    fn exp_must_be_present_and_numeric() {
        expect_err(&rs384(&claims_without("exp")), AssertionError::MissingClaim("exp"));
        expect_err(&rs384(&claims_with("exp", json!("soon"))), AssertionError::InvalidClaimType("exp"));
        // NumericDate may be fractional.
        assert_eq!(check(&rs384(&claims_with("exp", json!(NOW as f64 + 60.5)))).unwrap().exp, NOW + 60);
    }

    #[test]
    fn future_nbf_refused() {
        assert!(check(&rs384(&claims_with("nbf", json!(NOW - 10)))).is_ok());
        expect_err(
            &rs384(&claims_with("nbf", json!(NOW + 60))),
            AssertionError::NotYetValid { nbf: NOW + 60, now: NOW },
        );
    }

    #[test]
    fn jti_rules() {
        expect_err(&rs384(&claims_without("jti")), AssertionError::MissingClaim("jti"));
        expect_err(&rs384(&claims_with("jti", json!(""))), AssertionError::EmptyJti);
        expect_err(&rs384(&claims_with("jti", json!(7))), AssertionError::InvalidClaimType("jti"));
        expect_err(&rs384(&claims_with("jti", json!("j".repeat(256)))), AssertionError::JtiTooLong);
        assert_eq!(check(&rs384(&claims_with("jti", json!("j".repeat(255))))).unwrap().jti.len(), 255);
    }

    #[test]
    fn crit_header_refused() {
        let mut header = Header::new(Algorithm::RS384);
        header.kid = Some(RSA_KID.to_owned());
        header.crit = Some(vec!["b64".to_owned()]);
        let assertion = jsonwebtoken::encode(&header, &claims(), &client_rsa().encoding).unwrap();
        expect_err(&assertion, AssertionError::UnsupportedCritical);
    }

    #[test]
    fn malformed_assertions_refused() {
        for token in ["", "abc", "a.b", "a.b.c.d", "!!!.e30.AA", ".e30.AA"] {
            let err = check(token).unwrap_err();
            assert!(matches!(err, AssertionError::Malformed(_)), "{token:?}: {err}");
        }
        let not_json_payload = format!("{}.bm90IGpzb24.AA", b64(&json!({ "alg": "RS384", "kid": RSA_KID })));
        assert!(matches!(check(&not_json_payload), Err(AssertionError::InvalidSignature(_))));
    }

    #[test]
    fn private_key_in_runtime_jwks_refused() {
        let mut jwk = client_rsa().public_jwk.clone();
        jwk["d"] = json!("AQAB");
        let jwks = json!({ "keys": [jwk] });
        let err = verify(&rs384(&claims()), CLIENT, TOKEN_ENDPOINT, &jwks, NOW).unwrap_err();
        assert!(matches!(err, AssertionError::InvalidKey { .. }), "{err}");
    }

    #[test]
    fn unusable_jwks_refused() {
        let err = verify(&rs384(&claims()), CLIENT, TOKEN_ENDPOINT, &json!([]), NOW).unwrap_err();
        assert!(matches!(err, AssertionError::InvalidJwks(_)), "{err}");
    }

    #[test]
    fn registration_accepts_rsa_and_p384_keys() {
        assert_eq!(public_jwk_is_valid(&client_jwks()), Ok(()));
    }

    #[test]
    fn registration_refuses_private_keys() {
        for member in ["d", "p", "q", "dp", "dq", "qi"] {
            let mut jwk = client_rsa().public_jwk.clone();
            jwk[member] = json!("AQAB");
            assert_eq!(
                public_jwk_is_valid(&json!({ "keys": [jwk] })),
                Err("private key material in a public JWKS".to_owned()),
                "{member}"
            );
        }
        let mut ec = client_ec().public_jwk.clone();
        ec["d"] = json!("AQAB");
        assert_eq!(
            public_jwk_is_valid(&json!({ "keys": [ec] })),
            Err("private key material in a public JWKS".to_owned())
        );
    }

    #[test]
    fn registration_refuses_bad_sets() {
        let rsa = client_rsa().public_jwk.clone();
        let ec = client_ec().public_jwk.clone();
        let refused = |jwks: Value| public_jwk_is_valid(&jwks).unwrap_err();

        refused(json!([rsa]));
        refused(json!({ "keys": [] }));
        refused(json!({ "keys": "nope" }));

        let mut no_kid = rsa.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert!(refused(json!({ "keys": [no_kid] })).contains("no kid"));

        assert!(refused(json!({ "keys": [{ "kty": "oct", "kid": "h", "k": "c2VjcmV0" }] })).contains("private"));
        assert!(
            refused(json!({ "keys": [{ "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA" }] })).contains("kty")
        );

        let mut p256 = ec.clone();
        p256["crv"] = json!("P-256");
        assert!(refused(json!({ "keys": [p256] })).contains("P-384"));

        let mut off_curve = ec.clone();
        off_curve["y"] = json!(URL_SAFE_NO_PAD.encode([1u8; 48]));
        assert!(refused(json!({ "keys": [off_curve] })).contains("not a valid public key"));

        let mut rs256 = rsa.clone();
        rs256["alg"] = json!("RS256");
        assert!(refused(json!({ "keys": [rs256] })).contains("alg"));

        let mut short = rsa.clone();
        short["n"] = json!(URL_SAFE_NO_PAD.encode([0xffu8; 128]));
        assert!(refused(json!({ "keys": [short] })).contains("2048"));

        let mut enc = rsa.clone();
        enc["use"] = json!("enc");
        assert!(refused(json!({ "keys": [enc] })).contains("use"));

        assert!(refused(json!({ "keys": [rsa, rsa] })).contains("more than one"));
    }

    #[test]
    fn key_set_from_json_parses_registered_keys() {
        let set = key_set_from_json(&client_jwks()).unwrap();
        assert_eq!(set.keys.len(), 2);
        assert!(set.find(RSA_KID).is_some() && set.find(EC_KID).is_some());
        assert!(matches!(key_set_from_json(&json!({ "nope": [] })), Err(AssertionError::InvalidJwks(_))));
    }
}
