//! Sensitive identifiers at rest (issue: safeguards, "Secrets at rest"): the SSN is stored
//! sealed (no plaintext anywhere in the database files), found by exact search through its keyed
//! hash, shown only to callers whose role and scope allow and masked for everyone else on every
//! read path, kept when a masked resource is written back, absent from the audit trail, and
//! resealed under a new key by `kiln keys rotate` while the server runs.

use base64::Engine;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, kiln_cli, revealing_client};
use crate::smart::staff_client;

const SSN_SYSTEM: &str = "http://hl7.org/fhir/sid/us-ssn";
const SSN: &str = "987-65-4329";
const MASKED: &str = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

fn patient(family: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:kiln:test:mrn", "value": format!("MRN-{family}")},
            {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
             "system": SSN_SYSTEM, "value": SSN}
        ],
        "name": [{"family": family}],
        "birthDate": "1970-01-01"
    })
}

async fn get_json(client: &Client, url: String) -> Value {
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    response.json().await.unwrap()
}

/// The SSN identifier of a Patient as shown.
fn ssn_of(patient: &Value) -> &Value {
    patient["identifier"].as_array().unwrap().iter().find(|i| i["system"] == SSN_SYSTEM).expect("the SSN identifier")
}

fn assert_masked(patient: &Value) {
    let ssn = ssn_of(patient);
    assert!(ssn.get("value").is_none(), "{patient}");
    assert_eq!(ssn["_value"]["extension"][0]["url"], MASKED);
    assert_eq!(ssn["_value"]["extension"][0]["valueCode"], "masked");
    assert!(!patient.to_string().contains("kiln-sealed"), "{patient}");
}

/// Every byte the database keeps, as text: the SQLite files (main and write-ahead log), or each
/// PostgreSQL table rendered as text (byte columns as hex).
pub async fn database_contents(app: &TestApp) -> String {
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        let mut all = Vec::new();
        for file in [path.to_string(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                all.extend(bytes);
            }
        }
        return String::from_utf8_lossy(&all).into_owned();
    }
    let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut all = String::new();
    for (table,) in tables {
        let sql = format!("SELECT COALESCE(string_agg(t::text, ' '), '') FROM \"{table}\" t");
        let (text,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
        all.push_str(&text);
    }
    pool.close().await;
    all
}

pub fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn ssns_are_sealed_at_rest_searchable_and_masked_on_every_path(app: TestApp) {
    let id = app.create(&patient("Sealed")).await;
    app.create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
        "subject": {"reference": format!("Patient/{id}")}}))
        .await;
    // An update makes a second version (history).
    let mut changed = patient("Sealed");
    changed["id"] = json!(id);
    changed["birthDate"] = json!("1970-01-02");
    assert_eq!(app.put(&format!("Patient/{id}"), &changed).await.status(), StatusCode::OK);

    // Exact search through the keyed hash: with the system, without it, and by identifier type.
    let searches = [
        format!("Patient?identifier={SSN_SYSTEM}|{SSN}"),
        format!("Patient?identifier={SSN}"),
        format!("Patient?identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|SS|{SSN}"),
    ];
    for search in &searches {
        let found = get_json(&app.client, app.url(search)).await;
        assert_eq!(found["total"], 1, "{search}: {found}");
        assert_masked(&found["entry"][0]["resource"]);
    }
    let other = get_json(&app.client, app.url(&format!("Patient?identifier={SSN_SYSTEM}|123-45-6789"))).await;
    assert_eq!(other["total"], 0);
    let chained =
        get_json(&app.client, app.url(&format!("Observation?subject:Patient.identifier={SSN_SYSTEM}|{SSN}"))).await;
    assert_eq!(chained["total"], 1, "{chained}");

    // The default system token has no reveal scope: masked on read, vread, history, search with
    // _include / _revinclude, and $everything.
    assert_masked(&get_json(&app.client, app.url(&format!("Patient/{id}"))).await);
    assert_masked(&get_json(&app.client, app.url(&format!("Patient/{id}/_history/1"))).await);
    let paths = [
        format!("Patient/{id}/_history"),
        format!("Patient?_id={id}&_revinclude=Observation:subject"),
        format!("Observation?subject={id}&_include=Observation:subject"),
        format!("Patient/{id}/$everything"),
        "_history".to_string(),
    ];
    for path in &paths {
        let bundle = get_json(&app.client, app.url(path)).await;
        let patients: Vec<&Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e.get("resource"))
            .filter(|r| r["resourceType"] == "Patient")
            .collect();
        assert!(!patients.is_empty(), "{path}: {bundle}");
        patients.into_iter().for_each(assert_masked);
        assert!(!bundle.to_string().contains(SSN), "{path}");
    }

    // A caller whose role and scope allow sees it in clear, everywhere.
    let service = revealing_client(&app).await;
    let read = get_json(&service, app.url(&format!("Patient/{id}"))).await;
    assert_eq!(ssn_of(&read)["value"], SSN);
    let history = get_json(&service, app.url(&format!("Patient/{id}/_history"))).await;
    for entry in history["entry"].as_array().unwrap() {
        assert_eq!(ssn_of(&entry["resource"])["value"], SSN);
    }
    let (receptionist, _) =
        staff_client(&app, "frontdesk", "receptionist", "openid fhirUser user/*.rs kiln/reveal-sensitive").await;
    assert_eq!(ssn_of(&get_json(&receptionist, app.url(&format!("Patient/{id}"))).await)["value"], SSN);
    // The scope alone is not enough: a physician's role does not include seeing SSNs …
    let (physician, _) =
        staff_client(&app, "drnossn", "physician", "openid fhirUser user/*.rs kiln/reveal-sensitive").await;
    assert_masked(&get_json(&physician, app.url(&format!("Patient/{id}"))).await);
    // … and the role alone is not enough either.
    let (plain_receptionist, _) = staff_client(&app, "frontdesk2", "receptionist", "openid fhirUser user/*.rs").await;
    assert_masked(&get_json(&plain_receptionist, app.url(&format!("Patient/{id}"))).await);

    // A second factor's secret is sealed too.
    crate::smart::staff_user(&app, "mfauser", "nurse").await;
    let uri =
        kiln::auth::accounts::enroll_second_factor(&app.state.store, &app.state.sensitive, "mfauser").await.unwrap();
    let totp_secret = uri.split("secret=").nth(1).unwrap().split('&').next().unwrap().to_string();

    // Nothing in the database holds the SSN in clear: not the resource, its versions, the
    // search index, nor the audit trail of the searches above.
    let contents = database_contents(&app).await;
    assert!(contents.contains("Sealed"), "the scan sees the stored resources");
    assert!(contents.contains("kiln-sealed:v1:") || contents.contains(&hex("kiln-sealed:v1:")));
    assert!(!contents.contains(SSN) && !contents.contains(&hex(SSN)), "plaintext SSN on disk");
    assert!(!contents.contains("987654329") && !contents.contains("987-65-4329"));
    // Nor the server's credentials: the private signing key and the TOTP secret.
    assert!(!contents.contains("PRIVATE KEY") && !contents.contains(&hex("PRIVATE KEY")), "a private key on disk");
    assert!(!contents.contains(&totp_secret), "a TOTP secret on disk");
    // The audit trail names the search by the keyed hash.
    let audit = get_json(&app.client, app.url("AuditEvent?_count=100")).await;
    let queries: Vec<String> = audit["entry"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["resource"]["entity"].as_array().cloned().unwrap_or_default())
        .filter_map(|entity| entity["query"].as_str().map(str::to_string))
        .map(|q| String::from_utf8(base64::engine::general_purpose::STANDARD.decode(q).unwrap()).unwrap())
        .collect();
    let ssn_searches: Vec<&String> = queries.iter().filter(|q| q.contains("us-ssn")).collect();
    assert!(!ssn_searches.is_empty(), "{queries:?}");
    assert!(ssn_searches.iter().all(|q| q.contains("hmac%3A") || q.contains("hmac:")), "{ssn_searches:?}");
    assert!(queries.iter().all(|q| !q.contains("65-4329")), "{queries:?}");
}

async fn masked_values_written_back_keep_the_stored_value(app: TestApp) {
    let id = app.create(&patient("Roundtrip")).await;
    let service = revealing_client(&app).await;

    // A client that only ever saw the masked form sends it back with another change.
    let mut shown = get_json(&app.client, app.url(&format!("Patient/{id}"))).await;
    assert_masked(&shown);
    shown["name"][0]["given"] = json!(["Ann"]);
    let updated = app.put(&format!("Patient/{id}"), &shown).await;
    assert_eq!(updated.status(), StatusCode::OK, "{}", updated.text().await.unwrap());
    let read = get_json(&service, app.url(&format!("Patient/{id}"))).await;
    assert_eq!(ssn_of(&read)["value"], SSN);
    assert_eq!(read["name"][0]["given"][0], "Ann");

    // A PATCH works on the stored form and keeps the value too; the search still finds it.
    let patch = json!([{"op": "replace", "path": "/birthDate", "value": "1971-05-05"}]);
    let patched = app
        .client
        .patch(app.url(&format!("Patient/{id}")))
        .header("content-type", "application/json-patch+json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), StatusCode::OK, "{}", patched.text().await.unwrap());
    let read = get_json(&service, app.url(&format!("Patient/{id}"))).await;
    assert_eq!((ssn_of(&read)["value"].as_str(), read["birthDate"].as_str()), (Some(SSN), Some("1971-05-05")));
    let found = get_json(&app.client, app.url(&format!("Patient?identifier={SSN_SYSTEM}|{SSN}"))).await;
    assert_eq!(found["total"], 1);

    // A new value replaces it; a masked value with nothing stored behind it is refused.
    let mut replaced = read.clone();
    replaced["identifier"][1]["value"] = json!("111-22-3333");
    assert_eq!(
        service
            .put(app.url(&format!("Patient/{id}")))
            .header("content-type", "application/fhir+json")
            .body(replaced.to_string())
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let found = get_json(&app.client, app.url(&format!("Patient?identifier={SSN_SYSTEM}|111-22-3333"))).await;
    assert_eq!(found["total"], 1);
    let gone = get_json(&app.client, app.url(&format!("Patient?identifier={SSN_SYSTEM}|{SSN}"))).await;
    assert_eq!(gone["total"], 0);
    let mut new_masked = shown.clone();
    new_masked.as_object_mut().unwrap().remove("id");
    let refused = app.post("Patient", &new_masked).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let outcome: Value = refused.json().await.unwrap();
    assert!(outcome.to_string().contains("masked"), "{outcome}");

    // A forged sealed value is refused, not stored.
    let mut forged = patient("Forged");
    forged["identifier"][1]["value"] = json!("kiln-sealed:v1:k-00000000:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let refused = app.post("Patient", &forged).await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let none = get_json(&app.client, app.url("Patient?family=Forged")).await;
    assert_eq!(none["total"], 0);
}

async fn keys_rotate_while_the_server_runs(app: TestApp) {
    let first = app.create(&patient("Rotated")).await;
    let status = |app: &TestApp| {
        let output = kiln_cli(app, &["keys", "status"], &[]);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let before = status(&app);
    let old_key = before.lines().find(|l| l.contains("(active)")).unwrap().split(' ').next().unwrap().to_string();
    // The Patient's version and the server's private signing key.
    assert!(before.contains(&format!("{old_key} (active): 2 sealed values")), "{before}");

    let rotated = kiln_cli(&app, &["keys", "rotate", "--settle-secs", "3"], &[]);
    let printed = String::from_utf8_lossy(&rotated.stdout).into_owned();
    assert!(rotated.status.success(), "{printed} {}", String::from_utf8_lossy(&rotated.stderr));
    assert!(printed.contains("2 stored values (resource versions and credentials) were"), "{printed}");
    assert!(printed.contains(&format!("kiln keys retire {old_key}")), "{printed}");
    let after = status(&app);
    let new_key = after.lines().find(|l| l.contains("(active)")).unwrap().split(' ').next().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert!(after.contains(&format!("{old_key}: 0 sealed values")), "{after}");

    // The running server read the new key file: it opens the resealed value, searches still
    // find it, and new values are sealed under the new key.
    let service = revealing_client(&app).await;
    assert_eq!(ssn_of(&get_json(&service, app.url(&format!("Patient/{first}"))).await)["value"], SSN);
    app.create(&patient("AfterRotation")).await;
    let found = get_json(&app.client, app.url(&format!("Patient?identifier={SSN_SYSTEM}|{SSN}"))).await;
    assert_eq!(found["total"], 2);
    assert!(status(&app).contains(&format!("{new_key} (active): 3 sealed values")));

    // The old key can go; values keep opening.
    let retired = kiln_cli(&app, &["keys", "retire", &old_key], &[]);
    assert!(retired.status.success(), "{}", String::from_utf8_lossy(&retired.stderr));
    assert!(!status(&app).contains(&old_key));
    assert_eq!(ssn_of(&get_json(&service, app.url(&format!("Patient/{first}"))).await)["value"], SSN);
    let active = kiln_cli(&app, &["keys", "retire", &new_key], &[]);
    assert!(!active.status.success());

    // A credential stored in clear before sealing existed is sealed at the next start.
    crate::smart::staff_user(&app, "legacy", "nurse").await;
    let legacy = app.state.store.user_by_name("legacy").await.unwrap().unwrap();
    app.state.store.set_totp_secret(&legacy.user_id, Some("JBSWY3DPEHPK3PXP")).await.unwrap();
    let sealed = kiln::sensitive::rotate::reseal_credentials(&app.state.store, &app.state.sensitive, true).await;
    assert_eq!(sealed, Ok(1));
    let stored = app.state.store.user(&legacy.user_id).await.unwrap().unwrap().totp_secret.unwrap();
    assert!(stored.starts_with(kiln::sensitive::SEALED_PREFIX), "{stored}");
    let opened = app.state.sensitive.open_secret(&stored, kiln::sensitive::TOTP_CONTEXT);
    assert_eq!(opened.as_deref(), Ok("JBSWY3DPEHPK3PXP"));

    // A node given another key file for this database is refused at start.
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("other.keys").display().to_string();
    let missing = kiln_cli(&app, &["keys", "status"], &[("KILN_KEY_FILE", &stranger)]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("missing"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    kiln::sensitive::KeyRing::generate().save(std::path::Path::new(&stranger)).unwrap();
    let wrong = kiln_cli(&app, &["keys", "status"], &[("KILN_KEY_FILE", &stranger)]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("not the one"),
        "{}",
        String::from_utf8_lossy(&wrong.stderr)
    );
}

crate::on_both_backends!(
    ssns_are_sealed_at_rest_searchable_and_masked_on_every_path,
    masked_values_written_back_keep_the_stored_value,
    keys_rotate_while_the_server_runs,
);
