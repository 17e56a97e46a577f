//! Per-client rate limits on the OAuth endpoints.
//!
//! Client secrets are passwords (OAuth 2.1 §2.4.1 asks for brute-force protection), open
//! registration invites floods, and every authorization request writes to the database. Each
//! endpoint gets its own limit per client IP address (GCRA, via the `governor` crate): a burst
//! of `requests`, refilled evenly over `period`. Over the limit: 429 with `Retry-After` and an
//! OAuth-style JSON body.
//!
//! The client address is the TCP peer, unless the peer is one of the configured trusted proxies:
//! then it is the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
//! (left-most entries are whatever the client chose to send).

use std::{
    future::{Ready, ready},
    net::IpAddr,
    num::NonZeroU32,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use actix_web::{
    Error, HttpResponse,
    body::EitherBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::header,
};
use futures_util::future::LocalBoxFuture;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

/// How often (in checked requests) idle client entries are dropped, keeping memory bounded by
/// the clients active within one period.
const CLEANUP_EVERY: u64 = 4096;

/// A limit: at most `requests` in a burst, refilled evenly over `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Burst size (and the number of requests allowed per `period`).
    pub requests: u32,
    /// The time over which the burst refills.
    pub period: Duration,
}

impl Limit {
    /// `requests` per `period`.
    pub const fn new(requests: u32, period: Duration) -> Self {
        Self { requests, period }
    }

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.requests)?;
        Quota::with_period(self.period / self.requests).map(|q| q.allow_burst(burst))
    }
}

/// The rate limits of proxy mode's OAuth endpoints.
///
/// Defaults (per client IP): registration 30 per hour; authorization and consent 120 per 15
/// minutes each; token and revocation 300 per 15 minutes each.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RateLimits {
    pub(crate) enabled: bool,
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) register: Limit,
    pub(crate) authorize: Limit,
    pub(crate) consent: Limit,
    pub(crate) token: Limit,
    pub(crate) revoke: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        const MIN: u64 = 60;
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            register: Limit::new(30, Duration::from_secs(60 * MIN)),
            authorize: Limit::new(120, Duration::from_secs(15 * MIN)),
            consent: Limit::new(120, Duration::from_secs(15 * MIN)),
            token: Limit::new(300, Duration::from_secs(15 * MIN)),
            revoke: Limit::new(300, Duration::from_secs(15 * MIN)),
        }
    }
}

impl RateLimits {
    /// No limits at all (benchmarks, or when a gateway in front already limits).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// Sets the limit of `/register`.
    pub fn register(mut self, limit: Limit) -> Self {
        self.register = limit;
        self
    }

    /// Sets the limit of `/authorize`.
    pub fn authorize(mut self, limit: Limit) -> Self {
        self.authorize = limit;
        self
    }

    /// Sets the limit of `/consent`.
    pub fn consent(mut self, limit: Limit) -> Self {
        self.consent = limit;
        self
    }

    /// Sets the limit of `/token`.
    pub fn token(mut self, limit: Limit) -> Self {
        self.token = limit;
        self
    }

    /// Sets the limit of `/revoke`.
    pub fn revoke(mut self, limit: Limit) -> Self {
        self.revoke = limit;
        self
    }

    /// Whether limits apply.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Reverse proxies whose `X-Forwarded-For` is believed (by default none: the TCP peer is the
    /// client).
    pub fn trusted_proxies(mut self, proxies: Vec<IpAddr>) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The middleware enforcing `limit` (a pass-through when limits are off, or when `limit`
    /// is zero requests, which would make no sense).
    pub(crate) fn middleware(&self, limit: Limit) -> RateLimit {
        let limiter = self
            .enabled
            .then(|| limit.quota())
            .flatten()
            .map(RateLimiter::keyed);
        RateLimit {
            inner: Arc::new(Inner {
                limiter,
                trusted: self.trusted_proxies.clone(),
                checks: AtomicU64::new(0),
            }),
        }
    }
}

struct Inner {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted: Vec<IpAddr>,
    checks: AtomicU64,
}

impl Inner {
    /// `Err(seconds to wait)` when `ip` is over the limit.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            limiter.retain_recent();
        }
        limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

/// The client's address: the peer, or behind trusted proxies the right-most untrusted
/// `X-Forwarded-For` entry.
pub(crate) fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[IpAddr],
) -> Option<IpAddr> {
    let peer = peer?;
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let hops = forwarded_for.unwrap_or_default().rsplit(',');
    for hop in hops {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return Some(ip),
            // A malformed entry: stop trusting the chain there.
            Err(_) => break,
        }
    }
    Some(peer)
}

/// Middleware limiting one endpoint.
#[derive(Clone)]
pub(crate) struct RateLimit {
    inner: Arc<Inner>,
}

impl<S, B> Transform<S, ServiceRequest> for RateLimit
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = RateLimitMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RateLimitMiddleware {
            service: Rc::new(service),
            inner: self.inner.clone(),
        }))
    }
}

/// The service produced by [`RateLimit`].
pub(crate) struct RateLimitMiddleware<S> {
    service: Rc<S>,
    inner: Arc<Inner>,
}

impl<S, B> Service<ServiceRequest> for RateLimitMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let forwarded = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let ip = client_ip(
            req.peer_addr().map(|a| a.ip()),
            forwarded,
            &self.inner.trusted,
        );
        let verdict = ip.map_or(Ok(()), |ip| self.inner.check(ip));
        match verdict {
            Ok(()) => {
                let service = self.service.clone();
                Box::pin(async move { service.call(req).await.map(|r| r.map_into_left_body()) })
            }
            Err(wait) => {
                tracing::info!(client = ?ip, path = %req.path(), "rate limit exceeded");
                let response = too_many_requests(wait);
                Box::pin(async move { Ok(req.into_response(response).map_into_right_body()) })
            }
        }
    }
}

fn too_many_requests(wait_secs: u64) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, wait_secs.max(1).to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": "too many requests from this address; retry later",
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        let trusted = [ip("10.0.0.1")];
        assert_eq!(
            client_ip(Some(ip("203.0.113.9")), Some("1.2.3.4"), &trusted),
            Some(ip("203.0.113.9")),
            "X-Forwarded-For from an untrusted peer is ignored"
        );
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.1")),
                Some("6.6.6.6, 198.51.100.7"),
                &trusted
            ),
            Some(ip("198.51.100.7")),
            "the right-most untrusted hop; the spoofable left part is ignored"
        );
        assert_eq!(
            client_ip(
                Some(ip("10.0.0.1")),
                Some("198.51.100.7, 10.0.0.1"),
                &trusted
            ),
            Some(ip("198.51.100.7"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), Some("garbage"), &trusted),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client_ip(Some(ip("10.0.0.1")), None, &trusted),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let limits = RateLimits::default();
        let limit = limits.middleware(Limit::new(3, Duration::from_secs(3600)));
        let client = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(limit.inner.check(client).is_ok());
        }
        let wait = limit.inner.check(client).unwrap_err();
        assert!((1..=1200).contains(&wait), "{wait}");
        assert!(limit.inner.check(ip("192.0.2.2")).is_ok(), "per client");
        let off = RateLimits::disabled().middleware(Limit::new(1, Duration::from_secs(3600)));
        for _ in 0..10 {
            assert!(off.inner.check(client).is_ok());
        }
    }
}
