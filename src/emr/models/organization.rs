//! Clinics (seed 001 `Clinics`, the tenants), their departments, and insurance companies.

use super::RecordStatus;
use super::common::{PostalAddress, SourceResource};
use super::practitioner::Npi;

code_enum! {
    /// What the organization is; FHIR `organization-type` prov / dept / ins.
    pub enum OrganizationKind {
        Clinic = "clinic",
        Department = "department",
        InsuranceCompany = "insurance_company",
    }
}

code_enum! {
    /// Seed 001 `clinic_type`.
    pub enum ClinicType {
        PrimaryCare = "primary_care",
        Specialty = "specialty",
        SurgeryCenter = "surgery_center",
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Organization {
    pub id: Option<String>,
    pub kind: Option<OrganizationKind>,
    pub clinic_type: Option<ClinicType>,
    pub name: Option<String>,
    pub npi: Option<Npi>,
    pub phone: Option<String>,
    pub address: Option<PostalAddress>,
    /// Seed `specialties` (JSON list).
    pub specialties: Vec<String>,
    /// For a department, the clinic it belongs to (`Organization/…`).
    pub part_of: Option<String>,
    pub status: RecordStatus,
    pub source: SourceResource,
}
