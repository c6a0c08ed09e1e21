//! The audit trail (issue: safeguards): every access recorded before its response, searchable as
//! AuditEvent, unchangeable through the API, hash-chained so that direct edits are caught;
//! sign-ins and tokens audited; a patient's accounting of disclosures; `kiln audit report`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, authorized_client, expect_outcome, register_app};
use crate::smart::{Browser, REDIRECT, authorize_url, exchange_code, patient_user, sign_in_and_allow, submit_sign_in};
use kiln::auth::accounts::ClientKind;

async fn search(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get(query).await;
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let bundle: Value = response.json().await.unwrap();
    bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

fn references(event: &Value) -> Vec<String> {
    event["entity"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["what"]["reference"].as_str().map(str::to_string))
        .collect()
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

async fn patient_with_observation(app: &TestApp) -> (String, String) {
    let patient = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Audited"}]})).await;
    let observation = app
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
                        "subject": {"reference": format!("Patient/{patient}")}}))
        .await;
    (patient, observation)
}

async fn reads_and_searches_are_audited_with_what_they_disclosed(app: TestApp) {
    let (patient, observation) = patient_with_observation(&app).await;
    let read = app
        .client
        .get(app.url(&format!("Observation/{observation}")))
        .header("user-agent", "audit-test/1.0")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    // Committed before the response: the search right after finds it.
    let events = search(&app, &format!("AuditEvent?entity=Observation/{observation}&subtype=read")).await;
    assert_eq!(events.len(), 1, "one read, one event: {events:?}");
    let event = &events[0];
    assert_eq!(event["action"], "R");
    assert_eq!(event["outcome"], "0");
    assert_eq!(event["type"]["code"], "rest");
    assert!(event["recorded"].as_str().unwrap().starts_with(&today()));
    let agent = &event["agent"][0];
    assert_eq!(agent["who"]["identifier"]["system"], "urn:kiln:client", "a backend service acts as itself");
    assert_eq!(agent["requestor"], true);
    assert_eq!(agent["network"]["address"], "127.0.0.1");
    assert!(event["extension"].to_string().contains("audit-test/1.0"), "the user agent: {event}");
    let refs = references(event);
    assert!(refs.contains(&format!("Observation/{observation}/_history/1")), "{refs:?}");
    assert!(refs.contains(&format!("Patient/{patient}")), "the patient whose record it is: {refs:?}");

    // The same event by patient, type, date; a search records its query.
    let by_patient = search(&app, &format!("AuditEvent?patient=Patient/{patient}")).await;
    assert!(by_patient.iter().any(|e| e["id"] == event["id"]));
    assert!(by_patient.iter().any(|e| e["subtype"][0]["code"] == "create"), "creating it was audited too");
    let by_date = search(&app, &format!("AuditEvent?date=ge{}&type=rest&_count=100", today())).await;
    assert!(by_date.iter().any(|e| e["id"] == event["id"]));
    search(&app, &format!("Observation?subject=Patient/{patient}")).await;
    let searches = search(&app, &format!("AuditEvent?subtype=search-type&entity=Observation/{observation}")).await;
    let query = searches
        .iter()
        .flat_map(|e| e["entity"].as_array().cloned().unwrap_or_default())
        .find_map(|e| e["query"].as_str().map(str::to_string))
        .expect("the search's query is recorded");
    use base64::Engine;
    let query = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(query).unwrap()).unwrap();
    assert!(query.contains(&format!("subject=Patient/{patient}")), "{query}");

    // The server's own events are valid R4 AuditEvents (`$validate` would ask whether one may be
    // created, which nobody may).
    for event in by_patient.iter().chain(&searches) {
        let valid = kiln::fhir::validation::validate(kiln::fhir::registry::Registry::global(), event);
        assert!(valid.is_ok(), "{valid:?}: {event}");
    }

    // System history is the record of the data, not of who looked at it.
    let history: Value = app.get("_history?_count=100").await.json().await.unwrap();
    assert!(!history.to_string().contains("\"AuditEvent\""), "{history}");
}

async fn refused_requests_are_audited_too(app: TestApp) {
    let anonymous = app.anonymous.get(app.url("Patient/nobody-here")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let forged = authorized_client("eyJhbGciOiJub25lIn0.e30.");
    assert_eq!(forged.get(app.url("Patient/nobody-here")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let missing = app.get("Patient/nobody-here").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let events = search(&app, "AuditEvent?entity=Patient/nobody-here&outcome=4").await;
    assert_eq!(events.len(), 3, "two refused tokens and one read of nothing: {events:?}");
    let unauthenticated = events.iter().filter(|e| e["agent"][0]["who"]["display"] == "unauthenticated caller").count();
    assert_eq!(unauthenticated, 2);
    assert!(events.iter().all(|e| e["outcomeDesc"].as_str().is_some()));
}

async fn the_audit_trail_cannot_be_changed_through_any_path(app: TestApp) {
    let (_, observation) = patient_with_observation(&app).await;
    app.get(&format!("Observation/{observation}")).await;
    let event = search(&app, &format!("AuditEvent?entity=Observation/{observation}&subtype=read")).await.remove(0);
    let id = event["id"].as_str().unwrap().to_string();
    let before = app.get(&format!("AuditEvent/{id}")).await.text().await.unwrap();

    let mut changed = event.clone();
    changed["outcome"] = json!("8");
    expect_outcome(app.put(&format!("AuditEvent/{id}"), &changed).await, StatusCode::METHOD_NOT_ALLOWED).await;
    expect_outcome(app.post("AuditEvent", &changed).await, StatusCode::METHOD_NOT_ALLOWED).await;
    expect_outcome(app.delete(&format!("AuditEvent/{id}")).await, StatusCode::METHOD_NOT_ALLOWED).await;
    expect_outcome(app.delete("AuditEvent?outcome=0").await, StatusCode::METHOD_NOT_ALLOWED).await;
    let patch = app
        .client
        .patch(app.url(&format!("AuditEvent/{id}")))
        .header("content-type", "application/json-patch+json")
        .body(r#"[{"op":"replace","path":"/outcome","value":"8"}]"#)
        .send()
        .await
        .unwrap();
    expect_outcome(patch, StatusCode::METHOD_NOT_ALLOWED).await;
    let tag =
        json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"tag": [{"code": "x"}]}}]});
    expect_outcome(app.post(&format!("AuditEvent/{id}/$meta-add"), &tag).await, StatusCode::METHOD_NOT_ALLOWED).await;
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": changed, "request": {"method": "PUT", "url": format!("AuditEvent/{id}")}}]});
    expect_outcome(app.post("", &transaction).await, StatusCode::METHOD_NOT_ALLOWED).await;
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "DELETE", "url": format!("AuditEvent/{id}")}}]});
    let answer: Value = app.post("", &batch).await.json().await.unwrap();
    assert!(answer["entry"][0]["response"]["status"].as_str().unwrap().starts_with("405"), "{answer}");

    assert_eq!(app.get(&format!("AuditEvent/{id}")).await.text().await.unwrap(), before, "unchanged");
    // Every refusal was itself audited.
    let refusals = search(&app, &format!("AuditEvent?entity=AuditEvent/{id}&outcome=4")).await;
    assert!(refusals.len() >= 4, "{refusals:?}");
}

/// Changes a stored AuditEvent's JSON directly in the database, as an intruder with file access
/// would.
async fn tamper(app: &TestApp, id: &str, json: Vec<u8>) {
    let sql = "UPDATE resources SET json = $1 WHERE tenant = 'test-clinic' AND type = 'AuditEvent' AND id = $2";
    if let Some(file) = app.database_url.strip_prefix("sqlite://") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).bind(json).bind(id).execute(&pool).await.unwrap();
        pool.close().await;
        // The log is in a file of its own, next to the main one.
        let log_file = kiln::store::sqlite::audit_file(std::path::Path::new(file)).unwrap();
        assert!(log_file.exists(), "{}", log_file.display());
        let log = sqlx::SqlitePool::connect(&format!("sqlite://{}", log_file.display())).await.unwrap();
        let deleted = sqlx::query("DELETE FROM audit_log").execute(&log).await;
        let refusal = deleted.expect_err("the audit log refuses deletes").to_string();
        assert!(refusal.contains("append-only"), "{refusal}");
        log.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query(sql).bind(json).bind(id).execute(&pool).await.unwrap();
        let deleted = sqlx::query("DELETE FROM audit_log").execute(&pool).await;
        let refusal = deleted.expect_err("the audit log refuses deletes").to_string();
        assert!(refusal.contains("append-only"), "{refusal}");
        pool.close().await;
    }
}

/// Runs one statement on the main database directly (the resources, not the log), answering
/// the first column of its first row as a number.
async fn main_database(app: &TestApp, sql: &'static str, id: &str) -> i64 {
    use sqlx::Row;
    if app.database_url.starts_with("sqlite://") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        let row = sqlx::query(sql).bind(id).fetch_optional(&pool).await.unwrap();
        pool.close().await;
        row.map_or(0, |row| row.get(0))
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        let row = sqlx::query(sql).bind(id).fetch_optional(&pool).await.unwrap();
        pool.close().await;
        row.map_or(0, |row| row.get(0))
    }
}

/// An AuditEvent's body is its log row, stored once: the resource and version rows hold none,
/// and read, vread, history, search and _revinclude all serve the logged event with its `meta`.
async fn each_event_is_stored_once_and_served_whole_on_every_path(app: TestApp) {
    let (patient, observation) = patient_with_observation(&app).await;
    app.get(&format!("Observation/{observation}")).await;
    let event = search(&app, &format!("AuditEvent?entity=Observation/{observation}&subtype=read")).await.remove(0);
    let id = event["id"].as_str().unwrap().to_string();
    assert_eq!(event["meta"]["versionId"], "1", "{event}");
    assert_eq!(event["meta"]["lastUpdated"], event["recorded"], "{event}");

    let read = app.get(&format!("AuditEvent/{id}")).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(read.headers()["etag"], "W/\"1\"");
    assert_eq!(read.json::<Value>().await.unwrap(), event);
    let vread: Value = app.get(&format!("AuditEvent/{id}/_history/1")).await.json().await.unwrap();
    assert_eq!(vread, event);
    let history: Value = app.get(&format!("AuditEvent/{id}/_history")).await.json().await.unwrap();
    assert_eq!(history["entry"][0]["resource"], event, "{history}");
    let type_history: Value = app.get("AuditEvent/_history?_count=100").await.json().await.unwrap();
    let listed = type_history["entry"].as_array().unwrap().iter().any(|e| e["resource"] == event);
    assert!(listed, "{type_history}");
    let included: Value = app
        .get(&format!("Patient?_id={patient}&_revinclude=AuditEvent:patient&_count=100"))
        .await
        .json()
        .await
        .unwrap();
    let revincluded = included["entry"].as_array().unwrap().iter().any(|e| e["resource"] == event);
    assert!(revincluded, "{included}");
    let since: Value = app
        .get(&format!("AuditEvent?_id={id}&_lastUpdated={}", event["recorded"].as_str().unwrap().replace('+', "%2B")))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(since["entry"][0]["resource"], event, "_lastUpdated is the time recorded: {since}");

    let stored = "SELECT COUNT(*) FROM resources WHERE tenant = 'test-clinic' AND type = 'AuditEvent' AND id = $1 \
                  AND json IS NULL";
    assert_eq!(main_database(&app, stored, &id).await, 1, "the resource row holds no copy of the body");
    let versions = "SELECT COUNT(*) FROM resource_versions WHERE tenant = 'test-clinic' AND type = 'AuditEvent' \
                    AND id = $1 AND json IS NULL";
    assert_eq!(main_database(&app, versions, &id).await, 1, "nor does its version row");

    // Marking the resource deleted behind the server's back is caught like any other edit.
    let tenant = kiln::access::TenantId::parse("test-clinic").unwrap();
    assert_eq!(kiln::audit::chain::verify(&app.state.store, &tenant).await.unwrap().broken, None);
    let hide = "UPDATE resources SET deleted = NOT deleted WHERE tenant = 'test-clinic' AND type = 'AuditEvent' \
                AND id = $1 RETURNING CAST(1 AS BIGINT)";
    assert_eq!(main_database(&app, hide, &id).await, 1);
    let broken = kiln::audit::chain::verify(&app.state.store, &tenant).await.unwrap().broken.expect("caught");
    assert_eq!(broken.id, id);
    assert!(broken.reason.contains("missing or deleted"), "{}", broken.reason);
}

/// A copy that falls behind holds new requests back: with a limit of 10, waves of 8 concurrent
/// reads never leave the searchable copy more than the limit and one wave behind. (Without the
/// limit the copy waits 0.2 s for more rows before it starts, and the whole burst is behind.)
async fn a_copy_that_falls_behind_holds_new_requests_back(backend: crate::helpers::Backend) {
    let limit = 10;
    let Some(app) = TestApp::start_with(backend, |s| s.audit_copy_backlog = limit, |a| a).await else { return };
    let (_, observation) = patient_with_observation(&app).await;
    let path = format!("Observation/{observation}");
    let tenant = kiln::access::TenantId::parse("test-clinic").unwrap();
    let (waves, wave) = (25, 8);
    let mut worst = 0;
    for _ in 0..waves {
        let reads = futures_util::future::join_all((0..wave).map(|_| app.get(&path))).await;
        assert!(reads.iter().all(|read| read.status() == StatusCode::OK));
        let logged = app.state.store.audit_head_seq(&tenant).await.unwrap();
        let copied = app.state.store.audit_indexed_position(&tenant).await.unwrap();
        worst = worst.max(logged - copied);
    }
    assert!(worst <= limit as i64 + wave, "the copy fell {worst} rows behind");
    let counted: Value = app
        .get(&format!("AuditEvent?entity=Observation/{observation}&subtype=read&_summary=count"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(counted["total"], waves * wave, "every read is in the trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_falls_behind_holds_new_requests_back_on_sqlite() {
    a_copy_that_falls_behind_holds_new_requests_back(crate::helpers::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_falls_behind_holds_new_requests_back_on_postgres() {
    a_copy_that_falls_behind_holds_new_requests_back(crate::helpers::Backend::Postgres).await;
}

fn kiln_command(app: &TestApp, args: &[&str]) -> std::process::Output {
    crate::helpers::kiln_cli(app, args, &[])
}

async fn tampering_with_a_stored_event_is_caught(app: TestApp) {
    let (_, observation) = patient_with_observation(&app).await;
    for _ in 0..3 {
        app.get(&format!("Observation/{observation}")).await;
    }
    let tenant = kiln::access::TenantId::parse("test-clinic").unwrap();
    let intact = kiln::audit::chain::verify(&app.state.store, &tenant).await.unwrap();
    assert_eq!(intact.broken, None);
    assert!(intact.intact >= 5, "{intact:?}");
    let verified = kiln_command(&app, &["audit", "verify"]);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));

    let event = search(&app, &format!("AuditEvent?entity=Observation/{observation}&subtype=read")).await.remove(1);
    let id = event["id"].as_str().unwrap();
    let stored = app.get(&format!("AuditEvent/{id}")).await.text().await.unwrap();
    let forged = stored.replacen("\"outcome\":\"0\"", "\"outcome\":\"4\"", 1);
    assert_ne!(forged, stored);
    tamper(&app, id, forged.into_bytes()).await;

    let found = kiln::audit::chain::verify(&app.state.store, &tenant).await.unwrap();
    let broken = found.broken.expect("the edit is caught");
    assert_eq!(broken.id, id);
    assert!(broken.reason.contains("changed"), "{}", broken.reason);
    let verified = kiln_command(&app, &["audit", "verify"]);
    let output = String::from_utf8_lossy(&verified.stdout);
    assert_eq!(verified.status.code(), Some(1), "{output}");
    assert!(output.contains("BROKEN") && output.contains(id), "{output}");
}

/// Two server processes on one database write one chain: each writer appends after the head it
/// last saw in one statement, and when the other moved the head meanwhile, it reads the head
/// again under the chain lock. No event is lost, none is chained twice.
async fn two_nodes_writing_at_once_keep_one_unbroken_chain(app: TestApp) {
    let (_, observation) = patient_with_observation(&app).await;
    let second = app.another_process_on_same_database().await;
    let reads_per_node = 40;
    let path = format!("Observation/{observation}");
    let here = (0..reads_per_node).map(|_| app.get(&path));
    let there = (0..reads_per_node).map(|_| {
        let request = second.client.get(second.url(&format!("Observation/{observation}")));
        async move { request.send().await.unwrap() }
    });
    let (here, there) = tokio::join!(futures_util::future::join_all(here), futures_util::future::join_all(there));
    for response in here.into_iter().chain(there) {
        let status = response.status();
        assert_eq!(status, reqwest::StatusCode::OK, "{}", response.text().await.unwrap());
    }

    let tenant = kiln::access::TenantId::parse("test-clinic").unwrap();
    let verified = kiln::audit::chain::verify(&app.state.store, &tenant).await.unwrap();
    assert_eq!(verified.broken, None, "{verified:?}");
    // The search brings the AuditEvent resources up to date with the whole log, the other
    // node's rows included.
    let reads = search(&app, &format!("AuditEvent?entity=Observation/{observation}&subtype=read&_count=100")).await;
    assert_eq!(reads.len(), 2 * reads_per_node, "every read of both nodes is in the trail once");
    drop(second);
}

async fn sign_ins_tokens_and_a_patients_accounting_of_disclosures(app: TestApp) {
    let (mine, observation) = patient_with_observation(&app).await;
    let (other, _) = patient_with_observation(&app).await;
    // A clinic system reads the patient's record.
    app.get(&format!("Observation/{observation}")).await;
    app.get(&format!("Patient/{other}")).await;

    patient_user(&app, "pat", &mine).await;
    let scope = "launch/patient patient/*.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let mut stranger = Browser::new(&app);
    let refused =
        submit_sign_in(&mut stranger, &authorize_url(&app, &client_id, scope, &app.base), "pat", "wrong!").await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "the sign-in page again");
    let mut browser = Browser::new(&app);
    let back = sign_in_and_allow(&mut browser, &authorize_url(&app, &client_id, scope, &app.base), "pat").await;
    let token = exchange_code(&app, &back, &client_id).await;
    let patient = authorized_client(token["access_token"].as_str().unwrap());

    // The patient lists who accessed their record, and sees nothing of anyone else's.
    let response = patient.get(app.url(&format!("AuditEvent?patient=Patient/{mine}&_count=100"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bundle: Value = response.json().await.unwrap();
    let events: Vec<&Value> = bundle["entry"].as_array().unwrap().iter().map(|e| &e["resource"]).collect();
    assert!(
        events.iter().any(|e| e["subtype"][0]["code"] == "read"
            && references(e).contains(&format!("Observation/{observation}/_history/1"))),
        "the clinic system's read is listed: {bundle}"
    );
    assert!(!bundle.to_string().contains(&other), "nothing of the other patient");
    let all: Value = patient.get(app.url("AuditEvent?_count=100")).send().await.unwrap().json().await.unwrap();
    assert!(!all.to_string().contains(&other), "an unfiltered search is confined too");

    // Sign-ins, the failed one included, and the token.
    let logins = search(&app, "AuditEvent?subtype=110122&_count=100").await;
    let ok = logins.iter().find(|e| e["outcome"] == "0").expect("the sign-in");
    assert_eq!(ok["agent"][0]["who"]["reference"], format!("Patient/{mine}"));
    assert_eq!(ok["agent"][0]["role"][0]["text"], "patient");
    let failed = logins.iter().find(|e| e["outcome"] == "4").expect("the failed sign-in");
    assert_eq!(failed["agent"][0]["who"]["display"], "pat");
    let tokens = search(&app, &format!("AuditEvent?subtype=token-issued&agent=Patient/{mine}")).await;
    assert_eq!(tokens.len(), 1, "{tokens:?}");
    assert!(tokens[0]["outcomeDesc"].as_str().unwrap().contains("patient/*.rs"));

    // The administrator's report for today lists both patients; narrowed to one, only that one.
    let day = today();
    let report = kiln_command(&app, &["audit", "report", "--from", &day, "--to", &day]);
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(report.status.success(), "{text}{}", String::from_utf8_lossy(&report.stderr));
    assert!(text.contains(&format!("Patient/{mine}")) && text.contains(&format!("Patient/{other}")), "{text}");
    let narrowed = kiln_command(&app, &["audit", "report", "--from", &day, "--to", &day, "--patient", &mine]);
    let text = String::from_utf8_lossy(&narrowed.stdout);
    assert!(text.contains(&format!("Patient/{mine}")) && !text.contains(&other), "{text}");
    assert!(text.contains("individuals whose records were accessed: 1"), "{text}");
}

crate::on_both_backends!(
    reads_and_searches_are_audited_with_what_they_disclosed,
    refused_requests_are_audited_too,
    the_audit_trail_cannot_be_changed_through_any_path,
    tampering_with_a_stored_event_is_caught,
    each_event_is_stored_once_and_served_whole_on_every_path,
    two_nodes_writing_at_once_keep_one_unbroken_chain,
    sign_ins_tokens_and_a_patients_accounting_of_disclosures,
);

/// A SQLite database made before the audit log had a file of its own keeps its log: opening it
/// moves the rows into `kiln.audit.db`, and the chain reads on from them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audit_log_in_the_main_sqlite_file_moves_to_its_own() {
    use kiln::store::Store;
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("kiln.db");
    let url = format!("sqlite://{}?mode=rwc", main.display());
    let old = sqlx::SqlitePool::connect(&url).await.unwrap();
    kiln::store::sqlite::migrator().run(&old).await.unwrap();
    sqlx::query(
        "INSERT INTO audit_log (tenant, seq, id, json, content_hash, prev_hash, hash) \
         VALUES ('test-clinic', 1, 'e1', x'7b7d', 'c', 'p', 'h'), ('test-clinic', 2, 'e2', x'7b7d', 'c', 'h', 'h2')",
    )
    .execute(&old)
    .await
    .unwrap();
    old.close().await;

    let store = kiln::store::sqlite::connect(&url, 2).await.unwrap();
    let tenant = kiln::access::TenantId::parse("test-clinic").unwrap();
    assert_eq!(store.audit_head_seq(&tenant).await.unwrap(), 2, "the readers see the moved rows");
    let links = store.audit_links(&tenant, 0, 10).await.unwrap();
    assert_eq!(links.iter().map(|row| row.link.id.as_str()).collect::<Vec<_>>(), ["e1", "e2"]);
    drop(store);

    let reopened = sqlx::SqlitePool::connect(&url).await.unwrap();
    let left =
        sqlx::query("SELECT 1 FROM sqlite_master WHERE name = 'audit_log'").fetch_optional(&reopened).await.unwrap();
    assert!(left.is_none(), "the main file has no log any more");
    reopened.close().await;
    let log_file = kiln::store::sqlite::audit_file(&main).unwrap();
    let log = sqlx::SqlitePool::connect(&format!("sqlite://{}", log_file.display())).await.unwrap();
    let rows: i64 = sqlx::Row::get(&sqlx::query("SELECT COUNT(*) FROM audit_log").fetch_one(&log).await.unwrap(), 0);
    assert_eq!(rows, 2);
    log.close().await;
    // Opening it again moves nothing twice.
    let again = kiln::store::sqlite::connect(&url, 2).await.unwrap();
    assert_eq!(again.audit_links(&tenant, 0, 10).await.unwrap().len(), 2);
}
