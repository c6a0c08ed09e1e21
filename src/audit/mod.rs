//! The audit trail (HIPAA §164.312(b), 21 CFR 11.10(e)): every access to the FHIR API and every
//! sign-in, sign-out and token becomes an AuditEvent (FHIR R4 auditevent.html), committed before
//! the response leaves, hash-chained per tenant and never changed.
//!
//! Writers do not commit one event each: they hand their event to one background task that
//! writes every event waiting at that moment in one transaction (group commit), so the cost of a
//! commit is shared by all the requests that arrived during the previous one.

pub mod chain;
pub mod event;
pub mod middleware;
pub mod report;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::access::TenantId;
use crate::fhir::registry::Registry;
use crate::store::{AuditLink, Change, DynStore, WriteRequest};

/// Most events one transaction writes; more wait for the next.
const MAX_BATCH: usize = 512;

/// An event waiting to be written, and who waits for it.
struct Pending {
    tenant: TenantId,
    event: Value,
    done: oneshot::Sender<Result<(), String>>,
}

/// The handle requests record events through (cheap to clone).
#[derive(Clone)]
pub struct Auditor {
    queue: Option<mpsc::Sender<Pending>>,
}

impl Auditor {
    /// Starts the writer task on the current runtime.
    pub fn start(store: DynStore, registry: &'static Registry) -> Auditor {
        let (queue, receiver) = mpsc::channel(8 * MAX_BATCH);
        tokio::spawn(write_events(store, registry, receiver));
        Auditor { queue: Some(queue) }
    }

    /// An auditor that records nothing: only for measuring what auditing costs (`audit = false`).
    pub fn disabled() -> Auditor {
        Auditor { queue: None }
    }

    pub fn enabled(&self) -> bool {
        self.queue.is_some()
    }

    /// Records an AuditEvent (without `id` and `meta`, which the store assigns) in the tenant's
    /// trail, answering once it is committed.
    pub async fn record(&self, tenant: &TenantId, event: Value) -> Result<(), String> {
        let Some(queue) = &self.queue else { return Ok(()) };
        let (done, committed) = oneshot::channel();
        queue
            .send(Pending { tenant: tenant.clone(), event, done })
            .await
            .map_err(|_| "the audit writer has stopped".to_string())?;
        committed.await.map_err(|_| "the audit writer has stopped".to_string())?
    }
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

/// The writer task: takes whatever is waiting (at least one event), writes it in one
/// transaction per tenant, answers every waiter, and goes again.
async fn write_events(store: DynStore, registry: &'static Registry, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut tenants: Vec<TenantId> = batch.iter().map(|p| p.tenant.clone()).collect();
        tenants.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        tenants.dedup();
        for tenant in tenants {
            let (mine, rest): (Vec<Pending>, Vec<Pending>) = batch.drain(..).partition(|p| p.tenant == tenant);
            batch = rest;
            let events: Vec<&Value> = mine.iter().map(|p| &p.event).collect();
            let started = std::time::Instant::now();
            let result = append(&store, registry, &tenant, &events).await.map_err(|e| {
                tracing::error!(tenant = %tenant, error = %e, "audit events could not be written");
                format!("the audit trail could not be written: {e}")
            });
            tracing::debug!(events = mine.len(), micros = started.elapsed().as_micros() as u64, "audit batch written");
            for pending in mine {
                let _ = pending.done.send(result.clone());
            }
        }
    }
}

/// Writes events as AuditEvent resources and extends the tenant's hash chain over them, in one
/// transaction.
async fn append(
    store: &DynStore,
    registry: &'static Registry,
    tenant: &TenantId,
    events: &[&Value],
) -> Result<(), String> {
    let mut bodies = Vec::with_capacity(events.len());
    for event in events {
        let bytes = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        let (body, value) = crate::fhir::json::parse_resource(&bytes).map_err(|e| format!("{e:?}"))?;
        let index = crate::search::index_resource(registry, "AuditEvent", &value);
        bodies.push((crate::rest::new_id(), body, index));
    }
    let requests: Vec<WriteRequest<'_>> = bodies
        .iter()
        .map(|(id, body, index)| {
            let mut request = WriteRequest::new("AuditEvent", id, Change::Create(body));
            // No links: an audit record must never keep a patient from being deleted, nor need
            // what it names to exist.
            request.index = index.clone();
            request
        })
        .collect();
    let mut transaction = store.begin(tenant).await.map_err(|e| e.to_string())?;
    transaction.lock("audit-chain").await.map_err(|e| e.to_string())?;
    let head = transaction.audit_chain_head().await.map_err(|e| e.to_string())?;
    let outcomes = transaction.write_batch(&requests).await.map_err(|e| format!("{e:?}"))?;
    let (mut seq, mut prev_hash) = match head {
        Some(link) => (link.seq, link.hash),
        None => (0, chain::GENESIS.to_string()),
    };
    let mut links = Vec::with_capacity(outcomes.len());
    for outcome in &outcomes {
        let stored = outcome.record.json.as_deref().ok_or("a written AuditEvent has no body")?;
        let content_hash = chain::content_hash(stored)?;
        let hash = chain::link_hash(&prev_hash, &content_hash);
        seq += 1;
        links.push(AuditLink { seq, id: outcome.record.id.clone(), content_hash, prev_hash, hash: hash.clone() });
        prev_hash = hash;
    }
    transaction.append_audit_links(&links).await.map_err(|e| e.to_string())?;
    transaction.commit().await.map_err(|e| e.to_string())
}
