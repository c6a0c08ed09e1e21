//! search: `GET [base]/[type]?…` (FHIR R4 search.html). Not built yet: an unknown type answers
//! 404 like every other interaction, a served one 405 naming what is missing, and the
//! CapabilityStatement does not claim `search-type`.

use axum::extract::{Path, State};

use super::resource_type;
use crate::app::AppState;
use crate::error::FhirError;

pub async fn search_type(State(state): State<AppState>, Path(type_name): Path<String>) -> FhirError {
    match resource_type(&state, &type_name) {
        Err(unknown) => unknown,
        Ok(definition) => FhirError::MethodNotAllowed(format!(
            "search on {} is not supported yet; read, vread, create, update, delete and history are",
            definition.name
        )),
    }
}
