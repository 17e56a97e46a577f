//! Internals that `benches/` measure directly, behind the hidden `__bench` feature (the
//! library's own dev-dependency turns it on). Not part of the API: no semver promise.
//!
//! The store's hot paths (the bearer check's token lookup, the token endpoint's code
//! redemption with its token issue) and the JWT verifier's full check are crate-private; these wrappers let the
//! criterion benches call them without widening the public surface.

use crate::{
    Authenticated, JwtVerifier, VerifyError,
    store::{Store, StoreError},
};
pub use crate::{
    secret::{Secret, TokenHash},
    store::{
        clients::ClientRecord,
        codes::{AuthorizationCode, CodeConsumed, CodeRedemption},
        grants::{Grant, UpstreamTokens},
        tokens::NewTokens,
    },
};

/// [`Store`]'s client registration.
pub async fn register_client(store: &Store, client: &ClientRecord) -> Result<(), StoreError> {
    store.register_client(client).await
}

/// [`Store`]'s grant creation with its first code.
pub async fn create_grant(
    store: &Store,
    grant: &Grant,
    code: &AuthorizationCode,
) -> Result<(), StoreError> {
    store.create_grant(grant, code).await
}

/// [`Store`]'s token issue for a live grant (`None` when the grant is gone).
pub async fn issue_tokens(
    store: &Store,
    grant_id: &str,
    scopes: &[String],
    tokens: &NewTokens,
) -> Result<Option<()>, StoreError> {
    Ok(store
        .issue_tokens(grant_id, scopes, tokens)
        .await?
        .map(|_| ()))
}

/// [`Store`]'s access-token lookup (the bearer check's database step): whether it found a
/// live grant.
pub async fn lookup_access_token(store: &Store, hash: &TokenHash) -> Result<bool, StoreError> {
    Ok(store.lookup_access_token(hash).await?.is_some())
}

/// [`Store`]'s single-use code redemption, which issues `tokens` in the same transaction.
pub async fn consume_code(
    store: &Store,
    hash: &TokenHash,
    checked: &CodeRedemption<'_>,
    tokens: &NewTokens,
) -> Result<CodeConsumed, StoreError> {
    store.consume_code(hash, checked, tokens).await
}

/// The verifier's full check of a token, without its cache (the cost of a new token).
pub async fn verify_uncached(
    verifier: &JwtVerifier,
    token: &str,
) -> Result<Authenticated, VerifyError> {
    verifier.verify_uncached(token).await
}
