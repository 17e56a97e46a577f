//! Shared machinery of the HTTP tests: a fresh database per test on each engine, direct looks
//! at its tables, and `http_tests!`, which runs one list of tests on SQLite always and on
//! PostgreSQL whenever `TEST_DATABASE_URL` is set. The store's own tests, which need its
//! crate-private records, live beside it in `src/store/tests/` with a twin of this machinery.

use std::path::PathBuf;

use actix_mcp_auth::store::{Keyring, Store, StoreOptions};
use sqlx::{Any, AnyPool, Row as _, migrate::MigrateDatabase};

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

/// A database created for one test and removed when it is dropped (even after a panic).
pub struct TestDb {
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

/// A client as the HTTP tests write and read it in `mcp_auth_clients` directly (the store's
/// records and operations are crate-private; its own tests are in `src/store/tests/`).
#[derive(Clone, Debug)]
pub struct ClientRow {
    pub client_id: String,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub metadata: Option<serde_json::Value>,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A public client registered now that expires in an hour.
pub fn client(client_id: &str) -> ClientRow {
    let now = now();
    ClientRow {
        client_id: client_id.to_owned(),
        client_name: Some("Test client".into()),
        redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
        metadata: Some(serde_json::json!({"client_uri": "https://example.com"})),
        created_at: now,
        expires_at: now + 3600,
    }
}

/// Writes `client` as a registration that never completed a login would be stored (a client
/// row plus its row among the unused registrations), e.g. one stored before today's rules.
pub async fn insert_client(db: &TestDb, client: &ClientRow) {
    let sql = db.sql().await;
    sqlx::query(
        "INSERT INTO mcp_auth_clients (client_id, client_secret_hash, client_name, \
         redirect_uris, grant_types, token_endpoint_auth_method, scope, metadata, created_at, \
         last_used_at, expires_at) VALUES ($1, NULL, $2, $3, $4, 'none', 'openid profile', $5, \
         $6, $6, $7)",
    )
    .bind(&client.client_id)
    .bind(client.client_name.as_deref())
    .bind(serde_json::to_string(&client.redirect_uris).unwrap())
    .bind(r#"["authorization_code","refresh_token"]"#)
    .bind(client.metadata.as_ref().map(|m| m.to_string()))
    .bind(client.created_at)
    .bind(client.expires_at)
    .execute(sql)
    .await
    .expect("insert client");
    sqlx::query(
        "INSERT INTO mcp_auth_unused_clients (client_id, created_at, expires_at) \
         VALUES ($1, $2, $3)",
    )
    .bind(&client.client_id)
    .bind(client.created_at)
    .bind(client.expires_at)
    .execute(sql)
    .await
    .expect("insert unused client");
}

/// The live (unexpired) client `client_id` as stored.
pub async fn stored_client(db: &TestDb, client_id: &str) -> Option<ClientRow> {
    let row = sqlx::query(
        "SELECT client_id, client_name, redirect_uris, metadata, created_at, expires_at \
         FROM mcp_auth_clients WHERE client_id = $1 AND expires_at > $2",
    )
    .bind(client_id)
    .bind(now())
    .fetch_optional(db.sql().await)
    .await
    .expect("select client")?;
    let json = |column: &str| -> Option<serde_json::Value> {
        row.get::<Option<String>, _>(column)
            .map(|text| serde_json::from_str(&text).expect("stored JSON"))
    };
    Some(ClientRow {
        client_id: row.get("client_id"),
        client_name: row.get("client_name"),
        redirect_uris: serde_json::from_value(json("redirect_uris").unwrap()).unwrap(),
        metadata: json("metadata"),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
    })
}

/// Live registrations that never completed a login (what `max_unused_clients` caps).
pub async fn unused_clients(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM mcp_auth_unused_clients WHERE expires_at > $1")
        .bind(now())
        .fetch_one(db.sql().await)
        .await
        .unwrap()
}

/// The digest under which the store keeps a code or token (hex SHA-256), to find its row.
pub fn token_hash(raw: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(raw.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Expands each test function `name(&TestDb)` into a SQLite test and a PostgreSQL test, under
/// the given test attribute (and at most one extra attribute, e.g. an `ignore` condition). The
/// PostgreSQL legs are ignored, with the reason, unless `TEST_DATABASE_URL` was set when the
/// tests were built (`build.rs`). One acceptance list for both engines, in the style of
/// actix-session's.
macro_rules! engine_tests {
    (#[$runtime:meta] $($name:ident),* $(,)?) => {
        // A `cfg_attr` whose condition never holds: no extra attribute.
        $crate::store_support::engine_tests!(#[$runtime] #[cfg_attr(any(), ignore)] $($name),*);
    };
    (#[$runtime:meta] #[$extra:meta] $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[$runtime]
                #[$extra]
                async fn $name() {
                    let db = $crate::store_support::TestDb::sqlite();
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
                    let db = $crate::store_support::TestDb::postgres(stringify!($name)).await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}
pub(crate) use engine_tests;

/// HTTP tests: on an actix runtime (the awc client is `!Send`).
macro_rules! http_tests {
    ($($name:ident),* $(,)?) => {
        $crate::store_support::engine_tests!(#[actix_web::test] $($name),*);
    };
}
pub(crate) use http_tests;
