//! Shared machinery of the store tests: record fixtures, and `store_tests!`, which runs one
//! list of tests on SQLite always and on PostgreSQL whenever `TEST_DATABASE_URL` was set at
//! build time (`build.rs`), each on a fresh database (`test_db.rs`, shared with the HTTP
//! tests).

pub use super::test_db::{Backend, TestDb, key_b64, now, random_id, test_keys};
use crate::store::{
    AuthorizationCode, ClientRecord, CodeRedemption, Grant, NewTokens, PendingAuthorization,
    Secret, Store, SuccessorTokens, TokenHash, UpstreamTokens,
};

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

/// Store tests: on a multi-threaded Tokio runtime (sqlx futures are `Send`).
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {
        $crate::store::tests::support::store_tests!(#[cfg_attr(any(), ignore)] $($name),*);
    };
    (#[$extra:meta] $($name:ident),* $(,)?) => {
        $crate::store::tests::test_db::engine_tests!(
            db = $crate::store::tests::test_db::TestDb;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)] #[$extra] $($name),*
        );
    };
}
pub(crate) use store_tests;
