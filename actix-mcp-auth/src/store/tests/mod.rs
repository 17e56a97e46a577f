//! The store's tests, beside it because they reach its crate-private records and operations:
//! every test of the list runs on SQLite and on PostgreSQL (`store_tests!`).

mod breaker;
mod durability;
mod grants_audit;
mod migrations;
mod operations;
mod races;
mod support;
// Not every helper serves both the store's unit tests and the HTTP tests that share it.
#[allow(dead_code)]
mod test_db;

// The engine and URL helpers of `store/mod.rs`.
use super::*;

#[test]
fn engine_from_url() {
    assert_eq!(
        Engine::from_url("postgres://u@h/db"),
        Some(Engine::Postgres)
    );
    assert_eq!(
        Engine::from_url("postgresql://u@h/db"),
        Some(Engine::Postgres)
    );
    assert_eq!(Engine::from_url("sqlite://x.db"), Some(Engine::Sqlite));
    assert_eq!(Engine::from_url("sqlite::memory:"), Some(Engine::Sqlite));
    assert_eq!(Engine::from_url("mysql://h/db"), None);
}

#[test]
fn sqlite_urls_create_the_file() {
    assert_eq!(
        sqlite_create_if_missing("sqlite://a.db"),
        "sqlite://a.db?mode=rwc"
    );
    assert_eq!(
        sqlite_create_if_missing("sqlite://a.db?cache=shared"),
        "sqlite://a.db?cache=shared&mode=rwc"
    );
    assert_eq!(
        sqlite_create_if_missing("sqlite://a.db?mode=ro"),
        "sqlite://a.db?mode=ro"
    );
}

#[test]
fn sqlite_files_to_create_are_read_like_sqlx() {
    let path = |url: &str| sqlite_file_to_create(url).map(|p| p.display().to_string());
    assert_eq!(path("sqlite://a.db?mode=rwc").as_deref(), Some("a.db"));
    assert_eq!(
        path("sqlite:///tmp/x%20y.db?cache=shared&mode=rwc").as_deref(),
        Some("/tmp/x y.db")
    );
    assert_eq!(path("sqlite:b.db?mode=rwc").as_deref(), Some("b.db"));
    assert_eq!(path("sqlite://a.db?mode=ro"), None);
    assert_eq!(path("sqlite://a.db"), None);
    assert_eq!(path("sqlite::memory:?mode=rwc"), None);
    assert_eq!(path("sqlite://?mode=rwc"), None);
}

#[test]
fn scopes_round_trip() {
    let scopes = vec!["openid".to_owned(), "profile".to_owned()];
    assert_eq!(split_scopes(&join_scopes(&scopes)), scopes);
    assert!(split_scopes("").is_empty());
}
