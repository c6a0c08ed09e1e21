//! The one error type of the FHIR API and the one table that maps it to an HTTP status and an
//! OperationOutcome `issue.code` (FHIR R4 http.html "HTTP Status Codes", operationoutcome.html).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::fhir::FHIR_JSON;

/// One problem found in a request, as it will appear in `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    pub diagnostics: String,
    /// FHIRPath of the element at fault, e.g. `Patient.name[0].given[1]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

impl Issue {
    pub fn error(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue { severity: Severity::Error, code, diagnostics: diagnostics.into(), expression: Vec::new() }
    }

    pub fn warning(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue { severity: Severity::Warning, code, diagnostics: diagnostics.into(), expression: Vec::new() }
    }

    pub fn information(code: IssueType, diagnostics: impl Into<String>) -> Self {
        Issue { severity: Severity::Information, code, diagnostics: diagnostics.into(), expression: Vec::new() }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression.push(expression.into());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

/// The subset of the R4 `issue-type` value set the server reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IssueType {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Expired,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    NotFound,
    Deleted,
    TooLong,
    CodeInvalid,
    BusinessRule,
    Conflict,
    Throttled,
    Transient,
    Exception,
    Informational,
    TooCostly,
}

/// Everything that can go wrong while serving a FHIR request.
#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// The request could not be read as FHIR: bad JSON, wrong JSON types, unknown elements,
    /// bad parameters.
    #[error("bad request")]
    BadRequest(Vec<Issue>),
    /// Readable, but violates the R4 structure rules, a required binding or a business rule.
    #[error("unprocessable entity")]
    Unprocessable(Vec<Issue>),
    /// No access token was sent.
    #[error("{0}")]
    Unauthorized(String),
    /// The access token is malformed, forged, expired or revoked (RFC 6750 §3.1).
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    UnknownType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many requests")]
    TooManyRequests { retry_after_seconds: u64 },
    #[error("{0}")]
    NotImplemented(String),
    #[error("{0}")]
    Unavailable(String),
    /// A remote server (another EHR) failed or answered wrongly.
    #[error("{0}")]
    BadGateway(String),
    #[error("{0}")]
    Internal(String),
}

pub type FhirResult<T> = Result<T, FhirError>;

impl FhirError {
    pub fn bad_request(code: IssueType, diagnostics: impl Into<String>) -> Self {
        FhirError::BadRequest(vec![Issue::error(code, diagnostics)])
    }

    /// The error for a bare status produced outside the handlers (router, middleware), quoting
    /// its plain-text message.
    pub fn from_status(status: StatusCode, message: &str) -> Self {
        let message = if message.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            message.to_string()
        };
        match status.as_u16() {
            400 => FhirError::bad_request(IssueType::Invalid, message),
            401 => FhirError::Unauthorized(message),
            403 => FhirError::Forbidden(message),
            404 => FhirError::NotFound(message),
            405 => FhirError::MethodNotAllowed(message),
            406 => FhirError::NotAcceptable(message),
            409 => FhirError::Conflict(message),
            410 => FhirError::Gone(message),
            412 => FhirError::PreconditionFailed(message),
            413 => FhirError::PayloadTooLarge(message),
            415 => FhirError::UnsupportedMediaType(message),
            422 => FhirError::Unprocessable(vec![Issue::error(IssueType::Processing, message)]),
            429 => FhirError::TooManyRequests { retry_after_seconds: 1 },
            408 | 503 | 504 => FhirError::Unavailable(message),
            501 => FhirError::NotImplemented(message),
            _ => FhirError::Internal(message),
        }
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        FhirError::Internal(err.to_string())
    }

    /// THE table: every error's HTTP status and OperationOutcome issue code, in one place.
    pub fn status_and_code(&self) -> (StatusCode, IssueType) {
        use FhirError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, IssueType::Invalid),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, IssueType::Login),
            InvalidToken(_) => (StatusCode::UNAUTHORIZED, IssueType::Login),
            Forbidden(_) => (StatusCode::FORBIDDEN, IssueType::Forbidden),
            NotFound(_) => (StatusCode::NOT_FOUND, IssueType::NotFound),
            UnknownType(_) => (StatusCode::NOT_FOUND, IssueType::NotSupported),
            MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, IssueType::NotSupported),
            NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, IssueType::NotSupported),
            Conflict(_) => (StatusCode::CONFLICT, IssueType::Conflict),
            Gone(_) => (StatusCode::GONE, IssueType::Deleted),
            PreconditionFailed(_) => (StatusCode::PRECONDITION_FAILED, IssueType::Conflict),
            PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, IssueType::TooLong),
            UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, IssueType::NotSupported),
            Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, IssueType::Processing),
            TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, IssueType::Throttled),
            NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, IssueType::NotSupported),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, IssueType::Exception),
            BadGateway(_) => (StatusCode::BAD_GATEWAY, IssueType::Transient),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, IssueType::Exception),
        }
    }

    /// The issues to report. Internal details are logged, never sent to the client.
    pub fn issues(&self) -> Vec<Issue> {
        let (_, code) = self.status_and_code();
        match self {
            FhirError::BadRequest(issues) | FhirError::Unprocessable(issues) => issues.clone(),
            FhirError::Internal(_) => {
                vec![Issue::error(code, "internal server error; the request was not completed")]
            }
            FhirError::TooManyRequests { retry_after_seconds } => {
                vec![Issue::error(code, format!("too many requests; retry after {retry_after_seconds} s"))]
            }
            other => vec![Issue::error(code, other.to_string())],
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperationOutcomeBody<'a> {
    resource_type: &'static str,
    issue: Vec<OutcomeIssue<'a>>,
}

#[derive(Serialize)]
struct OutcomeIssue<'a> {
    severity: Severity,
    code: IssueType,
    diagnostics: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    expression: &'a [String],
}

/// Serialises issues as an OperationOutcome resource.
pub fn operation_outcome_json(issues: &[Issue]) -> Vec<u8> {
    let body = OperationOutcomeBody {
        resource_type: "OperationOutcome",
        issue: issues
            .iter()
            .map(|i| OutcomeIssue {
                severity: i.severity,
                code: i.code,
                diagnostics: &i.diagnostics,
                expression: &i.expression,
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("OperationOutcome serialises")
}

/// An OperationOutcome response with the given status.
pub fn outcome_response(status: StatusCode, issues: &[Issue]) -> Response {
    let mut response = (status, operation_outcome_json(issues)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = outcome_response(status, &self.issues());
        // RFC 6750 §3: a 401 says how to authenticate, and why a token was refused.
        let challenge = match &self {
            FhirError::TooManyRequests { retry_after_seconds } => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_seconds));
                None
            }
            FhirError::Unauthorized(_) => Some(r#"Bearer realm="kiln""#.to_string()),
            FhirError::InvalidToken(why) => Some(format!(
                r#"Bearer realm="kiln", error="invalid_token", error_description="{}""#,
                why.replace(['"', '\\'], "'")
            )),
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl From<sqlx::Error> for FhirError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => FhirError::Unavailable(err.to_string()),
            other => FhirError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_an_error_status() {
        let all = [
            FhirError::BadRequest(vec![]),
            FhirError::Unprocessable(vec![]),
            FhirError::Unauthorized(String::new()),
            FhirError::InvalidToken(String::new()),
            FhirError::Forbidden(String::new()),
            FhirError::NotFound(String::new()),
            FhirError::UnknownType(String::new()),
            FhirError::MethodNotAllowed(String::new()),
            FhirError::NotAcceptable(String::new()),
            FhirError::Conflict(String::new()),
            FhirError::Gone(String::new()),
            FhirError::PreconditionFailed(String::new()),
            FhirError::PayloadTooLarge(String::new()),
            FhirError::UnsupportedMediaType(String::new()),
            FhirError::TooManyRequests { retry_after_seconds: 1 },
            FhirError::NotImplemented(String::new()),
            FhirError::Unavailable(String::new()),
            FhirError::Internal(String::new()),
        ];
        for err in all {
            let (status, _) = err.status_and_code();
            assert!(status.is_client_error() || status.is_server_error(), "{err:?} -> {status}");
        }
    }

    #[test]
    fn internal_details_are_not_sent() {
        let issues = FhirError::Internal("password=hunter2 at db".into()).issues();
        assert!(!issues[0].diagnostics.contains("hunter2"));
    }

    #[test]
    fn outcome_names_the_element() {
        let issue = Issue::error(IssueType::Structure, "unknown element").at("Patient.foo");
        let json: serde_json::Value = serde_json::from_slice(&operation_outcome_json(&[issue])).unwrap();
        assert_eq!(json["resourceType"], "OperationOutcome");
        assert_eq!(json["issue"][0]["code"], "structure");
        assert_eq!(json["issue"][0]["expression"][0], "Patient.foo");
    }
}
