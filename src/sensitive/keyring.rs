//! The data key ring: AES-256-GCM keys by id (one of them active for new values) and the key of
//! the blind index, kept in a key file outside the database (architecture.md "Secrets at rest").
//!
//! The file is text, one key per line, so an operator can read which keys exist:
//!
//! ```text
//! index <base64 of 32 bytes>
//! key k-3f9a01c2 <base64 of 32 bytes>
//! key k-77d0be14 <base64 of 32 bytes> active
//! ```

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;

/// What a sealed value starts with: `kiln-sealed:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`.
pub const SEALED_PREFIX: &str = "kiln-sealed:v1:";
/// What a blinded (keyed-hash) index entry starts with.
pub const BLIND_PREFIX: &str = "hmac:";

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// A data key: its id, its bytes (to write the file back) and the cipher made from it.
struct DataKey {
    id: String,
    bytes: [u8; KEY_BYTES],
    cipher: Aes256Gcm,
}

impl DataKey {
    fn new(id: String, bytes: [u8; KEY_BYTES]) -> DataKey {
        DataKey { id, bytes, cipher: Aes256Gcm::new_from_slice(&bytes).expect("a 32-byte key") }
    }
}

/// The keys of one key file.
pub struct KeyRing {
    index_key: [u8; KEY_BYTES],
    keys: Vec<DataKey>,
    active: usize,
}

impl fmt::Debug for KeyRing {
    // Never the key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.key_ids()).field("active", &self.active_id()).finish()
    }
}

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the value is not sealed in a form this server writes")]
    Malformed,
    #[error("the value was sealed under key {0}, which is not in the key file")]
    UnknownKey(String),
    #[error("the value does not decrypt under key {0} (altered, or sealed with another key of that id)")]
    Forged(String),
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random generator is unavailable");
    bytes
}

fn new_key_id() -> String {
    let bytes: [u8; 4] = random_bytes();
    format!("k-{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

fn decode_key(text: &str, line: usize) -> Result<[u8; KEY_BYTES], String> {
    let bytes = STANDARD.decode(text).map_err(|e| format!("line {line}: the key is not base64 ({e})"))?;
    bytes.try_into().map_err(|_| format!("line {line}: a key must be {KEY_BYTES} bytes"))
}

impl KeyRing {
    /// A new ring: a fresh index key and one fresh active data key.
    pub fn generate() -> KeyRing {
        let mut ring = KeyRing { index_key: random_bytes(), keys: Vec::new(), active: 0 };
        ring.add_key();
        ring
    }

    /// Adds a fresh data key and makes it the active one; answers its id.
    pub fn add_key(&mut self) -> String {
        let id = new_key_id();
        self.keys.push(DataKey::new(id.clone(), random_bytes()));
        self.active = self.keys.len() - 1;
        id
    }

    /// Removes a data key that is not the active one.
    pub fn remove_key(&mut self, id: &str) -> Result<(), String> {
        let position =
            self.keys.iter().position(|k| k.id == id).ok_or_else(|| format!("no key {id} in the key file"))?;
        if position == self.active {
            return Err(format!("{id} is the active key; rotate to a new key first"));
        }
        self.keys.remove(position);
        if position < self.active {
            self.active -= 1;
        }
        Ok(())
    }

    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    pub fn active_id(&self) -> &str {
        &self.keys[self.active].id
    }

    /// Reads the key file text.
    pub fn parse(text: &str) -> Result<KeyRing, String> {
        let mut index_key = None;
        let mut keys = Vec::new();
        let mut active = None;
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["index", key] => index_key = Some(decode_key(key, number)?),
                ["key", id, key, flags @ ..] => {
                    if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                        return Err(format!("line {number}: a key id is letters, digits and '-'"));
                    }
                    if keys.iter().any(|k: &DataKey| k.id == *id) {
                        return Err(format!("line {number}: key {id} appears twice"));
                    }
                    match flags {
                        [] => {}
                        ["active"] if active.is_none() => active = Some(keys.len()),
                        ["active"] => return Err(format!("line {number}: only one key may be active")),
                        _ => return Err(format!("line {number}: expected `key <id> <base64> [active]`")),
                    }
                    keys.push(DataKey::new(id.to_string(), decode_key(key, number)?));
                }
                _ => return Err(format!("line {number}: expected `index <base64>` or `key <id> <base64> [active]`")),
            }
        }
        let index_key = index_key.ok_or("the key file has no `index` line")?;
        if keys.is_empty() {
            return Err("the key file has no data key".into());
        }
        let active = active.unwrap_or(keys.len() - 1);
        Ok(KeyRing { index_key, keys, active })
    }

    /// The key file text.
    pub fn render(&self) -> String {
        let mut text = String::from(
            "# Kiln data keys. Keep this file secret, identical on every node, and backed up:\n\
             # without it, sealed values (e.g. SSNs) cannot be read. Manage it with `kiln keys`.\n",
        );
        text.push_str(&format!("index {}\n", STANDARD.encode(self.index_key)));
        for (i, key) in self.keys.iter().enumerate() {
            let flag = if i == self.active { " active" } else { "" };
            text.push_str(&format!("key {} {}{flag}\n", key.id, STANDARD.encode(key.bytes)));
        }
        text
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<KeyRing, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        KeyRing::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Writes the key file readable by its owner only, replacing it in one step (a node that
    /// reloads it never sees half a file).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let temporary = path.with_extension("keys.new");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(|e| format!("{}: {e}", temporary.display()))?;
        std::io::Write::write_all(&mut file, self.render().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| format!("{}: {e}", temporary.display()))?;
        std::fs::rename(&temporary, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Seals `plaintext` under the active key. `context` (e.g. the identifier system) is bound
    /// to the ciphertext as associated data, so a sealed value cannot be moved to another use.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let key = &self.keys[self.active];
        let nonce: [u8; NONCE_BYTES] = random_bytes();
        let ciphertext = key
            .cipher
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .expect("AES-GCM encrypts any message of this size");
        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The key id a sealed value names, if it is one.
    pub fn key_of(sealed: &str) -> Option<&str> {
        sealed.strip_prefix(SEALED_PREFIX)?.split_once(':').map(|(id, _)| id)
    }

    /// Opens a value sealed by [`seal`](KeyRing::seal) with the same `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<String, OpenError> {
        let (id, payload) =
            sealed.strip_prefix(SEALED_PREFIX).and_then(|rest| rest.split_once(':')).ok_or(OpenError::Malformed)?;
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| OpenError::UnknownKey(id.to_string()))?;
        let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| OpenError::Malformed)?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce length");
        let plaintext = key
            .cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: context.as_bytes() })
            .map_err(|_| OpenError::Forged(id.to_string()))?;
        String::from_utf8(plaintext).map_err(|_| OpenError::Forged(id.to_string()))
    }

    /// The blind-index form of a value: a keyed hash, equal for equal values, that says nothing
    /// of the value without the index key. `context` keeps equal values of different systems
    /// apart.
    pub fn blind(&self, value: &str, context: &str) -> String {
        let mut mac =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.index_key).expect("HMAC takes keys of any length");
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        format!("{BLIND_PREFIX}{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// A fingerprint of the index key, stored in the database so that a node started with
    /// another key file is refused instead of silently missing every blinded search.
    pub fn fingerprint(&self) -> String {
        self.blind("kiln key file fingerprint", "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSN: &str = "http://hl7.org/fhir/sid/us-ssn";

    #[test]
    fn a_sealed_value_opens_to_the_plaintext_and_shows_none_of_it() {
        let ring = KeyRing::generate();
        let sealed = ring.seal("123-45-6789", SSN);
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("6789"));
        assert_eq!(KeyRing::key_of(&sealed), Some(ring.active_id()));
        assert_eq!(ring.open(&sealed, SSN).unwrap(), "123-45-6789");
        // A fresh nonce each time: equal values do not seal alike.
        assert_ne!(ring.seal("123-45-6789", SSN), sealed);
    }

    #[test]
    fn altered_moved_or_unknown_values_are_refused() {
        let ring = KeyRing::generate();
        let sealed = ring.seal("123-45-6789", SSN);
        assert_eq!(ring.open(&sealed, "urn:other"), Err(OpenError::Forged(ring.active_id().into())));
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert!(matches!(ring.open(std::str::from_utf8(&altered).unwrap(), SSN), Err(OpenError::Forged(_))));
        assert_eq!(KeyRing::generate().open(&sealed, SSN), Err(OpenError::UnknownKey(ring.active_id().into())));
        assert_eq!(ring.open("kiln-sealed:v1:nonsense", SSN), Err(OpenError::Malformed));
    }

    #[test]
    fn the_key_file_round_trips_and_rotation_keeps_old_keys_readable() {
        let mut ring = KeyRing::generate();
        let old = ring.seal("123-45-6789", SSN);
        let first = ring.active_id().to_string();
        let second = ring.add_key();
        let reloaded = KeyRing::parse(&ring.render()).unwrap();
        assert_eq!(reloaded.active_id(), second);
        assert_eq!(reloaded.key_ids(), [first.as_str(), second.as_str()]);
        assert_eq!(reloaded.open(&old, SSN).unwrap(), "123-45-6789");
        assert_eq!(KeyRing::key_of(&reloaded.seal("x", SSN)), Some(second.as_str()));
        assert_eq!(reloaded.blind("123-45-6789", SSN), ring.blind("123-45-6789", SSN));
        let mut retired = reloaded;
        assert!(retired.remove_key(&second).is_err());
        retired.remove_key(&first).unwrap();
        assert_eq!(retired.open(&old, SSN), Err(OpenError::UnknownKey(first)));
    }

    #[test]
    fn blinding_is_keyed_and_separates_systems() {
        let ring = KeyRing::generate();
        let blinded = ring.blind("123-45-6789", SSN);
        assert_eq!(blinded, ring.blind("123-45-6789", SSN));
        assert_ne!(blinded, ring.blind("123-45-6789", "urn:other"));
        assert_ne!(blinded, KeyRing::generate().blind("123-45-6789", SSN));
        assert!(!blinded.contains("6789"));
    }

    #[test]
    fn broken_key_files_are_refused_with_the_line() {
        assert!(KeyRing::parse("key k-1 AAAA active\n").unwrap_err().contains("line 1"));
        assert!(KeyRing::parse("index AAAA\n").unwrap_err().contains("32 bytes"));
        let ring = KeyRing::generate();
        let two_active = format!("{}key k-2 {} active\n", ring.render(), STANDARD.encode([0u8; 32]));
        assert!(KeyRing::parse(&two_active).unwrap_err().contains("only one key"));
    }
}
