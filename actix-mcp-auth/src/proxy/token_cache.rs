//! The bearer cache of proxy mode, sized for ~100,000 tokens per replica.
//!
//! Two levels, so what belongs to a grant is kept once however many of its tokens are cached:
//!
//! * the **grant level** (`grant_id` → [`GrantSession`]): the caller as handlers see it (subject,
//!   client, scopes, the user's claims) and until when AuthKit confirmed the session. It replaces
//!   a separate "session confirmed" cache: a grant is here only while its session is confirmed
//!   (at most `userinfo_cache_ttl`).
//! * the **token level** (SHA-256 of the token → [`CachedToken`]): a reference to its grant, its
//!   own expiry, and until when the entry may answer: 64 bytes. It is a `quick_cache` (S3-FIFO,
//!   a few bytes of bookkeeping per entry) rather than a moka cache, whose per-entry
//!   bookkeeping (access and write-order deques, timer nodes) was several times the entry at
//!   100,000 tokens; no time-to-live is needed from the cache because every hit checks
//!   `valid_until` and a stale entry is dropped on sight or pushed out by newer ones.
//!
//! A token entry answers only while its grant entry is *usable*: removing a grant entry (revoked
//! here, evicted for capacity, expired, or replaced by a newer confirmation) clears that flag, so
//! every cached token of the grant stops answering at once, without scanning the token level.
//! That is also how [`ProxyTokenCache::forget_grant`] drops a grant's tokens in O(1).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use moka::sync::Cache;
use quick_cache::sync::Cache as TokenTable;

use crate::{Authenticated, verify::cache::TokenDigest};

/// A grant whose AuthKit session was confirmed: shared by its cached tokens.
#[derive(Debug)]
pub(crate) struct GrantSession {
    /// The caller without a token expiry: what all tokens of the grant share.
    caller: Authenticated,
    /// Unix seconds until which the session counts as confirmed.
    confirmed_until: u64,
    /// Cleared when the entry leaves the grant level: its tokens must not answer any more.
    usable: AtomicBool,
}

impl GrantSession {
    /// The caller as the grant's tokens present it (no expiry).
    #[cfg(test)]
    pub(crate) fn caller(&self) -> &Authenticated {
        &self.caller
    }

    fn is_live(&self, now: u64) -> bool {
        self.usable.load(Ordering::Acquire) && now < self.confirmed_until
    }
}

/// One cached access token.
#[derive(Clone)]
struct CachedToken {
    grant: Arc<GrantSession>,
    /// The grant's caller with this token's expiry (its own only when the token's scopes
    /// differ from the grant's).
    caller: Authenticated,
    /// Unix seconds: the earliest of the token's expiry and the entry's time-to-live.
    valid_until: u64,
}

/// Both levels; cloning is not needed (the verifier holds it in an `Arc`).
pub(crate) struct ProxyTokenCache {
    tokens: TokenTable<TokenDigest, CachedToken>,
    grants: Cache<String, Arc<GrantSession>>,
    token_ttl: Duration,
}

impl ProxyTokenCache {
    /// At most `token_capacity` tokens, each answering for at most `token_ttl`; at most
    /// `grant_capacity` grants, each confirmed for `session_ttl`.
    pub(crate) fn new(
        token_capacity: u64,
        token_ttl: Duration,
        grant_capacity: u64,
        session_ttl: Duration,
    ) -> Self {
        Self {
            // quick_cache needs a capacity of at least 1.
            tokens: TokenTable::new(usize::try_from(token_capacity.max(1)).unwrap_or(usize::MAX)),
            grants: Cache::builder()
                .max_capacity(grant_capacity)
                .time_to_live(session_ttl)
                .eviction_listener(|_grant, session: Arc<GrantSession>, _cause| {
                    session.usable.store(false, Ordering::Release);
                })
                .build(),
            token_ttl,
        }
    }

    /// The cached caller of token `key`, if its entry and its grant are still good at `now`.
    pub(crate) fn get(&self, key: &TokenDigest, now: u64) -> Option<Authenticated> {
        let hit = self.tokens.get(key)?;
        if now < hit.valid_until && hit.grant.is_live(now) {
            return Some(hit.caller);
        }
        self.tokens.remove(key);
        None
    }

    /// The confirmed session of `grant_id`, if any at `now`.
    pub(crate) fn session(&self, grant_id: &str, now: u64) -> Option<Arc<GrantSession>> {
        self.grants
            .get(grant_id)
            .filter(|session| session.is_live(now))
    }

    /// Records that AuthKit confirmed the session of `grant_id` at `now`, for `ttl`; `caller`
    /// is what its tokens present (its expiry is ignored). Replaces an older confirmation, whose
    /// cached tokens then verify again once.
    pub(crate) fn confirm(
        &self,
        grant_id: &str,
        caller: Authenticated,
        now: u64,
        ttl: Duration,
    ) -> Arc<GrantSession> {
        let session = Arc::new(GrantSession {
            caller: caller.with_expiry(None),
            confirmed_until: now.saturating_add(ttl.as_secs()),
            usable: AtomicBool::new(true),
        });
        self.grants.insert(grant_id.to_owned(), session.clone());
        session
    }

    /// Caches token `key` of `grant`, expiring at `expires_at` (unix seconds), with `scopes`
    /// and `client_id`: shared with the grant's caller when they match (the usual case).
    /// Returns the caller for this token.
    pub(crate) fn insert(
        &self,
        key: TokenDigest,
        grant: &Arc<GrantSession>,
        scopes: Vec<String>,
        client_id: String,
        expires_at: u64,
        now: u64,
    ) -> Authenticated {
        let shared = &grant.caller;
        let caller = if shared.scopes() == scopes.as_slice()
            && shared.client_id() == Some(client_id.as_str())
        {
            shared.with_expiry(Some(expires_at))
        } else {
            Authenticated::new(
                shared.subject(),
                Some(client_id),
                scopes,
                Some(expires_at),
                shared.claims().clone(),
            )
        };
        let valid_until = expires_at
            .min(grant.confirmed_until)
            .min(now.saturating_add(self.token_ttl.as_secs()));
        self.tokens.insert(
            key,
            CachedToken {
                grant: grant.clone(),
                caller: caller.clone(),
                valid_until,
            },
        );
        caller
    }

    /// Forgets one token.
    pub(crate) fn forget(&self, key: &TokenDigest) {
        self.tokens.remove(key);
    }

    /// Forgets a grant's session and, with it, every cached token of the grant (O(1): the
    /// tokens check their grant's flag).
    pub(crate) fn forget_grant(&self, grant_id: &str) {
        if let Some(session) = self.grants.remove(grant_id) {
            session.usable.store(false, Ordering::Release);
        }
    }

    /// Number of cached tokens (stale ones included until they are dropped or pushed out).
    pub(crate) fn len(&self) -> u64 {
        self.tokens.len() as u64
    }

    /// Number of cached grant sessions.
    #[cfg(test)]
    pub(crate) fn grants_len(&self) -> u64 {
        self.grants.run_pending_tasks();
        self.grants.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::verify::cache::digest;

    const NOW: u64 = 1_000_000;

    fn cache() -> ProxyTokenCache {
        ProxyTokenCache::new(1_000, Duration::from_secs(30), 100, Duration::from_secs(30))
    }

    fn caller() -> Authenticated {
        let mut claims = Map::new();
        claims.insert("email".into(), "u@example.com".into());
        Authenticated::new(
            "user_1",
            Some("client_1".into()),
            vec!["openid".into()],
            None,
            claims,
        )
    }

    #[test]
    fn tokens_of_one_grant_share_its_caller() {
        let cache = cache();
        let grant = cache.confirm("g1", caller(), NOW, Duration::from_secs(30));
        let a = cache.insert(
            digest("a"),
            &grant,
            vec!["openid".into()],
            "client_1".into(),
            NOW + 3600,
            NOW,
        );
        let b = cache.insert(
            digest("b"),
            &grant,
            vec!["openid".into()],
            "client_1".into(),
            NOW + 60,
            NOW,
        );
        assert!(a.shares_grant_with(&b) && a.shares_grant_with(grant.caller()));
        assert_eq!(a.expires_at(), Some(NOW + 3600));
        assert_eq!(b.expires_at(), Some(NOW + 60));
        let hit = cache.get(&digest("a"), NOW + 1).expect("cached");
        assert!(hit.shares_grant_with(&a));
        assert_eq!(hit.subject(), "user_1");
        assert_eq!(hit.claim("email").unwrap(), "u@example.com");
        // Narrower scopes get their own caller, with the same user.
        let c = cache.insert(
            digest("c"),
            &grant,
            vec![],
            "client_1".into(),
            NOW + 60,
            NOW,
        );
        assert!(!c.shares_grant_with(&a));
        assert!(c.scopes().is_empty());
        assert_eq!(c.subject(), "user_1");
    }

    #[test]
    fn entries_end_at_the_earliest_of_expiry_ttl_and_session() {
        let cache = cache();
        let grant = cache.confirm("g1", caller(), NOW, Duration::from_secs(20));
        cache.insert(
            digest("short"),
            &grant,
            vec!["openid".into()],
            "client_1".into(),
            NOW + 5,
            NOW,
        );
        cache.insert(
            digest("long"),
            &grant,
            vec!["openid".into()],
            "client_1".into(),
            NOW + 3600,
            NOW,
        );
        assert!(cache.get(&digest("short"), NOW + 4).is_some());
        assert!(
            cache.get(&digest("short"), NOW + 5).is_none(),
            "token expired"
        );
        assert!(cache.get(&digest("long"), NOW + 19).is_some());
        assert!(
            cache.get(&digest("long"), NOW + 20).is_none(),
            "session confirmation lapsed"
        );
        assert!(cache.session("g1", NOW + 20).is_none());
    }

    #[test]
    fn forgetting_a_grant_drops_all_its_tokens_at_once() {
        let cache = cache();
        let g1 = cache.confirm("g1", caller(), NOW, Duration::from_secs(30));
        let g2 = cache.confirm("g2", caller(), NOW, Duration::from_secs(30));
        for i in 0..10 {
            cache.insert(
                digest(&format!("g1-{i}")),
                &g1,
                vec!["openid".into()],
                "client_1".into(),
                NOW + 60,
                NOW,
            );
        }
        cache.insert(
            digest("g2-0"),
            &g2,
            vec!["openid".into()],
            "client_1".into(),
            NOW + 60,
            NOW,
        );
        cache.forget_grant("g1");
        for i in 0..10 {
            assert!(cache.get(&digest(&format!("g1-{i}")), NOW).is_none());
        }
        assert!(cache.session("g1", NOW).is_none());
        assert!(
            cache.get(&digest("g2-0"), NOW).is_some(),
            "other grants unaffected"
        );
        cache.forget(&digest("g2-0"));
        assert!(cache.get(&digest("g2-0"), NOW).is_none());
    }

    #[test]
    fn a_replaced_confirmation_retires_the_old_tokens() {
        let cache = cache();
        let old = cache.confirm("g1", caller(), NOW, Duration::from_secs(30));
        cache.insert(
            digest("t"),
            &old,
            vec!["openid".into()],
            "client_1".into(),
            NOW + 60,
            NOW,
        );
        let new = cache.confirm("g1", caller(), NOW + 1, Duration::from_secs(30));
        cache.grants.run_pending_tasks();
        assert!(
            cache.get(&digest("t"), NOW + 1).is_none(),
            "verified again once"
        );
        assert!(Arc::ptr_eq(&cache.session("g1", NOW + 1).unwrap(), &new));
    }

    #[test]
    fn capacities_are_separate_and_bounded() {
        let cache = ProxyTokenCache::new(100, Duration::from_secs(30), 10, Duration::from_secs(30));
        let grant = cache.confirm("g", caller(), NOW, Duration::from_secs(30));
        for i in 0..1_000 {
            cache.insert(
                digest(&format!("t{i}")),
                &grant,
                vec!["openid".into()],
                "client_1".into(),
                NOW + 60,
                NOW,
            );
        }
        for i in 0..100 {
            cache.confirm(
                &format!("other-{i}"),
                caller(),
                NOW,
                Duration::from_secs(30),
            );
        }
        assert!(cache.len() <= 100, "{} tokens", cache.len());
        assert!(cache.grants_len() <= 10, "{} grants", cache.grants_len());
    }
}
