//! The storage trait every backend implements, the versioning rules shared by all of them, and
//! the connection of a backend from a database URL. Every version of every resource is kept
//! (FHIR R4 http.html#versioning); every query is confined to one tenant.

pub mod auth;
pub mod postgres;
pub mod sql;
pub mod sqlite;

use async_trait::async_trait;
use std::sync::Arc;

use crate::access::TenantId;
use crate::error::FhirError;
use crate::fhir::instant::Micros;
use crate::fhir::json::ResourceBody;
use crate::search::IndexRow;
use crate::search::query::{Include, SearchQuery};

/// How a version came to be, as history reports it in `Bundle.entry.request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMethod {
    Create,
    Update,
    Delete,
}

impl WriteMethod {
    pub fn http_method(self) -> &'static str {
        match self {
            WriteMethod::Create => "POST",
            WriteMethod::Update => "PUT",
            WriteMethod::Delete => "DELETE",
        }
    }

    pub(crate) fn from_db(method: &str) -> WriteMethod {
        match method {
            "POST" => WriteMethod::Create,
            "DELETE" => WriteMethod::Delete,
            _ => WriteMethod::Update,
        }
    }
}

/// One stored version of a resource. `json` is absent for a deletion.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub last_updated: Micros,
    pub deleted: bool,
    pub method: WriteMethod,
    pub json: Option<Vec<u8>>,
    /// Position in the tenant's change log (for history paging).
    pub seq: i64,
}

/// How Kiln signs in to a remote EHR registered as the Endpoint `endpoint_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhrConnection {
    pub endpoint_id: String,
    /// `backend-services`, `client-secret` or `none`.
    pub auth: String,
    pub client_id: Option<String>,
    /// The private key (PEM) or client secret, sealed.
    pub secret_sealed: Option<String>,
    pub algorithm: Option<String>,
    pub key_id: Option<String>,
    pub scope: String,
    pub created_at: i64,
    /// Re-pull the linked patients this often (seconds), when set.
    pub sync_every_secs: Option<i64>,
    /// PEM CA certificates trusted for this remote besides the system's roots.
    pub ca_certificates: Option<String>,
}

/// A queued re-pull of one linked patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EhrSyncJob {
    pub id: i64,
    pub tenant: String,
    pub endpoint_id: String,
    pub patient_id: String,
}

/// One stored version with its place in the change log.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub seq: i64,
    pub tenant: String,
    pub resource_type: String,
    pub id: String,
    pub version: i64,
    pub json: Option<Vec<u8>>,
}

/// A change to one resource.
#[derive(Clone, Copy)]
pub enum Change<'a> {
    /// A new resource with a server-assigned id.
    Create(&'a ResourceBody),
    /// A new version (or the first, as update-as-create), optionally only if the current version
    /// is `if_match`.
    Update { body: &'a ResourceBody, if_match: Option<i64> },
    /// A deletion version.
    Delete,
}

#[derive(Clone)]
pub struct WriteRequest<'a> {
    pub resource_type: &'a str,
    pub id: &'a str,
    pub change: Change<'a>,
    /// Business rules the store enforces atomically with the write.
    pub guards: WriteGuards,
    /// The search-index rows of the new version (replacing the previous version's).
    pub index: Vec<IndexRow>,
    /// Every local resource the new version refers to, as `(type, id)` (replacing the previous
    /// version's), for referential integrity.
    pub links: Vec<(String, String)>,
}

impl<'a> WriteRequest<'a> {
    pub fn new(resource_type: &'a str, id: &'a str, change: Change<'a>) -> Self {
        WriteRequest { resource_type, id, change, guards: WriteGuards::default(), index: Vec::new(), links: Vec::new() }
    }
}

/// Facts derived from the new version that must hold across the tenant's data. The store
/// replaces the resource's previous claims with these inside the write transaction, so the rules
/// hold under concurrent writers and on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteGuards {
    /// `(kind, key)` pairs no other resource of the tenant may hold (e.g. `("mrn", "MRN-2024-00001")`).
    pub unique_keys: Vec<(String, String)>,
    /// Intervals that must not overlap another resource's interval under the same key
    /// (e.g. a practitioner's booked appointments).
    pub busy: Vec<BusyInterval>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusyInterval {
    pub key: String,
    pub start: Micros,
    pub end: Micros,
    /// What to say when the interval is taken, e.g. "Practitioner/12 is already booked".
    pub description: String,
}

/// The result of a write: the new version, and whether no live resource existed before it.
#[derive(Debug)]
pub struct WriteOutcome {
    pub record: VersionRecord,
    pub created: bool,
    /// The delete found the resource already deleted and wrote nothing.
    pub unchanged: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a resource with this id already exists")]
    AlreadyExists,
    #[error("resource not found")]
    NotFound,
    #[error("version conflict: the current version is {current:?}")]
    VersionConflict { current: Option<i64> },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Configuration(String),
    /// A unique business key is already held by another resource.
    #[error("{kind} '{key}' is already used by {owner}")]
    KeyTaken { kind: String, key: String, owner: String },
    /// An interval overlaps one held by another resource.
    #[error("{description}: the time overlaps {owner}")]
    Overlap { description: String, owner: String },
}

impl StoreError {
    /// Whether a row was refused because another writer took its unique key first.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

impl From<StoreError> for FhirError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AlreadyExists => FhirError::Conflict(err.to_string()),
            StoreError::NotFound => FhirError::NotFound("resource not found".into()),
            StoreError::VersionConflict { current: Some(v) } => FhirError::PreconditionFailed(format!(
                "the resource's current version is {v}; the If-Match version does not match"
            )),
            StoreError::VersionConflict { current: None } => {
                FhirError::PreconditionFailed("the resource does not exist, so If-Match cannot match".into())
            }
            StoreError::Database(e) => e.into(),
            StoreError::Migration(e) | StoreError::Configuration(e) => FhirError::Internal(e),
            StoreError::KeyTaken { .. } | StoreError::Overlap { .. } => FhirError::Conflict(err.to_string()),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which versions a history request covers (FHIR R4 http.html#history).
#[derive(Debug, Clone, Copy)]
pub enum HistoryScope<'a> {
    System,
    Type(&'a str),
    Instance(&'a str, &'a str),
}

#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    /// Only versions written at or after this instant.
    pub since: Option<Micros>,
    /// Only versions that were current at this instant.
    pub at: Option<Micros>,
    /// Keyset cursor: only entries older than this position.
    pub before_seq: Option<i64>,
    pub count: u32,
}

#[async_trait]
pub trait Store: crate::auth::store::AuthStore + Send + Sync + 'static {
    /// `sqlite` or `postgres`.
    fn backend_name(&self) -> &'static str;
    /// The current version (possibly a deletion), or nothing if the resource never existed.
    async fn read_current(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<VersionRecord>>;
    async fn read_version(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        id: &str,
        version: i64,
    ) -> StoreResult<Option<VersionRecord>>;
    /// Starts a unit of work on the tenant's data (a database transaction).
    async fn begin(&self, tenant: &TenantId) -> StoreResult<Box<dyn StoreTransaction>>;
    /// Applies one change atomically: no two writers can both pass the same `If-Match`.
    async fn write(&self, tenant: &TenantId, request: WriteRequest<'_>) -> StoreResult<WriteOutcome> {
        let mut transaction = self.begin(tenant).await?;
        let outcome = transaction.write(request).await?;
        if !outcome.unchanged {
            transaction.commit().await?;
        }
        Ok(outcome)
    }
    /// Versions newest first.
    async fn history(
        &self,
        tenant: &TenantId,
        scope: HistoryScope<'_>,
        filter: &HistoryFilter,
    ) -> StoreResult<Vec<VersionRecord>>;
    /// Up to `query.count + 1` current, live resources of `resource_type` matching the query,
    /// in its order, after its cursor (the extra one tells whether there is a next page).
    async fn search(
        &self,
        tenant: &TenantId,
        resource_type: &str,
        query: &SearchQuery,
    ) -> StoreResult<Vec<VersionRecord>>;
    /// The resources an `_include` (referred to by `sources`) or `_revinclude` (referring to
    /// `sources`) adds, at most `limit` of them. `sources` are `(type, id)` pairs.
    async fn includes(
        &self,
        tenant: &TenantId,
        include: &Include,
        sources: &[(String, String)],
        limit: u32,
    ) -> StoreResult<Vec<VersionRecord>>;
    /// How many current, live resources match the query (its cursor ignored).
    async fn count(&self, tenant: &TenantId, resource_type: &str, query: &SearchQuery) -> StoreResult<u64>;
    /// About how many current, live resources match the query: the planner's estimate where the
    /// database keeps one (PostgreSQL), else the exact count (`_total=estimate`).
    async fn estimate(&self, tenant: &TenantId, resource_type: &str, query: &SearchQuery) -> StoreResult<u64>;
    /// The next value of a per-tenant counter, starting at 1 (numbers may be skipped, never reused).
    async fn next_sequence(&self, tenant: &TenantId, name: &str) -> StoreResult<i64> {
        let mut transaction = self.begin(tenant).await?;
        let value = transaction.next_sequence(name).await?;
        transaction.commit().await?;
        Ok(value)
    }
    /// The profiles, tags and security labels on current resources of one type, or of all.
    async fn meta_in_use(&self, tenant: &TenantId, resource_type: Option<&str>) -> StoreResult<MetaInUse>;
    /// Up to `limit` rows of the tenant's audit log after position `after_seq`, in order, each
    /// with the current JSON of its AuditEvent resource (`None` when there is none, or it is
    /// deleted).
    async fn audit_links(&self, tenant: &TenantId, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRow>>;
    /// How far the tenant's audit log has been copied into AuditEvent resources.
    async fn audit_indexed_position(&self, tenant: &TenantId) -> StoreResult<i64>;
    /// The position of the last row of the tenant's audit log (0: none).
    async fn audit_head_seq(&self, tenant: &TenantId) -> StoreResult<i64>;
    /// A transaction on the audit log (on SQLite a file of its own): for appends that must lock
    /// the chain and read its head first. Only the audit log's methods may be used in it.
    async fn begin_audit_log(&self, tenant: &TenantId) -> StoreResult<Box<dyn StoreTransaction>>;
    /// Appends rows to the tenant's audit log in one statement, provided the log still ends at
    /// `head_seq` (0: empty); answers whether they were appended. The audit writer's fast path:
    /// one round trip instead of a transaction of four, when it knows the head.
    async fn append_audit_log_after(
        &self,
        tenant: &TenantId,
        head_seq: i64,
        rows: &[(AuditLink, Vec<u8>)],
    ) -> StoreResult<bool>;
    /// Up to `limit` ids of the tenant's AuditEvent resources that have no audit log row.
    async fn unchained_audit_events(&self, tenant: &TenantId, limit: u32) -> StoreResult<Vec<String>>;
    /// The tenants that hold resources.
    async fn resource_tenants(&self) -> StoreResult<Vec<TenantId>>;
    /// The tenants that have an audit log or AuditEvents.
    async fn audit_tenants(&self) -> StoreResult<Vec<TenantId>>;
    /// Makes sure the tenant row exists.
    async fn ensure_tenant(&self, tenant: &TenantId, name: &str) -> StoreResult<()>;

    /// Remote EHR connections (the credential half of an Endpoint, `src/ehr`; written with the
    /// Endpoint by [`StoreTransaction::put_ehr_connection`]).
    async fn ehr_connections(&self, tenant: &TenantId) -> StoreResult<Vec<EhrConnection>>;
    /// The remotes whose sync schedule is due at `now`, as (tenant, endpoint id), marked as
    /// synced now (so that one node takes each).
    async fn due_ehr_syncs(&self, now: i64) -> StoreResult<Vec<(String, String)>>;
    /// Queues a re-pull of each patient, unless one is already queued or running; answers how
    /// many were queued.
    async fn enqueue_ehr_sync(&self, tenant: &TenantId, endpoint_id: &str, patients: &[String]) -> StoreResult<u64>;
    /// Claims the oldest queued re-pull for `node`; concurrent claims never get the same job.
    async fn claim_ehr_sync(&self, node: &str) -> StoreResult<Option<EhrSyncJob>>;
    async fn finish_ehr_sync(&self, id: i64, succeeded: bool, outcome: &str) -> StoreResult<()>;
    /// Every sealed EHR credential of every tenant, as (tenant, endpoint id, sealed value).
    async fn ehr_secrets(&self) -> StoreResult<Vec<(String, String, String)>>;
    /// Replaces a sealed EHR credential with a new encoding of it, if it still is `old`.
    async fn reencode_ehr_secret(&self, tenant: &str, endpoint_id: &str, old: &str, new: &str) -> StoreResult<bool>;

    /// The fingerprint of the data key file recorded for this database, if any.
    async fn key_fingerprint(&self) -> StoreResult<Option<String>>;
    async fn set_key_fingerprint(&self, fingerprint: &str) -> StoreResult<()>;

    /// Stored versions of every tenant after change-log position `after_seq`, oldest first
    /// (for `kiln keys rotate`, which reseals them).
    async fn versions_after(&self, after_seq: i64, limit: u32) -> StoreResult<Vec<StoredVersion>>;

    /// Replaces the stored JSON of one version (and of the current row, if it is that version)
    /// with a re-encoded form of the same resource: a reseal under a new data key.
    async fn reencode_version(&self, version: &StoredVersion, json: Vec<u8>) -> StoreResult<()>;
    /// Refreshes the query planner's statistics if at least `min_writes` writes happened since the
    /// last refresh (so searches right after a bulk load get good plans); answers how many writes
    /// the refresh took in, or `None` if it did not run.
    async fn refresh_statistics(&self, min_writes: u64) -> StoreResult<Option<u64>>;
    /// Answers whether the database can be reached.
    async fn ping(&self) -> StoreResult<()>;
    /// Closes every connection, waiting for those in use.
    async fn close(&self);
}

pub type DynStore = Arc<dyn Store>;

/// Every current resource a search matches, a page of the query's `_count` at a time, each page
/// read after the last one's final resource (keyset): for jobs that go through all of them
/// (reports, reindexing, retention), which must neither skip nor repeat one.
pub struct Pages<'a> {
    store: &'a dyn Store,
    tenant: &'a TenantId,
    resource_type: &'a str,
    query: SearchQuery,
    done: bool,
}

impl<'a> Pages<'a> {
    pub fn new(store: &'a dyn Store, tenant: &'a TenantId, resource_type: &'a str, query: SearchQuery) -> Pages<'a> {
        Pages { store, tenant, resource_type, query, done: false }
    }

    /// The next page, `None` after the last.
    pub async fn next(&mut self) -> StoreResult<Option<Vec<VersionRecord>>> {
        if self.done {
            return Ok(None);
        }
        let mut page = self.store.search(self.tenant, self.resource_type, &self.query).await?;
        // The store reads one more than a page to tell whether another follows.
        let more = page.len() > self.query.count as usize;
        page.truncate(self.query.count as usize);
        match (more, page.last()) {
            (true, Some(last)) => {
                self.query.cursor =
                    Some(crate::search::query::Cursor::After { last_updated: last.last_updated, id: last.id.clone() })
            }
            _ => self.done = true,
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

/// Why a batch write failed, and which request caused it, when one did.
#[derive(Debug)]
pub struct BatchError {
    pub index: Option<usize>,
    pub error: StoreError,
}

impl From<StoreError> for BatchError {
    fn from(error: StoreError) -> Self {
        BatchError { index: None, error }
    }
}

impl From<sqlx::Error> for BatchError {
    fn from(error: sqlx::Error) -> Self {
        BatchError { index: None, error: error.into() }
    }
}

/// A reference from one current resource to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub source_type: String,
    pub source_id: String,
    pub target_type: String,
    pub target_id: String,
}

/// One link of a tenant's audit hash chain: the AuditEvent it covers, the SHA-256 (hex) of that
/// event's canonical JSON, the previous link's hash, and its own hash over both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLink {
    pub seq: i64,
    pub id: String,
    pub content_hash: String,
    pub prev_hash: String,
    pub hash: String,
}

/// A row of the audit log as verification reads it: the link, the JSON written before the
/// response, whether the AuditEvent resource exists, and the JSON its row holds (none when its
/// body is the log row's, as for every event logged with its `meta`).
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub link: AuditLink,
    pub logged: Vec<u8>,
    pub copied: bool,
    pub resource: Option<Vec<u8>>,
}

/// An AuditEvent resource made from a row of the audit log: its id, the time of its `meta`, the
/// JSON its row holds (`None`: its body is the log row's) and its search-index rows.
#[derive(Debug, Clone)]
pub struct AuditCopy {
    pub id: String,
    pub last_updated: i64,
    pub json: Option<Vec<u8>>,
    pub index: Vec<IndexRow>,
}

/// What `$meta` reports for a type or the whole system.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaInUse {
    pub profiles: Vec<String>,
    /// `(system, code)` pairs.
    pub tags: Vec<(Option<String>, Option<String>)>,
    pub security: Vec<(Option<String>, Option<String>)>,
}

/// A unit of work on one tenant's data: what it reads, finds and writes commits or rolls back
/// together (the all-or-nothing of FHIR R4 http.html#transaction). Dropping it without
/// [`commit`](StoreTransaction::commit) rolls everything back.
#[async_trait]
pub trait StoreTransaction: Send {
    /// The tenant whose data this transaction works on.
    fn tenant(&self) -> &TenantId;
    /// Waits for, then holds until the transaction ends, a lock on a text key, so that work
    /// decided by a search (a conditional create) is never done twice by concurrent writers,
    /// whichever node or process they run on.
    async fn lock(&mut self, key: &str) -> StoreResult<()>;
    /// The current version as this transaction sees it (its own writes included).
    async fn read_current(&mut self, resource_type: &str, id: &str) -> StoreResult<Option<VersionRecord>>;
    /// The ids of up to `limit` current, live resources matching the query (its cursor, sort
    /// and paging ignored), as this transaction sees them.
    async fn search_ids(&mut self, resource_type: &str, query: &SearchQuery, limit: u32) -> StoreResult<Vec<String>>;
    /// Applies one change; no two writers can both pass the same `If-Match`.
    async fn write(&mut self, request: WriteRequest<'_>) -> StoreResult<WriteOutcome>;
    /// Applies several changes to distinct resources, as [`write`](StoreTransaction::write)
    /// each would, in a few statements for all of them (the bulk path of transactions and
    /// imports). On failure, answers the index of the request at fault where one is.
    async fn write_batch(&mut self, requests: &[WriteRequest<'_>]) -> Result<Vec<WriteOutcome>, BatchError>;
    /// Replaces the JSON and index rows of version `version`, the current one, without a new
    /// version: only for `$meta-add` / `$meta-delete`, which the specification defines so.
    async fn rewrite_current(
        &mut self,
        resource_type: &str,
        id: &str,
        version: i64,
        json: Vec<u8>,
        index: Vec<IndexRow>,
    ) -> StoreResult<()>;
    /// Replaces the search-index rows of the current version of `resource_type/id` (`kiln
    /// reindex`), nothing else.
    async fn replace_index_rows(&mut self, resource_type: &str, id: &str, index: Vec<IndexRow>) -> StoreResult<()>;
    /// The links of `sources` whose target is not a live resource (at most 100).
    async fn dangling_links(&mut self, sources: &[(String, String)]) -> StoreResult<Vec<Link>>;
    /// Links from live resources (other than the targets themselves) to any of `targets`.
    async fn referrers(&mut self, targets: &[(String, String)], limit: u32) -> StoreResult<Vec<Link>>;
    /// The next value of a per-tenant counter (see [`Store::next_sequence`]).
    async fn next_sequence(&mut self, name: &str) -> StoreResult<i64>;
    /// The last row of the tenant's audit log; the caller holds the lock `audit-chain`.
    async fn audit_chain_head(&mut self) -> StoreResult<Option<AuditLink>>;
    /// Appends rows (a link and the event's JSON) to the tenant's audit log (the table refuses
    /// changes to existing rows).
    async fn append_audit_log(&mut self, rows: &[(AuditLink, Vec<u8>)]) -> StoreResult<()>;
    /// Adds AuditEvent resources made from audit log rows: all new (the log never repeats an
    /// id), version 1, without links (an audit record must never keep what it names from being
    /// deleted, nor need it to exist).
    async fn insert_audit_copies(&mut self, copies: &[AuditCopy]) -> StoreResult<()>;
    /// How far the audit log has been copied into resources, and recording a new position.
    async fn audit_indexed_position(&mut self) -> StoreResult<i64>;
    async fn set_audit_indexed_position(&mut self, seq: i64) -> StoreResult<()>;
    /// Registers (or changes) a remote EHR connection, in the transaction that writes its Endpoint.
    async fn put_ehr_connection(&mut self, connection: &EhrConnection) -> StoreResult<()>;
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// The row of a resource's current version, as found before a write.
#[derive(Debug, Clone, Copy)]
pub struct CurrentRow {
    pub version: i64,
    pub deleted: bool,
    pub last_updated: Micros,
}

/// What a write will do, decided from the current row alone, the same on every backend.
#[derive(Debug, PartialEq, Eq)]
pub struct WritePlan {
    pub version: i64,
    pub last_updated: Micros,
    pub deleted: bool,
    pub method: WriteMethod,
    /// No row exists yet: insert rather than update.
    pub insert: bool,
    /// Nothing to write (deleting a deleted resource).
    pub unchanged: bool,
}

pub fn plan_write(current: Option<CurrentRow>, change: &Change<'_>, now: Micros) -> StoreResult<WritePlan> {
    let version = current.map_or(1, |c| c.version + 1);
    // Versions of one resource never go back in time, even if clocks of two nodes disagree.
    let last_updated = current.map_or(now, |c| now.max(c.last_updated + 1));
    let live = current.filter(|c| !c.deleted);
    let plan = |method, deleted| WritePlan {
        version,
        last_updated,
        deleted,
        method,
        insert: current.is_none(),
        unchanged: false,
    };
    match change {
        Change::Create(_) if current.is_some() => Err(StoreError::AlreadyExists),
        Change::Create(_) => Ok(plan(WriteMethod::Create, false)),
        Change::Update { if_match: Some(expected), .. } => match live {
            Some(c) if c.version == *expected => Ok(plan(WriteMethod::Update, false)),
            other => Err(StoreError::VersionConflict { current: other.map(|c| c.version) }),
        },
        Change::Update { if_match: None, .. } => Ok(plan(WriteMethod::Update, false)),
        Change::Delete => match current {
            None => Err(StoreError::NotFound),
            Some(c) if c.deleted => Ok(WritePlan {
                version: c.version,
                last_updated: c.last_updated,
                deleted: true,
                method: WriteMethod::Delete,
                insert: false,
                unchanged: true,
            }),
            Some(_) => Ok(plan(WriteMethod::Delete, true)),
        },
    }
}

/// Opens the backend named by the URL (`sqlite:` or `postgres:`), applying migrations.
pub async fn connect(database_url: &str, pool_size: u32) -> StoreResult<DynStore> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::connect(database_url, pool_size).await?))
    } else if database_url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::connect(database_url, pool_size).await?))
    } else {
        Err(StoreError::Configuration(format!(
            "unsupported database URL '{}': use sqlite://path or postgres://…",
            database_url.split('@').next_back().unwrap_or("")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> ResourceBody {
        crate::fhir::json::parse_resource(br#"{"resourceType":"Patient"}"#).unwrap().0
    }

    #[test]
    fn update_as_create_starts_at_version_one() {
        let b = body();
        let plan = plan_write(None, &Change::Update { body: &b, if_match: None }, 10).unwrap();
        assert_eq!((plan.version, plan.insert, plan.method), (1, true, WriteMethod::Update));
    }

    #[test]
    fn if_match_must_equal_the_live_version() {
        let b = body();
        let current = Some(CurrentRow { version: 3, deleted: false, last_updated: 5 });
        assert!(plan_write(current, &Change::Update { body: &b, if_match: Some(3) }, 10).is_ok());
        assert!(matches!(
            plan_write(current, &Change::Update { body: &b, if_match: Some(2) }, 10),
            Err(StoreError::VersionConflict { current: Some(3) })
        ));
        let deleted = Some(CurrentRow { version: 3, deleted: true, last_updated: 5 });
        assert!(plan_write(deleted, &Change::Update { body: &b, if_match: Some(3) }, 10).is_err());
    }

    #[test]
    fn time_never_goes_backwards() {
        let b = body();
        let current = Some(CurrentRow { version: 1, deleted: false, last_updated: 100 });
        let plan = plan_write(current, &Change::Update { body: &b, if_match: None }, 50).unwrap();
        assert_eq!(plan.last_updated, 101);
    }

    #[test]
    fn deleting_twice_writes_nothing() {
        let deleted = Some(CurrentRow { version: 2, deleted: true, last_updated: 5 });
        assert!(plan_write(deleted, &Change::Delete, 10).unwrap().unchanged);
        assert!(matches!(plan_write(None, &Change::Delete, 10), Err(StoreError::NotFound)));
    }
}
