//! `Patient/[id]/$everything` and `Patient/$everything` (FHIR R4 patient-operation-everything.html):
//! the patient (or every patient), everything in their Patient compartment, and the
//! Practitioners, PractitionerRoles, Organizations, Locations and Medications those resources
//! refer to, as a paged `searchset` Bundle.
//!
//! Parameters: `start` / `end` (the care date: applied through each type's `date` search
//! parameter; types without one are not filtered by it), `_since` (changed at or after),
//! `_type` (only these types), `_count` (page size) and `_cursor` (from the `next` link).
//! Compartment members are counted in `total` and paged in a fixed order (the patient first,
//! then by type and id); the referenced resources come with the page that refers to them,
//! marked `search.mode = include`.

use crate::access::policy::{self, Interaction, Restriction};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashSet;

use super::{QueryParams, logical_id};
use crate::access::Principal;
use crate::app::AppState;
use crate::error::{FhirError, IssueType};
use crate::fhir::FHIR_JSON;
use crate::fhir::bundle::{BundleWriter, Entry};
use crate::search::SearchRegistry;
use crate::search::query::{self, Cursor, SearchQuery};
use crate::store::VersionRecord;

/// Types a compartment member's references pull in.
const REFERENCED_TYPES: &[&str] = &["Practitioner", "PractitionerRole", "Organization", "Location", "Medication"];

const PARAMETERS: &[&str] = &["start", "end", "_since", "_type", "_count", "_cursor", "_format", "_pretty"];

pub async fn everything_for_patient(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    only_patient(&state, &type_name)?;
    let id = logical_id(&id)?;
    super::live(state.store.read_current(&principal.tenant, "Patient", id).await?, "Patient", id)?;
    everything(&state, &principal, Some(id), raw.as_deref()).await
}

pub async fn everything_for_all_patients(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, FhirError> {
    only_patient(&state, &type_name)?;
    everything(&state, &principal, None, raw.as_deref()).await
}

/// `$everything` is defined on Patient only.
fn only_patient(state: &AppState, type_name: &str) -> Result<(), FhirError> {
    super::resource_type(state, type_name)?;
    if type_name == "Patient" {
        Ok(())
    } else {
        Err(FhirError::NotFound(format!("{type_name} has no $everything operation; Patient has")))
    }
}

async fn everything(
    state: &AppState,
    principal: &Principal,
    patient: Option<&str>,
    raw: Option<&str>,
) -> Result<Response, FhirError> {
    let params = QueryParams::parse(raw);
    params.only(PARAMETERS)?;
    let settings = &state.settings;
    let page_size = match params.get("_count") {
        None => settings.default_page_size,
        Some(c) => c.parse::<u32>().ok().filter(|c| (1..=settings.max_page_size).contains(c)).ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Value,
                format!("_count must be a whole number from 1 to {}", settings.max_page_size),
            )
        })?,
    };
    let offset = match params.get("_cursor").map(|cursor| Cursor::open(cursor, &state.sensitive)).transpose()? {
        None => 0,
        Some(Cursor::Offset(n)) => n,
        Some(_) => return Err(FhirError::bad_request(IssueType::Value, "_cursor is not a page cursor of $everything")),
    };
    let registry = state.registry;
    // Types the compartment definition names without a linking parameter (e.g. Binary) hold
    // nothing of the patient's. Who accessed the record (AuditEvent) is not the record; it is
    // read with `AuditEvent?patient=`.
    let mut types: Vec<&str> = registry
        .patient_compartment
        .iter()
        .filter(|(t, params)| {
            registry.resource(t).is_some() && *t != "AuditEvent" && (*t == "Patient" || !params.is_empty())
        })
        .map(|(t, _)| t.as_str())
        .collect();
    if let Some(wanted) = params.get("_type") {
        let wanted: Vec<&str> = wanted.split(',').map(str::trim).collect();
        if let Some(unknown) = wanted.iter().find(|t| !types.contains(t)) {
            return Err(FhirError::bad_request(
                IssueType::NotSupported,
                format!("_type '{unknown}' is not a type of the Patient compartment served here"),
            ));
        }
        types.retain(|t| wanted.contains(t));
    }
    // The patient first, then the other types in name order.
    types.sort_by_key(|t| (*t != "Patient", *t));

    // A patient-confined token sees only its own patient's record.
    if let Some(own) = principal.launch_patient()
        && principal.permit("Patient", Interaction::Read).is_ok_and(|r| r != Restriction::Unrestricted)
    {
        match patient {
            Some(id) if id != own => {
                return Err(FhirError::Forbidden(format!("Patient/{id} is outside the access token's patient")));
            }
            _ => {}
        }
    }
    // A clinician limited to assigned patients (or a granular scope) may not reach this one.
    if let Some(id) = patient {
        policy::ensure_visible(state, principal, "Patient", id, Interaction::Read).await?;
    }
    let confined_to = match principal.launch_patient() {
        Some(own) if principal.grant().is_some_and(|g| !g.scopes.has_context(crate::auth::scopes::Context::User)) => {
            Some(own.to_string())
        }
        _ => None,
    };
    let patient = patient.or(confined_to.as_deref());
    // Types the token may not search are left out.
    types.retain(|t| principal.permit(t, Interaction::Search).is_ok());
    let mut queries: Vec<(&str, SearchQuery, u64)> = Vec::new();
    let mut total = 0;
    for type_name in types {
        let definition = registry.resource(type_name).expect("filtered to served types");
        let mut conditions = QueryParams(Vec::new());
        if let Some(since) = params.get("_since") {
            conditions.0.push(("_lastUpdated".into(), format!("ge{since}")));
        }
        if SearchRegistry::global().param(type_name, "date").is_some() {
            if let Some(start) = params.get("start") {
                conditions.0.push(("date".into(), format!("ge{start}")));
            }
            if let Some(end) = params.get("end") {
                conditions.0.push(("date".into(), format!("le{end}")));
            }
        }
        let restriction = principal.permit(type_name, Interaction::Search)?;
        let mut query =
            query::compile(definition, &conditions, &state.base_url, false, u32::MAX, settings.default_page_size)?;
        policy::confine(state, &mut query, definition, &restriction)?;
        query.within_compartment_of(type_name, patient)?;
        let count = state.store.count(&principal.tenant, type_name, &query).await?;
        total += count;
        queries.push((type_name, query, count));
    }

    // The page: `page_size` members from `offset` on, across the types in order.
    let mut page: Vec<VersionRecord> = Vec::new();
    let mut skip = offset;
    for (type_name, mut query, count) in queries {
        let wanted = u64::from(page_size) - page.len() as u64;
        if wanted == 0 {
            break;
        }
        if skip >= count {
            skip -= count;
            continue;
        }
        query.count = wanted.min(count - skip) as u32;
        query.cursor = Some(Cursor::Offset(skip));
        skip = 0;
        let mut records = state.store.search(&principal.tenant, type_name, &query).await?;
        records.truncate(query.count as usize);
        page.extend(records);
    }
    let included = super::search::visible_only(state, principal, referenced(state, principal, &page).await?).await?;

    let link = |at: u64| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in params.0.iter().filter(|(n, _)| n != "_cursor") {
            serializer.append_pair(name, value);
        }
        if at > 0 {
            serializer.append_pair("_cursor", &Cursor::Offset(at).seal(&state.sensitive));
        }
        let path = match patient {
            Some(id) => format!("Patient/{id}/$everything"),
            None => "Patient/$everything".to_string(),
        };
        let query = serializer.finish();
        if query.is_empty() {
            format!("{}/{path}", state.base_url)
        } else {
            format!("{}/{path}?{query}", state.base_url)
        }
    };
    let self_link = link(offset);
    let next_offset = offset + page.len() as u64;
    let next_link = (next_offset < total).then(|| link(next_offset));
    let mut links = vec![("self", self_link.as_str())];
    if let Some(next) = &next_link {
        links.push(("next", next.as_str()));
    }
    let mut bundle = BundleWriter::new("searchset", Some(total), &links);
    let entries = page.iter().map(|r| (r, "match")).chain(included.iter().map(|r| (r, "include")));
    for (record, mode) in entries {
        let full_url = format!("{}/{}/{}", state.base_url, record.resource_type, record.id);
        bundle.push(Entry {
            full_url: &full_url,
            resource: record.json.as_deref(),
            search_mode: Some(mode),
            request: None,
            response: None,
            outcome: None,
        });
    }
    let mut response = (StatusCode::OK, bundle.finish()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// The Practitioners, Organizations, Locations and Medications the page refers to, once each.
async fn referenced(
    state: &AppState,
    principal: &Principal,
    page: &[VersionRecord],
) -> Result<Vec<VersionRecord>, FhirError> {
    let mut seen: HashSet<(String, String)> = page.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
    let mut wanted = Vec::new();
    for record in page {
        let Some(json) = &record.json else { continue };
        let Ok(value) = serde_json::from_slice::<Value>(json) else { continue };
        for reference in crate::fhir::json::references(&value) {
            let Some((type_name, id)) = reference.split_once('/') else { continue };
            if REFERENCED_TYPES.contains(&type_name)
                && crate::fhir::is_valid_id(id)
                && seen.insert((type_name.to_string(), id.to_string()))
            {
                wanted.push((type_name.to_string(), id.to_string()));
            }
        }
    }
    let mut found = Vec::new();
    for (type_name, id) in wanted {
        if let Some(record) = state.store.read_current(&principal.tenant, &type_name, &id).await?
            && !record.deleted
        {
            found.push(record);
        }
    }
    Ok(found)
}
