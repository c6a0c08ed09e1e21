//! The signing keys as the database keeps them: loaded at start (the first start makes one),
//! rotated by `kiln keys rotate-signing`, and reloaded when a token names a key this node has not
//! seen, so any node of a cluster verifies any node's tokens, before and after a rotation. The
//! private keys are stored sealed under the data key ring (docs/secrets.md).

use std::sync::Arc;

use super::signing::{KeyRing, SigningKey};
use super::store::StoredKey;
use crate::sensitive::{SIGNING_KEY_CONTEXT, Sensitive};
use crate::store::{DynStore, StoreError};

/// Retired keys keep verifying for this long: longer than any access or ID token lives.
const RETIRED_KEY_GRACE_SECS: i64 = 2 * 3600;

fn new_kid(now: i64) -> String {
    format!("kiln-{now}-{}", &super::secrets::random_token(6))
}

fn stored(key: &SigningKey, now: i64, sensitive: &Sensitive) -> StoredKey {
    StoredKey {
        kid: key.kid.clone(),
        algorithm: "RS256".into(),
        private_pem: sensitive.seal_secret(&key.private_pem, SIGNING_KEY_CONTEXT),
        public_jwk: key.public_jwk.to_string(),
        created_at: now,
        retired_at: None,
    }
}

/// Generates a new active key and retires the current one (it verifies until its tokens expire).
pub async fn rotate(store: &DynStore, sensitive: &Sensitive) -> Result<String, StoreError> {
    let now = chrono::Utc::now().timestamp();
    let kid = new_kid(now);
    let key = tokio::task::spawn_blocking(move || SigningKey::generate_rs256(&kid))
        .await
        .map_err(|e| StoreError::Configuration(e.to_string()))?
        .map_err(|e| StoreError::Configuration(e.to_string()))?;
    store.rotate_signing_key(&stored(&key, now, sensitive)).await?;
    Ok(key.kid)
}

/// The key ring from the database, making the first key when there is none.
pub async fn load(store: &DynStore, sensitive: &Sensitive) -> Result<Arc<KeyRing>, StoreError> {
    let mut keys = store.signing_keys().await?;
    if !keys.iter().any(|k| k.retired_at.is_none()) {
        rotate(store, sensitive).await?;
        keys = store.signing_keys().await?;
    }
    let now = chrono::Utc::now().timestamp();
    let bad = |e: super::signing::KeyError| StoreError::Configuration(format!("signing keys: {e}"));
    let active = keys
        .iter()
        .find(|k| k.retired_at.is_none())
        .ok_or_else(|| StoreError::Configuration("no active signing key".into()))?;
    let public_jwk = serde_json::from_str(&active.public_jwk).map_err(|e| StoreError::Configuration(e.to_string()))?;
    let private_pem = sensitive
        .open_secret(&active.private_pem, SIGNING_KEY_CONTEXT)
        .map_err(|e| StoreError::Configuration(format!("signing key {}: {e}", active.kid)))?;
    let active_key = SigningKey { kid: active.kid.clone(), private_pem, public_jwk };
    let older = keys
        .iter()
        .filter(|k| k.retired_at.is_some_and(|retired| retired + RETIRED_KEY_GRACE_SECS > now))
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    Ok(Arc::new(KeyRing::new(active_key, older).map_err(bad)?))
}
