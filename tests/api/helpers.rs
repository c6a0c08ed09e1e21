//! The test harness: `TestApp` starts the real server on port 0 over a real database (a fresh
//! SQLite file, or a fresh database in a throw-away PostgreSQL cluster) and talks HTTP to it.

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tokio::sync::oneshot;

use kiln::app::Application;
use kiln::auth::accounts::{ClientKind, NewClient};
use kiln::config::Settings;

pub struct TestApp {
    /// FHIR base, e.g. `http://127.0.0.1:41234/fhir`.
    pub base: String,
    pub root: String,
    /// Sends the harness's `system/*.cruds` access token with every request.
    pub client: Client,
    /// Sends no token.
    pub anonymous: Client,
    pub token: String,
    /// The server's shared state: for cases that register apps and accounts in-process.
    pub state: kiln::app::AppState,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

pub fn settings(database_url: &str) -> Settings {
    Settings {
        database_url: database_url.to_string(),
        listen: "127.0.0.1:0".into(),
        base_url: None,
        tls_cert_file: None,
        tls_key_file: None,
        max_body_bytes: 64 * 1024,
        default_tenant: "test-clinic".into(),
        db_pool_size: 4,
        max_page_size: 100,
        max_include_results: 1000,
        default_page_size: 10,
        max_bundle_entries: 50,
        max_conditional_deletes: 5,
        // Most cases refer to resources they never create (a search for `subject=Patient/p1`
        // needs no Patient p1); the integrity cases turn the production default back on.
        reject_dangling_references: false,
        delete_referenced: kiln::config::DeleteReferenced::Refuse,
        cascade_delete: true,
        request_timeout_secs: 30,
        log: "warn".into(),
        open_access_for_development: false,
        client_credentials_with_secret: false,
        client_jwks_from_private_addresses: false,
        audit: true,
        audit_copy_backlog: 10_000,
        access_token_lifetime_secs: 3600,
        refresh_token_lifetime_secs: 3600,
        session_lifetime_secs: 3600,
        session_idle_secs: 600,
        registration: kiln::config::Registration::AdminApproved,
        // The harness sends many requests from one address; the rate-limit case sets its own.
        rate_limit_ip_per_sec: 0,
        rate_limit_client_per_sec: 0,
        rate_limit_user_per_sec: 0,
        lockout_after_failed_logins: 5,
        password_max_age_days: 0,
        second_factor_required_roles: String::new(),
        training_max_age_days: 0,
        // SQLite: beside the database file. Each PostgreSQL database gets its own key file too,
        // so that a case rotating keys touches no other case's.
        assigned_patients_roles: "nurse".into(),
        retention_years_after_last_treatment: 10,
        retention_minors_until_age: 20,
        retention_age_of_majority: 18,
        // Short enough for the EHR fault cases to meet a slow remote and an oversized page.
        ehr_call_timeout_secs: 2,
        ehr_max_response_bytes: 256 * 1024,
        key_file: database_url.starts_with("postgres").then(|| {
            let name = database_url.rsplit('/').next().unwrap_or("kiln");
            std::env::temp_dir().join(format!("kiln-test-{name}.keys")).display().to_string()
        }),
        sensitive_identifier_systems: "http://hl7.org/fhir/sid/us-ssn".into(),
        reveal_sensitive_roles: "admin,receptionist,biller".into(),
        oidc_issuer: None,
        oidc_client_id: None,
        oidc_client_secret: None,
        oidc_name: None,
    }
}

/// A client that sends `token` as its bearer token.
pub fn authorized_client(token: &str) -> Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).expect("token is header-safe");
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Client::builder().default_headers(headers).build().expect("client builds")
}

/// Runs the `kiln` command (the binary under test) on the test app's database and clinic, with
/// extra environment variables.
pub fn kiln_cli(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    command
        .args(args)
        .env("KILN_DATABASE_URL", &app.database_url)
        .env("KILN_DEFAULT_TENANT", "test-clinic")
        .env("KILN_KEY_FILE", app.state.settings.key_file_path())
        .env("KILN_LOG", "error");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("kiln runs")
}

/// Registers a backend-services app allowed `system/*.cruds` and gets a token for it from the
/// token endpoint.
pub async fn system_token(state: &kiln::app::AppState, root: &str) -> String {
    system_token_in(state, root, "test-clinic").await
}

/// [`system_token`] for an app of another clinic (tenant).
pub async fn system_token_in(state: &kiln::app::AppState, root: &str, tenant: &str) -> String {
    let body = backend_token_in(state, root, tenant, "system/*.cruds").await;
    body["access_token"].as_str().expect("an access token").to_string()
}

/// A fresh ES384 key pair: the signing key and its public JWK Set (kid `backend-1`).
pub fn es384_key() -> (p384::ecdsa::SigningKey, Value) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let key = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": "backend-1", "alg": "ES384", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())});
    (key, json!({"keys": [jwk]}))
}

/// A client assertion (RFC 7523) signed with `key`, expiring `exp_in` seconds from now.
pub fn assertion(key: &p384::ecdsa::SigningKey, client_id: &str, aud: &str, jti: &str, exp_in: i64) -> String {
    use p384::pkcs8::EncodePrivateKey;
    let der = key.to_pkcs8_der().unwrap();
    let encoding = jsonwebtoken::EncodingKey::from_ec_der(der.as_bytes());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES384);
    header.kid = Some("backend-1".into());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": client_id, "sub": client_id, "aud": aud, "jti": jti, "exp": now + exp_in});
    jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
}

/// Registers a backend-services app of `tenant` (confidential-asymmetric, a fresh ES384 key)
/// for `scope` and gets a token as SMART Backend Services do: `client_credentials` with a
/// signed assertion. Answers the token response.
pub async fn backend_token_in(state: &kiln::app::AppState, root: &str, tenant: &str, scope: &str) -> Value {
    let (key, jwks) = es384_key();
    let registered = kiln::auth::accounts::register_client(
        &state.store,
        NewClient {
            tenant: tenant.into(),
            name: "Backend service".into(),
            kind: ClientKind::ConfidentialAsymmetric,
            redirect_uris: vec![],
            scopes: scope.into(),
            launch_url: None,
            jwks: Some(jwks.to_string()),
            jwks_uri: None,
            status: "active".into(),
        },
    )
    .await
    .expect("the app registers");
    let client_id = registered.client.client_id;
    let token_endpoint = format!("{root}/auth/token");
    let signed = assertion(&key, &client_id, &token_endpoint, &uuid::Uuid::new_v4().to_string(), 120);
    let response = Client::new()
        .post(&token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", scope),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", signed.as_str()),
        ])
        .send()
        .await
        .expect("token request sent");
    assert_eq!(response.status(), StatusCode::OK, "token request failed: {}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// A backend-services app whose registration allows seeing sensitive identifiers in clear
/// (`kiln/reveal-sensitive`, docs/secrets.md), with a token that has it: for cases that read
/// back SSNs they wrote. The default client sees them masked.
pub async fn revealing_client(app: &TestApp) -> Client {
    backend_client(app, "system/*.cruds kiln/reveal-sensitive").await
}

/// A backend-services app of the test clinic registered for `scope`, with a token granting it.
pub async fn backend_client(app: &TestApp, scope: &str) -> Client {
    let body = backend_token_in(&app.state, &app.root, "test-clinic", scope).await;
    assert_eq!(body["scope"], scope, "{body}");
    authorized_client(body["access_token"].as_str().unwrap())
}

/// Registers an app in the test clinic; answers its client id and secret.
pub async fn register_app(
    state: &kiln::app::AppState,
    kind: ClientKind,
    scopes: &str,
    redirect_uris: Vec<String>,
) -> (String, Option<String>) {
    register_app_in(state, "test-clinic", kind, scopes, redirect_uris).await
}

/// [`register_app`] in another clinic (tenant).
pub async fn register_app_in(
    state: &kiln::app::AppState,
    tenant: &str,
    kind: ClientKind,
    scopes: &str,
    redirect_uris: Vec<String>,
) -> (String, Option<String>) {
    let registered = kiln::auth::accounts::register_client(
        &state.store,
        NewClient {
            tenant: tenant.into(),
            name: "Test app".into(),
            kind,
            redirect_uris,
            scopes: scopes.into(),
            launch_url: None,
            jwks: None,
            jwks_uri: None,
            status: "active".into(),
        },
    )
    .await
    .expect("the app registers");
    (registered.client.client_id, registered.secret)
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestApp {
    /// Starts the app on `backend`, or answers `None` when PostgreSQL binaries are absent and
    /// `KILN_TEST_POSTGRES` does not say they are required.
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, |_| {}, |app| app).await
    }

    pub async fn start_with(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
        customise: impl FnOnce(Application) -> Application,
    ) -> Option<TestApp> {
        let (database_url, dir) = fresh_database(backend).await?;
        let mut settings = settings(&database_url);
        tweak(&mut settings);
        Some(Self::launch(settings, customise, dir).await)
    }

    /// A second server on this one's database, in its own process (`kiln serve`, the binary
    /// under test): another node of the same deployment. It is killed when dropped.
    pub async fn another_process_on_same_database(&self) -> ServerProcess {
        let port = free_port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("serve")
            .env("KILN_DATABASE_URL", &self.database_url)
            .env("KILN_LISTEN", format!("127.0.0.1:{port}"))
            // Nodes of one deployment share its public URL: the issuer and audience of its tokens.
            .env("KILN_BASE_URL", &self.base)
            .env("KILN_DEFAULT_TENANT", "test-clinic")
            .env("KILN_KEY_FILE", self.state.settings.key_file_path())
            .env("KILN_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .spawn()
            .expect("kiln serve starts");
        let process = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}/fhir"),
            client: authorized_client(&self.token),
        };
        for _ in 0..200 {
            if let Ok(response) = process.client.get(format!("http://127.0.0.1:{port}/health")).send().await
                && response.status().is_success()
            {
                return process;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the second kiln serve did not become healthy");
    }

    async fn launch(
        settings: Settings,
        customise: impl FnOnce(Application) -> Application,
        dir: Option<tempfile::TempDir>,
    ) -> TestApp {
        let database_url = settings.database_url.clone();
        kiln::telemetry::init(&settings.log);
        let app = customise(Application::build(settings).await.expect("the app starts"));
        let port = app.port();
        let (tx, rx) = oneshot::channel::<()>();
        let state = app.state().clone();
        let stopped = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        let root = format!("http://127.0.0.1:{port}");
        // Every case talks to the API as a real deployment's backend service would: with an
        // access token obtained over HTTP by client_credentials and a signed assertion.
        let token = system_token(&state, &root).await;
        TestApp {
            base: format!("{root}/fhir"),
            root,
            client: authorized_client(&token),
            anonymous: Client::new(),
            token,
            state,
            database_url,
            shutdown: Some(tx),
            stopped: Some(stopped),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn put(&self, path: &str, body: &Value) -> Response {
        self.client
            .put(self.url(path))
            .header("content-type", "application/fhir+json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client.delete(self.url(path)).send().await.expect("request sent")
    }

    /// Creates a resource and answers its server-assigned id.
    pub async fn create(&self, resource: &Value) -> String {
        let response = self.post(resource["resourceType"].as_str().unwrap(), resource).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create failed: {}", response.text().await.unwrap());
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_string()
    }

    /// Asks the server to stop and waits until it has drained and closed its pool.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            stopped.await.expect("server task").expect("server stopped cleanly");
        }
    }
}

/// A `kiln serve` child process.
pub struct ServerProcess {
    child: std::process::Child,
    pub base: String,
    pub client: Client,
}

impl ServerProcess {
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts an OperationOutcome response with `status`, answering the body.
pub async fn expect_outcome(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/fhir+json"), "content type {content_type}");
    let body: Value = response.json().await.expect("a JSON body");
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert!(!body["issue"].as_array().unwrap().is_empty());
    body
}

/// A fresh, empty database for one test.
pub async fn fresh_database(backend: Backend) -> Option<(String, Option<tempfile::TempDir>)> {
    // The test's own HTTPS-capable clients need the process's rustls provider, as the server does.
    kiln::tls::install_crypto_provider();
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/kiln.db", dir.path().display());
            Some((url, Some(dir)))
        }
        Backend::Postgres => {
            let cluster = PostgresCluster::shared()?;
            Some((cluster.create_database().await, None))
        }
    }
}

/// A throw-away PostgreSQL cluster for this test process: initdb + pg_ctl on a free port in a
/// temp dir, stopped and removed by a watchdog when the process ends.
pub struct PostgresCluster {
    port: u16,
}

impl PostgresCluster {
    pub fn shared() -> Option<&'static PostgresCluster> {
        static CLUSTER: OnceLock<Option<PostgresCluster>> = OnceLock::new();
        CLUSTER
            .get_or_init(|| {
                let required = std::env::var("KILN_TEST_POSTGRES").is_ok_and(|v| v == "required");
                match PostgresCluster::start() {
                    Ok(cluster) => Some(cluster),
                    Err(reason) if required => panic!("PostgreSQL is required for these tests: {reason}"),
                    Err(reason) => {
                        eprintln!(
                            "skipping PostgreSQL tests: {reason} (set KILN_TEST_POSTGRES=required to fail instead)"
                        );
                        None
                    }
                }
            })
            .as_ref()
    }

    fn start() -> Result<PostgresCluster, String> {
        let bin = postgres_bin_dir().ok_or("no PostgreSQL binaries (initdb, pg_ctl) found")?;
        let dir = tempfile::Builder::new().prefix("kiln-pg-").tempdir().map_err(|e| e.to_string())?.keep();
        let data = dir.join("data");
        let port = free_port();
        let as_user = run_as_user();
        if let Some(user) = &as_user {
            run(Command::new("chown").arg("-R").arg(user).arg(&dir))?;
        }
        let pg = |tool: &str| -> Command {
            let path = bin.join(tool);
            match &as_user {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(path);
                    c
                }
                None => Command::new(path),
            }
        };
        run(pg("initdb").arg("-D").arg(&data).args([
            "-U",
            "kiln",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        ]))?;
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            dir.display()
        );
        run(pg("pg_ctl")
            .arg("-D")
            .arg(&data)
            .args(["-o", &options, "-w", "-t", "60", "-l"])
            .arg(dir.join("log"))
            .arg("start"))?;
        // Stop and remove the cluster once this process has gone, however it ends.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runner} {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            runner = as_user.as_ref().map(|u| format!("runuser -u {u} --")).unwrap_or_default(),
            pg_ctl = bin.join("pg_ctl").display(),
            data = data.display(),
            dir = dir.display(),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        Ok(PostgresCluster { port })
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://kiln@127.0.0.1:{}/{database}", self.port)
    }

    pub async fn create_database(&self) -> String {
        use sqlx::Connection;
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres")).await.expect("connect to the test cluster");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.ok();
        self.url(&name)
    }
}

fn postgres_bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("KILN_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// PostgreSQL refuses to run as root: use the `postgres` account (or `nobody`) then.
fn run_as_user() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    let has_postgres = Command::new("id").arg("postgres").output().is_ok_and(|o| o.status.success());
    Some(if has_postgres { "postgres" } else { "nobody" }.to_string())
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn examples_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".fhir-cache/hl7.fhir.r4.examples-4.0.1/package");
    dir.exists().then_some(dir)
}

/// Runs each named test case (an `async fn(TestApp)`) on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let app = $crate::helpers::TestApp::start($crate::helpers::Backend::Sqlite).await.unwrap();
                    super::$case(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(app) = $crate::helpers::TestApp::start($crate::helpers::Backend::Postgres).await {
                        super::$case(app).await;
                    }
                }
            )*
        }
    };
}

/// Runs each named test case (an `async fn(Backend)`, for cases that start their app with their
/// own settings) on SQLite and on PostgreSQL.
#[macro_export]
macro_rules! on_both_backend_kinds {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
}
