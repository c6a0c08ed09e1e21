//! update: `PUT [base]/[type]/[id]` (FHIR R4 http.html#update), including update-as-create with
//! a client-chosen id and version-aware updates with `If-Match` (http.html#concurrency); and
//! conditional update `PUT [base]/[type]?[search]` (http.html#cond-update).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{
    FhirBody, QueryParams, WriteMode, conditional, if_match, integrity, logical_id, new_id, parse_for_write,
    resource_type, return_preference, store_resource, write_response,
};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, Issue, IssueType};
use crate::fhir::registry::ResourceType;
use crate::store::StoreTransaction;

pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    QueryParams::parse(query.as_deref()).only(&[])?;
    let expected_version = if_match(&headers)?;
    let (mut resource, mut value) = parse_for_write(&state, definition, &body)?;
    match resource.id.as_deref() {
        Some(body_id) if body_id == id => {}
        Some(body_id) => {
            return Err(FhirError::BadRequest(vec![
                Issue::error(
                    IssueType::Invalid,
                    format!("the body's id '{body_id}' differs from the id '{id}' in the URL"),
                )
                .at(format!("{type_name}.id")),
            ]));
        }
        None => {
            return Err(FhirError::BadRequest(vec![
                Issue::error(IssueType::Required, "an update must carry the resource id in the body")
                    .at(format!("{type_name}.id")),
            ]));
        }
    }
    policy::ensure_writable(&state, &principal, &definition.name, Interaction::Update, Some(id), Some(&body)).await?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let outcome = store_resource(
        &state,
        &mut *transaction,
        &definition.name,
        id,
        &mut resource,
        &mut value,
        WriteMode::Update { if_match: expected_version },
    )
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
    integrity::commit_write(&state, transaction, &outcome.record).await?;
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(write_response(&state, status, outcome.record, return_preference(&headers)))
}

/// `PUT [base]/[type]?[search]`.
pub async fn conditional_update(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let condition = query.unwrap_or_default();
    let expected_version = if_match(&headers)?;
    let (mut resource, mut value) = parse_for_write(&state, definition, &body)?;
    principal.permit(&definition.name, Interaction::Update)?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let id = conditional_target(&state, &mut *transaction, &principal, definition, &condition, resource.id.as_deref())
        .await?;
    policy::ensure_reachable_in(&state, &mut *transaction, &principal, &definition.name, &id, Interaction::Update)
        .await?;
    let outcome = store_resource(
        &state,
        &mut *transaction,
        &definition.name,
        &id,
        &mut resource,
        &mut value,
        WriteMode::Update { if_match: expected_version },
    )
    .await?;
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
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(write_response(&state, status, outcome.record, return_preference(&headers)))
}

/// The id a conditional update writes (http.html#cond-update): the one match (the body's id,
/// if any, must be its id), or with no match the body's id (update as create, unless that id
/// exists: 409) or a new one. Several matches: 412.
pub async fn conditional_target(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    principal: &Principal,
    definition: &ResourceType,
    condition: &str,
    body_id: Option<&str>,
) -> Result<String, FhirError> {
    let matched =
        conditional::matching_ids(state, transaction, principal, Interaction::Update, definition, condition, 2).await?;
    match matched.as_slice() {
        [] => match body_id {
            None => Ok(new_id()),
            Some(id) => match transaction.read_current(&definition.name, id).await? {
                Some(existing) if !existing.deleted => Err(FhirError::Conflict(format!(
                    "no {} matches '{condition}', but {}/{id} named in the body exists and does not match",
                    definition.name, definition.name
                ))),
                _ => Ok(id.to_string()),
            },
        },
        [matched] => match body_id {
            Some(id) if id != matched => Err(FhirError::BadRequest(vec![
                Issue::error(
                    IssueType::Invalid,
                    format!(
                        "the body's id '{id}' differs from {}/{matched}, which matches '{condition}'",
                        definition.name
                    ),
                )
                .at(format!("{}.id", definition.name)),
            ])),
            _ => Ok(matched.clone()),
        },
        _ => Err(conditional::several_match(definition, condition)),
    }
}
