//! Batch and transaction Bundles (FHIR R4 http.html#transaction) and the conditional
//! interactions (http.html#ccreate, #cond-update, #cdelete), on both backends.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::crud::realistic_patient;
use crate::helpers::{TestApp, expect_outcome};

fn encounter(subject: &str) -> Value {
    json!({
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": subject},
        "period": {"start": "2024-03-01T09:00:00Z", "end": "2024-03-01T09:30:00Z"}
    })
}

fn lab_observation(subject: &str, encounter: &str) -> Value {
    json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": subject},
        "encounter": {"reference": encounter},
        "extension": [{"url": "http://example.org/fhir/ordered-for", "valueReference": {"reference": subject}}],
        "contained": [{"resourceType": "Provenance", "id": "p1", "recorded": "2024-03-01T09:10:00Z",
                        "target": [{"reference": encounter}], "agent": [{"who": {"reference": subject}}]}],
        "valueQuantity": {"value": 5.50, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"}
    })
}

fn entry(full_url: Option<&str>, method: &str, url: &str, resource: Option<Value>) -> Value {
    let mut entry = json!({"request": {"method": method, "url": url}});
    if let Some(full_url) = full_url {
        entry["fullUrl"] = json!(full_url);
    }
    if let Some(resource) = resource {
        entry["resource"] = resource;
    }
    entry
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

/// Every version the server holds, as the system history answers it (entries only).
async fn everything_stored(app: &TestApp) -> Vec<Value> {
    let body: Value = app.get("_history?_count=100").await.json().await.unwrap();
    body["entry"].as_array().cloned().unwrap_or_default()
}

async fn search_total(app: &TestApp, query: &str) -> u64 {
    let body: Value = app.get(query).await.json().await.unwrap();
    body["total"].as_u64().unwrap_or_else(|| panic!("no total in {body}"))
}

async fn a_transaction_resolves_full_urls_everywhere(app: TestApp) {
    let patient_url = "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a";
    let encounter_url = "urn:uuid:88f151c0-a954-468a-88da-c5e3f3e8e4a0";
    let observation_url = "urn:uuid:0fd0c5ff-4d7e-4f7e-a6a8-e9e0b8b3b0b1";
    let request = bundle(
        "transaction",
        vec![
            // Listed before the resources they refer to: order in the Bundle does not matter.
            entry(Some(observation_url), "POST", "Observation", Some(lab_observation(patient_url, encounter_url))),
            entry(Some(encounter_url), "POST", "Encounter", Some(encounter(patient_url))),
            entry(Some(patient_url), "POST", "Patient", Some(realistic_patient())),
        ],
    );
    // Sent as text: the client's `5.50` must reach the store as written.
    let text = request.to_string().replace("\"value\":5.5,", "\"value\":5.50,");
    assert!(text.contains("5.50"));
    let response =
        app.client.post(app.url("")).header("content-type", "application/fhir+json").body(text).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "transaction-response");
    let entries = answer["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "one response entry per request entry, in order");
    let mut ids = Vec::new();
    for (entry, kind) in entries.iter().zip(["Observation", "Encounter", "Patient"]) {
        assert_eq!(entry["response"]["status"], "201 Created", "{entry}");
        assert_eq!(entry["response"]["etag"], "W/\"1\"");
        let location = entry["response"]["location"].as_str().unwrap();
        let prefix = app.url(&format!("{kind}/"));
        assert!(location.starts_with(&prefix), "{location}");
        ids.push(location[prefix.len()..].split('/').next().unwrap().to_string());
    }
    let (observation_id, encounter_id, patient_id) = (&ids[0], &ids[1], &ids[2]);
    let observation_text = app.get(&format!("Observation/{observation_id}")).await.text().await.unwrap();
    assert!(observation_text.contains("\"value\":5.50"), "decimals kept as sent: {observation_text}");
    assert!(!observation_text.contains("urn:uuid"), "every urn:uuid rewritten: {observation_text}");
    let observation: Value = serde_json::from_str(&observation_text).unwrap();
    let patient_ref = format!("Patient/{patient_id}");
    let encounter_ref = format!("Encounter/{encounter_id}");
    assert_eq!(observation["subject"]["reference"], patient_ref);
    assert_eq!(observation["encounter"]["reference"], encounter_ref);
    assert_eq!(observation["extension"][0]["valueReference"]["reference"], patient_ref);
    assert_eq!(observation["contained"][0]["target"][0]["reference"], encounter_ref);
    assert_eq!(observation["contained"][0]["agent"][0]["who"]["reference"], patient_ref);
    let encounter: Value = app.get(&format!("Encounter/{encounter_id}")).await.json().await.unwrap();
    assert_eq!(encounter["subject"]["reference"], patient_ref);
    // The rewritten references are indexed: searches by the new ids find them.
    assert_eq!(search_total(&app, &format!("Observation?subject={patient_ref}&_total=accurate")).await, 1);
    assert_eq!(search_total(&app, &format!("Observation?encounter={encounter_ref}&_total=accurate")).await, 1);
}

async fn a_failing_entry_rolls_everything_back(app: TestApp) {
    let kept = app.create(&realistic_patient()).await;
    let removed = app.create(&realistic_patient()).await;
    let before = everything_stored(&app).await;
    let kept_bytes = app.get(&format!("Patient/{kept}")).await.text().await.unwrap();
    let mut changed = realistic_patient();
    changed["id"] = json!(kept);
    changed["gender"] = json!("male");
    let mut invalid = lab_observation("urn:uuid:p", "urn:uuid:e");
    invalid["valueQuantity"]["value"] = json!("not a number");
    let request = bundle(
        "transaction",
        vec![
            entry(Some("urn:uuid:p"), "POST", "Patient", Some(realistic_patient())),
            entry(Some("urn:uuid:e"), "POST", "Encounter", Some(encounter("urn:uuid:p"))),
            entry(None, "PUT", &format!("Patient/{kept}"), Some(changed)),
            entry(None, "DELETE", &format!("Patient/{removed}"), None),
            entry(Some("urn:uuid:bad"), "POST", "Observation", Some(invalid)),
        ],
    );
    let outcome = expect_outcome(app.post("", &request).await, StatusCode::BAD_REQUEST).await;
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("Bundle.entry[4]") && diagnostics.contains("urn:uuid:bad"), "{outcome}");
    assert!(
        outcome["issue"][0]["expression"][0].as_str().unwrap().starts_with("Bundle.entry[4].resource.valueQuantity"),
        "{outcome}"
    );
    // A failure found only while writing (a business rule, after the deletes and creates ran)
    // rolls back just the same.
    let mut duplicate_mrn = realistic_patient();
    let kept_resource: Value = serde_json::from_str(&kept_bytes).unwrap();
    // The identifiers as shown (the SSN masked: only the MRN is duplicated).
    let shown: Vec<Value> =
        kept_resource["identifier"].as_array().unwrap().iter().filter(|i| i.get("value").is_some()).cloned().collect();
    duplicate_mrn["identifier"] = json!(shown);
    let request = bundle(
        "transaction",
        vec![
            entry(Some("urn:uuid:p"), "POST", "Patient", Some(realistic_patient())),
            entry(None, "DELETE", &format!("Patient/{removed}"), None),
            entry(
                Some("urn:uuid:dup"),
                "PUT",
                "Patient/brand-new",
                Some({
                    let mut p = duplicate_mrn;
                    p["id"] = json!("brand-new");
                    p
                }),
            ),
        ],
    );
    let outcome = expect_outcome(app.post("", &request).await, StatusCode::CONFLICT).await;
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("Bundle.entry[2]"), "{outcome}");
    assert_eq!(everything_stored(&app).await, before, "the store holds exactly what it held before");
    assert_eq!(app.get(&format!("Patient/{kept}")).await.text().await.unwrap(), kept_bytes);
    assert_eq!(app.get(&format!("Patient/{removed}")).await.status(), StatusCode::OK);
    assert_eq!(app.get("Patient/brand-new").await.status(), StatusCode::NOT_FOUND);
}

async fn conditional_references_and_creates_inside_a_transaction(app: TestApp) {
    let mut patient = realistic_patient();
    patient["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "H-1001"}]);
    let existing = app.create(&patient).await;
    let request = bundle(
        "transaction",
        vec![
            // Matches the existing patient: nothing is created, and the fullUrl points to it.
            json!({"fullUrl": "urn:uuid:p", "resource": patient.clone(),
                   "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=http://hospital.example/mrn|H-1001"}}),
            entry(Some("urn:uuid:e"), "POST", "Encounter", Some(encounter("urn:uuid:p"))),
            entry(
                None,
                "POST",
                "Observation",
                Some(lab_observation("Patient?identifier=http://hospital.example/mrn|H-1001", "urn:uuid:e")),
            ),
        ],
    );
    let response = app.post("", &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["entry"][0]["response"]["status"], "200 OK");
    assert!(answer["entry"][0]["response"]["location"].as_str().unwrap().contains(&existing));
    assert_eq!(search_total(&app, "Patient?_total=accurate").await, 1, "the conditional create matched");
    let references = format!("Patient/{existing}");
    assert_eq!(search_total(&app, &format!("Encounter?subject={references}&_total=accurate")).await, 1);
    assert_eq!(search_total(&app, &format!("Observation?subject={references}&_total=accurate")).await, 1);

    // A conditional reference that matches nothing fails the whole transaction.
    let request = bundle(
        "transaction",
        vec![
            entry(Some("urn:uuid:e2"), "POST", "Encounter", Some(encounter(&references))),
            entry(None, "POST", "Observation", Some(lab_observation("Patient?identifier=nobody|0", "urn:uuid:e2"))),
        ],
    );
    let outcome = expect_outcome(app.post("", &request).await, StatusCode::PRECONDITION_FAILED).await;
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("Bundle.entry[1]"), "{outcome}");
    assert_eq!(search_total(&app, "Encounter?_total=accurate").await, 1, "nothing of it was kept");
}

async fn transactions_refuse_duplicates_unknown_references_and_too_many_entries(app: TestApp) {
    let before = everything_stored(&app).await;
    let mut p = realistic_patient();
    p["id"] = json!("same");
    let twice = bundle(
        "transaction",
        vec![entry(None, "PUT", "Patient/same", Some(p.clone())), entry(None, "PUT", "Patient/same", Some(p.clone()))],
    );
    let outcome = expect_outcome(app.post("", &twice).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(outcome["issue"][0]["code"], "duplicate", "{outcome}");
    let same_full_url = bundle(
        "transaction",
        vec![
            entry(Some("urn:uuid:x"), "POST", "Patient", Some(realistic_patient())),
            entry(Some("urn:uuid:x"), "POST", "Patient", Some(realistic_patient())),
        ],
    );
    expect_outcome(app.post("", &same_full_url).await, StatusCode::BAD_REQUEST).await;
    let dangling = bundle("transaction", vec![entry(None, "POST", "Encounter", Some(encounter("urn:uuid:nowhere")))]);
    let outcome = expect_outcome(app.post("", &dangling).await, StatusCode::BAD_REQUEST).await;
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("urn:uuid:nowhere"), "{outcome}");
    // The test server accepts at most 50 entries.
    let too_many = bundle("batch", (0..51).map(|_| entry(None, "GET", "Patient", None)).collect());
    expect_outcome(app.post("", &too_many).await, StatusCode::PAYLOAD_TOO_LARGE).await;
    let not_a_transaction = json!({"resourceType": "Bundle", "type": "collection"});
    expect_outcome(app.post("", &not_a_transaction).await, StatusCode::BAD_REQUEST).await;
    let no_request =
        json!({"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": realistic_patient()}]});
    expect_outcome(app.post("", &no_request).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(everything_stored(&app).await, before);
}

async fn a_batch_answers_each_entry_on_its_own(app: TestApp) {
    let existing = app.create(&realistic_patient()).await;
    let mut invalid = realistic_patient();
    invalid["gender"] = json!("robot");
    let request = bundle(
        "batch",
        vec![
            entry(None, "POST", "Patient", Some(realistic_patient())),
            entry(None, "POST", "Patient", Some(invalid)),
            entry(None, "GET", &format!("Patient/{existing}"), None),
            entry(None, "DELETE", "Patient/never-was", None),
            entry(None, "GET", "Patient?gender=female&_total=accurate", None),
        ],
    );
    let response = app.post("", &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["type"], "batch-response");
    let status = |i: usize| answer["entry"][i]["response"]["status"].as_str().unwrap().to_string();
    assert_eq!(status(0), "201 Created");
    assert!(status(1).starts_with("422"), "{}", status(1));
    assert_eq!(answer["entry"][1]["response"]["outcome"]["resourceType"], "OperationOutcome");
    assert_eq!(status(2), "200 OK");
    assert_eq!(answer["entry"][2]["resource"]["id"], existing);
    assert_eq!(answer["entry"][2]["response"]["etag"], "W/\"1\"");
    assert!(status(3).starts_with("404"), "{}", status(3));
    // GET entries run after the writes: the search sees the new patient.
    assert_eq!(answer["entry"][4]["resource"]["total"], 2);
    assert_eq!(search_total(&app, "Patient?_total=accurate").await, 2);
}

async fn conditional_create_update_and_delete(app: TestApp) {
    let mut patient = realistic_patient();
    patient["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "C-1"}]);
    let create = |condition: &'static str, body: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("Patient"))
                .header("content-type", "application/fhir+json")
                .header("if-none-exist", condition)
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let first = create("identifier=http://hospital.example/mrn|C-1", patient.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let id = first.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let again = create("identifier=http://hospital.example/mrn|C-1", patient.clone()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id.as_str());
    assert_eq!(search_total(&app, "Patient?_total=accurate").await, 1);
    expect_outcome(create("colour=blue", patient.clone()).await, StatusCode::BAD_REQUEST).await;

    // Conditional update: one match updates it; no match creates; a body id naming another
    // resource is refused.
    let mut changed = patient.clone();
    changed["gender"] = json!("other");
    let response = app.put("Patient?identifier=http://hospital.example/mrn|C-1", &changed).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["id"].as_str().unwrap(), body["meta"]["versionId"].as_str().unwrap()), (id.as_str(), "2"));
    let mut other = realistic_patient();
    other["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "C-2"}]);
    let response = app.put("Patient?identifier=http://hospital.example/mrn|C-2", &other).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let mut wrong_id = changed.clone();
    wrong_id["id"] = json!("somebody-else");
    expect_outcome(
        app.put("Patient?identifier=http://hospital.example/mrn|C-1", &wrong_id).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // `system|` matches C-1 and C-2: several matches are refused.
    expect_outcome(
        app.put("Patient?identifier=http://hospital.example/mrn|", &changed).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;

    // Conditional delete: several matches are all deleted, up to the cap (5 in tests).
    for _ in 0..4 {
        let mut p = realistic_patient();
        p["identifier"] = json!([{"system": "http://hospital.example/batch", "value": "B"}]);
        app.create(&p).await;
    }
    assert_eq!(app.delete("Patient?identifier=http://hospital.example/batch|B").await.status(), StatusCode::NO_CONTENT);
    assert_eq!(search_total(&app, "Patient?identifier=http://hospital.example/batch|B&_total=accurate").await, 0);
    assert_eq!(app.delete("Patient?identifier=http://hospital.example/batch|B").await.status(), StatusCode::NO_CONTENT);
    for _ in 0..6 {
        app.create(&realistic_patient()).await;
    }
    let before = search_total(&app, "Patient?_total=accurate").await;
    expect_outcome(app.delete("Patient?gender=female").await, StatusCode::PRECONDITION_FAILED).await;
    assert_eq!(search_total(&app, "Patient?_total=accurate").await, before, "over the cap nothing is deleted");
}

async fn patch_entries_in_a_transaction(app: TestApp) {
    use base64::Engine;
    let first = app.create(&realistic_patient()).await;
    let second = app.create(&realistic_patient()).await;
    let json_patch = json!([{"op": "replace", "path": "/gender", "value": "other"}]).to_string();
    let binary = json!({"resourceType": "Binary", "contentType": "application/json-patch+json",
        "data": base64::engine::general_purpose::STANDARD.encode(json_patch)});
    let fhirpath = json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.active"},
        {"name": "value", "valueBoolean": false}]}]});
    let request = bundle(
        "transaction",
        vec![
            entry(None, "PATCH", &format!("Patient/{first}"), Some(binary.clone())),
            entry(None, "PATCH", &format!("Patient/{second}"), Some(fhirpath)),
        ],
    );
    let response = app.post("", &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["entry"][0]["response"]["status"], "200 OK");
    assert_eq!(answer["entry"][0]["response"]["etag"], "W/\"2\"");
    let first_now: Value = app.get(&format!("Patient/{first}")).await.json().await.unwrap();
    let second_now: Value = app.get(&format!("Patient/{second}")).await.json().await.unwrap();
    assert_eq!((first_now["gender"].as_str(), second_now["active"].as_bool()), (Some("other"), Some(false)));
    // A patch that does not apply rolls the whole transaction back.
    let bad = json!({"resourceType": "Binary", "contentType": "application/json-patch+json",
        "data": base64::engine::general_purpose::STANDARD.encode(r#"[{"op":"remove","path":"/nothing"}]"#)});
    let request = bundle(
        "transaction",
        vec![
            entry(Some("urn:uuid:n"), "POST", "Patient", Some(realistic_patient())),
            entry(None, "PATCH", &format!("Patient/{second}"), Some(bad)),
        ],
    );
    let outcome = expect_outcome(app.post("", &request).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("Bundle.entry[1]"), "{outcome}");
    assert_eq!(search_total(&app, "Patient?_total=accurate").await, 2);
}

async fn conditional_updates_and_deletes_inside_a_transaction(app: TestApp) {
    let mut kept = realistic_patient();
    kept["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "T-1"}]);
    let kept_id = app.create(&kept).await;
    let mut doomed = realistic_patient();
    doomed["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "T-2"}]);
    let doomed_id = app.create(&doomed).await;
    let mut changed = kept.clone();
    changed["gender"] = json!("other");
    let mut brand_new = realistic_patient();
    brand_new["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "T-3"}]);
    let request = bundle(
        "transaction",
        vec![
            entry(None, "PUT", "Patient?identifier=http://hospital.example/mrn|T-1", Some(changed)),
            entry(
                Some("urn:oid:1.2.3.4"),
                "PUT",
                "Patient?identifier=http://hospital.example/mrn|T-3",
                Some(brand_new),
            ),
            entry(None, "DELETE", "Patient?identifier=http://hospital.example/mrn|T-2", None),
            // urn:oid fullUrls are resolved like urn:uuid ones.
            entry(None, "POST", "Encounter", Some(encounter("urn:oid:1.2.3.4"))),
        ],
    );
    let response = app.post("", &request).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    let status = |i: usize| answer["entry"][i]["response"]["status"].as_str().unwrap().to_string();
    assert_eq!(
        (status(0), status(1), status(2), status(3)),
        ("200 OK".into(), "201 Created".into(), "204 No Content".into(), "201 Created".into())
    );
    let kept_now: Value = app.get(&format!("Patient/{kept_id}")).await.json().await.unwrap();
    assert_eq!((kept_now["gender"].as_str(), kept_now["meta"]["versionId"].as_str()), (Some("other"), Some("2")));
    assert_eq!(app.get(&format!("Patient/{doomed_id}")).await.status(), StatusCode::GONE);
    let created = answer["entry"][1]["response"]["location"].as_str().unwrap();
    let new_id = created.split("/Patient/").nth(1).unwrap().split('/').next().unwrap();
    assert_eq!(search_total(&app, &format!("Encounter?subject=Patient/{new_id}&_total=accurate")).await, 1);
}

/// 20 identical conditional creates at once, spread over two server processes (this one and a
/// `kiln serve` child) on one database, create exactly one resource.
async fn concurrent_conditional_creates_create_once(app: TestApp) {
    let second = app.another_process_on_same_database().await;
    let mut patient = realistic_patient();
    patient["identifier"] = json!([{"system": "http://hospital.example/mrn", "value": "RACE-1"}]);
    let body = patient.to_string();
    let requests = (0..20).map(|i| {
        let (client, url) =
            if i % 2 == 0 { (&app.client, app.url("Patient")) } else { (&second.client, second.url("Patient")) };
        let request = client
            .post(url)
            .header("content-type", "application/fhir+json")
            .header("if-none-exist", "identifier=http://hospital.example/mrn|RACE-1")
            .body(body.clone());
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 19, "{statuses:?}");
    assert_eq!(search_total(&app, "Patient?identifier=http://hospital.example/mrn|RACE-1&_total=accurate").await, 1);
}

crate::on_both_backends!(
    a_transaction_resolves_full_urls_everywhere,
    a_failing_entry_rolls_everything_back,
    conditional_references_and_creates_inside_a_transaction,
    transactions_refuse_duplicates_unknown_references_and_too_many_entries,
    a_batch_answers_each_entry_on_its_own,
    patch_entries_in_a_transaction,
    conditional_updates_and_deletes_inside_a_transaction,
    conditional_create_update_and_delete,
    concurrent_conditional_creates_create_once,
);
