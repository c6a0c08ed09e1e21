//! Validation speed: parses and validates every official R4 example of a supported type (from
//! `.fhir-cache/`, see `fhir-profiles/fetch.sh`) several times and prints the median time per
//! resource. Run: `cargo bench --bench validation`.

use std::time::Instant;

use kiln::fhir::json::parse_resource;
use kiln::fhir::registry::Registry;
use kiln::fhir::validation::validate;

const RUNS: usize = 7;

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".fhir-cache/hl7.fhir.r4.examples-4.0.1/package");
    let registry = Registry::global();
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("run fhir-profiles/fetch.sh first") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let type_name = name.split('-').next().unwrap_or("");
        if name.ends_with(".json") && registry.resource(type_name).is_some() {
            let bytes = std::fs::read(&path).unwrap();
            if parse_resource(&bytes).is_ok_and(|(r, _)| r.resource_type == type_name) {
                bodies.push((type_name.to_string(), bytes));
            }
        }
    }
    let total_bytes: usize = bodies.iter().map(|(_, b)| b.len()).sum();
    let clinical: Vec<&Vec<u8>> = bodies
        .iter()
        .filter(|(t, _)| {
            matches!(
                t.as_str(),
                "Patient" | "Observation" | "Encounter" | "MedicationRequest" | "Condition" | "AllergyIntolerance"
            )
        })
        .map(|(_, b)| b)
        .collect();
    // Median over RUNS of the time per resource of `work` over the whole set.
    let median = |set: &[&Vec<u8>], work: &dyn Fn(&[u8])| -> f64 {
        let mut per_resource: Vec<f64> = (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                for body in set {
                    work(body);
                }
                start.elapsed().as_secs_f64() * 1e6 / set.len() as f64
            })
            .collect();
        per_resource.sort_by(f64::total_cmp);
        per_resource[RUNS / 2]
    };
    let parse_and_validate = |body: &[u8]| {
        let (_, value) = parse_resource(body).unwrap();
        let _ = std::hint::black_box(validate(registry, &value));
    };
    let parse_only = |body: &[u8]| {
        std::hint::black_box(parse_resource(body).unwrap());
    };
    let measure = |set: &[&Vec<u8>]| -> (f64, f64) { (median(set, &parse_and_validate), median(set, &parse_only)) };
    let all: Vec<&Vec<u8>> = bodies.iter().map(|(_, b)| b).collect();
    println!(
        "resources: {} ({} KiB), {} clinical (Patient, Observation, Encounter, MedicationRequest, Condition, AllergyIntolerance)",
        all.len(),
        total_bytes / 1024,
        clinical.len()
    );
    println!("median of {RUNS} runs, µs per resource: parse + validate (of which parsing)");
    let (total, parse) = measure(&all);
    println!("  all supported types: {total:.1} ({parse:.1})");
    let (total, parse) = measure(&clinical);
    println!("  clinical types:      {total:.1} ({parse:.1})");
}
