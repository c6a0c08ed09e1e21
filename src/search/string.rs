//! String search parameters (FHIR R4 search.html#string): case- and accent-insensitive
//! starts-with by default, `:exact` and `:contains`; HumanName and Address search all parts.

use serde_json::Value;

use super::fhirpath::Found;
use super::{IndexRow, SqlArg, like_escape, normalize};

pub fn extract(param: &str, found: &Found<'_>, rows: &mut Vec<IndexRow>) {
    let mut push = |text: &str| {
        if !text.is_empty() {
            rows.push(IndexRow::String {
                param: param.to_string(),
                normalized: normalize(text),
                exact: text.to_string(),
            });
        }
    };
    let parts: &[&str] = match found.type_code.as_str() {
        "HumanName" => &["text", "family", "given", "prefix", "suffix"],
        "Address" => &["text", "line", "city", "district", "state", "postalCode", "country"],
        _ => &[],
    };
    if parts.is_empty() {
        if let Some(text) = found.value.as_str() {
            push(text);
        }
        return;
    }
    for part in parts {
        match found.value.get(part) {
            Some(Value::String(text)) => push(text),
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(&mut push),
            _ => {}
        }
    }
}

/// The condition on the `search_string` row `x` for one value.
pub fn condition(
    modifier: Option<&str>,
    value: &str,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    Ok(match modifier {
        None => {
            args.push(SqlArg::Text(format!("{}%", like_escape(&normalize(value)))));
            format!("x.normalized LIKE {} ESCAPE '\\'", next())
        }
        Some("contains") => {
            args.push(SqlArg::Text(format!("%{}%", like_escape(&normalize(value)))));
            format!("x.normalized LIKE {} ESCAPE '\\'", next())
        }
        Some("exact") => {
            args.push(SqlArg::Text(value.to_string()));
            format!("x.exact = {}", next())
        }
        Some(other) => return Err(format!("modifier :{other} is not supported on string parameters")),
    })
}
