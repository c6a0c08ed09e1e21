//! The audit trail of calls to remote EHRs (issue: EHR linking, "every remote call audited";
//! FHIR R4 AuditEvent with the Basic Audit Log Patterns' destination agent): one AuditEvent per
//! call Kiln makes to a remote (token requests and discovery included), naming who caused it,
//! the registered Endpoint, the remote URL, the outcome, the attempts and the time taken. A
//! search's query is kept as `entity.query` with sensitive identifier values blinded, as for
//! searches made of Kiln itself.

use serde_json::{Value, json};
use std::sync::Arc;

use super::client::{CallObserver, RemoteCall};
use crate::access::{Principal, TenantId};
use crate::app::AppState;
use crate::audit::event::{self, Actor, Kind, Origin, Outcome};

/// Who is behind the calls a client makes: the tenant, the actor and where the request came from.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant: TenantId,
    pub actor: Actor,
    pub origin: Origin,
}

impl Caller {
    /// An API caller.
    pub fn of(principal: &Principal, origin: Origin) -> Caller {
        Caller { tenant: principal.tenant.clone(), actor: Actor::of_principal(Some(principal)), origin }
    }

    /// Kiln itself, acting as `name` (a sync runner, the command line).
    pub fn named(tenant: TenantId, name: String) -> Caller {
        Caller { tenant, actor: Actor { claimed_name: Some(name), ..Actor::default() }, origin: Origin::default() }
    }
}

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";

/// The kind of a call: signing in (SMART discovery and the token request), reading the
/// CapabilityStatement, or the FHIR interaction its method and path name.
fn kind(call: &RemoteCall, base: &str) -> Kind {
    let relative = call.url.strip_prefix(base).unwrap_or("");
    let path = relative.split('?').next().unwrap_or("");
    if !call.url.starts_with(base) || path.starts_with("/.well-known/") {
        return Kind {
            type_coding: json!({"system": DCM, "code": "110114", "display": "User Authentication"}),
            subtype: json!({"system": "https://kiln.example.org/fhir/CodeSystem/audit-subtype", "code": "remote-sign-in", "display": "Signing in at a remote EHR"}),
            action: "E",
        };
    }
    if path.trim_matches('/') == "metadata" {
        return Kind::rest("capabilities", "R");
    }
    let method = if call.method == "POST" { axum::http::Method::POST } else { axum::http::Method::GET };
    crate::audit::middleware::classify(&method, path)
}

/// The AuditEvent of one call to the remote `endpoint_id` named `name` at `base`.
pub fn call_event(
    state: &AppState,
    caller: &Caller,
    endpoint_id: &str,
    name: &str,
    base: &str,
    call: &RemoteCall,
) -> Value {
    let (location, query) = match call.url.split_once('?') {
        Some((location, query)) => (location, Some(state.sensitive.blind_query_text(query))),
        None => (call.url.as_str(), None),
    };
    let attempts = match call.attempts {
        1 => "1 attempt".to_string(),
        n => format!("{n} attempts"),
    };
    let elapsed = call.elapsed.as_millis();
    let status = call.status.map_or("no answer".to_string(), |s| s.to_string());
    let description = match &call.error {
        None => format!("{} {location}: {status} ({attempts}, {elapsed} ms)", call.method),
        // The error names the URL; its query may hold what the trail keeps only blinded.
        Some(error) => format!(
            "{} {location}: failed after {attempts} ({elapsed} ms): {}",
            call.method,
            error.replace(&call.url, location)
        ),
    };
    let outcome = match (&call.error, call.status) {
        (None, _) => Outcome::Success,
        (Some(_), Some(status)) if (400..500).contains(&status) => Outcome::MinorFailure,
        _ => Outcome::SeriousFailure,
    };
    let mut entities = vec![
        event::resource_entity(&format!("Endpoint/{endpoint_id}")),
        json!({"what": {"display": location},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"}}),
    ];
    if let Some(query) = query {
        entities.push(event::query_entity(&query));
    }
    let mut audit = event::audit_event(
        &kind(call, base),
        &caller.actor,
        &caller.origin,
        outcome,
        Some(&description),
        entities,
        None,
    );
    let host = reqwest::Url::parse(&call.url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let address_type = if host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok() { "2" } else { "1" };
    if let Some(agents) = audit.get_mut("agent").and_then(Value::as_array_mut) {
        agents.push(json!({
            "type": {"coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]},
            "who": {"reference": format!("Endpoint/{endpoint_id}"), "display": name},
            "requestor": false,
            "network": {"address": host, "type": address_type},
        }));
    }
    audit
}

/// An observer that records each call of a client of `endpoint_id` in the caller's audit trail.
pub fn observer(state: &AppState, caller: &Caller, endpoint_id: &str, name: &str, base: &str) -> CallObserver {
    let (state, caller) = (state.clone(), caller.clone());
    let (endpoint_id, name, base) = (endpoint_id.to_string(), name.to_string(), base.trim_end_matches('/').to_string());
    Arc::new(move |call: RemoteCall| {
        let audit = call_event(&state, &caller, &endpoint_id, &name, &base, &call);
        let (auditor, tenant) = (state.audit.clone(), caller.tenant.clone());
        Box::pin(async move { auditor.record(&tenant, audit).await })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn call(method: &'static str, url: &str) -> RemoteCall {
        RemoteCall {
            method,
            url: url.into(),
            status: Some(200),
            error: None,
            attempts: 1,
            elapsed: Duration::from_millis(5),
        }
    }

    #[test]
    fn calls_are_classified_as_sign_in_capabilities_or_their_interaction() {
        let base = "https://ehr.example/fhir";
        let code = |c: &RemoteCall| kind(c, base).subtype["code"].as_str().unwrap().to_string();
        assert_eq!(code(&call("GET", "https://ehr.example/fhir/.well-known/smart-configuration")), "remote-sign-in");
        assert_eq!(code(&call("POST", "https://auth.example/token")), "remote-sign-in");
        assert_eq!(code(&call("GET", "https://ehr.example/fhir/metadata")), "capabilities");
        assert_eq!(code(&call("GET", "https://ehr.example/fhir/Patient?family=Alpha")), "search-type");
        assert_eq!(code(&call("GET", "https://ehr.example/fhir/Patient/7")), "read");
        assert_eq!(code(&call("POST", "https://ehr.example/fhir")), "transaction");
        assert_eq!(
            kind(&call("GET", "https://ehr.example/fhir/Patient/7/$everything"), base).subtype["display"],
            "$everything"
        );
    }
}
