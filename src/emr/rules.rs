//! Business rules on EMR resources that need no database, and the helpers the server's
//! database-backed checks (MRN uniqueness, one active primary Coverage, double booking,
//! encounter locking, prescriber credentials) are built on.
//!
//! Entry point: [`check_resource`]. Every violation carries a FHIRPath-like expression, a
//! message for people and a kind that maps onto an OperationOutcome issue code.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use super::json::{coding_code, has_coding, items, object_mut, str_of};
use super::mapping::appointment::points_at;
use super::mapping::encounter;
use super::mapping::patient::{is_mrn_identifier, mrn_identifier};
use super::mapping::practitioner::is_dea_identifier;
use super::models::vital_sign::loinc;
use super::models::{EncounterStatus, FhirDateTime, Mrn, ends_after};
use super::systems::{LOINC, OBSERVATION_CATEGORY, UCUM};

/// What kind of problem a violation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ViolationKind {
    /// Well-formed FHIR that breaks a clinical or scheduling rule (heart rate 900, booking in
    /// the past, prescription without a frequency).
    BusinessRule,
    /// Content that is wrong in itself (a unit that does not fit the code, end before start).
    Invalid,
}

impl ViolationKind {
    /// The OperationOutcome `issue.code`.
    pub fn issue_code(self) -> &'static str {
        match self {
            ViolationKind::BusinessRule => "business-rule",
            ViolationKind::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleViolation {
    /// FHIRPath-like location, e.g. `Observation.valueQuantity.value`.
    pub expression: String,
    pub message: String,
    pub kind: ViolationKind,
}

impl RuleViolation {
    fn business(expression: impl Into<String>, message: impl Into<String>) -> Self {
        RuleViolation { expression: expression.into(), message: message.into(), kind: ViolationKind::BusinessRule }
    }

    fn invalid(expression: impl Into<String>, message: impl Into<String>) -> Self {
        RuleViolation { expression: expression.into(), message: message.into(), kind: ViolationKind::Invalid }
    }
}

/// Whether the resource is being created or replaced; some rules only hold at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Update,
}

/// Checks a resource about to be written. Resource types without rules give no violations.
///
/// Run it after a transaction's `urn:uuid:` references have been resolved, since the
/// MedicationRequest requester rule looks at the reference's target type.
pub fn check_resource(
    resource_type: &str,
    resource: &Value,
    write: WriteKind,
    now: DateTime<Utc>,
) -> Vec<RuleViolation> {
    match resource_type {
        "Observation" => check_observation(resource),
        "Appointment" => check_appointment(resource, write, now),
        "Slot" => check_slot(resource),
        "Schedule" => check_schedule(resource),
        "MedicationRequest" => check_medication_request(resource),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Vital signs

/// The physiologically possible range of a vital sign in one UCUM unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VitalRange {
    pub loinc: &'static str,
    pub label: &'static str,
    pub ucum: &'static str,
    pub min: f64,
    pub max: f64,
    pub whole_numbers: bool,
    /// The unit may be left out (pain scores are unitless).
    pub unit_optional: bool,
}

const fn range(loinc: &'static str, label: &'static str, ucum: &'static str, min: f64, max: f64) -> VitalRange {
    VitalRange { loinc, label, ucum, min, max, whole_numbers: false, unit_optional: false }
}

/// Accepted LOINC code / UCUM unit pairs with the values a living patient can have. The bounds
/// are wide on purpose: they catch typing errors (heart rate 900, pain 11), not abnormal
/// values. Where a documented survivor lies outside a narrower clinical range, the bound
/// follows the survivor: accidental hypothermia stage IV is below 24 Cel, arterial saturation
/// near 50 % and below has been measured on Everest, and a BMI of 185 has been recorded.
pub const VITAL_RANGES: &[VitalRange] = &[
    range(loinc::SYSTOLIC, "systolic blood pressure", "mm[Hg]", 40.0, 300.0),
    range(loinc::DIASTOLIC, "diastolic blood pressure", "mm[Hg]", 20.0, 200.0),
    range(loinc::HEART_RATE, "heart rate", "/min", 20.0, 300.0),
    range(loinc::RESPIRATORY_RATE, "respiratory rate", "/min", 4.0, 80.0),
    range(loinc::BODY_TEMPERATURE, "body temperature", "Cel", 10.0, 47.0),
    range(loinc::BODY_TEMPERATURE, "body temperature", "[degF]", 50.0, 116.6),
    range(loinc::OXYGEN_SATURATION_PULSE_OXIMETRY, "oxygen saturation", "%", 20.0, 100.0),
    range(loinc::OXYGEN_SATURATION, "oxygen saturation", "%", 20.0, 100.0),
    range(loinc::BODY_WEIGHT, "body weight", "kg", 0.2, 700.0),
    range(loinc::BODY_WEIGHT, "body weight", "[lb_av]", 0.44, 1543.0),
    range(loinc::BODY_HEIGHT, "body height", "cm", 20.0, 280.0),
    range(loinc::BODY_HEIGHT, "body height", "[in_i]", 7.87, 110.24),
    range(loinc::BMI, "body mass index", "kg/m2", 5.0, 250.0),
    VitalRange {
        whole_numbers: true,
        unit_optional: true,
        ..range(loinc::PAIN_SEVERITY, "pain severity", "{score}", 0.0, 10.0)
    },
];

fn ranges_for(code: &str) -> Vec<&'static VitalRange> {
    VITAL_RANGES.iter().filter(|r| r.loinc == code).collect()
}

/// The vital-sign LOINC code of a CodeableConcept, if it has one Kiln checks.
fn vital_loinc(concept: &Value) -> Option<&str> {
    items(concept, "coding")
        .iter()
        .filter(|c| str_of(c, "system") == Some(LOINC))
        .filter_map(|c| str_of(c, "code"))
        .find(|code| *code == loinc::BLOOD_PRESSURE_PANEL || !ranges_for(code).is_empty())
}

fn is_vital_sign(resource: &Value) -> bool {
    let vital_category = items(resource, "category").iter().any(|c| has_coding(c, OBSERVATION_CATEGORY, "vital-signs"));
    vital_category || resource.get("code").and_then(vital_loinc).is_some()
}

fn format_range(r: &VitalRange) -> String {
    if r.unit_optional { format!("{} to {}", r.min, r.max) } else { format!("{} to {} {}", r.min, r.max, r.ucum) }
}

/// Checks the value of an Observation or a component (`holder`, found at `at`) against the
/// ranges of `code`. Returns the value when it is a usable number.
fn check_vital_value(holder: &Value, code: &str, at: &str, out: &mut Vec<RuleViolation>) -> Option<f64> {
    let ranges = ranges_for(code);
    let label = ranges.first()?.label;
    let (value, unit, value_at) = if let Some(q) = holder.get("valueQuantity") {
        let value = q.get("value").and_then(Value::as_f64)?;
        (value, Some(q), format!("{at}.valueQuantity"))
    } else if let Some(v) = holder.get("valueInteger").filter(|_| ranges[0].unit_optional) {
        (v.as_f64()?, None, format!("{at}.valueInteger"))
    } else {
        if let Some(other) = holder.as_object()?.keys().find(|k| k.starts_with("value")) {
            out.push(RuleViolation::invalid(
                format!("{at}.{other}"),
                format!("{label} (LOINC {code}) must be given as a valueQuantity"),
            ));
        }
        return None;
    };

    let allowed: Vec<&str> = ranges.iter().map(|r| r.ucum).collect();
    let ucum_code = unit.and_then(|q| str_of(q, "code"));
    let row = match ucum_code {
        None if ranges[0].unit_optional => Some(ranges[0]),
        None => {
            out.push(RuleViolation::invalid(
                format!("{value_at}.code"),
                format!("{label} (LOINC {code}) needs a UCUM unit: {}", allowed.join(" or ")),
            ));
            None
        }
        Some(c) => {
            if unit.and_then(|q| str_of(q, "system")) != Some(UCUM) {
                out.push(RuleViolation::invalid(
                    format!("{value_at}.system"),
                    format!("the unit of {label} must be a UCUM code (system {UCUM})"),
                ));
            }
            let row = ranges.iter().copied().find(|r| r.ucum == c);
            if row.is_none() {
                out.push(RuleViolation::invalid(
                    format!("{value_at}.code"),
                    format!("`{c}` is not a unit for {label} (LOINC {code}): use {}", allowed.join(" or ")),
                ));
            }
            row
        }
    };

    let row = row?;
    let value_expression = if unit.is_some() { format!("{value_at}.value") } else { value_at };
    let shown_unit = if row.unit_optional { String::new() } else { format!(" {}", row.ucum) };
    if row.whole_numbers && value.fract() != 0.0 {
        out.push(RuleViolation::business(
            value_expression,
            format!("{label} of {value} is not possible: expected a whole number from {}", format_range(row)),
        ));
        return None;
    }
    if value < row.min || value > row.max {
        out.push(RuleViolation::business(
            value_expression,
            format!("{label} of {value}{shown_unit} is not physiologically possible: expected {}", format_range(row)),
        ));
        return None;
    }
    Some(value)
}

fn check_blood_pressure_panel(resource: &Value, out: &mut Vec<RuleViolation>) {
    if let Some(key) = resource.as_object().and_then(|o| o.keys().find(|k| k.starts_with("value"))) {
        out.push(RuleViolation::invalid(
            format!("Observation.{key}"),
            "a blood pressure panel (LOINC 85354-9) carries its values in components, not in value[x]",
        ));
    }
    let components = items(resource, "component");
    let find = |code: &str| components.iter().position(|c| c.get("code").is_some_and(|cc| has_coding(cc, LOINC, code)));
    let mut values = Vec::new();
    for (code, name) in [(loinc::SYSTOLIC, "systolic"), (loinc::DIASTOLIC, "diastolic")] {
        match find(code) {
            None => out.push(RuleViolation::invalid(
                "Observation.component",
                format!("a blood pressure panel needs a {name} component (LOINC {code})"),
            )),
            Some(i) => {
                let at = format!("Observation.component[{i}]");
                values.push(check_vital_value(&components[i], code, &at, out).map(|v| (i, v)));
            }
        }
    }
    if let [Some((_, systolic)), Some((i, diastolic))] = values.as_slice()
        && diastolic >= systolic
    {
        out.push(RuleViolation::business(
            format!("Observation.component[{i}].valueQuantity.value"),
            format!("diastolic pressure {diastolic} mm[Hg] must be lower than systolic pressure {systolic} mm[Hg]"),
        ));
    }
}

fn check_observation(resource: &Value) -> Vec<RuleViolation> {
    let mut out = Vec::new();
    if !is_vital_sign(resource) {
        return out;
    }
    match resource.get("code").and_then(vital_loinc) {
        None => {}
        Some(loinc::BLOOD_PRESSURE_PANEL) => check_blood_pressure_panel(resource, &mut out),
        Some(code) => {
            check_vital_value(resource, code, "Observation", &mut out);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Appointment, Slot, Schedule

fn read_time(resource: &Value, key: &str, at: &str, out: &mut Vec<RuleViolation>) -> Option<FhirDateTime> {
    let text = str_of(resource, key)?;
    match FhirDateTime::parse(text) {
        Ok(t) => Some(t),
        Err(e) => {
            out.push(RuleViolation::invalid(format!("{at}.{key}"), e.to_string()));
            None
        }
    }
}

fn check_end_after_start(resource: &Value, at: &str, out: &mut Vec<RuleViolation>) -> Option<FhirDateTime> {
    let start = read_time(resource, "start", at, out);
    let end = read_time(resource, "end", at, out);
    if let (Some(start), Some(end)) = (&start, &end)
        && !ends_after(start, end)
    {
        out.push(RuleViolation::invalid(format!("{at}.end"), format!("end ({end}) must be after start ({start})")));
    }
    start
}

/// Statuses that ask for time in the future; only these are refused in the past at creation.
/// Recording what already happened (arrived, fulfilled, noshow, cancelled) stays possible.
const FUTURE_STATUSES: &[&str] = &["proposed", "pending", "booked", "waitlist"];

fn check_appointment(resource: &Value, write: WriteKind, now: DateTime<Utc>) -> Vec<RuleViolation> {
    let mut out = Vec::new();
    let start = check_end_after_start(resource, "Appointment", &mut out);
    let books_future = str_of(resource, "status").is_some_and(|s| FUTURE_STATUSES.contains(&s));
    if write == WriteKind::Create
        && books_future
        && let Some(start) = start
        && start.latest() < now
    {
        out.push(RuleViolation::business(
            "Appointment.start",
            format!(
                "an appointment cannot be booked in the past: start {start} is before now ({})",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ));
    }
    out
}

fn check_slot(resource: &Value) -> Vec<RuleViolation> {
    let mut out = Vec::new();
    check_end_after_start(resource, "Slot", &mut out);
    out
}

fn check_schedule(resource: &Value) -> Vec<RuleViolation> {
    let mut out = Vec::new();
    if let Some(horizon) = resource.get("planningHorizon") {
        check_end_after_start(horizon, "Schedule.planningHorizon", &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// MedicationRequest

/// A dose: `doseAndRate` with a `doseQuantity` or `doseRange`, or a free-text instruction.
fn has_dose(dosage: &Value) -> bool {
    let structured =
        items(dosage, "doseAndRate").iter().any(|d| d.get("doseQuantity").is_some() || d.get("doseRange").is_some());
    structured || str_of(dosage, "text").is_some_and(|t| !t.trim().is_empty())
}

/// A frequency: `timing.repeat.frequency` with `period` and `periodUnit`, fixed times of day
/// (`timing.repeat.timeOfDay` or `when`), explicit `timing.event`s, or a `timing.code` (BID,
/// or a text such as "twice daily", which is how seed frequencies arrive). "As needed" alone
/// is no frequency.
/// How often to give the dose: a structured timing (times per period, times of day, events, a
/// timing code, a fixed number of administrations such as a single dose, or a continuous duration
/// such as an infusion), or a dosage text, which is how the seed (`frequency` is free text) and
/// most prescriptions state it ("one tablet daily as directed").
fn has_frequency(dosage: &Value) -> bool {
    if str_of(dosage, "text").is_some_and(|t| !t.trim().is_empty()) {
        return true;
    }
    let Some(timing) = dosage.get("timing") else {
        return false;
    };
    let repeat = timing.get("repeat");
    let counted = repeat
        .is_some_and(|r| r.get("frequency").is_some() && r.get("period").is_some() && r.get("periodUnit").is_some());
    let fixed_times = repeat.is_some_and(|r| !items(r, "timeOfDay").is_empty() || !items(r, "when").is_empty());
    let fixed_count = repeat.is_some_and(|r| r.get("count").is_some());
    let continuous = repeat.is_some_and(|r| r.get("duration").is_some() && r.get("durationUnit").is_some());
    let coded = timing
        .get("code")
        .is_some_and(|c| !items(c, "coding").is_empty() || str_of(c, "text").is_some_and(|t| !t.trim().is_empty()));
    counted || fixed_times || fixed_count || continuous || coded || !items(timing, "event").is_empty()
}

/// The type a reference points at: from `Reference.type`, the literal reference, or the
/// contained resource it names.
fn reference_target_type<'a>(reference: &'a Value, resource: &'a Value) -> Option<&'a str> {
    if let Some(t) = str_of(reference, "type") {
        return Some(t);
    }
    let literal = str_of(reference, "reference")?;
    if let Some(id) = literal.strip_prefix('#') {
        return items(resource, "contained")
            .iter()
            .find(|c| str_of(c, "id") == Some(id))
            .and_then(|c| str_of(c, "resourceType"));
    }
    let path = literal.split("/_history/").next().unwrap_or(literal);
    let mut segments = path.rsplit('/');
    let _id = segments.next()?;
    segments.next()
}

fn check_medication_request(resource: &Value) -> Vec<RuleViolation> {
    let mut out = Vec::new();
    if str_of(resource, "status") == Some("entered-in-error") {
        return out;
    }
    let dosages = items(resource, "dosageInstruction");
    if dosages.is_empty() {
        out.push(RuleViolation::business(
            "MedicationRequest.dosageInstruction",
            "a prescription needs a dosage instruction with a dose and a frequency",
        ));
    } else if !dosages.iter().any(|d| has_dose(d) && has_frequency(d)) {
        let first = &dosages[0];
        if !has_dose(first) {
            out.push(RuleViolation::business(
                "MedicationRequest.dosageInstruction[0].doseAndRate",
                "a prescription needs a dose: doseAndRate.doseQuantity (or doseRange), or a dosage text",
            ));
        }
        if !has_frequency(first) {
            out.push(RuleViolation::business(
                "MedicationRequest.dosageInstruction[0].timing",
                "a prescription needs a frequency: timing.repeat.frequency with period and periodUnit, \
                 timing.repeat.timeOfDay/when, timing.event, or timing.code",
            ));
        }
    }
    match resource.get("requester") {
        None => out.push(RuleViolation::business(
            "MedicationRequest.requester",
            "a prescription needs a requester: the prescribing Practitioner",
        )),
        Some(requester) => match reference_target_type(requester, resource) {
            Some("Practitioner") if str_of(requester, "reference").is_some() => {}
            found => out.push(RuleViolation::business(
                "MedicationRequest.requester.reference",
                format!(
                    "the requester must be a reference to a Practitioner, not {}",
                    found.map_or_else(|| "an unresolvable reference".to_owned(), |t| format!("a {t}"))
                ),
            )),
        },
    }
    out
}

/// The requester reference of a MedicationRequest, to look up the prescriber's license (and
/// DEA number for controlled substances).
pub fn medication_requester(resource: &Value) -> Option<String> {
    resource.get("requester").and_then(|r| str_of(r, "reference")).map(str::to_owned)
}

/// The first license number among a Practitioner's qualifications.
pub fn practitioner_license_number(practitioner: &Value) -> Option<String> {
    items(practitioner, "qualification")
        .iter()
        .flat_map(|q| items(q, "identifier"))
        .find_map(|id| str_of(id, "value"))
        .map(str::to_owned)
}

/// A Practitioner's DEA number.
pub fn practitioner_dea_number(practitioner: &Value) -> Option<String> {
    items(practitioner, "identifier")
        .iter()
        .find(|id| is_dea_identifier(id))
        .and_then(|id| str_of(id, "value"))
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// Patient

/// The patient's MRN: `(system, value)` of the first identifier typed v2-0203 `MR`.
pub fn patient_mrn(resource: &Value) -> Option<(Option<String>, String)> {
    items(resource, "identifier").iter().filter(|id| is_mrn_identifier(id)).find_map(|id| {
        let value = str_of(id, "value")?;
        Some((str_of(id, "system").map(str::to_owned), value.to_owned()))
    })
}

/// Gives a patient without an MRN a generated one, `MRN-YYYY-NNNNN` in the clinic's `system`.
/// Returns the new MRN, or `None` when the patient already had one (clinics may bring their own
/// numbering, which is kept). Uniqueness per clinic is the caller's sequence's job.
pub fn assign_mrn(resource: &mut Value, year: i32, sequence: u32, system: &str) -> Option<String> {
    if patient_mrn(resource).is_some() {
        return None;
    }
    let mrn = Mrn::generated(year, sequence);
    let identifiers = super::json::child_list(object_mut(resource), "identifier");
    identifiers.push(mrn_identifier(Some(system), &mrn));
    Some(mrn.as_str().to_owned())
}

// ---------------------------------------------------------------------------------------------
// Coverage

/// An active Coverage of order 1: at most one per beneficiary (checked by the server).
pub fn is_active_primary(resource: &Value) -> bool {
    str_of(resource, "status") == Some("active") && resource.get("order").and_then(Value::as_u64) == Some(1)
}

/// The beneficiary reference of a Coverage.
pub fn coverage_beneficiary(resource: &Value) -> Option<String> {
    resource.get("beneficiary").and_then(|b| str_of(b, "reference")).map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// Appointment booking

/// Appointment statuses that hold the practitioner's time. Proposed, pending and waitlisted
/// appointments are not yet agreed; fulfilled, cancelled, noshow and entered-in-error ones no
/// longer hold time.
pub const OCCUPYING_APPOINTMENT_STATUSES: &[&str] = &["booked", "arrived", "checked-in"];

/// The time an appointment occupies and the practitioners it occupies, for the double-booking
/// check: `[start, end)` where end is `end`, else `start + minutesDuration`. `None` when the
/// status does not occupy time or the times are missing or unreadable. Participants who
/// declined are left out.
pub fn booked_interval(resource: &Value) -> Option<(DateTime<Utc>, DateTime<Utc>, Vec<String>)> {
    let status = str_of(resource, "status")?;
    if !OCCUPYING_APPOINTMENT_STATUSES.contains(&status) {
        return None;
    }
    let start = FhirDateTime::parse(str_of(resource, "start")?).ok()?.instant()?;
    let end = match str_of(resource, "end") {
        Some(end) => FhirDateTime::parse(end).ok()?.instant()?,
        None => start + TimeDelta::minutes(resource.get("minutesDuration")?.as_i64()?),
    };
    let practitioners = items(resource, "participant")
        .iter()
        .filter(|p| str_of(p, "status") != Some("declined"))
        .filter_map(|p| p.get("actor").and_then(|a| str_of(a, "reference")))
        .filter(|r| points_at(r, "Practitioner"))
        .map(str::to_owned)
        .collect();
    Some((start, end, practitioners))
}

/// Whether two `[start, end)` intervals share any time; back-to-back appointments do not.
pub fn intervals_overlap(a: (DateTime<Utc>, DateTime<Utc>), b: (DateTime<Utc>, DateTime<Utc>)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The Slots an Appointment books, whose status the server sets to busy.
pub fn appointment_slots(resource: &Value) -> Vec<String> {
    items(resource, "slot").iter().filter_map(|s| str_of(s, "reference")).map(str::to_owned).collect()
}

// ---------------------------------------------------------------------------------------------
// Encounter

/// The EMR status of an Encounter (signed and amended are told apart from completed by the Kiln
/// `emr-status` extension).
pub fn encounter_status(resource: &Value) -> Option<EncounterStatus> {
    encounter::status_of(resource)
}

/// A signed (or amended) encounter is locked: the server refuses updates that are not
/// amendments with a reason.
pub fn encounter_is_locked(resource: &Value) -> bool {
    encounter_status(resource).is_some_and(EncounterStatus::is_locked)
}

/// The code of the first coding of `concept` in `system`, for callers holding raw JSON.
pub fn concept_code<'a>(concept: &'a Value, system: &str) -> Option<&'a str> {
    coding_code(concept, system)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 6, 1, 12, 0, 0).unwrap()
    }

    fn check(resource: &Value) -> Vec<RuleViolation> {
        let rt = resource["resourceType"].as_str().unwrap();
        check_resource(rt, resource, WriteKind::Create, now())
    }

    fn vital(code: &str, value: Value, ucum: Option<&str>) -> Value {
        let mut q = json!({"value": value});
        if let Some(ucum) = ucum {
            q["unit"] = json!(ucum);
            q["system"] = json!(UCUM);
            q["code"] = json!(ucum);
        }
        json!({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": "2030-06-01T10:00:00Z",
            "valueQuantity": q
        })
    }

    fn blood_pressure(systolic: Value, diastolic: Value) -> Value {
        json!({
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
            "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
            "component": [
                {"code": {"coding": [{"system": LOINC, "code": "8480-6"}]}, "valueQuantity": {"value": systolic, "system": UCUM, "code": "mm[Hg]"}},
                {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]}, "valueQuantity": {"value": diastolic, "system": UCUM, "code": "mm[Hg]"}}
            ]
        })
    }

    fn only(violations: Vec<RuleViolation>) -> RuleViolation {
        assert_eq!(violations.len(), 1, "{violations:#?}");
        violations.into_iter().next().unwrap()
    }

    #[test]
    fn valid_vitals_pass() {
        let cases = [
            vital("8867-4", json!(72), Some("/min")),
            vital("9279-1", json!(16), Some("/min")),
            vital("8310-5", json!(37.2), Some("Cel")),
            vital("8310-5", json!(98.6), Some("[degF]")),
            vital("59408-5", json!(97), Some("%")),
            vital("2708-6", json!(100), Some("%")),
            vital("29463-7", json!(70.5), Some("kg")),
            vital("29463-7", json!(155), Some("[lb_av]")),
            vital("8302-2", json!(178), Some("cm")),
            vital("8302-2", json!(70), Some("[in_i]")),
            vital("39156-5", json!(24.1), Some("kg/m2")),
            vital("72514-3", json!(0), Some("{score}")),
            vital("72514-3", json!(10), None),
            blood_pressure(json!(120), json!(80)),
        ];
        for case in cases {
            assert_eq!(check(&case), vec![], "{case}");
        }
    }

    #[test]
    fn impossible_values_are_refused_with_the_range() {
        let v = only(check(&vital("8867-4", json!(900), Some("/min"))));
        assert_eq!(v.expression, "Observation.valueQuantity.value");
        assert_eq!(v.kind, ViolationKind::BusinessRule);
        assert_eq!(v.message, "heart rate of 900 /min is not physiologically possible: expected 20 to 300 /min");

        let v = only(check(&vital("72514-3", json!(11), Some("{score}"))));
        assert_eq!(v.expression, "Observation.valueQuantity.value");
        assert!(v.message.contains("0 to 10"), "{}", v.message);

        let v = only(check(&vital("72514-3", json!(4.5), None)));
        assert!(v.message.contains("whole number"), "{}", v.message);

        for (code, value, ucum) in [
            ("9279-1", json!(2), "/min"),
            ("8310-5", json!(50), "Cel"),
            ("8310-5", json!(37), "[degF]"),
            ("59408-5", json!(101), "%"),
            ("29463-7", json!(0.1), "kg"),
            ("29463-7", json!(2000), "[lb_av]"),
            ("8302-2", json!(300), "cm"),
            ("8302-2", json!(120), "[in_i]"),
            ("39156-5", json!(300), "kg/m2"),
        ] {
            let v = only(check(&vital(code, value.clone(), Some(ucum))));
            assert_eq!(v.expression, "Observation.valueQuantity.value", "{code} {value}");
            assert!(v.message.contains(ucum), "{}", v.message);
        }
    }

    #[test]
    fn range_bounds_are_inclusive() {
        assert_eq!(check(&vital("8867-4", json!(20), Some("/min"))), vec![]);
        assert_eq!(check(&vital("8867-4", json!(300), Some("/min"))), vec![]);
        assert_eq!(check(&vital("8867-4", json!(300.5), Some("/min"))).len(), 1);
    }

    #[test]
    fn wrong_or_missing_units_are_invalid() {
        let v = only(check(&vital("8867-4", json!(72), Some("/s"))));
        assert_eq!(v.expression, "Observation.valueQuantity.code");
        assert_eq!(v.kind, ViolationKind::Invalid);
        assert!(v.message.contains("/min"));

        let v = only(check(&vital("8310-5", json!(37), Some("K"))));
        assert!(v.message.contains("Cel or [degF]"), "{}", v.message);

        let v = only(check(&vital("29463-7", json!(70), None)));
        assert_eq!(v.expression, "Observation.valueQuantity.code");

        let mut not_ucum = vital("8867-4", json!(72), Some("/min"));
        not_ucum["valueQuantity"]["system"] = json!("http://example.org/units");
        assert_eq!(only(check(&not_ucum)).expression, "Observation.valueQuantity.system");

        let mut as_string = vital("8867-4", json!(72), None);
        as_string.as_object_mut().unwrap().remove("valueQuantity");
        as_string["valueString"] = json!("72 bpm");
        assert_eq!(only(check(&as_string)).expression, "Observation.valueString");
    }

    #[test]
    fn vital_code_without_category_is_still_checked_and_other_codes_are_not() {
        let mut no_category = vital("8867-4", json!(900), Some("/min"));
        no_category.as_object_mut().unwrap().remove("category");
        assert_eq!(check(&no_category).len(), 1);
        let head = vital("9843-4", json!(900), Some("cm"));
        assert_eq!(check(&head), vec![]);
        let lab = json!({"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "2345-7"}]}, "valueQuantity": {"value": 900, "code": "mg/dL"}});
        assert_eq!(check(&lab), vec![]);
    }

    #[test]
    fn blood_pressure_panel_rules() {
        let v = only(check(&blood_pressure(json!(80), json!(120))));
        assert_eq!(v.expression, "Observation.component[1].valueQuantity.value");
        assert!(v.message.contains("lower than systolic"));

        let v = only(check(&blood_pressure(json!(400), json!(80))));
        assert_eq!(v.expression, "Observation.component[0].valueQuantity.value");
        assert!(v.message.contains("40 to 300 mm[Hg]"));

        let mut wrong_unit = blood_pressure(json!(120), json!(80));
        wrong_unit["component"][1]["valueQuantity"]["code"] = json!("kPa");
        assert_eq!(only(check(&wrong_unit)).expression, "Observation.component[1].valueQuantity.code");

        let mut one_side = blood_pressure(json!(120), json!(80));
        one_side["component"].as_array_mut().unwrap().remove(1);
        let v = only(check(&one_side));
        assert_eq!(v.expression, "Observation.component");
        assert!(v.message.contains("8462-4"));

        let mut absent_value = blood_pressure(json!(120), json!(80));
        absent_value["component"][1].as_object_mut().unwrap().remove("valueQuantity");
        absent_value["component"][1]["dataAbsentReason"] = json!({"text": "cuff slipped"});
        assert_eq!(check(&absent_value), vec![]);

        let mut panel_value = blood_pressure(json!(120), json!(80));
        panel_value["valueQuantity"] = json!({"value": 120, "system": UCUM, "code": "mm[Hg]"});
        assert_eq!(only(check(&panel_value)).expression, "Observation.valueQuantity");
    }

    fn appointment(status: &str, start: &str, end: &str) -> Value {
        json!({"resourceType": "Appointment", "status": status, "start": start, "end": end,
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/d1"}, "status": "accepted"},
            {"actor": {"reference": "https://other.example.org/fhir/Practitioner/d2"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/d3"}, "status": "declined"}
        ]})
    }

    #[test]
    fn appointment_end_must_follow_start() {
        let ok = appointment("booked", "2030-06-02T09:00:00Z", "2030-06-02T09:30:00Z");
        assert_eq!(check(&ok), vec![]);
        let v = only(check(&appointment("booked", "2030-06-02T09:00:00Z", "2030-06-02T09:00:00Z")));
        assert_eq!(v.expression, "Appointment.end");
        assert_eq!(v.kind, ViolationKind::Invalid);
        let v = only(check(&appointment("booked", "2030-06-02T09:00:00Z", "2030-06-02T08:00:00Z")));
        assert_eq!(v.expression, "Appointment.end");
        let v = only(check(&appointment("booked", "2030-06-02T09:00:00Z", "tomorrow")));
        assert_eq!(v.expression, "Appointment.end");
    }

    #[test]
    fn appointment_in_the_past_is_refused_only_when_created_to_book_time() {
        let past = appointment("booked", "2030-06-01T11:00:00Z", "2030-06-01T11:30:00Z");
        let v = only(check_resource("Appointment", &past, WriteKind::Create, now()));
        assert_eq!(v.expression, "Appointment.start");
        assert_eq!(v.kind, ViolationKind::BusinessRule);
        assert!(v.message.contains("in the past"));
        assert_eq!(check_resource("Appointment", &past, WriteKind::Update, now()), vec![]);
        let fulfilled = appointment("fulfilled", "2030-06-01T11:00:00Z", "2030-06-01T11:30:00Z");
        assert_eq!(check_resource("Appointment", &fulfilled, WriteKind::Create, now()), vec![]);
        let proposed = appointment("proposed", "2030-05-01T11:00:00Z", "2030-05-01T11:30:00Z");
        assert_eq!(check_resource("Appointment", &proposed, WriteKind::Create, now()).len(), 1);
        let waitlist_without_time = json!({"resourceType": "Appointment", "status": "waitlist"});
        assert_eq!(check(&waitlist_without_time), vec![]);
    }

    #[test]
    fn slot_and_schedule_horizon_must_end_after_start() {
        let slot = |start: &str, end: &str| json!({"resourceType": "Slot", "status": "free", "schedule": {"reference": "Schedule/s"}, "start": start, "end": end});
        assert_eq!(check(&slot("2030-06-02T09:00:00Z", "2030-06-02T09:15:00Z")), vec![]);
        assert_eq!(only(check(&slot("2030-06-02T09:15:00Z", "2030-06-02T09:00:00Z"))).expression, "Slot.end");

        let schedule = |start: &str, end: &str| json!({"resourceType": "Schedule", "actor": [{"reference": "Practitioner/d1"}], "planningHorizon": {"start": start, "end": end}});
        assert_eq!(check(&schedule("2030-06-01", "2030-06-01")), vec![], "a one-day horizon");
        assert_eq!(check(&schedule("2030-06-01", "2030-08")), vec![]);
        let v = only(check(&schedule("2030-06-02", "2030-06-01")));
        assert_eq!(v.expression, "Schedule.planningHorizon.end");
        assert_eq!(check(&json!({"resourceType": "Schedule"})), vec![]);
    }

    fn prescription() -> Value {
        json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
            "medicationCodeableConcept": {"text": "Amoxicillin"},
            "subject": {"reference": "Patient/p1"},
            "requester": {"reference": "Practitioner/d1"},
            "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 500, "unit": "mg"}}],
                                   "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}}]})
    }

    #[test]
    fn prescription_with_dose_frequency_and_practitioner_passes() {
        assert_eq!(check(&prescription()), vec![]);
        let mut text_and_code = prescription();
        text_and_code["dosageInstruction"] = json!([{"text": "500 mg", "timing": {"code": {"text": "twice daily"}}}]);
        assert_eq!(check(&text_and_code), vec![]);
        let mut second_ok = prescription();
        second_ok["dosageInstruction"] =
            json!([{"text": "see below"}, {"text": "1 tab", "timing": {"repeat": {"when": ["HS"]}}}]);
        assert_eq!(check(&second_ok), vec![]);
        let mut contained = prescription();
        contained["contained"] = json!([{"resourceType": "Practitioner", "id": "pr"}]);
        contained["requester"] = json!({"reference": "#pr"});
        assert_eq!(check(&contained), vec![]);
        let mut absolute = prescription();
        absolute["requester"] = json!({"reference": "https://ehr.example.org/fhir/Practitioner/9/_history/2"});
        assert_eq!(check(&absolute), vec![]);
    }

    #[test]
    fn single_doses_infusions_and_text_sigs_state_a_frequency() {
        let dose = json!([{"doseQuantity": {"value": 500, "unit": "mg"}}]);
        for timing_or_text in [
            json!({"doseAndRate": dose, "timing": {"repeat": {"count": 1}}}),
            json!({"doseAndRate": dose, "timing": {"repeat": {"duration": 33.3, "durationUnit": "h"}}}),
            json!({"text": "Take one tablet daily as directed"}),
        ] {
            let mut p = prescription();
            p["dosageInstruction"] = json!([timing_or_text]);
            assert_eq!(check(&p), vec![], "{}", p["dosageInstruction"]);
        }
        let mut duration_without_unit = prescription();
        duration_without_unit["dosageInstruction"] =
            json!([{"doseAndRate": dose, "timing": {"repeat": {"duration": 2}}}]);
        assert_eq!(only(check(&duration_without_unit)).expression, "MedicationRequest.dosageInstruction[0].timing");
    }

    #[test]
    fn prescription_without_dosage_frequency_or_prescriber_is_refused() {
        let mut none = prescription();
        none.as_object_mut().unwrap().remove("dosageInstruction");
        assert_eq!(only(check(&none)).expression, "MedicationRequest.dosageInstruction");

        let mut no_frequency = prescription();
        no_frequency["dosageInstruction"][0].as_object_mut().unwrap().remove("timing");
        assert_eq!(only(check(&no_frequency)).expression, "MedicationRequest.dosageInstruction[0].timing");

        let mut prn_only = prescription();
        prn_only["dosageInstruction"][0]["timing"] = json!({"repeat": {"frequency": 2}});
        prn_only["dosageInstruction"][0]["asNeededBoolean"] = json!(true);
        assert_eq!(only(check(&prn_only)).expression, "MedicationRequest.dosageInstruction[0].timing");

        let mut no_dose = prescription();
        no_dose["dosageInstruction"][0].as_object_mut().unwrap().remove("doseAndRate");
        assert_eq!(only(check(&no_dose)).expression, "MedicationRequest.dosageInstruction[0].doseAndRate");

        let mut no_requester = prescription();
        no_requester.as_object_mut().unwrap().remove("requester");
        let v = only(check(&no_requester));
        assert_eq!((v.expression.as_str(), v.kind), ("MedicationRequest.requester", ViolationKind::BusinessRule));

        for requester in [
            json!({"reference": "PractitionerRole/r1"}),
            json!({"reference": "Patient/p1"}),
            json!({"identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}}),
            json!({"reference": "#missing"}),
            json!({"type": "Organization", "reference": "urn:uuid:0b0c"}),
        ] {
            let mut wrong = prescription();
            wrong["requester"] = requester.clone();
            let v = only(check(&wrong));
            assert_eq!(v.expression, "MedicationRequest.requester.reference", "{requester}");
        }
        let mut typed_urn = prescription();
        typed_urn["requester"] = json!({"type": "Practitioner", "reference": "urn:uuid:0b0c"});
        assert_eq!(check(&typed_urn), vec![]);

        let mut voided = none.clone();
        voided["status"] = json!("entered-in-error");
        assert_eq!(check(&voided), vec![]);
    }

    #[test]
    fn resource_types_without_rules_pass() {
        assert_eq!(check_resource("Patient", &json!({"resourceType": "Patient"}), WriteKind::Create, now()), vec![]);
        assert_eq!(check_resource("Binary", &json!({}), WriteKind::Update, now()), vec![]);
    }

    #[test]
    fn mrn_helpers() {
        let mut patient = json!({"resourceType": "Patient", "identifier": [{"system": "urn:ssn", "value": "x"}]});
        assert_eq!(patient_mrn(&patient), None);
        assert_eq!(assign_mrn(&mut patient, 2024, 42, "urn:kiln:clinic-1:mrn").as_deref(), Some("MRN-2024-00042"));
        assert_eq!(patient_mrn(&patient), Some((Some("urn:kiln:clinic-1:mrn".into()), "MRN-2024-00042".into())));
        assert_eq!(patient["identifier"][0], json!({"system": "urn:ssn", "value": "x"}));
        assert_eq!(assign_mrn(&mut patient, 2024, 43, "urn:kiln:clinic-1:mrn"), None);
        assert_eq!(patient["identifier"].as_array().unwrap().len(), 2);

        let own = json!({"resourceType": "Patient", "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "A-77"}]});
        assert_eq!(patient_mrn(&own), Some((None, "A-77".into())));
        assert_eq!(check(&own), vec![], "clinic MRN formats are accepted");

        let mut bare = json!({"resourceType": "Patient"});
        assign_mrn(&mut bare, 2025, 1, "urn:s");
        assert_eq!(bare["identifier"][0]["type"]["coding"][0]["code"], "MR");
        assert_eq!(bare["identifier"][0]["value"], "MRN-2025-00001");
    }

    #[test]
    fn coverage_helpers() {
        let cov = |status: &str, order: Value| json!({"resourceType": "Coverage", "status": status, "order": order, "beneficiary": {"reference": "Patient/p1"}});
        assert!(is_active_primary(&cov("active", json!(1))));
        assert!(!is_active_primary(&cov("active", json!(2))));
        assert!(!is_active_primary(&cov("cancelled", json!(1))));
        assert!(!is_active_primary(&json!({"status": "active"})));
        assert_eq!(coverage_beneficiary(&cov("active", json!(1))).as_deref(), Some("Patient/p1"));
        assert_eq!(coverage_beneficiary(&json!({})), None);
    }

    #[test]
    fn booked_interval_covers_occupying_statuses_only() {
        let booked = appointment("booked", "2030-06-02T09:00:00Z", "2030-06-02T09:30:00+00:00");
        let (start, end, practitioners) = booked_interval(&booked).unwrap();
        assert_eq!(start, Utc.with_ymd_and_hms(2030, 6, 2, 9, 0, 0).unwrap());
        assert_eq!(end, Utc.with_ymd_and_hms(2030, 6, 2, 9, 30, 0).unwrap());
        assert_eq!(
            practitioners,
            vec!["Practitioner/d1".to_owned(), "https://other.example.org/fhir/Practitioner/d2".to_owned()]
        );
        for status in ["arrived", "checked-in"] {
            assert!(booked_interval(&appointment(status, "2030-06-02T09:00:00Z", "2030-06-02T09:30:00Z")).is_some());
        }
        for status in ["proposed", "pending", "waitlist", "fulfilled", "cancelled", "noshow", "entered-in-error"] {
            assert!(
                booked_interval(&appointment(status, "2030-06-02T09:00:00Z", "2030-06-02T09:30:00Z")).is_none(),
                "{status}"
            );
        }
        let mut by_duration = booked.clone();
        by_duration.as_object_mut().unwrap().remove("end");
        by_duration["minutesDuration"] = json!(45);
        assert_eq!(booked_interval(&by_duration).unwrap().1, Utc.with_ymd_and_hms(2030, 6, 2, 9, 45, 0).unwrap());
        by_duration.as_object_mut().unwrap().remove("minutesDuration");
        assert!(booked_interval(&by_duration).is_none());
    }

    #[test]
    fn overlap_is_half_open() {
        let t = |h: u32, m: u32| Utc.with_ymd_and_hms(2030, 6, 2, h, m, 0).unwrap();
        assert!(intervals_overlap((t(9, 0), t(9, 30)), (t(9, 15), t(9, 45))));
        assert!(intervals_overlap((t(9, 0), t(10, 0)), (t(9, 15), t(9, 30))));
        assert!(!intervals_overlap((t(9, 0), t(9, 30)), (t(9, 30), t(10, 0))));
        let slots = json!({"slot": [{"reference": "Slot/a"}, {"reference": "Slot/b"}]});
        assert_eq!(appointment_slots(&slots), vec!["Slot/a".to_owned(), "Slot/b".to_owned()]);
    }

    #[test]
    fn encounter_lock_and_prescriber_helpers() {
        let signed = json!({"resourceType": "Encounter", "status": "finished",
            "extension": [{"url": crate::emr::systems::KILN_EMR_STATUS_EXT, "valueCode": "signed"}]});
        assert!(encounter_is_locked(&signed));
        assert_eq!(encounter_status(&signed), Some(EncounterStatus::Signed));
        let finished = json!({"resourceType": "Encounter", "status": "finished"});
        assert!(!encounter_is_locked(&finished));
        assert_eq!(encounter_status(&finished), Some(EncounterStatus::Completed));

        let practitioner = json!({"resourceType": "Practitioner",
            "identifier": [{"system": crate::emr::systems::US_DEA, "value": "AB1234563"}],
            "qualification": [{"code": {"text": "BLS"}}, {"code": {"text": "MD"}, "identifier": [{"value": "TX-1"}]}]});
        assert_eq!(practitioner_license_number(&practitioner).as_deref(), Some("TX-1"));
        assert_eq!(practitioner_dea_number(&practitioner).as_deref(), Some("AB1234563"));
        assert_eq!(practitioner_license_number(&json!({})), None);
        assert_eq!(medication_requester(&prescription()).as_deref(), Some("Practitioner/d1"));
        assert_eq!(concept_code(&json!({"coding": [{"system": "s", "code": "c"}]}), "s"), Some("c"));
    }
}
