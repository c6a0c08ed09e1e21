//! The audit layer of the FHIR API: every request that can touch health data is recorded, with
//! what its response disclosed, and the response is held back until its AuditEvent is committed.
//! Reading what was disclosed from the response itself covers every path (read, search with
//! includes, history, operations, Bundles) without each handler having to report it.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::BTreeSet;

use super::event::{self, Actor, Kind, Origin, Outcome};
use crate::access::Principal;
use crate::access::policy::in_patient_compartment;
use crate::app::AppState;
use crate::error::FhirError;

/// Paths that never carry health data: the CapabilityStatement and the SMART discovery documents.
fn exempt(path: &str) -> bool {
    path == "/metadata" || path.starts_with("/.well-known/")
}

/// The audit kind of a request, from its method and path (relative to the FHIR base).
pub fn classify(method: &Method, path: &str) -> Kind {
    let segments: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    if let Some(operation) = segments.iter().find(|s| s.starts_with('$')) {
        let action = if *method == Method::GET { "R" } else { "E" };
        return Kind::operation(operation, action);
    }
    let is_history = segments.contains(&"_history");
    match (method.clone(), segments.as_slice()) {
        (Method::POST, []) => Kind::rest("transaction", "E"),
        (Method::GET, ["_history"]) => Kind::rest("history-system", "R"),
        (Method::GET, [_, "_history"]) => Kind::rest("history-type", "R"),
        (Method::GET, [_, _, "_history"]) => Kind::rest("history-instance", "R"),
        (Method::GET, [_, _, "_history", _]) => Kind::rest("vread", "R"),
        (Method::GET, [] | [_]) | (Method::POST, [_, "_search"]) => Kind::rest("search-type", "E"),
        (Method::GET, [_, _, _]) if !is_history => Kind::rest("search-type", "E"),
        (Method::GET, [_, _]) => Kind::rest("read", "R"),
        (Method::POST, [_]) => Kind::rest("create", "C"),
        (Method::PUT, _) => Kind::rest("update", "U"),
        (Method::PATCH, _) => Kind::rest("patch", "U"),
        (Method::DELETE, _) => Kind::rest("delete", "D"),
        _ => Kind::rest("operation", "E"),
    }
}

/// What a response disclosed or a request changed: resource references and the patients whose
/// records they belong to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Disclosure {
    pub resources: BTreeSet<String>,
    pub patients: BTreeSet<String>,
}

impl Disclosure {
    /// Adds a resource (from a response body) and the patients it belongs to.
    fn add_resource(&mut self, resource: &Value, base_url: &str) {
        let (Some(resource_type), Some(id)) =
            (resource.get("resourceType").and_then(Value::as_str), resource.get("id").and_then(Value::as_str))
        else {
            return;
        };
        if resource_type == "OperationOutcome" || resource_type == "Bundle" {
            return;
        }
        match resource.pointer("/meta/versionId").and_then(Value::as_str) {
            Some(version) => self.resources.insert(format!("{resource_type}/{id}/_history/{version}")),
            None => self.resources.insert(format!("{resource_type}/{id}")),
        };
        self.patients.extend(patients_of(resource, base_url));
    }

    /// Adds a `Type/id[/_history/n]` reference (a path or a `Location`).
    fn add_reference(&mut self, reference: &str, base_url: &str) {
        let reference = reference.strip_prefix(base_url).map(|r| r.trim_start_matches('/')).unwrap_or(reference);
        let parts: Vec<&str> = reference.split('/').collect();
        let (resource_type, id) = match parts.as_slice() {
            [resource_type, id, ..] => (*resource_type, *id),
            _ => return,
        };
        if !resource_type.starts_with(|c: char| c.is_ascii_uppercase()) || !crate::fhir::is_valid_id(id) {
            return;
        }
        let reference = match parts.as_slice() {
            [_, _, "_history", version, ..] => format!("{resource_type}/{id}/_history/{version}"),
            _ => format!("{resource_type}/{id}"),
        };
        if resource_type == "Patient" {
            self.patients.insert(id.to_string());
        }
        let unversioned = format!("{resource_type}/{id}");
        let already = self.resources.iter().any(|r| *r == unversioned || r.starts_with(&format!("{unversioned}/")));
        if !already {
            self.resources.insert(reference);
        }
    }

    /// Reads a response body: a resource, or a Bundle of them (entries without a resource
    /// count by their `response.location`).
    pub fn add_body(&mut self, body: &[u8], base_url: &str) {
        if let Ok(value) = serde_json::from_slice::<Value>(body) {
            self.add_parsed(&value, base_url);
        }
    }

    /// [`add_body`](Disclosure::add_body) for a body already parsed.
    pub fn add_parsed(&mut self, value: &Value, base_url: &str) {
        if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            self.add_resource(value, base_url);
            return;
        }
        for entry in value.get("entry").and_then(Value::as_array).into_iter().flatten() {
            match entry.get("resource") {
                Some(resource) => self.add_resource(resource, base_url),
                None => {
                    if let Some(location) = entry.pointer("/response/location").and_then(Value::as_str) {
                        self.add_reference(location, base_url);
                    }
                }
            }
        }
    }

    pub fn entities(&self, query: Option<&str>) -> Vec<Value> {
        let mut entities: Vec<Value> = self.patients.iter().map(|id| event::patient_entity(id)).collect();
        entities.extend(self.resources.iter().map(|r| event::resource_entity(r)));
        if let Some(query) = query {
            entities.push(event::query_entity(query));
        }
        entities
    }
}

/// The patients whose record a resource belongs to: a Patient itself; for the types of the
/// Patient compartment, the patients they refer to.
pub fn patients_of(resource: &Value, base_url: &str) -> BTreeSet<String> {
    let mut patients = BTreeSet::new();
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Patient") => {
            if let Some(id) = resource.get("id").and_then(Value::as_str) {
                patients.insert(id.to_string());
            }
        }
        Some(resource_type) if in_patient_compartment(resource_type) => {
            patient_references(resource, base_url, &mut patients)
        }
        _ => {}
    }
    patients
}

/// Every `Patient/id` reference in a resource (relative, or absolute to this server).
fn patient_references(value: &Value, base_url: &str, patients: &mut BTreeSet<String>) {
    for reference in crate::fhir::json::references(value) {
        let local = reference.strip_prefix(base_url).map(|r| r.trim_start_matches('/')).unwrap_or(reference);
        if let Some(id) = local.strip_prefix("Patient/") {
            let id = id.split('/').next().unwrap_or(id);
            if crate::fhir::is_valid_id(id) {
                patients.insert(id.to_string());
            }
        }
    }
}

/// The middleware: runs the request, then records it and waits for the record to be durable
/// before the response leaves. When the record cannot be written, nothing is disclosed: the
/// answer is a 500.
pub async fn audit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.audit.enabled() || exempt(request.uri().path()) || request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let kind = classify(&method, &path);
    let (mut parts, body) = request.into_parts();
    let origin = Origin::of(&parts);
    let principal = match Principal::from_request_parts(&mut parts, &state).await {
        Ok(principal) => principal,
        Err(refused) => {
            let description = refused.to_string();
            let mut asked_for = Disclosure::default();
            asked_for.add_reference(path.trim_start_matches('/'), &state.base_url);
            let event = event::audit_event(
                &kind,
                &Actor::of_principal(None),
                &origin,
                Outcome::MinorFailure,
                Some(&description),
                asked_for.entities(None),
                None,
            );
            return match state.audit.record(&state.default_tenant, event).await {
                Ok(()) => refused.into_response(),
                Err(e) => FhirError::Internal(e).into_response(),
            };
        }
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    let status = response.status();
    let (response_parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return FhirError::Internal("the response could not be read for auditing".into()).into_response();
    };
    let mut disclosure = Disclosure::default();
    if status.is_success() {
        match response_parts.extensions.get::<crate::access::consent::ParsedBody>() {
            Some(parsed) => disclosure.add_parsed(&parsed.0, &state.base_url),
            None => disclosure.add_body(&bytes, &state.base_url),
        }
        if let Some(location) =
            response_parts.headers.get(header::CONTENT_LOCATION).or(response_parts.headers.get(header::LOCATION))
            && let Ok(location) = location.to_str()
        {
            disclosure.add_reference(location, &state.base_url);
        }
    }
    // The resource the path names (a delete, a refused read, a compartment search).
    disclosure.add_reference(path.trim_start_matches('/'), &state.base_url);
    let is_search = matches!(kind.subtype.get("code").and_then(Value::as_str), Some("search-type"));
    let query_text = is_search.then(|| match &query {
        // The trail never holds a sensitive identifier, only its keyed hash.
        Some(q) => format!("{path}?{}", state.sensitive.blind_query_text(q)),
        None => path.clone(),
    });
    let description = (!status.is_success()).then(|| format!("HTTP {}", status.as_u16()));
    let broke_the_glass = response_parts.extensions.get::<crate::access::consent::BrokeTheGlass>().map(|b| b.0.clone());
    let stated = response_parts.extensions.get::<crate::access::consent::StatedPurpose>().map(|p| p.0.clone());
    let purpose = match (&broke_the_glass, &stated) {
        (Some(reason), _) => Some(("BTG", reason.as_str())),
        (None, Some(code)) => Some((code.as_str(), "")),
        (None, None) => None,
    };
    let event = event::audit_event(
        &kind,
        &Actor::of_principal(Some(&principal)),
        &origin,
        Outcome::of_status(status.as_u16()),
        description.as_deref(),
        disclosure.entities(query_text.as_deref()),
        purpose,
    );
    match state.audit.record(&principal.tenant, event).await {
        Ok(()) => Response::from_parts(response_parts, Body::from(bytes)),
        Err(e) => FhirError::Internal(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://kiln.test/fhir";

    fn code(kind: &Kind) -> &str {
        kind.subtype["code"].as_str().unwrap()
    }

    #[test]
    fn paths_are_classified_as_the_interactions_of_http_html() {
        assert_eq!(code(&classify(&Method::GET, "/Patient/1")), "read");
        assert_eq!(code(&classify(&Method::GET, "/Patient/1/_history/2")), "vread");
        assert_eq!(code(&classify(&Method::GET, "/Patient/1/_history")), "history-instance");
        assert_eq!(code(&classify(&Method::GET, "/Patient")), "search-type");
        assert_eq!(code(&classify(&Method::GET, "/Patient/1/Observation")), "search-type");
        assert_eq!(code(&classify(&Method::POST, "/Observation/_search")), "search-type");
        assert_eq!(code(&classify(&Method::POST, "/Observation")), "create");
        assert_eq!(code(&classify(&Method::DELETE, "/Observation/1")), "delete");
        assert_eq!(code(&classify(&Method::POST, "/")), "transaction");
        let everything = classify(&Method::GET, "/Patient/1/$everything");
        assert_eq!((code(&everything), everything.subtype["display"].as_str()), ("operation", Some("$everything")));
    }

    #[test]
    fn a_bundle_discloses_each_resource_and_the_patients_they_belong_to() {
        let bundle = serde_json::json!({
            "resourceType": "Bundle",
            "entry": [
                {"resource": {"resourceType": "Observation", "id": "o1", "meta": {"versionId": "2"},
                              "subject": {"reference": "Patient/p1"}}},
                {"resource": {"resourceType": "Observation", "id": "o2",
                              "subject": {"reference": format!("{BASE}/Patient/p2/_history/3")}}},
                {"resource": {"resourceType": "Patient", "id": "p3"}},
                {"resource": {"resourceType": "Practitioner", "id": "d1"}},
                {"resource": {"resourceType": "OperationOutcome", "id": "x"}},
                {"response": {"status": "201", "location": "Encounter/e1/_history/1"}}
            ]
        });
        let mut disclosure = Disclosure::default();
        disclosure.add_body(&serde_json::to_vec(&bundle).unwrap(), BASE);
        let resources: Vec<&str> = disclosure.resources.iter().map(String::as_str).collect();
        assert_eq!(
            resources,
            ["Encounter/e1/_history/1", "Observation/o1/_history/2", "Observation/o2", "Patient/p3", "Practitioner/d1"]
        );
        let patients: Vec<&str> = disclosure.patients.iter().map(String::as_str).collect();
        assert_eq!(patients, ["p1", "p2", "p3"]);
    }

    #[test]
    fn references_outside_the_patient_compartment_name_no_patient() {
        let practitioner = br#"{"resourceType":"Organization","id":"o","partOf":{"reference":"Patient/x"}}"#;
        let mut disclosure = Disclosure::default();
        disclosure.add_body(practitioner, BASE);
        assert!(disclosure.patients.is_empty());
    }

    #[test]
    fn the_path_adds_its_resource_once() {
        let mut disclosure = Disclosure::default();
        disclosure.add_body(br#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"4"}}"#, BASE);
        disclosure.add_reference("Patient/p1", BASE);
        assert_eq!(disclosure.resources.len(), 1);
        disclosure.add_reference("Patient/p9/Observation", BASE);
        assert!(disclosure.patients.contains("p9"));
        assert!(disclosure.resources.contains("Patient/p9"));
        disclosure.add_reference("Observation/_search", BASE);
        disclosure.add_reference("Observation/$validate", BASE);
        assert_eq!(disclosure.resources.len(), 2);
    }
}
