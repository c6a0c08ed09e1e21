//! The CapabilityStatement (FHIR R4 http.html#capabilities) matches what the server does.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

async fn metadata_describes_every_supported_type(app: TestApp) {
    let response = app.get("metadata").await;
    assert_eq!(response.status(), StatusCode::OK);
    let statement: Value = response.json().await.unwrap();
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    assert_eq!(statement["fhirVersion"], "4.0.1");
    assert_eq!(statement["kind"], "instance");
    let resources = statement["rest"][0]["resource"].as_array().unwrap();
    for required in ["Patient", "Observation", "Encounter", "AuditEvent", "Binary", "Group", "Endpoint"] {
        let entry = resources.iter().find(|r| r["type"] == required).unwrap_or_else(|| panic!("{required} missing"));
        assert_eq!(entry["versioning"], "versioned");
        let interactions: Vec<&str> =
            entry["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
        for code in
            ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"]
        {
            assert!(interactions.contains(&code), "{required} lacks {code}");
        }
        assert_eq!(entry["conditionalCreate"], true);
        assert_eq!(entry["conditionalUpdate"], true);
        assert_eq!(entry["conditionalDelete"], "multiple");
        let operations: Vec<&str> =
            entry["operation"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        for name in ["validate", "meta", "meta-add", "meta-delete"] {
            assert!(operations.contains(&name), "{required} lacks ${name}");
        }
        assert_eq!(operations.contains(&"everything"), required == "Patient");
    }
    let system: Vec<&str> =
        statement["rest"][0]["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
    assert!(system.contains(&"transaction") && system.contains(&"batch"), "{system:?}");
    // Every advertised type is really served: reading an unknown id is a 404 for the id, not the type.
    for entry in resources {
        let t = entry["type"].as_str().unwrap();
        let body: Value = app.get(&format!("{t}/no-such-id")).await.json().await.unwrap();
        assert_eq!(body["issue"][0]["code"], "not-found", "{t}");
    }
}

crate::on_both_backends!(metadata_describes_every_supported_type);
