//! The audit trail's hash chain: the canonical form of an AuditEvent, the hashes of a link, and
//! `kiln audit verify`, which walks every tenant's chain and reports the first broken link.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::access::TenantId;
use crate::store::DynStore;

/// The `prev_hash` of a tenant's first link.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Links verified per database round trip.
const PAGE: u32 = 1000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical form of a JSON document: object members sorted by name, no insignificant
/// whitespace, numbers and strings as serde_json writes them. Two documents with the same
/// content have the same canonical form whatever their member order or spacing.
pub fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                // A name is written as the JSON string it is (escaped as serde_json escapes).
                serde_json::to_writer(&mut *out, name).expect("writing to a Vec cannot fail");
                out.push(b':');
                canonical(member, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

/// SHA-256 (hex) of the canonical form of an AuditEvent's JSON, without `meta` (version 1 and the
/// time recorded; copies made before events were logged with it had the time of the copy).
pub fn content_hash(stored: &[u8]) -> Result<String, String> {
    let mut value: Value = serde_json::from_slice(stored).map_err(|e| format!("an AuditEvent is not JSON: {e}"))?;
    if let Value::Object(members) = &mut value {
        members.remove("meta");
    }
    Ok(content_hash_of(&value))
}

/// [`content_hash`] of an event not yet stored (and without `meta`).
pub fn content_hash_of(event: &Value) -> String {
    let mut bytes = Vec::with_capacity(2048);
    canonical(event, &mut bytes);
    hex(&Sha256::digest(&bytes))
}

/// A link's own hash: SHA-256 over the previous link's hash and this event's content hash.
pub fn link_hash(prev_hash: &str, content_hash: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(prev_hash.as_bytes());
    digest.update(b"|");
    digest.update(content_hash.as_bytes());
    hex(&digest.finalize())
}

/// What verifying one tenant's chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub tenant: TenantId,
    /// Links checked and found intact.
    pub intact: u64,
    /// The first broken link, if any: its position, the AuditEvent and what is wrong.
    pub broken: Option<BrokenLink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub seq: i64,
    pub id: String,
    pub reason: String,
}

/// Verifies every tenant's chain.
pub async fn verify_all(store: &DynStore) -> Result<Vec<Verification>, String> {
    let mut results = Vec::new();
    for tenant in store.audit_tenants().await.map_err(|e| e.to_string())? {
        results.push(verify(store, &tenant).await?);
    }
    Ok(results)
}

/// Walks the tenant's log from the start: each row must follow the one before it, hash over its
/// predecessor and still hold the event it was written with; the event's resource copy (once
/// made) must have the same content; and no AuditEvent resource may be outside the log.
pub async fn verify(store: &DynStore, tenant: &TenantId) -> Result<Verification, String> {
    let mut result = Verification { tenant: tenant.clone(), intact: 0, broken: None };
    let indexed = store.audit_indexed_position(tenant).await.map_err(|e| e.to_string())?;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS.to_string();
    loop {
        let page = store.audit_links(tenant, expected_seq - 1, PAGE).await.map_err(|e| e.to_string())?;
        let full_page = page.len() == PAGE as usize;
        for row in page {
            let link = &row.link;
            let broken = |reason: String| Some(BrokenLink { seq: link.seq, id: link.id.clone(), reason });
            let changed = || broken(format!("AuditEvent/{} was changed after it was recorded", link.id));
            result.broken = if link.seq != expected_seq {
                broken(format!("log rows {expected_seq} to {} are missing", link.seq - 1))
            } else if link.prev_hash != prev_hash {
                broken("it does not follow the row before it (prev_hash differs)".into())
            } else if link.hash != link_hash(&link.prev_hash, &link.content_hash) {
                broken("its own hash does not match its contents".into())
            } else if content_hash(&row.logged)? != link.content_hash {
                changed()
            } else {
                // A copy's row holds no JSON of its own (its body is the log row's) unless it was
                // made before events were logged with their `meta`, or someone wrote one into it.
                match row.resource.as_deref().map(content_hash) {
                    None if !row.copied && link.seq <= indexed => {
                        broken(format!("AuditEvent/{} is missing or deleted", link.id))
                    }
                    None => None,
                    Some(Err(e)) => broken(e),
                    Some(Ok(hash)) if hash != link.content_hash => changed(),
                    Some(Ok(_)) => None,
                }
            };
            if result.broken.is_some() {
                return Ok(result);
            }
            result.intact += 1;
            expected_seq = link.seq + 1;
            prev_hash = link.hash.clone();
        }
        if !full_page {
            break;
        }
    }
    let unchained = store.unchained_audit_events(tenant, 1).await.map_err(|e| e.to_string())?;
    if let Some(id) = unchained.into_iter().next() {
        result.broken = Some(BrokenLink {
            seq: expected_seq,
            id: id.clone(),
            reason: format!("AuditEvent/{id} is not in the log (added outside the server)"),
        });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_member_order_and_spacing() {
        let a = br#"{"b": [1, {"y": "x", "a": true}], "a": null}"#;
        let b = br#"{"a":null,"b":[1,{"a":true,"y":"x"}]}"#;
        assert_eq!(content_hash(a).unwrap(), content_hash(b).unwrap());
        let mut out = Vec::new();
        canonical(&serde_json::from_slice(a).unwrap(), &mut out);
        assert_eq!(out, b.to_vec());
    }

    #[test]
    fn any_change_of_content_changes_the_hash() {
        let a = content_hash(br#"{"outcome":"0","agent":[{"who":{"reference":"Practitioner/1"}}]}"#).unwrap();
        let b = content_hash(br#"{"outcome":"0","agent":[{"who":{"reference":"Practitioner/2"}}]}"#).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn a_link_hash_depends_on_its_predecessor() {
        let content = "ab".repeat(32);
        assert_ne!(link_hash(GENESIS, &content), link_hash(&"11".repeat(32), &content));
        assert_eq!(link_hash(GENESIS, &content), link_hash(GENESIS, &content));
    }
}
