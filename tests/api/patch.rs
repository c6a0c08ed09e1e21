//! PATCH (FHIR R4 http.html#patch): JSON Patch and FHIRPath Patch, with `If-Match`, conditional
//! patch, and refusals that change nothing, on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::crud::realistic_patient;
use crate::helpers::{TestApp, expect_outcome};

async fn send(app: &TestApp, path: &str, media_type: &str, body: &Value, if_match: Option<&str>) -> reqwest::Response {
    let mut request = app.client.patch(app.url(path)).header("content-type", media_type).body(body.to_string());
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    request.send().await.unwrap()
}

/// A patient created from text, so that `3.50` is stored as written.
async fn create_patient(app: &TestApp) -> String {
    let text = realistic_patient().to_string().replace("\"valueDecimal\":3.5}", "\"valueDecimal\":3.50}");
    assert!(text.contains("3.50"));
    let response = app
        .client
        .post(app.url("Patient"))
        .header("content-type", "application/fhir+json")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

fn operation(parts: Vec<Value>) -> Value {
    json!({"name": "operation", "part": parts})
}

async fn json_patch_applies_and_keeps_untouched_bytes(app: TestApp) {
    let id = create_patient(&app).await;
    let patch = json!([
        {"op": "test", "path": "/gender", "value": "female"},
        {"op": "replace", "path": "/gender", "value": "other"},
        {"op": "add", "path": "/telecom/-", "value": {"system": "email", "value": "jane@example.org"}},
        {"op": "remove", "path": "/contact"}
    ]);
    let response = send(&app, &format!("Patient/{id}"), "application/json-patch+json", &patch, Some("W/\"1\"")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "W/\"2\"");
    let text = app.get(&format!("Patient/{id}")).await.text().await.unwrap();
    assert!(text.contains("\"valueDecimal\":3.50"), "an untouched member keeps its bytes: {text}");
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(stored["gender"], "other");
    assert_eq!(stored["telecom"][1]["value"], "jane@example.org");
    assert!(stored.get("contact").is_none());
    // The index follows: the patient is found by the new value only.
    let found: Value = app.get("Patient?gender=other").await.json().await.unwrap();
    assert_eq!(found["total"], 1);
}

async fn fhirpath_patch_applies_every_operation_type(app: TestApp) {
    let id = create_patient(&app).await;
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        operation(vec![json!({"name": "type", "valueCode": "replace"}), json!({"name": "path", "valueString": "Patient.birthDate"}),
                       json!({"name": "value", "valueDate": "1984-03-01"})]),
        operation(vec![json!({"name": "type", "valueCode": "delete"}),
                       json!({"name": "path", "valueString": "Patient.identifier.where(system = 'http://hl7.org/fhir/sid/us-ssn')"})]),
        operation(vec![json!({"name": "type", "valueCode": "insert"}), json!({"name": "path", "valueString": "Patient.name[0].given"}),
                       json!({"name": "index", "valueInteger": 0}), json!({"name": "value", "valueString": "Janet"})]),
        operation(vec![json!({"name": "type", "valueCode": "add"}), json!({"name": "path", "valueString": "Patient"}),
                       json!({"name": "name", "valueString": "deceasedBoolean"}), json!({"name": "value", "valueBoolean": false})]),
        operation(vec![json!({"name": "type", "valueCode": "move"}), json!({"name": "path", "valueString": "Patient.name"}),
                       json!({"name": "source", "valueInteger": 1}), json!({"name": "destination", "valueInteger": 0})]),
    ]});
    let response = send(&app, &format!("Patient/{id}"), "application/fhir+json", &parameters, None).await;
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());
    let stored: Value = app.get(&format!("Patient/{id}")).await.json().await.unwrap();
    assert_eq!(stored["birthDate"], "1984-03-01");
    assert_eq!(stored["identifier"].as_array().unwrap().len(), 1, "the SSN is gone");
    assert_eq!(stored["name"][0]["use"], "maiden", "moved to the front");
    assert_eq!(stored["name"][1]["given"], json!(["Janet", "Jane", "Q"]));
    assert_eq!(stored["deceasedBoolean"], false);
    assert_eq!(stored["meta"]["versionId"], "2");
}

async fn refused_patches_change_nothing(app: TestApp) {
    let id = create_patient(&app).await;
    let before = app.get(&format!("Patient/{id}")).await.text().await.unwrap();
    let path = format!("Patient/{id}");
    let replace_gender = |value: &str| json!([{"op": "replace", "path": "/gender", "value": value}]);
    // Stale If-Match.
    expect_outcome(
        send(&app, &path, "application/json-patch+json", &replace_gender("male"), Some("W/\"7\"")).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    // The result would be invalid R4.
    let outcome = expect_outcome(
        send(&app, &path, "application/json-patch+json", &replace_gender("robot"), None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(outcome["issue"][0]["expression"][0], "Patient.gender", "{outcome}");
    let unknown_element = json!([{"op": "add", "path": "/colour", "value": "blue"}]);
    expect_outcome(
        send(&app, &path, "application/json-patch+json", &unknown_element, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    // A malformed patch document.
    let outcome = expect_outcome(
        send(&app, &path, "application/json-patch+json", &json!([{"op": "frobnicate", "path": "/gender"}]), None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(outcome["issue"][0]["expression"][0], "/0/op", "{outcome}");
    // A well-formed patch that does not apply (its test fails).
    let failing_test = json!([{"op": "test", "path": "/gender", "value": "male"}, {"op": "remove", "path": "/name"}]);
    expect_outcome(
        send(&app, &path, "application/json-patch+json", &failing_test, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let replace_nothing = json!({"resourceType": "Parameters", "parameter": [operation(vec![
        json!({"name": "type", "valueCode": "replace"}), json!({"name": "path", "valueString": "Patient.maritalStatus"}),
        json!({"name": "value", "valueString": "x"})])]});
    expect_outcome(
        send(&app, &path, "application/fhir+json", &replace_nothing, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let change_id = json!([{"op": "replace", "path": "/id", "value": "other"}]);
    expect_outcome(
        send(&app, &path, "application/json-patch+json", &change_id, None).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    expect_outcome(
        send(&app, &path, "text/plain", &replace_gender("male"), None).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    expect_outcome(
        send(&app, &path, "application/fhir+json", &realistic_patient(), None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_outcome(
        send(&app, "Patient/nobody", "application/json-patch+json", &replace_gender("male"), None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(app.get(&format!("Patient/{id}")).await.text().await.unwrap(), before, "nothing changed");
}

async fn conditional_patch_needs_exactly_one_match(app: TestApp) {
    let mut patient = realistic_patient();
    patient["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "P-1"}]);
    let id = app.create(&patient).await;
    let patch = json!([{"op": "replace", "path": "/active", "value": false}]);
    let response =
        send(&app, "Patient?identifier=http://hospital.example/mrn|P-1", "application/json-patch+json", &patch, None)
            .await;
    assert_eq!(response.status(), StatusCode::OK);
    let stored: Value = app.get(&format!("Patient/{id}")).await.json().await.unwrap();
    assert_eq!(stored["active"], false);
    expect_outcome(
        send(&app, "Patient?identifier=http://hospital.example/mrn|none", "application/json-patch+json", &patch, None)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.create(&realistic_patient()).await;
    expect_outcome(
        send(&app, "Patient?gender=female", "application/json-patch+json", &patch, None).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
}

crate::on_both_backends!(
    json_patch_applies_and_keeps_untouched_bytes,
    fhirpath_patch_applies_every_operation_type,
    refused_patches_change_nothing,
    conditional_patch_needs_exactly_one_match,
);
