//! Closed-loop load engine: N workers each send their next request when the previous one completes.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::{Client, Method};

use crate::fhir::{Rng, truncate};

/// One request of a workload, relative to the FHIR base.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    /// `Type/id…?query`, relative to the base (no leading slash).
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// Resources this request carries (1, or a transaction Bundle's entry count); counted on success.
    pub resources: u64,
    /// The kind of request within a mixed workload ("read", "update", …), reported separately; "" if none.
    pub tag: &'static str,
}

impl Req {
    pub fn get(path: String) -> Self {
        Req { method: Method::GET, path, body: None, resources: 1, tag: "" }
    }

    pub fn with_body(method: Method, path: String, body: &serde_json::Value, resources: u64) -> Self {
        Req { method, path, body: Some(serde_json::to_vec(body).expect("json")), resources, tag: "" }
    }

    pub fn tagged(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }
}

/// A worker's own state, handed to the workload for every request it makes.
pub struct WorkerCtx {
    pub worker: usize,
    pub workers: usize,
    pub rng: Rng,
    /// Requests the workload queued for this worker (e.g. the rest of a patient's record).
    pub pending: VecDeque<Req>,
}

/// Makes a worker's next request.
pub type Workload = Arc<dyn Fn(&mut WorkerCtx) -> Req + Send + Sync>;

#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub rng_seed: u64,
    /// Error bodies to keep (and print) per scenario.
    pub show_errors: usize,
    pub kiln_pid: Option<u32>,
}

/// What one load run measured (only requests both sent and completed inside the measured window).
pub struct LoadResult {
    /// Completed requests, successful or not.
    pub requests: u64,
    pub errors: u64,
    /// Resources carried by the successful requests.
    pub resources: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Latency of the successful requests, in microseconds.
    pub hist: Histogram<u64>,
    /// Non-2xx answers by status (and transport errors as "io").
    pub statuses: BTreeMap<String, u64>,
    pub first_errors: Vec<String>,
    pub max_rss_kb: Option<u64>,
    /// CPU time (user and system) the Kiln process used in the measured window, in µs.
    pub kiln_cpu_micros: Option<u64>,
    /// Per-tag (successful requests, errors, latency) of tagged requests.
    pub by_tag: BTreeMap<&'static str, TagStats>,
}

pub struct TagStats {
    pub requests: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
}

impl TagStats {
    fn new() -> Self {
        TagStats { requests: 0, errors: 0, hist: new_histogram() }
    }
}

impl LoadResult {
    pub fn ok(&self) -> u64 {
        self.requests - self.errors
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

struct WorkerStats {
    requests: u64,
    errors: u64,
    resources: u64,
    bytes: u64,
    hist: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    by_tag: BTreeMap<&'static str, TagStats>,
}

impl WorkerStats {
    fn new() -> Self {
        WorkerStats {
            requests: 0,
            errors: 0,
            resources: 0,
            bytes: 0,
            hist: new_histogram(),
            statuses: BTreeMap::new(),
            by_tag: BTreeMap::new(),
        }
    }
}

struct ErrorLog {
    seen: AtomicUsize,
    keep: usize,
    bodies: Mutex<Vec<String>>,
}

impl ErrorLog {
    fn add(&self, what: impl FnOnce() -> String) {
        if self.seen.fetch_add(1, Ordering::Relaxed) < self.keep {
            self.bodies.lock().unwrap().push(what());
        }
    }
}

/// Runs `workload` against `base` with `cfg.concurrency` closed-loop workers for warmup + duration.
pub async fn run(client: &Client, base: &str, workload: Workload, cfg: &LoadConfig, salt: u64) -> LoadResult {
    let start = Instant::now();
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.duration;
    let errors =
        Arc::new(ErrorLog { seen: AtomicUsize::new(0), keep: cfg.show_errors, bodies: Mutex::new(Vec::new()) });
    let rss = cfg.kiln_pid.map(RssSampler::start);
    let cpu = cfg.kiln_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let from = cpu_micros(pid)?;
            tokio::time::sleep_until(end.into()).await;
            Some(cpu_micros(pid)?.saturating_sub(from))
        })
    });
    let mut tasks = Vec::with_capacity(cfg.concurrency);
    for worker in 0..cfg.concurrency {
        let client = client.clone();
        let base = base.to_string();
        let workload = workload.clone();
        let errors = errors.clone();
        let mut ctx = WorkerCtx {
            worker,
            workers: cfg.concurrency,
            rng: Rng::derive(cfg.rng_seed ^ salt, worker as u64 + 1),
            pending: VecDeque::new(),
        };
        tasks.push(tokio::spawn(async move {
            let mut s = WorkerStats::new();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let req = match ctx.pending.pop_front() {
                    Some(r) => r,
                    None => workload(&mut ctx),
                };
                let outcome = send(&client, &base, &req).await;
                let done = Instant::now();
                if sent < measure_from || done > end {
                    if let Err((status, body)) = &outcome {
                        errors.add(|| format!("{} {} -> {status}: {}", req.method, req.path, truncate(body, 300)));
                    }
                    continue;
                }
                s.requests += 1;
                let micros = (done - sent).as_micros().max(1) as u64;
                if !req.tag.is_empty() {
                    let t = s.by_tag.entry(req.tag).or_insert_with(TagStats::new);
                    t.requests += 1;
                    match outcome {
                        Ok(_) => t.hist.saturating_record(micros),
                        Err(_) => t.errors += 1,
                    }
                }
                match outcome {
                    Ok(bytes) => {
                        s.resources += req.resources;
                        s.bytes += bytes;
                        s.hist.saturating_record(micros);
                    }
                    Err((status, body)) => {
                        s.errors += 1;
                        *s.statuses.entry(status.clone()).or_default() += 1;
                        errors.add(|| format!("{} {} -> {status}: {}", req.method, req.path, truncate(&body, 300)));
                    }
                }
            }
            s
        }));
    }
    let mut total = WorkerStats::new();
    for t in tasks {
        let s = t.await.expect("worker panicked");
        total.requests += s.requests;
        total.errors += s.errors;
        total.resources += s.resources;
        total.bytes += s.bytes;
        total.hist.add(&s.hist).expect("same histogram bounds");
        for (k, v) in s.statuses {
            *total.statuses.entry(k).or_default() += v;
        }
        for (k, v) in s.by_tag {
            let t = total.by_tag.entry(k).or_insert_with(TagStats::new);
            t.requests += v.requests;
            t.errors += v.errors;
            t.hist.add(&v.hist).expect("same histogram bounds");
        }
    }
    let max_rss_kb = match rss {
        Some(r) => r.stop().await,
        None => None,
    };
    let kiln_cpu_micros = match cpu {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    let first_errors = std::mem::take(&mut *errors.bodies.lock().unwrap());
    LoadResult {
        requests: total.requests,
        errors: total.errors,
        resources: total.resources,
        bytes: total.bytes,
        seconds: cfg.duration.as_secs_f64(),
        hist: total.hist,
        statuses: total.statuses,
        first_errors,
        max_rss_kb,
        kiln_cpu_micros,
        by_tag: total.by_tag,
    }
}

/// Sends one request and reads the whole answer: Ok(body bytes) on 2xx, else Err((status, body)).
pub async fn send(client: &Client, base: &str, req: &Req) -> Result<u64, (String, String)> {
    let mut builder = client.request(req.method.clone(), format!("{base}/{}", req.path));
    if let Some(body) = &req.body {
        builder = builder.header("content-type", "application/fhir+json").body(body.clone());
    }
    let resp = match builder.send().await {
        Ok(r) => r,
        Err(e) => return Err(("io".to_string(), e.to_string())),
    };
    let status = resp.status();
    match resp.bytes().await {
        Ok(b) if status.is_success() => Ok(b.len() as u64),
        Ok(b) => Err((status.as_u16().to_string(), String::from_utf8_lossy(&b).into_owned())),
        Err(e) => Err(("io".to_string(), e.to_string())),
    }
}

/// Samples VmRSS of a process every second; `stop` returns the largest sample in kB.
pub struct RssSampler {
    max_kb: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    pid: u32,
}

impl RssSampler {
    pub fn start(pid: u32) -> Self {
        let max_kb = Arc::new(AtomicU64::new(0));
        let max = max_kb.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if let Some(kb) = vm_rss_kb(pid) {
                    max.fetch_max(kb, Ordering::Relaxed);
                }
            }
        });
        RssSampler { max_kb, task, pid }
    }

    pub async fn stop(self) -> Option<u64> {
        self.task.abort();
        let _ = self.task.await;
        if let Some(kb) = vm_rss_kb(self.pid) {
            self.max_kb.fetch_max(kb, Ordering::Relaxed);
        }
        Some(self.max_kb.load(Ordering::Relaxed)).filter(|&kb| kb > 0)
    }
}

/// CPU time (user and system) a process has used so far, in µs, from /proc/PID/stat. Its
/// unit is USER_HZ, which Linux reports as 100 per second on every architecture.
pub fn cpu_micros(pid: u32) -> Option<u64> {
    cpu_micros_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn cpu_micros_of(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces: count the fields after its parenthesis, which
    // begin with field 3. utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000)
}

/// VmRSS of `pid` from /proc/PID/status, in kB.
pub fn vm_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_a_command_name_with_spaces() {
        // Fields 14 and 15 (utime 250, stime 50 ticks) of a process named "kiln (x) y".
        let stat = "4242 (kiln (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(cpu_micros_of(stat), Some(3_000_000));
        assert_eq!(cpu_micros_of("4242 (kiln) S 1"), None);
    }

    #[test]
    fn the_cpu_time_of_this_process_grows_as_it_works() {
        let pid = std::process::id();
        let before = cpu_micros(pid).expect("this process's /proc/PID/stat");
        let started = Instant::now();
        let mut work = 0u64;
        // Busy until a tick (10 ms of CPU) is counted, however shared the machine; a reading
        // that never grows fails after 10 s.
        while cpu_micros(pid).expect("read again") == before && started.elapsed() < Duration::from_secs(10) {
            for _ in 0..100_000 {
                work = std::hint::black_box(work.wrapping_add(1));
            }
        }
        assert!(cpu_micros(pid).expect("read again") > before);
    }
}
