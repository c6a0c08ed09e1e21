//! Primary-care assignment and the booking grid that keeps booked appointments from overlapping.
//!
//! Patients are taken in blocks of `PCPS.len()` consecutive indices; within block `b` a seeded
//! permutation gives each primary-care practitioner exactly one patient. That patient owns cell `b`
//! of the practitioner's two booking grids: the morning grid (08:00–12:00, eight 30-minute cells a
//! working day) for the first future appointment and the afternoon grid (13:00–17:00), four weeks
//! later, for the second. Distinct patients of one practitioner have distinct blocks, hence
//! distinct cells; every appointment lasts at most 30 minutes, so no two overlap — whatever
//! subset or order of patients is generated.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use super::data::{DX_ADULT_EXAM, DX_CHILD_EXAM, PCPS, PRACTITIONERS, SYS_ICD10, SYS_PARTICIPATION, SYS_V2_0276};
use super::fhir::{concept, concept_text, put, reference, reference_display};
use super::patient::Person;
use super::rng::Rng;
use super::time::{add_days, add_minutes, at, datetime, weekday_on_or_after, working_day};
use super::{DemoConfig, Record};

pub(crate) const STREAM_GP_BLOCK: u64 = 0x4750;
const STREAM_FUTURE: u64 = 0x4655;

/// Cells per half-day grid (30 minutes each).
const CELLS_PER_DAY: u64 = 8;
pub(crate) const CELL_MINUTES: i64 = 30;
/// The second booked appointment is this many working days after the first.
const FOLLOW_UP_WORKING_DAYS: u64 = 20;

/// (index into `PRACTITIONERS` of the patient's primary-care practitioner, booking block).
pub(crate) fn primary_care(seed: u64, index: u32) -> (usize, u64) {
    let n = PCPS.len() as u64;
    let block = u64::from(index) / n;
    let position = (u64::from(index) % n) as usize;
    let mut order: Vec<usize> = (0..PCPS.len()).collect();
    Rng::new(seed, &[STREAM_GP_BLOCK, block]).shuffle(&mut order);
    (PCPS[order[position]], block)
}

/// First working day strictly after `today`: day 0 of the booking grids.
pub(crate) fn first_booking_day(today: NaiveDate) -> NaiveDate {
    weekday_on_or_after(add_days(today, 1))
}

/// Start of booked appointment `n` (0 or 1) of the patient owning cell `block`.
pub(crate) fn booked_start(today: NaiveDate, block: u64, n: u32) -> NaiveDateTime {
    let day = block / CELLS_PER_DAY;
    let cell = (block % CELLS_PER_DAY) as i64;
    let (day, hour) = if n == 0 { (day, 8) } else { (day + FOLLOW_UP_WORKING_DAYS, 13) };
    add_minutes(at(working_day(first_booking_day(today), day), hour, 0), cell * CELL_MINUTES)
}

/// The last day any booking grid cell can fall on for `patients` patients.
pub(crate) fn last_booking_day(today: NaiveDate, patients: u32) -> NaiveDate {
    let blocks = u64::from(patients).div_ceil(PCPS.len() as u64).max(1);
    working_day(first_booking_day(today), (blocks - 1) / CELLS_PER_DAY + FOLLOW_UP_WORKING_DAYS)
}

/// 0–2 booked appointments (each with its busy Slot) with the patient's primary-care practitioner.
pub(crate) fn future_appointments(config: &DemoConfig, person: &Person, out: &mut Record) {
    if !person.active || person.deceased.is_some() {
        return;
    }
    let mut rng = Rng::new(config.seed, &[STREAM_FUTURE, u64::from(person.index)]);
    let count = rng.weighted(&[35, 45, 20]);
    let prac = &PRACTITIONERS[person.gp];
    let prac_id = format!("prac-{:03}", person.gp + 1);
    let managed: Vec<Value> = person
        .chronic
        .iter()
        .filter(|p| p.kind.follow_up_months().is_some() && p.resolved.is_none())
        .map(|p| concept_text(SYS_ICD10, p.kind.dx().code, p.kind.dx().display, p.kind.dx().display))
        .collect();
    for n in 0..count as u32 {
        let start = booked_start(config.today, person.block, n);
        let (kind, display, minutes, reasons, description) = if n == 0 && (managed.is_empty() || rng.chance(0.4)) {
            let exam = if person.age_today() < 18 { DX_CHILD_EXAM } else { DX_ADULT_EXAM };
            (
                "CHECKUP",
                "A routine check-up, such as an annual physical",
                30,
                vec![concept_text(SYS_ICD10, exam.code, exam.display, "Annual wellness visit")],
                "Annual wellness visit",
            )
        } else if managed.is_empty() {
            ("ROUTINE", "Routine appointment - default if not valued", 15, Vec::new(), "Office visit")
        } else {
            ("FOLLOWUP", "A follow up visit from a previous appointment", 20, managed.clone(), "Chronic care follow-up")
        };
        let end = add_minutes(start, minutes);
        let slot_id = format!("slot-{}-{}", person.key, n + 1);
        let appt_id = format!("appt-{}-{:03}", person.key, out.appointment.len() + 1);
        let appointment_type = concept(SYS_V2_0276, kind, display);
        out.slot.push(json!({
            "resourceType": "Slot",
            "id": slot_id,
            "specialty": [concept(super::data::SYS_NUCC, prac.specialty.0, prac.specialty.1)],
            "appointmentType": appointment_type,
            "schedule": reference("Schedule", &format!("sched-{:03}", person.gp + 1)),
            "status": "busy",
            "start": datetime(start),
            "end": datetime(end),
        }));
        let created = at(add_days(config.today, -rng.range(1, 45)), rng.range(8, 16) as u32, rng.range(0, 59) as u32)
            .max(at(person.history_start, 17, 30));
        let mut appointment = json!({
            "resourceType": "Appointment",
            "id": appt_id,
            "status": "booked",
            "specialty": [concept(super::data::SYS_NUCC, prac.specialty.0, prac.specialty.1)],
            "appointmentType": appointment_type,
            "description": description,
            "start": datetime(start),
            "end": datetime(end),
            "minutesDuration": minutes,
            "slot": [reference("Slot", &slot_id)],
            "created": datetime(created),
            "patientInstruction": "Please arrive 15 minutes early and bring your insurance card and a list of your medicines.",
            "participant": [
                {
                    "actor": reference_display("Patient", &person.id, &person.display_name()),
                    "required": "required",
                    "status": "accepted"
                },
                {
                    "type": [concept(SYS_PARTICIPATION, "PPRF", "primary performer")],
                    "actor": reference_display("Practitioner", &prac_id, &super::shared::practitioner_display(person.gp)),
                    "required": "required",
                    "status": "accepted"
                },
                {
                    "actor": reference("Location", prac.location),
                    "required": "required",
                    "status": "accepted"
                }
            ],
        });
        if !reasons.is_empty() {
            put(&mut appointment, "reasonCode", Value::Array(reasons));
        }
        out.appointment.push(appointment);
    }
}
