//! Token verification: turning a bearer token into an [`Authenticated`] caller.
//!
//! [`TokenVerifier`] is the one-method seam between the [`BearerAuth`](crate::BearerAuth)
//! middleware and a way of checking tokens. [`JwtVerifier`] checks AuthKit's RS256 JWTs against
//! its JWKS (AuthKit mode); proxy mode plugs in a database-backed verifier.

pub(crate) mod cache;
mod jwks;
mod jwt;
pub(crate) mod single_flight;

use std::{future::Future, pin::Pin};

pub use self::jwt::JwtVerifier;
use crate::Authenticated;

/// What [`TokenVerifier::verify`] returns: a boxed future, possibly `!Send` (it runs on the
/// worker that received the request). Build one with `Box::pin(async move { … })`.
pub type VerifyFuture<'a> = Pin<Box<dyn Future<Output = Result<Authenticated, VerifyError>> + 'a>>;

/// Why a token was not accepted.
///
/// The two variants matter to clients: `Invalid` becomes 401 `invalid_token` (the client should
/// get a new token), `Unavailable` becomes 503 (the client keeps its token and retries).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is not acceptable. The reason is a fixed phrase, safe to show and log.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The token could not be checked because the identity provider is unreachable.
    #[error("identity provider unavailable")]
    Unavailable,
}

/// Checks a bearer token.
///
/// Implementations are shared by every worker (`Send + Sync`), but the returned future may be
/// `!Send`: it runs on the worker that received the request, which lets it use `awc`.
///
/// ```
/// use actix_mcp_auth::{Authenticated, TokenVerifier, VerifyError, VerifyFuture};
///
/// /// Accepts one fixed token: for a demo, never for production.
/// struct Fixed;
///
/// impl TokenVerifier for Fixed {
///     fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
///         Box::pin(async move {
///             if token == "let-me-in" {
///                 Ok(Authenticated::new("demo-user", None, vec![], None, Default::default()))
///             } else {
///                 Err(VerifyError::Invalid("unknown token"))
///             }
///         })
///     }
/// }
/// ```
pub trait TokenVerifier: Send + Sync + 'static {
    /// Verifies `token` and returns the caller it stands for.
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a>;

    /// The caller for `token` when it is known without waiting: a token this verifier checked
    /// recently and still holds in its cache, every check (expiry included) still passing.
    /// `None` means "ask [`verify`](Self::verify)", never "refused".
    ///
    /// [`BearerAuth`](crate::BearerAuth) asks this first, so a cache hit costs no boxed future.
    /// The default knows nothing (`None`); the built-in verifiers answer from their caches.
    fn verify_cached(&self, token: &str) -> Option<Authenticated> {
        let _ = token;
        None
    }
}
