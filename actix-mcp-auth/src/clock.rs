//! Wall-clock time as unix seconds: what tokens, codes and database rows carry.
//!
//! [`Clock`] is the time source of a [`Store`](crate::store::Store) and of proxy mode's token
//! endpoint. It is the system clock, unless a test made it [`adjustable`](Clock::adjustable) so
//! it can jump forward over a time limit (the refresh-token grace) instead of sleeping through it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
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
