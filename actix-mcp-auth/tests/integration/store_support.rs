//! Shared machinery of the HTTP tests: a fresh database per test on each engine (`TestDb`,
//! shared with the store's unit tests), direct looks at its tables, and `http_tests!`, which
//! runs one list of tests on SQLite always and on PostgreSQL whenever `TEST_DATABASE_URL` is
//! set. The store's own tests, which need its crate-private records, live beside it in
//! `src/store/tests/`.

use actix_mcp_auth::store::{Keyring, Store, StoreOptions};
use sqlx::Row as _;

// Not every helper serves both the store's unit tests and these.
#[allow(dead_code)]
#[path = "../../src/store/tests/test_db.rs"]
mod test_db;
pub(crate) use test_db::engine_tests;
pub use test_db::{TestDb, key_b64, now, random_id, test_keys};

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

/// HTTP tests: on an actix runtime (the awc client is `!Send`).
macro_rules! http_tests {
    ($($name:ident),* $(,)?) => {
        $crate::store_support::engine_tests!(
            db = $crate::store_support::TestDb;
            #[actix_web::test] #[cfg_attr(any(), ignore)] $($name),*
        );
    };
}
pub(crate) use http_tests;
