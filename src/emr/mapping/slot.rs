//! Slot <-> FHIR R4 Slot (http://hl7.org/fhir/R4/slot.html).
//!
//! One availability entry: schedule -> `schedule`; status available/booked/cancelled ->
//! `free`/`busy`/`busy-unavailable`; date + start/end time -> `start`/`end`;
//! max_appointments -> Kiln extension (valuePositiveInt); `overbooked`; `comment`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::*;
use crate::emr::models::{Slot, SlotStatus};
use crate::emr::systems::KILN_SLOT_CAPACITY_EXT;

const AT: &str = "Slot";

pub fn from_fhir(resource: &Value) -> Result<Slot, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Slot {
        id: read_id(obj)?,
        schedule: read_reference(obj, "schedule", AT)?,
        status: read_status(obj)?,
        start: read_instant(obj, "start", AT)?,
        end: read_instant(obj, "end", AT)?,
        max_appointments: read_capacity(obj)?,
        overbooked: opt_bool(obj, "overbooked", AT)?,
        comment: opt_string(obj, "comment", AT)?,
        source,
    })
}

pub fn to_fhir(slot: &Slot) -> Value {
    let mut out = Overlay::new(&slot.source, AT);
    out.field(&slot.id, read_id, put_id);
    out.field(&slot.max_appointments, read_capacity, |o, m| {
        put_extension(o, KILN_SLOT_CAPACITY_EXT, m.map(|m| ("valuePositiveInt", m.into())))
    });
    out.field(&slot.schedule, |o| read_reference(o, "schedule", AT), |o, r| put_reference(o, "schedule", r.as_deref()));
    out.field(&slot.status, read_status, |o, s| put_str(o, "status", Some(status_code(*s))));
    out.field(&slot.start, |o| read_instant(o, "start", AT), |o, t| put_datetime(o, "start", t.as_ref()));
    out.field(&slot.end, |o| read_instant(o, "end", AT), |o, t| put_datetime(o, "end", t.as_ref()));
    out.field(&slot.overbooked, |o| opt_bool(o, "overbooked", AT), |o, b| put_bool(o, "overbooked", *b));
    out.field(&slot.comment, |o| opt_string(o, "comment", AT), |o, c| put_str(o, "comment", c.as_deref()));
    out.finish()
}

/// The FHIR `Slot.status` code of a model status.
pub fn status_code(status: SlotStatus) -> &'static str {
    match status {
        SlotStatus::Available => "free",
        SlotStatus::Booked => "busy",
        SlotStatus::Cancelled => "busy-unavailable",
        SlotStatus::Tentative => "busy-tentative",
        SlotStatus::EnteredInError => "entered-in-error",
    }
}

fn read_status(obj: &Object) -> Result<SlotStatus, MappingError> {
    read_code(obj, "status", AT, |code| SlotStatus::ALL.iter().copied().find(|s| status_code(*s) == code))?
        .ok_or_else(|| MappingError::missing("Slot.status"))
}

fn read_capacity(obj: &Object) -> Result<Option<u32>, MappingError> {
    match extension(obj, KILN_SLOT_CAPACITY_EXT) {
        None => Ok(None),
        Some(e) => opt_u32(as_object(e, AT)?, "valuePositiveInt", "Slot.extension"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::FhirDateTime;
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Slot",
            "id": "slot-9",
            "meta": {"versionId": "7", "lastUpdated": "2030-12-01T00:00:00Z"},
            "extension": [
                {"url": "https://kiln.example.org/fhir/StructureDefinition/slot-max-appointments", "valuePositiveInt": 2},
                {"url": "http://example.org/room", "valueString": "3B"}
            ],
            "identifier": [{"system": "http://example.org/identifiers/slots", "value": "123132"}],
            "serviceCategory": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/service-category", "code": "17", "display": "General Practice"}]}],
            "appointmentType": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0276", "code": "WALKIN"}]},
            "schedule": {"reference": "Schedule/sch-1"},
            "status": "busy",
            "start": "2030-12-25T09:00:00-06:00",
            "end": "2030-12-25T09:15:00-06:00",
            "overbooked": true,
            "comment": "Assessments should be performed before requesting appointments in this slot."
        })
    }

    #[test]
    fn realistic_slot_is_lossless() {
        let s = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(s.status, SlotStatus::Booked);
        assert_eq!(s.max_appointments, Some(2));
        assert_eq!(s.overbooked, Some(true));
    }

    #[test]
    fn seed_availability_round_trips() {
        for (status, code) in
            [(SlotStatus::Available, "free"), (SlotStatus::Booked, "busy"), (SlotStatus::Cancelled, "busy-unavailable")]
        {
            let seed = Slot {
                schedule: Some("Schedule/s1".into()),
                status,
                start: Some(FhirDateTime::parse("2030-01-02T09:00:00Z").unwrap()),
                end: Some(FhirDateTime::parse("2030-01-02T09:30:00Z").unwrap()),
                max_appointments: Some(3),
                ..Default::default()
            };
            let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |s| s.source = Default::default());
            assert_eq!(fhir["status"], code);
            assert_eq!(fhir["extension"][0]["valuePositiveInt"], 3);
        }
        let mut s = from_fhir(&realistic()).unwrap();
        s.status = SlotStatus::Available;
        let out = to_fhir(&s);
        assert_eq!(out["status"], "free");
        assert_eq!(out["extension"], realistic()["extension"]);
    }

    #[test]
    fn unknown_status_is_refused() {
        let mut r = realistic();
        r["status"] = json!("available");
        assert_eq!(from_fhir(&r).unwrap_err().expression(), Some("Slot.status"));
    }
}
