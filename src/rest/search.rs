//! search: `GET [base]/[type]?…` and `POST [base]/[type]/_search`, within a patient's
//! compartment `GET [base]/Patient/[id]/[type]?…`, and over several types `GET [base]?_type=…`
//! and `POST [base]/_search` (FHIR R4 search.html, http.html#search): a `searchset` Bundle of
//! the matches with `total`, `self`/`first`/`previous`/`next` links and `search.mode = match`,
//! shaped by `_summary` / `_elements`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{QueryParams, read_limited, resource_type};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, IssueType};
use crate::fhir::FHIR_JSON;
use crate::fhir::bundle::{BundleWriter, Entry};
use crate::fhir::subset::{Subset, Summary};
use crate::search::query::{self, Cursor, Total};
use crate::store::VersionRecord;

pub async fn search_get(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    search(&state, &principal, &type_name, QueryParams::parse(raw.as_deref()), &headers, None).await
}

/// `GET [base]/Patient/[id]/[type]?…`: search within a patient's compartment
/// (http.html#search, compartmentdefinition-patient).
pub async fn compartment_search(
    State(state): State<AppState>,
    principal: Principal,
    Path((compartment, id, type_name)): Path<(String, String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    if compartment != "Patient" {
        resource_type(&state, &compartment)?;
        return Err(FhirError::bad_request(
            IssueType::NotSupported,
            format!("only the Patient compartment is supported, not {compartment}"),
        ));
    }
    let id = super::logical_id(&id)?;
    let params = QueryParams::parse(raw.as_deref());
    search(&state, &principal, &type_name, params, &headers, Some(id)).await
}

/// `POST [type]/_search` with `application/x-www-form-urlencoded` parameters (and possibly
/// more in the URL).
pub async fn search_post(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(raw): RawQuery,
    request: axum::extract::Request,
) -> Result<Response, FhirError> {
    let headers = request.headers().clone();
    let params = form_parameters(&state, raw.as_deref(), request).await?;
    search(&state, &principal, &type_name, params, &headers, None).await
}

/// `GET [base]?_type=…&…`: a search over several types (http.html#search, system level).
pub async fn system_search_get(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, FhirError> {
    system_search(&state, &principal, QueryParams::parse(raw.as_deref()), &headers).await
}

/// `POST [base]/_search` with form parameters (and possibly more in the URL).
pub async fn system_search_post(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(raw): RawQuery,
    request: axum::extract::Request,
) -> Result<Response, FhirError> {
    let headers = request.headers().clone();
    let params = form_parameters(&state, raw.as_deref(), request).await?;
    system_search(&state, &principal, params, &headers).await
}

/// The URL's parameters and those of an `application/x-www-form-urlencoded` body.
async fn form_parameters(
    state: &AppState,
    raw: Option<&str>,
    request: axum::extract::Request,
) -> Result<QueryParams, FhirError> {
    let form = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = read_limited(request, state.settings.max_body_bytes).await?;
    if !body.is_empty() && !form.starts_with("application/x-www-form-urlencoded") {
        return Err(FhirError::UnsupportedMediaType(
            "POST _search takes application/x-www-form-urlencoded parameters".into(),
        ));
    }
    let mut params = QueryParams::parse(raw);
    let from_body = std::str::from_utf8(&body)
        .map_err(|_| FhirError::bad_request(IssueType::Structure, "the form body is not UTF-8"))?;
    params.0.extend(QueryParams::parse(Some(from_body)).0);
    Ok(params)
}

/// Whether the client asked for `Prefer: handling=lenient` (unknown parameters ignored).
fn prefers_lenient(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim() == "handling=lenient"))
}

/// The parameters a search over all types may use: those every resource has.
const COMMON_PARAMETERS: &[&str] = &["_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_list"];

/// A search over the types `_type` names (or all types, with common parameters only): each
/// type's query compiled and confined as a type search would be, read a page at a time from a
/// cursor in the merged order (sort key, type, id), and merged.
async fn system_search(
    state: &AppState,
    principal: &Principal,
    params: QueryParams,
    headers: &HeaderMap,
) -> Result<Response, FhirError> {
    let named: Vec<String> = params
        .0
        .iter()
        .filter(|(name, _)| name == "_type")
        .flat_map(|(_, value)| value.split(',').map(|t| t.trim().to_string()))
        .filter(|t| !t.is_empty())
        .collect();
    let mut rest = QueryParams(params.0.iter().filter(|(name, _)| name != "_type").cloned().collect());
    let mut types: Vec<&'static crate::fhir::registry::ResourceType> = Vec::new();
    for name in &named {
        let definition = state.registry.resource(name).ok_or_else(|| {
            FhirError::BadRequest(vec![
                crate::error::Issue::error(
                    IssueType::NotSupported,
                    format!("_type names '{name}', not a type this server serves"),
                )
                .at("_type"),
            ])
        })?;
        if !types.iter().any(|t| t.name == definition.name) {
            types.push(definition);
        }
    }
    let explicit = !types.is_empty();
    if !explicit {
        // Without _type every type is searched, so only the parameters every type has apply.
        for (name, _) in &rest.0 {
            let base = name.split(':').next().unwrap_or(name);
            if !COMMON_PARAMETERS.contains(&base) && !query::is_control_parameter(base) {
                return Err(FhirError::BadRequest(vec![
                    crate::error::Issue::error(
                        IssueType::NotSupported,
                        format!("'{name}' is not a parameter of every type; name the types with _type"),
                    )
                    .at(name.clone()),
                ]));
            }
        }
        // Types the token may not search are simply not searched.
        types = state
            .registry
            .resources()
            .filter(|definition| principal.permit(&definition.name, Interaction::Search).is_ok())
            .collect();
    }
    types.sort_by(|a, b| a.name.cmp(&b.name));
    rest = expand_value_sets(state, principal, rest).await?;
    open_cursor(state, &mut rest)?;
    state.sensitive.blind_search(&mut rest.0);
    let lenient = prefers_lenient(headers);
    let settings = &state.settings;
    let mut queries = Vec::with_capacity(types.len());
    for definition in &types {
        let restriction = principal.permit(&definition.name, Interaction::Search)?;
        policy::check_reach(principal, &definition.name, &rest)?;
        let mut query = query::compile(
            definition,
            &rest,
            &state.base_url,
            lenient,
            settings.max_page_size,
            settings.default_page_size,
        )?;
        if query.sort.pages_by_offset() {
            return Err(FhirError::bad_request(
                IssueType::NotSupported,
                "a search over several types sorts by _id or _lastUpdated only",
            ));
        }
        policy::confine(state, &mut query, definition, &restriction)?;
        super::audit_caught_up(state, &principal.tenant, &definition.name).await?;
        queries.push((*definition, query));
    }
    let Some((_, template)) = queries.first() else {
        return Err(FhirError::Forbidden("the access token may search no type".into()));
    };
    let (count, sort, total_kind, subset, echo, cursor) = (
        template.count,
        template.sort.clone(),
        template.total,
        template.subset.clone(),
        template.echo.clone(),
        template.cursor.clone(),
    );
    let include = template.include.clone();
    let backwards = template.backwards();
    let mut total = match total_kind {
        Total::None => None,
        _ => Some(0u64),
    };
    let mut found: Vec<VersionRecord> = Vec::new();
    let summary_count = subset == Subset::Summary(Summary::Count);
    for (definition, mut query) in queries {
        if let Some(sum) = total.as_mut() {
            *sum += match total_kind {
                Total::Estimate => state.store.estimate(&principal.tenant, &definition.name, &query).await?,
                _ => state.store.count(&principal.tenant, &definition.name, &query).await?,
            };
        }
        if summary_count || count == 0 {
            continue;
        }
        query.cursor = None;
        if let Some(Cursor::After { last_updated, id } | Cursor::Before { last_updated, id }) = &cursor {
            let (cursor_type, cursor_id) = id.split_once('/').unwrap_or(("", id));
            let at = match definition.name.as_str().cmp(cursor_type) {
                std::cmp::Ordering::Less => query::TypeAtCursor::Earlier,
                std::cmp::Ordering::Equal => query::TypeAtCursor::Same,
                std::cmp::Ordering::Greater => query::TypeAtCursor::Later,
            };
            if backwards {
                query.resume_before(*last_updated, cursor_id, at)?;
            } else {
                query.resume_after(*last_updated, cursor_id, at)?;
            }
        }
        found.extend(state.store.search(&principal.tenant, &definition.name, &query).await?);
    }
    // A previous page is read nearest the cursor first, and turned around once cut.
    if backwards {
        found.sort_by(|a, b| merged_order(&sort, b, a));
    } else {
        found.sort_by(|a, b| merged_order(&sort, a, b));
    }
    let has_more = found.len() > count as usize;
    found.truncate(count as usize);
    if backwards {
        found.reverse();
    }

    let link = |cursor: Option<&Cursor>| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        if explicit {
            serializer.append_pair("_type", &types.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(","));
        }
        for (name, value) in &echo {
            serializer.append_pair(name, value);
        }
        if let Some(cursor) = cursor {
            serializer.append_pair("_cursor", &cursor.seal(&state.sensitive));
        }
        format!("{}?{}", state.base_url, serializer.finish())
    };
    let (previous, next) =
        neighbours(&sort, cursor.as_ref(), count, &found, has_more, |r| format!("{}/{}", r.resource_type, r.id));
    let self_link = link(cursor.as_ref());
    let first_link = link(None);
    let previous_link = previous.map(|cursor| link(Some(&cursor)));
    let next_link = next.map(|cursor| link(Some(&cursor)));
    let mut links = vec![("self", self_link.as_str()), ("first", first_link.as_str())];
    if let Some(previous) = &previous_link {
        links.push(("previous", previous.as_str()));
    }
    if let Some(next) = &next_link {
        links.push(("next", next.as_str()));
    }
    let included = includes(state, principal, &include, &found).await?;
    searchset(state, total, &links, found, included, &subset)
}

/// The searchset Bundle of a page: its matches, what they include, and a notice when the
/// includes were cut short.
fn searchset(
    state: &AppState,
    total: Option<u64>,
    links: &[(&str, &str)],
    matches: Vec<VersionRecord>,
    included: Included,
    subset: &Subset,
) -> Result<Response, FhirError> {
    let mut bundle = BundleWriter::new("searchset", total, links);
    let entries = matches.into_iter().map(|r| (r, "match")).chain(included.records.into_iter().map(|r| (r, "include")));
    for (record, mode) in entries {
        let full_url = format!("{}/{}/{}", state.base_url, record.resource_type, record.id);
        let record_type = resource_type(state, &record.resource_type)?;
        let body = subset.apply(record_type, record.json.unwrap_or_default())?;
        bundle.push(Entry {
            full_url: &full_url,
            resource: Some(&body),
            search_mode: Some(mode),
            request: None,
            response: None,
            outcome: None,
        });
    }
    if included.cut {
        let notice = cut_notice(state);
        let full_url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        bundle.push(Entry {
            full_url: &full_url,
            resource: Some(&notice),
            search_mode: Some("outcome"),
            request: None,
            response: None,
            outcome: None,
        });
    }
    let mut response = (StatusCode::OK, bundle.finish()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// The order of a search over several types: the sort key, then the type name, then the id.
fn merged_order(sort: &query::Sort, a: &VersionRecord, b: &VersionRecord) -> std::cmp::Ordering {
    use query::Sort;
    let by_type = a.resource_type.cmp(&b.resource_type);
    match sort {
        Sort::IdDescending => b.id.cmp(&a.id).then(by_type),
        Sort::LastUpdatedAscending => a.last_updated.cmp(&b.last_updated).then(by_type).then(a.id.cmp(&b.id)),
        Sort::LastUpdatedDescending => b.last_updated.cmp(&a.last_updated).then(by_type).then(b.id.cmp(&a.id)),
        _ => a.id.cmp(&b.id).then(by_type),
    }
}

/// Replaces a sealed `_cursor` by the cursor it holds (400 when it is changed or expired), for
/// the query compiler to read.
pub fn open_cursor(state: &AppState, params: &mut QueryParams) -> Result<(), FhirError> {
    for (name, value) in params.0.iter_mut().filter(|(name, _)| name == "_cursor") {
        let cursor = Cursor::open(value, &state.sensitive).map_err(|error| match error {
            FhirError::BadRequest(mut issues) => {
                for issue in &mut issues {
                    issue.expression = vec![name.clone()];
                }
                FhirError::BadRequest(issues)
            }
            other => other,
        })?;
        *value = cursor.encode();
    }
    Ok(())
}

/// The cursors of the pages before and after `records` (the page asked for with `sort` from
/// `cursor`, in order; `has_more`: a page lies beyond it in the direction it was read). `key`
/// names a record in a cursor: its id, or `Type/id` in a search over several types.
fn neighbours(
    sort: &query::Sort,
    cursor: Option<&Cursor>,
    count: u32,
    records: &[VersionRecord],
    has_more: bool,
    key: impl Fn(&VersionRecord) -> String,
) -> (Option<Cursor>, Option<Cursor>) {
    if sort.pages_by_offset() {
        let offset = Cursor::offset(cursor);
        let previous = (offset > 0).then(|| Cursor::Offset(offset.saturating_sub(u64::from(count))));
        let next = has_more.then(|| Cursor::Offset(offset + records.len() as u64));
        return (previous, next);
    }
    let (Some(first), Some(last)) = (records.first(), records.last()) else {
        return (None, None);
    };
    let before = Cursor::Before { last_updated: first.last_updated, id: key(first) };
    let after = Cursor::After { last_updated: last.last_updated, id: key(last) };
    if matches!(cursor, Some(Cursor::Before { .. })) {
        // Read backwards from a later page: that page follows; another lies before if more was found.
        (has_more.then_some(before), Some(after))
    } else {
        (cursor.is_some().then_some(before), has_more.then_some(after))
    }
}

/// Most codes a ValueSet named by `:in` / `:not-in` may hold.
const VALUE_SET_CODES: usize = 1000;

/// Replaces `code:in=[ValueSet url]` by `code=system|code,…` (and `:not-in` by `:not`) with
/// the codes the ValueSet stored on this server enumerates (search.html#modifiers).
async fn expand_value_sets(
    state: &AppState,
    principal: &Principal,
    params: QueryParams,
) -> Result<QueryParams, FhirError> {
    let mut out = Vec::with_capacity(params.0.len());
    for (name, value) in params.0 {
        let (base, negated) = match (name.strip_suffix(":in"), name.strip_suffix(":not-in")) {
            (Some(base), _) => (base.to_string(), false),
            (_, Some(base)) => (base.to_string(), true),
            _ => {
                out.push((name, value));
                continue;
            }
        };
        let mut codes = Vec::new();
        for url in value.split(',') {
            codes.extend(value_set_codes(state, principal, url).await.map_err(|message| {
                FhirError::BadRequest(vec![
                    crate::error::Issue::error(IssueType::NotSupported, message).at(name.clone()),
                ])
            })?);
        }
        if codes.is_empty() {
            return Err(FhirError::bad_request(IssueType::Value, format!("{name}: the ValueSet holds no codes")));
        }
        let list: Vec<String> = codes.iter().map(|(system, code)| format!("{system}|{code}")).collect();
        out.push((if negated { format!("{base}:not") } else { base }, list.join(",")));
    }
    Ok(QueryParams(out))
}

/// The `(system, code)` pairs a stored ValueSet enumerates: its expansion, or the concepts its
/// compose lists (less those excluded). Filters and whole code systems cannot be enumerated here.
async fn value_set_codes(state: &AppState, principal: &Principal, url: &str) -> Result<Vec<(String, String)>, String> {
    let definition = resource_type(state, "ValueSet").map_err(|_| "ValueSets are not served here".to_string())?;
    let lookup = QueryParams(vec![("url".into(), url.to_string())]);
    let query = query::compile(definition, &lookup, &state.base_url, false, 2, 2).map_err(|e| format!("{e:?}"))?;
    let records = state.store.search(&principal.tenant, "ValueSet", &query).await.map_err(|e| e.to_string())?;
    let record = records.first().ok_or_else(|| format!("no ValueSet with url '{url}' is stored on this server"))?;
    let value: serde_json::Value =
        serde_json::from_slice(record.json.as_deref().unwrap_or_default()).map_err(|e| e.to_string())?;
    fn contains(items: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for item in items.as_array().into_iter().flatten() {
            if let (Some(system), Some(code)) = (item["system"].as_str(), item["code"].as_str()) {
                out.push((system.to_string(), code.to_string()));
            }
            contains(&item["contains"], out);
        }
    }
    let mut codes = Vec::new();
    if value["expansion"]["contains"].is_array() {
        contains(&value["expansion"]["contains"], &mut codes);
    } else {
        let concepts = |part: &serde_json::Value| -> Result<Vec<(String, String)>, String> {
            let mut found = Vec::new();
            for include in part.as_array().into_iter().flatten() {
                let system = include["system"].as_str().unwrap_or_default();
                let listed = include["concept"].as_array();
                if system.is_empty()
                    || listed.is_none()
                    || include.get("filter").is_some()
                    || include.get("valueSet").is_some()
                {
                    return Err(format!(
                        "the ValueSet '{url}' uses filters, other ValueSets or whole code systems; only listed concepts can be searched"
                    ));
                }
                for concept in listed.into_iter().flatten() {
                    if let Some(code) = concept["code"].as_str() {
                        found.push((system.to_string(), code.to_string()));
                    }
                }
            }
            Ok(found)
        };
        let excluded = concepts(&value["compose"]["exclude"])?;
        codes = concepts(&value["compose"]["include"])?.into_iter().filter(|c| !excluded.contains(c)).collect();
    }
    if codes.len() > VALUE_SET_CODES {
        return Err(format!("the ValueSet '{url}' holds more than {VALUE_SET_CODES} codes"));
    }
    Ok(codes)
}

/// Rounds of `:iterate`: a bound on what one page can cost (with `max_include_results`).
const INCLUDE_ROUNDS: usize = 3;

/// What `_include` / `_revinclude` add to a page, and whether a bound cut them short.
struct Included {
    records: Vec<VersionRecord>,
    cut: bool,
}

/// The resources `_include` / `_revinclude` add to a page of matches, each once and none that
/// is already a match; `:iterate` includes applied again to what was included. At most
/// `max_include_results` of them and [`INCLUDE_ROUNDS`] rounds: past either, the page is cut.
async fn includes(
    state: &AppState,
    principal: &Principal,
    requested: &[query::Include],
    matches: &[VersionRecord],
) -> Result<Included, FhirError> {
    let limit = state.settings.max_include_results;
    let mut seen: std::collections::HashSet<(String, String)> =
        matches.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
    let mut sources: Vec<(String, String)> = seen.iter().cloned().collect();
    let mut included = Vec::new();
    let mut cut = false;
    for round in 0..=INCLUDE_ROUNDS {
        let mut found_now = Vec::new();
        for include in requested.iter().filter(|i| round == 0 || i.iterate) {
            // One more than may be kept tells whether there was more.
            let room = limit.saturating_sub(included.len() as u32 + found_now.len() as u32);
            let records = state.store.includes(&principal.tenant, include, &sources, room + 1).await?;
            cut |= records.len() as u32 > room;
            for record in records.into_iter().take(room as usize) {
                if seen.insert((record.resource_type.clone(), record.id.clone())) {
                    found_now.push(record);
                }
            }
        }
        if found_now.is_empty() {
            break;
        }
        if round == INCLUDE_ROUNDS {
            // Another round of :iterate would have found more.
            cut = true;
            break;
        }
        let found_now = visible_only(state, principal, found_now).await?;
        sources = found_now.iter().map(|r| (r.resource_type.clone(), r.id.clone())).collect();
        included.extend(found_now);
    }
    Ok(Included { records: included, cut })
}

/// The OperationOutcome entry of a page whose includes were cut short.
fn cut_notice(state: &AppState) -> Vec<u8> {
    crate::error::operation_outcome_json(&[crate::error::Issue {
        severity: crate::error::Severity::Warning,
        code: IssueType::TooCostly,
        diagnostics: format!(
            "_include/_revinclude were cut at {} resources (or {INCLUDE_ROUNDS} rounds of :iterate); \
             this page does not hold everything they name: ask with fewer matches per page (_count) \
             or narrower includes",
            state.settings.max_include_results
        ),
        expression: vec!["_include".into()],
    }])
}

/// Of `records`, those the principal may read: an include never reaches past the token's scopes.
pub async fn visible_only(
    state: &AppState,
    principal: &Principal,
    records: Vec<VersionRecord>,
) -> Result<Vec<VersionRecord>, FhirError> {
    if principal.grant().is_none() {
        return Ok(records);
    }
    let mut by_type: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for record in &records {
        by_type.entry(record.resource_type.clone()).or_default().push(record.id.clone());
    }
    let mut visible = std::collections::HashSet::new();
    for (type_name, ids) in by_type {
        let Ok(restriction) = principal.permit(&type_name, Interaction::Read) else {
            continue;
        };
        for id in policy::visible_ids(state, principal, &type_name, &ids, &restriction).await? {
            visible.insert((type_name.clone(), id));
        }
    }
    Ok(records.into_iter().filter(|r| visible.contains(&(r.resource_type.clone(), r.id.clone()))).collect())
}

async fn search(
    state: &AppState,
    principal: &Principal,
    type_name: &str,
    params: QueryParams,
    headers: &HeaderMap,
    patient_compartment: Option<&str>,
) -> Result<Response, FhirError> {
    let definition = resource_type(state, type_name)?;
    let restriction = principal.permit(&definition.name, Interaction::Search)?;
    policy::check_reach(principal, &definition.name, &params)?;
    super::audit_caught_up(state, &principal.tenant, &definition.name).await?;
    let mut params = expand_value_sets(state, principal, params).await?;
    open_cursor(state, &mut params)?;
    state.sensitive.blind_search(&mut params.0);
    let lenient = prefers_lenient(headers);
    let settings = &state.settings;
    let mut query = query::compile(
        definition,
        &params,
        &state.base_url,
        lenient,
        settings.max_page_size,
        settings.default_page_size,
    )?;
    if let Some(patient) = patient_compartment {
        query.within_patient_compartment(&definition.name, patient)?;
    }
    policy::confine(state, &mut query, definition, &restriction)?;
    let path = match patient_compartment {
        Some(patient) => format!("Patient/{patient}/{}", definition.name),
        None => definition.name.clone(),
    };
    let summary_count = query.subset == Subset::Summary(Summary::Count);
    let total = match query.total {
        Total::Accurate => Some(state.store.count(&principal.tenant, &definition.name, &query).await?),
        Total::Estimate => Some(state.store.estimate(&principal.tenant, &definition.name, &query).await?),
        Total::None => None,
    };
    let mut records = if summary_count || query.count == 0 {
        Vec::new()
    } else {
        state.store.search(&principal.tenant, &definition.name, &query).await?
    };
    // More than a page was found: there is a page beyond this one, in the direction read.
    let has_more = records.len() > query.count as usize;
    records.truncate(query.count as usize);
    if query.backwards() {
        records.reverse();
    }

    let link = |cursor: Option<&Cursor>| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &query.echo {
            serializer.append_pair(name, value);
        }
        if let Some(cursor) = cursor {
            serializer.append_pair("_cursor", &cursor.seal(&state.sensitive));
        }
        let encoded = serializer.finish();
        if encoded.is_empty() {
            format!("{}/{path}", state.base_url)
        } else {
            format!("{}/{path}?{encoded}", state.base_url)
        }
    };
    let (previous, next) =
        neighbours(&query.sort, query.cursor.as_ref(), query.count, &records, has_more, |r| r.id.clone());
    let self_link = link(query.cursor.as_ref());
    let first_link = link(None);
    let previous_link = previous.map(|cursor| link(Some(&cursor)));
    let next_link = next.map(|cursor| link(Some(&cursor)));
    let mut links = vec![("self", self_link.as_str()), ("first", first_link.as_str())];
    if let Some(previous) = &previous_link {
        links.push(("previous", previous.as_str()));
    }
    if let Some(next) = &next_link {
        links.push(("next", next.as_str()));
    }
    let included = includes(state, principal, &query.include, &records).await?;
    let mut response = searchset(state, total, &links, records, included, &query.subset)?;
    if !query.ignored.is_empty()
        && let Ok(value) = HeaderValue::from_str(&format!("ignored parameters: {}", query.ignored.join(", ")))
    {
        response.headers_mut().insert("x-kiln-ignored-parameters", value);
    }
    Ok(response)
}
