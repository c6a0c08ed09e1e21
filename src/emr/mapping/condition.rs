//! Problem <-> FHIR R4 Condition (http://hl7.org/fhir/R4/condition.html).
//!
//! description + ICD-10 -> `code` (text + coding in `http://hl7.org/fhir/sid/icd-10-cm`);
//! status active/resolved/in_remission -> `clinicalStatus` active/resolved/remission, chronic
//! -> `active` plus the Kiln `emr-status` extension; category -> `problem-list-item` or
//! `encounter-diagnosis`; severity -> `severity` (SNOMED); onset/resolved ->
//! `onsetDateTime`/`abatementDateTime`; diagnosis date -> `recordedDate`; visit ->
//! `encounter`; diagnosed_by -> `recorder` and `asserter`; notes -> `note`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{ConditionCategory, Icd10Code, Problem, ProblemStatus, Severity};
use crate::emr::systems::{CONDITION_CATEGORY, CONDITION_CLINICAL, ICD10_CM, SNOMED};

const AT: &str = "Condition";

pub fn from_fhir(resource: &Value) -> Result<Problem, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    let (description, icd10) = read_code_field(obj)?;
    Ok(Problem {
        id: read_id(obj)?,
        status: read_status(obj)?,
        category: read_category(obj)?,
        severity: read_severity(obj)?,
        description,
        icd10,
        patient: read_reference(obj, "subject", AT)?,
        encounter: read_reference(obj, "encounter", AT)?,
        onset: read_datetime(obj, "onsetDateTime", AT)?,
        resolved: read_datetime(obj, "abatementDateTime", AT)?,
        recorded: read_datetime(obj, "recordedDate", AT)?,
        diagnosed_by: read_diagnosed_by(obj)?,
        notes: read_note(obj, AT)?,
        source,
    })
}

pub fn to_fhir(problem: &Problem) -> Value {
    let mut out = Overlay::new(&problem.source, AT);
    out.field(&problem.id, read_id, put_id);
    out.field(&problem.status, read_status, put_status);
    out.field(&problem.category, read_category, put_category);
    out.field(&problem.severity, read_severity, |o, s| {
        put_opt(
            o,
            "severity",
            s.map(|s| {
                let (code, display) = severity_code(s);
                coded(SNOMED, code, Some(display))
            }),
        )
    });
    out.field(&(problem.description.clone(), problem.icd10.clone()), read_code_field, |o, (d, c)| {
        put_labelled_code(o, "code", ICD10_CM, d.as_deref(), c.as_ref().map(Icd10Code::as_str))
    });
    out.field(&problem.patient, |o| read_reference(o, "subject", AT), |o, r| put_reference(o, "subject", r.as_deref()));
    out.field(
        &problem.encounter,
        |o| read_reference(o, "encounter", AT),
        |o, r| put_reference(o, "encounter", r.as_deref()),
    );
    out.field(
        &problem.onset,
        |o| read_datetime(o, "onsetDateTime", AT),
        |o, t| put_datetime(o, "onsetDateTime", t.as_ref()),
    );
    out.field(
        &problem.resolved,
        |o| read_datetime(o, "abatementDateTime", AT),
        |o, t| put_datetime(o, "abatementDateTime", t.as_ref()),
    );
    out.field(
        &problem.recorded,
        |o| read_datetime(o, "recordedDate", AT),
        |o, t| put_datetime(o, "recordedDate", t.as_ref()),
    );
    out.field(&problem.diagnosed_by, read_diagnosed_by, |o, r| {
        put_reference(o, "recorder", r.as_deref());
        put_reference(o, "asserter", r.as_deref());
    });
    out.field(&problem.notes, |o| read_note(o, AT), |o, n| put_note(o, n.as_deref()));
    out.finish()
}

fn status_code(status: ProblemStatus) -> &'static str {
    match status {
        ProblemStatus::Active | ProblemStatus::Chronic => "active",
        ProblemStatus::Recurrence => "recurrence",
        ProblemStatus::Relapse => "relapse",
        ProblemStatus::Inactive => "inactive",
        ProblemStatus::InRemission => "remission",
        ProblemStatus::Resolved => "resolved",
    }
}

fn read_status(obj: &Object) -> Result<Option<ProblemStatus>, MappingError> {
    let Some(concept) = opt_object(obj, "clinicalStatus", AT)? else {
        return Ok(None);
    };
    let code = coding_code(&Value::Object(concept.clone()), CONDITION_CLINICAL)
        .map(str::to_owned)
        .ok_or_else(|| MappingError::missing("Condition.clinicalStatus.coding.code"))?;
    if code == "active" && read_emr_status(obj) == Some("chronic") {
        return Ok(Some(ProblemStatus::Chronic));
    }
    ProblemStatus::ALL
        .iter()
        .copied()
        .find(|s| *s != ProblemStatus::Chronic && status_code(*s) == code)
        .map(Some)
        .ok_or_else(|| MappingError::invalid("Condition.clinicalStatus", format!("unknown code `{code}`")))
}

fn put_status(obj: &mut Object, status: &Option<ProblemStatus>) {
    let chronic = *status == Some(ProblemStatus::Chronic);
    put_emr_status(obj, chronic.then_some("chronic"));
    put_opt(obj, "clinicalStatus", status.map(|s| coded(CONDITION_CLINICAL, status_code(s), None)));
}

fn category_of(concept: &Value) -> Option<ConditionCategory> {
    coding_code(concept, CONDITION_CATEGORY).and_then(ConditionCategory::parse)
}

/// Other categories (US Core `health-concern`...) read as `None` and stay in the source.
fn read_category(obj: &Object) -> Result<Option<ConditionCategory>, MappingError> {
    Ok(list(obj, "category", AT)?.iter().find_map(category_of))
}

fn put_category(obj: &mut Object, category: &Option<ConditionCategory>) {
    let concept = |c: &ConditionCategory| {
        let display = match c {
            ConditionCategory::ProblemListItem => "Problem List Item",
            ConditionCategory::EncounterDiagnosis => "Encounter Diagnosis",
        };
        coded(CONDITION_CATEGORY, c.code(), Some(display))
    };
    overlay_one(
        obj,
        "category",
        |c| category_of(c).is_some(),
        |_| true,
        category.as_ref(),
        |v, c| *v = concept(c),
        concept,
    );
}

fn severity_code(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Mild => ("255604002", "Mild"),
        Severity::Moderate => ("6736007", "Moderate"),
        Severity::Severe => ("24484000", "Severe"),
        Severity::Critical => ("442452003", "Life threatening severity"),
    }
}

/// SNOMED severity codes, else a text naming a seed severity; anything else reads as `None`.
fn read_severity(obj: &Object) -> Result<Option<Severity>, MappingError> {
    let Some(concept) = opt_object(obj, "severity", AT)? else {
        return Ok(None);
    };
    let concept = Value::Object(concept.clone());
    let by_code = coding_code(&concept, SNOMED)
        .and_then(|code| Severity::ALL.iter().copied().find(|s| severity_code(*s).0 == code));
    Ok(by_code.or_else(|| str_of(&concept, "text").and_then(|t| Severity::parse(&t.to_ascii_lowercase()))))
}

fn read_code_field(obj: &Object) -> Result<(Option<String>, Option<Icd10Code>), MappingError> {
    let (description, code) = read_labelled_code(obj, "code", ICD10_CM, AT)?;
    let icd10 = code
        .map(|c| Icd10Code::parse(&c).map_err(|e| MappingError::invalid("Condition.code.coding.code", e.to_string())))
        .transpose()?;
    Ok((description, icd10))
}

fn read_diagnosed_by(obj: &Object) -> Result<Option<String>, MappingError> {
    match read_reference(obj, "recorder", AT)? {
        Some(r) => Ok(Some(r)),
        None => read_reference(obj, "asserter", AT),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::FhirDateTime;
    use crate::emr::systems::KILN_EMR_STATUS_EXT;
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Condition",
            "id": "c-1",
            "meta": {"versionId": "1", "lastUpdated": "2024-02-02T00:00:00Z", "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-problems-health-concerns"]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Type 2 diabetes</div>"},
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/condition-assertedDate", "valueDateTime": "2019-03-01"},
                {"url": "https://kiln.example.org/fhir/StructureDefinition/emr-status", "valueCode": "chronic"}
            ],
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active", "display": "Active"}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}]},
            "category": [
                {"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/condition-category", "code": "health-concern"}]},
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item", "display": "Problem List Item"}]}
            ],
            "severity": {"coding": [{"system": "http://snomed.info/sct", "code": "6736007", "display": "Moderate"}]},
            "code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9", "display": "Type 2 diabetes mellitus without complications"}
            ], "text": "Type 2 diabetes"},
            "bodySite": [{"text": "Pancreas"}],
            "subject": {"reference": "Patient/pat-1"},
            "encounter": {"reference": "Encounter/enc-1"},
            "onsetDateTime": "2019-02",
            "recordedDate": "2019-03-01",
            "recorder": {"reference": "Practitioner/dr-1"},
            "asserter": {"reference": "Practitioner/dr-1"},
            "evidence": [{"detail": [{"reference": "Observation/lab-1"}]}],
            "note": [{"text": "Diet-controlled until 2021"}]
        })
    }

    #[test]
    fn realistic_condition_is_lossless() {
        let p = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(p.status, Some(ProblemStatus::Chronic));
        assert_eq!(p.category, Some(ConditionCategory::ProblemListItem));
        assert_eq!(p.severity, Some(Severity::Moderate));
        assert_eq!(p.description.as_deref(), Some("Type 2 diabetes"));
        assert_eq!(p.icd10.as_ref().map(Icd10Code::as_str), Some("E11.9"));
        assert_eq!(p.onset.as_ref().map(FhirDateTime::as_str), Some("2019-02"));
        assert_eq!(p.diagnosed_by.as_deref(), Some("Practitioner/dr-1"));
    }

    #[test]
    fn every_status_round_trips_and_chronic_needs_the_extension() {
        for status in ProblemStatus::ALL {
            let p = Problem { status: Some(*status), ..Default::default() };
            let fhir = assert_model_round_trip(&p, to_fhir, from_fhir, |p| p.source = Default::default());
            assert_eq!(fhir["clinicalStatus"]["coding"][0]["system"], CONDITION_CLINICAL);
        }
        let mut p = from_fhir(&realistic()).unwrap();
        p.status = Some(ProblemStatus::Resolved);
        p.resolved = Some(FhirDateTime::parse("2024-01-01").unwrap());
        let out = to_fhir(&p);
        assert_eq!(out["clinicalStatus"]["coding"][0]["code"], "resolved");
        assert_eq!(out["abatementDateTime"], "2024-01-01");
        assert!(out["extension"].as_array().unwrap().iter().all(|e| e["url"] != KILN_EMR_STATUS_EXT));
    }

    #[test]
    fn seed_problem_round_trips() {
        let seed = Problem {
            status: Some(ProblemStatus::InRemission),
            category: Some(ConditionCategory::ProblemListItem),
            severity: Some(Severity::Critical),
            description: Some("Asthma".into()),
            icd10: Some(Icd10Code::parse("J45.909").unwrap()),
            patient: Some("Patient/p1".into()),
            encounter: Some("Encounter/e1".into()),
            onset: Some(FhirDateTime::parse("2010-05-01").unwrap()),
            recorded: Some(FhirDateTime::parse("2010-05-02").unwrap()),
            diagnosed_by: Some("Practitioner/d1".into()),
            notes: Some("Inhaler".into()),
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |p| p.source = Default::default());
        assert_eq!(fhir["code"], json!({"coding": [{"system": ICD10_CM, "code": "J45.909"}], "text": "Asthma"}));
        assert_eq!(fhir["clinicalStatus"]["coding"][0]["code"], "remission");
        assert_eq!(fhir["category"][0]["coding"][0]["code"], "problem-list-item");
        assert_eq!(fhir["recorder"], fhir["asserter"]);
    }

    #[test]
    fn changing_the_icd10_code_keeps_the_snomed_coding() {
        let original = realistic();
        let mut p = from_fhir(&original).unwrap();
        p.icd10 = Some(Icd10Code::parse("E11.65").unwrap());
        let out = to_fhir(&p);
        assert_eq!(out["code"]["coding"][0], original["code"]["coding"][0]);
        assert_eq!(out["code"]["coding"][1], json!({"system": ICD10_CM, "code": "E11.65"}));
        assert_eq!(out["code"]["text"], "Type 2 diabetes");
    }

    #[test]
    fn malformed_icd10_is_refused() {
        let mut r = realistic();
        r["code"]["coding"][1]["code"] = json!("diabetes");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Condition.code.coding.code"));
    }
}
