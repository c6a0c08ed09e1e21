//! Instants as Kiln keeps them (microseconds since the Unix epoch, UTC), their FHIR `instant`
//! and HTTP-date renderings, and parsing of FHIR dates of any precision into time ranges
//! (FHIR R4 datatypes.html#dateTime, search.html#date).

use chrono::{DateTime, NaiveDate, TimeZone, Utc};

/// Microseconds since 1970-01-01T00:00:00Z: how every timestamp is stored, on both backends.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

pub fn to_datetime(micros: Micros) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// `2024-03-01T10:00:00.123456Z`
pub fn fhir_instant(micros: Micros) -> String {
    to_datetime(micros).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// `Fri, 01 Mar 2024 10:00:00 GMT` (RFC 9110 IMF-fixdate)
pub fn http_date(micros: Micros) -> String {
    to_datetime(micros).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

pub fn parse_http_date(s: &str) -> Option<Micros> {
    DateTime::parse_from_rfc2822(s.trim().replace("GMT", "+0000").as_str()).ok().map(|d| d.timestamp_micros())
}

/// Parses a FHIR date, dateTime or instant of any precision into the half-open range
/// `[start, end)` of instants it covers; a value without a zone is taken as UTC.
pub fn parse_range(s: &str) -> Option<(Micros, Micros)> {
    if !super::primitives::is_date_time(s, false) && !is_zoneless_date_time(s) {
        return None;
    }
    if !s.contains('T') {
        let mut parts = s.split('-');
        let year: i32 = parts.next()?.parse().ok()?;
        let month: Option<u32> = parts.next().and_then(|m| m.parse().ok());
        let day: Option<u32> = parts.next().and_then(|d| d.parse().ok());
        let start = NaiveDate::from_ymd_opt(year, month.unwrap_or(1), day.unwrap_or(1))?;
        let end = match (month, day) {
            (Some(_), Some(_)) => start.succ_opt()?,
            (Some(12), None) => NaiveDate::from_ymd_opt(year + 1, 1, 1)?,
            (Some(m), None) => NaiveDate::from_ymd_opt(year, m + 1, 1)?,
            _ => NaiveDate::from_ymd_opt(year + 1, 1, 1)?,
        };
        let at = |d: NaiveDate| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap()).timestamp_micros();
        return Some((at(start), at(end)));
    }
    let with_zone = if is_zoneless_date_time(s) { format!("{s}Z") } else { s.to_string() };
    let parsed = DateTime::parse_from_rfc3339(&with_zone).ok()?;
    let start = parsed.timestamp_micros();
    let precision = match with_zone.split_once('.') {
        Some((_, frac)) => {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count() as u32;
            10i64.pow(6u32.saturating_sub(digits.min(6)))
        }
        None => 1_000_000,
    };
    Some((start, start + precision))
}

fn is_zoneless_date_time(s: &str) -> bool {
    s.len() >= 19 && s.contains('T') && super::primitives::is_date_time(&format!("{s}Z"), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_precision() {
        let (s, e) = parse_range("2024-03").unwrap();
        assert_eq!(fhir_instant(s), "2024-03-01T00:00:00.000000Z");
        assert_eq!(fhir_instant(e), "2024-04-01T00:00:00.000000Z");
        let (s, e) = parse_range("2024-12-31").unwrap();
        assert_eq!(e - s, 86_400_000_000);
        let (s, e) = parse_range("2024-03-01T10:00:00+01:00").unwrap();
        assert_eq!(fhir_instant(s), "2024-03-01T09:00:00.000000Z");
        assert_eq!(e - s, 1_000_000);
        assert!(parse_range("yesterday").is_none());
    }

    #[test]
    fn http_dates_round_trip_to_the_second() {
        let t = 1_709_287_200_123_456;
        let parsed = parse_http_date(&http_date(t)).unwrap();
        assert_eq!(parsed, t - 123_456);
    }
}
