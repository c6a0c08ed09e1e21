//! Key rotation while the servers run: `kiln keys rotate` adds a data key and makes it active
//! (running nodes read the changed key file within seconds), then reseals every stored version
//! that holds a value sealed under an older key, until none is left; `kiln keys status` counts
//! the values under each key, and `kiln keys retire` removes a key nothing uses any more.

use memchr::memmem;
use std::collections::BTreeMap;
use std::time::Duration;

use super::{IDENTIFIER_CONTEXT, KeyRing, SEALED_PREFIX, SIGNING_KEY_CONTEXT, Sensitive, TOTP_CONTEXT};
use crate::fhir::json::ResourceBody;
use crate::store::DynStore;

/// Versions read per round trip.
const PAGE: u32 = 500;
/// Most reseal passes before giving up (each waits for the nodes to pick up the new key).
const MAX_PASSES: usize = 10;

/// The key id of every sealed value in a stored JSON body.
pub fn sealed_key_ids(json: &[u8]) -> Vec<&str> {
    memmem::find_iter(json, SEALED_PREFIX.as_bytes())
        .filter_map(|start| {
            let rest = &json[start + SEALED_PREFIX.len()..];
            let end = memchr::memchr(b':', rest)?;
            std::str::from_utf8(&rest[..end]).ok()
        })
        .collect()
}

/// How many sealed values each key id holds, over every stored version and credential.
pub async fn census(store: &DynStore) -> Result<BTreeMap<String, u64>, String> {
    let mut counts = BTreeMap::new();
    for (_, _, stored) in credentials(store).await? {
        if let Some(id) = KeyRing::key_of(&stored) {
            *counts.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    let mut after = 0;
    loop {
        let page = store.versions_after(after, PAGE).await.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for version in &page {
            for id in sealed_key_ids(version.json.as_deref().unwrap_or_default()) {
                *counts.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    Ok(counts)
}

impl Sensitive {
    /// The stored JSON with every value sealed under another key sealed again under the active
    /// one; `None` when nothing needs it. Every other byte stays as stored.
    pub fn reseal(&self, json: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let ring = self.ring();
        let active = ring.active_id().to_string();
        if sealed_key_ids(json).iter().all(|id| *id == active) {
            return Ok(None);
        }
        let (mut body, mut value) = ResourceBody::from_stored(json).map_err(|e| e.to_string())?;
        let mut problem = None;
        let mut changed = Vec::new();
        if let serde_json::Value::Object(members) = &mut value {
            for (name, member) in members.iter_mut() {
                let mut touched = false;
                self.visit_mut(member, &mut |object| {
                    let Some(serde_json::Value::String(sealed)) = object.get("value") else { return };
                    if KeyRing::key_of(sealed).is_none_or(|id| id == active) {
                        return;
                    }
                    match self.open_value(sealed) {
                        Ok(plaintext) => {
                            let resealed = ring.seal(&plaintext, IDENTIFIER_CONTEXT);
                            object.insert("value".into(), serde_json::Value::String(resealed));
                            touched = true;
                        }
                        Err(e) => {
                            problem.get_or_insert(e.to_string());
                        }
                    }
                });
                if touched {
                    changed.push(name.clone());
                }
            }
        }
        if let Some(problem) = problem {
            return Err(problem);
        }
        if changed.is_empty() {
            return Ok(None);
        }
        for name in &changed {
            body.set_member(name, &value[name.as_str()]);
        }
        let meta = body.meta().cloned().unwrap_or_default();
        let id = body.id.clone();
        Ok(Some(body.render_with_meta(id.as_deref(), &meta)))
    }
}

/// Which credential a stored secret is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    Totp,
    SigningKey,
    /// A remote EHR's client secret or private key; the owner is `tenant/endpoint id`.
    EhrSecret,
}

/// The credentials the server keeps sealed: TOTP secrets and private signing keys, as
/// (kind, owner, stored value).
async fn credentials(store: &DynStore) -> Result<Vec<(Credential, String, String)>, String> {
    let mut all: Vec<(Credential, String, String)> = store
        .totp_secrets()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(user, secret)| (Credential::Totp, user, secret))
        .collect();
    let keys = store.signing_keys().await.map_err(|e| e.to_string())?;
    all.extend(keys.into_iter().map(|k| (Credential::SigningKey, k.kid, k.private_pem)));
    let ehr = store.ehr_secrets().await.map_err(|e| e.to_string())?;
    all.extend(
        ehr.into_iter()
            .map(|(tenant, endpoint, sealed)| (Credential::EhrSecret, format!("{tenant}/{endpoint}"), sealed)),
    );
    Ok(all)
}

/// Seals every credential stored in clear (written before sealing existed) and, unless
/// `only_plaintext`, reseals those under an older key; answers how many were rewritten.
pub async fn reseal_credentials(store: &DynStore, sensitive: &Sensitive, only_plaintext: bool) -> Result<u64, String> {
    let active = sensitive.ring().active_id().to_string();
    let mut resealed = 0;
    for (kind, owner, stored) in credentials(store).await? {
        let key = KeyRing::key_of(&stored);
        if key == Some(active.as_str()) || (only_plaintext && key.is_some()) {
            continue;
        }
        let context = match kind {
            Credential::Totp => TOTP_CONTEXT,
            Credential::SigningKey => SIGNING_KEY_CONTEXT,
            Credential::EhrSecret => super::EHR_SECRET_CONTEXT,
        };
        let plaintext = sensitive.open_secret(&stored, context).map_err(|e| format!("{kind:?} of {owner}: {e}"))?;
        let sealed = sensitive.seal_secret(&plaintext, context);
        let replaced = match kind {
            Credential::Totp => store.reencode_totp_secret(&owner, &stored, &sealed).await,
            Credential::SigningKey => store.reencode_signing_key(&owner, &stored, &sealed).await,
            Credential::EhrSecret => {
                let (tenant, endpoint) = owner.split_once('/').unwrap_or_default();
                store.reencode_ehr_secret(tenant, endpoint, &stored, &sealed).await
            }
        };
        if replaced.map_err(|e| e.to_string())? {
            resealed += 1;
        }
    }
    Ok(resealed)
}

/// One pass over every stored version and credential; answers how many were resealed.
pub async fn reseal_pass(store: &DynStore, sensitive: &Sensitive) -> Result<u64, String> {
    let mut resealed = reseal_credentials(store, sensitive, false).await?;
    let mut after = 0;
    loop {
        let page = store.versions_after(after, PAGE).await.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for version in &page {
            let Some(json) = version.json.as_deref() else { continue };
            let new = sensitive
                .reseal(json)
                .map_err(|e| format!("{}/{} version {}: {e}", version.resource_type, version.id, version.version))?;
            if let Some(new) = new {
                store.reencode_version(version, new).await.map_err(|e| e.to_string())?;
                resealed += 1;
            }
        }
    }
    Ok(resealed)
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    pub new_key: String,
    pub resealed: u64,
    /// The keys no stored value uses any more (safe to retire).
    pub unused: Vec<String>,
}

/// Adds a key, makes it active in the key file, and reseals until no value is left under
/// another key. `settle` is how long to wait between passes for running nodes to read the new
/// key file (and for writes they began under the old key to land).
pub async fn rotate(store: &DynStore, sensitive: &Sensitive, settle: Duration) -> Result<Rotation, String> {
    let mut ring = KeyRing::load(sensitive.key_file())?;
    let new_key = ring.add_key();
    ring.save(sensitive.key_file())?;
    if !sensitive.reload_if_changed() || sensitive.ring().active_id() != new_key {
        return Err("the new key file could not be read back".into());
    }
    let mut resealed = 0;
    for pass in 0..MAX_PASSES {
        if pass > 0 {
            tokio::time::sleep(settle).await;
        }
        let count = reseal_pass(store, sensitive).await?;
        resealed += count;
        // The first pass may race nodes still on the old key; a later pass that finds nothing
        // proves none is left.
        if pass > 0 && count == 0 {
            let counts = census(store).await?;
            let unused = ring
                .key_ids()
                .iter()
                .filter(|id| **id != new_key && !counts.contains_key(**id))
                .map(|id| id.to_string())
                .collect();
            return Ok(Rotation { new_key, resealed, unused });
        }
    }
    Err(format!("values sealed under older keys kept appearing after {MAX_PASSES} passes; run it again"))
}

/// Removes a key from the key file once no stored value uses it.
pub async fn retire(store: &DynStore, sensitive: &Sensitive, key_id: &str) -> Result<(), String> {
    let counts = census(store).await?;
    if let Some(count) = counts.get(key_id) {
        return Err(format!("{count} stored values are still sealed under {key_id}; run `kiln keys rotate` first"));
    }
    let mut ring = KeyRing::load(sensitive.key_file())?;
    ring.remove_key(key_id)?;
    ring.save(sensitive.key_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ids_are_found_in_stored_json() {
        let ring = KeyRing::generate();
        let json = format!(r#"{{"a":"{}","b":"{}"}}"#, ring.seal("1", "c"), ring.seal("2", "c"));
        assert_eq!(sealed_key_ids(json.as_bytes()), [ring.active_id(), ring.active_id()]);
        assert!(sealed_key_ids(b"{}").is_empty());
    }

    #[test]
    fn reseal_moves_old_values_to_the_active_key_and_keeps_other_bytes() {
        let mut ring = KeyRing::generate();
        let old = ring.seal("123-45-6789", IDENTIFIER_CONTEXT);
        let old_key = ring.active_id().to_string();
        ring.add_key();
        let new_key = ring.active_id().to_string();
        let sensitive = Sensitive::with_ring(ring, "http://hl7.org/fhir/sid/us-ssn", "");
        let json = format!(
            r#"{{"resourceType":"Patient","id":"p","meta":{{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"}},"identifier":[{{"system":"http://hl7.org/fhir/sid/us-ssn","value":"{old}"}}],"x" : 1.50}}"#
        );
        let resealed = String::from_utf8(sensitive.reseal(json.as_bytes()).unwrap().unwrap()).unwrap();
        assert_eq!(sealed_key_ids(resealed.as_bytes()), [new_key.as_str()]);
        assert!(!resealed.contains(&old_key));
        assert!(resealed.contains(r#""x":1.50"#), "{resealed}");
        assert!(resealed.contains(r#""versionId":"1""#));
        let sealed = serde_json::from_str::<serde_json::Value>(&resealed).unwrap()["identifier"][0]["value"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(sensitive.open_value(&sealed).unwrap(), "123-45-6789");
        assert_eq!(sensitive.reseal(resealed.as_bytes()).unwrap(), None);
    }
}
