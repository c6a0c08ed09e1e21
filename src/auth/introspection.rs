//! Token introspection (RFC 7662) for resource servers and clients: any authenticated
//! confidential client may ask whether an access token is active and what it grants.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::client_auth::{self, ClientProof};
use super::token::{OAuthError, no_store, parse_form};
use crate::app::AppState;

pub async fn introspect(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let answer = async {
        let form = parse_form(&body)?;
        let (_, proof) = client_auth::authenticate(&state, &headers, &form).await?;
        if proof == ClientProof::None {
            return Err(OAuthError::invalid_client("introspection needs a confidential client"));
        }
        let token = form.get("token").ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        Ok(match state.auth.verify_access_token(&state.store, token).await {
            Ok(claims) => json!({
                "active": true,
                "scope": claims.scope,
                "client_id": claims.client_id,
                "sub": claims.sub,
                "exp": claims.exp,
                "iat": claims.iat,
                "iss": claims.iss,
                "aud": claims.aud,
                "token_type": "Bearer",
                "patient": claims.patient,
                "encounter": claims.encounter,
                "fhirUser": claims.fhir_user.as_ref().map(|r| format!("{}/{r}", state.auth.issuer)),
            }),
            // RFC 7662 §2.2: nothing about why an inactive token is inactive.
            Err(_) => json!({"active": false}),
        })
    };
    match answer.await {
        Ok(mut body) => {
            if let Some(fields) = body.as_object_mut() {
                fields.retain(|_, v| !v.is_null());
            }
            let mut response = axum::Json(body).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(err) => err.into_response(),
    }
}
