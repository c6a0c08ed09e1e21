//! The practitioner (seeds 000 `Practitioner`, 001 `Users` with clinical roles, 002
//! `provider_profiles`, 003 `users` role doctor/nurse, 004 `DOCTORS`): identity and credentials.

use std::fmt;

use super::RecordStatus;
use super::common::{PersonName, SourceResource};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("an NPI has exactly ten digits")]
    BadNpi,
    #[error("a DEA number is two letters followed by seven digits")]
    BadDea,
}

/// A National Provider Identifier: ten digits. The Luhn check digit is offered separately
/// (`has_valid_check_digit`) rather than enforced, because test systems are full of made-up
/// NPIs and refusing them would refuse otherwise valid resources.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Npi(String);

impl Npi {
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        if text.len() == 10 && text.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Npi(text.to_owned()))
        } else {
            Err(CredentialError::BadNpi)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The NPI check digit: Luhn over the number prefixed with the card issuer code 80840.
    pub fn has_valid_check_digit(&self) -> bool {
        let digits = "80840".bytes().chain(self.0.bytes()).map(|b| u32::from(b - b'0'));
        let digits: Vec<u32> = digits.collect();
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &d)| {
                if i % 2 == 1 {
                    let doubled = d * 2;
                    if doubled > 9 { doubled - 9 } else { doubled }
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    }
}

impl fmt::Display for Npi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DEA registration number (two letters, seven digits), needed to prescribe controlled
/// substances.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeaNumber(String);

impl DeaNumber {
    pub fn parse(text: &str) -> Result<Self, CredentialError> {
        let b = text.as_bytes();
        let valid = b.len() == 9 && b[..2].iter().all(u8::is_ascii_alphabetic) && b[2..].iter().all(u8::is_ascii_digit);
        if valid { Ok(DeaNumber(text.to_owned())) } else { Err(CredentialError::BadDea) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A credential (`credentials`, e.g. `MD`) with the license that backs it
/// (`license_number`, `license_state`): one FHIR `qualification`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Qualification {
    pub code: String,
    pub license_number: Option<String>,
    /// The issuing state (`TX`), FHIR `qualification.issuer.display`.
    pub license_state: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Practitioner {
    pub id: Option<String>,
    pub npi: Option<Npi>,
    pub dea_number: Option<DeaNumber>,
    pub name: Option<PersonName>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub qualifications: Vec<Qualification>,
    pub status: RecordStatus,
    pub source: SourceResource,
}

impl Practitioner {
    /// The first license number held, which prescribing roles require.
    pub fn license_number(&self) -> Option<&str> {
        self.qualifications.iter().find_map(|q| q.license_number.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npi_format_and_check_digit() {
        assert!(Npi::parse("123456789").is_err());
        assert!(Npi::parse("12345678a0").is_err());
        assert!(Npi::parse("1234567893").unwrap().has_valid_check_digit());
        assert!(!Npi::parse("1234567890").unwrap().has_valid_check_digit());
    }

    #[test]
    fn dea_format() {
        assert!(DeaNumber::parse("AB1234563").is_ok());
        assert!(DeaNumber::parse("A12345678").is_err());
        assert!(DeaNumber::parse("AB123456").is_err());
    }

    #[test]
    fn license_number_is_the_first_held() {
        let p = Practitioner {
            qualifications: vec![
                Qualification { code: "BLS".into(), ..Default::default() },
                Qualification {
                    code: "MD".into(),
                    license_number: Some("TX-99".into()),
                    license_state: Some("TX".into()),
                },
            ],
            ..Default::default()
        };
        assert_eq!(p.license_number(), Some("TX-99"));
    }
}
