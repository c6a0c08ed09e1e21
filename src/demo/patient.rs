//! A demo patient: demographics, identifiers (MRN, synthetic SSN), emergency contact, problems,
//! allergies and physiology drawn once per patient; and the patient-level resources built from
//! them (Patient, RelatedPerson, Coverage, Consent).

use chrono::{Datelike, NaiveDate, NaiveDateTime};
use serde_json::{Value, json};

use super::data::*;
use super::fhir::{coding, concept, concept_text, period, put, reference, reference_display};
use super::rng::{Rng, mix};
use super::schedule::primary_care;
use super::time::{add_days, add_years, age_on, at, date, datetime, days_between, ymd};
use super::vitals::Physiology;
use super::{DemoConfig, Record, patient_key};

const STREAM_PERSON: u64 = 0x5045;
const STREAM_COVERAGE: u64 = 0x434F;
const STREAM_CONSENT: u64 = 0x434E;

/// MRN sequence numbers per registration year (`MRN-YYYY-NNNNN`).
const MRN_PER_YEAR: u32 = 99_999;

/// A long-term problem of the patient.
#[derive(Clone, Debug)]
pub(crate) struct Problem {
    pub kind: Chronic,
    pub onset: NaiveDate,
    /// Present before the patient's history starts (recorded at the first visit, already treated).
    pub preexisting: bool,
    pub resolved: Option<NaiveDate>,
}

#[derive(Clone, Debug)]
pub(crate) struct AllergyPlan {
    pub allergen: usize,
    pub active: bool,
    pub confirmed: bool,
    pub reaction: usize,
    pub severity: &'static str,
    pub criticality: &'static str,
    pub onset: NaiveDate,
}

#[derive(Clone, Debug)]
pub(crate) struct Contact {
    pub given: &'static str,
    pub family: &'static str,
    pub gender: &'static str,
    /// v3-RoleCode code and display, and a human text.
    pub role: (&'static str, &'static str),
    pub text: &'static str,
    pub phone: String,
    pub same_address: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConsentDeny {
    None,
    MedicationMarketing,
    ConditionResearch,
    ObservationActor,
    AllergyClass,
}

pub(crate) struct Person {
    pub index: u32,
    pub key: String,
    pub id: String,
    pub today: NaiveDate,
    pub gender: &'static str,
    /// Physiology (reference ranges, growth) follows female norms.
    pub female: bool,
    pub given: &'static str,
    pub middle: Option<&'static str>,
    pub family: &'static str,
    pub birth: NaiveDate,
    /// Index into `PRACTITIONERS` of the primary-care practitioner.
    pub gp: usize,
    /// Booking block (see `schedule.rs`).
    pub block: u64,
    /// Registration date (the MRN's year; identifier.period.start).
    pub registered: NaiveDate,
    /// First and last day of the generated history (empty when start > end).
    pub history_start: NaiveDate,
    pub history_end: NaiveDate,
    pub mrn: String,
    pub ssn: String,
    pub deceased: Option<NaiveDateTime>,
    pub active: bool,
    pub chronic: Vec<Problem>,
    pub allergies: Vec<AllergyPlan>,
    pub phys: Physiology,
    /// Visits per year relative to the average patient.
    pub density: f64,
    street: String,
    unit: Option<String>,
    city: &'static str,
    zip: &'static str,
    phone: String,
    email: Option<String>,
    marital: Option<(&'static str, &'static str)>,
    language: (&'static str, &'static str),
    pub contact: Contact,
    consent_deny: ConsentDeny,
}

impl Person {
    pub(crate) fn new(config: &DemoConfig, index: u32) -> Person {
        let today = config.today;
        let mut rng = Rng::new(config.seed, &[STREAM_PERSON, u64::from(index)]);
        let key = patient_key(index);
        let (gp, block) = primary_care(config.seed, index);

        // Registration year: chunk 0 registers within the history window; each further chunk of
        // 99,999 patients gets its own earlier year, so (year, sequence) is unique.
        let chunk = index / MRN_PER_YEAR;
        let sequence = index % MRN_PER_YEAR + 1;
        let forced_year = (chunk > 0).then(|| today.year() - 4 - chunk as i32);

        // Gender and age (constrained by the practitioner's panel and the registration year).
        let gender = ["female", "male", "other", "unknown"][rng.weighted(&[505, 480, 7, 8])];
        let female = match gender {
            "female" => true,
            "male" => false,
            _ => rng.chance(0.5),
        };
        let (mut min_age, mut max_age) = match PRACTITIONERS[gp].role {
            Role::Pediatric => (0, 17),
            Role::Internal => (18, 95),
            _ => (0, 95),
        };
        if let Some(year) = forced_year {
            min_age = min_age.max(today.year() - year + 1);
            max_age = max_age.max(min_age);
        }
        let bands: [(i32, i32, u32); 6] =
            [(0, 4, 60), (5, 17, 160), (18, 39, 300), (40, 64, 320), (65, 79, 120), (80, 95, 40)];
        let weights: Vec<u32> =
            bands.iter().map(|&(lo, hi, w)| if hi < min_age || lo > max_age { 0 } else { w }).collect();
        let age = if weights.iter().any(|&w| w > 0) {
            let (lo, hi, _) = bands[rng.weighted(&weights)];
            rng.range(i64::from(lo.max(min_age)), i64::from(hi.min(max_age))) as i32
        } else {
            min_age
        };
        let mut birth = add_days(add_years(today, -age), -rng.range(0, 364));
        birth = birth.min(add_days(today, -30));
        if let Some(year) = forced_year {
            birth = birth.min(ymd(year, 1, 1));
        }

        // Names.
        let given_list = match gender {
            "female" => FEMALE_NAMES,
            "male" => MALE_NAMES,
            _ if rng.chance(0.5) => NEUTRAL_NAMES,
            _ if female => FEMALE_NAMES,
            _ => MALE_NAMES,
        };
        let given = *rng.pick(given_list);
        let middle = rng.chance(0.6).then(|| *rng.pick(given_list)).filter(|m| *m != given);
        let family = *rng.pick(FAMILY_NAMES);

        // History window and registration.
        let history_days = rng.range(730, 1460);
        let first_visit = add_days(birth, rng.range(3, 14)).max(add_days(today, -history_days));
        let registered = match forced_year {
            Some(year) => {
                let start = ymd(year, 1, 1).max(birth);
                add_days(start, rng.range(0, days_between(start, ymd(year, 12, 31)).max(0)))
            }
            None => first_visit,
        };
        let mrn = format!("MRN-{:04}-{sequence:05}", registered.year());
        let ssn = synthetic_ssn(config.seed, index);
        let density = 0.5 + rng.unit() * 0.8;

        // Deceased (elderly) or moved away (inactive): the history ends early.
        let mut history_end = add_days(today, -1);
        let mut deceased = None;
        let mut active = true;
        let age_now = age_on(birth, today);
        if age_now >= 70 && rng.chance(0.02) && days_between(first_visit, today) > 200 {
            let death = add_days(today, -rng.range(5, 150));
            deceased = Some(at(death, rng.range(0, 23) as u32, rng.range(0, 59) as u32));
            history_end = add_days(death, -1);
        } else if rng.chance(0.015) && days_between(first_visit, today) > 400 {
            active = false;
            history_end = add_days(today, -rng.range(30, 200));
        }

        // Address and telecom.
        let street = format!("{} {}", rng.range(100, 9899), rng.pick(STREETS));
        let unit = rng.chance(0.25).then(|| format!("Apt {}{}", rng.range(1, 4), ["A", "B", "C", "D"][rng.index(4)]));
        let (city, zips) = *rng.pick(CITIES);
        let zip = *rng.pick(zips);
        let phone = fictional_phone(&mut rng);
        let email = (age_now >= 16 && rng.chance(0.85)).then(|| {
            let clean = |s: &str| s.to_lowercase().replace(['\'', ' '], "");
            format!("{}.{}{}@example.com", clean(given), clean(family), rng.range(1, 99))
        });
        let marital = if age_now < 18 {
            None
        } else {
            let w: [u32; 5] = match age_now {
                18..=29 => [70, 25, 5, 0, 0],
                30..=64 => [25, 55, 15, 5, 0],
                _ => [5, 50, 15, 30, 0],
            };
            Some(
                [("S", "Never Married"), ("M", "Married"), ("D", "Divorced"), ("W", "Widowed"), ("U", "unmarried")]
                    [rng.weighted(&w)],
            )
        };
        let language =
            [("en-US", "English (United States)"), ("es", "Spanish"), ("vi", "Vietnamese"), ("zh", "Chinese")]
                [rng.weighted(&[900, 70, 15, 15])];
        let contact = emergency_contact(&mut rng, age_now, family, marital.map(|m| m.0));

        // Problems (by prevalence at today's age), physiology, allergies.
        let phys = Physiology::new(&mut rng, female, birth);
        let chronic = draw_problems(&mut rng, birth, female, first_visit, history_end, phys.bmi_base, today);
        let allergies = draw_allergies(&mut rng, age_now, birth, first_visit);
        let consent_deny = match rng.weighted(&[950, 15, 15, 12, 8]) {
            0 => ConsentDeny::None,
            1 => ConsentDeny::MedicationMarketing,
            2 => ConsentDeny::ConditionResearch,
            3 => ConsentDeny::ObservationActor,
            _ => ConsentDeny::AllergyClass,
        };

        Person {
            index,
            id: format!("pat-{key}"),
            key,
            today,
            gender,
            female,
            given,
            middle,
            family,
            birth,
            gp,
            block,
            registered,
            history_start: first_visit,
            history_end,
            mrn,
            ssn,
            deceased,
            active,
            chronic,
            allergies,
            phys,
            density,
            street,
            unit,
            city,
            zip,
            phone,
            email,
            marital,
            language,
            contact,
            consent_deny,
        }
    }

    pub(crate) fn display_name(&self) -> String {
        format!("{} {}", self.given, self.family)
    }

    pub(crate) fn age_today(&self) -> i32 {
        age_on(self.birth, self.today)
    }

    pub(crate) fn age_at(&self, d: NaiveDate) -> i32 {
        age_on(self.birth, d)
    }

    pub(crate) fn has(&self, kind: Chronic, on: NaiveDate) -> bool {
        self.chronic.iter().any(|p| p.kind == kind && p.onset <= on && p.resolved.is_none_or(|r| r > on))
    }

    pub(crate) fn allergic_to(&self, allergens: &[usize]) -> bool {
        self.allergies.iter().any(|a| a.active && allergens.contains(&a.allergen))
    }

    fn address(&self, person_use: &str) -> Value {
        let mut line = vec![Value::from(self.street.clone())];
        if let Some(unit) = &self.unit {
            line.push(Value::from(unit.clone()));
        }
        json!({"use": person_use, "type": "physical", "line": line, "city": self.city, "state": "OH",
               "postalCode": self.zip, "country": "US"})
    }
}

/// `9AA-GG-SSSS`: SSN area numbers 900–999 are never issued, so these cannot be real. A bijection
/// of the index (an odd prime multiplier modulo the space), hence unique for 98,990,100 patients.
fn synthetic_ssn(seed: u64, index: u32) -> String {
    const SPACE: u64 = 100 * 99 * 9_999;
    let k = (u64::from(index) * 2_654_435_761 + mix(seed) % SPACE) % SPACE;
    let area = 900 + k % 100;
    let rest = k / 100;
    let group = 1 + rest % 99;
    let serial = 1 + rest / 99;
    format!("{area:03}-{group:02}-{serial:04}")
}

/// A number in the 555-0100..555-0199 range reserved for fiction.
pub(crate) fn fictional_phone(rng: &mut Rng) -> String {
    format!("({}) 555-01{:02}", rng.pick(AREA_CODES), rng.below(100))
}

fn emergency_contact(rng: &mut Rng, age: i32, family: &'static str, marital: Option<&str>) -> Contact {
    let phone = fictional_phone(rng);
    let pick_given = |rng: &mut Rng, female: bool| *rng.pick(if female { FEMALE_NAMES } else { MALE_NAMES });
    let other_family = |rng: &mut Rng, keep: f64| if rng.chance(keep) { family } else { *rng.pick(FAMILY_NAMES) };
    if age < 18 {
        let mother = rng.chance(0.6);
        return Contact {
            given: pick_given(rng, mother),
            family: other_family(rng, 0.85),
            gender: if mother { "female" } else { "male" },
            role: if mother { ("MTH", "mother") } else { ("FTH", "father") },
            text: if mother { "Mother" } else { "Father" },
            phone,
            same_address: true,
        };
    }
    if marital == Some("M") {
        let female = rng.chance(0.5);
        return Contact {
            given: pick_given(rng, female),
            family: other_family(rng, 0.7),
            gender: if female { "female" } else { "male" },
            role: ("SPS", "spouse"),
            text: "Spouse",
            phone,
            same_address: true,
        };
    }
    let female = rng.chance(0.5);
    let (role, text, keep) = match rng.index(3) {
        0 => (("SIB", "sibling"), "Sibling", 0.7),
        1 if age < 50 => (("PRN", "parent"), "Parent", 0.8),
        1 => (("CHILD", "child"), "Adult child", 0.6),
        _ => (("FRND", "unrelated friend"), "Friend", 0.0),
    };
    Contact {
        given: pick_given(rng, female),
        family: other_family(rng, keep),
        gender: if female { "female" } else { "male" },
        role,
        text,
        phone,
        same_address: false,
    }
}

fn onset_min_age(kind: Chronic) -> i32 {
    match kind {
        Chronic::Hypertension
        | Chronic::Hyperlipidemia
        | Chronic::Diabetes
        | Chronic::Ckd3
        | Chronic::AtrialFibrillation
        | Chronic::Copd
        | Chronic::KneeOsteoarthritis
        | Chronic::SleepApnea => 25,
        Chronic::Depression | Chronic::Anxiety | Chronic::Nicotine | Chronic::Migraine => 12,
        Chronic::Asthma | Chronic::AllergicRhinitis => 2,
        _ => 0,
    }
}

fn draw_problems(
    rng: &mut Rng,
    birth: NaiveDate,
    female: bool,
    start: NaiveDate,
    end: NaiveDate,
    bmi: f64,
    today: NaiveDate,
) -> Vec<Problem> {
    let age = age_on(birth, today);
    let mut problems: Vec<Problem> = Vec::new();
    for &kind in CHRONIC_ALL {
        let mut p = f64::from(kind.prevalence(age, female)) / 1000.0;
        let has = |k: Chronic, ps: &[Problem]| ps.iter().any(|x| x.kind == k);
        match kind {
            Chronic::Diabetes | Chronic::Hypertension if bmi >= 30.0 => p *= 1.8,
            Chronic::SleepApnea if bmi >= 30.0 => p *= 2.5,
            Chronic::Hyperlipidemia if bmi >= 30.0 => p *= 1.3,
            Chronic::Ckd3 if has(Chronic::Diabetes, &problems) || has(Chronic::Hypertension, &problems) => p *= 2.0,
            Chronic::Copd if has(Chronic::Nicotine, &problems) => p *= 3.0,
            _ => {}
        }
        if !rng.chance(p.min(0.9)) {
            continue;
        }
        let earliest = add_years(birth, onset_min_age(kind).min(age.max(0))).max(add_days(birth, 30));
        let latest_before = add_days(start, -60);
        let history_days = days_between(start, end);
        let new_onset = earliest > latest_before || (history_days > 200 && rng.chance(0.2));
        let (onset, preexisting) = if new_onset {
            if history_days < 60 {
                continue;
            }
            let lo = start.max(earliest);
            if lo > end {
                continue;
            }
            (add_days(lo, rng.range(0, days_between(lo, end).max(0))), false)
        } else {
            (add_days(earliest, rng.range(0, days_between(earliest, latest_before))), true)
        };
        let resolved = (kind.may_resolve() && rng.chance(0.3))
            .then(|| add_days(onset.max(start), rng.range(90, 700)))
            .filter(|r| *r < end);
        problems.push(Problem { kind, onset, preexisting, resolved });
    }
    problems
}

fn draw_allergies(rng: &mut Rng, age: i32, birth: NaiveDate, first_visit: NaiveDate) -> Vec<AllergyPlan> {
    let count = rng.weighted(&[750, 180, 60, 10]);
    let mut out: Vec<AllergyPlan> = Vec::new();
    for _ in 0..count {
        let category_weights: [u32; 3] = if age < 18 { [30, 50, 20] } else { [55, 20, 25] };
        let category = ["medication", "food", "environment"][rng.weighted(&category_weights)];
        let choices: Vec<usize> = (0..ALLERGENS.len()).filter(|&i| ALLERGENS[i].category == category).collect();
        let allergen = *rng.pick(&choices);
        if out.iter().any(|a| a.allergen == allergen) {
            continue;
        }
        let a = &ALLERGENS[allergen];
        let reaction = rng.index(a.reactions.len());
        let anaphylaxis = a.reactions[reaction].0 == "39579001";
        let severity = if anaphylaxis { "severe" } else { ["mild", "moderate"][rng.index(2)] };
        let criticality = if anaphylaxis {
            "high"
        } else if rng.chance(0.05) {
            "unable-to-assess"
        } else {
            "low"
        };
        let onset_span = days_between(birth, first_visit).max(1);
        let onset = add_days(birth, rng.range(onset_span.min(180), onset_span));
        let active = !(category == "food" && age < 18 && rng.chance(0.15));
        out.push(AllergyPlan { allergen, active, confirmed: rng.chance(0.85), reaction, severity, criticality, onset });
    }
    out
}

/// Patient, RelatedPerson (emergency contact), Coverage(s) and the privacy Consent.
pub(crate) fn demographics(config: &DemoConfig, person: &Person, out: &mut Record) {
    let clinic = reference_display("Organization", "org-clinic", CLINIC_NAME);
    let gp_id = format!("prac-{:03}", person.gp + 1);
    let registered = at(person.registered, 9, 0);

    // Patient.
    let mut given = vec![Value::from(person.given)];
    if let Some(m) = person.middle {
        given.push(Value::from(m));
    }
    let mut telecom = vec![
        json!({"system": "phone", "value": person.phone, "use": if person.age_today() < 18 { "home" } else { "mobile" }, "rank": 1}),
    ];
    if let Some(email) = &person.email {
        telecom.push(json!({"system": "email", "value": email, "use": "home"}));
    }
    let contact_name = json!({"family": person.contact.family, "given": [person.contact.given]});
    let mut contact = json!({
        "relationship": [concept_text(SYS_V2_0131, "C", "Emergency Contact", person.contact.text)],
        "name": contact_name,
        "telecom": [{"system": "phone", "value": person.contact.phone, "use": "mobile"}],
        "gender": person.contact.gender,
    });
    if person.contact.same_address {
        put(&mut contact, "address", person.address("home"));
    }
    let mut patient = json!({
        "resourceType": "Patient",
        "id": person.id,
        "identifier": [
            {
                "use": "usual",
                "type": concept(SYS_V2_0203, "MR", "Medical record number"),
                "system": SYS_MRN,
                "value": person.mrn,
                "period": {"start": datetime(registered)},
                "assigner": clinic,
            },
            {
                "use": "official",
                "type": concept(SYS_V2_0203, "SS", "Social Security number"),
                "system": SYS_SSN,
                "value": person.ssn,
            }
        ],
        "active": person.active,
        "name": [{"use": "official", "family": person.family, "given": given}],
        "telecom": telecom,
        "gender": person.gender,
        "birthDate": date(person.birth),
    });
    if let Some(death) = person.deceased {
        put(&mut patient, "deceasedDateTime", Value::from(datetime(death)));
    }
    put(&mut patient, "address", json!([person.address("home")]));
    if let Some((code, display)) = person.marital {
        put(&mut patient, "maritalStatus", concept(SYS_MARITAL, code, display));
    }
    put(&mut patient, "contact", json!([contact]));
    put(
        &mut patient,
        "communication",
        json!([{"language": concept_text(SYS_LANGUAGE, person.language.0, person.language.1, person.language.1), "preferred": true}]),
    );
    put(
        &mut patient,
        "generalPractitioner",
        json!([reference_display("Practitioner", &gp_id, &super::shared::practitioner_display(person.gp))]),
    );
    put(&mut patient, "managingOrganization", clinic.clone());
    out.patient.push(patient);

    // RelatedPerson: the emergency contact (coverage subscriber for dependants, signer for minors).
    let rp_id = format!("rp-{}", person.key);
    let mut related = json!({
        "resourceType": "RelatedPerson",
        "id": rp_id,
        "active": true,
        "patient": reference("Patient", &person.id),
        "relationship": [{
            "coding": [coding(SYS_ROLE_CODE, person.contact.role.0, person.contact.role.1), coding(SYS_V2_0131, "C", "Emergency Contact")],
            "text": person.contact.text
        }],
        "name": [{"use": "official", "family": person.contact.family, "given": [person.contact.given]}],
        "telecom": [{"system": "phone", "value": person.contact.phone, "use": "mobile"}],
        "gender": person.contact.gender,
    });
    if person.contact.same_address {
        put(&mut related, "address", json!([person.address("home")]));
    }
    out.related.push(related);

    coverages(config, person, &rp_id, out);
    consent(config, person, &rp_id, out);
}

fn coverages(config: &DemoConfig, person: &Person, rp_id: &str, out: &mut Record) {
    let mut rng = Rng::new(config.seed, &[STREAM_COVERAGE, u64::from(person.index)]);
    let age = person.age_today();
    // (payor, subscriber is the contact, relationship code/display)
    let mut plans: Vec<(usize, bool, (&str, &str))> = Vec::new();
    let spouse = person.contact.role.0 == "SPS";
    if age >= 65 {
        plans.push((PAYOR_SENIOR, false, ("self", "Self")));
        if rng.chance(0.4) {
            plans.push((PAYOR_PPO, false, ("self", "Self")));
        }
    } else if age < 18 {
        if rng.chance(0.35) {
            plans.push((PAYOR_FAMILY, false, ("self", "Self")));
        } else {
            plans.push(([PAYOR_PPO, PAYOR_HMO][rng.index(2)], true, ("child", "Child")));
        }
    } else if spouse && rng.chance(0.3) {
        plans.push(([PAYOR_PPO, PAYOR_HMO][rng.index(2)], true, ("spouse", "Spouse")));
    } else {
        plans.push(([PAYOR_PPO, PAYOR_HMO, PAYOR_FAMILY][rng.weighted(&[55, 35, 10])], false, ("self", "Self")));
        if spouse && rng.chance(0.12) {
            plans.push(([PAYOR_PPO, PAYOR_HMO][rng.index(2)], true, ("spouse", "Spouse")));
        }
    }
    let ended = person.deceased.map(|d| d.date()).or((!person.active).then_some(person.history_end));
    for (order, (payor_index, dependant, relationship)) in plans.into_iter().enumerate() {
        let payor = &PAYORS[payor_index];
        let prefix = ["BMH", "HCH", "SHB", "OFH"][payor_index];
        let member = format!("{prefix}{:09}", rng.below(1_000_000_000));
        let start_year = if payor_index == PAYOR_SENIOR {
            add_years(person.birth, 65).year().max(person.registered.year() - 8)
        } else {
            person.registered.year() - rng.range(0, 3) as i32
        };
        let start = at(ymd(start_year, 1, 1), 0, 0);
        let mut coverage = json!({
            "resourceType": "Coverage",
            "id": format!("cov-{}-{}", person.key, order + 1),
            "identifier": [{"system": format!("urn:kiln:demo:payor:{}:member", payor.id), "value": member}],
            "status": if ended.is_some() { "cancelled" } else { "active" },
            "type": concept(SYS_ACT_CODE, payor.plan_type.0, payor.plan_type.1),
            "subscriber": if dependant { reference("RelatedPerson", rp_id) } else { reference("Patient", &person.id) },
            "subscriberId": member,
            "beneficiary": reference("Patient", &person.id),
            "dependent": if dependant { if relationship.0 == "spouse" { "01" } else { "02" } } else { "00" },
            "relationship": concept(SYS_SUBSCRIBER_REL, relationship.0, relationship.1),
            "period": period(datetime(start), ended.map(|d| datetime(at(d, 23, 59)))),
            "payor": [reference_display("Organization", payor.id, payor.name)],
        });
        let mut classes = Vec::new();
        if payor_index == PAYOR_PPO || payor_index == PAYOR_HMO {
            let employers = [
                "Scioto Valley Manufacturing",
                "Central Ohio Schools",
                "Capital City Bank",
                "Olentangy Tech Partners",
                "Buckeye Retail Group",
                "Lakeshore Logistics",
                "Individual marketplace plan",
            ];
            classes.push(json!({
                "type": concept(SYS_COVERAGE_CLASS, "group", "Group"),
                "value": format!("GRP-{:05}", rng.below(100_000)),
                "name": rng.pick(&employers),
            }));
        }
        classes.push(json!({
            "type": concept(SYS_COVERAGE_CLASS, "plan", "Plan"),
            "value": format!("PLAN-{}", payor.plan_type.0),
            "name": payor.plan_name,
        }));
        put(&mut coverage, "class", Value::Array(classes));
        put(&mut coverage, "order", json!(order + 1));
        let copay = match payor_index {
            PAYOR_PPO => 25,
            PAYOR_HMO => 15,
            _ => 0,
        };
        if copay > 0 {
            put(
                &mut coverage,
                "costToBeneficiary",
                json!([{"type": concept(SYS_COPAY_TYPE, "gpvisit", "GP Office Visit"), "valueMoney": {"value": copay, "currency": "USD"}}]),
            );
        }
        out.coverage.push(coverage);
    }
}

fn consent(config: &DemoConfig, person: &Person, rp_id: &str, out: &mut Record) {
    let mut rng = Rng::new(config.seed, &[STREAM_CONSENT, u64::from(person.index)]);
    let signed = at(person.registered, 9, rng.range(0, 20) as u32);
    let performer = if person.age_at(person.registered) < 18 {
        reference("RelatedPerson", rp_id)
    } else {
        reference("Patient", &person.id)
    };
    let mut provision = json!({"type": "permit", "period": {"start": datetime(signed)}});
    let class = |code: &str| json!([coding(SYS_RESOURCE_TYPES, code, code)]);
    let deny = match person.consent_deny {
        ConsentDeny::None => None,
        ConsentDeny::MedicationMarketing => Some(json!({
            "type": "deny",
            "purpose": [coding(SYS_ACT_REASON, "HMARKT", "healthcare marketing")],
            "class": class("MedicationRequest"),
        })),
        ConsentDeny::ConditionResearch => Some(json!({
            "type": "deny",
            "purpose": [coding(SYS_ACT_REASON, "HRESCH", "healthcare research")],
            "class": class("Condition"),
        })),
        ConsentDeny::ObservationActor => {
            // A practitioner other than the patient's own who must not see results.
            let mut other = rng.index(PRACTITIONERS.len());
            if other == person.gp {
                other = (other + 1) % PRACTITIONERS.len();
            }
            Some(json!({
                "type": "deny",
                "actor": [{
                    "role": concept(SYS_PARTICIPATION, "IRCP", "information recipient"),
                    "reference": reference_display("Practitioner", &format!("prac-{:03}", other + 1), &super::shared::practitioner_display(other)),
                }],
                "class": class("Observation"),
            }))
        }
        ConsentDeny::AllergyClass => Some(json!({"type": "deny", "class": class("AllergyIntolerance")})),
    };
    if let Some(deny) = deny {
        put(&mut provision, "provision", json!([deny]));
    }
    out.consent.push(json!({
        "resourceType": "Consent",
        "id": format!("cons-{}", person.key),
        "status": "active",
        "scope": concept(SYS_CONSENT_SCOPE, "patient-privacy", "Privacy Consent"),
        "category": [concept(SYS_LOINC, "59284-0", "Patient Consent")],
        "patient": reference("Patient", &person.id),
        "dateTime": datetime(signed),
        "performer": [performer],
        "organization": [reference_display("Organization", "org-clinic", CLINIC_NAME)],
        "policyRule": concept(SYS_ACT_CODE, "OPTIN", "opt-in"),
        "provision": provision,
    }));
}
