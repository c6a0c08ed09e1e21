//! create, read, vread, update, delete (FHIR R4 http.html) with their headers.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_outcome};

/// A patient with extensions, several names and identifiers, and a contained resource. Each call
/// gets its own MRN (MRNs are unique per clinic).
pub fn realistic_patient() -> Value {
    let mrn = format!("MRN-T-{}", uuid::Uuid::new_v4().simple());
    json!({
        "resourceType": "Patient",
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Jane Doe</div>"},
        "extension": [
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex", "valueCode": "F"},
            {"url": "http://example.org/fhir/weight-at-birth", "valueDecimal": 3.50}
        ],
        "identifier": [
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "system": "http://clinic.example.org/mrn", "value": mrn},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"}
        ],
        "active": true,
        "name": [
            {"use": "official", "family": "Doe", "given": ["Jane", "Q"]},
            {"use": "maiden", "family": "Roe", "given": ["Jane"], "_given": [{"extension": [{"url": "http://example.org/note", "valueString": "n"}]}]}
        ],
        "telecom": [{"system": "phone", "value": "+15555550100", "use": "mobile"}],
        "gender": "female",
        "birthDate": "1984-02-29",
        "address": [{"line": ["1 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"}],
        "contact": [{
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "C"}], "text": "sister"}],
            "name": {"family": "Doe", "given": ["Ann"]},
            "telecom": [{"system": "phone", "value": "+15555550101"}]
        }],
        "contained": [{"resourceType": "Organization", "id": "clinic", "name": "Springfield Clinic"}],
        "managingOrganization": {"reference": "#clinic"}
    })
}

fn without_meta(mut value: Value) -> Value {
    value.as_object_mut().unwrap().remove("meta");
    value.as_object_mut().unwrap().remove("id");
    value
}

async fn create_assigns_id_version_and_headers(app: TestApp) {
    let mut patient = realistic_patient();
    patient["id"] = json!("client-chosen");
    let response = app.post("Patient", &patient).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["etag"], "W/\"1\"");
    assert!(response.headers().contains_key("last-modified"));
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let body: Value = response.json().await.unwrap();
    let id = body["id"].as_str().unwrap();
    assert_ne!(id, "client-chosen", "a client id in a create is replaced");
    assert_eq!(location, app.url(&format!("Patient/{id}/_history/1")));
    assert_eq!(body["meta"]["versionId"], "1");
    assert!(body["meta"]["lastUpdated"].as_str().unwrap().ends_with('Z'));
}

/// The realistic patient as the client's own text, with a decimal written `3.50`.
pub fn realistic_patient_text() -> String {
    realistic_patient().to_string().replace("\"valueDecimal\":3.5", "\"valueDecimal\":3.50")
}

async fn read_returns_what_was_written(app: TestApp) {
    let sent = realistic_patient_text();
    let patient: Value = serde_json::from_str(&sent).unwrap();
    let response = app
        .client
        .post(app.url("Patient"))
        .header("content-type", "application/fhir+json")
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let id = response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    // Read by a caller allowed to see the SSN in clear (docs/secrets.md).
    let reader = crate::helpers::revealing_client(&app).await;
    let response = reader.get(app.url(&format!("Patient/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["etag"], "W/\"1\"");
    let text = response.text().await.unwrap();
    assert!(text.contains("\"valueDecimal\":3.50"), "decimal precision is kept: {text}");
    let read: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(without_meta(read), without_meta(patient));
}

async fn update_makes_versions_and_vread_reads_them(app: TestApp) {
    let mut patient = realistic_patient();
    patient["id"] = json!("jane");
    let first = app.put("Patient/jane", &patient).await;
    assert_eq!(first.status(), StatusCode::CREATED, "update-as-create");
    patient["gender"] = json!("other");
    let second = app.put("Patient/jane", &patient).await;
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(second.headers()["etag"], "W/\"2\"");
    let v1: Value = app.get("Patient/jane/_history/1").await.json().await.unwrap();
    let v2: Value = app.get("Patient/jane/_history/2").await.json().await.unwrap();
    assert_eq!(v1["gender"], "female");
    assert_eq!(v2["gender"], "other");
    assert_eq!(v2["meta"]["versionId"], "2");
    expect_outcome(app.get("Patient/jane/_history/3").await, StatusCode::NOT_FOUND).await;
    expect_outcome(app.get("Patient/jane/_history/x").await, StatusCode::BAD_REQUEST).await;
}

async fn update_checks_the_body_id(app: TestApp) {
    let mut patient = realistic_patient();
    let body = expect_outcome(app.put("Patient/a1", &patient).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["issue"][0]["expression"][0], "Patient.id");
    patient["id"] = json!("other");
    let body = expect_outcome(app.put("Patient/a1", &patient).await, StatusCode::BAD_REQUEST).await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("differs"));
    expect_outcome(app.get("Patient/a1").await, StatusCode::NOT_FOUND).await;
}

async fn if_match_guards_updates(app: TestApp) {
    let id = app.create(&realistic_patient()).await;
    let mut patient = realistic_patient();
    patient["id"] = json!(id);
    let url = app.url(&format!("Patient/{id}"));
    let put = |etag: &'static str| {
        app.client
            .put(&url)
            .header("content-type", "application/fhir+json")
            .header("if-match", etag)
            .body(patient.to_string())
            .send()
    };
    assert_eq!(put("W/\"1\"").await.unwrap().status(), StatusCode::OK);
    expect_outcome(put("W/\"1\"").await.unwrap(), StatusCode::PRECONDITION_FAILED).await;
    expect_outcome(put("garbage").await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert_eq!(put("\"2\"").await.unwrap().status(), StatusCode::OK);
}

async fn concurrent_updates_with_one_if_match_have_one_winner(app: TestApp) {
    let id = app.create(&realistic_patient()).await;
    let mut patient = realistic_patient();
    patient["id"] = json!(id);
    let body = patient.to_string();
    let url = app.url(&format!("Patient/{id}"));
    let attempts = (0..12).map(|_| {
        app.client
            .put(&url)
            .header("content-type", "application/fhir+json")
            .header("if-match", "W/\"1\"")
            .body(body.clone())
            .send()
    });
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.into_iter().map(|r| r.unwrap().status()).collect();
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let losers = statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count();
    assert_eq!((winners, losers), (1, 11), "{statuses:?}");
    let current: Value = app.get(&format!("Patient/{id}")).await.json().await.unwrap();
    assert_eq!(current["meta"]["versionId"], "2");
}

async fn concurrent_update_as_create_of_one_id_keeps_every_version(app: TestApp) {
    let patient = json!({"resourceType": "Patient", "id": "racer", "active": true});
    let attempts = (0..10).map(|_| app.put("Patient/racer", &patient));
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(attempts).await.into_iter().map(|r| r.status()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 9, "{statuses:?}");
    let current: Value = app.get("Patient/racer").await.json().await.unwrap();
    assert_eq!(current["meta"]["versionId"], "10");
}

async fn delete_leaves_a_gone_version(app: TestApp) {
    let id = app.create(&realistic_patient()).await;
    let response = app.delete(&format!("Patient/{id}")).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_outcome(app.get(&format!("Patient/{id}")).await, StatusCode::GONE).await;
    expect_outcome(app.get(&format!("Patient/{id}/_history/2")).await, StatusCode::GONE).await;
    assert_eq!(
        app.get(&format!("Patient/{id}/_history/1")).await.status(),
        StatusCode::OK,
        "old versions stay readable"
    );
    assert_eq!(app.delete(&format!("Patient/{id}")).await.status(), StatusCode::NO_CONTENT, "delete is idempotent");
    expect_outcome(app.delete("Patient/never-existed").await, StatusCode::NOT_FOUND).await;
    let mut revived = realistic_patient();
    revived["id"] = json!(id);
    let response = app.put(&format!("Patient/{id}"), &revived).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["etag"], "W/\"3\"");
}

async fn conditional_reads_answer_not_modified(app: TestApp) {
    let id = app.create(&realistic_patient()).await;
    let url = app.url(&format!("Patient/{id}"));
    let response = app.client.get(&url).header("if-none-match", "W/\"1\"").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    let response = app.client.get(&url).header("if-none-match", "W/\"7\"").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let modified = app.get(&format!("Patient/{id}")).await.headers()["last-modified"].to_str().unwrap().to_string();
    let response = app.client.get(&url).header("if-modified-since", &modified).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    let response =
        app.client.get(&url).header("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn prefer_shapes_the_write_response(app: TestApp) {
    let url = app.url("Patient");
    let send = |prefer: &'static str| {
        app.client
            .post(&url)
            .header("content-type", "application/fhir+json")
            .header("prefer", prefer)
            .body(realistic_patient().to_string())
            .send()
    };
    let minimal = send("return=minimal").await.unwrap();
    assert_eq!(minimal.status(), StatusCode::CREATED);
    assert!(minimal.headers().contains_key("location"));
    assert!(minimal.text().await.unwrap().is_empty());
    let outcome = send("return=OperationOutcome").await.unwrap();
    assert_eq!(outcome.status(), StatusCode::CREATED);
    let body: Value = outcome.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["severity"], "information");
}

async fn summary_and_elements_subset_the_resource(app: TestApp) {
    let id = app.create(&realistic_patient()).await;
    let summary: Value = app.get(&format!("Patient/{id}?_summary=true")).await.json().await.unwrap();
    assert_eq!(summary["meta"]["tag"][0]["code"], "SUBSETTED");
    assert!(summary.get("name").is_some() && summary.get("text").is_none() && summary.get("contact").is_none());
    let text: Value = app.get(&format!("Patient/{id}?_summary=text")).await.json().await.unwrap();
    assert!(text.get("text").is_some() && text.get("name").is_none());
    let data: Value = app.get(&format!("Patient/{id}?_summary=data")).await.json().await.unwrap();
    assert!(data.get("text").is_none() && data.get("contact").is_some());
    let elements: Value = app.get(&format!("Patient/{id}?_elements=birthDate,gender")).await.json().await.unwrap();
    assert_eq!(elements["gender"], "female");
    assert!(elements.get("name").is_none());
    assert_eq!(elements["meta"]["tag"][0]["code"], "SUBSETTED");
    let full: Value = app.get(&format!("Patient/{id}?_summary=false")).await.json().await.unwrap();
    assert!(full["meta"].get("tag").is_none());
    expect_outcome(app.get(&format!("Patient/{id}?_summary=maybe")).await, StatusCode::BAD_REQUEST).await;
}

crate::on_both_backends!(
    create_assigns_id_version_and_headers,
    read_returns_what_was_written,
    update_makes_versions_and_vread_reads_them,
    update_checks_the_body_id,
    if_match_guards_updates,
    concurrent_updates_with_one_if_match_have_one_winner,
    concurrent_update_as_create_of_one_id_keeps_every_version,
    delete_leaves_a_gone_version,
    conditional_reads_answer_not_modified,
    prefer_shapes_the_write_response,
    summary_and_elements_subset_the_resource,
);
