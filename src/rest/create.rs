//! create: `POST [base]/[type]` (FHIR R4 http.html#create). The server assigns the id; an id in
//! the body is replaced.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{FhirBody, QueryParams, parse_for_write, resource_type, return_preference, rules, write_response};
use crate::access::Principal;
use crate::app::AppState;
use crate::emr::rules::WriteKind;
use crate::error::FhirError;
use crate::store::{Change, WriteRequest};

pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    QueryParams::parse(query.as_deref()).only(&[])?;
    if headers.contains_key("if-none-exist") {
        return Err(FhirError::NotImplemented(
            "conditional create (If-None-Exist) is not supported yet; the CapabilityStatement says conditionalCreate=false".into(),
        ));
    }
    let (mut resource, mut value) = parse_for_write(&state, definition, &body)?;
    let guards =
        rules::prepare_write(&state, &principal.tenant, &definition.name, &mut resource, &mut value, WriteKind::Create)
            .await?;
    // Time-ordered ids keep index inserts local (B-tree pages fill in order).
    let id = uuid::Uuid::now_v7().to_string();
    let mut request = WriteRequest::new(&definition.name, &id, Change::Create(&resource));
    request.guards = guards;
    request.index = crate::search::index_resource(state.registry, &definition.name, &value);
    let outcome = state.store.write(&principal.tenant, request).await?;
    Ok(write_response(&state, StatusCode::CREATED, outcome.record, return_preference(&headers)))
}
