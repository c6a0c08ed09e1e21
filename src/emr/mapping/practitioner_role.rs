//! PractitionerRole <-> FHIR R4 PractitionerRole (http://hl7.org/fhir/R4/practitionerrole.html).
//!
//! practitioner -> `practitioner`; clinic/department -> `organization`; staff role -> `code`
//! (Kiln staff-role code, plus the FHIR practitioner-role code where one exists);
//! specialization -> `specialty`; office_location -> `location`; working_hours ->
//! `availableTime`; `availabilityExceptions`; calendar_id -> `identifier` (Kiln calendar-id
//! system); inactive -> `active=false`.

use chrono::NaiveTime;
use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{PractitionerRole, StaffRole, Weekday, WorkingHours};
use crate::emr::systems::{KILN_CALENDAR_ID, KILN_STAFF_ROLE, PRACTITIONER_ROLE};

const AT: &str = "PractitionerRole";

pub fn from_fhir(resource: &Value) -> Result<PractitionerRole, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(PractitionerRole {
        id: read_id(obj)?,
        practitioner: read_reference(obj, "practitioner", AT)?,
        organization: read_reference(obj, "organization", AT)?,
        role: read_role(obj)?,
        specialties: read_specialties(obj)?,
        location: read_location(obj)?,
        working_hours: read_working_hours(obj)?,
        availability_exceptions: opt_string(obj, "availabilityExceptions", AT)?,
        calendar_id: read_identifier(obj, KILN_CALENDAR_ID, AT)?,
        status: read_active(obj, AT)?,
        source,
    })
}

pub fn to_fhir(role: &PractitionerRole) -> Value {
    let mut out = Overlay::new(&role.source, AT);
    out.field(&role.id, read_id, put_id);
    out.field(
        &role.calendar_id,
        |o| read_identifier(o, KILN_CALENDAR_ID, AT),
        |o, c| put_identifier(o, KILN_CALENDAR_ID, c.as_deref()),
    );
    out.field(&role.status, |o| read_active(o, AT), put_active);
    out.field(
        &role.practitioner,
        |o| read_reference(o, "practitioner", AT),
        |o, r| put_reference(o, "practitioner", r.as_deref()),
    );
    out.field(
        &role.organization,
        |o| read_reference(o, "organization", AT),
        |o, r| put_reference(o, "organization", r.as_deref()),
    );
    out.field(&role.role, read_role, put_role);
    out.field(&role.specialties, read_specialties, |o, v| put_specialties(o, v));
    out.field(&role.location, read_location, |o, l| {
        overlay_one(o, "location", |_| true, |_| true, l.as_ref(), write_party, party_value)
    });
    out.field(&role.working_hours, read_working_hours, |o, v| put_working_hours(o, v));
    out.field(
        &role.availability_exceptions,
        |o| opt_string(o, "availabilityExceptions", AT),
        |o, text| put_str(o, "availabilityExceptions", text.as_deref()),
    );
    out.finish()
}

/// The FHIR practitioner-role code matching a staff role, where FHIR has one.
fn fhir_role_code(role: StaffRole) -> Option<(&'static str, &'static str)> {
    match role {
        StaffRole::Physician => Some(("doctor", "Doctor")),
        StaffRole::Nurse => Some(("nurse", "Nurse")),
        StaffRole::ItSupport => Some(("ict", "ICT professional")),
        _ => None,
    }
}

fn is_role_concept(concept: &Value) -> bool {
    coding_code(concept, KILN_STAFF_ROLE).is_some() || coding_code(concept, PRACTITIONER_ROLE).is_some()
}

fn read_role(obj: &Object) -> Result<Option<StaffRole>, MappingError> {
    let codes = list(obj, "code", AT)?;
    let Some((i, concept)) = pick_one(codes, is_role_concept, |_| true) else {
        return Ok(None);
    };
    if let Some(code) = coding_code(concept, KILN_STAFF_ROLE) {
        return StaffRole::parse(code)
            .map(Some)
            .ok_or_else(|| MappingError::invalid(format!("{AT}.code[{i}]"), format!("unknown staff role `{code}`")));
    }
    Ok(match coding_code(concept, PRACTITIONER_ROLE) {
        Some("doctor") => Some(StaffRole::Physician),
        Some("nurse") => Some(StaffRole::Nurse),
        Some("ict") => Some(StaffRole::ItSupport),
        _ => None,
    })
}

fn role_concept(role: StaffRole) -> Value {
    let mut cc = coded(KILN_STAFF_ROLE, role.code(), None);
    if let Some((code, display)) = fhir_role_code(role) {
        child_list(object_mut(&mut cc), "coding").push(coding(PRACTITIONER_ROLE, code, Some(display)));
    }
    cc
}

fn put_role(obj: &mut Object, role: &Option<StaffRole>) {
    overlay_one(
        obj,
        "code",
        is_role_concept,
        |_| true,
        role.as_ref(),
        |cc, r| *cc = role_concept(*r),
        |r| role_concept(*r),
    );
}

fn read_specialties(obj: &Object) -> Result<Vec<String>, MappingError> {
    Ok(list(obj, "specialty", AT)?.iter().filter_map(concept_label).collect())
}

fn put_specialties(obj: &mut Object, specialties: &[String]) {
    overlay_list(
        obj,
        "specialty",
        |_| true,
        specialties,
        |cc, s| concept_label(cc).as_deref() == Some(s),
        |cc, s| *cc = text_concept(s),
        |s| text_concept(s),
    );
}

fn read_location(obj: &Object) -> Result<Option<crate::emr::models::Party>, MappingError> {
    list(obj, "location", AT)?.first().map(|l| read_party(l, &format!("{AT}.location[0]"))).transpose()
}

fn read_time(obj: &Object, key: &str, at: &str) -> Result<Option<NaiveTime>, MappingError> {
    opt_string(obj, key, at)?
        .map(|t| {
            NaiveTime::parse_from_str(&t, "%H:%M:%S%.f")
                .map_err(|_| MappingError::invalid(format!("{at}.{key}"), "expected a time hh:mm:ss"))
        })
        .transpose()
}

fn fhir_time(t: NaiveTime) -> String {
    t.format("%H:%M:%S%.f").to_string()
}

fn read_hours(value: &Value, at: &str) -> Result<WorkingHours, MappingError> {
    let t = as_object(value, at)?;
    let days = string_list(t, "daysOfWeek", at)?
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Weekday::parse(d)
                .ok_or_else(|| MappingError::invalid(format!("{at}.daysOfWeek[{i}]"), format!("unknown day `{d}`")))
        })
        .collect::<Result<_, _>>()?;
    Ok(WorkingHours {
        days,
        all_day: opt_bool(t, "allDay", at)?.unwrap_or(false),
        start: read_time(t, "availableStartTime", at)?,
        end: read_time(t, "availableEndTime", at)?,
    })
}

fn read_working_hours(obj: &Object) -> Result<Vec<WorkingHours>, MappingError> {
    list(obj, "availableTime", AT)?
        .iter()
        .enumerate()
        .map(|(i, t)| read_hours(t, &format!("{AT}.availableTime[{i}]")))
        .collect()
}

fn write_hours(value: &mut Value, hours: &WorkingHours) {
    let t = object_mut(value);
    let days: Vec<String> = hours.days.iter().map(|d| d.code().to_owned()).collect();
    put_strings(t, "daysOfWeek", &days);
    if hours.all_day || t.get("allDay") != Some(&Value::Bool(false)) {
        put_bool(t, "allDay", hours.all_day.then_some(true));
    }
    if read_time(t, "availableStartTime", "").ok().flatten() != hours.start {
        put_str(t, "availableStartTime", hours.start.map(fhir_time).as_deref());
    }
    if read_time(t, "availableEndTime", "").ok().flatten() != hours.end {
        put_str(t, "availableEndTime", hours.end.map(fhir_time).as_deref());
    }
}

fn put_working_hours(obj: &mut Object, hours: &[WorkingHours]) {
    overlay_list(
        obj,
        "availableTime",
        |_| true,
        hours,
        |v, h| read_hours(v, "").ok().as_ref() == Some(h),
        write_hours,
        |h| {
            let mut v = Value::Object(Object::new());
            write_hours(&mut v, h);
            v
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::Party;
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "PractitionerRole",
            "id": "role-1",
            "meta": {"versionId": "2", "lastUpdated": "2024-02-02T02:02:02Z"},
            "extension": [{"url": "http://example.org/accepting-patients", "valueBoolean": true}],
            "identifier": [
                {"system": "http://www.acme.org/practitioners", "value": "23"},
                {"system": "https://kiln.example.org/fhir/sid/calendar-id", "value": "cal-77"}
            ],
            "active": true,
            "period": {"start": "2012-01-01", "end": "2032-03-31"},
            "practitioner": {"reference": "Practitioner/dr-1", "display": "Dr Adam Careful"},
            "organization": {"reference": "Organization/cardiology"},
            "code": [
                {"coding": [{"system": "http://snomed.info/sct", "code": "17561000", "display": "Cardiologist"}]},
                {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role", "code": "doctor"}]}
            ],
            "specialty": [{"coding": [{"system": "http://snomed.info/sct", "code": "394579002", "display": "Cardiology"}]}],
            "location": [{"reference": "Location/office-12", "display": "Suite 12"}],
            "healthcareService": [{"reference": "HealthcareService/echo"}],
            "telecom": [{"system": "phone", "value": "(03) 5555 6473", "use": "work"}],
            "availableTime": [
                {"daysOfWeek": ["mon", "tue", "wed"], "availableStartTime": "09:00:00", "availableEndTime": "16:30:00"},
                {"daysOfWeek": ["thu", "fri"], "availableStartTime": "09:00:00.000", "availableEndTime": "12:00:00"},
                {"daysOfWeek": ["sat"], "allDay": false}
            ],
            "notAvailable": [{"description": "Christmas", "during": {"start": "2024-12-24", "end": "2024-12-26"}}],
            "availabilityExceptions": "Public holidays excluded"
        })
    }

    #[test]
    fn realistic_role_is_lossless() {
        let r = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(r.role, Some(StaffRole::Physician));
        assert_eq!(r.specialties, vec!["Cardiology".to_owned()]);
        assert_eq!(r.calendar_id.as_deref(), Some("cal-77"));
        assert_eq!(r.working_hours.len(), 3);
        assert_eq!(r.working_hours[1].start, NaiveTime::from_hms_opt(9, 0, 0));
        assert_eq!(r.location.as_ref().unwrap().display.as_deref(), Some("Suite 12"));
    }

    #[test]
    fn seed_role_round_trips() {
        let seed = PractitionerRole {
            practitioner: Some("Practitioner/9".into()),
            organization: Some("Organization/dept-2".into()),
            role: Some(StaffRole::Receptionist),
            specialties: vec!["General Practice".into()],
            location: Some(Party::named("Room 4")),
            working_hours: vec![WorkingHours {
                days: vec![Weekday::Mon, Weekday::Fri],
                all_day: false,
                start: NaiveTime::from_hms_opt(8, 30, 0),
                end: NaiveTime::from_hms_opt(17, 0, 0),
            }],
            availability_exceptions: Some("Closed on federal holidays".into()),
            calendar_id: Some("cal-9".into()),
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |r| r.source = Default::default());
        assert_eq!(fhir["code"][0]["coding"][0]["code"], "receptionist");
        assert_eq!(
            fhir["availableTime"][0],
            json!({"daysOfWeek": ["mon", "fri"], "availableStartTime": "08:30:00", "availableEndTime": "17:00:00"})
        );
        assert_eq!(fhir["location"][0], json!({"display": "Room 4"}));

        let physician = PractitionerRole { role: Some(StaffRole::Physician), ..Default::default() };
        let fhir = assert_model_round_trip(&physician, to_fhir, from_fhir, |r| r.source = Default::default());
        assert!(has_coding(&fhir["code"][0], PRACTITIONER_ROLE, "doctor"));
    }

    #[test]
    fn changing_the_role_leaves_other_codes() {
        let original = realistic();
        let mut r = from_fhir(&original).unwrap();
        r.role = Some(StaffRole::Nurse);
        let out = to_fhir(&r);
        assert_eq!(out["code"][0], original["code"][0]);
        assert_eq!(out["code"][1]["coding"][0]["code"], "nurse");
        assert!(has_coding(&out["code"][1], PRACTITIONER_ROLE, "nurse"));
    }

    #[test]
    fn bad_day_is_refused() {
        let mut r = realistic();
        r["availableTime"][0]["daysOfWeek"][1] = json!("tuesday");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("PractitionerRole.availableTime[0].daysOfWeek[1]"));
    }
}
