//! Shared machinery of the store tests: a fresh database per test on each engine, record
//! fixtures, and `store_tests!`, which runs one list of tests on SQLite always and on
//! PostgreSQL whenever `TEST_DATABASE_URL` was set at build time (`build.rs`). The HTTP tests
//! in `tests/integration/` keep their own twin of `TestDb` and `engine_tests!`: they see only
//! the public API.

use std::path::PathBuf;

use crate::store::{
    AuthorizationCode, ClientRecord, CodeRedemption, Grant, Keyring, NewTokens,
    PendingAuthorization, Secret, Store, StoreOptions, SuccessorTokens, TokenHash, UpstreamTokens,
};
use sqlx::{Any, migrate::MigrateDatabase};

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
}

impl TestDb {
    /// A fresh SQLite file in the temp directory.
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("mcp_auth_test_{}.db", random_id()));
        Self {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}", path.display()),
            sqlite_file: Some(path),
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
        }
    }

    /// The database URL (SQLite: the file is created on first connect).
    pub fn url(&self) -> &str {
        &self.url
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

/// A registered client that expires in an hour.
pub fn client(client_id: &str) -> ClientRecord {
    let now = now();
    ClientRecord {
        client_id: client_id.to_owned(),
        client_secret_hash: None,
        client_name: Some("Test client".into()),
        redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        token_endpoint_auth_method: "none".into(),
        scope: Some("openid profile".into()),
        metadata: Some(serde_json::json!({"client_uri": "https://example.com"})),
        created_at: now,
        last_used_at: now,
        expires_at: now + 3600,
    }
}

/// A pending authorization of `client_id` expiring in `ttl` seconds.
pub fn pending(client_id: &str, ttl: i64) -> PendingAuthorization {
    let now = now();
    PendingAuthorization {
        txn_id: random_id(),
        client_id: client_id.to_owned(),
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        redirect_uri_sent: true,
        client_state: Some("client-state".into()),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: vec!["openid".into(), "profile".into()],
        resource: Some("https://mcp.example.com/mcp".into()),
        upstream_verifier: Secret::new(format!("verifier-{}", random_id())),
        upstream_nonce: Some("nonce".into()),
        browser_binding: Some(TokenHash::of("browser cookie")),
        consent_token: Some(TokenHash::of("consent csrf")),
        consented_at: None,
        created_at: now,
        expires_at: now + ttl,
    }
}

/// A grant of `client_id` expiring in `ttl` seconds.
pub fn grant(client_id: &str, ttl: i64) -> Grant {
    let now = now();
    Grant {
        grant_id: random_id(),
        subject: "user_01TEST".into(),
        client_id: client_id.to_owned(),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        resource: Some("https://mcp.example.com/mcp".into()),
        upstream: UpstreamTokens {
            access_token: Secret::new(format!("upstream-at-{}", random_id())),
            refresh_token: Some(Secret::new(format!("upstream-rt-{}", random_id()))),
            id_token: Some(Secret::new("upstream-id-token")),
            expires_at: Some(now + 300),
        },
        upstream_version: 0,
        profile: Some(serde_json::json!({"email": "user@example.com"})),
        created_at: now,
        expires_at: now + ttl,
    }
}

/// An authorization code for `grant` expiring in `ttl` seconds; returns the raw code too.
pub fn code(grant: &Grant, ttl: i64) -> (String, AuthorizationCode) {
    let raw = format!("mcp_code_{}", random_id());
    let now = now();
    let code = AuthorizationCode {
        code_hash: TokenHash::of(&raw),
        grant_id: grant.grant_id.clone(),
        client_id: grant.client_id.clone(),
        redirect_uri: "http://127.0.0.1:9/callback".into(),
        redirect_uri_sent: true,
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: grant.scopes.clone(),
        resource: grant.resource.clone(),
        created_at: now,
        expires_at: now + ttl,
        used_at: None,
    };
    (raw, code)
}

/// Raw access and refresh tokens and their `NewTokens` (1 h access, 1 day refresh).
pub fn new_tokens() -> (String, String, NewTokens) {
    let access = format!("mcp_at_{}", random_id());
    let refresh = format!("mcp_rt_{}", random_id());
    let now = now();
    let tokens = NewTokens {
        access_hash: TokenHash::of(&access),
        access_expires_at: now + 3600,
        refresh_hash: Some(TokenHash::of(&refresh)),
        refresh_expires_at: now + 86_400,
    };
    (access, refresh, tokens)
}

/// A successor pair for a rotation (1 h access, 1 day refresh).
pub fn successor() -> SuccessorTokens {
    let (access, refresh, tokens) = new_tokens();
    SuccessorTokens {
        access_token: Secret::new(access),
        access_expires_at: tokens.access_expires_at,
        refresh_token: Secret::new(refresh),
        refresh_expires_at: tokens.refresh_expires_at,
    }
}

/// The refresh grace of the store tests: long, so a slow machine never leaves it by accident;
/// tests leave it by moving the store's clock.
pub const GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// What the fixtures' codes were issued for: the redemption a token endpoint would check.
pub fn redemption(client_id: &str) -> CodeRedemption<'_> {
    CodeRedemption {
        client_id,
        redirect_uri: "http://127.0.0.1:9/callback",
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    }
}

/// A client and a live grant with an unused code, in `store`.
pub struct Seed {
    pub client_id: String,
    pub grant: Grant,
    pub code: String,
}

/// Registers a client and creates a grant (2 days) with a code (5 min).
pub async fn seed(store: &Store) -> Seed {
    let client_id = format!("client_{}", random_id());
    store.register_client(&client(&client_id)).await.unwrap();
    // Outlives the tokens tests issue (1 day refresh): their expiry is never capped at the
    // grant's, even when a second passes between building the two.
    let grant = grant(&client_id, 2 * 86_400);
    let (raw, code) = code(&grant, 300);
    store.create_grant(&grant, &code).await.unwrap();
    Seed {
        client_id,
        grant,
        code: raw,
    }
}

/// A seeded grant with an issued token pair; returns the raw tokens.
pub async fn seed_with_tokens(store: &Store) -> (Seed, String, String) {
    let seed = seed(store).await;
    let (access, refresh, tokens) = new_tokens();
    store
        .issue_tokens(&seed.grant.grant_id, &seed.grant.scopes, &tokens)
        .await
        .unwrap()
        .expect("grant is live");
    (seed, access, refresh)
}

/// Number of rows in `table` (a fixed table name from the test).
pub async fn count(store: &Store, table: &'static str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Expands each test function `name(&TestDb)` into a SQLite test and a PostgreSQL test, under
/// the given test attribute (and at most one extra attribute, e.g. an `ignore` condition). The
/// PostgreSQL legs are ignored, with the reason, unless `TEST_DATABASE_URL` was set when the
/// tests were built (`build.rs`). One acceptance list for both engines, in the style of
/// actix-session's.
macro_rules! engine_tests {
    (#[$runtime:meta] $($name:ident),* $(,)?) => {
        // A `cfg_attr` whose condition never holds: no extra attribute.
        $crate::store::tests::support::engine_tests!(#[$runtime] #[cfg_attr(any(), ignore)] $($name),*);
    };
    (#[$runtime:meta] #[$extra:meta] $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[$runtime]
                #[$extra]
                async fn $name() {
                    let db = $crate::store::tests::support::TestDb::sqlite();
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
                    let db = $crate::store::tests::support::TestDb::postgres(stringify!($name)).await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}
pub(crate) use engine_tests;

/// Store tests: on a multi-threaded Tokio runtime (sqlx futures are `Send`).
macro_rules! store_tests {
    ($(#[$extra:meta])? $($name:ident),* $(,)?) => {
        $crate::store::tests::support::engine_tests!(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)] $(#[$extra])? $($name),*
        );
    };
}
pub(crate) use store_tests;
