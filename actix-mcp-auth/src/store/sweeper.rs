//! Deleting expired rows: [`Store::purge_expired`] for cron-style use, and a background sweeper
//! ([`Store::spawn_sweeper`]) for long-running servers.
//!
//! Reads already ignore expired rows, so the sweeper only reclaims space and keeps indexes small;
//! how often it runs does not affect correctness. It deletes in small batches (`DELETE … WHERE
//! key IN (SELECT key … LIMIT n)`, portable to both engines) so no statement holds locks for
//! long, and children before parents so cascades have little left to do. Several replicas may
//! sweep at once: a row deleted by one is simply not found by the other.

use std::time::Duration;

use super::{Statement, Store, StoreError, tokens::clear_successor};

/// Rows deleted by one [`Store::purge_expired`] run, per table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Authorization codes.
    pub codes: u64,
    /// Access and refresh tokens.
    pub tokens: u64,
    /// Pending authorizations.
    pub pending: u64,
    /// Remembered consents.
    pub consents: u64,
    /// Grants (their remaining codes and tokens go by cascade).
    pub grants: u64,
    /// Client registrations.
    pub clients: u64,
    /// Cached client id metadata documents.
    pub cimd_documents: u64,
    /// Audit entries older than the audit retention.
    pub audit: u64,
    /// Sealed successor pairs of rotated refresh tokens whose grace is over (cleared, not
    /// deleted: the token's digest stays to recognize a replay).
    pub successors: u64,
}

impl PurgeReport {
    /// Rows deleted in all tables (not counting cascades).
    pub fn total(&self) -> u64 {
        self.codes
            + self.tokens
            + self.pending
            + self.consents
            + self.grants
            + self.clients
            + self.cimd_documents
            + self.audit
    }
}

/// One batch per table, children first. `$1` = now, `$2` = batch size.
const BATCHES: [&str; 8] = [
    "DELETE FROM mcp_auth_codes WHERE code_hash IN (SELECT code_hash FROM mcp_auth_codes \
     WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM mcp_auth_tokens WHERE token_hash IN (SELECT token_hash FROM mcp_auth_tokens \
     WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM mcp_auth_pending WHERE txn_id IN (SELECT txn_id FROM mcp_auth_pending \
     WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM mcp_auth_consents WHERE (subject, client_id) IN (SELECT subject, client_id \
     FROM mcp_auth_consents WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM mcp_auth_grants WHERE grant_id IN (SELECT grant_id FROM mcp_auth_grants \
     WHERE expires_at <= $1 LIMIT $2)",
    // Never-used registrations first, oldest first: they are what a registration flood leaves.
    "DELETE FROM mcp_auth_clients WHERE client_id IN (SELECT client_id FROM mcp_auth_clients \
     WHERE expires_at <= $1 \
     ORDER BY CASE WHEN client_id IN (SELECT client_id FROM mcp_auth_unused_clients) \
     THEN 0 ELSE 1 END, created_at LIMIT $2)",
    "DELETE FROM mcp_auth_cimd_documents WHERE url IN (SELECT url FROM mcp_auth_cimd_documents \
     WHERE expires_at <= $1 LIMIT $2)",
    "DELETE FROM mcp_auth_audit WHERE event_id IN (SELECT event_id FROM mcp_auth_audit \
     WHERE expires_at <= $1 LIMIT $2)",
];

/// Clears the sealed successor pairs whose grace is over. `$1` = now, `$2` = batch size.
const CLEAR_SUCCESSORS: &str = concat!(
    "UPDATE mcp_auth_tokens SET ",
    clear_successor!(),
    " WHERE token_hash IN (SELECT token_hash FROM mcp_auth_tokens \
     WHERE reuse_until <= $1 LIMIT $2)"
);

impl Store {
    /// Deletes every expired row, `batch_size` rows per statement, and clears the sealed
    /// successor pairs of rotated refresh tokens whose grace is over.
    pub async fn purge_expired(&self, batch_size: u32) -> Result<PurgeReport, StoreError> {
        const OP: &str = "purge_expired";
        let batch = i64::from(batch_size.max(1));
        let now = self.now();
        let mut counts = [0u64; BATCHES.len() + 1];
        let statements = std::iter::once(&CLEAR_SUCCESSORS).chain(BATCHES.iter());
        for (sql, count) in statements.zip(counts.iter_mut()) {
            loop {
                let turn = self.write_turn().await;
                let deleted = sqlx::query(*sql)
                    .bind(now)
                    .bind(batch)
                    .execute_in(&mut self.conn(OP).await?)
                    .await
                    .map_err(|e| StoreError::from_sqlx(OP, e))?
                    .rows_affected();
                drop(turn);
                *count += deleted;
                if deleted < batch as u64 {
                    break;
                }
                // Let request handlers in between batches.
                tokio::task::yield_now().await;
            }
        }
        let [
            successors,
            codes,
            tokens,
            pending,
            consents,
            grants,
            clients,
            cimd_documents,
            audit,
        ] = counts;
        Ok(PurgeReport {
            successors,
            codes,
            tokens,
            pending,
            consents,
            grants,
            clients,
            cimd_documents,
            audit,
        })
    }

    /// Starts a task that runs [`Store::purge_expired`] now and then every `interval`. Errors
    /// are logged and the next round tries again. The task stops when the returned handle is
    /// dropped or [`SweeperHandle::stop`]ped.
    ///
    /// Nothing in this crate starts a sweeper for you (building a provider has no background
    /// side effect): call this once per process, inside the runtime, and keep the handle for as
    /// long as the server runs. One sweeper per replica is plenty; several replicas sweeping
    /// the same database is harmless. Proxy mode's configured interval
    /// (`MCP_AUTH_SWEEP_INTERVAL_SECONDS`) is
    /// [`WorkOsProvider::sweep_interval`](crate::WorkOsProvider::sweep_interval):
    ///
    /// ```no_run
    /// # async fn run(store: actix_mcp_auth::store::Store) {
    /// let _sweeper = store.spawn_sweeper(std::time::Duration::from_secs(300), 500);
    /// // ... run the server; dropping `_sweeper` stops the task.
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime (actix-web's runtime is one).
    pub fn spawn_sweeper(&self, interval: Duration, batch_size: u32) -> SweeperHandle {
        let store = self.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.purge_expired(batch_size).await {
                    Ok(report) if report.total() > 0 => {
                        tracing::debug!(?report, "deleted expired OAuth state");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, transient = error.is_transient(), "sweeping expired OAuth state failed");
                    }
                }
            }
        });
        SweeperHandle { task }
    }
}

/// The background sweeper; stops it when dropped.
#[derive(Debug)]
#[must_use = "the sweeper stops when its handle is dropped"]
pub struct SweeperHandle {
    task: tokio::task::JoinHandle<()>,
}

impl SweeperHandle {
    /// Stops the sweeper. A batch in flight is abandoned; its statement either committed or did
    /// not, so nothing is left half-done.
    pub fn stop(self) {
        // Drop does the work.
    }

    /// Whether the sweeper task is still running.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for SweeperHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
