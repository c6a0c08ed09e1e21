//! Typed internal EMR models, one per seed entity (see `shared/seeds/` and `mapping.md`).
//!
//! Each model holds the seed fields in parsed form (`Mrn`, `Gender`, status enums, dates with
//! their precision) plus the FHIR resource it was read from (`source`), so that writing it back
//! loses nothing the model does not know about.

/// Declares a closed set of codes as an enum with `code()` and `parse()`.
macro_rules! code_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            pub fn parse(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }
    };
}

pub mod allergy;
pub mod appointment;
pub mod availability;
pub mod common;
pub mod consent;
pub mod encounter;
pub mod insurance;
pub mod lab_result;
pub mod organization;
pub mod patient;
pub mod practitioner;
pub mod practitioner_role;
pub mod prescription;
pub mod problem;
pub mod vital_sign;

pub use allergy::*;
pub use appointment::*;
pub use availability::*;
pub use common::*;
pub use consent::*;
pub use encounter::*;
pub use insurance::*;
pub use lab_result::*;
pub use organization::*;
pub use patient::*;
pub use practitioner::*;
pub use practitioner_role::*;
pub use prescription::*;
pub use problem::*;
pub use vital_sign::*;

code_enum! {
    /// Whether a record is in use (`users.status`, `patients.status`, `provider_patients.status`);
    /// FHIR `active` true or false. Absent in FHIR reads as active.
    #[derive(Default)]
    pub enum RecordStatus {
        #[default]
        Active = "active",
        Inactive = "inactive",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_enums_parse_what_they_print() {
        for status in RecordStatus::ALL {
            assert_eq!(RecordStatus::parse(status.code()), Some(*status));
        }
        assert_eq!(RecordStatus::parse("deleted"), None);
        assert_eq!(RecordStatus::Inactive.to_string(), "inactive");
    }
}
