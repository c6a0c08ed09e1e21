//! delete: `DELETE [base]/[type]/[id]` (FHIR R4 http.html#delete). A deletion is a new version;
//! reading the resource afterwards answers 410 Gone. Deleting a deleted resource answers 204
//! again (idempotent); deleting an id that never existed answers 404. Conditional delete
//! `DELETE [base]/[type]?[search]` (http.html#cdelete) deletes every match, up to the
//! `max_conditional_deletes` setting; more matches than that answer 412 and delete nothing.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{QueryParams, conditional, etag, logical_id, resource_type};
use crate::access::Principal;
use crate::app::AppState;
use crate::error::FhirError;
use crate::fhir::registry::ResourceType;
use crate::store::{Change, StoreError, StoreTransaction, WriteOutcome, WriteRequest};

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    QueryParams::parse(query.as_deref()).only(&[])?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let outcome = delete_one(&mut *transaction, &definition.name, id).await?;
    if !outcome.unchanged {
        transaction.commit().await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if !outcome.unchanged
        && let Ok(value) = etag(outcome.record.version).parse()
    {
        response.headers_mut().insert(axum::http::header::ETAG, value);
    }
    Ok(response)
}

/// `DELETE [base]/[type]?[search]`: 204 whether zero or several resources matched.
pub async fn conditional_delete(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let condition = query.unwrap_or_default();
    let mut transaction = state.store.begin(&principal.tenant).await?;
    delete_matching(&state, &mut *transaction, definition, &condition).await?;
    transaction.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes one resource in `transaction`; an id that never existed is a 404.
pub async fn delete_one(
    transaction: &mut dyn StoreTransaction,
    resource_type: &str,
    id: &str,
) -> Result<WriteOutcome, FhirError> {
    transaction.write(WriteRequest::new(resource_type, id, Change::Delete)).await.map_err(|e| match e {
        StoreError::NotFound => FhirError::NotFound(format!("{resource_type}/{id} is not known")),
        other => other.into(),
    })
}

/// Deletes every resource matching `condition` (at most `max_conditional_deletes`), answering
/// the ids deleted.
pub async fn delete_matching(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    definition: &ResourceType,
    condition: &str,
) -> Result<Vec<String>, FhirError> {
    let cap = state.settings.max_conditional_deletes;
    let ids = conditional::matching_ids(state, transaction, definition, condition, cap.saturating_add(1)).await?;
    if ids.len() > cap as usize {
        return Err(FhirError::PreconditionFailed(format!(
            "the condition '{condition}' matches more than {cap} {} resources (max_conditional_deletes); nothing was deleted",
            definition.name
        )));
    }
    for id in &ids {
        delete_one(transaction, &definition.name, id).await?;
    }
    Ok(ids)
}
