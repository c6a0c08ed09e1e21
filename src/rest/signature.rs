//! Electronic signatures (21 CFR Part 11 §11.50, §11.70, §11.100, §11.200) on Encounters:
//! `POST [base]/Encounter/[id]/$sign`, `POST [base]/Encounter/[id]/$amend` and
//! `GET|POST [base]/Encounter/[id]/$verify-signature`.
//!
//! Signing requires the signer to re-authenticate (password, or the current code of their
//! second factor) and stores a Provenance (FHIR R4 provenance.html) whose signature holds the
//! SHA-256 of the canonical JSON of the signed version, with the signer, the meaning and the
//! time. A signed Encounter is locked: updates, patches and deletes answer 409; `$amend` (with a
//! reason, re-authenticated) writes a new version and a new signed Provenance. Signature
//! Provenances cannot be changed or deleted, and neither can a signer's Practitioner.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use super::operation::{NoQueryParameters, OperationInput};
use super::{FhirBody, WriteMode, integrity, live, logical_id, resource_type, store_resource};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::auth::store::UserRecord;
use crate::error::{FhirError, IssueType};
use crate::fhir::FHIR_JSON;
use crate::fhir::instant::{fhir_instant, now_micros};
use crate::store::StoreTransaction;

/// The types that can be signed.
pub const SIGNABLE: &[&str] = &["Encounter"];
/// The tag marking a Provenance as a signature record.
pub const SIGNATURE_TAG_SYSTEM: &str = "https://kiln.example.org/fhir/CodeSystem/provenance-kind";
pub const SIGNATURE_TAG_CODE: &str = "signature";
/// How the digest in `Provenance.signature.data` is made.
const SIG_FORMAT: &str = "application/x-kiln-sha256-canonical-json";
const MEANING_SYSTEM: &str = "https://kiln.example.org/fhir/CodeSystem/signature-meaning";

/// The signature meanings offered, with their ASTM E1762 signature type where there is one.
fn meaning_codings(meaning: &str) -> Option<Vec<Value>> {
    let own = json!({"system": MEANING_SYSTEM, "code": meaning});
    let astm =
        |code: &str, display: &str| json!({"system": "urn:iso-astm:E1762-95:2013", "code": code, "display": display});
    match meaning {
        "authorship" => Some(vec![astm("1.2.840.10065.1.12.1.1", "Author's Signature"), own]),
        "review" => Some(vec![astm("1.2.840.10065.1.12.1.13", "Review Signature"), own]),
        "approval" => Some(vec![own]),
        "amendment" => Some(vec![astm("1.2.840.10065.1.12.1.16", "Modification Signature"), own]),
        _ => None,
    }
}

fn signable(type_name: &str) -> Result<(), FhirError> {
    if SIGNABLE.contains(&type_name) {
        Ok(())
    } else {
        Err(FhirError::NotFound(format!("{type_name} cannot be signed; Encounter can")))
    }
}

/// SHA-256 (hex) of a version's canonical JSON, without `meta` (which `$meta-add` may change).
pub fn digest_of(json: &[u8]) -> Result<String, FhirError> {
    crate::audit::chain::content_hash(json).map_err(FhirError::internal)
}

/// The search for the signature Provenances of `Type/id`.
fn signatures_query(
    state: &AppState,
    param: &str,
    reference: &str,
) -> Result<crate::search::query::SearchQuery, FhirError> {
    let definition =
        state.registry.resource("Provenance").ok_or_else(|| FhirError::internal("Provenance is not served"))?;
    let params = super::QueryParams(vec![
        (param.to_string(), reference.to_string()),
        ("_tag".to_string(), format!("{SIGNATURE_TAG_SYSTEM}|{SIGNATURE_TAG_CODE}")),
        ("_count".to_string(), "1000".to_string()),
    ]);
    crate::search::query::compile(definition, &params, &state.base_url, false, 1000, 1000)
}

/// Refuses a change to a signed record, a signature record, or a signer (called by every write
/// path before it writes `resource_type/id`; `$amend` is the one way to change a signed record).
pub async fn ensure_changeable(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    resource_type: &str,
    id: &str,
    deleting: bool,
) -> Result<(), FhirError> {
    let reference = format!("{resource_type}/{id}");
    if SIGNABLE.contains(&resource_type) {
        let query = signatures_query(state, "target", &reference)?;
        if !transaction.search_ids("Provenance", &query, 1).await?.is_empty() {
            return Err(FhirError::Conflict(format!(
                "{reference} is signed and locked; change it with {reference}/$amend (with a reason, re-authenticated)"
            )));
        }
    }
    if resource_type == "Provenance"
        && let Some(current) = transaction.read_current("Provenance", id).await?
        && let Some(json) = &current.json
        && String::from_utf8_lossy(json).contains(SIGNATURE_TAG_SYSTEM)
    {
        return Err(FhirError::Conflict(format!("{reference} records an electronic signature and is kept as it is")));
    }
    if deleting && matches!(resource_type, "Practitioner" | "PractitionerRole" | "Patient" | "RelatedPerson") {
        let query = signatures_query(state, "agent", &reference)?;
        if !transaction.search_ids("Provenance", &query, 1).await?.is_empty() {
            return Err(FhirError::Conflict(format!(
                "{reference} signed records; a signer is kept so that the signatures stay attributable"
            )));
        }
    }
    Ok(())
}

/// The signing user, after checking the password or one-time code sent with the request.
async fn reauthenticate(
    state: &AppState,
    principal: &Principal,
    input: &OperationInput,
) -> Result<UserRecord, FhirError> {
    let claims = principal
        .grant()
        .filter(|g| g.claims.role.is_some())
        .map(|g| g.claims.clone())
        .ok_or_else(|| FhirError::Forbidden("only a signed-in user can sign; an app acting alone cannot".into()))?;
    let user = state
        .store
        .user(&claims.sub)
        .await?
        .filter(|u| !u.disabled && u.locked_at.is_none())
        .ok_or_else(|| FhirError::Forbidden("the signer's account is disabled or locked".into()))?;
    let fail = |what: &str| FhirError::Forbidden(format!("re-authentication failed: {what}"));
    let accepted = if let Some(password) = input.text("password") {
        let hash = user.password_hash.clone();
        tokio::task::spawn_blocking(move || crate::auth::secrets::verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    } else if let Some(code) = input.text("code") {
        let secret = user
            .totp_secret
            .as_deref()
            .and_then(|sealed| state.sensitive.open_secret(sealed, crate::sensitive::TOTP_CONTEXT).ok())
            .and_then(|secret| crate::auth::totp::from_base32(&secret))
            .ok_or_else(|| fail("no second factor is enrolled"))?;
        match crate::auth::totp::verify(&secret, &code, chrono::Utc::now().timestamp(), user.totp_last_step) {
            Some(step) => state.store.use_totp_step(&user.user_id, step).await?,
            None => false,
        }
    } else {
        return Err(FhirError::bad_request(
            IssueType::Required,
            "signing needs the signer's 'password' (or 'code', their second factor's current code)",
        ));
    };
    if !accepted {
        let threshold = i64::from(state.settings.lockout_after_failed_logins);
        state.store.record_failed_login(&user.user_id, threshold, chrono::Utc::now().timestamp()).await?;
        return Err(fail("wrong password or code"));
    }
    if user.fhir_user.is_none() {
        return Err(FhirError::Forbidden("the signer's account is not linked to a Practitioner".into()));
    }
    Ok(user)
}

/// The Provenance that records a signature of `target` (a versioned reference) by `signer`.
fn signature_provenance(signer: &UserRecord, target: &str, digest: &str, meaning: &str, reason: Option<&str>) -> Value {
    let now = fhir_instant(now_micros());
    let who = json!({"reference": signer.fhir_user.clone().unwrap_or_default(), "display": signer.display_name});
    let participant = match meaning {
        "review" | "approval" => "verifier",
        _ => "author",
    };
    let mut provenance = json!({
        "resourceType": "Provenance",
        "meta": {"tag": [{"system": SIGNATURE_TAG_SYSTEM, "code": SIGNATURE_TAG_CODE}]},
        "target": [{"reference": target}],
        "recorded": now,
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": participant}]},
            "who": who,
        }],
        "signature": [{
            "type": meaning_codings(meaning).unwrap_or_default(),
            "when": now,
            "who": who,
            "sigFormat": SIG_FORMAT,
            "data": base64::engine::general_purpose::STANDARD.encode(digest),
        }],
    });
    if let Some(reason) = reason {
        provenance["activity"] = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}], "text": "amendment"});
        provenance["reason"] = json!([{"text": reason}]);
    }
    provenance
}

/// Stores the signature Provenance inside the transaction; answers it as stored.
async fn store_provenance(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    provenance: Value,
) -> Result<crate::store::VersionRecord, FhirError> {
    let bytes = serde_json::to_vec(&provenance).map_err(|e| FhirError::internal(e.to_string()))?;
    let definition = resource_type(state, "Provenance")?;
    let (mut resource, mut value) = super::parse_for_write(state, definition, &bytes)?;
    let id = super::new_id();
    let outcome =
        store_resource(state, transaction, "Provenance", &id, &mut resource, &mut value, WriteMode::Create).await?;
    Ok(outcome.record)
}

fn created(state: &AppState, record: crate::store::VersionRecord) -> Response {
    let location = format!("{}/Provenance/{}/_history/{}", state.base_url, record.id, record.version);
    let mut response = super::resource_response(StatusCode::CREATED, &record, record.json.clone().unwrap_or_default());
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `POST [base]/Encounter/[id]/$sign`: parameters `meaning` (authorship, review, approval) and
/// `password` or `code`. Answers 201 with the signature Provenance.
pub async fn sign(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    signable(&definition.name)?;
    let id = logical_id(&id)?;
    let input = OperationInput::read(&body)?;
    let meaning = input.text("meaning").unwrap_or_default();
    if meaning == "amendment" || meaning_codings(&meaning).is_none() {
        return Err(FhirError::bad_request(IssueType::Value, "meaning must be one of: authorship, review, approval"));
    }
    principal.permit(&definition.name, Interaction::Update)?;
    principal.permit("Provenance", Interaction::Create)?;
    policy::ensure_visible(&state, &principal, &definition.name, id, Interaction::Read).await?;
    let signer = reauthenticate(&state, &principal, &input).await?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    transaction.lock(&format!("sign:{}/{id}", definition.name)).await?;
    let current = live(transaction.read_current(&definition.name, id).await?, &definition.name, id)?;
    let digest = digest_of(current.json.as_deref().unwrap_or_default())?;
    let target = format!("{}/{id}/_history/{}", definition.name, current.version);
    let record =
        store_provenance(&state, &mut *transaction, signature_provenance(&signer, &target, &digest, &meaning, None))
            .await?;
    integrity::commit_write(&state, transaction, &record).await?;
    Ok(created(&state, record))
}

/// `POST [base]/Encounter/[id]/$amend`: parameters `resource` (the amended Encounter), `reason`,
/// and `password` or `code`. Writes the new version and its signature; answers 201 with the
/// Provenance.
pub async fn amend(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    signable(&definition.name)?;
    let id = logical_id(&id)?;
    let input = OperationInput::read(&body)?;
    let reason = input
        .text("reason")
        .filter(|r| !r.trim().is_empty())
        .ok_or_else(|| FhirError::bad_request(IssueType::Required, "an amendment needs a 'reason'"))?;
    let amended = input
        .parameter("resource")
        .and_then(|p| p.get("resource"))
        .ok_or_else(|| FhirError::bad_request(IssueType::Required, "an amendment needs the amended 'resource'"))?;
    if amended.get("id").and_then(Value::as_str) != Some(id) {
        return Err(FhirError::bad_request(
            IssueType::Invalid,
            format!("the amended resource must have the id '{id}'"),
        ));
    }
    let bytes = serde_json::to_vec(amended).map_err(|e| FhirError::internal(e.to_string()))?;
    policy::ensure_writable(&state, &principal, &definition.name, Interaction::Update, Some(id), Some(&bytes)).await?;
    principal.permit("Provenance", Interaction::Create)?;
    let signer = reauthenticate(&state, &principal, &input).await?;
    let (mut resource, mut value) = super::parse_for_write(&state, definition, &bytes)?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    transaction.lock(&format!("sign:{}/{id}", definition.name)).await?;
    live(transaction.read_current(&definition.name, id).await?, &definition.name, id)?;
    let outcome =
        store_resource(&state, &mut *transaction, &definition.name, id, &mut resource, &mut value, WriteMode::Amend)
            .await?;
    policy::ensure_left_within_reach(
        &state,
        &mut *transaction,
        &principal,
        &definition.name,
        id,
        Interaction::Update,
        None,
    )
    .await?;
    let digest = digest_of(outcome.record.json.as_deref().unwrap_or_default())?;
    let target = format!("{}/{id}/_history/{}", definition.name, outcome.record.version);
    let provenance = signature_provenance(&signer, &target, &digest, "amendment", Some(&reason));
    let record = store_provenance(&state, &mut *transaction, provenance).await?;
    integrity::verify(
        &state,
        &mut *transaction,
        &[(definition.name.clone(), id.to_string()), ("Provenance".into(), record.id.clone())],
        &[],
    )
    .await
    .map_err(|v| v.error)?;
    transaction.commit().await?;
    Ok(created(&state, record))
}

/// `GET|POST [base]/Encounter/[id]/$verify-signature`: recomputes the digest of every signed
/// version and compares it with its signature. Answers Parameters: `valid` (all match), and a
/// `signature` part per signature (provenance, version, meaning, signer, when, valid).
pub async fn verify_signature(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    signable(&definition.name)?;
    let id = logical_id(&id)?;
    OperationInput::read(&body)?.only(&[])?;
    principal.permit(&definition.name, Interaction::Read)?;
    principal.permit("Provenance", Interaction::Search)?;
    policy::ensure_visible(&state, &principal, &definition.name, id, Interaction::Read).await?;
    live(state.store.read_current(&principal.tenant, &definition.name, id).await?, &definition.name, id)?;
    let query = signatures_query(&state, "target", &format!("{}/{id}", definition.name))?;
    let provenances = state.store.search(&principal.tenant, "Provenance", &query).await?;
    let mut parts = Vec::new();
    let mut all_valid = true;
    for record in &provenances {
        let provenance: Value = serde_json::from_slice(record.json.as_deref().unwrap_or_default())
            .map_err(|e| FhirError::internal(e.to_string()))?;
        let target = provenance.pointer("/target/0/reference").and_then(Value::as_str).unwrap_or_default();
        let version: i64 = target.rsplit('/').next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let signature = &provenance["signature"][0];
        let claimed = signature["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .map(|d| String::from_utf8_lossy(&d).to_string());
        let signed = state.store.read_version(&principal.tenant, &definition.name, id, version).await?;
        let actual = match signed.and_then(|s| s.json) {
            Some(json) => Some(digest_of(&json)?),
            None => None,
        };
        let valid = claimed.is_some() && claimed == actual;
        all_valid &= valid;
        let meaning = signature["type"]
            .as_array()
            .and_then(|codings| codings.iter().find(|c| c["system"] == MEANING_SYSTEM))
            .and_then(|c| c["code"].as_str())
            .unwrap_or("unknown");
        parts.push(json!({"name": "signature", "part": [
            {"name": "provenance", "valueReference": {"reference": format!("Provenance/{}", record.id)}},
            {"name": "version", "valueInteger": version},
            {"name": "meaning", "valueCode": meaning},
            {"name": "signer", "valueReference": signature["who"]},
            {"name": "when", "valueInstant": signature["when"]},
            {"name": "valid", "valueBoolean": valid},
        ]}));
    }
    if provenances.is_empty() {
        all_valid = false;
    }
    let mut parameters = vec![json!({"name": "valid", "valueBoolean": all_valid})];
    parameters.extend(parts);
    let body = json!({"resourceType": "Parameters", "parameter": parameters});
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}
