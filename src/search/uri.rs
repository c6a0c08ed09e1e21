//! URI search parameters (FHIR R4 search.html#uri): exact match, `:below` (the value is a
//! prefix of the stored URI) and `:above` (the stored URI is a prefix of the value).

use super::fhirpath::Found;
use super::{IndexRow, SqlArg, like_escape};

pub fn extract(param: &str, found: &Found<'_>, rows: &mut Vec<IndexRow>) {
    if let Some(value) = found.value.as_str() {
        rows.push(IndexRow::Uri { param: param.to_string(), value: value.to_string() });
    }
}

pub fn condition(
    modifier: Option<&str>,
    value: &str,
    args: &mut Vec<SqlArg>,
    next: &mut dyn FnMut() -> String,
) -> Result<String, String> {
    Ok(match modifier {
        None => {
            args.push(SqlArg::Text(value.to_string()));
            format!("x.value = {}", next())
        }
        Some("below") => {
            args.push(SqlArg::Text(format!("{}%", like_escape(value))));
            format!("x.value LIKE {} ESCAPE '\\'", next())
        }
        Some("above") => {
            args.push(SqlArg::Text(value.to_string()));
            format!("{} LIKE x.value || '%'", next())
        }
        Some(other) => return Err(format!("modifier :{other} is not supported on uri parameters")),
    })
}
