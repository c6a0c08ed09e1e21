//! The one SQL implementation of [`Store`], generic over the sqlx backend: SQLite and PostgreSQL
//! run the same statements and differ only in how a writer locks the current row.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    AuditCopy, AuditLink, AuditRow, BatchError, Change, CurrentRow, EhrConnection, EhrSyncJob, HistoryFilter,
    HistoryScope, Link, MetaInUse, Store, StoreError, StoreResult, StoreTransaction, StoredVersion, VersionRecord,
    WriteMethod, WriteOutcome, WritePlan, WriteRequest, plan_write,
};
use crate::access::TenantId;
use crate::fhir::instant::{fhir_instant, now_micros};
use crate::search::query::{Cursor, Include, IncludeKind, SearchQuery};
use crate::search::{IndexRow, SqlArg};

/// What differs between the SQL backends.
pub trait SqlBackend: Database {
    /// The statement that reads the current row before a write, locking it where the database
    /// has row locks (PostgreSQL `FOR UPDATE`); SQLite serialises writers on one connection.
    const SELECT_CURRENT_FOR_WRITE: &'static str;
    const BACKEND_NAME: &'static str;
    /// Takes a transaction-scoped lock on a text key, where concurrent writers need one.
    const LOCK_KEY: Option<&'static str>;
    /// The statement that starts a write transaction.
    const BEGIN: &'static str;
    /// Whether big statements number their placeholders implicitly (`?`): SQLite finds a
    /// numbered parameter (`$7`) by scanning all parameter names, which makes binding a
    /// multi-row INSERT of thousands of values quadratic; anonymous ones are found directly.
    const POSITIONAL_PARAMETERS: bool;
    /// What makes a `SELECT` lock the rows it reads until the transaction ends (PostgreSQL
    /// `FOR UPDATE`; nothing for SQLite, whose one writer already excludes the others).
    const LOCK_ROWS: &'static str;
    /// What makes a `SELECT` lock the rows it reads and pass over rows others have locked, so
    /// several nodes claim different jobs (PostgreSQL `FOR UPDATE SKIP LOCKED`; nothing for
    /// SQLite, whose one writer claims one job at a time).
    const SKIP_LOCKED: &'static str;
    /// Refreshes the planner's statistics (run on the writer pool).
    const ANALYZE: &'static str;
    /// What makes a statement answer the planner's plan as text (PostgreSQL `EXPLAIN`), whose
    /// first line carries its row estimate; none where the planner keeps no such estimate.
    const EXPLAIN: Option<&'static str>;
}

/// The row estimate of a plan's top line, e.g. `Seq Scan on resources r  (cost=0.00..1.01 rows=42 width=4)`.
fn planned_rows(line: &str) -> Option<u64> {
    let after = &line[line.find(" rows=")? + 6..];
    after[..after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len())].parse().ok()
}

/// Reads go to `reads`; writes to `writes` (for SQLite a single connection, the one writer).
pub struct SqlStore<DB: Database> {
    pub(super) reads: Pool<DB>,
    pub(super) writes: Pool<DB>,
    /// Where the audit log is appended: the writer pool on PostgreSQL; on SQLite the writer of
    /// the log's own file, so that appends never queue behind writes to the main file (the
    /// readers see both files).
    pub(super) audit_writes: Pool<DB>,
    /// Writes since the planner statistics were last refreshed.
    pub(super) writes_since_analyze: Arc<AtomicU64>,
}

/// The JSON of the `resources` or `resource_versions` row `alias`. An AuditEvent copied from the
/// audit log keeps none: its body is its log row's, stored once (see [`StoreTransaction::
/// insert_audit_copies`]). Only readers see the log (on SQLite it is in a file the writer does
/// not attach), so statements run by a writer read `json` alone.
macro_rules! body_of {
    ($alias:literal) => {
        concat!(
            "COALESCE(",
            $alias,
            ".json, (SELECT l.json FROM audit_log l WHERE ",
            $alias,
            ".type = 'AuditEvent' \
             AND NOT ",
            $alias,
            ".deleted AND l.tenant = ",
            $alias,
            ".tenant AND l.id = ",
            $alias,
            ".id))"
        )
    };
}

const SELECT_CURRENT: &str = concat!(
    "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, ",
    body_of!("r"),
    " FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND r.id = $3"
);
/// [`SELECT_CURRENT`] inside a write transaction (see [`body_of`]).
const SELECT_CURRENT_FOR_CHANGE: &str =
    "SELECT type, id, version, last_updated, deleted, json FROM resources WHERE tenant = $1 AND type = $2 AND id = $3";
const SELECT_VERSION: &str = concat!(
    "SELECT v.type, v.id, v.version, v.last_updated, v.deleted, ",
    body_of!("v"),
    ", v.method, v.seq FROM resource_versions v WHERE v.tenant = $1 AND v.type = $2 AND v.id = $3 AND v.version = $4"
);
const INSERT_CURRENT: &str = "INSERT INTO resources (tenant, type, id, version, last_updated, deleted, json) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING version";
const UPDATE_CURRENT: &str = "UPDATE resources SET version = $4, last_updated = $5, deleted = $6, json = $7 \
     WHERE tenant = $1 AND type = $2 AND id = $3";
const INSERT_VERSION: &str = "INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, method, json) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING seq";

impl<DB: Database> SqlStore<DB> {
    fn transaction(&self, tx: sqlx::Transaction<'static, DB>, tenant: &TenantId) -> SqlTransaction<DB> {
        SqlTransaction {
            tx,
            tenant_id: tenant.clone(),
            tenant: tenant.to_string(),
            writes: 0,
            writes_since_analyze: self.writes_since_analyze.clone(),
        }
    }
}

/// How often a write retries after losing an insert race to a concurrent create of the same id.
const INSERT_RACE_RETRIES: usize = 3;

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: SqlBackend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'e> i64: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> bool: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Vec<u8>: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Option<Vec<u8>>: Encode<'e, DB>,
    for<'e> Option<String>: Encode<'e, DB> + Decode<'e, DB>,
    for<'e> Option<i64>: Encode<'e, DB> + Decode<'e, DB>,
    for<'e> Option<f64>: Encode<'e, DB>,
    for<'e> f64: Encode<'e, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn backend_name(&self) -> &'static str {
        DB::BACKEND_NAME
    }

    async fn read_current(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<VersionRecord>> {
        let row = sqlx::query::<DB>(SELECT_CURRENT)
            .bind(tenant.to_string())
            .bind(resource_type.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.reads)
            .await?;
        row.map(|row| current_record(&row)).transpose()
    }

    async fn read_version(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<VersionRecord>> {
        let row = sqlx::query::<DB>(SELECT_VERSION)
            .bind(tenant.to_string())
            .bind(resource_type.to_string())
            .bind(id.to_string())
            .bind(version)
            .fetch_optional(&self.reads)
            .await?;
        row.map(|row| version_record(&row)).transpose()
    }

    async fn begin(&self, tenant: &TenantId) -> StoreResult<Box<dyn StoreTransaction>> {
        let tx = self.writes.begin_with(DB::BEGIN).await?;
        Ok(Box::new(self.transaction(tx, tenant)))
    }

    async fn begin_audit_log(&self, tenant: &TenantId) -> StoreResult<Box<dyn StoreTransaction>> {
        let tx = self.audit_writes.begin_with(DB::BEGIN).await?;
        Ok(Box::new(self.transaction(tx, tenant)))
    }

    async fn history(
        &self,
        tenant: &TenantId,
        scope: HistoryScope<'_>,
        filter: &HistoryFilter,
    ) -> StoreResult<Vec<VersionRecord>> {
        // Conditions are fixed text; every value is bound.
        let mut sql = String::from(concat!(
            "SELECT v.type, v.id, v.version, v.last_updated, v.deleted, ",
            body_of!("v"),
            ", v.method, v.seq FROM resource_versions v WHERE v.tenant = $1"
        ));
        let mut next = 2;
        let mut placeholder = || {
            let p = format!("${next}");
            next += 1;
            p
        };
        match scope {
            // The audit trail is read as AuditEvent's own history or by search, not mixed into
            // the record of changes to the tenant's data.
            HistoryScope::System => sql.push_str(" AND v.type <> 'AuditEvent'"),
            HistoryScope::Type(_) => sql.push_str(&format!(" AND v.type = {}", placeholder())),
            HistoryScope::Instance(_, _) => {
                sql.push_str(&format!(" AND v.type = {} AND v.id = {}", placeholder(), placeholder()))
            }
        }
        if filter.since.is_some() {
            sql.push_str(&format!(" AND v.last_updated >= {}", placeholder()));
        }
        if filter.at.is_some() {
            // The version current at `_at`: written at or before it, and not yet replaced then.
            let at = placeholder();
            sql.push_str(&format!(
                " AND v.last_updated <= {at} AND NOT EXISTS (SELECT 1 FROM resource_versions n WHERE n.tenant = v.tenant \
                 AND n.type = v.type AND n.id = v.id AND n.version > v.version AND n.last_updated <= {at})"
            ));
        }
        if filter.before_seq.is_some() {
            sql.push_str(&format!(" AND v.seq < {}", placeholder()));
        }
        sql.push_str(&format!(" ORDER BY v.seq DESC LIMIT {}", placeholder()));

        let mut query = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string());
        match scope {
            HistoryScope::System => {}
            HistoryScope::Type(t) => query = query.bind(t.to_string()),
            HistoryScope::Instance(t, id) => query = query.bind(t.to_string()).bind(id.to_string()),
        }
        for value in [filter.since, filter.at, filter.before_seq].into_iter().flatten() {
            query = query.bind(value);
        }
        let rows = query.bind(i64::from(filter.count)).fetch_all(&self.reads).await?;
        rows.iter().map(version_record).collect()
    }

    async fn search(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        query: &SearchQuery,
    ) -> StoreResult<Vec<VersionRecord>> {
        let (conditions, args) = query.paged_conditions();
        let sql = format!(
            "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, {} FROM resources r \
             WHERE r.tenant = $1 AND r.type = $2 AND NOT r.deleted{conditions} ORDER BY {} LIMIT {} OFFSET {}",
            body_of!("r"),
            query.fetch_order(),
            u64::from(query.count) + 1,
            Cursor::offset(query.cursor.as_ref()),
        );
        let mut statement =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string()).bind(resource_type.to_string());
        for arg in args {
            statement = bind_arg(statement, arg);
        }
        let rows = statement.fetch_all(&self.reads).await?;
        rows.iter().map(current_record).collect()
    }

    async fn includes(
        &self,
        tenant: &TenantId,
        include: &Include,
        sources: &[(String, String)],
        limit: u32,
    ) -> StoreResult<Vec<VersionRecord>> {
        if sources.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<SqlArg> = vec![SqlArg::Text(tenant.to_string())];
        let mut bind = |arg: SqlArg| {
            args.push(arg);
            format!("${}", args.len())
        };
        let mut filters = String::new();
        if let Some(param) = &include.param {
            filters.push_str(&format!(" AND x.param = {}", bind(SqlArg::Text(param.clone()))));
        }
        if let Some(target) = &include.target_type {
            filters.push_str(&format!(" AND x.target_type = {}", bind(SqlArg::Text(target.clone()))));
        }
        let source_type = bind(SqlArg::Text(include.source_type.clone()));
        let sql = match include.kind {
            // The resources the sources refer to.
            IncludeKind::Include => {
                let ids: Vec<String> = sources
                    .iter()
                    .filter(|(t, _)| *t == include.source_type)
                    .map(|(_, id)| bind(SqlArg::Text(id.clone())))
                    .collect();
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                // Driven by the sources' reference rows: as a correlated EXISTS, SQLite probed every
                // resource of the clinic (seconds on a million resources).
                format!(
                    "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, {} FROM resources r WHERE r.tenant = $1 \
                     AND NOT r.deleted AND (r.type, r.id) IN (SELECT x.target_type, x.target_id FROM search_reference x \
                     WHERE x.tenant = $1 AND x.type = {source_type} AND x.id IN ({}){filters}) LIMIT {limit}",
                    body_of!("r"),
                    ids.join(", ")
                )
            }
            // The resources of source_type that refer to the sources.
            IncludeKind::RevInclude => {
                let targets: Vec<String> = sources
                    .iter()
                    .map(|(t, id)| {
                        format!(
                            "(x.target_type = {} AND x.target_id = {})",
                            bind(SqlArg::Text(t.clone())),
                            bind(SqlArg::Text(id.clone()))
                        )
                    })
                    .collect();
                // Driven by the reference rows that name the sources, one index lookup per
                // source (a row-value IN over them made SQLite scan the parameter's rows).
                format!(
                    "SELECT r.type, r.id, r.version, r.last_updated, r.deleted, {} FROM resources r WHERE r.tenant = $1 \
                     AND r.type = {source_type} AND NOT r.deleted AND r.id IN (SELECT x.id FROM search_reference x WHERE \
                     x.tenant = $1 AND x.type = {source_type}{filters} AND ({})) LIMIT {limit}",
                    body_of!("r"),
                    targets.join(" OR ")
                )
            }
        };
        let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
        for arg in args {
            statement = bind_arg(statement, arg);
        }
        let rows = statement.fetch_all(&self.reads).await?;
        rows.iter().map(current_record).collect()
    }

    async fn count(&self, tenant: &TenantId, resource_type: &str, query: &SearchQuery) -> StoreResult<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND NOT r.deleted{}",
            query.conditions
        );
        let mut statement =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string()).bind(resource_type.to_string());
        for arg in query.args.iter().cloned() {
            statement = bind_arg(statement, arg);
        }
        let count: i64 = statement.fetch_one(&self.reads).await?.try_get(0)?;
        Ok(count.max(0) as u64)
    }

    async fn estimate(&self, tenant: &TenantId, resource_type: &str, query: &SearchQuery) -> StoreResult<u64> {
        let Some(explain) = DB::EXPLAIN else {
            return self.count(tenant, resource_type, query).await;
        };
        let sql = format!(
            "{explain}SELECT 1 FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND NOT r.deleted{}",
            query.conditions
        );
        let mut statement =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string()).bind(resource_type.to_string());
        for arg in query.args.iter().cloned() {
            statement = bind_arg(statement, arg);
        }
        let top: String = statement.fetch_one(&self.reads).await?.try_get(0)?;
        Ok(planned_rows(&top).unwrap_or(0))
    }

    async fn meta_in_use(&self, tenant: &TenantId, resource_type: Option<&str>) -> StoreResult<MetaInUse> {
        let type_filter = if resource_type.is_some() { " AND type = $2" } else { "" };
        let sql = format!(
            "SELECT DISTINCT param, system, code FROM search_token WHERE tenant = $1{type_filter} \
             AND param IN ('_tag', '_security') ORDER BY param, system, code"
        );
        let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string());
        if let Some(t) = resource_type {
            statement = statement.bind(t.to_string());
        }
        let mut meta = MetaInUse::default();
        for row in statement.fetch_all(&self.reads).await? {
            let param: String = row.try_get(0)?;
            let pair = (row.try_get::<Option<String>, _>(1)?, row.try_get::<Option<String>, _>(2)?);
            if param == "_tag" { meta.tags.push(pair) } else { meta.security.push(pair) }
        }
        let sql = format!(
            "SELECT DISTINCT value FROM search_uri WHERE tenant = $1{type_filter} AND param = '_profile' ORDER BY value"
        );
        let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(tenant.to_string());
        if let Some(t) = resource_type {
            statement = statement.bind(t.to_string());
        }
        for row in statement.fetch_all(&self.reads).await? {
            meta.profiles.push(row.try_get(0)?);
        }
        Ok(meta)
    }

    async fn audit_links(&self, tenant: &TenantId, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>> {
        let rows = sqlx::query::<DB>(
            "SELECT l.seq, l.id, l.content_hash, l.prev_hash, l.hash, l.json, r.json, r.id FROM audit_log l \
             LEFT JOIN resources r ON r.tenant = l.tenant AND r.type = 'AuditEvent' AND r.id = l.id AND NOT r.deleted \
             WHERE l.tenant = $1 AND l.seq > $2 ORDER BY l.seq LIMIT $3",
        )
        .bind(tenant.to_string())
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRow {
                    link: audit_link(row)?,
                    logged: row.try_get(5)?,
                    copied: row.try_get::<Option<String>, _>(7)?.is_some(),
                    resource: row.try_get::<Option<Vec<u8>>, _>(6)?,
                })
            })
            .collect()
    }

    async fn audit_indexed_position(&self, tenant: &TenantId) -> StoreResult<i64> {
        let row = sqlx::query::<DB>("SELECT seq FROM audit_indexed WHERE tenant = $1")
            .bind(tenant.to_string())
            .fetch_optional(&self.reads)
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => 0,
        })
    }

    async fn audit_head_seq(&self, tenant: &TenantId) -> StoreResult<i64> {
        let row = sqlx::query::<DB>("SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE tenant = $1")
            .bind(tenant.to_string())
            .fetch_one(&self.reads)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn append_audit_log_after(
        &self,
        tenant: &TenantId,
        head_seq: i64,
        rows: &[(AuditLink, Vec<u8>)],
    ) -> StoreResult<bool> {
        if rows.is_empty() || rows.len() > AUDIT_ROWS_PER_APPEND {
            return Ok(rows.is_empty());
        }
        // The guard and the primary key (tenant, seq) together keep the chain whole: a writer
        // whose idea of the head is stale inserts nothing (or conflicts), and takes the slow path.
        let width = AUDIT_LOG_WIDTH;
        let sql = format!(
            "INSERT INTO audit_log ({AUDIT_LOG_COLUMNS}) SELECT * FROM (VALUES {}) AS v \
             WHERE (SELECT COALESCE(MAX(seq), 0) FROM audit_log WHERE tenant = {}) = {} RETURNING seq",
            value_tuples::<DB>(rows.len(), width),
            placeholder::<DB>(rows.len() * width + 1),
            placeholder::<DB>(rows.len() * width + 2),
        );
        let statement = bind_audit_rows(sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)), &tenant.to_string(), rows);
        let statement = statement.bind(tenant.to_string()).bind(head_seq);
        match statement.fetch_all(&self.audit_writes).await {
            Ok(appended) => Ok(appended.len() == rows.len()),
            // Another writer took the next numbers first (PostgreSQL, several nodes), or its
            // commit came between this statement's read and write (SQLite, several processes).
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() || e.message().contains("locked") => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn unchained_audit_events(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<String>> {
        let rows = sqlx::query::<DB>(
            "SELECT r.id FROM resources r WHERE r.tenant = $1 AND r.type = 'AuditEvent' AND NOT EXISTS \
             (SELECT 1 FROM audit_log l WHERE l.tenant = r.tenant AND l.id = r.id) ORDER BY r.id LIMIT $2",
        )
        .bind(tenant.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    async fn resource_tenants(&self) -> StoreResult<Vec<TenantId>> {
        let rows =
            sqlx::query::<DB>("SELECT DISTINCT tenant FROM resources ORDER BY tenant").fetch_all(&self.reads).await?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get(0)?;
                TenantId::parse(&tenant).map_err(StoreError::Configuration)
            })
            .collect()
    }

    async fn audit_tenants(&self) -> StoreResult<Vec<TenantId>> {
        let rows = sqlx::query::<DB>(
            "SELECT DISTINCT tenant FROM audit_log UNION SELECT DISTINCT tenant FROM resources WHERE type = 'AuditEvent'",
        )
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                let tenant: String = row.try_get(0)?;
                TenantId::parse(&tenant).map_err(StoreError::Configuration)
            })
            .collect()
    }

    async fn ensure_tenant(&self, tenant: &TenantId, name: &str) -> StoreResult<()> {
        sqlx::query::<DB>("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(tenant.to_string())
            .bind(name.to_string())
            .bind(now_micros())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn ehr_connections(&self, tenant: &TenantId) -> StoreResult<Vec<EhrConnection>> {
        let rows = sqlx::query::<DB>(
            "SELECT endpoint_id, auth, client_id, secret_sealed, algorithm, key_id, scope, created_at, sync_every_secs, \
             ca_certificates FROM ehr_connections WHERE tenant = $1 ORDER BY created_at, endpoint_id",
        )
        .bind(tenant.to_string())
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(EhrConnection {
                    endpoint_id: row.try_get(0)?,
                    auth: row.try_get(1)?,
                    client_id: row.try_get(2)?,
                    secret_sealed: row.try_get(3)?,
                    algorithm: row.try_get(4)?,
                    key_id: row.try_get(5)?,
                    scope: row.try_get(6)?,
                    created_at: row.try_get(7)?,
                    sync_every_secs: row.try_get(8)?,
                    ca_certificates: row.try_get(9)?,
                })
            })
            .collect()
    }

    async fn due_ehr_syncs(&self, now: i64) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query::<DB>(
            "UPDATE ehr_connections SET last_synced_at = $1 WHERE sync_every_secs IS NOT NULL \
             AND (last_synced_at IS NULL OR last_synced_at + sync_every_secs <= $1) RETURNING tenant, endpoint_id",
        )
        .bind(now)
        .fetch_all(&self.writes)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    async fn enqueue_ehr_sync(&self, tenant: &TenantId, endpoint_id: &str, patients: &[String]) -> StoreResult<u64> {
        let mut queued = 0;
        let mut tx = self.writes.begin_with(DB::BEGIN).await?;
        for patient in patients {
            let inserted = sqlx::query::<DB>(
                "INSERT INTO ehr_sync_jobs (tenant, endpoint_id, patient_id, state, created_at) \
                 SELECT $1, $2, $3, 'pending', $4 WHERE NOT EXISTS (SELECT 1 FROM ehr_sync_jobs WHERE tenant = $1 \
                 AND endpoint_id = $2 AND patient_id = $3 AND state IN ('pending', 'running')) RETURNING id",
            )
            .bind(tenant.to_string())
            .bind(endpoint_id.to_string())
            .bind(patient.clone())
            .bind(now_micros())
            .fetch_optional(&mut *tx)
            .await?;
            queued += u64::from(inserted.is_some());
        }
        tx.commit().await?;
        Ok(queued)
    }

    async fn claim_ehr_sync(&self, node: &str) -> StoreResult<Option<EhrSyncJob>> {
        let sql = format!(
            "UPDATE ehr_sync_jobs SET state = 'running', claimed_by = $1 WHERE id = (SELECT id FROM ehr_sync_jobs \
             WHERE state = 'pending' ORDER BY id LIMIT 1{}) RETURNING id, tenant, endpoint_id, patient_id",
            DB::SKIP_LOCKED
        );
        let row =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(node.to_string()).fetch_optional(&self.writes).await?;
        match row {
            Some(row) => Ok(Some(EhrSyncJob {
                id: row.try_get(0)?,
                tenant: row.try_get(1)?,
                endpoint_id: row.try_get(2)?,
                patient_id: row.try_get(3)?,
            })),
            None => Ok(None),
        }
    }

    async fn finish_ehr_sync(&self, id: i64, succeeded: bool, outcome: &str) -> StoreResult<()> {
        sqlx::query::<DB>("UPDATE ehr_sync_jobs SET state = $1, finished_at = $2, outcome = $3 WHERE id = $4")
            .bind(if succeeded { "done" } else { "failed" }.to_string())
            .bind(now_micros())
            .bind(outcome.to_string())
            .bind(id)
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    async fn ehr_secrets(&self) -> StoreResult<Vec<(String, String, String)>> {
        let rows = sqlx::query::<DB>(
            "SELECT tenant, endpoint_id, secret_sealed FROM ehr_connections WHERE secret_sealed IS NOT NULL",
        )
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))).collect()
    }

    async fn reencode_ehr_secret(&self, tenant: &str, endpoint_id: &str, old: &str, new: &str) -> StoreResult<bool> {
        let updated = sqlx::query::<DB>(
            "UPDATE ehr_connections SET secret_sealed = $1 WHERE tenant = $2 AND endpoint_id = $3 \
             AND secret_sealed = $4 RETURNING endpoint_id",
        )
        .bind(new.to_string())
        .bind(tenant.to_string())
        .bind(endpoint_id.to_string())
        .bind(old.to_string())
        .fetch_optional(&self.writes)
        .await?;
        Ok(updated.is_some())
    }

    async fn key_fingerprint(&self) -> StoreResult<Option<String>> {
        let row = sqlx::query::<DB>("SELECT fingerprint FROM data_key_fingerprint WHERE name = 'index'")
            .fetch_optional(&self.writes)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get(0)?),
            None => None,
        })
    }

    async fn set_key_fingerprint(&self, fingerprint: &str) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO data_key_fingerprint (name, fingerprint) VALUES ('index', $1) ON CONFLICT DO NOTHING",
        )
        .bind(fingerprint.to_string())
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    async fn versions_after(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<StoredVersion>> {
        let rows = sqlx::query::<DB>(
            "SELECT seq, tenant, type, id, version, json FROM resource_versions WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredVersion {
                    seq: row.try_get(0)?,
                    tenant: row.try_get(1)?,
                    resource_type: row.try_get(2)?,
                    id: row.try_get(3)?,
                    version: row.try_get(4)?,
                    json: row.try_get(5)?,
                })
            })
            .collect()
    }

    async fn reencode_version(&self, version: &StoredVersion, json: Vec<u8>) -> StoreResult<()> {
        let mut tx = self.writes.begin_with(DB::BEGIN).await?;
        sqlx::query::<DB>("UPDATE resource_versions SET json = $1 WHERE seq = $2")
            .bind(json.clone())
            .bind(version.seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query::<DB>(
            "UPDATE resources SET json = $1 WHERE tenant = $2 AND type = $3 AND id = $4 AND version = $5",
        )
        .bind(json)
        .bind(version.tenant.clone())
        .bind(version.resource_type.clone())
        .bind(version.id.clone())
        .bind(version.version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn refresh_statistics(&self, min_writes: u64) -> StoreResult<Option<u64>> {
        let writes = self.writes_since_analyze.load(Ordering::Relaxed);
        if writes < min_writes {
            return Ok(None);
        }
        sqlx::raw_sql(DB::ANALYZE).execute(&self.writes).await?;
        self.writes_since_analyze.fetch_sub(writes, Ordering::Relaxed);
        Ok(Some(writes))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query::<DB>("SELECT 1").fetch_one(&self.reads).await?;
        Ok(())
    }

    async fn close(&self) {
        self.writes.close().await;
        self.reads.close().await;
    }
}

fn audit_link<R: Row>(row: &R) -> StoreResult<AuditLink>
where
    usize: ColumnIndex<R>,
    for<'e> String: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> i64: Decode<'e, R::Database> + Type<R::Database>,
{
    Ok(AuditLink {
        seq: row.try_get(0)?,
        id: row.try_get(1)?,
        content_hash: row.try_get(2)?,
        prev_hash: row.try_get(3)?,
        hash: row.try_get(4)?,
    })
}

/// A transaction on the writer pool, confined to one tenant.
pub struct SqlTransaction<DB: Database> {
    tx: sqlx::Transaction<'static, DB>,
    tenant_id: TenantId,
    /// The tenant as bound to statements.
    tenant: String,
    /// Versions written, added to the store's count on commit.
    writes: u64,
    writes_since_analyze: Arc<AtomicU64>,
}

#[async_trait]
impl<DB> StoreTransaction for SqlTransaction<DB>
where
    DB: SqlBackend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'e> i64: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> bool: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Vec<u8>: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Option<Vec<u8>>: Encode<'e, DB>,
    for<'e> Option<String>: Encode<'e, DB>,
    for<'e> Option<i64>: Encode<'e, DB>,
    for<'e> Option<f64>: Encode<'e, DB>,
    for<'e> f64: Encode<'e, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn tenant(&self) -> &TenantId {
        &self.tenant_id
    }

    async fn lock(&mut self, key: &str) -> StoreResult<()> {
        if let Some(lock) = DB::LOCK_KEY {
            sqlx::query::<DB>(lock).bind(format!("{}|{key}", self.tenant)).execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn read_current(&mut self, resource_type: &str, id: &str) -> StoreResult<Option<VersionRecord>> {
        let row = sqlx::query::<DB>(SELECT_CURRENT_FOR_CHANGE)
            .bind(self.tenant.clone())
            .bind(resource_type.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|row| current_record(&row)).transpose()
    }

    async fn search_ids(&mut self, resource_type: &str, query: &SearchQuery, limit: u32) -> StoreResult<Vec<String>> {
        let sql = format!(
            "SELECT r.id FROM resources r WHERE r.tenant = $1 AND r.type = $2 AND NOT r.deleted{} ORDER BY r.id LIMIT {limit}",
            query.conditions
        );
        let mut statement =
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)).bind(self.tenant.clone()).bind(resource_type.to_string());
        for arg in query.args.iter().cloned() {
            statement = bind_arg(statement, arg);
        }
        let rows = statement.fetch_all(&mut *self.tx).await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    async fn write(&mut self, request: WriteRequest<'_>) -> StoreResult<WriteOutcome> {
        for _ in 0..INSERT_RACE_RETRIES {
            let current = sqlx::query::<DB>(DB::SELECT_CURRENT_FOR_WRITE)
                .bind(self.tenant.clone())
                .bind(request.resource_type.to_string())
                .bind(request.id.to_string())
                .fetch_optional(&mut *self.tx)
                .await?
                .map(|row| -> StoreResult<CurrentRow> {
                    Ok(CurrentRow { version: row.try_get(0)?, deleted: row.try_get(1)?, last_updated: row.try_get(2)? })
                })
                .transpose()?;
            let plan = plan_write(current, &request.change, now_micros())?;
            let created = current.is_none_or(|c| c.deleted);
            if plan.unchanged {
                return Ok(WriteOutcome {
                    record: VersionRecord {
                        resource_type: request.resource_type.to_string(),
                        id: request.id.to_string(),
                        version: plan.version,
                        last_updated: plan.last_updated,
                        deleted: true,
                        method: WriteMethod::Delete,
                        json: None,
                        seq: 0,
                    },
                    created: false,
                    unchanged: true,
                });
            }
            let json = match &request.change {
                Change::Create(body) | Change::Update { body, .. } => {
                    Some(body.render(request.id, plan.version, &fhir_instant(plan.last_updated)))
                }
                Change::Delete => None,
            };
            let bind_current = |sql: &'static str| {
                sqlx::query::<DB>(sql)
                    .bind(self.tenant.clone())
                    .bind(request.resource_type.to_string())
                    .bind(request.id.to_string())
                    .bind(plan.version)
                    .bind(plan.last_updated)
                    .bind(plan.deleted)
                    .bind(json.clone())
            };
            if plan.insert {
                if bind_current(INSERT_CURRENT).fetch_optional(&mut *self.tx).await?.is_none() {
                    // A concurrent writer created the same id first and has committed (the
                    // insert waited for it): read its row again, now visible, and plan anew.
                    continue;
                }
            } else {
                bind_current(UPDATE_CURRENT).execute(&mut *self.tx).await?;
            }
            self.apply_guards(&request, &plan).await?;
            let index = if plan.deleted { &[][..] } else { &request.index[..] };
            self.replace_index(request.resource_type, request.id, index, !plan.insert).await?;
            let links = if plan.deleted { &[][..] } else { &request.links[..] };
            self.replace_links(request.resource_type, request.id, links, !plan.insert).await?;
            let seq: i64 = sqlx::query::<DB>(INSERT_VERSION)
                .bind(self.tenant.clone())
                .bind(request.resource_type.to_string())
                .bind(request.id.to_string())
                .bind(plan.version)
                .bind(plan.last_updated)
                .bind(plan.deleted)
                .bind(plan.method.http_method().to_string())
                .bind(json.clone())
                .fetch_one(&mut *self.tx)
                .await?
                .try_get(0)?;
            self.writes += 1;
            return Ok(WriteOutcome {
                record: VersionRecord {
                    resource_type: request.resource_type.to_string(),
                    id: request.id.to_string(),
                    version: plan.version,
                    last_updated: plan.last_updated,
                    deleted: plan.deleted,
                    method: plan.method,
                    json,
                    seq,
                },
                created,
                unchanged: false,
            });
        }
        Err(StoreError::AlreadyExists)
    }

    async fn rewrite_current(
        &mut self,
        resource_type: &str,
        id: &str,
        version: i64,
        json: Vec<u8>,
        index: Vec<IndexRow>,
    ) -> StoreResult<()> {
        for table in ["resources", "resource_versions"] {
            let sql = format!(
                "UPDATE {table} SET json = $4 WHERE tenant = $1 AND type = $2 AND id = $3 AND version = $5 RETURNING version"
            );
            let updated = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.clone())
                .bind(resource_type.to_string())
                .bind(id.to_string())
                .bind(json.clone())
                .bind(version)
                .fetch_optional(&mut *self.tx)
                .await?;
            if updated.is_none() {
                return Err(StoreError::VersionConflict { current: None });
            }
        }
        self.replace_index(resource_type, id, &index, true).await
    }

    async fn replace_index_rows(&mut self, resource_type: &str, id: &str, index: Vec<IndexRow>) -> StoreResult<()> {
        self.replace_index(resource_type, id, &index, true).await
    }

    async fn dangling_links(&mut self, sources: &[(String, String)]) -> StoreResult<Vec<Link>> {
        // Two plain lookups rather than one anti-join: right after a bulk load, without
        // statistics, PostgreSQL planned the anti-join as a scan of every resource of the
        // target's type per link.
        let mut links = Vec::new();
        for chunk in sources.chunks(LINK_KEYS_PER_QUERY) {
            let sql = format!(
                "SELECT l.source_type, l.source_id, l.target_type, l.target_id FROM resource_links l WHERE {}",
                key_alternatives::<DB>("l.tenant", "l.source_type", "l.source_id", chunk.len())
            );
            links.extend(self.fetch_links(sql, chunk).await?);
        }
        let mut targets: Vec<(String, String)> =
            links.iter().map(|l| (l.target_type.clone(), l.target_id.clone())).collect();
        targets.sort();
        targets.dedup();
        let mut live = std::collections::HashSet::new();
        for chunk in targets.chunks(LINK_KEYS_PER_QUERY) {
            let sql = format!(
                "SELECT type, id FROM resources WHERE ({}) AND NOT deleted",
                key_alternatives::<DB>("tenant", "type", "id", chunk.len())
            );
            let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
            for (t, id) in chunk {
                statement = statement.bind(self.tenant.clone()).bind(t.clone()).bind(id.clone());
            }
            for row in statement.fetch_all(&mut *self.tx).await? {
                live.insert((row.try_get::<String, _>(0)?, row.try_get::<String, _>(1)?));
            }
        }
        links.retain(|l| !live.contains(&(l.target_type.clone(), l.target_id.clone())));
        links.truncate(100);
        Ok(links)
    }

    async fn referrers(&mut self, targets: &[(String, String)], limit: u32) -> StoreResult<Vec<Link>> {
        let mut found = Vec::new();
        for chunk in targets.chunks(LINK_KEYS_PER_QUERY) {
            let sql = format!(
                "SELECT l.source_type, l.source_id, l.target_type, l.target_id FROM resource_links l \
                 WHERE ({}) AND NOT (l.source_type = l.target_type AND l.source_id = l.target_id) \
                 ORDER BY l.source_type, l.source_id LIMIT {limit}",
                key_alternatives::<DB>("l.tenant", "l.target_type", "l.target_id", chunk.len())
            );
            found.extend(self.fetch_links(sql, chunk).await?);
        }
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn write_batch(&mut self, requests: &[WriteRequest<'_>]) -> Result<Vec<WriteOutcome>, BatchError> {
        if requests.len() < 2 {
            let mut outcomes = Vec::new();
            for (index, request) in requests.iter().enumerate() {
                let request = request.clone();
                outcomes.push(self.write(request).await.map_err(|error| BatchError { index: Some(index), error })?);
            }
            return Ok(outcomes);
        }
        // The current rows of all, in one statement per chunk (locked where rows are locked).
        let keys: Vec<(String, String)> =
            requests.iter().map(|r| (r.resource_type.to_string(), r.id.to_string())).collect();
        let mut current: HashMap<(String, String), CurrentRow> = HashMap::new();
        for chunk in keys.chunks(LINK_KEYS_PER_QUERY) {
            let sql = format!(
                "SELECT type, id, version, deleted, last_updated FROM resources WHERE {}{}",
                key_alternatives::<DB>("tenant", "type", "id", chunk.len()),
                DB::LOCK_ROWS
            );
            let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
            for (t, id) in chunk {
                statement = statement.bind(self.tenant.clone()).bind(t.clone()).bind(id.clone());
            }
            for row in statement.fetch_all(&mut *self.tx).await? {
                current.insert(
                    (row.try_get(0)?, row.try_get(1)?),
                    CurrentRow { version: row.try_get(2)?, deleted: row.try_get(3)?, last_updated: row.try_get(4)? },
                );
            }
        }
        let now = now_micros();
        let mut plans = Vec::with_capacity(requests.len());
        for (index, (request, key)) in requests.iter().zip(&keys).enumerate() {
            let plan = plan_write(current.get(key).copied(), &request.change, now)
                .map_err(|error| BatchError { index: Some(index), error })?;
            plans.push(plan);
        }
        let jsons: Vec<Option<Vec<u8>>> = requests
            .iter()
            .zip(&plans)
            .map(|(request, plan)| match &request.change {
                _ if plan.unchanged => None,
                Change::Create(body) | Change::Update { body, .. } => {
                    Some(body.render(request.id, plan.version, &fhir_instant(plan.last_updated)))
                }
                Change::Delete => None,
            })
            .collect();
        let live: Vec<usize> = (0..requests.len()).filter(|&i| !plans[i].unchanged).collect();

        // New rows in multi-row INSERTs; a row another writer created meanwhile is not
        // inserted, and that request is written on its own afterwards.
        let inserts: Vec<usize> = live.iter().copied().filter(|&i| plans[i].insert).collect();
        let mut raced: Vec<usize> = Vec::new();
        for chunk in inserts.chunks(RESOURCE_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO resources (tenant, type, id, version, last_updated, deleted, json) VALUES {} \
                 ON CONFLICT DO NOTHING RETURNING type, id",
                value_tuples::<DB>(chunk.len(), 7)
            );
            let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
            for &i in chunk {
                statement = statement
                    .bind(self.tenant.clone())
                    .bind(requests[i].resource_type.to_string())
                    .bind(requests[i].id.to_string())
                    .bind(plans[i].version)
                    .bind(plans[i].last_updated)
                    .bind(plans[i].deleted)
                    .bind(jsons[i].clone());
            }
            let inserted: std::collections::HashSet<(String, String)> = statement
                .fetch_all(&mut *self.tx)
                .await?
                .iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect::<StoreResult<_>>()?;
            raced.extend(chunk.iter().copied().filter(|&i| !inserted.contains(&keys[i])));
        }
        let batched: Vec<usize> = live.iter().copied().filter(|i| !raced.contains(i)).collect();
        for &i in batched.iter().filter(|&&i| !plans[i].insert) {
            sqlx::query::<DB>(UPDATE_CURRENT)
                .bind(self.tenant.clone())
                .bind(requests[i].resource_type.to_string())
                .bind(requests[i].id.to_string())
                .bind(plans[i].version)
                .bind(plans[i].last_updated)
                .bind(plans[i].deleted)
                .bind(jsons[i].clone())
                .execute(&mut *self.tx)
                .await?;
        }
        // Business claims stay one request at a time: they are few, and each needs its answer.
        for &i in &batched {
            let request = &requests[i];
            let has_claims = !request.guards.unique_keys.is_empty() || !request.guards.busy.is_empty();
            if has_claims || !plans[i].insert {
                self.apply_guards(request, &plans[i]).await.map_err(|error| BatchError { index: Some(i), error })?;
            }
        }
        // Index rows and links: the old ones of updated resources out, all new ones in.
        let replaced: Vec<(String, String)> =
            batched.iter().filter(|&&i| !plans[i].insert).map(|&i| keys[i].clone()).collect();
        for table in INDEX_TABLES.iter().chain(["resource_links"].iter()) {
            let (type_column, id_column) =
                if *table == "resource_links" { ("source_type", "source_id") } else { ("type", "id") };
            for chunk in replaced.chunks(LINK_KEYS_PER_QUERY) {
                let sql = format!(
                    "DELETE FROM {table} WHERE {}",
                    key_alternatives::<DB>("tenant", type_column, id_column, chunk.len())
                );
                let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
                for (t, id) in chunk {
                    statement = statement.bind(self.tenant.clone()).bind(t.clone()).bind(id.clone());
                }
                statement.execute(&mut *self.tx).await?;
            }
        }
        let kept: Vec<usize> = batched.iter().copied().filter(|&i| !plans[i].deleted).collect();
        let rows: Vec<(&str, &str, &IndexRow)> = kept
            .iter()
            .flat_map(|&i| requests[i].index.iter().map(move |row| (requests[i].resource_type, requests[i].id, row)))
            .collect();
        self.insert_index_rows(&rows).await?;
        let mut links: Vec<(&str, &str, &str, &str)> = kept
            .iter()
            .flat_map(|&i| {
                requests[i]
                    .links
                    .iter()
                    .map(move |(t, id)| (requests[i].resource_type, requests[i].id, t.as_str(), id.as_str()))
            })
            .collect();
        links.sort();
        links.dedup();
        self.insert_links(&links).await?;
        // The versions, with their change-log positions.
        let mut seqs: HashMap<(String, String), i64> = HashMap::new();
        for chunk in batched.chunks(RESOURCE_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO resource_versions (tenant, type, id, version, last_updated, deleted, method, json) \
                 VALUES {} RETURNING type, id, seq",
                value_tuples::<DB>(chunk.len(), 8)
            );
            let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
            for &i in chunk {
                statement = statement
                    .bind(self.tenant.clone())
                    .bind(requests[i].resource_type.to_string())
                    .bind(requests[i].id.to_string())
                    .bind(plans[i].version)
                    .bind(plans[i].last_updated)
                    .bind(plans[i].deleted)
                    .bind(plans[i].method.http_method().to_string())
                    .bind(jsons[i].clone());
            }
            for row in statement.fetch_all(&mut *self.tx).await? {
                seqs.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
            }
        }
        self.writes += batched.len() as u64;
        let mut outcomes = Vec::with_capacity(requests.len());
        for (i, request) in requests.iter().enumerate() {
            if raced.contains(&i) {
                let single = request.clone();
                outcomes.push(self.write(single).await.map_err(|error| BatchError { index: Some(i), error })?);
                continue;
            }
            let plan = &plans[i];
            outcomes.push(WriteOutcome {
                record: VersionRecord {
                    resource_type: request.resource_type.to_string(),
                    id: request.id.to_string(),
                    version: plan.version,
                    last_updated: plan.last_updated,
                    deleted: plan.deleted,
                    method: plan.method,
                    json: jsons[i].clone(),
                    seq: seqs.get(&keys[i]).copied().unwrap_or(0),
                },
                created: current.get(&keys[i]).is_none_or(|c| c.deleted),
                unchanged: plan.unchanged,
            });
        }
        Ok(outcomes)
    }

    async fn next_sequence(&mut self, name: &str) -> StoreResult<i64> {
        let row = sqlx::query::<DB>(
            "INSERT INTO sequences (tenant, name, value) VALUES ($1, $2, 1) \
             ON CONFLICT (tenant, name) DO UPDATE SET value = sequences.value + 1 RETURNING value",
        )
        .bind(self.tenant.clone())
        .bind(name.to_string())
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(row.try_get(0)?)
    }

    async fn audit_chain_head(&mut self) -> StoreResult<Option<AuditLink>> {
        let row = sqlx::query::<DB>(
            "SELECT seq, id, content_hash, prev_hash, hash FROM audit_log WHERE tenant = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(self.tenant.clone())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.as_ref().map(audit_link).transpose()
    }

    async fn append_audit_log(&mut self, rows: &[(AuditLink, Vec<u8>)]) -> StoreResult<()> {
        for chunk in rows.chunks(500) {
            let sql = format!(
                "INSERT INTO audit_log ({AUDIT_LOG_COLUMNS}) VALUES {}",
                value_tuples::<DB>(chunk.len(), AUDIT_LOG_WIDTH)
            );
            let statement = bind_audit_rows(sqlx::query::<DB>(sqlx::AssertSqlSafe(sql)), &self.tenant, chunk);
            statement.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn audit_indexed_position(&mut self) -> StoreResult<i64> {
        let row = sqlx::query::<DB>("SELECT seq FROM audit_indexed WHERE tenant = $1")
            .bind(self.tenant.clone())
            .fetch_optional(&mut *self.tx)
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => 0,
        })
    }

    async fn put_ehr_connection(&mut self, c: &EhrConnection) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO ehr_connections (tenant, endpoint_id, auth, client_id, secret_sealed, algorithm, key_id, scope, \
             created_at, sync_every_secs, ca_certificates) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (tenant, endpoint_id) DO UPDATE SET auth = $3, client_id = $4, secret_sealed = $5, \
             algorithm = $6, key_id = $7, scope = $8, sync_every_secs = $10, ca_certificates = $11",
        )
        .bind(self.tenant.clone())
        .bind(c.endpoint_id.clone())
        .bind(c.auth.clone())
        .bind(c.client_id.clone())
        .bind(c.secret_sealed.clone())
        .bind(c.algorithm.clone())
        .bind(c.key_id.clone())
        .bind(c.scope.clone())
        .bind(c.created_at)
        .bind(c.sync_every_secs)
        .bind(c.ca_certificates.clone())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn insert_audit_copies(&mut self, copies: &[AuditCopy]) -> StoreResult<()> {
        // Without the general write path's reads of current rows and its RETURNING clauses:
        // a copied id is new by construction, and nothing waits for the versions' positions.
        // The current row, then the version row (which also names the method).
        let tables = [("resources", None), ("resource_versions", Some(WriteMethod::Create.http_method()))];
        for chunk in copies.chunks(RESOURCE_ROWS_PER_INSERT) {
            for (table, method) in tables {
                let (method_column, width) = if method.is_some() { (", method", 8) } else { ("", 7) };
                let sql = format!(
                    "INSERT INTO {table} (tenant, type, id, version, last_updated, deleted{method_column}, json) VALUES {}",
                    value_tuples::<DB>(chunk.len(), width)
                );
                let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
                for copy in chunk {
                    statement = statement
                        .bind(self.tenant.clone())
                        .bind("AuditEvent".to_string())
                        .bind(copy.id.clone())
                        .bind(1_i64)
                        .bind(copy.last_updated)
                        .bind(false);
                    if let Some(method) = method {
                        statement = statement.bind(method.to_string());
                    }
                    statement = statement.bind(copy.json.clone());
                }
                statement.execute(&mut *self.tx).await?;
            }
        }
        let rows: Vec<(&str, &str, &IndexRow)> = copies
            .iter()
            .flat_map(|copy| copy.index.iter().map(move |row| ("AuditEvent", copy.id.as_str(), row)))
            .collect();
        self.insert_index_rows(&rows).await?;
        self.writes += copies.len() as u64;
        Ok(())
    }

    async fn set_audit_indexed_position(&mut self, seq: i64) -> StoreResult<()> {
        sqlx::query::<DB>(
            "INSERT INTO audit_indexed (tenant, seq) VALUES ($1, $2) ON CONFLICT (tenant) DO UPDATE SET seq = $2",
        )
        .bind(self.tenant.clone())
        .bind(seq)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        let this = *self;
        this.tx.commit().await?;
        this.writes_since_analyze.fetch_add(this.writes, Ordering::Relaxed);
        Ok(())
    }
}

impl<DB> SqlTransaction<DB>
where
    DB: SqlBackend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'e> i64: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> bool: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Vec<u8>: Encode<'e, DB> + Decode<'e, DB> + Type<DB>,
    for<'e> Option<Vec<u8>>: Encode<'e, DB>,
    for<'e> Option<String>: Encode<'e, DB>,
    for<'e> Option<i64>: Encode<'e, DB>,
    for<'e> Option<f64>: Encode<'e, DB>,
    for<'e> f64: Encode<'e, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Replaces the search-index rows of the resource with the new version's (none for a deletion),
    /// one multi-row INSERT per table. A brand-new resource has no rows to remove.
    async fn replace_index(
        &mut self,
        resource_type: &str,
        id: &str,
        index: &[IndexRow],
        had_rows: bool,
    ) -> StoreResult<()> {
        let previous_rows = if had_rows { &INDEX_TABLES[..] } else { &[][..] };
        for table in previous_rows {
            let sql = format!("DELETE FROM {table} WHERE tenant = $1 AND type = $2 AND id = $3");
            sqlx::query::<DB>(sqlx::AssertSqlSafe(sql))
                .bind(self.tenant.clone())
                .bind(resource_type.to_string())
                .bind(id.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        let rows: Vec<(&str, &str, &IndexRow)> = index.iter().map(|row| (resource_type, id, row)).collect();
        self.insert_index_rows(&rows).await
    }

    /// Inserts index rows of any resources, one multi-row INSERT per table and chunk.
    async fn insert_index_rows(&mut self, rows: &[(&str, &str, &IndexRow)]) -> StoreResult<()> {
        for table in INDEX_TABLES {
            let rows: Vec<&(&str, &str, &IndexRow)> = rows.iter().filter(|(_, _, r)| index_table(r) == table).collect();
            for chunk in rows.chunks(INDEX_ROWS_PER_INSERT) {
                let columns = index_columns(chunk[0].2);
                let sql = format!(
                    "INSERT INTO {table} (tenant, type, id, {}) VALUES {}",
                    columns.join(", "),
                    value_tuples::<DB>(chunk.len(), 3 + columns.len())
                );
                let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
                for (resource_type, id, row) in chunk {
                    statement =
                        statement.bind(self.tenant.clone()).bind(resource_type.to_string()).bind(id.to_string());
                    for (column, value) in columns.iter().zip(index_values(row)) {
                        statement = match value {
                            Some(value) => bind_arg(statement, value),
                            None => bind_null(statement, column),
                        };
                    }
                }
                statement.execute(&mut *self.tx).await?;
            }
        }
        Ok(())
    }

    /// Replaces the resource's links with the new version's.
    async fn replace_links(
        &mut self,
        resource_type: &str,
        id: &str,
        links: &[(String, String)],
        had_rows: bool,
    ) -> StoreResult<()> {
        if had_rows {
            sqlx::query::<DB>("DELETE FROM resource_links WHERE tenant = $1 AND source_type = $2 AND source_id = $3")
                .bind(self.tenant.clone())
                .bind(resource_type.to_string())
                .bind(id.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        let mut rows: Vec<(&str, &str, &str, &str)> =
            links.iter().map(|(t, target)| (resource_type, id, t.as_str(), target.as_str())).collect();
        rows.sort();
        rows.dedup();
        self.insert_links(&rows).await
    }

    /// Inserts links `(source type, source id, target type, target id)`, many per statement.
    async fn insert_links(&mut self, links: &[(&str, &str, &str, &str)]) -> StoreResult<()> {
        for chunk in links.chunks(INDEX_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO resource_links (tenant, source_type, source_id, target_type, target_id) VALUES {}",
                value_tuples::<DB>(chunk.len(), 5)
            );
            let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
            for (st, sid, tt, tid) in chunk {
                statement = statement
                    .bind(self.tenant.clone())
                    .bind(st.to_string())
                    .bind(sid.to_string())
                    .bind(tt.to_string())
                    .bind(tid.to_string());
            }
            statement.execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// Runs a link query over [`key_alternatives`] of `keys`.
    async fn fetch_links(&mut self, sql: String, keys: &[(String, String)]) -> StoreResult<Vec<Link>> {
        let mut statement = sqlx::query::<DB>(sqlx::AssertSqlSafe(sql));
        for (t, id) in keys {
            statement = statement.bind(self.tenant.clone()).bind(t.clone()).bind(id.clone());
        }
        let rows = statement.fetch_all(&mut *self.tx).await?;
        rows.iter()
            .map(|row| {
                Ok(Link {
                    source_type: row.try_get(0)?,
                    source_id: row.try_get(1)?,
                    target_type: row.try_get(2)?,
                    target_id: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Replaces the resource's unique keys and busy intervals with the new version's, refusing
    /// keys held by another resource and intervals that overlap another's.
    async fn apply_guards(&mut self, request: &WriteRequest<'_>, plan: &WritePlan) -> StoreResult<()> {
        let tenant = self.tenant.clone();
        let owner = || (tenant.clone(), request.resource_type.to_string(), request.id.to_string());
        let previous_claims: &[&'static str] = if plan.insert {
            &[]
        } else {
            &[
                "DELETE FROM unique_keys WHERE tenant = $1 AND type = $2 AND id = $3",
                "DELETE FROM busy_intervals WHERE tenant = $1 AND type = $2 AND id = $3",
            ]
        };
        for statement in previous_claims {
            let (t, ty, id) = owner();
            sqlx::query::<DB>(*statement).bind(t).bind(ty).bind(id).execute(&mut *self.tx).await?;
        }
        if plan.deleted {
            return Ok(());
        }
        for (kind, key) in &request.guards.unique_keys {
            let (t, ty, id) = owner();
            let inserted = sqlx::query::<DB>(
                "INSERT INTO unique_keys (tenant, kind, key, type, id) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(t.clone())
            .bind(kind.clone())
            .bind(key.clone())
            .bind(ty)
            .bind(id)
            .fetch_optional(&mut *self.tx)
            .await?;
            if inserted.is_none() {
                let holder =
                    sqlx::query::<DB>("SELECT type, id FROM unique_keys WHERE tenant = $1 AND kind = $2 AND key = $3")
                        .bind(t)
                        .bind(kind.clone())
                        .bind(key.clone())
                        .fetch_one(&mut *self.tx)
                        .await?;
                let (holder_type, holder_id): (String, String) = (holder.try_get(0)?, holder.try_get(1)?);
                return Err(StoreError::KeyTaken {
                    kind: kind.clone(),
                    key: key.clone(),
                    owner: format!("{holder_type}/{holder_id}"),
                });
            }
        }
        for interval in &request.guards.busy {
            if let Some(lock) = DB::LOCK_KEY {
                sqlx::query::<DB>(lock)
                    .bind(format!("{}|{}", self.tenant, interval.key))
                    .execute(&mut *self.tx)
                    .await?;
            }
            let clash = sqlx::query::<DB>(
                "SELECT type, id FROM busy_intervals WHERE tenant = $1 AND key = $2 AND start_at < $3 AND end_at > $4 LIMIT 1",
            )
            .bind(self.tenant.clone())
            .bind(interval.key.clone())
            .bind(interval.end)
            .bind(interval.start)
            .fetch_optional(&mut *self.tx)
            .await?;
            if let Some(row) = clash {
                let (holder_type, holder_id): (String, String) = (row.try_get(0)?, row.try_get(1)?);
                return Err(StoreError::Overlap {
                    description: interval.description.clone(),
                    owner: format!("{holder_type}/{holder_id}"),
                });
            }
            let (t, ty, id) = owner();
            sqlx::query::<DB>(
                "INSERT INTO busy_intervals (tenant, key, start_at, end_at, type, id) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(t)
            .bind(interval.key.clone())
            .bind(interval.start)
            .bind(interval.end)
            .bind(ty)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }
}

const INDEX_TABLES: [&str; 8] = [
    "search_string",
    "search_token",
    "search_date",
    "search_number",
    "search_quantity",
    "search_reference",
    "search_uri",
    "search_composite",
];

/// `(type, id)` keys per statement: three bind parameters each (with the tenant).
const LINK_KEYS_PER_QUERY: usize = 400;

/// The `n`th placeholder of a statement whose values are bound in the order they appear.
fn placeholder<DB: SqlBackend>(n: usize) -> String {
    if DB::POSITIONAL_PARAMETERS { "?".to_string() } else { format!("${n}") }
}

/// A condition matching `count` keys, bound as (tenant, type, id) each. SQLite gets
/// `(tenant = ? AND t = ? AND i = ?) OR …`: each alternative one lookup in the
/// `(tenant, type, id)` index (with the tenant outside the alternatives it scans the tenant's
/// rows). PostgreSQL gets `(tenant, t, i) IN (VALUES …)`, a join with the list: it plans a
/// long OR slowly and badly.
fn key_alternatives<DB: SqlBackend>(tenant_column: &str, type_column: &str, id_column: &str, count: usize) -> String {
    if DB::POSITIONAL_PARAMETERS {
        (0..count)
            .map(|_| format!("({tenant_column} = ? AND {type_column} = ? AND {id_column} = ?)"))
            .collect::<Vec<_>>()
            .join(" OR ")
    } else {
        format!("({tenant_column}, {type_column}, {id_column}) IN (VALUES {})", value_tuples::<DB>(count, 3))
    }
}

/// `(…), (…)` for `rows` rows of `width` values each, numbered from 1.
fn value_tuples<DB: SqlBackend>(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=width).map(|c| placeholder::<DB>(r * width + c)).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most rows the audit writer appends in one guarded statement (7 bind parameters each).
const AUDIT_ROWS_PER_APPEND: usize = 1000;

/// Resource and version rows per multi-row INSERT (7 bind parameters each).
const RESOURCE_ROWS_PER_INSERT: usize = 200;

/// Rows per multi-row INSERT: well under SQLite's and PostgreSQL's bind-parameter limits.
const INDEX_ROWS_PER_INSERT: usize = 400;

fn index_table(row: &IndexRow) -> &'static str {
    match row {
        IndexRow::String { .. } => "search_string",
        IndexRow::Token { .. } => "search_token",
        IndexRow::Date { .. } => "search_date",
        IndexRow::Number { .. } => "search_number",
        IndexRow::Quantity { .. } => "search_quantity",
        IndexRow::Reference { .. } => "search_reference",
        IndexRow::Uri { .. } => "search_uri",
        IndexRow::Composite { .. } => "search_composite",
    }
}

fn index_columns(row: &IndexRow) -> &'static [&'static str] {
    match row {
        IndexRow::String { .. } => &["param", "normalized", "exact"],
        IndexRow::Token { .. } => &["param", "system", "code", "text"],
        IndexRow::Date { .. } => &["param", "low", "high"],
        IndexRow::Number { .. } => &["param", "value"],
        IndexRow::Quantity { .. } => &["param", "value", "system", "code"],
        IndexRow::Reference { .. } => &["param", "target_type", "target_id", "url"],
        IndexRow::Uri { .. } => &["param", "value"],
        IndexRow::Composite { .. } => &crate::search::composite::ROW_COLUMNS,
    }
}

/// The row's values in the order of [`index_columns`]; `None` is SQL NULL.
fn index_values(row: &IndexRow) -> Vec<Option<SqlArg>> {
    let text = |s: &str| Some(SqlArg::Text(s.to_string()));
    let opt = |s: &Option<String>| s.as_deref().and_then(text);
    match row {
        IndexRow::String { param, normalized, exact } => vec![text(param), text(normalized), text(exact)],
        IndexRow::Token { param, system, code, text: t } => vec![text(param), opt(system), opt(code), opt(t)],
        IndexRow::Date { param, low, high } => vec![text(param), Some(SqlArg::Int(*low)), Some(SqlArg::Int(*high))],
        IndexRow::Number { param, value } => vec![text(param), Some(SqlArg::Real(*value))],
        IndexRow::Quantity { param, value, system, code } => {
            vec![text(param), Some(SqlArg::Real(*value)), opt(system), opt(code)]
        }
        IndexRow::Reference { param, target_type, target_id, url } => {
            vec![text(param), opt(target_type), opt(target_id), opt(url)]
        }
        IndexRow::Uri { param, value } => vec![text(param), text(value)],
        IndexRow::Composite { param, first, second } => crate::search::composite::row_values(param, first, second),
    }
}

type Statement<'q, DB> = sqlx::query::Query<'q, DB, <DB as Database>::Arguments>;

fn bind_arg<'q, DB>(statement: Statement<'q, DB>, arg: SqlArg) -> Statement<'q, DB>
where
    DB: Database,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Type<DB>,
    for<'e> f64: Encode<'e, DB> + Type<DB>,
{
    match arg {
        SqlArg::Text(v) => statement.bind(v),
        SqlArg::Int(v) => statement.bind(v),
        SqlArg::Real(v) => statement.bind(v),
    }
}

/// The columns of an `audit_log` row, in the order [`bind_audit_rows`] binds them.
const AUDIT_LOG_COLUMNS: &str = "tenant, seq, id, content_hash, prev_hash, hash, json";
const AUDIT_LOG_WIDTH: usize = 7;

/// Binds audit log rows of `tenant`, one `VALUES` tuple each, in [`AUDIT_LOG_COLUMNS`] order.
fn bind_audit_rows<'q, DB>(
    mut statement: Statement<'q, DB>,
    tenant: &str,
    rows: &[(AuditLink, Vec<u8>)],
) -> Statement<'q, DB>
where
    DB: Database,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Type<DB>,
    for<'e> Vec<u8>: Encode<'e, DB> + Type<DB>,
{
    for (link, json) in rows {
        statement = statement
            .bind(tenant.to_string())
            .bind(link.seq)
            .bind(link.id.clone())
            .bind(link.content_hash.clone())
            .bind(link.prev_hash.clone())
            .bind(link.hash.clone())
            .bind(json.clone());
    }
    statement
}

/// A NULL of the index column's type: PostgreSQL takes a text NULL for a number column as an
/// error. The nullable number columns are the composite rows' values and bounds.
fn bind_null<'q, DB>(statement: Statement<'q, DB>, column: &str) -> Statement<'q, DB>
where
    DB: Database,
    for<'e> i64: Encode<'e, DB> + Type<DB>,
    for<'e> String: Encode<'e, DB> + Type<DB>,
    for<'e> f64: Encode<'e, DB> + Type<DB>,
    for<'e> Option<String>: Encode<'e, DB>,
    for<'e> Option<i64>: Encode<'e, DB>,
    for<'e> Option<f64>: Encode<'e, DB>,
{
    if column.ends_with("_value") {
        statement.bind(None::<f64>)
    } else if column.ends_with("_low") || column.ends_with("_high") {
        statement.bind(None::<i64>)
    } else {
        statement.bind(None::<String>)
    }
}

/// A row of `resources` selected as (type, id, version, last_updated, deleted, json).
fn current_record<R>(row: &R) -> StoreResult<VersionRecord>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'e> i64: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> bool: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> String: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> Vec<u8>: Decode<'e, R::Database> + Type<R::Database>,
{
    let deleted: bool = row.try_get(4)?;
    Ok(VersionRecord {
        resource_type: row.try_get(0)?,
        id: row.try_get(1)?,
        version: row.try_get(2)?,
        last_updated: row.try_get(3)?,
        deleted,
        method: if deleted { WriteMethod::Delete } else { WriteMethod::Update },
        json: row.try_get(5)?,
        seq: 0,
    })
}

/// A row of `resource_versions` selected as (type, id, version, last_updated, deleted, json,
/// method, seq).
fn version_record<R>(row: &R) -> StoreResult<VersionRecord>
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'e> i64: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> bool: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> String: Decode<'e, R::Database> + Type<R::Database>,
    for<'e> Vec<u8>: Decode<'e, R::Database> + Type<R::Database>,
{
    let method: String = row.try_get(6)?;
    Ok(VersionRecord { method: WriteMethod::from_db(&method), seq: row.try_get(7)?, ..current_record(row)? })
}

#[cfg(test)]
mod plan_tests {
    #[test]
    fn the_row_estimate_is_read_from_the_plans_top_line() {
        let line = "Nested Loop Semi Join  (cost=8.60..1234.50 rows=4821 width=4)";
        assert_eq!(super::planned_rows(line), Some(4821));
        assert_eq!(super::planned_rows("Result  (cost=0.00..0.01 rows=1 width=4)"), Some(1));
        assert_eq!(super::planned_rows("no estimate here"), None);
    }
}
