//! Kiln as the FHIR client of another EHR: SMART discovery (`.well-known/smart-configuration`),
//! a `client_credentials` token through the `oauth2` crate (SMART Backend Services: a signed
//! JWT assertion, RS384 or ES384; or a client secret), the token kept until shortly before it
//! expires and fetched again once on a 401, time limits on every call, a cap on what a
//! response may weigh, retries with exponential backoff and jitter on connection errors, 429
//! and 5xx (honouring `Retry-After`), and a circuit breaker per remote. TLS is always
//! verified; a remote with a private CA is trusted through extra roots given at registration.
//! Every call (token requests included) is reported to a [`CallObserver`], which the EHR
//! operations set to write an AuditEvent per call.

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long connecting to the remote may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a client may spend on a remote, and whom it trusts beyond the public roots.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long a whole call may take (settings: `ehr_call_timeout_secs`).
    pub call_timeout: Duration,
    /// The largest response accepted (settings: `ehr_max_response_bytes`).
    pub max_response_bytes: usize,
    /// PEM certificates trusted as roots for this remote, besides the system's.
    pub extra_roots_pem: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            call_timeout: Duration::from_secs(30),
            max_response_bytes: 32 * 1024 * 1024,
            extra_roots_pem: None,
        }
    }
}

/// The certificates of a PEM bundle, refused when it holds none.
pub fn parse_roots(pem: &str) -> Result<Vec<reqwest::Certificate>, String> {
    let roots = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|e| format!("the CA certificates are not PEM: {e}"))?;
    if roots.is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    Ok(roots)
}

/// One call to a remote, as the audit trail records it.
#[derive(Debug, Clone)]
pub struct RemoteCall {
    pub method: &'static str,
    pub url: String,
    /// The last status answered, if any answer came.
    pub status: Option<u16>,
    /// Why the call failed, if it did.
    pub error: Option<String>,
    pub attempts: u32,
    pub elapsed: Duration,
}

/// Told of every call once it has ended; an error fails the call (an unaudited call must not
/// pass as done).
pub type CallObserver =
    Arc<dyn Fn(RemoteCall) -> futures_util::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;
/// A token this close to its expiry is fetched again.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// What a signed client assertion is good for (SMART Backend Services: at most five minutes).
const ASSERTION_LIFETIME_SECS: i64 = 300;
/// Retries after the first attempt, on connection errors, 429 and 5xx.
const RETRIES: u32 = 3;
/// The first backoff; each retry doubles it, plus up to half again of jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait honoured from a `Retry-After`.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// Calls that failed in a row (after their retries) that open a remote's circuit.
const BREAKER_FAILURES: u32 = 5;
/// How long an open circuit refuses calls before letting one through again.
const BREAKER_OPEN_FOR: Duration = Duration::from_secs(30);

/// The circuit of each remote (by base URL), shared by every client of it in this process.
#[derive(Default)]
struct Circuit {
    failures: u32,
    open_until: Option<Instant>,
}

fn circuits() -> &'static Mutex<HashMap<String, Circuit>> {
    static CIRCUITS: OnceLock<Mutex<HashMap<String, Circuit>>> = OnceLock::new();
    CIRCUITS.get_or_init(Default::default)
}

/// How long to wait before retry `attempt` (0-based): exponential, with jitter so that many
/// clients do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_BACKOFF * 2u32.pow(attempt);
    let jitter = rand::random::<f64>() * 0.5;
    base + base.mul_f64(jitter)
}

/// A failed attempt, and the wait the remote asked for.
struct Failed {
    error: RemoteError,
    retry_after: Option<Duration>,
}

impl From<RemoteError> for Failed {
    fn from(error: RemoteError) -> Failed {
        Failed { error, retry_after: None }
    }
}

fn retryable(error: &RemoteError) -> bool {
    match error {
        RemoteError::Unreachable(..) | RemoteError::Timeout(_) => true,
        RemoteError::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

/// How Kiln signs in to the remote.
#[derive(Clone)]
pub enum Credentials {
    /// SMART Backend Services: a JWT signed with the client's private key.
    BackendServices {
        client_id: String,
        private_key_pem: String,
        algorithm: jsonwebtoken::Algorithm,
        key_id: Option<String>,
    },
    /// A client secret (HTTP Basic at the token endpoint).
    ClientSecret { client_id: String, secret: String },
    /// An open server.
    None,
}

impl std::fmt::Debug for Credentials {
    // Never the key or the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::BackendServices { client_id, algorithm, .. } => {
                write!(f, "BackendServices({client_id}, {algorithm:?})")
            }
            Credentials::ClientSecret { client_id, .. } => write!(f, "ClientSecret({client_id})"),
            Credentials::None => f.write_str("None"),
        }
    }
}

/// What went wrong talking to the remote, in words for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("{0} cannot be reached: {1}")]
    Unreachable(String, String),
    #[error("{0} did not answer in time")]
    Timeout(String),
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("{0} answered something that is not what was asked for: {1}")]
    Malformed(String, String),
    #[error("{0} answered more than {1} bytes (ehr_max_response_bytes)")]
    TooLarge(String, usize),
    #[error("signing in at {0} failed: {1}")]
    Auth(String, String),
    #[error("{0} failed {BREAKER_FAILURES} times in a row; calls to it are paused for {secs}s", secs = BREAKER_OPEN_FOR.as_secs())]
    CircuitOpen(String),
    #[error("the call to {0} could not be audited: {1}")]
    NotAudited(String, String),
}

fn transport_error(url: &str, error: &reqwest::Error) -> RemoteError {
    if error.is_timeout() {
        return RemoteError::Timeout(url.to_string());
    }
    // The causes say what an operator can act on (refused, unknown certificate issuer, ...);
    // reqwest's own message only says that sending failed.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    RemoteError::Unreachable(url.to_string(), text)
}

/// A granted access token and until when to use it.
struct Token {
    value: String,
    renew_at: Instant,
    scope: String,
}

/// One remote EHR's FHIR API.
pub struct RemoteEhr {
    base: String,
    credentials: Credentials,
    scope: String,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
    max_response_bytes: usize,
    observer: Option<CallObserver>,
}

impl RemoteEhr {
    pub fn new(
        base: &str,
        credentials: Credentials,
        scope: &str,
        options: &ClientOptions,
    ) -> Result<RemoteEhr, String> {
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(options.call_timeout)
            // A redirect could carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Kiln/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &options.extra_roots_pem {
            for root in parse_roots(pem)? {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder.build().map_err(|e| format!("the HTTP client cannot be built: {e}"))?;
        Ok(RemoteEhr {
            base: base.trim_end_matches('/').to_string(),
            credentials,
            scope: scope.to_string(),
            http,
            token: Mutex::new(None),
            max_response_bytes: options.max_response_bytes,
            observer: None,
        })
    }

    /// Reports every call to `observer` from now on.
    pub fn observed_by(mut self, observer: CallObserver) -> RemoteEhr {
        self.observer = Some(observer);
        self
    }

    /// Tells the observer of a call that ended.
    async fn report(&self, call: RemoteCall) -> Result<(), RemoteError> {
        match &self.observer {
            Some(observer) => {
                let url = call.url.clone();
                observer(call).await.map_err(|e| RemoteError::NotAudited(url, e))
            }
            None => Ok(()),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `url` absolute, or relative to the FHIR base.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// GETs JSON, with the body capped at `ehr_max_response_bytes`.
    async fn get_json(&self, url: &str, token: Option<&str>) -> Result<(u16, Value), RemoteError> {
        self.send_json(url, token, None).await
    }

    /// GETs, or POSTs `body` (FHIR JSON), and reads a JSON answer capped at `ehr_max_response_bytes`.
    async fn send_json(
        &self,
        url: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(u16, Value), RemoteError> {
        {
            let mut circuits = circuits().lock().expect("circuits lock");
            let circuit = circuits.entry(self.base.clone()).or_default();
            match circuit.open_until {
                Some(until) if Instant::now() < until => return Err(RemoteError::CircuitOpen(self.base.clone())),
                Some(_) => circuit.open_until = None,
                None => {}
            }
        }
        let started = Instant::now();
        let mut attempt = 0;
        let mut last_status = None;
        let result = loop {
            let answer = self.send_once(url, token, body).await;
            last_status = match &answer {
                Ok((status, _)) => Some(*status),
                Err(Failed { error: RemoteError::Status { status, .. }, .. }) => Some(*status),
                Err(_) => last_status,
            };
            match answer {
                Ok(answer) => break Ok(answer),
                Err(Failed { error, retry_after }) if retryable(&error) && attempt < RETRIES => {
                    let wait = retry_after.map_or_else(|| backoff(attempt), |w| w.min(MAX_RETRY_AFTER));
                    tracing::debug!(%url, %error, ?wait, "retrying a remote call");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(Failed { error, .. }) => break Err(error),
            }
        };
        {
            let mut circuits = circuits().lock().expect("circuits lock");
            let circuit = circuits.entry(self.base.clone()).or_default();
            match &result {
                Ok(_) => circuit.failures = 0,
                Err(error) if retryable(error) => {
                    circuit.failures += 1;
                    if circuit.failures >= BREAKER_FAILURES {
                        circuit.open_until = Some(Instant::now() + BREAKER_OPEN_FOR);
                        circuit.failures = 0;
                    }
                }
                Err(_) => {}
            }
        }
        self.report(RemoteCall {
            method: if body.is_some() { "POST" } else { "GET" },
            url: url.to_string(),
            status: last_status,
            error: result.as_ref().err().map(ToString::to_string),
            attempts: attempt + 1,
            elapsed: started.elapsed(),
        })
        .await?;
        result
    }

    /// One attempt of [`send_json`](Self::send_json).
    async fn send_once(&self, url: &str, token: Option<&str>, body: Option<&Value>) -> Result<(u16, Value), Failed> {
        let mut request = match body {
            Some(body) => self.http.post(url).header("content-type", "application/fhir+json").body(body.to_string()),
            None => self.http.get(url),
        }
        .header("accept", "application/fhir+json, application/json");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.map_err(|e| transport_error(url, &e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let limit = self.max_response_bytes;
        if response.content_length().is_some_and(|length| length as usize > limit) {
            return Err(RemoteError::TooLarge(url.to_string(), limit).into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(url, &e))? {
            if body.len() + chunk.len() > limit {
                return Err(RemoteError::TooLarge(url.to_string(), limit).into());
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            let text = String::from_utf8_lossy(&body);
            let error = RemoteError::Status { url: url.to_string(), status, body: text.chars().take(300).collect() };
            return Err(Failed { error, retry_after });
        }
        let value =
            serde_json::from_slice(&body).map_err(|e| RemoteError::Malformed(url.to_string(), e.to_string()))?;
        Ok((status, value))
    }

    /// The remote's CapabilityStatement (`GET [base]/metadata`, which needs no token).
    pub async fn capability_statement(&self) -> Result<Value, RemoteError> {
        let url = self.url("metadata");
        let (_, statement) = self.get_json(&url, None).await?;
        if statement.get("resourceType").and_then(Value::as_str) != Some("CapabilityStatement") {
            return Err(RemoteError::Malformed(url, "not a CapabilityStatement".into()));
        }
        Ok(statement)
    }

    /// The remote's token endpoint, from its SMART configuration.
    pub async fn token_endpoint(&self) -> Result<String, RemoteError> {
        let url = self.url(".well-known/smart-configuration");
        let (_, configuration) = self.get_json(&url, None).await?;
        configuration
            .get("token_endpoint")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| RemoteError::Malformed(url, "no token_endpoint".into()))
    }

    /// A current access token (and the scope granted), fetched when there is none or it is
    /// about to expire; `None` for an open server.
    pub async fn access_token(&self) -> Result<Option<(String, String)>, RemoteError> {
        if matches!(self.credentials, Credentials::None) {
            return Ok(None);
        }
        if let Some(token) = self.token.lock().expect("token lock").as_ref()
            && Instant::now() < token.renew_at
        {
            return Ok(Some((token.value.clone(), token.scope.clone())));
        }
        let token_url = self.token_endpoint().await?;
        let started = Instant::now();
        let fail = |message: String| RemoteError::Auth(token_url.clone(), message);
        let uri = TokenUrl::new(token_url.clone()).map_err(|e| fail(e.to_string()))?;
        // The closure owns its client: a future borrowing `self` would not be `Send` for every
        // lifetime, as axum handlers need.
        let client = self.http.clone();
        let http = move |request: oauth2::HttpRequest| {
            let client = client.clone();
            async move {
                let request = reqwest::Request::try_from(request)?;
                let response = client.execute(request).await?;
                let mut builder = http::Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    builder = builder.header(name, value);
                }
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>(builder.body(body.to_vec()).expect("a response with a valid status"))
            }
        };
        let scopes = self.scope.split_whitespace().map(|s| Scope::new(s.to_string()));
        let granted = match &self.credentials {
            Credentials::None => unreachable!("handled above"),
            Credentials::ClientSecret { client_id, secret } => {
                let client = BasicClient::new(ClientId::new(client_id.clone()))
                    .set_client_secret(ClientSecret::new(secret.clone()))
                    .set_token_uri(uri);
                client.exchange_client_credentials().add_scopes(scopes).request_async(&http).await
            }
            Credentials::BackendServices { client_id, private_key_pem, algorithm, key_id } => {
                let assertion = sign_assertion(client_id, private_key_pem, *algorithm, key_id.as_deref(), &token_url)
                    .map_err(fail)?;
                let client = BasicClient::new(ClientId::new(client_id.clone())).set_token_uri(uri);
                client
                    .exchange_client_credentials()
                    .add_scopes(scopes)
                    .add_extra_param("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    .add_extra_param("client_assertion", assertion)
                    .request_async(&http)
                    .await
            }
        };
        let granted = granted.map_err(|e| fail(describe_token_error(&e)));
        self.report(RemoteCall {
            method: "POST",
            url: token_url.clone(),
            status: match &granted {
                Ok(_) => Some(200),
                Err(_) => None,
            },
            error: granted.as_ref().err().map(ToString::to_string),
            attempts: 1,
            elapsed: started.elapsed(),
        })
        .await?;
        let granted = granted?;
        let lifetime = granted.expires_in().unwrap_or(Duration::from_secs(300));
        let scope = granted
            .scopes()
            .map(|scopes| scopes.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| self.scope.clone());
        let value = granted.access_token().secret().clone();
        *self.token.lock().expect("token lock") = Some(Token {
            value: value.clone(),
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
            scope: scope.clone(),
        });
        Ok(Some((value, scope)))
    }

    /// GETs a FHIR path (or absolute URL) with the access token; on a 401 the token is fetched
    /// again once (it may have been revoked or the remote restarted).
    pub async fn get(&self, path: &str) -> Result<Value, RemoteError> {
        self.call(path, None).await
    }

    /// POSTs a resource (e.g. a transaction Bundle to the base, path ""), as [`get`](Self::get).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, RemoteError> {
        self.call(path, Some(body)).await
    }

    async fn call(&self, path: &str, body: Option<&Value>) -> Result<Value, RemoteError> {
        let url = if path.is_empty() { self.base.clone() } else { self.url(path) };
        let token = self.access_token().await?.map(|(token, _)| token);
        match self.send_json(&url, token.as_deref(), body).await {
            Err(RemoteError::Status { status: 401, .. }) if token.is_some() => {
                *self.token.lock().expect("token lock") = None;
                let token = self.access_token().await?.map(|(token, _)| token);
                Ok(self.send_json(&url, token.as_deref(), body).await?.1)
            }
            other => Ok(other?.1),
        }
    }
}

/// The RFC 6749 error of a failed token request, in words.
fn describe_token_error<RE: std::error::Error + 'static>(
    error: &oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> String {
    match error {
        oauth2::RequestTokenError::ServerResponse(response) => match response.error_description() {
            Some(description) => format!("{}: {description}", response.error()),
            None => response.error().to_string(),
        },
        oauth2::RequestTokenError::Request(e) => format!("the token request failed: {e}"),
        oauth2::RequestTokenError::Parse(e, _) => format!("the token response is not valid: {e}"),
        oauth2::RequestTokenError::Other(e) => e.clone(),
    }
}

/// A client assertion (RFC 7523, SMART Backend Services): iss = sub = the client, aud = the
/// token endpoint, a fresh jti, expiring in five minutes.
pub fn sign_assertion(
    client_id: &str,
    private_key_pem: &str,
    algorithm: jsonwebtoken::Algorithm,
    key_id: Option<&str>,
    token_url: &str,
) -> Result<String, String> {
    let key = encoding_key(private_key_pem, algorithm)?;
    let mut header = jsonwebtoken::Header::new(algorithm);
    header.kid = key_id.map(str::to_string);
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": client_id, "sub": client_id, "aud": token_url,
        "jti": crate::auth::secrets::random_token(16), "iat": now, "exp": now + ASSERTION_LIFETIME_SECS,
    });
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("the client assertion could not be signed: {e}"))
}

/// The signing key of a PEM private key for `algorithm` (RS384: RSA; ES384: P-384).
pub fn encoding_key(
    private_key_pem: &str,
    algorithm: jsonwebtoken::Algorithm,
) -> Result<jsonwebtoken::EncodingKey, String> {
    match algorithm {
        jsonwebtoken::Algorithm::RS384 => jsonwebtoken::EncodingKey::from_rsa_pem(private_key_pem.as_bytes()),
        jsonwebtoken::Algorithm::ES384 => jsonwebtoken::EncodingKey::from_ec_pem(private_key_pem.as_bytes()),
        other => return Err(format!("{other:?} is not offered; use RS384 or ES384")),
    }
    .map_err(|e| format!("the private key is not a {algorithm:?} key in PEM: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn assertions_name_the_client_and_the_token_endpoint_and_expire_in_five_minutes() {
        use p384::pkcs8::{EncodePrivateKey, LineEnding};
        let key = p384::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let token_url = "https://ehr.example/auth/token";
        let jwt = sign_assertion("kiln-at-ehr", &pem, jsonwebtoken::Algorithm::ES384, Some("k1"), token_url).unwrap();
        let part = |i: usize| -> Value {
            let bytes =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(i).unwrap()).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        };
        assert_eq!((part(0)["alg"].as_str(), part(0)["kid"].as_str()), (Some("ES384"), Some("k1")));
        let claims = part(1);
        assert_eq!((claims["iss"].as_str(), claims["sub"].as_str()), (Some("kiln-at-ehr"), Some("kiln-at-ehr")));
        assert_eq!(claims["aud"], token_url);
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
        let again = sign_assertion("kiln-at-ehr", &pem, jsonwebtoken::Algorithm::ES384, None, token_url).unwrap();
        assert_ne!(again, jwt, "each assertion has its own jti");
    }

    #[test]
    fn keys_must_fit_the_algorithm() {
        assert!(encoding_key("not a key", jsonwebtoken::Algorithm::RS384).is_err());
        assert!(encoding_key("x", jsonwebtoken::Algorithm::HS256).unwrap_err().contains("RS384 or ES384"));
    }

    #[tokio::test]
    async fn a_remote_failing_five_calls_in_a_row_is_paused_without_being_called() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let hits = Arc::new(AtomicU32::new(0));
        let counter = hits.clone();
        let down = axum::Router::new().fallback(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "down for maintenance")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/fhir", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, down).await.unwrap() });
        let remote = RemoteEhr::new(&base, Credentials::None, "", &ClientOptions::default()).unwrap();
        for _ in 0..BREAKER_FAILURES {
            let answer = remote.get("Patient").await;
            assert!(matches!(answer, Err(RemoteError::Status { status: 503, .. })), "{answer:?}");
        }
        let tried = BREAKER_FAILURES * (RETRIES + 1);
        assert_eq!(hits.load(Ordering::SeqCst), tried, "each call was tried, then retried three times");
        let paused = remote.get("Patient").await;
        assert!(matches!(paused, Err(RemoteError::CircuitOpen(_))), "{paused:?}");
        assert_eq!(hits.load(Ordering::SeqCst), tried, "the paused remote was not called");
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let credentials = Credentials::ClientSecret { client_id: "c".into(), secret: "hunter2".into() };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
