//! Deterministic generator of a clinic's worth of coherent, synthetic FHIR R4 (4.0.1) records for
//! demos, load tests and benchmarks.
//!
//! One clinic (the tenant `Organization/org-clinic`) with payors, locations, 20 practitioners with
//! roles and schedules ([`shared_resources`]), and per patient a few years of history
//! ([`patient_record`]): Patient, RelatedPerson (emergency contact), Coverage, Consent,
//! Appointments (past, and future ones with their Slots), Encounters, vital-sign and laboratory
//! Observations with DiagnosticReports, Conditions (ICD-10-CM), AllergyIntolerances and
//! MedicationRequests (RxNorm). Values are clinically coherent: vital signs drift with age and
//! weight trends, labs follow the patient's problems and treatment, antibiotics respect penicillin
//! allergies, controlled substances are only prescribed by practitioners with a DEA number.
//!
//! Everything is a pure function of ([`DemoConfig::seed`], [`DemoConfig::today`], patient index):
//! no clock, no global state, no `rand` crate (see `rng.rs`). A patient's record does not depend on
//! other indices nor on [`DemoConfig::patients`], so patients can be generated in parallel, in any
//! order, and a larger data set extends a smaller one.
//!
//! Ids are client-chosen and stable (`pat-000042`, `enc-000042-007`, `obs-000042-0153`,
//! `prac-003`…), so records load with `PUT` (update-as-create) and references never dangle.
//! Within [`shared_resources`] and within each [`patient_record`], every resource comes after the
//! resources it references (the reference graph has no cycles: the Encounter–Condition link is
//! `Condition.encounter` only), so a loader can write them in the order given. Load the shared
//! resources before any patient.
//!
//! Booked (future) appointments never overlap per practitioner across all patients: patients are
//! assigned to primary-care practitioners in blocks of ten (each block is a permutation), and the
//! patient of block `b` owns cell `b` of that practitioner's 30-minute booking grid (see
//! `schedule.rs`). Past appointments (`fulfilled`, `noshow`, `cancelled`) are history and may
//! overlap between patients.

mod clinical;
mod data;
mod fhir;
pub mod load;
mod patient;
mod rng;
mod schedule;
mod shared;
mod time;
mod vitals;

#[cfg(test)]
mod tests;

use serde_json::{Value, json};

pub use data::CONTROLLED_RXNORM;

/// What to generate.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Number of patients (indices `0..patients`); only used for the schedules' planning horizon.
    pub patients: u32,
    /// Seed of every random choice.
    pub seed: u64,
    /// The reference "now": history ends the day before, booked appointments start after it.
    pub today: chrono::NaiveDate,
}

/// Resources shared by all patients, in load order: the clinic Organization (the tenant), payor
/// Organizations, Locations (the clinic site, exam rooms, emergency department, ward),
/// Practitioners (NPI, license qualification, some with DEA), PractitionerRoles (specialty,
/// organization, location, availableTime) and a Schedule per practitioner.
pub fn shared_resources(config: &DemoConfig) -> Vec<Value> {
    shared::resources(config)
}

/// Everything for patient number `index` (0-based), in load order: the Patient and a few years of
/// history. Deterministic for (seed, today, index) and independent of other indices.
pub fn patient_record(config: &DemoConfig, index: u32) -> Vec<Value> {
    let person = patient::Person::new(config, index);
    let mut out = Record::default();
    patient::demographics(config, &person, &mut out);
    clinical::history(config, &person, &mut out);
    schedule::future_appointments(config, &person, &mut out);
    out.into_vec()
}

/// The resources as a FHIR `transaction` Bundle: one entry per resource, in the given order, with
/// `request.method = "PUT"` and `request.url = "{Type}/{id}"` (no `fullUrl`).
pub fn transaction_bundle(resources: &[Value]) -> Value {
    let entries: Vec<Value> = resources
        .iter()
        .map(|resource| {
            let (resource_type, id) = fhir::type_and_id(resource);
            json!({
                "resource": resource,
                "request": {"method": "PUT", "url": format!("{resource_type}/{id}")}
            })
        })
        .collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "transaction"});
    if !entries.is_empty() {
        fhir::put(&mut bundle, "entry", Value::Array(entries));
    }
    bundle
}

/// One NDJSON line (compact JSON followed by `\n`) for the resource; the caller appends it to the
/// writer it keeps for the resource's type (`resource["resourceType"]`).
pub fn ndjson_line(resource: &Value) -> String {
    let mut line = serde_json::to_string(resource).expect("a JSON value always serialises");
    line.push('\n');
    line
}

/// The id suffix shared by all of a patient's resources (`000042`).
pub(crate) fn patient_key(index: u32) -> String {
    format!("{index:06}")
}

/// A patient's resources, collected per type and concatenated in reference order.
#[derive(Default)]
pub(crate) struct Record {
    pub patient: Vec<Value>,
    pub related: Vec<Value>,
    pub coverage: Vec<Value>,
    pub consent: Vec<Value>,
    pub slot: Vec<Value>,
    pub appointment: Vec<Value>,
    pub encounter: Vec<Value>,
    pub condition: Vec<Value>,
    pub observation: Vec<Value>,
    pub report: Vec<Value>,
    pub allergy: Vec<Value>,
    pub medication: Vec<Value>,
}

impl Record {
    fn into_vec(self) -> Vec<Value> {
        let mut all = Vec::with_capacity(
            self.patient.len()
                + self.related.len()
                + self.coverage.len()
                + self.consent.len()
                + self.slot.len()
                + self.appointment.len()
                + self.encounter.len()
                + self.condition.len()
                + self.observation.len()
                + self.report.len()
                + self.allergy.len()
                + self.medication.len(),
        );
        for part in [
            self.patient,
            self.related,
            self.coverage,
            self.consent,
            self.slot,
            self.appointment,
            self.encounter,
            self.condition,
            self.observation,
            self.report,
            self.allergy,
            self.medication,
        ] {
            all.extend(part);
        }
        all
    }
}
