//! Fail fast while the database is unreachable: a circuit breaker in front of the pool.
//!
//! When PostgreSQL is down, acquiring a connection retries the connect until the pool's acquire
//! timeout, so every request that needs the database waits that long for its 503, and under load
//! such waiting requests pile up. After one acquire fails with a connection error the breaker
//! *opens*: store operations fail at once with a transient error (a 503 with `Retry-After`) and
//! touch neither the pool nor the network. Once per `probe_interval` an operation that arrives
//! starts a probe in the background (and fails fast itself: no request waits on a probe); if the
//! probe reaches the database the breaker closes, otherwise it stays open for another interval.
//! An outage is noticed by the first operation whose acquire fails, or whose statement fails
//! with a connection error or misses the operation's deadline (see `connection.rs`), or sooner
//! when the server refuses connections (see `reachability`): operations still waiting then give
//! up at once.
//!
//! A pool that is merely busy also times out acquires. That is not an outage as long as other
//! operations keep completing, so a failure opens the breaker only if no operation reached the
//! database while the failed one was waiting.
//!
//! The decision takes the current time as an argument, so it is tested with a controlled clock.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// What an operation may do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// The database answered last time: go ahead.
    Pass,
    /// The breaker is open but a probe is due: this operation starts it (and fails fast).
    Probe,
    /// The breaker is open: fail without touching the database.
    Refuse,
}

/// The breaker's state; shared by every clone of a store.
#[derive(Debug)]
pub(crate) struct Breaker {
    probe_interval: Duration,
    state: Mutex<State>,
    /// Bumped each time the breaker opens, so operations still waiting for a connection give
    /// up at once instead of waiting out the acquire timeout.
    opened: tokio::sync::watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// `None` while closed; while open, when the next probe may go.
    next_probe: Option<Instant>,
    /// When an operation last reached the database.
    last_success: Option<Instant>,
    /// When an operation last failed to, busy pool or not.
    last_failure: Option<Instant>,
}

impl Breaker {
    /// A closed breaker probing once per `probe_interval` while open.
    pub(crate) fn new(probe_interval: Duration) -> Self {
        Self {
            probe_interval,
            state: Mutex::default(),
            opened: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes each time the breaker opens (from closed).
    pub(crate) fn openings(&self) -> tokio::sync::watch::Receiver<u64> {
        self.opened.subscribe()
    }

    /// Whether an operation starting at `now` may use the database.
    pub(crate) fn admit(&self, now: Instant) -> Admission {
        let mut state = self.lock();
        match state.next_probe {
            None => Admission::Pass,
            Some(at) if now >= at => {
                // Other operations keep failing fast while this probe runs (it may wait for
                // the whole acquire timeout); a probe that never reports lets another go after
                // one more interval.
                state.next_probe = Some(now + self.probe_interval);
                Admission::Probe
            }
            Some(_) => Admission::Refuse,
        }
    }

    /// An operation reached the database at `now`: close the breaker.
    pub(crate) fn succeeded(&self, now: Instant) {
        let mut state = self.lock();
        state.next_probe = None;
        state.last_success = Some(state.last_success.map_or(now, |t| t.max(now)));
    }

    /// An operation admitted at `started` failed to reach the database at `now`. Unless
    /// another operation reached it in between, open the breaker (or keep it open) until
    /// `now + probe_interval`.
    pub(crate) fn failed(&self, started: Instant, now: Instant) {
        let mut state = self.lock();
        state.last_failure = Some(state.last_failure.map_or(now, |t| t.max(now)));
        if state.last_success.is_some_and(|t| t >= started) {
            return;
        }
        let until = now + self.probe_interval;
        let was_closed = state.next_probe.is_none();
        state.next_probe = Some(state.next_probe.map_or(until, |at| at.max(until)));
        drop(state);
        if was_closed {
            self.opened.send_modify(|openings| *openings += 1);
        }
    }

    /// Whether some operation reached the database at or after `since`: then a slow acquire
    /// means a busy pool, not an outage.
    pub(crate) fn succeeded_since(&self, since: Instant) -> bool {
        self.lock().last_success.is_some_and(|t| t >= since)
    }

    /// When an operation last found the database unreachable (whether or not that opened the
    /// breaker): connections idle since then may be dead too.
    pub(crate) fn last_failure(&self) -> Option<Instant> {
        self.lock().last_failure
    }

    /// Whether the breaker is open (for logs and tests).
    pub(crate) fn is_open(&self) -> bool {
        self.lock().next_probe.is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is plain values: a panic elsewhere cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a failed acquire or statement means the database is unreachable, as opposed to a
/// busy SQLite file or a statement the database refused: only these open the breaker.
pub(crate) fn is_connection_failure(err: &sqlx::Error) -> bool {
    match err {
        // With the server down, sqlx retries refused connects until the acquire timeout and
        // then reports this.
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // SQLSTATE class 08 (connection exception) and 57P01..03 (shutting down, starting).
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(2);

    fn at(t0: Instant, millis: u64) -> Instant {
        t0 + Duration::from_millis(millis)
    }

    #[test]
    fn closed_breaker_lets_everything_pass() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        for ms in [0, 10, 10_000] {
            assert_eq!(breaker.admit(at(t0, ms)), Admission::Pass);
        }
        assert!(!breaker.is_open());
    }

    #[test]
    fn a_failure_refuses_until_the_interval_then_one_probe() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        breaker.failed(t0, t0);
        assert!(breaker.is_open());
        for ms in [0, 1, 500, 1_999] {
            assert_eq!(breaker.admit(at(t0, ms)), Admission::Refuse, "{ms} ms");
        }
        assert_eq!(breaker.admit(at(t0, 2_000)), Admission::Probe);
        // One probe per interval: the others still fail fast while it runs.
        for ms in [2_000, 2_001, 3_999] {
            assert_eq!(breaker.admit(at(t0, ms)), Admission::Refuse, "{ms} ms");
        }
        // A probe that never reported: the next one goes an interval later.
        assert_eq!(breaker.admit(at(t0, 4_000)), Admission::Probe);
    }

    #[test]
    fn a_success_after_an_operation_started_means_a_busy_pool() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        assert!(!breaker.succeeded_since(t0));
        breaker.succeeded(at(t0, 10));
        assert!(breaker.succeeded_since(t0));
        assert!(breaker.succeeded_since(at(t0, 10)));
        assert!(!breaker.succeeded_since(at(t0, 11)));
    }

    #[test]
    fn a_failed_probe_keeps_it_open_a_successful_one_closes_it() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        breaker.failed(t0, t0);
        assert_eq!(breaker.admit(at(t0, 2_000)), Admission::Probe);
        breaker.failed(at(t0, 2_000), at(t0, 3_000)); // the probe waited 1 s, then failed
        assert_eq!(breaker.admit(at(t0, 4_999)), Admission::Refuse);
        assert_eq!(breaker.admit(at(t0, 5_000)), Admission::Probe);
        breaker.succeeded(at(t0, 5_000));
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(at(t0, 5_001)), Admission::Pass);
    }

    #[test]
    fn a_busy_pool_is_not_an_outage() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        // An operation waited from 0 to 2 s for a connection while others completed.
        breaker.succeeded(at(t0, 1_500));
        breaker.failed(t0, at(t0, 2_000));
        assert!(!breaker.is_open());
        // Nothing completed since this one started: the database does not answer.
        breaker.failed(at(t0, 1_600), at(t0, 3_600));
        assert!(breaker.is_open());
    }

    #[test]
    fn late_failures_never_bring_the_probe_forward() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        breaker.failed(t0, at(t0, 1_000));
        // A request that started before the outage reports its failure with an older time.
        breaker.failed(t0, t0);
        assert_eq!(breaker.admit(at(t0, 2_500)), Admission::Refuse);
        assert_eq!(breaker.admit(at(t0, 3_000)), Admission::Probe);
    }

    #[test]
    fn only_connection_failures_open_it() {
        assert!(is_connection_failure(&sqlx::Error::PoolTimedOut));
        assert!(is_connection_failure(&sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
        )));
        assert!(!is_connection_failure(&sqlx::Error::RowNotFound));
        assert!(!is_connection_failure(&sqlx::Error::PoolClosed));
    }

    /// What a statement can fail with: the server going away is an outage, the server
    /// refusing the statement is an answer.
    #[test]
    fn statement_failures_that_mean_the_connection_is_gone() {
        for code in ["08006", "08003", "57P01", "57P02", "57P03"] {
            assert!(is_connection_failure(&database_error(code)), "{code}");
        }
        for code in ["23505", "40001", "40P01", "57014", "42P01", "5", "2067"] {
            assert!(!is_connection_failure(&database_error(code)), "{code}");
        }
        // The deadline of a store operation (`connection.rs`) and a reset mid-statement.
        for kind in [
            std::io::ErrorKind::TimedOut,
            std::io::ErrorKind::UnexpectedEof,
            std::io::ErrorKind::ConnectionReset,
        ] {
            assert!(
                is_connection_failure(&sqlx::Error::Io(kind.into())),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_statement_that_fails_after_an_earlier_success_opens_it() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        // The last success was before this operation started: it says nothing about now.
        breaker.succeeded(t0);
        breaker.failed(at(t0, 1), at(t0, 301));
        assert!(breaker.is_open());
        assert_eq!(breaker.admit(at(t0, 302)), Admission::Refuse);
    }

    #[test]
    fn every_failure_is_remembered_even_in_a_busy_pool() {
        let breaker = Breaker::new(INTERVAL);
        let t0 = Instant::now();
        assert_eq!(breaker.last_failure(), None);
        breaker.succeeded(at(t0, 500));
        // Not an outage (another operation completed meanwhile), but a connection died.
        breaker.failed(t0, at(t0, 600));
        assert!(!breaker.is_open());
        assert_eq!(breaker.last_failure(), Some(at(t0, 600)));
        // A late report of an older failure does not move it back.
        breaker.failed(t0, at(t0, 550));
        assert_eq!(breaker.last_failure(), Some(at(t0, 600)));
    }

    #[test]
    fn openings_wake_waiting_operations_once_per_opening() {
        let breaker = Breaker::new(INTERVAL);
        let openings = breaker.openings();
        let t0 = Instant::now();
        breaker.failed(t0, t0);
        // Already open: a second failure is no new opening.
        breaker.failed(t0, at(t0, 10));
        assert_eq!(*openings.borrow(), 1);
        breaker.succeeded(at(t0, 2_000));
        breaker.failed(at(t0, 2_001), at(t0, 2_100));
        assert_eq!(*openings.borrow(), 2);
    }

    /// A database error with SQLSTATE (or SQLite code) `code`.
    fn database_error(code: &'static str) -> sqlx::Error {
        #[derive(Debug)]
        struct Coded(&'static str);
        impl std::fmt::Display for Coded {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "error {}", self.0)
            }
        }
        impl std::error::Error for Coded {}
        impl sqlx::error::DatabaseError for Coded {
            fn message(&self) -> &str {
                "test error"
            }
            fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
                Some(self.0.into())
            }
            fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
                self
            }
            fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
                self
            }
            fn kind(&self) -> sqlx::error::ErrorKind {
                sqlx::error::ErrorKind::Other
            }
        }
        sqlx::Error::Database(Box::new(Coded(code)))
    }
}
