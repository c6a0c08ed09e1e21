//! The `kiln` command line: `serve` runs the FHIR server, `migrate` applies database migrations,
//! `demo-data` generates synthetic records, `import` loads Bundles and NDJSON files; `user`,
//! `client` and `keys` administer the authorization server, `audit` the audit trail.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

use kiln::app::{Application, shutdown_signal};
use kiln::config::Settings;

/// mimalloc rather than the system allocator: a request allocates and frees many small JSON
/// values, and glibc's malloc and free were about an eighth of the request threads' time in a
/// profile of audited reads (bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// User accounts of the sign-in pages (clinicians, staff, patients).
    #[command(subcommand)]
    User(UserCommand),
    /// Apps that may use the API (SMART apps, backend services).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Keys: the token-signing keys, and the data keys that seal sensitive values.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The audit trail: verify its hash chains, report who accessed which records.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Record retention (docs/retention.md).
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Other EHRs' FHIR APIs Kiln connects to (docs/ehr.md).
    #[command(subcommand)]
    Ehr(EhrCommand),
    /// Recompute the search index of every current resource from the search parameters in
    /// force (after a definition changes, or an upgrade that indexes more). Resources and
    /// versions are not touched; a server may keep running.
    #[command(after_help = SETTINGS_HELP)]
    Reindex {
        /// Only this resource type.
        #[arg(long = "type")]
        resource_type: Option<String>,
        /// Only this clinic (default: every clinic that holds resources).
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand)]
enum EhrCommand {
    /// Register a remote EHR: an Endpoint resource, and its credential sealed apart. Prints the
    /// Endpoint id.
    Add(Box<EhrAddArgs>),
    /// List the registered remotes.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Re-pull every linked patient of one remote (or of all): queued as jobs any node may
    /// claim, then run.
    Sync {
        /// Only this remote (its Endpoint id).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Check a remote end to end: CapabilityStatement, SMART configuration, token, a search.
    Test {
        endpoint_id: String,
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(clap::Args)]
struct EhrAddArgs {
    /// A name for people, e.g. "County Hospital".
    #[arg(long)]
    name: String,
    /// The remote FHIR base URL.
    #[arg(long)]
    address: String,
    /// backend-services (signed JWT), client-secret, or none.
    #[arg(long, default_value = "backend-services")]
    auth: String,
    /// The client id Kiln has at the remote.
    #[arg(long)]
    client_id: Option<String>,
    /// backend-services: the private key (PEM, PKCS#8) whose public half the remote has.
    #[arg(long)]
    private_key_file: Option<PathBuf>,
    /// backend-services: RS384 or ES384.
    #[arg(long, default_value = "RS384")]
    algorithm: String,
    /// backend-services: the key id (kid) the remote knows the key by.
    #[arg(long)]
    key_id: Option<String>,
    /// client-secret: the name of the environment variable holding the secret.
    #[arg(long)]
    client_secret_env: Option<String>,
    /// The scopes to ask for.
    #[arg(long, default_value = "system/*.rs")]
    scope: String,
    /// The Organization running the remote (e.g. Organization/12).
    #[arg(long)]
    managing_organization: Option<String>,
    /// Re-pull every linked patient this often (seconds, at least 60), from `kiln serve`.
    #[arg(long)]
    sync_every: Option<i64>,
    /// CA certificates (PEM) to trust for this remote besides the system's: a private CA.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// List the patients whose retention period ends before a day (default: today), oldest
    /// first: the records that may be reviewed for destruction. Kiln itself never destroys one.
    Report {
        /// YYYY-MM-DD
        #[arg(long)]
        due_before: Option<chrono::NaiveDate>,
        /// The clinic (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every clinic's hash chain; exits 1 and names the first broken link if one is found.
    Verify,
    /// Accounting of disclosures for a period: the patients whose records were accessed, by whom,
    /// and whether 500 or more individuals are involved (breach assessment).
    Report {
        /// First day (YYYY-MM-DD) or instant of the period.
        #[arg(long)]
        from: String,
        /// Last day (YYYY-MM-DD) or instant of the period, inclusive.
        #[arg(long)]
        to: String,
        /// Only what this user did (user name or account id).
        #[arg(long)]
        user: Option<String>,
        /// Only accesses to this patient's record (Patient id).
        #[arg(long)]
        patient: Option<String>,
        /// Only accesses granted by breaking the glass, with their reasons.
        #[arg(long)]
        break_glass: bool,
        /// The clinic (default: default_tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from KILN_NEW_PASSWORD or the first line of stdin.
    Create {
        #[arg(long)]
        username: String,
        /// One of: admin, physician, nurse, tech, receptionist, biller, it_support, department_manager,
        /// patient, related-person.
        #[arg(long)]
        role: String,
        /// The account's FHIR resource, e.g. Practitioner/123 or Patient/456.
        #[arg(long)]
        fhir_user: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        /// The clinic (tenant); default: the configured default tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// The account's subject (`sub`) at the clinic's OpenID Connect provider (`oidc_issuer`):
        /// signing in there signs in to this account.
        #[arg(long)]
        external_subject: Option<String>,
    },
    /// Enrol a second factor (TOTP): prints the otpauth:// URI for the user's authenticator app.
    /// From then on, signing in with the password also asks for the app's current code.
    EnrollMfa {
        #[arg(long)]
        username: String,
    },
    /// Unlock an account locked after too many failed sign-ins.
    Unlock {
        #[arg(long)]
        username: String,
    },
    /// Set a new password (KILN_NEW_PASSWORD or the first line of stdin); its age restarts.
    SetPassword {
        #[arg(long)]
        username: String,
    },
    /// Record the day the user completed HIPAA training (see training_max_age_days).
    Training {
        #[arg(long)]
        username: String,
        /// YYYY-MM-DD (default: today).
        #[arg(long)]
        date: Option<chrono::NaiveDate>,
    },
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an app; prints its client id (and, for confidential-symmetric, its secret, once).
    Register {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        kind: kiln::auth::accounts::ClientKind,
        /// Exact redirect URI (repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// The most the app may be granted, space-separated (e.g. "launch openid fhirUser patient/*.rs").
        #[arg(long)]
        scope: String,
        /// Where the EHR launcher sends the app (with iss and launch).
        #[arg(long)]
        launch_url: Option<String>,
        /// File holding the app's public JWK Set (confidential-asymmetric).
        #[arg(long)]
        jwks_file: Option<PathBuf>,
        /// URL of the app's public JWK Set (confidential-asymmetric).
        #[arg(long)]
        jwks_url: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Print shell assignments (KILN_CLIENT_ID=…) instead of prose.
        #[arg(long)]
        shell: bool,
    },
    /// Approve a dynamically registered app.
    Approve { client_id: String },
    /// Disable an app: it can no longer get tokens.
    Disable { client_id: String },
    /// List the registered apps.
    List,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new signing key active; tokens signed with the old one stay valid until they expire.
    RotateSigning,
    /// Add a data key, make it active, and reseal every stored sensitive value under it while
    /// the servers run (they read the changed key file within seconds).
    Rotate {
        /// Seconds to wait between reseal passes for running servers to pick up the new key.
        #[arg(long, default_value_t = 5)]
        settle_secs: u64,
    },
    /// List the data keys and how many stored values each one seals.
    Status,
    /// Remove a data key from the key file; refused while any stored value still uses it.
    Retire { key_id: String },
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
    /// Access token for --into (a system/ token with create rights; see README "Apps and tokens").
    #[arg(long, env = "KILN_TOKEN")]
    token: Option<String>,
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
    kiln::tls::install_crypto_provider();
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
        Command::User(command) => user(settings, command).await,
        Command::Client(command) => client(settings, command).await,
        Command::Keys(KeysCommand::RotateSigning) => rotate_signing(settings).await,
        Command::Keys(command) => data_keys(settings, command).await,
        Command::Ehr(command) => return ehr(settings, command).await,
        Command::Reindex { resource_type, tenant } => reindex(settings, resource_type, tenant).await,
        Command::Retention(RetentionCommand::Report { due_before, tenant }) => {
            retention_report(settings, due_before, tenant).await
        }
        Command::Audit(AuditCommand::Verify) => return audit_verify(settings).await,
        Command::Audit(AuditCommand::Report { from, to, user, patient, break_glass, tenant }) => {
            audit_report(settings, from, to, user, patient, break_glass, tenant).await
        }
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

async fn open_store(settings: &Settings) -> Result<kiln::store::DynStore, Box<dyn std::error::Error>> {
    Ok(kiln::store::connect(&settings.database_url, 1).await?)
}

async fn user(settings: Settings, command: UserCommand) -> Result<(), Box<dyn std::error::Error>> {
    let (username, role, fhir_user, display_name, tenant, external_subject) = match command {
        UserCommand::Create { username, role, fhir_user, display_name, tenant, external_subject } => {
            (username, role, fhir_user, display_name, tenant, external_subject)
        }
        UserCommand::Unlock { username } => {
            let store = open_store(&settings).await?;
            kiln::auth::accounts::unlock(&store, &username).await?;
            println!("{username} is unlocked");
            store.close().await;
            return Ok(());
        }
        UserCommand::SetPassword { username } => {
            let store = open_store(&settings).await?;
            kiln::auth::accounts::set_password(&store, &username, new_password()?).await?;
            println!("the password of {username} is set");
            store.close().await;
            return Ok(());
        }
        UserCommand::Training { username, date } => {
            let store = open_store(&settings).await?;
            let day = date.unwrap_or_else(|| chrono::Utc::now().date_naive());
            kiln::auth::accounts::record_training(&store, &username, day).await?;
            println!("{username} completed HIPAA training on {day}");
            store.close().await;
            return Ok(());
        }
        UserCommand::EnrollMfa { username } => {
            let store = open_store(&settings).await?;
            let sensitive = kiln::sensitive::Sensitive::open(&settings, &store).await?;
            let uri = kiln::auth::accounts::enroll_second_factor(&store, &sensitive, &username).await?;
            println!("second factor enrolled for {username}; add it to an authenticator app:\n{uri}");
            store.close().await;
            return Ok(());
        }
    };
    let external_subject = match (external_subject, &settings.oidc_issuer) {
        (Some(subject), Some(issuer)) => Some(kiln::auth::federation::external_subject(issuer, &subject)),
        (Some(_), None) => return Err("--external-subject needs oidc_issuer (KILN_OIDC_ISSUER) configured".into()),
        (None, _) => None,
    };
    let password = new_password()?;
    let store = open_store(&settings).await?;
    let new = kiln::auth::accounts::NewUser {
        tenant: tenant.unwrap_or(settings.default_tenant.clone()),
        username,
        password,
        role,
        fhir_user,
        display_name,
        external_subject,
    };
    let user = kiln::auth::accounts::create_user(&store, new).await?;
    println!("created user {} ({}) in clinic {}: id {}", user.username, user.role, user.tenant, user.user_id);
    store.close().await;
    Ok(())
}

/// A new password from KILN_NEW_PASSWORD, or else the first line of stdin.
fn new_password() -> std::io::Result<String> {
    match std::env::var("KILN_NEW_PASSWORD") {
        Ok(password) => Ok(password),
        Err(_) => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            Ok(line.trim_end_matches(['\r', '\n']).to_string())
        }
    }
}

async fn client(settings: Settings, command: ClientCommand) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&settings).await?;
    match command {
        ClientCommand::Register {
            name,
            kind,
            redirect_uris,
            scope,
            launch_url,
            jwks_file,
            jwks_url,
            tenant,
            shell,
        } => {
            let jwks = jwks_file.map(std::fs::read_to_string).transpose()?;
            let new = kiln::auth::accounts::NewClient {
                tenant: tenant.unwrap_or(settings.default_tenant.clone()),
                name,
                kind,
                redirect_uris,
                scopes: scope,
                launch_url,
                jwks,
                jwks_uri: jwks_url,
                status: "active".into(),
            };
            let registered = kiln::auth::accounts::register_client(&store, new).await?;
            if shell {
                println!("KILN_CLIENT_ID={}", registered.client.client_id);
                if let Some(secret) = &registered.secret {
                    println!("KILN_CLIENT_SECRET={secret}");
                }
            } else {
                println!("registered {} ({})", registered.client.name, registered.client.kind);
                println!("client_id:     {}", registered.client.client_id);
                if let Some(secret) = &registered.secret {
                    println!("client_secret: {secret}   (shown once; only its hash is stored)");
                }
                println!("scopes:        {}", registered.client.scopes);
            }
        }
        ClientCommand::Approve { client_id } | ClientCommand::Disable { client_id } if client_id.is_empty() => {
            return Err("give a client id".into());
        }
        ClientCommand::Approve { client_id } => {
            if !store.set_client_status(&client_id, "active").await? {
                return Err(format!("no client {client_id}").into());
            }
            println!("approved {client_id}");
        }
        ClientCommand::Disable { client_id } => {
            if !store.set_client_status(&client_id, "disabled").await? {
                return Err(format!("no client {client_id}").into());
            }
            println!("disabled {client_id}");
        }
        ClientCommand::List => {
            for client in store.clients().await? {
                println!(
                    "{}  {:8}  {:24}  {}  [{}]",
                    client.client_id, client.status, client.kind, client.name, client.scopes
                );
            }
        }
    }
    store.close().await;
    Ok(())
}

async fn rotate_signing(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&settings).await?;
    let sensitive = kiln::sensitive::Sensitive::open(&settings, &store).await?;
    let kid = kiln::auth::keys::rotate(&store, &sensitive).await?;
    println!("the active signing key is now {kid}; earlier keys verify the tokens they signed until those expire");
    store.close().await;
    Ok(())
}

async fn data_keys(settings: Settings, command: KeysCommand) -> Result<(), Box<dyn std::error::Error>> {
    use kiln::sensitive::{Sensitive, rotate};
    let store = open_store(&settings).await?;
    let sensitive = Sensitive::open(&settings, &store).await?;
    let result = match command {
        KeysCommand::RotateSigning => unreachable!("handled by rotate_signing"),
        KeysCommand::Rotate { settle_secs } => {
            let rotation = rotate::rotate(&store, &sensitive, std::time::Duration::from_secs(settle_secs)).await;
            rotation.map(|rotation| {
                println!(
                    "the active data key is now {}; {} stored values (resource versions and credentials) were \
                     resealed under it",
                    rotation.new_key, rotation.resealed
                );
                for unused in &rotation.unused {
                    println!("{unused} seals nothing any more: remove it with `kiln keys retire {unused}`");
                }
            })
        }
        KeysCommand::Status => rotate::census(&store).await.map(|counts| {
            let ring = sensitive.ring();
            println!("key file {}", sensitive.key_file().display());
            for id in ring.key_ids() {
                let active = if id == ring.active_id() { " (active)" } else { "" };
                println!("{id}{active}: {} sealed values", counts.get(id).copied().unwrap_or(0));
            }
            for (id, count) in counts.iter().filter(|(id, _)| !ring.key_ids().contains(&id.as_str())) {
                println!("{id} (NOT IN THE KEY FILE): {count} sealed values");
            }
        }),
        KeysCommand::Retire { key_id } => {
            rotate::retire(&store, &sensitive, &key_id).await.map(|()| println!("{key_id} removed from the key file"))
        }
    };
    store.close().await;
    Ok(result?)
}

async fn audit_verify(settings: Settings) -> ExitCode {
    let result = async {
        let store = open_store(&settings).await?;
        let results = kiln::audit::chain::verify_all(&store).await;
        store.close().await;
        Ok::<_, Box<dyn std::error::Error>>(results?)
    }
    .await;
    match result {
        Ok(results) => {
            let mut intact = true;
            for result in &results {
                match &result.broken {
                    None => println!("clinic {}: {} audit records, chain intact", result.tenant, result.intact),
                    Some(broken) => {
                        intact = false;
                        println!(
                            "clinic {}: BROKEN at link {} (AuditEvent/{}): {}; {} records before it are intact",
                            result.tenant, broken.seq, broken.id, broken.reason, result.intact
                        );
                    }
                }
            }
            if results.is_empty() {
                println!("no audit records yet");
            }
            if intact { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(err) => {
            eprintln!("kiln audit verify: {err}");
            ExitCode::from(2)
        }
    }
}

async fn ehr(settings: Settings, command: EhrCommand) -> ExitCode {
    let result = async {
        let default_tenant = settings.default_tenant.clone();
        let state = open_state(settings).await.map_err(|e| e.to_string())?;
        let tenant_of =
            |tenant: Option<String>| kiln::access::TenantId::parse(tenant.as_deref().unwrap_or(&default_tenant));
        let outcome: Result<bool, String> = match command {
            EhrCommand::Add(args) => {
                let EhrAddArgs {
                    name,
                    address,
                    auth,
                    client_id,
                    private_key_file,
                    algorithm,
                    key_id,
                    client_secret_env,
                    scope,
                    managing_organization,
                    sync_every,
                    ca_file,
                    tenant,
                } = *args;
                let tenant = tenant_of(tenant)?;
                let read =
                    |file: &PathBuf| std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()));
                let private_key_pem = private_key_file.as_ref().map(read).transpose()?;
                let ca_certificates = ca_file.as_ref().map(read).transpose()?;
                let client_secret = match client_secret_env {
                    Some(variable) => Some(std::env::var(&variable).map_err(|_| format!("{variable} is not set"))?),
                    None => None,
                };
                let parts = kiln::ehr::CredentialParts {
                    auth,
                    client_id,
                    private_key_pem,
                    algorithm: Some(algorithm),
                    key_id,
                    client_secret,
                };
                let remote = kiln::ehr::NewRemote {
                    name,
                    address,
                    credentials: parts.credentials()?,
                    scope,
                    managing_organization,
                    sync_every_secs: sync_every,
                    ca_certificates,
                };
                let id = kiln::ehr::add(&state, &tenant, remote).await?;
                println!("{id}");
                Ok(true)
            }
            EhrCommand::List { tenant } => {
                let tenant = tenant_of(tenant)?;
                for registered in kiln::ehr::list(&state, &tenant).await? {
                    let connection = &registered.connection;
                    println!(
                        "Endpoint/{}\t{}\t{}\t{} {}\t{}",
                        connection.endpoint_id,
                        registered.name(),
                        registered.address(),
                        connection.auth,
                        connection.client_id.as_deref().unwrap_or(""),
                        connection.scope
                    );
                }
                Ok(true)
            }
            EhrCommand::Sync { endpoint, tenant } => {
                let tenant = tenant_of(tenant)?;
                let run = kiln::ehr::sync::run_once(&state, &tenant, endpoint.as_deref()).await?;
                println!("{} patients queued, {} pulled, {} failed", run.queued, run.pulled, run.failed.len());
                for failure in &run.failed {
                    println!("failed: {failure}");
                }
                Ok(run.failed.is_empty())
            }
            EhrCommand::Test { endpoint_id, tenant } => {
                let tenant = tenant_of(tenant)?;
                let (registered, remote) =
                    kiln::ehr::connect(&state, &kiln::ehr::Caller::named(tenant, "kiln ehr test".into()), &endpoint_id)
                        .await?;
                println!("Endpoint/{endpoint_id} {} at {}", registered.name(), remote.base());
                let report = kiln::ehr::test(&remote).await;
                for line in &report.lines {
                    println!("{line}");
                }
                Ok(report.passed)
            }
        };
        state.audit.finish().await;
        state.store.close().await;
        outcome
    }
    .await;
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kiln ehr: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn reindex(
    settings: Settings,
    resource_type: Option<String>,
    tenant: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let state = open_state(settings).await?;
    let tenants = match tenant {
        Some(tenant) => vec![kiln::access::TenantId::parse(&tenant)?],
        None => state.store.resource_tenants().await?,
    };
    let started = std::time::Instant::now();
    let mut total = 0;
    for tenant in &tenants {
        let done = kiln::reindex::reindex(&state, tenant, resource_type.as_deref()).await?;
        for (type_name, count) in &done.by_type {
            println!("{tenant}\t{type_name}\t{count}");
        }
        total += done.total();
    }
    println!("reindexed {total} resources in {:.1} s", started.elapsed().as_secs_f64());
    state.store.close().await;
    Ok(())
}

async fn retention_report(
    settings: Settings,
    due_before: Option<chrono::NaiveDate>,
    tenant: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&settings).await?;
    let tenant = kiln::access::TenantId::parse(tenant.as_deref().unwrap_or(&settings.default_tenant))?;
    let before = due_before.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let rule = settings.retention_rule();
    let due = kiln::rest::retention::due(&store, &tenant, &rule, before).await;
    store.close().await;
    let due = due?;
    println!("retention rule: {}", rule.describe());
    println!("{} patient records of clinic {tenant} are past their retention period before {before}", due.len());
    for line in &due {
        let retention = &line.retention;
        println!(
            "Patient/{}\tretain until {}\tlast treatment {} ({}){}",
            line.patient,
            retention.retain_until,
            retention.last_treatment,
            retention.basis.code(),
            if retention.minor_at_last_treatment == Some(true) { ", minor then" } else { "" }
        );
    }
    Ok(())
}

async fn audit_report(
    settings: Settings,
    from: String,
    to: String,
    user: Option<String>,
    patient: Option<String>,
    break_glass_only: bool,
    tenant: Option<String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = open_store(&settings).await?;
    let tenant = kiln::access::TenantId::parse(tenant.as_deref().unwrap_or(&settings.default_tenant))?;
    // A user name is looked up; anything else is taken as an account id.
    let user = match user {
        Some(name) => Some(store.user_by_name(&name).await?.map(|u| u.user_id).unwrap_or(name)),
        None => None,
    };
    let request = kiln::audit::report::ReportRequest {
        tenant: tenant.clone(),
        from: from.clone(),
        to: to.clone(),
        user,
        patient,
        break_glass_only,
    };
    let report = kiln::audit::report::build(&store, &request).await?;
    store.close().await;
    println!("Audit report for clinic {tenant}, {from} to {to}");
    println!("events: {} ({} refused or failed, nothing disclosed)", report.events, report.refused);
    println!("individuals whose records were accessed: {}", report.patients.len());
    if report.reaches_media_threshold() {
        println!(
            "WARNING: {} or more individuals: a breach involving them must also be reported to HHS and the media",
            kiln::audit::report::BREACH_MEDIA_THRESHOLD
        );
    }
    println!("\nby patient (events, first, last, accessed by):");
    for (patient, line) in &report.patients {
        let by: Vec<&str> = line.accessed_by.iter().map(String::as_str).collect();
        println!("  Patient/{patient}  {}  {}  {}  {}", line.events, line.first, line.last, by.join(", "));
    }
    println!("\nby actor (events):");
    for (actor, events) in &report.actors {
        println!("  {actor}  {events}");
    }
    if !report.break_glass.is_empty() {
        println!("\nbreak-the-glass accesses (recorded, actor, reason):");
        for (recorded, actor, reason) in &report.break_glass {
            println!("  {recorded}  {actor}  {reason}");
        }
    }
    Ok(())
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
        (None, Some(base)) => kiln::demo::load::load_into(&config, base, args.concurrency, args.token.as_deref()).await,
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

/// The application state of a command that works on the store as the server would (its rules,
/// indexing, audit), with the base URL the server would have.
async fn open_state(settings: Settings) -> Result<kiln::app::AppState, Box<dyn std::error::Error>> {
    let base_url: std::sync::Arc<str> = settings
        .base_url
        .clone()
        .unwrap_or_else(|| format!("http://{}/fhir", settings.listen))
        .trim_end_matches('/')
        .into();
    Ok(kiln::app::AppState::open(settings, base_url).await?)
}

async fn import(settings: Settings, args: ImportArgs) -> ExitCode {
    let state = match open_state(settings).await {
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
