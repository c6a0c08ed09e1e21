//! The audit trail (HIPAA §164.312(b), 21 CFR 11.10(e)): every access to the FHIR API and every
//! sign-in, sign-out and token becomes an AuditEvent (FHIR R4 auditevent.html), committed to the
//! tenant's hash-chained audit log before the response leaves, and never changed.
//!
//! Requests do not commit one event each: they hand their event to one background task that
//! appends every event waiting at that moment in one transaction (group commit), so the cost of
//! a commit is shared by all the requests that arrived during the previous one. The log row is
//! all a request waits for, and it is the AuditEvent as served (id, `meta` and all): a second
//! task adds, in large batches, the resource and version rows (without a copy of the body) and
//! the search index, and any read of AuditEvents first brings that up to date.

pub mod chain;
pub mod event;
pub mod middleware;
pub mod report;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::access::TenantId;
use crate::fhir::instant::{fhir_instant, now_micros, parse_range};
use crate::fhir::registry::Registry;
use crate::store::{AuditCopy, AuditLink, AuditRow, DynStore};
use std::collections::HashSet;
use std::sync::Arc;

/// Tries of the locked append before a write of the trail fails (each lost to another node's
/// append that came first).
const APPEND_ATTEMPTS: u32 = 10;

/// Most events one transaction writes; more wait for the next.
const MAX_BATCH: usize = 512;
/// Most log rows copied into resources per transaction (measured: 100 made the per-transaction
/// costs dominate; 500 holds the one SQLite writer for about 0.1 s under load).
const INDEX_BATCH: u32 = 500;
/// How long new log rows may wait before they are copied into resources (reads of AuditEvents
/// do not wait for it: they bring the copy up to date first).
const INDEX_DELAY: std::time::Duration = std::time::Duration::from_millis(200);
/// Longest a batch of events waits for the copy to catch up before it is written anyway: the
/// copy may be another node's, whose progress this process sees only when it reads it.
const BACKLOG_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How long the writer stops waiting for a copy that made no progress in a whole wait.
const STALLED_COPY_PAUSE: std::time::Duration = std::time::Duration::from_secs(30);

/// An event waiting to be written, and who waits for it. The event is serialised and hashed by
/// the request that records it, in parallel with the others: the one writer task only chains
/// and inserts.
struct Pending {
    tenant: TenantId,
    event: PreparedEvent,
    done: oneshot::Sender<Result<(), String>>,
}

/// An event with its id, its stored JSON and the hash of its content.
struct PreparedEvent {
    id: String,
    json: Vec<u8>,
    content_hash: String,
}

impl PreparedEvent {
    /// The event as the AuditEvent resource it will be served as: its id, and the `meta` of
    /// its one version (version 1, last updated when recorded). The log row is the resource's
    /// body, so it is stored once; the hash covers the content, not the `meta`.
    fn new(event: Value) -> Result<PreparedEvent, String> {
        let id = crate::rest::new_id();
        let mut event = with_id(event, &id);
        let content_hash = chain::content_hash_of(&event);
        if let Value::Object(members) = &mut event {
            let recorded = members.get("recorded").cloned().unwrap_or_else(|| fhir_instant(now_micros()).into());
            let meta = serde_json::json!({"versionId": "1", "lastUpdated": recorded});
            let after_id = members.keys().position(|name| name == "id").map_or(0, |i| i + 1);
            members.shift_insert(after_id, "meta".into(), meta);
        }
        let json = serde_json::to_vec(&event).map_err(|e| e.to_string())?;
        Ok(PreparedEvent { id, json, content_hash })
    }
}

/// The handle requests record events through (cheap to clone).
#[derive(Clone)]
pub struct Auditor {
    queue: Option<mpsc::Sender<Pending>>,
    indexing: Option<Arc<Indexing>>,
}

/// What the copying of log rows into resources needs in this process.
struct Indexing {
    store: DynStore,
    registry: &'static Registry,
    /// Tenants with log rows this process wrote and has not copied yet.
    behind: std::sync::Mutex<HashSet<TenantId>>,
    /// One copy at a time in this process (other nodes are kept out by the lock `audit-index`).
    running: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    /// Most log rows a tenant's copy may lag behind this process's appends (0: no limit).
    backlog_limit: i64,
    /// Per tenant: the last row this process appended, and how far the copy was last seen.
    positions: std::sync::Mutex<std::collections::HashMap<TenantId, Positions>>,
    /// Signalled whenever the copy moves on.
    copied_some: tokio::sync::Notify,
    /// Until when the writer does not wait for a copy that made no progress in a whole wait.
    stalled_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Positions {
    logged: i64,
    copied: Option<i64>,
}

impl Indexing {
    fn note(&self, tenant: &TenantId, change: impl FnOnce(&mut Positions)) {
        if let Ok(mut positions) = self.positions.lock() {
            change(positions.entry(tenant.clone()).or_default());
        }
    }

    fn note_copied(&self, tenant: &TenantId, seq: i64) {
        self.note(tenant, |p| p.copied = Some(p.copied.map_or(seq, |copied| copied.max(seq))));
        self.copied_some.notify_waiters();
    }

    /// How many rows the tenant's copy lags behind this process's appends (unknown until the
    /// copy has run once).
    fn backlog(&self, tenant: &TenantId) -> Option<i64> {
        let positions = self.positions.lock().ok()?;
        let p = positions.get(tenant)?;
        Some(p.logged - p.copied?)
    }

    /// Whether some tenant's copy lags by more than half the limit: then it copies without
    /// first waiting for more rows.
    fn far_behind(&self) -> bool {
        self.backlog_limit > 0
            && self.positions.lock().is_ok_and(|positions| {
                positions.values().any(|p| p.copied.is_some_and(|copied| p.logged - copied > self.backlog_limit / 2))
            })
    }

    /// Holds the writer while the tenant's copy lags by more than the limit (at most
    /// [`BACKLOG_WAIT`]). A copy that cannot keep up would otherwise fall behind without end
    /// under a sustained load, and the next read of AuditEvents, which first brings the copy up
    /// to date, would wait for all of it; so the requests that make the trail wait instead.
    async fn wait_for_copy(&self, tenant: &TenantId) {
        if self.backlog_limit <= 0 {
            return;
        }
        if self.copied(tenant).is_none()
            && let Ok(copied) = self.store.audit_indexed_position(tenant).await
        {
            self.note_copied(tenant, copied);
        }
        let now = tokio::time::Instant::now();
        if self.stalled_until.lock().is_ok_and(|until| until.is_some_and(|until| now < until)) {
            return;
        }
        let copied_before = self.copied(tenant);
        let deadline = now + BACKLOG_WAIT;
        while self.backlog(tenant).is_some_and(|backlog| backlog > self.backlog_limit) {
            self.wake.notify_one();
            let progress = self.copied_some.notified();
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                tracing::warn!(tenant = %tenant, "the copy of the audit log is behind; writing on");
                // A copy that did not move at all is failing (its errors are logged), not slow:
                // requests are not held back for it again for a while.
                if self.copied(tenant) == copied_before
                    && let Ok(mut until) = self.stalled_until.lock()
                {
                    *until = Some(tokio::time::Instant::now() + STALLED_COPY_PAUSE);
                }
                return;
            }
        }
    }

    fn copied(&self, tenant: &TenantId) -> Option<i64> {
        self.positions.lock().ok()?.get(tenant)?.copied
    }

    /// [`index_pending`], recording the copy's progress as it goes.
    async fn copy(&self, tenant: &TenantId) -> Result<u64, String> {
        copy_pending(&self.store, self.registry, tenant, &|seq| self.note_copied(tenant, seq)).await
    }
}

impl Auditor {
    /// Starts the writer and the indexer tasks on the current runtime. The writer waits while
    /// a tenant's copy lags by more than `backlog_limit` rows (0: never).
    pub fn start(store: DynStore, registry: &'static Registry, backlog_limit: u64) -> Auditor {
        let (queue, receiver) = mpsc::channel(8 * MAX_BATCH);
        let indexing = Arc::new(Indexing {
            store: store.clone(),
            registry,
            behind: Default::default(),
            running: Default::default(),
            wake: Default::default(),
            backlog_limit: i64::try_from(backlog_limit).unwrap_or(i64::MAX),
            positions: Default::default(),
            copied_some: Default::default(),
            stalled_until: Default::default(),
        });
        tokio::spawn(write_events(store, receiver, indexing.clone()));
        tokio::spawn(index_continuously(indexing.clone()));
        Auditor { queue: Some(queue), indexing: Some(indexing) }
    }

    /// An auditor that records nothing: only for measuring what auditing costs (`audit = false`).
    pub fn disabled() -> Auditor {
        Auditor { queue: None, indexing: None }
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Records an AuditEvent (without `id` and `meta`) in the tenant's log, answering once it is
    /// committed.
    pub async fn record(&self, tenant: &TenantId, event: Value) -> Result<(), String> {
        let Some(queue) = &self.queue else { return Ok(()) };
        let event = PreparedEvent::new(event)?;
        let (done, committed) = oneshot::channel();
        queue
            .send(Pending { tenant: tenant.clone(), event, done })
            .await
            .map_err(|_| "the audit writer has stopped".to_string())?;
        committed.await.map_err(|_| "the audit writer has stopped".to_string())?
    }

    /// Copies every row this process logged into AuditEvent resources: on shutdown, before the
    /// database connections close.
    pub async fn finish(&self) {
        let Some(indexing) = &self.indexing else { return };
        let _running = indexing.running.lock().await;
        let tenants: Vec<TenantId> = match indexing.behind.lock() {
            Ok(mut behind) => behind.drain().collect(),
            Err(_) => return,
        };
        for tenant in tenants {
            if let Err(e) = indexing.copy(&tenant).await {
                tracing::error!(tenant = %tenant, error = %e, "audit events could not be indexed at shutdown");
            }
        }
    }

    /// Brings the tenant's AuditEvent resources up to date with the log, whichever node or
    /// command wrote it, so a read of the trail sees every access answered before it.
    pub async fn catch_up(&self, tenant: &TenantId) -> Result<(), String> {
        let Some(indexing) = &self.indexing else { return Ok(()) };
        let _running = indexing.running.lock().await;
        if let Ok(mut behind) = indexing.behind.lock() {
            behind.remove(tenant);
        }
        indexing.copy(tenant).await?;
        Ok(())
    }
}

/// The writer task: takes whatever is waiting (at least one event), appends it to the log in one
/// transaction per tenant, answers every waiter, and goes again.
async fn write_events(store: DynStore, mut receiver: mpsc::Receiver<Pending>, indexing: Arc<Indexing>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut heads = Heads::new();
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut tenants: Vec<TenantId> = batch.iter().map(|p| p.tenant.clone()).collect();
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        tenants.dedup();
        for tenant in tenants {
            let (mine, rest): (Vec<Pending>, Vec<Pending>) = batch.drain(..).partition(|p| p.tenant == tenant);
            batch = rest;
            let events: Vec<&PreparedEvent> = mine.iter().map(|p| &p.event).collect();
            indexing.wait_for_copy(&tenant).await;
            let started = std::time::Instant::now();
            let result = append(&store, &tenant, &events, &mut heads).await.map_err(|e| {
                tracing::error!(tenant = %tenant, error = %e, "audit events could not be written");
                format!("the audit trail could not be written: {e}")
            });
            tracing::debug!(events = mine.len(), micros = started.elapsed().as_micros() as u64, "audit batch written");
            if result.is_ok() {
                if let Ok(mut behind) = indexing.behind.lock() {
                    behind.insert(tenant.clone());
                }
                if let Some(head) = heads.get(&tenant).map(|(seq, _)| *seq) {
                    indexing.note(&tenant, |p| p.logged = head);
                }
            }
            for pending in mine {
                let _ = pending.done.send(result.clone());
            }
        }
        indexing.wake.notify_one();
    }
}

/// The last link of each tenant's chain as this process last wrote or read it: `(seq, hash)`.
type Heads = std::collections::HashMap<TenantId, (i64, String)>;

/// The events as log rows following the link `(seq, hash)`.
fn chain_rows(events: &[&PreparedEvent], head: &(i64, String)) -> Vec<(AuditLink, Vec<u8>)> {
    let (mut seq, mut prev_hash) = head.clone();
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        let hash = chain::link_hash(&prev_hash, &event.content_hash);
        seq += 1;
        let link = AuditLink { seq, id: event.id.clone(), content_hash: event.content_hash.clone(), prev_hash, hash };
        prev_hash = link.hash.clone();
        rows.push((link, event.json.clone()));
    }
    rows
}

/// Appends events to the tenant's log, extending its hash chain. When this process knows the
/// head, one guarded statement does it; when it does not, or another writer (a node, a
/// command) moved the head since, a transaction locks the chain and reads the head first.
async fn append(
    store: &DynStore,
    tenant: &TenantId,
    events: &[&PreparedEvent],
    heads: &mut Heads,
) -> Result<(), String> {
    let last = |rows: &[(AuditLink, Vec<u8>)]| rows.last().map(|(link, _)| (link.seq, link.hash.clone()));
    if let Some(head) = heads.get(tenant) {
        let rows = chain_rows(events, head);
        if store.append_audit_log_after(tenant, head.0, &rows).await.map_err(|e| e.to_string())? {
            if let Some(new_head) = last(&rows) {
                heads.insert(tenant.clone(), new_head);
            }
            return Ok(());
        }
        heads.remove(tenant);
    }
    // A fast-path writer on another node does not take the chain lock: it may take the numbers
    // this transaction read as free between its read and its insert. Then the head is read again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut transaction = store.begin_audit_log(tenant).await.map_err(|e| e.to_string())?;
        transaction.lock("audit-chain").await.map_err(|e| e.to_string())?;
        let head = match transaction.audit_chain_head().await.map_err(|e| e.to_string())? {
            Some(link) => (link.seq, link.hash),
            None => (0, chain::GENESIS.to_string()),
        };
        let rows = chain_rows(events, &head);
        match transaction.append_audit_log(&rows).await {
            Err(e) if e.is_unique_violation() && attempts < APPEND_ATTEMPTS => continue,
            other => other.map_err(|e| e.to_string())?,
        }
        transaction.commit().await.map_err(|e| e.to_string())?;
        heads.insert(tenant.clone(), last(&rows).unwrap_or(head));
        return Ok(());
    }
}

/// The event with its id, placed after `resourceType` as FHIR JSON usually has it.
fn with_id(event: Value, id: &str) -> Value {
    let Value::Object(members) = event else { return event };
    let mut out = serde_json::Map::with_capacity(members.len() + 1);
    for (name, value) in members {
        let is_type = name == "resourceType";
        out.insert(name, value);
        if is_type {
            out.insert("id".into(), Value::String(id.to_string()));
        }
    }
    Value::Object(out)
}

/// The indexer task: shortly after new rows are logged, copies them into resources.
async fn index_continuously(indexing: Arc<Indexing>) {
    loop {
        indexing.wake.notified().await;
        if !indexing.far_behind() {
            tokio::time::sleep(INDEX_DELAY).await;
        }
        let _running = indexing.running.lock().await;
        let tenants: Vec<TenantId> = match indexing.behind.lock() {
            Ok(mut behind) => behind.drain().collect(),
            Err(_) => continue,
        };
        for tenant in tenants {
            if let Err(e) = indexing.copy(&tenant).await {
                tracing::error!(tenant = %tenant, error = %e, "audit events could not be indexed");
                if let Ok(mut behind) = indexing.behind.lock() {
                    behind.insert(tenant);
                }
            }
        }
    }
}

/// Copies every log row not yet copied into an AuditEvent resource (with its search-index rows),
/// a batch per transaction, under the lock `audit-index` so that nodes never copy a row twice.
/// Answers how many rows were copied.
pub async fn index_pending(store: &DynStore, registry: &'static Registry, tenant: &TenantId) -> Result<u64, String> {
    copy_pending(store, registry, tenant, &|_| {}).await
}

/// [`index_pending`], telling `progress` each position of the copy it reads or writes.
async fn copy_pending(
    store: &DynStore,
    registry: &'static Registry,
    tenant: &TenantId,
    progress: &(dyn Fn(i64) + Send + Sync),
) -> Result<u64, String> {
    let mut copied = 0;
    // Only what is logged now: chasing rows logged while copying would keep the one SQLite
    // writer busy in small batches.
    let target = store.audit_head_seq(tenant).await.map_err(|e| e.to_string())?;
    loop {
        let started = std::time::Instant::now();
        // Read, parsed and indexed before the write transaction begins: on SQLite every
        // request's audit append waits while a transaction holds the one writer.
        let position = store.audit_indexed_position(tenant).await.map_err(|e| e.to_string())?;
        progress(position);
        let mut rows = store.audit_links(tenant, position, INDEX_BATCH).await.map_err(|e| e.to_string())?;
        rows.retain(|row| row.link.seq <= target);
        let Some(last) = rows.last().map(|row| row.link.seq) else { return Ok(copied) };
        let copies = rows.iter().map(|row| copy_of(registry, row)).collect::<Result<Vec<_>, _>>()?;
        let prepared = started.elapsed();
        let mut transaction = store.begin(tenant).await.map_err(|e| e.to_string())?;
        transaction.lock("audit-index").await.map_err(|e| e.to_string())?;
        if transaction.audit_indexed_position().await.map_err(|e| e.to_string())? != position {
            // Another node or command copied these meanwhile: read again from where it stopped.
            continue;
        }
        transaction.insert_audit_copies(&copies).await.map_err(|e| e.to_string())?;
        transaction.set_audit_indexed_position(last).await.map_err(|e| e.to_string())?;
        transaction.commit().await.map_err(|e| e.to_string())?;
        progress(last);
        tracing::debug!(
            events = rows.len(),
            micros = started.elapsed().as_micros() as u64,
            prepared_micros = prepared.as_micros() as u64,
            "audit events indexed"
        );
        copied += rows.len() as u64;
    }
}

/// The AuditEvent resource of a log row. A row logged with its `meta` is the resource's body:
/// the copy holds no JSON, only the index rows. A row logged before events carried a `meta`
/// is copied with one (version 1, the time of the copy), as such rows always were.
fn copy_of(registry: &'static Registry, row: &AuditRow) -> Result<AuditCopy, String> {
    let id = row.link.id.clone();
    // The server wrote the row: one parse for the index values, and the stored body's own
    // (lossless) parse only for the rows that need a body.
    let value: Value = serde_json::from_slice(&row.logged).map_err(|e| format!("AuditEvent/{id} in the log: {e}"))?;
    let index = crate::search::index_resource(registry, "AuditEvent", &value);
    let logged_meta_time = value.pointer("/meta/lastUpdated").and_then(Value::as_str).and_then(parse_range);
    Ok(match logged_meta_time {
        Some((last_updated, _)) => AuditCopy { id, last_updated, json: None, index },
        None => {
            let (body, _) = crate::fhir::json::parse_resource(&row.logged).map_err(|e| e.to_string())?;
            let now = now_micros();
            let json = Some(body.render(&id, 1, &fhir_instant(now)));
            AuditCopy { id, last_updated: now, json, index }
        }
    })
}

/// Records a sign-in, sign-out or token event. These disclose no health data, so a failure to
/// record is logged rather than refusing the user.
pub async fn record_auth_event(
    state: &crate::app::AppState,
    tenant: Option<&str>,
    kind: event::Kind,
    actor: &event::Actor,
    origin: &event::Origin,
    outcome: event::Outcome,
    description: Option<&str>,
) {
    let tenant = tenant.and_then(|t| TenantId::parse(t).ok()).unwrap_or_else(|| state.default_tenant.clone());
    let event = event::audit_event(&kind, actor, origin, outcome, description, Vec::new(), None);
    if let Err(e) = state.audit.record(&tenant, event).await {
        tracing::error!(error = %e, "an authentication event could not be audited");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(logged: &Value) -> AuditRow {
        let link = AuditLink {
            seq: 1,
            id: "e1".into(),
            content_hash: String::new(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        AuditRow { link, logged: serde_json::to_vec(logged).unwrap(), copied: false, resource: None }
    }

    #[test]
    fn an_event_is_logged_as_the_resource_it_is_served_as() {
        let event = serde_json::json!({"resourceType": "AuditEvent", "recorded": "2026-12-01T05:47:03.170108Z",
                                       "action": "R"});
        let prepared = PreparedEvent::new(event.clone()).unwrap();
        let logged: Value = serde_json::from_slice(&prepared.json).unwrap();
        let names: Vec<&str> = logged.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(names, ["resourceType", "id", "meta", "recorded", "action"]);
        assert_eq!(logged["meta"], serde_json::json!({"versionId": "1", "lastUpdated": "2026-12-01T05:47:03.170108Z"}));
        assert_eq!(prepared.content_hash, chain::content_hash(&prepared.json).unwrap(), "the hash leaves meta out");
        assert_eq!(prepared.content_hash, chain::content_hash_of(&with_id(event, &prepared.id)));
    }

    /// A copy that makes no progress in a whole wait is failing, not slow: the writer waits
    /// once, then writes on without waiting for a while.
    #[tokio::test]
    async fn the_writer_stops_waiting_for_a_copy_that_does_not_move() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("kiln.db").display());
        let store = crate::store::connect(&url, 1).await.unwrap();
        let indexing = Indexing {
            store,
            registry: Registry::global(),
            behind: Default::default(),
            running: Default::default(),
            wake: Default::default(),
            backlog_limit: 10,
            positions: Default::default(),
            copied_some: Default::default(),
            stalled_until: Default::default(),
        };
        let tenant = TenantId::parse("a-clinic").unwrap();
        indexing.note(&tenant, |p| p.logged = 100);
        indexing.note_copied(&tenant, 50);
        assert_eq!(indexing.backlog(&tenant), Some(50));
        assert!(indexing.far_behind());

        let started = std::time::Instant::now();
        indexing.wait_for_copy(&tenant).await;
        assert!(started.elapsed() >= BACKLOG_WAIT, "it waited for the copy first");
        let again = std::time::Instant::now();
        indexing.wait_for_copy(&tenant).await;
        assert!(again.elapsed() < BACKLOG_WAIT / 4, "then not again: {:?}", again.elapsed());

        // Within the limit nobody waits, stalled or not.
        *indexing.stalled_until.lock().unwrap() = None;
        indexing.note_copied(&tenant, 95);
        let within = std::time::Instant::now();
        indexing.wait_for_copy(&tenant).await;
        assert!(within.elapsed() < BACKLOG_WAIT / 4);
    }

    #[test]
    fn a_copy_holds_no_body_unless_its_log_row_predates_meta() {
        let registry = Registry::global();
        let current = serde_json::json!({"resourceType": "AuditEvent", "id": "e1",
            "meta": {"versionId": "1", "lastUpdated": "2026-12-01T05:47:03.170108Z"},
            "recorded": "2026-12-01T05:47:03.170108Z", "action": "R"});
        let copy = copy_of(registry, &row(&current)).unwrap();
        assert_eq!(copy.json, None);
        assert_eq!(fhir_instant(copy.last_updated), "2026-12-01T05:47:03.170108Z");
        assert!(!copy.index.is_empty(), "indexed all the same");

        let older = serde_json::json!({"resourceType": "AuditEvent", "id": "e1",
                                       "recorded": "2026-12-01T05:47:03.170108Z", "action": "R"});
        let before = now_micros();
        let copy = copy_of(registry, &row(&older)).unwrap();
        assert!(copy.last_updated >= before, "the time of the copy");
        let body: Value = serde_json::from_slice(copy.json.as_deref().expect("a body of its own")).unwrap();
        assert_eq!(body["meta"]["versionId"], "1");
        assert_eq!(body["meta"]["lastUpdated"], fhir_instant(copy.last_updated));
        assert_eq!(body["action"], "R");
    }
}
