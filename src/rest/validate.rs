//! `$validate` on a type (`POST [base]/[type]/$validate`) and an instance
//! (`POST [base]/[type]/[id]/$validate`) (FHIR R4 resource-operation-validate.html): checks a
//! resource as a create, update or delete would, and stores nothing. The answer is 200 with an
//! OperationOutcome whether or not the resource is valid; 4xx means the check itself could not
//! be run.
//!
//! Checked: the R4 structure of the type, and the clinic's rules that need no other resource.
//! Claims that depend on stored data (a taken MRN, an overlapping appointment) are only
//! decided when the write runs.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::operation::OperationInput;
use super::{FhirBody, QueryParams, logical_id, parse_for_write, resource_type, rules};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::emr::rules::WriteKind;
use crate::error::{FhirError, Issue, IssueType, Severity, outcome_response};
use crate::fhir::registry::ResourceType;

pub async fn validate_type(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    QueryParams::parse(query.as_deref()).only(&["mode", "profile"])?;
    validate(&state, &principal, definition, None, query.as_deref(), &body).await
}

pub async fn validate_instance(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    QueryParams::parse(query.as_deref()).only(&["mode", "profile"])?;
    validate(&state, &principal, definition, Some(id), query.as_deref(), &body).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Create,
    Update,
    Delete,
}

async fn validate(
    state: &AppState,
    principal: &Principal,
    definition: &ResourceType,
    id: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<Response, FhirError> {
    let input = OperationInput::read(body)?;
    let query = QueryParams::parse(query);
    let mode_text = input.text("mode").or_else(|| query.get("mode").map(str::to_string));
    let mode = match mode_text.as_deref() {
        None if id.is_some() => Mode::Update,
        None | Some("create") => Mode::Create,
        Some("update") => Mode::Update,
        Some("delete") => Mode::Delete,
        Some(other) => {
            return Err(FhirError::bad_request(
                IssueType::Value,
                format!("mode '{other}' is not one of create, update, delete"),
            ));
        }
    };
    let profile = input.text("profile").or_else(|| query.get("profile").map(str::to_string));
    let base_profile = format!("http://hl7.org/fhir/StructureDefinition/{}", definition.name);
    if let Some(profile) = &profile
        && profile.split('|').next() != Some(base_profile.as_str())
    {
        return Err(FhirError::bad_request(
            IssueType::NotSupported,
            format!("profile '{profile}' is not known to this server; only {base_profile} is"),
        ));
    }
    if mode != Mode::Create && id.is_none() {
        return Err(FhirError::bad_request(
            IssueType::Required,
            "modes update and delete validate an instance: use [type]/[id]/$validate",
        ));
    }
    // Validating is asking "may I?": the token must hold the interaction it asks about, and a
    // delete's answer says whether the resource exists, so it must also be visible.
    let interaction = match mode {
        Mode::Create => Interaction::Create,
        Mode::Update => Interaction::Update,
        Mode::Delete => Interaction::Delete,
    };
    principal.permit(&definition.name, interaction)?;
    if let Some(id) = id
        && mode != Mode::Create
    {
        policy::ensure_writable(state, principal, &definition.name, interaction, Some(id), None).await?;
    }
    if mode == Mode::Delete {
        let id = id.unwrap_or_default();
        return match state.store.read_current(&principal.tenant, &definition.name, id).await? {
            Some(record) if !record.deleted => Ok(verdict(Ok(()))),
            _ => Err(FhirError::NotFound(format!("{}/{id} is not known", definition.name))),
        };
    }
    let resource = match &input {
        OperationInput::Resource(value) => value.clone(),
        OperationInput::Parameters(_) => {
            input.parameter("resource").and_then(|p| p.get("resource")).cloned().ok_or_else(|| {
                FhirError::bad_request(IssueType::Required, "the Parameters carry no 'resource' to validate")
            })?
        }
        OperationInput::Empty => {
            return Err(FhirError::bad_request(IssueType::Required, "send the resource to validate as the body"));
        }
    };
    let bytes = serde_json::to_vec(&resource).map_err(FhirError::internal)?;
    let checked = parse_for_write(state, definition, &bytes).and_then(|(body, value)| {
        if mode == Mode::Update && body.id.as_deref() != id {
            return Err(FhirError::BadRequest(vec![
                Issue::error(
                    IssueType::Invalid,
                    format!("an update of {}/{} must carry that id", definition.name, id.unwrap_or_default()),
                )
                .at(format!("{}.id", definition.name)),
            ]));
        }
        let kind = if mode == Mode::Update { WriteKind::Update } else { WriteKind::Create };
        rules::check(&definition.name, &value, kind)
    });
    Ok(verdict(checked))
}

/// 200 with the problems found, or with one informational issue saying none were.
fn verdict(checked: Result<(), FhirError>) -> Response {
    match checked {
        Ok(()) => outcome_response(
            StatusCode::OK,
            &[Issue {
                severity: Severity::Information,
                code: IssueType::Informational,
                diagnostics: "the resource is valid".into(),
                expression: vec![],
            }],
        ),
        Err(error @ (FhirError::BadRequest(_) | FhirError::Unprocessable(_))) => {
            outcome_response(StatusCode::OK, &error.issues())
        }
        Err(other) => other.into_response(),
    }
}
