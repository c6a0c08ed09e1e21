//! Sign-in through the clinic's own OpenID Connect provider (OpenID Connect Core 1.0 §3.1,
//! Kiln as relying party, with the `openidconnect` crate): the sign-in page offers "Sign in with
//! …"; the provider's ID token (signature, issuer, audience, nonce, expiry checked) names a
//! subject, which an administrator linked to a Kiln account (`kiln user create
//! --external-subject`). The flow's state is bound to the browser by a cookie.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use super::secrets::{constant_time_eq, digest};
use super::session::{cookie, error_page, safe_next, start_session};
use super::store::{Redeemed, SecretKind, SecretRecord};
use crate::app::AppState;

const STATE_COOKIE: &str = "kiln_federation";
/// The user has this long to sign in at the provider.
const FLOW_LIFETIME_SECS: i64 = 600;

/// How an account's identity at the provider is stored.
pub fn external_subject(issuer: &str, subject: &str) -> String {
    format!("{}|{subject}", issuer.trim_end_matches('/'))
}

/// What the start of a sign-in remembers for its callback.
#[derive(Serialize, Deserialize)]
struct Flow {
    nonce: String,
    verifier: String,
    next: String,
}

/// The HTTP client the library calls: reqwest, no redirects (a provider's redirect must not
/// be followed with credentials), a short timeout.
async fn http_client(request: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()?;
    let (parts, body) = request.into_parts();
    let mut outgoing = client.request(parts.method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await?;
    let mut builder = axum::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(builder.body(body).expect("a response built from a valid one"))
}

struct Provider {
    issuer: String,
    client_id: String,
    client_secret: String,
}

fn provider(state: &AppState) -> Option<Provider> {
    let settings = &state.settings;
    Some(Provider {
        issuer: settings.oidc_issuer.clone()?,
        client_id: settings.oidc_client_id.clone()?,
        client_secret: settings.oidc_client_secret.clone()?,
    })
}

/// The link the sign-in page offers, when a provider is configured.
pub fn sign_in_link(state: &AppState, next: &str) -> Option<super::pages::IdpLink> {
    provider(state)?;
    let query = form_urlencoded::Serializer::new(String::new()).append_pair("next", next).finish();
    Some(super::pages::IdpLink {
        name: state.settings.oidc_name.clone().unwrap_or_else(|| "the clinic's sign-in".into()),
        url: format!("/auth/federation/start?{query}"),
    })
}

fn callback_url(state: &AppState) -> String {
    state.auth.endpoint("federation/callback")
}

async fn client(
    state: &AppState,
    provider: &Provider,
) -> Result<
    openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    String,
> {
    // Discovery (two round trips: the configuration and the keys) is kept for a few minutes; an
    // ID token its keys do not verify makes the next sign-in discover again.
    let metadata = match state.auth.provider_metadata.fresh(&provider.issuer) {
        Some((metadata, _)) => metadata,
        None => {
            let issuer = IssuerUrl::new(provider.issuer.clone()).map_err(|e| e.to_string())?;
            let metadata = CoreProviderMetadata::discover_async(issuer, &http_client)
                .await
                .map_err(|e| format!("the identity provider's discovery failed: {e}"))?;
            state.auth.provider_metadata.keep(&provider.issuer, metadata.clone());
            metadata
        }
    };
    let redirect = RedirectUrl::new(callback_url(state)).map_err(|e| e.to_string())?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(provider.client_id.clone()),
        Some(ClientSecret::new(provider.client_secret.clone())),
    )
    .set_redirect_uri(redirect))
}

fn unavailable(message: &str) -> Response {
    tracing::warn!(message, "sign-in through the identity provider failed");
    error_page(
        StatusCode::BAD_GATEWAY,
        "Sign-in unavailable",
        "The clinic's sign-in service could not be reached or answered wrongly. Try again, or sign in with your password.",
    )
}

/// `GET /auth/federation/start?next=…`: sends the browser to the provider.
pub async fn start(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let Some(provider) = provider(&state) else {
        return error_page(StatusCode::NOT_FOUND, "Not available", "No identity provider is configured.");
    };
    let client = match client(&state, &provider).await {
        Ok(client) => client,
        Err(message) => return unavailable(&message),
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let flow = Flow {
        nonce: nonce.secret().clone(),
        verifier: verifier.secret().clone(),
        next: safe_next(query.get("next").map(String::as_str)),
    };
    let record = SecretRecord {
        family: super::secrets::random_token(8),
        client_id: "federation".into(),
        user_id: None,
        grant_json: serde_json::to_string(&flow).unwrap_or_default(),
        expires_at: chrono::Utc::now().timestamp() + FLOW_LIFETIME_SECS,
    };
    if let Err(err) = state.store.insert_secret(&digest(csrf.secret()), SecretKind::Federation, &record).await {
        tracing::error!(error = %err, "storing a federated sign-in failed");
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "Please try again.");
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    let secure = if state.auth.secure_cookies { "; Secure" } else { "" };
    let value = format!(
        "{STATE_COOKIE}={}; Path=/auth; HttpOnly; SameSite=Lax; Max-Age={FLOW_LIFETIME_SECS}{secure}",
        csrf.secret()
    );
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /auth/federation/callback?code=…&state=…`: checks the answer and signs the user in.
pub async fn callback(
    State(state): State<AppState>,
    origin: crate::audit::event::Origin,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let refused = |message: &str| error_page(StatusCode::BAD_REQUEST, "Sign-in refused", message);
    let Some(provider) = provider(&state) else {
        return error_page(StatusCode::NOT_FOUND, "Not available", "No identity provider is configured.");
    };
    if let Some(error) = query.get("error") {
        return refused(&format!("The clinic's sign-in service answered: {error}."));
    }
    let (Some(code), Some(flow_state)) = (query.get("code"), query.get("state")) else {
        return refused("The sign-in answer is incomplete.");
    };
    // The state must be the one this browser started with (no login CSRF).
    if !cookie(&headers, STATE_COOKIE).is_some_and(|c| constant_time_eq(&c, flow_state)) {
        return refused("This sign-in was not started in this browser.");
    }
    let now = chrono::Utc::now().timestamp();
    let flow: Flow = match state.store.redeem_secret(&digest(flow_state), SecretKind::Federation, now).await {
        Ok(Redeemed::Fresh(record)) if record.expires_at >= now => match serde_json::from_str(&record.grant_json) {
            Ok(flow) => flow,
            Err(_) => return refused("The sign-in could not be resumed."),
        },
        _ => return refused("This sign-in expired or was already used. Start again."),
    };
    let client = match client(&state, &provider).await {
        Ok(client) => client,
        Err(message) => return unavailable(&message),
    };
    let request = match client.exchange_code(AuthorizationCode::new(code.clone())) {
        Ok(request) => request,
        Err(err) => return unavailable(&err.to_string()),
    };
    let tokens = match request.set_pkce_verifier(PkceCodeVerifier::new(flow.verifier)).request_async(&http_client).await
    {
        Ok(tokens) => tokens,
        Err(err) => return unavailable(&format!("the code exchange failed: {err}")),
    };
    use openidconnect::TokenResponse;
    let Some(id_token) = tokens.id_token() else {
        return unavailable("the provider sent no ID token");
    };
    let claims = match id_token.claims(&client.id_token_verifier(), &Nonce::new(flow.nonce)) {
        Ok(claims) => claims,
        Err(err) => {
            state.auth.provider_metadata.forget(&provider.issuer);
            return unavailable(&format!("the ID token was refused: {err}"));
        }
    };
    let subject = external_subject(&provider.issuer, claims.subject().as_str());
    let user = match state.store.user_by_external_subject(&subject).await {
        Ok(Some(user)) if !user.disabled => user,
        Ok(_) => {
            tracing::info!(subject, "an identity-provider sign-in has no linked account");
            return error_page(
                StatusCode::FORBIDDEN,
                "No account",
                "You signed in at the clinic's sign-in service, but no account here is linked to you. Ask an administrator.",
            );
        }
        Err(err) => {
            tracing::error!(error = %err, "reading a user failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "Please try again.");
        }
    };
    if let Some(reason) =
        crate::auth::accounts::sign_in_refusal(&state.settings, &user, chrono::Utc::now().timestamp(), true)
    {
        tracing::info!(user = %user.username, reason, "an identity-provider sign-in was refused");
        return error_page(StatusCode::FORBIDDEN, "Sign-in refused", &reason);
    }
    let mut response = start_session(&state, &origin, &user, &flow.next).await;
    if let Ok(value) = HeaderValue::from_str(&format!("{STATE_COOKIE}=; Path=/auth; HttpOnly; SameSite=Lax; Max-Age=0"))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
