//! `POST Patient/[id]/$ehr-push` (Kiln operation, docs/ehr.md): sends the patient's local record
//! to a registered remote EHR as one transaction Bundle. Each resource carries an identifier of
//! its local identity (`[base]/[type]` | id) and is a conditional create on it, so pushing again
//! creates nothing twice. Resources that came from that remote (by `meta.source`) are not sent
//! back. What was sent is recorded in an AuditEvent.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;

use super::pull::COMPARTMENT_TYPES;
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::audit::event::{self, Actor, Kind, Origin, Outcome};
use crate::error::{FhirError, Issue, IssueType};
use crate::rest::operation::{NoQueryParameters, OperationInput};
use crate::rest::{FhirBody, QueryParams, live, logical_id, resource_type};
use crate::search::query::compile;

/// Most resources one push sends.
const MAX_PUSHED: u32 = 5000;

fn fragment(resource_type: &str, id: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{resource_type}/{id}").as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    // A UUID-shaped name per local resource, stable within the Bundle.
    format!("urn:uuid:{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Rewrites local references: to the Bundle entry when the target is sent too, to the remote
/// patient for the patient, else to the absolute local URL.
fn map_references(value: &mut Value, map: &HashMap<String, String>, local_base: &str) {
    crate::fhir::json::visit_references_mut(value, &mut |reference| {
        let key = reference.split("/_history").next().unwrap_or(reference).to_string();
        if let Some(mapped) = map.get(&key) {
            *reference = mapped.clone();
        } else if !reference.contains(':') && !reference.starts_with('#') && key.split('/').count() == 2 {
            *reference = format!("{local_base}/{key}");
        }
    });
}

/// The operation.
pub async fn ehr_push(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    Path((type_name, id)): Path<(String, String)>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    if definition.name != "Patient" {
        return Err(FhirError::NotFound(format!("$ehr-push is defined on Patient, not {}", definition.name)));
    }
    let id = logical_id(&id)?.to_string();
    let input = OperationInput::read(&body)?;
    input.only(&["endpoint"])?;
    let endpoint = super::required_endpoint(&input)?;
    principal.permit("Endpoint", Interaction::Read)?;
    policy::ensure_visible(&state, &principal, "Patient", &id, Interaction::Read).await?;
    let patient = live(state.store.read_current(&principal.tenant, "Patient", &id).await?, "Patient", &id)?;
    let patient: Value = serde_json::from_slice(patient.json.as_deref().unwrap_or_default())
        .map_err(|e| FhirError::internal(e.to_string()))?;
    let (registered, remote) = super::connect(&state, &super::Caller::of(&principal, origin.clone()), &endpoint)
        .await
        .map_err(FhirError::NotFound)?;
    let remote_base = registered.address().trim_end_matches('/').to_string();
    let local_base = state.base_url.to_string();

    // The patient at the remote: the linked record, else the Patient is sent too.
    let linked = patient
        .get("link")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.pointer("/other/reference").and_then(Value::as_str))
        .find(|l| l.starts_with(&format!("{remote_base}/Patient/")))
        .map(|l| l.trim_start_matches(&format!("{remote_base}/")).to_string());

    // The local record, by the Patient compartment, leaving out what came from that remote.
    let mut record: Vec<(String, String, Value)> = Vec::new();
    if linked.is_none() {
        record.push(("Patient".into(), id.clone(), patient.clone()));
    }
    for type_name in COMPARTMENT_TYPES {
        let Some(type_definition) = state.registry.resource(type_name) else { continue };
        if principal.permit(type_name, Interaction::Search).is_err() {
            continue;
        }
        let params = QueryParams(vec![("_count".into(), MAX_PUSHED.to_string())]);
        let mut query = compile(type_definition, &params, &local_base, false, MAX_PUSHED, MAX_PUSHED)?;
        query.within_patient_compartment(type_name, &id)?;
        for stored in state.store.search(&principal.tenant, type_name, &query).await? {
            let Some(json) = &stored.json else { continue };
            let resource: Value = serde_json::from_slice(json).map_err(|e| FhirError::internal(e.to_string()))?;
            let source = resource.pointer("/meta/source").and_then(Value::as_str).unwrap_or_default();
            if source.starts_with(&format!("{remote_base}/")) {
                continue;
            }
            record.push((type_name.to_string(), stored.id.clone(), resource));
        }
    }
    if record.len() > MAX_PUSHED as usize {
        return Err(FhirError::Unprocessable(vec![Issue::error(
            IssueType::TooCostly,
            format!("the record holds more than {MAX_PUSHED} resources; push is not offered for it"),
        )]));
    }

    // The Bundle: conditional creates on the local identity.
    let mut map: HashMap<String, String> =
        record.iter().map(|(t, i, _)| (format!("{t}/{i}"), fragment(t, i))).collect();
    if let Some(remote_patient) = &linked {
        map.insert(format!("Patient/{id}"), remote_patient.clone());
    }
    let mut entries = Vec::new();
    let mut sent = Vec::new();
    for (resource_type, resource_id, mut resource) in record {
        let system = format!("{local_base}/{resource_type}");
        map_references(&mut resource, &map, &local_base);
        if let Some(object) = resource.as_object_mut() {
            object.remove("id");
            let version = object.get("meta").and_then(|m| m.get("versionId")).cloned();
            object.insert("meta".into(), json!({"source": format!("{system}/{resource_id}")}));
            let mut identifiers = object.get("identifier").and_then(Value::as_array).cloned().unwrap_or_default();
            // Sensitive identifiers stay here: they are sealed at rest and not for another system.
            identifiers.retain(|i| {
                !i.get("system").and_then(Value::as_str).is_some_and(|s| state.sensitive.is_sensitive_system(s))
            });
            identifiers.push(json!({"system": system, "value": resource_id}));
            object.insert("identifier".into(), Value::Array(identifiers));
            if let Some(Value::String(version)) = version {
                sent.push(format!("{resource_type}/{resource_id}/_history/{version}"));
            }
        }
        entries.push(json!({
            "fullUrl": fragment(&resource_type, &resource_id),
            "resource": resource,
            "request": {"method": "POST", "url": resource_type,
                        "ifNoneExist": format!("identifier={}", form_urlencoded::byte_serialize(format!("{system}|{resource_id}").as_bytes()).collect::<String>())}
        }));
    }
    let mut issues = Vec::new();
    let (mut created, mut existing) = (0, 0);
    let result = if entries.is_empty() {
        Ok(())
    } else {
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        match remote.post("", &bundle).await {
            Ok(answer) => {
                for entry in answer.get("entry").and_then(Value::as_array).into_iter().flatten() {
                    match entry.pointer("/response/status").and_then(Value::as_str).unwrap_or_default() {
                        s if s.starts_with("201") => created += 1,
                        s if s.starts_with("200") => existing += 1,
                        other => {
                            issues.push(Issue::warning(IssueType::Processing, format!("an entry answered {other}")))
                        }
                    }
                }
                Ok(())
            }
            Err(e) => Err(FhirError::BadGateway(e.to_string())),
        }
    };

    // What was sent (or tried) is audited, naming each resource and the destination.
    let mut entities: Vec<Value> =
        vec![event::patient_entity(&id), event::resource_entity(&format!("Endpoint/{endpoint}"))];
    entities.extend(sent.iter().map(|r| event::resource_entity(r)));
    let outcome = if result.is_ok() { Outcome::Success } else { Outcome::SeriousFailure };
    let description = format!("pushed {} resources to {} ({remote_base})", sent.len(), registered.name());
    let audit = event::audit_event(
        &Kind::operation("$ehr-push", "E"),
        &Actor::of_principal(Some(&principal)),
        &origin,
        outcome,
        Some(&description),
        entities,
        None,
    );
    state.audit.record(&principal.tenant, audit).await.map_err(FhirError::Internal)?;
    result?;
    let summary = format!(
        "pushed Patient/{id}'s record to {}: {} resources sent, {created} created there, {existing} already there",
        registered.name(),
        sent.len()
    );
    let mut all = vec![Issue::information(IssueType::Informational, summary)];
    all.extend(issues);
    Ok(crate::error::outcome_response(axum::http::StatusCode::OK, &all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_go_to_bundle_entries_the_remote_patient_or_back_home() {
        let map = HashMap::from([
            ("Encounter/e1".to_string(), fragment("Encounter", "e1")),
            ("Patient/p1".to_string(), "Patient/remote-9".to_string()),
        ]);
        let mut observation = json!({"subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1/_history/2"},
            "performer": [{"reference": "Practitioner/d1"}]});
        map_references(&mut observation, &map, "https://kiln.local/fhir");
        assert_eq!(observation["subject"]["reference"], "Patient/remote-9");
        assert_eq!(observation["encounter"]["reference"], fragment("Encounter", "e1"));
        assert_eq!(observation["performer"][0]["reference"], "https://kiln.local/fhir/Practitioner/d1");
        assert!(fragment("Encounter", "e1").starts_with("urn:uuid:"));
        assert_eq!(fragment("Encounter", "e1").len(), "urn:uuid:".len() + 36);
    }
}
