//! Electronic signatures (issue: safeguards, "Electronic signatures"): `$sign` with
//! re-authentication stores a Provenance with the digest of the signed version and locks the
//! Encounter; `$amend` with a reason makes a new signed version; `$verify-signature` recomputes
//! the digests (and catches a version edited in the database); signers cannot be deleted.

use base64::Engine;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_outcome};
use crate::smart::staff_client;

const PASSWORD: &str = "correct horse battery";

async fn clinician(app: &TestApp, username: &str) -> (Client, String) {
    staff_client(app, username, "physician", "openid fhirUser user/*.cruds").await
}

async fn post(client: &Client, url: String, body: &Value) -> reqwest::Response {
    client.post(url).header("content-type", "application/fhir+json").body(body.to_string()).send().await.unwrap()
}

fn parameters(list: Value) -> Value {
    json!({"resourceType": "Parameters", "parameter": list})
}

async fn signed_encounters_are_locked_amended_and_verified(app: TestApp) {
    let (doctor, practitioner) = clinician(&app, "drsign").await;
    let patient = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Signed"}]})).await;
    let encounter = app
        .create(&json!({"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": format!("Patient/{patient}")},
            "participant": [{"individual": {"reference": practitioner}}]}))
        .await;
    let url = |op: &str| app.url(&format!("Encounter/{encounter}/{op}"));

    // Wrong password: refused, nothing stored.
    let wrong = parameters(
        json!([{"name": "meaning", "valueCode": "authorship"}, {"name": "password", "valueString": "nope"}]),
    );
    expect_outcome(post(&doctor, url("$sign"), &wrong).await, StatusCode::FORBIDDEN).await;
    let none: Value = app.get("Provenance").await.json().await.unwrap();
    assert!(none["entry"].as_array().is_none_or(|e| e.is_empty()), "{none}");
    let missing = parameters(json!([{"name": "meaning", "valueCode": "authorship"}]));
    expect_outcome(post(&doctor, url("$sign"), &missing).await, StatusCode::BAD_REQUEST).await;

    let sign = parameters(
        json!([{"name": "meaning", "valueCode": "authorship"}, {"name": "password", "valueString": PASSWORD}]),
    );
    let signed = post(&doctor, url("$sign"), &sign).await;
    assert_eq!(signed.status(), StatusCode::CREATED);
    let provenance: Value = signed.json().await.unwrap();
    assert_eq!(provenance["target"][0]["reference"], format!("Encounter/{encounter}/_history/1"));
    assert_eq!(provenance["signature"][0]["who"]["reference"], practitioner);
    assert_eq!(provenance["signature"][0]["type"][0]["code"], "1.2.840.10065.1.12.1.1");
    let digest =
        base64::engine::general_purpose::STANDARD.decode(provenance["signature"][0]["data"].as_str().unwrap()).unwrap();
    let stored = app.get(&format!("Encounter/{encounter}")).await.bytes().await.unwrap();
    assert_eq!(String::from_utf8(digest).unwrap(), kiln::audit::chain::content_hash(&stored).unwrap());

    // Locked: no update, patch or delete; the signature record and the signer stay too.
    let mut changed: Value = serde_json::from_slice(&stored).unwrap();
    changed["status"] = json!("cancelled");
    let locked = expect_outcome(app.put(&format!("Encounter/{encounter}"), &changed).await, StatusCode::CONFLICT).await;
    assert!(locked["issue"][0]["diagnostics"].as_str().unwrap().contains("$amend"), "{locked}");
    let patch = app
        .client
        .patch(app.url(&format!("Encounter/{encounter}")))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op":"replace","path":"/status","value":"cancelled"}]"#)
        .send()
        .await
        .unwrap();
    expect_outcome(patch, StatusCode::CONFLICT).await;
    expect_outcome(app.delete(&format!("Encounter/{encounter}")).await, StatusCode::CONFLICT).await;
    let provenance_id = provenance["id"].as_str().unwrap();
    expect_outcome(app.delete(&format!("Provenance/{provenance_id}")).await, StatusCode::CONFLICT).await;
    let kept = expect_outcome(app.delete(&practitioner).await, StatusCode::CONFLICT).await;
    assert!(kept["issue"][0]["diagnostics"].as_str().unwrap().contains("signed records"), "{kept}");

    let verified: Value = doctor.get(url("$verify-signature")).send().await.unwrap().json().await.unwrap();
    assert_eq!(verified["parameter"][0]["valueBoolean"], true, "{verified}");
    // The operation takes no parameters: one in the URL or in a body is named and refused.
    let in_url = doctor.get(format!("{}?version=1", url("$verify-signature"))).send().await.unwrap();
    let refused = expect_outcome(in_url, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["issue"][0]["expression"][0], "version", "{refused}");
    let in_body = parameters(json!([{"name": "version", "valueString": "1"}]));
    expect_outcome(post(&doctor, url("$verify-signature"), &in_body).await, StatusCode::BAD_REQUEST).await;

    // An amendment needs a reason, makes version 2 and signs it.
    let no_reason =
        parameters(json!([{"name": "resource", "resource": changed}, {"name": "password", "valueString": PASSWORD}]));
    expect_outcome(post(&doctor, url("$amend"), &no_reason).await, StatusCode::BAD_REQUEST).await;
    let amend = parameters(json!([
        {"name": "resource", "resource": changed},
        {"name": "reason", "valueString": "visit was cancelled before it began"},
        {"name": "password", "valueString": PASSWORD}]));
    let amended = post(&doctor, url("$amend"), &amend).await;
    assert_eq!(amended.status(), StatusCode::CREATED);
    let amendment: Value = amended.json().await.unwrap();
    assert_eq!(amendment["target"][0]["reference"], format!("Encounter/{encounter}/_history/2"));
    assert_eq!(amendment["reason"][0]["text"], "visit was cancelled before it began");
    let current: Value = app.get(&format!("Encounter/{encounter}")).await.json().await.unwrap();
    assert_eq!((current["status"].as_str(), current["meta"]["versionId"].as_str()), (Some("cancelled"), Some("2")));
    let verified: Value = doctor.get(url("$verify-signature")).send().await.unwrap().json().await.unwrap();
    assert_eq!(verified["parameter"][0]["valueBoolean"], true, "{verified}");
    assert_eq!(verified["parameter"].as_array().unwrap().len(), 3, "two signatures: {verified}");

    // A signed version edited in the database no longer verifies.
    let original = app.get(&format!("Encounter/{encounter}/_history/1")).await.text().await.unwrap();
    let forged = original.replacen("\"finished\"", "\"in-progress\"", 1);
    let sql = "UPDATE resource_versions SET json = $1 WHERE tenant = 'test-clinic' AND type = 'Encounter' AND id = $2 AND version = 1";
    if app.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).bind(forged.into_bytes()).bind(&encounter).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).bind(forged.into_bytes()).bind(&encounter).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let verified: Value = doctor.get(url("$verify-signature")).send().await.unwrap().json().await.unwrap();
    assert_eq!(verified["parameter"][0]["valueBoolean"], false, "{verified}");

    // Apps acting alone cannot sign; other types cannot be signed.
    expect_outcome(post(&app.client, url("$sign"), &sign).await, StatusCode::FORBIDDEN).await;
    expect_outcome(post(&doctor, app.url(&format!("Patient/{patient}/$sign")), &sign).await, StatusCode::NOT_FOUND)
        .await;
}

crate::on_both_backends!(signed_encounters_are_locked_amended_and_verified);
