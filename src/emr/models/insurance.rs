//! Insurance (seed 003 `insurance`, 000 `insurance_details`, 001 `insurance_primary_*`):
//! FHIR Coverage, with the insurer as payor.

use super::common::{Party, Period, SourceResource};

code_enum! {
    /// Seed `coverage_type`; FHIR `order` 1, 2, 3.
    pub enum CoverageOrder {
        Primary = "primary",
        Secondary = "secondary",
        Tertiary = "tertiary",
    }
}

impl CoverageOrder {
    pub fn rank(self) -> u32 {
        match self {
            CoverageOrder::Primary => 1,
            CoverageOrder::Secondary => 2,
            CoverageOrder::Tertiary => 3,
        }
    }

    pub fn from_rank(rank: u32) -> Option<Self> {
        match rank {
            1 => Some(CoverageOrder::Primary),
            2 => Some(CoverageOrder::Secondary),
            3 => Some(CoverageOrder::Tertiary),
            _ => None,
        }
    }
}

code_enum! {
    /// Seed `relationship_to_patient`; the codes are FHIR `subscriber-relationship` codes.
    pub enum SubscriberRelationship {
        Myself = "self",
        Spouse = "spouse",
        Child = "child",
        Parent = "parent",
        CommonLaw = "common",
        Injured = "injured",
        Other = "other",
    }
}

code_enum! {
    /// Seed statuses (active, inactive, expired) plus FHIR draft and entered-in-error. FHIR
    /// calls both inactive and expired coverage `cancelled`.
    #[derive(Default)]
    pub enum InsuranceStatus {
        #[default]
        Active = "active",
        Inactive = "inactive",
        Expired = "expired",
        Draft = "draft",
        EnteredInError = "entered_in_error",
    }
}

/// An amount of money (`copay_amount`, `deductible_amount`).
#[derive(Debug, Clone, PartialEq)]
pub struct Money {
    pub value: f64,
    pub currency: Option<String>,
}

impl Money {
    pub fn usd(value: f64) -> Self {
        Money { value, currency: Some("USD".to_owned()) }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Insurance {
    pub id: Option<String>,
    pub status: InsuranceStatus,
    /// `policy_number`: FHIR `subscriberId` and a member-number identifier.
    pub policy_number: Option<String>,
    /// `policy_holder_name` (or a reference to the holder).
    pub policy_holder: Option<Party>,
    /// The insured patient (`Patient/…`), FHIR `beneficiary`.
    pub patient: Option<String>,
    pub relationship: Option<SubscriberRelationship>,
    /// `effective_date` / `expiration_date`.
    pub period: Period,
    /// `insurance_company`: a payor Organization reference, its name, or both.
    pub payor: Option<Party>,
    pub group_number: Option<String>,
    pub order: Option<CoverageOrder>,
    pub copay: Option<Money>,
    pub deductible: Option<Money>,
    pub source: SourceResource,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ranks() {
        for order in CoverageOrder::ALL {
            assert_eq!(CoverageOrder::from_rank(order.rank()), Some(*order));
        }
        assert_eq!(CoverageOrder::from_rank(4), None);
    }
}
