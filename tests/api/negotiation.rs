//! Formats: `Accept`, `_format`, `_pretty` (FHIR R4 http.html#mime-type).

use reqwest::StatusCode;
use serde_json::Value;

use crate::crud::realistic_patient;
use crate::helpers::{TestApp, expect_outcome};

async fn json_is_served_and_xml_is_refused(app: TestApp) {
    let id = app.create(&realistic_patient()).await;
    let url = app.url(&format!("Patient/{id}"));
    let fhir = app.client.get(&url).header("accept", "application/fhir+json").send().await.unwrap();
    assert_eq!(fhir.headers()["content-type"], "application/fhir+json; charset=utf-8");
    let plain = app.client.get(&url).header("accept", "application/json").send().await.unwrap();
    assert_eq!(plain.headers()["content-type"], "application/json; charset=utf-8");
    let by_param =
        app.client.get(format!("{url}?_format=json")).header("accept", "application/xml").send().await.unwrap();
    assert_eq!(by_param.status(), StatusCode::OK);
    expect_outcome(
        app.client.get(&url).header("accept", "application/fhir+xml").send().await.unwrap(),
        StatusCode::NOT_ACCEPTABLE,
    )
    .await;
    expect_outcome(app.client.get(format!("{url}?_format=xml")).send().await.unwrap(), StatusCode::NOT_ACCEPTABLE)
        .await;
}

async fn pretty_output_is_the_same_resource(app: TestApp) {
    let created = app
        .client
        .post(app.url("Patient"))
        .header("content-type", "application/fhir+json")
        .body(crate::crud::realistic_patient_text())
        .send()
        .await
        .unwrap();
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let compact = app.get(&format!("Patient/{id}")).await.text().await.unwrap();
    let pretty = app.get(&format!("Patient/{id}?_pretty=true")).await.text().await.unwrap();
    assert!(pretty.contains("\n  \"resourceType\": \"Patient\""));
    assert!(pretty.contains("3.50"), "decimals keep their precision when pretty-printed");
    assert_eq!(serde_json::from_str::<Value>(&compact).unwrap(), serde_json::from_str::<Value>(&pretty).unwrap());
}

crate::on_both_backends!(json_is_served_and_xml_is_refused, pretty_output_is_the_same_resource);
