//! Laboratory results (seed 003 `lab_results`): FHIR Observation of category laboratory.

use super::common::{FhirDateTime, SourceResource};

code_enum! {
    /// Seed statuses (ordered, in_progress, completed, cancelled) plus the FHIR ones the seed
    /// lacks.
    #[derive(Default)]
    pub enum LabStatus {
        #[default]
        Ordered = "ordered",
        InProgress = "in_progress",
        Completed = "completed",
        Cancelled = "cancelled",
        Amended = "amended",
        Corrected = "corrected",
        EnteredInError = "entered_in_error",
        Unknown = "unknown",
    }
}

code_enum! {
    /// Seed `abnormal_flag`. The seed's single `critical` needs a direction for FHIR
    /// (HH or LL): see `AbnormalFlag::critical`.
    pub enum AbnormalFlag {
        Normal = "normal",
        Low = "low",
        High = "high",
        CriticalLow = "critical_low",
        CriticalHigh = "critical_high",
    }
}

impl AbnormalFlag {
    /// The seed's `critical`, given whether the value lies below the reference range.
    pub fn critical(below_range: bool) -> Self {
        if below_range { AbnormalFlag::CriticalLow } else { AbnormalFlag::CriticalHigh }
    }
}

code_enum! {
    /// Seed `test_category`.
    pub enum LabCategory {
        Blood = "blood",
        Urine = "urine",
        Imaging = "imaging",
        Pathology = "pathology",
        Microbiology = "microbiology",
        Other = "other",
    }
}

/// The test: its name and, when known, its LOINC code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabTest {
    pub name: Option<String>,
    pub loinc: Option<String>,
}

/// Seed `result_value` + `result_unit`.
#[derive(Debug, Clone, PartialEq)]
pub enum LabValue {
    Quantity { value: f64, unit: Option<String> },
    Text(String),
}

impl LabValue {
    /// The seed stores the value as text: a number becomes a quantity, anything else text.
    pub fn from_seed(value: &str, unit: Option<&str>) -> Self {
        match value.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => LabValue::Quantity { value: number, unit: unit.map(str::to_owned) },
            _ => LabValue::Text(value.to_owned()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabResult {
    pub id: Option<String>,
    pub status: LabStatus,
    pub category: Option<LabCategory>,
    pub test: LabTest,
    pub patient: Option<String>,
    pub encounter: Option<String>,
    /// `collection_date`, FHIR `effectiveDateTime`.
    pub collected: Option<FhirDateTime>,
    /// `result_date`, FHIR `issued` (an instant).
    pub resulted: Option<FhirDateTime>,
    /// `ordered_date`; FHIR Observation has no element for it (Kiln extension).
    pub ordered: Option<FhirDateTime>,
    /// `ordered_by` (`Practitioner/…`), FHIR `performer`.
    pub ordered_by: Option<String>,
    pub value: Option<LabValue>,
    pub abnormal_flag: Option<AbnormalFlag>,
    /// Seed `interpretation` text.
    pub interpretation: Option<String>,
    /// `lab_comments`.
    pub comments: Option<String>,
    /// Seed `reference_range` text, e.g. `70-99 mg/dL`.
    pub reference_range: Option<String>,
    pub source: SourceResource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_values_become_quantities_when_numeric() {
        assert_eq!(
            LabValue::from_seed("5.4", Some("mmol/L")),
            LabValue::Quantity { value: 5.4, unit: Some("mmol/L".into()) }
        );
        assert_eq!(LabValue::from_seed("Positive", None), LabValue::Text("Positive".into()));
        assert_eq!(AbnormalFlag::critical(true), AbnormalFlag::CriticalLow);
    }
}
