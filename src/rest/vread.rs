//! vread: `GET [base]/[type]/[id]/_history/[vid]` (FHIR R4 http.html#vread).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{QueryParams, logical_id, resource_response, resource_type};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, IssueType};

pub async fn vread(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id, version)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    let params = QueryParams::parse(query.as_deref());
    params.only(&["_summary", "_elements"])?;
    let subset = params.subset()?;
    let version: i64 = version
        .parse()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| FhirError::bad_request(IssueType::Value, format!("'{version}' is not a version id")))?;
    principal.permit(&definition.name, Interaction::Read)?;
    super::audit_caught_up(&state, &principal.tenant, &definition.name).await?;
    let record = state
        .store
        .read_version(&principal.tenant, &definition.name, id, version)
        .await?
        .ok_or_else(|| FhirError::NotFound(format!("{type_name}/{id} has no version {version}")))?;
    if record.deleted {
        return Err(FhirError::Gone(format!("version {version} of {type_name}/{id} is a deletion")));
    }
    policy::ensure_visible(&state, &principal, &definition.name, id, Interaction::Read).await?;
    let mut record = record;
    let body = subset.apply(definition, record.json.take().unwrap_or_default())?;
    Ok(resource_response(StatusCode::OK, &record, body))
}
