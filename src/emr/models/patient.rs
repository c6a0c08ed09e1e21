//! The patient (seeds 000 `Patient`, 001 `Patients`, 002 `patient_profiles`, 003 `patients`,
//! 004 `PATIENTS`): demographics, MRN, SSN, emergency contact, care links.

use std::fmt;

use super::RecordStatus;
use super::common::{FhirDate, FhirDateTime, PersonName, PostalAddress, SourceResource};

code_enum! {
    /// The seed gender enum; FHIR has no `prefer_not_to_say` and uses `unknown` for it.
    pub enum Gender {
        Male = "male",
        Female = "female",
        Other = "other",
        PreferNotToSay = "prefer_not_to_say",
    }
}

/// Why an MRN or SSN was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error("a medical record number must be non-empty and carry no surrounding spaces")]
    BadMrn,
    #[error("a social security number has nine digits, optionally as NNN-NN-NNNN")]
    BadSsn,
}

/// A medical record number, unique per clinic. Clinics may bring their own numbering; numbers
/// Kiln generates have the form `MRN-YYYY-NNNNN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mrn(String);

impl Mrn {
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        if text.is_empty() || text.trim() != text {
            return Err(IdentifierError::BadMrn);
        }
        Ok(Mrn(text.to_owned()))
    }

    /// `MRN-YYYY-NNNNN`; a sequence past 99999 widens rather than fail to give a number.
    pub fn generated(year: i32, sequence: u32) -> Self {
        Mrn(format!("MRN-{year:04}-{sequence:05}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this looks like a number Kiln generated.
    pub fn is_generated_format(&self) -> bool {
        let parts: Vec<&str> = self.0.split('-').collect();
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        matches!(parts.as_slice(), ["MRN", year, seq]
            if year.len() == 4 && digits(year) && seq.len() >= 5 && digits(seq))
    }
}

impl fmt::Display for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The MRN together with the identifier system of the clinic that issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MrnIdentifier {
    pub system: Option<String>,
    pub value: Mrn,
}

/// A US social security number, kept as it was written. Its `Debug` output is masked so it
/// cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Ssn(String);

impl Ssn {
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        let bytes = text.as_bytes();
        let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        let valid = match bytes.len() {
            9 => all_digits(bytes),
            11 => {
                bytes[3] == b'-'
                    && bytes[6] == b'-'
                    && all_digits(&bytes[..3])
                    && all_digits(&bytes[4..6])
                    && all_digits(&bytes[7..])
            }
            _ => false,
        };
        if valid { Ok(Ssn(text.to_owned())) } else { Err(IdentifierError::BadSsn) }
    }

    /// The number as written, for storage (encrypted) and for callers allowed to see it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last_four(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// `***-**-NNNN`, for responses to callers without the SSN permission.
    pub fn masked(&self) -> String {
        format!("***-**-{}", self.last_four())
    }
}

impl fmt::Debug for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssn({})", self.masked())
    }
}

/// Seed `emergency_contact` JSON: `{"name", "relationship", "phone"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmergencyContact {
    pub name: Option<String>,
    /// Free text such as `spouse`; FHIR gets it as text beside the v2-0131 `C` code.
    pub relationship: Option<String>,
    pub phone: Option<String>,
}

/// Seed `is_deceased` / `deceased_date` (and `status = deceased` of seed 003).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Deceased {
    #[default]
    No,
    Yes,
    On(FhirDateTime),
}

/// An identifier given by another system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignIdentifier {
    pub system: Option<String>,
    pub value: String,
}

/// Seed `ehr_link`: the patient's record in a remote EHR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhrLink {
    /// The remote record (absolute URL of the remote Patient).
    pub target: String,
    /// The patient's identifier in the remote system.
    pub remote_identifier: Option<ForeignIdentifier>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patient {
    pub id: Option<String>,
    pub mrn: Option<MrnIdentifier>,
    pub ssn: Option<Ssn>,
    pub name: Option<PersonName>,
    pub date_of_birth: Option<FhirDate>,
    pub gender: Option<Gender>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<PostalAddress>,
    pub emergency_contact: Option<EmergencyContact>,
    /// `primary_doctor_id`, as a reference (`Practitioner/…`).
    pub primary_doctor: Option<String>,
    /// `clinic_id`, as a reference (`Organization/…`).
    pub clinic: Option<String>,
    pub deceased: Deceased,
    pub status: RecordStatus,
    pub ehr_link: Option<EhrLink>,
    pub source: SourceResource,
}

impl Patient {
    pub fn is_deceased(&self) -> bool {
        !matches!(self.deceased, Deceased::No)
    }

    pub fn deceased_date(&self) -> Option<&FhirDateTime> {
        match &self.deceased {
            Deceased::On(date) => Some(date),
            Deceased::No | Deceased::Yes => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrn_accepts_clinic_formats_and_knows_generated_ones() {
        assert!(Mrn::parse("A-778812").is_ok());
        assert!(Mrn::parse("").is_err());
        assert!(Mrn::parse(" 12").is_err());
        let generated = Mrn::generated(2024, 42);
        assert_eq!(generated.as_str(), "MRN-2024-00042");
        assert!(generated.is_generated_format());
        assert!(!Mrn::parse("MRN-24-00042").unwrap().is_generated_format());
        assert_eq!(Mrn::generated(2024, 123_456).as_str(), "MRN-2024-123456");
    }

    #[test]
    fn ssn_parses_two_spellings_and_never_prints_in_debug() {
        assert!(Ssn::parse("123456789").is_ok());
        let ssn = Ssn::parse("123-45-6789").unwrap();
        assert_eq!(ssn.masked(), "***-**-6789");
        assert!(!format!("{ssn:?}").contains("123"));
        for bad in ["12-345-6789", "12345678", "abc-de-fghi", "***-**-6789"] {
            assert!(Ssn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deceased_accessors() {
        let mut p = Patient::default();
        assert!(!p.is_deceased());
        p.deceased = Deceased::On(FhirDateTime::parse("2024-01-02").unwrap());
        assert!(p.is_deceased());
        assert_eq!(p.deceased_date().unwrap().as_str(), "2024-01-02");
    }
}
