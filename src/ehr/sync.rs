//! Background sync (issue: EHR linking, "Background sync", docs/ehr.md): the re-pull of every
//! patient linked to a remote, queued as one job per patient in `ehr_sync_jobs` and claimed by
//! whichever node (or `kiln ehr sync` run) asks next, so work is shared and never done twice at
//! once. A remote registered with `--sync-every` is queued by `kiln serve` when its time comes.

use std::time::Duration;

use crate::access::{Principal, TenantId};
use crate::app::AppState;
use crate::rest::QueryParams;
use crate::search::query::compile;

/// How often a serving node looks for remotes whose sync is due.
const SCHEDULE_CHECK: Duration = Duration::from_secs(30);

/// What a sync run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub queued: u64,
    pub pulled: u64,
    pub failed: Vec<String>,
}

/// The local patients linked to the remote at `address` (the identifier `$ehr-link` adds).
async fn linked_patients(state: &AppState, tenant: &TenantId, address: &str) -> Result<Vec<String>, String> {
    let definition = state.registry.resource("Patient").ok_or("Patient is not served")?;
    let system = format!("{}/Patient", address.trim_end_matches('/'));
    let params = QueryParams(vec![("identifier".into(), format!("{system}|")), ("_count".into(), "10000".into())]);
    let query = compile(definition, &params, "", false, 10_000, 10_000).map_err(|e| e.to_string())?;
    let found = state.store.search(tenant, "Patient", &query).await.map_err(|e| e.to_string())?;
    Ok(found.into_iter().map(|record| record.id).collect())
}

/// Queues a re-pull of every patient linked to `endpoint_id`.
pub async fn enqueue(state: &AppState, tenant: &TenantId, endpoint_id: &str) -> Result<u64, String> {
    let registered = super::list(state, tenant).await?;
    let remote = registered
        .iter()
        .find(|r| r.connection.endpoint_id == endpoint_id)
        .ok_or_else(|| format!("no remote EHR is registered as Endpoint/{endpoint_id}"))?;
    let patients = linked_patients(state, tenant, remote.address()).await?;
    state.store.enqueue_ehr_sync(tenant, endpoint_id, &patients).await.map_err(|e| e.to_string())
}

/// Claims and runs queued re-pulls until none is left; `node` names the claimer.
pub async fn drain(state: &AppState, node: &str) -> Result<SyncRun, String> {
    let mut run = SyncRun::default();
    while let Some(job) = state.store.claim_ehr_sync(node).await.map_err(|e| e.to_string())? {
        let tenant = TenantId::parse(&job.tenant)?;
        let principal = Principal::system(tenant.clone());
        let caller = super::Caller::named(tenant, format!("EHR sync ({node})"));
        let result =
            super::pull::pull_patient(state, &principal, &caller, &job.patient_id, Some(&job.endpoint_id)).await;
        let (succeeded, outcome) = match result {
            Ok(issues) => (true, issues.first().map(|i| i.diagnostics.clone()).unwrap_or_default()),
            Err(error) => (false, error.to_string()),
        };
        if succeeded {
            run.pulled += 1;
        } else {
            run.failed.push(format!("Patient/{}: {outcome}", job.patient_id));
        }
        audit_job(state, &principal, node, &job, succeeded, &outcome).await;
        state.store.finish_ehr_sync(job.id, succeeded, &outcome).await.map_err(|e| e.to_string())?;
    }
    Ok(run)
}

/// Records one sync job in the audit trail, as the `$ehr-pull` it ran: the runner as the actor,
/// the patient and the remote as entities, and the pull's summary or error.
async fn audit_job(
    state: &AppState,
    principal: &Principal,
    node: &str,
    job: &crate::store::EhrSyncJob,
    succeeded: bool,
    outcome: &str,
) {
    use crate::audit::event::{self, Actor, Kind, Origin, Outcome};
    let actor = Actor { claimed_name: Some(format!("EHR sync ({node})")), ..Actor::default() };
    let entities =
        vec![event::patient_entity(&job.patient_id), event::resource_entity(&format!("Endpoint/{}", job.endpoint_id))];
    let result = if succeeded { Outcome::Success } else { Outcome::SeriousFailure };
    let audit = event::audit_event(
        &Kind::operation("$ehr-pull", "E"),
        &actor,
        &Origin::default(),
        result,
        Some(outcome),
        entities,
        None,
    );
    if let Err(e) = state.audit.record(&principal.tenant, audit).await {
        tracing::error!(error = %e, "an EHR sync job could not be audited");
    }
}

/// `kiln ehr sync`: queues every linked patient of one remote (or of every remote of the
/// clinic) and runs the queue.
pub async fn run_once(state: &AppState, tenant: &TenantId, endpoint_id: Option<&str>) -> Result<SyncRun, String> {
    let mut queued = 0;
    for registered in super::list(state, tenant).await? {
        let id = &registered.connection.endpoint_id;
        if endpoint_id.is_none_or(|wanted| wanted == id) {
            queued += enqueue(state, tenant, id).await?;
        }
    }
    let mut run = drain(state, &format!("kiln ehr sync ({})", std::process::id())).await?;
    run.queued = queued;
    Ok(run)
}

/// The scheduler of a serving node: queues each remote whose `--sync-every` has come round
/// (one node takes each turn) and helps run the queue. It looks at once on start, so a node
/// that was down when a sync fell due catches up without waiting a turn.
pub fn spawn_scheduler(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let node = format!("kiln serve ({})", std::process::id());
        let mut checks = tokio::time::interval(SCHEDULE_CHECK);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            checks.tick().await;
            let due = match state.store.due_ehr_syncs(chrono::Utc::now().timestamp()).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "EHR sync schedule could not be read");
                    continue;
                }
            };
            for (tenant, endpoint_id) in due {
                let Ok(tenant) = TenantId::parse(&tenant) else { continue };
                if let Err(e) = enqueue(&state, &tenant, &endpoint_id).await {
                    tracing::warn!(%endpoint_id, error = %e, "EHR sync could not be queued");
                }
            }
            match drain(&state, &node).await {
                Ok(run) if run.pulled > 0 || !run.failed.is_empty() => {
                    tracing::info!(pulled = run.pulled, failed = run.failed.len(), "EHR sync ran");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "EHR sync failed"),
            }
        }
    })
}
