//! The PostgreSQL backend (production): one pool; writers lock the current row with
//! `FOR UPDATE`, and a unique key settles concurrent creates of the same id.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Postgres, SqlSafeStr};
use std::str::FromStr;
use std::time::Duration;

use super::sql::{SqlBackend, SqlStore};
use super::{StoreError, StoreResult};

impl SqlBackend for Postgres {
    const SELECT_CURRENT_FOR_WRITE: &'static str =
        "SELECT version, deleted, last_updated FROM resources WHERE tenant = $1 AND type = $2 AND id = $3 FOR UPDATE";
    const BACKEND_NAME: &'static str = "postgres";
    const POSITIONAL_PARAMETERS: bool = false;
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const BEGIN: &'static str = "BEGIN";
    const LOCK_KEY: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
    const EXPLAIN: Option<&'static str> = Some("EXPLAIN ");
    const ANALYZE: &'static str = "ANALYZE resources, resource_versions, search_string, search_token, search_date, \
         search_number, search_quantity, search_reference, search_uri, search_composite, unique_keys, busy_intervals";
}

pub type PostgresStore = SqlStore<Postgres>;

/// The PostgreSQL migrations, compiled in (`migrations/postgres/`).
pub fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(version, description.into(), MigrationType::Simple, AssertSqlSafe(sql).into_sql_str(), false)
    };
    Migrator::with_migrations(vec![
        migration(1, "resources", include_str!("../../migrations/postgres/0001_resources.sql")),
        migration(2, "write guards", include_str!("../../migrations/postgres/0002_write_guards.sql")),
        migration(3, "search index", include_str!("../../migrations/postgres/0003_search_index.sql")),
        migration(
            4,
            "instance history index",
            include_str!("../../migrations/postgres/0004_instance_history_index.sql"),
        ),
        migration(5, "resource links", include_str!("../../migrations/postgres/0005_resource_links.sql")),
        migration(6, "drop duplicate index", include_str!("../../migrations/postgres/0006_drop_duplicate_index.sql")),
        migration(7, "authorization", include_str!("../../migrations/postgres/0007_authorization.sql")),
        migration(8, "external identities", include_str!("../../migrations/postgres/0008_external_identities.sql")),
        migration(9, "second factor", include_str!("../../migrations/postgres/0009_second_factor.sql")),
        migration(10, "audit log", include_str!("../../migrations/postgres/0010_audit_log.sql")),
        migration(11, "account safeguards", include_str!("../../migrations/postgres/0011_account_safeguards.sql")),
        migration(12, "data keys", include_str!("../../migrations/postgres/0012_data_keys.sql")),
        migration(13, "ehr connections", include_str!("../../migrations/postgres/0013_ehr_connections.sql")),
        migration(14, "ehr sync", include_str!("../../migrations/postgres/0014_ehr_sync.sql")),
        migration(15, "ehr trusted roots", include_str!("../../migrations/postgres/0015_ehr_trusted_roots.sql")),
        migration(16, "search composite", include_str!("../../migrations/postgres/0016_search_composite.sql")),
    ])
}

pub async fn connect(url: &str, pool_size: u32) -> StoreResult<PostgresStore> {
    let options = PgConnectOptions::from_str(url)?.application_name("kiln");
    let pool = PgPoolOptions::new()
        .max_connections(pool_size.max(2))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    migrator().run(&pool).await.map_err(|e| StoreError::Migration(e.to_string()))?;
    Ok(SqlStore {
        reads: pool.clone(),
        audit_writes: pool.clone(),
        writes: pool,
        writes_since_analyze: Default::default(),
    })
}
