//! Browser sign-in for the authorization pages: password sign-in, session cookies (HttpOnly,
//! SameSite=Lax, Secure over HTTPS, 24 h at most with an idle time-out), CSRF tokens on every
//! form, and sign-out. Only paths under `/auth/` are followed after sign-in: no open redirects.

use crate::audit::{
    self,
    event::{Actor, Kind, Origin, Outcome},
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::collections::HashMap;

use super::accounts;
use super::pages::{self, ErrorPage, InfoPage, SignInPage};
use super::secrets::{constant_time_eq, digest, random_token, verify_password};
use super::store::{SessionRecord, UserRecord};
use crate::app::AppState;

const SESSION_COOKIE: &str = "kiln_session";

/// What a password is checked against when no such user exists.
static UNKNOWN_USER_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| super::secrets::hash_password("no account has this password").unwrap_or_default());
const LOGIN_CSRF_COOKIE: &str = "kiln_login_csrf";

/// A signed-in browser.
pub struct Session {
    /// The digest the session is stored under.
    pub id: String,
    pub csrf: String,
    pub user: UserRecord,
    pub started: i64,
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.auth.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/auth; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"))
        .expect("cookie values are base64url")
}

/// The session the request's cookie names, if it is still valid (not expired, not idle too long,
/// its user not disabled); its idle clock restarts.
pub async fn current(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let token = cookie(headers, SESSION_COOKIE)?;
    let id = digest(&token);
    let record = state.store.session(&id).await.ok()??;
    let now = chrono::Utc::now().timestamp();
    let settings = &state.settings;
    if now - record.created_at > settings.session_lifetime_secs || now - record.last_seen > settings.session_idle_secs {
        let _ = state.store.delete_session(&id).await;
        return None;
    }
    let user = state.store.user(&record.user_id).await.ok()??;
    if user.disabled {
        return None;
    }
    let _ = state.store.touch_session(&id, now).await;
    Some(Session { id, csrf: record.csrf, user, started: record.created_at })
}

/// Where to go after sign-in: only this server's own `/auth/` pages.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with("/auth/") && !path.contains("//") && !path.contains('\\') => path.to_string(),
        _ => "/auth/launcher".to_string(),
    }
}

/// The sign-in page, with a fresh login CSRF token in a cookie and the form.
pub fn sign_in_page(
    state: &AppState,
    next: &str,
    app_name: Option<String>,
    username: &str,
    error: Option<String>,
) -> Response {
    let csrf = random_token(24);
    let title = match &app_name {
        Some(app) => format!("Sign in to continue to {app}"),
        None => "Sign in".to_string(),
    };
    let page = SignInPage {
        title,
        app_name,
        action: "/auth/login".into(),
        hidden: vec![("next".into(), next.to_string())],
        csrf: csrf.clone(),
        username: username.to_string(),
        error,
        identity_provider: super::federation::sign_in_link(state, next),
    };
    let status = if username.is_empty() { StatusCode::OK } else { StatusCode::UNAUTHORIZED };
    let mut response = (status, Html(pages::render_sign_in(&page))).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(state, LOGIN_CSRF_COOKIE, &csrf, 3600));
    page_headers(response.headers_mut());
    response
}

/// Pages with secrets in forms are never cached and never framed (clickjacking).
pub fn page_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage { title: title.into(), message: message.into() };
    let mut response = (status, Html(pages::render_error(&page))).into_response();
    page_headers(response.headers_mut());
    response
}

pub async fn login_page(State(state): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    sign_in_page(&state, &safe_next(query.get("next").map(String::as_str)), None, "", None)
}

/// `POST /auth/login`: checks the login CSRF token and the password, then starts a session.
pub async fn login(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let next = safe_next(form.get("next").map(String::as_str));
    let username = form.get("username").map(String::as_str).unwrap_or("").trim();
    let csrf_ok = matches!((cookie(&headers, LOGIN_CSRF_COOKIE), form.get("csrf")),
        (Some(expected), Some(sent)) if constant_time_eq(&expected, sent));
    if !csrf_ok {
        return error_page(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "The sign-in form expired or did not come from this site. Go back and try again.",
        );
    }
    let password = form.get("password").map(String::as_str).unwrap_or("");
    let user = match state.store.user_by_name(username).await {
        Ok(user) => user,
        Err(err) => {
            tracing::error!(error = %err, "reading a user failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "Please try again.");
        }
    };
    // The same answer for an unknown user and a wrong password: no account enumeration.
    // An unknown user costs the same Argon2 work as a known one: the answer's timing says nothing.
    let hash = user.as_ref().map_or_else(|| UNKNOWN_USER_HASH.clone(), |u| u.password_hash.clone());
    let password_owned = password.to_string();
    let verified = tokio::task::spawn_blocking(move || verify_password(&password_owned, &hash)).await.unwrap_or(false)
        && user.is_some();
    let user = match user {
        Some(user) if verified && !user.disabled => user,
        _ => {
            tracing::info!(username, "sign-in refused");
            if let Some(user) = user.as_ref().filter(|_| !verified) {
                count_failed_sign_in(&state, &origin, user).await;
            }
            let actor = match &user {
                Some(user) => Actor::user(user),
                None => Actor { claimed_name: Some(username.to_string()), ..Actor::default() },
            };
            let tenant = user.as_ref().map(|u| u.tenant.as_str());
            let reason = "wrong user name or password, or a disabled account";
            audit::record_auth_event(
                &state,
                tenant,
                Kind::login(),
                &actor,
                &origin,
                Outcome::MinorFailure,
                Some(reason),
            )
            .await;
            return sign_in_page(&state, &next, None, username, Some("The user name or password is wrong.".into()));
        }
    };
    let now = chrono::Utc::now().timestamp();
    if let Some(reason) = accounts::sign_in_refusal(&state.settings, &user, now, false) {
        tracing::info!(username, reason, "sign-in refused");
        audit_user(&state, &origin, &user, Kind::login(), Outcome::MinorFailure, Some(&reason)).await;
        return sign_in_page(&state, &next, None, username, Some(reason));
    }
    if user.totp_secret.is_some() {
        return second_factor_page(&state, &user, &next).await;
    }
    start_session(&state, &origin, &user, &next).await
}

/// Records a sign-in event of a known account in its clinic's audit trail.
async fn audit_user(
    state: &AppState,
    origin: &Origin,
    user: &UserRecord,
    kind: Kind,
    outcome: Outcome,
    reason: Option<&str>,
) {
    audit::record_auth_event(state, Some(&user.tenant), kind, &Actor::user(user), origin, outcome, reason).await;
}

/// Counts a wrong password or one-time code against the account, locking it at the configured
/// number (recorded in the audit trail).
async fn count_failed_sign_in(state: &AppState, origin: &Origin, user: &UserRecord) {
    let threshold = i64::from(state.settings.lockout_after_failed_logins);
    let now = chrono::Utc::now().timestamp();
    match state.store.record_failed_login(&user.user_id, threshold, now).await {
        Ok(Some(_)) if user.locked_at.is_none() => {
            tracing::warn!(user = %user.username, "account locked after failed sign-ins");
            let reason = format!("account locked after {threshold} failed sign-ins");
            audit_user(state, origin, user, Kind::login(), Outcome::MinorFailure, Some(&reason)).await;
        }
        Ok(_) => {}
        Err(err) => tracing::error!(error = %err, "counting a failed sign-in failed"),
    }
}

const SECOND_FACTOR_COOKIE: &str = "kiln_mfa";
/// The time a user has to type the one-time code after the password.
const SECOND_FACTOR_SECS: i64 = 300;

#[derive(serde::Serialize, serde::Deserialize)]
struct PendingSignIn {
    next: String,
    csrf: String,
}

/// After a correct password, for an account with a second factor: the one-time code page.
async fn second_factor_page(state: &AppState, user: &UserRecord, next: &str) -> Response {
    let token = random_token(32);
    let pending = PendingSignIn { next: next.to_string(), csrf: random_token(24) };
    let record = super::store::SecretRecord {
        family: random_token(8),
        client_id: "sign-in".into(),
        user_id: Some(user.user_id.clone()),
        grant_json: serde_json::to_string(&pending).unwrap_or_default(),
        expires_at: chrono::Utc::now().timestamp() + SECOND_FACTOR_SECS,
    };
    if let Err(err) = state.store.insert_secret(&digest(&token), super::store::SecretKind::SecondFactor, &record).await
    {
        tracing::error!(error = %err, "starting a second-factor sign-in failed");
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "Please try again.");
    }
    let mut response = mfa_page(&user.display_name, &pending.csrf, None, StatusCode::OK);
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(state, SECOND_FACTOR_COOKIE, &token, SECOND_FACTOR_SECS));
    response
}

fn mfa_page(user_display: &str, csrf: &str, error: Option<String>, status: StatusCode) -> Response {
    let page = pages::MfaPage {
        action: "/auth/mfa".into(),
        hidden: vec![],
        csrf: csrf.to_string(),
        error,
        user_display: user_display.to_string(),
    };
    let mut response = (status, Html(pages::render_mfa(&page))).into_response();
    page_headers(response.headers_mut());
    response
}

/// `POST /auth/mfa`: the one-time code of a sign-in whose password was right.
pub async fn second_factor(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let expired = || error_page(StatusCode::UNAUTHORIZED, "Sign-in expired", "Sign in again with your password.");
    let Some(token) = cookie(&headers, SECOND_FACTOR_COOKIE) else { return expired() };
    let kind = super::store::SecretKind::SecondFactor;
    let now = chrono::Utc::now().timestamp();
    let record = match state.store.unused_secret(&digest(&token), kind).await {
        Ok(Some(record)) if record.expires_at >= now => record,
        _ => return expired(),
    };
    let Ok(pending) = serde_json::from_str::<PendingSignIn>(&record.grant_json) else { return expired() };
    if !form.get("csrf").is_some_and(|sent| constant_time_eq(sent, &pending.csrf)) {
        return error_page(StatusCode::FORBIDDEN, "Sign-in refused", "The form did not come from this site.");
    }
    let user = match state.store.user(record.user_id.as_deref().unwrap_or_default()).await {
        Ok(Some(user)) if !user.disabled => user,
        _ => return expired(),
    };
    let secret = user
        .totp_secret
        .as_deref()
        .and_then(|sealed| state.sensitive.open_secret(sealed, crate::sensitive::TOTP_CONTEXT).ok())
        .and_then(|secret| super::totp::from_base32(&secret))
        .unwrap_or_default();
    let code = form.get("code").map(String::as_str).unwrap_or("");
    let accepted = match super::totp::verify(&secret, code, now, user.totp_last_step) {
        Some(step) => state.store.use_totp_step(&user.user_id, step).await.unwrap_or(false),
        None => false,
    };
    if !accepted {
        // One guess per password: a wrong code ends the pending sign-in, so guessing codes costs
        // a password check (and its Argon2 work) each time.
        tracing::info!(user = %user.username, "a one-time code was refused");
        let reason = Some("wrong one-time code");
        audit_user(&state, &origin, &user, Kind::login(), Outcome::MinorFailure, reason).await;
        let _ = state.store.redeem_secret(&digest(&token), kind, now).await;
        count_failed_sign_in(&state, &origin, &user).await;
        let error = Some("That code was wrong or already used. Sign in again.".into());
        let mut response = sign_in_page(&state, &pending.next, None, &user.username, error);
        response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SECOND_FACTOR_COOKIE, "", 0));
        return response;
    }
    // The pending sign-in is used up: its cookie cannot start a second session.
    let _ = state.store.redeem_secret(&digest(&token), kind, now).await;
    let mut response = start_session(&state, &origin, &user, &pending.next).await;
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SECOND_FACTOR_COOKIE, "", 0));
    response
}

/// Starts a session for `user` and sends the browser on to `next` (already checked).
pub async fn start_session(state: &AppState, origin: &Origin, user: &UserRecord, next: &str) -> Response {
    let token = random_token(32);
    let now = chrono::Utc::now().timestamp();
    let record =
        SessionRecord { user_id: user.user_id.clone(), csrf: random_token(24), created_at: now, last_seen: now };
    if let Err(err) = state.store.insert_session(&digest(&token), &record).await {
        tracing::error!(error = %err, "starting a session failed");
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "Please try again.");
    }
    tracing::info!(user = %user.username, "signed in");
    if user.failed_logins > 0 {
        let _ = state.store.clear_failed_logins(&user.user_id).await;
    }
    audit_user(state, origin, user, Kind::login(), Outcome::Success, None).await;
    let mut response = Redirect::to(next).into_response();
    let lifetime = state.settings.session_lifetime_secs;
    response.headers_mut().append(header::SET_COOKIE, set_cookie(state, SESSION_COOKIE, &token, lifetime));
    response.headers_mut().append(header::SET_COOKIE, set_cookie(state, LOGIN_CSRF_COOKIE, "", 0));
    response
}

/// Checks a state-changing form's CSRF token against the session's.
pub fn csrf_matches(session: &Session, form: &HashMap<String, String>) -> bool {
    form.get("csrf").is_some_and(|sent| constant_time_eq(sent, &session.csrf))
}

/// `POST /auth/logout`: ends the session; `online_access` grants end with it.
pub async fn logout(
    State(state): State<AppState>,
    origin: Origin,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    if let Some(session) = current(&state, &headers).await {
        if !csrf_matches(&session, &form) {
            return error_page(StatusCode::FORBIDDEN, "Sign-out refused", "The form did not come from this site.");
        }
        let _ = state.store.delete_session(&session.id).await;
        let user = &session.user;
        audit_user(&state, &origin, user, Kind::logout(), Outcome::Success, None).await;
    }
    let page = InfoPage { title: "Signed out".into(), message: "You are signed out.".into() };
    let mut response = Html(pages::render_info(&page)).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&state, SESSION_COOKIE, "", 0));
    page_headers(response.headers_mut());
    response
}
