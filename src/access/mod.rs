//! Who is asking: the `Principal` every request becomes, and the tenant (clinic) it acts in.
//! A request becomes a principal from its SMART access token (or, only with
//! `open_access_for_development`, from no token at all); `policy` decides what it may do.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use std::fmt;
use std::sync::Arc;

use crate::app::AppState;
use crate::auth::scopes::ScopeSet;
use crate::auth::tokens::AccessClaims;
use crate::error::FhirError;

pub mod assignments;
pub mod consent;
pub mod policy;
pub mod rate_limit;
pub mod roles;

/// A tenant (clinic) id. Every stored resource belongs to exactly one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// Tenant ids follow the FHIR id pattern, so they can also name the clinic's Organization.
    pub fn parse(value: &str) -> Result<TenantId, String> {
        if crate::fhir::is_valid_id(value) {
            Ok(TenantId(value.into()))
        } else {
            Err(format!("'{value}' is not a valid tenant id (letters, digits, '-' and '.', at most 64)"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the principal was established.
#[derive(Debug, Clone)]
pub enum PrincipalKind {
    /// No token, and `open_access_for_development` is on: the default tenant, full access.
    DefaultTenant,
    /// A verified SMART access token.
    Token(Arc<Grant>),
}

/// What a verified access token allows: its claims and parsed scopes.
#[derive(Debug)]
pub struct Grant {
    pub claims: Arc<AccessClaims>,
    pub scopes: ScopeSet,
    /// For a user whose role reaches only assigned patients: those patients (looked up from
    /// the care relationship when the request arrived). `None`: no such limit, or the glass
    /// is broken for this request.
    pub assigned: Option<Arc<[String]>>,
}

/// The caller of a request, as the access policy and the store see it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub kind: PrincipalKind,
}

impl Principal {
    /// Who the server itself acts as in-process (imports, the demo loader).
    pub fn system(tenant: TenantId) -> Principal {
        Principal { tenant, kind: PrincipalKind::DefaultTenant }
    }

    pub fn grant(&self) -> Option<&Grant> {
        match &self.kind {
            PrincipalKind::Token(grant) => Some(grant),
            PrincipalKind::DefaultTenant => None,
        }
    }
}

/// The bearer token of a request (RFC 6750 §2.1), if it sent one.
fn bearer(parts: &Parts) -> Result<Option<&str>, FhirError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| FhirError::InvalidToken("the Authorization header is not text".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(FhirError::InvalidToken("the Authorization header must be 'Bearer <access token>'".into())),
    }
}

/// The assigned patients of a user whose role is limited to them (`assigned_patients_roles`),
/// unless the request breaks the glass (the consent layer checks the role may, and audits it).
async fn assigned_patients(
    parts: &Parts,
    state: &AppState,
    tenant: &TenantId,
    claims: &AccessClaims,
) -> Result<Option<Arc<[String]>>, FhirError> {
    let Some(role) = claims.role.as_deref() else { return Ok(None) };
    let broke_the_glass =
        parts.headers.contains_key(consent::BREAK_GLASS_HEADER) || claims.break_glass_reason.is_some();
    if !state.settings.assigned_patients_only(role) || broke_the_glass {
        return Ok(None);
    }
    match claims.fhir_user.as_deref() {
        Some(clinician) if clinician.starts_with("Practitioner/") => {
            Ok(Some(state.assignments.patients_of(&state.store, tenant, clinician).await?))
        }
        // Without a Practitioner record there is no care relationship: no patient is assigned.
        _ => Ok(Some(Arc::from([]))),
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = FhirError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = match bearer(parts)? {
            Some(token) => {
                let claims =
                    state.auth.verify_access_token(&state.store, token).await.map_err(FhirError::InvalidToken)?;
                let scopes = ScopeSet::parse(&claims.scope)
                    .map_err(|e| FhirError::InvalidToken(format!("the token's scope is unreadable: {e}")))?;
                let tenant = TenantId::parse(&claims.tenant).map_err(FhirError::InvalidToken)?;
                let assigned = assigned_patients(parts, state, &tenant, &claims).await?;
                Principal { tenant, kind: PrincipalKind::Token(Arc::new(Grant { claims, scopes, assigned })) }
            }
            None if state.settings.open_access_for_development => {
                Principal { tenant: state.default_tenant.clone(), kind: PrincipalKind::DefaultTenant }
            }
            None => {
                return Err(FhirError::Unauthorized(
                    "this request needs an access token (Authorization: Bearer …)".into(),
                ));
            }
        };
        // Batch and transaction entries are answered in-process with the same principal.
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}
