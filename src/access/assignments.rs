//! Assigned patients (architecture.md "RBAC", issue: safeguards "Roles"): the patients a
//! clinician cares for, found from the care relationship: the patient names them as general
//! practitioner, or they take part in the patient's CareTeam, Encounter or Appointment. Users
//! whose role is listed in `assigned_patients_roles` reach only these patients' records (the
//! policy confines them like a `patient/` token, to several compartments), unless they break the
//! glass for a request.

use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TenantId;
use crate::error::FhirError;
use crate::rest::QueryParams;
use crate::search::query::compile;
use crate::store::{DynStore, Pages};

/// How long a user's assignments are reused before they are looked up again: a new
/// appointment or care-team membership takes effect within this time.
const CACHE_FOR: Duration = Duration::from_secs(5);

/// Where a care relationship is recorded: the searched type, the parameter naming the
/// clinician, and how to find the patients in each match.
const RELATIONSHIPS: [(&str, &str); 4] = [
    ("Patient", "general-practitioner"),
    ("CareTeam", "participant"),
    ("Encounter", "participant"),
    ("Appointment", "actor"),
];

type Key = (TenantId, String);
/// When the patients were looked up, and the patients.
type Looked = (Instant, Arc<[String]>);

/// The assigned patients of each clinician, looked up on demand and kept a few seconds.
#[derive(Default)]
pub struct Assignments {
    cached: Mutex<HashMap<Key, Looked>>,
}

impl std::fmt::Debug for Assignments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assignments")
    }
}

/// The Patient ids a resource of a care relationship names.
fn patients_in(resource_type: &str, id: &str, resource: &Value) -> Vec<String> {
    let local = |reference: Option<&str>| {
        reference.and_then(|r| r.strip_prefix("Patient/")).map(|id| id.split('/').next().unwrap_or(id).to_string())
    };
    match resource_type {
        "Patient" => vec![id.to_string()],
        "CareTeam" | "Encounter" => {
            local(resource.pointer("/subject/reference").and_then(Value::as_str)).into_iter().collect()
        }
        "Appointment" => resource
            .get("participant")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| local(p.pointer("/actor/reference").and_then(Value::as_str)))
            .collect(),
        _ => Vec::new(),
    }
}

impl Assignments {
    /// The patients `clinician` (e.g. `Practitioner/12`) has a care relationship with.
    pub async fn patients_of(
        &self,
        store: &DynStore,
        tenant: &TenantId,
        clinician: &str,
    ) -> Result<Arc<[String]>, FhirError> {
        let key = (tenant.clone(), clinician.to_string());
        if let Some((at, patients)) = self.cached.lock().expect("assignments lock").get(&key)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(patients.clone());
        }
        let registry = crate::fhir::registry::Registry::global();
        let mut patients = BTreeSet::new();
        for (resource_type, param) in RELATIONSHIPS {
            let Some(definition) = registry.resource(resource_type) else { continue };
            let params = QueryParams(vec![
                (param.to_string(), clinician.to_string()),
                ("_sort".into(), "_lastUpdated".into()),
                ("_count".into(), "1000".into()),
            ]);
            let query = compile(definition, &params, "", false, 1000, 1000)?;
            let mut pages = Pages::new(store.as_ref(), tenant, resource_type, query);
            while let Some(page) = pages.next().await? {
                for record in &page {
                    let Some(json) = &record.json else { continue };
                    let Ok(resource) = serde_json::from_slice::<Value>(json) else { continue };
                    patients.extend(patients_in(resource_type, &record.id, &resource));
                }
            }
        }
        let patients: Arc<[String]> = patients.into_iter().collect();
        let mut cached = self.cached.lock().expect("assignments lock");
        if cached.len() > 10_000 {
            cached.clear();
        }
        cached.insert(key, (Instant::now(), patients.clone()));
        Ok(patients)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_relationship_names_its_patients() {
        assert_eq!(patients_in("Patient", "p1", &json!({})), ["p1"]);
        let team = json!({"subject": {"reference": "Patient/p2"}});
        assert_eq!(patients_in("CareTeam", "t", &team), ["p2"]);
        let visit = json!({"subject": {"reference": "Patient/p3/_history/2"}});
        assert_eq!(patients_in("Encounter", "e", &visit), ["p3"]);
        let booking = json!({"participant": [
            {"actor": {"reference": "Practitioner/d"}}, {"actor": {"reference": "Patient/p4"}}]});
        assert_eq!(patients_in("Appointment", "a", &booking), ["p4"]);
        assert!(patients_in("CareTeam", "t", &json!({"subject": {"reference": "Group/g"}})).is_empty());
    }
}
