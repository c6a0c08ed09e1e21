//! The administration API: accounts and apps, for an administrator's tools. Every call needs an
//! access token of a signed-in user whose role is `admin`, granted the scope `kiln/admin` (which
//! only apps registered for it can ask for), and acts in that user's clinic only.
//! The same rules as `kiln user create` and `kiln client register` apply (`accounts`).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::accounts::{ClientKind, NewClient, NewUser, create_user, register_client};
use super::store::{ClientRecord, UserRecord};
use super::tokens::AccessClaims;
use crate::app::AppState;

/// The scope of the administration API.
pub const ADMIN_SCOPE: &str = "kiln/admin";

fn refuse(status: StatusCode, error: &str, description: impl Into<String>) -> Response {
    let mut response =
        (status, axum::Json(json!({"error": error, "error_description": description.into()}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static(r#"Bearer realm="kiln""#));
    }
    response
}

/// The calling administrator's token, or the refusal.
async fn administrator(state: &AppState, headers: &HeaderMap) -> Result<std::sync::Arc<AccessClaims>, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .ok_or_else(|| {
            refuse(StatusCode::UNAUTHORIZED, "invalid_token", "an administrator's access token is required")
        })?;
    let claims = state
        .auth
        .verify_access_token(&state.store, token.trim())
        .await
        .map_err(|why| refuse(StatusCode::UNAUTHORIZED, "invalid_token", why))?;
    if claims.role.as_deref() != Some("admin") {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "insufficient_role",
            "only an administrator may manage accounts and apps",
        ));
    }
    // An administrator's token from any app is not enough: the app must be one registered for
    // administration, and the administrator must have granted it that.
    if !claims.scope.split(' ').any(|s| s == ADMIN_SCOPE) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("the token needs the scope {ADMIN_SCOPE}"),
        ));
    }
    Ok(claims)
}

fn user_json(user: &UserRecord) -> Value {
    json!({
        "id": user.user_id,
        "username": user.username,
        "role": user.role,
        "fhirUser": user.fhir_user,
        "displayName": user.display_name,
        "disabled": user.disabled,
        "locked": user.locked_at.is_some(),
        "failedSignIns": user.failed_logins,
        "secondFactor": user.totp_secret.is_some(),
        "trainingCompleted": user.training_completed_at.map(|at| chrono::DateTime::from_timestamp(at, 0).map(|t| t.date_naive().to_string())),
    })
}

/// `POST /auth/admin/users/{id}/unlock`: lifts a lockout after failed sign-ins.
pub async fn unlock_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(user_id): Path<String>,
) -> Response {
    let admin = match administrator(&state, &headers).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    match state.store.user(&user_id).await {
        Ok(Some(user)) if user.tenant == admin.tenant => {}
        Ok(_) => return refuse(StatusCode::NOT_FOUND, "not_found", "no such user in this clinic"),
        Err(err) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", err.to_string()),
    }
    match state.store.unlock_user(&user_id).await {
        Ok(_) => {
            tracing::info!(admin = %admin.sub, user = %user_id, "account unlocked");
            match state.store.user(&user_id).await {
                Ok(Some(user)) => axum::Json(user_json(&user)).into_response(),
                _ => refuse(StatusCode::NOT_FOUND, "not_found", "no such user in this clinic"),
            }
        }
        Err(err) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", err.to_string()),
    }
}

fn client_json(client: &ClientRecord) -> Value {
    json!({
        "client_id": client.client_id,
        "client_name": client.name,
        "kind": client.kind,
        "redirect_uris": client.redirect_uris,
        "scope": client.scopes,
        "launch_url": client.launch_url,
        "status": client.status,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserRequest {
    username: String,
    password: String,
    role: String,
    fhir_user: Option<String>,
    display_name: Option<String>,
}

/// `POST /auth/admin/users`.
pub async fn create_account(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let admin = match administrator(&state, &headers).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    let request: UserRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, "invalid_request", err.to_string()),
    };
    let new = NewUser {
        tenant: admin.tenant.clone(),
        username: request.username,
        password: request.password,
        role: request.role,
        fhir_user: request.fhir_user,
        display_name: request.display_name,
        external_subject: None,
    };
    match create_user(&state.store, new).await {
        Ok(user) => {
            tracing::info!(admin = %admin.sub, user = %user.username, role = %user.role, "account created");
            (StatusCode::CREATED, axum::Json(user_json(&user))).into_response()
        }
        Err(message) => refuse(StatusCode::BAD_REQUEST, "invalid_request", message),
    }
}

/// `GET /auth/admin/users`: the accounts of the administrator's clinic.
pub async fn list_accounts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = match administrator(&state, &headers).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    match state.store.users(&admin.tenant).await {
        Ok(users) => axum::Json(json!({"users": users.iter().map(user_json).collect::<Vec<_>>()})).into_response(),
        Err(err) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", err.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientRequest {
    client_name: String,
    kind: String,
    #[serde(default)]
    redirect_uris: Vec<String>,
    scope: String,
    launch_url: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
}

/// `POST /auth/admin/clients`: registers an app, active at once.
pub async fn register_app(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let admin = match administrator(&state, &headers).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    let request: ClientRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(err) => return refuse(StatusCode::BAD_REQUEST, "invalid_request", err.to_string()),
    };
    let kind = match request.kind.as_str() {
        "public" => ClientKind::Public,
        "confidential-symmetric" => ClientKind::ConfidentialSymmetric,
        "confidential-asymmetric" => ClientKind::ConfidentialAsymmetric,
        other => return refuse(StatusCode::BAD_REQUEST, "invalid_request", format!("unknown kind '{other}'")),
    };
    let new = NewClient {
        tenant: admin.tenant.clone(),
        name: request.client_name,
        kind,
        redirect_uris: request.redirect_uris,
        scopes: request.scope,
        launch_url: request.launch_url,
        jwks: request.jwks.map(|j| j.to_string()),
        jwks_uri: request.jwks_uri,
        status: "active".into(),
    };
    match register_client(&state.store, new).await {
        Ok(registered) => {
            tracing::info!(admin = %admin.sub, client = %registered.client.client_id, "app registered");
            let mut answer = client_json(&registered.client);
            if let Some(secret) = registered.secret {
                answer["client_secret"] = json!(secret);
            }
            (StatusCode::CREATED, axum::Json(answer)).into_response()
        }
        Err(message) => refuse(StatusCode::BAD_REQUEST, "invalid_request", message),
    }
}

/// `GET /auth/admin/clients`: the apps of the administrator's clinic.
pub async fn list_apps(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let admin = match administrator(&state, &headers).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    match state.store.clients().await {
        Ok(clients) => {
            let mine: Vec<Value> = clients.iter().filter(|c| c.tenant == admin.tenant).map(client_json).collect();
            axum::Json(json!({"clients": mine})).into_response()
        }
        Err(err) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", err.to_string()),
    }
}

/// `POST /auth/admin/clients/{id}/{approve|disable}`.
pub async fn set_app_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((client_id, action)): Path<(String, String)>,
) -> Response {
    let admin = match administrator(&state, &headers).await {
        Ok(admin) => admin,
        Err(refusal) => return refusal,
    };
    let status = match action.as_str() {
        "approve" => "active",
        "disable" => "disabled",
        other => return refuse(StatusCode::NOT_FOUND, "not_found", format!("no action '{other}'")),
    };
    match state.store.client(&client_id).await {
        Ok(Some(client)) if client.tenant == admin.tenant => {}
        Ok(_) => return refuse(StatusCode::NOT_FOUND, "not_found", "no such app in this clinic"),
        Err(err) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", err.to_string()),
    }
    match state.store.set_client_status(&client_id, status).await {
        Ok(_) => {
            tracing::info!(admin = %admin.sub, client = %client_id, status, "app status changed");
            axum::Json(json!({"client_id": client_id, "status": status})).into_response()
        }
        Err(err) => refuse(StatusCode::INTERNAL_SERVER_ERROR, "server_error", err.to_string()),
    }
}
