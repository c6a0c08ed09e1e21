//! `kiln-bench queries`: named lists of GET requests (the searches of the search issue on a
//! large data set, say), each name run on its own, closed loop, at a given concurrency, and
//! reported as throughput and latency percentiles per name.

use std::path::PathBuf;
use std::time::Duration;

use crate::load::{self, LoadConfig};
use crate::report::{self, Measured};
use crate::{run, scenarios};

#[derive(clap::Args)]
pub struct QueriesArgs {
    /// The FHIR base URL (KILN_TOKEN, if set, is sent as the bearer token).
    #[arg(long)]
    pub base: String,
    /// Lines of `name<TAB>path` (path relative to the base, e.g. `Patient?family=Smith`); the
    /// paths of one name are picked from uniformly. `#` starts a comment line.
    #[arg(long)]
    pub queries: PathBuf,
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Measured seconds per name.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Unmeasured seconds before each name's measurement.
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    #[arg(long, default_value_t = 42)]
    pub rng_seed: u64,
    /// Write the results (name -> measurement) as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The names in first-seen order, each with its paths.
fn read_queries(path: &PathBuf) -> Result<Vec<(String, Vec<String>)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut named: Vec<(String, Vec<String>)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, query)) = line.split_once('\t') else {
            return Err(format!("{}:{}: expected name<TAB>path", path.display(), number + 1));
        };
        match named.iter_mut().find(|(n, _)| n == name) {
            Some((_, paths)) => paths.push(query.to_string()),
            None => named.push((name.to_string(), vec![query.to_string()])),
        }
    }
    if named.is_empty() {
        return Err(format!("{} holds no queries", path.display()));
    }
    Ok(named)
}

pub async fn run(args: QueriesArgs) -> Result<(), String> {
    let base = run::trim_base(&args.base);
    let client = run::client(args.concurrency);
    let cfg = LoadConfig {
        concurrency: args.concurrency,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        rng_seed: args.rng_seed,
        show_errors: 3,
        kiln_pid: None,
    };
    let mut results: Vec<(String, Measured)> = Vec::new();
    for (salt, (name, paths)) in read_queries(&args.queries)?.into_iter().enumerate() {
        // One request first: a query the server refuses is reported, not measured.
        if let Err((status, body)) = load::send(&client, &base, &load::Req::get(paths[0].clone())).await {
            return Err(format!("{name}: GET {} answered {status}: {body}", paths[0]));
        }
        let count = paths.len();
        let result = load::run(&client, &base, scenarios::gets(paths), &cfg, salt as u64).await;
        let measured = Measured::from_load(&result, false);
        eprintln!(
            "{name}: {:.0} req/s, p50 {:.2} ms, p95 {:.2} ms ({count} distinct queries, {} errors)",
            measured.throughput, measured.latency.p50_ms, measured.latency.p95_ms, measured.errors
        );
        for error in &measured.first_errors {
            eprintln!("  {error}");
        }
        results.push((name, measured));
    }
    println!("| search | req/s | p50 ms | p95 ms | p99 ms | errors |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, m) in &results {
        println!(
            "| `{name}` | {:.0} | {:.2} | {:.2} | {:.2} | {} |",
            m.throughput, m.latency.p50_ms, m.latency.p95_ms, m.latency.p99_ms, m.errors
        );
    }
    match &args.out {
        Some(path) => {
            let map: std::collections::BTreeMap<&str, &Measured> =
                results.iter().map(|(name, m)| (name.as_str(), m)).collect();
            report::write_json(path, &map)
        }
        None => Ok(()),
    }
}
