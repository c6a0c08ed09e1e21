//! Layered configuration: built-in defaults, then an optional TOML file, then `KILN_*`
//! environment variables. Every key is documented in `docs/configuration.md`.

use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// `sqlite://data/kiln.db` (default) or `postgres://user:pass@host/db`.
    pub database_url: String,
    /// host:port to listen on; port 0 picks a free port.
    pub listen: String,
    /// Public base URL of the FHIR API (links, `Location`); derived from `listen` when unset.
    pub base_url: Option<String>,
    /// TLS termination: the certificate chain (leaf first) and its private key, PEM files. Both
    /// or neither; with them `kiln serve` speaks only HTTPS (TLS 1.2 and 1.3).
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The tenant (clinic) requests act in until authentication assigns one.
    pub default_tenant: String,
    /// Database connections (readers for SQLite; the whole pool for PostgreSQL).
    pub db_pool_size: u32,
    /// Largest `_count` a history or search page may ask for.
    pub max_page_size: u32,
    /// The most resources `_include` / `_revinclude` (with `:iterate`) add to one page; past it
    /// the page says, in an OperationOutcome entry, that it was cut.
    pub max_include_results: u32,
    /// Page size when `_count` is absent.
    pub default_page_size: u32,
    /// Most entries a batch or transaction Bundle may hold.
    pub max_bundle_entries: usize,
    /// Most resources one conditional delete may delete.
    pub max_conditional_deletes: u32,
    /// Refuse writes whose references name local resources that do not exist.
    pub reject_dangling_references: bool,
    /// What deleting a resource that others still refer to does.
    pub delete_referenced: DeleteReferenced,
    /// Whether `DELETE …?_cascade=delete` may delete the referrers too.
    pub cascade_delete: bool,
    /// Seconds a request may take before it is answered 503.
    pub request_timeout_secs: u64,
    /// Log filter, e.g. `info` or `kiln=debug,tower_http=info`.
    pub log: String,
    /// Lets requests without a token act as the default tenant with full access. For local
    /// development only: never in a deployment that holds real records.
    pub open_access_for_development: bool,
    /// Whether `client_credentials` also accepts a confidential-symmetric client's secret
    /// (OAuth 2.0 §4.4) besides the signed assertion SMART Backend Services asks for.
    pub client_credentials_with_secret: bool,
    /// Whether a client's `jwks_uri` may resolve to a private or local address (development).
    pub client_jwks_from_private_addresses: bool,
    /// Records every access in the audit trail. Off only to measure what auditing costs.
    pub audit: bool,
    /// Most audit log rows the searchable copy may lag behind before requests wait for it
    /// (0: no limit).
    pub audit_copy_backlog: u64,
    /// Lifetime of access tokens (at most an hour).
    pub access_token_lifetime_secs: i64,
    /// Lifetime of refresh tokens; each use rotates the token and restarts the clock.
    pub refresh_token_lifetime_secs: i64,
    /// Lifetime of a browser sign-in (at most 24 hours), and how long it may sit idle.
    pub session_lifetime_secs: i64,
    pub session_idle_secs: i64,
    /// Requests per second (bursts of twice as many) allowed per client IP address, per app and
    /// per user, on each node; 0 turns a limit off.
    pub rate_limit_ip_per_sec: u32,
    pub rate_limit_client_per_sec: u32,
    pub rate_limit_user_per_sec: u32,
    /// Failed sign-ins in a row that lock an account until an administrator unlocks it (0: never).
    pub lockout_after_failed_logins: u32,
    /// Days a password is valid before it must be replaced (0: no expiry).
    pub password_max_age_days: u32,
    /// Roles (comma-separated) that must sign in with a second factor.
    pub second_factor_required_roles: String,
    /// Days a HIPAA training record stays current; staff without one cannot sign in (0: not required).
    pub training_max_age_days: u32,
    /// The data key file: AES-256-GCM keys for sealed values and the blind-index key. Created
    /// on first start; every node needs the same file (docs/secrets.md). Default: beside the
    /// SQLite database (`data/kiln.db` -> `data/kiln.db.keys`), or `data/kiln.keys`.
    pub key_file: Option<String>,
    /// Identifier systems (comma-separated) whose values are stored sealed and shown masked.
    pub sensitive_identifier_systems: String,
    /// Roles (comma-separated) that may see sensitive identifiers, with the app's
    /// `kiln/reveal-sensitive` scope.
    pub reveal_sensitive_roles: String,
    /// Roles (comma-separated) whose users reach only the patients in their care: those naming
    /// them as general practitioner, or whose CareTeam, Encounter or Appointment they take part in.
    pub assigned_patients_roles: String,
    /// Record retention (docs/retention.md): years a record is kept after the last treatment,
    /// the age until which a minor's record is kept at least, and the age of majority.
    pub retention_years_after_last_treatment: u32,
    pub retention_minors_until_age: u32,
    pub retention_age_of_majority: u32,
    /// Calls to remote EHRs (docs/ehr.md): how long one may take, and the largest answer taken.
    pub ehr_call_timeout_secs: u64,
    pub ehr_max_response_bytes: usize,
    /// Dynamic client registration (RFC 7591): `closed`, `admin-approved` or `open`.
    pub registration: Registration,
    /// The clinic's own OpenID Connect provider, offered on the sign-in page (all four, or none).
    pub oidc_issuer: Option<String>,
    pub oidc_client_id: Option<String>,
    pub oidc_client_secret: Option<String>,
    /// Shown as "Sign in with …".
    pub oidc_name: Option<String>,
}

/// Who may register apps through `POST /auth/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registration {
    /// Only `kiln client register` creates apps.
    Closed,
    /// Registrations are accepted but unusable until `kiln client approve`.
    AdminApproved,
    /// Registrations are usable at once.
    Open,
}

/// The answer to deleting a resource others refer to (FHIR R4 http.html#delete leaves it to
/// the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteReferenced {
    /// 409, naming the referrers.
    Refuse,
    /// Delete it; the references stay, now pointing at a deleted resource.
    Allow,
}

impl Settings {
    /// Whether users with this role reach only their assigned patients.
    pub fn assigned_patients_only(&self, role: &str) -> bool {
        self.assigned_patients_roles.split(',').map(str::trim).any(|r| r == role)
    }

    /// Whether accounts with this role must sign in with a second factor.
    pub fn second_factor_required_for(&self, role: &str) -> bool {
        self.second_factor_required_roles.split(',').map(str::trim).any(|r| r == role)
    }

    /// The retention rule these settings describe.
    pub fn retention_rule(&self) -> crate::emr::retention::RetentionRule {
        crate::emr::retention::RetentionRule {
            years_after_last_treatment: self.retention_years_after_last_treatment,
            minors_until_age: self.retention_minors_until_age,
            age_of_majority: self.retention_age_of_majority,
        }
    }

    /// The limits of a client of a remote EHR (`extra_roots_pem`: that remote's own CA).
    pub fn ehr_client_options(&self, extra_roots_pem: Option<String>) -> crate::ehr::client::ClientOptions {
        crate::ehr::client::ClientOptions {
            call_timeout: std::time::Duration::from_secs(self.ehr_call_timeout_secs),
            max_response_bytes: self.ehr_max_response_bytes,
            extra_roots_pem,
        }
    }

    /// Where the data key file is (see `key_file`).
    pub fn key_file_path(&self) -> std::path::PathBuf {
        if let Some(path) = &self.key_file {
            return path.into();
        }
        match self.database_url.strip_prefix("sqlite://").map(|rest| rest.split('?').next().unwrap_or(rest)) {
            Some(file) if !file.is_empty() && !file.contains(":memory:") => format!("{file}.keys").into(),
            _ => "data/kiln.keys".into(),
        }
    }

    /// Defaults, then `file` (or `KILN_CONFIG`), then the `KILN_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, config::ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("database_url", "sqlite://data/kiln.db")?
            .set_default("listen", "127.0.0.1:8080")?
            .set_default("max_body_bytes", 16 * 1024 * 1024)?
            .set_default("default_tenant", "default")?
            .set_default("db_pool_size", 8)?
            .set_default("max_page_size", 1000)?
            .set_default("max_include_results", 1000)?
            .set_default("default_page_size", 50)?
            .set_default("max_bundle_entries", 10_000)?
            .set_default("max_conditional_deletes", 100)?
            .set_default("reject_dangling_references", true)?
            .set_default("delete_referenced", "refuse")?
            .set_default("cascade_delete", false)?
            .set_default("request_timeout_secs", 60)?
            .set_default("log", "info")?
            .set_default("open_access_for_development", false)?
            .set_default("client_credentials_with_secret", false)?
            .set_default("client_jwks_from_private_addresses", false)?
            .set_default("audit", true)?
            .set_default("audit_copy_backlog", 10_000)?
            .set_default("access_token_lifetime_secs", 3600)?
            .set_default("refresh_token_lifetime_secs", 30 * 24 * 3600)?
            .set_default("session_lifetime_secs", 8 * 3600)?
            .set_default("session_idle_secs", 30 * 60)?
            .set_default("registration", "admin-approved")?
            .set_default("rate_limit_ip_per_sec", 1000)?
            .set_default("rate_limit_client_per_sec", 0)?
            .set_default("rate_limit_user_per_sec", 50)?
            .set_default("lockout_after_failed_logins", 5)?
            .set_default("password_max_age_days", 0)?
            .set_default("second_factor_required_roles", "")?
            .set_default("training_max_age_days", 0)?
            .set_default("assigned_patients_roles", "nurse")?
            .set_default("retention_years_after_last_treatment", 10)?
            .set_default("retention_minors_until_age", 20)?
            .set_default("retention_age_of_majority", 18)?
            .set_default("sensitive_identifier_systems", "http://hl7.org/fhir/sid/us-ssn")?
            .set_default("reveal_sensitive_roles", "admin,receptionist,biller")?
            .set_default("ehr_call_timeout_secs", 30)?
            .set_default("ehr_max_response_bytes", 32 * 1024 * 1024)?;
        let env_file = std::env::var_os("KILN_CONFIG");
        if let Some(path) = file.map(Path::to_path_buf).or(env_file.map(Into::into)) {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml).required(true));
        }
        builder = builder.add_source(config::Environment::with_prefix("KILN").try_parsing(true).ignore_empty(true));
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), config::ConfigError> {
        let fail = |m: String| Err(config::ConfigError::Message(m));
        if crate::access::TenantId::parse(&self.default_tenant).is_err() {
            return fail(format!("default_tenant '{}' is not a valid id", self.default_tenant));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return fail("tls_cert_file and tls_key_file go together: set both, or neither".into());
        }
        if self.max_body_bytes < 1024 {
            return fail("max_body_bytes must be at least 1024".into());
        }
        if self.max_include_results == 0 {
            return fail("max_include_results must be at least 1".into());
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return fail("default_page_size must be between 1 and max_page_size".into());
        }
        if !(60..=3600).contains(&self.access_token_lifetime_secs) {
            return fail("access_token_lifetime_secs must be between 60 and 3600".into());
        }
        if !(60..=24 * 3600).contains(&self.session_lifetime_secs) || self.session_idle_secs < 60 {
            return fail("session_lifetime_secs must be between 60 and 86400, session_idle_secs at least 60".into());
        }
        let oidc = [&self.oidc_issuer, &self.oidc_client_id, &self.oidc_client_secret];
        if oidc.iter().any(|v| v.is_some()) && !oidc.iter().all(|v| v.is_some()) {
            return fail("oidc_issuer, oidc_client_id and oidc_client_secret go together".into());
        }
        if let Some(unknown) = self
            .second_factor_required_roles
            .split(',')
            .map(str::trim)
            .find(|r| !r.is_empty() && !crate::access::roles::ROLES.contains(r))
        {
            return fail(format!("second_factor_required_roles names an unknown role '{unknown}'"));
        }
        if self.refresh_token_lifetime_secs < 60 {
            return fail("refresh_token_lifetime_secs must be at least 60".into());
        }
        if self.ehr_call_timeout_secs == 0 || self.ehr_max_response_bytes < 64 * 1024 {
            return fail("ehr_call_timeout_secs must be at least 1, ehr_max_response_bytes at least 65536".into());
        }
        if let Some(base) = &self.base_url
            && !(base.starts_with("http://") || base.starts_with("https://"))
        {
            return fail(format!("base_url '{base}' must be an http(s) URL"));
        }
        Ok(())
    }
}
