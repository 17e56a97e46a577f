//! Single flight: concurrent calls with the same key share one execution of the work.
//!
//! N requests arriving together with a token that is not cached yet would otherwise each look
//! it up in the database and each ask AuthKit about the session. The first caller runs the
//! work; the others wait for its result (errors included: a refused token is refused for all).
//! The entry is gone once the work is done, so a later call (after the cache has expired) runs
//! it afresh. Works across actix workers: the shared state is `Send + Sync`, while the work
//! itself (which may use `awc`) runs on the first caller's own worker.

use std::{
    collections::HashMap,
    future::Future,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::OnceCell;

/// Calls in flight, by key.
pub(crate) struct SingleFlight<K, V> {
    calls: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            calls: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` unless a call with `key` is already running; then waits for that call's
    /// result instead. If the running call is cancelled (its request went away), one of the
    /// waiters runs its own `work`.
    pub(crate) async fn run<F, Fut>(&self, key: K, work: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let cell = self.lock().entry(key.clone()).or_default().clone();
        let _leave = Leave {
            flight: self,
            key,
            cell: &cell,
        };
        cell.get_or_init(work).await.clone()
    }

    /// Number of keys in flight (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Arc<OnceCell<V>>>> {
        // A map of cells: a panic elsewhere cannot leave it half-written.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes the call's entry when a participant leaves (done or cancelled), unless a newer call
/// already replaced it. Callers that still wait hold their own reference to the cell.
struct Leave<'a, K: Eq + Hash + Clone, V: Clone> {
    flight: &'a SingleFlight<K, V>,
    key: K,
    cell: &'a Arc<OnceCell<V>>,
}

impl<K: Eq + Hash + Clone, V: Clone> Drop for Leave<'_, K, V> {
    fn drop(&mut self) {
        let mut calls = self.flight.lock();
        if calls
            .get(&self.key)
            .is_some_and(|current| Arc::ptr_eq(current, self.cell))
        {
            calls.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        cell::Cell,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use futures_util::future::join_all;

    use super::*;

    #[tokio::test]
    async fn concurrent_calls_share_one_execution() {
        let flight = SingleFlight::<u8, Result<u32, &str>>::new();
        let runs = AtomicUsize::new(0);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            // Let the other callers arrive while this one is running.
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            Ok(7)
        };
        let results = join_all((0..16).map(|_| flight.run(1, work))).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|r| *r == Ok(7)));
        assert_eq!(flight.len(), 0, "nothing left in flight");
    }

    #[tokio::test]
    async fn errors_are_shared_and_later_calls_run_again() {
        let flight = SingleFlight::<u8, Result<u32, &str>>::new();
        let runs = AtomicUsize::new(0);
        let work = || async {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            Err("refused")
        };
        let results = join_all((0..4).map(|_| flight.run(1, work))).await;
        assert!(results.iter().all(|r| *r == Err("refused")));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Done: the next call does the work again (the result is not cached here).
        assert_eq!(flight.run(1, work).await, Err("refused"));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn different_keys_do_not_wait_for_each_other() {
        let flight = SingleFlight::<u8, u8>::new();
        let runs = AtomicUsize::new(0);
        let results = join_all((0..4).map(|k| {
            let runs = &runs;
            flight.run(k, move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                k
            })
        }))
        .await;
        assert_eq!(results, vec![0, 1, 2, 3]);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over_to_a_waiter() {
        let flight = SingleFlight::<u8, u8>::new();
        let started = Cell::new(0);
        {
            // The leader starts and is dropped (its request went away) before finishing.
            let leader = flight.run(1, || async {
                started.set(started.get() + 1);
                std::future::pending::<u8>().await
            });
            let mut leader = Box::pin(leader);
            assert!(futures_util::FutureExt::now_or_never(leader.as_mut()).is_none());
        }
        assert_eq!(started.get(), 1);
        assert_eq!(flight.len(), 0, "the cancelled call left no entry behind");
        assert_eq!(flight.run(1, || async { 5 }).await, 5);
    }
}
