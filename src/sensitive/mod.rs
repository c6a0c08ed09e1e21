//! Sensitive identifiers at rest (architecture.md "Secrets at rest", mapping.md Patient): the
//! values of identifiers whose system is configured as sensitive (the SSN by default) are stored
//! sealed with AES-256-GCM under a key id, indexed for exact search by a keyed hash (HMAC), and
//! shown in responses only to callers whose role and scope allow; everyone else gets the element
//! with the data-absent-reason `masked`.
//!
//! The life of a value: a write opens what it carries (a PATCH works on the stored, sealed form;
//! a client sending back a masked value keeps the stored one), the search index is computed on
//! the plaintext and then blinded, and the value is sealed into the stored JSON. Every response
//! of the FHIR API passes [`middleware::present`], which opens or masks what it carries.

use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::access::{Principal, PrincipalKind};
use crate::config::Settings;
use crate::error::{FhirError, Issue, IssueType};
use crate::search::IndexRow;
use crate::store::DynStore;

pub mod keyring;
pub mod middleware;
pub mod rotate;

pub use keyring::{BLIND_PREFIX, KeyRing, OpenError, SEALED_PREFIX};

/// The associated data sealed identifier values are bound to.
pub const IDENTIFIER_CONTEXT: &str = "Identifier.value";
/// The associated data of sealed TOTP secrets and private signing keys.
pub const TOTP_CONTEXT: &str = "auth_users.totp_secret";
pub const SIGNING_KEY_CONTEXT: &str = "auth_signing_keys.private_pem";
/// The associated data of a remote EHR's sealed credential.
pub const EHR_SECRET_CONTEXT: &str = "ehr_connections.secret";
/// The scope an app needs (besides read access, and a role that allows it) to see sensitive
/// identifiers in clear.
pub const REVEAL_SCOPE: &str = "kiln/reveal-sensitive";
/// `http://hl7.org/fhir/StructureDefinition/data-absent-reason`, code `masked`: how a withheld
/// value is shown (FHIR R4 extension-data-absent-reason).
pub const DATA_ABSENT_REASON: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";
/// How often a running server looks for a changed key file (after `kiln keys rotate`).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// The configured sensitive systems and the key ring they are sealed with.
pub struct Sensitive {
    systems: Vec<String>,
    reveal_roles: Vec<String>,
    key_file: PathBuf,
    ring: RwLock<Arc<KeyRing>>,
    loaded: Mutex<Option<SystemTime>>,
}

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sensitive").field("systems", &self.systems).field("key_file", &self.key_file).finish()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The plaintext of one sensitive identifier in a resource being written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Revealed {
    system: String,
    plaintext: String,
    /// The stored sealed form, kept when it is already under the active key.
    sealed: Option<String>,
}

/// What [`Sensitive::open_for_write`] found: the plaintexts put in place, to blind the index
/// rows and then seal again.
#[derive(Debug, Default)]
pub struct OpenedForWrite {
    revealed: Vec<Revealed>,
}

impl OpenedForWrite {
    pub fn is_empty(&self) -> bool {
        self.revealed.is_empty()
    }
}

impl Sensitive {
    /// Loads the key file named by the settings, creating it for a database that has never
    /// sealed anything, and checks that it is the key file this database was sealed with.
    pub async fn open(settings: &Settings, store: &DynStore) -> Result<Sensitive, String> {
        let key_file = settings.key_file_path();
        let ring = if key_file.exists() {
            KeyRing::load(&key_file)?
        } else {
            if store.key_fingerprint().await.map_err(|e| e.to_string())?.is_some() {
                return Err(format!(
                    "the key file {} is missing, but this database holds values sealed with one: restore it \
                     (key_file setting)",
                    key_file.display()
                ));
            }
            let ring = KeyRing::generate();
            ring.save(&key_file)?;
            tracing::info!(
                key_file = %key_file.display(),
                "created a new data key file: back it up, and give every node the same file"
            );
            ring
        };
        let fingerprint = ring.fingerprint();
        match store.key_fingerprint().await.map_err(|e| e.to_string())? {
            Some(stored) if stored != fingerprint => {
                return Err(format!(
                    "the key file {} is not the one this database's values were sealed with",
                    key_file.display()
                ));
            }
            Some(_) => {}
            None => store.set_key_fingerprint(&fingerprint).await.map_err(|e| e.to_string())?,
        }
        let mut sensitive =
            Sensitive::with_ring(ring, &settings.sensitive_identifier_systems, &settings.reveal_sensitive_roles);
        sensitive.loaded = Mutex::new(modified(&key_file));
        sensitive.key_file = key_file;
        Ok(sensitive)
    }

    /// A ring not backed by a file; `systems` and `reveal_roles` are comma-separated.
    pub fn with_ring(ring: KeyRing, systems: &str, reveal_roles: &str) -> Sensitive {
        Sensitive {
            systems: list(systems),
            reveal_roles: list(reveal_roles),
            key_file: PathBuf::new(),
            ring: RwLock::new(Arc::new(ring)),
            loaded: Mutex::new(None),
        }
    }

    pub fn key_file(&self) -> &Path {
        &self.key_file
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().expect("key ring lock").clone()
    }

    /// Reads the key file again if it changed since it was last read (a rotation adds a key and
    /// makes it active); answers whether it did. A file that no longer parses is logged and the
    /// keys in use are kept.
    pub fn reload_if_changed(&self) -> bool {
        let now = modified(&self.key_file);
        let mut loaded = self.loaded.lock().expect("key file time lock");
        if now == *loaded {
            return false;
        }
        match KeyRing::load(&self.key_file) {
            Ok(ring) if ring.fingerprint() == self.ring().fingerprint() => {
                tracing::info!(active = ring.active_id(), "data key file reloaded");
                *self.ring.write().expect("key ring lock") = Arc::new(ring);
                *loaded = now;
                true
            }
            Ok(_) => {
                tracing::error!(key_file = %self.key_file.display(), "the changed key file has another index key; kept the keys in use");
                false
            }
            Err(e) => {
                tracing::error!("the changed key file cannot be read ({e}); kept the keys in use");
                false
            }
        }
    }

    /// Watches the key file for the life of the server.
    pub fn watch(self: &Arc<Self>) {
        let sensitive = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_INTERVAL).await;
                match sensitive.upgrade() {
                    Some(sensitive) => {
                        sensitive.reload_if_changed();
                    }
                    None => break,
                }
            }
        });
    }

    /// Opens a sealed value, reading the key file again once if the key is new to this node.
    pub fn open_value(&self, sealed: &str) -> Result<String, OpenError> {
        match self.ring().open(sealed, IDENTIFIER_CONTEXT) {
            Err(OpenError::UnknownKey(_)) if self.reload_if_changed() => self.ring().open(sealed, IDENTIFIER_CONTEXT),
            other => other,
        }
    }

    /// Seals a credential the server keeps (a TOTP secret, a private signing key).
    pub fn seal_secret(&self, plaintext: &str, context: &str) -> String {
        self.ring().seal(plaintext, context)
    }

    /// Opens a credential sealed by [`seal_secret`](Sensitive::seal_secret). A value stored
    /// before sealing existed is answered as it is (the next `kiln keys rotate` seals it).
    pub fn open_secret(&self, stored: &str, context: &str) -> Result<String, OpenError> {
        if !stored.starts_with(SEALED_PREFIX) {
            return Ok(stored.to_string());
        }
        match self.ring().open(stored, context) {
            Err(OpenError::UnknownKey(_)) if self.reload_if_changed() => self.ring().open(stored, context),
            other => other,
        }
    }

    pub fn is_sensitive_system(&self, system: &str) -> bool {
        self.systems.iter().any(|s| s == system)
    }

    /// Whether the caller may see sensitive identifiers in clear: the server itself, or a token
    /// that carries [`REVEAL_SCOPE`] for a user whose role is configured to see them (or for a
    /// backend service, whose registration had to allow that scope).
    pub fn may_reveal(&self, principal: &Principal) -> bool {
        let grant = match &principal.kind {
            PrincipalKind::DefaultTenant => return true,
            PrincipalKind::Token(grant) => grant,
        };
        let has_scope = grant.scopes.iter().any(|s| s.to_string() == REVEAL_SCOPE);
        has_scope
            && match &grant.claims.role {
                Some(role) => self.reveal_roles.iter().any(|r| r == role),
                None => grant.claims.sub == grant.claims.client_id,
            }
    }

    /// Whether a resource being written carries a masked sensitive identifier, which keeps its
    /// stored value: the caller must then pass the current version to [`open_for_write`].
    ///
    /// [`open_for_write`]: Sensitive::open_for_write
    pub fn has_masked(&self, resource: &Value) -> bool {
        let mut found = false;
        self.visit(resource, &mut |object| found |= is_masked(object));
        found
    }

    /// Puts the plaintext of every sensitive identifier in place: sealed values (from the
    /// stored form) are opened, masked ones take the value of the same system in `current`.
    pub fn open_for_write(&self, resource: &mut Value, current: Option<&Value>) -> Result<OpenedForWrite, FhirError> {
        let mut stored: Vec<(String, String)> = Vec::new();
        if let Some(current) = current {
            self.visit(current, &mut |object| {
                if let (Some(Value::String(system)), Some(Value::String(value))) =
                    (object.get("system"), object.get("value"))
                    && value.starts_with(SEALED_PREFIX)
                {
                    stored.push((system.clone(), value.clone()));
                }
            });
        }
        let active = self.ring().active_id().to_string();
        let mut opened = OpenedForWrite::default();
        let mut problem = None;
        self.visit_mut(resource, &mut |object| {
            let Some(system) = object.get("system").and_then(Value::as_str).map(str::to_string) else { return };
            if is_masked(object) {
                match stored.iter().find(|(s, _)| *s == system) {
                    Some((_, sealed)) => {
                        object.remove("_value");
                        object.insert("value".into(), Value::String(sealed.clone()));
                    }
                    None => {
                        problem.get_or_insert(FhirError::Unprocessable(vec![
                            Issue::error(
                                IssueType::Value,
                                format!(
                                    "the {system} identifier is masked and there is no stored value to keep; \
                                     send its value"
                                ),
                            )
                            .at("identifier"),
                        ]));
                        return;
                    }
                }
            }
            let Some(Value::String(value)) = object.get("value") else { return };
            let (plaintext, sealed) = if value.starts_with(SEALED_PREFIX) {
                match self.open_value(value) {
                    Ok(plaintext) => {
                        let keep = KeyRing::key_of(value) == Some(active.as_str());
                        (plaintext, keep.then(|| value.clone()))
                    }
                    Err(e) => {
                        problem.get_or_insert(FhirError::bad_request(
                            IssueType::Value,
                            format!("the {system} identifier holds a sealed value this server cannot open: {e}"),
                        ));
                        return;
                    }
                }
            } else {
                (value.clone(), None)
            };
            object.insert("value".into(), Value::String(plaintext.clone()));
            opened.revealed.push(Revealed { system, plaintext, sealed });
        });
        match problem {
            Some(problem) => Err(problem),
            None => Ok(opened),
        }
    }

    /// Replaces each index row that holds a sensitive plaintext with its keyed hash (the token
    /// row of the identifier, and its `:of-type` row).
    pub fn blind_index(&self, opened: &OpenedForWrite, rows: &mut [IndexRow]) {
        if opened.is_empty() {
            return;
        }
        let ring = self.ring();
        for row in rows {
            let IndexRow::Token { param, system, code: Some(code), .. } = row else { continue };
            for revealed in &opened.revealed {
                if param.ends_with(":of-type") {
                    if let Some(type_code) =
                        code.strip_suffix(revealed.plaintext.as_str()).and_then(|t| t.strip_suffix('|'))
                    {
                        *code = format!("{type_code}|{}", ring.blind(&revealed.plaintext, &revealed.system));
                        break;
                    }
                } else if system.as_deref() == Some(revealed.system.as_str()) && *code == revealed.plaintext {
                    *code = ring.blind(&revealed.plaintext, &revealed.system);
                    break;
                }
            }
        }
    }

    /// The index rows of a stored (sealed) resource: computed on its plaintext, then blinded.
    pub fn index_stored(
        &self,
        registry: &crate::fhir::registry::Registry,
        resource_type: &str,
        stored: &Value,
    ) -> Result<Vec<IndexRow>, FhirError> {
        let mut plain = stored.clone();
        let opened = self.open_for_write(&mut plain, None)?;
        let mut rows = crate::search::index_resource(registry, resource_type, &plain);
        self.blind_index(&opened, &mut rows);
        Ok(rows)
    }

    /// Seals every sensitive identifier value (keeping a stored sealed form under the active
    /// key) and answers the names of the top-level members that changed.
    pub fn seal(&self, resource: &mut Value, opened: &OpenedForWrite) -> Vec<String> {
        if opened.is_empty() {
            return Vec::new();
        }
        let ring = self.ring();
        let Value::Object(members) = resource else { return Vec::new() };
        let mut changed = Vec::new();
        for (name, member) in members.iter_mut() {
            let mut touched = false;
            self.visit_mut(member, &mut |object| {
                let Some(system) = object.get("system").and_then(Value::as_str) else { return };
                let Some(Value::String(value)) = object.get("value") else { return };
                if value.starts_with(SEALED_PREFIX) {
                    return;
                }
                let kept = opened
                    .revealed
                    .iter()
                    .find(|r| r.system == system && r.plaintext == *value)
                    .and_then(|r| r.sealed.clone());
                let sealed = kept.unwrap_or_else(|| ring.seal(value, IDENTIFIER_CONTEXT));
                object.insert("value".into(), Value::String(sealed));
                touched = true;
            });
            if touched {
                changed.push(name.clone());
            }
        }
        changed
    }

    /// Rewrites search parameters so that sensitive identifiers are looked up by their keyed
    /// hash: `system|value` for a sensitive system becomes `system|hmac:…`, and a plain
    /// `identifier=value` also tries each sensitive system's hash.
    pub fn blind_search(&self, params: &mut [(String, String)]) {
        for (name, value) in params.iter_mut() {
            if let Some(blinded) = self.blind_param(name, value, true) {
                *value = blinded;
            }
        }
    }

    /// A query string with every sensitive identifier value replaced by its keyed hash, for the
    /// audit trail (which never holds a sensitive value).
    pub fn blind_query_text(&self, query: &str) -> String {
        if self.systems.is_empty() {
            return query.to_string();
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let mut changed = false;
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &pairs {
            let blinded = self.blind_param(name, value, false);
            changed |= blinded.is_some();
            serializer.append_pair(name, blinded.as_deref().unwrap_or(value));
        }
        if changed { serializer.finish() } else { query.to_string() }
    }

    /// `for_search`: a value that may be sensitive is looked up both plain and blinded; for the
    /// audit trail (not `for_search`) only its blinded forms are kept, since the server cannot
    /// tell whether a value given without its system is an SSN.
    fn blind_param(&self, name: &str, value: &str, for_search: bool) -> Option<String> {
        if self.systems.is_empty() {
            return None;
        }
        let last = name.rsplit('.').next().unwrap_or(name);
        let (code, modifier) = match last.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier)),
            None => (last, None),
        };
        let is_identifier = code == "identifier" || modifier == Some("identifier");
        let ring = self.ring();
        let mut changed = false;
        let mut alternatives = Vec::new();
        for alternative in split_alternatives(value) {
            if modifier == Some("of-type") && code == "identifier" {
                // type-system|type-code|value: the row may be a sensitive one, blinded.
                let mut parts = alternative.splitn(3, '|');
                if let (Some(type_system), Some(type_code), Some(plain)) = (parts.next(), parts.next(), parts.next())
                    && !plain.starts_with(BLIND_PREFIX)
                {
                    if for_search {
                        alternatives.push(alternative.clone());
                    }
                    for system in &self.systems {
                        alternatives.push(format!("{type_system}|{type_code}|{}", ring.blind(plain, system)));
                    }
                    changed = true;
                    continue;
                }
            }
            match alternative.split_once('|') {
                Some((system, plain)) if self.is_sensitive_system(system) && !plain.is_empty() => {
                    if !plain.starts_with(BLIND_PREFIX) {
                        alternatives.push(format!("{system}|{}", ring.blind(plain, system)));
                        changed = true;
                    } else {
                        alternatives.push(alternative.clone());
                    }
                }
                None if is_identifier && !alternative.starts_with(BLIND_PREFIX) => {
                    if for_search {
                        alternatives.push(alternative.clone());
                    }
                    for system in &self.systems {
                        alternatives.push(format!("{system}|{}", ring.blind(&alternative, system)));
                    }
                    changed = true;
                }
                _ => alternatives.push(alternative.clone()),
            }
        }
        changed.then(|| alternatives.join(","))
    }

    /// Calls `f` on every JSON object that names a sensitive system.
    fn visit(&self, value: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
        match value {
            Value::Object(object) => {
                if object.get("system").and_then(Value::as_str).is_some_and(|s| self.is_sensitive_system(s)) {
                    f(object);
                }
                object.values().for_each(|v| self.visit(v, f));
            }
            Value::Array(items) => items.iter().for_each(|v| self.visit(v, f)),
            _ => {}
        }
    }

    fn visit_mut(&self, value: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
        match value {
            Value::Object(object) => {
                if object.get("system").and_then(Value::as_str).is_some_and(|s| self.is_sensitive_system(s)) {
                    f(object);
                }
                object.values_mut().for_each(|v| self.visit_mut(v, f));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.visit_mut(v, f)),
            _ => {}
        }
    }
}

/// An identifier sent back as it was shown masked: no value, `_value` with data-absent-reason
/// `masked`.
fn is_masked(object: &Map<String, Value>) -> bool {
    object.get("value").is_none()
        && object.get("_value").and_then(|v| v.get("extension")).and_then(Value::as_array).is_some_and(|extensions| {
            extensions.iter().any(|e| {
                e.get("url").and_then(Value::as_str) == Some(DATA_ABSENT_REASON)
                    && e.get("valueCode").and_then(Value::as_str) == Some("masked")
            })
        })
}

/// The comma-separated alternatives of a search value (search.html#escaping: `\,` is a comma
/// inside a value).
fn split_alternatives(value: &str) -> Vec<String> {
    let mut alternatives = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                alternatives.last_mut().expect("one alternative").push(c);
                if let Some(next) = chars.next() {
                    alternatives.last_mut().expect("one alternative").push(next);
                }
            }
            ',' => alternatives.push(String::new()),
            _ => alternatives.last_mut().expect("one alternative").push(c),
        }
    }
    alternatives
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SSN: &str = "http://hl7.org/fhir/sid/us-ssn";

    fn sensitive() -> Sensitive {
        Sensitive::with_ring(KeyRing::generate(), SSN, "admin")
    }

    #[test]
    fn searches_use_the_keyed_hash_and_stay_idempotent() {
        let sensitive = sensitive();
        let hash = sensitive.ring().blind("123-45-6789", SSN);
        let mut params = vec![
            ("identifier".to_string(), format!("{SSN}|123-45-6789")),
            ("identifier".to_string(), "123-45-6789".to_string()),
            ("subject:Patient.identifier".to_string(), format!("{SSN}|123-45-6789,urn:mrn|7")),
            ("code".to_string(), "123-45-6789".to_string()),
            ("identifier".to_string(), format!("{SSN}|")),
        ];
        sensitive.blind_search(&mut params);
        assert_eq!(params[0].1, format!("{SSN}|{hash}"));
        assert_eq!(params[1].1, format!("123-45-6789,{SSN}|{hash}"));
        assert_eq!(params[2].1, format!("{SSN}|{hash},urn:mrn|7"));
        assert_eq!(params[3].1, "123-45-6789", "only identifier parameters");
        assert_eq!(params[4].1, format!("{SSN}|"), "a system alone stays");
        // A search's self link, followed, finds the same resources.
        let mut again = vec![("identifier".to_string(), params[0].1.clone())];
        sensitive.blind_search(&mut again);
        assert_eq!(again[0].1, params[0].1);
    }

    #[test]
    fn the_audit_text_keeps_no_value_that_may_be_sensitive() {
        let sensitive = sensitive();
        let text = sensitive.blind_query_text(&format!(
            "identifier={}&identifier=123-45-6789&name=Ann",
            form_urlencoded::byte_serialize(format!("{SSN}|123-45-6789").as_bytes()).collect::<String>()
        ));
        assert!(!text.contains("6789"), "{text}");
        assert!(text.contains("name=Ann"));
        assert_eq!(sensitive.blind_query_text("name=Ann&_count=5"), "name=Ann&_count=5");
    }

    #[test]
    fn writes_index_the_hash_and_store_the_sealed_form() {
        let sensitive = sensitive();
        let mut patient = json!({"resourceType": "Patient", "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
             "system": SSN, "value": "123-45-6789"},
            {"system": "urn:mrn", "value": "M1"}]});
        let opened = sensitive.open_for_write(&mut patient, None).unwrap();
        let mut rows = crate::search::index_resource(crate::fhir::registry::Registry::global(), "Patient", &patient);
        sensitive.blind_index(&opened, &mut rows);
        let text = format!("{rows:?}");
        assert!(!text.contains("6789"), "{text}");
        assert!(text.contains(&sensitive.ring().blind("123-45-6789", SSN)));
        assert!(text.contains("M1"), "other identifiers stay plain");
        assert_eq!(sensitive.seal(&mut patient, &opened), ["identifier"]);
        let sealed = patient["identifier"][0]["value"].as_str().unwrap().to_string();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert_eq!(patient["identifier"][1]["value"], "M1");

        // Written again from its stored form, the sealed value is kept byte for byte.
        let opened = sensitive.open_for_write(&mut patient, None).unwrap();
        assert_eq!(patient["identifier"][0]["value"], "123-45-6789");
        sensitive.seal(&mut patient, &opened);
        assert_eq!(patient["identifier"][0]["value"], sealed.as_str());

        // Sent back masked, it takes the stored value.
        let stored = patient.clone();
        let mut masked = json!({"resourceType": "Patient", "identifier": [{"system": SSN,
            "_value": {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]}}]});
        assert!(sensitive.has_masked(&masked));
        sensitive.open_for_write(&mut masked, Some(&stored)).unwrap();
        assert_eq!(masked["identifier"][0]["value"], "123-45-6789");
        assert!(masked["identifier"][0].get("_value").is_none());
        let mut orphan = json!({"resourceType": "Patient", "identifier": [{"system": SSN,
            "_value": {"extension": [{"url": DATA_ABSENT_REASON, "valueCode": "masked"}]}}]});
        assert!(sensitive.open_for_write(&mut orphan, None).is_err());
    }
}
