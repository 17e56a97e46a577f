//! [`OpConn`]: the pooled connection of one store operation, through which its statements run.
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
//! A transaction ([`Store::begin`]) is an `OpConn` that ran `BEGIN`: [`OpConn::commit`] ends it;
//! dropping it uncommitted rolls it back in the background before the connection goes back to
//! the pool, like sqlx's `Transaction` (whose connection could not be closed instead).
//!
//! Every statement of a SQLite connection is a round trip to its worker thread: two thread
//! wake-ups, which on these machines cost more than the statement. So on SQLite a transaction's
//! `BEGIN` is not sent alone: it travels in front of the transaction's first statement (one
//! round trip, one SQL text of two statements sharing the `$N` arguments), and
//! [`OpConn::execute_and_commit`] sends the last statement with its `COMMIT`.
//!
//! On SQLite a transaction may relax its commit's [`Durability`]: `PRAGMA synchronous` travels
//! with its `BEGIN` and is set back with its `COMMIT` (no extra statement), and a connection
//! whose transaction ended any other way is closed, so none goes back to the pool relaxed.
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
    /// Used by the transaction that stores a login's grant with its code. A single-statement
    /// write would need a transaction around it for the `PRAGMA` to travel with: two more
    /// round trips to SQLite's worker thread, which cost about what the saved sync gains
    /// (measured with `scripts/cost-per-login.sh`).
    Relaxed,
}

/// A pooled connection checked out for store operation `op` (see the module docs).
pub(crate) struct OpConn {
    /// `None` only while dropping.
    conn: Option<PoolConnection<Any>>,
    watch: Watch,
    /// A transaction is open (`BEGIN` ran, no `COMMIT` yet).
    in_tx: bool,
    /// The connection runs with `synchronous = NORMAL` until its `COMMIT` sets it back.
    relaxed: bool,
    /// SQLite: the `BEGIN` (and `PRAGMA`) still to be sent, in front of the next statement.
    deferred_begin: Option<&'static str>,
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
    /// `conn`, just acquired for `op` (admitted at `started`); its statements must be done
    /// within `timeout` from now.
    pub(super) fn new(
        conn: PoolConnection<Any>,
        breaker: Arc<Breaker>,
        engine: Engine,
        op: &'static str,
        started: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            conn: Some(conn),
            watch: Watch {
                breaker,
                engine,
                op,
                started,
                timeout,
                deadline: tokio::time::Instant::now() + timeout,
                broken: false,
                in_flight: false,
            },
            in_tx: false,
            relaxed: false,
            deferred_begin: None,
        }
    }

    /// The raw connection and the watch, borrowed apart.
    fn parts(&mut self) -> (&mut AnyConnection, &mut Watch) {
        let conn = self.conn.as_mut().expect("connection present until drop");
        (&mut **conn, &mut self.watch)
    }

    /// Starts a transaction (`BEGIN`) whose commit has `durability` (see [`Durability`]).
    pub(super) async fn begin(&mut self, durability: Durability) -> Result<(), sqlx::Error> {
        // Set first: a `BEGIN` that failed half-way leaves the connection in doubt.
        self.in_tx = true;
        self.relaxed = durability == Durability::Relaxed && self.watch.engine == Engine::Sqlite;
        let begin = if self.relaxed {
            "PRAGMA synchronous = NORMAL; BEGIN"
        } else {
            "BEGIN"
        };
        if self.watch.engine == Engine::Sqlite {
            // Sent with the first statement (see the module docs).
            self.deferred_begin = Some(begin);
            return Ok(());
        }
        let (conn, watch) = self.parts();
        watch.run(sqlx::raw_sql(begin).execute(conn)).await?;
        Ok(())
    }

    /// Sends a deferred `BEGIN` on its own, for a statement that cannot carry it.
    async fn flush_begin(&mut self) -> Result<(), sqlx::Error> {
        if let Some(begin) = self.deferred_begin.take() {
            let (conn, watch) = self.parts();
            watch.run(sqlx::raw_sql(begin).execute(conn)).await?;
        }
        Ok(())
    }

    /// `query`, with the deferred `BEGIN` in front of it if there is one.
    fn with_begin<'q>(
        &mut self,
        query: Query<'q, Any, AnyArguments>,
    ) -> Result<Query<'q, Any, AnyArguments>, sqlx::Error> {
        match self.deferred_begin.take() {
            Some(begin) => joined(begin, query, ""),
            None => Ok(query),
        }
    }

    /// Runs `query`, the transaction's last statement, and commits. On SQLite both travel in
    /// one round trip (with the deferred `BEGIN` too, for a one-statement transaction). A
    /// failure leaves the transaction open, to be rolled back on drop like any other.
    ///
    /// Returns nothing: on SQLite the joined statements' counts could not be told apart.
    pub(crate) async fn execute_and_commit(
        mut self,
        query: Query<'_, Any, AnyArguments>,
    ) -> Result<(), sqlx::Error> {
        if self.watch.engine != Engine::Sqlite {
            query.execute_in(&mut self).await?;
            return self.commit().await;
        }
        let begin = self.deferred_begin.take().unwrap_or("");
        let query = joined(begin, query, self.commit_sql())?;
        let (conn, watch) = self.parts();
        watch.run(query.execute(conn)).await?;
        self.in_tx = false;
        self.relaxed = false;
        Ok(())
    }

    /// What ends the transaction: `COMMIT`, and for a relaxed one the `PRAGMA` that sets the
    /// connection back.
    fn commit_sql(&self) -> &'static str {
        if self.relaxed {
            "COMMIT; PRAGMA synchronous = FULL"
        } else {
            "COMMIT"
        }
    }

    /// Commits the transaction [`Store::begin`](super::Store::begin) started.
    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        if self.deferred_begin.take().is_some() {
            // No statement ran: nothing was begun, nothing to commit.
            self.in_tx = false;
            self.relaxed = false;
            return Ok(());
        }
        // A failed COMMIT leaves `in_tx` set: SQLite keeps the transaction open after a busy
        // COMMIT, and a ROLLBACK after PostgreSQL ended it is harmless. It leaves `relaxed`
        // set too (the `PRAGMA` after it did not run), which closes the connection on drop.
        let commit = self.commit_sql();
        let (conn, watch) = self.parts();
        watch.run(sqlx::raw_sql(commit).execute(conn)).await?;
        self.in_tx = false;
        self.relaxed = false;
        Ok(())
    }
}

impl Drop for OpConn {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if self.deferred_begin.is_some() {
            // The transaction never reached the database: the connection is as it was.
            self.in_tx = false;
            self.relaxed = false;
        }
        let runtime = tokio::runtime::Handle::try_current();
        if self.watch.broken
            || self.watch.in_flight
            || self.relaxed
            || (self.in_tx && runtime.is_err())
        {
            // Closed here (the socket, or SQLite's worker once its statement ends); the pool
            // opens a replacement when needed. An open transaction dies with the connection.
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
            Ok(result) => {
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
        let query = conn.with_begin(self)?;
        let (conn, watch) = conn.parts();
        watch.run(query.execute(conn)).await
    }

    async fn fetch_optional_in(self, conn: &mut OpConn) -> Result<Option<AnyRow>, sqlx::Error> {
        if conn.deferred_begin.is_some() {
            // sqlx's `fetch_optional` reads only the first result, which would be `BEGIN`'s.
            let rows = self.fetch_all_in(conn).await?;
            return Ok(rows.into_iter().next());
        }
        let (conn, watch) = conn.parts();
        watch.run(self.fetch_optional(conn)).await
    }

    async fn fetch_one_in(self, conn: &mut OpConn) -> Result<AnyRow, sqlx::Error> {
        if conn.deferred_begin.is_some() {
            // As in `fetch_optional_in`.
            let rows = self.fetch_all_in(conn).await?;
            return rows.into_iter().next().ok_or(sqlx::Error::RowNotFound);
        }
        let (conn, watch) = conn.parts();
        watch.run(self.fetch_one(conn)).await
    }

    async fn fetch_all_in(self, conn: &mut OpConn) -> Result<Vec<AnyRow>, sqlx::Error> {
        let query = conn.with_begin(self)?;
        let (conn, watch) = conn.parts();
        watch.run(query.fetch_all(conn)).await
    }
}

/// `before; query; after` as one query with `query`'s arguments (empty parts left out). The
/// parts are our constant statements without parameters; `query`'s `$N` placeholders keep
/// their numbers, which SQLite binds in every statement of the text.
fn joined<'q>(
    before: &str,
    mut query: Query<'q, Any, AnyArguments>,
    after: &str,
) -> Result<Query<'q, Any, AnyArguments>, sqlx::Error> {
    use sqlx::Execute as _;
    let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
    let sql = query.sql();
    let text = [before, sql.as_str(), after]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    // Our statements and constants joined; values stay bound, never formatted in.
    let text = sqlx::AssertSqlSafe(text);
    Ok(match arguments {
        Some(arguments) => sqlx::query_with(text, arguments),
        None => sqlx::query(text),
    })
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
        conn.flush_begin().await?;
        let (conn, watch) = conn.parts();
        watch.run(self.fetch_optional(conn)).await
    }
}
