//! Consent <-> FHIR R4 Consent (http://hl7.org/fhir/R4/consent.html).
//!
//! scope -> `scope` (consentscope); categories -> `category`; patient; signed at ->
//! `dateTime`; signer -> `performer`; custodian -> `organization`; signed form ->
//! `sourceAttachment`; policy rule -> `policyRule` (consentpolicycodes); base decision ->
//! `provision.type`; each restriction -> a nested `provision` of type deny with `actor`
//! (role IRCP), `class` (resource types), `purpose` and `period`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{Code, Consent, ConsentRestriction, ConsentScope, ConsentState, ProvisionType, SignedForm};
use crate::emr::systems::{CONSENT_POLICY, CONSENT_SCOPE, RESOURCE_TYPES, V3_PARTICIPATION_TYPE};

const AT: &str = "Consent";

pub fn from_fhir(resource: &Value) -> Result<Consent, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Consent {
        id: read_id(obj)?,
        status: read_code(obj, "status", AT, ConsentState::parse)?.unwrap_or_default(),
        scope: read_scope(obj)?,
        categories: read_categories(obj)?,
        patient: read_reference(obj, "patient", AT)?,
        date_time: read_datetime(obj, "dateTime", AT)?,
        signer: read_first_reference(obj, "performer")?,
        organization: read_first_reference(obj, "organization")?,
        form: read_form(obj)?,
        policy_rule: read_policy_rule(obj)?,
        decision: read_decision(obj)?,
        restrictions: read_restrictions(obj)?,
        source,
    })
}

pub fn to_fhir(consent: &Consent) -> Value {
    let c = consent;
    let mut out = Overlay::new(&c.source, AT);
    out.field(&c.id, read_id, put_id);
    out.field(
        &c.status,
        |o| Ok(read_code(o, "status", AT, ConsentState::parse)?.unwrap_or_default()),
        |o, s| put_str(o, "status", Some(s.code())),
    );
    out.field(&c.scope, read_scope, |o, s| put_opt(o, "scope", s.map(|s| coded(CONSENT_SCOPE, s.code(), None))));
    out.field(&c.categories, read_categories, |o, v| put_categories(o, v));
    out.field(&c.patient, |o| read_reference(o, "patient", AT), |o, r| put_reference(o, "patient", r.as_deref()));
    out.field(&c.date_time, |o| read_datetime(o, "dateTime", AT), |o, t| put_datetime(o, "dateTime", t.as_ref()));
    out.field(&c.signer, |o| read_first_reference(o, "performer"), |o, r| put_first_reference(o, "performer", r));
    out.field(
        &c.organization,
        |o| read_first_reference(o, "organization"),
        |o, r| put_first_reference(o, "organization", r),
    );
    out.field(&c.form, read_form, put_form);
    out.field(&c.policy_rule, read_policy_rule, |o, p| {
        put_opt(o, "policyRule", p.as_deref().map(|p| coded(CONSENT_POLICY, p, None)))
    });
    out.field(&c.decision, read_decision, |o, d| {
        put_str(child(o, "provision"), "type", d.map(ProvisionType::code));
        tidy(o, "provision");
    });
    out.field(&c.restrictions, read_restrictions, |o, v| put_restrictions(o, v));
    out.finish()
}

fn read_scope(obj: &Object) -> Result<Option<ConsentScope>, MappingError> {
    let Some(concept) = opt_object(obj, "scope", AT)? else {
        return Ok(None);
    };
    let concept = Value::Object(concept.clone());
    match coding_code(&concept, CONSENT_SCOPE) {
        None => Ok(None),
        Some(code) => ConsentScope::parse(code)
            .map(Some)
            .ok_or_else(|| MappingError::invalid("Consent.scope", format!("unknown code `{code}`"))),
    }
}

fn read_code_of(concept: &Value) -> Option<Code> {
    let first = items(concept, "coding").first()?;
    Some(Code { system: str_of(first, "system").map(str::to_owned), code: str_of(first, "code")?.to_owned() })
}

fn coding_of(code: &Code) -> Value {
    let mut c = Object::new();
    if let Some(system) = &code.system {
        c.insert("system".into(), system.as_str().into());
    }
    c.insert("code".into(), code.code.as_str().into());
    Value::Object(c)
}

fn read_categories(obj: &Object) -> Result<Vec<Code>, MappingError> {
    Ok(list(obj, "category", AT)?.iter().filter_map(read_code_of).collect())
}

fn put_categories(obj: &mut Object, categories: &[Code]) {
    let concept = |c: &Code| object(vec![("coding", Value::Array(vec![coding_of(c)]))]);
    overlay_list(
        obj,
        "category",
        |_| true,
        categories,
        |v, c| read_code_of(v).as_ref() == Some(c),
        |v, c| *v = concept(c),
        concept,
    );
}

fn read_first_reference(obj: &Object, key: &str) -> Result<Option<String>, MappingError> {
    Ok(list(obj, key, AT)?.first().and_then(reference_of))
}

fn put_first_reference(obj: &mut Object, key: &str, target: &Option<String>) {
    overlay_one(
        obj,
        key,
        |_| true,
        |_| true,
        target.as_ref(),
        |r, t| put_str(object_mut(r), "reference", Some(t)),
        |t| reference(t),
    );
}

fn read_form(obj: &Object) -> Result<Option<SignedForm>, MappingError> {
    let Some(a) = opt_object(obj, "sourceAttachment", AT)? else {
        return Ok(None);
    };
    let at = "Consent.sourceAttachment";
    Ok(Some(SignedForm {
        url: opt_string(a, "url", at)?,
        content_type: opt_string(a, "contentType", at)?,
        title: opt_string(a, "title", at)?,
        creation: opt_string(a, "creation", at)?,
    }))
}

fn put_form(obj: &mut Object, form: &Option<SignedForm>) {
    let Some(form) = form else {
        remove(obj, "sourceAttachment");
        return;
    };
    let a = child(obj, "sourceAttachment");
    put_str(a, "contentType", form.content_type.as_deref());
    put_str(a, "url", form.url.as_deref());
    put_str(a, "title", form.title.as_deref());
    put_str(a, "creation", form.creation.as_deref());
    tidy(obj, "sourceAttachment");
}

fn read_policy_rule(obj: &Object) -> Result<Option<String>, MappingError> {
    Ok(opt_object(obj, "policyRule", AT)?
        .and_then(|cc| coding_code(&Value::Object(cc.clone()), CONSENT_POLICY).map(str::to_owned)))
}

fn provision(obj: &Object) -> Result<Option<&Object>, MappingError> {
    opt_object(obj, "provision", AT)
}

fn read_decision(obj: &Object) -> Result<Option<ProvisionType>, MappingError> {
    match provision(obj)? {
        None => Ok(None),
        Some(p) => read_code(p, "type", "Consent.provision", ProvisionType::parse),
    }
}

fn is_denial(p: &Value) -> bool {
    str_of(p, "type") == Some("deny")
}

fn read_restriction(value: &Value, at: &str) -> Result<ConsentRestriction, MappingError> {
    let p = as_object(value, at)?;
    Ok(ConsentRestriction {
        actors: list(p, "actor", at)?.iter().filter_map(|a| a.get("reference").and_then(reference_of)).collect(),
        data_classes: list(p, "class", at)?.iter().filter_map(|c| str_of(c, "code").map(str::to_owned)).collect(),
        purposes: list(p, "purpose", at)?
            .iter()
            .filter_map(|c| {
                Some(Code { system: str_of(c, "system").map(str::to_owned), code: str_of(c, "code")?.to_owned() })
            })
            .collect(),
        period: read_period(p, "period", at)?,
    })
}

fn read_restrictions(obj: &Object) -> Result<Vec<ConsentRestriction>, MappingError> {
    let Some(p) = provision(obj)? else {
        return Ok(Vec::new());
    };
    list(p, "provision", "Consent.provision")?
        .iter()
        .enumerate()
        .filter(|(_, n)| is_denial(n))
        .map(|(i, n)| read_restriction(n, &format!("Consent.provision.provision[{i}]")))
        .collect()
}

fn write_restriction(value: &mut Value, wanted: &ConsentRestriction) {
    let p = object_mut(value);
    put_str(p, "type", Some("deny"));
    put_period(p, "period", &wanted.period);
    overlay_list(
        p,
        "actor",
        |_| true,
        &wanted.actors,
        |a, r| a.get("reference").and_then(reference_of).as_ref() == Some(r),
        |a, r| put_reference(object_mut(a), "reference", Some(r)),
        |r| {
            object(vec![
                ("role", coded(V3_PARTICIPATION_TYPE, "IRCP", Some("information recipient"))),
                ("reference", reference(r)),
            ])
        },
    );
    overlay_list(
        p,
        "purpose",
        |_| true,
        &wanted.purposes,
        |c, code| str_of(c, "code") == Some(&code.code) && str_of(c, "system") == code.system.as_deref(),
        |c, code| *c = coding_of(code),
        coding_of,
    );
    overlay_list(
        p,
        "class",
        |_| true,
        &wanted.data_classes,
        |c, class| str_of(c, "code") == Some(class),
        |c, class| *c = coding(RESOURCE_TYPES, class, None),
        |class| coding(RESOURCE_TYPES, class, None),
    );
}

fn put_restrictions(obj: &mut Object, restrictions: &[ConsentRestriction]) {
    let p = child(obj, "provision");
    overlay_list(
        p,
        "provision",
        is_denial,
        restrictions,
        |v, r| read_restriction(v, "").ok().as_ref() == Some(r),
        write_restriction,
        |r| {
            let mut v = Value::Object(Object::new());
            write_restriction(&mut v, r);
            v
        },
    );
    tidy(obj, "provision");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{FhirDateTime, Period};
    use crate::emr::systems::V3_ACT_REASON;
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Consent",
            "id": "consent-1",
            "meta": {"versionId": "1", "lastUpdated": "2024-03-01T00:00:00Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Withhold labs from Dr Bad</div>"},
            "extension": [{"url": "http://example.org/witness", "valueString": "Front desk"}],
            "identifier": [{"system": "http://example.org/consents", "value": "C-1"}],
            "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [
                {"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]},
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "INFA"}]}
            ],
            "patient": {"reference": "Patient/pat-1"},
            "dateTime": "2024-03-01T10:00:00-06:00",
            "performer": [{"reference": "Patient/pat-1"}],
            "organization": [{"reference": "Organization/clinic-1"}],
            "sourceAttachment": {"contentType": "application/pdf", "url": "Binary/form-1", "title": "HIPAA restriction request", "creation": "2024-03-01", "hash": "2jmj7l5rSw0yVb/vlWAYkK/YBwk="},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentpolicycodes", "code": "hipaa-restrictions"}]},
            "verification": [{"verified": true, "verifiedWith": {"reference": "Patient/pat-1"}}],
            "provision": {
                "type": "permit",
                "period": {"start": "2024-03-01"},
                "provision": [
                    {"type": "deny",
                     "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]}, "reference": {"reference": "Practitioner/dr-bad"}}],
                     "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
                     "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}, {"system": "http://hl7.org/fhir/resource-types", "code": "DiagnosticReport"}],
                     "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HMARKT"}],
                     "period": {"start": "2024-03-01", "end": "2025-03-01"}},
                    {"type": "permit", "actor": [{"role": {"text": "GP"}, "reference": {"reference": "Practitioner/dr-1"}}]}
                ]
            }
        })
    }

    #[test]
    fn realistic_consent_is_lossless() {
        let c = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(c.scope, Some(ConsentScope::PatientPrivacy));
        assert_eq!(c.policy_rule.as_deref(), Some("hipaa-restrictions"));
        assert_eq!(c.decision, Some(ProvisionType::Permit));
        assert_eq!(c.restrictions.len(), 1);
        let r = &c.restrictions[0];
        assert_eq!(r.actors, vec!["Practitioner/dr-bad".to_owned()]);
        assert_eq!(r.data_classes, vec!["Observation".to_owned(), "DiagnosticReport".to_owned()]);
        assert_eq!(r.purposes, vec![Code::new(V3_ACT_REASON, "HMARKT")]);
        assert_eq!(r.period.end.as_ref().unwrap().as_str(), "2025-03-01");
        assert_eq!(c.form.as_ref().unwrap().url.as_deref(), Some("Binary/form-1"));
    }

    #[test]
    fn seed_consents_round_trip() {
        let treatment = Consent {
            status: ConsentState::Active,
            scope: Some(ConsentScope::Treatment),
            categories: vec![Code::new("http://loinc.org", "59284-0")],
            patient: Some("Patient/p1".into()),
            date_time: Some(FhirDateTime::parse("2024-01-01T09:00:00Z").unwrap()),
            signer: Some("Patient/p1".into()),
            organization: Some("Organization/c1".into()),
            form: Some(SignedForm {
                url: Some("Binary/f1".into()),
                content_type: Some("application/pdf".into()),
                title: Some("Consent for treatment".into()),
                creation: None,
            }),
            policy_rule: Some("cric".into()),
            decision: Some(ProvisionType::Permit),
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&treatment, to_fhir, from_fhir, |c| c.source = Default::default());
        assert_eq!(fhir["scope"]["coding"][0]["code"], "treatment");
        assert_eq!(fhir["provision"], json!({"type": "permit"}));

        let restriction = Consent {
            scope: Some(ConsentScope::PatientPrivacy),
            patient: Some("Patient/p1".into()),
            policy_rule: Some("hipaa-restrictions".into()),
            decision: Some(ProvisionType::Permit),
            restrictions: vec![ConsentRestriction {
                actors: vec!["Organization/insurer".into()],
                data_classes: vec!["Condition".into()],
                purposes: vec![Code::new(V3_ACT_REASON, "HPAYMT")],
                period: Period { start: Some(FhirDateTime::parse("2024-01-01").unwrap()), end: None },
            }],
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&restriction, to_fhir, from_fhir, |c| c.source = Default::default());
        let deny = &fhir["provision"]["provision"][0];
        assert_eq!(deny["type"], "deny");
        assert_eq!(deny["actor"][0]["role"]["coding"][0]["code"], "IRCP");
        assert_eq!(deny["class"][0], json!({"system": RESOURCE_TYPES, "code": "Condition"}));
    }

    #[test]
    fn adding_a_restriction_keeps_permits_and_existing_denials() {
        let original = realistic();
        let mut c = from_fhir(&original).unwrap();
        c.restrictions
            .push(ConsentRestriction { data_classes: vec!["DocumentReference".into()], ..Default::default() });
        let out = to_fhir(&c);
        let nested = out["provision"]["provision"].as_array().unwrap();
        assert_eq!(nested.len(), 3);
        assert_eq!(nested[0], original["provision"]["provision"][0]);
        assert_eq!(nested[1], original["provision"]["provision"][1]);
        assert_eq!(
            nested[2],
            json!({"type": "deny", "class": [{"system": RESOURCE_TYPES, "code": "DocumentReference"}]})
        );
    }
}
