//! `kiln demo-data`: writes the generated records to files (transaction Bundles per patient and
//! NDJSON per type) or loads them into a running Kiln over its FHIR API.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;

use super::{DemoConfig, ndjson_line, patient_record, shared_resources, transaction_bundle};

/// What a run produced.
#[derive(Debug, Default)]
pub struct Summary {
    pub patients: u32,
    pub resources: u64,
    pub seconds: f64,
}

/// Writes `DIR/bundles/000-shared.json`, `DIR/bundles/patient-NNNNNN.json` (transaction
/// Bundles, named so that name order is load order) and `DIR/ndjson/<Type>.ndjson`.
pub fn write_files(config: &DemoConfig, dir: &Path) -> std::io::Result<Summary> {
    let start = Instant::now();
    let bundles = dir.join("bundles");
    let ndjson = dir.join("ndjson");
    fs::create_dir_all(&bundles)?;
    fs::create_dir_all(&ndjson)?;
    let mut writers: HashMap<String, BufWriter<File>> = HashMap::new();
    let mut resources = 0u64;
    let mut write_set =
        |name: &str, set: &[Value], writers: &mut HashMap<String, BufWriter<File>>| -> std::io::Result<()> {
            let bundle = serde_json::to_vec(&transaction_bundle(set)).map_err(std::io::Error::other)?;
            fs::write(bundles.join(name), bundle)?;
            for resource in set {
                let resource_type = resource["resourceType"].as_str().unwrap_or("Unknown").to_string();
                let writer = match writers.entry(resource_type) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let file = File::create(ndjson.join(format!("{}.ndjson", e.key())))?;
                        e.insert(BufWriter::new(file))
                    }
                };
                writer.write_all(ndjson_line(resource).as_bytes())?;
            }
            resources += set.len() as u64;
            Ok(())
        };
    write_set("000-shared.json", &shared_resources(config), &mut writers)?;
    for index in 0..config.patients {
        write_set(&format!("patient-{index:06}.json"), &patient_record(config, index), &mut writers)?;
    }
    for writer in writers.values_mut() {
        writer.flush()?;
    }
    Ok(Summary { patients: config.patients, resources, seconds: start.elapsed().as_secs_f64() })
}

/// Loads the records into the FHIR server at `base` (e.g. `http://127.0.0.1:8080/fhir`) as
/// transaction Bundles (`POST [base]`): the shared resources first, in order, then one Bundle
/// per patient, `concurrency` at a time, sending `token` as the bearer token.
pub async fn load_into(
    config: &DemoConfig,
    base: &str,
    concurrency: usize,
    token: Option<&str>,
) -> Result<Summary, String> {
    let start = Instant::now();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the access token is not a valid header value".to_string())?;
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let client = reqwest::Client::builder().default_headers(headers).build().map_err(|e| e.to_string())?;
    let base = base.trim_end_matches('/').to_string();
    let resources = Arc::new(AtomicU64::new(0));
    // Shared resources refer only to those before them: chunks in order keep every reference
    // pointing at something already stored.
    for chunk in shared_resources(config).chunks(SHARED_PER_BUNDLE) {
        post_transaction(&client, &base, chunk, &resources).await?;
    }
    let next = Arc::new(AtomicU32::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, base, config, next, resources) =
            (client.clone(), base.clone(), config.clone(), next.clone(), resources.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= config.patients {
                    return Ok::<(), String>(());
                }
                post_transaction(&client, &base, &patient_record(&config, index), &resources).await?;
                if (index + 1) % 1000 == 0 {
                    eprintln!("kiln demo-data: {} patients loaded", index + 1);
                }
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    Ok(Summary {
        patients: config.patients,
        resources: resources.load(Ordering::Relaxed),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Entries per Bundle of shared resources (well under the server's `max_bundle_entries`).
const SHARED_PER_BUNDLE: usize = 500;

async fn post_transaction(
    client: &reqwest::Client,
    base: &str,
    set: &[Value],
    counter: &AtomicU64,
) -> Result<(), String> {
    if set.is_empty() {
        return Ok(());
    }
    let response = client
        .post(base)
        .header("content-type", "application/fhir+json")
        .body(transaction_bundle(set).to_string())
        .send()
        .await
        .map_err(|e| format!("POST {base}: {e}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(format!(
            "POST {base} (a transaction of {} resources): {status}: {}",
            set.len(),
            &body[..body.len().min(500)]
        ));
    }
    counter.fetch_add(set.len() as u64, Ordering::Relaxed);
    Ok(())
}
