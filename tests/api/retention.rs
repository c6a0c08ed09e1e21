//! Record retention (issue: safeguards, "Retention"): `Patient/[id]/$retention` applies the
//! configured rule (adults: 10 years after the last treatment; minors: the later of age 20 and
//! that) from the birth date and the latest Encounter; `kiln retention report` lists records past
//! their period; deleting a patient destroys nothing (every version stays readable).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, kiln_cli};

fn param<'a>(parameters: &'a Value, name: &str) -> &'a Value {
    let found = parameters["parameter"].as_array().unwrap().iter().find(|p| p["name"] == name);
    found.unwrap_or_else(|| panic!("no {name} in {parameters}"))
}

async fn encounter(app: &TestApp, patient: &str, start: &str, end: &str) {
    app.create(&json!({"resourceType": "Encounter", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": format!("Patient/{patient}")},
        "period": {"start": start, "end": end}}))
        .await;
}

async fn retention_follows_the_rule_and_nothing_is_destroyed(app: TestApp) {
    let adult =
        app.create(&json!({"resourceType": "Patient", "name": [{"family": "Adult"}], "birthDate": "1970-03-04"})).await;
    encounter(&app, &adult, "2012-01-10T09:00:00Z", "2012-01-10T10:00:00Z").await;
    encounter(&app, &adult, "2015-02-28T09:00:00Z", "2015-03-01T10:00:00Z").await;
    encounter(&app, &adult, "2013-06-01T09:00:00Z", "2013-06-01T10:00:00Z").await;
    let child =
        app.create(&json!({"resourceType": "Patient", "name": [{"family": "Child"}], "birthDate": "2019-05-10"})).await;
    encounter(&app, &child, "2021-01-01T09:00:00Z", "2021-01-01T10:00:00Z").await;
    let untreated = app.create(&json!({"resourceType": "Patient", "name": [{"family": "New"}]})).await;

    let adult_kept: Value = app.get(&format!("Patient/{adult}/$retention")).await.json().await.unwrap();
    assert_eq!(param(&adult_kept, "lastTreatment")["valueDate"], "2015-03-01", "the latest Encounter: {adult_kept}");
    assert_eq!(param(&adult_kept, "retainUntil")["valueDate"], "2025-03-01");
    assert_eq!(param(&adult_kept, "minorAtLastTreatment")["valueBoolean"], false);
    assert_eq!(param(&adult_kept, "periodEnded")["valueBoolean"], true);
    assert_eq!(param(&adult_kept, "basis")["valueCode"], "encounter");

    let child_kept: Value = app.get(&format!("Patient/{child}/$retention")).await.json().await.unwrap();
    assert_eq!(param(&child_kept, "retainUntil")["valueDate"], "2039-05-10", "until age 20: {child_kept}");
    assert_eq!(param(&child_kept, "minorAtLastTreatment")["valueBoolean"], true);
    assert_eq!(param(&child_kept, "periodEnded")["valueBoolean"], false);

    let new_kept: Value = app.get(&format!("Patient/{untreated}/$retention")).await.json().await.unwrap();
    assert_eq!(param(&new_kept, "basis")["valueCode"], "record-change");
    let today = chrono::Utc::now().date_naive();
    assert_eq!(param(&new_kept, "lastTreatment")["valueDate"], today.to_string());
    assert!(new_kept["parameter"].as_array().unwrap().iter().all(|p| p["name"] != "minorAtLastTreatment"));

    // Only Patients have one; unknown patients are 404.
    assert_eq!(app.get("Observation/x/$retention").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get("Patient/nobody/$retention").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("Patient/{adult}/$retention?rule=other")).await.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.anonymous.get(app.url(&format!("Patient/{adult}/$retention"))).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let statement: Value = app.get("metadata").await.json().await.unwrap();
    let patient = statement["rest"][0]["resource"].as_array().unwrap().iter().find(|r| r["type"] == "Patient").unwrap();
    assert!(patient["operation"].as_array().unwrap().iter().any(|o| o["name"] == "retention"));

    // The report lists what is past its period before the given day, and nothing else.
    let output = kiln_cli(&app, &["retention", "report", "--due-before", "2030-01-01"], &[]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(report.contains(&format!("Patient/{adult}\tretain until 2025-03-01")), "{report}");
    assert!(!report.contains(&child) && !report.contains(&untreated), "{report}");
    assert!(report.contains("1 patient records"), "{report}");
    let later =
        String::from_utf8(kiln_cli(&app, &["retention", "report", "--due-before", "2040-01-01"], &[]).stdout).unwrap();
    assert!(
        later.contains(&format!("Patient/{child}\tretain until 2039-05-10")) && later.contains("minor then"),
        "{later}"
    );

    // Deleting a patient within its period (with its encounters) destroys nothing: every version
    // stays readable.
    assert_eq!(
        app.client.delete(app.url(&format!("Patient/{child}?_cascade=delete"))).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&format!("Patient/{child}")).await.status(), StatusCode::GONE);
    let first = app.get(&format!("Patient/{child}/_history/1")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let history: Value = app.get(&format!("Patient/{child}/_history")).await.json().await.unwrap();
    assert_eq!(history["entry"].as_array().unwrap().len(), 2, "{history}");
    assert_eq!(history["entry"][1]["resource"]["birthDate"], "2019-05-10");
}

async fn another_jurisdiction_sets_its_own_rule(app: TestApp) {
    let adult = app.create(&json!({"resourceType": "Patient", "birthDate": "1970-03-04"})).await;
    encounter(&app, &adult, "2015-02-28T09:00:00Z", "2015-03-01T10:00:00Z").await;
    let kept: Value = app.get(&format!("Patient/{adult}/$retention")).await.json().await.unwrap();
    assert_eq!(param(&kept, "retainUntil")["valueDate"], "2022-03-01", "{kept}");
    assert!(param(&kept, "rule")["valueString"].as_str().unwrap().contains("7 years"));
}

crate::on_both_backends!(retention_follows_the_rule_and_nothing_is_destroyed);

mod configured {
    use crate::helpers::{Backend, TestApp};

    async fn start(backend: Backend) -> Option<TestApp> {
        TestApp::start_with(backend, |s| s.retention_years_after_last_treatment = 7, |a| a).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::another_jurisdiction_sets_its_own_rule(start(Backend::Sqlite).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = start(Backend::Postgres).await {
            super::another_jurisdiction_sets_its_own_rule(app).await;
        }
    }
}
