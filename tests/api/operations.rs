//! The operations (FHIR R4 operations.html): `$validate`, `$everything`, `$meta`,
//! `$meta-add` and `$meta-delete`, on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;

use crate::crud::realistic_patient;
use crate::helpers::{TestApp, expect_outcome};

async fn system_history_size(app: &TestApp) -> usize {
    let body: Value = app.get("_history?_count=100").await.json().await.unwrap();
    body["entry"].as_array().map_or(0, Vec::len)
}

async fn validate_checks_without_storing(app: TestApp) {
    let existing = app.create(&realistic_patient()).await;
    let before = system_history_size(&app).await;
    let response = app.post("Patient/$validate", &realistic_patient()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["severity"], "information", "{outcome}");

    let mut invalid = realistic_patient();
    invalid["gender"] = json!("robot");
    invalid["colour"] = json!("blue");
    let response = app.post("Patient/$validate", &invalid).await;
    assert_eq!(response.status(), StatusCode::OK, "an invalid resource is a successful validation");
    let outcome: Value = response.json().await.unwrap();
    let expressions: BTreeSet<&str> = outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["severity"] == "error")
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    assert!(expressions.contains("Patient.gender") && expressions.contains("Patient.colour"), "{outcome}");

    // A business rule of the clinic (a vital sign out of range) is reported too.
    let vital = json!({
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": format!("Patient/{existing}")},
        "effectiveDateTime": "2024-03-01T10:00:00Z",
        "valueQuantity": {"value": 900, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    });
    let outcome: Value = app.post("Observation/$validate", &vital).await.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["severity"], "error", "{outcome}");

    // Parameters form, mode update: the resource must carry the instance's id.
    let mut other_id = realistic_patient();
    other_id["id"] = json!("someone-else");
    let parameters = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": other_id}, {"name": "mode", "valueCode": "update"}]});
    let outcome: Value = app.post(&format!("Patient/{existing}/$validate"), &parameters).await.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["severity"], "error", "{outcome}");
    // mode delete asks whether the instance can be deleted: it must exist.
    let delete = json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "delete"}]});
    let outcome: Value = app.post(&format!("Patient/{existing}/$validate"), &delete).await.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["severity"], "information", "{outcome}");
    expect_outcome(app.post("Patient/nobody/$validate", &delete).await, StatusCode::NOT_FOUND).await;
    let profile = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": realistic_patient()},
        {"name": "profile", "valueUri": "http://example.org/StructureDefinition/unknown"}]});
    expect_outcome(app.post("Patient/$validate", &profile).await, StatusCode::BAD_REQUEST).await;
    let base = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": realistic_patient()},
        {"name": "profile", "valueUri": "http://hl7.org/fhir/StructureDefinition/Patient"}]});
    let outcome: Value = app.post("Patient/$validate", &base).await.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["severity"], "information", "{outcome}");
    assert_eq!(system_history_size(&app).await, before, "$validate stores nothing");
}

async fn everything_returns_the_compartment_and_what_it_refers_to(app: TestApp) {
    let practitioner =
        app.create(&json!({"resourceType": "Practitioner", "name": [{"family": "House", "given": ["Greg"]}]})).await;
    let patient = app.create(&realistic_patient()).await;
    let other_patient = app.create(&realistic_patient()).await;
    let encounter = |subject: &str, start: &str| {
        json!({
            "resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": format!("Patient/{subject}")},
            "participant": [{"individual": {"reference": format!("Practitioner/{practitioner}")}}],
            "period": {"start": start, "end": start.replace("T10:", "T11:")}
        })
    };
    let mut mine = BTreeSet::from([format!("Patient/{patient}")]);
    for start in ["2021-05-01T10:00:00Z", "2022-05-01T10:00:00Z", "2023-05-01T10:00:00Z"] {
        mine.insert(format!("Encounter/{}", app.create(&encounter(&patient, start)).await));
    }
    let condition = json!({"resourceType": "Condition", "subject": {"reference": format!("Patient/{patient}")},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]}});
    mine.insert(format!("Condition/{}", app.create(&condition).await));
    app.create(&encounter(&other_patient, "2022-01-01T10:00:00Z")).await;

    let keys = |bundle: &Value, mode: &str| -> BTreeSet<String> {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["search"]["mode"] == mode)
            .map(|e| {
                format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
            })
            .collect()
    };
    let all: Value = app.get(&format!("Patient/{patient}/$everything")).await.json().await.unwrap();
    assert_eq!(all["type"], "searchset");
    assert_eq!(all["total"], mine.len());
    assert_eq!(keys(&all, "match"), mine, "the patient's compartment, nothing of the other patient");
    assert_eq!(keys(&all, "include"), BTreeSet::from([format!("Practitioner/{practitioner}")]));
    assert_eq!(all["entry"][0]["resource"]["resourceType"], "Patient", "the patient comes first");

    // Paging: two at a time, following `next`, visits every member once.
    let mut seen = BTreeSet::new();
    let mut url = app.url(&format!("Patient/{patient}/$everything?_count=2"));
    let mut pages = 0;
    loop {
        let page: Value = app.client.get(&url).send().await.unwrap().json().await.unwrap();
        pages += 1;
        for key in keys(&page, "match") {
            assert!(seen.insert(key), "no member twice");
        }
        match page["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next") {
            Some(next) => url = next["url"].as_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!((seen, pages), (mine.clone(), 3));

    let only: Value = app.get(&format!("Patient/{patient}/$everything?_type=Condition")).await.json().await.unwrap();
    assert_eq!(only["total"], 1);
    let dated: Value = app
        .get(&format!("Patient/{patient}/$everything?_type=Encounter&start=2022-01-01&end=2022-12-31"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dated["total"], 1, "start/end filter by care date: {dated}");
    let everyone: Value = app.get("Patient/$everything?_type=Patient,Encounter").await.json().await.unwrap();
    assert_eq!(everyone["total"], 2 + 4, "both patients and all their encounters");
    let since: Value = app.get(&format!("Patient/{patient}/$everything?_since=2999-01-01")).await.json().await.unwrap();
    assert_eq!(since["total"], 0);
    expect_outcome(app.get("Patient/nobody/$everything").await, StatusCode::NOT_FOUND).await;
    expect_outcome(app.get(&format!("Observation/{patient}/$everything")).await, StatusCode::NOT_FOUND).await;
    expect_outcome(app.get(&format!("Patient/{patient}/$everything?_type=Bogus")).await, StatusCode::BAD_REQUEST).await;
}

async fn meta_operations_change_meta_without_a_new_version(app: TestApp) {
    let mut patient = realistic_patient();
    patient["meta"] = json!({"tag": [{"system": "http://example.org/tags", "code": "vip"}]});
    let id = app.create(&patient).await;
    app.create(
        &json!({"resourceType": "Practitioner", "meta": {"profile": ["http://example.org/StructureDefinition/doc"]}}),
    )
    .await;
    let meta_of = |body: Value| body["parameter"][0]["valueMeta"].clone();
    let instance = meta_of(app.get(&format!("Patient/{id}/$meta")).await.json().await.unwrap());
    assert_eq!(instance["versionId"], "1");
    assert_eq!(instance["tag"][0]["code"], "vip");

    let add = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {
        "tag": [{"system": "http://example.org/tags", "code": "vip", "display": "again"},
                {"system": "http://example.org/tags", "code": "paper-record-lost"}],
        "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}}]});
    let response = app.post(&format!("Patient/{id}/$meta-add"), &add).await;
    assert_eq!(response.status(), StatusCode::OK);
    let meta = meta_of(response.json().await.unwrap());
    assert_eq!(meta["tag"].as_array().unwrap().len(), 2, "tags are a set: {meta}");
    assert_eq!(meta["versionId"], "1", "no new version");
    let stored: Value = app.get(&format!("Patient/{id}")).await.json().await.unwrap();
    assert_eq!(stored["meta"]["versionId"], "1");
    assert_eq!(stored["meta"]["security"][0]["code"], "R");
    let history: Value = app.get(&format!("Patient/{id}/_history")).await.json().await.unwrap();
    assert_eq!(history["entry"].as_array().unwrap().len(), 1);
    // The search index follows the change.
    let found: Value = app.get("Patient?_tag=http://example.org/tags|paper-record-lost").await.json().await.unwrap();
    assert_eq!(found["total"], 1);
    let system = meta_of(app.get("$meta").await.json().await.unwrap());
    assert_eq!(system["tag"].as_array().unwrap().len(), 2, "{system}");
    assert_eq!(system["profile"], json!(["http://example.org/StructureDefinition/doc"]));
    let of_type = meta_of(app.get("Patient/$meta").await.json().await.unwrap());
    assert!(of_type.get("profile").is_none(), "{of_type}");

    let delete = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {
        "tag": [{"system": "http://example.org/tags", "code": "paper-record-lost"}]}}]});
    let meta = meta_of(app.post(&format!("Patient/{id}/$meta-delete"), &delete).await.json().await.unwrap());
    assert_eq!(meta["tag"], json!([{"system": "http://example.org/tags", "code": "vip"}]));
    let found: Value = app.get("Patient?_tag=http://example.org/tags|paper-record-lost").await.json().await.unwrap();
    assert_eq!(found["total"], 0);

    expect_outcome(app.post("Patient/nobody/$meta-add", &add).await, StatusCode::NOT_FOUND).await;
    let no_meta = json!({"resourceType": "Parameters", "parameter": [{"name": "other", "valueString": "x"}]});
    expect_outcome(app.post(&format!("Patient/{id}/$meta-add"), &no_meta).await, StatusCode::BAD_REQUEST).await;
    let bad_meta = json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"tag": "vip"}}]});
    expect_outcome(app.post(&format!("Patient/{id}/$meta-add"), &bad_meta).await, StatusCode::BAD_REQUEST).await;
}

crate::on_both_backends!(
    validate_checks_without_storing,
    everything_returns_the_compartment_and_what_it_refers_to,
    meta_operations_change_meta_without_a_new_version,
);
