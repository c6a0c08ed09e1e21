//! Builds the application: shared state, the router (from the registry) with its middleware,
//! and the listener; runs it until a shutdown signal, then drains requests and closes the pool.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::access::TenantId;
use crate::config::Settings;
use crate::error::FhirError;
use crate::fhir::registry::Registry;
use crate::rest;
use crate::store::{self, DynStore};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub registry: &'static Registry,
    pub settings: Arc<Settings>,
    /// Public base of the FHIR API, without a trailing slash (e.g. `http://host:8080/fhir`).
    pub base_url: Arc<str>,
    pub default_tenant: TenantId,
    pub capability_statement: bytes::Bytes,
    pub auth: Arc<crate::auth::AuthServer>,
    pub audit: crate::audit::Auditor,
    pub rate_limits: Arc<crate::access::rate_limit::RateLimits>,
    pub consent: Arc<crate::access::consent::ConsentCache>,
    /// Clinicians' assigned patients (care relationships), looked up per request, kept briefly.
    pub assignments: Arc<crate::access::assignments::Assignments>,
    /// Sensitive identifiers: sealed at rest, blinded in the index, masked in responses.
    pub sensitive: Arc<crate::sensitive::Sensitive>,
}

impl AppState {
    /// Opens the store (applying migrations) and builds the shared state: for the server, and
    /// for commands that work in-process (`kiln import`).
    pub async fn open(settings: Settings, base_url: Arc<str>) -> Result<AppState, StartupError> {
        crate::tls::install_crypto_provider();
        let store = store::connect(&settings.database_url, settings.db_pool_size).await?;
        let default_tenant = TenantId::parse(&settings.default_tenant).map_err(StartupError::Config)?;
        store.ensure_tenant(&default_tenant, "Default clinic").await?;
        let registry = Registry::global();
        let sensitive =
            Arc::new(crate::sensitive::Sensitive::open(&settings, &store).await.map_err(StartupError::Config)?);
        sensitive.watch();
        // Credentials stored before they were sealed are sealed now.
        crate::sensitive::rotate::reseal_credentials(&store, &sensitive, true).await.map_err(StartupError::Config)?;
        let auth = Arc::new(crate::auth::AuthServer::open(&store, &base_url, sensitive.clone()).await?);
        let audit = if settings.audit {
            crate::audit::Auditor::start(store.clone(), registry, settings.audit_copy_backlog)
        } else {
            crate::audit::Auditor::disabled()
        };
        let rate_limits = Arc::new(crate::access::rate_limit::RateLimits::new(
            settings.rate_limit_ip_per_sec,
            settings.rate_limit_client_per_sec,
            settings.rate_limit_user_per_sec,
        ));
        Ok(AppState {
            auth,
            audit,
            rate_limits,
            consent: Default::default(),
            assignments: Default::default(),
            sensitive,
            store,
            registry,
            capability_statement: rest::capabilities::build(registry, &base_url).into(),
            settings: Arc::new(settings),
            base_url,
            default_tenant,
        })
    }
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    /// Set when `kiln serve` terminates TLS itself.
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    state: AppState,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("configuration: {0}")]
    Config(String),
}

impl Application {
    /// Opens the store (applying migrations), binds the listener and builds the router.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let listener =
            TcpListener::bind(&settings.listen).await.map_err(|e| StartupError::Listen(settings.listen.clone(), e))?;
        let local = listener.local_addr().map_err(|e| StartupError::Listen(settings.listen.clone(), e))?;
        let tls = match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(cert), Some(key)) => {
                Some(crate::tls::server_config(cert.as_ref(), key.as_ref()).map_err(StartupError::Config)?)
            }
            _ => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let base_url: Arc<str> = match &settings.base_url {
            Some(base) => base.trim_end_matches('/').into(),
            None => format!("{scheme}://{local}/fhir").into(),
        };
        let state = AppState::open(settings, base_url).await?;
        let router = router(state.clone());
        Ok(Application { listener, tls, router, state })
    }

    /// Replaces the router, e.g. with [`router_with`] extra routes.
    pub fn with_router(mut self, build: impl FnOnce(AppState) -> Router) -> Application {
        self.router = build(self.state.clone());
        self
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the pool.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let local = self.listener.local_addr()?;
        let statistics = spawn_statistics_refresher(self.state.store.clone());
        let keys = spawn_key_reloader(self.state.clone());
        let ehr_sync = crate::ehr::sync::spawn_scheduler(self.state.clone());
        let limits = self.state.rate_limits.clone();
        let forget = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                limits.forget_idle();
            }
        });
        tracing::info!(address = %local, base_url = %self.state.base_url, backend = self.state.store.backend_name(), "Kiln is listening");
        let service = self.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let result = match self.tls {
            Some(config) => {
                use axum::serve::ListenerExt;
                // `tap_io` (doing nothing) is what lets axum hand the peer address of any
                // listener to `ConnectInfo`.
                let listener = crate::tls::TlsListener::new(self.listener, config)?.tap_io(|_| {});
                axum::serve(listener, service).with_graceful_shutdown(shutdown).await
            }
            None => axum::serve(self.listener, service).with_graceful_shutdown(shutdown).await,
        };
        statistics.abort();
        keys.abort();
        ehr_sync.abort();
        forget.abort();
        self.state.audit.finish().await;
        self.state.store.close().await;
        tracing::info!("Kiln stopped");
        result
    }
}

/// The routes of the FHIR API, the liveness and readiness probes, and the middleware.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The router with `extra` routes mounted under `/fhir` behind the same middleware (tests use
/// it to prove that a panicking handler is answered with an OperationOutcome).
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    use rest::{create, delete, history, read, update, vread};
    let entries = extra
        .route("/metadata", get(rest::capabilities::capabilities))
        .route("/_history", get(history::system_history))
        .route("/_search", axum::routing::post(rest::search::system_search_post))
        .route(
            "/{type}",
            get(rest::search::search_get)
                .post(create::create)
                .put(update::conditional_update)
                .delete(delete::conditional_delete)
                .patch(rest::patch::conditional_patch),
        )
        .route("/.well-known/smart-configuration", get(crate::auth::discovery::smart_configuration))
        .route("/.well-known/openid-configuration", get(crate::auth::discovery::openid_configuration))
        .route("/{type}/_search", axum::routing::post(rest::search::search_post))
        .route("/{type}/$validate", axum::routing::post(rest::validate::validate_type))
        .route("/{type}/{id}/$validate", axum::routing::post(rest::validate::validate_instance))
        .route("/{type}/$everything", get(rest::everything::everything_for_all_patients))
        .route("/{type}/$ehr-register", axum::routing::post(crate::ehr::register::ehr_register))
        .route("/{type}/{id}/$ehr-test", get(crate::ehr::register::ehr_test).post(crate::ehr::register::ehr_test))
        .route("/$meta", get(rest::meta::system_meta).post(rest::meta::system_meta))
        .route("/{type}/$meta", get(rest::meta::type_meta).post(rest::meta::type_meta))
        .route("/{type}/{id}/$meta", get(rest::meta::instance_meta).post(rest::meta::instance_meta))
        .route("/{type}/{id}/$meta-add", axum::routing::post(rest::meta::meta_add))
        .route("/{type}/{id}/$meta-delete", axum::routing::post(rest::meta::meta_delete))
        .route("/{type}/{id}/$everything", get(rest::everything::everything_for_patient))
        .route("/{type}/{id}/$retention", get(rest::retention::retention_of_patient))
        .route("/{type}/{id}/$ehr-link", axum::routing::post(crate::ehr::link::ehr_link))
        .route("/{type}/{id}/$ehr-pull", axum::routing::post(crate::ehr::pull::ehr_pull))
        .route("/{type}/{id}/$ehr-push", axum::routing::post(crate::ehr::push::ehr_push))
        .route("/{type}/{id}/$sign", axum::routing::post(rest::signature::sign))
        .route("/{type}/{id}/$amend", axum::routing::post(rest::signature::amend))
        .route(
            "/{type}/{id}/$verify-signature",
            get(rest::signature::verify_signature).post(rest::signature::verify_signature),
        )
        .route("/{type}/_history", get(history::type_history))
        .route("/{type}/{id}", get(read::read).put(update::update).delete(delete::delete).patch(rest::patch::patch))
        .route("/{type}/{id}/_history", get(history::instance_history))
        .route("/{compartment}/{id}/{type}", get(rest::search::compartment_search))
        .route("/{type}/{id}/_history/{version}", get(vread::vread))
        .fallback(not_found)
        .layer(middleware::from_fn(rest::format::negotiate))
        .with_state(state.clone());
    // Batch and transaction entries that read are answered by the routes above, in-process.
    let fhir = Router::new()
        .route("/", axum::routing::post(rest::transaction::process).get(rest::search::system_search_get))
        .layer(axum::Extension(rest::transaction::EntryRouter(entries.clone())))
        .layer(middleware::from_fn(rest::format::negotiate))
        .with_state(state.clone())
        .merge(entries)
        .layer(middleware::from_fn_with_state(state.clone(), crate::sensitive::middleware::present))
        .layer(middleware::from_fn_with_state(state.clone(), crate::access::consent::apply))
        .layer(middleware::from_fn_with_state(state.clone(), crate::access::rate_limit::limit))
        .layer(middleware::from_fn_with_state(state.clone(), crate::audit::middleware::audit))
        .layer(crate::auth::cors());

    let request_id = HeaderName::from_static("x-request-id");
    let timeout = Duration::from_secs(state.settings.request_timeout_secs);
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .merge(crate::auth::routes())
        .nest_service("/fhir", fhir)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), crate::access::rate_limit::limit_outside_fhir))
        .layer(middleware::from_fn_with_state(state.clone(), security_headers))
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(CatchPanicLayer::custom(|_| FhirError::Internal("a handler panicked".into()).into_response()))
        // Spans name the method and path only: query strings can carry identifiers and other PHI.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
        }))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}

/// Headers every response carries: no MIME sniffing, no referrer; responses of the FHIR API
/// (health data) are never stored by caches, except the CapabilityStatement and discovery
/// documents; HSTS once the public base URL is HTTPS. The sign-in pages add their own
/// frame-ancestors and content policy (`auth::session::page_headers`).
async fn security_headers(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    use axum::http::{HeaderValue, header};
    let path = request.uri().path();
    let cacheable = path == "/fhir/metadata" || path.contains("/.well-known/") || path == "/auth/jwks";
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.entry(header::REFERRER_POLICY).or_insert(HeaderValue::from_static("no-referrer"));
    if !cacheable {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.base_url.starts_with("https://") {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

async fn not_found(uri: axum::http::Uri) -> FhirError {
    FhirError::NotFound(format!("no such endpoint: {}", uri.path()))
}

/// Liveness: the process answers.
async fn health() -> Response {
    (StatusCode::OK, axum::Json(serde_json::json!({"status": "ok"}))).into_response()
}

/// Readiness: the database answers.
async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"}))).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "database unreachable"})))
                .into_response()
        }
    }
}

/// How often, and after how many writes, the planner statistics are refreshed: a bulk load
/// followed at once by searches (an EHR import, a demo load) would otherwise run on empty
/// statistics until autovacuum gets to the tables, and pick plans a thousand times slower; and
/// the load itself slows down when its own lookups are planned for empty tables. Checked every
/// 2 s, refreshed once the writes since the last refresh are as many as all those before it (at
/// least 1000): a growing data set is analysed a logarithmic number of times (an `ANALYZE` also
/// makes SQLite re-prepare every cached statement).
const STATISTICS_INTERVAL: Duration = Duration::from_secs(2);
const STATISTICS_MIN_WRITES: u64 = 1000;

/// Refreshes the planner statistics in the background (see [`STATISTICS_INTERVAL`]) until
/// the task is aborted: for the server, and for bulk loads such as `kiln import`.
pub fn spawn_statistics_refresher(store: DynStore) -> tokio::task::JoinHandle<()> {
    tokio::spawn(keep_statistics_fresh(store))
}

async fn keep_statistics_fresh(store: DynStore) {
    let mut interval = tokio::time::interval(STATISTICS_INTERVAL);
    interval.tick().await;
    // The writes the statistics have seen.
    let mut analysed: u64 = 0;
    loop {
        interval.tick().await;
        match store.refresh_statistics(STATISTICS_MIN_WRITES.max(analysed)).await {
            Ok(Some(writes)) => {
                analysed += writes;
                tracing::debug!(analysed, "planner statistics refreshed");
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "refreshing planner statistics failed"),
        }
    }
}

/// How often a node picks up a signing key rotated elsewhere (`kiln keys rotate-signing`) and
/// clears out expired codes, tokens and sessions.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

fn spawn_key_reloader(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(KEY_RELOAD_INTERVAL);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Err(err) = state.auth.reload_keys(&state.store).await {
                tracing::warn!(error = %err, "reloading the signing keys failed");
            }
            let now = chrono::Utc::now().timestamp();
            let settings = &state.settings;
            let purged = state
                .store
                .purge_expired(now, now - settings.session_lifetime_secs, now - settings.session_idle_secs)
                .await;
            if let Err(err) = purged {
                tracing::warn!(error = %err, "purging expired authorization state failed");
            }
        }
    })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
