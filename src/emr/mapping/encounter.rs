//! Encounter <-> FHIR R4 Encounter (http://hl7.org/fhir/R4/encounter.html).
//!
//! status: draft -> `planned`, in_progress -> `in-progress`, completed/signed/amended ->
//! `finished` (signed and amended also carry the Kiln `emr-status` extension, so the lock
//! survives), cancelled -> `cancelled`, entered_in_error -> `entered-in-error`; class ->
//! `class` (v3 ActCode AMB/EMER/IMP...); visit type -> `type` (Kiln visit-type code);
//! specialty -> `serviceType`; patient -> `subject`; provider -> the primary-performer
//! `participant`; appointment -> `appointment`; date/time -> `period`; chief complaint ->
//! `reasonCode`; diagnoses -> `diagnosis.condition`; clinic -> `serviceProvider`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{Encounter, EncounterClass, EncounterStatus, VisitType};
use crate::emr::systems::{KILN_VISIT_TYPE, V3_ACT_CODE, V3_PARTICIPATION_TYPE};

const AT: &str = "Encounter";

pub fn from_fhir(resource: &Value) -> Result<Encounter, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Encounter {
        id: read_id(obj)?,
        status: read_status(obj)?,
        class: read_class(obj)?,
        visit_type: read_visit_type(obj)?,
        specialty: read_concept_text(obj, "serviceType", AT)?,
        patient: read_reference(obj, "subject", AT)?,
        provider: read_provider(obj)?,
        appointment: read_appointment(obj)?,
        period: read_period(obj, "period", AT)?,
        chief_complaint: read_first_concept_text(obj, "reasonCode", AT)?,
        diagnoses: read_diagnoses(obj)?,
        clinic: read_reference(obj, "serviceProvider", AT)?,
        source,
    })
}

pub fn to_fhir(encounter: &Encounter) -> Value {
    let mut out = Overlay::new(&encounter.source, AT);
    out.field(&encounter.id, read_id, put_id);
    out.field(&encounter.status, read_status, put_status);
    out.field(&encounter.class, read_class, |o, c| {
        put_opt(o, "class", c.map(|c| coding(V3_ACT_CODE, c.code(), Some(class_display(c)))))
    });
    out.field(&encounter.visit_type, read_visit_type, put_visit_type);
    out.field(
        &encounter.specialty,
        |o| read_concept_text(o, "serviceType", AT),
        |o, s| put_concept_text(o, "serviceType", s.as_deref()),
    );
    out.field(
        &encounter.patient,
        |o| read_reference(o, "subject", AT),
        |o, r| put_reference(o, "subject", r.as_deref()),
    );
    out.field(&encounter.provider, read_provider, put_provider);
    out.field(&encounter.appointment, read_appointment, |o, a| {
        overlay_one(
            o,
            "appointment",
            |_| true,
            |_| true,
            a.as_ref(),
            |r, a| put_str(object_mut(r), "reference", Some(a)),
            |a| reference(a),
        )
    });
    out.field(&encounter.period, |o| read_period(o, "period", AT), |o, p| put_period(o, "period", p));
    out.field(
        &encounter.chief_complaint,
        |o| read_first_concept_text(o, "reasonCode", AT),
        |o, c| put_first_concept_text(o, "reasonCode", c.as_deref()),
    );
    out.field(&encounter.diagnoses, read_diagnoses, |o, v| put_diagnoses(o, v));
    out.field(
        &encounter.clinic,
        |o| read_reference(o, "serviceProvider", AT),
        |o, r| put_reference(o, "serviceProvider", r.as_deref()),
    );
    out.finish()
}

/// The FHIR `Encounter.status` code of a model status.
pub fn status_code(status: EncounterStatus) -> &'static str {
    match status {
        EncounterStatus::Draft => "planned",
        EncounterStatus::Arrived => "arrived",
        EncounterStatus::Triaged => "triaged",
        EncounterStatus::InProgress => "in-progress",
        EncounterStatus::OnLeave => "onleave",
        EncounterStatus::Completed | EncounterStatus::Signed | EncounterStatus::Amended => "finished",
        EncounterStatus::Cancelled => "cancelled",
        EncounterStatus::EnteredInError => "entered-in-error",
        EncounterStatus::Unknown => "unknown",
    }
}

/// The model status of an Encounter resource (reads the `emr-status` extension beside a
/// `finished` status). `None` when the status is absent or not an R4 code.
pub fn status_of(resource: &Value) -> Option<EncounterStatus> {
    resource.as_object().and_then(|o| read_status(o).ok())
}

fn read_status(obj: &Object) -> Result<EncounterStatus, MappingError> {
    let code = opt_string(obj, "status", AT)?.ok_or_else(|| MappingError::missing("Encounter.status"))?;
    let status = match code.as_str() {
        "planned" => EncounterStatus::Draft,
        "arrived" => EncounterStatus::Arrived,
        "triaged" => EncounterStatus::Triaged,
        "in-progress" => EncounterStatus::InProgress,
        "onleave" => EncounterStatus::OnLeave,
        "finished" => match read_emr_status(obj) {
            Some("signed") => EncounterStatus::Signed,
            Some("amended") => EncounterStatus::Amended,
            _ => EncounterStatus::Completed,
        },
        "cancelled" => EncounterStatus::Cancelled,
        "entered-in-error" => EncounterStatus::EnteredInError,
        "unknown" => EncounterStatus::Unknown,
        other => {
            return Err(MappingError::invalid("Encounter.status", format!("unknown code `{other}`")));
        }
    };
    Ok(status)
}

fn put_status(obj: &mut Object, status: &EncounterStatus) {
    let marker = match status {
        EncounterStatus::Signed | EncounterStatus::Amended => Some(status.code()),
        _ => None,
    };
    put_emr_status(obj, marker);
    put_str(obj, "status", Some(status_code(*status)));
}

fn class_display(class: EncounterClass) -> &'static str {
    match class {
        EncounterClass::Ambulatory => "ambulatory",
        EncounterClass::Emergency => "emergency",
        EncounterClass::Inpatient => "inpatient encounter",
        EncounterClass::InpatientAcute => "inpatient acute",
        EncounterClass::InpatientNonAcute => "inpatient non-acute",
        EncounterClass::Observation => "observation encounter",
        EncounterClass::PreAdmission => "pre-admission",
        EncounterClass::ShortStay => "short stay",
        EncounterClass::HomeHealth => "home health",
        EncounterClass::Field => "field",
        EncounterClass::Virtual => "virtual",
    }
}

/// Other class codes (the binding is extensible) read as `None` and stay in the source.
fn read_class(obj: &Object) -> Result<Option<EncounterClass>, MappingError> {
    Ok(opt_object(obj, "class", AT)?
        .and_then(|c| c.get("code"))
        .and_then(Value::as_str)
        .and_then(EncounterClass::parse))
}

fn visit_type_display(kind: VisitType) -> &'static str {
    match kind {
        VisitType::Routine => "Routine visit",
        VisitType::Emergency => "Emergency visit",
        VisitType::FollowUp => "Follow-up visit",
        VisitType::Consultation => "Consultation",
        VisitType::Surgery => "Surgery",
        VisitType::NewPatient => "New patient visit",
    }
}

fn is_visit_type(concept: &Value) -> bool {
    coding_code(concept, KILN_VISIT_TYPE).is_some()
}

fn read_visit_type(obj: &Object) -> Result<Option<VisitType>, MappingError> {
    let types = list(obj, "type", AT)?;
    let Some((i, concept)) = pick_one(types, is_visit_type, |_| true) else {
        return Ok(None);
    };
    let code = coding_code(concept, KILN_VISIT_TYPE).unwrap_or_default();
    VisitType::parse(code)
        .map(Some)
        .ok_or_else(|| MappingError::invalid(format!("{AT}.type[{i}]"), format!("unknown visit type `{code}`")))
}

fn put_visit_type(obj: &mut Object, kind: &Option<VisitType>) {
    let concept = |k: &VisitType| coded(KILN_VISIT_TYPE, k.code(), Some(visit_type_display(*k)));
    overlay_one(obj, "type", is_visit_type, |_| true, kind.as_ref(), |t, k| *t = concept(k), concept);
}

fn points_at_practitioner(reference: &str) -> bool {
    reference.starts_with("Practitioner/") || reference.contains("/Practitioner/")
}

fn is_practitioner_participant(participant: &Value) -> bool {
    participant.get("individual").and_then(|i| str_of(i, "reference")).is_some_and(points_at_practitioner)
}

fn is_primary_performer(participant: &Value) -> bool {
    items(participant, "type").iter().any(|t| has_coding(t, V3_PARTICIPATION_TYPE, "PPRF"))
}

fn read_provider(obj: &Object) -> Result<Option<String>, MappingError> {
    let participants = list(obj, "participant", AT)?;
    Ok(pick_one(participants, is_practitioner_participant, is_primary_performer)
        .and_then(|(_, p)| p.get("individual"))
        .and_then(reference_of))
}

fn put_provider(obj: &mut Object, provider: &Option<String>) {
    overlay_one(
        obj,
        "participant",
        is_practitioner_participant,
        is_primary_performer,
        provider.as_ref(),
        |p, r| put_reference(object_mut(p), "individual", Some(r)),
        |r| {
            object(vec![
                ("type", Value::Array(vec![coded(V3_PARTICIPATION_TYPE, "PPRF", Some("primary performer"))])),
                ("individual", reference(r)),
            ])
        },
    );
}

fn read_appointment(obj: &Object) -> Result<Option<String>, MappingError> {
    Ok(list(obj, "appointment", AT)?.first().and_then(reference_of))
}

fn read_diagnoses(obj: &Object) -> Result<Vec<String>, MappingError> {
    list(obj, "diagnosis", AT)?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            d.get("condition")
                .and_then(reference_of)
                .ok_or_else(|| MappingError::missing(format!("{AT}.diagnosis[{i}].condition.reference")))
        })
        .collect()
}

fn put_diagnoses(obj: &mut Object, diagnoses: &[String]) {
    overlay_list(
        obj,
        "diagnosis",
        |_| true,
        diagnoses,
        |d, r| d.get("condition").and_then(reference_of).as_ref() == Some(r),
        |d, r| put_reference(object_mut(d), "condition", Some(r)),
        |r| object(vec![("condition", reference(r))]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{FhirDateTime, Period};
    use crate::emr::systems::KILN_EMR_STATUS_EXT;
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Encounter",
            "id": "enc-1",
            "meta": {"versionId": "5", "lastUpdated": "2024-04-04T04:04:04Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Follow-up</div>"},
            "contained": [{"resourceType": "Location", "id": "room", "name": "Exam 3"}],
            "extension": [
                {"url": "http://example.org/fhir/StructureDefinition/clinical-data", "valueString": "{\"va_od\":\"20/20\"}"},
                {"url": "https://kiln.example.org/fhir/StructureDefinition/emr-status", "valueCode": "signed"}
            ],
            "identifier": [{"system": "urn:kiln:visit", "value": "V-100"}],
            "status": "finished",
            "statusHistory": [{"status": "in-progress", "period": {"start": "2024-04-01T09:00:00-05:00", "end": "2024-04-01T09:40:00-05:00"}}],
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
            "type": [
                {"coding": [{"system": "http://snomed.info/sct", "code": "390906007", "display": "Follow-up encounter"}]},
                {"coding": [{"system": "https://kiln.example.org/fhir/CodeSystem/visit-type", "code": "follow_up"}]}
            ],
            "serviceType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-type", "code": "124", "display": "Ophthalmology"}]},
            "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority", "code": "R"}]},
            "subject": {"reference": "Patient/pat-1", "display": "Amy Shaw"},
            "participant": [
                {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}], "individual": {"reference": "Practitioner/nurse-2"}},
                {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}], "individual": {"reference": "Practitioner/dr-1"},
                 "period": {"start": "2024-04-01T09:05:00-05:00"}}
            ],
            "appointment": [{"reference": "Appointment/apt-1"}],
            "period": {"start": "2024-04-01T09:00:00-05:00", "end": "2024-04-01T09:40:00-05:00"},
            "reasonCode": [{"text": "Blurred vision, left eye"}],
            "diagnosis": [
                {"condition": {"reference": "Condition/c-1"}, "use": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/diagnosis-role", "code": "billing"}]}, "rank": 1},
                {"condition": {"reference": "Condition/c-2"}}
            ],
            "location": [{"location": {"reference": "#room"}}],
            "serviceProvider": {"reference": "Organization/clinic-1"}
        })
    }

    #[test]
    fn realistic_encounter_is_lossless() {
        let e = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(e.status, EncounterStatus::Signed);
        assert!(e.status.is_locked());
        assert_eq!(e.class, Some(EncounterClass::Ambulatory));
        assert_eq!(e.visit_type, Some(VisitType::FollowUp));
        assert_eq!(e.specialty.as_deref(), Some("Ophthalmology"));
        assert_eq!(e.provider.as_deref(), Some("Practitioner/dr-1"));
        assert_eq!(e.chief_complaint.as_deref(), Some("Blurred vision, left eye"));
        assert_eq!(e.diagnoses, vec!["Condition/c-1".to_owned(), "Condition/c-2".to_owned()]);
    }

    #[test]
    fn status_folding_keeps_signed_and_amended_apart() {
        for status in EncounterStatus::ALL {
            let e = Encounter { status: *status, ..Default::default() };
            let fhir = assert_model_round_trip(&e, to_fhir, from_fhir, |e| e.source = Default::default());
            assert_eq!(fhir["status"], status_code(*status));
            assert_eq!(status_of(&fhir), Some(*status));
        }
        let mut e = from_fhir(&realistic()).unwrap();
        e.status = EncounterStatus::Completed;
        let out = to_fhir(&e);
        assert_eq!(out["status"], "finished");
        assert!(out["extension"].as_array().unwrap().iter().all(|x| x["url"] != KILN_EMR_STATUS_EXT));
        assert_eq!(out["extension"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn seed_visit_round_trips() {
        let seed = Encounter {
            status: EncounterStatus::InProgress,
            class: Some(VisitType::Emergency.default_class()),
            visit_type: Some(VisitType::Emergency),
            specialty: Some("Orthopedics".into()),
            patient: Some("Patient/p1".into()),
            provider: Some("Practitioner/d1".into()),
            appointment: Some("Appointment/a1".into()),
            period: Period { start: Some(FhirDateTime::parse("2024-04-01T09:00:00Z").unwrap()), end: None },
            chief_complaint: Some("Fall".into()),
            diagnoses: vec!["Condition/x".into()],
            clinic: Some("Organization/c1".into()),
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |e| e.source = Default::default());
        assert_eq!(fhir["class"], json!({"system": V3_ACT_CODE, "code": "EMER", "display": "emergency"}));
        assert_eq!(fhir["participant"][0]["type"][0]["coding"][0]["code"], "PPRF");
        assert_eq!(fhir["reasonCode"], json!([{"text": "Fall"}]));
    }

    #[test]
    fn changing_the_provider_keeps_other_participants() {
        let original = realistic();
        let mut e = from_fhir(&original).unwrap();
        e.provider = Some("Practitioner/dr-9".into());
        let out = to_fhir(&e);
        assert_eq!(out["participant"][0], original["participant"][0]);
        assert_eq!(out["participant"][1]["individual"], json!({"reference": "Practitioner/dr-9"}));
        assert_eq!(out["participant"][1]["period"], original["participant"][1]["period"]);
    }

    #[test]
    fn unknown_status_is_refused() {
        let mut r = realistic();
        r["status"] = json!("done");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Encounter.status"));
    }
}
