//! A search request compiled to SQL (FHIR R4 search.html): each parameter becomes an uncorrelated
//! `id IN (SELECT … FROM its index table)` (AND across repeated parameters, OR across comma-separated values),
//! plus `_id`, `_lastUpdated`, `:missing`, `:not`, `_sort`, `_count`, `_total` and keyset paging.
//! Unknown parameters are refused (400) unless the client sends `Prefer: handling=lenient`.

use super::{SearchRegistry, SqlArg, composite, date, number, reference, string, token, uri};

use crate::error::{FhirError, Issue, IssueType};
use crate::fhir::registry::ResourceType;
use crate::fhir::subset::Subset;
use crate::rest::QueryParams;

/// The order of results. The `_id` and `_lastUpdated` orders page by keyset; an order by other
/// parameters (`ORDER BY` over their index values, resources without one last) pages by offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sort {
    IdAscending,
    IdDescending,
    LastUpdatedAscending,
    LastUpdatedDescending,
    ByParameters(String),
}

impl Sort {
    /// The order a page read backwards (for a `previous` link) is fetched in.
    pub fn reversed_order_by(&self) -> &str {
        match self {
            Sort::IdAscending => "r.id DESC",
            Sort::IdDescending => "r.id ASC",
            Sort::LastUpdatedAscending => "r.last_updated DESC, r.id DESC",
            Sort::LastUpdatedDescending => "r.last_updated ASC, r.id ASC",
            Sort::ByParameters(order) => order,
        }
    }

    pub fn order_by(&self) -> &str {
        match self {
            Sort::IdAscending => "r.id ASC",
            Sort::IdDescending => "r.id DESC",
            Sort::LastUpdatedAscending => "r.last_updated ASC, r.id ASC",
            Sort::LastUpdatedDescending => "r.last_updated DESC, r.id DESC",
            Sort::ByParameters(order) => order,
        }
    }

    pub fn pages_by_offset(&self) -> bool {
        matches!(self, Sort::ByParameters(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Estimate,
    Accurate,
}

/// Where a page starts: after the last entry of the previous page, before the first entry of
/// the next one (a `previous` link), or (for orders by other parameters) after a number of
/// entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    After { last_updated: i64, id: String },
    Before { last_updated: i64, id: String },
    Offset(u64),
}

/// How long a page link stays usable.
pub const CURSOR_LIFETIME_SECS: i64 = 24 * 3600;
const CURSOR_CONTEXT: &str = "search page cursor";

impl Cursor {
    pub fn encode(&self) -> String {
        match self {
            Cursor::After { last_updated, id } => format!("{last_updated}:{id}"),
            Cursor::Before { last_updated, id } => format!("<{last_updated}:{id}"),
            Cursor::Offset(n) => format!("+{n}"),
        }
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        if let Some(n) = text.strip_prefix('+') {
            return n.parse().ok().map(Cursor::Offset);
        }
        let (before, text) = match text.strip_prefix('<') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (last_updated, id) = text.split_once(':')?;
        let (last_updated, id) = (last_updated.parse().ok()?, id.to_string());
        Some(if before { Cursor::Before { last_updated, id } } else { Cursor::After { last_updated, id } })
    }

    /// The cursor as a page link carries it: sealed (AES-GCM under the server's key ring, so
    /// any node opens it) with the time it was made, so that a changed or stale one is refused
    /// rather than followed.
    pub fn seal(&self, sensitive: &crate::sensitive::Sensitive) -> String {
        let made = chrono::Utc::now().timestamp();
        let sealed = sensitive.seal_secret(&format!("{made}|{}", self.encode()), CURSOR_CONTEXT);
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sealed)
    }

    /// Opens a cursor made by [`seal`](Cursor::seal): 400 when it was changed, made by another
    /// server, or is older than [`CURSOR_LIFETIME_SECS`].
    pub fn open(text: &str, sensitive: &crate::sensitive::Sensitive) -> Result<Cursor, FhirError> {
        let invalid = || {
            FhirError::bad_request(
                IssueType::Value,
                "_cursor is not a page cursor of this server (it was changed or cut); follow the Bundle's links",
            )
        };
        let sealed = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, text)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|sealed| sealed.starts_with(crate::sensitive::SEALED_PREFIX))
            .ok_or_else(invalid)?;
        let opened = sensitive.open_secret(&sealed, CURSOR_CONTEXT).map_err(|_| invalid())?;
        let (made, raw) = opened.split_once('|').ok_or_else(invalid)?;
        let made: i64 = made.parse().map_err(|_| invalid())?;
        if chrono::Utc::now().timestamp() - made > CURSOR_LIFETIME_SECS {
            return Err(FhirError::bad_request(
                IssueType::Expired,
                "this page link has expired (page links last 24 hours); run the search again",
            ));
        }
        Cursor::decode(raw).ok_or_else(invalid)
    }

    /// The offset this cursor stands for (0 for keyset cursors).
    pub fn offset(cursor: Option<&Cursor>) -> u64 {
        match cursor {
            Some(Cursor::Offset(n)) => *n,
            _ => 0,
        }
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
    /// `_include` / `_revinclude` requests, applied to the page of matches.
    pub include: Vec<Include>,
    /// Read backwards from a merged cursor of a search over several types
    /// ([`resume_before`](SearchQuery::resume_before)).
    resumed_backwards: bool,
}

impl SearchQuery {
    /// The conditions with the keyset cursor applied, and their arguments.
    pub fn paged_conditions(&self) -> (String, Vec<SqlArg>) {
        let mut conditions = self.conditions.clone();
        let mut args = self.args.clone();
        if let Some(Cursor::After { last_updated, id: last_id }) = &self.cursor {
            let n = args.len() + 3;
            let (lu, id) = (format!("${n}"), format!("${}", n + 1));
            let clause = match &self.sort {
                Sort::ByParameters(_) => String::new(),
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
            args.push(SqlArg::Int(*last_updated));
            args.push(SqlArg::Text(last_id.clone()));
        }
        if let Some(Cursor::Before { last_updated, id: first_id }) = &self.cursor {
            let n = args.len() + 3;
            let (lu, id) = (format!("${n}"), format!("${}", n + 1));
            let clause = match &self.sort {
                Sort::ByParameters(_) => String::new(),
                Sort::IdAscending => format!(" AND r.id < {id}"),
                Sort::IdDescending => format!(" AND r.id > {id}"),
                Sort::LastUpdatedAscending => {
                    format!(" AND (r.last_updated < {lu} OR (r.last_updated = {lu} AND r.id < {id}))")
                }
                Sort::LastUpdatedDescending => {
                    format!(" AND (r.last_updated > {lu} OR (r.last_updated = {lu} AND r.id > {id}))")
                }
            };
            conditions.push_str(&clause);
            args.push(SqlArg::Int(*last_updated));
            args.push(SqlArg::Text(first_id.clone()));
        }
        (conditions, args)
    }

    /// Whether the page is read backwards from its cursor (a `previous` link): the store fetches
    /// it in reverse order, and the caller turns it around.
    pub fn backwards(&self) -> bool {
        self.resumed_backwards || (matches!(self.cursor, Some(Cursor::Before { .. })) && !self.sort.pages_by_offset())
    }

    /// The `ORDER BY` the store fetches the page in.
    pub fn fetch_order(&self) -> &str {
        if self.backwards() { self.sort.reversed_order_by() } else { self.sort.order_by() }
    }
}

/// Result-control and format parameters (search.html#return).
const CONTROL: &[&str] = &["_count", "_total", "_summary", "_elements", "_sort", "_cursor", "_format", "_pretty"];

/// Whether `name` controls the result (or its format) rather than selecting resources.
pub fn is_control_parameter(name: &str) -> bool {
    CONTROL.contains(&name) || name.starts_with("_include") || name.starts_with("_revinclude")
}
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
    "_contained",
    "_containedType",
    "_type",
    "near",
];

pub fn compile(
    definition: &ResourceType,
    params: &QueryParams,
    base_url: &str,
    lenient: bool,
    max_count: u32,
    default_count: u32,
) -> Result<SearchQuery, FhirError> {
    let mut compiled: Vec<(String, Selectivity)> = Vec::new();
    let mut args: Vec<SqlArg> = Vec::new();
    let mut issues = Vec::new();
    let mut ignored = Vec::new();
    let mut echo = Vec::new();
    let mut include = Vec::new();
    for (raw_name, value) in &params.0 {
        if raw_name != "_cursor" {
            echo.push((raw_name.clone(), value.clone()));
        }
        if CONTROL.contains(&raw_name.as_str()) {
            continue;
        }
        if let Some(kind) = IncludeKind::of(raw_name) {
            match Include::parse(kind, raw_name, value) {
                Ok(parsed) => include.push(parsed),
                Err(message) => issues.push(Issue::error(IssueType::Invalid, message).at(raw_name.clone())),
            }
            continue;
        }
        let mut builder = ConditionBuilder { base_url, args: &mut args, depth: 0 };
        match builder.param_condition(&definition.name, "r", "$2", raw_name, value) {
            Ok(condition) => compiled.push((condition, Selectivity::of(&definition.name, raw_name, value))),
            Err(ParamError::Unknown(message)) if lenient => {
                let _ = message;
                ignored.push(raw_name.clone());
            }
            Err(ParamError::Unknown(message) | ParamError::Invalid(message)) => {
                issues.push(Issue::error(IssueType::NotSupported, message).at(raw_name.clone()));
            }
        }
    }

    let count = match params.get("_count") {
        None => default_count,
        Some(c) => c.parse::<u32>().ok().filter(|c| *c <= max_count).ok_or_else(|| {
            FhirError::bad_request(IssueType::Value, format!("_count must be a whole number from 0 to {max_count}"))
        })?,
    };
    let total = match params.get("_total") {
        None | Some("accurate") => Total::Accurate,
        Some("estimate") => Total::Estimate,
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
        Some(keys) => sort_by_parameters(&definition.name, keys)?,
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
    let conditions = join_conditions(compiled);
    Ok(SearchQuery {
        conditions,
        args,
        sort,
        count,
        total,
        subset: params.subset()?,
        cursor,
        echo,
        ignored,
        include,
        resumed_backwards: false,
    })
}

/// How many resources a condition is likely to leave, coarsely: the most selective one drives
/// the query (`r.id IN (…)`, the database reading its index rows first) and the others are
/// checked per candidate (`EXISTS (… x.id = r.id …)`, a probe of the owner index). With every
/// condition as `IN`, SQLite builds the full list of each, and `category=vital-signs` alone
/// is half of all Observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Selectivity {
    /// `_id`, a reference to one resource, an identifier: a handful of rows.
    Few,
    /// A string, a chain or `_has`: usually some, sometimes many.
    Some,
    /// Codes, dates, numbers, quantities, uris: often a large part of the type.
    Many,
    /// `:missing`, `:not` and other negations: never the driver.
    Negated,
}

impl Selectivity {
    fn of(resource_type: &str, raw_name: &str, value: &str) -> Selectivity {
        if raw_name.starts_with("_has:") || raw_name.contains('.') {
            return Selectivity::Some;
        }
        let (name, modifier) = match raw_name.split_once(':') {
            Some((name, modifier)) => (name, Some(modifier)),
            None => (raw_name, None),
        };
        if matches!(modifier, Some("missing" | "not" | "not-in" | "below" | "above")) {
            return Selectivity::Negated;
        }
        if name == "_id" || name == "identifier" || matches!(modifier, Some("identifier" | "of-type")) {
            return Selectivity::Few;
        }
        let kind = SearchRegistry::global().param(resource_type, name).map(|p| p.def.kind.as_str());
        match kind {
            Some("reference") if !value.is_empty() => Selectivity::Few,
            Some("string") => Selectivity::Some,
            _ => Selectivity::Many,
        }
    }
}

/// The conditions joined with AND: the most selective as written (`r.id IN (…)`), every other
/// plain index condition turned into a correlated `EXISTS` (see [`Selectivity`]).
fn join_conditions(mut compiled: Vec<(String, Selectivity)>) -> String {
    let driver = compiled
        .iter()
        .enumerate()
        .filter(|(_, (_, selectivity))| *selectivity != Selectivity::Negated)
        .min_by_key(|(index, (_, selectivity))| (*selectivity, *index))
        .map(|(index, _)| index);
    let mut conditions = String::new();
    for (index, (condition, _)) in compiled.iter_mut().enumerate() {
        conditions.push_str(" AND ");
        if Some(index) == driver {
            conditions.push_str(condition);
        } else {
            conditions.push_str(&correlated(condition));
        }
    }
    conditions
}

/// `r.id IN (SELECT x.id FROM search_T x WHERE …)` as `EXISTS (SELECT 1 FROM search_T x WHERE
/// x.id = r.id AND …)` (and `NOT IN` as `NOT EXISTS`); any other condition as it is.
fn correlated(condition: &str) -> String {
    for (from, to) in [
        ("r.id IN (SELECT x.id FROM ", "EXISTS (SELECT 1 FROM "),
        ("r.id NOT IN (SELECT x.id FROM ", "NOT EXISTS (SELECT 1 FROM "),
    ] {
        if let Some(rest) = condition.strip_prefix(from)
            && let Some((table, filter)) = rest.split_once(" x WHERE ")
            && table.starts_with("search_")
            && !table.contains(' ')
            && let Some(filter) = filter.strip_suffix(')')
        {
            // `OFFSET` keeps PostgreSQL from turning the probe into a join it may drive from
            // (it did, from 5,000 female patients for one birth date, on a row estimate of 1:
            // 86 ms instead of 0.5 ms); SQLite probes per candidate anyway.
            return format!("{to}{table} x WHERE x.id = r.id AND {filter} LIMIT 1 OFFSET 0)");
        }
    }
    condition.to_string()
}

impl SearchQuery {
    /// Confines the search to the Patient compartment of `patient_id` (FHIR R4
    /// compartmentdefinition-patient): resources that refer to the patient through one of the
    /// parameters the compartment definition names for their type, or the patient itself.
    pub fn within_patient_compartment(&mut self, resource_type: &str, patient_id: &str) -> Result<(), FhirError> {
        self.within_compartment_of(resource_type, Some(patient_id))
    }

    /// Confines the search to the compartments of `patients` (none: nothing matches).
    pub fn within_compartments(&mut self, resource_type: &str, patients: &[String]) -> Result<(), FhirError> {
        match patients {
            [] => {
                self.conditions = format!(" AND 1 = 0{}", self.conditions);
                Ok(())
            }
            [one] => self.within_compartment_of(resource_type, Some(one)),
            many => self.within_compartment_set(resource_type, Some(many)),
        }
    }

    /// Confines the search to the Patient compartment of `patient_id`, or with `None` to the
    /// compartments of every patient (all patients, and what refers to any patient).
    pub fn within_compartment_of(&mut self, resource_type: &str, patient_id: Option<&str>) -> Result<(), FhirError> {
        match patient_id {
            Some(id) => self.within_compartment_set(resource_type, Some(&[id.to_string()])),
            None => self.within_compartment_set(resource_type, None),
        }
    }

    fn within_compartment_set(&mut self, resource_type: &str, patient_ids: Option<&[String]>) -> Result<(), FhirError> {
        let registry = crate::fhir::registry::Registry::global();
        let params = registry.patient_compartment.get(resource_type).cloned().unwrap_or_default();
        let mut alternatives = Vec::new();
        let bind = |args: &mut Vec<SqlArg>, arg: SqlArg| {
            args.push(arg);
            format!("${}", args.len() + 2)
        };
        // `= $n` for one patient, `IN ($n, …)` for several.
        let match_ids = |args: &mut Vec<SqlArg>, ids: &[String]| match ids {
            [one] => format!("= {}", bind(args, SqlArg::Text(one.clone()))),
            many => {
                let placeholders: Vec<String> = many.iter().map(|id| bind(args, SqlArg::Text(id.clone()))).collect();
                format!("IN ({})", placeholders.join(", "))
            }
        };
        if resource_type == "Patient" {
            match patient_ids {
                Some(ids) => alternatives.push(format!("r.id {}", match_ids(&mut self.args, ids))),
                None => return Ok(()),
            }
        }
        for param in params.iter().filter(|p| SearchRegistry::global().param(resource_type, p).is_some()) {
            let code = bind(&mut self.args, SqlArg::Text(param.clone()));
            let target = match patient_ids {
                Some(ids) => format!(" AND x.target_id {}", match_ids(&mut self.args, ids)),
                None => String::new(),
            };
            alternatives.push(format!(
                "r.id IN (SELECT x.id FROM search_reference x WHERE x.tenant = $1 AND x.type = $2 \
                 AND x.param = {code} AND x.target_type = 'Patient'{target})"
            ));
        }
        if alternatives.is_empty() {
            return Err(FhirError::bad_request(
                IssueType::NotSupported,
                format!("{resource_type} resources are not part of the Patient compartment"),
            ));
        }
        // The compartment condition goes first: its placeholders were numbered after the query's,
        // which stays valid wherever the text is placed.
        self.conditions = format!(" AND ({}){}", alternatives.join(" OR "), self.conditions);
        Ok(())
    }
}

/// Where one type of a search over several types stands relative to the type of the cursor, in
/// the merged order (sort key, then type name, then id): a system search resumes each type's
/// own query from the merged cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeAtCursor {
    /// A type ordered before the cursor's: rows with the cursor's key came before it.
    Earlier,
    Same,
    /// A type ordered after the cursor's: rows with the cursor's key are still to come.
    Later,
}

impl SearchQuery {
    /// Resumes this type's part of a search over several types after the merged cursor
    /// (`last_updated`, `id` of the cursor's resource), for `_id` and `_lastUpdated` orders.
    pub fn resume_after(&mut self, last_updated: i64, id: &str, at: TypeAtCursor) -> Result<(), FhirError> {
        self.resume(last_updated, id, at)
    }

    /// Reads this type's part of a search over several types backwards from the merged cursor
    /// (for a `previous` link): the rows before it, nearest first.
    pub fn resume_before(&mut self, last_updated: i64, id: &str, at: TypeAtCursor) -> Result<(), FhirError> {
        // What lies before a cursor in one order lies after it in the reverse order, where the
        // types also come the other way round.
        let reversed = match &self.sort {
            Sort::IdAscending => Sort::IdDescending,
            Sort::IdDescending => Sort::IdAscending,
            Sort::LastUpdatedAscending => Sort::LastUpdatedDescending,
            Sort::LastUpdatedDescending => Sort::LastUpdatedAscending,
            Sort::ByParameters(_) => return self.resume(last_updated, id, at),
        };
        let at = match at {
            TypeAtCursor::Earlier => TypeAtCursor::Later,
            TypeAtCursor::Same => TypeAtCursor::Same,
            TypeAtCursor::Later => TypeAtCursor::Earlier,
        };
        let sort = std::mem::replace(&mut self.sort, reversed);
        let resumed = self.resume(last_updated, id, at);
        self.sort = sort;
        self.resumed_backwards = true;
        resumed
    }

    fn resume(&mut self, last_updated: i64, id: &str, at: TypeAtCursor) -> Result<(), FhirError> {
        let mut bind = |arg: SqlArg| {
            self.args.push(arg);
            format!("${}", self.args.len() + 2)
        };
        let clause = match (&self.sort, at) {
            (Sort::IdAscending, TypeAtCursor::Later) => format!("r.id >= {}", bind(SqlArg::Text(id.into()))),
            (Sort::IdAscending, _) => format!("r.id > {}", bind(SqlArg::Text(id.into()))),
            (Sort::IdDescending, TypeAtCursor::Later) => format!("r.id <= {}", bind(SqlArg::Text(id.into()))),
            (Sort::IdDescending, _) => format!("r.id < {}", bind(SqlArg::Text(id.into()))),
            (Sort::LastUpdatedAscending, TypeAtCursor::Later) => {
                format!("r.last_updated >= {}", bind(SqlArg::Int(last_updated)))
            }
            (Sort::LastUpdatedAscending, TypeAtCursor::Earlier) => {
                format!("r.last_updated > {}", bind(SqlArg::Int(last_updated)))
            }
            (Sort::LastUpdatedAscending, TypeAtCursor::Same) => {
                let (lu, id) = (bind(SqlArg::Int(last_updated)), bind(SqlArg::Text(id.into())));
                format!("(r.last_updated > {lu} OR (r.last_updated = {lu} AND r.id > {id}))")
            }
            (Sort::LastUpdatedDescending, TypeAtCursor::Later) => {
                format!("r.last_updated <= {}", bind(SqlArg::Int(last_updated)))
            }
            (Sort::LastUpdatedDescending, TypeAtCursor::Earlier) => {
                format!("r.last_updated < {}", bind(SqlArg::Int(last_updated)))
            }
            (Sort::LastUpdatedDescending, TypeAtCursor::Same) => {
                let (lu, id) = (bind(SqlArg::Int(last_updated)), bind(SqlArg::Text(id.into())));
                format!("(r.last_updated < {lu} OR (r.last_updated = {lu} AND r.id < {id}))")
            }
            (Sort::ByParameters(_), _) => {
                return Err(FhirError::bad_request(
                    IssueType::NotSupported,
                    "a search over several types sorts by _id or _lastUpdated only",
                ));
            }
        };
        self.conditions = format!(" AND {clause}{}", self.conditions);
        Ok(())
    }

    /// Confines the search to resources matching at least one of `filters`, each a conjunction
    /// of search parameters (the filters of granular scopes, search.html semantics for each).
    pub fn matching_any(
        &mut self,
        definition: &ResourceType,
        filters: &[Vec<(String, String)>],
        base_url: &str,
    ) -> Result<(), FhirError> {
        if filters.is_empty() {
            return Ok(());
        }
        let mut alternatives = Vec::with_capacity(filters.len());
        for filter in filters {
            let mut conjunction = Vec::with_capacity(filter.len());
            for (name, value) in filter {
                let mut builder = ConditionBuilder { base_url, args: &mut self.args, depth: 0 };
                match builder.param_condition(&definition.name, "r", "$2", name, value) {
                    Ok(condition) => conjunction.push(condition),
                    Err(ParamError::Unknown(message) | ParamError::Invalid(message)) => {
                        return Err(FhirError::BadRequest(vec![
                            Issue::error(IssueType::NotSupported, message).at(name.clone()),
                        ]));
                    }
                }
            }
            alternatives.push(if conjunction.is_empty() { "1 = 1".to_string() } else { conjunction.join(" AND ") });
        }
        // Placeholders are numbered after the query's, valid wherever the text is placed.
        self.conditions = format!(" AND (({})){}", alternatives.join(") OR ("), self.conditions);
        Ok(())
    }
}

/// Why one parameter could not be compiled.
enum ParamError {
    /// Not a parameter of the type (ignored under `Prefer: handling=lenient`).
    Unknown(String),
    /// A known parameter used wrongly, or a feature not built yet.
    Invalid(String),
}

/// How deep chains and `_has` may nest: deeper requests cost more than they are worth.
const MAX_DEPTH: usize = 4;

/// Builds the SQL condition of one parameter against the resource row `alias`; chains and
/// `_has` recurse with a fresh alias per level.
struct ConditionBuilder<'a> {
    base_url: &'a str,
    args: &'a mut Vec<SqlArg>,
    depth: usize,
}

impl ConditionBuilder<'_> {
    fn placeholder(&mut self, arg: SqlArg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len() + 2)
    }

    /// `alias` is the resource row the condition is about; `type_placeholder` binds its type.
    /// Conditions are uncorrelated `alias.id IN (SELECT … WHERE tenant = $1 AND type = …)`, so the
    /// database drives from the narrow index table instead of probing every resource of the type.
    fn param_condition(
        &mut self,
        resource_type: &str,
        alias: &str,
        type_placeholder: &str,
        raw_name: &str,
        value: &str,
    ) -> Result<String, ParamError> {
        use ParamError::*;
        if self.depth > MAX_DEPTH {
            return Err(Invalid(format!("chains and _has may nest at most {MAX_DEPTH} levels")));
        }
        if let Some(reverse) = raw_name.strip_prefix("_has:") {
            return self.has_condition(resource_type, alias, type_placeholder, reverse, value);
        }
        if let Some((head, rest)) = raw_name.split_once('.') {
            return self.chain_condition(resource_type, alias, type_placeholder, head, rest, value);
        }
        let (name, modifier) = match raw_name.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (raw_name, None),
        };
        if NOT_YET.contains(&name) {
            return Err(Invalid(format!(
                "'{raw_name}' is not supported yet (_text, _content, _filter and _query come later)"
            )));
        }
        if value.is_empty() {
            return Err(Invalid(format!("parameter '{raw_name}' has no value")));
        }
        // _list=[id]: the resources List/[id] holds as entries (search.html#list).
        if name == "_list" {
            if modifier.is_some() {
                return Err(Invalid("modifiers are not supported on _list".into()));
            }
            let mut alternatives = Vec::new();
            for list_id in split_or(value) {
                let list = self.placeholder(SqlArg::Text(list_id));
                alternatives.push(format!(
                    "{alias}.id IN (SELECT x.target_id FROM search_reference x WHERE x.tenant = $1 AND x.type = 'List' \
                     AND x.param = 'item' AND x.id = {list} AND x.target_type = {type_placeholder})"
                ));
            }
            return Ok(format!("({})", alternatives.join(" OR ")));
        }
        // _id and _lastUpdated are columns of the resource row itself.
        if name == "_id" || name == "_lastUpdated" {
            if modifier.is_some() {
                return Err(Invalid(format!("modifiers are not supported on {name}")));
            }
            let mut alternatives = Vec::new();
            for v in split_or(value) {
                let condition = if name == "_id" {
                    format!("{alias}.id = {}", self.placeholder(SqlArg::Text(v)))
                } else {
                    let mut next = self.next_placeholder_fn();
                    let mut args = Vec::new();
                    let c = date::condition(&v, &mut args, &mut next).map_err(Invalid)?;
                    self.args.extend(args);
                    c.replace("x.low", &format!("{alias}.last_updated"))
                        .replace("x.high", &format!("({alias}.last_updated + 1)"))
                };
                alternatives.push(format!("({condition})"));
            }
            return Ok(format!("({})", alternatives.join(" OR ")));
        }
        let Some(param) = SearchRegistry::global().param(resource_type, name) else {
            return Err(Unknown(format!("unknown search parameter '{name}' for {resource_type}")));
        };
        // :identifier (references) and :of-type (identifiers) search token rows indexed under a
        // derived parameter name.
        let (kind, code) = match (param.def.kind.as_str(), modifier) {
            ("reference", Some("identifier")) => ("token".to_string(), reference::identifier_param(&param.def.code)),
            ("token", Some("of-type")) => ("token".to_string(), token::of_type_param(&param.def.code)),
            _ => (param.def.kind.clone(), param.def.code.clone()),
        };
        let single_target = (param.targets.len() == 1).then(|| param.targets[0].clone());
        let param_placeholder = self.placeholder(SqlArg::Text(code));
        let rows = format!(
            "SELECT x.id FROM search_{kind} x WHERE x.tenant = $1 AND x.type = {type_placeholder} AND x.param = {param_placeholder}"
        );
        if modifier == Some("missing") {
            return match value {
                "true" => Ok(format!("{alias}.id NOT IN ({rows})")),
                "false" => Ok(format!("{alias}.id IN ({rows})")),
                _ => Err(Invalid(format!("{raw_name} must be true or false"))),
            };
        }
        let mut alternatives = Vec::new();
        let mut negated = modifier == Some("not");
        for v in split_or(value) {
            let mut next = self.next_placeholder_fn();
            let mut args = Vec::new();
            let result = match kind.as_str() {
                "composite" if modifier.is_some() => {
                    Err(format!("modifier :{} is not supported on composite parameters", modifier.unwrap_or_default()))
                }
                "composite" => composite::condition(&param.components, &v, self.base_url, &mut args, &mut next),
                "string" => string::condition(modifier, &v, &mut args, &mut next),
                "token" if modifier == Some("of-type") => token::of_type_condition(&v, &mut args, &mut next),
                "token" if modifier == Some("identifier") => token::condition(None, &v, &mut args, &mut next),
                "token" => token::condition(modifier, &v, &mut args, &mut next),
                "date" => {
                    negated |= date::split_prefix(&v).0 == "ne";
                    date::condition(&v, &mut args, &mut next)
                }
                "number" => number::value_condition("x.value", &v, &mut args, &mut next),
                "quantity" => number::quantity_condition(&v, &mut args, &mut next),
                "reference" => {
                    reference::condition(modifier, &v, self.base_url, single_target.as_deref(), &mut args, &mut next)
                }
                "uri" => uri::condition(modifier, &v, &mut args, &mut next),
                other => Err(format!("{other} parameters are not supported yet")),
            };
            self.args.extend(args);
            alternatives.push(format!("({})", result.map_err(Invalid)?));
        }
        let keyword = if negated { "NOT IN" } else { "IN" };
        Ok(format!("{alias}.id {keyword} ({rows} AND ({}))", alternatives.join(" OR ")))
    }

    /// A closure that hands out the placeholders the per-type modules' arguments will take,
    /// in the order they push them.
    fn next_placeholder_fn(&self) -> impl FnMut() -> String + use<> {
        let mut n = self.args.len() + 3;
        move || {
            let p = format!("${n}");
            n += 1;
            p
        }
    }

    /// `subject:Patient.name=x`, `subject.name=x` (single target), several levels deep.
    fn chain_condition(
        &mut self,
        resource_type: &str,
        alias: &str,
        type_placeholder: &str,
        head: &str,
        rest: &str,
        value: &str,
    ) -> Result<String, ParamError> {
        use ParamError::*;
        let (name, type_modifier) = match head.split_once(':') {
            Some((n, t)) => (n, Some(t)),
            None => (head, None),
        };
        let param = SearchRegistry::global()
            .param(resource_type, name)
            .ok_or_else(|| Unknown(format!("unknown search parameter '{name}' for {resource_type}")))?;
        if param.def.kind != "reference" {
            return Err(Invalid(format!("'{name}' is not a reference parameter, so it cannot be chained")));
        }
        let target = match (type_modifier, param.targets.as_slice()) {
            (Some(t), _) => t.to_string(),
            (None, [only]) => only.clone(),
            (None, targets) => {
                return Err(Invalid(format!(
                    "'{name}' can refer to {}: name the type, e.g. {name}:{}.{rest}",
                    targets.join(", "),
                    targets.first().map_or("Patient", String::as_str)
                )));
            }
        };
        if crate::fhir::registry::Registry::global().resource(&target).is_none() {
            return Err(Invalid(format!("{target} is not a resource type this server serves")));
        }
        let code = self.placeholder(SqlArg::Text(param.def.code.clone()));
        let target_placeholder = self.placeholder(SqlArg::Text(target.clone()));
        self.depth += 1;
        let inner_alias = format!("c{}", self.depth);
        let inner = self.param_condition(&target, &inner_alias, &target_placeholder, rest, value);
        self.depth -= 1;
        Ok(format!(
            "{alias}.id IN (SELECT x{d}.id FROM search_reference x{d} JOIN resources {inner_alias} \
             ON {inner_alias}.tenant = x{d}.tenant AND {inner_alias}.type = x{d}.target_type \
             AND {inner_alias}.id = x{d}.target_id AND NOT {inner_alias}.deleted \
             WHERE x{d}.tenant = $1 AND x{d}.type = {type_placeholder} AND x{d}.param = {code} \
             AND x{d}.target_type = {target_placeholder} AND {})",
            inner?,
            d = self.depth + 1,
        ))
    }

    /// `_has:Observation:patient:code=1234-5`: resources that a resource of another type refers
    /// to through a parameter and that matches the rest (which may be another `_has`).
    fn has_condition(
        &mut self,
        resource_type: &str,
        alias: &str,
        type_placeholder: &str,
        reverse: &str,
        value: &str,
    ) -> Result<String, ParamError> {
        use ParamError::*;
        let mut parts = reverse.splitn(3, ':');
        let (Some(referrer), Some(link), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Invalid("_has takes the form _has:Type:reference-parameter:parameter=value".into()));
        };
        let param = SearchRegistry::global()
            .param(referrer, link)
            .filter(|p| p.def.kind == "reference")
            .ok_or_else(|| Invalid(format!("'{link}' is not a reference parameter of {referrer}")))?;
        if !param.targets.is_empty() && !param.targets.iter().any(|t| t == resource_type) {
            return Err(Invalid(format!("{referrer}.{link} cannot refer to a {resource_type}")));
        }
        let code = self.placeholder(SqlArg::Text(param.def.code.clone()));
        let referrer_placeholder = self.placeholder(SqlArg::Text(referrer.to_string()));
        self.depth += 1;
        let inner_alias = format!("h{}", self.depth);
        let inner = self.param_condition(referrer, &inner_alias, &referrer_placeholder, rest, value);
        self.depth -= 1;
        Ok(format!(
            "{alias}.id IN (SELECT y{d}.target_id FROM search_reference y{d} JOIN resources {inner_alias} \
             ON {inner_alias}.tenant = y{d}.tenant AND {inner_alias}.type = y{d}.type AND {inner_alias}.id = y{d}.id \
             AND NOT {inner_alias}.deleted WHERE y{d}.tenant = $1 AND y{d}.type = {referrer_placeholder} \
             AND y{d}.param = {code} AND y{d}.target_type = {type_placeholder} AND {})",
            inner?,
            d = self.depth + 1,
        ))
    }
}

/// `_include` or `_revinclude` (search.html#include).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    Include,
    RevInclude,
}

impl IncludeKind {
    fn of(raw_name: &str) -> Option<IncludeKind> {
        match raw_name {
            "_include" | "_include:iterate" => Some(IncludeKind::Include),
            "_revinclude" | "_revinclude:iterate" => Some(IncludeKind::RevInclude),
            _ => None,
        }
    }
}

/// `_include=Observation:subject[:Patient]`, `_revinclude=Observation:subject`, `*` for every
/// reference parameter; `:iterate` applies it to included resources too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    pub kind: IncludeKind,
    pub source_type: String,
    /// `None` for `*`.
    pub param: Option<String>,
    pub target_type: Option<String>,
    pub iterate: bool,
}

impl Include {
    fn parse(kind: IncludeKind, raw_name: &str, value: &str) -> Result<Include, String> {
        let mut parts = value.split(':');
        let source_type = parts.next().unwrap_or_default();
        let param = parts
            .next()
            .ok_or_else(|| format!("{raw_name} takes Type:parameter[:TargetType], e.g. Observation:subject"))?;
        let target_type = parts.next().map(str::to_string);
        let registry = crate::fhir::registry::Registry::global();
        if registry.resource(source_type).is_none() {
            return Err(format!("{source_type} is not a resource type this server serves"));
        }
        let param = if param == "*" {
            None
        } else {
            SearchRegistry::global()
                .param(source_type, param)
                .filter(|p| p.def.kind == "reference")
                .ok_or_else(|| format!("'{param}' is not a reference parameter of {source_type}"))?;
            Some(param.to_string())
        };
        Ok(Include {
            kind,
            source_type: source_type.to_string(),
            param,
            target_type,
            iterate: raw_name.ends_with(":iterate"),
        })
    }
}

/// `_sort=a,-b`: one `ORDER BY` key per parameter, over the parameter's index values (the
/// smallest for ascending, the largest for descending), resources lacking it last, then `_id`.
fn sort_by_parameters(resource_type: &str, keys: &str) -> Result<Sort, FhirError> {
    let mut order = Vec::new();
    for key in keys.split(',').map(str::trim) {
        let (descending, name) = match key.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, key),
        };
        let column = match name {
            "_id" => "r.id".to_string(),
            "_lastUpdated" => "r.last_updated".to_string(),
            _ => {
                let param = SearchRegistry::global().param(resource_type, name).ok_or_else(|| {
                    FhirError::BadRequest(vec![
                        Issue::error(
                            IssueType::NotSupported,
                            format!("cannot sort by '{name}': not a search parameter of {resource_type}"),
                        )
                        .at("_sort"),
                    ])
                })?;
                let (aggregate, value) = match (param.def.kind.as_str(), descending) {
                    ("string", _) => ("MIN", "x.normalized"),
                    ("token", _) => ("MIN", "x.code"),
                    ("date", false) => ("MIN", "x.low"),
                    ("date", true) => ("MAX", "x.high"),
                    ("number" | "quantity", false) => ("MIN", "x.value"),
                    ("number" | "quantity", true) => ("MAX", "x.value"),
                    ("reference", _) => ("MIN", "x.target_id"),
                    ("uri", _) => ("MIN", "x.value"),
                    (other, _) => {
                        return Err(FhirError::bad_request(
                            IssueType::NotSupported,
                            format!("cannot sort by {other} parameters"),
                        ));
                    }
                };
                // The code comes from the registry, not the request, and is checked to be plain
                // ([A-Za-z0-9_-]): it can stand in the SQL as a literal, which keeps the count
                // query (which has no ORDER BY) free of unused bind parameters.
                let code = &param.def.code;
                if !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                    return Err(FhirError::internal(format!("unexpected search parameter code {code:?}")));
                }
                // A quantity sorts by the value as recorded, not by its canonical copy.
                let recorded = if param.def.kind == "quantity" {
                    format!(" AND (x.system IS NULL OR x.system <> '{}')", super::ucum::CANONICAL)
                } else {
                    String::new()
                };
                format!(
                    "(SELECT {aggregate}({value}) FROM search_{} x WHERE x.tenant = r.tenant AND x.type = r.type \
                     AND x.id = r.id AND x.param = '{code}'{recorded})",
                    param.def.kind
                )
            }
        };
        let direction = if descending { "DESC" } else { "ASC" };
        order.push(format!("{column} {direction} NULLS LAST"));
    }
    order.push("r.id ASC".to_string());
    Ok(Sort::ByParameters(order.join(", ")))
}

/// Comma-separated alternatives, with `\,` for a literal comma.
fn split_or(value: &str) -> Vec<String> {
    super::split_unescaped(value, ',')
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
        assert_eq!(q.conditions.matches("r.id IN (SELECT x.id FROM").count(), 1);
        assert_eq!(q.conditions.matches("EXISTS (SELECT 1 FROM search_token x WHERE x.id = r.id").count(), 1);
        assert!(q.conditions.contains(" OR "));
    }

    #[test]
    fn the_most_selective_condition_drives_and_the_others_are_probed() {
        let q = compile_query("gender=male&identifier=urn:mrn|42&family=smith").unwrap();
        let drives = "r.id IN (SELECT x.id FROM search_token x WHERE x.tenant = $1 AND x.type = $2 AND x.param = $5";
        assert!(q.conditions.contains(drives), "the identifier ($5 names its parameter) drives: {}", q.conditions);
        assert_eq!(q.conditions.matches("EXISTS (SELECT 1 FROM").count(), 2, "{}", q.conditions);
        // A negation never drives: with only negations, every one is probed.
        let q = compile_query("gender:not=male&family:missing=true").unwrap();
        assert_eq!(q.conditions.matches("NOT EXISTS (SELECT 1 FROM").count(), 2, "{}", q.conditions);
        assert_eq!(q.conditions.matches(" LIMIT 1 OFFSET 0)").count(), 2, "each probe stays a probe: {}", q.conditions);
        assert!(!q.conditions.contains(" IN (SELECT"), "{}", q.conditions);
    }

    #[test]
    fn unknown_and_unsupported_parameters_are_named() {
        let err = compile_query("colour=blue&_include=Patient:colour&general-practitioner.name=x&_text=x").unwrap_err();
        let named: Vec<String> = err.issues().into_iter().flat_map(|i| i.expression).collect();
        assert_eq!(named, ["colour", "_include", "general-practitioner.name", "_text"]);
        assert!(compile_query("birthdate=yesterday").is_err());
        assert!(compile_query("_count=100000").is_err());
    }

    #[test]
    fn escaped_commas_are_literal() {
        assert_eq!(split_or(r"a\,b,c"), ["a,b", "c"]);
    }
}
