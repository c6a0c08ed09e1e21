//! A practitioner's or staff member's role in a clinic (seed `specialization`, `department`,
//! `office_location`, `working_hours`, `calendar_id`, staff `role`).

use chrono::NaiveTime;

use super::RecordStatus;
use super::common::{Party, SourceResource};

code_enum! {
    /// Roles from the seeds (003 users.role, 000 staff roles, 001 clinical roles).
    pub enum StaffRole {
        Admin = "admin",
        Physician = "physician",
        Nurse = "nurse",
        Tech = "tech",
        Receptionist = "receptionist",
        Biller = "biller",
        Finance = "finance",
        ItSupport = "it_support",
        DepartmentManager = "department_manager",
    }
}

impl StaffRole {
    /// Accepts the seed spellings, where a physician is also a `doctor` or a `provider`.
    pub fn from_seed(role: &str) -> Option<Self> {
        match role {
            "doctor" | "provider" => Some(StaffRole::Physician),
            other => StaffRole::parse(other),
        }
    }

    /// Roles that write prescriptions, and so need a license number.
    pub fn prescribes(self) -> bool {
        matches!(self, StaffRole::Physician)
    }
}

code_enum! {
    /// FHIR `days-of-week` codes.
    pub enum Weekday {
        Mon = "mon",
        Tue = "tue",
        Wed = "wed",
        Thu = "thu",
        Fri = "fri",
        Sat = "sat",
        Sun = "sun",
    }
}

/// One entry of seed `working_hours`: days with the same hours (FHIR `availableTime`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkingHours {
    pub days: Vec<Weekday>,
    pub all_day: bool,
    pub start: Option<NaiveTime>,
    pub end: Option<NaiveTime>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PractitionerRole {
    pub id: Option<String>,
    pub practitioner: Option<String>,
    /// The clinic or department (`Organization/…`).
    pub organization: Option<String>,
    pub role: Option<StaffRole>,
    /// `specialization`, e.g. `Cardiology`.
    pub specialties: Vec<String>,
    /// `office_location`: a Location reference, a room name, or both.
    pub location: Option<Party>,
    pub working_hours: Vec<WorkingHours>,
    pub availability_exceptions: Option<String>,
    pub calendar_id: Option<String>,
    pub status: RecordStatus,
    pub source: SourceResource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_role_spellings() {
        assert_eq!(StaffRole::from_seed("doctor"), Some(StaffRole::Physician));
        assert_eq!(StaffRole::from_seed("it_support"), Some(StaffRole::ItSupport));
        assert_eq!(StaffRole::from_seed("janitor"), None);
        assert!(StaffRole::Physician.prescribes());
        assert!(!StaffRole::Receptionist.prescribes());
    }
}
