//! The SQLite backend (the embedded default): a file in WAL mode, a pool of readers and exactly
//! one writer connection, so writes are serialised without `SQLITE_BUSY` retries.

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, SqlSafeStr, Sqlite};
use std::str::FromStr;
use std::time::Duration;

use super::sql::{SqlBackend, SqlStore};
use super::{StoreError, StoreResult};

impl SqlBackend for Sqlite {
    const SELECT_CURRENT_FOR_WRITE: &'static str =
        "SELECT version, deleted, last_updated FROM resources WHERE tenant = $1 AND type = $2 AND id = $3";
    const BACKEND_NAME: &'static str = "sqlite";
    const POSITIONAL_PARAMETERS: bool = true;
    const SKIP_LOCKED: &'static str = "";
    const LOCK_ROWS: &'static str = "";
    // Takes the write lock at once: a deferred transaction that reads before it writes could
    // fail with SQLITE_BUSY when another process wrote in between, whatever the busy timeout.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    // The single writer connection already serialises every write.
    const LOCK_KEY: Option<&'static str> = None;
    // `optimize` analyses only the tables that grew or were never analysed, each with a bounded
    // sample: a full ANALYZE with STAT4 reads whole indexes and holds the one writer (measured:
    // 30-44 s on a million resources, long enough for waiting writes to time out).
    const ANALYZE: &'static str = "PRAGMA analysis_limit = 1000; PRAGMA optimize;";
    const EXPLAIN: Option<&'static str> = None;
}

pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite migrations, compiled in (`migrations/sqlite/`).
pub fn migrator() -> Migrator {
    let migration = |version, description: &'static str, sql: &'static str| {
        Migration::new(version, description.into(), MigrationType::Simple, AssertSqlSafe(sql).into_sql_str(), false)
    };
    Migrator::with_migrations(vec![
        migration(1, "resources", include_str!("../../migrations/sqlite/0001_resources.sql")),
        migration(2, "write guards", include_str!("../../migrations/sqlite/0002_write_guards.sql")),
        migration(3, "search index", include_str!("../../migrations/sqlite/0003_search_index.sql")),
        migration(4, "instance history index", include_str!("../../migrations/sqlite/0004_instance_history_index.sql")),
        migration(5, "resource links", include_str!("../../migrations/sqlite/0005_resource_links.sql")),
        migration(6, "drop duplicate index", include_str!("../../migrations/sqlite/0006_drop_duplicate_index.sql")),
        migration(7, "authorization", include_str!("../../migrations/sqlite/0007_authorization.sql")),
        migration(8, "external identities", include_str!("../../migrations/sqlite/0008_external_identities.sql")),
        migration(9, "second factor", include_str!("../../migrations/sqlite/0009_second_factor.sql")),
        migration(10, "audit log", include_str!("../../migrations/sqlite/0010_audit_log.sql")),
        migration(11, "account safeguards", include_str!("../../migrations/sqlite/0011_account_safeguards.sql")),
        migration(12, "data keys", include_str!("../../migrations/sqlite/0012_data_keys.sql")),
        migration(13, "ehr connections", include_str!("../../migrations/sqlite/0013_ehr_connections.sql")),
        migration(14, "ehr sync", include_str!("../../migrations/sqlite/0014_ehr_sync.sql")),
        migration(15, "ehr trusted roots", include_str!("../../migrations/sqlite/0015_ehr_trusted_roots.sql")),
        migration(16, "search composite", include_str!("../../migrations/sqlite/0016_search_composite.sql")),
    ])
}

/// The migrations of the audit log's own file (`migrations/sqlite-audit/`).
fn audit_migrator() -> Migrator {
    let sql = include_str!("../../migrations/sqlite-audit/0001_audit_log.sql");
    Migrator::with_migrations(vec![Migration::new(
        1,
        "audit log".into(),
        MigrationType::Simple,
        AssertSqlSafe(sql).into_sql_str(),
        false,
    )])
}

/// The file of the audit log next to the main database file: `kiln.db` -> `kiln.audit.db`;
/// `None` for an in-memory database, whose log stays in it.
pub fn audit_file(main: &std::path::Path) -> Option<std::path::PathBuf> {
    let name = main.to_string_lossy();
    (!name.is_empty() && !name.contains(":memory:")).then(|| main.with_extension("audit.db"))
}

pub async fn connect(url: &str, pool_size: u32) -> StoreResult<SqliteStore> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed write survives power loss (the audit trail depends on it).
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    if let Some(parent) = options.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Configuration(format!("cannot create {}: {e}", parent.display())))?;
    }
    let writes = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    migrator().run(&writes).await.map_err(|e| StoreError::Migration(e.to_string()))?;
    let Some(audit_path) = audit_file(options.get_filename()) else {
        let reads =
            SqlitePoolOptions::new().max_connections(pool_size.max(1)).connect_with(options.read_only(true)).await?;
        return Ok(SqlStore { reads, audit_writes: writes.clone(), writes, writes_since_analyze: Default::default() });
    };
    let audit_options = options.clone().filename(&audit_path);
    // The audit writer's one connection is handed out untested: sqlx's test is a round trip to
    // the connection's worker thread, and every audited request waits for this writer's
    // statement. Measured on audited reads: +10% in four alternating rounds, p99 12-20 ms
    // instead of 19-21 (bench/README.md). The other pools keep the test: readers without it
    // took the two cores from the audit writer, and audited reads ran 8% slower.
    let audit_writes =
        SqlitePoolOptions::new().max_connections(1).test_before_acquire(false).connect_with(audit_options).await?;
    audit_migrator().run(&audit_writes).await.map_err(|e| StoreError::Migration(e.to_string()))?;
    move_audit_log(&writes, &audit_path).await?;
    // Readers see the log as if it were in the main file (it is the only `audit_log`). The
    // writers never attach it: `BEGIN IMMEDIATE` would take the write lock of every attached
    // file, and appends would wait behind main-file writes again.
    let attached = audit_path.to_string_lossy().into_owned();
    let reads = SqlitePoolOptions::new()
        .max_connections(pool_size.max(1))
        .after_connect(move |connection, _| {
            let attached = attached.clone();
            Box::pin(async move {
                sqlx::query("ATTACH DATABASE $1 AS audit").bind(attached).execute(connection).await?;
                Ok(())
            })
        })
        .connect_with(options.read_only(true))
        .await?;
    Ok(SqlStore { reads, writes, audit_writes, writes_since_analyze: Default::default() })
}

/// Moves the audit log of a database made before the log had a file of its own (migration 10
/// made it in the main file, and still does) into that file. Each step is idempotent, so a stop
/// between them is finished at the next start.
async fn move_audit_log(writes: &sqlx::SqlitePool, audit_path: &std::path::Path) -> StoreResult<()> {
    let in_main = sqlx::query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_log'")
        .fetch_optional(writes)
        .await?
        .is_some();
    if !in_main {
        return Ok(());
    }
    let mut connection = writes.acquire().await?;
    sqlx::query("ATTACH DATABASE $1 AS audit")
        .bind(audit_path.to_string_lossy().into_owned())
        .execute(&mut *connection)
        .await?;
    let moved = async {
        sqlx::query(
            "INSERT OR IGNORE INTO audit.audit_log (tenant, seq, id, json, content_hash, prev_hash, hash) \
             SELECT tenant, seq, id, json, content_hash, prev_hash, hash FROM main.audit_log",
        )
        .execute(&mut *connection)
        .await?;
        sqlx::query("DROP TABLE main.audit_log").execute(&mut *connection).await?;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    sqlx::query("DETACH DATABASE audit").execute(&mut *connection).await?;
    Ok(moved?)
}
