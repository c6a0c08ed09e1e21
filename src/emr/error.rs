//! Errors raised when a FHIR resource cannot be read into an internal EMR model.

use thiserror::Error;

/// Why a FHIR resource could not become an internal model.
///
/// Every variant that concerns one element carries a FHIRPath-like `expression`
/// (`Patient.identifier[1].value`) so the server can point at it in an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MappingError {
    #[error("a FHIR resource must be a JSON object")]
    NotAnObject,
    #[error("expected resourceType {expected}, found {found}")]
    WrongResourceType { expected: &'static str, found: String },
    #[error("{expression}: required element is missing")]
    Missing { expression: String },
    #[error("{expression}: {message}")]
    Invalid { expression: String, message: String },
}

impl MappingError {
    pub(crate) fn missing(expression: impl Into<String>) -> Self {
        MappingError::Missing { expression: expression.into() }
    }

    pub(crate) fn invalid(expression: impl Into<String>, message: impl Into<String>) -> Self {
        MappingError::Invalid { expression: expression.into(), message: message.into() }
    }

    /// The element the error is about, when it is about one.
    pub fn expression(&self) -> Option<&str> {
        match self {
            MappingError::Missing { expression } | MappingError::Invalid { expression, .. } => Some(expression),
            MappingError::NotAnObject | MappingError::WrongResourceType { .. } => None,
        }
    }
}
