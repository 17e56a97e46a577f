//! Direct SQLite connections: the store's statements on a SQLite file run on the calling
//! thread, through rusqlite, instead of a round trip to a sqlx worker thread each.
//!
//! sqlx gives every SQLite connection a worker thread and sends it each statement: two thread
//! wake-ups per statement, which on small machines cost more than the statement itself (a
//! login is about twenty statements; `perf` put the hand-offs at a quarter of its CPU). A
//! statement on pages SQLite has in memory takes microseconds, so here it runs where the
//! operation runs. Only what may wait runs on tokio's blocking threads, one hop each:
//!
//! * a commit that syncs the WAL (`synchronous = FULL`): a transaction's `COMMIT`, or a write
//!   outside a transaction, which commits itself;
//! * a statement that found the database locked by another process (`SQLITE_BUSY`): inline
//!   statements never wait (busy timeout 0); the retry waits through the store's busy timeout.
//!
//! Rows come back as sqlx `AnyRow`s and errors as `sqlx::Error`s, so the operations read them
//! exactly as they read PostgreSQL's (`store::col`, `StoreError::from_sqlx`). Statements keep
//! the one SQL text of both engines: `$N` placeholders are bound by their number.
//!
//! Migrations, and files opened with URL options other than `mode`, stay on sqlx's pool.

use std::{
    borrow::Cow,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::{
    Connection, OpenFlags,
    types::{ToSqlOutput, ValueRef},
};
use sqlx_core::any::{
    AnyColumn, AnyQueryResult, AnyRow, AnyTypeInfo, AnyTypeInfoKind, AnyValue, AnyValueKind,
};

/// Prepared statements kept per connection: every statement text of the store fits.
const STATEMENT_CACHE: usize = 256;

/// How long before the operation's deadline a wait for another connection's lock gives up.
/// SQLite's busy handler sleeps in steps of up to 100 ms and tries the lock once more after
/// its last one: ending it this much earlier keeps that try before the deadline.
const BUSY_MARGIN: Duration = Duration::from_millis(150);

/// A SQLite file the store can open directly: a path and how to open it.
#[derive(Clone, Debug)]
pub(super) struct DirectTarget {
    path: PathBuf,
    flags: OpenFlags,
}

impl DirectTarget {
    /// The file a `sqlite:` URL names, read as sqlx reads it (a percent-encoded path), and
    /// its `mode` option (`rwc`, `rw` or `ro`; `cache=private` is accepted, being the
    /// default). Refuses what it does not interpret rather than ignoring it: in-memory
    /// databases (every connection would get its own), and other URL options.
    pub(super) fn from_url(url: &str) -> Result<Self, &'static str> {
        const MEMORY: &str = "an in-memory SQLite database is not shared between the store's connections: use a file";
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .ok_or("the database URL must start with sqlite:")?;
        let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE;
        for (key, value) in url::form_urlencoded::parse(params.as_bytes()) {
            flags = match (&*key, &*value) {
                ("mode", "rwc") => {
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE
                }
                ("mode", "rw") => OpenFlags::SQLITE_OPEN_READ_WRITE,
                ("mode", "ro") => OpenFlags::SQLITE_OPEN_READ_ONLY,
                ("mode", "memory") => return Err(MEMORY),
                ("cache", "private") => flags,
                _ => {
                    return Err(
                        "the SQLite URL may only set mode (rwc, rw or ro) and cache=private",
                    );
                }
            };
        }
        if database.is_empty() || database == ":memory:" {
            return Err(MEMORY);
        }
        let path = percent_encoding::percent_decode_str(database)
            .decode_utf8()
            .map_err(|_| "the SQLite file path is not valid UTF-8")?;
        // One connection is used by one thread at a time: no SQLite mutex needed.
        flags |= OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Ok(Self {
            path: PathBuf::from(path.into_owned()),
            flags,
        })
    }
}

/// A pool of direct connections to one SQLite file, at most `max` open at once.
#[derive(Clone)]
pub(super) struct DirectPool {
    shared: Arc<PoolShared>,
}

struct PoolShared {
    target: DirectTarget,
    busy_timeout: Duration,
    acquire_timeout: Duration,
    permits: Arc<tokio::sync::Semaphore>,
    idle: Mutex<Vec<Connection>>,
}

impl DirectPool {
    /// A pool for `target`; connections open on first use.
    pub(super) fn new(
        target: DirectTarget,
        max: u32,
        acquire_timeout: Duration,
        busy_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(PoolShared {
                target,
                busy_timeout,
                acquire_timeout,
                permits: Arc::new(tokio::sync::Semaphore::new(max as usize)),
                idle: Mutex::default(),
            }),
        }
    }

    /// A connection: an idle one, or a new one while fewer than `max` are open. Waits at
    /// most the acquire timeout for one to come back (`PoolTimedOut`), `PoolClosed` after
    /// [`DirectPool::close`].
    pub(super) async fn acquire(&self) -> Result<DirectConn, sqlx::Error> {
        let shared = &self.shared;
        let permit = tokio::time::timeout(
            shared.acquire_timeout,
            shared.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = shared.idle.lock().expect("idle list lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&shared.target)?,
        };
        Ok(DirectConn {
            conn: Some(conn),
            pool: self.shared.clone(),
            _permit: permit,
        })
    }

    /// Refuses further acquires and closes the idle connections; those in use close when
    /// they come back.
    pub(super) fn close(&self) {
        self.shared.permits.close();
        self.shared.idle.lock().expect("idle list lock").clear();
    }
}

/// Opens and prepares one connection (these settings do not persist in the file).
fn open(target: &DirectTarget) -> Result<Connection, sqlx::Error> {
    let conn = Connection::open_with_flags(&target.path, target.flags).map_err(into_sqlx)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Inline statements never wait for another process's lock: they fail with SQLITE_BUSY
    // and are retried off the runtime (`DirectConn::offload`).
    conn.busy_timeout(Duration::ZERO).map_err(into_sqlx)?;
    // As on sqlx's connections (`prepare_sqlite_connection`): cascading deletes, and a
    // commit that survives a power loss unless a transaction relaxes it for itself.
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL")
        .map_err(into_sqlx)?;
    Ok(conn)
}

/// A connection checked out of a [`DirectPool`]; back to the pool on drop, unless taken.
pub(super) struct DirectConn {
    /// `None` once taken away (lost to a blocking task past the deadline, or discarded).
    conn: Option<Connection>,
    pool: Arc<PoolShared>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for DirectConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.pool.permits.is_closed()
            && conn.is_autocommit()
        {
            self.pool.idle.lock().expect("idle list lock").push(conn);
        }
        // Otherwise it closes here; an open transaction rolls back with it.
    }
}

/// What one statement did: its counts and the rows it returned.
pub(super) struct Outcome {
    pub(super) done: AnyQueryResult,
    pub(super) rows: Vec<AnyRow>,
}

impl DirectConn {
    /// Runs `sql` with `arguments` on this thread.
    pub(super) fn run(
        &mut self,
        sql: &str,
        arguments: &[AnyValueKind],
    ) -> Result<Outcome, sqlx::Error> {
        run(self.connection()?, sql, arguments)
    }

    /// Whether `sql` writes (and so, outside a transaction, commits and syncs).
    pub(super) fn writes(&mut self, sql: &str) -> Result<bool, sqlx::Error> {
        let conn = self.connection()?;
        let statement = conn.prepare_cached(sql).map_err(into_sqlx)?;
        Ok(!statement.readonly())
    }

    /// Runs `work` on a blocking thread, and takes the connection back. A lock held by
    /// another connection is waited for up to the store's busy timeout, but no later than
    /// [`BUSY_MARGIN`] before `deadline`, the operation's: a write the operation gave up on
    /// must not apply later. Dropped before it ends (the deadline), the connection stays with
    /// the blocking task and closes when it ends.
    pub(super) async fn offload<T, F>(
        &mut self,
        deadline: tokio::time::Instant,
        work: F,
    ) -> Result<T, sqlx::Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, sqlx::Error> + Send + 'static,
    {
        let conn = self.conn.take().ok_or_else(lost)?;
        let before_deadline = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .saturating_sub(BUSY_MARGIN);
        let busy_timeout = self.pool.busy_timeout.min(before_deadline);
        let task = tokio::task::spawn_blocking(move || {
            let result = conn
                .busy_timeout(busy_timeout)
                .map_err(into_sqlx)
                .and_then(|()| work(&conn));
            // Back to never waiting inline; a connection that cannot is not reused.
            let reusable = conn.busy_timeout(Duration::ZERO).is_ok();
            (reusable.then_some(conn), result)
        });
        let (conn, result) = task.await.map_err(|_| {
            sqlx::Error::Io(std::io::Error::other("a SQLite statement's thread failed"))
        })?;
        self.conn = conn;
        result
    }

    /// Closes the connection instead of returning it to the pool.
    pub(super) fn discard(&mut self) {
        self.conn = None;
    }

    fn connection(&mut self) -> Result<&Connection, sqlx::Error> {
        self.conn.as_ref().ok_or_else(lost)
    }
}

/// The connection went with a statement that missed its deadline.
pub(super) fn lost() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the SQLite connection was lost with a statement past the deadline",
    ))
}

/// Runs one statement on `conn`: binds `$N` to `arguments[N - 1]`, reads every row.
pub(super) fn run(
    conn: &Connection,
    sql: &str,
    arguments: &[AnyValueKind],
) -> Result<Outcome, sqlx::Error> {
    let mut statement = conn.prepare_cached(sql).map_err(into_sqlx)?;
    for index in 1..=statement.parameter_count() {
        let number = parameter_number(statement.parameter_name(index), index)?;
        let value = arguments
            .get(number - 1)
            .ok_or_else(|| protocol(format!("no argument for parameter ${number}")))?;
        statement
            .raw_bind_parameter(index, bound(value))
            .map_err(into_sqlx)?;
    }
    if statement.column_count() == 0 {
        let changed = statement.raw_execute().map_err(into_sqlx)?;
        return Ok(Outcome {
            done: AnyQueryResult {
                rows_affected: changed as u64,
                last_insert_id: Some(conn.last_insert_rowid()),
            },
            rows: Vec::new(),
        });
    }
    let readonly = statement.readonly();
    let names: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let column_names = Arc::new(
        names
            .iter()
            .enumerate()
            .map(|(ordinal, name)| (name.clone().into(), ordinal))
            .collect(),
    );
    let mut rows = Vec::new();
    let mut cursor = statement.raw_query();
    while let Some(row) = cursor.next().map_err(into_sqlx)? {
        let mut values = Vec::with_capacity(names.len());
        for ordinal in 0..names.len() {
            values.push(AnyValue {
                kind: value_kind(row.get_ref(ordinal).map_err(into_sqlx)?)?,
            });
        }
        let columns = names
            .iter()
            .zip(&values)
            .enumerate()
            .map(|(ordinal, (name, value))| AnyColumn {
                ordinal,
                name: name.clone().into(),
                type_info: AnyTypeInfo {
                    kind: type_kind(&value.kind),
                },
            })
            .collect();
        rows.push(AnyRow {
            column_names: Arc::clone(&column_names),
            columns,
            values,
        });
    }
    drop(cursor);
    Ok(Outcome {
        done: AnyQueryResult {
            // A `RETURNING` write's count; a query's would be an earlier statement's.
            rows_affected: if readonly { 0 } else { conn.changes() },
            last_insert_id: None,
        },
        rows,
    })
}

/// The argument number of parameter `index`: `$N` or `?N` by its number, a bare `?` by its
/// position (as sqlx binds them).
fn parameter_number(name: Option<&str>, index: usize) -> Result<usize, sqlx::Error> {
    match name {
        None => Ok(index),
        Some(name) => name
            .strip_prefix('$')
            .or_else(|| name.strip_prefix('?'))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| protocol(format!("unsupported parameter {name}"))),
    }
}

/// A sqlx argument as a SQLite value, borrowed.
fn bound(value: &AnyValueKind) -> ToSqlOutput<'_> {
    use AnyValueKind as Kind;
    ToSqlOutput::Borrowed(match value {
        Kind::Bool(b) => ValueRef::Integer(i64::from(*b)),
        Kind::SmallInt(i) => ValueRef::Integer(i64::from(*i)),
        Kind::Integer(i) => ValueRef::Integer(i64::from(*i)),
        Kind::BigInt(i) => ValueRef::Integer(*i),
        Kind::Real(r) => ValueRef::Real(f64::from(*r)),
        Kind::Double(r) => ValueRef::Real(*r),
        Kind::Text(text) => ValueRef::Text(text.as_bytes()),
        Kind::TextSlice(text) => ValueRef::Text(text.as_bytes()),
        Kind::Blob(bytes) => ValueRef::Blob(bytes),
        // `Null`, and any kind a later sqlx adds.
        _ => ValueRef::Null,
    })
}

/// A SQLite value as sqlx's Any driver hands it over (integers as `BIGINT`, reals as
/// `DOUBLE`).
fn value_kind(value: ValueRef<'_>) -> Result<AnyValueKind, sqlx::Error> {
    use AnyValueKind as Kind;
    Ok(match value {
        ValueRef::Null => Kind::Null(AnyTypeInfoKind::Null),
        ValueRef::Integer(i) => Kind::BigInt(i),
        ValueRef::Real(r) => Kind::Double(r),
        ValueRef::Text(bytes) => {
            let text = std::str::from_utf8(bytes)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?
                .to_owned();
            Kind::Text(Arc::new(text))
        }
        ValueRef::Blob(bytes) => Kind::Blob(Arc::new(bytes.to_vec())),
    })
}

fn type_kind(value: &AnyValueKind) -> AnyTypeInfoKind {
    use AnyValueKind as Kind;
    match value {
        Kind::BigInt(_) => AnyTypeInfoKind::BigInt,
        Kind::Double(_) => AnyTypeInfoKind::Double,
        Kind::Text(_) => AnyTypeInfoKind::Text,
        Kind::Blob(_) => AnyTypeInfoKind::Blob,
        _ => AnyTypeInfoKind::Null,
    }
}

fn protocol(message: String) -> sqlx::Error {
    sqlx::Error::Protocol(message)
}

/// A rusqlite error as the `sqlx::Error` sqlx's SQLite driver would give: database errors
/// with their extended result code, so `StoreError` classifies both alike.
pub(super) fn into_sqlx(error: rusqlite::Error) -> sqlx::Error {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(DirectError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        // Misuse of the API (a wrong parameter count, a statement with several parts): ours
        // to fix, and it carries no values.
        other => protocol(other.to_string()),
    }
}

/// A SQLite error: its extended result code and SQLite's message (which names a
/// constraint's table and column, never a value).
#[derive(Debug)]
pub(super) struct DirectError {
    code: i32,
    message: String,
}

impl std::fmt::Display for DirectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for DirectError {}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
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
        use rusqlite::ffi;
        use sqlx::error::ErrorKind;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// Whether `error` is SQLite's "the database is locked" (another connection writes).
pub(super) fn is_busy(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == rusqlite::ffi::SQLITE_BUSY),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_like_sqlx_and_unknown_options_refused() {
        let target = |url: &str| DirectTarget::from_url(url).map(|t| (t.path, t.flags));
        let (path, flags) = target("sqlite:///tmp/x%20y.db?mode=rwc").unwrap();
        assert_eq!(path, PathBuf::from("/tmp/x y.db"));
        assert!(flags.contains(OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX));
        let (path, flags) = target("sqlite:b.db?mode=ro&cache=private").unwrap();
        assert_eq!(path, PathBuf::from("b.db"));
        assert!(flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY));
        assert!(!flags.contains(OpenFlags::SQLITE_OPEN_CREATE));
        let (_, flags) = target("sqlite://c.db").unwrap();
        assert!(flags.contains(OpenFlags::SQLITE_OPEN_READ_WRITE));
        assert!(!flags.contains(OpenFlags::SQLITE_OPEN_CREATE));
        for refused in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://a.db?mode=memory",
            "sqlite://?mode=rwc",
            "sqlite://a.db?cache=shared",
            "sqlite://a.db?immutable=true",
            "sqlite://a.db?vfs=unix-dotfile",
            "postgres://h/db",
        ] {
            assert!(DirectTarget::from_url(refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn parameters_bind_by_number() {
        assert_eq!(parameter_number(Some("$3"), 1).unwrap(), 3);
        assert_eq!(parameter_number(Some("?2"), 1).unwrap(), 2);
        assert_eq!(parameter_number(None, 4).unwrap(), 4);
        assert!(parameter_number(Some(":name"), 1).is_err());
        assert!(parameter_number(Some("$0"), 1).is_err());
    }

    #[test]
    fn statements_bind_rows_and_errors_like_the_any_driver() {
        use sqlx::Row as _;
        let conn = Connection::open_in_memory().unwrap();
        run(
            &conn,
            "CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, b BLOB, note TEXT)",
            &[],
        )
        .unwrap();
        let insert = "INSERT INTO t (id, n, b, note) VALUES ($2, $1, $3, $4)";
        let arguments = [
            AnyValueKind::BigInt(7),
            AnyValueKind::Text(Arc::new("a".to_owned())),
            AnyValueKind::Blob(Arc::new(vec![1, 2])),
            AnyValueKind::Null(AnyTypeInfoKind::Text),
        ];
        let done = run(&conn, insert, &arguments).unwrap();
        assert_eq!(done.done.rows_affected, 1);
        let read = run(
            &conn,
            "SELECT id, n, b, note FROM t WHERE id = $1",
            &arguments[1..2],
        )
        .unwrap();
        let row = &read.rows[0];
        assert_eq!(row.try_get::<String, _>("id").unwrap(), "a");
        assert_eq!(row.try_get::<i64, _>("n").unwrap(), 7);
        assert_eq!(row.try_get::<Vec<u8>, _>("b").unwrap(), vec![1, 2]);
        assert_eq!(row.try_get::<Option<String>, _>("note").unwrap(), None);
        let updated = run(
            &conn,
            "UPDATE t SET n = n + 1 WHERE id = $1 RETURNING n",
            &arguments[1..2],
        )
        .unwrap();
        assert_eq!(updated.done.rows_affected, 1);
        assert_eq!(updated.rows[0].try_get::<i64, _>(0).unwrap(), 8);

        let duplicate = run(&conn, insert, &arguments).err().unwrap();
        let sqlx::Error::Database(db) = &duplicate else {
            panic!("{duplicate:?}")
        };
        assert_eq!(db.kind(), sqlx::error::ErrorKind::UniqueViolation);
        assert_eq!(db.code().as_deref(), Some("1555"));
        assert!(!is_busy(&duplicate));
        let missing = run(&conn, insert, &arguments[..2]).err().unwrap();
        assert!(matches!(missing, sqlx::Error::Protocol(_)), "{missing:?}");
    }
}
