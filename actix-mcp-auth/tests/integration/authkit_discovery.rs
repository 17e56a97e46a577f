//! AuthKit mode: discovery documents, challenges and routing.

use std::time::Duration;

use actix_mcp_auth::Clock;
use actix_mcp_auth_testing::{Endpoint, Failure, FakeAuthKit};
use serde_json::json;

use crate::app::TestApp;

#[actix_web::test]
async fn protected_resource_metadata_is_served_at_both_locations() {
    let app =
        TestApp::spawn_with(|b| b.required_scopes(["openid", "profile", "offline_access"])).await;
    let path_form = app.get("/.well-known/oauth-protected-resource/mcp").await;
    let root_form = app.get("/.well-known/oauth-protected-resource").await;
    assert_eq!(path_form.status, 200);
    assert_eq!(root_form.status, 200);
    assert_eq!(path_form.body, root_form.body);
    assert!(
        path_form
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        path_form.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let doc = path_form.json();
    assert_eq!(doc["resource"], json!(format!("{}/mcp", app.base_url)));
    assert_eq!(doc["authorization_servers"], json!([app.fake.issuer()]));
    assert_eq!(doc["scopes_supported"], json!(["openid", "profile"]));
    assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
    assert!(doc.as_object().unwrap().values().all(|v| !v.is_null()));
}

#[actix_web::test]
async fn metadata_urls_ignore_host_and_forwarded_headers() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(app.url("/.well-known/oauth-protected-resource/mcp"))
        .insert_header(("Host", "evil.example"))
        .insert_header(("X-Forwarded-Host", "evil.example"))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&res).contains("evil"));
    let challenge = app.call_mcp(None).await.challenge();
    assert!(!challenge.contains("evil"));
}

#[actix_web::test]
async fn metadata_preflight_allows_any_origin() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .request(
            actix_web::http::Method::OPTIONS,
            app.url("/.well-known/oauth-protected-resource/mcp"),
        )
        .insert_header(("Origin", "https://inspector.example"))
        .insert_header(("Access-Control-Request-Method", "GET"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "*"
    );
}

#[actix_web::test]
async fn application_routes_stay_reachable() {
    let app = TestApp::spawn().await;
    let open = app.get("/open").await;
    assert_eq!(open.status, 200);
    assert_eq!(open.text(), "open");
    assert_eq!(app.get("/.well-known/unknown").await.status, 404);
}

#[actix_web::test]
async fn authorization_server_metadata_is_forwarded_unchanged_and_cached() {
    let app = TestApp::spawn().await;
    let upstream = app
        .client
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            app.fake.issuer()
        ))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    app.fake.reset_calls();
    for _ in 0..5 {
        let res = app.get("/.well-known/oauth-authorization-server").await;
        assert_eq!(res.status, 200);
        assert_eq!(res.body, upstream.to_vec(), "forwarded byte for byte");
    }
    assert_eq!(app.fake.calls(Endpoint::AuthorizationServerMetadata), 1);
}

#[actix_web::test]
async fn stale_metadata_is_served_when_authkit_fails() {
    // The forwarder's clock: moved past the cache TTL and the error back-off, never slept.
    let clock = Clock::adjustable();
    let app = TestApp::spawn_with(|b| {
        b.metadata_cache_ttl(Duration::from_secs(1))
            .clock(clock.clone())
    })
    .await;
    let first = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(first.status, 200);
    for failure in [Failure::ServerError, Failure::Down] {
        app.fake.set_failure(failure);
        // Let the copy go stale, and let the error back-off of a previous attempt pass.
        clock.advance(Duration::from_secs(6));
        let stale = app.get("/.well-known/oauth-authorization-server").await;
        assert_eq!(stale.status, 200);
        assert_eq!(stale.body, first.body);
    }
    app.fake.set_failure(Failure::None);
    assert_eq!(
        app.fake.calls(Endpoint::AuthorizationServerMetadata),
        2,
        "one initial fetch and one failed refresh answered with 500; nothing reached the down server"
    );
}

#[actix_web::test]
async fn metadata_without_a_copy_is_a_502_without_internals() {
    let fake = FakeAuthKit::start();
    fake.set_failure(Failure::Down);
    let clock = Clock::adjustable();
    let app = TestApp::spawn_on(fake, |b| b.clock(clock.clone())).await;
    let res = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(res.status, 502);
    let body = res.json();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(
        !res.text().contains("127.0.0.1"),
        "no upstream address leaks"
    );
    // Back-off: a second request right away does not try again, and still fails cleanly.
    assert_eq!(
        app.get("/.well-known/oauth-authorization-server")
            .await
            .status,
        502
    );
    app.fake.set_failure(Failure::ServerError);
    clock.advance(Duration::from_secs(6));
    let res = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(res.status, 502);
    assert!(
        !res.text().contains("server_error"),
        "upstream body not echoed"
    );
}

#[actix_web::test]
async fn concurrent_metadata_requests_make_one_upstream_fetch() {
    let fake = FakeAuthKit::start();
    fake.set_failure(Failure::Slow(Duration::from_millis(300)));
    let app = TestApp::spawn_on(fake, |b| b).await;
    let requests = (0..8).map(|_| app.get("/.well-known/oauth-authorization-server"));
    let replies = futures_util::future::join_all(requests).await;
    assert!(replies.iter().all(|r| r.status == 200));
    assert_eq!(app.fake.calls(Endpoint::AuthorizationServerMetadata), 1);
}
