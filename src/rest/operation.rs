//! What the operations (FHIR R4 operations.html) share: reading a `Parameters` body or a plain
//! resource body, refusing parameters in the URL of those that take none there, and answering a
//! `Parameters` resource.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{FhirError, Issue, IssueType};
use crate::fhir::FHIR_JSON;

/// The URL of an operation whose parameters, if it has any, come in a `Parameters` body: a
/// query parameter other than `_format` and `_pretty` is refused (400, naming it) rather than
/// silently ignored.
pub struct NoQueryParameters;

impl<S: Send + Sync> FromRequestParts<S> for NoQueryParameters {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        super::QueryParams::parse(parts.uri.query()).only(&[])?;
        Ok(NoQueryParameters)
    }
}

/// An operation's input: the parameters of a `Parameters` body, or a single resource sent as
/// the body (which operations such as `$validate` accept in place of a `resource` parameter).
pub enum OperationInput {
    Parameters(Value),
    Resource(Value),
    Empty,
}

impl OperationInput {
    pub fn read(body: &[u8]) -> Result<OperationInput, FhirError> {
        if body.is_empty() {
            return Ok(OperationInput::Empty);
        }
        let value = crate::fhir::json::parse_strict(body)?;
        match value.get("resourceType").and_then(Value::as_str) {
            Some("Parameters") => {
                // Resources inside are checked by the operation against their own type, as
                // resources of their own rather than as contained ones.
                let mut shell = value.clone();
                if let Some(list) = shell.get_mut("parameter").and_then(Value::as_array_mut) {
                    for parameter in list.iter_mut().filter_map(Value::as_object_mut) {
                        parameter.remove("resource");
                    }
                }
                crate::fhir::validation::validate_any_type(crate::fhir::registry::Registry::global(), &shell)?;
                Ok(OperationInput::Parameters(value))
            }
            Some(_) => Ok(OperationInput::Resource(value)),
            None => Err(FhirError::BadRequest(vec![
                Issue::error(IssueType::Required, "the body has no resourceType; send a Parameters resource")
                    .at("resourceType"),
            ])),
        }
    }

    /// The parameter named `name`, if the input is a `Parameters`.
    pub fn parameter(&self, name: &str) -> Option<&Value> {
        match self {
            OperationInput::Parameters(parameters) => parameters
                .get("parameter")
                .and_then(Value::as_array)
                .and_then(|list| list.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name))),
            _ => None,
        }
    }

    /// Refuses (400, naming them) parameters the operation does not define: a misspelt
    /// parameter must not be silently ignored.
    pub fn only(&self, known: &[&str]) -> Result<(), FhirError> {
        let OperationInput::Parameters(parameters) = self else { return Ok(()) };
        let unknown: Vec<Issue> = parameters
            .get("parameter")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, p)| {
                let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                (!known.contains(&name)).then(|| {
                    Issue::error(
                        IssueType::NotSupported,
                        format!("unknown parameter '{name}'; this operation takes: {}", known.join(", ")),
                    )
                    .at(format!("Parameters.parameter[{i}]"))
                })
            })
            .collect();
        if unknown.is_empty() { Ok(()) } else { Err(FhirError::BadRequest(unknown)) }
    }

    /// A primitive parameter's value, whatever its `value[x]` type.
    pub fn text(&self, name: &str) -> Option<String> {
        let parameter = self.parameter(name)?.as_object()?;
        parameter.iter().find(|(k, _)| k.starts_with("value")).and_then(|(_, v)| match v {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    }
}

/// A `Parameters` answer holding the given `(name, value[x] member, value)` parameters.
pub fn parameters_response(parameters: &[(&str, &str, Value)]) -> Response {
    let list: Vec<Value> = parameters
        .iter()
        .map(|(name, member, value)| {
            let mut parameter = json!({"name": name});
            parameter[*member] = value.clone();
            parameter
        })
        .collect();
    parameters_value_response(json!({"resourceType": "Parameters", "parameter": list}))
}

/// A `Parameters` resource built by the operation, as the answer (200).
pub fn parameters_value_response(parameters: Value) -> Response {
    let mut response = (StatusCode::OK, parameters.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}
