//! Persistent OAuth state shared by every replica: [`Store`] over a sqlx `AnyPool`, on
//! PostgreSQL or SQLite, with one SQL text for both engines.
//!
//! # Model
//!
//! | table | record | key | lifetime |
//! |---|---|---|---|
//! | `mcp_auth_clients` | `ClientRecord` | `client_id` | extended to cover every grant made for it |
//! | `mcp_auth_unused_clients` | (`UnusedClients` counts them) | `client_id` | from registration to the client's first grant |
//! | `mcp_auth_pending` | `PendingAuthorization` | `txn_id` | minutes; consumed at the upstream callback |
//! | `mcp_auth_consents` | `ConsentApproval` | `(subject, client_id)` | remembered approvals |
//! | `mcp_auth_grants` | `Grant` | `grant_id` | the user's session with one client |
//! | `mcp_auth_codes` | `AuthorizationCode` | `code_hash` | minutes; single use |
//! | `mcp_auth_tokens` | `IssuedToken` | `token_hash` | capped at the grant's expiry |
//! | `mcp_auth_cimd_documents` | `CachedDocument` | `url` | document lifetime + 24 h stale grace |
//! | `mcp_auth_audit` | [`AuditEntry`](audit::AuditEntry) | `event_id` | append-only; the audit retention |
//!
//! Codes and tokens are stored as SHA-256 digests (`TokenHash`); upstream tokens, the
//! upstream PKCE verifier and, during the refresh grace only, a rotation's successor pair are
//! sealed with AES-256-GCM by the store's [`Keyring`] (see
//! `store/crypto.rs`). Records hand them over as `Secret`s; sealing and opening happen inside the store.
//!
//! # Atomicity
//!
//! No operation relies on an in-process lock for correctness, so any replica can serve any
//! step (on SQLite the writers of one process queue on a gate, only to spare them the busy
//! handler's sleeps):
//!
//! * single-use items are consumed by one statement: `DELETE … RETURNING` (pending
//!   authorizations) or `UPDATE … WHERE used_at IS NULL … RETURNING` (codes, consent tokens). Of
//!   two concurrent consumers exactly one gets the row; a consumed code stays behind so a second
//!   redemption is reported as `CodeConsumed::Replayed` and the caller can revoke the grant. A
//!   code is consumed only by the client, redirect URI and PKCE challenge the caller checked
//!   first, so a wrong guess burns nothing, and in one transaction with the insert of its token
//!   pair. The consent token and the callback's claim of a pending authorization also check the
//!   browser binding (and the approval) in their single-use statement, so nothing is read first;
//!   a caller reads only after a refusal, to say why;
//! * refresh rotation is a compare-and-swap on `rotated_at IS NULL` followed by the insert of the
//!   new pair, in one database transaction (`Rotation`): of N concurrent rotations of one token
//!   exactly one mints a pair, and during the grace every other one gets that same pair back
//!   (kept sealed until the grace ends);
//! * multi-row changes (grant + code, token pair, revocation) run in one database transaction;
//! * a transaction that writes a grant and its tokens writes the grant's row first (issuing,
//!   rotating, revoking): one lock order, so on PostgreSQL they queue instead of deadlocking;
//! * upstream token refresh is a compare-and-swap on a version counter (`UpstreamUpdate`).
//!
//! Every transaction starts with its write. On SQLite a deferred transaction that reads first and
//! writes later cannot wait for the write lock (it fails with `SQLITE_BUSY` at once); starting with
//! the write lets the busy timeout do its job. PostgreSQL runs at READ COMMITTED, where a blocked
//! `UPDATE` re-checks its `WHERE` clause once the other transaction commits, which is exactly the
//! compare-and-swap we need.
//!
//! # Expiry
//!
//! Every row has `expires_at` (unix seconds). Reads ignore expired rows; [`Store::purge_expired`]
//! and the sweeper ([`Store::spawn_sweeper`], started explicitly by the application, never as a
//! side effect of building a provider) delete them in small batches. Tokens never outlive their
//! grant: the store caps their expiry at the grant's.
//!
//! # Engines
//!
//! * `postgres://user:pass@host/db`: a pool of `max_connections` connections.
//! * `sqlite://path/to/file.db`: the file is created when missing (unless the URL sets a `mode=`
//!   other than `rwc`), readable and writable by its owner only (mode 0600 on unix; SQLite gives
//!   the `-wal` and `-shm` files the database file's mode), switched to WAL, with a busy
//!   timeout, foreign keys on and `synchronous = FULL`, so several processes can share it and a
//!   committed revocation survives a power loss. The steps of a login before its code is
//!   redeemed relax that (see `Durability::Relaxed`): an OS crash may undo them, which only
//!   fails that login; the redemption's own commit is full. The operations run on direct
//!   connections (`direct_sqlite.rs`: statements on the operation's thread, no worker-thread
//!   hop each); migrations run on sqlx's. An in-memory database (`sqlite::memory:`) is refused:
//!   every connection would get its own. The URL may set `mode` and `cache=private` only.
//!
//! The Any driver needs its drivers installed; [`Store::connect`] calls
//! `sqlx::any::install_default_drivers()` (idempotent). sqlx allows one driver list per process,
//! so an application must not also install its own through `sqlx::any::install_drivers`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;
use sqlx::{
    AnyPool, AssertSqlSafe, Row as _,
    any::{AnyPoolOptions, AnyRow},
};

use crate::clock::Clock;

use self::{
    breaker::{Admission, Breaker},
    reachability::Reachability,
};

pub mod audit;
mod breaker;
mod cimd;
pub(crate) mod clients;
pub(crate) mod codes;
mod connection;
mod consents;
pub(crate) mod crypto;
#[cfg(feature = "sqlite")]
mod direct_sqlite;
mod error;
pub(crate) mod grants;
mod migrate;
mod pending;
mod reachability;
mod revocation;
mod sweeper;
pub(crate) mod tokens;

pub(crate) use self::{
    cimd::CachedDocument,
    clients::ClientRecord,
    codes::{AuthorizationCode, CodeConsumed, CodeRedemption},
    connection::{Durability, OpConn, ScalarStatement, Statement},
    consents::ConsentApproval,
    crypto::{Secret, TokenHash},
    grants::{Grant, UpstreamTokens, UpstreamUpdate},
    migrate::{MIGRATIONS_TABLE, migrator},
    pending::PendingAuthorization,
    revocation::RevokeCause,
    tokens::{IssuedTokens, NewTokens, Rotation, SuccessorTokens, TokenKind},
};
pub use self::{
    crypto::{ENCRYPTION_KEYS_VAR, Keyring},
    error::StoreError,
    revocation::{GrantSelection, GrantSummary, LAST_USED_RESOLUTION_SECS},
    sweeper::{PurgeReport, SweeperHandle},
};

/// The database engine behind a [`Store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// SQLite (`sqlite:`).
    Sqlite,
}

impl Engine {
    fn from_url(url: &str) -> Option<Self> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Some(Self::Postgres),
            "sqlite" => Some(Self::Sqlite),
            _ => None,
        }
    }
}

/// Pool and engine settings of a [`Store`]. `StoreOptions::default()` suits most servers;
/// [`StoreOptions::from_env`] reads the pool settings from the environment.
#[derive(Clone, Debug)]
#[must_use]
pub struct StoreOptions {
    max_connections: u32,
    acquire_timeout: Duration,
    statement_timeout: Duration,
    busy_timeout: Duration,
    clock: Clock,
    probe_interval: Duration,
    audit_retention: Duration,
}

/// Default of [`StoreOptions::audit_retention`]: 90 days.
const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// Default of [`StoreOptions::acquire_timeout`]: see the README's performance section for the
/// measurement behind it.
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default of [`StoreOptions::statement_timeout`]: far above what a store operation takes on a
/// healthy database (milliseconds), short enough that requests caught by a network partition
/// answer 503 instead of waiting minutes for TCP.
const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default of [`StoreOptions::max_connections`].
const DEFAULT_MAX_CONNECTIONS: u32 = 10;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            busy_timeout: Duration::from_secs(5),
            clock: Clock::system(),
            probe_interval: Duration::from_secs(1),
            audit_retention: DEFAULT_AUDIT_RETENTION,
        }
    }
}

impl StoreOptions {
    /// The defaults, overridden by `MCP_AUTH_DB_MAX_CONNECTIONS` (a positive number),
    /// `MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS` and `MCP_AUTH_DB_STATEMENT_TIMEOUT_SECONDS`
    /// (seconds, fractions allowed, e.g. `0.5`) and `MCP_AUTH_AUDIT_RETENTION_DAYS` (whole days,
    /// at least 1) when set.
    pub fn from_env() -> Result<Self, crate::error::ConfigError> {
        Self::from_vars(std::env::vars())
    }

    /// [`StoreOptions::from_env`] over any list of variables.
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, crate::error::ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        use crate::error::ConfigError;
        const MAX: &str = "MCP_AUTH_DB_MAX_CONNECTIONS";
        const ACQUIRE: &str = "MCP_AUTH_DB_ACQUIRE_TIMEOUT_SECONDS";
        const STATEMENT: &str = "MCP_AUTH_DB_STATEMENT_TIMEOUT_SECONDS";
        const RETENTION: &str = "MCP_AUTH_AUDIT_RETENTION_DAYS";
        let mut options = Self::default();
        for (name, value) in vars {
            let value = value.as_ref().trim();
            if value.is_empty() {
                continue;
            }
            match name.as_ref() {
                MAX => {
                    let max = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| ConfigError::invalid(MAX, "expected a positive number"))?;
                    options = options.max_connections(max);
                }
                ACQUIRE => options = options.acquire_timeout(seconds(ACQUIRE, value)?),
                STATEMENT => options = options.statement_timeout(seconds(STATEMENT, value)?),
                RETENTION => {
                    let days = value
                        .parse::<u64>()
                        .ok()
                        .filter(|d| (1..=36_500).contains(d))
                        .ok_or_else(|| {
                            ConfigError::invalid(RETENTION, "expected whole days from 1 to 36500")
                        })?;
                    options = options.audit_retention(Duration::from_secs(days * 24 * 3600));
                }
                _ => {}
            }
        }
        Ok(options)
    }

    /// Most connections the pool opens (default 10).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long an operation waits for a free connection (including connecting) before failing
    /// with a transient error (default 2 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// How long the statements of one store operation may take together, counted from when it
    /// has its connection (default 5 s). One that takes longer fails with a transient error
    /// (a 503) and its connection is closed. On PostgreSQL that also counts as a connection
    /// failure, opening the breaker (see [`StoreOptions::probe_interval`]) unless other
    /// operations completed meanwhile (a busy database, not an unreachable one): a statement
    /// on a connection into a network partition would otherwise wait for TCP, minutes.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// SQLite only: how long a statement waits for another process's write lock before
    /// failing with a transient error (default 5 s).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The time source of expiries and of the refresh-token grace (default: the system clock).
    /// Tests pass a [`Clock::adjustable`] to move time forward instead of sleeping. Grants,
    /// codes, tokens and the sweeper follow it; clients, pending authorizations and consents
    /// still read the system clock.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// How long audit entries are kept before the sweeper deletes them (default 90 days).
    pub fn audit_retention(mut self, retention: Duration) -> Self {
        self.audit_retention = retention;
        self
    }

    /// After a connection failure, operations fail at once (a 503) and one operation per
    /// `interval` probes whether the database is back (default 1 s).
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }
}

/// The OAuth state of proxy mode, in PostgreSQL or SQLite, shared by every replica.
///
/// Cheap to clone (the pool and keyring are shared); every future it returns is `Send`.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// SQLite: the operations' direct connections (see `direct_sqlite.rs`); the sqlx pool
    /// then serves migrations only.
    #[cfg(feature = "sqlite")]
    direct: Option<direct_sqlite::DirectPool>,
    keys: Arc<Keyring>,
    engine: Engine,
    write_gate: Arc<tokio::sync::Mutex<()>>,
    clock: Clock,
    breaker: Arc<Breaker>,
    /// PostgreSQL over TCP: tells an outage from a busy pool while an acquire waits.
    reachability: Option<Arc<Reachability>>,
    operations: Arc<AtomicU64>,
    /// A probe is running (see [`Store::spawn_probe`]).
    probing: Arc<std::sync::atomic::AtomicBool>,
    statement_timeout: Duration,
    audit_retention_secs: i64,
}

impl std::fmt::Debug for Store {
    // Never print the URL: it may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("engine", &self.engine)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Connects to `url` (`postgres://…` or `sqlite://…`) with default options. Run
    /// [`Store::migrate`] (or `sqlx migrate run`) before the first operation.
    pub async fn connect(url: &str, keys: Keyring) -> Result<Self, StoreError> {
        Self::connect_with(url, keys, StoreOptions::default()).await
    }

    /// Connects to `url` with explicit pool options.
    pub async fn connect_with(
        url: &str,
        keys: Keyring,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        const OP: &str = "connect";
        sqlx::any::install_default_drivers();
        let engine = Engine::from_url(url).ok_or(StoreError::Invalid {
            op: OP,
            reason: "the database URL must start with postgres://, postgresql:// or sqlite:",
        })?;
        let url = match engine {
            Engine::Sqlite => sqlite_create_if_missing(url),
            Engine::Postgres => url.to_owned(),
        };
        #[cfg(feature = "sqlite")]
        let direct = match engine {
            Engine::Sqlite => Some(
                direct_sqlite::DirectTarget::from_url(&url)
                    .map_err(|reason| StoreError::Invalid { op: OP, reason })?,
            ),
            Engine::Postgres => None,
        };
        if let Some(path) = sqlite_file_to_create(&url) {
            create_private_file(&path);
        }
        let busy_ms = options.busy_timeout.as_millis();
        // The server's limit ends a second after the client's, so the client's deadline (which
        // closes the connection and tells the breaker) decides first.
        let statement_ms = options.statement_timeout.as_millis() + 1000;
        let breaker = Arc::new(Breaker::new(options.probe_interval));
        let suspect = breaker.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            // sqlx would ping every pooled connection before handing it out: a round trip to
            // the server per store operation, about a third of a login's. (On SQLite this pool
            // only runs migrations, on a local file handle nothing can drop.) A PostgreSQL connection can be dropped by the server (a
            // restart) or the network while idle; `may_be_stale` says when to ping it, and a
            // stale one sqlx replaces silently. A connection that fails anyway reaches the
            // breaker through its statement (`connection.rs`).
            .test_before_acquire(false)
            .before_acquire(
                move |conn, meta| -> BoxFuture<'_, Result<bool, sqlx::Error>> {
                    let ping = engine == Engine::Postgres && may_be_stale(&suspect, meta.idle_for);
                    Box::pin(async move {
                        if ping {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                },
            )
            .after_connect(
                move |conn, _meta| -> BoxFuture<'_, Result<(), sqlx::Error>> {
                    Box::pin(async move {
                        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
                            prepare_sqlite_connection(conn, busy_ms).await?;
                        } else {
                            prepare_postgres_connection(conn, statement_ms).await?;
                        }
                        Ok(())
                    })
                },
            )
            .connect(&url)
            .await
            .map_err(|e| StoreError::from_sqlx(OP, e))?;
        if engine == Engine::Sqlite {
            enable_wal(&pool).await?;
        }
        #[cfg(feature = "sqlite")]
        let direct = direct.map(|target| {
            direct_sqlite::DirectPool::new(
                target,
                options.max_connections,
                options.acquire_timeout,
                options.busy_timeout,
            )
        });
        Ok(Self {
            pool,
            #[cfg(feature = "sqlite")]
            direct,
            keys: Arc::new(keys),
            engine,
            write_gate: Arc::default(),
            clock: options.clock,
            breaker,
            reachability: Reachability::for_url(&url).map(Arc::new),
            operations: Arc::default(),
            probing: Arc::default(),
            statement_timeout: options.statement_timeout,
            audit_retention_secs: i64::try_from(options.audit_retention.as_secs())
                .unwrap_or(i64::MAX / 2),
        })
    }

    /// Applies the library's migrations (bookkeeping table `_mcp_auth_migrations`). Idempotent
    /// and safe when several replicas call it at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        // PostgreSQL serializes concurrent migrators with an advisory lock; SQLite has none, so
        // two replicas may both try to apply a version. The loser's transaction rolls back, on
        // the bookkeeping table's primary key or on a statement that cannot run twice (SQLite
        // has no `ADD COLUMN IF NOT EXISTS`); either way another migrator recorded a version
        // meanwhile, and running again finds it applied (and checks its checksum). Every retry
        // follows another migrator's progress, so one migrator loses at most once per version:
        // that bounds the retries (a fixed 3 could run out with four replicas and five versions).
        let max_retries = migrator().iter().count();
        let mut attempts = 0;
        loop {
            let applied = self.applied_migrations().await;
            match self.run_migrator().await {
                Err(e)
                    if attempts < max_retries
                        && (lost_migration_race(&e)
                            || self.applied_migrations().await > applied) =>
                {
                    attempts += 1;
                }
                result => return result.map_err(StoreError::from_migrate),
            }
        }
    }

    /// Runs the migrator once. On PostgreSQL it gets a connection of its own without the
    /// server-side statement timeout (waiting for another replica's migration lock, or
    /// building an index on a big table, may take longer), closed afterwards rather than
    /// returned to the pool.
    async fn run_migrator(&self) -> Result<(), sqlx::migrate::MigrateError> {
        if self.engine == Engine::Sqlite {
            return migrator().run(&self.pool).await;
        }
        let mut conn = self.pool.acquire().await?.detach();
        sqlx::raw_sql("SET statement_timeout = 0")
            .execute(&mut conn)
            .await?;
        let result = migrator().run_direct(None, &mut conn, false).await;
        // Closed, not pooled: its statements have no time limit.
        let _ = sqlx::Connection::close(conn).await;
        result
    }

    /// How many versions the bookkeeping table records (0 when it does not exist yet).
    async fn applied_migrations(&self) -> i64 {
        // The table name is our constant, not input.
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {MIGRATIONS_TABLE}"
        )))
        .fetch_one(&self.pool)
        .await
        .unwrap_or(0)
    }

    /// The engine behind this store.
    #[cfg(test)]
    pub(crate) fn engine(&self) -> Engine {
        self.engine
    }

    /// The connection pool, for the tests' direct looks at the tables.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks out one of the operations' connections and holds it until dropped, for the
    /// tests that exhaust the pool.
    #[cfg(test)]
    pub(crate) async fn hold_connection(&self) -> Box<dyn std::any::Any + Send> {
        #[cfg(feature = "sqlite")]
        if let Some(direct) = &self.direct {
            return Box::new(direct.acquire().await.expect("a direct connection"));
        }
        Box::new(self.pool.acquire().await.expect("a pooled connection"))
    }

    /// The clock the store compares expiries with (see [`StoreOptions::clock`]).
    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Seconds an audit entry is kept (see [`StoreOptions::audit_retention`]).
    pub(crate) fn audit_retention_secs(&self) -> i64 {
        self.audit_retention_secs
    }

    /// Current unix time by the store's clock.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The keyring sealing upstream secrets (also the connected-apps page's session cookies).
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keys
    }

    /// Waits for this process's turn to write (SQLite only; `None` on PostgreSQL). Hold the
    /// guard until the statement or transaction is done.
    ///
    /// SQLite lets one connection write at a time. A connection that finds the lock taken waits
    /// in SQLite's busy handler, which sleeps in steps of up to 100 ms, so a burst of writes from
    /// one process's pool turns into long sleeps. Queueing this process's writers here instead
    /// wakes the next one as soon as the previous finishes; writers of other processes still wait
    /// through the busy timeout. Correctness never depends on this gate (each operation is atomic
    /// in the database); it only shortens waits.
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.engine {
            Engine::Sqlite => Some(self.write_gate.lock().await),
            Engine::Postgres => None,
        }
    }

    /// A pooled connection for store operation `op`, unless the database just failed to answer
    /// (then a transient error at once, see [`StoreOptions::probe_interval`]). Its statements
    /// run through [`Statement`], within [`StoreOptions::statement_timeout`].
    pub(crate) async fn conn(&self, op: &'static str) -> Result<OpConn, StoreError> {
        let started = self.admit(op)?;
        #[cfg(feature = "sqlite")]
        if let Some(direct) = &self.direct {
            // A local file: no outage to watch for while waiting.
            let conn = self.record(op, started, direct.acquire().await)?;
            return Ok(OpConn::direct(
                conn,
                self.breaker.clone(),
                op,
                started,
                self.statement_timeout,
            ));
        }
        let conn = self.unless_outage(op, started, self.pool.acquire()).await?;
        Ok(OpConn::new(
            conn,
            self.breaker.clone(),
            self.engine,
            op,
            started,
            self.statement_timeout,
        ))
    }

    /// [`Store::conn`] whose writes, each its own commit, have `durability` (SQLite only;
    /// see [`Durability`] for when [`Durability::Relaxed`] is allowed).
    pub(crate) async fn conn_with(
        &self,
        op: &'static str,
        durability: Durability,
    ) -> Result<OpConn, StoreError> {
        let mut conn = self.conn(op).await?;
        conn.set_durability(durability)
            .map_err(|e| StoreError::from_sqlx(op, e))?;
        Ok(conn)
    }

    /// A transaction for store operation `op`, like [`Store::conn`]: commit it with
    /// [`OpConn::commit`]; dropped uncommitted, it rolls back.
    pub(crate) async fn begin(&self, op: &'static str) -> Result<OpConn, StoreError> {
        self.begin_with(op, Durability::Full).await
    }

    /// [`Store::begin`] with the commit's [`Durability`] (SQLite only; see its docs for when
    /// [`Durability::Relaxed`] is allowed).
    pub(crate) async fn begin_with(
        &self,
        op: &'static str,
        durability: Durability,
    ) -> Result<OpConn, StoreError> {
        let mut conn = self.conn(op).await?;
        conn.begin(durability)
            .await
            .map_err(|e| StoreError::from_sqlx(op, e))?;
        Ok(conn)
    }

    /// Waits for `acquire` (a connection or a transaction) unless an outage shows meanwhile:
    /// the breaker opening (another operation found the database gone), or, after
    /// [`reachability::SUSPECT_AFTER`], the server refusing a bare TCP connection. Then the
    /// operation fails fast like those the open breaker refuses, instead of waiting out the
    /// acquire timeout.
    async fn unless_outage<T>(
        &self,
        op: &'static str,
        started: Instant,
        acquire: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        use futures_util::future::{Either, select};

        let mut openings = self.breaker.openings();
        let outage = async {
            tokio::time::sleep(reachability::SUSPECT_AFTER).await;
            // A busy pool keeps completing other operations: then no probe (each one is a
            // connection the server accepts and logs as an incomplete start-up).
            if let Some(probe) = &self.reachability
                && !self.breaker.succeeded_since(started)
                && probe.server_is_up().await == Some(false)
            {
                self.connection_failed(op, started);
                if self.breaker.is_open() {
                    return;
                }
            }
            // Until another operation opens the breaker (the sender lives as long as we do).
            while openings.changed().await.is_ok() {
                if self.breaker.is_open() {
                    return;
                }
            }
            std::future::pending::<()>().await;
        };
        let acquire = std::pin::pin!(acquire);
        let outage = std::pin::pin!(outage);
        match select(acquire, outage).await {
            Either::Left((result, _)) => self.record(op, started, result),
            Either::Right(((), _)) => Err(StoreError::failing_fast(op)),
        }
    }

    /// Whether the store is failing fast after a connection failure (until a probe succeeds).
    pub fn is_failing_fast(&self) -> bool {
        self.breaker.is_open()
    }

    /// Number of database round trips (a statement, or a transaction) this store and its
    /// clones have started, including those refused while failing fast: what tests count to
    /// prove that a cache or a single flight spared the database.
    pub fn database_operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }

    /// Asks the breaker; returns when the operation started.
    fn admit(&self, op: &'static str) -> Result<Instant, StoreError> {
        self.operations.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        match self.breaker.admit(now) {
            Admission::Pass => Ok(now),
            Admission::Probe => {
                // No request waits on the probe: it runs on its own, this one fails fast.
                self.spawn_probe();
                Err(StoreError::failing_fast(op))
            }
            Admission::Refuse => Err(StoreError::failing_fast(op)),
        }
    }

    fn record<T>(
        &self,
        op: &'static str,
        started: Instant,
        result: Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        match result {
            // Not a sign the database answers: a pooled SQLite connection is handed out without
            // a round trip. The operation's statements tell the breaker (`connection.rs`).
            Ok(value) => Ok(value),
            Err(error) => {
                if breaker::is_connection_failure(&error) {
                    self.connection_failed(op, started);
                }
                Err(StoreError::from_sqlx(op, error))
            }
        }
    }

    /// Asks, in a task of its own, whether the database answers again: a ping on a connection
    /// from the pool (an idle one or a new one). Success closes the breaker; a connection
    /// failure keeps it open for another interval.
    ///
    /// One probe at a time: with a short interval under load, operations would otherwise start
    /// probes faster than an unreachable database lets them finish.
    fn spawn_probe(&self) {
        struct Running(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(self.probing.clone());
        let store = self.clone();
        tokio::spawn(async move {
            let _running = running;
            tracing::info!("probing whether the database is back");
            let started = Instant::now();
            let pinged = async {
                let mut conn = store.pool.acquire().await?;
                let pinged = tokio::time::timeout(
                    store.statement_timeout,
                    sqlx::Connection::ping(&mut *conn),
                )
                .await
                .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()));
                if pinged.is_err() {
                    // Not back into the pool: it failed, or its ping may still be waiting.
                    drop(conn.detach());
                }
                pinged
            };
            match pinged.await {
                Ok(()) => {
                    store.breaker.succeeded(Instant::now());
                    tracing::info!("the database answers again; the store no longer fails fast");
                }
                Err(error) if breaker::is_connection_failure(&error) => {
                    store.breaker.failed(started, Instant::now());
                }
                // Not an outage (e.g. the pool was closed): the next interval probes again.
                Err(_) => {}
            }
        });
    }

    /// Operation `op`, admitted at `started`, found the database unreachable: open the breaker.
    fn connection_failed(&self, op: &'static str, started: Instant) {
        note_connection_failure(&self.breaker, op, started);
    }

    /// Closes the pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        #[cfg(feature = "sqlite")]
        if let Some(direct) = &self.direct {
            direct.close();
        }
        self.pool.close().await;
    }
}

/// A pooled PostgreSQL connection idle at least this long is pinged before it is handed out.
/// Under load connections come back within milliseconds and go out again unpinged; an idle
/// server pays a ping per operation, which costs it nothing. An outage lasts at least the
/// probe interval (1 s by default) once the breaker opens, so the connections it killed have
/// been idle this long when operations resume.
const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Whether a pooled PostgreSQL connection idle for `idle_for` may have been dropped meanwhile:
/// idle [`PING_IDLE_AFTER`] or longer, or since before a connection failure of another
/// operation (a restart drops every connection, and the first operation to find a dropped one
/// must not be followed by more).
fn may_be_stale(breaker: &Breaker, idle_for: Duration) -> bool {
    idle_for >= PING_IDLE_AFTER
        || breaker
            .last_failure()
            .is_some_and(|failed| failed.elapsed() <= idle_for)
}

/// Operation `op`, admitted at `started`, found the database unreachable (on acquiring its
/// connection or in a statement): open the breaker, unless another operation reached the
/// database since `started`.
fn note_connection_failure(breaker: &Breaker, op: &'static str, started: Instant) {
    if !breaker.is_open() && !breaker.succeeded_since(started) {
        tracing::warn!(
            op,
            "database unreachable; failing fast until a probe reaches it"
        );
    }
    breaker.failed(started, Instant::now());
}

/// Whether a migration failed because another migrator recorded the same version first.
fn lost_migration_race(err: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    let (MigrateError::Execute(sqlx::Error::Database(db))
    | MigrateError::ExecuteMigration(sqlx::Error::Database(db), _)) = err
    else {
        return false;
    };
    matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation)
}

/// A duration in seconds (fractions allowed) from variable `name`, at most an hour.
fn seconds(name: &str, value: &str) -> Result<Duration, crate::error::ConfigError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            crate::error::ConfigError::invalid(name, "expected seconds between 0 and 3600")
        })
}

/// `sqlite://file.db` → `sqlite://file.db?mode=rwc`, so a fresh deployment starts without a
/// manual `sqlx database create`. A URL that says `mode=` keeps its choice.
fn sqlite_create_if_missing(url: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.split('&').any(|p| p.starts_with("mode=")) {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

/// The file a SQLite URL opens with `mode=rwc`, read as sqlx reads it; `None` for in-memory
/// databases and other modes.
fn sqlite_file_to_create(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let creates = url::form_urlencoded::parse(params.as_bytes())
        .filter(|(key, _)| key == "mode")
        .last()
        .is_some_and(|(_, mode)| mode == "rwc");
    if !creates || database.is_empty() || database == ":memory:" {
        return None;
    }
    let path = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .ok()?;
    Some(std::path::PathBuf::from(path.into_owned()))
}

/// Creates the database file, empty (SQLite's empty database), with mode 0600 when it does not
/// exist yet: sqlx would create it with the process umask, usually world-readable, and the file
/// holds client registrations, token digests and sealed upstream tokens. An existing file is
/// left alone (its owner chose its mode), with a warning when others may read it. Failures are
/// left to the connection attempt, which reports them.
#[cfg(unix)]
fn create_private_file(path: &std::path::Path) {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o007 != 0
            {
                tracing::warn!(
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "the SQLite database file is accessible to other users; chmod 600 it"
                );
            }
        }
        Err(e) => tracing::debug!(error = %e, "could not create the SQLite file beforehand"),
    }
}

#[cfg(not(unix))]
fn create_private_file(_path: &std::path::Path) {}

/// Per-connection SQLite settings: they do not persist in the file.
async fn prepare_sqlite_connection(
    conn: &mut sqlx::AnyConnection,
    busy_ms: u128,
) -> Result<(), sqlx::Error> {
    // The value is an integer we formatted, not user input.
    sqlx::raw_sql(AssertSqlSafe(format!("PRAGMA busy_timeout = {busy_ms}")))
        .execute(&mut *conn)
        .await?;
    // Cascading deletes of child rows need enforcement on every connection.
    sqlx::raw_sql("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    // FULL syncs the WAL at every commit. NORMAL would make writes about twice as fast here,
    // but a power loss could then undo the last commits, and an undone revocation or code
    // redemption is a security problem, not just lost work. (One transaction relaxes it for
    // itself and sets it back: `Durability::Relaxed`.)
    sqlx::raw_sql("PRAGMA synchronous = FULL")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Per-connection PostgreSQL settings: the server cancels a statement that runs a second past
/// the store's deadline (`StoreOptions::statement_timeout`; SQLSTATE 57014, a transient error).
/// The client stops waiting and closes the connection at the deadline, which rolls back an
/// open transaction; without this limit, a single-statement write it gave up on (waiting for a
/// lock, say) could still complete and apply at any time afterwards.
async fn prepare_postgres_connection(
    conn: &mut sqlx::AnyConnection,
    statement_ms: u128,
) -> Result<(), sqlx::Error> {
    // The value is an integer we formatted, not user input. 0 would mean "no limit".
    let ms = statement_ms.max(1);
    sqlx::raw_sql(AssertSqlSafe(format!("SET statement_timeout = {ms}")))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Switches the SQLite file to WAL (persistent, so once per file): readers no longer block the
/// writer, which several processes sharing the file need. The switch needs a moment without
/// other writers and cannot wait through the busy timeout, so it is retried briefly.
async fn enable_wal(pool: &AnyPool) -> Result<(), StoreError> {
    const OP: &str = "connect";
    let mut attempt = 0;
    loop {
        let result = sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_optional(pool)
            .await;
        match result {
            Ok(row) => {
                let mode: Option<String> = row.and_then(|r| r.try_get(0).ok());
                if !mode
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case("wal"))
                {
                    // In-memory databases cannot use WAL; they are not shared anyway.
                    tracing::debug!(mode = ?mode, "SQLite journal mode is not WAL");
                }
                return Ok(());
            }
            Err(e) => {
                let err = StoreError::from_sqlx(OP, e);
                attempt += 1;
                if !err.is_transient() || attempt >= 50 {
                    return Err(err);
                }
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
        }
    }
}

/// Current unix time in seconds by the system clock, for the records that do not follow
/// [`StoreOptions::clock`] yet (clients, pending authorizations, consents).
pub(crate) use crate::clock::unix_now as now;

/// Reads column `name` of a row, mapping failures to [`StoreError`].
pub(crate) fn col<T>(row: &AnyRow, name: &str, op: &'static str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(|e| StoreError::from_sqlx(op, e))
}

/// Scope lists are stored space-separated: RFC 6749 scope tokens cannot contain spaces.
pub(crate) fn join_scopes(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// The inverse of [`join_scopes`].
pub(crate) fn split_scopes(stored: &str) -> Vec<String> {
    stored.split_whitespace().map(str::to_owned).collect()
}

/// A JSON text column into a value.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    op: &'static str,
    column: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|_| StoreError::corrupt(op, format!("{column} is not valid JSON")))
}

/// A value into JSON text.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serializing strings, lists of strings and `serde_json::Value` cannot fail.
    serde_json::to_string(value).expect("JSON serialization of plain data")
}

#[cfg(test)]
mod tests;
