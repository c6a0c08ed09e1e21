//! Clinical encounters (seed 001 `Encounters`, 002 `medical_records`, 003 `visits`).

use super::common::{Period, SourceResource};

code_enum! {
    /// Seed encounter/visit statuses, plus the FHIR statuses the seeds lack so that any valid
    /// Encounter can be read. Signed and amended encounters are locked.
    #[derive(Default)]
    pub enum EncounterStatus {
        Draft = "draft",
        #[default]
        InProgress = "in_progress",
        Signed = "signed",
        Amended = "amended",
        Completed = "completed",
        Cancelled = "cancelled",
        EnteredInError = "entered_in_error",
        Arrived = "arrived",
        Triaged = "triaged",
        OnLeave = "onleave",
        Unknown = "unknown",
    }
}

impl EncounterStatus {
    /// A signed encounter (and its amendments) may only change through an amendment.
    pub fn is_locked(self) -> bool {
        matches!(self, EncounterStatus::Signed | EncounterStatus::Amended)
    }
}

code_enum! {
    /// FHIR `Encounter.class`, v3 ActEncounterCode.
    pub enum EncounterClass {
        Ambulatory = "AMB",
        Emergency = "EMER",
        Inpatient = "IMP",
        InpatientAcute = "ACUTE",
        InpatientNonAcute = "NONAC",
        Observation = "OBSENC",
        PreAdmission = "PRENC",
        ShortStay = "SS",
        HomeHealth = "HH",
        Field = "FLD",
        Virtual = "VR",
    }
}

code_enum! {
    /// Seed `encounter_type` / `visit_type`.
    pub enum VisitType {
        Routine = "routine",
        Emergency = "emergency",
        FollowUp = "follow_up",
        Consultation = "consultation",
        Surgery = "surgery",
        NewPatient = "new_patient",
    }
}

impl VisitType {
    /// The FHIR class a visit of this type usually has.
    pub fn default_class(self) -> EncounterClass {
        match self {
            VisitType::Emergency => EncounterClass::Emergency,
            VisitType::Surgery => EncounterClass::Inpatient,
            _ => EncounterClass::Ambulatory,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encounter {
    pub id: Option<String>,
    pub status: EncounterStatus,
    pub class: Option<EncounterClass>,
    pub visit_type: Option<VisitType>,
    /// Seed `specialty` (ophthalmology, orthopedics...), FHIR `serviceType`.
    pub specialty: Option<String>,
    pub patient: Option<String>,
    /// The attending provider (`Practitioner/…`).
    pub provider: Option<String>,
    pub appointment: Option<String>,
    /// `encounter_date` / `visit_date` + `visit_time`.
    pub period: Period,
    pub chief_complaint: Option<String>,
    /// References to the Conditions diagnosed.
    pub diagnoses: Vec<String>,
    /// The clinic (`Organization/…`).
    pub clinic: Option<String>,
    pub source: SourceResource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signed_and_amended_are_locked() {
        let locked: Vec<_> = EncounterStatus::ALL.iter().filter(|s| s.is_locked()).collect();
        assert_eq!(locked, [&EncounterStatus::Signed, &EncounterStatus::Amended]);
    }
}
