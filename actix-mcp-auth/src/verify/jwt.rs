//! [`JwtVerifier`]: checks RS256 JWTs issued by AuthKit against its JWKS.
//!
//! The checks, in order (threat model: the token is attacker-controlled, including its header;
//! we never trust `alg`, `kid`, `jku`, `jwk` or `x5u` to choose how to verify):
//! 1. the token is in the verified-token cache (no crypto on the hot path);
//! 2. the header parses, `alg` is on the allow-list (RS256 by default; `none` and HS* can never be
//!    configured), and no `crit` extension is present (we understand none, RFC 7515 §4.1.11);
//! 3. the key is found by `kid` in the cached JWKS; an unknown `kid` triggers one refresh;
//! 4. the signature verifies under that key; a failure triggers one refresh too (keys rotated
//!    under the same id), then one retry with the new key;
//! 5. `iss` equals the issuer exactly; `aud` contains an accepted audience; `exp` is present and
//!    in the future and `nbf` (if any) in the past, both within a leeway of seconds, by the
//!    verifier's [`Clock`] (so tests move time instead of sleeping); `sub` is set.
//!
//! Each refusal is a [`JwtFailure`]; the retry of steps 3 and 4 branches on the variant, never on
//! the wording of a message.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, Validation, decode, decode_header, errors::ErrorKind};
use serde_json::{Map, Value};

use super::{
    TokenVerifier, VerifyError, VerifyFuture,
    cache::{SharedCache, VerifiedTokenCache, digest},
    jwks::{JwksSettings, JwksStore},
};
use crate::{Authenticated, clock::Clock, error::ConfigError};

/// Largest clock skew we tolerate; minutes of leeway would extend stolen tokens' lives.
const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// Verifies JWTs against a JWKS, with a cache of already-verified tokens.
///
/// Cloning shares the keys and the cache.
///
/// [`AuthKitProvider::verifier`](crate::AuthKitProvider::verifier) hands out the provider's
/// verifier, a [`TokenVerifier`] to use outside the provider's [`BearerAuth`](crate::BearerAuth)
/// (a WebSocket upgrade, a second middleware stack):
///
/// ```no_run
/// # async fn check(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// use actix_mcp_auth::{AuthKitProvider, TokenVerifier as _};
///
/// let auth = AuthKitProvider::from_env()?;
/// let caller = auth.verifier().verify(token).await?;
/// println!("{}", caller.subject());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    jwks: JwksStore,
    /// Signature, algorithm, issuer, audience and claim presence; not time, see `check_time`.
    validation: Validation,
    /// Clock-skew tolerance of `exp` and `nbf`, in seconds.
    leeway: u64,
    clock: Clock,
    cache: SharedCache,
}

/// Why a JWT was refused. [`JwtFailure::calls_for_refetch`] decides whether AuthKit may have
/// rotated its keys since we fetched them (openidconnect's `NoMatchingKey`); everything else is
/// final for this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtFailure {
    /// The token is not a JWT, or a part of it does not decode.
    Malformed,
    /// `alg` is not on the allow-list.
    AlgorithmNotAllowed,
    /// A `crit` header names an extension (we understand none).
    CriticalHeader,
    /// No cached key has the token's `kid` (or there is no `kid` and several keys).
    NoMatchingKey,
    /// The key was found but the signature does not verify under it.
    BadSignature,
    /// `exp` is past (beyond the leeway).
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid,
    /// `iss` is not the issuer.
    WrongIssuer,
    /// `aud` names none of the accepted audiences.
    WrongAudience,
    /// `exp`, `iss`, `sub` or `aud` is missing (or `sub` empty).
    MissingClaim,
    /// A claim has the wrong type.
    MalformedClaim,
}

impl JwtFailure {
    /// Whether a fresh JWKS could change the outcome: an unknown key id, or a signature that
    /// fails under a known id (keys rotated under the same id).
    pub(crate) fn calls_for_refetch(self) -> bool {
        matches!(self, Self::NoMatchingKey | Self::BadSignature)
    }

    /// The fixed phrase clients and logs see.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed token",
            Self::AlgorithmNotAllowed => "signature algorithm not allowed",
            Self::CriticalHeader => "unsupported critical header",
            Self::NoMatchingKey => "unknown signing key",
            Self::BadSignature => "signature does not verify",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "token not issued for this resource",
            Self::MissingClaim => "missing required claim",
            Self::MalformedClaim => "malformed claim",
        }
    }

    /// Maps a jsonwebtoken failure to its reason.
    fn from_kind(kind: &ErrorKind) -> Self {
        match kind {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::ImmatureSignature => Self::NotYetValid,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::MissingRequiredClaim(_) => Self::MissingClaim,
            ErrorKind::InvalidClaimFormat(_) => Self::MalformedClaim,
            ErrorKind::InvalidAlgorithm => Self::AlgorithmNotAllowed,
            _ => Self::Malformed,
        }
    }
}

impl From<JwtFailure> for VerifyError {
    fn from(failure: JwtFailure) -> Self {
        VerifyError::Invalid(failure.reason())
    }
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.inner.validation.iss)
            .field("audiences", &self.inner.validation.aud)
            .field("algorithms", &self.inner.validation.algorithms)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`JwtVerifier`]; every setting has a safe default except the audience, which
/// must be given (or explicitly waived with [`accept_any_audience`](Self::accept_any_audience)).
#[must_use]
#[derive(Debug, Clone)]
pub struct JwtVerifierBuilder {
    jwks_uri: String,
    issuer: String,
    audiences: Vec<String>,
    any_audience: bool,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    jwks_timeout: Duration,
    jwks_ttl: Duration,
    jwks_min_refresh_interval: Duration,
    cache_capacity: u64,
    cache_max_ttl: Duration,
    clock: Clock,
}

impl JwtVerifierBuilder {
    /// Accepts tokens whose `aud` contains `audience` (can be called several times).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Skips the audience check. **Dangerous**: a token AuthKit issued for any other
    /// application of the same environment would be accepted here. Logged at WARN on build.
    pub fn accept_any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// The signature algorithms to accept (default RS256). Only asymmetric algorithms can be
    /// configured: with a public JWKS, HMAC would let anyone forge tokens. The providers keep the
    /// default; the tests prove the allow-list.
    #[cfg(test)]
    pub fn algorithms(mut self, algorithms: &[Algorithm]) -> Self {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Clock-skew tolerance for `exp` and `nbf` (default 5 s, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Timeout of one JWKS fetch (default 5 s).
    pub fn jwks_timeout(mut self, timeout: Duration) -> Self {
        self.jwks_timeout = timeout;
        self
    }

    /// How long fetched keys are used before a background-free refresh (default 1 h).
    pub fn jwks_cache_ttl(mut self, ttl: Duration) -> Self {
        self.jwks_ttl = ttl;
        self
    }

    /// Smallest interval between two JWKS fetches triggered by unknown keys or failed
    /// signatures (default 15 s). This is what stops forged tokens from causing a fetch storm.
    pub fn jwks_min_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_min_refresh_interval = interval;
        self
    }

    /// Maximum number of verified tokens remembered (default 10 000).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Longest time a verified token is remembered, whatever its `exp` (default 5 min).
    pub fn cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.cache_max_ttl = ttl;
        self
    }

    /// The time source of `exp`/`nbf` checks, the token cache and the JWKS refresh intervals
    /// (default: the system clock). Tests pass a
    /// [`Clock::adjustable`](crate::Clock::adjustable) to move past an expiry or a
    /// back-off instead of sleeping.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Validates the settings and builds the verifier.
    pub fn build(self) -> Result<JwtVerifier, ConfigError> {
        crate::backend::install_jwt_provider();
        if self.algorithms.is_empty() {
            return Err(ConfigError::invalid(
                "algorithms",
                "at least one is required",
            ));
        }
        if self
            .algorithms
            .iter()
            .any(|a| a.family() == jsonwebtoken::AlgorithmFamily::Hmac)
        {
            return Err(ConfigError::invalid(
                "algorithms",
                "HMAC algorithms cannot be used with a public JWKS",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::invalid("leeway", "at most 60 seconds"));
        }
        if self.issuer.is_empty() {
            return Err(ConfigError::invalid("issuer", "must not be empty"));
        }
        let mut validation = Validation::new(self.algorithms[0]);
        validation.algorithms = self.algorithms.clone();
        validation.set_issuer(&[&self.issuer]);
        // Time is checked by `check_time` with our clock (jsonwebtoken reads the system clock);
        // `exp` stays required below, so presence is still checked here.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let mut required = vec!["exp", "iss", "sub"];
        if self.any_audience {
            tracing::warn!(
                "JWT audience check disabled: tokens issued for other applications will be accepted"
            );
            validation.validate_aud = false;
        } else if self.audiences.is_empty() {
            return Err(ConfigError::invalid(
                "audience",
                "at least one accepted audience is required (or opt out explicitly)",
            ));
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        Ok(JwtVerifier {
            inner: Arc::new(Inner {
                jwks: JwksStore::new(JwksSettings {
                    uri: self.jwks_uri,
                    timeout: self.jwks_timeout,
                    ttl: self.jwks_ttl,
                    min_refresh_interval: self.jwks_min_refresh_interval,
                    no_keys_retry: super::jwks::NO_KEYS_RETRY,
                    algorithms: self.algorithms,
                    clock: self.clock.clone(),
                }),
                validation,
                leeway: self.leeway.as_secs(),
                cache: Arc::new(VerifiedTokenCache::with_clock(
                    self.cache_capacity,
                    self.cache_max_ttl,
                    self.clock.clone(),
                )),
                clock: self.clock,
            }),
        })
    }
}

impl JwtVerifier {
    /// Starts a builder for tokens issued by `issuer` and signed with keys from `jwks_uri`.
    pub(crate) fn builder(
        jwks_uri: impl Into<String>,
        issuer: impl Into<String>,
    ) -> JwtVerifierBuilder {
        JwtVerifierBuilder {
            jwks_uri: jwks_uri.into(),
            issuer: issuer.into(),
            audiences: Vec::new(),
            any_audience: false,
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(5),
            jwks_timeout: Duration::from_secs(5),
            jwks_ttl: Duration::from_secs(3600),
            jwks_min_refresh_interval: Duration::from_secs(15),
            cache_capacity: 10_000,
            cache_max_ttl: Duration::from_secs(300),
            clock: Clock::system(),
        }
    }

    /// Number of verified tokens in the cache (approximate: the cache counts lazily).
    pub fn cached_tokens(&self) -> u64 {
        self.inner.cache.len()
    }

    /// Verifies without looking at or filling the cache (the full cost of a new token).
    pub(crate) async fn verify_uncached(&self, token: &str) -> Result<Authenticated, VerifyError> {
        let header = decode_header(token).map_err(|_| JwtFailure::Malformed)?;
        if !self.inner.validation.algorithms.contains(&header.alg) {
            return Err(JwtFailure::AlgorithmNotAllowed.into());
        }
        if header.crit.is_some() {
            return Err(JwtFailure::CriticalHeader.into());
        }
        let kid = header.kid.as_deref();
        let jwks = &self.inner.jwks;
        let mut keys = jwks.keys().await.ok_or(VerifyError::Unavailable)?;
        let mut refreshed = false;
        loop {
            let outcome = match keys.find(kid) {
                None => Err(JwtFailure::NoMatchingKey),
                Some(key) => decode::<Map<String, Value>>(token, key, &self.inner.validation)
                    .map_err(|e| JwtFailure::from_kind(e.kind())),
            };
            match outcome {
                Err(failure) if failure.calls_for_refetch() && !refreshed => {
                    refreshed = true;
                    if let Some(newer) = jwks.refresh_after(keys.generation).await
                        && newer.generation != keys.generation
                    {
                        keys = newer;
                        continue;
                    }
                    return Err(failure.into());
                }
                Err(failure) => return Err(failure.into()),
                Ok(data) => {
                    check_time(&data.claims, self.inner.clock.now(), self.inner.leeway)?;
                    return principal_from_claims(data.claims).map_err(Into::into);
                }
            }
        }
    }
}

impl TokenVerifier for JwtVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        let key = digest(token);
        // A hit is answered by a small ready future: the one that can wait for the JWKS and
        // verify a signature takes a few kilobytes to box.
        if let Some(hit) = self.inner.cache.get(&key) {
            return Box::pin(std::future::ready(Ok(hit)));
        }
        Box::pin(async move {
            let principal = self.verify_uncached(token).await?;
            self.inner.cache.insert(key, principal.clone());
            Ok(principal)
        })
    }

    fn verify_cached(&self, token: &str) -> Option<Authenticated> {
        self.inner.cache.get(&digest(token))
    }
}

/// RFC 7519 §4.1.4 and §4.1.5 with `leeway` seconds of skew, at `now` by the verifier's clock.
/// Runs on verified claims only; `exp` was required by the validation, so it is a number.
fn check_time(claims: &Map<String, Value>, now: i64, leeway: u64) -> Result<(), JwtFailure> {
    let now = u64::try_from(now).unwrap_or(0);
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(JwtFailure::MissingClaim)?;
    if exp < now.saturating_sub(leeway) {
        return Err(JwtFailure::Expired);
    }
    match claims.get("nbf") {
        None | Some(Value::Null) => Ok(()),
        Some(nbf) => match nbf.as_u64() {
            None => Err(JwtFailure::MalformedClaim),
            Some(nbf) if nbf > now.saturating_add(leeway) => Err(JwtFailure::NotYetValid),
            Some(_) => Ok(()),
        },
    }
}

/// Builds the caller from verified claims: `sub` is the user, `client_id` (else `azp`) the
/// client, scopes from `scope` (space-separated) or `scp` (string or list).
fn principal_from_claims(claims: Map<String, Value>) -> Result<Authenticated, JwtFailure> {
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(JwtFailure::MissingClaim)?
        .to_owned();
    let client_id = ["client_id", "azp"]
        .iter()
        .find_map(|name| claims.get(*name).and_then(Value::as_str))
        .map(str::to_owned);
    let scopes = scopes_from_claims(&claims);
    let expires_at = claims.get("exp").and_then(Value::as_u64);
    Ok(Authenticated::new(
        subject, client_id, scopes, expires_at, claims,
    ))
}

fn scopes_from_claims(claims: &Map<String, Value>) -> Vec<String> {
    let words = |s: &str| {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    if let Some(scope) = claims.get("scope").and_then(Value::as_str) {
        return words(scope);
    }
    match claims.get("scp") {
        Some(Value::String(s)) => words(s),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn scopes_come_from_scope_then_scp() {
        assert_eq!(
            scopes_from_claims(&claims(json!({"scope": "a  b", "scp": ["c"]}))),
            vec!["a", "b"]
        );
        assert_eq!(
            scopes_from_claims(&claims(json!({"scp": ["c", "d"]}))),
            vec!["c", "d"]
        );
        assert_eq!(
            scopes_from_claims(&claims(json!({"scp": "e f"}))),
            vec!["e", "f"]
        );
        assert!(scopes_from_claims(&claims(json!({}))).is_empty());
    }

    #[test]
    fn client_id_prefers_client_id_over_azp() {
        let p = principal_from_claims(claims(json!({"sub": "u", "azp": "a", "client_id": "c"})))
            .unwrap();
        assert_eq!(p.client_id(), Some("c"));
        let p = principal_from_claims(claims(json!({"sub": "u", "azp": "a"}))).unwrap();
        assert_eq!(p.client_id(), Some("a"));
    }

    #[test]
    fn empty_subject_is_rejected() {
        assert!(principal_from_claims(claims(json!({"sub": ""}))).is_err());
        assert!(principal_from_claims(claims(json!({"sub": 5}))).is_err());
    }

    #[test]
    fn only_key_failures_call_for_a_refetch() {
        assert!(JwtFailure::NoMatchingKey.calls_for_refetch());
        assert!(JwtFailure::BadSignature.calls_for_refetch());
        for final_failure in [
            JwtFailure::Malformed,
            JwtFailure::AlgorithmNotAllowed,
            JwtFailure::CriticalHeader,
            JwtFailure::Expired,
            JwtFailure::NotYetValid,
            JwtFailure::WrongIssuer,
            JwtFailure::WrongAudience,
            JwtFailure::MissingClaim,
            JwtFailure::MalformedClaim,
        ] {
            assert!(!final_failure.calls_for_refetch(), "{final_failure:?}");
        }
        assert_eq!(
            VerifyError::from(JwtFailure::NoMatchingKey),
            VerifyError::Invalid("unknown signing key")
        );
        assert_eq!(
            JwtFailure::from_kind(&ErrorKind::InvalidSignature),
            JwtFailure::BadSignature
        );
        assert_eq!(
            JwtFailure::from_kind(&ErrorKind::InvalidAudience),
            JwtFailure::WrongAudience
        );
    }

    #[test]
    fn time_checks_use_the_given_now_and_leeway() {
        let at = |v: Value| check_time(&claims(v), 1_000, 5);
        assert_eq!(at(json!({"exp": 1_000})), Ok(()));
        assert_eq!(at(json!({"exp": 995})), Ok(()), "within the leeway");
        assert_eq!(at(json!({"exp": 994})), Err(JwtFailure::Expired));
        assert_eq!(at(json!({"exp": 2_000, "nbf": 1_005})), Ok(()));
        assert_eq!(
            at(json!({"exp": 2_000, "nbf": 1_006})),
            Err(JwtFailure::NotYetValid)
        );
        assert_eq!(at(json!({"exp": 2_000, "nbf": null})), Ok(()));
        assert_eq!(
            at(json!({"exp": 2_000, "nbf": "soon"})),
            Err(JwtFailure::MalformedClaim)
        );
        assert_eq!(at(json!({"exp": "x"})), Err(JwtFailure::MissingClaim));
    }

    #[test]
    fn builder_refuses_unsafe_settings() {
        let b = || JwtVerifier::builder("https://a/jwks", "https://a").audience("x");
        assert!(b().algorithms(&[Algorithm::HS256]).build().is_err());
        assert!(b().algorithms(&[]).build().is_err());
        assert!(b().leeway(Duration::from_secs(120)).build().is_err());
        assert!(
            JwtVerifier::builder("https://a/jwks", "https://a")
                .build()
                .is_err(),
            "an audience is required"
        );
        assert!(
            JwtVerifier::builder("https://a/jwks", "https://a")
                .accept_any_audience()
                .build()
                .is_ok()
        );
        assert!(b().build().is_ok());
    }
}
