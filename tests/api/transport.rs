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

/// `kiln serve` with TLS, in its own process (the binary under test, configured as an operator
/// would), on a SQLite database in `dir`.
struct TlsServer {
    child: std::process::Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kiln_serve(dir: &std::path::Path, env: &[(&str, String)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .arg("serve")
        .env("KILN_DATABASE_URL", format!("sqlite://{}/kiln.db", dir.display()))
        .env("KILN_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn tls_client(max: reqwest::tls::Version, trusted: &[u8]) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_rustls()
        .add_root_certificate(reqwest::Certificate::from_pem(trusted).unwrap())
        .tls_version_max(max)
        .https_only(true)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kiln_serve_terminates_tls_1_2_and_1_3_only_with_hsts() {
    kiln::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (cert_file, key_file) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    std::fs::write(&cert_file, certified.cert.pem()).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let port = crate::helpers::free_port();
    let tls_env = vec![
        ("KILN_LISTEN", format!("127.0.0.1:{port}")),
        ("KILN_TLS_CERT_FILE", cert_file.display().to_string()),
        ("KILN_TLS_KEY_FILE", key_file.display().to_string()),
    ];
    let server = TlsServer { child: kiln_serve(dir.path(), &tls_env).spawn().unwrap(), port };
    let base = format!("https://127.0.0.1:{}", server.port);
    let modern = tls_client(reqwest::tls::Version::TLS_1_3, certified.cert.pem().as_bytes()).await;
    let mut healthy = false;
    for _ in 0..200 {
        if modern.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(healthy, "kiln serve did not answer over TLS");

    // TLS 1.3 and TLS 1.2 both work; the FHIR base is https, and HSTS is sent.
    let metadata = modern.get(format!("{base}/fhir/metadata")).send().await.unwrap();
    assert_eq!(metadata.status(), StatusCode::OK);
    assert_eq!(metadata.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
    let statement: Value = metadata.json().await.unwrap();
    assert_eq!(statement["implementation"]["url"], format!("{base}/fhir"), "{statement}");
    let tls12 = reqwest::Client::builder()
        .tls_backend_rustls()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap())
        .tls_version_min(reqwest::tls::Version::TLS_1_2)
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(tls12.get(format!("{base}/health")).send().await.unwrap().status(), StatusCode::OK);
    // The FHIR API still wants a token over TLS.
    let refused = modern.get(format!("{base}/fhir/Patient")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // A client that does not trust the certificate gets no answer, nor does plain HTTP; a
    // client that stalls its handshake holds up no one else.
    let untrusted = reqwest::Client::builder().tls_backend_rustls().build().unwrap();
    assert!(untrusted.get(format!("{base}/health")).send().await.is_err());
    let plain = reqwest::Client::new().get(format!("http://127.0.0.1:{}/health", server.port)).send().await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let _stalled = tokio::net::TcpStream::connect(("127.0.0.1", server.port)).await.unwrap();
    assert_eq!(modern.get(format!("{base}/health")).send().await.unwrap().status(), StatusCode::OK);

    // Misconfiguration stops the server at start, saying why.
    let half = vec![("KILN_LISTEN", "127.0.0.1:0".to_string()), tls_env[1].clone()];
    let output = kiln_serve(dir.path(), &half).output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("go together"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wrong_key = vec![
        ("KILN_LISTEN", "127.0.0.1:0".to_string()),
        tls_env[1].clone(),
        ("KILN_TLS_KEY_FILE", cert_file.display().to_string()),
    ];
    let output = kiln_serve(dir.path(), &wrong_key).output().unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("server.crt"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
