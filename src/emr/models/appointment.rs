//! Appointments (seed 002/003/004 `appointments`): FHIR Appointment.

use chrono::{DateTime, TimeDelta, Utc};

use super::common::{FhirDateTime, Party, SourceResource};

code_enum! {
    /// Seed statuses plus the FHIR ones the seeds lack. FHIR names: scheduled = proposed,
    /// confirmed = booked, in_progress = arrived, completed = fulfilled, no_show = noshow.
    #[derive(Default)]
    pub enum AppointmentStatus {
        #[default]
        Scheduled = "scheduled",
        Confirmed = "confirmed",
        InProgress = "in_progress",
        Completed = "completed",
        Cancelled = "cancelled",
        NoShow = "no_show",
        Pending = "pending",
        CheckedIn = "checked_in",
        Waitlist = "waitlist",
        EnteredInError = "entered_in_error",
    }
}

code_enum! {
    /// Seed appointment types; the first five are v2-0276 codes, the others Kiln's own.
    pub enum AppointmentType {
        Routine = "routine",
        FollowUp = "follow_up",
        Emergency = "emergency",
        WalkIn = "walk_in",
        Checkup = "checkup",
        Consultation = "consultation",
        Surgery = "surgery",
        Diagnostic = "diagnostic",
    }
}

impl AppointmentType {
    /// Accepts the seed spellings (`regular`, `follow-up`).
    pub fn from_seed(kind: &str) -> Option<Self> {
        match kind {
            "regular" => Some(AppointmentType::Routine),
            "follow-up" => Some(AppointmentType::FollowUp),
            other => AppointmentType::parse(other),
        }
    }
}

code_enum! {
    /// Seed 003 `priority`; FHIR uses the iCalendar 0-9 scale (1 highest, 9 lowest, 0 none).
    pub enum AppointmentPriority {
        Low = "low",
        Medium = "medium",
        High = "high",
        Urgent = "urgent",
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appointment {
    pub id: Option<String>,
    pub status: AppointmentStatus,
    pub cancellation_reason: Option<String>,
    pub appointment_type: Option<AppointmentType>,
    /// `reason` / `chief_complaint`.
    pub reason: Option<String>,
    pub priority: Option<AppointmentPriority>,
    pub start: Option<FhirDateTime>,
    pub end: Option<FhirDateTime>,
    pub minutes_duration: Option<u32>,
    /// `availability_id` (`Slot/…`).
    pub slot: Option<String>,
    pub created: Option<FhirDateTime>,
    pub notes: Option<String>,
    pub patient: Option<String>,
    /// `doctor_id` / `provider_id` (`Practitioner/…`).
    pub practitioner: Option<String>,
    /// `room_number`: usually just a name, sometimes a Location.
    pub room: Option<Party>,
    /// `cancelled_by` (a reference to the user's Practitioner/Patient/RelatedPerson).
    pub cancelled_by: Option<String>,
    pub cancelled_at: Option<FhirDateTime>,
    pub source: SourceResource,
}

impl Appointment {
    /// Sets start, end and duration from a seed's date, time and `duration_minutes`.
    pub fn schedule(&mut self, start: DateTime<Utc>, minutes: u32) {
        self.start = Some(FhirDateTime::from_utc(start));
        self.end = Some(FhirDateTime::from_utc(start + TimeDelta::minutes(i64::from(minutes))));
        self.minutes_duration = Some(minutes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn schedule_from_seed_date_time_and_duration() {
        let mut a = Appointment::default();
        a.schedule(Utc.with_ymd_and_hms(2030, 1, 2, 9, 0, 0).unwrap(), 30);
        assert_eq!(a.start.unwrap().as_str(), "2030-01-02T09:00:00Z");
        assert_eq!(a.end.unwrap().as_str(), "2030-01-02T09:30:00Z");
        assert_eq!(a.minutes_duration, Some(30));
        assert_eq!(AppointmentType::from_seed("regular"), Some(AppointmentType::Routine));
        assert_eq!(AppointmentType::from_seed("follow-up"), Some(AppointmentType::FollowUp));
    }
}
