//! Creating user accounts and registering apps: the rules both `kiln user create` / `kiln client
//! register` and the HTTP APIs apply, so an account or app is valid however it was made.

use super::scopes::ScopeSet;
use super::secrets::{check_password_strength, digest, hash_password, random_token};
use super::store::{ClientRecord, UserRecord};
use crate::access::TenantId;
use crate::store::DynStore;

use crate::access::roles::ROLES;

pub struct NewUser {
    pub tenant: String,
    pub username: String,
    pub password: String,
    pub role: String,
    pub fhir_user: Option<String>,
    pub display_name: Option<String>,
    /// `issuer|subject` at the clinic's OpenID Connect provider.
    pub external_subject: Option<String>,
}

pub async fn create_user(store: &DynStore, new: NewUser) -> Result<UserRecord, String> {
    TenantId::parse(&new.tenant)?;
    let username = new.username.trim().to_string();
    if username.is_empty() || username.len() > 128 || username.chars().any(char::is_whitespace) {
        return Err("the user name must be 1 to 128 characters without spaces".into());
    }
    if !ROLES.contains(&new.role.as_str()) {
        return Err(format!("unknown role '{}'; one of: {}", new.role, ROLES.join(", ")));
    }
    if let Some(reference) = &new.fhir_user {
        let (kind, id) = reference.split_once('/').ok_or("fhirUser must look like Practitioner/123")?;
        if !["Practitioner", "Patient", "RelatedPerson", "Person"].contains(&kind) || !crate::fhir::is_valid_id(id) {
            return Err("fhirUser must be a Practitioner, Patient, RelatedPerson or Person reference".into());
        }
        if (new.role == "patient") != (kind == "Patient") || (new.role == "related-person") != (kind == "RelatedPerson")
        {
            return Err("a patient account is linked to a Patient, a related-person account to a RelatedPerson".into());
        }
        let tenant = TenantId::parse(&new.tenant)?;
        let linked = store.read_current(&tenant, kind, id).await.map_err(|e| e.to_string())?;
        if linked.is_none_or(|record| record.deleted) {
            return Err(format!("{reference} does not exist in clinic {tenant}: create it first"));
        }
    } else if new.role == "patient" {
        return Err("a patient account needs --fhir-user Patient/<id>".into());
    }
    check_password_strength(&new.password)?;
    if store.user_by_name(&username).await.map_err(|e| e.to_string())?.is_some() {
        return Err(format!("the user name '{username}' is taken"));
    }
    let password = new.password.clone();
    let password_hash =
        tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|e| e.to_string())??;
    let user = UserRecord {
        user_id: uuid::Uuid::new_v4().to_string(),
        tenant: new.tenant,
        display_name: new.display_name.unwrap_or_else(|| username.clone()),
        username,
        password_hash,
        role: new.role,
        fhir_user: new.fhir_user,
        disabled: false,
        created_at: chrono::Utc::now().timestamp(),
        external_subject: new.external_subject,
        totp_secret: None,
        totp_last_step: None,
        failed_logins: 0,
        locked_at: None,
        password_changed_at: None,
        training_completed_at: None,
    };
    store.insert_user(&user).await.map_err(|e| e.to_string())?;
    Ok(user)
}

/// How an app authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientKind {
    Public,
    ConfidentialSymmetric,
    ConfidentialAsymmetric,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Public => "public",
            ClientKind::ConfidentialSymmetric => "confidential-symmetric",
            ClientKind::ConfidentialAsymmetric => "confidential-asymmetric",
        }
    }
}

pub struct NewClient {
    pub tenant: String,
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub scopes: String,
    pub launch_url: Option<String>,
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    /// `active`, or `pending` for a registration an administrator must approve.
    pub status: String,
}

/// A registered app, and its secret (shown once: only its digest is kept).
pub struct Registered {
    pub client: ClientRecord,
    pub secret: Option<String>,
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://")) && !url.contains('#') && url.len() > 8
}

pub async fn register_client(store: &DynStore, new: NewClient) -> Result<Registered, String> {
    TenantId::parse(&new.tenant)?;
    if new.name.trim().is_empty() {
        return Err("the app needs a name".into());
    }
    let scopes = ScopeSet::parse(&new.scopes).map_err(|e| e.to_string())?;
    if scopes.is_empty() {
        return Err("the app needs at least one allowed scope".into());
    }
    for uri in &new.redirect_uris {
        if !is_http_url(uri) {
            return Err(format!("redirect URI '{uri}' must be an absolute http(s) URL without a fragment"));
        }
    }
    if new.kind == ClientKind::Public && new.redirect_uris.is_empty() {
        return Err("a public app needs at least one redirect URI".into());
    }
    if let Some(url) = &new.launch_url
        && !is_http_url(url)
    {
        return Err(format!("launch URL '{url}' must be an absolute http(s) URL"));
    }
    match new.kind {
        ClientKind::ConfidentialAsymmetric => match (&new.jwks, &new.jwks_uri) {
            (Some(jwks), None) => {
                let value: serde_json::Value =
                    serde_json::from_str(jwks).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
                super::client_assertion::public_jwk_is_valid(&value)?;
            }
            (None, Some(url)) if url.starts_with("https://") && is_http_url(url) => {}
            _ => return Err("an asymmetric client needs exactly one of a JWKS or an https JWKS URL".into()),
        },
        _ if new.jwks.is_some() || new.jwks_uri.is_some() => {
            return Err("only confidential-asymmetric clients register keys".into());
        }
        _ => {}
    }
    let secret = (new.kind == ClientKind::ConfidentialSymmetric).then(|| random_token(32));
    let client = ClientRecord {
        client_id: uuid::Uuid::new_v4().to_string(),
        tenant: new.tenant,
        name: new.name.trim().to_string(),
        kind: new.kind.as_str().to_string(),
        secret_hash: secret.as_deref().map(digest),
        jwks: new.jwks,
        jwks_uri: new.jwks_uri,
        redirect_uris: new.redirect_uris,
        scopes: scopes.to_string(),
        launch_url: new.launch_url,
        status: new.status,
        created_at: chrono::Utc::now().timestamp(),
    };
    store.insert_client(&client).await.map_err(|e| e.to_string())?;
    Ok(Registered { client, secret })
}

/// Enrols a TOTP second factor for `username`; answers the `otpauth://` URI for the
/// authenticator app. Enrolling again replaces the secret.
pub async fn enroll_second_factor(
    store: &DynStore,
    sensitive: &crate::sensitive::Sensitive,
    username: &str,
) -> Result<String, String> {
    let user = store.user_by_name(username).await.map_err(|e| e.to_string())?.ok_or("no such user")?;
    let secret = super::totp::new_secret();
    let sealed = sensitive.seal_secret(&super::totp::base32(&secret), crate::sensitive::TOTP_CONTEXT);
    store.set_totp_secret(&user.user_id, Some(&sealed)).await.map_err(|e| e.to_string())?;
    Ok(super::totp::provisioning_uri(&secret, &user.username))
}

async fn user_named(store: &DynStore, username: &str) -> Result<UserRecord, String> {
    store.user_by_name(username).await.map_err(|e| e.to_string())?.ok_or_else(|| format!("no user named '{username}'"))
}

/// Unlocks an account locked by failed sign-ins (`kiln user unlock`).
pub async fn unlock(store: &DynStore, username: &str) -> Result<(), String> {
    let user = user_named(store, username).await?;
    store.unlock_user(&user.user_id).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Sets a new password (checked against the policy) and restarts its age (`kiln user set-password`).
pub async fn set_password(store: &DynStore, username: &str, password: String) -> Result<(), String> {
    let user = user_named(store, username).await?;
    check_password_strength(&password)?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await.map_err(|e| e.to_string())??;
    store.set_password(&user.user_id, &hash, chrono::Utc::now().timestamp()).await.map_err(|e| e.to_string())
}

/// Records the day a user completed HIPAA training (`kiln user training`).
pub async fn record_training(store: &DynStore, username: &str, day: chrono::NaiveDate) -> Result<(), String> {
    let user = user_named(store, username).await?;
    let at = day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp()).ok_or("not a day")?;
    store.set_training_completed(&user.user_id, at).await.map_err(|e| e.to_string())
}

/// Why a user whose password (and second factor) were right may still not sign in, if they may
/// not: a locked account, an expired password, HIPAA training missing or too old, or a role that
/// requires a second factor the account does not have. The account settings say which apply.
/// `federated`: the user signed in at the clinic's identity provider, whose second factor is its own.
pub fn sign_in_refusal(
    settings: &crate::config::Settings,
    user: &UserRecord,
    now: i64,
    federated: bool,
) -> Option<String> {
    const DAY: i64 = 24 * 3600;
    if user.locked_at.is_some() {
        return Some(
            "This account is locked after too many failed sign-ins. Ask an administrator to unlock it.".into(),
        );
    }
    if settings.password_max_age_days > 0 {
        let set_at = user.password_changed_at.unwrap_or(user.created_at);
        if now - set_at > i64::from(settings.password_max_age_days) * DAY {
            return Some("Your password has expired. Ask an administrator to set a new one.".into());
        }
    }
    if settings.training_max_age_days > 0 && user.role != "patient" && user.role != "related-person" {
        let current =
            user.training_completed_at.is_some_and(|at| now - at <= i64::from(settings.training_max_age_days) * DAY);
        if !current {
            return Some(
                "Access to health information needs current HIPAA training on record. Ask an administrator.".into(),
            );
        }
    }
    if !federated && user.totp_secret.is_none() && settings.second_factor_required_for(&user.role) {
        return Some(format!(
            "The role '{}' must sign in with a second factor, and none is enrolled. Ask an administrator to enroll one.",
            user.role
        ));
    }
    None
}
