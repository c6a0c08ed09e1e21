//! `kiln import` (the library function behind it): Bundles and NDJSON files into the database,
//! bad lines reported without stopping the good ones, dependencies in any order, and resuming
//! from the journal without loading anything twice. On both backends.

use serde_json::{Value, json};
use std::path::Path;

use crate::helpers::{TestApp, settings};
use kiln::import::{ImportOptions, ImportSummary};

async fn import(app: &TestApp, paths: &[&Path], journal: &Path) -> ImportSummary {
    let mut settings = settings(&app.database_url);
    settings.reject_dangling_references = true;
    settings.max_bundle_entries = 10_000;
    let state = kiln::app::AppState::open(settings, app.base.clone().into()).await.expect("the store opens");
    let options = ImportOptions {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        journal: journal.to_path_buf(),
        chunk: 50,
        concurrency: 2,
        progress: false,
    };
    let summary = kiln::import::run(state.clone(), options).await.expect("the import runs");
    state.store.close().await;
    summary
}

async fn total(app: &TestApp, query: &str) -> u64 {
    let body: Value = app.get(query).await.json().await.unwrap();
    body["total"].as_u64().unwrap()
}

async fn ndjson_and_bundles_load_with_bad_lines_reported(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let config =
        kiln::demo::DemoConfig { patients: 3, seed: 7, today: chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap() };
    let written = kiln::demo::load::write_files(&config, dir.path()).unwrap();
    // A hand-made file with one good line, then a broken, an invalid and a dangling one.
    let extra = dir.path().join("extra");
    std::fs::create_dir_all(&extra).unwrap();
    let good = json!({"resourceType": "Patient", "id": "extra-1", "gender": "female"});
    let invalid = json!({"resourceType": "Patient", "id": "extra-2", "gender": "robot"});
    let dangling = json!({"resourceType": "Condition", "subject": {"reference": "Patient/nowhere"},
        "code": {"text": "x"}});
    std::fs::write(extra.join("Patient.ndjson"), format!("{good}\n{{not json\n{invalid}\n\n{dangling}\n")).unwrap();
    let journal = dir.path().join("journal");

    let summary = import(&app, &[&dir.path().join("ndjson"), &extra], &journal).await;
    assert_eq!(summary.resources, written.resources + 1, "{:?}", summary.bad);
    let mut bad: Vec<(String, Option<u64>)> =
        summary.bad.iter().map(|b| (b.file.file_name().unwrap().to_string_lossy().to_string(), b.line)).collect();
    bad.sort();
    assert_eq!(
        bad,
        vec![
            ("Patient.ndjson".into(), Some(2)),
            ("Patient.ndjson".into(), Some(3)),
            ("Patient.ndjson".into(), Some(5))
        ]
    );
    let reasons: Vec<&str> = summary.bad.iter().map(|b| b.reason.as_str()).collect();
    assert!(reasons.iter().any(|r| r.contains("robot")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("Patient/nowhere")), "{reasons:?}");
    assert_eq!(total(&app, "Patient?_total=accurate").await, 3 + 1);
    // Each unit the command loaded is in the audit trail, with what it wrote.
    let events: serde_json::Value = app.get("AuditEvent?subtype=transaction&_count=100").await.json().await.unwrap();
    let imports: Vec<&serde_json::Value> = events["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|e| e["agent"][0]["who"]["display"].as_str().is_some_and(|d| d.starts_with("kiln import")))
        .collect();
    assert!(!imports.is_empty(), "{events}");
    assert!(imports.iter().any(|e| e.to_string().contains("\"Patient/")), "the patients written are named");
    let observations = total(&app, "Observation?_total=accurate").await;
    assert!(observations > 0);

    // Run again: everything is in the journal, nothing is loaded twice.
    let again = import(&app, &[&dir.path().join("ndjson"), &extra], &journal).await;
    assert_eq!((again.resources, again.skipped_files), (0, again.files));
    assert_eq!(total(&app, "Observation?_total=accurate").await, observations);

    // The same records as transaction Bundles (update-as-create: the same resources again).
    let bundles = import(&app, &[&dir.path().join("bundles")], &dir.path().join("journal2")).await;
    assert!(bundles.bad.is_empty(), "{:?}", bundles.bad);
    assert_eq!(bundles.resources, written.resources);
    assert_eq!(total(&app, "Observation?_total=accurate").await, observations);
}

async fn an_interrupted_import_resumes_where_it_stopped(app: TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("Patient.ndjson");
    let lines: Vec<String> = (0..10)
        .map(|i| json!({"resourceType": "Patient", "id": format!("p{i}"), "gender": "male"}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    // A journal as an import stopped after line 4 leaves it.
    let meta = std::fs::metadata(&file).unwrap();
    let modified = meta.modified().unwrap().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let journal = dir.path().join("journal");
    let key = file.display().to_string();
    std::fs::write(
        &journal,
        json!({"files": {key.clone(): {"size": meta.len(), "modified": modified, "done": 4, "finished": false}}})
            .to_string(),
    )
    .unwrap();
    let summary = import(&app, &[&file], &journal).await;
    assert_eq!(summary.resources, 6, "only the lines after the fourth");
    assert_eq!(app.get("Patient/p3").await.status(), reqwest::StatusCode::NOT_FOUND);
    assert_eq!(app.get("Patient/p4").await.status(), reqwest::StatusCode::OK);
    let recorded: Value = serde_json::from_slice(&std::fs::read(&journal).unwrap()).unwrap();
    assert_eq!(recorded["files"][&key]["finished"], true);
}

crate::on_both_backends!(
    ndjson_and_bundles_load_with_bad_lines_reported,
    an_interrupted_import_resumes_where_it_stopped
);
