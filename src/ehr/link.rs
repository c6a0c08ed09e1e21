//! `POST Patient/[id]/$ehr-link` (Kiln operation, docs/ehr.md): finds the patient's record at a
//! registered remote EHR, by an identifier the caller gives or else by demographics (name,
//! birth date, gender), scores the candidates and links only an unambiguous match: the remote
//! record becomes a `Patient.link` (type `seealso`) and an identifier of the local Patient.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Value, json};

use super::RemoteEhr;
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, IssueType};
use crate::fhir::json::ResourceBody;
use crate::rest::operation::{NoQueryParameters, OperationInput};
use crate::rest::{FhirBody, WriteMode, integrity, live, logical_id, resource_type, store_resource};

/// The lowest score that may link: family name and birth date agree.
const LINK_THRESHOLD: u32 = 5;

fn lower(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(|s| s.trim().to_lowercase())
}

/// The official (else first) name's family and first given name.
fn name_of(patient: &Value) -> (Option<String>, Option<String>) {
    let names = patient.get("name").and_then(Value::as_array).cloned().unwrap_or_default();
    let name = names.iter().find(|n| n["use"] == "official").or(names.first());
    (
        name.and_then(|n| lower(n.get("family"))),
        name.and_then(|n| n.get("given")).and_then(|g| g.get(0)).and_then(|g| lower(Some(g))),
    )
}

/// How well a remote Patient matches the local one: family 3, birth date 2, given name 2,
/// gender 1. A mismatch on a field both give rules the candidate out.
pub fn score(local: &Value, remote: &Value) -> Option<u32> {
    let (local_family, local_given) = name_of(local);
    let (remote_family, remote_given) = name_of(remote);
    let mut score = 0;
    let fields = [
        (local_family, remote_family, 3),
        (lower(local.get("birthDate")), lower(remote.get("birthDate")), 2),
        (local_given, remote_given, 2),
        (lower(local.get("gender")), lower(remote.get("gender")), 1),
    ];
    for (mine, theirs, weight) in fields {
        match (mine, theirs) {
            (Some(a), Some(b)) if a == b => score += weight,
            (Some(_), Some(_)) => return None,
            _ => {}
        }
    }
    Some(score)
}

/// The remote Patients of one search page.
async fn candidates(remote: &RemoteEhr, query: &str) -> Result<Vec<Value>, FhirError> {
    let bundle =
        remote.get(&format!("Patient?{query}&_count=20")).await.map_err(|e| FhirError::BadGateway(e.to_string()))?;
    Ok(bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| e.get("resource").cloned())
        .filter(|r| r["resourceType"] == "Patient" && r["id"].is_string())
        .collect())
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The operation.
pub async fn ehr_link(
    State(state): State<AppState>,
    principal: Principal,
    origin: crate::audit::event::Origin,
    Path((type_name, id)): Path<(String, String)>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    if definition.name != "Patient" {
        return Err(FhirError::NotFound(format!("$ehr-link is defined on Patient, not {}", definition.name)));
    }
    let id = logical_id(&id)?;
    let input = OperationInput::read(&body)?;
    input.only(&["endpoint", "identifier"])?;
    let endpoint = super::required_endpoint(&input)?;
    let identifier = input.parameter("identifier").and_then(|p| p.get("valueIdentifier")).cloned();
    principal.permit("Endpoint", Interaction::Read)?;
    policy::ensure_writable(&state, &principal, "Patient", Interaction::Update, Some(id), None).await?;
    let current = live(state.store.read_current(&principal.tenant, "Patient", id).await?, "Patient", id)?;
    let local: Value = serde_json::from_slice(current.json.as_deref().unwrap_or_default())
        .map_err(|e| FhirError::internal(e.to_string()))?;
    let (registered, remote) =
        super::connect(&state, &super::Caller::of(&principal, origin), &endpoint).await.map_err(FhirError::NotFound)?;
    let remote_base = registered.address().trim_end_matches('/').to_string();

    // Search by the identifier given, else by demographics; score what comes back.
    let (found, by_identifier) = match &identifier {
        Some(identifier) => {
            let system = identifier.get("system").and_then(Value::as_str).unwrap_or_default();
            let value = identifier.get("value").and_then(Value::as_str).unwrap_or_default();
            if value.is_empty() {
                return Err(FhirError::bad_request(IssueType::Required, "the identifier needs a value"));
            }
            let token = if system.is_empty() { value.to_string() } else { format!("{system}|{value}") };
            (candidates(&remote, &format!("identifier={}", encode(&token))).await?, true)
        }
        None => {
            let (family, _) = name_of(&local);
            let birth_date = lower(local.get("birthDate"));
            let (Some(family), Some(birth_date)) = (family, birth_date) else {
                return Err(FhirError::Unprocessable(vec![crate::error::Issue::error(
                    IssueType::Required,
                    "without an identifier, linking needs the patient's family name and birth date",
                )]));
            };
            let query = format!("family={}&birthdate={}", encode(&family), encode(&birth_date));
            (candidates(&remote, &query).await?, false)
        }
    };
    let mut scored: Vec<(u32, Value)> = found
        .into_iter()
        .filter_map(|candidate| {
            let points = if by_identifier { Some(100) } else { score(&local, &candidate) };
            points.map(|p| (p, candidate))
        })
        .collect();
    scored.sort_by_key(|(points, _)| std::cmp::Reverse(*points));
    let best = scored.first().map(|(points, _)| *points).unwrap_or(0);
    let top: Vec<&(u32, Value)> = scored.iter().filter(|(points, _)| *points == best).collect();
    let candidate_parts: Vec<Value> = scored
        .iter()
        .map(|(points, candidate)| {
            json!({"name": "candidate", "part": [
                {"name": "reference", "valueReference": {"reference": format!("{remote_base}/Patient/{}", candidate["id"].as_str().unwrap_or_default())}},
                {"name": "score", "valueInteger": points},
            ]})
        })
        .collect();
    let answer = |outcome: &str, extra: Vec<Value>| {
        let mut parameters = vec![json!({"name": "outcome", "valueCode": outcome})];
        parameters.extend(extra);
        parameters.extend(candidate_parts.clone());
        crate::rest::operation::parameters_value_response(
            json!({"resourceType": "Parameters", "parameter": parameters}),
        )
    };
    if top.len() != 1 || best < LINK_THRESHOLD {
        let outcome = if scored.is_empty() { "not-found" } else { "ambiguous" };
        return Ok(answer(outcome, vec![]));
    }
    let remote_id = top[0].1["id"].as_str().unwrap_or_default().to_string();
    let remote_reference = format!("{remote_base}/Patient/{remote_id}");
    let already = local.get("link").and_then(Value::as_array).is_some_and(|links| {
        links.iter().any(|l| l.pointer("/other/reference").and_then(Value::as_str) == Some(&remote_reference))
    });
    if already {
        return Ok(answer(
            "already-linked",
            vec![json!({"name": "linked", "valueReference": {"reference": remote_reference}})],
        ));
    }

    // Record the link on a new version of the local Patient.
    let (mut resource, mut value) = ResourceBody::from_stored(current.json.as_deref().unwrap_or_default())?;
    let mut links = value.get("link").and_then(Value::as_array).cloned().unwrap_or_default();
    links.push(json!({"other": {"reference": remote_reference, "display": registered.name()}, "type": "seealso"}));
    let mut identifiers = value.get("identifier").and_then(Value::as_array).cloned().unwrap_or_default();
    identifiers.push(json!({"use": "secondary", "type": {"text": format!("Record at {}", registered.name())},
        "system": format!("{remote_base}/Patient"), "value": remote_id}));
    value["link"] = Value::Array(links);
    value["identifier"] = Value::Array(identifiers);
    resource.set_member("link", &value["link"]);
    resource.set_member("identifier", &value["identifier"]);
    crate::fhir::validation::validate(state.registry, &value)?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let mode = WriteMode::Update { if_match: Some(current.version) };
    let outcome = store_resource(&state, &mut *transaction, "Patient", id, &mut resource, &mut value, mode).await?;
    integrity::commit_write(&state, transaction, &outcome.record).await?;
    Ok(answer(
        "linked",
        vec![
            json!({"name": "linked", "valueReference": {"reference": remote_reference}}),
            json!({"name": "patient", "valueReference": {"reference": format!("Patient/{id}/_history/{}", outcome.record.version)}}),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_scored_and_contradictions_rule_them_out() {
        let local =
            json!({"name": [{"family": "Alpha", "given": ["Ann"]}], "birthDate": "1980-01-01", "gender": "female"});
        let same =
            json!({"name": [{"family": "ALPHA", "given": ["ann"]}], "birthDate": "1980-01-01", "gender": "female"});
        assert_eq!(score(&local, &same), Some(8));
        let sparse = json!({"name": [{"family": "Alpha"}], "birthDate": "1980-01-01"});
        assert_eq!(score(&local, &sparse), Some(5));
        let other_given = json!({"name": [{"family": "Alpha", "given": ["Bea"]}], "birthDate": "1980-01-01"});
        assert_eq!(score(&local, &other_given), None);
        let official = json!({"name": [{"use": "nickname", "family": "Al"}, {"use": "official", "family": "Alpha"}]});
        assert_eq!(name_of(&official).0.as_deref(), Some("alpha"));
    }
}
