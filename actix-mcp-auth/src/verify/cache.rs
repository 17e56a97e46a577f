//! A bounded cache of tokens that already passed verification, so the hot path of the bearer
//! check does no signature work.
//!
//! Keys are SHA-256 digests of the token: the raw token never sits in memory longer than the
//! request. An entry lives until the earlier of the token's `exp` and the cache's time-to-live.

use std::{sync::Arc, time::Duration};

use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

use crate::{Authenticated, clock::Clock};

/// SHA-256 of a token: the cache key.
pub(crate) type TokenDigest = [u8; 32];

/// Computes the cache key of `token`.
pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Unix seconds by `clock`, as the unsigned `exp` of a token.
fn unix_now(clock: &Clock) -> u64 {
    u64::try_from(clock.now()).unwrap_or(0)
}

/// A verified caller and until when (unix seconds) its entry may answer: the earlier of the
/// token's `exp` and the cache's time-to-live.
#[derive(Clone)]
struct Entry {
    caller: Authenticated,
    valid_until: u64,
}

/// Bounded map from token digest to verified caller; every hit checks the entry's deadline.
///
/// A `quick_cache` (S3-FIFO, a few bytes of bookkeeping per entry, a sharded lock on the hot
/// path) rather than a moka cache with per-entry expiry timers: no time-to-live is needed from
/// the cache itself, since a stale entry is dropped on sight or pushed out by newer ones.
/// Cloning shares the cache.
#[derive(Clone)]
pub struct VerifiedTokenCache {
    entries: Arc<Cache<TokenDigest, Entry>>,
    max_ttl: Duration,
    /// What `exp` is compared with (the verifier's clock).
    clock: Clock,
}

impl std::fmt::Debug for VerifiedTokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokenCache")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl VerifiedTokenCache {
    /// A cache holding at most `capacity` tokens, each for at most `max_ttl`.
    #[cfg(test)] // the verifier passes its clock (`with_clock`)
    pub(crate) fn new(capacity: u64, max_ttl: Duration) -> Self {
        Self::with_clock(capacity, max_ttl, Clock::system())
    }

    /// Like [`new`](Self::new), comparing expiries with `clock`.
    pub(crate) fn with_clock(capacity: u64, max_ttl: Duration, clock: Clock) -> Self {
        // quick_cache needs a capacity of at least 1.
        let capacity = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        Self {
            entries: Arc::new(Cache::new(capacity)),
            max_ttl,
            clock,
        }
    }

    /// The cached caller for `token`, if any and not expired.
    pub(crate) fn get(&self, key: &TokenDigest) -> Option<Authenticated> {
        let hit = self.entries.get(key)?;
        if unix_now(&self.clock) < hit.valid_until {
            return Some(hit.caller);
        }
        self.entries.remove(key);
        None
    }

    /// Remembers a verified caller, until the earlier of its expiry and the time-to-live.
    pub(crate) fn insert(&self, key: TokenDigest, caller: Authenticated) {
        let now = unix_now(&self.clock);
        let ttl_end = now.saturating_add(self.max_ttl.as_secs());
        let valid_until = caller.expires_at().map_or(ttl_end, |exp| exp.min(ttl_end));
        if valid_until > now {
            self.entries.insert(
                key,
                Entry {
                    caller,
                    valid_until,
                },
            );
        }
    }

    /// Number of cached tokens (stale ones included until dropped or pushed out).
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }
}

/// Shared handle, as held by verifiers.
pub(crate) type SharedCache = Arc<VerifiedTokenCache>;

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_now() -> u64 {
        super::unix_now(&Clock::system())
    }

    fn principal(expires_at: Option<u64>) -> Authenticated {
        Authenticated::new("u", None, vec![], expires_at, Default::default())
    }

    #[test]
    fn hit_and_miss() {
        let cache = VerifiedTokenCache::new(10, Duration::from_secs(60));
        let key = digest("token-a");
        assert!(cache.get(&key).is_none());
        cache.insert(key, principal(Some(unix_now() + 60)));
        assert_eq!(cache.get(&key).unwrap().subject(), "u");
        assert!(cache.get(&digest("token-b")).is_none());
    }

    #[test]
    fn expired_tokens_are_never_returned() {
        let cache = VerifiedTokenCache::new(10, Duration::from_secs(60));
        let key = digest("old");
        cache.insert(key, principal(Some(unix_now() - 1)));
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn expiry_follows_the_cache_clock() {
        let clock = Clock::adjustable();
        let cache = VerifiedTokenCache::with_clock(10, Duration::from_secs(60), clock.clone());
        let key = digest("short");
        cache.insert(key, principal(Some(unix_now() + 2)));
        assert!(cache.get(&key).is_some());
        clock.advance(Duration::from_secs(3));
        assert!(cache.get(&key).is_none(), "expired by the cache's clock");
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = VerifiedTokenCache::new(100, Duration::from_secs(60));
        for i in 0..1_000 {
            cache.insert(digest(&format!("t{i}")), principal(Some(unix_now() + 60)));
        }
        assert!(cache.len() <= 100, "{} entries", cache.len());
    }

    #[test]
    fn digests_differ_per_token() {
        assert_ne!(digest("a"), digest("b"));
        assert_eq!(digest("a"), digest("a"));
    }
}
