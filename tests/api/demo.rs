//! `kiln demo-data`: the generated records are accepted by the server (validation and business
//! rules) and loaded completely, and the files are written as documented.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp};
use kiln::demo::{DemoConfig, load};

fn config(patients: u32) -> DemoConfig {
    DemoConfig { patients, seed: 11, today: chrono::Utc::now().date_naive() }
}

async fn demo_records_load_completely(backend: Backend) {
    // A patient's record is one transaction Bundle of ~100 resources: more than the test
    // server's small default limits.
    let bulk = |s: &mut kiln::config::Settings| {
        s.max_body_bytes = 16 * 1024 * 1024;
        s.max_bundle_entries = 10_000;
    };
    let Some(app) = TestApp::start_with(backend, bulk, |app| app).await else { return };
    let summary =
        load::load_into(&config(4), &app.base, 4, Some(&app.token)).await.expect("every demo resource is accepted");
    let expected: usize = kiln::demo::shared_resources(&config(4)).len()
        + (0..4).map(|i| kiln::demo::patient_record(&config(4), i).len()).sum::<usize>();
    assert_eq!(summary.resources as usize, expected);
    let patients: Value = app.get("Patient?_summary=count").await.json().await.unwrap();
    assert_eq!(patients["total"], 4);
    let observations: Value = app.get("Patient/pat-000000/Observation?_summary=count").await.json().await.unwrap();
    assert!(observations["total"].as_u64().unwrap() > 10, "{observations}");
    // Loading again changes nothing but versions: update-as-create with the same ids.
    load::load_into(&config(4), &app.base, 4, Some(&app.token)).await.unwrap();
    let again: Value = app.get("Patient?_summary=count").await.json().await.unwrap();
    assert_eq!(again["total"], 4);
    assert_eq!(app.get("Patient/pat-000000/_history/2").await.status(), StatusCode::OK);
}

#[test]
fn demo_files_are_bundles_and_ndjson() {
    let dir = tempfile::tempdir().unwrap();
    let summary = load::write_files(&config(3), dir.path()).unwrap();
    let bundle: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("bundles/patient-000002.json")).unwrap()).unwrap();
    assert_eq!(bundle["type"], "transaction");
    assert_eq!(bundle["entry"][0]["request"]["method"], "PUT");
    let lines: usize = std::fs::read_dir(dir.path().join("ndjson"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap().lines().count())
        .sum();
    assert_eq!(lines as u64, summary.resources);
    let again = tempfile::tempdir().unwrap();
    load::write_files(&config(3), again.path()).unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("ndjson/Observation.ndjson")).unwrap(),
        std::fs::read(again.path().join("ndjson/Observation.ndjson")).unwrap(),
        "the same seed gives the same records"
    );
}

crate::on_both_backend_kinds!(demo_records_load_completely);
