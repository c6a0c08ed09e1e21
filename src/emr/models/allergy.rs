//! Allergies (seed 001 `Allergies`, 003 `patients.allergies`): FHIR AllergyIntolerance.

use super::common::SourceResource;

code_enum! {
    /// Seed allergen kinds: drug, food, environmental (and FHIR's biologic).
    pub enum AllergyCategory {
        Drug = "drug",
        Food = "food",
        Environmental = "environmental",
        Biologic = "biologic",
    }
}

code_enum! {
    pub enum AllergySeverity {
        Mild = "mild",
        Moderate = "moderate",
        Severe = "severe",
    }
}

/// What happens on exposure. FHIR requires a manifestation for every reaction, so the severity
/// lives here, with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllergyReaction {
    /// Seed `reaction` description, e.g. `hives`.
    pub manifestation: String,
    pub severity: Option<AllergySeverity>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allergy {
    pub id: Option<String>,
    pub is_active: bool,
    pub category: Option<AllergyCategory>,
    pub allergen: Option<String>,
    pub patient: Option<String>,
    pub reaction: Option<AllergyReaction>,
    pub source: SourceResource,
}

impl Default for Allergy {
    fn default() -> Self {
        Allergy {
            id: None,
            is_active: true,
            category: None,
            allergen: None,
            patient: None,
            reaction: None,
            source: SourceResource::default(),
        }
    }
}
