//! Consent (FHIR R4 consent.html) applied to what leaves the server, and break-the-glass.
//!
//! A patient's active Consent resources may deny access: every `provision` (the root one or a
//! nested one) of type `deny` is a rule that applies to the actors, purposes, resource types
//! (`class`), security labels and period it names (a criterion left empty applies to all); a
//! `permit` nested in a `deny` names actors excepted from it. Like an interceptor on the way out
//! (HAPI's consent service works the same way), the rules are applied to each response: a
//! denied resource read alone is a 403, and a search, `_include`, history, `$everything` or
//! Bundle simply leaves it out. The patient themself is never denied their own record.
//!
//! A user whose role allows it may override a denial for one request by giving a reason in the
//! `X-Break-Glass-Reason` header; the request's AuditEvent then carries purposeOfEvent BTG with
//! the reason, and `kiln audit report --break-glass` lists it.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Principal, PrincipalKind, TenantId};
use crate::app::AppState;
use crate::error::FhirError;
use crate::fhir::instant::{now_micros, parse_range};

/// Roles that may break the glass.
pub const BREAK_GLASS_ROLES: &[&str] = &["physician", "nurse", "admin"];
/// The header that breaks the glass, with the reason as its value.
pub const BREAK_GLASS_HEADER: &str = "x-break-glass-reason";
/// The header a request states its purpose of use in (a v3 ActReason code, e.g. `TREAT`, `HPAYMT`).
pub const PURPOSE_HEADER: &str = "x-purpose-of-use";
/// How long a node trusts its copy of a patient's rules when another node may have changed them.
const CACHE_SECONDS: u64 = 2;

/// One deny rule of a Consent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DenyRule {
    /// References (`Practitioner/7`) the rule applies to; empty: everyone.
    pub actors: Vec<String>,
    /// Actors excepted (permits nested in the deny).
    pub except_actors: Vec<String>,
    /// Purpose-of-use codes; empty: every purpose.
    pub purposes: Vec<String>,
    /// Resource types; empty: every type.
    pub classes: Vec<String>,
    /// Security label codes; empty: every resource.
    pub labels: Vec<String>,
    /// When the rule holds, as microseconds `[start, end)`; `None`: always.
    pub period: Option<(i64, i64)>,
}

fn references(provision: &Value, path: &str) -> Vec<String> {
    provision
        .get("actor")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|actor| actor.pointer(path).and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn codes(provision: &Value, member: &str) -> Vec<String> {
    provision
        .get(member)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|coding| coding.get("code").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn period(provision: &Value) -> Option<(i64, i64)> {
    let period = provision.get("period")?;
    let start = period.get("start").and_then(Value::as_str).and_then(parse_range).map_or(i64::MIN, |r| r.0);
    let end = period.get("end").and_then(Value::as_str).and_then(parse_range).map_or(i64::MAX, |r| r.1);
    Some((start, end))
}

/// The deny rules of one Consent resource (none unless it is `active`).
pub fn deny_rules(consent: &Value) -> Vec<DenyRule> {
    let mut rules = Vec::new();
    if consent.get("status").and_then(Value::as_str) != Some("active") {
        return rules;
    }
    fn walk(provision: &Value, rules: &mut Vec<DenyRule>) {
        let nested: Vec<&Value> = provision.get("provision").and_then(Value::as_array).into_iter().flatten().collect();
        if provision.get("type").and_then(Value::as_str) == Some("deny") {
            let except_actors = nested
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("permit"))
                .flat_map(|p| references(p, "/reference/reference"))
                .collect();
            rules.push(DenyRule {
                actors: references(provision, "/reference/reference"),
                except_actors,
                purposes: codes(provision, "purpose"),
                classes: codes(provision, "class"),
                labels: codes(provision, "securityLabel"),
                period: period(provision),
            });
        }
        for child in nested {
            walk(child, rules);
        }
    }
    if let Some(provision) = consent.get("provision") {
        walk(provision, &mut rules);
    }
    rules
}

/// Who is asking, as the rules see it.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    /// `Practitioner/7`, `Patient/3`, … (a user's FHIR resource).
    pub actor: Option<String>,
    pub purpose: Option<String>,
}

impl DenyRule {
    /// Whether this rule denies `requester` the resource (type and security labels given).
    pub fn denies(&self, requester: &Requester, resource_type: &str, labels: &[String], now: i64) -> bool {
        if let Some((start, end)) = self.period
            && !(start <= now && now < end)
        {
            return false;
        }
        let actor = requester.actor.as_deref();
        if !self.actors.is_empty() && !actor.is_some_and(|a| self.actors.iter().any(|r| r == a)) {
            return false;
        }
        if actor.is_some_and(|a| self.except_actors.iter().any(|r| r == a)) {
            return false;
        }
        // A request that states no purpose may be for any: the rule holds.
        if !self.purposes.is_empty()
            && let Some(purpose) = &requester.purpose
            && !self.purposes.contains(purpose)
        {
            return false;
        }
        if !self.classes.is_empty() && !self.classes.iter().any(|c| c == resource_type) {
            return false;
        }
        if !self.labels.is_empty() && !labels.iter().any(|l| self.labels.contains(l)) {
            return false;
        }
        true
    }
}

/// A patient of a tenant.
type PatientKey = (TenantId, String);
/// A patient's rules, and when they were read.
type CachedRules = (Instant, Arc<Vec<DenyRule>>);

/// Each node's copy of the patients' rules: dropped on a Consent write on this node, and trusted
/// for at most two seconds otherwise (another node's write).
#[derive(Default)]
pub struct ConsentCache {
    rules: Mutex<HashMap<PatientKey, CachedRules>>,
}

impl ConsentCache {
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut rules) = self.rules.lock() {
            rules.retain(|(t, _), _| t != tenant);
        }
    }

    fn remember(&self, key: PatientKey, rules: Arc<Vec<DenyRule>>) {
        if let Ok(mut cache) = self.rules.lock() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(key, (Instant::now(), rules));
        }
    }

    fn cached(&self, key: &PatientKey) -> Option<Arc<Vec<DenyRule>>> {
        let rules = self.rules.lock().ok()?;
        let (at, cached) = rules.get(key)?;
        (at.elapsed() < Duration::from_secs(CACHE_SECONDS)).then(|| cached.clone())
    }

    async fn rules(&self, state: &AppState, tenant: &TenantId, patient: &str) -> Result<Arc<Vec<DenyRule>>, FhirError> {
        let key = (tenant.clone(), patient.to_string());
        if let Some(cached) = self.cached(&key) {
            return Ok(cached);
        }
        let definition =
            state.registry.resource("Consent").ok_or_else(|| FhirError::internal("Consent is not served"))?;
        let params = crate::rest::QueryParams(vec![
            ("patient".into(), format!("Patient/{patient}")),
            ("status".into(), "active".into()),
            ("_count".into(), "100".into()),
        ]);
        let query = crate::search::query::compile(definition, &params, &state.base_url, false, 100, 100)?;
        let consents = state.store.search(tenant, "Consent", &query).await?;
        let mut found = Vec::new();
        for record in consents {
            if let Some(json) = record.json
                && let Ok(consent) = serde_json::from_slice::<Value>(&json)
            {
                found.extend(deny_rules(&consent));
            }
        }
        let found = Arc::new(found);
        self.remember(key, found.clone());
        Ok(found)
    }
}

/// That a request broke the glass, and why: read by the audit layer.
#[derive(Debug, Clone)]
pub struct BrokeTheGlass(pub String);

/// The purpose of use a request stated (by header or by its token): read by the audit layer.
#[derive(Debug, Clone)]
pub struct StatedPurpose(pub String);

fn requester_of(principal: &Principal, request_purpose: Option<String>) -> Requester {
    let actor = match &principal.kind {
        PrincipalKind::Token(grant) => grant.claims.fhir_user.as_deref().map(|u| {
            let parts: Vec<&str> = u.rsplitn(3, '/').collect();
            match parts.as_slice() {
                [id, kind, _] => format!("{kind}/{id}"),
                _ => u.to_string(),
            }
        }),
        PrincipalKind::DefaultTenant => None,
    };
    Requester { actor, purpose: request_purpose }
}

/// The patient the principal is, or acts for: never denied their own record.
fn own_patient(principal: &Principal, requester: &Requester) -> Option<String> {
    if let Some(patient) = principal.launch_patient()
        && principal.grant().is_some_and(|g| g.claims.role.as_deref().is_none_or(|r| r == "patient"))
    {
        return Some(patient.to_string());
    }
    requester.actor.as_deref().and_then(|a| a.strip_prefix("Patient/")).map(str::to_string)
}

fn header_text(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// The middleware: applies the patients' deny rules to the response, unless the glass is broken.
pub async fn apply(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let principal = match parts.extensions.get::<Principal>() {
        Some(principal) => principal.clone(),
        None => match Principal::from_request_parts(&mut parts, &state).await {
            Ok(principal) => principal,
            // The handler answers the refusal.
            Err(_) => return next.run(Request::from_parts(parts, body)).await,
        },
    };
    let request = Request::from_parts(parts, body);
    // A header states it for one request; a token for every request of its grant.
    let claims = principal.grant().map(|g| &g.claims);
    let purpose = header_text(request.headers(), PURPOSE_HEADER)
        .or_else(|| claims.and_then(|c| c.purpose_of_use.clone()).filter(|p| p != "BTG"));
    let reason = header_text(request.headers(), BREAK_GLASS_HEADER)
        .or_else(|| claims.and_then(|c| c.break_glass_reason.clone()));
    let writes_consent = request.method() != axum::http::Method::GET && request.uri().path().contains("Consent");
    let tenant = principal.tenant.clone();
    if let Some(reason) = reason {
        let role = principal.grant().and_then(|g| g.claims.role.clone());
        if !role.as_deref().is_some_and(|r| BREAK_GLASS_ROLES.contains(&r)) {
            return FhirError::Forbidden(format!(
                "only these roles may break the glass: {}",
                BREAK_GLASS_ROLES.join(", ")
            ))
            .into_response();
        }
        let mut response = next.run(request).await;
        response.extensions_mut().insert(BrokeTheGlass(reason));
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(purpose) = &purpose {
        response.extensions_mut().insert(StatedPurpose(purpose.clone()));
    }
    if writes_consent {
        state.consent.forget(&tenant);
    }
    let is_json =
        response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if !response.status().is_success() || !is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return FhirError::internal("the response could not be read").into_response();
    };
    let requester = requester_of(&principal, purpose);
    let own = own_patient(&principal, &requester);
    match filter(&state, &tenant, &requester, own.as_deref(), &bytes).await {
        Ok(Filtered::Unchanged(parsed)) => {
            let mut response = Response::from_parts(parts, Body::from(bytes));
            if let Some(parsed) = parsed {
                response.extensions_mut().insert(ParsedBody(Arc::new(parsed)));
            }
            response
        }
        Ok(Filtered::Changed(new, parsed)) => {
            let mut response = Response::from_parts(parts, Body::from(new));
            response.headers_mut().remove(header::CONTENT_LENGTH);
            response.extensions_mut().insert(ParsedBody(Arc::new(parsed)));
            response
        }
        Ok(Filtered::Denied(what)) => {
            let mut refused = FhirError::Forbidden(format!(
                "{what} is withheld by the patient's consent; a clinician whose role allows it may break the glass \
                 (header X-Break-Glass-Reason)"
            ))
            .into_response();
            refused.headers_mut().insert("x-consent-decision", HeaderValue::from_static("deny"));
            refused
        }
        Err(error) => error.into_response(),
    }
}

enum Filtered {
    /// Nothing withheld; the parsed body, when it is JSON, for the audit layer.
    Unchanged(Option<Value>),
    Changed(Vec<u8>, Value),
    Denied(String),
}

/// The response body as the consent layer parsed it, handed to the audit layer so that each
/// response is parsed once.
#[derive(Debug, Clone)]
pub struct ParsedBody(pub Arc<Value>);

/// Whether the patients' rules deny this resource to the requester.
async fn denied(
    state: &AppState,
    tenant: &TenantId,
    requester: &Requester,
    own: Option<&str>,
    resource: &Value,
) -> Result<bool, FhirError> {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else { return Ok(false) };
    if matches!(resource_type, "Consent" | "OperationOutcome" | "Bundle" | "AuditEvent") {
        return Ok(false);
    }
    let patients = crate::audit::middleware::patients_of(resource, &state.base_url);
    if patients.is_empty() {
        return Ok(false);
    }
    let labels: Vec<String> = resource
        .pointer("/meta/security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|l| l.get("code").and_then(Value::as_str).map(str::to_string))
        .collect();
    let now = now_micros();
    for patient in &patients {
        if Some(patient.as_str()) == own {
            continue;
        }
        let rules = state.consent.rules(state, tenant, patient).await?;
        if rules.iter().any(|rule| rule.denies(requester, resource_type, &labels, now)) {
            return Ok(true);
        }
    }
    Ok(false)
}

async fn filter(
    state: &AppState,
    tenant: &TenantId,
    requester: &Requester,
    own: Option<&str>,
    bytes: &[u8],
) -> Result<Filtered, FhirError> {
    let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else { return Ok(Filtered::Unchanged(None)) };
    if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        if denied(state, tenant, requester, own, &value).await? {
            let what = format!(
                "{}/{}",
                value["resourceType"].as_str().unwrap_or("Resource"),
                value["id"].as_str().unwrap_or("?")
            );
            return Ok(Filtered::Denied(what));
        }
        return Ok(Filtered::Unchanged(Some(value)));
    }
    let Some(entries) = value.get_mut("entry").and_then(Value::as_array_mut) else {
        return Ok(Filtered::Unchanged(Some(value)));
    };
    let mut withheld = 0;
    let mut kept = Vec::with_capacity(entries.len());
    for mut entry in entries.drain(..) {
        let deny = match entry.get("resource") {
            Some(resource) => denied(state, tenant, requester, own, resource).await?,
            None => false,
        };
        if !deny {
            kept.push(entry);
        } else if entry.get("response").is_some() {
            // A batch or transaction answer keeps its status; only the content is withheld.
            if let Some(members) = entry.as_object_mut() {
                members.remove("resource");
            }
            kept.push(entry);
            withheld += 1;
        } else {
            withheld += 1;
        }
    }
    *entries = kept;
    if withheld == 0 {
        return Ok(Filtered::Unchanged(Some(value)));
    }
    if let Some(total) = value.get("total").and_then(Value::as_u64) {
        value["total"] = Value::from(total.saturating_sub(withheld));
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| FhirError::internal(e.to_string()))?;
    Ok(Filtered::Changed(bytes, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn consent(provision: Value) -> Value {
        json!({"resourceType": "Consent", "status": "active", "patient": {"reference": "Patient/p"}, "provision": provision})
    }

    fn nurse() -> Requester {
        Requester { actor: Some("Practitioner/nurse".into()), purpose: None }
    }

    #[test]
    fn a_deny_provision_names_who_what_and_why() {
        let rules = deny_rules(&consent(json!({
            "type": "permit",
            "provision": [{"type": "deny",
                "actor": [{"role": {"text": "x"}, "reference": {"reference": "Practitioner/nurse"}}],
                "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
                "purpose": [{"code": "HMARKT"}]}]
        })));
        assert_eq!(rules.len(), 1);
        let rule = &rules[0];
        let now = now_micros();
        assert!(rule.denies(&nurse(), "Observation", &[], now));
        assert!(!rule.denies(&nurse(), "Condition", &[], now), "another type");
        let doctor = Requester { actor: Some("Practitioner/doc".into()), purpose: None };
        assert!(!rule.denies(&doctor, "Observation", &[], now), "another actor");
        let treating = Requester { purpose: Some("TREAT".into()), ..nurse() };
        assert!(!rule.denies(&treating, "Observation", &[], now), "another stated purpose");
    }

    #[test]
    fn a_deny_all_may_except_actors_and_only_active_consents_count() {
        let provision = json!({"type": "deny", "provision": [{"type": "permit",
            "actor": [{"reference": {"reference": "Practitioner/gp"}}]}]});
        let rules = deny_rules(&consent(provision.clone()));
        let gp = Requester { actor: Some("Practitioner/gp".into()), purpose: None };
        assert!(rules[0].denies(&nurse(), "Patient", &[], now_micros()));
        assert!(!rules[0].denies(&gp, "Patient", &[], now_micros()));
        let mut inactive = consent(provision);
        inactive["status"] = json!("inactive");
        assert!(deny_rules(&inactive).is_empty());
    }

    #[test]
    fn labels_and_periods_bound_a_rule() {
        let rules = deny_rules(&consent(json!({"type": "deny",
            "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}],
            "period": {"start": "2020-01-01", "end": "2020-12-31"}})));
        let in_2020 = parse_range("2020-06-01").unwrap().0;
        assert!(rules[0].denies(&nurse(), "Observation", &["R".into()], in_2020));
        assert!(!rules[0].denies(&nurse(), "Observation", &[], in_2020), "unlabelled");
        assert!(!rules[0].denies(&nurse(), "Observation", &["R".into()], now_micros()), "after the period");
    }
}
