//! The FHIR RESTful API (FHIR R4 http.html): one module per interaction, named after its section
//! of the specification, plus the extractors and response helpers they share.

pub mod capabilities;
pub mod conditional;
pub mod create;
pub mod delete;
pub mod everything;
pub mod format;
pub mod history;
pub mod integrity;
pub mod meta;
pub mod operation;
pub mod patch;
pub mod read;
pub mod retention;
pub mod rules;
pub mod search;
pub mod signature;
pub mod transaction;
pub mod update;
pub mod validate;
pub mod vread;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::app::AppState;
use crate::error::{FhirError, Issue, IssueType, outcome_response};
use crate::fhir::FHIR_JSON;
use crate::fhir::instant::http_date;
use crate::fhir::registry::ResourceType;
use crate::fhir::subset::{Subset, Summary};
use crate::store::VersionRecord;

/// Looks up a resource type named in the URL: unknown or unsupported types answer 404.
pub fn resource_type(state: &AppState, name: &str) -> Result<&'static ResourceType, FhirError> {
    state
        .registry
        .resource(name)
        .ok_or_else(|| FhirError::UnknownType(format!("resource type '{name}' is not supported")))
}

/// Before AuditEvents are read: brings their resource copies up to date with the audit log, so
/// that the trail shows every access answered before this request.
pub async fn audit_caught_up(
    state: &AppState,
    tenant: &crate::access::TenantId,
    type_name: &str,
) -> Result<(), FhirError> {
    if type_name == "AuditEvent" {
        state.audit.catch_up(tenant).await.map_err(FhirError::Internal)?;
    }
    Ok(())
}

/// Checks an id from the URL against the FHIR id pattern.
pub fn logical_id(id: &str) -> Result<&str, FhirError> {
    if crate::fhir::is_valid_id(id) {
        Ok(id)
    } else {
        Err(FhirError::bad_request(
            IssueType::Value,
            format!("'{id}' is not a valid resource id ([A-Za-z0-9-.]{{1,64}})"),
        ))
    }
}

/// A request body, read only after its media type and size are known to be acceptable.
pub struct FhirBody(pub bytes::Bytes);

impl FromRequest<AppState> for FhirBody {
    type Rejection = FhirError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(request.headers())?;
        read_limited(request, state.settings.max_body_bytes).await.map(FhirBody)
    }
}

/// Reads a request body of at most `limit` bytes: a larger declared `Content-Length` is refused
/// before reading, and a larger streamed (chunked) body as soon as it passes the limit.
pub async fn read_limited(request: Request, limit: usize) -> Result<bytes::Bytes, FhirError> {
    let too_large = || FhirError::PayloadTooLarge(format!("the request body exceeds the limit of {limit} bytes"));
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let body: Body = request.into_body();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<LengthLimitError>() => Err(too_large()),
        Err(err) => {
            Err(FhirError::bad_request(IssueType::Structure, format!("could not read the request body: {err}")))
        }
    }
}

fn check_content_type(headers: &HeaderMap) -> Result<(), FhirError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media_type.as_str() {
        "application/fhir+json" | "application/json" | "application/json+fhir" => Ok(()),
        xml if xml.contains("xml") => {
            Err(FhirError::UnsupportedMediaType("XML is not supported yet; send application/fhir+json".into()))
        }
        other => Err(FhirError::UnsupportedMediaType(format!(
            "'{other}' is not a FHIR media type; send application/fhir+json"
        ))),
    }
}

/// Query parameters of a request, in order, percent-decoded.
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query: Option<&str>) -> Self {
        QueryParams(form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect())
    }

    /// Parameters every interaction accepts and the format layer handles.
    fn is_format_param(name: &str) -> bool {
        matches!(name, "_format" | "_pretty")
    }

    /// Refuses parameters an interaction does not understand, naming them.
    pub fn only(&self, allowed: &[&str]) -> Result<(), FhirError> {
        let unknown: Vec<Issue> = self
            .0
            .iter()
            .filter(|(name, _)| !Self::is_format_param(name) && !allowed.contains(&name.as_str()))
            .map(|(name, _)| {
                Issue::error(
                    IssueType::NotSupported,
                    format!("unknown or unsupported parameter '{name}' for this interaction"),
                )
                .at(name.clone())
            })
            .collect();
        if unknown.is_empty() { Ok(()) } else { Err(FhirError::BadRequest(unknown)) }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `_summary` / `_elements` (they exclude each other).
    pub fn subset(&self) -> Result<Subset, FhirError> {
        match (self.get("_summary"), self.get("_elements")) {
            (Some(_), Some(_)) => {
                Err(FhirError::bad_request(IssueType::Invalid, "_summary and _elements cannot be used together"))
            }
            (Some(summary), None) => Ok(Subset::Summary(Summary::parse(summary)?)),
            (None, Some(elements)) => Ok(Subset::Elements(
                elements.split(',').map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect(),
            )),
            (None, None) => Ok(Subset::Full),
        }
    }
}

/// `ETag: W/"n"` of a version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// Reads a version from an `If-Match` style value: `W/"3"`, `"3"` or `3`.
pub fn parse_etag(value: &str) -> Option<i64> {
    let value = value.trim();
    let value = value.strip_prefix("W/").unwrap_or(value);
    value.trim_matches('"').parse().ok().filter(|v| *v > 0)
}

/// The `If-Match` header as a version, if present; a malformed one is a bad request.
pub fn if_match(headers: &HeaderMap) -> Result<Option<i64>, FhirError> {
    match headers.get(header::IF_MATCH) {
        None => Ok(None),
        Some(value) => {
            value.to_str().ok().and_then(parse_etag).map(Some).ok_or_else(|| {
                FhirError::bad_request(IssueType::Value, "If-Match must be a version ETag such as W/\"3\"")
            })
        }
    }
}

/// What the client asked to get back after a write (`Prefer: return=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnPreference {
    Minimal,
    Representation,
    OperationOutcome,
}

pub fn return_preference(headers: &HeaderMap) -> ReturnPreference {
    let prefer = headers.get_all("prefer").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for token in prefer {
        match token.trim() {
            "return=minimal" => return ReturnPreference::Minimal,
            "return=OperationOutcome" => return ReturnPreference::OperationOutcome,
            "return=representation" => return ReturnPreference::Representation,
            _ => {}
        }
    }
    ReturnPreference::Representation
}

/// A response carrying a stored resource version, with its `ETag` and `Last-Modified`.
pub fn resource_response(status: StatusCode, record: &VersionRecord, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    version_headers(headers, record);
    response
}

pub fn version_headers(headers: &mut HeaderMap, record: &VersionRecord) {
    if let Ok(v) = HeaderValue::from_str(&etag(record.version)) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&http_date(record.last_updated)) {
        headers.insert(header::LAST_MODIFIED, v);
    }
}

/// The answer to a create or update, shaped by `Prefer: return=…`.
pub fn write_response(
    state: &AppState,
    status: StatusCode,
    mut record: VersionRecord,
    preference: ReturnPreference,
) -> Response {
    let location = format!("{}/{}/{}/_history/{}", state.base_url, record.resource_type, record.id, record.version);
    let mut response = match preference {
        ReturnPreference::Representation => {
            let body = record.json.take().unwrap_or_default();
            resource_response(status, &record, body)
        }
        ReturnPreference::Minimal => {
            let mut r = status.into_response();
            version_headers(r.headers_mut(), &record);
            r
        }
        ReturnPreference::OperationOutcome => {
            let verb = if status == StatusCode::CREATED { "created" } else { "updated" };
            let issue = Issue {
                severity: crate::error::Severity::Information,
                code: IssueType::Informational,
                diagnostics: format!("{}/{} {verb} as version {}", record.resource_type, record.id, record.version),
                expression: vec![],
            };
            let mut r = outcome_response(status, &[issue]);
            version_headers(r.headers_mut(), &record);
            r
        }
    };
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v.clone());
        response.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    response
}

/// How a resource is written: as a new resource, or as a new version of a given id.
#[derive(Debug, Clone, Copy)]
pub enum WriteMode {
    Create,
    Update {
        if_match: Option<i64>,
    },
    /// An update of a signed resource through `$amend` (the one write its lock allows).
    Amend,
}

/// What a resource about to be written brings: the claims the store must hold for it, its
/// search-index rows and the local resources it refers to.
pub struct Prepared {
    pub guards: crate::store::WriteGuards,
    pub index: Vec<crate::search::IndexRow>,
    pub links: Vec<(String, String)>,
}

/// The shared second half of create and update, also used by every write in a batch or
/// transaction: applies the business rules (which may complete the resource, e.g. its MRN) and
/// derives its index rows and links.
pub async fn prepare_resource(
    state: &AppState,
    transaction: &mut dyn crate::store::StoreTransaction,
    resource_type: &str,
    resource: &mut crate::fhir::json::ResourceBody,
    value: &mut serde_json::Value,
    mode: WriteMode,
) -> Result<Prepared, FhirError> {
    use crate::emr::rules::WriteKind;
    let kind = match mode {
        WriteMode::Create => WriteKind::Create,
        WriteMode::Update { .. } | WriteMode::Amend => WriteKind::Update,
    };
    if let (WriteMode::Update { .. }, Some(id)) = (mode, resource.id.clone()) {
        signature::ensure_changeable(state, transaction, resource_type, &id, false).await?;
    }
    let tenant = transaction.tenant().clone();
    let guards = rules::prepare_write(transaction, &tenant, resource_type, resource, value, kind).await?;
    // Sensitive identifiers: indexed by the keyed hash of their plaintext, stored sealed.
    let sensitive = &state.sensitive;
    let current = match (&resource.id, sensitive.has_masked(value)) {
        (Some(id), true) => transaction
            .read_current(resource_type, id)
            .await?
            .and_then(|record| record.json)
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok()),
        _ => None,
    };
    let opened = sensitive.open_for_write(value, current.as_ref())?;
    let mut index = crate::search::index_resource(state.registry, resource_type, value);
    sensitive.blind_index(&opened, &mut index);
    for member in sensitive.seal(value, &opened) {
        resource.set_member(&member, &value[member.as_str()]);
    }
    Ok(Prepared { guards, index, links: integrity::local_links(state, value) })
}

/// The store's request for a prepared resource.
pub fn write_request<'a>(
    resource_type: &'a str,
    id: &'a str,
    resource: &'a crate::fhir::json::ResourceBody,
    mode: WriteMode,
    prepared: Prepared,
) -> crate::store::WriteRequest<'a> {
    use crate::store::{Change, WriteRequest};
    let change = match mode {
        WriteMode::Create => Change::Create(resource),
        WriteMode::Update { if_match } => Change::Update { body: resource, if_match },
        WriteMode::Amend => Change::Update { body: resource, if_match: None },
    };
    let mut request = WriteRequest::new(resource_type, id, change);
    request.guards = prepared.guards;
    request.index = prepared.index;
    request.links = prepared.links;
    request
}

/// Prepares and writes one resource in `transaction`.
pub async fn store_resource(
    state: &AppState,
    transaction: &mut dyn crate::store::StoreTransaction,
    resource_type: &str,
    id: &str,
    resource: &mut crate::fhir::json::ResourceBody,
    value: &mut serde_json::Value,
    mode: WriteMode,
) -> Result<crate::store::WriteOutcome, FhirError> {
    let prepared = prepare_resource(state, transaction, resource_type, resource, value, mode).await?;
    Ok(transaction.write(write_request(resource_type, id, resource, mode, prepared)).await?)
}

/// The current version of `resource_type/id` if it is live: 404 if it never existed, 410 if it
/// was deleted.
pub fn live(record: Option<VersionRecord>, resource_type: &str, id: &str) -> Result<VersionRecord, FhirError> {
    match record {
        Some(record) if !record.deleted => Ok(record),
        Some(record) => Err(FhirError::Gone(format!("{resource_type}/{id} was deleted (version {})", record.version))),
        None => Err(FhirError::NotFound(format!("{resource_type}/{id} is not known"))),
    }
}

/// A new server-assigned id. Time-ordered ids keep index inserts local (B-tree pages fill in
/// order).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Parses and validates a write body for `expected_type`: the shared first half of create and
/// update (FHIR R4 http.html#create, http.html#update).
pub fn parse_for_write(
    state: &AppState,
    expected_type: &ResourceType,
    body: &[u8],
) -> Result<(crate::fhir::json::ResourceBody, serde_json::Value), FhirError> {
    if body.is_empty() {
        return Err(FhirError::bad_request(IssueType::Required, "the request has no body; send a FHIR resource"));
    }
    let value = crate::fhir::json::parse_strict(body)?;
    parsed_for_write(state, expected_type, body, value)
}

/// [`parse_for_write`] for a body already parsed strictly into `value` (a Bundle entry).
pub fn parsed_for_write(
    state: &AppState,
    expected_type: &ResourceType,
    body: &[u8],
    value: serde_json::Value,
) -> Result<(crate::fhir::json::ResourceBody, serde_json::Value), FhirError> {
    let (resource, value) = crate::fhir::json::resource_from_parsed(body, value)?;
    if resource.resource_type != expected_type.name {
        return Err(FhirError::BadRequest(vec![
            Issue::error(
                IssueType::Invalid,
                format!("the body is a {} but the URL names {}", resource.resource_type, expected_type.name),
            )
            .at("resourceType"),
        ]));
    }
    crate::fhir::validation::validate(state.registry, &value)?;
    Ok((resource, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_parse_in_all_common_shapes() {
        assert_eq!(parse_etag("W/\"3\""), Some(3));
        assert_eq!(parse_etag("\"12\""), Some(12));
        assert_eq!(parse_etag("7"), Some(7));
        assert_eq!(parse_etag("W/\"x\""), None);
        assert_eq!(parse_etag("0"), None);
    }

    #[test]
    fn unknown_parameters_are_named() {
        let params = QueryParams::parse(Some("_summary=true&foo=1&_format=json"));
        let err = params.only(&["_summary"]).unwrap_err();
        assert_eq!(err.issues()[0].expression, vec!["foo"]);
    }

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+xml"));
        assert!(matches!(check_content_type(&headers), Err(FhirError::UnsupportedMediaType(_))));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json; charset=utf-8"));
        assert!(check_content_type(&headers).is_ok());
    }
}
