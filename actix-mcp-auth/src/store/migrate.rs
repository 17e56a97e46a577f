//! The library's migrations, embedded in the binary.
//!
//! The SQL files in `migrations/` are the single source: `include_str!` embeds them here and
//! `sqlx migrate run` reads them from disk (with the crate's `sqlx.toml`). Both record the same
//! SHA-384 checksum of the same text in the same bookkeeping table, so either may apply them and
//! the other then sees nothing to do.
//!
//! The bookkeeping table is `_mcp_auth_migrations`, not sqlx's default `_sqlx_migrations`: a
//! migrator refuses to run when its table lists versions it does not know, so sharing the
//! application's table would break both the application's migrations and ours.

use std::borrow::Cow;

use sqlx::{
    SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

/// The bookkeeping table of the library's migrations (also set in the crate's `sqlx.toml`).
pub const MIGRATIONS_TABLE: &str = "_mcp_auth_migrations";

/// Every migration: version and description exactly as sqlx-cli derives them from the file name
/// (`<version>_<description with underscores>.sql`), and the file's text.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        20260601000000,
        "create store",
        include_str!("../../migrations/20260601000000_create_store.sql"),
    ),
    (
        20261130000100,
        "refresh grace and redirect binding",
        include_str!("../../migrations/20261130000100_refresh_grace_and_redirect_binding.sql"),
    ),
    (
        20261130000200,
        "client metadata documents",
        include_str!("../../migrations/20261130000200_client_metadata_documents.sql"),
    ),
    (
        20261130000300,
        "unused clients",
        include_str!("../../migrations/20261130000300_unused_clients.sql"),
    ),
    (
        20261130000400,
        "consent redirect digest",
        include_str!("../../migrations/20261130000400_consent_redirect_digest.sql"),
    ),
    (
        20261201000000,
        "audit and grant use",
        include_str!("../../migrations/20261201000000_audit_and_grant_use.sql"),
    ),
];

/// A migrator for the library's tables, using the `_mcp_auth_migrations` bookkeeping table.
/// [`Store::migrate`](super::Store::migrate) runs it; use it directly to inspect or to run the
/// migrations on a pool of your own.
pub fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                // sqlx-cli runs a file outside a transaction only when it starts with this line.
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
    migrator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_files_on_disk() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let embedded: Vec<String> = MIGRATIONS
            .iter()
            .map(|(v, d, _)| format!("{v}_{}.sql", d.replace(' ', "_")))
            .collect();
        assert_eq!(
            files, embedded,
            "every file in migrations/ must be listed here"
        );
    }

    #[test]
    fn portable_types_only() {
        for (_, _, sql) in MIGRATIONS {
            let upper = sql.to_ascii_uppercase();
            for banned in [
                "BOOLEAN",
                "TIMESTAMP",
                "UUID",
                "JSONB",
                "BYTEA",
                "SERIAL",
                "AUTOINCREMENT",
            ] {
                let code: String = upper
                    .lines()
                    .map(|l| l.split("--").next().unwrap_or(""))
                    .collect();
                assert!(!code.contains(banned), "{banned} is not portable");
            }
        }
    }

    #[test]
    fn uses_its_own_table() {
        assert_eq!(&*migrator().table_name, MIGRATIONS_TABLE);
    }
}
