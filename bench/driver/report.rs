//! Results: the JSON written by `run` and `bulk-insert`, the machine description, and the tables.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::load::LoadResult;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// One measurement of one scenario against one server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Requests sent and completed inside the measured window, successful or not.
    pub requests: u64,
    /// Non-2xx answers and transport errors among them.
    pub errors: u64,
    /// Successful requests (resources for ingest) per measured second.
    pub throughput: f64,
    /// Resources carried by the successful requests.
    pub resources: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    /// Latency of the successful requests.
    pub latency: Latency,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub error_statuses: std::collections::BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_errors: Vec<String>,
    /// Largest VmRSS of the Kiln process seen while this ran (`--kiln-pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_mb: Option<f64>,
    /// CPU time of the Kiln process per successful request (per resource for ingest), in µs:
    /// steadier than the rate on a machine shared with the load generator (`--kiln-pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kiln_cpu_us: Option<f64>,
    /// Per kind of request, for the mixed workload.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub breakdown: std::collections::BTreeMap<String, Part>,
}

/// One kind of request within a mixed workload.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Part {
    pub requests: u64,
    pub errors: u64,
    pub throughput: f64,
    pub latency: Latency,
}

fn latency(h: &hdrhistogram::Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Latency {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p95_ms: ms(h.value_at_quantile(0.95)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    }
}

impl Measured {
    pub fn from_load(r: &LoadResult, per_resource: bool) -> Self {
        let ok = if per_resource { r.resources } else { r.ok() };
        let breakdown = r
            .by_tag
            .iter()
            .map(|(tag, t)| {
                let part = Part {
                    requests: t.requests,
                    errors: t.errors,
                    throughput: (t.requests - t.errors) as f64 / r.seconds,
                    latency: latency(&t.hist),
                };
                (tag.to_string(), part)
            })
            .collect();
        Measured {
            requests: r.requests,
            errors: r.errors,
            throughput: ok as f64 / r.seconds,
            resources: r.resources,
            seconds: r.seconds,
            mb_per_s: r.bytes as f64 / 1e6 / r.seconds,
            latency: latency(&r.hist),
            error_statuses: r.statuses.clone(),
            first_errors: r.first_errors.clone(),
            max_rss_mb: r.max_rss_kb.map(|kb| kb as f64 / 1024.0),
            kiln_cpu_us: r.kiln_cpu_micros.filter(|_| ok > 0).map(|micros| micros as f64 / ok as f64),
            breakdown,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub scenario: String,
    /// "ok", "skipped" or "failed".
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// "req/s", or "resources/s" for ingest.
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kiln: Option<Measured>,
    /// The same scenario against the baseline (`--baseline`, or the bulk-insert for ingest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Measured>,
    /// Kiln's throughput / the baseline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub memory_total_mb: u64,
    pub load_average: String,
    pub hostname: String,
}

impl Machine {
    pub fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_total_mb = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024);
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_total_mb,
            load_average: load_average(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string(),
        }
    }
}

/// The first three fields of /proc/loadavg (1, 5, 15 minutes).
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// What `kiln-bench bulk-insert` measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BulkResult {
    pub backend: String,
    pub method: String,
    pub rows: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    pub mb_per_s: f64,
    pub timestamp: String,
}

/// The JSON of one `kiln-bench run`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunReport {
    pub tool: String,
    pub timestamp: String,
    #[serde(default)]
    pub label: Option<String>,
    pub parameters: serde_json::Value,
    pub machine: Machine,
    /// `software.version` of Kiln's CapabilityStatement (`GET [base]/metadata`).
    pub kiln_version: Option<String>,
    pub capabilities: serde_json::Value,
    pub results: Vec<ScenarioResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rss_mb: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_baseline: Option<BulkResult>,
    /// Load average when the run ended.
    #[serde(default)]
    pub load_average_end: String,
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn unit_short(unit: &str) -> &str {
    match unit {
        "resources/s" => "res/s",
        other => other,
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.1}") }
}

fn ms(v: f64) -> String {
    if v == 0.0 {
        "-".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The results table; `labelled` rows carry a backend (or other) label in the first column.
pub fn table(rows: &[(String, ScenarioResult)], labelled: bool) -> String {
    let mut out = String::new();
    let lab = |l: &str| if labelled { format!("{l:<9}") } else { String::new() };
    let _ = writeln!(
        out,
        "{}{:<13}{:>9}{:>7}{:>10} {:<6}{:>8}{:>8}{:>8}{:>8}{:>11}{:>7}{:>8}{:>8}",
        lab("backend"),
        "scenario",
        "requests",
        "errors",
        "rate",
        "unit",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "limit/s",
        "ratio",
        "RSS MB",
        "CPU µs"
    );
    for (label, r) in rows {
        let Some(k) = &r.kiln else {
            let note = r.note.clone().unwrap_or_else(|| r.status.clone());
            let _ = writeln!(out, "{}{:<13}{note}", lab(label), r.scenario);
            continue;
        };
        let limit = r.baseline.as_ref().map_or("-".into(), |b| num(b.throughput));
        let ratio = r.ratio.map_or("-".into(), |x| if x >= 0.1 { format!("{x:.2}") } else { format!("{x:.3}") });
        let rss = k.max_rss_mb.map_or("-".into(), |m| format!("{m:.0}"));
        let cpu = k.kiln_cpu_us.map_or("-".into(), |us| format!("{us:.0}"));
        let _ = writeln!(
            out,
            "{}{:<13}{:>9}{:>7}{:>10} {:<6}{:>8}{:>8}{:>8}{:>8}{:>11}{:>7}{:>8}{:>8}",
            lab(label),
            r.scenario,
            k.requests,
            k.errors,
            num(k.throughput),
            unit_short(&r.unit),
            ms(k.latency.p50_ms),
            ms(k.latency.p95_ms),
            ms(k.latency.p99_ms),
            ms(k.latency.max_ms),
            limit,
            ratio,
            rss,
            cpu
        );
        for (tag, p) in &k.breakdown {
            let _ = writeln!(
                out,
                "{}{:<13}{:>9}{:>7}{:>10} {:<6}{:>8}{:>8}{:>8}{:>8}",
                lab(""),
                format!("  {tag}"),
                p.requests,
                p.errors,
                num(p.throughput),
                "req/s",
                ms(p.latency.p50_ms),
                ms(p.latency.p95_ms),
                ms(p.latency.p99_ms),
                ms(p.latency.max_ms)
            );
        }
    }
    out
}

/// The rows of a run report, plus the bulk-insert baseline as its own row.
pub fn report_rows(report: &RunReport, label: &str) -> Vec<(String, ScenarioResult)> {
    let mut rows: Vec<(String, ScenarioResult)> =
        report.results.iter().map(|r| (label.to_string(), r.clone())).collect();
    if let Some(b) = &report.ingest_baseline {
        rows.push((
            label.to_string(),
            ScenarioResult {
                scenario: "bulk-insert".into(),
                status: "ok".into(),
                note: None,
                unit: "rows/s".into(),
                kiln: Some(Measured {
                    requests: b.rows,
                    throughput: b.rows_per_s,
                    seconds: b.seconds,
                    ..Default::default()
                }),
                baseline: None,
                ratio: None,
            },
        ));
    }
    rows
}

/// `kiln-bench report`: one combined table of several run JSON files.
pub fn combined(files: &[std::path::PathBuf]) -> Result<String, String> {
    let mut rows = Vec::new();
    let mut header = String::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        let report: RunReport = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", f.display()))?;
        let label = report
            .label
            .clone()
            .unwrap_or_else(|| f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        let p = &report.parameters;
        let _ = writeln!(
            header,
            "{label}: Kiln {} at {}, {} targets, concurrency {}, {} s (+{} s warmup) each, load {} -> {}",
            report.kiln_version.as_deref().unwrap_or("?"),
            report.timestamp,
            p["targets_count"],
            p["concurrency"],
            p["duration_s"],
            p["warmup_s"],
            report.machine.load_average,
            report.load_average_end
        );
        if rows.is_empty() {
            let m = &report.machine;
            header.insert_str(0, &format!("machine: {} cores, {}, {} MB\n", m.nproc, m.cpu_model, m.memory_total_mb));
        }
        rows.extend(report_rows(&report, &label));
    }
    Ok(format!("{header}\n{}", table(&rows, true)))
}
