//! The SQL implementation of [`AuthStore`] for both backends (the same statements run on
//! SQLite and PostgreSQL): state writes go to the writer pool, lookups to the readers.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::StoreResult;
use super::sql::{SqlBackend, SqlStore};
use crate::auth::store::{
    AuthStore, ClientRecord, GrantRecord, Redeemed, SecretKind, SecretRecord, SessionRecord, StoredKey, UserRecord,
};

const CLIENT_COLUMNS: &str = "client_id, tenant, name, kind, secret_hash, jwks, jwks_uri, redirect_uris, scopes, \
     launch_url, status, created_at";
const USER_COLUMNS: &str = "user_id, tenant, username, password_hash, role, fhir_user, display_name, disabled, created_at, external_subject, \
     totp_secret, totp_last_step, failed_logins, locked_at, password_changed_at, training_completed_at";

fn client_from_row<R: Row>(row: &R) -> StoreResult<ClientRecord>
where
    usize: ColumnIndex<R>,
    for<'e> String: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> Option<String>: Decode<'e, R::Database>,
    for<'e> i64: Decode<'e, R::Database> + Type<R::Database>,
{
    let redirect_uris: String = row.try_get(7)?;
    Ok(ClientRecord {
        client_id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        name: row.try_get(2)?,
        kind: row.try_get(3)?,
        secret_hash: row.try_get(4)?,
        jwks: row.try_get(5)?,
        jwks_uri: row.try_get(6)?,
        redirect_uris: serde_json::from_str(&redirect_uris).unwrap_or_default(),
        scopes: row.try_get(8)?,
        launch_url: row.try_get(9)?,
        status: row.try_get(10)?,
        created_at: row.try_get(11)?,
    })
}

fn user_from_row<R: Row>(row: &R) -> StoreResult<UserRecord>
where
    usize: ColumnIndex<R>,
    for<'e> String: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> Option<String>: Decode<'e, R::Database>,
    for<'e> i64: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> bool: Decode<'e, R::Database> + Type<R::Database>,
{
    Ok(UserRecord {
        user_id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        username: row.try_get(2)?,
        password_hash: row.try_get(3)?,
        role: row.try_get(4)?,
        fhir_user: row.try_get(5)?,
        display_name: row.try_get(6)?,
        disabled: row.try_get(7)?,
        created_at: row.try_get(8)?,
        external_subject: row.try_get(9)?,
        totp_secret: row.try_get(10)?,
        totp_last_step: row.try_get(11)?,
        failed_logins: row.try_get(12)?,
        locked_at: row.try_get(13)?,
        password_changed_at: row.try_get(14)?,
        training_completed_at: row.try_get(15)?,
    })
}

#[async_trait]
impl<DB> AuthStore for SqlStore<DB>
where
    DB: SqlBackend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'e> i64: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> bool: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Option<String>: Encode<'e, DB> + Decode<'e, DB>,
    for<'e> Option<i64>: Decode<'e, DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let rows = sqlx::query::<DB>(
            "SELECT kid, algorithm, private_pem, public_jwk, created_at, retired_at FROM auth_signing_keys \
             ORDER BY created_at DESC, kid",
        )
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredKey {
                    kid: row.try_get(0)?,
                    algorithm: row.try_get(1)?,
                    private_pem: row.try_get(2)?,
                    public_jwk: row.try_get(3)?,
                    created_at: row.try_get(4)?,
                    retired_at: row.try_get(5)?,
                })
            })
            .collect()
    }

    async fn rotate_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let mut tx = self.writes.begin().await?;
        sqlx::query::<DB>("UPDATE auth_signing_keys SET retired_at = $1 WHERE retired_at IS NULL")
            .bind(key.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query::<DB>(
            "INSERT INTO auth_signing_keys (kid, algorithm, private_pem, public_jwk, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(key.kid.clone())
        .bind(key.algorithm.clone())
        .bind(key.private_pem.clone())
        .bind(key.public_jwk.clone())
        .bind(key.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO auth_clients (client_id, tenant, name, kind, secret_hash, jwks, jwks_uri, redirect_uris, \
             scopes, launch_url, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(client.client_id.clone())
        .bind(client.tenant.clone())
        .bind(client.name.clone())
        .bind(client.kind.clone())
        .bind(client.secret_hash.clone())
        .bind(client.jwks.clone())
        .bind(client.jwks_uri.clone())
        .bind(serde_json::to_string(&client.redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(client.scopes.clone())
        .bind(client.launch_url.clone())
        .bind(client.status.clone())
        .bind(client.created_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM auth_clients WHERE client_id = $1");
        let row =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(client_id.to_string()).fetch_optional(&self.reads).await?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let sql = format!("SELECT {CLIENT_COLUMNS} FROM auth_clients ORDER BY name, client_id");
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).fetch_all(&self.reads).await?;
        rows.iter().map(client_from_row).collect()
    }

    async fn set_client_status(&self, client_id: &str, status: &str) -> StoreResult<bool> {
        let updated = sqlx::query::<DB>("UPDATE auth_clients SET status = $1 WHERE client_id = $2 RETURNING client_id")
            .bind(status.to_string())
            .bind(client_id.to_string())
            .fetch_optional(&self.writes)
            .await?;
        Ok(updated.is_some())
    }

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO auth_users (user_id, tenant, username, password_hash, role, fhir_user, display_name, \
             disabled, created_at, external_subject) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(user.user_id.clone())
        .bind(user.tenant.clone())
        .bind(user.username.clone())
        .bind(user.password_hash.clone())
        .bind(user.role.clone())
        .bind(user.fhir_user.clone())
        .bind(user.display_name.clone())
        .bind(user.disabled)
        .bind(user.created_at)
        .bind(user.external_subject.clone())
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn user(&self, user_id: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_users WHERE user_id = $1");
        let row =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(user_id.to_string()).fetch_optional(&self.reads).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_users WHERE username = $1");
        let row =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(username.to_string()).fetch_optional(&self.reads).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, tenant: &str) -> StoreResult<Vec<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_users WHERE tenant = $1 ORDER BY username");
        let rows = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string()).fetch_all(&self.reads).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_totp_secret(&self, user_id: &str, secret: Option<&str>) -> StoreResult<()> {
        sqlx::query::<DB>("UPDATE auth_users SET totp_secret = $1, totp_last_step = NULL WHERE user_id = $2")
            .bind(secret.map(str::to_string))
            .bind(user_id.to_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn totp_secrets(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query::<DB>("SELECT user_id, totp_secret FROM auth_users WHERE totp_secret IS NOT NULL")
            .fetch_all(&self.reads)
            .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    async fn reencode_totp_secret(&self, user_id: &str, old: &str, new: &str) -> StoreResult<bool> {
        let result = sqlx::query::<DB>(
            "UPDATE auth_users SET totp_secret = $1 WHERE user_id = $2 AND totp_secret = $3 RETURNING user_id",
        )
        .bind(new.to_string())
        .bind(user_id.to_string())
        .bind(old.to_string())
        .fetch_optional(&self.writes)
        .await?;
        Ok(result.is_some())
    }

    async fn reencode_signing_key(&self, kid: &str, old: &str, new: &str) -> StoreResult<bool> {
        let result = sqlx::query::<DB>(
            "UPDATE auth_signing_keys SET private_pem = $1 WHERE kid = $2 AND private_pem = $3 RETURNING kid",
        )
        .bind(new.to_string())
        .bind(kid.to_string())
        .bind(old.to_string())
        .fetch_optional(&self.writes)
        .await?;
        Ok(result.is_some())
    }

    async fn record_failed_login(&self, user_id: &str, lock_at: i64, now: i64) -> StoreResult<Option<i64>> {
        let row = sqlx::query::<DB>(
            "UPDATE auth_users SET failed_logins = failed_logins + 1, locked_at = CASE \
             WHEN locked_at IS NULL AND $2 > 0 AND failed_logins + 1 >= $2 THEN $3 ELSE locked_at END \
             WHERE user_id = $1 RETURNING locked_at",
        )
        .bind(user_id.to_string())
        .bind(lock_at)
        .bind(now)
        .fetch_optional(&self.writes)
        .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => None,
        })
    }

    async fn clear_failed_logins(&self, user_id: &str) -> StoreResult<()> {
        sqlx::query::<DB>("UPDATE auth_users SET failed_logins = 0 WHERE user_id = $1 AND failed_logins <> 0")
            .bind(user_id.to_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn unlock_user(&self, user_id: &str) -> StoreResult<bool> {
        let done = sqlx::query::<DB>(
            "UPDATE auth_users SET failed_logins = 0, locked_at = NULL WHERE user_id = $1 RETURNING user_id",
        )
        .bind(user_id.to_string())
        .fetch_optional(&self.writes)
        .await?;
        Ok(done.is_some())
    }

    async fn set_password(&self, user_id: &str, password_hash: &str, now: i64) -> StoreResult<()> {
        sqlx::query::<DB>("UPDATE auth_users SET password_hash = $1, password_changed_at = $2 WHERE user_id = $3")
            .bind(password_hash.to_string())
            .bind(now)
            .bind(user_id.to_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn set_training_completed(&self, user_id: &str, at: i64) -> StoreResult<()> {
        sqlx::query::<DB>("UPDATE auth_users SET training_completed_at = $1 WHERE user_id = $2")
            .bind(at)
            .bind(user_id.to_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn use_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let used = sqlx::query::<DB>(
            "UPDATE auth_users SET totp_last_step = $1 WHERE user_id = $2 \
             AND (totp_last_step IS NULL OR totp_last_step < $1) RETURNING user_id",
        )
        .bind(step)
        .bind(user_id.to_string())
        .fetch_optional(&self.writes)
        .await?;
        Ok(used.is_some())
    }

    async fn user_by_external_subject(&self, external_subject: &str) -> StoreResult<Option<UserRecord>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM auth_users WHERE external_subject = $1");
        let row = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
            .bind(external_subject.to_string())
            .fetch_optional(&self.reads)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn insert_session(&self, session_hash: &str, session: &SessionRecord) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO auth_sessions (session_hash, user_id, csrf, created_at, last_seen) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(session_hash.to_string())
        .bind(session.user_id.clone())
        .bind(session.csrf.clone())
        .bind(session.created_at)
        .bind(session.last_seen)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn session(&self, session_hash: &str) -> StoreResult<Option<SessionRecord>> {
        // The writer pool: a session created a moment ago must be found (SQLite readers may lag).
        let row =
            sqlx::query::<DB>("SELECT user_id, csrf, created_at, last_seen FROM auth_sessions WHERE session_hash = $1")
                .bind(session_hash.to_string())
                .fetch_optional(&self.writes)
                .await?;
        row.map(|row| {
            Ok(SessionRecord {
                user_id: row.try_get(0)?,
                csrf: row.try_get(1)?,
                created_at: row.try_get(2)?,
                last_seen: row.try_get(3)?,
            })
        })
        .transpose()
    }

    async fn touch_session(&self, session_hash: &str, now: i64) -> StoreResult<()> {
        sqlx::query::<DB>("UPDATE auth_sessions SET last_seen = $1 WHERE session_hash = $2")
            .bind(now)
            .bind(session_hash.to_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, session_hash: &str) -> StoreResult<()> {
        sqlx::query::<DB>("DELETE FROM auth_sessions WHERE session_hash = $1")
            .bind(session_hash.to_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn insert_secret(&self, secret_hash: &str, kind: SecretKind, secret: &SecretRecord) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO auth_secrets (secret_hash, kind, family, client_id, user_id, grant_json, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(secret_hash.to_string())
        .bind(kind.as_str().to_string())
        .bind(secret.family.clone())
        .bind(secret.client_id.clone())
        .bind(secret.user_id.clone())
        .bind(secret.grant_json.clone())
        .bind(secret.expires_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn unused_secret(&self, secret_hash: &str, kind: SecretKind) -> StoreResult<Option<SecretRecord>> {
        let row = sqlx::query::<DB>(
            "SELECT family, client_id, user_id, grant_json, expires_at FROM auth_secrets \
             WHERE secret_hash = $1 AND kind = $2 AND used_at IS NULL",
        )
        .bind(secret_hash.to_string())
        .bind(kind.as_str().to_string())
        .fetch_optional(&self.writes)
        .await?;
        row.map(|row| {
            Ok(SecretRecord {
                family: row.try_get(0)?,
                client_id: row.try_get(1)?,
                user_id: row.try_get(2)?,
                grant_json: row.try_get(3)?,
                expires_at: row.try_get(4)?,
            })
        })
        .transpose()
    }

    async fn redeem_secret(&self, secret_hash: &str, kind: SecretKind, now: i64) -> StoreResult<Redeemed> {
        // One statement marks it used and returns it: of two racing redemptions only one sees a row.
        let fresh = sqlx::query::<DB>(
            "UPDATE auth_secrets SET used_at = $1 WHERE secret_hash = $2 AND kind = $3 AND used_at IS NULL \
             RETURNING family, client_id, user_id, grant_json, expires_at",
        )
        .bind(now)
        .bind(secret_hash.to_string())
        .bind(kind.as_str().to_string())
        .fetch_optional(&self.writes)
        .await?;
        if let Some(row) = fresh {
            return Ok(Redeemed::Fresh(SecretRecord {
                family: row.try_get(0)?,
                client_id: row.try_get(1)?,
                user_id: row.try_get(2)?,
                grant_json: row.try_get(3)?,
                expires_at: row.try_get(4)?,
            }));
        }
        let used = sqlx::query::<DB>("SELECT family FROM auth_secrets WHERE secret_hash = $1 AND kind = $2")
            .bind(secret_hash.to_string())
            .bind(kind.as_str().to_string())
            .fetch_optional(&self.writes)
            .await?;
        Ok(match used {
            Some(row) => Redeemed::Reused { family: row.try_get(0)? },
            None => Redeemed::Unknown,
        })
    }

    async fn revoke_family(&self, family: &str, now: i64, expires_at: i64) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO auth_revoked_families (family, revoked_at, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (family) DO NOTHING",
        )
        .bind(family.to_string())
        .bind(now)
        .bind(expires_at)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn revoke_user_client(&self, user_id: &str, client_id: &str, now: i64) -> StoreResult<()> {
        // A revoked family is remembered as long as anything issued from it could still be valid.
        sqlx::query::<DB>(
            "INSERT INTO auth_revoked_families (family, revoked_at, expires_at) \
             SELECT family, $1, MAX(expires_at) + 3600 FROM auth_secrets WHERE user_id = $2 AND client_id = $3 \
             GROUP BY family ON CONFLICT (family) DO NOTHING",
        )
        .bind(now)
        .bind(user_id.to_string())
        .bind(client_id.to_string())
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn revoked_families(&self, now: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query::<DB>("SELECT family FROM auth_revoked_families WHERE expires_at > $1")
            .bind(now)
            .fetch_all(&self.writes)
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    async fn use_assertion_id(&self, client_id: &str, jti: &str, expires_at: i64, now: i64) -> StoreResult<bool> {
        sqlx::query::<DB>("DELETE FROM auth_assertion_ids WHERE expires_at < $1")
            .bind(now)
            .execute(&self.writes)
            .await?;
        let inserted = sqlx::query::<DB>(
            "INSERT INTO auth_assertion_ids (client_id, jti, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING RETURNING jti",
        )
        .bind(client_id.to_string())
        .bind(jti.to_string())
        .bind(expires_at)
        .fetch_optional(&self.writes)
        .await?;
        Ok(inserted.is_some())
    }

    async fn purge_expired(&self, now: i64, session_cutoff: i64, idle_cutoff: i64) -> StoreResult<()> {
        // Used codes and rotated refresh tokens are kept a day past their expiry, so presenting
        // one again is still recognised as reuse (and revokes what it issued).
        sqlx::query::<DB>("DELETE FROM auth_secrets WHERE expires_at < $1")
            .bind(now - 24 * 3600)
            .execute(&self.writes)
            .await?;
        sqlx::query::<DB>("DELETE FROM auth_sessions WHERE created_at < $1 OR last_seen < $2")
            .bind(session_cutoff)
            .bind(idle_cutoff)
            .execute(&self.writes)
            .await?;
        sqlx::query::<DB>("DELETE FROM auth_revoked_families WHERE expires_at < $1")
            .bind(now)
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn upsert_grant(&self, user_id: &str, client_id: &str, scopes: &str, now: i64) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO auth_grants (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at",
        )
        .bind(user_id.to_string())
        .bind(client_id.to_string())
        .bind(scopes.to_string())
        .bind(now)
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn grants(&self, user_id: &str) -> StoreResult<Vec<GrantRecord>> {
        let rows = sqlx::query::<DB>(
            "SELECT client_id, scopes, granted_at FROM auth_grants WHERE user_id = $1 ORDER BY granted_at DESC",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.writes)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(GrantRecord { client_id: row.try_get(0)?, scopes: row.try_get(1)?, granted_at: row.try_get(2)? })
            })
            .collect()
    }

    async fn delete_grant(&self, user_id: &str, client_id: &str) -> StoreResult<()> {
        sqlx::query::<DB>("DELETE FROM auth_grants WHERE user_id = $1 AND client_id = $2")
            .bind(user_id.to_string())
            .bind(client_id.to_string())
            .execute(&self.writes)
            .await?;
        Ok(())
    }
}
