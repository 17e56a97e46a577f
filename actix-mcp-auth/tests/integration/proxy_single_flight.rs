//! Concurrent first uses of one access token share one verification: one database lookup and
//! at most one AuthKit userinfo call, however many requests arrive together (issue 9 §3).

use std::time::Duration;

use actix_mcp_auth_testing::{Endpoint, Failure, FakeAuthKit};
use futures_util::future::join_all;

use crate::{
    proxy_app::{Browser, ProxyApp, call_mcp, login, pkce, redeem, register},
    store_support::TestDb,
};

crate::store_support::http_tests!(parallel_first_uses_share_one_verification);

const PARALLEL: usize = 16;

async fn parallel_first_uses_share_one_verification(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let store = db.store().await;
    let app = ProxyApp::spawn(&fake, store.clone(), |b| b).await;
    let browser = Browser::default();
    let client = register(&app, &browser).await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let (verifier, challenge) = pkce();
        let code = login(&app, &browser, &client, &challenge).await;
        let issued = redeem(&app, &client, &code, &verifier).await;
        tokens.push(issued["access_token"].as_str().unwrap().to_owned());
    }

    // A slow AuthKit keeps the first verification running while the others arrive: without the
    // single flight each of them would look the token up and ask AuthKit itself.
    fake.set_failure(Failure::Slow(Duration::from_millis(300)));
    for token in &tokens {
        fake.reset_calls();
        let before = store.database_operations();
        let replies = join_all((0..PARALLEL).map(|_| call_mcp(&app, token))).await;
        for reply in &replies {
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
        assert_eq!(
            store.database_operations() - before,
            1,
            "{PARALLEL} parallel first uses: one database lookup"
        );
        assert_eq!(
            fake.calls(Endpoint::UserInfo),
            1,
            "{PARALLEL} parallel first uses: one userinfo call"
        );
    }
}
