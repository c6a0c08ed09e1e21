//! `POST [base]/Endpoint/$ehr-register` and `GET|POST [base]/Endpoint/[id]/$ehr-test` (Kiln
//! operations, docs/ehr.md): registering a remote EHR and checking it through the REST API, as
//! `kiln ehr add` and `kiln ehr test` do on the command line. The registered remotes are read
//! with the ordinary search `Endpoint?connection-type=hl7-fhir-rest`; the credential is never
//! answered back.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Caller, CredentialParts, NewRemote};
use crate::access::Principal;
use crate::access::policy::{Interaction, Restriction};
use crate::app::AppState;
use crate::audit::event::Origin;
use crate::error::{FhirError, IssueType};
use crate::fhir::FHIR_JSON;
use crate::rest::operation::{NoQueryParameters, OperationInput};
use crate::rest::{FhirBody, live, logical_id, resource_type};

/// The parameters `$ehr-register` takes.
const PARAMETERS: [&str; 12] = [
    "name",
    "address",
    "auth",
    "clientId",
    "privateKey",
    "algorithm",
    "keyId",
    "clientSecret",
    "scope",
    "managingOrganization",
    "syncEvery",
    "caCertificates",
];

fn only_on_endpoint(state: &AppState, type_name: &str, operation: &str) -> Result<(), FhirError> {
    let definition = resource_type(state, type_name)?;
    if definition.name != "Endpoint" {
        return Err(FhirError::NotFound(format!("{operation} is defined on Endpoint, not {}", definition.name)));
    }
    Ok(())
}

/// The operation `$ehr-register`: answers 201 with the new Endpoint.
pub async fn ehr_register(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    only_on_endpoint(&state, &type_name, "$ehr-register")?;
    if principal.permit("Endpoint", Interaction::Create)? != Restriction::Unrestricted {
        return Err(FhirError::Forbidden("registering a remote EHR needs the right to create any Endpoint".into()));
    }
    let input = OperationInput::read(&body)?;
    if !matches!(input, OperationInput::Parameters(_)) {
        return Err(FhirError::bad_request(IssueType::Required, "send a Parameters resource naming the remote"));
    }
    input.only(&PARAMETERS)?;
    let required = |name: &str| {
        input
            .text(name)
            .ok_or_else(|| FhirError::bad_request(IssueType::Required, format!("the parameter '{name}' is required")))
    };
    let sync_every_secs = match input.text("syncEvery") {
        Some(text) => Some(
            text.parse::<i64>()
                .map_err(|_| FhirError::bad_request(IssueType::Invalid, "'syncEvery' is a whole number of seconds"))?,
        ),
        None => None,
    };
    let invalid = |message: String| FhirError::bad_request(IssueType::Invalid, message);
    let parts = CredentialParts {
        auth: input.text("auth").unwrap_or_else(|| "backend-services".into()),
        client_id: input.text("clientId"),
        private_key_pem: input.text("privateKey"),
        algorithm: input.text("algorithm"),
        key_id: input.text("keyId"),
        client_secret: input.text("clientSecret"),
    };
    let remote = NewRemote {
        name: required("name")?,
        address: required("address")?,
        credentials: parts.credentials().map_err(invalid)?,
        scope: input.text("scope").unwrap_or_else(|| "system/*.rs".into()),
        managing_organization: input
            .parameter("managingOrganization")
            .and_then(|p| p.pointer("/valueReference/reference"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| input.text("managingOrganization")),
        sync_every_secs,
        ca_certificates: input.text("caCertificates"),
    };
    let id = super::add(&state, &principal.tenant, remote).await.map_err(invalid)?;
    let record = live(state.store.read_current(&principal.tenant, "Endpoint", &id).await?, "Endpoint", &id)?;
    let location = format!("{}/Endpoint/{id}/_history/{}", state.base_url, record.version);
    let mut response = (StatusCode::CREATED, record.json.unwrap_or_default()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
    Ok(response)
}

/// The operation `$ehr-test`: a Parameters with `passed` and one `check` per step; the
/// checks that failed say why.
pub async fn ehr_test(
    State(state): State<AppState>,
    principal: Principal,
    origin: Origin,
    Path((type_name, id)): Path<(String, String)>,
    _: NoQueryParameters,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    only_on_endpoint(&state, &type_name, "$ehr-test")?;
    let id = logical_id(&id)?;
    OperationInput::read(&body)?.only(&[])?;
    if principal.permit("Endpoint", Interaction::Read)? != Restriction::Unrestricted {
        return Err(FhirError::Forbidden("testing a remote EHR needs the right to read any Endpoint".into()));
    }
    let (_, remote) = super::connect(&state, &Caller::of(&principal, origin), id).await.map_err(FhirError::NotFound)?;
    let report = super::test(&remote).await;
    let mut parameters = vec![json!({"name": "passed", "valueBoolean": report.passed})];
    parameters.extend(report.lines.iter().map(|line| json!({"name": "check", "valueString": line})));
    Ok(crate::rest::operation::parameters_value_response(
        json!({"resourceType": "Parameters", "parameter": parameters}),
    ))
}
