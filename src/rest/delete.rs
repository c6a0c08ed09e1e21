//! delete: `DELETE [base]/[type]/[id]` (FHIR R4 http.html#delete). A deletion is a new version;
//! reading the resource afterwards answers 410 Gone. Deleting a deleted resource answers 204
//! again (idempotent); deleting an id that never existed answers 404. Conditional delete
//! `DELETE [base]/[type]?[search]` (http.html#cdelete) deletes every match, up to the
//! `max_conditional_deletes` setting; more matches than that answer 412 and delete nothing.
//! Deleting a resource others still refer to is refused (409) unless configured otherwise;
//! `_cascade=delete` deletes the referrers too where enabled (see [`super::integrity`]).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{QueryParams, conditional, etag, integrity, logical_id, resource_type};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, IssueType};
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
    let params = QueryParams::parse(query.as_deref());
    params.only(&["_cascade"])?;
    let cascade = match params.get("_cascade") {
        None => false,
        Some("delete") => true,
        Some(other) => {
            return Err(FhirError::bad_request(IssueType::Value, format!("_cascade must be 'delete', not '{other}'")));
        }
    };
    policy::ensure_writable(&state, &principal, &definition.name, Interaction::Delete, Some(id), None).await?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let outcome = delete_one(&state, &mut *transaction, &definition.name, id).await?;
    if !outcome.unchanged {
        let mut deleted = vec![(definition.name.clone(), id.to_string())];
        if cascade {
            deleted = integrity::cascade(&state, &mut *transaction, deleted.remove(0)).await?;
            for (type_name, id) in deleted.iter().skip(1) {
                // Every resource the cascade reaches needs the token's delete right of its own.
                policy::ensure_reachable_in(&state, &mut *transaction, &principal, type_name, id, Interaction::Delete)
                    .await?;
                delete_one(&state, &mut *transaction, type_name, id).await?;
            }
        }
        integrity::verify(&state, &mut *transaction, &[], &deleted).await.map_err(|v| v.error)?;
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
    principal.permit(&definition.name, Interaction::Delete)?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    let ids = delete_matching(&state, &mut *transaction, &principal, definition, &condition).await?;
    let deleted: Vec<(String, String)> = ids.into_iter().map(|id| (definition.name.clone(), id)).collect();
    integrity::verify(&state, &mut *transaction, &[], &deleted).await.map_err(|v| v.error)?;
    transaction.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Deletes one resource in `transaction`; an id that never existed is a 404.
pub async fn delete_one(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    resource_type: &str,
    id: &str,
) -> Result<WriteOutcome, FhirError> {
    super::signature::ensure_changeable(state, transaction, resource_type, id, true).await?;
    transaction.write(WriteRequest::new(resource_type, id, Change::Delete)).await.map_err(|e| match e {
        StoreError::NotFound => FhirError::NotFound(format!("{resource_type}/{id} is not known")),
        other => other.into(),
    })
}

/// Deletes every resource matching `condition` that `principal` may delete (at most
/// `max_conditional_deletes`), answering the ids deleted.
pub async fn delete_matching(
    state: &AppState,
    transaction: &mut dyn StoreTransaction,
    principal: &Principal,
    definition: &ResourceType,
    condition: &str,
) -> Result<Vec<String>, FhirError> {
    let cap = state.settings.max_conditional_deletes;
    let ids = conditional::matching_ids(
        state,
        transaction,
        principal,
        Interaction::Delete,
        definition,
        condition,
        cap.saturating_add(1),
    )
    .await?;
    if ids.len() > cap as usize {
        return Err(FhirError::PreconditionFailed(format!(
            "the condition '{condition}' matches more than {cap} {} resources (max_conditional_deletes); nothing was deleted",
            definition.name
        )));
    }
    for id in &ids {
        delete_one(state, transaction, &definition.name, id).await?;
    }
    Ok(ids)
}
