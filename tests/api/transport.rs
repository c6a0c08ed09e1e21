//! Transport safeguards (issue: safeguards, "Rate limiting" and "Transport"): rate limits per
//! address, per app, per user (a caller over its limit gets 429 with Retry-After and an
//! OperationOutcome, others are not affected), and the security headers of every response.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, authorized_client, system_token};

async fn statuses(client: &reqwest::Client, url: &str, n: usize) -> Vec<reqwest::Response> {
    let mut responses = Vec::new();
    for _ in 0..n {
        responses.push(client.get(url).send().await.unwrap());
    }
    responses
}

async fn an_address_over_its_limit_is_told_to_wait(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.rate_limit_ip_per_sec = 5, |a| a).await else { return };
    // A burst of twice the rate passes; the rest of a quick series is refused.
    let responses = statuses(&app.client, &app.url("metadata"), 30).await;
    let refused: Vec<&reqwest::Response> =
        responses.iter().filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).collect();
    // (Starting the test app took a token from the same address.)
    assert!(!refused.is_empty() && refused.len() <= 22, "{} refused", refused.len());
    assert!(responses[..8].iter().all(|r| r.status() == StatusCode::OK), "the burst passes");
    let retry_after: u64 = refused[0].headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after));
    let last = responses.into_iter().last().unwrap();
    assert_eq!(last.status(), StatusCode::TOO_MANY_REQUESTS);
    let outcome: Value = last.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "throttled");
    // The sign-in and token endpoints count against the address too.
    let token = app.anonymous.post(format!("{}/auth/token", app.root)).send().await.unwrap();
    assert_eq!(token.status(), StatusCode::TOO_MANY_REQUESTS);
    // After waiting, the address may ask again.
    tokio::time::sleep(std::time::Duration::from_millis(1100 * retry_after)).await;
    assert_eq!(app.get("metadata").await.status(), StatusCode::OK);
}

async fn one_app_over_its_limit_does_not_slow_another(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.rate_limit_client_per_sec = 3, |a| a).await else { return };
    let other = authorized_client(&system_token(&app.state, &app.root).await);
    let patient = app.create(&serde_json::json!({"resourceType": "Patient"})).await;
    let url = app.url(&format!("Patient/{patient}"));
    let busy = statuses(&app.client, &url, 12).await;
    assert!(busy.iter().any(|r| r.status() == StatusCode::TOO_MANY_REQUESTS), "the busy app is limited");
    let calm = statuses(&other, &url, 4).await;
    assert!(calm.iter().all(|r| r.status() == StatusCode::OK), "the other app is not");
    // Refusals are in the audit trail: nothing was disclosed, and they say why.
    let events: Value =
        other.get(app.url("AuditEvent?outcome=4&_count=50")).send().await.unwrap().json().await.unwrap();
    assert!(events.to_string().contains("HTTP 429"), "{events}");
}

async fn responses_carry_the_security_headers(app: TestApp) {
    let patient = app.create(&serde_json::json!({"resourceType": "Patient"})).await;
    let read = app.get(&format!("Patient/{patient}")).await;
    assert_eq!(read.headers()["x-content-type-options"], "nosniff");
    assert_eq!(read.headers()["cache-control"], "no-store", "health data is not cached");
    assert_eq!(read.headers()["referrer-policy"], "no-referrer");
    let missing = app.get("Patient/none").await;
    assert_eq!(missing.headers()["cache-control"], "no-store");
    let metadata = app.get("metadata").await;
    assert!(metadata.headers().get("cache-control").is_none(), "the CapabilityStatement may be cached");
    assert_eq!(metadata.headers()["x-content-type-options"], "nosniff");
    let login = app.anonymous.get(format!("{}/auth/login", app.root)).send().await.unwrap();
    assert!(login.headers()["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(login.headers()["x-frame-options"], "DENY");
    assert!(read.headers().get("strict-transport-security").is_none(), "HSTS only over HTTPS");
}

crate::on_both_backends!(responses_carry_the_security_headers);

mod limits {
    use super::*;
    crate::on_both_backend_kinds!(
        an_address_over_its_limit_is_told_to_wait,
        one_app_over_its_limit_does_not_slow_another
    );
}
