//! Problems and diagnoses (seed 001 `Problems`, 003 `medical_conditions`, 002 diagnosis):
//! FHIR Condition.

use std::fmt;

use super::common::{FhirDateTime, SourceResource};

code_enum! {
    /// Seed statuses (active, resolved, chronic, in_remission) plus the remaining FHIR
    /// clinical statuses.
    pub enum ProblemStatus {
        Active = "active",
        Chronic = "chronic",
        Recurrence = "recurrence",
        Relapse = "relapse",
        Inactive = "inactive",
        InRemission = "in_remission",
        Resolved = "resolved",
    }
}

code_enum! {
    /// Seed 003 `severity`.
    pub enum Severity {
        Mild = "mild",
        Moderate = "moderate",
        Severe = "severe",
        Critical = "critical",
    }
}

code_enum! {
    /// FHIR `condition-category`: a problem-list entry or a diagnosis made at a visit.
    pub enum ConditionCategory {
        ProblemListItem = "problem-list-item",
        EncounterDiagnosis = "encounter-diagnosis",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ICD-10-CM code (letter, two characters, optional dot and up to four more)")]
pub struct Icd10Error(pub String);

/// An ICD-10-CM code such as `E11.9` or `S72.001A`, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Icd10Code(String);

impl Icd10Code {
    pub fn parse(text: &str) -> Result<Self, Icd10Error> {
        let err = || Icd10Error(text.to_owned());
        let (category, rest) = match text.split_once('.') {
            Some((c, r)) if !r.is_empty() => (c, Some(r)),
            Some(_) => return Err(err()),
            None => (text, None),
        };
        let c = category.as_bytes();
        let category_ok = c.len() == 3
            && c[0].is_ascii_uppercase()
            && c[1].is_ascii_digit()
            && (c[2].is_ascii_digit() || c[2].is_ascii_uppercase());
        let rest_ok =
            rest.is_none_or(|r| r.len() <= 4 && r.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()));
        if category_ok && rest_ok { Ok(Icd10Code(text.to_owned())) } else { Err(err()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Icd10Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problem {
    pub id: Option<String>,
    pub status: Option<ProblemStatus>,
    pub category: Option<ConditionCategory>,
    pub severity: Option<Severity>,
    /// `description` / `condition_name`.
    pub description: Option<String>,
    pub icd10: Option<Icd10Code>,
    pub patient: Option<String>,
    /// `visit_id` (`Encounter/…`).
    pub encounter: Option<String>,
    /// `onset_date`.
    pub onset: Option<FhirDateTime>,
    /// `resolved_date`.
    pub resolved: Option<FhirDateTime>,
    /// `diagnosis_date`, FHIR `recordedDate`.
    pub recorded: Option<FhirDateTime>,
    /// `diagnosed_by` (`Practitioner/…`): FHIR `recorder` and `asserter`.
    pub diagnosed_by: Option<String>,
    pub notes: Option<String>,
    pub source: SourceResource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd10_codes() {
        for good in ["E11.9", "J45.909", "S72.001A", "I10", "U07.1"] {
            assert!(Icd10Code::parse(good).is_ok(), "{good}");
        }
        for bad in ["e11.9", "E1", "E11.", "E11.12345", "11.9", "E11-9"] {
            assert!(Icd10Code::parse(bad).is_err(), "{bad}");
        }
    }
}
