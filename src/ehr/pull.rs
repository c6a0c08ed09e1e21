//! `POST Patient/[id]/$ehr-pull` (Kiln operation, docs/ehr.md): imports the linked remote record.
//! The record comes from the remote's `Patient/[rid]/$everything` where it offers that, else
//! from a search of each Patient-compartment type; `next` links are followed, with a page cap
//! and loop detection. Each remote resource gets a local id derived from its remote identity, so
//! a second pull updates what changed and duplicates nothing. References among the pulled
//! resources become local ones, and each resource carries `meta.source` = its remote URL. The
//! pull is one transaction with a Provenance naming the source: all of it or nothing.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

use super::RemoteEhr;
use crate::access::Principal;
use crate::access::policy::{self, Interaction, Restriction};
use crate::app::AppState;
use crate::error::{FhirError, Issue, IssueType};
use crate::rest::operation::{NoQueryParameters, OperationInput};
use crate::rest::{FhirBody, WriteMode, integrity, live, logical_id, resource_type, store_resource};

/// Most pages followed in one pull.
const MAX_PAGES: usize = 200;
/// Types searched one by one when the remote has no `$everything`.
pub const COMPARTMENT_TYPES: [&str; 10] = [
    "Encounter",
    "Observation",
    "Condition",
    "AllergyIntolerance",
    "MedicationRequest",
    "Procedure",
    "Immunization",
    "DiagnosticReport",
    "CarePlan",
    "DocumentReference",
];

/// The local id of a remote resource: stable for its remote identity (base, type, id).
pub fn local_id(remote_base: &str, resource_type: &str, remote_id: &str) -> String {
    let digest = Sha256::digest(format!("{remote_base}|{resource_type}|{remote_id}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("ehr-{hex}")
}

/// Every page of a search or `$everything`, following `next` links.
async fn all_pages(remote: &RemoteEhr, first: &str, into: &mut Vec<Value>) -> Result<(), FhirError> {
    let mut seen = HashSet::new();
    // Absolute URLs, so that a `next` link naming a page already read is recognised.
    let mut next = Some(remote.url(first));
    while let Some(url) = next.take() {
        if !seen.insert(url.clone()) {
            return Err(FhirError::BadGateway(format!("the remote's paging loops back to {url}")));
        }
        if seen.len() > MAX_PAGES {
            return Err(FhirError::BadGateway(format!("the remote's record runs past {MAX_PAGES} pages")));
        }
        let bundle = remote.get(&url).await.map_err(|e| FhirError::BadGateway(e.to_string()))?;
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            return Err(FhirError::BadGateway(format!("{url} did not answer a Bundle")));
        }
        for entry in bundle.get("entry").and_then(Value::as_array).into_iter().flatten() {
            if let Some(resource) = entry.get("resource")
                && entry.pointer("/search/mode").and_then(Value::as_str) != Some("outcome")
            {
                into.push(resource.clone());
            }
        }
        next = bundle
            .get("link")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|l| l["relation"] == "next")
            .and_then(|l| l["url"].as_str())
            .map(str::to_string);
    }
    Ok(())
}

/// Rewrites each reference `Type/rid` (relative, or absolute on the remote) to the local
/// resource it was pulled into, or to an absolute remote URL when it was not pulled.
fn map_references(value: &mut Value, remote_base: &str, local: &HashMap<String, String>) {
    crate::fhir::json::visit_references_mut(value, &mut |reference| {
        let relative = reference.strip_prefix(remote_base).map(|r| r.trim_start_matches('/')).unwrap_or(reference);
        let key = relative.split("/_history").next().unwrap_or(relative).to_string();
        if let Some(mapped) = local.get(&key) {
            *reference = mapped.clone();
        } else if !reference.contains("://") && !reference.starts_with('#') && key.split('/').count() == 2 {
            *reference = format!("{remote_base}/{key}");
        }
    });
}

fn without_meta(value: &Value) -> Value {
    let mut copy = value.clone();
    if let Some(object) = copy.as_object_mut() {
        object.remove("meta");
    }
    copy
}

/// The operation.
pub async fn ehr_pull(
    State(state): State<AppState>,
    principal: Principal,
    origin: crate::audit::event::Origin,
    Path((type_name, id)): Path<(String, String)>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    if definition.name != "Patient" {
        return Err(FhirError::NotFound(format!("$ehr-pull is defined on Patient, not {}", definition.name)));
    }
    let id = logical_id(&id)?.to_string();
    let input = OperationInput::read(&body)?;
    input.only(&["endpoint"])?;
    let wanted = super::endpoint_parameter(&input);
    let caller = super::Caller::of(&principal, origin);
    let issues = pull_patient(&state, &principal, &caller, &id, wanted.as_deref()).await?;
    Ok(crate::error::outcome_response(axum::http::StatusCode::OK, &issues))
}

/// Pulls the record of local Patient `id` from the remote it is linked to (`endpoint`, when
/// it is linked to several): the work of `$ehr-pull` and of `kiln ehr sync`, whose calls to the
/// remote are audited as `caller`'s. Answers the issues of the outcome, the first one counting
/// what was written.
pub async fn pull_patient(
    state: &AppState,
    principal: &Principal,
    caller: &super::Caller,
    id: &str,
    wanted: Option<&str>,
) -> Result<Vec<Issue>, FhirError> {
    let state = state.clone();
    let id = id.to_string();
    principal.permit("Endpoint", Interaction::Read)?;
    policy::ensure_writable(&state, principal, "Patient", Interaction::Update, Some(&id), None).await?;
    let patient = live(state.store.read_current(&principal.tenant, "Patient", &id).await?, "Patient", &id)?;
    let patient: Value = serde_json::from_slice(patient.json.as_deref().unwrap_or_default())
        .map_err(|e| FhirError::internal(e.to_string()))?;

    // Which remote, and which record there: the Patient's link to a registered Endpoint.
    let registered = super::list(&state, &principal.tenant).await.map_err(FhirError::internal)?;
    let links: Vec<&str> = patient
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.pointer("/other/reference").and_then(Value::as_str))
        .collect();
    let (endpoint_id, remote_patient_url) = registered
        .iter()
        .filter(|r| wanted.is_none_or(|w| w == r.connection.endpoint_id))
        .find_map(|r| {
            let prefix = format!("{}/Patient/", r.address().trim_end_matches('/'));
            links.iter().find(|l| l.starts_with(&prefix)).map(|l| (r.connection.endpoint_id.clone(), l.to_string()))
        })
        .ok_or_else(|| {
            FhirError::Unprocessable(vec![Issue::error(
                IssueType::BusinessRule,
                format!("Patient/{id} is not linked to a record at that remote EHR; link it first with $ehr-link"),
            )])
        })?;
    let (registered, remote) = super::connect(&state, caller, &endpoint_id).await.map_err(FhirError::NotFound)?;
    let remote_base = registered.address().trim_end_matches('/').to_string();
    let remote_patient_id = remote_patient_url.rsplit('/').next().unwrap_or_default().to_string();

    // Fetch the record.
    let statement = remote.capability_statement().await.map_err(|e| FhirError::BadGateway(e.to_string()))?;
    let has_everything = statement.pointer("/rest/0/resource").and_then(Value::as_array).is_some_and(|types| {
        types.iter().any(|t| t["type"] == "Patient" && t["operation"].to_string().contains("everything"))
    });
    let mut fetched = Vec::new();
    if has_everything {
        all_pages(&remote, &format!("Patient/{remote_patient_id}/$everything?_count=200"), &mut fetched).await?;
    } else {
        for type_name in COMPARTMENT_TYPES {
            all_pages(&remote, &format!("{type_name}?patient={remote_patient_id}&_count=200"), &mut fetched).await?;
        }
    }

    // The local identity of everything pulled (the remote patient is the local one).
    let mut local: HashMap<String, String> = HashMap::new();
    local.insert(format!("Patient/{remote_patient_id}"), format!("Patient/{id}"));
    let mut pulled: BTreeMap<(String, String), Value> = BTreeMap::new();
    for resource in fetched {
        let (Some(resource_type), Some(remote_id)) =
            (resource["resourceType"].as_str().map(str::to_string), resource["id"].as_str().map(str::to_string))
        else {
            continue;
        };
        if resource_type == "Patient" && remote_id == remote_patient_id {
            continue;
        }
        local.insert(
            format!("{resource_type}/{remote_id}"),
            format!("{resource_type}/{}", local_id(&remote_base, &resource_type, &remote_id)),
        );
        pulled.insert((resource_type, remote_id), resource);
    }

    // Check, map and write, all in one transaction.
    let mut issues = Vec::new();
    let mut prepared = Vec::new();
    for ((resource_type, remote_id), mut resource) in pulled {
        let Some(definition) = state.registry.resource(&resource_type) else {
            issues.push(Issue::warning(
                IssueType::NotSupported,
                format!("{remote_base}/{resource_type}/{remote_id}: the type is not served here; not stored"),
            ));
            continue;
        };
        for interaction in [Interaction::Create, Interaction::Update] {
            if principal.permit(&resource_type, interaction)? != Restriction::Unrestricted {
                return Err(FhirError::Forbidden(format!(
                    "a pull writes {resource_type} resources, which this token may only partly write"
                )));
            }
        }
        let new_id = local_id(&remote_base, &resource_type, &remote_id);
        map_references(&mut resource, &remote_base, &local);
        resource["id"] = json!(new_id);
        resource["meta"] = json!({"source": format!("{remote_base}/{resource_type}/{remote_id}")});
        let bytes = serde_json::to_vec(&resource).map_err(|e| FhirError::internal(e.to_string()))?;
        match crate::rest::parse_for_write(&state, definition, &bytes) {
            Ok((body, value)) => prepared.push((resource_type, new_id, body, value)),
            Err(error) => issues.push(Issue::warning(
                IssueType::Invalid,
                format!("{remote_base}/{resource_type}/{remote_id} is not valid here and was not stored: {error}"),
            )),
        }
    }
    let mut transaction = state.store.begin(&principal.tenant).await?;
    transaction.lock(&format!("ehr-pull|Patient/{id}")).await?;
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    let mut written = Vec::new();
    let mut targets = Vec::new();
    for (resource_type, new_id, mut body, mut value) in prepared {
        if let Some(current) = transaction.read_current(&resource_type, &new_id).await?
            && !current.deleted
            && let Some(json) = &current.json
            && serde_json::from_slice::<Value>(json).is_ok_and(|stored| without_meta(&stored) == without_meta(&value))
        {
            unchanged += 1;
            continue;
        }
        let outcome = store_resource(
            &state,
            &mut *transaction,
            &resource_type,
            &new_id,
            &mut body,
            &mut value,
            WriteMode::Update { if_match: None },
        )
        .await
        .map_err(|e| prefix(e, &format!("{resource_type}/{new_id}")))?;
        if outcome.created {
            created += 1
        } else {
            updated += 1
        }
        targets.push(json!({"reference": format!("{resource_type}/{new_id}/_history/{}", outcome.record.version)}));
        written.push((resource_type, new_id));
    }
    if !targets.is_empty() {
        let provenance = json!({
            "resourceType": "Provenance",
            "target": targets,
            "recorded": crate::fhir::instant::fhir_instant(crate::fhir::instant::now_micros()),
            "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "CREATE", "display": "create"}],
                "text": format!("pulled from {}", registered.name())},
            "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler"}]},
                "who": {"display": format!("Kiln, pulling from {} ({remote_base})", registered.name())}}],
            "entity": [{"role": "source", "what": {"reference": remote_patient_url, "display": registered.name()}}]
        });
        let provenance_definition =
            state.registry.resource("Provenance").ok_or_else(|| FhirError::internal("Provenance is not served"))?;
        let bytes = serde_json::to_vec(&provenance).map_err(|e| FhirError::internal(e.to_string()))?;
        let (mut body, mut value) = crate::rest::parse_for_write(&state, provenance_definition, &bytes)?;
        let provenance_id = crate::rest::new_id();
        store_resource(
            &state,
            &mut *transaction,
            "Provenance",
            &provenance_id,
            &mut body,
            &mut value,
            WriteMode::Create,
        )
        .await?;
        written.push(("Provenance".to_string(), provenance_id));
    }
    integrity::verify(&state, &mut *transaction, &written, &[]).await.map_err(|v| v.error)?;
    transaction.commit().await?;

    let summary = format!(
        "pulled Patient/{id}'s record from {} ({remote_patient_url}): {created} created, {updated} updated, {unchanged} unchanged, {} not stored",
        registered.name(),
        issues.len()
    );
    let mut all = vec![Issue::information(IssueType::Informational, summary)];
    all.extend(issues);
    Ok(all)
}

fn prefix(error: FhirError, what: &str) -> FhirError {
    match error {
        FhirError::BadRequest(issues) | FhirError::Unprocessable(issues) => FhirError::Unprocessable(
            issues
                .into_iter()
                .map(|mut i| {
                    i.diagnostics = format!("{what}: {}", i.diagnostics);
                    i
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ids_are_stable_per_remote_identity() {
        let a = local_id("https://r/fhir", "Observation", "1");
        assert_eq!(a, local_id("https://r/fhir", "Observation", "1"));
        assert_ne!(a, local_id("https://r/fhir", "Observation", "2"));
        assert_ne!(a, local_id("https://other/fhir", "Observation", "1"));
        assert!(crate::fhir::is_valid_id(&a));
    }

    #[test]
    fn references_are_mapped_to_pulled_resources_or_made_absolute() {
        let local = HashMap::from([
            ("Patient/r1".to_string(), "Patient/p".to_string()),
            ("Encounter/e1".to_string(), "Encounter/ehr-1".to_string()),
        ]);
        let mut observation = json!({
            "subject": {"reference": "Patient/r1"},
            "encounter": {"reference": "https://r/fhir/Encounter/e1/_history/3"},
            "performer": [{"reference": "Practitioner/d9"}],
            "hasMember": [{"reference": "#contained"}, {"reference": "urn:uuid:x"}]
        });
        map_references(&mut observation, "https://r/fhir", &local);
        assert_eq!(observation["subject"]["reference"], "Patient/p");
        assert_eq!(observation["encounter"]["reference"], "Encounter/ehr-1");
        assert_eq!(observation["performer"][0]["reference"], "https://r/fhir/Practitioner/d9");
        assert_eq!(observation["hasMember"][0]["reference"], "#contained");
        assert_eq!(observation["hasMember"][1]["reference"], "urn:uuid:x");
    }
}
