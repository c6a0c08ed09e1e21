//! Consents and privacy restrictions (seed 000 `consent_forms`, 001 `consent_for_treatment`,
//! `consent_for_phi_disclosure`, `privacy_restrictions`): FHIR Consent.
//!
//! Seed to model: consent for treatment is scope `Treatment`; consent for PHI disclosure is
//! scope `PatientPrivacy` with policy rule `hipaa-auth`; privacy restrictions (HIPAA
//! 164.522) are scope `PatientPrivacy`, policy rule `hipaa-restrictions`, with one
//! `ConsentRestriction` per restriction.

use super::common::{FhirDateTime, Period, SourceResource};

code_enum! {
    /// FHIR `Consent.status`.
    #[derive(Default)]
    pub enum ConsentState {
        Draft = "draft",
        Proposed = "proposed",
        #[default]
        Active = "active",
        Rejected = "rejected",
        Inactive = "inactive",
        EnteredInError = "entered-in-error",
    }
}

code_enum! {
    /// FHIR `consentscope`.
    pub enum ConsentScope {
        Treatment = "treatment",
        PatientPrivacy = "patient-privacy",
        Research = "research",
        AdvanceDirective = "adr",
    }
}

code_enum! {
    /// FHIR `Consent.provision.type`.
    pub enum ProvisionType {
        Permit = "permit",
        Deny = "deny",
    }
}

/// A coded value from any code system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    pub system: Option<String>,
    pub code: String,
}

impl Code {
    pub fn new(system: &str, code: &str) -> Self {
        Code { system: Some(system.to_owned()), code: code.to_owned() }
    }
}

/// The signed form (`consent_forms` entry), FHIR `sourceAttachment`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedForm {
    pub url: Option<String>,
    pub content_type: Option<String>,
    pub title: Option<String>,
    pub creation: Option<String>,
}

/// One denial: who may not see what, for which purpose, when. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsentRestriction {
    /// References of the actors denied access (`Practitioner/…`, `Organization/…`).
    pub actors: Vec<String>,
    /// Resource types withheld (`Observation`, `DocumentReference`...).
    pub data_classes: Vec<String>,
    /// Purposes of use refused (v3 ActReason codes such as `HMARKT`).
    pub purposes: Vec<Code>,
    pub period: Period,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consent {
    pub id: Option<String>,
    pub status: ConsentState,
    pub scope: Option<ConsentScope>,
    pub categories: Vec<Code>,
    pub patient: Option<String>,
    /// When it was signed.
    pub date_time: Option<FhirDateTime>,
    /// The signer (`Patient/…` or `RelatedPerson/…`), FHIR `performer`.
    pub signer: Option<String>,
    /// The custodian (`Organization/…`).
    pub organization: Option<String>,
    pub form: Option<SignedForm>,
    /// A `consentpolicycodes` code (`hipaa-auth`, `hipaa-restrictions`...).
    pub policy_rule: Option<String>,
    /// The base decision (`provision.type`): permit for a consent, deny for an opt-out.
    pub decision: Option<ProvisionType>,
    /// Nested deny provisions.
    pub restrictions: Vec<ConsentRestriction>,
    pub source: SourceResource,
}
