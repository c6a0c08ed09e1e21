//! The access policy (SMART App Launch 2.2 "Scopes and Launch Context", docs/smart.md): what a
//! principal's scopes allow on a resource type, and the restriction that follows. `system/` and
//! `user/` scopes act on the whole clinic; `patient/` scopes are confined to the launch patient's
//! compartment (R4 compartmentdefinition-patient); granular scopes add their search filters
//! (several granular scopes for one type: a resource matching any one of them).
//! Users whose role reaches only assigned patients are confined to those patients'
//! compartments (`assignments`). Reads outside the allowed set answer 403; searches simply leave
//! such resources out. Writes by a confined principal are checked inside their own transaction,
//! before and after: what they change must be within reach, and so must what they leave.

use std::collections::HashSet;
use std::sync::Arc;

use super::Principal;
use crate::app::AppState;
use crate::auth::scopes::{Allowed, Context, Filter};
use crate::error::FhirError;
use crate::fhir::registry::ResourceType;
use crate::rest::QueryParams;
use crate::search::query::{self, SearchQuery};
use crate::store::StoreTransaction;

pub use crate::auth::scopes::Interaction;

/// What a principal may see of one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restriction {
    Unrestricted,
    /// Only resources in the compartment of one of `patients` (when set: the launch patient, or
    /// a clinician's assigned patients) that match at least one of `filters` (when there are any).
    Confined {
        patients: Option<Arc<[String]>>,
        filters: Vec<Filter>,
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
                        Some(patients) => {
                            Restriction::Confined { patients: Some(patients.clone()), filters: Vec::new() }
                        }
                        None => Restriction::Unrestricted,
                    });
                }
                Allowed::Where(filters) => {
                    return Ok(Restriction::Confined { patients: assigned.cloned(), filters });
                }
                Allowed::No => {}
            }
        }
        let filters = match grant.scopes.allowed(Context::Patient, resource_type, interaction) {
            Allowed::No => {
                return Err(FhirError::Forbidden(format!(
                    "the access token's scopes do not allow {} of {resource_type}",
                    verb(interaction)
                )));
            }
            Allowed::All => Vec::new(),
            Allowed::Where(filters) => filters,
        };
        // Types outside the Patient compartment (Practitioner, Organization, Medication, …) hold
        // nobody's record: a patient/ scope on them is bounded by its filter only.
        if !in_patient_compartment(resource_type) {
            return Ok(if filters.is_empty() {
                Restriction::Unrestricted
            } else {
                Restriction::Confined { patients: None, filters }
            });
        }
        let Some(patient) = grant.claims.patient.clone() else {
            return Err(FhirError::Forbidden("patient/ scopes need a patient in the launch context".into()));
        };
        Ok(Restriction::Confined { patients: Some(Arc::from([patient])), filters })
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

/// Confines a compiled query of `definition` to what the restriction allows: the compartments
/// of its patients, and resources matching one of its granular filters.
pub fn confine(
    state: &AppState,
    query: &mut SearchQuery,
    definition: &ResourceType,
    restriction: &Restriction,
) -> Result<(), FhirError> {
    let Restriction::Confined { patients, filters } = restriction else {
        return Ok(());
    };
    if let Some(patients) = patients {
        query.within_compartments(&definition.name, patients)?;
    }
    if !filters.is_empty() {
        let blinded: Vec<Filter> = filters
            .iter()
            .map(|filter| {
                let mut filter = filter.clone();
                state.sensitive.blind_search(&mut filter);
                filter
            })
            .collect();
        query.matching_any(definition, &blinded, &state.base_url).map_err(|error| match error {
            FhirError::BadRequest(issues) => FhirError::Forbidden(format!(
                "a granular scope of the access token for {} cannot be applied: {}",
                definition.name,
                issues.iter().map(|issue| issue.diagnostics.as_str()).collect::<Vec<_>>().join("; ")
            )),
            other => other,
        })?;
    }
    Ok(())
}

/// A query for those of `ids` (all of `definition`'s type) the restriction reaches.
fn reachable_ids_query(
    state: &AppState,
    definition: &ResourceType,
    ids: &[String],
    restriction: &Restriction,
) -> Result<SearchQuery, FhirError> {
    let params = QueryParams(vec![("_id".into(), ids.join(",")), ("_count".into(), ids.len().to_string())]);
    let mut query = query::compile(definition, &params, &state.base_url, false, 100, 100)?;
    confine(state, &mut query, definition, restriction)?;
    Ok(query)
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
        let query = reachable_ids_query(state, definition, chunk, restriction)?;
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
/// compartment: a `patient/` token writes only what refers to its patient. Whether written
/// content matches a granular scope's filter is checked after the write, inside its
/// transaction ([`ensure_left_within_reach`]).
pub async fn ensure_writable(
    state: &AppState,
    principal: &Principal,
    resource_type: &str,
    interaction: Interaction,
    existing: Option<&str>,
    content: Option<&[u8]>,
) -> Result<(), FhirError> {
    let restriction = principal.permit(resource_type, interaction)?;
    if let Some(content) = content {
        check_role_content(principal, resource_type, content)?;
    }
    let Restriction::Confined { patients, .. } = &restriction else {
        return Ok(());
    };
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
        check_placement(principal, resource_type, existing, content, allowed)?;
    }
    Ok(())
}

/// A user's role may limit what content of a type it writes (a nurse writes vital signs).
fn check_role_content(principal: &Principal, resource_type: &str, content: &[u8]) -> Result<(), FhirError> {
    let Some(role) = principal.grant().and_then(|g| g.claims.role.as_deref()) else {
        return Ok(());
    };
    let value: serde_json::Value = serde_json::from_slice(content)
        .map_err(|e| FhirError::internal(format!("a validated resource did not parse again: {e}")))?;
    super::roles::check_content(role, resource_type, &value).map_err(FhirError::Forbidden)
}

/// The written content must place the resource with the allowed patients, and no one else.
fn check_placement(
    principal: &Principal,
    resource_type: &str,
    id: Option<&str>,
    content: &[u8],
    allowed: &[String],
) -> Result<(), FhirError> {
    let placed = compartment_patients(resource_type, id, content)?;
    if placed.is_empty() || placed.iter().any(|p| !allowed.contains(p)) {
        return Err(FhirError::Forbidden(match principal.launch_patient() {
            Some(patient) => format!(
                "a patient/ token may only write resources of Patient/{patient}'s record (and of no other patient's)"
            ),
            None => "you may only write the records of patients in your care".to_string(),
        }));
    }
    Ok(())
}

/// Whether `resource_type/id`, as `transaction` sees it now, is within the restriction.
async fn reachable_in(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    resource_type: &str,
    id: &str,
    restriction: &Restriction,
) -> Result<bool, FhirError> {
    let definition = state
        .registry
        .resource(resource_type)
        .ok_or_else(|| FhirError::UnknownType(format!("unknown resource type {resource_type}")))?;
    let query = reachable_ids_query(state, definition, &[id.to_string()], restriction)?;
    Ok(!transaction.search_ids(resource_type, &query, 1).await?.is_empty())
}

/// Inside a write's transaction, before it changes `resource_type/id`: answers 403 unless the
/// principal may `interaction` that resource as it stands (a resource not there yet is for the
/// written content to decide). Conditional and transaction writes find their targets inside the
/// transaction, so they are checked here rather than before it.
pub async fn ensure_reachable_in(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    principal: &Principal,
    resource_type: &str,
    id: &str,
    interaction: Interaction,
) -> Result<(), FhirError> {
    let restriction = principal.permit(resource_type, interaction)?;
    if restriction == Restriction::Unrestricted {
        return Ok(());
    }
    let Some(current) = transaction.read_current(resource_type, id).await? else {
        return Ok(());
    };
    // A deleted resource's earlier versions may be anyone's: a confined token does not bring it
    // back (and with it, its history).
    if current.deleted || !reachable_in(state, transaction, resource_type, id, &restriction).await? {
        return Err(FhirError::Forbidden(format!("{resource_type}/{id} is outside what the access token allows")));
    }
    Ok(())
}

/// Inside a write's transaction, after it wrote `resource_type/id`: answers 403 (and the
/// transaction is then dropped, so nothing is kept) unless what was written is still within the
/// principal's reach for `interaction`, granular filters included, since a search over the
/// transaction's own index rows decides that exactly as a later search would. `content` is the
/// written JSON when its role and patient placement were not checked before the write.
pub async fn ensure_left_within_reach(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    principal: &Principal,
    resource_type: &str,
    id: &str,
    interaction: Interaction,
    content: Option<&[u8]>,
) -> Result<(), FhirError> {
    if let Some(content) = content {
        check_role_content(principal, resource_type, content)?;
    }
    let restriction = principal.permit(resource_type, interaction)?;
    let Restriction::Confined { patients, filters } = &restriction else {
        return Ok(());
    };
    if let (Some(allowed), Some(content)) = (patients, content) {
        check_placement(principal, resource_type, Some(id), content, allowed)?;
    }
    if (filters.is_empty() && content.is_none())
        || reachable_in(state, transaction, resource_type, id, &restriction).await?
    {
        return Ok(());
    }
    Err(FhirError::Forbidden(format!(
        "the written {resource_type} would be outside what the access token's {} scope allows ({})",
        verb(interaction),
        if filters.is_empty() {
            "its patients' records".to_string()
        } else {
            filters.iter().map(describe_filter).collect::<Vec<_>>().join(" or ")
        }
    )))
}

fn describe_filter(filter: &Filter) -> String {
    filter.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
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
