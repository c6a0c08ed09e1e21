//! batch and transaction: `POST [base]` with a Bundle of type `batch` or `transaction` (FHIR R4
//! http.html#transaction, bundle.html#transaction).
//!
//! A transaction is one database transaction: entries are processed in the order the
//! specification gives (DELETE, then POST, then PUT, then GET), `urn:uuid:`/`urn:oid:` and other
//! `fullUrl`s of new resources are resolved and every reference to them rewritten, conditional
//! references (`Patient?identifier=…`) resolved, and the first failing entry rolls everything
//! back, the answer naming it (`Bundle.entry[i]` and its fullUrl). A batch runs each entry on its
//! own and answers each entry's status. GET entries are answered by the same routes as a plain
//! request, after the writes have committed.

use axum::Extension;
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use tower::ServiceExt;

use super::integrity;
use super::patch::{self, PatchDocument};
use super::{
    FhirBody, QueryParams, ReturnPreference, WriteMode, conditional, delete, etag, logical_id, new_id, parse_etag,
    parsed_for_write, prepare_resource, return_preference, update, write_request,
};
use crate::access::Principal;
use crate::access::policy::{self, Interaction};
use crate::app::AppState;
use crate::error::{FhirError, Issue, IssueType, operation_outcome_json};
use crate::fhir::FHIR_JSON;
use crate::fhir::bundle::{BundleWriter, Entry, EntryResponse};
use crate::fhir::instant::fhir_instant;
use crate::fhir::json::{self, ResourceBody};
use crate::fhir::registry::ResourceType;
use crate::store::{StoreTransaction, VersionRecord};

/// The routes GET entries are answered by (the FHIR API without this endpoint).
#[derive(Clone)]
pub struct EntryRouter(pub Router);

/// `POST [base]`.
pub async fn process(
    State(state): State<AppState>,
    Extension(EntryRouter(reads)): Extension<EntryRouter>,
    principal: Principal,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    QueryParams::parse(query.as_deref()).only(&[])?;
    let answer = execute(&state, &reads, &principal, &body, return_preference(&headers)).await?;
    let mut response = (StatusCode::OK, answer).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    Ok(response)
}

/// Runs a batch or transaction Bundle for `principal` and answers the response Bundle; `reads`
/// answers its GET entries (as the same principal).
pub async fn execute(
    state: &AppState,
    reads: &Router,
    principal: &Principal,
    body: &[u8],
    preference: ReturnPreference,
) -> Result<Vec<u8>, FhirError> {
    let tenant = &principal.tenant;
    let (kind, mut entries) = plan(state, body)?;
    // Each write entry needs the token's permission for its type and interaction; what it may
    // reach within that type is checked as the entry is applied.
    for entry in entries.iter_mut() {
        let Some((definition, interaction)) = entry.action.permission() else { continue };
        if let Err(error) = principal.permit(&definition.name, interaction) {
            match kind {
                Kind::Transaction => return Err(error),
                Kind::Batch => {
                    entry.result = Some(EntryResult::failed(&error));
                    entry.action = Action::Refused;
                }
            }
        }
    }
    match kind {
        Kind::Transaction => {
            let mut transaction = state.store.begin(tenant).await?;
            apply_writes(state, principal, &mut *transaction, &mut entries, true)
                .await
                .map_err(|failure| failure.into_error())?;
            transaction.commit().await?;
        }
        Kind::Batch => {
            for entry in entries.iter_mut().filter(|e| !matches!(e.action, Action::Read { .. } | Action::Refused)) {
                let result = async {
                    let mut transaction = state.store.begin(tenant).await?;
                    apply_writes(state, principal, &mut *transaction, std::slice::from_mut(entry), false)
                        .await
                        .map_err(|failure| failure.error)?;
                    transaction.commit().await?;
                    Ok::<(), FhirError>(())
                }
                .await;
                if let Err(error) = result {
                    entry.result = Some(EntryResult::failed(&error));
                }
            }
        }
    }
    for entry in entries.iter_mut() {
        if let Action::Read { url, if_none_match, if_modified_since } = &entry.action {
            entry.result =
                Some(read_entry(reads, principal, url, if_none_match.as_deref(), if_modified_since.as_deref()).await);
        }
    }
    let mut bundle = BundleWriter::new(kind.response_type(), None, &[]);
    for entry in &entries {
        let Some(result) = &entry.result else { continue };
        let status = status_line(result.status);
        let resource = match (&result.record, preference) {
            (Some(record), ReturnPreference::Representation) => record.json.as_deref(),
            (None, _) => result.body.as_deref(),
            _ => None,
        };
        let outcome = match (&result.outcome, preference) {
            (Some(outcome), _) => Some(outcome.clone()),
            (None, ReturnPreference::OperationOutcome) => Some(operation_outcome_json(&[Issue {
                severity: crate::error::Severity::Information,
                code: IssueType::Informational,
                diagnostics: format!(
                    "{status}{}",
                    result.location.as_deref().map(|l| format!(": {l}")).unwrap_or_default()
                ),
                expression: vec![],
            }])),
            _ => None,
        };
        bundle.push(Entry {
            full_url: &entry.response_full_url(state),
            resource,
            search_mode: None,
            request: None,
            response: Some(EntryResponse {
                status: &status,
                location: result.location.clone(),
                etag: result.etag.clone(),
                last_modified: result.last_modified.clone(),
            }),
            outcome: outcome.as_deref(),
        });
    }
    Ok(bundle.finish())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Batch,
    Transaction,
}

impl Kind {
    fn response_type(self) -> &'static str {
        match self {
            Kind::Batch => "batch-response",
            Kind::Transaction => "transaction-response",
        }
    }
}

/// What an entry asks for, from `entry.request`.
impl Action {
    /// The type and interaction a write entry needs permission for.
    fn permission(&self) -> Option<(&'static ResourceType, Interaction)> {
        match self {
            Action::Patch { definition, .. } | Action::Update { definition, .. } => {
                Some((definition, Interaction::Update))
            }
            Action::ConditionalUpdate { definition, .. } => Some((definition, Interaction::Update)),
            Action::Create { definition, .. } => Some((definition, Interaction::Create)),
            Action::Delete { definition, .. } | Action::ConditionalDelete { definition, .. } => {
                Some((definition, Interaction::Delete))
            }
            _ => None,
        }
    }
}

enum Action {
    /// The patch document is the entry's resource: a `Parameters` (FHIRPath Patch) or a
    /// `Binary` holding a JSON Patch.
    Patch {
        definition: &'static ResourceType,
        id: String,
        if_match: Option<i64>,
        document: Option<PatchDocument>,
    },
    Create {
        definition: &'static ResourceType,
        condition: Option<String>,
    },
    Update {
        definition: &'static ResourceType,
        id: String,
        if_match: Option<i64>,
    },
    ConditionalUpdate {
        definition: &'static ResourceType,
        condition: String,
        if_match: Option<i64>,
    },
    Delete {
        definition: &'static ResourceType,
        id: String,
    },
    ConditionalDelete {
        definition: &'static ResourceType,
        condition: String,
    },
    Read {
        url: String,
        if_none_match: Option<String>,
        if_modified_since: Option<String>,
    },
    /// A batch entry that could not be read; its result says why.
    Refused,
}

impl Action {
    /// The specification's processing order (http.html#trules): DELETE, POST, PUT/PATCH, GET.
    fn phase(&self) -> u8 {
        match self {
            Action::Delete { .. } | Action::ConditionalDelete { .. } => 0,
            Action::Create { .. } => 1,
            Action::Update { .. } | Action::ConditionalUpdate { .. } | Action::Patch { .. } => 2,
            Action::Read { .. } | Action::Refused => 3,
        }
    }

    fn definition(&self) -> Option<&'static ResourceType> {
        match self {
            Action::Create { definition, .. }
            | Action::Update { definition, .. }
            | Action::ConditionalUpdate { definition, .. }
            | Action::Delete { definition, .. }
            | Action::ConditionalDelete { definition, .. }
            | Action::Patch { definition, .. } => Some(definition),
            Action::Read { .. } | Action::Refused => None,
        }
    }
}

/// One entry on its way through processing.
struct Planned {
    index: usize,
    full_url: String,
    action: Action,
    resource: Option<(ResourceBody, Value)>,
    /// The id written (or matched, for a conditional create that found its resource).
    id: Option<String>,
    /// A conditional create found its resource: nothing to write.
    matched_existing: bool,
    result: Option<EntryResult>,
}

impl Planned {
    fn response_full_url(&self, state: &AppState) -> String {
        match (&self.action.definition(), &self.id, &self.result) {
            (Some(definition), Some(id), Some(result)) if result.status.is_success() => {
                format!("{}/{}/{id}", state.base_url, definition.name)
            }
            _ => self.full_url.clone(),
        }
    }
}

/// The outcome of one entry, as its `response` will say.
struct EntryResult {
    status: StatusCode,
    location: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
    record: Option<VersionRecord>,
    /// The body of a GET entry's answer (a resource or Bundle).
    body: Option<Vec<u8>>,
    outcome: Option<Vec<u8>>,
}

impl EntryResult {
    fn failed(error: &FhirError) -> Self {
        let (status, _) = error.status_and_code();
        EntryResult {
            status,
            location: None,
            etag: None,
            last_modified: None,
            record: None,
            body: None,
            outcome: Some(operation_outcome_json(&error.issues())),
        }
    }

    fn written(state: &AppState, status: StatusCode, record: VersionRecord) -> Self {
        let location = (!record.deleted)
            .then(|| format!("{}/{}/{}/_history/{}", state.base_url, record.resource_type, record.id, record.version));
        EntryResult {
            status,
            location,
            etag: Some(etag(record.version)),
            last_modified: Some(fhir_instant(record.last_updated)),
            record: Some(record),
            body: None,
            outcome: None,
        }
    }
}

/// A failing entry of a transaction: which one, and why.
struct EntryFailure {
    index: usize,
    full_url: String,
    error: FhirError,
}

impl EntryFailure {
    /// The transaction's answer: the entry's status, every issue placed at `Bundle.entry[i]`.
    fn into_error(self) -> FhirError {
        let place = if self.full_url.is_empty() {
            format!("Bundle.entry[{}]", self.index)
        } else {
            format!("Bundle.entry[{}] ({})", self.index, self.full_url)
        };
        let relocate = |issues: Vec<Issue>| -> Vec<Issue> {
            issues
                .into_iter()
                .map(|mut issue| {
                    issue.diagnostics = format!("{place}: {}", issue.diagnostics);
                    let resource_path = format!("Bundle.entry[{}].resource", self.index);
                    issue.expression = issue
                        .expression
                        .iter()
                        .map(|expression| match expression.split_once('.') {
                            _ if expression.starts_with("Bundle.") => expression.clone(),
                            Some((head, rest)) if head.starts_with(|c: char| c.is_ascii_uppercase()) => {
                                format!("{resource_path}.{rest}")
                            }
                            _ if expression.starts_with(|c: char| c.is_ascii_uppercase()) => resource_path.clone(),
                            _ => format!("{resource_path}.{expression}"),
                        })
                        .collect();
                    if issue.expression.is_empty() {
                        issue.expression.push(format!("Bundle.entry[{}]", self.index));
                    }
                    issue
                })
                .collect()
        };
        let say = |message: String| format!("{place}: {message}");
        match self.error {
            FhirError::BadRequest(issues) => FhirError::BadRequest(relocate(issues)),
            FhirError::Unprocessable(issues) => FhirError::Unprocessable(relocate(issues)),
            FhirError::NotFound(m) => FhirError::NotFound(say(m)),
            FhirError::UnknownType(m) => FhirError::UnknownType(say(m)),
            FhirError::Conflict(m) => FhirError::Conflict(say(m)),
            FhirError::Gone(m) => FhirError::Gone(say(m)),
            FhirError::PreconditionFailed(m) => FhirError::PreconditionFailed(say(m)),
            FhirError::Forbidden(m) => FhirError::Forbidden(say(m)),
            FhirError::NotImplemented(m) => FhirError::NotImplemented(say(m)),
            FhirError::MethodNotAllowed(m) => FhirError::MethodNotAllowed(say(m)),
            other => other,
        }
    }
}

#[derive(Deserialize)]
struct RawBundle {
    #[serde(default)]
    entry: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    #[serde(rename = "fullUrl")]
    full_url: Option<String>,
    resource: Option<Box<RawValue>>,
    request: Option<RawRequest>,
}

#[derive(Deserialize)]
struct RawRequest {
    method: String,
    url: String,
    #[serde(rename = "ifNoneExist")]
    if_none_exist: Option<String>,
    #[serde(rename = "ifMatch")]
    if_match: Option<String>,
    #[serde(rename = "ifNoneMatch")]
    if_none_match: Option<String>,
    #[serde(rename = "ifModifiedSince")]
    if_modified_since: Option<String>,
}

/// Reads and checks the Bundle and every entry before anything is written: the Bundle's
/// structure, each resource against its type, each request's method and URL, the entry limit,
/// and duplicate `fullUrl`s.
fn plan(state: &AppState, body: &[u8]) -> Result<(Kind, Vec<Planned>), FhirError> {
    if body.is_empty() {
        return Err(FhirError::bad_request(
            IssueType::Required,
            "the request has no body; send a batch or transaction Bundle",
        ));
    }
    let mut shell = json::parse_strict(body)?;
    let kind = match (shell.get("resourceType").and_then(Value::as_str), shell.get("type").and_then(Value::as_str)) {
        (Some("Bundle"), Some("transaction")) => Kind::Transaction,
        (Some("Bundle"), Some("batch")) => Kind::Batch,
        (Some("Bundle"), other) => {
            return Err(FhirError::BadRequest(vec![
                Issue::error(
                    IssueType::Invalid,
                    format!(
                        "POST [base] takes a Bundle of type batch or transaction, not {}; to store a Bundle as a resource, POST it to [base]/Bundle",
                        other.unwrap_or("(none)")
                    ),
                )
                .at("Bundle.type"),
            ]));
        }
        (other, _) => {
            return Err(FhirError::BadRequest(vec![
                Issue::error(
                    IssueType::Invalid,
                    format!(
                        "POST [base] takes a batch or transaction Bundle, not {}",
                        other.unwrap_or("a body without resourceType")
                    ),
                )
                .at("resourceType"),
            ]));
        }
    };
    let entry_count = shell.get("entry").and_then(Value::as_array).map_or(0, Vec::len);
    if entry_count > state.settings.max_bundle_entries {
        return Err(FhirError::PayloadTooLarge(format!(
            "the Bundle has {entry_count} entries; at most {} are accepted (max_bundle_entries)",
            state.settings.max_bundle_entries
        )));
    }
    // The Bundle itself is checked without its entries' resources, which are checked one by
    // one against their own types below.
    // The entries' resources, already parsed (strictly) with the Bundle: each is checked below
    // without being parsed again.
    let mut parsed: Vec<Option<Value>> = Vec::with_capacity(entry_count);
    if let Some(entries) = shell.get_mut("entry").and_then(Value::as_array_mut) {
        for (index, entry) in entries.iter_mut().enumerate() {
            let Some(entry) = entry.as_object_mut() else {
                parsed.push(None);
                continue;
            };
            if !entry.contains_key("request") {
                return Err(FhirError::BadRequest(vec![
                    Issue::error(IssueType::Required, "every entry of a batch or transaction needs a request (bdl-3)")
                        .at(format!("Bundle.entry[{index}].request")),
                ]));
            }
            parsed.push(entry.remove("resource"));
        }
    }
    crate::fhir::validation::validate_any_type(state.registry, &shell)?;
    let raw: RawBundle = serde_json::from_slice(body)
        .map_err(|e| FhirError::bad_request(IssueType::Structure, format!("the Bundle cannot be read: {e}")))?;
    let mut planned = Vec::with_capacity(raw.entry.len());
    let mut full_urls = HashSet::new();
    for (index, entry) in raw.entry.into_iter().enumerate() {
        let full_url = entry.full_url.unwrap_or_default();
        let fail = |error: FhirError| EntryFailure { index, full_url: full_url.clone(), error }.into_error();
        if !full_url.is_empty() && !full_urls.insert(full_url.clone()) {
            return Err(fail(FhirError::bad_request(
                IssueType::Duplicate,
                format!("the fullUrl '{full_url}' appears on more than one entry"),
            )));
        }
        let value = parsed.get_mut(index).and_then(Option::take);
        match plan_entry(state, index, entry.request, entry.resource.zip(value)) {
            Ok((action, resource)) => planned.push(Planned {
                index,
                full_url,
                action,
                resource,
                id: None,
                matched_existing: false,
                result: None,
            }),
            // A batch answers a bad entry in its place and goes on with the others.
            Err(error) if kind == Kind::Batch => planned.push(Planned {
                index,
                full_url,
                action: Action::Refused,
                resource: None,
                id: None,
                matched_existing: false,
                result: Some(EntryResult::failed(&error)),
            }),
            Err(error) => return Err(fail(error)),
        }
    }
    Ok((kind, planned))
}

/// Reads one entry: the interaction its request names and its resource, checked.
fn plan_entry(
    state: &AppState,
    index: usize,
    request: Option<RawRequest>,
    resource: Option<(Box<RawValue>, Value)>,
) -> Result<(Action, Option<(ResourceBody, Value)>), FhirError> {
    let request = request.ok_or_else(|| {
        FhirError::BadRequest(vec![
            Issue::error(IssueType::Required, "every entry of a batch or transaction needs a request (bdl-3)")
                .at(format!("Bundle.entry[{index}].request")),
        ])
    })?;
    let mut action = action(state, &request)?;
    if let Action::Patch { document, .. } = &mut action {
        let raw = resource.ok_or_else(|| {
            FhirError::BadRequest(vec![
                Issue::error(
                    IssueType::Required,
                    "a PATCH entry needs its patch as the resource (Parameters or Binary)",
                )
                .at(format!("Bundle.entry[{index}].resource")),
            ])
        })?;
        *document = Some(patch_document(raw.0.get().as_bytes())?);
        return Ok((action, None));
    }
    let resource = match (&action, resource) {
        (
            Action::Create { definition, .. }
            | Action::Update { definition, .. }
            | Action::ConditionalUpdate { definition, .. },
            Some(raw),
        ) => Some(parsed_for_write(state, definition, raw.0.get().as_bytes(), raw.1)?),
        (Action::Create { .. } | Action::Update { .. } | Action::ConditionalUpdate { .. }, None) => {
            return Err(FhirError::BadRequest(vec![
                Issue::error(IssueType::Required, format!("a {} entry needs a resource", request.method))
                    .at(format!("Bundle.entry[{index}].resource")),
            ]));
        }
        (_, _) => None,
    };
    if let (Action::Update { id, .. }, Some((body, _))) = (&action, &resource)
        && body.id.as_deref() != Some(id.as_str())
    {
        return Err(FhirError::BadRequest(vec![
            Issue::error(
                IssueType::Invalid,
                format!(
                    "the resource's id {:?} differs from the id '{id}' in request.url",
                    body.id.as_deref().unwrap_or("")
                ),
            )
            .at(format!("Bundle.entry[{index}].resource.id")),
        ]));
    }
    Ok((action, resource))
}

/// The patch a PATCH entry carries: a `Parameters` resource (FHIRPath Patch), or a `Binary`
/// whose `data` is a JSON Patch (`contentType` `application/json-patch+json`).
fn patch_document(resource: &[u8]) -> Result<PatchDocument, FhirError> {
    use base64::Engine;
    let value = crate::fhir::json::parse_strict(resource)?;
    match value.get("resourceType").and_then(Value::as_str) {
        Some("Parameters") => PatchDocument::read("application/fhir+json", resource),
        Some("Binary") => {
            let content_type = value.get("contentType").and_then(Value::as_str).unwrap_or("");
            let data = value.get("data").and_then(Value::as_str).unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| {
                FhirError::bad_request(IssueType::Value, format!("the Binary's data is not base64: {e}"))
            })?;
            PatchDocument::read(content_type, &bytes)
        }
        other => Err(FhirError::bad_request(
            IssueType::Invalid,
            format!("a PATCH entry's resource is a Parameters or a Binary, not {}", other.unwrap_or("(none)")),
        )),
    }
}

/// Reads `entry.request`: the interaction its method and URL name.
fn action(state: &AppState, request: &RawRequest) -> Result<Action, FhirError> {
    let url = request.url.trim();
    let url = url.strip_prefix(&*state.base_url).map_or(url, |rest| rest.trim_start_matches('/'));
    let url = url.trim_start_matches('/');
    let (path, condition) = match url.split_once('?') {
        Some((path, query)) => (path, Some(query.to_string())),
        None => (url, None),
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let if_match = match request.if_match.as_deref() {
        Some(value) => Some(parse_etag(value).ok_or_else(|| {
            FhirError::bad_request(IssueType::Value, format!("ifMatch '{value}' is not a version ETag such as W/\"3\""))
        })?),
        None => None,
    };
    let definition = |name: &str| super::resource_type(state, name);
    let unsupported = || {
        FhirError::bad_request(
            IssueType::NotSupported,
            format!(
                "{} {} is not an interaction a batch or transaction entry can ask for",
                request.method, request.url
            ),
        )
    };
    match (request.method.as_str(), segments.as_slice(), condition) {
        ("GET" | "HEAD", _, condition) => Ok(Action::Read {
            url: match condition {
                Some(query) => format!("{path}?{query}"),
                None => path.to_string(),
            },
            if_none_match: request.if_none_match.clone(),
            if_modified_since: request.if_modified_since.clone(),
        }),
        ("POST", [type_name], None) => Ok(Action::Create {
            definition: definition(type_name)?,
            condition: request
                .if_none_exist
                .as_deref()
                .map(|c| c.trim_start_matches(&format!("{type_name}?")).trim_start_matches('?').to_string()),
        }),
        ("PUT", [type_name, id], None) => {
            Ok(Action::Update { definition: definition(type_name)?, id: logical_id(id)?.to_string(), if_match })
        }
        ("PUT", [type_name], Some(condition)) => {
            Ok(Action::ConditionalUpdate { definition: definition(type_name)?, condition, if_match })
        }
        ("DELETE", [type_name, id], None) => {
            Ok(Action::Delete { definition: definition(type_name)?, id: logical_id(id)?.to_string() })
        }
        ("DELETE", [type_name], Some(condition)) => {
            Ok(Action::ConditionalDelete { definition: definition(type_name)?, condition })
        }
        ("PATCH", [type_name, id], None) => Ok(Action::Patch {
            definition: definition(type_name)?,
            id: logical_id(id)?.to_string(),
            if_match,
            document: None,
        }),
        _ => Err(unsupported()),
    }
}

/// Runs the write entries in `transaction`, in the specification's order; `resolve_full_urls`
/// (transactions) makes references to other entries' fullUrls point to the ids they get.
async fn apply_writes(
    state: &AppState,
    principal: &Principal,
    transaction: &mut dyn StoreTransaction,
    entries: &mut [Planned],
    resolve_full_urls: bool,
) -> Result<(), EntryFailure> {
    let failure = |entry: &Planned, error: FhirError| EntryFailure {
        index: entry.index,
        full_url: entry.full_url.clone(),
        error,
    };
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].action.phase(), i));
    // Deletes first, then decide the id of every create and update.
    let mut identities: HashMap<(String, String), usize> = HashMap::new();
    let mut replacements: HashMap<String, String> = HashMap::new();
    let mut conditionally_deleted: Vec<(String, String)> = Vec::new();
    for &i in &order {
        let entry = &mut entries[i];
        let resolved = resolve_target(state, principal, transaction, entry).await.map_err(|e| failure(entry, e))?;
        let Some(definition) = entry.action.definition() else { continue };
        if matches!(entry.action, Action::ConditionalDelete { .. }) {
            conditionally_deleted.extend(resolved.iter().map(|id| (definition.name.clone(), id.clone())));
        }
        for id in resolved {
            if let Some(other) = identities.insert((definition.name.clone(), id.clone()), entry.index) {
                return Err(failure(
                    entry,
                    FhirError::bad_request(
                        IssueType::Duplicate,
                        format!(
                            "{}/{id} is also written by Bundle.entry[{other}]; a transaction may touch a resource once",
                            definition.name
                        ),
                    ),
                ));
            }
        }
        if let Some(id) = &entry.id
            && !entry.full_url.is_empty()
            && entry.resource.is_some()
        {
            replacements.insert(entry.full_url.clone(), format!("{}/{id}", definition.name));
        }
    }
    if !resolve_full_urls {
        replacements.clear();
    }
    // Creates and updates are prepared one by one (rules, index rows, links), then written
    // together; patches, which read what they change, follow one by one.
    let mut batch: Vec<(usize, WriteMode)> = Vec::new();
    let mut prepared = Vec::new();
    let mut patches = Vec::new();
    for &i in &order {
        let entry = &mut entries[i];
        if matches!(entry.action, Action::Patch { .. }) {
            patches.push(i);
            continue;
        }
        if entry.matched_existing || entry.resource.is_none() {
            continue;
        }
        resolve_references(state, principal, transaction, entry, &mut replacements)
            .await
            .map_err(|e| failure(entry, e))?;
        let definition = entry.action.definition().expect("writes name a type");
        let mode = match &entry.action {
            Action::Create { .. } => WriteMode::Create,
            Action::Update { if_match, .. } | Action::ConditionalUpdate { if_match, .. } => {
                WriteMode::Update { if_match: *if_match }
            }
            _ => continue,
        };
        let (resource, value) = entry.resource.as_mut().expect("checked above");
        let parts = prepare_resource(state, transaction, &definition.name, resource, value, mode)
            .await
            .map_err(|e| failure(entry, e))?;
        batch.push((i, mode));
        prepared.push(parts);
    }
    let requests: Vec<_> = batch
        .iter()
        .zip(prepared)
        .map(|(&(i, mode), parts)| {
            let entry = &entries[i];
            let definition = entry.action.definition().expect("writes name a type");
            let id = entry.id.as_deref().expect("every write has its id by now");
            let (resource, _) = entry.resource.as_ref().expect("checked above");
            write_request(&definition.name, id, resource, mode, parts)
        })
        .collect();
    let outcomes = transaction.write_batch(&requests).await.map_err(|e| {
        let entry = &entries[batch[e.index.unwrap_or(0)].0];
        failure(entry, e.error.into())
    })?;
    drop(requests);
    for (&(i, _), outcome) in batch.iter().zip(outcomes) {
        let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
        entries[i].result = Some(EntryResult::written(state, status, outcome.record));
    }
    for i in patches {
        let entry = &mut entries[i];
        if let Action::Patch { definition, id, if_match, document: Some(document) } = &entry.action {
            let outcome = patch::patch_in(state, transaction, definition, id, document, *if_match)
                .await
                .map_err(|e| failure(entry, e))?;
            entry.result = Some(EntryResult::written(state, StatusCode::OK, outcome.record));
        }
    }
    // What each entry wrote must be within the token's reach (its patients, its granular
    // filters, its role's content rules): checked over the transaction's own rows.
    for entry in entries.iter() {
        let (Some((definition, interaction)), Some(id), Some(EntryResult { record: Some(record), .. })) =
            (entry.action.permission(), &entry.id, &entry.result)
        else {
            continue;
        };
        if entry.matched_existing || record.deleted {
            continue;
        }
        policy::ensure_left_within_reach(
            state,
            transaction,
            principal,
            &definition.name,
            id,
            interaction,
            record.json.as_deref(),
        )
        .await
        .map_err(|e| failure(entry, e))?;
    }
    // Integrity is checked once all entries are written: entries may refer to one another in
    // any order, and a delete may be matched by an update that drops the reference.
    let mut written = Vec::new();
    let mut deleted = Vec::new();
    for entry in entries.iter() {
        let Some(definition) = entry.action.definition() else { continue };
        match (&entry.action, &entry.id) {
            (Action::Delete { .. }, Some(id)) => deleted.push((definition.name.clone(), id.clone())),
            (Action::ConditionalDelete { .. }, _) => {}
            (_, Some(id)) if !entry.matched_existing => written.push((definition.name.clone(), id.clone())),
            _ => {}
        }
    }
    deleted.extend(conditionally_deleted);
    integrity::verify(state, transaction, &written, &deleted).await.map_err(|violation| {
        let culprit = entries.iter().find(|e| {
            e.id.as_deref() == Some(violation.id.as_str())
                && e.action.definition().is_some_and(|d| d.name == violation.resource_type)
        });
        match culprit {
            Some(entry) => failure(entry, violation.error),
            None => EntryFailure { index: 0, full_url: String::new(), error: violation.error },
        }
    })?;
    Ok(())
}

/// Deletes (for delete entries) or decides the id an entry writes, answering the ids it touches.
async fn resolve_target(
    state: &AppState,
    principal: &Principal,
    transaction: &mut dyn StoreTransaction,
    entry: &mut Planned,
) -> Result<Vec<String>, FhirError> {
    match &entry.action {
        Action::Delete { definition, id } => {
            policy::ensure_reachable_in(state, transaction, principal, &definition.name, id, Interaction::Delete)
                .await?;
            let outcome = delete::delete_one(state, transaction, &definition.name, id).await?;
            entry.id = Some(id.clone());
            entry.result = Some(EntryResult::written(state, StatusCode::NO_CONTENT, outcome.record));
            Ok(vec![id.clone()])
        }
        Action::ConditionalDelete { definition, condition } => {
            let ids = delete::delete_matching(state, transaction, principal, definition, condition).await?;
            entry.result = Some(EntryResult {
                status: StatusCode::NO_CONTENT,
                location: None,
                etag: None,
                last_modified: None,
                record: None,
                body: None,
                outcome: None,
            });
            Ok(ids)
        }
        Action::Create { definition, condition: Some(condition) } => {
            let matched =
                conditional::matching_ids(state, transaction, principal, Interaction::Create, definition, condition, 2)
                    .await?;
            match matched.as_slice() {
                [] => {
                    entry.id = Some(new_id());
                    Ok(vec![])
                }
                [existing] => {
                    // The match is answered with its content, which the token must be able to read.
                    policy::ensure_reachable_in(
                        state,
                        transaction,
                        principal,
                        &definition.name,
                        existing,
                        Interaction::Read,
                    )
                    .await?;
                    let record = transaction
                        .read_current(&definition.name, existing)
                        .await?
                        .ok_or_else(|| FhirError::internal("a matched resource vanished inside its transaction"))?;
                    entry.id = Some(existing.clone());
                    entry.matched_existing = true;
                    entry.result = Some(EntryResult::written(state, StatusCode::OK, record));
                    Ok(vec![existing.clone()])
                }
                _ => Err(conditional::several_match(definition, condition)),
            }
        }
        Action::Create { condition: None, .. } => {
            entry.id = Some(new_id());
            Ok(vec![])
        }
        Action::Update { definition, id, .. } | Action::Patch { definition, id, .. } => {
            policy::ensure_reachable_in(state, transaction, principal, &definition.name, id, Interaction::Update)
                .await?;
            entry.id = Some(id.clone());
            Ok(vec![id.clone()])
        }
        Action::ConditionalUpdate { definition, condition, .. } => {
            let body_id = entry.resource.as_ref().and_then(|(body, _)| body.id.clone());
            let id =
                update::conditional_target(state, transaction, principal, definition, condition, body_id.as_deref())
                    .await?;
            policy::ensure_reachable_in(state, transaction, principal, &definition.name, &id, Interaction::Update)
                .await?;
            entry.id = Some(id.clone());
            Ok(vec![id])
        }
        Action::Read { .. } | Action::Refused => Ok(vec![]),
    }
}

/// Points the entry's references at what they name: other entries' fullUrls (in a
/// transaction), and conditional references `Type?search`, which must match exactly one
/// resource. A `urn:` reference that names no entry is an error.
async fn resolve_references(
    state: &AppState,
    principal: &Principal,
    transaction: &mut dyn StoreTransaction,
    entry: &mut Planned,
    replacements: &mut HashMap<String, String>,
) -> Result<(), FhirError> {
    let (body, value) = entry.resource.as_mut().expect("only entries with a resource");
    let references: Vec<String> = json::references(value).into_iter().map(str::to_string).collect();
    let mut needed = false;
    for reference in references {
        if replacements.contains_key(&reference) {
            needed = true;
            continue;
        }
        if reference.starts_with("urn:uuid:") || reference.starts_with("urn:oid:") {
            return Err(FhirError::bad_request(
                IssueType::NotFound,
                format!("the reference '{reference}' names no entry's fullUrl in this Bundle"),
            ));
        }
        if let Some((type_name, condition)) = reference.split_once('?')
            && !type_name.contains('/')
        {
            let definition = super::resource_type(state, type_name)?;
            // The reference is a search whose answer is written into the entry: the token's
            // search reach bounds it.
            let matched =
                conditional::matching_ids(state, transaction, principal, Interaction::Search, definition, condition, 2)
                    .await?;
            let target = match matched.as_slice() {
                [id] => format!("{type_name}/{id}"),
                [] => {
                    return Err(FhirError::PreconditionFailed(format!(
                        "the conditional reference '{reference}' matches no {type_name}"
                    )));
                }
                _ => {
                    return Err(FhirError::PreconditionFailed(format!(
                        "the conditional reference '{reference}' matches more than one {type_name}"
                    )));
                }
            };
            replacements.insert(reference, target);
            needed = true;
        }
    }
    if needed {
        body.rewrite_references(replacements);
        json::rewrite_references(value, replacements);
    }
    Ok(())
}

/// Answers a GET entry through the API's own routes.
async fn read_entry(
    reads: &Router,
    principal: &Principal,
    url: &str,
    if_none_match: Option<&str>,
    if_modified_since: Option<&str>,
) -> EntryResult {
    let mut request = Request::builder()
        .method("GET")
        .uri(format!("/{url}"))
        .header(header::ACCEPT, FHIR_JSON)
        .extension(principal.clone());
    if let Some(value) = if_none_match {
        request = request.header(header::IF_NONE_MATCH, value);
    }
    if let Some(value) = if_modified_since {
        request = request.header(header::IF_MODIFIED_SINCE, value);
    }
    let Ok(request) = request.body(axum::body::Body::empty()) else {
        return EntryResult::failed(&FhirError::bad_request(IssueType::Invalid, format!("'{url}' is not a valid URL")));
    };
    let response = match reads.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let (location, etag, last_modified) = {
        let header_text =
            |name: header::HeaderName| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        (header_text(header::CONTENT_LOCATION), header_text(header::ETAG), header_text(header::LAST_MODIFIED))
    };
    let last_modified = last_modified
        .and_then(|date| chrono::DateTime::parse_from_rfc2822(&date).ok())
        .map(|date| date.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let body = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
        Ok(bytes) => bytes.to_vec(),
        Err(e) => return EntryResult::failed(&FhirError::internal(e)),
    };
    let body = (!body.is_empty()).then_some(body);
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        EntryResult { status, location, etag, last_modified, record: None, body, outcome: None }
    } else {
        EntryResult { status, location: None, etag: None, last_modified: None, record: None, body: None, outcome: body }
    }
}

fn status_line(status: StatusCode) -> String {
    format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or(""))
}
