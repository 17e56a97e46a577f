//! Time for everything that expires: unix seconds (what tokens, codes and database rows carry)
//! and monotonic instants (cache ages, back-offs).
//!
//! [`Clock`] is the time source of a [`Store`](crate::store::Store), of proxy mode's token
//! endpoint and bearer caches, and of AuthKit mode's JWT checks, JWKS and metadata caches. It is
//! the system clock, unless a test made it [`adjustable`](Clock::adjustable) so it can jump
//! forward over a time limit (an expiry, a cache TTL, a back-off) instead of sleeping through it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// Seconds since the unix epoch (0 if the clock is before 1970).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A source of unix time in seconds. Cheap to clone; clones share their offset, so one
/// adjustable clock given to two stores (two replicas) moves both.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Seconds added to the system time; `None` for the plain system clock.
    offset: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock (the default).
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that runs with the system clock and can be moved forward with
    /// [`advance`](Self::advance). For tests.
    pub fn adjustable() -> Self {
        Self {
            offset: Some(Arc::new(AtomicI64::new(0))),
        }
    }

    /// Moves an adjustable clock (and its clones) forward by `by` (whole seconds). Returns
    /// `false`, and changes nothing, on the system clock.
    pub fn advance(&self, by: Duration) -> bool {
        let Some(offset) = &self.offset else {
            return false;
        };
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX / 2);
        offset.fetch_add(secs, Ordering::SeqCst);
        true
    }

    /// Current unix time in seconds.
    pub fn now(&self) -> i64 {
        let shift = self
            .offset
            .as_ref()
            .map_or(0, |offset| offset.load(Ordering::SeqCst));
        unix_now().saturating_add(shift)
    }

    /// The current monotonic instant, moved like [`now`](Self::now): what cache ages and
    /// back-offs are measured with.
    pub(crate) fn instant(&self) -> Instant {
        let shift = self
            .offset
            .as_ref()
            .map_or(0, |offset| offset.load(Ordering::SeqCst));
        let now = Instant::now();
        // The offset only ever grows (see `advance`), so it is never negative.
        now.checked_add(Duration::from_secs(u64::try_from(shift).unwrap_or(0)))
            .unwrap_or(now)
    }

    /// Time elapsed since `earlier` (an [`instant`](Self::instant) of this clock); zero if
    /// `earlier` is in the future.
    pub(crate) fn elapsed_since(&self, earlier: Instant) -> Duration {
        self.instant().saturating_duration_since(earlier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_cannot_be_moved() {
        let clock = Clock::system();
        assert!(!clock.advance(Duration::from_secs(3600)));
        assert!((clock.now() - unix_now()).abs() <= 1);
    }

    #[test]
    fn instants_move_with_the_clock() {
        let clock = Clock::adjustable();
        let start = clock.instant();
        assert!(clock.elapsed_since(start) < Duration::from_secs(1));
        clock.advance(Duration::from_secs(10));
        assert!(clock.elapsed_since(start) >= Duration::from_secs(10));
        assert_eq!(
            Clock::system().elapsed_since(Instant::now() + Duration::from_secs(5)),
            Duration::ZERO,
            "an instant in the future is no time ago"
        );
    }

    #[test]
    fn adjustable_clock_moves_its_clones() {
        let clock = Clock::adjustable();
        let clone = clock.clone();
        let before = clone.now();
        assert!(clock.advance(Duration::from_secs(3600)));
        let after = clone.now();
        assert!(
            (3600..=3601).contains(&(after - before)),
            "{before} → {after}"
        );
    }
}
