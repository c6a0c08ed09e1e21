//! Prescription <-> FHIR R4 MedicationRequest (http://hl7.org/fhir/R4/medicationrequest.html).
//!
//! medication -> `medicationCodeableConcept` (text + RxNorm); dosage -> first
//! `dosageInstruction` (`text`; frequency -> `timing.code.text` or `timing.repeat`
//! frequency/period/periodUnit; duration -> `timing.repeat.boundsDuration`; route -> `route`;
//! dose -> `doseAndRate.doseQuantity`; instructions -> `patientInstruction`); quantity,
//! refills, start/end -> `dispenseRequest` quantity, `numberOfRepeatsAllowed`,
//! `validityPeriod`; status active/completed/cancelled/expired ->
//! active/completed/cancelled/stopped; discontinued reason -> `statusReason`; prescriber ->
//! `requester`; visit -> `encounter`; indication -> `reasonCode`; notes -> `note`; new
//! requests get `intent` = order.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{DoseQuantity, Frequency, Medication, Prescription, PrescriptionStatus, TimeSpan, TimeUnit};
use crate::emr::systems::{RXNORM, UCUM};

const AT: &str = "MedicationRequest";
const DOSAGE: &str = "MedicationRequest.dosageInstruction[0]";

pub fn from_fhir(resource: &Value) -> Result<Prescription, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Prescription {
        id: read_id(obj)?,
        status: read_status(obj)?,
        status_reason: read_concept_text(obj, "statusReason", AT)?,
        medication: read_medication(obj)?,
        patient: read_reference(obj, "subject", AT)?,
        encounter: read_reference(obj, "encounter", AT)?,
        prescribed: read_datetime(obj, "authoredOn", AT)?,
        prescriber: read_reference(obj, "requester", AT)?,
        indication: read_first_concept_text(obj, "reasonCode", AT)?,
        notes: read_note(obj, AT)?,
        dosage: read_dosage_string(obj, "text")?,
        instructions: read_dosage_string(obj, "patientInstruction")?,
        frequency: read_frequency(obj)?,
        duration: read_duration(obj)?,
        route: read_route(obj)?,
        dose: read_dose(obj)?,
        validity: read_validity(obj)?,
        refills: read_dispense_u32(obj)?,
        quantity: read_dispense_quantity(obj)?,
        source,
    })
}

pub fn to_fhir(rx: &Prescription) -> Value {
    let mut out = Overlay::new(&rx.source, AT);
    out.field(&rx.id, read_id, put_id);
    out.field(&rx.status, read_status, |o, s| put_str(o, "status", Some(status_code(*s))));
    out.field(
        &rx.status_reason,
        |o| read_concept_text(o, "statusReason", AT),
        |o, r| put_concept_text(o, "statusReason", r.as_deref()),
    );
    out.when_new("intent", "order".into());
    out.field(&rx.medication, read_medication, |o, m| {
        put_labelled_code(o, "medicationCodeableConcept", RXNORM, m.name.as_deref(), m.rxnorm.as_deref())
    });
    out.field(&rx.patient, |o| read_reference(o, "subject", AT), |o, r| put_reference(o, "subject", r.as_deref()));
    out.field(
        &rx.encounter,
        |o| read_reference(o, "encounter", AT),
        |o, r| put_reference(o, "encounter", r.as_deref()),
    );
    out.field(&rx.prescribed, |o| read_datetime(o, "authoredOn", AT), |o, t| put_datetime(o, "authoredOn", t.as_ref()));
    out.field(
        &rx.prescriber,
        |o| read_reference(o, "requester", AT),
        |o, r| put_reference(o, "requester", r.as_deref()),
    );
    out.field(
        &rx.indication,
        |o| read_first_concept_text(o, "reasonCode", AT),
        |o, i| put_first_concept_text(o, "reasonCode", i.as_deref()),
    );
    out.field(&rx.notes, |o| read_note(o, AT), |o, n| put_note(o, n.as_deref()));
    out.field(
        &rx.dosage,
        |o| read_dosage_string(o, "text"),
        |o, d| put_dosage(o, |d0| put_str(d0, "text", d.as_deref())),
    );
    out.field(
        &rx.instructions,
        |o| read_dosage_string(o, "patientInstruction"),
        |o, i| put_dosage(o, |d0| put_str(d0, "patientInstruction", i.as_deref())),
    );
    out.field(&rx.frequency, read_frequency, |o, f| put_dosage(o, |d0| write_frequency(d0, f)));
    out.field(&rx.duration, read_duration, |o, d| put_dosage(o, |d0| write_duration(d0, d)));
    out.field(&rx.route, read_route, |o, r| put_dosage(o, |d0| put_concept_text(d0, "route", r.as_deref())));
    out.field(&rx.dose, read_dose, |o, d| put_dosage(o, |d0| write_dose(d0, d)));
    out.field(&rx.validity, read_validity, |o, p| put_dispense(o, |d| put_period(d, "validityPeriod", p)));
    out.field(&rx.refills, read_dispense_u32, |o, r| put_dispense(o, |d| put_u32(d, "numberOfRepeatsAllowed", *r)));
    out.field(&rx.quantity, read_dispense_quantity, |o, q| {
        put_dispense(o, |d| {
            put_number(child(d, "quantity"), "value", *q);
            tidy(d, "quantity");
        })
    });
    out.finish()
}

/// The FHIR `MedicationRequest.status` code of a model status.
pub fn status_code(status: PrescriptionStatus) -> &'static str {
    match status {
        PrescriptionStatus::Active => "active",
        PrescriptionStatus::Completed => "completed",
        PrescriptionStatus::Cancelled => "cancelled",
        PrescriptionStatus::Expired => "stopped",
        PrescriptionStatus::OnHold => "on-hold",
        PrescriptionStatus::Draft => "draft",
        PrescriptionStatus::EnteredInError => "entered-in-error",
        PrescriptionStatus::Unknown => "unknown",
    }
}

fn read_status(obj: &Object) -> Result<PrescriptionStatus, MappingError> {
    Ok(read_code(obj, "status", AT, |code| PrescriptionStatus::ALL.iter().copied().find(|s| status_code(*s) == code))?
        .unwrap_or_default())
}

fn read_medication(obj: &Object) -> Result<Medication, MappingError> {
    let (name, rxnorm) = read_labelled_code(obj, "medicationCodeableConcept", RXNORM, AT)?;
    Ok(Medication { name, rxnorm })
}

/// The first dosage instruction, if any.
fn dosage(obj: &Object) -> Result<Option<&Object>, MappingError> {
    list(obj, "dosageInstruction", AT)?.first().map(|d| as_object(d, DOSAGE)).transpose()
}

fn put_dosage(obj: &mut Object, write: impl FnOnce(&mut Object)) {
    write(first_mut(obj, "dosageInstruction"));
    tidy_first(obj, "dosageInstruction");
}

fn put_dispense(obj: &mut Object, write: impl FnOnce(&mut Object)) {
    write(child(obj, "dispenseRequest"));
    tidy(obj, "dispenseRequest");
}

fn read_dosage_string(obj: &Object, key: &str) -> Result<Option<String>, MappingError> {
    match dosage(obj)? {
        None => Ok(None),
        Some(d) => opt_string(d, key, DOSAGE),
    }
}

fn read_route(obj: &Object) -> Result<Option<String>, MappingError> {
    match dosage(obj)? {
        None => Ok(None),
        Some(d) => read_concept_text(d, "route", DOSAGE),
    }
}

fn timing(obj: &Object) -> Result<Option<&Object>, MappingError> {
    match dosage(obj)? {
        None => Ok(None),
        Some(d) => opt_object(d, "timing", DOSAGE),
    }
}

fn repeat(obj: &Object) -> Result<Option<&Object>, MappingError> {
    match timing(obj)? {
        None => Ok(None),
        Some(t) => opt_object(t, "repeat", &format!("{DOSAGE}.timing")),
    }
}

/// Structured `timing.repeat` wins over `timing.code` when both are there.
fn read_frequency(obj: &Object) -> Result<Option<Frequency>, MappingError> {
    if let Some(r) = repeat(obj)? {
        let at = format!("{DOSAGE}.timing.repeat");
        let times = opt_u32(r, "frequency", &at)?;
        let period = opt_f64(r, "period", &at)?;
        let unit = read_code(r, "periodUnit", &at, TimeUnit::parse)?;
        if let (Some(times), Some(period), Some(unit)) = (times, period, unit) {
            return Ok(Some(Frequency::Repeat { times, period, unit }));
        }
    }
    match timing(obj)? {
        None => Ok(None),
        Some(t) => Ok(read_concept_text(t, "code", &format!("{DOSAGE}.timing"))?.map(Frequency::Text)),
    }
}

fn write_frequency(d0: &mut Object, frequency: &Option<Frequency>) {
    let timing = child(d0, "timing");
    let clear_repeat = |timing: &mut Object| {
        let r = child(timing, "repeat");
        for key in ["frequency", "period", "periodUnit"] {
            remove(r, key);
        }
        tidy(timing, "repeat");
    };
    match frequency {
        None => {
            remove(timing, "code");
            clear_repeat(timing);
        }
        Some(Frequency::Text(text)) => {
            clear_repeat(timing);
            put_concept_text(timing, "code", Some(text));
        }
        Some(Frequency::Repeat { times, period, unit }) => {
            remove(timing, "code");
            let r = child(timing, "repeat");
            put_u32(r, "frequency", Some(*times));
            put_number(r, "period", Some(*period));
            put_str(r, "periodUnit", Some(unit.code()));
        }
    }
    tidy(d0, "timing");
}

fn read_duration(obj: &Object) -> Result<Option<TimeSpan>, MappingError> {
    let Some(r) = repeat(obj)? else {
        return Ok(None);
    };
    let at = format!("{DOSAGE}.timing.repeat");
    let Some(bounds) = opt_object(r, "boundsDuration", &at)? else {
        return Ok(None);
    };
    let at = format!("{at}.boundsDuration");
    let value = opt_f64(bounds, "value", &at)?;
    let unit = read_code(bounds, "code", &at, TimeUnit::parse)?;
    Ok(value.zip(unit).map(|(value, unit)| TimeSpan { value, unit }))
}

fn time_unit_label(unit: TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "seconds",
        TimeUnit::Minute => "minutes",
        TimeUnit::Hour => "hours",
        TimeUnit::Day => "days",
        TimeUnit::Week => "weeks",
        TimeUnit::Month => "months",
        TimeUnit::Year => "years",
    }
}

fn write_duration(d0: &mut Object, duration: &Option<TimeSpan>) {
    let timing = child(d0, "timing");
    let r = child(timing, "repeat");
    match duration {
        None => remove(r, "boundsDuration"),
        Some(span) => {
            let b = child(r, "boundsDuration");
            put_number(b, "value", Some(span.value));
            if b.get("code").and_then(Value::as_str) != Some(span.unit.code()) {
                put_str(b, "unit", Some(time_unit_label(span.unit)));
                put_str(b, "system", Some(UCUM));
                put_str(b, "code", Some(span.unit.code()));
            }
        }
    }
    tidy(timing, "repeat");
    tidy(d0, "timing");
}

fn read_dose(obj: &Object) -> Result<Option<DoseQuantity>, MappingError> {
    let Some(d) = dosage(obj)? else {
        return Ok(None);
    };
    let Some(first) = list(d, "doseAndRate", DOSAGE)?.first() else {
        return Ok(None);
    };
    let at = format!("{DOSAGE}.doseAndRate[0]");
    let Some(q) = opt_object(as_object(first, &at)?, "doseQuantity", &at)? else {
        return Ok(None);
    };
    let at = format!("{at}.doseQuantity");
    let value = opt_f64(q, "value", &at)?.ok_or_else(|| MappingError::missing(format!("{at}.value")))?;
    let unit = match opt_string(q, "unit", &at)? {
        Some(unit) => Some(unit),
        None => opt_string(q, "code", &at)?,
    };
    Ok(Some(DoseQuantity { value, unit }))
}

fn write_dose(d0: &mut Object, dose: &Option<DoseQuantity>) {
    let first = first_mut(d0, "doseAndRate");
    match dose {
        None => remove(first, "doseQuantity"),
        Some(dose) => {
            let q = child(first, "doseQuantity");
            put_number(q, "value", Some(dose.value));
            let current = q.get("unit").or_else(|| q.get("code")).and_then(Value::as_str);
            if current != dose.unit.as_deref() {
                put_str(q, "unit", dose.unit.as_deref());
            }
        }
    }
    tidy_first(d0, "doseAndRate");
}

fn dispense(obj: &Object) -> Result<Option<&Object>, MappingError> {
    opt_object(obj, "dispenseRequest", AT)
}

fn read_validity(obj: &Object) -> Result<crate::emr::models::Period, MappingError> {
    match dispense(obj)? {
        None => Ok(Default::default()),
        Some(d) => read_period(d, "validityPeriod", "MedicationRequest.dispenseRequest"),
    }
}

fn read_dispense_u32(obj: &Object) -> Result<Option<u32>, MappingError> {
    match dispense(obj)? {
        None => Ok(None),
        Some(d) => opt_u32(d, "numberOfRepeatsAllowed", "MedicationRequest.dispenseRequest"),
    }
}

fn read_dispense_quantity(obj: &Object) -> Result<Option<f64>, MappingError> {
    let at = "MedicationRequest.dispenseRequest";
    match dispense(obj)?.map(|d| opt_object(d, "quantity", at)).transpose()?.flatten() {
        None => Ok(None),
        Some(q) => opt_f64(q, "value", &format!("{at}.quantity")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{FhirDateTime, Period};
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "MedicationRequest",
            "id": "rx-1",
            "meta": {"versionId": "3", "lastUpdated": "2024-05-05T05:05:05Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Amoxicillin 500 mg</div>"},
            "contained": [{"resourceType": "Medication", "id": "med0310", "code": {"text": "Amoxicillin capsules"}}],
            "extension": [{"url": "http://example.org/controlled-schedule", "valueCode": "none"}],
            "identifier": [{"use": "official", "system": "http://www.bmc.nl/portal/prescriptions", "value": "12345689"}],
            "status": "active",
            "intent": "order",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "outpatient"}]}],
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "308191", "display": "Amoxicillin 500 MG Oral Capsule"}], "text": "Amoxicillin 500 mg"},
            "subject": {"reference": "Patient/pat-1", "display": "Amy Shaw"},
            "encounter": {"reference": "Encounter/enc-1"},
            "authoredOn": "2024-05-01",
            "requester": {"reference": "Practitioner/dr-1", "display": "Dr Adam Careful"},
            "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J02.9"}], "text": "Pharyngitis"}],
            "note": [{"text": "Check for rash"}],
            "dosageInstruction": [{
                "sequence": 1,
                "text": "500 mg",
                "additionalInstruction": [{"coding": [{"system": "http://snomed.info/sct", "code": "311504000", "display": "With or after food"}]}],
                "patientInstruction": "Take with food",
                "timing": {"repeat": {"boundsDuration": {"value": 10, "unit": "day", "system": "http://unitsofmeasure.org", "code": "d"}, "frequency": 3, "period": 1, "periodUnit": "d"},
                           "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": "TID"}]}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006", "display": "Oral route"}]},
                "doseAndRate": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/dose-rate-type", "code": "ordered"}]},
                                 "doseQuantity": {"value": 500, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}]
            }, {"sequence": 2, "text": "then 250 mg"}],
            "dispenseRequest": {
                "validityPeriod": {"start": "2024-05-01", "end": "2024-06-01"},
                "numberOfRepeatsAllowed": 0,
                "quantity": {"value": 30, "unit": "capsule", "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "CAP"},
                "expectedSupplyDuration": {"value": 10, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
            },
            "substitution": {"allowedBoolean": true}
        })
    }

    #[test]
    fn realistic_prescription_is_lossless() {
        let rx = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(rx.medication.name.as_deref(), Some("Amoxicillin 500 mg"));
        assert_eq!(rx.medication.rxnorm.as_deref(), Some("308191"));
        assert_eq!(rx.dosage.as_deref(), Some("500 mg"));
        assert_eq!(rx.frequency, Some(Frequency::Repeat { times: 3, period: 1.0, unit: TimeUnit::Day }));
        assert_eq!(rx.duration, Some(TimeSpan { value: 10.0, unit: TimeUnit::Day }));
        assert_eq!(rx.route.as_deref(), Some("Oral route"));
        assert_eq!(rx.dose, Some(DoseQuantity { value: 500.0, unit: Some("mg".into()) }));
        assert_eq!(rx.refills, Some(0));
        assert_eq!(rx.quantity, Some(30.0));
        assert_eq!(rx.prescriber.as_deref(), Some("Practitioner/dr-1"));
        assert_eq!(rx.indication.as_deref(), Some("Pharyngitis"));
        assert_eq!(rx.instructions.as_deref(), Some("Take with food"));
    }

    #[test]
    fn every_status_round_trips() {
        for status in PrescriptionStatus::ALL {
            let rx = Prescription { status: *status, ..Default::default() };
            let fhir = assert_model_round_trip(&rx, to_fhir, from_fhir, |r| r.source = Default::default());
            assert_eq!(fhir["status"], status_code(*status));
            assert_eq!(fhir["intent"], "order");
        }
        assert_eq!(status_code(PrescriptionStatus::Expired), "stopped");
    }

    #[test]
    fn seed_prescription_round_trips() {
        let seed = Prescription {
            status: PrescriptionStatus::Active,
            medication: Medication { name: Some("Lisinopril".into()), rxnorm: None },
            patient: Some("Patient/p1".into()),
            prescriber: Some("Practitioner/d1".into()),
            encounter: Some("Encounter/v1".into()),
            prescribed: Some(FhirDateTime::parse("2024-05-01").unwrap()),
            dosage: Some("10 mg".into()),
            frequency: Some(Frequency::Text("once daily".into())),
            duration: TimeSpan::parse("30 days"),
            route: Some("oral".into()),
            dose: Some(DoseQuantity { value: 10.0, unit: Some("mg".into()) }),
            instructions: Some("In the morning".into()),
            indication: Some("Hypertension".into()),
            notes: Some("Generic OK".into()),
            refills: Some(2),
            quantity: Some(30.0),
            validity: Period {
                start: Some(FhirDateTime::parse("2024-05-01").unwrap()),
                end: Some(FhirDateTime::parse("2024-05-31").unwrap()),
            },
            status_reason: None,
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |r| r.source = Default::default());
        let d0 = &fhir["dosageInstruction"][0];
        assert_eq!(d0["text"], "10 mg");
        assert_eq!(d0["timing"]["code"], json!({"text": "once daily"}));
        assert_eq!(
            d0["timing"]["repeat"]["boundsDuration"],
            json!({"value": 30, "unit": "days", "system": UCUM, "code": "d"})
        );
        assert_eq!(d0["doseAndRate"][0]["doseQuantity"], json!({"value": 10, "unit": "mg"}));
        assert_eq!(fhir["dispenseRequest"]["numberOfRepeatsAllowed"], 2);
        assert_eq!(fhir["requester"], json!({"reference": "Practitioner/d1"}));
    }

    #[test]
    fn switching_frequency_to_text_clears_the_structured_one() {
        let original = realistic();
        let mut rx = from_fhir(&original).unwrap();
        rx.frequency = Some(Frequency::Text("every 8 hours".into()));
        let out = to_fhir(&rx);
        let timing = &out["dosageInstruction"][0]["timing"];
        assert_eq!(timing["code"], json!({"text": "every 8 hours"}));
        assert_eq!(
            timing["repeat"],
            json!({"boundsDuration": original["dosageInstruction"][0]["timing"]["repeat"]["boundsDuration"]})
        );
        assert_eq!(out["dosageInstruction"][1], original["dosageInstruction"][1]);
        assert_eq!(from_fhir(&out).unwrap().frequency, rx.frequency);
    }

    #[test]
    fn bad_period_unit_is_refused() {
        let mut r = realistic();
        r["dosageInstruction"][0]["timing"]["repeat"]["periodUnit"] = json!("day");
        assert_eq!(
            from_fhir(&r).unwrap_err().expression(),
            Some("MedicationRequest.dosageInstruction[0].timing.repeat.periodUnit")
        );
    }
}
