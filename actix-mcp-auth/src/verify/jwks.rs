//! AuthKit's signing keys: fetched lazily, cached, refreshed on demand without storms.
//!
//! Rules (threat model: anyone can send us a forged token with any `kid`):
//! * the first fetch happens at the first request, so the server starts while AuthKit is down;
//! * a refresh is single-flight (one fetch at a time across all workers) and rate-limited
//!   (at most one attempt per `min_refresh_interval`), so unknown `kid`s cannot make us hammer
//!   AuthKit;
//! * a failed refresh keeps the keys we have;
//! * only keys usable with the allowed algorithms are kept; everything else is skipped.

use std::{
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{Jwk, PublicKeyUse},
};

use crate::{
    clock::Clock,
    upstream::{self, UpstreamError},
};

/// While we hold no key at all, retry at most this often (every request would otherwise wait
/// for AuthKit during an outage). The default of [`JwksSettings::no_keys_retry`].
pub(crate) const NO_KEYS_RETRY: Duration = Duration::from_secs(1);

/// One fetched JWKS, immutable once built.
pub(crate) struct KeySet {
    keys: Vec<(Option<String>, DecodingKey)>,
    /// Increases with every successful fetch; lets waiters see that someone else refreshed.
    pub(crate) generation: u64,
    fetched_at: Instant,
}

impl KeySet {
    /// The key for `kid`. A token without `kid` is accepted only when the set has exactly one
    /// key, so it can never pick among keys.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|(k, _)| k.as_deref() == Some(kid))
                .map(|(_, key)| key),
            None if self.keys.len() == 1 => Some(&self.keys[0].1),
            None => None,
        }
    }
}

/// Settings of a [`JwksStore`].
#[derive(Debug, Clone)]
pub(crate) struct JwksSettings {
    pub uri: String,
    pub timeout: Duration,
    pub ttl: Duration,
    pub min_refresh_interval: Duration,
    /// Back-off between fetches while we hold no key at all (capped by `min_refresh_interval`).
    pub no_keys_retry: Duration,
    pub algorithms: Vec<Algorithm>,
    /// Time source of the TTL and the back-offs (tests move it instead of sleeping).
    pub clock: Clock,
}

pub(crate) struct JwksStore {
    settings: JwksSettings,
    current: RwLock<Option<Arc<KeySet>>>,
    /// Held during a fetch (single flight); remembers when the last attempt started.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl JwksStore {
    pub(crate) fn new(settings: JwksSettings) -> Self {
        Self {
            settings,
            current: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    fn snapshot(&self) -> Option<Arc<KeySet>> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The keys to verify with: the cached set, refreshed when older than the TTL (keeping
    /// the old one if that fails). `None` when we have never obtained keys.
    pub(crate) async fn keys(&self) -> Option<Arc<KeySet>> {
        match self.snapshot() {
            Some(set) if self.settings.clock.elapsed_since(set.fetched_at) < self.settings.ttl => {
                Some(set)
            }
            // Stale: refresh, but never make requests queue behind a slow fetch that another
            // request already started; the old keys are good meanwhile.
            Some(set) => match self.last_attempt.try_lock() {
                Ok(guard) => Some(
                    self.refresh_locked(guard, set.generation)
                        .await
                        .unwrap_or(set),
                ),
                Err(_) => Some(set),
            },
            None => self.refresh_after(0).await,
        }
    }

    /// Refetches the keys unless generation `seen` was already replaced by another caller or
    /// the last attempt is too recent. Returns the newest set we have afterwards.
    pub(crate) async fn refresh_after(&self, seen: u64) -> Option<Arc<KeySet>> {
        let guard = self.last_attempt.lock().await;
        self.refresh_locked(guard, seen).await
    }

    /// [`refresh_after`](Self::refresh_after) once the single-flight lock is held.
    async fn refresh_locked(
        &self,
        mut last_attempt: tokio::sync::MutexGuard<'_, Option<Instant>>,
        seen: u64,
    ) -> Option<Arc<KeySet>> {
        let current = self.snapshot();
        if let Some(set) = &current
            && set.generation != seen
        {
            return current;
        }
        let back_off = if current.is_some() {
            self.settings.min_refresh_interval
        } else {
            self.settings
                .no_keys_retry
                .min(self.settings.min_refresh_interval)
        };
        let clock = &self.settings.clock;
        if last_attempt.is_some_and(|at| clock.elapsed_since(at) < back_off) {
            return current;
        }
        *last_attempt = Some(clock.instant());
        match self.fetch().await {
            Ok(keys) => {
                let set = Arc::new(KeySet {
                    keys,
                    generation: current.as_ref().map_or(1, |s| s.generation + 1),
                    fetched_at: clock.instant(),
                });
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(set.clone());
                tracing::debug!(generation = set.generation, "JWKS refreshed");
                Some(set)
            }
            Err(error) => {
                tracing::warn!(%error, uri = %self.settings.uri, "JWKS fetch failed; keeping cached keys");
                current
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<(Option<String>, DecodingKey)>, UpstreamError> {
        let body =
            upstream::get_json_object(&self.settings.uri, self.settings.timeout, None).await?;
        let keys = parse_jwks(&body, &self.settings.algorithms);
        if keys.is_empty() {
            return Err(UpstreamError::Malformed);
        }
        Ok(keys)
    }
}

/// Keeps the keys of `body` (a JWKS document) that can verify one of `algorithms`. Keys we do
/// not understand are skipped rather than failing the whole set, so one exotic key published by
/// the provider cannot lock everybody out.
pub(crate) fn parse_jwks(
    body: &[u8],
    algorithms: &[Algorithm],
) -> Vec<(Option<String>, DecodingKey)> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(entries) = doc.get("keys").and_then(|k| k.as_array()) else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| serde_json::from_value::<Jwk>(entry.clone()).ok())
        .filter(|jwk| usable_for(jwk, algorithms))
        .filter_map(|jwk| {
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            Some((jwk.common.key_id.clone(), key))
        })
        .collect()
}

fn usable_for(jwk: &Jwk, algorithms: &[Algorithm]) -> bool {
    let for_signing = !matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    );
    // Debug names of the two enums coincide for the signature algorithms.
    let alg_allowed = jwk.common.key_algorithm.is_none_or(|alg| {
        algorithms
            .iter()
            .any(|allowed| format!("{allowed:?}") == format!("{alg:?}"))
    });
    let family_allowed = algorithms.iter().any(|alg| match &jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => {
            alg.family() == jsonwebtoken::AlgorithmFamily::Rsa
        }
        jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => {
            alg.family() == jsonwebtoken::AlgorithmFamily::Ec
        }
        jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => {
            alg.family() == jsonwebtoken::AlgorithmFamily::Ed
        }
        // Symmetric keys in a public JWKS would let anyone mint tokens.
        _ => false,
    });
    for_signing && alg_allowed && family_allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_JWK: &str = r#"{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}"#;

    #[test]
    fn keeps_rsa_signing_keys_and_skips_the_rest() {
        let doc = format!(
            r#"{{"keys":[{RSA_JWK},{{"kty":"oct","kid":"h","k":"c2VjcmV0"}},{{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}},{{"kty":"weird"}}]}}"#
        );
        let keys = parse_jwks(doc.as_bytes(), &[Algorithm::RS256]);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].0.as_deref(), Some("k1"));
    }

    #[test]
    fn a_key_for_another_algorithm_is_skipped() {
        let doc = format!(r#"{{"keys":[{}]}}"#, RSA_JWK.replace("RS256", "PS256"));
        assert!(parse_jwks(doc.as_bytes(), &[Algorithm::RS256]).is_empty());
    }

    #[test]
    fn garbage_yields_no_keys() {
        assert!(parse_jwks(b"not json", &[Algorithm::RS256]).is_empty());
        assert!(parse_jwks(b"{\"keys\":3}", &[Algorithm::RS256]).is_empty());
    }

    #[test]
    fn kid_less_lookup_needs_a_single_key() {
        let doc = format!(r#"{{"keys":[{RSA_JWK}]}}"#);
        let keys = parse_jwks(doc.as_bytes(), &[Algorithm::RS256]);
        let mut set = KeySet {
            keys,
            generation: 1,
            fetched_at: Instant::now(),
        };
        assert!(set.find(None).is_some());
        assert!(set.find(Some("k1")).is_some());
        assert!(set.find(Some("other")).is_none());
        let again = parse_jwks(doc.replace("k1", "k2").as_bytes(), &[Algorithm::RS256]);
        set.keys.extend(again);
        assert!(set.find(None).is_none());
    }
}
