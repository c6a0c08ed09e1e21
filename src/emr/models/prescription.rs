//! Prescriptions and medication lists (seed 001 `Medications`, 002/003 `prescriptions`):
//! FHIR MedicationRequest.

use super::common::{FhirDateTime, Period, SourceResource};

code_enum! {
    /// Seed statuses (active, completed, cancelled, expired) plus the FHIR ones the seeds
    /// lack. FHIR calls an expired (or discontinued) prescription `stopped`.
    #[derive(Default)]
    pub enum PrescriptionStatus {
        #[default]
        Active = "active",
        Completed = "completed",
        Cancelled = "cancelled",
        Expired = "expired",
        OnHold = "on_hold",
        Draft = "draft",
        EnteredInError = "entered_in_error",
        Unknown = "unknown",
    }
}

code_enum! {
    /// UCUM units of time, as FHIR `Timing.repeat.periodUnit` uses them.
    pub enum TimeUnit {
        Second = "s",
        Minute = "min",
        Hour = "h",
        Day = "d",
        Week = "wk",
        Month = "mo",
        Year = "a",
    }
}

/// Seed `frequency`: free text (`twice daily`, FHIR `timing.code.text`) or structured
/// (`times` per `period` `unit`, FHIR `timing.repeat`).
#[derive(Debug, Clone, PartialEq)]
pub enum Frequency {
    Text(String),
    Repeat { times: u32, period: f64, unit: TimeUnit },
}

/// A span of time such as a course of `10 d` (seed `duration`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeSpan {
    pub value: f64,
    pub unit: TimeUnit,
}

impl TimeSpan {
    /// Reads the seed's free text: `10 days`, `2 weeks`, `1 month`, `30 d`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let value: f64 = words.next()?.parse().ok()?;
        let unit = match words.next()?.to_ascii_lowercase().trim_end_matches('s') {
            "second" | "sec" | "s" => TimeUnit::Second,
            "minute" | "min" => TimeUnit::Minute,
            "hour" | "hr" | "h" => TimeUnit::Hour,
            "day" | "d" => TimeUnit::Day,
            "week" | "wk" => TimeUnit::Week,
            "month" | "mo" => TimeUnit::Month,
            "year" | "yr" | "a" => TimeUnit::Year,
            _ => return None,
        };
        (words.next().is_none() && value.is_finite() && value > 0.0).then_some(TimeSpan { value, unit })
    }
}

/// A dose as an amount (`500 mg`).
#[derive(Debug, Clone, PartialEq)]
pub struct DoseQuantity {
    pub value: f64,
    pub unit: Option<String>,
}

/// What is prescribed: the seed's medication name and, when known, its RxNorm code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Medication {
    pub name: Option<String>,
    pub rxnorm: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prescription {
    pub id: Option<String>,
    pub status: PrescriptionStatus,
    /// `discontinued_reason`.
    pub status_reason: Option<String>,
    pub medication: Medication,
    pub patient: Option<String>,
    /// `visit_id` / `medical_record_id` (`Encounter/…`).
    pub encounter: Option<String>,
    /// `prescribed_date`.
    pub prescribed: Option<FhirDateTime>,
    /// The prescriber (`Practitioner/…`).
    pub prescriber: Option<String>,
    /// `indication`.
    pub indication: Option<String>,
    /// `notes` / `pharmacy_notes`.
    pub notes: Option<String>,
    /// Seed `dosage` as written (`500 mg`), FHIR `dosageInstruction.text`.
    pub dosage: Option<String>,
    /// `instructions` for the patient.
    pub instructions: Option<String>,
    pub frequency: Option<Frequency>,
    pub duration: Option<TimeSpan>,
    pub route: Option<String>,
    /// The dose as an amount, when known.
    pub dose: Option<DoseQuantity>,
    /// `start_date` / `end_date`.
    pub validity: Period,
    /// `refills` / `refills_remaining`.
    pub refills: Option<u32>,
    /// `quantity_prescribed`.
    pub quantity: Option<f64>,
    pub source: SourceResource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_durations() {
        assert_eq!(TimeSpan::parse("10 days"), Some(TimeSpan { value: 10.0, unit: TimeUnit::Day }));
        assert_eq!(TimeSpan::parse("2 Weeks").map(|s| s.unit), Some(TimeUnit::Week));
        assert_eq!(TimeSpan::parse("until gone"), None);
        assert_eq!(TimeSpan::parse("10 days maybe"), None);
        assert_eq!(TimeSpan::parse("-3 days"), None);
    }
}
