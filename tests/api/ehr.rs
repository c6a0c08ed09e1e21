//! EHR linking, first part (issue: EHR linking, items 1, 2 and 7 in part): a remote EHR (a
//! second, real Kiln server process with its own database and its own SMART authorization
//! server) is registered as an Endpoint with a sealed credential; `kiln ehr test` reads its
//! CapabilityStatement and SMART configuration, gets a token by SMART Backend Services (an
//! ES384-signed assertion through the oauth2 crate) and searches with it. Wrong keys and
//! unreachable remotes are reported, not hidden.

use p384::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};
use std::process::{Command, Stdio};

use crate::helpers::{TestApp, free_port, kiln_cli};

/// The remote EHR: `kiln serve` on its own SQLite database.
struct RemoteKiln {
    child: std::process::Child,
    base: String,
    database_url: String,
    dir: tempfile::TempDir,
}

impl Drop for RemoteKiln {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RemoteKiln {
    async fn start() -> RemoteKiln {
        RemoteKiln::start_with_tls(None).await
    }

    /// `tls`: the certificate and private key (PEM) to serve HTTPS with.
    async fn start_with_tls(tls: Option<(&str, &str)>) -> RemoteKiln {
        let dir = tempfile::tempdir().unwrap();
        let database_url = format!("sqlite://{}/remote.db", dir.path().display());
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command
            .arg("serve")
            .env("KILN_DATABASE_URL", &database_url)
            .env("KILN_LISTEN", format!("127.0.0.1:{port}"))
            .env("KILN_LOG", "warn")
            // The remote lets backend services in with a client secret, as many EHRs do.
            .env("KILN_CLIENT_CREDENTIALS_WITH_SECRET", "true")
            .stdin(Stdio::null());
        let mut health = reqwest::Client::builder();
        let scheme = match tls {
            Some((certificate, key)) => {
                let (certificate_file, key_file) = (dir.path().join("remote.crt"), dir.path().join("remote.key"));
                std::fs::write(&certificate_file, certificate).unwrap();
                std::fs::write(&key_file, key).unwrap();
                command.env("KILN_TLS_CERT_FILE", &certificate_file).env("KILN_TLS_KEY_FILE", &key_file);
                health = health.add_root_certificate(reqwest::Certificate::from_pem(certificate.as_bytes()).unwrap());
                "https"
            }
            None => "http",
        };
        let health = health.build().unwrap();
        let child = command.spawn().expect("the remote starts");
        let remote = RemoteKiln { child, base: format!("{scheme}://127.0.0.1:{port}/fhir"), database_url, dir };
        for _ in 0..200 {
            let answer = health.get(format!("{scheme}://127.0.0.1:{port}/health")).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return remote;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the remote did not become healthy");
    }

    fn kiln(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .env("KILN_DATABASE_URL", &self.database_url)
            .env("KILN_LOG", "warn")
            .output()
            .unwrap();
        assert!(output.status.success(), "remote kiln {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }

    /// Registers Kiln (the local server) as a backend-services client with this public key.
    fn register_backend(&self, jwks: &Value) -> String {
        let file = self.dir.path().join(format!("jwks-{}.json", uuid::Uuid::new_v4()));
        std::fs::write(&file, jwks.to_string()).unwrap();
        let printed = self.kiln(&[
            "client",
            "register",
            "--name",
            "the local clinic",
            "--kind",
            "confidential-asymmetric",
            "--scope",
            "system/*.cruds",
            "--jwks-file",
            file.to_str().unwrap(),
            "--shell",
        ]);
        let line = printed.lines().find(|l| l.starts_with("KILN_CLIENT_ID=")).expect("a client id");
        line.trim_start_matches("KILN_CLIENT_ID=").trim_matches('\'').to_string()
    }
}

/// A P-384 key pair: the private key as PKCS#8 PEM, the public one as a JWK Set.
fn es384_key_pair(kid: &str) -> (String, Value) {
    use base64::Engine;
    let key = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let point = key.verifying_key().to_encoded_point(false);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": kid, "alg": "ES384", "use": "sig",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())});
    (key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(), json!({"keys": [jwk]}))
}

fn add_remote(
    app: &TestApp,
    dir: &std::path::Path,
    base: &str,
    client_id: &str,
    private_pem: &str,
    scope: &str,
) -> std::process::Output {
    let key_file = dir.join(format!("{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key_file, private_pem).unwrap();
    kiln_cli(
        app,
        &[
            "ehr",
            "add",
            "--name",
            "County Hospital",
            "--address",
            base,
            "--auth",
            "backend-services",
            "--client-id",
            client_id,
            "--private-key-file",
            key_file.to_str().unwrap(),
            "--algorithm",
            "ES384",
            "--key-id",
            "kiln-1",
            "--scope",
            scope,
        ],
        &[],
    )
}

async fn a_remote_ehr_is_registered_and_tested_end_to_end(app: TestApp) {
    let remote = RemoteKiln::start().await;
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "name": [{"family": "Remote"}]}, "request": {"method": "POST", "url": "Patient"}}]});
    let bundle_file = remote.dir.path().join("bundle.json");
    std::fs::write(&bundle_file, bundle.to_string()).unwrap();
    remote.kiln(&[
        "import",
        "--quiet",
        "--journal",
        remote.dir.path().join("j").to_str().unwrap(),
        bundle_file.to_str().unwrap(),
    ]);

    let (private_pem, jwks) = es384_key_pair("kiln-1");
    let client_id = remote.register_backend(&jwks);
    let work = tempfile::tempdir().unwrap();
    let added = add_remote(&app, work.path(), &remote.base, &client_id, &private_pem, "system/*.rs");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let endpoint_id = String::from_utf8(added.stdout).unwrap().trim().to_string();

    // The remote is an Endpoint of the clinic, readable and searchable like any resource.
    let endpoint: Value = app.get(&format!("Endpoint/{endpoint_id}")).await.json().await.unwrap();
    assert_eq!(endpoint["address"], remote.base.as_str());
    assert_eq!(endpoint["connectionType"]["code"], "hl7-fhir-rest");
    assert!(!endpoint.to_string().contains("PRIVATE"), "the credential is not in the resource");
    let listed = String::from_utf8(kiln_cli(&app, &["ehr", "list"], &[]).stdout).unwrap();
    assert!(listed.contains(&format!("Endpoint/{endpoint_id}\tCounty Hospital\t{}", remote.base)), "{listed}");
    assert!(listed.contains(&format!("backend-services {client_id}")), "{listed}");

    // `kiln ehr test`: metadata, SMART configuration, a token by signed assertion, a search.
    let tested = kiln_cli(&app, &["ehr", "test", &endpoint_id], &[]);
    let report = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(tested.status.success(), "{report} {}", String::from_utf8_lossy(&tested.stderr));
    assert!(report.contains("metadata: FHIR 4.0.1, Kiln"), "{report}");
    assert!(report.contains("Patient search yes, $everything yes, transaction yes"), "{report}");
    assert!(report.contains("token: granted \"system/*.rs\""), "{report}");
    assert!(report.contains("search: Patient answered (1 patients)"), "{report}");

    // The private key is sealed in the local database, never in clear.
    let contents = crate::sensitive::database_contents(&app).await;
    assert!(!contents.contains("BEGIN PRIVATE KEY") && !contents.contains(&crate::sensitive::hex("BEGIN PRIVATE KEY")));

    // A key the remote does not know: the token step fails and says so.
    let (stranger_pem, _) = es384_key_pair("kiln-1");
    let wrong = add_remote(&app, work.path(), &remote.base, &client_id, &stranger_pem, "system/*.rs");
    let wrong_id = String::from_utf8(wrong.stdout).unwrap().trim().to_string();
    let tested = kiln_cli(&app, &["ehr", "test", &wrong_id], &[]);
    let report = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(!tested.status.success());
    assert!(report.contains("token: FAILED: signing in at") && report.contains("invalid_client"), "{report}");

    // A remote that is not there.
    let port = free_port();
    let nowhere = kiln_cli(
        &app,
        &["ehr", "add", "--name", "Gone", "--address", &format!("http://127.0.0.1:{port}/fhir"), "--auth", "none"],
        &[],
    );
    let nowhere_id = String::from_utf8(nowhere.stdout).unwrap().trim().to_string();
    let tested = kiln_cli(&app, &["ehr", "test", &nowhere_id], &[]);
    let report = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(!tested.status.success());
    assert!(report.contains("metadata: FAILED:") && report.contains("cannot be reached"), "{report}");

    // Bad registrations are refused before anything is stored.
    let refused = kiln_cli(&app, &["ehr", "add", "--name", "X", "--address", "ftp://x", "--auth", "none"], &[]);
    assert!(!refused.status.success());
    let key_file = work.path().join("garbage.pem");
    std::fs::write(&key_file, "not a key").unwrap();
    let refused = kiln_cli(
        &app,
        &[
            "ehr",
            "add",
            "--name",
            "X",
            "--address",
            &remote.base,
            "--client-id",
            "c",
            "--private-key-file",
            key_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a RS384 key"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let endpoints: Value = app.get("Endpoint").await.json().await.unwrap();
    assert_eq!(endpoints["total"], 3, "{endpoints}");
}

async fn register(app: &TestApp, parameters: &[Value]) -> reqwest::Response {
    app.post("Endpoint/$ehr-register", &json!({"resourceType": "Parameters", "parameter": parameters})).await
}

fn string_param(name: &str, value: &str) -> Value {
    json!({"name": name, "valueString": value})
}

/// The `$ehr-register` parameters of a remote at `base` signed in to with an ES384 key.
fn backend_parameters(base: &str, client_id: &str, private_pem: &str) -> Vec<Value> {
    vec![
        string_param("name", "County Hospital"),
        json!({"name": "address", "valueUrl": base}),
        json!({"name": "auth", "valueCode": "backend-services"}),
        string_param("clientId", client_id),
        string_param("privateKey", private_pem),
        json!({"name": "algorithm", "valueCode": "ES384"}),
        string_param("keyId", "kiln-1"),
        string_param("scope", "system/*.rs"),
    ]
}

/// `Endpoint/[id]/$ehr-test`: whether it passed, and its check lines.
async fn rest_test(app: &TestApp, endpoint: &str) -> (bool, String) {
    let response = app.get(&format!("Endpoint/{endpoint}/$ehr-test")).await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    let passed = param(&report, "passed").unwrap()["valueBoolean"].as_bool().unwrap();
    let checks: Vec<&str> = report["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "check")
        .filter_map(|p| p["valueString"].as_str())
        .collect();
    (passed, checks.join("\n"))
}

async fn remotes_are_registered_tested_and_audited_through_the_rest_api(app: TestApp) {
    let remote = RemoteKiln::start().await;
    let (private_pem, jwks) = es384_key_pair("kiln-1");
    let client_id = remote.register_backend(&jwks);
    let good = backend_parameters(&remote.base, &client_id, &private_pem);

    // Refused with 400 saying what is wrong, and nothing stored.
    let with = |name: &str, replacement: Option<Value>| {
        let mut parameters: Vec<Value> = good.iter().filter(|p| p["name"] != name).cloned().collect();
        parameters.extend(replacement);
        parameters
    };
    let refusals = [
        (with("name", None), "the parameter 'name' is required"),
        (with("colour", Some(string_param("colour", "blue"))), "unknown parameter 'colour'"),
        (with("privateKey", Some(string_param("privateKey", "not a key"))), "not a ES384 key"),
        (with("algorithm", Some(json!({"name": "algorithm", "valueCode": "HS256"}))), "use RS384 or ES384"),
        (with("address", Some(json!({"name": "address", "valueUrl": "ftp://x"}))), "http(s) FHIR base URL"),
        (with("caCertificates", Some(string_param("caCertificates", "nonsense"))), "holds no certificate"),
        (with("syncEvery", Some(json!({"name": "syncEvery", "valueInteger": 5}))), "at least 60 seconds"),
    ];
    for (parameters, says) in refusals {
        let refused = register(&app, &parameters).await;
        assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST, "{says}");
        let outcome = refused.text().await.unwrap();
        assert!(outcome.contains("OperationOutcome") && outcome.contains(says), "{says}: {outcome}");
    }
    let elsewhere = app.post("Patient/$ehr-register", &json!({"resourceType": "Parameters", "parameter": good})).await;
    assert_eq!(elsewhere.status(), reqwest::StatusCode::NOT_FOUND);
    let reader = crate::helpers::backend_client(&app, "system/Endpoint.rs system/Patient.rs").await;
    let forbidden = reader
        .post(app.url("Endpoint/$ehr-register"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Parameters", "parameter": good}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), reqwest::StatusCode::FORBIDDEN);
    let endpoints: Value = app.get("Endpoint").await.json().await.unwrap();
    assert_eq!(endpoints["total"], 0, "{endpoints}");

    // Registered: 201 with the Endpoint, which never shows the credential.
    let created = register(&app, &good).await;
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    let endpoint: Value = created.json().await.unwrap();
    let id = endpoint["id"].as_str().unwrap().to_string();
    assert!(location.ends_with(&format!("/Endpoint/{id}/_history/1")), "{location}");
    assert_eq!(endpoint["address"], remote.base.as_str());
    assert!(!endpoint.to_string().contains("PRIVATE"));
    let listed: Value = app.get("Endpoint?connection-type=hl7-fhir-rest").await.json().await.unwrap();
    assert_eq!(listed["total"], 1, "{listed}");

    // `$ehr-test`, as `kiln ehr test`. It takes no parameters: one in the URL is refused.
    let with_parameter = app.get(&format!("Endpoint/{id}/$ehr-test?verbose=true")).await;
    assert_eq!(with_parameter.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(with_parameter.text().await.unwrap().contains("'verbose'"));
    let (passed, checks) = rest_test(&app, &id).await;
    assert!(passed, "{checks}");
    assert!(checks.contains("Patient search yes") && checks.contains("token: granted \"system/*.rs\""), "{checks}");
    assert!(checks.contains("search: Patient answered (0 patients)"), "{checks}");

    // Each call made to the remote is in the audit trail: what kind, the Endpoint as the
    // destination, the URL (the query apart), the answer.
    let audit: Value = app.get(&format!("AuditEvent?entity=Endpoint/{id}&_count=50")).await.json().await.unwrap();
    let events: Vec<&Value> = audit["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).collect();
    let described =
        |text: &str| events.iter().find(|e| e["outcomeDesc"].as_str().is_some_and(|d| d.starts_with(text))).copied();
    let base = &remote.base;
    let metadata = described(&format!("GET {base}/metadata: 200 (1 attempt")).expect("metadata call audited");
    assert_eq!(metadata["subtype"][0]["code"], "capabilities");
    assert_eq!(metadata["outcome"], "0");
    let destination = metadata["agent"].as_array().unwrap().iter().find(|a| a["type"]["coding"][0]["code"] == "110152");
    assert_eq!(destination.unwrap()["who"]["reference"], format!("Endpoint/{id}"), "{metadata}");
    let discovery = described(&format!("GET {base}/.well-known/smart-configuration: 200")).expect("discovery audited");
    assert_eq!(discovery["subtype"][0]["code"], "remote-sign-in");
    let origin = base.trim_end_matches("/fhir");
    let token = described(&format!("POST {origin}/auth/token: 200")).expect("the token request audited");
    assert_eq!(token["subtype"][0]["code"], "remote-sign-in");
    let search = described(&format!("GET {base}/Patient: 200")).expect("the search audited");
    assert_eq!(search["subtype"][0]["code"], "search-type");
    assert!(search.to_string().contains("\"query\""), "the query is kept as entity.query: {search}");

    // Deleting the Endpoint retires the remote: it can no longer be used.
    assert_eq!(app.delete(&format!("Endpoint/{id}")).await.status(), reqwest::StatusCode::NO_CONTENT);
    let retired = app.get(&format!("Endpoint/{id}/$ehr-test")).await;
    assert_eq!(retired.status(), reqwest::StatusCode::NOT_FOUND);
    assert!(retired.text().await.unwrap().contains("no remote EHR is registered"));
}

async fn a_remote_with_a_private_ca_is_trusted_only_when_registered_with_it(app: TestApp) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca = certified.cert.pem();
    let remote = RemoteKiln::start_with_tls(Some((&ca, &certified.signing_key.serialize_pem()))).await;
    assert!(remote.base.starts_with("https://"));
    let (private_pem, jwks) = es384_key_pair("kiln-1");
    let client_id = remote.register_backend(&jwks);

    // Verification stays on: without the CA the remote's certificate is refused.
    let created = register(&app, &backend_parameters(&remote.base, &client_id, &private_pem)).await;
    assert_eq!(created.status(), reqwest::StatusCode::CREATED);
    let untrusted = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (passed, checks) = rest_test(&app, &untrusted).await;
    assert!(!passed);
    assert!(checks.contains("metadata: FAILED") && checks.contains("UnknownIssuer"), "{checks}");

    // Registered with its CA (here by `kiln ehr add --ca-file`): every step passes over TLS.
    let work = tempfile::tempdir().unwrap();
    let (key_file, ca_file) = (work.path().join("key.pem"), work.path().join("ca.pem"));
    std::fs::write(&key_file, &private_pem).unwrap();
    std::fs::write(&ca_file, &ca).unwrap();
    let added = kiln_cli(
        &app,
        &[
            "ehr",
            "add",
            "--name",
            "County Hospital",
            "--address",
            &remote.base,
            "--client-id",
            &client_id,
            "--private-key-file",
            key_file.to_str().unwrap(),
            "--algorithm",
            "ES384",
            "--key-id",
            "kiln-1",
            "--ca-file",
            ca_file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let trusted = String::from_utf8(added.stdout).unwrap().trim().to_string();
    let tested = kiln_cli(&app, &["ehr", "test", &trusted], &[]);
    let report = String::from_utf8_lossy(&tested.stdout).into_owned();
    assert!(tested.status.success(), "{report}");
    assert!(report.contains("token: granted") && report.contains("search: Patient answered"), "{report}");
    let (passed, checks) = rest_test(&app, &trusted).await;
    assert!(passed, "{checks}");
}

/// A remote holding `patients`, registered in `app` with a working backend-services key.
async fn registered_remote(
    app: &TestApp,
    patients: Vec<Value>,
    scope: &str,
) -> (RemoteKiln, String, tempfile::TempDir) {
    let remote = RemoteKiln::start().await;
    if !patients.is_empty() {
        let entries: Vec<Value> = patients
            .into_iter()
            .map(|p| json!({"resource": p, "request": {"method": "POST", "url": "Patient"}}))
            .collect();
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let bundle_file = remote.dir.path().join("bundle.json");
        std::fs::write(&bundle_file, bundle.to_string()).unwrap();
        let journal = remote.dir.path().join("j");
        remote.kiln(&["import", "--quiet", "--journal", journal.to_str().unwrap(), bundle_file.to_str().unwrap()]);
    }
    let (private_pem, jwks) = es384_key_pair("kiln-1");
    let client_id = remote.register_backend(&jwks);
    let work = tempfile::tempdir().unwrap();
    let added = add_remote(app, work.path(), &remote.base, &client_id, &private_pem, scope);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let endpoint_id = String::from_utf8(added.stdout).unwrap().trim().to_string();
    (remote, endpoint_id, work)
}

fn param<'a>(parameters: &'a Value, name: &str) -> Option<&'a Value> {
    parameters["parameter"].as_array()?.iter().find(|p| p["name"] == name)
}

async fn link(app: &TestApp, patient: &str, parameters: Value) -> reqwest::Response {
    app.post(&format!("Patient/{patient}/$ehr-link"), &json!({"resourceType": "Parameters", "parameter": parameters}))
        .await
}

async fn patients_are_linked_only_to_an_unambiguous_remote_match(app: TestApp) {
    let person = |family: &str, given: &str, born: &str, gender: &str| json!({"resourceType": "Patient", "name": [{"family": family, "given": [given]}], "birthDate": born, "gender": gender});
    let mut remote_alpha = person("Alpha", "Ann", "1980-01-01", "female");
    remote_alpha["identifier"] = json!([{"system": "urn:county:mrn", "value": "C-100"}]);
    let twin = person("Twin", "Tom", "1990-02-02", "male");
    let (remote, endpoint, _work) = registered_remote(
        &app,
        vec![remote_alpha, twin.clone(), twin, person("Alpha", "Bea", "1980-01-01", "female")],
        "system/*.rs",
    )
    .await;
    let endpoint_param = json!({"name": "endpoint", "valueReference": {"reference": format!("Endpoint/{endpoint}")}});

    // Demographics: Ann Alpha matches one remote record (Bea Alpha is ruled out by her name).
    let ann = app.create(&person("Alpha", "Ann", "1980-01-01", "female")).await;
    let linked = link(&app, &ann, json!([endpoint_param])).await;
    assert_eq!(linked.status(), reqwest::StatusCode::OK);
    let answer: Value = linked.json().await.unwrap();
    assert_eq!(param(&answer, "outcome").unwrap()["valueCode"], "linked", "{answer}");
    let remote_reference =
        param(&answer, "linked").unwrap()["valueReference"]["reference"].as_str().unwrap().to_string();
    assert!(remote_reference.starts_with(&format!("{}/Patient/", remote.base)), "{remote_reference}");
    let remote_id = remote_reference.rsplit('/').next().unwrap().to_string();
    let stored: Value = app.get(&format!("Patient/{ann}")).await.json().await.unwrap();
    assert_eq!(stored["meta"]["versionId"], "2");
    assert_eq!(stored["link"][0]["other"]["reference"], remote_reference.as_str());
    assert_eq!(stored["link"][0]["type"], "seealso");
    let by_remote =
        stored["identifier"].as_array().unwrap().iter().find(|i| i["system"] == format!("{}/Patient", remote.base));
    assert_eq!(by_remote.unwrap()["value"], remote_id.as_str());
    // The remote identity is searchable locally.
    let found: Value =
        app.get(&format!("Patient?identifier={}/Patient|{remote_id}", remote.base)).await.json().await.unwrap();
    assert_eq!(found["total"], 1);

    // Again: already linked, no new version.
    let again: Value = link(&app, &ann, json!([endpoint_param])).await.json().await.unwrap();
    assert_eq!(param(&again, "outcome").unwrap()["valueCode"], "already-linked");
    let stored: Value = app.get(&format!("Patient/{ann}")).await.json().await.unwrap();
    assert_eq!(stored["meta"]["versionId"], "2");

    // Two equally good candidates: the candidates are answered and nothing is linked.
    let tom = app.create(&person("Twin", "Tom", "1990-02-02", "male")).await;
    let ambiguous: Value = link(&app, &tom, json!([endpoint_param])).await.json().await.unwrap();
    assert_eq!(param(&ambiguous, "outcome").unwrap()["valueCode"], "ambiguous", "{ambiguous}");
    let candidates = ambiguous["parameter"].as_array().unwrap().iter().filter(|p| p["name"] == "candidate").count();
    assert_eq!(candidates, 2);
    let stored: Value = app.get(&format!("Patient/{tom}")).await.json().await.unwrap();
    assert!(stored.get("link").is_none() && stored["meta"]["versionId"] == "1");

    // Nobody there.
    let zed = app.create(&person("Zed", "Zoe", "2000-01-01", "female")).await;
    let none: Value = link(&app, &zed, json!([endpoint_param])).await.json().await.unwrap();
    assert_eq!(param(&none, "outcome").unwrap()["valueCode"], "not-found");

    // By the remote's identifier, whatever the demographics say.
    let other = app.create(&person("Renamed", "Ann", "1980-01-01", "female")).await;
    let by_id = json!({"name": "identifier", "valueIdentifier": {"system": "urn:county:mrn", "value": "C-100"}});
    let linked: Value = link(&app, &other, json!([endpoint_param, by_id])).await.json().await.unwrap();
    assert_eq!(param(&linked, "outcome").unwrap()["valueCode"], "linked", "{linked}");
    assert_eq!(param(&linked, "linked").unwrap()["valueReference"]["reference"], remote_reference.as_str());

    // Refusals: no endpoint, an unknown endpoint, a remote that went away (502, nothing linked).
    let missing = link(&app, &zed, json!([{"name": "identifier", "valueIdentifier": {"value": "C-100"}}])).await;
    assert_eq!(missing.status(), reqwest::StatusCode::BAD_REQUEST);
    let misspelt = link(&app, &zed, json!([endpoint_param, {"name": "identifer", "valueString": "x"}])).await;
    assert_eq!(misspelt.status(), reqwest::StatusCode::BAD_REQUEST);
    assert!(misspelt.text().await.unwrap().contains("unknown parameter 'identifer'"));
    let malformed = app
        .client
        .post(app.url(&format!("Patient/{zed}/$ehr-link")))
        .header("content-type", "application/fhir+json")
        .body("{\"resourceType\": \"Parameters\", ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), reqwest::StatusCode::BAD_REQUEST);
    let unknown = json!({"name": "endpoint", "valueReference": {"reference": "Endpoint/nope"}});
    assert_eq!(link(&app, &zed, json!([unknown])).await.status(), reqwest::StatusCode::NOT_FOUND);
    drop(remote);
    let gone = link(&app, &tom, json!([endpoint_param])).await;
    assert_eq!(gone.status(), reqwest::StatusCode::BAD_GATEWAY);
    let outcome: Value = gone.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert!(outcome.to_string().contains("cannot be reached"), "{outcome}");
}

/// A transaction of PUTs (client-assigned ids) imported into the remote.
fn remote_put(remote: &RemoteKiln, resources: &[Value]) {
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            let url = format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    let file = remote.dir.path().join(format!("{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&file, json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string())
        .unwrap();
    let journal = remote.dir.path().join(format!("{}.journal", uuid::Uuid::new_v4()));
    remote.kiln(&["import", "--quiet", "--journal", journal.to_str().unwrap(), file.to_str().unwrap()]);
}

/// Ann Alpha's record at the remote (her Patient `rp1` and an Encounter `re1`), and more.
fn ann_at_the_remote(more: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut record = vec![
        json!({"resourceType": "Patient", "id": "rp1", "name": [{"family": "Alpha", "given": ["Ann"]}], "birthDate": "1980-01-01"}),
        json!({"resourceType": "Encounter", "id": "re1", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": "Patient/rp1"}, "period": {"start": "2025-01-01T09:00:00Z", "end": "2025-01-01T11:00:00Z"}}),
    ];
    record.extend(more);
    record
}

/// Ann Alpha as the local clinic knows her (she matches the remote's `rp1`).
fn local_ann() -> Value {
    json!({"resourceType": "Patient", "name": [{"family": "Alpha", "given": ["Ann"]}], "birthDate": "1980-01-01"})
}

fn heart_rate(id: &str, value: u32) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": "Patient/rp1"}, "encounter": {"reference": "Encounter/re1"},
        "effectiveDateTime": "2025-01-01T10:00:00Z",
        "valueQuantity": {"value": value, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}})
}

/// `$ehr-pull` with no parameters: the remote is the one the patient is linked to.
async fn pull(app: &TestApp, patient: &str) -> reqwest::Response {
    let url = app.url(&format!("Patient/{patient}/$ehr-pull"));
    app.client.post(url).header("content-type", "application/fhir+json").send().await.unwrap()
}

fn summary(outcome: &Value) -> String {
    outcome["issue"][0]["diagnostics"].as_str().unwrap().to_string()
}

async fn a_linked_record_is_pulled_atomically_and_again_without_duplicates(app: TestApp) {
    let (remote, endpoint, _work) = registered_remote(&app, vec![], "system/*.rs").await;
    remote_put(
        &remote,
        &ann_at_the_remote([
            heart_rate("ro1", 72),
            heart_rate("ro2", 80),
            json!({"resourceType": "Condition", "id": "rc1", "code": {"text": "asthma"}, "subject": {"reference": "Patient/rp1"}}),
        ]),
    );
    let ann = app.create(&local_ann()).await;

    // Not linked yet: refused, nothing written; a parameter it does not define is refused too.
    let refused = pull(&app, &ann).await;
    assert_eq!(refused.status(), reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    let misspelt = json!({"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "all"}]});
    let refused = app.post(&format!("Patient/{ann}/$ehr-pull"), &misspelt).await;
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    let endpoint_param = json!({"name": "endpoint", "valueReference": {"reference": format!("Endpoint/{endpoint}")}});
    let linked: Value = link(&app, &ann, json!([endpoint_param])).await.json().await.unwrap();
    assert_eq!(param(&linked, "outcome").unwrap()["valueCode"], "linked", "{linked}");

    let first = pull(&app, &ann).await;
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    let outcome: Value = first.json().await.unwrap();
    assert!(summary(&outcome).contains("4 created, 0 updated, 0 unchanged, 0 not stored"), "{outcome}");

    // The record is local now: references point at the local copies, each names its source.
    let observations: Value =
        app.get(&format!("Observation?subject=Patient/{ann}&_count=10")).await.json().await.unwrap();
    assert_eq!(observations["total"], 2, "{observations}");
    let encounters: Value = app.get(&format!("Encounter?subject=Patient/{ann}")).await.json().await.unwrap();
    let encounter_id = encounters["entry"][0]["resource"]["id"].as_str().unwrap().to_string();
    for entry in observations["entry"].as_array().unwrap() {
        let observation = &entry["resource"];
        assert_eq!(observation["encounter"]["reference"], format!("Encounter/{encounter_id}"));
        let source = observation["meta"]["source"].as_str().unwrap();
        assert!(source.starts_with(&format!("{}/Observation/ro", remote.base)), "{source}");
    }
    let conditions: Value = app.get(&format!("Condition?subject=Patient/{ann}")).await.json().await.unwrap();
    assert_eq!(conditions["total"], 1);
    let provenances: Value = app.get("Provenance").await.json().await.unwrap();
    assert_eq!(provenances["total"], 1);
    assert!(provenances.to_string().contains("pulled from County Hospital"), "{provenances}");
    assert_eq!(provenances["entry"][0]["resource"]["target"].as_array().unwrap().len(), 4);

    // Again: nothing changed, nothing written, no duplicates.
    let again: Value = pull(&app, &ann).await.json().await.unwrap();
    assert!(summary(&again).contains("0 created, 0 updated, 4 unchanged"), "{again}");
    let observations: Value = app.get(&format!("Observation?subject=Patient/{ann}")).await.json().await.unwrap();
    assert_eq!(observations["total"], 2);
    let provenances: Value = app.get("Provenance").await.json().await.unwrap();
    assert_eq!(provenances["total"], 1);

    // A change at the remote is an update here.
    remote_put(&remote, &[heart_rate("ro1", 90)]);
    let third: Value = pull(&app, &ann).await.json().await.unwrap();
    assert!(summary(&third).contains("0 created, 1 updated, 3 unchanged"), "{third}");
    let updated: Value =
        app.get(&format!("Observation?subject=Patient/{ann}&value-quantity=90")).await.json().await.unwrap();
    assert_eq!(updated["total"], 1);
    assert_eq!(updated["entry"][0]["resource"]["meta"]["versionId"], "2");

    // The remote gone: 502, and the local record is as it was.
    drop(remote);
    let gone = pull(&app, &ann).await;
    assert_eq!(gone.status(), reqwest::StatusCode::BAD_GATEWAY);
    let observations: Value = app.get(&format!("Observation?subject=Patient/{ann}")).await.json().await.unwrap();
    assert_eq!(observations["total"], 2);
}

/// A client of the remote's FHIR API with a system token of its own (to see what arrived).
async fn remote_reader(remote: &RemoteKiln) -> reqwest::Client {
    let printed = remote.kiln(&[
        "client",
        "register",
        "--name",
        "test reader",
        "--kind",
        "confidential-symmetric",
        "--scope",
        "system/*.rs",
        "--shell",
    ]);
    let value = |name: &str| {
        let line = printed.lines().find(|l| l.starts_with(&format!("{name}="))).unwrap();
        line.split_once('=').unwrap().1.trim_matches('\'').to_string()
    };
    let token: Value = reqwest::Client::new()
        .post(remote.base.replace("/fhir", "/auth/token"))
        .basic_auth(value("KILN_CLIENT_ID"), Some(value("KILN_CLIENT_SECRET")))
        .form(&[("grant_type", "client_credentials"), ("scope", "system/*.rs")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    crate::helpers::authorized_client(token["access_token"].as_str().unwrap())
}

async fn a_local_record_is_pushed_once_and_audited(app: TestApp) {
    let (remote, endpoint, _work) = registered_remote(
        &app,
        vec![json!({"resourceType": "Patient", "name": [{"family": "Pushed", "given": ["Pia"]}], "birthDate": "1975-07-07"})],
        "system/*.rs system/*.c",
    )
    .await;
    let pia = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Pushed", "given": ["Pia"]}], "birthDate": "1975-07-07"})).await;
    let endpoint_param = json!({"name": "endpoint", "valueReference": {"reference": format!("Endpoint/{endpoint}")}});
    let linked: Value = link(&app, &pia, json!([endpoint_param])).await.json().await.unwrap();
    let remote_patient = param(&linked, "linked").unwrap()["valueReference"]["reference"].as_str().unwrap().to_string();
    let visit = app
        .create(&json!({"resourceType": "Encounter", "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
            "subject": {"reference": format!("Patient/{pia}")}}))
        .await;
    let mut pulse = heart_rate("x", 66);
    pulse.as_object_mut().unwrap().remove("id");
    pulse["subject"] = json!({"reference": format!("Patient/{pia}")});
    pulse["encounter"] = json!({"reference": format!("Encounter/{visit}")});
    let observation = app.create(&pulse).await;

    let push_path = format!("Patient/{pia}/$ehr-push");
    let push_body = json!({"resourceType": "Parameters", "parameter": [endpoint_param.clone()]});
    let first = app.post(&push_path, &push_body).await;
    let status = first.status();
    let outcome: Value = first.json().await.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK, "{outcome}");
    assert!(summary(&outcome).contains("2 resources sent, 2 created there, 0 already there"), "{outcome}");

    // At the remote: the two resources, on the linked patient, referring to each other.
    let reader = remote_reader(&remote).await;
    let remote_id = remote_patient.rsplit('/').next().unwrap();
    let there: Value = reader
        .get(format!("{}/Observation?subject=Patient/{remote_id}", remote.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(there["total"], 1, "{there}");
    let remote_observation = &there["entry"][0]["resource"];
    assert!(remote_observation["encounter"]["reference"].as_str().unwrap().starts_with("Encounter/"));
    let identity = format!("{}/Observation", app.base);
    assert!(
        remote_observation["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["system"] == identity.as_str() && i["value"] == observation.as_str())
    );

    // Again: nothing is created twice.
    let again: Value = app.post(&push_path, &push_body).await.json().await.unwrap();
    assert!(summary(&again).contains("2 resources sent, 0 created there, 2 already there"), "{again}");
    let there: Value = reader
        .get(format!("{}/Observation?subject=Patient/{remote_id}", remote.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(there["total"], 1);

    // What was sent is in the audit trail, with the destination.
    let audit: Value = app.get(&format!("AuditEvent?entity=Observation/{observation}")).await.json().await.unwrap();
    let text = audit.to_string();
    assert!(text.contains("$ehr-push") && text.contains(&format!("Endpoint/{endpoint}")), "{audit}");
}

/// A misbehaviour the proxy applies to the next request whose path and query contain a text.
#[derive(Clone)]
enum Fault {
    /// Answer this status (with `Retry-After: n` when given) instead of forwarding.
    Status(u16, Option<u64>),
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Forward, then add a `next` link that points back at the same request.
    LoopingNext,
    /// Wait this long, then forward.
    Slow(std::time::Duration),
    /// Answer 200 with a body of this many bytes.
    Oversized(usize),
    /// Forward, then make the resource with this id invalid (a status R4 does not know).
    Invalid(&'static str),
    /// Forward the CapabilityStatement without the operations (no `$everything`).
    WithoutOperations,
}

type Faults = std::sync::Arc<std::sync::Mutex<Vec<(String, Fault)>>>;

/// A proxy between Kiln and the remote that forwards everything, except that it misbehaves as
/// told: the fault harness of the EHR linking issue.
async fn start_proxy(target: String, faults: Faults) -> String {
    use axum::body::Bytes;
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let own = format!("http://{}", listener.local_addr().unwrap());
    let proxy_base = own.clone();
    let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let (target, faults, proxy_base) = (target.clone(), faults.clone(), proxy_base.clone());
        async move {
            let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
            let fault = {
                let mut faults = faults.lock().unwrap();
                let position = faults.iter().position(|(pattern, _)| path.contains(pattern.as_str()));
                position.map(|i| faults.remove(i).1)
            };
            let answer = |status: u16, extra: Vec<(&'static str, String)>, body: Vec<u8>| {
                let mut response = axum::response::Response::new(axum::body::Body::from(body));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                response.headers_mut().insert("content-type", "application/fhir+json".parse().unwrap());
                for (name, value) in extra {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            };
            match &fault {
                Some(Fault::Status(status, retry_after)) => {
                    let extra = retry_after.map(|s| vec![("retry-after", s.to_string())]).unwrap_or_default();
                    let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]});
                    return answer(*status, extra, outcome.to_string().into_bytes());
                }
                Some(Fault::Malformed) => {
                    return answer(200, vec![], b"{\"resourceType\": \"Bundle\", \"entry\": [".to_vec());
                }
                Some(Fault::Oversized(bytes)) => {
                    let padding = "x".repeat(*bytes);
                    let body =
                        format!("{{\"resourceType\": \"Bundle\", \"type\": \"searchset\", \"id\": \"{padding}\"}}");
                    return answer(200, vec![], body.into_bytes());
                }
                Some(Fault::Slow(wait)) => tokio::time::sleep(*wait).await,
                _ => {}
            }
            let mut request = reqwest::Client::new().request(method, format!("{target}{path}")).body(body.to_vec());
            for name in ["authorization", "content-type", "accept"] {
                if let Some(value) = headers.get(name) {
                    request = request.header(name, value.to_str().unwrap());
                }
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let mut bytes = response.bytes().await.unwrap().to_vec();
            if let Some(Fault::LoopingNext) = fault {
                let mut bundle: Value = serde_json::from_slice(&bytes).unwrap();
                bundle["link"] = json!([{"relation": "next", "url": format!("{proxy_base}{path}")}]);
                bytes = bundle.to_string().into_bytes();
            }
            if let Some(Fault::WithoutOperations) = fault {
                let mut statement: Value = serde_json::from_slice(&bytes).unwrap();
                for resource in statement["rest"][0]["resource"].as_array_mut().unwrap() {
                    resource.as_object_mut().unwrap().remove("operation");
                }
                bytes = statement.to_string().into_bytes();
            }
            if let Some(Fault::Invalid(id)) = fault {
                let mut bundle: Value = serde_json::from_slice(&bytes).unwrap();
                for entry in bundle["entry"].as_array_mut().unwrap() {
                    if entry["resource"]["id"] == id {
                        entry["resource"]["status"] = json!("not-a-status");
                    }
                }
                bytes = bundle.to_string().into_bytes();
            }
            answer(status, vec![], bytes)
        }
    };
    let app = axum::Router::new().fallback(handler);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    own
}

async fn pulls_survive_a_misbehaving_remote_and_store_all_or_nothing(app: TestApp) {
    let remote = RemoteKiln::start().await;
    remote_put(
        &remote,
        &ann_at_the_remote([
            heart_rate("ro1", 72),
            heart_rate("ro2", 80),
            json!({"resourceType": "Condition", "id": "rc1", "code": {"text": "asthma"}, "subject": {"reference": "Patient/rp1"}}),
        ]),
    );
    let faults: Faults = Default::default();
    let proxy = start_proxy(remote.base.trim_end_matches("/fhir").to_string(), faults.clone()).await;
    let (private_pem, jwks) = es384_key_pair("kiln-1");
    let client_id = remote.register_backend(&jwks);
    let work = tempfile::tempdir().unwrap();
    let added = add_remote(&app, work.path(), &format!("{proxy}/fhir"), &client_id, &private_pem, "system/*.rs");
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let endpoint = String::from_utf8(added.stdout).unwrap().trim().to_string();
    let ann = app.create(&local_ann()).await;
    let endpoint_param = json!({"name": "endpoint", "valueReference": {"reference": format!("Endpoint/{endpoint}")}});
    let linked: Value = link(&app, &ann, json!([endpoint_param])).await.json().await.unwrap();
    assert_eq!(param(&linked, "outcome").unwrap()["valueCode"], "linked", "{linked}");
    let fail_next = |pattern: &str, fault: Fault, times: usize| {
        let mut faults = faults.lock().unwrap();
        for _ in 0..times {
            faults.push((pattern.to_string(), fault.clone()));
        }
    };
    let stored = |app: &TestApp| {
        let url = app.url(&format!("Observation?subject=Patient/{ann}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap()["total"].as_u64().unwrap() }
    };

    // Faults that cannot be ridden out: 502 saying what happened, and nothing stored.
    // The test settings allow 2 s a call and 256 KiB an answer; a call that times out is
    // retried three times like a connection error.
    let cases = [
        (Fault::Malformed, 1, "not what was asked for"),
        (Fault::LoopingNext, 1, "loops back"),
        (Fault::Status(503, None), 4, "answered 503"),
        (Fault::Slow(std::time::Duration::from_secs(3)), 4, "did not answer in time"),
        (Fault::Oversized(300 * 1024), 1, "answered more than 262144 bytes"),
    ];
    for (fault, times, says) in cases {
        fail_next("$everything", fault, times);
        let failed = pull(&app, &ann).await;
        assert_eq!(failed.status(), reqwest::StatusCode::BAD_GATEWAY);
        let outcome: Value = failed.json().await.unwrap();
        assert!(outcome.to_string().contains(says), "{says}: {outcome}");
        assert_eq!(stored(&app).await, 0, "{says}: nothing stored");
    }
    // Each failed call is in the audit trail, with its attempts and what went wrong.
    let audit: Value = app.get("AuditEvent?outcome=8&_count=100").await.json().await.unwrap();
    let text = audit.to_string();
    assert!(text.contains("/$everything: failed after 4 attempts") && text.contains("answered 503"), "{text}");
    assert!(text.contains("did not answer in time"), "{text}");

    // Faults a retry rides out: a 429 asking for a second's wait, then a 500.
    fail_next("$everything", Fault::Status(429, Some(1)), 1);
    fail_next("$everything", Fault::Status(500, None), 1);
    let started = std::time::Instant::now();
    let outcome: Value = pull(&app, &ann).await.json().await.unwrap();
    assert!(summary(&outcome).contains("4 created"), "{outcome}");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After was honoured");
    assert_eq!(stored(&app).await, 2);

    // A token the remote no longer takes (401 mid-pull): a new one is fetched once.
    fail_next("$everything", Fault::Status(401, None), 1);
    let outcome: Value = pull(&app, &ann).await.json().await.unwrap();
    assert!(summary(&outcome).contains("4 unchanged"), "{outcome}");

    // A remote without `$everything`: the record comes from a search per type, the same record.
    fail_next("metadata", Fault::WithoutOperations, 1);
    let outcome: Value = pull(&app, &ann).await.json().await.unwrap();
    assert!(summary(&outcome).contains("0 created, 0 updated, 4 unchanged"), "{outcome}");
    let searched: Value = app.get("AuditEvent?subtype=search-type&_count=100&_sort=-date").await.json().await.unwrap();
    let text = searched.to_string();
    assert!(text.contains(&format!("GET {proxy}/fhir/Observation: 200")), "{text}");
    assert!(text.contains(&format!("GET {proxy}/fhir/Condition: 200")), "{text}");

    // A remote resource that is not valid R4: reported, not stored; the rest is.
    remote_put(&remote, &[heart_rate("ro1", 95), heart_rate("ro2", 96)]);
    fail_next("$everything", Fault::Invalid("ro1"), 1);
    let outcome: Value = pull(&app, &ann).await.json().await.unwrap();
    assert!(summary(&outcome).contains("1 updated, 2 unchanged, 1 not stored"), "{outcome}");
    let warning = outcome["issue"][1].clone();
    assert_eq!(warning["severity"], "warning", "{outcome}");
    let diagnostics = warning["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("/Observation/ro1 is not valid here and was not stored"), "{diagnostics}");
    let values: Value =
        app.get(&format!("Observation?subject=Patient/{ann}&value-quantity=95")).await.json().await.unwrap();
    assert_eq!(values["total"], 0, "the invalid version was not stored");
    let values: Value =
        app.get(&format!("Observation?subject=Patient/{ann}&value-quantity=96")).await.json().await.unwrap();
    assert_eq!(values["total"], 1, "the valid one was");
    assert!(faults.lock().unwrap().is_empty(), "every fault was met");
}

async fn kiln_ehr_sync_re_pulls_linked_patients_once_across_runners(app: TestApp) {
    let (remote, endpoint, _work) = registered_remote(&app, vec![], "system/*.rs").await;
    remote_put(&remote, &ann_at_the_remote([heart_rate("ro1", 72)]));
    let ann = app.create(&local_ann()).await;
    let endpoint_param = json!({"name": "endpoint", "valueReference": {"reference": format!("Endpoint/{endpoint}")}});
    let linked: Value = link(&app, &ann, json!([endpoint_param])).await.json().await.unwrap();
    assert_eq!(param(&linked, "outcome").unwrap()["valueCode"], "linked");
    let observations = |app: &TestApp| {
        let url = app.url(&format!("Observation?subject=Patient/{ann}"));
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    };

    let synced = kiln_cli(&app, &["ehr", "sync"], &[]);
    let printed = String::from_utf8_lossy(&synced.stdout).into_owned();
    assert!(synced.status.success(), "{printed} {}", String::from_utf8_lossy(&synced.stderr));
    assert!(printed.contains("1 patients queued, 1 pulled, 0 failed"), "{printed}");
    assert_eq!(observations(&app).await["total"], 1);
    // The job is in the audit trail: the runner, the patient, the remote, what the pull did.
    let audit: Value = app.get(&format!("AuditEvent?entity=Endpoint/{endpoint}")).await.json().await.unwrap();
    let text = audit.to_string();
    assert!(text.contains("EHR sync (kiln ehr sync") && text.contains("$ehr-pull"), "{audit}");
    assert!(text.contains(&format!("Patient/{ann}")) && text.contains("2 created"), "{audit}");

    // The remote changes; two sync runs at once (two nodes) share the queue: every queued job
    // runs exactly once (a run that starts after the other finished queues and pulls again).
    remote_put(&remote, &[heart_rate("ro1", 90), heart_rate("ro2", 81)]);
    let runner = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["ehr", "sync", "--endpoint", &endpoint])
            .env("KILN_DATABASE_URL", &app.database_url)
            .env("KILN_DEFAULT_TENANT", "test-clinic")
            .env("KILN_KEY_FILE", app.state.settings.key_file_path())
            .env("KILN_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (runner(), runner());
    let outputs = [first.wait_with_output().unwrap(), second.wait_with_output().unwrap()];
    let (mut queued, mut pulled) = (0, 0);
    for output in &outputs {
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(output.status.success(), "{text}");
        let numbers: Vec<u32> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        queued += numbers[0];
        pulled += numbers[1];
    }
    assert!(queued >= 1);
    assert_eq!(pulled, queued, "each queued job ran once");
    let now = observations(&app).await;
    assert_eq!(now["total"], 2, "{now}");
    assert!(now.to_string().contains("\"value\":90"), "the change arrived: {now}");

    // A remote that fails: the job is reported failed, and the command says so.
    drop(remote);
    let failed = kiln_cli(&app, &["ehr", "sync"], &[]);
    let printed = String::from_utf8_lossy(&failed.stdout).into_owned();
    assert!(!failed.status.success());
    assert!(printed.contains("1 failed") && printed.contains(&format!("Patient/{ann}")), "{printed}");
}

async fn a_serving_node_re_pulls_on_the_remote_schedule(app: TestApp) {
    let remote = RemoteKiln::start().await;
    remote_put(&remote, &ann_at_the_remote([heart_rate("ro1", 72)]));
    let (private_pem, jwks) = es384_key_pair("kiln-1");
    let client_id = remote.register_backend(&jwks);
    let mut parameters = backend_parameters(&remote.base, &client_id, &private_pem);
    parameters.push(json!({"name": "syncEvery", "valueInteger": 3600}));
    let created: Value = register(&app, &parameters).await.json().await.unwrap();
    let endpoint = created["id"].as_str().unwrap().to_string();
    let ann = app.create(&local_ann()).await;
    let endpoint_param = json!({"name": "endpoint", "valueReference": {"reference": format!("Endpoint/{endpoint}")}});
    let linked: Value = link(&app, &ann, json!([endpoint_param])).await.json().await.unwrap();
    assert_eq!(param(&linked, "outcome").unwrap()["valueCode"], "linked");

    // A node that starts finds the remote due (never synced) and pulls its linked patient; no
    // one called $ehr-pull or kiln ehr sync.
    let node = app.another_process_on_same_database().await;
    let mut pulled = Value::Null;
    for _ in 0..100 {
        pulled = app.get(&format!("Observation?subject=Patient/{ann}")).await.json().await.unwrap();
        if pulled["total"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(pulled["total"], 1, "the scheduled sync pulled the record: {pulled}");
    // The other node's audit rows reach the AuditEvent resources shortly after it writes them.
    let mut audit = String::new();
    for _ in 0..50 {
        audit = app.get(&format!("AuditEvent?entity=Endpoint/{endpoint}&_count=100")).await.text().await.unwrap();
        if audit.contains("EHR sync (kiln serve (") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(audit.contains("EHR sync (kiln serve ("), "{audit}");
    drop(node);
}

crate::on_both_backends!(
    a_serving_node_re_pulls_on_the_remote_schedule,
    remotes_are_registered_tested_and_audited_through_the_rest_api,
    a_remote_with_a_private_ca_is_trusted_only_when_registered_with_it,
    kiln_ehr_sync_re_pulls_linked_patients_once_across_runners,
    pulls_survive_a_misbehaving_remote_and_store_all_or_nothing,
    a_remote_ehr_is_registered_and_tested_end_to_end,
    patients_are_linked_only_to_an_unambiguous_remote_match,
    a_linked_record_is_pulled_atomically_and_again_without_duplicates,
    a_local_record_is_pushed_once_and_audited,
);
