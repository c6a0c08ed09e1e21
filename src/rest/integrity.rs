//! Referential integrity (FHIR R4 references.html; what http.html#delete leaves to the server):
//! the local resources a resource refers to are recorded with every write; before a write
//! commits, each must exist (unless `reject_dangling_references` is off), and nothing may still
//! refer to a resource being deleted (unless `delete_referenced = "allow"`);
//! `DELETE …?_cascade=delete` deletes the referrers too where `cascade_delete` is on.

use serde_json::Value;
use std::collections::HashSet;

use crate::app::AppState;
use crate::config::DeleteReferenced;
use crate::error::{FhirError, Issue, IssueType};
use crate::store::StoreTransaction;

/// Referrers named in a refusal.
const REFERRERS_NAMED: u32 = 10;

/// The local resources `value` refers to, as `(type, id)`: relative references and absolute
/// ones to this server, versioned or not. Contained (`#…`), `urn:` and other servers'
/// references are not local.
pub fn local_links(state: &AppState, value: &Value) -> Vec<(String, String)> {
    let base = format!("{}/", state.base_url);
    let mut links: Vec<(String, String)> = crate::fhir::json::references(value)
        .into_iter()
        .filter_map(|reference| {
            let relative = match reference.strip_prefix(&base) {
                Some(rest) => rest,
                None if reference.contains("://") || reference.starts_with("urn:") => return None,
                None => reference,
            };
            let mut segments = relative.split('/');
            let (type_name, id) = (segments.next()?, segments.next()?);
            match (segments.next(), segments.next(), segments.next()) {
                (None, None, None) | (Some("_history"), Some(_), None) => {}
                _ => return None,
            }
            let is_type = type_name.starts_with(|c: char| c.is_ascii_uppercase())
                && type_name.chars().all(|c| c.is_ascii_alphabetic());
            (is_type && crate::fhir::is_valid_id(id)).then(|| (type_name.to_string(), id.to_string()))
        })
        .collect();
    links.sort();
    links.dedup();
    links
}

/// A broken rule, and the resource it is about (for a transaction to name its entry).
pub struct Violation {
    pub resource_type: String,
    pub id: String,
    pub error: FhirError,
}

/// Checks, inside `transaction` before it commits, that what was `written` refers only to
/// existing resources and that nothing refers to what was `deleted`.
pub async fn verify(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    written: &[(String, String)],
    deleted: &[(String, String)],
) -> Result<(), Violation> {
    let failed = |resource_type: &str, id: &str, error: FhirError| Violation {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        error,
    };
    if state.settings.reject_dangling_references && !written.is_empty() {
        let dangling = transaction.dangling_links(written).await.map_err(|e| failed("", "", e.into()))?;
        if let Some(first) = dangling.first() {
            let issues = dangling
                .iter()
                .filter(|l| l.source_type == first.source_type && l.source_id == first.source_id)
                .map(|l| {
                    Issue::error(
                        IssueType::NotFound,
                        format!(
                            "{}/{} refers to {}/{}, which does not exist here",
                            l.source_type, l.source_id, l.target_type, l.target_id
                        ),
                    )
                })
                .collect();
            return Err(failed(&first.source_type, &first.source_id, FhirError::Unprocessable(issues)));
        }
    }
    if state.settings.delete_referenced == DeleteReferenced::Refuse && !deleted.is_empty() {
        let referrers = transaction.referrers(deleted, REFERRERS_NAMED).await.map_err(|e| failed("", "", e.into()))?;
        if let Some(first) = referrers.first() {
            let names: Vec<String> = referrers
                .iter()
                .filter(|l| l.target_type == first.target_type && l.target_id == first.target_id)
                .map(|l| format!("{}/{}", l.source_type, l.source_id))
                .collect();
            return Err(failed(
                &first.target_type,
                &first.target_id,
                FhirError::Conflict(format!(
                    "{}/{} is still referred to by {}; change or delete those first (or delete with _cascade=delete where enabled)",
                    first.target_type,
                    first.target_id,
                    names.join(", ")
                )),
            ));
        }
    }
    Ok(())
}

/// Commits a single write once the resource it wrote refers only to existing resources.
pub async fn commit_write(
    state: &AppState,
    mut transaction: Box<dyn StoreTransaction>,
    written: &crate::store::VersionRecord,
) -> Result<(), FhirError> {
    let key = [(written.resource_type.clone(), written.id.clone())];
    verify(state, &mut *transaction, &key, &[]).await.map_err(|v| v.error)?;
    Ok(transaction.commit().await?)
}

/// `root` and every resource that refers to it, directly or through others: what
/// `_cascade=delete` deletes. More than `max_conditional_deletes` is refused.
pub async fn cascade(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    root: (String, String),
) -> Result<Vec<(String, String)>, FhirError> {
    if !state.settings.cascade_delete {
        return Err(FhirError::bad_request(
            IssueType::NotSupported,
            "cascading deletes are disabled on this server (setting cascade_delete)",
        ));
    }
    let cap = state.settings.max_conditional_deletes as usize;
    let mut all = vec![root.clone()];
    let mut seen: HashSet<(String, String)> = HashSet::from([root]);
    let mut frontier = all.clone();
    while !frontier.is_empty() {
        let referrers = transaction.referrers(&frontier, (cap + 1) as u32).await?;
        frontier = referrers
            .into_iter()
            .map(|l| (l.source_type, l.source_id))
            .filter(|key| seen.insert(key.clone()))
            .collect();
        all.extend(frontier.iter().cloned());
        if all.len() > cap {
            return Err(FhirError::PreconditionFailed(format!(
                "the cascade would delete more than {cap} resources (max_conditional_deletes); nothing was deleted"
            )));
        }
    }
    Ok(all)
}
