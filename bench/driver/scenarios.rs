//! The scenarios: capability probes, the request plans they pick from, and their workloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{Client, Method};
use serde_json::{Value, json};

use crate::fhir::{self, Rng, Targets};
use crate::load::{Req, WorkerCtx, Workload};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// GET [type]/[id]
    Read,
    /// GET [type]/[id]/_history/1
    Vread,
    /// GET [type]/[id]/_history
    History,
    /// GET Patient/_history?_count=20
    TypeHistory,
    /// Typical searches by name, patient + code, patient + date
    Search,
    /// GET Patient/[id]/$everything
    Everything,
    /// POST Observation
    Create,
    /// Whole patient records: transaction Bundles, or PUT of each resource
    Ingest,
    /// 80% reads (read, vread, history, search), 20% writes (POST and PUT Observation)
    Mixed,
}

impl Scenario {
    pub const STANDARD: [Scenario; 9] = [
        Scenario::Read,
        Scenario::Vread,
        Scenario::History,
        Scenario::TypeHistory,
        Scenario::Search,
        Scenario::Everything,
        Scenario::Create,
        Scenario::Ingest,
        Scenario::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Vread => "vread",
            Scenario::History => "history",
            Scenario::TypeHistory => "type-history",
            Scenario::Search => "search",
            Scenario::Everything => "everything",
            Scenario::Create => "create",
            Scenario::Ingest => "ingest",
            Scenario::Mixed => "mixed",
        }
    }

    /// Read-only scenarios whose answers the baseline server can replay.
    pub fn baselined(self) -> bool {
        matches!(
            self,
            Scenario::Read
                | Scenario::Vread
                | Scenario::History
                | Scenario::TypeHistory
                | Scenario::Search
                | Scenario::Everything
        )
    }
}

pub const TYPE_HISTORY: &str = "Patient/_history?_count=20";
pub const SKIPPED: &str = "skipped: the server does not support it yet";

/// What the server answered to the probes of the not-yet-universal interactions.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Capabilities {
    pub search: bool,
    pub everything: bool,
    pub transaction: bool,
}

/// 404, 405 and 501 mean "not supported"; anything else (even 400 or 500) means the endpoint exists.
fn supported(status: Option<reqwest::StatusCode>) -> bool {
    !matches!(status.map(|s| s.as_u16()), Some(404 | 405 | 501) | None)
}

pub async fn probe(client: &Client, base: &str, targets: &Targets) -> Capabilities {
    let status = |r: Result<reqwest::Response, reqwest::Error>| r.ok().map(|r| r.status());
    let search = status(client.get(format!("{base}/Patient?_count=1")).send().await);
    let everything = match targets.patients.first() {
        Some(id) => status(client.get(format!("{base}/Patient/{id}/$everything")).send().await),
        None => None,
    };
    let empty = json!({"resourceType": "Bundle", "type": "transaction", "entry": []});
    let transaction = status(
        client
            .post(base.to_string())
            .header("content-type", "application/fhir+json")
            .body(empty.to_string())
            .send()
            .await,
    );
    Capabilities { search: supported(search), everything: supported(everything), transaction: supported(transaction) }
}

/// Patients the search and everything plans are built from: a deterministic sample of the targets.
const PLAN_PATIENTS: usize = 100;

fn sample(ids: &[String], n: usize, seed: u64, salt: u64) -> Vec<&String> {
    let mut rng = Rng::derive(seed, salt);
    (0..n.min(ids.len())).map(|_| rng.pick(ids)).collect()
}

/// The concrete search URLs of the search scenario, the same for the driver and the baseline server
/// given the same targets and seed: a fixed set built from a sample of the patients (fetched for
/// their family names).
pub async fn search_plan(client: &Client, base: &str, targets: &Targets, seed: u64) -> Vec<String> {
    let mut urls = Vec::new();
    for id in sample(&targets.patients, PLAN_PATIENTS, seed, 0x5EA4C4) {
        let family = fhir::get_json(client, base, &format!("Patient/{id}"))
            .await
            .and_then(|p| p.pointer("/name/0/family").and_then(Value::as_str).map(str::to_string));
        if let Some(family) = family {
            urls.push(format!("Patient?name={}", encode(&family)));
            urls.push(format!("Patient?family={}&gender=female&_count=20", encode(&family)));
        }
        urls.push(format!("Observation?patient={id}&code=http://loinc.org%7C8867-4"));
        urls.push(format!("Observation?patient={id}&date=ge2024-06-01"));
        urls.push(format!("Observation?subject=Patient/{id}&category=vital-signs&_sort=-date&_count=10"));
    }
    urls
}

/// The everything URLs: `Patient/[id]/$everything` of a sample of the patients.
pub fn everything_plan(targets: &Targets, seed: u64) -> Vec<String> {
    sample(&targets.patients, PLAN_PATIENTS, seed, 0xE7E4)
        .into_iter()
        .map(|id| format!("Patient/{id}/$everything"))
        .collect()
}

/// Percent-encodes a query value (unreserved characters stay).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Uniform picks from a fixed list of GET paths.
pub fn gets(paths: Vec<String>) -> Workload {
    let paths = Arc::new(paths);
    Arc::new(move |ctx: &mut WorkerCtx| Req::get(ctx.rng.pick(&paths).clone()))
}

/// `gets` of a search or $everything plan, which is empty without Patient targets.
pub fn planned(paths: Vec<String>) -> Result<Workload, String> {
    if paths.is_empty() {
        return Err("needs Patient targets".into());
    }
    Ok(gets(paths))
}

pub fn read_paths(targets: &Targets, suffix: &str) -> Vec<String> {
    targets.all.iter().map(|t| format!("{}{suffix}", t.path())).collect()
}

fn new_observation(ctx: &mut WorkerCtx, patients: &[String]) -> Req {
    let patient = ctx.rng.pick(patients).clone();
    let day = ctx.rng.range(0, 999);
    let bpm = ctx.rng.range(60, 100);
    Req::with_body(Method::POST, "Observation".into(), &fhir::heart_rate(None, &patient, day, bpm), 1)
}

/// POST of a new heart-rate Observation for a random target patient.
pub fn create(targets: &Targets) -> Result<Workload, String> {
    if targets.patients.is_empty() {
        return Err("create needs Patient targets".into());
    }
    let patients = Arc::new(targets.patients.clone());
    Ok(Arc::new(move |ctx: &mut WorkerCtx| new_observation(ctx, &patients)))
}

/// New patient records (Patient + its Observations, ids unique to this run): one transaction
/// Bundle per request when supported, else one PUT per resource, the Patient first.
pub fn ingest(transactions: bool, run_tag: String) -> Workload {
    let next = Arc::new(AtomicU64::new(1));
    Arc::new(move |ctx: &mut WorkerCtx| {
        let n = next.fetch_add(1, Ordering::Relaxed) as usize;
        let pid = format!("ing-{run_tag}-{n:06}");
        let record = fhir::record(&pid, |k| format!("ing-{run_tag}-{n:06}-{k}"), n);
        if transactions {
            return Req::with_body(Method::POST, String::new(), &fhir::transaction(&record), record.len() as u64);
        }
        let mut reqs = record.iter().map(|(path, body)| Req::with_body(Method::PUT, path.clone(), body, 1));
        let first = reqs.next().expect("a record has a Patient");
        ctx.pending.extend(reqs);
        first
    })
}

/// Existing Observations (fetched once) that the mixed workload PUTs back with a changed value.
/// Each worker owns those whose index ≡ worker (mod workers), so no two workers update one resource.
pub async fn fetch_updatable(client: &Client, base: &str, targets: &Targets, want: usize, seed: u64) -> Vec<Value> {
    let mut rng = Rng::derive(seed, 0x0BDA7E);
    let mut ids: Vec<&String> = targets.observations.iter().collect();
    // A deterministic partial shuffle, then the first `want`.
    for i in 0..want.min(ids.len()) {
        let j = i + rng.below(ids.len() - i);
        ids.swap(i, j);
    }
    let mut out = Vec::new();
    for id in ids.into_iter().take(want) {
        if let Some(Value::Object(obs)) = fhir::get_json(client, base, &format!("Observation/{id}")).await
            && obs.get("valueQuantity").and_then(|q| q.get("value")).is_some_and(Value::is_number)
        {
            // Without meta (the server sets it), keeping the other members in order.
            out.push(Value::Object(obs.into_iter().filter(|(k, _)| k != "meta").collect()));
        }
    }
    out
}

/// 80% reads spread evenly over read, vread, history (and search when supported), 20% writes:
/// half POST of a new Observation, half PUT of an existing one with a changed value.
pub fn mixed(targets: &Targets, search: Option<Vec<String>>, updatable: Vec<Value>) -> Result<Workload, String> {
    if targets.patients.is_empty() {
        return Err("mixed needs Patient targets".into());
    }
    let paths = Arc::new(targets.all.iter().map(|t| t.path()).collect::<Vec<_>>());
    let patients = Arc::new(targets.patients.clone());
    let search = Arc::new(search.unwrap_or_default());
    let updatable = Arc::new(updatable);
    let read_kinds = if search.is_empty() { 3 } else { 4 };
    Ok(Arc::new(move |ctx: &mut WorkerCtx| {
        let roll = ctx.rng.below(100);
        if roll < 80 {
            let path = ctx.rng.pick(&paths);
            return match ctx.rng.below(read_kinds) {
                0 => Req::get(path.clone()).tagged("read"),
                1 => Req::get(format!("{path}/_history/1")).tagged("vread"),
                2 => Req::get(format!("{path}/_history")).tagged("history"),
                _ => Req::get(ctx.rng.pick(&search).clone()).tagged("search"),
            };
        }
        let mine = (updatable.len() + ctx.workers - 1 - ctx.worker) / ctx.workers;
        if roll < 90 || mine == 0 {
            return new_observation(ctx, &patients).tagged("create");
        }
        let mut obs = updatable[ctx.worker + ctx.workers * ctx.rng.below(mine)].clone();
        let old = obs.pointer("/valueQuantity/value").and_then(Value::as_u64).unwrap_or(0) as u32;
        let mut bpm = ctx.rng.range(60, 100);
        if bpm == old {
            bpm = if bpm == 100 { 60 } else { bpm + 1 };
        }
        obs["valueQuantity"]["value"] = json!(bpm);
        let id = obs["id"].as_str().unwrap_or_default().to_string();
        Req::with_body(Method::PUT, format!("Observation/{id}"), &obs, 1).tagged("update")
    }))
}

/// How many Observations the mixed workload fetches to update.
pub fn updatable_count(concurrency: usize) -> usize {
    (concurrency * 16).clamp(64, 1024)
}
