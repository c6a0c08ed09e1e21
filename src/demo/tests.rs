//! Tests of the demo generator's guarantees: determinism, independence of patients, unique ids,
//! resolvable references in load order, physiological vital signs, non-overlapping bookings, and
//! the FHIR shape rules the server relies on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::OnceLock;

use chrono::NaiveDate;
use serde_json::Value;

use super::*;

fn config(seed: u64) -> DemoConfig {
    DemoConfig { patients: 500, seed, today: NaiveDate::from_ymd_opt(2025, 6, 2).expect("date") }
}

/// Shared resources and 500 patients for seed 42, generated once for all tests.
fn sample() -> &'static (Vec<Value>, Vec<Vec<Value>>) {
    static SAMPLE: OnceLock<(Vec<Value>, Vec<Vec<Value>>)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let c = config(42);
        (shared_resources(&c), (0..c.patients).map(|i| patient_record(&c, i)).collect())
    })
}

fn key(r: &Value) -> String {
    format!("{}/{}", r["resourceType"].as_str().unwrap_or("?"), r["id"].as_str().unwrap_or("?"))
}

fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "reference" {
                    if let Some(s) = v.as_str() {
                        out.push(s.to_owned());
                    }
                } else {
                    references(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

fn code(r: &Value) -> &str {
    r["code"]["coding"][0]["code"].as_str().unwrap_or("")
}

fn number(q: &Value) -> f64 {
    q["value"].as_f64().expect("numeric value")
}

#[test]
fn same_seed_gives_identical_output() {
    let a = config(42);
    let b = config(42);
    assert_eq!(shared_resources(&a), shared_resources(&b));
    for i in [0, 1, 17, 499, 123_456] {
        let x = patient_record(&a, i);
        assert_eq!(x, patient_record(&b, i));
        let text: String = x.iter().map(ndjson_line).collect();
        let again: String = patient_record(&b, i).iter().map(ndjson_line).collect();
        assert_eq!(text, again, "serialisation is stable too");
    }
}

#[test]
fn different_seed_gives_different_output() {
    let a = config(42);
    let b = config(43);
    for i in [0, 5, 250] {
        assert_ne!(patient_record(&a, i), patient_record(&b, i));
    }
    let names = |c: &DemoConfig| -> Vec<Value> { (0..20).map(|i| patient_record(c, i)[0]["name"].clone()).collect() };
    assert_ne!(names(&a), names(&b));
}

#[test]
fn patient_record_is_independent_of_other_indices() {
    let c = config(42);
    let (_, records) = sample();
    // Alone, after others, in reverse order, and with another population size.
    assert_eq!(patient_record(&c, 137), records[137]);
    let reversed: Vec<Vec<Value>> = (130..140).rev().map(|i| patient_record(&c, i)).collect();
    assert_eq!(reversed[2], records[137]);
    let bigger = DemoConfig { patients: 1_000_000, ..c.clone() };
    assert_eq!(patient_record(&bigger, 137), records[137]);
    let shared_config = &c;
    let threads: Vec<Vec<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = [137, 3].iter().map(|&i| s.spawn(move || patient_record(shared_config, i))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(threads[0], records[137]);
    assert_eq!(threads[1], records[3]);
}

#[test]
fn ids_are_valid_and_unique_across_200_patients() {
    let (shared, records) = sample();
    let mut seen = HashSet::new();
    for r in shared.iter().chain(records[..200].iter().flatten()) {
        let id = r["id"].as_str().expect("id");
        assert!(
            (1..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
            "invalid id {id}"
        );
        assert!(seen.insert(key(r)), "duplicate {}", key(r));
    }
    let mrns: HashSet<_> =
        records.iter().map(|p| p[0]["identifier"][0]["value"].as_str().expect("mrn").to_owned()).collect();
    assert_eq!(mrns.len(), records.len(), "MRNs are unique");
}

#[test]
fn identifiers_follow_the_rules() {
    let c = config(42);
    let mut mrns = HashSet::new();
    let mut ssns = HashSet::new();
    for i in (0..60).chain(99_990..100_010).chain(199_995..200_003) {
        let patient = &patient_record(&c, i)[0];
        let ids = patient["identifier"].as_array().expect("identifiers");
        let mrn = ids[0]["value"].as_str().expect("mrn");
        assert_eq!(ids[0]["type"]["coding"][0]["code"], "MR");
        assert_eq!(ids[0]["system"], "urn:kiln:demo:mrn");
        let parts: Vec<&str> = mrn.split('-').collect();
        assert!(parts.len() == 3 && parts[0] == "MRN" && parts[1].len() == 4 && parts[2].len() == 5, "{mrn}");
        let year: i32 = parts[1].parse().expect("year");
        let birth = patient["birthDate"].as_str().expect("birthDate");
        assert!(birth[..4].parse::<i32>().expect("birth year") <= year, "registered before birth: {mrn} {birth}");
        assert!(mrns.insert(mrn.to_owned()), "duplicate MRN {mrn}");
        let ssn = ids[1]["value"].as_str().expect("ssn");
        assert_eq!(ids[1]["system"], "http://hl7.org/fhir/sid/us-ssn");
        assert!(ssn.starts_with('9') && ssn.len() == 11, "{ssn}");
        assert!(ssns.insert(ssn.to_owned()), "duplicate SSN {ssn}");
    }
}

#[test]
fn every_reference_resolves_to_an_earlier_resource() {
    let (shared, records) = sample();
    let mut known: HashSet<String> = HashSet::new();
    for r in shared {
        let mut refs = Vec::new();
        references(r, &mut refs);
        for target in refs {
            assert!(known.contains(&target), "{} references {target} before it exists", key(r));
        }
        known.insert(key(r));
    }
    for record in records {
        let mut local = known.clone();
        for r in record {
            let mut refs = Vec::new();
            references(r, &mut refs);
            for target in refs {
                assert!(local.contains(&target), "{} references {target} that is not earlier in the record", key(r));
            }
            local.insert(key(r));
        }
    }
}

#[test]
fn vital_signs_stay_in_physiological_ranges() {
    let (_, records) = sample();
    let ranges: HashMap<&str, (f64, f64, &str)> = [
        ("8867-4", (40.0, 140.0, "/min")),
        ("9279-1", (10.0, 30.0, "/min")),
        ("8310-5", (35.5, 39.5, "Cel")),
        ("59408-5", (88.0, 100.0, "%")),
        ("29463-7", (3.0, 200.0, "kg")),
        ("8302-2", (45.0, 200.0, "cm")),
        ("39156-5", (5.0, 80.0, "kg/m2")),
        ("72514-3", (0.0, 10.0, "{score}")),
    ]
    .into_iter()
    .collect();
    let mut checked = 0;
    for record in records {
        let mut height = None;
        let mut weight = None;
        for r in record.iter().filter(|r| r["resourceType"] == "Observation") {
            if r["category"][0]["coding"][0]["code"] != "vital-signs" {
                continue;
            }
            assert_eq!(r["status"], "final");
            assert_eq!(
                r["category"][0]["coding"][0]["system"],
                "http://terminology.hl7.org/CodeSystem/observation-category"
            );
            assert_eq!(r["code"]["coding"][0]["system"], "http://loinc.org");
            checked += 1;
            if code(r) == "85354-9" {
                let s = number(&r["component"][0]["valueQuantity"]);
                let d = number(&r["component"][1]["valueQuantity"]);
                assert_eq!(code(&r["component"][0]), "8480-6");
                assert_eq!(code(&r["component"][1]), "8462-4");
                assert_eq!(r["component"][0]["valueQuantity"]["code"], "mm[Hg]");
                assert!((80.0..=210.0).contains(&s) && (40.0..=125.0).contains(&d) && d < s, "BP {s}/{d}");
                continue;
            }
            let (lo, hi, unit) = ranges[code(r)];
            let q = &r["valueQuantity"];
            let v = number(q);
            assert!((lo..=hi).contains(&v), "{} = {v}", code(r));
            assert_eq!(q["code"], unit);
            assert_eq!(q["system"], "http://unitsofmeasure.org");
            match code(r) {
                "72514-3" | "8867-4" | "9279-1" | "59408-5" => assert!(q["value"].is_i64(), "integer {}", code(r)),
                "8302-2" => height = Some(v),
                "29463-7" => weight = Some(v),
                "39156-5" => {
                    let (h, w) = (height.expect("height on file") / 100.0, weight.expect("weight measured"));
                    assert!((w / (h * h) - v).abs() <= 0.06, "BMI {v} vs {w} kg / {h} m");
                }
                _ => {}
            }
        }
    }
    assert!(checked > 10_000, "checked {checked}");
}

#[test]
fn booked_appointments_never_overlap_per_practitioner() {
    let c = config(42);
    let (_, records) = sample();
    let mut by_practitioner: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    let mut slots: HashMap<String, &Value> = HashMap::new();
    for r in records.iter().flatten() {
        if r["resourceType"] == "Slot" {
            slots.insert(key(r), r);
        }
    }
    let mut booked = 0;
    for r in records.iter().flatten().filter(|r| r["resourceType"] == "Appointment") {
        let start = r["start"].as_str().expect("start");
        if r["status"] != "booked" {
            assert!(start < "2025-06-02", "past appointment {} starts {start}", key(r));
            continue;
        }
        booked += 1;
        assert!(start > "2025-06-03", "booked appointment {} is not in the future", key(r));
        let minutes = r["minutesDuration"].as_i64().expect("minutes");
        assert!((15..=30).contains(&minutes));
        let slot = slots[r["slot"][0]["reference"].as_str().expect("slot")];
        assert_eq!(slot["status"], "busy");
        assert_eq!(slot["start"], r["start"]);
        assert_eq!(slot["end"], r["end"]);
        let prac = r["participant"][1]["actor"]["reference"].as_str().expect("practitioner");
        let sched = format!("Schedule/sched-{}", &prac["Practitioner/prac-".len()..]);
        assert_eq!(slot["schedule"]["reference"], sched.as_str());
        by_practitioner.entry(prac.to_owned()).or_default().push((
            start.to_owned(),
            r["end"].as_str().expect("end").to_owned(),
            key(r),
        ));
    }
    assert!(booked > 300, "only {booked} booked appointments");
    for (prac, mut list) in by_practitioner {
        // All times share the clinic's offset rules, so the local wall-clock strings order correctly
        // within a day; compare as parsed instants to be safe across offsets.
        let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).expect("rfc3339");
        list.sort_by_key(|(s, _, _)| parse(s));
        for pair in list.windows(2) {
            assert!(parse(&pair[1].0) >= parse(&pair[0].1), "{prac}: {} overlaps {}", pair[0].2, pair[1].2);
        }
    }
    // The grid itself: distinct blocks never share a cell, whatever the population.
    let mut cells = HashSet::new();
    for block in 0..2_000u64 {
        for n in 0..2 {
            assert!(cells.insert(schedule::booked_start(c.today, block, n)), "cell reused");
        }
    }
}

#[test]
fn primary_care_blocks_are_permutations() {
    for block in [0u32, 1, 57, 99_999] {
        let mut seen = HashSet::new();
        for i in 0..data::PCPS.len() as u32 {
            let (gp, b) = schedule::primary_care(42, block * data::PCPS.len() as u32 + i);
            assert_eq!(b, u64::from(block));
            assert!(seen.insert(gp));
        }
    }
}

#[test]
fn values_are_never_empty_and_date_times_carry_a_zone() {
    fn check(path: &str, v: &Value) {
        match v {
            Value::Null => panic!("{path}: null"),
            Value::String(s) => {
                assert!(!s.is_empty(), "{path}: empty string");
                if s.len() > 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T' {
                    assert!(s.ends_with('Z') || s[s.len() - 6..].starts_with(['+', '-']), "{path}: {s} has no zone");
                }
            }
            Value::Array(a) => {
                assert!(!a.is_empty(), "{path}: empty array");
                a.iter().for_each(|x| check(path, x));
            }
            Value::Object(m) => {
                assert!(!m.is_empty(), "{path}: empty object");
                m.iter().for_each(|(k, x)| check(&format!("{path}.{k}"), x));
            }
            _ => {}
        }
    }
    let (shared, records) = sample();
    for r in shared.iter().chain(records[..100].iter().flatten()) {
        check(&key(r), r);
    }
}

#[test]
fn clinical_rules_hold() {
    let (shared, records) = sample();
    let practitioners: HashMap<String, &Value> =
        shared.iter().filter(|r| r["resourceType"] == "Practitioner").map(|r| (key(r), r)).collect();
    let controlled: HashSet<&str> = CONTROLLED_RXNORM.iter().map(|(code, _)| *code).collect();
    let mut controlled_seen = 0;
    for record in records {
        let active_primary = record
            .iter()
            .filter(|r| r["resourceType"] == "Coverage" && r["status"] == "active" && r["order"] == 1)
            .count();
        assert!(active_primary <= 1);
        assert_eq!(record.iter().filter(|r| r["resourceType"] == "Consent").count(), 1);
        for r in record {
            match r["resourceType"].as_str() {
                Some("MedicationRequest") => {
                    assert_eq!(r["intent"], "order");
                    let prac = practitioners[r["requester"]["reference"].as_str().expect("requester")];
                    let qualification = &prac["qualification"][0]["code"]["coding"][0]["code"];
                    assert_ne!(qualification, "RN", "nurses do not prescribe");
                    let rx = r["medicationCodeableConcept"]["coding"][0]["code"].as_str().expect("rxnorm");
                    if controlled.contains(rx) {
                        controlled_seen += 1;
                        let has_dea = prac["identifier"]
                            .as_array()
                            .expect("identifiers")
                            .iter()
                            .any(|i| i["system"] == data::SYS_DEA);
                        assert!(has_dea, "{} prescribed by {} without DEA", key(r), key(prac));
                    }
                    let dosage = &r["dosageInstruction"][0];
                    assert!(dosage["text"].is_string() && dosage["timing"]["repeat"]["periodUnit"] == "d");
                    assert_eq!(dosage["doseAndRate"][0]["doseQuantity"]["system"], "http://unitsofmeasure.org");
                }
                Some("Appointment") => {
                    let parse = |s: &Value| {
                        chrono::DateTime::parse_from_rfc3339(s.as_str().expect("dateTime")).expect("rfc3339")
                    };
                    assert!(parse(&r["created"]) < parse(&r["start"]), "{} created after its start", key(r));
                    assert!(parse(&r["start"]) < parse(&r["end"]));
                    let birth = record[0]["birthDate"].as_str().expect("birthDate");
                    assert!(r["created"].as_str().expect("created")[..10] > *birth, "{} booked before birth", key(r));
                }
                Some("Encounter") => {
                    assert_eq!(r["status"], "finished");
                    assert!(["AMB", "EMER", "IMP"].contains(&r["class"]["code"].as_str().expect("class")));
                }
                Some("AllergyIntolerance") => {
                    assert_eq!(
                        r["clinicalStatus"]["coding"][0]["system"],
                        "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
                    );
                }
                Some("Condition") => {
                    assert_eq!(r["code"]["coding"][0]["system"], "http://hl7.org/fhir/sid/icd-10-cm");
                    let resolved = r["clinicalStatus"]["coding"][0]["code"] == "resolved";
                    assert_eq!(resolved, r.get("abatementDateTime").is_some());
                }
                _ => {}
            }
        }
    }
    assert!(controlled_seen > 0, "the sample exercises the DEA rule");
}

#[test]
fn bundle_and_ndjson_shapes() {
    let (_, records) = sample();
    let record = &records[0];
    let bundle = transaction_bundle(record);
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "transaction");
    let entries = bundle["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), record.len());
    for (entry, r) in entries.iter().zip(record) {
        assert!(entry.get("fullUrl").is_none());
        assert_eq!(entry["request"]["method"], "PUT");
        assert_eq!(entry["request"]["url"], key(r).as_str());
        assert_eq!(&entry["resource"], r);
    }
    assert!(transaction_bundle(&[]).get("entry").is_none());
    let line = ndjson_line(&record[0]);
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    assert_eq!(serde_json::from_str::<Value>(&line).expect("json"), record[0]);
}

#[test]
fn about_a_hundred_resources_per_patient() {
    let (_, records) = sample();
    let total: usize = records.iter().map(Vec::len).sum();
    let average = total as f64 / records.len() as f64;
    assert!((70.0..=150.0).contains(&average), "average {average}");
}
