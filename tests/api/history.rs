//! history at instance, type and system level (FHIR R4 http.html#history).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, expect_outcome};

fn entries(bundle: &Value) -> Vec<Value> {
    bundle.get("entry").and_then(Value::as_array).cloned().unwrap_or_default()
}

async fn instance_history_lists_every_version_newest_first(app: TestApp) {
    let mut patient = json!({"resourceType": "Patient", "id": "h1", "active": true});
    app.put("Patient/h1", &patient).await;
    patient["active"] = json!(false);
    app.put("Patient/h1", &patient).await;
    app.delete("Patient/h1").await;
    let response = app.get("Patient/h1/_history").await;
    assert_eq!(response.status(), StatusCode::OK);
    let bundle: Value = response.json().await.unwrap();
    assert_eq!(bundle["type"], "history");
    let entries = entries(&bundle);
    let methods: Vec<&str> = entries.iter().map(|e| e["request"]["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["DELETE", "PUT", "PUT"]);
    assert!(entries[0].get("resource").is_none(), "a deletion has no resource");
    assert_eq!(entries[1]["resource"]["active"], false);
    assert_eq!(entries[2]["response"]["etag"], "W/\"1\"");
    assert_eq!(entries[2]["fullUrl"], app.url("Patient/h1"));
    expect_outcome(app.get("Patient/nobody/_history").await, StatusCode::NOT_FOUND).await;
}

async fn type_and_system_history_page_with_next_links(app: TestApp) {
    for i in 0..5 {
        app.create(&json!({"resourceType": "Patient", "birthDate": format!("200{i}")})).await;
    }
    app.create(&json!({"resourceType": "Organization", "name": "Clinic"})).await;
    let first: Value = app.get("Patient/_history?_count=2").await.json().await.unwrap();
    assert_eq!(entries(&first).len(), 2);
    let mut seen: Vec<String> = Vec::new();
    let mut page = first;
    loop {
        seen.extend(entries(&page).iter().map(|e| e["resource"]["birthDate"].as_str().unwrap().to_string()));
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        match next {
            Some(url) => page = app.client.get(url).send().await.unwrap().json().await.unwrap(),
            None => break,
        }
    }
    assert_eq!(seen, ["2004", "2003", "2002", "2001", "2000"]);
    let system: Value = app.get("_history").await.json().await.unwrap();
    assert_eq!(entries(&system).len(), 6);
    assert_eq!(entries(&system)[0]["resource"]["resourceType"], "Organization");
    expect_outcome(app.get("Patient/_history?_count=-1").await, StatusCode::BAD_REQUEST).await;
    expect_outcome(app.get("Patient/_history?_count=100000").await, StatusCode::BAD_REQUEST).await;
    expect_outcome(app.get("_history?_since=yesterday").await, StatusCode::BAD_REQUEST).await;
}

async fn since_and_at_select_versions_by_time(app: TestApp) {
    let mut patient = json!({"resourceType": "Patient", "id": "t1", "gender": "male"});
    let v1: Value = app.put("Patient/t1", &patient).await.json().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    patient["gender"] = json!("female");
    let v2: Value = app.put("Patient/t1", &patient).await.json().await.unwrap();
    let v1_time = v1["meta"]["lastUpdated"].as_str().unwrap();
    let v2_time = v2["meta"]["lastUpdated"].as_str().unwrap();

    let since: Value = app
        .client
        .get(app.url("Patient/t1/_history"))
        .query(&[("_since", v2_time)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entries(&since).len(), 1);
    assert_eq!(entries(&since)[0]["resource"]["gender"], "female");

    let at: Value = app
        .client
        .get(app.url("Patient/t1/_history"))
        .query(&[("_at", v1_time)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entries(&at).len(), 1, "{at}");
    assert_eq!(entries(&at)[0]["resource"]["gender"], "male");
}

crate::on_both_backends!(
    instance_history_lists_every_version_newest_first,
    type_and_system_history_page_with_next_links,
    since_and_at_select_versions_by_time,
);
