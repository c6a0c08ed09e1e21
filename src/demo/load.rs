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

/// Writes `DIR/bundles/shared.json`, `DIR/bundles/patient-NNNNNN.json` (transaction Bundles) and
/// `DIR/ndjson/<Type>.ndjson`.
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
    write_set("shared.json", &shared_resources(config), &mut writers)?;
    for index in 0..config.patients {
        write_set(&format!("patient-{index:06}.json"), &patient_record(config, index), &mut writers)?;
    }
    for writer in writers.values_mut() {
        writer.flush()?;
    }
    Ok(Summary { patients: config.patients, resources, seconds: start.elapsed().as_secs_f64() })
}

/// Loads the records into the FHIR server at `base` (e.g. `http://127.0.0.1:8080/fhir`) with
/// update-as-create (`PUT [type]/[id]`): the shared resources first, then the patients,
/// `concurrency` at a time, each patient's resources in order.
pub async fn load_into(config: &DemoConfig, base: &str, concurrency: usize) -> Result<Summary, String> {
    let start = Instant::now();
    let client = reqwest::Client::new();
    let base = base.trim_end_matches('/').to_string();
    let resources = Arc::new(AtomicU64::new(0));
    put_all(&client, &base, &shared_resources(config), &resources).await?;
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
                put_all(&client, &base, &patient_record(&config, index), &resources).await?;
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

async fn put_all(client: &reqwest::Client, base: &str, set: &[Value], counter: &AtomicU64) -> Result<(), String> {
    for resource in set {
        let resource_type = resource["resourceType"].as_str().unwrap_or_default();
        let id = resource["id"].as_str().unwrap_or_default();
        let url = format!("{base}/{resource_type}/{id}");
        let response = client
            .put(&url)
            .header("content-type", "application/fhir+json")
            .header("prefer", "return=minimal")
            .body(resource.to_string())
            .send()
            .await
            .map_err(|e| format!("PUT {url}: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("PUT {url}: {status}: {}", &body[..body.len().min(500)]));
        }
        counter.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
