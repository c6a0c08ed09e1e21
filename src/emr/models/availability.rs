//! Practitioner availability (seed 004 `AVAILABILITY`, seed 000/002 `calendar_id`,
//! `working_hours`): FHIR Schedule (the calendar) and Slot (one bookable time span).

use super::RecordStatus;
use super::common::{FhirDateTime, Period, SourceResource};

code_enum! {
    /// Seed statuses (available, booked, cancelled) plus the FHIR ones the seed lacks.
    /// FHIR names: free, busy, busy-unavailable, busy-tentative, entered-in-error.
    #[derive(Default)]
    pub enum SlotStatus {
        #[default]
        Available = "available",
        Booked = "booked",
        Cancelled = "cancelled",
        Tentative = "tentative",
        EnteredInError = "entered_in_error",
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    pub id: Option<String>,
    pub status: RecordStatus,
    /// The doctor (`Practitioner/…`), FHIR `actor`.
    pub practitioner: Option<String>,
    pub planning_horizon: Period,
    pub comment: Option<String>,
    pub source: SourceResource,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slot {
    pub id: Option<String>,
    /// `Schedule/…`.
    pub schedule: Option<String>,
    pub status: SlotStatus,
    /// `date` + `start_time`.
    pub start: Option<FhirDateTime>,
    /// `date` + `end_time`.
    pub end: Option<FhirDateTime>,
    /// Seed `max_appointments` (Kiln extension).
    pub max_appointments: Option<u32>,
    /// Whether more appointments than `max_appointments` were allowed (FHIR `overbooked`).
    pub overbooked: Option<bool>,
    pub comment: Option<String>,
    pub source: SourceResource,
}
