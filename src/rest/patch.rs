//! patch: `PATCH [base]/[type]/[id]` and conditional patch `PATCH [base]/[type]?[search]`
//! (FHIR R4 http.html#patch): a JSON Patch (`application/json-patch+json`, RFC 6902) or a
//! FHIRPath Patch (a `Parameters` body, fhirpatch.html) applied to the current version, with
//! `If-Match`. The result is validated and checked like any update; a patch whose result is
//! invalid answers 422 and changes nothing. Members the patch leaves alone keep their bytes.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::{
    QueryParams, WriteMode, conditional, if_match, integrity, logical_id, parse_for_write, read_limited, resource_type,
    return_preference, store_resource, write_response,
};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, Issue, IssueType};
use crate::fhir::json::ResourceBody;
use crate::fhir::patch::{self, PatchError};
use crate::fhir::registry::ResourceType;
use crate::store::{StoreTransaction, WriteOutcome};

/// A PATCH body, by its media type.
#[derive(Debug, Clone)]
pub enum PatchDocument {
    /// RFC 6902 operations.
    Json(Value),
    /// A `Parameters` resource of FHIRPath Patch operations.
    FhirPath(Value),
}

impl PatchDocument {
    /// Reads a body sent as `media_type`.
    pub fn read(media_type: &str, body: &[u8]) -> Result<PatchDocument, FhirError> {
        let media_type = media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if body.is_empty() {
            return Err(FhirError::bad_request(IssueType::Required, "the PATCH has no body"));
        }
        match media_type.as_str() {
            "application/json-patch+json" => Ok(PatchDocument::Json(crate::fhir::json::parse_strict(body)?)),
            "application/fhir+json" | "application/json" | "application/json+fhir" => {
                let value = crate::fhir::json::parse_strict(body)?;
                if value.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
                    return Err(FhirError::bad_request(
                        IssueType::Invalid,
                        "a FHIR PATCH body is a Parameters resource (FHIRPath Patch); for JSON Patch send application/json-patch+json",
                    ));
                }
                Ok(PatchDocument::FhirPath(value))
            }
            other => Err(FhirError::UnsupportedMediaType(format!(
                "PATCH takes application/json-patch+json (JSON Patch) or application/fhir+json (FHIRPath Patch), not '{other}'"
            ))),
        }
    }

    fn apply(&self, resource: &mut Value) -> Result<(), PatchError> {
        match self {
            PatchDocument::Json(operations) => patch::apply_json_patch(resource, operations),
            PatchDocument::FhirPath(parameters) => patch::apply_fhirpath_patch(resource, parameters),
        }
    }
}

pub async fn patch(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?.to_string();
    QueryParams::parse(query.as_deref()).only(&[])?;
    let document = read_document(&state, &headers, request).await?;
    let expected_version = if_match(&headers)?;
    policy::ensure_writable(&state, &principal, &definition.name, Interaction::Update, Some(&id), None).await?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let outcome = patch_in(&state, &mut *transaction, definition, &id, &document, expected_version).await?;
    // What the patch made must stay within the token's reach and the role's content rules.
    policy::ensure_left_within_reach(
        &state,
        &mut *transaction,
        &principal,
        &definition.name,
        &id,
        Interaction::Update,
        outcome.record.json.as_deref(),
    )
    .await?;
    integrity::commit_write(&state, transaction, &outcome.record).await?;
    Ok(write_response(&state, StatusCode::OK, outcome.record, return_preference(&headers)))
}

/// `PATCH [base]/[type]?[search]`: patches the one match; none is 404, several 412.
pub async fn conditional_patch(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let condition = query.unwrap_or_default();
    let document = read_document(&state, &headers, request).await?;
    let expected_version = if_match(&headers)?;
    principal.permit(&definition.name, Interaction::Update)?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let matched = conditional::matching_ids(
        &state,
        &mut *transaction,
        &principal,
        Interaction::Update,
        definition,
        &condition,
        2,
    )
    .await?;
    let id = match matched.as_slice() {
        [id] => id.clone(),
        [] => return Err(FhirError::NotFound(format!("no {type_name} matches '{condition}'"))),
        _ => return Err(conditional::several_match(definition, &condition)),
    };
    let outcome = patch_in(&state, &mut *transaction, definition, &id, &document, expected_version).await?;
    policy::ensure_left_within_reach(
        &state,
        &mut *transaction,
        &principal,
        &definition.name,
        &id,
        Interaction::Update,
        outcome.record.json.as_deref(),
    )
    .await?;
    integrity::commit_write(&state, transaction, &outcome.record).await?;
    Ok(write_response(&state, StatusCode::OK, outcome.record, return_preference(&headers)))
}

async fn read_document(
    state: &AppState,
    headers: &HeaderMap,
    request: axum::extract::Request,
) -> Result<PatchDocument, FhirError> {
    let media_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = read_limited(request, state.settings.max_body_bytes).await?;
    PatchDocument::read(&media_type, &body)
}

/// Applies `document` to the current version of `type/id` in `transaction` and writes the
/// result as a new version (only over the version it was applied to).
pub async fn patch_in(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    definition: &ResourceType,
    id: &str,
    document: &PatchDocument,
    expected_version: Option<i64>,
) -> Result<WriteOutcome, FhirError> {
    let current = super::live(transaction.read_current(&definition.name, id).await?, &definition.name, id)?;
    if let Some(expected) = expected_version
        && expected != current.version
    {
        return Err(FhirError::PreconditionFailed(format!(
            "the resource's current version is {}; the If-Match version does not match",
            current.version
        )));
    }
    let (original, original_value) = ResourceBody::from_stored(current.json.as_deref().unwrap_or_default())?;
    let mut patched = original_value.clone();
    document.apply(&mut patched).map_err(|e| match e {
        PatchError::Malformed { message, location } => {
            FhirError::BadRequest(vec![Issue::error(IssueType::Invalid, message).at(location)])
        }
        PatchError::NotApplicable { message, location } => {
            FhirError::Unprocessable(vec![Issue::error(IssueType::Processing, message).at(location)])
        }
    })?;
    if patched.get("resourceType") != original_value.get("resourceType")
        || patched.get("id") != original_value.get("id")
    {
        return Err(FhirError::Unprocessable(vec![Issue::error(
            IssueType::Invalid,
            "a patch cannot change the resource's type or id",
        )]));
    }
    // A patch that yields something that is not valid R4 is refused as unprocessable: the patch
    // document itself was fine.
    let bytes = serde_json::to_vec(&patched).map_err(FhirError::internal)?;
    let (mut resource, mut value) = parse_for_write(state, definition, &bytes).map_err(|e| match e {
        FhirError::BadRequest(issues) => FhirError::Unprocessable(issues),
        other => other,
    })?;
    resource.restore_unchanged(&original, &original_value, &value);
    store_resource(
        state,
        transaction,
        &definition.name,
        id,
        &mut resource,
        &mut value,
        WriteMode::Update { if_match: Some(current.version) },
    )
    .await
}
