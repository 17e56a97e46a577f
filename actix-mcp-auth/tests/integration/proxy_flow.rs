//! Proxy mode end to end: the flow an MCP client performs, on SQLite and on PostgreSQL, on one
//! replica and alternating between two.

use actix_mcp_auth_testing::FakeAuthKit;
use serde_json::json;

use crate::{
    app::Reply,
    proxy_app::{
        Browser, ProxyApp, call_mcp, login, login_on, pkce, redeem, register, token_request,
    },
    store_support::TestDb,
};

crate::store_support::http_tests!(
    full_flow_as_an_mcp_client_performs_it,
    steps_alternate_between_two_replicas,
    a_base_url_with_a_path_is_served_below_it,
);

/// Parses a `WWW-Authenticate` parameter.
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = challenge.find(&marker)? + marker.len();
    let end = challenge[start..].find('"')? + start;
    Some(challenge[start..end].to_owned())
}

async fn full_flow_as_an_mcp_client_performs_it(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    let browser = Browser::default();

    // Discovery, starting from the 401.
    let unauthorized = browser.client.post(app.url("/mcp")).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let challenge = unauthorized
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let prm_url = challenge_param(&challenge, "resource_metadata").expect("resource_metadata");
    let prm = browser.get(&prm_url).await.json();
    assert_eq!(prm["resource"], json!(app.url("/mcp")));
    let issuer = prm["authorization_servers"][0].as_str().unwrap().to_owned();
    assert_eq!(issuer, app.base_url);
    let metadata = browser
        .get(&format!("{issuer}/.well-known/oauth-authorization-server"))
        .await
        .json();
    assert_eq!(metadata["issuer"], json!(issuer));
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        json!(true)
    );
    assert_eq!(
        metadata["registration_endpoint"],
        json!(app.url("/register"))
    );

    // Register, log in, redeem.
    let client = register(&app, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login(&app, &browser, &client, &challenge).await;
    let upstream_authorize = fake.last_authorize_params().expect("AuthKit saw the login");
    assert_eq!(
        upstream_authorize["redirect_uri"],
        app.url("/auth/callback")
    );
    assert_eq!(upstream_authorize["code_challenge_method"], "S256");
    assert!(upstream_authorize.contains_key("nonce"));
    assert_ne!(upstream_authorize["state"], "client-state-123");
    let tokens = redeem(&app, &client, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("mcp_at_"));
    assert!(refresh.starts_with("mcp_rt_"));
    assert_eq!(tokens["token_type"], "Bearer");

    // AuthKit's own tokens never reach the client.
    for upstream in fake.issued_access_tokens() {
        assert_ne!(upstream, access);
        assert!(!tokens.to_string().contains(&upstream));
        let passthrough = call_mcp(&app, &upstream).await;
        assert_eq!(
            passthrough.status, 401,
            "AuthKit tokens are not accepted here"
        );
    }

    // The MCP call sees the user and the client separately.
    let me = call_mcp(&app, &access).await;
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["subject"], "user_01TEST");
    assert_eq!(me["client_id"], json!(client.client_id));
    assert_eq!(me["claims"]["email"], "user_01TEST@example.com");

    // Refresh rotates; the old refresh token is then refused and kills the grant.
    let refreshed = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let refreshed = refreshed.json();
    let new_access = refreshed["access_token"].as_str().unwrap().to_owned();
    let new_refresh = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new_refresh, refresh);
    assert_eq!(call_mcp(&app, &new_access).await.status, 200);

    // Revocation (RFC 7009) of the new refresh token ends the grant.
    let revoked = token_request_to(
        &app,
        "/revoke",
        &[("token", &new_refresh), ("client_id", &client.client_id)],
    )
    .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(call_mcp(&app, &new_access).await.status, 401);
    let again = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &new_refresh),
            ("client_id", &client.client_id),
        ],
    )
    .await;
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"], "invalid_grant");
}

async fn steps_alternate_between_two_replicas(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let a = ProxyApp::spawn(&fake, db.store().await, |b| b).await;
    // Both replicas serve one public URL in production; here each has its own port, so the
    // second replica is configured with the first one's base URL and we address it directly.
    let b = ProxyApp::spawn(&fake, db.store().await, |builder| {
        builder.base_url(&a.base_url)
    })
    .await;
    let browser = Browser::default();
    let client = register(&a, &browser).await;
    let (verifier, challenge) = pkce();
    let code = login_on_alternating(&a, &b, &browser, &client, &challenge).await;
    let tokens = redeem(&a, &client, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(call_mcp(&b, access).await.status, 200);
    assert_eq!(call_mcp(&a, access).await.status, 200);
}

/// Authorize on A, consent page on B, approval on A, callback on B.
async fn login_on_alternating(
    a: &ProxyApp,
    b: &ProxyApp,
    browser: &Browser,
    client: &crate::proxy_app::McpClient,
    challenge: &str,
) -> String {
    login_on([a, b, a, b], browser, client, challenge).await
}

/// POST a form to another endpoint.
pub async fn token_request_to(app: &ProxyApp, path: &str, form: &[(&str, &str)]) -> Reply {
    let res = awc::Client::default()
        .post(app.url(path))
        .send_form(&form)
        .await
        .unwrap();
    Reply::read(res).await
}

async fn a_base_url_with_a_path_is_served_below_it(db: &TestDb) {
    let fake = FakeAuthKit::start();
    let app = ProxyApp::spawn_at(&fake, db.store().await, "/api", |b| b).await;
    assert_eq!(app.provider.mcp_path(), "/api/mcp");
    let origin = app.base_url.trim_end_matches("/api").to_owned();
    // Discovery from the 401 leads to documents at the RFC 8414/9728 path-inserted locations.
    let mut client = actix_mcp_auth_testing::OAuthTestClient::new(&app.base_url);
    let login = client.full_login().await.expect("login below /api");
    assert_eq!(
        app.provider.resource_metadata_url(),
        format!("{origin}/.well-known/oauth-protected-resource/api/mcp")
    );
    let browser = Browser::default();
    let metadata = browser
        .get(&format!(
            "{origin}/.well-known/oauth-authorization-server/api"
        ))
        .await
        .json();
    assert_eq!(metadata["issuer"], json!(app.base_url));
    assert_eq!(metadata["token_endpoint"], json!(app.url("/token")));
    let me = call_mcp(&app, &login.tokens.access_token).await;
    assert_eq!(me.status, 200, "{}", me.text());
}
