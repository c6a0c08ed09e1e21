//! What the authorization server keeps: signing keys, registered apps, user accounts, browser
//! sessions, one-time secrets (codes, refresh tokens, launch ids), revoked token families, used
//! client-assertion ids and the grants users gave apps. One trait, implemented once for both SQL
//! backends in `store::auth`.

use async_trait::async_trait;

use crate::store::StoreResult;

#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub algorithm: String,
    pub private_pem: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    /// `public`, `confidential-symmetric` or `confidential-asymmetric`.
    pub kind: String,
    pub secret_hash: Option<String>,
    /// A JWK Set (JSON text) for `private_key_jwt`, or a URL to fetch it from.
    pub jwks: Option<String>,
    pub jwks_uri: Option<String>,
    pub redirect_uris: Vec<String>,
    /// The most this app may be granted (space-separated scopes).
    pub scopes: String,
    pub launch_url: Option<String>,
    /// `active`, or `pending` until an administrator approves a dynamic registration.
    pub status: String,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub user_id: String,
    pub tenant: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    /// `Practitioner/…`, `Patient/…` or `RelatedPerson/…`.
    pub fhir_user: Option<String>,
    pub display_name: String,
    pub disabled: bool,
    pub created_at: i64,
    /// `issuer|subject` at the clinic's OpenID Connect provider, for accounts that sign in there.
    pub external_subject: Option<String>,
    /// The TOTP secret (base32), once a second factor is enrolled.
    pub totp_secret: Option<String>,
    pub totp_last_step: Option<i64>,
    /// Failed sign-ins since the last successful one.
    pub failed_logins: i64,
    /// When the account was locked for too many failed sign-ins (until an administrator unlocks it).
    pub locked_at: Option<i64>,
    /// When the password was last set (`None`: when the account was created).
    pub password_changed_at: Option<i64>,
    /// When the user last completed HIPAA training.
    pub training_completed_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user_id: String,
    pub csrf: String,
    pub created_at: i64,
    pub last_seen: i64,
}

/// A one-time secret's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    AuthorizationCode,
    RefreshToken,
    Launch,
    /// A sign-in through the clinic's identity provider, from start to callback.
    Federation,
    /// A password sign-in waiting for its one-time code.
    SecondFactor,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::AuthorizationCode => "code",
            SecretKind::RefreshToken => "refresh",
            SecretKind::Launch => "launch",
            SecretKind::Federation => "federation",
            SecretKind::SecondFactor => "mfa",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SecretRecord {
    pub family: String,
    pub client_id: String,
    pub user_id: Option<String>,
    pub grant_json: String,
    pub expires_at: i64,
}

/// What redeeming a one-time secret found.
#[derive(Debug)]
pub enum Redeemed {
    /// First use: it is now marked used.
    Fresh(SecretRecord),
    /// Used before: the family it belongs to should be revoked.
    Reused {
        family: String,
    },
    Unknown,
}

#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub client_id: String,
    pub scopes: String,
    pub granted_at: i64,
}

#[async_trait]
pub trait AuthStore: Send + Sync {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    /// Adds `key` as the active key and retires the others (they still verify).
    async fn rotate_signing_key(&self, key: &StoredKey) -> StoreResult<()>;

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    async fn clients(&self) -> StoreResult<Vec<ClientRecord>>;
    async fn set_client_status(&self, client_id: &str, status: &str) -> StoreResult<bool>;

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn user(&self, user_id: &str) -> StoreResult<Option<UserRecord>>;
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>>;
    async fn users(&self, tenant: &str) -> StoreResult<Vec<UserRecord>>;
    async fn set_totp_secret(&self, user_id: &str, secret: Option<&str>) -> StoreResult<()>;
    /// Every enrolled TOTP secret as stored (sealed), by user id.
    async fn totp_secrets(&self) -> StoreResult<Vec<(String, String)>>;
    /// Replaces a stored credential with a new encoding of it (a reseal), only if it still is
    /// `old`: a concurrent re-enrolment or rotation wins. Answers whether it was replaced.
    async fn reencode_totp_secret(&self, user_id: &str, old: &str, new: &str) -> StoreResult<bool>;
    async fn reencode_signing_key(&self, kid: &str, old: &str, new: &str) -> StoreResult<bool>;
    /// Records that a TOTP code of `step` was used; false when that step (or a later one) was.
    async fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    /// Counts a failed sign-in; locks the account when the count reaches `lock_at` (0: never).
    /// Answers when the account is locked, if it is.
    async fn record_failed_login(&self, user_id: &str, lock_at: i64, now: i64) -> StoreResult<Option<i64>>;
    async fn clear_failed_logins(&self, user_id: &str) -> StoreResult<()>;
    /// Unlocks a locked account; answers whether the account exists.
    async fn unlock_user(&self, user_id: &str) -> StoreResult<bool>;
    async fn set_password(&self, user_id: &str, password_hash: &str, now: i64) -> StoreResult<()>;
    async fn set_training_completed(&self, user_id: &str, at: i64) -> StoreResult<()>;
    async fn user_by_external_subject(&self, external_subject: &str) -> StoreResult<Option<UserRecord>>;

    async fn insert_session(&self, session_hash: &str, session: &SessionRecord) -> StoreResult<()>;
    async fn session(&self, session_hash: &str) -> StoreResult<Option<SessionRecord>>;
    async fn touch_session(&self, session_hash: &str, now: i64) -> StoreResult<()>;
    async fn delete_session(&self, session_hash: &str) -> StoreResult<()>;

    async fn insert_secret(&self, secret_hash: &str, kind: SecretKind, secret: &SecretRecord) -> StoreResult<()>;
    /// A secret not used yet, without using it.
    async fn unused_secret(&self, secret_hash: &str, kind: SecretKind) -> StoreResult<Option<SecretRecord>>;
    /// Marks the secret used, atomically: of two concurrent redemptions exactly one is `Fresh`.
    async fn redeem_secret(&self, secret_hash: &str, kind: SecretKind, now: i64) -> StoreResult<Redeemed>;

    async fn revoke_family(&self, family: &str, now: i64, expires_at: i64) -> StoreResult<()>;
    /// Revokes every family a user's authorisations of `client_id` started.
    async fn revoke_user_client(&self, user_id: &str, client_id: &str, now: i64) -> StoreResult<()>;
    /// Families revoked and not yet expired.
    async fn revoked_families(&self, now: i64) -> StoreResult<Vec<String>>;

    /// Records a client assertion id; false when it was already used.
    async fn use_assertion_id(&self, client_id: &str, jti: &str, expires_at: i64, now: i64) -> StoreResult<bool>;

    /// Deletes what can no longer be used: secrets past their expiry, sessions older than
    /// `session_cutoff` or idle since `idle_cutoff`, revocations of families that have expired.
    async fn purge_expired(&self, now: i64, session_cutoff: i64, idle_cutoff: i64) -> StoreResult<()>;

    async fn upsert_grant(&self, user_id: &str, client_id: &str, scopes: &str, now: i64) -> StoreResult<()>;
    async fn grants(&self, user_id: &str) -> StoreResult<Vec<GrantRecord>>;
    async fn delete_grant(&self, user_id: &str, client_id: &str) -> StoreResult<()>;
}
