//! A search request compiled to SQL (FHIR R4 search.html): each parameter becomes an `EXISTS`
//! over its type's index table (AND across repeated parameters, OR across comma-separated values),
//! plus `_id`, `_lastUpdated`, `:missing`, `:not`, `_sort`, `_count`, `_total` and keyset paging.
//! Unknown parameters are refused (400) unless the client sends `Prefer: handling=lenient`.

use super::{SearchRegistry, SqlArg, date, number, reference, string, token, uri};
use crate::error::{FhirError, Issue, IssueType};
use crate::fhir::registry::ResourceType;
use crate::fhir::subset::Subset;
use crate::rest::QueryParams;

/// The order of results; each has its own keyset cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    IdAscending,
    IdDescending,
    LastUpdatedAscending,
    LastUpdatedDescending,
}

impl Sort {
    pub fn order_by(self) -> &'static str {
        match self {
            Sort::IdAscending => "r.id ASC",
            Sort::IdDescending => "r.id DESC",
            Sort::LastUpdatedAscending => "r.last_updated ASC, r.id ASC",
            Sort::LastUpdatedDescending => "r.last_updated DESC, r.id DESC",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Accurate,
}

/// Where a page starts: after the last entry of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub last_updated: i64,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.last_updated, self.id)
    }

    fn decode(text: &str) -> Option<Cursor> {
        let (last_updated, id) = text.split_once(':')?;
        Some(Cursor { last_updated: last_updated.parse().ok()?, id: id.to_string() })
    }
}

/// A compiled search: `conditions` use placeholders from `$3` on (`$1` tenant, `$2` type).
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub conditions: String,
    pub args: Vec<SqlArg>,
    pub sort: Sort,
    pub count: u32,
    pub total: Total,
    pub subset: Subset,
    pub cursor: Option<Cursor>,
    /// Parameters as given, for the self and next links (paging parameters left out).
    pub echo: Vec<(String, String)>,
    /// Parameters ignored under `Prefer: handling=lenient`.
    pub ignored: Vec<String>,
}

impl SearchQuery {
    /// The conditions with the keyset cursor applied, and their arguments.
    pub fn paged_conditions(&self) -> (String, Vec<SqlArg>) {
        let mut conditions = self.conditions.clone();
        let mut args = self.args.clone();
        if let Some(cursor) = &self.cursor {
            let n = args.len() + 3;
            let (lu, id) = (format!("${n}"), format!("${}", n + 1));
            let clause = match self.sort {
                Sort::IdAscending => format!(" AND r.id > {id}"),
                Sort::IdDescending => format!(" AND r.id < {id}"),
                Sort::LastUpdatedAscending => {
                    format!(" AND (r.last_updated > {lu} OR (r.last_updated = {lu} AND r.id > {id}))")
                }
                Sort::LastUpdatedDescending => {
                    format!(" AND (r.last_updated < {lu} OR (r.last_updated = {lu} AND r.id < {id}))")
                }
            };
            conditions.push_str(&clause);
            args.push(SqlArg::Int(cursor.last_updated));
            args.push(SqlArg::Text(cursor.id.clone()));
        }
        (conditions, args)
    }
}

/// Result-control and format parameters (search.html#return).
const CONTROL: &[&str] = &["_count", "_total", "_summary", "_elements", "_sort", "_cursor", "_format", "_pretty"];
/// Parameters of the search grammar Kiln does not implement yet: a clear refusal, never a
/// silently ignored condition.
const NOT_YET: &[&str] = &[
    "_include",
    "_revinclude",
    "_has",
    "_text",
    "_content",
    "_filter",
    "_query",
    "_list",
    "_contained",
    "_containedType",
    "_type",
];

pub fn compile(
    definition: &ResourceType,
    params: &QueryParams,
    base_url: &str,
    lenient: bool,
    max_count: u32,
    default_count: u32,
) -> Result<SearchQuery, FhirError> {
    let search = SearchRegistry::global();
    let mut conditions = String::new();
    let mut args: Vec<SqlArg> = Vec::new();
    let mut issues = Vec::new();
    let mut ignored = Vec::new();
    let mut echo = Vec::new();
    for (raw_name, value) in &params.0 {
        if raw_name != "_cursor" {
            echo.push((raw_name.clone(), value.clone()));
        }
        if CONTROL.contains(&raw_name.as_str()) {
            continue;
        }
        let (name, modifier) = match raw_name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (raw_name.as_str(), None),
        };
        let refuse = |issues: &mut Vec<Issue>, message: String| {
            issues.push(Issue::error(IssueType::NotSupported, message).at(raw_name.clone()));
        };
        if NOT_YET.contains(&name) || name.contains('.') {
            refuse(
                &mut issues,
                format!(
                    "'{raw_name}' is not supported yet (chaining, _has, _include, _revinclude, _text, _content, _filter come later)"
                ),
            );
            continue;
        }
        if value.is_empty() {
            refuse(&mut issues, format!("parameter '{raw_name}' has no value"));
            continue;
        }
        let mut next_placeholder = {
            let start = args.len() + 3;
            let mut n = start;
            move || {
                let p = format!("${n}");
                n += 1;
                p
            }
        };
        // _id and _lastUpdated are columns of the resource row itself.
        if name == "_id" || name == "_lastUpdated" {
            if modifier.is_some() {
                refuse(&mut issues, format!("modifiers are not supported on {name}"));
                continue;
            }
            let mut alternatives = Vec::new();
            for v in split_or(value) {
                let result = if name == "_id" {
                    args.push(SqlArg::Text(v.clone()));
                    Ok(format!("r.id = {}", next_placeholder()))
                } else {
                    date::condition(&v, &mut args, &mut next_placeholder)
                        .map(|c| c.replace("x.low", "r.last_updated").replace("x.high", "(r.last_updated + 1)"))
                };
                match result {
                    Ok(c) => alternatives.push(format!("({c})")),
                    Err(e) => refuse(&mut issues, e),
                }
            }
            if !alternatives.is_empty() {
                conditions.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
            }
            continue;
        }
        let Some(param) = search.param(&definition.name, name) else {
            if lenient {
                ignored.push(raw_name.clone());
            } else {
                refuse(&mut issues, format!("unknown search parameter '{name}' for {}", definition.name));
            }
            continue;
        };
        let kind = param.def.kind.as_str();
        let table = format!("search_{kind}");
        args.push(SqlArg::Text(param.def.code.clone()));
        let exists = format!(
            "SELECT 1 FROM {table} x WHERE x.tenant = r.tenant AND x.type = r.type AND x.id = r.id AND x.param = {}",
            next_placeholder()
        );
        if modifier == Some("missing") {
            match value.as_str() {
                "true" => conditions.push_str(&format!(" AND NOT EXISTS ({exists})")),
                "false" => conditions.push_str(&format!(" AND EXISTS ({exists})")),
                _ => refuse(&mut issues, format!("{raw_name} must be true or false")),
            }
            continue;
        }
        let single_target = (param.def.targets.len() == 1).then(|| param.def.targets[0].as_str());
        let mut alternatives = Vec::new();
        let mut negated = modifier == Some("not");
        for v in split_or(value) {
            let result = match kind {
                "string" => string::condition(modifier, &v, &mut args, &mut next_placeholder),
                "token" => token::condition(modifier, &v, &mut args, &mut next_placeholder),
                "date" => {
                    negated |= date::split_prefix(&v).0 == "ne";
                    date::condition(&v, &mut args, &mut next_placeholder)
                }
                "number" => number::value_condition("x.value", &v, &mut args, &mut next_placeholder),
                "quantity" => number::quantity_condition(&v, &mut args, &mut next_placeholder),
                "reference" => {
                    reference::condition(modifier, &v, base_url, single_target, &mut args, &mut next_placeholder)
                }
                "uri" => uri::condition(modifier, &v, &mut args, &mut next_placeholder),
                other => Err(format!("{other} parameters are not supported yet")),
            };
            match result {
                Ok(c) => alternatives.push(format!("({c})")),
                Err(e) => refuse(&mut issues, e),
            }
        }
        if !alternatives.is_empty() {
            let keyword = if negated { "NOT EXISTS" } else { "EXISTS" };
            conditions.push_str(&format!(" AND {keyword} ({exists} AND ({}))", alternatives.join(" OR ")));
        }
    }

    let count = match params.get("_count") {
        None => default_count,
        Some(c) => c.parse::<u32>().ok().filter(|c| *c <= max_count).ok_or_else(|| {
            FhirError::bad_request(IssueType::Value, format!("_count must be a whole number from 0 to {max_count}"))
        })?,
    };
    let total = match params.get("_total") {
        None | Some("accurate") | Some("estimate") => Total::Accurate,
        Some("none") => Total::None,
        Some(other) => {
            return Err(FhirError::bad_request(
                IssueType::Value,
                format!("_total must be none, estimate or accurate, not '{other}'"),
            ));
        }
    };
    let sort = match params.get("_sort") {
        None | Some("_id") => Sort::IdAscending,
        Some("-_id") => Sort::IdDescending,
        Some("_lastUpdated") => Sort::LastUpdatedAscending,
        Some("-_lastUpdated") => Sort::LastUpdatedDescending,
        Some(other) => {
            return Err(FhirError::bad_request(
                IssueType::NotSupported,
                format!("_sort={other} is not supported yet; sort by _id or _lastUpdated (prefix - for descending)"),
            ));
        }
    };
    let cursor = params
        .get("_cursor")
        .map(|c| {
            Cursor::decode(c)
                .ok_or_else(|| FhirError::bad_request(IssueType::Value, "_cursor is not a valid page cursor"))
        })
        .transpose()?;
    if !issues.is_empty() {
        return Err(FhirError::BadRequest(issues));
    }
    Ok(SearchQuery { conditions, args, sort, count, total, subset: params.subset()?, cursor, echo, ignored })
}

/// Comma-separated alternatives, with `\,` for a literal comma.
fn split_or(value: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                parts.last_mut().unwrap().push(',');
                chars.next();
            }
            ',' => parts.push(String::new()),
            c => parts.last_mut().unwrap().push(c),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::registry::Registry;

    fn compile_query(query: &str) -> Result<SearchQuery, FhirError> {
        let patient = Registry::global().resource("Patient").unwrap();
        compile(patient, &QueryParams::parse(Some(query)), "http://x/fhir", false, 100, 10)
    }

    #[test]
    fn values_are_bound_never_spliced() {
        let q = compile_query("family=O'Brien%25&gender=male,female").unwrap();
        assert!(!q.conditions.contains("O'Brien"));
        assert!(q.args.contains(&SqlArg::Text("o'brien\\%%".into())));
        assert_eq!(q.conditions.matches("EXISTS").count(), 2);
        assert!(q.conditions.contains(" OR "));
    }

    #[test]
    fn unknown_and_unsupported_parameters_are_named() {
        let err = compile_query("colour=blue&_include=Patient:organization&general-practitioner.name=x").unwrap_err();
        let named: Vec<String> = err.issues().into_iter().flat_map(|i| i.expression).collect();
        assert_eq!(named, ["colour", "_include", "general-practitioner.name"]);
        assert!(compile_query("birthdate=yesterday").is_err());
        assert!(compile_query("_count=100000").is_err());
    }

    #[test]
    fn escaped_commas_are_literal() {
        assert_eq!(split_or(r"a\,b,c"), ["a,b", "c"]);
    }
}
