//! Synthetic FHIR data (seed patients, vital-sign Observations, ingest records), targets files and seeding.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

/// Observations written per seeded (or ingested, or generated) patient.
pub const OBS_PER_PATIENT: usize = 5;

/// A small deterministic PRNG (SplitMix64): reproducible target picks without an extra dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// An independent stream for `salt` (a worker index, a scenario, …) of the same seed.
    pub fn derive(seed: u64, salt: u64) -> Self {
        let mut r = Rng(seed ^ salt.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below((hi - lo + 1) as usize) as u32
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One `Type/id` line of a targets file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: String,
    pub id: String,
}

impl Target {
    pub fn new(kind: &str, id: &str) -> Self {
        Target { kind: kind.to_string(), id: id.to_string() }
    }

    /// `Type/id`, relative to the FHIR base.
    pub fn path(&self) -> String {
        format!("{}/{}", self.kind, self.id)
    }
}

/// The targets a run picks from: all of them, and the Patients and Observations among them.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub all: Vec<Target>,
    pub patients: Vec<String>,
    pub observations: Vec<String>,
}

impl Targets {
    pub fn from_list(all: Vec<Target>) -> Self {
        let patients = all.iter().filter(|t| t.kind == "Patient").map(|t| t.id.clone()).collect();
        let observations = all.iter().filter(|t| t.kind == "Observation").map(|t| t.id.clone()).collect();
        Targets { all, patients, observations }
    }

    /// Reads `Type/id` lines; blank lines and `#` comments are skipped.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read targets {}: {e}", path.display()))?;
        let mut all = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.trim_start_matches('/');
            match line.split_once('/') {
                Some((kind, id)) if !kind.is_empty() && !id.is_empty() && !id.contains('/') => {
                    all.push(Target::new(kind, id))
                }
                _ => return Err(format!("{}:{}: expected Type/id, got {line:?}", path.display(), n + 1)),
            }
        }
        if all.is_empty() {
            return Err(format!("{}: no targets", path.display()));
        }
        Ok(Targets::from_list(all))
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut text = String::with_capacity(self.all.len() * 32);
        for t in &self.all {
            let _ = writeln!(text, "{}/{}", t.kind, t.id);
        }
        std::fs::write(path, text).map_err(|e| format!("cannot write targets {}: {e}", path.display()))
    }
}

const FAMILIES: [&str; 40] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
];
const GIVEN_F: [&str; 8] = ["Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Susan", "Jessica", "Sarah"];
const GIVEN_M: [&str; 8] = ["James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph"];
const CITIES: [&str; 6] = ["Springfield", "Riverside", "Fairview", "Madison", "Georgetown", "Clinton"];

/// Id of the `n`th seeded patient (1-based): `bench-pat-000001`.
pub fn seed_patient_id(n: usize) -> String {
    format!("bench-pat-{n:06}")
}

/// Id of the `k`th (1-based) seeded Observation of patient `n`: `bench-obs-000001-1`.
pub fn seed_observation_id(n: usize, k: usize) -> String {
    format!("bench-obs-{n:06}-{k}")
}

/// A valid R4 Patient without identifiers (Kiln assigns the MRN, which must stay unique per clinic).
pub fn patient(id: Option<&str>, n: usize) -> Value {
    let mut rng = Rng::derive(0x5EED, n as u64);
    let female = n.is_multiple_of(2);
    let given = if female { rng.pick(&GIVEN_F) } else { rng.pick(&GIVEN_M) };
    let mut p = json!({
        "resourceType": "Patient",
        "active": true,
        "name": [{"use": "official", "family": FAMILIES[n % FAMILIES.len()], "given": [given]}],
        "telecom": [{"system": "phone", "value": format!("555-{:04}", n % 10_000), "use": "home"}],
        "gender": if female { "female" } else { "male" },
        "birthDate": format!("{}-{:02}-{:02}", 1940 + rng.range(0, 65), rng.range(1, 12), rng.range(1, 28)),
        "address": [{"use": "home", "line": [format!("{} Main Street", rng.range(1, 999))],
                     "city": rng.pick(&CITIES), "postalCode": format!("{:05}", rng.range(10_000, 99_999)), "country": "US"}]
    });
    if let Some(id) = id {
        p["id"] = json!(id);
    }
    p
}

/// A valid R4 vital-signs heart-rate Observation (LOINC 8867-4, 60-100 /min) of `Patient/patient_id`.
pub fn heart_rate(id: Option<&str>, patient_id: &str, day: u32, bpm: u32) -> Value {
    let date = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap() + chrono::Days::new(u64::from(day % 1000));
    let mut o = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs", "display": "Vital Signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}], "text": "Heart rate"},
        "subject": {"reference": format!("Patient/{patient_id}")},
        "effectiveDateTime": format!("{}T{:02}:{:02}:00Z", date.format("%Y-%m-%d"), 8 + day % 10, (day * 7) % 60),
        "valueQuantity": {"value": bpm, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}
    });
    if let Some(id) = id {
        o["id"] = json!(id);
    }
    o
}

/// One patient's record: the Patient, then its Observations, each with its client id (for PUT).
pub fn record(patient_id: &str, obs_id: impl Fn(usize) -> String, n: usize) -> Vec<(String, Value)> {
    let mut rng = Rng::derive(0x0B5, n as u64);
    let mut out = vec![(format!("Patient/{patient_id}"), patient(Some(patient_id), n))];
    for k in 1..=OBS_PER_PATIENT {
        let id = obs_id(k);
        let day = (n * 3 + k * 37) as u32;
        out.push((format!("Observation/{id}"), heart_rate(Some(&id), patient_id, day, rng.range(60, 100))));
    }
    out
}

/// A transaction Bundle that PUTs one record.
pub fn transaction(record: &[(String, Value)]) -> Value {
    let entries: Vec<Value> = record
        .iter()
        .map(|(path, resource)| json!({"resource": resource, "request": {"method": "PUT", "url": path}}))
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// Seeds `patients` Patients `bench-pat-NNNNNN` with their Observations by PUT (idempotent:
/// skipped when the last patient's last Observation already exists) and returns their targets.
pub async fn seed(
    client: &reqwest::Client,
    base: &str,
    patients: usize,
    concurrency: usize,
) -> Result<Targets, String> {
    let mut all = Vec::with_capacity(patients * (1 + OBS_PER_PATIENT));
    for n in 1..=patients {
        all.push(Target::new("Patient", &seed_patient_id(n)));
        for k in 1..=OBS_PER_PATIENT {
            all.push(Target::new("Observation", &seed_observation_id(n, k)));
        }
    }
    let targets = Targets::from_list(all);
    if patients == 0 {
        return Err("--seed-patients must be at least 1".into());
    }
    let last = format!("{base}/Observation/{}", seed_observation_id(patients, OBS_PER_PATIENT));
    let first = format!("{base}/Patient/{}", seed_patient_id(1));
    let exists =
        |url: String| async move { client.get(url).send().await.map(|r| r.status().is_success()).unwrap_or(false) };
    if exists(first).await && exists(last).await {
        eprintln!("seed: {patients} patients already present, not re-seeding");
        return Ok(targets);
    }
    let started = std::time::Instant::now();
    let next = Arc::new(AtomicUsize::new(1));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, base, next) = (client.clone(), base.to_string(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n > patients {
                    return Ok::<(), String>(());
                }
                let pid = seed_patient_id(n);
                for (path, body) in record(&pid, |k| seed_observation_id(n, k), n) {
                    put(&client, &base, &path, &body).await?;
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let secs = started.elapsed().as_secs_f64();
    let count = targets.all.len();
    eprintln!("seed: PUT {count} resources in {secs:.1} s ({:.0} resources/s)", count as f64 / secs);
    Ok(targets)
}

/// PUT one resource, failing on a non-2xx answer.
pub async fn put(client: &reqwest::Client, base: &str, path: &str, body: &Value) -> Result<(), String> {
    let resp = client
        .put(format!("{base}/{path}"))
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(body).unwrap())
        .send()
        .await
        .map_err(|e| format!("PUT {path}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        return Err(format!("PUT {path}: {status}: {}", truncate(&text, 400)));
    }
    resp.bytes().await.map_err(|e| format!("PUT {path}: {e}"))?;
    Ok(())
}

/// GET one resource as JSON, `None` unless 2xx.
pub async fn get_json(client: &reqwest::Client, base: &str, path: &str) -> Option<Value> {
    let resp = client.get(format!("{base}/{path}")).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Writes `patients` synthetic records (`bulk-pat-NNNNNN` + Observations) as NDJSON, one resource a line.
pub fn write_ndjson(path: &Path, patients: usize) -> Result<usize, String> {
    use std::io::Write;
    let file = std::fs::File::create(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let mut lines = 0;
    for n in 1..=patients {
        let pid = format!("bulk-pat-{n:06}");
        for (_, resource) in record(&pid, |k| format!("bulk-obs-{n:06}-{k}"), n) {
            serde_json::to_writer(&mut out, &resource).map_err(|e| e.to_string())?;
            out.write_all(b"\n").map_err(|e| e.to_string())?;
            lines += 1;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(lines)
}
