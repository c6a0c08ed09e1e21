//! `kiln import PATH…`: loads transaction and batch Bundles (`*.json`) and NDJSON files
//! (`*.ndjson`, one resource per line) from files or directories straight into the configured
//! database, through the same validation, rules, indexing and integrity checks as the API
//! (FHIR R4 http.html#transaction; NDJSON as in the Bulk Data format).
//!
//! NDJSON lines are written in chunks, each chunk one transaction (a line with an `id` is an
//! update-as-create, one without a create); a failing chunk is retried line by line so one bad
//! line never holds back the good ones. Whatever fails only because it refers to something not
//! loaded yet is retried after everything else, so files may come in any order. A journal
//! (`--journal`) records how far each file got, so an interrupted import resumes where it
//! stopped.

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::Mutex;

use crate::access::Principal;
use crate::app::AppState;
use crate::error::FhirError;
use crate::rest::ReturnPreference;
use crate::rest::transaction;

pub struct ImportOptions {
    pub paths: Vec<PathBuf>,
    pub journal: PathBuf,
    /// NDJSON lines per transaction.
    pub chunk: usize,
    /// Files loaded at once.
    pub concurrency: usize,
    pub progress: bool,
}

/// One item that could not be loaded: where it is and why.
#[derive(Debug, Clone)]
pub struct BadItem {
    pub file: PathBuf,
    /// 1-based line of an NDJSON file; `None` for a whole Bundle file.
    pub line: Option<u64>,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct ImportSummary {
    pub files: usize,
    pub resources: u64,
    /// Files the journal said were already loaded.
    pub skipped_files: usize,
    pub bad: Vec<BadItem>,
    pub seconds: f64,
}

/// How far each file got: the journal, rewritten after every committed unit.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Journal {
    files: BTreeMap<String, FileProgress>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct FileProgress {
    /// Size and modification time when the import started: a changed file starts over.
    size: u64,
    modified: u64,
    /// Lines (NDJSON) or 1 (a Bundle) handled: loaded, or reported bad.
    done: u64,
    finished: bool,
}

struct Shared {
    state: AppState,
    reads: axum::Router,
    principal: Principal,
    journal_path: PathBuf,
    journal: Mutex<Journal>,
    resources: AtomicU64,
    bar: ProgressBar,
}

/// One unit that waits for the others: it referred to something not loaded yet.
#[derive(Clone)]
struct Deferred {
    file: PathBuf,
    /// The NDJSON line number, with `resource` that line; `None` with `resource` a whole Bundle.
    line: Option<u64>,
    resource: Vec<u8>,
}

impl Deferred {
    /// The Bundle that loads it.
    fn unit(&self) -> Vec<u8> {
        match self.line {
            Some(line) => ndjson_bundle(&[(line, &self.resource)]).unwrap_or_default(),
            None => self.resource.clone(),
        }
    }
}

pub async fn run(state: AppState, options: ImportOptions) -> Result<ImportSummary, String> {
    let start = Instant::now();
    let files = collect_files(&options.paths)?;
    let journal: Journal = match std::fs::read(&options.journal) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("the journal {} is unreadable: {e}", options.journal.display()))?,
        Err(_) => Journal::default(),
    };
    let total_bytes: u64 = files.iter().map(|(_, meta)| meta.size).sum();
    let bar = if options.progress { ProgressBar::new(total_bytes) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    let shared = Arc::new(Shared {
        reads: crate::app::router(state.clone()),
        principal: Principal::system(state.default_tenant.clone()),
        state,
        journal_path: options.journal.clone(),
        journal: Mutex::new(journal),
        resources: AtomicU64::new(0),
        bar,
    });
    // A bulk load needs fresh planner statistics as much as a server does.
    let statistics = crate::app::spawn_statistics_refresher(shared.state.store.clone());
    let queue = Arc::new(Mutex::new(files.clone()));
    let bad = Arc::new(Mutex::new(Vec::new()));
    let deferred = Arc::new(Mutex::new(Vec::new()));
    let skipped = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..options.concurrency.max(1) {
        let (shared, queue, bad, deferred, skipped) =
            (shared.clone(), queue.clone(), bad.clone(), deferred.clone(), skipped.clone());
        let chunk = options.chunk.max(1);
        workers.push(tokio::spawn(async move {
            loop {
                let Some((file, meta)) = queue.lock().await.pop() else { return Ok::<(), String>(()) };
                let outcome = import_file(&shared, &file, &meta, chunk).await?;
                if outcome.skipped {
                    skipped.fetch_add(1, Ordering::Relaxed);
                }
                bad.lock().await.extend(outcome.bad);
                deferred.lock().await.extend(outcome.deferred);
            }
        }));
    }
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    // Units that referred to what was not there yet: retry while that makes progress, first
    // NDJSON lines together in chunks, then each one.
    let mut waiting = std::mem::take(&mut *deferred.lock().await);
    loop {
        let before = waiting.len();
        let (lines, mut others): (Vec<Deferred>, Vec<Deferred>) = waiting.into_iter().partition(|d| d.line.is_some());
        for group in lines.chunks(options.chunk.max(1)) {
            let merged: Vec<(u64, &[u8])> =
                group.iter().map(|d| (d.line.unwrap_or(0), d.resource.as_slice())).collect();
            match ndjson_bundle(&merged) {
                Ok(bundle) if group.len() > 1 && load_unit(&shared, &bundle).await.is_ok() => {
                    shared.resources.fetch_add(group.len() as u64, Ordering::Relaxed);
                }
                _ => others.extend(group.iter().cloned()),
            }
        }
        let mut still = Vec::new();
        for item in others {
            match load_unit(&shared, &item.unit()).await {
                Ok(loaded) => {
                    shared.resources.fetch_add(loaded, Ordering::Relaxed);
                }
                Err(error) if is_dangling(&error) => still.push(item),
                Err(error) => {
                    bad.lock().await.push(BadItem { file: item.file, line: item.line, reason: reason(&error) })
                }
            }
        }
        waiting = still;
        if waiting.is_empty() || waiting.len() == before {
            break;
        }
    }
    for item in waiting {
        let reason = match load_unit(&shared, &item.unit()).await {
            Ok(_) => continue,
            Err(error) => reason(&error),
        };
        bad.lock().await.push(BadItem { file: item.file, line: item.line, reason });
    }
    statistics.abort();
    // The import's audit records were logged; copy them into AuditEvents before the command ends.
    shared.state.audit.finish().await;
    crate::audit::index_pending(&shared.state.store, shared.state.registry, &shared.principal.tenant).await?;
    shared.bar.finish_and_clear();
    let bad = std::mem::take(&mut *bad.lock().await);
    Ok(ImportSummary {
        files: files.len(),
        resources: shared.resources.load(Ordering::Relaxed),
        skipped_files: skipped.load(Ordering::Relaxed) as usize,
        bad,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[derive(Debug, Clone)]
struct FileMeta {
    size: u64,
    modified: u64,
    ndjson: bool,
}

/// The files to load, from files and directories (recursively): `*.ndjson` and `*.json`, in
/// reverse load order (workers pop from the end).
fn collect_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, FileMeta)>, String> {
    fn walk(path: &Path, found: &mut Vec<PathBuf>) -> Result<(), String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            children.sort();
            for child in children {
                walk(&child, found)?;
            }
        } else if path.extension().is_some_and(|e| e == "ndjson" || e == "json") {
            found.push(path.to_path_buf());
        }
        Ok(())
    }
    let mut found = Vec::new();
    for path in paths {
        walk(path, &mut found)?;
    }
    if found.is_empty() {
        return Err("no .json or .ndjson files found in the given paths".into());
    }
    let mut files = Vec::new();
    for path in found {
        let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let modified =
            meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        let ndjson = path.extension().is_some_and(|e| e == "ndjson");
        files.push((path, FileMeta { size: meta.len(), modified, ndjson }));
    }
    // Resources others refer to first (an NDJSON file is named after its type), so that few
    // lines wait for a second try; Bundles after the NDJSON files, in name order.
    files.sort_by_key(|(path, meta)| {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let rank = if meta.ndjson { type_rank(stem) } else { LOAD_ORDER.len() + 1 };
        (rank, path.clone())
    });
    files.reverse();
    Ok(files)
}

/// Types in the order their resources are usually referred to: each refers mostly to those
/// before it.
const LOAD_ORDER: &[&str] = &[
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "HealthcareService",
    "Endpoint",
    "Medication",
    "Substance",
    "Device",
    "Patient",
    "RelatedPerson",
    "Group",
    "Schedule",
    "Slot",
    "Appointment",
    "Coverage",
    "Account",
    "Consent",
    "Encounter",
    "EpisodeOfCare",
    "ServiceRequest",
    "Specimen",
    "Condition",
    "AllergyIntolerance",
    "Procedure",
    "MedicationRequest",
    "Immunization",
    "Observation",
    "DiagnosticReport",
];

fn type_rank(type_name: &str) -> usize {
    LOAD_ORDER.iter().position(|t| *t == type_name).unwrap_or(LOAD_ORDER.len())
}

struct FileOutcome {
    skipped: bool,
    bad: Vec<BadItem>,
    deferred: Vec<Deferred>,
}

async fn import_file(shared: &Shared, file: &Path, meta: &FileMeta, chunk: usize) -> Result<FileOutcome, String> {
    let key = file.display().to_string();
    let resume = {
        let journal = shared.journal.lock().await;
        journal.files.get(&key).filter(|p| p.size == meta.size && p.modified == meta.modified).cloned()
    };
    let mut outcome = FileOutcome { skipped: false, bad: Vec::new(), deferred: Vec::new() };
    if resume.as_ref().is_some_and(|p| p.finished) {
        shared.bar.inc(meta.size);
        outcome.skipped = true;
        return Ok(outcome);
    }
    let done = resume.map_or(0, |p| p.done);
    let bytes = tokio::fs::read(file).await.map_err(|e| format!("{}: {e}", file.display()))?;
    if !meta.ndjson {
        if done == 0 {
            match load_unit(shared, &bytes).await {
                Ok(loaded) => {
                    shared.resources.fetch_add(loaded, Ordering::Relaxed);
                }
                Err(error) if is_dangling(&error) => {
                    outcome.deferred.push(Deferred { file: file.to_path_buf(), line: None, resource: bytes })
                }
                Err(error) => {
                    outcome.bad.push(BadItem { file: file.to_path_buf(), line: None, reason: reason(&error) })
                }
            }
        }
        shared.bar.inc(meta.size);
        record(shared, &key, meta, 1, true).await?;
        return Ok(outcome);
    }
    // NDJSON: numbered non-empty lines, in chunks.
    let lines: Vec<(u64, &[u8])> = bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .map(|(i, line)| (i as u64 + 1, line))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let mut position = 0u64;
    for group in lines.chunks(chunk) {
        let group_bytes: u64 = group.iter().map(|(_, l)| l.len() as u64 + 1).sum();
        let last_line = group.last().map_or(0, |(n, _)| *n);
        if last_line <= done {
            shared.bar.inc(group_bytes);
            position = last_line;
            continue;
        }
        let group: Vec<(u64, &[u8])> = group.iter().filter(|(n, _)| *n > done).copied().collect();
        match ndjson_bundle(&group) {
            Ok(bundle) if load_unit(shared, &bundle).await.is_ok() => {
                shared.resources.fetch_add(group.len() as u64, Ordering::Relaxed);
            }
            // Something in the chunk is wrong: find out what, line by line.
            _ => {
                for (number, line) in &group {
                    let single = match ndjson_bundle(&[(*number, line)]) {
                        Ok(single) => single,
                        Err(reason) => {
                            outcome.bad.push(BadItem { file: file.to_path_buf(), line: Some(*number), reason });
                            continue;
                        }
                    };
                    match load_unit(shared, &single).await {
                        Ok(loaded) => {
                            shared.resources.fetch_add(loaded, Ordering::Relaxed);
                        }
                        Err(error) if is_dangling(&error) => outcome.deferred.push(Deferred {
                            file: file.to_path_buf(),
                            line: Some(*number),
                            resource: line.to_vec(),
                        }),
                        Err(error) => outcome.bad.push(BadItem {
                            file: file.to_path_buf(),
                            line: Some(*number),
                            reason: reason(&error),
                        }),
                    }
                }
            }
        }
        shared.bar.inc(group_bytes);
        position = last_line;
        record(shared, &key, meta, position, false).await?;
        let loaded = shared.resources.load(Ordering::Relaxed);
        let elapsed = shared.bar.elapsed().as_secs_f64().max(1e-3);
        shared.bar.set_message(format!("{loaded} resources, {:.0}/s", loaded as f64 / elapsed));
    }
    record(shared, &key, meta, position, true).await?;
    Ok(outcome)
}

/// Why a unit was not (wholly) loaded.
enum UnitError {
    /// The transaction failed and wrote nothing.
    Transaction(FhirError),
    /// Some entries of a batch failed (the others were written): `entry[i]: reason` each.
    BatchEntries(Vec<String>),
}

/// Runs one Bundle (a file, or NDJSON lines made into a transaction) and answers how many
/// resources it wrote.
async fn load_unit(shared: &Shared, bundle: &[u8]) -> Result<u64, UnitError> {
    let result =
        transaction::execute(&shared.state, &shared.reads, &shared.principal, bundle, ReturnPreference::Minimal).await;
    audit_unit(shared, &result).await;
    let answer = result.map_err(UnitError::Transaction)?;
    let answer: Value = serde_json::from_slice(&answer).map_err(|e| UnitError::Transaction(FhirError::internal(e)))?;
    let entries = answer["entry"].as_array().cloned().unwrap_or_default();
    let failures: Vec<String> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e["response"]["status"].as_str().is_some_and(|s| !s.starts_with('2')))
        .map(|(i, e)| {
            format!(
                "entry[{i}]: {} {}",
                e["response"]["status"].as_str().unwrap_or(""),
                e["response"]["outcome"]["issue"][0]["diagnostics"].as_str().unwrap_or("")
            )
        })
        .collect();
    if failures.is_empty() {
        Ok(entries.len() as u64)
    } else {
        shared.resources.fetch_add((entries.len() - failures.len()) as u64, Ordering::Relaxed);
        Err(UnitError::BatchEntries(failures))
    }
}

/// Records one imported unit in the audit trail: the command as the actor, and what it wrote.
/// The data is committed by then, so a failure to record is logged, not undone.
async fn audit_unit(shared: &Shared, result: &Result<Vec<u8>, FhirError>) {
    use crate::audit::event::{Actor, Kind, Origin, Outcome, audit_event};
    let who = std::env::var("USER").map(|user| format!(" by {user}")).unwrap_or_default();
    let actor = Actor { claimed_name: Some(format!("kiln import (command line{who})")), ..Actor::default() };
    let mut written = crate::audit::middleware::Disclosure::default();
    let (outcome, description) = match result {
        Ok(answer) => {
            written.add_body(answer, &shared.state.base_url);
            (Outcome::Success, None)
        }
        Err(error) => (Outcome::MinorFailure, Some(error.to_string())),
    };
    let event = audit_event(
        &Kind::rest("transaction", "C"),
        &actor,
        &Origin::default(),
        outcome,
        description.as_deref(),
        written.entities(None),
        None,
    );
    if let Err(e) = shared.state.audit.record(&shared.principal.tenant, event).await {
        tracing::error!(error = %e, "an imported unit could not be audited");
    }
}

/// A transaction Bundle of NDJSON lines: each line is a resource, updated as created when it
/// has an id, created otherwise.
fn ndjson_bundle(lines: &[(u64, &[u8])]) -> Result<Vec<u8>, String> {
    #[derive(Deserialize)]
    struct Identity {
        #[serde(rename = "resourceType")]
        resource_type: Option<String>,
        id: Option<String>,
    }
    let mut out = Vec::with_capacity(lines.iter().map(|(_, l)| l.len() + 64).sum::<usize>() + 64);
    out.extend_from_slice(br#"{"resourceType":"Bundle","type":"transaction","entry":["#);
    for (i, (_, line)) in lines.iter().enumerate() {
        let identity: Identity = serde_json::from_slice(line).map_err(|e| format!("not a JSON resource: {e}"))?;
        let Some(resource_type) = identity.resource_type else {
            return Err("the line has no resourceType".into());
        };
        let request = match identity.id {
            Some(id) => serde_json::json!({"method": "PUT", "url": format!("{resource_type}/{id}")}),
            None => serde_json::json!({"method": "POST", "url": resource_type}),
        };
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"resource":"#);
        out.extend_from_slice(line);
        out.extend_from_slice(br#","request":"#);
        out.extend_from_slice(request.to_string().as_bytes());
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Whether a transaction failed only for referring to something not loaded (yet): worth
/// another try once the rest is in. (A partly written batch is never tried again.)
fn is_dangling(error: &UnitError) -> bool {
    matches!(error, UnitError::Transaction(FhirError::Unprocessable(issues))
        if !issues.is_empty() && issues.iter().all(|i| i.diagnostics.contains("which does not exist here")))
}

fn reason(error: &UnitError) -> String {
    let error = match error {
        UnitError::Transaction(error) => error,
        UnitError::BatchEntries(failures) => return format!("batch entries failed: {}", failures.join("; ")),
    };
    let (status, _) = error.status_and_code();
    let issues: Vec<String> = error
        .issues()
        .iter()
        .map(|i| match i.expression.first() {
            Some(at) => format!("{} (at {at})", i.diagnostics),
            None => i.diagnostics.clone(),
        })
        .collect();
    format!("{}: {}", status.as_u16(), issues.join("; "))
}

async fn record(shared: &Shared, key: &str, meta: &FileMeta, done: u64, finished: bool) -> Result<(), String> {
    let mut journal = shared.journal.lock().await;
    journal.files.insert(key.to_string(), FileProgress { size: meta.size, modified: meta.modified, done, finished });
    let bytes = serde_json::to_vec_pretty(&*journal).map_err(|e| e.to_string())?;
    let temporary = shared.journal_path.with_extension("tmp");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, &shared.journal_path))
        .map_err(|e| format!("cannot write the journal {}: {e}", shared.journal_path.display()))
}
