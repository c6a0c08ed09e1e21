//! Token revocation (RFC 7009): a client ends a refresh or access token, and with it the whole
//! authorization it came from. Unknown tokens are answered 200 like known ones (§2.2).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::client_auth;
use super::secrets::digest;
use super::store::{Redeemed, SecretKind};
use super::token::{OAuthError, no_store, parse_form};
use crate::app::AppState;

pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let done = async {
        let form = parse_form(&body)?;
        let (client, _) = client_auth::authenticate(&state, &headers, &form).await?;
        let token = form.get("token").ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        let until = chrono::Utc::now().timestamp() + state.settings.refresh_token_lifetime_secs;
        // A refresh token: redeeming it marks it used; either way its family ends.
        let now = chrono::Utc::now().timestamp();
        // Only the client a refresh token was issued to may end it; anyone else's attempt is
        // ignored (RFC 7009 §2.1) rather than allowed to use it up.
        let owned = match state.store.unused_secret(&digest(token), SecretKind::RefreshToken).await {
            Ok(Some(secret)) => secret.client_id == client.client_id,
            Ok(None) => false,
            Err(err) => return Err(OAuthError::server(err)),
        };
        let family = if owned {
            match state.store.redeem_secret(&digest(token), SecretKind::RefreshToken, now).await {
                Ok(Redeemed::Fresh(secret)) => Some(secret.family),
                Ok(Redeemed::Reused { family }) => Some(family),
                Ok(Redeemed::Unknown) => None,
                Err(err) => return Err(OAuthError::server(err)),
            }
        } else {
            None
        };
        let family = match family {
            Some(family) => Some(family),
            None => match state.auth.verify_access_token(&state.store, token).await {
                Ok(claims) if claims.client_id == client.client_id => Some(claims.family.clone()),
                _ => None,
            },
        };
        if let Some(family) = family {
            state.auth.revoke_family(&state.store, &family, until).await.map_err(OAuthError::server)?;
        }
        Ok(())
    };
    match done.await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            response
        }
        Err(err) => err.into_response(),
    }
}
