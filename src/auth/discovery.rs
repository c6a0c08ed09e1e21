//! Discovery: `.well-known/smart-configuration` (SMART App Launch 2.2 "Conformance"),
//! `.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §3) and the JWK Set with
//! the token-signing keys (RFC 7517).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::app::AppState;

/// The scopes advertised: the SMART context scopes and both scope syntaxes.
pub const SCOPES_SUPPORTED: [&str; 17] = [
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.cruds",
    "user/*.cruds",
    "system/*.cruds",
    "patient/*.read",
    "user/*.read",
    "system/*.read",
    "patient/*.write",
    "user/*.write",
    crate::sensitive::REVEAL_SCOPE,
];

pub const CAPABILITIES: [&str; 20] = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-encounter",
    "context-standalone-patient",
    "context-banner",
    "context-style",
    "permission-offline",
    "permission-online",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "permission-system",
];

/// The registration endpoint, unless dynamic registration is closed.
fn registration_endpoint(state: &AppState) -> Value {
    match state.settings.registration {
        crate::config::Registration::Closed => Value::Null,
        _ => json!(state.auth.endpoint("register")),
    }
}

pub fn smart_configuration_json(state: &AppState) -> Value {
    let auth = &state.auth;
    let mut configuration = json!({
        "issuer": auth.issuer,
        "jwks_uri": auth.endpoint("jwks"),
        "authorization_endpoint": auth.endpoint("authorize"),
        "token_endpoint": auth.endpoint("token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "introspection_endpoint": auth.endpoint("introspect"),
        "registration_endpoint": registration_endpoint(state),
        "revocation_endpoint": auth.endpoint("revoke"),
        "management_endpoint": auth.endpoint("apps"),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    });
    if let Some(fields) = configuration.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    configuration
}

fn json_response(value: Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// `GET [base]/.well-known/smart-configuration`.
pub async fn smart_configuration(State(state): State<AppState>) -> Response {
    json_response(smart_configuration_json(&state))
}

/// `GET [issuer]/.well-known/openid-configuration`.
pub async fn openid_configuration(State(state): State<AppState>) -> Response {
    let auth = &state.auth;
    let mut configuration = json!({
        "issuer": auth.issuer,
        "authorization_endpoint": auth.endpoint("authorize"),
        "token_endpoint": auth.endpoint("token"),
        "jwks_uri": auth.endpoint("jwks"),
        "registration_endpoint": registration_endpoint(&state),
        "introspection_endpoint": auth.endpoint("introspect"),
        "revocation_endpoint": auth.endpoint("revoke"),
        "scopes_supported": SCOPES_SUPPORTED,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser", "name"],
    });
    if let Some(fields) = configuration.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    json_response(configuration)
}

/// `GET /auth/smart-style.json`: the look apps may adopt to blend in (SMART "context-style").
pub async fn smart_style() -> Response {
    json_response(json!({
        "color_background": "#f7f7f5",
        "color_error": "#b3261e",
        "color_highlight": "#1f5f8b",
        "color_modal_backdrop": "",
        "color_success": "#2e7d32",
        "color_text": "#1c1c1c",
        "dim_border_radius": "6px",
        "dim_font_size": "16px",
        "dim_spacing_size": "16px",
        "font_family_body": "system-ui, sans-serif",
        "font_family_heading": "system-ui, sans-serif"
    }))
}

/// `GET /auth/jwks`: the public keys tokens are signed with (the active and recently retired).
pub async fn jwks(State(state): State<AppState>) -> Response {
    json_response(state.auth.key_ring().jwks())
}
