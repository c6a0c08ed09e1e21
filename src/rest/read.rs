//! read: `GET [base]/[type]/[id]` (FHIR R4 http.html#read), with `If-None-Match` and
//! `If-Modified-Since` (304), `_summary` and `_elements`. The stored bytes are sent as they are
//! unless a subset is asked for.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{QueryParams, logical_id, parse_etag, resource_response, resource_type, version_headers};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::FhirError;
use crate::fhir::instant::parse_http_date;
use crate::store::VersionRecord;

pub async fn read(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    let params = QueryParams::parse(query.as_deref());
    params.only(&["_summary", "_elements"])?;
    let subset = params.subset()?;
    principal.permit(&definition.name, Interaction::Read)?;
    super::audit_caught_up(&state, &principal.tenant, &definition.name).await?;
    let record =
        super::live(state.store.read_current(&principal.tenant, &definition.name, id).await?, type_name.as_str(), id)?;
    policy::ensure_visible(&state, &principal, &definition.name, id, Interaction::Read).await?;
    if not_modified(&headers, &record) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        version_headers(response.headers_mut(), &record);
        return Ok(response);
    }
    let mut record = record;
    let body = subset.apply(definition, record.json.take().unwrap_or_default())?;
    Ok(resource_response(StatusCode::OK, &record, body))
}

/// `If-None-Match` (an ETag list or `*`) takes precedence over `If-Modified-Since` (RFC 9110 §13.2.2).
fn not_modified(headers: &HeaderMap, record: &VersionRecord) -> bool {
    if let Some(value) = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        return value.split(',').any(|tag| tag.trim() == "*" || parse_etag(tag) == Some(record.version));
    }
    if let Some(since) = headers.get(header::IF_MODIFIED_SINCE).and_then(|v| v.to_str().ok()).and_then(parse_http_date)
    {
        // HTTP dates have whole seconds: compare at that precision.
        return record.last_updated / 1_000_000 <= since / 1_000_000;
    }
    false
}
