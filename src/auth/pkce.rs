//! PKCE checks for the authorization and token endpoints: RFC 7636 §4.1 (code_verifier syntax), §4.2
//! (S256 code_challenge) and §4.6 (server verifies code_verifier against the stored challenge).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const VERIFIER_MIN_LEN: usize = 43;
const VERIFIER_MAX_LEN: usize = 128;
/// BASE64URL-no-pad of a 32-byte SHA-256 digest is always exactly this long.
const CHALLENGE_LEN: usize = 43;
const SHA256_LEN: usize = 32;

/// Checks a token-request `code_verifier` against the S256 `code_challenge` stored at authorization time.
///
/// Returns `false` for a syntactically invalid verifier (RFC 7636 §4.1) even when its hash would match,
/// because §4.6 requires the server to treat such a verifier as a failed exchange.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_valid_verifier(verifier) || !is_valid_challenge(challenge) {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// `code_verifier` syntax, RFC 7636 §4.1: 43..=128 characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    // Every allowed character is ASCII, so once the alphabet check passes the byte length is the
    // character length.
    (VERIFIER_MIN_LEN..=VERIFIER_MAX_LEN).contains(&verifier.len()) && verifier.bytes().all(is_unreserved)
}

/// Whether an authorization request's S256 `code_challenge` could be the BASE64URL-no-pad encoding of a
/// SHA-256 digest (RFC 7636 §4.2). Refusing malformed challenges at the authorization endpoint
/// surfaces client bugs there instead of as an opaque `invalid_grant` at the token endpoint.
pub fn is_valid_challenge(challenge: &str) -> bool {
    // Decoding (not just an alphabet check) also rejects a 43rd character with non-zero trailing bits,
    // which no real digest encodes to and which therefore could never match any verifier.
    challenge.len() == CHALLENGE_LEN && URL_SAFE_NO_PAD.decode(challenge).is_ok_and(|digest| digest.len() == SHA256_LEN)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Length is not secret here (both sides are always 43 bytes), so only the contents are compared
/// without early exit.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keeps the optimiser from turning the fold back into a short-circuiting comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn challenge_for(verifier: &str) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert!(is_valid_challenge(RFC_CHALLENGE));
        assert!(verify_s256(RFC_VERIFIER, RFC_CHALLENGE));
        assert_eq!(challenge_for(RFC_VERIFIER), RFC_CHALLENGE);
    }

    #[test]
    fn wrong_verifier_refused() {
        let other = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";
        assert!(!verify_s256(other, RFC_CHALLENGE));
    }

    #[test]
    fn plain_method_value_is_not_accepted_as_s256() {
        // A client that sent method=plain stores the verifier itself as the challenge.
        assert!(!verify_s256(RFC_VERIFIER, RFC_VERIFIER));
    }

    #[test]
    fn verifier_length_bounds() {
        let min = "a".repeat(43);
        let max = "~".repeat(128);
        assert!(verify_s256(&min, &challenge_for(&min)));
        assert!(verify_s256(&max, &challenge_for(&max)));

        let short = "a".repeat(42);
        let long = "a".repeat(129);
        assert!(!verify_s256(&short, &challenge_for(&short)));
        assert!(!verify_s256(&long, &challenge_for(&long)));
    }

    #[test]
    fn verifier_alphabet() {
        let ok = format!("{}-._~AZaz09", "x".repeat(40));
        assert!(is_valid_verifier(&ok));
        assert!(verify_s256(&ok, &challenge_for(&ok)));

        for bad in ['+', '/', '=', ' ', '%', 'é'] {
            let verifier = format!("{}{bad}", "a".repeat(50));
            assert!(!is_valid_verifier(&verifier), "{bad:?} must be refused");
            assert!(!verify_s256(&verifier, &challenge_for(&verifier)), "{bad:?} must be refused");
        }
    }

    #[test]
    fn challenge_syntax() {
        assert!(!is_valid_challenge(""));
        assert!(!is_valid_challenge(&RFC_CHALLENGE[..42]));
        assert!(!is_valid_challenge(&format!("{RFC_CHALLENGE}=")));
        assert!(!is_valid_challenge(&format!("{RFC_CHALLENGE}A")));
        // Standard-alphabet characters instead of the URL-safe ones.
        assert!(!is_valid_challenge(&RFC_CHALLENGE.replace('-', "+")));
        // Same length and alphabet, but the final character carries non-zero padding bits.
        let non_canonical = format!("{}N", &RFC_CHALLENGE[..42]);
        assert!(!is_valid_challenge(&non_canonical));
        assert!(!verify_s256(RFC_VERIFIER, &non_canonical));
    }
}
