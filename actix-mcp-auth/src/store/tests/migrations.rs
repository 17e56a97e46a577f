//! The portable migrations: fresh database, idempotence, sqlx-cli and the embedded migrator on
//! the same database, and coexistence with the application's own `_sqlx_migrations`.

use std::{borrow::Cow, path::Path, process::Command};

use crate::store::{Keyring, MIGRATIONS_TABLE, Store, migrator};
use sqlx::{
    AnyPool, SqlSafeStr,
    migrate::{Migration, MigrationType, Migrator},
};

use super::support::{TestDb, count, seed_with_tokens, store_tests};

store_tests!(
    fresh_database,
    applying_twice_is_a_no_op,
    coexists_with_application_migrations,
);

/// The tests that drive the real `sqlx` CLI: ignored unless `MCP_AUTH_REQUIRE_SQLX_CLI` was set
/// at build time (`build.rs`); with it they fail when the CLI is missing. CI sets it.
mod sqlx_cli {
    use super::*;

    store_tests!(
        #[cfg_attr(
            not(mcp_auth_test_sqlx_cli),
            ignore = "needs sqlx-cli 0.9 on PATH: install it (see .ci/run) and set \
                      MCP_AUTH_REQUIRE_SQLX_CLI=1"
        )]
        cli_then_embedded_migrator,
        cli_with_explicit_config_from_elsewhere,
    );
}

const TABLES: [&str; 6] = [
    "mcp_auth_clients",
    "mcp_auth_pending",
    "mcp_auth_consents",
    "mcp_auth_grants",
    "mcp_auth_codes",
    "mcp_auth_tokens",
];

async fn connect(db: &TestDb) -> Store {
    Store::connect(db.url(), Keyring::ephemeral())
        .await
        .expect("connect")
}

/// `(version, checksum)` rows of a bookkeeping table.
async fn applied(pool: &AnyPool, table: &'static str) -> Vec<(i64, Vec<u8>)> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, checksum FROM {table} ORDER BY version"
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    rows
}

async fn table_exists(pool: &AnyPool, table: &'static str) -> bool {
    // A query that fails when the table is missing, on both engines.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM {table} WHERE 1 = 0"
    )))
    .fetch_optional(pool)
    .await
    .is_ok()
}

fn expected_migrations() -> Vec<(i64, Vec<u8>)> {
    migrator()
        .iter()
        .map(|m| (m.version, m.checksum.to_vec()))
        .collect()
}

async fn fresh_database(db: &TestDb) {
    let store = connect(db).await;
    assert!(!table_exists(store.pool(), "mcp_auth_clients").await);
    store.migrate().await.unwrap();
    for table in TABLES {
        assert_eq!(count(&store, table).await, 0, "{table}");
    }
    assert_eq!(
        applied(store.pool(), "_mcp_auth_migrations").await,
        expected_migrations()
    );
    assert!(
        !table_exists(store.pool(), "_sqlx_migrations").await,
        "the library never touches sqlx's default table"
    );
    assert_eq!(MIGRATIONS_TABLE, "_mcp_auth_migrations");
}

async fn applying_twice_is_a_no_op(db: &TestDb) {
    let store = db.store().await;
    let (seed, _, _) = seed_with_tokens(&store).await;
    store.migrate().await.unwrap();
    connect(db).await.migrate().await.unwrap();
    assert_eq!(
        applied(store.pool(), "_mcp_auth_migrations").await,
        expected_migrations()
    );
    assert!(
        store
            .get_grant(&seed.grant.grant_id)
            .await
            .unwrap()
            .is_some()
    );
}

/// Fails the test, with the install command, unless sqlx-cli 0.9 (with `sqlx.toml` support) is
/// on PATH. Only reached when the CLI tests were asked for (`MCP_AUTH_REQUIRE_SQLX_CLI`).
fn require_sqlx_cli(test: &str) {
    let found = Command::new("sqlx")
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(" 0.9")
        });
    let install = "cargo install sqlx-cli --version 0.9.0 --locked --no-default-features \
                   --features rustls,postgres,sqlite,sqlx-toml";
    assert!(
        found,
        "{test} needs sqlx-cli 0.9 with sqlx.toml support on PATH; install it with\n  {install}"
    );
}

/// Runs `sqlx migrate run` with `args` in `dir` and asserts success.
fn run_cli(dir: &Path, url: &str, args: &[&str]) -> String {
    let out = Command::new("sqlx")
        .current_dir(dir)
        .args(["migrate", "run", "--database-url", url])
        .args(args)
        .output()
        .expect("run sqlx");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sqlx migrate run failed:\n{text}");
    text
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The URL the CLI should use: SQLite needs `mode=rwc` to create the file.
fn cli_url(db: &TestDb) -> String {
    if db.url().starts_with("sqlite:") {
        format!("{}?mode=rwc", db.url())
    } else {
        db.url().to_owned()
    }
}

async fn cli_then_embedded_migrator(db: &TestDb) {
    require_sqlx_cli("cli_then_embedded_migrator");
    // In the crate directory the CLI finds `sqlx.toml` by itself.
    let output = run_cli(crate_dir(), &cli_url(db), &[]);
    assert!(
        output.contains("sqlx.toml"),
        "the CLI did not read sqlx.toml; was it built with the `sqlx-toml` feature?\n{output}"
    );
    assert!(output.contains("Applied"), "{output}");

    let store = connect(db).await;
    assert_eq!(
        applied(store.pool(), "_mcp_auth_migrations").await,
        expected_migrations(),
        "the CLI recorded the same checksums as the embedded migrator"
    );
    assert!(!table_exists(store.pool(), "_sqlx_migrations").await);
    // The embedded migrator sees nothing to do and the store works.
    store.migrate().await.unwrap();
    let store = db.store().await;
    seed_with_tokens(&store).await;

    // And the CLI, run again, is a no-op as well.
    let again = run_cli(crate_dir(), &cli_url(db), &[]);
    assert!(!again.contains("Applied"), "{again}");
}

async fn cli_with_explicit_config_from_elsewhere(db: &TestDb) {
    require_sqlx_cli("cli_with_explicit_config_from_elsewhere");
    // What an application does with the crate unpacked somewhere else: point the CLI at the
    // crate's sqlx.toml and migrations from its own directory.
    let config = crate_dir().join("sqlx.toml");
    let source = crate_dir().join("migrations");
    run_cli(
        &std::env::temp_dir(),
        &cli_url(db),
        &[
            "--config",
            config.to_str().unwrap(),
            "--source",
            source.to_str().unwrap(),
        ],
    );
    let store = connect(db).await;
    assert_eq!(
        applied(store.pool(), "_mcp_auth_migrations").await,
        expected_migrations()
    );
    assert!(!table_exists(store.pool(), "_sqlx_migrations").await);
    store.migrate().await.unwrap();
}

/// An application's own migrator: default table `_sqlx_migrations`, its own versions.
fn application_migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            20260101000000,
            Cow::Borrowed("app things"),
            MigrationType::Simple,
            "CREATE TABLE app_things (id TEXT PRIMARY KEY)".into_sql_str(),
            false,
        ),
        // The same version number as one of ours: separate tables keep them apart.
        Migration::new(
            20260601000000,
            Cow::Borrowed("app more"),
            MigrationType::Simple,
            "CREATE TABLE app_more (id TEXT PRIMARY KEY)".into_sql_str(),
            false,
        ),
    ])
}

async fn coexists_with_application_migrations(db: &TestDb) {
    let store = connect(db).await;
    // Application first, then the library, then both again in the other order.
    application_migrator().run(store.pool()).await.unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    application_migrator().run(store.pool()).await.unwrap();

    assert_eq!(
        applied(store.pool(), "_mcp_auth_migrations").await,
        expected_migrations()
    );
    let app = applied(store.pool(), "_sqlx_migrations").await;
    assert_eq!(
        app.iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        vec![20260101000000, 20260601000000]
    );
    assert!(table_exists(store.pool(), "app_things").await);
    assert!(table_exists(store.pool(), "mcp_auth_tokens").await);
}
