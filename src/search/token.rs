//! Token search parameters (FHIR R4 search.html#token): `code`, `system|code`, `|code`,
//! `system|`, on code, Coding, CodeableConcept, Identifier, ContactPoint, boolean and string;
//! `:text` (on the display text, starts-with) and `:not` (see the query compiler).

use serde_json::Value;

use super::fhirpath::Found;
use super::{IndexRow, SqlArg, like_escape, normalize};

fn text_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

pub fn extract(param: &str, found: &Found<'_>, rows: &mut Vec<IndexRow>) {
    let row = |system: Option<&str>, code: Option<&str>, text: Option<&str>| IndexRow::Token {
        param: param.to_string(),
        system: system.map(str::to_string),
        code: code.map(str::to_string),
        text: text.map(normalize),
    };
    let value = found.value;
    match found.type_code.as_str() {
        "Coding" => rows.push(row(text_of(value, "system"), text_of(value, "code"), text_of(value, "display"))),
        "CodeableConcept" => {
            let text = text_of(value, "text");
            for coding in value.get("coding").and_then(Value::as_array).into_iter().flatten() {
                rows.push(row(text_of(coding, "system"), text_of(coding, "code"), text.or(text_of(coding, "display"))));
            }
            if value.get("coding").is_none() && text.is_some() {
                rows.push(row(None, None, text));
            }
        }
        "Identifier" => {
            let type_text = value.get("type").and_then(|t| t.get("text")).and_then(Value::as_str);
            rows.push(row(text_of(value, "system"), text_of(value, "value"), type_text));
            // For :of-type: the identifier's type coding and value, as system = type system,
            // code = "type-code|value".
            if let Some(identifier_value) = text_of(value, "value") {
                let codings = value.get("type").and_then(|t| t.get("coding")).and_then(Value::as_array);
                for coding in codings.into_iter().flatten() {
                    if let Some(type_code) = text_of(coding, "code") {
                        rows.push(IndexRow::Token {
                            param: of_type_param(param),
                            system: text_of(coding, "system").map(str::to_string),
                            code: Some(format!("{type_code}|{identifier_value}")),
                            text: None,
                        });
                    }
                }
            }
        }
        "ContactPoint" => rows.push(row(text_of(value, "system"), text_of(value, "value"), None)),
        "boolean" => {
            if let Some(b) = value.as_bool() {
                rows.push(row(None, Some(if b { "true" } else { "false" }), None));
            }
        }
        _ => {
            if let Some(code) = value.as_str() {
                rows.push(row(None, Some(code), None));
            }
        }
    }
}

/// The token parameter under which identifiers are indexed by type, for `:of-type`.
pub fn of_type_param(param: &str) -> String {
    format!("{param}:of-type")
}

/// `:of-type=system|type-code|value` on the row `x` of the parameter's `:of-type` rows.
pub fn of_type_condition(
    value: &str,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    let mut parts = value.splitn(3, '|');
    let (Some(system), Some(type_code), Some(identifier)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("identifier:of-type takes system|type-code|value".into());
    };
    args.push(SqlArg::Text(system.to_string()));
    let system_placeholder = next();
    args.push(SqlArg::Text(format!("{type_code}|{identifier}")));
    Ok(format!("x.system = {system_placeholder} AND x.code = {}", next()))
}

/// The condition on the `search_token` row `x` for one value (`:not` is applied by the caller).
pub fn condition(
    modifier: Option<&str>,
    value: &str,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    if modifier == Some("text") {
        args.push(SqlArg::Text(format!("{}%", like_escape(&normalize(value)))));
        return Ok(format!("x.text LIKE {} ESCAPE '\\'", next()));
    }
    if let Some(m) = modifier.filter(|m| !matches!(*m, "not" | "of-type")) {
        return Err(format!("modifier :{m} is not supported on token parameters yet"));
    }
    Ok(match value.split_once('|') {
        None => {
            args.push(SqlArg::Text(value.to_string()));
            format!("x.code = {}", next())
        }
        Some(("", code)) => {
            args.push(SqlArg::Text(code.to_string()));
            format!("x.system IS NULL AND x.code = {}", next())
        }
        Some((system, "")) => {
            args.push(SqlArg::Text(system.to_string()));
            format!("x.system = {}", next())
        }
        Some((system, code)) => {
            args.push(SqlArg::Text(system.to_string()));
            let system_placeholder = next();
            args.push(SqlArg::Text(code.to_string()));
            format!("x.system = {system_placeholder} AND x.code = {}", next())
        }
    })
}
