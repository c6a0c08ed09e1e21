//! Dynamic client registration (RFC 7591 §3): an app registers itself with `POST /auth/register`.
//! The `registration` setting decides: `closed` refuses, `admin-approved` registers the app as
//! pending until `kiln client approve`, `open` makes it usable at once, except that `system/`
//! scopes (backend access to the whole clinic) always wait for an administrator.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::accounts::{ClientKind, NewClient, register_client};
use super::scopes::{Context, ScopeSet};
use super::token::no_store;
use crate::app::AppState;
use crate::config::Registration;

/// The client metadata Kiln reads (RFC 7591 §2); other members are ignored.
#[derive(Deserialize)]
struct Metadata {
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Vec<String>,
    scope: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    /// Where an EHR launch sends the app (OIDC's third-party-initiated login URI).
    initiate_login_uri: Option<String>,
}

fn refuse(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response =
        (status, axum::Json(json!({"error": error, "error_description": description.into()}))).into_response();
    no_store(response.headers_mut());
    response
}

pub async fn register(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if state.settings.registration == Registration::Closed {
        return refuse(StatusCode::FORBIDDEN, "access_denied", "dynamic registration is closed on this server");
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return refuse(StatusCode::BAD_REQUEST, "invalid_client_metadata", "the body must be application/json");
    }
    let metadata: Metadata = match serde_json::from_slice(&body) {
        Ok(metadata) => metadata,
        Err(err) => {
            return refuse(StatusCode::BAD_REQUEST, "invalid_client_metadata", format!("unreadable metadata: {err}"));
        }
    };
    let kind = match metadata.token_endpoint_auth_method.as_deref().unwrap_or("client_secret_basic") {
        "none" => ClientKind::Public,
        "client_secret_basic" => ClientKind::ConfidentialSymmetric,
        "private_key_jwt" => ClientKind::ConfidentialAsymmetric,
        other => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                format!(
                    "token_endpoint_auth_method '{other}' is not supported (none, client_secret_basic, private_key_jwt)"
                ),
            );
        }
    };
    let supported = ["authorization_code", "refresh_token", "client_credentials"];
    if let Some(grant) = metadata.grant_types.iter().find(|g| !supported.contains(&g.as_str())) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            format!("grant type '{grant}' is not supported"),
        );
    }
    let scopes = match ScopeSet::parse(metadata.scope.as_deref().unwrap_or("")) {
        Ok(scopes) if !scopes.is_empty() => scopes,
        Ok(_) => return refuse(StatusCode::BAD_REQUEST, "invalid_client_metadata", "scope is required"),
        Err(err) => return refuse(StatusCode::BAD_REQUEST, "invalid_client_metadata", err.to_string()),
    };
    let wants_system = scopes.has_context(Context::System);
    let status = match state.settings.registration {
        Registration::Open if !wants_system => "active",
        _ => "pending",
    };
    let new = NewClient {
        tenant: state.default_tenant.to_string(),
        name: metadata.client_name.clone().unwrap_or_default(),
        kind,
        redirect_uris: metadata.redirect_uris.clone(),
        scopes: scopes.to_string(),
        launch_url: metadata.initiate_login_uri.clone(),
        jwks: metadata.jwks.as_ref().map(Value::to_string),
        jwks_uri: metadata.jwks_uri.clone(),
        status: status.into(),
    };
    let registered = match register_client(&state.store, new).await {
        Ok(registered) => registered,
        Err(message) => {
            let error = if message.contains("redirect") { "invalid_redirect_uri" } else { "invalid_client_metadata" };
            return refuse(StatusCode::BAD_REQUEST, error, message);
        }
    };
    let client = &registered.client;
    tracing::info!(client_id = %client.client_id, status, "an app registered itself");
    let mut answer = json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "token_endpoint_auth_method": metadata.token_endpoint_auth_method.unwrap_or_else(|| "client_secret_basic".into()),
        "scope": client.scopes,
        "kiln_status": status,
    });
    if let Some(secret) = &registered.secret {
        answer["client_secret"] = json!(secret);
        answer["client_secret_expires_at"] = json!(0);
    }
    if let Some(uri) = &client.jwks_uri {
        answer["jwks_uri"] = json!(uri);
    }
    if let Some(jwks) = metadata.jwks {
        answer["jwks"] = jwks;
    }
    if !metadata.grant_types.is_empty() {
        answer["grant_types"] = json!(metadata.grant_types);
    }
    let mut response = (StatusCode::CREATED, axum::Json(answer)).into_response();
    no_store(response.headers_mut());
    response
}
