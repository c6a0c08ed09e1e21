//! Bounds on what one search page may cost (search.html#include): what `_include` /
//! `_revinclude` add past `max_include_results` is cut, and the page says so in an
//! OperationOutcome entry (`search.mode = outcome`).

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

async fn includes_past_the_bound_are_cut_and_the_page_says_so(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.max_include_results = 2, |a| a).await else { return };
    let reading = |patient: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
               "subject": {"reference": format!("Patient/{patient}")}})
    };
    let busy = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Busy"}]})).await;
    for _ in 0..3 {
        app.create(&reading(&busy)).await;
    }
    let quiet = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Quiet"}]})).await;
    app.create(&reading(&quiet)).await;
    let modes = |bundle: &Value| -> Vec<String> {
        bundle["entry"].as_array().unwrap().iter().map(|e| e["search"]["mode"].as_str().unwrap().to_string()).collect()
    };
    let cut: Value =
        app.get(&format!("Patient?_id={busy}&_revinclude=Observation:subject")).await.json().await.unwrap();
    assert_eq!(modes(&cut), ["match", "include", "include", "outcome"], "{cut}");
    let notice = &cut["entry"][3]["resource"];
    assert_eq!(notice["resourceType"], "OperationOutcome");
    assert_eq!(notice["issue"][0]["severity"], "warning");
    assert_eq!(notice["issue"][0]["code"], "too-costly");
    assert!(notice["issue"][0]["diagnostics"].as_str().unwrap().contains("cut at 2"), "{notice}");
    // Under the bound, nothing is cut and nothing is said.
    let whole: Value =
        app.get(&format!("Patient?_id={quiet}&_revinclude=Observation:subject")).await.json().await.unwrap();
    assert_eq!(modes(&whole), ["match", "include"], "{whole}");
    app.stop().await;
}

crate::on_both_backend_kinds!(includes_past_the_bound_are_cut_and_the_page_says_so);
