//! What each account role may do, by resource type and interaction (architecture.md "RBAC",
//! seeds 000 and 003): the role half of "scope AND role AND tenant". A token issued to a signed-in
//! user carries the user's role; backend services (`system/`) have none and are bounded by the
//! scopes their registration allows.

use crate::auth::scopes::Interaction;

/// The roles an account may have.
pub const ROLES: [&str; 10] = [
    "admin",
    "physician",
    "nurse",
    "tech",
    "receptionist",
    "biller",
    "it_support",
    "department_manager",
    "patient",
    "related-person",
];

/// Groups of resource types that roles are granted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Who the patient is and who cares for them.
    Demographic,
    /// The medical record.
    Clinical,
    /// Prescribing.
    Prescription,
    Scheduling,
    Financial,
    /// The clinic itself: staff, places, services, connections.
    Directory,
    /// Definitions anyone may read (value sets, questionnaires, …).
    Definition,
    /// The audit trail, written only by the server.
    Audit,
}

fn class(resource_type: &str) -> Class {
    match resource_type {
        "Patient" | "RelatedPerson" | "Group" => Class::Demographic,
        "MedicationRequest" | "Medication" => Class::Prescription,
        "Appointment" | "AppointmentResponse" | "Schedule" | "Slot" => Class::Scheduling,
        "Coverage" | "Claim" | "ClaimResponse" | "Invoice" | "ChargeItem" | "Account" | "ExplanationOfBenefit" => {
            Class::Financial
        }
        "Practitioner" | "PractitionerRole" | "Organization" | "Location" | "HealthcareService" | "Endpoint"
        | "Device" => Class::Directory,
        "ValueSet"
        | "CodeSystem"
        | "Questionnaire"
        | "OperationDefinition"
        | "SearchParameter"
        | "StructureDefinition"
        | "ConceptMap"
        | "NamingSystem" => Class::Definition,
        "AuditEvent" => Class::Audit,
        _ => Class::Clinical,
    }
}

/// Whether `role` may perform `interaction` on `resource_type`. Unknown roles may do nothing.
pub fn allows(role: &str, resource_type: &str, interaction: Interaction) -> bool {
    use Class::*;
    let read = matches!(interaction, Interaction::Read | Interaction::Search);
    let class = class(resource_type);
    if class == Definition && read {
        return true;
    }
    match role {
        "admin" => class != Audit || read,
        "physician" => match class {
            Audit => false,
            Financial | Directory => read,
            _ => true,
        },
        // Nurses record vital signs (`check_content` holds them to that category) and schedule;
        // they read the rest of the record and prescriptions, and change neither.
        "nurse" => match class {
            Audit => false,
            Clinical => read || (resource_type == "Observation" && interaction != Interaction::Delete),
            Scheduling => true,
            Demographic | Prescription | Financial | Directory => read,
            Definition => false,
        },
        // Technicians record results.
        "tech" => match class {
            Clinical => {
                read || matches!(
                    resource_type,
                    "Observation" | "DiagnosticReport" | "Specimen" | "ImagingStudy" | "Media"
                )
            }
            Demographic | Scheduling | Directory | Prescription => read,
            _ => false,
        },
        "receptionist" => match class {
            Demographic | Scheduling | Financial if resource_type != "Claim" => interaction != Interaction::Delete,
            Directory => read,
            Clinical => read && resource_type == "Encounter",
            _ => false,
        },
        // Billing codes claims from what was done, without changing the record.
        "biller" => match class {
            Financial => true,
            Demographic | Directory => read,
            Clinical => read && matches!(resource_type, "Encounter" | "Condition" | "Procedure"),
            _ => false,
        },
        // IT support runs the system and sees no health information.
        "it_support" => class == Directory && read,
        "department_manager" => match class {
            Directory => true,
            Scheduling | Demographic => read,
            _ => false,
        },
        // Patients (and their representatives) read their own record and add to it what patients
        // report; the patient compartment confines them to it. They may also read who accessed
        // their record (the accounting of disclosures, HIPAA §164.528).
        "patient" | "related-person" => match class {
            Audit => read,
            _ => {
                read || (interaction == Interaction::Create
                    && matches!(resource_type, "QuestionnaireResponse" | "Communication" | "Observation"))
            }
        },
        _ => false,
    }
}

/// Rules on what a role may write that depend on the content: a nurse's Observations are vital
/// signs. Answers why not, when not.
pub fn check_content(role: &str, resource_type: &str, content: &serde_json::Value) -> Result<(), String> {
    if role == "nurse" && resource_type == "Observation" {
        let vital = content.get("category").and_then(serde_json::Value::as_array).is_some_and(|categories| {
            categories.iter().any(|category| {
                category.get("coding").and_then(serde_json::Value::as_array).is_some_and(|codings| {
                    codings.iter().any(|c| {
                        c.get("system").and_then(serde_json::Value::as_str)
                            == Some("http://terminology.hl7.org/CodeSystem/observation-category")
                            && c.get("code").and_then(serde_json::Value::as_str) == Some("vital-signs")
                    })
                })
            })
        });
        if !vital {
            return Err("a nurse records vital signs (Observation.category vital-signs); other observations are \
                        recorded by a physician or technician"
                .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Interaction::*;

    #[test]
    fn nurses_record_vital_signs_but_do_not_prescribe() {
        assert!(allows("nurse", "Observation", Create));
        assert!(!allows("nurse", "Observation", Delete));
        assert!(!allows("nurse", "Condition", Create));
        assert!(allows("nurse", "Condition", Read));
        assert!(allows("nurse", "Appointment", Create));
        assert!(!allows("nurse", "Patient", Update));
        assert!(allows("nurse", "MedicationRequest", Read));
        assert!(!allows("nurse", "MedicationRequest", Create));
        assert!(allows("physician", "MedicationRequest", Create));
        let vital = serde_json::json!({"category": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]});
        let lab = serde_json::json!({"category": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]});
        assert!(check_content("nurse", "Observation", &vital).is_ok());
        assert!(check_content("nurse", "Observation", &lab).is_err());
        assert!(check_content("physician", "Observation", &lab).is_ok());
    }

    #[test]
    fn it_support_and_billing_see_no_clinical_record() {
        assert!(!allows("it_support", "Patient", Read));
        assert!(!allows("it_support", "Observation", Search));
        assert!(allows("it_support", "Organization", Read));
        assert!(!allows("biller", "Observation", Read));
        assert!(allows("biller", "Condition", Search));
        assert!(allows("biller", "Claim", Create));
        assert!(!allows("biller", "Condition", Update));
    }

    #[test]
    fn receptionists_schedule_and_register_but_do_not_delete() {
        assert!(allows("receptionist", "Appointment", Create));
        assert!(allows("receptionist", "Patient", Update));
        assert!(!allows("receptionist", "Patient", Delete));
        assert!(!allows("receptionist", "Condition", Read));
    }

    #[test]
    fn nobody_writes_the_audit_trail_and_unknown_roles_do_nothing() {
        for role in ROLES {
            assert!(!allows(role, "AuditEvent", Create), "{role}");
            assert!(!allows(role, "AuditEvent", Delete), "{role}");
        }
        assert!(allows("admin", "AuditEvent", Search));
        assert!(!allows("physician", "AuditEvent", Read));
        assert!(allows("patient", "AuditEvent", Search), "the accounting of disclosures");
        assert!(!allows("patient", "AuditEvent", Update));
        assert!(!allows("janitor", "ValueSet", Create));
        assert!(!allows("janitor", "Patient", Read));
    }

    #[test]
    fn patients_add_to_their_record_but_change_nothing_in_it() {
        assert!(allows("patient", "Observation", Create));
        assert!(!allows("patient", "Observation", Update));
        assert!(!allows("patient", "Observation", Delete));
        assert!(!allows("patient", "Condition", Create));
    }

    #[test]
    fn everyone_reads_definitions() {
        for role in ROLES {
            assert!(allows(role, "ValueSet", Read), "{role}");
        }
    }
}
