//! A demo patient's clinical history over the last two to four years: the visit plan (new-patient
//! visit, wellness exams, chronic-care follow-ups, specialist visits, sick visits, emergency visits,
//! admissions), and for each visit its Appointment, Encounter, vital signs, laboratory results with
//! DiagnosticReports, diagnoses (Conditions), allergies and prescriptions (MedicationRequests).

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use super::data::*;
use super::fhir::{
    coding, concept, concept_text, decimal, period, put, quantity, reference, reference_display, round_to,
};
use super::patient::Person;
use super::rng::Rng;
use super::shared::practitioner_display;
use super::time::{add_days, add_minutes, age_years, at, datetime, days_between, weekday_on_or_after};
use super::vitals::{LabState, Treatment, VisitState, Vitals};
use super::{DemoConfig, Record};

const STREAM_PLAN: u64 = 0x504C;
const STREAM_CARE: u64 = 0x4341;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    NewPatient,
    Wellness,
    FollowUp,
    Specialist(Chronic),
    Sick(Acute),
    Emergency(Acute),
    /// Admission with its length of stay in days.
    Inpatient(Acute, i64),
}

impl Kind {
    /// Booked in advance through an Appointment (and may be missed or cancelled).
    fn scheduled(self) -> bool {
        matches!(self, Kind::NewPatient | Kind::Wellness | Kind::FollowUp | Kind::Specialist(_))
    }

    fn clinic(self) -> bool {
        !matches!(self, Kind::Emergency(_) | Kind::Inpatient(..))
    }

    fn priority(self) -> u8 {
        match self {
            Kind::NewPatient => 0,
            Kind::Inpatient(..) => 1,
            Kind::Emergency(_) => 2,
            _ => 3,
        }
    }

    fn acute(self) -> Option<Acute> {
        match self {
            Kind::Sick(a) | Kind::Emergency(a) | Kind::Inpatient(a, _) => Some(a),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
struct Visit {
    day: NaiveDate,
    kind: Kind,
    prac: usize,
}

fn monthly(
    rng: &mut Rng,
    start: NaiveDate,
    end: NaiveDate,
    rate_per_year: f64,
    mut f: impl FnMut(&mut Rng, NaiveDate),
) {
    let mut month_start = start;
    while month_start <= end {
        if rng.chance(rate_per_year / 12.0) {
            let day = add_days(month_start, rng.range(0, 29));
            if day <= end {
                f(rng, day);
            }
        }
        month_start = add_days(month_start, 30);
    }
}

fn weighted_acute(rng: &mut Rng, table: &[(Acute, u32, u32)], child: bool, person: &Person, day: NaiveDate) -> Acute {
    let weights: Vec<u32> = table
        .iter()
        .map(|&(a, c, ad)| {
            let w = if child { c } else { ad };
            match a {
                Acute::Uti if !person.female => w / 4,
                Acute::HeartFailure if person.age_at(day) < 50 => 0,
                Acute::CopdExacerbation if !person.has(Chronic::Copd, day) => 0,
                _ => w,
            }
        })
        .collect();
    if weights.iter().all(|&w| w == 0) {
        return table[0].0;
    }
    table[rng.weighted(&weights)].0
}

fn plan(config: &DemoConfig, person: &Person) -> Vec<Visit> {
    let mut rng = Rng::new(config.seed, &[STREAM_PLAN, u64::from(person.index)]);
    let (start, end) = (person.history_start, person.history_end);
    let first = weekday_on_or_after(start);
    if first > end {
        return Vec::new();
    }
    let gp = person.gp;
    let mut visits = vec![Visit { day: first, kind: Kind::NewPatient, prac: gp }];

    // Well-child visits by age in months, then yearly wellness exams.
    for months in [1, 2, 4, 6, 9, 12, 15, 18, 24] {
        let day = weekday_on_or_after(add_days(person.birth, (f64::from(months) * 30.44) as i64));
        if day > add_days(first, 10) && day <= end {
            visits.push(Visit { day, kind: Kind::Wellness, prac: gp });
        }
    }
    let mut day = add_days(first, 365 + rng.range(-30, 30));
    while day <= end {
        if age_years(person.birth, day) >= 2.2 {
            visits.push(Visit { day: weekday_on_or_after(day), kind: Kind::Wellness, prac: gp });
        }
        day = add_days(day, 365 + rng.range(-25, 40));
    }

    // Chronic-care follow-ups at the shortest interval of the managed problems.
    let mut day = add_days(first, rng.range(60, 120));
    while day <= end {
        let interval =
            person.chronic.iter().filter(|p| person.has(p.kind, day)).filter_map(|p| p.kind.follow_up_months()).min();
        match interval {
            Some(months) => {
                let near_exam = visits.iter().any(|v| {
                    matches!(v.kind, Kind::NewPatient | Kind::Wellness) && days_between(v.day, day).abs() < 45
                });
                if !near_exam {
                    visits.push(Visit { day: weekday_on_or_after(day), kind: Kind::FollowUp, prac: gp });
                }
                let days = (f64::from(months) * 30.4 / person.density.max(0.8)) as i64;
                day = add_days(day, days + rng.range(-10, 10));
            }
            None => day = add_days(day, 90),
        }
    }

    // Specialists: endocrinology for diabetes, cardiology for atrial fibrillation (yearly),
    // dermatology once for atopic dermatitis.
    for problem in &person.chronic {
        let (prac, yearly) = match problem.kind {
            Chronic::Diabetes => (ENDOCRINOLOGY, true),
            Chronic::AtrialFibrillation => (CARDIOLOGY, true),
            Chronic::AtopicDermatitis => (DERMATOLOGY, false),
            _ => continue,
        };
        let mut day = add_days(problem.onset.max(first), rng.range(30, 120));
        while day <= end && person.has(problem.kind, day) {
            visits.push(Visit { day: weekday_on_or_after(day), kind: Kind::Specialist(problem.kind), prac });
            if !yearly {
                break;
            }
            day = add_days(day, 365 + rng.range(-20, 40));
        }
    }

    // Sick visits, emergency visits and admissions at age- and problem-dependent rates.
    let age = person.age_today();
    let managed = person.chronic.iter().filter(|p| p.kind.follow_up_months().is_some()).count() as f64;
    let sick_rate = match age {
        0..=4 => 1.0,
        5..=11 => 0.7,
        12..=17 => 0.5,
        18..=64 => 0.3 + 0.05 * managed,
        _ => 0.45 + 0.05 * managed,
    } * person.density;
    monthly(&mut rng, first, end, sick_rate, |rng, day| {
        let day = weekday_on_or_after(day);
        let child = person.age_at(day) < 18;
        let kind = Kind::Sick(weighted_acute(rng, CLINIC_ACUTE, child, person, day));
        let prac = if rng.chance(if child { 0.85 } else { 0.6 }) { gp } else { URGENT_CARE };
        visits.push(Visit { day, kind, prac });
    });
    let er_rate = if age >= 65 {
        0.15
    } else if age < 18 {
        0.1
    } else {
        0.06
    } + 0.03 * managed;
    monthly(&mut rng, first, end, er_rate, |rng, day| {
        let child = person.age_at(day) < 18;
        let kind = Kind::Emergency(weighted_acute(rng, EMERGENCY_ACUTE, child, person, day));
        visits.push(Visit { day, kind, prac: *rng.pick(EMERGENCY) });
    });
    let ip_rate = if age >= 65 {
        0.04 + 0.02 * managed
    } else if age < 18 {
        0.008
    } else {
        0.01 + 0.008 * managed
    };
    monthly(&mut rng, first, end, ip_rate, |rng, day| {
        let child = person.age_at(day) < 18;
        let acute = weighted_acute(rng, INPATIENT_ACUTE, child, person, day);
        visits.push(Visit { day, kind: Kind::Inpatient(acute, rng.range(2, 6)), prac: HOSPITALIST });
    });

    // One visit a day, none during a stay, the new-patient visit first.
    visits.sort_by_key(|a| (a.day, a.kind.priority()));
    let mut kept: Vec<Visit> = Vec::with_capacity(visits.len());
    let mut busy_until = add_days(first, -1);
    for mut visit in visits {
        if visit.day <= busy_until || visit.day > end {
            continue;
        }
        if let Kind::Inpatient(acute, stay) = visit.kind {
            let stay = stay.min(days_between(visit.day, end));
            if stay < 1 {
                continue;
            }
            visit.kind = Kind::Inpatient(acute, stay);
            busy_until = add_days(visit.day, stay);
        } else {
            busy_until = visit.day;
        }
        kept.push(visit);
    }
    kept
}

/// One prescription before its final status is known.
struct Rx {
    id: String,
    med: &'static Med,
    authored: NaiveDateTime,
    encounter: String,
    prac: usize,
    reason: Dx,
    condition: Option<String>,
    chronic: Option<Chronic>,
    valid_days: i64,
    supply_days: i64,
    refills: u32,
    category: (&'static str, &'static str),
}

struct Care<'a> {
    config: &'a DemoConfig,
    person: &'a Person,
    rng: Rng,
    key: String,
    patient_ref: Value,
    n_obs: usize,
    n_cond: usize,
    n_report: usize,
    n_rx: usize,
    /// Recorded long-term problems: (kind, Condition id).
    recorded: Vec<(Chronic, String)>,
    /// Treatment start per problem.
    treated: Vec<(Chronic, NaiveDate)>,
    obesity_recorded: bool,
    /// The last measured height (adults are not measured at every visit).
    height_on_file: Option<f64>,
    rx: Vec<Rx>,
}

/// Appointments, Encounters, Observations, DiagnosticReports, Conditions, AllergyIntolerances and
/// MedicationRequests of the patient's history.
pub(crate) fn history(config: &DemoConfig, person: &Person, out: &mut Record) {
    let visits = plan(config, person);
    let mut care = Care {
        config,
        person,
        rng: Rng::new(config.seed, &[STREAM_CARE, u64::from(person.index)]),
        key: person.key.clone(),
        patient_ref: reference_display("Patient", &person.id, &person.display_name()),
        n_obs: 0,
        n_cond: 0,
        n_report: 0,
        n_rx: 0,
        recorded: Vec::new(),
        treated: person.chronic.iter().filter(|p| p.preexisting).map(|p| (p.kind, person.history_start)).collect(),
        obesity_recorded: false,
        height_on_file: None,
        rx: Vec::new(),
    };
    let mut first_encounter: Option<(String, NaiveDateTime)> = None;
    for visit in &visits {
        if let Some(enc) = care.visit(visit, out)
            && first_encounter.is_none()
        {
            first_encounter = Some(enc);
        }
    }
    if let Some((enc_id, when)) = first_encounter {
        care.allergies(&enc_id, when, out);
    }
    care.finish_prescriptions(out);
}

fn clinic_time(rng: &mut Rng, day: NaiveDate) -> NaiveDateTime {
    let cell = rng.range(0, 15);
    let hour = if cell < 8 { 8 + cell / 2 } else { 13 + (cell - 8) / 2 };
    at(day, hour as u32, (cell % 2 * 30) as u32)
}

fn vital(
    care: &mut Care,
    enc: &str,
    when: &str,
    nurse: &Value,
    code: Value,
    text: &str,
    value: Option<Value>,
) -> Value {
    care.n_obs += 1;
    let mut obs = json!({
        "resourceType": "Observation",
        "id": format!("obs-{}-{:04}", care.key, care.n_obs),
        "status": "final",
        "category": [concept(SYS_OBS_CATEGORY, "vital-signs", "Vital Signs")],
        "code": code,
        "subject": care.patient_ref,
        "encounter": reference("Encounter", enc),
        "effectiveDateTime": when,
        "performer": [nurse],
    });
    if let Some(code) = obs.get_mut("code") {
        put(code, "text", Value::from(text));
    }
    if let Some(value) = value {
        put(&mut obs, "valueQuantity", value);
    }
    obs
}

fn loinc(code: &str, display: &str) -> Value {
    concept(SYS_LOINC, code, display)
}

impl Care<'_> {
    fn treatment(&self, kind: Chronic, day: NaiveDate) -> Treatment {
        if !self.person.has(kind, day) {
            Treatment::Absent
        } else if self.treated.iter().any(|(k, since)| *k == kind && *since <= day) {
            Treatment::Treated
        } else {
            Treatment::Untreated
        }
    }

    /// Generates one visit; returns the Encounter id and start when the visit took place.
    fn visit(&mut self, visit: &Visit, out: &mut Record) -> Option<(String, NaiveDateTime)> {
        let person = self.person;
        let prac = &PRACTITIONERS[visit.prac];
        let prac_ref = reference_display(
            "Practitioner",
            &format!("prac-{:03}", visit.prac + 1),
            &practitioner_display(visit.prac),
        );
        let child = person.age_at(visit.day) < 18;
        let exam = if child { DX_CHILD_EXAM } else { DX_ADULT_EXAM };
        let managed: Vec<Dx> = person
            .chronic
            .iter()
            .filter(|p| p.kind.follow_up_months().is_some() && person.has(p.kind, visit.day))
            .map(|p| p.kind.dx())
            .collect();

        // When and how long.
        let (start, minutes) = match visit.kind {
            Kind::Emergency(_) => (at(visit.day, self.rng.range(6, 23) as u32, self.rng.range(0, 59) as u32), 0),
            Kind::Inpatient(..) => (at(visit.day, self.rng.range(9, 20) as u32, self.rng.range(0, 59) as u32), 0),
            Kind::NewPatient | Kind::Wellness | Kind::Specialist(_) => (clinic_time(&mut self.rng, visit.day), 30),
            Kind::FollowUp => (clinic_time(&mut self.rng, visit.day), 20),
            Kind::Sick(_) => (clinic_time(&mut self.rng, visit.day), [15, 20][self.rng.index(2)]),
        };
        let reasons: Vec<Dx> = match visit.kind {
            Kind::NewPatient | Kind::Wellness => vec![exam],
            Kind::FollowUp if !managed.is_empty() => managed.clone(),
            Kind::FollowUp => vec![exam],
            Kind::Specialist(c) => vec![c.dx()],
            Kind::Sick(a) | Kind::Emergency(a) | Kind::Inpatient(a, _) => vec![a.dx()],
        };
        let reason_concepts: Vec<Value> =
            reasons.iter().map(|d| concept_text(SYS_ICD10, d.code, d.display, d.display)).collect();
        let (appt_code, appt_display, description) = match visit.kind {
            Kind::NewPatient => ("ROUTINE", "Routine appointment - default if not valued", "New patient visit"),
            Kind::Wellness => ("CHECKUP", "A routine check-up, such as an annual physical", "Annual wellness visit"),
            Kind::FollowUp => ("FOLLOWUP", "A follow up visit from a previous appointment", "Chronic care follow-up"),
            Kind::Specialist(_) => {
                ("ROUTINE", "Routine appointment - default if not valued", "Specialist consultation")
            }
            Kind::Sick(_) => ("WALKIN", "A previously unscheduled walk-in visit", "Same-day sick visit"),
            Kind::Emergency(_) => ("EMERGENCY", "Emergency appointment", "Emergency department visit"),
            Kind::Inpatient(..) => ("EMERGENCY", "Emergency appointment", "Hospital admission"),
        };

        // The appointment (clinic visits), possibly missed or cancelled.
        let status = if visit.kind.scheduled() && visit.kind != Kind::NewPatient {
            ["fulfilled", "noshow", "cancelled"][self.rng.weighted(&[88, 6, 6])]
        } else {
            "fulfilled"
        };
        let mut appointment_id = None;
        if visit.kind.clinic() {
            let id = format!("appt-{}-{:03}", self.key, out.appointment.len() + 1);
            // Booked after birth, and (except the first visit) after registration.
            let earliest = if visit.kind == Kind::NewPatient {
                at(add_days(person.birth, 1), 9, 0)
            } else {
                at(person.history_start, 17, 30)
            };
            let created = if matches!(visit.kind, Kind::Sick(_)) {
                add_minutes(start, -self.rng.range(60, 240))
            } else {
                at(
                    add_days(visit.day, -self.rng.range(7, 90)),
                    self.rng.range(8, 16) as u32,
                    self.rng.range(0, 59) as u32,
                )
            }
            .max(earliest);
            let mut appointment = json!({
                "resourceType": "Appointment",
                "id": id,
                "status": status,
            });
            if status == "cancelled" {
                let reasons = [
                    ("pat", "Patient"),
                    ("pat-crs", "Patient: Canceled via automated reminder system"),
                    ("pat-cpp", "Patient: Canceled via Patient Portal"),
                    ("pat-fb", "Patient: Feeling Better"),
                    ("pat-lt", "Patient: Lack of Transportation"),
                    ("prov-pers", "Provider: Personal"),
                    ("oth-weath", "Other: Weather"),
                ];
                let (code, display) = reasons[self.rng.weighted(&[30, 20, 20, 10, 8, 7, 5])];
                put(&mut appointment, "cancelationReason", concept(SYS_CANCEL_REASON, code, display));
            }
            let patient_status = if status == "cancelled" { "declined" } else { "accepted" };
            for (k, v) in [
                ("specialty", json!([concept(SYS_NUCC, prac.specialty.0, prac.specialty.1)])),
                ("appointmentType", concept(SYS_V2_0276, appt_code, appt_display)),
                ("reasonCode", Value::Array(reason_concepts.clone())),
                ("description", Value::from(description)),
                ("start", Value::from(datetime(start))),
                ("end", Value::from(datetime(add_minutes(start, minutes)))),
                ("minutesDuration", json!(minutes)),
                ("created", Value::from(datetime(created))),
            ] {
                put(&mut appointment, k, v);
            }
            if status == "cancelled" {
                let when = add_days(visit.day, -self.rng.range(1, 5)).max(created.date());
                let who = if self.rng.chance(0.5) { "by phone" } else { "online" };
                put(
                    &mut appointment,
                    "comment",
                    Value::from(format!("Cancelled {who} on {}.", super::time::date(when))),
                );
            }
            put(
                &mut appointment,
                "participant",
                json!([
                    {"actor": self.patient_ref, "required": "required", "status": patient_status},
                    {"type": [concept(SYS_PARTICIPATION, "PPRF", "primary performer")], "actor": prac_ref, "required": "required", "status": "accepted"},
                    {"actor": reference("Location", prac.location), "required": "required", "status": "accepted"}
                ]),
            );
            out.appointment.push(appointment);
            appointment_id = Some(id);
        }
        if status != "fulfilled" {
            return None;
        }

        // The encounter.
        let enc_id = format!("enc-{}-{:03}", self.key, out.encounter.len() + 1);
        let enc_start = add_minutes(start, self.rng.range(0, 8));
        let enc_end = match visit.kind {
            Kind::Emergency(_) => add_minutes(enc_start, self.rng.range(120, 360)),
            Kind::Inpatient(_, stay) => {
                at(add_days(visit.day, stay), self.rng.range(10, 14) as u32, self.rng.range(0, 59) as u32)
            }
            _ => add_minutes(enc_start, minutes + self.rng.range(0, 10)),
        };
        let (class_code, class_display) = match visit.kind {
            Kind::Emergency(_) => ("EMER", "emergency"),
            Kind::Inpatient(..) => ("IMP", "inpatient encounter"),
            _ => ("AMB", "ambulatory"),
        };
        let (type_code, type_display) = match visit.kind {
            Kind::NewPatient | Kind::Wellness => ("185349003", "Encounter for check up (procedure)"),
            Kind::FollowUp => ("390906007", "Follow-up encounter (procedure)"),
            Kind::Specialist(_) => ("11429006", "Consultation (procedure)"),
            Kind::Sick(_) => ("185345009", "Encounter for symptom (procedure)"),
            Kind::Emergency(_) => ("50849002", "Emergency room admission (procedure)"),
            Kind::Inpatient(..) => ("32485007", "Hospital admission (procedure)"),
        };
        let nurse_index = if visit.kind.clinic() { *self.rng.pick(CLINIC_NURSES) } else { ED_NURSE };
        let nurse = reference_display(
            "Practitioner",
            &format!("prac-{:03}", nurse_index + 1),
            &practitioner_display(nurse_index),
        );
        let location = match visit.kind {
            Kind::Emergency(_) => "loc-ed",
            Kind::Inpatient(..) => "loc-ward",
            _ => prac.location,
        };
        let mut encounter = json!({
            "resourceType": "Encounter",
            "id": enc_id,
            "status": "finished",
            "class": coding(SYS_ACT_CODE, class_code, class_display),
            "type": [concept_text(SYS_SNOMED, type_code, type_display, description)],
            "subject": self.patient_ref,
            "participant": [
                {
                    "type": [concept(SYS_PARTICIPATION, "PPRF", "primary performer")],
                    "period": period(datetime(enc_start), Some(datetime(enc_end))),
                    "individual": prac_ref
                },
                {
                    "type": [concept(SYS_PARTICIPATION, "PART", "Participation")],
                    "individual": nurse
                }
            ],
        });
        if let Some(id) = &appointment_id {
            put(&mut encounter, "appointment", json!([reference("Appointment", id)]));
        }
        put(&mut encounter, "period", period(datetime(enc_start), Some(datetime(enc_end))));
        put(&mut encounter, "reasonCode", Value::Array(reason_concepts.clone()));
        match visit.kind {
            Kind::Emergency(_) => put(&mut encounter, "priority", concept(SYS_ACT_PRIORITY, "EM", "emergency")),
            Kind::Inpatient(..) => put(
                &mut encounter,
                "hospitalization",
                json!({
                    "admitSource": if self.rng.chance(0.7) { concept(SYS_ADMIT_SOURCE, "emd", "From accident/emergency department") } else { concept(SYS_ADMIT_SOURCE, "gp", "General Practitioner referral") },
                    "dischargeDisposition": concept(SYS_DISCHARGE, "home", "Home")
                }),
            ),
            _ => {}
        }
        put(
            &mut encounter,
            "location",
            json!([{"location": reference("Location", location), "status": "completed", "period": period(datetime(enc_start), Some(datetime(enc_end)))}]),
        );
        put(&mut encounter, "serviceProvider", reference_display("Organization", "org-clinic", CLINIC_NAME));
        out.encounter.push(encounter);

        // Vital signs.
        let acute = visit.kind.acute();
        let pain = match (visit.kind, acute) {
            (_, Some(a)) => a.pain(),
            (Kind::FollowUp, _) if person.has(Chronic::KneeOsteoarthritis, visit.day) => (2, 5),
            _ if self.rng.chance(0.75) => (0, 0),
            _ => (1, 3),
        };
        let state = VisitState {
            febrile: acute.is_some_and(|a| a.febrile()) && self.rng.chance(0.7),
            emergency: matches!(visit.kind, Kind::Emergency(_) | Kind::Inpatient(..)),
            respiratory: matches!(acute, Some(Acute::Pneumonia | Acute::CopdExacerbation | Acute::HeartFailure)),
            copd: person.has(Chronic::Copd, visit.day),
            afib: person.has(Chronic::AtrialFibrillation, visit.day),
            hypertension: self.treatment(Chronic::Hypertension, visit.day),
            pain,
        };
        let mut vitals = person.phys.vitals(&mut self.rng, visit.day, self.config.today, &state);
        let measured = datetime(add_minutes(enc_start, self.rng.range(3, 12)));
        let with_height = child || matches!(visit.kind, Kind::NewPatient | Kind::Wellness | Kind::Inpatient(..));
        match self.height_on_file {
            Some(height) if !with_height => {
                // BMI from the height on file.
                vitals.height = height;
                vitals.bmi = round_to(vitals.weight / ((height / 100.0) * (height / 100.0)), 1);
            }
            _ => self.height_on_file = Some(vitals.height),
        }
        self.vital_signs(&enc_id, &measured, &nurse, &vitals, with_height, out);

        // Diagnoses at primary-care visits: long-term problems present by now, obesity, the acute problem.
        let primary_care = matches!(visit.kind, Kind::NewPatient | Kind::Wellness | Kind::FollowUp)
            || (matches!(visit.kind, Kind::Sick(_)) && visit.prac == person.gp);
        if primary_care {
            let due: Vec<_> = person
                .chronic
                .iter()
                .filter(|p| p.onset <= visit.day && p.resolved.is_none_or(|r| r > visit.day))
                .filter(|p| !self.recorded.iter().any(|(k, _)| *k == p.kind))
                .cloned()
                .collect();
            for problem in due {
                let onset = at(problem.onset, 12, 0);
                let abatement = problem.resolved.map(|r| at(r, 12, 0));
                let id = self.condition(problem.kind.dx(), &enc_id, enc_start, onset, abatement, visit.prac, out);
                self.recorded.push((problem.kind, id.clone()));
                if !problem.preexisting {
                    self.treated.push((problem.kind, visit.day));
                }
                self.start_therapy(problem.kind, &id, &enc_id, enc_start, visit.prac);
            }
            if !self.obesity_recorded && person.age_at(visit.day) >= 18 && vitals.bmi >= 30.0 {
                self.obesity_recorded = true;
                let id = self.condition(
                    Chronic::Obesity.dx(),
                    &enc_id,
                    enc_start,
                    at(visit.day, 9, 0),
                    None,
                    visit.prac,
                    out,
                );
                self.recorded.push((Chronic::Obesity, id));
            }
            if matches!(visit.kind, Kind::Wellness | Kind::FollowUp) {
                self.renew(&enc_id, enc_start, visit.prac);
            }
        }
        if let Some(a) = acute {
            let onset = at(add_days(visit.day, -self.rng.range(1, 4)), 8, 0);
            let resolved = add_days(
                visit.day,
                self.rng.range(7, 21) + if matches!(visit.kind, Kind::Inpatient(_, s) if s > 0) { 7 } else { 0 },
            );
            let abatement =
                (resolved < person.history_end && resolved < self.config.today).then(|| at(resolved, 12, 0));
            let id = self.condition(a.dx(), &enc_id, enc_start, onset, abatement, visit.prac, out);
            let when =
                if let Kind::Inpatient(..) = visit.kind { enc_end } else { add_minutes(enc_start, minutes.max(30)) };
            self.acute_therapy(a, visit, &id, &enc_id, when, child);
        }

        // Laboratory.
        self.labs(visit, &enc_id, enc_start, &prac_ref, &vitals, out);
        if visit.kind == Kind::NewPatient && self.rng.chance(0.5) {
            let (code, display, _) =
                BLOOD_GROUPS[self.rng.weighted(&BLOOD_GROUPS.iter().map(|b| b.2).collect::<Vec<_>>())];
            self.n_obs += 1;
            let drawn = add_minutes(enc_start, 20);
            out.observation.push(json!({
                "resourceType": "Observation",
                "id": format!("obs-{}-{:04}", self.key, self.n_obs),
                "status": "final",
                "category": [concept(SYS_OBS_CATEGORY, "laboratory", "Laboratory")],
                "code": concept_text(SYS_LOINC, "882-1", "ABO and Rh group [Type] in Blood", "Blood type"),
                "subject": self.patient_ref,
                "encounter": reference("Encounter", &enc_id),
                "effectiveDateTime": datetime(drawn),
                "issued": datetime(add_minutes(drawn, 240)),
                "performer": [prac_ref],
                "valueCodeableConcept": concept_text(SYS_SNOMED, code, display, display),
            }));
        }
        Some((enc_id, enc_start))
    }

    /// Vital-sign Observations; adults' height is measured at wellness visits and admissions only
    /// (BMI uses the height on file).
    fn vital_signs(&mut self, enc: &str, when: &str, nurse: &Value, v: &Vitals, with_height: bool, out: &mut Record) {
        let q = |value: Value, unit: &str, ucum: &str| Some(quantity(value, unit, ucum));
        if let Some((sbp, dbp)) = v.bp {
            let mut obs = vital(
                self,
                enc,
                when,
                nurse,
                loinc("85354-9", "Blood pressure panel with all children optional"),
                "Blood pressure",
                None,
            );
            put(
                &mut obs,
                "component",
                json!([
                    {"code": loinc("8480-6", "Systolic blood pressure"), "valueQuantity": quantity(json!(sbp), "mmHg", "mm[Hg]")},
                    {"code": loinc("8462-4", "Diastolic blood pressure"), "valueQuantity": quantity(json!(dbp), "mmHg", "mm[Hg]")}
                ]),
            );
            out.observation.push(obs);
        }
        let spo2_code = json!({"coding": [
            coding(SYS_LOINC, "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry"),
            coding(SYS_LOINC, "2708-6", "Oxygen saturation in Arterial blood")
        ]});
        let rows: [(Value, &str, Option<Value>); 8] = [
            (loinc("8867-4", "Heart rate"), "Heart rate", q(json!(v.hr), "beats/minute", "/min")),
            (loinc("9279-1", "Respiratory rate"), "Respiratory rate", q(json!(v.rr), "breaths/minute", "/min")),
            (loinc("8310-5", "Body temperature"), "Body temperature", q(decimal(v.temp, 1), "C", "Cel")),
            (spo2_code, "Oxygen saturation", q(json!(v.spo2), "%", "%")),
            (loinc("29463-7", "Body weight"), "Body weight", q(decimal(v.weight, 1), "kg", "kg")),
            (loinc("8302-2", "Body height"), "Body height", q(decimal(v.height, 1), "cm", "cm")),
            (loinc("39156-5", "Body mass index (BMI) [Ratio]"), "BMI", q(decimal(v.bmi, 1), "kg/m2", "kg/m2")),
            (
                loinc("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),
                "Pain severity",
                q(json!(v.pain), "{score}", "{score}"),
            ),
        ];
        for (code, text, value) in rows {
            if text == "Body height" && !with_height {
                continue;
            }
            let obs = vital(self, enc, when, nurse, code, text, value);
            out.observation.push(obs);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn condition(
        &mut self,
        dx: Dx,
        enc: &str,
        recorded: NaiveDateTime,
        onset: NaiveDateTime,
        abatement: Option<NaiveDateTime>,
        prac: usize,
        out: &mut Record,
    ) -> String {
        self.n_cond += 1;
        let id = format!("cond-{}-{:02}", self.key, self.n_cond);
        let prac_ref = reference_display("Practitioner", &format!("prac-{:03}", prac + 1), &practitioner_display(prac));
        let (status, status_display) =
            if abatement.is_some() { ("resolved", "Resolved") } else { ("active", "Active") };
        let (sev_code, sev_display) =
            [("255604002", "Mild"), ("6736007", "Moderate"), ("24484000", "Severe")][self.rng.weighted(&[45, 45, 10])];
        let mut condition = json!({
            "resourceType": "Condition",
            "id": id,
            "clinicalStatus": concept(SYS_CONDITION_CLINICAL, status, status_display),
            "verificationStatus": concept(SYS_CONDITION_VER, "confirmed", "Confirmed"),
            "category": [concept(SYS_CONDITION_CATEGORY, "problem-list-item", "Problem List Item")],
            "severity": concept(SYS_SNOMED, sev_code, sev_display),
            "code": concept_text(SYS_ICD10, dx.code, dx.display, dx.display),
            "subject": self.patient_ref,
            "encounter": reference("Encounter", enc),
            "onsetDateTime": datetime(onset.min(recorded)),
        });
        if let Some(a) = abatement {
            put(&mut condition, "abatementDateTime", Value::from(datetime(a.max(recorded))));
        }
        put(&mut condition, "recordedDate", Value::from(datetime(recorded)));
        put(&mut condition, "recorder", prac_ref.clone());
        put(&mut condition, "asserter", prac_ref);
        out.condition.push(condition);
        id
    }

    fn prescriber_allows(&self, med: &Med, prac: usize) -> bool {
        let p = &PRACTITIONERS[prac];
        p.credential.prescribes() && (med.controlled.is_none() || p.dea)
    }

    #[allow(clippy::too_many_arguments)]
    fn prescribe(
        &mut self,
        med: &'static Med,
        reason: Dx,
        condition: Option<&str>,
        chronic: Option<Chronic>,
        enc: &str,
        when: NaiveDateTime,
        prac: usize,
        (valid_days, supply_days, refills): (i64, i64, u32),
        category: (&'static str, &'static str),
    ) {
        if !self.prescriber_allows(med, prac) {
            return;
        }
        self.n_rx += 1;
        self.rx.push(Rx {
            id: format!("mreq-{}-{:02}", self.key, self.n_rx),
            med,
            authored: when,
            encounter: enc.to_owned(),
            prac,
            reason,
            condition: condition.map(str::to_owned),
            chronic,
            valid_days,
            supply_days,
            refills,
            category,
        });
    }

    fn therapy(&mut self, kind: Chronic) -> Option<&'static Med> {
        let person = self.person;
        let nsaid_ok = !person.allergic_to(NSAID_ALLERGENS);
        Some(match kind {
            Chronic::Hypertension if person.age_today() > 55 && self.rng.chance(0.5) => &AMLODIPINE,
            Chronic::Hypertension => &LISINOPRIL,
            Chronic::Hyperlipidemia if self.rng.chance(0.6) => &ROSUVASTATIN,
            Chronic::Hyperlipidemia => &PRAVASTATIN,
            Chronic::Diabetes => &METFORMIN,
            Chronic::Hypothyroidism => &LEVOTHYROXINE,
            Chronic::Depression | Chronic::Anxiety if person.age_today() >= 12 => &FLUOXETINE,
            Chronic::Asthma | Chronic::Copd => &ALBUTEROL,
            Chronic::AllergicRhinitis if person.age_today() >= 2 && self.rng.chance(0.6) => &CETIRIZINE,
            Chronic::AtrialFibrillation if nsaid_ok => &ASPIRIN,
            Chronic::KneeOsteoarthritis if nsaid_ok => &NAPROXEN,
            Chronic::KneeOsteoarthritis => &ACETAMINOPHEN,
            Chronic::Migraine if nsaid_ok && person.age_today() >= 12 => &IBUPROFEN,
            _ => return None,
        })
    }

    fn start_therapy(&mut self, kind: Chronic, condition: &str, enc: &str, when: NaiveDateTime, prac: usize) {
        // Depression and anxiety share one antidepressant.
        if matches!(kind, Chronic::Depression | Chronic::Anxiety)
            && self.rx.iter().any(|r| matches!(r.chronic, Some(Chronic::Depression | Chronic::Anxiety)))
        {
            return;
        }
        if kind == Chronic::Copd && self.rx.iter().any(|r| r.chronic == Some(Chronic::Asthma)) {
            return;
        }
        if let Some(med) = self.therapy(kind) {
            let (supply, refills) = if med.form == Form::Inhaler { (30, 5) } else { (90, 3) };
            let when = add_minutes(when, 25);
            self.prescribe(
                med,
                kind.dx(),
                Some(condition),
                Some(kind),
                enc,
                when,
                prac,
                (365, supply, refills),
                ("outpatient", "Outpatient"),
            );
            // Second agent for hypertension that stays high.
            if kind == Chronic::Hypertension && self.rng.chance(0.3) {
                self.prescribe(
                    &HCTZ,
                    kind.dx(),
                    Some(condition),
                    Some(kind),
                    enc,
                    when,
                    prac,
                    (365, 90, 3),
                    ("outpatient", "Outpatient"),
                );
            }
        }
    }

    /// Repeats long-term prescriptions that are about to run out at a primary-care visit.
    fn renew(&mut self, enc: &str, when: NaiveDateTime, prac: usize) {
        let person = self.person;
        let mut due: Vec<usize> = Vec::new();
        for (i, rx) in self.rx.iter().enumerate() {
            let Some(kind) = rx.chronic else { continue };
            let latest = self
                .rx
                .iter()
                .filter(|r| r.chronic == Some(kind) && r.med.rxnorm == rx.med.rxnorm)
                .map(|r| r.authored)
                .max();
            if latest == Some(rx.authored)
                && days_between(rx.authored.date(), when.date()) >= 330
                && person.has(kind, when.date())
            {
                due.push(i);
            }
        }
        for i in due {
            let (med, reason, condition, chronic, valid, supply, refills) = {
                let r = &self.rx[i];
                (r.med, r.reason, r.condition.clone(), r.chronic, r.valid_days, r.supply_days, r.refills)
            };
            self.prescribe(
                med,
                reason,
                condition.as_deref(),
                chronic,
                enc,
                add_minutes(when, 25),
                prac,
                (valid, supply, refills),
                ("outpatient", "Outpatient"),
            );
        }
    }

    fn acute_therapy(
        &mut self,
        acute: Acute,
        visit: &Visit,
        condition: &str,
        enc: &str,
        when: NaiveDateTime,
        child: bool,
    ) {
        let person = self.person;
        let penicillin_allergy = person.allergic_to(PENICILLIN_ALLERGENS);
        let nsaid_ok = !person.allergic_to(NSAID_ALLERGENS);
        let opioid_ok = !person.allergic_to(&[OPIOID_ALLERGEN]) && !child;
        let age = person.age_at(visit.day);
        let antibiotic = |rng: &mut Rng| -> &'static Med {
            if penicillin_allergy {
                if age >= 8 && rng.chance(0.5) { &DOXYCYCLINE } else { &CEFUROXIME }
            } else if age < 12 {
                &AMOXICILLIN_PEDS
            } else {
                &AMOXICILLIN
            }
        };
        let pain_reliever =
            if nsaid_ok { if self.rng.chance(0.5) { &IBUPROFEN } else { &NAPROXEN } } else { &ACETAMINOPHEN };
        let inpatient = matches!(visit.kind, Kind::Inpatient(..));
        let emergency = matches!(visit.kind, Kind::Emergency(_));
        let mut meds: Vec<(&'static Med, i64)> = Vec::new();
        match acute {
            Acute::Pharyngitis | Acute::OtitisMedia | Acute::Sinusitis if self.rng.chance(0.6) => {
                meds.push((antibiotic(&mut self.rng), 10))
            }
            Acute::Uti => meds.push((&CEFUROXIME, 7)),
            Acute::Pneumonia => meds.push((if age >= 8 { &DOXYCYCLINE } else { antibiotic(&mut self.rng) }, 7)),
            Acute::Cellulitis => {
                meds.push((&CEFUROXIME, 10));
                if inpatient && opioid_ok && self.rng.chance(0.25) {
                    meds.push((&OXYCODONE_APAP, 3));
                }
            }
            Acute::Bronchitis | Acute::CopdExacerbation if self.rng.chance(0.5) => meds.push((&ALBUTEROL, 30)),
            Acute::LowBackPain => {
                meds.push((pain_reliever, 10));
                if opioid_ok && self.rng.chance(0.15) {
                    meds.push((&TRAMADOL, 5));
                }
            }
            Acute::AnkleSprain => {
                meds.push((pain_reliever, 10));
                if emergency && opioid_ok && self.rng.chance(0.25) {
                    meds.push((&HYDROCODONE_APAP, 3));
                }
            }
            Acute::Headache => meds.push((&ACETAMINOPHEN, 10)),
            _ => {}
        }
        let category = if inpatient { ("discharge", "Discharge") } else { ("outpatient", "Outpatient") };
        for (med, days) in meds {
            let med = if self.prescriber_allows(med, visit.prac) { med } else { &ACETAMINOPHEN };
            let refills = if med.controlled == Some("CII") { 0 } else { u32::from(med.form == Form::Inhaler) };
            self.prescribe(
                med,
                acute.dx(),
                Some(condition),
                None,
                enc,
                when,
                visit.prac,
                (30, days, refills),
                category,
            );
        }
    }

    fn labs(
        &mut self,
        visit: &Visit,
        enc: &str,
        start: NaiveDateTime,
        prac_ref: &Value,
        vitals: &Vitals,
        out: &mut Record,
    ) {
        let person = self.person;
        let day = visit.day;
        let age = person.age_at(day);
        let has = |k: Chronic| person.has(k, day);
        let mut panels: Vec<((&str, &str), Vec<&'static Lab>)> = Vec::new();
        let bmp = || (PANEL_BMP, vec![&GLUCOSE, &CREATININE, &SODIUM, &POTASSIUM]);
        let lipid = || (PANEL_LIPID, vec![&CHOLESTEROL, &HDL, &LDL, &TRIGLYCERIDES]);
        let cbc = || (PANEL_CBC, vec![&HEMOGLOBIN, &WBC, &PLATELETS]);
        let a1c = || ((HBA1C.loinc, HBA1C.display), vec![&HBA1C]);
        let tsh = || ((TSH.loinc, TSH.display), vec![&TSH]);
        match visit.kind {
            Kind::Wellness | Kind::NewPatient if age >= 18 => {
                let risk = has(Chronic::Hypertension) || has(Chronic::Diabetes) || has(Chronic::Ckd3);
                if risk || self.rng.chance(if age >= 50 { 0.45 } else { 0.1 }) {
                    panels.push(bmp());
                }
                if has(Chronic::Hyperlipidemia)
                    || has(Chronic::Diabetes)
                    || self.rng.chance(if age >= 40 { 0.3 } else { 0.08 })
                {
                    panels.push(lipid());
                }
                if has(Chronic::Anemia) || self.rng.chance(if age >= 50 { 0.25 } else { 0.08 }) {
                    panels.push(cbc());
                }
                if has(Chronic::Diabetes) || ((age >= 45 || vitals.bmi >= 30.0) && self.rng.chance(0.25)) {
                    panels.push(a1c());
                }
                if has(Chronic::Hypothyroidism) {
                    panels.push(tsh());
                }
            }
            Kind::Wellness if (0.9..1.3).contains(&age_years(person.birth, day)) => panels.push(cbc()),
            Kind::FollowUp => {
                if has(Chronic::Diabetes) && self.rng.chance(0.7) {
                    panels.push(a1c());
                }
                if (has(Chronic::Ckd3) && self.rng.chance(0.6))
                    || (has(Chronic::Diabetes) && self.rng.chance(0.3))
                    || (has(Chronic::Hypertension) && self.rng.chance(0.15))
                {
                    panels.push(bmp());
                }
                if has(Chronic::Hyperlipidemia) && self.rng.chance(0.3) {
                    panels.push(lipid());
                }
                if has(Chronic::Hypothyroidism) && self.rng.chance(0.5) {
                    panels.push(tsh());
                }
            }
            Kind::Specialist(Chronic::Diabetes) => panels.push(a1c()),
            Kind::Emergency(_) if self.rng.chance(0.6) => {
                panels.push(cbc());
                panels.push(bmp());
            }
            Kind::Inpatient(..) => {
                panels.push(cbc());
                panels.push(bmp());
            }
            _ => {}
        }
        if panels.is_empty() {
            return;
        }
        let acute = visit.kind.acute();
        let state = LabState {
            age,
            diabetes: self.treatment(Chronic::Diabetes, day),
            hyperlipidemia: self.treatment(Chronic::Hyperlipidemia, day),
            hypothyroid: self.treatment(Chronic::Hypothyroidism, day),
            ckd: has(Chronic::Ckd3),
            anemia: has(Chronic::Anemia),
            infection: matches!(acute, Some(Acute::Pneumonia | Acute::Cellulitis | Acute::Uti)),
            dehydrated: acute == Some(Acute::Dehydration),
            obese: vitals.bmi >= 30.0,
            fasting: visit.kind.clinic(),
        };
        let drawn = add_minutes(start, self.rng.range(15, 30));
        let issued = datetime(add_minutes(drawn, self.rng.range(120, 480)));
        for (panel, labs) in panels {
            let mut results = Vec::new();
            for lab in labs {
                let value = person.phys.lab_value(&mut self.rng, lab, &state);
                let (low, high) = person.phys.reference_range(lab, age);
                let (flag, flag_display) = match (low, high) {
                    (Some(l), _) if value < l => ("L", "Low"),
                    (_, Some(h)) if value > h => ("H", "High"),
                    _ => ("N", "Normal"),
                };
                let mut range = json!({});
                if let Some(l) = low {
                    put(&mut range, "low", quantity(decimal(l, lab.decimals.clamp(1, 2)), lab.unit, lab.ucum));
                }
                if let Some(h) = high {
                    put(&mut range, "high", quantity(decimal(h, lab.decimals.clamp(1, 2)), lab.unit, lab.ucum));
                }
                self.n_obs += 1;
                let id = format!("obs-{}-{:04}", self.key, self.n_obs);
                out.observation.push(json!({
                    "resourceType": "Observation",
                    "id": id,
                    "status": "final",
                    "category": [concept(SYS_OBS_CATEGORY, "laboratory", "Laboratory")],
                    "code": concept_text(SYS_LOINC, lab.loinc, lab.display, lab.display),
                    "subject": self.patient_ref,
                    "encounter": reference("Encounter", enc),
                    "effectiveDateTime": datetime(drawn),
                    "issued": issued,
                    "performer": [prac_ref],
                    "valueQuantity": quantity(decimal(value, lab.decimals), lab.unit, lab.ucum),
                    "interpretation": [concept(SYS_INTERPRETATION, flag, flag_display)],
                    "referenceRange": [range],
                }));
                results.push(reference("Observation", &id));
            }
            self.n_report += 1;
            out.report.push(json!({
                "resourceType": "DiagnosticReport",
                "id": format!("dr-{}-{:03}", self.key, self.n_report),
                "status": "final",
                "category": [concept(SYS_V2_0074, "LAB", "Laboratory")],
                "code": concept_text(SYS_LOINC, panel.0, panel.1, panel.1),
                "subject": self.patient_ref,
                "encounter": reference("Encounter", enc),
                "effectiveDateTime": datetime(drawn),
                "issued": issued,
                "performer": [prac_ref],
                "result": results,
            }));
        }
    }

    fn allergies(&mut self, enc: &str, when: NaiveDateTime, out: &mut Record) {
        let person = self.person;
        let gp = person.gp;
        for (i, plan) in person.allergies.iter().enumerate() {
            let a = &ALLERGENS[plan.allergen];
            let (reaction_code, reaction_display) = a.reactions[plan.reaction];
            let (status, status_display) = if plan.active { ("active", "Active") } else { ("resolved", "Resolved") };
            let (ver, ver_display) =
                if plan.confirmed { ("confirmed", "Confirmed") } else { ("unconfirmed", "Unconfirmed") };
            let text = a.display.split(" - ").next().unwrap_or(a.display).split(" (").next().unwrap_or(a.display);
            let intolerance = matches!(reaction_code, "422587007" | "62315008");
            out.allergy.push(json!({
                "resourceType": "AllergyIntolerance",
                "id": format!("alg-{}-{}", self.key, i + 1),
                "clinicalStatus": concept(SYS_ALLERGY_CLINICAL, status, status_display),
                "verificationStatus": concept(SYS_ALLERGY_VER, ver, ver_display),
                "type": if intolerance { "intolerance" } else { "allergy" },
                "category": [a.category],
                "criticality": plan.criticality,
                "code": {"coding": [coding(a.system, a.code, a.display)], "text": text},
                "patient": self.patient_ref,
                "encounter": reference("Encounter", enc),
                "onsetDateTime": datetime(at(plan.onset, 12, 0)),
                "recordedDate": datetime(add_minutes(when, 10)),
                "recorder": reference_display("Practitioner", &format!("prac-{:03}", gp + 1), &practitioner_display(gp)),
                "asserter": reference("Patient", &person.id),
                "reaction": [{
                    "manifestation": [concept_text(SYS_SNOMED, reaction_code, reaction_display, reaction_display)],
                    "severity": plan.severity
                }],
            }));
        }
    }

    /// Emits the MedicationRequests with their final status: superseded and expired ones are
    /// `completed`, the current ones `active`, those ended by death, transfer or resolution `stopped`.
    fn finish_prescriptions(&mut self, out: &mut Record) {
        let person = self.person;
        let today = self.config.today;
        for rx in &self.rx {
            let valid_until = add_days(rx.authored.date(), rx.valid_days);
            let superseded = rx.chronic.is_some()
                && self
                    .rx
                    .iter()
                    .any(|r| r.chronic == rx.chronic && r.med.rxnorm == rx.med.rxnorm && r.authored > rx.authored);
            let resolved =
                rx.chronic.and_then(|k| person.chronic.iter().find(|p| p.kind == k)).and_then(|p| p.resolved);
            let expired = valid_until <= today && resolved.is_none_or(|r| r >= valid_until);
            let (status, reason) = if superseded || expired {
                ("completed", None)
            } else if person.deceased.is_some() {
                ("stopped", Some("Patient deceased"))
            } else if !person.active {
                ("stopped", Some("Patient transferred care"))
            } else if resolved.is_some() {
                ("stopped", Some("Condition resolved"))
            } else {
                ("active", None)
            };
            let med = rx.med;
            let (unit, ucum) = med.form.unit();
            let (dispense_value, dispense_unit, dispense_code) = if med.form == Form::Inhaler {
                (1, "inhaler", "{inhaler}")
            } else {
                let count = i64::from(med.dose * med.per_day) * rx.supply_days;
                (count, unit, ucum)
            };
            let route = if med.form == Form::Inhaler {
                concept(SYS_SNOMED, "447694001", "Respiratory tract route (qualifier value)")
            } else {
                concept(SYS_SNOMED, "26643006", "Oral route (qualifier value)")
            };
            let mut request = json!({
                "resourceType": "MedicationRequest",
                "id": rx.id,
                "status": status,
            });
            if let Some(reason) = reason {
                put(&mut request, "statusReason", json!({"text": reason}));
            }
            let mut dosage = json!({
                "sequence": 1,
                "text": med.sig,
                "timing": {"repeat": {"frequency": med.per_day, "period": 1, "periodUnit": "d"}},
            });
            if med.as_needed {
                put(&mut dosage, "asNeededBoolean", Value::Bool(true));
            }
            put(&mut dosage, "route", route);
            put(&mut dosage, "doseAndRate", json!([{"doseQuantity": quantity(json!(med.dose), unit, ucum)}]));
            let mut reasons = json!([concept_text(SYS_ICD10, rx.reason.code, rx.reason.display, rx.reason.display)]);
            if let Value::Array(list) = &mut reasons {
                list.truncate(1);
            }
            for (k, v) in [
                ("intent", Value::from("order")),
                ("category", json!([concept(SYS_MED_CATEGORY, rx.category.0, rx.category.1)])),
                (
                    "medicationCodeableConcept",
                    json!({"coding": [coding(SYS_RXNORM, med.rxnorm, med.display)], "text": med.text}),
                ),
                ("subject", self.patient_ref.clone()),
                ("encounter", reference("Encounter", &rx.encounter)),
                ("authoredOn", Value::from(datetime(rx.authored))),
                (
                    "requester",
                    reference_display(
                        "Practitioner",
                        &format!("prac-{:03}", rx.prac + 1),
                        &practitioner_display(rx.prac),
                    ),
                ),
                ("reasonCode", reasons),
            ] {
                put(&mut request, k, v);
            }
            if let Some(condition) = &rx.condition {
                put(&mut request, "reasonReference", json!([reference("Condition", condition)]));
            }
            let course = if rx.chronic.is_some() {
                concept(SYS_COURSE, "continuous", "Continuous long term therapy")
            } else {
                concept(SYS_COURSE, "acute", "Short course (acute) therapy")
            };
            put(&mut request, "courseOfTherapyType", course);
            put(&mut request, "dosageInstruction", json!([dosage]));
            put(
                &mut request,
                "dispenseRequest",
                json!({
                    "validityPeriod": period(datetime(rx.authored), Some(datetime(at(valid_until, 23, 59)))),
                    "numberOfRepeatsAllowed": rx.refills,
                    "quantity": quantity(json!(dispense_value), dispense_unit, dispense_code),
                    "expectedSupplyDuration": {"value": rx.supply_days, "unit": "days", "system": SYS_UCUM, "code": "d"},
                }),
            );
            out.medication.push(request);
        }
    }
}
