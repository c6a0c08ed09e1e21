//! Date search parameters (FHIR R4 search.html#date): every value is a range `[low, high)` of
//! instants (a date covers its whole day, a Period its span, a Timing its events), and the nine
//! prefixes compare ranges; the search value's own precision makes its range.

use serde_json::Value;

use super::fhirpath::Found;
use super::{IndexRow, SqlArg};
use crate::fhir::instant::{now_micros, parse_range};

/// Open ends of a Period stand for "any time" in that direction.
const OPEN_LOW: i64 = i64::MIN / 2;
const OPEN_HIGH: i64 = i64::MAX / 2;

pub fn extract(param: &str, found: &Found<'_>, rows: &mut Vec<IndexRow>) {
    let mut push = |low: i64, high: i64| rows.push(IndexRow::Date { param: param.to_string(), low, high });
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).and_then(parse_range);
    match found.type_code.as_str() {
        "Period" => {
            let low = text(found.value, "start").map_or(OPEN_LOW, |r| r.0);
            let high = text(found.value, "end").map_or(OPEN_HIGH, |r| r.1);
            if low != OPEN_LOW || high != OPEN_HIGH {
                push(low, high);
            }
        }
        "Timing" => {
            for event in found.value.get("event").and_then(Value::as_array).into_iter().flatten() {
                if let Some((low, high)) = event.as_str().and_then(parse_range) {
                    push(low, high);
                }
            }
        }
        _ => {
            if let Some((low, high)) = found.value.as_str().and_then(parse_range) {
                push(low, high);
            }
        }
    }
}

/// Splits `ge2024-03` into its prefix and value.
pub fn split_prefix(value: &str) -> (&str, &str) {
    const PREFIXES: [&str; 9] = ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"];
    match value.get(..2) {
        Some(p) if PREFIXES.contains(&p) => (p, &value[2..]),
        _ => ("eq", value),
    }
}

/// The condition on the `search_date` row `x`: `ne` is the caller's `NOT` of `eq`.
pub fn condition(value: &str, args: &mut Vec<SqlArg>, next: &mut dyn FnMut() -> String) -> Result<String, String> {
    let (prefix, date) = split_prefix(value);
    let (low, high) = parse_range(date).ok_or_else(|| format!("'{date}' is not a FHIR date, dateTime or instant"))?;
    let mut bind = |v: i64| {
        args.push(SqlArg::Int(v));
        next()
    };
    // Where a condition bounds `high` from above, `low` (never above `high`) is bounded too and
    // the bound is stated: the index is on (…, low, high), and `low >= L` alone would scan every
    // row from L to the end.
    Ok(match prefix {
        "eq" | "ne" => format!("x.low >= {} AND x.low <= {} AND x.high <= {}", bind(low), bind(high), bind(high)),
        "gt" => format!("x.high > {}", bind(high)),
        "lt" => format!("x.low < {}", bind(low)),
        "ge" => format!("x.high > {}", bind(low)),
        "le" => format!("x.low < {}", bind(high)),
        "sa" => format!("x.low >= {}", bind(high)),
        "eb" => format!("x.low <= {} AND x.high <= {}", bind(low), bind(low)),
        _ => {
            // ap: overlaps the value widened by 10% of its distance from now (at least a day).
            let margin = ((now_micros() - low).abs() / 10).max(86_400_000_000);
            format!("x.low < {} AND x.high > {}", bind(high + margin), bind(low - margin))
        }
    })
}
