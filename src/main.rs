//! The `kiln` command line: `serve` runs the FHIR server, `migrate` applies database migrations.

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

async fn migrate(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let store = kiln::store::connect(&settings.database_url, 1).await?;
    store.close().await;
    println!("kiln: migrations applied to the {} database", store.backend_name());
    Ok(())
}
