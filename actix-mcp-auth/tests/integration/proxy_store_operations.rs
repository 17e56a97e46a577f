//! What one login and one refresh cost the database, counted by the store (issue 12 §4): each
//! step's store operations (a statement or a transaction), so a change that adds a round trip
//! shows here.

use actix_mcp_auth_testing::FakeAuthKit;

use crate::{
    proxy_app::{Browser, ProxyApp, login_on, pkce, redeem, register, token_request},
    store_support::TestDb,
};

crate::store_support::http_tests!(a_login_and_a_refresh_cost_a_known_number_of_operations);

async fn a_login_and_a_refresh_cost_a_known_number_of_operations(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let store = db.store().await;
    let app = ProxyApp::spawn(&fake, store.clone(), |b| b).await;
    let browser = Browser::default();
    let ops = || store.database_operations();

    let before = ops();
    let client = register(&app, &browser).await;
    // One transaction: the client and its place among the never-used registrations, counted
    // in the insert.
    assert_eq!(ops() - before, 1, "/register");

    // authorize: the client, the pending request; consent page: the request with its client;
    // consent POST: the approval (binding and token checked in the update); callback: the
    // claim (binding and approval checked in the delete), then the grant and its code.
    let (verifier, challenge) = pkce();
    let before = ops();
    let code = login_on([&app, &app, &app, &app], &browser, &client, &challenge).await;
    assert_eq!(
        ops() - before,
        6,
        "authorize, consent page, consent POST, callback"
    );

    // The client and the code in one read, then the code consumed with its tokens issued.
    let before = ops();
    let issued = redeem(&app, &client, &code, &verifier).await;
    assert_eq!(ops() - before, 2, "/token (code)");
    let refresh = issued["refresh_token"].as_str().expect("a refresh token");

    // The client, then the rotation (one transaction).
    let before = ops();
    let reply = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(ops() - before, 2, "/token (refresh)");
}
