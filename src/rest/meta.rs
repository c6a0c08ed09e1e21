//! `$meta`, `$meta-add` and `$meta-delete` (FHIR R4 resource-operation-meta.html,
//! resource-operation-meta-add.html, resource-operation-meta-delete.html): the profiles, tags and
//! security labels of a resource, of a type or of the whole server, and changing them on a
//! resource. As the specification says, adding or removing them does not make a new version:
//! the current version's `meta` is changed in place (and its search index with it).

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::operation::{OperationInput, parameters_response};
use super::{FhirBody, QueryParams, logical_id, resource_type};
use crate::access::Principal;
use crate::access::policy::{self, Interaction, Restriction};
use crate::app::AppState;
use crate::error::{FhirError, Issue, IssueType};
use crate::fhir::json::ResourceBody;
use crate::store::MetaInUse;

/// `[base]/$meta`.
pub async fn system_meta(
    State(state): State<AppState>,
    principal: Principal,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    QueryParams::parse(query.as_deref()).only(&[])?;
    // The tags in use across the clinic describe resources of every type: only a token that
    // may search everything sees them.
    if principal.grant().is_some() {
        for type_name in state.registry.resources().map(|t| t.name.clone()) {
            if principal.permit(&type_name, Interaction::Search)? != Restriction::Unrestricted {
                return Err(FhirError::Forbidden(format!("the access token may only partly see {type_name}")));
            }
        }
    }
    let in_use = state.store.meta_in_use(&principal.tenant, None).await?;
    Ok(meta_response(meta_of(&in_use)))
}

/// `[base]/[type]/$meta`.
pub async fn type_meta(
    State(state): State<AppState>,
    principal: Principal,
    Path(type_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    QueryParams::parse(query.as_deref()).only(&[])?;
    if principal.permit(&definition.name, Interaction::Search)? != Restriction::Unrestricted {
        return Err(FhirError::Forbidden(format!("the access token may only partly see {}", definition.name)));
    }
    let in_use = state.store.meta_in_use(&principal.tenant, Some(&definition.name)).await?;
    Ok(meta_response(meta_of(&in_use)))
}

/// `[base]/[type]/[id]/$meta`.
pub async fn instance_meta(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, FhirError> {
    let definition = resource_type(&state, &type_name)?;
    let id = logical_id(&id)?;
    QueryParams::parse(query.as_deref()).only(&[])?;
    principal.permit(&definition.name, Interaction::Read)?;
    let record = super::live(state.store.read_current(&principal.tenant, &definition.name, id).await?, &type_name, id)?;
    policy::ensure_visible(&state, &principal, &definition.name, id, Interaction::Read).await?;
    let (body, _) = ResourceBody::from_stored(record.json.as_deref().unwrap_or_default())?;
    Ok(meta_response(Value::Object(body.meta().cloned().unwrap_or_default())))
}

/// `POST [base]/[type]/[id]/$meta-add`.
pub async fn meta_add(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    change_meta(&state, &principal, &type_name, &id, query.as_deref(), &body, Change::Add).await
}

/// `POST [base]/[type]/[id]/$meta-delete`.
pub async fn meta_delete(
    State(state): State<AppState>,
    principal: Principal,
    Path((type_name, id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    change_meta(&state, &principal, &type_name, &id, query.as_deref(), &body, Change::Delete).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Add,
    Delete,
}

async fn change_meta(
    state: &AppState,
    principal: &Principal,
    type_name: &str,
    id: &str,
    query: Option<&str>,
    body: &[u8],
    change: Change,
) -> Result<Response, FhirError> {
    let definition = resource_type(state, type_name)?;
    let id = logical_id(id)?;
    QueryParams::parse(query).only(&[])?;
    let input = OperationInput::read(body)?;
    let Some(requested) = input.parameter("meta").and_then(|p| p.get("valueMeta")).and_then(Value::as_object) else {
        return Err(FhirError::BadRequest(vec![
            Issue::error(IssueType::Required, "send a Parameters resource with a 'meta' parameter (valueMeta)")
                .at("Parameters.parameter"),
        ]));
    };
    policy::ensure_writable(state, principal, &definition.name, Interaction::Update, Some(id), None).await?;
    let mut transaction = state.store.begin(&principal.tenant).await?;
    transaction.lock(&format!("meta|{}/{id}", definition.name)).await?;
    let record = super::live(transaction.read_current(&definition.name, id).await?, type_name, id)?;
    let (mut resource, mut value) = ResourceBody::from_stored(record.json.as_deref().unwrap_or_default())?;
    let mut meta = resource.meta().cloned().unwrap_or_default();
    apply(&mut meta, requested, change);
    value["meta"] = Value::Object(meta.clone());
    crate::fhir::validation::validate(state.registry, &value)?;
    resource.set_meta(Some(meta.clone()));
    let json = resource.render_with_meta(Some(id), &meta);
    let index = state.sensitive.index_stored(state.registry, &definition.name, &value)?;
    transaction.rewrite_current(&definition.name, id, record.version, json, index).await?;
    transaction.commit().await?;
    Ok(meta_response(Value::Object(meta)))
}

/// Adds or removes the requested profiles (by URL), tags and security labels (by system and
/// code; version and display are ignored when matching). Each stays a set.
fn apply(meta: &mut Map<String, Value>, requested: &Map<String, Value>, change: Change) {
    fn coding_key(coding: &Value) -> (Option<&str>, Option<&str>) {
        (coding.get("system").and_then(Value::as_str), coding.get("code").and_then(Value::as_str))
    }
    for member in ["profile", "tag", "security"] {
        let Some(Value::Array(items)) = requested.get(member) else { continue };
        let mut current: Vec<Value> = meta.get(member).and_then(Value::as_array).cloned().unwrap_or_default();
        for item in items {
            let same = |existing: &Value| match member {
                "profile" => existing == item,
                _ => coding_key(existing) == coding_key(item),
            };
            match change {
                Change::Add if !current.iter().any(same) => current.push(item.clone()),
                Change::Add => {}
                Change::Delete => current.retain(|existing| !same(existing)),
            }
        }
        if current.is_empty() {
            meta.remove(member);
        } else {
            meta.insert(member.to_string(), Value::Array(current));
        }
    }
}

fn meta_of(in_use: &MetaInUse) -> Value {
    let codings = |pairs: &[(Option<String>, Option<String>)]| -> Vec<Value> {
        pairs
            .iter()
            .map(|(system, code)| {
                let mut coding = json!({});
                if let Some(system) = system {
                    coding["system"] = json!(system);
                }
                if let Some(code) = code {
                    coding["code"] = json!(code);
                }
                coding
            })
            .collect()
    };
    let mut meta = Map::new();
    if !in_use.profiles.is_empty() {
        meta.insert("profile".into(), json!(in_use.profiles));
    }
    if !in_use.tags.is_empty() {
        meta.insert("tag".into(), Value::Array(codings(&in_use.tags)));
    }
    if !in_use.security.is_empty() {
        meta.insert("security".into(), Value::Array(codings(&in_use.security)));
    }
    Value::Object(meta)
}

fn meta_response(meta: Value) -> Response {
    parameters_response(&[("return", "valueMeta", meta)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sets_matched_by_system_and_code() {
        let mut meta = json!({"versionId": "2", "tag": [{"system": "s", "code": "a", "display": "A"}]});
        let meta = meta.as_object_mut().unwrap();
        let add = json!({"tag": [{"system": "s", "code": "a", "display": "other"}, {"system": "s", "code": "b"}],
                         "profile": ["http://p"]});
        apply(meta, add.as_object().unwrap(), Change::Add);
        assert_eq!(meta["tag"].as_array().unwrap().len(), 2);
        assert_eq!(meta["tag"][0]["display"], "A", "an existing tag is kept as it was");
        assert_eq!(meta["profile"], json!(["http://p"]));
        let remove = json!({"tag": [{"system": "s", "code": "a"}], "profile": ["http://p"]});
        apply(meta, remove.as_object().unwrap(), Change::Delete);
        assert_eq!(meta["tag"], json!([{"system": "s", "code": "b"}]));
        assert!(!meta.contains_key("profile"));
        assert_eq!(meta["versionId"], "2", "the version is untouched");
    }
}
