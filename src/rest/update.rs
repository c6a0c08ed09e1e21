//! update: `PUT [base]/[type]/[id]` (FHIR R4 http.html#update), including update-as-create with
//! a client-chosen id and version-aware updates with `If-Match` (http.html#concurrency).

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{
    FhirBody, QueryParams, if_match, logical_id, parse_for_write, resource_type, return_preference, rules,
    write_response,
};
use crate::access::Principal;
use crate::app::AppState;
use crate::emr::rules::WriteKind;
use crate::error::{FhirError, Issue, IssueType};
use crate::store::{Change, WriteRequest};

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
    let guards =
        rules::prepare_write(&state, &principal.tenant, &definition.name, &mut resource, &mut value, WriteKind::Update)
            .await?;
    let mut request =
        WriteRequest::new(&definition.name, id, Change::Update { body: &resource, if_match: expected_version });
    request.guards = guards;
    request.index = crate::search::index_resource(state.registry, &definition.name, &value);
    let outcome = state.store.write(&principal.tenant, request).await?;
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(write_response(&state, status, outcome.record, return_preference(&headers)))
}
