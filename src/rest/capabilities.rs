//! capabilities: `GET [base]/metadata` (FHIR R4 http.html#capabilities). The CapabilityStatement
//! is built once at start from the same registry that drives routing and validation, so what it
//! claims and what the server does cannot drift apart.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::QueryParams;
use crate::app::AppState;
use crate::error::{FhirError, IssueType};
use crate::fhir::registry::{Registry, ResourceType};
use crate::fhir::{FHIR_JSON, FHIR_VERSION};
use crate::search::SearchRegistry;

/// Interactions every supported type offers (FHIR R4 `type-restful-interaction`).
pub const TYPE_INTERACTIONS: &[&str] =
    &["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"];
/// System-level interactions.
pub const SYSTEM_INTERACTIONS: &[&str] = &["transaction", "batch", "history-system", "search-system"];

/// The search parameters a type really supports: `_id`, `_lastUpdated` and every indexed one.
fn search_params(resource: &ResourceType) -> Vec<Value> {
    let mut params = vec![
        json!({"name": "_id", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id", "type": "token"}),
        json!({"name": "_lastUpdated", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated", "type": "date"}),
    ];
    for param in SearchRegistry::global().params(&resource.name) {
        let mut entry = json!({"name": param.def.code, "type": param.def.kind});
        if let Some(url) = &param.def.url {
            entry["definition"] = json!(url);
        }
        params.push(entry);
    }
    params
}

/// Operations on every type, and their official definitions.
const TYPE_OPERATIONS: &[(&str, &str)] = &[
    ("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate"),
    ("meta", "http://hl7.org/fhir/OperationDefinition/Resource-meta"),
    ("meta-add", "http://hl7.org/fhir/OperationDefinition/Resource-meta-add"),
    ("meta-delete", "http://hl7.org/fhir/OperationDefinition/Resource-meta-delete"),
];

fn operations(resource: &ResourceType) -> Vec<Value> {
    let mut operations: Vec<Value> =
        TYPE_OPERATIONS.iter().map(|(name, definition)| json!({"name": name, "definition": definition})).collect();
    if resource.name == "Patient" {
        operations.push(
            json!({"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}),
        );
        operations.push(json!({
            "name": "retention",
            "definition": "https://kiln.example.org/fhir/OperationDefinition/Patient-retention",
            "documentation": "Until when the record must be kept (docs/retention.md)"
        }));
        operations.push(json!({
            "name": "ehr-link",
            "definition": "https://kiln.example.org/fhir/OperationDefinition/Patient-ehr-link",
            "documentation": "Link the patient to their record at a registered remote EHR (docs/ehr.md)"
        }));
        operations.push(json!({
            "name": "ehr-pull",
            "definition": "https://kiln.example.org/fhir/OperationDefinition/Patient-ehr-pull",
            "documentation": "Import the linked remote record, atomically, without duplicates (docs/ehr.md)"
        }));
        operations.push(json!({
            "name": "ehr-push",
            "definition": "https://kiln.example.org/fhir/OperationDefinition/Patient-ehr-push",
            "documentation": "Send the local record to a remote EHR as one transaction; a repeat creates nothing twice (docs/ehr.md)"
        }));
    }
    if resource.name == "Endpoint" {
        operations.push(json!({
            "name": "ehr-register",
            "definition": "https://kiln.example.org/fhir/OperationDefinition/Endpoint-ehr-register",
            "documentation": "Register a remote EHR: an Endpoint, and its credential kept sealed apart (docs/ehr.md)"
        }));
        operations.push(json!({
            "name": "ehr-test",
            "definition": "https://kiln.example.org/fhir/OperationDefinition/Endpoint-ehr-test",
            "documentation": "Check a registered remote EHR: what it supports, signing in, a search (docs/ehr.md)"
        }));
    }
    if super::signature::SIGNABLE.contains(&resource.name.as_str()) {
        for name in ["sign", "amend", "verify-signature"] {
            operations.push(json!({
                "name": name,
                "definition": format!("https://kiln.example.org/fhir/OperationDefinition/{}-{name}", resource.name),
                "documentation": "Electronic signatures (docs/signatures.md)"
            }));
        }
    }
    operations
}

/// `rest.security`: SMART on FHIR, with the authorization server's endpoints in the oauth-uris
/// extension (SMART App Launch 2.2 "Conformance", the CapabilityStatement option).
fn security(base_url: &str) -> Value {
    let origin = match base_url.find("://").and_then(|at| base_url[at + 3..].find('/').map(|p| at + 3 + p)) {
        Some(path_start) => &base_url[..path_start],
        None => base_url,
    };
    let endpoint = |name: &str| format!("{origin}/auth/{name}");
    json!({
        "cors": true,
        "service": [{
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)"
        }],
        "description": "Every request needs a SMART access token (Authorization: Bearer), except metadata and \
            .well-known/smart-configuration. patient/ scopes are confined to the launch patient's compartment.",
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": endpoint("authorize")},
                {"url": "token", "valueUri": endpoint("token")},
                {"url": "manage", "valueUri": endpoint("apps")},
                {"url": "introspect", "valueUri": endpoint("introspect")},
                {"url": "revoke", "valueUri": endpoint("revoke")}
            ]
        }]
    })
}

pub fn build(registry: &Registry, base_url: &str) -> Vec<u8> {
    let resources: Vec<Value> = registry
        .resources()
        .map(|t| {
            json!({
                "type": t.name,
                "profile": format!("http://hl7.org/fhir/StructureDefinition/{}", t.name),
                "interaction": TYPE_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
                "versioning": "versioned",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "not-supported",
                "conditionalUpdate": true,
                "conditionalDelete": "multiple",
                "searchParam": search_params(t),
                "operation": operations(t),
            })
        })
        .collect();
    let statement = json!({
        "resourceType": "CapabilityStatement",
        "id": "kiln",
        "url": format!("{base_url}/metadata"),
        "name": "Kiln",
        "title": "Kiln FHIR R4 server",
        "status": "active",
        "experimental": false,
        "date": env!("KILN_BUILD_DATE"),
        "publisher": "Kiln",
        "kind": "instance",
        "software": {"name": "Kiln", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "Kiln FHIR R4 server", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Every version of every resource is kept; delete of an unknown id answers 404, of a deleted one 204. \
                Transactions are all-or-nothing; conditional writes are decided under a lock on their condition, so concurrent \
                identical conditional creates create one resource. A conditional delete deletes at most max_conditional_deletes \
                matches (default 100); a batch or transaction holds at most max_bundle_entries entries (default 10000).",
            "security": security(base_url),
            "resource": resources,
            "interaction": SYSTEM_INTERACTIONS.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
            "operation": [{"name": "meta", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-meta"}],
        }],
    });
    serde_json::to_vec(&statement).expect("CapabilityStatement serialises")
}

pub async fn capabilities(State(state): State<AppState>, RawQuery(query): RawQuery) -> Result<Response, FhirError> {
    let params = QueryParams::parse(query.as_deref());
    params.only(&["mode"])?;
    if let Some(mode) = params.get("mode")
        && !matches!(mode, "full" | "normative")
    {
        return Err(FhirError::bad_request(
            IssueType::NotSupported,
            format!("metadata mode '{mode}' is not supported"),
        ));
    }
    let mut response = (StatusCode::OK, state.capability_statement.clone()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}
