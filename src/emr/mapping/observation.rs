//! VitalSign and LabResult <-> FHIR R4 Observation (http://hl7.org/fhir/R4/observation.html),
//! vital signs per the R4 vital-signs profile
//! (http://hl7.org/fhir/R4/observation-vitalsigns.html).
//!
//! Vital sign: one Observation per measurement, category `vital-signs`, LOINC `code`, value in
//! `valueQuantity` with its UCUM unit (blood pressure: panel 85354-9 with systolic 8480-6 and
//! diastolic 8462-4 components in mm[Hg]); recorded_at -> `effectiveDateTime`; recorded_by ->
//! `performer`; visit -> `encounter`; notes -> `note`.
//!
//! Lab result: category `laboratory` (+ Kiln lab-category code); test -> `code` (text + LOINC);
//! value -> `valueQuantity` or `valueString`; reference range -> `referenceRange.text`;
//! abnormal flag -> `interpretation` N/L/H/LL/HH (interpretation text beside it); status
//! ordered/in_progress/completed/cancelled -> registered/preliminary/final/cancelled;
//! collected -> `effectiveDateTime`; resulted -> `issued`; ordered -> Kiln extension;
//! ordered_by -> `performer`; comments -> `note`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::vital_sign::loinc;
use crate::emr::models::{
    AbnormalFlag, HeightUnit, LabCategory, LabResult, LabStatus, LabTest, LabValue, ObservationStatus, PainScore,
    TemperatureUnit, VitalKind, VitalMeasurement, VitalSign, WeightUnit,
};
use crate::emr::systems::{
    KILN_LAB_CATEGORY, KILN_LAB_ORDERED_EXT, LOINC, OBSERVATION_CATEGORY, UCUM, V3_OBSERVATION_INTERPRETATION,
};

const AT: &str = "Observation";

/// An Observation as the EMR knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationRecord {
    VitalSign(VitalSign),
    LabResult(LabResult),
}

/// Reads an Observation into the model it belongs to: a vital sign (category `vital-signs`
/// with a known vital LOINC code, or a known vital LOINC code alone), else a lab result
/// (category `laboratory`). `Ok(None)` for other Observations (social history, surveys...),
/// which the EMR model does not cover and the server stores as they are.
pub fn from_fhir(resource: &Value) -> Result<Option<ObservationRecord>, MappingError> {
    let (obj, _) = resource_object(resource, AT)?;
    if vital_kind(obj).is_some() {
        return vital_sign_from_fhir(resource).map(|v| Some(ObservationRecord::VitalSign(v)));
    }
    if has_category(obj, "laboratory") {
        return lab_result_from_fhir(resource).map(|l| Some(ObservationRecord::LabResult(l)));
    }
    Ok(None)
}

pub fn to_fhir(record: &ObservationRecord) -> Value {
    match record {
        ObservationRecord::VitalSign(v) => vital_sign_to_fhir(v),
        ObservationRecord::LabResult(l) => lab_result_to_fhir(l),
    }
}

fn has_category(obj: &Object, code: &str) -> bool {
    obj.get("category")
        .and_then(Value::as_array)
        .is_some_and(|cats| cats.iter().any(|c| has_coding(c, OBSERVATION_CATEGORY, code)))
}

fn category(code: &str, display: &str) -> Value {
    Value::Array(vec![coded_with_text(OBSERVATION_CATEGORY, code, Some(display), display)])
}

fn read_status(obj: &Object) -> Result<ObservationStatus, MappingError> {
    Ok(read_code(obj, "status", AT, ObservationStatus::parse)?.unwrap_or_default())
}

fn read_performer(obj: &Object) -> Result<Option<String>, MappingError> {
    Ok(list(obj, "performer", AT)?.first().and_then(reference_of))
}

fn put_performer(obj: &mut Object, performer: &Option<String>) {
    overlay_one(
        obj,
        "performer",
        |_| true,
        |_| true,
        performer.as_ref(),
        |r, p| put_str(object_mut(r), "reference", Some(p)),
        |p| reference(p),
    );
}

// ---------------------------------------------------------------------------------------------
// Vital signs

/// The vital kind of the Observation's code, if it has a known vital LOINC code.
fn vital_kind(obj: &Object) -> Option<VitalKind> {
    items(obj.get("code")?, "coding")
        .iter()
        .filter(|c| str_of(c, "system") == Some(LOINC))
        .find_map(|c| str_of(c, "code").and_then(VitalKind::from_loinc))
}

fn read_kind(obj: &Object) -> Result<VitalKind, MappingError> {
    vital_kind(obj).ok_or_else(|| MappingError::invalid("Observation.code", "not a known vital-sign LOINC code"))
}

fn vital_code(kind: VitalKind) -> Value {
    let mut codings = vec![coding(LOINC, kind.code(), loinc::display(kind.code()))];
    if kind == VitalKind::OxygenSaturation {
        // The R4 base profile names 2708-6, US Core pulse oximetry 59408-5: carry both.
        codings.push(coding(LOINC, loinc::OXYGEN_SATURATION, loinc::display(loinc::OXYGEN_SATURATION)));
    }
    let text = match kind {
        VitalKind::BloodPressure => "Blood pressure",
        VitalKind::HeartRate => "Heart rate",
        VitalKind::RespiratoryRate => "Respiratory rate",
        VitalKind::BodyTemperature => "Body temperature",
        VitalKind::OxygenSaturation => "Oxygen saturation",
        VitalKind::BodyWeight => "Body weight",
        VitalKind::BodyHeight => "Body height",
        VitalKind::Bmi => "Body mass index",
        VitalKind::Pain => "Pain severity",
    };
    object(vec![("coding", Value::Array(codings)), ("text", text.into())])
}

fn ucum_unit_label(code: &str) -> &'static str {
    match code {
        "mm[Hg]" => "mmHg",
        "/min" => "/min",
        "Cel" => "C",
        "[degF]" => "F",
        "%" => "%",
        "kg" => "kg",
        "[lb_av]" => "lb",
        "cm" => "cm",
        "[in_i]" => "in",
        "kg/m2" => "kg/m2",
        _ => "{score}",
    }
}

fn read_quantity_value(holder: &Object, at: &str) -> Result<Option<(f64, Option<String>)>, MappingError> {
    let Some(q) = opt_object(holder, "valueQuantity", at)? else {
        return Ok(None);
    };
    let at = format!("{at}.valueQuantity");
    let value = opt_f64(q, "value", &at)?.ok_or_else(|| MappingError::missing(format!("{at}.value")))?;
    Ok(Some((value, opt_string(q, "code", &at)?)))
}

fn required_quantity(obj: &Object) -> Result<(f64, Option<String>), MappingError> {
    read_quantity_value(obj, AT)?.ok_or_else(|| MappingError::missing("Observation.valueQuantity"))
}

fn unit_of<T>(code: Option<String>, parse: impl Fn(&str) -> Option<T>, expected: &str) -> Result<T, MappingError> {
    code.as_deref().and_then(parse).ok_or_else(|| {
        MappingError::invalid("Observation.valueQuantity.code", format!("expected the UCUM unit {expected}"))
    })
}

fn component_value(obj: &Object, code: &str) -> Result<Option<f64>, MappingError> {
    let components = list(obj, "component", AT)?;
    let Some((i, c)) = pick_one(components, |c| c.get("code").is_some_and(|cc| has_coding(cc, LOINC, code)), |_| true)
    else {
        return Ok(None);
    };
    let at = format!("{AT}.component[{i}]");
    Ok(read_quantity_value(as_object(c, &at)?, &at)?.map(|(v, _)| v))
}

fn read_measurement(obj: &Object) -> Result<VitalMeasurement, MappingError> {
    Ok(match read_kind(obj)? {
        VitalKind::BloodPressure => VitalMeasurement::BloodPressure {
            systolic: component_value(obj, loinc::SYSTOLIC)?,
            diastolic: component_value(obj, loinc::DIASTOLIC)?,
        },
        VitalKind::HeartRate => VitalMeasurement::HeartRate(required_quantity(obj)?.0),
        VitalKind::RespiratoryRate => VitalMeasurement::RespiratoryRate(required_quantity(obj)?.0),
        VitalKind::BodyTemperature => {
            let (value, code) = required_quantity(obj)?;
            let unit = unit_of(code, TemperatureUnit::parse, "Cel or [degF]")?;
            VitalMeasurement::BodyTemperature { value, unit }
        }
        VitalKind::OxygenSaturation => VitalMeasurement::OxygenSaturation(required_quantity(obj)?.0),
        VitalKind::BodyWeight => {
            let (value, code) = required_quantity(obj)?;
            let unit = unit_of(code, WeightUnit::parse, "kg or [lb_av]")?;
            VitalMeasurement::BodyWeight { value, unit }
        }
        VitalKind::BodyHeight => {
            let (value, code) = required_quantity(obj)?;
            let unit = unit_of(code, HeightUnit::parse, "cm or [in_i]")?;
            VitalMeasurement::BodyHeight { value, unit }
        }
        VitalKind::Bmi => VitalMeasurement::Bmi(required_quantity(obj)?.0),
        VitalKind::Pain => {
            let (value, at) = match opt_f64(obj, "valueInteger", AT)? {
                Some(v) => (v, "Observation.valueInteger"),
                None => (required_quantity(obj)?.0, "Observation.valueQuantity.value"),
            };
            let score = (value.fract() == 0.0 && (0.0..=255.0).contains(&value))
                .then(|| PainScore::new(value as u8))
                .flatten()
                .ok_or_else(|| MappingError::invalid(at, "a pain score is a whole number from 0 to 10"))?;
            VitalMeasurement::Pain(score)
        }
    })
}

/// Writes a valueQuantity; the unit trio is only rewritten when the UCUM code changes, so a
/// source's own unit label survives a value edit.
fn put_quantity(holder: &mut Object, value: f64, ucum: &str) {
    let q = child(holder, "valueQuantity");
    put_number(q, "value", Some(value));
    if q.get("code").and_then(Value::as_str) != Some(ucum) || !q.contains_key("system") {
        put_str(q, "unit", Some(ucum_unit_label(ucum)));
        put_str(q, "system", Some(UCUM));
        put_str(q, "code", Some(ucum));
    }
    remove(holder, "dataAbsentReason");
}

fn put_component(obj: &mut Object, code: &str, value: Option<f64>) {
    let components = child_list(obj, "component");
    let position = components.iter().position(|c| c.get("code").is_some_and(|cc| has_coding(cc, LOINC, code)));
    let component = match position {
        Some(i) => object_mut(&mut components[i]),
        None => {
            components.push(object(vec![("code", coded(LOINC, code, loinc::display(code)))]));
            object_mut(components.last_mut().expect("just pushed"))
        }
    };
    match value {
        Some(v) => put_quantity(component, v, "mm[Hg]"),
        None => {
            remove(component, "valueQuantity");
            if !component.contains_key("dataAbsentReason") {
                component.insert(
                    "dataAbsentReason".into(),
                    coded("http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown", Some("Unknown")),
                );
            }
        }
    }
}

fn is_bp_component(component: &Value) -> bool {
    component
        .get("code")
        .is_some_and(|cc| has_coding(cc, LOINC, loinc::SYSTOLIC) || has_coding(cc, LOINC, loinc::DIASTOLIC))
}

fn put_measurement(obj: &mut Object, measurement: &VitalMeasurement) {
    if let VitalMeasurement::BloodPressure { systolic, diastolic } = measurement {
        obj.retain(|k, _| !k.starts_with("value"));
        put_component(obj, loinc::SYSTOLIC, *systolic);
        put_component(obj, loinc::DIASTOLIC, *diastolic);
        return;
    }
    if let Some(Value::Array(components)) = obj.get_mut("component") {
        components.retain(|c| !is_bp_component(c));
    }
    tidy(obj, "component");
    let (value, ucum) = match measurement {
        VitalMeasurement::BloodPressure { .. } => unreachable!("handled above"),
        VitalMeasurement::HeartRate(v) | VitalMeasurement::RespiratoryRate(v) => (*v, "/min"),
        VitalMeasurement::BodyTemperature { value, unit } => (*value, unit.code()),
        VitalMeasurement::OxygenSaturation(v) => (*v, "%"),
        VitalMeasurement::BodyWeight { value, unit } => (*value, unit.code()),
        VitalMeasurement::BodyHeight { value, unit } => (*value, unit.code()),
        VitalMeasurement::Bmi(v) => (*v, "kg/m2"),
        VitalMeasurement::Pain(score) => {
            if obj.contains_key("valueInteger") {
                put(obj, "valueInteger", score.value().into());
                return;
            }
            (f64::from(score.value()), "{score}")
        }
    };
    obj.retain(|k, _| !k.starts_with("value") || k == "valueQuantity");
    put_quantity(obj, value, ucum);
}

pub fn vital_sign_from_fhir(resource: &Value) -> Result<VitalSign, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(VitalSign {
        id: read_id(obj)?,
        status: read_status(obj)?,
        patient: read_reference(obj, "subject", AT)?,
        encounter: read_reference(obj, "encounter", AT)?,
        recorded_at: read_datetime(obj, "effectiveDateTime", AT)?,
        recorded_by: read_performer(obj)?,
        measurement: read_measurement(obj)?,
        notes: read_note(obj, AT)?,
        source,
    })
}

pub fn vital_sign_to_fhir(vital: &VitalSign) -> Value {
    let mut out = Overlay::new(&vital.source, AT);
    out.field(&vital.id, read_id, put_id);
    out.field(&vital.status, read_status, |o, s| put_str(o, "status", Some(s.code())));
    out.when_new("category", category("vital-signs", "Vital Signs"));
    out.field(&vital.measurement.kind(), read_kind, |o, k| {
        put(o, "code", vital_code(*k));
    });
    out.field(&vital.patient, |o| read_reference(o, "subject", AT), |o, r| put_reference(o, "subject", r.as_deref()));
    out.field(
        &vital.encounter,
        |o| read_reference(o, "encounter", AT),
        |o, r| put_reference(o, "encounter", r.as_deref()),
    );
    out.field(
        &vital.recorded_at,
        |o| read_datetime(o, "effectiveDateTime", AT),
        |o, t| put_datetime(o, "effectiveDateTime", t.as_ref()),
    );
    out.field(&vital.recorded_by, read_performer, put_performer);
    out.field(&vital.measurement, read_measurement, put_measurement);
    out.field(&vital.notes, |o| read_note(o, AT), |o, n| put_note(o, n.as_deref()));
    out.finish()
}

// ---------------------------------------------------------------------------------------------
// Lab results

fn lab_status_code(status: LabStatus) -> &'static str {
    match status {
        LabStatus::Ordered => "registered",
        LabStatus::InProgress => "preliminary",
        LabStatus::Completed => "final",
        LabStatus::Cancelled => "cancelled",
        LabStatus::Amended => "amended",
        LabStatus::Corrected => "corrected",
        LabStatus::EnteredInError => "entered-in-error",
        LabStatus::Unknown => "unknown",
    }
}

fn read_lab_status(obj: &Object) -> Result<LabStatus, MappingError> {
    Ok(read_code(obj, "status", AT, |code| LabStatus::ALL.iter().copied().find(|s| lab_status_code(*s) == code))?
        .unwrap_or_default())
}

fn is_lab_category(concept: &Value) -> bool {
    coding_code(concept, KILN_LAB_CATEGORY).is_some()
}

fn read_lab_category(obj: &Object) -> Result<Option<LabCategory>, MappingError> {
    let categories = list(obj, "category", AT)?;
    let Some((i, concept)) = pick_one(categories, is_lab_category, |_| true) else {
        return Ok(None);
    };
    let code = coding_code(concept, KILN_LAB_CATEGORY).unwrap_or_default();
    LabCategory::parse(code)
        .map(Some)
        .ok_or_else(|| MappingError::invalid(format!("{AT}.category[{i}]"), format!("unknown lab category `{code}`")))
}

fn put_lab_category(obj: &mut Object, category: &Option<LabCategory>) {
    let concept = |c: &LabCategory| coded(KILN_LAB_CATEGORY, c.code(), None);
    overlay_one(obj, "category", is_lab_category, |_| true, category.as_ref(), |v, c| *v = concept(c), concept);
}

fn read_test(obj: &Object) -> Result<LabTest, MappingError> {
    let (name, loinc) = read_labelled_code(obj, "code", LOINC, AT)?;
    Ok(LabTest { name, loinc })
}

fn put_test(obj: &mut Object, test: &LabTest) {
    put_labelled_code(obj, "code", LOINC, test.name.as_deref(), test.loinc.as_deref());
}

fn read_lab_value(obj: &Object) -> Result<Option<LabValue>, MappingError> {
    if let Some(q) = opt_object(obj, "valueQuantity", AT)? {
        let at = "Observation.valueQuantity";
        let value = opt_f64(q, "value", at)?.ok_or_else(|| MappingError::missing(format!("{at}.value")))?;
        let unit = match opt_string(q, "unit", at)? {
            Some(unit) => Some(unit),
            None => opt_string(q, "code", at)?,
        };
        return Ok(Some(LabValue::Quantity { value, unit }));
    }
    Ok(opt_string(obj, "valueString", AT)?.map(LabValue::Text))
}

fn put_lab_value(obj: &mut Object, value: &Option<LabValue>) {
    match value {
        None => {
            remove(obj, "valueQuantity");
            remove(obj, "valueString");
        }
        Some(LabValue::Text(text)) => {
            obj.retain(|k, _| !k.starts_with("value") || k == "valueString");
            put_str(obj, "valueString", Some(text));
        }
        Some(LabValue::Quantity { value, unit }) => {
            obj.retain(|k, _| !k.starts_with("value") || k == "valueQuantity");
            let q = child(obj, "valueQuantity");
            put_number(q, "value", Some(*value));
            let current_unit = q.get("unit").or_else(|| q.get("code")).and_then(Value::as_str).map(str::to_owned);
            if current_unit != *unit {
                put_str(q, "unit", unit.as_deref());
                remove(q, "code");
                remove(q, "system");
            }
        }
    }
}

fn flag_code(flag: AbnormalFlag) -> (&'static str, &'static str) {
    match flag {
        AbnormalFlag::Normal => ("N", "Normal"),
        AbnormalFlag::Low => ("L", "Low"),
        AbnormalFlag::High => ("H", "High"),
        AbnormalFlag::CriticalLow => ("LL", "Critical low"),
        AbnormalFlag::CriticalHigh => ("HH", "Critical high"),
    }
}

/// Other interpretation codes (A, AA, ...) read as `None` and stay in the source.
fn read_flag(obj: &Object) -> Result<Option<AbnormalFlag>, MappingError> {
    let Some(first) = list(obj, "interpretation", AT)?.first() else {
        return Ok(None);
    };
    Ok(coding_code(first, V3_OBSERVATION_INTERPRETATION)
        .and_then(|code| AbnormalFlag::ALL.iter().copied().find(|f| flag_code(*f).0 == code)))
}

fn put_flag(obj: &mut Object, flag: &Option<AbnormalFlag>) {
    let interpretation = first_mut(obj, "interpretation");
    overlay_one(
        interpretation,
        "coding",
        |c| str_of(c, "system") == Some(V3_OBSERVATION_INTERPRETATION),
        |_| true,
        flag.as_ref(),
        |c, f| {
            let (code, display) = flag_code(*f);
            *c = coding(V3_OBSERVATION_INTERPRETATION, code, Some(display));
        },
        |f| {
            let (code, display) = flag_code(*f);
            coding(V3_OBSERVATION_INTERPRETATION, code, Some(display))
        },
    );
    tidy_first(obj, "interpretation");
}

fn read_interpretation_text(obj: &Object) -> Result<Option<String>, MappingError> {
    Ok(list(obj, "interpretation", AT)?.first().and_then(|i| str_of(i, "text")).map(str::to_owned))
}

fn put_interpretation_text(obj: &mut Object, text: &Option<String>) {
    put_str(first_mut(obj, "interpretation"), "text", text.as_deref());
    tidy_first(obj, "interpretation");
}

fn read_reference_range(obj: &Object) -> Result<Option<String>, MappingError> {
    Ok(list(obj, "referenceRange", AT)?.first().and_then(|r| str_of(r, "text")).map(str::to_owned))
}

fn put_reference_range(obj: &mut Object, text: &Option<String>) {
    put_str(first_mut(obj, "referenceRange"), "text", text.as_deref());
    tidy_first(obj, "referenceRange");
}

fn read_ordered(obj: &Object) -> Result<Option<crate::emr::models::FhirDateTime>, MappingError> {
    match extension(obj, KILN_LAB_ORDERED_EXT) {
        None => Ok(None),
        Some(ext) => read_datetime(as_object(ext, AT)?, "valueDateTime", "Observation.extension"),
    }
}

pub fn lab_result_from_fhir(resource: &Value) -> Result<LabResult, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(LabResult {
        id: read_id(obj)?,
        status: read_lab_status(obj)?,
        category: read_lab_category(obj)?,
        test: read_test(obj)?,
        patient: read_reference(obj, "subject", AT)?,
        encounter: read_reference(obj, "encounter", AT)?,
        collected: read_datetime(obj, "effectiveDateTime", AT)?,
        resulted: read_instant(obj, "issued", AT)?,
        ordered: read_ordered(obj)?,
        ordered_by: read_performer(obj)?,
        value: read_lab_value(obj)?,
        abnormal_flag: read_flag(obj)?,
        interpretation: read_interpretation_text(obj)?,
        comments: read_note(obj, AT)?,
        reference_range: read_reference_range(obj)?,
        source,
    })
}

pub fn lab_result_to_fhir(lab: &LabResult) -> Value {
    let mut out = Overlay::new(&lab.source, AT);
    out.field(&lab.id, read_id, put_id);
    out.field(&lab.ordered, read_ordered, |o, t| {
        put_extension(o, KILN_LAB_ORDERED_EXT, t.as_ref().map(|t| ("valueDateTime", t.as_str().into())))
    });
    out.field(&lab.status, read_lab_status, |o, s| put_str(o, "status", Some(lab_status_code(*s))));
    out.when_new("category", category("laboratory", "Laboratory"));
    out.field(&lab.category, read_lab_category, put_lab_category);
    out.field(&lab.test, read_test, put_test);
    out.field(&lab.patient, |o| read_reference(o, "subject", AT), |o, r| put_reference(o, "subject", r.as_deref()));
    out.field(
        &lab.encounter,
        |o| read_reference(o, "encounter", AT),
        |o, r| put_reference(o, "encounter", r.as_deref()),
    );
    out.field(
        &lab.collected,
        |o| read_datetime(o, "effectiveDateTime", AT),
        |o, t| put_datetime(o, "effectiveDateTime", t.as_ref()),
    );
    out.field(&lab.resulted, |o| read_instant(o, "issued", AT), |o, t| put_datetime(o, "issued", t.as_ref()));
    out.field(&lab.ordered_by, read_performer, put_performer);
    out.field(&lab.value, read_lab_value, put_lab_value);
    out.field(&lab.abnormal_flag, read_flag, put_flag);
    out.field(&lab.interpretation, read_interpretation_text, put_interpretation_text);
    out.field(&lab.comments, |o| read_note(o, AT), |o, n| put_note(o, n.as_deref()));
    out.field(&lab.reference_range, read_reference_range, put_reference_range);
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{FhirDateTime, VitalsRow};
    use serde_json::json;

    fn blood_pressure() -> Value {
        json!({
            "resourceType": "Observation",
            "id": "bp-1",
            "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns", "http://hl7.org/fhir/StructureDefinition/bp"]},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">BP 107/60 mmHg</div>"},
            "contained": [{"resourceType": "Device", "id": "cuff", "deviceName": [{"name": "Cuff", "type": "user-friendly-name"}]}],
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281"}],
            "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "Vital Signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel with all children optional"}], "text": "Blood pressure systolic & diastolic"},
            "subject": {"reference": "Patient/pat-1"},
            "encounter": {"reference": "Encounter/enc-1"},
            "effectiveDateTime": "2024-07-02T10:15:00+01:00",
            "performer": [{"reference": "Practitioner/nurse-2"}, {"reference": "Patient/pat-1"}],
            "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "L", "display": "low"}]}],
            "bodySite": {"coding": [{"system": "http://snomed.info/sct", "code": "368209003", "display": "Right arm"}]},
            "device": {"reference": "#cuff"},
            "component": [
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]},
                 "valueQuantity": {"value": 107, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
                 "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "N"}]}]},
                {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4", "display": "Diastolic blood pressure"}]},
                 "valueQuantity": {"value": 60.0, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
            ]
        })
    }

    fn temperature() -> Value {
        json!({
            "resourceType": "Observation",
            "id": "temp-1",
            "extension": [{"url": "http://example.org/measurement-site", "valueString": "oral"}],
            "status": "amended",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}], "text": "Vital Signs"}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}, {"system": "http://snomed.info/sct", "code": "276885007"}]},
            "subject": {"reference": "Patient/pat-1"},
            "effectiveDateTime": "2024-07-02",
            "valueQuantity": {"value": 99.5, "unit": "°F", "system": "http://unitsofmeasure.org", "code": "[degF]"},
            "note": [{"authorString": "Nurse", "text": "Patient had a hot drink"}, {"text": "Recheck in 1h"}]
        })
    }

    fn lab() -> Value {
        json!({
            "resourceType": "Observation",
            "id": "lab-1",
            "meta": {"versionId": "2", "lastUpdated": "2024-07-03T08:00:00Z"},
            "extension": [
                {"url": "https://kiln.example.org/fhir/StructureDefinition/lab-ordered-date", "valueDateTime": "2024-07-01"},
                {"url": "http://example.org/lab-accession", "valueString": "ACC-1"}
            ],
            "basedOn": [{"reference": "ServiceRequest/sr-1"}],
            "status": "final",
            "category": [
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}]},
                {"coding": [{"system": "https://kiln.example.org/fhir/CodeSystem/lab-category", "code": "blood"}]}
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}, {"system": "http://acme.lab/codes", "code": "GLU"}], "text": "Glucose"},
            "subject": {"reference": "Patient/pat-1"},
            "encounter": {"reference": "Encounter/enc-1"},
            "effectiveDateTime": "2024-07-02T07:30:00-05:00",
            "issued": "2024-07-02T15:00:00.000Z",
            "performer": [{"reference": "Practitioner/dr-1"}, {"reference": "Organization/lab-co"}],
            "valueQuantity": {"value": 182, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
            "interpretation": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "HH", "display": "Critical high"}], "text": "Far above range"}],
            "note": [{"text": "Non-fasting"}],
            "specimen": {"reference": "Specimen/sp-1"},
            "referenceRange": [{"low": {"value": 70, "unit": "mg/dL"}, "high": {"value": 99, "unit": "mg/dL"}, "text": "70-99 mg/dL"}]
        })
    }

    #[test]
    fn realistic_vitals_are_lossless() {
        let bp = assert_lossless(&blood_pressure(), vital_sign_from_fhir, vital_sign_to_fhir);
        assert_eq!(bp.measurement, VitalMeasurement::BloodPressure { systolic: Some(107.0), diastolic: Some(60.0) });
        assert_eq!(bp.recorded_by.as_deref(), Some("Practitioner/nurse-2"));
        let temp = assert_lossless(&temperature(), vital_sign_from_fhir, vital_sign_to_fhir);
        assert_eq!(
            temp.measurement,
            VitalMeasurement::BodyTemperature { value: 99.5, unit: TemperatureUnit::Fahrenheit }
        );
        assert_eq!(temp.status, ObservationStatus::Amended);
        assert_eq!(temp.notes.as_deref(), Some("Patient had a hot drink"));
    }

    #[test]
    fn realistic_lab_result_is_lossless() {
        let lab = assert_lossless(&lab(), lab_result_from_fhir, lab_result_to_fhir);
        assert_eq!(lab.status, LabStatus::Completed);
        assert_eq!(lab.category, Some(LabCategory::Blood));
        assert_eq!(lab.test.name.as_deref(), Some("Glucose"));
        assert_eq!(lab.test.loinc.as_deref(), Some("2345-7"));
        assert_eq!(lab.abnormal_flag, Some(AbnormalFlag::CriticalHigh));
        assert_eq!(lab.interpretation.as_deref(), Some("Far above range"));
        assert_eq!(lab.reference_range.as_deref(), Some("70-99 mg/dL"));
        assert_eq!(lab.ordered.unwrap().as_str(), "2024-07-01");
        assert_eq!(lab.value, Some(LabValue::Quantity { value: 182.0, unit: Some("mg/dL".into()) }));
    }

    #[test]
    fn from_fhir_dispatches_by_category_and_code() {
        assert!(matches!(from_fhir(&blood_pressure()), Ok(Some(ObservationRecord::VitalSign(_)))));
        assert!(matches!(from_fhir(&lab()), Ok(Some(ObservationRecord::LabResult(_)))));
        let mut no_category = temperature();
        no_category.as_object_mut().unwrap().remove("category");
        assert!(matches!(from_fhir(&no_category), Ok(Some(ObservationRecord::VitalSign(_)))));
        let smoking = json!({"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "social-history"}]}],
            "code": {"coding": [{"system": LOINC, "code": "72166-2"}]}});
        assert_eq!(from_fhir(&smoking), Ok(None));
        let record = from_fhir(&lab()).unwrap().unwrap();
        assert_eq!(to_fhir(&record), lab());
    }

    #[test]
    fn every_seed_vital_round_trips_with_its_loinc_and_ucum() {
        let row = VitalsRow {
            systolic_bp: Some(128),
            diastolic_bp: Some(84),
            heart_rate: Some(72),
            respiratory_rate: Some(16),
            temperature: Some(37.2),
            temperature_unit: Some(TemperatureUnit::Celsius),
            oxygen_saturation: Some(97),
            weight: Some(180.5),
            weight_unit: None,
            height_cm: Some(178),
            bmi: Some(25.8),
            pain_scale: PainScore::new(4),
            ..Default::default()
        };
        let expected = [
            ("85354-9", None),
            ("8867-4", Some((json!(72), "/min"))),
            ("9279-1", Some((json!(16), "/min"))),
            ("8310-5", Some((json!(37.2), "Cel"))),
            ("59408-5", Some((json!(97), "%"))),
            ("29463-7", Some((json!(180.5), "[lb_av]"))),
            ("8302-2", Some((json!(178), "cm"))),
            ("39156-5", Some((json!(25.8), "kg/m2"))),
            ("72514-3", Some((json!(4), "{score}"))),
        ];
        let measurements = row.measurements();
        assert_eq!(measurements.len(), expected.len());
        for (measurement, (code, value)) in measurements.into_iter().zip(expected) {
            let mut vital = VitalSign::new(measurement);
            vital.patient = Some("Patient/p1".into());
            vital.recorded_at = Some(FhirDateTime::parse("2024-07-02T10:00:00Z").unwrap());
            let fhir = assert_model_round_trip(&vital, vital_sign_to_fhir, vital_sign_from_fhir, |v| {
                v.source = Default::default()
            });
            assert_eq!(fhir["code"]["coding"][0]["code"], code);
            assert_eq!(fhir["category"][0]["coding"][0]["code"], "vital-signs");
            assert_eq!(fhir["status"], "final");
            match value {
                Some((number, ucum)) => {
                    assert_eq!(fhir["valueQuantity"]["value"], number, "{code}");
                    assert_eq!(fhir["valueQuantity"]["code"], ucum, "{code}");
                    assert_eq!(fhir["valueQuantity"]["system"], UCUM);
                }
                None => {
                    assert_eq!(fhir["component"][0]["code"]["coding"][0]["code"], "8480-6");
                    assert_eq!(fhir["component"][0]["valueQuantity"]["value"], 128);
                    assert_eq!(fhir["component"][1]["code"]["coding"][0]["code"], "8462-4");
                    assert_eq!(fhir["component"][1]["valueQuantity"]["code"], "mm[Hg]");
                    assert!(fhir.get("valueQuantity").is_none());
                }
            }
        }
    }

    #[test]
    fn oxygen_saturation_carries_both_loinc_codes() {
        let fhir = vital_sign_to_fhir(&VitalSign::new(VitalMeasurement::OxygenSaturation(95.0)));
        let codes: Vec<_> = fhir["code"]["coding"].as_array().unwrap().iter().map(|c| c["code"].clone()).collect();
        assert_eq!(codes, [json!("59408-5"), json!("2708-6")]);
    }

    #[test]
    fn editing_a_value_keeps_the_source_unit_label() {
        let mut temp = vital_sign_from_fhir(&temperature()).unwrap();
        temp.measurement = VitalMeasurement::BodyTemperature { value: 100.1, unit: TemperatureUnit::Fahrenheit };
        let out = vital_sign_to_fhir(&temp);
        assert_eq!(out["valueQuantity"], json!({"value": 100.1, "unit": "°F", "system": UCUM, "code": "[degF]"}));
        temp.measurement = VitalMeasurement::BodyTemperature { value: 38.0, unit: TemperatureUnit::Celsius };
        let out = vital_sign_to_fhir(&temp);
        assert_eq!(out["valueQuantity"], json!({"value": 38, "unit": "C", "system": UCUM, "code": "Cel"}));
        assert_eq!(out["extension"], temperature()["extension"]);
    }

    #[test]
    fn missing_blood_pressure_side_gets_a_data_absent_reason() {
        let mut bp = vital_sign_from_fhir(&blood_pressure()).unwrap();
        bp.measurement = VitalMeasurement::BloodPressure { systolic: Some(110.0), diastolic: None };
        let out = vital_sign_to_fhir(&bp);
        assert_eq!(out["component"][0]["valueQuantity"]["value"], 110);
        assert_eq!(out["component"][0]["interpretation"], blood_pressure()["component"][0]["interpretation"]);
        assert!(out["component"][1].get("valueQuantity").is_none());
        assert_eq!(out["component"][1]["dataAbsentReason"]["coding"][0]["code"], "unknown");
        assert_eq!(vital_sign_from_fhir(&out).unwrap().measurement, bp.measurement);
    }

    #[test]
    fn pain_score_out_of_range_or_wrong_unit_is_refused() {
        let pain = |value: Value| {
            json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "72514-3"}]}, "valueInteger": value})
        };
        assert_eq!(vital_sign_from_fhir(&pain(json!(11))).unwrap_err().expression(), Some("Observation.valueInteger"));
        assert_eq!(
            vital_sign_from_fhir(&pain(json!(7))).unwrap().measurement,
            VitalMeasurement::Pain(PainScore::new(7).unwrap())
        );
        let mut temp = temperature();
        temp["valueQuantity"]["code"] = json!("K");
        assert_eq!(vital_sign_from_fhir(&temp).unwrap_err().expression(), Some("Observation.valueQuantity.code"));
    }

    #[test]
    fn seed_lab_result_round_trips() {
        let seed = LabResult {
            status: LabStatus::InProgress,
            category: Some(LabCategory::Urine),
            test: LabTest { name: Some("Urinalysis".into()), loinc: Some("24356-8".into()) },
            patient: Some("Patient/p1".into()),
            ordered_by: Some("Practitioner/d1".into()),
            ordered: Some(FhirDateTime::parse("2024-07-01").unwrap()),
            collected: Some(FhirDateTime::parse("2024-07-02").unwrap()),
            resulted: Some(FhirDateTime::parse("2024-07-03T12:00:00Z").unwrap()),
            value: Some(LabValue::from_seed("Positive", None)),
            abnormal_flag: Some(AbnormalFlag::High),
            interpretation: Some("Trace protein".into()),
            comments: Some("Repeat".into()),
            reference_range: Some("Negative".into()),
            ..Default::default()
        };
        let fhir =
            assert_model_round_trip(&seed, lab_result_to_fhir, lab_result_from_fhir, |l| l.source = Default::default());
        assert_eq!(fhir["status"], "preliminary");
        assert_eq!(fhir["category"][0]["coding"][0]["code"], "laboratory");
        assert_eq!(fhir["code"], json!({"coding": [{"system": LOINC, "code": "24356-8"}], "text": "Urinalysis"}));
        assert_eq!(fhir["interpretation"][0]["coding"][0]["code"], "H");
        assert_eq!(fhir["valueString"], "Positive");
        for (status, code) in
            [(LabStatus::Ordered, "registered"), (LabStatus::Completed, "final"), (LabStatus::Cancelled, "cancelled")]
        {
            let l = LabResult { status, ..Default::default() };
            let fhir = assert_model_round_trip(&l, lab_result_to_fhir, lab_result_from_fhir, |l| {
                l.source = Default::default()
            });
            assert_eq!(fhir["status"], code);
        }
        for flag in AbnormalFlag::ALL {
            let l = LabResult { abnormal_flag: Some(*flag), ..Default::default() };
            assert_model_round_trip(&l, lab_result_to_fhir, lab_result_from_fhir, |l| l.source = Default::default());
        }
    }

    #[test]
    fn lab_edits_touch_only_their_elements() {
        let original = lab();
        let mut l = lab_result_from_fhir(&original).unwrap();
        l.abnormal_flag = Some(AbnormalFlag::High);
        l.value = Some(LabValue::Quantity { value: 150.0, unit: Some("mg/dL".into()) });
        l.reference_range = None;
        let out = lab_result_to_fhir(&l);
        assert_eq!(out["interpretation"][0]["text"], "Far above range");
        assert_eq!(out["interpretation"][0]["coding"][0]["code"], "H");
        assert_eq!(out["valueQuantity"], json!({"value": 150, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}));
        assert_eq!(out["referenceRange"][0].get("text"), None);
        assert_eq!(out["referenceRange"][0]["low"], original["referenceRange"][0]["low"]);
        assert_eq!(out["code"], original["code"]);
    }
}
