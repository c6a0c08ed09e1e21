//! The EHR side of a SMART launch (SMART App Launch 2.2 "EHR launch"): a signed-in clinician
//! finds a patient (and optionally an encounter) and launches a registered app, which is sent
//! to its launch URL with `iss` and an opaque, single-use `launch` id. A user whose role reaches
//! only the patients in their care finds and picks only those. Also the page where a user sees
//! and revokes the apps they authorised.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

use super::pages::{
    self, AppRow, ConnectedApp, ConnectedAppsPage, EncounterRow, LauncherPage, PatientRow, SelectedPatient,
};
use super::scopes::{ScopeSet, describe};
use super::secrets::{digest, random_token};
use super::session::{self, csrf_matches, error_page, page_headers};
use super::store::{SecretKind, SecretRecord};
use super::tokens::Grant;
use crate::access::TenantId;
use crate::app::AppState;
use crate::rest::QueryParams;
use crate::search::query;

/// A launch id is good for this long: the app must start its authorization by then.
const LAUNCH_LIFETIME_SECS: i64 = 300;
/// How many matches the patient search shows.
const PATIENT_MATCHES: u32 = 20;

async fn search(state: &AppState, tenant: &str, type_name: &str, params: Vec<(String, String)>) -> Vec<Value> {
    let (Some(definition), Ok(tenant)) = (state.registry.resource(type_name), TenantId::parse(tenant)) else {
        return Vec::new();
    };
    let settings = &state.settings;
    let query = match query::compile(
        definition,
        &QueryParams(params),
        &state.base_url,
        true,
        settings.max_page_size,
        settings.default_page_size,
    ) {
        Ok(query) => query,
        Err(_) => return Vec::new(),
    };
    match state.store.search(&tenant, type_name, &query).await {
        Ok(records) => {
            records.into_iter().filter_map(|r| r.json.and_then(|json| serde_json::from_slice(&json).ok())).collect()
        }
        Err(err) => {
            tracing::warn!(error = %err, "launcher search failed");
            Vec::new()
        }
    }
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_string)
}

fn to_row(patient: &Value) -> PatientRow {
    let name = patient["name"]
        .as_array()
        .and_then(|names| names.first())
        .map(|name| {
            let given: Vec<&str> =
                name["given"].as_array().map(|g| g.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let family = name["family"].as_str().unwrap_or("");
            format!("{} {family}", given.join(" ")).trim().to_string()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "(no name)".into());
    let mrn = patient["identifier"].as_array().and_then(|ids| {
        ids.iter()
            .find(|id| id["type"]["coding"].as_array().is_some_and(|c| c.iter().any(|c| c["code"] == "MR")))
            .or_else(|| ids.first())
            .and_then(|id| text(&id["value"]))
    });
    PatientRow {
        id: patient["id"].as_str().unwrap_or("").to_string(),
        name,
        birth_date: text(&patient["birthDate"]),
        gender: text(&patient["gender"]),
        mrn,
    }
}

/// The patients a user may find and pick (the picker, the launcher).
#[derive(Debug, Clone)]
pub enum Pickable {
    /// Every patient of the clinic.
    All,
    /// Only these: a role limited to assigned patients (`assigned_patients_roles`).
    Only(Arc<[String]>),
}

impl Pickable {
    fn allows(&self, patient: &str) -> bool {
        match self {
            Pickable::All => true,
            Pickable::Only(patients) => patients.iter().any(|p| p == patient),
        }
    }
}

/// What `user` may pick: the patients in their care when their role is limited to those (the
/// same care relationships the FHIR API confines them to), unless they broke the glass.
pub async fn pickable(state: &AppState, user: &super::store::UserRecord, broke_the_glass: bool) -> Pickable {
    if broke_the_glass || !state.settings.assigned_patients_only(&user.role) {
        return Pickable::All;
    }
    let (Ok(tenant), Some(clinician)) = (TenantId::parse(&user.tenant), user.fhir_user.as_deref()) else {
        return Pickable::Only(Arc::from([]));
    };
    match state.assignments.patients_of(&state.store, &tenant, clinician).await {
        Ok(patients) => Pickable::Only(patients),
        Err(e) => {
            tracing::warn!(error = %e, "the patients in a user's care could not be read");
            Pickable::Only(Arc::from([]))
        }
    }
}

/// Patients of `tenant` matching the given name, birth date and MRN (any given may be empty),
/// among those `pickable`.
pub async fn find_patients(
    state: &AppState,
    tenant: &str,
    pickable: &Pickable,
    name: &str,
    birth_date: &str,
    mrn: &str,
) -> Vec<PatientRow> {
    let mut params = vec![("_count".to_string(), PATIENT_MATCHES.to_string())];
    if let Pickable::Only(patients) = pickable {
        if patients.is_empty() {
            return Vec::new();
        }
        params.push(("_id".to_string(), patients.join(",")));
    }
    for (param, value) in [("name", name), ("birthdate", birth_date), ("identifier", mrn)] {
        if !value.is_empty() {
            params.push((param.to_string(), value.to_string()));
        }
    }
    search(state, tenant, "Patient", params).await.iter().map(to_row).collect()
}

/// One patient of `tenant`, if it exists and may be picked.
pub async fn patient_row(state: &AppState, tenant: &str, pickable: &Pickable, id: &str) -> Option<PatientRow> {
    if !pickable.allows(id) {
        return None;
    }
    let found = search(state, tenant, "Patient", vec![("_id".into(), id.to_string())]).await;
    found.first().map(to_row)
}

/// Whether `encounter` is one of `patient`'s.
pub async fn encounter_of(state: &AppState, tenant: &str, patient: &str, encounter: &str) -> bool {
    let params = vec![("_id".to_string(), encounter.to_string()), ("patient".to_string(), patient.to_string())];
    !search(state, tenant, "Encounter", params).await.is_empty()
}

/// The patient's encounters, newest first.
pub async fn encounters(state: &AppState, tenant: &str, patient: &str) -> Vec<EncounterRow> {
    let params = vec![
        ("patient".to_string(), patient.to_string()),
        ("_sort".to_string(), "-date".to_string()),
        ("_count".to_string(), "20".to_string()),
    ];
    search(state, tenant, "Encounter", params)
        .await
        .iter()
        .map(|encounter| {
            let date = encounter["period"]["start"].as_str().unwrap_or("").chars().take(10).collect::<String>();
            let kind = encounter["class"]["display"]
                .as_str()
                .or_else(|| encounter["class"]["code"].as_str())
                .or_else(|| encounter["type"][0]["text"].as_str())
                .unwrap_or("encounter");
            EncounterRow {
                id: encounter["id"].as_str().unwrap_or("").to_string(),
                label: format!("{date} {kind}").trim().to_string(),
            }
        })
        .collect()
}

fn query_map(raw: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect()
}

/// `GET /auth/launcher`: search patients, pick one, see the apps that can be launched.
pub async fn launcher_page(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let Some(session) = session::current(&state, &headers).await else {
        return Redirect::to("/auth/login?next=/auth/launcher").into_response();
    };
    if !super::authorize::may_find_patients(&session) {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not available",
            "The app launcher is for clinic staff who may open patients' records.",
        );
    }
    let query = query_map(raw.as_deref());
    let field = |name: &str| query.get(name).map(|v| v.trim().to_string()).unwrap_or_default();
    let (name, birth_date, mrn) = (field("name"), field("birthdate"), field("mrn"));
    let tenant = session.user.tenant.clone();
    let pickable = pickable(&state, &session.user, false).await;
    let results = if name.is_empty() && birth_date.is_empty() && mrn.is_empty() {
        Vec::new()
    } else {
        find_patients(&state, &tenant, &pickable, &name, &birth_date, &mrn).await
    };
    let selected = match query.get("patient") {
        Some(id) => match patient_row(&state, &tenant, &pickable, id).await {
            Some(row) => Some(SelectedPatient {
                encounters: encounters(&state, &tenant, &row.id).await,
                id: row.id,
                name: row.name,
                birth_date: row.birth_date,
                mrn: row.mrn,
            }),
            None => None,
        },
        None => None,
    };
    let apps = state
        .store
        .clients()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c.status == "active" && c.tenant == tenant && c.launch_url.is_some())
        .map(|c| AppRow { client_id: c.client_id, name: c.name })
        .collect();
    let page = LauncherPage {
        user_display: session.user.display_name.clone(),
        csrf: session.csrf.clone(),
        search_action: "/auth/launcher".into(),
        name,
        birth_date,
        mrn,
        results,
        selected,
        apps,
        launch_action: "/auth/launcher".into(),
    };
    let mut response = Html(pages::render_launcher(&page)).into_response();
    page_headers(response.headers_mut());
    response
}

/// `POST /auth/launcher`: launches an app for the chosen patient (and encounter).
pub async fn launch(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let Some(session) = session::current(&state, &headers).await else {
        return Redirect::to("/auth/login?next=/auth/launcher").into_response();
    };
    if !csrf_matches(&session, &form) {
        return error_page(StatusCode::FORBIDDEN, "Launch refused", "The form did not come from this site.");
    }
    if !super::authorize::may_find_patients(&session) {
        return error_page(StatusCode::FORBIDDEN, "Not available", "Your role cannot open patients' records.");
    }
    let tenant = session.user.tenant.clone();
    let client = match state.store.client(form.get("client_id").map(String::as_str).unwrap_or("")).await {
        Ok(Some(client)) if client.status == "active" && client.tenant == tenant && client.launch_url.is_some() => {
            client
        }
        _ => return error_page(StatusCode::BAD_REQUEST, "Unknown app", "That app cannot be launched here."),
    };
    let Some(patient) = form.get("patient").filter(|p| !p.is_empty()) else {
        return error_page(StatusCode::BAD_REQUEST, "No patient", "Choose a patient before launching an app.");
    };
    if patient_row(&state, &tenant, &pickable(&state, &session.user, false).await, patient).await.is_none() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No such patient",
            "The chosen patient does not exist, or is not in your care.",
        );
    }
    let encounter = form.get("encounter").filter(|e| !e.is_empty()).cloned();
    if let Some(encounter) = &encounter
        && !encounter_of(&state, &tenant, patient, encounter).await
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            "No such visit",
            "The chosen encounter is not one of the patient's.",
        );
    }
    let context = Grant { patient: Some(patient.clone()), encounter, tenant: tenant.clone(), ..Grant::default() };
    let launch = random_token(24);
    let record = SecretRecord {
        family: random_token(16),
        client_id: client.client_id.clone(),
        user_id: Some(session.user.user_id.clone()),
        grant_json: serde_json::to_string(&context).unwrap_or_default(),
        expires_at: chrono::Utc::now().timestamp() + LAUNCH_LIFETIME_SECS,
    };
    if let Err(err) = state.store.insert_secret(&digest(&launch), SecretKind::Launch, &record).await {
        tracing::error!(error = %err, "storing a launch failed");
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Launch failed", "Please try again.");
    }
    let launch_url = client.launch_url.unwrap_or_default();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("iss", &state.auth.issuer)
        .append_pair("launch", &launch)
        .finish();
    let separator = if launch_url.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{launch_url}{separator}{query}")).into_response()
}

async fn apps_page(state: &AppState, session: &session::Session, notice: Option<String>) -> Response {
    let patient_facing = session.user.fhir_user.as_deref().is_some_and(|r| r.starts_with("Patient/"));
    let mut apps = Vec::new();
    for grant in state.store.grants(&session.user.user_id).await.unwrap_or_default() {
        let name = match state.store.client(&grant.client_id).await {
            Ok(Some(client)) => client.name,
            _ => grant.client_id.clone(),
        };
        let scopes = ScopeSet::parse(&grant.scopes).unwrap_or_default();
        apps.push(ConnectedApp {
            client_id: grant.client_id,
            name,
            granted: chrono::DateTime::from_timestamp(grant.granted_at, 0)
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default(),
            scopes: scopes.iter().map(|s| describe(s, patient_facing)).collect(),
        });
    }
    let page = ConnectedAppsPage {
        user_display: session.user.display_name.clone(),
        csrf: session.csrf.clone(),
        revoke_action: "/auth/apps".into(),
        apps,
        notice,
    };
    let mut response = Html(pages::render_connected_apps(&page)).into_response();
    page_headers(response.headers_mut());
    response
}

/// `GET /auth/apps`: the apps the signed-in user authorised.
pub async fn connected_apps(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::current(&state, &headers).await {
        Some(session) => apps_page(&state, &session, None).await,
        None => Redirect::to("/auth/login?next=/auth/apps").into_response(),
    }
}

/// `POST /auth/apps`: revokes an app's access: its grant, refresh tokens and access tokens.
pub async fn revoke_app(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let Some(session) = session::current(&state, &headers).await else {
        return Redirect::to("/auth/login?next=/auth/apps").into_response();
    };
    if !csrf_matches(&session, &form) {
        return error_page(StatusCode::FORBIDDEN, "Request refused", "The form did not come from this site.");
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let revoked = async {
        state.store.revoke_user_client(&session.user.user_id, &client_id, now).await?;
        state.store.delete_grant(&session.user.user_id, &client_id).await
    };
    if let Err(err) = revoked.await {
        tracing::error!(error = %err, "revoking an app failed");
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Revoking failed", "Please try again.");
    }
    state.auth.reload_revocations();
    apps_page(&state, &session, Some("Access was revoked.".into())).await
}
