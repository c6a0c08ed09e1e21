//! The business rules of the seed-to-FHIR mapping, enforced on write with a clear
//! OperationOutcome: vital-sign ranges, MRN assignment and uniqueness, one active primary
//! Coverage, appointments (not in the past, end after start, no double booking, also under
//! concurrent requests) and prescriptions with dosage and frequency.

use chrono::{Datelike, Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_outcome};

fn heart_rate(value: f64) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

async fn impossible_vital_signs_are_refused(app: TestApp) {
    app.create(&heart_rate(72.0)).await;
    let body =
        expect_outcome(app.post("Observation", &heart_rate(900.0)).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["issue"][0]["code"], "business-rule");
    assert_eq!(body["issue"][0]["expression"][0], "Observation.valueQuantity.value");
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("900"));
    let mut wrong_unit = heart_rate(72.0);
    wrong_unit["valueQuantity"]["code"] = json!("kg");
    wrong_unit["valueQuantity"]["unit"] = json!("kg");
    let body = expect_outcome(app.post("Observation", &wrong_unit).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["issue"][0]["code"], "invalid");
}

async fn an_mrn_is_assigned_and_unique_per_clinic(app: TestApp) {
    let first: Value =
        app.post("Patient", &json!({"resourceType": "Patient", "gender": "male"})).await.json().await.unwrap();
    let second: Value =
        app.post("Patient", &json!({"resourceType": "Patient", "gender": "female"})).await.json().await.unwrap();
    let mrn = |p: &Value| p["identifier"][0]["value"].as_str().unwrap().to_string();
    let year = Utc::now().year();
    assert_eq!(mrn(&first), format!("MRN-{year}-00001"));
    assert_eq!(mrn(&second), format!("MRN-{year}-00002"));
    assert_eq!(first["identifier"][0]["type"]["coding"][0]["code"], "MR");

    // The same MRN (same system) on another patient is refused; the owner may keep it.
    let mut copy = json!({"resourceType": "Patient", "identifier": [first["identifier"][0].clone()]});
    let body = expect_outcome(app.post("Patient", &copy).await, StatusCode::CONFLICT).await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("MRN"), "{body}");
    let id = first["id"].as_str().unwrap();
    copy["id"] = json!(id);
    assert_eq!(app.put(&format!("Patient/{id}"), &copy).await.status(), StatusCode::OK);
    // Another assigning authority may use the same number.
    let mut other_system = copy.clone();
    other_system.as_object_mut().unwrap().remove("id");
    other_system["identifier"][0]["system"] = json!("urn:oid:1.2.3.4");
    assert_eq!(app.post("Patient", &other_system).await.status(), StatusCode::CREATED);
}

fn coverage(patient: &str, order: u32) -> Value {
    json!({"resourceType": "Coverage", "status": "active", "order": order,
        "beneficiary": {"reference": patient}, "payor": [{"display": "Acme Health"}]})
}

async fn one_active_primary_coverage_per_patient(app: TestApp) {
    app.create(&coverage("Patient/p1", 1)).await;
    let body = expect_outcome(app.post("Coverage", &coverage("Patient/p1", 1)).await, StatusCode::CONFLICT).await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("Patient/p1"));
    app.create(&coverage("Patient/p1", 2)).await;
    app.create(&coverage("Patient/p2", 1)).await;
    let mut cancelled = coverage("Patient/p1", 1);
    cancelled["status"] = json!("cancelled");
    app.create(&cancelled).await;
}

fn appointment(practitioner: &str, start_in_hours: i64, minutes: i64) -> Value {
    let start = Utc::now() + Duration::hours(start_in_hours);
    let end = start + Duration::minutes(minutes);
    json!({"resourceType": "Appointment", "status": "booked",
        "start": start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "end": end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": practitioner}, "status": "accepted"}]})
}

async fn appointments_follow_the_scheduling_rules(app: TestApp) {
    app.create(&appointment("Practitioner/dr-a", 48, 30)).await;
    let body =
        expect_outcome(app.post("Appointment", &appointment("Practitioner/dr-a", 48, 15)).await, StatusCode::CONFLICT)
            .await;
    assert!(
        body["issue"][0]["diagnostics"].as_str().unwrap().contains("Practitioner/dr-a is already booked"),
        "{body}"
    );
    app.create(&appointment("Practitioner/dr-b", 48, 15)).await;
    let body = expect_outcome(
        app.post("Appointment", &appointment("Practitioner/dr-c", -48, 15)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["issue"][0]["code"], "business-rule");
    let body = expect_outcome(
        app.post("Appointment", &appointment("Practitioner/dr-c", 72, -15)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["issue"][0]["expression"][0], "Appointment.end");
    // A past visit that happened is a record, not a booking.
    let mut fulfilled = appointment("Practitioner/dr-c", -48, 15);
    fulfilled["status"] = json!("fulfilled");
    app.create(&fulfilled).await;
}

async fn concurrent_bookings_of_one_practitioner_have_one_winner(app: TestApp) {
    let booking = appointment("Practitioner/dr-busy", 96, 30);
    let attempts = (0..8).map(|_| app.post("Appointment", &booking));
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.into_iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 7, "{statuses:?}");
}

async fn prescriptions_need_dosage_and_frequency(app: TestApp) {
    let mut prescription = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"text": "Amoxicillin 500 mg"}, "subject": {"reference": "Patient/p1"},
        "requester": {"reference": "Practitioner/dr-a"},
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 500, "unit": "mg", "system": "http://unitsofmeasure.org", "code": "mg"}}],
            "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}}]});
    app.create(&prescription).await;
    prescription["dosageInstruction"][0].as_object_mut().unwrap().remove("timing");
    let body =
        expect_outcome(app.post("MedicationRequest", &prescription).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["issue"][0]["expression"][0], "MedicationRequest.dosageInstruction[0].timing");
}

crate::on_both_backends!(
    impossible_vital_signs_are_refused,
    an_mrn_is_assigned_and_unique_per_clinic,
    one_active_primary_coverage_per_patient,
    appointments_follow_the_scheduling_rules,
    concurrent_bookings_of_one_practitioner_have_one_winner,
    prescriptions_need_dosage_and_frequency,
);
