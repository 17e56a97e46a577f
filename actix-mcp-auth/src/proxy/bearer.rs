//! The bearer check of proxy mode: our opaque access tokens, backed by a live AuthKit session.
//!
//! 1. The token must have our access-token shape (`mcp_at_` + 43 characters): anything else,
//!    AuthKit's own tokens included, is refused without a lookup (no token passthrough).
//! 2. The in-process cache (keyed by SHA-256 of the token; entries live at most
//!    `token_cache_ttl`, never past the token's expiry) answers the hot path.
//! 3. Otherwise the database: the token and its grant must be unexpired and unrevoked, and the
//!    grant bound to this resource. The grant's `last_used_at` is updated when it is more than
//!    a minute old (`LAST_USED_RESOLUTION_SECS`), so cache misses write at most once a minute
//!    per grant and cache hits never.
//! 4. The upstream session must still be alive: AuthKit's userinfo endpoint answers for the
//!    grant's AuthKit access token, at most once per grant per `userinfo_cache_ttl`. An expired
//!    AuthKit access token is refreshed first (and stored with a compare-and-swap so replicas do
//!    not overwrite each other). AuthKit refusing the session revokes the grant here too;
//!    AuthKit being unreachable is a 503, never a 401.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::{
    Authenticated,
    clock::unix_now,
    oauth::tokens::{ACCESS_TOKEN_PREFIX, has_shape},
    proxy::{
        ProxySettings,
        token_cache::{GrantSession, ProxyTokenCache},
    },
    store::{Grant, RevokeCause, Store, TokenHash, UpstreamTokens, UpstreamUpdate},
    upstream::{self, TokenCallError, UserinfoError},
    verify::{
        TokenVerifier, VerifyError, VerifyFuture,
        cache::{TokenDigest, digest},
        single_flight::SingleFlight,
    },
};

/// Refresh AuthKit's access token this long before it expires.
const UPSTREAM_EXPIRY_MARGIN_SECS: i64 = 10;
/// Number of in-process locks serializing upstream refreshes (per grant, by hash).
const REFRESH_LOCKS: usize = 64;

/// Verifies our access tokens; shared by every worker.
#[derive(Clone)]
pub(crate) struct ProxyVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    settings: ProxySettings,
    store: Store,
    /// Verified tokens, and the grants whose upstream session was confirmed recently.
    tokens: ProxyTokenCache,
    refresh_locks: Vec<tokio::sync::Mutex<()>>,
    /// First uses of a token being verified: concurrent requests with it share one.
    in_flight: SingleFlight<TokenDigest, Result<Authenticated, VerifyError>>,
}

impl ProxyVerifier {
    pub(crate) fn new(settings: ProxySettings, store: Store) -> Self {
        let token_ttl = settings.token_cache_ttl.min(settings.userinfo_cache_ttl);
        Self {
            inner: Arc::new(Inner {
                tokens: ProxyTokenCache::new(
                    settings.token_cache_capacity,
                    token_ttl,
                    settings.grant_cache_capacity,
                    settings.userinfo_cache_ttl,
                ),
                refresh_locks: (0..REFRESH_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                in_flight: SingleFlight::new(),
                settings,
                store,
            }),
        }
    }

    /// Forgets a revoked token (this replica sees the revocation at once).
    pub(crate) fn forget(&self, token: &str) {
        self.inner.tokens.forget(&digest(token));
    }

    /// Forgets every cached token and the session state of a revoked grant (O(1)).
    pub(crate) fn forget_grant(&self, grant_id: &str) {
        self.inner.tokens.forget_grant(grant_id);
    }

    /// Number of access tokens cached in this process.
    pub(crate) fn cached_tokens(&self) -> u64 {
        self.inner.tokens.len()
    }

    /// Unix seconds by the store's clock: the cache ages follow the clock that expires tokens
    /// and grants, so a test moves both at once instead of sleeping.
    fn now_secs(&self) -> u64 {
        u64::try_from(self.inner.store.now()).unwrap_or(0)
    }

    /// The first use of a token in this process (or after its cache entry ended), shared by
    /// concurrent requests with the same token.
    async fn verify_token(
        &self,
        token: &str,
        key: TokenDigest,
    ) -> Result<Authenticated, VerifyError> {
        self.inner
            .in_flight
            .run(key, || self.verify_uncached(token, key))
            .await
    }

    /// The cached caller of a well-shaped token, if any and still valid.
    fn cached(&self, token: &str, key: &TokenDigest) -> Option<Authenticated> {
        debug_assert!(has_shape(token, ACCESS_TOKEN_PREFIX));
        self.inner.tokens.get(key, self.now_secs())
    }

    /// The first use of a token (in this process, within the cache's time-to-live): database,
    /// upstream session, then the cache.
    async fn verify_uncached(
        &self,
        token: &str,
        key: TokenDigest,
    ) -> Result<Authenticated, VerifyError> {
        let hash = TokenHash::of(token);
        let found = match self.inner.store.lookup_access_token(&hash).await {
            Ok(found) => found.ok_or(VerifyError::Invalid("unknown, expired or revoked token"))?,
            Err(error) if error.is_transient() => {
                tracing::warn!(%error, "token lookup failed");
                return Err(VerifyError::Unavailable);
            }
            // Permanent: e.g. the grant was sealed with a key no longer configured. Retrying
            // cannot help, so end the grant and make the client log in again.
            Err(error) => {
                tracing::warn!(%error, "token's grant cannot be read; ending it");
                if let Ok(Some(row)) = self.inner.store.find_token(&hash).await {
                    self.end_grant(&row.grant_id, RevokeCause::UNREADABLE).await;
                }
                return Err(VerifyError::Invalid(
                    "the stored session can no longer be read",
                ));
            }
        };
        let ours = crate::oauth::resource::canonical(&self.inner.settings.resource);
        if found.grant.resource.as_deref().is_some_and(|r| r != ours) {
            return Err(VerifyError::Invalid("token not issued for this resource"));
        }
        let grant_id = found.grant.grant_id.clone();
        let session = self.ensure_session(found.grant).await?;
        // At most one write a minute per grant; a failure costs only the "last used" time.
        if let Err(error) = (self.inner.store)
            .note_grant_use(&grant_id, found.grant_last_used_at)
            .await
        {
            tracing::debug!(%error, "could not record the grant's use");
        }
        let expires_at = u64::try_from(found.token.expires_at).unwrap_or(0);
        Ok(self.inner.tokens.insert(
            key,
            &session,
            found.token.scopes,
            found.token.client_id,
            expires_at,
            self.now_secs(),
        ))
    }

    /// Confirms the grant's AuthKit session (cached per grant, shared by its tokens).
    async fn ensure_session(&self, grant: Grant) -> Result<Arc<GrantSession>, VerifyError> {
        if let Some(session) = self.inner.tokens.session(&grant.grant_id, self.now_secs()) {
            return Ok(session);
        }
        let mut grant = grant;
        let mut refreshed = false;
        loop {
            if upstream_expired(&grant.upstream) && !refreshed {
                grant = self.refresh_upstream(grant).await?;
                refreshed = true;
            }
            let settings = &self.inner.settings;
            match upstream::userinfo(
                &format!("{}/oauth2/userinfo", settings.authkit),
                grant.upstream.access_token.expose(),
                settings.timeout,
            )
            .await
            {
                Ok(profile) => {
                    let user = User::from_grant(&grant, Some(profile));
                    let caller = Authenticated::new(
                        user.subject,
                        Some(grant.client_id.clone()),
                        grant.scopes.clone(),
                        None,
                        user.claims,
                    );
                    return Ok(self.inner.tokens.confirm(
                        &grant.grant_id,
                        caller,
                        self.now_secs(),
                        settings.userinfo_cache_ttl,
                    ));
                }
                // AuthKit's access token may have been revoked early: try one refresh.
                Err(UserinfoError::Unauthorized)
                    if !refreshed && grant.upstream.refresh_token.is_some() =>
                {
                    grant = self.refresh_upstream(grant).await?;
                    refreshed = true;
                }
                Err(UserinfoError::Unauthorized) => {
                    self.end_grant(&grant.grant_id, RevokeCause::UPSTREAM_ENDED)
                        .await;
                    return Err(VerifyError::Invalid(
                        "session ended at the identity provider",
                    ));
                }
                Err(UserinfoError::Transient(error)) => {
                    tracing::warn!(%error, "AuthKit userinfo unavailable");
                    return Err(VerifyError::Unavailable);
                }
            }
        }
    }

    /// Refreshes AuthKit's tokens of `grant`, once per grant at a time in this process, and
    /// stores them with a compare-and-swap. Returns the grant with usable upstream tokens.
    async fn refresh_upstream(&self, grant: Grant) -> Result<Grant, VerifyError> {
        let lock = &self.inner.refresh_locks[lock_index(&grant.grant_id)];
        let _guard = lock.lock().await;
        // Another request (or replica) may have refreshed while we waited.
        let seen_version = grant.upstream_version;
        let grant = self.reload(&grant.grant_id).await?;
        if grant.upstream_version != seen_version {
            return Ok(grant);
        }
        let Some(refresh_token) = grant.upstream.refresh_token.clone() else {
            self.end_grant(&grant.grant_id, RevokeCause::UPSTREAM_ENDED)
                .await;
            return Err(VerifyError::Invalid(
                "session expired at the identity provider",
            ));
        };
        let settings = &self.inner.settings;
        let answer = upstream::request_tokens(
            &format!("{}/oauth2/token", settings.authkit),
            &settings.client_id,
            settings.client_secret.expose(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
            ],
            settings.timeout,
        )
        .await;
        match answer {
            Ok(answer) => {
                let tokens = UpstreamTokens {
                    refresh_token: answer.tokens.refresh_token.or(Some(refresh_token)),
                    ..answer.tokens
                };
                match self
                    .inner
                    .store
                    .update_upstream_tokens(&grant.grant_id, grant.upstream_version, &tokens)
                    .await
                    .map_err(|_| VerifyError::Unavailable)?
                {
                    UpstreamUpdate::Updated { version } => Ok(Grant {
                        upstream: tokens,
                        upstream_version: version,
                        ..grant
                    }),
                    // Another replica stored newer tokens first: use those.
                    _ => self.reload(&grant.grant_id).await,
                }
            }
            Err(TokenCallError::Rejected(code)) => {
                // Another replica may have used the (single-use) refresh token first.
                let current = self.reload(&grant.grant_id).await?;
                if current.upstream_version != grant.upstream_version {
                    return Ok(current);
                }
                tracing::info!(upstream_error = %code, "AuthKit refused the refresh; ending the grant");
                self.end_grant(&grant.grant_id, RevokeCause::UPSTREAM_ENDED)
                    .await;
                Err(VerifyError::Invalid(
                    "session ended at the identity provider",
                ))
            }
            Err(TokenCallError::Transient(error)) => {
                tracing::warn!(%error, "AuthKit refresh unavailable");
                Err(VerifyError::Unavailable)
            }
        }
    }

    async fn reload(&self, grant_id: &str) -> Result<Grant, VerifyError> {
        self.inner
            .store
            .get_grant(grant_id)
            .await
            .map_err(|_| VerifyError::Unavailable)?
            .ok_or(VerifyError::Invalid("the authorization was revoked"))
    }

    async fn end_grant(&self, grant_id: &str, cause: RevokeCause) {
        if let Err(error) = self.inner.store.revoke_grant(grant_id, cause).await {
            tracing::warn!(%error, "could not revoke a grant whose session ended");
        }
        self.forget_grant(grant_id);
    }
}

impl TokenVerifier for ProxyVerifier {
    fn verify<'a>(&'a self, token: &'a str) -> VerifyFuture<'a> {
        if !has_shape(token, ACCESS_TOKEN_PREFIX) {
            return Box::pin(std::future::ready(Err(VerifyError::Invalid(
                "unknown token",
            ))));
        }
        let key = digest(token);
        // A hit is answered by a small ready future: the one of a first use (database, AuthKit)
        // takes kilobytes to box.
        if let Some(hit) = self.cached(token, &key) {
            return Box::pin(std::future::ready(Ok(hit)));
        }
        Box::pin(self.verify_token(token, key))
    }

    fn verify_cached(&self, token: &str) -> Option<Authenticated> {
        if !has_shape(token, ACCESS_TOKEN_PREFIX) {
            return None;
        }
        self.cached(token, &digest(token))
    }
}

/// The user behind a grant, as handlers see it.
struct User {
    subject: String,
    claims: Map<String, Value>,
}

impl User {
    /// Claims: the profile AuthKit gave (fresh one if we just asked, else the stored one).
    fn from_grant(grant: &Grant, fresh: Option<Map<String, Value>>) -> Self {
        let mut claims = fresh
            .or_else(|| grant.profile.as_ref().and_then(|p| p.as_object().cloned()))
            .unwrap_or_default();
        // The subject is the grant's, whatever the profile says.
        claims.insert("sub".to_owned(), Value::String(grant.subject.clone()));
        Self {
            subject: grant.subject.clone(),
            claims,
        }
    }
}

/// Whether AuthKit's access token is (about to be) expired. AuthKit's `exp` is AuthKit's time,
/// so this reads the system clock, not the store's (a test moving ours does not move AuthKit's).
fn upstream_expired(tokens: &UpstreamTokens) -> bool {
    tokens
        .expires_at
        .is_some_and(|exp| exp <= unix_now() + UPSTREAM_EXPIRY_MARGIN_SECS)
}

fn lock_index(grant_id: &str) -> usize {
    usize::from(digest(grant_id)[0]) % REFRESH_LOCKS
}
