//! The access policy (SMART App Launch 2.2 "Scopes and Launch Context", docs/smart.md): what a
//! principal's scopes allow on a resource type, and the restriction that follows. `system/` and
//! `user/` scopes act on the whole clinic; `patient/` scopes are confined to the launch patient's
//! compartment (R4 compartmentdefinition-patient); granular scopes add their search filter.
//! Users whose role reaches only assigned patients are confined to those patients'
//! compartments (`assignments`). Reads outside the allowed set answer 403; searches simply leave
//! such resources out.

use std::collections::HashSet;
use std::sync::Arc;

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
    /// Only resources in the compartment of one of `patients` (when set: the launch patient, or
    /// a clinician's assigned patients) that match `filter` (when set).
    Confined {
        patients: Option<Arc<[String]>>,
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
        // The audit trail is written by the server alone, whoever asks and however.
        if resource_type == "AuditEvent" && !matches!(interaction, Interaction::Read | Interaction::Search) {
            return Err(FhirError::MethodNotAllowed(format!(
                "AuditEvent records are written by the server and never changed; {} is not allowed",
                verb(interaction)
            )));
        }
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
        // A clinician limited to assigned patients reaches the others' records through no scope.
        let assigned = grant.assigned.as_ref().filter(|_| in_patient_compartment(resource_type));
        for context in [Context::System, Context::User] {
            match grant.scopes.allowed(context, resource_type, interaction) {
                Allowed::All => {
                    return Ok(match assigned {
                        Some(patients) => Restriction::Confined { patients: Some(patients.clone()), filter: None },
                        None => Restriction::Unrestricted,
                    });
                }
                Allowed::Where(filters) => {
                    return Ok(Restriction::Confined {
                        patients: assigned.cloned(),
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
        // Types outside the Patient compartment (Practitioner, Organization, Medication, …) hold
        // nobody's record: a patient/ scope on them is bounded by its filter only.
        if !in_patient_compartment(resource_type) {
            return Ok(match filter {
                Some(filter) => Restriction::Confined { patients: None, filter: Some(filter) },
                None => Restriction::Unrestricted,
            });
        }
        let Some(patient) = grant.claims.patient.clone() else {
            return Err(FhirError::Forbidden("patient/ scopes need a patient in the launch context".into()));
        };
        Ok(Restriction::Confined { patients: Some(Arc::from([patient])), filter })
    }

    /// The launch patient a `patient/`-confined principal acts for, if any.
    pub fn launch_patient(&self) -> Option<&str> {
        self.grant().and_then(|grant| grant.claims.patient.as_deref())
    }
}

/// Whether resources of this type can belong to a patient's record (R4 compartmentdefinition-patient).
pub fn in_patient_compartment(resource_type: &str) -> bool {
    resource_type == "Patient"
        || crate::fhir::registry::Registry::global()
            .patient_compartment
            .get(resource_type)
            .is_some_and(|params| !params.is_empty())
}

/// The patients a resource's content places it with: the targets of the parameters the Patient
/// compartment definition names for its type (or the patient itself).
fn compartment_patients(resource_type: &str, id: Option<&str>, content: &[u8]) -> Result<Vec<String>, FhirError> {
    let registry = crate::fhir::registry::Registry::global();
    if resource_type == "Patient" {
        return Ok(id.map(str::to_string).into_iter().collect());
    }
    let value: serde_json::Value = serde_json::from_slice(content)
        .map_err(|e| FhirError::internal(format!("a validated resource did not parse again: {e}")))?;
    let params = registry.patient_compartment.get(resource_type).cloned().unwrap_or_default();
    Ok(crate::search::index_resource(registry, resource_type, &value)
        .into_iter()
        .filter_map(|row| match row {
            crate::search::IndexRow::Reference { param, target_type, target_id: Some(target), .. }
                if params.contains(&param) && target_type.as_deref() == Some("Patient") =>
            {
                Some(target)
            }
            _ => None,
        })
        .collect())
}

/// Adds a restriction's granular filter to search parameters; answers the patients whose
/// compartments the compiled query must then be confined to.
pub fn restrict(params: &mut QueryParams, restriction: &Restriction) -> Option<Arc<[String]>> {
    match restriction {
        Restriction::Unrestricted => None,
        Restriction::Confined { patients, filter } => {
            if let Some(filter) = filter {
                params.0.extend(filter.iter().cloned());
            }
            patients.clone()
        }
    }
}

/// Confines a compiled query to the compartments of `patients`.
pub fn confine(query: &mut SearchQuery, resource_type: &str, patients: Option<&[String]>) -> Result<(), FhirError> {
    match patients {
        Some(patients) => query.within_compartments(resource_type, patients),
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
        let patients = restrict(&mut params, restriction);
        let mut query = query::compile(definition, &params, &state.base_url, false, 100, 100)?;
        confine(&mut query, resource_type, patients.as_deref())?;
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
                Restriction::Confined { patients: Some(patients), .. } if principal.launch_patient().is_some() => {
                    format!("the compartment of Patient/{}", patients.join(", Patient/"))
                }
                Restriction::Confined { patients: Some(_), .. } => {
                    "the patients in your care; a clinician may break the glass (X-Break-Glass-Reason)".to_string()
                }
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
    if let (Some(role), Some(content)) = (principal.grant().and_then(|g| g.claims.role.as_deref()), content) {
        let value: serde_json::Value = serde_json::from_slice(content)
            .map_err(|e| FhirError::internal(format!("a validated resource did not parse again: {e}")))?;
        super::roles::check_content(role, resource_type, &value).map_err(FhirError::Forbidden)?;
    }
    let Restriction::Confined { patients, filter } = &restriction else {
        return Ok(());
    };
    // Whether written content would match a granular filter is a search over content not yet
    // stored: rather than guess, such writes are refused.
    if filter.is_some() && content.is_some() {
        return Err(FhirError::Forbidden(format!(
            "the access token's {} scope for {resource_type} is limited by a search filter; it cannot write",
            verb(interaction)
        )));
    }
    if let Some(id) = existing
        && let Some(current) = state.store.read_current(&principal.tenant, resource_type, id).await?
    {
        // A deleted resource's earlier versions may be anyone's: a confined token does not
        // bring it back (and with it, its history).
        if current.deleted
            || !visible_ids(state, principal, resource_type, &[id.to_string()], &restriction).await?.contains(id)
        {
            return Err(FhirError::Forbidden(format!("{resource_type}/{id} is outside what the access token allows")));
        }
    }
    if let (Some(allowed), Some(content)) = (patients, content) {
        // The written content must place the resource with the allowed patients, and no one else.
        let placed = compartment_patients(resource_type, existing, content)?;
        if placed.is_empty() || placed.iter().any(|p| !allowed.contains(p)) {
            return Err(FhirError::Forbidden(match principal.launch_patient() {
                Some(patient) => format!(
                    "a patient/ token may only write resources of Patient/{patient}'s record (and of no other patient's)"
                ),
                None => "you may only write the records of patients in your care".to_string(),
            }));
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

/// The types a search parameter's name reaches into besides the searched one: the targets of
/// a chain (`subject:Patient.name`, `subject.name` when the reference has one target type) and
/// the types of `_has` (`_has:Observation:subject:code`), nested or not.
fn reached_types(resource_type: &str, name: &str) -> Vec<String> {
    let mut types = Vec::new();
    let mut current = resource_type.to_string();
    let mut rest = name;
    while let Some(after) = rest.strip_prefix("_has:") {
        let mut parts = after.splitn(3, ':');
        let (Some(referring), Some(_), Some(tail)) = (parts.next(), parts.next(), parts.next()) else { break };
        types.push(referring.to_string());
        current = referring.to_string();
        rest = tail;
    }
    let segments: Vec<&str> = rest.split('.').collect();
    for segment in &segments[..segments.len().saturating_sub(1)] {
        let (code, modifier) = match segment.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier)),
            None => (*segment, None),
        };
        let target = modifier.map(str::to_string).or_else(|| {
            let param = crate::search::SearchRegistry::global().param(&current, code)?;
            (param.targets.len() == 1).then(|| param.targets[0].clone())
        });
        let Some(target) = target else { break };
        types.push(target.clone());
        current = target;
    }
    types
}

/// Refuses (403) a search whose chains or `_has` reach into a type the token may not search
/// in full: their conditions would test resources the token cannot see, and so reveal them.
pub fn check_reach(principal: &Principal, resource_type: &str, params: &QueryParams) -> Result<(), FhirError> {
    if principal.grant().is_none() {
        return Ok(());
    }
    for (name, _) in &params.0 {
        for reached in reached_types(resource_type, name) {
            if principal.permit(&reached, Interaction::Search)? != Restriction::Unrestricted {
                return Err(FhirError::Forbidden(format!(
                    "{name} searches {reached} resources, which the access token may only partly see"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reached_types;

    #[test]
    fn chains_and_has_name_the_types_they_reach() {
        assert_eq!(reached_types("Observation", "subject:Patient.name"), vec!["Patient"]);
        assert_eq!(reached_types("Observation", "code"), Vec::<String>::new());
        assert_eq!(reached_types("Patient", "_has:Observation:subject:code"), vec!["Observation"]);
        assert_eq!(
            reached_types("Patient", "_has:Observation:subject:_has:Provenance:target:agent"),
            vec!["Observation", "Provenance"]
        );
        assert_eq!(reached_types("Observation", "subject:Patient.organization.name"), vec!["Patient", "Organization"]);
        assert_eq!(reached_types("Encounter", "patient.name"), vec!["Patient"]);
    }
}
