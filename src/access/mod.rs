//! Who is asking: the `Principal` every request becomes, and the tenant (clinic) it acts in.
//! Until SMART authorization lands, every request runs as the configured default tenant; the
//! plumbing that carries a principal from the request to the store is already in place.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::fmt;
use std::sync::Arc;

use crate::app::AppState;
use crate::error::FhirError;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// No authentication is configured: the server's default tenant, full access.
    DefaultTenant,
}

/// The caller of a request, as the access policy and the store see it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub tenant: TenantId,
    pub kind: PrincipalKind,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = FhirError;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Principal { tenant: state.default_tenant.clone(), kind: PrincipalKind::DefaultTenant })
    }
}
