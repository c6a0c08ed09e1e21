//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP: HMAC-SHA1, 30-second steps, six
//! digits), the second factor of a password sign-in, as authenticator apps compute them.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
/// Steps either side of now a code is accepted for: clocks and typing take time.
const WINDOW: i64 = 1;

/// A new 160-bit secret (RFC 4226 §4 recommends at least that).
pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    getrandom::fill(&mut secret).expect("the operating system's random generator is unavailable");
    secret
}

/// RFC 4648 base32 without padding: how authenticator apps take the secret.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').chars() {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u32 - 'A' as u32,
            c @ '2'..='7' => c as u32 - '2' as u32 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// The HOTP value for a counter (RFC 4226 §5.3), `digits` long.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = (hash[hash.len() - 1] & 0x0f) as usize;
    let binary = u32::from_be_bytes([hash[offset] & 0x7f, hash[offset + 1], hash[offset + 2], hash[offset + 3]]);
    binary % 10u32.pow(digits)
}

/// The code for the 30-second step holding `unix_time`.
pub fn code_at(secret: &[u8], unix_time: i64) -> String {
    format!("{:06}", hotp(secret, (unix_time / STEP_SECS) as u64, DIGITS))
}

/// The step a code is valid for (now, or one step either side), if it is one after
/// `last_used`: a code works once.
pub fn verify(secret: &[u8], code: &str, unix_time: i64, last_used: Option<i64>) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_time / STEP_SECS;
    (now - WINDOW..=now + WINDOW)
        .filter(|step| last_used.is_none_or(|last| *step > last))
        .find(|step| super::secrets::constant_time_eq(&format!("{:06}", hotp(secret, *step as u64, DIGITS)), code))
}

/// The `otpauth://` URI an authenticator app scans (as a QR code) or takes typed in.
pub fn provisioning_uri(secret: &[u8], account: &str) -> String {
    let label: String = form_urlencoded::byte_serialize(format!("Kiln:{account}").as_bytes()).collect();
    format!("otpauth://totp/{label}?secret={}&issuer=Kiln&algorithm=SHA1&digits=6&period=30", base32(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn matches_the_rfc_6238_test_vectors() {
        // RFC 6238 Appendix B, SHA-1, eight digits.
        for (time, expected) in [(59, 94287082), (1111111109, 7081804), (1234567890, 89005924), (2000000000, 69279037)]
        {
            assert_eq!(hotp(RFC_SECRET, (time / STEP_SECS) as u64, 8), expected, "at {time}");
        }
        assert_eq!(code_at(RFC_SECRET, 59), "287082");
    }

    #[test]
    fn a_code_works_once_and_only_near_its_time() {
        let code = code_at(RFC_SECRET, 1111111109);
        let step = verify(RFC_SECRET, &code, 1111111109, None).expect("valid now");
        assert_eq!(verify(RFC_SECRET, &code, 1111111109 + 30, None), Some(step), "one step late is fine");
        assert_eq!(verify(RFC_SECRET, &code, 1111111109 + 90, None), None, "three steps late is not");
        assert_eq!(verify(RFC_SECRET, &code, 1111111109, Some(step)), None, "used once");
        assert_eq!(verify(RFC_SECRET, "12345", 1111111109, None), None);
        assert_eq!(verify(RFC_SECRET, "abcdef", 1111111109, None), None);
    }

    #[test]
    fn base32_round_trips() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        let secret = new_secret();
        assert_eq!(from_base32(&base32(&secret)).unwrap(), secret);
        assert!(provisioning_uri(&secret, "dr smith").starts_with("otpauth://totp/Kiln%3Adr+smith?secret="));
    }
}
