//! Appointment <-> FHIR R4 Appointment (http://hl7.org/fhir/R4/appointment.html).
//!
//! status scheduled/confirmed/in_progress/completed/cancelled/no_show ->
//! proposed/booked/arrived/fulfilled/cancelled/noshow; type -> `appointmentType` (v2-0276
//! ROUTINE, FOLLOWUP, EMERGENCY, WALKIN, CHECKUP; Kiln codes for consultation, surgery,
//! diagnostic); priority low/medium/high/urgent -> `priority` 9/5/3/1 (iCalendar scale, read
//! back 6-9/5/3-4/1-2); reason -> `reasonCode`; start/end/duration -> `start`/`end`/
//! `minutesDuration`; availability slot -> `slot`; notes -> `comment`; patient, doctor and room
//! -> `participant` (the room as a Location actor); cancellation reason ->
//! `cancelationReason`; who/when cancelled -> Kiln extensions.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{Appointment, AppointmentPriority, AppointmentStatus, AppointmentType, Party};
use crate::emr::systems::{KILN_APPOINTMENT_TYPE, KILN_CANCELLED_AT_EXT, KILN_CANCELLED_BY_EXT, V2_APPOINTMENT_REASON};

const AT: &str = "Appointment";

pub fn from_fhir(resource: &Value) -> Result<Appointment, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Appointment {
        id: read_id(obj)?,
        status: read_status(obj)?,
        cancellation_reason: read_concept_text(obj, "cancelationReason", AT)?,
        appointment_type: read_type(obj)?,
        reason: read_first_concept_text(obj, "reasonCode", AT)?,
        priority: read_priority(obj)?,
        start: read_instant(obj, "start", AT)?,
        end: read_instant(obj, "end", AT)?,
        minutes_duration: opt_u32(obj, "minutesDuration", AT)?,
        slot: read_slot(obj)?,
        created: read_datetime(obj, "created", AT)?,
        notes: opt_string(obj, "comment", AT)?,
        patient: read_actor(obj, "Patient")?,
        practitioner: read_actor(obj, "Practitioner")?,
        room: read_room(obj)?,
        cancelled_by: read_cancelled_by(obj)?,
        cancelled_at: read_cancelled_at(obj)?,
        source,
    })
}

pub fn to_fhir(appointment: &Appointment) -> Value {
    let a = appointment;
    let mut out = Overlay::new(&a.source, AT);
    out.field(&a.id, read_id, put_id);
    out.field(&a.cancelled_by, read_cancelled_by, |o, r| {
        put_extension(o, KILN_CANCELLED_BY_EXT, r.as_deref().map(|r| ("valueReference", reference(r))))
    });
    out.field(&a.cancelled_at, read_cancelled_at, |o, t| {
        put_extension(o, KILN_CANCELLED_AT_EXT, t.as_ref().map(|t| ("valueDateTime", t.as_str().into())))
    });
    out.field(&a.status, read_status, |o, s| put_str(o, "status", Some(status_code(*s))));
    out.field(
        &a.cancellation_reason,
        |o| read_concept_text(o, "cancelationReason", AT),
        |o, r| put_concept_text(o, "cancelationReason", r.as_deref()),
    );
    out.field(&a.appointment_type, read_type, |o, t| put_opt(o, "appointmentType", t.map(type_concept)));
    out.field(
        &a.reason,
        |o| read_first_concept_text(o, "reasonCode", AT),
        |o, r| put_first_concept_text(o, "reasonCode", r.as_deref()),
    );
    out.field(&a.priority, read_priority, |o, p| put_u32(o, "priority", p.map(priority_rank)));
    out.field(&a.start, |o| read_instant(o, "start", AT), |o, t| put_datetime(o, "start", t.as_ref()));
    out.field(&a.end, |o| read_instant(o, "end", AT), |o, t| put_datetime(o, "end", t.as_ref()));
    out.field(&a.minutes_duration, |o| opt_u32(o, "minutesDuration", AT), |o, m| put_u32(o, "minutesDuration", *m));
    out.field(&a.slot, read_slot, |o, s| {
        overlay_one(
            o,
            "slot",
            |_| true,
            |_| true,
            s.as_ref(),
            |r, s| put_str(object_mut(r), "reference", Some(s)),
            |s| reference(s),
        )
    });
    out.field(&a.created, |o| read_datetime(o, "created", AT), |o, t| put_datetime(o, "created", t.as_ref()));
    out.field(&a.notes, |o| opt_string(o, "comment", AT), |o, n| put_str(o, "comment", n.as_deref()));
    out.field(&a.patient, |o| read_actor(o, "Patient"), |o, r| put_actor(o, "Patient", r));
    out.field(&a.practitioner, |o| read_actor(o, "Practitioner"), |o, r| put_actor(o, "Practitioner", r));
    out.field(&a.room, read_room, put_room);
    out.finish()
}

/// The FHIR `Appointment.status` code of a model status.
pub fn status_code(status: AppointmentStatus) -> &'static str {
    match status {
        AppointmentStatus::Scheduled => "proposed",
        AppointmentStatus::Confirmed => "booked",
        AppointmentStatus::InProgress => "arrived",
        AppointmentStatus::Completed => "fulfilled",
        AppointmentStatus::Cancelled => "cancelled",
        AppointmentStatus::NoShow => "noshow",
        AppointmentStatus::Pending => "pending",
        AppointmentStatus::CheckedIn => "checked-in",
        AppointmentStatus::Waitlist => "waitlist",
        AppointmentStatus::EnteredInError => "entered-in-error",
    }
}

fn read_status(obj: &Object) -> Result<AppointmentStatus, MappingError> {
    read_code(obj, "status", AT, |code| AppointmentStatus::ALL.iter().copied().find(|s| status_code(*s) == code))?
        .ok_or_else(|| MappingError::missing("Appointment.status"))
}

fn type_code(kind: AppointmentType) -> (&'static str, &'static str, &'static str) {
    match kind {
        AppointmentType::Routine => (V2_APPOINTMENT_REASON, "ROUTINE", "Routine appointment - default if not valued"),
        AppointmentType::FollowUp => {
            (V2_APPOINTMENT_REASON, "FOLLOWUP", "A follow up visit from a previous appointment")
        }
        AppointmentType::Emergency => (V2_APPOINTMENT_REASON, "EMERGENCY", "Emergency appointment"),
        AppointmentType::WalkIn => (V2_APPOINTMENT_REASON, "WALKIN", "A previously unscheduled walk-in visit"),
        AppointmentType::Checkup => {
            (V2_APPOINTMENT_REASON, "CHECKUP", "A routine check-up, such as an annual physical")
        }
        AppointmentType::Consultation => (KILN_APPOINTMENT_TYPE, "consultation", "Consultation"),
        AppointmentType::Surgery => (KILN_APPOINTMENT_TYPE, "surgery", "Surgery"),
        AppointmentType::Diagnostic => (KILN_APPOINTMENT_TYPE, "diagnostic", "Diagnostic"),
    }
}

fn type_concept(kind: AppointmentType) -> Value {
    let (system, code, display) = type_code(kind);
    coded(system, code, Some(display))
}

/// Codes outside v2-0276 and Kiln's list read as `None` and stay in the source.
fn read_type(obj: &Object) -> Result<Option<AppointmentType>, MappingError> {
    let Some(concept) = opt_object(obj, "appointmentType", AT)? else {
        return Ok(None);
    };
    let concept = Value::Object(concept.clone());
    Ok(AppointmentType::ALL.iter().copied().find(|k| {
        let (system, code, _) = type_code(*k);
        has_coding(&concept, system, code)
    }))
}

fn priority_rank(priority: AppointmentPriority) -> u32 {
    match priority {
        AppointmentPriority::Urgent => 1,
        AppointmentPriority::High => 3,
        AppointmentPriority::Medium => 5,
        AppointmentPriority::Low => 9,
    }
}

fn read_priority(obj: &Object) -> Result<Option<AppointmentPriority>, MappingError> {
    Ok(match opt_u32(obj, "priority", AT)? {
        Some(1..=2) => Some(AppointmentPriority::Urgent),
        Some(3..=4) => Some(AppointmentPriority::High),
        Some(5) => Some(AppointmentPriority::Medium),
        Some(6..=9) => Some(AppointmentPriority::Low),
        _ => None,
    })
}

fn read_slot(obj: &Object) -> Result<Option<String>, MappingError> {
    Ok(list(obj, "slot", AT)?.first().and_then(reference_of))
}

/// Whether a reference (relative, absolute or `Type/id/_history/n`) points at `resource_type`.
pub(crate) fn points_at(reference: &str, resource_type: &str) -> bool {
    let prefix = format!("{resource_type}/");
    reference.starts_with(&prefix) || reference.contains(&format!("/{prefix}"))
}

fn actor_is(participant: &Value, resource_type: &str) -> bool {
    participant.get("actor").is_some_and(|a| str_of(a, "reference").is_some_and(|r| points_at(r, resource_type)))
}

fn read_actor(obj: &Object, resource_type: &str) -> Result<Option<String>, MappingError> {
    let participants = list(obj, "participant", AT)?;
    Ok(pick_one(participants, |p| actor_is(p, resource_type), |_| true)
        .and_then(|(_, p)| p.get("actor"))
        .and_then(reference_of))
}

fn put_actor(obj: &mut Object, resource_type: &str, target: &Option<String>) {
    overlay_one(
        obj,
        "participant",
        |p| actor_is(p, resource_type),
        |_| true,
        target.as_ref(),
        |p, r| put_reference(object_mut(p), "actor", Some(r)),
        |r| object(vec![("actor", reference(r)), ("status", "accepted".into())]),
    );
}

fn is_room(participant: &Value) -> bool {
    actor_is(participant, "Location") || participant.get("actor").and_then(|a| str_of(a, "type")) == Some("Location")
}

fn read_room(obj: &Object) -> Result<Option<Party>, MappingError> {
    let participants = list(obj, "participant", AT)?;
    pick_one(participants, is_room, |_| true)
        .map(|(i, p)| read_party(p.get("actor").unwrap_or(&Value::Null), &format!("{AT}.participant[{i}].actor")))
        .transpose()
}

fn write_room(participant: &mut Value, room: &Party) {
    let p = object_mut(participant);
    let actor = p.entry("actor").or_insert(Value::Null);
    write_party(actor, room);
    if room.reference.as_deref().is_none_or(|r| !points_at(r, "Location")) {
        put_str(object_mut(actor), "type", Some("Location"));
    }
}

fn put_room(obj: &mut Object, room: &Option<Party>) {
    overlay_one(
        obj,
        "participant",
        is_room,
        |_| true,
        room.as_ref(),
        write_room,
        |r| {
            let mut p = object(vec![("actor", Value::Null), ("status", "accepted".into())]);
            write_room(&mut p, r);
            p
        },
    );
}

fn read_cancelled_by(obj: &Object) -> Result<Option<String>, MappingError> {
    Ok(extension(obj, KILN_CANCELLED_BY_EXT).and_then(|e| e.get("valueReference")).and_then(reference_of))
}

fn read_cancelled_at(obj: &Object) -> Result<Option<crate::emr::models::FhirDateTime>, MappingError> {
    match extension(obj, KILN_CANCELLED_AT_EXT) {
        None => Ok(None),
        Some(e) => read_datetime(as_object(e, AT)?, "valueDateTime", "Appointment.extension"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::FhirDateTime;
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Appointment",
            "id": "apt-1",
            "meta": {"versionId": "2", "lastUpdated": "2024-06-01T00:00:00Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Follow-up</div>"},
            "extension": [{"url": "http://example.org/booking-channel", "valueCode": "portal"}],
            "identifier": [{"system": "urn:kiln:appointment", "value": "A-1"}],
            "status": "booked",
            "serviceCategory": [{"coding": [{"system": "http://example.org/service-category", "code": "gp"}]}],
            "specialty": [{"coding": [{"system": "http://snomed.info/sct", "code": "394814009", "display": "General practice"}]}],
            "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "FOLLOWUP", "display": "A follow up visit from a previous appointment"}]},
            "reasonCode": [{"text": "Blood pressure check"}],
            "priority": 5,
            "description": "Discussion on the results of your recent MRI",
            "start": "2030-12-10T09:00:00Z",
            "end": "2030-12-10T09:30:00.000Z",
            "minutesDuration": 30,
            "slot": [{"reference": "Slot/slot-9"}],
            "created": "2030-10-10",
            "comment": "Further expand on the results of the MRI",
            "participant": [
                {"actor": {"reference": "Patient/pat-1", "display": "Amy Shaw"}, "required": "required", "status": "accepted"},
                {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "ATND"}]}],
                 "actor": {"reference": "Practitioner/dr-1", "display": "Dr Adam Careful"}, "required": "required", "status": "accepted"},
                {"actor": {"reference": "Location/room-1", "display": "South Wing, second floor"}, "required": "required", "status": "accepted"}
            ],
            "requestedPeriod": [{"start": "2030-12-01", "end": "2030-12-31"}]
        })
    }

    #[test]
    fn realistic_appointment_is_lossless() {
        let a = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(a.status, AppointmentStatus::Confirmed);
        assert_eq!(a.appointment_type, Some(AppointmentType::FollowUp));
        assert_eq!(a.priority, Some(AppointmentPriority::Medium));
        assert_eq!(a.patient.as_deref(), Some("Patient/pat-1"));
        assert_eq!(a.practitioner.as_deref(), Some("Practitioner/dr-1"));
        assert_eq!(a.room.as_ref().unwrap().reference.as_deref(), Some("Location/room-1"));
        assert_eq!(a.slot.as_deref(), Some("Slot/slot-9"));
        assert_eq!(a.minutes_duration, Some(30));
    }

    #[test]
    fn statuses_types_and_priorities_round_trip() {
        for status in AppointmentStatus::ALL {
            let a = Appointment { status: *status, ..Default::default() };
            let fhir = assert_model_round_trip(&a, to_fhir, from_fhir, |a| a.source = Default::default());
            assert_eq!(fhir["status"], status_code(*status));
        }
        for kind in AppointmentType::ALL {
            let a = Appointment { appointment_type: Some(*kind), ..Default::default() };
            assert_model_round_trip(&a, to_fhir, from_fhir, |a| a.source = Default::default());
        }
        for (priority, rank) in [
            (AppointmentPriority::Urgent, 1),
            (AppointmentPriority::High, 3),
            (AppointmentPriority::Medium, 5),
            (AppointmentPriority::Low, 9),
        ] {
            let a = Appointment { priority: Some(priority), ..Default::default() };
            let fhir = assert_model_round_trip(&a, to_fhir, from_fhir, |a| a.source = Default::default());
            assert_eq!(fhir["priority"], rank);
        }
        assert_eq!(type_concept(AppointmentType::Routine)["coding"][0]["code"], "ROUTINE");
    }

    #[test]
    fn seed_appointment_round_trips() {
        let mut seed = Appointment {
            status: AppointmentStatus::Cancelled,
            appointment_type: AppointmentType::from_seed("regular"),
            priority: Some(AppointmentPriority::Urgent),
            reason: Some("Chest pain".into()),
            notes: Some("Bring previous ECG".into()),
            patient: Some("Patient/p1".into()),
            practitioner: Some("Practitioner/d1".into()),
            room: Some(Party::named("A-101")),
            slot: Some("Slot/s1".into()),
            cancellation_reason: Some("Patient request".into()),
            cancelled_by: Some("Patient/p1".into()),
            cancelled_at: Some(FhirDateTime::parse("2030-01-01T08:00:00Z").unwrap()),
            created: Some(FhirDateTime::parse("2029-12-01T10:00:00Z").unwrap()),
            ..Default::default()
        };
        seed.schedule(Utc.with_ymd_and_hms(2030, 1, 2, 9, 0, 0).unwrap(), 45);
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |a| a.source = Default::default());
        assert_eq!(fhir["status"], "cancelled");
        assert_eq!(fhir["appointmentType"]["coding"][0]["code"], "ROUTINE");
        assert_eq!(fhir["end"], "2030-01-02T09:45:00Z");
        assert_eq!(
            fhir["participant"][2],
            json!({"actor": {"display": "A-101", "type": "Location"}, "status": "accepted"})
        );
        assert_eq!(fhir["cancelationReason"], json!({"text": "Patient request"}));
        assert_eq!(fhir["extension"][0]["valueReference"], json!({"reference": "Patient/p1"}));
    }

    #[test]
    fn rescheduling_changes_only_times() {
        let original = realistic();
        let mut a = from_fhir(&original).unwrap();
        a.schedule(Utc.with_ymd_and_hms(2030, 12, 11, 14, 0, 0).unwrap(), 30);
        let out = to_fhir(&a);
        assert_eq!(out["start"], "2030-12-11T14:00:00Z");
        assert_eq!(out["end"], "2030-12-11T14:30:00Z");
        assert_eq!(out["participant"], original["participant"]);
        assert_eq!(out["requestedPeriod"], original["requestedPeriod"]);
    }

    #[test]
    fn date_only_start_is_refused() {
        let mut r = realistic();
        r["start"] = json!("2030-12-10");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Appointment.start"));
    }
}
