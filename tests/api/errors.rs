//! Bad input gets a clear OperationOutcome with the right status, and the store is unchanged.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::crud::realistic_patient;
use crate::helpers::{TestApp, expect_outcome};

async fn history_size(app: &TestApp) -> usize {
    let bundle: Value = app.get("_history?_count=100").await.json().await.unwrap();
    bundle.get("entry").and_then(Value::as_array).map_or(0, Vec::len)
}

async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: &str) -> reqwest::Response {
    app.client.post(app.url(path)).header("content-type", content_type).body(body.to_string()).send().await.unwrap()
}

async fn malformed_bodies_are_refused_and_nothing_is_stored(app: TestApp) {
    app.create(&realistic_patient()).await;
    let before = history_size(&app).await;

    let body = expect_outcome(
        post_raw(&app, "Patient", "application/fhir+json", "{\"resourceType\": \"Patient\",").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("not valid JSON"), "{body}");

    let body = expect_outcome(
        app.post("Patient", &json!({"resourceType": "Patient", "favouriteColour": "blue"})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["issue"][0]["expression"][0], "Patient.favouriteColour");

    let body = expect_outcome(
        app.post("Patient", &json!({"resourceType": "Patient", "active": "yes"})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["issue"][0]["expression"][0], "Patient.active");

    let body = expect_outcome(
        app.post("Patient", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(body["issue"][0]["expression"][0], "resourceType");

    let body = expect_outcome(
        post_raw(
            &app,
            "Patient",
            "application/fhir+json",
            r#"{"resourceType":"Patient","gender":"male","gender":"female"}"#,
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("duplicate"));

    expect_outcome(post_raw(&app, "Patient", "application/fhir+json", "").await, StatusCode::BAD_REQUEST).await;
    expect_outcome(post_raw(&app, "Patient", "application/fhir+json", "[]").await, StatusCode::BAD_REQUEST).await;

    assert_eq!(history_size(&app).await, before, "no bad request changed the store");
}

async fn invalid_content_is_unprocessable(app: TestApp) {
    let body = expect_outcome(
        app.post("Patient", &json!({"resourceType": "Patient", "gender": "m", "birthDate": "1990-02-30"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let mut paths: Vec<&str> =
        body["issue"].as_array().unwrap().iter().map(|i| i["expression"][0].as_str().unwrap()).collect();
    paths.sort();
    assert_eq!(paths, ["Patient.birthDate", "Patient.gender"]);

    let body = expect_outcome(
        app.post("Observation", &json!({"resourceType": "Observation", "code": {"text": "x"}})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["issue"][0]["expression"][0], "Observation.status");
    assert_eq!(body["issue"][0]["code"], "required");

    let body = expect_outcome(
        app.post("Patient", &json!({"resourceType": "Patient", "contained": [{"resourceType": "Patient", "contained": [{"resourceType": "Patient"}]}]})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["issue"][0]["diagnostics"].as_str().unwrap().contains("dom-2"));
}

async fn media_types_are_checked(app: TestApp) {
    expect_outcome(
        post_raw(&app, "Patient", "application/fhir+xml", "<Patient/>").await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    expect_outcome(post_raw(&app, "Patient", "text/plain", "{}").await, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    let response = post_raw(&app, "Patient", "application/json", &json!({"resourceType": "Patient"}).to_string()).await;
    assert_eq!(response.status(), StatusCode::CREATED, "plain application/json is accepted");
}

async fn oversized_bodies_are_refused_before_being_read(app: TestApp) {
    // The test app's limit is 64 KiB.
    let big = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(70 * 1024)}]});
    let body = expect_outcome(app.post("Patient", &big).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["issue"][0]["code"], "too-long");

    // Without a Content-Length (chunked), the limit still holds while streaming.
    let mut stream = tokio::net::TcpStream::connect(app.root.trim_start_matches("http://")).await.unwrap();
    let head = format!(
        "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/fhir+json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = "a".repeat(16 * 1024);
    for _ in 0..6 {
        let piece = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if stream.write_all(piece.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("OperationOutcome"));

    assert_eq!(app.get("metadata").await.status(), StatusCode::OK, "the server keeps serving");
}

async fn unknown_types_routes_methods_and_parameters(app: TestApp) {
    let body = expect_outcome(app.get("Spaceship/1").await, StatusCode::NOT_FOUND).await;
    assert_eq!(body["issue"][0]["code"], "not-supported");
    expect_outcome(app.post("Spaceship", &json!({"resourceType": "Spaceship"})).await, StatusCode::NOT_FOUND).await;
    expect_outcome(app.get("Spaceship").await, StatusCode::NOT_FOUND).await;
    expect_outcome(app.get("Patient/missing").await, StatusCode::NOT_FOUND).await;
    expect_outcome(app.get("Patient/bad_id!").await, StatusCode::BAD_REQUEST).await;
    expect_outcome(app.get("Patient/1/extra/segments/here/too").await, StatusCode::NOT_FOUND).await;
    let response = app.client.post(app.url("Patient/1")).send().await.unwrap();
    assert!(response.headers().contains_key("allow"));
    expect_outcome(response, StatusCode::METHOD_NOT_ALLOWED).await;
    let id = app.create(&realistic_patient()).await;
    let body = expect_outcome(app.get(&format!("Patient/{id}?colour=blue")).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["issue"][0]["expression"][0], "colour");
    // Operations whose parameters come in a Parameters body (or that take none) refuse one in
    // the URL, naming it, before they look at anything else.
    let operations = [
        "Endpoint/$ehr-register",
        "Endpoint/e1/$ehr-test",
        "Patient/p1/$ehr-link",
        "Patient/p1/$ehr-pull",
        "Patient/p1/$ehr-push",
        "Encounter/e1/$sign",
        "Encounter/e1/$amend",
        "Encounter/e1/$verify-signature",
        "Patient/p1/$meta-add",
        "Patient/p1/$meta-delete",
    ];
    for operation in operations {
        let parameters = json!({"resourceType": "Parameters"});
        let response = app.post(&format!("{operation}?colour=blue"), &parameters).await;
        let body = expect_outcome(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["issue"][0]["expression"][0], "colour", "{operation}: {body}");
    }
    let response = app.client.get(format!("{}/nothing-here", app.root)).send().await.unwrap();
    expect_outcome(response, StatusCode::NOT_FOUND).await;
}

crate::on_both_backends!(
    malformed_bodies_are_refused_and_nothing_is_stored,
    invalid_content_is_unprocessable,
    media_types_are_checked,
    oversized_bodies_are_refused_before_being_read,
    unknown_types_routes_methods_and_parameters,
);
