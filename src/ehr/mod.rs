//! EHR linking (issue: EHR linking, docs/ehr.md): other EHRs' FHIR APIs, each registered as a
//! FHIR `Endpoint` of the clinic (connectionType `hl7-fhir-rest`) with its credential kept
//! apart and sealed (`ehr_connections`), and Kiln as their FHIR client (`client`), each call it
//! makes audited (`audit`). Registered and checked by `kiln ehr add|list|test` or by
//! `$ehr-register` and `$ehr-test` (`register`); `$ehr-link` (`link`), `$ehr-pull` (`pull`),
//! `$ehr-push` (`push`), background sync (`sync`, `kiln ehr sync`).

use serde_json::{Value, json};

use crate::access::TenantId;
use crate::app::AppState;
use crate::sensitive::EHR_SECRET_CONTEXT;
use crate::store::EhrConnection;

pub mod audit;
pub mod client;
pub mod link;
pub mod pull;
pub mod push;
pub mod register;
pub mod sync;

pub use audit::Caller;
pub use client::{Credentials, RemoteEhr, RemoteError};

/// The `endpoint` parameter of an EHR operation (`Endpoint/[id]` as a Reference or a string),
/// as the Endpoint id.
pub fn endpoint_parameter(input: &crate::rest::operation::OperationInput) -> Option<String> {
    input
        .parameter("endpoint")
        .and_then(|p| p.pointer("/valueReference/reference").or(p.get("valueString")))
        .and_then(Value::as_str)
        .map(|e| e.trim_start_matches("Endpoint/").to_string())
}

/// [`endpoint_parameter`], required.
pub fn required_endpoint(input: &crate::rest::operation::OperationInput) -> Result<String, crate::error::FhirError> {
    endpoint_parameter(input).ok_or_else(|| {
        crate::error::FhirError::bad_request(
            crate::error::IssueType::Required,
            "name the remote: 'endpoint' (Endpoint/[id])",
        )
    })
}

/// How to sign in to a remote being registered.
pub enum NewCredentials {
    BackendServices {
        client_id: String,
        private_key_pem: String,
        algorithm: jsonwebtoken::Algorithm,
        key_id: Option<String>,
    },
    ClientSecret {
        client_id: String,
        secret: String,
    },
    None,
}

/// The parts of a credential, as the command line and `$ehr-register` take them.
#[derive(Debug, Default)]
pub struct CredentialParts {
    /// `backend-services`, `client-secret` or `none`.
    pub auth: String,
    pub client_id: Option<String>,
    pub private_key_pem: Option<String>,
    /// `RS384` (the default) or `ES384`.
    pub algorithm: Option<String>,
    pub key_id: Option<String>,
    pub client_secret: Option<String>,
}

impl CredentialParts {
    /// The credential the parts describe, or what is missing or wrong.
    pub fn credentials(self) -> Result<NewCredentials, String> {
        let auth = self.auth;
        let client_id = || self.client_id.clone().ok_or_else(|| format!("{auth} needs a client id"));
        match auth.as_str() {
            "backend-services" => {
                let algorithm = match self.algorithm.as_deref().unwrap_or("RS384") {
                    "RS384" => jsonwebtoken::Algorithm::RS384,
                    "ES384" => jsonwebtoken::Algorithm::ES384,
                    other => return Err(format!("the algorithm {other} is not offered: use RS384 or ES384")),
                };
                Ok(NewCredentials::BackendServices {
                    client_id: client_id()?,
                    private_key_pem: self.private_key_pem.clone().ok_or("backend-services needs a private key")?,
                    algorithm,
                    key_id: self.key_id.clone(),
                })
            }
            "client-secret" => Ok(NewCredentials::ClientSecret {
                client_id: client_id()?,
                secret: self.client_secret.clone().ok_or("client-secret needs the secret")?,
            }),
            "none" => Ok(NewCredentials::None),
            other => Err(format!("auth {other}: use backend-services, client-secret or none")),
        }
    }
}

/// A remote EHR to register.
pub struct NewRemote {
    pub name: String,
    /// The remote FHIR base URL.
    pub address: String,
    pub credentials: NewCredentials,
    /// The scopes asked for (e.g. `system/*.rs`).
    pub scope: String,
    /// The Organization that runs the remote, as a reference (`Organization/…`).
    pub managing_organization: Option<String>,
    /// Re-pull the linked patients this often (seconds), when set.
    pub sync_every_secs: Option<i64>,
    /// PEM CA certificates to trust for this remote besides the system's roots (a private CA).
    pub ca_certificates: Option<String>,
}

fn algorithm_name(algorithm: jsonwebtoken::Algorithm) -> &'static str {
    match algorithm {
        jsonwebtoken::Algorithm::ES384 => "ES384",
        _ => "RS384",
    }
}

/// Registers a remote: an Endpoint resource in the clinic, and its sealed credential. Answers
/// the Endpoint's id.
pub async fn add(state: &AppState, tenant: &TenantId, remote: NewRemote) -> Result<String, String> {
    let address = reqwest::Url::parse(&remote.address).map_err(|e| format!("the address is not a URL: {e}"))?;
    if !matches!(address.scheme(), "http" | "https") {
        return Err("the address must be an http(s) FHIR base URL".into());
    }
    if let Some(pem) = &remote.ca_certificates {
        client::parse_roots(pem)?;
    }
    if remote.sync_every_secs.is_some_and(|s| s < 60) {
        return Err("a sync schedule must be at least 60 seconds apart".into());
    }
    if remote.scope.split_whitespace().next().is_none() && !matches!(remote.credentials, NewCredentials::None) {
        return Err("name the scopes to ask the remote for (e.g. system/*.rs)".into());
    }
    let sensitive = &state.sensitive;
    let (auth, client_id, secret_sealed, algorithm, key_id) = match &remote.credentials {
        NewCredentials::BackendServices { client_id, private_key_pem, algorithm, key_id } => {
            client::encoding_key(private_key_pem, *algorithm)?;
            let sealed = sensitive.seal_secret(private_key_pem, EHR_SECRET_CONTEXT);
            let name = algorithm_name(*algorithm).to_string();
            ("backend-services", Some(client_id.clone()), Some(sealed), Some(name), key_id.clone())
        }
        NewCredentials::ClientSecret { client_id, secret } => {
            let sealed = sensitive.seal_secret(secret, EHR_SECRET_CONTEXT);
            ("client-secret", Some(client_id.clone()), Some(sealed), None, None)
        }
        NewCredentials::None => ("none", None, None, None, None),
    };
    let mut endpoint = json!({
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "hl7-fhir-rest"},
        "name": remote.name,
        "payloadType": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "any"}]}],
        "payloadMimeType": ["application/fhir+json"],
        "address": address.as_str().trim_end_matches('/'),
    });
    if let Some(organization) = &remote.managing_organization {
        endpoint["managingOrganization"] = json!({"reference": organization});
    }
    let definition = state.registry.resource("Endpoint").ok_or("Endpoint is not served")?;
    let bytes = endpoint.to_string().into_bytes();
    let (mut body, mut value) = crate::rest::parse_for_write(state, definition, &bytes).map_err(|e| e.to_string())?;
    let id = crate::rest::new_id();
    let mut transaction = state.store.begin(tenant).await.map_err(|e| e.to_string())?;
    crate::rest::store_resource(
        state,
        &mut *transaction,
        "Endpoint",
        &id,
        &mut body,
        &mut value,
        crate::rest::WriteMode::Create,
    )
    .await
    .map_err(|e| e.to_string())?;
    let connection = EhrConnection {
        endpoint_id: id.clone(),
        auth: auth.to_string(),
        client_id,
        secret_sealed,
        algorithm,
        key_id,
        scope: remote.scope,
        created_at: chrono::Utc::now().timestamp(),
        sync_every_secs: remote.sync_every_secs,
        ca_certificates: remote.ca_certificates,
    };
    // One transaction: an Endpoint without its credentials (or the reverse) is never left behind.
    transaction.put_ehr_connection(&connection).await.map_err(|e| e.to_string())?;
    transaction.commit().await.map_err(|e| e.to_string())?;
    Ok(id)
}

/// A registered remote: its connection and its Endpoint resource.
pub struct Registered {
    pub connection: EhrConnection,
    pub endpoint: Value,
}

impl Registered {
    pub fn address(&self) -> &str {
        self.endpoint.get("address").and_then(Value::as_str).unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.endpoint.get("name").and_then(Value::as_str).unwrap_or_default()
    }
}

/// Every registered remote of the clinic.
pub async fn list(state: &AppState, tenant: &TenantId) -> Result<Vec<Registered>, String> {
    let mut registered = Vec::new();
    for connection in state.store.ehr_connections(tenant).await.map_err(|e| e.to_string())? {
        let record =
            state.store.read_current(tenant, "Endpoint", &connection.endpoint_id).await.map_err(|e| e.to_string())?;
        let Some(json) = record.filter(|r| !r.deleted).and_then(|r| r.json) else { continue };
        let endpoint = serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        registered.push(Registered { connection, endpoint });
    }
    Ok(registered)
}

/// The client of a registered remote, its credential opened, each of its calls audited as
/// made on behalf of `caller`.
pub async fn connect(state: &AppState, caller: &Caller, endpoint_id: &str) -> Result<(Registered, RemoteEhr), String> {
    let registered = list(state, &caller.tenant)
        .await?
        .into_iter()
        .find(|r| r.connection.endpoint_id == endpoint_id)
        .ok_or_else(|| format!("no remote EHR is registered as Endpoint/{endpoint_id}"))?;
    let connection = &registered.connection;
    let secret = match &connection.secret_sealed {
        Some(sealed) => Some(state.sensitive.open_secret(sealed, EHR_SECRET_CONTEXT).map_err(|e| e.to_string())?),
        None => None,
    };
    let client_id = connection.client_id.clone().unwrap_or_default();
    let credentials = match (connection.auth.as_str(), secret) {
        ("backend-services", Some(private_key_pem)) => Credentials::BackendServices {
            client_id,
            private_key_pem,
            algorithm: match connection.algorithm.as_deref() {
                Some("ES384") => jsonwebtoken::Algorithm::ES384,
                _ => jsonwebtoken::Algorithm::RS384,
            },
            key_id: connection.key_id.clone(),
        },
        ("client-secret", Some(secret)) => Credentials::ClientSecret { client_id, secret },
        _ => Credentials::None,
    };
    let options = state.settings.ehr_client_options(connection.ca_certificates.clone());
    let remote = RemoteEhr::new(registered.address(), credentials, &connection.scope, &options)?
        .observed_by(audit::observer(state, caller, endpoint_id, registered.name(), registered.address()));
    Ok((registered, remote))
}

/// What `kiln ehr test` found, one line per check.
#[derive(Debug, Default)]
pub struct TestReport {
    pub lines: Vec<String>,
    pub passed: bool,
}

/// Checks a remote end to end: its CapabilityStatement (FHIR version, what it supports), its
/// SMART configuration, a token, and a search with that token.
pub async fn test(remote: &RemoteEhr) -> TestReport {
    let mut report = TestReport { lines: Vec::new(), passed: true };
    let fail = |report: &mut TestReport, line: String| {
        report.lines.push(line);
        report.passed = false;
    };
    match remote.capability_statement().await {
        Ok(statement) => {
            let resources =
                statement.pointer("/rest/0/resource").and_then(Value::as_array).cloned().unwrap_or_default();
            let supports = |type_name: &str, interaction: &str| {
                resources.iter().any(|r| {
                    r["type"] == type_name
                        && r["interaction"].as_array().is_some_and(|i| i.iter().any(|i| i["code"] == interaction))
                })
            };
            let everything =
                resources.iter().any(|r| r["type"] == "Patient" && r["operation"].to_string().contains("everything"));
            let transaction =
                statement.pointer("/rest/0/interaction").is_some_and(|i| i.to_string().contains("transaction"));
            report.lines.push(format!(
                "metadata: FHIR {}, {} {}, {} resource types; Patient search {}, $everything {}, transaction {}",
                statement["fhirVersion"].as_str().unwrap_or("?"),
                statement.pointer("/software/name").and_then(Value::as_str).unwrap_or("unknown software"),
                statement.pointer("/software/version").and_then(Value::as_str).unwrap_or(""),
                resources.len(),
                if supports("Patient", "search-type") { "yes" } else { "no" },
                if everything { "yes" } else { "no" },
                if transaction { "yes" } else { "no" },
            ));
        }
        Err(e) => fail(&mut report, format!("metadata: FAILED: {e}")),
    }
    match remote.access_token().await {
        Ok(Some((_, scope))) => report.lines.push(format!("token: granted \"{scope}\"")),
        Ok(None) => report.lines.push("token: none needed (no credential registered)".into()),
        Err(e) => fail(&mut report, format!("token: FAILED: {e}")),
    }
    if report.passed {
        match remote.get("Patient?_count=1&_total=accurate").await {
            Ok(bundle) => report.lines.push(format!(
                "search: Patient answered ({} patients)",
                bundle.get("total").map_or("?".to_string(), Value::to_string)
            )),
            Err(e) => fail(&mut report, format!("search: FAILED: {e}")),
        }
    }
    report
}
