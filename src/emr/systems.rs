//! Code systems, identifier systems and extension URLs used by the EMR mapping, in one place.
//!
//! The `KILN_*` URLs are Kiln's own: they carry seed facts that FHIR R4 has no element for.
//! Change the base here if the project publishes its conformance resources elsewhere.

pub const LOINC: &str = "http://loinc.org";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const ICD10_CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";

pub const US_SSN: &str = "http://hl7.org/fhir/sid/us-ssn";
pub const US_NPI: &str = "http://hl7.org/fhir/sid/us-npi";
/// The DEA number's OID, as registered in HL7 Terminology (NamingSystem `USDEANumber`).
pub const US_DEA: &str = "urn:oid:2.16.840.1.113883.4.814";
/// Another spelling of the DEA system seen in published IGs; accepted on read.
pub const US_DEA_THO: &str = "http://terminology.hl7.org/NamingSystem/usdeanumber";

pub const V2_IDENTIFIER_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
pub const V2_CONTACT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";
pub const V2_APPOINTMENT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
pub const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub const V3_ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
pub const V3_PARTICIPATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub const V3_OBSERVATION_INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";

pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
pub const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
pub const ORGANIZATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/organization-type";
pub const PRACTITIONER_ROLE: &str = "http://terminology.hl7.org/CodeSystem/practitioner-role";
pub const COVERAGE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/coverage-class";
pub const COVERAGE_COPAY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/coverage-copay-type";
pub const SUBSCRIBER_RELATIONSHIP: &str = "http://terminology.hl7.org/CodeSystem/subscriber-relationship";
pub const CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub const CONSENT_POLICY: &str = "http://terminology.hl7.org/CodeSystem/consentpolicycodes";
pub const RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";

/// Builds a Kiln URL so that all of them share one base.
macro_rules! kiln_url {
    ($path:literal) => {
        concat!("https://kiln.example.org/fhir/", $path)
    };
}

/// Seed statuses that FHIR folds together (signed/amended/completed -> `finished`,
/// chronic -> `active`, expired -> `cancelled`) are told apart by this extension (valueCode).
pub const KILN_EMR_STATUS_EXT: &str = kiln_url!("StructureDefinition/emr-status");
/// Lab result: the date the test was ordered (valueDateTime); Observation has no element for it.
pub const KILN_LAB_ORDERED_EXT: &str = kiln_url!("StructureDefinition/lab-ordered-date");
/// Appointment: who cancelled it (valueReference).
pub const KILN_CANCELLED_BY_EXT: &str = kiln_url!("StructureDefinition/appointment-cancelled-by");
/// Appointment: when it was cancelled (valueDateTime).
pub const KILN_CANCELLED_AT_EXT: &str = kiln_url!("StructureDefinition/appointment-cancelled-at");
/// Slot: how many appointments the slot can hold (valuePositiveInt).
pub const KILN_SLOT_CAPACITY_EXT: &str = kiln_url!("StructureDefinition/slot-max-appointments");
/// Organization: a specialty the clinic offers (valueCodeableConcept).
pub const KILN_CLINIC_SPECIALTY_EXT: &str = kiln_url!("StructureDefinition/clinic-specialty");

pub const KILN_STAFF_ROLE: &str = kiln_url!("CodeSystem/staff-role");
pub const KILN_CLINIC_TYPE: &str = kiln_url!("CodeSystem/clinic-type");
pub const KILN_VISIT_TYPE: &str = kiln_url!("CodeSystem/visit-type");
pub const KILN_APPOINTMENT_TYPE: &str = kiln_url!("CodeSystem/appointment-type");
pub const KILN_LAB_CATEGORY: &str = kiln_url!("CodeSystem/lab-category");
/// PractitionerRole.identifier system for the seed `calendar_id`.
pub const KILN_CALENDAR_ID: &str = kiln_url!("sid/calendar-id");
