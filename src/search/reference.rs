//! Reference search parameters (FHIR R4 search.html#reference): `Type/id`, a bare `id` (with
//! `:Type` or a single target type), and absolute URLs (this server's own are read as local).

use serde_json::Value;

use super::fhirpath::{Found, reference_type};
use super::{IndexRow, SqlArg};

/// The token parameter under which a reference parameter's `Reference.identifier` is indexed,
/// for the `:identifier` modifier.
pub fn identifier_param(param: &str) -> String {
    format!("{param}:identifier")
}

pub fn extract(param: &str, found: &Found<'_>, rows: &mut Vec<IndexRow>) {
    if let Some(identifier) = found.value.get("identifier") {
        let text = |key: &str| identifier.get(key).and_then(Value::as_str).map(str::to_string);
        rows.push(IndexRow::Token {
            param: identifier_param(param),
            system: text("system"),
            code: text("value"),
            text: None,
        });
    }
    let reference = match found.type_code.as_str() {
        "Reference" => found.value.get("reference").and_then(Value::as_str),
        "canonical" | "uri" | "url" => found.value.as_str(),
        _ => None,
    };
    let Some(reference) = reference.filter(|r| !r.starts_with('#')) else { return };
    rows.push(parse(param, reference));
}

fn parse(param: &str, reference: &str) -> IndexRow {
    let local = reference.split("/_history/").next().unwrap_or(reference);
    let is_relative = !local.contains("://") && !local.starts_with("urn:");
    match (is_relative, reference_type(local)) {
        (true, Some(target_type)) => IndexRow::Reference {
            param: param.to_string(),
            target_type: Some(target_type.to_string()),
            target_id: local.rsplit('/').next().map(str::to_string),
            url: None,
        },
        _ => IndexRow::Reference {
            param: param.to_string(),
            target_type: None,
            target_id: None,
            url: Some(reference.to_string()),
        },
    }
}

/// The condition on the `search_reference` row `x`. `base` is this server's FHIR base URL;
/// `single_target` is the only type the parameter can point to, if there is one.
pub fn condition(
    modifier: Option<&str>,
    value: &str,
    base: &str,
    single_target: Option<&str>,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    let value = value.strip_prefix(base).map(|v| v.trim_start_matches('/')).unwrap_or(value);
    let type_modifier = modifier.filter(|m| m.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
    if let Some(m) = modifier.filter(|m| type_modifier.is_none() && !matches!(*m, "missing" | "identifier")) {
        return Err(format!("modifier :{m} is not supported on reference parameters yet"));
    }
    if value.contains("://") || value.starts_with("urn:") {
        args.push(SqlArg::Text(value.to_string()));
        return Ok(format!("x.url = {}", next()));
    }
    let (target_type, id) = match value.split_once('/') {
        Some((t, id)) => (Some(t), id),
        None => (type_modifier.or(single_target), value),
    };
    args.push(SqlArg::Text(id.to_string()));
    let mut condition = format!("x.target_id = {}", next());
    if let Some(t) = target_type {
        args.push(SqlArg::Text(t.to_string()));
        condition.push_str(&format!(" AND x.target_type = {}", next()));
    }
    Ok(condition)
}
