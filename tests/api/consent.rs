//! Consent and break-the-glass (issue: safeguards, "Consent" and "Break-the-glass"): a patient's
//! deny rules withhold resources on every read path, actor by actor and type by type; a
//! clinician may break the glass with a reason, which the audit trail records.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use kiln::auth::accounts::ClientKind;

use crate::helpers::{TestApp, register_app};
use crate::smart::{
    Browser, REDIRECT, authorize_url, exchange_code, location, query_of, sign_in_and_allow, staff_client,
};

/// A signed-in clinician's token (role and FHIR user from the account) and their Practitioner.
async fn clinician(app: &TestApp, username: &str, role: &str) -> (Client, String) {
    staff_client(app, username, role, "openid fhirUser user/*.rs").await
}

async fn ids(client: &Client, url: String) -> Vec<String> {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let bundle: Value = response.json().await.unwrap();
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["resource"]["id"].as_str().map(str::to_string))
        .collect()
}

async fn a_patients_consent_withholds_records_and_the_glass_can_be_broken(app: TestApp) {
    let patient = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Private"}]})).await;
    let subject = json!({"reference": format!("Patient/{patient}")});
    let observation = app
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "HIV test"}, "subject": subject}))
        .await;
    let condition =
        app.create(&json!({"resourceType": "Condition", "code": {"text": "asthma"}, "subject": subject})).await;
    let (nurse, nurse_practitioner) = clinician(&app, "nurse", "nurse").await;
    let (doctor, _) = clinician(&app, "doc", "physician").await;
    let (front_desk, _) = clinician(&app, "desk", "receptionist").await;
    // The nurse cares for the patient (nurses reach only the patients in their care).
    app.create(&json!({"resourceType": "CareTeam", "subject": subject, "participant": [{"member": {"reference": nurse_practitioner}}]}))
        .await;

    // The patient keeps their observations from this nurse.
    let consent = app
        .create(&json!({"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": subject,
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
            "provision": {"type": "permit", "provision": [{"type": "deny",
                "actor": [{"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
                           "reference": {"reference": nurse_practitioner}}],
                "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}]}]}}))
        .await;

    let url = |path: &str| app.url(path);
    let read = nurse.get(url(&format!("Observation/{observation}"))).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::FORBIDDEN);
    assert_eq!(read.headers()["x-consent-decision"], "deny");
    let outcome: Value = read.json().await.unwrap();
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("consent"), "{outcome}");
    for path in [
        format!("Observation?subject=Patient/{patient}"),
        format!("Patient?_id={patient}&_revinclude=Observation:subject"),
        format!("Patient/{patient}/$everything"),
        format!("Patient/{patient}/Observation"),
        "Observation/_history".to_string(),
    ] {
        let seen = ids(&nurse, url(&path)).await;
        assert!(!seen.contains(&observation), "{path} showed the withheld observation: {seen:?}");
    }
    let everything = ids(&nurse, url(&format!("Patient/{patient}/$everything"))).await;
    assert!(everything.contains(&condition) && everything.contains(&patient), "the rest of the record: {everything:?}");
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": format!("Observation/{observation}")}}]});
    let answer: Value = nurse
        .post(url(""))
        .header("content-type", "application/fhir+json")
        .body(batch.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer["entry"][0].get("resource").is_none(), "a Bundle withholds it too: {answer}");
    assert_eq!(nurse.get(url(&format!("Condition/{condition}"))).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(doctor.get(url(&format!("Observation/{observation}"))).send().await.unwrap().status(), StatusCode::OK);

    // Breaking the glass: allowed to a nurse with a reason, recorded; refused to a receptionist.
    let urgent = nurse
        .get(url(&format!("Observation/{observation}")))
        .header("x-break-glass-reason", "unconscious patient in the emergency room")
        .send()
        .await
        .unwrap();
    assert_eq!(urgent.status(), StatusCode::OK);
    let refused = front_desk
        .get(url(&format!("Patient/{patient}")))
        .header("x-break-glass-reason", "curious")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let events: Value =
        app.get(&format!("AuditEvent?entity=Observation/{observation}&_count=50")).await.json().await.unwrap();
    let broken: Vec<&Value> = events["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .filter(|e| e["purposeOfEvent"][0]["coding"][0]["code"] == "BTG")
        .collect();
    assert_eq!(broken.len(), 1, "{events}");
    assert_eq!(broken[0]["purposeOfEvent"][0]["text"], "unconscious patient in the emergency room");
    assert_eq!(broken[0]["agent"][0]["who"]["reference"], nurse_practitioner);
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let report =
        crate::helpers::kiln_cli(&app, &["audit", "report", "--from", &day, "--to", &day, "--break-glass"], &[]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("unconscious patient in the emergency room") && text.contains("events: 1 "), "{text}");

    // The glass broken for a whole authorization: the purpose of use and the reason go in the
    // authorization request; every request of its token breaks the glass and says why, and the
    // token is not renewed (no refresh token, though offline_access was asked for).
    let scope = "openid fhirUser offline_access user/*.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let with_purpose = |purpose: &[(&str, &str)]| {
        let extra = form_urlencoded::Serializer::new(String::new()).extend_pairs(purpose).finish();
        format!("{}&{extra}", authorize_url(&app, &client_id, scope, &app.base))
    };
    let reason = "cardiac arrest, no history available";
    let emergency = with_purpose(&[("purpose_of_use", "BTG"), ("break_glass_reason", reason)]);
    let back = sign_in_and_allow(&mut Browser::new(&app), &emergency, "nurse").await;
    let token = exchange_code(&app, &back, &client_id).await;
    assert!(token.get("refresh_token").is_none(), "{token}");
    let emergency_client = crate::helpers::authorized_client(token["access_token"].as_str().unwrap());
    let read = emergency_client.get(url(&format!("Observation/{observation}"))).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let events: Value =
        app.get(&format!("AuditEvent?entity=Observation/{observation}&_count=50")).await.json().await.unwrap();
    assert!(
        events["entry"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["resource"]["purposeOfEvent"][0]["coding"][0]["code"] == "BTG"
                && e["resource"]["purposeOfEvent"][0]["text"] == reason),
        "{events}"
    );
    // A role that may not break the glass is refused at the consent step; BTG needs a reason,
    // and a reason needs BTG.
    let refused = sign_in_and_allow(&mut Browser::new(&app), &emergency, "desk").await;
    assert_eq!(query_of(&refused)["error"], "access_denied", "{refused}");
    for purpose in [vec![("purpose_of_use", "BTG")], vec![("purpose_of_use", "TREAT"), ("break_glass_reason", "x")]] {
        let answer = Browser::new(&app).get(&with_purpose(&purpose)).await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        assert_eq!(query_of(&location(&answer))["error"], "invalid_request", "{purpose:?}");
    }
    // Another stated purpose is recorded as the purpose of the event.
    let treating = with_purpose(&[("purpose_of_use", "TREAT")]);
    let back = sign_in_and_allow(&mut Browser::new(&app), &treating, "doc").await;
    let token = exchange_code(&app, &back, &client_id).await;
    let treating_client = crate::helpers::authorized_client(token["access_token"].as_str().unwrap());
    let read = treating_client.get(url(&format!("Condition/{condition}"))).send().await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    let events: Value =
        app.get(&format!("AuditEvent?entity=Condition/{condition}&_count=50")).await.json().await.unwrap();
    assert!(events.to_string().contains("\"code\":\"TREAT\""), "{events}");

    // Withdrawn, the consent no longer withholds anything.
    let mut withdrawn: Value = app.get(&format!("Consent/{consent}")).await.json().await.unwrap();
    withdrawn["status"] = json!("inactive");
    assert_eq!(app.put(&format!("Consent/{consent}"), &withdrawn).await.status(), StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(nurse.get(url(&format!("Observation/{observation}"))).send().await.unwrap().status(), StatusCode::OK);
}

crate::on_both_backends!(a_patients_consent_withholds_records_and_the_glass_can_be_broken);
