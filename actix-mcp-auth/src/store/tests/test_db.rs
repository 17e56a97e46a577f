//! A fresh database per test on each engine, and `engine_tests!`, which runs one list of tests
//! on SQLite always and on PostgreSQL whenever `TEST_DATABASE_URL` was set at build time
//! (`build.rs`). Shared by the store's unit tests (`mod test_db` here) and the HTTP tests
//! (`tests/integration/store_support.rs` includes this file), so it uses only the public API;
//! the includer's parent module imports `Keyring`, `Store` and `StoreOptions`.

use std::path::PathBuf;

use sqlx::{Any, AnyPool, migrate::MigrateDatabase};

use super::{Keyring, Store, StoreOptions};

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A random lower-case hex string (ids, tokens, database names).
pub fn random_id() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Which engine a test database runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database created for one test and removed when it is dropped (even after a panic).
pub struct TestDb {
    pub backend: Backend,
    url: String,
    sqlite_file: Option<PathBuf>,
    /// A pool of the test's own, for looking at the tables directly.
    sql: tokio::sync::OnceCell<AnyPool>,
}

impl TestDb {
    /// A fresh SQLite file in the temp directory.
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("mcp_auth_test_{}.db", random_id()));
        Self {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", path.display()),
            sqlite_file: Some(path),
            sql: Default::default(),
        }
    }

    /// A fresh PostgreSQL database on the `TEST_DATABASE_URL` server. The PostgreSQL legs are
    /// compiled as ignored when the variable was unset at build time (see `build.rs`), so
    /// reaching this without it is a misconfigured run, not a skip.
    pub async fn postgres(test: &str) -> Self {
        let base = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "{test}: TEST_DATABASE_URL was set when the tests were built but is unset now"
                )
            });
        sqlx::any::install_default_drivers();
        let mut url = url::Url::parse(&base).expect("TEST_DATABASE_URL is a URL");
        url.set_path(&format!("/mcp_auth_test_{}", random_id()));
        let url = url.to_string();
        Any::create_database(&url)
            .await
            .expect("CREATE DATABASE on the TEST_DATABASE_URL server");
        Self {
            backend: Backend::Postgres,
            url,
            sqlite_file: None,
            sql: Default::default(),
        }
    }

    /// The database URL (SQLite: the file is created on first connect).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool on this database for the tests' direct looks at the tables (not the store's
    /// own pool: that one is the store's business).
    pub async fn sql(&self) -> &AnyPool {
        self.sql
            .get_or_init(|| async {
                sqlx::any::install_default_drivers();
                AnyPool::connect(&self.url).await.expect("test pool")
            })
            .await
    }

    /// A store on this database with `keys`, migrated.
    pub async fn store_with_keys(&self, keys: Keyring) -> Store {
        let store = Store::connect(&self.url, keys).await.expect("connect");
        store.migrate().await.expect("migrate");
        store
    }

    /// A store on this database with the test keyring, migrated. Two calls give two pools:
    /// two replicas.
    pub async fn store(&self) -> Store {
        self.store_with_keys(test_keys()).await
    }

    /// A store with explicit options, migrated.
    pub async fn store_with_options(&self, options: StoreOptions) -> Store {
        let store = Store::connect_with(&self.url, test_keys(), options)
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        store
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(path) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
            return;
        }
        // Async cleanup from a synchronous drop, possibly on a runtime thread: use a thread
        // with its own runtime. FORCE-drop because pools may still hold connections.
        let url = self.url.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Any::force_drop_database(&url))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.url);
        }
    }
}

/// The fixed keyring of the tests (one key, so two stores of a test agree).
pub fn test_keys() -> Keyring {
    Keyring::from_config(&key_b64(7)).unwrap()
}

/// A deterministic base64 key from one byte.
pub fn key_b64(byte: u8) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// Expands each test function `name(&TestDb)` into a SQLite test and a PostgreSQL test, under
/// the given test attribute and one extra attribute (e.g. an `ignore` condition; the wrappers
/// `store_tests!` and `http_tests!` pass a no-op one when there is none). `db` names this
/// crate's `TestDb`. The PostgreSQL legs are ignored, with the reason, unless
/// `TEST_DATABASE_URL` was set when the tests were built (`build.rs`). One acceptance list for
/// both engines, in the style of actix-session's.
macro_rules! engine_tests {
    (db = $db:ty; #[$runtime:meta] #[$extra:meta] $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[$runtime]
                #[$extra]
                async fn $name() {
                    let db = <$db>::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[$runtime]
                #[$extra]
                // Two `ignore`s when both services are missing; either reason is true.
                #[allow(unused_attributes)]
                #[cfg_attr(
                    not(mcp_auth_test_postgres),
                    ignore = "PostgreSQL leg: set TEST_DATABASE_URL \
                              (e.g. postgres://postgres@127.0.0.1:5432/test) to run it"
                )]
                async fn $name() {
                    let db = <$db>::postgres(stringify!($name)).await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}
pub(crate) use engine_tests;
