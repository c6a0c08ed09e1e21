//! Rate limits per client address, per app and per user (token buckets, GCRA): a caller over
//! its limit is answered 429 with `Retry-After` and an OperationOutcome. Limits are kept per
//! server process (node): with several nodes behind a load balancer a caller may reach each
//! node's limit.

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use super::{Principal, PrincipalKind};
use crate::app::AppState;
use crate::error::FhirError;

/// The three limiters; a limit of 0 requests per second turns one off.
pub struct RateLimits {
    /// Made once: making a clock calibrates it, far too slow for every request.
    clock: DefaultClock,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_client: Option<DefaultKeyedRateLimiter<Arc<str>>>,
    per_user: Option<DefaultKeyedRateLimiter<Arc<str>>>,
}

/// A quota of `per_second` requests, with bursts of twice as many.
fn quota(per_second: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    pub fn new(ip_per_second: u32, client_per_second: u32, user_per_second: u32) -> RateLimits {
        RateLimits {
            clock: DefaultClock::default(),
            per_ip: quota(ip_per_second).map(RateLimiter::keyed),
            per_client: quota(client_per_second).map(RateLimiter::keyed),
            per_user: quota(user_per_second).map(RateLimiter::keyed),
        }
    }

    /// Forgets callers whose buckets are full again (keeps memory bounded by recent callers).
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
        }
        for limiter in [&self.per_client, &self.per_user].into_iter().flatten() {
            limiter.retain_recent();
        }
    }

    /// Whether one more request of this caller is within every limit; else how long to wait.
    pub fn check(&self, ip: Option<IpAddr>, client: Option<&str>, user: Option<&str>) -> Result<(), u64> {
        let wait = |not_until: governor::NotUntil<_>| not_until.wait_time_from(self.clock.now()).as_secs().max(1);
        if let (Some(limiter), Some(ip)) = (&self.per_ip, ip) {
            limiter.check_key(&ip).map_err(wait)?;
        }
        if let (Some(limiter), Some(client)) = (&self.per_client, client) {
            limiter.check_key(&Arc::from(client)).map_err(wait)?;
        }
        if let (Some(limiter), Some(user)) = (&self.per_user, user) {
            limiter.check_key(&Arc::from(user)).map_err(wait)?;
        }
        Ok(())
    }
}

/// [`limit`] for the routes outside the FHIR API (sign-in, token, registration, …); the FHIR
/// API applies [`limit`] inside its audit layer, so that refusals are audited.
pub async fn limit_outside_fhir(state: State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/fhir" || path.starts_with("/fhir/") {
        return next.run(request).await;
    }
    limit(state, request, next).await
}

/// The middleware: every request counts against its address; a request with a valid token also
/// against its app and its user. (A request whose token is not valid is refused later anyway;
/// it still counts against its address.)
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let (mut parts, body) = request.into_parts();
    let principal = match parts.extensions.get::<Principal>() {
        Some(principal) => Some(principal.clone()),
        None if parts.headers.contains_key(axum::http::header::AUTHORIZATION) => {
            Principal::from_request_parts(&mut parts, &state).await.ok()
        }
        None => None,
    };
    let (client, user) = match principal.as_ref().map(|p| &p.kind) {
        Some(PrincipalKind::Token(grant)) => {
            let claims = &grant.claims;
            let user = (claims.sub != claims.client_id).then_some(claims.sub.as_str());
            (Some(claims.client_id.as_str()), user)
        }
        _ => (None, None),
    };
    if let Err(retry_after_seconds) = state.rate_limits.check(ip, client, user) {
        tracing::info!(?ip, client, user, "rate limit reached");
        return FhirError::TooManyRequests { retry_after_seconds }.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_the_caller_waits() {
        let limits = RateLimits::new(5, 0, 0);
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..10 {
            assert!(limits.check(Some(ip), None, None).is_ok());
        }
        assert_eq!(limits.check(Some(ip), None, None), Err(1));
        let other: IpAddr = "10.1.2.4".parse().unwrap();
        assert!(limits.check(Some(other), None, None).is_ok(), "each address has its own bucket");
    }

    #[test]
    fn apps_and_users_have_their_own_limits_and_zero_turns_one_off() {
        let limits = RateLimits::new(0, 2, 1);
        assert!(limits.check(None, Some("app"), Some("u1")).is_ok());
        assert!(limits.check(None, Some("app"), Some("u1")).is_ok());
        assert!(limits.check(None, Some("app"), Some("u1")).is_err(), "the user's burst of 2 is used up");
        assert!(limits.check(None, Some("app"), Some("u2")).is_ok());
        assert!(limits.check(None, Some("app"), Some("u3")).is_err(), "the app's burst of 4 is used up");
        for _ in 0..100 {
            assert!(limits.check(Some("10.0.0.1".parse().unwrap()), None, None).is_ok(), "no address limit");
        }
    }
}
