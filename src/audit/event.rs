//! Building AuditEvent resources (FHIR R4 auditevent.html, with the codes of the Basic Audit
//! Log Patterns): who (user, role, app), what (the resources and patients touched), when, where
//! from (address, user agent, request id), the outcome and the purpose of use.

use serde_json::{Map, Value, json};

use crate::access::{Principal, PrincipalKind};
use crate::fhir::instant::{fhir_instant, now_micros};

const EXTENSION_BASE: &str = "https://kiln.example.org/fhir/StructureDefinition";
pub const ROLE_SYSTEM: &str = "https://kiln.example.org/fhir/CodeSystem/role";
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const ENTITY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/audit-entity-type";
const OBJECT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/object-role";
pub const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Origin {
    /// The origin of a request: the peer address the server saw, and its headers.
    pub fn of(parts: &axum::http::request::Parts) -> Origin {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        Origin {
            address: parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
            user_agent: header("user-agent"),
            request_id: header("x-request-id"),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin::of(parts))
    }
}

/// How the audited action ended (AuditEvent.outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused or invalid (4xx).
    MinorFailure,
    /// The server failed (5xx).
    SeriousFailure,
}

impl Outcome {
    pub fn of_status(status: u16) -> Outcome {
        match status {
            0..=399 => Outcome::Success,
            400..=499 => Outcome::MinorFailure,
            _ => Outcome::SeriousFailure,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::MinorFailure => "4",
            Outcome::SeriousFailure => "8",
        }
    }
}

/// What kind of event: its type and subtype codings and the action code (C, R, U, D, E).
#[derive(Debug, Clone)]
pub struct Kind {
    pub type_coding: Value,
    pub subtype: Value,
    pub action: &'static str,
}

impl Kind {
    /// A RESTful interaction (restful-interaction code, e.g. `read`, `search-type`).
    pub fn rest(interaction: &str, action: &'static str) -> Kind {
        Kind {
            type_coding: json!({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"}),
            subtype: json!({"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}),
            action,
        }
    }

    /// A FHIR operation such as `$everything` or `$sign`.
    pub fn operation(name: &str, action: &'static str) -> Kind {
        Kind {
            type_coding: json!({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"}),
            subtype: json!({"system": "http://hl7.org/fhir/restful-interaction", "code": "operation", "display": name}),
            action,
        }
    }

    /// User authentication (DICOM 110114): `110122` login, `110123` logout.
    pub fn authentication(subtype: &str, display: &str) -> Kind {
        Kind {
            type_coding: json!({"system": DCM, "code": "110114", "display": "User Authentication"}),
            subtype: json!({"system": DCM, "code": subtype, "display": display}),
            action: "E",
        }
    }

    pub fn login() -> Kind {
        Kind::authentication("110122", "Login")
    }

    pub fn logout() -> Kind {
        Kind::authentication("110123", "Logout")
    }

    /// An access token issued by the token endpoint.
    pub fn token_issued() -> Kind {
        Kind {
            type_coding: json!({"system": DCM, "code": "110114", "display": "User Authentication"}),
            subtype: json!({"system": "https://kiln.example.org/fhir/CodeSystem/audit-subtype", "code": "token-issued", "display": "Access token issued"}),
            action: "E",
        }
    }
}

/// The person or app acting, when it is not a FHIR API principal (the sign-in pages, the token
/// endpoint).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The user's account id.
    pub user: Option<String>,
    /// The user's FHIR resource (`Practitioner/…`), if linked.
    pub fhir_user: Option<String>,
    pub role: Option<String>,
    /// The app (OAuth client) acting, if any.
    pub client_id: Option<String>,
    /// What the user typed to identify themselves, on a failed sign-in.
    pub claimed_name: Option<String>,
}

impl Actor {
    /// A signed-in user (or one who tried), by account.
    pub fn user(user: &crate::auth::store::UserRecord) -> Actor {
        Actor {
            user: Some(user.user_id.clone()),
            fhir_user: user.fhir_user.clone(),
            role: Some(user.role.clone()),
            client_id: None,
            claimed_name: Some(user.username.clone()),
        }
    }

    /// The actor behind an API principal.
    pub fn of_principal(principal: Option<&Principal>) -> Actor {
        match principal.map(|p| &p.kind) {
            Some(PrincipalKind::Token(grant)) => {
                let claims = &grant.claims;
                let user_token = claims.role.is_some() || claims.fhir_user.is_some();
                Actor {
                    user: user_token.then(|| claims.sub.clone()),
                    fhir_user: claims.fhir_user.clone(),
                    role: claims.role.clone(),
                    client_id: Some(claims.client_id.clone()),
                    claimed_name: None,
                }
            }
            Some(PrincipalKind::DefaultTenant) => {
                Actor { claimed_name: Some("open access (development setting)".into()), ..Actor::default() }
            }
            None => Actor { claimed_name: Some("unauthenticated caller".into()), ..Actor::default() },
        }
    }
}

/// A reference to `Type/id` relative to the server, from a FHIR user claim that may be absolute.
fn local_reference(reference: &str) -> &str {
    let parts: Vec<&str> = reference.rsplitn(3, '/').collect();
    match parts.as_slice() {
        [_, _, prefix] => &reference[prefix.len() + 1..],
        _ => reference,
    }
}

fn agents(actor: &Actor, origin: &Origin) -> Vec<Value> {
    let network = origin.address.as_ref().map(|address| json!({"address": address, "type": "2"}));
    let mut agents = Vec::new();
    let person = actor.user.is_some() || actor.claimed_name.is_some() || actor.client_id.is_none();
    if person {
        let mut agent = Map::new();
        agent.insert(
            "type".into(),
            json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type", "code": "humanuser", "display": "human user"}]}),
        );
        let mut who = Map::new();
        if let Some(fhir_user) = &actor.fhir_user {
            who.insert("reference".into(), json!(local_reference(fhir_user)));
        }
        if let Some(user) = &actor.user {
            who.insert("identifier".into(), json!({"system": "urn:kiln:user", "value": user}));
        }
        if let Some(name) = &actor.claimed_name {
            who.insert("display".into(), json!(name));
        }
        agent.insert("who".into(), Value::Object(who));
        if let Some(user) = &actor.user {
            agent.insert("altId".into(), json!(user));
        }
        if let Some(role) = &actor.role {
            agent.insert("role".into(), json!([{"coding": [{"system": ROLE_SYSTEM, "code": role}], "text": role}]));
        }
        agent.insert("requestor".into(), json!(true));
        if let Some(network) = &network {
            agent.insert("network".into(), network.clone());
        }
        agents.push(Value::Object(agent));
    }
    if let Some(client_id) = &actor.client_id {
        let mut agent = json!({
            "type": {"coding": [{"system": DCM, "code": "110150", "display": "Application"}]},
            "who": {"identifier": {"system": "urn:kiln:client", "value": client_id}},
            "altId": client_id,
            "requestor": !person,
        });
        if let (false, Some(network)) = (person, &network) {
            agent["network"] = network.clone();
        }
        agents.push(agent);
    }
    agents
}

/// An AuditEvent: `entities` are `entity` elements (see [`resource_entity`], [`patient_entity`],
/// [`query_entity`]); `purpose` is a v3-ActReason code with its free-text reason (none when
/// empty).
pub fn audit_event(
    kind: &Kind,
    actor: &Actor,
    origin: &Origin,
    outcome: Outcome,
    outcome_description: Option<&str>,
    entities: Vec<Value>,
    purpose: Option<(&str, &str)>,
) -> Value {
    let mut event = Map::new();
    event.insert("resourceType".into(), json!("AuditEvent"));
    let mut extensions = Vec::new();
    if let Some(user_agent) = &origin.user_agent {
        extensions.push(json!({"url": format!("{EXTENSION_BASE}/audit-user-agent"), "valueString": user_agent}));
    }
    if let Some(request_id) = &origin.request_id {
        extensions.push(json!({"url": format!("{EXTENSION_BASE}/audit-request-id"), "valueString": request_id}));
    }
    if !extensions.is_empty() {
        event.insert("extension".into(), Value::Array(extensions));
    }
    event.insert("type".into(), kind.type_coding.clone());
    event.insert("subtype".into(), json!([kind.subtype]));
    event.insert("action".into(), json!(kind.action));
    event.insert("recorded".into(), json!(fhir_instant(now_micros())));
    event.insert("outcome".into(), json!(outcome.code()));
    if let Some(description) = outcome_description {
        event.insert("outcomeDesc".into(), json!(description));
    }
    if let Some((code, reason)) = purpose {
        let mut purpose = json!({"coding": [{"system": ACT_REASON, "code": code}]});
        if !reason.is_empty() {
            purpose["text"] = json!(reason);
        }
        event.insert("purposeOfEvent".into(), json!([purpose]));
    }
    event.insert("agent".into(), Value::Array(agents(actor, origin)));
    event.insert(
        "source".into(),
        json!({
            "observer": {"display": "Kiln FHIR server"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
        }),
    );
    if !entities.is_empty() {
        event.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(event)
}

/// An entity for a resource read or written (`Type/id`, or `Type/id/_history/n`). Its type
/// (2, System Object) goes without saying and is left out: a search page names up to a thousand
/// of them, and each coding would be two more search-index rows.
pub fn resource_entity(reference: &str) -> Value {
    json!({"what": {"reference": reference}})
}

/// An entity for a patient whose record was touched.
pub fn patient_entity(patient_id: &str) -> Value {
    json!({
        "what": {"reference": format!("Patient/{patient_id}")},
        "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
        "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
    })
}

/// An entity for the query of a search (its text, base64 as AuditEvent.entity.query requires).
pub fn query_entity(query: &str) -> Value {
    use base64::Engine;
    json!({
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
        "query": base64::engine::general_purpose::STANDARD.encode(query),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_fhir_user_references_become_relative() {
        assert_eq!(local_reference("https://ehr.example/fhir/Practitioner/7"), "Practitioner/7");
        assert_eq!(local_reference("Practitioner/7"), "Practitioner/7");
    }

    #[test]
    fn a_user_with_an_app_is_two_agents_and_the_user_is_the_requestor() {
        let actor = Actor {
            user: Some("u1".into()),
            fhir_user: Some("Practitioner/7".into()),
            role: Some("nurse".into()),
            client_id: Some("app".into()),
            claimed_name: None,
        };
        let origin = Origin { address: Some("10.0.0.9".into()), ..Origin::default() };
        let event = audit_event(&Kind::rest("read", "R"), &actor, &origin, Outcome::Success, None, vec![], None);
        let agents = event["agent"].as_array().unwrap();
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[0]["who"]["reference"], "Practitioner/7");
        assert_eq!(agents[0]["requestor"], true);
        assert_eq!(agents[0]["network"]["address"], "10.0.0.9");
        assert_eq!(agents[1]["altId"], "app");
        assert_eq!(agents[1]["requestor"], false);
        assert_eq!(event["outcome"], "0");
    }

    #[test]
    fn a_backend_service_is_the_requestor_itself() {
        let actor = Actor { client_id: Some("etl".into()), ..Actor::default() };
        let event = audit_event(
            &Kind::rest("search-type", "E"),
            &actor,
            &Origin::default(),
            Outcome::MinorFailure,
            None,
            vec![],
            None,
        );
        let agents = event["agent"].as_array().unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!(agents[0]["requestor"], true);
        assert_eq!(event["outcome"], "4");
    }
}
