//! [`OpConn`]: the connection of one store operation, through which its statements run.
//!
//! Every statement of an operation runs through [`Statement`] (`execute_in`, `fetch_…_in`)
//! instead of sqlx's executor methods, so that in one place:
//!
//! * the operation has a deadline ([`StoreOptions::statement_timeout`]): a statement still
//!   waiting when it passes fails with a transient error. Without it a statement on a connection
//!   into a network partition (no reset, packets dropped) waits for TCP, minutes;
//! * a connection failure of a statement (I/O error, SQLSTATE 08xxx or 57P0x, the deadline on
//!   PostgreSQL) reaches the breaker like a failed acquire, and a statement that completes tells
//!   the breaker the database answers (see `breaker.rs`);
//! * a connection that failed, missed the deadline, or whose statement was dropped half-way is
//!   closed rather than returned to the pool. sqlx would ping it on return; on a partition that
//!   ping never ends and holds a pool slot, and a half-read reply must not reach the next user.
//!
//! Two kinds of connection stand behind it: PostgreSQL's, pooled by sqlx, and a SQLite file's,
//! direct (`direct_sqlite.rs`): its statements run on the operation's thread, and only a commit
//! that syncs, or a wait for another process's lock, goes to a blocking thread.
//!
//! A transaction ([`Store::begin`]) is an `OpConn` that ran `BEGIN`: [`OpConn::commit`] ends it.
//! Dropped uncommitted, it rolls back before the connection goes back to the pool, like sqlx's
//! `Transaction`: on PostgreSQL in the background (or the connection is closed instead), on
//! SQLite at once (a rollback does not wait for the disk).
//!
//! On SQLite a transaction may relax its commit's [`Durability`]: `PRAGMA synchronous` is set
//! before its `BEGIN` and set back after its `COMMIT`, or after the rollback of a transaction
//! dropped uncommitted, so no connection goes back to the pool relaxed.
//!
//! [`StoreOptions::statement_timeout`]: super::StoreOptions::statement_timeout
//! [`Store::begin`]: super::Store::begin

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sqlx::{
    Any, AnyConnection,
    any::{AnyArguments, AnyQueryResult, AnyRow},
    pool::PoolConnection,
    query::{Query, QueryScalar},
};

#[cfg(feature = "sqlite")]
use super::direct_sqlite::{self, DirectConn, Outcome};
use super::{
    Engine,
    breaker::{self, Breaker},
};

/// How a write must reach the disk before its commit returns. Only SQLite has a choice;
/// every PostgreSQL commit is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Durability {
    /// `synchronous = FULL`: the WAL is synced at the commit (every connection's setting).
    Full,
    /// `synchronous = NORMAL` for this commit: it survives a crash of the process, and the next
    /// full commit of any operation syncs it too (the WAL is one file, written in order), but
    /// an OS crash or power loss before then may undo it. What survives is always a prefix of
    /// the commits (the WAL's frames are checksummed in a chain). Only for writes whose loss ends a
    /// login in progress with an error, never for what a check relies on (a consumed code, a
    /// rotation, a revocation) or what a client keeps (its registration, its tokens).
    ///
    /// Used for the steps of a login before its code is redeemed: the pending authorization
    /// (`create_pending`), the user's approval (`approve_pending`; lost, its consent token
    /// could approve the same request from the same browser again), and the grant with its
    /// code. Each is followed within seconds by a full commit (the callback's claim, the
    /// code's redemption), which syncs it too. Also for a grant's last-use time, which only
    /// informs the connected-apps page. On SQLite such a commit also stays on the operation's
    /// thread (no sync to wait for).
    Relaxed,
}

/// A connection checked out for store operation `op` (see the module docs).
pub(crate) struct OpConn {
    link: Link,
    watch: Watch,
    /// A transaction is open (`BEGIN` ran, no `COMMIT` yet).
    in_tx: bool,
    /// SQLite: the connection runs with `synchronous = NORMAL` until it is set back.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    relaxed: bool,
}

/// The connection behind an [`OpConn`]; `None` only while dropping (and, for a direct one,
/// once lost with a statement past the deadline).
enum Link {
    /// PostgreSQL, pooled by sqlx.
    Sqlx(Option<PoolConnection<Any>>),
    /// A SQLite file.
    #[cfg(feature = "sqlite")]
    Direct(Option<DirectConn>),
}

/// What an operation's statements report to, and how long they may take.
struct Watch {
    breaker: Arc<Breaker>,
    engine: Engine,
    op: &'static str,
    /// When the breaker admitted the operation: a failure opens the breaker only if no other
    /// operation reached the database since.
    started: Instant,
    timeout: Duration,
    deadline: tokio::time::Instant,
    /// The connection must not go back to the pool (failed, or missed the deadline).
    broken: bool,
    /// A statement is running; still set on drop means its future was dropped half-way.
    in_flight: bool,
}

impl OpConn {
    /// `conn`, just acquired from sqlx's pool for `op` (admitted at `started`); its
    /// statements must be done within `timeout` from now.
    pub(super) fn new(
        conn: PoolConnection<Any>,
        breaker: Arc<Breaker>,
        engine: Engine,
        op: &'static str,
        started: Instant,
        timeout: Duration,
    ) -> Self {
        let watch = Watch::new(breaker, engine, op, started, timeout);
        Self::over(Link::Sqlx(Some(conn)), watch)
    }

    /// [`OpConn::new`] for a direct SQLite connection.
    #[cfg(feature = "sqlite")]
    pub(super) fn direct(
        conn: DirectConn,
        breaker: Arc<Breaker>,
        op: &'static str,
        started: Instant,
        timeout: Duration,
    ) -> Self {
        let watch = Watch::new(breaker, Engine::Sqlite, op, started, timeout);
        Self::over(Link::Direct(Some(conn)), watch)
    }

    /// An operation's connection, before any statement.
    fn over(link: Link, watch: Watch) -> Self {
        Self {
            link,
            watch,
            in_tx: false,
            relaxed: false,
        }
    }

    /// The sqlx connection and the watch, borrowed apart; `None` for a direct connection.
    fn sqlx_parts(&mut self) -> Option<(&mut AnyConnection, &mut Watch)> {
        match &mut self.link {
            Link::Sqlx(conn) => {
                let conn = conn.as_mut().expect("connection present until drop");
                Some((&mut **conn, &mut self.watch))
            }
            #[cfg(feature = "sqlite")]
            Link::Direct(_) => None,
        }
    }

    /// Starts a transaction (`BEGIN`) whose commit has `durability` (see [`Durability`]).
    pub(super) async fn begin(&mut self, durability: Durability) -> Result<(), sqlx::Error> {
        // Set first: a `BEGIN` that failed half-way leaves the connection in doubt.
        self.in_tx = true;
        if let Some((conn, watch)) = self.sqlx_parts() {
            watch.run(sqlx::raw_sql("BEGIN").execute(conn)).await?;
            return Ok(());
        }
        self.set_durability(durability)?;
        // A deferred `BEGIN` takes no lock: it runs on this thread.
        #[cfg(feature = "sqlite")]
        self.run_direct("BEGIN", Vec::new()).await?;
        Ok(())
    }

    /// Gives the commits of this connection `durability` (SQLite; see [`Durability`]): its
    /// transaction's, or each write's outside one. A relaxed connection is set back to
    /// `synchronous = FULL` before it returns to the pool.
    pub(super) fn set_durability(&mut self, durability: Durability) -> Result<(), sqlx::Error> {
        #[cfg(feature = "sqlite")]
        if durability == Durability::Relaxed
            && !self.relaxed
            && let Link::Direct(Some(direct)) = &mut self.link
        {
            // Set first: a `PRAGMA` that failed half-way leaves the connection in doubt.
            self.relaxed = true;
            let relaxed = direct.run("PRAGMA synchronous = NORMAL", &[]);
            self.watch.settle(relaxed)?;
        }
        #[cfg(not(feature = "sqlite"))]
        let _ = durability;
        Ok(())
    }

    /// Runs `query`, the transaction's last statement, and commits. A failure leaves the
    /// transaction open, to be rolled back on drop like any other.
    pub(crate) async fn execute_and_commit(
        mut self,
        query: Query<'_, Any, AnyArguments>,
    ) -> Result<(), sqlx::Error> {
        query.execute_in(&mut self).await?;
        self.commit().await
    }

    /// Commits the transaction [`Store::begin`](super::Store::begin) started.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        // A failed COMMIT leaves `in_tx` set: SQLite keeps the transaction open after a busy
        // COMMIT, and a ROLLBACK after PostgreSQL ended it is harmless.
        if let Some((conn, watch)) = self.sqlx_parts() {
            watch.run(sqlx::raw_sql("COMMIT").execute(conn)).await?;
            self.in_tx = false;
            return Ok(());
        }
        #[cfg(feature = "sqlite")]
        self.commit_direct().await?;
        Ok(())
    }
}

#[cfg(feature = "sqlite")]
impl OpConn {
    /// Runs `sql` on the direct connection: on this thread, unless it commits with a sync
    /// (a write outside a transaction) or must wait for another process's lock; those run on
    /// a blocking thread within the deadline (see `direct_sqlite.rs`).
    async fn run_direct(
        &mut self,
        sql: impl sqlx::SqlSafeStr,
        arguments: Vec<sqlx_core::any::AnyValueKind>,
    ) -> Result<Outcome, sqlx::Error> {
        let sql = sql.into_sql_str();
        let in_tx = self.in_tx;
        let Link::Direct(Some(direct)) = &mut self.link else {
            return Err(direct_sqlite::lost());
        };
        let syncs = !in_tx && !self.relaxed && direct.writes(sql.as_str())?;
        if !syncs {
            let result = direct.run(sql.as_str(), &arguments);
            if !result.as_ref().err().is_some_and(direct_sqlite::is_busy) {
                return self.watch.settle(result);
            }
        }
        let work =
            move |conn: &rusqlite::Connection| direct_sqlite::run(conn, sql.as_str(), &arguments);
        let deadline = self.watch.deadline;
        self.watch.run(direct.offload(deadline, work)).await
    }

    /// Runs `query` on the direct connection ([`OpConn::run_direct`]).
    async fn run_direct_query<'q>(
        &mut self,
        mut query: impl sqlx::Execute<'q, Any>,
    ) -> Result<Outcome, sqlx::Error> {
        let arguments = query
            .take_arguments()
            .map_err(sqlx::Error::Encode)?
            .map(|arguments| arguments.values.0)
            .unwrap_or_default();
        self.run_direct(query.sql(), arguments).await
    }

    /// Commits on the direct connection: a relaxed commit (no sync) on this thread, then sets
    /// the connection back to `synchronous = FULL`; a full one on a blocking thread.
    async fn commit_direct(&mut self) -> Result<(), sqlx::Error> {
        if self.relaxed {
            // Still inside the transaction for `run_direct`: this thread.
            self.run_direct("COMMIT", Vec::new()).await?;
            self.in_tx = false;
            // On this thread too: the connection is still relaxed, so nothing waits to sync.
            self.run_direct("PRAGMA synchronous = FULL", Vec::new())
                .await?;
            self.relaxed = false;
            return Ok(());
        }
        let Link::Direct(Some(direct)) = &mut self.link else {
            return Err(direct_sqlite::lost());
        };
        let commit = |conn: &rusqlite::Connection| {
            conn.execute_batch("COMMIT")
                .map_err(direct_sqlite::into_sqlx)
        };
        let deadline = self.watch.deadline;
        self.watch.run(direct.offload(deadline, commit)).await?;
        self.in_tx = false;
        Ok(())
    }

    /// Ends on this thread what a direct connection dropped half-way left open (a rollback and
    /// a `PRAGMA` do not wait for the disk); a connection that cannot is closed.
    fn drop_direct(&mut self, mut direct: DirectConn) {
        if self.watch.broken || self.watch.in_flight {
            direct.discard();
            return;
        }
        let mut reset = Vec::new();
        if self.in_tx {
            reset.push("ROLLBACK");
        }
        if self.relaxed {
            reset.push("PRAGMA synchronous = FULL");
        }
        for sql in reset {
            if direct.run(sql, &[]).is_err() {
                direct.discard();
                return;
            }
        }
    }
}

impl Drop for OpConn {
    fn drop(&mut self) {
        let conn = match &mut self.link {
            Link::Sqlx(conn) => conn.take(),
            #[cfg(feature = "sqlite")]
            Link::Direct(direct) => {
                if let Some(direct) = direct.take() {
                    self.drop_direct(direct);
                }
                return;
            }
        };
        let Some(mut conn) = conn else {
            return;
        };
        let runtime = tokio::runtime::Handle::try_current();
        if self.watch.broken || self.watch.in_flight || (self.in_tx && runtime.is_err()) {
            // Closed here; the pool opens a replacement when needed. An open transaction dies
            // with the connection.
            drop(conn.detach());
        } else if let (true, Ok(runtime)) = (self.in_tx, runtime) {
            // Back to the pool only once rolled back (or closed, if that fails or hangs).
            let timeout = self.watch.timeout;
            runtime.spawn(async move {
                let rollback = sqlx::raw_sql("ROLLBACK").execute(&mut *conn);
                if !matches!(tokio::time::timeout(timeout, rollback).await, Ok(Ok(_))) {
                    drop(conn.detach());
                }
            });
        }
    }
}

impl Watch {
    fn new(
        breaker: Arc<Breaker>,
        engine: Engine,
        op: &'static str,
        started: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            breaker,
            engine,
            op,
            started,
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
            broken: false,
            in_flight: false,
        }
    }

    /// Reports the outcome of a statement that ran to the breaker.
    fn settle<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        match &result {
            Err(error) if breaker::is_connection_failure(error) => {
                self.broken = true;
                self.connection_failed();
            }
            // A row, or an answer of the database (a constraint, a busy file...).
            _ => self.breaker.succeeded(Instant::now()),
        }
        result
    }

    /// Runs one statement of the operation within its deadline and reports the outcome to
    /// the breaker.
    async fn run<T>(
        &mut self,
        statement: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        self.in_flight = true;
        let outcome = tokio::time::timeout_at(self.deadline, statement).await;
        self.in_flight = false;
        match outcome {
            Ok(result) => self.settle(result),
            Err(_elapsed) => {
                self.broken = true;
                tracing::warn!(
                    op = self.op,
                    timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                    "store operation missed its deadline; closing its connection"
                );
                // A SQLite statement past the deadline waits for a lock or the disk, not for
                // a network: nothing for the breaker.
                if self.engine == Engine::Postgres {
                    self.connection_failed();
                }
                Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "store operation deadline passed",
                )))
            }
        }
    }

    fn connection_failed(&self) {
        super::note_connection_failure(&self.breaker, self.op, self.started);
    }
}

/// sqlx's executor methods of a query, run on an [`OpConn`] (see the module docs).
pub(crate) trait Statement {
    /// `Query::execute`.
    async fn execute_in(self, conn: &mut OpConn) -> Result<AnyQueryResult, sqlx::Error>;
    /// `Query::fetch_optional`.
    async fn fetch_optional_in(self, conn: &mut OpConn) -> Result<Option<AnyRow>, sqlx::Error>;
    /// `Query::fetch_one`.
    async fn fetch_one_in(self, conn: &mut OpConn) -> Result<AnyRow, sqlx::Error>;
    /// `Query::fetch_all`.
    async fn fetch_all_in(self, conn: &mut OpConn) -> Result<Vec<AnyRow>, sqlx::Error>;
}

impl Statement for Query<'_, Any, AnyArguments> {
    async fn execute_in(self, conn: &mut OpConn) -> Result<AnyQueryResult, sqlx::Error> {
        match conn.sqlx_parts() {
            Some((conn, watch)) => watch.run(self.execute(conn)).await,
            #[cfg(feature = "sqlite")]
            None => Ok(conn.run_direct_query(self).await?.done),
            #[cfg(not(feature = "sqlite"))]
            None => unreachable!("only sqlx connections without the sqlite feature"),
        }
    }

    async fn fetch_optional_in(self, conn: &mut OpConn) -> Result<Option<AnyRow>, sqlx::Error> {
        match conn.sqlx_parts() {
            Some((conn, watch)) => watch.run(self.fetch_optional(conn)).await,
            None => Ok(self.fetch_all_in(conn).await?.into_iter().next()),
        }
    }

    async fn fetch_one_in(self, conn: &mut OpConn) -> Result<AnyRow, sqlx::Error> {
        match conn.sqlx_parts() {
            Some((conn, watch)) => watch.run(self.fetch_one(conn)).await,
            None => self
                .fetch_optional_in(conn)
                .await?
                .ok_or(sqlx::Error::RowNotFound),
        }
    }

    async fn fetch_all_in(self, conn: &mut OpConn) -> Result<Vec<AnyRow>, sqlx::Error> {
        match conn.sqlx_parts() {
            Some((conn, watch)) => watch.run(self.fetch_all(conn)).await,
            #[cfg(feature = "sqlite")]
            None => Ok(conn.run_direct_query(self).await?.rows),
            #[cfg(not(feature = "sqlite"))]
            None => unreachable!("only sqlx connections without the sqlite feature"),
        }
    }
}

/// [`Statement`] for `sqlx::query_scalar`.
pub(crate) trait ScalarStatement<O> {
    /// `QueryScalar::fetch_optional`.
    async fn fetch_optional_in(self, conn: &mut OpConn) -> Result<Option<O>, sqlx::Error>;
}

impl<O> ScalarStatement<O> for QueryScalar<'_, Any, O, AnyArguments>
where
    O: Send + Unpin,
    (O,): for<'r> sqlx::FromRow<'r, AnyRow>,
{
    async fn fetch_optional_in(self, conn: &mut OpConn) -> Result<Option<O>, sqlx::Error> {
        match conn.sqlx_parts() {
            Some((conn, watch)) => watch.run(self.fetch_optional(conn)).await,
            #[cfg(feature = "sqlite")]
            None => {
                let row = conn.run_direct_query(self).await?.rows.into_iter().next();
                row.map(|row| <(O,) as sqlx::FromRow<'_, AnyRow>>::from_row(&row).map(|(o,)| o))
                    .transpose()
            }
            #[cfg(not(feature = "sqlite"))]
            None => unreachable!("only sqlx connections without the sqlite feature"),
        }
    }
}
