//! [`StoreError`]: what went wrong in the database, classified so handlers can answer
//! `503` + `Retry-After` for trouble that passes (pool exhausted, connection lost, lock
//! contention) and `500` for trouble that does not.
//!
//! The messages are built from fixed text, the store operation, SQLSTATE / SQLite codes and
//! constraint names only: never from SQL parameters, database URLs or database messages (a
//! PostgreSQL message or detail can quote a value). There is deliberately no `source()` chain
//! into sqlx for the same reason.

use std::{borrow::Cow, io};

use sqlx::migrate::MigrateError;

use super::crypto::OpenError;

/// A failed store operation.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot serve us right now; retrying later may succeed (answer 503).
    #[error("database temporarily unavailable during {op}: {reason}")]
    Unavailable {
        /// The store operation.
        op: &'static str,
        /// What happened (pool timed out, connection lost, serialization failure, busy...).
        reason: Cow<'static, str>,
    },
    /// A uniqueness, foreign-key, not-null or check constraint rejected the change.
    #[error("{op}: constraint violated ({constraint})")]
    Constraint {
        /// The store operation.
        op: &'static str,
        /// The constraint or column the database named, if any.
        constraint: String,
    },
    /// A sealed value did not open: its key is no longer configured, or the data was tampered
    /// with or moved between rows.
    #[error("{op}: sealed value could not be opened: {reason}")]
    Sealed {
        /// The store operation.
        op: &'static str,
        /// Why, without the data.
        reason: OpenError,
    },
    /// A stored value has an unexpected shape (bad JSON, unknown enum value...).
    #[error("{op}: stored data is malformed: {reason}")]
    Corrupt {
        /// The store operation.
        op: &'static str,
        /// What is malformed.
        reason: Cow<'static, str>,
    },
    /// The caller passed values that do not fit together.
    #[error("{op}: invalid argument: {reason}")]
    Invalid {
        /// The store operation.
        op: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Applying the migrations failed for a reason that will not pass by itself.
    #[error("migration failed: {reason}")]
    Migrate {
        /// What went wrong (migration versions and fixed text only).
        reason: String,
    },
    /// Any other database failure.
    #[error("{op}: database error ({reason})")]
    Database {
        /// The store operation.
        op: &'static str,
        /// The error class and code, never the database's message.
        reason: Cow<'static, str>,
    },
}

impl StoreError {
    /// Whether retrying later may succeed: pool timeout, lost connection, serialization
    /// failure or deadlock, a busy or locked SQLite file. Such errors should become a `503`
    /// with `Retry-After`, never a `500` or a `401`.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// The error for a failed sqlx call in store operation `op`.
    pub(crate) fn from_sqlx(op: &'static str, err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut => Self::unavailable(op, "connection pool timed out"),
            sqlx::Error::Io(e) => Self::unavailable(op, io_reason(&e)),
            sqlx::Error::WorkerCrashed => Self::unavailable(op, "database worker crashed"),
            sqlx::Error::BeginFailed => Self::unavailable(op, "could not begin a transaction"),
            sqlx::Error::Database(db) => Self::from_database(op, db.as_ref()),
            sqlx::Error::PoolClosed => Self::database(op, "connection pool is closed"),
            sqlx::Error::Tls(_) => Self::database(op, "TLS error"),
            sqlx::Error::Configuration(_) => Self::database(op, "invalid database configuration"),
            sqlx::Error::Protocol(_) => Self::database(op, "protocol error"),
            sqlx::Error::ColumnDecode { index, .. } => Self::Corrupt {
                op,
                reason: format!("column {index} has an unexpected type").into(),
            },
            sqlx::Error::ColumnNotFound(column) => Self::Corrupt {
                op,
                reason: format!("column {column} is missing (migrations not applied?)").into(),
            },
            other => Self::database(op, kind_name(&other)),
        }
    }

    /// The error for a failed migration run.
    pub(crate) fn from_migrate(err: MigrateError) -> Self {
        match err {
            MigrateError::Execute(e) => Self::from_migration_sql(e, None),
            MigrateError::ExecuteMigration(e, version) => {
                Self::from_migration_sql(e, Some(version))
            }
            // The remaining variants carry versions and fixed text only.
            other => Self::Migrate {
                reason: other.to_string(),
            },
        }
    }

    fn from_migration_sql(err: sqlx::Error, version: Option<i64>) -> Self {
        match Self::from_sqlx("migrate", err) {
            transient @ Self::Unavailable { .. } => transient,
            other => Self::Migrate {
                reason: match version {
                    Some(v) => format!("migration {v}: {other}"),
                    None => other.to_string(),
                },
            },
        }
    }

    /// The error for a sealed value that did not open.
    pub(crate) fn sealed(op: &'static str, reason: OpenError) -> Self {
        Self::Sealed { op, reason }
    }

    /// The error for a stored value of the wrong shape.
    pub(crate) fn corrupt(op: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Corrupt {
            op,
            reason: reason.into(),
        }
    }

    /// The error of an operation refused without trying because the database just failed to
    /// answer.
    pub(crate) fn failing_fast(op: &'static str) -> Self {
        Self::unavailable(op, "database unreachable, retrying shortly")
    }

    fn unavailable(op: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable {
            op,
            reason: reason.into(),
        }
    }

    fn database(op: &'static str, reason: impl Into<Cow<'static, str>>) -> Self {
        Self::Database {
            op,
            reason: reason.into(),
        }
    }

    fn from_database(op: &'static str, db: &dyn sqlx::error::DatabaseError) -> Self {
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        if let Some(reason) = transient_code(&code) {
            return Self::unavailable(op, format!("{reason} ({code})"));
        }
        if !matches!(db.kind(), sqlx::error::ErrorKind::Other) {
            // PostgreSQL names the constraint; SQLite only puts it in the message, where it is
            // "<kind> constraint failed: table.column" and carries no values.
            let constraint = db
                .constraint()
                .map(str::to_owned)
                .or_else(|| sqlite_constraint(db.message()))
                .unwrap_or_else(|| format!("code {code}"));
            return Self::Constraint { op, constraint };
        }
        Self::database(op, format!("code {code}"))
    }
}

/// Database error codes that mean "try again later".
fn transient_code(code: &str) -> Option<&'static str> {
    // PostgreSQL SQLSTATEs.
    let pg = match code {
        "40001" => Some("serialization failure"),
        "40P01" => Some("deadlock detected"),
        "55P03" => Some("lock not available"),
        // `statement_timeout` (the store's deadline, set per connection) or a cancel.
        "57014" => Some("statement timed out"),
        "53300" => Some("too many connections"),
        "57P01" | "57P02" | "57P03" => Some("server shutting down or starting"),
        c if c.starts_with("08") => Some("connection failure"),
        c if c.starts_with("53") => Some("insufficient resources"),
        _ => None,
    };
    if pg.is_some() {
        return pg;
    }
    // SQLite reports extended result codes; the primary code is the low byte.
    match code.parse::<i32>().map(|c| c & 0xff) {
        Ok(5) => Some("database is busy"),
        Ok(6) => Some("database table is locked"),
        _ => None,
    }
}

/// `"UNIQUE constraint failed: mcp_auth_clients.client_id"` → the part after the colon.
fn sqlite_constraint(message: &str) -> Option<String> {
    let (head, tail) = message.split_once("constraint failed: ")?;
    (!head.is_empty() || !tail.is_empty()).then(|| tail.trim().to_owned())
}

fn io_reason(err: &io::Error) -> String {
    // io::Error messages describe the socket, not the data ("Connection refused").
    format!("connection error: {}", err.kind())
}

fn kind_name(err: &sqlx::Error) -> &'static str {
    match err {
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::Encode(_) => "could not encode a parameter",
        sqlx::Error::Decode(_) => "could not decode a value",
        sqlx::Error::TypeNotFound { .. } => "type not found",
        sqlx::Error::ColumnIndexOutOfBounds { .. } => "column index out of bounds",
        sqlx::Error::AnyDriverError(_) => "unsupported by the Any driver",
        sqlx::Error::Migrate(_) => "migration error",
        _ => "unexpected error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_codes() {
        for code in [
            "40001", "40P01", "57014", "08006", "57P01", "5", "517", "6", "262",
        ] {
            assert!(transient_code(code).is_some(), "{code}");
        }
        for code in ["23505", "2067", "19", "787", "42P01", ""] {
            assert!(transient_code(code).is_none(), "{code}");
        }
    }

    #[test]
    fn pool_timeout_is_transient() {
        let err = StoreError::from_sqlx("lookup", sqlx::Error::PoolTimedOut);
        assert!(err.is_transient());
        assert_eq!(
            err.to_string(),
            "database temporarily unavailable during lookup: connection pool timed out"
        );
        let err = StoreError::from_sqlx(
            "lookup",
            io::Error::new(io::ErrorKind::ConnectionRefused, "secret-ish detail").into(),
        );
        assert!(err.is_transient());
        assert!(!err.to_string().contains("secret-ish"));
    }

    #[test]
    fn sqlite_constraint_names_the_column() {
        assert_eq!(
            sqlite_constraint("UNIQUE constraint failed: mcp_auth_clients.client_id").as_deref(),
            Some("mcp_auth_clients.client_id")
        );
        assert_eq!(sqlite_constraint("no such table"), None);
    }
}
