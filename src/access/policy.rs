//! The access policy (SMART App Launch 2.2 "Scopes and Launch Context", docs/smart.md): what a
//! principal's scopes allow on a resource type, and the restriction that follows. `system/` and
//! `user/` scopes act on the whole clinic; `patient/` scopes are confined to the launch patient's
//! compartment (R4 compartmentdefinition-patient); granular scopes add their search filter.
//! Reads outside the allowed set answer 403; searches simply leave such resources out.

use std::collections::HashSet;

use super::Principal;
use crate::app::AppState;
use crate::auth::scopes::{Allowed, Context, Filter};
use crate::error::FhirError;
use crate::rest::QueryParams;
use crate::search::query::{self, SearchQuery};

pub use crate::auth::scopes::Interaction;

/// What a principal may see of one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    Unrestricted,
    /// Only resources in `patient`'s compartment (when set) that match `filter` (when set).
    Confined {
        patient: Option<String>,
        filter: Option<Filter>,
    },
}

fn verb(interaction: Interaction) -> &'static str {
    match interaction {
        Interaction::Create => "create",
        Interaction::Read => "read",
        Interaction::Update => "update",
        Interaction::Delete => "delete",
        Interaction::Search => "search",
    }
}

/// One granular filter can be added to a search; several would need a union of searches.
fn single_filter(filters: Vec<Filter>, resource_type: &str) -> Result<Filter, FhirError> {
    match <[Filter; 1]>::try_from(filters) {
        Ok([filter]) => Ok(filter),
        Err(_) => Err(FhirError::Forbidden(format!(
            "the token holds several granular scopes for {resource_type}; only one can be applied at a time"
        ))),
    }
}

impl Principal {
    /// Whether the principal may perform `interaction` on `resource_type`, and within what.
    pub fn permit(&self, resource_type: &str, interaction: Interaction) -> Result<Restriction, FhirError> {
        let Some(grant) = self.grant() else {
            return Ok(Restriction::Unrestricted);
        };
        // A user's token can do no more than the user's role, whatever its scopes say.
        if let Some(role) = grant.claims.role.as_deref()
            && !super::roles::allows(role, resource_type, interaction)
        {
            return Err(FhirError::Forbidden(format!(
                "the role '{role}' does not allow {} of {resource_type}",
                verb(interaction)
            )));
        }
        for context in [Context::System, Context::User] {
            match grant.scopes.allowed(context, resource_type, interaction) {
                Allowed::All => return Ok(Restriction::Unrestricted),
                Allowed::Where(filters) => {
                    return Ok(Restriction::Confined {
                        patient: None,
                        filter: Some(single_filter(filters, resource_type)?),
                    });
                }
                Allowed::No => {}
            }
        }
        let filter = match grant.scopes.allowed(Context::Patient, resource_type, interaction) {
            Allowed::No => {
                return Err(FhirError::Forbidden(format!(
                    "the access token's scopes do not allow {} of {resource_type}",
                    verb(interaction)
                )));
            }
            Allowed::All => None,
            Allowed::Where(filters) => Some(single_filter(filters, resource_type)?),
        };
        let Some(patient) = grant.claims.patient.clone() else {
            return Err(FhirError::Forbidden("patient/ scopes need a patient in the launch context".into()));
        };
        Ok(Restriction::Confined { patient: Some(patient), filter })
    }

    /// The launch patient a `patient/`-confined principal acts for, if any.
    pub fn launch_patient(&self) -> Option<&str> {
        self.grant().and_then(|grant| grant.claims.patient.as_deref())
    }
}

/// Adds a restriction's granular filter to search parameters; answers the patient whose
/// compartment the compiled query must then be confined to.
pub fn restrict(params: &mut QueryParams, restriction: &Restriction) -> Option<String> {
    match restriction {
        Restriction::Unrestricted => None,
        Restriction::Confined { patient, filter } => {
            if let Some(filter) = filter {
                params.0.extend(filter.iter().cloned());
            }
            patient.clone()
        }
    }
}

/// Confines a compiled query to a patient's compartment.
pub fn confine(query: &mut SearchQuery, resource_type: &str, patient: Option<&str>) -> Result<(), FhirError> {
    match patient {
        Some(patient) => query.within_patient_compartment(resource_type, patient),
        None => Ok(()),
    }
}

/// Of `ids` (all of `resource_type`), those the restriction lets the principal see.
pub async fn visible_ids(
    state: &AppState,
    principal: &Principal,
    resource_type: &str,
    ids: &[String],
    restriction: &Restriction,
) -> Result<HashSet<String>, FhirError> {
    if *restriction == Restriction::Unrestricted || ids.is_empty() {
        return Ok(ids.iter().cloned().collect());
    }
    let definition = state
        .registry
        .resource(resource_type)
        .ok_or_else(|| FhirError::UnknownType(format!("unknown resource type {resource_type}")))?;
    let mut visible = HashSet::new();
    for chunk in ids.chunks(100) {
        let mut params = QueryParams(vec![("_id".into(), chunk.join(",")), ("_count".into(), chunk.len().to_string())]);
        let patient = restrict(&mut params, restriction);
        let mut query = query::compile(definition, &params, &state.base_url, false, 100, 100)?;
        confine(&mut query, resource_type, patient.as_deref())?;
        for record in state.store.search(&principal.tenant, resource_type, &query).await? {
            visible.insert(record.id);
        }
    }
    Ok(visible)
}

/// Answers 403 unless the principal may `interaction` the existing `resource_type/id`.
pub async fn ensure_visible(
    state: &AppState,
    principal: &Principal,
    resource_type: &str,
    id: &str,
    interaction: Interaction,
) -> Result<(), FhirError> {
    let restriction = principal.permit(resource_type, interaction)?;
    let ids = [id.to_string()];
    if visible_ids(state, principal, resource_type, &ids, &restriction).await?.contains(id) {
        Ok(())
    } else {
        Err(FhirError::Forbidden(format!(
            "{resource_type}/{id} is outside what the access token allows ({})",
            match &restriction {
                Restriction::Confined { patient: Some(p), .. } => format!("the compartment of Patient/{p}"),
                _ => "its granular scope".to_string(),
            }
        )))
    }
}

/// Answers 403 unless the principal may write `resource_type` (and `existing`, if the write
/// changes a resource that is there), leaving the written content inside its patient's
/// compartment: a `patient/` token writes only what refers to its patient.
pub async fn ensure_writable(
    state: &AppState,
    principal: &Principal,
    resource_type: &str,
    interaction: Interaction,
    existing: Option<&str>,
    content: Option<&[u8]>,
) -> Result<(), FhirError> {
    let restriction = principal.permit(resource_type, interaction)?;
    let Restriction::Confined { patient, .. } = &restriction else {
        return Ok(());
    };
    if let Some(id) = existing
        && state.store.read_current(&principal.tenant, resource_type, id).await?.is_some_and(|r| !r.deleted)
        && !visible_ids(state, principal, resource_type, &[id.to_string()], &restriction).await?.contains(id)
    {
        return Err(FhirError::Forbidden(format!("{resource_type}/{id} is outside what the access token allows")));
    }
    if let (Some(patient), Some(content)) = (patient, content) {
        let own_record = resource_type == "Patient" && existing == Some(patient.as_str());
        let reference = format!("\"Patient/{patient}\"");
        let refers = content.windows(reference.len()).any(|w| w == reference.as_bytes());
        if !own_record && !refers {
            return Err(FhirError::Forbidden(format!(
                "a patient/ token may only write resources that refer to Patient/{patient}"
            )));
        }
    }
    Ok(())
}

/// Conditional writes and transaction writes are checked per type only; a token confined to a
/// patient or a granular filter is refused them rather than trusted with a search it cannot see.
pub fn ensure_unconfined_write(
    principal: &Principal,
    resource_type: &str,
    interaction: Interaction,
) -> Result<(), FhirError> {
    match principal.permit(resource_type, interaction)? {
        Restriction::Unrestricted => Ok(()),
        Restriction::Confined { .. } => Err(FhirError::Forbidden(format!(
            "a token confined to a patient or a granular scope cannot {} {resource_type} conditionally or in a \
             transaction; use the plain interaction",
            verb(interaction)
        ))),
    }
}
