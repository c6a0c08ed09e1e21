//! Record retention (seed 001 "Retention Policies", architecture.md "Retention"): how long a
//! patient's record must be kept. Adults: a number of years after the last treatment. Minors
//! (under the age of majority at that treatment): the later of a given age and the adult rule.
//! The numbers are settings, so that each jurisdiction can set its own (Texas: 10 years, age 20).

use chrono::{Datelike, Months, NaiveDate};

/// The retention rule of a jurisdiction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRule {
    /// Years a record is kept after the last treatment.
    pub years_after_last_treatment: u32,
    /// A minor's record is kept at least until this age.
    pub minors_until_age: u32,
    /// Patients younger than this at their last treatment are minors.
    pub age_of_majority: u32,
}

impl RetentionRule {
    pub fn describe(&self) -> String {
        format!(
            "kept {} years after the last treatment; for a patient under {} at that treatment, until age {} if later",
            self.years_after_last_treatment, self.age_of_majority, self.minors_until_age
        )
    }
}

/// Where the date of the last treatment came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// The latest Encounter of the patient.
    Encounter,
    /// No Encounter: the last change to the patient's record stands in for it.
    RecordChange,
}

impl Basis {
    pub fn code(self) -> &'static str {
        match self {
            Basis::Encounter => "encounter",
            Basis::RecordChange => "record-change",
        }
    }
}

/// A patient's retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    pub retain_until: NaiveDate,
    pub last_treatment: NaiveDate,
    pub basis: Basis,
    /// `None` when the birth date is unknown (the adult rule is applied).
    pub minor_at_last_treatment: Option<bool>,
}

/// The latest day a FHIR date (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`) can stand for: for a birth
/// date, the youngest the patient can be, which keeps the record longest.
pub fn latest_day(date: &str) -> Option<NaiveDate> {
    let parts: Vec<&str> = date.get(..10.min(date.len()))?.split('-').collect();
    let year: i32 = parts.first()?.parse().ok()?;
    match parts.as_slice() {
        [_] => NaiveDate::from_ymd_opt(year, 12, 31),
        [_, month] => {
            let first = NaiveDate::from_ymd_opt(year, month.parse().ok()?, 1)?;
            first.checked_add_months(Months::new(1))?.pred_opt()
        }
        [_, month, day] => NaiveDate::from_ymd_opt(year, month.parse().ok()?, day.parse().ok()?),
        _ => None,
    }
}

fn add_years(date: NaiveDate, years: u32) -> NaiveDate {
    // 29 February plus a year that is not a leap year: 28 February (chrono's month arithmetic).
    date.checked_add_months(Months::new(years * 12)).unwrap_or(NaiveDate::MAX)
}

fn age_on(birth: NaiveDate, day: NaiveDate) -> i32 {
    let mut age = day.year() - birth.year();
    if (day.month(), day.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// Applies `rule` to a patient born on `birth_date` (a FHIR date, if known) whose last
/// treatment was on `last_treatment`.
pub fn retention(rule: &RetentionRule, birth_date: Option<&str>, last_treatment: NaiveDate, basis: Basis) -> Retention {
    let adult_rule = add_years(last_treatment, rule.years_after_last_treatment);
    let birth = birth_date.and_then(latest_day);
    let minor = birth.map(|birth| age_on(birth, last_treatment) < rule.age_of_majority as i32);
    let retain_until = match (birth, minor) {
        (Some(birth), Some(true)) => adult_rule.max(add_years(birth, rule.minors_until_age)),
        _ => adult_rule,
    };
    Retention { retain_until, last_treatment, basis, minor_at_last_treatment: minor }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXAS: RetentionRule =
        RetentionRule { years_after_last_treatment: 10, minors_until_age: 20, age_of_majority: 18 };

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn adults_are_kept_ten_years_after_their_last_treatment() {
        let kept = retention(&TEXAS, Some("1970-03-04"), day("2020-06-01"), Basis::Encounter);
        assert_eq!(kept.retain_until, day("2030-06-01"));
        assert_eq!(kept.minor_at_last_treatment, Some(false));
    }

    #[test]
    fn a_young_child_is_kept_until_twenty_when_that_is_later() {
        // Treated at 2: ten years later they are 12; age 20 comes later.
        let kept = retention(&TEXAS, Some("2018-05-10"), day("2020-06-01"), Basis::Encounter);
        assert_eq!(kept.retain_until, day("2038-05-10"));
        assert_eq!(kept.minor_at_last_treatment, Some(true));
    }

    #[test]
    fn an_older_minor_is_kept_ten_years_when_that_is_later() {
        // Treated at 17: age 20 comes in three years; ten years after treatment is later.
        let kept = retention(&TEXAS, Some("2003-01-15"), day("2020-06-01"), Basis::Encounter);
        assert_eq!(kept.retain_until, day("2030-06-01"));
        assert_eq!(kept.minor_at_last_treatment, Some(true));
        // The day before turning 18 is still a minor; the birthday itself is not.
        assert_eq!(
            retention(&TEXAS, Some("2002-06-02"), day("2020-06-01"), Basis::Encounter).minor_at_last_treatment,
            Some(true)
        );
        assert_eq!(
            retention(&TEXAS, Some("2002-06-01"), day("2020-06-01"), Basis::Encounter).minor_at_last_treatment,
            Some(false)
        );
    }

    #[test]
    fn partial_or_missing_birth_dates_keep_records_longest() {
        assert_eq!(latest_day("2018"), Some(day("2018-12-31")));
        assert_eq!(latest_day("2020-02"), Some(day("2020-02-29")));
        assert_eq!(latest_day("2018-05-10"), Some(day("2018-05-10")));
        assert_eq!(latest_day("nonsense"), None);
        let kept = retention(&TEXAS, Some("2018"), day("2020-06-01"), Basis::Encounter);
        assert_eq!(kept.retain_until, day("2038-12-31"));
        let unknown = retention(&TEXAS, None, day("2020-06-01"), Basis::RecordChange);
        assert_eq!((unknown.retain_until, unknown.minor_at_last_treatment), (day("2030-06-01"), None));
    }

    #[test]
    fn other_jurisdictions_set_their_own_numbers() {
        let rule = RetentionRule { years_after_last_treatment: 7, minors_until_age: 25, age_of_majority: 18 };
        assert_eq!(
            retention(&rule, Some("1970-01-01"), day("2020-06-01"), Basis::Encounter).retain_until,
            day("2027-06-01")
        );
        assert_eq!(
            retention(&rule, Some("2010-01-01"), day("2020-06-01"), Basis::Encounter).retain_until,
            day("2035-01-01")
        );
        assert_eq!(add_years(day("2020-02-29"), 1), day("2021-02-28"));
    }
}
