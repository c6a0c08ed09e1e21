//! delete: `DELETE [base]/[type]/[id]` (FHIR R4 http.html#delete). A deletion is a new version;
//! reading the resource afterwards answers 410 Gone. Deleting a deleted resource answers 204
//! again (idempotent); deleting an id that never existed answers 404.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{QueryParams, etag, logical_id, resource_type};
use crate::access::Principal;
use crate::app::AppState;
use crate::error::FhirError;
use crate::store::{Change, StoreError, WriteRequest};

pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    QueryParams::parse(query.as_deref()).only(&[])?;
    let outcome =
        state.store.write(&principal.tenant, WriteRequest::new(&definition.name, id, Change::Delete)).await.map_err(
            |e| match e {
                StoreError::NotFound => FhirError::NotFound(format!("{type_name}/{id} is not known")),
                other => other.into(),
            },
        )?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if !outcome.unchanged
        && let Ok(value) = etag(outcome.record.version).parse()
    {
        response.headers_mut().insert(axum::http::header::ETAG, value);
    }
    Ok(response)
}
