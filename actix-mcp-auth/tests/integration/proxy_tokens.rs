//! Proxy mode, `/token` under attack: the refresh-token grace and replay rules on two replicas
//! with a controlled clock (nothing sleeps), and code redemption that a wrong guess cannot burn.

use std::{
    io,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use actix_mcp_auth::{Clock, store::StoreOptions};
use actix_mcp_auth_testing::{AuthorizeOptions, ConsentDecision, FakeAuthKit, Pkce};
use futures_util::future::join_all;
use serde_json::Value;

use crate::{
    app::Reply,
    proxy_app::{
        Browser, McpClient, ProxyApp, call_mcp, login, pkce, redeem, register, token_request,
    },
    store_support::{TestDb, token_hash},
};

crate::store_support::http_tests!(
    refresh_retry_within_grace_gets_the_same_pair_on_any_replica,
    refresh_replay_after_grace_revokes_the_grant_and_logs_a_warning,
    refresh_replay_after_the_successor_was_used_revokes_the_grant,
    presenting_a_successor_revoked_by_a_rotation_revokes_the_grant,
    concurrent_refreshes_on_two_replicas_rotate_once_and_agree,
    token_requires_the_redirect_uri_the_authorization_request_carried,
    wrong_guesses_neither_burn_a_code_nor_revoke_its_grant,
);

/// The grace of these tests: long, so that a slow machine never leaves it by accident; tests
/// leave it by moving the clock.
const GRACE: Duration = Duration::from_secs(60);

/// Two replicas over one database, sharing one adjustable clock.
async fn two_replicas(db: &TestDb) -> (FakeAuthKit, ProxyApp, ProxyApp, Clock) {
    let fake = FakeAuthKit::start();
    let clock = Clock::adjustable();
    let store = || db.store_with_options(StoreOptions::default().clock(clock.clone()));
    let a = ProxyApp::spawn(&fake, store().await, |b| b.refresh_grace(GRACE)).await;
    // The second replica serves the first one's public URL (one issuer, one resource).
    let b = ProxyApp::spawn(&fake, store().await, |b| {
        b.base_url(&a.base_url).refresh_grace(GRACE)
    })
    .await;
    (fake, a, b, clock)
}

/// Registers a client, logs in on `app` and redeems the code: (client, token response).
async fn logged_in(app: &ProxyApp) -> (McpClient, Value) {
    let browser = Browser::default();
    let client = register(app, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(app, &browser, &client, &challenge).await;
    let tokens = redeem(app, &client, &code, &verifier).await;
    (client, tokens)
}

async fn refresh_on(app: &ProxyApp, client: &McpClient, refresh_token: &str) -> Reply {
    token_request(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &client.client_id),
        ],
    )
    .await
}

fn field(reply: &Reply, name: &str) -> String {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name}"))
        .to_owned()
}

fn error(reply: &Reply) -> String {
    assert_eq!(reply.status, 400, "{}", reply.text());
    reply.json()["error"].as_str().unwrap().to_owned()
}

/// The grant of a token (our digest lookup, as an operator would do it).
pub async fn grant_of(db: &TestDb, token: &str) -> String {
    sqlx::query_scalar("SELECT grant_id FROM mcp_auth_tokens WHERE token_hash = $1")
        .bind(token_hash(token))
        .fetch_one(db.sql().await)
        .await
        .unwrap()
}

async fn grant_revoked(db: &TestDb, grant_id: &str) -> bool {
    let revoked: Option<i64> =
        sqlx::query_scalar("SELECT revoked_at FROM mcp_auth_grants WHERE grant_id = $1")
            .bind(grant_id)
            .fetch_one(db.sql().await)
            .await
            .unwrap();
    revoked.is_some()
}

async fn refresh_retry_within_grace_gets_the_same_pair_on_any_replica(db: &TestDb) {
    let (_fake, a, b, clock) = two_replicas(db).await;
    let (client, tokens) = logged_in(&a).await;
    let rt0 = tokens["refresh_token"].as_str().unwrap();

    let first = refresh_on(&a, &client, rt0).await;
    let (at1, rt1) = (
        field(&first, "access_token"),
        field(&first, "refresh_token"),
    );
    assert_ne!(rt1, rt0);
    // The answer was "lost"; the client retries late in the grace on the other replica.
    clock.advance(GRACE - Duration::from_secs(5));
    let retry = refresh_on(&b, &client, rt0).await;
    assert_eq!(field(&retry, "access_token"), at1, "the same access token");
    assert_eq!(
        field(&retry, "refresh_token"),
        rt1,
        "the same refresh token"
    );
    assert_eq!(retry.header("cache-control").as_deref(), Some("no-store"));
    // ... and once more on the first one: still the same pair, nothing revoked.
    let again = refresh_on(&a, &client, rt0).await;
    assert_eq!(field(&again, "refresh_token"), rt1);
    assert_eq!(call_mcp(&a, &at1).await.status, 200);
    assert_eq!(call_mcp(&b, &at1).await.status, 200);
    // Exactly one pair descends from RT0.
    let children: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM mcp_auth_tokens WHERE parent_hash = $1")
            .bind(token_hash(rt0))
            .fetch_one(db.sql().await)
            .await
            .unwrap();
    assert_eq!(children, 2);
    // The successor works normally.
    let next = refresh_on(&b, &client, &rt1).await;
    assert_ne!(field(&next, "refresh_token"), rt1);
}

async fn refresh_replay_after_grace_revokes_the_grant_and_logs_a_warning(db: &TestDb) {
    let logs = warnings();
    let (_fake, a, b, clock) = two_replicas(db).await;
    let (client, tokens) = logged_in(&a).await;
    let rt0 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let grant_id = grant_of(db, &rt0).await;

    let first = refresh_on(&a, &client, &rt0).await;
    let (at1, rt1) = (
        field(&first, "access_token"),
        field(&first, "refresh_token"),
    );
    // Cached on replica A: the replay must drop it there at once.
    assert_eq!(call_mcp(&a, &at1).await.status, 200);
    clock.advance(GRACE + Duration::from_secs(1));
    // The thief replays RT0 after the grace: refused, and the whole grant is revoked.
    let replay = refresh_on(&a, &client, &rt0).await;
    assert_eq!(error(&replay), "invalid_grant");
    assert!(grant_revoked(db, &grant_id).await);
    assert_eq!(
        call_mcp(&a, &at1).await.status,
        401,
        "dropped from A's cache"
    );
    assert_eq!(call_mcp(&b, &at1).await.status, 401);
    assert_eq!(error(&refresh_on(&b, &client, &rt1).await), "invalid_grant");
    assert_eq!(error(&refresh_on(&b, &client, &rt0).await), "invalid_grant");

    // One WARN names the grant and the client, never a token.
    let logged = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|l| l.contains(&grant_id) && l.contains("replayed"))
        .unwrap_or_else(|| panic!("no replay warning for {grant_id} in:\n{logged}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&client.client_id), "{line}");
    for token in [&rt0, &rt1, &at1] {
        assert!(!logged.contains(token.as_str()), "a token reached the log");
    }
}

async fn refresh_replay_after_the_successor_was_used_revokes_the_grant(db: &TestDb) {
    let (_fake, a, b, _clock) = two_replicas(db).await;
    let (client, tokens) = logged_in(&a).await;
    let rt0 = tokens["refresh_token"].as_str().unwrap();
    let rt1 = field(&refresh_on(&a, &client, rt0).await, "refresh_token");
    let second = refresh_on(&b, &client, &rt1).await;
    let (at2, rt2) = (
        field(&second, "access_token"),
        field(&second, "refresh_token"),
    );
    assert_eq!(call_mcp(&b, &at2).await.status, 200);
    // Within RT0's grace, but RT1 was used: RT0 is a replay (RFC 9700 §4.14.2).
    let replay = refresh_on(&b, &client, rt0).await;
    assert_eq!(error(&replay), "invalid_grant");
    assert_eq!(call_mcp(&b, &at2).await.status, 401);
    assert_eq!(error(&refresh_on(&a, &client, &rt2).await), "invalid_grant");
}

async fn presenting_a_successor_revoked_by_a_rotation_revokes_the_grant(db: &TestDb) {
    let (_fake, a, b, _clock) = two_replicas(db).await;
    let (client, tokens) = logged_in(&a).await;
    let rt0 = tokens["refresh_token"].as_str().unwrap();
    let at0 = tokens["access_token"].as_str().unwrap();
    let rt1 = field(&refresh_on(&a, &client, rt0).await, "refresh_token");
    let grant_id = grant_of(db, &rt1).await;
    // A rotation revoked RT1 while the grant lives: what version 1's grace did when a thief
    // replayed RT0 (a rolling upgrade can leave such rows). Presenting it is a replay signal.
    sqlx::query("UPDATE mcp_auth_tokens SET revoked_at = created_at WHERE token_hash = $1")
        .bind(token_hash(&rt1))
        .execute(db.sql().await)
        .await
        .unwrap();
    assert_eq!(call_mcp(&b, at0).await.status, 200, "the grant still lives");
    let replay = refresh_on(&b, &client, &rt1).await;
    assert_eq!(error(&replay), "invalid_grant");
    assert!(grant_revoked(db, &grant_id).await, "the grant is revoked");
    assert_eq!(call_mcp(&b, at0).await.status, 401);
    // Another client presenting it revokes nothing (checked on a fresh grant).
    let (client, tokens) = logged_in(&a).await;
    let other = register(&a, &Browser::default()).await;
    let rt0 = tokens["refresh_token"].as_str().unwrap();
    let rt1 = field(&refresh_on(&a, &client, rt0).await, "refresh_token");
    let grant_id = grant_of(db, &rt1).await;
    sqlx::query("UPDATE mcp_auth_tokens SET revoked_at = created_at WHERE token_hash = $1")
        .bind(token_hash(&rt1))
        .execute(db.sql().await)
        .await
        .unwrap();
    assert_eq!(error(&refresh_on(&a, &other, &rt1).await), "invalid_grant");
    assert!(!grant_revoked(db, &grant_id).await);
}

async fn concurrent_refreshes_on_two_replicas_rotate_once_and_agree(db: &TestDb) {
    const N: usize = 30;
    let (_fake, a, b, _clock) = two_replicas(db).await;
    let (client, tokens) = logged_in(&a).await;
    let rt0 = tokens["refresh_token"].as_str().unwrap();
    let answers = join_all((0..N).map(|i| {
        let replica = if i % 2 == 0 { &a } else { &b };
        refresh_on(replica, &client, rt0)
    }))
    .await;
    let pairs: Vec<(String, String)> = answers
        .iter()
        .map(|r| (field(r, "access_token"), field(r, "refresh_token")))
        .collect();
    assert!(
        pairs.iter().all(|p| p == &pairs[0]),
        "all {N} answers carry the same pair"
    );
    let children: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM mcp_auth_tokens WHERE parent_hash = $1")
            .bind(token_hash(rt0))
            .fetch_one(db.sql().await)
            .await
            .unwrap();
    assert_eq!(children, 2, "exactly one rotation");
    let (at1, rt1) = &pairs[0];
    assert_eq!(call_mcp(&a, at1).await.status, 200);
    assert_eq!(call_mcp(&b, at1).await.status, 200);
    assert_ne!(
        field(&refresh_on(&b, &client, rt1).await, "refresh_token"),
        *rt1
    );
}

/// Runs a login on `app` for `request`, whose URL the test may have changed; returns our code.
async fn login_with(
    app: &ProxyApp,
    request: &actix_mcp_auth_testing::AuthorizationRequest,
) -> String {
    let browser = Browser::default();
    let driver = app.driver(&browser);
    let consent_url = driver
        .start_authorization(request)
        .await
        .expect("authorize");
    let form = driver
        .consent_form(&consent_url)
        .await
        .expect("consent page");
    let upstream = driver
        .submit_consent(&form, ConsentDecision::Approve)
        .await
        .expect("consent");
    let callback = driver.follow(&upstream).await.expect("AuthKit");
    driver
        .finish_authorization(request, &callback)
        .await
        .expect("callback")
        .code
}

fn code_form<'a>(
    client: &'a McpClient,
    code: &'a str,
    verifier: &'a str,
    redirect_uri: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("code_verifier", verifier),
        ("client_id", client.client_id.as_str()),
    ];
    if let Some(uri) = redirect_uri {
        form.push(("redirect_uri", uri));
    }
    form
}

async fn token_requires_the_redirect_uri_the_authorization_request_carried(db: &TestDb) {
    let (_fake, a, _b, _clock) = two_replicas(db).await;
    let browser = Browser::default();
    let client = register(&a, &browser).await;
    let pkce = Pkce::new();
    let options = AuthorizeOptions {
        pkce: Some(pkce.clone()),
        ..AuthorizeOptions::default()
    };
    let request = a
        .client()
        .authorization_request(&client.registered(), &options);
    assert!(request.url.contains("redirect_uri="));
    let code = login_with(&a, &request).await;
    let form = code_form(&client, &code, &pkce.verifier, None);
    assert_eq!(error(&token_request(&a, &form).await), "invalid_grant");
    // Refused without burning the code: the complete request still works.
    let form = code_form(&client, &code, &pkce.verifier, Some(&client.redirect_uri));
    field(&token_request(&a, &form).await, "access_token");

    // The client has one registered redirect URI, so an authorization request may omit it;
    // then the token request may omit it too (and must match if it sends one).
    let pkce = Pkce::new();
    let options = AuthorizeOptions {
        pkce: Some(pkce.clone()),
        ..AuthorizeOptions::default()
    };
    let mut request = a
        .client()
        .authorization_request(&client.registered(), &options);
    let mut url = url::Url::parse(&request.url).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "redirect_uri")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(kept);
    request.url = url.to_string();
    let code = login_with(&a, &request).await;
    let wrong = code_form(
        &client,
        &code,
        &pkce.verifier,
        Some("http://127.0.0.1:9999/other"),
    );
    assert_eq!(error(&token_request(&a, &wrong).await), "invalid_grant");
    let form = code_form(&client, &code, &pkce.verifier, None);
    field(&token_request(&a, &form).await, "access_token");
}

async fn wrong_guesses_neither_burn_a_code_nor_revoke_its_grant(db: &TestDb) {
    let (_fake, a, b, _clock) = two_replicas(db).await;
    let browser = Browser::default();
    let client = register(&a, &browser).await;
    let other = register(&a, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(&a, &browser, &client, &challenge).await;
    let wrong_verifier = "w".repeat(43);
    let uri = client.redirect_uri.as_str();
    let guesses = [
        code_form(&client, &code, &wrong_verifier, Some(uri)),
        code_form(&other, &code, &verifier, Some(uri)),
        code_form(
            &client,
            &code,
            &verifier,
            Some("http://127.0.0.1:9999/elsewhere"),
        ),
        code_form(&client, &code, &verifier, None),
    ];
    for guess in &guesses {
        assert_eq!(
            error(&token_request(&b, guess).await),
            "invalid_grant",
            "{guess:?}"
        );
    }
    // None of them burned the code: the client redeems it.
    let tokens = token_request(&a, &code_form(&client, &code, &verifier, Some(uri))).await;
    let access = field(&tokens, "access_token");
    assert_eq!(call_mcp(&a, &access).await.status, 200);
    // Wrong guesses at the used code revoke nothing either...
    for guess in &guesses {
        assert_eq!(
            error(&token_request(&b, guess).await),
            "invalid_grant",
            "{guess:?}"
        );
    }
    assert_eq!(call_mcp(&b, &access).await.status, 200, "still alive");
    // ... but a correct replay does: the code leaked.
    let replay = token_request(&b, &code_form(&client, &code, &verifier, Some(uri))).await;
    assert_eq!(error(&replay), "invalid_grant");
    assert_eq!(call_mcp(&b, &access).await.status, 401);
}

/// Every WARN (and above) of the test binary, from the first call on: handlers run on server
/// threads, so a process-wide subscriber is the only way to see their logs.
fn warnings() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        buffer
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
