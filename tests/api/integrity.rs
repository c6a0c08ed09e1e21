//! Referential integrity: references to local resources must exist, referenced resources are
//! not deleted (409 naming the referrers), `_cascade=delete` deletes the referrers too; also
//! inside transactions. On both backends, with the production default of checking references.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::crud::realistic_patient;
use crate::helpers::{Backend, TestApp, expect_outcome};

/// The app with references checked, or `None` where PostgreSQL is absent and not required.
async fn start(backend: Backend) -> Option<TestApp> {
    TestApp::start_with(backend, |s| s.reject_dangling_references = true, |app| app).await
}

fn condition(patient: &str) -> Value {
    json!({"resourceType": "Condition", "subject": {"reference": patient},
           "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}})
}

async fn references_must_exist(backend: Backend) {
    let Some(app) = start(backend).await else { return };
    let outcome =
        expect_outcome(app.post("Condition", &condition("Patient/nobody")).await, StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("Patient/nobody"), "{outcome}");
    let patient = app.create(&realistic_patient()).await;
    app.create(&condition(&format!("Patient/{patient}"))).await;
    // Absolute references to this server and versioned ones count too; contained ones do not.
    app.create(&condition(&app.url(&format!("Patient/{patient}")))).await;
    app.create(&condition(&format!("Patient/{patient}/_history/1"))).await;
    expect_outcome(
        app.post("Condition", &condition(&app.url("Patient/ghost"))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut contained = condition("#p");
    contained["contained"] = json!([{"resourceType": "Patient", "id": "p", "gender": "male"}]);
    app.create(&contained).await;
    // An update may not introduce a dangling reference either, nor may a deleted target be referred to.
    let gone = app.create(&realistic_patient()).await;
    assert_eq!(app.delete(&format!("Patient/{gone}")).await.status(), StatusCode::NO_CONTENT);
    expect_outcome(
        app.post("Condition", &condition(&format!("Patient/{gone}"))).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let total: Value = app.get("Condition?_total=accurate").await.json().await.unwrap();
    assert_eq!(total["total"], 4, "only the valid ones were stored");
}

async fn referenced_resources_are_not_deleted(backend: Backend) {
    let Some(app) = start(backend).await else { return };
    let patient = app.create(&realistic_patient()).await;
    let first = app.create(&condition(&format!("Patient/{patient}"))).await;
    let second = app.create(&condition(&format!("Patient/{patient}"))).await;
    let outcome = expect_outcome(app.delete(&format!("Patient/{patient}")).await, StatusCode::CONFLICT).await;
    let message = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        message.contains(&format!("Condition/{first}")) && message.contains(&format!("Condition/{second}")),
        "{message}"
    );
    assert_eq!(app.get(&format!("Patient/{patient}")).await.status(), StatusCode::OK);
    // Once the referrers are gone, the delete goes through.
    app.delete(&format!("Condition/{first}")).await;
    app.delete(&format!("Condition/{second}")).await;
    assert_eq!(app.delete(&format!("Patient/{patient}")).await.status(), StatusCode::NO_CONTENT);

    // _cascade=delete takes the referrers (and theirs) along.
    let patient = app.create(&realistic_patient()).await;
    let encounter = app
        .create(&json!({"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": format!("Patient/{patient}")}}))
        .await;
    let mut diagnosis = condition(&format!("Patient/{patient}"));
    diagnosis["encounter"] = json!({"reference": format!("Encounter/{encounter}")});
    let diagnosis = app.create(&diagnosis).await;
    assert_eq!(app.delete(&format!("Patient/{patient}?_cascade=delete")).await.status(), StatusCode::NO_CONTENT);
    for gone in [format!("Patient/{patient}"), format!("Encounter/{encounter}"), format!("Condition/{diagnosis}")] {
        assert_eq!(app.get(&gone).await.status(), StatusCode::GONE, "{gone}");
    }
    expect_outcome(app.delete("Patient/x?_cascade=everything").await, StatusCode::BAD_REQUEST).await;
}

async fn cascade_is_off_unless_enabled_and_allow_lets_deletes_through(backend: Backend) {
    let settings = |s: &mut kiln::config::Settings| {
        s.cascade_delete = false;
        s.delete_referenced = kiln::config::DeleteReferenced::Allow;
    };
    let Some(app) = TestApp::start_with(backend, settings, |app| app).await else { return };
    let patient = app.create(&realistic_patient()).await;
    app.create(&condition(&format!("Patient/{patient}"))).await;
    expect_outcome(app.delete(&format!("Patient/{patient}?_cascade=delete")).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(app.delete(&format!("Patient/{patient}")).await.status(), StatusCode::NO_CONTENT);
}

async fn transactions_are_checked_as_a_whole(backend: Backend) {
    let Some(app) = start(backend).await else { return };
    let patient = app.create(&realistic_patient()).await;
    let existing = app.create(&condition(&format!("Patient/{patient}"))).await;
    let mut changed = condition("urn:uuid:new-patient");
    changed["id"] = json!(existing);
    // The delete is allowed because the same transaction moves the only referrer elsewhere.
    let request = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": format!("Patient/{patient}")}},
        {"request": {"method": "PUT", "url": format!("Condition/{existing}")}, "resource": changed},
        {"fullUrl": "urn:uuid:new-patient", "request": {"method": "POST", "url": "Patient"}, "resource": realistic_patient()}
    ]});
    let response = app.post("", &request).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    // A transaction leaving a dangling reference fails as a whole, naming the entry.
    let request = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:a", "request": {"method": "POST", "url": "Patient"}, "resource": realistic_patient()},
        {"request": {"method": "POST", "url": "Condition"}, "resource": condition("Patient/missing")}
    ]});
    let outcome = expect_outcome(app.post("", &request).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("Bundle.entry[1]"), "{outcome}");
    let patients: Value = app.get("Patient?_total=accurate").await.json().await.unwrap();
    assert_eq!(patients["total"], 1, "the first entry was rolled back");
}

crate::on_both_backend_kinds!(
    references_must_exist,
    referenced_resources_are_not_deleted,
    cascade_is_off_unless_enabled_and_allow_lets_deletes_through,
    transactions_are_checked_as_a_whole
);
