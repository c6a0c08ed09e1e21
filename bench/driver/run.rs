//! `kiln-bench run`: seed or load targets, probe the server, run each scenario (and its baseline), report.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::fhir::{self, Targets};
use crate::load::{self, LoadConfig, Workload};
use crate::report::{self, BulkResult, Machine, Measured, RunReport, ScenarioResult};
use crate::scenarios::{self, Scenario};

#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Kiln's FHIR base URL, e.g. http://127.0.0.1:8080/fhir
    #[arg(long)]
    pub base: String,
    /// Scenarios to run, in order (comma-separated); default: the standard suite.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Scenario::STANDARD.to_vec())]
    pub scenario: Vec<Scenario>,
    /// Closed-loop workers (requests in flight).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measured seconds per scenario.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// File of `Type/id` lines that exist on the server; without it the driver seeds its own.
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// Patients to seed (each with 5 Observations) when no --targets is given.
    #[arg(long, default_value_t = 1000)]
    pub seed_patients: usize,
    /// Also write the targets used to this file.
    #[arg(long)]
    pub write_targets: Option<PathBuf>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A baseline server (`kiln-bench baseline-server`) base URL, e.g. http://127.0.0.1:9000/fhir:
    /// the read scenarios run against it too, and Kiln is reported as a ratio of it.
    #[arg(long)]
    pub baseline: Option<String>,
    /// Measured seconds per scenario against the baseline (default: --duration).
    #[arg(long)]
    pub baseline_duration: Option<f64>,
    /// A `kiln-bench bulk-insert --out` JSON: the ingest scenario is reported as a ratio of its rows/s.
    #[arg(long)]
    pub ingest_baseline: Option<PathBuf>,
    /// This local Kiln process: report its largest VmRSS (sampled every second) and its CPU time
    /// per successful request over each measured window.
    #[arg(long)]
    pub kiln_pid: Option<u32>,
    /// A label for this run in the JSON and combined tables (e.g. the backend).
    #[arg(long)]
    pub label: Option<String>,
    /// Seed of the pseudo-random target picks.
    #[arg(long, default_value_t = 42)]
    pub rng_seed: u64,
    /// Error answers to print (and keep in the JSON) per scenario.
    #[arg(long, default_value_t = 3)]
    pub show_errors: usize,
}

/// The HTTP client of every subcommand: pooled keep-alive connections, no proxy, plain HTTP,
/// and the access token in `KILN_TOKEN` (if set) on every request.
pub fn client(concurrency: usize) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var("KILN_TOKEN")
        && !token.is_empty()
        && let Ok(value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
    {
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(concurrency.max(1) * 2)
        .pool_idle_timeout(Duration::from_secs(90))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

pub fn trim_base(base: &str) -> String {
    base.trim_end_matches('/').to_string()
}

/// `software.version` of the server's CapabilityStatement.
async fn kiln_version(client: &reqwest::Client, base: &str) -> Result<Option<String>, String> {
    let resp =
        client.get(format!("{base}/metadata")).send().await.map_err(|e| format!("{base} is not answering: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {base}/metadata answered {}", resp.status()));
    }
    let cs: serde_json::Value = resp.json().await.map_err(|e| format!("GET {base}/metadata: {e}"))?;
    Ok(cs.pointer("/software/version").and_then(|v| v.as_str()).map(str::to_string))
}

fn run_tag() -> String {
    let mut n = chrono::Utc::now().timestamp_millis() as u64;
    let mut s = Vec::new();
    while n > 0 {
        s.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    s.reverse();
    String::from_utf8(s).unwrap()
}

pub async fn run(args: RunArgs) -> Result<(), String> {
    let base = trim_base(&args.base);
    let client = client(args.concurrency);
    let machine = Machine::probe();
    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let kiln_version = kiln_version(&client, &base).await?;
    let targets = match &args.targets {
        Some(path) => Targets::load(path)?,
        None => fhir::seed(&client, &base, args.seed_patients, args.concurrency).await?,
    };
    if let Some(path) = &args.write_targets {
        targets.save(path)?;
    }
    let caps = scenarios::probe(&client, &base, &targets).await;
    let ingest_baseline: Option<BulkResult> = match &args.ingest_baseline {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            Some(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    eprintln!(
        "kiln-bench: {base} (Kiln {}), {} targets ({} Patients), search {}, $everything {}, transactions {}",
        kiln_version.as_deref().unwrap_or("?"),
        targets.all.len(),
        targets.patients.len(),
        yes(caps.search),
        yes(caps.everything),
        yes(caps.transaction)
    );
    let cfg = LoadConfig {
        concurrency: args.concurrency.max(1),
        warmup: Duration::from_secs_f64(args.warmup.max(0.0)),
        duration: Duration::from_secs_f64(args.duration.max(0.1)),
        rng_seed: args.rng_seed,
        show_errors: args.show_errors,
        kiln_pid: args.kiln_pid,
    };
    let baseline_cfg = LoadConfig {
        duration: Duration::from_secs_f64(args.baseline_duration.unwrap_or(args.duration).max(0.1)),
        kiln_pid: None,
        ..cfg.clone()
    };
    let baseline = args.baseline.as_deref().map(trim_base);
    if let Some(b) = &baseline {
        let first = targets.all[0].path();
        match client.get(format!("{b}/{first}")).send().await {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                return Err(format!(
                    "baseline {b} answered {} to GET {first}: is it serving these targets?",
                    r.status()
                ));
            }
            Err(e) => return Err(format!("baseline {b} is not answering: {e}")),
        }
    }
    let tag = run_tag();
    let mut search_urls: Option<Vec<String>> = None;
    let mut results = Vec::new();
    let mut done = Vec::new();
    for &sc in &args.scenario {
        if done.contains(&sc) {
            continue;
        }
        done.push(sc);
        let unit = if sc == Scenario::Ingest { "resources/s" } else { "req/s" };
        let mut result =
            ScenarioResult { scenario: sc.name().into(), status: "ok".into(), unit: unit.into(), ..Default::default() };
        let needs_search = sc == Scenario::Search || (sc == Scenario::Mixed && caps.search);
        if needs_search && search_urls.is_none() {
            search_urls = Some(scenarios::search_plan(&client, &base, &targets, args.rng_seed).await);
        }
        let workload: Result<Option<Workload>, String> = match sc {
            Scenario::Read => Ok(Some(scenarios::gets(scenarios::read_paths(&targets, "")))),
            Scenario::Vread => Ok(Some(scenarios::gets(scenarios::read_paths(&targets, "/_history/1")))),
            Scenario::History => Ok(Some(scenarios::gets(scenarios::read_paths(&targets, "/_history")))),
            Scenario::TypeHistory => Ok(Some(scenarios::gets(vec![scenarios::TYPE_HISTORY.to_string()]))),
            Scenario::Search if caps.search => scenarios::planned(search_urls.clone().unwrap_or_default()).map(Some),
            Scenario::Everything if caps.everything => {
                scenarios::planned(scenarios::everything_plan(&targets, args.rng_seed)).map(Some)
            }
            Scenario::Search | Scenario::Everything => Ok(None),
            Scenario::Create => scenarios::create(&targets).map(Some),
            Scenario::Ingest => Ok(Some(scenarios::ingest(caps.transaction, tag.clone()))),
            Scenario::Mixed => {
                let updatable = scenarios::fetch_updatable(
                    &client,
                    &base,
                    &targets,
                    scenarios::updatable_count(cfg.concurrency),
                    args.rng_seed,
                )
                .await;
                let search = if caps.search { search_urls.clone() } else { None };
                scenarios::mixed(&targets, search, updatable).map(Some)
            }
        };
        let workload = match workload {
            Ok(Some(w)) => w,
            Ok(None) => {
                eprintln!("{:<13} {}", sc.name(), scenarios::SKIPPED);
                result.status = "skipped".into();
                result.note = Some(scenarios::SKIPPED.into());
                results.push(result);
                continue;
            }
            Err(e) => {
                eprintln!("{:<13} failed: {e}", sc.name());
                result.status = "failed".into();
                result.note = Some(format!("failed: {e}"));
                results.push(result);
                continue;
            }
        };
        let salt = Scenario::STANDARD.iter().position(|&s| s == sc).unwrap_or(0) as u64 + 1;
        let per_resource = sc == Scenario::Ingest;
        let r = load::run(&client, &base, workload.clone(), &cfg, salt).await;
        let kiln = Measured::from_load(&r, per_resource);
        progress(sc.name(), "kiln", &kiln, unit);
        if let Some(b) = baseline.as_deref().filter(|_| sc.baselined()) {
            let rb = load::run(&client, b, workload, &baseline_cfg, salt).await;
            let m = Measured::from_load(&rb, per_resource);
            progress(sc.name(), "baseline", &m, unit);
            if m.throughput > 0.0 {
                result.ratio = Some(kiln.throughput / m.throughput);
            }
            result.baseline = Some(m);
        }
        if let (Scenario::Ingest, Some(b)) = (sc, &ingest_baseline) {
            result.baseline =
                Some(Measured { requests: b.rows, throughput: b.rows_per_s, seconds: b.seconds, ..Default::default() });
            if b.rows_per_s > 0.0 {
                result.ratio = Some(kiln.throughput / b.rows_per_s);
            }
        }
        result.kiln = Some(kiln);
        results.push(result);
    }
    let max_rss_mb = results.iter().filter_map(|r| r.kiln.as_ref()?.max_rss_mb).reduce(f64::max);
    let report = RunReport {
        tool: format!("kiln-bench {}", env!("CARGO_PKG_VERSION")),
        timestamp,
        label: args.label.clone(),
        parameters: json!({
            "base": base,
            "scenarios": args.scenario,
            "concurrency": cfg.concurrency,
            "duration_s": cfg.duration.as_secs_f64(),
            "warmup_s": cfg.warmup.as_secs_f64(),
            "baseline": baseline,
            "baseline_duration_s": baseline.as_ref().map(|_| baseline_cfg.duration.as_secs_f64()),
            "targets": args.targets.as_ref().map_or("seeded".to_string(), |p| p.display().to_string()),
            "targets_count": targets.all.len(),
            "patients": targets.patients.len(),
            "seed_patients": if args.targets.is_none() { Some(args.seed_patients) } else { None },
            "rng_seed": args.rng_seed,
            "kiln_pid": args.kiln_pid,
        }),
        machine,
        kiln_version,
        capabilities: serde_json::to_value(caps).unwrap_or_default(),
        results,
        max_rss_mb,
        ingest_baseline,
        load_average_end: report::load_average(),
    };
    let label = args.label.clone().unwrap_or_default();
    println!("{}", report::table(&report::report_rows(&report, &label), false));
    if let Some(rss) = max_rss_mb {
        println!("max RSS of Kiln (pid {}): {rss:.0} MB", args.kiln_pid.unwrap_or(0));
    }
    if let Some(out) = &args.out {
        report::write_json(out, &report)?;
        eprintln!("kiln-bench: results written to {}", out.display());
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn progress(name: &str, server: &str, m: &Measured, unit: &str) {
    eprintln!(
        "{name:<13} {server:<8} {:>9.0} {unit:<11} p50 {:>7.2} ms  p99 {:>7.2} ms  {} errors of {}",
        m.throughput, m.latency.p50_ms, m.latency.p99_ms, m.errors, m.requests
    );
    for e in &m.first_errors {
        eprintln!("    {e}");
    }
}
