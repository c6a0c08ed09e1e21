//! The search behind the conditional interactions (FHIR R4 http.html#ccreate, #cond-update,
//! #cdelete) and conditional references in transactions (http.html#trules): which current
//! resources a condition such as `identifier=http://hospital|123` selects, found inside the
//! write's own transaction while holding a lock on the condition, so that concurrent identical
//! conditional writes are decided one after the other and never both create. The condition is
//! evaluated over what the principal may reach for the interaction: a confined token neither
//! learns of nor touches resources beyond its scopes through a condition.

use super::QueryParams;
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, IssueType};
use crate::fhir::registry::ResourceType;
use crate::search::query;
use crate::store::StoreTransaction;

/// The ids (at most `limit`) of the resources of `definition` matching `condition`, a search
/// query string without the leading `?`, among those `principal` may `interaction`. The
/// condition must have at least one criterion: an empty one would select every resource of the
/// type.
pub async fn matching_ids(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    principal: &Principal,
    interaction: Interaction,
    definition: &ResourceType,
    condition: &str,
    limit: u32,
) -> Result<Vec<String>, FhirError> {
    let restriction = principal.permit(&definition.name, interaction)?;
    let mut params = QueryParams::parse(Some(condition));
    // Chains and `_has` in a condition test other types' resources, as a search's would.
    policy::check_reach(principal, &definition.name, &params)?;
    state.sensitive.blind_search(&mut params.0);
    let settings = &state.settings;
    let mut compiled =
        query::compile(definition, &params, &state.base_url, false, settings.max_page_size, settings.default_page_size)
            .map_err(|e| prefix(e, &format!("the condition '{condition}'")))?;
    if compiled.conditions.is_empty() {
        return Err(FhirError::bad_request(
            IssueType::Invalid,
            format!("the condition '{condition}' has no search criteria; a conditional interaction needs at least one"),
        ));
    }
    let mut canonical: Vec<String> = compiled.echo.iter().map(|(name, value)| format!("{name}={value}")).collect();
    canonical.sort();
    transaction.lock(&format!("conditional|{}?{}", definition.name, canonical.join("&"))).await?;
    policy::confine(state, &mut compiled, definition, &restriction)?;
    Ok(transaction.search_ids(&definition.name, &compiled, limit).await?)
}

/// Says which condition a search error came from.
fn prefix(error: FhirError, context: &str) -> FhirError {
    match error {
        FhirError::BadRequest(mut issues) => {
            for issue in &mut issues {
                issue.diagnostics = format!("{context}: {}", issue.diagnostics);
            }
            FhirError::BadRequest(issues)
        }
        other => other,
    }
}

/// The answer when a condition that must select at most one resource selects several.
pub fn several_match(definition: &ResourceType, condition: &str) -> FhirError {
    FhirError::PreconditionFailed(format!(
        "the condition '{condition}' matches more than one {}; make it more specific",
        definition.name
    ))
}
