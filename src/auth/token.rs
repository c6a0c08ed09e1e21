//! The token endpoint (RFC 6749 §3.2, SMART App Launch 2.2 "Obtain access token"): exchanges an
//! authorization code (with PKCE, RFC 7636), rotates a refresh token (with reuse detection), and
//! serves backend services' `client_credentials` grants (SMART Backend Services).

use crate::audit::{
    self,
    event::{Actor, Kind, Origin, Outcome},
};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

use super::client_auth::{self, ClientProof};
use super::scopes::{Context, Scope, ScopeSet};
use super::secrets::{digest, random_token};
use super::store::{ClientRecord, Redeemed, SecretKind, SecretRecord};
use super::tokens::{AccessClaims, Grant, IdClaims};
use crate::app::AppState;

/// Authorization codes live at most this long (SMART: at most 60 s).
pub const CODE_LIFETIME_SECS: i64 = 60;

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    /// Whether the client tried HTTP Basic: only then does a 401 name that scheme (RFC 6749 §5.2).
    pub basic_challenge: bool,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError { status: StatusCode::BAD_REQUEST, error, description: description.into(), basic_challenge: false }
    }
    pub fn invalid_client(description: impl Into<String>) -> OAuthError {
        OAuthError {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
            basic_challenge: false,
        }
    }
    pub fn with_basic_challenge(mut self) -> OAuthError {
        self.basic_challenge = true;
        self
    }
    pub fn invalid_grant(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_grant", description)
    }
    pub fn server(err: impl std::fmt::Display) -> OAuthError {
        tracing::error!(error = %err, "authorization server failure");
        OAuthError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "server_error",
            description: "the server could not complete the request".into(),
            basic_challenge: false,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({"error": self.error, "error_description": self.description})))
                .into_response();
        no_store(response.headers_mut());
        if self.basic_challenge {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Basic realm="kiln""#));
        }
        response
    }
}

/// Token responses must not be cached (RFC 6749 §5.1).
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Parses an `application/x-www-form-urlencoded` body; a repeated parameter is an error
/// (RFC 6749 §3.1).
pub fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    let mut form = HashMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if form.insert(name.to_string(), value.into_owned()).is_some() {
            return Err(OAuthError::new("invalid_request", format!("the parameter {name} is repeated")));
        }
    }
    Ok(form)
}

/// A token response and the claims of the access token in it.
struct Issued {
    answer: Value,
    claims: AccessClaims,
}

pub async fn token(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    match exchange(&state, &headers, &body).await {
        Ok(Issued { answer, claims }) => {
            let actor = Actor {
                user: (claims.sub != claims.client_id).then(|| claims.sub.clone()),
                fhir_user: claims.fhir_user.clone(),
                role: claims.role.clone(),
                client_id: Some(claims.client_id.clone()),
                claimed_name: None,
            };
            let scope = format!("scope: {}", claims.scope);
            audit::record_auth_event(
                &state,
                Some(&claims.tenant),
                Kind::token_issued(),
                &actor,
                &origin,
                Outcome::Success,
                Some(&scope),
            )
            .await;
            let mut response = (StatusCode::OK, axum::Json(answer)).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(err) => {
            let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
            let actor = Actor { client_id: form.get("client_id").cloned(), ..Actor::default() };
            let reason = format!("{}: {}", err.error, err.description);
            let outcome = if err.status.is_server_error() { Outcome::SeriousFailure } else { Outcome::MinorFailure };
            audit::record_auth_event(&state, None, Kind::token_issued(), &actor, &origin, outcome, Some(&reason)).await;
            err.into_response()
        }
    }
}

async fn exchange(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<Issued, OAuthError> {
    let form_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !form_type.starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::new("invalid_request", "the body must be application/x-www-form-urlencoded"));
    }
    let form = parse_form(body)?;
    // A public client refreshing need not name itself (SMART App Launch "Refresh access token",
    // RFC 6749 §6): the refresh token says whose it is.
    let anonymous = !headers.contains_key(header::AUTHORIZATION)
        && !form.contains_key("client_id")
        && !form.contains_key("client_assertion");
    if anonymous && form.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh(state, None, &form).await;
    }
    let (client, proof) = client_auth::authenticate(state, headers, &form).await?;
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => authorization_code(state, &client, &form).await,
        Some("refresh_token") => refresh(state, Some(&client), &form).await,
        Some("client_credentials") => client_credentials(state, &client, proof, &form).await,
        Some(other) => Err(OAuthError::new("unsupported_grant_type", format!("grant_type '{other}' is not supported"))),
        None => Err(OAuthError::new("invalid_request", "grant_type is missing")),
    }
}

fn required<'a>(form: &'a HashMap<String, String>, name: &str) -> Result<&'a str, OAuthError> {
    form.get(name).map(String::as_str).ok_or_else(|| OAuthError::new("invalid_request", format!("{name} is missing")))
}

async fn authorization_code(
    state: &AppState,
    client: &ClientRecord,
    form: &HashMap<String, String>,
) -> Result<Issued, OAuthError> {
    let code = required(form, "code")?;
    let now = chrono::Utc::now().timestamp();
    let secret = match state.store.redeem_secret(&digest(code), SecretKind::AuthorizationCode, now).await {
        Ok(Redeemed::Fresh(secret)) => secret,
        Ok(Redeemed::Reused { family }) => {
            // RFC 6749 §4.1.2: a code used twice revokes what its first use issued.
            revoke(state, &family).await?;
            return Err(OAuthError::invalid_grant("the authorization code was already used"));
        }
        Ok(Redeemed::Unknown) => return Err(OAuthError::invalid_grant("unknown authorization code")),
        Err(err) => return Err(OAuthError::server(err)),
    };
    if secret.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the code was issued to another client"));
    }
    if secret.expires_at < now {
        return Err(OAuthError::invalid_grant("the authorization code expired"));
    }
    let grant: Grant = serde_json::from_str(&secret.grant_json).map_err(OAuthError::server)?;
    if form.get("redirect_uri") != grant.redirect_uri.as_ref() {
        return Err(OAuthError::invalid_grant("redirect_uri differs from the authorization request's"));
    }
    let verifier = required(form, "code_verifier")?;
    let challenge = grant.code_challenge.as_deref().unwrap_or_default();
    if !super::pkce::verify_s256(verifier, challenge) {
        return Err(OAuthError::invalid_grant("the PKCE code_verifier does not match the code_challenge"));
    }
    issue(state, client, &grant, &secret.family, now).await
}

/// `client` is the authenticated client, or `None` when a public client did not name itself.
async fn refresh(
    state: &AppState,
    client: Option<&ClientRecord>,
    form: &HashMap<String, String>,
) -> Result<Issued, OAuthError> {
    let presented = required(form, "refresh_token")?;
    let now = chrono::Utc::now().timestamp();
    let secret = match state.store.redeem_secret(&digest(presented), SecretKind::RefreshToken, now).await {
        Ok(Redeemed::Fresh(secret)) => secret,
        Ok(Redeemed::Reused { family }) => {
            // A rotated-out token presented again means it leaked: end the whole family.
            revoke(state, &family).await?;
            return Err(OAuthError::invalid_grant("the refresh token was already used; its grant is revoked"));
        }
        Ok(Redeemed::Unknown) => return Err(OAuthError::invalid_grant("unknown refresh token")),
        Err(err) => return Err(OAuthError::server(err)),
    };
    let public;
    let client = match client {
        Some(client) => client,
        None => {
            public =
                client_auth::public_client(state, &secret.client_id).await.map(|(client, _)| client).map_err(|_| {
                    OAuthError::invalid_client("a confidential client must authenticate to refresh")
                        .with_basic_challenge()
                })?;
            &public
        }
    };
    if secret.client_id != client.client_id {
        return Err(OAuthError::invalid_grant("the refresh token was issued to another client"));
    }
    if secret.expires_at < now {
        return Err(OAuthError::invalid_grant("the refresh token expired"));
    }
    if state.auth.is_revoked(&state.store, &secret.family).await {
        return Err(OAuthError::invalid_grant("the grant was revoked"));
    }
    let mut grant: Grant = serde_json::from_str(&secret.grant_json).map_err(OAuthError::server)?;
    if let Some(session) = &grant.session {
        // Online access lasts as long as the browser sign-in, with its lifetime and idle limits.
        let settings = &state.settings;
        let alive = state.store.session(session).await.map_err(OAuthError::server)?.is_some_and(|s| {
            now - s.created_at <= settings.session_lifetime_secs && now - s.last_seen <= settings.session_idle_secs
        });
        if !alive {
            return Err(OAuthError::invalid_grant("online access ended with the user's sign-in"));
        }
    }
    // The user may have been disabled or given another role since: the grant follows the account.
    if let Some(user_id) = &grant.user_id {
        match state.store.user(user_id).await.map_err(OAuthError::server)? {
            Some(user) if !user.disabled && user.tenant == grant.tenant => {
                // A locked account, an expired password or lapsed training ends the grant too.
                let federated = user.external_subject.is_some();
                if let Some(reason) = crate::auth::accounts::sign_in_refusal(&state.settings, &user, now, federated) {
                    return Err(OAuthError::invalid_grant(reason));
                }
                grant.role = Some(user.role)
            }
            _ => return Err(OAuthError::invalid_grant("the user's account is disabled or gone")),
        }
    }
    if let Some(requested) = form.get("scope") {
        let requested = ScopeSet::parse(requested).map_err(|e| OAuthError::new("invalid_scope", e.to_string()))?;
        let granted = ScopeSet::parse(&grant.scope).map_err(OAuthError::server)?;
        if !requested.is_covered_by(&granted) {
            return Err(OAuthError::new("invalid_scope", "a refresh may not ask for more than was granted"));
        }
        grant.scope = requested.to_string();
    }
    issue(state, client, &grant, &secret.family, now).await
}

async fn client_credentials(
    state: &AppState,
    client: &ClientRecord,
    proof: ClientProof,
    form: &HashMap<String, String>,
) -> Result<Issued, OAuthError> {
    match proof {
        ClientProof::Assertion => {}
        ClientProof::Secret if state.settings.client_credentials_with_secret => {}
        ClientProof::Secret => {
            return Err(OAuthError::new(
                "unauthorized_client",
                "backend services authenticate with a signed assertion (private_key_jwt), not a client secret; \
                 register the client as confidential-asymmetric",
            ));
        }
        ClientProof::None => {
            return Err(OAuthError::new("unauthorized_client", "client_credentials needs a confidential client"));
        }
    }
    let requested =
        ScopeSet::parse(required(form, "scope")?).map_err(|e| OAuthError::new("invalid_scope", e.to_string()))?;
    let ceiling = ScopeSet::parse(&client.scopes).map_err(OAuthError::server)?;
    // Backend services act for no user or patient: only system/ scopes make sense (and the
    // reveal scope, if the registration allows it).
    let granted = requested.narrow_to(&ceiling);
    let system_only: ScopeSet =
        granted.iter().filter(|s| s.as_resource().is_some_and(|r| r.context == Context::System)).cloned().collect();
    if system_only.is_empty() {
        return Err(OAuthError::new(
            "invalid_scope",
            "none of the requested system/ scopes is allowed for this client",
        ));
    }
    let system_only: ScopeSet = granted
        .iter()
        .filter(|s| {
            s.as_resource().is_some_and(|r| r.context == Context::System)
                || s.to_string() == crate::sensitive::REVEAL_SCOPE
        })
        .cloned()
        .collect();
    let grant = Grant {
        scope: system_only.to_string(),
        tenant: client.tenant.clone(),
        client_id: client.client_id.clone(),
        ..Grant::default()
    };
    let now = chrono::Utc::now().timestamp();
    issue(state, client, &grant, &random_token(16), now).await
}

async fn revoke(state: &AppState, family: &str) -> Result<(), OAuthError> {
    let until = chrono::Utc::now().timestamp() + state.settings.refresh_token_lifetime_secs;
    state.auth.revoke_family(&state.store, family, until).await.map_err(OAuthError::server)
}

/// The token response: an access token, and as the grant allows a refresh token, an ID token
/// and the launch context.
async fn issue(
    state: &AppState,
    client: &ClientRecord,
    grant: &Grant,
    family: &str,
    now: i64,
) -> Result<Issued, OAuthError> {
    let settings = &state.settings;
    let scopes = ScopeSet::parse(&grant.scope).map_err(OAuthError::server)?;
    let subject = grant.user_id.clone().unwrap_or_else(|| client.client_id.clone());
    let claims = AccessClaims {
        iss: state.auth.issuer.clone(),
        sub: subject.clone(),
        aud: state.auth.issuer.clone(),
        exp: now + settings.access_token_lifetime_secs,
        iat: now,
        jti: random_token(16),
        client_id: client.client_id.clone(),
        scope: grant.scope.clone(),
        tenant: grant.tenant.clone(),
        family: family.to_string(),
        patient: grant.patient.clone(),
        encounter: grant.encounter.clone(),
        fhir_user: grant.fhir_user.clone(),
        role: grant.role.clone(),
        purpose_of_use: grant.purpose_of_use.clone(),
        break_glass_reason: grant.break_glass_reason.clone(),
    };
    let access_token = state.auth.sign(&claims).map_err(OAuthError::server)?;
    let mut answer = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": settings.access_token_lifetime_secs,
        "scope": grant.scope,
    });
    if let Some(patient) = &grant.patient {
        answer["patient"] = json!(patient);
        answer["need_patient_banner"] = json!(grant.need_patient_banner);
    }
    if let Some(encounter) = &grant.encounter {
        answer["encounter"] = json!(encounter);
        answer["fhirContext"] = json!([{"reference": format!("Encounter/{encounter}")}]);
    }
    if grant.user_id.is_some() {
        answer["smart_style_url"] = json!(format!("{}/auth/smart-style.json", state.auth.origin));
    }
    if scopes.contains(&Scope::OpenId)
        && let Some(user_id) = &grant.user_id
    {
        let user = state.store.user(user_id).await.map_err(OAuthError::server)?;
        let id_claims = IdClaims {
            iss: state.auth.issuer.clone(),
            sub: user_id.clone(),
            aud: client.client_id.clone(),
            exp: now + settings.access_token_lifetime_secs,
            iat: now,
            auth_time: grant.auth_time,
            nonce: grant.nonce.clone(),
            fhir_user: scopes
                .contains(&Scope::FhirUser)
                .then(|| grant.fhir_user.as_ref().map(|r| format!("{}/{r}", state.auth.issuer)))
                .flatten(),
            name: scopes.contains(&Scope::Profile).then(|| user.map(|u| u.display_name)).flatten(),
        };
        answer["id_token"] = json!(state.auth.sign(&id_claims).map_err(OAuthError::server)?);
    }
    // Broken glass lasts one access token: it is not renewed without the user asking again.
    let renewable = grant.break_glass_reason.is_none();
    if renewable
        && grant.user_id.is_some()
        && (scopes.contains(&Scope::OfflineAccess) || scopes.contains(&Scope::OnlineAccess))
    {
        let refresh_token = random_token(32);
        let record = SecretRecord {
            family: family.to_string(),
            client_id: client.client_id.clone(),
            user_id: grant.user_id.clone(),
            grant_json: serde_json::to_string(grant).map_err(OAuthError::server)?,
            expires_at: now + settings.refresh_token_lifetime_secs,
        };
        state
            .store
            .insert_secret(&digest(&refresh_token), SecretKind::RefreshToken, &record)
            .await
            .map_err(OAuthError::server)?;
        answer["refresh_token"] = json!(refresh_token);
    }
    Ok(Issued { answer, claims })
}
