//! Resources shared by every demo patient: the clinic Organization (the tenant), payor
//! Organizations, Locations, Practitioners (NPI, license, DEA), PractitionerRoles and Schedules.

use serde_json::{Value, json};

use super::DemoConfig;
use super::data::*;
use super::fhir::{concept, concept_text, put, reference, reference_display};
use super::schedule::{first_booking_day, last_booking_day};
use super::time::{at, datetime, ymd};

const CLINIC_ID: &str = "org-clinic";

/// "Dr. Eleanor Whitfield, MD" / "Grace Lindqvist, NP".
pub(crate) fn practitioner_display(index: usize) -> String {
    let p = &PRACTITIONERS[index];
    let title = if matches!(p.credential, Credential::Md | Credential::Do) { "Dr. " } else { "" };
    format!("{title}{} {}, {}", p.given, p.family, p.credential.code().0)
}

/// A 10-digit NPI with its Luhn check digit (computed over the `80840` prefix).
pub(crate) fn npi(base9: u64) -> String {
    let digits = format!("80840{base9:09}");
    let mut sum = 0;
    for (i, c) in digits.chars().rev().enumerate() {
        let mut d = c.to_digit(10).unwrap_or(0);
        if i % 2 == 0 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    let check = (10 - sum % 10) % 10;
    format!("{base9:09}{check}")
}

/// A DEA number: registrant letter, initial of the last name, six digits and the check digit.
fn dea(index: usize) -> String {
    let p = &PRACTITIONERS[index];
    let first = if matches!(p.credential, Credential::Np | Credential::Pa) { 'M' } else { ['A', 'B', 'F'][index % 3] };
    let initial = p.family.chars().next().unwrap_or('X').to_ascii_uppercase();
    let n = 314_159 + index as u32 * 27_183;
    let d: Vec<u32> = format!("{:06}", n % 1_000_000).chars().map(|c| c.to_digit(10).unwrap_or(0)).collect();
    let check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10;
    format!("{first}{initial}{}{}", d.iter().map(|x| x.to_string()).collect::<String>(), check)
}

fn weekday_hours() -> Value {
    json!([
        {"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "availableStartTime": "08:00:00", "availableEndTime": "12:00:00"},
        {"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "availableStartTime": "13:00:00", "availableEndTime": "17:00:00"}
    ])
}

fn clinic_address() -> Value {
    json!({"use": "work", "type": "both", "line": ["1200 Olentangy River Road"], "city": "Columbus", "state": "OH", "postalCode": "43212", "country": "US"})
}

pub(crate) fn resources(config: &DemoConfig) -> Vec<Value> {
    let mut out = Vec::new();
    let clinic = reference_display("Organization", CLINIC_ID, CLINIC_NAME);

    out.push(json!({
        "resourceType": "Organization",
        "id": CLINIC_ID,
        "identifier": [{"type": concept(SYS_V2_0203, "NPI", "National provider identifier"), "system": SYS_NPI, "value": CLINIC_NPI}],
        "active": true,
        "type": [concept(SYS_ORG_TYPE, "prov", "Healthcare Provider")],
        "name": CLINIC_NAME,
        "alias": ["Kiln Demo Clinic"],
        "telecom": [
            {"system": "phone", "value": CLINIC_PHONE, "use": "work"},
            {"system": "email", "value": "frontdesk@kiln-demo.example.org", "use": "work"}
        ],
        "address": [clinic_address()],
    }));
    for payor in PAYORS {
        out.push(json!({
            "resourceType": "Organization",
            "id": payor.id,
            "active": true,
            "type": [concept(SYS_ORG_TYPE, "pay", "Payer")],
            "name": payor.name,
            "telecom": [{"system": "phone", "value": payor.phone, "use": "work"}],
        }));
    }

    // Locations: the site first (rooms, ED and ward are partOf it).
    out.push(json!({
        "resourceType": "Location",
        "id": "loc-main",
        "status": "active",
        "name": CLINIC_NAME,
        "mode": "instance",
        "type": [concept(SYS_ROLE_CODE, "PC", "Primary care clinic")],
        "telecom": [{"system": "phone", "value": CLINIC_PHONE, "use": "work"}],
        "address": clinic_address(),
        "physicalType": concept(SYS_LOCATION_TYPE, "bu", "Building"),
        "managingOrganization": clinic,
        "hoursOfOperation": [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "openingTime": "08:00:00", "closingTime": "17:00:00"}],
    }));
    for (id, name) in ROOMS {
        out.push(json!({
            "resourceType": "Location",
            "id": id,
            "status": "active",
            "name": name,
            "mode": "instance",
            "type": [concept(SYS_ROLE_CODE, "PC", "Primary care clinic")],
            "physicalType": concept(SYS_LOCATION_TYPE, "ro", "Room"),
            "managingOrganization": clinic,
            "partOf": reference("Location", "loc-main"),
        }));
    }
    out.push(json!({
        "resourceType": "Location",
        "id": "loc-ed",
        "status": "active",
        "name": "Emergency Department",
        "mode": "instance",
        "type": [concept(SYS_ROLE_CODE, "ER", "Emergency room")],
        "physicalType": concept(SYS_LOCATION_TYPE, "wi", "Wing"),
        "managingOrganization": clinic,
        "partOf": reference("Location", "loc-main"),
        "hoursOfOperation": [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "allDay": true}],
    }));
    out.push(json!({
        "resourceType": "Location",
        "id": "loc-ward",
        "status": "active",
        "name": "Inpatient Medical Unit",
        "mode": "instance",
        "type": [concept(SYS_ROLE_CODE, "HOSP", "Hospital")],
        "physicalType": concept(SYS_LOCATION_TYPE, "wa", "Ward"),
        "managingOrganization": clinic,
        "partOf": reference("Location", "loc-main"),
    }));

    for (i, p) in PRACTITIONERS.iter().enumerate() {
        let id = format!("prac-{:03}", i + 1);
        let (cred_code, cred_display) = p.credential.code();
        let mut identifier = vec![json!({
            "use": "official",
            "type": concept(SYS_V2_0203, "NPI", "National provider identifier"),
            "system": SYS_NPI,
            "value": npi(150_000_000 + i as u64 * 7_919_333 % 100_000_000),
        })];
        if p.dea {
            identifier.push(json!({
                "use": "official",
                "type": concept(SYS_V2_0203, "DEA", "Drug Enforcement Administration registration number"),
                "system": SYS_DEA,
                "value": dea(i),
            }));
        }
        let (license_prefix, board) = match p.credential {
            Credential::Md | Credential::Do => ("35.", "State Medical Board of Ohio"),
            Credential::Pa => ("50.", "State Medical Board of Ohio"),
            Credential::Np => ("APRN.CNP.", "Ohio Board of Nursing"),
            Credential::Rn => ("RN.", "Ohio Board of Nursing"),
        };
        let licensed = 1995 + (i as i32 * 7) % 22;
        let mut name = json!({"use": "official", "family": p.family, "given": [p.given], "suffix": [cred_code]});
        if matches!(p.credential, Credential::Md | Credential::Do) {
            put(&mut name, "prefix", json!(["Dr."]));
        }
        let email =
            format!("{}.{}@kiln-demo.example.org", p.given.to_lowercase(), p.family.to_lowercase().replace('\'', ""));
        out.push(json!({
            "resourceType": "Practitioner",
            "id": id,
            "identifier": identifier,
            "active": true,
            "name": [name],
            "telecom": [
                {"system": "phone", "value": format!("(614) 555-01{:02}", 10 + i), "use": "work"},
                {"system": "email", "value": email, "use": "work"}
            ],
            "gender": p.gender,
            "qualification": [{
                "identifier": [{"system": SYS_LICENSE, "value": format!("{license_prefix}{:06}", 40_000 + i * 1_733)}],
                "code": concept_text(SYS_V2_0360, cred_code, cred_display, cred_display),
                "period": {"start": datetime(at(ymd(licensed, 7, 1), 0, 0))},
                "issuer": {"display": board},
            }],
        }));
    }

    for (i, p) in PRACTITIONERS.iter().enumerate() {
        let prac_id = format!("prac-{:03}", i + 1);
        let code = match p.credential {
            Credential::Md | Credential::Do => concept_text(SYS_PRACTITIONER_ROLE, "doctor", "Doctor", "Physician"),
            Credential::Np => concept_text(SYS_PRACTITIONER_ROLE, "nurse", "Nurse", "Nurse practitioner"),
            Credential::Rn => concept_text(SYS_PRACTITIONER_ROLE, "nurse", "Nurse", "Registered nurse"),
            Credential::Pa => json!({"text": "Physician assistant"}),
        };
        let round_the_clock = matches!(p.role, Role::Emergency | Role::Hospitalist);
        let mut role = json!({
            "resourceType": "PractitionerRole",
            "id": format!("prrole-{:03}", i + 1),
            "active": true,
            "practitioner": reference_display("Practitioner", &prac_id, &practitioner_display(i)),
            "organization": clinic,
            "code": [code],
            "specialty": [concept(SYS_NUCC, p.specialty.0, p.specialty.1)],
            "location": [reference("Location", p.location)],
            "telecom": [{"system": "phone", "value": format!("(614) 555-01{:02}", 10 + i), "use": "work"}],
        });
        if round_the_clock {
            put(
                &mut role,
                "availableTime",
                json!([{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "allDay": true}]),
            );
            put(&mut role, "availabilityExceptions", json!("Shift-based; see the department rota."));
        } else {
            put(&mut role, "availableTime", weekday_hours());
            put(&mut role, "notAvailable", json!([{"description": "Lunch break 12:00-13:00"}]));
            put(&mut role, "availabilityExceptions", json!("Closed on US federal holidays."));
        }
        out.push(role);
    }

    let horizon_start = at(first_booking_day(config.today), 8, 0);
    let horizon_end = at(last_booking_day(config.today, config.patients), 17, 0);
    for (i, p) in PRACTITIONERS.iter().enumerate() {
        out.push(json!({
            "resourceType": "Schedule",
            "id": format!("sched-{:03}", i + 1),
            "active": true,
            "specialty": [concept(SYS_NUCC, p.specialty.0, p.specialty.1)],
            "actor": [
                reference_display("Practitioner", &format!("prac-{:03}", i + 1), &practitioner_display(i)),
                reference("Location", p.location)
            ],
            "planningHorizon": {"start": datetime(horizon_start), "end": datetime(horizon_end)},
            "comment": "Bookable Monday to Friday 08:00-12:00 and 13:00-17:00 in 30-minute slots.",
        }));
    }
    out
}
