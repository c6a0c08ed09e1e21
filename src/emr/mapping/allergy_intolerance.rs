//! Allergy <-> FHIR R4 AllergyIntolerance (http://hl7.org/fhir/R4/allergyintolerance.html).
//!
//! allergen -> `code`; drug/food/environmental -> `category` medication/food/environment;
//! is_active -> `clinicalStatus` active/inactive (absent reads as active; resolved reads as
//! inactive); reaction -> `reaction[0].manifestation` with its `severity`; a reaction's severity
//! also sets `criticality` (severe -> high, otherwise low).

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{Allergy, AllergyCategory, AllergyReaction, AllergySeverity};
use crate::emr::systems::ALLERGY_CLINICAL;

const AT: &str = "AllergyIntolerance";

pub fn from_fhir(resource: &Value) -> Result<Allergy, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Allergy {
        id: read_id(obj)?,
        is_active: read_is_active(obj)?,
        category: read_category(obj)?,
        allergen: read_concept_text(obj, "code", AT)?,
        patient: read_reference(obj, "patient", AT)?,
        reaction: read_reaction(obj)?,
        source,
    })
}

pub fn to_fhir(allergy: &Allergy) -> Value {
    let mut out = Overlay::new(&allergy.source, AT);
    out.field(&allergy.id, read_id, put_id);
    out.field(&allergy.is_active, read_is_active, |o, active| {
        let code = if *active { "active" } else { "inactive" };
        put(o, "clinicalStatus", coded(ALLERGY_CLINICAL, code, None));
    });
    out.field(&allergy.category, read_category, put_category);
    out.field(
        &allergy.allergen,
        |o| read_concept_text(o, "code", AT),
        |o, a| put_concept_text(o, "code", a.as_deref()),
    );
    out.field(&allergy.patient, |o| read_reference(o, "patient", AT), |o, r| put_reference(o, "patient", r.as_deref()));
    out.field(&allergy.reaction, read_reaction, put_reaction);
    out.finish()
}

fn read_is_active(obj: &Object) -> Result<bool, MappingError> {
    let Some(concept) = opt_object(obj, "clinicalStatus", AT)? else {
        return Ok(true);
    };
    match coding_code(&Value::Object(concept.clone()), ALLERGY_CLINICAL) {
        Some("active") => Ok(true),
        Some("inactive" | "resolved") => Ok(false),
        other => Err(MappingError::invalid(
            "AllergyIntolerance.clinicalStatus",
            format!("unknown code `{}`", other.unwrap_or("(none)")),
        )),
    }
}

fn category_code(category: AllergyCategory) -> &'static str {
    match category {
        AllergyCategory::Drug => "medication",
        AllergyCategory::Food => "food",
        AllergyCategory::Environmental => "environment",
        AllergyCategory::Biologic => "biologic",
    }
}

fn read_category(obj: &Object) -> Result<Option<AllergyCategory>, MappingError> {
    let Some(first) = list(obj, "category", AT)?.first() else {
        return Ok(None);
    };
    let code = first.as_str().unwrap_or_default();
    AllergyCategory::ALL
        .iter()
        .copied()
        .find(|c| category_code(*c) == code)
        .map(Some)
        .ok_or_else(|| MappingError::invalid("AllergyIntolerance.category[0]", format!("unknown code `{code}`")))
}

fn put_category(obj: &mut Object, category: &Option<AllergyCategory>) {
    overlay_one(
        obj,
        "category",
        |_| true,
        |_| true,
        category.as_ref(),
        |v, c| *v = category_code(*c).into(),
        |c| category_code(*c).into(),
    );
}

fn read_reaction(obj: &Object) -> Result<Option<AllergyReaction>, MappingError> {
    let Some(first) = list(obj, "reaction", AT)?.first() else {
        return Ok(None);
    };
    let at = "AllergyIntolerance.reaction[0]";
    let reaction = as_object(first, at)?;
    Ok(Some(AllergyReaction {
        manifestation: read_first_concept_text(reaction, "manifestation", at)?.unwrap_or_default(),
        severity: read_code(reaction, "severity", at, AllergySeverity::parse)?,
    }))
}

fn write_reaction(value: &mut Value, wanted: &AllergyReaction) {
    let r = object_mut(value);
    put_first_concept_text(r, "manifestation", Some(&wanted.manifestation));
    put_str(r, "severity", wanted.severity.map(AllergySeverity::code));
}

fn put_reaction(obj: &mut Object, reaction: &Option<AllergyReaction>) {
    overlay_one(
        obj,
        "reaction",
        |_| true,
        |_| true,
        reaction.as_ref(),
        write_reaction,
        |r| {
            let mut v = Value::Object(Object::new());
            write_reaction(&mut v, r);
            v
        },
    );
    let criticality = reaction.as_ref().and_then(|r| r.severity).map(|s| match s {
        AllergySeverity::Severe => "high",
        AllergySeverity::Mild | AllergySeverity::Moderate => "low",
    });
    if criticality.is_some() || reaction.is_none() {
        put_str(obj, "criticality", criticality);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "AllergyIntolerance",
            "id": "al-1",
            "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Penicillin</div>"},
            "extension": [{"url": "http://example.org/source-system", "valueString": "legacy"}],
            "identifier": [{"system": "http://acme.com/ids/patients/risks", "value": "49476534"}],
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "code": "active", "display": "Active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "code": "confirmed"}]},
            "type": "allergy",
            "category": ["medication"],
            "criticality": "high",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980", "display": "Penicillin G"}], "text": "Penicillin"},
            "patient": {"reference": "Patient/pat-1"},
            "onsetDateTime": "2004",
            "recordedDate": "2014-10-09T14:58:00+11:00",
            "recorder": {"reference": "Practitioner/dr-1"},
            "reaction": [
                {"substance": {"text": "Penicillin G"},
                 "manifestation": [{"coding": [{"system": "http://snomed.info/sct", "code": "247472004", "display": "Hives"}]}, {"text": "Wheezing"}],
                 "onset": "2004", "severity": "severe", "exposureRoute": {"text": "Oral"}},
                {"manifestation": [{"text": "Rash"}], "severity": "mild"}
            ]
        })
    }

    #[test]
    fn realistic_allergy_is_lossless() {
        let a = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert!(a.is_active);
        assert_eq!(a.category, Some(AllergyCategory::Drug));
        assert_eq!(a.allergen.as_deref(), Some("Penicillin"));
        assert_eq!(
            a.reaction,
            Some(AllergyReaction { manifestation: "Hives".into(), severity: Some(AllergySeverity::Severe) })
        );
    }

    #[test]
    fn seed_allergy_round_trips() {
        for (category, code) in [
            (AllergyCategory::Drug, "medication"),
            (AllergyCategory::Food, "food"),
            (AllergyCategory::Environmental, "environment"),
        ] {
            let seed = Allergy {
                is_active: false,
                category: Some(category),
                allergen: Some("Peanuts".into()),
                patient: Some("Patient/p1".into()),
                reaction: Some(AllergyReaction {
                    manifestation: "Anaphylaxis".into(),
                    severity: Some(AllergySeverity::Severe),
                }),
                ..Default::default()
            };
            let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |a| a.source = Default::default());
            assert_eq!(fhir["category"], json!([code]));
            assert_eq!(fhir["clinicalStatus"]["coding"][0]["code"], "inactive");
            assert_eq!(fhir["criticality"], "high");
            assert_eq!(fhir["reaction"][0], json!({"manifestation": [{"text": "Anaphylaxis"}], "severity": "severe"}));
        }
    }

    #[test]
    fn changing_severity_updates_criticality_and_keeps_the_reaction() {
        let original = realistic();
        let mut a = from_fhir(&original).unwrap();
        a.reaction.as_mut().unwrap().severity = Some(AllergySeverity::Moderate);
        let out = to_fhir(&a);
        assert_eq!(out["criticality"], "low");
        assert_eq!(out["reaction"][0]["severity"], "moderate");
        assert_eq!(out["reaction"][0]["manifestation"], original["reaction"][0]["manifestation"]);
        assert_eq!(out["reaction"][1], original["reaction"][1]);
    }

    #[test]
    fn absent_status_reads_active_and_unknown_category_is_refused() {
        let mut r = realistic();
        r.as_object_mut().unwrap().remove("clinicalStatus");
        assert!(from_fhir(&r).unwrap().is_active);
        r["category"] = json!(["drug"]);
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("AllergyIntolerance.category[0]"));
    }
}
