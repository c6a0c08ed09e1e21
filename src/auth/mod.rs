//! Kiln's own SMART on FHIR authorization server (SMART App Launch 2.2, docs/smart.md): discovery,
//! authorize with sign-in and consent pages, token, introspection, revocation and registration.
//! It lives beside the FHIR API and shares only the store with it; the API sees its work as
//! verified [`tokens::AccessClaims`].

pub mod accounts;
pub mod admin;
pub mod authorize;
pub mod client_assertion;
pub mod client_auth;
pub mod discovery;
pub mod federation;
pub mod fetched;
pub mod introspection;
pub mod keys;
pub mod launcher;
pub mod pages;
pub mod pkce;
pub mod registration;
pub mod revocation;
pub mod scopes;
pub mod secrets;
pub mod session;
pub mod signing;
pub mod store;
pub mod token;
pub mod tokens;
pub mod totp;

use axum::Router;
use axum::routing::{get, post};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::app::AppState;
use crate::store::{DynStore, StoreError};
use signing::{KeyError, KeyRing};
use tokens::AccessClaims;

/// How stale this node's copy of the revoked families may be: a revocation on another node
/// takes effect here within this time.
const REVOCATION_REFRESH: Duration = Duration::from_secs(2);
/// How often a token naming an unknown key may make this node reload the keys.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// How many verified tokens a node remembers (a token is a few hundred bytes).
const VERIFIED_TOKENS: usize = 10_000;

/// The authorization server's shared state.
pub struct AuthServer {
    keys: RwLock<Arc<KeyRing>>,
    /// Tokens whose signature was verified: an RSA verification costs more than the rest of a
    /// read, and a client sends the same token for an hour. Expiry and revocation are still
    /// checked on every request.
    verified: RwLock<HashMap<String, Arc<AccessClaims>>>,
    keys_loaded: Mutex<Instant>,
    revoked: RwLock<Revoked>,
    /// The FHIR base URL: the token issuer and the audience apps must name.
    pub issuer: String,
    /// Scheme, host and port: where `/auth/…` lives.
    pub origin: String,
    /// Whether cookies must be `Secure` (the server is reached over HTTPS).
    pub secure_cookies: bool,
    /// Seals the private signing keys in the database.
    sensitive: Arc<crate::sensitive::Sensitive>,
    /// Clients' JWK Sets fetched from their `jwks_uri`.
    pub client_key_sets: fetched::Fetched<serde_json::Value>,
    /// The identity provider's discovery document and keys.
    pub provider_metadata: fetched::Fetched<openidconnect::core::CoreProviderMetadata>,
}

struct Revoked {
    families: HashSet<String>,
    loaded: Instant,
}

impl AuthServer {
    pub async fn open(
        store: &DynStore,
        base_url: &str,
        sensitive: Arc<crate::sensitive::Sensitive>,
    ) -> Result<AuthServer, StoreError> {
        let keys = keys::load(store, &sensitive).await?;
        let families = store.revoked_families(chrono::Utc::now().timestamp()).await?.into_iter().collect();
        let origin = match base_url.find("://").and_then(|at| base_url[at + 3..].find('/').map(|p| at + 3 + p)) {
            Some(path_start) => base_url[..path_start].to_string(),
            None => base_url.to_string(),
        };
        Ok(AuthServer {
            keys: RwLock::new(keys),
            verified: RwLock::new(HashMap::new()),
            keys_loaded: Mutex::new(Instant::now()),
            revoked: RwLock::new(Revoked { families, loaded: Instant::now() }),
            issuer: base_url.to_string(),
            sensitive,
            secure_cookies: base_url.starts_with("https://"),
            origin,
            client_key_sets: fetched::Fetched::default(),
            provider_metadata: fetched::Fetched::default(),
        })
    }

    /// The URL of an authorization server endpoint, e.g. `endpoint("token")`.
    pub fn endpoint(&self, name: &str) -> String {
        format!("{}/auth/{name}", self.origin)
    }

    /// Reloads the keys from the store: after a rotation, this node signs with the new key.
    pub async fn reload_keys(&self, store: &DynStore) -> Result<(), StoreError> {
        let ring = keys::load(store, &self.sensitive).await?;
        *self.keys.write().expect("key ring lock") = ring;
        Ok(())
    }

    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.read().expect("key ring lock").clone()
    }

    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        self.key_ring().sign(claims)
    }

    /// Verifies an access token: signature by a current or recently retired key (reloading
    /// the keys when another node rotated them), issuer, audience, expiry, and that its family
    /// was not revoked.
    pub async fn verify_access_token(&self, store: &DynStore, token: &str) -> Result<Arc<AccessClaims>, String> {
        let remembered = self.verified.read().expect("verified tokens lock").get(token).cloned();
        if let Some(claims) = remembered {
            if claims.exp <= chrono::Utc::now().timestamp() {
                return Err("the token has expired".into());
            }
            if self.is_revoked(store, &claims.family).await {
                return Err("the token was revoked".into());
            }
            return Ok(claims);
        }
        let claims = match self.key_ring().verify::<AccessClaims>(token, &self.issuer, Some(&self.issuer)) {
            Err(KeyError::UnknownKid(kid)) if self.may_reload_keys() => {
                let ring = keys::load(store, &self.sensitive).await.map_err(|e| e.to_string())?;
                *self.keys.write().expect("key ring lock") = ring.clone();
                ring.verify::<AccessClaims>(token, &self.issuer, Some(&self.issuer))
                    .map_err(|_| format!("the token was signed with key '{kid}', which this server does not have"))?
            }
            other => other.map_err(|e| e.to_string())?,
        };
        if self.is_revoked(store, &claims.family).await {
            return Err("the token was revoked".into());
        }
        let claims = Arc::new(claims);
        let mut verified = self.verified.write().expect("verified tokens lock");
        if verified.len() >= VERIFIED_TOKENS {
            verified.clear();
        }
        verified.insert(token.to_string(), claims.clone());
        Ok(claims)
    }

    fn may_reload_keys(&self) -> bool {
        let mut loaded = self.keys_loaded.lock().expect("key reload lock");
        if loaded.elapsed() < KEY_RELOAD_INTERVAL {
            return false;
        }
        *loaded = Instant::now();
        true
    }

    pub async fn is_revoked(&self, store: &DynStore, family: &str) -> bool {
        let stale = {
            let revoked = self.revoked.read().expect("revocation lock");
            if revoked.families.contains(family) {
                return true;
            }
            revoked.loaded.elapsed() > REVOCATION_REFRESH
        };
        if stale {
            match store.revoked_families(chrono::Utc::now().timestamp()).await {
                Ok(families) => {
                    let mut revoked = self.revoked.write().expect("revocation lock");
                    revoked.families = families.into_iter().collect();
                    revoked.loaded = Instant::now();
                    return revoked.families.contains(family);
                }
                Err(err) => tracing::warn!(error = %err, "cannot refresh the revoked token families"),
            }
        }
        false
    }

    /// Revokes a family here and now, and for the other nodes through the store.
    pub async fn revoke_family(&self, store: &DynStore, family: &str, expires_at: i64) -> Result<(), StoreError> {
        store.revoke_family(family, chrono::Utc::now().timestamp(), expires_at).await?;
        self.revoked.write().expect("revocation lock").families.insert(family.to_string());
        Ok(())
    }

    /// Forgets the cached revocations, so the next check reads the store.
    pub fn reload_revocations(&self) {
        self.revoked.write().expect("revocation lock").loaded = Instant::now() - 2 * REVOCATION_REFRESH;
    }
}

/// Cross-origin access for what browser apps call directly (SMART App Launch 2.2
/// "Considerations for CORS support"): any origin, since no cookie is involved: a bearer token
/// or the token request itself is the credential. The pages people use (sign-in, consent,
/// launcher) get none.
pub fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::header;
    use tower_http::cors::{Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(Any)
        .allow_headers(Any)
        .expose_headers([
            header::LOCATION,
            header::ETAG,
            header::LAST_MODIFIED,
            header::CONTENT_LOCATION,
            header::WWW_AUTHENTICATE,
        ])
        .max_age(Duration::from_secs(3600))
}

/// The authorization server's routes, mounted at the origin.
pub fn routes() -> Router<AppState> {
    let for_apps = Router::new()
        .route("/auth/token", post(token::token))
        .route("/auth/register", post(registration::register))
        .route("/auth/revoke", post(revocation::revoke))
        .route("/auth/jwks", get(discovery::jwks))
        .route("/auth/smart-style.json", get(discovery::smart_style))
        .layer(cors());
    Router::new()
        .route("/auth/authorize", get(authorize::authorize_get).post(authorize::authorize_post))
        .route("/auth/login", get(session::login_page).post(session::login))
        .route("/auth/logout", post(session::logout))
        .route("/auth/mfa", post(session::second_factor))
        .route("/auth/federation/start", get(federation::start))
        .route("/auth/federation/callback", get(federation::callback))
        .route("/auth/consent", post(authorize::consent))
        .route("/auth/introspect", post(introspection::introspect))
        .route("/auth/launcher", get(launcher::launcher_page).post(launcher::launch))
        .route("/auth/apps", get(launcher::connected_apps).post(launcher::revoke_app))
        .route("/auth/admin/users", get(admin::list_accounts).post(admin::create_account))
        .route("/auth/admin/users/{user_id}/unlock", post(admin::unlock_account))
        .route("/auth/admin/clients", get(admin::list_apps).post(admin::register_app))
        .route("/auth/admin/clients/{client_id}/{action}", post(admin::set_app_status))
        .merge(for_apps)
        // Forms, token requests and registrations are small; nobody may make the server buffer more.
        .layer(axum::extract::DefaultBodyLimit::max(AUTH_BODY_LIMIT))
}

/// The largest body an authorization endpoint reads.
const AUTH_BODY_LIMIT: usize = 64 * 1024;
