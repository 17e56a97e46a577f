//! Rate limits on the OAuth endpoints of proxy mode.
//!
//! Open registration invites floods, every authorization request writes to the database, and
//! client secrets are passwords (OAuth 2.1 §2.4.1 asks for brute-force protection). Two kinds of
//! limit, both GCRA (the `governor` crate):
//!
//! * **per client address and endpoint**, sized to stop floods but never a hosted MCP client
//!   whose thousands of users share one egress address (see [`RateLimits`] for the arithmetic);
//!   over the limit: 429 with `Retry-After` and an OAuth-style JSON body;
//! * **per `client_id`, on failed client authentication** at `/token` and `/revoke`: the
//!   brute-force guard for client secrets, independent of the addresses an attacker uses.
//!
//! One set of limiters exists per provider ([`Limiters`], built once with it) and is shared by
//! every actix worker, so the configured numbers are the real ones whatever the worker count.
//!
//! The client address is the TCP peer, unless the peer is one of the configured trusted proxies:
//! then it is the right-most address of `X-Forwarded-For` that is not itself a trusted proxy
//! (left-most entries are whatever the client chose to send). IPv6 addresses are keyed by their
//! prefix (a /64 by default): one host usually owns a whole /64 and can rotate inside it.

use std::{
    future::{Ready, ready},
    hash::Hash,
    net::{IpAddr, Ipv6Addr},
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
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::keyed::DashMapStateStore,
};

/// How often (in checked requests) idle entries are dropped, keeping memory bounded by the keys
/// active within one refill of their burst.
const CLEANUP_EVERY: u64 = 4096;

/// A limit: a burst of `burst` requests, then one more every `interval` (GCRA).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    burst: u32,
    interval: Duration,
}

impl Limit {
    /// `requests` in a burst, refilled evenly over `period` (so `requests` per `period` in the
    /// long run).
    pub const fn new(requests: u32, period: Duration) -> Self {
        let interval = match period.checked_div(requests) {
            Some(interval) => interval,
            None => period,
        };
        Self {
            burst: requests,
            interval,
        }
    }

    /// A burst of `burst` requests, then a sustained `per_second` requests per second.
    pub const fn burst_then_per_second(burst: u32, per_second: u32) -> Self {
        let interval = match per_second {
            0 => Duration::from_secs(1),
            n => Duration::from_nanos(1_000_000_000 / n as u64),
        };
        Self { burst, interval }
    }

    /// The burst size.
    pub const fn burst(&self) -> u32 {
        self.burst
    }

    /// The time to earn one more request once the burst is spent.
    pub const fn interval(&self) -> Duration {
        self.interval
    }

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.burst)?;
        Quota::with_period(self.interval).map(|q| q.allow_burst(burst))
    }
}

/// The rate limits of proxy mode's OAuth endpoints.
///
/// Defaults, per client address (IPv6: per /64) and endpoint: a burst of 600, then
///
/// | endpoint | sustained | per hour |
/// |---|---|---|
/// | `/register` | 1/s | 3,600 |
/// | `/authorize` | 5/s | 18,000 |
/// | `/consent` | 10/s | 36,000 |
/// | `/token` | 10/s | 36,000 |
/// | `/revoke` | 10/s | 36,000 |
///
/// Why: a hosted MCP client serves thousands of users from a few egress addresses. Each user
/// registers about once, logs in once (one `/authorize`, a `/consent` view and post) and
/// refreshes about once per access-token lifetime (1 h by default), so one address with 10,000
/// active users needs about 3 token requests per second, far under 10/s; 500 registrations at
/// once fit in the burst. A flood at 100 requests/s from one address spends the burst in
/// 600 / (100 − 10) ≈ 7 s or less, and is then held to the sustained rate.
///
/// Failed client authentication is limited per `client_id`: 20 failures, then one per 30 s.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct RateLimits {
    pub(crate) enabled: bool,
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) ipv6_prefix: u8,
    pub(crate) register: Limit,
    pub(crate) authorize: Limit,
    pub(crate) consent: Limit,
    pub(crate) token: Limit,
    pub(crate) revoke: Limit,
    pub(crate) failed_client_auth: Limit,
}

/// Burst of every per-address default limit.
const DEFAULT_BURST: u32 = 600;

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            trusted_proxies: Vec::new(),
            ipv6_prefix: 64,
            register: Limit::burst_then_per_second(DEFAULT_BURST, 1),
            authorize: Limit::burst_then_per_second(DEFAULT_BURST, 5),
            consent: Limit::burst_then_per_second(DEFAULT_BURST, 10),
            token: Limit::burst_then_per_second(DEFAULT_BURST, 10),
            revoke: Limit::burst_then_per_second(DEFAULT_BURST, 10),
            failed_client_auth: Limit::new(20, Duration::from_secs(20 * 30)),
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

    /// Sets the limit of failed client authentications per `client_id` (at `/token` and
    /// `/revoke`). Once it is spent, every authentication of that client is refused with 429,
    /// right secret or not, until the limit refills.
    pub fn failed_client_auth(mut self, limit: Limit) -> Self {
        self.failed_client_auth = limit;
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

    /// IPv6 clients share one budget per prefix of this length (default 64; 1 to 128).
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    /// The limiters of one provider, shared by all its workers.
    pub(crate) fn build(&self) -> Limiters {
        let per_address = |limit: Limit| RateLimit {
            inner: Arc::new(Inner {
                bucket: self
                    .enabled
                    .then(|| Bucket::new(limit, DefaultClock::default()))
                    .flatten(),
                trusted: self.trusted_proxies.clone(),
                ipv6_prefix: self.ipv6_prefix,
            }),
        };
        Limiters {
            register: per_address(self.register),
            authorize: per_address(self.authorize),
            consent: per_address(self.consent),
            token: per_address(self.token),
            revoke: per_address(self.revoke),
            failed_client_auth: Arc::new(FailedClientAuth {
                bucket: self
                    .enabled
                    .then(|| Bucket::new(self.failed_client_auth, DefaultClock::default()))
                    .flatten(),
                locked: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(lock_ttl(self.failed_client_auth))
                    .build(),
            }),
        }
    }
}

/// Longest lock-out a [`FailedClientAuth`] can record: refilling the whole burst.
fn lock_ttl(limit: Limit) -> Duration {
    limit
        .interval
        .saturating_mul(limit.burst.max(1))
        .max(Duration::from_secs(1))
}

/// The limiters of one provider: built once, cloned into every worker's routes.
#[derive(Clone)]
pub(crate) struct Limiters {
    pub register: RateLimit,
    pub authorize: RateLimit,
    pub consent: RateLimit,
    pub token: RateLimit,
    pub revoke: RateLimit,
    pub failed_client_auth: Arc<FailedClientAuth>,
}

/// A GCRA limiter over keys `K` with its clock (a fake one in tests).
struct Bucket<K: Hash + Eq + Clone, C: Clock> {
    limiter: RateLimiter<K, DashMapStateStore<K>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> Bucket<K, C> {
    /// `None` for a zero-request limit (which would make no sense: treated as no limit).
    fn new(limit: Limit, clock: C) -> Option<Self> {
        let quota = limit.quota()?;
        Some(Self {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one request from `key`'s budget; `Err(wait)` when it is spent.
    fn check(&self, key: &K) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

/// Whole seconds to wait, rounded up, at least 1 (for `Retry-After`).
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The key of a client address: IPv4 as is (an IPv4-mapped IPv6 address is its IPv4 address),
/// IPv6 cut to its first `prefix` bits.
pub(crate) fn address_key(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u32::from(prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

struct Inner {
    bucket: Option<Bucket<IpAddr, DefaultClock>>,
    trusted: Vec<IpAddr>,
    ipv6_prefix: u8,
}

impl Inner {
    /// `Err(seconds to wait)` when `ip` is over the limit.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        bucket
            .check(&address_key(ip, self.ipv6_prefix))
            .map_err(retry_after_secs)
    }
}

/// The per-`client_id` guard on failed client authentication.
///
/// GCRA cannot be read without spending, so a spent budget is remembered as a lock-out
/// deadline: while it runs, authentication is refused before the secret is even compared (else
/// an attacker would still learn when a guess is right).
pub(crate) struct FailedClientAuth {
    bucket: Option<Bucket<String, DefaultClock>>,
    /// `client_id` → when its lock-out ends.
    locked: moka::sync::Cache<String, std::time::Instant>,
}

impl FailedClientAuth {
    /// `Err(seconds to wait)` while `client_id` is locked out.
    pub fn check(&self, client_id: &str) -> Result<(), u64> {
        match self.locked.get(client_id) {
            Some(until) => match until.checked_duration_since(std::time::Instant::now()) {
                Some(wait) if !wait.is_zero() => Err(retry_after_secs(wait)),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Records a failed authentication of `client_id`; `Err(seconds to wait)` when that spent
    /// its budget (the client is locked out from now on).
    pub fn record_failure(&self, client_id: &str) -> Result<(), u64> {
        let Some(bucket) = &self.bucket else {
            return Ok(());
        };
        bucket.check(&client_id.to_owned()).map_err(|wait| {
            self.locked
                .insert(client_id.to_owned(), std::time::Instant::now() + wait);
            tracing::warn!(
                client_id,
                "client authentication failures over the limit; locked out"
            );
            retry_after_secs(wait)
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
                let response = too_many_requests(wait, "too many requests from this address");
                Box::pin(async move { Ok(req.into_response(response).map_into_right_body()) })
            }
        }
    }
}

/// 429 with `Retry-After` and an OAuth-style body.
pub(crate) fn too_many_requests(wait_secs: u64, what: &str) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, wait_secs.max(1).to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": format!("{what}; retry later"),
        }))
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

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
        let limits = RateLimits::default().register(Limit::new(3, Duration::from_secs(3600)));
        let limiters = limits.build();
        let client = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(limiters.register.inner.check(client).is_ok());
        }
        let wait = limiters.register.inner.check(client).unwrap_err();
        assert!((1..=1200).contains(&wait), "{wait}");
        assert!(
            limiters.register.inner.check(ip("192.0.2.2")).is_ok(),
            "per client"
        );
        assert!(limiters.token.inner.check(client).is_ok(), "per endpoint");
        let off = RateLimits::disabled()
            .register(Limit::new(1, Duration::from_secs(3600)))
            .build();
        for _ in 0..10 {
            assert!(off.register.inner.check(client).is_ok());
        }
    }

    /// Sends `count` requests from one address, `gap` apart on a fake clock; returns how many
    /// passed and the (fake) time of the first refusal.
    fn send(limit: Limit, count: u32, gap: Duration) -> (u32, Option<Duration>) {
        let clock = FakeRelativeClock::default();
        let bucket: Bucket<IpAddr, _> = Bucket::new(limit, clock.clone()).unwrap();
        let client = ip("203.0.113.7");
        let (mut passed, mut first_refusal) = (0, None);
        for i in 0..count {
            match bucket.check(&client) {
                Ok(()) => passed += 1,
                Err(_) => {
                    first_refusal.get_or_insert(gap * i);
                }
            }
            clock.advance(gap);
        }
        (passed, first_refusal)
    }

    #[test]
    fn default_limits_let_shared_egress_through() {
        let limits = RateLimits::default();
        // 500 registrations from one address, all at once.
        assert_eq!(send(limits.register, 500, Duration::ZERO), (500, None));
        // 2,000 token requests from one address within three minutes (11 per second).
        let gap = Duration::from_secs(180) / 2000;
        assert_eq!(send(limits.token, 2000, gap), (2000, None));
        // Logins of 1,000 users within three minutes.
        let gap = Duration::from_secs(180) / 1000;
        assert_eq!(send(limits.authorize, 1000, gap), (1000, None));
        assert_eq!(send(limits.consent, 2000, gap / 2), (2000, None));
    }

    #[test]
    fn a_flood_is_throttled_within_seconds() {
        let limits = RateLimits::default();
        for (name, limit) in [
            ("register", limits.register),
            ("authorize", limits.authorize),
            ("consent", limits.consent),
            ("token", limits.token),
            ("revoke", limits.revoke),
        ] {
            // 100 requests per second for a minute.
            let (passed, first_refusal) = send(limit, 6000, Duration::from_millis(10));
            let first_refusal = first_refusal.unwrap_or_else(|| panic!("{name}: never throttled"));
            assert!(
                first_refusal <= Duration::from_secs(10),
                "{name}: throttled only after {first_refusal:?}"
            );
            // After the burst, the flood gets the sustained rate and no more.
            let sustained = 60 * (1_000_000_000 / limit.interval.as_nanos() as u32);
            assert!(
                passed <= limit.burst + sustained,
                "{name}: {passed} of 6000 passed"
            );
            assert!(passed < 6000 / 4, "{name}: {passed} of 6000 passed");
        }
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_prefix() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1"), 64),
            address_key(ip("2001:db8:1:2:ffff:eeee:dddd:cccc"), 64),
            "one /64"
        );
        assert_ne!(
            address_key(ip("2001:db8:1:2::1"), 64),
            address_key(ip("2001:db8:1:3::1"), 64),
            "another /64"
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2::1"), 48),
            address_key(ip("2001:db8:1:3::1"), 48)
        );
        assert_ne!(
            address_key(ip("2001:db8::1"), 128),
            address_key(ip("2001:db8::2"), 128)
        );
        assert_eq!(
            address_key(ip("::ffff:192.0.2.1"), 64),
            ip("192.0.2.1"),
            "an IPv4-mapped address is its IPv4 address"
        );
        assert_ne!(
            address_key(ip("192.0.2.1"), 64),
            address_key(ip("192.0.2.2"), 64)
        );

        let limiters = RateLimits::default()
            .register(Limit::new(2, Duration::from_secs(3600)))
            .build();
        let check = |addr: &str| limiters.register.inner.check(ip(addr));
        assert!(check("2001:db8:1:2::1").is_ok());
        assert!(check("2001:db8:1:2::2").is_ok());
        assert!(
            check("2001:db8:1:2:ffff::3").is_err(),
            "rotating inside the /64 does not buy a new budget"
        );
        assert!(check("2001:db8:1:3::1").is_ok(), "another /64 has its own");
    }

    #[test]
    fn failed_client_authentication_locks_the_client_id() {
        let limiters = RateLimits::default()
            .failed_client_auth(Limit::new(3, Duration::from_secs(300)))
            .build();
        let guard = &limiters.failed_client_auth;
        for _ in 0..3 {
            assert!(guard.check("mcp_client_a").is_ok());
            assert!(guard.record_failure("mcp_client_a").is_ok());
        }
        assert!(guard.check("mcp_client_a").is_ok(), "not locked yet");
        let wait = guard.record_failure("mcp_client_a").unwrap_err();
        assert!((1..=100).contains(&wait), "{wait}");
        let wait = guard.check("mcp_client_a").unwrap_err();
        assert!((1..=100).contains(&wait), "locked before any comparison");
        assert!(guard.check("mcp_client_b").is_ok(), "per client_id");

        let off = RateLimits::disabled().build();
        for _ in 0..100 {
            assert!(off.failed_client_auth.record_failure("x").is_ok());
        }
        assert!(off.failed_client_auth.check("x").is_ok());
    }
}
