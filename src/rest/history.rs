//! history: instance, type and system level (FHIR R4 http.html#history), newest first, with
//! `_since`, `_at` and `_count`, paged by a keyset cursor so pages stay stable under writes.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{QueryParams, etag, logical_id, resource_type};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, IssueType};
use crate::fhir::FHIR_JSON;
use crate::fhir::bundle::{BundleWriter, Entry, EntryRequest, EntryResponse};
use crate::fhir::instant::{fhir_instant, parse_range};
use crate::store::{HistoryFilter, HistoryScope, WriteMethod};

pub async fn instance_history(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    principal.permit(&definition.name, Interaction::Read)?;
    super::audit_caught_up(&state, &principal.tenant, &definition.name).await?;
    if state.store.read_current(&principal.tenant, &definition.name, id).await?.is_none() {
        return Err(FhirError::NotFound(format!("{type_name}/{id} is not known")));
    }
    let path = format!("{type_name}/{id}/_history");
    history(&state, &principal, HistoryScope::Instance(&definition.name, id), &path, query.as_deref()).await
}

pub async fn type_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    super::audit_caught_up(&state, &principal.tenant, &definition.name).await?;
    let path = format!("{type_name}/_history");
    history(&state, &principal, HistoryScope::Type(&definition.name), &path, query.as_deref()).await
}

pub async fn system_history(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    history(&state, &principal, HistoryScope::System, "_history", query.as_deref()).await
}

async fn history(
    state: &AppState,
    principal: &Principal,
    scope: HistoryScope<'_>,
    path: &str,
    query: Option<&str>,
) -> Result<Response, FhirError> {
    let params = QueryParams::parse(query);
    params.only(&["_count", "_since", "_at", "_cursor"])?;
    let count = match params.get("_count") {
        None => state.settings.default_page_size,
        Some(c) => c.parse::<u32>().ok().filter(|c| *c <= state.settings.max_page_size).ok_or_else(|| {
            FhirError::bad_request(
                IssueType::Value,
                format!("_count must be a whole number from 0 to {}", state.settings.max_page_size),
            )
        })?,
    };
    let instant = |name: &str| -> Result<Option<i64>, FhirError> {
        params
            .get(name)
            .map(|v| {
                parse_range(v).map(|(start, _)| start).ok_or_else(|| {
                    FhirError::bad_request(
                        IssueType::Value,
                        format!("{name} must be a FHIR instant or date, found '{v}'"),
                    )
                })
            })
            .transpose()
    };
    let before_seq = params
        .get("_cursor")
        .map(|c| {
            c.parse::<i64>().map_err(|_| FhirError::bad_request(IssueType::Value, "_cursor is not a valid page cursor"))
        })
        .transpose()?;
    let filter = HistoryFilter { since: instant("_since")?, at: instant("_at")?, before_seq, count: count + 1 };
    if let HistoryScope::Instance(type_name, id) = scope {
        policy::ensure_visible(state, principal, type_name, id, Interaction::Read).await?;
    }
    if let HistoryScope::Type(type_name) = scope {
        principal.permit(type_name, Interaction::Read)?;
    }
    let mut records = state.store.history(&principal.tenant, scope, &filter).await?;
    if principal.grant().is_some() && !matches!(scope, HistoryScope::Instance(..)) {
        // Versions of resources the token may not read are left out (the page may come out short).
        records = super::search::visible_only(state, principal, records).await?;
    }
    let has_more = records.len() > count as usize;
    records.truncate(count as usize);

    let keep: Vec<(&str, &str)> =
        params.0.iter().filter(|(n, _)| n != "_cursor").map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let link = |extra: Option<(&str, String)>| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (n, v) in &keep {
            serializer.append_pair(n, v);
        }
        if let Some((n, v)) = &extra {
            serializer.append_pair(n, v);
        }
        let query = serializer.finish();
        if query.is_empty() {
            format!("{}/{path}", state.base_url)
        } else {
            format!("{}/{path}?{query}", state.base_url)
        }
    };
    let self_link = link(before_seq.map(|s| ("_cursor", s.to_string())));
    let next_link = has_more.then(|| records.last().map(|r| link(Some(("_cursor", r.seq.to_string()))))).flatten();
    let mut links = vec![("self", self_link.as_str())];
    if let Some(next) = &next_link {
        links.push(("next", next.as_str()));
    }

    let mut bundle = BundleWriter::new("history", None, &links);
    for record in &records {
        let full_url = format!("{}/{}/{}", state.base_url, record.resource_type, record.id);
        let request_url = match record.method {
            WriteMethod::Create => record.resource_type.clone(),
            _ => format!("{}/{}", record.resource_type, record.id),
        };
        let status = match record.method {
            WriteMethod::Create => "201 Created",
            WriteMethod::Update if record.version == 1 => "201 Created",
            WriteMethod::Update => "200 OK",
            WriteMethod::Delete => "204 No Content",
        };
        bundle.push(Entry {
            full_url: &full_url,
            resource: record.json.as_deref(),
            search_mode: None,
            request: Some(EntryRequest { method: record.method.http_method(), url: &request_url }),
            response: Some(EntryResponse {
                status,
                location: None,
                etag: Some(etag(record.version)),
                last_modified: Some(fhir_instant(record.last_updated)),
            }),
            outcome: None,
        });
    }
    let mut response = (StatusCode::OK, bundle.finish()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}
