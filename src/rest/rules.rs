//! Business rules on write (the rules column of the seed-to-FHIR mapping): the stateless checks
//! of [`crate::emr::rules`], MRN assignment, and the claims the store enforces atomically with
//! the write: an MRN is unique per clinic, a patient has at most one active primary Coverage, and
//! a practitioner's booked appointments never overlap (also under concurrent requests).

use chrono::{Datelike, Utc};
use serde_json::Value;

use crate::access::TenantId;
use crate::emr::rules::{self as emr_rules, ViolationKind, WriteKind};
use crate::error::{FhirError, Issue, IssueType};
use crate::fhir::json::ResourceBody;
use crate::store::{BusyInterval, StoreTransaction, WriteGuards};

/// The identifier system of the MRNs Kiln assigns for a clinic.
pub fn mrn_system(tenant: &TenantId) -> String {
    format!("urn:kiln:tenant:{tenant}:mrn")
}

/// The stateless rules (those needing no other resource): 422 naming every violation.
pub fn check(resource_type: &str, value: &Value, kind: WriteKind) -> Result<(), FhirError> {
    let violations = emr_rules::check_resource(resource_type, value, kind, Utc::now());
    if violations.is_empty() {
        return Ok(());
    }
    Err(FhirError::Unprocessable(
        violations
            .into_iter()
            .map(|v| {
                let code = match v.kind {
                    ViolationKind::BusinessRule => IssueType::BusinessRule,
                    ViolationKind::Invalid => IssueType::Invalid,
                };
                Issue::error(code, v.message).at(v.expression)
            })
            .collect(),
    ))
}

/// Checks the rules, completes the resource where the rules say the server does (MRN), and
/// answers the claims the store must hold for it.
pub async fn prepare_write(
    transaction: &mut dyn StoreTransaction,
    tenant: &TenantId,
    resource_type: &str,
    body: &mut ResourceBody,
    value: &mut Value,
    kind: WriteKind,
) -> Result<WriteGuards, FhirError> {
    check(resource_type, value, kind)?;
    let mut guards = WriteGuards::default();
    match resource_type {
        "Patient" => {
            if emr_rules::patient_mrn(value).is_none() {
                let year = Utc::now().year();
                let number = transaction.next_sequence(&format!("mrn-{year}")).await?;
                let number = u32::try_from(number).map_err(|_| FhirError::internal("MRN sequence overflow"))?;
                emr_rules::assign_mrn(value, year, number, &mrn_system(tenant));
                body.set_member("identifier", &value["identifier"]);
            }
            // Two assigning authorities may issue the same number: the MRN is its system and value.
            if let Some((system, mrn)) = emr_rules::patient_mrn(value) {
                guards.unique_keys.push(("MRN".into(), format!("{}|{mrn}", system.unwrap_or_default())));
            }
        }
        "Coverage" => {
            if emr_rules::is_active_primary(value)
                && let Some(beneficiary) = emr_rules::coverage_beneficiary(value)
            {
                guards.unique_keys.push(("active primary Coverage of".into(), beneficiary));
            }
        }
        "Appointment" => {
            if let Some((start, end, practitioners)) = emr_rules::booked_interval(value) {
                for practitioner in practitioners {
                    guards.busy.push(BusyInterval {
                        key: format!("booked:{practitioner}"),
                        start: start.timestamp_micros(),
                        end: end.timestamp_micros(),
                        description: format!("{practitioner} is already booked"),
                    });
                }
            }
        }
        _ => {}
    }
    Ok(guards)
}
