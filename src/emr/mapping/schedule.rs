//! Schedule <-> FHIR R4 Schedule (http://hl7.org/fhir/R4/schedule.html).
//!
//! The doctor's calendar: doctor -> `actor`; horizon -> `planningHorizon`; `comment`;
//! inactive -> `active=false`.

use serde_json::Value;

use crate::emr::error::MappingError;
use crate::emr::json::*;
use crate::emr::mapping::appointment::points_at;
use crate::emr::mapping::*;
use crate::emr::models::Schedule;

const AT: &str = "Schedule";

pub fn from_fhir(resource: &Value) -> Result<Schedule, MappingError> {
    let (obj, source) = resource_object(resource, AT)?;
    Ok(Schedule {
        id: read_id(obj)?,
        status: read_active(obj, AT)?,
        practitioner: read_practitioner(obj)?,
        planning_horizon: read_period(obj, "planningHorizon", AT)?,
        comment: opt_string(obj, "comment", AT)?,
        source,
    })
}

pub fn to_fhir(schedule: &Schedule) -> Value {
    let mut out = Overlay::new(&schedule.source, AT);
    out.field(&schedule.id, read_id, put_id);
    out.field(&schedule.status, |o| read_active(o, AT), put_active);
    out.field(&schedule.practitioner, read_practitioner, |o, p| {
        overlay_one(
            o,
            "actor",
            is_practitioner,
            |_| true,
            p.as_ref(),
            |r, p| put_str(object_mut(r), "reference", Some(p)),
            |p| reference(p),
        )
    });
    out.field(
        &schedule.planning_horizon,
        |o| read_period(o, "planningHorizon", AT),
        |o, p| put_period(o, "planningHorizon", p),
    );
    out.field(&schedule.comment, |o| opt_string(o, "comment", AT), |o, c| put_str(o, "comment", c.as_deref()));
    out.finish()
}

fn is_practitioner(actor: &Value) -> bool {
    str_of(actor, "reference").is_some_and(|r| points_at(r, "Practitioner"))
}

fn read_practitioner(obj: &Object) -> Result<Option<String>, MappingError> {
    let actors = list(obj, "actor", AT)?;
    Ok(pick_one(actors, is_practitioner, |_| true).and_then(|(_, a)| reference_of(a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emr::mapping::test_support::*;
    use crate::emr::models::{FhirDateTime, Period, RecordStatus};
    use serde_json::json;

    fn realistic() -> Value {
        json!({
            "resourceType": "Schedule",
            "id": "sch-1",
            "meta": {"versionId": "1", "lastUpdated": "2024-01-01T00:00:00Z"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Dr Careful</div>"},
            "extension": [{"url": "http://example.org/timezone", "valueCode": "America/Chicago"}],
            "identifier": [{"use": "usual", "system": "http://example.org/scheduleid", "value": "45"}],
            "active": true,
            "serviceType": [{"coding": [{"code": "57", "display": "Immunization"}]}],
            "specialty": [{"coding": [{"system": "http://snomed.info/sct", "code": "408480009"}]}],
            "actor": [{"reference": "Location/loc-1"}, {"reference": "Practitioner/dr-1", "display": "Dr Careful"}],
            "planningHorizon": {"start": "2030-12-25T09:15:00Z", "end": "2030-12-25T09:30:00Z"},
            "comment": "Assessments should be performed before requesting appointments in this slot."
        })
    }

    #[test]
    fn realistic_schedule_is_lossless() {
        let s = assert_lossless(&realistic(), from_fhir, to_fhir);
        assert_eq!(s.practitioner.as_deref(), Some("Practitioner/dr-1"));
        assert_eq!(s.planning_horizon.end.unwrap().as_str(), "2030-12-25T09:30:00Z");
    }

    #[test]
    fn seed_schedule_round_trips() {
        let seed = Schedule {
            status: RecordStatus::Active,
            practitioner: Some("Practitioner/d1".into()),
            planning_horizon: Period {
                start: Some(FhirDateTime::parse("2030-01-01").unwrap()),
                end: Some(FhirDateTime::parse("2030-03-31").unwrap()),
            },
            comment: Some("calendar cal-9".into()),
            ..Default::default()
        };
        let fhir = assert_model_round_trip(&seed, to_fhir, from_fhir, |s| s.source = Default::default());
        assert_eq!(fhir["actor"], json!([{"reference": "Practitioner/d1"}]));
        assert_eq!(fhir["planningHorizon"], json!({"start": "2030-01-01", "end": "2030-03-31"}));

        let mut s = from_fhir(&realistic()).unwrap();
        s.practitioner = Some("Practitioner/dr-2".into());
        let out = to_fhir(&s);
        assert_eq!(out["actor"][0], json!({"reference": "Location/loc-1"}));
        assert_eq!(out["actor"][1], json!({"reference": "Practitioner/dr-2", "display": "Dr Careful"}));
    }
}
