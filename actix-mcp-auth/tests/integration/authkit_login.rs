//! AuthKit mode end to end: an MCP client discovers AuthKit from our 401, registers there
//! dynamically (RFC 7591), logs in with our MCP URL as its resource indicator (RFC 8707) and
//! calls the MCP endpoint with the token AuthKit issued. FakeAuthKit plays AuthKit; the client
//! is `actix_mcp_auth_testing::OAuthTestClient`, which logs in at the emulator directly (AuthKit mode has no
//! consent page of ours).

use actix_mcp_auth_testing::{
    AuthorizeOptions, Endpoint, OAuthTestClient, RegisteredClient, TokenSet,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::app::TestApp;

const USER: &str = "user_01LOGIN";

/// An MCP client of `app`. FakeAuthKit signs the user in without any page, so the authorization
/// request comes straight back with a code.
fn mcp_client(app: &TestApp) -> OAuthTestClient {
    OAuthTestClient::new(&app.base_url).accept_immediate_code(true)
}

/// The claims of a JWT, unverified (verifying is the server's job under test).
fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// Discovery and registration of a public client, then a login with `options`.
async fn log_in(
    client: &mut OAuthTestClient,
    options: &AuthorizeOptions,
) -> (RegisteredClient, TokenSet) {
    client.discover().await.expect("discovery");
    let registered = client
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .expect("registration at AuthKit");
    let code = client
        .authorize_and_consent(&registered, options)
        .await
        .expect("authorization");
    let tokens = client
        .exchange_code(&registered, &code)
        .await
        .expect("code exchange");
    (registered, tokens)
}

/// Asserts that the MCP endpoint accepts `access_token` and sees [`USER`].
async fn assert_accepted(client: &OAuthTestClient, access_token: &str) {
    let answer = client
        .call_tool(access_token, "whoami", json!({}))
        .await
        .expect("MCP request");
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json().expect("JSON answer")["subject"], USER);
}

#[actix_web::test]
async fn mcp_client_discovers_registers_logs_in_and_calls_the_mcp_endpoint() {
    let app = TestApp::spawn().await;
    app.fake.set_current_user(USER);
    let issuer = app.fake.issuer();
    let mut client = mcp_client(&app);

    // Discovery: the 401 names our protected-resource metadata, which names AuthKit.
    let discovery = client.discover().await.expect("discovery");
    assert!(discovery.resource_metadata_url.starts_with(&app.base_url));
    assert_eq!(
        discovery.protected_resource["resource"],
        json!(app.resource())
    );
    assert_eq!(
        discovery.protected_resource["authorization_servers"],
        json!([issuer])
    );
    assert_eq!(
        discovery.authorization_server_url,
        format!("{issuer}/.well-known/oauth-authorization-server")
    );
    let endpoints = client.endpoints().clone();
    assert_eq!(endpoints.issuer, issuer);
    assert_eq!(endpoints.resource, app.resource());
    assert_eq!(
        endpoints.authorization_endpoint,
        format!("{issuer}/oauth2/authorize")
    );
    assert_eq!(endpoints.token_endpoint, format!("{issuer}/oauth2/token"));
    assert_eq!(
        endpoints.registration_endpoint,
        Some(format!("{issuer}/oauth2/register"))
    );

    // Older clients read the metadata from us: AuthKit's document, byte for byte.
    let forwarded = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(forwarded.status, 200, "{}", forwarded.text());
    let upstream = client
        .get(&discovery.authorization_server_url)
        .await
        .expect("AuthKit metadata");
    assert_eq!(upstream.status, 200);
    assert_eq!(forwarded.body, upstream.body.to_vec());
    assert_eq!(forwarded.json(), discovery.authorization_server);

    // Dynamic registration at AuthKit, as a public client.
    let registered = client
        .register(&OAuthTestClient::default_client_metadata())
        .await
        .expect("registration at AuthKit");
    assert!(
        registered.client_id.starts_with("client_01"),
        "{registered:?}"
    );
    assert_eq!(registered.client_secret, None);
    assert_eq!(registered.token_endpoint_auth_method, "none");
    assert_eq!(app.fake.calls(Endpoint::Register), 1);
    assert_eq!(
        app.fake.registered_clients(),
        vec![registered.client_id.clone()]
    );

    // Login at AuthKit with our MCP URL as the resource indicator, PKCE S256.
    let code = client
        .authorize_and_consent(&registered, &AuthorizeOptions::default())
        .await
        .expect("authorization");
    assert_eq!(code.resource.as_deref(), Some(app.resource().as_str()));
    let sent = app
        .fake
        .last_authorize_params()
        .expect("an authorize request");
    assert_eq!(sent["client_id"], registered.client_id);
    assert_eq!(sent["resource"], app.resource());
    assert_eq!(sent["code_challenge_method"], "S256");
    assert_eq!(app.fake.calls(Endpoint::Authorize), 1);

    let tokens = client
        .exchange_code(&registered, &code)
        .await
        .expect("code exchange");
    let access = claims(&tokens.access_token);
    assert_eq!(access["aud"], json!(app.resource()));
    assert_eq!(access["sub"], USER);
    assert_eq!(access["iss"], json!(issuer));
    assert!(tokens.refresh_token.is_some());
    assert_eq!(
        app.fake.issued_access_tokens(),
        vec![tokens.access_token.clone()]
    );

    // The MCP endpoint accepts AuthKit's token and the handler sees the user.
    assert_accepted(&client, &tokens.access_token).await;
}

#[actix_web::test]
async fn a_token_issued_without_the_resource_indicator_is_refused() {
    let app = TestApp::spawn().await;
    app.fake.set_current_user(USER);
    let mut client = mcp_client(&app);
    let options = AuthorizeOptions {
        omit_resource: true,
        ..AuthorizeOptions::default()
    };
    let (registered, tokens) = log_in(&mut client, &options).await;
    assert!(
        !app.fake
            .last_authorize_params()
            .expect("an authorize request")
            .contains_key("resource")
    );

    // AuthKit issued it for the client, not for our MCP URL.
    let access = claims(&tokens.access_token);
    assert_eq!(access["aud"], json!(registered.client_id));
    assert_eq!(access["sub"], USER);
    // The token is otherwise sound: AuthKit itself accepts it.
    let mut userinfo = client
        .http()
        .get(format!("{}/oauth2/userinfo", app.fake.issuer()))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .expect("userinfo request");
    assert_eq!(userinfo.status().as_u16(), 200);
    let profile: Value = userinfo.json().await.expect("userinfo JSON");
    assert_eq!(profile["sub"], USER);

    // We refuse it: the audience check.
    let reply = app.call_with(&tokens.access_token).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let challenge = reply.challenge();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(&format!(
            "resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
            app.base_url
        )),
        "{challenge}"
    );
    assert_eq!(reply.json()["error"], "invalid_token");
}

#[actix_web::test]
async fn full_login_and_rotating_refresh() {
    let app = TestApp::spawn().await;
    app.fake.set_current_user(USER);
    let mut client = mcp_client(&app);
    let login = client.full_login().await.expect("full login");
    assert_eq!(login.client.token_endpoint_auth_method, "none");
    assert_accepted(&client, &login.tokens.access_token).await;
    let first_refresh = login.tokens.refresh_token.expect("a refresh token");

    // Refresh (with the resource again): a new access token for the same audience.
    let refreshed = client
        .refresh(&login.client, &first_refresh, None)
        .await
        .expect("refresh");
    assert_ne!(refreshed.access_token, login.tokens.access_token);
    let access = claims(&refreshed.access_token);
    assert_eq!(access["aud"], json!(app.resource()));
    assert_eq!(
        access["sid"],
        claims(&login.tokens.access_token)["sid"],
        "same AuthKit session"
    );
    assert_accepted(&client, &refreshed.access_token).await;
    let second_refresh = refreshed.refresh_token.expect("a rotated refresh token");
    assert_ne!(second_refresh, first_refresh);

    // Refresh tokens are single-use.
    let resource = app.resource();
    let reused = client
        .token_request(
            &login.client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &first_refresh),
                ("resource", &resource),
            ],
        )
        .await
        .expect("token request");
    assert_eq!(reused.status, 400, "{}", reused.text());
    assert_eq!(reused.json().expect("JSON error")["error"], "invalid_grant");

    // The successor still works once.
    let again = client
        .refresh(&login.client, &second_refresh, None)
        .await
        .expect("second refresh");
    assert_accepted(&client, &again.access_token).await;
    assert_eq!(app.fake.calls(Endpoint::Register), 1);
    assert_eq!(app.fake.calls(Endpoint::Token), 4);
}
