//! The `kiln` command line: `serve` runs the FHIR server, `migrate` applies database migrations,
//! `demo-data` generates synthetic records, `import` loads Bundles and NDJSON files.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use kiln::app::{Application, shutdown_signal};
use kiln::config::Settings;

#[derive(Parser)]
#[command(name = "kiln", version, about = "Kiln: a FHIR R4 interoperability server")]
struct Cli {
    /// TOML configuration file (keys as in docs/configuration.md); KILN_* variables override it.
    #[arg(long, global = true, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the FHIR server (default: 127.0.0.1:8080, SQLite at ./data/kiln.db).
    #[command(after_help = SETTINGS_HELP)]
    Serve,
    /// Create or upgrade the database schema, then exit.
    #[command(after_help = SETTINGS_HELP)]
    Migrate,
    /// Generate a clinic's worth of coherent, synthetic records (deterministic for a seed):
    /// write them as files, or load them into a running Kiln.
    DemoData(DemoDataArgs),
    /// Load transaction/batch Bundles (*.json) and NDJSON files (*.ndjson) from files or
    /// directories into the configured database, with the API's validation, rules and indexing.
    /// Resumable: a journal records how far each file got.
    #[command(after_help = SETTINGS_HELP)]
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// Files or directories (searched recursively for *.json and *.ndjson).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Where progress is recorded; an interrupted import run again resumes from it.
    #[arg(long, default_value = "kiln-import.journal")]
    journal: PathBuf,
    /// NDJSON lines written per transaction.
    #[arg(long, default_value_t = 500)]
    chunk: usize,
    /// Files loaded at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// No progress bar (e.g. in scripts).
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct DemoDataArgs {
    /// Number of patients (about 108 resources each).
    #[arg(long, default_value_t = 100)]
    patients: u32,
    /// Seed of every random choice: the same seed gives the same records.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The reference date (YYYY-MM-DD): history ends before it, booked appointments start after.
    /// Default: today (UTC).
    #[arg(long)]
    today: Option<chrono::NaiveDate>,
    /// Write transaction Bundles (DIR/bundles/) and NDJSON per type (DIR/ndjson/).
    #[arg(long, conflicts_with = "into", required_unless_present = "into")]
    out: Option<PathBuf>,
    /// Load into the FHIR server at this base URL (e.g. http://127.0.0.1:8080/fhir).
    #[arg(long)]
    into: Option<String>,
    /// Concurrent requests when loading.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

const SETTINGS_HELP: &str = "Settings (TOML keys, or KILN_<KEY> environment variables; see docs/configuration.md):
  KILN_DATABASE_URL        sqlite://data/kiln.db (default) or postgres://user:pass@host/db
  KILN_LISTEN              host:port to listen on (default 127.0.0.1:8080; port 0 picks one)
  KILN_BASE_URL            public base URL of the FHIR API (default http://<listen>/fhir)
  KILN_MAX_BODY_BYTES      largest request body (default 16 MiB)
  KILN_DEFAULT_TENANT      the clinic requests act in (default 'default')
  KILN_DB_POOL_SIZE, KILN_MAX_PAGE_SIZE, KILN_DEFAULT_PAGE_SIZE, KILN_REQUEST_TIMEOUT_SECS, KILN_LOG";

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::DemoData(args) = &cli.command {
        return demo_data(args).await;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("kiln: invalid configuration: {err}");
            return ExitCode::from(2);
        }
    };
    kiln::telemetry::init(&settings.log);
    let result = match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::DemoData(_) => unreachable!("handled before the settings are loaded"),
        Command::Import(args) => return import(settings, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("kiln: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::build(settings).await?;
    app.run_until(shutdown_signal()).await?;
    Ok(())
}

/// Runs without server settings: it writes files or talks to a server over HTTP.
async fn demo_data(args: &DemoDataArgs) -> ExitCode {
    let config = kiln::demo::DemoConfig {
        patients: args.patients,
        seed: args.seed,
        today: args.today.unwrap_or_else(|| chrono::Utc::now().date_naive()),
    };
    let result = match (&args.out, &args.into) {
        (Some(dir), _) => kiln::demo::load::write_files(&config, dir).map_err(|e| e.to_string()),
        (None, Some(base)) => kiln::demo::load::load_into(&config, base, args.concurrency).await,
        (None, None) => Err("give --out DIR or --into URL".to_string()),
    };
    match result {
        Ok(summary) => {
            println!(
                "kiln demo-data: {} patients, {} resources in {:.1} s ({:.0} resources/s)",
                summary.patients,
                summary.resources,
                summary.seconds,
                summary.resources as f64 / summary.seconds.max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("kiln demo-data: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn import(settings: Settings, args: ImportArgs) -> ExitCode {
    let base_url: std::sync::Arc<str> = settings
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/fhir", settings.listen))
        .trim_end_matches('/')
        .into();
    let state = match kiln::app::AppState::open(settings, base_url).await {
        Ok(state) => state,
        Err(err) => {
            eprintln!("kiln import: {err}");
            return ExitCode::FAILURE;
        }
    };
    let store = state.store.clone();
    let options = kiln::import::ImportOptions {
        paths: args.paths,
        journal: args.journal,
        chunk: args.chunk,
        concurrency: args.concurrency,
        progress: !args.quiet,
    };
    let result = kiln::import::run(state, options).await;
    store.close().await;
    match result {
        Ok(summary) => {
            for item in summary.bad.iter().take(100) {
                match item.line {
                    Some(line) => eprintln!("{}:{line}: {}", item.file.display(), item.reason),
                    None => eprintln!("{}: {}", item.file.display(), item.reason),
                }
            }
            if summary.bad.len() > 100 {
                eprintln!("… and {} more", summary.bad.len() - 100);
            }
            println!(
                "kiln import: {} files ({} already done), {} resources in {:.1} s ({:.0} resources/s), {} not loaded",
                summary.files,
                summary.skipped_files,
                summary.resources,
                summary.seconds,
                summary.resources as f64 / summary.seconds.max(1e-9),
                summary.bad.len()
            );
            if summary.bad.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(err) => {
            eprintln!("kiln import: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let store = kiln::store::connect(&settings.database_url, 1).await?;
    store.close().await;
    println!("kiln: migrations applied to the {} database", store.backend_name());
    Ok(())
}
