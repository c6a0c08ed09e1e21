//! kiln-bench: the load driver, baseline server and bulk-insert baseline of Kiln's benchmarks.

mod baseline;
mod bulk;
mod fhir;
mod load;
mod queries;
mod report;
mod run;
mod scenarios;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kiln-bench", version, about = "Benchmark load driver for Kiln, a FHIR R4 server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios against a FHIR server (closed loop) and report throughput and latency.
    Run(run::RunArgs),
    /// PUT the standard seed (Patients bench-pat-NNNNNN, 5 Observations each) and write its targets file.
    Seed {
        /// Kiln's FHIR base URL
        #[arg(long)]
        base: String,
        #[arg(long, default_value_t = 1000)]
        patients: usize,
        /// Requests in flight while seeding.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Write the `Type/id` targets file here.
        #[arg(long)]
        targets_out: PathBuf,
    },
    /// Serve Kiln's answers for the read scenarios' paths from memory: the throughput limit.
    BaselineServer {
        /// Kiln's FHIR base URL to fetch from (the baseline serves the same paths).
        #[arg(long)]
        from: String,
        #[arg(long)]
        targets: PathBuf,
        /// Address to listen on (port 0: any free port; the chosen one is printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// The --rng-seed the runs will use (it picks the search and $everything samples).
        #[arg(long, default_value_t = 42)]
        rng_seed: u64,
    },
    /// The ingest baseline: insert raw NDJSON lines into a fresh table as fast as the database allows.
    BulkInsert {
        /// postgres://… or sqlite:…
        #[arg(long)]
        database_url: String,
        /// An NDJSON file, or a directory of *.ndjson files.
        #[arg(long)]
        ndjson: PathBuf,
        /// Write the result as JSON here (for `run --ingest-baseline`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write synthetic patient records (Patient + 5 Observations each) as NDJSON, for bulk-insert.
    Generate {
        #[arg(long, default_value_t = 1000)]
        patients: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Print one combined table of several `run --out` JSON files.
    Report { files: Vec<PathBuf> },
    /// Run named lists of GET requests (e.g. searches on a large data set), one name at a time.
    Queries(queries::QueriesArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    kiln::tls::install_crypto_provider();
    match dispatch(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> Result<(), String> {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Seed { base, patients, concurrency, targets_out } => {
            let base = run::trim_base(&base);
            let targets = fhir::seed(&run::client(concurrency), &base, patients, concurrency).await?;
            targets.save(&targets_out)?;
            eprintln!("seed: {} targets written to {}", targets.all.len(), targets_out.display());
            Ok(())
        }
        Command::BaselineServer { from, targets, listen, rng_seed } => {
            let targets = fhir::Targets::load(&targets)?;
            baseline::serve(&run::client(16), &run::trim_base(&from), &targets, &listen, rng_seed).await
        }
        Command::BulkInsert { database_url, ndjson, out } => {
            let lines = bulk::read_lines(&ndjson)?;
            let r = bulk::run(&database_url, &lines).await?;
            println!(
                "bulk-insert {}: {} rows ({:.1} MB) in {:.2} s = {:.0} rows/s, {:.1} MB/s ({})",
                r.backend,
                r.rows,
                r.bytes as f64 / 1e6,
                r.seconds,
                r.rows_per_s,
                r.mb_per_s,
                r.method
            );
            match out {
                Some(path) => report::write_json(&path, &r),
                None => Ok(()),
            }
        }
        Command::Generate { patients, out } => {
            let lines = fhir::write_ndjson(&out, patients)?;
            eprintln!("generate: {lines} resources written to {}", out.display());
            Ok(())
        }
        Command::Report { files } => {
            print!("{}", report::combined(&files)?);
            Ok(())
        }
        Command::Queries(args) => queries::run(args).await,
    }
}
