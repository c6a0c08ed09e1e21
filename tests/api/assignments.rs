//! Assigned patients (issue: safeguards, "Roles"): a nurse (a role listed in
//! `assigned_patients_roles`) reaches only the patients in their care, found from the care
//! relationship (general practitioner, CareTeam, Encounter, Appointment), on every path: read,
//! search, `_include`, history, `$everything` and writes; breaking the glass opens one request;
//! roles not listed keep clinic-wide access.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::smart::staff_client;

const SCOPE: &str = "openid fhirUser user/*.cruds";

fn ids(bundle: &Value, resource_type: &str) -> Vec<String> {
    let mut ids: Vec<String> = bundle["entry"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == resource_type)
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn get(client: &Client, app: &TestApp, path: &str) -> reqwest::Response {
    client.get(app.url(path)).send().await.unwrap()
}

fn vital(patient: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": format!("Patient/{patient}")},
        "effectiveDateTime": "2026-01-01T10:00:00Z",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

async fn nurses_reach_only_the_patients_in_their_care(app: TestApp) {
    let (nurse, me) = staff_client(&app, "nurse1", "nurse", SCOPE).await;
    let patient = |family: &str| json!({"resourceType": "Patient", "name": [{"family": family}]});
    let mut by_gp = patient("ByGp");
    by_gp["generalPractitioner"] = json!([{"reference": me}]);
    let by_gp = app.create(&by_gp).await;
    let by_visit = app.create(&patient("ByVisit")).await;
    app.create(&json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": format!("Patient/{by_visit}")},
        "participant": [{"individual": {"reference": me}}]}))
        .await;
    let by_team = app.create(&patient("ByTeam")).await;
    app.create(&json!({"resourceType": "CareTeam", "subject": {"reference": format!("Patient/{by_team}")},
        "participant": [{"member": {"reference": me}}]}))
        .await;
    let by_booking = app.create(&patient("ByBooking")).await;
    app.create(&json!({"resourceType": "Appointment", "status": "proposed",
        "participant": [{"actor": {"reference": me}, "status": "accepted"},
                        {"actor": {"reference": format!("Patient/{by_booking}")}, "status": "accepted"}]}))
        .await;
    let stranger = app.create(&patient("Stranger")).await;
    let mine_observed = app.create(&vital(&by_gp)).await;
    let theirs_observed = app.create(&vital(&stranger)).await;

    // Read: own patients yes, the stranger no (and not their Observation either).
    for id in [&by_gp, &by_visit, &by_team, &by_booking] {
        assert_eq!(get(&nurse, &app, &format!("Patient/{id}")).await.status(), StatusCode::OK, "Patient/{id}");
    }
    for path in [
        format!("Patient/{stranger}"),
        format!("Observation/{theirs_observed}"),
        format!("Patient/{stranger}/_history"),
        format!("Patient/{stranger}/_history/1"),
    ] {
        let response = get(&nurse, &app, &path).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
        let outcome: Value = response.json().await.unwrap();
        assert!(outcome.to_string().contains("in your care"), "{outcome}");
    }
    assert_eq!(get(&nurse, &app, &format!("Observation/{mine_observed}")).await.status(), StatusCode::OK);

    // Search, includes, type history, $everything: the stranger is simply absent.
    let patients: Value = get(&nurse, &app, "Patient?_count=50").await.json().await.unwrap();
    let mut expected = vec![by_gp.clone(), by_visit.clone(), by_team.clone(), by_booking.clone()];
    expected.sort();
    assert_eq!(ids(&patients, "Patient"), expected);
    let observations: Value = get(&nurse, &app, "Observation?_include=Observation:subject").await.json().await.unwrap();
    assert_eq!(ids(&observations, "Observation"), vec![mine_observed.clone()]);
    assert_eq!(ids(&observations, "Patient"), vec![by_gp.clone()]);
    let history: Value = get(&nurse, &app, "Observation/_history").await.json().await.unwrap();
    assert!(!history.to_string().contains(&theirs_observed), "{history}");
    let everything = get(&nurse, &app, &format!("Patient/{stranger}/$everything")).await;
    assert_eq!(everything.status(), StatusCode::FORBIDDEN);
    let own: Value = get(&nurse, &app, &format!("Patient/{by_gp}/$everything")).await.json().await.unwrap();
    assert_eq!(ids(&own, "Observation"), vec![mine_observed.clone()]);

    // Writes: vital signs for a patient in care yes; for the stranger no, and nothing is stored.
    let post = |body: Value| {
        nurse.post(app.url("Observation")).header("content-type", "application/fhir+json").body(body.to_string()).send()
    };
    assert_eq!(post(vital(&by_visit)).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(post(vital(&stranger)).await.unwrap().status(), StatusCode::FORBIDDEN);
    // The role's own limits hold too: vital signs only, demographics read-only.
    let mut lab = vital(&by_visit);
    lab["category"][0]["coding"][0]["code"] = json!("laboratory");
    let refused = post(lab).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(refused.text().await.unwrap().contains("vital signs"));
    let mut renamed = json!({"resourceType": "Patient", "id": by_gp, "name": [{"family": "Renamed"}]});
    renamed["generalPractitioner"] = json!([{"reference": me}]);
    let update = nurse
        .put(app.url(&format!("Patient/{by_gp}")))
        .header("content-type", "application/fhir+json")
        .body(renamed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), StatusCode::FORBIDDEN);
    // A PATCH cannot move an observation to a patient outside the nurse's care.
    let moved = json!([{"op": "replace", "path": "/subject/reference", "value": format!("Patient/{stranger}")}]);
    let patched = nurse
        .patch(app.url(&format!("Observation/{mine_observed}")))
        .header("content-type", "application/json-patch+json")
        .body(moved.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::FORBIDDEN);
    let stored: Value = app.get(&format!("Observation?subject=Patient/{stranger}")).await.json().await.unwrap();
    assert_eq!(ids(&stored, "Observation"), vec![theirs_observed.clone()]);

    // Breaking the glass opens one request, and is audited as such.
    let opened = nurse
        .get(app.url(&format!("Patient/{stranger}")))
        .header("X-Break-Glass-Reason", "patient collapsed in the waiting room")
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    assert_eq!(get(&nurse, &app, &format!("Patient/{stranger}")).await.status(), StatusCode::FORBIDDEN);
    let audit: Value =
        app.get(&format!("AuditEvent?patient=Patient/{stranger}&_count=100")).await.json().await.unwrap();
    assert!(audit.to_string().contains("patient collapsed in the waiting room"), "{audit}");

    // A physician's role is not limited to assigned patients.
    let (physician, _) = staff_client(&app, "doc1", "physician", SCOPE).await;
    assert_eq!(get(&physician, &app, &format!("Patient/{stranger}")).await.status(), StatusCode::OK);

    // A new care relationship takes effect within seconds.
    app.create(&json!({"resourceType": "CareTeam", "subject": {"reference": format!("Patient/{stranger}")},
        "participant": [{"member": {"reference": me}}]}))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(5500)).await;
    assert_eq!(get(&nurse, &app, &format!("Patient/{stranger}")).await.status(), StatusCode::OK);
}

crate::on_both_backends!(nurses_reach_only_the_patients_in_their_care);
