//! Client authentication at the token, introspection and revocation endpoints (RFC 6749 §2.3):
//! `client_secret_basic` for confidential-symmetric apps, `private_key_jwt` (RFC 7523, SMART
//! "Client Authentication: Asymmetric") for confidential-asymmetric ones, and a bare `client_id`
//! for public ones. Failures are OAuth `invalid_client` errors.

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::HashMap;
use std::time::Duration;

use super::fetched;
use super::secrets::{constant_time_eq, digest};
use super::store::ClientRecord;
use super::token::OAuthError;
use crate::app::AppState;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the client proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientProof {
    None,
    Secret,
    Assertion,
}

/// Authenticates the client of a token-endpoint style request.
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(ClientRecord, ClientProof), OAuthError> {
    if let Some((client_id, secret)) = basic_credentials(headers)? {
        let client = active_client(state, &client_id).await?;
        let matches = client.secret_hash.as_deref().is_some_and(|hash| constant_time_eq(hash, &digest(&secret)));
        if client.kind != "confidential-symmetric" || !matches {
            return Err(OAuthError::invalid_client("the client id or secret is wrong").with_basic_challenge());
        }
        return Ok((client, ClientProof::Secret));
    }
    if let Some(assertion) = form.get("client_assertion") {
        if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_client(format!("client_assertion_type must be {JWT_BEARER}")));
        }
        let client_id = unverified_issuer(assertion)?;
        if form.get("client_id").is_some_and(|id| id != &client_id) {
            return Err(OAuthError::invalid_client("client_id differs from the assertion's issuer"));
        }
        let client = active_client(state, &client_id).await?;
        if client.kind != "confidential-asymmetric" {
            return Err(OAuthError::invalid_client("this client is not registered for private_key_jwt"));
        }
        let now = chrono::Utc::now().timestamp();
        let audience = state.auth.endpoint("token");
        let (jwks, kept_for) = client_key_set(state, &client, false).await?;
        let verified = match super::client_assertion::verify(assertion, &client.client_id, &audience, &jwks, now) {
            Ok(verified) => verified,
            // A client that rotated its keys is fetched again, at most once per interval.
            Err(_) if kept_for.is_some_and(|age| age >= REFETCH_AFTER) => {
                let (jwks, _) = client_key_set(state, &client, true).await?;
                super::client_assertion::verify(assertion, &client.client_id, &audience, &jwks, now)
                    .map_err(|e| OAuthError::invalid_client(e.to_string()))?
            }
            Err(e) => return Err(OAuthError::invalid_client(e.to_string())),
        };
        let first_use = state
            .store
            // Remembered past its exp by the clock skew the verification allows.
            .use_assertion_id(&client.client_id, &verified.jti, verified.exp + 60, now)
            .await
            .map_err(OAuthError::server)?;
        if !first_use {
            return Err(OAuthError::invalid_client("this client assertion (jti) was already used"));
        }
        return Ok((client, ClientProof::Assertion));
    }
    let client_id = form.get("client_id").ok_or_else(|| OAuthError::invalid_client("no client authentication"))?;
    public_client(state, client_id).await
}

/// A public client named by id (it has nothing to authenticate with).
pub async fn public_client(state: &AppState, client_id: &str) -> Result<(ClientRecord, ClientProof), OAuthError> {
    let client = active_client(state, client_id).await?;
    if client.kind != "public" {
        return Err(OAuthError::invalid_client("a confidential client must authenticate"));
    }
    Ok((client, ClientProof::None))
}

async fn active_client(state: &AppState, client_id: &str) -> Result<ClientRecord, OAuthError> {
    match state.store.client(client_id).await.map_err(OAuthError::server)? {
        Some(client) if client.status == "active" => Ok(client),
        Some(_) => Err(OAuthError::invalid_client("this client is not approved or was disabled")),
        None => Err(OAuthError::invalid_client("unknown client")),
    }
}

/// `Authorization: Basic` credentials, form-urlencoded inside as RFC 6749 §2.3.1 requires.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(encoded) = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("the Basic credentials are malformed");
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Ok(Some((unescape(id).ok_or_else(bad)?, unescape(secret).ok_or_else(bad)?)))
}

/// The `iss` of an assertion before it is verified: it names the client whose keys verify it.
fn unverified_issuer(assertion: &str) -> Result<String, OAuthError> {
    let bad = || OAuthError::invalid_client("the client assertion is not a JWT");
    let payload = assertion.split('.').nth(1).ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|_| bad())?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    claims["iss"].as_str().map(str::to_string).ok_or_else(|| OAuthError::invalid_client("the assertion has no iss"))
}

/// How old a client's fetched keys must be before an assertion they do not verify makes Kiln
/// fetch them again (so a stream of forged assertions cannot make it call the client's server).
const REFETCH_AFTER: Duration = Duration::from_secs(30);

/// The client's registered keys: inline, or fetched from its `jwks_uri` (kept for a while;
/// `refetch` fetches them again), with how long ago they were fetched.
async fn client_key_set(
    state: &AppState,
    client: &ClientRecord,
    refetch: bool,
) -> Result<(serde_json::Value, Option<Duration>), OAuthError> {
    if let Some(jwks) = &client.jwks {
        let jwks =
            serde_json::from_str(jwks).map_err(|_| OAuthError::invalid_client("the registered JWKS is unreadable"))?;
        return Ok((jwks, None));
    }
    let Some(url) = &client.jwks_uri else {
        return Err(OAuthError::invalid_client("the client has no registered keys"));
    };
    let kept = &state.auth.client_key_sets;
    if !refetch && let Some((jwks, age)) = kept.fresh(url) {
        return Ok((jwks, Some(age)));
    }
    let jwks = fetched::fetch_json(url, fetched::MAX_JWKS_BYTES, state.settings.client_jwks_from_private_addresses)
        .await
        .map_err(|e| OAuthError::invalid_client(format!("cannot fetch the client's JWKS from {url}: {e}")))?;
    kept.keep(url, jwks.clone());
    Ok((jwks, Some(Duration::ZERO)))
}
