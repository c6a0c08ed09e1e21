//! Access and ID tokens: signed JWTs any node verifies with the published keys (SMART App Launch
//! 2.2 "Access token", OpenID Connect Core §2), and the grant each one carries.

use serde::{Deserialize, Serialize};

/// What one authorization granted; kept with codes and refresh tokens, and copied into tokens.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Grant {
    pub scope: String,
    pub tenant: String,
    pub client_id: String,
    /// The signed-in user, for user-facing flows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(default)]
    pub need_patient_banner: bool,
    /// The authorization request's, checked when the code is exchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The browser session an `online_access` grant lives only as long as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default)]
    pub auth_time: i64,
    /// The purpose of use the user stated when authorizing (a v3 ActReason code), and with
    /// `BTG` the reason for breaking the glass: carried by every token of the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_of_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
}

/// The claims of a Kiln access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    /// The clinic the token acts in.
    pub tenant: String,
    /// The authorization this token came from: revoking it revokes every token it issued.
    pub family: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encounter: Option<String>,
    #[serde(default, rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The grant's purpose of use (v3 ActReason), as the `X-Purpose-Of-Use` header states it
    /// for one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_of_use: Option<String>,
    /// With purpose `BTG`: the reason the glass was broken, as the `X-Break-Glass-Reason`
    /// header gives it for one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub break_glass_reason: Option<String>,
}

/// OpenID Connect ID token claims (OIDC Core §2), with SMART's `fhirUser`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, rename = "fhirUser", skip_serializing_if = "Option::is_none")]
    pub fhir_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}
