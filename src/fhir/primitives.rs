//! Lexical checks for the R4 primitive data types (FHIR R4 datatypes.html#primitive): each check
//! follows the regular expression the specification gives for the type.

use serde_json::Value;

/// Why a JSON value is not a valid instance of a primitive type.
#[derive(Debug, PartialEq, Eq)]
pub enum PrimitiveError {
    /// The JSON type is wrong (e.g. a string where a boolean belongs): the body is malformed.
    WrongJsonType(&'static str),
    /// The JSON type is right, the content breaks the type's format.
    BadFormat(String),
}

/// Checks `value` against primitive type `type_code`. Unknown codes are accepted as strings.
pub fn check(type_code: &str, value: &Value) -> Result<(), PrimitiveError> {
    use PrimitiveError::*;
    match type_code {
        "boolean" => value.as_bool().map(|_| ()).ok_or(WrongJsonType("a JSON boolean")),
        "integer" | "positiveInt" | "unsignedInt" => {
            let Some(n) = value.as_i64() else {
                return Err(if value.is_number() {
                    BadFormat(format!("{value} is not a whole number"))
                } else {
                    WrongJsonType("a JSON number")
                });
            };
            let min = match type_code {
                "positiveInt" => 1,
                "unsignedInt" => 0,
                _ => i32::MIN as i64,
            };
            if n < min || n > i32::MAX as i64 {
                return Err(BadFormat(format!("{n} is out of range for {type_code}")));
            }
            Ok(())
        }
        "decimal" => value.is_number().then_some(()).ok_or(WrongJsonType("a JSON number")),
        _ => {
            let Some(s) = value.as_str() else {
                return Err(WrongJsonType("a JSON string"));
            };
            check_string(type_code, s).map_err(BadFormat)
        }
    }
}

fn check_string(type_code: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("empty strings are not allowed; omit the element instead".into());
    }
    let ok = match type_code {
        "id" => super::is_valid_id(s),
        "code" => is_code(s),
        "date" => is_date(s),
        "dateTime" => is_date_time(s, false),
        "instant" => is_date_time(s, true),
        "time" => is_time(s),
        "uri" | "url" | "canonical" => !s.chars().any(char::is_whitespace),
        "oid" => is_oid(s),
        "uuid" => is_uuid(s),
        "base64Binary" => s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b' ' | b'\n' | b'\r' | b'\t')),
        "xhtml" => s.trim_start().starts_with("<div"),
        _ => s.len() <= 1024 * 1024,
    };
    if ok { Ok(()) } else { Err(format!("\"{}\" is not a valid {type_code}", truncate(s))) }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// White space as the specification's regular expressions mean `\s` (XML Schema: space, tab,
/// CR, LF), not Unicode white space: `"CHEST\u{a0}"` is a valid code.
fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn is_code(s: &str) -> bool {
    // [^\s]+(\s[^\s]+)*: no leading, trailing or doubled white space.
    let mut previous_space = true;
    for c in s.chars() {
        let space = is_xml_space(c);
        if space && previous_space {
            return false;
        }
        previous_space = space;
    }
    !previous_space
}

fn is_oid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:oid:") else { return false };
    let mut parts = rest.split('.');
    matches!(parts.next(), Some("0" | "1" | "2"))
        && rest.contains('.')
        && parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0')))
}

fn is_uuid(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("urn:uuid:") else { return false };
    rest.len() == 36
        && rest.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() && !c.is_ascii_uppercase() }
        })
}

fn digits(s: &str, n: usize) -> Option<u32> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, with real months and days.
pub fn is_date(s: &str) -> bool {
    let mut parts = s.splitn(3, '-');
    let Some(year) = parts.next().and_then(|y| digits(y, 4)) else { return false };
    if year == 0 {
        return false;
    }
    let Some(month) = parts.next() else { return true };
    let Some(month) = digits(month, 2).filter(|m| (1..=12).contains(m)) else { return false };
    let Some(day) = parts.next() else { return true };
    let Some(day) = digits(day, 2) else { return false };
    day >= 1 && day <= days_in_month(year, month)
}

pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `hh:mm:ss(.fff…)?` with real hours, minutes and seconds.
pub fn is_time(s: &str) -> bool {
    let (main, fraction) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if let Some(f) = fraction
        && (f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let mut parts = main.split(':');
    let h = parts.next().and_then(|p| digits(p, 2));
    let m = parts.next().and_then(|p| digits(p, 2));
    let sec = parts.next().and_then(|p| digits(p, 2));
    matches!((h, m, sec, parts.next()), (Some(h), Some(m), Some(sec), None) if h < 24 && m < 60 && sec < 60)
}

/// dateTime: a date, or a full date with a time and a zone; `instant` requires the time.
pub fn is_date_time(s: &str, instant: bool) -> bool {
    let Some((date, rest)) = s.split_once('T') else {
        return !instant && is_date(s);
    };
    if date.len() != 10 || !is_date(date) {
        return false;
    }
    let (time, zone) = if let Some(t) = rest.strip_suffix('Z') {
        (t, "Z")
    } else if rest.len() > 6 && matches!(rest.as_bytes()[rest.len() - 6], b'+' | b'-') {
        rest.split_at(rest.len() - 6)
    } else {
        return false;
    };
    if !is_time(time) {
        return false;
    }
    zone == "Z" || {
        let h = digits(&zone[1..3], 2);
        let m = digits(&zone[4..6], 2);
        zone.as_bytes()[3] == b':' && matches!((h, m), (Some(h), Some(m)) if h <= 14 && m < 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates() {
        for ok in ["2024", "2024-02", "2024-02-29", "1900-12-31"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in ["2023-02-29", "2024-13", "24", "2024-1-01", "0000", "2024-04-31", "2024-02-3x"] {
            assert!(!is_date(bad), "{bad}");
        }
    }

    #[test]
    fn date_times_and_instants() {
        assert!(is_date_time("2024-03-01T10:00:00Z", false));
        assert!(is_date_time("2024-03-01T10:00:00.123+05:30", true));
        assert!(is_date_time("2024-03", false));
        assert!(!is_date_time("2024-03", true));
        assert!(!is_date_time("2024-03-01T10:00:00", false), "a time needs a zone");
        assert!(!is_date_time("2024-03-01T25:00:00Z", false));
        assert!(!is_date_time("2024-03-01T10:00Z", false));
    }

    #[test]
    fn json_types() {
        assert_eq!(check("boolean", &json!("true")), Err(PrimitiveError::WrongJsonType("a JSON boolean")));
        assert!(check("integer", &json!(3)).is_ok());
        assert!(matches!(check("integer", &json!(3.5)), Err(PrimitiveError::BadFormat(_))));
        assert!(matches!(check("positiveInt", &json!(0)), Err(PrimitiveError::BadFormat(_))));
        assert!(check("decimal", &json!(1.5)).is_ok());
        assert_eq!(check("string", &json!(5)), Err(PrimitiveError::WrongJsonType("a JSON string")));
        assert!(matches!(check("string", &json!("")), Err(PrimitiveError::BadFormat(_))));
    }

    #[test]
    fn codes_ids_and_identifiers() {
        assert!(check("code", &json!("final")).is_ok());
        assert!(check("code", &json!(" final")).is_err());
        assert!(check("code", &json!("a  b")).is_err());
        assert!(check("code", &json!("a b")).is_ok());
        assert!(check("code", &json!("CHEST\u{a0}")).is_ok(), "only XML white space counts");
        assert!(check("oid", &json!("urn:oid:2.16.840.1.113883")).is_ok());
        assert!(check("oid", &json!("urn:oid:3.1")).is_err());
        assert!(check("uuid", &json!("urn:uuid:a76d9bbf-f293-4fb7-ad4c-2851cac77162")).is_ok());
        assert!(check("uri", &json!("http://a b")).is_err());
        assert!(check("id", &json!("a_b")).is_err());
    }
}
