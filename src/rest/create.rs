//! create: `POST [base]/[type]` (FHIR R4 http.html#create). The server assigns the id; an id in
//! the body is replaced. With `If-None-Exist: [search]` it is a conditional create
//! (http.html#ccreate): no match creates, one match answers 200 with that resource and writes
//! nothing, several matches answer 412.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{
    FhirBody, QueryParams, WriteMode, conditional, integrity, new_id, parse_for_write, resource_type,
    return_preference, store_resource, write_response,
};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, IssueType};

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
    let condition = match headers.get("if-none-exist") {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| FhirError::bad_request(IssueType::Value, "the If-None-Exist header is not valid text"))?,
        ),
        None => None,
    };
    let (mut resource, mut value) = parse_for_write(&state, definition, &body)?;
    policy::ensure_writable(&state, &principal, &definition.name, Interaction::Create, None, Some(&body)).await?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    if let Some(condition) = condition {
        let condition = condition.trim_start_matches(&format!("{}?", definition.name)).trim_start_matches('?');
        let matched = conditional::matching_ids(
            &state,
            &mut *transaction,
            &principal,
            Interaction::Create,
            definition,
            condition,
            2,
        )
        .await?;
        match matched.as_slice() {
            [] => {}
            [existing] => {
                // The match is answered with its content, which the token must be able to read.
                policy::ensure_reachable_in(
                    &state,
                    &mut *transaction,
                    &principal,
                    &definition.name,
                    existing,
                    Interaction::Read,
                )
                .await?;
                let record = transaction
                    .read_current(&definition.name, existing)
                    .await?
                    .ok_or_else(|| FhirError::internal("a matched resource vanished inside its transaction"))?;
                return Ok(write_response(&state, StatusCode::OK, record, return_preference(&headers)));
            }
            _ => return Err(conditional::several_match(definition, condition)),
        }
    }
    let id = new_id();
    let outcome =
        store_resource(&state, &mut *transaction, &definition.name, &id, &mut resource, &mut value, WriteMode::Create)
            .await?;
    policy::ensure_left_within_reach(
        &state,
        &mut *transaction,
        &principal,
        &definition.name,
        &id,
        Interaction::Create,
        None,
    )
    .await?;
    integrity::commit_write(&state, transaction, &outcome.record).await?;
    Ok(write_response(&state, StatusCode::CREATED, outcome.record, return_preference(&headers)))
}
