//! Clinic-local time for the demo generator: the clinic is in Columbus, Ohio (US Eastern time with
//! daylight saving), so every FHIR dateTime carries the offset in force at that local time
//! (`-05:00` or `-04:00`); plus date arithmetic and the working-day calendar used for bookings.

use chrono::{Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Weekday};

pub(crate) fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_else(|| panic!("invalid date {y}-{m}-{d}"))
}

pub(crate) fn at(d: NaiveDate, hour: u32, minute: u32) -> NaiveDateTime {
    d.and_hms_opt(hour, minute, 0).unwrap_or_else(|| panic!("invalid time {hour}:{minute}"))
}

pub(crate) fn add_days(d: NaiveDate, days: i64) -> NaiveDate {
    d + TimeDelta::days(days)
}

pub(crate) fn add_minutes(t: NaiveDateTime, minutes: i64) -> NaiveDateTime {
    t + TimeDelta::minutes(minutes)
}

/// `d` moved by whole years; 29 February becomes 28 February in common years.
pub(crate) fn add_years(d: NaiveDate, years: i32) -> NaiveDate {
    let y = d.year() + years;
    NaiveDate::from_ymd_opt(y, d.month(), d.day()).unwrap_or_else(|| ymd(y, d.month(), 28))
}

/// Days from `a` to `b` (negative when `b` is earlier).
pub(crate) fn days_between(a: NaiveDate, b: NaiveDate) -> i64 {
    (b - a).num_days()
}

/// Completed years of age on `on` for someone born on `birth`.
pub(crate) fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// Age in fractional years (for growth curves and trends).
pub(crate) fn age_years(birth: NaiveDate, on: NaiveDate) -> f64 {
    days_between(birth, on) as f64 / 365.25
}

fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8).expect("nth weekday exists")
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    let mut d = if month == 12 { ymd(year + 1, 1, 1) } else { ymd(year, month + 1, 1) };
    d = add_days(d, -1);
    while d.weekday() != weekday {
        d = add_days(d, -1);
    }
    d
}

/// First and last day of daylight saving time in the US (Energy Policy Act 2005 rules from 2007,
/// the 1987 rules before; earlier years use the 1987 rules as an approximation).
fn dst_days(year: i32) -> (NaiveDate, NaiveDate) {
    if year >= 2007 {
        (nth_weekday(year, 3, Weekday::Sun, 2), nth_weekday(year, 11, Weekday::Sun, 1))
    } else {
        (nth_weekday(year, 4, Weekday::Sun, 1), last_weekday(year, 10, Weekday::Sun))
    }
}

/// UTC offset in hours of US Eastern time at the local time `t` (-4 in summer, -5 in winter).
pub(crate) fn eastern_offset(t: NaiveDateTime) -> i32 {
    let (start, end) = dst_days(t.year());
    let d = t.date();
    let after_start = d > start || (d == start && t.hour() >= 2);
    let before_end = d < end || (d == end && t.hour() < 2);
    if after_start && before_end { -4 } else { -5 }
}

/// FHIR `date` (YYYY-MM-DD).
pub(crate) fn date(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// FHIR `dateTime`/`instant` with seconds and the clinic's UTC offset.
pub(crate) fn datetime(t: NaiveDateTime) -> String {
    let offset = eastern_offset(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}-{:02}:00",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        -offset
    )
}

/// `d` if it is a weekday, else the following Monday.
pub(crate) fn weekday_on_or_after(d: NaiveDate) -> NaiveDate {
    match d.weekday() {
        Weekday::Sat => add_days(d, 2),
        Weekday::Sun => add_days(d, 1),
        _ => d,
    }
}

/// The `n`-th working day (Monday–Friday) counting from `first` (a weekday) as day 0.
pub(crate) fn working_day(first: NaiveDate, n: u64) -> NaiveDate {
    debug_assert!(first.weekday().num_days_from_monday() < 5);
    let offset = u64::from(first.weekday().num_days_from_monday()) + n;
    let monday = add_days(first, -i64::from(first.weekday().num_days_from_monday()));
    add_days(monday, (offset / 5 * 7 + offset % 5) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_follow_us_daylight_saving() {
        assert_eq!(datetime(at(ymd(2024, 1, 15), 9, 30)), "2024-01-15T09:30:00-05:00");
        assert_eq!(datetime(at(ymd(2024, 7, 1), 14, 0)), "2024-07-01T14:00:00-04:00");
        // 2024: DST from 10 March to 3 November.
        assert_eq!(eastern_offset(at(ymd(2024, 3, 10), 1, 0)), -5);
        assert_eq!(eastern_offset(at(ymd(2024, 3, 10), 3, 0)), -4);
        assert_eq!(eastern_offset(at(ymd(2024, 11, 3), 1, 0)), -4);
        assert_eq!(eastern_offset(at(ymd(2024, 11, 3), 3, 0)), -5);
        // 2005 rules: first Sunday of April (3 April) to last Sunday of October (30 October).
        assert_eq!(eastern_offset(at(ymd(2005, 4, 2), 12, 0)), -5);
        assert_eq!(eastern_offset(at(ymd(2005, 4, 4), 12, 0)), -4);
        assert_eq!(eastern_offset(at(ymd(2005, 10, 31), 12, 0)), -5);
    }

    #[test]
    fn working_days_skip_weekends() {
        let mon = ymd(2025, 6, 2);
        assert_eq!(working_day(mon, 0), mon);
        assert_eq!(working_day(mon, 4), ymd(2025, 6, 6));
        assert_eq!(working_day(mon, 5), ymd(2025, 6, 9));
        let thu = ymd(2025, 6, 5);
        assert_eq!(working_day(thu, 2), ymd(2025, 6, 9));
        assert_eq!(weekday_on_or_after(ymd(2025, 6, 7)), ymd(2025, 6, 9));
    }

    #[test]
    fn ages_and_years() {
        assert_eq!(age_on(ymd(2000, 2, 29), ymd(2021, 2, 28)), 20);
        assert_eq!(age_on(ymd(2000, 2, 29), ymd(2021, 3, 1)), 21);
        assert_eq!(add_years(ymd(2024, 2, 29), 1), ymd(2025, 2, 28));
    }
}
