//! Tenancy (issue: safeguards, "Tenancy"): one clinic's resources are invisible to another's
//! apps on every path that reads (read, vread, history at every level, search with chains,
//! `_has`, `_include` and `_revinclude`, compartment search, `$everything`, Bundles, the audit
//! trail), and no write of one clinic changes another's.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, authorized_client, system_token_in};

/// Another clinic's backend service, sharing the server and the database.
struct OtherClinic {
    client: Client,
    base: String,
}

impl OtherClinic {
    async fn create(&self, resource: Value) -> String {
        let url = format!("{}/{}", self.base, resource["resourceType"].as_str().unwrap());
        let response = self
            .client
            .post(url)
            .header("content-type", "application/fhir+json")
            .body(resource.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}/{path}", self.base)).send().await.unwrap()
    }
}

async fn bundle_ids(app: &TestApp, path: &str) -> Vec<String> {
    let response = app.get(path).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let bundle: Value = response.json().await.unwrap();
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

async fn no_clinic_sees_another_clinics_records(app: TestApp) {
    let north = OtherClinic {
        client: authorized_client(&system_token_in(&app.state, &app.root, "north").await),
        base: app.base.clone(),
    };
    // North's record: a patient with a visit, an observation and their doctor.
    let doctor = north.create(json!({"resourceType": "Practitioner", "name": [{"family": "Northdoc"}]})).await;
    let theirs = north
        .create(json!({"resourceType": "Patient", "name": [{"family": "Northerner"}],
                       "generalPractitioner": [{"reference": format!("Practitioner/{doctor}")}]}))
        .await;
    let their_observation = north
        .create(json!({"resourceType": "Observation", "status": "final",
                       "code": {"coding": [{"system": "http://loinc.org", "code": "north-only"}]},
                       "subject": {"reference": format!("Patient/{theirs}")}}))
        .await;
    // This clinic's record, one of whose references happens to name north's patient's id.
    let ours = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Local"}]})).await;
    let our_observation = app
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                        "subject": {"reference": format!("Patient/{theirs}")}}))
        .await;
    let mine = [ours.as_str(), our_observation.as_str()];
    let north_ids = [doctor.as_str(), theirs.as_str(), their_observation.as_str()];
    let leaks = |ids: &[String]| ids.iter().filter(|id| north_ids.contains(&id.as_str())).cloned().collect::<Vec<_>>();

    // Read, vread, instance history, $everything: as if it did not exist.
    for path in [
        format!("Patient/{theirs}"),
        format!("Patient/{theirs}/_history/1"),
        format!("Patient/{theirs}/_history"),
        format!("Observation/{their_observation}"),
        format!("Practitioner/{doctor}"),
        format!("Patient/{theirs}/$everything"),
    ] {
        let status = app.get(&path).await.status();
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // Searches of every kind, history of type and system.
    for path in [
        "Patient".to_string(),
        format!("Patient?_id={theirs}"),
        "Patient?family=Northerner".to_string(),
        "Observation?code=http://loinc.org|north-only".to_string(),
        "Observation?subject:Patient.family=Northerner".to_string(),
        "Patient?_has:Observation:subject:code=north-only".to_string(),
        format!("Patient?general-practitioner=Practitioner/{doctor}"),
        format!("Observation?_id={our_observation}&_include=Observation:subject"),
        format!("Patient?_id={ours}&_revinclude=Observation:subject"),
        format!("Patient?_id={theirs}&_revinclude=Observation:subject"),
        "Patient?_include=Patient:general-practitioner".to_string(),
        format!("Patient/{theirs}/Observation"),
        format!("Patient/{ours}/$everything"),
        "Observation/_history".to_string(),
        "Patient/_history".to_string(),
        "_history".to_string(),
        "Practitioner".to_string(),
    ] {
        let ids = bundle_ids(&app, &path).await;
        assert!(leaks(&ids).is_empty(), "{path} leaked {:?}", leaks(&ids));
    }
    assert!(bundle_ids(&app, "Patient").await.contains(&ours), "the clinic's own patient is found");
    assert_eq!(
        bundle_ids(&app, &format!("Observation?_id={our_observation}&_include=Observation:subject")).await,
        std::slice::from_ref(&our_observation)
    );

    // A Bundle's reads, and a conditional write whose condition would match north's resources.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Patient/{theirs}")}},
        {"request": {"method": "GET", "url": "Observation?code=north-only"}}]});
    let answer: Value = app.post("", &batch).await.json().await.unwrap();
    assert!(answer["entry"][0]["response"]["status"].as_str().unwrap().starts_with("404"), "{answer}");
    assert!(!answer.to_string().contains(&their_observation), "{answer}");
    let deleted = app.delete("Observation?code=http://loinc.org|north-only").await;
    assert!(deleted.status().is_success(), "deletes nothing here: {}", deleted.status());
    let gone = app.delete(&format!("Practitioner/{doctor}")).await;
    assert!(gone.status().is_success() || gone.status() == StatusCode::NOT_FOUND);
    // An update to north's patient's id creates this clinic's own resource with that id.
    let put = app
        .put(
            &format!("Patient/{theirs}"),
            &json!({"resourceType": "Patient", "id": theirs, "name": [{"family": "Mine"}]}),
        )
        .await;
    assert!(put.status().is_success(), "{}", put.status());

    // Who accessed what is per clinic too.
    // (This clinic's trail names north's ids where it tried them, but nothing was disclosed.)
    let events: Value = app.get("AuditEvent?_count=100").await.json().await.unwrap();
    for entry in events["entry"].as_array().unwrap() {
        let event = &entry["resource"];
        let text = event.to_string();
        let disclosed = event["outcome"] == "0" && (text.contains(&their_observation) || text.contains(&doctor));
        assert!(!disclosed, "a north resource was disclosed: {event}");
        assert!(!text.contains("Northerner"));
    }

    // North's record is whole and unchanged.
    let patient: Value = north.get(&format!("Patient/{theirs}")).await.json().await.unwrap();
    assert_eq!(patient["name"][0]["family"], "Northerner");
    assert_eq!(patient["meta"]["versionId"], "1");
    assert_eq!(north.get(&format!("Observation/{their_observation}")).await.status(), StatusCode::OK);
    assert_eq!(north.get(&format!("Practitioner/{doctor}")).await.status(), StatusCode::OK);
    let theirs_seen: Value = north.get("Patient?_count=100").await.json().await.unwrap();
    for id in mine {
        assert!(!theirs_seen.to_string().contains(id), "north does not see this clinic's {id}");
    }
}

crate::on_both_backends!(no_clinic_sees_another_clinics_records);
