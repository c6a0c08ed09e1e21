//! The authorization endpoint (RFC 6749 §4.1, SMART App Launch 2.2 "Obtain authorization code"),
//! GET and POST: checks the app and its exact redirect URI (errors before that point are shown,
//! never redirected), `aud`, PKCE S256 and the scopes; signs the user in; resolves the launch
//! context (an EHR `launch`, the picker for a clinician's `launch/patient`, a patient's own
//! record); asks consent; and redirects back with a single-use code that lives 60 seconds.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::pages::{self, ConsentPage, PatientPickerPage, ScopeChoice};
use super::scopes::{Context, Scope, ScopeSet, describe};
use super::secrets::{digest, random_token};
use super::session::{self, Session, csrf_matches, error_page, page_headers};
use super::store::{ClientRecord, Redeemed, SecretKind, SecretRecord};
use super::token::CODE_LIFETIME_SECS;
use super::tokens::Grant;
use crate::app::AppState;

/// The parameters of an authorization request, in the order they are carried through the pages.
const REQUEST_PARAMETERS: [&str; 12] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "aud",
    "code_challenge",
    "code_challenge_method",
    "launch",
    "nonce",
    "purpose_of_use",
    "break_glass_reason",
];

type Form = Vec<(String, String)>;

fn first<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// A request whose app and redirect URI are known good: from here on, errors go back to the app.
struct Checked {
    client: ClientRecord,
    redirect_uri: String,
    state: Option<String>,
    requested: ScopeSet,
    code_challenge: String,
    launch: Option<String>,
    nonce: Option<String>,
    /// The stated purpose of use (v3 ActReason) and, with `BTG`, the reason.
    purpose_of_use: Option<String>,
    break_glass_reason: Option<String>,
    /// The request's own parameters, to carry through the sign-in, picker and consent forms.
    carried: Form,
}

/// Either shown to the user (the app or its redirect URI cannot be trusted with a redirect) or
/// sent back to the app's redirect URI (RFC 6749 §4.1.2.1).
type Refusal = Box<Response>;

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{redirect_uri}{separator}{}", query.finish())).into_response()
}

fn refuse(checked_uri: &str, state: Option<&str>, error: &str, description: &str) -> Refusal {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    Box::new(redirect_with(checked_uri, &pairs))
}

async fn check(state: &AppState, form: &Form) -> Result<Checked, Refusal> {
    let page = |status, title: &str, message: &str| Box::new(error_page(status, title, message));
    let client_id = first(form, "client_id").unwrap_or("");
    let client = match state.store.client(client_id).await {
        Ok(Some(client)) if client.status == "active" => client,
        Ok(_) => {
            return Err(page(
                StatusCode::BAD_REQUEST,
                "Unknown app",
                "The app that sent you here is not registered with this server, or is not approved yet.",
            ));
        }
        Err(err) => {
            tracing::error!(error = %err, "reading a client failed");
            return Err(page(StatusCode::INTERNAL_SERVER_ERROR, "Server error", "Please try again later."));
        }
    };
    let redirect_uri = first(form, "redirect_uri").unwrap_or("");
    // Exact string match (RFC 6749 §3.1.2.3, OAuth security BCP §4.1): no prefixes, no wildcards.
    if !client.redirect_uris.iter().any(|registered| registered == redirect_uri) {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Wrong return address",
            "The app asked to return to an address it did not register. For your safety you were not sent there.",
        ));
    }
    let app_state = first(form, "state");
    let fail = |error, description: &str| Err(refuse(redirect_uri, app_state, error, description));
    if first(form, "response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let requested = match ScopeSet::parse(first(form, "scope").unwrap_or("")) {
        Ok(scopes) if !scopes.is_empty() => scopes,
        Ok(_) => return fail("invalid_scope", "scope is missing"),
        Err(err) => return fail("invalid_scope", &err.to_string()),
    };
    // `aud` names the FHIR server a token is for. A sign-in that asks only who the user is
    // (OpenID Connect: another system using Kiln as its identity provider) may leave it out.
    let identity_only = requested
        .iter()
        .all(|scope| matches!(scope, Scope::OpenId | Scope::FhirUser | Scope::Profile | Scope::Other(_)));
    let aud = first(form, "aud").map(|aud| aud.trim_end_matches('/'));
    if aud != Some(state.auth.issuer.as_str()) && !(identity_only && aud.is_none()) {
        return fail("invalid_request", "aud must be this server's FHIR base URL");
    }
    let code_challenge = first(form, "code_challenge").unwrap_or("");
    if first(form, "code_challenge_method") != Some("S256") || !super::pkce::is_valid_challenge(code_challenge) {
        return fail("invalid_request", "PKCE is required: code_challenge with code_challenge_method S256");
    }
    let launch = first(form, "launch").map(str::to_string);
    if requested.contains(&Scope::Launch) && launch.is_none() {
        return fail("invalid_request", "the launch scope needs the launch parameter of an EHR launch");
    }
    let purpose_of_use = first(form, "purpose_of_use").map(str::trim).filter(|p| !p.is_empty()).map(str::to_string);
    let break_glass_reason =
        first(form, "break_glass_reason").map(str::trim).filter(|r| !r.is_empty()).map(str::to_string);
    match (purpose_of_use.as_deref(), &break_glass_reason) {
        (Some(code), _) if !code.chars().all(|c| c.is_ascii_uppercase()) || code.len() > 20 => {
            return fail("invalid_request", "purpose_of_use is a v3 ActReason code, e.g. TREAT or BTG");
        }
        (Some("BTG"), None) => return fail("invalid_request", "purpose_of_use BTG needs a break_glass_reason"),
        (Some(code), Some(_)) if code != "BTG" => {
            return fail("invalid_request", "break_glass_reason goes with purpose_of_use BTG");
        }
        (None, Some(_)) => return fail("invalid_request", "break_glass_reason goes with purpose_of_use BTG"),
        _ => {}
    }
    let carried = REQUEST_PARAMETERS
        .iter()
        .filter_map(|name| first(form, name).map(|value| (name.to_string(), value.to_string())))
        .collect();
    Ok(Checked {
        redirect_uri: redirect_uri.to_string(),
        state: app_state.map(str::to_string),
        requested,
        code_challenge: code_challenge.to_string(),
        launch,
        nonce: first(form, "nonce").map(str::to_string),
        purpose_of_use,
        break_glass_reason,
        client,
        carried,
    })
}

fn query_form(raw: Option<&str>) -> Form {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect()
}

pub async fn authorize_get(State(state): State<AppState>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    authorize(&state, &headers, query_form(raw.as_deref())).await
}

/// POST authorize: an app's form post (SMART `authorize-post`), or the picker's choice.
pub async fn authorize_post(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    authorize(&state, &headers, form_urlencoded::parse(&body).into_owned().collect()).await
}

/// The scopes the signed-in user can grant this app: what it asked for, within its
/// registration, and within what the user's kind of account may hold.
fn grantable(checked: &Checked, user_is_patient: bool) -> ScopeSet {
    let ceiling = ScopeSet::parse(&checked.client.scopes).unwrap_or_default();
    checked
        .requested
        .narrow_to(&ceiling)
        .iter()
        .filter(|scope| match scope.as_resource() {
            Some(resource) => match resource.context {
                Context::Patient => true,
                Context::User => !user_is_patient,
                Context::System => false,
            },
            None => true,
        })
        .cloned()
        .collect()
}

/// The patient whose record the signed-in account is about: a patient's own, or the one a
/// related person (a parent, a carer) is related to. Clinicians have none.
async fn own_patient(state: &AppState, session: &Session) -> Option<String> {
    let reference = session.user.fhir_user.as_deref()?;
    if let Some(id) = reference.strip_prefix("Patient/") {
        return Some(id.to_string());
    }
    let id = reference.strip_prefix("RelatedPerson/")?;
    let tenant = crate::access::TenantId::parse(&session.user.tenant).ok()?;
    let record = state.store.read_current(&tenant, "RelatedPerson", id).await.ok()??;
    let related: serde_json::Value = serde_json::from_slice(record.json.as_deref()?).ok()?;
    related["patient"]["reference"].as_str()?.strip_prefix("Patient/").map(str::to_string)
}

/// Whether the account may look patients up (the picker, the launcher).
pub fn may_find_patients(session: &Session) -> bool {
    let role = session.user.role.as_str();
    !matches!(role, "patient" | "related-person")
        && crate::access::roles::allows(role, "Patient", crate::access::policy::Interaction::Search)
}

async fn authorize(state: &AppState, headers: &HeaderMap, form: Form) -> Response {
    let checked = match check(state, &form).await {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let Some(session) = session::current(state, headers).await else {
        let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&checked.carried).finish();
        return session::sign_in_page(
            state,
            &format!("/auth/authorize?{query}"),
            Some(checked.client.name.clone()),
            "",
            None,
        );
    };
    if session.user.tenant != checked.client.tenant {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not your clinic's app",
            "This app is registered with another clinic.",
        );
    }
    let patient_user = own_patient(state, &session).await;
    if patient_user.is_none() && matches!(session.user.role.as_str(), "patient" | "related-person") {
        return error_page(StatusCode::FORBIDDEN, "No record", "Your account is not linked to a patient's record.");
    }
    let chosen = first(&form, "patient").map(str::to_string);
    if chosen.is_some() && !csrf_matches(&session, &form.iter().cloned().collect()) {
        return error_page(StatusCode::FORBIDDEN, "Request refused", "The form did not come from this site.");
    }
    if chosen.is_some() && (patient_user.is_some() || !may_find_patients(&session)) {
        return error_page(StatusCode::FORBIDDEN, "Not allowed", "Your account cannot choose a patient.");
    }
    let needs_pick = checked.requested.contains(&Scope::LaunchPatient)
        && checked.launch.is_none()
        && patient_user.is_none()
        && chosen.is_none();
    if needs_pick {
        if !may_find_patients(&session) {
            return error_page(StatusCode::FORBIDDEN, "Not allowed", "Your role cannot open patients' records.");
        }
        return picker(state, &session, &checked, &form).await;
    }
    // An EHR launch names its patient: show the clinician whose record the app will open.
    let launched = match &checked.launch {
        Some(launch) => match state.store.unused_secret(&digest(launch), SecretKind::Launch).await {
            Ok(Some(record))
                if record.client_id == checked.client.client_id
                    && record.user_id.as_deref() == Some(session.user.user_id.as_str()) =>
            {
                serde_json::from_str::<Grant>(&record.grant_json).ok().and_then(|g| g.patient)
            }
            _ => None,
        },
        None => None,
    };
    let patient = patient_user.clone().or(chosen).or(launched);
    let scopes = grantable(&checked, patient_user.is_some());
    // The ticked boxes come back as `scope`: the request's own scope travels under another name.
    let mut hidden: Form =
        checked
            .carried
            .iter()
            .map(|(name, value)| {
                if name == "scope" { ("requested_scope".into(), value.clone()) } else { (name.clone(), value.clone()) }
            })
            .collect();
    if let Some(patient) = &patient {
        hidden.push(("patient".into(), patient.clone()));
    }
    let banner = match &patient {
        Some(id) => super::launcher::patient_row(state, &session.user.tenant, &super::launcher::Pickable::All, id)
            .await
            .map(|row| pages::PatientBanner { name: row.name, birth_date: row.birth_date, mrn: row.mrn }),
        None => None,
    };
    // A standalone launch asking for the encounter context: the user picks the visit.
    let encounters = match &patient {
        Some(id) if checked.requested.contains(&Scope::LaunchEncounter) && checked.launch.is_none() => {
            super::launcher::encounters(state, &session.user.tenant, id).await
        }
        _ => Vec::new(),
    };
    let page = ConsentPage {
        encounters,
        app_name: checked.client.name.clone(),
        app_uri: checked.client.launch_url.clone(),
        user_display: session.user.display_name.clone(),
        patient_facing: patient_user.is_some(),
        patient_banner: banner,
        scopes: scopes
            .iter()
            .map(|scope| ScopeChoice {
                value: scope.to_string(),
                description: describe(scope, patient_user.is_some()),
                required: false,
            })
            .collect(),
        action: "/auth/consent".into(),
        hidden,
        csrf: session.csrf.clone(),
    };
    let mut response = Html(pages::render_consent(&page)).into_response();
    page_headers(response.headers_mut());
    response
}

async fn picker(state: &AppState, session: &Session, checked: &Checked, form: &Form) -> Response {
    let field = |name| first(form, name).unwrap_or("").trim().to_string();
    let (name, birth_date, mrn) = (field("name"), field("birthdate"), field("mrn"));
    let searched = !(name.is_empty() && birth_date.is_empty() && mrn.is_empty());
    let pickable = super::launcher::pickable(state, &session.user, checked.break_glass_reason.is_some()).await;
    let results = if searched {
        super::launcher::find_patients(state, &session.user.tenant, &pickable, &name, &birth_date, &mrn).await
    } else {
        Vec::new()
    };
    let page = PatientPickerPage {
        action: "/auth/authorize".into(),
        hidden: checked.carried.clone(),
        csrf: session.csrf.clone(),
        name,
        birth_date,
        mrn,
        results,
        searched,
        user_display: session.user.display_name.clone(),
    };
    let mut response = Html(pages::render_patient_picker(&page)).into_response();
    page_headers(response.headers_mut());
    response
}

/// `POST /auth/consent`: the user's decision. Allow issues the code for the ticked scopes.
pub async fn consent(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form: Form = form_urlencoded::parse(&body).into_owned().collect();
    let ticked: Vec<String> = form.iter().filter(|(n, _)| n == "scope").map(|(_, v)| v.clone()).collect();
    // The whole request is checked again, with the scope it asked for at first.
    let request: Form =
        form.iter()
            .filter(|(name, _)| name != "scope")
            .map(|(name, value)| {
                if name == "requested_scope" { ("scope".into(), value.clone()) } else { (name.clone(), value.clone()) }
            })
            .collect();
    let checked = match check(&state, &request).await {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let Some(session) = session::current(&state, &headers).await else {
        return error_page(StatusCode::UNAUTHORIZED, "Signed out", "Your sign-in ended. Start again from the app.");
    };
    if !csrf_matches(&session, &form.iter().cloned().collect()) {
        return error_page(StatusCode::FORBIDDEN, "Request refused", "The consent form did not come from this site.");
    }
    let state_param = checked.state.as_deref();
    if first(&form, "decision") != Some("allow") {
        return *refuse(&checked.redirect_uri, state_param, "access_denied", "the user denied access");
    }
    match issue_code(&state, &session, &checked, &form, &ticked).await {
        Ok(code) => {
            let mut pairs = vec![("code", code.as_str())];
            if let Some(app_state) = state_param {
                pairs.push(("state", app_state));
            }
            redirect_with(&checked.redirect_uri, &pairs)
        }
        Err((error, description)) => *refuse(&checked.redirect_uri, state_param, error, &description),
    }
}

async fn issue_code(
    state: &AppState,
    session: &Session,
    checked: &Checked,
    form: &Form,
    ticked: &[String],
) -> Result<String, (&'static str, String)> {
    let server_error = |err: crate::store::StoreError| {
        tracing::error!(error = %err, "issuing an authorization code failed");
        ("server_error", "the server could not complete the request".to_string())
    };
    if session.user.tenant != checked.client.tenant {
        return Err(("access_denied", "the app is registered with another clinic".into()));
    }
    if checked.break_glass_reason.is_some()
        && !crate::access::consent::BREAK_GLASS_ROLES.contains(&session.user.role.as_str())
    {
        let roles = crate::access::consent::BREAK_GLASS_ROLES.join(", ");
        return Err(("access_denied", format!("only these roles may break the glass: {roles}")));
    }
    let patient_user = own_patient(state, session).await;
    let offered = grantable(checked, patient_user.is_some());
    let granted: ScopeSet = offered.iter().filter(|scope| ticked.contains(&scope.to_string())).cloned().collect();
    if granted.is_empty() {
        return Err(("access_denied", "no scope was granted".into()));
    }
    let now = chrono::Utc::now().timestamp();
    let (mut patient, mut encounter) = (patient_user.clone(), None);
    if let Some(launch) = &checked.launch {
        match state.store.redeem_secret(&digest(launch), SecretKind::Launch, now).await.map_err(server_error)? {
            Redeemed::Fresh(record)
                if record.client_id == checked.client.client_id
                    && record.user_id.as_deref() == Some(&session.user.user_id)
                    && record.expires_at >= now =>
            {
                let context: Grant = serde_json::from_str(&record.grant_json).unwrap_or_default();
                patient = context.patient;
                encounter = context.encounter;
            }
            _ => return Err(("invalid_request", "the launch is unknown, expired, used or for another app".into())),
        }
    } else if patient.is_none()
        && let Some(chosen) = first(form, "patient")
        && may_find_patients(session)
    {
        let pickable = super::launcher::pickable(state, &session.user, checked.break_glass_reason.is_some()).await;
        if super::launcher::patient_row(state, &session.user.tenant, &pickable, chosen).await.is_none() {
            return Err(("invalid_request", "the chosen patient does not exist or is not in your care".into()));
        }
        patient = Some(chosen.to_string());
    }
    if encounter.is_none()
        && granted.contains(&Scope::LaunchEncounter)
        && let (Some(patient), Some(chosen)) = (&patient, first(form, "encounter").filter(|e| !e.is_empty()))
    {
        // The chosen visit must be one of the patient's.
        if !super::launcher::encounter_of(state, &session.user.tenant, patient, chosen).await {
            return Err(("invalid_request", "the chosen encounter is not one of the patient's".into()));
        }
        encounter = Some(chosen.to_string());
    }
    if granted.has_context(Context::Patient) && patient.is_none() {
        return Err(("invalid_request", "patient/ scopes need a patient: ask for launch/patient".into()));
    }
    let family = random_token(16);
    let grant = Grant {
        scope: granted.to_string(),
        tenant: session.user.tenant.clone(),
        client_id: checked.client.client_id.clone(),
        user_id: Some(session.user.user_id.clone()),
        role: Some(session.user.role.clone()),
        fhir_user: session.user.fhir_user.clone(),
        need_patient_banner: patient.is_some() && checked.launch.is_none(),
        patient,
        encounter,
        redirect_uri: Some(checked.redirect_uri.clone()),
        code_challenge: Some(checked.code_challenge.clone()),
        nonce: checked.nonce.clone(),
        session: (granted.contains(&Scope::OnlineAccess) && !granted.contains(&Scope::OfflineAccess))
            .then(|| session.id.clone()),
        auth_time: session.started,
        purpose_of_use: checked.purpose_of_use.clone(),
        break_glass_reason: checked.break_glass_reason.clone(),
    };
    let code = random_token(32);
    let record = SecretRecord {
        family,
        client_id: checked.client.client_id.clone(),
        user_id: Some(session.user.user_id.clone()),
        grant_json: serde_json::to_string(&grant).unwrap_or_default(),
        expires_at: now + CODE_LIFETIME_SECS,
    };
    state.store.insert_secret(&digest(&code), SecretKind::AuthorizationCode, &record).await.map_err(server_error)?;
    state
        .store
        .upsert_grant(&session.user.user_id, &checked.client.client_id, &grant.scope, now)
        .await
        .map_err(server_error)?;
    Ok(code)
}
