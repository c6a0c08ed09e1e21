//! Value types shared by the EMR models: FHIR dates with their precision, names, addresses,
//! periods, references with display text, and the source resource kept for lossless mapping.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, SecondsFormat, TimeDelta, Utc};
use serde_json::{Map, Value};

/// Why a date or dateTime string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a FHIR date/dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)")]
pub struct DateError(pub String);

/// A FHIR `date`: a year, a year and month, or a full day. Seeds store full days; FHIR clients
/// may send less, and the precision must survive the round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirDate {
    Year(i32),
    YearMonth(i32, u32),
    Day(NaiveDate),
}

impl FhirDate {
    pub fn parse(text: &str) -> Result<Self, DateError> {
        let err = || DateError(text.to_owned());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let parts: Vec<&str> = text.split('-').collect();
        match parts.as_slice() {
            [y] if y.len() == 4 && digits(y) => Ok(FhirDate::Year(y.parse().map_err(|_| err())?)),
            [y, m] if y.len() == 4 && m.len() == 2 && digits(y) && digits(m) => {
                let month: u32 = m.parse().map_err(|_| err())?;
                if !(1..=12).contains(&month) {
                    return Err(err());
                }
                Ok(FhirDate::YearMonth(y.parse().map_err(|_| err())?, month))
            }
            [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
                NaiveDate::parse_from_str(text, "%Y-%m-%d").map(FhirDate::Day).map_err(|_| err())
            }
            _ => Err(err()),
        }
    }

    /// The first day the date may denote.
    pub fn first_day(&self) -> NaiveDate {
        match *self {
            FhirDate::Year(y) => NaiveDate::from_ymd_opt(y, 1, 1),
            FhirDate::YearMonth(y, m) => NaiveDate::from_ymd_opt(y, m, 1),
            FhirDate::Day(d) => Some(d),
        }
        .unwrap_or(NaiveDate::MIN)
    }

    /// The last day the date may denote.
    pub fn last_day(&self) -> NaiveDate {
        match *self {
            FhirDate::Year(y) => NaiveDate::from_ymd_opt(y, 12, 31).unwrap_or(NaiveDate::MAX),
            FhirDate::YearMonth(y, m) => {
                let next =
                    if m == 12 { NaiveDate::from_ymd_opt(y + 1, 1, 1) } else { NaiveDate::from_ymd_opt(y, m + 1, 1) };
                next.and_then(|d| d.pred_opt()).unwrap_or(NaiveDate::MAX)
            }
            FhirDate::Day(d) => d,
        }
    }
}

impl From<NaiveDate> for FhirDate {
    fn from(day: NaiveDate) -> Self {
        FhirDate::Day(day)
    }
}

impl fmt::Display for FhirDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FhirDate::Year(y) => write!(f, "{y:04}"),
            FhirDate::YearMonth(y, m) => write!(f, "{y:04}-{m:02}"),
            FhirDate::Day(d) => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
        }
    }
}

/// A FHIR `dateTime` (or `instant`): a partial date, or a full timestamp with its zone. The
/// original spelling is kept, since `+02:00` and `Z` or `.000` and none are different text for
/// the same instant and the round trip must give back the text.
#[derive(Clone, PartialEq, Eq)]
pub struct FhirDateTime {
    text: String,
    value: DateTimeValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DateTimeValue {
    Date(FhirDate),
    Instant(DateTime<FixedOffset>),
}

impl FhirDateTime {
    pub fn parse(text: &str) -> Result<Self, DateError> {
        let value = if text.len() <= 10 {
            DateTimeValue::Date(FhirDate::parse(text)?)
        } else if text.as_bytes().get(10) == Some(&b'T') {
            DateTimeValue::Instant(DateTime::parse_from_rfc3339(text).map_err(|_| DateError(text.to_owned()))?)
        } else {
            return Err(DateError(text.to_owned()));
        };
        Ok(FhirDateTime { text: text.to_owned(), value })
    }

    pub fn from_utc(instant: DateTime<Utc>) -> Self {
        FhirDateTime {
            text: instant.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            value: DateTimeValue::Instant(instant.fixed_offset()),
        }
    }

    pub fn from_date(date: FhirDate) -> Self {
        FhirDateTime { text: date.to_string(), value: DateTimeValue::Date(date) }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The timestamp, when a time was given (as FHIR `instant` requires).
    pub fn instant(&self) -> Option<DateTime<Utc>> {
        match self.value {
            DateTimeValue::Instant(t) => Some(t.with_timezone(&Utc)),
            DateTimeValue::Date(_) => None,
        }
    }

    /// The date, when only a date was given.
    pub fn date(&self) -> Option<FhirDate> {
        match self.value {
            DateTimeValue::Date(d) => Some(d),
            DateTimeValue::Instant(_) => None,
        }
    }

    /// The earliest instant this value may denote (dates are read in UTC).
    pub fn earliest(&self) -> DateTime<Utc> {
        match self.value {
            DateTimeValue::Instant(t) => t.with_timezone(&Utc),
            DateTimeValue::Date(d) => d.first_day().and_time(chrono::NaiveTime::MIN).and_utc(),
        }
    }

    /// The latest instant this value may denote (dates are read in UTC).
    pub fn latest(&self) -> DateTime<Utc> {
        match self.value {
            DateTimeValue::Instant(t) => t.with_timezone(&Utc),
            DateTimeValue::Date(d) => {
                d.last_day().and_time(chrono::NaiveTime::MIN).and_utc() + TimeDelta::days(1) - TimeDelta::nanoseconds(1)
            }
        }
    }
}

impl fmt::Display for FhirDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for FhirDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FhirDateTime({})", self.text)
    }
}

/// `end` comes after `start`, allowing for their precision: the latest instant `end` may
/// denote lies after the earliest instant `start` may denote. For two timestamps that is
/// plain `end > start`; a one-day period `2024-05-01`..`2024-05-01` is accepted.
pub fn ends_after(start: &FhirDateTime, end: &FhirDateTime) -> bool {
    end.latest() > start.earliest()
}

/// A person's name as the seeds hold it: given names (first, middle) and a family name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonName {
    pub given: Vec<String>,
    pub family: Option<String>,
}

impl PersonName {
    pub fn new(first: &str, last: &str) -> Self {
        PersonName { given: vec![first.to_owned()], family: Some(last.to_owned()) }
    }
}

/// A postal address as the seeds hold it (address, city, state, zip_code, country).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostalAddress {
    pub lines: Vec<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

/// A FHIR Period.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Period {
    pub start: Option<FhirDateTime>,
    pub end: Option<FhirDateTime>,
}

/// Someone or something referred to by a FHIR Reference: a literal reference
/// (`Organization/42`), a display text (a seed that only has a company name), or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    pub reference: Option<String>,
    pub display: Option<String>,
}

impl Party {
    pub fn reference(target: &str) -> Self {
        Party { reference: Some(target.to_owned()), display: None }
    }

    pub fn named(display: &str) -> Self {
        Party { reference: None, display: Some(display.to_owned()) }
    }
}

/// The FHIR resource a model was read from, kept whole so that `to_fhir` can lay the model's
/// fields over it and give back everything the model does not know (extensions, narrative,
/// meta, contained resources, extra identifiers...). Empty for a model built from seed data.
#[derive(Clone, Default, PartialEq)]
pub struct SourceResource(Map<String, Value>);

impl SourceResource {
    pub fn new(resource: Map<String, Value>) -> Self {
        SourceResource(resource)
    }

    pub fn as_object(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Shows only the size: the source holds PHI (possibly an SSN) that must stay out of logs.
impl fmt::Debug for SourceResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceResource({} elements)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_keep_their_precision() {
        for text in ["1980", "1980-03", "1980-03-07"] {
            assert_eq!(FhirDate::parse(text).unwrap().to_string(), text);
        }
        for bad in ["80", "1980-13", "1980-02-30", "1980-3-7", "1980-03-07T10:00:00Z"] {
            assert!(FhirDate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn date_bounds_cover_the_whole_precision() {
        let feb = FhirDate::parse("2024-02").unwrap();
        assert_eq!(feb.first_day().to_string(), "2024-02-01");
        assert_eq!(feb.last_day().to_string(), "2024-02-29");
        assert_eq!(FhirDate::parse("2023").unwrap().last_day().to_string(), "2023-12-31");
    }

    #[test]
    fn date_times_keep_their_text_and_know_their_instant() {
        let t = FhirDateTime::parse("2024-05-01T10:30:00.000+02:00").unwrap();
        assert_eq!(t.as_str(), "2024-05-01T10:30:00.000+02:00");
        assert_eq!(t.instant().unwrap().to_rfc3339(), "2024-05-01T08:30:00+00:00");
        assert!(FhirDateTime::parse("2024-05-01T10:30:00").is_err(), "zone is required");
        assert!(FhirDateTime::parse("2024-05-01 10:30:00Z").is_err());
        let day = FhirDateTime::parse("2024-05-01").unwrap();
        assert!(day.instant().is_none());
        assert_eq!(day.latest().to_rfc3339(), "2024-05-01T23:59:59.999999999+00:00");
    }

    #[test]
    fn ends_after_respects_precision() {
        let p = |s: &str| FhirDateTime::parse(s).unwrap();
        assert!(ends_after(&p("2024-05-01T10:00:00Z"), &p("2024-05-01T10:00:01Z")));
        assert!(!ends_after(&p("2024-05-01T10:00:00Z"), &p("2024-05-01T10:00:00Z")));
        assert!(!ends_after(&p("2024-05-01T10:00:00Z"), &p("2024-05-01T11:00:00+02:00")));
        assert!(ends_after(&p("2024-05-01"), &p("2024-05-01")));
        assert!(!ends_after(&p("2024-05-02"), &p("2024-05-01")));
    }

    #[test]
    fn source_debug_hides_content() {
        let mut m = Map::new();
        m.insert("ssn".into(), "123-45-6789".into());
        assert!(!format!("{:?}", SourceResource::new(m)).contains("6789"));
    }
}
