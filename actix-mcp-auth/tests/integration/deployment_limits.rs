//! Proxy mode in real deployments: rate limits that let shared egress through but stop floods,
//! shared by every worker; the per-client guard on failed client authentication; the bounds on
//! never-used registrations; an empty `Bearer` header.

use std::{net::TcpListener, time::Duration};

use actix_mcp_auth::{Limit, RateLimits, WorkOsProvider};
use actix_mcp_auth_testing::FakeAuthKit;
use actix_web::{App, HttpServer};
use serde_json::json;

use crate::{
    app::Reply,
    proxy_app::{
        Browser, CONNECT_CLIENT_ID, CONNECT_SECRET, ProxyApp, builder, call_mcp, login, pkce,
        redeem, register, register_with,
    },
    proxy_flow::token_request_to,
    store_support::{TestDb, client, insert_client, stored_client, unused_clients},
};

crate::store_support::http_tests!(
    default_limits_let_hundreds_of_registrations_from_one_address_through,
    limits_are_shared_by_all_workers,
    failed_client_authentication_is_limited_per_client_id,
    never_used_registrations_expire_in_a_day_and_are_capped,
    an_empty_bearer_header_is_a_request_without_credentials,
    a_login_succeeds_against_an_http10_authkit,
);

fn registration() -> serde_json::Value {
    json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "token_endpoint_auth_method": "none"})
}

/// `POST` of a JSON body on a connection of its own (a new client has an empty pool).
async fn post_json_fresh(url: &str, body: &serde_json::Value) -> Reply {
    let res = awc::Client::default()
        .post(url)
        .send_json(body)
        .await
        .unwrap();
    Reply::read(res).await
}

async fn default_limits_let_hundreds_of_registrations_from_one_address_through(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let http = awc::Client::default();
    let url = app.url("/register");
    for i in 0..500 {
        let res = http.post(&url).send_json(&registration()).await.unwrap();
        assert_eq!(res.status().as_u16(), 201, "registration {i}");
    }
    // A flood from the same address is still stopped: the burst is 600, refilled at 1/s.
    let mut limited = None;
    for i in 500..800 {
        let reply = Reply::read(http.post(&url).send_json(&registration()).await.unwrap()).await;
        if reply.status == 429 {
            limited = Some((i, reply));
            break;
        }
        assert_eq!(reply.status, 201, "registration {i}");
    }
    let (at, reply) = limited.expect("a flood is throttled");
    assert!(at >= 600, "throttled after {at} registrations");
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
    let wait: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
}

async fn limits_are_shared_by_all_workers(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let limits = RateLimits::default().register(Limit::new(3, Duration::from_secs(3600)));
    let provider = builder(&fake, &base_url)
        .rate_limits(limits)
        .build(db.store().await)
        .unwrap();
    fake.register_connect_app(
        CONNECT_CLIENT_ID,
        CONNECT_SECRET,
        &[&provider.callback_url()],
    );
    let p: WorkOsProvider = provider.clone();
    let server = HttpServer::new(move || App::new().service(p.routes()))
        .workers(4)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    // Each request on its own connection, so they spread over the workers.
    let mut statuses = Vec::new();
    for _ in 0..16 {
        let reply = post_json_fresh(&format!("{base_url}/register"), &registration()).await;
        statuses.push(reply.status);
    }
    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (created, limited),
        (3, 13),
        "one budget for the whole server, not one per worker: {statuses:?}"
    );
    handle.stop(false).await;
}

async fn failed_client_authentication_is_limited_per_client_id(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let limits = RateLimits::default().failed_client_auth(Limit::new(3, Duration::from_secs(3600)));
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b.rate_limits(limits)).await;
    let browser = Browser::default();
    let target = register_with(
        &app,
        &browser,
        json!({"token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let other = register_with(
        &app,
        &browser,
        json!({"token_endpoint_auth_method": "client_secret_post"}),
    )
    .await;
    let attempt = |client_id: String, secret: String| {
        let app = &app;
        async move {
            token_request_to(
                app,
                "/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", "mcp_rt_unknown"),
                    ("client_id", &client_id),
                    ("client_secret", &secret),
                ],
            )
            .await
        }
    };
    let right = target.client_secret.clone().unwrap();
    for _ in 0..3 {
        let reply = attempt(target.client_id.clone(), "wrong".into()).await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.json()["error"], "invalid_client");
    }
    // The budget is spent: refused, and from now on even the right secret is not compared.
    let locked = attempt(target.client_id.clone(), "wrong".into()).await;
    assert_eq!(locked.status, 429, "{}", locked.text());
    assert_eq!(locked.json()["error"], "temporarily_unavailable");
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&wait), "{wait}");
    assert_eq!(
        attempt(target.client_id.clone(), right.clone())
            .await
            .status,
        429,
        "a correct guess is not revealed while locked"
    );
    let revoke = token_request_to(
        &app,
        "/revoke",
        &[
            ("token", "mcp_at_unknown"),
            ("client_id", &target.client_id),
            ("client_secret", &right),
        ],
    )
    .await;
    assert_eq!(revoke.status, 429, "/revoke shares the guard");
    // Another client is not affected: it gets past authentication to the grant check.
    let fine = attempt(
        other.client_id.clone(),
        other.client_secret.clone().unwrap(),
    )
    .await;
    assert_eq!(fine.status, 400, "{}", fine.text());
    assert_eq!(fine.json()["error"], "invalid_grant");
}

async fn never_used_registrations_expire_in_a_day_and_are_capped(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let store = db.store().await;
    // No background sweeper: the test runs `purge_expired` itself and counts what it deletes.
    let app = ProxyApp::spawn(&fake, store.clone(), |b| {
        b.max_unused_clients(3).sweep_interval(Duration::ZERO)
    })
    .await;
    let browser = Browser::default();
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(register(&app, &browser).await);
    }
    let stored = stored_client(db, &clients[0].client_id).await.unwrap();
    assert_eq!(
        stored.expires_at - stored.created_at,
        24 * 3600,
        "a registration that is never used lives a day"
    );
    assert_eq!(unused_clients(db).await, 3);

    // The ceiling is reached: 503 with Retry-After until the oldest one expires.
    let refused = post_json_fresh(&app.url("/register"), &registration()).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"], "temporarily_unavailable");
    let wait: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=24 * 3600).contains(&wait)
            && wait <= stored.expires_at - crate::store_support::now() + 1,
        "{wait}"
    );

    // A completed login makes a registration used: it lives as long as its grant and no longer
    // counts, so there is room again.
    let (verifier, challenge) = pkce();
    let code = login(&app, &browser, &clients[0], &challenge).await;
    redeem(&app, &clients[0], &code, &verifier).await;
    let used = stored_client(db, &clients[0].client_id).await.unwrap();
    assert!(
        used.expires_at >= used.created_at + 29 * 24 * 3600,
        "extended to the grant's life"
    );
    assert_eq!(unused_clients(db).await, 2);
    assert_eq!(
        post_json_fresh(&app.url("/register"), &registration())
            .await
            .status,
        201
    );
    assert_eq!(
        post_json_fresh(&app.url("/register"), &registration())
            .await
            .status,
        503
    );

    // Expired never-used registrations neither count nor stay: the sweeper deletes them.
    let mut expired = client("mcp_client_expired_unused");
    expired.created_at -= 2 * 24 * 3600;
    expired.expires_at = expired.created_at + 24 * 3600;
    insert_client(db, &expired).await;
    assert_eq!(unused_clients(db).await, 3);
    let report = store.purge_expired(100).await.unwrap();
    assert_eq!(report.clients, 1);
    assert!(
        stored_client(db, &clients[0].client_id).await.is_some(),
        "the used client stays"
    );

    // The lifetime is configurable.
    let short = ProxyApp::spawn(&fake, db.store().await, |b| {
        b.unused_client_ttl(Duration::from_secs(3600))
    })
    .await;
    let client = register(&short, &browser).await;
    let stored = stored_client(db, &client.client_id).await.unwrap();
    assert_eq!(stored.expires_at - stored.created_at, 3600);
}

async fn an_empty_bearer_header_is_a_request_without_credentials(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    for value in ["Bearer", "Bearer ", "Bearer \t  "] {
        let res = awc::Client::default()
            .post(app.url("/mcp"))
            .insert_header(("Authorization", value))
            .send()
            .await
            .unwrap();
        let reply = Reply::read(res).await;
        assert_eq!(reply.status, 401, "{value:?}: {}", reply.text());
        let challenge = reply.challenge();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(challenge.contains("resource_metadata="), "{challenge}");
        assert!(!challenge.contains("error="), "{value:?}: {challenge}");
    }
}

/// AuthKit (or an intermediary) speaking HTTP/1.0 closes the connection after every answer:
/// the callback's userinfo call right after the token exchange must not be sent on the
/// connection the exchange used.
async fn a_login_succeeds_against_an_http10_authkit(db: &TestDb) {
    let fake = FakeAuthKit::start_http10();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let client = register(&app, &Browser::default()).await;
    for _ in 0..2 {
        // A new browser each time: the test's own HTTP client would reuse its connection.
        let browser = Browser::default();
        let (verifier, challenge) = pkce();
        let code = login(&app, &browser, &client, &challenge).await;
        let tokens = redeem(&app, &client, &code, &verifier).await;
        let reply = call_mcp(&app, tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(fake.calls(actix_mcp_auth_testing::Endpoint::Token), 2);
}
