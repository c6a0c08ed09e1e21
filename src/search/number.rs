//! Number and quantity search parameters (FHIR R4 search.html#number, #quantity): prefixes, the
//! implicit precision of the search value (`100` matches 99.5 up to 100.5, `100.00` matches
//! 99.995 up to 100.005), and quantity `value|system|code` / `value||unit`, UCUM units of one
//! dimension compared in their canonical unit (`ucum`).

use serde_json::Value;

use super::date::split_prefix;
use super::fhirpath::Found;
use super::{IndexRow, SqlArg, ucum};

pub fn extract_number(param: &str, found: &Found<'_>, rows: &mut Vec<IndexRow>) {
    if let Some(value) = found.value.as_f64() {
        rows.push(IndexRow::Number { param: param.to_string(), value });
    }
}

pub fn extract_quantity(param: &str, found: &Found<'_>, rows: &mut Vec<IndexRow>) {
    let Some(value) = found.value.get("value").and_then(Value::as_f64) else { return };
    let text = |key: &str| found.value.get(key).and_then(Value::as_str).map(str::to_string);
    let (system, code) = (text("system"), text("code"));
    if system.as_deref() == Some(ucum::UCUM)
        && let Some((canonical, factor)) = code.as_deref().and_then(ucum::canonical)
    {
        rows.push(IndexRow::Quantity {
            param: param.to_string(),
            value: value * factor,
            system: Some(ucum::CANONICAL.to_string()),
            code: Some(canonical.to_string()),
        });
    }
    rows.push(IndexRow::Quantity { param: param.to_string(), value, system, code: code.or(text("unit")) });
}

/// The half-width of a number's implicit range: half a unit of its last significant digit.
fn half_precision(number: &str) -> f64 {
    let mantissa = number.split(['e', 'E']).next().unwrap_or(number);
    let exponent: i32 = number.split(['e', 'E']).nth(1).and_then(|e| e.parse().ok()).unwrap_or(0);
    let decimals = mantissa.split_once('.').map_or(0, |(_, f)| f.len() as i32);
    0.5 * 10f64.powi(exponent - decimals)
}

/// The condition on the value column `column` of row `x` for a prefixed number.
pub fn value_condition(
    column: &str,
    value: &str,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    scaled_value_condition(column, value, 1.0, args, next)
}

/// [`value_condition`] for a number given in a unit `factor` times the unit of the column (its
/// implicit precision scaled with it).
fn scaled_value_condition(
    column: &str,
    value: &str,
    factor: f64,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    let (prefix, number) = split_prefix(value);
    let parsed: f64 = number.parse::<f64>().map_err(|_| format!("'{number}' is not a number"))? * factor;
    let half = half_precision(number) * factor;
    let mut bind = |v: f64| {
        args.push(SqlArg::Real(v));
        next()
    };
    Ok(match prefix {
        "eq" => format!("{column} >= {} AND {column} < {}", bind(parsed - half), bind(parsed + half)),
        "ne" => format!("({column} < {} OR {column} >= {})", bind(parsed - half), bind(parsed + half)),
        "gt" | "sa" => format!("{column} > {}", bind(parsed)),
        "lt" | "eb" => format!("{column} < {}", bind(parsed)),
        "ge" => format!("{column} >= {}", bind(parsed)),
        "le" => format!("{column} <= {}", bind(parsed)),
        _ => {
            let margin = (parsed.abs() * 0.1).max(half);
            format!("{column} >= {} AND {column} <= {}", bind(parsed - margin), bind(parsed + margin))
        }
    })
}

/// `[prefix]value|system|code` or `[prefix]value||unit` on the `search_quantity` row `x`.
pub fn quantity_condition(
    value: &str,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    let mut parts = value.splitn(3, '|');
    let number = parts.next().unwrap_or_default();
    let system = parts.next().filter(|s| !s.is_empty());
    let code = parts.next().filter(|c| !c.is_empty());
    if system == Some(ucum::UCUM)
        && let Some((canonical, factor)) = code.and_then(ucum::canonical)
    {
        // Compared in the canonical unit, with every quantity recorded in any unit of it.
        let mut condition = scaled_value_condition("x.value", number, factor, args, next)?;
        args.push(SqlArg::Text(ucum::CANONICAL.to_string()));
        condition.push_str(&format!(" AND x.system = {}", next()));
        args.push(SqlArg::Text(canonical.to_string()));
        condition.push_str(&format!(" AND x.code = {}", next()));
        return Ok(condition);
    }
    let mut condition = value_condition("x.value", number, args, next)?;
    if system.is_none() {
        // The canonical copies are not quantities of their own.
        args.push(SqlArg::Text(ucum::CANONICAL.to_string()));
        condition.push_str(&format!(" AND (x.system IS NULL OR x.system <> {})", next()));
    }
    if let Some(system) = system {
        args.push(SqlArg::Text(system.to_string()));
        condition.push_str(&format!(" AND x.system = {}", next()));
    }
    if let Some(code) = code {
        args.push(SqlArg::Text(code.to_string()));
        condition.push_str(&format!(" AND x.code = {}", next()));
    }
    Ok(condition)
}

#[cfg(test)]
mod tests {
    use super::half_precision;

    #[test]
    fn implicit_precision() {
        assert_eq!(half_precision("100"), 0.5);
        assert!((half_precision("100.00") - 0.005).abs() < 1e-12);
        assert_eq!(half_precision("1e2"), 50.0);
    }
}
